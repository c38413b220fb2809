/*
 * span_ahead: a read-ahead thread for the span tables' unordered scans.
 *
 * A virtual table's rows reach SQLite one xNext/xColumn call at a time, on
 * the query's thread: reading a partition (its statement's VM, the b-tree,
 * decoding records) and handing the rows to SQLite (the outer VM, the
 * aggregate) take turns on one core. For an unordered scan over many
 * partitions a producer thread steps the partitions' statements one after
 * the other and hands batches of rows (the columns the plan uses, copied)
 * to the cursor through a bounded queue, so the two halves overlap.
 *
 *  - The producer never touches the query connection or anything the query
 *    thread uses: it gets each statement from the caller's open callback
 *    (which hands it a partition handle no one else is using) and gives it
 *    back through close. Every SQLite connection is used by one thread at a
 *    time.
 *  - Bounded: AHEAD_BATCHES batches of AHEAD_ROWS rows in flight per
 *    cursor, and at most AHEAD_THREADS producers in the process (ahead_start
 *    says SQLITE_BUSY when none is free: the caller reads serially).
 *  - Stopping: ahead_stop (early close, a new xFilter, an error) sets a flag
 *    the producer polls between rows and its statements' progress handler
 *    polls within a step (ahead_progress), then joins it. The query thread
 *    keeps polling its own interrupt while it waits for a batch, so a
 *    deadline or a cancel stops both.
 */
#ifndef FLOWSTORE_SPAN_AHEAD_H
#define FLOWSTORE_SPAN_AHEAD_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

struct ahead;

struct ahead_ops {
	/* Producer thread. The next statement to read, bound and ready to step,
	 * and a tag the rows carry (the candidate); SQLITE_OK, SQLITE_DONE when
	 * there is none left, or an error (message in msg). The statement's
	 * connection must be the producer's alone until close. */
	int (*open)(void *ctx, struct ahead *a, size_t *tag, sqlite3_stmt **st, char *msg,
		    size_t msglen);
	/* Producer thread. Done with st: rc is SQLITE_DONE (read to the end),
	 * SQLITE_INTERRUPT (stopped) or the failed step's code. Returns
	 * SQLITE_DONE to go on with the next statement, anything else to end the
	 * scan with that error (message in msg). */
	int (*close)(void *ctx, size_t tag, sqlite3_stmt *st, int rc, char *msg, size_t msglen);
};

/* Start a producer reading ncols columns of each statement (column 0 is
 * the rowid). SQLITE_OK, SQLITE_BUSY (no thread free: read serially) or
 * SQLITE_NOMEM. ctx must outlive ahead_stop. */
int ahead_start(const struct ahead_ops *ops, void *ctx, int ncols, struct ahead **out);

/* Query thread: the next row. SQLITE_ROW, SQLITE_DONE, SQLITE_INTERRUPT when
 * interrupted(ictx) said stop while waiting, or the producer's error (its
 * message in ahead_error). */
int ahead_next(struct ahead *a, int (*interrupted)(void *), void *ictx);
const char *ahead_error(const struct ahead *a);

/* The current row: its tag, column k as an integer, or as a result. */
size_t ahead_tag(const struct ahead *a);
int64_t ahead_int(const struct ahead *a, int k);
void ahead_result(const struct ahead *a, sqlite3_context *ctx, int k);

/* A progress handler for the producer's statements (arg: the ahead). */
int ahead_progress(void *a);

/* Stop the producer, join it, free everything. NULL is a no-op. */
void ahead_stop(struct ahead *a);

#endif /* FLOWSTORE_SPAN_AHEAD_H */
