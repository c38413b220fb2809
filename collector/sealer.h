/*
 * The sealer thread: seals partitions the writer has closed (and those an
 * earlier run left open), one at a time, off the write path; with
 * retention enabled, it also applies the retention policies (retention.h:
 * rollups of sealed partitions, removal of whole files) at start, after
 * each seal, every interval, and at once after sealer_kick() (a write found
 * the disk full). Both jobs run on this one thread, so a partition is never
 * sealed and removed at the same time; under size pressure, retention may
 * remove a closed partition still queued for sealing (its seal is then
 * skipped), never the one the writer has open (not queued yet).
 *
 * Paths are queued by sealer_submit() (copied; the caller keeps its string).
 * sealer_stop() cancels the seal in progress (the file stays a valid open
 * partition and the next start seals it again) and joins the thread;
 * partitions still queued are left for the next start, which seals whatever
 * an earlier run left open.
 */
#ifndef FLOWSTORE_SEALER_H
#define FLOWSTORE_SEALER_H

#include <stdbool.h>

#include "clock.h"
#include "retention.h"
#include "stats.h"

struct sealer;

int sealer_start(const struct fs_clock *clock, struct stats *stats, struct sealer **out);
void sealer_submit(struct sealer *s, const char *path);

/* Apply policy to dir on this thread from now on (call once, before
 * sealer_submit); interval_ns between timed runs. 0 or -ENOMEM. */
int sealer_enable_retention(struct sealer *s, const char *dir,
			    const struct retention_policy *policy, int64_t interval_ns);

/* Run retention as soon as the current seal is done (no-op without it). */
void sealer_kick(struct sealer *s);

/*
 * --max-disk as a hard limit for the writer: before it opens a partition,
 * 0 if the data dir has room for one more, -EDQUOT if our files (as the
 * last retention run measured them, plus every partition closed since that
 * run started) already take the gate: the low watermark
 * (RETENTION_LOW_WATER_PCT of the limit) less twice the size of the
 * partition closed last, since the next partition, the seal of the one before it
 * (indexes written through its WAL) and its rollup all add to the dir
 * after the gate. A retention run after a refusal makes room below the
 * gate; if it finds nothing to remove, the writer goes on. The writer then waits as on a full
 * disk (and kicks retention), so the dir holds at most the limit plus the
 * partition being written, however far sealing and rolling up fall behind.
 * 0 without a limit.
 */
int sealer_room(struct sealer *s);
/* hold: wait for a retention run going on to end, and start none until
 * called again with false. The writer holds retention over its last close,
 * which must be the partition's last connection to remove its WAL. */
void sealer_hold_retention(struct sealer *s, bool hold);
/* Block until the queue is empty, no seal is running and no retention run
 * is due (tests, shutdown of short runs such as --count). */
void sealer_wait_idle(struct sealer *s);
void sealer_stop(struct sealer *s);

#endif /* FLOWSTORE_SEALER_H */
