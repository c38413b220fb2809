/*
 * count_fast: trivial count queries answered from partition metadata.
 *
 * A virtual table gets no aggregate pushdown: "SELECT count(*) FROM flows"
 * steps every row through SQLite (50M rows: ~0.9 s), although the sealed
 * partitions' metadata knows their row counts. In the spirit of
 * ClickHouse's optimize_trivial_count_query, a statement that is exactly
 *
 *     SELECT count(*) | count(1) [[AS] alias] FROM flows|connections|tcp_states
 *            [[AS] alias] [WHERE c AND c ...] [;]
 *
 * where each c is "ts OP e", "e OP ts" (OP one of =, ==, <, <=, >, >=) or
 * "ts BETWEEN e AND e", and each e a constant expression (literals, bound
 * parameters, function calls such as ago('1h'), arithmetic; no column, no
 * subquery, no CASE/CAST/COLLATE), is prepared instead as
 *
 *     SELECT span_count('flows', '>=', (e), ...) AS "<SQLite's column name>"
 *
 * span_count (span.c) counts sealed partitions inside the range from their
 * metadata and runs count(*) with the ts constraints on the others. The
 * expressions are evaluated by SQLite itself, at step time, with the same
 * parameters (their numbering is unchanged: the expressions keep their
 * order). Anything not recognised exactly, and any rewrite whose column
 * name, declared type or parameters differ from the original's, keeps the
 * original statement: same answer, same errors, only slower.
 */
#ifndef FLOWSTORE_COUNT_FAST_H
#define FLOWSTORE_COUNT_FAST_H

#include <stddef.h>

#include <sqlite3.h>

/* The rewritten SQL for sql (len bytes), without its column alias, or NULL
 * when sql is not a trivial count (or out of memory). sqlite3_free it. */
char *count_fast_sql(const char *sql, size_t len);

/* orig is sql prepared on db, successfully. A statement answering it
 * through span_count, with the same column name and parameters, or NULL
 * (then orig is the one to run). The authorizer sees the rewrite's
 * prepare: a refusal there also means NULL. */
sqlite3_stmt *count_fast_prepare(sqlite3 *db, const char *sql, size_t len, sqlite3_stmt *orig);

#endif /* FLOWSTORE_COUNT_FAST_H */
