/*
 * schemaInt.h: what partition.c, rollup_file.c and catalog.c share. Private
 * to schema/; nothing outside this folder includes it.
 */
#ifndef FLOWSTORE_SCHEMA_INT_H
#define FLOWSTORE_SCHEMA_INT_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

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

/* ---- SQLite helpers (partition.c) ----------------------------------------- */

/* Reading a file that is not ours is -EINVAL; failing to write to one we
 * opened as ours is -EIO. */
enum sql_ctx { SQL_READ, SQL_WRITE };

/* Record "<path>: <what>: <SQLite's text>" and return the errno for rc
 * (SQLITE_FULL -ENOSPC, SQLITE_BUSY -EBUSY, ...; a read that needs
 * recovery -EAGAIN). */
int schema_sql_fail(sqlite3 *db, int rc, const char *path, const char *what, enum sql_ctx ctx);
int schema_sql_exec(sqlite3 *db, const char *sql, const char *path, const char *what,
		    enum sql_ctx ctx);
/* Step a statement that returns no row, then reset it. SQLite's code. */
int schema_stmt_run(sqlite3_stmt *st);
/* First column of the first row of sql, as an integer or as text. SQLite's
 * code; SQLITE_EMPTY when there is no row. */
int schema_sql_query(sqlite3 *db, const char *sql, int64_t *num, char *text, size_t len);

/* Open an existing file (flags: SQLITE_OPEN_READONLY or _READWRITE), with
 * extended result codes and a 5 s busy timeout. Negative errno. */
int schema_db_open(const char *path, int flags, sqlite3 **out);

/* Open path if its header says it is ours (application_id, a schema
 * version this build reads), checked before SQLite sees the file.
 * *version is the file's schema version. */
int schema_open_ours(const char *path, int flags, sqlite3 **out, int *version);

/* ---- names (partition.c) ---------------------------------------------------- */

/* "<kind>-YYYYMMDDTHHMMSSZ-SSSS.db". 0, -ERANGE (seq), -EINVAL,
 * -ENAMETOOLONG. */
int schema_name_build(char *buf, size_t len, enum schema_kind k, int64_t period_start_ns,
		      unsigned seq);

/* Parse a name of kind k made by schema_name_build (format(parse(x)) == x).
 * -EINVAL if it is not one; sets no error text (callers say what they
 * wanted). */
int schema_name_split(const char *name, enum schema_kind k, int64_t *period_start_ns,
		      unsigned *seq);

/* Any of our file names (schema_name_parse), silently. (rollup_file.c) */
int schema_name_classify(const char *name, enum schema_kind *kind, int64_t *period_start_ns,
			 unsigned *seq);

/* ---- recognising our files ---------------------------------------------------- */

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

/*
 * meta and meta_tables of an open file of ours, in one read transaction:
 * *kind is what meta_tables lists (the raw tables, or one rollup table,
 * whose row fills out->tables[SCHEMA_ROLLUP_META]). -EINVAL when meta or
 * meta_tables are not as we write them.
 */
int schema_meta_read(sqlite3 *db, const char *path, enum schema_kind *kind,
		     struct partition_meta *out);

/* The same from a path, opened read-only (schema_open_ours); out is
 * zeroed first. */
int schema_file_read_meta(const char *path, enum schema_kind *kind, struct partition_meta *out);

/* Kinds a caller accepts, as a mask: one kind (the kind a name says), raw
 * partitions, or any rollup file. */
#define SCHEMA_WANT(k) (1u << (k))
#define SCHEMA_WANT_RAW SCHEMA_WANT(SCHEMA_KIND_RAW)
#define SCHEMA_WANT_ROLLUP (SCHEMA_WANT(SCHEMA_KIND_1M) | SCHEMA_WANT(SCHEMA_KIND_1H))

/* 0 if a file whose metadata says `kind` is one `want` accepts, else
 * -EINVAL with the reason ("a 1h file under a 1m name", ...). */
int schema_kind_check(const char *path, enum schema_kind kind, unsigned want);

/* "file:<path>?mode=ro[&immutable=1]", with the characters a URI gives
 * meaning to escaped. 0 or -ENAMETOOLONG. */
int schema_ro_uri(char *uri, size_t len, const char *path, int immutable);

#endif /* FLOWSTORE_SCHEMA_INT_H */
