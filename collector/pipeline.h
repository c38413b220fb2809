/*
 * The pipeline: everything between a source and the writer thread, on the
 * libuv loop. A raw event is recorded (--record), decoded, appended to the
 * current batch; a batch goes to the writer when it holds batch_rows rows or
 * its first row is batch_ms old, whichever comes first.
 *
 * Ownership: the pipeline owns the batches, both queues, the writer and the
 * recording writer. pipeline_finish() hands over the last partial batch,
 * lets the writer commit everything queued and joins it; pipeline_close()
 * then closes the libuv handles and frees the rest in their close callback.
 */
#ifndef FLOWSTORE_PIPELINE_H
#define FLOWSTORE_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "batch.h"
#include "decode.h"
#include "owner_cache.h"
#include "recording.h"
#include "sealer.h"
#include "source.h"
#include "stats.h"
#include "writer.h"

struct pipeline_config {
	size_t batch_rows;
	uint64_t batch_ms;
	size_t queue_batches; /* batches that may wait for the writer */
	size_t owner_cache_size; /* sockets whose owner is remembered; 0: 65536 */
	decode_ifname_fn ifname;
};

struct pipeline {
	uv_loop_t *loop;
	struct pipeline_config cfg;
	struct stats *stats;

	struct batch *batches; /* queue_batches + 1 */
	size_t nbatches;
	struct batch_queue full, free;
	struct batch *current; /* NULL: no free batch, events are dropped */
	uv_timer_t flush_timer;
	uv_async_t batch_done;
	int handles_open;
	void (*closed)(struct pipeline *p);

	struct writer *writer;
	struct recording_writer *record;
	struct owner_cache owners; /* fills flows' pid/comm by socket cookie */

	void (*on_room)(void *ctx); /* room again after has_room() said no */
	void *room_ctx;
	void (*on_source_done)(void *ctx, int status);
	void *done_ctx;
};

int pipeline_init(struct pipeline *p, uv_loop_t *loop, const struct pipeline_config *cfg,
		  const struct writer_config *wcfg, struct sealer *sealer, struct stats *stats);

/* Take ownership of a recording writer: every raw event is written to it. */
void pipeline_set_record(struct pipeline *p, struct recording_writer *rec);

/* The sink a source feeds. */
struct source_sink pipeline_sink(struct pipeline *p);

void pipeline_event(struct pipeline *p, const void *data, size_t size, int64_t utc_offset_ns);
bool pipeline_has_room(struct pipeline *p);

/* Hand the current batch to the writer now, if it holds any row. */
void pipeline_flush(struct pipeline *p);

/* Flush, close the queue, wait until the writer committed everything. Blocks
 * the loop: call it once, at shutdown, after the source stopped. */
void pipeline_finish(struct pipeline *p);

/* Close the handles; `closed` is called when the pipeline may be freed. */
void pipeline_close(struct pipeline *p, void (*closed)(struct pipeline *p));

#endif /* FLOWSTORE_PIPELINE_H */
