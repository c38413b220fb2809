/*
 * client: the HTTP/1.1 client side of flowq — one request on a fresh
 * connection to the query socket, the response parsed with http-parser, a
 * successful body streamed to a sink as it arrives (chunks decoded).
 */
#ifndef FLOWSTORE_CLIENT_H
#define FLOWSTORE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Body bytes of a 2xx answer. Nonzero stops reading (client_read → -EIO). */
typedef int (*client_sink_fn)(void *ctx, const void *buf, size_t len);

struct client_response {
	int status;
	bool truncated;    /* X-Flowstore-Truncated: true, in a header or the trailer */
	uint64_t rows;     /* X-Flowstore-Rows, if has_rows */
	bool has_rows;
	char *error_body;  /* the body of an answer that is not 2xx (malloc'd, NUL-terminated) */
	size_t error_len;
};

/* A connected socket, or -errno. */
int client_connect(const char *path);

/* Send one request (Connection: close). body may be NULL. 0 or -errno. */
int client_request(int fd, const char *method, const char *target, const char *body,
		   size_t len);

/*
 * Read the response to its end. 0: complete. -EPIPE: the connection ended
 * before the response did (or a read failed); -EPROTO: not HTTP; -EINTR: a
 * signal arrived and *stop was set; -EIO: the sink refused.
 */
int client_read(int fd, client_sink_fn sink, void *ctx, volatile int *stop,
		struct client_response *r);
void client_response_free(struct client_response *r);

/* The "message" of an error body {"error":{...,"message":"..."}}, decoded;
 * NULL if there is none. Caller frees. */
char *client_error_message(const char *body, size_t len);

/* Append s, %-encoded for a query string, to out (size outlen). -ENOSPC if
 * it does not fit. */
int client_url_encode(const char *s, char *out, size_t outlen);

#endif /* FLOWSTORE_CLIENT_H */
