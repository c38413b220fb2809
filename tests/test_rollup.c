/*
 * Unit tests of retention/rollup.c: raw partitions rolled up into the 1m
 * and 1h files, each exactly once.
 *
 * Real files in a fresh temp dir per test. The rollups are checked the way
 * a user would check them: the same aggregate computed with plain SQL over
 * the raw partitions and over the rollup files must be equal, row for row
 * (sorted result sets, NULL keys included). The reference aggregate is
 * written here, independently of rollup_select_sql, over the union of the
 * raw tables. A small hand-made partition checks known answers; seeded
 * random partitions (IPv6, NULL comm and direction, failed connections,
 * rows on minute, hour, day and month edges, a late row days old, a closed
 * partition left unsealed) check the rest, also after a child process
 * rolling up was killed at random moments.
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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "rollup.h"
#include "schema.h"
#include "testdir.h"
#include "testsql.h"

#define NS 1000000000LL
#define MIN (60 * NS)
#define HOUR (3600 * NS)
#define DAY (86400 * NS)
#define H_NOV30_23 (1796079600LL * NS) /* 2026-11-30T23:00:00Z: day and month end */
#define NOW (1796090000LL * NS)        /* when the tests "run": after all periods */
#define MAX_PARTS 8

struct fixture {
	char *dir;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->dir = test_mkdtemp("test_rollup");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	test_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static const char *path_in(const char *dir, const char *name)
{
	static char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return path;
}

/* ---- rows ---------------------------------------------------------------------- */

/* splitmix64: seeded, the same rows on every run. */
struct rng {
	uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
	uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static uint64_t rng_below(struct rng *r, uint64_t n)
{
	return rng_next(r) % n;
}

/* An element of a, the first ones far more often (as with real hosts and
 * ports), so that keys repeat within a bucket and sums add up many rows. */
static size_t skewed(struct rng *r, size_t n)
{
	return (size_t)rng_below(r, rng_below(r, rng_below(r, n) + 1) + 1);
}

#define PICK(r, a) ((a)[skewed((r), sizeof(a) / sizeof((a)[0]))])

static const char *const addrs[] = {
	"10.0.0.5", "10.0.0.6", "192.0.2.1", "192.0.2.200", "198.51.100.7",
	"2001:db8::1", "2001:db8::53", "fe80::1ff:fe23:4567:890a", "",
};
static const char *const protos[] = { "tcp", "tcp", "udp", "icmp", "icmp6", "47" };
static const char *const comms[] = { "", "curl", "sshd", "systemd-resolve", "0123456789abcdef" };
static const char *const directions[] = { "out", "in", "" };
static const char *const paths[] = {
	"SYN_SENT>CLOSE",
	"SYN_SENT>ESTABLISHED>FIN_WAIT1>FIN_WAIT2>CLOSE",
	"LISTEN>SYN_RECV>ESTABLISHED>CLOSE_WAIT>LAST_ACK>CLOSE",
	"LISTEN>SYN_RECV>CLOSE",
	"",
};
static const uint16_t ports[] = { 0, 22, 53, 443, 443, 8080 };

/* A ts for a row of the partition [start, start + period): mostly inside,
 * many on the edges of minutes, hours and days (1 ns either side), some a
 * little before the start (flows that began earlier) or at the end. */
static int64_t random_ts(struct rng *r, int64_t start, int64_t period)
{
	int64_t edge;

	switch (rng_below(r, 10)) {
	case 0:
	case 1:
		edge = start + (int64_t)rng_below(r, (uint64_t)(period / MIN) + 1) * MIN;
		return edge + (int64_t)rng_below(r, 3) - 1;
	case 2:
		return start - 1 - (int64_t)rng_below(r, (uint64_t)(5 * MIN));
	case 3:
		return start + period - 1 + (int64_t)rng_below(r, 2);
	default:
		return start + (int64_t)rng_below(r, (uint64_t)period);
	}
}

static void random_flow(struct rng *r, int64_t ts, struct flow_row *f)
{
	f->ts = ts;
	f->ts_end = ts + (int64_t)rng_below(r, 10 * NS);
	snprintf(f->proto, sizeof(f->proto), "%s", PICK(r, protos));
	snprintf(f->orig_addr, sizeof(f->orig_addr), "%s", PICK(r, addrs));
	snprintf(f->resp_addr, sizeof(f->resp_addr), "%s", PICK(r, addrs));
	f->orig_port = (uint16_t)(32768 + rng_below(r, 28000));
	f->resp_port = PICK(r, ports);
	f->orig_pkts = (int64_t)rng_below(r, 1000);
	f->orig_bytes = (int64_t)rng_below(r, 1ull << 40); /* sums beyond 32 bits */
	f->resp_pkts = (int64_t)rng_below(r, 1000);
	f->resp_bytes = (int64_t)rng_below(r, 1ull << 40);
	f->pid = (uint32_t)rng_below(r, 3) * 1000;
	snprintf(f->comm, sizeof(f->comm), "%s", PICK(r, comms));
	snprintf(f->history, sizeof(f->history), "ShADadFf");
	snprintf(f->ifname, sizeof(f->ifname), "eth0");
}

static void random_conn(struct rng *r, int64_t ts, struct conn_row *c)
{
	c->ts = ts;
	c->ts_end = ts + (int64_t)rng_below(r, 10 * NS);
	snprintf(c->direction, sizeof(c->direction), "%s", PICK(r, directions));
	snprintf(c->orig_addr, sizeof(c->orig_addr), "%s", PICK(r, addrs));
	snprintf(c->resp_addr, sizeof(c->resp_addr), "%s", PICK(r, addrs));
	c->orig_port = (uint16_t)(32768 + rng_below(r, 28000));
	c->resp_port = PICK(r, ports);
	c->pid = (uint32_t)rng_below(r, 3) * 1000;
	c->uid = 1000;
	snprintf(c->comm, sizeof(c->comm), "%s", PICK(r, comms));
	c->retransmits = (int64_t)rng_below(r, 4) * (int64_t)rng_below(r, 5);
	c->bytes_sent = (int64_t)rng_below(r, 100000);
	snprintf(c->states, sizeof(c->states), "%s", PICK(r, paths));
}

static void random_state(struct rng *r, int64_t ts, struct tcp_state_row *s)
{
	s->ts = ts;
	snprintf(s->direction, sizeof(s->direction), "out");
	snprintf(s->orig_addr, sizeof(s->orig_addr), "%s", PICK(r, addrs));
	snprintf(s->resp_addr, sizeof(s->resp_addr), "%s", PICK(r, addrs));
	s->resp_port = PICK(r, ports);
	snprintf(s->old_state, sizeof(s->old_state), "SYN_SENT");
	snprintf(s->new_state, sizeof(s->new_state), "ESTABLISHED");
}

static void random_row(struct rng *r, int64_t start, int64_t period, struct schema_row *row)
{
	uint64_t what = rng_below(r, 10);
	int64_t ts = random_ts(r, start, period);

	memset(row, 0, sizeof(*row));
	if (what < 6) {
		row->table = SCHEMA_FLOWS;
		random_flow(r, ts, &row->flow);
	} else if (what < 9) {
		row->table = SCHEMA_CONNECTIONS;
		random_conn(r, ts, &row->conn);
	} else {
		row->table = SCHEMA_TCP_STATES;
		random_state(r, ts, &row->state);
	}
}

/* ---- partitions ------------------------------------------------------------------ */

static struct partition *part_new(const char *dir, int64_t start, unsigned seq)
{
	struct partition *p = NULL;

	assert_int_equal(partition_create(dir, start, HOUR, seq, start, &p), 0);
	assert_int_equal(partition_begin(p), 0);
	return p;
}

static void part_add(struct partition *p, const struct schema_row *row)
{
	assert_int_equal(partition_add(p, row), 0);
}

/* Commit, close, seal if asked; name gets the file name. */
static void part_finish(struct partition *p, int seal, char name[SCHEMA_NAME_LEN])
{
	const char *path = partition_path(p);
	const char *slash = strrchr(path, '/');
	char copy[PATH_MAX];

	assert_int_equal(partition_commit(p), 0);
	snprintf(copy, sizeof(copy), "%s", path);
	snprintf(name, SCHEMA_NAME_LEN, "%s", slash ? slash + 1 : path);
	partition_close(p);
	if (seal)
		assert_int_equal(partition_seal(copy, NOW, NULL), 0);
}

/* A partition of n random rows; late: one connection and one flow `late`
 * ns before the period. */
static void part_random(const char *dir, int64_t start, unsigned seq, int n, uint64_t seed,
			int64_t late, int seal, char name[SCHEMA_NAME_LEN])
{
	struct rng r = { seed };
	struct partition *p = part_new(dir, start, seq);
	struct schema_row row;

	for (int i = 0; i < n; i++) {
		random_row(&r, start, HOUR, &row);
		part_add(p, &row);
	}
	if (late) {
		memset(&row, 0, sizeof(row));
		row.table = SCHEMA_CONNECTIONS;
		random_conn(&r, start - late, &row.conn);
		part_add(p, &row);
		row.table = SCHEMA_FLOWS;
		random_flow(&r, start - late + 1, &row.flow);
		part_add(p, &row);
	}
	part_finish(p, seal, name);
}

static void read_meta(const char *dir, const char *name, struct partition_meta *m)
{
	assert_int_equal(partition_read_meta(path_in(dir, name), m), 0);
}

static void roll(const char *dir, const char *name, const int64_t *horizon,
		 struct rollup_result *res)
{
	struct partition_meta m;
	int rc;

	read_meta(dir, name, &m);
	rc = rollup_partition(dir, name, &m, horizon, NOW, 5000, res);
	if (rc)
		fail_msg("rollup_partition(%s): %d %s", name, rc, schema_last_error());
}

/* rollup_is_done, asked with and without kept marks: the same answer. */
static int is_done(const char *dir, const char *name, const int64_t *horizon)
{
	struct rollup_marks marks = { 0 };
	struct partition_meta m;
	int rc, kept;

	read_meta(dir, name, &m);
	rc = rollup_is_done(NULL, dir, name, &m, horizon);
	kept = rollup_is_done(&marks, dir, name, &m, horizon);
	rollup_marks_clear(&marks);
	assert_int_equal(kept, rc);
	return rc;
}

static int is_done_kept(struct rollup_marks *marks, const char *dir, const char *name)
{
	struct partition_meta m;

	read_meta(dir, name, &m);
	return rollup_is_done(marks, dir, name, &m, NULL);
}

/* The set of raw partitions the random tests roll up: four hours around
 * the end of November (day and month edges), two files for one hour (a
 * rollover at the row cap), late rows, one left closed but unsealed. */
struct part_set {
	char names[MAX_PARTS][SCHEMA_NAME_LEN];
	int n;
};

static void part_set_make(const char *dir, int rows, uint64_t seed, struct part_set *s)
{
	static const struct {
		int64_t start;
		unsigned seq;
		int64_t late;
		int seal;
	} parts[] = {
		{ H_NOV30_23 - HOUR, 0, 0, 1 },
		{ H_NOV30_23, 0, 3 * DAY + 17 * NS, 1 },
		{ H_NOV30_23, 1, 0, 1 },
		{ H_NOV30_23 + HOUR, 0, 9 * DAY + 3 * HOUR, 1 },
		{ H_NOV30_23 + 2 * HOUR, 0, 0, 0 },
	};

	s->n = 0;
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		part_random(dir, parts[i].start, parts[i].seq, rows, seed + i, parts[i].late,
			    parts[i].seal, s->names[s->n++]);
}

/* ---- SQL over the files ------------------------------------------------------------ */

static sqlite3 *mem_open(void)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	return db;
}

static void exec(sqlite3 *db, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", sql, err ? err : "?");
}

/* sqlite3_mprintf's format: %q quotes a string. */
static void execf(sqlite3 *db, const char *fmt, ...)
{
	char *sql;
	va_list ap;

	va_start(ap, fmt);
	sql = sqlite3_vmprintf(fmt, ap);
	va_end(ap);
	assert_non_null(sql);
	exec(db, sql);
	sqlite3_free(sql);
}

#define ROLLUP_COLS                                                                 \
	"ts, proto, orig_addr, resp_addr, resp_port, direction, comm, flows,"       \
	" orig_pkts, orig_bytes, resp_pkts, resp_bytes, connections,"               \
	" failed_connections, retransmits"
#define KEY_COLS "proto, orig_addr, resp_addr, resp_port, direction, comm"

/*
 * Table `raw` of db: the raw partitions' flows and connections as rollup
 * rows of one record each, the way rollup.h defines them (written here
 * without rollup.c's SQL).
 */
static void load_raw(sqlite3 *db, const char *dir, char (*names)[SCHEMA_NAME_LEN], int n)
{
	exec(db, "CREATE TABLE raw(" ROLLUP_COLS ")");
	for (int i = 0; i < n; i++) {
		execf(db, "ATTACH 'file:%q?mode=ro' AS r", path_in(dir, names[i]));
		exec(db, "INSERT INTO raw SELECT ts, proto, orig_addr, resp_addr, resp_port, NULL,"
			 " comm, 1, orig_pkts, orig_bytes, resp_pkts, resp_bytes, 0, 0, 0 FROM r.flows");
		exec(db, "INSERT INTO raw SELECT ts, 'tcp', orig_addr, resp_addr, resp_port,"
			 " direction, comm, 0, 0, 0, 0, 0, 1,"
			 " CASE WHEN states IS NULL OR states LIKE '%ESTABLISHED%' THEN 0 ELSE 1 END,"
			 " retransmits FROM r.connections");
		exec(db, "DETACH r");
	}
}

/* Table `got` of db: every row of every k-file in dir. Returns the files. */
static int load_rollups(sqlite3 *db, const char *dir, enum schema_kind k)
{
	const char *prefix = schema_kind_name(k);
	DIR *d = opendir(dir);
	struct dirent *e;
	int files = 0;

	assert_non_null(d);
	exec(db, "DROP TABLE IF EXISTS got");
	exec(db, "CREATE TABLE got(" ROLLUP_COLS ")");
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, prefix, strlen(prefix)) || e->d_name[strlen(prefix)] != '-')
			continue;
		execf(db, "ATTACH 'file:%q?mode=ro' AS r", path_in(dir, e->d_name));
		execf(db, "INSERT INTO got SELECT " ROLLUP_COLS " FROM r.%s", rollup_table_name(k));
		exec(db, "DETACH r");
		files++;
	}
	closedir(d);
	return files;
}

/* Print up to 5 rows of `sql` (a difference) and return how many it has. */
static int64_t show_diff(sqlite3 *db, const char *what, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t n = 0;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (n++ >= 5)
			continue;
		fprintf(stderr, "%s:", what);
		for (int c = 0; c < sqlite3_column_count(st); c++)
			fprintf(stderr, " %s", sqlite3_column_type(st, c) == SQLITE_NULL
						       ? "NULL" : (const char *)sqlite3_column_text(st, c));
		fprintf(stderr, "\n");
	}
	sqlite3_finalize(st);
	return n;
}

/*
 * The aggregate per (bucket of k, key) over `raw` (ts >= min_ts) equals the
 * same aggregate over `got`, exactly: same keys, same sums, NULLs where
 * NULLs are. Returns the number of aggregate rows (so tests can see the
 * comparison was not vacuous).
 */
static int64_t assert_same_aggregate(sqlite3 *db, enum schema_kind k, int64_t min_ts)
{
	int64_t b = rollup_bucket_ns(k), n;
	char sql[128];
	const char *sums = "sum(flows) AS flows, sum(orig_pkts) AS orig_pkts,"
			   " sum(orig_bytes) AS orig_bytes, sum(resp_pkts) AS resp_pkts,"
			   " sum(resp_bytes) AS resp_bytes, sum(connections) AS connections,"
			   " sum(failed_connections) AS failed, sum(retransmits) AS retransmits";

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM got WHERE ts %% %lld != 0", (long long)b);
	assert_int_equal(test_sql_int(db, sql), 0); /* every ts starts a bucket */
	exec(db, "DROP TABLE IF EXISTS want_agg; DROP TABLE IF EXISTS got_agg");
	execf(db, "CREATE TABLE want_agg AS SELECT ts - ts %% %lld AS b, " KEY_COLS ", %s"
		  " FROM raw WHERE ts >= %lld GROUP BY b, " KEY_COLS,
	      (long long)b, sums, (long long)min_ts);
	execf(db, "CREATE TABLE got_agg AS SELECT ts AS b, " KEY_COLS ", %s FROM got"
		  " GROUP BY b, " KEY_COLS, sums);
	n = show_diff(db, "missing", "SELECT * FROM want_agg EXCEPT SELECT * FROM got_agg");
	n += show_diff(db, "extra", "SELECT * FROM got_agg EXCEPT SELECT * FROM want_agg");
	assert_int_equal(n, 0);
	n = test_sql_int(db, "SELECT count(*) FROM want_agg");
	assert_int_equal(test_sql_int(db, "SELECT count(*) FROM got_agg"), n);
	return n;
}

/* A reference: `raw` of the partitions names[0..n) of dir, in memory. */
static sqlite3 *reference_open(const char *dir, char (*names)[SCHEMA_NAME_LEN], int n)
{
	sqlite3 *db = mem_open();

	load_raw(db, dir, names, n);
	assert_true(test_sql_int(db, "SELECT count(*) FROM raw") > 0);
	return db;
}

/* Every rollup file of dir, both kinds, against the reference ref (rows
 * from min_ts[k] on; NULL: all). */
static void assert_rollups_match(sqlite3 *ref, const char *dir, const int64_t *min_ts)
{
	for (int k = SCHEMA_KIND_1M; k <= SCHEMA_KIND_1H; k++) {
		assert_true(load_rollups(ref, dir, k) > 0);
		assert_true(assert_same_aggregate(ref, k, min_ts ? min_ts[k] : INT64_MIN) > 0);
	}
}

/* Names in dir starting with '.' (temporaries), or ending in -journal. */
static int count_leftovers(const char *dir, int verbose)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (e->d_name[0] == '.' || (len > 8 && !strcmp(e->d_name + len - 8, "-journal"))) {
			if (verbose)
				fprintf(stderr, "left over: %s\n", e->d_name);
			n++;
		}
	}
	closedir(d);
	return n;
}

static int count_files(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
	closedir(d);
	return n;
}

/* Names in dir starting with '.': our temporaries. */
static int count_temps(const char *dir)
{
	return count_files(dir, ".") - 2; /* "." and ".." */
}

/* ---- known answers ------------------------------------------------------------------ */

static void add_flow(struct partition *p, int64_t ts, const char *proto, const char *orig,
		     const char *resp, uint16_t port, const char *comm, int64_t op, int64_t ob,
		     int64_t rp, int64_t rb)
{
	struct schema_row row = { .table = SCHEMA_FLOWS };
	struct flow_row *f = &row.flow;

	f->ts = ts;
	f->ts_end = ts + NS;
	snprintf(f->proto, sizeof(f->proto), "%s", proto);
	snprintf(f->orig_addr, sizeof(f->orig_addr), "%s", orig);
	snprintf(f->resp_addr, sizeof(f->resp_addr), "%s", resp);
	f->orig_port = 40000;
	f->resp_port = port;
	snprintf(f->comm, sizeof(f->comm), "%s", comm);
	f->orig_pkts = op, f->orig_bytes = ob, f->resp_pkts = rp, f->resp_bytes = rb;
	part_add(p, &row);
}

static void add_conn(struct partition *p, int64_t ts, const char *dir, const char *orig,
		     const char *resp, uint16_t port, const char *comm, const char *states,
		     int64_t retransmits)
{
	struct schema_row row = { .table = SCHEMA_CONNECTIONS };
	struct conn_row *c = &row.conn;

	c->ts = ts;
	c->ts_end = ts + NS;
	snprintf(c->direction, sizeof(c->direction), "%s", dir);
	snprintf(c->orig_addr, sizeof(c->orig_addr), "%s", orig);
	snprintf(c->resp_addr, sizeof(c->resp_addr), "%s", resp);
	c->orig_port = 40000;
	c->resp_port = port;
	snprintf(c->comm, sizeof(c->comm), "%s", comm);
	snprintf(c->states, sizeof(c->states), "%s", states);
	c->retransmits = retransmits;
	part_add(p, &row);
}

static void add_state(struct partition *p, int64_t ts)
{
	struct schema_row row = { .table = SCHEMA_TCP_STATES };

	random_state(&(struct rng){ 1 }, ts, &row.state);
	part_add(p, &row);
}

#define H H_NOV30_23
#define ESTAB "SYN_SENT>ESTABLISHED>FIN_WAIT1>FIN_WAIT2>CLOSE"

/* Hour 2026-11-30T23:00Z, the last of a day and of a month. */
static void part_known(const char *dir, int seal, char name[SCHEMA_NAME_LEN])
{
	struct partition *p = part_new(dir, H, 0);

	add_flow(p, H + 5 * NS, "tcp", "10.0.0.5", "192.0.2.1", 443, "curl", 3, 300, 2, 2000);
	add_flow(p, H + MIN - 1, "tcp", "10.0.0.5", "192.0.2.1", 443, "curl", 1, 100, 1, 1000);
	add_flow(p, H + MIN, "tcp", "10.0.0.5", "192.0.2.1", 443, "curl", 5, 500, 4, 4000);
	add_flow(p, H - 1, "udp", "2001:db8::1", "2001:db8::53", 53, "", 1, 80, 1, 200);
	add_flow(p, H + HOUR - 1, "icmp", "10.0.0.5", "192.0.2.9", 0, "ping", 1, 84, 1, 84);
	add_flow(p, H + HOUR, "tcp", "10.0.0.5", "192.0.2.1", 443, "curl", 2, 120, 2, 2400);
	add_conn(p, H + 10 * NS, "out", "10.0.0.5", "192.0.2.1", 443, "curl", ESTAB, 2);
	add_conn(p, H + 20 * NS, "out", "10.0.0.5", "192.0.2.1", 443, "curl", "SYN_SENT>CLOSE", 5);
	add_conn(p, H + 30 * NS, "", "10.0.0.5", "192.0.2.1", 443, "curl",
		 "SYN_SENT>ESTABLISHED>CLOSE", 0);
	add_conn(p, H - 3 * DAY + 7 * NS, "in", "198.51.100.7", "10.0.0.5", 22, "sshd",
		 "LISTEN>SYN_RECV>CLOSE", 1);
	add_conn(p, H + 40 * NS, "in", "198.51.100.7", "10.0.0.5", 22, "sshd", "", 0);
	add_state(p, H - 10 * DAY); /* tcp_states are not rolled up: no file for it */
	add_state(p, H + 50 * NS);
	part_finish(p, seal, name);
}

/* got's rows as text, ts in s from H, sorted; "ts|proto|orig|resp|port|
 * direction|comm|flows|orig_pkts|orig_bytes|resp_pkts|resp_bytes|
 * connections|failed|retransmits". */
static void assert_rows(sqlite3 *db, const char *const *want, size_t n)
{
	sqlite3_stmt *st = NULL;
	size_t i = 0;
	char *sql = sqlite3_mprintf(
		"SELECT printf('%%d|%%s|%%s|%%s|%%s|%%s|%%s|%%s|%%s|%%s|%%s|%%s|%%s|%%s|%%s',"
		" (ts - %lld) / 1000000000, proto, quote(orig_addr), quote(resp_addr),"
		" quote(resp_port), quote(direction), quote(comm), flows, quote(orig_pkts),"
		" quote(orig_bytes), quote(resp_pkts), quote(resp_bytes), connections,"
		" failed_connections, quote(retransmits)) FROM got"
		" ORDER BY ts, proto, orig_addr, resp_addr, resp_port, direction, comm, flows",
		(long long)H);

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	sqlite3_free(sql);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *row = (const char *)sqlite3_column_text(st, 0);

		if (i >= n || strcmp(row, want[i]))
			fail_msg("row %zu: got %s, want %s", i, row, i < n ? want[i] : "(none)");
		i++;
	}
	sqlite3_finalize(st);
	assert_int_equal(i, n);
}

static const char *const want_1m[] = {
	"-259200|tcp|'198.51.100.7'|'10.0.0.5'|22|'in'|'sshd'|0|0|0|0|0|1|1|1",
	"-60|udp|'2001:db8::1'|'2001:db8::53'|53|NULL|NULL|1|1|80|1|200|0|0|0",
	"0|tcp|'10.0.0.5'|'192.0.2.1'|443|NULL|'curl'|0|0|0|0|0|1|0|0",
	"0|tcp|'10.0.0.5'|'192.0.2.1'|443|NULL|'curl'|2|4|400|3|3000|0|0|0",
	"0|tcp|'10.0.0.5'|'192.0.2.1'|443|'out'|'curl'|0|0|0|0|0|2|1|7",
	"0|tcp|'198.51.100.7'|'10.0.0.5'|22|'in'|'sshd'|0|0|0|0|0|1|0|0",
	"60|tcp|'10.0.0.5'|'192.0.2.1'|443|NULL|'curl'|1|5|500|4|4000|0|0|0",
	"3540|icmp|'10.0.0.5'|'192.0.2.9'|0|NULL|'ping'|1|1|84|1|84|0|0|0",
	"3600|tcp|'10.0.0.5'|'192.0.2.1'|443|NULL|'curl'|1|2|120|2|2400|0|0|0",
};

static const char *const want_1h[] = {
	"-259200|tcp|'198.51.100.7'|'10.0.0.5'|22|'in'|'sshd'|0|0|0|0|0|1|1|1",
	"-3600|udp|'2001:db8::1'|'2001:db8::53'|53|NULL|NULL|1|1|80|1|200|0|0|0",
	"0|icmp|'10.0.0.5'|'192.0.2.9'|0|NULL|'ping'|1|1|84|1|84|0|0|0",
	"0|tcp|'10.0.0.5'|'192.0.2.1'|443|NULL|'curl'|0|0|0|0|0|1|0|0",
	"0|tcp|'10.0.0.5'|'192.0.2.1'|443|NULL|'curl'|3|9|900|7|7000|0|0|0",
	"0|tcp|'10.0.0.5'|'192.0.2.1'|443|'out'|'curl'|0|0|0|0|0|2|1|7",
	"0|tcp|'198.51.100.7'|'10.0.0.5'|22|'in'|'sshd'|0|0|0|0|0|1|0|0",
	"3600|tcp|'10.0.0.5'|'192.0.2.1'|443|NULL|'curl'|1|2|120|2|2400|0|0|0",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void assert_known_rollups(const char *dir)
{
	sqlite3 *db = mem_open();

	/* 27, 28, 29, 30 November (28 and 29 hold no rows) and 1 December */
	assert_int_equal(load_rollups(db, dir, SCHEMA_KIND_1M), 5);
	assert_rows(db, want_1m, NELEM(want_1m));
	assert_int_equal(load_rollups(db, dir, SCHEMA_KIND_1H), 2);
	assert_rows(db, want_1h, NELEM(want_1h));
	sqlite3_close(db);
}

static void test_known_answers(void **state)
{
	struct fixture *f = *state;
	struct rollup_result res;
	char name[SCHEMA_NAME_LEN];

	part_known(f->dir, 1, name);
	assert_int_equal(is_done(f->dir, name, NULL), 0);
	roll(f->dir, name, NULL, &res);
	assert_int_equal(res.source_rows, 11);
	assert_int_equal(res.files_applied, 7);
	assert_int_equal(res.files_already, 0);
	assert_int_equal(res.files_skipped, 0);
	assert_int_equal(res.rows_added[SCHEMA_KIND_RAW], 0);
	assert_int_equal(res.rows_added[SCHEMA_KIND_1M], NELEM(want_1m));
	assert_int_equal(res.rows_added[SCHEMA_KIND_1H], NELEM(want_1h));
	assert_known_rollups(f->dir);
	assert_int_equal(is_done(f->dir, name, NULL), 1);
	assert_int_equal(count_leftovers(f->dir, 1), 0);
}

/* The same partition left unsealed (no indexes, WAL mode): same rows. */
static void test_known_answers_unsealed(void **state)
{
	struct fixture *f = *state;
	struct rollup_result res;
	char name[SCHEMA_NAME_LEN];

	part_known(f->dir, 0, name);
	roll(f->dir, name, NULL, &res);
	assert_int_equal(res.files_applied, 7);
	assert_known_rollups(f->dir);
	assert_int_equal(is_done(f->dir, name, NULL), 1);
}

/* A second run finds every mark and adds nothing; the files are
 * unchanged byte for byte. */
static void test_twice(void **state)
{
	struct fixture *f = *state;
	struct rollup_result res;
	char name[SCHEMA_NAME_LEN];
	struct stat before, after;

	part_known(f->dir, 1, name);
	roll(f->dir, name, NULL, &res);
	assert_int_equal(stat(path_in(f->dir, "1m-20261130T000000Z-0000.db"), &before), 0);
	roll(f->dir, name, NULL, &res);
	assert_int_equal(res.source_rows, 11);
	assert_int_equal(res.files_applied, 0);
	assert_int_equal(res.files_already, 7);
	assert_int_equal(res.rows_added[SCHEMA_KIND_1M], 0);
	assert_int_equal(res.rows_added[SCHEMA_KIND_1H], 0);
	assert_known_rollups(f->dir);
	assert_int_equal(stat(path_in(f->dir, "1m-20261130T000000Z-0000.db"), &after), 0);
	assert_int_equal(before.st_size, after.st_size);
	assert_int_equal(before.st_mtim.tv_sec, after.st_mtim.tv_sec);
	assert_int_equal(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
	assert_int_equal(is_done(f->dir, name, NULL), 1);
}

/* Done means every target marked: a missing target file is not done, and
 * the next run redoes exactly that one. */
static void test_done_needs_every_target(void **state)
{
	struct fixture *f = *state;
	struct rollup_result res;
	char name[SCHEMA_NAME_LEN];

	part_known(f->dir, 1, name);
	roll(f->dir, name, NULL, &res);
	assert_int_equal(unlink(path_in(f->dir, "1m-20261128T000000Z-0000.db")), 0);
	assert_int_equal(is_done(f->dir, name, NULL), 0);
	roll(f->dir, name, NULL, &res);
	assert_int_equal(res.files_applied, 1);
	assert_int_equal(res.files_already, 6);
	assert_int_equal(res.rows_added[SCHEMA_KIND_1M], 0);
	assert_int_equal(is_done(f->dir, name, NULL), 1);
	assert_known_rollups(f->dir);

	/* the busiest target gone: its rows come back, nothing else twice */
	assert_int_equal(unlink(path_in(f->dir, "1m-20261130T000000Z-0000.db")), 0);
	roll(f->dir, name, NULL, &res);
	assert_int_equal(res.files_applied, 1);
	assert_int_equal(res.rows_added[SCHEMA_KIND_1M], 7);
	assert_int_equal(res.rows_added[SCHEMA_KIND_1H], 0);
	assert_known_rollups(f->dir);
}

/* Targets whose period ends at or before the horizon are skipped: not
 * created, not needed for "done". */
static void test_horizon(void **state)
{
	struct fixture *f = *state;
	struct rollup_result res;
	char name[SCHEMA_NAME_LEN];
	/* 1m: the days up to 29 November end by 30 Nov 00:00; 1h: none */
	int64_t horizon[SCHEMA_NKINDS] = { 0, H - 23 * HOUR, H - 23 * HOUR };
	int64_t min_ts[SCHEMA_NKINDS] = { 0, H - 23 * HOUR, INT64_MIN };
	char names[1][SCHEMA_NAME_LEN];
	sqlite3 *ref;

	part_known(f->dir, 1, name);
	assert_int_equal(is_done(f->dir, name, horizon), 0);
	roll(f->dir, name, horizon, &res);
	assert_int_equal(res.files_skipped, 3);
	assert_int_equal(res.files_applied, 4);
	assert_int_equal(res.rows_added[SCHEMA_KIND_1M], NELEM(want_1m) - 1);
	assert_int_equal(res.rows_added[SCHEMA_KIND_1H], NELEM(want_1h));
	assert_int_equal(count_files(f->dir, "1m-"), 2);
	assert_int_equal(count_files(f->dir, "1h-"), 2);
	assert_int_equal(is_done(f->dir, name, horizon), 1);
	assert_int_equal(is_done(f->dir, name, NULL), 0); /* without it, three are missing */
	snprintf(names[0], sizeof(names[0]), "%s", name);
	ref = reference_open(f->dir, names, 1);
	assert_rollups_match(ref, f->dir, min_ts);
	sqlite3_close(ref);

	/* a horizon exactly at a period's end skips it; one ns earlier does not */
	horizon[SCHEMA_KIND_1M] = H + HOUR;
	horizon[SCHEMA_KIND_1H] = H + HOUR - 1;
	roll(f->dir, name, horizon, &res);
	assert_int_equal(res.files_skipped, 4);
	assert_int_equal(res.files_already, 3); /* 1 Dec (1m), November and December (1h) */
	assert_int_equal(res.files_applied, 0);
}

/* Nothing to roll up: only tcp_states rows, or no rows at all. */
static void test_nothing_to_roll(void **state)
{
	struct fixture *f = *state;
	struct rollup_result res;
	char name[SCHEMA_NAME_LEN], empty[SCHEMA_NAME_LEN];
	struct partition *p = part_new(f->dir, H, 0);

	add_state(p, H + NS);
	add_state(p, H - 5 * DAY);
	part_finish(p, 1, name);
	p = part_new(f->dir, H + HOUR, 0);
	part_finish(p, 1, empty);

	assert_int_equal(is_done(f->dir, name, NULL), 1);
	roll(f->dir, name, NULL, &res);
	assert_int_equal(res.source_rows, 0);
	assert_int_equal(res.files_applied + res.files_already + res.files_skipped, 0);
	roll(f->dir, empty, NULL, &res);
	assert_int_equal(res.files_applied + res.files_already + res.files_skipped, 0);
	assert_int_equal(count_files(f->dir, "1m-") + count_files(f->dir, "1h-"), 0);
	assert_int_equal(count_leftovers(f->dir, 1), 0);
}

/* rollup_select_sql over one raw partition gives the reference aggregate
 * too, and refuses a bad bucket. */
static void test_select_sql(void **state)
{
	struct fixture *f = *state;
	char name[SCHEMA_NAME_LEN];
	sqlite3 *db = mem_open();
	sqlite3_stmt *st = NULL;
	char (*names)[SCHEMA_NAME_LEN] = &name;
	char *sql;

	assert_null(rollup_select_sql(0, ""));
	assert_null(rollup_select_sql(-60, "src."));
	assert_non_null(strstr(rollup_select_sql(60 * NS, "x."), "FROM x.flows"));
	assert_non_null(strstr(rollup_select_sql(60 * NS, NULL), "FROM flows"));

	part_random(f->dir, H, 0, 3000, 7, 2 * DAY, 1, name);
	load_raw(db, f->dir, names, 1);
	for (int k = SCHEMA_KIND_1M; k <= SCHEMA_KIND_1H; k++) {
		exec(db, "DROP TABLE IF EXISTS got");
		exec(db, "CREATE TABLE got(" ROLLUP_COLS ")");
		execf(db, "ATTACH 'file:%q?mode=ro' AS src", path_in(f->dir, name));
		sql = sqlite3_mprintf("INSERT INTO got %s", rollup_select_sql(rollup_bucket_ns(k),
									       "src."));
		assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
		sqlite3_free(sql);
		assert_int_equal(sqlite3_bind_int64(st, 1, 0), SQLITE_OK);
		assert_int_equal(sqlite3_bind_int64(st, 2, INT64_MAX), SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_DONE);
		sqlite3_finalize(st);
		exec(db, "DETACH src");
		assert_true(assert_same_aggregate(db, k, INT64_MIN) > 100);
		/* grouped: no two rows of one table share a bucket and key */
		assert_int_equal(test_sql_int(db, "SELECT count(*) FROM (SELECT 1 FROM got GROUP BY"
					       " ts, " KEY_COLS ", flows > 0 HAVING count(*) > 1)"),
				 0);
	}
	sqlite3_close(db);
}

/* ---- random partitions ------------------------------------------------------------------ */

static void roll_all(const char *dir, const struct part_set *s, struct rollup_result *total)
{
	struct rollup_result res;

	memset(total, 0, sizeof(*total));
	for (int i = 0; i < s->n; i++) {
		roll(dir, s->names[i], NULL, &res);
		total->source_rows += res.source_rows;
		total->files_applied += res.files_applied;
		total->files_already += res.files_already;
		total->files_skipped += res.files_skipped;
		for (int k = 0; k < SCHEMA_NKINDS; k++)
			total->rows_added[k] += res.rows_added[k];
	}
}

/* Rows in the tables of all k-files of dir. */
static uint64_t rollup_rows(const char *dir, enum schema_kind k)
{
	sqlite3 *db = mem_open();
	uint64_t n;

	load_rollups(db, dir, k);
	n = (uint64_t)test_sql_int(db, "SELECT count(*) FROM got");
	sqlite3_close(db);
	return n;
}

/*
 * Marks kept over many questions (as a retention run keeps them): every
 * answer is a fresh read's, and each rollup file asked about is read once:
 * a second pass over the partitions reads nothing more. A done partition
 * has every one of its targets asked; a partition not done stops at the
 * first without its mark. Kept marks do not see later rollups; cleared,
 * they are read again and do.
 */
static void test_marks_kept(void **state)
{
	struct fixture *f = *state;
	struct rollup_marks marks = { 0 };
	struct rollup_result res;
	struct part_set s;
	size_t held, targets_of_done;

	part_set_make(f->dir, 300, 7, &s);
	for (int i = 0; i < s.n; i += 2)
		roll(f->dir, s.names[i], NULL, &res);
	targets_of_done = (size_t)(count_files(f->dir, "1m-") + count_files(f->dir, "1h-"));
	for (int i = 0; i < s.n; i++)
		assert_int_equal(is_done_kept(&marks, f->dir, s.names[i]), i % 2 == 0);
	held = marks.n;
	for (int i = s.n - 1; i >= 0; i--)
		assert_int_equal(is_done_kept(&marks, f->dir, s.names[i]), i % 2 == 0);
	assert_int_equal(marks.n, held);
	assert_true(held >= targets_of_done);

	for (int i = 1; i < s.n; i += 2)
		roll(f->dir, s.names[i], NULL, &res);
	assert_true(held <= (size_t)(count_files(f->dir, "1m-") + count_files(f->dir, "1h-")));
	assert_int_equal(is_done_kept(&marks, f->dir, s.names[1]), 0); /* stale */
	rollup_marks_clear(&marks);
	assert_null(marks.files);
	for (int i = 0; i < s.n; i++)
		assert_int_equal(is_done_kept(&marks, f->dir, s.names[i]), 1);
	print_message("%d partitions, %zu rollup files read once for %d questions\n", s.n,
		      held, 2 * s.n);
	rollup_marks_clear(&marks);
}

static void test_random_partitions(void **state)
{
	struct fixture *f = *state;
	struct rollup_result total, again;
	struct part_set s;
	sqlite3 *ref;

	part_set_make(f->dir, 2000, 42, &s);
	ref = reference_open(f->dir, s.names, s.n);
	for (int i = 0; i < s.n; i++)
		assert_int_equal(is_done(f->dir, s.names[i], NULL), 0);
	roll_all(f->dir, &s, &total);
	assert_int_equal(total.files_already, 0);
	assert_true(total.files_applied >= 2 * (unsigned)s.n);
	assert_int_equal(total.rows_added[SCHEMA_KIND_1M], rollup_rows(f->dir, SCHEMA_KIND_1M));
	assert_int_equal(total.rows_added[SCHEMA_KIND_1H], rollup_rows(f->dir, SCHEMA_KIND_1H));
	assert_rollups_match(ref, f->dir, NULL);
	for (int i = 0; i < s.n; i++)
		assert_int_equal(is_done(f->dir, s.names[i], NULL), 1);
	print_message("%llu raw rows -> %llu 1m rows, %llu 1h rows, %u steps\n",
		      (unsigned long long)total.source_rows,
		      (unsigned long long)total.rows_added[SCHEMA_KIND_1M],
		      (unsigned long long)total.rows_added[SCHEMA_KIND_1H], total.files_applied);

	roll_all(f->dir, &s, &again);
	assert_int_equal(again.source_rows, total.source_rows);
	assert_int_equal(again.files_applied, 0);
	assert_int_equal(again.files_already, total.files_applied);
	assert_int_equal(again.rows_added[SCHEMA_KIND_1M] + again.rows_added[SCHEMA_KIND_1H], 0);
	assert_int_equal(rollup_rows(f->dir, SCHEMA_KIND_1M), total.rows_added[SCHEMA_KIND_1M]);
	assert_int_equal(rollup_rows(f->dir, SCHEMA_KIND_1H), total.rows_added[SCHEMA_KIND_1H]);
	assert_int_equal(count_leftovers(f->dir, 1), 0);
	sqlite3_close(ref);
}

/* ---- killed in the middle ------------------------------------------------------------------ */

static int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A copy of src's raw partitions (file and mode) in a fresh dir. */
static char *copy_dir(const char *src, const struct part_set *s)
{
	char *dst = test_mkdtemp("test_rollup_kill");
	char buf[1 << 16];

	for (int i = 0; i < s->n; i++) {
		struct stat st;
		char from[PATH_MAX];
		int in, out;
		ssize_t n;

		snprintf(from, sizeof(from), "%s", path_in(src, s->names[i]));
		in = open(from, O_RDONLY);
		assert_true(in >= 0);
		assert_int_equal(fstat(in, &st), 0);
		out = open(path_in(dst, s->names[i]), O_WRONLY | O_CREAT | O_EXCL, 0600);
		assert_true(out >= 0);
		while ((n = read(in, buf, sizeof(buf))) > 0)
			assert_int_equal(write(out, buf, (size_t)n), n);
		assert_int_equal(n, 0);
		assert_int_equal(fchmod(out, st.st_mode & 07777), 0);
		close(in);
		close(out);
	}
	return dst;
}

/* Fork a child that rolls everything up; kill it after delay_us (it may
 * be done by then). 1 if it was killed, 0 if it finished. */
static int roll_and_kill(const char *dir, const struct part_set *s, int64_t delay_us)
{
	int status = 0;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct rollup_result res;
		struct partition_meta m;

		for (int i = 0; i < s->n; i++) {
			if (partition_read_meta(path_in(dir, s->names[i]), &m) ||
			    rollup_partition(dir, s->names[i], &m, NULL, NOW, 5000, &res)) {
				fprintf(stderr, "child: %s\n", schema_last_error());
				_exit(1);
			}
		}
		_exit(0);
	}
	usleep((useconds_t)delay_us);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFEXITED(status))
		assert_int_equal(WEXITSTATUS(status), 0);
	return WIFSIGNALED(status);
}

/*
 * Rounds of: a fresh copy of the raw partitions, a child rolling them up
 * killed at random moments (seeded) a few times over, then (every other
 * round) the sweep of temporaries, then a full run in this process. Every
 * round ends with exactly the reference aggregate, every partition done,
 * and no temporary or journal left.
 */
static void test_killed(void **state)
{
	struct fixture *f = *state;
	struct rng r = { 2024 };
	struct rollup_result res;
	struct part_set s;
	int64_t full_us, t0;
	int killed = 0, torn = 0;
	sqlite3 *ref;
	char *dir;

	part_set_make(f->dir, 300, 99, &s);
	ref = reference_open(f->dir, s.names, s.n);
	t0 = mono_us();
	roll_all(f->dir, &s, &res); /* the reference run, and how long one takes */
	full_us = mono_us() - t0;
	assert_rollups_match(ref, f->dir, NULL);

	for (int round = 0; round < 6; round++) {
		dir = copy_dir(f->dir, &s);
		for (int k = 0; k < 3; k++) {
			killed += roll_and_kill(dir, &s, (int64_t)rng_below(&r, (uint64_t)full_us + 1));
			torn += count_leftovers(dir, 0) > 0;
		}
		if (round % 2 == 0) { /* as retention does: sweep, then roll up */
			assert_int_equal(catalog_remove_temps(dir, NULL), 0);
			assert_int_equal(count_temps(dir), 0);
		}
		roll_all(dir, &s, &res);
		assert_rollups_match(ref, dir, NULL);
		for (int i = 0; i < s.n; i++)
			assert_int_equal(is_done(dir, s.names[i], NULL), 1);
		assert_int_equal(count_leftovers(dir, 1), 0);
		test_rmtree(dir);
		free(dir);
	}
	sqlite3_close(ref);
	print_message("%d of 18 children killed mid-run, %d leaving a temporary or a journal"
		      " (a full run: %lld us)\n", killed, torn, (long long)full_us);
	assert_true(killed > 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

/* An argument runs only the tests matching it (cmocka's pattern). */
int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		T(test_known_answers),
		T(test_known_answers_unsealed),
		T(test_twice),
		T(test_done_needs_every_target),
		T(test_horizon),
		T(test_nothing_to_roll),
		T(test_select_sql),
		T(test_marks_kept),
		T(test_random_partitions),
		T(test_killed),
	};

	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	schema_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
