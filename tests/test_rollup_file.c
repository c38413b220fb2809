/*
 * Unit tests of schema/'s rollup files and kinds of file: names and periods
 * of 1m and 1h files, creating a rollup file and running rollup steps into
 * it (exactly once, also across processes), the catalog of a data dir with
 * every kind of file, and the removal of leftovers.
 *
 * Real SQLite files in a fresh temp dir per test (under $FLOWSTORE_TEST_TMP,
 * else /tmp), removed by the teardown. Raw partitions are made with
 * partition_create/add/commit; what a rollup file holds is checked with
 * plain SQL through a second connection.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "schema.h"
#include "testdir.h"
#include "testsql.h"

#define NS 1000000000LL
#define MIN (60 * NS)
#define HOUR (3600 * NS)
#define DAY (86400 * NS)
#define T0 (1795809600LL * NS)       /* 2026-11-27T20:00:00Z */
#define DAY0 (1795737600LL * NS)     /* 2026-11-27T00:00:00Z */
#define DAY1 (1795824000LL * NS)     /* 2026-11-28T00:00:00Z */
#define NOV (1793491200LL * NS)      /* 2026-11-01T00:00:00Z */
#define DEC (1796083200LL * NS)      /* 2026-12-01T00:00:00Z */
#define JAN27 (1798761600LL * NS)    /* 2027-01-01T00:00:00Z */
#define RAW0 "raw-20261127T200000Z-0000.db"
#define M0 "1m-20261127T000000Z-0000.db"
#define M1 "1m-20261128T000000Z-0000.db"
#define H0 "1h-20261101T000000Z-0000.db"

/* One row per (minute, proto): what a rollup step of the tests adds. */
#define INSERT_1M                                                                  \
	"INSERT INTO flows_1m(ts, proto, flows, orig_bytes, connections,"          \
	" failed_connections) SELECT ts - ts % 60000000000 AS b, proto, count(*),"  \
	" sum(orig_bytes), 0, 0 FROM src.flows WHERE ts >= ?1 AND ts < ?2"          \
	" GROUP BY b, proto"
#define INSERT_1H                                                                  \
	"INSERT INTO flows_1h(ts, proto, flows, orig_bytes, connections,"          \
	" failed_connections) SELECT ts - ts % 3600000000000 AS b, proto, count(*),"\
	" sum(orig_bytes), 0, 0 FROM src.flows WHERE ts >= ?1 AND ts < ?2"          \
	" GROUP BY b, proto"

struct fixture {
	char dir[1024];
	char *paths[256]; /* path_of's strings, freed by the teardown */
	size_t npaths;
};

/* ---- helpers ----------------------------------------------------------------- */

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char *dir = test_mkdtemp("test_rollup_file");

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s", dir);
	free(dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	test_rmtree(f->dir);
	for (size_t i = 0; i < f->npaths; i++)
		free(f->paths[i]);
	free(f);
	return 0;
}

/* DIR/name, valid until the teardown. */
static const char *path_of(struct fixture *f, const char *name)
{
	char *p = NULL;

	if (f->npaths == sizeof(f->paths) / sizeof(f->paths[0]) ||
	    asprintf(&p, "%s/%s", f->dir, name) < 0)
		fail_msg("path_of: out of room");
	f->paths[f->npaths++] = p;
	return p;
}

static int exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static uint64_t blocks_of(const char *path)
{
	struct stat st;

	if (lstat(path, &st))
		return 0;
	return (uint64_t)st.st_blocks * 512;
}

static void assert_q_text(sqlite3 *db, const char *sql, const char *want)
{
	sqlite3_stmt *st = NULL;
	const char *got;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	got = sqlite3_column_type(st, 0) == SQLITE_NULL ? "(null)"
		: (const char *)sqlite3_column_text(st, 0);
	if (strcmp(got, want))
		fail_msg("%s: got '%s', want '%s'", sql, got, want);
	sqlite3_finalize(st);
}

static struct schema_row flow_at(int64_t ts, const char *proto, int64_t bytes)
{
	struct schema_row r = { .table = SCHEMA_FLOWS };

	r.flow.ts = ts;
	r.flow.ts_end = ts + 1;
	snprintf(r.flow.proto, sizeof(r.flow.proto), "%s", proto);
	strcpy(r.flow.orig_addr, "10.0.0.5");
	strcpy(r.flow.resp_addr, "192.0.2.1");
	r.flow.orig_port = 40000;
	r.flow.resp_port = 443;
	r.flow.orig_pkts = 1;
	r.flow.orig_bytes = bytes;
	return r;
}

/*
 * A closed raw partition of the hour at start: flows in three minutes of
 * that hour (two protos in the first), and one late row the next UTC day
 * (rows go to the partition that is open, whatever their ts). Its path.
 *   minute +0: tcp 100, tcp 200, udp 50     minute +1: tcp 7
 *   minute +59: udp 1                       next day (+5 h): tcp 1000
 */
static const char *make_raw(struct fixture *f, int64_t start, unsigned seq)
{
	char name[SCHEMA_NAME_LEN];
	const struct schema_row rows[] = {
		flow_at(start + 1, "tcp", 100),       flow_at(start + 2 * NS, "tcp", 200),
		flow_at(start + 3 * NS, "udp", 50),   flow_at(start + MIN + 5, "tcp", 7),
		flow_at(start + 59 * MIN, "udp", 1),  flow_at(start + 5 * HOUR, "tcp", 1000),
	};
	struct partition *p = NULL;

	assert_int_equal(partition_create(f->dir, start, HOUR, seq, start, &p), 0);
	assert_int_equal(partition_begin(p), 0);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		assert_int_equal(partition_add(p, &rows[i]), 0);
	assert_int_equal(partition_commit(p), 0);
	partition_close(p);
	assert_int_equal(partition_name_format(name, sizeof(name), start, seq), 0);
	return path_of(f, name);
}

static int apply(struct fixture *f, enum schema_kind k, int64_t start, const char *source,
		 const char *sql, uint64_t *added, int *done_before)
{
	return rollup_file_apply(f->dir, k, start, source, path_of(f, source), 6, sql,
				 T0 + 2 * HOUR, 5000, added, done_before);
}

/* The file's meta_tables agrees with its table, and with rollup_read_meta. */
static void assert_meta_matches(const char *path, enum schema_kind k)
{
	char sql[256];
	const char *t = rollup_table_name(k);
	struct partition_meta m;
	sqlite3 *db = test_sql_open_ro(path);
	int64_t rows;

	assert_int_equal(rollup_read_meta(path, &m), 0);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", t);
	rows = test_sql_int(db, sql);
	assert_int_equal(m.tables[SCHEMA_ROLLUP_META].rows, rows);
	snprintf(sql, sizeof(sql), "SELECT rows FROM meta_tables WHERE name = '%s'", t);
	assert_int_equal(test_sql_int(db, sql), rows);
	if (rows) {
		snprintf(sql, sizeof(sql), "SELECT min(ts) FROM %s", t);
		assert_int_equal(m.tables[SCHEMA_ROLLUP_META].ts_min, test_sql_int(db, sql));
		snprintf(sql, sizeof(sql), "SELECT max(ts) FROM %s", t);
		assert_int_equal(m.tables[SCHEMA_ROLLUP_META].ts_max, test_sql_int(db, sql));
	}
	assert_int_equal(m.tables[SCHEMA_ROLLUP_META].ts_end_min, 0);
	assert_int_equal(m.tables[SCHEMA_ROLLUP_META].ts_end_max, 0);
	for (int i = 0; i < SCHEMA_NTABLES; i++)
		if (i != SCHEMA_ROLLUP_META)
			assert_int_equal(m.tables[i].rows, 0);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* ---- kinds, names and periods ------------------------------------------------------ */

static void test_kinds(void **state)
{
	(void)state;
	assert_string_equal(schema_kind_name(SCHEMA_KIND_RAW), "raw");
	assert_string_equal(schema_kind_name(SCHEMA_KIND_1M), "1m");
	assert_string_equal(schema_kind_name(SCHEMA_KIND_1H), "1h");
	assert_null(schema_kind_name(SCHEMA_NKINDS));
	assert_string_equal(rollup_table_name(SCHEMA_KIND_1M), "flows_1m");
	assert_string_equal(rollup_table_name(SCHEMA_KIND_1H), "flows_1h");
	assert_null(rollup_table_name(SCHEMA_KIND_RAW));
	assert_int_equal(rollup_bucket_ns(SCHEMA_KIND_1M), 60 * NS);
	assert_int_equal(rollup_bucket_ns(SCHEMA_KIND_1H), 3600 * NS);
	assert_int_equal(rollup_bucket_ns(SCHEMA_KIND_RAW), 0);
}

static void assert_period(enum schema_kind k, int64_t t, int64_t want_start, int64_t want_end)
{
	int64_t start = 1, end = 2;

	rollup_period(k, t, &start, &end);
	if (start != want_start || end != want_end)
		fail_msg("%s at %lld: [%lld, %lld), want [%lld, %lld)", schema_kind_name(k),
			 (long long)t, (long long)start, (long long)end, (long long)want_start,
			 (long long)want_end);
}

static void test_periods(void **state)
{
	(void)state;
	/* a UTC day for 1m */
	assert_period(SCHEMA_KIND_1M, T0, DAY0, DAY1);
	assert_period(SCHEMA_KIND_1M, DAY0, DAY0, DAY1);
	assert_period(SCHEMA_KIND_1M, DAY1 - 1, DAY0, DAY1);
	assert_period(SCHEMA_KIND_1M, DAY1, DAY1, DAY1 + DAY);
	assert_period(SCHEMA_KIND_1M, DAY0 - 1, DAY0 - DAY, DAY0);
	assert_period(SCHEMA_KIND_1M, 0, 0, DAY);
	assert_period(SCHEMA_KIND_1M, 1709164800LL * NS + 5, 1709164800LL * NS,
		      1709164800LL * NS + DAY); /* 2024-02-29 */
	/* a UTC calendar month for 1h */
	assert_period(SCHEMA_KIND_1H, T0, NOV, DEC);
	assert_period(SCHEMA_KIND_1H, NOV, NOV, DEC);
	assert_period(SCHEMA_KIND_1H, DEC - 1, NOV, DEC);
	assert_period(SCHEMA_KIND_1H, 1797336000LL * NS, DEC, JAN27); /* Dec 15 → Jan 1 */
	assert_period(SCHEMA_KIND_1H, JAN27 - 1, DEC, JAN27);
	assert_period(SCHEMA_KIND_1H, JAN27, JAN27, JAN27 + 31 * DAY);
	assert_period(SCHEMA_KIND_1H, 1709164800LL * NS, 1706745600LL * NS,
		      1709251200LL * NS); /* February 2024: 29 days */
	assert_period(SCHEMA_KIND_1H, 1738368000LL * NS + 27 * DAY, 1738368000LL * NS,
		      1740787200LL * NS); /* February 2025: 28 days */
	assert_period(SCHEMA_KIND_1H, 949363200LL * NS, 949363200LL * NS,
		      951868800LL * NS); /* February 2000: 29 (divisible by 400) */
	assert_period(SCHEMA_KIND_1H, 4105123200LL * NS, 4105123200LL * NS,
		      4107542400LL * NS); /* February 2100: 28 (by 100, not 400) */
	assert_period(SCHEMA_KIND_1H, 0, 0, 2678400LL * NS);
	assert_period(SCHEMA_KIND_1H, -1, -31 * DAY, 0); /* December 1969 */
	/* the last month int64 ns can hold ends at its limit, not beyond */
	assert_period(SCHEMA_KIND_1H, INT64_MAX, 9222422400LL * NS, INT64_MAX);
	assert_period(SCHEMA_KIND_RAW, T0 + 5, T0 + 5, T0 + 5);
}

static void assert_name(enum schema_kind k, int64_t t, const char *want)
{
	char name[SCHEMA_NAME_LEN];
	enum schema_kind kind = SCHEMA_NKINDS;
	int64_t start = -1, pstart, pend;
	unsigned seq = 7;

	assert_int_equal(rollup_name_format(name, sizeof(name), k, t), 0);
	assert_string_equal(name, want);
	rollup_period(k, t, &pstart, &pend);
	assert_int_equal(schema_name_parse(name, &kind, &start, &seq), 0);
	assert_int_equal(kind, k);
	assert_int_equal(start, pstart);
	assert_int_equal(seq, 0);
	start = -1;
	assert_int_equal(k == SCHEMA_KIND_1M ? rollup_1m_name_parse(name, &start, &seq)
					     : rollup_1h_name_parse(name, &start, &seq), 0);
	assert_int_equal(start, pstart);
}

static void test_names(void **state)
{
	char name[SCHEMA_NAME_LEN], again[SCHEMA_NAME_LEN];
	enum schema_kind kind;
	int64_t start;
	unsigned seq;

	(void)state;
	assert_name(SCHEMA_KIND_1M, T0, M0);
	assert_name(SCHEMA_KIND_1M, DAY1 - 1, M0);
	assert_name(SCHEMA_KIND_1M, DAY1, M1);
	assert_name(SCHEMA_KIND_1M, 0, "1m-19700101T000000Z-0000.db");
	assert_name(SCHEMA_KIND_1M, 1709164800LL * NS, "1m-20240229T000000Z-0000.db");
	assert_name(SCHEMA_KIND_1H, T0, H0);
	assert_name(SCHEMA_KIND_1H, DEC - 1, H0);
	assert_name(SCHEMA_KIND_1H, 1797336000LL * NS, "1h-20261201T000000Z-0000.db");
	assert_name(SCHEMA_KIND_1H, JAN27, "1h-20270101T000000Z-0000.db");
	assert_name(SCHEMA_KIND_1H, 1709164800LL * NS, "1h-20240201T000000Z-0000.db");
	/* the raw kind through the same door */
	assert_int_equal(schema_name_parse(RAW0, &kind, &start, &seq), 0);
	assert_int_equal(kind, SCHEMA_KIND_RAW);
	assert_int_equal(start, T0);
	assert_int_equal(schema_name_parse("raw-20261127T200000Z-0042.db", &kind, NULL, &seq), 0);
	assert_int_equal(seq, 42);

	/* format(parse(x)) == x over a spread of times */
	srand(2);
	for (int i = 0; i < 2000; i++) {
		int64_t t = ((int64_t)rand() * 4 + rand() % 4) * NS + rand() % NS;
		enum schema_kind k = i % 2 ? SCHEMA_KIND_1M : SCHEMA_KIND_1H;

		assert_int_equal(rollup_name_format(name, sizeof(name), k, t), 0);
		assert_int_equal(schema_name_parse(name, &kind, &start, &seq), 0);
		assert_int_equal(kind, k);
		assert_true(start <= t);
		assert_int_equal(rollup_name_format(again, sizeof(again), k, start), 0);
		assert_string_equal(again, name);
	}

	assert_int_equal(rollup_name_format(name, sizeof(name), SCHEMA_KIND_RAW, T0), -EINVAL);
	assert_int_equal(rollup_name_format(name, sizeof(name), SCHEMA_NKINDS, T0), -EINVAL);
	assert_int_equal(rollup_name_format(name, sizeof(name), SCHEMA_KIND_1M, -1), -EINVAL);
	assert_int_equal(rollup_name_format(name, 27, SCHEMA_KIND_1M, T0), -ENAMETOOLONG);
	assert_int_equal(rollup_name_format(name, 28, SCHEMA_KIND_1M, T0), 0);
}

static void test_name_rejects(void **state)
{
	static const char *const bad[] = {
		"",
		"1m-",
		"1m-20261127T000000Z-0000.db-journal",
		"1m-20261127T000000Z-0000.dbx",
		" 1m-20261127T000000Z-0000.db",
		"1M-20261127T000000Z-0000.db",
		"1d-20261127T000000Z-0000.db",
		"10m-20261127T000000Z-0000.db",
		"1m20261127T000000Z-0000.db",
		"1m-20261127T010000Z-0000.db", /* 1m: not midnight */
		"1m-20261127T000001Z-0000.db",
		"1m-20261127T000000Z-0001.db", /* rollup files have seq 0 */
		"1m-20261131T000000Z-0000.db", /* 31 November */
		"1m-20250229T000000Z-0000.db", /* not a leap year */
		"1m-21000229T000000Z-0000.db", /* nor is 2100 */
		"1m-20261127t000000z-0000.db",
		"1m-19691231T000000Z-0000.db",
		"1h-20261102T000000Z-0000.db", /* 1h: not the 1st */
		"1h-20261101T010000Z-0000.db", /* not midnight */
		"1h-20261101T000000Z-0001.db",
		"1h-20261301T000000Z-0000.db", /* month 13 */
		"1h-20261100T000000Z-0000.db",
		"1h-20260001T000000Z-0000.db",
		".1m-20261127T000000Z-0000.db.tmp",
		"raw-20261127T200000Z-00000.db",
		"notes.txt",
	};
	enum schema_kind kind = SCHEMA_KIND_1H;
	int64_t start = 123;
	unsigned seq = 7;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (schema_name_parse(bad[i], &kind, &start, &seq) != -EINVAL)
			fail_msg("'%s' parsed as one of our names", bad[i]);
		if (rollup_1m_name_parse(bad[i], &start, &seq) != -EINVAL ||
		    rollup_1h_name_parse(bad[i], &start, &seq) != -EINVAL)
			fail_msg("'%s' parsed as a rollup file name", bad[i]);
	}
	assert_int_equal(kind, SCHEMA_KIND_1H);
	assert_int_equal(start, 123);
	assert_int_equal(seq, 7);
	assert_int_equal(schema_name_parse(NULL, &kind, &start, &seq), -EINVAL);
	/* each parser takes its own kind only */
	assert_int_equal(rollup_1m_name_parse(H0, &start, &seq), -EINVAL);
	assert_int_equal(rollup_1h_name_parse(M0, &start, &seq), -EINVAL);
	assert_int_equal(rollup_1m_name_parse(RAW0, &start, &seq), -EINVAL);
	assert_int_equal(partition_name_parse(M0, &start, &seq), -EINVAL);
	assert_int_equal(partition_name_parse(H0, &start, &seq), -EINVAL);
	assert_non_null(strstr(schema_last_error(), H0));
	/* the 1st of a month is a day like any other for 1m */
	assert_int_equal(rollup_1m_name_parse("1m-20261101T000000Z-0000.db", &start, NULL), 0);
	assert_int_equal(start, NOV);
}

static void test_temp_names(void **state)
{
	static const char *const good[] = {
		".1m-20261127T000000Z-0000.db.tmp",
		".1h-20261101T000000Z-0000.db.tmp",
		".1m-20261127T000000Z-0000.db.tmp-journal",
		".1h-20261101T000000Z-0000.db.tmp-journal",
	};
	static const char *const bad[] = {
		"",
		".",
		".tmp",
		"1m-20261127T000000Z-0000.db.tmp",
		".1m-20261127T000000Z-0000.db",
		".1m-20261127T000000Z-0000.db.tmpx",
		".1m-20261127T000000Z-0000.db.tmp-wal",
		".1m-20261127T000000Z-0000.db.tmp-shm",
		".1m-20261127T000000Z-0000.db.tmp-journal-journal",
		".1m-20261127T000000Z-0000.db-journal.tmp",
		"..1m-20261127T000000Z-0000.db.tmp",
		".1m-20261127T120000Z-0000.db.tmp", /* not a valid 1m name */
		".1h-20261115T000000Z-0000.db.tmp",
		".raw-20261127T200000Z-0000.db.tmp", /* raw files are made in place */
		".retention.lock",
		".hidden",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (schema_is_temp_name(good[i]) != 1)
			fail_msg("'%s' is not taken for a temporary name", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (schema_is_temp_name(bad[i]) != 0)
			fail_msg("'%s' is taken for a temporary name", bad[i]);
	assert_int_equal(schema_is_temp_name(NULL), 0);
}

/* ---- rollup steps ----------------------------------------------------------------------- */

static void assert_rollup_file(const char *path, const char *table, int64_t start,
			       int64_t end)
{
	char sql[256];
	struct stat st;
	sqlite3 *db;

	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	db = test_sql_open_ro(path);
	assert_int_equal(test_sql_int(db, "PRAGMA application_id"), 0x464C5753);
	assert_int_equal(test_sql_int(db, "PRAGMA user_version"), SCHEMA_VERSION);
	assert_q_text(db, "PRAGMA journal_mode", "delete");
	snprintf(sql, sizeof(sql), "SELECT group_concat(name, ',') FROM pragma_table_info('%s')",
		 table);
	assert_q_text(db, sql, "ts,proto,orig_addr,resp_addr,resp_port,direction,comm,flows,"
		      "orig_pkts,orig_bytes,resp_pkts,resp_bytes,connections,failed_connections,"
		      "retransmits");
	snprintf(sql, sizeof(sql), "SELECT group_concat(name || ':' || \"notnull\", ',')"
		 " FROM pragma_table_info('%s') WHERE \"notnull\"", table);
	assert_q_text(db, sql, "ts:1,proto:1,flows:1,connections:1,failed_connections:1");
	/* the indexes, each by its columns */
	snprintf(sql, sizeof(sql), "SELECT group_concat(cols, ' ') FROM (SELECT (SELECT"
		 " group_concat(name, ',') FROM pragma_index_info(l.name)) AS cols"
		 " FROM pragma_index_list('%s') AS l ORDER BY cols)", table);
	assert_q_text(db, sql, "orig_addr,ts resp_addr,ts resp_port ts");
	assert_int_equal(test_sql_int(db, "SELECT count(*) FROM meta"), 1);
	assert_int_equal(test_sql_int(db, "SELECT schema_version FROM meta"), SCHEMA_VERSION);
	snprintf(sql, sizeof(sql), "SELECT period_start = %lld AND period_end = %lld FROM meta",
		 (long long)start, (long long)end);
	assert_int_equal(test_sql_int(db, sql), 1);
	assert_int_equal(test_sql_int(db, "SELECT seq = 0 AND sealed = 0 AND sealed_at IS NULL FROM meta"), 1);
	assert_int_equal(test_sql_int(db, "SELECT created FROM meta"), T0 + 2 * HOUR);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM meta_tables WHERE name = '%s'"
		 " AND ts_end_min IS NULL AND ts_end_max IS NULL", table);
	assert_int_equal(test_sql_int(db, sql), 1);
	assert_int_equal(test_sql_int(db, "SELECT count(*) FROM meta_tables"), 1);
	assert_q_text(db, "SELECT group_concat(name, ',') FROM pragma_table_info('rolled')",
		      "source,source_rows,rows,rolled_at");
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static void test_apply(void **state)
{
	struct fixture *f = *state;
	const char *m0 = path_of(f, M0);
	const char *h0 = path_of(f, H0);
	char (*names)[SCHEMA_NAME_LEN] = NULL;
	uint64_t added = 99;
	int done = 99;
	size_t n = 9;
	sqlite3 *db;

	make_raw(f, T0, 0);
	assert_int_equal(rollup_file_has(m0, RAW0), -ENOENT);
	assert_int_equal(apply(f, SCHEMA_KIND_1M, DAY0, RAW0, INSERT_1M, &added, &done), 0);
	assert_int_equal(done, 0);
	assert_int_equal(added, 4); /* (20:00, tcp), (20:00, udp), (20:01, tcp), (20:59, udp) */
	assert_rollup_file(m0, "flows_1m", DAY0, DAY1);
	assert_meta_matches(m0, SCHEMA_KIND_1M);
	assert_false(exists(path_of(f, "." M0 ".tmp")));
	assert_false(exists(path_of(f, M0 "-journal")));

	db = test_sql_open_ro(m0);
	assert_int_equal(test_sql_int(db, "SELECT count(*) FROM flows_1m"), 4);
	assert_int_equal(test_sql_int(db, "SELECT sum(flows) FROM flows_1m"), 5); /* the late row: no */
	assert_int_equal(test_sql_int(db, "SELECT orig_bytes FROM flows_1m WHERE proto = 'tcp'"
			       " AND ts = 1795809600000000000"), 300);
	assert_int_equal(test_sql_int(db, "SELECT min(ts) FROM flows_1m"), T0);
	assert_int_equal(test_sql_int(db, "SELECT max(ts) FROM flows_1m"), T0 + 59 * MIN);
	assert_int_equal(test_sql_int(db, "SELECT count(*) FROM rolled"), 1);
	assert_q_text(db, "SELECT source FROM rolled", RAW0);
	assert_int_equal(test_sql_int(db, "SELECT source_rows FROM rolled"), 6);
	assert_int_equal(test_sql_int(db, "SELECT rows FROM rolled"), 4);
	assert_int_equal(test_sql_int(db, "SELECT rolled_at FROM rolled"), T0 + 2 * HOUR);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	assert_int_equal(rollup_file_has(m0, RAW0), 1);
	assert_int_equal(rollup_file_has(m0, "raw-20261127T210000Z-0000.db"), 0);
	assert_int_equal(rollup_file_sources(m0, &names, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(names[0], RAW0);
	free(names);

	/* again: counted once */
	assert_int_equal(apply(f, SCHEMA_KIND_1M, DAY0, RAW0, INSERT_1M, &added, &done), 0);
	assert_int_equal(done, 1);
	assert_int_equal(added, 0);
	assert_int_equal(test_sql_int_at(m0, "SELECT sum(flows) FROM flows_1m"), 5);
	assert_int_equal(test_sql_int_at(m0, "SELECT count(*) FROM rolled"), 1);
	assert_meta_matches(m0, SCHEMA_KIND_1M);

	/* the late row belongs to the next day's file */
	assert_int_equal(apply(f, SCHEMA_KIND_1M, DAY1, RAW0, INSERT_1M, &added, &done), 0);
	assert_int_equal(added, 1);
	assert_int_equal(test_sql_int_at(path_of(f, M1), "SELECT ts FROM flows_1m"), T0 + 5 * HOUR);
	assert_meta_matches(path_of(f, M1), SCHEMA_KIND_1M);

	/* and the month's 1h file gets all of it, by the hour */
	assert_int_equal(apply(f, SCHEMA_KIND_1H, NOV, RAW0, INSERT_1H, &added, &done), 0);
	assert_int_equal(done, 0);
	assert_int_equal(added, 3); /* (20:00, tcp), (20:00, udp), (01:00 next day, tcp) */
	assert_rollup_file(h0, "flows_1h", NOV, DEC);
	assert_meta_matches(h0, SCHEMA_KIND_1H);
	assert_int_equal(test_sql_int_at(h0, "SELECT sum(flows) FROM flows_1h"), 6);
	assert_int_equal(test_sql_int_at(h0, "SELECT sum(orig_bytes) FROM flows_1h"), 1358);
}

/* A sealed source and a closed unsealed one into the same file. */
static void test_apply_sealed_and_open(void **state)
{
	struct fixture *f = *state;
	const char *sealed = path_of(f, RAW0);
	const char *raw1 = "raw-20261127T200000Z-0001.db";
	char (*names)[SCHEMA_NAME_LEN] = NULL;
	struct partition_meta before, after;
	uint64_t added;
	size_t n;
	int done;

	make_raw(f, T0, 0);
	assert_int_equal(partition_seal(sealed, T0 + HOUR, NULL), 0);
	make_raw(f, T0, 1); /* closed, never sealed: WAL mode */
	assert_int_equal(partition_read_meta(path_of(f, raw1), &before), 0);
	assert_int_equal(before.sealed, 0);

	assert_int_equal(apply(f, SCHEMA_KIND_1M, DAY0, RAW0, INSERT_1M, &added, &done), 0);
	assert_int_equal(added, 4);
	/* immutable: nothing appeared next to the sealed file */
	assert_false(exists(path_of(f, RAW0 "-wal")));
	assert_false(exists(path_of(f, RAW0 "-shm")));
	assert_false(exists(path_of(f, RAW0 "-journal")));
	assert_int_equal(partition_read_meta(sealed, &after), 0);
	assert_int_equal(partition_seal_complete(sealed, &after), 1);

	assert_int_equal(apply(f, SCHEMA_KIND_1M, DAY0, raw1, INSERT_1M, &added, &done), 0);
	assert_int_equal(done, 0);
	assert_int_equal(added, 4);
	assert_int_equal(partition_read_meta(path_of(f, raw1), &after), 0);
	assert_int_equal(after.sealed, 0);
	assert_memory_equal(&after.tables, &before.tables, sizeof(before.tables));

	assert_int_equal(test_sql_int_at(path_of(f, M0), "SELECT sum(flows) FROM flows_1m"), 10);
	assert_int_equal(test_sql_int_at(path_of(f, M0), "SELECT count(*) FROM flows_1m"), 8);
	assert_meta_matches(path_of(f, M0), SCHEMA_KIND_1M);
	assert_int_equal(rollup_file_sources(path_of(f, M0), &names, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(names[0], RAW0);
	assert_string_equal(names[1], raw1);
	free(names);
	/* and the unsealed one can still be sealed */
	assert_int_equal(partition_seal(path_of(f, raw1), T0 + 2 * HOUR, NULL), 0);
}

/* A child of race_round: apply source once; the exit code says how it went. */
static void race_child(struct fixture *f, int go, int64_t start, const char *source)
{
	int64_t day = start - start % DAY;
	uint64_t added = 0;
	int done = 0, rc;
	char c;

	if (read(go, &c, 1) != 0) /* EOF: everyone starts */
		_exit(10);
	rc = rollup_file_apply(f->dir, SCHEMA_KIND_1M, day, source, path_of(f, source), 6,
			       INSERT_1M, start, 10000, &added, &done);
	if (rc)
		_exit(11);
	if (done)
		_exit(added == 0 ? 1 : 12);
	_exit(added == 4 ? 0 : 13);
}

/* Hold the file's write lock while the children start, so that they all
 * reach their transaction before any can commit; then let go. */
static sqlite3 *race_hold(const char *path)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	return db;
}

static void race_release(sqlite3 *db)
{
	const struct timespec pause = { 0, 300000000 }; /* children get going */

	nanosleep(&pause, NULL);
	assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/*
 * nproc children apply the raw partition (start, seq) at once into its day's
 * 1m file: exactly one adds its rows, the others find the mark. hold: the
 * file exists and the parent holds its lock until all have started (the
 * transactions race); else the file is new (the creations race).
 */
static void race_round(struct fixture *f, int64_t start, unsigned seq, int nproc, int hold)
{
	char source[SCHEMA_NAME_LEN], rollup[SCHEMA_NAME_LEN];
	int go[2], firsts = 0, status;
	int64_t flows_before = 0;
	sqlite3 *held = NULL;
	pid_t pids[8];

	assert_true(nproc <= 8);
	assert_int_equal(partition_name_format(source, sizeof(source), start, seq), 0);
	assert_int_equal(rollup_name_format(rollup, sizeof(rollup), SCHEMA_KIND_1M, start), 0);
	assert_int_equal(exists(path_of(f, rollup)), hold);
	if (hold)
		flows_before = test_sql_int_at(path_of(f, rollup), "SELECT sum(flows) FROM flows_1m");
	assert_int_equal(pipe(go), 0);
	for (int i = 0; i < nproc; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			close(go[1]);
			race_child(f, go[0], start, source);
		}
	}
	close(go[0]);
	if (hold) /* after the forks: a child must not inherit an open connection */
		held = race_hold(path_of(f, rollup));
	close(go[1]); /* release them together */
	if (held)
		race_release(held);
	for (int i = 0; i < nproc; i++) {
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		if (WEXITSTATUS(status) > 1)
			fail_msg("child %d exited %d", i, WEXITSTATUS(status));
		firsts += WEXITSTATUS(status) == 0;
	}
	assert_int_equal(firsts, 1);
	assert_int_equal(test_sql_int_at(path_of(f, rollup), "SELECT sum(flows) FROM flows_1m"),
			 flows_before + 5);
	assert_int_equal(rollup_file_has(path_of(f, rollup), source), 1);
	assert_meta_matches(path_of(f, rollup), SCHEMA_KIND_1M);
}

static void test_apply_two_processes(void **state)
{
	struct fixture *f = *state;
	struct catalog cat;

	/* a new day's file each round: the creations race */
	for (int round = 0; round < 3; round++) {
		make_raw(f, T0 + round * DAY, 0);
		race_round(f, T0 + round * DAY, 0, round % 2 ? 2 : 4, 0);
	}
	/* then the transactions, in a file that exists */
	for (unsigned seq = 1; seq < 3; seq++) {
		make_raw(f, T0, seq);
		race_round(f, T0, seq, seq == 1 ? 2 : 4, 1);
	}
	assert_int_equal(test_sql_int_at(path_of(f, M0), "SELECT count(*) FROM rolled"), 3);
	assert_int_equal(catalog_scan(f->dir, &cat), 0);
	assert_int_equal(cat.temps, 0); /* the losers cleaned up */
	assert_int_equal(cat.foreign, 0);
	catalog_free(&cat);
}

static void test_apply_errors(void **state)
{
	struct fixture *f = *state;
	const char *m0 = path_of(f, M0);
	uint64_t added = 9;
	int done = 9;

	make_raw(f, T0, 0);
	assert_int_equal(apply(f, SCHEMA_KIND_RAW, DAY0, RAW0, INSERT_1M, &added, &done), -EINVAL);
	assert_int_equal(added, 0);
	assert_int_equal(done, 0);
	assert_int_equal(apply(f, SCHEMA_KIND_1M, DAY0 + HOUR, RAW0, INSERT_1M, &added, &done),
			 -EINVAL); /* not a period start */
	assert_int_equal(apply(f, SCHEMA_KIND_1H, DAY0, RAW0, INSERT_1H, &added, &done), -EINVAL);
	assert_int_equal(rollup_file_apply(f->dir, SCHEMA_KIND_1M, DAY0, "notes.txt",
					   path_of(f, RAW0), 6, INSERT_1M, T0, 100, &added, &done),
			 -EINVAL);
	assert_int_equal(rollup_file_apply(NULL, SCHEMA_KIND_1M, DAY0, RAW0, path_of(f, RAW0), 6,
					   INSERT_1M, T0, 100, &added, &done), -EINVAL);
	assert_false(exists(m0)); /* nothing made for calls refused up front */

	/* a missing source: the file is made, nothing is marked */
	assert_int_equal(apply(f, SCHEMA_KIND_1M, DAY0, "raw-20261127T210000Z-0000.db", INSERT_1M,
			       &added, &done), -ENOENT);
	assert_true(exists(m0));
	assert_int_equal(test_sql_int_at(m0, "SELECT count(*) FROM rolled"), 0);
	/* a source that is not ours */
	write_file(path_of(f, "raw-20261127T220000Z-0000.db"), "not a partition", 15);
	assert_int_equal(apply(f, SCHEMA_KIND_1M, DAY0, "raw-20261127T220000Z-0000.db", INSERT_1M,
			       &added, &done), -EINVAL);

	/* bad statements: nothing committed, the file as it was */
	assert_int_equal(apply(f, SCHEMA_KIND_1M, DAY0, RAW0, "INSERT INTO nowhere SELECT 1",
			       &added, &done), -EINVAL);
	assert_int_equal(apply(f, SCHEMA_KIND_1M, DAY0, RAW0, "SELECT count(*) FROM src.flows",
			       &added, &done), -EINVAL);
	assert_int_equal(apply(f, SCHEMA_KIND_1M, DAY0, RAW0, INSERT_1M "; DELETE FROM rolled",
			       &added, &done), -EINVAL);
	assert_int_equal(apply(f, SCHEMA_KIND_1M, DAY0, RAW0,
			       "INSERT INTO rolled SELECT 'x', 0, 0, 0", &added, &done), -EACCES);
	assert_int_equal(apply(f, SCHEMA_KIND_1M, DAY0, RAW0,
			       "INSERT INTO flows_1h(ts, proto, flows, connections, failed_connections)"
			       " SELECT ts, proto, 1, 0, 0 FROM src.flows", &added, &done), -EINVAL);
	/* rows inserted, then a NOT NULL fails: all or nothing */
	assert_int_equal(apply(f, SCHEMA_KIND_1M, DAY0, RAW0,
			       "INSERT INTO flows_1m(ts, proto, flows, connections, failed_connections)"
			       " SELECT ts, CASE WHEN orig_bytes = 1 THEN NULL ELSE proto END, 1, 0, 0"
			       " FROM src.flows WHERE ts >= ?1 AND ts < ?2 ORDER BY ts", &added, &done),
			 -EINVAL);
	assert_int_equal(added, 0);
	assert_non_null(strstr(schema_last_error(), "NOT NULL"));
	assert_int_equal(test_sql_int_at(m0, "SELECT count(*) FROM flows_1m"), 0);
	assert_int_equal(test_sql_int_at(m0, "SELECT count(*) FROM rolled"), 0);
	assert_meta_matches(m0, SCHEMA_KIND_1M);
	assert_int_equal(rollup_file_has(m0, RAW0), 0);
	/* and the right one still goes in */
	assert_int_equal(apply(f, SCHEMA_KIND_1M, DAY0, RAW0, INSERT_1M, &added, &done), 0);
	assert_int_equal(added, 4);
	assert_int_equal(done, 0);
}

/* Each kind of file refuses to be read or sealed as another. */
static void test_wrong_kind(void **state)
{
	struct fixture *f = *state;
	const char *raw = make_raw(f, T0, 0);
	const char *m0 = path_of(f, M0);
	char (*names)[SCHEMA_NAME_LEN] = NULL;
	struct partition_meta m;
	struct catalog cat;
	struct stat st;
	uint64_t added;
	size_t n;
	int done;

	assert_int_equal(apply(f, SCHEMA_KIND_1M, DAY0, RAW0, INSERT_1M, &added, &done), 0);
	assert_int_equal(partition_read_meta(m0, &m), -EINVAL);
	assert_non_null(strstr(schema_last_error(), "rollup"));
	assert_int_equal(m.tables[SCHEMA_FLOWS].rows, 0);
	assert_int_equal(rollup_read_meta(raw, &m), -EINVAL);
	assert_non_null(strstr(schema_last_error(), "raw partition"));
	assert_int_equal(rollup_file_has(raw, RAW0), -EINVAL);
	assert_int_equal(rollup_file_sources(raw, &names, &n), -EINVAL);
	assert_null(names);
	assert_int_equal(n, 0);
	assert_int_equal(partition_seal(m0, T0, NULL), -EINVAL);
	assert_int_equal(stat(m0, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_meta_matches(m0, SCHEMA_KIND_1M);
	/* a rollup source is refused */
	assert_int_equal(rollup_file_apply(f->dir, SCHEMA_KIND_1H, NOV, RAW0, m0, 6, INSERT_1H, T0,
					   100, &added, &done), -EINVAL);

	/* a 1h file under a 1m name, and a 1m file under a raw name */
	assert_int_equal(apply(f, SCHEMA_KIND_1H, NOV, RAW0, INSERT_1H, &added, &done), 0);
	assert_int_equal(rename(path_of(f, H0), path_of(f, "1m-20261128T000000Z-0000.db")), 0);
	assert_int_equal(apply(f, SCHEMA_KIND_1M, DAY1, RAW0, INSERT_1M, &added, &done), -EINVAL);
	assert_non_null(strstr(schema_last_error(), "a 1h file under a 1m name"));
	assert_int_equal(rename(m0, path_of(f, "raw-20261127T230000Z-0000.db")), 0);
	assert_int_equal(catalog_scan(f->dir, &cat), 0);
	assert_int_equal(cat.n, 3);
	assert_int_equal(cat.entries[0].kind, SCHEMA_KIND_RAW);
	assert_int_equal(cat.entries[0].status, CATALOG_OPEN);
	assert_int_equal(cat.entries[0].has_meta, 1);
	assert_string_equal(cat.entries[1].name, "raw-20261127T230000Z-0000.db");
	assert_int_equal(cat.entries[1].status, CATALOG_BROKEN);
	assert_int_equal(cat.entries[1].has_meta, 0);
	assert_non_null(strstr(cat.entries[1].error, "rollup"));
	assert_string_equal(cat.entries[2].name, "1m-20261128T000000Z-0000.db");
	assert_int_equal(cat.entries[2].kind, SCHEMA_KIND_1M);
	assert_int_equal(cat.entries[2].status, CATALOG_BROKEN);
	assert_non_null(strstr(cat.entries[2].error, "a 1h file under a 1m name"));
	catalog_free(&cat);
}

/* ---- crashes and leftovers ------------------------------------------------------------- */

/* A creation killed half-way: a half-written temporary file and journal. */
static void test_half_written_tmp(void **state)
{
	struct fixture *f = *state;
	static const char junk[] = "SQLite format 3\0 half of a header, then the process died";
	const char *tmp = path_of(f, "." M0 ".tmp");
	const char *journal = path_of(f, "." M0 ".tmp-journal");
	struct catalog cat;
	uint64_t added;
	size_t removed;
	int done;

	make_raw(f, T0, 0);
	write_file(tmp, junk, sizeof(junk));
	write_file(journal, junk, sizeof(junk));
	assert_int_equal(catalog_scan(f->dir, &cat), 0);
	assert_int_equal(cat.n, 1); /* the raw partition; no file has the rollup name */
	assert_int_equal(cat.temps, 2);
	assert_int_equal(cat.foreign, 0);
	assert_int_equal(cat.bytes, cat.entries[0].bytes + blocks_of(tmp) + blocks_of(journal));
	catalog_free(&cat);
	assert_false(exists(path_of(f, M0)));

	/* the next creation reuses the name and starts afresh */
	assert_int_equal(apply(f, SCHEMA_KIND_1M, DAY0, RAW0, INSERT_1M, &added, &done), 0);
	assert_int_equal(added, 4);
	assert_false(exists(tmp));
	assert_false(exists(journal));
	assert_rollup_file(path_of(f, M0), "flows_1m", DAY0, DAY1);
	assert_meta_matches(path_of(f, M0), SCHEMA_KIND_1M);

	/* or the sweep removes them */
	write_file(path_of(f, "." H0 ".tmp"), junk, 10);
	assert_int_equal(catalog_remove_temps(f->dir, &removed), 0);
	assert_int_equal(removed, 1);
	assert_false(exists(path_of(f, "." H0 ".tmp")));
	assert_true(exists(path_of(f, M0)));
	assert_true(exists(path_of(f, RAW0)));
}

/* A creator in progress holds its temporary file: nobody takes it from it;
 * once it dies (kill -9), the next creation does. */
static void test_creator_killed(void **state)
{
	struct fixture *f = *state;
	const char *tmp = path_of(f, "." M0 ".tmp");
	int ready[2], status;
	uint64_t added;
	size_t removed;
	pid_t pid;
	char c;
	int done;

	make_raw(f, T0, 0);
	assert_int_equal(pipe(ready), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(tmp, O_RDWR | O_CREAT, 0644);

		if (fd < 0 || flock(fd, LOCK_EX) || write(fd, "SQLite format 3", 15) != 15)
			_exit(1);
		if (write(ready[1], "x", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);

	assert_int_equal(catalog_remove_temps(f->dir, &removed), 0);
	assert_int_equal(removed, 0);
	assert_true(exists(tmp));
	assert_int_equal(rollup_file_apply(f->dir, SCHEMA_KIND_1M, DAY0, RAW0, path_of(f, RAW0), 6,
					   INSERT_1M, T0, 50, &added, &done), -EBUSY);
	assert_non_null(strstr(schema_last_error(), "creating"));
	assert_false(exists(path_of(f, M0)));

	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(apply(f, SCHEMA_KIND_1M, DAY0, RAW0, INSERT_1M, &added, &done), 0);
	assert_int_equal(added, 4);
	assert_false(exists(tmp));
	assert_rollup_file(path_of(f, M0), "flows_1m", DAY0, DAY1);
}

/* A rollup step killed before its COMMIT: the hot journal is rolled back
 * by the next read-write open; read-only readers say so meanwhile. */
static void test_step_killed(void **state)
{
	struct fixture *f = *state;
	const char *m0 = path_of(f, M0);
	struct partition_meta m;
	struct catalog cat;
	uint64_t added;
	pid_t pid;
	int status, done;

	make_raw(f, T0, 0);
	assert_int_equal(apply(f, SCHEMA_KIND_1M, DAY0, RAW0, INSERT_1M, &added, &done), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		sqlite3 *db = NULL;

		sqlite3_open_v2(m0, &db, SQLITE_OPEN_READWRITE, NULL);
		sqlite3_exec(db, "PRAGMA cache_size = 2; BEGIN;"
			     " INSERT INTO rolled VALUES ('raw-20261127T210000Z-0000.db', 1, 1, 1);"
			     " UPDATE meta_tables SET rows = 1000;"
			     " WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c"
			     " WHERE x < 2000) INSERT INTO flows_1m(ts, proto, comm, flows,"
			     " connections, failed_connections) SELECT x, 'tcp', hex(randomblob(200)),"
			     " 1, 0, 0 FROM c;", NULL, NULL, NULL);
		_exit(0); /* no COMMIT, no close */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(exists(path_of(f, M0 "-journal")));

	assert_int_equal(rollup_read_meta(m0, &m), -EAGAIN);
	assert_int_equal(catalog_scan(f->dir, &cat), 0);
	assert_int_equal(cat.n, 2);
	assert_int_equal(cat.entries[1].kind, SCHEMA_KIND_1M);
	assert_int_equal(cat.entries[1].status, CATALOG_OPEN);
	assert_int_equal(cat.entries[1].has_meta, 0);
	assert_int_equal(cat.entries[1].needs_seal, 0);
	assert_true(strlen(cat.entries[1].error) > 0);
	assert_int_equal(cat.entries[1].bytes, blocks_of(m0) + blocks_of(path_of(f, M0 "-journal")));
	catalog_free(&cat);
	assert_true(exists(path_of(f, M0 "-journal"))); /* the scan changed nothing */

	assert_int_equal(rollup_file_has(m0, "raw-20261127T210000Z-0000.db"), 0);
	assert_false(exists(path_of(f, M0 "-journal")));
	assert_int_equal(rollup_file_has(m0, RAW0), 1);
	assert_meta_matches(m0, SCHEMA_KIND_1M);
	assert_int_equal(test_sql_int_at(m0, "SELECT count(*) FROM flows_1m"), 4);
	assert_int_equal(test_sql_int_at(m0, "SELECT count(*) FROM rolled"), 1);
}

/* ---- the catalog of every kind ------------------------------------------------------------ */

static void test_catalog_kinds(void **state)
{
	struct fixture *f = *state;
	const char *sealed = make_raw(f, T0, 0);
	const char *orphan = path_of(f, "raw-20261127T220000Z-0000.db-wal");
	const char *tmp = path_of(f, ".1h-20261201T000000Z-0000.db.tmp");
	const char *writing = "raw-20261127T210000Z-0000.db";
	struct schema_row row = flow_at(T0 + HOUR, "tcp", 1);
	struct partition *open = NULL;
	struct catalog cat;
	uint64_t added, sum = 0;
	size_t removed;
	int done;

	assert_int_equal(partition_seal(sealed, T0 + HOUR, NULL), 0);
	assert_int_equal(apply(f, SCHEMA_KIND_1H, NOV, RAW0, INSERT_1H, &added, &done), 0);
	assert_int_equal(apply(f, SCHEMA_KIND_1M, DAY1, RAW0, INSERT_1M, &added, &done), 0);
	assert_int_equal(apply(f, SCHEMA_KIND_1M, DAY0, RAW0, INSERT_1M, &added, &done), 0);
	assert_int_equal(partition_create(f->dir, T0 + HOUR, HOUR, 0, T0, &open), 0);
	assert_int_equal(partition_begin(open), 0);
	assert_int_equal(partition_add(open, &row), 0);
	assert_int_equal(partition_commit(open), 0);
	write_file(path_of(f, "1h-20261201T000000Z-0000.db"), "garbage with a rollup name", 26);
	write_file(orphan, "left by an interrupted removal", 30);
	write_file(tmp, "half", 4);
	write_file(path_of(f, "notes.txt"), "hello", 5);
	write_file(path_of(f, ".retention.lock"), "", 0);
	write_file(path_of(f, ".1h-20261201T000000Z-0000.db.tmp-wal"), "x", 1); /* not ours */

	assert_int_equal(catalog_scan(f->dir, &cat), 0);
	assert_int_equal(cat.n, 6);
	assert_int_equal(cat.foreign, 2);
	assert_int_equal(cat.temps, 2);
	assert_string_equal(cat.entries[0].name, RAW0);
	assert_int_equal(cat.entries[0].kind, SCHEMA_KIND_RAW);
	assert_int_equal(cat.entries[0].status, CATALOG_SEALED);
	assert_int_equal(cat.entries[0].has_meta, 1);
	assert_int_equal(cat.entries[0].meta.tables[SCHEMA_FLOWS].rows, 6);
	assert_string_equal(cat.entries[1].name, writing);
	assert_int_equal(cat.entries[1].status, CATALOG_OPEN);
	assert_int_equal(cat.entries[1].needs_seal, 1);
	assert_int_equal(cat.entries[1].has_meta, 1);
	assert_int_equal(cat.entries[1].meta.tables[SCHEMA_FLOWS].rows, 1);
	assert_true(cat.entries[1].bytes > blocks_of(path_of(f, writing))); /* its -wal, -shm */
	assert_int_equal(cat.entries[1].bytes, blocks_of(path_of(f, writing)) +
			 blocks_of(path_of(f, "raw-20261127T210000Z-0000.db-wal")) +
			 blocks_of(path_of(f, "raw-20261127T210000Z-0000.db-shm")));
	assert_string_equal(cat.entries[2].name, M0);
	assert_int_equal(cat.entries[2].kind, SCHEMA_KIND_1M);
	assert_int_equal(cat.entries[2].period_start_ns, DAY0);
	assert_int_equal(cat.entries[2].status, CATALOG_OPEN);
	assert_int_equal(cat.entries[2].needs_seal, 0);
	assert_int_equal(cat.entries[2].has_meta, 1);
	assert_int_equal(cat.entries[2].meta.period_end_ns, DAY1);
	assert_int_equal(cat.entries[2].meta.tables[SCHEMA_ROLLUP_META].rows, 4);
	assert_int_equal(cat.entries[2].meta.tables[SCHEMA_ROLLUP_META].ts_max, T0 + 59 * MIN);
	assert_int_equal(cat.entries[2].bytes, blocks_of(path_of(f, M0)));
	assert_string_equal(cat.entries[3].name, M1);
	assert_int_equal(cat.entries[3].meta.tables[SCHEMA_ROLLUP_META].rows, 1);
	assert_string_equal(cat.entries[4].name, H0);
	assert_int_equal(cat.entries[4].kind, SCHEMA_KIND_1H);
	assert_int_equal(cat.entries[4].meta.tables[SCHEMA_ROLLUP_META].rows, 3);
	assert_int_equal(cat.entries[4].meta.period_end_ns, DEC);
	assert_string_equal(cat.entries[5].name, "1h-20261201T000000Z-0000.db");
	assert_int_equal(cat.entries[5].status, CATALOG_BROKEN);
	assert_int_equal(cat.entries[5].has_meta, 0);
	assert_int_equal(cat.entries[5].needs_seal, 0);
	for (size_t i = 0; i < cat.n; i++) {
		assert_true(cat.entries[i].bytes > 0);
		sum += cat.entries[i].bytes;
	}
	assert_int_equal(cat.bytes, sum + blocks_of(orphan) + blocks_of(tmp));
	catalog_free(&cat);
	assert_int_equal(cat.n, 0);
	assert_int_equal(cat.temps, 0);
	assert_int_equal(cat.bytes, 0);

	/* the sweep: leftovers only */
	assert_int_equal(catalog_remove_temps(f->dir, &removed), 0);
	assert_int_equal(removed, 2);
	assert_false(exists(orphan));
	assert_false(exists(tmp));
	assert_true(exists(path_of(f, "notes.txt")));
	assert_true(exists(path_of(f, ".retention.lock")));
	assert_true(exists(path_of(f, ".1h-20261201T000000Z-0000.db.tmp-wal")));
	assert_true(exists(path_of(f, "1h-20261201T000000Z-0000.db")));
	assert_true(exists(path_of(f, "raw-20261127T210000Z-0000.db-wal"))); /* the writer's */
	assert_int_equal(catalog_scan(f->dir, &cat), 0);
	assert_int_equal(cat.n, 6);
	assert_int_equal(cat.temps, 0);
	catalog_free(&cat);
	assert_int_equal(catalog_remove_temps(f->dir, NULL), 0);
	assert_int_equal(catalog_remove_temps(path_of(f, "missing"), &removed), -ENOENT);
	assert_int_equal(removed, 0);
	partition_close(open);
}

/*
 * The next seq of a period: above its raw files' and above the sources a
 * rollup file marks, whose raw files are gone (a name given twice would
 * count as rolled up already). Other periods' names, foreign files and
 * unreadable rollup files do not count.
 */
static void test_next_seq(void **state)
{
	struct fixture *f = *state;
	const char *raw0 = make_raw(f, T0, 0);
	const char *raw1 = make_raw(f, T0, 1);
	unsigned seq = 99;
	uint64_t added;
	int done;

	assert_int_equal(catalog_next_seq(f->dir, T0, &seq), 0);
	assert_int_equal(seq, 2);
	assert_int_equal(catalog_next_seq(f->dir, T0 + HOUR, &seq), 0);
	assert_int_equal(seq, 0);

	/* raw 1 rolled up (its rows reach both 1m files) and removed, raw 0
	 * removed without a rollup */
	assert_int_equal(rollup_file_apply(f->dir, SCHEMA_KIND_1M, DAY0, "raw-20261127T200000Z-0001.db",
					   raw1, 6, INSERT_1M, T0, 5000, &added, &done), 0);
	assert_int_equal(rollup_file_apply(f->dir, SCHEMA_KIND_1M, DAY1, "raw-20261127T200000Z-0001.db",
					   raw1, 6, INSERT_1M, T0, 5000, &added, &done), 0);
	assert_int_equal(unlink(raw0), 0);
	assert_int_equal(unlink(raw1), 0);
	assert_int_equal(rollup_file_last_seq(path_of(f, M0), T0, &seq), 1);
	assert_int_equal(seq, 1);
	assert_int_equal(rollup_file_last_seq(path_of(f, M0), T0 + HOUR, &seq), 0);
	assert_int_equal(rollup_file_last_seq(path_of(f, M0), T0 - HOUR, &seq), 0);
	assert_int_equal(rollup_file_last_seq(path_of(f, H0), T0, &seq), -ENOENT);
	assert_int_equal(catalog_next_seq(f->dir, T0, &seq), 0);
	assert_int_equal(seq, 2);

	/* the 1m file of the first day goes too: the next day's still marks it */
	assert_int_equal(unlink(path_of(f, M0)), 0);
	assert_int_equal(catalog_next_seq(f->dir, T0, &seq), 0);
	assert_int_equal(seq, 2);
	assert_int_equal(unlink(path_of(f, M1)), 0);
	assert_int_equal(catalog_next_seq(f->dir, T0, &seq), 0);
	assert_int_equal(seq, 0); /* no mark left: the name is free again */

	/* a raw file further on, a foreign file, an unreadable rollup file */
	make_raw(f, T0, 7);
	write_file(path_of(f, "raw-20261127T200000Z-0042.db.bak"), "x", 1);
	write_file(path_of(f, H0), "garbage with a rollup name", 26);
	assert_int_equal(catalog_next_seq(f->dir, T0, &seq), 0);
	assert_int_equal(seq, 8);
	assert_int_equal(rollup_file_last_seq(path_of(f, H0), T0, &seq), -EINVAL);

	/* the last seq used: none is left */
	make_raw(f, T0, SCHEMA_SEQ_MAX);
	assert_int_equal(catalog_next_seq(f->dir, T0, &seq), -ERANGE);
	assert_int_equal(catalog_next_seq(path_of(f, "missing"), T0, &seq), -ENOENT);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_kinds),
		T(test_periods),
		T(test_names),
		T(test_name_rejects),
		T(test_temp_names),
		T(test_apply),
		T(test_apply_sealed_and_open),
		T(test_apply_two_processes),
		T(test_apply_errors),
		T(test_wrong_kind),
		T(test_half_written_tmp),
		T(test_creator_killed),
		T(test_step_killed),
		T(test_catalog_kinds),
		T(test_next_seq),
	};

	if (schema_init())
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
