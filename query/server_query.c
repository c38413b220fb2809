/*
 * GET/POST /query: one SQL statement, run on the connection's own thread in
 * its sandbox, its result formatted by a qwriter and streamed to the client.
 *
 *   1. Parameters are checked before a slot is taken: a bad request never
 *      waits in the queue.
 *   2. A slot (at most max_queries run at once) is waited for up to
 *      queue_wait_ms, else 503 with Retry-After: 1.
 *   3. The time budget, min(timeout=, max_timeout_ms), starts before
 *      sandbox_prepare and covers every step.
 *   4. The first 64 KiB of output are held back: a result that fits is
 *      sent whole with a Content-Length, and an error found before that
 *      point still gets its own status. Past 64 KiB the status (200) is
 *      sent and the rest follows in chunks of 16 KiB; an error after that
 *      ends the connection without the last chunk, so the client sees a
 *      broken transfer, never a short result that looks whole. The row
 *      count and truncation go in headers (whole) or trailers (chunked):
 *      X-Flowstore-Rows, X-Flowstore-Truncated.
 *   5. A send that fails (client gone, or stalled past the request
 *      timeout) stops the stepping; a client that hangs up while its query
 *      produces nothing is noticed by the listener, which cancels the
 *      sandbox (server.c).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "format.h"
#include "serverInt.h"

#define HOLD_BYTES (64 << 10)
#define CHUNK_BYTES (16 << 10)

struct query_params {
	const char *sql;
	size_t sql_len;
	enum qformat format;
	int64_t timeout_ms; /* 0: the server's maximum */
	uint64_t max_rows;
	bool has_max_rows;
};

/* An answer that is not a result. */
struct query_error {
	int status;
	const char *code;
	char message[1024];
};

struct query_run {
	struct http_conn *c;
	struct http_buf out;
	enum qformat format;
	bool head_sent, failed, keep;
};

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

__attribute__((format(printf, 4, 5))) static int refuse(struct query_error *e, int status,
							const char *code, const char *fmt, ...)
{
	va_list ap;

	e->status = status;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return status;
}

static int parse_timeout(const char *v, int64_t *ms)
{
	char *end;
	double s;

	errno = 0;
	s = strtod(v, &end);
	if (errno || end == v || *end || !isfinite(s) || s <= 0 || s > 86400 * 365)
		return -EINVAL;
	*ms = (int64_t)ceil(s * 1000);
	return 0;
}

static int parse_rows(const char *v, uint64_t *n)
{
	char *end;

	if (*v < '0' || *v > '9')
		return -EINVAL;
	errno = 0;
	*n = strtoull(v, &end, 10);
	return errno || *end || *n == 0 ? -EINVAL : 0;
}

static int parse_param(struct query_params *p, const char *name, const char *value, size_t len,
		       struct query_error *e)
{
	if (strcmp(name, "sql") == 0) {
		p->sql = value;
		p->sql_len = len;
	} else if (strcmp(name, "format") == 0) {
		if (qformat_parse(value, &p->format))
			return refuse(e, 400, "bad_request", "format: '%.64s' is not table, csv, tsv, "
				      "json or ndjson", value);
	} else if (strcmp(name, "timeout") == 0) {
		if (parse_timeout(value, &p->timeout_ms))
			return refuse(e, 400, "bad_request", "timeout: '%.64s' is not a number of "
				      "seconds greater than 0", value);
	} else if (strcmp(name, "max_rows") == 0) {
		if (parse_rows(value, &p->max_rows))
			return refuse(e, 400, "bad_request", "max_rows: '%.64s' is not a whole number "
				      "greater than 0", value);
		p->has_max_rows = true;
	} else {
		return refuse(e, 400, "bad_request", "unknown parameter '%.64s'; /query takes sql, "
			      "format, timeout, max_rows", name);
	}
	return 0;
}

static bool blank(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return false;
	return true;
}

/* The query string, then where the SQL comes from. 0 or a status (e filled). */
static int parse_params(const struct query_server *srv, struct http_conn *c,
			struct query_params *p, struct query_error *e)
{
	char *q = c->req.query, *name, *value;
	size_t len;
	int rc;

	memset(p, 0, sizeof(*p));
	p->format = QFORMAT_JSON;
	while ((rc = http_query_next(&q, &name, &value, &len)) > 0)
		if (parse_param(p, name, value, len, e))
			return e->status;
	if (rc < 0)
		return refuse(e, 400, "bad_request", "the query string has a bad %%-escape");
	if (c->req.body_len) {
		if (p->sql)
			return refuse(e, 400, "bad_request", "SQL both in the body and in sql=; send "
				      "one");
		p->sql = c->req.body;
		p->sql_len = c->req.body_len;
	}
	if (!p->sql || blank(p->sql, p->sql_len))
		return refuse(e, 400, "bad_request", "no SQL: send it as the body of a POST, or "
			      "as GET /query?sql=...");
	if (p->sql_len > srv->cfg.max_sql_bytes)
		return refuse(e, 413, "too_large", "the SQL is longer than %zu bytes",
			      srv->cfg.max_sql_bytes);
	return 0;
}

/* ---- the sink: hold back, then chunks ------------------------------------------- */

static int flush_out(struct query_run *r)
{
	int rc = 0;

	if (!r->head_sent) {
		bool chunked = http_chunked(r->c);

		if (!chunked)
			r->keep = false; /* HTTP/1.0: the end of the body is the close */
		rc = http_send_head(r->c, 200, qformat_content_type(r->format), -1, r->keep,
				    chunked ? "Trailer: X-Flowstore-Rows, X-Flowstore-Truncated\r\n"
					    : NULL);
		r->head_sent = true;
	}
	if (!rc && r->out.len)
		rc = http_send_chunk(r->c, r->out.p, r->out.len);
	r->out.len = 0;
	if (rc)
		r->failed = true;
	return rc;
}

static int out_sink(void *ctx, const void *buf, size_t len)
{
	struct query_run *r = ctx;

	if (r->failed)
		return 1;
	http_buf_add(&r->out, buf, len);
	if (r->out.oom) {
		r->failed = true;
		return 1;
	}
	if (r->out.len < (r->head_sent ? CHUNK_BYTES : HOLD_BYTES))
		return 0;
	return flush_out(r) ? 1 : 0;
}

/* A successful result's last bytes. */
static int finish_out(struct query_run *r, uint64_t rows, bool truncated)
{
	char extra[160];
	int rc;

	snprintf(extra, sizeof(extra), "X-Flowstore-Rows: %llu\r\nX-Flowstore-Truncated: %s\r\n",
		 (unsigned long long)rows, truncated ? "true" : "false");
	if (!r->head_sent)
		return http_respond(r->c, 200, qformat_content_type(r->format), r->out.p,
				    r->out.len, r->keep, extra);
	rc = flush_out(r);
	return rc ? rc : http_send_last_chunk(r->c, extra);
}

/* ---- running it ---------------------------------------------------------------- */

static int error_status(enum qerr e, int rc)
{
	switch (e) {
	case QERR_SQL: return 400;
	case QERR_DENIED: return 403;
	case QERR_TOO_LARGE: return 413;
	case QERR_TIMEOUT: return 504;
	case QERR_CANCELLED: return 503;
	default: break;
	}
	switch (rc & 0xff) {
	case SQLITE_NOMEM: case SQLITE_IOERR: case SQLITE_CORRUPT: case SQLITE_CANTOPEN:
	case SQLITE_NOTADB: case SQLITE_INTERNAL:
		return 500;
	case SQLITE_BUSY: case SQLITE_LOCKED:
		return 503;
	default:
		return 400;
	}
}

static enum query_outcome error_outcome(enum qerr e, int status)
{
	switch (e) {
	case QERR_SQL: return OUTCOME_SQL_ERROR;
	case QERR_DENIED: return OUTCOME_DENIED;
	case QERR_TOO_LARGE: return OUTCOME_TOO_LARGE;
	case QERR_TIMEOUT: return OUTCOME_TIMEOUT;
	case QERR_CANCELLED: return OUTCOME_CANCELLED;
	default: return status == 500 ? OUTCOME_FAILED : OUTCOME_RUNTIME_ERROR;
	}
}

struct statement {
	struct query_server *srv;
	struct sandbox *sb;
	struct query_slot *slot;
	const struct query_params *p;
	int64_t budget_ms;
	enum qerr err;
	int rc;             /* of the failed step */
	char message[1024];
	bool client_gone, truncated;
	uint64_t rows;
};

static uint64_t row_cap(const struct query_server *srv, const struct query_params *p)
{
	bool capped = p->format == QFORMAT_TABLE || p->format == QFORMAT_JSON;

	if (!capped)
		return p->has_max_rows ? p->max_rows : 0;
	return p->has_max_rows && p->max_rows < srv->cfg.max_rows ? p->max_rows
								   : srv->cfg.max_rows;
}

/* Step through every row into the writer. Fills st->err / st->client_gone. */
static void step_rows(struct statement *st, sqlite3_stmt *stmt, struct qwriter *w,
		      int64_t started)
{
	int rc = qwriter_begin(w, stmt);

	while (rc == 0) {
		rc = sqlite3_step(stmt);
		if (rc == SQLITE_ROW) {
			rc = qwriter_row(w, stmt);
			st->truncated = rc == 1;
		} else if (rc == SQLITE_DONE) {
			rc = qwriter_end(w, mono_ns() - started);
			break;
		} else {
			st->rc = rc;
			st->err = sandbox_step_error(st->sb, rc, st->message, sizeof(st->message));
			break;
		}
	}
	if (st->truncated)
		rc = qwriter_end(w, mono_ns() - started);
	if (rc < 0 && !st->err)
		st->client_gone = true; /* the sink failed */
	st->rows = qwriter_rows(w);
}

static void run_statement(struct statement *st, struct query_run *r)
{
	const struct query_params *p = st->p;
	int64_t started = mono_ns();
	sqlite3_stmt *stmt = NULL;
	struct qwriter *w;

	st->err = sandbox_prepare(st->sb, p->sql, p->sql_len, started + st->budget_ms * 1000000,
				  &stmt, st->message, sizeof(st->message));
	if (st->err)
		return;
	if (!stmt) {
		st->err = QERR_SQL;
		snprintf(st->message, sizeof(st->message), "no SQL statement (only comments?)");
		return;
	}
	if (server_slot_running(st->srv, st->slot)) {
		st->err = QERR_CANCELLED;
		snprintf(st->message, sizeof(st->message), "the server is stopping");
	} else if (!(w = qwriter_new(p->format, row_cap(st->srv, p), out_sink, r))) {
		st->err = QERR_RUNTIME;
		st->rc = SQLITE_NOMEM;
		snprintf(st->message, sizeof(st->message), "out of memory");
	} else {
		step_rows(st, stmt, w, started);
		qwriter_free(w);
	}
	sqlite3_finalize(stmt);
}

static void describe_timeout(struct statement *st)
{
	snprintf(st->message, sizeof(st->message),
		 "the query ran out of its time budget of %lld ms (timeout=%s, server maximum %lld ms)",
		 (long long)st->budget_ms, st->p->timeout_ms ? "as asked" : "not given",
		 (long long)st->srv->cfg.max_timeout_ms);
}

/* What became of the statement; its status in *status (0: a result). */
static enum query_outcome outcome_of(struct statement *st, int *status)
{
	*status = 0;
	if (st->client_gone || server_slot_client_gone(st->srv, st->slot))
		return OUTCOME_CANCELLED;
	if (!st->err)
		return st->truncated ? OUTCOME_TRUNCATED : OUTCOME_OK;
	*status = error_status(st->err, st->rc);
	return error_outcome(st->err, *status);
}

/* The last bytes of the answer, once the statement is done and counted. */
static void answer(struct statement *st, struct query_run *r, enum query_outcome outcome,
		   int status)
{
	if (outcome == OUTCOME_CANCELLED && !status) {
		r->keep = false; /* the client is gone */
	} else if (!status) {
		if (finish_out(r, st->rows, st->truncated))
			r->keep = false;
	} else if (r->head_sent) {
		r->keep = false; /* no last chunk: the client sees the transfer broke */
	} else {
		if (st->err == QERR_TIMEOUT)
			describe_timeout(st);
		if (st->err == QERR_CANCELLED)
			r->keep = false; /* only a stop cancels a query whose client is there */
		if (http_respond_error(r->c, status, qerr_code(st->err), st->message, r->keep,
				       status == 503 ? "Retry-After: 1\r\n" : NULL))
			r->keep = false;
	}
}

static void respond(struct http_conn *c, const struct query_error *e, bool *keep,
		    const char *extra)
{
	if (http_respond_error(c, e->status, e->code, e->message, *keep, extra))
		*keep = false;
}

void server_query(struct worker *w, struct http_conn *c, bool *keep)
{
	struct query_server *srv = w->srv;
	int64_t t0 = mono_ns();
	struct statement st = { .srv = srv };
	struct query_run r = { .c = c, .keep = *keep };
	struct query_params p;
	struct query_error e;
	enum query_outcome outcome;
	int rc, status;

	if (parse_params(srv, c, &p, &e)) {
		respond(c, &e, keep, NULL);
		return;
	}
	rc = server_slot_take(srv, c->fd, srv->cfg.queue_wait_ms, &st.slot);
	if (rc) {
		if (rc == -EBUSY)
			refuse(&e, 503, "busy", "%u queries are running, the most at once; none "
			       "finished within %lld ms: try again", srv->cfg.max_queries,
			       (long long)srv->cfg.queue_wait_ms);
		else
			refuse(&e, 503, "busy", "the server is stopping");
		*keep = *keep && rc == -EBUSY;
		server_count_query(srv, rc == -EBUSY ? OUTCOME_BUSY : OUTCOME_CANCELLED,
				   mono_ns() - t0);
		respond(c, &e, keep, "Retry-After: 1\r\n");
		return;
	}
	if (server_slot_sandbox(srv, st.slot, &st.sb)) {
		server_slot_release(srv, st.slot);
		server_count_query(srv, OUTCOME_FAILED, mono_ns() - t0);
		refuse(&e, 500, "internal", "cannot open a query connection");
		respond(c, &e, keep, NULL);
		return;
	}
	st.p = &p;
	st.budget_ms = p.timeout_ms && p.timeout_ms < srv->cfg.max_timeout_ms
			       ? p.timeout_ms : srv->cfg.max_timeout_ms;
	r.format = p.format;
	run_statement(&st, &r);
	/* Counted and the slot freed before the last bytes go: a client that
	 * has its answer finds it in the counters. */
	outcome = outcome_of(&st, &status);
	server_slot_release(srv, st.slot);
	counter_add(&srv->counters.rows_sent, st.rows);
	server_count_query(srv, outcome, mono_ns() - t0);
	answer(&st, &r, outcome, status);
	http_buf_free(&r.out);
	*keep = r.keep;
}
