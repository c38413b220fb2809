/*
 * Event sources: where raw events come from (the BPF ring buffer, the
 * synthetic generator, a recording). Every source sits behind this one small
 * interface and runs on the libuv loop; none of them knows what happens to an
 * event after it is handed to the sink.
 *
 * A raw event is the exact bytes a kernel program would have put in the ring
 * buffer (bpf/events.h), unvalidated, plus the monotonic → UTC offset in
 * force when it was read. Validation is the pipeline's job (decode.c), so a
 * malformed record from any source is counted the same way.
 *
 * Lifetime: source_*_new() allocates; ops->start() begins producing;
 * ops->stop() closes the source's libuv handles and calls `stopped` once they
 * are closed; only then may ops->destroy() free it.
 */
#ifndef FLOWSTORE_SOURCE_H
#define FLOWSTORE_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "clock.h"

struct stats;

struct source_sink {
	/* One raw event. Called on the loop thread; data is only valid for
	 * the duration of the call. */
	void (*event)(void *ctx, const void *data, size_t size, int64_t utc_offset_ns);
	/* False when the pipeline has no room: a source that can wait
	 * (synthetic at full speed, replay) pauses until ops->resume();
	 * a source that cannot (the kernel) keeps going and the pipeline
	 * counts what it drops. */
	bool (*has_room)(void *ctx);
	/* The source has produced everything it will (a --count reached, a
	 * recording played to its end). Called at most once. */
	void (*done)(void *ctx, int status);
	void *ctx;
};

struct source;

struct source_ops {
	const char *name;
	int (*start)(struct source *s);
	void (*resume)(struct source *s);
	void (*stop)(struct source *s, void (*stopped)(struct source *s));
	void (*destroy)(struct source *s);
};

struct source {
	const struct source_ops *ops;
	uv_loop_t *loop;
	struct source_sink sink;
	const struct fs_clock *clock;
	void *user; /* for the owner's use in `stopped` */
};

struct synthetic_opts {
	uint64_t rate;  /* events per second; 0 = as fast as the pipeline takes */
	uint64_t count; /* stop after this many events; 0 = never */
	uint64_t seed;
};

/* The synthetic source (synthetic.h has the generator it paces). */
int source_synthetic_new(uv_loop_t *loop, const struct fs_clock *clock,
			 const struct synthetic_opts *opts,
			 const struct source_sink *sink, struct source **out);

/* Plays a recording (recording.h) as fast as the pipeline takes it, each
 * event with the UTC offset recorded with it, then calls sink->done. */
int source_replay_new(uv_loop_t *loop, const char *path,
		      const struct source_sink *sink, struct source **out);

/* The kernel source's defaults (source_bpf_new() takes a 0 for these). */
#define BPF_RING_BYTES_DEFAULT (2u << 20) /* docs/benchmarks.md, session 7 */
#define BPF_MAX_CONNS_DEFAULT 65536u
#define BPF_DRAIN_MS_DEFAULT 10u
#define BPF_FLOW_MAP_SIZE_DEFAULT 131072u
#define BPF_IDLE_TIMEOUT_NS_DEFAULT (15ull * 1000000000ull)
#define BPF_ACTIVE_TIMEOUT_NS_DEFAULT (60ull * 1000000000ull)
/* Not taken for a 0 (which means a wakeup per record): the daemon's choice. */
#define BPF_WAKEUP_BYTES_DEFAULT (256u << 10)

/* Who owns an accepted socket (bpf/conn.bpf.c, invariant 4). */
enum bpf_accept_owner {
	BPF_ACCEPT_OWNER_IO,      /* the first task to send, receive or close on it */
	BPF_ACCEPT_OWNER_SYSCALL, /* the task whose accept() returned it: a hook on
				   * every syscall exit of the host */
};

struct bpf_source_opts {
	uint32_t ring_bytes;   /* ring buffer size: a power of two, a multiple of the page */
	uint32_t max_conns;    /* TCP sockets tracked at once: `conns` slots (bpf/conn_table.h) */
	uint32_t wakeup_bytes; /* 0: a wakeup per record; N: once N bytes wait (<= ring/2) */
	uint32_t drain_ms;     /* the ring is also drained this often, woken or not */
	uint32_t flow_map_size; /* flows tracked at once (the `flows` map) */
	uint64_t idle_timeout_ns;   /* a flow this long without a packet is exported */
	uint64_t active_timeout_ns; /* a flow is exported at least this often */
	uint32_t tcp_states;        /* enum fs_tcp_state_policy: which transitions are records */
	/* Comma-separated interface names to watch (attached when they exist,
	 * and when they appear later); NULL: every interface that is up, but
	 * lo, and every one that comes up later. */
	const char *interfaces;
	int tc_mode; /* enum tc_mode (tc_attach.h): how flow goes on; 0 = TC_MODE_AUTO */
	int accept_owner; /* enum bpf_accept_owner: how an accepted socket's owner is found */
};


/* The kernel source: preflight, then opens, sizes, configures, loads and
 * attaches the BPF programs (bpf/conn.bpf.c; bpf/flow.bpf.c at TC of the
 * chosen interfaces). Every failure is logged as one line; returns 0 or a
 * negative errno. The programs stay attached until ops->stop() (which
 * detaches them, drains the rings to their end and exports every flow left
 * in the flow map) or ops->destroy(). stats->kernel_lost[] and
 * kernel_recursion_misses are kept equal to the kernel's counters; `stats`
 * must outlive the source. */
int source_bpf_new(uv_loop_t *loop, const struct fs_clock *clock,
		   const struct bpf_source_opts *opts, const struct source_sink *sink,
		   struct stats *stats, struct source **out);


#endif /* FLOWSTORE_SOURCE_H */
