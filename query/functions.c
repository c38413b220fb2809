/*
 * functions.c: the SQL helpers people type (functions.h), and the parsers of
 * durations and ISO-8601 times the server shares.
 *
 * Invariants:
 *  1. Times are int64 ns since the Unix epoch, UTC, without leap seconds:
 *     calendar arithmetic is done here (days_from_civil / civil_from_days,
 *     proleptic Gregorian), never with the process's time zone or libc's
 *     time_t, so results are the same on every host. Everything an int64 of
 *     ns can hold (1677-09-21 .. 2262-04-11) converts both ways; anything
 *     else is a range error, never a wrapped value.
 *  2. No arithmetic overflows silently: sums and products of ns go through
 *     __builtin_*_overflow and fail with a message.
 *  3. ago() and now_ns() read the clock once per statement execution. The
 *     reading is kept as auxiliary data under a negative index
 *     (NOW_AUXDATA): in SQLite 3.40 an auxdata with a negative index is
 *     shared by every call of the statement, whatever the opcode, survives
 *     from row to row and is freed when the statement is reset or finalized
 *     (vdbeapi.c sqlite3_set_auxdata, vdbeaux.c sqlite3VdbeDeleteAuxData).
 *     A per-connection cache keyed by statement would need invalidation on
 *     reset, which SQLite already does for us here. test_query_functions
 *     checks the behaviour, so an SQLite that changes it fails a test
 *     rather than silently reading the clock per row.
 *  4. cidr_match compares in one address family: an IPv4 address, or an
 *     IPv6 address or prefix inside ::ffff:0:0/96 (v4-mapped), is
 *     normalized to IPv4 first. The parsed prefix is cached per statement
 *     (auxdata on argument 1), so a constant prefix is parsed once.
 *  5. Error messages name the function, quote the bad argument (cut at
 *     QUOTE_MAX bytes) and say what was expected.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "functions.h"

#define NS_PER_SEC 1000000000LL
#define SEC_PER_DAY 86400LL
#define QUOTE_MAX 64             /* bytes of a bad argument quoted in errors */
#define NOW_AUXDATA (-0x464C5753) /* -'FLWS': our slot, no built-in uses it */

static qfunc_clock_fn clock_fn; /* NULL: CLOCK_REALTIME */

void qfunc_set_clock(qfunc_clock_fn fn)
{
	clock_fn = fn;
}

static int64_t clock_now(void)
{
	struct timespec ts;

	if (clock_fn)
		return clock_fn();
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

/* ---- calendar (Howard Hinnant's algorithms, proleptic Gregorian) ---------- */

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	*m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static unsigned days_in_month(int64_t y, unsigned m)
{
	static const unsigned char mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return mdays[m - 1] + (m == 2 && leap);
}

int qfunc_format_time(int64_t ns, int digits, char *buf, size_t len)
{
	int64_t sec = floor_div(ns, NS_PER_SEC), frac = (ns % NS_PER_SEC + NS_PER_SEC) % NS_PER_SEC;
	int64_t days = floor_div(sec, SEC_PER_DAY), sod = sec - days * SEC_PER_DAY;
	int64_t y;
	unsigned m, d;
	char fraction[12] = "";
	int n;

	if (digits != 0 && digits != 3 && digits != 6 && digits != 9)
		return -EINVAL;
	if (digits) {
		int64_t div = digits == 3 ? 1000000 : digits == 6 ? 1000 : 1;

		snprintf(fraction, sizeof(fraction), ".%0*" PRId64, digits, frac / div);
	}
	civil_from_days(days, &y, &m, &d);
	n = snprintf(buf, len, "%04" PRId64 "-%02u-%02uT%02u:%02u:%02u%sZ", y, m, d,
		     (unsigned)(sod / 3600), (unsigned)(sod / 60 % 60), (unsigned)(sod % 60),
		     fraction);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return n;
}

/* ---- parsing helpers ------------------------------------------------------ */

struct cursor {
	const char *p, *end;
};

static int at(const struct cursor *c, char ch)
{
	return c->p < c->end && *c->p == ch;
}

static int is_digit(const struct cursor *c)
{
	return c->p < c->end && *c->p >= '0' && *c->p <= '9';
}

static void skip_spaces(struct cursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
		c->p++;
}

/* Exactly n digits. */
static int fixed_digits(struct cursor *c, int n, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < n; i++) {
		if (!is_digit(c))
			return -1;
		v = v * 10 + (unsigned)(*c->p++ - '0');
	}
	*out = v;
	return 0;
}

/* ---- durations ------------------------------------------------------------ */

static const struct unit {
	const char *name;
	int64_t ns;
} units[] = {
	/* Longest first where one name starts another ("ms" before "m"). */
	{ "ns", 1 }, { "us", 1000 }, { "\xC2\xB5s", 1000 }, { "\xCE\xBCs", 1000 },
	{ "ms", 1000000 }, { "s", NS_PER_SEC }, { "m", 60 * NS_PER_SEC },
	{ "h", 3600 * NS_PER_SEC }, { "d", SEC_PER_DAY * NS_PER_SEC },
	{ "w", 7 * SEC_PER_DAY * NS_PER_SEC },
};

static const struct unit *unit_match(struct cursor *c)
{
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		size_t n = strlen(units[i].name);

		if ((size_t)(c->end - c->p) >= n && memcmp(c->p, units[i].name, n) == 0) {
			c->p += n;
			return &units[i];
		}
	}
	return NULL;
}

/* One "<number><unit>" into *ns. 0, -EINVAL (why says what), -ERANGE. */
static int duration_part(struct cursor *c, int64_t *ns, const char **why)
{
	int64_t whole = 0, frac = 0, scale = 1, v;
	const struct unit *u;
	int any = 0;

	for (; is_digit(c); any = 1) {
		if (__builtin_mul_overflow(whole, 10, &whole) ||
		    __builtin_add_overflow(whole, *c->p++ - '0', &whole))
			return -ERANGE;
	}
	if (at(c, '.')) {
		c->p++;
		for (; is_digit(c); any = 1, c->p++) {
			if (scale < NS_PER_SEC * NS_PER_SEC / 10) { /* later digits: below 1 ns */
				frac = frac * 10 + (*c->p - '0');
				scale *= 10;
			}
		}
	}
	if (!any) {
		*why = "expected a number and a unit such as 15m";
		return -EINVAL;
	}
	u = unit_match(c);
	if (!u) {
		*why = c->p < c->end ? "unknown unit: use ns, us, ms, s, m, h, d or w"
				     : "expected a number and a unit such as 15m";
		return -EINVAL;
	}
	if (__builtin_mul_overflow(whole, u->ns, &v) ||
	    __builtin_add_overflow(v, (int64_t)((double)frac * ((double)u->ns / (double)scale)), &v))
		return -ERANGE;
	*ns = v;
	return 0;
}

static int parse_duration(const char *s, size_t len, int64_t *ns, const char **why)
{
	struct cursor c = { s, s + len };
	int64_t sum = 0, part;
	int neg = 0, rc;

	*why = "expected a number and a unit such as 15m";
	skip_spaces(&c);
	if (at(&c, '-') || at(&c, '+'))
		neg = *c.p++ == '-';
	if (c.end - c.p == 1 && *c.p == '0') { /* "0" needs no unit */
		*ns = 0;
		return 0;
	}
	do {
		rc = duration_part(&c, &part, why);
		if (rc == -ERANGE || (rc == 0 && __builtin_add_overflow(sum, part, &sum))) {
			*why = "out of range (more than 292 years)";
			return -ERANGE;
		}
		if (rc)
			return rc;
		skip_spaces(&c);
	} while (c.p < c.end);
	*ns = neg ? -sum : sum;
	return 0;
}

int qfunc_parse_duration(const char *text, int64_t *ns)
{
	const char *why;

	return parse_duration(text, strlen(text), ns, &why);
}

/* ---- ISO-8601 times ------------------------------------------------------- */

#define TIME_FORMS "expected YYYY-MM-DD, optionally followed by THH:MM[:SS[.fraction]] " \
		   "and Z or an offset such as +02:00"

/* [Z | ±hh[:mm] | ±hhmm] → seconds east of UTC. */
static int parse_offset(struct cursor *c, int64_t *off, const char **why)
{
	unsigned hh, mm = 0;
	int sign;

	*off = 0;
	if (at(c, 'Z') || at(c, 'z')) {
		c->p++;
		return 0;
	}
	if (!at(c, '+') && !at(c, '-'))
		return 0;
	sign = *c->p++ == '-' ? -1 : 1;
	if (fixed_digits(c, 2, &hh))
		return -EINVAL;
	if (at(c, ':'))
		c->p++;
	if (is_digit(c) && fixed_digits(c, 2, &mm))
		return -EINVAL;
	if (hh > 23 || mm > 59) {
		*why = "offset out of range (-23:59 .. +23:59)";
		return -EINVAL;
	}
	*off = sign * (int64_t)(hh * 3600 + mm * 60);
	return 0;
}

/* [THH:MM[:SS[.f...]]] → seconds of the day and ns. */
static int parse_clock(struct cursor *c, int64_t *sod, int64_t *ns, const char **why)
{
	unsigned hh, mi, ss = 0;
	int64_t frac = 0, scale = NS_PER_SEC;

	if (fixed_digits(c, 2, &hh) || !at(c, ':'))
		return -EINVAL;
	c->p++;
	if (fixed_digits(c, 2, &mi))
		return -EINVAL;
	if (at(c, ':')) {
		c->p++;
		if (fixed_digits(c, 2, &ss))
			return -EINVAL;
		if (at(c, '.') || at(c, ',')) {
			c->p++;
			if (!is_digit(c))
				return -EINVAL;
			for (; is_digit(c); c->p++) {
				if (scale > 1) { /* digits past ns are cut, not rounded */
					scale /= 10;
					frac += (*c->p - '0') * scale;
				}
			}
		}
	}
	if (hh > 23 || mi > 59 || ss > 59) {
		*why = hh > 23 ? "hour out of range (00..23)" : mi > 59 ? "minute out of range (00..59)"
			: "second out of range (00..59; leap seconds are not accepted)";
		return -EINVAL;
	}
	*sod = hh * 3600 + mi * 60 + ss;
	*ns = frac;
	return 0;
}

static int parse_time(const char *s, size_t len, int64_t *out, const char **why)
{
	struct cursor c = { s, s + len };
	unsigned y, m, d;
	int64_t sod = 0, frac = 0, off = 0, sec, ns;

	*why = TIME_FORMS;
	if (fixed_digits(&c, 4, &y) || !at(&c, '-'))
		return -EINVAL;
	c.p++;
	if (fixed_digits(&c, 2, &m) || !at(&c, '-'))
		return -EINVAL;
	c.p++;
	if (fixed_digits(&c, 2, &d))
		return -EINVAL;
	if (m < 1 || m > 12) {
		*why = "month out of range (01..12)";
		return -EINVAL;
	}
	if (d < 1 || d > days_in_month(y, m)) {
		*why = "day out of range for that month";
		return -EINVAL;
	}
	if (at(&c, 'T') || at(&c, 't') || at(&c, ' ')) {
		c.p++;
		if (parse_clock(&c, &sod, &frac, why) || parse_offset(&c, &off, why))
			return -EINVAL;
	}
	if (c.p != c.end)
		return -EINVAL;
	sec = days_from_civil(y, m, d) * SEC_PER_DAY + sod - off; /* |sec| < 2^39: no overflow */
	if (sec < 0 && frac > 0) { /* so that INT64_MIN's second does not overflow first */
		sec++;
		frac -= NS_PER_SEC;
	}
	if (__builtin_mul_overflow(sec, NS_PER_SEC, &ns) || __builtin_add_overflow(ns, frac, &ns)) {
		*why = "outside the range of ns timestamps (1677-09-21 .. 2262-04-11)";
		return -ERANGE;
	}
	*out = ns;
	return 0;
}

int qfunc_parse_time(const char *text, int64_t *ns)
{
	const char *why;

	return parse_time(text, strlen(text), ns, &why);
}

/* ---- SQL functions -------------------------------------------------------- */

static void result_errorf(sqlite3_context *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void result_errorf(sqlite3_context *ctx, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = sqlite3_vmprintf(fmt, ap);
	va_end(ap);
	if (!msg) {
		sqlite3_result_error_nomem(ctx);
		return;
	}
	sqlite3_result_error(ctx, msg, -1);
	sqlite3_free(msg);
}

/* The argument as text for an error message: at most QUOTE_MAX bytes. */
static int quote_len(sqlite3_value *v)
{
	int n = sqlite3_value_bytes(v);

	return n > QUOTE_MAX ? QUOTE_MAX : n;
}

static const char *value_text(sqlite3_value *v, size_t *len)
{
	const char *s = (const char *)sqlite3_value_text(v);

	*len = s ? (size_t)sqlite3_value_bytes(v) : 0;
	return s;
}

/* The statement's clock reading (invariant 3). */
static int64_t statement_now(sqlite3_context *ctx)
{
	int64_t *cached = sqlite3_get_auxdata(ctx, NOW_AUXDATA);
	int64_t now;

	if (cached)
		return *cached;
	now = clock_now();
	cached = sqlite3_malloc64(sizeof(*cached));
	if (cached) {
		*cached = now;
		sqlite3_set_auxdata(ctx, NOW_AUXDATA, cached, sqlite3_free);
	}
	return now;
}

/* A duration argument: text such as '15m', or an integer of ns. */
static int duration_arg(sqlite3_context *ctx, const char *fn, sqlite3_value *v, int64_t *ns)
{
	const char *s, *why;
	size_t len;
	int rc;

	switch (sqlite3_value_type(v)) {
	case SQLITE_INTEGER:
		*ns = sqlite3_value_int64(v);
		return 0;
	case SQLITE_TEXT:
		s = value_text(v, &len);
		if (!s) {
			sqlite3_result_error_nomem(ctx);
			return -ENOMEM;
		}
		rc = parse_duration(s, len, ns, &why);
		if (rc)
			result_errorf(ctx, "%s: bad duration '%.*s': %s", fn, quote_len(v), s, why);
		return rc;
	default:
		result_errorf(ctx, "%s: expected a duration such as '15m' or an integer of ns", fn);
		return -EINVAL;
	}
}

static void fn_now_ns(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	(void)argv;
	sqlite3_result_int64(ctx, statement_now(ctx));
}

static void fn_ago(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	int64_t d, t;

	(void)argc;
	if (sqlite3_value_type(argv[0]) == SQLITE_NULL)
		return;
	if (duration_arg(ctx, "ago", argv[0], &d))
		return;
	if (__builtin_sub_overflow(statement_now(ctx), d, &t)) {
		result_errorf(ctx, "ago: now minus that duration is out of range");
		return;
	}
	sqlite3_result_int64(ctx, t);
}

static void fn_dur(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	int64_t d;

	(void)argc;
	if (sqlite3_value_type(argv[0]) == SQLITE_NULL)
		return;
	if (duration_arg(ctx, "dur", argv[0], &d) == 0)
		sqlite3_result_int64(ctx, d);
}

/* A ts argument: an integer of ns; a REAL is truncated to one. 1 if NULL
 * (result left NULL), 0 with *ns, or -EINVAL with the error set. */
static int ts_arg(sqlite3_context *ctx, const char *fn, sqlite3_value *v, int64_t *ns)
{
	double r;

	switch (sqlite3_value_type(v)) {
	case SQLITE_NULL:
		return 1;
	case SQLITE_INTEGER:
		*ns = sqlite3_value_int64(v);
		return 0;
	case SQLITE_FLOAT:
		r = sqlite3_value_double(v);
		if (r >= -9223372036854775808.0 && r < 9223372036854775808.0) {
			*ns = (int64_t)r;
			return 0;
		}
		result_errorf(ctx, "%s: ts %g is out of range for ns since the epoch", fn, r);
		return -EINVAL;
	default:
		result_errorf(ctx, "%s: ts must be an integer (ns since the epoch), not %s", fn,
			      sqlite3_value_type(v) == SQLITE_TEXT ? "text" : "a blob");
		return -EINVAL;
	}
}

static void fn_ts_iso(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	static const struct {
		const char *name;
		int digits;
	} precisions[] = { { "s", 0 }, { "ms", 3 }, { "us", 6 }, { "ns", 9 } };
	char buf[QFUNC_TIME_MAX];
	int64_t ts;
	int digits = 9, n;

	if (ts_arg(ctx, "ts_iso", argv[0], &ts))
		return;
	if (argc > 1) {
		const char *p = (const char *)sqlite3_value_text(argv[1]);

		digits = -1;
		for (size_t i = 0; p && i < sizeof(precisions) / sizeof(precisions[0]); i++)
			if (strcmp(p, precisions[i].name) == 0)
				digits = precisions[i].digits;
		if (digits < 0) {
			result_errorf(ctx, "ts_iso: bad precision '%.*s': expected 's', 'ms', 'us' or 'ns'",
				      quote_len(argv[1]), p ? p : "");
			return;
		}
	}
	n = qfunc_format_time(ts, digits, buf, sizeof(buf));
	if (n < 0) {
		sqlite3_result_error(ctx, "ts_iso: cannot format that time", -1);
		return;
	}
	sqlite3_result_text(ctx, buf, n, SQLITE_TRANSIENT);
}

static void fn_ts_ns(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const char *s, *why;
	size_t len;
	int64_t ns;

	(void)argc;
	switch (sqlite3_value_type(argv[0])) {
	case SQLITE_NULL:
		return;
	case SQLITE_INTEGER: /* already ns */
		sqlite3_result_int64(ctx, sqlite3_value_int64(argv[0]));
		return;
	case SQLITE_TEXT:
		break;
	default:
		sqlite3_result_error(ctx, "ts_ns: expected ISO-8601 text such as '2026-11-27T10:15:02Z'", -1);
		return;
	}
	s = value_text(argv[0], &len);
	if (!s) {
		sqlite3_result_error_nomem(ctx);
		return;
	}
	if (parse_time(s, len, &ns, &why)) {
		result_errorf(ctx, "ts_ns: bad time '%.*s': %s", quote_len(argv[0]), s, why);
		return;
	}
	sqlite3_result_int64(ctx, ns);
}

static void fn_ts_sec(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	int64_t ts, sec;

	(void)argc;
	if (ts_arg(ctx, "ts_sec", argv[0], &ts))
		return;
	/* Whole seconds exact, then the fraction, both of ts's sign. */
	sec = ts / NS_PER_SEC;
	sqlite3_result_double(ctx, (double)sec + (double)(ts % NS_PER_SEC) / 1e9);
}

/* ---- addresses ------------------------------------------------------------ */

struct net {
	int family; /* 4 or 6 */
	unsigned bits;
	uint8_t addr[16]; /* IPv4 in the first 4 bytes */
};

static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* Text (len bytes) to an address, v4-mapped normalized to IPv4. 0 or -EINVAL. */
static int addr_parse(const char *s, size_t len, struct net *out)
{
	char buf[INET6_ADDRSTRLEN + 1];

	if (len >= sizeof(buf) || memchr(s, '\0', len))
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, buf, out->addr) == 1) {
		out->family = 4;
		out->bits = 32;
		return 0;
	}
	if (inet_pton(AF_INET6, buf, out->addr) != 1)
		return -EINVAL;
	out->family = 6;
	out->bits = 128;
	if (memcmp(out->addr, v4mapped, sizeof(v4mapped)) == 0) {
		memmove(out->addr, out->addr + 12, 4);
		memset(out->addr + 4, 0, 12);
		out->family = 4;
		out->bits = 32;
	}
	return 0;
}

static int text_family(const char *s, size_t len)
{
	char buf[INET6_ADDRSTRLEN + 1];
	uint8_t a[16];

	if (len >= sizeof(buf) || memchr(s, '\0', len))
		return 0;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET, buf, a) == 1)
		return 4;
	return inet_pton(AF_INET6, buf, a) == 1 ? 6 : 0;
}

static void net_mask(struct net *n)
{
	unsigned full = n->bits / 8, rest = n->bits % 8;

	if (rest)
		n->addr[full++] &= (uint8_t)(0xff00u >> rest);
	memset(n->addr + full, 0, sizeof(n->addr) - full);
}

/* "addr[/len]" → a masked prefix. 0, or -EINVAL with why. */
static int prefix_parse(const char *s, size_t len, struct net *out, const char **why)
{
	const char *slash = memchr(s, '/', len);
	size_t alen = slash ? (size_t)(slash - s) : len;
	unsigned bits = 0, is_v6;
	struct net n;
	int written_v6;

	*why = "expected an address and a length such as 10.0.0.0/8 or 2001:db8::/32";
	/* Parse the address without v4-mapped folding first: /n counts bits of
	 * the family the prefix is written in. */
	if (addr_parse(s, alen, &n))
		return -EINVAL;
	written_v6 = memchr(s, ':', alen) != NULL;
	is_v6 = written_v6;
	if (slash) {
		const char *p = slash + 1, *end = s + len;

		if (p == end || end - p > 3)
			return -EINVAL;
		for (; p < end; p++) {
			if (*p < '0' || *p > '9')
				return -EINVAL;
			bits = bits * 10 + (unsigned)(*p - '0');
		}
		if (bits > (is_v6 ? 128u : 32u)) {
			*why = is_v6 ? "length must be 0..128 for IPv6" : "length must be 0..32 for IPv4";
			return -EINVAL;
		}
	} else {
		bits = is_v6 ? 128 : 32;
	}
	if (written_v6 && n.family == 4) { /* v4-mapped: IPv4 if the length covers ::ffff:0:0/96 */
		if (bits >= 96) {
			bits -= 96;
		} else {
			memmove(n.addr + 12, n.addr, 4);
			memcpy(n.addr, v4mapped, sizeof(v4mapped));
			n.family = 6;
		}
	}
	n.bits = bits;
	net_mask(&n);
	*out = n;
	return 0;
}

static int net_contains(const struct net *prefix, const struct net *addr)
{
	struct net a = *addr;

	if (a.family != prefix->family)
		return 0;
	a.bits = prefix->bits;
	net_mask(&a);
	return memcmp(a.addr, prefix->addr, sizeof(a.addr)) == 0;
}

/* The prefix argument, parsed or from the statement's cache. 0, or -1 with
 * the error set. *fresh: parsed now, so the caller caches it. */
static int prefix_arg(sqlite3_context *ctx, sqlite3_value *v, struct net *out, int *fresh)
{
	const struct net *cached = sqlite3_get_auxdata(ctx, 1);
	const char *s, *why;
	size_t len;

	*fresh = !cached;
	if (cached) {
		*out = *cached;
		return 0;
	}
	if (sqlite3_value_type(v) != SQLITE_TEXT) {
		sqlite3_result_error(ctx, "cidr_match: the prefix must be text such as '10.0.0.0/8'", -1);
		return -1;
	}
	s = value_text(v, &len);
	if (!s) {
		sqlite3_result_error_nomem(ctx);
		return -1;
	}
	if (prefix_parse(s, len, out, &why)) {
		result_errorf(ctx, "cidr_match: bad prefix '%.*s': %s", quote_len(v), s, why);
		return -1;
	}
	return 0;
}

static void fn_cidr_match(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	struct net prefix, addr, *keep;
	const char *s;
	size_t len;
	int fresh;

	(void)argc;
	if (sqlite3_value_type(argv[1]) == SQLITE_NULL)
		return;
	/* The prefix is checked even when addr is NULL: a typo is an error on
	 * every row set, not only on those with addresses. */
	if (prefix_arg(ctx, argv[1], &prefix, &fresh))
		return;
	if (sqlite3_value_type(argv[0]) == SQLITE_NULL) {
		/* result stays NULL */
	} else if (sqlite3_value_type(argv[0]) != SQLITE_TEXT) {
		sqlite3_result_int(ctx, 0);
	} else if (!(s = value_text(argv[0], &len))) {
		sqlite3_result_error_nomem(ctx);
		return;
	} else {
		sqlite3_result_int(ctx, addr_parse(s, len, &addr) == 0 && net_contains(&prefix, &addr));
	}
	/* Last: set_auxdata may free what it is given at once (sqlite3.h). */
	if (fresh && (keep = sqlite3_malloc64(sizeof(*keep)))) {
		*keep = prefix;
		sqlite3_set_auxdata(ctx, 1, keep, sqlite3_free);
	}
}

static void fn_ip_family(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const char *s;
	size_t len;
	int family;

	(void)argc;
	if (sqlite3_value_type(argv[0]) != SQLITE_TEXT)
		return;
	s = value_text(argv[0], &len);
	if (!s) {
		sqlite3_result_error_nomem(ctx);
		return;
	}
	family = text_family(s, len);
	if (family)
		sqlite3_result_int(ctx, family);
}

/* ---- registration --------------------------------------------------------- */

#define PURE (SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS)
#define CLOCKED (SQLITE_UTF8 | SQLITE_INNOCUOUS)

static const struct qfunc {
	const char *name;
	int nargs;
	int flags;
	void (*fn)(sqlite3_context *, int, sqlite3_value **);
} qfuncs[] = {
	{ "now_ns", 0, CLOCKED, fn_now_ns },
	{ "ago", 1, CLOCKED, fn_ago },
	{ "dur", 1, PURE, fn_dur },
	{ "ts_iso", 1, PURE, fn_ts_iso },
	{ "ts_iso", 2, PURE, fn_ts_iso },
	{ "ts_ns", 1, PURE, fn_ts_ns },
	{ "ts_sec", 1, PURE, fn_ts_sec },
	{ "cidr_match", 2, PURE, fn_cidr_match },
	{ "ip_family", 1, PURE, fn_ip_family },
};

int qfunc_register(sqlite3 *db)
{
	for (size_t i = 0; i < sizeof(qfuncs) / sizeof(qfuncs[0]); i++) {
		const struct qfunc *f = &qfuncs[i];
		int rc = sqlite3_create_function_v2(db, f->name, f->nargs, f->flags, NULL, f->fn,
						    NULL, NULL, NULL);

		if (rc != SQLITE_OK)
			return rc;
	}
	return SQLITE_OK;
}
