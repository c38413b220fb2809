/*
 * The server side of HTTP/1.1 on one socket (http.h): requests parsed by
 * http-parser, responses written with poll-bounded sends.
 *
 * Invariants:
 *  1. One request at a time. The parser is paused when a message completes,
 *     so bytes of a pipelined next request stay in c->in untouched until the
 *     response to this one was written.
 *  2. Limits are enforced while reading, never after: the parser is fed at
 *     most max_header_bytes before the headers are complete (so an endless
 *     header line costs no memory), and a body is refused (413) as soon as
 *     its Content-Length or its running size passes max_body_bytes —
 *     before it arrives, or at the chunk that passes it. Chunked request
 *     bodies are accepted.
 *  3. Every wait is a poll on the socket and on stop_fd with a deadline:
 *     the whole request must arrive within timeout_ms of its first byte
 *     (a silent keep-alive connection is closed after the same time), and
 *     a send may make no progress for at most timeout_ms.
 *  4. Sends use MSG_NOSIGNAL: a vanished client is -EPIPE, never SIGPIPE.
 */
#include "http.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int64_t http_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- buffers ----------------------------------------------------------- */

static bool buf_reserve(struct http_buf *b, size_t more)
{
	size_t cap = b->cap ? b->cap : 256;
	char *p;

	if (b->oom)
		return false;
	if (b->len + more + 1 <= b->cap)
		return true;
	while (cap < b->len + more + 1)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void http_buf_add(struct http_buf *b, const void *data, size_t len)
{
	if (!buf_reserve(b, len))
		return;
	memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = 0;
}

void http_buf_puts(struct http_buf *b, const char *s)
{
	http_buf_add(b, s, strlen(s));
}

void http_buf_printf(struct http_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !buf_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void http_buf_json(struct http_buf *b, const char *s, size_t len)
{
	http_buf_add(b, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '"' || ch == '\\') {
			char esc[2] = { '\\', (char)ch };

			http_buf_add(b, esc, 2);
		} else if (ch == '\n') {
			http_buf_add(b, "\\n", 2);
		} else if (ch == '\t') {
			http_buf_add(b, "\\t", 2);
		} else if (ch == '\r') {
			http_buf_add(b, "\\r", 2);
		} else if (ch < 0x20 || ch == 0x7f) {
			http_buf_printf(b, "\\u%04x", ch);
		} else {
			http_buf_add(b, &s[i], 1);
		}
	}
	http_buf_add(b, "\"", 1);
}

void http_buf_free(struct http_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static void buf_reset(struct http_buf *b)
{
	b->len = 0;
	b->oom = false;
	if (b->p)
		b->p[0] = 0;
}

/* ---- parsing ------------------------------------------------------------- */

static struct http_conn *conn_of(http_parser *p)
{
	return p->data;
}

/* Stop the parser with a status to answer. */
static int refuse(http_parser *p, int status)
{
	struct http_conn *c = conn_of(p);

	if (!c->error)
		c->error = status;
	http_parser_pause(p, 1);
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	http_buf_add(&conn_of(p)->target, at, len);
	return 0;
}

/* A header is complete: the only one we act on is Expect. */
static void header_done(struct http_conn *c)
{
	if (c->field.len && strcasecmp(c->field.p, "expect") == 0 && c->value.len &&
	    strcasecmp(c->value.p, "100-continue") == 0)
		c->expect_continue = true;
	buf_reset(&c->field);
	buf_reset(&c->value);
}

/* Names and values are kept only to 64 bytes: enough to recognise Expect. */
static void add_short(struct http_buf *b, const char *at, size_t len)
{
	if (b->len < 64)
		http_buf_add(b, at, len < 64 - b->len ? len : 64 - b->len);
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = conn_of(p);

	if (c->in_value)
		header_done(c);
	c->in_value = false;
	c->saw_field = true;
	add_short(&c->field, at, len);
	return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = conn_of(p);

	c->in_value = true;
	add_short(&c->value, at, len);
	return 0;
}

static int on_headers_complete(http_parser *p)
{
	struct http_conn *c = conn_of(p);

	if (c->in_value)
		header_done(c);
	c->in_value = false;
	c->headers_done = true;
	if ((p->flags & F_CONTENTLENGTH) && p->content_length > c->max_body_bytes)
		return refuse(p, 413);
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = conn_of(p);

	if (c->body.len + len > c->max_body_bytes)
		return refuse(p, 413);
	http_buf_add(&c->body, at, len);
	return 0;
}

static int on_message_complete(http_parser *p)
{
	conn_of(p)->message_done = true;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings parser_settings = {
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

void http_conn_init(struct http_conn *c, int fd, int stop_fd, int64_t timeout_ms,
		    size_t max_header_bytes, size_t max_body_bytes)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->stop_fd = stop_fd;
	c->timeout_ms = timeout_ms;
	c->max_header_bytes = max_header_bytes;
	c->max_body_bytes = max_body_bytes;
}

void http_conn_free(struct http_conn *c)
{
	http_buf_free(&c->target);
	http_buf_free(&c->body);
	http_buf_free(&c->field);
	http_buf_free(&c->value);
}

static void request_reset(struct http_conn *c)
{
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	buf_reset(&c->target);
	buf_reset(&c->body);
	buf_reset(&c->field);
	buf_reset(&c->value);
	c->head_bytes = 0;
	c->saw_field = c->in_value = c->headers_done = c->message_done = false;
	c->expect_continue = c->continue_sent = false;
	c->error = 0;
	memset(&c->req, 0, sizeof(c->req));
}

/* Too much before the end of the headers: a URL that never ended, or headers. */
static int head_too_large(const struct http_conn *c)
{
	return c->saw_field ? 431 : 414;
}

/* Split the target into path and query, and fill c->req. */
static int request_finish(struct http_conn *c)
{
	char *q;

	if (c->target.oom || c->body.oom || !c->target.len)
		return c->target.len ? 500 : 400;
	q = strchr(c->target.p, '?');
	if (q)
		*q++ = 0;
	c->req.method = (enum http_method)c->parser.method;
	c->req.http_major = c->parser.http_major;
	c->req.http_minor = c->parser.http_minor;
	c->req.path = c->target.p;
	c->req.query = q ? q : c->target.p + c->target.len;
	c->req.body = c->body.p ? c->body.p : "";
	c->req.body_len = c->body.len;
	c->req.keep_alive = http_should_keep_alive(&c->parser) && !c->parser.upgrade;
	return 0;
}

/*
 * Feed what c->in holds. 0: request complete; -EAGAIN: need more bytes;
 * a status: refuse.
 */
static int feed(struct http_conn *c)
{
	while (c->in_len) {
		size_t n = c->in_len, used;
		enum http_errno e;

		if (!c->headers_done) {
			size_t room = c->max_header_bytes - c->head_bytes;

			if (room == 0)
				return head_too_large(c);
			if (n > room)
				n = room;
		}
		used = http_parser_execute(&c->parser, &parser_settings, c->in, n);
		e = HTTP_PARSER_ERRNO(&c->parser);
		if (!c->headers_done)
			c->head_bytes += used;
		memmove(c->in, c->in + used, c->in_len - used);
		c->in_len -= used;
		if (e == HPE_PAUSED) {
			http_parser_pause(&c->parser, 0);
			if (c->error)
				return c->error;
			if (c->message_done)
				return request_finish(c);
		} else if (e != HPE_OK) {
			return 400;
		} else if (used < n) {
			return 400; /* an upgrade we do not do, or garbage after it */
		}
	}
	return -EAGAIN;
}

/* Wait for fd to be ready for events, or stop_fd, until deadline. 0, -ETIMEDOUT, -ECANCELED. */
static int wait_fd(struct http_conn *c, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = c->fd, .events = events },
			{ .fd = c->stop_fd, .events = POLLIN },
		};
		int64_t left = deadline - http_now_ms();
		int rc;

		if (left <= 0)
			return -ETIMEDOUT;
		rc = poll(pfd, c->stop_fd >= 0 ? 2 : 1, left > 1000000 ? 1000000 : (int)left);
		if (rc < 0 && errno != EINTR)
			return -errno;
		if (rc > 0 && (pfd[1].revents & POLLIN))
			return -ECANCELED;
		if (rc > 0 && pfd[0].revents)
			return 0;
	}
}

static int send_continue(struct http_conn *c)
{
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

	c->continue_sent = true;
	return http_send(c, cont, sizeof(cont) - 1);
}

int http_read_request(struct http_conn *c)
{
	int64_t deadline = http_now_ms() + c->timeout_ms;
	bool started = c->in_len > 0;

	request_reset(c);
	for (;;) {
		ssize_t n;
		int rc = feed(c);

		if (rc != -EAGAIN)
			return rc;
		if (c->headers_done && c->expect_continue && !c->continue_sent &&
		    c->parser.http_minor >= 1 && send_continue(c))
			return HTTP_CLOSE;
		rc = wait_fd(c, POLLIN, deadline);
		if (rc == -ETIMEDOUT)
			return started ? 408 : HTTP_CLOSE;
		if (rc)
			return HTTP_CLOSE;
		n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
		if (n == 0)
			return HTTP_CLOSE; /* closed, maybe halfway: nobody to answer */
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return HTTP_CLOSE;
		}
		c->in_len += (size_t)n;
		started = true;
	}
}

/* ---- writing ------------------------------------------------------------- */

int http_sendv(struct http_conn *c, struct iovec *iov, int iovcnt)
{
	while (iovcnt > 0) {
		struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)iovcnt };
		ssize_t n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			int rc;

			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -EPIPE;
			rc = wait_fd(c, POLLOUT, http_now_ms() + c->timeout_ms);
			if (rc)
				return rc;
			continue;
		}
		while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

int http_send(struct http_conn *c, const void *buf, size_t len)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

	return http_sendv(c, &iov, 1);
}

const char *http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Unknown";
	}
}

bool http_chunked(const struct http_conn *c)
{
	return c->req.http_major > 1 || (c->req.http_major == 1 && c->req.http_minor >= 1);
}

int http_send_head(struct http_conn *c, int status, const char *content_type,
		   int64_t content_length, bool keep_alive, const char *extra)
{
	char date[64], head[1024];
	struct tm tm;
	time_t now = time(NULL);
	char length[64];
	int n;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (content_length >= 0)
		snprintf(length, sizeof(length), "Content-Length: %lld\r\n",
			 (long long)content_length);
	else if (http_chunked(c))
		snprintf(length, sizeof(length), "Transfer-Encoding: chunked\r\n");
	else
		length[0] = 0;
	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: flowstored/" FLOWSTORE_VERSION "\r\n"
		     "Content-Type: %s\r\n%sCache-Control: no-store\r\nConnection: %s\r\n",
		     status, http_reason(status), date, content_type, length,
		     keep_alive ? "keep-alive" : "close");
	if (n < 0 || (size_t)n >= sizeof(head))
		return -EINVAL;
	c->status = status;
	if (c->on_status)
		c->on_status(c->status_ctx, status);
	{
		struct iovec iov[3] = {
			{ head, (size_t)n },
			{ (void *)(extra ? extra : ""), extra ? strlen(extra) : 0 },
			{ (void *)"\r\n", 2 },
		};

		return http_sendv(c, iov, 3);
	}
}

int http_send_chunk(struct http_conn *c, const void *buf, size_t len)
{
	char size[32];
	struct iovec iov[3];

	if (!http_chunked(c))
		return http_send(c, buf, len);
	iov[0].iov_base = size;
	iov[0].iov_len = (size_t)snprintf(size, sizeof(size), "%zx\r\n", len);
	iov[1].iov_base = (void *)buf;
	iov[1].iov_len = len;
	iov[2].iov_base = (void *)"\r\n";
	iov[2].iov_len = 2;
	return http_sendv(c, iov, 3);
}

int http_send_last_chunk(struct http_conn *c, const char *trailers)
{
	struct iovec iov[3] = {
		{ (void *)"0\r\n", 3 },
		{ (void *)(trailers ? trailers : ""), trailers ? strlen(trailers) : 0 },
		{ (void *)"\r\n", 2 },
	};

	if (!http_chunked(c))
		return 0;
	return http_sendv(c, iov, 3);
}

int http_respond(struct http_conn *c, int status, const char *content_type, const void *body,
		 size_t len, bool keep_alive, const char *extra)
{
	int rc = http_send_head(c, status, content_type, (int64_t)len, keep_alive, extra);

	if (rc || !len)
		return rc;
	return http_send(c, body, len);
}

int http_respond_error(struct http_conn *c, int status, const char *code, const char *message,
		       bool keep_alive, const char *extra)
{
	struct http_buf b = { 0 };
	int rc;

	http_buf_puts(&b, "{\"error\":{\"code\":");
	http_buf_json(&b, code, strlen(code));
	http_buf_puts(&b, ",\"message\":");
	http_buf_json(&b, message, strlen(message));
	http_buf_puts(&b, "}}\n");
	if (b.oom)
		rc = -ENOMEM;
	else
		rc = http_respond(c, status, "application/json", b.p, b.len, keep_alive, extra);
	http_buf_free(&b);
	return rc;
}

void http_linger(struct http_conn *c, int ms)
{
	int64_t deadline = http_now_ms() + ms;
	char sink[4096];

	shutdown(c->fd, SHUT_WR);
	while (wait_fd(c, POLLIN, deadline) == 0) {
		ssize_t n = recv(c->fd, sink, sizeof(sink), 0);

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			break;
	}
}

/* ---- query strings ---------------------------------------------------------- */

static int hex(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int http_url_decode(char *s, size_t *len)
{
	char *out = s;

	for (const char *in = s; *in; in++) {
		if (*in == '+') {
			*out++ = ' ';
		} else if (*in == '%') {
			int hi = hex((unsigned char)in[1]), lo = hi < 0 ? -1 : hex((unsigned char)in[2]);

			if (lo < 0 || (hi == 0 && lo == 0))
				return -EINVAL;
			*out++ = (char)(hi << 4 | lo);
			in += 2;
		} else {
			*out++ = *in;
		}
	}
	*out = 0;
	*len = (size_t)(out - s);
	return 0;
}

int http_query_next(char **q, char **name, char **value, size_t *value_len)
{
	char *p = *q, *amp, *eq;
	size_t nlen;

	while (*p == '&')
		p++;
	if (!*p)
		return 0;
	amp = strchr(p, '&');
	if (amp)
		*amp = 0;
	*q = amp ? amp + 1 : p + strlen(p);
	eq = strchr(p, '=');
	if (eq)
		*eq = 0;
	*name = p;
	*value = eq ? eq + 1 : p + strlen(p);
	if (http_url_decode(*name, &nlen) || http_url_decode(*value, value_len))
		return -EINVAL;
	return 1;
}
