/*
 * rollup_file.c: the rollup files of a data dir (1m-*.db, 1h-*.db): their
 * names and periods, their creation, and the one-transaction step that
 * rolls a raw partition into one of them. What goes into the rows (the
 * aggregating SELECT) is retention/rollup.c's; this file keeps the file
 * whole and every source counted once.
 *
 * A rollup file's life:
 *
 *     (missing) ──► .<name>.tmp   built whole: tables, indexes, meta;
 *                      │          fsync'ed
 *                      │  renameat2(RENAME_NOREPLACE)
 *                      ▼
 *                   <name>        one IMMEDIATE transaction per raw
 *                                 partition rolled in; never sealed;
 *                                 deleted whole by retention
 *
 * Invariants:
 *  1. A file with a rollup name is always whole: it appears by renaming a
 *     finished, fsync'ed file into place, never by writing in place. A
 *     crash during creation leaves only a temporary name
 *     (schema_is_temp_name), which the next creation reuses and
 *     catalog_remove_temps deletes.
 *  2. One creator per temporary name: the creator holds flock(LOCK_EX) on
 *     the temporary file from open to rename and works on it only while the
 *     name still leads to the inode it locked. RENAME_NOREPLACE: a file
 *     someone else put in place first is never replaced; ours is removed.
 *  3. Exactly once: the rows a source adds, its mark in `rolled` and
 *     meta_tables commit in one IMMEDIATE transaction, which looks for the
 *     mark first. Of two processes applying the same source, the second
 *     waits for the first's commit (busy timeout) and then finds the mark.
 *  4. meta_tables equals the committed rows: rows += rows added, ts_min and
 *     ts_max read back through the ts index, in the same transaction.
 *  5. Rollback-journal mode, never WAL: one file to copy or delete, and
 *     read-only readers need no -shm.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "schema.h"
#include "schemaInt.h"

#define NS_PER_SEC 1000000000LL
#define DAY_NS (86400 * NS_PER_SEC)
#define TMP_SUFFIX ".tmp"
#define JOURNAL_SUFFIX "-journal"
#define CREATE_ATTEMPTS 8   /* temporary file changed under us: look again */
#define LOCK_POLL_NS 10000000L /* 10 ms between two tries of a creator's lock */

/* ---- the DDL ----------------------------------------------------------------- */

/*
 * Schema version 1 of a rollup file (PRAGMA user_version is SCHEMA_VERSION
 * as in raw partitions). The indexes are built at creation: a rollup file
 * takes one transaction per raw partition, not a stream of small ones, so
 * index upkeep is cheap, and queries on rollups use them from the start.
 */
#define ROLLUP_DDL(t)                                                                  \
	"CREATE TABLE " t "("                                                          \
	" ts INTEGER NOT NULL, proto TEXT NOT NULL, orig_addr TEXT, resp_addr TEXT,"   \
	" resp_port INTEGER, direction TEXT, comm TEXT, flows INTEGER NOT NULL,"       \
	" orig_pkts INTEGER, orig_bytes INTEGER, resp_pkts INTEGER, resp_bytes INTEGER,"\
	" connections INTEGER NOT NULL, failed_connections INTEGER NOT NULL,"          \
	" retransmits INTEGER);\n"                                                     \
	"CREATE INDEX " t "_ts ON " t "(ts);\n"                                        \
	"CREATE INDEX " t "_orig_addr ON " t "(orig_addr, ts);\n"                      \
	"CREATE INDEX " t "_resp_addr ON " t "(resp_addr, ts);\n"                      \
	"CREATE INDEX " t "_resp_port ON " t "(resp_port);\n"                          \
	"CREATE TABLE meta("                                                           \
	" schema_version INTEGER, period_start INTEGER, period_end INTEGER,"           \
	" seq INTEGER, created INTEGER, sealed INTEGER, sealed_at INTEGER);\n"         \
	"CREATE TABLE meta_tables("                                                    \
	" name TEXT PRIMARY KEY, rows INTEGER, ts_min INTEGER, ts_max INTEGER,"        \
	" ts_end_min INTEGER, ts_end_max INTEGER);\n"                                  \
	"INSERT INTO meta_tables(name, rows) VALUES ('" t "', 0);\n"                   \
	"CREATE TABLE rolled("                                                         \
	" source TEXT PRIMARY KEY, source_rows INTEGER, rows INTEGER,"                 \
	" rolled_at INTEGER);\n"

static const struct rollup_def {
	const char *table;
	const char *ddl;
	const char *update_meta; /* ?1 = rows added */
} rollup_defs[SCHEMA_NKINDS] = {
	[SCHEMA_KIND_1M] = { "flows_1m", ROLLUP_DDL("flows_1m"),
		"UPDATE meta_tables SET rows = rows + ?1,"
		" ts_min = (SELECT min(ts) FROM flows_1m), ts_max = (SELECT max(ts) FROM flows_1m)"
		" WHERE name = 'flows_1m'" },
	[SCHEMA_KIND_1H] = { "flows_1h", ROLLUP_DDL("flows_1h"),
		"UPDATE meta_tables SET rows = rows + ?1,"
		" ts_min = (SELECT min(ts) FROM flows_1h), ts_max = (SELECT max(ts) FROM flows_1h)"
		" WHERE name = 'flows_1h'" },
};

static int is_rollup_kind(enum schema_kind k)
{
	return k == SCHEMA_KIND_1M || k == SCHEMA_KIND_1H;
}

const char *rollup_table_name(enum schema_kind k)
{
	return is_rollup_kind(k) ? rollup_defs[k].table : NULL;
}

int64_t rollup_bucket_ns(enum schema_kind k)
{
	switch (k) {
	case SCHEMA_KIND_1M: return 60 * NS_PER_SEC;
	case SCHEMA_KIND_1H: return 3600 * NS_PER_SEC;
	default: return 0;
	}
}

/* ---- periods and names ------------------------------------------------------------ */

/* Seconds to ns, clamped to what int64 ns can say (years 1677..2262). */
static int64_t secs_to_ns(time_t secs)
{
	if (secs > INT64_MAX / NS_PER_SEC)
		return INT64_MAX;
	if (secs < INT64_MIN / NS_PER_SEC)
		return INT64_MIN;
	return (int64_t)secs * NS_PER_SEC;
}

/* The UTC calendar month holding t: timegm does the month arithmetic
 * (December + 1 is January of the next year). */
static void month_period(int64_t t_ns, int64_t *start, int64_t *end)
{
	time_t secs = (time_t)(partition_period_start(t_ns, NS_PER_SEC) / NS_PER_SEC);
	struct tm tm;

	if (!gmtime_r(&secs, &tm)) {
		*start = *end = t_ns; /* not reached for any int64 ns */
		return;
	}
	tm.tm_mday = 1;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	*start = secs_to_ns(timegm(&tm));
	tm.tm_mon++;
	*end = secs_to_ns(timegm(&tm));
}

int rollup_source_span(const struct partition_meta *m, int64_t *lo, int64_t *hi, uint64_t *rows)
{
	static const enum schema_table rolled[] = { SCHEMA_FLOWS, SCHEMA_CONNECTIONS };
	int any = 0;

	*rows = 0;
	for (size_t i = 0; i < sizeof(rolled) / sizeof(rolled[0]); i++) {
		enum schema_table t = rolled[i];

		if (m->tables[t].rows == 0)
			continue;
		if (!any || m->tables[t].ts_min < *lo)
			*lo = m->tables[t].ts_min;
		if (!any || m->tables[t].ts_max > *hi)
			*hi = m->tables[t].ts_max;
		*rows += m->tables[t].rows;
		any = 1;
	}
	return any;
}

void rollup_period(enum schema_kind k, int64_t t_ns, int64_t *start, int64_t *end)
{
	switch (k) {
	case SCHEMA_KIND_1M:
		*start = partition_period_start(t_ns, DAY_NS);
		*end = *start > INT64_MAX - DAY_NS ? INT64_MAX : *start + DAY_NS;
		break;
	case SCHEMA_KIND_1H:
		month_period(t_ns, start, end);
		break;
	default: /* a raw partition's period is its own, not a calendar's */
		*start = *end = t_ns;
		break;
	}
}

int rollup_name_format(char *buf, size_t len, enum schema_kind k, int64_t t_ns)
{
	int64_t start, end;

	if (!is_rollup_kind(k))
		return schema_error(-EINVAL, NULL, "rollup_name_format: kind %d is not a rollup",
				    (int)k);
	if (t_ns < 0)
		return schema_error(-EINVAL, NULL, "rollup_name_format: time %lld is before 1970",
				    (long long)t_ns);
	rollup_period(k, t_ns, &start, &end);
	return schema_name_build(buf, len, k, start, 0);
}

/* A name of kind k that starts its period, seq 0. Silent, like
 * schema_name_split. */
static int rollup_name_split(const char *name, enum schema_kind k, int64_t *period_start_ns)
{
	int64_t start, period_start, period_end;
	unsigned seq;

	if (schema_name_split(name, k, &start, &seq) || seq != 0)
		return -EINVAL;
	rollup_period(k, start, &period_start, &period_end);
	if (period_start != start)
		return -EINVAL;
	*period_start_ns = start;
	return 0;
}

static int rollup_name_parse(const char *name, enum schema_kind k, int64_t *period_start_ns,
			     unsigned *seq)
{
	int64_t start;

	if (rollup_name_split(name, k, &start))
		return schema_error(-EINVAL, name, "not a %s rollup file name", schema_kind_name(k));
	if (period_start_ns)
		*period_start_ns = start;
	if (seq)
		*seq = 0;
	return 0;
}

int rollup_1m_name_parse(const char *name, int64_t *period_start_ns, unsigned *seq)
{
	return rollup_name_parse(name, SCHEMA_KIND_1M, period_start_ns, seq);
}

int rollup_1h_name_parse(const char *name, int64_t *period_start_ns, unsigned *seq)
{
	return rollup_name_parse(name, SCHEMA_KIND_1H, period_start_ns, seq);
}

int schema_name_classify(const char *name, enum schema_kind *kind, int64_t *period_start_ns,
			 unsigned *seq)
{
	int64_t start;
	unsigned s = 0;
	int k;

	if (!name)
		return -EINVAL;
	for (k = 0; k < SCHEMA_NKINDS; k++) {
		int rc = k == SCHEMA_KIND_RAW ? schema_name_split(name, SCHEMA_KIND_RAW, &start, &s)
			 : rollup_name_split(name, (enum schema_kind)k, &start);

		if (rc == 0)
			break;
	}
	if (k == SCHEMA_NKINDS)
		return -EINVAL;
	if (kind)
		*kind = (enum schema_kind)k;
	if (period_start_ns)
		*period_start_ns = start;
	if (seq)
		*seq = s;
	return 0;
}

int schema_name_parse(const char *name, enum schema_kind *kind, int64_t *period_start_ns,
		      unsigned *seq)
{
	if (schema_name_classify(name, kind, period_start_ns, seq))
		return schema_error(-EINVAL, name, "not a flowstore file name");
	return 0;
}

int schema_is_temp_name(const char *name)
{
	char base[SCHEMA_NAME_LEN];
	size_t len, tlen = strlen(TMP_SUFFIX), jlen = strlen(JOURNAL_SUFFIX);
	int64_t start;

	if (!name || name[0] != '.')
		return 0;
	len = strnlen(++name, sizeof(base) + jlen + tlen);
	if (len > jlen && strcmp(name + len - jlen, JOURNAL_SUFFIX) == 0)
		len -= jlen;
	if (len <= tlen || len - tlen >= sizeof(base) || memcmp(name + len - tlen, TMP_SUFFIX, tlen))
		return 0;
	memcpy(base, name, len - tlen);
	base[len - tlen] = 0;
	return rollup_name_split(base, SCHEMA_KIND_1M, &start) == 0 ||
	       rollup_name_split(base, SCHEMA_KIND_1H, &start) == 0;
}

/* ---- reading -------------------------------------------------------------------------- */

int rollup_read_meta(const char *path, struct partition_meta *out)
{
	enum schema_kind kind = SCHEMA_KIND_RAW;
	int rc;

	if (!path || !out)
		return schema_error(-EINVAL, path, "rollup_read_meta: bad arguments");
	rc = schema_file_read_meta(path, &kind, out);
	if (!rc && (rc = schema_kind_check(path, kind, SCHEMA_WANT_ROLLUP)))
		memset(out, 0, sizeof(*out));
	return rc;
}

/*
 * Open the rollup file at path to read `rolled`. A crash in the middle of
 * a rollup step leaves a hot journal that a read-only connection cannot
 * roll back: then open read-write, and SQLite rolls it back as the next
 * rollup step would (the content is that of the last commit either way).
 */
static int rolled_open(const char *path, sqlite3 **db)
{
	struct partition_meta m;
	enum schema_kind kind = SCHEMA_KIND_RAW;
	int version;
	int rc = schema_open_ours(path, SQLITE_OPEN_READONLY, db, &version);

	if (rc == -EAGAIN)
		rc = schema_open_ours(path, SQLITE_OPEN_READWRITE, db, &version);
	if (rc)
		return rc;
	rc = schema_meta_read(*db, path, &kind, &m);
	if (!rc)
		rc = schema_kind_check(path, kind, SCHEMA_WANT_ROLLUP);
	if (rc) {
		sqlite3_close_v2(*db);
		*db = NULL;
	}
	return rc;
}

/* Whether `rolled` holds source: 1, 0, or a negative errno. */
static int rolled_has(sqlite3 *db, const char *path, const char *source, enum sql_ctx ctx)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, "SELECT 1 FROM rolled WHERE source = ?1", -1, &st, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return schema_sql_fail(db, rc, path, "rolled", ctx);
}

int rollup_file_has(const char *path, const char *source)
{
	sqlite3 *db = NULL;
	int rc;

	if (!path || !source)
		return schema_error(-EINVAL, path, "rollup_file_has: bad arguments");
	rc = rolled_open(path, &db);
	if (!rc)
		rc = rolled_has(db, path, source, SQL_READ);
	sqlite3_close_v2(db);
	return rc;
}

/* The latest source in `rolled` between lo and hi (names of one width, so
 * their order is seq order): 1 and out, 0 if none, or a negative errno. */
static int rolled_max_between(sqlite3 *db, const char *path, const char *lo, const char *hi,
			      char out[SCHEMA_NAME_LEN])
{
	sqlite3_stmt *st = NULL;
	const char *s;
	int rc = sqlite3_prepare_v2(db,
				    "SELECT max(source) FROM rolled WHERE source BETWEEN ?1 AND ?2",
				    -1, &st, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 1, lo, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 2, hi, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		rc = schema_sql_fail(db, rc, path, "rolled", SQL_READ);
		sqlite3_finalize(st);
		return rc;
	}
	s = (const char *)sqlite3_column_text(st, 0);
	rc = s && snprintf(out, SCHEMA_NAME_LEN, "%s", s) < SCHEMA_NAME_LEN;
	sqlite3_finalize(st);
	return rc;
}

int rollup_file_last_seq(const char *path, int64_t period_start_ns, unsigned *seq)
{
	char lo[SCHEMA_NAME_LEN], hi[SCHEMA_NAME_LEN], last[SCHEMA_NAME_LEN];
	int64_t start;
	sqlite3 *db = NULL;
	int rc;

	if (!path || !seq)
		return schema_error(-EINVAL, path, "rollup_file_last_seq: bad arguments");
	if ((rc = partition_name_format(lo, sizeof(lo), period_start_ns, 0)) ||
	    (rc = partition_name_format(hi, sizeof(hi), period_start_ns, SCHEMA_SEQ_MAX)))
		return rc;
	rc = rolled_open(path, &db);
	if (!rc)
		rc = rolled_max_between(db, path, lo, hi, last);
	sqlite3_close_v2(db);
	if (rc == 1 && (partition_name_parse(last, &start, seq) || start != period_start_ns))
		rc = 0; /* between lo and hi but not a name of ours: not a seq */
	return rc;
}

static int sources_grow(char (**names)[SCHEMA_NAME_LEN], size_t *cap)
{
	size_t n = *cap ? *cap * 2 : 16;
	char (*p)[SCHEMA_NAME_LEN] = realloc(*names, n * sizeof(*p));

	if (!p)
		return -ENOMEM;
	*names = p;
	*cap = n;
	return 0;
}

static int sources_read(sqlite3 *db, const char *path, char (**names)[SCHEMA_NAME_LEN],
			size_t *n)
{
	sqlite3_stmt *st = NULL;
	size_t cap = 0;
	int rc = sqlite3_prepare_v2(db, "SELECT source FROM rolled ORDER BY source", -1, &st, NULL);

	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *s = (const char *)sqlite3_column_text(st, 0);

		rc = SQLITE_OK;
		if (!s || strlen(s) >= SCHEMA_NAME_LEN) {
			sqlite3_finalize(st);
			return schema_error(-EINVAL, path, "rolled holds a source that is no file name");
		}
		if (*n == cap && sources_grow(names, &cap)) {
			sqlite3_finalize(st);
			return schema_error(-ENOMEM, path, "out of memory");
		}
		snprintf((*names)[(*n)++], SCHEMA_NAME_LEN, "%s", s);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : schema_sql_fail(db, rc, path, "rolled", SQL_READ);
}

int rollup_file_sources(const char *path, char (**names)[SCHEMA_NAME_LEN], size_t *n)
{
	sqlite3 *db = NULL;
	int rc;

	if (!path || !names || !n)
		return schema_error(-EINVAL, path, "rollup_file_sources: bad arguments");
	*names = NULL;
	*n = 0;
	rc = rolled_open(path, &db);
	if (!rc)
		rc = sources_read(db, path, names, n);
	sqlite3_close_v2(db);
	if (rc) {
		free(*names);
		*names = NULL;
		*n = 0;
	}
	return rc;
}

/* ---- creating a rollup file --------------------------------------------------------------- */

/* The file a rollup step writes to. */
struct rollup_target {
	enum schema_kind kind;
	int64_t start, end;
	char name[SCHEMA_NAME_LEN];
	char dir[PATH_MAX];
	char path[PATH_MAX];
	char tmp[PATH_MAX];     /* DIR/.<name>.tmp */
	char journal[PATH_MAX]; /* its -journal */
};

static int target_init(struct rollup_target *t, const char *dir, enum schema_kind k,
		       int64_t period_start_ns)
{
	/* opened with SQLITE_OPEN_URI (for the ATTACH): a path that looks
	 * like a URI must not be taken for one */
	const char *dot = strncmp(dir, "file:", 5) == 0 ? "./" : "";
	int rc;

	memset(t, 0, sizeof(*t));
	t->kind = k;
	rollup_period(k, period_start_ns, &t->start, &t->end);
	if (t->start != period_start_ns)
		return schema_error(-EINVAL, dir, "%lld ns does not start a %s rollup period",
				    (long long)period_start_ns, schema_kind_name(k));
	rc = schema_name_build(t->name, sizeof(t->name), k, t->start, 0);
	if (rc)
		return rc;
	if (snprintf(t->dir, sizeof(t->dir), "%s%s", dot, dir) >= (int)sizeof(t->dir) ||
	    snprintf(t->path, sizeof(t->path), "%s/%s", t->dir, t->name) >= (int)sizeof(t->path) ||
	    snprintf(t->tmp, sizeof(t->tmp), "%s/.%s" TMP_SUFFIX, t->dir, t->name) >=
		    (int)sizeof(t->tmp) ||
	    snprintf(t->journal, sizeof(t->journal), "%s" JOURNAL_SUFFIX, t->tmp) >=
		    (int)sizeof(t->journal))
		return schema_error(-ENAMETOOLONG, dir, "path too long");
	return 0;
}

static int insert_meta(sqlite3 *db, const struct rollup_target *t, int64_t created_ns)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db,
				    "INSERT INTO meta(schema_version, period_start, period_end,"
				    " seq, created, sealed, sealed_at) VALUES (?1, ?2, ?3, 0, ?4, 0, NULL)",
				    -1, &st, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int(st, 1, SCHEMA_VERSION);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, t->start);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, t->end);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 4, created_ns);
	if (rc == SQLITE_OK)
		rc = schema_stmt_run(st);
	sqlite3_finalize(st);
	return rc == SQLITE_OK ? 0 : schema_sql_fail(db, rc, t->tmp, "meta", SQL_WRITE);
}

/* The whole file, in one transaction, into the (empty) temporary file. */
static int build_file(const struct rollup_target *t, int64_t created_ns)
{
	char pragmas[96];
	sqlite3 *db = NULL;
	int rc = schema_db_open(t->tmp, SQLITE_OPEN_READWRITE, &db);

	snprintf(pragmas, sizeof(pragmas), "PRAGMA application_id = %u; PRAGMA user_version = %d",
		 SCHEMA_APPLICATION_ID, SCHEMA_VERSION);
	if (!rc)
		rc = schema_sql_exec(db, "PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL",
				     t->tmp, "create", SQL_WRITE);
	if (!rc)
		rc = schema_sql_exec(db, "BEGIN IMMEDIATE", t->tmp, "create", SQL_WRITE);
	if (!rc)
		rc = schema_sql_exec(db, rollup_defs[t->kind].ddl, t->tmp, "create tables", SQL_WRITE);
	if (!rc)
		rc = schema_sql_exec(db, pragmas, t->tmp, "create", SQL_WRITE);
	if (!rc)
		rc = insert_meta(db, t, created_ns);
	if (!rc)
		rc = schema_sql_exec(db, "COMMIT", t->tmp, "create", SQL_WRITE);
	if (db && sqlite3_close(db) != SQLITE_OK && !rc) /* every statement is finalized */
		rc = schema_error(-EIO, t->tmp, "close: %s", sqlite3_errmsg(db));
	return rc;
}

/* Wait up to busy_ms for the creator's lock on fd. */
static int lock_wait(int fd, int busy_ms)
{
	const struct timespec pause = { 0, LOCK_POLL_NS };
	long waited_ms = 0;

	while (flock(fd, LOCK_EX | LOCK_NB)) {
		if (errno != EWOULDBLOCK && errno != EINTR)
			return -errno;
		if (waited_ms >= busy_ms)
			return -EBUSY;
		nanosleep(&pause, NULL);
		waited_ms += LOCK_POLL_NS / 1000000;
	}
	return 0;
}

/*
 * Open and lock the temporary file (invariant 2). -EAGAIN: the name no
 * longer leads to the inode we locked (its creator renamed or removed it
 * while we waited): look again.
 */
static int tmp_claim(const struct rollup_target *t, int busy_ms, int *out)
{
	struct stat locked, named;
	int fd = open(t->tmp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK,
		      0644);
	int rc;

	if (fd < 0)
		return schema_error(-errno, t->tmp, "%s", strerror(errno));
	rc = lock_wait(fd, busy_ms);
	if (rc) {
		close(fd);
		if (rc == -EBUSY)
			return schema_error(rc, t->tmp, "another process is creating %s", t->name);
		return schema_error(rc, t->tmp, "flock: %s", strerror(-rc));
	}
	if (fstat(fd, &locked) || !S_ISREG(locked.st_mode)) {
		close(fd);
		return schema_error(-EINVAL, t->tmp, "not a regular file");
	}
	if (lstat(t->tmp, &named) || named.st_ino != locked.st_ino || named.st_dev != locked.st_dev) {
		close(fd);
		return -EAGAIN;
	}
	*out = fd;
	return 0;
}

/* We hold the lock: whatever the temporary file holds is a dead creator's. */
static int tmp_reset(const struct rollup_target *t, int fd)
{
	/* a hot journal of the dead creator would be played into our file */
	if (unlink(t->journal) && errno != ENOENT)
		return schema_error(-errno, t->journal, "%s", strerror(errno));
	if (ftruncate(fd, 0) || fchmod(fd, 0644))
		return schema_error(-errno, t->tmp, "%s", strerror(errno));
	return 0;
}

static void tmp_remove(const struct rollup_target *t)
{
	unlink(t->journal);
	unlink(t->tmp);
}

/* rename(2) that never replaces: renameat2, else link + unlink where the
 * file system lacks RENAME_NOREPLACE. */
static int rename_noreplace(const char *from, const char *to)
{
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	if (link(from, to))
		return -errno;
	unlink(from);
	return 0;
}

static int dir_sync(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return schema_error(-errno, dir, "%s", strerror(errno));
	if (fsync(fd) && errno != EINVAL)
		rc = schema_error(-errno, dir, "fsync: %s", strerror(errno));
	close(fd);
	return rc;
}

/* Put the finished temporary file in place, unless someone was first. */
static int tmp_publish(const struct rollup_target *t)
{
	int rc = rename_noreplace(t->tmp, t->path);

	if (rc == -EEXIST) {
		tmp_remove(t); /* theirs is as good as ours */
		return 0;
	}
	if (rc == -ENOENT)
		return -EAGAIN; /* removed under us (a sweep of temporaries): again */
	if (rc)
		return schema_error(rc, t->path, "rename: %s", strerror(-rc));
	return dir_sync(t->dir);
}

static int create_once(const struct rollup_target *t, int64_t created_ns, int busy_ms)
{
	struct stat st;
	int fd = -1;
	int rc = tmp_claim(t, busy_ms, &fd);

	if (rc)
		return rc;
	if (lstat(t->path, &st) == 0) {
		tmp_remove(t); /* made while we waited for the lock */
		close(fd);
		return 0;
	}
	rc = tmp_reset(t, fd);
	if (!rc)
		rc = build_file(t, created_ns);
	if (!rc && fsync(fd))
		rc = schema_error(-errno, t->tmp, "fsync: %s", strerror(errno));
	if (!rc)
		rc = tmp_publish(t);
	if (rc && rc != -EAGAIN)
		tmp_remove(t);
	close(fd); /* after SQLite closed the file: closing drops a process's fcntl locks */
	return rc;
}

/* Make t->path exist, whole (invariant 1): ours, or someone else's. */
static int ensure_file(const struct rollup_target *t, int64_t created_ns, int busy_ms)
{
	struct stat st;

	for (int i = 0; i < CREATE_ATTEMPTS; i++) {
		int rc;

		if (lstat(t->path, &st) == 0)
			return 0;
		if (errno != ENOENT)
			return schema_error(-errno, t->path, "%s", strerror(errno));
		rc = create_once(t, created_ns, busy_ms);
		if (rc != -EAGAIN)
			return rc;
	}
	return schema_error(-EBUSY, t->tmp, "the temporary file keeps changing under us");
}

/* ---- one rollup step -------------------------------------------------------------------- */

/* Open the target read-write and make sure it is the file its name says. */
static int target_open(const struct rollup_target *t, int busy_ms, sqlite3 **out)
{
	struct partition_meta m;
	enum schema_kind kind = SCHEMA_KIND_RAW;
	sqlite3 *db = NULL;
	int version;
	int rc = schema_open_ours(t->path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, &db, &version);

	if (rc)
		return rc;
	sqlite3_busy_timeout(db, busy_ms);
	if (sqlite3_db_readonly(db, "main") == 1)
		rc = schema_error(-EROFS, t->path, "the file is read-only");
	if (!rc)
		rc = schema_meta_read(db, t->path, &kind, &m);
	if (!rc)
		rc = schema_kind_check(t->path, kind, SCHEMA_WANT(t->kind));
	if (!rc && (m.period_start_ns != t->start || m.period_end_ns != t->end))
		rc = schema_error(-EINVAL, t->path, "renamed: meta says period [%lld, %lld)",
				  (long long)m.period_start_ns, (long long)m.period_end_ns);
	if (rc) {
		sqlite3_close_v2(db);
		return rc;
	}
	*out = db;
	return 0;
}

/* ATTACH the source as "src": a raw partition of ours, read-only; a sealed
 * one immutable (no locks, no side files). */
static int source_attach(sqlite3 *db, const char *source_path)
{
	char uri[PATH_MAX * 3 + 32];
	struct partition_meta m;
	sqlite3_stmt *st = NULL;
	int rc = partition_read_meta(source_path, &m);

	if (rc)
		return rc;
	if (schema_ro_uri(uri, sizeof(uri), source_path, partition_seal_complete(source_path, &m)))
		return schema_error(-ENAMETOOLONG, source_path, "path too long");
	rc = sqlite3_prepare_v2(db, "ATTACH ?1 AS src", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 1, uri, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = schema_stmt_run(st);
	sqlite3_finalize(st);
	return rc == SQLITE_OK ? 0 : schema_sql_fail(db, rc, source_path, "attach", SQL_READ);
}

/* insert_select may write to the rollup table and nothing else: a slip
 * there must not touch `rolled` or meta_tables. */
static int insert_authorizer(void *table, int action, const char *a, const char *b,
			     const char *db, const char *trigger)
{
	(void)b, (void)trigger;
	switch (action) {
	case SQLITE_INSERT:
		return db && strcmp(db, "main") == 0 && a && strcmp(a, table) == 0 ? SQLITE_OK
										 : SQLITE_DENY;
	case SQLITE_SELECT:
	case SQLITE_READ:
	case SQLITE_FUNCTION:
	case SQLITE_RECURSIVE:
		return SQLITE_OK;
	default:
		return SQLITE_DENY;
	}
}

static int insert_prepare(sqlite3 *db, const struct rollup_target *t, const char *sql,
			  sqlite3_stmt **st)
{
	const char *tail = NULL;
	int rc;

	sqlite3_set_authorizer(db, insert_authorizer, (void *)rollup_defs[t->kind].table);
	rc = sqlite3_prepare_v2(db, sql, -1, st, &tail);
	sqlite3_set_authorizer(db, NULL, NULL);
	if (rc != SQLITE_OK) /* bad SQL is -EINVAL, a denied write -EACCES */
		return schema_sql_fail(db, rc, t->path, "insert_select", SQL_READ);
	while (tail && (*tail == ' ' || *tail == '\t' || *tail == '\n' || *tail == ';'))
		tail++;
	if (!*st || (tail && *tail) || sqlite3_stmt_readonly(*st))
		return schema_error(-EINVAL, t->path,
				    "insert_select: not one INSERT INTO %s ... SELECT statement",
				    rollup_defs[t->kind].table);
	return 0;
}

/* Run insert_select over the period; *added: rows it inserted. */
static int insert_run(sqlite3 *db, const struct rollup_target *t, const char *sql,
		      uint64_t *added)
{
	sqlite3_stmt *st = NULL;
	int rc = insert_prepare(db, t, sql, &st);
	int params = st ? sqlite3_bind_parameter_count(st) : 0;

	if (rc) {
		sqlite3_finalize(st);
		return rc;
	}
	rc = SQLITE_OK;
	if (params >= 1)
		rc = sqlite3_bind_int64(st, 1, t->start);
	if (rc == SQLITE_OK && params >= 2)
		rc = sqlite3_bind_int64(st, 2, t->end);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return schema_sql_fail(db, rc, t->path, "insert_select", SQL_WRITE);
	*added = (uint64_t)sqlite3_changes64(db);
	return 0;
}

static int mark_insert(sqlite3 *db, const struct rollup_target *t, const char *source,
		       uint64_t source_rows, uint64_t added, int64_t now_ns)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db,
				    "INSERT INTO rolled(source, source_rows, rows, rolled_at)"
				    " VALUES (?1, ?2, ?3, ?4)", -1, &st, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, (int64_t)source_rows);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, (int64_t)added);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 4, now_ns);
	if (rc == SQLITE_OK)
		rc = schema_stmt_run(st);
	sqlite3_finalize(st);
	return rc == SQLITE_OK ? 0 : schema_sql_fail(db, rc, t->path, "rolled", SQL_WRITE);
}

static int meta_update(sqlite3 *db, const struct rollup_target *t, uint64_t added)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, rollup_defs[t->kind].update_meta, -1, &st, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 1, (int64_t)added);
	if (rc == SQLITE_OK)
		rc = schema_stmt_run(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		return schema_sql_fail(db, rc, t->path, "meta_tables", SQL_WRITE);
	if (sqlite3_changes(db) != 1)
		return schema_error(-EIO, t->path, "meta_tables lacks its row");
	return 0;
}

struct rollup_step {
	const char *source, *source_path, *insert_select;
	uint64_t source_rows;
	int64_t now_ns;
	uint64_t rows_added;
	int done_before;
	int attached;
};

/* Inside the IMMEDIATE transaction: the mark decides (invariant 3). */
static int step_body(sqlite3 *db, const struct rollup_target *t, struct rollup_step *s)
{
	int rc = rolled_has(db, t->path, s->source, SQL_WRITE);

	if (rc < 0)
		return rc;
	if (rc == 1) {
		s->done_before = 1;
		return 0;
	}
	rc = source_attach(db, s->source_path);
	s->attached = rc == 0;
	if (!rc)
		rc = insert_run(db, t, s->insert_select, &s->rows_added);
	if (!rc)
		rc = mark_insert(db, t, s->source, s->source_rows, s->rows_added, s->now_ns);
	if (!rc)
		rc = meta_update(db, t, s->rows_added);
	return rc;
}

static int step_run(sqlite3 *db, const struct rollup_target *t, struct rollup_step *s)
{
	int rc = schema_sql_exec(db, "BEGIN IMMEDIATE", t->path, "begin", SQL_WRITE);

	if (!rc)
		rc = step_body(db, t, s);
	if (!rc && !s->done_before)
		rc = schema_sql_exec(db, "COMMIT", t->path, "commit", SQL_WRITE);
	if (!sqlite3_get_autocommit(db)) /* an error, a failed COMMIT, or nothing to do */
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	if (s->attached)
		sqlite3_exec(db, "DETACH src", NULL, NULL, NULL);
	if (rc)
		s->rows_added = 0;
	return rc;
}

static int step_check(const char *dir, enum schema_kind k, const char *source,
		      const char *source_path, uint64_t source_rows, const char *insert_select)
{
	if (!dir || !source || !source_path || !insert_select)
		return schema_error(-EINVAL, dir, "rollup_file_apply: bad arguments");
	if (!is_rollup_kind(k))
		return schema_error(-EINVAL, dir, "rollup_file_apply: kind %d is not a rollup", (int)k);
	if (schema_name_split(source, SCHEMA_KIND_RAW, NULL, NULL))
		return schema_error(-EINVAL, source, "rollup_file_apply: not a raw partition name");
	if (source_rows > INT64_MAX)
		return schema_error(-EINVAL, source, "rollup_file_apply: source_rows out of range");
	return 0;
}

int rollup_file_apply(const char *dir, enum schema_kind k, int64_t period_start_ns,
		      const char *source, const char *source_path, uint64_t source_rows,
		      const char *insert_select, int64_t now_ns, int busy_ms,
		      uint64_t *rows_added, int *done_before)
{
	struct rollup_step s = { source, source_path, insert_select, source_rows, now_ns, 0, 0, 0 };
	struct rollup_target t;
	sqlite3 *db = NULL;
	int rc = step_check(dir, k, source, source_path, source_rows, insert_select);

	if (rows_added)
		*rows_added = 0;
	if (done_before)
		*done_before = 0;
	if (!rc)
		rc = target_init(&t, dir, k, period_start_ns);
	if (!rc)
		rc = ensure_file(&t, now_ns, busy_ms);
	if (!rc)
		rc = target_open(&t, busy_ms, &db);
	if (!rc)
		rc = step_run(db, &t, &s);
	sqlite3_close_v2(db);
	if (!rc && rows_added)
		*rows_added = s.rows_added;
	if (!rc && done_before)
		*done_before = s.done_before;
	return rc;
}
