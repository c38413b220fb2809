/*
 * rollup: per-minute and per-hour aggregates of a raw partition's flows and
 * connections, written into the rollup files (1m-*.db, 1h-*.db; see
 * schema.h), each raw partition counted exactly once in each.
 *
 * flows_1m and flows_1h have the same columns:
 *
 *   ts                 start of the bucket (ns since the epoch, UTC; a
 *                      multiple of 60 s or 3600 s)
 *   proto, orig_addr, resp_addr, resp_port, direction, comm    the key
 *                      (direction is NULL for rows counted from flows;
 *                      for rows counted from connections it is as stored:
 *                      'out', 'in', or NULL when unknown; proto is 'tcp')
 *   flows              flow records (raw flows rows) in the bucket
 *   orig_pkts, orig_bytes, resp_pkts, resp_bytes   sums over those flows
 *   connections        TCP connections opened in the bucket (connections rows)
 *   failed_connections of those, the ones that never reached ESTABLISHED
 *                      (their states path has no ESTABLISHED in it; one
 *                      with no path recorded does not count as failed)
 *   retransmits        sum over those connections
 *
 * A row is bucketed by its ts (a flow record's first packet, a
 * connection's open). A row counts flows or connections, never both: the
 * columns of the other kind are 0 (a sum over no rows), never NULL, so
 * sum() over any set of rows is right. A key may have several rows in one
 * bucket (one per raw partition that held such rows, and a tcp flow and a
 * connection of unknown direction share a key): always aggregate with
 * sum().
 *
 * Exactly once: the rows a raw partition adds to a rollup file and the mark
 * saying so (the file's `rolled` table) commit in one transaction
 * (rollup_file_apply), so a kill at any point leaves either both or
 * neither, and a second run skips what is marked.
 */
#ifndef FLOWSTORE_ROLLUP_H
#define FLOWSTORE_ROLLUP_H

#include <stdint.h>

#include "schema.h"

struct rollup_result {
	uint64_t source_rows;                 /* flows + connections rows of the partition */
	uint64_t rows_added[SCHEMA_NKINDS];   /* rollup rows inserted, per kind */
	unsigned files_applied;               /* (file, partition) steps committed now */
	unsigned files_already;               /* steps found marked (done before) */
	unsigned files_skipped;               /* targets older than their horizon */
};

/*
 * Roll the raw partition dir/name (sealed, or closed by the writer) into the
 * 1m and 1h files covering its rows' ts range (meta: its metadata, from
 * partition_read_meta or the catalog): for each kind, every file period
 * from the one holding the oldest flows/connections ts to the one holding
 * the newest, those between included (a late row days old makes a file
 * for each day in between). A target file whose period ends at or before
 * horizon_ns[k] is skipped (retention would remove it; 0 = no horizon;
 * horizon_ns NULL = none at all). A partition with no flows and no connections has nothing to
 * roll up. 0 or a negative errno (schema_last_error() says why, except
 * for -ENAMETOOLONG: dir/name longer than PATH_MAX); on error the steps
 * committed before it stay committed and the rest is redone by the next
 * call. res is filled as far as the run got.
 */
int rollup_partition(const char *dir, const char *name, const struct partition_meta *meta,
		     const int64_t horizon_ns[SCHEMA_NKINDS], int64_t now_ns, int busy_ms,
		     struct rollup_result *res);

/*
 * What the rollup files of a data dir mark, each file read once while it
 * is kept: a retention run asks about every partition it may remove, and
 * most of them ask the same few files (a day's 1m file, a month's 1h
 * file), which would otherwise be opened twice per partition per run.
 * Zero-initialise. The marks read go stale when anything is rolled up:
 * rollup_marks_clear (which also frees them) after every rollup_partition
 * and at the end.
 */
struct rollup_marks_file;
struct rollup_marks {
	struct rollup_marks_file *files;
	size_t n, cap;
};

void rollup_marks_clear(struct rollup_marks *m);

/*
 * Whether every target of dir/name (as rollup_partition would pick them)
 * carries its mark: 1 yes, 0 no, negative errno on error. A missing target
 * file counts as not done. marks: the files' marks as read earlier, and
 * where those read now are kept; NULL reads each target file now.
 */
int rollup_is_done(struct rollup_marks *marks, const char *dir, const char *name,
		   const struct partition_meta *meta, const int64_t horizon_ns[SCHEMA_NKINDS]);

/*
 * The aggregate as a plain SELECT over a raw partition's tables, with the
 * rollup columns in table order, for a bucket of bucket_ns and rows with
 * ts in [?1, ?2): what rollup_partition inserts. prefix is the schema name
 * in front of the raw tables ("src." or "" ). Tests and reports compare
 * it with the rollup tables. Static storage, one buffer per thread (valid
 * until the thread's next call); NULL on a bad bucket (<= 0) or a prefix
 * longer than 64 bytes. NULL prefix = "".
 */
const char *rollup_select_sql(int64_t bucket_ns, const char *prefix);

#endif /* FLOWSTORE_ROLLUP_H */
