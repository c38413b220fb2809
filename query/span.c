/*
 * span.c: the tables that span every partition of a data dir (span.h).
 *
 * flows, connections and tcp_states are eponymous virtual tables over the
 * same-named table of every raw partition file, flows_1m and flows_1h over
 * the rollup files of their kind; partitions lists the files.
 * The pieces, in the order a query meets them:
 *
 *  1. Descriptors. A spanning table is data: a struct span_desc names the
 *     virtual table, the kind of file it reads (struct span_kind: how the
 *     name parses, how the metadata is read; "raw" for raw-*.db), the table
 *     inside each file, its columns (names, order and declared types exactly
 *     as the partition DDL) and its time columns. Rollup tables are further
 *     kinds and descriptors through the same machinery.
 *
 *  2. The set (one per data dir, shared by every connection, mutex
 *     protected). It lists the dir again only when the dir's mtime changed
 *     (or is too recent to trust: a change within the same clock tick
 *     leaves it equal). Each listing makes a new immutable, refcounted
 *     snapshot sorted by name; a sealed partition already known (same name
 *     and inode) keeps its metadata and is not opened again, the others are
 *     read with partition_read_meta and classified as the catalog does
 *     (open, sealed, broken), and a file that is gone simply is not in the
 *     new snapshot. Rollup files are never sealed; their metadata (and
 *     their marks, for the partitions table) is cached in the set by the
 *     file's (dev, inode, size, mtime), trusted only once that mtime is a
 *     second old (a commit within the same tick of the file clock could
 *     leave all four equal). A commit also creates and removes a -journal
 *     beside the file, so the dir's mtime moves and the set lists again. (catalog_scan opens every file on every listing: ~0.7 ms
 *     each, a third of a second for 500 partitions, paid by a query each
 *     time a file appears or a seal touches the dir.)
 *
 *  3. A cursor takes one snapshot at its first xFilter and keeps it until
 *     it closes: one statement sees one list of files. At that moment it
 *     re-reads the metadata of every file of its table's kind that is not
 *     sealed (a rollup file's only if its state changed), so rows committed
 *     a moment ago are seen. Files of other kinds are not looked at.
 *
 *  4. Plans. xBestIndex pushes every usable comparison into idxStr (column,
 *     operator, collation, argv slot) with colUsed; xFilter prunes with the
 *     ts (and ts_end, and partition name) constraints and turns the rest into
 *     the WHERE clause every partition runs, values bound, never pasted.
 *     Columns SQLite does not use are not read. A sealed partition that lies
 *     inside the time range runs without the time constraints (a table scan,
 *     not the ts index); with no column read and only time constraints, a
 *     sealed partition inside the range is not opened at all: its row count
 *     comes from the metadata (count(*)). LIMIT (+ OFFSET) caps what each
 *     partition returns; SQLite still applies both itself.
 *
 *  5. Streams. One partition statement each. Unordered, partitions are read
 *     one after the other in name order. ORDER BY ts is a lazy k-way merge:
 *     candidates sorted by ts_min (ASC) or ts_max (DESC), a heap of open
 *     streams keyed by their current ts, and a candidate is opened only when
 *     its bound could beat the heap's head. Late rows make ranges overlap;
 *     the merge stays exact because an unopened candidate can never hold a
 *     row before (after, for DESC) its recorded bound.
 *
 *     An unordered scan of 2+ sealed partitions and SPAN_AHEAD_MIN_ROWS rows
 *     (by metadata) hands them to producer threads (span_ahead.c) that step
 *     their statements and queue batches of the used columns; the cursor
 *     reads its own streams (open partitions) first, then the batches.
 *     With a filter besides time (a needle, mostly a few rows) the cursor
 *     starts alone and hands over only once its first partition has given
 *     SPAN_AHEAD_LAZY_ROWS rows: the producers read that partition again
 *     from the row SQLite has not seen (same statement, immutable file:
 *     same rows, same order).
 *
 *  5b. span_count(table, op, value, ...): a whole count(*) under ts
 *     constraints without stepping rows: the candidates of a cursor, the
 *     countable ones from metadata, count(*) on the others (count_fast.c
 *     rewrites trivial count queries into it).
 *
 *  6. Handles. Sealed files are opened immutable=1 (no locks, no side
 *     files; one read transaction held for the handle's life) and cached per
 *     connection (LRU with a hash by inode; up to RLIMIT_NOFILE / 16 handles,
 *     64..1024, ~110 KiB each) with their prepared statements, so a join
 *     calling xFilter once per outer row does not reopen files. The cache
 *     is under a mutex: a read-ahead thread takes an idle cached handle for
 *     itself alone (excl; else it opens its own) and gives it back, so a
 *     connection is never used by two threads at once. Open (WAL)
 *     partitions are opened mode=ro with a busy handler, owned by the cursor
 *     and closed with it: a reader that stays connected to a WAL file keeps
 *     the sealer from switching it out of WAL mode. Rollup files are read
 *     the same way (mode=ro, locks, busy handler): SQLite's own locking
 *     then shows each statement whole transactions of the rollup writer.
 *
 * Invariants:
 *  a. A snapshot never changes once published; a cursor holds a reference to
 *     the one it reads, so rowids ((snapshot index + 1) << 40 | partition
 *     rowid) are stable for the whole statement (SQLite's OR-by-union plans
 *     dedupe by rowid across xFilter calls).
 *  b. Only sealed files whose every seal step is done
 *     (partition_seal_complete: schema decides) are opened immutable, have their metadata
 *     cached, are read without their time constraints or counted from
 *     their metadata.
 *  c. A constraint is marked omit only where the partition evaluates it
 *     exactly as SQLite would on our column (INTEGER columns, same declared
 *     type); TEXT comparisons are rechecked by SQLite, and skipped in the
 *     partition SQL when the value is numeric (affinity could differ).
 *  d. Under ORDER BY, the rows of a partition that is not sealed are
 *     clamped to the ts range of the metadata read for this statement, so
 *     rows committed meanwhile cannot slip in front of the merge.
 *  e. A statement of a partition is reset as soon as its rows are consumed
 *     or the cursor closes; open partitions are closed with their cursor.
 *
 * SQLite callbacks and the helpers on their path return SQLite codes; the
 * set's functions return 0 or a negative errno.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "schema.h"
#include "span.h"
#include "span_ahead.h"

#define SPAN_HANDLES_MIN 64       /* sealed partition handles cached per connection, */
#define SPAN_HANDLES_MAX 1024     /* within RLIMIT_NOFILE / 16 */
#define SPAN_HASH_SIZE 1024
#define SPAN_STMTS_MAX 8          /* statements cached per handle */
#define SPAN_PROGRESS_OPS 1000    /* VM steps between two interrupt polls */
#define SPAN_BUSY_MS 5000         /* how long a read waits out a lock */
#define SPAN_BUSY_STEP_MS 5
#define SPAN_RACY_NS 1000000000LL /* a dir mtime this close to a scan is not trusted */
#define SPAN_ROWID_SHIFT 40       /* rowid = (snapshot index + 1) << 40 | partition rowid */
#define SPAN_CACHE_KIB 256        /* page cache of one handle: measured faster for scans
				     than 2 MiB (the pcache's own upkeep) and than mmap
				     (a page fault per page of every newly opened file) */
#define SPAN_MAX_COLS 63          /* colUsed has a bit per column below 63 */
#define SPAN_AHEAD_MIN_ROWS 50000 /* an unordered scan of at least this many rows (by the
				     metadata) over 2+ sealed partitions reads ahead */
#define SPAN_AHEAD_FILTERS 2      /* only in a cursor's first xFilter calls: one filtered
				     per outer row is a join's inner side, short scans */
#define SPAN_AHEAD_LAZY_ROWS 256  /* with a filter besides time (a needle: mostly a few
				     rows, threads would cost more than they save), only
				     once the first partition has given this many */

/* ---- descriptors ------------------------------------------------------------ */

struct span_col {
	const char *name;
	const char *decl; /* as declared in the partition DDL */
	int text;         /* TEXT affinity */
	int indexed;      /* a sealed partition has an index on it alone */
};

struct span_desc {
	const char *name;          /* the virtual table */
	const char *kind;          /* the files it reads: "raw" (raw-*.db) */
	const char *table;         /* the table in each file */
	enum schema_table meta;    /* its row in meta_tables */
	const struct span_col *cols;
	int ncols;                 /* the hidden column "partition" is ncols */
	int ts_col;                /* pruning, ORDER BY */
	int ts_end_col;            /* pruning only; -1: none */
};

#define INT(n, ix) { n, "INTEGER", 0, ix }
#define TXT(n, ix) { n, "TEXT", 1, ix }

static const struct span_col flows_cols[] = {
	{ "ts", "INTEGER NOT NULL", 0, 1 }, { "ts_end", "INTEGER NOT NULL", 0, 0 },
	{ "proto", "TEXT NOT NULL", 1, 0 },
	TXT("orig_addr", 1), INT("orig_port", 0), TXT("resp_addr", 1), INT("resp_port", 1),
	INT("orig_pkts", 0), INT("orig_bytes", 0), INT("resp_pkts", 0), INT("resp_bytes", 0),
	TXT("conn_state", 0), TXT("history", 0), TXT("ifname", 0), TXT("end_reason", 0),
	INT("pid", 0), TXT("comm", 0), INT("sock_cookie", 0),
};

static const struct span_col connections_cols[] = {
	{ "ts", "INTEGER NOT NULL", 0, 1 }, { "ts_end", "INTEGER NOT NULL", 0, 0 },
	TXT("direction", 0), TXT("orig_addr", 1), INT("orig_port", 0), TXT("resp_addr", 1),
	INT("resp_port", 0), INT("pid", 1), INT("uid", 0), TXT("comm", 0), INT("cgroup_id", 0),
	INT("bytes_sent", 0), INT("bytes_received", 0), INT("segs_out", 0), INT("segs_in", 0),
	INT("retransmits", 0), INT("srtt_us", 0), TXT("states", 0), TXT("close_state", 0),
	INT("sock_cookie", 0),
};

static const struct span_col tcp_states_cols[] = {
	{ "ts", "INTEGER NOT NULL", 0, 1 }, TXT("direction", 0), TXT("orig_addr", 0),
	INT("orig_port", 0), TXT("resp_addr", 0), INT("resp_port", 0), TXT("old_state", 0),
	TXT("new_state", 0), INT("pid", 0), TXT("comm", 0), INT("sock_cookie", 1),
};

/* flows_1m and flows_1h (retention/rollup.h): every rollup file indexes ts,
 * (orig_addr, ts), (resp_addr, ts) and resp_port. */
static const struct span_col rollup_cols[] = {
	{ "ts", "INTEGER NOT NULL", 0, 1 }, { "proto", "TEXT NOT NULL", 1, 0 },
	TXT("orig_addr", 1), TXT("resp_addr", 1), INT("resp_port", 1), TXT("direction", 0),
	TXT("comm", 0), { "flows", "INTEGER NOT NULL", 0, 0 }, INT("orig_pkts", 0),
	INT("orig_bytes", 0), INT("resp_pkts", 0), INT("resp_bytes", 0),
	{ "connections", "INTEGER NOT NULL", 0, 0 },
	{ "failed_connections", "INTEGER NOT NULL", 0, 0 }, INT("retransmits", 0),
};

#undef INT
#undef TXT
#define NCOLS(a) ((int)(sizeof(a) / sizeof((a)[0])))

_Static_assert(NCOLS(flows_cols) < SPAN_MAX_COLS && NCOLS(connections_cols) < SPAN_MAX_COLS &&
	       NCOLS(tcp_states_cols) < SPAN_MAX_COLS && NCOLS(rollup_cols) < SPAN_MAX_COLS,
	       "colUsed holds a bit per column");

/*
 * Kinds of file in the data dir: how a name is recognised and how the
 * metadata is read. Raw partitions are sealed once and then immutable;
 * rollup files (1m-*.db, 1h-*.db) are never sealed: a transaction per raw
 * partition rolled into them, in rollback-journal mode. Their metadata is
 * cached by (dev, inode, size, mtime) (struct rollup_info), and they are
 * read like open partitions: a read-only connection per cursor, with
 * locks, so SQLite sees every commit.
 */
struct span_kind {
	const char *name;
	enum schema_kind kind;
	int (*parse)(const char *name, int64_t *period_start_ns, unsigned *seq);
	int (*read_meta)(const char *path, struct partition_meta *out);
};

static const struct span_kind span_kinds[] = {
	{ "raw", SCHEMA_KIND_RAW, partition_name_parse, partition_read_meta },
	{ "1m", SCHEMA_KIND_1M, rollup_1m_name_parse, rollup_read_meta },
	{ "1h", SCHEMA_KIND_1H, rollup_1h_name_parse, rollup_read_meta },
};

#define NKINDS ((int)(sizeof(span_kinds) / sizeof(span_kinds[0])))

static int kind_is_rollup(const struct span_kind *k)
{
	return k->kind != SCHEMA_KIND_RAW;
}

static const struct span_desc span_descs[] = {
	{ "flows", "raw", "flows", SCHEMA_FLOWS, flows_cols, NCOLS(flows_cols), 0, 1 },
	{ "connections", "raw", "connections", SCHEMA_CONNECTIONS, connections_cols,
	  NCOLS(connections_cols), 0, 1 },
	{ "tcp_states", "raw", "tcp_states", SCHEMA_TCP_STATES, tcp_states_cols,
	  NCOLS(tcp_states_cols), 0, -1 },
	{ "flows_1m", "1m", "flows_1m", SCHEMA_ROLLUP_META, rollup_cols, NCOLS(rollup_cols), 0,
	  -1 },
	{ "flows_1h", "1h", "flows_1h", SCHEMA_ROLLUP_META, rollup_cols, NCOLS(rollup_cols), 0,
	  -1 },
};

#define NDESCS ((int)(sizeof(span_descs) / sizeof(span_descs[0])))

/* ---- the set: the dir's partitions, cached ------------------------------------ */

/* What identifies one state of a file that changes in place (a rollup
 * file): a commit changes its mtime (and mostly its size). */
struct file_key {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

struct span_part {
	char name[SCHEMA_NAME_LEN];
	const struct span_kind *kind;
	enum catalog_status status;
	int64_t period_start;      /* from the name */
	unsigned seq;
	int immutable;             /* sealed, every step done: meta cached, immutable=1 */
	int has_meta;              /* meta valid (always for immutable) */
	struct partition_meta meta;
	dev_t dev;
	ino_t ino;
	struct file_key key;       /* rollup files: the state meta was read in */
	int key_trusted;           /* rollup files: meta may be reused while key holds */
	char error[128];           /* why, for a broken file */
};

struct span_snap {
	atomic_int refs;
	uint64_t gen;
	size_t n;
	uint64_t rows[NDESCS];          /* totals per spanning table, for the planner */
	size_t nonempty[NDESCS];
	struct span_part parts[];       /* sorted by name */
};

/*
 * A rollup file's metadata and marks (the raw partitions rolled into it),
 * as read in the state `key`: reused while the file is in that state, so
 * queries do not open every rollup file to learn what is in it. sources is
 * read only for the partitions table (malloc'ed by schema; NULL until then).
 */
struct rollup_info {
	char name[SCHEMA_NAME_LEN];
	struct file_key key;
	int trusted;               /* mtime older than the read by SPAN_RACY_NS */
	int has_meta;
	struct partition_meta meta;
	int has_sources;
	char (*sources)[SCHEMA_NAME_LEN]; /* sorted */
	size_t nsources;
};

struct span_set {
	char *dir;
	pthread_mutex_t lock;
	struct span_snap *snap;    /* NULL until the first scan */
	struct timespec mtime;     /* dir's, before that scan */
	int64_t scanned_at;        /* CLOCK_REALTIME ns when it started */
	uint64_t gen;
	pthread_mutex_t rollup_lock; /* rollups, nrollups; taken after lock, never before */
	struct rollup_info *rollups; /* sorted by name */
	size_t nrollups, caprollups;
};

static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000LL + t->tv_nsec;
}

static int64_t realtime_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return ts_ns(&t);
}

int span_set_open(const char *dir, struct span_set **out)
{
	struct span_set *set;
	struct stat st;

	if (!dir || !out)
		return -EINVAL;
	*out = NULL;
	if (stat(dir, &st))
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	set = calloc(1, sizeof(*set));
	if (!set || !(set->dir = strdup(dir))) {
		free(set);
		return -ENOMEM;
	}
	pthread_mutex_init(&set->lock, NULL);
	pthread_mutex_init(&set->rollup_lock, NULL);
	*out = set;
	return 0;
}

static void snap_unref(struct span_snap *s)
{
	if (s && atomic_fetch_sub(&s->refs, 1) == 1)
		free(s);
}

static struct span_snap *snap_ref(struct span_snap *s)
{
	atomic_fetch_add(&s->refs, 1);
	return s;
}

void span_set_free(struct span_set *set)
{
	if (!set)
		return;
	snap_unref(set->snap);
	for (size_t i = 0; i < set->nrollups; i++)
		free(set->rollups[i].sources);
	free(set->rollups);
	pthread_mutex_destroy(&set->rollup_lock);
	pthread_mutex_destroy(&set->lock);
	free(set->dir);
	free(set);
}

static int part_path(const struct span_set *set, const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", set->dir, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static const struct span_part *snap_find(const struct span_snap *s, const char *name)
{
	size_t lo = 0, hi = s ? s->n : 0;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->parts[mid].name, name);

		if (c == 0)
			return &s->parts[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* A directory entry with a partition's name. */
struct dir_name {
	char name[SCHEMA_NAME_LEN];
	const struct span_kind *kind;
	ino_t ino;
	int64_t period_start;
	unsigned seq;
};

static int dir_name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dir_name *)a)->name, ((const struct dir_name *)b)->name);
}

/* The names in dir that parse as one of our kinds' (side files and foreign
 * files do not), sorted. Free *out with free(). */
static int dir_list(const char *dir, struct dir_name **out, size_t *n)
{
	struct dir_name *v = NULL;
	size_t cap = 0;
	struct dirent *de;
	DIR *d = opendir(dir);
	int rc = 0;

	*n = 0;
	if (!d)
		return -errno;
	while ((errno = 0, de = readdir(d))) {
		struct dir_name e = { .ino = de->d_ino };
		size_t len = strlen(de->d_name);

		for (int k = 0; !e.kind && len < sizeof(e.name) && k < NKINDS; k++)
			if (span_kinds[k].parse(de->d_name, &e.period_start, &e.seq) == 0)
				e.kind = &span_kinds[k];
		if (!e.kind)
			continue;
		if (*n == cap) {
			void *nv = realloc(v, (cap = cap ? 2 * cap : 64) * sizeof(*v));

			if (!nv) {
				rc = -ENOMEM;
				break;
			}
			v = nv;
		}
		memcpy(e.name, de->d_name, len + 1);
		v[(*n)++] = e;
	}
	if (!rc && errno)
		rc = -errno;
	closedir(d);
	if (rc) {
		free(v);
		return rc;
	}
	if (*n)
		qsort(v, *n, sizeof(*v), dir_name_cmp);
	*out = v;
	return 0;
}

/* ---- rollup files: metadata cached by the file's state ---------------------------- */

static struct file_key file_key_of(const struct stat *st)
{
	return (struct file_key){ .dev = st->st_dev, .ino = st->st_ino, .size = st->st_size,
				  .mtime = st->st_mtim };
}

static int file_key_equal(const struct file_key *a, const struct file_key *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* A state whose mtime is older than `now` by more than the clock's
 * granularity can be trusted: a later commit gives another mtime. (File
 * times come from a coarse clock; two commits within one tick of it can
 * leave the same mtime and, rewriting pages in place, the same size.) */
static int file_key_trusted(const struct file_key *k, int64_t now)
{
	return ts_ns(&k->mtime) < now - SPAN_RACY_NS;
}

/* Index of name in set->rollups, or where it would go (*found 0). Under
 * rollup_lock. */
static size_t rollup_find(const struct span_set *set, const char *name, int *found)
{
	size_t lo = 0, hi = set->nrollups;

	*found = 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(set->rollups[mid].name, name);

		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The entry for name in state key, made (or emptied) if it was for another
 * state; NULL when out of memory. Under rollup_lock. */
static struct rollup_info *rollup_entry(struct span_set *set, const char *name,
					const struct file_key *key)
{
	int found;
	size_t i = rollup_find(set, name, &found);
	struct rollup_info *r;

	if (!found) {
		if (set->nrollups == set->caprollups) {
			size_t cap = set->caprollups ? 2 * set->caprollups : 32;
			void *v = realloc(set->rollups, cap * sizeof(*set->rollups));

			if (!v)
				return NULL;
			set->rollups = v;
			set->caprollups = cap;
		}
		memmove(&set->rollups[i + 1], &set->rollups[i],
			(set->nrollups - i) * sizeof(*set->rollups));
		set->nrollups++;
		memset(&set->rollups[i], 0, sizeof(set->rollups[i]));
		snprintf(set->rollups[i].name, sizeof(set->rollups[i].name), "%s", name);
	}
	r = &set->rollups[i];
	if (found && r->trusted && file_key_equal(&r->key, key))
		return r;
	free(r->sources);
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->key = *key;
	return r;
}

/*
 * The metadata of the rollup file at path (dir entry name) whose state is
 * key, as of `now` (taken before the stat that gave key): from the cache
 * when it was read in that state, else read now (and cached). *trusted
 * says whether the caller may keep using it while the key holds. 0 or a
 * negative errno (rollup_read_meta's).
 */
static int rollup_meta(struct span_set *set, const char *path, const char *name,
		       const struct file_key *key, int64_t now, struct partition_meta *out,
		       int *trusted)
{
	struct rollup_info *r;
	int rc = 0;

	pthread_mutex_lock(&set->rollup_lock);
	r = rollup_entry(set, name, key);
	if (!r) {
		rc = -ENOMEM;
	} else if (!r->has_meta) {
		rc = rollup_read_meta(path, &r->meta);
		r->has_meta = rc == 0;
		r->trusted = rc == 0 && file_key_trusted(key, now);
	}
	if (!rc) {
		*out = r->meta;
		*trusted = r->trusted;
	}
	pthread_mutex_unlock(&set->rollup_lock);
	return rc;
}

/* Forget the files that are not in s any more. Under set->lock. */
static void rollup_prune(struct span_set *set, const struct span_snap *s)
{
	size_t k = 0;

	pthread_mutex_lock(&set->rollup_lock);
	for (size_t i = 0; i < set->nrollups; i++) {
		if (!snap_find(s, set->rollups[i].name)) {
			free(set->rollups[i].sources);
			continue;
		}
		set->rollups[k++] = set->rollups[i];
	}
	set->nrollups = k;
	pthread_mutex_unlock(&set->rollup_lock);
}

/* The schema's last error without its "<path>: " prefix. */
static void set_reason(struct span_part *p, const char *path)
{
	const char *e = schema_last_error();
	size_t len = strlen(path);

	if (strncmp(e, path, len) == 0 && e[len] == ':' && e[len + 1] == ' ')
		e += len + 2;
	snprintf(p->error, sizeof(p->error), "%s", e);
}

/*
 * Fill p for the file e. A sealed file seen by the previous scan (same
 * inode) keeps its metadata: sealed files never change, so the dir's 500
 * files are not all opened again whenever one appears. Returns 1 to keep
 * p, 0 when the file went away, or a negative errno.
 */
static int part_fill(struct span_set *set, const struct dir_name *e,
		     const struct span_snap *old, struct span_part *p)
{
	const struct span_part *prev = snap_find(old, e->name);
	char path[PATH_MAX];
	struct stat st;
	int64_t now;
	int rc;

	if (prev && prev->immutable && prev->ino == e->ino) {
		*p = *prev;
		return 1;
	}
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", e->name);
	p->kind = e->kind;
	p->period_start = e->period_start;
	p->seq = e->seq;
	p->status = CATALOG_BROKEN;
	if ((rc = part_path(set, e->name, path, sizeof(path))))
		return rc;
	now = realtime_ns();
	if (stat(path, &st))
		return errno == ENOENT ? 0 : -errno;
	p->dev = st.st_dev;
	p->ino = st.st_ino;
	p->key = file_key_of(&st);
	if (kind_is_rollup(p->kind))
		rc = rollup_meta(set, path, p->name, &p->key, now, &p->meta, &p->key_trusted);
	else
		rc = p->kind->read_meta(path, &p->meta);
	if (rc == -ENOENT)
		return 0;
	if (rc == -ENOMEM)
		return rc;
	if (rc) {
		/* locked for now, or a crash left a recovery to do: ours, and
		 * open until the seal sorts it out; else broken */
		p->status = rc == -EAGAIN || rc == -EBUSY ? CATALOG_OPEN : CATALOG_BROKEN;
		set_reason(p, path);
		return 1;
	}
	if (p->meta.period_start_ns != e->period_start || p->meta.seq != e->seq) {
		snprintf(p->error, sizeof(p->error), "renamed: meta says period start %lld ns, seq %u",
			 (long long)p->meta.period_start_ns, p->meta.seq);
		return 1;
	}
	p->has_meta = 1;
	p->status = p->meta.sealed ? CATALOG_SEALED : CATALOG_OPEN;
	/* every seal step done: safe to open immutable; a rollup file never is */
	p->immutable = !kind_is_rollup(p->kind) && partition_seal_complete(path, &p->meta);
	return 1;
}

static void snap_totals(struct span_snap *s)
{
	for (size_t i = 0; i < s->n; i++) {
		const struct span_part *p = &s->parts[i];

		for (int d = 0; d < NDESCS; d++) {
			uint64_t rows = p->has_meta ? p->meta.tables[span_descs[d].meta].rows : 0;

			if (strcmp(p->kind->name, span_descs[d].kind) != 0)
				continue;
			s->rows[d] += rows;
			s->nonempty[d] += rows > 0 || (!p->has_meta && p->status != CATALOG_BROKEN);
		}
	}
}

/* List the dir into a new snapshot. Called with set->lock held. */
static int set_scan(struct span_set *set, struct span_snap **out)
{
	struct dir_name *names = NULL;
	struct span_snap *s;
	size_t count, n = 0;
	int rc = dir_list(set->dir, &names, &count);

	if (rc)
		return rc;
	s = calloc(1, sizeof(*s) + count * sizeof(s->parts[0]));
	if (!s) {
		free(names);
		return -ENOMEM;
	}
	for (size_t i = 0; i < count; i++) {
		rc = part_fill(set, &names[i], set->snap, &s->parts[n]);
		if (rc < 0)
			break;
		n += (size_t)rc;
		rc = 0;
	}
	free(names);
	if (rc) {
		free(s);
		return rc;
	}
	s->n = n;
	atomic_init(&s->refs, 1);
	s->gen = ++set->gen;
	snap_totals(s);
	rollup_prune(set, s);
	*out = s;
	return 0;
}

/* A snapshot of the dir's partitions, scanning again if the dir changed.
 * The caller drops it with snap_unref. */
static int set_snapshot(struct span_set *set, struct span_snap **out)
{
	struct span_snap *s = NULL;
	struct stat st;
	int64_t started;
	int rc = 0;

	if (stat(set->dir, &st))
		return -errno;
	pthread_mutex_lock(&set->lock);
	if (!set->snap || st.st_mtim.tv_sec != set->mtime.tv_sec ||
	    st.st_mtim.tv_nsec != set->mtime.tv_nsec ||
	    ts_ns(&set->mtime) >= set->scanned_at - SPAN_RACY_NS) {
		started = realtime_ns();
		rc = set_scan(set, &s);
		if (!rc) {
			snap_unref(set->snap);
			set->snap = s;
			set->mtime = st.st_mtim;
			set->scanned_at = started;
		}
	}
	if (!rc)
		*out = snap_ref(set->snap);
	pthread_mutex_unlock(&set->lock);
	return rc;
}

/* ---- per connection: counters, partition handles --------------------------------- */

struct pstmt {
	struct pstmt *next;
	sqlite3_stmt *st;
	int busy; /* a stream is reading it */
	char sql[];
};

struct phandle {
	struct phandle *prev, *next; /* the connection's LRU, or the cursor's list */
	struct phandle *hnext;       /* the connection's hash chain */
	char name[SCHEMA_NAME_LEN];
	dev_t dev;
	ino_t ino;
	sqlite3 *db;
	int cached;  /* in the connection's LRU (sealed); else owned by a cursor */
	int users;   /* streams reading through it */
	int excl;    /* a read-ahead thread's alone (span_ahead.h) until it gives it back */
	int priv;    /* that thread's own, not cached: closed when given back */
	int bad;     /* broken: close when the last user leaves */
	int nstmts;
	struct pstmt *stmts;
};

struct hlist {
	struct phandle *head, *tail; /* head: most recently used */
};

struct span_conn {
	sqlite3 *db; /* the query connection: the registry's key */
	struct span_set *set;
	span_interrupt_fn interrupt;
	void *interrupt_ctx;
	int refs;    /* modules registered with it */
	struct span_conn *next_registered;
	atomic_uint_fast64_t opened, pruned, rows, counted, skipped, files, ahead;
	pthread_mutex_t cache_lock;  /* lru, hash, nhandles, and users/excl of cached
					handles: read-ahead threads take handles too */
	struct hlist lru;            /* cached (sealed) handles */
	struct phandle *hash[SPAN_HASH_SIZE]; /* the same, by inode */
	int nhandles, max_handles;
	uint64_t swept_gen;          /* snapshot generation the LRU was checked against */
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t ahead_min_rows = SPAN_AHEAD_MIN_ROWS;

void span_tune_ahead(uint64_t min_rows)
{
	atomic_store(&ahead_min_rows, min_rows);
}
static struct span_conn *registry;

static void count(atomic_uint_fast64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static int conn_interrupted(struct span_conn *c)
{
	return c->interrupt && c->interrupt(c->interrupt_ctx);
}

static int handle_progress(void *arg)
{
	return conn_interrupted(arg);
}

/* A lock on an open partition (the sealer's journal switch, a checkpoint):
 * wait it out in short steps, unless the query is being stopped. */
static int handle_busy(void *arg, int n)
{
	if (conn_interrupted(arg) || n >= SPAN_BUSY_MS / SPAN_BUSY_STEP_MS)
		return 0;
	sqlite3_sleep(SPAN_BUSY_STEP_MS);
	return 1;
}

static void handle_close(struct phandle *h)
{
	struct pstmt *ps, *next;

	for (ps = h->stmts; ps; ps = next) {
		next = ps->next;
		sqlite3_finalize(ps->st);
		sqlite3_free(ps);
	}
	sqlite3_close_v2(h->db);
	sqlite3_free(h);
}

static void list_unlink(struct hlist *l, struct phandle *h)
{
	if (h->prev)
		h->prev->next = h->next;
	else
		l->head = h->next;
	if (h->next)
		h->next->prev = h->prev;
	else
		l->tail = h->prev;
	h->prev = h->next = NULL;
}

static void list_push(struct hlist *l, struct phandle *h)
{
	h->prev = NULL;
	h->next = l->head;
	if (l->head)
		l->head->prev = h;
	else
		l->tail = h;
	l->head = h;
}

static struct phandle **hash_slot(struct span_conn *c, ino_t ino)
{
	return &c->hash[(uint64_t)ino % SPAN_HASH_SIZE];
}

static struct phandle *cache_find(struct span_conn *c, const struct span_part *p)
{
	struct phandle *h;

	for (h = *hash_slot(c, p->ino); h; h = h->hnext)
		if (h->ino == p->ino && h->dev == p->dev && !h->bad && strcmp(h->name, p->name) == 0)
			return h;
	return NULL;
}

static void cache_add(struct span_conn *c, struct phandle *h)
{
	struct phandle **slot = hash_slot(c, h->ino);

	h->cached = 1;
	h->hnext = *slot;
	*slot = h;
	list_push(&c->lru, h);
	c->nhandles++;
}

static void cache_drop(struct span_conn *c, struct phandle *h)
{
	struct phandle **pp;

	for (pp = hash_slot(c, h->ino); *pp; pp = &(*pp)->hnext) {
		if (*pp == h) {
			*pp = h->hnext;
			break;
		}
	}
	list_unlink(&c->lru, h);
	c->nhandles--;
	handle_close(h);
}

/* Close idle cached handles, least recently used first, until at most
 * keep remain. */
static void lru_trim(struct span_conn *c, int keep)
{
	struct phandle *h, *prev;

	for (h = c->lru.tail; h && c->nhandles > keep; h = prev) {
		prev = h->prev;
		if (!h->users)
			cache_drop(c, h);
	}
}

/* Close idle cached handles whose file is no longer in the snapshot (deleted
 * by retention: the handle would keep its disk space) or was replaced. */
static void lru_sweep(struct span_conn *c, const struct span_snap *s)
{
	struct phandle *h, *next;

	pthread_mutex_lock(&c->cache_lock);
	if (c->swept_gen == s->gen) {
		pthread_mutex_unlock(&c->cache_lock);
		return;
	}
	for (h = c->lru.head; h; h = next) {
		const struct span_part *p = snap_find(s, h->name);

		next = h->next;
		if (h->users || (p && p->immutable && p->dev == h->dev && p->ino == h->ino))
			continue;
		cache_drop(c, h);
	}
	c->swept_gen = s->gen;
	pthread_mutex_unlock(&c->cache_lock);
}

/* The handle cache's bound: a share of the descriptors this process may
 * open (each handle holds one), within [64, 1024]. */
static int handles_bound(void)
{
	struct rlimit rl;
	rlim_t n = 1024;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		n = rl.rlim_cur / 16;
	return n < SPAN_HANDLES_MIN ? SPAN_HANDLES_MIN : n > SPAN_HANDLES_MAX ? SPAN_HANDLES_MAX : (int)n;
}

static void conn_free(struct span_conn *c)
{
	struct span_conn **pp;

	pthread_mutex_lock(&registry_lock);
	for (pp = &registry; *pp; pp = &(*pp)->next_registered) {
		if (*pp == c) {
			*pp = c->next_registered;
			break;
		}
	}
	pthread_mutex_unlock(&registry_lock);
	while (c->lru.head)
		cache_drop(c, c->lru.head);
	pthread_mutex_destroy(&c->cache_lock);
	free(c);
}

/* ---- plans: what xBestIndex tells xFilter ----------------------------------------- */

enum { ORDER_NONE = 0, ORDER_ASC = 1, ORDER_DESC = 2 };

struct span_con {
	int col;   /* column; ncols is the hidden "partition" */
	int op;    /* SQLITE_INDEX_CONSTRAINT_* */
	char coll; /* 'B'inary, 'N'ocase, 'R'trim */
	int arg;   /* argv index, -1 for IS NULL / IS NOT NULL */
};

struct span_plan {
	int order;
	uint64_t used;   /* colUsed */
	int limit_arg, offset_arg;
	int ncons;
	struct span_con *cons;
};

static const char *op_sql(int op)
{
	switch (op) {
	case SQLITE_INDEX_CONSTRAINT_EQ: return "=";
	case SQLITE_INDEX_CONSTRAINT_GT: return ">";
	case SQLITE_INDEX_CONSTRAINT_LE: return "<=";
	case SQLITE_INDEX_CONSTRAINT_LT: return "<";
	case SQLITE_INDEX_CONSTRAINT_GE: return ">=";
	case SQLITE_INDEX_CONSTRAINT_NE: return "!=";
	case SQLITE_INDEX_CONSTRAINT_IS: return "IS";
	case SQLITE_INDEX_CONSTRAINT_ISNOT: return "IS NOT";
	case SQLITE_INDEX_CONSTRAINT_ISNULL: return "IS NULL";
	case SQLITE_INDEX_CONSTRAINT_ISNOTNULL: return "IS NOT NULL";
	case SQLITE_INDEX_CONSTRAINT_LIKE: return "LIKE";
	case SQLITE_INDEX_CONSTRAINT_GLOB: return "GLOB";
	default: return NULL;
	}
}

static int op_has_value(int op)
{
	return op != SQLITE_INDEX_CONSTRAINT_ISNULL && op != SQLITE_INDEX_CONSTRAINT_ISNOTNULL;
}

/* Comparisons whose result depends on the collation and on affinity. */
static int op_compares(int op)
{
	return op_has_value(op) && op != SQLITE_INDEX_CONSTRAINT_LIKE &&
	       op != SQLITE_INDEX_CONSTRAINT_GLOB;
}

static int op_range(int op)
{
	return op == SQLITE_INDEX_CONSTRAINT_EQ || op == SQLITE_INDEX_CONSTRAINT_IS ||
	       op == SQLITE_INDEX_CONSTRAINT_GT || op == SQLITE_INDEX_CONSTRAINT_GE ||
	       op == SQLITE_INDEX_CONSTRAINT_LT || op == SQLITE_INDEX_CONSTRAINT_LE;
}

static void plan_clear(struct span_plan *pl)
{
	sqlite3_free(pl->cons);
	memset(pl, 0, sizeof(*pl));
	pl->limit_arg = pl->offset_arg = -1;
}

/* idxStr: "u<colUsed hex>" then ";c,op,coll,arg" per constraint, ";L<arg>",
 * ";O<arg>". Returns SQLITE_OK or SQLITE_ERROR for a string we did not make. */
/* One ";col,op,coll,arg" of idxStr, from s (past the ';'); *end after it. */
static int con_parse(const char *s, char **end, int ncols, struct span_con *k)
{
	k->col = (int)strtol(s, end, 10);
	if (*(*end)++ != ',')
		return SQLITE_ERROR;
	k->op = (int)strtol(*end, end, 10);
	if (*(*end)++ != ',' || !**end)
		return SQLITE_ERROR;
	k->coll = *(*end)++;
	if (*(*end)++ != ',')
		return SQLITE_ERROR;
	k->arg = (int)strtol(*end, end, 10);
	return k->col < 0 || k->col > ncols || !op_sql(k->op) ? SQLITE_ERROR : SQLITE_OK;
}

static int plan_parse(const char *s, int idx_num, int ncols, struct span_plan *pl)
{
	char *end;
	int cap = 0, rc;

	plan_clear(pl);
	pl->order = idx_num & 3;
	if (!s || *s != 'u')
		return SQLITE_ERROR;
	pl->used = strtoull(s + 1, &end, 16);
	for (s = end; *s == ';'; s = end) {
		s++;
		if (*s == 'L' || *s == 'O') {
			*(*s == 'L' ? &pl->limit_arg : &pl->offset_arg) = (int)strtol(s + 1, &end, 10);
			continue;
		}
		if (pl->ncons == cap) {
			void *p = sqlite3_realloc64(pl->cons, sizeof(*pl->cons) * (uint64_t)(cap + 8));

			if (!p)
				return SQLITE_NOMEM;
			pl->cons = p;
			cap += 8;
		}
		if ((rc = con_parse(s, &end, ncols, &pl->cons[pl->ncons++])))
			return rc;
	}
	return *s ? SQLITE_ERROR : SQLITE_OK;
}

/* ---- the virtual tables' objects ------------------------------------------------------ */

struct span_aux {
	struct span_conn *conn;
	const struct span_desc *desc; /* NULL: the partitions table */
};

struct span_vtab {
	sqlite3_vtab base;
	struct span_conn *conn;
	const struct span_desc *desc;
};

/* One partition being read (or counted from its metadata). */
struct stream {
	int cand;               /* index in the cursor's candidates */
	struct phandle *h;
	struct pstmt *ps;       /* NULL when counted */
	uint64_t counted_left;  /* rows still to produce from the metadata */
	int64_t counted_rowid;
	int64_t ts;             /* current row's time, for the merge */
	uint64_t nrows;         /* rows read, added to the counter at release */
};

struct cand {
	size_t part;            /* index in the snapshot */
	const struct partition_meta *meta;
	int64_t ts_min, ts_max; /* of this table */
	int counted;            /* answer from the metadata alone */
	int covered;            /* sealed, inside the time range: SQL_COVERED */
	int ahead;              /* read by the cursor's read-ahead thread */
};

/* What the cursor knows about one snapshot entry for this statement. */
struct part_state {
	int state;              /* PS_* */
	const struct partition_meta *meta;
};

enum { PS_UNKNOWN = 0, PS_READY, PS_GONE, PS_BROKEN };

/*
 * The SQL a partition runs: open partitions are clamped to their metadata's
 * range under ORDER BY (invariant d); a sealed partition that lies inside
 * the time range drops the time constraints (always true there), so it is
 * read by a table scan rather than through its ts index.
 */
enum sql_variant { SQL_SEALED, SQL_OPEN, SQL_COVERED, SQL_VARIANTS };

struct span_cursor {
	sqlite3_vtab_cursor base;
	struct span_vtab *vt;
	struct span_snap *snap;          /* the statement's list of files */
	struct part_state *ps;           /* per snapshot entry */
	struct partition_meta *fresh;    /* re-read metadata of open partitions */
	size_t nfresh;
	struct hlist owned;              /* open partitions' handles */

	/* the plan, parsed once per distinct idxStr */
	char *idx_str;
	int idx_num;
	struct span_plan plan;
	int map[SPAN_MAX_COLS];          /* vtab column -> statement column, or -1 */
	int ts_stmt_col;                 /* the time column in the statement, or -1 */

	/* this xFilter */
	sqlite3_value **args;
	int nargs;
	unsigned char *skip;             /* per constraint: not pushed (value type) */
	char *sql[SQL_VARIANTS];         /* the partition SQL, by enum sql_variant */
	int64_t limit;                   /* rows any one partition may need; -1: all */
	struct cand *cands;
	size_t ncands, next, cap;
	struct stream *streams;          /* one per candidate */
	struct stream **heap;            /* open streams: heap[0] is the current row */
	size_t nheap;

	/* read-ahead (span_ahead.h): the sealed candidates of an unordered scan,
	 * read by a producer thread after the cursor's own streams are done */
	struct ahead *ahead;
	int ahead_on;                    /* the current row is the producer's */
	atomic_size_t ahead_next;        /* producers: next candidate to look at */
	uint64_t ahead_rows;             /* its rows taken, for the counter */
	int ahead_lazy;                  /* start the producers once the first partition has
					    given SPAN_AHEAD_LAZY_ROWS rows (own_rows) */
	uint64_t own_rows;
	size_t skip_cand;                /* producer: of this candidate (taken over from the
					    cursor), the rows the query has had already */
	uint64_t skip_rows;
	int nfilters;                    /* xFilter calls on this cursor */
};

/* ---- the time range of a query ----------------------------------------------------- */

struct trange {
	int64_t lo, hi;
	int empty;
	int inexact; /* widened (a REAL bound): prunes, but does not count */
};

static void trange_init(struct trange *r)
{
	r->lo = INT64_MIN;
	r->hi = INT64_MAX;
	r->empty = 0;
	r->inexact = 0;
}

static void trange_lo(struct trange *r, int64_t v)
{
	if (v > r->lo)
		r->lo = v;
}

static void trange_hi(struct trange *r, int64_t v)
{
	if (v < r->hi)
		r->hi = v;
}

/* ts OP d for a REAL d: the integer bounds, widened by one (conservative). */
static void trange_real(struct trange *r, int op, double d)
{
	const double top = 9.2e18;

	r->inexact = 1;
	switch (op) {
	case SQLITE_INDEX_CONSTRAINT_GT:
	case SQLITE_INDEX_CONSTRAINT_GE:
		if (d >= top)
			r->empty = 1;
		else if (d > -top)
			trange_lo(r, (int64_t)floor(d) - 1);
		break;
	case SQLITE_INDEX_CONSTRAINT_LT:
	case SQLITE_INDEX_CONSTRAINT_LE:
		if (d <= -top)
			r->empty = 1;
		else if (d < top)
			trange_hi(r, (int64_t)ceil(d) + 1);
		break;
	default: /* EQ, IS */
		if (d >= top || d <= -top) {
			r->empty = 1;
		} else {
			trange_lo(r, (int64_t)floor(d) - 1);
			trange_hi(r, (int64_t)ceil(d) + 1);
		}
	}
}

static void trange_int(struct trange *r, int op, int64_t v)
{
	switch (op) {
	case SQLITE_INDEX_CONSTRAINT_GT:
		if (v == INT64_MAX)
			r->empty = 1;
		else
			trange_lo(r, v + 1);
		break;
	case SQLITE_INDEX_CONSTRAINT_GE: trange_lo(r, v); break;
	case SQLITE_INDEX_CONSTRAINT_LT:
		if (v == INT64_MIN)
			r->empty = 1;
		else
			trange_hi(r, v - 1);
		break;
	case SQLITE_INDEX_CONSTRAINT_LE: trange_hi(r, v); break;
	default: /* EQ, IS */
		trange_lo(r, v);
		trange_hi(r, v);
	}
}

/*
 * Narrow r by "time OP v" as SQLite compares an INTEGER column with v:
 * numeric affinity is applied to v first; NULL matches nothing; a value that
 * stays TEXT or BLOB sorts after every number.
 */
static int trange_apply(struct trange *r, int op, sqlite3_value *v)
{
	sqlite3_value *num;
	int type;

	if (!op_range(op))
		return SQLITE_OK;
	if (sqlite3_value_type(v) == SQLITE_NULL) {
		r->empty = 1;
		return SQLITE_OK;
	}
	num = sqlite3_value_dup(v);
	if (!num)
		return SQLITE_NOMEM;
	type = sqlite3_value_numeric_type(num);
	if (type == SQLITE_INTEGER)
		trange_int(r, op, sqlite3_value_int64(num));
	else if (type == SQLITE_FLOAT)
		trange_real(r, op, sqlite3_value_double(num));
	else if (op != SQLITE_INDEX_CONSTRAINT_LT && op != SQLITE_INDEX_CONSTRAINT_LE)
		r->empty = 1; /* every integer is below text and blobs */
	sqlite3_value_free(num);
	if (r->lo > r->hi)
		r->empty = 1;
	return SQLITE_OK;
}

static int trange_overlaps(const struct trange *r, int64_t min, int64_t max)
{
	return !r->empty && min <= r->hi && max >= r->lo;
}

/* ---- handles and statements -------------------------------------------------------- */

static void vtab_error(struct span_vtab *vt, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void vtab_error(struct span_vtab *vt, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sqlite3_free(vt->base.zErrMsg);
	vt->base.zErrMsg = sqlite3_vmprintf(fmt, ap);
	va_end(ap);
}

/* "file:<path, percent-encoded>?<query>" */
static char *file_uri(const char *path, const char *query)
{
	sqlite3_str *s = sqlite3_str_new(NULL);

	sqlite3_str_appendall(s, "file:");
	for (const unsigned char *c = (const unsigned char *)path; *c; c++) {
		if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9') || strchr("/._-+", *c))
			sqlite3_str_appendchar(s, 1, (char)*c);
		else
			sqlite3_str_appendf(s, "%%%02X", *c);
	}
	sqlite3_str_appendf(s, "?%s", query);
	return sqlite3_str_finish(s);
}

/* What opening or reading a partition file came to; positive values are
 * SQLite codes (SQLITE_NOMEM). */
enum { PART_OK = SQLITE_OK, PART_GONE = -1, PART_BROKEN = -2, PART_FAILED = -3 };

static int part_outcome(int rc, const char *path)
{
	struct stat st;

	switch (rc & 0xff) {
	case SQLITE_OK: return PART_OK;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB: return PART_BROKEN;
	case SQLITE_READONLY: return PART_BROKEN; /* needs a recovery only a writer can do */
	case SQLITE_CANTOPEN:
		return stat(path, &st) && errno == ENOENT ? PART_GONE : PART_FAILED;
	default: return PART_FAILED;
	}
}

static int db_open_ro(const char *uri, int immutable, struct span_conn *c, sqlite3 **db)
{
	char pragmas[96];
	int rc = sqlite3_open_v2(uri, db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI |
				 SQLITE_OPEN_NOMUTEX, NULL);

	count(&c->files, 1);
	if (rc != SQLITE_OK)
		return rc;
	sqlite3_extended_result_codes(*db, 1);
	sqlite3_progress_handler(*db, SPAN_PROGRESS_OPS, handle_progress, c);
	if (!immutable)
		sqlite3_busy_handler(*db, handle_busy, c);
	snprintf(pragmas, sizeof(pragmas), "PRAGMA cache_size = -%d%s", SPAN_CACHE_KIB,
		 immutable ? "; BEGIN; SELECT 1 FROM sqlite_schema LIMIT 1" : "");
	return sqlite3_exec(*db, pragmas, NULL, NULL, NULL);
}

/* Open p's file (any thread: touches the cache only under its lock). On
 * PART_FAILED the reason is in msg. */
static int handle_open(struct span_conn *c, const struct span_part *p, struct phandle **out,
		       char *msg, size_t msglen)
{
	struct phandle *h;
	char path[PATH_MAX];
	char *uri;
	int rc;

	if (part_path(c->set, p->name, path, sizeof(path)))
		return PART_BROKEN;
	h = sqlite3_malloc(sizeof(*h));
	uri = file_uri(path, p->immutable ? "immutable=1" : "mode=ro");
	if (!h || !uri) {
		sqlite3_free(h);
		sqlite3_free(uri);
		return SQLITE_NOMEM;
	}
	memset(h, 0, sizeof(*h));
	snprintf(h->name, sizeof(h->name), "%s", p->name);
	h->dev = p->dev;
	h->ino = p->ino;
	rc = db_open_ro(uri, p->immutable, c, &h->db);
	if (rc == SQLITE_CANTOPEN && h->db &&
	    (sqlite3_system_errno(h->db) == EMFILE || sqlite3_system_errno(h->db) == ENFILE)) {
		/* out of descriptors: give back half of ours and try again */
		sqlite3_close_v2(h->db);
		h->db = NULL;
		pthread_mutex_lock(&c->cache_lock);
		lru_trim(c, c->nhandles / 2);
		pthread_mutex_unlock(&c->cache_lock);
		rc = db_open_ro(uri, p->immutable, c, &h->db);
	}
	sqlite3_free(uri);
	if (rc != SQLITE_OK) {
		int outcome = part_outcome(rc, path);

		if (outcome == PART_FAILED)
			snprintf(msg, msglen, "partition %s: %s", p->name,
				 h->db ? sqlite3_errmsg(h->db) : sqlite3_errstr(rc));
		sqlite3_close_v2(h->db);
		sqlite3_free(h);
		return outcome;
	}
	*out = h;
	return PART_OK;
}

/* A handle on p for one stream of the query thread: the connection's
 * cached one for a sealed file (unless a read-ahead thread holds it: then
 * one of the cursor's own), the cursor's own for an open one. */
static int handle_get(struct span_cursor *cur, const struct span_part *p, struct phandle **out)
{
	struct span_conn *c = cur->vt->conn;
	struct phandle *h = NULL;
	char msg[256];
	int rc, held = 0;

	if (p->immutable) {
		pthread_mutex_lock(&c->cache_lock);
		h = cache_find(c, p);
		if (h && !h->excl) {
			list_unlink(&c->lru, h);
			list_push(&c->lru, h);
			h->users++;
			pthread_mutex_unlock(&c->cache_lock);
			*out = h;
			return PART_OK;
		}
		pthread_mutex_unlock(&c->cache_lock);
		held = h != NULL;
		h = NULL;
	} else {
		for (h = cur->owned.head; h; h = h->next)
			if (!h->bad && h->ino == p->ino && strcmp(h->name, p->name) == 0)
				break;
	}
	if (!h) {
		rc = handle_open(c, p, &h, msg, sizeof(msg));
		if (rc == PART_FAILED)
			vtab_error(cur->vt, "%s", msg);
		if (rc != PART_OK)
			return rc;
		if (p->immutable && !held) {
			pthread_mutex_lock(&c->cache_lock);
			cache_add(c, h);
			h->users++;
			pthread_mutex_unlock(&c->cache_lock);
			*out = h;
			return PART_OK;
		}
		list_push(&cur->owned, h);
	}
	h->users++;
	*out = h;
	return PART_OK;
}

static void handle_put(struct span_cursor *cur, struct phandle *h)
{
	struct span_conn *c = cur->vt->conn;

	if (h->cached) {
		pthread_mutex_lock(&c->cache_lock);
		if (--h->users == 0 && h->bad)
			cache_drop(c, h);
		else if (c->nhandles > c->max_handles)
			lru_trim(c, c->max_handles);
		pthread_mutex_unlock(&c->cache_lock);
		return;
	}
	if (--h->users > 0)
		return;
	if (h->bad) {
		list_unlink(&cur->owned, h);
		handle_close(h);
	}
}

/* A read-ahead thread's handle on the sealed p, used by no one else until
 * handle_give: the cached one if it is idle, else (a stream of the query
 * thread reads it) one of its own. */
static int handle_take(struct span_conn *c, const struct span_part *p, struct phandle **out,
		       char *msg, size_t msglen)
{
	struct phandle *h;
	int busy, rc;

	pthread_mutex_lock(&c->cache_lock);
	h = cache_find(c, p);
	busy = h && (h->users || h->excl);
	if (h && !busy) {
		list_unlink(&c->lru, h);
		list_push(&c->lru, h);
		h->users = 1;
		h->excl = 1;
	}
	pthread_mutex_unlock(&c->cache_lock);
	if (h && !busy) {
		*out = h;
		return PART_OK;
	}
	rc = handle_open(c, p, &h, msg, msglen);
	if (rc != PART_OK)
		return rc;
	h->users = 1;
	h->excl = 1;
	if (busy) {
		h->priv = 1;
	} else {
		pthread_mutex_lock(&c->cache_lock);
		cache_add(c, h);
		pthread_mutex_unlock(&c->cache_lock);
	}
	*out = h;
	return PART_OK;
}

static void handle_give(struct span_conn *c, struct phandle *h)
{
	sqlite3_progress_handler(h->db, SPAN_PROGRESS_OPS, handle_progress, c);
	if (h->priv) {
		handle_close(h);
		return;
	}
	pthread_mutex_lock(&c->cache_lock);
	h->excl = 0;
	if (--h->users == 0 && h->bad)
		cache_drop(c, h);
	else if (c->nhandles > c->max_handles)
		lru_trim(c, c->max_handles);
	pthread_mutex_unlock(&c->cache_lock);
}

/* h (in use by the caller) turned out broken or gone: closed when its last
 * user leaves, never found again. Under the cache's lock when cached: the
 * other thread's cache_find reads the flag. */
static void handle_mark_bad(struct span_conn *c, struct phandle *h)
{
	if (h->cached)
		pthread_mutex_lock(&c->cache_lock);
	h->bad = 1;
	if (h->cached)
		pthread_mutex_unlock(&c->cache_lock);
}

/* A statement of sql on h that no stream is reading. */
static int stmt_get(struct phandle *h, const char *sql, struct pstmt **out)
{
	struct pstmt *ps, **pp;
	size_t len = strlen(sql) + 1;
	int rc;

	for (pp = &h->stmts; (ps = *pp); pp = &ps->next) {
		if (!ps->busy && strcmp(ps->sql, sql) == 0) {
			*pp = ps->next; /* to the front */
			ps->next = h->stmts;
			h->stmts = ps;
			ps->busy = 1;
			*out = ps;
			return SQLITE_OK;
		}
	}
	ps = sqlite3_malloc64(sizeof(*ps) + len);
	if (!ps)
		return SQLITE_NOMEM;
	memcpy(ps->sql, sql, len);
	rc = sqlite3_prepare_v3(h->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &ps->st, NULL);
	if (rc != SQLITE_OK) {
		sqlite3_free(ps);
		return rc;
	}
	ps->busy = 1;
	ps->next = h->stmts;
	h->stmts = ps;
	h->nstmts++;
	*out = ps;
	return SQLITE_OK;
}

/* Done reading: reset (ends the read transaction), drop the oldest idle
 * statements past the bound. */
static void stmt_put(struct phandle *h, struct pstmt *ps)
{
	struct pstmt **pp, *p;
	int n = 0;

	sqlite3_reset(ps->st);
	ps->busy = 0;
	for (pp = &h->stmts; (p = *pp);) {
		if (++n > SPAN_STMTS_MAX && !p->busy) {
			*pp = p->next;
			sqlite3_finalize(p->st);
			sqlite3_free(p);
			h->nstmts--;
			continue;
		}
		pp = &p->next;
	}
}

/* ---- streams ------------------------------------------------------------------------ */

static void stream_release(struct span_cursor *cur, struct stream *s)
{
	count(&cur->vt->conn->rows, s->nrows);
	s->nrows = 0;
	if (s->ps)
		stmt_put(s->h, s->ps);
	if (s->h)
		handle_put(cur, s->h);
	s->ps = NULL;
	s->h = NULL;
}

/* A partition statement failed: skip a broken or vanished file, stop on an
 * interrupt, fail the query with the file's name otherwise. Returns
 * SQLITE_DONE to go on without this partition. */
static int stream_fail(struct span_cursor *cur, struct stream *s, int rc)
{
	const struct span_part *p = &cur->snap->parts[cur->cands[s->cand].part];
	char path[PATH_MAX];
	const char *msg = s->h ? sqlite3_errmsg(s->h->db) : sqlite3_errstr(rc);
	int outcome;

	if ((rc & 0xff) == SQLITE_INTERRUPT) {
		vtab_error(cur->vt, "interrupted");
		stream_release(cur, s);
		return SQLITE_INTERRUPT;
	}
	part_path(cur->vt->conn->set, p->name, path, sizeof(path));
	outcome = part_outcome(rc, path);
	if (outcome == PART_FAILED) {
		vtab_error(cur->vt, "partition %s: %s", p->name, msg);
		stream_release(cur, s);
		return rc;
	}
	if (outcome == PART_BROKEN)
		count(&cur->vt->conn->skipped, 1);
	if (s->h)
		handle_mark_bad(cur->vt->conn, s->h);
	stream_release(cur, s);
	return SQLITE_DONE;
}

static int stream_bind(struct span_cursor *cur, const struct cand *c, sqlite3_stmt *st)
{
	int n = sqlite3_bind_parameter_count(st), rc = SQLITE_OK;

	for (int i = 1; rc == SQLITE_OK && i <= n && i <= cur->nargs; i++)
		rc = sqlite3_bind_value(st, i, cur->args[i - 1]);
	if (rc == SQLITE_OK && n >= cur->nargs + 2) {
		rc = sqlite3_bind_int64(st, cur->nargs + 1, c->ts_min);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int64(st, cur->nargs + 2, c->ts_max);
	}
	if (rc == SQLITE_OK && n >= cur->nargs + 3)
		rc = sqlite3_bind_int64(st, cur->nargs + 3, cur->limit);
	return rc;
}

/* Step s to its next row: SQLITE_ROW, SQLITE_DONE (released), or an error. */
static int stream_step(struct span_cursor *cur, struct stream *s)
{
	int rc;

	if (!s->ps) {
		if (s->counted_left == 0) {
			stream_release(cur, s);
			return SQLITE_DONE;
		}
		s->counted_left--;
		s->counted_rowid++;
		return SQLITE_ROW;
	}
	rc = sqlite3_step(s->ps->st);
	if (rc == SQLITE_ROW) {
		s->nrows++;
		if (cur->ts_stmt_col >= 0)
			s->ts = sqlite3_column_int64(s->ps->st, cur->ts_stmt_col);
		return SQLITE_ROW;
	}
	if (rc == SQLITE_DONE) {
		stream_release(cur, s);
		return SQLITE_DONE;
	}
	return stream_fail(cur, s, rc);
}

/* Start reading candidate i: SQLITE_ROW with its first row, SQLITE_DONE if
 * it has none (or was skipped), or an error. */
static int stream_start(struct span_cursor *cur, size_t i)
{
	struct stream *s = &cur->streams[i];
	const struct cand *c = &cur->cands[i];
	const struct span_part *p = &cur->snap->parts[c->part];
	struct span_conn *conn = cur->vt->conn;
	int rc;

	memset(s, 0, sizeof(*s));
	s->cand = (int)i;
	if (conn_interrupted(conn)) {
		vtab_error(cur->vt, "interrupted");
		return SQLITE_INTERRUPT;
	}
	if (c->counted) {
		count(&conn->counted, 1);
		s->counted_left = c->meta->tables[cur->vt->desc->meta].rows;
		return stream_step(cur, s);
	}
	rc = handle_get(cur, p, &s->h);
	if (rc == PART_GONE || rc == PART_BROKEN) {
		if (rc == PART_BROKEN)
			count(&conn->skipped, 1);
		return SQLITE_DONE;
	}
	if (rc != PART_OK)
		return rc == PART_FAILED ? SQLITE_ERROR : rc;
	count(&conn->opened, 1);
	rc = stmt_get(s->h, cur->sql[!p->immutable ? SQL_OPEN : c->covered ? SQL_COVERED : SQL_SEALED],
		      &s->ps);
	if (rc == SQLITE_OK)
		rc = stream_bind(cur, c, s->ps->st);
	if (rc != SQLITE_OK)
		return stream_fail(cur, s, rc);
	return stream_step(cur, s);
}

/* ---- the merge ------------------------------------------------------------------------ */

/* a's row comes before b's in the requested order */
static int stream_before(const struct span_cursor *cur, const struct stream *a,
			 const struct stream *b)
{
	return cur->plan.order == ORDER_DESC ? a->ts > b->ts : a->ts < b->ts;
}

static void heap_down(struct span_cursor *cur, size_t i)
{
	struct stream **h = cur->heap;

	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, best = i;

		if (l < cur->nheap && stream_before(cur, h[l], h[best]))
			best = l;
		if (r < cur->nheap && stream_before(cur, h[r], h[best]))
			best = r;
		if (best == i)
			return;
		struct stream *t = h[i];

		h[i] = h[best];
		h[best] = t;
		i = best;
	}
}

static void heap_push(struct span_cursor *cur, struct stream *s)
{
	size_t i = cur->nheap++;

	cur->heap[i] = s;
	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!stream_before(cur, cur->heap[i], cur->heap[parent]))
			break;
		cur->heap[i] = cur->heap[parent];
		cur->heap[parent] = s;
		i = parent;
	}
}

static void heap_pop(struct span_cursor *cur)
{
	cur->heap[0] = cur->heap[--cur->nheap];
	heap_down(cur, 0);
}

/* Whether candidate c could hold a row before the current head. */
static int cand_may_lead(const struct span_cursor *cur, const struct cand *c)
{
	int64_t head = cur->heap[0]->ts;

	if (cur->plan.order == ORDER_ASC)
		return c->ts_min < head;
	if (cur->plan.order == ORDER_DESC)
		return c->ts_max > head;
	return 0; /* unordered: one partition at a time */
}

/* Open candidates until the head row is final. */
static int cursor_fill(struct span_cursor *cur)
{
	while (cur->next < cur->ncands) {
		int rc;

		if (cur->nheap && !cand_may_lead(cur, &cur->cands[cur->next]))
			break;
		if (cur->cands[cur->next].ahead) {
			cur->next++;
			continue;
		}
		rc = stream_start(cur, cur->next++);
		if (rc == SQLITE_ROW)
			heap_push(cur, &cur->streams[cur->next - 1]);
		else if (rc != SQLITE_DONE)
			return rc;
	}
	return SQLITE_OK;
}

static void cursor_release(struct span_cursor *cur)
{
	ahead_stop(cur->ahead); /* first: its streams are the candidates' */
	cur->ahead = NULL;
	cur->ahead_on = 0;
	count(&cur->vt->conn->rows, cur->ahead_rows);
	cur->ahead_rows = 0;
	for (size_t i = 0; i < cur->nheap; i++)
		stream_release(cur, cur->heap[i]);
	cur->nheap = 0;
	cur->ncands = cur->next = 0;
}

/* ---- xBestIndex ------------------------------------------------------------------------ */

/* What the planner is told a plan costs, in units of "one row read in a
 * partition". Opening a partition statement costs SPAN_COST_PART.
 *
 * The costs favour, for "ts window AND (x = ? OR y = ?)", SQLite's OR plan:
 * it plans each side without the window (3.40 offers an OR branch only its
 * own term), but runs each side with the window ANDed in, through the
 * partitions' indexes — the fast plan. Except when the window is a
 * BETWEEN: its two comparisons are virtual terms, which SQLite does not
 * AND into the branches, so each side probes every partition (docs/sql.md
 * says to write such windows with >= and <). Pricing windows narrow
 * enough to beat the OR plan would make the BETWEEN form safe but the
 * common form 150x slower (measured in bench/query).
 */
#define SPAN_COST_PART 25.0
#define SPAN_COST_OUT 2.0

struct facts {
	int ts_lo, ts_hi, ts_eq;  /* constraint kinds on the time column */
	int known;                /* literal bounds known: lo/hi valid */
	struct trange lit;
	int name_eq;              /* partition = '...' */
	int eq_indexed;           /* = or IS on a column sealed partitions index */
	int eq_other, range_other, like, isnull, other;
};

static void facts_add(struct facts *f, const struct span_desc *d, sqlite3_index_info *info,
		      int i)
{
	const struct sqlite3_index_constraint *k = &info->aConstraint[i];
	int op = k->op;
	sqlite3_value *v = NULL;

	if (k->iColumn == d->ncols) {
		f->name_eq |= op == SQLITE_INDEX_CONSTRAINT_EQ;
		return;
	}
	if (k->iColumn == d->ts_col && op_range(op)) {
		f->ts_eq |= op == SQLITE_INDEX_CONSTRAINT_EQ || op == SQLITE_INDEX_CONSTRAINT_IS;
		f->ts_lo |= op != SQLITE_INDEX_CONSTRAINT_LT && op != SQLITE_INDEX_CONSTRAINT_LE;
		f->ts_hi |= op != SQLITE_INDEX_CONSTRAINT_GT && op != SQLITE_INDEX_CONSTRAINT_GE;
		if (sqlite3_vtab_rhs_value(info, i, &v) == SQLITE_OK && v)
			trange_apply(&f->lit, op, v);
		else
			f->known = -1;
		if (f->known == 0)
			f->known = 1;
		return;
	}
	if (op == SQLITE_INDEX_CONSTRAINT_EQ || op == SQLITE_INDEX_CONSTRAINT_IS) {
		if (d->cols[k->iColumn].indexed)
			f->eq_indexed++;
		else
			f->eq_other++;
	} else if (op_range(op)) {
		f->range_other++;
	} else if (op == SQLITE_INDEX_CONSTRAINT_LIKE || op == SQLITE_INDEX_CONSTRAINT_GLOB) {
		f->like++;
	} else if (!op_has_value(op)) {
		f->isnull++;
	} else {
		f->other++;
	}
}

/* Partitions and rows a time range leaves, from the snapshot. */
static void facts_window(const struct span_snap *s, const struct span_desc *d,
			 const struct facts *f, double *parts, double *rows)
{
	int di = (int)(d - span_descs);
	double P = s ? (double)s->nonempty[di] : 0, N = s ? (double)s->rows[di] : 0;

	if (P < 1)
		P = 1;
	if (N < 1)
		N = 1;
	*parts = P;
	*rows = N;
	if (f->known == 1 && s) {
		*parts = *rows = 0;
		for (size_t i = 0; i < s->n; i++) {
			const struct span_part *p = &s->parts[i];
			const struct partition_meta *m = &p->meta;
			int t = d->meta;

			if (p->has_meta && m->tables[t].rows &&
			    strcmp(p->kind->name, d->kind) == 0 && trange_overlaps(&f->lit, m->tables[t].ts_min, m->tables[t].ts_max)) {
				*parts += 1;
				*rows += (double)m->tables[t].rows;
			}
		}
	} else if (f->ts_eq) {
		*parts = P < 2 ? P : 2;
		*rows = 2;
	} else if (f->ts_lo && f->ts_hi) {
		*parts = 4 + P / 20 < P ? 4 + P / 20 : P;
		*rows = N * *parts / P;
	} else if (f->ts_lo || f->ts_hi) {
		*parts = P / 2 + 1;
		*rows = N / 2;
	}
	if (f->name_eq) {
		*rows /= *parts > 1 ? *parts : 1;
		*parts = 1;
	}
}

static void plan_cost(struct span_vtab *vt, sqlite3_index_info *info, const struct facts *f)
{
	struct span_snap *s = NULL;
	double parts, rows, scanned, out;

	set_snapshot(vt->conn->set, &s); /* no snapshot: estimates from nothing */
	facts_window(s, vt->desc, f, &parts, &rows);
	snap_unref(s);
	scanned = rows;
	if (f->eq_indexed) /* one index probe per partition */
		scanned = rows / 1000 + 1;
	out = scanned;
	for (int i = 0; i < f->eq_other; i++)
		out /= 100;
	for (int i = 0; i < f->range_other; i++)
		out /= 3;
	for (int i = 0; i < f->like; i++)
		out /= 4;
	for (int i = 0; i < f->isnull; i++)
		out /= 2;
	for (int i = 0; i < f->other; i++) /* !=, IS NOT */
		out *= 0.9;
	if (out < 1)
		out = 1;
	info->estimatedRows = (sqlite3_int64)out;
	info->estimatedCost = parts * SPAN_COST_PART + scanned + out * SPAN_COST_OUT;
}

/* The collation a comparison on a TEXT column uses, if a partition has it. */
static char coll_code(sqlite3_index_info *info, int i)
{
	const char *name = sqlite3_vtab_collation(info, i);

	if (!name || sqlite3_stricmp(name, "BINARY") == 0)
		return 'B';
	if (sqlite3_stricmp(name, "NOCASE") == 0)
		return 'N';
	if (sqlite3_stricmp(name, "RTRIM") == 0)
		return 'R';
	return 0;
}

/* Push usable constraint i into the plan when a partition can evaluate it
 * (or, on the hidden name column, when it prunes). */
static void push_constraint(const struct span_desc *d, sqlite3_index_info *info, int i,
			    int *argv, sqlite3_str *s, struct facts *f)
{
	const struct sqlite3_index_constraint *k = &info->aConstraint[i];
	int col = k->iColumn, text;
	char coll = 'B';

	if (col < 0 || col > d->ncols || !op_sql(k->op))
		return;
	text = col == d->ncols || d->cols[col].text;
	if (text && op_compares(k->op) && !(coll = coll_code(info, i)))
		return;
	if (col == d->ncols && (!op_range(k->op) || coll != 'B'))
		return;
	if (op_has_value(k->op)) {
		info->aConstraintUsage[i].argvIndex = ++*argv;
		info->aConstraintUsage[i].omit = !text; /* invariant c */
	}
	sqlite3_str_appendf(s, ";%d,%d,%c,%d", col, k->op, coll, op_has_value(k->op) ? *argv - 1 : -1);
	facts_add(f, d, info, i);
}

static int span_best_index(sqlite3_vtab *base, sqlite3_index_info *info)
{
	struct span_vtab *vt = (struct span_vtab *)base;
	const struct span_desc *d = vt->desc;
	sqlite3_str *s = sqlite3_str_new(NULL);
	int argv = 0, limit = -1, offset = -1, ordered = ORDER_NONE;
	struct facts f;

	memset(&f, 0, sizeof(f));
	trange_init(&f.lit);
	sqlite3_str_appendf(s, "u%llx", (unsigned long long)info->colUsed);
	for (int i = 0; i < info->nConstraint; i++) {
		if (!info->aConstraint[i].usable)
			continue;
		if (info->aConstraint[i].op == SQLITE_INDEX_CONSTRAINT_LIMIT)
			limit = i;
		else if (info->aConstraint[i].op == SQLITE_INDEX_CONSTRAINT_OFFSET)
			offset = i;
		else
			push_constraint(d, info, i, &argv, s, &f);
	}
	if (info->nOrderBy == 1 && info->aOrderBy[0].iColumn == d->ts_col) {
		ordered = info->aOrderBy[0].desc ? ORDER_DESC : ORDER_ASC;
		info->orderByConsumed = 1;
	}
	/* a row cap is only sound when the rows come in the final order; it is
	 * a hint (LIMIT + OFFSET rows per partition): SQLite still applies both */
	if (limit >= 0 && (info->nOrderBy == 0 || ordered)) {
		info->aConstraintUsage[limit].argvIndex = ++argv;
		sqlite3_str_appendf(s, ";L%d", argv - 1);
		if (offset >= 0) {
			info->aConstraintUsage[offset].argvIndex = ++argv;
			sqlite3_str_appendf(s, ";O%d", argv - 1);
		}
	}
	info->idxNum = ordered;
	info->idxStr = sqlite3_str_finish(s);
	if (!info->idxStr)
		return SQLITE_NOMEM;
	info->needToFreeIdxStr = 1;
	plan_cost(vt, info, &f);
	return SQLITE_OK;
}

/* ---- xFilter ------------------------------------------------------------------------------ */

/* Parse a new plan and lay out the statement's columns. */
static int cursor_plan(struct span_cursor *cur, int idx_num, const char *idx_str)
{
	const struct span_desc *d = cur->vt->desc;
	struct span_plan *pl = &cur->plan;
	int rc, k = 1; /* column 0 is the rowid */

	if (cur->idx_str && idx_str && cur->idx_num == idx_num && strcmp(cur->idx_str, idx_str) == 0)
		return SQLITE_OK;
	sqlite3_free(cur->idx_str);
	cur->idx_str = NULL;
	rc = plan_parse(idx_str, idx_num, d->ncols, pl);
	if (rc == SQLITE_ERROR)
		vtab_error(cur->vt, "span: bad plan '%s'", idx_str ? idx_str : "");
	if (rc != SQLITE_OK)
		return rc;
	cur->ts_stmt_col = -1;
	for (int c = 0; c < d->ncols; c++) {
		uint64_t bit = c < 63 ? 1ULL << c : 1ULL << 63;
		int want = (pl->used & bit) || (c == d->ts_col && pl->order);

		cur->map[c] = want ? k++ : -1;
		if (c == d->ts_col)
			cur->ts_stmt_col = cur->map[c];
	}
	cur->idx_num = idx_num;
	cur->idx_str = sqlite3_mprintf("%s", idx_str);
	return cur->idx_str ? SQLITE_OK : SQLITE_NOMEM;
}

/* The SQL of a partition for variant v (see enum sql_variant). */
static char *cursor_sql(const struct span_cursor *cur, enum sql_variant v)
{
	const struct span_desc *d = cur->vt->desc;
	const struct span_plan *pl = &cur->plan;
	sqlite3_str *s = sqlite3_str_new(NULL);
	const char *sep = " WHERE ";

	sqlite3_str_appendall(s, "SELECT rowid");
	for (int c = 0; c < d->ncols; c++)
		if (cur->map[c] >= 0)
			sqlite3_str_appendf(s, ", \"%w\"", d->cols[c].name);
	sqlite3_str_appendf(s, " FROM \"%w\"", d->table);
	for (int i = 0; i < pl->ncons; i++) {
		const struct span_con *k = &pl->cons[i];

		if (k->col == d->ncols || cur->skip[i] ||
		    (v == SQL_COVERED && k->col == d->ts_col && op_range(k->op)))
			continue;
		sqlite3_str_appendf(s, "%s\"%w\"", sep, d->cols[k->col].name);
		if (k->coll != 'B' && op_compares(k->op))
			sqlite3_str_appendall(s, k->coll == 'N' ? " COLLATE NOCASE" : " COLLATE RTRIM");
		sqlite3_str_appendf(s, " %s", op_sql(k->op));
		if (op_has_value(k->op))
			sqlite3_str_appendf(s, " ?%d", k->arg + 1);
		sep = " AND ";
	}
	if (v == SQL_OPEN && pl->order)
		sqlite3_str_appendf(s, "%s\"%w\" BETWEEN ?%d AND ?%d", sep,
				    d->cols[d->ts_col].name, cur->nargs + 1, cur->nargs + 2);
	if (pl->order)
		sqlite3_str_appendf(s, " ORDER BY \"%w\"%s", d->cols[d->ts_col].name,
				    pl->order == ORDER_DESC ? " DESC" : "");
	if (cur->limit >= 0)
		sqlite3_str_appendf(s, " LIMIT ?%d", cur->nargs + 3);
	return sqlite3_str_finish(s);
}

static void cursor_free_args(struct span_cursor *cur)
{
	for (int i = 0; i < cur->nargs; i++)
		sqlite3_value_free(cur->args[i]);
	sqlite3_free(cur->args);
	cur->args = NULL;
	cur->nargs = 0;
	sqlite3_free(cur->skip);
	cur->skip = NULL;
	for (int v = 0; v < SQL_VARIANTS; v++) {
		sqlite3_free(cur->sql[v]);
		cur->sql[v] = NULL;
	}
}

/* argv lives for this call only; partitions are opened later. */
static int cursor_keep_args(struct span_cursor *cur, int argc, sqlite3_value **argv)
{
	cursor_free_args(cur);
	cur->args = sqlite3_malloc64(sizeof(*cur->args) * (uint64_t)(argc + 1));
	cur->skip = sqlite3_malloc64((uint64_t)cur->plan.ncons + 1);
	if (!cur->args || !cur->skip)
		return SQLITE_NOMEM;
	memset(cur->skip, 0, (size_t)cur->plan.ncons + 1);
	for (; cur->nargs < argc; cur->nargs++) {
		cur->args[cur->nargs] = sqlite3_value_dup(argv[cur->nargs]);
		if (!cur->args[cur->nargs])
			return SQLITE_NOMEM;
	}
	return SQLITE_OK;
}

/*
 * p's metadata now, for a file that is not immutable: an open partition's
 * is read again (rows committed a moment ago count); a rollup file's is
 * p's own while the file is in the state it was read in, else the set's
 * cache's or read. *meta points at p->meta or at *fresh. 0, -ENOENT (gone)
 * or another negative errno.
 */
static int part_meta_now(struct span_set *set, const struct span_part *p,
			 struct partition_meta *fresh, const struct partition_meta **meta)
{
	char path[PATH_MAX];
	struct file_key key;
	struct stat st;
	int64_t now;
	int rc, trusted;

	if ((rc = part_path(set, p->name, path, sizeof(path))))
		return rc;
	if (!kind_is_rollup(p->kind)) {
		rc = p->kind->read_meta(path, fresh);
		*meta = fresh;
		return rc;
	}
	now = realtime_ns();
	if (stat(path, &st))
		return -errno;
	key = file_key_of(&st);
	if (p->has_meta && p->key_trusted && file_key_equal(&p->key, &key)) {
		*meta = &p->meta;
		return 0;
	}
	rc = rollup_meta(set, path, p->name, &key, now, fresh, &trusted);
	*meta = fresh;
	return rc;
}

/* Metadata of every entry for this statement: cached for sealed files and
 * unchanged rollup files, read again for the others. */
static int cursor_snapshot(struct span_cursor *cur)
{
	struct span_conn *c = cur->vt->conn;
	size_t nopen = 0, k = 0;
	int rc;

	if (cur->snap)
		return SQLITE_OK;
	rc = set_snapshot(c->set, &cur->snap);
	if (rc) {
		vtab_error(cur->vt, "%s: cannot list partitions: %s", c->set->dir, strerror(-rc));
		return rc == -ENOMEM ? SQLITE_NOMEM : SQLITE_IOERR;
	}
	lru_sweep(c, cur->snap);
	for (size_t i = 0; i < cur->snap->n; i++)
		nopen += !cur->snap->parts[i].immutable;
	cur->ps = sqlite3_malloc64(sizeof(*cur->ps) * (cur->snap->n + 1));
	cur->fresh = sqlite3_malloc64(sizeof(*cur->fresh) * (nopen + 1));
	if (!cur->ps || !cur->fresh)
		return SQLITE_NOMEM;
	memset(cur->ps, 0, sizeof(*cur->ps) * (cur->snap->n + 1));
	for (size_t i = 0; i < cur->snap->n; i++) {
		const struct span_part *p = &cur->snap->parts[i];

		if (p->status == CATALOG_BROKEN) {
			cur->ps[i].state = PS_BROKEN;
		} else if (p->immutable) {
			cur->ps[i].state = PS_READY;
			cur->ps[i].meta = &p->meta;
		} else if (strcmp(p->kind->name, cur->vt->desc->kind) != 0) {
			cur->ps[i].state = PS_GONE; /* another table's file: not read */
		} else {
			const struct partition_meta *m = NULL;

			rc = part_meta_now(c->set, p, &cur->fresh[k], &m);
			cur->ps[i].state = !rc ? PS_READY : rc == -ENOENT ? PS_GONE : PS_BROKEN;
			if (!rc)
				cur->ps[i].meta = m;
			k += m == &cur->fresh[k];
		}
	}
	cur->nfresh = k;
	return SQLITE_OK;
}

/* Time and name constraints of this xFilter. */
struct prune {
	struct trange ts, ts_end;
	const struct span_con *names[8];
	sqlite3_value *name_vals[8];
	int nnames;
	int only_time;  /* every pushed constraint is on a time column or the name */
};

static int cursor_prune_setup(struct span_cursor *cur, struct prune *pr)
{
	const struct span_desc *d = cur->vt->desc;
	int rc = SQLITE_OK;

	trange_init(&pr->ts);
	trange_init(&pr->ts_end);
	pr->nnames = 0;
	pr->only_time = 1;
	for (int i = 0; rc == SQLITE_OK && i < cur->plan.ncons; i++) {
		const struct span_con *k = &cur->plan.cons[i];
		sqlite3_value *v = k->arg >= 0 && k->arg < cur->nargs ? cur->args[k->arg] : NULL;
		int vt = v ? sqlite3_value_type(v) : SQLITE_NULL;

		if (k->col == d->ncols) {
			if (vt == SQLITE_TEXT && pr->nnames < 8) {
				pr->names[pr->nnames] = k;
				pr->name_vals[pr->nnames++] = v;
			}
			continue;
		}
		if (d->cols[k->col].text && op_compares(k->op) &&
		    (vt == SQLITE_INTEGER || vt == SQLITE_FLOAT))
			cur->skip[i] = 1; /* SQLite's affinity rules would differ: it checks */
		if (k->col == d->ts_col && v)
			rc = trange_apply(&pr->ts, k->op, v);
		else if (k->col == d->ts_end_col && v)
			rc = trange_apply(&pr->ts_end, k->op, v);
		if (k->col != d->ts_col)
			pr->only_time = 0;
		else if (!op_range(k->op))
			pr->only_time = 0;
	}
	return rc;
}

static int name_matches(const struct prune *pr, const char *name)
{
	for (int i = 0; i < pr->nnames; i++) {
		int c = strcmp(name, (const char *)sqlite3_value_text(pr->name_vals[i]));

		switch (pr->names[i]->op) {
		case SQLITE_INDEX_CONSTRAINT_EQ:
		case SQLITE_INDEX_CONSTRAINT_IS:
			if (c != 0)
				return 0;
			break;
		case SQLITE_INDEX_CONSTRAINT_GT: if (c <= 0) return 0; break;
		case SQLITE_INDEX_CONSTRAINT_GE: if (c < 0) return 0; break;
		case SQLITE_INDEX_CONSTRAINT_LT: if (c >= 0) return 0; break;
		case SQLITE_INDEX_CONSTRAINT_LE: if (c > 0) return 0; break;
		default: break;
		}
	}
	return 1;
}

/* Whether the metadata answers for p: no column is read, every constraint
 * is on ts and p lies inside the range. */
static int cand_countable(const struct span_cursor *cur, const struct prune *pr,
			  const struct span_part *p, const struct cand *c)
{
	const struct span_desc *d = cur->vt->desc;
	uint64_t cols = cur->plan.used & ~(1ULL << d->ncols);

	return p->immutable && !cur->plan.order && cols == 0 && pr->only_time &&
	       !pr->ts.inexact && c->ts_min >= pr->ts.lo && c->ts_max <= pr->ts.hi;
}

/* Whether p can hold rows of this query (rows, time ranges, name). */
static int cand_wanted(const struct span_cursor *cur, const struct prune *pr,
		       const struct span_part *p, const struct partition_meta *m)
{
	const struct span_desc *d = cur->vt->desc;
	int t = d->meta;

	if (!m->tables[t].rows || !name_matches(pr, p->name))
		return 0;
	if (!trange_overlaps(&pr->ts, m->tables[t].ts_min, m->tables[t].ts_max))
		return 0;
	return d->ts_end_col < 0 ||
	       trange_overlaps(&pr->ts_end, m->tables[t].ts_end_min, m->tables[t].ts_end_max);
}

static int cand_cmp_asc(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->ts_min != y->ts_min)
		return x->ts_min < y->ts_min ? -1 : 1;
	return x->part < y->part ? -1 : x->part > y->part;
}

static int cand_cmp_desc(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->ts_max != y->ts_max)
		return x->ts_max > y->ts_max ? -1 : 1;
	return x->part < y->part ? 1 : x->part > y->part ? -1 : 0;
}

static int cursor_grow(struct span_cursor *cur, size_t n)
{
	void *a, *b, *c;

	if (n <= cur->cap)
		return SQLITE_OK;
	a = sqlite3_realloc64(cur->cands, sizeof(*cur->cands) * n);
	if (a)
		cur->cands = a;
	b = sqlite3_realloc64(cur->streams, sizeof(*cur->streams) * n);
	if (b)
		cur->streams = b;
	c = sqlite3_realloc64(cur->heap, sizeof(*cur->heap) * n);
	if (c)
		cur->heap = c;
	if (!a || !b || !c)
		return SQLITE_NOMEM;
	cur->cap = n;
	return SQLITE_OK;
}

/* The partitions this xFilter reads, pruned and in reading order. */
static int cursor_candidates(struct span_cursor *cur, const struct prune *pr)
{
	const struct span_desc *d = cur->vt->desc;
	struct span_conn *conn = cur->vt->conn;
	uint64_t pruned = 0, skipped = 0;
	int rc = cursor_grow(cur, cur->snap->n + 1);

	if (rc != SQLITE_OK)
		return rc;
	for (size_t i = 0; i < cur->snap->n; i++) {
		const struct span_part *p = &cur->snap->parts[i];
		const struct part_state *st = &cur->ps[i];
		struct cand *c = &cur->cands[cur->ncands];

		if (strcmp(p->kind->name, d->kind) != 0 || st->state == PS_GONE)
			continue;
		if (st->state == PS_BROKEN) {
			skipped++;
			continue;
		}
		if (!cand_wanted(cur, pr, p, st->meta)) {
			pruned++;
			continue;
		}
		c->part = i;
		c->meta = st->meta;
		c->ts_min = st->meta->tables[d->meta].ts_min;
		c->ts_max = st->meta->tables[d->meta].ts_max;
		c->counted = cand_countable(cur, pr, p, c);
		c->covered = p->immutable && !cur->plan.order && !pr->ts.inexact &&
			     c->ts_min >= pr->ts.lo && c->ts_max <= pr->ts.hi;
		c->ahead = 0;
		cur->ncands++;
	}
	count(&conn->pruned, pruned);
	count(&conn->skipped, skipped);
	if (cur->plan.order == ORDER_ASC)
		qsort(cur->cands, cur->ncands, sizeof(*cur->cands), cand_cmp_asc);
	else if (cur->plan.order == ORDER_DESC)
		qsort(cur->cands, cur->ncands, sizeof(*cur->cands), cand_cmp_desc);
	return SQLITE_OK;
}

/* Rows any one partition may have to give: LIMIT + OFFSET, or all. */
static int64_t cursor_limit(const struct span_cursor *cur)
{
	const struct span_plan *pl = &cur->plan;
	int64_t limit, offset = 0;

	if (pl->limit_arg < 0 || pl->limit_arg >= cur->nargs ||
	    sqlite3_value_numeric_type(cur->args[pl->limit_arg]) != SQLITE_INTEGER)
		return -1;
	limit = sqlite3_value_int64(cur->args[pl->limit_arg]);
	if (pl->offset_arg >= 0 && pl->offset_arg < cur->nargs &&
	    sqlite3_value_numeric_type(cur->args[pl->offset_arg]) == SQLITE_INTEGER)
		offset = sqlite3_value_int64(cur->args[pl->offset_arg]);
	if (limit < 0)
		return -1;
	if (offset < 0)
		offset = 0;
	return limit > INT64_MAX - offset ? -1 : limit + offset;
}

/* ---- read-ahead (span_ahead.h) ------------------------------------------------------------ */

static int ahead_close(void *ctx, size_t tag, sqlite3_stmt *st, int rc, char *msg, size_t msglen);

/* Producer thread: the next sealed candidate's statement, on a handle no
 * one else uses. Reads only what xFilter set up and does not change until
 * ahead_stop (snapshot, candidates, SQL, arguments); writes only its
 * candidates' streams and the atomic counters. */
static int ahead_open(void *ctx, struct ahead *a, size_t *tag, sqlite3_stmt **st, char *msg,
		      size_t msglen)
{
	struct span_cursor *cur = ctx;
	struct span_conn *c = cur->vt->conn;

	for (size_t i; (i = atomic_fetch_add(&cur->ahead_next, 1)) < cur->ncands;) {
		const struct cand *cd = &cur->cands[i];
		struct stream *s = &cur->streams[i];
		int rc;

		if (!cd->ahead)
			continue;
		memset(s, 0, sizeof(*s));
		s->cand = (int)i;
		rc = handle_take(c, &cur->snap->parts[cd->part], &s->h, msg, msglen);
		if (rc == PART_GONE || rc == PART_BROKEN) {
			if (rc == PART_BROKEN)
				count(&c->skipped, 1);
			continue;
		}
		if (rc != PART_OK)
			return rc == PART_FAILED ? SQLITE_ERROR : rc;
		count(&c->opened, 1);
		count(&c->ahead, 1);
		sqlite3_progress_handler(s->h->db, SPAN_PROGRESS_OPS, ahead_progress, a);
		rc = stmt_get(s->h, cur->sql[cd->covered ? SQL_COVERED : SQL_SEALED], &s->ps);
		if (rc == SQLITE_OK)
			rc = stream_bind(cur, cd, s->ps->st);
		if (rc != SQLITE_OK) {
			rc = ahead_close(cur, i, NULL, rc, msg, msglen);
			if (rc == SQLITE_DONE)
				continue;
			return rc;
		}
		/* taken over from the cursor: the same statement on an immutable
		 * file gives the same rows in the same order; pass those it had */
		for (uint64_t k = i == cur->skip_cand ? cur->skip_rows : 0; k > 0; k--) {
			rc = sqlite3_step(s->ps->st);
			if (rc != SQLITE_ROW)
				break;
		}
		if (rc != SQLITE_OK && rc != SQLITE_ROW) {
			rc = ahead_close(cur, i, NULL, rc, msg, msglen);
			if (rc == SQLITE_DONE)
				continue;
			return rc;
		}
		*tag = i;
		*st = s->ps->st;
		return SQLITE_OK;
	}
	return SQLITE_DONE;
}

/* Producer thread: done with candidate tag's statement; as stream_fail,
 * a broken or vanished file is left out, any other failure ends the scan. */
static int ahead_close(void *ctx, size_t tag, sqlite3_stmt *st, int rc, char *msg, size_t msglen)
{
	struct span_cursor *cur = ctx;
	struct span_conn *c = cur->vt->conn;
	struct stream *s = &cur->streams[tag];
	const struct span_part *p = &cur->snap->parts[cur->cands[tag].part];
	char path[PATH_MAX];
	int outcome = PART_OK;

	(void)st;
	if ((rc & 0xff) == SQLITE_INTERRUPT) {
		snprintf(msg, msglen, "interrupted");
	} else if (rc != SQLITE_DONE) {
		part_path(c->set, p->name, path, sizeof(path));
		outcome = part_outcome(rc, path);
		if (outcome == PART_FAILED)
			snprintf(msg, msglen, "partition %s: %s", p->name, sqlite3_errmsg(s->h->db));
		else
			handle_mark_bad(c, s->h);
		if (outcome == PART_BROKEN)
			count(&c->skipped, 1);
	}
	if (s->ps)
		stmt_put(s->h, s->ps);
	handle_give(c, s->h);
	s->ps = NULL;
	s->h = NULL;
	return rc == SQLITE_DONE || outcome == PART_GONE || outcome == PART_BROKEN ? SQLITE_DONE
										     : rc;
}

static const struct ahead_ops span_ahead_ops = { ahead_open, ahead_close };

/* Whether this xFilter's unordered scan reads ahead: 2+ sealed partitions
 * holding enough rows by their metadata. */
static int ahead_wanted(struct span_cursor *cur)
{
	uint64_t rows = 0, min = atomic_load(&ahead_min_rows);
	size_t n = 0;

	if (cur->plan.order || cur->limit >= 0 || cur->nfilters > SPAN_AHEAD_FILTERS ||
	    min == UINT64_MAX)
		return 0;
	for (size_t i = 0; i < cur->ncands; i++) {
		const struct cand *c = &cur->cands[i];

		if (cur->snap->parts[c->part].immutable && !c->counted) {
			n++;
			rows += c->meta->tables[cur->vt->desc->meta].rows;
		}
	}
	return n >= 2 && rows >= min;
}

/* Hand the sealed candidates from `from` on to producer threads (if one is
 * free; else the cursor reads them itself); of candidate `from` the first
 * `skip` rows were read already. */
static int cursor_ahead(struct span_cursor *cur, size_t from, uint64_t skip)
{
	const struct span_desc *d = cur->vt->desc;
	size_t n = 0;
	int ncols = 1, rc;

	for (size_t i = from; i < cur->ncands; i++) {
		struct cand *c = &cur->cands[i];

		c->ahead = cur->snap->parts[c->part].immutable && !c->counted;
		n += (size_t)c->ahead;
	}
	for (int c = 0; c < d->ncols; c++)
		ncols += cur->map[c] >= 0;
	atomic_store(&cur->ahead_next, from);
	cur->skip_cand = skip ? from : SIZE_MAX; /* before the producers start */
	cur->skip_rows = skip;
	rc = n ? ahead_start(&span_ahead_ops, cur, ncols, &cur->ahead) : SQLITE_BUSY;
	if (rc != SQLITE_OK) {
		for (size_t i = from; i < cur->ncands; i++)
			cur->cands[i].ahead = 0;
		cur->ahead = NULL;
	}
	return rc == SQLITE_BUSY ? SQLITE_OK : rc;
}

static int cursor_ahead_next(struct span_cursor *cur);

/* The lazy start: s (the cursor's only stream, on a sealed partition,
 * positioned on a row SQLite has not seen yet) and the candidates after it
 * go to producers; they read s's partition again and pass the rows SQLite
 * already had. */
static int cursor_take_over(struct span_cursor *cur, struct stream *s)
{
	size_t from = (size_t)s->cand;
	uint64_t seen = s->nrows - 1;
	int rc;

	s->nrows--; /* the current row is counted again by its new reader */
	stream_release(cur, s);
	heap_pop(cur);
	rc = cursor_ahead(cur, from, seen);
	if (rc == SQLITE_OK && !cur->ahead) {
		/* no producer free: read it here again, passing the rows seen */
		cur->next = from;
		rc = cursor_fill(cur);
		for (uint64_t k = 0; rc == SQLITE_OK && cur->nheap && k < seen; k++) {
			rc = stream_step(cur, cur->heap[0]);
			if (rc == SQLITE_ROW) {
				rc = SQLITE_OK;
			} else if (rc == SQLITE_DONE) {
				heap_pop(cur);
				rc = SQLITE_OK;
				break;
			}
		}
		if (rc == SQLITE_OK && !cur->nheap)
			rc = cursor_fill(cur);
		return rc;
	}
	if (rc == SQLITE_OK)
		rc = cursor_fill(cur);
	if (rc == SQLITE_OK && !cur->nheap && cur->ahead)
		rc = cursor_ahead_next(cur);
	return rc;
}

/* The producer's next row, once the cursor's own streams are done. */
static int cursor_ahead_next(struct span_cursor *cur)
{
	int rc = ahead_next(cur->ahead, handle_progress, cur->vt->conn);
	const char *msg;

	if (rc == SQLITE_ROW) {
		cur->ahead_on = 1;
		cur->ahead_rows++;
		return SQLITE_OK;
	}
	cur->ahead_on = 0;
	if (rc != SQLITE_DONE) {
		msg = ahead_error(cur->ahead);
		if ((rc & 0xff) == SQLITE_INTERRUPT || !msg)
			msg = (rc & 0xff) == SQLITE_INTERRUPT ? "interrupted" : sqlite3_errstr(rc);
		vtab_error(cur->vt, "%s", msg);
	}
	ahead_stop(cur->ahead);
	cur->ahead = NULL;
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int span_filter(sqlite3_vtab_cursor *base, int idx_num, const char *idx_str, int argc,
		       sqlite3_value **argv)
{
	struct span_cursor *cur = (struct span_cursor *)base;
	struct prune pr;
	int rc;

	cur->nfilters++;
	cursor_release(cur);
	rc = cursor_plan(cur, idx_num, idx_str);
	if (rc == SQLITE_OK)
		rc = cursor_keep_args(cur, argc, argv);
	if (rc == SQLITE_OK)
		rc = cursor_snapshot(cur);
	if (rc == SQLITE_OK)
		rc = cursor_prune_setup(cur, &pr);
	if (rc != SQLITE_OK)
		return rc;
	cur->limit = cursor_limit(cur);
	for (int v = 0; v < SQL_VARIANTS; v++)
		if (!(cur->sql[v] = cursor_sql(cur, (enum sql_variant)v)))
			return SQLITE_NOMEM;
	rc = cursor_candidates(cur, &pr);
	cur->ahead_lazy = 0;
	cur->own_rows = 0;
	if (rc == SQLITE_OK && ahead_wanted(cur)) {
		if (pr.only_time)
			rc = cursor_ahead(cur, 0, 0);
		else
			cur->ahead_lazy = 1;
	}
	if (rc == SQLITE_OK)
		rc = cursor_fill(cur);
	if (rc == SQLITE_OK && !cur->nheap && cur->ahead)
		rc = cursor_ahead_next(cur);
	return rc;
}

static int span_next(sqlite3_vtab_cursor *base)
{
	struct span_cursor *cur = (struct span_cursor *)base;
	struct stream *s;
	int rc;

	if (cur->ahead_on)
		return cursor_ahead_next(cur);
	s = cur->heap[0];
	rc = stream_step(cur, s);
	if (rc == SQLITE_ROW) {
		if (cur->ahead_lazy && ++cur->own_rows >= SPAN_AHEAD_LAZY_ROWS &&
		    cur->snap->parts[cur->cands[s->cand].part].immutable) {
			/* a big one after all: this partition, from its current row
			 * on, and the ones not started yet go to the producers */
			cur->ahead_lazy = 0;
			return cursor_take_over(cur, s);
		}
		if (!cur->plan.order)
			return SQLITE_OK; /* one partition at a time: still this one */
		heap_down(cur, 0);
	} else if (rc == SQLITE_DONE) {
		heap_pop(cur);
	} else {
		return rc;
	}
	rc = cursor_fill(cur);
	if (rc == SQLITE_OK && !cur->nheap && cur->ahead)
		rc = cursor_ahead_next(cur);
	return rc;
}

static int span_eof(sqlite3_vtab_cursor *base)
{
	const struct span_cursor *cur = (const struct span_cursor *)base;

	return cur->nheap == 0 && !cur->ahead_on;
}

static int span_column(sqlite3_vtab_cursor *base, sqlite3_context *ctx, int col)
{
	struct span_cursor *cur = (struct span_cursor *)base;
	const struct stream *s;
	int k;

	if (cur->ahead_on) {
		size_t tag = ahead_tag(cur->ahead);

		k = col >= 0 && col < cur->vt->desc->ncols ? cur->map[col] : -1;
		if (col == cur->vt->desc->ncols)
			sqlite3_result_text(ctx, cur->snap->parts[cur->cands[tag].part].name, -1,
					    SQLITE_TRANSIENT);
		else if (k >= 0)
			ahead_result(cur->ahead, ctx, k);
		return SQLITE_OK;
	}
	s = cur->heap[0];
	if (col == cur->vt->desc->ncols) {
		const struct span_part *p = &cur->snap->parts[cur->cands[s->cand].part];

		sqlite3_result_text(ctx, p->name, -1, SQLITE_TRANSIENT);
		return SQLITE_OK;
	}
	k = col >= 0 && col < cur->vt->desc->ncols ? cur->map[col] : -1;
	if (k < 0 || !s->ps)
		return SQLITE_OK; /* a column SQLite said it would not use: NULL */
	sqlite3_result_value(ctx, sqlite3_column_value(s->ps->st, k));
	return SQLITE_OK;
}

static int span_rowid(sqlite3_vtab_cursor *base, sqlite3_int64 *rowid)
{
	struct span_cursor *cur = (struct span_cursor *)base;
	const struct stream *s = cur->heap[0];
	int64_t part, r;

	if (cur->ahead_on) {
		part = (int64_t)cur->cands[ahead_tag(cur->ahead)].part + 1;
		r = ahead_int(cur->ahead, 0);
	} else {
		part = (int64_t)cur->cands[s->cand].part + 1;
		r = s->ps ? sqlite3_column_int64(s->ps->st, 0) : s->counted_rowid;
	}

	*rowid = part << SPAN_ROWID_SHIFT | (r & ((1LL << SPAN_ROWID_SHIFT) - 1));
	return SQLITE_OK;
}

/* ---- connect, open, close ------------------------------------------------------------------- */

static char *declare_sql(const struct span_desc *d)
{
	sqlite3_str *s = sqlite3_str_new(NULL);

	sqlite3_str_appendall(s, "CREATE TABLE x(");
	for (int c = 0; c < d->ncols; c++)
		sqlite3_str_appendf(s, "\"%w\" %s, ", d->cols[c].name, d->cols[c].decl);
	sqlite3_str_appendall(s, "partition TEXT HIDDEN)");
	return sqlite3_str_finish(s);
}

static const char partitions_decl[] =
	"CREATE TABLE x(name TEXT, kind TEXT, status TEXT, period_start INTEGER,"
	" period_end INTEGER, seq INTEGER, created INTEGER, sealed_at INTEGER,"
	" ts_min INTEGER, ts_max INTEGER, flows INTEGER, connections INTEGER,"
	" tcp_states INTEGER, bytes INTEGER, error TEXT, rows INTEGER, rolled_up INTEGER,"
	" rolled_from TEXT)";

static int span_connect(sqlite3 *db, void *aux_arg, int argc, const char *const *argv,
			sqlite3_vtab **out, char **err)
{
	const struct span_aux *aux = aux_arg;
	struct span_vtab *vt;
	char *decl = aux->desc ? declare_sql(aux->desc) : NULL;
	int rc;

	(void)argc, (void)argv;
	if (aux->desc && !decl)
		return SQLITE_NOMEM;
	rc = sqlite3_declare_vtab(db, decl ? decl : partitions_decl);
	sqlite3_free(decl);
	if (rc != SQLITE_OK) {
		*err = sqlite3_mprintf("span: %s", sqlite3_errmsg(db));
		return rc;
	}
	vt = sqlite3_malloc(sizeof(*vt));
	if (!vt)
		return SQLITE_NOMEM;
	memset(vt, 0, sizeof(*vt));
	vt->conn = aux->conn;
	vt->desc = aux->desc;
	*out = &vt->base;
	return SQLITE_OK;
}

static int span_disconnect(sqlite3_vtab *base)
{
	sqlite3_free(base);
	return SQLITE_OK;
}

static int span_open(sqlite3_vtab *base, sqlite3_vtab_cursor **out)
{
	struct span_cursor *cur = sqlite3_malloc(sizeof(*cur));

	if (!cur)
		return SQLITE_NOMEM;
	memset(cur, 0, sizeof(*cur));
	cur->vt = (struct span_vtab *)base;
	plan_clear(&cur->plan);
	*out = &cur->base;
	return SQLITE_OK;
}

static int span_close(sqlite3_vtab_cursor *base)
{
	struct span_cursor *cur = (struct span_cursor *)base;

	cursor_release(cur);
	while (cur->owned.head) {
		struct phandle *h = cur->owned.head;

		list_unlink(&cur->owned, h);
		handle_close(h);
	}
	cursor_free_args(cur);
	plan_clear(&cur->plan);
	sqlite3_free(cur->idx_str);
	sqlite3_free(cur->cands);
	sqlite3_free(cur->streams);
	sqlite3_free(cur->heap);
	sqlite3_free(cur->ps);
	sqlite3_free(cur->fresh);
	snap_unref(cur->snap);
	sqlite3_free(cur);
	return SQLITE_OK;
}

/* ---- the partitions table ------------------------------------------------------------------- */

enum {
	PC_NAME, PC_KIND, PC_STATUS, PC_PERIOD_START, PC_PERIOD_END, PC_SEQ, PC_CREATED,
	PC_SEALED_AT, PC_TS_MIN, PC_TS_MAX, PC_FLOWS, PC_CONNECTIONS, PC_TCP_STATES, PC_BYTES,
	PC_ERROR, PC_ROWS, PC_ROLLED_UP, PC_ROLLED_FROM,
};

struct prow {
	const struct span_part *p;
	struct partition_meta meta;
	int has_meta;
	int64_t bytes;
	int rolled_up;            /* raw: -1 unknown, 0, 1 */
	char rolled_from[SCHEMA_NAME_LEN]; /* rollup files: the oldest raw partition in it */
	char error[160];
};

struct parts_cursor {
	sqlite3_vtab_cursor base;
	struct span_vtab *vt;
	struct span_snap *snap;
	struct prow *rows;
	size_t n, i;
};

static int parts_best_index(sqlite3_vtab *base, sqlite3_index_info *info)
{
	(void)base;
	info->estimatedCost = 100;
	info->estimatedRows = 100;
	return SQLITE_OK;
}

static int64_t file_bytes(const char *path)
{
	char wal[PATH_MAX + 8];
	struct stat st;
	int64_t n = 0;

	if (stat(path, &st) == 0)
		n += st.st_size;
	snprintf(wal, sizeof(wal), "%s-wal", path);
	if (stat(wal, &st) == 0)
		n += st.st_size;
	return n;
}

/* One row: metadata cached for sealed files and unchanged rollup files,
 * read now for the others. Returns 1 to list it, 0 when the file is gone. */
static int prow_fill(struct span_set *set, const struct span_part *p, struct prow *r)
{
	const struct partition_meta *m = NULL;
	char path[PATH_MAX];
	int rc;

	memset(r, 0, sizeof(*r));
	r->p = p;
	r->rolled_up = -1;
	if (part_path(set, p->name, path, sizeof(path)))
		return 0;
	snprintf(r->error, sizeof(r->error), "%s", p->error);
	if (p->immutable) {
		r->meta = p->meta;
		r->has_meta = 1;
	} else if (p->status != CATALOG_BROKEN) {
		rc = part_meta_now(set, p, &r->meta, &m);
		if (rc == -ENOENT)
			return 0;
		if (!rc && m != &r->meta)
			r->meta = *m;
		r->has_meta = rc == 0;
		snprintf(r->error, sizeof(r->error), "%s", rc ? schema_last_error() : "");
	}
	r->bytes = file_bytes(path);
	return 1;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Load the marks of the rollup file of row r into its cache entry if they
 * are not; 1 if they are there. Under rollup_lock; may move the entries. */
static int prow_marks(struct span_set *set, const struct prow *r)
{
	char path[PATH_MAX];
	struct rollup_info *e;
	struct file_key key;
	struct stat st;
	int64_t now = realtime_ns();

	if (part_path(set, r->p->name, path, sizeof(path)) || stat(path, &st))
		return 0;
	key = file_key_of(&st);
	e = rollup_entry(set, r->p->name, &key);
	if (!e)
		return 0;
	if (!e->has_sources) {
		e->has_sources = rollup_file_sources(path, &e->sources, &e->nsources) == 0;
		if (!e->has_meta) /* a new entry: its trust is this read's */
			e->trusted = file_key_trusted(&key, now);
	}
	return e->has_sources;
}

/* Does the listed rollup file `name` (its marks loaded: marks[j]) mark raw
 * partition `source`? */
static int rollup_marks(const struct prow *rows, const struct rollup_info *const *marks,
			size_t n, const char *name, const char *source)
{
	for (size_t j = 0; j < n; j++)
		if (marks[j] && !strcmp(rows[j].p->name, name))
			return marks[j]->nsources &&
			       bsearch(source, marks[j]->sources, marks[j]->nsources,
				       sizeof(marks[j]->sources[0]), name_cmp) != NULL;
	return 0;
}

/* Every rollup target of a raw partition marks it: the 1m and 1h files of
 * each period its flows and connections fall in (schema.h,
 * rollup_source_span; retention's rule), or it has none to roll up. */
static int raw_rolled_up(const struct prow *rows, const struct rollup_info *const *marks,
			 size_t n, const char *source, const struct partition_meta *m)
{
	static const enum schema_kind kinds[] = { SCHEMA_KIND_1M, SCHEMA_KIND_1H };
	char name[SCHEMA_NAME_LEN];
	int64_t lo = 0, hi = 0, start, end;
	uint64_t nrows;

	if (!rollup_source_span(m, &lo, &hi, &nrows))
		return 1;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		for (int64_t at = lo;; at = end) {
			if (rollup_name_format(name, sizeof(name), kinds[i], at) ||
			    !rollup_marks(rows, marks, n, name, source))
				return 0;
			rollup_period(kinds[i], at, &start, &end);
			if (end > hi || end == INT64_MAX)
				break;
		}
	return 1;
}

/*
 * rolled_up of the raw rows, rolled_from of the rollup rows, from the
 * rollup files' marks (raw_rolled_up).
 */
static void parts_rolled(struct span_set *set, struct prow *rows, size_t n)
{
	const struct rollup_info **marks = calloc(n + 1, sizeof(*marks));

	if (!marks)
		return; /* left unknown (NULL) */
	pthread_mutex_lock(&set->rollup_lock);
	for (size_t i = 0; i < n; i++)
		if (kind_is_rollup(rows[i].p->kind) && rows[i].p->status != CATALOG_BROKEN)
			rows[i].rolled_up = prow_marks(set, &rows[i]); /* 1: loaded */
	for (size_t i = 0; i < n; i++) { /* every entry in place now: point at them */
		int found;
		size_t k;

		if (!kind_is_rollup(rows[i].p->kind) || rows[i].rolled_up != 1)
			continue;
		rows[i].rolled_up = -1;
		k = rollup_find(set, rows[i].p->name, &found);
		marks[i] = found ? &set->rollups[k] : NULL;
		if (marks[i] && marks[i]->nsources)
			snprintf(rows[i].rolled_from, sizeof(rows[i].rolled_from), "%s",
				 marks[i]->sources[0]);
	}
	for (size_t i = 0; i < n; i++)
		if (!kind_is_rollup(rows[i].p->kind) && rows[i].has_meta)
			rows[i].rolled_up = raw_rolled_up(rows, marks, n, rows[i].p->name,
							  &rows[i].meta);
	pthread_mutex_unlock(&set->rollup_lock);
	free(marks);
}

static int parts_filter(sqlite3_vtab_cursor *base, int idx_num, const char *idx_str, int argc,
			sqlite3_value **argv)
{
	struct parts_cursor *cur = (struct parts_cursor *)base;
	struct span_set *set = cur->vt->conn->set;
	int rc;

	(void)idx_num, (void)idx_str, (void)argc, (void)argv;
	cur->n = cur->i = 0;
	if (!cur->snap && (rc = set_snapshot(set, &cur->snap))) {
		vtab_error(cur->vt, "%s: cannot list partitions: %s", set->dir, strerror(-rc));
		return rc == -ENOMEM ? SQLITE_NOMEM : SQLITE_IOERR;
	}
	if (!cur->rows) {
		cur->rows = sqlite3_malloc64(sizeof(*cur->rows) * (cur->snap->n + 1));
		if (!cur->rows)
			return SQLITE_NOMEM;
	}
	for (size_t i = 0; i < cur->snap->n; i++)
		cur->n += (size_t)prow_fill(set, &cur->snap->parts[i], &cur->rows[cur->n]);
	parts_rolled(set, cur->rows, cur->n);
	return SQLITE_OK;
}

static int parts_next(sqlite3_vtab_cursor *base)
{
	((struct parts_cursor *)base)->i++;
	return SQLITE_OK;
}

static int parts_eof(sqlite3_vtab_cursor *base)
{
	const struct parts_cursor *cur = (const struct parts_cursor *)base;

	return cur->i >= cur->n;
}

/* A rollup file that can be read is 'rollup' (it is never sealed: every
 * raw partition rolled up adds to it). */
static const char *status_name(const struct span_part *p)
{
	if (p->status == CATALOG_BROKEN)
		return "broken";
	if (kind_is_rollup(p->kind))
		return "rollup";
	return p->status == CATALOG_SEALED ? "sealed" : "open";
}

/* min of ts_min and max of ts_max over the tables that have rows */
static int prow_range(const struct prow *r, int64_t *min, int64_t *max)
{
	int any = 0;

	for (int t = 0; r->has_meta && t < SCHEMA_NTABLES; t++) {
		if (!r->meta.tables[t].rows)
			continue;
		if (!any || r->meta.tables[t].ts_min < *min)
			*min = r->meta.tables[t].ts_min;
		if (!any || r->meta.tables[t].ts_max > *max)
			*max = r->meta.tables[t].ts_max;
		any = 1;
	}
	return any;
}

static enum schema_table prow_table(int col)
{
	return col == PC_FLOWS ? SCHEMA_FLOWS : col == PC_CONNECTIONS ? SCHEMA_CONNECTIONS
								 : SCHEMA_TCP_STATES;
}

static void result_meta(sqlite3_context *ctx, const struct prow *r, int col)
{
	const struct partition_meta *m = &r->meta;
	int64_t min = 0, max = 0;

	if (!r->has_meta)
		return; /* NULL */
	switch (col) {
	case PC_PERIOD_END: sqlite3_result_int64(ctx, m->period_end_ns); break;
	case PC_CREATED: sqlite3_result_int64(ctx, m->created_ns); break;
	case PC_SEALED_AT:
		if (m->sealed)
			sqlite3_result_int64(ctx, m->sealed_ns);
		break;
	case PC_TS_MIN:
	case PC_TS_MAX:
		if (prow_range(r, &min, &max))
			sqlite3_result_int64(ctx, col == PC_TS_MIN ? min : max);
		break;
	case PC_FLOWS:
	case PC_CONNECTIONS:
	case PC_TCP_STATES:
		/* a rollup file has none of these tables: NULL */
		if (!kind_is_rollup(r->p->kind))
			sqlite3_result_int64(ctx, (int64_t)m->tables[prow_table(col)].rows);
		break;
	case PC_ROWS: {
		uint64_t n = 0;

		for (int t = 0; t < SCHEMA_NTABLES; t++)
			n += m->tables[t].rows;
		sqlite3_result_int64(ctx, (int64_t)n);
		break;
	}
	default: break;
	}
}

static int parts_column(sqlite3_vtab_cursor *base, sqlite3_context *ctx, int col)
{
	const struct parts_cursor *cur = (const struct parts_cursor *)base;
	const struct prow *r = &cur->rows[cur->i];

	switch (col) {
	case PC_NAME: sqlite3_result_text(ctx, r->p->name, -1, SQLITE_TRANSIENT); break;
	case PC_KIND: sqlite3_result_text(ctx, r->p->kind->name, -1, SQLITE_STATIC); break;
	case PC_STATUS: sqlite3_result_text(ctx, status_name(r->p), -1, SQLITE_STATIC); break;
	case PC_PERIOD_START: sqlite3_result_int64(ctx, r->p->period_start); break;
	case PC_SEQ: sqlite3_result_int64(ctx, r->p->seq); break;
	case PC_BYTES: sqlite3_result_int64(ctx, r->bytes); break;
	case PC_ERROR:
		if (r->error[0])
			sqlite3_result_text(ctx, r->error, -1, SQLITE_TRANSIENT);
		break;
	case PC_ROLLED_UP:
		if (r->rolled_up >= 0 && !kind_is_rollup(r->p->kind))
			sqlite3_result_int(ctx, r->rolled_up);
		break;
	case PC_ROLLED_FROM:
		if (r->rolled_from[0])
			sqlite3_result_text(ctx, r->rolled_from, -1, SQLITE_TRANSIENT);
		break;
	default: result_meta(ctx, r, col); break;
	}
	return SQLITE_OK;
}

static int parts_rowid(sqlite3_vtab_cursor *base, sqlite3_int64 *rowid)
{
	*rowid = (sqlite3_int64)((struct parts_cursor *)base)->i + 1;
	return SQLITE_OK;
}

static int parts_open(sqlite3_vtab *base, sqlite3_vtab_cursor **out)
{
	struct parts_cursor *cur = sqlite3_malloc(sizeof(*cur));

	if (!cur)
		return SQLITE_NOMEM;
	memset(cur, 0, sizeof(*cur));
	cur->vt = (struct span_vtab *)base;
	*out = &cur->base;
	return SQLITE_OK;
}

static int parts_close(sqlite3_vtab_cursor *base)
{
	struct parts_cursor *cur = (struct parts_cursor *)base;

	sqlite3_free(cur->rows);
	snap_unref(cur->snap);
	sqlite3_free(cur);
	return SQLITE_OK;
}

/* ---- span_count(): counting without stepping rows ----------------------------------------- */

/*
 * span_count(table, op, value, op, value, ...): the rows of a spanning table
 * whose ts satisfies every "ts op value" (op one of =, <, <=, >, >=), i.e.
 * SELECT count(*) FROM table WHERE ts op value AND ..., answered as a cursor
 * of the table would, without handing SQLite a row per row: a sealed
 * partition inside the range counts from its metadata (cand_countable),
 * pruned ones are not opened, and every other partition (boundary, open,
 * REAL bounds) runs count(*) with the same constraints on its ts index.
 * count_fast.c rewrites trivial count queries into a call of it.
 */
static int count_op(const char *s)
{
	static const struct { const char *sql; int op; } ops[] = {
		{ "=", SQLITE_INDEX_CONSTRAINT_EQ }, { "<", SQLITE_INDEX_CONSTRAINT_LT },
		{ "<=", SQLITE_INDEX_CONSTRAINT_LE }, { ">", SQLITE_INDEX_CONSTRAINT_GT },
		{ ">=", SQLITE_INDEX_CONSTRAINT_GE },
	};

	for (size_t i = 0; s && i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strcmp(s, ops[i].sql) == 0)
			return ops[i].op;
	return 0;
}

/* "SELECT count(*) FROM t WHERE ts op ?1 AND ..." for the plan's constraints. */
static char *count_sql(const struct span_cursor *cur)
{
	const struct span_desc *d = cur->vt->desc;
	sqlite3_str *s = sqlite3_str_new(NULL);

	sqlite3_str_appendf(s, "SELECT count(*) FROM \"%w\"", d->table);
	for (int i = 0; i < cur->plan.ncons; i++)
		sqlite3_str_appendf(s, "%s\"%w\" %s ?%d", i ? " AND " : " WHERE ",
				    d->cols[d->ts_col].name, op_sql(cur->plan.cons[i].op),
				    cur->plan.cons[i].arg + 1);
	return sqlite3_str_finish(s);
}

/* Count candidate i by running sql on its file: adds to *n, or SQLITE_DONE
 * when the file is gone or broken (left out, as a cursor does). */
static int count_part(struct span_cursor *cur, size_t i, const char *sql, int64_t *n)
{
	struct stream *s = &cur->streams[i];
	const struct span_part *p = &cur->snap->parts[cur->cands[i].part];
	int rc;

	memset(s, 0, sizeof(*s));
	s->cand = (int)i;
	rc = handle_get(cur, p, &s->h);
	if (rc == PART_GONE || rc == PART_BROKEN) {
		if (rc == PART_BROKEN)
			count(&cur->vt->conn->skipped, 1);
		return SQLITE_DONE;
	}
	if (rc != PART_OK)
		return rc == PART_FAILED ? SQLITE_ERROR : rc;
	count(&cur->vt->conn->opened, 1);
	rc = stmt_get(s->h, sql, &s->ps);
	if (rc == SQLITE_OK)
		rc = stream_bind(cur, &cur->cands[i], s->ps->st);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s->ps->st);
	if (rc == SQLITE_ROW) {
		*n += sqlite3_column_int64(s->ps->st, 0);
		stream_release(cur, s);
		return SQLITE_OK;
	}
	return stream_fail(cur, s, rc == SQLITE_DONE ? SQLITE_CORRUPT : rc);
}

/* The count on an xFilter-ready cursor whose plan holds only ts constraints. */
static int count_cursor(struct span_cursor *cur, int64_t *n)
{
	struct prune pr;
	char *sql;
	int rc = cursor_snapshot(cur);

	if (rc == SQLITE_OK)
		rc = cursor_prune_setup(cur, &pr);
	if (rc == SQLITE_OK)
		rc = cursor_candidates(cur, &pr);
	if (rc != SQLITE_OK)
		return rc;
	if (!(sql = count_sql(cur)))
		return SQLITE_NOMEM;
	*n = 0;
	for (size_t i = 0; rc == SQLITE_OK && i < cur->ncands; i++) {
		const struct cand *c = &cur->cands[i];

		if (conn_interrupted(cur->vt->conn)) {
			vtab_error(cur->vt, "interrupted");
			rc = SQLITE_INTERRUPT;
		} else if (c->counted) {
			count(&cur->vt->conn->counted, 1);
			*n += (int64_t)c->meta->tables[cur->vt->desc->meta].rows;
		} else {
			rc = count_part(cur, i, sql, n);
			if (rc == SQLITE_DONE)
				rc = SQLITE_OK;
		}
	}
	cur->ncands = cur->next = 0;
	sqlite3_free(sql);
	return rc;
}

static void span_count_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	struct span_conn *c = sqlite3_user_data(ctx);
	struct span_vtab vt;
	sqlite3_vtab_cursor *base = NULL;
	struct span_cursor *cur;
	const char *name = argc > 0 ? (const char *)sqlite3_value_text(argv[0]) : NULL;
	int64_t n = 0;
	int rc;

	memset(&vt, 0, sizeof(vt));
	vt.conn = c;
	for (int i = 0; name && i < NDESCS; i++)
		if (sqlite3_stricmp(name, span_descs[i].name) == 0)
			vt.desc = &span_descs[i];
	if (argc < 1 || argc % 2 == 0) {
		sqlite3_result_error(ctx, "span_count(table, op, value, ...): a table name, then "
				     "pairs of an operator and a value", -1);
		return;
	}
	if (!vt.desc) {
		char *msg = sqlite3_mprintf("span_count: no such table: %s (flows, connections, "
					    "tcp_states, flows_1m or flows_1h)",
					    name ? name : "NULL");

		sqlite3_result_error(ctx, msg ? msg : "span_count: no such table", -1);
		sqlite3_free(msg);
		return;
	}
	if ((rc = span_open(&vt.base, &base)) != SQLITE_OK) {
		sqlite3_result_error_code(ctx, rc);
		return;
	}
	cur = (struct span_cursor *)base;
	cur->plan.cons = sqlite3_malloc64(sizeof(*cur->plan.cons) * (uint64_t)(argc / 2 + 1));
	rc = cur->plan.cons ? SQLITE_OK : SQLITE_NOMEM;
	for (int i = 1; rc == SQLITE_OK && i < argc; i += 2) {
		int op = count_op((const char *)sqlite3_value_text(argv[i]));

		if (!op) {
			vtab_error(&vt, "span_count: operator %d is '%s': one of =, <, <=, >, >=",
				   (i + 1) / 2, sqlite3_value_text(argv[i]) ?
				   (const char *)sqlite3_value_text(argv[i]) : "NULL");
			rc = SQLITE_ERROR;
			break;
		}
		cur->plan.cons[cur->plan.ncons++] = (struct span_con){
			.col = vt.desc->ts_col, .op = op, .coll = 'B', .arg = i / 2,
		};
	}
	if (rc == SQLITE_OK) {
		sqlite3_value **vals = sqlite3_malloc64(sizeof(*vals) * (uint64_t)(argc / 2 + 1));

		rc = vals ? SQLITE_OK : SQLITE_NOMEM;
		for (int i = 2; vals && i < argc; i += 2)
			vals[i / 2 - 1] = argv[i];
		if (rc == SQLITE_OK)
			rc = cursor_keep_args(cur, argc / 2, vals);
		sqlite3_free(vals);
	}
	if (rc == SQLITE_OK)
		rc = count_cursor(cur, &n);
	if (rc == SQLITE_OK)
		sqlite3_result_int64(ctx, n);
	else if (vt.base.zErrMsg)
		sqlite3_result_error(ctx, vt.base.zErrMsg, -1);
	if (rc != SQLITE_OK)
		sqlite3_result_error_code(ctx, rc);
	span_close(base);
	sqlite3_free(vt.base.zErrMsg);
}

/* ---- registration ------------------------------------------------------------------------- */

/* xCreate NULL: eponymous only, "SELECT * FROM flows" needs no CREATE. */
static const sqlite3_module span_module = {
	.xConnect = span_connect,
	.xBestIndex = span_best_index,
	.xDisconnect = span_disconnect,
	.xDestroy = span_disconnect,
	.xOpen = span_open,
	.xClose = span_close,
	.xFilter = span_filter,
	.xNext = span_next,
	.xEof = span_eof,
	.xColumn = span_column,
	.xRowid = span_rowid,
};

static const sqlite3_module parts_module = {
	.xConnect = span_connect,
	.xBestIndex = parts_best_index,
	.xDisconnect = span_disconnect,
	.xDestroy = span_disconnect,
	.xOpen = parts_open,
	.xClose = parts_close,
	.xFilter = parts_filter,
	.xNext = parts_next,
	.xEof = parts_eof,
	.xColumn = parts_column,
	.xRowid = parts_rowid,
};

/* Module destructor: the connection state goes with the last module
 * (sqlite3_close runs them after every table is disconnected). */
static void aux_free(void *arg)
{
	struct span_aux *aux = arg;
	struct span_conn *c = aux->conn;

	free(aux);
	if (--c->refs == 0)
		conn_free(c);
}

static int module_add(sqlite3 *db, struct span_conn *c, const char *name,
		      const sqlite3_module *m, const struct span_desc *d)
{
	struct span_aux *aux = malloc(sizeof(*aux));

	if (!aux)
		return SQLITE_NOMEM;
	aux->conn = c;
	aux->desc = d;
	c->refs++;
	/* on failure SQLite calls aux_free itself */
	return sqlite3_create_module_v2(db, name, m, aux, aux_free);
}

static struct span_conn *registry_find(sqlite3 *db)
{
	struct span_conn *c;

	for (c = registry; c && c->db != db; c = c->next_registered)
		;
	return c;
}

int span_register(sqlite3 *db, struct span_set *set, span_interrupt_fn interrupt,
		  void *interrupt_ctx)
{
	struct span_conn *c;
	int rc = SQLITE_OK;

	if (!db || !set)
		return SQLITE_MISUSE;
	c = calloc(1, sizeof(*c));
	if (!c)
		return SQLITE_NOMEM;
	c->db = db;
	c->set = set;
	c->max_handles = handles_bound();
	pthread_mutex_init(&c->cache_lock, NULL);
	c->interrupt = interrupt;
	c->interrupt_ctx = interrupt_ctx;
	pthread_mutex_lock(&registry_lock);
	if (registry_find(db)) {
		pthread_mutex_unlock(&registry_lock);
		pthread_mutex_destroy(&c->cache_lock);
		free(c);
		return SQLITE_MISUSE; /* once per connection */
	}
	c->next_registered = registry;
	registry = c;
	pthread_mutex_unlock(&registry_lock);
	c->refs = 1; /* ours, while registering */
	for (int i = 0; rc == SQLITE_OK && i < NDESCS; i++)
		rc = module_add(db, c, span_descs[i].name, &span_module, &span_descs[i]);
	if (rc == SQLITE_OK)
		rc = module_add(db, c, "partitions", &parts_module, NULL);
	/* no destructor: c lives as long as the modules, i.e. as db */
	if (rc == SQLITE_OK)
		rc = sqlite3_create_function_v2(db, "span_count", -1, SQLITE_UTF8, c, span_count_fn,
						NULL, NULL, NULL);
	if (--c->refs == 0)
		conn_free(c);
	return rc;
}

void span_counters_get(sqlite3 *db, struct span_counters *out)
{
	struct span_conn *c;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&registry_lock);
	c = registry_find(db);
	if (c) {
		out->partitions_opened = atomic_load(&c->opened);
		out->partitions_pruned = atomic_load(&c->pruned);
		out->rows_read = atomic_load(&c->rows);
		out->partitions_counted = atomic_load(&c->counted);
		out->partitions_skipped = atomic_load(&c->skipped);
		out->files_opened = atomic_load(&c->files);
		out->partitions_ahead = atomic_load(&c->ahead);
	}
	pthread_mutex_unlock(&registry_lock);
}

void span_counters_reset(sqlite3 *db)
{
	struct span_conn *c;

	pthread_mutex_lock(&registry_lock);
	c = registry_find(db);
	if (c) {
		atomic_store(&c->opened, 0);
		atomic_store(&c->pruned, 0);
		atomic_store(&c->rows, 0);
		atomic_store(&c->counted, 0);
		atomic_store(&c->skipped, 0);
		atomic_store(&c->files, 0);
		atomic_store(&c->ahead, 0);
	}
	pthread_mutex_unlock(&registry_lock);
}
