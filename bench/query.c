/*
 * bench/query: the spanning tables (query/span.h) against one merged file.
 *
 * Data (generated once into DIR, reused while DIR/complete matches the
 * arguments): --rows flows over --partitions sealed hourly partitions
 * written through the schema API (DIR/parts), and the same rows in one
 * SQLite file with the same tables and indexes, built after loading and
 * ANALYZEd, i.e. sealed the same way (DIR/merged). A few thousand hosts
 * (200 local, the rest remote, some IPv6), Zipf-distributed talkers, ports
 * and bytes heavy-tailed, 2% late rows.
 *
 * Queries, each timed --reps times on a warm cache (one untimed run first;
 * the span tables through the sandbox connection of query/sandbox.h):
 *   needle      SELECT * FROM flows WHERE ts BETWEEN ? AND ?
 *               AND (orig_addr = ? OR resp_addr = ?)  -- one hour, one host
 *               (hour and host vary per rep; 10 x reps); and the same with
 *               ts >= ? AND ts <= ? (see qdefs)
 *   top10       top talkers over one day (GROUP BY orig_addr)
 *   count       SELECT count(*) FROM flows
 *   scan        SELECT count(*), sum(orig_bytes) FROM flows
 * then the needle's p99 with 50, 250 and all partitions of history in the
 * dir (hard links to the newest files), and what listing the dir costs.
 *
 * usage: bench_query --dir DIR [--rows 50000000] [--partitions 500] [--reps 10]
 *        [--seed N] [--only needle,needle_ge,top10,count,scan,history]
 *        [--hosts popular|uniform] [--span-only] [--no-ahead]
 * --only runs the named queries (and/or the history section) alone; --hosts
 * uniform draws the needle's host uniformly instead of by popularity;
 * --span-only skips the merged file (for iterating: no ratios); --no-ahead
 * turns the span tables' read-ahead threads off (span_tune_ahead).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "sandbox.h"
#include "schema.h"
#include "span.h"

#define NS 1000000000LL
#define HOUR (3600 * NS)
#define T_END (1795737600LL * NS) /* 2026-11-27T00:00:00Z: the newest period ends here */
#define NHOSTS 3000
#define NLOCAL 200
#define TXN_ROWS 20000

struct opts {
	const char *dir;
	int64_t rows;
	int parts;
	int reps;
	uint64_t seed;
	unsigned only;   /* bit per enum qkind, and ONLY_HISTORY; 0: everything */
	int uniform;     /* needle hosts drawn uniformly, not by popularity */
	int span_only;   /* no merged runs (while iterating) */
	int no_ahead;    /* span_tune_ahead(UINT64_MAX): no read-ahead threads */
};

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what, const char *why)
{
	fprintf(stderr, "bench_query: %s: %s\n", what, why);
	exit(1);
}

/* ---- the data --------------------------------------------------------------- */

struct rng {
	uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double unit(struct rng *r)
{
	return (double)(rnd(r) >> 11) / 9007199254740992.0;
}

static char hosts[NHOSTS][SCHEMA_ADDR_LEN];
static double zipf_local[NLOCAL], zipf_remote[NHOSTS - NLOCAL]; /* cumulative */

static void zipf_init(double *cum, int n)
{
	double total = 0;

	for (int i = 0; i < n; i++)
		cum[i] = total += 1.0 / pow(i + 1, 1.1);
	for (int i = 0; i < n; i++)
		cum[i] /= total;
}

static int zipf_pick(struct rng *r, const double *cum, int n)
{
	double u = unit(r);
	int lo = 0, hi = n - 1;

	while (lo < hi) {
		int mid = (lo + hi) / 2;

		if (cum[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void hosts_init(uint64_t seed)
{
	struct rng r = { seed ^ 0x5eed };

	for (int i = 0; i < NHOSTS; i++) {
		if (i < NLOCAL)
			snprintf(hosts[i], sizeof(hosts[i]), "10.0.%d.%d", i / 250, 1 + i % 250);
		else if (rnd(&r) % 100 < 15)
			snprintf(hosts[i], sizeof(hosts[i]), "2001:db8:%x::%x",
				 (unsigned)(rnd(&r) % 4096), (unsigned)(rnd(&r) % 65536));
		else
			snprintf(hosts[i], sizeof(hosts[i]), "%u.%u.%u.%u",
				 (unsigned)(11 + rnd(&r) % 200), (unsigned)(rnd(&r) % 256),
				 (unsigned)(rnd(&r) % 256), (unsigned)(1 + rnd(&r) % 254));
	}
	zipf_init(zipf_local, NLOCAL);
	zipf_init(zipf_remote, NHOSTS - NLOCAL);
}

static int local_host(struct rng *r)
{
	return zipf_pick(r, zipf_local, NLOCAL);
}

static int remote_host(struct rng *r)
{
	return NLOCAL + zipf_pick(r, zipf_remote, NHOSTS - NLOCAL);
}

static int resp_port(struct rng *r)
{
	static const int common[] = { 443, 443, 443, 443, 443, 80, 53, 53, 123, 22 };
	uint64_t x = rnd(r) % 100;

	return x < 80 ? common[x % 10] : 1024 + (int)(rnd(r) % 64000);
}

/* Bytes: Pareto-ish, most flows small, a few huge. */
static int64_t heavy_bytes(struct rng *r)
{
	return (int64_t)(60.0 / pow(1.0 - unit(r) * 0.999999, 1.2));
}

/* Row k of n in the partition starting at start. */
static void make_flow(struct rng *r, int64_t start, int64_t k, int64_t n, struct flow_row *f)
{
	int out = rnd(r) % 100 < 70, tcp = rnd(r) % 100 < 70;
	int a = out ? local_host(r) : remote_host(r), b = out ? remote_host(r) : local_host(r);

	memset(f, 0, sizeof(*f));
	if (rnd(r) % 100 < 2) /* late: its period was sealed already */
		f->ts = start - 1 - (int64_t)(rnd(r) % (uint64_t)HOUR);
	else
		f->ts = start + k * HOUR / n - (int64_t)(rnd(r) % (uint64_t)(30 * NS));
	if (f->ts < start - HOUR)
		f->ts = start - HOUR;
	f->ts_end = f->ts + (int64_t)(rnd(r) % (uint64_t)(120 * NS));
	snprintf(f->proto, sizeof(f->proto), "%s", tcp ? "tcp" : rnd(r) % 20 ? "udp" : "icmp");
	memcpy(f->orig_addr, hosts[a], sizeof(f->orig_addr));
	memcpy(f->resp_addr, hosts[b], sizeof(f->resp_addr));
	f->orig_port = (uint16_t)(32768 + rnd(r) % 28000);
	f->resp_port = (uint16_t)resp_port(r);
	f->orig_bytes = heavy_bytes(r);
	f->resp_bytes = heavy_bytes(r) * 4;
	f->orig_pkts = 1 + f->orig_bytes / 1200;
	f->resp_pkts = 1 + f->resp_bytes / 1200;
	snprintf(f->conn_state, sizeof(f->conn_state), "%s", tcp ? "SF" : "S0");
	snprintf(f->history, sizeof(f->history), "%s", tcp ? "ShADadFf" : "D");
	snprintf(f->ifname, sizeof(f->ifname), "eth0");
	snprintf(f->end_reason, sizeof(f->end_reason), "%s", tcp ? "fin" : "idle_timeout");
	if (out && tcp) {
		f->pid = 1000 + (uint32_t)(rnd(r) % 50);
		snprintf(f->comm, sizeof(f->comm), "proc%u", f->pid % 50);
		f->sock_cookie = (int64_t)(rnd(r) >> 2);
	}
}

static int64_t part_rows(const struct opts *o, int i)
{
	int64_t n = o->rows / o->parts;

	return i == o->parts - 1 ? o->rows - n * (o->parts - 1) : n;
}

static int64_t part_start(const struct opts *o, int i)
{
	return T_END - (int64_t)(o->parts - i) * HOUR;
}

/* Partition i's rows, the same for both writers (seeded by i). */
static void write_rows(const struct opts *o, int i, struct partition *p)
{
	struct rng r = { o->seed * 1000003 + (uint64_t)i };
	int64_t n = part_rows(o, i), start = part_start(o, i);
	struct schema_row row = { .table = SCHEMA_FLOWS };

	for (int64_t k = 0; k < n;) {
		if (partition_begin(p))
			die("begin", schema_last_error());
		for (int64_t end = k + TXN_ROWS; k < n && k < end; k++) {
			make_flow(&r, start, k, n, &row.flow);
			if (partition_add(p, &row))
				die("add", schema_last_error());
		}
		if (partition_commit(p))
			die("commit", schema_last_error());
	}
}

struct gen {
	const struct opts *o;
	char dir[PATH_MAX];
	double seconds;
};

static void *gen_parts(void *arg)
{
	struct gen *g = arg;
	double t0 = now_s();

	for (int i = 0; i < g->o->parts; i++) {
		struct partition *p = NULL;
		char path[PATH_MAX];
		int64_t start = part_start(g->o, i);

		if (partition_create(g->dir, start, HOUR, 0, start, &p))
			die("create", schema_last_error());
		write_rows(g->o, i, p);
		snprintf(path, sizeof(path), "%s", partition_path(p));
		partition_close(p);
		if (partition_seal(path, start + HOUR, NULL))
			die("seal", schema_last_error());
	}
	g->seconds = now_s() - t0;
	return NULL;
}

static void *gen_merged(void *arg)
{
	struct gen *g = arg;
	struct partition *p = NULL;
	char path[PATH_MAX];
	int64_t start = part_start(g->o, 0) - HOUR;
	double t0 = now_s();

	if (partition_create(g->dir, start, (int64_t)(g->o->parts + 2) * HOUR, 0, start, &p))
		die("create merged", schema_last_error());
	for (int i = 0; i < g->o->parts; i++)
		write_rows(g->o, i, p);
	snprintf(path, sizeof(path), "%s", partition_path(p));
	partition_close(p);
	/* the indexes built after loading, ANALYZE: what sealing does */
	if (partition_seal(path, T_END, NULL))
		die("seal merged", schema_last_error());
	g->seconds = now_s() - t0;
	return NULL;
}

static void sub(char *buf, size_t len, const char *dir, const char *name)
{
	if ((size_t)snprintf(buf, len, "%s/%s", dir, name) >= len)
		die(dir, "path too long");
}

static void run_cmd(const char *fmt, const char *arg)
{
	char cmd[PATH_MAX * 2];

	snprintf(cmd, sizeof(cmd), fmt, arg);
	if (system(cmd))
		die("command failed", cmd);
}

/* Generate the data unless DIR/complete says it is there with these
 * arguments. */
static void ensure_data(const struct opts *o)
{
	char marker[PATH_MAX], want[128], have[128] = "";
	struct gen parts = { .o = o }, merged = { .o = o };
	pthread_t a, b;
	FILE *fp;
	double t0 = now_s();

	snprintf(want, sizeof(want), "rows=%" PRId64 " partitions=%d seed=%" PRIu64 "\n", o->rows,
		 o->parts, o->seed);
	sub(marker, sizeof(marker), o->dir, "complete");
	fp = fopen(marker, "r");
	if (fp) {
		if (!fgets(have, sizeof(have), fp))
			have[0] = 0;
		fclose(fp);
	}
	if (strcmp(have, want) == 0) {
		printf("data: reusing %s (%.*s)\n", o->dir, (int)strlen(want) - 1, want);
		return;
	}
	printf("data: generating %" PRId64 " flows in %d partitions and a merged file in %s ...\n",
	       o->rows, o->parts, o->dir);
	fflush(stdout);
	unlink(marker);
	mkdir(o->dir, 0755);
	sub(parts.dir, sizeof(parts.dir), o->dir, "parts");
	sub(merged.dir, sizeof(merged.dir), o->dir, "merged");
	run_cmd("rm -rf '%s'", parts.dir);
	run_cmd("rm -rf '%s'", merged.dir);
	if (mkdir(parts.dir, 0755) || mkdir(merged.dir, 0755))
		die(o->dir, strerror(errno));
	if (pthread_create(&a, NULL, gen_parts, &parts))
		die("pthread_create", strerror(errno));
	if (pthread_create(&b, NULL, gen_merged, &merged))
		die("pthread_create", strerror(errno));
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	fp = fopen(marker, "w");
	if (!fp || fputs(want, fp) < 0 || fclose(fp))
		die(marker, strerror(errno));
	printf("data: generated in %.0f s (partitions written and sealed: %.0f s; merged file"
	       " written, indexed, analyzed: %.0f s; in parallel)\n", now_s() - t0, parts.seconds,
	       merged.seconds);
}

/* ---- connections and timing ---------------------------------------------------- */

struct conn {
	sqlite3 *db;
	struct sandbox *sb;    /* span side: queries go through the sandbox */
	struct span_set *set;
};

static void conn_span(struct conn *c, const char *dir)
{
	char err[256];
	int rc;

	memset(c, 0, sizeof(*c));
	if ((rc = span_set_open(dir, &c->set)))
		die(dir, strerror(-rc));
	if (sandbox_open(NULL, &c->sb, err, sizeof(err)))
		die("sandbox_open", err);
	c->db = sandbox_db(c->sb);
	if (span_register(c->db, c->set, sandbox_interrupted, c->sb) != SQLITE_OK)
		die("span_register", sqlite3_errmsg(c->db));
}

static void conn_merged(struct conn *c, const char *dir)
{
	char path[PATH_MAX];
	struct catalog cat;

	memset(c, 0, sizeof(*c));
	if (catalog_scan(dir, &cat) || cat.n != 1)
		die(dir, "no merged file");
	sub(path, sizeof(path), dir, cat.entries[0].name);
	catalog_free(&cat);
	if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		die(path, sqlite3_errmsg(c->db));
}

static void conn_close(struct conn *c)
{
	if (c->sb)
		sandbox_close(c->sb);
	else
		sqlite3_close(c->db);
	span_set_free(c->set);
}

static sqlite3_stmt *conn_prepare(struct conn *c, const char *sql)
{
	sqlite3_stmt *st = NULL;
	char err[256];

	if (c->sb) {
		int64_t deadline = (int64_t)(now_s() * 1e9) + 3600 * NS;

		if (sandbox_prepare(c->sb, sql, strlen(sql), deadline, &st, err, sizeof(err)) != QERR_NONE)
			die(sql, err);
	} else if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
		die(sql, sqlite3_errmsg(c->db));
	}
	return st;
}

struct params {
	int64_t lo, hi;
	const char *addr;
};

/* Run sql once with p bound (?1 ?2 ints, ?3 ?4 the address); seconds. */
static double run_once(struct conn *c, const char *sql, const struct params *p, int64_t *rows)
{
	sqlite3_stmt *st = conn_prepare(c, sql);
	int n = sqlite3_bind_parameter_count(st), rc;
	double t0 = now_s();

	if (n >= 2) {
		sqlite3_bind_int64(st, 1, p->lo);
		sqlite3_bind_int64(st, 2, p->hi);
	}
	for (int i = 3; i <= n; i++)
		sqlite3_bind_text(st, i, p->addr, -1, SQLITE_STATIC);
	*rows = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		++*rows;
	if (rc != SQLITE_DONE)
		die(sql, sqlite3_errmsg(c->db));
	sqlite3_finalize(st);
	return now_s() - t0;
}

static int dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct stat2 {
	double p50, p99;
	int64_t rows; /* of the last run */
};

static struct stat2 quantiles(double *t, int n, int64_t rows)
{
	struct stat2 s;

	qsort(t, (size_t)n, sizeof(*t), dbl_cmp);
	s.p50 = t[n / 2];
	s.p99 = t[(int)ceil(0.99 * n) - 1];
	s.rows = rows;
	return s;
}

/* The needle's rep i: an hour among the newest `hours`, a host. */
static void needle_params(const struct opts *o, int i, int hours, struct params *p)
{
	struct rng r = { o->seed + 77 + (uint64_t)i };
	int h = o->parts - 1 - (int)(rnd(&r) % (uint64_t)hours);

	p->lo = part_start(o, h) + (int64_t)(rnd(&r) % (uint64_t)HOUR);
	p->hi = p->lo + HOUR;
	/* a remote host, drawn with the traffic's own popularity: most needles
	 * are found (a few rows), some are heavy hitters (~15k rows that hour);
	 * --hosts uniform: any remote host alike (mostly rare ones) */
	p->addr = o->uniform ? hosts[NLOCAL + (int)(rnd(&r) % (NHOSTS - NLOCAL))]
			     : hosts[remote_host(&r)];
}

static void day_params(const struct opts *o, int i, struct params *p)
{
	struct rng r = { o->seed + 99 + (uint64_t)i };
	int days = o->parts / 24 > 1 ? o->parts / 24 : 1;

	p->hi = T_END - (int64_t)(rnd(&r) % (uint64_t)days) * 24 * HOUR;
	p->lo = p->hi - 24 * HOUR;
	p->addr = NULL;
}

enum qkind { Q_NEEDLE, Q_NEEDLE_GE, Q_TOP10, Q_COUNT, Q_SCAN, NQ };

/* --only names, by enum qkind; then the history section */
static const char *const qnames[NQ + 1] = { "needle", "needle_ge", "top10", "count", "scan",
					     "history" };
#define ONLY_HISTORY (1u << NQ)

static int wanted(const struct opts *o, unsigned bit)
{
	return !o->only || (o->only & bit);
}

static const struct qdef {
	const char *name;
	const char *sql;
} qdefs[NQ] = {
	[Q_NEEDLE] = { "needle (1 host, 1 hour)",
		"SELECT * FROM flows WHERE ts BETWEEN ?1 AND ?2 AND (orig_addr = ?3 OR resp_addr = ?4)" },
	/* the same with >= and <=: SQLite 3.40 does not copy a BETWEEN into the
	 * branches of an OR plan (its two halves are virtual terms), but does
	 * copy these, so each branch's xFilter gets the time range */
	[Q_NEEDLE_GE] = { "needle, ts >= ? AND ts <= ?",
		"SELECT * FROM flows WHERE ts >= ?1 AND ts <= ?2 AND (orig_addr = ?3 OR resp_addr = ?4)" },
	[Q_TOP10] = { "top-10 talkers, 1 day",
		"SELECT orig_addr, sum(orig_bytes + resp_bytes) b FROM flows WHERE ts >= ?1 AND ts < ?2"
		" GROUP BY 1 ORDER BY b DESC LIMIT 10" },
	[Q_COUNT] = { "SELECT count(*)", "SELECT count(*) FROM flows" },
	[Q_SCAN] = { "count(*), sum(orig_bytes)", "SELECT count(*), sum(orig_bytes) FROM flows" },
};

static int reps_of(const struct opts *o, enum qkind q)
{
	return q == Q_NEEDLE || q == Q_NEEDLE_GE ? 10 * o->reps : o->reps;
}

static void params_of(const struct opts *o, enum qkind q, int i, int hours, struct params *p)
{
	memset(p, 0, sizeof(*p));
	if (q == Q_NEEDLE || q == Q_NEEDLE_GE)
		needle_params(o, i, hours, p);
	else if (q == Q_TOP10)
		day_params(o, i, p);
}

/* Time query q on each of the n connections: one untimed run each (warms
 * the cache), then the reps, taking turns so that both see the same
 * background load. */
static void measure_on(const struct opts *o, struct conn **cs, int n, enum qkind q, int hours,
		       struct stat2 *out)
{
	int reps = reps_of(o, q);
	double *t = calloc((size_t)(reps * n), sizeof(*t));
	int64_t rows[2] = { 0, 0 };
	struct params p;

	if (!t || n > 2)
		die("measure", strerror(ENOMEM));
	params_of(o, q, 0, hours, &p);
	for (int k = 0; k < n; k++)
		run_once(cs[k], qdefs[q].sql, &p, &rows[k]);
	int64_t total[2] = { 0, 0 };

	for (int i = 0; i < reps; i++) {
		params_of(o, q, i, hours, &p);
		for (int k = 0; k < n; k++) {
			t[k * reps + i] = run_once(cs[k], qdefs[q].sql, &p, &rows[k]);
			total[k] += rows[k];
		}
	}
	/* rows: the mean over the reps (the same queries on each side) */
	for (int k = 0; k < n; k++)
		out[k] = quantiles(t + k * reps, reps, (total[k] + reps / 2) / reps);
	free(t);
}

/* Time query q: one untimed run (warms the cache), then the reps. */
static struct stat2 measure(const struct opts *o, struct conn *c, enum qkind q, int hours)
{
	struct conn *cs[1] = { c };
	struct stat2 s[1];

	measure_on(o, cs, 1, q, hours, s);
	return s[0];
}

static void print_plan(struct conn *c, const char *label, const char *sql)
{
	char eqp[1024];
	sqlite3_stmt *st;

	snprintf(eqp, sizeof(eqp), "EXPLAIN QUERY PLAN %s", sql);
	st = NULL;
	if (sqlite3_prepare_v2(c->db, eqp, -1, &st, NULL) != SQLITE_OK)
		return; /* the sandbox refuses EXPLAIN: fine */
	printf("  plan %-7s", label);
	while (sqlite3_step(st) == SQLITE_ROW)
		printf(" | %s", sqlite3_column_text(st, 3));
	printf("\n");
	sqlite3_finalize(st);
}

/* ---- history sizes ---------------------------------------------------------------- */

/* DIR/histN: hard links to the newest n partitions. */
static void make_history(const char *parts, const char *hdir, int n)
{
	struct catalog cat;

	run_cmd("rm -rf '%s'", hdir);
	if (mkdir(hdir, 0755) || catalog_scan(parts, &cat))
		die(hdir, "cannot make");
	for (size_t i = cat.n > (size_t)n ? cat.n - (size_t)n : 0; i < cat.n; i++) {
		char from[PATH_MAX], to[PATH_MAX];

		sub(from, sizeof(from), parts, cat.entries[i].name);
		sub(to, sizeof(to), hdir, cat.entries[i].name);
		if (link(from, to))
			die(to, strerror(errno));
	}
	catalog_free(&cat);
}

static void needle_p99_with(const struct opts *o, const char *parts, int n, double *first,
			    double p99[2])
{
	char hdir[PATH_MAX], name[32];
	struct params p;
	struct conn c;
	int64_t rows;

	snprintf(name, sizeof(name), "hist%d", n);
	sub(hdir, sizeof(hdir), o->dir, name);
	make_history(parts, hdir, n);
	conn_span(&c, hdir);
	params_of(o, Q_NEEDLE, 0, 50, &p);
	*first = run_once(&c, qdefs[Q_NEEDLE].sql, &p, &rows); /* lists the dir: cold set */
	p99[0] = measure(o, &c, Q_NEEDLE, 50).p99;
	p99[1] = measure(o, &c, Q_NEEDLE_GE, 50).p99;
	conn_close(&c);
	run_cmd("rm -rf '%s'", hdir);
}

/* ---- main ---------------------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr, "usage: bench_query --dir DIR [--rows 50000000] [--partitions 500]"
		" [--reps 10] [--seed N]\n"
		"         [--only needle,needle_ge,top10,count,scan,history]"
		" [--hosts popular|uniform] [--span-only] [--no-ahead]\n");
	exit(2);
}

static unsigned parse_only(const char *v)
{
	unsigned bits = 0;

	while (*v) {
		size_t n = strcspn(v, ",");
		int q;

		for (q = 0; q <= NQ; q++)
			if (strlen(qnames[q]) == n && strncmp(v, qnames[q], n) == 0)
				break;
		if (q > NQ)
			usage();
		bits |= 1u << q;
		v += n + (v[n] == ',');
	}
	return bits;
}

static void parse(int argc, char **argv, struct opts *o)
{
	*o = (struct opts){ NULL, 50000000, 500, 10, 1, 0, 0, 0, 0 };
	for (int i = 1; i < argc; i += 2) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(argv[i], "--span-only") == 0 || strcmp(argv[i], "--no-ahead") == 0) {
			*(argv[i][2] == 's' ? &o->span_only : &o->no_ahead) = 1;
			i--;
			continue;
		}
		if (!v)
			usage();
		if (strcmp(argv[i], "--dir") == 0)
			o->dir = v;
		else if (strcmp(argv[i], "--rows") == 0)
			o->rows = strtoll(v, NULL, 0);
		else if (strcmp(argv[i], "--partitions") == 0)
			o->parts = atoi(v);
		else if (strcmp(argv[i], "--reps") == 0)
			o->reps = atoi(v);
		else if (strcmp(argv[i], "--seed") == 0)
			o->seed = strtoull(v, NULL, 0);
		else if (strcmp(argv[i], "--only") == 0)
			o->only = parse_only(v);
		else if (strcmp(argv[i], "--hosts") == 0 && (!strcmp(v, "popular") || !strcmp(v, "uniform")))
			o->uniform = strcmp(v, "uniform") == 0;
		else
			usage();
	}
	if (!o->dir || o->rows < o->parts || o->parts < 1 || o->reps < 1)
		usage();
}

static void print_row(const char *name, struct stat2 s, struct stat2 m)
{
	printf("%-28s %9.2f %9.2f   %9.2f %9.2f   %6.2fx %6.2fx   %10" PRId64 "\n", name,
	       s.p50 * 1e3, s.p99 * 1e3, m.p50 * 1e3, m.p99 * 1e3, s.p50 / m.p50, s.p99 / m.p99,
	       s.rows);
}

static void print_span_plans(struct span_set *set)
{
	struct conn plain = { .set = set };

	/* a plain connection on the same set: the sandbox refuses EXPLAIN */
	if (sqlite3_open(":memory:", &plain.db) != SQLITE_OK ||
	    span_register(plain.db, set, NULL, NULL) != SQLITE_OK)
		die("span_register", sqlite3_errmsg(plain.db));
	for (int q = 0; q < NQ; q++)
		print_plan(&plain, "span", qdefs[q].sql);
	sqlite3_close(plain.db);
}

static void print_counters(const struct opts *o, enum qkind q, const struct span_counters *c)
{
	double runs = reps_of(o, q) + 1;

	printf("  span %-28s per run: %6.1f partitions read, %5.1f counted from metadata,"
	       " %5.1f pruned, %5.1f files opened, %10.0f rows read\n", qdefs[q].name,
	       (double)c->partitions_opened / runs, (double)c->partitions_counted / runs,
	       (double)c->partitions_pruned / runs, (double)c->files_opened / runs,
	       (double)c->rows_read / runs);
}

/* Every query on both, reps interleaved; then the table. */
static void compare(const struct opts *o, const char *parts, const char *mdir)
{
	struct stat2 res[NQ][2];
	struct span_counters cnt;
	struct conn span, merged;
	struct conn *cs[2] = { &span, &merged };
	int n = o->span_only ? 1 : 2;

	conn_span(&span, parts);
	if (!o->span_only)
		conn_merged(&merged, mdir);
	print_span_plans(span.set);
	if (!o->span_only)
		print_plan(&merged, "merged", qdefs[Q_NEEDLE].sql);
	for (int q = 0; q < NQ; q++) {
		if (!wanted(o, 1u << q))
			continue;
		span_counters_reset(span.db);
		measure_on(o, cs, n, (enum qkind)q, o->parts, res[q]);
		span_counters_get(span.db, &cnt);
		print_counters(o, (enum qkind)q, &cnt);
		fflush(stdout);
	}
	conn_close(&span);
	if (!o->span_only)
		conn_close(&merged);
	printf("\n%-28s %9s %9s   %9s %9s   %7s %7s   %10s\n", "query", "span p50", "p99",
	       "merged p50", "p99", "p50", "p99", "rows");
	for (int q = 0; q < NQ; q++) {
		if (!wanted(o, 1u << q))
			continue;
		if (o->span_only)
			printf("%-28s %9.2f %9.2f   %9s %9s   %7s %7s   %10" PRId64 "\n", qdefs[q].name,
			       res[q][0].p50 * 1e3, res[q][0].p99 * 1e3, "-", "-", "-", "-",
			       res[q][0].rows);
		else
			print_row(qdefs[q].name, res[q][0], res[q][1]);
	}
}

int main(int argc, char **argv)
{
	char parts[PATH_MAX], mdir[PATH_MAX];
	struct opts o;
	int hist[3];

	parse(argc, argv, &o);
	if (o.no_ahead)
		span_tune_ahead(UINT64_MAX);
	if (schema_init())
		die("schema_init", "failed");
	hosts_init(o.seed);
	ensure_data(&o);
	sub(parts, sizeof(parts), o.dir, "parts");
	sub(mdir, sizeof(mdir), o.dir, "merged");

	printf("\ntimes in ms; warm cache (one untimed run of each query first); needle %d reps,"
	       " others %d, %s; span tables through the sandbox connection; needle hosts"
	       " drawn %s%s\n", reps_of(&o, Q_NEEDLE), o.reps,
	       o.span_only ? "span only" : "span and merged taking turns",
	       o.uniform ? "uniformly" : "by traffic popularity",
	       o.no_ahead ? "; read-ahead off" : "");
	if (o.only != ONLY_HISTORY)
		compare(&o, parts, mdir);
	if (!wanted(&o, ONLY_HISTORY))
		return 0;

	hist[0] = o.parts < 50 ? o.parts : 50;
	hist[1] = o.parts < 250 ? o.parts : 250;
	hist[2] = o.parts;
	printf("\nneedle p99 by history kept (hour among the newest 50; same queries):\n");
	for (int i = 0; i < 3; i++) {
		double p99[2], first;

		needle_p99_with(&o, parts, hist[i], &first, p99);
		printf("  %4d partitions: p99 %7.2f ms BETWEEN, %7.2f ms >= AND <= (first query on a"
		       " fresh set, reading every file's metadata: %.1f ms)\n", hist[i], p99[0] * 1e3,
		       p99[1] * 1e3, first * 1e3);
	}
	return 0;
}
