/*
 * The collector's counters. One instance per daemon, written by the loop
 * thread, the writer thread and the sealer thread with relaxed atomics (each
 * counter has one writer; readers only need eventual values). Readable as a
 * one-line "stats:" log record and as Prometheus text; the query socket
 * exposes the same figures as SQL and /metrics.
 */
#ifndef FLOWSTORE_STATS_H
#define FLOWSTORE_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "events.h"
#include "schema.h"

enum malformed_reason {
	MALFORMED_SHORT = 0,   /* smaller than a header */
	MALFORMED_SIZE,        /* hdr.size disagrees with the bytes or the type */
	MALFORMED_TYPE,        /* unknown type */
	MALFORMED_VALUE,       /* a field out of range (state, direction, ...) */
	MALFORMED_NREASONS,
};

struct stats {
	/* loop thread */
	atomic_uint_fast64_t events_in[SCHEMA_NTABLES]; /* decoded, by kind */
	atomic_uint_fast64_t owners_in; /* datagram sockets' owner records decoded */
	atomic_uint_fast64_t malformed[MALFORMED_NREASONS];
	atomic_uint_fast64_t dropped_queue_full; /* events lost: no free batch */
	atomic_uint_fast64_t batches_queued;
	atomic_uint_fast64_t record_errors;      /* --record write failures */
	/* Records the kernel could not deliver, by enum fs_loss_reason: the
	 * kernel's own totals, copied (stored, not added) by the bpf source. */
	atomic_uint_fast64_t kernel_lost[FS_LOSS_MAX];
	/* Runs of a kernel program the kernel skipped because it was already
	 * running on that CPU (struct bpf_prog_info.recursion_misses), summed
	 * over our programs: copied (stored) by the bpf source. */
	atomic_uint_fast64_t kernel_recursion_misses;
	atomic_uint_fast64_t interfaces_attached; /* flow programs' interfaces, now */
	atomic_uint_fast64_t flows_swept; /* flows exported from user space (idle, shutdown) */
	/* writer thread */
	atomic_uint_fast64_t rows_written[SCHEMA_NTABLES];
	atomic_uint_fast64_t rows_lost; /* could not be written at shutdown */
	atomic_uint_fast64_t batches_committed;
	atomic_uint_fast64_t commit_ns_total;
	atomic_uint_fast64_t commit_ns_max;
	atomic_uint_fast64_t write_errors;  /* failed attempts (then retried) */
	atomic_uint_fast64_t queue_depth;   /* batches waiting for the writer */
	atomic_uint_fast64_t partitions_created;
	/* checkpointer thread (the writer's) */
	atomic_uint_fast64_t checkpoints;
	atomic_uint_fast64_t checkpoint_errors;
	atomic_uint_fast64_t checkpoint_restarts; /* checkpoints that held the writer off */
	atomic_uint_fast64_t checkpoint_ns_total;
	atomic_uint_fast64_t checkpoint_ns_max;
	atomic_uint_fast64_t wal_pages_max; /* the most pages a WAL held after a commit */
	/* sealer thread */
	atomic_uint_fast64_t partitions_sealed;
	atomic_uint_fast64_t seal_errors;
	atomic_uint_fast64_t seal_busy_retries; /* seals put off: a reader had the file */
	atomic_uint_fast64_t seal_ns_total;
	atomic_uint_fast64_t seal_rows_total;
	/* retention (on the sealer thread) */
	atomic_uint_fast64_t retention_runs;
	atomic_uint_fast64_t retention_errors;
	atomic_uint_fast64_t retention_ns_total;
	atomic_uint_fast64_t files_removed[SCHEMA_NKINDS]; /* by kind: raw, 1m, 1h */
	atomic_uint_fast64_t files_removed_why[3];         /* age, max-disk, min-free */
	atomic_uint_fast64_t bytes_removed;
	atomic_uint_fast64_t rollup_partitions; /* raw partitions rolled up */
	atomic_uint_fast64_t rollup_rows;       /* rollup rows they added */
	atomic_uint_fast64_t temps_removed;     /* leftovers of interrupted steps */
	atomic_uint_fast64_t store_bytes;       /* our files in the data dir, last run */
	atomic_uint_fast64_t fs_free_bytes;     /* free on its file system, last run */
	/* startup */
	atomic_uint_fast64_t partitions_broken; /* ours by name, unreadable: left alone */
	atomic_uint_fast64_t files_foreign;     /* not ours: left alone */
};

static inline void stats_add(atomic_uint_fast64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline uint64_t stats_get(const atomic_uint_fast64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

static inline void stats_max(atomic_uint_fast64_t *c, uint64_t v)
{
	uint64_t cur = stats_get(c);

	while (v > cur && !atomic_compare_exchange_weak_explicit(
				  c, &cur, v, memory_order_relaxed, memory_order_relaxed))
		;
}

const char *stats_malformed_name(enum malformed_reason r);

/* "ringbuf_full", "map_full", "parse"; "unknown" past FS_LOSS_MAX. */
const char *stats_kernel_loss_name(enum fs_loss_reason r);

/* "stats: events_flows=... rows_flows=... ..." (key=value, one line). */
int stats_format_line(const struct stats *s, char *buf, size_t len);

/* One counter, as the query side's stats table and /metrics take it
 * (query/stats_vtab.h's qstat_emit_fn, same type): name without the
 * flowstore_ prefix, labels as Prometheus writes them ('table="flows"', ""
 * when none), kind "counter" or "gauge". */
typedef void (*stats_emit_fn)(void *arg, const char *name, const char *labels,
			      const char *kind, const char *help, double value);

/* Call emit once per counter of the struct stats at ctx, in the order of
 * the Prometheus text. Thread-safe: reads the counters atomically, keeps no
 * state. Has the type of query/stats_vtab.h's qstat_source_fn. */
void stats_each(void *ctx, stats_emit_fn emit, void *arg);

/* Prometheus text exposition format (version 0.0.4). Returns the length
 * written, or the length needed if it did not fit (like snprintf). */
int stats_format_prometheus(const struct stats *s, char *buf, size_t len);

#endif /* FLOWSTORE_STATS_H */
