/*
 * report: the reports of `flowq report NAME` (docs/reports.md), kept as
 * SQL files in query/reports/ and compiled into flowq.
 *
 * A report file starts with a header of comment lines:
 *
 *   -- NAME: one line saying what it answers
 *   -- source: any | raw | raw, else any
 *   -- lookback: DURATION            (optional)
 *   -- (any other comment lines: notes for the reader)
 *
 * then its SQL, with the window as :since and :until (ns, the window is
 * [since, until)). The source says what the SQL reads:
 *
 *   any    rows of the rollup shape (flows_1m's columns) from {source},
 *          which flowq expands per window into the coarsest tables that
 *          hold it: flows_1h or flows_1m for what is rolled up, raw flows
 *          and connections (reshaped) for the rest;
 *   raw    flows, connections, tcp_states directly: the window must lie
 *          within what raw partitions still hold, else the report refuses;
 *   raw, else any
 *          two SQL bodies separated by a line "-- else:": the first over
 *          raw tables when raw partitions hold the whole window, the
 *          second (over {source}) otherwise.
 *
 * lookback widens what {source} reads to [since - lookback, until) for
 * reports that compare the window with what came before it.
 *
 * Functions return 0 or a negative errno, with a one-line message in err.
 */
#ifndef FLOWSTORE_REPORT_H
#define FLOWSTORE_REPORT_H

#include <stddef.h>
#include <stdint.h>

enum report_source {
	REPORT_ANY = 0,
	REPORT_RAW = 1,
	REPORT_RAW_ELSE_ANY = 2,
};

#define REPORT_NAME_MAX 64
#define REPORT_SUMMARY_MAX 160

/* One report, parsed from its file. body and else_body point into text,
 * which the struct owns (free with report_free). */
struct report {
	char name[REPORT_NAME_MAX];
	char summary[REPORT_SUMMARY_MAX];
	enum report_source source;
	int64_t lookback_ns;
	char *text;
	const char *body, *else_body; /* else_body NULL unless REPORT_RAW_ELSE_ANY */
	size_t body_len, else_len;
};

/* The report files as compiled in: reports_gen.c, which CMake generates
 * from query/reports/NAME.sql (sorted by name). */
struct report_file {
	const char *name;
	const char *text;
};
extern const struct report_file report_files[];
extern const size_t report_nfiles;

/* The reports compiled in, sorted by name. */
size_t report_count(void);
const char *report_name(size_t i);

/* Parse report i (0..report_count()-1) or the one called name (-ENOENT:
 * no such report). -EINVAL: the file is malformed (err says how). */
int report_load(size_t i, struct report *out, char *err, size_t errlen);
int report_find(const char *name, struct report *out, char *err, size_t errlen);
void report_free(struct report *r);

/* What the data dir holds, as the `partitions` table says it (one row of
 * REPORT_TIERS_SQL); INT64_MAX where there is nothing. */
struct report_tiers {
	int64_t raw_start;  /* period start of the oldest raw partition */
	int raw_removed;    /* rolled-up raw partitions older than it are gone */
	int64_t unrolled;   /* smallest ts of a raw partition not rolled up yet */
	int64_t m_start;    /* period start of the oldest 1m file */
	int64_t h_min;      /* smallest ts (bucket) in the 1h files */
};

/* The query that reads them: one row, five columns, in that order. */
extern const char REPORT_TIERS_SQL[];

/* Parse the CSV answer (header line, one row) to REPORT_TIERS_SQL. */
int report_tiers_parse(const char *csv, size_t len, struct report_tiers *out);

/* How one run of a report reads its window. */
struct report_plan {
	int use_else;          /* the "else" body */
	int64_t since, until;  /* :since, :until as substituted (widened to whole
				  buckets when rollups are read) */
	int64_t lo, hi;        /* what {source} covers: [lo, hi) */
	const char *rollup;    /* "flows_1h", "flows_1m" or NULL (raw only) */
	int64_t split;         /* rollups for ts < split, raw from split on */
};

/*
 * Plan report r over [since, until) given what the dir holds (the rule is
 * in docs/reports.md, "Which table a report reads"). -ERANGE: the report
 * needs raw rows the dir no longer has (err says from when it has them);
 * -EINVAL: an empty window.
 */
int report_plan(const struct report *r, int64_t since, int64_t until,
		const struct report_tiers *t, struct report_plan *out, char *err, size_t errlen);

/* The SQL to run for plan p: the body with :since, :until and {source}
 * expanded. malloc'ed in *sql. */
int report_sql(const struct report *r, const struct report_plan *p, char **sql, char *err,
	       size_t errlen);

#endif /* FLOWSTORE_REPORT_H */
