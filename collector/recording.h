/*
 * Recordings: the raw events of a run, written by --record and played back
 * by --source replay:FILE, so a real capture is reproducible in a test or a
 * bug report. Malformed events are recorded as they came.
 *
 * Format (version 1), host byte order (a byte-order mark rejects a foreign
 * one):
 *   header  : magic "FLOWSREC" | u32 bom 0x01020304 | u32 format version |
 *             u32 event ABI version | u32 header size (32) | i64 created (UTC ns)
 *   frame*  : u32 payload size | u32 crc32(payload) | i64 utc_offset_ns | payload
 *
 * The UTC offset travels with each event, so a replay gives the same rows
 * as the recorded run.
 */
#ifndef FLOWSTORE_RECORDING_H
#define FLOWSTORE_RECORDING_H

#include <stddef.h>
#include <stdint.h>

#define RECORDING_VERSION 1
#define RECORDING_MAX_EVENT 65535 /* a frame larger than this is corrupt */

struct recording_writer;
struct recording_reader;

/* Create (truncate) path. errbuf gets a one-line reason on failure. */
int recording_writer_open(const char *path, int64_t created_ns,
			  struct recording_writer **out, char *errbuf, size_t errlen);
int recording_write(struct recording_writer *w, const void *data, size_t size,
		    int64_t utc_offset_ns);
/* Flush and close; returns the first write error seen, if any. */
int recording_writer_close(struct recording_writer *w);

struct recording_frame {
	const void *data; /* valid until the next recording_next() */
	size_t size;
	int64_t utc_offset_ns;
};

/* Open and check the header; errbuf says what is wrong with a bad file
 * ("not a flowstore recording", "recording version 7 is not supported"...). */
int recording_reader_open(const char *path, struct recording_reader **out,
			  char *errbuf, size_t errlen);
/* 1: a frame; 0: end of file; < 0: corrupt or truncated (errbuf says where). */
int recording_next(struct recording_reader *r, struct recording_frame *f,
		   char *errbuf, size_t errlen);
void recording_reader_close(struct recording_reader *r);

#endif /* FLOWSTORE_RECORDING_H */
