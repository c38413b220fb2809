/*
 * The checkpointer thread: copies the open partition's WAL back into its
 * file (partition_ckpt_run), so that the writer thread never does. A WAL
 * checkpoint ends in fsync()s, which a busy or virtual disk can hold for
 * seconds; on the writer's thread that stall filled the write queue and
 * dropped events (see docs/architecture.md, "Checkpoints off the writer").
 *
 * The writer calls checkpointer_note() after each commit, with the pages
 * its WAL holds (partition_wal_frames): past CHECKPOINT_PAGES the thread
 * runs a passive checkpoint on its own connection to that file (past
 * CHECKPOINT_RESTART_PAGES, one that restarts the WAL). Neither call
 * blocks on the disk. When the writer closes the partition it calls
 * checkpointer_forget(), and the thread lets go of the file; the seal
 * copies what is left (or, at exit, the writer's own close, the last).
 * checkpointer_stop() lets go and joins.
 */
#ifndef FLOWSTORE_CHECKPOINTER_H
#define FLOWSTORE_CHECKPOINTER_H

#include "stats.h"

/* 1000 pages (4 MiB) is SQLite's own automatic checkpoint. */
#define CHECKPOINT_PAGES 1000
/* Under a sustained write rate passive checkpoints may never catch up with
 * the last commit, and the WAL never starts over. Past this many pages
 * (256 MiB) the checkpoint makes it start over, holding the writer off for
 * as long as it takes: the WAL's bound, should the partition not roll over
 * first (2M rows, the default, take ~400 MiB). */
#define CHECKPOINT_RESTART_PAGES 65536

struct checkpointer;

int checkpointer_start(struct stats *stats, struct checkpointer **out);
/* The writer committed to `path`; its WAL holds `wal_pages`. */
void checkpointer_note(struct checkpointer *c, const char *path, int wal_pages);
/* The writer is done with `path`: close the connection to it, if any. */
void checkpointer_forget(struct checkpointer *c, const char *path);
/* NULL is a no-op. */
void checkpointer_stop(struct checkpointer *c);

#endif /* FLOWSTORE_CHECKPOINTER_H */
