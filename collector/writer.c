/*
 * The writer thread (see writer.h).
 *
 * Invariants:
 *  - At most one partition is open, and only this thread touches it.
 *  - A row is counted in stats->rows_written only after its transaction
 *    committed, so the counters always equal the rows on disk.
 *  - A partition is handed to the sealer only after it is closed here.
 *  - This thread never checkpoints the WAL of the open partition (the
 *    fsync()s would stop it for as long as the disk takes): the writer's
 *    own checkpointer thread does, asked after each commit.
 */
#include "writer.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checkpointer.h"
#include "log.h"
#include "schema.h"

#define WARN_INTERVAL_NS (60LL * 1000000000LL)
#define MAX_FAILURES_PER_PARTITION 3
#define IDLE_POLL_MS 1000

struct writer {
	pthread_t thread;
	struct writer_config cfg;
	struct batch_queue *in, *out;
	void (*batch_done)(void *ctx);
	void *ctx;
	struct stats *stats;
	struct sealer *sealer;
	struct checkpointer *checkpointer;

	struct partition *part;
	int64_t last_period; /* period and seq of the last partition opened */
	unsigned last_seq;
	bool have_last;

	unsigned failures;          /* consecutive, on the current write */
	unsigned partition_failures;
	int64_t failing_since;      /* monotonic, 0 when writing works */
	int64_t last_warning;       /* monotonic */
};

static int64_t mono_now(void)
{
	return clock_monotonic(&clock_system);
}

/* Close the open partition and queue it for sealing. */
static void partition_retire(struct writer *w, bool seal)
{
	char path[4096];

	if (!w->part)
		return;
	strncpy(path, partition_path(w->part), sizeof(path) - 1);
	path[sizeof(path) - 1] = 0;
	checkpointer_forget(w->checkpointer, path);
	/* Sealed next: the seal copies the WAL back, off this thread. */
	if (seal && w->sealer)
		partition_close_for_seal(w->part);
	else
		partition_close(w->part);
	w->part = NULL;
	w->partition_failures = 0;
	if (seal && w->sealer)
		sealer_submit(w->sealer, path);
}

static int partition_open_next(struct writer *w, int64_t now)
{
	int64_t period = partition_period_start(now, w->cfg.period_ns);
	unsigned seq = 0;
	int err = sealer_room(w->sealer);

	if (err)
		return err; /* at --max-disk: wait for retention, as on a full disk */
	/* A name is never given twice (catalog_next_seq says why): within a
	 * period this writer counts on; a period it has not written yet may
	 * have names from an earlier run, removed files' among them. */
	if (w->have_last && w->last_period == period)
		seq = w->last_seq + 1;
	else if ((err = catalog_next_seq(w->cfg.dir, period, &seq)))
		return err;
	do {
		err = partition_create(w->cfg.dir, period, w->cfg.period_ns, seq, now, &w->part);
	} while (err == -EEXIST && ++seq);
	if (err)
		return err;
	err = partition_defer_checkpoints(w->part);
	if (err) { /* cannot happen on a fresh partition; keep SQLite's own then */
		LOG(LOG_WARN, "checkpoints of %s stay on the writer: %s", partition_path(w->part),
		    schema_last_error());
	}
	w->last_period = period;
	w->last_seq = seq;
	w->have_last = true;
	stats_add(&w->stats->partitions_created, 1);
	LOG(LOG_INFO, "writing %s", partition_path(w->part));
	return 0;
}

/* Roll over if the period ended or the row cap is reached; open if none. */
static int partition_ensure(struct writer *w)
{
	int64_t now = clock_realtime(w->cfg.clock);

	if (w->part && (now >= partition_period_end(w->part) ||
			partition_rows(w->part) >= w->cfg.partition_rows))
		partition_retire(w, true);
	if (!w->part)
		return partition_open_next(w, now);
	return 0;
}

/* Write rows [*done, ...) up to the row cap in one transaction. */
static int write_chunk(struct writer *w, const struct batch *b, size_t *done)
{
	uint64_t per_table[SCHEMA_NTABLES] = { 0 };
	size_t n, i;
	int err;

	err = partition_ensure(w);
	if (err)
		return err;
	n = b->n - *done;
	if (n > w->cfg.partition_rows - partition_rows(w->part))
		n = w->cfg.partition_rows - partition_rows(w->part);
	err = partition_begin(w->part);
	for (i = 0; !err && i < n; i++) {
		const struct schema_row *row = &b->rows[*done + i];

		err = partition_add(w->part, row);
		per_table[row->table]++;
	}
	if (!err)
		err = partition_commit(w->part);
	if (err) {
		partition_rollback(w->part);
		return err;
	}
	for (int t = 0; t < SCHEMA_NTABLES; t++)
		stats_add(&w->stats->rows_written[t], per_table[t]);
	*done += n;
	checkpointer_note(w->checkpointer, partition_path(w->part), partition_wal_frames(w->part));
	return 0;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* A write failed: decide whether to retry. False means give the rows up. */
static bool write_failed(struct writer *w, int err)
{
	int64_t now = mono_now();

	stats_add(&w->stats->write_errors, 1);
	if (err == -ENOSPC || err == -EDQUOT)
		sealer_kick(w->sealer); /* retention frees space now, not at its next turn */
	if (!w->failing_since)
		w->failing_since = now;
	w->failures++;
	if (!w->last_warning || now - w->last_warning >= WARN_INTERVAL_NS) {
		w->last_warning = now;
		LOG(LOG_WARN, "write failed: %s (%s); keeping the batch and retrying, %llu events dropped so far",
		    err == -EDQUOT ? "the data dir is at --max-disk, waiting for retention"
				   : schema_last_error(),
		    strerror(-err), (unsigned long long)stats_get(&w->stats->dropped_queue_full));
	}
	if (w->part && err != -ENOSPC && err != -EDQUOT && ++w->partition_failures >= MAX_FAILURES_PER_PARTITION) {
		LOG(LOG_ERROR, "leaving %s after %u failed writes; continuing in a new partition",
		    partition_path(w->part), w->partition_failures);
		partition_retire(w, false);
	}
	if (batch_queue_closed(w->in) &&
	    now - w->failing_since >= (int64_t)w->cfg.shutdown_retry_ms * 1000000)
		return false;
	sleep_ms(w->failures < 5 ? 100u << w->failures : 2000);
	return true;
}

static void write_batch(struct writer *w, const struct batch *b)
{
	int64_t t0 = mono_now();
	size_t done = 0;
	int err;

	while (done < b->n) {
		err = write_chunk(w, b, &done);
		if (!err)
			continue;
		if (!write_failed(w, err)) {
			LOG(LOG_ERROR, "giving up %zu rows at shutdown: %s", b->n - done,
			    schema_last_error());
			stats_add(&w->stats->rows_lost, b->n - done);
			break;
		}
	}
	if (w->failing_since && done == b->n)
		LOG(LOG_WARN, "writing works again after %u failed attempts", w->failures);
	w->failures = 0;
	w->failing_since = 0;
	stats_add(&w->stats->batches_committed, 1);
	stats_add(&w->stats->commit_ns_total, (uint64_t)(mono_now() - t0));
	stats_max(&w->stats->commit_ns_max, (uint64_t)(mono_now() - t0));
}

/* No batch for a while: seal a partition whose period has ended. */
static void idle_tick(struct writer *w)
{
	if (w->part && clock_realtime(w->cfg.clock) >= partition_period_end(w->part))
		partition_retire(w, true);
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct batch *b;

	for (;;) {
		b = batch_queue_pop(w->in, IDLE_POLL_MS);
		if (!b) {
			if (batch_queue_closed(w->in))
				break;
			idle_tick(w);
			continue;
		}
		atomic_store(&w->stats->queue_depth, batch_queue_count(w->in));
		write_batch(w, b);
		b->n = 0;
		batch_queue_push(w->out, b);
		w->batch_done(w->ctx);
	}
	/* The checkpointer lets go first, and retention (whose scan opens the
	 * partition to read its meta) waits, so that this close is the last
	 * one and copies the WAL back: a clean exit leaves no -wal file. */
	checkpointer_stop(w->checkpointer);
	w->checkpointer = NULL;
	sealer_hold_retention(w->sealer, true);
	partition_retire(w, false);
	sealer_hold_retention(w->sealer, false);
	return NULL;
}

int writer_start(const struct writer_config *cfg, struct batch_queue *in,
		 struct batch_queue *out, void (*batch_done)(void *ctx), void *ctx,
		 struct stats *stats, struct sealer *sealer, struct writer **out_w)
{
	struct writer *w = calloc(1, sizeof(*w));
	int err;

	if (!w)
		return -ENOMEM;
	w->cfg = *cfg;
	w->in = in;
	w->out = out;
	w->batch_done = batch_done;
	w->ctx = ctx;
	w->stats = stats;
	w->sealer = sealer;
	err = checkpointer_start(stats, &w->checkpointer);
	if (err) {
		free(w);
		return err;
	}
	err = pthread_create(&w->thread, NULL, writer_main, w);
	if (err) {
		checkpointer_stop(w->checkpointer);
		free(w);
		return -err;
	}
	*out_w = w;
	return 0;
}

void writer_join(struct writer *w)
{
	if (!w)
		return;
	pthread_join(w->thread, NULL);
	free(w);
}
