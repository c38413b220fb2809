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

#endif /* FLOWSTORE_SOURCE_H */
