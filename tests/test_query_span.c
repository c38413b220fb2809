/*
 * Unit tests of query/span.c: the tables that span every partition.
 *
 * The core is a property test. Random rows (all three tables, NULLs, IPv4
 * and IPv6 addresses, late and early rows whose ts lies in another
 * partition's period) go through the schema API into ~40 partitions, most
 * sealed, some left open, and the same rows into one merged file. A few
 * hundred random queries (time windows empty, narrow and unbounded, filters
 * on every kind of column, ORDER BY ts with LIMIT/OFFSET, aggregates, OR, a
 * join on sock_cookie) must give identical results through the span tables
 * and on the merged file. The seed is printed; FLOWSTORE_SEED replays one.
 *
 * The count fast path (count_fast.h): its recogniser on statements it must
 * and must not take, then random count queries (windows as literals,
 * parameters, REAL, text and NULL bounds, helper functions, BETWEEN and
 * reversed comparisons, aliases) through a sandbox connection against the
 * merged file and the span table's own slow path: same value, same column
 * name, same errors, and the metadata really used.
 *
 * Then: the pruning counters against ranges read independently with
 * partition_read_meta, files appearing, vanishing and broken between
 * queries, an open partition growing, the interrupt callback, the
 * partitions table against the metadata, and readers racing the sealer.
 *
 * Real SQLite files in a temp dir under $FLOWSTORE_TEST_TMP (else /tmp),
 * removed whether the test passed or not.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "count_fast.h"
#include "functions.h"
#include "rollup.h"
#include "sandbox.h"
#include "schema.h"
#include "span.h"

#define NS 1000000000LL
#define MINUTE (60 * NS)
#define HOUR (3600 * NS)
#define T0 (1795809600LL * NS) /* 2026-11-27T20:00:00Z */
#define NPARTS 40
#define NQUERIES 400
#define DIR_LEN 1024 /* a temp dir's path; PATH_MAX leaves room for a name */

/* ---- random numbers (splitmix64: the seed replays everything) ------------------ */

static uint64_t rng;

static uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int64_t below(int64_t n)
{
	return n > 0 ? (int64_t)(rnd() % (uint64_t)n) : 0;
}

static int chance(int pct)
{
	return below(100) < pct;
}

#define PICK(a) ((a)[below((int64_t)(sizeof(a) / sizeof((a)[0])))])

static const char *const addrs[] = {
	"10.0.0.1", "10.0.0.2", "10.0.0.5", "10.1.2.3", "192.168.1.10", "192.168.1.11",
	"203.0.113.7", "198.51.100.20", "8.8.8.8", "2001:db8::1", "2001:db8::2",
	"2001:db8:0:1::53", "fe80::1", "::1", "127.0.0.1",
};
static const char *const comms[] = { "curl", "sshd", "nginx", "", "Curl", "systemd-resolve" };
static const char *const protos[] = { "tcp", "udp", "icmp", "icmp6", "47" };
static const int ports[] = { 22, 53, 80, 443, 8080, 5353, 0, 123 };

/* ---- temp dirs ------------------------------------------------------------------ */

static void make_dir(char *buf, size_t len, const char *name)
{
	const char *base = getenv("FLOWSTORE_TEST_TMP");

	if (!base || !*base)
		base = "/tmp";
	mkdir(base, 0755);
	snprintf(buf, len, "%s/%s.XXXXXX", base, name);
	assert_non_null(mkdtemp(buf));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	chmod(path, 0755);
	return remove(path);
}

static void remove_dir(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- rows ------------------------------------------------------------------------ */

static uint64_t ts_counter;

/* A time in [start, start + len): random, and unique across the test
 * (the low digits count), so ORDER BY ts has exactly one right answer. */
static int64_t unique_ts(int64_t start, int64_t len)
{
	return start + below(len / 1000) * 1000 + (int64_t)(ts_counter++ % 1000);
}

/* Most rows in their partition's period; some late (an earlier period),
 * a few early (just after the period's end). */
static int64_t row_ts(int64_t start)
{
	int r = (int)below(100);

	if (r < 12 && start > T0)
		return unique_ts(start - (1 + below(3)) * HOUR, HOUR);
	if (r < 16)
		return unique_ts(start + HOUR, 10 * MINUTE);
	return unique_ts(start, HOUR);
}

static void set_addr(char *dst, size_t len)
{
	snprintf(dst, len, "%s", chance(6) ? "" : PICK(addrs));
}

static int pick_port(void)
{
	return chance(60) ? PICK(ports) : 1024 + (int)below(64000);
}

static int64_t pick_cookie(void)
{
	return chance(25) ? 0 : 1 + below(150);
}

static void random_flow(struct flow_row *f, int64_t start)
{
	static const char *const states[] = { "S0", "SF", "REJ", "OTH", "" };
	static const char *const hist[] = { "ShADadFf", "Sr", "D", "" };
	static const char *const ifs[] = { "eth0", "lo", "" };
	static const char *const ends[] = { "fin", "rst", "idle_timeout", "active_timeout" };

	memset(f, 0, sizeof(*f));
	f->ts = row_ts(start);
	f->ts_end = f->ts + below(600) * NS;
	snprintf(f->proto, sizeof(f->proto), "%s", PICK(protos));
	set_addr(f->orig_addr, sizeof(f->orig_addr));
	set_addr(f->resp_addr, sizeof(f->resp_addr));
	f->orig_port = (uint16_t)pick_port();
	f->resp_port = (uint16_t)pick_port();
	f->orig_pkts = below(1000);
	f->orig_bytes = below(1000000);
	f->resp_pkts = below(1000);
	f->resp_bytes = below(5000000);
	snprintf(f->conn_state, sizeof(f->conn_state), "%s", PICK(states));
	snprintf(f->history, sizeof(f->history), "%s", PICK(hist));
	snprintf(f->ifname, sizeof(f->ifname), "%s", PICK(ifs));
	snprintf(f->end_reason, sizeof(f->end_reason), "%s", PICK(ends));
	f->pid = chance(30) ? 0 : 100 + (uint32_t)below(10);
	snprintf(f->comm, sizeof(f->comm), "%s", PICK(comms));
	f->sock_cookie = pick_cookie();
}

static void random_conn(struct conn_row *c, int64_t start)
{
	static const char *const dirs[] = { "out", "in", "" };
	static const char *const closes[] = { "FIN_WAIT2", "LAST_ACK", "SYN_SENT", "" };

	memset(c, 0, sizeof(*c));
	c->ts = row_ts(start);
	c->ts_end = c->ts + below(900) * NS;
	c->sock_cookie = pick_cookie();
	c->cgroup_id = chance(20) ? 0 : 4000 + below(5);
	c->bytes_sent = below(1 << 20);
	c->bytes_received = below(1 << 22);
	c->segs_out = below(500);
	c->segs_in = below(500);
	c->retransmits = below(4);
	c->srtt_us = below(100000);
	c->pid = chance(25) ? 0 : 100 + (uint32_t)below(10);
	c->uid = (uint32_t)below(3) * 1000;
	c->orig_port = (uint16_t)pick_port();
	c->resp_port = (uint16_t)pick_port();
	snprintf(c->direction, sizeof(c->direction), "%s", PICK(dirs));
	snprintf(c->close_state, sizeof(c->close_state), "%s", PICK(closes));
	set_addr(c->orig_addr, sizeof(c->orig_addr));
	set_addr(c->resp_addr, sizeof(c->resp_addr));
	snprintf(c->comm, sizeof(c->comm), "%s", PICK(comms));
	snprintf(c->states, sizeof(c->states), "%s",
		 chance(50) ? "SYN_SENT>ESTABLISHED>FIN_WAIT1>FIN_WAIT2>CLOSE" : "SYN_RECV>CLOSE");
}

static void random_state(struct tcp_state_row *s, int64_t start)
{
	static const char *const names[] = { "SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "CLOSE",
					     "TIME_WAIT" };

	memset(s, 0, sizeof(*s));
	s->ts = row_ts(start);
	s->sock_cookie = pick_cookie();
	s->pid = chance(50) ? 0 : 100 + (uint32_t)below(10);
	s->orig_port = (uint16_t)pick_port();
	s->resp_port = (uint16_t)pick_port();
	snprintf(s->direction, sizeof(s->direction), "%s", chance(30) ? "" : "out");
	snprintf(s->old_state, sizeof(s->old_state), "%s", PICK(names));
	snprintf(s->new_state, sizeof(s->new_state), "%s", PICK(names));
	set_addr(s->orig_addr, sizeof(s->orig_addr));
	set_addr(s->resp_addr, sizeof(s->resp_addr));
	snprintf(s->comm, sizeof(s->comm), "%s", PICK(comms));
}

static void random_row(struct schema_row *r, enum schema_table t, int64_t start)
{
	r->table = t;
	if (t == SCHEMA_FLOWS)
		random_flow(&r->flow, start);
	else if (t == SCHEMA_CONNECTIONS)
		random_conn(&r->conn, start);
	else
		random_state(&r->state, start);
}

/* Add n random rows of t in a few transactions, to p and to merged. */
static void add_rows(struct partition *p, struct partition *merged, enum schema_table t,
		     int n, int64_t start)
{
	struct schema_row r;

	while (n > 0) {
		int batch = n < 50 ? n : 1 + (int)below(n);

		assert_int_equal(partition_begin(p), 0);
		if (merged)
			assert_int_equal(partition_begin(merged), 0);
		for (int i = 0; i < batch; i++) {
			random_row(&r, t, start);
			assert_int_equal(partition_add(p, &r), 0);
			if (merged)
				assert_int_equal(partition_add(merged, &r), 0);
		}
		assert_int_equal(partition_commit(p), 0);
		if (merged)
			assert_int_equal(partition_commit(merged), 0);
		n -= batch;
	}
}

/* n flows at ts, ts + 1, ... in one transaction */
static void add_flows_at(struct partition *p, int64_t ts, int n)
{
	struct schema_row r;

	assert_int_equal(partition_begin(p), 0);
	for (int i = 0; i < n; i++) {
		random_row(&r, SCHEMA_FLOWS, T0);
		r.flow.ts = ts + i;
		assert_int_equal(partition_add(p, &r), 0);
	}
	assert_int_equal(partition_commit(p), 0);
}

/* ---- running queries ---------------------------------------------------------------- */

struct rows {
	char **v;
	size_t n, cap;
};

static void rows_free(struct rows *r)
{
	for (size_t i = 0; i < r->n; i++)
		sqlite3_free(r->v[i]);
	free(r->v);
	memset(r, 0, sizeof(*r));
}

static void rows_add(struct rows *r, char *row)
{
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 64;
		r->v = realloc(r->v, r->cap * sizeof(*r->v));
		assert_non_null(r->v);
	}
	r->v[r->n++] = row;
}

/* One row as text, every value tagged with its type. */
static char *row_text(sqlite3_stmt *st)
{
	sqlite3_str *s = sqlite3_str_new(NULL);

	for (int c = 0; c < sqlite3_column_count(st); c++) {
		switch (sqlite3_column_type(st, c)) {
		case SQLITE_INTEGER:
			sqlite3_str_appendf(s, "i%lld|", (long long)sqlite3_column_int64(st, c));
			break;
		case SQLITE_FLOAT:
			sqlite3_str_appendf(s, "r%!.15g|", sqlite3_column_double(st, c));
			break;
		case SQLITE_TEXT:
			sqlite3_str_appendf(s, "t%s|", sqlite3_column_text(st, c));
			break;
		case SQLITE_BLOB:
			sqlite3_str_appendf(s, "b%d|", sqlite3_column_bytes(st, c));
			break;
		default:
			sqlite3_str_appendall(s, "N|");
		}
	}
	return sqlite3_str_finish(s);
}

/* Run sql with int64 parameters; SQLite's result code, rows in out. */
static int run(sqlite3 *db, const char *sql, const int64_t *params, int nparams,
	       struct rows *out)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	for (int i = 0; rc == SQLITE_OK && i < nparams; i++)
		rc = sqlite3_bind_int64(st, i + 1, params[i]);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		rows_add(out, row_text(st));
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int64_t query_int(sqlite3 *db, const char *sql)
{
	struct rows r = { 0 };
	long long v = -1;

	assert_int_equal(run(db, sql, NULL, 0, &r), SQLITE_OK);
	assert_int_equal(r.n, 1);
	assert_int_equal(sscanf(r.v[0], "i%lld", &v), 1);
	rows_free(&r);
	return v;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Same rows (in the same order when ordered) through the span tables and on
 * the merged file, or fail with everything needed to replay it. */
static void assert_same(sqlite3 *span, sqlite3 *ref, const char *sql, const int64_t *params,
			int nparams, int ordered, uint64_t seed)
{
	struct rows a = { 0 }, b = { 0 };
	int ra = run(span, sql, params, nparams, &a);
	int rb = run(ref, sql, params, nparams, &b);

	if (ra != SQLITE_OK || rb != SQLITE_OK)
		fail_msg("seed %" PRIu64 ": %s\n  span rc %d (%s), merged rc %d (%s)", seed, sql,
			 ra, sqlite3_errmsg(span), rb, sqlite3_errmsg(ref));
	if (!ordered && a.n)
		qsort(a.v, a.n, sizeof(*a.v), str_cmp);
	if (!ordered && b.n)
		qsort(b.v, b.n, sizeof(*b.v), str_cmp);
	for (size_t i = 0; i < a.n || i < b.n; i++) {
		if (i < a.n && i < b.n && strcmp(a.v[i], b.v[i]) == 0)
			continue;
		fail_msg("seed %" PRIu64 ": %s [%lld, %lld]\n  %zu rows vs %zu merged; row %zu:\n"
			 "  span:   %s\n  merged: %s", seed, sql,
			 (long long)(nparams > 0 ? params[0] : 0),
			 (long long)(nparams > 1 ? params[1] : 0), a.n, b.n, i,
			 i < a.n ? a.v[i] : "(none)", i < b.n ? b.v[i] : "(none)");
	}
	rows_free(&a);
	rows_free(&b);
}

/* ---- the world: ~40 partitions and the merged file --------------------------------------- */

struct world {
	char dir[DIR_LEN];
	char mdir[DIR_LEN];
	char paths[NPARTS][PATH_MAX];
	int sealed[NPARTS];
	struct span_set *set;
	sqlite3 *span;
	sqlite3 *ref;
	uint64_t seed;
	int64_t ts_min, ts_max;
};

static struct world W;

static uint64_t test_seed(void)
{
	const char *env = getenv("FLOWSTORE_SEED");

	return env && *env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
}

static sqlite3 *span_db(struct span_set *set, span_interrupt_fn fn, void *ctx)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	assert_int_equal(span_register(db, set, fn, ctx), SQLITE_OK);
	return db;
}

/* Rows per table of partition i: some partitions empty or missing a table. */
static int rows_for(int i, enum schema_table t)
{
	if (i == 7)
		return 0;
	if (i == 12 && t == SCHEMA_CONNECTIONS)
		return 0;
	return 20 + (int)below(t == SCHEMA_FLOWS ? 400 : 200);
}

static void world_partition(struct partition *merged, int i, int hour, unsigned seq)
{
	struct partition *p = NULL;
	int64_t start = T0 + hour * HOUR;

	assert_int_equal(partition_create(W.dir, start, HOUR, seq, start, &p), 0);
	for (int t = 0; t < SCHEMA_NTABLES; t++)
		add_rows(p, merged, (enum schema_table)t, rows_for(i, (enum schema_table)t), start);
	snprintf(W.paths[i], sizeof(W.paths[i]), "%s", partition_path(p));
	partition_close(p);
	/* the newest stay open, and one in the middle */
	W.sealed[i] = i < NPARTS - 2 && i != 20;
	if (W.sealed[i])
		assert_int_equal(partition_seal(W.paths[i], start + 2 * HOUR, NULL), 0);
}

static int world_setup(void **state)
{
	struct partition *merged = NULL;
	char mpath[PATH_MAX];
	int hour = 0;

	(void)state;
	W.seed = test_seed();
	rng = W.seed;
	fprintf(stderr, "test_query_span: seed %" PRIu64 " (FLOWSTORE_SEED=%" PRIu64
		" replays it)\n", W.seed, W.seed);
	schema_init();
	make_dir(W.dir, sizeof(W.dir), "test_query_span");
	make_dir(W.mdir, sizeof(W.mdir), "test_query_span_merged");
	if (partition_create(W.mdir, T0 - 24 * HOUR, 1000 * HOUR, 0, T0, &merged))
		return -1;
	for (int i = 0; i < NPARTS; hour++) {
		world_partition(merged, i++, hour, 0);
		if (hour % 9 == 4 && i < NPARTS) /* a rollover at the row cap */
			world_partition(merged, i++, hour, 1);
	}
	snprintf(mpath, sizeof(mpath), "%s", partition_path(merged));
	partition_close(merged);
	if (partition_seal(mpath, T0, NULL))
		return -1;
	if (sqlite3_open_v2(mpath, &W.ref, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		return -1;
	if (span_set_open(W.dir, &W.set))
		return -1;
	W.span = span_db(W.set, NULL, NULL);
	W.ts_min = query_int(W.ref, "SELECT min(ts) FROM flows");
	W.ts_max = query_int(W.ref, "SELECT max(ts) FROM flows");
	return 0;
}

static int world_teardown(void **state)
{
	(void)state;
	sqlite3_close(W.span);
	sqlite3_close(W.ref);
	span_set_free(W.set);
	remove_dir(W.dir);
	remove_dir(W.mdir);
	return 0;
}

/* ---- the property test ---------------------------------------------------------------- */

struct qtable {
	const char *name;
	const char *cols;      /* a column list for SELECT */
	const char *numcol;    /* to sum */
	const char *groupcol;
	const char *textcol;   /* proto-like */
	const char *textvals[3];
	int has_ts_end;
};

static const struct qtable qtables[] = {
	{ "flows", "ts, ts_end, proto, orig_addr, orig_port, resp_addr, resp_port, orig_bytes, pid,"
	  " comm, sock_cookie", "orig_bytes", "proto", "proto", { "tcp", "udp", "47" }, 1 },
	{ "connections", "ts, ts_end, direction, orig_addr, resp_addr, resp_port, pid, uid, comm,"
	  " bytes_sent, states, sock_cookie", "bytes_sent", "direction", "direction",
	  { "out", "in", "OUT" }, 1 },
	{ "tcp_states", "ts, direction, orig_addr, orig_port, old_state, new_state, pid,"
	  " sock_cookie", "orig_port", "new_state", "new_state", { "CLOSE", "SYN_SENT", "close" },
	  0 },
};

/* The ts of the k-th row of table (in time order), read from the merged file. */
static int64_t nth_ts(const char *table, int k)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "SELECT ts FROM %s ORDER BY ts LIMIT 1 OFFSET %d", table, k);
	return query_int(W.ref, sql);
}

/* A time window: none, bounded, half-open, empty, one instant; bound as
 * parameters ?1/?2 some of the time. */
static void add_window(sqlite3_str *s, const char *table, int64_t *params, int *nparams,
		       const char **sep)
{
	int64_t span = W.ts_max - W.ts_min + 4 * HOUR;
	int64_t a = W.ts_min - 2 * HOUR + below(span);
	int64_t b = a + (chance(70) ? below(3 * HOUR) : below(span));
	int kind = (int)below(8);

	switch (kind) {
	case 0:
		return;
	case 1:
		params[0] = a;
		params[1] = b;
		*nparams = 2;
		sqlite3_str_appendf(s, "%sts BETWEEN ?1 AND ?2", *sep);
		break;
	case 2:
		sqlite3_str_appendf(s, "%sts BETWEEN %lld AND %lld", *sep, (long long)a, (long long)b);
		break;
	case 3:
		sqlite3_str_appendf(s, "%sts >= %lld", *sep, (long long)a);
		break;
	case 4:
		sqlite3_str_appendf(s, "%sts < %lld", *sep, (long long)b);
		break;
	case 5: /* empty */
		sqlite3_str_appendf(s, "%sts > %lld AND ts <= %lld", *sep, (long long)b, (long long)a);
		break;
	case 6:
		sqlite3_str_appendf(s, "%sts > %lld AND ts <= %lld", *sep, (long long)a, (long long)b);
		break;
	default: /* one instant: an existing row's ts, as REAL sometimes */
		sqlite3_str_appendf(s, "%sts = %lld%s", *sep, (long long)nth_ts(table, (int)below(100)),
				    chance(30) ? ".0" : "");
		break;
	}
	*sep = " AND ";
}

static void add_filter(sqlite3_str *s, const struct qtable *t, const char **sep)
{
	const char *acol = chance(50) ? "orig_addr" : "resp_addr";

	sqlite3_str_appendall(s, *sep);
	*sep = " AND ";
	switch (below(17)) {
	case 0: sqlite3_str_appendf(s, "%s = '%s'", acol, PICK(addrs)); break;
	case 1: sqlite3_str_appendf(s, "%s IN ('%s', '%s')", acol, PICK(addrs), PICK(addrs)); break;
	case 2: sqlite3_str_appendf(s, "resp_port = %d", PICK(ports)); break;
	case 3: sqlite3_str_appendf(s, "orig_port > %d", 1000 + (int)below(60000)); break;
	case 4: sqlite3_str_appendf(s, "resp_port BETWEEN %d AND %d", PICK(ports), 500 + PICK(ports)); break;
	case 5: sqlite3_str_appendf(s, "resp_port != %d", PICK(ports)); break;
	case 6: sqlite3_str_appendall(s, chance(50) ? "pid IS NULL" : "pid IS NOT NULL"); break;
	case 7: sqlite3_str_appendf(s, "pid %s %d", chance(50) ? "=" : "IS", 100 + (int)below(10)); break;
	case 8: sqlite3_str_appendf(s, "comm LIKE '%s'", chance(50) ? "cu%" : "%S%"); break;
	case 9: sqlite3_str_appendf(s, "%s GLOB '%s'", acol, chance(50) ? "10.*" : "2001:*"); break;
	case 10: sqlite3_str_appendf(s, "%s = '%s'", t->textcol, PICK(t->textvals)); break;
	case 11: sqlite3_str_appendf(s, "%s = '%s' COLLATE NOCASE", t->textcol, PICK(t->textvals)); break;
	case 12: sqlite3_str_appendf(s, "orig_port = '%d'", PICK(ports)); break;
	case 13: sqlite3_str_appendf(s, "sock_cookie = %d", 1 + (int)below(150)); break;
	case 14: sqlite3_str_appendf(s, "(orig_addr = '%s' OR resp_addr = '%s')", PICK(addrs), PICK(addrs)); break;
	case 15:
		if (t->has_ts_end)
			sqlite3_str_appendf(s, "ts_end >= %lld", (long long)(W.ts_min + below(W.ts_max - W.ts_min)));
		else
			sqlite3_str_appendall(s, "comm IS NULL");
		break;
	default: sqlite3_str_appendf(s, "comm %s 'curl'", chance(50) ? "<" : ">="); break;
	}
}

/* One random query; *ordered tells whether its row order is defined. */
static char *random_query(int64_t *params, int *nparams, int *ordered)
{
	const struct qtable *t = &qtables[below(3)];
	sqlite3_str *s = sqlite3_str_new(NULL), *w = sqlite3_str_new(NULL);
	const char *sep = " WHERE ";
	int shape = (int)below(10), nf = (int)below(4);
	char *where, *sql;

	*nparams = 0;
	*ordered = 0;
	add_window(w, t->name, params, nparams, &sep);
	for (int i = 0; i < nf; i++)
		add_filter(w, t, &sep);
	where = sqlite3_str_finish(w);
	switch (shape) {
	case 0:
	case 1:
	case 2:
		sqlite3_str_appendf(s, "SELECT %s FROM %s%s", chance(30) ? "*" : t->cols, t->name,
				    where ? where : "");
		break;
	case 3:
	case 4:
		*ordered = 1;
		sqlite3_str_appendf(s, "SELECT %s FROM %s%s ORDER BY ts%s", t->cols, t->name,
				    where ? where : "", chance(50) ? " DESC" : "");
		if (chance(70))
			sqlite3_str_appendf(s, " LIMIT %d%s", (int)below(30),
					    chance(30) ? " OFFSET 7" : "");
		break;
	case 5:
		*ordered = 1;
		sqlite3_str_appendf(s, "SELECT count(*), sum(%s), min(ts), max(ts), count(pid)"
				    " FROM %s%s", t->numcol, t->name, where ? where : "");
		break;
	case 6:
		sqlite3_str_appendf(s, "SELECT %s, count(*), sum(%s) FROM %s%s GROUP BY 1",
				    t->groupcol, t->numcol, t->name, where ? where : "");
		break;
	case 7:
		sqlite3_str_appendf(s, "SELECT DISTINCT comm, pid FROM %s%s", t->name, where ? where : "");
		break;
	case 8:
		*ordered = 1;
		if (chance(50)) {
			sqlite3_str_appendf(s, "SELECT count(*) FROM %s", t->name);
			*nparams = 0;
		} else {
			sqlite3_str_appendf(s, "SELECT count(*) FROM %s%s", t->name, where ? where : "");
		}
		break;
	default: {
		int64_t a = W.ts_min + below(W.ts_max - W.ts_min);

		sqlite3_str_appendf(s, "SELECT f.ts, f.orig_addr, f.resp_port, c.ts, c.pid, c.comm"
				    " FROM flows f JOIN connections c ON c.sock_cookie = f.sock_cookie"
				    " WHERE f.ts BETWEEN %lld AND %lld", (long long)a,
				    (long long)(a + below(2 * HOUR)));
		if (chance(50))
			sqlite3_str_appendf(s, " AND f.resp_addr = '%s'", PICK(addrs));
		if (chance(30))
			sqlite3_str_appendf(s, " AND c.ts > %lld", (long long)(a - HOUR));
		*nparams = 0;
	}
	}
	sqlite3_free(where);
	sql = sqlite3_str_finish(s);
	assert_non_null(sql);
	return sql;
}

static void test_same_as_merged(void **state)
{
	(void)state;
	/* the test's own premise: ts unique per table */
	for (int i = 0; i < 3; i++) {
		char sql[128];

		snprintf(sql, sizeof(sql), "SELECT count(*) - count(DISTINCT ts) FROM %s", qtables[i].name);
		assert_int_equal(query_int(W.ref, sql), 0);
	}
	for (int q = 0; q < NQUERIES; q++) {
		int64_t params[2];
		int nparams, ordered;
		char *sql = random_query(params, &nparams, &ordered);

		assert_same(W.span, W.ref, sql, params, nparams, ordered, W.seed);
		sqlite3_free(sql);
	}
}

/* The same with every unordered scan of 2+ sealed partitions read ahead on
 * producer threads (span_ahead.h): rows, joins reading the same files on
 * both sides, errors. */
static void test_same_as_merged_ahead(void **state)
{
	struct span_counters c;

	(void)state;
	rng = W.seed ^ 12;
	span_tune_ahead(0);
	span_counters_reset(W.span);
	for (int q = 0; q < NQUERIES; q++) {
		int64_t params[2];
		int nparams, ordered;
		char *sql = random_query(params, &nparams, &ordered);

		assert_same(W.span, W.ref, sql, params, nparams, ordered, W.seed);
		sqlite3_free(sql);
	}
	assert_same(W.span, W.ref, "SELECT * FROM flows", NULL, 0, 0, W.seed);
	assert_same(W.span, W.ref, "SELECT a.ts, b.ts FROM flows a JOIN flows b"
		    " ON b.sock_cookie = a.sock_cookie", NULL, 0, 0, W.seed);
	span_counters_get(W.span, &c);
	span_tune_ahead(50000);
	assert_true(c.partitions_ahead > 0);
	assert_true(c.partitions_ahead <= c.partitions_opened);
}

/* A few fixed queries that exercise each path at least once, whatever the seed. */
static void test_fixed_queries(void **state)
{
	static const char *const sqls[] = {
		"SELECT * FROM flows",
		"SELECT * FROM connections",
		"SELECT * FROM tcp_states",
		"SELECT count(*) FROM flows",
		"SELECT count(*), sum(orig_bytes) FROM flows",
		"SELECT ts, orig_addr FROM flows WHERE orig_addr = '10.0.0.1' OR resp_addr = '10.0.0.1'",
		"SELECT ts FROM flows WHERE orig_addr IS NULL",
		"SELECT ts FROM flows WHERE proto = 'TCP' COLLATE NOCASE",
		"SELECT ts FROM flows WHERE orig_port = '443'",
		"SELECT ts FROM flows WHERE orig_addr = 10",
		"SELECT ts FROM flows WHERE ts < 'abc'",
		"SELECT ts FROM flows WHERE ts > 'abc'",
		"SELECT ts FROM flows WHERE ts > NULL",
		"SELECT ts FROM flows WHERE ts IS NOT NULL AND ts != 5",
		"SELECT ts FROM flows WHERE resp_port IN (53, 443)",
		"SELECT c.ts, s.ts FROM connections c JOIN tcp_states s ON s.sock_cookie = c.sock_cookie"
		" WHERE c.ts < (SELECT min(ts) FROM connections) + 7200000000000",
		"SELECT a.ts, b.ts FROM flows a JOIN flows b ON b.sock_cookie = a.sock_cookie"
		" WHERE a.resp_addr = '8.8.8.8' AND b.proto = 'udp'",
	};
	static const char *const ordered[] = {
		"SELECT ts, orig_addr FROM flows ORDER BY ts",
		"SELECT ts, orig_addr FROM flows ORDER BY ts DESC",
		"SELECT ts FROM flows ORDER BY ts DESC LIMIT 10",
		"SELECT ts FROM flows ORDER BY ts LIMIT 5 OFFSET 7",
		"SELECT ts, resp_port FROM flows WHERE resp_port = 53 ORDER BY ts DESC LIMIT 3",
		"SELECT ts FROM connections WHERE ts > 0 ORDER BY ts DESC LIMIT 1",
		"SELECT ts FROM tcp_states ORDER BY ts ASC LIMIT 1",
		"SELECT ts FROM flows WHERE ts > 1.5e18 ORDER BY ts LIMIT 3",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(sqls) / sizeof(sqls[0]); i++)
		assert_same(W.span, W.ref, sqls[i], NULL, 0, 0, W.seed);
	for (size_t i = 0; i < sizeof(ordered) / sizeof(ordered[0]); i++)
		assert_same(W.span, W.ref, ordered[i], NULL, 0, 1, W.seed);
}

/* Columns: names, declared types and NOT NULL exactly as in a partition. */
static void test_columns_match_ddl(void **state)
{
	sqlite3 *part = NULL;

	(void)state;
	assert_int_equal(sqlite3_open_v2(W.paths[0], &part, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	for (int i = 0; i < 3; i++) {
		char sql[128];

		snprintf(sql, sizeof(sql), "SELECT name, type, \"notnull\" FROM pragma_table_info('%s')",
			 qtables[i].name);
		assert_same(W.span, part, sql, NULL, 0, 1, W.seed);
	}
	sqlite3_close(part);
	/* the hidden column names the file */
	assert_int_equal(query_int(W.span, "SELECT count(*) FROM flows WHERE partition IS NULL"), 0);
	assert_int_equal(query_int(W.span, "SELECT count(DISTINCT partition) FROM tcp_states"),
			 NPARTS - 1 /* one is empty */);
}

/* ---- pruning ------------------------------------------------------------------------------ */

struct ranges {
	size_t n;
	int64_t min[NPARTS + 8], max[NPARTS + 8];
	uint64_t rows[NPARTS + 8];
};

/* Each partition's recorded flows range, read independently. */
static void read_ranges(const char dir[DIR_LEN], struct ranges *r)
{
	struct catalog cat;

	memset(r, 0, sizeof(*r));
	assert_int_equal(catalog_scan(dir, &cat), 0);
	for (size_t i = 0; i < cat.n && r->n < NPARTS + 8; i++) {
		struct partition_meta m;
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s/%s", dir, cat.entries[i].name);
		if (cat.entries[i].status == CATALOG_BROKEN || partition_read_meta(path, &m))
			continue;
		r->rows[r->n] = m.tables[SCHEMA_FLOWS].rows;
		r->min[r->n] = m.tables[SCHEMA_FLOWS].ts_min;
		r->max[r->n++] = m.tables[SCHEMA_FLOWS].ts_max;
	}
	catalog_free(&cat);
}

/* Run "SELECT ts, orig_addr FROM flows WHERE <cond>" (rows checked against the
 * merged file): it must open exactly the partitions whose recorded range
 * meets [lo, hi] and prune the rest. */
static void check_window(const struct ranges *r, const char *cond, int64_t lo, int64_t hi)
{
	struct span_counters c;
	uint64_t overlap = 0;
	char sql[256];

	for (size_t i = 0; i < r->n; i++)
		overlap += r->rows[i] && lo <= hi && r->min[i] <= hi && r->max[i] >= lo;
	snprintf(sql, sizeof(sql), "SELECT ts, orig_addr FROM flows WHERE %s", cond);
	span_counters_reset(W.span);
	assert_same(W.span, W.ref, sql, NULL, 0, 0, W.seed);
	span_counters_get(W.span, &c);
	if (c.partitions_opened != overlap || c.partitions_pruned != r->n - overlap)
		fail_msg("%s: opened %llu, pruned %llu; expected %llu and %llu", sql,
			 (unsigned long long)c.partitions_opened,
			 (unsigned long long)c.partitions_pruned, (unsigned long long)overlap,
			 (unsigned long long)(r->n - overlap));
	assert_int_equal(c.partitions_skipped, 0);
}

static void test_pruning(void **state)
{
	struct ranges r;
	char cond[160];

	(void)state;
	read_ranges(W.dir, &r);
	assert_int_equal(r.n, NPARTS);
	for (int q = 0; q < 60; q++) {
		int64_t a = W.ts_min - HOUR + below(W.ts_max - W.ts_min + 2 * HOUR);
		int64_t b = a + (q % 3 == 0 ? 0 : below(q % 3 == 1 ? MINUTE : 2 * HOUR));

		snprintf(cond, sizeof(cond), "ts BETWEEN %lld AND %lld", (long long)a, (long long)b);
		check_window(&r, cond, a, b);
	}
	/* bounds exactly on a partition's recorded edges */
	for (size_t k = 0; k < r.n; k++) {
		long long lo = r.min[k], hi = r.max[k];

		if (!r.rows[k])
			continue;
		snprintf(cond, sizeof(cond), "ts > %lld", hi - 1);
		check_window(&r, cond, hi, INT64_MAX);
		snprintf(cond, sizeof(cond), "ts > %lld", hi);
		check_window(&r, cond, hi + 1, INT64_MAX);
		snprintf(cond, sizeof(cond), "ts >= %lld AND ts < %lld", hi, hi + 1);
		check_window(&r, cond, hi, hi);
		snprintf(cond, sizeof(cond), "ts < %lld", lo + 1);
		check_window(&r, cond, INT64_MIN, lo);
		snprintf(cond, sizeof(cond), "ts < %lld", lo);
		check_window(&r, cond, INT64_MIN, lo - 1);
		snprintf(cond, sizeof(cond), "ts <= %lld AND ts = %lld", lo, lo);
		check_window(&r, cond, lo, lo);
		snprintf(cond, sizeof(cond), "ts BETWEEN %lld AND %lld", hi + 1, lo - 1);
		check_window(&r, cond, hi + 1, lo - 1);
	}
}

/* The hidden column names the file and prunes like ts; so does ts_end. */
static void test_prune_by_name_and_end(void **state)
{
	struct span_counters c;
	char sql[256];
	const char *name = strrchr(W.paths[3], '/') + 1;
	struct partition_meta m;
	uint64_t expect = 0;
	int64_t end;

	(void)state;
	snprintf(sql, sizeof(sql), "SELECT count(ts) FROM flows WHERE partition = '%s'", name);
	assert_int_equal(partition_read_meta(W.paths[3], &m), 0);
	span_counters_reset(W.span);
	assert_int_equal(query_int(W.span, sql), m.tables[SCHEMA_FLOWS].rows);
	span_counters_get(W.span, &c);
	assert_int_equal(c.partitions_opened, 1);
	assert_int_equal(c.partitions_pruned, NPARTS - 1);
	/* flows still going at the end of the newest rows: ts_end prunes */
	end = query_int(W.ref, "SELECT max(ts_end) FROM flows") - 1;
	for (int i = 0; i < NPARTS; i++) {
		assert_int_equal(partition_read_meta(W.paths[i], &m), 0);
		expect += m.tables[SCHEMA_FLOWS].rows && m.tables[SCHEMA_FLOWS].ts_end_max >= end;
	}
	snprintf(sql, sizeof(sql), "SELECT ts, ts_end FROM flows WHERE ts_end >= %lld", (long long)end);
	span_counters_reset(W.span);
	assert_same(W.span, W.ref, sql, NULL, 0, 0, W.seed);
	span_counters_get(W.span, &c);
	assert_int_equal(c.partitions_opened, expect);
	assert_true(expect < NPARTS / 2);
}

/* ORDER BY ts DESC LIMIT 1 opens the partitions whose ts_max reaches the
 * answer, and only those (ASC: whose ts_min does). */
static void check_merge_opens(const char *where, int desc, const struct ranges *r)
{
	struct span_counters c;
	char sql[256];
	int64_t answer;
	uint64_t expect = 0, cands = 0;

	snprintf(sql, sizeof(sql), "SELECT %s(ts) FROM flows%s", desc ? "max" : "min", where);
	answer = query_int(W.ref, sql);
	for (size_t i = 0; i < r->n; i++) {
		if (!r->rows[i])
			continue;
		cands++;
		expect += desc ? r->max[i] >= answer : r->min[i] <= answer;
	}
	snprintf(sql, sizeof(sql), "SELECT ts FROM flows%s ORDER BY ts%s LIMIT 1", where,
		 desc ? " DESC" : "");
	span_counters_reset(W.span);
	assert_int_equal(query_int(W.span, sql), answer);
	span_counters_get(W.span, &c);
	assert_int_equal(c.partitions_opened, expect);
	assert_true(expect < cands);
}

static void test_merge_opens_little(void **state)
{
	struct ranges r;

	(void)state;
	read_ranges(W.dir, &r);
	check_merge_opens("", 1, &r);
	check_merge_opens("", 0, &r);
	assert_int_equal(query_int(W.span, "SELECT count(*) FROM flows WHERE resp_addr = '8.8.8.8'")
			 > 0, 1);
	check_merge_opens(" WHERE resp_addr = '8.8.8.8'", 1, &r);
	check_merge_opens(" WHERE resp_addr = '8.8.8.8'", 0, &r);
}

/* count(*) with no column read comes from the metadata of sealed files. */
static void test_count_from_meta(void **state)
{
	struct span_counters c;
	int sealed = 0;

	(void)state;
	for (int i = 0; i < NPARTS; i++)
		sealed += W.sealed[i] && i != 7;
	span_counters_reset(W.span);
	assert_int_equal(query_int(W.span, "SELECT count(*) FROM flows"),
			 query_int(W.ref, "SELECT count(*) FROM flows"));
	span_counters_get(W.span, &c);
	assert_int_equal(c.partitions_counted, sealed);
	assert_int_equal(c.partitions_opened, NPARTS - 1 - sealed);
}

/* ---- the count fast path (count_fast.h) ------------------------------------------------- */

static void test_count_fast_recognises(void **state)
{
	static const struct { const char *sql, *want; } yes[] = {
		{ "SELECT count(*) FROM flows", "SELECT span_count('flows')" },
		{ "select COUNT( 1 ) from TCP_STATES ;", "SELECT span_count('tcp_states')" },
		{ "SELECT count(*) AS n FROM connections -- total\n",
		  "SELECT span_count('connections')" },
		{ "SELECT count(*) n FROM \"flows\" f WHERE f.ts >= ?1 AND ts < ?2",
		  "SELECT span_count('flows', '>=', (?1), '<', (?2))" },
		{ "SELECT count(*) FROM flows WHERE ts BETWEEN ago('1h') AND now_ns() - 5",
		  "SELECT span_count('flows', '>=', (ago('1h')), '<=', (now_ns() - 5))" },
		{ "SELECT count(*) FROM flows WHERE 5 < ts AND :hi >= \"ts\" AND ts == -(3 + 4) * 2",
		  "SELECT span_count('flows', '>', (5), '<=', (:hi), '=', (-(3 + 4) * 2))" },
		{ "SELECT count(*) FROM flows AS x WHERE x.ts > ts_ns('2026-11-27') /* c */ ;",
		  "SELECT span_count('flows', '>', (ts_ns('2026-11-27')))" },
		{ "SELECT count(*) FROM flows WHERE ts > 1.5e18 AND ts < '17' || '95' AND ts <= NULL",
		  "SELECT span_count('flows', '>', (1.5e18), '<', ('17' || '95'), '<=', (NULL))" },
	};
	static const char *const no[] = {
		"SELECT count(ts) FROM flows",
		"SELECT count(*), 1 FROM flows",
		"SELECT count(*) + 0 FROM flows",
		"SELECT count(DISTINCT ts) FROM flows",
		"SELECT count(*) FROM partitions",
		"SELECT count(*) FROM main.flows",
		"SELECT count(*) FROM flows, connections",
		"SELECT count(*) FROM flows WHERE ts > 5 OR ts < 3",
		"SELECT count(*) FROM flows WHERE ts_end > 5",
		"SELECT count(*) FROM flows WHERE ts != 5",
		"SELECT count(*) FROM flows WHERE ts <> 5",
		"SELECT count(*) FROM flows WHERE ts IS 5",
		"SELECT count(*) FROM flows WHERE ts IN (1, 2)",
		"SELECT count(*) FROM flows WHERE NOT ts > 5",
		"SELECT count(*) FROM flows WHERE ts > pid",
		"SELECT count(*) FROM flows WHERE ts > 5 = 1",
		"SELECT count(*) FROM flows WHERE ts + 0 > 5",
		"SELECT count(*) FROM flows WHERE ts > (SELECT 1)",
		"SELECT count(*) FROM flows WHERE ts > CAST('5' AS INTEGER)",
		"SELECT count(*) FROM flows WHERE ts > CASE WHEN 1 THEN 2 END",
		"SELECT count(*) FROM flows WHERE ts > 5 COLLATE NOCASE",
		"SELECT count(*) FROM flows WHERE y.ts > 5",
		"SELECT count(*) FROM flows f WHERE g.ts > 5",
		"SELECT count(*) FROM flows WHERE ts BETWEEN 1 AND 2 AND orig_addr = 'x'",
		"SELECT count(*) FROM flows GROUP BY proto",
		"SELECT count(*) FROM flows LIMIT 1",
		"SELECT count(*) FROM flows INDEXED BY x",
		"SELECT count(*) FROM flows; SELECT 1",
		"WITH flows AS (SELECT 1) SELECT count(*) FROM flows",
		"EXPLAIN SELECT count(*) FROM flows",
		"SELECT count(*) FROM flows WHERE ts > 'unterminated",
		"SELECT count(*) FROM flows WHERE ts > max(1, 2) OVER ()",
		"SELECT count(*) FROM flows WHERE ts > random()", /* a value per row */
		"SELECT count(*) FROM flows WHERE ts < length(RandomBlob(8))",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		char *got = count_fast_sql(yes[i].sql, strlen(yes[i].sql));

		if (!got || strcmp(got, yes[i].want) != 0)
			fail_msg("%s\n  got  %s\n  want %s", yes[i].sql, got ? got : "(not taken)",
				 yes[i].want);
		sqlite3_free(got);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		char *got = count_fast_sql(no[i], strlen(no[i]));

		if (got)
			fail_msg("%s\n  taken as %s", no[i], got);
	}
}

struct csb {
	struct sandbox *sb;
	sqlite3 *db;
};

static void csb_open(struct csb *c, struct span_set *set)
{
	char err[256];

	assert_int_equal(sandbox_open(NULL, &c->sb, err, sizeof(err)), 0);
	c->db = sandbox_db(c->sb);
	assert_int_equal(span_register(c->db, set, sandbox_interrupted, c->sb), SQLITE_OK);
}

/* One statement's answer: its column name, rows as text, or the error. */
struct answer {
	char name[64];
	struct rows rows;
	int failed;
	char err[256];
	int fast; /* answered by span_count */
};

static void answer_bind(sqlite3_stmt *st, const int64_t *params, int nparams)
{
	for (int i = 1; i <= sqlite3_bind_parameter_count(st); i++) {
		const char *name = sqlite3_bind_parameter_name(st, i);

		if (name && strcmp(name, ":lo") == 0)
			assert_int_equal(sqlite3_bind_int64(st, i, params[0]), SQLITE_OK);
		else if (name && strcmp(name, ":hi") == 0)
			assert_int_equal(sqlite3_bind_int64(st, i, params[1]), SQLITE_OK);
		else if (i <= nparams)
			assert_int_equal(sqlite3_bind_int64(st, i, params[i - 1]), SQLITE_OK);
	}
}

static void answer_step(sqlite3_stmt *st, struct answer *a, const char *errmsg_db_msg)
{
	int rc;

	snprintf(a->name, sizeof(a->name), "%s", sqlite3_column_name(st, 0));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		rows_add(&a->rows, row_text(st));
	if (rc != SQLITE_DONE) {
		a->failed = 1;
		snprintf(a->err, sizeof(a->err), "%s", errmsg_db_msg ? errmsg_db_msg : "?");
	}
}

static void answer_plain(sqlite3 *db, const char *sql, const int64_t *params, int nparams,
			 struct answer *a)
{
	sqlite3_stmt *st = NULL;

	memset(a, 0, sizeof(*a));
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		a->failed = 1;
		snprintf(a->err, sizeof(a->err), "%s", sqlite3_errmsg(db));
		return;
	}
	answer_bind(st, params, nparams);
	answer_step(st, a, NULL);
	if (a->failed)
		snprintf(a->err, sizeof(a->err), "%s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
}

static void answer_sandbox(struct csb *c, const char *sql, const int64_t *params, int nparams,
			   struct answer *a)
{
	sqlite3_stmt *st = NULL;
	char err[256];
	enum qerr e;

	memset(a, 0, sizeof(*a));
	e = sandbox_prepare(c->sb, sql, strlen(sql), 0, &st, err, sizeof(err));
	if (e != QERR_NONE) {
		a->failed = 1;
		snprintf(a->err, sizeof(a->err), "%s", err);
		return;
	}
	a->fast = strncmp(sqlite3_sql(st), "SELECT span_count(", 18) == 0;
	answer_bind(st, params, nparams);
	answer_step(st, a, NULL);
	if (a->failed) {
		sandbox_step_error(c->sb, SQLITE_ERROR, err, sizeof(err));
		snprintf(a->err, sizeof(a->err), "%s", err);
	}
	sqlite3_finalize(st);
}

static void answer_free(struct answer *a)
{
	rows_free(&a->rows);
}

static void assert_same_answer(const char *sql, const int64_t *params, const struct answer *a,
			       const struct answer *b, const char *what)
{
	int same = a->failed == b->failed && strcmp(a->name, b->name) == 0 &&
		   a->rows.n == b->rows.n && (a->failed ? strcmp(a->err, b->err) == 0 : 1);

	for (size_t i = 0; same && i < a->rows.n; i++)
		same = strcmp(a->rows.v[i], b->rows.v[i]) == 0;
	if (!same)
		fail_msg("seed %" PRIu64 ": %s [%lld, %lld]\n  fast path: \"%s\" %s %s\n  %s: \"%s\" %s %s",
			 W.seed, sql, (long long)params[0], (long long)params[1], a->name,
			 a->failed ? a->err : a->rows.n ? a->rows.v[0] : "(no row)",
			 a->fast ? "(span_count)" : "(not rewritten)", what, b->name,
			 b->failed ? b->err : b->rows.n ? b->rows.v[0] : "(no row)", "");
}

/* A bound on ts in one of the forms the fast path takes; sometimes one it
 * does not (*plain = 1 then). */
static void count_bound(sqlite3_str *s, int64_t v, int lower, int *plain)
{
	static const char *const lo_ops[] = { ">", ">=" }, *const hi_ops[] = { "<", "<=" };
	const char *op = lower ? PICK(lo_ops) : PICK(hi_ops);
	const char *rev = strcmp(op, ">") == 0 ? "<" : strcmp(op, ">=") == 0 ? "<=" :
			  strcmp(op, "<") == 0 ? ">" : ">=";
	char val[96];

	switch (below(9)) {
	case 0: snprintf(val, sizeof(val), "%lld", (long long)v); break;
	case 1: snprintf(val, sizeof(val), "%s", lower ? ":lo" : ":hi"); break;
	case 2: snprintf(val, sizeof(val), "%lld.5", (long long)v); break;
	case 3: snprintf(val, sizeof(val), "'%lld'", (long long)v); break;
	case 4: snprintf(val, sizeof(val), "(%lld - 3600000000000) + dur('1h')", (long long)v); break;
	case 5: snprintf(val, sizeof(val), "ts_ns(ts_iso(%lld))", (long long)v); break;
	case 6: snprintf(val, sizeof(val), "%s", chance(50) ? "NULL" : "'abc'"); break;
	case 7: snprintf(val, sizeof(val), "abs(%lld) * 1", (long long)v); break;
	default: /* not ours: the original must run, with the same answer */
		snprintf(val, sizeof(val), "%lld", (long long)v);
		op = chance(50) ? "IS" : "!=";
		*plain = 1;
	}
	if (chance(30) && strcmp(op, "IS") && strcmp(op, "!="))
		sqlite3_str_appendf(s, "%s %s ts", val, rev);
	else
		sqlite3_str_appendf(s, "ts %s %s", op, val);
}

static char *random_count(int64_t *params, int *plain)
{
	static const char *const heads[] = { "count(*)", "COUNT(1)", "count( * ) AS n",
					     "count(*) \"rows in it\"" };
	const struct qtable *t = &qtables[below(3)];
	sqlite3_str *s = sqlite3_str_new(NULL);
	int64_t span = W.ts_max - W.ts_min + 4 * HOUR;
	int64_t a = W.ts_min - 2 * HOUR + below(span);
	int64_t b = a + (chance(60) ? below(3 * HOUR) : below(span));
	int kind = (int)below(7);

	*plain = 0;
	params[0] = a;
	params[1] = b;
	sqlite3_str_appendf(s, "SELECT %s FROM %s", PICK(heads), t->name);
	switch (kind) {
	case 0: break;
	case 1:
		sqlite3_str_appendall(s, " WHERE ");
		count_bound(s, a, 1, plain);
		break;
	case 2:
		sqlite3_str_appendall(s, " WHERE ");
		count_bound(s, b, 0, plain);
		break;
	case 3:
		sqlite3_str_appendf(s, " WHERE ts BETWEEN %s AND %s", chance(50) ? ":lo" : "?1",
				    chance(50) ? ":hi" : "?2");
		break;
	case 4: /* one instant: an existing row's */
		sqlite3_str_appendf(s, " WHERE ts = %lld", (long long)nth_ts(t->name, (int)below(100)));
		break;
	default:
		sqlite3_str_appendall(s, " WHERE ");
		count_bound(s, a, 1, plain);
		sqlite3_str_appendall(s, " AND ");
		count_bound(s, b, 0, plain);
	}
	if (chance(20))
		sqlite3_str_appendall(s, ";");
	return sqlite3_str_finish(s);
}

/* The fast path answers exactly what SQLite answers: on the merged file,
 * and through the span table itself. */
static void test_count_fast_same(void **state)
{
	struct csb c;
	int fast = 0, plain_n = 0;

	(void)state;
	rng = W.seed ^ 11;
	csb_open(&c, W.set);
	assert_int_equal(qfunc_register(W.ref), SQLITE_OK);
	assert_int_equal(qfunc_register(W.span), SQLITE_OK);
	for (int q = 0; q < NQUERIES; q++) {
		int64_t params[2];
		int plain;
		char *sql = random_count(params, &plain);
		struct answer a, ref, slow;

		answer_sandbox(&c, sql, params, 2, &a);
		answer_plain(W.ref, sql, params, 2, &ref);
		answer_plain(W.span, sql, params, 2, &slow);
		assert_same_answer(sql, params, &a, &ref, "merged file");
		assert_same_answer(sql, params, &a, &slow, "span table");
		if (a.fast != !plain)
			fail_msg("%s: %s", sql, a.fast ? "rewritten" : "not rewritten");
		fast += a.fast;
		plain_n += plain;
		answer_free(&a);
		answer_free(&ref);
		answer_free(&slow);
		sqlite3_free(sql);
	}
	assert_true(fast > NQUERIES / 2);
	assert_true(plain_n > 0);
	sandbox_close(c.sb);
}

/* What it costs: sealed partitions inside the range are not opened; the
 * open ones and the boundaries are. Errors and interrupts as SQLite's. */
static void test_count_fast_meta(void **state)
{
	struct csb c;
	struct span_counters k;
	struct answer a, slow;
	int64_t params[2] = { 0, 0 };
	sqlite3_stmt *st = NULL;
	struct ranges r;
	uint64_t overlap = 0;
	char err[256];
	int sealed = 0;

	(void)state;
	for (int i = 0; i < NPARTS; i++)
		sealed += W.sealed[i] && i != 7;
	csb_open(&c, W.set);
	span_counters_reset(c.db);
	answer_sandbox(&c, "SELECT count(*) FROM flows", params, 0, &a);
	assert_true(a.fast);
	assert_int_equal(a.rows.n, 1);
	assert_string_equal(a.name, "count(*)");
	span_counters_get(c.db, &k);
	assert_int_equal(k.partitions_counted, sealed);
	assert_int_equal(k.partitions_opened, NPARTS - 1 - sealed);
	assert_int_equal(k.rows_read, 0);
	answer_free(&a);

	/* a window inside one sealed partition's period: one file opened */
	span_counters_reset(c.db);
	params[0] = T0 + 3 * HOUR + 10 * MINUTE;
	params[1] = params[0] + 20 * MINUTE;
	answer_sandbox(&c, "SELECT count(*) FROM flows WHERE ts >= ?1 AND ts < ?2", params, 2, &a);
	answer_plain(W.ref, "SELECT count(*) FROM flows WHERE ts >= ?1 AND ts < ?2", params, 2, &slow);
	assert_true(a.fast);
	assert_same_answer("window", params, &a, &slow, "merged file");
	span_counters_get(c.db, &k);
	read_ranges(W.dir, &r);
	for (size_t i = 0; i < r.n; i++)
		overlap += r.rows[i] && r.min[i] <= params[1] - 1 && r.max[i] >= params[0];
	assert_true(k.partitions_opened >= 1);
	assert_int_equal(k.partitions_opened + k.partitions_counted, overlap);
	assert_int_equal(k.partitions_pruned, r.n - overlap);
	assert_true(k.partitions_pruned >= NPARTS - 4);
	answer_free(&a);
	answer_free(&slow);

	/* a bad argument to a helper: the helper's own error */
	answer_sandbox(&c, "SELECT count(*) FROM flows WHERE ts > ago('soon')", params, 0, &a);
	answer_plain(W.span, "SELECT count(*) FROM flows WHERE ts > ago('soon')", params, 0, &slow);
	assert_true(a.fast);
	assert_true(a.failed && slow.failed);
	assert_string_equal(a.err, slow.err);
	answer_free(&a);
	answer_free(&slow);

	/* bad SQL never reaches the rewrite: SQLite's message */
	assert_int_equal(sandbox_prepare(c.sb, "SELECT count(*) FROM flows WHERE", 32, 0, &st, err,
					 sizeof(err)), QERR_SQL);
	assert_non_null(strstr(err, "incomplete input"));
	assert_int_equal(sandbox_prepare(c.sb, "SELECT count(*) FROM flow", 25, 0, &st, err,
					 sizeof(err)), QERR_SQL);
	assert_string_equal(err, "no such table: flow");

	/* cancelled between prepare and step: stopped like any query */
	assert_int_equal(sandbox_prepare(c.sb, "SELECT count(*) FROM flows WHERE ts > 0", 39, 0, &st,
					 err, sizeof(err)), QERR_NONE);
	assert_non_null(strstr(sqlite3_sql(st), "span_count("));
	sandbox_cancel(c.sb);
	assert_int_not_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sandbox_step_error(c.sb, SQLITE_INTERRUPT, err, sizeof(err)), QERR_CANCELLED);
	sqlite3_finalize(st);

	/* span_count's own arguments, called directly */
	answer_sandbox(&c, "SELECT span_count('nope')", params, 0, &a);
	assert_true(a.failed);
	assert_non_null(strstr(a.err, "no such table: nope"));
	answer_free(&a);
	answer_sandbox(&c, "SELECT span_count('flows', '!=', 1)", params, 0, &a);
	assert_true(a.failed);
	assert_non_null(strstr(a.err, "operator 1 is '!='"));
	answer_free(&a);
	answer_sandbox(&c, "SELECT span_count('flows', '>')", params, 0, &a);
	assert_true(a.failed);
	answer_free(&a);
	sandbox_close(c.sb);
}

/* A join reuses the connection's handles: it opens each file once. */
static void test_join_plan(void **state)
{
	struct span_counters c;
	struct rows plan = { 0 };
	sqlite3 *db = span_db(W.set, NULL, NULL);

	(void)state;
	assert_int_equal(run(db, "EXPLAIN QUERY PLAN SELECT f.ts, c.pid FROM flows f JOIN connections c"
			     " ON c.sock_cookie = f.sock_cookie WHERE f.resp_addr = '8.8.8.8'",
			     NULL, 0, &plan), SQLITE_OK);
	assert_true(plan.n >= 2);
	/* the indexed filter drives: flows outside, connections probed */
	assert_non_null(strstr(plan.v[0], "SCAN f"));
	assert_non_null(strstr(plan.v[1], "SCAN c"));
	rows_free(&plan);
	assert_same(db, W.ref, "SELECT f.ts, c.pid FROM flows f JOIN connections c"
		    " ON c.sock_cookie = f.sock_cookie WHERE f.resp_addr = '8.8.8.8'", NULL, 0, 0, W.seed);
	span_counters_get(db, &c);
	assert_true(c.partitions_opened > (uint64_t)NPARTS);
	assert_true(c.files_opened <= (uint64_t)NPARTS + 8);
	sqlite3_close(db);
}

/* ---- the partitions table ----------------------------------------------------------------- */

static void test_partitions_table(void **state)
{
	struct rows rows = { 0 };

	(void)state;
	assert_int_equal(run(W.span, "SELECT name, kind, status, period_start, period_end, seq, created,"
			     " sealed_at, ts_min, ts_max, flows, connections, tcp_states, bytes, error"
			     " FROM partitions ORDER BY name", NULL, 0, &rows), SQLITE_OK);
	assert_int_equal(rows.n, NPARTS);
	for (int i = 0; i < NPARTS; i++) {
		struct partition_meta m;
		struct stat st;
		char want[512], *name = strrchr(W.paths[i], '/') + 1;
		int64_t min = INT64_MAX, max = INT64_MIN;

		assert_int_equal(partition_read_meta(W.paths[i], &m), 0);
		for (int t = 0; t < SCHEMA_NTABLES; t++) {
			if (!m.tables[t].rows)
				continue;
			min = m.tables[t].ts_min < min ? m.tables[t].ts_min : min;
			max = m.tables[t].ts_max > max ? m.tables[t].ts_max : max;
		}
		assert_int_equal(stat(W.paths[i], &st), 0);
		snprintf(want, sizeof(want), "t%s|traw|t%s|i%lld|i%lld|i%u|i%lld|", name,
			 m.sealed ? "sealed" : "open", (long long)m.period_start_ns,
			 (long long)m.period_end_ns, m.seq, (long long)m.created_ns);
		if (m.sealed)
			snprintf(want + strlen(want), sizeof(want) - strlen(want), "i%lld|",
				 (long long)m.sealed_ns);
		else
			strcat(want, "N|");
		if (min <= max)
			snprintf(want + strlen(want), sizeof(want) - strlen(want), "i%lld|i%lld|",
				 (long long)min, (long long)max);
		else
			strcat(want, "N|N|");
		snprintf(want + strlen(want), sizeof(want) - strlen(want), "i%llu|i%llu|i%llu|",
			 (unsigned long long)m.tables[SCHEMA_FLOWS].rows,
			 (unsigned long long)m.tables[SCHEMA_CONNECTIONS].rows,
			 (unsigned long long)m.tables[SCHEMA_TCP_STATES].rows);
		assert_int_equal(strncmp(rows.v[i], want, strlen(want)), 0);
		assert_int_equal(W.sealed[i], m.sealed);
		if (m.sealed) /* a sealed file is its size; an open one has a WAL too */
			assert_non_null(strstr(rows.v[i] + strlen(want), "|N|"));
		{
			long long bytes = 0;

			assert_int_equal(sscanf(rows.v[i] + strlen(want), "i%lld|", &bytes), 1);
			assert_true(bytes >= (long long)st.st_size);
			if (m.sealed)
				assert_int_equal(bytes, (long long)st.st_size);
		}
	}
	rows_free(&rows);
}

/* ---- a changing dir --------------------------------------------------------------------- */

struct small {
	char dir[DIR_LEN];
	struct span_set *set;
	sqlite3 *db;
};

static int small_setup(void **state)
{
	struct small *s = calloc(1, sizeof(*s));

	if (!s)
		return -1;
	make_dir(s->dir, sizeof(s->dir), "test_query_span_small");
	if (span_set_open(s->dir, &s->set))
		return -1;
	*state = s;
	return 0;
}

static int small_teardown(void **state)
{
	struct small *s = *state;

	sqlite3_close(s->db);
	span_set_free(s->set);
	remove_dir(s->dir);
	free(s);
	return 0;
}

/* A partition of n flows at hour h; sealed or left open (returned then). */
static struct partition *small_partition(struct small *s, int h, int n, int seal, char *path)
{
	struct partition *p = NULL;
	int64_t start = T0 + h * HOUR;

	assert_int_equal(partition_create(s->dir, start, HOUR, 0, start, &p), 0);
	add_rows(p, NULL, SCHEMA_FLOWS, n, start);
	if (path)
		snprintf(path, PATH_MAX, "%s", partition_path(p));
	if (!seal)
		return p;
	{
		char sp[PATH_MAX];

		snprintf(sp, sizeof(sp), "%s", partition_path(p));
		partition_close(p);
		assert_int_equal(partition_seal(sp, start + HOUR, NULL), 0);
	}
	return NULL;
}

/* Descriptors of this process open on deleted files of dir. */
static int deleted_fds(const char *dir)
{
	char fd[64], target[PATH_MAX];
	int n = 0;

	for (int i = 0; i < 4096; i++) {
		ssize_t len;

		snprintf(fd, sizeof(fd), "/proc/self/fd/%d", i);
		len = readlink(fd, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = 0;
		n += strncmp(target, dir, strlen(dir)) == 0 && strstr(target, "(deleted)") != NULL;
	}
	return n;
}

static void test_files_come_and_go(void **state)
{
	struct small *s = *state;
	char gone[PATH_MAX], garbage[PATH_MAX];
	struct span_counters c;
	FILE *fp;

	rng = W.seed ^ 1;
	s->db = span_db(s->set, NULL, NULL);
	assert_int_equal(query_int(s->db, "SELECT count(*) FROM flows"), 0);
	small_partition(s, 0, 10, 1, NULL);
	assert_int_equal(query_int(s->db, "SELECT count(ts) FROM flows"), 10);
	small_partition(s, 1, 7, 1, gone);
	assert_int_equal(query_int(s->db, "SELECT count(ts) FROM flows"), 17);
	assert_int_equal(query_int(s->db, "SELECT count(*) FROM partitions"), 2);
	/* retention deletes a whole file: its rows go with it */
	assert_int_equal(unlink(gone), 0);
	assert_int_equal(query_int(s->db, "SELECT count(ts) FROM flows"), 10);
	assert_int_equal(deleted_fds(s->dir), 0); /* its cached handle was closed */
	assert_int_equal(query_int(s->db, "SELECT count(*) FROM flows"), 10);
	assert_int_equal(query_int(s->db, "SELECT count(*) FROM partitions"), 1);
	/* garbage with our name: listed as broken, skipped by queries */
	snprintf(garbage, sizeof(garbage), "%s/raw-20261127T230000Z-0000.db", s->dir);
	fp = fopen(garbage, "wb");
	assert_non_null(fp);
	fputs("this is not a database, it only has the name of one\n", fp);
	fclose(fp);
	span_counters_reset(s->db);
	assert_int_equal(query_int(s->db, "SELECT count(ts) FROM flows"), 10);
	span_counters_get(s->db, &c);
	assert_int_equal(c.partitions_skipped, 1);
	assert_int_equal(query_int(s->db, "SELECT count(*) FROM partitions WHERE status = 'broken'"
				   " AND error IS NOT NULL AND flows IS NULL"), 1);
}

/* More sealed files than the handle cache holds: still every row, files
 * reopened as the cache turns over, nothing leaked (ASan). */
static void test_handle_cache_bound(void **state)
{
	struct small *s = *state;
	struct span_counters c;
	struct rlimit rl, saved;
	int64_t n;

	rng = W.seed ^ 5;
	for (int h = 0; h < 80; h++)
		small_partition(s, h, 1 + (int)below(3), 1, NULL);
	/* the cache's bound follows RLIMIT_NOFILE: 1024 descriptors, 64 handles */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
	rl = saved;
	rl.rlim_cur = 1024;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	s->db = span_db(s->set, NULL, NULL);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
	n = query_int(s->db, "SELECT count(ts) FROM flows");
	assert_int_equal(query_int(s->db, "SELECT sum(flows) FROM partitions"), n);
	span_counters_reset(s->db);
	assert_int_equal(query_int(s->db, "SELECT count(ts) FROM flows"), n);
	span_counters_get(s->db, &c);
	assert_int_equal(c.partitions_opened, 80);
	assert_true(c.files_opened >= 80 - 64 && c.files_opened <= 80);
	/* a self-join: two cursors share handles and statements */
	assert_int_equal(query_int(s->db, "SELECT count(*) FROM flows a JOIN flows b ON b.ts = a.ts"),
			 n);
	/* ten cursors on one handle at once, each with its own statement */
	assert_int_equal(query_int(s->db, "SELECT count(*) + 0 * (max(a2.proto) || max(a3.orig_addr)"
				   " || max(a4.resp_addr) || max(a5.orig_port) || max(a6.resp_port)"
				   " || max(a7.comm) || max(a8.pid) || max(a9.history) || max(a10.ifname))"
				   " FROM flows a1 JOIN flows a2 ON a2.ts = a1.ts JOIN flows a3 ON a3.ts = a1.ts"
				   " JOIN flows a4 ON a4.ts = a1.ts JOIN flows a5 ON a5.ts = a1.ts"
				   " JOIN flows a6 ON a6.ts = a1.ts JOIN flows a7 ON a7.ts = a1.ts"
				   " JOIN flows a8 ON a8.ts = a1.ts JOIN flows a9 ON a9.ts = a1.ts"
				   " JOIN flows a10 ON a10.ts = a1.ts"), n);
	assert_int_equal(query_int(s->db, "SELECT count(*) FROM flows a JOIN flows b"
				   " ON b.sock_cookie = a.sock_cookie"),
			 query_int(s->db, "SELECT sum(k * k) FROM (SELECT count(*) k FROM flows"
				   " WHERE sock_cookie IS NOT NULL GROUP BY sock_cookie)"));
}

/* Comparisons whose right side carries an affinity: the span tables must
 * agree with SQLite on a plain copy of the same rows. */
static void test_affinity_oracle(void **state)
{
	/* CROSS JOIN: b outside, so the value reaches a's constraint */
	static const char *const joins[] = {
		"SELECT count(*) FROM %s b CROSS JOIN %s a WHERE a.comm = b.pid",
		"SELECT count(*) FROM %s b CROSS JOIN %s a WHERE a.orig_port = b.comm",
		"SELECT count(*) FROM %s b CROSS JOIN %s a WHERE a.comm > b.pid",
		"SELECT count(*) FROM %s b CROSS JOIN %s a WHERE a.comm = b.pid COLLATE NOCASE",
		"SELECT count(*) FROM %s b CROSS JOIN %s a WHERE a.comm IS b.orig_port",
	};
	struct small *s = *state;
	struct partition *p = NULL;
	struct schema_row r;

	rng = W.seed ^ 6;
	assert_int_equal(partition_create(s->dir, T0, HOUR, 0, T0, &p), 0);
	assert_int_equal(partition_begin(p), 0);
	for (int i = 0; i < 6; i++) {
		random_row(&r, SCHEMA_FLOWS, T0);
		r.flow.pid = 100;
		r.flow.orig_port = 443;
		snprintf(r.flow.comm, sizeof(r.flow.comm), "%s",
			 (const char *[]){ "100.0", "100", " 100", "1e2", "443", "x" }[i]);
		assert_int_equal(partition_add(p, &r), 0);
	}
	assert_int_equal(partition_commit(p), 0);
	partition_close(p);
	s->db = span_db(s->set, NULL, NULL);
	assert_int_equal(sqlite3_exec(s->db, "CREATE TEMP TABLE copy AS SELECT * FROM flows", NULL,
				      NULL, NULL), SQLITE_OK);
	for (size_t i = 0; i < sizeof(joins) / sizeof(joins[0]); i++) {
		char a[256], b[256];

		snprintf(a, sizeof(a), joins[i], "flows", "flows");
		snprintf(b, sizeof(b), joins[i], "copy", "copy");
		if (query_int(s->db, a) != query_int(s->db, b))
			fail_msg("%s: %lld, a plain table: %lld", a, (long long)query_int(s->db, a),
				 (long long)query_int(s->db, b));
	}
}

/* ORDER BY over an open partition while it grows: the merge opens it late,
 * after a commit of rows newer than everything; they must not break the
 * order (they belong to the next statement). */
static void test_merge_clamps_open(void **state)
{
	struct small *s = *state;
	struct partition *p;
	sqlite3_stmt *st = NULL;
	int64_t prev = INT64_MAX;
	int n = 0;

	rng = W.seed ^ 7;
	small_partition(s, 5, 20, 1, NULL);           /* newer, sealed */
	p = small_partition(s, 1, 20, 0, NULL);       /* older, open */
	s->db = span_db(s->set, NULL, NULL);
	assert_int_equal(sqlite3_prepare_v2(s->db, "SELECT ts FROM flows WHERE ts > 0 ORDER BY ts DESC",
					    -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	add_flows_at(p, T0 + 9 * HOUR, 2);
	do {
		int64_t ts = sqlite3_column_int64(st, 0);

		assert_true(ts < prev);
		prev = ts;
		n++;
	} while (sqlite3_step(st) == SQLITE_ROW);
	sqlite3_finalize(st);
	assert_int_equal(n, 40);
	assert_int_equal(query_int(s->db, "SELECT count(*) FROM flows"), 42);
	partition_close(p);
}

/* A REAL bound next to integers it cannot represent: the time range pruning
 * widens it, but the rows must still be exactly those SQLite would pick. */
static void test_real_bounds(void **state)
{
	struct small *s = *state;
	struct partition *p = NULL;
	char path[PATH_MAX];
	const int64_t two60 = INT64_C(1) << 60; /* a double, exactly */

	rng = W.seed ^ 8;
	assert_int_equal(partition_create(s->dir, T0, HOUR, 0, T0, &p), 0);
	add_flows_at(p, two60 - 1, 3); /* 2^60 - 1, 2^60, 2^60 + 1 */
	snprintf(path, sizeof(path), "%s", partition_path(p));
	partition_close(p);
	assert_int_equal(partition_seal(path, T0, NULL), 0);
	s->db = span_db(s->set, NULL, NULL);
	assert_int_equal(query_int(s->db, "SELECT count(*) FROM flows WHERE ts >= 1152921504606846976.0"), 2);
	assert_int_equal(query_int(s->db, "SELECT count(*) FROM flows WHERE ts > 1152921504606846976.0"), 1);
	assert_int_equal(query_int(s->db, "SELECT count(*) FROM flows WHERE ts <= 1152921504606846976.0"), 2);
	assert_int_equal(query_int(s->db, "SELECT count(*) FROM flows WHERE ts < 1152921504606846976.0"), 1);
	assert_int_equal(query_int(s->db, "SELECT count(*) FROM flows WHERE ts = 1152921504606846976.0"), 1);
	/* as doubles both literals are 2^60 */
	assert_int_equal(query_int(s->db, "SELECT count(*) FROM flows WHERE ts BETWEEN 1152921504606846975.5"
				   " AND 1152921504606846976.5"), 1);
}

static void test_open_partition_grows(void **state)
{
	struct small *s = *state;
	struct partition *p;
	struct rows r = { 0 };
	sqlite3_stmt *st = NULL;

	rng = W.seed ^ 2;
	s->db = span_db(s->set, NULL, NULL);
	small_partition(s, 0, 5, 1, NULL);
	p = small_partition(s, 1, 5, 0, NULL);
	assert_int_equal(query_int(s->db, "SELECT count(*) FROM flows"), 10);
	/* a prepared statement, run again after a commit, sees the new rows */
	assert_int_equal(sqlite3_prepare_v2(s->db, "SELECT count(ts), max(ts) FROM flows", -1, &st,
					    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 10);
	sqlite3_reset(st);
	add_flows_at(p, T0 + 9 * HOUR, 3); /* later than anything so far */
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 13);
	assert_int_equal(sqlite3_column_int64(st, 1), T0 + 9 * HOUR + 2);
	sqlite3_finalize(st);
	assert_int_equal(query_int(s->db, "SELECT count(*) FROM flows"), 13);
	assert_int_equal(run(s->db, "SELECT ts FROM flows ORDER BY ts DESC LIMIT 3", NULL, 0, &r),
			 SQLITE_OK);
	assert_int_equal(r.n, 3);
	assert_string_equal(r.v[2], "i1795842000000000000|");
	rows_free(&r);
	assert_int_equal(query_int(s->db, "SELECT flows FROM partitions WHERE status = 'open'"), 8);
	partition_close(p);
}

static int interrupt_calls;

static int interrupt_after(void *ctx)
{
	return ++interrupt_calls > *(int *)ctx;
}

static void test_interrupt(void **state)
{
	struct small *s = *state;
	int after = 200;
	struct rows r = { 0 };
	const char *sql = "SELECT count(*) FROM flows a JOIN flows b ON b.comm = a.comm";

	rng = W.seed ^ 3;
	for (int h = 0; h < 4; h++)
		partition_close(small_partition(s, h, 300, h < 3, NULL));
	s->db = span_db(s->set, interrupt_after, &after);
	interrupt_calls = 0;
	assert_int_equal(run(s->db, sql, NULL, 0, &r), SQLITE_INTERRUPT);
	assert_true(interrupt_calls > after);
	/* the connection stays usable */
	after = INT_MAX;
	assert_int_equal(run(s->db, "SELECT ts FROM flows LIMIT 1", NULL, 0, &r), SQLITE_OK);
	rows_free(&r);
}

/* A read-ahead scan stopped early: by its cursor closing after one row, by
 * the interrupt between batches; the connection stays usable and no
 * producer is left running (ASan/valgrind see the joins). */
static void test_ahead_stops(void **state)
{
	struct small *s = *state;
	struct span_counters c;
	struct rows r = { 0 };
	sqlite3_stmt *st = NULL;
	int after = INT_MAX;

	rng = W.seed ^ 13;
	for (int h = 0; h < 4; h++)
		partition_close(small_partition(s, h, 2000, 1, NULL));
	span_tune_ahead(0);
	s->db = span_db(s->set, interrupt_after, &after);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(sqlite3_prepare_v2(s->db, "SELECT * FROM flows", -1, &st, NULL),
				 SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		if (i % 2)
			assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		sqlite3_finalize(st);
	}
	assert_int_equal(query_int(s->db, "SELECT count(*) FROM (SELECT ts FROM flows)"), 8000);
	interrupt_calls = 0;
	after = 0;
	assert_int_equal(run(s->db, "SELECT count(*), sum(orig_bytes) FROM flows", NULL, 0, &r),
			 SQLITE_INTERRUPT);
	rows_free(&r);
	after = INT_MAX;
	span_counters_reset(s->db);
	assert_int_equal(query_int(s->db, "SELECT count(ts_end) FROM flows"), 8000);
	span_counters_get(s->db, &c);
	span_tune_ahead(50000);
	assert_int_equal(c.partitions_ahead, 4);
}

/* The lazy start: a filtered scan reads its first partition itself and,
 * once it has given SPAN_AHEAD_LAZY_ROWS rows, hands the rest of it (the
 * rows SQLite has not seen) and the other partitions to producers; with no
 * producer free it reads on. Either way: the same rows as without
 * read-ahead, none twice, none missing. */
static void test_ahead_take_over(void **state)
{
	static const char *const sqls[] = {
		"SELECT rowid, * FROM flows WHERE orig_port >= 0",
		"SELECT ts, comm FROM flows WHERE proto != 'zzz'",
		"SELECT ts FROM flows WHERE orig_port >= 0 AND ts > 0",
	};
	struct small *s = *state;
	sqlite3_stmt *hold[4] = { NULL };
	struct rows want = { 0 }, got = { 0 };

	rng = W.seed ^ 14;
	for (int h = 0; h < 4; h++)
		partition_close(small_partition(s, h, 1500, 1, NULL));
	s->db = span_db(s->set, NULL, NULL);
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			/* every producer slot taken by scans held open (up to 4 x 2) */
			span_tune_ahead(0);
			for (int i = 0; i < 4; i++) {
				assert_int_equal(sqlite3_prepare_v2(s->db, "SELECT * FROM flows", -1,
								    &hold[i], NULL), SQLITE_OK);
				assert_int_equal(sqlite3_step(hold[i]), SQLITE_ROW);
			}
		}
		for (size_t i = 0; i < sizeof(sqls) / sizeof(sqls[0]); i++) {
			span_tune_ahead(UINT64_MAX);
			assert_int_equal(run(s->db, sqls[i], NULL, 0, &want), SQLITE_OK);
			span_tune_ahead(0);
			assert_int_equal(run(s->db, sqls[i], NULL, 0, &got), SQLITE_OK);
			assert_int_equal(got.n, want.n);
			assert_int_equal(got.n, 6000);
			qsort(want.v, want.n, sizeof(*want.v), str_cmp);
			qsort(got.v, got.n, sizeof(*got.v), str_cmp);
			for (size_t k = 0; k < got.n; k++) {
				assert_string_equal(got.v[k], want.v[k]);
				if (k)
					assert_string_not_equal(got.v[k], got.v[k - 1]);
			}
			rows_free(&want);
			rows_free(&got);
		}
	}
	for (int i = 0; i < 4; i++)
		sqlite3_finalize(hold[i]);
	span_tune_ahead(50000);
}

/* ---- readers racing the sealer ----------------------------------------------------------- */

struct racer {
	struct span_set *set;
	atomic_int stop;
	int queries, errors;
	char error[256];
};

static void *race_reader(void *arg)
{
	struct racer *r = arg;
	sqlite3 *db = NULL;

	sqlite3_open(":memory:", &db);
	span_register(db, r->set, NULL, NULL);
	while (!atomic_load(&r->stop)) {
		struct rows rows = { 0 };
		int rc = run(db, r->queries % 2 ? "SELECT count(*), sum(orig_bytes) FROM flows"
			     : "SELECT ts FROM flows ORDER BY ts DESC LIMIT 5", NULL, 0, &rows);

		rows_free(&rows);
		r->queries++;
		if (rc != SQLITE_OK && r->errors++ == 0)
			snprintf(r->error, sizeof(r->error), "rc %d: %s", rc, sqlite3_errmsg(db));
	}
	sqlite3_close(db);
	return NULL;
}

/* Queries read open partitions while they are sealed: the queries must
 * never fail (no SQLITE_BUSY reaches them); the seal may be refused while a
 * reader holds the WAL file and succeeds when retried. */
static void test_seal_while_reading(void **state)
{
	struct small *s = *state;
	struct racer r = { .set = s->set };
	char path[4][PATH_MAX];
	pthread_t th;
	int busy = 0;

	rng = W.seed ^ 4;
	for (int h = 0; h < 4; h++)
		partition_close(small_partition(s, h, 2000, 0, path[h]));
	assert_int_equal(pthread_create(&th, NULL, race_reader, &r), 0);
	for (int h = 0; h < 4; h++) {
		int rc, tries = 0;

		while ((rc = partition_seal(path[h], T0, NULL)) == -EBUSY && tries++ < 500) {
			busy++;
			usleep(2000);
		}
		assert_int_equal(rc, 0);
	}
	usleep(100000);
	atomic_store(&r.stop, 1);
	pthread_join(th, NULL);
	fprintf(stderr, "seal while reading: %d queries, %d seal attempts refused (EBUSY)\n",
		r.queries, busy);
	if (r.errors)
		fail_msg("%d of %d queries failed, first: %s", r.errors, r.queries, r.error);
	assert_true(r.queries > 0);
	s->db = span_db(s->set, NULL, NULL);
	assert_int_equal(query_int(s->db, "SELECT count(*) FROM partitions WHERE status = 'sealed'"),
			 4);
}

/* ---- rollups: flows_1m and flows_1h ------------------------------------------------------ */

/*
 * Raw partitions (random flows and connections, late and early rows) rolled
 * up with rollup_partition into 1m files (a UTC day each) and 1h files (a
 * UTC month each); the span tables flows_1m and flows_1h against the same
 * rows read straight from the rollup files with sqlite3, and against the
 * raw rows they came from.
 */
#define ROLL_PARTS 6

/* Hours after T0 (2026-11-27T20:00Z): four in Nov 27, one in Nov 28 and
 * one in December, so there are three 1m files and two 1h files. */
static const int roll_hours[ROLL_PARTS] = { 0, 1, 2, 3, 4, 5 * 24 + 1 };

struct roll {
	char dir[DIR_LEN];
	char names[ROLL_PARTS][SCHEMA_NAME_LEN];
	struct span_set *set;
	sqlite3 *db;
};

static void roll_partition(struct roll *r, int i)
{
	struct partition *p = NULL;
	int64_t start = T0 + roll_hours[i] * HOUR;
	char path[PATH_MAX];

	assert_int_equal(partition_create(r->dir, start, HOUR, 0, start, &p), 0);
	add_rows(p, NULL, SCHEMA_FLOWS, 150 + (int)below(150), start);
	add_rows(p, NULL, SCHEMA_CONNECTIONS, 50 + (int)below(100), start);
	add_rows(p, NULL, SCHEMA_TCP_STATES, 20, start);
	snprintf(path, sizeof(path), "%s", partition_path(p));
	snprintf(r->names[i], sizeof(r->names[i]), "%s", strrchr(path, '/') + 1);
	partition_close(p);
	assert_int_equal(partition_seal(path, start + 2 * HOUR, NULL), 0);
}

/* Roll raw partition i up into its 1m and 1h files. */
static void roll_up(struct roll *r, int i)
{
	static const int64_t no_horizon[SCHEMA_NKINDS] = { 0 };
	struct partition_meta m;
	struct rollup_result res;
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", r->dir, r->names[i]);
	assert_int_equal(partition_read_meta(path, &m), 0);
	if (rollup_partition(r->dir, r->names[i], &m, no_horizon, T0 + 1000 * HOUR, 5000, &res))
		fail_msg("rollup_partition %s: %s", r->names[i], schema_last_error());
	assert_true(res.files_applied >= 2);
}

static int roll_setup(void **state)
{
	struct roll *r = calloc(1, sizeof(*r));

	if (!r)
		return -1;
	rng = W.seed ^ 21;
	make_dir(r->dir, sizeof(r->dir), "test_query_span_roll");
	for (int i = 0; i < ROLL_PARTS; i++)
		roll_partition(r, i);
	if (span_set_open(r->dir, &r->set))
		return -1;
	*state = r;
	return 0;
}

static int roll_teardown(void **state)
{
	struct roll *r = *state;

	sqlite3_close(r->db);
	span_set_free(r->set);
	remove_dir(r->dir);
	free(r);
	return 0;
}

/* The names in dir starting with prefix, sorted; returns how many. */
static int names_with(const char *dir, const char *prefix, char out[][SCHEMA_NAME_LEN], int max)
{
	struct catalog cat;
	int n = 0;

	assert_int_equal(catalog_scan(dir, &cat), 0);
	for (size_t i = 0; i < cat.n; i++)
		if (!strncmp(cat.entries[i].name, prefix, strlen(prefix)) && n < max)
			snprintf(out[n++], SCHEMA_NAME_LEN, "%s", cat.entries[i].name);
	catalog_free(&cat);
	return n;
}

/* The rows of every `table` file of dir, copied with sqlite3 into one
 * in-memory table of that name: the reference. */
static sqlite3 *rollup_reference(const char *dir, const char *table)
{
	char names[16][SCHEMA_NAME_LEN], *sql;
	int n = names_with(dir, !strcmp(table, "flows_1m") ? "1m-" : "1h-", names, 16);
	sqlite3 *db = NULL;

	assert_true(n > 0);
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	for (int i = 0; i < n; i++) {
		sql = sqlite3_mprintf("ATTACH 'file:%q/%q?mode=ro' AS r;"
				      "%s %s %s FROM r.%s; DETACH r", dir, names[i],
				      i ? "INSERT INTO" : "CREATE TABLE", table,
				      i ? "SELECT *" : "AS SELECT *", table);
		if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
			fail_msg("%s: %s", sql, sqlite3_errmsg(db));
		sqlite3_free(sql);
	}
	return db;
}

static void roll_all(struct roll *r)
{
	for (int i = 0; i < ROLL_PARTS; i++)
		roll_up(r, i);
}

/* Every column, any window, filters, ORDER BY ts: flows_1m and flows_1h
 * through the span tables give what the files hold. */
static void test_rollup_tables(void **state)
{
	static const char *const sqls[] = {
		"SELECT * FROM %s WHERE ts >= ?1 AND ts < ?2",
		"SELECT ts, sum(flows), sum(orig_pkts), sum(orig_bytes), sum(resp_pkts),"
		" sum(resp_bytes), sum(connections), sum(failed_connections), sum(retransmits)"
		" FROM %s WHERE ts >= ?1 AND ts < ?2 GROUP BY ts",
		"SELECT orig_addr, resp_addr, sum(flows), sum(orig_bytes) FROM %s"
		" WHERE orig_addr = '10.0.0.1' AND ts < ?2 GROUP BY 1, 2",
		"SELECT proto, resp_port, count(*), sum(resp_bytes) FROM %s"
		" WHERE resp_port = 53 OR resp_addr LIKE '2001:%%' GROUP BY 1, 2",
		"SELECT direction, comm, sum(connections), sum(failed_connections) FROM %s"
		" WHERE direction IS NOT NULL AND ts >= ?1 GROUP BY 1, 2",
		"SELECT count(*) FROM %s WHERE ts >= ?1 AND ts <= ?2",
		"SELECT count(*), sum(flows) FROM %s",
	};
	static const char *const ordered[] = {
		"SELECT ts FROM %s WHERE ts >= ?1 AND ts < ?2 ORDER BY ts DESC LIMIT 7",
		"SELECT ts FROM %s WHERE ts < ?2 AND ts >= ?1 - 5000000000000 ORDER BY ts"
		" LIMIT 5 OFFSET 3",
	};
	static const char *const tables[] = { "flows_1m", "flows_1h" };
	struct roll *r = *state;

	roll_all(r);
	r->db = span_db(r->set, NULL, NULL);
	for (size_t t = 0; t < 2; t++) {
		sqlite3 *ref = rollup_reference(r->dir, tables[t]);
		char sql[512];

		char one[2][SCHEMA_NAME_LEN], path[PATH_MAX];
		sqlite3 *file = NULL;

		/* the columns as the rollup DDL declares them */
		assert_int_equal(names_with(r->dir, t ? "1h-" : "1m-", one, 1), 1);
		snprintf(path, sizeof(path), "%s/%s", r->dir, one[0]);
		assert_int_equal(sqlite3_open_v2(path, &file, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
		snprintf(sql, sizeof(sql), "SELECT name, type, \"notnull\" FROM pragma_table_info('%s')",
			 tables[t]);
		assert_same(r->db, file, sql, NULL, 0, 1, W.seed);
		sqlite3_close(file);
		for (int q = 0; q < 60; q++) {
			int64_t lo = T0 - 4 * HOUR + below(130 * HOUR), params[2];

			params[0] = lo;
			params[1] = lo + below(q % 3 ? 3 * HOUR : 200 * HOUR);
			snprintf(sql, sizeof(sql), sqls[q % 7], tables[t]);
			assert_same(r->db, ref, sql, params, strstr(sql, "?2") ? 2 : strstr(sql, "?1") ? 1 : 0,
				    0, W.seed);
			snprintf(sql, sizeof(sql), ordered[q % 2], tables[t]);
			assert_same(r->db, ref, sql, params, 2, 1, W.seed);
		}
		sqlite3_close(ref);
	}
}

/* The rollups count every raw row once: in any window of whole hours,
 * flows_1h, flows_1m and the raw tables agree. */
static void test_rollup_equals_raw(void **state)
{
	struct roll *r = *state;

	roll_all(r);
	r->db = span_db(r->set, NULL, NULL);
	for (int q = 0; q < 20; q++) {
		int64_t lo = T0 - 5 * HOUR + below(130) * HOUR, hi = lo + (1 + below(40)) * HOUR;
		int64_t params[2] = { lo, hi };
		struct rows a = { 0 }, b = { 0 }, c = { 0 };
		/* total(): 0 over no rows on either side (rollups keep zeros, the
		 * raw sum of retransmits over no connections would be NULL) */
		const char *roll = "SELECT CAST(total(flows) AS INT), CAST(total(orig_bytes) AS INT),"
				   " CAST(total(resp_pkts) AS INT), CAST(total(connections) AS INT),"
				   " CAST(total(retransmits) AS INT) FROM %s WHERE ts >= ?1 AND ts < ?2";
		char sql[256];

		snprintf(sql, sizeof(sql), roll, "flows_1h");
		assert_int_equal(run(r->db, sql, params, 2, &a), SQLITE_OK);
		snprintf(sql, sizeof(sql), roll, "flows_1m");
		assert_int_equal(run(r->db, sql, params, 2, &b), SQLITE_OK);
		assert_int_equal(run(r->db, "SELECT (SELECT count(*) FROM flows WHERE ts >= ?1 AND ts < ?2),"
				     " (SELECT CAST(total(orig_bytes) AS INT) FROM flows WHERE ts >= ?1 AND ts < ?2),"
				     " (SELECT CAST(total(resp_pkts) AS INT) FROM flows WHERE ts >= ?1 AND ts < ?2),"
				     " (SELECT count(*) FROM connections WHERE ts >= ?1 AND ts < ?2),"
				     " (SELECT CAST(total(retransmits) AS INT) FROM connections"
				     " WHERE ts >= ?1 AND ts < ?2)",
				     params, 2, &c), SQLITE_OK);
		assert_string_equal(a.v[0], b.v[0]);
		assert_string_equal(a.v[0], c.v[0]);
		rows_free(&a);
		rows_free(&b);
		rows_free(&c);
	}
	/* and each table reads its own files only */
	assert_int_equal(query_int(r->db, "SELECT count(*) FROM flows WHERE partition NOT LIKE 'raw-%'"), 0);
	assert_int_equal(query_int(r->db, "SELECT count(*) FROM connections WHERE partition NOT LIKE 'raw-%'"), 0);
	assert_int_equal(query_int(r->db, "SELECT count(*) FROM flows_1m WHERE partition NOT LIKE '1m-%'"), 0);
	assert_int_equal(query_int(r->db, "SELECT count(*) FROM flows_1h WHERE partition NOT LIKE '1h-%'"), 0);
	assert_int_equal(query_int(r->db, "SELECT count(DISTINCT partition) FROM flows_1h"), 2);
	assert_int_equal(query_int(r->db, "SELECT count(*) FROM flows"),
			 query_int(r->db, "SELECT sum(flows) FROM flows_1m"));
	assert_int_equal(query_int(r->db, "SELECT count(*) FROM connections"),
			 query_int(r->db, "SELECT sum(connections) FROM flows_1h"));
}

/* A ts window opens only the rollup files whose recorded range meets it. */
static void test_rollup_pruning(void **state)
{
	struct roll *r = *state;
	char m[16][SCHEMA_NAME_LEN], h[16][SCHEMA_NAME_LEN], raw[16][SCHEMA_NAME_LEN];
	int nm, nh, nraw;
	struct span_counters c;
	int64_t day2[2] = { T0 + 4 * HOUR, T0 + 5 * HOUR }; /* Nov 28: its 1m file only */
	struct rows rows = { 0 };

	roll_all(r);
	nm = names_with(r->dir, "1m-", m, 16);
	nh = names_with(r->dir, "1h-", h, 16);
	nraw = names_with(r->dir, "raw-", raw, 16);
	assert_int_equal(nraw, ROLL_PARTS);
	assert_true(nm >= 3);
	assert_int_equal(nh, 2);
	r->db = span_db(r->set, NULL, NULL);
	span_counters_reset(r->db);
	assert_int_equal(run(r->db, "SELECT count(*) FROM flows_1m WHERE ts >= ?1 AND ts < ?2",
			     day2, 2, &rows), SQLITE_OK);
	rows_free(&rows);
	span_counters_get(r->db, &c);
	assert_int_equal(c.partitions_opened, 1);
	assert_int_equal(c.partitions_pruned, nm - 1);
	/* December only: one 1h file read, the November one pruned */
	span_counters_reset(r->db);
	assert_true(query_int(r->db, "SELECT sum(flows) FROM flows_1h WHERE ts >= 1796083200000000000")
		    > 0);
	span_counters_get(r->db, &c);
	assert_int_equal(c.partitions_opened, 1);
	assert_int_equal(c.partitions_pruned, 1);
	/* raw tables prune among raw partitions only */
	span_counters_reset(r->db);
	query_int(r->db, "SELECT count(ts) FROM flows WHERE ts >= 1796083200000000000");
	span_counters_get(r->db, &c);
	assert_int_equal(c.partitions_opened + c.partitions_pruned, nraw);
}

/* Set every rollup file's mtime 10 s back: its state is then old enough for
 * the metadata cache to keep it (a change within a second is not trusted). */
static void age_rollups(struct roll *r)
{
	char names[16][SCHEMA_NAME_LEN], path[PATH_MAX];
	int n = names_with(r->dir, "1", names, 16);
	struct timespec t[2];

	clock_gettime(CLOCK_REALTIME, &t[0]);
	t[0].tv_sec -= 10;
	t[1] = t[0];
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", r->dir, names[i]);
		assert_int_equal(utimensat(AT_FDCWD, path, t, 0), 0);
	}
}

/* A rollup file that changes between two queries (another raw partition
 * rolled into it) is read again by the second: its new rows, and the wider
 * ts range its metadata now records (the old one would prune them), even
 * when the metadata of its old state was cached. */
static void test_rollup_changes(void **state)
{
	struct roll *r = *state;
	sqlite3_stmt *st = NULL;
	int64_t hour3[2] = { T0 + 3 * HOUR, T0 + 4 * HOUR };
	char sql[512];
	int64_t flows0, want;

	roll_up(r, 0); /* Nov 27 20:00, and a few rows of 21:00 */
	roll_up(r, 5); /* December */
	r->db = span_db(r->set, NULL, NULL);
	age_rollups(r);
	flows0 = query_int(r->db, "SELECT sum(flows) FROM flows_1h");
	assert_true(flows0 > 0);
	assert_int_equal(query_int(r->db, "SELECT count(*) FROM partitions WHERE kind = 'raw'"
				   " AND rolled_up = 1"), 2);
	/* a prepared statement, stepped again after the change */
	assert_int_equal(sqlite3_prepare_v2(r->db, "SELECT count(*), sum(flows) FROM flows_1h"
					    " WHERE ts >= ?1 AND ts < ?2", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, hour3[0]);
	sqlite3_bind_int64(st, 2, hour3[1]);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int64(st, 0), 0); /* 23:00 is not rolled up yet */
	sqlite3_reset(st);
	roll_up(r, 3);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM flows WHERE ts >= ?1 AND ts < ?2"
		 " AND partition IN ('%s', '%s', '%s')", r->names[0], r->names[3], r->names[5]);
	{
		struct rows w = { 0 };

		assert_int_equal(run(r->db, sql, hour3, 2, &w), SQLITE_OK);
		assert_int_equal(sscanf(w.v[0], "i%" SCNd64, &want), 1);
		rows_free(&w);
	}
	assert_true(want > 0);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_true(sqlite3_column_int64(st, 0) > 0);
	assert_int_equal(sqlite3_column_int64(st, 1), want);
	sqlite3_finalize(st);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM flows WHERE partition = '%s'", r->names[3]);
	assert_int_equal(query_int(r->db, "SELECT sum(flows) FROM flows_1h") - flows0,
			 query_int(r->db, sql));
	snprintf(sql, sizeof(sql), "SELECT rolled_up FROM partitions WHERE name = '%s'", r->names[3]);
	assert_int_equal(query_int(r->db, sql), 1);
}

/* The partitions table lists rollup files with their kind, the raw
 * partitions with whether they are rolled up. */
static void test_rollup_partitions_table(void **state)
{
	struct roll *r = *state;
	char names[16][SCHEMA_NAME_LEN], path[PATH_MAX], sql[512];
	int n;

	roll_up(r, 1);
	roll_up(r, 2);
	r->db = span_db(r->set, NULL, NULL);
	n = names_with(r->dir, "1", names, 16);
	assert_int_equal(n, 2); /* hours 1 and 2: Nov 27, one day, one month */
	assert_int_equal(query_int(r->db, "SELECT count(*) FROM partitions"), ROLL_PARTS + 2);
	for (int i = 0; i < n; i++) {
		struct partition_meta m;
		struct rows rows = { 0 };
		char want[512];

		snprintf(path, sizeof(path), "%s/%s", r->dir, names[i]);
		assert_int_equal(rollup_read_meta(path, &m), 0);
		snprintf(sql, sizeof(sql), "SELECT kind, status, period_start, period_end, sealed_at,"
			 " ts_min, ts_max, flows, connections, tcp_states, rows, rolled_up, rolled_from,"
			 " error FROM partitions WHERE name = '%.47s'", names[i]);
		assert_int_equal(run(r->db, sql, NULL, 0, &rows), SQLITE_OK);
		assert_int_equal(rows.n, 1);
		snprintf(want, sizeof(want), "t%.2s|trollup|i%lld|i%lld|N|i%lld|i%lld|N|N|N|i%llu|N|t%s|N|",
			 names[i], (long long)m.period_start_ns, (long long)m.period_end_ns,
			 (long long)m.tables[SCHEMA_ROLLUP_META].ts_min,
			 (long long)m.tables[SCHEMA_ROLLUP_META].ts_max,
			 (unsigned long long)m.tables[SCHEMA_ROLLUP_META].rows, r->names[1]);
		assert_string_equal(rows.v[0], want);
		rows_free(&rows);
	}
	for (int i = 0; i < ROLL_PARTS; i++) {
		snprintf(sql, sizeof(sql), "SELECT rolled_up FROM partitions WHERE name = '%s'",
			 r->names[i]);
		assert_int_equal(query_int(r->db, sql), i == 1 || i == 2);
	}
	assert_int_equal(query_int(r->db, "SELECT count(*) FROM partitions WHERE kind = 'raw'"
				   " AND rolled_from IS NULL AND rows = flows + connections + tcp_states"),
			 ROLL_PARTS);
	/* a rollup file that marks nothing (a moment after its creation): its
	 * partitions are not rolled up as far as it knows */
	snprintf(path, sizeof(path), "%s/%s", r->dir, names[0]);
	{
		sqlite3 *w = NULL;

		assert_int_equal(sqlite3_open(path, &w), SQLITE_OK);
		assert_int_equal(sqlite3_exec(w, "DELETE FROM rolled", NULL, NULL, NULL), SQLITE_OK);
		sqlite3_close(w);
	}
	assert_int_equal(query_int(r->db, "SELECT count(*) FROM partitions WHERE rolled_up = 1"), 0);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM partitions WHERE kind = '%.2s'"
		 " AND rolled_from IS NULL", names[0]);
	assert_int_equal(query_int(r->db, sql), 1);
	assert_int_equal(query_int(r->db, "SELECT count(*) FROM partitions WHERE kind <> 'raw'"
				   " AND rolled_from IS NOT NULL"), 1);
}

/* A raw partition is rolled up only when every one of its targets marks
 * it: hour 3 (Nov 27 23:00) has rows of Nov 28 too, so two 1m files are
 * its targets; with the mark gone from one, it is not rolled up, though a
 * 1m and a 1h file still mark it (retention's rule, rollup_source_span). */
static void test_rollup_every_target(void **state)
{
	struct roll *r = *state;
	struct partition_meta m;
	char path[PATH_MAX], sql[512], day2[SCHEMA_NAME_LEN];
	sqlite3 *w = NULL;

	snprintf(path, sizeof(path), "%s/%s", r->dir, r->names[3]);
	assert_int_equal(partition_read_meta(path, &m), 0);
	assert_true(m.tables[SCHEMA_FLOWS].ts_max >= T0 + 4 * HOUR); /* reaches Nov 28 */
	roll_up(r, 3);
	r->db = span_db(r->set, NULL, NULL);
	snprintf(sql, sizeof(sql), "SELECT rolled_up FROM partitions WHERE name = '%s'", r->names[3]);
	assert_int_equal(query_int(r->db, sql), 1);

	assert_int_equal(rollup_name_format(day2, sizeof(day2), SCHEMA_KIND_1M, T0 + 4 * HOUR), 0);
	snprintf(path, sizeof(path), "%s/%s", r->dir, day2);
	assert_int_equal(sqlite3_open(path, &w), SQLITE_OK);
	assert_int_equal(sqlite3_exec(w, "DELETE FROM rolled", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(w);
	assert_int_equal(query_int(r->db, sql), 0);
	assert_int_equal(query_int(r->db, "SELECT count(*) FROM partitions WHERE kind <> 'raw'"
				   " AND rolled_from IS NOT NULL"), 2); /* Nov 27's 1m, November's 1h */
}

/* count(*) over a rollup table takes the ordinary path (count_fast knows
 * only the raw tables) and span_count() answers for it too. */
static void test_rollup_counts(void **state)
{
	struct roll *r = *state;
	struct csb c;
	struct answer a, ref;
	int64_t params[2] = { T0 + HOUR, T0 + 30 * HOUR };
	sqlite3 *m;

	roll_all(r);
	m = rollup_reference(r->dir, "flows_1m");
	csb_open(&c, r->set);
	answer_sandbox(&c, "SELECT count(*) FROM flows_1m WHERE ts >= ?1 AND ts < ?2", params, 2, &a);
	answer_plain(m, "SELECT count(*) FROM flows_1m WHERE ts >= ?1 AND ts < ?2", params, 2, &ref);
	assert_false(a.fast);
	assert_same_answer("flows_1m", params, &a, &ref, "the files");
	answer_free(&a);
	answer_sandbox(&c, "SELECT span_count('flows_1m', '>=', ?1, '<', ?2)", params, 2, &a);
	assert_false(a.failed);
	assert_string_equal(a.rows.v[0], ref.rows.v[0]);
	answer_free(&a);
	answer_free(&ref);
	sandbox_close(c.sb);
	sqlite3_close(m);
}

int main(void)
{
	const struct CMUnitTest world[] = {
		cmocka_unit_test(test_columns_match_ddl),
		cmocka_unit_test(test_fixed_queries),
		cmocka_unit_test(test_same_as_merged),
		cmocka_unit_test(test_same_as_merged_ahead),
		cmocka_unit_test(test_pruning),
		cmocka_unit_test(test_prune_by_name_and_end),
		cmocka_unit_test(test_merge_opens_little),
		cmocka_unit_test(test_count_from_meta),
		cmocka_unit_test(test_count_fast_recognises),
		cmocka_unit_test(test_count_fast_same),
		cmocka_unit_test(test_count_fast_meta),
		cmocka_unit_test(test_join_plan),
		cmocka_unit_test(test_partitions_table),
	};
	const struct CMUnitTest small[] = {
		cmocka_unit_test_setup_teardown(test_files_come_and_go, small_setup, small_teardown),
		cmocka_unit_test_setup_teardown(test_open_partition_grows, small_setup, small_teardown),
		cmocka_unit_test_setup_teardown(test_interrupt, small_setup, small_teardown),
		cmocka_unit_test_setup_teardown(test_ahead_stops, small_setup, small_teardown),
		cmocka_unit_test_setup_teardown(test_ahead_take_over, small_setup, small_teardown),
		cmocka_unit_test_setup_teardown(test_handle_cache_bound, small_setup, small_teardown),
		cmocka_unit_test_setup_teardown(test_affinity_oracle, small_setup, small_teardown),
		cmocka_unit_test_setup_teardown(test_merge_clamps_open, small_setup, small_teardown),
		cmocka_unit_test_setup_teardown(test_real_bounds, small_setup, small_teardown),
		cmocka_unit_test_setup_teardown(test_seal_while_reading, small_setup, small_teardown),
	};
	const struct CMUnitTest rollups[] = {
		cmocka_unit_test_setup_teardown(test_rollup_tables, roll_setup, roll_teardown),
		cmocka_unit_test_setup_teardown(test_rollup_equals_raw, roll_setup, roll_teardown),
		cmocka_unit_test_setup_teardown(test_rollup_pruning, roll_setup, roll_teardown),
		cmocka_unit_test_setup_teardown(test_rollup_changes, roll_setup, roll_teardown),
		cmocka_unit_test_setup_teardown(test_rollup_partitions_table, roll_setup,
						roll_teardown),
		cmocka_unit_test_setup_teardown(test_rollup_every_target, roll_setup, roll_teardown),
		cmocka_unit_test_setup_teardown(test_rollup_counts, roll_setup, roll_teardown),
	};
	int failed = cmocka_run_group_tests_name("span_world", world, world_setup, world_teardown);

	failed += cmocka_run_group_tests_name("span_dir_changes", small, NULL, NULL);
	return failed + cmocka_run_group_tests_name("span_rollups", rollups, NULL, NULL);
}
