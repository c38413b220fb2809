/*
 * Batching and the bounded queue, through the real pipeline and writer:
 * batches leave at batch_rows or after batch_ms; when the writer cannot keep
 * up the pipeline holds exactly its batches' worth of rows, counts every
 * event it drops, tells the source there is no room, and says so again when
 * room returns; every accepted row is written.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "batch.h"
#include "pipeline.h"
#include "testlib.h"

static void test_queue_fifo_close(void **state)
{
	struct batch_queue q;
	struct batch a, b;

	(void)state;
	assert_int_equal(batch_queue_init(&q, 2), 0);
	assert_null(batch_queue_try_pop(&q));
	assert_null(batch_queue_pop(&q, 10)); /* times out */
	batch_queue_push(&q, &a);
	batch_queue_push(&q, &b);
	assert_int_equal(batch_queue_count(&q), 2);
	assert_ptr_equal(batch_queue_pop(&q, -1), &a);
	batch_queue_close(&q);
	assert_true(batch_queue_closed(&q));
	assert_ptr_equal(batch_queue_pop(&q, -1), &b); /* what is left still comes out */
	assert_null(batch_queue_pop(&q, -1));          /* then NULL, without waiting */
	batch_queue_destroy(&q);
}

struct fixture {
	uv_loop_t loop;
	char *dir;
	char *data_dir;
	struct stats stats;
	struct sealer *sealer;
	struct pipeline p;
	int room_calls;
	uint64_t next;
};

static void on_room(void *ctx)
{
	((struct fixture *)ctx)->room_calls++;
}

static void start(struct fixture *f, const char *data_dir, size_t batch_rows,
		  uint64_t batch_ms, size_t queue_batches)
{
	struct pipeline_config pcfg = {
		.batch_rows = batch_rows, .batch_ms = batch_ms,
		.queue_batches = queue_batches, .ifname = decode_ifname_system,
	};
	struct writer_config wcfg = {
		.dir = data_dir, .period_ns = 3600LL * 1000000000LL,
		.partition_rows = 1000000, .clock = &clock_system, .shutdown_retry_ms = 100,
	};

	memset(f, 0, sizeof(*f));
	uv_loop_init(&f->loop);
	f->data_dir = (char *)data_dir;
	assert_int_equal(sealer_start(&clock_system, &f->stats, &f->sealer), 0);
	assert_int_equal(pipeline_init(&f->p, &f->loop, &pcfg, &wcfg, f->sealer, &f->stats), 0);
	f->p.on_room = on_room;
	f->p.room_ctx = f;
}

static void closed(struct pipeline *p)
{
	(void)p;
}

static void stop(struct fixture *f)
{
	pipeline_close(&f->p, closed);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	sealer_stop(f->sealer);
	assert_int_equal(uv_loop_close(&f->loop), 0);
}

static void feed(struct fixture *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct fs_flow_event e = test_flow_event(f->next++);

		pipeline_event(&f->p, &e, sizeof(e), 0);
	}
}

/* Run the loop until cond holds or ~5 s pass. */
#define RUN_UNTIL(f, cond)                                                    \
	do {                                                                  \
		for (int i_ = 0; i_ < 500 && !(cond); i_++) {                 \
			uv_run(&(f)->loop, UV_RUN_NOWAIT);                    \
			usleep(10000);                                        \
		}                                                             \
	} while (0)

static void test_batch_rows_threshold(void **state)
{
	char *dir = test_mkdtemp("test_batch");
	struct fixture f;

	(void)state;
	start(&f, dir, 10, 60000, 4);
	feed(&f, 9);
	assert_int_equal(stats_get(&f.stats.batches_queued), 0);
	feed(&f, 1);
	assert_int_equal(stats_get(&f.stats.batches_queued), 1); /* full: handed at once */
	feed(&f, 25);
	assert_int_equal(stats_get(&f.stats.batches_queued), 3);
	RUN_UNTIL(&f, stats_get(&f.stats.rows_written[SCHEMA_FLOWS]) == 30);
	assert_int_equal(stats_get(&f.stats.rows_written[SCHEMA_FLOWS]), 30);
	stop(&f); /* the partial batch of 5 is written at shutdown */
	assert_int_equal(stats_get(&f.stats.rows_written[SCHEMA_FLOWS]), 35);
	assert_int_equal(stats_get(&f.stats.events_in[SCHEMA_FLOWS]), 35);
	test_rmtree(dir);
	free(dir);
}

static void test_batch_ms_threshold(void **state)
{
	char *dir = test_mkdtemp("test_batch");
	struct fixture f;

	(void)state;
	start(&f, dir, 1000, 200, 4);
	feed(&f, 3);
	uv_run(&f.loop, UV_RUN_NOWAIT);
	assert_int_equal(stats_get(&f.stats.batches_queued), 0); /* not before its time */
	RUN_UNTIL(&f, stats_get(&f.stats.rows_written[SCHEMA_FLOWS]) == 3);
	assert_int_equal(stats_get(&f.stats.batches_queued), 1);
	assert_int_equal(stats_get(&f.stats.rows_written[SCHEMA_FLOWS]), 3);
	stop(&f);
	test_rmtree(dir);
	free(dir);
}

static void test_full_queue_drops_and_counts(void **state)
{
	char *dir = test_mkdtemp("test_batch");
	char *missing;
	struct fixture f;

	(void)state;
	/* The writer cannot create its partition until the dir exists. */
	if (asprintf(&missing, "%s/later", dir) < 0)
		abort();
	start(&f, missing, 10, 60000, 2);
	feed(&f, 100);
	/* 3 batches of 10 held (2 queued + 1 the writer is retrying... or
	 * filling): everything else counted as dropped. */
	assert_int_equal(stats_get(&f.stats.events_in[SCHEMA_FLOWS]), 30);
	assert_int_equal(stats_get(&f.stats.dropped_queue_full), 70);
	assert_false(pipeline_has_room(&f.p));
	assert_int_equal(f.room_calls, 0);

	assert_int_equal(mkdir(missing, 0755), 0); /* the disk is back */
	RUN_UNTIL(&f, f.room_calls > 0);
	assert_true(f.room_calls > 0);
	assert_true(pipeline_has_room(&f.p));
	feed(&f, 10);
	stop(&f);
	/* Every accepted row written, every refused one counted: nothing else. */
	assert_int_equal(stats_get(&f.stats.rows_written[SCHEMA_FLOWS]), 40);
	assert_int_equal(stats_get(&f.stats.events_in[SCHEMA_FLOWS]) +
				 stats_get(&f.stats.dropped_queue_full),
			 110);
	assert_int_equal(stats_get(&f.stats.rows_lost), 0);
	test_rmtree(dir);
	free(missing);
	free(dir);
}

static void test_malformed_counted_not_written(void **state)
{
	char *dir = test_mkdtemp("test_batch");
	struct fs_flow_event e = test_flow_event(0);
	struct fixture f;

	(void)state;
	start(&f, dir, 100, 60000, 2);
	pipeline_event(&f.p, &e, 8, 0);             /* short */
	pipeline_event(&f.p, &e, sizeof(e) - 1, 0); /* wrong size */
	e.hdr.type = 42;
	pipeline_event(&f.p, &e, sizeof(e), 0);     /* unknown type */
	feed(&f, 2);
	stop(&f);
	assert_int_equal(stats_get(&f.stats.malformed[MALFORMED_SHORT]), 1);
	assert_int_equal(stats_get(&f.stats.malformed[MALFORMED_SIZE]), 1);
	assert_int_equal(stats_get(&f.stats.malformed[MALFORMED_TYPE]), 1);
	assert_int_equal(stats_get(&f.stats.rows_written[SCHEMA_FLOWS]), 2);
	test_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_queue_fifo_close),
		cmocka_unit_test(test_batch_rows_threshold),
		cmocka_unit_test(test_batch_ms_threshold),
		cmocka_unit_test(test_full_queue_drops_and_counts),
		cmocka_unit_test(test_malformed_counted_not_written),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
