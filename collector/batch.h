/*
 * Batches of rows and the bounded queues that carry them between the loop
 * thread and the writer thread.
 *
 * A fixed set of batches is allocated at start and never grows: they cycle
 * loop → `full` queue → writer → `free` queue → loop. Memory is therefore
 * bounded by (queue_batches + 1) × batch_rows rows, whatever the writer's
 * speed; when no free batch is left, the loop drops events and counts them.
 * Each queue can hold every batch, so a push never blocks and never fails.
 */
#ifndef FLOWSTORE_BATCH_H
#define FLOWSTORE_BATCH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "schema.h"

struct batch {
	size_t n, cap;
	struct schema_row *rows;
};

int batch_init(struct batch *b, size_t cap);
void batch_destroy(struct batch *b);

static inline bool batch_full(const struct batch *b)
{
	return b->n == b->cap;
}

struct batch_queue {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct batch **items; /* ring of cap slots */
	size_t head, count, cap;
	bool closed;
};

int batch_queue_init(struct batch_queue *q, size_t cap);
void batch_queue_destroy(struct batch_queue *q);

/* Append; asserts there is room (there always is: see above). */
void batch_queue_push(struct batch_queue *q, struct batch *b);

/* Take the oldest batch, or NULL if empty. Never blocks. */
struct batch *batch_queue_try_pop(struct batch_queue *q);

/* Take the oldest batch, waiting up to timeout_ms (-1: forever). NULL on
 * timeout, or when the queue is closed and empty. */
struct batch *batch_queue_pop(struct batch_queue *q, int timeout_ms);

/* No more pushes will come; pop returns what is left, then NULL. */
void batch_queue_close(struct batch_queue *q);
bool batch_queue_closed(struct batch_queue *q);
size_t batch_queue_count(struct batch_queue *q);

#endif /* FLOWSTORE_BATCH_H */
