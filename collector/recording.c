/*
 * Recordings (format in recording.h): a writer for --record and a reader
 * for --source replay:FILE.
 *
 * Invariants:
 *  - The writer never writes a frame the reader would reject: sizes are
 *    checked (1..RECORDING_MAX_EVENT) before anything is written, and the
 *    crc32 (zlib) covers exactly the payload.
 *  - The reader trusts nothing in the file: every size is bounded before
 *    it is used, the payload buffer is allocated once at its maximum, and
 *    an error is sticky (every later call returns it again), so a caller
 *    looping on recording_next() cannot run past a bad frame.
 *  - Errors are negative errno with a one-line reason in errbuf; frame
 *    errors name the byte offset of the frame that is bad.
 *
 * I/O goes through stdio with a large buffer: frames are small and many.
 */
#include "recording.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "events.h"

#define MAGIC "FLOWSREC"
#define MAGIC_LEN 8
#define BYTE_ORDER_MARK 0x01020304u
#define FOREIGN_BYTE_ORDER_MARK 0x04030201u
#define HEADER_SIZE 32
#define FRAME_HEADER_SIZE 16
#define IO_BUFFER_SIZE (1u << 20)

/* Header field offsets. */
enum {
	H_MAGIC = 0,
	H_BOM = 8,
	H_VERSION = 12,
	H_ABI = 16,
	H_SIZE = 20,
	H_CREATED = 24,
};

struct recording_writer {
	FILE *f;
	char *iobuf; /* f's buffer: freed after fclose */
	int error;   /* first write error, sticky */
};

struct recording_reader {
	FILE *f;
	char *iobuf;
	unsigned char *payload; /* RECORDING_MAX_EVENT bytes */
	uint64_t offset;        /* of the next frame */
	int error;              /* sticky once set */
	char error_msg[96];
};

static void set_err(char *errbuf, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!errbuf || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

static int errno_or(int fallback)
{
	return errno > 0 ? -errno : -fallback;
}

static void put_u32(unsigned char *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static void put_i64(unsigned char *p, int64_t v)
{
	memcpy(p, &v, sizeof(v));
}

static uint32_t get_u32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static int64_t get_i64(const unsigned char *p)
{
	int64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* A FILE with our big buffer, or NULL with errno set. */
static FILE *open_buffered(const char *path, const char *mode, char **iobuf)
{
	FILE *f;

	*iobuf = malloc(IO_BUFFER_SIZE);
	if (!*iobuf) {
		errno = ENOMEM;
		return NULL;
	}
	f = fopen(path, mode);
	if (!f) {
		int saved = errno;

		free(*iobuf);
		*iobuf = NULL;
		errno = saved;
		return NULL;
	}
	setvbuf(f, *iobuf, _IOFBF, IO_BUFFER_SIZE);
	return f;
}

/* ---- writing ------------------------------------------------------------ */

static int write_all(struct recording_writer *w, const void *data, size_t size)
{
	errno = 0;
	if (fwrite(data, 1, size, w->f) != size && w->error == 0)
		w->error = errno_or(EIO);
	return w->error;
}

int recording_writer_open(const char *path, int64_t created_ns,
			  struct recording_writer **out, char *errbuf, size_t errlen)
{
	unsigned char h[HEADER_SIZE] = { 0 };
	struct recording_writer *w = calloc(1, sizeof(*w));
	int rc;

	if (!w) {
		set_err(errbuf, errlen, "out of memory");
		return -ENOMEM;
	}
	w->f = open_buffered(path, "wbe", &w->iobuf);
	if (!w->f) {
		rc = errno_or(EIO);
		set_err(errbuf, errlen, "cannot create: %s", strerror(-rc));
		free(w);
		return rc;
	}
	memcpy(h + H_MAGIC, MAGIC, MAGIC_LEN);
	put_u32(h + H_BOM, BYTE_ORDER_MARK);
	put_u32(h + H_VERSION, RECORDING_VERSION);
	put_u32(h + H_ABI, FS_ABI_VERSION);
	put_u32(h + H_SIZE, HEADER_SIZE);
	put_i64(h + H_CREATED, created_ns);
	rc = write_all(w, h, sizeof(h));
	if (rc < 0) {
		set_err(errbuf, errlen, "cannot write header: %s", strerror(-rc));
		recording_writer_close(w);
		return rc;
	}
	*out = w;
	return 0;
}

int recording_write(struct recording_writer *w, const void *data, size_t size,
		    int64_t utc_offset_ns)
{
	unsigned char fh[FRAME_HEADER_SIZE];

	if (size == 0 || size > RECORDING_MAX_EVENT)
		return -EINVAL;
	if (w->error)
		return w->error;
	put_u32(fh, (uint32_t)size);
	put_u32(fh + 4, (uint32_t)crc32(0L, data, (uInt)size));
	put_i64(fh + 8, utc_offset_ns);
	if (write_all(w, fh, sizeof(fh)) < 0)
		return w->error;
	return write_all(w, data, size);
}

int recording_writer_close(struct recording_writer *w)
{
	int rc;

	if (!w)
		return 0;
	errno = 0;
	if (fflush(w->f) != 0 && w->error == 0)
		w->error = errno_or(EIO);
	errno = 0;
	if (fclose(w->f) != 0 && w->error == 0)
		w->error = errno_or(EIO);
	rc = w->error;
	free(w->iobuf);
	free(w);
	return rc;
}

/* ---- reading ------------------------------------------------------------ */

static int check_header(const unsigned char *h, size_t n, char *errbuf, size_t errlen)
{
	uint32_t bom, version, abi, size;

	if (n < MAGIC_LEN || memcmp(h + H_MAGIC, MAGIC, MAGIC_LEN) != 0) {
		set_err(errbuf, errlen, "not a flowstore recording");
		return -EINVAL;
	}
	if (n < HEADER_SIZE) {
		set_err(errbuf, errlen, "truncated header (%zu of %d bytes)", n, HEADER_SIZE);
		return -EINVAL;
	}
	bom = get_u32(h + H_BOM);
	version = get_u32(h + H_VERSION);
	abi = get_u32(h + H_ABI);
	size = get_u32(h + H_SIZE);
	if (bom != BYTE_ORDER_MARK) {
		set_err(errbuf, errlen, bom == FOREIGN_BYTE_ORDER_MARK ?
			"recording has the other byte order" :
			"not a flowstore recording (bad byte-order mark)");
		return -EINVAL;
	}
	if (version != RECORDING_VERSION) {
		set_err(errbuf, errlen, "recording version %" PRIu32 " is not supported", version);
		return -ENOTSUP;
	}
	if (size != HEADER_SIZE) {
		set_err(errbuf, errlen, "bad header size %" PRIu32 " (expected %d)", size, HEADER_SIZE);
		return -EINVAL;
	}
	if (abi != FS_ABI_VERSION) {
		set_err(errbuf, errlen, "recording has event ABI version %" PRIu32
			", this build reads %d", abi, FS_ABI_VERSION);
		return -ENOTSUP;
	}
	return 0;
}

int recording_reader_open(const char *path, struct recording_reader **out,
			  char *errbuf, size_t errlen)
{
	unsigned char h[HEADER_SIZE];
	struct recording_reader *r = calloc(1, sizeof(*r));
	size_t n;
	int rc;

	if (!r || !(r->payload = malloc(RECORDING_MAX_EVENT))) {
		set_err(errbuf, errlen, "out of memory");
		rc = -ENOMEM;
		goto cleanup;
	}
	r->f = open_buffered(path, "rbe", &r->iobuf);
	if (!r->f) {
		rc = errno_or(EIO);
		set_err(errbuf, errlen, "cannot open: %s", strerror(-rc));
		goto cleanup;
	}
	errno = 0;
	n = fread(h, 1, sizeof(h), r->f);
	if (n < sizeof(h) && ferror(r->f)) {
		rc = errno_or(EIO);
		set_err(errbuf, errlen, "read error: %s", strerror(-rc));
		goto cleanup;
	}
	rc = check_header(h, n, errbuf, errlen);
	if (rc < 0)
		goto cleanup;
	r->offset = HEADER_SIZE;
	*out = r;
	return 0;
cleanup:
	recording_reader_close(r);
	return rc;
}

static int frame_error(struct recording_reader *r, int err, const char *what,
		       char *errbuf, size_t errlen)
{
	r->error = err;
	snprintf(r->error_msg, sizeof(r->error_msg), "%s at offset %" PRIu64, what, r->offset);
	set_err(errbuf, errlen, "%s", r->error_msg);
	return err;
}

/* Reads exactly size bytes: 1; clean EOF before any byte: 0; else < 0. */
static int read_exact(struct recording_reader *r, void *buf, size_t size, bool eof_ok,
		      char *errbuf, size_t errlen)
{
	size_t n;

	errno = 0;
	n = fread(buf, 1, size, r->f);
	if (n == size)
		return 1;
	if (ferror(r->f))
		return frame_error(r, errno_or(EIO), "read error", errbuf, errlen);
	if (n == 0 && eof_ok)
		return 0;
	return frame_error(r, -EIO, "truncated frame", errbuf, errlen);
}

int recording_next(struct recording_reader *r, struct recording_frame *f,
		   char *errbuf, size_t errlen)
{
	unsigned char fh[FRAME_HEADER_SIZE];
	uint32_t size, crc;
	int rc;

	if (r->error) {
		set_err(errbuf, errlen, "%s", r->error_msg);
		return r->error;
	}
	rc = read_exact(r, fh, sizeof(fh), true, errbuf, errlen);
	if (rc <= 0)
		return rc;
	size = get_u32(fh);
	crc = get_u32(fh + 4);
	if (size == 0 || size > RECORDING_MAX_EVENT)
		return frame_error(r, -EIO, "corrupt frame", errbuf, errlen);
	rc = read_exact(r, r->payload, size, false, errbuf, errlen);
	if (rc < 0)
		return rc;
	if ((uint32_t)crc32(0L, r->payload, size) != crc)
		return frame_error(r, -EIO, "checksum mismatch", errbuf, errlen);
	f->data = r->payload;
	f->size = size;
	f->utc_offset_ns = get_i64(fh + 8);
	r->offset += FRAME_HEADER_SIZE + size;
	return 1;
}

void recording_reader_close(struct recording_reader *r)
{
	if (!r)
		return;
	if (r->f)
		fclose(r->f);
	free(r->iobuf);
	free(r->payload);
	free(r);
}
