/*
 * Unit tests of retention/retention.h: the plan (pure, over hand-made
 * catalogs), the report's text, and whole runs over real data dirs of
 * small partitions with an injected clock and injected free space.
 *
 * Data dirs are built from real partitions (partition_create / _add /
 * _commit / _seal) and real rollup files (rollup_partition), at fixed
 * times before NOW, and removed by the teardown whether a test passed or
 * not. Expected results are known answers: file names, reasons, counts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "retention.h"
#include "rollup.h"
#include "schema.h"
#include "testdir.h"
#include "testsql.h"

#define NS 1000000000LL
#define MIN (60 * NS)
#define HOUR (3600 * NS)
#define DAY (24 * HOUR)
#define NOW (1795824000LL * NS) /* 2026-11-28T00:00:00Z */
#define FLOWS_PER_PART 3
#define CONNS_PER_PART 2

/* ---- helpers: time, files ------------------------------------------------------ */

static int64_t at(int y, int mo, int d, int h)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h };

	return (int64_t)timegm(&tm) * NS;
}

static const char *raw_name(int64_t start)
{
	static char buf[4][SCHEMA_NAME_LEN];
	static int next;
	char *b = buf[next++ % 4];

	assert_int_equal(partition_name_format(b, SCHEMA_NAME_LEN, start, 0), 0);
	return b;
}

static const char *kind_name(enum schema_kind k, int64_t t)
{
	static char buf[4][SCHEMA_NAME_LEN];
	static int next;
	char *b = buf[next++ % 4];

	assert_int_equal(rollup_name_format(b, SCHEMA_NAME_LEN, k, t), 0);
	return b;
}

static const char *path_in(const char *dir, const char *name)
{
	static char buf[4][PATH_MAX];
	static int next;
	char *b = buf[next++ % 4];

	snprintf(b, PATH_MAX, "%s/%s", dir, name);
	return b;
}

static int exists(const char *dir, const char *name)
{
	struct stat st;

	return lstat(path_in(dir, name), &st) == 0;
}

static void write_file(const char *dir, const char *name, const char *text)
{
	FILE *fp = fopen(path_in(dir, name), "wb");

	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
}

/* Bytes allocated by every file in dir (what a file system's free space
 * moves with). */
static uint64_t dir_usage(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	uint64_t sum = 0;

	assert_non_null(d);
	while ((de = readdir(d))) {
		struct stat st;

		if (lstat(path_in(dir, de->d_name), &st) == 0 && S_ISREG(st.st_mode))
			sum += (uint64_t)st.st_blocks * 512;
	}
	closedir(d);
	return sum;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted lines joined by '\n'; frees the lines. Caller frees. */
static char *join_sorted(char **lines, size_t n)
{
	size_t len = 1;
	char *out;

	qsort(lines, n, sizeof(*lines), str_cmp);
	for (size_t i = 0; i < n; i++)
		len += strlen(lines[i]) + 1;
	out = calloc(1, len);
	assert_non_null(out);
	for (size_t i = 0; i < n; i++) {
		strcat(out, lines[i]);
		strcat(out, "\n");
		free(lines[i]);
	}
	free(lines);
	return out;
}

/* The dir as `ls -l` with ns mtimes would show it (with_stat), or just the
 * names. Caller frees. A -shm file's mtime is left out: it is SQLite's
 * shared memory of a WAL file, which every reader writes to. */
static int is_shm(const char *name)
{
	size_t len = strlen(name);

	return len > 4 && !strcmp(name + len - 4, "-shm");
}

static char *listing(const char *dir, int with_stat)
{
	char **lines = calloc(256, sizeof(*lines));
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d))) {
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		assert_int_equal(lstat(path_in(dir, de->d_name), &st), 0);
		assert_true(n < 256);
		if (with_stat && is_shm(de->d_name))
			assert_true(asprintf(&lines[n++], "%s %o %lld", de->d_name, st.st_mode,
					     (long long)st.st_size) > 0);
		else if (with_stat)
			assert_true(asprintf(&lines[n++], "%s %o %lld %lld.%09ld", de->d_name,
					     st.st_mode, (long long)st.st_size,
					     (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec) > 0);
		else
			lines[n++] = strdup(de->d_name);
	}
	closedir(d);
	return join_sorted(lines, n);
}

/* Every row of a rollup file's table and its sources, as sorted text. */
static char *rollup_digest(const char *path, enum schema_kind k)
{
	char **lines = calloc(4096, sizeof(*lines));
	char (*sources)[SCHEMA_NAME_LEN] = NULL;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	size_t n = 0, ns = 0;
	char sql[128];

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	snprintf(sql, sizeof(sql), "SELECT * FROM %s", rollup_table_name(k));
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		char row[1024] = "";

		for (int c = 0; c < sqlite3_column_count(st); c++) {
			const unsigned char *v = sqlite3_column_text(st, c);

			strcat(row, v ? (const char *)v : "NULL");
			strcat(row, "|");
		}
		assert_true(n < 4096);
		lines[n++] = strdup(row);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	assert_int_equal(rollup_file_sources(path, &sources, &ns), 0);
	for (size_t i = 0; i < ns; i++) {
		assert_true(n < 4096);
		assert_true(asprintf(&lines[n++], "rolled %s", sources[i]) > 0);
	}
	free(sources);
	return join_sorted(lines, n);
}

/* The end state of a dir: names, and every rollup file's content. */
static char *dir_state(const char *dir)
{
	char *names = listing(dir, 0), *out = strdup(names);
	char *save = NULL;

	for (char *name = strtok_r(names, "\n", &save); name; name = strtok_r(NULL, "\n", &save)) {
		enum schema_kind k;
		int64_t start;
		unsigned seq;
		char *digest, *grown;

		if (schema_name_parse(name, &k, &start, &seq) || k == SCHEMA_KIND_RAW)
			continue;
		digest = rollup_digest(path_in(dir, name), k);
		assert_true(asprintf(&grown, "%s== %s\n%s", out, name, digest) > 0);
		free(out);
		free(digest);
		out = grown;
	}
	free(names);
	return out;
}

/* Long texts: cmocka cuts assert_string_equal's message short. */
static void assert_same_text(const char *got, const char *want)
{
	if (strcmp(got, want)) {
		fprintf(stderr, "got:\n%s\nwant:\n%s", got, want);
		fail();
	}
}

/* ---- helpers: partitions ------------------------------------------------------- */

static struct schema_row flow_at(int64_t ts, int64_t bytes)
{
	struct schema_row r = { .table = SCHEMA_FLOWS };

	r.flow.ts = ts;
	r.flow.ts_end = ts + NS;
	strcpy(r.flow.proto, "tcp");
	strcpy(r.flow.orig_addr, "10.0.0.5");
	strcpy(r.flow.resp_addr, "192.0.2.1");
	r.flow.orig_port = 40000;
	r.flow.resp_port = 443;
	r.flow.orig_pkts = 2;
	r.flow.orig_bytes = bytes;
	r.flow.resp_pkts = 3;
	r.flow.resp_bytes = 2 * bytes;
	strcpy(r.flow.comm, "curl");
	return r;
}

static struct schema_row conn_at(int64_t ts)
{
	struct schema_row r = { .table = SCHEMA_CONNECTIONS };

	r.conn.ts = ts;
	r.conn.ts_end = ts + NS;
	strcpy(r.conn.direction, "out");
	strcpy(r.conn.orig_addr, "10.0.0.5");
	strcpy(r.conn.resp_addr, "192.0.2.1");
	r.conn.orig_port = 40001;
	r.conn.resp_port = 443;
	strcpy(r.conn.comm, "curl");
	strcpy(r.conn.states, "SYN_SENT>ESTABLISHED>CLOSE");
	return r;
}

enum raw_state { RAW_SEALED, RAW_CLOSED, RAW_OPEN };

/*
 * A raw hour at start with 3 flows (orig_bytes 100, 200, 300) and 2
 * connections: sealed, closed but unsealed, or left open (returned; the
 * caller closes it). Its name.
 */
static const char *make_raw(const char *dir, int64_t start, enum raw_state s,
			    struct partition **open_out)
{
	struct schema_row rows[] = { flow_at(start + MIN, 100), flow_at(start + 2 * MIN, 200),
				     flow_at(start + 30 * MIN, 300), conn_at(start + MIN),
				     conn_at(start + 40 * MIN) };
	struct partition *p = NULL;
	const char *name = raw_name(start);

	assert_int_equal(partition_create(dir, start, HOUR, 0, start, &p), 0);
	assert_int_equal(partition_begin(p), 0);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		assert_int_equal(partition_add(p, &rows[i]), 0);
	assert_int_equal(partition_commit(p), 0);
	if (s == RAW_OPEN) {
		*open_out = p;
		return name;
	}
	partition_close(p);
	if (s == RAW_SEALED)
		assert_int_equal(partition_seal(path_in(dir, name), start + HOUR + NS, NULL), 0);
	return name;
}

/* Roll a raw partition up as the past would have (no horizon). */
static void roll(const char *dir, const char *name)
{
	static const int64_t none[SCHEMA_NKINDS];
	struct partition_meta m;
	struct rollup_result res;

	assert_int_equal(partition_read_meta(path_in(dir, name), &m), 0);
	if (rollup_partition(dir, name, &m, none, NOW - DAY, 1000, &res))
		fail_msg("rollup %s: %s", name, schema_last_error());
}

static const char *raw_sealed_rolled(const char *dir, int64_t start)
{
	const char *name = make_raw(dir, start, RAW_SEALED, NULL);

	roll(dir, name);
	return name;
}

/* ---- the injected world -------------------------------------------------------- */

struct world {
	int64_t now;
	uint64_t free_base;   /* free space before the run */
	const char *dir;      /* if set, free space grows with what leaves dir */
	uint64_t usage0;
	const char *allow[4]; /* names may_remove_open says 1 for */
	int kill_at;          /* _exit(9) at this step (1-based); 0 never */
	int steps;
	char log[64][80];     /* the steps, "what name" */
};

static int64_t world_now(void *ctx)
{
	return ((struct world *)ctx)->now;
}

static int world_free(const char *dir, uint64_t *out, void *ctx)
{
	struct world *w = ctx;
	uint64_t usage;

	(void)dir;
	*out = w->free_base;
	if (w->dir) {
		usage = dir_usage(w->dir);
		*out += w->usage0 > usage ? w->usage0 - usage : 0;
	}
	return 0;
}

static int world_may_remove_open(const char *name, void *ctx)
{
	struct world *w = ctx;

	for (int i = 0; i < 4 && w->allow[i]; i++)
		if (!strcmp(w->allow[i], name))
			return 1;
	return 0;
}

static void world_step(const char *what, const char *name, void *ctx)
{
	struct world *w = ctx;

	if (w->steps < 64)
		snprintf(w->log[w->steps], sizeof(w->log[0]), "%s %s", what, name);
	if (++w->steps == w->kill_at)
		_exit(9);
}

static struct retention_env world_env(struct world *w)
{
	struct retention_env env = {
		.now_ns = world_now,
		.fs_free = world_free,
		.may_remove_open = world_may_remove_open,
		.step = world_step,
		.ctx = w,
		.busy_ms = 1000,
	};

	if (!w->now)
		w->now = NOW;
	if (!w->free_base && !w->dir)
		w->free_base = 1ULL << 40;
	return env;
}

/* The index of the step "what name" in w's log, or -1. */
static int step_index(const struct world *w, const char *what, const char *name)
{
	char want[80];

	snprintf(want, sizeof(want), "%s %s", what, name);
	for (int i = 0; i < w->steps && i < 64; i++)
		if (!strcmp(w->log[i], want))
			return i;
	return -1;
}

static struct retention_policy no_limits(void)
{
	struct retention_policy p;

	memset(&p, 0, sizeof(p));
	return p;
}

struct want {
	const char *name;
	enum retention_why why;
	int roll_up_first;
};

static void assert_actions(const struct retention_report *r, const struct want *w, size_t n)
{
	for (size_t i = 0; i < r->n && i < n; i++) {
		if (strcmp(r->actions[i].name, w[i].name) || r->actions[i].why != w[i].why ||
		    r->actions[i].roll_up_first != w[i].roll_up_first)
			fail_msg("action %zu: got %s %s %d, want %s %s %d", i, r->actions[i].name,
				 retention_why_name(r->actions[i].why), r->actions[i].roll_up_first,
				 w[i].name, retention_why_name(w[i].why), w[i].roll_up_first);
	}
	if (r->n != n) {
		for (size_t i = 0; i < r->n; i++)
			print_message("  got %s %s\n", r->actions[i].name,
				      retention_why_name(r->actions[i].why));
		fail_msg("%zu actions, want %zu", r->n, n);
	}
}

static uint64_t entry_bytes(const char *dir, const char *name)
{
	struct catalog cat;
	uint64_t b = 0;
	int found = 0;

	assert_int_equal(catalog_scan(dir, &cat), 0);
	for (size_t i = 0; i < cat.n; i++)
		if (!strcmp(cat.entries[i].name, name))
			b = cat.entries[i].bytes, found = 1;
	catalog_free(&cat);
	if (!found)
		fail_msg("%s not in the catalog", name);
	return b;
}

static uint64_t store_bytes(const char *dir)
{
	struct catalog cat;
	uint64_t b;

	assert_int_equal(catalog_scan(dir, &cat), 0);
	b = cat.bytes;
	catalog_free(&cat);
	return b;
}

static int setup(void **state)
{
	*state = test_mkdtemp("test_retention");
	return 0;
}

static int teardown(void **state)
{
	test_rmtree(*state);
	free(*state);
	return 0;
}

/* ---- the plan, pure ----------------------------------------------------------------- */

static struct catalog_entry raw_entry(int64_t start, enum catalog_status s, int needs_seal,
				      uint64_t bytes)
{
	struct catalog_entry e;

	memset(&e, 0, sizeof(e));
	snprintf(e.name, sizeof(e.name), "%s", raw_name(start));
	e.kind = SCHEMA_KIND_RAW;
	e.period_start_ns = start;
	e.status = s;
	e.needs_seal = needs_seal;
	e.has_meta = s != CATALOG_BROKEN;
	e.meta.period_start_ns = start;
	e.meta.period_end_ns = start + HOUR;
	e.meta.sealed = s == CATALOG_SEALED;
	e.bytes = bytes;
	return e;
}

static struct catalog_entry rollup_entry(enum schema_kind k, int64_t t, uint64_t bytes)
{
	struct catalog_entry e;
	int64_t end;

	memset(&e, 0, sizeof(e));
	snprintf(e.name, sizeof(e.name), "%s", kind_name(k, t));
	e.kind = k;
	rollup_period(k, t, &e.period_start_ns, &end);
	e.status = CATALOG_OPEN;
	e.has_meta = 1;
	e.bytes = bytes;
	return e;
}

static uint64_t sum_bytes(const struct catalog_entry *e, size_t n)
{
	uint64_t s = 0;

	for (size_t i = 0; i < n; i++)
		s += e[i].bytes;
	return s;
}

/* Entries in catalog order (1h, 1m, raw by name), not removal order. */
static void test_plan_order_and_watermark(void **state)
{
	struct catalog_entry e[] = {
		rollup_entry(SCHEMA_KIND_1H, at(2026, 11, 1, 0), 300),
		rollup_entry(SCHEMA_KIND_1M, at(2026, 11, 26, 0), 200),
		rollup_entry(SCHEMA_KIND_1M, at(2026, 11, 27, 0), 200),
		raw_entry(at(2026, 11, 27, 1), CATALOG_SEALED, 0, 1000),
		raw_entry(at(2026, 11, 27, 0), CATALOG_SEALED, 0, 1000), /* oldest raw */
		raw_entry(at(2026, 11, 27, 2), CATALOG_SEALED, 0, 1000),
		raw_entry(at(2026, 11, 27, 3), CATALOG_OPEN, 1, 1000), /* being written */
	};
	struct catalog cat = { .entries = e, .n = 7, .bytes = sum_bytes(e, 7) + 100 /* temps */ };
	int rolled[7] = { 0, 0, 0, 1, 0, 1, 0 };
	struct retention_policy p = no_limits();
	struct retention_report r;

	(void)state;
	/* 4800 bytes; over 4000: down to 3600, two raw go (oldest first) */
	p.max_disk = 4000;
	assert_int_equal(retention_plan(&cat, rolled, &p, NOW, 0, NULL, NULL, &r), 0);
	assert_actions(&r, (struct want[]){ { e[4].name, RETENTION_MAX_DISK, 1 },
					    { e[3].name, RETENTION_MAX_DISK, 0 } }, 2);
	assert_int_equal(r.bytes_before, 4800);
	assert_int_equal(r.bytes_after, 2800);
	assert_int_equal(r.free_after, 2000);
	assert_int_equal(r.actions[0].level, 4800);
	assert_int_equal(r.actions[0].limit, 4000);
	assert_int_equal(r.actions[0].bytes, 1000);
	assert_int_equal(r.actions[0].period_end_ns, at(2026, 11, 27, 1));
	assert_int_equal(r.kept_unsealed, 1);
	retention_report_free(&r);

	/* exactly at the limit: nothing */
	p.max_disk = 4800;
	assert_int_equal(retention_plan(&cat, rolled, &p, NOW, 0, NULL, NULL, &r), 0);
	assert_int_equal(r.n, 0);
	retention_report_free(&r);

	/* 4799 -> low water 4319: one raw brings it to 3800 */
	p.max_disk = 4799;
	assert_int_equal(retention_plan(&cat, rolled, &p, NOW, 0, NULL, NULL, &r), 0);
	assert_int_equal(r.n, 1);
	retention_report_free(&r);

	/* 1900 -> low water 1710: all three sealed raw (1800 left), then the
	 * older 1m (1600); never the open one */
	p.max_disk = 1900;
	assert_int_equal(retention_plan(&cat, rolled, &p, NOW, 0, NULL, NULL, &r), 0);
	assert_actions(&r, (struct want[]){ { e[4].name, RETENTION_MAX_DISK, 1 },
					    { e[3].name, RETENTION_MAX_DISK, 0 },
					    { e[5].name, RETENTION_MAX_DISK, 0 },
					    { e[1].name, RETENTION_MAX_DISK, 0 } }, 4);
	retention_report_free(&r);

	/* 1700 -> 1530: the newer 1m too (1400), then the 1h is not needed */
	p.max_disk = 1700;
	assert_int_equal(retention_plan(&cat, rolled, &p, NOW, 0, NULL, NULL, &r), 0);
	assert_int_equal(r.n, 5);
	assert_string_equal(r.actions[4].name, e[2].name);
	assert_int_equal(r.bytes_after, 1400);
	retention_report_free(&r);

	/* 1000 -> 900: everything removable, and still over (1100 left) */
	p.max_disk = 1000;
	assert_int_equal(retention_plan(&cat, rolled, &p, NOW, 0, NULL, NULL, &r), 0);
	assert_int_equal(r.n, 6);
	assert_string_equal(r.actions[5].name, e[0].name);
	assert_int_equal(r.bytes_after, 1100);
	retention_report_free(&r);

	/* min-free: 500 free < 1000; up to 1111: one raw gives 1500 */
	p = no_limits();
	p.min_free = 1000;
	assert_int_equal(retention_plan(&cat, rolled, &p, NOW, 500, NULL, NULL, &r), 0);
	assert_actions(&r, (struct want[]){ { e[4].name, RETENTION_MIN_FREE, 1 } }, 1);
	assert_int_equal(r.actions[0].level, 500);
	assert_int_equal(r.actions[0].limit, 1000);
	assert_int_equal(r.free_before, 500);
	assert_int_equal(r.free_after, 1500);
	retention_report_free(&r);

	/* min-free 2700: watermark 3000 needs all three raw (500 + 3000) */
	p.min_free = 2700;
	assert_int_equal(retention_plan(&cat, rolled, &p, NOW, 500, NULL, NULL, &r), 0);
	assert_int_equal(r.n, 3);
	assert_string_equal(r.actions[2].name, e[5].name);
	retention_report_free(&r);

	/* free at the limit: nothing */
	assert_int_equal(retention_plan(&cat, rolled, &p, NOW, 2700, NULL, NULL, &r), 0);
	assert_int_equal(r.n, 0);
	retention_report_free(&r);
}

static int allow_all(const char *name, void *ctx)
{
	(void)name;
	++*(int *)ctx;
	return 1;
}

static int allow_none(const char *name, void *ctx)
{
	(void)name;
	++*(int *)ctx;
	return 0;
}

/* Age per kind, at the boundary; broken files and unsealed partitions. */
static void test_plan_age_and_never(void **state)
{
	struct catalog_entry e[] = {
		raw_entry(at(2026, 11, 20, 23), CATALOG_SEALED, 0, 10), /* ends 11-21 00:00 */
		raw_entry(at(2026, 11, 21, 0), CATALOG_SEALED, 0, 10),  /* ends 01:00: stays */
		raw_entry(at(2026, 11, 1, 0), CATALOG_BROKEN, 0, 10),
		raw_entry(at(2026, 11, 2, 0), CATALOG_OPEN, 1, 10),     /* closed, unsealed */
		raw_entry(at(2026, 11, 3, 0), CATALOG_SEALED, 1, 10),   /* seal unfinished */
		raw_entry(at(2026, 11, 4, 0), CATALOG_OPEN, 1, 10),     /* no meta */
		rollup_entry(SCHEMA_KIND_1M, at(2026, 8, 29, 0), 10),   /* ends 08-30: goes */
		rollup_entry(SCHEMA_KIND_1M, at(2026, 8, 30, 0), 10),   /* ends 08-31: stays */
		rollup_entry(SCHEMA_KIND_1H, at(2025, 10, 1, 0), 10),   /* ends 2025-11-01 */
		rollup_entry(SCHEMA_KIND_1H, at(2025, 11, 1, 0), 10),
		rollup_entry(SCHEMA_KIND_1M, at(2026, 1, 1, 0), 10),
	};
	struct catalog cat = { .entries = e, .n = 11, .bytes = 110 };
	struct retention_policy p;
	struct retention_report r;
	int calls = 0;

	(void)state;
	e[5].has_meta = 0;
	e[10].status = CATALOG_BROKEN;
	retention_policy_default(&p);
	assert_int_equal(p.retain_ns[SCHEMA_KIND_RAW], 7 * DAY);
	assert_int_equal(p.retain_ns[SCHEMA_KIND_1M], 90 * DAY);
	assert_int_equal(p.retain_ns[SCHEMA_KIND_1H], 400 * DAY);
	assert_int_equal(p.max_disk, 0);
	assert_int_equal(p.min_free, 0);
	/* NOW - 7d = 11-21 00:00; - 90d = 08-30 00:00; - 400d = 2025-10-24 */
	assert_int_equal(retention_plan(&cat, NULL, &p, NOW, 0, allow_none, &calls, &r), 0);
	assert_actions(&r, (struct want[]){ { e[0].name, RETENTION_AGE, 1 },
					    { e[6].name, RETENTION_AGE, 0 } }, 2);
	assert_int_equal(r.actions[1].period_end_ns, at(2026, 8, 30, 0));
	assert_int_equal(r.actions[1].limit, 90 * DAY);
	assert_int_equal(r.broken, 2);
	assert_int_equal(r.kept_unsealed, 3);
	assert_int_equal(calls, 2); /* asked for the two with metadata */
	retention_report_free(&r);

	/* allowed: the closed ones go by age too; the one without meta never */
	calls = 0;
	assert_int_equal(retention_plan(&cat, NULL, &p, NOW, 0, allow_all, &calls, &r), 0);
	assert_actions(&r, (struct want[]){ { e[3].name, RETENTION_AGE, 1 },
					    { e[4].name, RETENTION_AGE, 1 },
					    { e[0].name, RETENTION_AGE, 1 },
					    { e[6].name, RETENTION_AGE, 0 } }, 4);
	assert_int_equal(r.kept_unsealed, 1);
	retention_report_free(&r);

	/* the 1h tier alone, at its boundary: 2025-11-01 = NOW - 392d */
	p = no_limits();
	p.retain_ns[SCHEMA_KIND_1H] = 392 * DAY;
	assert_int_equal(retention_plan(&cat, NULL, &p, NOW, 0, NULL, NULL, &r), 0);
	assert_actions(&r, (struct want[]){ { e[8].name, RETENTION_AGE, 0 } }, 1);
	retention_report_free(&r);

	/* everything under pressure: still never broken, unsealed, meta-less */
	p.max_disk = 1;
	p.min_free = UINT64_MAX;
	assert_int_equal(retention_plan(&cat, NULL, &p, NOW, 0, NULL, NULL, &r), 0);
	assert_int_equal(r.n, 6);
	for (size_t i = 0; i < r.n; i++)
		assert_true(strcmp(r.actions[i].name, e[2].name) && strcmp(r.actions[i].name, e[3].name) &&
			    strcmp(r.actions[i].name, e[4].name) && strcmp(r.actions[i].name, e[5].name) &&
			    strcmp(r.actions[i].name, e[10].name));
	retention_report_free(&r);

	p.retain_ns[SCHEMA_KIND_RAW] = -1;
	assert_int_equal(retention_plan(&cat, NULL, &p, NOW, 0, NULL, NULL, &r), -EINVAL);
	assert_string_equal(retention_why_name(RETENTION_AGE), "age");
	assert_string_equal(retention_why_name(RETENTION_MAX_DISK), "max-disk");
	assert_string_equal(retention_why_name(RETENTION_MIN_FREE), "min-free");
}

/* ---- the report's text ------------------------------------------------------------- */

static void test_report_print(void **state)
{
	struct retention_action a[] = {
		{ .why = RETENTION_AGE, .bytes = 12897484, .period_end_ns = at(2026, 11, 20, 11),
		  .limit = 7 * DAY },
		{ .why = RETENTION_MAX_DISK, .bytes = 5 << 20, .roll_up_first = 1,
		  .level = 210ULL << 20, .limit = 200ULL << 20 },
		{ .why = RETENTION_MIN_FREE, .bytes = 512, .level = 1288490189, .limit = 2ULL << 30 },
	};
	struct retention_report r = {
		.now_ns = at(2026, 11, 28, 10), .actions = a, .n = 3, .rolled_up = 2,
		.rollup_rows = 42, .temps_removed = 1, .bytes_before = 215ULL << 20,
		.bytes_after = 197ULL << 20, .free_before = 1288490189,
		.free_after = 1288490189 + (18ULL << 20), .kept_unsealed = 1,
	};
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	strcpy(a[0].name, "raw-20261120T100000Z-0000.db");
	strcpy(a[1].name, "raw-20261126T000000Z-0000.db");
	strcpy(a[2].name, "1m-20261001T000000Z-0000.db");
	f = open_memstream(&buf, &len);
	retention_report_print(f, &r, 0);
	fclose(f);
	assert_string_equal(buf,
		"removed raw-20261120T100000Z-0000.db (12.3 MiB): age: period ended "
		"2026-11-20T11:00:00Z, 7d 23h ago\n"
		"removed raw-20261126T000000Z-0000.db (5.0 MiB), rolled up first: max-disk: "
		"store 210.0 MiB > 200.0 MiB\n"
		"removed 1m-20261001T000000Z-0000.db (512 B): min-free: 1.2 GiB free < 2.0 GiB\n"
		"retention: removed 3 files (17.3 MiB); store 215.0 MiB -> 197.0 MiB; "
		"free 1.2 GiB -> 1.2 GiB; 1 temporary file removed; 2 partitions rolled up "
		"(42 rows); 1 unsealed partition kept\n");
	free(buf);

	r.n = 1;
	r.broken = 2;
	f = open_memstream(&buf, &len);
	retention_report_print(f, &r, 1);
	fclose(f);
	assert_string_equal(buf,
		"would remove raw-20261120T100000Z-0000.db (12.3 MiB): age: period ended "
		"2026-11-20T11:00:00Z, 7d 23h ago\n"
		"retention (dry run): would remove 1 file (12.3 MiB); store 215.0 MiB -> 197.0 MiB; "
		"free 1.2 GiB -> 1.2 GiB; 1 temporary file to remove; 2 partitions to roll up; "
		"1 unsealed partition kept; 2 broken files kept\n");
	free(buf);
}

/* ---- runs over real dirs -------------------------------------------------------------- */

/*
 * (a) Ages: raw 2d, 1m 17d, 1h 50d at NOW = 2026-11-28. Raw periods
 * ending at or before 11-26 00:00 go, 1m days ending by 11-11 00:00, 1h
 * months ending by 10-09 00:00.
 */
static void test_run_ages(void **state)
{
	const char *dir = *state;
	char r1[SCHEMA_NAME_LEN], r2[SCHEMA_NAME_LEN], r3[SCHEMA_NAME_LEN],
		r4[SCHEMA_NAME_LEN], r5[SCHEMA_NAME_LEN];
	struct retention_policy p = no_limits();
	struct retention_report r;
	struct world w = { 0 };
	struct retention_env env = world_env(&w);
	struct partition *open = NULL;
	const char *writing;

	strcpy(r1, raw_sealed_rolled(dir, at(2026, 9, 15, 10)));
	strcpy(r2, raw_sealed_rolled(dir, at(2026, 11, 10, 10)));
	strcpy(r3, raw_sealed_rolled(dir, at(2026, 11, 25, 22)));
	strcpy(r4, raw_sealed_rolled(dir, at(2026, 11, 25, 23))); /* ends at the cut-off */
	strcpy(r5, raw_sealed_rolled(dir, at(2026, 11, 26, 0)));
	writing = make_raw(dir, at(2026, 11, 27, 23), RAW_OPEN, &open);
	p.retain_ns[SCHEMA_KIND_RAW] = 2 * DAY;
	p.retain_ns[SCHEMA_KIND_1M] = 17 * DAY;
	p.retain_ns[SCHEMA_KIND_1H] = 50 * DAY;

	/* each tier alone (dry runs), then all three for real */
	for (int k = 0; k < SCHEMA_NKINDS; k++) {
		struct retention_policy one = no_limits();

		one.retain_ns[k] = p.retain_ns[k];
		assert_int_equal(retention_run(dir, &one, &env, 1, &r), 0);
		if (k == SCHEMA_KIND_RAW)
			assert_actions(&r, (struct want[]){ { r1, RETENTION_AGE, 0 },
							    { r2, RETENTION_AGE, 0 },
							    { r3, RETENTION_AGE, 0 },
							    { r4, RETENTION_AGE, 0 } }, 4);
		else if (k == SCHEMA_KIND_1M)
			assert_actions(&r, (struct want[]){
				{ kind_name(SCHEMA_KIND_1M, at(2026, 9, 15, 0)), RETENTION_AGE, 0 },
				{ kind_name(SCHEMA_KIND_1M, at(2026, 11, 10, 0)), RETENTION_AGE, 0 } }, 2);
		else
			assert_actions(&r, (struct want[]){
				{ kind_name(SCHEMA_KIND_1H, at(2026, 9, 1, 0)), RETENTION_AGE, 0 } }, 1);
		retention_report_free(&r);
	}
	assert_int_equal(retention_run(dir, &p, &env, 0, &r), 0);
	assert_int_equal(r.n, 7);
	assert_int_equal(r.rolled_up, 0);
	assert_int_equal(r.kept_unsealed, 1);
	assert_int_equal(r.now_ns, NOW);
	assert_string_equal(r.error, "");
	retention_report_free(&r);
	partition_close(open);

	char *names = listing(dir, 0), want[1024];

	/* (the writer's side files went with its close) */
	snprintf(want, sizeof(want), ".retention.lock\n%s\n%s\n%s\n%s\n%s\n",
		 kind_name(SCHEMA_KIND_1H, at(2026, 11, 1, 0)),
		 kind_name(SCHEMA_KIND_1M, at(2026, 11, 25, 0)),
		 kind_name(SCHEMA_KIND_1M, at(2026, 11, 26, 0)), r5, writing);
	assert_string_equal(names, want);
	free(names);

	struct stat st;

	assert_int_equal(stat(path_in(dir, ".retention.lock"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	/* a second run finds nothing to do */
	assert_int_equal(retention_run(dir, &p, &env, 0, &r), 0);
	assert_int_equal(r.n, 0);
	retention_report_free(&r);
}

/* Six sealed, rolled raw hours over two days, and the open one. */
static void make_six(const char *dir, char names[6][SCHEMA_NAME_LEN], struct partition **open)
{
	static const int hours[6][2] = { { 26, 22 }, { 26, 23 }, { 27, 0 },
					 { 27, 1 },  { 27, 2 },  { 27, 3 } };

	for (int i = 0; i < 6; i++)
		strcpy(names[i], raw_sealed_rolled(dir, at(2026, 11, hours[i][0], hours[i][1])));
	make_raw(dir, at(2026, 11, 27, 4), RAW_OPEN, open);
}

/* Smallest max_disk whose low watermark is at least `to`. */
static uint64_t max_disk_for(uint64_t to)
{
	return (to * 100 + RETENTION_LOW_WATER_PCT - 1) / RETENTION_LOW_WATER_PCT;
}

/* (b) max-disk: oldest raw first, down to the low watermark; rollups only
 * when no raw is left. */
static void test_run_max_disk(void **state)
{
	const char *dir = *state;
	char raw[6][SCHEMA_NAME_LEN];
	const char *m1 = kind_name(SCHEMA_KIND_1M, at(2026, 11, 26, 0));
	struct retention_policy p = no_limits();
	struct retention_report r;
	struct world w = { 0 };
	struct retention_env env = world_env(&w);
	struct partition *open = NULL;
	uint64_t total, b[6], all_raw = 0, b_m1, rest;

	make_six(dir, raw, &open);
	total = store_bytes(dir);
	for (int i = 0; i < 6; i++)
		all_raw += b[i] = entry_bytes(dir, raw[i]);
	b_m1 = entry_bytes(dir, m1);

	/* exactly the two oldest: */
	p.max_disk = max_disk_for(total - b[0] - b[1]);
	assert_true(total > p.max_disk);
	assert_true(total - b[0] > p.max_disk * RETENTION_LOW_WATER_PCT / 100);
	assert_int_equal(retention_run(dir, &p, &env, 0, &r), 0);
	assert_actions(&r, (struct want[]){ { raw[0], RETENTION_MAX_DISK, 0 },
					    { raw[1], RETENTION_MAX_DISK, 0 } }, 2);
	assert_int_equal(r.actions[0].level, total);
	assert_int_equal(r.actions[0].limit, p.max_disk);
	assert_int_equal(r.bytes_before, total);
	assert_int_equal(r.bytes_after, total - b[0] - b[1]);
	assert_true(r.bytes_after <= p.max_disk * RETENTION_LOW_WATER_PCT / 100);
	assert_false(exists(dir, raw[0]) || exists(dir, raw[1]));
	assert_true(exists(dir, raw[2]));
	retention_report_free(&r);

	/* under the limit now (between the watermarks): nothing */
	assert_int_equal(retention_run(dir, &p, &env, 0, &r), 0);
	assert_int_equal(r.n, 0);
	retention_report_free(&r);

	/* every sealed raw, then the older 1m file; never the open raw */
	total -= b[0] + b[1];
	rest = total - (all_raw - b[0] - b[1]); /* the open raw and the rollups */
	p.max_disk = max_disk_for(rest - b_m1);
	assert_true(total > p.max_disk);
	assert_true(rest > p.max_disk * RETENTION_LOW_WATER_PCT / 100);
	assert_int_equal(retention_run(dir, &p, &env, 0, &r), 0);
	assert_actions(&r, (struct want[]){ { raw[2], RETENTION_MAX_DISK, 0 },
					    { raw[3], RETENTION_MAX_DISK, 0 },
					    { raw[4], RETENTION_MAX_DISK, 0 },
					    { raw[5], RETENTION_MAX_DISK, 0 },
					    { m1, RETENTION_MAX_DISK, 0 } }, 5);
	assert_int_equal(r.kept_unsealed, 1);
	retention_report_free(&r);
	assert_true(exists(dir, kind_name(SCHEMA_KIND_1M, at(2026, 11, 27, 0))));
	assert_true(exists(dir, kind_name(SCHEMA_KIND_1H, at(2026, 11, 1, 0))));
	assert_true(exists(dir, raw_name(at(2026, 11, 27, 4))));
	partition_close(open);
}

/* (c) min-free: the file system's free space grows by what leaves the
 * dir (the fake measures the dir), which is what the plan assumes. */
static void test_run_min_free(void **state)
{
	const char *dir = *state;
	char raw[6][SCHEMA_NAME_LEN];
	struct retention_policy p = no_limits();
	struct retention_report r;
	struct world w = { .dir = dir, .free_base = 100000 };
	struct retention_env env;
	struct partition *open = NULL;
	uint64_t b0, b1, high;

	make_six(dir, raw, &open);
	w.usage0 = dir_usage(dir);
	env = world_env(&w);
	b0 = entry_bytes(dir, raw[0]);
	b1 = entry_bytes(dir, raw[1]);
	/* the largest limit whose high watermark two raw files reach */
	p.min_free = (w.free_base + b0 + b1) * RETENTION_LOW_WATER_PCT / 100;
	high = p.min_free * 100 / RETENTION_LOW_WATER_PCT;
	assert_true(w.free_base < p.min_free);
	assert_true(w.free_base + b0 < high);
	assert_true(w.free_base + b0 + b1 >= high);

	assert_int_equal(retention_run(dir, &p, &env, 0, &r), 0);
	assert_actions(&r, (struct want[]){ { raw[0], RETENTION_MIN_FREE, 0 },
					    { raw[1], RETENTION_MIN_FREE, 0 } }, 2);
	assert_int_equal(r.actions[0].level, w.free_base);
	assert_int_equal(r.actions[0].limit, p.min_free);
	assert_int_equal(r.free_before, w.free_base);
	assert_int_equal(r.free_after, w.free_base + b0 + b1);
	assert_true(r.free_after >= high);
	retention_report_free(&r);

	/* above the limit (below the high watermark does not matter): nothing */
	assert_int_equal(retention_run(dir, &p, &env, 0, &r), 0);
	assert_int_equal(r.n, 0);
	retention_report_free(&r);
	partition_close(open);
}

/* (d) Never the open partition, broken files, foreign files, the lock;
 * closed unsealed ones only when may_remove_open says so. */
static void test_run_never(void **state)
{
	const char *dir = *state;
	struct retention_policy p = no_limits();
	struct retention_report r;
	struct world w = { 0 };
	struct retention_env env = world_env(&w);
	struct partition *open = NULL;
	char old[SCHEMA_NAME_LEN], closed[SCHEMA_NAME_LEN], writing[SCHEMA_NAME_LEN];
	const char *broken_raw = "raw-20260101T000000Z-0000.db";
	const char *broken_1m = "1m-20260101T000000Z-0000.db";
	char *after;

	strcpy(old, raw_sealed_rolled(dir, at(2026, 1, 2, 0)));
	strcpy(closed, make_raw(dir, at(2026, 1, 3, 0), RAW_CLOSED, NULL));
	strcpy(writing, make_raw(dir, at(2026, 1, 4, 0), RAW_OPEN, &open));
	write_file(dir, broken_raw, "not a partition, but named like one\n");
	write_file(dir, broken_1m, "SQLite format 3? no\n");
	write_file(dir, "notes.txt", "the operator's\n");
	write_file(dir, "raw-notes.db", "close, but not our name\n");
	for (int k = 0; k < SCHEMA_NKINDS; k++)
		p.retain_ns[k] = 1;
	p.max_disk = 1;
	p.min_free = UINT64_MAX / 2;

	env.may_remove_open = NULL;
	assert_int_equal(retention_run(dir, &p, &env, 0, &r), 0);
	assert_actions(&r, (struct want[]){
		{ old, RETENTION_AGE, 0 },
		{ kind_name(SCHEMA_KIND_1M, at(2026, 1, 2, 0)), RETENTION_AGE, 0 },
		{ kind_name(SCHEMA_KIND_1H, at(2026, 1, 2, 0)), RETENTION_AGE, 0 } }, 3);
	assert_int_equal(r.kept_unsealed, 2);
	assert_int_equal(r.broken, 2);
	retention_report_free(&r);

	/* allowed: the closed one goes, not the writer's. (Its rollup
	 * targets are past their horizons: nothing to roll up, done.) */
	env.may_remove_open = world_may_remove_open;
	w.allow[0] = closed;
	assert_int_equal(retention_run(dir, &p, &env, 0, &r), 0);
	assert_actions(&r, (struct want[]){ { closed, RETENTION_AGE, 0 } }, 1);
	assert_int_equal(r.kept_unsealed, 1);
	retention_report_free(&r);
	partition_close(open);
	after = listing(dir, 0);
	{
		char want[512];

		snprintf(want, sizeof(want), ".retention.lock\n%s\nnotes.txt\n%s\n%s\nraw-notes.db\n",
			 broken_1m, broken_raw, writing);
		assert_string_equal(after, want);
	}
	free(after);
}

/* (e) A raw partition not rolled up is rolled up before it goes; its
 * rows are in the rollups afterwards. */
static void test_run_rolls_up_first(void **state)
{
	const char *dir = *state;
	struct retention_policy p;
	struct retention_report r;
	struct world w = { 0 };
	struct retention_env env = world_env(&w);
	char sealed[SCHEMA_NAME_LEN], closed[SCHEMA_NAME_LEN];
	const char *m1 = kind_name(SCHEMA_KIND_1M, at(2026, 11, 24, 0));
	const char *m2 = kind_name(SCHEMA_KIND_1M, at(2026, 11, 25, 0));
	const char *h = kind_name(SCHEMA_KIND_1H, at(2026, 11, 1, 0));

	strcpy(sealed, make_raw(dir, at(2026, 11, 24, 10), RAW_SEALED, NULL));
	strcpy(closed, make_raw(dir, at(2026, 11, 25, 10), RAW_CLOSED, NULL));
	w.allow[0] = closed;
	retention_policy_default(&p);
	p.retain_ns[SCHEMA_KIND_RAW] = DAY;

	assert_int_equal(retention_run(dir, &p, &env, 0, &r), 0);
	assert_actions(&r, (struct want[]){ { sealed, RETENTION_AGE, 0 },
					    { closed, RETENTION_AGE, 1 } }, 2);
	assert_int_equal(r.rolled_up, 2);
	assert_true(r.rollup_rows > 0);
	retention_report_free(&r);
	assert_true(step_index(&w, "rollup", sealed) >= 0);
	assert_true(step_index(&w, "rollup", sealed) < step_index(&w, "unlink", sealed));
	assert_true(step_index(&w, "rollup", closed) >= 0);
	assert_true(step_index(&w, "rollup", closed) < step_index(&w, "unlink", closed));
	assert_false(exists(dir, sealed) || exists(dir, closed));

	assert_int_equal(rollup_file_has(path_in(dir, m1), sealed), 1);
	assert_int_equal(rollup_file_has(path_in(dir, m2), closed), 1);
	assert_int_equal(rollup_file_has(path_in(dir, h), sealed), 1);
	assert_int_equal(rollup_file_has(path_in(dir, h), closed), 1);
	assert_int_equal(test_sql_int_at(path_in(dir, m1), "SELECT sum(flows) FROM flows_1m"), FLOWS_PER_PART);
	assert_int_equal(test_sql_int_at(path_in(dir, m1), "SELECT sum(orig_bytes) FROM flows_1m"), 600);
	assert_int_equal(test_sql_int_at(path_in(dir, m2), "SELECT sum(connections) FROM flows_1m"),
			 CONNS_PER_PART);
	assert_int_equal(test_sql_int_at(path_in(dir, h), "SELECT sum(flows) FROM flows_1h"),
			 2 * FLOWS_PER_PART);
	assert_int_equal(test_sql_int_at(path_in(dir, h), "SELECT sum(resp_bytes) FROM flows_1h"), 2400);
	assert_int_equal(test_sql_int_at(path_in(dir, h), "SELECT sum(connections) FROM flows_1h"),
			 2 * CONNS_PER_PART);
}

/*
 * Runs that keep the dir's catalog between them (env.known, as the daemon
 * does) see what changed in between: a partition whose seal is no longer
 * whole (its chmod undone) is not taken from the kept catalog as sealed,
 * so it is kept like any unsealed one, while its unchanged neighbour ages
 * out. Partitions rolled up by the first run count as rolled up in the
 * second.
 */
static void test_run_known(void **state)
{
	const char *dir = *state;
	struct retention_policy p = no_limits();
	struct retention_report r;
	struct world w = { 0 };
	struct retention_env env = world_env(&w);
	struct catalog known = { 0 };
	char a[SCHEMA_NAME_LEN], b[SCHEMA_NAME_LEN], c[SCHEMA_NAME_LEN];

	strcpy(a, make_raw(dir, at(2026, 11, 24, 10), RAW_SEALED, NULL));
	strcpy(b, make_raw(dir, at(2026, 11, 24, 11), RAW_SEALED, NULL));
	strcpy(c, raw_sealed_rolled(dir, at(2026, 11, 27, 10)));
	env.known = &known;

	assert_int_equal(retention_run(dir, &p, &env, 0, &r), 0); /* rolls a and b up */
	assert_int_equal(r.n, 0);
	assert_int_equal(r.rolled_up, 2);
	retention_report_free(&r);
	assert_true(known.n >= 3);
	assert_string_equal(known.entries[0].name, a);
	assert_int_equal(known.entries[0].status, CATALOG_SEALED);
	assert_int_equal(known.entries[0].needs_seal, 0);

	assert_int_equal(chmod(path_in(dir, a), 0644), 0); /* a seal whose chmod died */
	p.retain_ns[SCHEMA_KIND_RAW] = 2 * DAY;
	assert_int_equal(retention_run(dir, &p, &env, 0, &r), 0);
	assert_actions(&r, (struct want[]){ { b, RETENTION_AGE, 0 } }, 1);
	assert_int_equal(r.rolled_up, 0);
	assert_int_equal(r.kept_unsealed, 1);
	retention_report_free(&r);
	assert_true(exists(dir, a) && !exists(dir, b) && exists(dir, c));
	assert_int_equal(known.entries[0].needs_seal, 1); /* the kept catalog follows */
	catalog_free(&known);
}

/* A partition whose rollup fails (a broken 1m file of its day in the way)
 * stays, the error is reported, and the others still go. */
static void test_run_rollup_failure(void **state)
{
	const char *dir = *state;
	struct retention_policy p;
	struct retention_report r;
	struct world w = { 0 };
	struct retention_env env = world_env(&w);
	char stuck[SCHEMA_NAME_LEN], gone[SCHEMA_NAME_LEN];
	const char *broken = kind_name(SCHEMA_KIND_1M, at(2026, 11, 20, 0));

	strcpy(stuck, make_raw(dir, at(2026, 11, 20, 10), RAW_SEALED, NULL));
	strcpy(gone, raw_sealed_rolled(dir, at(2026, 11, 21, 10)));
	write_file(dir, broken, "not a rollup file\n");
	retention_policy_default(&p);
	p.retain_ns[SCHEMA_KIND_RAW] = DAY;

	assert_true(retention_run(dir, &p, &env, 0, &r) < 0);
	assert_non_null(strstr(r.error, stuck));
	assert_actions(&r, (struct want[]){ { gone, RETENTION_AGE, 0 } }, 1);
	assert_int_equal(r.rolled_up, 0);
	assert_int_equal(r.broken, 1);
	retention_report_free(&r);
	assert_true(exists(dir, stuck));
	assert_true(exists(dir, broken));
	assert_int_equal(step_index(&w, "unlink", stuck), -1);
}

/* The dir of (f) and (g): every case a run meets. Returns nothing; the
 * names are fixed by the times. */
static void make_mixed(const char *dir)
{
	const char *a;

	raw_sealed_rolled(dir, at(2026, 9, 15, 10));          /* raw, 1m, 1h age out */
	a = raw_sealed_rolled(dir, at(2026, 11, 10, 10));     /* raw, 1m age out */
	{
		char side[SCHEMA_NAME_LEN + 8];

		snprintf(side, sizeof(side), "%s-shm", a);   /* a side file to remove */
		write_file(dir, side, "");
	}
	make_raw(dir, at(2026, 11, 25, 22), RAW_SEALED, NULL); /* ages out, not rolled */
	make_raw(dir, at(2026, 11, 26, 5), RAW_SEALED, NULL);  /* stays, not rolled */
	make_raw(dir, at(2026, 11, 25, 23), RAW_CLOSED, NULL); /* allowed, not rolled */
	make_raw(dir, at(2026, 11, 27, 23), RAW_CLOSED, NULL); /* stands for the writer's */
	write_file(dir, ".1m-20261127T000000Z-0000.db.tmp", "half a file");
	write_file(dir, "raw-20261101T000000Z-0000.db-journal", "orphan");
	write_file(dir, "notes.txt", "foreign");
}

static struct retention_policy mixed_policy(void)
{
	struct retention_policy p = no_limits();

	p.retain_ns[SCHEMA_KIND_RAW] = 2 * DAY;
	p.retain_ns[SCHEMA_KIND_1M] = 17 * DAY;
	p.retain_ns[SCHEMA_KIND_1H] = 50 * DAY;
	return p;
}

static void assert_same_actions(const struct retention_report *a,
				const struct retention_report *b)
{
	assert_int_equal(a->n, b->n);
	for (size_t i = 0; i < a->n; i++) {
		const struct retention_action *x = &a->actions[i], *y = &b->actions[i];

		assert_string_equal(x->name, y->name);
		assert_int_equal(x->kind, y->kind);
		assert_int_equal(x->why, y->why);
		assert_int_equal(x->bytes, y->bytes);
		assert_int_equal(x->period_end_ns, y->period_end_ns);
		assert_int_equal(x->roll_up_first, y->roll_up_first);
		assert_int_equal(x->level, y->level);
		assert_int_equal(x->limit, y->limit);
	}
}

/* The catalog's bytes in entries (not temporaries). */
static uint64_t entries_sum(const char *dir)
{
	struct catalog cat;
	uint64_t b = 0;

	assert_int_equal(catalog_scan(dir, &cat), 0);
	for (size_t i = 0; i < cat.n; i++)
		b += cat.entries[i].bytes;
	catalog_free(&cat);
	return b;
}

/* What mixed_policy ages out of make_mixed's dir. */
static const char *mixed_aged[7];

static void mixed_aged_names(void)
{
	static char names[7][SCHEMA_NAME_LEN];

	strcpy(names[0], raw_name(at(2026, 9, 15, 10)));
	strcpy(names[1], raw_name(at(2026, 11, 10, 10)));
	strcpy(names[2], raw_name(at(2026, 11, 25, 22)));
	strcpy(names[3], raw_name(at(2026, 11, 25, 23)));
	strcpy(names[4], kind_name(SCHEMA_KIND_1M, at(2026, 9, 15, 0)));
	strcpy(names[5], kind_name(SCHEMA_KIND_1M, at(2026, 11, 10, 0)));
	strcpy(names[6], kind_name(SCHEMA_KIND_1H, at(2026, 9, 1, 0)));
	for (int i = 0; i < 7; i++)
		mixed_aged[i] = names[i];
}

/*
 * Size limits over make_mixed's dir with every rollup done: max-disk
 * takes exactly the raw partition left after age, then min-free (just
 * over the free space left) at least one more.
 */
static void mixed_size_limits(const char *dir, struct retention_policy *p, uint64_t base)
{
	uint64_t store = store_bytes(dir), temps = store - entries_sum(dir), aged = 0, after, x;

	for (int i = 0; i < 7; i++)
		aged += entry_bytes(dir, mixed_aged[i]);
	x = entry_bytes(dir, raw_name(at(2026, 11, 26, 5)));
	after = store - temps - aged;
	p->max_disk = max_disk_for(after - x);
	assert_true(after > p->max_disk);
	p->min_free = base + temps + aged + x + 1;
}

/* (f) The dry run's plan is the real run's actions, and it changes
 * nothing: with rollups pending under age limits, and with all three
 * limits over a dir whose rollups are done. */
static void test_dry_run_matches(void **state)
{
	const char *dir = *state;

	mixed_aged_names();
	for (int sizes = 0; sizes < 2; sizes++) {
		struct retention_policy p = mixed_policy();
		struct retention_report dry, real;
		struct world w = { .dir = dir, .free_base = 50000 };
		struct retention_env env;
		char *before, *after;

		make_mixed(dir);
		if (sizes) {
			roll(dir, raw_name(at(2026, 11, 25, 22)));
			roll(dir, raw_name(at(2026, 11, 26, 5)));
			roll(dir, raw_name(at(2026, 11, 25, 23)));
			mixed_size_limits(dir, &p, w.free_base);
		}
		w.usage0 = dir_usage(dir);
		env = world_env(&w);
		w.allow[0] = raw_name(at(2026, 11, 25, 23));
		before = listing(dir, 1);
		assert_int_equal(retention_run(dir, &p, &env, 1, &dry), 0);
		after = listing(dir, 1);
		assert_same_text(after, before);
		assert_int_equal(w.steps, 0);
		assert_int_equal(dry.temps_removed, 2);
		assert_int_equal(dry.rolled_up, sizes ? 0 : 2);
		for (int i = 0; i < 7; i++) {
			assert_true(dry.n > (size_t)i);
			assert_string_equal(dry.actions[i].name, mixed_aged[i]);
			assert_int_equal(dry.actions[i].why, RETENTION_AGE);
			assert_int_equal(dry.actions[i].roll_up_first, !sizes && i == 3);
		}
		if (sizes) {
			assert_true(dry.n > 8);
			assert_string_equal(dry.actions[7].name, raw_name(at(2026, 11, 26, 5)));
			assert_int_equal(dry.actions[7].why, RETENTION_MAX_DISK);
			for (size_t i = 8; i < dry.n; i++)
				assert_int_equal(dry.actions[i].why, RETENTION_MIN_FREE);
		} else {
			assert_int_equal(dry.n, 7);
		}

		assert_int_equal(retention_run(dir, &p, &env, 0, &real), 0);
		assert_same_actions(&dry, &real);
		assert_int_equal(real.temps_removed, dry.temps_removed);
		assert_int_equal(real.rolled_up, dry.rolled_up + !sizes /* the closed one */);
		assert_int_equal(real.bytes_before, dry.bytes_before);
		assert_int_equal(real.free_before, dry.free_before);
		if (sizes) { /* nothing grew: the plan's arithmetic is what happened */
			assert_int_equal(real.bytes_after, dry.bytes_after);
			assert_int_equal(real.free_after, dry.free_after);
		}
		retention_report_free(&dry);
		retention_report_free(&real);
		free(before);
		free(after);
		test_rmtree(dir);
		assert_int_equal(mkdir(dir, 0700), 0);
	}
}

/* (g) Killed before any step, then run again: the same end state as a run
 * that was never interrupted. A whole run over make_mixed's dir: its end
 * state (state_out) and steps (log), each if not NULL. */
static void run_mixed(const char *dir, char **state_out, struct world *log)
{
	struct retention_policy p = mixed_policy();
	struct retention_report r;
	struct world w = { 0 };
	struct retention_env env = world_env(&w);
	int rc;

	w.allow[0] = raw_name(at(2026, 11, 25, 23));
	rc = retention_run(dir, &p, &env, 0, &r);
	if (rc)
		fail_msg("retention_run: %s", r.error);
	retention_report_free(&r);
	if (state_out)
		*state_out = dir_state(dir);
	if (log)
		*log = w;
}

static void assert_no_leftovers(const char *dir)
{
	struct catalog cat;

	assert_int_equal(catalog_scan(dir, &cat), 0);
	assert_int_equal(cat.temps, 0);
	assert_int_equal(cat.foreign, 1); /* notes.txt */
	catalog_free(&cat);
}

static void copy_dir(const char *from, const char *to)
{
	char *cmd;

	assert_true(asprintf(&cmd, "cp -a '%s/.' '%s/'", from, to) > 0);
	assert_int_equal(system(cmd), 0);
	free(cmd);
}

/*
 * The uninterrupted run's steps: the sweep, the two sealed partitions not
 * rolled up, then the plan: four raw partitions (one with a side file, the
 * closed one rolled up first), two 1m files and a 1h file. The closed
 * partition may have SQLite side files of its own (a reader's -wal, -shm),
 * removed with it: not listed here.
 */
static void assert_steps(const struct world *w)
{
	char want[12][80];
	int n = 0, k = 0;

	snprintf(want[n++], 80, "temp ");
	snprintf(want[n++], 80, "rollup %s", raw_name(at(2026, 11, 25, 22)));
	snprintf(want[n++], 80, "rollup %s", raw_name(at(2026, 11, 26, 5)));
	snprintf(want[n++], 80, "unlink %s", raw_name(at(2026, 9, 15, 10)));
	snprintf(want[n++], 80, "unlink %s", raw_name(at(2026, 11, 10, 10)));
	snprintf(want[n++], 80, "unlink-side %s-shm", raw_name(at(2026, 11, 10, 10)));
	snprintf(want[n++], 80, "unlink %s", raw_name(at(2026, 11, 25, 22)));
	snprintf(want[n++], 80, "rollup %s", raw_name(at(2026, 11, 25, 23)));
	snprintf(want[n++], 80, "unlink %s", raw_name(at(2026, 11, 25, 23)));
	snprintf(want[n++], 80, "unlink %s", kind_name(SCHEMA_KIND_1M, at(2026, 9, 15, 0)));
	snprintf(want[n++], 80, "unlink %s", kind_name(SCHEMA_KIND_1M, at(2026, 11, 10, 0)));
	snprintf(want[n++], 80, "unlink %s", kind_name(SCHEMA_KIND_1H, at(2026, 9, 1, 0)));
	for (int i = 0; i < w->steps; i++) {
		char side[80];

		snprintf(side, sizeof(side), "unlink-side %s-", raw_name(at(2026, 11, 25, 23)));
		if (!strncmp(w->log[i], side, strlen(side)))
			continue;
		if (k >= n || strcmp(w->log[i], want[k]))
			fail_msg("step %d: got '%s', want '%s'", i, w->log[i], k < n ? want[k] : "none");
		k++;
	}
	assert_int_equal(k, n);
}

/* In a child: the run, killed at step kill_at. Exits 9 if killed there,
 * 0 if the run finished first, 1 if it failed. No cmocka here. */
static void child_run(const char *dir, int kill_at)
{
	struct retention_policy p = mixed_policy();
	struct retention_report r;
	struct world w = { 0 };
	struct retention_env env = world_env(&w);
	int rc;

	w.allow[0] = raw_name(at(2026, 11, 25, 23));
	w.kill_at = kill_at;
	rc = retention_run(dir, &p, &env, 0, &r);
	if (rc)
		fprintf(stderr, "child: %s\n", r.error);
	_exit(rc ? 1 : 0);
}

static void test_interrupted_runs(void **state)
{
	char *tmpl, *dir, *want = NULL;
	struct world *w = calloc(1, sizeof(*w));
	int n;

	assert_true(asprintf(&tmpl, "%s/tmpl", (char *)*state) > 0);
	assert_true(asprintf(&dir, "%s/data", (char *)*state) > 0);
	assert_int_equal(mkdir(tmpl, 0700), 0);
	assert_int_equal(mkdir(dir, 0700), 0);
	make_mixed(tmpl);
	copy_dir(tmpl, dir);
	run_mixed(dir, &want, w);
	assert_no_leftovers(dir);
	assert_steps(w);
	for (n = 1;; n++) {
		pid_t pid;
		int status;
		char *got;

		test_rmtree(dir);
		assert_int_equal(mkdir(dir, 0700), 0);
		copy_dir(tmpl, dir);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			child_run(dir, n);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		if (WEXITSTATUS(status) == 0)
			break; /* a run with fewer than n steps: all covered */
		assert_int_equal(WEXITSTATUS(status), 9);
		run_mixed(dir, &got, NULL);
		assert_no_leftovers(dir);
		if (strcmp(got, want)) {
			fprintf(stderr, "killed at step %d:\n%s\nwant:\n%s", n, got, want);
			fail();
		}
		free(got);
	}
	assert_int_equal(n, w->steps + 1);
	free(want);
	free(w);
	free(tmpl);
	free(dir);
}

/* (h) Temporaries and orphan side files are swept; foreign files stay. */
static void test_run_sweeps_temps(void **state)
{
	const char *dir = *state;
	struct retention_policy p = no_limits();
	struct retention_report r;
	struct world w = { 0 };
	struct retention_env env = world_env(&w);
	char kept[SCHEMA_NAME_LEN], *names, want[512];

	strcpy(kept, raw_sealed_rolled(dir, at(2026, 11, 27, 10)));
	write_file(dir, ".1m-20261127T000000Z-0000.db.tmp", "half");
	write_file(dir, ".1m-20261127T000000Z-0000.db.tmp-journal", "half");
	write_file(dir, ".1h-20261101T000000Z-0000.db.tmp", "half");
	write_file(dir, "raw-20261101T000000Z-0000.db-wal", "orphan");
	write_file(dir, "raw-20261101T000000Z-0000.db-shm", "orphan");
	write_file(dir, ".hidden", "foreign");
	write_file(dir, "notes.txt", "foreign");

	assert_int_equal(retention_run(dir, &p, &env, 1, &r), 0);
	assert_int_equal(r.temps_removed, 5);
	assert_true(r.bytes_after < r.bytes_before);
	retention_report_free(&r);
	assert_true(exists(dir, ".1h-20261101T000000Z-0000.db.tmp"));

	assert_int_equal(retention_run(dir, &p, &env, 0, &r), 0);
	assert_int_equal(r.temps_removed, 5);
	assert_int_equal(r.n, 0);
	assert_int_equal(step_index(&w, "temp", ""), 0);
	retention_report_free(&r);
	names = listing(dir, 0);
	snprintf(want, sizeof(want), ".hidden\n.retention.lock\n%s\n%s\nnotes.txt\n%s\n",
		 kind_name(SCHEMA_KIND_1H, at(2026, 11, 1, 0)),
		 kind_name(SCHEMA_KIND_1M, at(2026, 11, 27, 0)), kept);
	assert_string_equal(names, want);
	free(names);
}

/* The lock: a run waits for it, and a cancelled wait changes nothing. */
static void test_lock_and_cancel(void **state)
{
	const char *dir = *state;
	struct retention_policy p = no_limits();
	struct retention_report r;
	struct world w = { 0 };
	struct retention_env env = world_env(&w);
	atomic_int cancel = 1;
	char *before, *after;
	int fd;

	raw_sealed_rolled(dir, at(2026, 1, 2, 0));
	p.retain_ns[SCHEMA_KIND_RAW] = DAY;
	fd = open(path_in(dir, ".retention.lock"), O_RDWR | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX), 0);
	before = listing(dir, 1);
	env.cancel = &cancel;
	assert_int_equal(retention_run(dir, &p, &env, 0, &r), -ECANCELED);
	assert_int_equal(r.n, 0);
	assert_non_null(strstr(r.error, "cancel"));
	retention_report_free(&r);
	after = listing(dir, 1);
	assert_same_text(after, before);
	free(after);

	/* the lock is free, but the run is cancelled before its first step */
	close(fd);
	assert_int_equal(retention_run(dir, &p, &env, 0, &r), -ECANCELED);
	assert_int_equal(r.n, 0);
	assert_int_equal(w.steps, 0);
	retention_report_free(&r);
	after = listing(dir, 1);
	assert_same_text(after, before);
	free(after);
	free(before);

	cancel = 0;
	assert_int_equal(retention_run(dir, &p, &env, 0, &r), 0);
	assert_int_equal(r.n, 1);
	retention_report_free(&r);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan_order_and_watermark),
		cmocka_unit_test(test_plan_age_and_never),
		cmocka_unit_test(test_report_print),
		T(test_run_ages),
		T(test_run_max_disk),
		T(test_run_min_free),
		T(test_run_never),
		T(test_run_rolls_up_first),
		T(test_run_known),
		T(test_run_rollup_failure),
		T(test_dry_run_matches),
		T(test_interrupted_runs),
		T(test_run_sweeps_temps),
		T(test_lock_and_cancel),
	};

	if (schema_init())
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
