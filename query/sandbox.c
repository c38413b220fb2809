/*
 * sandbox.c: the read-only SQL connection untrusted queries run on
 * (sandbox.h), and the classification of what went wrong.
 *
 * Read-only by construction, in layers; each alone refuses every write:
 *
 *  1. The connection's own database is ":memory:" opened SQLITE_OPEN_READONLY
 *     with PRAGMA query_only=1: nothing can be created or written in main
 *     (SQLITE_READONLY), nor in temp.
 *  2. The authorizer allows SQLITE_SELECT, SQLITE_READ of the main schema,
 *     SQLITE_FUNCTION except the functions in denied_functions,
 *     SQLITE_RECURSIVE, and SQLITE_PRAGMA for the reading pragmas in
 *     allowed_pragmas (also as pragma_x() tables). Every other action code,
 *     and any code a later SQLite adds, is SQLITE_DENY. One exception, made
 *     as narrow as it can be: SQLITE_UPDATE of main.sqlite_master gets
 *     SQLITE_IGNORE. SQLite 3.40 asks for it when it connects an eponymous
 *     virtual table for the first time (sqlite3_declare_vtab's nested parse
 *     of the schema UPDATE, which is never run); DENY there would make
 *     every eponymous table (json_each, pragma_*, ours) fail with "vtable
 *     constructor failed". A user's UPDATE of sqlite_master never gets that
 *     far: with defensive mode the parser refuses it earlier ("table
 *     sqlite_master may not be modified"), and IGNORE would leave the
 *     columns unchanged anyway.
 *  3. Statements are also judged by their first keyword: one that writes
 *     (INSERT, CREATE, VACUUM, BEGIN, ...: write_statements) is refused
 *     before it is parsed, so it is always QERR_DENIED with a plain message
 *     (SQLite itself would refuse some for other reasons first: "cannot
 *     create triggers on virtual tables"), and what was prepared must start
 *     with SELECT, WITH, VALUES, EXPLAIN or PRAGMA. Bare REINDEX and VACUUM
 *     never ask the authorizer; sqlite3_stmt_readonly is checked as well.
 *     EXPLAIN of anything is let through to the authorizer: it shows the
 *     program and never runs it.
 *  4. Defensive mode, no extension loading, no triggers or views, untrusted
 *     schema, no double-quoted string literals, ATTACHed databases limited
 *     to 0, fts3_tokenizer() disabled.
 *
 * The time budget: a progress handler every PROGRESS_OPS VM steps, and the
 * span tables through sandbox_interrupted(), compare CLOCK_MONOTONIC with
 * the deadline and look at the cancel flag. Which of the two stopped the
 * statement is remembered (sb->stopped) so the failed step is classified
 * by cause, not by SQLite's generic "interrupted". sqlite3_interrupt() is
 * not used: in 3.40 its flag outlives the statement it was meant for when
 * no statement is running and would fail the next prepare.
 *
 * Threads: every field but cancel is touched only by the thread that owns
 * the sandbox (prepare, step and the callbacks SQLite makes from them);
 * cancel is atomic.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sqlite3.h>

#include "count_fast.h"
#include "functions.h"
#include "sandbox.h"

#define PROGRESS_OPS 1000              /* VM steps between two looks at the clock */
#define DEFAULT_MAX_SQL (1024 * 1024)  /* bytes */
#define MAX_LENGTH (64 * 1024 * 1024)  /* bytes in one string, blob or row */
#define MAX_LIKE_PATTERN 2000          /* bytes */
#define MAX_EXPR_DEPTH 500
#define MAX_COMPOUND_SELECT 64
#define MAX_VARIABLES 32               /* the server binds none */
#define NS_PER_MS 1000000LL

struct sandbox {
	sqlite3 *db;
	size_t max_sql_bytes;
	int64_t deadline_ns; /* CLOCK_MONOTONIC; <= 0: none */
	int64_t budget_ms;   /* deadline - prepare time, for messages */
	enum qerr stopped;   /* QERR_TIMEOUT/QERR_CANCELLED once the check fired */
	atomic_int cancel;
	char denied[200];    /* the authorizer's first refusal of this statement */
};

/* What reading needs, nothing else (see sandbox.h). */
static const char *const allowed_pragmas[] = {
	"table_info", "table_xinfo", "table_list", "function_list",
	"module_list", "pragma_list", "collation_list",
};
#define ALLOWED_PRAGMAS_TEXT "table_info, table_xinfo, table_list, function_list, " \
			     "module_list, pragma_list and collation_list"

/*
 * load_extension: loads code. fts3_tokenizer: its two-argument form installs
 * a tokenizer from a pointer (Debian builds with SQLITE_ENABLE_FTS3_TOKENIZER).
 * sqlite_log: writes into the daemon's log. readfile/writefile/edit: the
 * sqlite3 shell's file access, refused should they ever be registered.
 */
static const char *const denied_functions[] = {
	"load_extension", "fts3_tokenizer", "sqlite_log", "readfile", "writefile", "edit",
};

/* First words of the statements we run, and of those that write (rule 3). */
static const char *const allowed_statements[] = { "SELECT", "WITH", "VALUES", "EXPLAIN", "PRAGMA" };
static const char *const write_statements[] = {
	"INSERT", "REPLACE", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "ATTACH", "DETACH",
	"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE", "ANALYZE", "REINDEX", "VACUUM",
};
#define STATEMENT_DENIED "%s is not allowed: queries are read-only (SELECT, WITH, VALUES, " \
			 "EXPLAIN and the PRAGMAs " ALLOWED_PRAGMAS_TEXT " are)"

const char *qerr_code(enum qerr e)
{
	switch (e) {
	case QERR_NONE: return "ok";
	case QERR_SQL: return "sql_error";
	case QERR_DENIED: return "denied";
	case QERR_TOO_LARGE: return "too_large";
	case QERR_TIMEOUT: return "timeout";
	case QERR_CANCELLED: return "cancelled";
	case QERR_RUNTIME: return "runtime_error";
	}
	return "runtime_error";
}

int qerr_http_status(enum qerr e, int sqlite_rc)
{
	switch (e) {
	case QERR_NONE: return 200;
	case QERR_SQL: return 400;
	case QERR_DENIED: return 403;
	case QERR_TOO_LARGE: return 413;
	case QERR_TIMEOUT: return 504;
	case QERR_CANCELLED: return 499;
	case QERR_RUNTIME:
		switch (sqlite_rc & 0xff) {
		case SQLITE_NOMEM: case SQLITE_IOERR: case SQLITE_CORRUPT: case SQLITE_NOTADB:
		case SQLITE_CANTOPEN: case SQLITE_FULL: case SQLITE_INTERNAL:
			return 500;
		default:
			return 400;
		}
	}
	return 500;
}

static int64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- the authorizer ------------------------------------------------------- */

static int name_in(const char *name, const char *const *list, size_t n)
{
	for (size_t i = 0; name && i < n; i++)
		if (strcasecmp(name, list[i]) == 0)
			return 1;
	return 0;
}

#define IN_LIST(name, list) name_in(name, list, sizeof(list) / sizeof(list[0]))

static int is_main(const char *schema)
{
	return !schema || strcmp(schema, "main") == 0;
}

/* What an action does, in the words of SQL, for the refusal message. */
static const char *action_name(int action, const char *arg1)
{
	switch (action) {
	case SQLITE_CREATE_INDEX: case SQLITE_CREATE_TEMP_INDEX: return "CREATE INDEX";
	case SQLITE_CREATE_TABLE: case SQLITE_CREATE_TEMP_TABLE: return "CREATE TABLE";
	case SQLITE_CREATE_TRIGGER: case SQLITE_CREATE_TEMP_TRIGGER: return "CREATE TRIGGER";
	case SQLITE_CREATE_VIEW: case SQLITE_CREATE_TEMP_VIEW: return "CREATE VIEW";
	case SQLITE_DROP_INDEX: case SQLITE_DROP_TEMP_INDEX: return "DROP INDEX";
	case SQLITE_DROP_TABLE: case SQLITE_DROP_TEMP_TABLE: return "DROP TABLE";
	case SQLITE_DROP_TRIGGER: case SQLITE_DROP_TEMP_TRIGGER: return "DROP TRIGGER";
	case SQLITE_DROP_VIEW: case SQLITE_DROP_TEMP_VIEW: return "DROP VIEW";
	case SQLITE_INSERT: case SQLITE_UPDATE: case SQLITE_DELETE:
		if (arg1 && (strcmp(arg1, "sqlite_master") == 0 || strcmp(arg1, "sqlite_temp_master") == 0))
			return "CREATE/ALTER/DROP (changing the schema)";
		return action == SQLITE_INSERT ? "INSERT" : action == SQLITE_UPDATE ? "UPDATE" : "DELETE";
	case SQLITE_TRANSACTION: return "BEGIN/COMMIT/ROLLBACK";
	case SQLITE_SAVEPOINT: return "SAVEPOINT/RELEASE";
	case SQLITE_ATTACH: return "ATTACH";
	case SQLITE_DETACH: return "DETACH";
	case SQLITE_ALTER_TABLE: return "ALTER TABLE";
	case SQLITE_REINDEX: return "REINDEX";
	case SQLITE_ANALYZE: return "ANALYZE";
	case SQLITE_CREATE_VTABLE: return "CREATE VIRTUAL TABLE";
	case SQLITE_DROP_VTABLE: return "DROP VIRTUAL TABLE";
	default: return "this statement";
	}
}

static int deny(struct sandbox *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Remember the first refusal (later ones follow from it) and refuse. */
static int deny(struct sandbox *sb, const char *fmt, ...)
{
	va_list ap;

	if (!sb->denied[0]) {
		va_start(ap, fmt);
		vsnprintf(sb->denied, sizeof(sb->denied), fmt, ap);
		va_end(ap);
	}
	return SQLITE_DENY;
}

static int deny_pragma(struct sandbox *sb, const char *name)
{
	return deny(sb, "PRAGMA %.60s is not allowed: only " ALLOWED_PRAGMAS_TEXT " are", name);
}

static int sandbox_authorize(void *arg, int action, const char *arg1, const char *arg2,
			     const char *schema, const char *trigger)
{
	struct sandbox *sb = arg;

	switch (action) {
	case SQLITE_SELECT:
	case SQLITE_RECURSIVE:
		return SQLITE_OK;
	case SQLITE_READ:
		if (!is_main(schema))
			return deny(sb, "reading the %.20s schema is not allowed: queries see only "
				    "the main tables", schema);
		if (arg1 && strncasecmp(arg1, "pragma_", 7) == 0 && !IN_LIST(arg1 + 7, allowed_pragmas))
			return deny_pragma(sb, arg1 + 7);
		return SQLITE_OK;
	case SQLITE_FUNCTION:
		if (IN_LIST(arg2, denied_functions))
			return deny(sb, "%.60s() is not allowed", arg2);
		return SQLITE_OK;
	case SQLITE_PRAGMA:
		if (!IN_LIST(arg1, allowed_pragmas))
			return deny_pragma(sb, arg1 ? arg1 : "");
		if (!is_main(schema))
			return deny(sb, "PRAGMA on the %.20s schema is not allowed", schema);
		return SQLITE_OK;
	case SQLITE_UPDATE:
		/* Layer 2's one exception (file comment). */
		if (arg1 && strcmp(arg1, "sqlite_master") == 0 && schema && strcmp(schema, "main") == 0 &&
		    !trigger)
			return SQLITE_IGNORE;
		break;
	default:
		break;
	}
	return deny(sb, "%s is not allowed: queries are read-only", action_name(action, arg1));
}

/* ---- the time budget ------------------------------------------------------ */

int sandbox_interrupted(void *arg)
{
	struct sandbox *sb = arg;

	if (sb->stopped)
		return 1;
	if (atomic_load_explicit(&sb->cancel, memory_order_relaxed)) {
		sb->stopped = QERR_CANCELLED;
		return 1;
	}
	if (sb->deadline_ns > 0 && monotonic_ns() >= sb->deadline_ns) {
		sb->stopped = QERR_TIMEOUT;
		return 1;
	}
	return 0;
}

static int sandbox_progress(void *arg)
{
	return sandbox_interrupted(arg);
}

void sandbox_cancel(struct sandbox *sb)
{
	atomic_store(&sb->cancel, 1);
}

/* The message of a stopped statement; QERR_NONE if it was not stopped. */
static enum qerr stop_reason(struct sandbox *sb, char *err, size_t errlen)
{
	if (!sb->stopped)
		sandbox_interrupted(sb);
	if (sb->stopped == QERR_CANCELLED)
		set_err(err, errlen, "query cancelled");
	else if (sb->stopped == QERR_TIMEOUT)
		set_err(err, errlen, "query stopped: its time budget of %lld ms is spent",
			(long long)sb->budget_ms);
	return sb->stopped;
}

/* ---- opening -------------------------------------------------------------- */

static int configure(sqlite3 *db, size_t max_sql)
{
	static const int off[] = {
		SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, SQLITE_DBCONFIG_ENABLE_TRIGGER,
		SQLITE_DBCONFIG_ENABLE_VIEW, SQLITE_DBCONFIG_TRUSTED_SCHEMA,
		SQLITE_DBCONFIG_DQS_DML, SQLITE_DBCONFIG_DQS_DDL,
		SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, SQLITE_DBCONFIG_WRITABLE_SCHEMA,
	};
	int got = -1;

	for (size_t i = 0; i < sizeof(off) / sizeof(off[0]); i++)
		if (sqlite3_db_config(db, off[i], 0, &got) != SQLITE_OK || got != 0)
			return SQLITE_ERROR;
	if (sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, &got) != SQLITE_OK || got != 1)
		return SQLITE_ERROR;

	sqlite3_limit(db, SQLITE_LIMIT_SQL_LENGTH, (int)max_sql);
	sqlite3_limit(db, SQLITE_LIMIT_LENGTH, max_sql > MAX_LENGTH ? (int)max_sql : MAX_LENGTH);
	sqlite3_limit(db, SQLITE_LIMIT_LIKE_PATTERN_LENGTH, MAX_LIKE_PATTERN);
	sqlite3_limit(db, SQLITE_LIMIT_EXPR_DEPTH, MAX_EXPR_DEPTH);
	sqlite3_limit(db, SQLITE_LIMIT_COMPOUND_SELECT, MAX_COMPOUND_SELECT);
	sqlite3_limit(db, SQLITE_LIMIT_VARIABLE_NUMBER, MAX_VARIABLES);
	sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 0);
	sqlite3_limit(db, SQLITE_LIMIT_WORKER_THREADS, 0);
	return sqlite3_exec(db, "PRAGMA query_only = 1", NULL, NULL, NULL);
}

int sandbox_open(const struct sandbox_limits *limits, struct sandbox **out, char *err,
		 size_t errlen)
{
	struct sandbox *sb = calloc(1, sizeof(*sb));
	int rc;

	*out = NULL;
	if (!sb) {
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	sb->max_sql_bytes = limits && limits->max_sql_bytes ? limits->max_sql_bytes : DEFAULT_MAX_SQL;
	if (sb->max_sql_bytes > 1000000000) /* SQLite's own ceiling (SQLITE_MAX_SQL_LENGTH) */
		sb->max_sql_bytes = 1000000000;
	atomic_init(&sb->cancel, 0);

	rc = sqlite3_open_v2(":memory:", &sb->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK)
		goto cleanup;
	rc = configure(sb->db, sb->max_sql_bytes);
	if (rc != SQLITE_OK)
		goto cleanup;
	rc = qfunc_register(sb->db);
	if (rc != SQLITE_OK)
		goto cleanup;
	sqlite3_progress_handler(sb->db, PROGRESS_OPS, sandbox_progress, sb);
	rc = sqlite3_set_authorizer(sb->db, sandbox_authorize, sb); /* last: configure() runs SQL */
	if (rc != SQLITE_OK)
		goto cleanup;
	*out = sb;
	return 0;

cleanup:
	set_err(err, errlen, "cannot open the query connection: %s",
		sb->db ? sqlite3_errmsg(sb->db) : sqlite3_errstr(rc));
	sqlite3_close_v2(sb->db);
	free(sb);
	return rc == SQLITE_NOMEM ? -ENOMEM : -EIO;
}

void sandbox_close(struct sandbox *sb)
{
	if (!sb)
		return;
	sqlite3_close_v2(sb->db);
	free(sb);
}

sqlite3 *sandbox_db(struct sandbox *sb)
{
	return sb->db;
}

/* ---- preparing ------------------------------------------------------------ */

/* Past whitespace and comments; an unterminated block comment runs to the end. */
const char *sandbox_skip_blank(const char *p, const char *end)
{
	while (p < end) {
		if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v') {
			p++;
		} else if (end - p >= 2 && p[0] == '-' && p[1] == '-') {
			while (p < end && *p != '\n')
				p++;
		} else if (end - p >= 2 && p[0] == '/' && p[1] == '*') {
			const char *close = NULL;

			for (const char *q = p + 2; q + 1 < end; q++)
				if (q[0] == '*' && q[1] == '/') {
					close = q;
					break;
				}
			p = close ? close + 2 : end;
		} else {
			break;
		}
	}
	return p;
}

/* The statement's first word (rule 3), upper case as written, into word. */
static void first_word(const char *p, const char *end, char *word, size_t wordlen)
{
	size_t n = 0;

	p = sandbox_skip_blank(p, end);
	while (p + n < end && n + 1 < wordlen &&
	       ((p[n] >= 'A' && p[n] <= 'Z') || (p[n] >= 'a' && p[n] <= 'z') || p[n] == '_'))
		n++;
	memcpy(word, p, n);
	word[n] = '\0';
}

/* A failed sqlite3_prepare: which kind, and the message. */
/* QERR_DENIED (message in err) if rc is a refusal: the authorizer's
 * (SQLITE_AUTH, or SQLITE_ERROR "not authorized to use function: x": either
 * way it noted why) or a write to something read-only; else QERR_NONE. */
static enum qerr refusal(struct sandbox *sb, int rc, const char *msg, char *err, size_t errlen)
{
	if (sb->denied[0] || (rc & 0xff) == SQLITE_AUTH) {
		set_err(err, errlen, "%s", sb->denied[0] ? sb->denied : msg);
		return QERR_DENIED;
	}
	if ((rc & 0xff) == SQLITE_READONLY) {
		set_err(err, errlen, "%s: queries are read-only", msg);
		return QERR_DENIED;
	}
	return QERR_NONE;
}

static enum qerr prepare_error(struct sandbox *sb, int rc, char *err, size_t errlen)
{
	const char *msg = sqlite3_errmsg(sb->db);
	enum qerr e = refusal(sb, rc, msg, err, errlen);

	if (e != QERR_NONE)
		return e;
	switch (rc & 0xff) {
	case SQLITE_TOOBIG:
		set_err(err, errlen, "%s", msg);
		return QERR_TOO_LARGE;
	case SQLITE_INTERRUPT:
		if (stop_reason(sb, err, errlen))
			return sb->stopped;
		break;
	case SQLITE_NOMEM:
		set_err(err, errlen, "%s", msg);
		return QERR_RUNTIME;
	}
	set_err(err, errlen, "%s", msg);
	/* A write SQLite refuses before asking us: "table stats may not be
	 * modified", "... may not be altered", "virtual tables may not be indexed". */
	return strstr(msg, " may not be ") ? QERR_DENIED : QERR_SQL;
}

/* The prepared statement: one, of an allowed kind, read-only (rule 3). After
 * it only whitespace and comments (prepare consumed its ';'). */
static enum qerr check_statement(sqlite3_stmt *stmt, const char *word, const char *tail,
				 const char *end, char *err, size_t errlen)
{
	if (sandbox_skip_blank(tail, end) != end) {
		set_err(err, errlen, "only one statement per request: remove what follows the first ';'");
		return QERR_DENIED;
	}
	if (!IN_LIST(word, allowed_statements)) {
		set_err(err, errlen, STATEMENT_DENIED, word[0] ? word : "this statement");
		return QERR_DENIED;
	}
	if (!sqlite3_stmt_readonly(stmt)) {
		set_err(err, errlen, "not a read-only statement: queries are read-only");
		return QERR_DENIED;
	}
	return QERR_NONE;
}

enum qerr sandbox_prepare(struct sandbox *sb, const char *sql, size_t len, int64_t deadline_ns,
			  sqlite3_stmt **out, char *err, size_t errlen)
{
	const char *tail = NULL, *end = sql + len;
	sqlite3_stmt *stmt = NULL, *fast;
	char word[16];
	enum qerr e;
	int rc;

	*out = NULL;
	atomic_store(&sb->cancel, 0);
	sb->stopped = QERR_NONE;
	sb->denied[0] = '\0';
	sb->deadline_ns = deadline_ns;
	sb->budget_ms = deadline_ns > 0 ? (deadline_ns - monotonic_ns()) / NS_PER_MS : 0;
	if (sb->budget_ms < 0)
		sb->budget_ms = 0;

	if (len > sb->max_sql_bytes) {
		set_err(err, errlen, "the SQL is %zu bytes: the maximum is %zu", len, sb->max_sql_bytes);
		return QERR_TOO_LARGE;
	}
	if (memchr(sql, '\0', len)) {
		set_err(err, errlen, "the SQL contains a NUL byte");
		return QERR_SQL;
	}
	first_word(sql, end, word, sizeof(word));
	if (IN_LIST(word, write_statements)) {
		set_err(err, errlen, STATEMENT_DENIED, word);
		return QERR_DENIED;
	}
	if (sandbox_interrupted(sb)) {
		stop_reason(sb, err, errlen);
		return sb->stopped;
	}
	rc = sqlite3_prepare_v3(sb->db, sql, (int)len, 0, &stmt, &tail);
	if (rc != SQLITE_OK)
		return prepare_error(sb, rc, err, errlen);
	if (!stmt) {
		set_err(err, errlen, sandbox_skip_blank(tail, end) == end ? "empty query: no SQL statement"
			: "empty statement (a stray ';') before the query");
		return QERR_SQL;
	}
	e = check_statement(stmt, word, tail, end, err, errlen);
	if (e != QERR_NONE) {
		sqlite3_finalize(stmt);
		return e;
	}
	/* A trivial count: answered from the partitions' metadata (count_fast.h);
	 * the rewrite is prepared under the same authorizer and limits. */
	fast = count_fast_prepare(sb->db, sql, len, stmt);
	sb->denied[0] = '\0'; /* a refusal of the rewrite is not the query's */
	if (fast) {
		sqlite3_finalize(stmt);
		stmt = fast;
	}
	*out = stmt;
	return QERR_NONE;
}

enum qerr sandbox_step_error(struct sandbox *sb, int rc, char *err, size_t errlen)
{
	const char *msg = sqlite3_errmsg(sb->db);

	/* Stopped by us, whatever the code the table that noticed returned. */
	if (sb->stopped || (rc & 0xff) == SQLITE_INTERRUPT) {
		if (stop_reason(sb, err, errlen))
			return sb->stopped;
	}
	/* A pragma_x() table prepares its own PRAGMA at run time. */
	if (refusal(sb, rc, msg, err, errlen) != QERR_NONE)
		return QERR_DENIED;
	set_err(err, errlen, "%s", msg);
	return QERR_RUNTIME;
}
