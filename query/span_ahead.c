/*
 * span_ahead.c: the read-ahead thread of unordered scans (span_ahead.h).
 *
 * Rows travel in batches: per row its tag and ncols cells (type, and an
 * integer, a double, or text/blob bytes in the batch's arena). A batch is
 * the producer's until it is published on the full list, then the query
 * thread's until it has read it and puts it back on the free list; the
 * lists, the done flag and the error are under the mutex. AHEAD_BATCHES
 * batches exist per cursor, so the producer waits (on `room`) when the
 * query thread is that far behind.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "span_ahead.h"

#define AHEAD_ROWS 512            /* rows per batch */
#define AHEAD_BATCHES 4           /* batches per cursor */
#define AHEAD_ARENA_MAX (1 << 20) /* bytes of text per batch before it is handed over */
#define AHEAD_THREADS_MAX 8       /* producers in the process: the cores, at most this */
#define AHEAD_PER_CURSOR 2        /* producers of one cursor, each reading its own partitions */
#define AHEAD_WAIT_NS 5000000     /* the query thread polls its interrupt this often */

struct cell {
	union {
		int64_t i;
		double d;
		size_t off; /* text, blob: in the arena */
	} v;
	int32_t len;
	int32_t type;
};

struct batch {
	struct batch *next;
	int nrows;
	size_t tags[AHEAD_ROWS];
	struct cell *cells; /* AHEAD_ROWS * ncols */
	char *arena;
	size_t used, cap;
};

struct ahead {
	const struct ahead_ops *ops;
	void *ctx;
	int ncols;
	pthread_t threads[AHEAD_PER_CURSOR];
	int nthreads;
	atomic_int stop;

	pthread_mutex_t lock;
	pthread_cond_t data, room;
	struct batch *full_head, *full_tail, *free_list;
	int done;         /* producers that have published their last batch */
	int rc;           /* SQLITE_DONE, or the first producer error (which stops all) */
	char msg[256];

	/* the query thread's */
	struct batch *cur;
	int row;
	struct batch *all[AHEAD_BATCHES];
};

static atomic_int running;

static int threads_max(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > AHEAD_THREADS_MAX ? AHEAD_THREADS_MAX : (int)n;
}

int ahead_progress(void *arg)
{
	return atomic_load_explicit(&((struct ahead *)arg)->stop, memory_order_relaxed);
}

/* Producer: a batch to fill, waiting for one; NULL when stopped. */
static struct batch *take_free(struct ahead *a)
{
	struct batch *b;

	pthread_mutex_lock(&a->lock);
	while (!a->free_list && !atomic_load(&a->stop))
		pthread_cond_wait(&a->room, &a->lock);
	b = atomic_load(&a->stop) ? NULL : a->free_list;
	if (b)
		a->free_list = b->next;
	pthread_mutex_unlock(&a->lock);
	if (b) {
		b->nrows = 0;
		b->used = 0;
		b->next = NULL;
	}
	return b;
}

static void publish(struct ahead *a, struct batch *b)
{
	pthread_mutex_lock(&a->lock);
	if (a->full_tail)
		a->full_tail->next = b;
	else
		a->full_head = b;
	a->full_tail = b;
	pthread_cond_signal(&a->data);
	pthread_mutex_unlock(&a->lock);
}

/* Copy the current row of st into b: 0, or SQLITE_NOMEM. */
static int copy_row(struct ahead *a, struct batch *b, size_t tag, sqlite3_stmt *st)
{
	struct cell *c = &b->cells[(size_t)b->nrows * (size_t)a->ncols];

	for (int k = 0; k < a->ncols; k++, c++) {
		/* one sqlite3_column_* call per cell: the value's own accessors
		 * are cheaper than the statement's (checks, locks) */
		sqlite3_value *v = sqlite3_column_value(st, k);
		const void *p;
		int n;

		c->type = sqlite3_value_type(v);
		switch (c->type) {
		case SQLITE_INTEGER: c->v.i = sqlite3_value_int64(v); break;
		case SQLITE_FLOAT: c->v.d = sqlite3_value_double(v); break;
		case SQLITE_TEXT:
		case SQLITE_BLOB:
			p = c->type == SQLITE_TEXT ? (const void *)sqlite3_value_text(v)
						   : sqlite3_value_blob(v);
			n = sqlite3_value_bytes(v);
			if (b->used + (size_t)n > b->cap) {
				size_t cap = b->cap ? b->cap : 4096;
				char *na;

				while (cap < b->used + (size_t)n)
					cap *= 2;
				if (!(na = realloc(b->arena, cap)))
					return SQLITE_NOMEM;
				b->arena = na;
				b->cap = cap;
			}
			if (n)
				memcpy(b->arena + b->used, p, (size_t)n);
			c->v.off = b->used;
			c->len = n;
			b->used += (size_t)n;
			break;
		default: break;
		}
	}
	b->tags[b->nrows++] = tag;
	return 0;
}

static void finish(struct ahead *a, int rc, const char *msg)
{
	pthread_mutex_lock(&a->lock);
	a->done++;
	if (rc != SQLITE_DONE && a->rc == SQLITE_DONE) {
		a->rc = rc;
		snprintf(a->msg, sizeof(a->msg), "%s", msg ? msg : "");
		atomic_store(&a->stop, 1); /* the other producers too */
		pthread_cond_broadcast(&a->room);
	}
	pthread_cond_signal(&a->data);
	pthread_mutex_unlock(&a->lock);
}

static void *produce(void *arg)
{
	struct ahead *a = arg;
	struct batch *b = NULL;
	char msg[256] = "";
	int rc = SQLITE_DONE;

	while (!atomic_load(&a->stop)) {
		sqlite3_stmt *st = NULL;
		size_t tag = 0;

		rc = a->ops->open(a->ctx, a, &tag, &st, msg, sizeof(msg));
		if (rc != SQLITE_OK)
			break;
		for (;;) {
			if (atomic_load(&a->stop)) {
				rc = SQLITE_INTERRUPT;
				break;
			}
			if (!b && !(b = take_free(a))) {
				rc = SQLITE_INTERRUPT;
				break;
			}
			rc = sqlite3_step(st);
			if (rc != SQLITE_ROW)
				break;
			if ((rc = copy_row(a, b, tag, st)) != 0)
				break;
			if (b->nrows == AHEAD_ROWS || b->used >= AHEAD_ARENA_MAX) {
				publish(a, b);
				b = NULL;
			}
		}
		rc = a->ops->close(a->ctx, tag, st, rc, msg, sizeof(msg));
		if (rc != SQLITE_DONE)
			break;
	}
	if (b && b->nrows)
		publish(a, b);
	else if (b) {
		pthread_mutex_lock(&a->lock);
		b->next = a->free_list;
		a->free_list = b;
		pthread_mutex_unlock(&a->lock);
	}
	if (rc == SQLITE_OK)
		rc = SQLITE_DONE;
	finish(a, rc == SQLITE_DONE && atomic_load(&a->stop) ? SQLITE_INTERRUPT : rc, msg);
	return NULL;
}

static void free_all(struct ahead *a)
{
	for (int i = 0; i < AHEAD_BATCHES; i++) {
		if (!a->all[i])
			continue;
		free(a->all[i]->cells);
		free(a->all[i]->arena);
		free(a->all[i]);
	}
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->data);
	pthread_cond_destroy(&a->room);
	free(a);
}

/* Reserve up to want producer slots: how many were free. */
static int reserve(int want)
{
	int got = 0;

	while (got < want) {
		if (atomic_fetch_add(&running, 1) >= threads_max()) {
			atomic_fetch_sub(&running, 1);
			break;
		}
		got++;
	}
	return got;
}

int ahead_start(const struct ahead_ops *ops, void *ctx, int ncols, struct ahead **out)
{
	struct ahead *a;
	int n = reserve(AHEAD_PER_CURSOR);

	*out = NULL;
	if (n == 0)
		return SQLITE_BUSY;
	a = calloc(1, sizeof(*a));
	if (!a) {
		atomic_fetch_sub(&running, n);
		return SQLITE_NOMEM;
	}
	a->rc = SQLITE_DONE;
	a->ops = ops;
	a->ctx = ctx;
	a->ncols = ncols;
	a->row = -1;
	atomic_init(&a->stop, 0);
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->data, NULL);
	pthread_cond_init(&a->room, NULL);
	for (int i = 0; i < AHEAD_BATCHES; i++) {
		struct batch *b = calloc(1, sizeof(*b));

		if (b)
			b->cells = calloc((size_t)AHEAD_ROWS * (size_t)ncols, sizeof(*b->cells));
		a->all[i] = b;
		if (!b || !b->cells) {
			free_all(a);
			atomic_fetch_sub(&running, n);
			return SQLITE_NOMEM;
		}
		b->next = a->free_list;
		a->free_list = b;
	}
	for (int i = 0; i < n; i++) {
		if (pthread_create(&a->threads[a->nthreads], NULL, produce, a))
			break;
		a->nthreads++;
	}
	atomic_fetch_sub(&running, n - a->nthreads);
	if (!a->nthreads) {
		free_all(a);
		return SQLITE_BUSY;
	}
	*out = a;
	return SQLITE_OK;
}

static void deadline_in(struct timespec *t, long ns)
{
	clock_gettime(CLOCK_REALTIME, t);
	t->tv_nsec += ns;
	if (t->tv_nsec >= 1000000000L) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000L;
	}
}

int ahead_next(struct ahead *a, int (*interrupted)(void *), void *ictx)
{
	int rc;

	if (a->cur && ++a->row < a->cur->nrows)
		return SQLITE_ROW;
	/* between batches: the query's budget, even when it never waits */
	if (interrupted && interrupted(ictx))
		return SQLITE_INTERRUPT;
	pthread_mutex_lock(&a->lock);
	if (a->cur) {
		a->cur->next = a->free_list;
		a->free_list = a->cur;
		a->cur = NULL;
		pthread_cond_signal(&a->room);
	}
	while (!a->full_head && a->done < a->nthreads) {
		struct timespec t;

		deadline_in(&t, AHEAD_WAIT_NS);
		if (pthread_cond_timedwait(&a->data, &a->lock, &t) == ETIMEDOUT && interrupted) {
			pthread_mutex_unlock(&a->lock);
			if (interrupted(ictx))
				return SQLITE_INTERRUPT;
			pthread_mutex_lock(&a->lock);
		}
	}
	if (a->full_head) {
		a->cur = a->full_head;
		a->full_head = a->cur->next;
		if (!a->full_head)
			a->full_tail = NULL;
		a->row = 0;
		rc = SQLITE_ROW;
	} else {
		rc = a->rc;
	}
	pthread_mutex_unlock(&a->lock);
	return rc;
}

const char *ahead_error(const struct ahead *a)
{
	return a->msg[0] ? a->msg : NULL;
}

size_t ahead_tag(const struct ahead *a)
{
	return a->cur->tags[a->row];
}

static const struct cell *cell_of(const struct ahead *a, int k)
{
	return &a->cur->cells[(size_t)a->row * (size_t)a->ncols + (size_t)k];
}

int64_t ahead_int(const struct ahead *a, int k)
{
	const struct cell *c = cell_of(a, k);

	return c->type == SQLITE_INTEGER ? c->v.i : 0;
}

void ahead_result(const struct ahead *a, sqlite3_context *ctx, int k)
{
	const struct cell *c = cell_of(a, k);

	switch (c->type) {
	case SQLITE_INTEGER: sqlite3_result_int64(ctx, c->v.i); break;
	case SQLITE_FLOAT: sqlite3_result_double(ctx, c->v.d); break;
	case SQLITE_TEXT:
		if (c->len)
			sqlite3_result_text(ctx, a->cur->arena + c->v.off, c->len, SQLITE_TRANSIENT);
		else
			sqlite3_result_text(ctx, "", 0, SQLITE_STATIC);
		break;
	case SQLITE_BLOB:
		if (c->len)
			sqlite3_result_blob(ctx, a->cur->arena + c->v.off, c->len, SQLITE_TRANSIENT);
		else
			sqlite3_result_zeroblob(ctx, 0);
		break;
	default: break; /* NULL */
	}
}

void ahead_stop(struct ahead *a)
{
	if (!a)
		return;
	atomic_store(&a->stop, 1);
	pthread_mutex_lock(&a->lock);
	pthread_cond_broadcast(&a->room);
	pthread_mutex_unlock(&a->lock);
	for (int i = 0; i < a->nthreads; i++)
		pthread_join(a->threads[i], NULL);
	atomic_fetch_sub(&running, a->nthreads);
	free_all(a);
}
