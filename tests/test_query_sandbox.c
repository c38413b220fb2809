/*
 * Unit tests of query/sandbox.c and query/stats_vtab.c: what a query may
 * and may not do on a sandbox connection, and how it is stopped.
 *
 * Each test gets a fresh sandbox with the `stats` table registered on it
 * (a fake source), so the first use of every eponymous table is exercised.
 * Every escape is checked to be refused as QERR_DENIED specifically (not
 * merely to fail), and nothing it names may appear on disk. The time budget
 * and cancellation are checked with a query that never ends on its own.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "sandbox.h"
#include "stats_vtab.h"

#define MS 1000000LL
#define NEVER_ENDS "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"

/* ---- helpers ----------------------------------------------------------------- */

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int source_calls;

static void fake_source(void *ctx, qstat_emit_fn emit, void *arg)
{
	(void)ctx;
	source_calls++;
	emit(arg, "rows_written", "table=\"flows\"", "counter", "Rows written", 1234.0);
	emit(arg, "queue_depth", "", "gauge", "Events waiting", 0.5);
	emit(arg, "events_lost", "", "counter", NULL, 9007199254740993.0);
}

static int setup(void **state)
{
	struct sandbox *sb;
	char err[256];

	if (sandbox_open(NULL, &sb, err, sizeof(err)) != 0) {
		fprintf(stderr, "sandbox_open: %s\n", err);
		return -1;
	}
	if (stats_vtab_register(sandbox_db(sb), fake_source, NULL) != SQLITE_OK)
		return -1;
	*state = sb;
	return 0;
}

static int teardown(void **state)
{
	sandbox_close(*state);
	return 0;
}

struct outcome {
	enum qerr e;
	int rows;
	char err[512];
	char first[256]; /* first column of the first row, as text */
};

/* Prepare and run sql to the end with a budget of budget_ms. */
static void run_budget(struct sandbox *sb, const char *sql, size_t len, int64_t budget_ms,
		       struct outcome *o)
{
	sqlite3_stmt *st = NULL;
	int rc;

	memset(o, 0, sizeof(*o));
	o->e = sandbox_prepare(sb, sql, len, mono_ns() + budget_ms * MS, &st, o->err, sizeof(o->err));
	if (o->e != QERR_NONE) {
		assert_null(st);
		return;
	}
	assert_non_null(st);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!o->rows++ && sqlite3_column_count(st) > 0 && sqlite3_column_text(st, 0))
			snprintf(o->first, sizeof(o->first), "%s", sqlite3_column_text(st, 0));
	}
	if (rc != SQLITE_DONE)
		o->e = sandbox_step_error(sb, rc, o->err, sizeof(o->err));
	sqlite3_finalize(st);
}

static void run(struct sandbox *sb, const char *sql, struct outcome *o)
{
	run_budget(sb, sql, strlen(sql), 5000, o);
}

/* ---- reading works ----------------------------------------------------------- */

static void test_reads_work(void **state)
{
	static const struct {
		const char *sql, *first;
	} cases[] = {
		{ "SELECT 1", "1" },
		{ "  -- a comment first\nSELECT 2", "2" },
		{ "SELECT 3;", "3" },
		{ "SELECT 4; -- done", "4" },
		{ "select 5 /* c */ ;  /* trailing */ \n", "5" },
		{ "VALUES (6), (7)", "6" },
		{ "WITH a(x) AS (SELECT 8) SELECT x FROM a", "8" },
		{ "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100) "
		  "SELECT sum(x) FROM c", "5050" },
		{ "SELECT sum(column1) OVER (ORDER BY column1) AS s FROM (VALUES (1), (2), (3)) ORDER BY s DESC",
		  "6" },
		{ "SELECT x, row_number() OVER w FROM (SELECT value AS x FROM json_each('[3,1,2]')) "
		  "WINDOW w AS (ORDER BY x) ORDER BY 2 DESC", "3" },
		{ "SELECT count(*) FROM json_each('[1,2,3]')", "3" },
		{ "SELECT group_concat(key) FROM json_tree('{\"a\":1}') WHERE key IS NOT NULL", "a" },
		{ "SELECT ts_iso(0, 's') || ' ' || cidr_match('10.0.0.1', '10.0.0.0/8') || ' ' || dur('1h')",
		  "1970-01-01T00:00:00Z 1 3600000000000" },
		{ "SELECT count(*) FROM pragma_table_info('stats')", "5" },
		{ "SELECT name FROM pragma_table_xinfo('stats') WHERE cid = 2", "value" },
		{ "SELECT count(*) > 0 FROM pragma_function_list WHERE name = 'cidr_match'", "1" },
		{ "SELECT count(*) FROM pragma_module_list WHERE name = 'stats'", "1" },
		{ "SELECT count(*) > 0 FROM pragma_pragma_list", "1" },
		{ "SELECT count(*) > 0 FROM pragma_collation_list", "1" },
		{ "SELECT count(*) > 0 FROM pragma_table_list", "1" },
		{ "PRAGMA table_info(stats)", "0" },
		{ "PRAGMA main.table_info('stats')", "0" },
		{ "PRAGMA function_list", NULL },
		{ "SELECT name FROM stats ORDER BY name", "events_lost" },
		{ "SELECT count(*) FROM sqlite_master", "0" },
		{ "EXPLAIN QUERY PLAN SELECT * FROM stats", NULL },
		{ "SELECT upper('x') || char(65) || printf('%d', 7) || abs(-1)", "XA71" },
	};
	struct sandbox *sb = *state;
	struct outcome o;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		run(sb, cases[i].sql, &o);
		if (o.e != QERR_NONE)
			fail_msg("%s: %s: %s", cases[i].sql, qerr_code(o.e), o.err);
		assert_true(o.rows > 0);
		if (cases[i].first && strcmp(o.first, cases[i].first) != 0)
			fail_msg("%s: want '%s', got '%s'", cases[i].sql, cases[i].first, o.first);
	}
}

/* ---- escapes are refused ----------------------------------------------------- */

static void test_escapes_denied(void **state)
{
	static const char *const sqls[] = {
		/* writing rows; stats has no xUpdate */
		"INSERT INTO stats VALUES ('a', '', 1, 'gauge', '')",
		"UPDATE stats SET value = 1",
		"DELETE FROM stats",
		"INSERT INTO json_each(key) VALUES (1)",
		"WITH x AS (SELECT 1) INSERT INTO stats(name) SELECT * FROM x",
		"REPLACE INTO stats(name) VALUES ('x')",
		"UPDATE sqlite_master SET sql = 'x'",
		"INSERT INTO sqlite_master VALUES ('table', 't', 't', 0, 'CREATE TABLE t(x)')",
		"EXPLAIN INSERT INTO stats(name) VALUES ('x')",
		/* schema */
		"CREATE TABLE t(x)",
		"CREATE TEMP TABLE t(x)",
		"CREATE TEMPORARY TABLE t AS SELECT 1",
		"CREATE TABLE temp.t(x)",
		"CREATE VIEW v AS SELECT 1",
		"CREATE TEMP VIEW v AS SELECT 1",
		"CREATE TRIGGER tr AFTER INSERT ON stats BEGIN SELECT 1; END",
		"CREATE TEMP TRIGGER tr AFTER INSERT ON stats BEGIN SELECT 1; END",
		"CREATE INDEX i ON stats(name)",
		"CREATE VIRTUAL TABLE x USING fts5(a)",
		"CREATE VIRTUAL TABLE temp.x USING json_each",
		"DROP TABLE stats",
		"DROP TABLE IF EXISTS t",
		"DROP VIEW IF EXISTS v",
		"DROP INDEX IF EXISTS i",
		"DROP TRIGGER IF EXISTS tr",
		"ALTER TABLE stats RENAME TO s2",
		/* other databases */
		"ATTACH 'x.db' AS y",
		"ATTACH ':memory:' AS y",
		"ATTACH 'file:/tmp/flowstore-sandbox-attach?mode=rwc' AS y",
		"DETACH y",
		"SELECT * FROM temp.sqlite_master",
		"VACUUM",
		"VACUUM main",
		"VACUUM INTO '/tmp/flowstore-sandbox-vacuum.db'",
		/* pragmas that write or are not on the list */
		"PRAGMA writable_schema = 1",
		"PRAGMA writable_schema",
		"PRAGMA journal_mode = WAL",
		"PRAGMA journal_mode",
		"PRAGMA query_only = 0",
		"PRAGMA trusted_schema = 1",
		"PRAGMA temp_store = memory",
		"PRAGMA cache_size = 1",
		"PRAGMA user_version = 1",
		"PRAGMA schema_version = 1",
		"PRAGMA foreign_keys = 1",
		"PRAGMA optimize",
		"PRAGMA integrity_check",
		"PRAGMA database_list",
		"PRAGMA no_such_pragma",
		"PRAGMA temp.table_info(x)",
		"SELECT * FROM pragma_journal_mode",
		"SELECT * FROM pragma_database_list",
		"SELECT * FROM pragma_table_info('x', 'temp')",
		/* functions */
		"SELECT load_extension('x')",
		"SELECT load_extension('/lib/x.so', 'init')",
		"SELECT fts3_tokenizer('simple')",
		"SELECT sqlite_log(1, 'injected')",
		/* transactions */
		"BEGIN", "BEGIN IMMEDIATE", "BEGIN EXCLUSIVE", "COMMIT", "END", "ROLLBACK",
		"SAVEPOINT a", "RELEASE a", "ROLLBACK TO a",
		/* maintenance */
		"ANALYZE", "ANALYZE stats", "REINDEX", "REINDEX stats", "REINDEX BINARY",
		/* more than one statement */
		"SELECT 1; DROP TABLE stats",
		"SELECT 1; SELECT 2",
		"SELECT 1;;",
		"SELECT 1; garbage",
	};
	/*
	 * The same writes behind EXPLAIN, which the first-keyword check lets
	 * through (EXPLAIN never runs its statement): here the authorizer alone
	 * must refuse each of them, at prepare, or SQLite refuse the write
	 * itself ("may not be modified"). (Not CREATE TRIGGER: on a virtual table
	 * that is a plain SQL error.)
	 */
	static const char *const behind_explain[] = {
		"INSERT INTO stats VALUES ('a', '', 1, 'gauge', '')",
		"UPDATE stats SET value = 1",
		"DELETE FROM stats",
		"UPDATE sqlite_master SET sql = 'x'",
		"CREATE TABLE t(x)",
		"CREATE TEMP TABLE t(x)",
		"CREATE VIEW v AS SELECT 1",
		"CREATE TEMP VIEW v AS SELECT 1",
		"CREATE INDEX i ON stats(name)",
		"CREATE VIRTUAL TABLE temp.x USING json_each",
		"DROP TABLE stats",
		"DROP TABLE IF EXISTS t",
		"ALTER TABLE stats RENAME TO s2",
		"ATTACH ':memory:' AS y",
		"DETACH y",
		"PRAGMA writable_schema = 1",
		"PRAGMA journal_mode = WAL",
		"PRAGMA query_only = 0",
		"PRAGMA integrity_check",
		"SELECT load_extension('x')",
		"SELECT * FROM temp.sqlite_master",
		"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT a", "RELEASE a",
		"ANALYZE",
	};
	struct sandbox *sb = *state;
	struct outcome o;
	char sql[256];

	for (size_t i = 0; i < sizeof(sqls) / sizeof(sqls[0]); i++) {
		run(sb, sqls[i], &o);
		if (o.e != QERR_DENIED)
			fail_msg("%s: want denied, got %s: %s", sqls[i], qerr_code(o.e), o.err);
		assert_true(o.err[0] != '\0');
	}
	for (size_t i = 0; i < sizeof(behind_explain) / sizeof(behind_explain[0]); i++) {
		snprintf(sql, sizeof(sql), "EXPLAIN %s", behind_explain[i]);
		run(sb, sql, &o);
		if (o.e != QERR_DENIED)
			fail_msg("%s: want denied, got %s: %s", sql, qerr_code(o.e), o.err);
	}
	assert_int_equal(access("/tmp/flowstore-sandbox-vacuum.db", F_OK), -1);
	assert_int_equal(access("/tmp/flowstore-sandbox-attach", F_OK), -1);
	assert_int_equal(access("x.db", F_OK), -1);

	/* Still nothing in main or temp, and reading still works. */
	run(sb, "SELECT count(*) FROM sqlite_master", &o);
	assert_int_equal(o.e, QERR_NONE);
	assert_string_equal(o.first, "0");
}

#define STATEMENT_DENIED " is not allowed: queries are read-only (SELECT, WITH, VALUES, EXPLAIN and the " \
	"PRAGMAs table_info, table_xinfo, table_list, function_list, module_list, pragma_list and " \
	"collation_list are)"

static void test_denied_messages(void **state)
{
	static const struct {
		const char *sql, *msg;
	} cases[] = {
		{ "insert INTO stats(name) VALUES ('x')", "insert" STATEMENT_DENIED },
		{ "  /* c */ CREATE TRIGGER tr AFTER INSERT ON stats BEGIN SELECT 1; END", "CREATE" STATEMENT_DENIED },
		{ "REINDEX", "REINDEX" STATEMENT_DENIED },
		{ "VACUUM INTO '/tmp/flowstore-sandbox-vacuum.db'", "VACUUM" STATEMENT_DENIED },
		{ "WITH x AS (SELECT 1) INSERT INTO stats(name) SELECT * FROM x",
		  "INSERT is not allowed: queries are read-only" },
		{ "EXPLAIN DELETE FROM stats", "table stats may not be modified" },
		{ "EXPLAIN CREATE TEMP TABLE t(x)",
		  "CREATE/ALTER/DROP (changing the schema) is not allowed: queries are read-only" },
		{ "EXPLAIN ATTACH ':memory:' AS y", "ATTACH is not allowed: queries are read-only" },
		{ "EXPLAIN BEGIN", "BEGIN/COMMIT/ROLLBACK is not allowed: queries are read-only" },
		{ "EXPLAIN SAVEPOINT a", "SAVEPOINT/RELEASE is not allowed: queries are read-only" },
		{ "SELECT load_extension('x')", "load_extension() is not allowed" },
		{ "PRAGMA writable_schema = 1",
		  "PRAGMA writable_schema is not allowed: only table_info, table_xinfo, table_list, "
		  "function_list, module_list, pragma_list and collation_list are" },
		{ "SELECT * FROM pragma_database_list",
		  "PRAGMA database_list is not allowed: only table_info, table_xinfo, table_list, "
		  "function_list, module_list, pragma_list and collation_list are" },
		{ "SELECT * FROM temp.sqlite_master",
		  "reading the temp schema is not allowed: queries see only the main tables" },
		{ "SELECT 1; SELECT 2", "only one statement per request: remove what follows the first ';'" },
	};
	struct sandbox *sb = *state;
	struct outcome o;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		run(sb, cases[i].sql, &o);
		assert_int_equal(o.e, QERR_DENIED);
		if (strcmp(o.err, cases[i].msg) != 0)
			fail_msg("%s: want '%s', got '%s'", cases[i].sql, cases[i].msg, o.err);
	}
}

/* ---- other errors ------------------------------------------------------------ */

static void test_sql_errors(void **state)
{
	static const struct {
		const char *sql;
		enum qerr e;
		const char *msg; /* NULL: any */
	} cases[] = {
		{ "SELEC 1", QERR_SQL, "near \"SELEC\": syntax error" },
		{ "SELECT * FROM nope", QERR_SQL, "no such table: nope" },
		{ "SELECT \"abc\"", QERR_SQL, "no such column: abc" }, /* no double-quoted strings */
		{ "", QERR_SQL, "empty query: no SQL statement" },
		{ "  -- only a comment\n", QERR_SQL, "empty query: no SQL statement" },
		{ ";", QERR_SQL, "empty query: no SQL statement" },
		{ "SELECT ?33", QERR_SQL, "variable number must be between ?1 and ?32" },
		{ "SELECT dur('x')", QERR_RUNTIME, "dur: bad duration 'x': expected a number and a unit such as 15m" },
		{ "SELECT length(randomblob(100000000))", QERR_RUNTIME, "string or blob too big" },
		{ "SELECT 'a' LIKE printf('%.*c', 3000, 'a')", QERR_RUNTIME, "LIKE or GLOB pattern too complex" },
		{ "SELECT cidr_match('10.0.0.1', '10.0.0.0/33')", QERR_RUNTIME, NULL },
	};
	struct sandbox *sb = *state;
	struct outcome o;
	char sql[4096];
	size_t n;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		run(sb, cases[i].sql, &o);
		if (o.e != cases[i].e || (cases[i].msg && strcmp(o.err, cases[i].msg) != 0))
			fail_msg("%s: want %s '%s', got %s '%s'", cases[i].sql, qerr_code(cases[i].e),
				 cases[i].msg ? cases[i].msg : "", qerr_code(o.e), o.err);
	}
	/* A NUL inside the SQL: never parsed up to it and then ignored. */
	run_budget(sb, "SELECT 1\0; DROP TABLE stats", 27, 5000, &o);
	assert_int_equal(o.e, QERR_SQL);
	assert_string_equal(o.err, "the SQL contains a NUL byte");
	/* Length need not be NUL-terminated: only len bytes count. */
	run_budget(sb, "SELECT 42; DROP TABLE stats", 9, 5000, &o);
	assert_int_equal(o.e, QERR_NONE);
	assert_string_equal(o.first, "42");

	/* Expression depth 500, compound SELECT 64. */
	n = (size_t)snprintf(sql, sizeof(sql), "SELECT 1");
	for (int i = 0; i < 600; i++)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, "+1");
	run(sb, sql, &o);
	assert_int_equal(o.e, QERR_SQL);
	assert_string_equal(o.err, "Expression tree is too large (maximum depth 500)");
	n = (size_t)snprintf(sql, sizeof(sql), "SELECT 1");
	for (int i = 0; i < 64; i++)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, " UNION ALL SELECT 1");
	run(sb, sql, &o);
	assert_int_equal(o.e, QERR_SQL);
	assert_string_equal(o.err, "too many terms in compound SELECT");

	assert_string_equal(qerr_code(QERR_SQL), "sql_error");
	assert_string_equal(qerr_code(QERR_RUNTIME), "runtime_error");
	assert_int_equal(qerr_http_status(QERR_DENIED, SQLITE_AUTH), 403);
	assert_int_equal(qerr_http_status(QERR_RUNTIME, SQLITE_ERROR), 400);
	assert_int_equal(qerr_http_status(QERR_RUNTIME, SQLITE_IOERR_READ), 500);
	assert_int_equal(qerr_http_status(QERR_TIMEOUT, SQLITE_INTERRUPT), 504);
}

static void test_too_large(void **state)
{
	struct sandbox_limits limits = { .max_sql_bytes = 100 };
	struct sandbox *sb;
	struct outcome o;
	char sql[202], err[256];

	(void)state;
	assert_int_equal(sandbox_open(&limits, &sb, err, sizeof(err)), 0);
	memset(sql, ' ', sizeof(sql));
	memcpy(sql, "SELECT 1", 8);
	run_budget(sb, sql, 100, 5000, &o);
	assert_int_equal(o.e, QERR_NONE);
	run_budget(sb, sql, 101, 5000, &o);
	assert_int_equal(o.e, QERR_TOO_LARGE);
	assert_string_equal(o.err, "the SQL is 101 bytes: the maximum is 100");
	/* Refused before parsing: even garbage is "too large", not an SQL error. */
	memset(sql, '(', sizeof(sql));
	run_budget(sb, sql, sizeof(sql), 5000, &o);
	assert_int_equal(o.e, QERR_TOO_LARGE);
	sandbox_close(sb);
}

/* ---- the time budget --------------------------------------------------------- */

static void test_timeout(void **state)
{
	struct sandbox *sb = *state;
	struct outcome o;
	int64_t t0 = mono_ns(), took;

	run_budget(sb, NEVER_ENDS, strlen(NEVER_ENDS), 200, &o);
	took = mono_ns() - t0;
	assert_int_equal(o.e, QERR_TIMEOUT);
	assert_non_null(strstr(o.err, "time budget of"));
	assert_true(took >= 200 * MS);
	assert_true(took < 450 * MS);

	/* A deadline already past: refused before any work. */
	run_budget(sb, "SELECT 1", 8, -1, &o);
	assert_int_equal(o.e, QERR_TIMEOUT);

	/* The sandbox is usable again at once. */
	run(sb, "SELECT 7", &o);
	assert_int_equal(o.e, QERR_NONE);
	assert_string_equal(o.first, "7");
}

struct canceller {
	struct sandbox *sb;
	int delay_ms;
};

static void *cancel_later(void *arg)
{
	struct canceller *c = arg;
	struct timespec ts = { 0, c->delay_ms * MS };

	nanosleep(&ts, NULL);
	sandbox_cancel(c->sb);
	return NULL;
}

static void test_cancel(void **state)
{
	struct sandbox *sb = *state;
	struct canceller c = { sb, 100 };
	struct outcome o;
	pthread_t th;
	int64_t t0 = mono_ns(), took;

	assert_int_equal(pthread_create(&th, NULL, cancel_later, &c), 0);
	run_budget(sb, NEVER_ENDS, strlen(NEVER_ENDS), 10000, &o);
	took = mono_ns() - t0;
	pthread_join(th, NULL);
	assert_int_equal(o.e, QERR_CANCELLED);
	assert_string_equal(o.err, "query cancelled");
	assert_true(took >= 100 * MS);
	assert_true(took < 1000 * MS);

	/* Cleared by the next prepare. */
	run(sb, "SELECT 8", &o);
	assert_int_equal(o.e, QERR_NONE);
	assert_string_equal(o.first, "8");
}

/* The check the span tables poll on their own connections. */
static void test_interrupted_callback(void **state)
{
	struct sandbox *sb = *state;
	sqlite3_stmt *st;
	char err[256];

	assert_int_equal(sandbox_prepare(sb, "SELECT 1", 8, mono_ns() + 5000 * MS, &st, err, sizeof(err)),
			 QERR_NONE);
	assert_int_equal(sandbox_interrupted(sb), 0);
	sandbox_cancel(sb);
	assert_int_equal(sandbox_interrupted(sb), 1);
	/* A step that failed because a table saw that, classified as cancelled. */
	assert_int_equal(sandbox_step_error(sb, SQLITE_ERROR, err, sizeof(err)), QERR_CANCELLED);
	sqlite3_finalize(st);

	assert_int_equal(sandbox_prepare(sb, "SELECT 1", 8, mono_ns() + 50 * MS, &st, err, sizeof(err)),
			 QERR_NONE);
	assert_int_equal(sandbox_interrupted(sb), 0);
	usleep(60 * 1000);
	assert_int_equal(sandbox_interrupted(sb), 1);
	assert_int_equal(sandbox_step_error(sb, SQLITE_INTERRUPT, err, sizeof(err)), QERR_TIMEOUT);
	sqlite3_finalize(st);

	/* No deadline. */
	assert_int_equal(sandbox_prepare(sb, "SELECT 1", 8, 0, &st, err, sizeof(err)), QERR_NONE);
	assert_int_equal(sandbox_interrupted(sb), 0);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	sqlite3_finalize(st);
}

/* ---- stats ------------------------------------------------------------------- */

static void test_stats_table(void **state)
{
	struct sandbox *sb = *state;
	sqlite3_stmt *st;
	char err[256];
	sqlite3 *db;
	const char *sql = "SELECT name, labels, value, kind, help FROM stats ORDER BY name";

	source_calls = 0;
	assert_int_equal(sandbox_prepare(sb, sql, strlen(sql), mono_ns() + 5000 * MS, &st, err, sizeof(err)),
			 QERR_NONE);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "events_lost");
	assert_int_equal(sqlite3_column_type(st, 2), SQLITE_FLOAT); /* past 2^53 */
	assert_int_equal(sqlite3_column_type(st, 4), SQLITE_NULL);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "queue_depth");
	assert_int_equal(sqlite3_column_type(st, 2), SQLITE_FLOAT);
	assert_true(sqlite3_column_double(st, 2) == 0.5);
	assert_string_equal((const char *)sqlite3_column_text(st, 1), "");
	assert_string_equal((const char *)sqlite3_column_text(st, 3), "gauge");
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "rows_written");
	assert_string_equal((const char *)sqlite3_column_text(st, 1), "table=\"flows\"");
	assert_int_equal(sqlite3_column_type(st, 2), SQLITE_INTEGER);
	assert_int_equal(sqlite3_column_int64(st, 2), 1234);
	assert_string_equal((const char *)sqlite3_column_text(st, 3), "counter");
	assert_string_equal((const char *)sqlite3_column_text(st, 4), "Rows written");
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	assert_int_equal(source_calls, 1); /* one snapshot per scan */

	/* Without a source: empty. Eponymous only: no CREATE VIRTUAL TABLE. */
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	assert_int_equal(stats_vtab_register(db, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM stats", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 0);
	sqlite3_finalize(st);
	assert_int_not_equal(sqlite3_exec(db, "CREATE VIRTUAL TABLE s2 USING stats", NULL, NULL, NULL), SQLITE_OK);
	assert_int_not_equal(sqlite3_exec(db, "INSERT INTO stats(name) VALUES ('x')", NULL, NULL, NULL), SQLITE_OK);
	assert_non_null(strstr(sqlite3_errmsg(db), "may not be modified"));
	sqlite3_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reads_work, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escapes_denied, setup, teardown),
		cmocka_unit_test_setup_teardown(test_denied_messages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sql_errors, setup, teardown),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_interrupted_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats_table, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
