/*
 * The sealer thread: seals partitions the writer has closed (and those an
 * earlier run left open), one at a time, off the write path.
 *
 * Paths are queued by sealer_submit() (copied; the caller keeps its string).
 * sealer_stop() cancels the seal in progress (the file stays a valid open
 * partition and the next start seals it again) and joins the thread;
 * partitions still queued are left for the next start, which seals whatever
 * an earlier run left open.
 */
#ifndef FLOWSTORE_SEALER_H
#define FLOWSTORE_SEALER_H

#include "clock.h"
#include "stats.h"

struct sealer;

int sealer_start(const struct fs_clock *clock, struct stats *stats, struct sealer **out);
void sealer_submit(struct sealer *s, const char *path);
/* Block until the queue is empty and no seal is running (tests, shutdown
 * of short runs such as --count). */
void sealer_wait_idle(struct sealer *s);
void sealer_stop(struct sealer *s);

#endif /* FLOWSTORE_SEALER_H */
