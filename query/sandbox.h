/*
 * sandbox: one read-only SQL connection for untrusted queries.
 *
 * The connection's own database is an empty in-memory one; everything a
 * query can read comes from the virtual tables registered on it (span.h,
 * stats_vtab.h) and the helper functions (functions.h). Read-only by
 * construction, not by inspection alone:
 *
 *  - a deny-by-default authorizer: SELECT, reading columns, calling
 *    functions other than load_extension, recursive CTEs and a short list of
 *    reading PRAGMAs (table_info, table_xinfo, function_list, ...) are
 *    allowed; everything else is refused (INSERT/UPDATE/DELETE, ATTACH,
 *    DETACH, CREATE/DROP/ALTER of anything, temp included, BEGIN/COMMIT,
 *    SAVEPOINT, ANALYZE, REINDEX, VACUUM, writing PRAGMAs, writable_schema);
 *  - the statement must also pass sqlite3_stmt_readonly (belt and braces);
 *  - SQLITE_DBCONFIG_DEFENSIVE on, extension loading off, triggers and
 *    views off (SQLITE_DBCONFIG_ENABLE_TRIGGER/VIEW = 0), trusted_schema off;
 *  - exactly one statement per request (trailing whitespace, comments and
 *    one ';' allowed);
 *  - sqlite3_limit: SQL length (the server's maximum), LIKE pattern length,
 *    expression depth, compound selects, variables;
 *  - a time budget: a progress handler (every 1000 VM steps) on this
 *    connection and on every partition the span tables open stops the
 *    statement when the deadline passes or sandbox_cancel is called.
 *
 * A sandbox belongs to one thread at a time; only sandbox_cancel may be
 * called from another thread.
 */
#ifndef FLOWSTORE_SANDBOX_H
#define FLOWSTORE_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

/* Why a query failed. The HTTP status the server answers with is in
 * parentheses; docs/sql.md lists them. */
enum qerr {
	QERR_NONE = 0,
	QERR_SQL,       /* does not parse, no such table/column, wrong args (400) */
	QERR_DENIED,    /* parses but is not a read (403) */
	QERR_TOO_LARGE, /* SQL longer than the maximum (413) */
	QERR_TIMEOUT,   /* time budget spent (504) */
	QERR_CANCELLED, /* sandbox_cancel: client gone, server stopping (499, never sent) */
	QERR_RUNTIME,   /* failed while running: bad argument to a function at run time,
			   out of memory, ... (400; 500 for SQLITE_NOMEM/IOERR/CORRUPT) */
};

/* Stable short code for error bodies: "sql_error", "denied", "too_large",
 * "timeout", "cancelled", "runtime_error". */
const char *qerr_code(enum qerr e);

/* The HTTP status for e (the numbers above). sqlite_rc is the failed step's
 * code: QERR_RUNTIME is 500 for SQLITE_NOMEM, IOERR, CORRUPT, NOTADB,
 * CANTOPEN, FULL and INTERNAL, else 400. */
int qerr_http_status(enum qerr e, int sqlite_rc);

struct sandbox;

struct sandbox_limits {
	size_t max_sql_bytes; /* 0 = 1 MiB */
};

/* Open a sandbox connection. Registers nothing but the helper functions
 * (functions.h); the caller registers the tables on sandbox_db(). */
int sandbox_open(const struct sandbox_limits *limits, struct sandbox **out, char *err,
		 size_t errlen);
/* Finalize the sandbox's statements first. NULL is a no-op. */
void sandbox_close(struct sandbox *sb);

sqlite3 *sandbox_db(struct sandbox *sb);

/* Interrupt callback for span_register (reads the deadline and cancel flag
 * of the sandbox passed as ctx). */
int sandbox_interrupted(void *sb);

/*
 * Prepare one statement of sql (len bytes, need not be NUL-terminated).
 * On failure returns the kind and writes SQLite's or our message to err.
 * deadline_ns is CLOCK_MONOTONIC (<= 0: no budget); the budget covers
 * prepare and every step. A trivial count ("SELECT count(*) FROM flows
 * WHERE ts >= ?1", count_fast.h) comes back rewritten into span_count(),
 * answered from partition metadata: same column name, parameters, value.
 */
enum qerr sandbox_prepare(struct sandbox *sb, const char *sql, size_t len, int64_t deadline_ns,
			  sqlite3_stmt **out, char *err, size_t errlen);

/* Classify a failed sqlite3_step (rc) on a sandbox statement: QERR_TIMEOUT
 * or QERR_CANCELLED when the sandbox stopped it, QERR_DENIED when a
 * pragma_x() table's own PRAGMA was refused at run time, else QERR_RUNTIME
 * (message in err). */
enum qerr sandbox_step_error(struct sandbox *sb, int rc, char *err, size_t errlen);

/* Stop the running statement (thread-safe, async-signal-unsafe). Cleared by
 * the next sandbox_prepare. */
void sandbox_cancel(struct sandbox *sb);

/* The first byte at or after p that is not white space or inside an SQL
 * comment (a line comment or a block comment; an unterminated block comment
 * runs to the end); end if none. Shared by the sandbox's checks and
 * count_fast.c's lexer. */
const char *sandbox_skip_blank(const char *p, const char *end);

#endif /* FLOWSTORE_SANDBOX_H */
