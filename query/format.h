/*
 * Output formats of query results, streamed: rows are written to a sink as
 * they come and never all held in memory, except `table`, which must see
 * every row to align the columns and is therefore capped.
 *
 *   table   aligned columns for people, a header and a rule; NULL shown as
 *           NULL; time columns (below) shown as ISO-8601; a last line
 *           "(N rows)" or "(N rows, truncated at M)"
 *   csv     RFC 4180: header line, CRLF line ends, fields quoted when they
 *           hold , " CR or LF (quotes doubled); NULL is an empty field
 *   tsv     header line, LF line ends, tab/newline/backslash in values
 *           escaped as \t \n \\ ; NULL is \N (as PostgreSQL COPY does)
 *   json    {"columns":[...],"rows":[[...],...],"row_count":N,
 *            "elapsed_ms":F,"truncated":false} — rows as arrays, integers
 *           as JSON numbers, REAL as the shortest text that round-trips,
 *           blobs as base64 strings, NULL as null
 *   ndjson  one JSON object per row ({"col":value,...}), LF after each
 *
 * A time column, for the table format only, is a result column named ts,
 * ts_end, or ending in _ts, or starting with ts_, whose value is an integer:
 * it is shown as ts_iso() would (ns kept). Everything else is the value
 * as SQLite gives it.
 *
 * Row cap: max_rows (0 = none). When a row past the cap arrives the writer
 * stops taking rows and reports truncation; json carries "truncated":true,
 * table says so in its last line, csv/tsv/ndjson end where they are cut
 * (the server adds a trailer).
 */
#ifndef FLOWSTORE_FORMAT_H
#define FLOWSTORE_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

enum qformat { QFORMAT_TABLE, QFORMAT_CSV, QFORMAT_TSV, QFORMAT_JSON, QFORMAT_NDJSON };

/* "table", "csv", ... → 0, or -EINVAL. */
int qformat_parse(const char *name, enum qformat *out);
const char *qformat_name(enum qformat f);
/* "text/plain; charset=utf-8", "text/csv; charset=utf-8; header=present",
 * "text/tab-separated-values; charset=utf-8", "application/json",
 * "application/x-ndjson". */
const char *qformat_content_type(enum qformat f);

/* Where formatted bytes go. Returns 0, or nonzero to stop (client gone);
 * the writer then returns -EPIPE from every later call. */
typedef int (*qsink_fn)(void *ctx, const void *buf, size_t len);

struct qwriter;

/* NULL on out of memory. */
struct qwriter *qwriter_new(enum qformat f, uint64_t max_rows, qsink_fn sink, void *sink_ctx);
void qwriter_free(struct qwriter *w);

/* Column names (and nothing else) from the prepared statement. 0 or -EPIPE/-ENOMEM. */
int qwriter_begin(struct qwriter *w, sqlite3_stmt *stmt);
/* The row the statement is on (after SQLITE_ROW). 0; 1 if the row was past
 * the cap (not written: stop stepping); -EPIPE/-ENOMEM. */
int qwriter_row(struct qwriter *w, sqlite3_stmt *stmt);
/* Finish a successful result. 0 or -EPIPE/-ENOMEM. */
int qwriter_end(struct qwriter *w, int64_t elapsed_ns);

uint64_t qwriter_rows(const struct qwriter *w);   /* rows written */
int qwriter_truncated(const struct qwriter *w);

/* Small helpers the server shares: JSON string escaping into a sink. */
int qformat_json_string(qsink_fn sink, void *ctx, const char *s, size_t len);

#endif /* FLOWSTORE_FORMAT_H */
