/*
 * The query server over real Unix sockets, on the fixture's data dir
 * (fixture.h), with raw HTTP so every byte on the wire is ours to choose:
 * the socket file (mode, stale and live sockets, group), each endpoint,
 * statuses, keep-alive and pipelining, the limits (431, 414, 413, 400,
 * 408), 100-continue, max_connections and max_queries (503), chunked
 * streaming with its trailer, an error after the first bytes (no last
 * chunk), a client that hangs up (its query cancelled), HTTP/1.0, and a
 * stop that does not wait for a runaway query.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <grp.h>
#include <http_parser.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "schema.h"
#include "server.h"
#include "testdir.h"

/* A runaway query: counts forever, printing nothing. */
#define RUNAWAY "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) " \
		"SELECT count(*) FROM c"
#define RUNAWAY_URL "WITH+RECURSIVE+c(x)+AS+(SELECT+1+UNION+ALL+SELECT+x%2B1+FROM+c)+" \
		    "SELECT+count(*)+FROM+c"

struct fix {
	char *dir;
	char sock[300];
	struct query_server *srv;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- a fake collector -------------------------------------------------------- */

static void fake_stats(void *ctx, qstat_emit_fn emit, void *arg)
{
	(void)ctx;
	emit(arg, "fake_rows", "table=\"flows\"", "counter", "Fake rows.", 7);
	emit(arg, "fake_rows", "table=\"connections\"", "counter", "Fake rows.", 8);
	emit(arg, "fake_depth", "", "gauge", "Fake depth.", 2);
}

static void start(struct fix *f, struct query_server_config *cfg)
{
	char err[256] = "";

	cfg->socket_path = f->sock;
	cfg->data_dir = f->dir;
	if (!cfg->stats)
		cfg->stats = fake_stats;
	if (query_server_start(cfg, &f->srv, err, sizeof(err)))
		fail_msg("query_server_start: %s", err);
}

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));

	f->dir = test_mkdtemp("query_server");
	snprintf(f->sock, sizeof(f->sock), "%s/q.sock", f->dir);
	if (fixture_write(f->dir))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	query_server_stop(f->srv);
	test_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static void start_default(void **state)
{
	struct query_server_config cfg = { 0 };

	start(*state, &cfg);
}

/* ---- a raw client ------------------------------------------------------------------ */

static int dial(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(strlen(path) < sizeof(a.sun_path));
	memcpy(a.sun_path, path, strlen(path) + 1);
	assert_true(fd >= 0);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)))
		fail_msg("connect %s: %s", path, strerror(errno));
	return fd;
}

static void put(int fd, const char *s)
{
	size_t len = strlen(s);

	while (len) {
		ssize_t n = send(fd, s, len, MSG_NOSIGNAL);

		if (n < 0)
			fail_msg("send: %s", strerror(errno));
		s += n;
		len -= (size_t)n;
	}
}

struct resp {
	int status;
	char head[4096]; /* "name: value\n" lines, headers then trailers */
	size_t head_len;
	char *body;
	size_t body_len;
	bool complete, chunked, closed;
	/* private */
	http_parser p;
	char in[65536];
	size_t in_len;
	bool in_value;
};

static void head_add(struct resp *r, const char *at, size_t len)
{
	if (r->head_len + len < sizeof(r->head)) {
		memcpy(r->head + r->head_len, at, len);
		r->head_len += len;
		r->head[r->head_len] = 0;
	}
}

static int on_field(http_parser *p, const char *at, size_t len)
{
	struct resp *r = p->data;

	if (r->in_value)
		head_add(r, "\n", 1);
	r->in_value = false;
	head_add(r, at, len);
	return 0;
}

static int on_value(http_parser *p, const char *at, size_t len)
{
	struct resp *r = p->data;

	if (!r->in_value)
		head_add(r, ": ", 2);
	r->in_value = true;
	head_add(r, at, len);
	return 0;
}

static int on_headers(http_parser *p)
{
	struct resp *r = p->data;

	if (r->in_value)
		head_add(r, "\n", 1);
	r->in_value = false;
	r->status = p->status_code;
	r->chunked = (p->flags & F_CHUNKED) != 0;
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct resp *r = p->data;

	r->body = realloc(r->body, r->body_len + len + 1);
	memcpy(r->body + r->body_len, at, len);
	r->body_len += len;
	r->body[r->body_len] = 0;
	return 0;
}

static int on_done(http_parser *p)
{
	struct resp *r = p->data;

	if (r->in_value)
		head_add(r, "\n", 1);
	r->complete = true;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings resp_settings = {
	.on_header_field = on_field,
	.on_header_value = on_value,
	.on_headers_complete = on_headers,
	.on_body = on_body,
	.on_message_complete = on_done,
};

/* r must be zeroed or have been initialised before. */
static void resp_init(struct resp *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
	http_parser_init(&r->p, HTTP_RESPONSE);
	r->p.data = r;
}

/* The next response on fd (leftover bytes of r kept for pipelining); stops
 * at its end, at EOF (closed) or after timeout_ms. */
static void next_response(int fd, struct resp *r, int timeout_ms)
{
	int64_t until = now_ms() + timeout_ms;

	free(r->body);
	r->body = NULL;
	r->body_len = r->head_len = 0;
	r->head[0] = 0;
	r->status = 0;
	r->complete = r->chunked = false;
	http_parser_init(&r->p, HTTP_RESPONSE);
	r->p.data = r;
	for (;;) {
		if (r->in_len) {
			size_t used = http_parser_execute(&r->p, &resp_settings, r->in, r->in_len);

			memmove(r->in, r->in + used, r->in_len - used);
			r->in_len -= used;
			if (HTTP_PARSER_ERRNO(&r->p) == HPE_PAUSED)
				http_parser_pause(&r->p, 0);
			if (r->complete)
				return;
			if (HTTP_PARSER_ERRNO(&r->p) != HPE_OK)
				fail_msg("bad response: %s", http_errno_name(HTTP_PARSER_ERRNO(&r->p)));
		}
		{
			struct pollfd pfd = { .fd = fd, .events = POLLIN };
			int64_t left = until - now_ms();
			ssize_t n;

			if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
				return;
			n = recv(fd, r->in + r->in_len, sizeof(r->in) - r->in_len, 0);
			if (n <= 0) {
				r->closed = true;
				if (n == 0)
					http_parser_execute(&r->p, &resp_settings, NULL, 0);
				return;
			}
			r->in_len += (size_t)n;
		}
	}
}

static void resp_free(struct resp *r)
{
	free(r->body);
	r->body = NULL;
}

/* One request on a new connection, its response. */
static void exchange(struct fix *f, const char *req, struct resp *r, int timeout_ms)
{
	int fd = dial(f->sock);

	resp_init(r);
	put(fd, req);
	next_response(fd, r, timeout_ms);
	close(fd);
}

static bool has_header(const struct resp *r, const char *line)
{
	const char *p = r->head;
	size_t n = strlen(line);

	while (p && *p) {
		if (strncasecmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == 0))
			return true;
		p = strchr(p, '\n');
		p = p ? p + 1 : NULL;
	}
	return false;
}

static void expect_status(struct fix *f, const char *req, int status, const char *in_body)
{
	struct resp r = { 0 };

	exchange(f, req, &r, 5000);
	if (r.status != status || (in_body && (!r.body || !strstr(r.body, in_body))))
		fail_msg("%.80s: got %d '%s', want %d with '%s'", req, r.status,
			 r.body ? r.body : "", status, in_body ? in_body : "");
	resp_free(&r);
}

static char *post(const char *target, const char *sql)
{
	char *req;

	if (asprintf(&req, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s", target,
		     strlen(sql), sql) < 0)
		abort();
	return req;
}

static void expect_query(struct fix *f, const char *target, const char *sql, int status,
			 const char *in_body)
{
	char *req = post(target, sql);

	expect_status(f, req, status, in_body);
	free(req);
}

/* ---- the server's counters ----------------------------------------------------------- */

struct find {
	const char *name, *labels;
	double value;
	bool found;
};

static void find_emit(void *arg, const char *name, const char *labels, const char *kind,
		      const char *help, double value)
{
	struct find *q = arg;

	(void)kind;
	(void)help;
	if (!strcmp(name, q->name) && !strcmp(labels, q->labels)) {
		q->value = value;
		q->found = true;
	}
}

static double counter(struct fix *f, const char *name, const char *labels)
{
	struct find q = { name, labels, 0, false };

	query_server_stats(f->srv, find_emit, &q);
	if (!q.found)
		fail_msg("no counter %s{%s}", name, labels);
	return q.value;
}

/* Wait up to ms for a counter to reach want. */
static bool counter_reaches(struct fix *f, const char *name, const char *labels, double want,
			    int ms)
{
	int64_t until = now_ms() + ms;

	while (now_ms() < until) {
		if (counter(f, name, labels) == want)
			return true;
		usleep(10000);
	}
	return counter(f, name, labels) == want;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_socket_file(void **state)
{
	struct fix *f = *state;
	struct query_server_config cfg = { 0 };
	struct query_server *other = NULL;
	struct group *g = getgrgid(getegid());
	char err[256] = "", path[400];
	struct stat st;
	int fd;

	start(f, &cfg);
	assert_int_equal(stat(f->sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0660);

	/* Something answers: refused, and the live socket is left alone. */
	cfg = (struct query_server_config){ .socket_path = f->sock, .data_dir = f->dir };
	assert_int_equal(query_server_start(&cfg, &other, err, sizeof(err)), -EADDRINUSE);
	assert_non_null(strstr(err, "something answers on"));
	assert_int_equal(stat(f->sock, &st), 0);
	query_server_stop(f->srv);
	f->srv = NULL;
	assert_int_not_equal(stat(f->sock, &st), 0); /* unlinked at stop */

	/* Not a socket: refused. */
	snprintf(path, sizeof(path), "%s/plain", f->dir);
	fclose(fopen(path, "w"));
	cfg.socket_path = path;
	assert_int_equal(query_server_start(&cfg, &other, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "is not a socket"));

	/* A stale socket (nobody listening): replaced. */
	snprintf(path, sizeof(path), "%s/stale.sock", f->dir);
	{
		struct sockaddr_un a = { .sun_family = AF_UNIX };

		assert_true(strlen(path) < sizeof(a.sun_path));
		memcpy(a.sun_path, path, strlen(path) + 1);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
		close(fd);
	}
	assert_int_equal(query_server_start(&cfg, &other, err, sizeof(err)), 0);
	query_server_stop(other);

	/* The group: unknown is a clear error; ours is applied. */
	cfg.socket_group = "no-such-group-flowstore";
	assert_int_equal(query_server_start(&cfg, &other, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "--socket-group: no group named 'no-such-group-flowstore'"));
	if (g) {
		cfg.socket_group = g->gr_name;
		assert_int_equal(query_server_start(&cfg, &other, err, sizeof(err)), 0);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_gid, g->gr_gid);
		query_server_stop(other);
	}

	/* A missing data dir. */
	snprintf(path, sizeof(path), "%s/nope", f->dir);
	cfg = (struct query_server_config){ .socket_path = f->sock, .data_dir = path };
	assert_int_not_equal(query_server_start(&cfg, &other, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "cannot read the data dir"));
}

static void test_endpoints(void **state)
{
	struct fix *f = *state;
	struct resp r = { 0 };

	start_default(state);
	expect_status(f, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", 200, "\"status\":\"ok\"");
	expect_status(f, "GET /tables HTTP/1.1\r\n\r\n", 200, "\"name\":\"sock_cookie\"");
	expect_status(f, "GET /tables HTTP/1.1\r\n\r\n", 200,
		      "{\"name\":\"stats\",\"meaning\":\"the daemon's counters");
	expect_status(f, "GET /tables?format=csv HTTP/1.1\r\n\r\n", 200,
		      "flows,ts,INTEGER,\"first packet, ns since the Unix epoch (UTC)\"\r\n");
	expect_status(f, "GET /tables?format=xml HTTP/1.1\r\n\r\n", 400, "format: 'xml'");
	expect_status(f, "GET /stats HTTP/1.1\r\n\r\n", 200, "\"fake_rows_connections\": 8");
	expect_status(f, "GET /stats HTTP/1.1\r\n\r\n", 200, "\"query_requests_total_2xx\": ");
	exchange(f, "GET /metrics HTTP/1.1\r\n\r\n", &r, 5000);
	assert_int_equal(r.status, 200);
	assert_true(has_header(&r, "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
	assert_non_null(strstr(r.body, "# TYPE flowstore_fake_rows counter\n"
				       "flowstore_fake_rows{table=\"flows\"} 7\n"
				       "flowstore_fake_rows{table=\"connections\"} 8\n"));
	assert_non_null(strstr(r.body, "flowstore_fake_depth 2\n"));
	assert_non_null(strstr(r.body, "# TYPE flowstore_query_duration_seconds histogram\n"));
	assert_non_null(strstr(r.body, "flowstore_query_duration_seconds_bucket{le=\"+Inf\"} "));
	assert_non_null(strstr(r.body, "flowstore_query_requests_total{code=\"2xx\"} 6\n"));
	resp_free(&r);
	expect_status(f, "GET /nope HTTP/1.1\r\n\r\n", 404, "\"code\":\"not_found\"");
	exchange(f, "DELETE /query HTTP/1.1\r\n\r\n", &r, 5000);
	assert_int_equal(r.status, 405);
	assert_true(has_header(&r, "Allow: GET, POST"));
	resp_free(&r);
	expect_status(f, "POST /health HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405, "use GET");
	/* The stats table holds the collector's counters and the server's. */
	expect_query(f, "/query?format=csv",
		     "SELECT value FROM stats WHERE name = 'fake_rows' AND labels = 'table=\"flows\"'",
		     200, "value\r\n7\r\n");
	expect_query(f, "/query?format=csv", "SELECT count(*) > 0 FROM stats WHERE name = "
		     "'queries_total'", 200, "\r\n1\r\n");
}

static void test_query_statuses(void **state)
{
	struct fix *f = *state;
	struct resp r = { 0 };
	int64_t t;

	start_default(state);
	expect_query(f, "/query", "SELECT count(*) AS n FROM flows", 200, "\"rows\":[[5]]");
	expect_status(f, "GET /query?sql=SELECT+count(*)+FROM+connections&format=csv HTTP/1.1\r\n\r\n",
		      200, "\r\n3\r\n");
	expect_query(f, "/query", "SELEC 1", 400, "\"code\":\"sql_error\"");
	expect_query(f, "/query", "SELECT nope FROM flows", 400, "no such column");
	expect_query(f, "/query", "INSERT INTO flows(ts) VALUES (1)", 403, "\"code\":\"denied\"");
	expect_query(f, "/query", "ATTACH '/tmp/x.db' AS x", 403, "\"code\":\"denied\"");
	expect_query(f, "/query", "  \n", 400, "no SQL");
	expect_query(f, "/query?format=xml", "SELECT 1", 400, "format: 'xml'");
	expect_query(f, "/query?limit=3", "SELECT 1", 400, "unknown parameter 'limit'");
	expect_query(f, "/query?timeout=-1", "SELECT 1", 400, "timeout: '-1'");
	expect_query(f, "/query?max_rows=x", "SELECT 1", 400, "max_rows: 'x'");
	expect_query(f, "/query?sql=SELECT+2", "SELECT 1", 400, "both in the body");
	expect_status(f, "GET /query?sql=%ZZ HTTP/1.1\r\n\r\n", 400, "%-escape");
	/* The row cap. */
	expect_query(f, "/query?max_rows=2", "SELECT ts FROM flows ORDER BY ts", 200,
		     "\"row_count\":2,");
	expect_query(f, "/query?max_rows=2", "SELECT ts FROM flows ORDER BY ts", 200,
		     "\"truncated\":true}");
	{
		char *req = post("/query?max_rows=2&format=csv", "SELECT ts FROM flows");

		exchange(f, req, &r, 5000);
		free(req);
		assert_int_equal(r.status, 200);
		assert_true(has_header(&r, "X-Flowstore-Truncated: true"));
		assert_true(has_header(&r, "X-Flowstore-Rows: 2"));
		resp_free(&r);
	}
	/* The time budget: a runaway query is stopped, 504, within its budget. */
	t = now_ms();
	expect_query(f, "/query?timeout=0.3", RUNAWAY, 504, "\"code\":\"timeout\"");
	assert_true(now_ms() - t < 2000);
	/* Counted once the answer is out: wait for it. */
	assert_true(counter_reaches(f, "queries_total", "outcome=\"timeout\"", 1, 1000));
	assert_int_equal(counter(f, "queries_total", "outcome=\"denied\""), 2);
	assert_int_equal(counter(f, "queries_total", "outcome=\"ok\""), 2);
	assert_int_equal(counter(f, "queries_total", "outcome=\"truncated\""), 3);
	assert_int_equal(counter(f, "queries_total", "outcome=\"sql_error\""), 2);
	/* A trivial count is answered from metadata (count_fast.h): the same
	 * bytes as the ordinary path (the second form is not recognised). */
	{
		static const char *const forms[][2] = {
			{ "SELECT count(*) FROM flows WHERE ts >= 0",
			  "SELECT count(*) FROM flows WHERE ts >= 0 AND 1" },
			{ "SELECT COUNT(1) AS \"rows, all\" FROM flows;",
			  "SELECT COUNT(1) AS \"rows, all\" FROM flows WHERE 1;" },
		};
		struct resp a = { 0 }, b = { 0 };

		for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
			char *qa = post("/query?format=csv", forms[i][0]);
			char *qb = post("/query?format=csv", forms[i][1]);

			exchange(f, qa, &a, 5000);
			exchange(f, qb, &b, 5000);
			assert_int_equal(a.status, 200);
			assert_int_equal(b.status, 200);
			assert_string_equal(a.body, b.body);
			resp_free(&a);
			resp_free(&b);
			free(qa);
			free(qb);
		}
		expect_query(f, "/query?format=csv", "SELECT count(*) AS n FROM flows WHERE ts > 0",
			     200, "n\r\n5\r\n");
		expect_query(f, "/query", "SELECT count(*) FROM flows WHERE ts > ago('soon')", 400,
			     "ago: bad duration 'soon'");
		expect_query(f, "/query", "SELECT count(*) FROM flows WHERE", 400,
			     "\"code\":\"sql_error\"");
	}
}

static void test_keepalive_and_pipelining(void **state)
{
	struct fix *f = *state;
	struct resp r = { 0 };
	int fd;

	start_default(state);
	fd = dial(f->sock);
	resp_init(&r);
	/* Two requests in one write: two answers, in order. */
	put(fd, "GET /query?sql=SELECT+1+AS+a&format=csv HTTP/1.1\r\nHost: x\r\n\r\n"
		"POST /query?format=csv HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\n\r\nSELECT 2 AS b");
	next_response(fd, &r, 5000);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "a\r\n1\r\n");
	assert_true(has_header(&r, "Connection: keep-alive"));
	next_response(fd, &r, 5000);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "b\r\n2\r\n");
	/* An error answered in the request's own terms keeps the connection. */
	put(fd, "GET /query?sql=SELEC HTTP/1.1\r\n\r\n");
	next_response(fd, &r, 5000);
	assert_int_equal(r.status, 400);
	put(fd, "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n");
	next_response(fd, &r, 5000);
	assert_int_equal(r.status, 200);
	assert_true(has_header(&r, "Connection: close"));
	next_response(fd, &r, 2000);
	assert_true(r.closed);
	resp_free(&r);
	close(fd);
}

static void test_limits(void **state)
{
	struct fix *f = *state;
	struct query_server_config cfg = { .max_header_bytes = 1024, .max_sql_bytes = 1000 };
	char big[3000], *req;
	struct resp r = { 0 };
	int fd;

	start(f, &cfg);
	memset(big, 'a', sizeof(big));
	big[sizeof(big) - 1] = 0;
	if (asprintf(&req, "GET /health HTTP/1.1\r\nX-Big: %s\r\n\r\n", big) < 0)
		abort();
	expect_status(f, req, 431, "\"code\":\"headers_too_large\"");
	free(req);
	if (asprintf(&req, "GET /query?sql=%s HTTP/1.1\r\n\r\n", big) < 0)
		abort();
	expect_status(f, req, 414, "\"code\":\"uri_too_long\"");
	free(req);
	expect_status(f, "GARBAGE\r\n\r\n", 400, "malformed");

	/* Too large by its Content-Length: answered before the body is sent. */
	fd = dial(f->sock);
	resp_init(&r);
	put(fd, "POST /query HTTP/1.1\r\nContent-Length: 2000\r\n\r\n");
	next_response(fd, &r, 5000);
	assert_int_equal(r.status, 413);
	assert_true(has_header(&r, "Connection: close"));
	close(fd);
	/* Too large in chunks: answered at the chunk that passes the limit. */
	fd = dial(f->sock);
	put(fd, "POST /query HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (int i = 0; i < 3; i++) {
		char chunk[600];

		snprintf(chunk, sizeof(chunk), "1f4\r\n%.500s\r\n", big);
		put(fd, chunk);
	}
	next_response(fd, &r, 5000);
	assert_int_equal(r.status, 413);
	close(fd);
	/* A chunked body within the limit is a query like any other. */
	expect_status(f, "POST /query?format=csv HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
			 "7\r\nSELECT \r\n7\r\n42 AS n\r\n0\r\n\r\n", 200, "n\r\n42\r\n");
	/* Expect: 100-continue: told to go on, then answered. */
	fd = dial(f->sock);
	put(fd, "POST /query?format=csv HTTP/1.1\r\nExpect: 100-continue\r\n"
		"Content-Length: 8\r\n\r\n");
	{
		char buf[64] = "";
		ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);

		assert_true(n > 0);
		assert_string_equal(buf, "HTTP/1.1 100 Continue\r\n\r\n");
	}
	put(fd, "SELECT 3");
	next_response(fd, &r, 5000);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "3\r\n3\r\n");
	close(fd);
	resp_free(&r);
}

static void test_request_timeout(void **state)
{
	struct fix *f = *state;
	struct query_server_config cfg = { .request_timeout_ms = 400 };
	struct resp r = { 0 }, other = { 0 };
	int64_t t;
	int stalled, idle;

	start(f, &cfg);
	idle = dial(f->sock);
	stalled = dial(f->sock);
	put(stalled, "GET /health HTTP/1.1\r\nHo");
	t = now_ms();
	/* Others are served meanwhile. */
	exchange(f, "GET /health HTTP/1.1\r\n\r\n", &other, 5000);
	assert_int_equal(other.status, 200);
	assert_true(now_ms() - t < 300);
	resp_free(&other);
	resp_init(&r);
	next_response(stalled, &r, 3000);
	assert_int_equal(r.status, 408);
	assert_true(now_ms() - t >= 350);
	assert_true(has_header(&r, "Connection: close"));
	next_response(stalled, &r, 2000);
	assert_true(r.closed);
	/* A connection that never sent a byte is just closed. */
	next_response(idle, &r, 3000);
	assert_true(r.closed);
	assert_int_equal(r.status, 0);
	resp_free(&r);
	close(stalled);
	close(idle);
	assert_true(counter_reaches(f, "query_connections_open", "", 0, 2000));
}

static void test_max_connections(void **state)
{
	struct fix *f = *state;
	struct query_server_config cfg = { .max_connections = 2 };
	struct resp r = { 0 };
	int a, b;

	start(f, &cfg);
	a = dial(f->sock);
	b = dial(f->sock);
	put(a, "GET /health HTTP/1.1\r\n\r\n"); /* a is being served, b waits: both count */
	resp_init(&r);
	next_response(a, &r, 5000);
	assert_int_equal(r.status, 200);
	assert_true(counter_reaches(f, "query_connections_open", "", 2, 2000));
	exchange(f, "GET /health HTTP/1.1\r\n\r\n", &r, 5000);
	assert_int_equal(r.status, 503);
	assert_true(has_header(&r, "Retry-After: 1"));
	assert_non_null(strstr(r.body, "too many connections"));
	assert_int_equal(counter(f, "query_connections_rejected_total", ""), 1);
	close(a);
	assert_true(counter_reaches(f, "query_connections_open", "", 1, 2000));
	exchange(f, "GET /health HTTP/1.1\r\n\r\n", &r, 5000);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	close(b);
}

static void test_busy(void **state)
{
	struct fix *f = *state;
	struct query_server_config cfg = { .max_queries = 1, .queue_wait_ms = 200 };
	struct resp r = { 0 };
	char *req;
	int64_t t;
	int slow;

	start(f, &cfg);
	slow = dial(f->sock);
	req = post("/query?timeout=3", RUNAWAY);
	put(slow, req);
	free(req);
	assert_true(counter_reaches(f, "queries_running", "", 1, 2000));
	t = now_ms();
	req = post("/query", "SELECT 1");
	exchange(f, req, &r, 5000);
	free(req);
	assert_int_equal(r.status, 503);
	assert_true(has_header(&r, "Retry-After: 1"));
	assert_non_null(strstr(r.body, "\"code\":\"busy\""));
	assert_true(now_ms() - t >= 180 && now_ms() - t < 2000);
	assert_true(counter_reaches(f, "queries_total", "outcome=\"busy\"", 1, 1000));
	/* Other endpoints need no slot. */
	exchange(f, "GET /health HTTP/1.1\r\n\r\n", &r, 5000);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	close(slow); /* hangs up: its query is cancelled, the slot freed */
	assert_true(counter_reaches(f, "queries_running", "", 0, 2000));
	expect_query(f, "/query?format=csv", "SELECT 5", 200, "5\r\n");
}

static void test_client_gone(void **state)
{
	struct fix *f = *state;
	char *req;
	int64_t t;
	int fd;

	start_default(state);
	/* Silent: a long aggregation, nothing to write. */
	fd = dial(f->sock);
	req = post("/query?timeout=20", RUNAWAY);
	put(fd, req);
	free(req);
	assert_true(counter_reaches(f, "queries_running", "", 1, 2000));
	usleep(100000);
	t = now_ms();
	close(fd);
	assert_true(counter_reaches(f, "queries_total", "outcome=\"cancelled\"", 1, 2000));
	assert_true(now_ms() - t < 1000);
	assert_true(counter_reaches(f, "queries_running", "", 0, 1000));

	/* Loud: a huge result, the client reads a little and leaves. */
	fd = dial(f->sock);
	req = post("/query?format=csv&timeout=20",
		   "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
		   "SELECT x, 'padding padding padding padding' FROM c");
	put(fd, req);
	free(req);
	{
		char buf[65536];
		size_t got = 0;

		while (got < 200000) {
			ssize_t n = recv(fd, buf, sizeof(buf), 0);

			assert_true(n > 0);
			got += (size_t)n;
		}
	}
	close(fd);
	assert_true(counter_reaches(f, "queries_total", "outcome=\"cancelled\"", 2, 3000));
	assert_true(counter_reaches(f, "queries_running", "", 0, 1000));
	expect_status(f, "GET /health HTTP/1.1\r\n\r\n", 200, "ok");
}

static void test_streaming(void **state)
{
	struct fix *f = *state;
	struct resp r = { 0 };
	char *req;
	size_t lines = 0;

	start_default(state);
	/* Past 64 KiB: chunked, the count in the trailer. */
	req = post("/query?format=csv",
		   "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) "
		   "SELECT x FROM c");
	exchange(f, req, &r, 10000);
	free(req);
	assert_int_equal(r.status, 200);
	assert_true(r.chunked);
	assert_true(r.complete);
	assert_true(has_header(&r, "X-Flowstore-Rows: 100000"));
	assert_true(has_header(&r, "X-Flowstore-Truncated: false"));
	for (size_t i = 0; i < r.body_len; i++)
		lines += r.body[i] == '\n';
	assert_int_equal(lines, 100001);
	assert_non_null(strstr(r.body, "\r\n99999\r\n100000\r\n"));
	resp_free(&r);
	/* Within 64 KiB: one piece with a Content-Length. */
	req = post("/query?format=csv", "SELECT 1");
	exchange(f, req, &r, 5000);
	free(req);
	assert_false(r.chunked);
	resp_free(&r);
	/* An error after the first 64 KiB went out: no last chunk, the
	 * connection ends, the transfer is visibly incomplete. */
	req = post("/query?format=csv",
		   "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) "
		   "SELECT x, CASE WHEN x > 50000 THEN abs(-9223372036854775807 - 1) END FROM c");
	exchange(f, req, &r, 10000);
	free(req);
	assert_int_equal(r.status, 200);
	assert_true(r.chunked);
	assert_false(r.complete);
	assert_true(r.closed);
	resp_free(&r);
	/* The same error early: its own status. */
	expect_query(f, "/query?format=csv", "SELECT abs(-9223372036854775807 - 1)", 400,
		     "integer overflow");
	/* HTTP/1.0: no chunks; the end of the body is the close. */
	exchange(f, "GET /query?sql=SELECT+7+AS+s&format=csv HTTP/1.0\r\n\r\n", &r, 5000);
	assert_int_equal(r.status, 200);
	assert_true(has_header(&r, "Connection: close"));
	assert_string_equal(r.body, "s\r\n7\r\n");
	resp_free(&r);
}

static void test_stop_cancels(void **state)
{
	struct fix *f = *state;
	struct stat st;
	char *req;
	int64_t t;
	int fd, idle;

	start_default(state);
	idle = dial(f->sock);
	fd = dial(f->sock);
	req = post("/query?timeout=30", RUNAWAY);
	put(fd, req);
	free(req);
	assert_true(counter_reaches(f, "queries_running", "", 1, 2000));
	t = now_ms();
	query_server_stop(f->srv);
	f->srv = NULL;
	assert_true(now_ms() - t < 1500);
	assert_int_not_equal(stat(f->sock, &st), 0);
	close(fd);
	close(idle);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_socket_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_endpoints, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query_statuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keepalive_and_pipelining, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_connections, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_streaming, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_cancels, setup, teardown),
	};

	if (schema_init())
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
