/*
 * The writer thread on real SQLite files with a settable clock: rollover
 * across a period boundary, at the row cap (a batch split across two
 * partitions), after an idle period, numbering after a restart, and sealing
 * of what it closed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "checkpointer.h"
#include "decode.h"
#include "schema.h"
#include "testlib.h"
#include "writer.h"

#define HOUR (3600LL * 1000000000LL)
#define T0 (1795003200LL * 1000000000LL) /* 2026-11-18T11:00:00Z, on the hour */

struct fixture {
	char *dir;
	struct test_clock clock;
	struct stats stats;
	struct batch_queue in, out;
	struct batch batch;
	struct sealer *sealer;
	struct writer *writer;
};

static void noop_done(void *ctx)
{
	(void)ctx;
}

static void start(struct fixture *f, int64_t now, uint64_t partition_rows)
{
	struct writer_config cfg = {
		.dir = f->dir, .period_ns = HOUR, .partition_rows = partition_rows,
		.clock = &f->clock.clock, .shutdown_retry_ms = 100,
	};

	test_clock_init(&f->clock, now);
	assert_int_equal(batch_queue_init(&f->in, 2), 0);
	assert_int_equal(batch_queue_init(&f->out, 2), 0);
	assert_int_equal(batch_init(&f->batch, 1000), 0);
	assert_int_equal(sealer_start(&f->clock.clock, &f->stats, &f->sealer), 0);
	assert_int_equal(writer_start(&cfg, &f->in, &f->out, noop_done, NULL, &f->stats,
				      f->sealer, &f->writer), 0);
}

static void stop(struct fixture *f)
{
	batch_queue_close(&f->in);
	writer_join(f->writer);
	sealer_wait_idle(f->sealer);
	sealer_stop(f->sealer);
	batch_destroy(&f->batch);
	batch_queue_destroy(&f->in);
	batch_queue_destroy(&f->out);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->dir = test_mkdtemp("test_writer");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	test_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

/* Write rows first..first+n-1 and wait until the writer is done with them. */
static void write_rows(struct fixture *f, uint64_t first, size_t n)
{
	enum malformed_reason why;

	f->batch.n = 0;
	for (size_t i = 0; i < n; i++) {
		struct fs_flow_event e = test_flow_event(first + i);

		assert_int_equal(decode_event(&e, sizeof(e), 0, decode_ifname_system,
					      &f->batch.rows[f->batch.n++], &why), 0);
	}
	batch_queue_push(&f->in, &f->batch);
	assert_ptr_equal(batch_queue_pop(&f->out, 10000), &f->batch);
}

static struct catalog scan(struct fixture *f)
{
	struct catalog c;

	assert_int_equal(catalog_scan(f->dir, &c), 0);
	return c;
}

static uint64_t flows_in(struct fixture *f, const char *name)
{
	char path[4096];
	struct partition_meta m;

	snprintf(path, sizeof(path), "%s/%s", f->dir, name);
	assert_int_equal(partition_read_meta(path, &m), 0);
	return m.tables[SCHEMA_FLOWS].rows;
}

static void test_period_rollover(void **state)
{
	struct fixture *f = *state;
	char name0[SCHEMA_NAME_LEN], name1[SCHEMA_NAME_LEN];
	struct catalog c;

	start(f, T0 + HOUR - 1000, 1000000);
	write_rows(f, 0, 100);
	atomic_store(&f->clock.now, T0 + HOUR + 5); /* the next hour */
	write_rows(f, 100, 50);
	sealer_wait_idle(f->sealer);

	c = scan(f);
	assert_int_equal(c.n, 2);
	partition_name_format(name0, sizeof(name0), T0, 0);
	partition_name_format(name1, sizeof(name1), T0 + HOUR, 0);
	assert_string_equal(c.entries[0].name, name0);
	assert_string_equal(c.entries[1].name, name1);
	/* The past hour's partition was sealed; the current one is open. */
	assert_int_equal(c.entries[0].status, CATALOG_SEALED);
	assert_int_equal(c.entries[0].needs_seal, 0);
	assert_int_equal(c.entries[1].status, CATALOG_OPEN);
	assert_int_equal(flows_in(f, name0), 100);
	assert_int_equal(flows_in(f, name1), 50);
	assert_int_equal(stats_get(&f->stats.rows_written[SCHEMA_FLOWS]), 150);
	assert_int_equal(stats_get(&f->stats.partitions_sealed), 1);
	catalog_free(&c);
	stop(f);
}

static void test_row_cap_splits_batch(void **state)
{
	struct fixture *f = *state;
	struct catalog c;

	start(f, T0 + 10, 25);
	write_rows(f, 0, 60);
	sealer_wait_idle(f->sealer);
	c = scan(f);
	assert_int_equal(c.n, 3);
	assert_int_equal(c.entries[0].seq, 0);
	assert_int_equal(c.entries[1].seq, 1);
	assert_int_equal(c.entries[2].seq, 2);
	assert_int_equal(flows_in(f, c.entries[0].name), 25);
	assert_int_equal(flows_in(f, c.entries[1].name), 25);
	assert_int_equal(flows_in(f, c.entries[2].name), 10);
	assert_int_equal(c.entries[0].status, CATALOG_SEALED);
	assert_int_equal(c.entries[1].status, CATALOG_SEALED);
	assert_int_equal(c.entries[2].status, CATALOG_OPEN);
	catalog_free(&c);
	stop(f);

	/* No row twice, none lost: the orig_ports 1024..1083 each appear once. */
	for (size_t i = 0; i < 3; i++) {
		char path[4096], name[SCHEMA_NAME_LEN];
		sqlite3 *db;
		sqlite3_stmt *st;

		partition_name_format(name, sizeof(name), T0, (unsigned)i);
		snprintf(path, sizeof(path), "%s/%s", f->dir, name);
		assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_prepare_v2(db, "SELECT min(orig_port), max(orig_port), count(DISTINCT orig_port) FROM flows", -1, &st, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int(st, 0), 1024 + 25 * (int)i);
		assert_int_equal(sqlite3_column_int(st, 1), 1024 + 25 * (int)i + (i < 2 ? 24 : 9));
		assert_int_equal(sqlite3_column_int(st, 2), i < 2 ? 25 : 10);
		sqlite3_finalize(st);
		sqlite3_close(db);
	}
}

static void test_restart_numbers_after_existing(void **state)
{
	struct fixture *f = *state;
	struct catalog c;

	start(f, T0 + 10, 10);
	write_rows(f, 0, 20); /* seq 0 and 1 */
	stop(f);
	memset(&f->stats, 0, sizeof(f->stats));
	start(f, T0 + 20, 10);
	write_rows(f, 20, 5); /* a new run in the same hour: seq 2 */
	stop(f);
	c = scan(f);
	assert_int_equal(c.n, 3);
	assert_int_equal(c.entries[2].seq, 2);
	assert_int_equal(flows_in(f, c.entries[2].name), 5);
	catalog_free(&c);
}

/* Retention rolled seq 1 up and removed seq 0 and 1: a new run in the same
 * hour must not give either name again (seq 1 would count as rolled up). */
static void test_restart_skips_removed_names(void **state)
{
	struct fixture *f = *state;
	char raw[2][SCHEMA_NAME_LEN], path[4096];
	struct catalog c;
	uint64_t added;
	int done;

	start(f, T0 + 10, 10);
	write_rows(f, 0, 20); /* seq 0 and 1 */
	stop(f);
	for (unsigned i = 0; i < 2; i++)
		assert_int_equal(partition_name_format(raw[i], sizeof(raw[i]), T0, i), 0);
	snprintf(path, sizeof(path), "%s/%s", f->dir, raw[1]);
	assert_int_equal(rollup_file_apply(f->dir, SCHEMA_KIND_1M, 0, raw[1], path, 10,
					   "INSERT INTO flows_1m(ts, proto, flows, connections,"
					   " failed_connections) SELECT ts, proto, 1, 0, 0"
					   " FROM src.flows WHERE ts >= ?1 AND ts < ?2",
					   T0 + 30, 5000, &added, &done), 0);
	assert_int_equal(added, 10);
	for (unsigned i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", f->dir, raw[i]);
		assert_int_equal(unlink(path), 0);
	}
	memset(&f->stats, 0, sizeof(f->stats));
	start(f, T0 + 40, 10);
	write_rows(f, 20, 5);
	stop(f);
	c = scan(f);
	assert_int_equal(c.n, 2); /* the new partition and the 1m file */
	assert_int_equal(c.entries[0].kind, SCHEMA_KIND_RAW);
	assert_int_equal(c.entries[0].seq, 2);
	assert_int_equal(flows_in(f, c.entries[0].name), 5);
	catalog_free(&c);
}

static void test_idle_period_end_seals(void **state)
{
	struct fixture *f = *state;
	struct catalog c;

	start(f, T0 + HOUR - 10, 1000);
	write_rows(f, 0, 3);
	atomic_store(&f->clock.now, T0 + HOUR + 10);
	/* No more batches: the writer's idle tick closes and seals it. */
	for (int i = 0; i < 100 && stats_get(&f->stats.partitions_sealed) == 0; i++)
		usleep(50000);
	c = scan(f);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.entries[0].status, CATALOG_SEALED);
	catalog_free(&c);
	stop(f);
}

static void test_failed_write_is_kept_and_retried(void **state)
{
	struct fixture *f = *state;
	char *gone;

	if (asprintf(&gone, "%s/missing", f->dir) < 0)
		abort();
	free(f->dir);
	f->dir = gone; /* does not exist: every create fails */
	start(f, T0, 1000);
	f->batch.n = 0;
	{
		struct fs_flow_event e = test_flow_event(1);
		enum malformed_reason why;

		assert_int_equal(decode_event(&e, sizeof(e), 0, decode_ifname_system,
					      &f->batch.rows[f->batch.n++], &why), 0);
	}
	batch_queue_push(&f->in, &f->batch);
	/* The batch is kept and retried, not returned. */
	assert_null(batch_queue_pop(&f->out, 400));
	assert_true(stats_get(&f->stats.write_errors) >= 1);
	/* Space comes back: the batch is written. */
	assert_int_equal(mkdir(f->dir, 0755), 0);
	assert_ptr_equal(batch_queue_pop(&f->out, 10000), &f->batch);
	assert_int_equal(stats_get(&f->stats.rows_written[SCHEMA_FLOWS]), 1);
	assert_int_equal(stats_get(&f->stats.rows_lost), 0);
	stop(f);
	*strrchr(f->dir, '/') = 0;
}

static void test_shutdown_gives_up_after_retrying(void **state)
{
	struct fixture *f = *state;
	struct fs_flow_event e = test_flow_event(1);
	enum malformed_reason why;
	char *gone;

	if (asprintf(&gone, "%s/missing", f->dir) < 0)
		abort();
	free(f->dir);
	f->dir = gone;
	start(f, T0, 1000);
	f->batch.n = 0;
	assert_int_equal(decode_event(&e, sizeof(e), 0, decode_ifname_system,
				      &f->batch.rows[f->batch.n++], &why), 0);
	batch_queue_push(&f->in, &f->batch);
	batch_queue_close(&f->in);
	/* Retried for shutdown_retry_ms, then counted as lost, never a hang. */
	assert_ptr_equal(batch_queue_pop(&f->out, 10000), &f->batch);
	assert_int_equal(stats_get(&f->stats.rows_lost), 1);
	assert_int_equal(stats_get(&f->stats.rows_written[SCHEMA_FLOWS]), 0);
	stop(f);
	*strrchr(f->dir, '/') = 0;
}

/*
 * A query reading the partition when it is closed: the seal is refused
 * (the WAL cannot be left while a reader holds it) and retried until the
 * reader is gone, then done; nothing is lost in between.
 */
static void test_seal_waits_for_readers(void **state)
{
	struct fixture *f = *state;
	struct catalog c;
	char path[4096];
	sqlite3 *reader;
	sqlite3_stmt *st;

	start(f, T0 + 5, 1000000);
	write_rows(f, 0, 10);
	c = scan(f);
	assert_int_equal(c.n, 1);
	snprintf(path, sizeof(path), "%s/%s", f->dir, c.entries[0].name);
	catalog_free(&c);
	/* a reader in the middle of a statement, as a query over the open
	 * partition would be */
	assert_int_equal(sqlite3_open_v2(path, &reader, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(reader, "SELECT ts FROM flows", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);

	atomic_store(&f->clock.now, T0 + HOUR + 5); /* the period ends: close, submit */
	write_rows(f, 10, 1);
	/* the checkpoint waits out its busy timeout (5 s) before refusing */
	for (int i = 0; i < 1000 && stats_get(&f->stats.seal_busy_retries) < 2; i++)
		usleep(20000);
	assert_true(stats_get(&f->stats.seal_busy_retries) >= 2);
	assert_int_equal(stats_get(&f->stats.partitions_sealed), 0);
	assert_int_equal(stats_get(&f->stats.seal_errors), 0);

	sqlite3_finalize(st);
	sqlite3_close(reader);
	stop(f); /* waits for the sealer to be idle */
	assert_int_equal(stats_get(&f->stats.partitions_sealed), 1);
	assert_int_equal(stats_get(&f->stats.seal_errors), 0);
	c = scan(f);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.entries[0].status, CATALOG_SEALED);
	assert_int_equal(flows_in(f, c.entries[0].name), 10);
	catalog_free(&c);
}

/* The open partition's WAL is copied back by the checkpointer thread, not
 * by the writer; a clean exit still leaves no WAL behind. */
static void test_checkpoints_off_the_writer(void **state)
{
	struct fixture *f = *state;
	struct catalog c;
	char path[4096], wal[4200];
	uint64_t rows = 0;
	struct stat st;

	start(f, T0 + 5, 10000000);
	/* until the WAL has passed the threshold and a checkpoint has run */
	for (int i = 0; i < 400 && stats_get(&f->stats.checkpoints) == 0; i++) {
		write_rows(f, rows, 1000);
		rows += 1000;
		if (stats_get(&f->stats.wal_pages_max) >= CHECKPOINT_PAGES)
			usleep(10000);
	}
	assert_true(stats_get(&f->stats.checkpoints) >= 1);
	assert_int_equal(stats_get(&f->stats.checkpoint_errors), 0);
	assert_true(stats_get(&f->stats.wal_pages_max) >= CHECKPOINT_PAGES);
	c = scan(f);
	assert_int_equal(c.n, 1);
	snprintf(path, sizeof(path), "%s/%s", f->dir, c.entries[0].name);
	catalog_free(&c);
	snprintf(wal, sizeof(wal), "%s-wal", path);
	assert_int_equal(stat(wal, &st), 0);
	stop(f);
	assert_int_equal(stat(wal, &st), -1); /* the writer's close was the last */
	assert_int_equal(flows_in(f, strrchr(path, '/') + 1), rows);
	assert_int_equal(stats_get(&f->stats.rows_written[SCHEMA_FLOWS]), rows);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_period_rollover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_row_cap_splits_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_numbers_after_existing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_skips_removed_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_period_end_seals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_write_is_kept_and_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown_gives_up_after_retrying, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seal_waits_for_readers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoints_off_the_writer, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
