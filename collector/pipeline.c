/*
 * The pipeline on the loop thread (see pipeline.h).
 *
 * Batches cycle: free queue → `current` (filled here) → full queue → writer
 * → free queue. The writer wakes the loop through `batch_done` (an
 * uv_async_t, so wakeups coalesce) when it returns a batch.
 */
#include "pipeline.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static bool take_free(struct pipeline *p)
{
	if (!p->current)
		p->current = batch_queue_try_pop(&p->free);
	return p->current != NULL;
}

static void hand_off(struct pipeline *p)
{
	uv_timer_stop(&p->flush_timer);
	batch_queue_push(&p->full, p->current);
	stats_add(&p->stats->batches_queued, 1);
	p->current = NULL;
	take_free(p);
}

void pipeline_flush(struct pipeline *p)
{
	if (p->current && p->current->n)
		hand_off(p);
}

static void on_flush_timer(uv_timer_t *t)
{
	pipeline_flush(t->data);
}

static void on_batch_done(uv_async_t *a)
{
	struct pipeline *p = a->data;

	if (take_free(p) && p->on_room)
		p->on_room(p->room_ctx);
}

/* Called on the writer thread. */
static void writer_batch_done(void *ctx)
{
	struct pipeline *p = ctx;

	uv_async_send(&p->batch_done);
}

static void record_event(struct pipeline *p, const void *data, size_t size, int64_t off)
{
	if (recording_write(p->record, data, size, off) == 0)
		return;
	if (!stats_get(&p->stats->record_errors))
		LOG(LOG_ERROR, "cannot write the recording: %s; recording stops", strerror(errno));
	stats_add(&p->stats->record_errors, 1);
	recording_writer_close(p->record);
	p->record = NULL;
}

void pipeline_event(struct pipeline *p, const void *data, size_t size, int64_t utc_offset_ns)
{
	enum malformed_reason reason;
	struct schema_row *row;

	if (p->record)
		record_event(p, data, size, utc_offset_ns);
	if (decode_is_sock_owner(data, size)) { /* no row: needs no batch room */
		struct decode_owner o;

		if (decode_sock_owner(data, size, &o, &reason)) {
			stats_add(&p->stats->malformed[reason], 1);
			return;
		}
		owner_cache_learn(&p->owners, o.sock_cookie, o.pid, o.comm);
		stats_add(&p->stats->owners_in, 1);
		return;
	}
	if (!take_free(p)) {
		stats_add(&p->stats->dropped_queue_full, 1);
		return;
	}
	row = &p->current->rows[p->current->n];
	if (decode_event(data, size, utc_offset_ns, p->cfg.ifname, row, &reason)) {
		stats_add(&p->stats->malformed[reason], 1);
		return;
	}
	owner_cache_apply(&p->owners, row);
	stats_add(&p->stats->events_in[row->table], 1);
	if (p->current->n++ == 0)
		uv_timer_start(&p->flush_timer, on_flush_timer, p->cfg.batch_ms, 0);
	if (batch_full(p->current))
		hand_off(p);
}

bool pipeline_has_room(struct pipeline *p)
{
	return take_free(p);
}

static void sink_event(void *ctx, const void *data, size_t size, int64_t off)
{
	pipeline_event(ctx, data, size, off);
}

static bool sink_has_room(void *ctx)
{
	return pipeline_has_room(ctx);
}

static void sink_done(void *ctx, int status)
{
	struct pipeline *p = ctx;

	if (p->on_source_done)
		p->on_source_done(p->done_ctx, status);
}

struct source_sink pipeline_sink(struct pipeline *p)
{
	return (struct source_sink){
		.event = sink_event,
		.has_room = sink_has_room,
		.done = sink_done,
		.ctx = p,
	};
}

static void free_batches(struct pipeline *p)
{
	for (size_t i = 0; i < p->nbatches; i++)
		batch_destroy(&p->batches[i]);
	free(p->batches);
	p->batches = NULL;
}

static int alloc_batches(struct pipeline *p)
{
	p->nbatches = p->cfg.queue_batches + 1;
	p->batches = calloc(p->nbatches, sizeof(*p->batches));
	if (!p->batches)
		return -ENOMEM;
	for (size_t i = 0; i < p->nbatches; i++) {
		if (batch_init(&p->batches[i], p->cfg.batch_rows)) {
			free_batches(p);
			return -ENOMEM;
		}
	}
	return 0;
}

int pipeline_init(struct pipeline *p, uv_loop_t *loop, const struct pipeline_config *cfg,
		  const struct writer_config *wcfg, struct sealer *sealer, struct stats *stats)
{
	int err;

	memset(p, 0, sizeof(*p));
	p->loop = loop;
	p->cfg = *cfg;
	p->stats = stats;
	err = alloc_batches(p);
	if (err)
		return err;
	err = owner_cache_init(&p->owners, cfg->owner_cache_size ? cfg->owner_cache_size : 65536);
	if (err)
		goto fail_batches;
	if ((err = batch_queue_init(&p->full, p->nbatches)) ||
	    (err = batch_queue_init(&p->free, p->nbatches)))
		goto fail_batches;
	for (size_t i = 1; i < p->nbatches; i++)
		batch_queue_push(&p->free, &p->batches[i]);
	p->current = &p->batches[0];
	err = writer_start(wcfg, &p->full, &p->free, writer_batch_done, p, stats, sealer,
			   &p->writer);
	if (err)
		goto fail_queues;
	uv_timer_init(loop, &p->flush_timer);
	uv_async_init(loop, &p->batch_done, on_batch_done);
	p->flush_timer.data = p->batch_done.data = p;
	p->handles_open = 2;
	return 0;

fail_queues:
	batch_queue_destroy(&p->free);
	batch_queue_destroy(&p->full);
fail_batches:
	owner_cache_destroy(&p->owners);
	free_batches(p);
	return err;
}

void pipeline_set_record(struct pipeline *p, struct recording_writer *rec)
{
	p->record = rec;
}

void pipeline_finish(struct pipeline *p)
{
	if (!p->writer)
		return;
	pipeline_flush(p);
	batch_queue_close(&p->full);
	writer_join(p->writer);
	p->writer = NULL;
	if (p->record && recording_writer_close(p->record))
		LOG(LOG_ERROR, "the recording may be incomplete: %s", strerror(errno));
	p->record = NULL;
}

static void on_handle_closed(uv_handle_t *h)
{
	struct pipeline *p = h->data;

	if (--p->handles_open)
		return;
	batch_queue_destroy(&p->free);
	batch_queue_destroy(&p->full);
	owner_cache_destroy(&p->owners);
	free_batches(p);
	if (p->closed)
		p->closed(p);
}

void pipeline_close(struct pipeline *p, void (*closed)(struct pipeline *p))
{
	pipeline_finish(p);
	p->closed = closed;
	uv_close((uv_handle_t *)&p->flush_timer, on_handle_closed);
	uv_close((uv_handle_t *)&p->batch_done, on_handle_closed);
}
