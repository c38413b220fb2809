/*
 * retention: keep what the policy says, remove the rest, whole files only.
 *
 * One run (retention_run):
 *   1. take the data dir's retention lock (DIR/.retention.lock, flock):
 *      runs in the daemon and `flowstored retention` never overlap;
 *   2. remove temporary files of interrupted rollup-file creations and
 *      side files whose main file is gone (an interrupted removal);
 *   3. roll up every sealed raw partition not rolled up yet (rollup.h);
 *   4. plan (retention_plan): by age, per kind; then, over --max-disk,
 *      oldest first down to the low watermark; then, under --min-free,
 *      oldest first until the free space is back above the watermark;
 *   5. remove the planned files: a raw partition is rolled up first if it
 *      is not (never removed with its rollup undone), then unlinked, then
 *      its side files.
 * Every step is safe to kill: a removal is an unlink (the file is there or
 * not), a rollup step commits with its mark, temporaries are swept by the
 * next run. Files that are not ours are never touched, nor are files with
 * our names that are not readable (CATALOG_BROKEN: counted, left as
 * evidence). Unsealed raw partitions are never removed, except closed ones
 * the daemon allows (retention_env.may_remove_open), by age or under size
 * pressure alike; the one being written never.
 *
 * Size pressure removes raw partitions first (oldest first): their rows
 * live on in the rollups, and a raw hour weighs ~100x a day of minutes.
 * Only when no removable raw partition is left do 1m files go, then 1h.
 */
#ifndef FLOWSTORE_RETENTION_H
#define FLOWSTORE_RETENTION_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "schema.h"

/* The low watermark: size pressure removes down to this share of the limit
 * (max-disk), or up to limit / this share of free space (min-free), so
 * retention does not run on every write. */
#define RETENTION_LOW_WATER_PCT 90

struct retention_policy {
	int64_t retain_ns[SCHEMA_NKINDS]; /* age limit per kind; 0 = no limit */
	uint64_t max_disk;                /* bytes of our files in the dir; 0 = no limit */
	uint64_t min_free;                /* bytes free on the file system; 0 = no limit */
};

/* Defaults: raw 7 days, 1m 90 days, 1h 400 days, no size limits. */
void retention_policy_default(struct retention_policy *p);

/* The world, injectable for tests. Any NULL member takes the default. */
struct retention_env {
	int64_t (*now_ns)(void *ctx);                           /* CLOCK_REALTIME */
	int (*fs_free)(const char *dir, uint64_t *free, void *ctx); /* statvfs f_bavail */
	/* 1 if the closed, unsealed raw partition `name` may be rolled up and
	 * removed (by age or under size pressure); NULL: never (the manual
	 * command). Never say 1 for the partition being written. */
	int (*may_remove_open)(const char *name, void *ctx);
	/* Called before each step that changes the dir ("rollup", "unlink",
	 * "unlink-side", "temp") with the file's name ("" for "temp": one
	 * sweep of all temporaries); tests kill here. */
	void (*step)(const char *step, const char *name, void *ctx);
	void *ctx;
	const atomic_int *cancel; /* polled between steps; may be NULL */
	int busy_ms;              /* rollup files' busy wait; 0 = 5000 */
	/* The data dir as an earlier run of this process left it (zeroed at
	 * first; catalog_free it at the end), or NULL: a run does not open
	 * again the sealed partitions listed there that are unchanged
	 * (catalog_scan_since), and a real run replaces it with its last
	 * scan. */
	struct catalog *known;
};

enum retention_why {
	RETENTION_AGE = 1,
	RETENTION_MAX_DISK = 2,
	RETENTION_MIN_FREE = 3,
};

const char *retention_why_name(enum retention_why w); /* "age", "max-disk", "min-free" */

struct retention_action {
	char name[SCHEMA_NAME_LEN];
	enum schema_kind kind;
	enum retention_why why;
	uint64_t bytes;
	int64_t period_end_ns;
	int roll_up_first; /* a raw partition not rolled up yet */
	/* What the limit was measured against when the file was chosen, for
	 * the report: RETENTION_AGE: limit = retain_ns, level 0;
	 * RETENTION_MAX_DISK: level = the store's bytes, limit = max_disk;
	 * RETENTION_MIN_FREE: level = free bytes, limit = min_free. level is
	 * the value before the pass began (what made it start). */
	uint64_t level, limit;
};

struct retention_report {
	int64_t now_ns;
	struct retention_action *actions; /* planned (dry run) or done, in order */
	size_t n;
	size_t rolled_up;      /* raw partitions rolled up by this run */
	uint64_t rollup_rows;  /* rollup rows they added */
	size_t temps_removed;
	uint64_t bytes_before, bytes_after;  /* our files in the dir */
	uint64_t free_before, free_after;    /* on its file system */
	size_t kept_unsealed;  /* unsealed raw partitions left (the written one among them) */
	size_t broken;         /* files with our names that are not readable: left alone */
	char error[256];       /* the first error of the run, "" if none */
};

/*
 * The plan for cat (catalog_scan of the dir) at now_ns with free bytes on
 * the file system: which files go and why, in order (policy.c's top
 * comment has the rules). rolled[i] says whether cat->entries[i] (raw) is
 * rolled up (1) or not (0; rolled NULL: none is); may_remove_open as in
 * retention_env (NULL: never). Fills actions, now_ns, bytes and free
 * before and after (after: as the plan assumes, each removal freeing its
 * bytes), kept_unsealed and broken. Pure: touches nothing. 0, -EINVAL (a
 * negative retain_ns) or -ENOMEM; free with retention_report_free.
 */
int retention_plan(const struct catalog *cat, const int *rolled,
		   const struct retention_policy *p, int64_t now_ns, uint64_t free_bytes,
		   int (*may_remove_open)(const char *name, void *ctx), void *ctx,
		   struct retention_report *out);

/*
 * One run over dir (see the top of this file). dry_run: the lock (only if
 * DIR/.retention.lock exists: a dry run creates nothing), then the plan as
 * the real run would make it now, after its steps 2 and 3 (temporaries
 * counted as removed, sealed partitions not rolled up as rolled up; the
 * growth of rollup files cannot be foreseen); nothing is changed; actions
 * are what would be done, rolled_up and temps_removed what would be.
 * Real run: actions are what was done. Errors of single files (a rollup
 * that fails: the partition stays, unrolled and unremoved) are recorded
 * and the run goes on; the return value is the first error, 0 or a
 * negative errno (-ECANCELED when env->cancel stopped it), with its text
 * in out->error. out is filled as far as the run got (free with
 * retention_report_free).
 */
int retention_run(const char *dir, const struct retention_policy *p,
		  const struct retention_env *env, int dry_run, struct retention_report *out);

void retention_report_free(struct retention_report *r);

/* Human-readable lines: one per file ("removed raw-...db (12.3 MiB): age:
 * period ended 2026-11-20T11:00:00Z, 7d 23h ago"; "would remove" in a dry
 * run; ", rolled up first" where so; "max-disk: store 210.0 MiB > 200.0
 * MiB", "min-free: 1.2 GiB free < 2.0 GiB"), then a summary line (files,
 * bytes and free space before -> after, temporaries, rollups, what was
 * kept). out->error is not printed: the caller reports it. */
void retention_report_print(FILE *f, const struct retention_report *r, int dry_run);

#endif /* FLOWSTORE_RETENTION_H */
