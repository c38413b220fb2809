/*
 * checkpointer.c: see checkpointer.h.
 *
 * Invariants:
 *  1. Only this thread touches `conn` (the checkpointing connection); the
 *     others only set the request fields under `lock`.
 *  2. A request names a path: a request for a path other than the open
 *     connection's closes that connection first, so the thread holds at
 *     most one file, and never one the writer has forgotten.
 *  3. A failed checkpoint is counted and logged (at most once a minute);
 *     the next commit past the threshold tries again. Nothing is lost: the
 *     pages stay in the WAL, which SQLite reads and recovers.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "checkpointer.h"
#include "clock.h"
#include "log.h"
#include "schema.h"

#define WARN_INTERVAL_NS (60LL * 1000000000LL)

struct checkpointer {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	/* requests, under lock */
	char *want;    /* the path to checkpoint; NULL: none */
	int want_pages; /* its WAL's pages when asked */
	char *forget;  /* the path to let go of; NULL: none */
	bool stopping;
	/* this thread's */
	struct partition_ckpt *conn;
	int64_t last_warning;
	struct stats *stats;
};

static void set_path(char **slot, const char *path)
{
	char *copy = path ? strdup(path) : NULL;

	free(*slot);
	*slot = copy; /* NULL on ENOMEM: the request is dropped, the next one comes */
}

void checkpointer_note(struct checkpointer *c, const char *path, int wal_pages)
{
	if (!c)
		return;
	stats_max(&c->stats->wal_pages_max, wal_pages > 0 ? (uint64_t)wal_pages : 0);
	if (wal_pages < CHECKPOINT_PAGES)
		return;
	pthread_mutex_lock(&c->lock);
	if (!c->want || strcmp(c->want, path)) /* else: already asked */
		set_path(&c->want, path);
	c->want_pages = wal_pages;
	pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->lock);
}

void checkpointer_forget(struct checkpointer *c, const char *path)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	if (c->want && !strcmp(c->want, path))
		set_path(&c->want, NULL);
	set_path(&c->forget, path);
	pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->lock);
}

static void let_go(struct checkpointer *c)
{
	partition_ckpt_close(c->conn);
	c->conn = NULL;
}

static void checkpoint(struct checkpointer *c, const char *path, int pages)
{
	int64_t t0 = clock_monotonic(&clock_system), t;
	int frames = -1, copied = -1, err = 0;
	bool restart = pages >= CHECKPOINT_RESTART_PAGES;

	if (c->conn && strcmp(partition_ckpt_path(c->conn), path))
		let_go(c);
	if (!c->conn)
		err = partition_ckpt_open(path, &c->conn);
	if (!err)
		err = partition_ckpt_run(c->conn, restart, &frames, &copied);
	t = clock_monotonic(&clock_system) - t0;
	if (err) {
		stats_add(&c->stats->checkpoint_errors, 1);
		let_go(c);
		if (!c->last_warning || t0 - c->last_warning >= WARN_INTERVAL_NS) {
			c->last_warning = t0;
			LOG(LOG_WARN, "checkpoint of %s failed: %s (%s); its WAL keeps the rows, retrying at the next commit",
			    path, schema_last_error(), strerror(-err));
		}
		return;
	}
	stats_add(&c->stats->checkpoints, 1);
	stats_add(&c->stats->checkpoint_ns_total, (uint64_t)t);
	stats_max(&c->stats->checkpoint_ns_max, (uint64_t)t);
	if (restart)
		stats_add(&c->stats->checkpoint_restarts, 1);
	LOG(LOG_DEBUG, "%s checkpoint of %s: %d of %d WAL pages copied in %.1f ms",
	    restart ? "restart" : "passive", path, copied, frames, (double)t / 1e6);
}

static void *checkpointer_main(void *arg)
{
	struct checkpointer *c = arg;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		char *want, *forget;
		int pages;

		while (!c->want && !c->forget && !c->stopping)
			pthread_cond_wait(&c->wake, &c->lock);
		if (c->stopping)
			break;
		want = c->want;
		pages = c->want_pages;
		forget = c->forget;
		c->want = c->forget = NULL;
		pthread_mutex_unlock(&c->lock);

		if (forget && c->conn && !strcmp(partition_ckpt_path(c->conn), forget))
			let_go(c);
		if (want)
			checkpoint(c, want, pages);
		free(want);
		free(forget);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	let_go(c);
	return NULL;
}

int checkpointer_start(struct stats *stats, struct checkpointer **out)
{
	struct checkpointer *c = calloc(1, sizeof(*c));
	int err;

	if (!c)
		return -ENOMEM;
	c->stats = stats;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->wake, NULL);
	err = pthread_create(&c->thread, NULL, checkpointer_main, c);
	if (err) {
		pthread_cond_destroy(&c->wake);
		pthread_mutex_destroy(&c->lock);
		free(c);
		return -err;
	}
	*out = c;
	return 0;
}

void checkpointer_stop(struct checkpointer *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	free(c->want);
	free(c->forget);
	pthread_cond_destroy(&c->wake);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
