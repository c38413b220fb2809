/*
 * The server's small endpoints and its counters: /tables (every table and
 * column with its type and meaning), /health, /stats (JSON) and /metrics
 * (Prometheus text 0.0.4), and the counters they show.
 *
 *  - Column names and types in /tables are read from the live tables
 *    (PRAGMA table_xinfo in a query slot's sandbox), so they are never out
 *    of date; the meanings come from the table below (docs/schema.md). A table
 *    that cannot be read live is listed from the table below.
 *  - /stats and /metrics read the collector's counters through the
 *    callback the daemon gave (cfg.stats), then the server's own: the same
 *    figures the `stats` SQL table shows.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "format.h"
#include "serverInt.h"

struct table_doc {
	const char *name, *meaning;
};

struct column_doc {
	const char *table, *column, *type, *meaning;
};

static const struct table_doc table_docs[] = {
	{ "flows", "one row per bidirectional flow on one interface, written when it ends, "
		   "times out or flowstored stops" },
	{ "connections", "one row per TCP connection of a local socket, written when it closes" },
	{ "tcp_states", "one row per TCP state transition of a local socket" },
	{ "flows_1m", "per-minute rollups of flows and connections: one row per minute, key and "
		      "raw partition rolled up (always sum())" },
	{ "flows_1h", "per-hour rollups of flows and connections, as flows_1m per hour" },
	{ "partitions", "the partition files of the data dir, one row each" },
	{ "stats", "the daemon's counters, one row per series (as /metrics)" },
};

static const struct column_doc column_docs[] = {
	{ "flows", "ts", "INTEGER", "first packet, ns since the Unix epoch (UTC)" },
	{ "flows", "ts_end", "INTEGER", "last packet, ns" },
	{ "flows", "proto", "TEXT", "'tcp', 'udp', 'icmp', 'icmp6', else the protocol number" },
	{ "flows", "orig_addr", "TEXT", "originator address (the side seen first)" },
	{ "flows", "orig_port", "INTEGER", "originator port; ICMP: the message type" },
	{ "flows", "resp_addr", "TEXT", "responder address" },
	{ "flows", "resp_port", "INTEGER", "responder port; ICMP: the reply type, else the code" },
	{ "flows", "orig_pkts", "INTEGER", "packets originator to responder" },
	{ "flows", "orig_bytes", "INTEGER", "bytes originator to responder, IP layer" },
	{ "flows", "resp_pkts", "INTEGER", "packets responder to originator" },
	{ "flows", "resp_bytes", "INTEGER", "bytes responder to originator, IP layer" },
	{ "flows", "conn_state", "TEXT", "Zeek's connection state (S0, SF, REJ, ...)" },
	{ "flows", "history", "TEXT", "Zeek's history letters (ShADadFf ...)" },
	{ "flows", "ifname", "TEXT", "interface the flow was seen on; NULL if it is gone" },
	{ "flows", "end_reason", "TEXT", "why it was written: fin, rst, active_timeout, "
					 "idle_timeout, map_full, shutdown" },
	{ "flows", "pid", "INTEGER", "process owning the local socket, NULL if unknown" },
	{ "flows", "comm", "TEXT", "that process's command name, NULL if unknown" },
	{ "flows", "sock_cookie", "INTEGER", "local socket cookie: joins connections and "
					     "tcp_states; NULL if none" },
	{ "connections", "ts", "INTEGER", "opened (first state change), ns since the epoch" },
	{ "connections", "ts_end", "INTEGER", "closed, ns" },
	{ "connections", "direction", "TEXT", "'out': this host connected; 'in': a peer "
					      "connected to us; NULL if unknown" },
	{ "connections", "orig_addr", "TEXT", "address of the side that connected" },
	{ "connections", "orig_port", "INTEGER", "port of the side that connected" },
	{ "connections", "resp_addr", "TEXT", "address of the side that accepted" },
	{ "connections", "resp_port", "INTEGER", "port of the side that accepted" },
	{ "connections", "pid", "INTEGER", "the process that connected, or that first used an "
					   "accepted socket (--accept-owner), NULL if unknown" },
	{ "connections", "uid", "INTEGER", "its user id" },
	{ "connections", "comm", "TEXT", "its command name" },
	{ "connections", "cgroup_id", "INTEGER", "its cgroup v2 id" },
	{ "connections", "bytes_sent", "INTEGER", "payload bytes sent and acknowledged" },
	{ "connections", "bytes_received", "INTEGER", "payload bytes received" },
	{ "connections", "segs_out", "INTEGER", "TCP segments sent" },
	{ "connections", "segs_in", "INTEGER", "TCP segments received" },
	{ "connections", "retransmits", "INTEGER", "segments retransmitted" },
	{ "connections", "srtt_us", "INTEGER", "smoothed round-trip time at close, us" },
	{ "connections", "states", "TEXT", "the states it entered, in order "
					   "('SYN_SENT>ESTABLISHED>...')" },
	{ "connections", "close_state", "TEXT", "the state it moved to CLOSE from" },
	{ "connections", "sock_cookie", "INTEGER", "socket cookie: joins tcp_states and flows" },
	{ "tcp_states", "ts", "INTEGER", "when the transition happened, ns since the epoch" },
	{ "tcp_states", "direction", "TEXT", "'out', 'in', NULL if not known at that point" },
	{ "tcp_states", "orig_addr", "TEXT", "as in connections (direction NULL: local)" },
	{ "tcp_states", "orig_port", "INTEGER", "as in connections (direction NULL: local)" },
	{ "tcp_states", "resp_addr", "TEXT", "as in connections (direction NULL: remote)" },
	{ "tcp_states", "resp_port", "INTEGER", "as in connections (direction NULL: remote)" },
	{ "tcp_states", "old_state", "TEXT", "kernel TCP state before" },
	{ "tcp_states", "new_state", "TEXT", "kernel TCP state after" },
	{ "tcp_states", "pid", "INTEGER", "the owner where known at that point, else NULL" },
	{ "tcp_states", "comm", "TEXT", "the owner's command name, else NULL" },
	{ "tcp_states", "sock_cookie", "INTEGER", "socket cookie: all transitions of one "
						  "socket share it" },
	{ "flows_1m", "ts", "INTEGER", "start of the bucket (a whole minute or hour), ns since "
	                               "the epoch" },
	{ "flows_1m", "proto", "TEXT", "as in flows; 'tcp' for rows counted from connections" },
	{ "flows_1m", "orig_addr", "TEXT", "originator address (flows), the side that connected "
	                                   "(connections)" },
	{ "flows_1m", "resp_addr", "TEXT", "responder address, the side that accepted" },
	{ "flows_1m", "resp_port", "INTEGER", "responder port" },
	{ "flows_1m", "direction", "TEXT", "NULL on rows counted from flows; 'out', 'in' or NULL "
	                                   "on rows counted from connections" },
	{ "flows_1m", "comm", "TEXT", "the local process's command name, NULL if unknown" },
	{ "flows_1m", "flows", "INTEGER", "flow rows counted in this row (0 on rows counted from "
	                                  "connections)" },
	{ "flows_1m", "orig_pkts", "INTEGER", "sum of the flows' orig_pkts" },
	{ "flows_1m", "orig_bytes", "INTEGER", "sum of the flows' orig_bytes" },
	{ "flows_1m", "resp_pkts", "INTEGER", "sum of the flows' resp_pkts" },
	{ "flows_1m", "resp_bytes", "INTEGER", "sum of the flows' resp_bytes" },
	{ "flows_1m", "connections", "INTEGER", "TCP connections opened in the bucket (0 on rows "
	                                        "counted from flows)" },
	{ "flows_1m", "failed_connections", "INTEGER", "of those, the ones that never reached "
	                                               "ESTABLISHED" },
	{ "flows_1m", "retransmits", "INTEGER", "sum of those connections' retransmits" },
	{ "partitions", "name", "TEXT", "file name: <kind>-<UTC period start>-<seq>.db" },
	{ "partitions", "kind", "TEXT", "what the file holds: 'raw' rows, '1m' (flows_1m) or '1h' "
					"(flows_1h) rollups" },
	{ "partitions", "status", "TEXT", "'open' (being written), 'sealed', 'rollup' (a rollup "
					  "file), or 'broken' (unreadable, see error)" },
	{ "partitions", "period_start", "INTEGER", "start of the period it was opened for, ns" },
	{ "partitions", "period_end", "INTEGER", "end of that period (exclusive), ns" },
	{ "partitions", "seq", "INTEGER", "0, +1 for each rollover at the row cap in the period" },
	{ "partitions", "created", "INTEGER", "when the file was created, ns" },
	{ "partitions", "sealed_at", "INTEGER", "when it was sealed, ns; NULL while open" },
	{ "partitions", "ts_min", "INTEGER", "smallest ts of any row in it, ns" },
	{ "partitions", "ts_max", "INTEGER", "largest ts of any row in it, ns" },
	{ "partitions", "flows", "INTEGER", "rows in its flows table (NULL for rollup files)" },
	{ "partitions", "connections", "INTEGER", "rows in its connections table (NULL for rollup "
						  "files)" },
	{ "partitions", "tcp_states", "INTEGER", "rows in its tcp_states table (NULL for rollup "
						 "files)" },
	{ "partitions", "bytes", "INTEGER", "size of the file, bytes" },
	{ "partitions", "error", "TEXT", "why a broken file cannot be read; NULL otherwise" },
	{ "partitions", "rows", "INTEGER", "rows in all its tables" },
	{ "partitions", "rolled_up", "INTEGER", "raw files: 1 once its rows are in the rollups "
						"(or it has none to roll up), else 0" },
	{ "partitions", "rolled_from", "TEXT", "rollup files: the oldest raw partition rolled into "
					       "it" },
	{ "stats", "name", "TEXT", "counter name, as in /metrics without the flowstore_ prefix" },
	{ "stats", "labels", "TEXT", "labels as Prometheus writes them ('table=\"flows\"'), '' "
				     "if none" },
	{ "stats", "value", "NUMERIC", "current value" },
	{ "stats", "kind", "TEXT", "'counter' (only grows) or 'gauge'" },
	{ "stats", "help", "TEXT", "what it counts" },
};

#define NTABLES (sizeof(table_docs) / sizeof(table_docs[0]))
#define NCOLUMN_DOCS (sizeof(column_docs) / sizeof(column_docs[0]))

/* The table whose entries in column_docs describe `table`'s columns:
 * flows_1h has flows_1m's, per hour. */
static const char *docs_of(const char *table)
{
	return strcmp(table, "flows_1h") ? table : "flows_1m";
}

static const char *column_meaning(const char *table, const char *column)
{
	table = docs_of(table);
	for (size_t i = 0; i < NCOLUMN_DOCS; i++)
		if (!strcmp(column_docs[i].table, table) && !strcmp(column_docs[i].column, column))
			return column_docs[i].meaning;
	if (!strcmp(column, "partition"))
		return "the partition file the row is in (hidden: only SELECT partition shows it)";
	return "";
}

/* ---- /tables ----------------------------------------------------------------- */

struct column {
	const char *table, *table_meaning;
	char *name, *type;
	const char *meaning;
};

struct columns {
	struct column *v;
	size_t n, cap;
	bool oom;
};

static void columns_add(struct columns *cs, const struct table_doc *t, const char *name,
			const char *type)
{
	struct column *c;

	if (cs->n == cs->cap) {
		size_t cap = cs->cap ? cs->cap * 2 : 64;
		struct column *v = realloc(cs->v, cap * sizeof(*v));

		if (!v) {
			cs->oom = true;
			return;
		}
		cs->v = v;
		cs->cap = cap;
	}
	c = &cs->v[cs->n];
	c->table = t->name;
	c->table_meaning = t->meaning;
	c->name = strdup(name);
	c->type = strdup(type);
	c->meaning = column_meaning(t->name, name);
	if (!c->name || !c->type) {
		free(c->name);
		free(c->type);
		cs->oom = true;
		return;
	}
	cs->n++;
}

static void columns_free(struct columns *cs)
{
	for (size_t i = 0; i < cs->n; i++) {
		free(cs->v[i].name);
		free(cs->v[i].type);
	}
	free(cs->v);
}

/* The live columns of one table, hidden ones included. 0 if none could be read. */
static size_t live_columns(struct sandbox *sb, const struct table_doc *t, struct columns *cs)
{
	char sql[64], err[256];
	sqlite3_stmt *stmt = NULL;
	size_t before = cs->n;
	int64_t deadline;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	deadline = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + 5000000000LL;
	snprintf(sql, sizeof(sql), "PRAGMA table_xinfo(%s)", t->name);
	if (sandbox_prepare(sb, sql, strlen(sql), deadline, &stmt, err, sizeof(err)) || !stmt)
		return 0;
	while (sqlite3_step(stmt) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(stmt, 1);
		const char *type = (const char *)sqlite3_column_text(stmt, 2);

		if (name)
			columns_add(cs, t, name, type ? type : "");
	}
	sqlite3_finalize(stmt);
	return cs->n - before;
}

static void collect_columns(struct sandbox *sb, struct columns *cs)
{
	for (size_t t = 0; t < NTABLES; t++) {
		if (sb && live_columns(sb, &table_docs[t], cs))
			continue;
		for (size_t i = 0; i < NCOLUMN_DOCS; i++)
			if (!strcmp(column_docs[i].table, docs_of(table_docs[t].name)))
				columns_add(cs, &table_docs[t], column_docs[i].column,
					    column_docs[i].type);
	}
}

static void tables_json(const struct columns *cs, struct http_buf *b)
{
	const char *table = NULL;

	http_buf_puts(b, "{\"tables\":[");
	for (size_t i = 0; i < cs->n; i++) {
		const struct column *c = &cs->v[i];

		if (!table || strcmp(table, c->table)) {
			http_buf_puts(b, table ? "]},\n{\"name\":" : "\n{\"name\":");
			http_buf_json(b, c->table, strlen(c->table));
			http_buf_puts(b, ",\"meaning\":");
			http_buf_json(b, c->table_meaning, strlen(c->table_meaning));
			http_buf_puts(b, ",\"columns\":[");
			table = c->table;
		} else {
			http_buf_puts(b, ",");
		}
		http_buf_puts(b, "\n  {\"name\":");
		http_buf_json(b, c->name, strlen(c->name));
		http_buf_puts(b, ",\"type\":");
		http_buf_json(b, c->type, strlen(c->type));
		http_buf_puts(b, ",\"meaning\":");
		http_buf_json(b, c->meaning, strlen(c->meaning));
		http_buf_puts(b, "}");
	}
	http_buf_puts(b, table ? "]}\n]}\n" : "]}\n");
}

static int buf_sink(void *ctx, const void *data, size_t len)
{
	struct http_buf *b = ctx;

	http_buf_add(b, data, len);
	return b->oom;
}

/* The listing as rows (table, column, type, meaning) in any format: through
 * a private in-memory database, so the output is exactly what a query of the
 * same rows would give. */
static int tables_rows(const struct columns *cs, enum qformat f, struct http_buf *b)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *ins = NULL, *sel = NULL;
	struct qwriter *w = NULL;
	int rc = -EIO;

	if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) ||
	    sqlite3_exec(db, "CREATE TABLE t(\"table\" TEXT, \"column\" TEXT, type TEXT, "
			 "meaning TEXT)", NULL, NULL, NULL) ||
	    sqlite3_prepare_v2(db, "INSERT INTO t VALUES (?, ?, ?, ?)", -1, &ins, NULL))
		goto cleanup;
	for (size_t i = 0; i < cs->n; i++) {
		sqlite3_bind_text(ins, 1, cs->v[i].table, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 2, cs->v[i].name, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 3, cs->v[i].type, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 4, cs->v[i].meaning, -1, SQLITE_STATIC);
		if (sqlite3_step(ins) != SQLITE_DONE)
			goto cleanup;
		sqlite3_reset(ins);
	}
	if (sqlite3_prepare_v2(db, "SELECT * FROM t ORDER BY rowid", -1, &sel, NULL) ||
	    !(w = qwriter_new(f, 0, buf_sink, b)) || qwriter_begin(w, sel))
		goto cleanup;
	while (sqlite3_step(sel) == SQLITE_ROW)
		if (qwriter_row(w, sel))
			goto cleanup;
	rc = qwriter_end(w, 0);
cleanup:
	qwriter_free(w);
	sqlite3_finalize(sel);
	sqlite3_finalize(ins);
	sqlite3_close(db);
	return rc;
}

static void respond_buf(struct http_conn *c, const char *type, struct http_buf *b, bool *keep)
{
	if (b->oom) {
		if (http_respond_error(c, 500, "internal", "out of memory", *keep, NULL))
			*keep = false;
	} else if (http_respond(c, 200, type, b->p, b->len, *keep, NULL)) {
		*keep = false;
	}
}

/* format= is the only parameter of /tables. 0, or answered with 400. */
static int tables_format(struct http_conn *c, enum qformat *f, bool *keep)
{
	char *q = c->req.query, *name, *value, msg[160] = "the query string has a bad %-escape";
	size_t len;
	int rc;

	*f = QFORMAT_JSON;
	while ((rc = http_query_next(&q, &name, &value, &len)) > 0) {
		if (strcmp(name, "format"))
			snprintf(msg, sizeof(msg), "unknown parameter '%.64s'; /tables takes format",
				 name);
		else if (qformat_parse(value, f))
			snprintf(msg, sizeof(msg), "format: '%.64s' is not table, csv, tsv, json or "
				 "ndjson", value);
		else
			continue;
		rc = -EINVAL;
		break;
	}
	if (rc < 0) {
		if (http_respond_error(c, 400, "bad_request", msg, *keep, NULL))
			*keep = false;
		return -EINVAL;
	}
	return 0;
}

void server_tables(struct worker *w, struct http_conn *c, bool *keep)
{
	struct columns cs = { 0 };
	struct http_buf b = { 0 };
	struct query_server *srv = w->srv;
	struct query_slot *slot = NULL;
	struct sandbox *sb = NULL;
	enum qformat f;

	if (tables_format(c, &f, keep))
		return;
	/* The live columns need a sandbox, hence a slot; when every slot is
	 * busy for a moment, the built-in list answers instead. */
	if (server_slot_take(srv, c->fd, 100, &slot) == 0 && server_slot_sandbox(srv, slot, &sb))
		sb = NULL;
	collect_columns(sb, &cs);
	if (slot)
		server_slot_release(srv, slot);
	if (cs.oom)
		b.oom = true;
	else if (f == QFORMAT_JSON)
		tables_json(&cs, &b);
	else if (tables_rows(&cs, f, &b))
		b.oom = true;
	respond_buf(c, f == QFORMAT_JSON ? "application/json" : qformat_content_type(f), &b, keep);
	http_buf_free(&b);
	columns_free(&cs);
}

/* ---- counters ------------------------------------------------------------------ */

static const char *const outcome_names[OUTCOME_N] = {
	[OUTCOME_OK] = "ok",
	[OUTCOME_TRUNCATED] = "truncated",
	[OUTCOME_SQL_ERROR] = "sql_error",
	[OUTCOME_DENIED] = "denied",
	[OUTCOME_TOO_LARGE] = "too_large",
	[OUTCOME_TIMEOUT] = "timeout",
	[OUTCOME_CANCELLED] = "cancelled",
	[OUTCOME_RUNTIME_ERROR] = "runtime_error",
	[OUTCOME_BUSY] = "busy",
	[OUTCOME_FAILED] = "failed",
};

/* Upper bounds in seconds; the last bucket is +Inf. */
static const double latency_bounds[LATENCY_BUCKETS - 1] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

void server_count_query(struct query_server *srv, enum query_outcome o, int64_t elapsed_ns)
{
	double s = (double)elapsed_ns / 1e9;
	size_t b = 0;

	counter_add(&srv->counters.queries[o], 1);
	if (o == OUTCOME_BUSY)
		return;
	while (b < LATENCY_BUCKETS - 1 && s > latency_bounds[b])
		b++;
	counter_add(&srv->counters.latency[b], 1);
	counter_add(&srv->counters.latency_ns_total, elapsed_ns > 0 ? (uint64_t)elapsed_ns : 0);
}

/* histogram: the duration series say "histogram" (for /metrics' TYPE line)
 * rather than "counter" (the stats table's two kinds). */
static void server_each(struct query_server *srv, qstat_emit_fn emit, void *arg, bool histogram)
{
	const struct server_counters *k = &srv->counters;
	const char *hkind = histogram ? "histogram" : "counter";
	static const char *const classes[5] = { "1xx", "2xx", "3xx", "4xx", "5xx" };
	char labels[64];
	uint64_t cumulative = 0;

	for (int i = 1; i < 5; i++) {
		snprintf(labels, sizeof(labels), "code=\"%s\"", classes[i]);
		emit(arg, "query_requests_total", labels, "counter",
		     "HTTP responses of the query server, by status class.",
		     (double)counter_get(&k->requests[i]));
	}
	for (int o = 0; o < OUTCOME_N; o++) {
		snprintf(labels, sizeof(labels), "outcome=\"%s\"", outcome_names[o]);
		emit(arg, "queries_total", labels, "counter", "Queries, by outcome.",
		     (double)counter_get(&k->queries[o]));
	}
	for (int b = 0; b < LATENCY_BUCKETS; b++) {
		cumulative += counter_get(&k->latency[b]);
		if (b < LATENCY_BUCKETS - 1)
			snprintf(labels, sizeof(labels), "le=\"%g\"", latency_bounds[b]);
		else
			snprintf(labels, sizeof(labels), "le=\"+Inf\"");
		emit(arg, "query_duration_seconds_bucket", labels, hkind,
		     "Time to answer a query (queue wait included), seconds.", (double)cumulative);
	}
	emit(arg, "query_duration_seconds_sum", "", hkind,
	     "Time to answer a query (queue wait included), seconds.",
	     (double)counter_get(&k->latency_ns_total) / 1e9);
	emit(arg, "query_duration_seconds_count", "", hkind,
	     "Time to answer a query (queue wait included), seconds.", (double)cumulative);
	emit(arg, "queries_running", "", "gauge", "Queries running now.",
	     (double)counter_get(&k->queries_running));
	emit(arg, "query_rows_sent_total", "", "counter", "Result rows sent.",
	     (double)counter_get(&k->rows_sent));
	emit(arg, "query_connections_open", "", "gauge", "Connections to the query socket now.",
	     (double)counter_get(&k->connections_open));
	emit(arg, "query_connections_total", "", "counter",
	     "Connections accepted on the query socket.",
	     (double)counter_get(&k->connections_total));
	emit(arg, "query_connections_rejected_total", "", "counter",
	     "Connections answered 503 at once: max_connections reached.",
	     (double)counter_get(&k->connections_rejected));
}

void query_server_stats(struct query_server *srv, qstat_emit_fn emit, void *arg)
{
	if (srv)
		server_each(srv, emit, arg, false);
}

void server_stats_source(void *ctx, qstat_emit_fn emit, void *arg)
{
	struct query_server *srv = ctx;

	if (srv->cfg.stats)
		srv->cfg.stats(srv->cfg.stats_ctx, emit, arg);
	server_each(srv, emit, arg, false);
}

/* ---- /stats, /metrics, /health --------------------------------------------------------- */

static void put_number(struct http_buf *b, double v, const char *nan)
{
	if (isnan(v) || isinf(v))
		http_buf_puts(b, nan);
	else if (v == floor(v) && fabs(v) < 1e15)
		http_buf_printf(b, "%.0f", v);
	else
		http_buf_printf(b, "%.15g", v);
}

struct json_emit {
	struct http_buf *b;
	bool first;
};

/* Key: the name, then each label value: rows_written_flows (as the log line). */
static void emit_json(void *arg, const char *name, const char *labels, const char *kind,
		      const char *help, double value)
{
	struct json_emit *j = arg;
	struct http_buf key = { 0 };

	(void)kind;
	(void)help;
	http_buf_puts(&key, name);
	for (const char *p = strchr(labels, '"'); p; p = strchr(p + 1, '"')) {
		const char *end = strchr(p + 1, '"');

		if (!end)
			break;
		http_buf_puts(&key, "_");
		http_buf_add(&key, p + 1, (size_t)(end - p - 1));
		p = end;
	}
	http_buf_puts(j->b, j->first ? "\n    " : ",\n    ");
	j->first = false;
	http_buf_json(j->b, key.p ? key.p : "", key.len);
	http_buf_puts(j->b, ": ");
	put_number(j->b, value, "null");
	if (key.oom)
		j->b->oom = true;
	http_buf_free(&key);
}

void server_stats_json(struct query_server *srv, struct http_conn *c, bool *keep)
{
	struct http_buf b = { 0 };
	struct json_emit j = { &b, true };

	http_buf_puts(&b, "{\n  \"collector\": {");
	if (srv->cfg.stats)
		srv->cfg.stats(srv->cfg.stats_ctx, emit_json, &j);
	http_buf_puts(&b, "\n  },\n  \"server\": {");
	j.first = true;
	server_each(srv, emit_json, &j, false);
	http_buf_puts(&b, "\n  }\n}\n");
	respond_buf(c, "application/json", &b, keep);
	http_buf_free(&b);
}

struct prom_emit {
	struct http_buf *b;
	char family[128];
};

/* HELP and TYPE once per family; a histogram's family is its name without
 * _bucket, _sum or _count. */
static void emit_prom(void *arg, const char *name, const char *labels, const char *kind,
		      const char *help, double value)
{
	struct prom_emit *pe = arg;
	char family[128];

	snprintf(family, sizeof(family), "%s", name);
	if (!strcmp(kind, "histogram")) {
		static const char *const suffixes[] = { "_bucket", "_sum", "_count" };

		for (size_t i = 0; i < 3; i++) {
			size_t n = strlen(family), s = strlen(suffixes[i]);

			if (n > s && !strcmp(family + n - s, suffixes[i]))
				family[n - s] = 0;
		}
	}
	if (strcmp(family, pe->family)) {
		snprintf(pe->family, sizeof(pe->family), "%s", family);
		http_buf_printf(pe->b, "# HELP flowstore_%s %s\n# TYPE flowstore_%s %s\n", family,
				help, family, kind);
	}
	http_buf_printf(pe->b, "flowstore_%s%s%s%s ", name, *labels ? "{" : "", labels,
			*labels ? "}" : "");
	put_number(pe->b, value, isnan(value) ? "NaN" : value > 0 ? "+Inf" : "-Inf");
	http_buf_puts(pe->b, "\n");
}

void server_metrics(struct query_server *srv, struct http_conn *c, bool *keep)
{
	struct http_buf b = { 0 };
	struct prom_emit pe = { .b = &b };

	if (srv->cfg.stats)
		srv->cfg.stats(srv->cfg.stats_ctx, emit_prom, &pe);
	server_each(srv, emit_prom, &pe, true);
	respond_buf(c, "text/plain; version=0.0.4; charset=utf-8", &b, keep);
	http_buf_free(&b);
}

void server_health(struct query_server *srv, struct http_conn *c, bool *keep)
{
	struct http_buf b = { 0 };

	http_buf_printf(&b, "{\"status\":\"ok\",\"version\":\"%s\",\"uptime_s\":%lld,"
			"\"queries_running\":%llu,\"connections_open\":%llu,\"data_dir\":",
			FLOWSTORE_VERSION, (long long)((http_now_ms() - srv->started_ms) / 1000),
			(unsigned long long)counter_get(&srv->counters.queries_running),
			(unsigned long long)counter_get(&srv->counters.connections_open));
	http_buf_json(&b, srv->data_dir, strlen(srv->data_dir));
	http_buf_puts(&b, "}\n");
	respond_buf(c, "application/json", &b, keep);
	http_buf_free(&b);
}
