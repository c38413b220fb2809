/*
 * The writer thread: takes full batches, commits each in one transaction to
 * the open partition, rolls over to a new partition when the period ends or
 * the row cap is reached (a batch may be split across the two, each part
 * committed atomically), hands closed partitions to the sealer, and returns
 * emptied batches to the loop.
 *
 * Faults: a failed write is rolled back and the batch is kept and retried
 * with backoff (a full disk, a busy file), with a warning at most once a
 * minute; meanwhile the loop runs out of free batches and counts its drops.
 * A partition that keeps failing for any reason but a full disk is left
 * alone (the next start reports or seals it) and a new one is opened. After
 * the input queue is closed, a failing write is retried for
 * shutdown_retry_ms, then its rows are counted as lost.
 */
#ifndef FLOWSTORE_WRITER_H
#define FLOWSTORE_WRITER_H

#include <stdint.h>

#include "batch.h"
#include "clock.h"
#include "sealer.h"
#include "stats.h"

struct writer_config {
	const char *dir;
	int64_t period_ns;
	uint64_t partition_rows;
	const struct fs_clock *clock; /* realtime picks the partition */
	int shutdown_retry_ms;
};

struct writer;

/*
 * Start the thread. It pops from `in` and pushes emptied batches to `out`,
 * then calls batch_done(ctx) from the writer thread (e.g. uv_async_send).
 * cfg->dir and the queues must outlive the writer.
 */
int writer_start(const struct writer_config *cfg, struct batch_queue *in,
		 struct batch_queue *out, void (*batch_done)(void *ctx), void *ctx,
		 struct stats *stats, struct sealer *sealer, struct writer **out_w);

/* Wait for the thread to finish (after batch_queue_close(in)) and free it.
 * The open partition is closed, not sealed. */
void writer_join(struct writer *w);

#endif /* FLOWSTORE_WRITER_H */
