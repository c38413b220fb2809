/*
 * partition.c: one partition file, from its name to its seal.
 *
 * A partition is a SQLite file DIR/raw-YYYYMMDDTHHMMSSZ-SSSS.db holding the
 * rows of one period (see schema.h for the lifecycle). This file names it,
 * creates it, appends to it, reads its metadata and seals it. What every
 * kind of file shares (names, errors, SQLite helpers, recognising our files,
 * meta and meta_tables) lives here too; rollup_file.c and catalog.c reach
 * it through schemaInt.h.
 *
 * Invariants:
 *  1. The name is the identity: period start (UTC, whole seconds, 1970 or
 *     later) and seq 0..9999. format(parse(name)) == name for every name we
 *     accept, so a name that parses is exactly one (period, seq).
 *  2. A file is ours iff its header carries application_id 'FLWS' and it has
 *     a meta table. A file that is not ours is refused with -EINVAL before
 *     SQLite opens it, so nothing is ever created or written next to it.
 *     meta_tables says which kind of file it is (raw tables, or the one
 *     rollup table); asking a file of one kind to be another is -EINVAL.
 *  3. meta_tables equals the committed rows: the writer keeps this
 *     transaction's counts and min/max in memory and writes the running
 *     totals into meta_tables in the same transaction, just before COMMIT.
 *     A crash loses the rows and their metadata together.
 *  4. The schema is created in rollback-journal mode and only then switched
 *     to WAL, so the main file always holds the header (application_id)
 *     once partition_create has returned.
 *  5. The open partition has no secondary indexes (append speed); only
 *     partition_seal builds them.
 *  6. Sealing runs: indexes (one transaction) -> ANALYZE -> checkpoint ->
 *     rollback journal -> meta.sealed = 1 (its own transaction, last) ->
 *     chmod 0444. Every step is a no-op when done already, so a killed or
 *     cancelled seal is simply run again; sealed = 1 implies every earlier
 *     step is done.
 *  7. One connection per thread (SQLITE_OPEN_NOMUTEX): a struct partition
 *     is used by one thread at a time.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "schema.h"
#include "schemaInt.h"

#define NS_PER_SEC 1000000000LL
#define BUSY_TIMEOUT_MS 5000
#define SEAL_PROGRESS_OPS 1000 /* VM steps between two looks at cancel */

/* ---- the DDL, by schema version ----------------------------------------- */

/*
 * schema_migrations[v] takes a file from version v-1 to v; a new file runs
 * 1..SCHEMA_VERSION in order inside one transaction. The user-facing columns
 * are a public contract: later versions add, never rename or reorder.
 */
static const char *const schema_migrations[SCHEMA_VERSION + 1] = {
	[1] =
	"CREATE TABLE flows("
	" ts INTEGER NOT NULL, ts_end INTEGER NOT NULL, proto TEXT NOT NULL,"
	" orig_addr TEXT, orig_port INTEGER, resp_addr TEXT, resp_port INTEGER,"
	" orig_pkts INTEGER, orig_bytes INTEGER, resp_pkts INTEGER, resp_bytes INTEGER,"
	" conn_state TEXT, history TEXT, ifname TEXT, end_reason TEXT,"
	" pid INTEGER, comm TEXT, sock_cookie INTEGER);\n"
	"CREATE TABLE connections("
	" ts INTEGER NOT NULL, ts_end INTEGER NOT NULL, direction TEXT,"
	" orig_addr TEXT, orig_port INTEGER, resp_addr TEXT, resp_port INTEGER,"
	" pid INTEGER, uid INTEGER, comm TEXT, cgroup_id INTEGER,"
	" bytes_sent INTEGER, bytes_received INTEGER, segs_out INTEGER, segs_in INTEGER,"
	" retransmits INTEGER, srtt_us INTEGER, states TEXT, close_state TEXT,"
	" sock_cookie INTEGER);\n"
	"CREATE TABLE tcp_states("
	" ts INTEGER NOT NULL, direction TEXT,"
	" orig_addr TEXT, orig_port INTEGER, resp_addr TEXT, resp_port INTEGER,"
	" old_state TEXT, new_state TEXT, pid INTEGER, comm TEXT, sock_cookie INTEGER);\n"
	"CREATE TABLE meta("
	" schema_version INTEGER, period_start INTEGER, period_end INTEGER,"
	" seq INTEGER, created INTEGER, sealed INTEGER, sealed_at INTEGER);\n"
	"CREATE TABLE meta_tables("
	" name TEXT PRIMARY KEY, rows INTEGER, ts_min INTEGER, ts_max INTEGER,"
	" ts_end_min INTEGER, ts_end_max INTEGER);\n"
	"INSERT INTO meta_tables(name, rows)"
	" VALUES ('flows', 0), ('connections', 0), ('tcp_states', 0);\n",
};

/* Secondary indexes of each version, built by partition_seal only. The
 * address indexes carry ts after the address, so "this host in this
 * window" reads only the window's entries (a question asked of every
 * address, and of busy ones most). Partitions sealed before that have
 * address-only indexes: the same answers, the same plans, slower for a
 * busy address. Readers do not depend on the index set: it is not part of
 * the schema version. */
static const char *const schema_seal_indexes[SCHEMA_VERSION + 1] = {
	[1] =
	"CREATE INDEX IF NOT EXISTS flows_ts ON flows(ts);\n"
	"CREATE INDEX IF NOT EXISTS flows_orig_addr ON flows(orig_addr, ts);\n"
	"CREATE INDEX IF NOT EXISTS flows_resp_addr ON flows(resp_addr, ts);\n"
	"CREATE INDEX IF NOT EXISTS flows_resp_port ON flows(resp_port);\n"
	"CREATE INDEX IF NOT EXISTS connections_ts ON connections(ts);\n"
	"CREATE INDEX IF NOT EXISTS connections_orig_addr ON connections(orig_addr, ts);\n"
	"CREATE INDEX IF NOT EXISTS connections_resp_addr ON connections(resp_addr, ts);\n"
	"CREATE INDEX IF NOT EXISTS connections_pid ON connections(pid);\n"
	"CREATE INDEX IF NOT EXISTS tcp_states_ts ON tcp_states(ts);\n"
	"CREATE INDEX IF NOT EXISTS tcp_states_sock_cookie ON tcp_states(sock_cookie);\n",
};

static const struct table_def {
	const char *name;
	const char *insert_sql; /* columns in DDL order, bound in that order */
	int has_ts_end;
} table_defs[SCHEMA_NTABLES] = {
	[SCHEMA_FLOWS] = { "flows",
		"INSERT INTO flows(ts, ts_end, proto, orig_addr, orig_port, resp_addr,"
		" resp_port, orig_pkts, orig_bytes, resp_pkts, resp_bytes, conn_state,"
		" history, ifname, end_reason, pid, comm, sock_cookie)"
		" VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", 1 },
	[SCHEMA_CONNECTIONS] = { "connections",
		"INSERT INTO connections(ts, ts_end, direction, orig_addr, orig_port,"
		" resp_addr, resp_port, pid, uid, comm, cgroup_id, bytes_sent,"
		" bytes_received, segs_out, segs_in, retransmits, srtt_us, states,"
		" close_state, sock_cookie)"
		" VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", 1 },
	[SCHEMA_TCP_STATES] = { "tcp_states",
		"INSERT INTO tcp_states(ts, direction, orig_addr, orig_port, resp_addr,"
		" resp_port, old_state, new_state, pid, comm, sock_cookie)"
		" VALUES (?,?,?,?,?,?,?,?,?,?,?)", 0 },
};

int schema_init(void)
{
	/* Memory statistics take a global mutex on every allocation; nothing
	 * here reads them. Must precede sqlite3_initialize(). */
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	return sqlite3_initialize() == SQLITE_OK ? 0 : -ENOMEM;
}

const char *schema_table_name(enum schema_table t)
{
	if ((unsigned)t >= SCHEMA_NTABLES)
		return NULL;
	return table_defs[t].name;
}

/* ---- errors --------------------------------------------------------------- */

static _Thread_local char last_error[512] = "no error";
static _Thread_local size_t last_error_reason; /* offset of the reason */

int schema_error(int err, const char *path, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (path)
		n = snprintf(last_error, sizeof(last_error), "%s: ", path);
	if (n < 0 || (size_t)n >= sizeof(last_error) / 2)
		n = 0; /* a path this long would crowd out the reason */
	last_error_reason = (size_t)n;
	va_start(ap, fmt);
	vsnprintf(last_error + n, sizeof(last_error) - (size_t)n, fmt, ap);
	va_end(ap);
	return err;
}

const char *schema_last_error(void)
{
	return last_error;
}

const char *schema_error_reason(void)
{
	return last_error + last_error_reason;
}

/* SQLite wants to roll back a hot journal or recover a WAL, which a
 * read-only connection cannot: the file is fine, a read-write open (the
 * seal) repairs it. */
static int needs_recovery(int rc)
{
	return rc == SQLITE_READONLY_ROLLBACK || rc == SQLITE_READONLY_RECOVERY ||
	       rc == SQLITE_READONLY_CANTINIT;
}

static int sql_errno(int rc, enum sql_ctx ctx)
{
	if (ctx == SQL_READ && needs_recovery(rc))
		return -EAGAIN;
	switch (rc & 0xff) {
	case SQLITE_OK: return 0;
	case SQLITE_FULL: return -ENOSPC;
	case SQLITE_BUSY:
	case SQLITE_LOCKED: return -EBUSY;
	case SQLITE_INTERRUPT: return -ECANCELED;
	case SQLITE_NOMEM: return -ENOMEM;
	case SQLITE_READONLY: return -EROFS;
	case SQLITE_PERM:
	case SQLITE_AUTH: return -EACCES;
	case SQLITE_CONSTRAINT:
	case SQLITE_MISMATCH:
	case SQLITE_RANGE:
	case SQLITE_TOOBIG: return -EINVAL;
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
	case SQLITE_ERROR: return ctx == SQL_READ ? -EINVAL : -EIO;
	default: return -EIO;
	}
}

/* Record "<path>: <what>: <SQLite's text>" and return the errno for rc. */
int schema_sql_fail(sqlite3 *db, int rc, const char *path, const char *what, enum sql_ctx ctx)
{
	const char *text = sqlite3_errstr(rc);
	int err = sql_errno(rc, ctx);

	if (db && sqlite3_extended_errcode(db) == rc)
		text = sqlite3_errmsg(db);
	if (err == -EAGAIN)
		return schema_error(err, path, "%s: %s (needs recovery: a read-write open, "
				    "such as the seal, does it)", what, text);
	return schema_error(err, path, "%s: %s", what, text);
}

/* ---- small SQLite helpers --------------------------------------------------- */

int schema_sql_exec(sqlite3 *db, const char *sql, const char *path, const char *what,
		    enum sql_ctx ctx)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : schema_sql_fail(db, rc, path, what, ctx);
}

/* Step a statement that returns no row, then reset it. SQLite's code. */
int schema_stmt_run(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* First column of the first row of sql, as an integer or as text. */
int schema_sql_query(sqlite3 *db, const char *sql, int64_t *num, char *text, size_t len)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (num)
			*num = sqlite3_column_int64(st, 0);
		if (text)
			snprintf(text, len, "%s", sqlite3_column_type(st, 0) == SQLITE_NULL ? ""
				 : (const char *)sqlite3_column_text(st, 0));
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_EMPTY;
	}
	sqlite3_finalize(st);
	return rc;
}

/* Open an existing file (flags: SQLITE_OPEN_READONLY or _READWRITE). */
int schema_db_open(const char *path, int flags, sqlite3 **out)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL);

	if (rc != SQLITE_OK) {
		rc = schema_sql_fail(db, rc, path, "open", SQL_READ);
		sqlite3_close_v2(db);
		return rc;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
	*out = db;
	return 0;
}

int schema_side_file_exists(const char *path, const char *suffix)
{
	char side[PATH_MAX];
	struct stat st;

	if (snprintf(side, sizeof(side), "%s%s", path, suffix) >= (int)sizeof(side))
		return 0;
	return lstat(side, &st) == 0;
}

/* ---- naming ------------------------------------------------------------------- */

int64_t partition_period_start(int64_t t_ns, int64_t period_ns)
{
	int64_t r;

	if (period_ns <= 0)
		return t_ns;
	r = t_ns % period_ns;
	if (r < 0) {
		r += period_ns; /* floor, not truncation, before 1970 */
		if (t_ns < INT64_MIN + r)
			return INT64_MIN; /* not representable; no name takes it */
	}
	return t_ns - r;
}

static const char *const kind_names[SCHEMA_NKINDS] = {
	[SCHEMA_KIND_RAW] = "raw",
	[SCHEMA_KIND_1M] = "1m",
	[SCHEMA_KIND_1H] = "1h",
};

const char *schema_kind_name(enum schema_kind k)
{
	return (unsigned)k < SCHEMA_NKINDS ? kind_names[k] : NULL;
}

int schema_name_build(char *buf, size_t len, enum schema_kind k, int64_t period_start_ns,
		      unsigned seq)
{
	time_t secs;
	struct tm tm;
	int n;

	if (seq > SCHEMA_SEQ_MAX)
		return schema_error(-ERANGE, NULL, "file seq %u is above %u", seq, SCHEMA_SEQ_MAX);
	if (!buf || !schema_kind_name(k) || period_start_ns < 0 || period_start_ns % NS_PER_SEC)
		return schema_error(-EINVAL, NULL,
				    "period start %lld is not a whole second since 1970",
				    (long long)period_start_ns);
	secs = (time_t)(period_start_ns / NS_PER_SEC);
	if (!gmtime_r(&secs, &tm))
		return schema_error(-EINVAL, NULL, "period start %lld out of range",
				    (long long)period_start_ns);
	n = snprintf(buf, len, "%s-%04d%02d%02dT%02d%02d%02dZ-%04u.db", kind_names[k],
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		     tm.tm_sec, seq);
	if (n < 0 || (size_t)n >= len)
		return schema_error(-ENAMETOOLONG, NULL, "file name needs %d bytes", n + 1);
	return 0;
}

int partition_name_format(char *buf, size_t len, int64_t period_start_ns, unsigned seq)
{
	return schema_name_build(buf, len, SCHEMA_KIND_RAW, period_start_ns, seq);
}

static int digits(const char *s, int n)
{
	int v = 0;

	while (n--)
		v = v * 10 + (*s++ - '0');
	return v;
}

/* Fields of a name that has the right shape; the round trip judges them. */
static int name_fields(const char *name, const char *prefix, struct tm *tm, unsigned *seq)
{
	static const char shape[] = "-########T######Z-####.db";
	const size_t plen = strlen(prefix), slen = sizeof(shape) - 1;
	const char *s = name + plen;

	if (strncmp(name, prefix, plen) || strnlen(s, slen + 1) != slen)
		return -EINVAL;
	for (size_t i = 0; i < slen; i++) {
		int digit = s[i] >= '0' && s[i] <= '9';

		if (shape[i] == '#' ? !digit : s[i] != shape[i])
			return -EINVAL;
	}
	memset(tm, 0, sizeof(*tm));
	tm->tm_year = digits(s + 1, 4) - 1900;
	tm->tm_mon = digits(s + 5, 2) - 1;
	tm->tm_mday = digits(s + 7, 2);
	tm->tm_hour = digits(s + 10, 2);
	tm->tm_min = digits(s + 12, 2);
	tm->tm_sec = digits(s + 14, 2);
	*seq = (unsigned)digits(s + 18, 4);
	return 0;
}

int schema_name_split(const char *name, enum schema_kind k, int64_t *period_start_ns,
		      unsigned *seq)
{
	char again[SCHEMA_NAME_LEN];
	struct tm tm;
	unsigned s;
	time_t secs;

	if (!name || !schema_kind_name(k) || name_fields(name, kind_names[k], &tm, &s))
		return -EINVAL;
	secs = timegm(&tm);
	/* timegm normalises 20261332 into 2027; reformatting catches it */
	if (secs < 0 || secs > INT64_MAX / NS_PER_SEC ||
	    schema_name_build(again, sizeof(again), k, (int64_t)secs * NS_PER_SEC, s) ||
	    strcmp(again, name))
		return -EINVAL;
	if (period_start_ns)
		*period_start_ns = (int64_t)secs * NS_PER_SEC;
	if (seq)
		*seq = s;
	return 0;
}

int partition_name_parse(const char *name, int64_t *period_start_ns, unsigned *seq)
{
	if (schema_name_split(name, SCHEMA_KIND_RAW, period_start_ns, seq))
		return schema_error(-EINVAL, name, "not a partition name");
	return 0;
}

/* ---- recognising our files ------------------------------------------------------ */

static uint32_t be32(const unsigned char *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static int header_parse(int fd, const char *path, struct schema_header *h)
{
	unsigned char b[100];
	struct stat st;
	ssize_t n;

	if (fstat(fd, &st))
		return schema_error(-EIO, path, "%s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		return schema_error(-EINVAL, path, "not a regular file");
	if (st.st_size == 0)
		return schema_error(-EINVAL, path, "empty file (creation interrupted?)");
	n = pread(fd, b, sizeof(b), 0);
	if (n < 0)
		return schema_error(-EIO, path, "%s", strerror(errno));
	if (n < (ssize_t)sizeof(b) || memcmp(b, "SQLite format 3", 16))
		return schema_error(-EINVAL, path, "not a SQLite database");
	h->wal = b[18] == 2 && b[19] == 2;
	h->user_version = be32(b + 60);
	h->application_id = be32(b + 68);
	return 0;
}

int schema_header_read(const char *path, struct schema_header *h)
{
	/* O_NONBLOCK: a FIFO with our name must not hang the catalog */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	int rc;

	if (fd < 0) {
		rc = errno == ENOENT || errno == ENOTDIR ? -ENOENT : -EIO;
		return schema_error(rc, path, "%s", strerror(errno));
	}
	rc = header_parse(fd, path, h);
	close(fd);
	return rc;
}

/* "file:<path>?mode=ro[&immutable=1]", with the characters a URI gives
 * meaning to escaped. */
int schema_ro_uri(char *uri, size_t len, const char *path, int immutable)
{
	size_t n = (size_t)snprintf(uri, len, "file:%s", path[0] == '/' ? "//" : "");

	for (const char *p = path; *p && n + 4 < len; p++) {
		if (*p == '%' || *p == '?' || *p == '#')
			n += (size_t)snprintf(uri + n, len - n, "%%%02X", (unsigned char)*p);
		else
			uri[n++] = *p;
	}
	if (n + 4 >= len)
		return -ENAMETOOLONG;
	uri[n] = 0;
	n += (size_t)snprintf(uri + n, len - n, "?mode=ro%s", immutable ? "&immutable=1" : "");
	return n < len ? 0 : -ENAMETOOLONG;
}

/*
 * A WAL-mode file with no -wal beside it: closed by its writer (the last
 * connection checkpointed and removed the WAL), not yet sealed. A plain
 * read-only open would create -wal and -shm next to it, and listings
 * (catalog, dry runs) must not change the dir; every committed row is in the
 * main file, so it is read as immutable. A writer that opens it meanwhile
 * (only the sealer, on the daemon's own thread that also lists) changes the
 * WAL, not the main file, until its checkpoint.
 */
static int open_closed_wal(const char *path, sqlite3 **out)
{
	char uri[PATH_MAX * 3 + 32];
	int rc = schema_ro_uri(uri, sizeof(uri), path, 1);

	if (rc)
		return schema_error(rc, path, "path too long");
	return schema_db_open(uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, out);
}

/*
 * Open path if it is ours: the header is checked before SQLite sees the
 * file, then again through SQLite (the header may be newer in the WAL).
 * *version is the file's schema version.
 */
int schema_open_ours(const char *path, int flags, sqlite3 **out, int *version)
{
	struct schema_header h;
	sqlite3 *db = NULL;
	int64_t app = 0, ver = 0;
	int rc = schema_header_read(path, &h);

	if (rc)
		return rc;
	if (h.application_id != SCHEMA_APPLICATION_ID)
		return schema_error(-EINVAL, path, "application_id 0x%08x is not flowstore's",
				    h.application_id);
	if ((flags & SQLITE_OPEN_READONLY) && h.wal && !schema_side_file_exists(path, "-wal"))
		rc = open_closed_wal(path, &db);
	else
		rc = schema_db_open(path, flags, &db);
	if (rc)
		return rc;
	rc = schema_sql_query(db, "PRAGMA application_id", &app, NULL, 0);
	if (rc == SQLITE_OK)
		rc = schema_sql_query(db, "PRAGMA user_version", &ver, NULL, 0);
	if (rc != SQLITE_OK)
		rc = schema_sql_fail(db, rc, path, "reading the header", SQL_READ);
	else if (app != SCHEMA_APPLICATION_ID)
		rc = schema_error(-EINVAL, path, "application_id 0x%08llx is not flowstore's",
				  (unsigned long long)app);
	else if (ver < 1 || ver > SCHEMA_VERSION)
		rc = schema_error(-EINVAL, path, "schema version %lld (this build reads 1..%d)",
				  (long long)ver, SCHEMA_VERSION);
	if (rc) {
		sqlite3_close_v2(db);
		return rc;
	}
	*version = (int)ver;
	*out = db;
	return 0;
}

/* ---- the open partition ----------------------------------------------------------- */

struct table_stats {
	uint64_t rows;
	int64_t ts_min, ts_max, ts_end_min, ts_end_max; /* valid when rows > 0 */
};

struct partition {
	sqlite3 *db;
	sqlite3_stmt *insert[SCHEMA_NTABLES];
	sqlite3_stmt *update_stats; /* meta_tables, written at commit */
	sqlite3_stmt *begin, *commit, *rollback;
	char *path;
	int64_t period_end_ns;
	int in_txn;
	int wal_frames; /* after the last commit, once checkpoints are deferred */
	struct table_stats committed[SCHEMA_NTABLES]; /* = meta_tables on disk */
	struct table_stats pending[SCHEMA_NTABLES];   /* this transaction only */
};

static void stats_add(struct table_stats *s, int64_t ts, int64_t ts_end)
{
	if (s->rows++ == 0) {
		s->ts_min = s->ts_max = ts;
		s->ts_end_min = s->ts_end_max = ts_end;
		return;
	}
	if (ts < s->ts_min)
		s->ts_min = ts;
	if (ts > s->ts_max)
		s->ts_max = ts;
	if (ts_end < s->ts_end_min)
		s->ts_end_min = ts_end;
	if (ts_end > s->ts_end_max)
		s->ts_end_max = ts_end;
}

/* Fold a transaction's statistics into the totals: its extremes count as two
 * rows for min/max, then the row count is set right. */
static void stats_merge(struct table_stats *into, const struct table_stats *d)
{
	uint64_t rows = into->rows;

	if (d->rows == 0)
		return;
	stats_add(into, d->ts_min, d->ts_end_min);
	stats_add(into, d->ts_max, d->ts_end_max);
	into->rows = rows + d->rows;
}

/* Binds one row's values in column order; the first failure sticks. */
struct binder {
	sqlite3_stmt *st;
	int col;
	int rc;
};

static void bind_int(struct binder *b, int64_t v)
{
	b->col++;
	if (b->rc == SQLITE_OK)
		b->rc = sqlite3_bind_int64(b->st, b->col, v);
}

/* 0 stands for "unknown": NULL. */
static void bind_nonzero(struct binder *b, int64_t v)
{
	b->col++;
	if (b->rc == SQLITE_OK)
		b->rc = v ? sqlite3_bind_int64(b->st, b->col, v) : sqlite3_bind_null(b->st, b->col);
}

/* A fixed-size field of the row; "" is NULL. The row outlives the step. */
static void bind_text(struct binder *b, const char *s, size_t size)
{
	size_t n = strnlen(s, size);

	b->col++;
	if (b->rc == SQLITE_OK)
		b->rc = n ? sqlite3_bind_text(b->st, b->col, s, (int)n, SQLITE_STATIC)
			  : sqlite3_bind_null(b->st, b->col);
}

#define BIND_TEXT(b, field) bind_text((b), (field), sizeof(field))

/* A NOT NULL text column: "" stays "" rather than failing the whole
 * transaction on a constraint. */
static void bind_text_not_null(struct binder *b, const char *s, size_t size)
{
	b->col++;
	if (b->rc == SQLITE_OK)
		b->rc = sqlite3_bind_text(b->st, b->col, s, (int)strnlen(s, size), SQLITE_STATIC);
}

static int bind_flow(sqlite3_stmt *st, const struct flow_row *r)
{
	struct binder b = { st, 0, SQLITE_OK };

	bind_int(&b, r->ts);
	bind_int(&b, r->ts_end);
	bind_text_not_null(&b, r->proto, sizeof(r->proto));
	BIND_TEXT(&b, r->orig_addr);
	bind_int(&b, r->orig_port);
	BIND_TEXT(&b, r->resp_addr);
	bind_int(&b, r->resp_port);
	bind_int(&b, r->orig_pkts);
	bind_int(&b, r->orig_bytes);
	bind_int(&b, r->resp_pkts);
	bind_int(&b, r->resp_bytes);
	BIND_TEXT(&b, r->conn_state);
	BIND_TEXT(&b, r->history);
	BIND_TEXT(&b, r->ifname);
	BIND_TEXT(&b, r->end_reason);
	bind_nonzero(&b, r->pid);
	BIND_TEXT(&b, r->comm);
	bind_nonzero(&b, r->sock_cookie);
	return b.rc;
}

static int bind_conn(sqlite3_stmt *st, const struct conn_row *r)
{
	struct binder b = { st, 0, SQLITE_OK };

	bind_int(&b, r->ts);
	bind_int(&b, r->ts_end);
	BIND_TEXT(&b, r->direction);
	BIND_TEXT(&b, r->orig_addr);
	bind_int(&b, r->orig_port);
	BIND_TEXT(&b, r->resp_addr);
	bind_int(&b, r->resp_port);
	bind_nonzero(&b, r->pid);
	if (r->pid) /* the uid of an unknown process is unknown, not root */
		bind_int(&b, r->uid);
	else
		bind_nonzero(&b, 0);
	BIND_TEXT(&b, r->comm);
	bind_nonzero(&b, r->cgroup_id);
	bind_int(&b, r->bytes_sent);
	bind_int(&b, r->bytes_received);
	bind_int(&b, r->segs_out);
	bind_int(&b, r->segs_in);
	bind_int(&b, r->retransmits);
	bind_int(&b, r->srtt_us);
	BIND_TEXT(&b, r->states);
	BIND_TEXT(&b, r->close_state);
	bind_nonzero(&b, r->sock_cookie);
	return b.rc;
}

static int bind_state(sqlite3_stmt *st, const struct tcp_state_row *r)
{
	struct binder b = { st, 0, SQLITE_OK };

	bind_int(&b, r->ts);
	BIND_TEXT(&b, r->direction);
	BIND_TEXT(&b, r->orig_addr);
	bind_int(&b, r->orig_port);
	BIND_TEXT(&b, r->resp_addr);
	bind_int(&b, r->resp_port);
	BIND_TEXT(&b, r->old_state);
	BIND_TEXT(&b, r->new_state);
	bind_nonzero(&b, r->pid);
	BIND_TEXT(&b, r->comm);
	bind_nonzero(&b, r->sock_cookie);
	return b.rc;
}

/* Bind row into its table's INSERT; *ts and *ts_end for the statistics. */
static int bind_row(struct partition *p, const struct schema_row *row, int64_t *ts,
		    int64_t *ts_end)
{
	sqlite3_stmt *st = p->insert[row->table];

	switch (row->table) {
	case SCHEMA_FLOWS:
		*ts = row->flow.ts;
		*ts_end = row->flow.ts_end;
		return bind_flow(st, &row->flow);
	case SCHEMA_CONNECTIONS:
		*ts = row->conn.ts;
		*ts_end = row->conn.ts_end;
		return bind_conn(st, &row->conn);
	case SCHEMA_TCP_STATES:
		*ts = *ts_end = row->state.ts;
		return bind_state(st, &row->state);
	default:
		return SQLITE_MISUSE;
	}
}

const char *partition_path(const struct partition *p)
{
	return p ? p->path : NULL;
}

uint64_t partition_rows(const struct partition *p)
{
	uint64_t n = 0;

	for (int t = 0; p && t < SCHEMA_NTABLES; t++)
		n += p->committed[t].rows;
	return n;
}

int64_t partition_period_end(const struct partition *p)
{
	return p ? p->period_end_ns : 0;
}

int partition_begin(struct partition *p)
{
	int rc;

	if (!p)
		return schema_error(-EINVAL, NULL, "partition_begin: no partition");
	if (p->in_txn)
		return schema_error(-EINVAL, p->path, "partition_begin: a transaction is open");
	rc = schema_stmt_run(p->begin);
	if (rc != SQLITE_OK)
		return schema_sql_fail(p->db, rc, p->path, "begin", SQL_WRITE);
	memset(p->pending, 0, sizeof(p->pending));
	p->in_txn = 1;
	return 0;
}

int partition_add(struct partition *p, const struct schema_row *row)
{
	sqlite3_stmt *st;
	int64_t ts = 0, ts_end = 0;
	int rc;

	if (!p || !row || (unsigned)row->table >= SCHEMA_NTABLES)
		return schema_error(-EINVAL, p ? p->path : NULL, "partition_add: bad row");
	/* SQLite may have rolled the transaction back after an error: adding
	 * in autocommit mode would commit rows without their metadata */
	if (!p->in_txn || sqlite3_get_autocommit(p->db))
		return schema_error(-EINVAL, p->path, "partition_add: no open transaction");
	st = p->insert[row->table];
	rc = bind_row(p, row, &ts, &ts_end);
	if (rc == SQLITE_OK)
		rc = schema_stmt_run(st);
	if (rc != SQLITE_OK)
		return schema_sql_fail(p->db, rc, p->path, table_defs[row->table].name, SQL_WRITE);
	stats_add(&p->pending[row->table], ts, ts_end);
	return 0;
}

/* Bind v, or NULL when the table is empty or has no such column. */
static void bind_stat(struct binder *b, int valid, int64_t v)
{
	b->col++;
	if (b->rc == SQLITE_OK)
		b->rc = valid ? sqlite3_bind_int64(b->st, b->col, v) : sqlite3_bind_null(b->st, b->col);
}

static int write_stats(struct partition *p, enum schema_table t, const struct table_stats *s)
{
	struct binder b = { p->update_stats, 0, SQLITE_OK };
	int end = s->rows > 0 && table_defs[t].has_ts_end;

	bind_int(&b, (int64_t)s->rows);
	bind_stat(&b, s->rows > 0, s->ts_min);
	bind_stat(&b, s->rows > 0, s->ts_max);
	bind_stat(&b, end, s->ts_end_min);
	bind_stat(&b, end, s->ts_end_max);
	b.col++;
	if (b.rc == SQLITE_OK)
		b.rc = sqlite3_bind_text(b.st, b.col, table_defs[t].name, -1, SQLITE_STATIC);
	if (b.rc == SQLITE_OK)
		b.rc = schema_stmt_run(b.st);
	if (b.rc == SQLITE_OK && sqlite3_changes(p->db) != 1)
		return schema_error(-EIO, p->path, "meta_tables has no row for %s",
				    table_defs[t].name);
	return b.rc == SQLITE_OK ? 0 : schema_sql_fail(p->db, b.rc, p->path, "meta_tables", SQL_WRITE);
}

int partition_commit(struct partition *p)
{
	struct table_stats total[SCHEMA_NTABLES];
	int rc;

	if (!p || !p->in_txn)
		return schema_error(-EINVAL, p ? p->path : NULL, "partition_commit: no open transaction");
	if (sqlite3_get_autocommit(p->db))
		return schema_error(-EIO, p->path, "commit: SQLite rolled the transaction back");
	memcpy(total, p->committed, sizeof(total));
	for (int t = 0; t < SCHEMA_NTABLES; t++) {
		if (p->pending[t].rows == 0)
			continue;
		stats_merge(&total[t], &p->pending[t]);
		rc = write_stats(p, (enum schema_table)t, &total[t]);
		if (rc)
			return rc;
	}
	rc = schema_stmt_run(p->commit);
	if (rc != SQLITE_OK)
		return schema_sql_fail(p->db, rc, p->path, "commit", SQL_WRITE);
	memcpy(p->committed, total, sizeof(total));
	memset(p->pending, 0, sizeof(p->pending));
	p->in_txn = 0;
	return 0;
}

void partition_rollback(struct partition *p)
{
	if (!p)
		return;
	if (!sqlite3_get_autocommit(p->db))
		schema_stmt_run(p->rollback); /* fails only if SQLite already rolled back */
	memset(p->pending, 0, sizeof(p->pending));
	p->in_txn = 0;
}

static void partition_free(struct partition *p)
{
	for (int t = 0; t < SCHEMA_NTABLES; t++)
		sqlite3_finalize(p->insert[t]);
	sqlite3_finalize(p->update_stats);
	sqlite3_finalize(p->begin);
	sqlite3_finalize(p->commit);
	sqlite3_finalize(p->rollback);
	sqlite3_close_v2(p->db); /* rolls back an open transaction */
	free(p->path);
	free(p);
}

void partition_close(struct partition *p)
{
	if (p)
		partition_free(p);
}

void partition_close_for_seal(struct partition *p)
{
	if (!p)
		return;
	/* the seal's checkpoint (seal_journal) copies what the WAL holds */
	sqlite3_db_config(p->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	partition_free(p);
}

/* sqlite3_wal_hook: after each commit. Replaces the automatic checkpoint. */
static int note_wal_frames(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct partition *p = arg;

	(void)db;
	(void)name;
	p->wal_frames = frames;
	return SQLITE_OK;
}

int partition_defer_checkpoints(struct partition *p)
{
	if (!p || p->in_txn)
		return schema_error(-EINVAL, p ? p->path : NULL, "defer checkpoints: bad state");
	sqlite3_wal_hook(p->db, note_wal_frames, p);
	return 0;
}

int partition_wal_frames(const struct partition *p)
{
	return p->wal_frames;
}

/* ---- creating a partition ------------------------------------------------------------ */

static int partition_alloc(const char *dir, const char *name, int64_t period_end_ns,
			   struct partition **out)
{
	struct partition *p = calloc(1, sizeof(*p));
	size_t len = strlen(dir) + 1 + strlen(name) + 1;

	if (!p || !(p->path = malloc(len))) {
		free(p);
		return schema_error(-ENOMEM, dir, "out of memory");
	}
	snprintf(p->path, len, "%s/%s", dir, name);
	p->period_end_ns = period_end_ns;
	*out = p;
	return 0;
}

/* O_EXCL: of two writers racing for a name, exactly one gets it. */
static int claim_name(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0644);

	if (fd < 0)
		return schema_error(-errno, path, "%s", strerror(errno));
	close(fd);
	return 0;
}

static void remove_files(const char *path)
{
	static const char *const suffixes[] = { "-wal", "-shm", "-journal" };
	char side[PATH_MAX];

	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++)
		if (snprintf(side, sizeof(side), "%s%s", path, suffixes[i]) < (int)sizeof(side))
			unlink(side);
	unlink(path);
}

static int insert_meta_row(struct partition *p, int64_t start, int64_t period_ns,
			   unsigned seq, int64_t created_ns)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(p->db,
				    "INSERT INTO meta(schema_version, period_start, period_end,"
				    " seq, created, sealed, sealed_at) VALUES (?, ?, ?, ?, ?, 0, NULL)",
				    -1, &st, NULL);
	struct binder b = { st, 0, rc };

	bind_int(&b, SCHEMA_VERSION);
	bind_int(&b, start);
	bind_int(&b, start + period_ns);
	bind_int(&b, seq);
	bind_int(&b, created_ns);
	if (b.rc == SQLITE_OK)
		b.rc = schema_stmt_run(st);
	sqlite3_finalize(st);
	return b.rc == SQLITE_OK ? 0 : schema_sql_fail(p->db, b.rc, p->path, "meta", SQL_WRITE);
}

/* The whole schema in one transaction, in rollback-journal mode (invariant 4). */
static int create_schema(struct partition *p, int64_t start, int64_t period_ns,
			 unsigned seq, int64_t created_ns)
{
	char pragmas[96];
	int rc = schema_sql_exec(p->db, "BEGIN IMMEDIATE", p->path, "create", SQL_WRITE);

	for (int v = 1; !rc && v <= SCHEMA_VERSION; v++)
		rc = schema_sql_exec(p->db, schema_migrations[v], p->path, "create tables", SQL_WRITE);
	snprintf(pragmas, sizeof(pragmas), "PRAGMA application_id = %u; PRAGMA user_version = %d",
		 SCHEMA_APPLICATION_ID, SCHEMA_VERSION);
	if (!rc)
		rc = schema_sql_exec(p->db, pragmas, p->path, "create", SQL_WRITE);
	if (!rc)
		rc = insert_meta_row(p, start, period_ns, seq, created_ns);
	if (!rc)
		rc = schema_sql_exec(p->db, "COMMIT", p->path, "create", SQL_WRITE);
	return rc; /* on failure, closing the connection rolls back */
}

static int set_open_pragmas(struct partition *p)
{
	char mode[16] = "";
	int rc = schema_sql_query(p->db, "PRAGMA journal_mode = WAL", NULL, mode, sizeof(mode));

	if (rc != SQLITE_OK)
		return schema_sql_fail(p->db, rc, p->path, "journal_mode", SQL_WRITE);
	if (strcmp(mode, "wal"))
		return schema_error(-EIO, p->path, "journal_mode is '%s', not 'wal'", mode);
	return schema_sql_exec(p->db, "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -32768",
			p->path, "pragmas", SQL_WRITE);
}

static int prepare(struct partition *p, const char *sql, sqlite3_stmt **st)
{
	int rc = sqlite3_prepare_v3(p->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);

	return rc == SQLITE_OK ? 0 : schema_sql_fail(p->db, rc, p->path, "prepare", SQL_WRITE);
}

static int prepare_statements(struct partition *p)
{
	int rc = 0;

	for (int t = 0; !rc && t < SCHEMA_NTABLES; t++)
		rc = prepare(p, table_defs[t].insert_sql, &p->insert[t]);
	if (!rc)
		rc = prepare(p, "UPDATE meta_tables SET rows = ?, ts_min = ?, ts_max = ?,"
			     " ts_end_min = ?, ts_end_max = ? WHERE name = ?", &p->update_stats);
	if (!rc)
		rc = prepare(p, "BEGIN IMMEDIATE", &p->begin);
	if (!rc)
		rc = prepare(p, "COMMIT", &p->commit);
	if (!rc)
		rc = prepare(p, "ROLLBACK", &p->rollback);
	return rc;
}

int partition_create(const char *dir, int64_t period_start_ns, int64_t period_ns,
		     unsigned seq, int64_t created_ns, struct partition **out)
{
	struct partition *p = NULL;
	char name[SCHEMA_NAME_LEN];
	int rc;

	if (out)
		*out = NULL;
	if (!dir || !out || period_ns <= 0 || period_start_ns > INT64_MAX - period_ns)
		return schema_error(-EINVAL, dir, "partition_create: bad arguments");
	rc = partition_name_format(name, sizeof(name), period_start_ns, seq);
	if (!rc)
		rc = partition_alloc(dir, name, period_start_ns + period_ns, &p);
	if (!rc)
		rc = claim_name(p->path);
	if (rc) {
		if (p)
			partition_free(p);
		return rc;
	}
	rc = schema_db_open(p->path, SQLITE_OPEN_READWRITE, &p->db);
	if (!rc)
		rc = create_schema(p, period_start_ns, period_ns, seq, created_ns);
	if (!rc)
		rc = set_open_pragmas(p);
	if (!rc)
		rc = prepare_statements(p);
	if (rc) {
		char *path = p->path;

		p->path = NULL;
		partition_free(p);
		remove_files(path);
		free(path);
		return rc;
	}
	*out = p;
	return 0;
}

/* ---- reading metadata --------------------------------------------------------------- */

static int read_meta_row(sqlite3 *db, const char *path, struct partition_meta *m)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db,
				    "SELECT schema_version, period_start, period_end, seq, created,"
				    " sealed, sealed_at, (SELECT count(*) FROM meta) FROM meta",
				    -1, &st, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_int64(st, 7) == 1) {
		m->schema_version = sqlite3_column_int(st, 0);
		m->period_start_ns = sqlite3_column_int64(st, 1);
		m->period_end_ns = sqlite3_column_int64(st, 2);
		m->seq = (unsigned)sqlite3_column_int64(st, 3);
		m->created_ns = sqlite3_column_int64(st, 4);
		m->sealed = sqlite3_column_int(st, 5) != 0;
		m->sealed_ns = sqlite3_column_int64(st, 6);
		rc = SQLITE_OK;
	} else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
		rc = SQLITE_EMPTY;
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_EMPTY)
		return schema_error(-EINVAL, path, "meta does not hold exactly one row");
	return rc == SQLITE_OK ? 0 : schema_sql_fail(db, rc, path, "meta", SQL_READ);
}

static int table_index(const char *name)
{
	for (int t = 0; name && t < SCHEMA_NTABLES; t++)
		if (strcmp(name, table_defs[t].name) == 0)
			return t;
	return -1;
}

/* The slot in partition_meta.tables a meta_tables row fills, and the kind
 * of file that has such a table; -1 for a table this build does not know
 * (a later version's). */
static int meta_slot(const char *name, enum schema_kind *kind)
{
	int t = table_index(name);

	if (t >= 0) {
		*kind = SCHEMA_KIND_RAW;
		return t;
	}
	for (int k = SCHEMA_KIND_1M; name && k < SCHEMA_NKINDS; k++) {
		if (strcmp(name, rollup_table_name((enum schema_kind)k)) == 0) {
			*kind = (enum schema_kind)k;
			return SCHEMA_ROLLUP_META;
		}
	}
	return -1;
}

/* The kind whose tables meta_tables lists: exactly one kind, all of its
 * tables (seen[k]: a bit per slot). */
static int meta_kind(const char *path, const unsigned seen[SCHEMA_NKINDS], enum schema_kind *kind)
{
	static const unsigned all[SCHEMA_NKINDS] = {
		[SCHEMA_KIND_RAW] = (1u << SCHEMA_NTABLES) - 1,
		[SCHEMA_KIND_1M] = 1u << SCHEMA_ROLLUP_META,
		[SCHEMA_KIND_1H] = 1u << SCHEMA_ROLLUP_META,
	};
	int found = -1;

	for (int k = 0; k < SCHEMA_NKINDS; k++) {
		if (!seen[k])
			continue;
		if (found >= 0)
			return schema_error(-EINVAL, path, "meta_tables lists tables of %s and %s files",
					    kind_names[found], kind_names[k]);
		found = k;
	}
	if (found < 0 || seen[found] != all[found])
		return schema_error(-EINVAL, path, "meta_tables lacks a table");
	*kind = (enum schema_kind)found;
	return 0;
}

static int read_meta_tables(sqlite3 *db, const char *path, struct partition_meta *m,
			    enum schema_kind *kind)
{
	sqlite3_stmt *st = NULL;
	unsigned seen[SCHEMA_NKINDS] = { 0 };
	int rc = sqlite3_prepare_v2(db,
				    "SELECT name, rows, ifnull(ts_min, 0), ifnull(ts_max, 0),"
				    " ifnull(ts_end_min, 0), ifnull(ts_end_max, 0) FROM meta_tables",
				    -1, &st, NULL);

	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		enum schema_kind k;
		int t = meta_slot((const char *)sqlite3_column_text(st, 0), &k);

		rc = SQLITE_OK;
		if (t < 0)
			continue;
		seen[k] |= 1u << t;
		m->tables[t].rows = (uint64_t)sqlite3_column_int64(st, 1);
		m->tables[t].ts_min = sqlite3_column_int64(st, 2);
		m->tables[t].ts_max = sqlite3_column_int64(st, 3);
		m->tables[t].ts_end_min = sqlite3_column_int64(st, 4);
		m->tables[t].ts_end_max = sqlite3_column_int64(st, 5);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return schema_sql_fail(db, rc, path, "meta_tables", SQL_READ);
	return meta_kind(path, seen, kind);
}

int schema_meta_read(sqlite3 *db, const char *path, enum schema_kind *kind,
		     struct partition_meta *out)
{
	/* one read transaction: meta and meta_tables of the same commit */
	int rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return schema_sql_fail(db, rc, path, "begin", SQL_READ);
	rc = read_meta_row(db, path, out);
	if (!rc)
		rc = read_meta_tables(db, path, out, kind);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	return rc;
}

int schema_file_read_meta(const char *path, enum schema_kind *kind, struct partition_meta *out)
{
	sqlite3 *db = NULL;
	int version, rc;

	memset(out, 0, sizeof(*out));
	rc = schema_open_ours(path, SQLITE_OPEN_READONLY, &db, &version);
	if (!rc)
		rc = schema_meta_read(db, path, kind, out);
	sqlite3_close_v2(db);
	return rc;
}

int schema_kind_check(const char *path, enum schema_kind kind, unsigned want)
{
	int k;

	if (want & SCHEMA_WANT(kind))
		return 0;
	if (want == SCHEMA_WANT_RAW)
		return schema_error(-EINVAL, path, "a %s rollup file, not a raw partition",
				    kind_names[kind]);
	if (want == SCHEMA_WANT_ROLLUP)
		return schema_error(-EINVAL, path, "a raw partition, not a rollup file");
	for (k = 0; k < SCHEMA_NKINDS && !(want & SCHEMA_WANT(k)); k++)
		;
	return schema_error(-EINVAL, path, "a %s file under a %s name", kind_names[kind],
			    k < SCHEMA_NKINDS ? kind_names[k] : "?");
}

int partition_read_meta(const char *path, struct partition_meta *out)
{
	enum schema_kind kind = SCHEMA_KIND_RAW;
	int rc;

	if (!path || !out)
		return schema_error(-EINVAL, path, "partition_read_meta: bad arguments");
	rc = schema_file_read_meta(path, &kind, out);
	if (!rc && (rc = schema_kind_check(path, kind, SCHEMA_WANT_RAW)))
		memset(out, 0, sizeof(*out));
	return rc;
}

/* ---- sealing --------------------------------------------------------------------------- */

static int seal_progress(void *cancel)
{
	return atomic_load((const atomic_int *)cancel) != 0;
}

static int seal_cancelled(const atomic_int *cancel, const char *path)
{
	if (cancel && atomic_load(cancel))
		return schema_error(-ECANCELED, path, "seal: cancelled");
	return 0;
}

/* Done already: sealed = 1 (set last), rollback journal, no WAL left. */
static int seal_done(sqlite3 *db, const char *path, int *done)
{
	char mode[16] = "";
	int64_t sealed = 0;
	int rc = schema_sql_query(db, "SELECT sealed FROM meta", &sealed, NULL, 0);

	if (rc == SQLITE_OK) /* after a read, so SQLite has seen the WAL */
		rc = schema_sql_query(db, "PRAGMA journal_mode", NULL, mode, sizeof(mode));
	if (rc != SQLITE_OK)
		return schema_sql_fail(db, rc, path, "meta", SQL_READ);
	*done = sealed && strcmp(mode, "delete") == 0 && !schema_side_file_exists(path, "-wal");
	return 0;
}

static int seal_indexes(sqlite3 *db, const char *path, int version)
{
	int rc = schema_sql_exec(db, "BEGIN IMMEDIATE", path, "seal: begin", SQL_WRITE);

	if (!rc)
		rc = schema_sql_exec(db, schema_seal_indexes[version], path, "seal: indexes", SQL_WRITE);
	if (!rc)
		rc = schema_sql_exec(db, "COMMIT", path, "seal: indexes", SQL_WRITE);
	if (rc && !sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* Empty the WAL into the file and leave WAL mode for a rollback journal. */
static int seal_journal(sqlite3 *db, const char *path)
{
	char mode[16] = "";
	int64_t busy = 0;
	int rc = schema_sql_query(db, "PRAGMA wal_checkpoint(TRUNCATE)", &busy, NULL, 0);

	if (rc != SQLITE_OK)
		return schema_sql_fail(db, rc, path, "seal: checkpoint", SQL_WRITE);
	if (busy)
		return schema_error(-EBUSY, path, "seal: checkpoint blocked by readers");
	rc = schema_sql_query(db, "PRAGMA journal_mode = DELETE", NULL, mode, sizeof(mode));
	if (rc != SQLITE_OK)
		return schema_sql_fail(db, rc, path, "seal: journal_mode", SQL_WRITE);
	if (strcmp(mode, "delete"))
		return schema_error(-EBUSY, path, "seal: still '%s': the file is open elsewhere", mode);
	return 0;
}

/* An empty -wal next to a file in rollback-journal mode holds nothing and
 * SQLite ignores it; it would only make the catalog ask for another seal.
 * Called under an EXCLUSIVE lock, so no connection can be using it. */
static void remove_stale_wal(const char *path)
{
	char side[PATH_MAX];
	struct stat st;

	if (snprintf(side, sizeof(side), "%s-wal", path) >= (int)sizeof(side))
		return;
	if (lstat(side, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0)
		unlink(side);
}

static int seal_mark(sqlite3 *db, const char *path, int64_t sealed_ns)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db,
				    "UPDATE meta SET sealed = 1, sealed_at = ifnull(sealed_at, ?)",
				    -1, &st, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 1, sealed_ns);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = schema_stmt_run(st);
	if (rc == SQLITE_OK) {
		remove_stale_wal(path);
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	}
	if (rc != SQLITE_OK)
		rc = schema_sql_fail(db, rc, path, "seal: meta", SQL_WRITE);
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_finalize(st);
	return rc;
}

static int seal_steps(sqlite3 *db, const char *path, int version, int64_t sealed_ns,
		      const atomic_int *cancel)
{
	int rc = seal_cancelled(cancel, path);

	if (cancel)
		sqlite3_progress_handler(db, SEAL_PROGRESS_OPS, seal_progress, (void *)cancel);
	/* 16 MiB for the index sorts: measured as fast as 64 MiB on a 2M-row
	 * partition (3.96 s vs 4.02 s) at a third of the peak memory; sorter
	 * threads measured slower */
	if (!rc)
		rc = schema_sql_exec(db, "PRAGMA cache_size = -16384", path, "seal: pragmas", SQL_WRITE);
	if (!rc)
		rc = seal_indexes(db, path, version);
	if (!rc)
		rc = seal_cancelled(cancel, path);
	if (!rc)
		/* sampled statistics: enough for the planner to pick an index,
		 * at a fraction of a full ANALYZE's cost on millions of rows */
		rc = schema_sql_exec(db, "PRAGMA analysis_limit = 2000; ANALYZE", path,
			      "seal: analyze", SQL_WRITE);
	if (!rc)
		rc = seal_cancelled(cancel, path);
	if (!rc)
		rc = seal_journal(db, path);
	if (!rc)
		rc = seal_cancelled(cancel, path);
	if (!rc)
		rc = seal_mark(db, path, sealed_ns);
	sqlite3_progress_handler(db, 0, NULL, NULL);
	return rc;
}

/* Only raw partitions are sealed; a rollup file stays as it is. */
static int seal_check_kind(sqlite3 *db, const char *path)
{
	struct partition_meta m = { 0 };
	enum schema_kind kind = SCHEMA_KIND_RAW;
	int rc = read_meta_tables(db, path, &m, &kind);

	return rc ? rc : schema_kind_check(path, kind, SCHEMA_WANT_RAW);
}

static int seal_open_once(const char *path, sqlite3 **db, int *version, int *done)
{
	int rc = schema_open_ours(path, SQLITE_OPEN_READWRITE, db, version);

	if (!rc)
		rc = seal_check_kind(*db, path);
	return rc ? rc : seal_done(*db, path, done);
}

/*
 * Open read-write and learn whether the seal is done. SQLite opens a 0444
 * file read-only for anyone but root: when such a file still misses a step
 * (or holds a hot journal), make it writable again; the seal ends with
 * chmod 0444 anyway.
 */
static int seal_open(const char *path, sqlite3 **db, int *version, int *done)
{
	int rc = seal_open_once(path, db, version, done);

	if (rc != -EAGAIN && (rc || *done || sqlite3_db_readonly(*db, "main") != 1))
		return rc;
	if (faccessat(AT_FDCWD, path, W_OK, AT_EACCESS) == 0)
		return rc ? rc : schema_error(-EROFS, path, "seal: SQLite cannot write the file");
	sqlite3_close_v2(*db);
	*db = NULL;
	if (chmod(path, 0644))
		return schema_error(-errno, path, "chmod: %s", strerror(errno));
	return seal_open_once(path, db, version, done);
}

int partition_seal(const char *path, int64_t sealed_ns, const atomic_int *cancel)
{
	sqlite3 *db = NULL;
	int version = 0, done = 0, rc;

	if (!path)
		return schema_error(-EINVAL, NULL, "partition_seal: no path");
	rc = seal_open(path, &db, &version, &done);
	if (!rc && !done)
		rc = seal_steps(db, path, version, sealed_ns, cancel);
	sqlite3_close_v2(db); /* every statement is finalized: this closes */
	if (!rc && chmod(path, 0444))
		rc = schema_error(-errno, path, "chmod: %s", strerror(errno));
	return rc;
}
