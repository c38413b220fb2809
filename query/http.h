/*
 * http: the server side of HTTP/1.1 on one connected socket — reading one
 * request at a time with http-parser, and writing responses (whole, or
 * streamed in chunks). Private to query/ (server.c and its parts).
 *
 * A struct http_conn belongs to one thread. Every wait polls the socket
 * together with stop_fd, which becomes readable (and stays so) when the
 * server stops: nothing here can hold a thread past a stop.
 */
#ifndef FLOWSTORE_HTTP_H
#define FLOWSTORE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <http_parser.h>

/* A growable byte buffer; len bytes of p are used, p[len] is always 0 once
 * anything was added. oom is sticky: later adds do nothing. */
struct http_buf {
	char *p;
	size_t len, cap;
	bool oom;
};

void http_buf_add(struct http_buf *b, const void *data, size_t len);
void http_buf_puts(struct http_buf *b, const char *s);
void http_buf_printf(struct http_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A JSON string literal, quotes included. */
void http_buf_json(struct http_buf *b, const char *s, size_t len);
void http_buf_free(struct http_buf *b);

struct http_request {
	enum http_method method;
	unsigned short http_major, http_minor;
	const char *path;  /* NUL-terminated, before any '?'; not decoded */
	char *query;       /* after '?', NUL-terminated, "" if none; not decoded */
	const char *body;  /* body_len bytes (NUL-terminated) */
	size_t body_len;
	bool keep_alive;   /* the client allows another request after this one */
};

struct http_conn {
	int fd, stop_fd;
	int64_t timeout_ms;      /* a whole request; and a write that makes no progress */
	size_t max_header_bytes; /* request line and headers */
	size_t max_body_bytes;
	/* private */
	http_parser parser;
	char in[16384];          /* read but not parsed yet (pipelined requests) */
	size_t in_len;
	struct http_buf target, body, field, value;
	size_t head_bytes;
	bool saw_field, in_value, headers_done, message_done, expect_continue, continue_sent;
	int error;               /* status to answer with, set by a callback */
	struct http_request req;
	int status;              /* of the last response head sent; the caller may reset it */
	/* Called with each status just before its head is sent (counting:
	 * a client that saw the answer finds it counted). May be NULL. */
	void (*on_status)(void *ctx, int status);
	void *status_ctx;
};

/* fd: connected, O_NONBLOCK. The conn does not own it. */
void http_conn_init(struct http_conn *c, int fd, int stop_fd, int64_t timeout_ms,
		    size_t max_header_bytes, size_t max_body_bytes);
void http_conn_free(struct http_conn *c);

/*
 * Read the next request. Returns 0 with c->req filled (valid until the next
 * call); HTTP_CLOSE when the connection should just be closed (the client
 * closed it or stayed silent, or the server stops); or an HTTP status to
 * answer before closing: 400 malformed, 408 not whole in time, 413 body
 * too large, 414 URL too long, 431 headers too large.
 */
#define HTTP_CLOSE 1
int http_read_request(struct http_conn *c);

/* Everything, or -ETIMEDOUT (no progress for timeout_ms), -ECANCELED
 * (server stopping), -EPIPE (client gone). */
int http_sendv(struct http_conn *c, struct iovec *iov, int iovcnt);
int http_send(struct http_conn *c, const void *buf, size_t len);

/*
 * Status line and headers. content_length < 0: the body follows in chunks
 * (HTTP/1.1) or until the connection closes (HTTP/1.0 clients: keep_alive
 * must then be false). extra: more header lines, each ending in "\r\n", or
 * NULL. Returns what http_sendv returns.
 */
int http_send_head(struct http_conn *c, int status, const char *content_type,
		   int64_t content_length, bool keep_alive, const char *extra);
/* One chunk of a chunked body (len > 0), or the raw bytes for HTTP/1.0. */
int http_send_chunk(struct http_conn *c, const void *buf, size_t len);
/* The last chunk, with trailer lines ("Name: value\r\n"...) or NULL. */
int http_send_last_chunk(struct http_conn *c, const char *trailers);

/* A whole response with a Content-Length. */
int http_respond(struct http_conn *c, int status, const char *content_type, const void *body,
		 size_t len, bool keep_alive, const char *extra);
/* {"error":{"code":"...","message":"..."}} */
int http_respond_error(struct http_conn *c, int status, const char *code, const char *message,
		       bool keep_alive, const char *extra);

/* After an error answered without reading the whole request: stop writing,
 * read and discard for at most ms, so the client sees the answer rather
 * than a reset; then the caller closes. */
void http_linger(struct http_conn *c, int ms);

bool http_chunked(const struct http_conn *c); /* the response can be chunked (HTTP/1.1) */
const char *http_reason(int status);

/* %XX and '+' decoding of a query-string component, in place; -EINVAL on a
 * bad escape or an embedded NUL. */
int http_url_decode(char *s, size_t *len);

/* The next "name=value" pair of a query string; 0 at the end. The pointers
 * point into q (modified: '&' and '=' become NUL; values decoded). */
int http_query_next(char **q, char **name, char **value, size_t *value_len);

int64_t http_now_ms(void); /* CLOCK_MONOTONIC */

#endif /* FLOWSTORE_HTTP_H */
