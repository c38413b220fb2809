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
 * a sequence number for partitions rolled over at the row cap).
 *
 * Functions return 0 or a negative errno; SQLite errors map to -EIO (file
 * broken), -ENOSPC (SQLITE_FULL), -EBUSY, -EINVAL (not a partition of ours)
 * and -ECANCELED (interrupted); schema_last_error() gives the text.
 */
#ifndef FLOWSTORE_SCHEMA_H
#define FLOWSTORE_SCHEMA_H

#include <stdatomic.h>
#include <stddef.h>
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

/* "raw-20261127T200000Z-0000.db". Returns 0, or -ENAMETOOLONG. */
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

/* Close the connection (no sealing). NULL is a no-op. */
void partition_close(struct partition *p);

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

/* ---- the catalog: the partition files of a data dir -------------------------- */

enum catalog_status {
	CATALOG_OPEN = 0,    /* ours, not sealed */
	CATALOG_SEALED = 1,  /* ours, sealed and read-only */
	CATALOG_BROKEN = 2,  /* has our name but is not a readable partition */
};

struct catalog_entry {
	char name[SCHEMA_NAME_LEN];
	int64_t period_start_ns;
	unsigned seq;
	enum catalog_status status;
	int needs_seal; /* open, or sealed but a step of sealing is missing */
	char error[128];  /* why, for CATALOG_BROKEN */
};

struct catalog {
	struct catalog_entry *entries; /* sorted by name, i.e. by time */
	size_t n;
	size_t foreign; /* files that are not ours (left alone) */
};

/* List dir's partitions. SQLite's side files (-wal, -shm, -journal) are not
 * counted as foreign. Free with catalog_free. */
int catalog_scan(const char *dir, struct catalog *out);
void catalog_free(struct catalog *c);

/* Text of the last error on this thread (never NULL). */
const char *schema_last_error(void);

#endif /* FLOWSTORE_SCHEMA_H */
