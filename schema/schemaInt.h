/*
 * schemaInt.h: what partition.c and catalog.c share. Private to schema/;
 * nothing outside this folder includes it.
 */
#ifndef FLOWSTORE_SCHEMA_INT_H
#define FLOWSTORE_SCHEMA_INT_H

#include <stdint.h>

#include "schema.h"

#define SCHEMA_APPLICATION_ID 0x464C5753u /* 'FLWS' */

/*
 * Set this thread's error text to "<path>: <reason>" (just "<reason>" when
 * path is NULL) and return err, a negative errno, so callers can write
 * `return schema_error(-EINVAL, path, "...")`.
 */
int schema_error(int err, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The reason part of the last error on this thread, without the path. */
const char *schema_error_reason(void);

/* What the first 100 bytes of a SQLite file say about it. */
struct schema_header {
	int wal;                 /* file format bytes say WAL (2/2) */
	uint32_t user_version;
	uint32_t application_id;
};

/*
 * Read path's SQLite header with plain read(2), without SQLite: nothing is
 * created or changed next to a file that may not be ours. -ENOENT missing,
 * -EIO unreadable, -EINVAL not a regular file, empty, or not SQLite.
 */
int schema_header_read(const char *path, struct schema_header *h);

/* Whether path + suffix ("-wal", ...) exists. */
int schema_side_file_exists(const char *path, const char *suffix);

#endif /* FLOWSTORE_SCHEMA_INT_H */
