/*
 * span: the tables that span every partition of a data dir.
 *
 * flows, connections and tcp_states each read as one table over every raw
 * partition file (open and sealed); flows_1m and flows_1h the same over the
 * rollup files of their kind (1m-*.db, 1h-*.db: retention/rollup.h);
 * partitions lists the files themselves. A table reads only files of its
 * own kind.
 * They are SQLite virtual tables (eponymous: no CREATE VIRTUAL TABLE needed)
 * that open the partitions they need themselves, read-only (sealed files
 * with immutable=1), so a query is not limited by SQLite's ten ATTACHed
 * databases and never takes a lock a writer would notice.
 *
 *  - A constraint on ts (=, <, <=, >, >=, BETWEEN) skips the partitions whose
 *    recorded [ts_min, ts_max] (meta_tables) cannot match: they are not even
 *    opened.
 *  - Every other usable constraint (=, <, <=, >, >=, IS, IS NULL, IS NOT NULL,
 *    LIKE, GLOB, != on any column) is pushed into the SQL each partition runs,
 *    so it reaches that partition's own indexes.
 *  - ORDER BY ts (ASC or DESC) is produced by a lazy k-way merge over the
 *    partitions in time order (orderByConsumed), and LIMIT/OFFSET reach the
 *    tables, so "ORDER BY ts DESC LIMIT 10" opens and reads only what it needs.
 *  - ts_end constraints and the hidden column `partition` (the file's name:
 *    SELECT partition, * FROM flows WHERE partition = '...') prune too.
 *  - A query that reads no column and constrains only ts (count(*)) takes
 *    the row counts of sealed partitions from their metadata; span_count()
 *    answers a whole count that way without stepping rows (count_fast.h
 *    rewrites trivial count queries into it).
 *  - An unordered scan of many rows over sealed partitions is read ahead
 *    on a producer thread (span_ahead.h, span_tune_ahead below).
 *  - With SQLite 3.40, `ts BETWEEN ? AND ?` is not copied into the branches
 *    of an OR plan (`... AND (orig_addr = ? OR resp_addr = ?)`): each branch
 *    then probes every partition. Written `ts >= ? AND ts <= ?`, it is.
 *
 * The partition list and the metadata of sealed partitions (which never
 * change) are cached in a span_set shared by every connection; open
 * partitions' metadata is re-read at each query, so rows committed a moment
 * ago are visible. Rollup files change in place (a transaction per raw
 * partition rolled into them): their metadata is cached by the file's
 * (dev, inode, size, mtime) and read again when that changes; they are
 * opened read-only (never immutable) by each statement that reads them,
 * never cached across queries.
 */
#ifndef FLOWSTORE_SPAN_H
#define FLOWSTORE_SPAN_H

#include <stdint.h>

#include <sqlite3.h>

/* A data dir's partitions, with cached metadata. Thread-safe: one per data
 * dir, shared by every query thread. */
struct span_set;

/* 0, or a negative errno (-ENOENT: no such dir). */
int span_set_open(const char *dir, struct span_set **out);
void span_set_free(struct span_set *set);

/*
 * Polled while a partition statement runs: return nonzero to stop the query
 * (time budget spent, client gone). The span tables then fail the statement
 * with SQLITE_INTERRUPT. May be NULL.
 */
typedef int (*span_interrupt_fn)(void *ctx);

/* What the span tables of one connection have done, for tests, EXPLAIN-like
 * diagnostics and /metrics. Counted since span_register or the last reset. */
struct span_counters {
	uint64_t partitions_opened;  /* partitions read by queries (a statement run on
					the file; see files_opened) */
	uint64_t partitions_pruned;  /* skipped by a ts constraint, not opened */
	uint64_t rows_read;          /* rows returned by partition statements */
	uint64_t partitions_counted; /* answered from metadata alone (no column read,
					every constraint on ts): not opened */
	uint64_t partitions_skipped; /* broken or unreadable files left out */
	uint64_t files_opened;       /* sqlite3_open calls; the rest of
					partitions_opened came from the handle cache */
	uint64_t partitions_ahead;   /* of partitions_opened, read by a read-ahead
					thread */
};

/* Register flows, connections, tcp_states, flows_1m, flows_1h and partitions
 * on db (once per connection: SQLITE_MISUSE the second time; the set must
 * outlive db).
 * db keeps up to RLIMIT_NOFILE / 16 sealed partitions open (64..1024, about
 * 110 KiB each) until it is closed or the files go away. 0 or an SQLite
 * error code. */
int span_register(sqlite3 *db, struct span_set *set, span_interrupt_fn interrupt,
		  void *interrupt_ctx);

/*
 * Read-ahead (span_ahead.h): an unordered scan of sealed partitions holding
 * at least min_rows rows (by their metadata; default 50000) is read by a
 * producer thread while SQLite consumes the rows. 0: whenever two or more
 * sealed partitions are read; UINT64_MAX: never. Process-wide, for tests
 * and benchmarks.
 */
void span_tune_ahead(uint64_t min_rows);

/* This connection's counters (zeros if span_register was not called). */
void span_counters_get(sqlite3 *db, struct span_counters *out);
void span_counters_reset(sqlite3 *db);

#endif /* FLOWSTORE_SPAN_H */
