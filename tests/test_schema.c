/*
 * Unit tests of schema/: partition names, creating and appending to a
 * partition, its metadata, sealing, and the catalog of a data dir.
 *
 * Real SQLite files in a fresh temp dir per test (under $FLOWSTORE_TEST_TMP,
 * else /tmp), removed by the teardown whether the test passed or not. What
 * a partition holds is checked with plain SQL through a second connection,
 * the way a user (or the query side) sees it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "schema.h"
#include "testsql.h"

#define NS 1000000000LL
#define HOUR (3600 * NS)
#define T0 (1795809600LL * NS) /* 2026-11-27T20:00:00Z */
#define T0_NAME "raw-20261127T200000Z-0000.db"

struct fixture {
	char dir[1024];
};

/* ---- helpers ----------------------------------------------------------------- */

static int setup(void **state)
{
	const char *base = getenv("FLOWSTORE_TEST_TMP");
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	if (!base || !*base)
		base = "/tmp";
	mkdir(base, 0755); /* may exist */
	snprintf(f->dir, sizeof(f->dir), "%s/test_schema.XXXXXX", base);
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static const char *path_of(const struct fixture *f, const char *name)
{
	static char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", f->dir, name);
	return path;
}

static int exists(const char *path, const char *suffix)
{
	char p[PATH_MAX + 16];
	struct stat st;

	snprintf(p, sizeof(p), "%s%s", path, suffix);
	return lstat(p, &st) == 0;
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

/* The whole file, for "left untouched" checks. Caller frees. */
static char *read_file(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf = malloc(1 << 20);

	assert_non_null(fp);
	assert_non_null(buf);
	*len = fread(buf, 1, 1 << 20, fp);
	fclose(fp);
	return buf;
}

static void assert_file_unchanged(const char *path, const char *before, size_t len)
{
	size_t now_len;
	char *now = read_file(path, &now_len);

	assert_int_equal(now_len, len);
	assert_memory_equal(now, before, len);
	free(now);
}

/* A plain SQLite file with our kind of name but made by someone else. */
static void make_sqlite_file(const char *path, const char *sql)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static sqlite3 *db_open_uri(const char *uri)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL),
			 SQLITE_OK);
	return db;
}

static int q_null(sqlite3 *db, const char *sql)
{
	int is_null;

	test_sql_value(db, sql, &is_null);
	return is_null;
}

static void q_text(sqlite3 *db, const char *sql, char *out, size_t len)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	snprintf(out, len, "%s", sqlite3_column_type(st, 0) == SQLITE_NULL ? "(null)"
			   : (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
}

static void assert_q_text(sqlite3 *db, const char *sql, const char *want)
{
	char got[256];

	q_text(db, sql, got, sizeof(got));
	if (strcmp(got, want))
		fail_msg("%s: got '%s', want '%s'", sql, got, want);
}

static struct partition *create(const struct fixture *f, int64_t start, unsigned seq)
{
	struct partition *p = NULL;

	assert_int_equal(partition_create(f->dir, start, HOUR, seq, start + 5, &p), 0);
	assert_non_null(p);
	return p;
}

static struct schema_row flow_at(int64_t ts, int64_t ts_end)
{
	struct schema_row r = { .table = SCHEMA_FLOWS };

	r.flow.ts = ts;
	r.flow.ts_end = ts_end;
	strcpy(r.flow.proto, "tcp");
	strcpy(r.flow.orig_addr, "10.0.0.5");
	strcpy(r.flow.resp_addr, "2001:db8::1");
	r.flow.orig_port = 40000;
	r.flow.resp_port = 443;
	r.flow.orig_pkts = 10;
	r.flow.orig_bytes = 1000;
	r.flow.resp_pkts = 20;
	r.flow.resp_bytes = 30000;
	strcpy(r.flow.conn_state, "SF");
	strcpy(r.flow.history, "ShADadFf");
	strcpy(r.flow.ifname, "eth0");
	strcpy(r.flow.end_reason, "end");
	r.flow.pid = 1234;
	strcpy(r.flow.comm, "curl");
	r.flow.sock_cookie = 777;
	return r;
}

static struct schema_row conn_at(int64_t ts, int64_t ts_end)
{
	struct schema_row r = { .table = SCHEMA_CONNECTIONS };

	r.conn.ts = ts;
	r.conn.ts_end = ts_end;
	strcpy(r.conn.direction, "out");
	strcpy(r.conn.orig_addr, "10.0.0.5");
	strcpy(r.conn.resp_addr, "203.0.113.7");
	r.conn.orig_port = 40001;
	r.conn.resp_port = 22;
	r.conn.pid = 4321;
	r.conn.uid = 1000;
	strcpy(r.conn.comm, "ssh");
	r.conn.cgroup_id = 99;
	r.conn.bytes_sent = 5000;
	r.conn.bytes_received = 6000;
	r.conn.segs_out = 7;
	r.conn.segs_in = 8;
	r.conn.retransmits = 1;
	r.conn.srtt_us = 250;
	strcpy(r.conn.states, "SYN_SENT>ESTABLISHED>FIN_WAIT1");
	strcpy(r.conn.close_state, "FIN_WAIT1");
	r.conn.sock_cookie = 888;
	return r;
}

static struct schema_row tcp_state_at(int64_t ts)
{
	struct schema_row r = { .table = SCHEMA_TCP_STATES };

	r.state.ts = ts;
	strcpy(r.state.direction, "in");
	strcpy(r.state.orig_addr, "198.51.100.2");
	strcpy(r.state.resp_addr, "10.0.0.5");
	r.state.orig_port = 50000;
	r.state.resp_port = 80;
	strcpy(r.state.old_state, "SYN_RECV");
	strcpy(r.state.new_state, "ESTABLISHED");
	r.state.pid = 55;
	strcpy(r.state.comm, "nginx");
	r.state.sock_cookie = 999;
	return r;
}

static void add_committed(struct partition *p, const struct schema_row *rows, size_t n)
{
	assert_int_equal(partition_begin(p), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(partition_add(p, &rows[i]), 0);
	assert_int_equal(partition_commit(p), 0);
}

/* A closed partition at T0 with a few rows of each table; its path. */
static const char *make_partition(const struct fixture *f, int64_t start, unsigned seq)
{
	struct schema_row rows[] = { flow_at(start + 1, start + 2), flow_at(start + 3, start + 9),
				     conn_at(start + 4, start + 8), tcp_state_at(start + 5) };
	struct partition *p = create(f, start, seq);
	static char path[PATH_MAX];

	add_committed(p, rows, 4);
	snprintf(path, sizeof(path), "%s", partition_path(p));
	partition_close(p);
	return path;
}

/* ---- naming ---------------------------------------------------------------------- */

static void test_name_round_trip(void **state)
{
	char name[SCHEMA_NAME_LEN];
	int64_t start;
	unsigned seq;

	(void)state;
	assert_int_equal(partition_name_format(name, sizeof(name), T0, 0), 0);
	assert_string_equal(name, T0_NAME);
	assert_int_equal(partition_name_parse(name, &start, &seq), 0);
	assert_int_equal(start, T0);
	assert_int_equal(seq, 0);

	assert_int_equal(partition_name_format(name, sizeof(name), T0 + 3599 * NS, 42), 0);
	assert_string_equal(name, "raw-20261127T205959Z-0042.db");
	assert_int_equal(partition_name_format(name, sizeof(name), 0, 9999), 0);
	assert_string_equal(name, "raw-19700101T000000Z-9999.db");
	assert_int_equal(partition_name_parse(name, &start, &seq), 0);
	assert_int_equal(start, 0);
	assert_int_equal(seq, 9999);

	/* a spread of times, leap days included */
	srand(1);
	for (int i = 0; i < 2000; i++) {
		int64_t t = ((int64_t)rand() * 4 + rand() % 4) * NS; /* up to 2106 */
		unsigned s = (unsigned)rand() % 10000;

		assert_int_equal(partition_name_format(name, sizeof(name), t, s), 0);
		assert_int_equal(partition_name_parse(name, &start, &seq), 0);
		assert_int_equal(start, t);
		assert_int_equal(seq, s);
	}
	assert_int_equal(partition_name_parse("raw-20240229T235959Z-0001.db", &start, NULL), 0);
}

static void test_name_format_errors(void **state)
{
	char name[SCHEMA_NAME_LEN];

	(void)state;
	assert_int_equal(partition_name_format(name, sizeof(name), T0, 10000), -ERANGE);
	assert_int_equal(partition_name_format(name, 28, T0, 0), -ENAMETOOLONG);
	assert_int_equal(partition_name_format(name, 29, T0, 0), 0);
	assert_int_equal(partition_name_format(name, sizeof(name), -HOUR, 0), -EINVAL);
	assert_int_equal(partition_name_format(name, sizeof(name), T0 + 1, 0), -EINVAL);
}

static void test_name_sort_order(void **state)
{
	/* increasing (start, seq) */
	static const struct { int64_t start; unsigned seq; } order[] = {
		{ 0, 0 },
		{ 0, 9 },
		{ 0, 10 },
		{ 3600 * NS, 0 },
		{ 946684799LL * NS, 9999 },  /* 1999-12-31T23:59:59Z */
		{ 946684800LL * NS, 0 },     /* 2000-01-01 */
		{ 1709164800LL * NS, 0 },    /* 2024-02-29 */
		{ T0 - HOUR, 3 },
		{ T0, 0 },
		{ T0, 1 },
		{ T0 + HOUR, 0 },
		{ 4102444800LL * NS, 0 },    /* 2100-01-01 */
	};
	char prev[SCHEMA_NAME_LEN] = "", name[SCHEMA_NAME_LEN];

	(void)state;
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		assert_int_equal(partition_name_format(name, sizeof(name), order[i].start, order[i].seq), 0);
		if (strcmp(prev, name) >= 0)
			fail_msg("'%s' does not sort after '%s'", name, prev);
		strcpy(prev, name);
	}
}

static void test_name_rejects(void **state)
{
	static const char *const bad[] = {
		"",
		"raw-",
		"RAW-20261127T200000Z-0000.db",
		"rav-20261127T200000Z-0000.db",
		"xraw-20261127T200000Z-0000.db",
		"raw-20261127T200000Z-0000.db-wal",
		"raw-20261127T200000Z-0000.db-journal",
		"raw-20261127T200000Z-0000.dbx",
		"raw-20261127T200000Z-0000.db ",
		" raw-20261127T200000Z-0000.db",
		"raw-20261127T200000Z-0000.sqlite",
		"raw-20261127T200000Z-000.db",
		"raw-20261127T200000Z-00000.db",
		"raw-20261127T200000Z-000a.db",
		"raw-20261127T200000Z--001.db",
		"raw-20261127t200000z-0000.db",
		"raw-2026112T7200000Z-0000.db",
		"raw-20261127T200000-00000.db",
		"raw-2026-11-27T200000Z-0000.db",
		"raw-+0261127T200000Z-0000.db",
		"raw-20261327T200000Z-0000.db", /* month 13 */
		"raw-20261100T200000Z-0000.db", /* day 0 */
		"raw-20260230T200000Z-0000.db", /* 30 February */
		"raw-20250229T200000Z-0000.db", /* not a leap year */
		"raw-20261127T240000Z-0000.db", /* hour 24 */
		"raw-20261127T206000Z-0000.db", /* minute 60 */
		"raw-20261127T200060Z-0000.db", /* second 60 */
		"raw-19691231T230000Z-0000.db", /* before 1970 */
		"raw-99991231T230000Z-0000.db", /* beyond int64 ns */
		"notes.txt",
	};
	int64_t start = 123;
	unsigned seq = 7;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (partition_name_parse(bad[i], &start, &seq) != -EINVAL)
			fail_msg("'%s' parsed as a partition name", bad[i]);
	assert_int_equal(partition_name_parse(NULL, &start, &seq), -EINVAL);
	assert_int_equal(start, 123);
	assert_int_equal(seq, 7);
}

static void test_period_start(void **state)
{
	const int64_t m15 = 900 * NS, day = 86400 * NS;

	(void)state;
	assert_int_equal(partition_period_start(T0, HOUR), T0);
	assert_int_equal(partition_period_start(T0 + 1, HOUR), T0);
	assert_int_equal(partition_period_start(T0 + HOUR - 1, HOUR), T0);
	assert_int_equal(partition_period_start(T0 + HOUR, HOUR), T0 + HOUR);
	assert_int_equal(partition_period_start(T0 - 1, HOUR), T0 - HOUR);
	assert_int_equal(partition_period_start(T0 + 14 * 60 * NS, m15), T0);
	assert_int_equal(partition_period_start(T0 + 15 * 60 * NS, m15), T0 + m15);
	assert_int_equal(partition_period_start(T0 + 44 * 60 * NS + 5, m15), T0 + 2 * m15);
	/* days align to UTC midnight: T0 is 20:00 */
	assert_int_equal(partition_period_start(T0, day), T0 - 20 * HOUR);
	assert_int_equal(partition_period_start(T0 + 4 * HOUR, day), T0 + 4 * HOUR);
	assert_int_equal(partition_period_start(T0 + 4 * HOUR - 1, day), T0 - 20 * HOUR);
	assert_int_equal(partition_period_start(0, HOUR), 0);
	assert_int_equal(partition_period_start(-1, HOUR), -HOUR); /* floor */
}

/* ---- the open partition ----------------------------------------------------------- */

static void test_create(void **state)
{
	struct fixture *f = *state;
	struct partition *p = create(f, T0, 0);
	const char *path = path_of(f, T0_NAME);
	sqlite3 *db;

	assert_string_equal(partition_path(p), path);
	assert_int_equal(partition_period_end(p), T0 + HOUR);
	assert_int_equal(partition_rows(p), 0);
	db = test_sql_open_ro(path);
	assert_int_equal(test_sql_int(db, "PRAGMA application_id"), 0x464C5753);
	assert_int_equal(test_sql_int(db, "PRAGMA user_version"), SCHEMA_VERSION);
	assert_q_text(db, "PRAGMA journal_mode", "wal");
	assert_int_equal(test_sql_int(db, "SELECT count(*) FROM meta"), 1);
	assert_int_equal(test_sql_int(db, "SELECT schema_version FROM meta"), SCHEMA_VERSION);
	assert_int_equal(test_sql_int(db, "SELECT period_start FROM meta"), T0);
	assert_int_equal(test_sql_int(db, "SELECT period_end FROM meta"), T0 + HOUR);
	assert_int_equal(test_sql_int(db, "SELECT seq FROM meta"), 0);
	assert_int_equal(test_sql_int(db, "SELECT created FROM meta"), T0 + 5);
	assert_int_equal(test_sql_int(db, "SELECT sealed FROM meta"), 0);
	assert_true(q_null(db, "SELECT sealed_at FROM meta"));
	assert_int_equal(test_sql_int(db, "SELECT count(*) FROM meta_tables WHERE rows = 0 AND"
			       " ts_min IS NULL AND ts_max IS NULL AND ts_end_min IS NULL"
			       " AND ts_end_max IS NULL AND name IN"
			       " ('flows', 'connections', 'tcp_states')"), 3);
	/* append-only: no secondary index before the seal */
	assert_int_equal(test_sql_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index'"
			       " AND sql IS NOT NULL"), 0);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	partition_close(p);
}

static void test_create_exists(void **state)
{
	struct fixture *f = *state;
	struct partition *p = create(f, T0, 0), *q = NULL;
	struct schema_row row = flow_at(T0 + 1, T0 + 2);

	assert_int_equal(partition_create(f->dir, T0, HOUR, 0, T0, &q), -EEXIST);
	assert_null(q);
	assert_non_null(strstr(schema_last_error(), T0_NAME));
	/* the first owner of the name is unharmed */
	add_committed(p, &row, 1);
	assert_int_equal(partition_rows(p), 1);
	partition_close(p);
	q = create(f, T0, 1);
	assert_string_equal(partition_path(q), path_of(f, "raw-20261127T200000Z-0001.db"));
	partition_close(q);
}

static void test_create_errors(void **state)
{
	struct fixture *f = *state;
	struct partition *p = NULL;
	char missing[PATH_MAX];
	struct catalog cat;

	assert_int_equal(partition_create(f->dir, T0, 0, 0, T0, &p), -EINVAL);
	assert_int_equal(partition_create(f->dir, T0, -HOUR, 0, T0, &p), -EINVAL);
	assert_int_equal(partition_create(f->dir, T0, HOUR, 10000, T0, &p), -ERANGE);
	assert_int_equal(partition_create(f->dir, T0 + 1, HOUR, 0, T0, &p), -EINVAL);
	assert_int_equal(partition_create(f->dir, INT64_MAX - 10, HOUR, 0, T0, &p), -EINVAL);
	snprintf(missing, sizeof(missing), "%s/nope", f->dir);
	assert_int_equal(partition_create(missing, T0, HOUR, 0, T0, &p), -ENOENT);
	assert_null(p);
	/* nothing was left behind */
	assert_int_equal(catalog_scan(f->dir, &cat), 0);
	assert_int_equal(cat.n, 0);
	assert_int_equal(cat.foreign, 0);
	catalog_free(&cat);
}

static void test_add_commit(void **state)
{
	struct fixture *f = *state;
	struct partition *p = create(f, T0, 0);
	struct schema_row rows[] = { flow_at(T0 + 100, T0 + 900), flow_at(T0 + 50, T0 + 60),
				     conn_at(T0 + 10, T0 + 20), tcp_state_at(T0 + 30), tcp_state_at(T0 + 40) };
	struct schema_row late = flow_at(T0 - 5, T0 + 5000); /* late rows are kept */
	sqlite3 *db = test_sql_open_ro(partition_path(p));

	assert_int_equal(partition_begin(p), 0);
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(partition_add(p, &rows[i]), 0);
	/* nothing visible before the commit */
	assert_int_equal(test_sql_int(db, "SELECT count(*) FROM flows"), 0);
	assert_int_equal(partition_rows(p), 0);
	assert_int_equal(partition_commit(p), 0);
	assert_int_equal(partition_rows(p), 5);
	assert_int_equal(test_sql_int(db, "SELECT count(*) FROM flows"), 2);
	assert_int_equal(test_sql_int(db, "SELECT count(*) FROM connections"), 1);
	assert_int_equal(test_sql_int(db, "SELECT count(*) FROM tcp_states"), 2);
	assert_int_equal(test_sql_int(db, "SELECT rows FROM meta_tables WHERE name = 'flows'"), 2);
	assert_int_equal(test_sql_int(db, "SELECT ts_min FROM meta_tables WHERE name = 'flows'"), T0 + 50);
	assert_int_equal(test_sql_int(db, "SELECT ts_max FROM meta_tables WHERE name = 'flows'"), T0 + 100);
	assert_int_equal(test_sql_int(db, "SELECT ts_end_min FROM meta_tables WHERE name = 'flows'"), T0 + 60);
	assert_int_equal(test_sql_int(db, "SELECT ts_end_max FROM meta_tables WHERE name = 'flows'"), T0 + 900);
	assert_int_equal(test_sql_int(db, "SELECT rows FROM meta_tables WHERE name = 'connections'"), 1);
	assert_int_equal(test_sql_int(db, "SELECT ts_min FROM meta_tables WHERE name = 'connections'"), T0 + 10);
	assert_int_equal(test_sql_int(db, "SELECT ts_end_max FROM meta_tables WHERE name = 'connections'"), T0 + 20);
	assert_int_equal(test_sql_int(db, "SELECT rows FROM meta_tables WHERE name = 'tcp_states'"), 2);
	assert_int_equal(test_sql_int(db, "SELECT ts_min FROM meta_tables WHERE name = 'tcp_states'"), T0 + 30);
	assert_int_equal(test_sql_int(db, "SELECT ts_max FROM meta_tables WHERE name = 'tcp_states'"), T0 + 40);
	assert_true(q_null(db, "SELECT ts_end_min FROM meta_tables WHERE name = 'tcp_states'"));
	assert_true(q_null(db, "SELECT ts_end_max FROM meta_tables WHERE name = 'tcp_states'"));

	/* a second commit extends the totals; untouched tables keep theirs */
	add_committed(p, &late, 1);
	assert_int_equal(partition_rows(p), 6);
	assert_int_equal(test_sql_int(db, "SELECT rows FROM meta_tables WHERE name = 'flows'"), 3);
	assert_int_equal(test_sql_int(db, "SELECT ts_min FROM meta_tables WHERE name = 'flows'"), T0 - 5);
	assert_int_equal(test_sql_int(db, "SELECT ts_max FROM meta_tables WHERE name = 'flows'"), T0 + 100);
	assert_int_equal(test_sql_int(db, "SELECT ts_end_min FROM meta_tables WHERE name = 'flows'"), T0 + 60);
	assert_int_equal(test_sql_int(db, "SELECT ts_end_max FROM meta_tables WHERE name = 'flows'"), T0 + 5000);
	assert_int_equal(test_sql_int(db, "SELECT rows FROM meta_tables WHERE name = 'tcp_states'"), 2);
	/* metadata equals the rows */
	assert_int_equal(test_sql_int(db, "SELECT count(*) FROM meta_tables m WHERE m.name = 'flows' AND"
			       " (m.rows, m.ts_min, m.ts_max, m.ts_end_min, m.ts_end_max) ="
			       " (SELECT count(*), min(ts), max(ts), min(ts_end), max(ts_end) FROM flows)"), 1);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	partition_close(p);
}

static void test_flow_columns(void **state)
{
	struct fixture *f = *state;
	struct partition *p = create(f, T0, 0);
	struct schema_row rows[2] = { flow_at(T0 + 1, T0 + 2), { .table = SCHEMA_FLOWS } };
	sqlite3 *db;

	rows[1].flow.ts = T0 + 3; /* everything else zero or empty */
	rows[1].flow.ts_end = T0 + 4;
	strcpy(rows[1].flow.proto, "17");
	add_committed(p, rows, 2);
	db = test_sql_open_ro(partition_path(p));
	assert_q_text(db, "SELECT quote(ts) || ',' || quote(ts_end) || ',' || quote(proto) || ','"
		      " || quote(orig_addr) || ',' || quote(orig_port) || ',' || quote(resp_addr)"
		      " || ',' || quote(resp_port) || ',' || quote(orig_pkts) || ','"
		      " || quote(orig_bytes) || ',' || quote(resp_pkts) || ',' || quote(resp_bytes)"
		      " || ',' || quote(conn_state) || ',' || quote(history) || ',' || quote(ifname)"
		      " || ',' || quote(end_reason) || ',' || quote(pid) || ',' || quote(comm)"
		      " || ',' || quote(sock_cookie) FROM flows WHERE ts = 1795809600000000001",
		      "1795809600000000001,1795809600000000002,'tcp','10.0.0.5',40000,"
		      "'2001:db8::1',443,10,1000,20,30000,'SF','ShADadFf','eth0','end',1234,"
		      "'curl',777");
	assert_q_text(db, "SELECT quote(proto) || ',' || quote(orig_addr) || ',' || quote(orig_port)"
		      " || ',' || quote(resp_addr) || ',' || quote(orig_pkts) || ','"
		      " || quote(conn_state) || ',' || quote(history) || ',' || quote(ifname) || ','"
		      " || quote(end_reason) || ',' || quote(pid) || ',' || quote(comm) || ','"
		      " || quote(sock_cookie) FROM flows WHERE ts = 1795809600000000003",
		      "'17',NULL,0,NULL,0,NULL,NULL,NULL,NULL,NULL,NULL,NULL");
	assert_q_text(db, "SELECT typeof(proto) FROM flows LIMIT 1", "text");
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	partition_close(p);
}

static void test_conn_and_state_columns(void **state)
{
	struct fixture *f = *state;
	struct partition *p = create(f, T0, 0);
	struct schema_row rows[4] = { conn_at(T0 + 1, T0 + 2), conn_at(T0 + 3, T0 + 4),
				      tcp_state_at(T0 + 5), tcp_state_at(T0 + 6) };
	sqlite3 *db;

	rows[1].conn.pid = 0; /* unknown process: pid and uid NULL */
	rows[1].conn.uid = 1000;
	rows[1].conn.cgroup_id = 0;
	rows[1].conn.sock_cookie = 0;
	rows[1].conn.direction[0] = rows[1].conn.comm[0] = rows[1].conn.states[0] = 0;
	rows[0].conn.uid = 0; /* root is a uid, not NULL */
	rows[3].state.pid = 0;
	rows[3].state.sock_cookie = 0;
	rows[3].state.comm[0] = rows[3].state.direction[0] = 0;
	add_committed(p, rows, 4);
	db = test_sql_open_ro(partition_path(p));
	assert_q_text(db, "SELECT quote(ts) || ',' || quote(ts_end) || ',' || quote(direction)"
		      " || ',' || quote(orig_addr) || ',' || quote(orig_port) || ',' || quote(resp_addr)"
		      " || ',' || quote(resp_port) || ',' || quote(pid) || ',' || quote(uid) || ','"
		      " || quote(comm) || ',' || quote(cgroup_id) || ',' || quote(bytes_sent) || ','"
		      " || quote(bytes_received) || ',' || quote(segs_out) || ',' || quote(segs_in)"
		      " || ',' || quote(retransmits) || ',' || quote(srtt_us) || ',' || quote(states)"
		      " || ',' || quote(close_state) || ',' || quote(sock_cookie)"
		      " FROM connections WHERE ts = 1795809600000000001",
		      "1795809600000000001,1795809600000000002,'out','10.0.0.5',40001,"
		      "'203.0.113.7',22,4321,0,'ssh',99,5000,6000,7,8,1,250,"
		      "'SYN_SENT>ESTABLISHED>FIN_WAIT1','FIN_WAIT1',888");
	assert_q_text(db, "SELECT quote(direction) || ',' || quote(pid) || ',' || quote(uid) || ','"
		      " || quote(comm) || ',' || quote(cgroup_id) || ',' || quote(states) || ','"
		      " || quote(sock_cookie) FROM connections WHERE ts = 1795809600000000003",
		      "NULL,NULL,NULL,NULL,NULL,NULL,NULL");
	assert_q_text(db, "SELECT quote(ts) || ',' || quote(direction) || ',' || quote(orig_addr)"
		      " || ',' || quote(orig_port) || ',' || quote(resp_addr) || ',' || quote(resp_port)"
		      " || ',' || quote(old_state) || ',' || quote(new_state) || ',' || quote(pid)"
		      " || ',' || quote(comm) || ',' || quote(sock_cookie)"
		      " FROM tcp_states WHERE ts = 1795809600000000005",
		      "1795809600000000005,'in','198.51.100.2',50000,'10.0.0.5',80,'SYN_RECV',"
		      "'ESTABLISHED',55,'nginx',999");
	assert_q_text(db, "SELECT quote(direction) || ',' || quote(pid) || ',' || quote(comm) || ','"
		      " || quote(sock_cookie) FROM tcp_states WHERE ts = 1795809600000000006",
		      "NULL,NULL,NULL,NULL");
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	partition_close(p);
}

static void test_rollback(void **state)
{
	struct fixture *f = *state;
	struct partition *p = create(f, T0, 0);
	struct schema_row kept[] = { flow_at(T0 + 10, T0 + 20), tcp_state_at(T0 + 15) };
	struct schema_row lost[] = { flow_at(T0 - HOUR, T0 + HOUR), conn_at(T0 + 1, T0 + 2),
				     tcp_state_at(T0 + 2 * HOUR) };
	struct schema_row after = flow_at(T0 + 30, T0 + 40);
	sqlite3 *db = test_sql_open_ro(partition_path(p));

	add_committed(p, kept, 2);
	assert_int_equal(partition_begin(p), 0);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(partition_add(p, &lost[i]), 0);
	partition_rollback(p);
	assert_int_equal(partition_rows(p), 2);
	assert_int_equal(test_sql_int(db, "SELECT count(*) FROM flows"), 1);
	assert_int_equal(test_sql_int(db, "SELECT count(*) FROM connections"), 0);
	assert_int_equal(test_sql_int(db, "SELECT count(*) FROM tcp_states"), 1);
	assert_int_equal(test_sql_int(db, "SELECT rows FROM meta_tables WHERE name = 'connections'"), 0);

	/* still usable, and the rolled-back rows left no trace in the totals */
	add_committed(p, &after, 1);
	assert_int_equal(partition_rows(p), 3);
	assert_int_equal(test_sql_int(db, "SELECT rows FROM meta_tables WHERE name = 'flows'"), 2);
	assert_int_equal(test_sql_int(db, "SELECT ts_min FROM meta_tables WHERE name = 'flows'"), T0 + 10);
	assert_int_equal(test_sql_int(db, "SELECT ts_max FROM meta_tables WHERE name = 'flows'"), T0 + 30);
	assert_int_equal(test_sql_int(db, "SELECT ts_end_max FROM meta_tables WHERE name = 'flows'"), T0 + 40);
	assert_int_equal(test_sql_int(db, "SELECT ts_max FROM meta_tables WHERE name = 'tcp_states'"), T0 + 15);
	assert_true(q_null(db, "SELECT ts_min FROM meta_tables WHERE name = 'connections'"));
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	partition_close(p);
}

static void test_transaction_misuse(void **state)
{
	struct fixture *f = *state;
	struct partition *p = create(f, T0, 0);
	struct schema_row row = flow_at(T0, T0), bad = flow_at(T0, T0);

	bad.table = SCHEMA_NTABLES;
	assert_int_equal(partition_add(p, &row), -EINVAL);   /* no begin */
	assert_int_equal(partition_commit(p), -EINVAL);
	assert_int_equal(partition_begin(p), 0);
	assert_int_equal(partition_begin(p), -EINVAL);
	assert_int_equal(partition_add(p, &bad), -EINVAL);
	assert_int_equal(partition_add(p, NULL), -EINVAL);
	assert_int_equal(partition_add(p, &row), 0);
	assert_int_equal(partition_commit(p), 0);
	assert_int_equal(partition_rows(p), 1);
	partition_rollback(p); /* harmless outside a transaction */
	assert_int_equal(partition_rows(p), 1);
	partition_close(p);
	partition_close(NULL);
	partition_rollback(NULL);
}

/* ---- metadata and sealing ------------------------------------------------------------ */

static void assert_meta_rows(const struct partition_meta *m, int64_t start, unsigned seq)
{
	assert_int_equal(m->schema_version, SCHEMA_VERSION);
	assert_int_equal(m->period_start_ns, start);
	assert_int_equal(m->period_end_ns, start + HOUR);
	assert_int_equal(m->seq, seq);
	assert_int_equal(m->created_ns, start + 5);
	assert_int_equal(m->tables[SCHEMA_FLOWS].rows, 2);
	assert_int_equal(m->tables[SCHEMA_FLOWS].ts_min, start + 1);
	assert_int_equal(m->tables[SCHEMA_FLOWS].ts_max, start + 3);
	assert_int_equal(m->tables[SCHEMA_FLOWS].ts_end_min, start + 2);
	assert_int_equal(m->tables[SCHEMA_FLOWS].ts_end_max, start + 9);
	assert_int_equal(m->tables[SCHEMA_CONNECTIONS].rows, 1);
	assert_int_equal(m->tables[SCHEMA_CONNECTIONS].ts_end_max, start + 8);
	assert_int_equal(m->tables[SCHEMA_TCP_STATES].rows, 1);
	assert_int_equal(m->tables[SCHEMA_TCP_STATES].ts_min, start + 5);
	assert_int_equal(m->tables[SCHEMA_TCP_STATES].ts_end_min, 0);
}

static void test_read_meta_open(void **state)
{
	struct fixture *f = *state;
	struct partition *p = create(f, T0, 3);
	struct schema_row rows[] = { flow_at(T0 + 1, T0 + 2), flow_at(T0 + 3, T0 + 9),
				     conn_at(T0 + 4, T0 + 8), tcp_state_at(T0 + 5) };
	struct schema_row pending = flow_at(T0 - 100, T0 + 100);
	struct partition_meta m;

	assert_int_equal(partition_read_meta(partition_path(p), &m), 0);
	assert_int_equal(m.tables[SCHEMA_FLOWS].rows, 0);
	assert_int_equal(m.tables[SCHEMA_FLOWS].ts_min, 0);
	add_committed(p, rows, 4);
	/* while the writer holds the file, an uncommitted row in flight */
	assert_int_equal(partition_begin(p), 0);
	assert_int_equal(partition_add(p, &pending), 0);
	memset(&m, 0xff, sizeof(m));
	assert_int_equal(partition_read_meta(partition_path(p), &m), 0);
	assert_meta_rows(&m, T0, 3);
	assert_int_equal(m.sealed, 0);
	assert_int_equal(m.sealed_ns, 0);
	partition_rollback(p);
	partition_close(p);
	assert_int_equal(partition_read_meta(path_of(f, "raw-20261127T200000Z-0003.db"), &m), 0);
	assert_meta_rows(&m, T0, 3);
}

static void test_read_meta_errors(void **state)
{
	struct fixture *f = *state;
	struct partition_meta m;
	const char *path;

	assert_int_equal(partition_read_meta(path_of(f, T0_NAME), &m), -ENOENT);
	path = path_of(f, "garbage.db");
	write_file(path, "this is not a database, not at all, no.............................."
		   "....................................................", 120);
	assert_int_equal(partition_read_meta(path, &m), -EINVAL);
	assert_non_null(strstr(schema_last_error(), path));
	path = path_of(f, "empty.db");
	write_file(path, "", 0);
	assert_int_equal(partition_read_meta(path, &m), -EINVAL);
	path = path_of(f, "other.db");
	make_sqlite_file(path, "PRAGMA application_id = 42; CREATE TABLE meta(x);");
	assert_int_equal(partition_read_meta(path, &m), -EINVAL);
	assert_non_null(strstr(schema_last_error(), "application_id"));
	path = path_of(f, "nometa.db");
	make_sqlite_file(path, "PRAGMA application_id = 1179407187; PRAGMA user_version = 1;"
			 " CREATE TABLE flows(x);");
	assert_int_equal(partition_read_meta(path, &m), -EINVAL);
	assert_non_null(strstr(schema_last_error(), "meta"));
	path = path_of(f, "future.db");
	make_sqlite_file(path, "PRAGMA application_id = 1179407187; PRAGMA user_version = 99;");
	assert_int_equal(partition_read_meta(path, &m), -EINVAL);
	assert_int_equal(partition_read_meta(f->dir, &m), -EINVAL); /* a directory */
}

static const char *const seal_index_names[] = {
	"connections_orig_addr", "connections_pid", "connections_resp_addr", "connections_ts",
	"flows_orig_addr", "flows_resp_addr", "flows_resp_port", "flows_ts",
	"tcp_states_sock_cookie", "tcp_states_ts",
};

static void assert_sealed(const char *path, int64_t sealed_ns)
{
	char uri[PATH_MAX + 32], name[64];
	struct partition_meta m;
	struct stat st;
	sqlite3 *db;

	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0444);
	assert_false(exists(path, "-wal"));
	assert_false(exists(path, "-shm"));
	assert_false(exists(path, "-journal"));
	assert_int_equal(partition_read_meta(path, &m), 0);
	assert_int_equal(m.sealed, 1);
	assert_int_equal(m.sealed_ns, sealed_ns);

	snprintf(uri, sizeof(uri), "file:%s?immutable=1", path);
	db = db_open_uri(uri);
	assert_q_text(db, "PRAGMA journal_mode", "delete");
	assert_int_equal(test_sql_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index'"
			       " AND sql IS NOT NULL"), 10);
	for (size_t i = 0; i < 10; i++) {
		char sql[128];

		snprintf(sql, sizeof(sql), "SELECT name FROM sqlite_master WHERE type = 'index'"
			 " AND sql IS NOT NULL ORDER BY name LIMIT 1 OFFSET %zu", i);
		q_text(db, sql, name, sizeof(name));
		assert_string_equal(name, seal_index_names[i]);
	}
	/* an address and a window: the window's entries only */
	assert_q_text(db, "SELECT group_concat(name) FROM pragma_index_info('flows_orig_addr')",
		      "orig_addr,ts");
	assert_q_text(db, "SELECT group_concat(name) FROM pragma_index_info('flows_resp_addr')",
		      "resp_addr,ts");
	assert_q_text(db, "SELECT group_concat(name) FROM pragma_index_info('connections_orig_addr')",
		      "orig_addr,ts");
	assert_q_text(db, "SELECT group_concat(name) FROM pragma_index_info('connections_resp_addr')",
		      "resp_addr,ts");
	assert_true(test_sql_int(db, "SELECT count(*) FROM sqlite_stat1") > 0); /* ANALYZEd */
	assert_int_equal(test_sql_int(db, "SELECT sealed FROM meta"), 1);
	assert_int_equal(test_sql_int(db, "SELECT count(*) FROM flows"), 2);
	assert_int_equal(test_sql_int(db, "SELECT count(*) FROM flows WHERE resp_port = 443"), 2);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static void test_seal(void **state)
{
	struct fixture *f = *state;
	const char *path = make_partition(f, T0, 0);
	atomic_int cancel = 0;
	struct partition_meta m;

	assert_int_equal(partition_seal(path, T0 + HOUR + 7, &cancel), 0);
	assert_sealed(path, T0 + HOUR + 7);
	assert_int_equal(partition_read_meta(path, &m), 0);
	assert_meta_rows(&m, T0, 0);
	/* again: nothing to do, the first seal time stays */
	assert_int_equal(partition_seal(path, T0 + 2 * HOUR, NULL), 0);
	assert_sealed(path, T0 + HOUR + 7);
	/* a seal that died before its chmod is finished by the next one */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(partition_seal(path, T0 + 3 * HOUR, NULL), 0);
	assert_sealed(path, T0 + HOUR + 7);
}

/* A seal killed after some of its steps is completed by the next run. */
static void test_seal_resumes(void **state)
{
	struct fixture *f = *state;
	const char *path = make_partition(f, T0, 0);
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE INDEX flows_ts ON flows(ts);"
				      " CREATE INDEX tcp_states_ts ON tcp_states(ts);"
				      " PRAGMA journal_mode = DELETE;", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	assert_int_equal(partition_seal(path, T0 + HOUR, NULL), 0);
	assert_sealed(path, T0 + HOUR);

	/* sealed = 1 but back in WAL mode with a WAL (someone reopened it) */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode = WAL;", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	assert_int_equal(partition_seal(path, T0 + 2 * HOUR, NULL), 0);
	assert_sealed(path, T0 + HOUR);
}

static void test_seal_cancel(void **state)
{
	struct fixture *f = *state;
	const char *path = make_partition(f, T0, 0);
	atomic_int cancel = 1;
	struct partition_meta m;
	struct stat st;
	sqlite3 *db;

	assert_int_equal(partition_seal(path, T0 + HOUR, &cancel), -ECANCELED);
	assert_int_equal(partition_read_meta(path, &m), 0);
	assert_int_equal(m.sealed, 0);
	assert_meta_rows(&m, T0, 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0200, 0200);
	db = test_sql_open_ro(path);
	assert_q_text(db, "PRAGMA quick_check", "ok");
	assert_int_equal(test_sql_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index'"
			       " AND sql IS NOT NULL"), 0);
	assert_int_equal(test_sql_int(db, "SELECT count(*) FROM flows"), 2);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);

	atomic_store(&cancel, 0);
	assert_int_equal(partition_seal(path, T0 + HOUR, &cancel), 0);
	assert_sealed(path, T0 + HOUR);
}

static void test_seal_refuses_foreign(void **state)
{
	struct fixture *f = *state;
	const char *path = path_of(f, T0_NAME);
	size_t len;
	char *before;

	assert_int_equal(partition_seal(path, T0, NULL), -ENOENT);
	make_sqlite_file(path, "PRAGMA application_id = 42; PRAGMA journal_mode = WAL;"
			 " CREATE TABLE meta(sealed); INSERT INTO meta VALUES (0);");
	before = read_file(path, &len);
	assert_int_equal(partition_seal(path, T0, NULL), -EINVAL);
	assert_file_unchanged(path, before, len);
	assert_false(exists(path, "-wal"));
	assert_false(exists(path, "-shm"));
	free(before);
}

/* ---- the catalog --------------------------------------------------------------------- */

static void test_catalog(void **state)
{
	struct fixture *f = *state;
	static const char garbage[] = "not a partition, just a file with a partition's name";
	const char *sealed = make_partition(f, T0, 0);
	struct partition *open = create(f, T0 + HOUR, 0);
	struct schema_row row = flow_at(T0 + HOUR, T0 + HOUR);
	char garbage_path[PATH_MAX], *before;
	struct catalog cat;
	size_t len;

	assert_int_equal(partition_seal(sealed, T0 + HOUR, NULL), 0);
	write_file(path_of(f, "notes.txt"), "hello", 5);
	write_file(path_of(f, ".hidden"), "x", 1);
	assert_int_equal(mkdir(path_of(f, "subdir"), 0755), 0);
	snprintf(garbage_path, sizeof(garbage_path), "%s", path_of(f, "raw-20261127T200000Z-0001.db"));
	write_file(garbage_path, garbage, sizeof(garbage));
	write_file(path_of(f, "raw-20261127T200000Z-0001.db-journal"), "", 0);
	/* the open partition has its -wal and -shm while the writer lives */
	add_committed(open, &row, 1);
	assert_true(exists(partition_path(open), "-wal"));
	assert_true(exists(partition_path(open), "-shm"));

	assert_int_equal(catalog_scan(f->dir, &cat), 0);
	assert_int_equal(cat.n, 3);
	assert_int_equal(cat.foreign, 3);
	assert_string_equal(cat.entries[0].name, T0_NAME);
	assert_int_equal(cat.entries[0].status, CATALOG_SEALED);
	assert_int_equal(cat.entries[0].needs_seal, 0);
	assert_int_equal(cat.entries[0].period_start_ns, T0);
	assert_string_equal(cat.entries[1].name, "raw-20261127T200000Z-0001.db");
	assert_int_equal(cat.entries[1].status, CATALOG_BROKEN);
	assert_int_equal(cat.entries[1].seq, 1);
	assert_true(strlen(cat.entries[1].error) > 0);
	assert_string_equal(cat.entries[2].name, "raw-20261127T210000Z-0000.db");
	assert_int_equal(cat.entries[2].status, CATALOG_OPEN);
	assert_int_equal(cat.entries[2].needs_seal, 1);
	assert_int_equal(cat.entries[2].period_start_ns, T0 + HOUR);
	catalog_free(&cat);
	assert_null(cat.entries);

	/* nothing was touched */
	before = read_file(garbage_path, &len);
	assert_int_equal(len, sizeof(garbage));
	assert_memory_equal(before, garbage, len);
	free(before);
	assert_false(exists(garbage_path, "-wal"));
	assert_false(exists(garbage_path, "-shm"));
	assert_true(exists(path_of(f, "notes.txt"), ""));
	partition_close(open);
}

static void test_catalog_needs_seal(void **state)
{
	struct fixture *f = *state;
	const char *path = make_partition(f, T0, 0);
	struct catalog cat;

	assert_int_equal(partition_seal(path, T0 + HOUR, NULL), 0);
	assert_int_equal(chmod(path, 0644), 0); /* a seal that died before chmod */
	assert_int_equal(catalog_scan(f->dir, &cat), 0);
	assert_int_equal(cat.n, 1);
	assert_int_equal(cat.entries[0].status, CATALOG_SEALED);
	assert_int_equal(cat.entries[0].needs_seal, 1);
	catalog_free(&cat);
	assert_int_equal(chmod(path, 0444), 0);
	write_file(path_of(f, T0_NAME "-wal"), "", 0);
	assert_int_equal(catalog_scan(f->dir, &cat), 0);
	assert_int_equal(cat.n, 1);
	assert_int_equal(cat.foreign, 0);
	assert_int_equal(cat.entries[0].needs_seal, 1);
	catalog_free(&cat);
	/* the seal clears both */
	assert_int_equal(partition_seal(path, T0 + HOUR, NULL), 0);
	assert_int_equal(catalog_scan(f->dir, &cat), 0);
	assert_int_equal(cat.entries[0].needs_seal, 0);
	catalog_free(&cat);
}

/* catalog_scan_since from prev, after prev's entries were marked: whether
 * entry i came from prev (the mark) or from the file. */
#define MARK_ROWS 777777u
static int taken_from_prev(const char *dir, struct catalog *prev, struct catalog *cat, size_t i)
{
	for (size_t j = 0; j < prev->n; j++)
		prev->entries[j].meta.tables[SCHEMA_FLOWS].rows = MARK_ROWS;
	assert_int_equal(catalog_scan_since(dir, prev, cat), 0);
	assert_true(i < cat->n);
	assert_string_equal(cat->entries[i].name, prev->entries[i].name);
	return cat->entries[i].meta.tables[SCHEMA_FLOWS].rows == MARK_ROWS;
}

/*
 * catalog_scan_since takes a wholly sealed partition from the earlier scan
 * while its file is unchanged, and reads it again as soon as anything about
 * it changed: a chmod (the seal's last step undone), a -wal beside it, a
 * new file under its name. An open partition is read again every time.
 */
static void test_catalog_since(void **state)
{
	struct fixture *f = *state;
	struct schema_row row = flow_at(T0 + HOUR, T0 + HOUR);
	struct catalog prev, cat;
	struct partition *open;
	char sealed[PATH_MAX];

	snprintf(sealed, sizeof(sealed), "%s", make_partition(f, T0, 0));
	assert_int_equal(partition_seal(sealed, T0 + HOUR, NULL), 0);
	open = create(f, T0 + HOUR, 0);
	add_committed(open, &row, 1);

	assert_int_equal(catalog_scan(f->dir, &prev), 0);
	assert_int_equal(prev.n, 2);
	assert_true(taken_from_prev(f->dir, &prev, &cat, 0));
	assert_int_equal(cat.entries[0].status, CATALOG_SEALED);
	assert_int_equal(cat.entries[0].needs_seal, 0);
	assert_int_equal(cat.entries[0].bytes, prev.entries[0].bytes);
	assert_int_equal(cat.bytes, prev.bytes);
	catalog_free(&cat);
	assert_false(taken_from_prev(f->dir, &prev, &cat, 1)); /* open: read */
	assert_int_equal(cat.entries[1].meta.tables[SCHEMA_FLOWS].rows, 1);
	catalog_free(&cat);

	/* a chmod moves ctime: read again, and the seal is not whole */
	assert_int_equal(chmod(sealed, 0644), 0);
	assert_false(taken_from_prev(f->dir, &prev, &cat, 0));
	assert_int_equal(cat.entries[0].needs_seal, 1);
	assert_int_equal(cat.entries[0].meta.tables[SCHEMA_FLOWS].rows, 2);
	catalog_free(&cat);
	assert_int_equal(chmod(sealed, 0444), 0);
	assert_false(taken_from_prev(f->dir, &prev, &cat, 0)); /* mode as before, ctime not */
	assert_int_equal(cat.entries[0].needs_seal, 0);
	catalog_free(&prev);
	prev = cat;

	/* a -wal beside it */
	write_file(path_of(f, T0_NAME "-wal"), "", 0);
	assert_false(taken_from_prev(f->dir, &prev, &cat, 0));
	assert_int_equal(cat.entries[0].needs_seal, 1);
	catalog_free(&cat);
	assert_int_equal(unlink(path_of(f, T0_NAME "-wal")), 0);
	assert_true(taken_from_prev(f->dir, &prev, &cat, 0));
	catalog_free(&cat);

	/* another file under the name: read, and found broken */
	assert_int_equal(unlink(sealed), 0);
	write_file(sealed, "not a partition any more", 24);
	assert_false(taken_from_prev(f->dir, &prev, &cat, 0));
	assert_int_equal(cat.entries[0].status, CATALOG_BROKEN);
	catalog_free(&cat);

	/* prev cannot be the output */
	assert_int_equal(catalog_scan_since(f->dir, &prev, &prev), -EINVAL);
	catalog_free(&prev);
	partition_close(open);
}

/* A process killed inside a write transaction on a sealed (rollback
 * journal) partition: what a crash in the seal's last step leaves. */
static void kill_mid_transaction(const char *path)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		sqlite3 *db = NULL;

		sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
		sqlite3_exec(db, "PRAGMA cache_size = 2; BEGIN; UPDATE meta SET sealed = 0;"
			     " UPDATE flows SET comm = 'changed'; CREATE TABLE junk(b);"
			     " WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c"
			     " WHERE x < 300) INSERT INTO junk SELECT randomblob(2000) FROM c;",
			     NULL, NULL, NULL);
		_exit(0); /* no COMMIT, no ROLLBACK, no close */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(exists(path, "-journal"));
}

static void test_hot_journal(void **state)
{
	struct fixture *f = *state;
	const char *path = make_partition(f, T0, 0);
	struct partition_meta m;
	struct catalog cat;
	sqlite3 *db;

	assert_int_equal(partition_seal(path, T0 + HOUR, NULL), 0);
	assert_int_equal(chmod(path, 0644), 0);
	kill_mid_transaction(path);
	assert_int_equal(chmod(path, 0444), 0); /* as the seal's chmod had left it */
	/* read-only readers cannot roll the journal back; they say so */
	assert_int_equal(partition_read_meta(path, &m), -EAGAIN);
	assert_int_equal(catalog_scan(f->dir, &cat), 0);
	assert_int_equal(cat.n, 1);
	assert_int_equal(cat.foreign, 0);
	assert_int_equal(cat.entries[0].status, CATALOG_OPEN);
	assert_int_equal(cat.entries[0].needs_seal, 1);
	catalog_free(&cat);
	assert_true(exists(path, "-journal")); /* the scan changed nothing */
	/* the seal opens read-write: SQLite rolls back, the seal completes */
	assert_int_equal(partition_seal(path, T0 + 2 * HOUR, NULL), 0);
	assert_sealed(path, T0 + HOUR);
	db = test_sql_open_ro(path);
	assert_int_equal(test_sql_int(db, "SELECT count(*) FROM flows WHERE comm = 'curl'"), 2);
	assert_int_equal(test_sql_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'junk'"), 0);
	assert_q_text(db, "PRAGMA integrity_check", "ok");
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static void test_catalog_foreign_sqlite(void **state)
{
	struct fixture *f = *state;
	const char *path = path_of(f, T0_NAME);
	struct catalog cat;
	size_t len;
	char *before;

	make_sqlite_file(path, "PRAGMA application_id = 42; CREATE TABLE meta(x);");
	before = read_file(path, &len);
	assert_int_equal(catalog_scan(f->dir, &cat), 0);
	assert_int_equal(cat.n, 1);
	assert_int_equal(cat.foreign, 0);
	assert_int_equal(cat.entries[0].status, CATALOG_BROKEN);
	assert_non_null(strstr(cat.entries[0].error, "application_id"));
	catalog_free(&cat);
	assert_file_unchanged(path, before, len);
	free(before);
}

static void test_catalog_renamed(void **state)
{
	struct fixture *f = *state;
	const char *path = make_partition(f, T0, 0);
	char renamed[PATH_MAX];
	struct catalog cat;

	snprintf(renamed, sizeof(renamed), "%s", path_of(f, "raw-20261127T220000Z-0000.db"));
	assert_int_equal(rename(path, renamed), 0);
	assert_int_equal(catalog_scan(f->dir, &cat), 0);
	assert_int_equal(cat.n, 1);
	assert_int_equal(cat.entries[0].status, CATALOG_BROKEN);
	assert_non_null(strstr(cat.entries[0].error, "meta"));
	catalog_free(&cat);
}

static void test_catalog_errors(void **state)
{
	struct fixture *f = *state;
	struct catalog cat;

	assert_int_equal(catalog_scan(path_of(f, "missing"), &cat), -ENOENT);
	assert_int_equal(cat.n, 0);
	assert_null(cat.entries);
	write_file(path_of(f, "file"), "x", 1);
	assert_int_equal(catalog_scan(path_of(f, "file"), &cat), -ENOTDIR);
	assert_int_equal(catalog_scan(f->dir, &cat), 0); /* empty but for "file" */
	assert_int_equal(cat.n, 0);
	assert_int_equal(cat.foreign, 1);
	catalog_free(&cat);
	catalog_free(NULL);
}

static void test_table_names(void **state)
{
	(void)state;
	assert_string_equal(schema_table_name(SCHEMA_FLOWS), "flows");
	assert_string_equal(schema_table_name(SCHEMA_CONNECTIONS), "connections");
	assert_string_equal(schema_table_name(SCHEMA_TCP_STATES), "tcp_states");
	assert_null(schema_table_name(SCHEMA_NTABLES));
	assert_non_null(schema_last_error());
}

static off_t file_size(const char *path, const char *suffix)
{
	char side[PATH_MAX + 8];
	struct stat st;

	snprintf(side, sizeof(side), "%s%s", path, suffix);
	return stat(side, &st) == 0 ? st.st_size : -1;
}

/* Deferred checkpoints: the writer's commits only append to the WAL; a
 * second connection copies it back; the next commit restarts the WAL. */
static void test_deferred_checkpoints(void **state)
{
	struct fixture *f = *state;
	struct partition *p = create(f, T0, 0);
	struct partition_ckpt *c = NULL;
	struct schema_row rows[500];
	int frames, copied, commits = 0;
	off_t main_before;
	sqlite3 *db;

	for (size_t i = 0; i < 500; i++)
		rows[i] = flow_at(T0 + (int64_t)i, T0 + (int64_t)i + 1);
	assert_int_equal(partition_defer_checkpoints(p), 0);
	assert_int_equal(partition_wal_frames(p), 0);
	main_before = file_size(partition_path(p), "");
	/* well past the 1000 pages at which SQLite would checkpoint itself */
	while (partition_wal_frames(p) < 2500) {
		add_committed(p, rows, 500);
		commits++;
		assert_true(commits < 1000);
	}
	assert_int_equal(file_size(partition_path(p), ""), main_before);
	assert_true(file_size(partition_path(p), "-wal") > 2500 * 4096);

	assert_int_equal(partition_ckpt_open(partition_path(p), &c), 0);
	assert_string_equal(partition_ckpt_path(c), partition_path(p));
	assert_int_equal(partition_ckpt_run(c, false, &frames, &copied), 0);
	assert_int_equal(frames, partition_wal_frames(p));
	assert_int_equal(copied, frames);
	/* the rows reached the file: well over a thousand pages of them */
	assert_true(file_size(partition_path(p), "") > main_before + 1000 * 4096);
	/* all of it copied: the next commit starts the WAL over */
	add_committed(p, rows, 1);
	assert_true(partition_wal_frames(p) < 50);

	/* a restart checkpoint, with a reader open on the file: it copies all
	 * and the WAL starts over at the next commit just the same */
	db = test_sql_open_ro(partition_path(p));
	assert_int_equal(test_sql_int(db, "SELECT count(*) FROM flows"), 500 * commits + 1);
	while (partition_wal_frames(p) <= 500) {
		add_committed(p, rows, 500);
		commits++;
		assert_true(commits < 2000);
	}
	assert_int_equal(partition_ckpt_run(c, true, &frames, &copied), 0);
	assert_int_equal(frames, partition_wal_frames(p));
	assert_int_equal(copied, frames);
	add_committed(p, rows, 1);
	assert_true(partition_wal_frames(p) < 50);
	assert_int_equal(test_sql_int(db, "SELECT count(*) FROM flows"), 500 * commits + 2);
	assert_int_equal(test_sql_int(db, "SELECT rows FROM meta_tables WHERE name = 'flows'"), 500 * commits + 2);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);

	/* closing the checkpointing connection never checkpoints; the writer's
	 * close, the last, does and removes the WAL */
	partition_ckpt_close(c);
	assert_true(file_size(partition_path(p), "-wal") > 0);
	{
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s", partition_path(p));
		partition_close(p);
		assert_int_equal(file_size(path, "-wal"), -1);
	}
	partition_ckpt_close(NULL);
}

/* Closed for sealing: the WAL stays for the seal to copy back. */
static void test_close_for_seal(void **state)
{
	struct fixture *f = *state;
	struct partition *p = create(f, T0, 0);
	struct schema_row rows[100];
	struct partition_meta m;
	char path[PATH_MAX];
	sqlite3 *db;

	for (size_t i = 0; i < 100; i++)
		rows[i] = flow_at(T0 + (int64_t)i, T0 + (int64_t)i + 1);
	assert_int_equal(partition_defer_checkpoints(p), 0);
	for (int i = 0; i < 5; i++)
		add_committed(p, rows, 100);
	snprintf(path, sizeof(path), "%s", partition_path(p));
	partition_close_for_seal(p);
	assert_true(file_size(path, "-wal") > 0);
	assert_int_equal(partition_read_meta(path, &m), 0);
	assert_int_equal(m.tables[SCHEMA_FLOWS].rows, 500);
	assert_int_equal(partition_seal(path, T0 + HOUR, NULL), 0);
	assert_int_equal(file_size(path, "-wal"), -1);
	db = test_sql_open_ro(path);
	assert_int_equal(test_sql_int(db, "SELECT count(*) FROM flows"), 500);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	partition_close_for_seal(NULL);
}

static void test_ckpt_errors(void **state)
{
	struct fixture *f = *state;
	struct partition_ckpt *c = (void *)1;
	char missing[PATH_MAX];

	int frames = -2, copied = -2;

	snprintf(missing, sizeof(missing), "%s/raw-20261127T200000Z-0009.db", f->dir);
	assert_true(partition_ckpt_open(missing, &c) < 0); /* never created */
	assert_null(c);
	assert_int_equal(file_size(missing, ""), -1);
	/* closed, not sealed: still WAL mode, nothing to copy */
	assert_int_equal(partition_ckpt_open(make_partition(f, T0, 0), &c), 0);
	assert_int_equal(partition_ckpt_run(c, false, &frames, &copied), 0);
	assert_int_equal(frames, 0);
	assert_int_equal(copied, 0);
	partition_ckpt_close(c);
	/* sealed: a rollback journal, no WAL to checkpoint */
	assert_int_equal(partition_seal(make_partition(f, T0 + HOUR, 0), T0, NULL), 0);
	snprintf(missing, sizeof(missing), "%s/raw-20261127T210000Z-0000.db", f->dir);
	c = (void *)1;
	assert_int_equal(partition_ckpt_open(missing, &c), -EINVAL);
	assert_null(c);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_name_round_trip),
		T(test_name_format_errors),
		T(test_name_sort_order),
		T(test_name_rejects),
		T(test_period_start),
		T(test_table_names),
		T(test_create),
		T(test_create_exists),
		T(test_create_errors),
		T(test_add_commit),
		T(test_flow_columns),
		T(test_conn_and_state_columns),
		T(test_rollback),
		T(test_deferred_checkpoints),
		T(test_ckpt_errors),
		T(test_close_for_seal),
		T(test_transaction_misuse),
		T(test_read_meta_open),
		T(test_read_meta_errors),
		T(test_seal),
		T(test_seal_resumes),
		T(test_seal_cancel),
		T(test_seal_refuses_foreign),
		T(test_catalog),
		T(test_catalog_needs_seal),
		T(test_catalog_since),
		T(test_hot_journal),
		T(test_catalog_foreign_sqlite),
		T(test_catalog_renamed),
		T(test_catalog_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
