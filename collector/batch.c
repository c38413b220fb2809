/* Batches and their bounded queues (see batch.h). */
#include "batch.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>

int batch_init(struct batch *b, size_t cap)
{
	b->n = 0;
	b->cap = cap;
	b->rows = calloc(cap, sizeof(*b->rows));
	return b->rows ? 0 : -ENOMEM;
}

void batch_destroy(struct batch *b)
{
	free(b->rows);
	b->rows = NULL;
}

int batch_queue_init(struct batch_queue *q, size_t cap)
{
	pthread_condattr_t attr;

	q->items = calloc(cap, sizeof(*q->items));
	if (!q->items)
		return -ENOMEM;
	q->head = q->count = 0;
	q->cap = cap;
	q->closed = false;
	pthread_mutex_init(&q->mu, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cv, &attr);
	pthread_condattr_destroy(&attr);
	return 0;
}

void batch_queue_destroy(struct batch_queue *q)
{
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->mu);
	free(q->items);
	q->items = NULL;
}

void batch_queue_push(struct batch_queue *q, struct batch *b)
{
	pthread_mutex_lock(&q->mu);
	assert(q->count < q->cap);
	q->items[(q->head + q->count) % q->cap] = b;
	q->count++;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

static struct batch *take_locked(struct batch_queue *q)
{
	struct batch *b;

	if (!q->count)
		return NULL;
	b = q->items[q->head];
	q->head = (q->head + 1) % q->cap;
	q->count--;
	return b;
}

struct batch *batch_queue_try_pop(struct batch_queue *q)
{
	struct batch *b;

	pthread_mutex_lock(&q->mu);
	b = take_locked(q);
	pthread_mutex_unlock(&q->mu);
	return b;
}

static void deadline_after(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

struct batch *batch_queue_pop(struct batch_queue *q, int timeout_ms)
{
	struct timespec deadline;
	struct batch *b;

	if (timeout_ms >= 0)
		deadline_after(&deadline, timeout_ms);
	pthread_mutex_lock(&q->mu);
	while (!q->count && !q->closed) {
		if (timeout_ms < 0)
			pthread_cond_wait(&q->cv, &q->mu);
		else if (pthread_cond_timedwait(&q->cv, &q->mu, &deadline) == ETIMEDOUT)
			break;
	}
	b = take_locked(q);
	pthread_mutex_unlock(&q->mu);
	return b;
}

void batch_queue_close(struct batch_queue *q)
{
	pthread_mutex_lock(&q->mu);
	q->closed = true;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

bool batch_queue_closed(struct batch_queue *q)
{
	bool closed;

	pthread_mutex_lock(&q->mu);
	closed = q->closed;
	pthread_mutex_unlock(&q->mu);
	return closed;
}

size_t batch_queue_count(struct batch_queue *q)
{
	size_t n;

	pthread_mutex_lock(&q->mu);
	n = q->count;
	pthread_mutex_unlock(&q->mu);
	return n;
}
