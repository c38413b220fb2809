/*
 * schema: the only door into a partition file.
 *
 * A partition is one SQLite file holding the tables flows, connections and
 * tcp_states for one time period, plus the metadata tables meta and
 * meta_tables. Its lifecycle:
 *
 *     create ──► open (WAL, append-only, no secondary indexes)
 *                  │  rows appended in transactions; meta_tables updated in
 *                  │  the same transaction, so the metadata always matches
 *                  │  the committed rows
 *                  ▼
 *                sealed (indexes built, ANALYZEd, rollback journal,
 *                        meta.sealed = 1, file mode 0444; never changes again)
 *
 * The file system is the catalog: a partition exists iff its file exists.
 * Names sort by time: raw-YYYYMMDDTHHMMSSZ-SSSS.db (period start in UTC, then
 * a sequence number for partitions rolled over at the row cap). Rollup
 * files (1m-*.db, 1h-*.db) are further kinds of file in the same dir; see
 * "kinds of file, and rollup files" below.
 *
 * Functions return 0 or a negative errno; SQLite errors map to -EIO (file
 * broken), -ENOSPC (SQLITE_FULL), -EBUSY, -EINVAL (not a partition of ours)
 * and -ECANCELED (interrupted); schema_last_error() gives the text.
 */
#ifndef FLOWSTORE_SCHEMA_H
#define FLOWSTORE_SCHEMA_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#define SCHEMA_VERSION 1
#define SCHEMA_ADDR_LEN 46 /* INET6_ADDRSTRLEN */
#define SCHEMA_COMM_LEN 17 /* 16 + NUL */
#define SCHEMA_NAME_LEN 48 /* a partition file name, NUL included */

enum schema_table {
	SCHEMA_FLOWS = 0,
	SCHEMA_CONNECTIONS = 1,
	SCHEMA_TCP_STATES = 2,
	SCHEMA_NTABLES = 3,
};

/* Process-wide SQLite settings. Call once, before any other schema function
 * and before threads use SQLite. */
int schema_init(void);

/* Table name as in SQL ("flows", ...). */
const char *schema_table_name(enum schema_table t);

/*
 * Rows, as the user-facing tables hold them. Strings are NUL-terminated;
 * an empty string is stored as NULL. pid 0 is stored as NULL.
 */
struct flow_row {
	int64_t ts;     /* first packet, ns since the Unix epoch, UTC */
	int64_t ts_end; /* last packet */
	int64_t orig_pkts, orig_bytes, resp_pkts, resp_bytes;
	int64_t sock_cookie; /* 0 = NULL */
	uint32_t pid;
	uint16_t orig_port, resp_port;
	char proto[8]; /* 'tcp', 'udp', 'icmp', 'icmp6', else the number */
	char conn_state[8];
	char history[16];
	char ifname[16];
	char end_reason[16];
	char orig_addr[SCHEMA_ADDR_LEN];
	char resp_addr[SCHEMA_ADDR_LEN];
	char comm[SCHEMA_COMM_LEN];
};

struct conn_row {
	int64_t ts;     /* open */
	int64_t ts_end; /* close */
	int64_t sock_cookie;
	int64_t cgroup_id;
	int64_t bytes_sent, bytes_received;
	int64_t segs_out, segs_in, retransmits, srtt_us;
	uint32_t pid, uid;
	uint16_t orig_port, resp_port;
	char direction[4]; /* 'out', 'in', '' = unknown */
	char close_state[16];
	char orig_addr[SCHEMA_ADDR_LEN];
	char resp_addr[SCHEMA_ADDR_LEN];
	char comm[SCHEMA_COMM_LEN];
	char states[216]; /* 'SYN_SENT>ESTABLISHED>...': 16 names, ">..." if longer */
};

struct tcp_state_row {
	int64_t ts;
	int64_t sock_cookie;
	uint32_t pid;
	uint16_t orig_port, resp_port;
	char direction[4];
	char old_state[16];
	char new_state[16];
	char orig_addr[SCHEMA_ADDR_LEN];
	char resp_addr[SCHEMA_ADDR_LEN];
	char comm[SCHEMA_COMM_LEN];
};

struct schema_row {
	enum schema_table table;
	union {
		struct flow_row flow;
		struct conn_row conn;
		struct tcp_state_row state;
	};
};

/* ---- naming -------------------------------------------------------------- */

/* Start of the period holding t (both ns, UTC); periods align to the epoch. */
int64_t partition_period_start(int64_t t_ns, int64_t period_ns);

/* The highest seq a name can carry (four digits). */
#define SCHEMA_SEQ_MAX 9999u

/* "raw-20261127T200000Z-0000.db". Returns 0, -ERANGE (seq above
 * SCHEMA_SEQ_MAX), or -ENAMETOOLONG. */
int partition_name_format(char *buf, size_t len, int64_t period_start_ns, unsigned seq);

/* Parse a name made by partition_name_format. -EINVAL if it is not one. */
int partition_name_parse(const char *name, int64_t *period_start_ns, unsigned *seq);

/* ---- the open partition (one writer) -------------------------------------- */

struct partition; /* opaque; owned by whoever created it, freed by partition_close */

/*
 * Create DIR/<name(period_start, seq)> with the current schema, WAL mode,
 * no secondary indexes. -EEXIST if the file exists (the caller picks the next
 * seq); the name is claimed with O_EXCL so two writers never share a file.
 * created_ns is recorded in meta.
 */
int partition_create(const char *dir, int64_t period_start_ns, int64_t period_ns,
		     unsigned seq, int64_t created_ns, struct partition **out);

const char *partition_path(const struct partition *p);
uint64_t partition_rows(const struct partition *p); /* committed, all tables */
int64_t partition_period_end(const struct partition *p);

/* One transaction: begin, add rows, commit (or rollback). Between begin and
 * commit/rollback nothing is visible to readers. On a failed add or commit
 * the caller must call partition_rollback; the partition stays usable. */
int partition_begin(struct partition *p);
int partition_add(struct partition *p, const struct schema_row *row);
int partition_commit(struct partition *p);
void partition_rollback(struct partition *p);

/* Close the connection (no sealing). NULL is a no-op. When it is the last
 * connection to the file, SQLite copies the WAL back and removes it. */
void partition_close(struct partition *p);
/* The same, leaving the WAL as it is, for the seal to copy back: closing
 * never waits for the disk. NULL is a no-op. */
void partition_close_for_seal(struct partition *p);

/*
 * Checkpoints elsewhere. By default p's own commits copy the WAL back into
 * the file every 1000 pages, and that copy ends in fsync()s: the writer
 * stops for as long as the disk takes (seconds, on a busy or virtual disk).
 * After partition_defer_checkpoints(p), p's commits only append to the WAL;
 * a second connection (partition_ckpt_*, on another thread) copies it back.
 * partition_wal_frames(p): pages in the WAL after p's last commit, for that
 * thread's trigger (0 before the first commit).
 */
int partition_defer_checkpoints(struct partition *p);
int partition_wal_frames(const struct partition *p);

struct partition_ckpt; /* a checkpointing connection to one partition file */

/* Open one on the file of an open partition (it must exist: never creates). */
int partition_ckpt_open(const char *path, struct partition_ckpt **out);
/* One checkpoint: copies every WAL page no reader still needs into the
 * file and syncs it. Passive (restart false) never waits for the writer or
 * readers; the writer restarts the WAL from its start once a checkpoint has
 * copied all of it before its next commit. With restart, the checkpoint
 * waits for the writer's transaction (up to the busy timeout), holds off
 * its next one until all is copied, and the WAL starts over: the writer
 * waits for the disk, once. *wal_frames and *copied: pages in the WAL, and
 * how many are copied. */
int partition_ckpt_run(struct partition_ckpt *c, bool restart, int *wal_frames, int *copied);
const char *partition_ckpt_path(const struct partition_ckpt *c);
/* NULL is a no-op. Never checkpoints on the way out: the writer's close (or
 * the seal) does, so that closing here never stalls on the disk. */
void partition_ckpt_close(struct partition_ckpt *c);

/* ---- sealing and reading metadata ------------------------------------------- */

struct partition_meta {
	int schema_version;
	int64_t period_start_ns, period_end_ns;
	unsigned seq;
	int64_t created_ns;
	int sealed;
	int64_t sealed_ns;
	struct {
		uint64_t rows;
		int64_t ts_min, ts_max;         /* 0 when rows == 0 */
		int64_t ts_end_min, ts_end_max; /* tables with ts_end; else 0 */
	} tables[SCHEMA_NTABLES];
};

/* Read a partition's metadata, read-only. -EINVAL: not a flowstore partition
 * (foreign or corrupt); -EIO: unreadable. */
int partition_read_meta(const char *path, struct partition_meta *out);

/*
 * Seal the partition at path: build the secondary indexes, ANALYZE, checkpoint
 * the WAL, switch to a rollback journal, set meta.sealed, chmod 0444.
 * Idempotent and crash-safe: every step is redone or skipped on a second
 * call. cancel (may be NULL) is polled; when it becomes nonzero the seal stops
 * with -ECANCELED and the file stays a valid open partition.
 */
int partition_seal(const char *path, int64_t sealed_ns, const atomic_int *cancel);

/* Every step of partition_seal is done: meta says sealed (m, as
 * partition_read_meta gave it), the file is read-only, out of WAL mode, with
 * no WAL or journal beside it. Such a file never changes again and may be
 * opened immutable=1. 1 or 0. */
int partition_seal_complete(const char *path, const struct partition_meta *m);

/* ---- kinds of file, and rollup files ------------------------------------------ */

/*
 * A data dir holds three kinds of file, told apart by the name's prefix
 * (same shape otherwise, so `ls` sorts each kind by time):
 *   raw-YYYYMMDDTHHMMSSZ-SSSS.db   raw rows (flows, connections, tcp_states)
 *   1m-YYYYMMDDT000000Z-0000.db    flows_1m: per-minute rollups of one UTC day
 *   1h-YYYYMM01T000000Z-0000.db    flows_1h: per-hour rollups of one UTC month
 * Rollup files are written only by retention/rollup.c, one transaction per
 * raw partition rolled into them; they stay in rollback-journal mode with
 * their indexes from creation and are never "sealed" (late rows of a raw
 * partition rolled up later may still land in them). Their file mode is
 * 0644; they are deleted whole, like raw partitions.
 */
enum schema_kind {
	SCHEMA_KIND_RAW = 0,
	SCHEMA_KIND_1M = 1,
	SCHEMA_KIND_1H = 2,
	SCHEMA_NKINDS = 3,
};

/* "raw", "1m", "1h" (also the name prefix and partitions.kind). */
const char *schema_kind_name(enum schema_kind k);

/* Any of our file names: kind, period start, seq. -EINVAL if not one. */
int schema_name_parse(const char *name, enum schema_kind *kind, int64_t *period_start_ns,
		      unsigned *seq);

/* A rollup file's name for the period holding t (its start: 00:00 UTC of
 * t's day for 1m, the 1st of t's month for 1h). 0, -EINVAL (raw kind or
 * t before 1970), -ENAMETOOLONG. */
int rollup_name_format(char *buf, size_t len, enum schema_kind k, int64_t t_ns);

/* Parse a name of kind k only (1m or 1h); the signature of
 * partition_name_parse, so the query side can list either. */
int rollup_1m_name_parse(const char *name, int64_t *period_start_ns, unsigned *seq);
int rollup_1h_name_parse(const char *name, int64_t *period_start_ns, unsigned *seq);

/* Bucket width of kind k in ns: 60 s for 1m, 3600 s for 1h (0 for raw). */
int64_t rollup_bucket_ns(enum schema_kind k);

/* The period [*start, *end) of the k-file holding t (a UTC day for 1m, a UTC
 * calendar month for 1h; both t for raw, whose periods are not calendar
 * ones). */
void rollup_period(enum schema_kind k, int64_t t_ns, int64_t *start, int64_t *end);

/* What of a raw partition is rolled up: its flows and connections, from
 * the earliest ts (*lo) to the latest (*hi) of either; *rows, how many.
 * Returns 0 when it has none (nothing to roll up). Its rollup targets are
 * the k-files of the periods from rollup_period(k, *lo) to the one holding
 * *hi; it is rolled up when every one of them marks it. */
int rollup_source_span(const struct partition_meta *m, int64_t *lo, int64_t *hi, uint64_t *rows);

/* The one table of a rollup file ("flows_1m" or "flows_1h"). Its metadata
 * is in partition_meta.tables[SCHEMA_ROLLUP_META] (the other entries are
 * zero); ts_end_* are 0. */
const char *rollup_table_name(enum schema_kind k);
#define SCHEMA_ROLLUP_META SCHEMA_FLOWS

/* Read a rollup file's metadata (meta.sealed is 0). Errors as
 * partition_read_meta. */
int rollup_read_meta(const char *path, struct partition_meta *out);

/*
 * Run one rollup step inside the k-file of dir whose period starts at
 * period_start_ns (created if missing: built under a temporary name,
 * ".<name>.tmp", and renamed into place, so a file with our name is always
 * whole). In one IMMEDIATE transaction: if `source` (a raw partition's
 * name) is already in the file's `rolled` table, nothing happens and
 * *done_before = 1; else the raw file at source_path is attached read-only
 * as "src", insert_select (an INSERT INTO <table> ... SELECT ... FROM src.*
 * statement; parameters ?1 and ?2 bound to the period's [start, end) in ns)
 * runs, the mark (source, source_rows, rows added, now_ns) is inserted,
 * meta_tables is brought up to date, and it commits: the rows and the mark
 * commit together or not at all. *rows_added gets the rows inserted.
 * Waits up to busy_ms for readers/other writers (-EBUSY after that).
 */
int rollup_file_apply(const char *dir, enum schema_kind k, int64_t period_start_ns,
		      const char *source, const char *source_path, uint64_t source_rows,
		      const char *insert_select, int64_t now_ns, int busy_ms,
		      uint64_t *rows_added, int *done_before);

/* Whether `source` is marked in the k-file at path: 1 yes, 0 no, or a
 * negative errno (-ENOENT: no such file; -EINVAL: not a rollup file). Reads
 * only; a hot journal a crash left is rolled back first (a read-write
 * open, as the next rollup step would). */
int rollup_file_has(const char *path, const char *source);

/* The sources marked in the k-file at path, sorted, as one malloc'ed array
 * of *n names (free with free(); NULL when *n is 0). 0 or a negative errno,
 * as rollup_file_has. */
int rollup_file_sources(const char *path, char (**names)[SCHEMA_NAME_LEN], size_t *n);

/* The highest seq of the raw partitions of the period starting at
 * period_start_ns that the k-file at path marks: 1 and *seq, 0 if it marks
 * none, or a negative errno as rollup_file_has. */
int rollup_file_last_seq(const char *path, int64_t period_start_ns, unsigned *seq);

/* A temporary name of ours (".1m-....db.tmp", ".1h-....db.tmp" and their
 * -journal side files; the part between "." and ".tmp" a valid rollup file
 * name): a leftover of an interrupted creation, or a creation in progress
 * (catalog_remove_temps tells them apart). 1 or 0. */
int schema_is_temp_name(const char *name);

/* ---- the catalog: the partition files of a data dir -------------------------- */

enum catalog_status {
	CATALOG_OPEN = 0,    /* ours, not sealed */
	CATALOG_SEALED = 1,  /* ours, sealed and read-only */
	CATALOG_BROKEN = 2,  /* has our name but is not a readable partition */
};

struct catalog_entry {
	char name[SCHEMA_NAME_LEN];
	enum schema_kind kind;
	int64_t period_start_ns;
	unsigned seq;
	enum catalog_status status; /* rollup files: CATALOG_OPEN (never sealed) */
	int needs_seal; /* raw only: open, or sealed but a step of sealing is missing */
	int has_meta;   /* meta is valid */
	struct partition_meta meta;
	uint64_t bytes; /* allocated on disk (st_blocks), side files included */
	char error[128];  /* why, for CATALOG_BROKEN */
	struct catalog_id { /* the file as stat(2) saw it before it was read; 0s: unknown */
		uint64_t dev, ino, size;
		int64_t mtime_ns, ctime_ns;
	} id;
};

struct catalog {
	struct catalog_entry *entries; /* sorted by kind (raw, 1m, 1h), then by time */
	size_t n;
	size_t foreign; /* files that are not ours (left alone) */
	size_t temps;   /* our temporary files (schema_is_temp_name) */
	uint64_t bytes; /* entries' bytes + temps' */
};

/* List dir's partitions and rollup files, read-only. SQLite's side files
 * (-wal, -shm, -journal) of our names are not counted as foreign; side files
 * whose main file is gone are counted in temps (an interrupted delete).
 * DIR/.retention.lock is ours and counted nowhere. Free with catalog_free. */
int catalog_scan(const char *dir, struct catalog *out);

/* catalog_scan, except that a sealed raw partition listed in prev (an
 * earlier scan of dir; NULL: none) is taken from there rather than opened
 * again when its file is unchanged since (same device, inode, size, mtime
 * and ctime, which no write or chmod leaves alone) and has no -wal or
 * -journal: a whole seal is never undone in place. Retention scans every
 * partition up to three times a run, and runs once or twice per partition
 * the writer closes. */
int catalog_scan_since(const char *dir, const struct catalog *prev, struct catalog *out);

/*
 * The seq for a new raw partition of the period starting at period_start_ns:
 * one above every seq of that period dir has seen, in a raw file's name or
 * marked as rolled up in a rollup file (whose raw file retention may have
 * removed since). A raw partition's name is its identity in the rollup
 * files' `rolled` tables, so it must never be given twice: a partition under
 * a reused name would count as rolled up already, and retention would
 * remove its rows without ever rolling them up. Rollup files that cannot be
 * read are passed over (retention reports them; their marks are unknown).
 * 0, -ERANGE when the period has used the last seq, or opendir's error.
 */
int catalog_next_seq(const char *dir, int64_t period_start_ns, unsigned *seq);

/* The retention lock's name in a data dir (retention/retention.c takes it). */
#define SCHEMA_RETENTION_LOCK ".retention.lock"
void catalog_free(struct catalog *c);

/* Unlink dir's leftovers: every temporary name (schema_is_temp_name) but
 * those a creation in progress holds, and every side file of our names
 * whose main file is gone; never anything else. *removed (may be NULL)
 * gets how many. 0, or the first error (the others are still tried). */
int catalog_remove_temps(const char *dir, size_t *removed);

/* Text of the last error on this thread (never NULL). */
const char *schema_last_error(void);

#endif /* FLOWSTORE_SCHEMA_H */
