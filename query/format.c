/*
 * format.c: query results as table, csv, tsv, json or ndjson (format.h),
 * written to a sink.
 *
 * Invariants:
 *  1. Streaming formats hold no rows: a row is formatted into one
 *     OUT_CHUNK-byte buffer that goes to the sink whenever it fills, so
 *     memory is O(OUT_CHUNK + one value) whatever the result's size. Only
 *     table keeps its rows (as rendered text), because aligning needs every
 *     width; its caller bounds it with max_rows.
 *  2. Once the sink refuses, the writer never calls it again: every later
 *     call returns -EPIPE. Out of memory is sticky the same way (-ENOMEM).
 *  3. Every byte written is UTF-8: invalid sequences in TEXT become U+FFFD,
 *     one per maximal ill-formed subpart (Unicode's "best practice"), in
 *     every format.
 *  4. A REAL prints as the shortest of %.15g, %.16g, %.17g that reads back
 *     as the same double, with ".0" added when that text would read as an
 *     integer, so 1.0 stays recognisably REAL; non-finite REALs are null in
 *     json/ndjson and Inf/-Inf/NaN elsewhere.
 *  5. Table cells are shown for people: control characters escaped (\n \r
 *     \t \xHH, C1 controls as \u0080..\u009f) so a value can neither break
 *     the alignment nor drive the terminal; widths count code points.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sqlite3.h>

#include "format.h"
#include "functions.h"

#define OUT_CHUNK (16 * 1024)
#define REAL_MAX 32 /* "-1.2345678901234567e-308" and ".0" */

/* ---- buffered output ------------------------------------------------------ */

/*
 * Bytes on their way somewhere. With a sink: a fixed buffer flushed to it
 * when full. Without: a buffer that grows (the table's cell store).
 */
struct out {
	char *buf;
	size_t len, cap;
	qsink_fn sink;
	void *ctx;
	int err; /* sticky: -EPIPE or -ENOMEM */
};

static void out_flush(struct out *o)
{
	if (o->err || !o->sink || !o->len)
		return;
	if (o->sink(o->ctx, o->buf, o->len) != 0)
		o->err = -EPIPE;
	o->len = 0;
}

static int out_grow(struct out *o, size_t need)
{
	size_t cap = o->cap ? o->cap : 4096;
	char *buf;

	while (cap - o->len < need) {
		if (cap > SIZE_MAX / 2)
			return -ENOMEM;
		cap *= 2;
	}
	buf = realloc(o->buf, cap);
	if (!buf)
		return -ENOMEM;
	o->buf = buf;
	o->cap = cap;
	return 0;
}

static void out_bytes(struct out *o, const void *data, size_t n)
{
	const char *p = data;

	while (n && !o->err) {
		size_t room = o->cap - o->len, k;

		if (!room) {
			if (o->sink) {
				out_flush(o);
			} else if (out_grow(o, n)) {
				o->err = -ENOMEM;
			}
			continue;
		}
		k = n < room ? n : room;
		memcpy(o->buf + o->len, p, k);
		o->len += k;
		p += k;
		n -= k;
	}
}

static void out_str(struct out *o, const char *s)
{
	out_bytes(o, s, strlen(s));
}

static void out_char(struct out *o, char c)
{
	if (o->len < o->cap && !o->err)
		o->buf[o->len++] = c;
	else
		out_bytes(o, &c, 1);
}

static void out_repeat(struct out *o, char c, size_t n)
{
	while (n--)
		out_char(o, c);
}

static void out_printf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void out_printf(struct out *o, const char *fmt, ...)
{
	char buf[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0)
		out_bytes(o, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* ---- text ----------------------------------------------------------------- */

/* Bytes of the valid UTF-8 sequence at s, or 0 with *bad = bytes of the
 * maximal ill-formed subpart (at least 1). Table 3-7 of the Unicode standard. */
static size_t utf8_valid(const unsigned char *s, size_t n, size_t *bad)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xBF;
	size_t need;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		need = 1;
	else if (c == 0xE0)
		need = 2, lo = 0xA0;
	else if (c == 0xED)
		need = 2, hi = 0x9F;
	else if (c >= 0xE1 && c <= 0xEF)
		need = 2;
	else if (c == 0xF0)
		need = 3, lo = 0x90;
	else if (c == 0xF4)
		need = 3, hi = 0x8F;
	else if (c >= 0xF1 && c <= 0xF3)
		need = 3;
	else {
		*bad = 1;
		return 0;
	}
	for (size_t i = 1; i <= need; i++) {
		if (i >= n || s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xBF)) {
			*bad = i;
			return 0;
		}
	}
	return need + 1;
}

enum esc { ESC_JSON, ESC_CSV, ESC_TSV, ESC_TABLE };

/* The escape for ASCII byte c under esc, or NULL if it stands for itself. */
static const char *esc_ascii(enum esc esc, unsigned char c, char tmp[8])
{
	switch (esc) {
	case ESC_JSON:
		switch (c) {
		case '"': return "\\\"";
		case '\\': return "\\\\";
		case '\b': return "\\b";
		case '\f': return "\\f";
		case '\n': return "\\n";
		case '\r': return "\\r";
		case '\t': return "\\t";
		}
		if (c < 0x20) {
			snprintf(tmp, 8, "\\u%04x", c);
			return tmp;
		}
		return NULL;
	case ESC_CSV:
		return c == '"' ? "\"\"" : NULL;
	case ESC_TSV:
		switch (c) {
		case '\\': return "\\\\";
		case '\t': return "\\t";
		case '\n': return "\\n";
		case '\r': return "\\r";
		}
		return NULL;
	case ESC_TABLE:
		switch (c) {
		case '\n': return "\\n";
		case '\r': return "\\r";
		case '\t': return "\\t";
		}
		if (c < 0x20 || c == 0x7f) {
			snprintf(tmp, 8, "\\x%02x", c);
			return tmp;
		}
		return NULL;
	}
	return NULL;
}

/* s (n bytes) escaped for esc, invalid UTF-8 as U+FFFD (invariant 3). */
static void out_text(struct out *o, const unsigned char *s, size_t n, enum esc esc)
{
	size_t run = 0, i = 0; /* s[i - run, i) waits to be copied as is */
	char tmp[8];

	while (i < n) {
		const char *rep = NULL;
		size_t bad = 0, len = utf8_valid(s + i, n - i, &bad);

		if (len == 1)
			rep = esc_ascii(esc, s[i], tmp);
		else if (!len)
			rep = "\xEF\xBF\xBD";
		else if (esc == ESC_TABLE && s[i] == 0xC2 && s[i + 1] < 0xA0) {
			snprintf(tmp, sizeof(tmp), "\\u%04x", s[i + 1]); /* C1 control */
			rep = tmp;
		}
		if (!rep) {
			run += len;
			i += len;
			continue;
		}
		out_bytes(o, s + i - run, run);
		out_str(o, rep);
		run = 0;
		i += len ? len : bad;
	}
	out_bytes(o, s + n - run, run);
}

static void out_json_string(struct out *o, const void *s, size_t n)
{
	out_char(o, '"');
	out_text(o, s, n, ESC_JSON);
	out_char(o, '"');
}

static void out_base64(struct out *o, const unsigned char *p, size_t n)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		char q[4];

		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		q[0] = b64[v >> 18 & 63];
		q[1] = b64[v >> 12 & 63];
		q[2] = i + 1 < n ? b64[v >> 6 & 63] : '=';
		q[3] = i + 2 < n ? b64[v & 63] : '=';
		out_bytes(o, q, 4);
	}
}

static void out_hex(struct out *o, const unsigned char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out_char(o, hex[p[i] >> 4]);
		out_char(o, hex[p[i] & 15]);
	}
}

/* ---- numbers -------------------------------------------------------------- */

/* Invariant 4; the text of a finite v into buf (REAL_MAX bytes). */
static int real_text(double v, char *buf)
{
	int n = 0;

	if (!isfinite(v))
		return snprintf(buf, REAL_MAX, "%s", isnan(v) ? "NaN" : v > 0 ? "Inf" : "-Inf");
	for (int prec = 15; prec <= 17; prec++) {
		n = snprintf(buf, REAL_MAX, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	if (!strpbrk(buf, ".e"))
		n += snprintf(buf + n, REAL_MAX - (size_t)n, ".0");
	return n;
}

static void out_int(struct out *o, sqlite3_int64 v)
{
	out_printf(o, "%lld", (long long)v);
}

static void out_real(struct out *o, double v, int json)
{
	char buf[REAL_MAX];

	if (json && !isfinite(v)) {
		out_str(o, "null");
		return;
	}
	out_bytes(o, buf, (size_t)real_text(v, buf));
}

/* ---- the writer ----------------------------------------------------------- */

struct column {
	size_t key_off, key_len; /* ndjson: "name": ; table: the header cell */
	size_t width;            /* table: widest cell, code points */
	uint64_t numbers, others; /* table: cells of each kind, for alignment */
	int is_time;
};

struct cell {
	size_t off, len, width;
};

struct qwriter {
	enum qformat fmt;
	uint64_t max_rows, rows;
	int truncated;
	int ncol;
	struct out out;         /* to the sink */
	struct out store;       /* keys and table cells, growing */
	struct column *cols;
	struct cell *cells;     /* table: ncol per row */
	size_t ncells, cells_cap;
};

int qformat_parse(const char *name, enum qformat *out)
{
	static const enum qformat all[] = { QFORMAT_TABLE, QFORMAT_CSV, QFORMAT_TSV, QFORMAT_JSON,
					    QFORMAT_NDJSON };

	for (size_t i = 0; name && i < sizeof(all) / sizeof(all[0]); i++) {
		if (strcasecmp(name, qformat_name(all[i])) == 0) {
			*out = all[i];
			return 0;
		}
	}
	return -EINVAL;
}

const char *qformat_name(enum qformat f)
{
	switch (f) {
	case QFORMAT_TABLE: return "table";
	case QFORMAT_CSV: return "csv";
	case QFORMAT_TSV: return "tsv";
	case QFORMAT_JSON: return "json";
	case QFORMAT_NDJSON: return "ndjson";
	}
	return NULL;
}

const char *qformat_content_type(enum qformat f)
{
	switch (f) {
	case QFORMAT_TABLE: return "text/plain; charset=utf-8";
	case QFORMAT_CSV: return "text/csv; charset=utf-8; header=present";
	case QFORMAT_TSV: return "text/tab-separated-values; charset=utf-8";
	case QFORMAT_JSON: return "application/json";
	case QFORMAT_NDJSON: return "application/x-ndjson";
	}
	return "application/octet-stream";
}

struct qwriter *qwriter_new(enum qformat f, uint64_t max_rows, qsink_fn sink, void *sink_ctx)
{
	struct qwriter *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->out.buf = malloc(OUT_CHUNK);
	if (!w->out.buf) {
		free(w);
		return NULL;
	}
	w->out.cap = OUT_CHUNK;
	w->out.sink = sink;
	w->out.ctx = sink_ctx;
	w->fmt = f;
	w->max_rows = max_rows;
	return w;
}

void qwriter_free(struct qwriter *w)
{
	if (!w)
		return;
	free(w->cells);
	free(w->cols);
	free(w->store.buf);
	free(w->out.buf);
	free(w);
}

uint64_t qwriter_rows(const struct qwriter *w)
{
	return w->rows;
}

int qwriter_truncated(const struct qwriter *w)
{
	return w->truncated;
}

/* The writer's sticky error (invariant 2); the store's ENOMEM stops the sink too. */
static int werr(struct qwriter *w)
{
	if (!w->out.err && w->store.err)
		w->out.err = w->store.err;
	return w->out.err;
}

static int is_time_name(const char *name)
{
	size_t n = strlen(name);

	return strcasecmp(name, "ts") == 0 || strncasecmp(name, "ts_", 3) == 0 ||
	       (n > 3 && strcasecmp(name + n - 3, "_ts") == 0);
}

static size_t code_points(const char *s, size_t n)
{
	size_t cp = 0;

	for (size_t i = 0; i < n; i++)
		cp += ((unsigned char)s[i] & 0xC0) != 0x80;
	return cp;
}

/* csv: quoted when it holds , " CR or LF, or is empty (so "" is not NULL). */
static void csv_text(struct out *o, const unsigned char *s, size_t n)
{
	int quote = n == 0;

	for (size_t i = 0; i < n && !quote; i++)
		quote = s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
	if (quote)
		out_char(o, '"');
	out_text(o, s, n, ESC_CSV);
	if (quote)
		out_char(o, '"');
}

static void header_name(struct qwriter *w, int i, const char *name)
{
	const unsigned char *s = (const unsigned char *)name;
	size_t n = strlen(name);
	struct column *c = &w->cols[i];

	switch (w->fmt) {
	case QFORMAT_CSV:
		if (i)
			out_char(&w->out, ',');
		csv_text(&w->out, s, n);
		break;
	case QFORMAT_TSV:
		if (i)
			out_char(&w->out, '\t');
		out_text(&w->out, s, n, ESC_TSV);
		break;
	case QFORMAT_JSON:
		if (i)
			out_char(&w->out, ',');
		out_json_string(&w->out, s, n);
		break;
	case QFORMAT_NDJSON:
		c->key_off = w->store.len;
		out_json_string(&w->store, s, n);
		out_char(&w->store, ':');
		c->key_len = w->store.len - c->key_off;
		break;
	case QFORMAT_TABLE:
		c->is_time = is_time_name(name);
		c->key_off = w->store.len;
		out_text(&w->store, s, n, ESC_TABLE);
		c->key_len = w->store.len - c->key_off;
		c->width = code_points(w->store.buf + c->key_off, c->key_len);
		break;
	}
}

int qwriter_begin(struct qwriter *w, sqlite3_stmt *stmt)
{
	if (werr(w))
		return w->out.err;
	w->ncol = sqlite3_column_count(stmt);
	w->cols = calloc(w->ncol ? (size_t)w->ncol : 1, sizeof(*w->cols));
	if (!w->cols)
		return w->out.err = -ENOMEM;
	if (w->fmt == QFORMAT_JSON)
		out_str(&w->out, "{\"columns\":[");
	for (int i = 0; i < w->ncol; i++) {
		const char *name = sqlite3_column_name(stmt, i);

		if (!name)
			return w->out.err = -ENOMEM;
		header_name(w, i, name);
	}
	if (w->fmt == QFORMAT_JSON)
		out_str(&w->out, "],\"rows\":[");
	else if (w->fmt == QFORMAT_CSV)
		out_str(&w->out, "\r\n");
	else if (w->fmt == QFORMAT_TSV)
		out_char(&w->out, '\n');
	return werr(w);
}

/* Column i's TEXT or BLOB bytes; NULL only when SQLite ran out of memory. */
static const unsigned char *column_bytes(sqlite3_stmt *stmt, int i, int type, size_t *n)
{
	const unsigned char *p = type == SQLITE_BLOB ? sqlite3_column_blob(stmt, i)
						    : sqlite3_column_text(stmt, i);

	*n = (size_t)sqlite3_column_bytes(stmt, i); /* after the pointer: sqlite3.h */
	if (!p && type == SQLITE_BLOB && *n == 0)
		return (const unsigned char *)"";
	return p;
}

static void json_value(struct out *o, sqlite3_stmt *stmt, int i)
{
	int type = sqlite3_column_type(stmt, i);
	const unsigned char *p;
	size_t n;

	switch (type) {
	case SQLITE_INTEGER:
		out_int(o, sqlite3_column_int64(stmt, i));
		return;
	case SQLITE_FLOAT:
		out_real(o, sqlite3_column_double(stmt, i), 1);
		return;
	case SQLITE_TEXT:
	case SQLITE_BLOB:
		p = column_bytes(stmt, i, type, &n);
		if (!p) {
			o->err = -ENOMEM;
			return;
		}
		if (type == SQLITE_TEXT) {
			out_json_string(o, p, n);
		} else {
			out_char(o, '"');
			out_base64(o, p, n);
			out_char(o, '"');
		}
		return;
	default:
		out_str(o, "null");
	}
}

/* csv and tsv: one field. */
static void flat_value(struct qwriter *w, sqlite3_stmt *stmt, int i)
{
	struct out *o = &w->out;
	int type = sqlite3_column_type(stmt, i);
	const unsigned char *p;
	size_t n;

	switch (type) {
	case SQLITE_NULL:
		if (w->fmt == QFORMAT_TSV)
			out_str(o, "\\N");
		return;
	case SQLITE_INTEGER:
		out_int(o, sqlite3_column_int64(stmt, i));
		return;
	case SQLITE_FLOAT:
		out_real(o, sqlite3_column_double(stmt, i), 0);
		return;
	}
	p = column_bytes(stmt, i, type, &n);
	if (!p) {
		o->err = -ENOMEM;
		return;
	}
	if (type == SQLITE_BLOB)
		out_base64(o, p, n);
	else if (w->fmt == QFORMAT_CSV)
		csv_text(o, p, n);
	else
		out_text(o, p, n, ESC_TSV);
	if (type == SQLITE_BLOB && n == 0 && w->fmt == QFORMAT_CSV)
		out_str(o, "\"\"");
}

/* table: column i of this row, rendered into the store. */
static void table_cell(struct qwriter *w, sqlite3_stmt *stmt, int i, struct cell *cell)
{
	struct out *o = &w->store;
	struct column *c = &w->cols[i];
	int type = sqlite3_column_type(stmt, i);
	const unsigned char *p;
	char buf[QFUNC_TIME_MAX];
	size_t n;

	cell->off = o->len;
	switch (type) {
	case SQLITE_NULL:
		out_str(o, "NULL");
		break;
	case SQLITE_INTEGER:
		if (c->is_time && qfunc_format_time(sqlite3_column_int64(stmt, i), 9, buf, sizeof(buf)) > 0) {
			out_str(o, buf);
			c->others++;
		} else {
			out_int(o, sqlite3_column_int64(stmt, i));
			c->numbers++;
		}
		break;
	case SQLITE_FLOAT:
		out_real(o, sqlite3_column_double(stmt, i), 0);
		c->numbers++;
		break;
	default:
		c->others++;
		p = column_bytes(stmt, i, type, &n);
		if (!p) {
			o->err = -ENOMEM;
			break;
		}
		if (type == SQLITE_TEXT) {
			out_text(o, p, n, ESC_TABLE);
		} else {
			out_str(o, "x'");
			out_hex(o, p, n);
			out_char(o, '\'');
		}
	}
	cell->len = o->len - cell->off;
	cell->width = o->err ? 0 : code_points(o->buf + cell->off, cell->len);
	if (cell->width > c->width)
		c->width = cell->width;
}

static void table_row(struct qwriter *w, sqlite3_stmt *stmt)
{
	if (w->ncells + (size_t)w->ncol > w->cells_cap) {
		size_t cap = w->cells_cap ? w->cells_cap * 2 : 64 * (size_t)w->ncol;
		struct cell *cells;

		while (cap < w->ncells + (size_t)w->ncol)
			cap *= 2;
		cells = realloc(w->cells, cap * sizeof(*cells));
		if (!cells) {
			w->store.err = -ENOMEM;
			return;
		}
		w->cells = cells;
		w->cells_cap = cap;
	}
	for (int i = 0; i < w->ncol; i++)
		table_cell(w, stmt, i, &w->cells[w->ncells + (size_t)i]);
	w->ncells += (size_t)w->ncol;
}

int qwriter_row(struct qwriter *w, sqlite3_stmt *stmt)
{
	struct out *o = &w->out;

	if (werr(w))
		return w->out.err;
	if (w->max_rows && w->rows >= w->max_rows) {
		w->truncated = 1;
		return 1;
	}
	switch (w->fmt) {
	case QFORMAT_TABLE:
		table_row(w, stmt);
		break;
	case QFORMAT_CSV:
	case QFORMAT_TSV:
		for (int i = 0; i < w->ncol; i++) {
			if (i)
				out_char(o, w->fmt == QFORMAT_CSV ? ',' : '\t');
			flat_value(w, stmt, i);
		}
		out_str(o, w->fmt == QFORMAT_CSV ? "\r\n" : "\n");
		break;
	case QFORMAT_JSON:
		out_str(o, w->rows ? ",[" : "[");
		for (int i = 0; i < w->ncol; i++) {
			if (i)
				out_char(o, ',');
			json_value(o, stmt, i);
		}
		out_char(o, ']');
		break;
	case QFORMAT_NDJSON:
		out_char(o, '{');
		for (int i = 0; i < w->ncol; i++) {
			if (i)
				out_char(o, ',');
			out_bytes(o, w->store.buf + w->cols[i].key_off, w->cols[i].key_len);
			json_value(o, stmt, i);
		}
		out_str(o, "}\n");
		break;
	}
	w->rows++;
	return werr(w);
}

/* table: one line of cells (or headers), aligned. */
static void table_line(struct qwriter *w, const struct cell *cells)
{
	for (int i = 0; i < w->ncol; i++) {
		const struct column *c = &w->cols[i];
		size_t pad = c->width - cells[i].width;
		int right = c->numbers && !c->others;

		if (i)
			out_str(&w->out, "  ");
		if (right)
			out_repeat(&w->out, ' ', pad);
		out_bytes(&w->out, w->store.buf + cells[i].off, cells[i].len);
		if (!right && i + 1 < w->ncol) /* no trailing blanks */
			out_repeat(&w->out, ' ', pad);
	}
	out_char(&w->out, '\n');
}

static void table_render(struct qwriter *w)
{
	if (w->ncol) {
		struct cell *head = calloc((size_t)w->ncol, sizeof(*head));

		if (!head) {
			w->out.err = -ENOMEM;
			return;
		}
		for (int i = 0; i < w->ncol; i++)
			head[i] = (struct cell){ w->cols[i].key_off, w->cols[i].key_len,
						 code_points(w->store.buf + w->cols[i].key_off,
							     w->cols[i].key_len) };
		table_line(w, head);
		free(head);
		for (int i = 0; i < w->ncol; i++) {
			if (i)
				out_str(&w->out, "  ");
			out_repeat(&w->out, '-', w->cols[i].width);
		}
		out_char(&w->out, '\n');
		for (size_t r = 0; r < w->ncells; r += (size_t)w->ncol)
			table_line(w, w->cells + r);
	}
	if (w->truncated)
		out_printf(&w->out, "(%" PRIu64 " %s, truncated at %" PRIu64 ")\n", w->rows,
			   w->rows == 1 ? "row" : "rows", w->max_rows);
	else
		out_printf(&w->out, "(%" PRIu64 " %s)\n", w->rows, w->rows == 1 ? "row" : "rows");
}

int qwriter_end(struct qwriter *w, int64_t elapsed_ns)
{
	if (werr(w))
		return w->out.err;
	if (w->fmt == QFORMAT_TABLE)
		table_render(w);
	else if (w->fmt == QFORMAT_JSON)
		out_printf(&w->out, "],\"row_count\":%" PRIu64 ",\"elapsed_ms\":%.3f,\"truncated\":%s}\n",
			   w->rows, (double)elapsed_ns / 1e6, w->truncated ? "true" : "false");
	out_flush(&w->out);
	return werr(w);
}

int qformat_json_string(qsink_fn sink, void *ctx, const char *s, size_t len)
{
	char buf[1024];
	struct out o = { .buf = buf, .cap = sizeof(buf), .sink = sink, .ctx = ctx };

	out_json_string(&o, s, len);
	out_flush(&o);
	return o.err;
}
