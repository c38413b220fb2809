/*
 * The client side of the query socket (client.h), for flowq.
 *
 * Invariants:
 *  1. One request per connection, sent with Connection: close; the response
 *     is complete only when http-parser says the message is (Content-Length
 *     reached, or the last chunk). An end of stream before that is a broken
 *     transfer (-EPIPE), never a short success: the server ends a result
 *     that failed midway exactly so.
 *  2. A 2xx body goes to the sink as it arrives; any other body is kept
 *     (bounded) to show the server's message.
 */
#include "client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <http_parser.h>

#define ERROR_BODY_MAX (64 << 10)

int client_connect(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd, err;

	if (strlen(path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	memcpy(addr.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr))) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static int send_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int client_request(int fd, const char *method, const char *target, const char *body,
		   size_t len)
{
	char head[256];
	int n, rc;

	n = snprintf(head, sizeof(head), "%s ", method);
	rc = send_all(fd, head, (size_t)n);
	if (!rc)
		rc = send_all(fd, target, strlen(target));
	/* Content-Length always (0 without a body): simple, and valid for GET. */
	n = snprintf(head, sizeof(head),
		     " HTTP/1.1\r\nHost: flowstore\r\nUser-Agent: flowq/" FLOWSTORE_VERSION "\r\n"
		     "Connection: close\r\n%sContent-Length: %zu\r\n\r\n",
		     body ? "Content-Type: application/sql\r\n" : "", body ? len : 0);
	if (!rc)
		rc = send_all(fd, head, (size_t)n);
	if (!rc && body && len)
		rc = send_all(fd, body, len);
	return rc;
}

/* ---- the response ---------------------------------------------------------- */

struct reader {
	struct client_response *r;
	client_sink_fn sink;
	void *ctx;
	char field[64], value[64];
	size_t flen, vlen;
	bool in_value, complete, sink_failed;
};

static void header_done(struct reader *rd)
{
	rd->field[rd->flen] = rd->value[rd->vlen] = 0;
	if (!strcasecmp(rd->field, "x-flowstore-truncated")) {
		rd->r->truncated = !strcasecmp(rd->value, "true");
	} else if (!strcasecmp(rd->field, "x-flowstore-rows")) {
		rd->r->rows = strtoull(rd->value, NULL, 10);
		rd->r->has_rows = true;
	}
	rd->flen = rd->vlen = 0;
	rd->in_value = false;
}

static void add_short(char *dst, size_t *len, const char *at, size_t n)
{
	size_t room = 63 - *len;

	if (n > room)
		n = room;
	memcpy(dst + *len, at, n);
	*len += n;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct reader *rd = p->data;

	if (rd->in_value)
		header_done(rd);
	add_short(rd->field, &rd->flen, at, len);
	return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct reader *rd = p->data;

	rd->in_value = true;
	add_short(rd->value, &rd->vlen, at, len);
	return 0;
}

static int on_headers_complete(http_parser *p)
{
	struct reader *rd = p->data;

	if (rd->in_value)
		header_done(rd);
	rd->r->status = p->status_code;
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct reader *rd = p->data;
	struct client_response *r = rd->r;

	if (r->status >= 200 && r->status < 300) {
		if (rd->sink(rd->ctx, at, len)) {
			rd->sink_failed = true;
			return 1;
		}
		return 0;
	}
	if (r->error_len + len > ERROR_BODY_MAX)
		len = ERROR_BODY_MAX - r->error_len;
	if (len) {
		char *b = realloc(r->error_body, r->error_len + len + 1);

		if (!b)
			return 1;
		memcpy(b + r->error_len, at, len);
		r->error_body = b;
		r->error_len += len;
		b[r->error_len] = 0;
	}
	return 0;
}

static int on_message_complete(http_parser *p)
{
	struct reader *rd = p->data;

	if (rd->in_value)
		header_done(rd); /* the last trailer */
	rd->complete = true;
	return 0;
}

static const http_parser_settings settings = {
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

int client_read(int fd, client_sink_fn sink, void *ctx, volatile int *stop,
		struct client_response *r)
{
	struct reader rd = { .r = r, .sink = sink, .ctx = ctx };
	http_parser p;
	char buf[65536];

	memset(r, 0, sizeof(*r));
	http_parser_init(&p, HTTP_RESPONSE);
	p.data = &rd;
	while (!rd.complete) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		size_t used;

		if (n < 0 && errno == EINTR) {
			if (stop && *stop)
				return -EINTR;
			continue;
		}
		if (n < 0)
			return -EPIPE;
		used = http_parser_execute(&p, &settings, buf, (size_t)n);
		if (rd.sink_failed)
			return -EIO;
		if (rd.complete)
			break;
		if (HTTP_PARSER_ERRNO(&p) != HPE_OK || used != (size_t)n)
			return r->status ? -EPIPE : -EPROTO;
		if (n == 0)
			return -EPIPE; /* the end came before the message's end */
	}
	return 0;
}

void client_response_free(struct client_response *r)
{
	free(r->error_body);
	r->error_body = NULL;
	r->error_len = 0;
}

/* ---- small text helpers ------------------------------------------------------- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* UTF-8 of one code point into out (4 bytes room). */
static size_t utf8(unsigned cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

static unsigned hex4(const char *s)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		int h = hexval((unsigned char)s[i]);

		if (h < 0)
			return 0xfffd;
		v = v << 4 | (unsigned)h;
	}
	return v;
}

/* Decode the JSON string starting after its opening quote. */
static char *json_string(const char *s, const char *end)
{
	char *out = malloc((size_t)(end - s) + 1), *o = out;

	if (!out)
		return NULL;
	while (s < end && *s != '"') {
		if (*s != '\\') {
			*o++ = *s++;
			continue;
		}
		if (++s >= end)
			break;
		switch (*s) {
		case 'n': *o++ = '\n'; break;
		case 't': *o++ = '\t'; break;
		case 'r': *o++ = '\r'; break;
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'u': {
			unsigned cp = end - s > 4 ? hex4(s + 1) : 0xfffd;

			if (cp >= 0xd800 && cp < 0xdc00 && end - s > 10 && s[5] == '\\' && s[6] == 'u') {
				unsigned lo = hex4(s + 7);

				if (lo >= 0xdc00 && lo < 0xe000) {
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
					s += 6;
				}
			}
			o += utf8(cp, o);
			s += 4;
			break;
		}
		default: *o++ = *s; break;
		}
		s++;
	}
	*o = 0;
	return out;
}

char *client_error_message(const char *body, size_t len)
{
	static const char key[] = "\"message\"";
	const char *end = body + len, *p;

	if (!body)
		return NULL;
	p = memmem(body, len, key, sizeof(key) - 1);
	if (!p)
		return NULL;
	p += sizeof(key) - 1;
	while (p < end && (*p == ' ' || *p == ':' || *p == '\n' || *p == '\t'))
		p++;
	if (p >= end || *p != '"')
		return NULL;
	return json_string(p + 1, end);
}

int client_url_encode(const char *s, char *out, size_t outlen)
{
	static const char hexd[] = "0123456789ABCDEF";
	size_t n = strlen(out);

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~';

		if (n + 4 > outlen)
			return -ENOSPC;
		if (plain) {
			out[n++] = (char)c;
		} else {
			out[n++] = '%';
			out[n++] = hexd[c >> 4];
			out[n++] = hexd[c & 15];
		}
	}
	out[n] = 0;
	return 0;
}
