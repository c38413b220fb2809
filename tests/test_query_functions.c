/*
 * Unit tests of query/functions.c: the SQL helpers (ago, now_ns, dur,
 * ts_iso, ts_ns, ts_sec, cidr_match, ip_family) and the shared parsers.
 *
 * Table-driven; each case runs as SQL on a plain in-memory connection with
 * the helpers registered, the way a query uses them. Calendar conversions
 * are checked against libc's timegm/gmtime_r (UTC, no leap seconds) over
 * the whole range an int64 of ns covers. The clock is a fake that counts
 * its readings, to check "once per statement".
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "functions.h"

#define NS 1000000000LL
#define X16 "xxxxxxxxxxxxxxxx"
#define X64 X16 X16 X16 X16
#define X80 X64 X16
#define T_NOW (1795809600LL * NS) /* 2026-11-27T20:00:00Z */

/* ---- helpers ----------------------------------------------------------------- */

static int64_t fake_now = T_NOW;
static int clock_reads;

static int64_t fake_clock(void)
{
	clock_reads++;
	return fake_now + clock_reads - 1; /* every reading differs */
}

struct result {
	int type;       /* SQLITE_INTEGER ... or 0 on error */
	int64_t i;
	double d;
	char text[256];
	char error[256];
};

static int setup(void **state)
{
	sqlite3 *db;

	qfunc_set_clock(fake_clock);
	if (sqlite3_open(":memory:", &db) != SQLITE_OK || qfunc_register(db) != SQLITE_OK)
		return -1;
	*state = db;
	return 0;
}

static int teardown(void **state)
{
	sqlite3_close(*state);
	qfunc_set_clock(NULL);
	return 0;
}

/* The first column of the first row of sql. */
static void eval(sqlite3 *db, const char *sql, struct result *r)
{
	sqlite3_stmt *st;
	int rc;

	memset(r, 0, sizeof(*r));
	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		snprintf(r->error, sizeof(r->error), "%s", sqlite3_errmsg(db));
		return;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		r->type = sqlite3_column_type(st, 0);
		r->i = sqlite3_column_int64(st, 0);
		r->d = sqlite3_column_double(st, 0);
		snprintf(r->text, sizeof(r->text), "%s",
			 sqlite3_column_text(st, 0) ? (const char *)sqlite3_column_text(st, 0) : "");
	} else {
		snprintf(r->error, sizeof(r->error), "%s", sqlite3_errmsg(db));
	}
	sqlite3_finalize(st);
}

static void evalf(sqlite3 *db, struct result *r, const char *fmt, ...)
{
	char sql[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	eval(db, sql, r);
}

static void expect_int(sqlite3 *db, const char *sql, int64_t want)
{
	struct result r;

	eval(db, sql, &r);
	if (r.type != SQLITE_INTEGER || r.i != want)
		fail_msg("%s: want %" PRId64 ", got type %d value %" PRId64 " error '%s'", sql, want,
			 r.type, r.i, r.error);
}

static void expect_null(sqlite3 *db, const char *sql)
{
	struct result r;

	eval(db, sql, &r);
	if (r.type != SQLITE_NULL)
		fail_msg("%s: want NULL, got type %d '%s' error '%s'", sql, r.type, r.text, r.error);
}

static void expect_error(sqlite3 *db, const char *sql, const char *want)
{
	struct result r;

	eval(db, sql, &r);
	if (r.type != 0 || strcmp(r.error, want) != 0)
		fail_msg("%s: want error '%s', got type %d '%s' error '%s'", sql, want, r.type, r.text,
			 r.error);
}

/* ---- durations --------------------------------------------------------------- */

static void test_dur(void **state)
{
	static const struct {
		const char *text;
		int64_t ns;
	} ok[] = {
		{ "15m", 15 * 60 * NS }, { "1h30m", 5400 * NS }, { "1h 30m", 5400 * NS },
		{ "1.5h", 5400 * NS }, { ".5s", NS / 2 }, { "1.000000001s", NS + 1 },
		{ "250ms", 250000000 }, { "10us", 10000 }, { "10\xC2\xB5s", 10000 },
		{ "1ns", 1 }, { "2d", 2 * 86400 * NS }, { "1w", 7 * 86400 * NS },
		{ "-15m", -15 * 60 * NS }, { "+1s", NS }, { "0", 0 }, { "0s", 0 },
		{ "1h1m1s1ms1us1ns", 3661 * NS + 1001001 },
		{ "9223372036854775807ns", INT64_MAX }, { "106751d", 106751LL * 86400 * NS },
	};
	static const struct {
		const char *text, *why;
	} bad[] = {
		{ "x", "expected a number and a unit such as 15m" },
		{ "15", "expected a number and a unit such as 15m" },
		{ "", "expected a number and a unit such as 15m" },
		{ "h", "expected a number and a unit such as 15m" },
		{ "1h30", "expected a number and a unit such as 15m" },
		{ "15M", "unknown unit: use ns, us, ms, s, m, h, d or w" },
		{ "3y", "unknown unit: use ns, us, ms, s, m, h, d or w" },
		{ "9223372036854775808ns", "out of range (more than 292 years)" },
		{ "106752d", "out of range (more than 292 years)" },
		{ "106751d 1d", "out of range (more than 292 years)" },
		{ "99999999999999999999h", "out of range (more than 292 years)" },
	};
	sqlite3 *db = *state;
	char sql[256], want[256];
	int64_t ns;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(sql, sizeof(sql), "SELECT dur('%s')", ok[i].text);
		expect_int(db, sql, ok[i].ns);
		assert_int_equal(qfunc_parse_duration(ok[i].text, &ns), 0);
		assert_int_equal(ns, ok[i].ns);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(sql, sizeof(sql), "SELECT dur('%s')", bad[i].text);
		snprintf(want, sizeof(want), "dur: bad duration '%s': %s", bad[i].text, bad[i].why);
		expect_error(db, sql, want);
		assert_int_equal(qfunc_parse_duration(bad[i].text, &ns),
				 strstr(bad[i].why, "range") ? -ERANGE : -EINVAL);
	}
	expect_int(db, "SELECT dur(42)", 42);
	expect_null(db, "SELECT dur(NULL)");
	expect_error(db, "SELECT dur(1.5)", "dur: expected a duration such as '15m' or an integer of ns");
	/* A long bad argument is quoted, but cut. */
	expect_error(db, "SELECT dur('" X80 "')", "dur: bad duration '" X64 "': expected a number and a unit such as 15m");
}

static void test_ago_and_now(void **state)
{
	sqlite3 *db = *state;

	clock_reads = 0;
	expect_int(db, "SELECT now_ns()", T_NOW);
	clock_reads = 0;
	expect_int(db, "SELECT ago('15m')", T_NOW - 15 * 60 * NS);
	clock_reads = 0;
	expect_int(db, "SELECT ago(1000)", T_NOW - 1000);
	clock_reads = 0;
	expect_int(db, "SELECT ago('-1h')", T_NOW + 3600 * NS);
	expect_null(db, "SELECT ago(NULL)");
	/* The exact message functions.h promises. */
	expect_error(db, "SELECT ago('x')", "ago: bad duration 'x': expected a number and a unit such as 15m");
	expect_error(db, "SELECT ago(-9223372036854775807)", "ago: now minus that duration is out of range");
	expect_error(db, "SELECT ago(x'00')", "ago: expected a duration such as '15m' or an integer of ns");
}

/* Every call of one statement execution sees the same reading; the next
 * execution reads the clock again. */
static void test_clock_once_per_statement(void **state)
{
	sqlite3 *db = *state;
	sqlite3_stmt *st;
	int64_t first = 0;
	int rows = 0;

	assert_int_equal(sqlite3_prepare_v2(db,
		"SELECT now_ns(), ago('1s') + 1000000000, now_ns() + 0 "
		"FROM json_each('[1,2,3,4,5]') ORDER BY random()", -1, &st, NULL), SQLITE_OK);
	for (int run = 0; run < 2; run++) {
		clock_reads = 0;
		while (sqlite3_step(st) == SQLITE_ROW) {
			int64_t a = sqlite3_column_int64(st, 0);

			if (!rows++)
				first = a;
			assert_int_equal(a, first);
			assert_int_equal(sqlite3_column_int64(st, 1), first);
			assert_int_equal(sqlite3_column_int64(st, 2), first);
		}
		assert_int_equal(clock_reads, 1);
		assert_int_equal(sqlite3_reset(st), SQLITE_OK);
		rows = 0;
	}
	sqlite3_finalize(st);
}

/* ---- times ------------------------------------------------------------------- */

/* ts as gmtime_r + the fraction, as ts_iso must write it. */
static void reference_iso(int64_t ts, char *buf, size_t len)
{
	int64_t sec = ts / NS, frac = ts % NS;
	struct tm tm;
	time_t t;
	char date[40];

	if (frac < 0) {
		frac += NS;
		sec--;
	}
	t = (time_t)sec;
	assert_non_null(gmtime_r(&t, &tm));
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	assert_true(snprintf(buf, len, "%.39s.%09" PRId64 "Z", date, frac) < (int)len);
}

static void test_ts_iso(void **state)
{
	static const struct {
		int64_t ts;
		const char *prec, *want;
	} cases[] = {
		{ 0, NULL, "1970-01-01T00:00:00.000000000Z" },
		{ -1, NULL, "1969-12-31T23:59:59.999999999Z" },
		{ 1795825502123456789LL, NULL, "2026-11-28T00:25:02.123456789Z" },
		{ 1795825502123456789LL, "'s'", "2026-11-28T00:25:02Z" },
		{ 1795825502123456789LL, "'ms'", "2026-11-28T00:25:02.123Z" },
		{ 1795825502123456789LL, "'us'", "2026-11-28T00:25:02.123456Z" },
		{ 1795825502123456789LL, "'ns'", "2026-11-28T00:25:02.123456789Z" },
		{ -1, "'s'", "1969-12-31T23:59:59Z" },
		{ 951782400LL * NS, NULL, "2000-02-29T00:00:00.000000000Z" },
		{ INT64_MAX, NULL, "2262-04-11T23:47:16.854775807Z" },
		{ INT64_MIN, NULL, "1677-09-21T00:12:43.145224192Z" },
	};
	sqlite3 *db = *state;
	struct result r;
	char want[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (cases[i].prec)
			evalf(db, &r, "SELECT ts_iso(%" PRId64 ", %s)", cases[i].ts, cases[i].prec);
		else
			evalf(db, &r, "SELECT ts_iso(%" PRId64 ")", cases[i].ts);
		assert_string_equal(r.error, "");
		assert_string_equal(r.text, cases[i].want);
	}
	/* Against libc over the whole range, every ~13 days and some odd ns. */
	for (int64_t ts = INT64_MIN + 7; ts < INT64_MAX - 1123456789012345LL * 1000; ts += 1123456789012345LL) {
		reference_iso(ts, want, sizeof(want));
		evalf(db, &r, "SELECT ts_iso(%" PRId64 ")", ts);
		assert_string_equal(r.text, want);
	}
	expect_null(db, "SELECT ts_iso(NULL)");
	evalf(db, &r, "SELECT ts_iso(1.5e9)");
	assert_string_equal(r.text, "1970-01-01T00:00:01.500000000Z");
	expect_error(db, "SELECT ts_iso(1, 'm')", "ts_iso: bad precision 'm': expected 's', 'ms', 'us' or 'ns'");
	expect_error(db, "SELECT ts_iso('2026-01-01')", "ts_iso: ts must be an integer (ns since the epoch), not text");
	expect_error(db, "SELECT ts_iso(1e300)", "ts_iso: ts 1e+300 is out of range for ns since the epoch");
}

static int64_t reference_ns(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
			 .tm_hour = h, .tm_min = mi, .tm_sec = s };

	return (int64_t)timegm(&tm) * NS;
}

static void test_ts_ns(void **state)
{
	static const struct {
		const char *text;
		int64_t ns;
	} ok[] = {
		{ "1970-01-01", 0 },
		{ "2026-11-27T10:15:02.123456789Z", 1795774502123456789LL },
		{ "2026-11-27t10:15:02.123456789z", 1795774502123456789LL },
		{ "2026-11-27T10:15:02.5+02:00", 1795774502500000000LL - 7200 * NS },
		{ "2026-11-27T10:15:02-05:30", 1795774502LL * NS + 19800 * NS },
		{ "2026-11-27T10:15:02+0530", 1795774502LL * NS - 19800 * NS },
		{ "2026-11-27T10:15:02+05", 1795774502LL * NS - 18000 * NS },
		{ "2026-11-27T10:15:02.1234567891Z", 1795774502123456789LL }, /* past ns: cut */
		{ "2026-11-27T10:15:02,25Z", 1795774502250000000LL },
		{ "1969-12-31T23:59:59.999999999Z", -1 },
		{ "1677-09-21T00:12:43.145224192Z", INT64_MIN },
		{ "2262-04-11T23:47:16.854775807Z", INT64_MAX },
		{ "2024-02-29", 1709164800LL * NS },
		{ "2000-02-29 12:00", 951825600LL * NS },
	};
	static const struct {
		const char *text, *why;
	} bad[] = {
		{ "x", NULL },
		{ "2026-11-27Z", NULL },
		{ "2026-11-27T10", NULL },
		{ "2026-11-27T10:15:02.", NULL },
		{ "26-11-27", NULL },
		{ "2026-11-27 ", NULL },
		{ "2026-11-27T10:15:02+2:00", NULL },
		{ "2026-11-27T10:15:02 Z", NULL },
		{ "2026-13-01", "month out of range (01..12)" },
		{ "2026-00-01", "month out of range (01..12)" },
		{ "2023-02-29", "day out of range for that month" },
		{ "2100-02-29", "day out of range for that month" },
		{ "2026-04-31", "day out of range for that month" },
		{ "2026-11-27T24:00", "hour out of range (00..23)" },
		{ "2026-11-27T10:60", "minute out of range (00..59)" },
		{ "2026-11-27T23:59:60Z", "second out of range (00..59; leap seconds are not accepted)" },
		{ "2026-11-27T10:15:02+24:00", "offset out of range (-23:59 .. +23:59)" },
		{ "1677-09-21T00:12:43.145224191Z", "outside the range of ns timestamps (1677-09-21 .. 2262-04-11)" },
		{ "2262-04-11T23:47:16.854775808Z", "outside the range of ns timestamps (1677-09-21 .. 2262-04-11)" },
		{ "9999-12-31", "outside the range of ns timestamps (1677-09-21 .. 2262-04-11)" },
	};
	sqlite3 *db = *state;
	char sql[256], want[512];
	struct result r;
	int64_t ns;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(sql, sizeof(sql), "SELECT ts_ns('%s')", ok[i].text);
		expect_int(db, sql, ok[i].ns);
		assert_int_equal(qfunc_parse_time(ok[i].text, &ns), 0);
		assert_int_equal(ns, ok[i].ns);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *why = bad[i].why ? bad[i].why
			: "expected YYYY-MM-DD, optionally followed by THH:MM[:SS[.fraction]] and Z or an offset such as +02:00";

		snprintf(sql, sizeof(sql), "SELECT ts_ns('%s')", bad[i].text);
		snprintf(want, sizeof(want), "ts_ns: bad time '%s': %s", bad[i].text, why);
		expect_error(db, sql, want);
		assert_int_equal(qfunc_parse_time(bad[i].text, &ns),
				 strstr(why, "outside") ? -ERANGE : -EINVAL);
	}
	/* Against timegm: every ~3 days and some odd seconds, 1678..2261. */
	for (int64_t s = reference_ns(1678, 1, 1, 0, 0, 0) / NS; s < reference_ns(2262, 1, 1, 0, 0, 0) / NS;
	     s += 1000003) {
		time_t t = (time_t)s;
		struct tm tm;

		gmtime_r(&t, &tm);
		evalf(db, &r, "SELECT ts_ns('%04d-%02d-%02dT%02d:%02d:%02dZ')", tm.tm_year + 1900,
		      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		assert_int_equal(r.i, s * NS);
		/* and back */
		evalf(db, &r, "SELECT ts_ns(ts_iso(%" PRId64 " + 987654321))", s * NS);
		assert_int_equal(r.i, s * NS + 987654321);
	}
	expect_int(db, "SELECT ts_ns(42)", 42);
	expect_null(db, "SELECT ts_ns(NULL)");
	expect_error(db, "SELECT ts_ns(1.5)", "ts_ns: expected ISO-8601 text such as '2026-11-27T10:15:02Z'");
}

static void test_ts_sec(void **state)
{
	sqlite3 *db = *state;
	struct result r;

	eval(db, "SELECT ts_sec(1500000000)", &r);
	assert_int_equal(r.type, SQLITE_FLOAT);
	assert_true(r.d == 1.5);
	eval(db, "SELECT ts_sec(-1)", &r);
	assert_true(r.d == -1e-9);
	eval(db, "SELECT datetime(ts_sec(1795774502123456789), 'unixepoch')", &r);
	assert_string_equal(r.text, "2026-11-27 10:15:02");
	expect_null(db, "SELECT ts_sec(NULL)");
	expect_error(db, "SELECT ts_sec('x')", "ts_sec: ts must be an integer (ns since the epoch), not text");
}

/* ---- addresses --------------------------------------------------------------- */

static void test_cidr_match(void **state)
{
	static const struct {
		const char *addr, *prefix;
		int want; /* -1: NULL */
	} cases[] = {
		{ "'10.1.2.3'", "10.0.0.0/8", 1 },
		{ "'11.0.0.1'", "10.0.0.0/8", 0 },
		{ "'10.255.255.255'", "10.0.0.1/8", 1 },   /* host bits of the prefix ignored */
		{ "'10.127.0.1'", "10.0.0.0/9", 1 },
		{ "'10.128.0.1'", "10.0.0.0/9", 0 },
		{ "'10.1.2.3'", "0.0.0.0/0", 1 },
		{ "'2001:db8::1'", "0.0.0.0/0", 0 },
		{ "'10.1.2.3'", "10.1.2.3/32", 1 },
		{ "'10.1.2.4'", "10.1.2.3/32", 0 },
		{ "'10.1.2.3'", "10.1.2.3", 1 },
		{ "'10.1.2.3'", "10.1.2.2/31", 1 },
		{ "'10.1.2.4'", "10.1.2.2/31", 0 },
		{ "'2001:db8::1'", "2001:db8::/32", 1 },
		{ "'2001:db9::1'", "2001:db8::/32", 0 },
		{ "'2001:db8:7fff::1'", "2001:db8::/33", 1 },
		{ "'2001:db8:8000::1'", "2001:db8::/33", 0 },
		{ "'2001:db8::1'", "::/0", 1 },
		{ "'10.0.0.1'", "::/0", 0 },
		{ "'2001:db8::1'", "2001:db8::1/128", 1 },
		{ "'2001:db8::2'", "2001:db8::1/128", 0 },
		{ "'2001:db8::1'", "2001:db8::1", 1 },
		{ "'10.1.2.3'", "::ffff:10.0.0.0/104", 1 },
		{ "'11.1.2.3'", "::ffff:10.0.0.0/104", 0 },
		{ "'10.1.2.3'", "::ffff:0:0/96", 1 },
		{ "'2001:db8::1'", "::ffff:0:0/96", 0 },
		{ "'10.1.2.3'", "::ffff:10.1.2.3/128", 1 },
		{ "'::ffff:10.1.2.3'", "10.0.0.0/8", 1 },
		{ "'::ffff:11.1.2.3'", "10.0.0.0/8", 0 },
		{ "'::ffff:10.1.2.3'", "::ffff:10.0.0.0/104", 1 },
		{ "'10.1.2.3'", "::ffff:0:0/95", 0 }, /* IPv4 meets IPv6 only inside ::ffff:0:0/96 */
		{ "'fe80::1%eth0'", "fe80::/10", 0 },
		{ "'not an address'", "10.0.0.0/8", 0 },
		{ "''", "10.0.0.0/8", 0 },
		{ "42", "10.0.0.0/8", 0 },
		{ "NULL", "10.0.0.0/8", -1 },
	};
	static const struct {
		const char *prefix, *why;
	} bad[] = {
		{ "10.0.0.0/33", "length must be 0..32 for IPv4" },
		{ "::/129", "length must be 0..128 for IPv6" },
		{ "::ffff:10.0.0.0/129", "length must be 0..128 for IPv6" },
		{ "10.0.0.0/", NULL },
		{ "10.0.0.0/-1", NULL },
		{ "10.0.0.0/8x", NULL },
		{ "10.0.0.0/1234", NULL },
		{ "10.0.0.0/ 8", NULL },
		{ "10.0.0/8", NULL },
		{ "", NULL },
		{ "/8", NULL },
		{ "foo", NULL },
		{ "10.0.0.0/8/8", NULL },
	};
	sqlite3 *db = *state;
	char sql[256], want[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(sql, sizeof(sql), "SELECT cidr_match(%s, '%s')", cases[i].addr, cases[i].prefix);
		if (cases[i].want < 0)
			expect_null(db, sql);
		else
			expect_int(db, sql, cases[i].want);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(want, sizeof(want), "cidr_match: bad prefix '%s': %s", bad[i].prefix,
			 bad[i].why ? bad[i].why
				    : "expected an address and a length such as 10.0.0.0/8 or 2001:db8::/32");
		snprintf(sql, sizeof(sql), "SELECT cidr_match('10.0.0.1', '%s')", bad[i].prefix);
		expect_error(db, sql, want);
		/* even when there is no address to compare */
		snprintf(sql, sizeof(sql), "SELECT cidr_match(NULL, '%s')", bad[i].prefix);
		expect_error(db, sql, want);
	}
	expect_null(db, "SELECT cidr_match('10.0.0.1', NULL)");
	expect_error(db, "SELECT cidr_match('10.0.0.1', 8)",
		     "cidr_match: the prefix must be text such as '10.0.0.0/8'");
	/* A constant prefix over many rows (cached), and a per-row prefix. */
	expect_int(db, "SELECT sum(cidr_match(value, '10.0.0.0/8')) FROM "
		       "json_each('[\"10.0.0.1\",\"10.9.9.9\",\"11.0.0.1\",\"::1\",null]')", 2);
	expect_int(db, "SELECT sum(cidr_match('10.1.2.3', value)) FROM "
		       "json_each('[\"10.0.0.0/8\",\"11.0.0.0/8\",\"0.0.0.0/0\",\"::/0\"]')", 2);
}

static void test_ip_family(void **state)
{
	sqlite3 *db = *state;

	expect_int(db, "SELECT ip_family('10.0.0.1')", 4);
	expect_int(db, "SELECT ip_family('::1')", 6);
	expect_int(db, "SELECT ip_family('2001:db8::1')", 6);
	expect_int(db, "SELECT ip_family('::ffff:1.2.3.4')", 6);
	expect_null(db, "SELECT ip_family('x')");
	expect_null(db, "SELECT ip_family('')");
	expect_null(db, "SELECT ip_family('10.0.0.1 ')");
	expect_null(db, "SELECT ip_family('10.0.0.1/8')");
	expect_null(db, "SELECT ip_family(NULL)");
	expect_null(db, "SELECT ip_family(42)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_dur, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ago_and_now, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clock_once_per_statement, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ts_iso, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ts_ns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ts_sec, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cidr_match, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ip_family, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
