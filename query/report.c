/*
 * report.c: the reports of `flowq report` (report.h): their files parsed,
 * a table chosen for each window, the SQL expanded.
 *
 * Which tables a report reads (docs/reports.md says the same to users):
 *
 *  1. Raw partitions are complete from raw_from on: the oldest raw
 *     partition's period start once rolled-up raw partitions have been
 *     removed, else from the beginning (nothing was ever removed). Rows
 *     of a partition never lie after its period, so every row at or after
 *     raw_from is still in a raw file.
 *  2. Rollups are complete before `unrolled`: the smallest ts of a raw
 *     partition not rolled up yet (the open one at least). Every row
 *     before it was in a partition that is rolled up, or removed (and
 *     retention rolls a partition up before removing it).
 *  3. An "any" report reads rollup buckets before split and raw rows from
 *     split on, split being `unrolled` rounded down to the bucket width
 *     (but never below raw_from: then raw_from rounded up). A bucket holds
 *     only rows of its own width, so no row is counted twice and none is
 *     missing (except late rows of a partition not rolled up yet that lie
 *     before raw_from: they appear once it is rolled up).
 *  4. The bucket width is the coarsest the window allows: flows_1h when
 *     its start (and its end, if that is in the rollup part) is a whole
 *     hour; else flows_1m, the window widened to whole minutes, when the
 *     1m files reach back to its start; else flows_1h, widened to whole
 *     hours. A window that lies wholly after split reads raw rows only.
 *  5. A "raw" report needs since >= raw_from; "raw, else any" takes its raw
 *     body then, its other body otherwise.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "functions.h"
#include "report.h"

#define NS_PER_MIN (60LL * 1000000000LL)
#define NS_PER_HOUR (60 * NS_PER_MIN)

/* The columns of flows_1m and flows_1h, in order (retention/rollup.h). */
#define ROLLUP_COLUMNS                                                                     \
	"ts, proto, orig_addr, resp_addr, resp_port, direction, comm, flows, orig_pkts,"   \
	" orig_bytes, resp_pkts, resp_bytes, connections, failed_connections, retransmits"

/* Raw rows in the rollup shape: each flows row a rollup row counting one
 * flow, each connections row one counting one connection (failed when its
 * states never reached ESTABLISHED), as retention/rollup.c counts them. */
#define RAW_FLOWS_SHAPE                                                                    \
	"SELECT ts, proto, orig_addr, resp_addr, resp_port, NULL AS direction, comm,"      \
	" 1 AS flows, orig_pkts, orig_bytes, resp_pkts, resp_bytes, 0 AS connections,"     \
	" 0 AS failed_connections, 0 AS retransmits FROM flows"
#define RAW_CONNECTIONS_SHAPE                                                              \
	"SELECT ts, 'tcp', orig_addr, resp_addr, resp_port, direction, comm, 0, 0, 0, 0,"  \
	" 0, 1, ifnull(instr(states, 'ESTABLISHED'), 1) = 0, retransmits FROM connections"

const char REPORT_TIERS_SQL[] =
	"WITH p AS MATERIALIZED (SELECT kind, name, period_start, ts_min, rolled_up,"
	" rolled_from FROM partitions WHERE status <> 'broken')"
	" SELECT (SELECT min(period_start) FROM p WHERE kind = 'raw') AS raw_start,"
	" (SELECT count(*) FROM p WHERE kind <> 'raw' AND rolled_from <"
	" (SELECT ifnull(min(name), 'raw.') FROM p WHERE kind = 'raw')) AS raw_removed,"
	" (SELECT min(ts_min) FROM p WHERE kind = 'raw' AND rolled_up IS NOT 1) AS unrolled,"
	" (SELECT min(period_start) FROM p WHERE kind = '1m') AS m_start,"
	" (SELECT min(ts_min) FROM p WHERE kind = '1h') AS h_min";

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t len, const char *fmt,
						      ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

size_t report_count(void)
{
	return report_nfiles;
}

const char *report_name(size_t i)
{
	return i < report_nfiles ? report_files[i].name : NULL;
}

void report_free(struct report *r)
{
	if (r) {
		free(r->text);
		memset(r, 0, sizeof(*r));
	}
}

/* ---- parsing a report file ------------------------------------------------------ */

/* The line at *p (without its end), *p moved past it; NULL at the end. */
static char *next_line(char **p)
{
	char *line = *p, *nl;

	if (!*line)
		return NULL;
	nl = strchr(line, '\n');
	if (nl) {
		*nl = 0;
		*p = nl + 1;
	} else {
		*p = line + strlen(line);
	}
	return line;
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && strchr(" \t\r;", e[-1]))
		*--e = 0;
	return s;
}

/* "-- key: value" → value (trimmed), NULL if the line is not that key. */
static char *directive(char *line, const char *key)
{
	size_t n = strlen(key);

	if (strncmp(line, "--", 2) != 0)
		return NULL;
	line = trim(line + 2);
	if (strncmp(line, key, n) != 0 || line[n] != ':')
		return NULL;
	return trim(line + n + 1);
}

static int parse_source(const char *v, enum report_source *out)
{
	if (!strcmp(v, "any"))
		*out = REPORT_ANY;
	else if (!strcmp(v, "raw"))
		*out = REPORT_RAW;
	else if (!strcmp(v, "raw, else any"))
		*out = REPORT_RAW_ELSE_ANY;
	else
		return -EINVAL;
	return 0;
}

/* The header: name and summary on line one, then source and lookback.
 * Works on a scratch copy (lines are cut). */
static int parse_header(struct report *r, const char *file, char *scratch, char *err,
			size_t errlen)
{
	char *p = scratch, *line = next_line(&p), *v;
	int has_source = 0;

	if (!line || !(v = directive(line, file)) || !*v)
		return fail(err, errlen, "report %s: the first line must be '-- %s: <what it "
			    "answers>'", file, file);
	snprintf(r->name, sizeof(r->name), "%s", file);
	snprintf(r->summary, sizeof(r->summary), "%s", v);
	while ((line = next_line(&p)) && strncmp(trim(line), "--", 2) == 0) {
		if ((v = directive(line, "source"))) {
			if (parse_source(v, &r->source))
				return fail(err, errlen, "report %s: source '%s' is not any, "
					    "raw or 'raw, else any'", file, v);
			has_source = 1;
		} else if ((v = directive(line, "lookback"))) {
			if (qfunc_parse_duration(v, &r->lookback_ns) || r->lookback_ns < 0)
				return fail(err, errlen, "report %s: lookback '%s' is not a "
					    "duration", file, v);
		}
	}
	if (!has_source)
		return fail(err, errlen, "report %s: no '-- source:' line in its header", file);
	return 0;
}

/* Split text at the line "-- else:" for a two-body report. */
static int split_else(struct report *r, char *err, size_t errlen)
{
	char *at = r->text;

	r->body = r->text;
	r->body_len = strlen(r->text);
	while ((at = strstr(at, "-- else:"))) {
		int bol = at == r->text || at[-1] == '\n';
		char *eol = at + strlen("-- else:");

		if (bol && (*eol == '\n' || *eol == '\r' || !*eol))
			break;
		at = eol;
	}
	if (r->source != REPORT_RAW_ELSE_ANY)
		return at ? fail(err, errlen, "report %s: '-- else:' only goes with source "
				 "'raw, else any'", r->name) : 0;
	if (!at)
		return fail(err, errlen, "report %s: source 'raw, else any' needs a line "
			    "'-- else:' before its second query", r->name);
	r->body_len = (size_t)(at - r->text);
	r->else_body = at + strlen("-- else:");
	r->else_len = strlen(r->else_body);
	return 0;
}

static int report_parse(const struct report_file *f, struct report *out, char *err,
			size_t errlen)
{
	char *scratch = strdup(f->text);
	int rc;

	memset(out, 0, sizeof(*out));
	out->text = strdup(f->text);
	if (!scratch || !out->text) {
		free(scratch);
		report_free(out);
		return fail(err, errlen, "out of memory");
	}
	rc = parse_header(out, f->name, scratch, err, errlen);
	free(scratch);
	if (!rc)
		rc = split_else(out, err, errlen);
	if (rc)
		report_free(out);
	return rc;
}

int report_load(size_t i, struct report *out, char *err, size_t errlen)
{
	if (i >= report_nfiles)
		return -ENOENT;
	return report_parse(&report_files[i], out, err, errlen);
}

int report_find(const char *name, struct report *out, char *err, size_t errlen)
{
	for (size_t i = 0; i < report_nfiles; i++)
		if (!strcmp(report_files[i].name, name))
			return report_load(i, out, err, errlen);
	snprintf(err, errlen, "no report '%s' ('flowq report --list' lists them)", name);
	return -ENOENT;
}

/* ---- what the dir holds ---------------------------------------------------------------- */

/* One CSV field of a row of integers (or empty: NULL). */
static int csv_int(const char **p, const char *end, int64_t *v, int *null)
{
	const char *s = *p;
	char buf[32];
	size_t n = 0;

	while (s < end && *s != ',' && *s != '\r' && *s != '\n' && n < sizeof(buf) - 1)
		buf[n++] = *s++;
	buf[n] = 0;
	*null = n == 0;
	if (s < end && *s == ',')
		s++;
	*p = s;
	if (*null)
		return 0;
	if (sscanf(buf, "%" SCNd64 "%c", v, buf) != 1)
		return -EPROTO;
	return 0;
}

int report_tiers_parse(const char *csv, size_t len, struct report_tiers *out)
{
	const char *end = csv + len, *p = memchr(csv, '\n', len);
	int64_t *fields[] = { &out->raw_start, NULL, &out->unrolled, &out->m_start, &out->h_min };
	int64_t removed = 0;

	if (!p)
		return -EPROTO;
	p++;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		int64_t v = 0;
		int null = 0;

		if (p >= end || csv_int(&p, end, &v, &null))
			return -EPROTO;
		if (fields[i])
			*fields[i] = null ? INT64_MAX : v;
		else
			removed = null ? 0 : v;
	}
	out->raw_removed = removed > 0;
	return 0;
}

/* ---- planning ---------------------------------------------------------------------------- */

static int64_t floor_to(int64_t t, int64_t w)
{
	int64_t r = t % w;

	return r < 0 ? t - r - w : t - r;
}

static int64_t ceil_to(int64_t t, int64_t w)
{
	int64_t f = floor_to(t, w);

	return f == t || f > INT64_MAX - w ? f : f + w;
}

/* Where raw partitions are complete from (note 1). */
static int64_t raw_from(const struct report_tiers *t)
{
	return t->raw_removed ? t->raw_start : INT64_MIN;
}

/* Rollups of width w for ts < split, raw from there on (note 3). */
static int64_t split_at(const struct report_tiers *t, int64_t w)
{
	int64_t from = raw_from(t), s;

	if (t->unrolled == INT64_MAX)
		return INT64_MAX;
	s = floor_to(t->unrolled, w);
	if (from != INT64_MIN && s < from)
		s = from == INT64_MAX ? INT64_MAX : ceil_to(from, w);
	return s;
}

/* Whether the 1m files hold everything rolled up from t on: they reach
 * back that far, or the 1h files hold nothing older than they do. */
static int minutes_cover(const struct report_tiers *t, int64_t from)
{
	if (t->h_min == INT64_MAX)
		return 1;
	if (t->m_start == INT64_MAX)
		return 0;
	return from >= t->m_start || t->h_min >= t->m_start;
}

static void iso(int64_t ns, char *buf, size_t len)
{
	if (qfunc_format_time(ns, 0, buf, len) < 0)
		snprintf(buf, len, "%" PRId64 " ns", ns);
}

static int plan_raw(const struct report *r, int64_t since, int64_t until,
		    const struct report_tiers *t, struct report_plan *p, char *err, size_t errlen)
{
	char have[QFUNC_TIME_MAX], want[QFUNC_TIME_MAX];

	if (since < raw_from(t)) {
		if (t->raw_start == INT64_MAX) {
			snprintf(err, errlen, "report %s reads raw rows, and no raw partition is "
				 "left", r->name);
			return -ERANGE;
		}
		iso(t->raw_start, have, sizeof(have));
		iso(since, want, sizeof(want));
		snprintf(err, errlen, "report %s reads raw rows, kept from %s on (older ones are "
			 "rolled up, which lack what it needs); the window starts at %s: give "
			 "--since %s or later", r->name, have, want, have);
		return -ERANGE;
	}
	p->since = p->lo = since;
	p->until = p->hi = until;
	p->rollup = NULL;
	p->split = INT64_MIN;
	return 0;
}

/* An "any" body (note 4): the width, then the window widened to it. */
static void plan_any(const struct report *r, int64_t since, int64_t until,
		     const struct report_tiers *t, struct report_plan *p)
{
	int64_t lo = since > INT64_MIN + r->lookback_ns ? since - r->lookback_ns : INT64_MIN;
	int64_t w;

	p->since = since;
	p->until = until;
	p->lo = lo;
	p->hi = until;
	if (lo >= split_at(t, NS_PER_MIN)) {
		p->rollup = NULL; /* nothing of it rolled up: raw rows, as they are */
		p->split = INT64_MIN;
		return;
	}
	if (floor_to(lo, NS_PER_HOUR) == lo &&
	    (until >= split_at(t, NS_PER_HOUR) || floor_to(until, NS_PER_HOUR) == until))
		w = NS_PER_HOUR;
	else if (minutes_cover(t, floor_to(lo, NS_PER_MIN)))
		w = NS_PER_MIN;
	else
		w = NS_PER_HOUR;
	p->rollup = w == NS_PER_HOUR ? "flows_1h" : "flows_1m";
	p->split = split_at(t, w);
	p->lo = floor_to(lo, w);
	p->since = floor_to(since, w);
	if (until < p->split)
		p->hi = p->until = ceil_to(until, w);
}

int report_plan(const struct report *r, int64_t since, int64_t until,
		const struct report_tiers *t, struct report_plan *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (since >= until)
		return fail(err, errlen, "the window is empty: --since must be before --until");
	if (r->source == REPORT_RAW)
		return plan_raw(r, since, until, t, out, err, errlen);
	if (r->source == REPORT_RAW_ELSE_ANY && since >= raw_from(t))
		return plan_raw(r, since, until, t, out, err, errlen);
	out->use_else = r->source == REPORT_RAW_ELSE_ANY;
	plan_any(r, since, until, t, out);
	return 0;
}

/* ---- expanding the SQL ------------------------------------------------------------------- */

/* {source} for plan p: the rollup part, then the raw part, each present
 * only if its share of [lo, hi) is not empty. */
static void append_source(sqlite3_str *s, const struct report_plan *p)
{
	int64_t cut = p->rollup ? p->split : INT64_MIN;
	int64_t roll_hi = p->hi < cut ? p->hi : cut, raw_lo = p->lo > cut ? p->lo : cut;
	const char *sep = "";

	sqlite3_str_appendall(s, "(");
	if (p->rollup && p->lo < roll_hi) {
		sqlite3_str_appendf(s, "SELECT " ROLLUP_COLUMNS " FROM %s WHERE ts >= %lld AND "
				    "ts < %lld", p->rollup, (long long)p->lo, (long long)roll_hi);
		sep = " UNION ALL ";
	}
	if (raw_lo < p->hi || !*sep) {
		sqlite3_str_appendf(s, "%s" RAW_FLOWS_SHAPE " WHERE ts >= %lld AND ts < %lld"
				    " UNION ALL " RAW_CONNECTIONS_SHAPE " WHERE ts >= %lld AND "
				    "ts < %lld", sep, (long long)raw_lo, (long long)p->hi,
				    (long long)raw_lo, (long long)p->hi);
	}
	sqlite3_str_appendall(s, ")");
}

/* Past a quoted run (' " ` [) or a comment starting at s; s itself if none. */
static const char *skip_inert(const char *s, const char *end)
{
	char close = *s == '[' ? ']' : *s;

	if (*s == '\'' || *s == '"' || *s == '`' || *s == '[') {
		for (s++; s < end; s++) {
			if (*s != close)
				continue;
			if (close != ']' && s + 1 < end && s[1] == close) {
				s++; /* a doubled quote stands for itself */
				continue;
			}
			return s + 1;
		}
		return end;
	}
	if (s + 1 < end && s[0] == '-' && s[1] == '-') {
		const char *nl = memchr(s, '\n', (size_t)(end - s));

		return nl ? nl : end;
	}
	if (s + 1 < end && s[0] == '/' && s[1] == '*') {
		for (s += 2; s + 1 < end; s++)
			if (s[0] == '*' && s[1] == '/')
				return s + 2;
		return end;
	}
	return s;
}

static int ident_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

/* :name at s: its value appended, *s past it. */
static int expand_param(sqlite3_str *out, const char **s, const char *end,
			const struct report_plan *p, const char *report, char *err, size_t errlen)
{
	const char *n = *s + 1;
	size_t len = 0;

	while (n + len < end && ident_char(n[len]))
		len++;
	if (len == 5 && !strncmp(n, "since", 5))
		sqlite3_str_appendf(out, "%lld", (long long)p->since);
	else if (len == 5 && !strncmp(n, "until", 5))
		sqlite3_str_appendf(out, "%lld", (long long)p->until);
	else
		return fail(err, errlen, "report %s: unknown parameter ':%.*s' (:since and "
			    ":until are given)", report, (int)len, n);
	*s = n + len;
	return 0;
}

static int expand(sqlite3_str *out, const char *s, size_t len, const struct report_plan *p,
		  const char *report, int raw, char *err, size_t errlen)
{
	const char *end = s + len;
	static const char token[] = "{source}";

	while (s < end) {
		const char *past = skip_inert(s, end);

		if (past != s) {
			sqlite3_str_append(out, s, (int)(past - s));
			s = past;
		} else if (*s == ':' && s + 1 < end && ident_char(s[1])) {
			if (expand_param(out, &s, end, p, report, err, errlen))
				return -EINVAL;
		} else if ((size_t)(end - s) >= sizeof(token) - 1 &&
			   !strncmp(s, token, sizeof(token) - 1)) {
			if (raw)
				return fail(err, errlen, "report %s: {source} in a query over raw "
					    "tables", report);
			append_source(out, p);
			s += sizeof(token) - 1;
		} else {
			sqlite3_str_appendchar(out, 1, *s++);
		}
	}
	return 0;
}

int report_sql(const struct report *r, const struct report_plan *p, char **sql, char *err,
	       size_t errlen)
{
	sqlite3_str *out = sqlite3_str_new(NULL);
	const char *body = p->use_else ? r->else_body : r->body;
	size_t len = p->use_else ? r->else_len : r->body_len;
	int raw = r->source == REPORT_RAW || (r->source == REPORT_RAW_ELSE_ANY && !p->use_else);
	char *text;
	int rc = expand(out, body, len, p, r->name, raw, err, errlen);

	text = sqlite3_str_finish(out);
	if (!rc && !text)
		rc = fail(err, errlen, "out of memory");
	if (rc) {
		sqlite3_free(text);
		return rc;
	}
	*sql = strdup(text);
	sqlite3_free(text);
	return *sql ? 0 : fail(err, errlen, "out of memory");
}
