/*
 * retention.c: one retention run over a data dir (retention_run), and its
 * report. The plan itself is policy.c's; this file does what it says.
 *
 * A real run:
 *   1. lock: flock(LOCK_EX) on DIR/.retention.lock (created 0600 if
 *      missing, never deleted: deleting a lock file others may hold open
 *      lets two runs hold "the" lock at once). With env->cancel, the wait
 *      polls LOCK_NB every 20 ms so a stopping daemon is not held up.
 *   2. measure: the clock, free space, catalog_scan (bytes_before).
 *   3. sweep ("temp" step, only when the scan saw temporaries):
 *      catalog_remove_temps removes temporaries of interrupted rollup-file
 *      creations (never one a creation in progress holds) and side files
 *      whose main file is gone.
 *   4. roll up ("rollup" step per partition): every raw partition sealed
 *      with every step done whose rollup is not done (rollup_is_done) is
 *      rolled up (rollup_partition), with horizons now - retain_ns[k], the
 *      same cut-off by which age removes rollup files, so a rollup never
 *      writes into a file this run is about to remove for its age. A
 *      failure is recorded (report.error) and the run goes on: the
 *      partition just stays unrolled, hence unremovable, this time.
 *   5. catalog_scan again, free space again, rolled status of every raw
 *      partition, retention_plan.
 *   6. execute, action by action, in the plan's order: a raw partition not
 *      rolled up is rolled up first ("rollup"; on failure the file is kept
 *      and the run goes on), then its main file is unlinked ("unlink"),
 *      then its side files -wal, -shm, -journal ("unlink-side", each only
 *      if present). The main file goes first: a main file without its hot
 *      journal would be corrupt, a side file without its main file is an
 *      orphan the next sweep removes. ENOENT counts as removed (someone
 *      else got there first); another failure is recorded and the run
 *      goes on with the next file.
 *   7. measure again (bytes_after, free_after: what is, not what the plan
 *      assumed).
 * env->step is called before each step that changes the dir, with the
 * file's name ("" for the sweep); env->cancel is polled before each step
 * and stops the run with -ECANCELED. Every step is whole or not done, so a
 * kill anywhere leaves a dir the next run finishes.
 *
 * A dry run takes the lock only if the lock file exists (it creates
 * nothing: it may run as a user who can read the dir but not write it;
 * without the lock the plan may be stale, which a dry run may be), scans,
 * and plans over what the real run would see after its steps 3 and 4: the
 * temporaries' bytes as freed, and sealed partitions not rolled up as
 * rolled (report.rolled_up and temps_removed count what it would do). It
 * cannot foresee how much rolling up grows the rollup files, so under size
 * pressure with rollups pending the real run may remove a little more.
 * (Reading a rollup file a crash left with a hot journal rolls that
 * journal back, as any reader of it would: SQLite's recovery, not ours.)
 *
 * Nothing is logged here (retention/ has no logger): everything is in the
 * report, which the caller logs or prints.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "retention.h"
#include "rollup.h"

#define LOCK_POLL_MS 20
#define BUSY_MS_DEFAULT 5000

static const char *const side_suffixes[] = { "-wal", "-shm", "-journal" };

/* ---- the world, with defaults --------------------------------------------- */

static int64_t default_now(void *ctx)
{
	struct timespec ts;

	(void)ctx;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int default_fs_free(const char *dir, uint64_t *free_bytes, void *ctx)
{
	struct statvfs st;

	(void)ctx;
	if (statvfs(dir, &st))
		return -errno;
	*free_bytes = (uint64_t)st.f_bavail * st.f_frsize;
	return 0;
}

/* One run's state. */
struct run {
	const char *dir;
	const struct retention_policy *p;
	struct retention_env env; /* defaults filled in */
	struct retention_report *out;
	int dry_run;
	int err;                  /* first error */
	int64_t horizon[SCHEMA_NKINDS];
	struct catalog cat;       /* the scan the plan is made from */
	int *rolled;              /* per cat entry: rollup done (raw) */
	char *failed;             /* per cat entry: rolling up failed this run */
	struct rollup_marks marks; /* the rollup files' marks, as read this run */
};

/* Record the first error (its text in out->error); returns err. */
static int run_error(struct run *r, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int run_error(struct run *r, int err, const char *fmt, ...)
{
	va_list ap;

	if (r->err)
		return err;
	r->err = err;
	va_start(ap, fmt);
	vsnprintf(r->out->error, sizeof(r->out->error), fmt, ap);
	va_end(ap);
	return err;
}

static int path_of(const struct run *r, const char *name, char *buf, size_t len)
{
	if (snprintf(buf, len, "%s/%s", r->dir, name) >= (int)len)
		return -ENAMETOOLONG;
	return 0;
}

/* Before a step that changes the dir: stop if cancelled, else tell the hook. */
static int step(struct run *r, const char *what, const char *name)
{
	if (r->env.cancel && atomic_load(r->env.cancel))
		return run_error(r, -ECANCELED, "retention run cancelled");
	if (r->env.step)
		r->env.step(what, name, r->env.ctx);
	return 0;
}

static int measure_free(struct run *r, uint64_t *free_bytes)
{
	int rc = r->env.fs_free(r->dir, free_bytes, r->env.ctx);

	if (rc)
		return run_error(r, rc < 0 ? rc : -EIO, "%s: free space: %s", r->dir,
				 strerror(rc < 0 ? -rc : EIO));
	return 0;
}

/* A scan of the dir into cat, reusing prev's unchanged sealed partitions. */
static int scan(struct run *r, const struct catalog *prev, struct catalog *cat)
{
	int rc = catalog_scan_since(r->dir, prev, cat);

	if (rc)
		return run_error(r, rc, "%s", schema_last_error());
	return 0;
}

/* ---- 1. the lock ---------------------------------------------------------- */

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int lock_wait(struct run *r, int fd, const char *path)
{
	int flags = r->env.cancel ? LOCK_EX | LOCK_NB : LOCK_EX;

	while (flock(fd, flags)) {
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK)
			return run_error(r, -errno, "%s: flock: %s", path, strerror(errno));
		if (atomic_load(r->env.cancel))
			return run_error(r, -ECANCELED, "retention run cancelled");
		sleep_ms(LOCK_POLL_MS);
	}
	return 0;
}

/* The dir's retention lock: *fd, or -1 (a dry run without a lock file). */
static int lock_take(struct run *r, int *fd)
{
	char path[PATH_MAX];
	int rc;

	*fd = -1;
	if (path_of(r, SCHEMA_RETENTION_LOCK, path, sizeof(path)))
		return run_error(r, -ENAMETOOLONG, "%s: path too long", r->dir);
	if (r->dry_run)
		*fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	else
		*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (*fd < 0) {
		if (r->dry_run && (errno == ENOENT || errno == EACCES))
			return 0;
		return run_error(r, -errno, "%s: %s", path, strerror(errno));
	}
	rc = lock_wait(r, *fd, path);
	if (rc) {
		close(*fd);
		*fd = -1;
	}
	return rc;
}

/* ---- 3. temporaries ------------------------------------------------------- */

static uint64_t entries_bytes(const struct catalog *cat)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < cat->n; i++)
		sum += cat->entries[i].bytes;
	return sum;
}

static int sweep_temps(struct run *r, const struct catalog *cat)
{
	size_t removed = 0;
	int rc;

	if (!cat->temps)
		return 0;
	if ((rc = step(r, "temp", "")))
		return rc;
	rc = catalog_remove_temps(r->dir, &removed);
	r->out->temps_removed += removed;
	if (rc)
		return run_error(r, rc, "%s", schema_last_error());
	return 0;
}

/* ---- 4. rollups ----------------------------------------------------------- */

static int is_sealed_raw(const struct catalog_entry *e)
{
	return e->kind == SCHEMA_KIND_RAW && e->status == CATALOG_SEALED && !e->needs_seal &&
	       e->has_meta;
}

/* Whether e's rollup is done: 1, 0, or a negative errno (recorded). */
static int rolled_status(struct run *r, const struct catalog_entry *e)
{
	int rc = rollup_is_done(&r->marks, r->dir, e->name, &e->meta, r->horizon);

	if (rc < 0)
		run_error(r, rc, "%s: rollup status: %s", e->name,
			  rc == -ENOMEM ? "out of memory" : schema_last_error());
	return rc;
}

/* Roll e up now ("rollup" step). 0, or a negative errno (recorded). */
static int roll_up(struct run *r, const struct catalog_entry *e)
{
	struct rollup_result res;
	int busy_ms = r->env.busy_ms > 0 ? r->env.busy_ms : BUSY_MS_DEFAULT;
	int rc;

	if ((rc = step(r, "rollup", e->name)))
		return rc;
	memset(&res, 0, sizeof(res));
	rc = rollup_partition(r->dir, e->name, &e->meta, r->horizon, r->out->now_ns, busy_ms,
			      &res);
	rollup_marks_clear(&r->marks); /* what was read may have changed */
	if (rc)
		return run_error(r, rc, "%s: rollup: %s", e->name, schema_last_error());
	r->out->rolled_up++;
	for (int k = 0; k < SCHEMA_NKINDS; k++)
		r->out->rollup_rows += res.rows_added[k];
	return 0;
}

/* Rolled status of cat's entries into r->rolled; the real run rolls sealed
 * ones up, the dry run counts them as it would. -ECANCELED stops. */
static int roll_up_sealed(struct run *r, const struct catalog *cat, int *rolled, char *failed)
{
	for (size_t i = 0; i < cat->n; i++) {
		const struct catalog_entry *e = &cat->entries[i];
		int rc;

		if (!is_sealed_raw(e))
			continue;
		rc = rolled_status(r, e);
		if (rc != 0) {
			rolled[i] = rc > 0;
			failed[i] = rc < 0;
			continue;
		}
		if (r->dry_run) {
			rolled[i] = 1; /* the real run's step 4 would */
			r->out->rolled_up++;
			continue;
		}
		rc = roll_up(r, e);
		if (rc == -ECANCELED)
			return rc;
		rolled[i] = rc == 0;
		failed[i] = rc != 0;
	}
	return 0;
}

/* Unsealed raw partitions the plan may remove: their rolled status. */
static void rolled_unsealed(struct run *r, const struct catalog *cat, int *rolled)
{
	if (!r->env.may_remove_open)
		return;
	for (size_t i = 0; i < cat->n; i++) {
		const struct catalog_entry *e = &cat->entries[i];

		/* ask the writer first: the open partition costs no file opens */
		if (e->kind == SCHEMA_KIND_RAW && e->has_meta && e->status != CATALOG_BROKEN &&
		    !is_sealed_raw(e) && r->env.may_remove_open(e->name, r->env.ctx))
			rolled[i] = rolled_status(r, e) > 0;
	}
}

/* ---- 6. removal ----------------------------------------------------------- */

static const struct catalog_entry *entry_named(const struct catalog *cat, const char *name,
					       size_t *index)
{
	for (size_t i = 0; i < cat->n; i++) {
		if (strcmp(cat->entries[i].name, name) == 0) {
			*index = i;
			return &cat->entries[i];
		}
	}
	return NULL;
}

static int unlink_one(struct run *r, const char *what, const char *name)
{
	char path[PATH_MAX];
	int rc;

	if (path_of(r, name, path, sizeof(path)))
		return run_error(r, -ENAMETOOLONG, "%s/%s: path too long", r->dir, name);
	if ((rc = step(r, what, name)))
		return rc;
	if (unlink(path) && errno != ENOENT)
		return run_error(r, -errno, "%s: unlink: %s", path, strerror(errno));
	return 0;
}

/* The side files of a removed file; a failure is recorded and the others
 * are still tried (the next sweep retries them). */
static int unlink_sides(struct run *r, const char *name)
{
	for (size_t s = 0; s < sizeof(side_suffixes) / sizeof(side_suffixes[0]); s++) {
		char side[SCHEMA_NAME_LEN + 16], path[PATH_MAX];
		struct stat st;

		snprintf(side, sizeof(side), "%s%s", name, side_suffixes[s]);
		if (path_of(r, side, path, sizeof(path)) || lstat(path, &st))
			continue;
		if (unlink_one(r, "unlink-side", side) == -ECANCELED)
			return -ECANCELED;
	}
	return 0;
}

static int report_add(struct retention_report *out, const struct retention_action *a)
{
	struct retention_action *n = realloc(out->actions, (out->n + 1) * sizeof(*n));

	if (!n)
		return -ENOMEM;
	out->actions = n;
	out->actions[out->n++] = *a;
	return 0;
}

/* One planned action. 0 (done, or skipped for a recorded error: the run
 * goes on with the next file), or -ECANCELED / -ENOMEM, which stop it. */
static int execute(struct run *r, const struct retention_action *a)
{
	const struct catalog_entry *e;
	size_t i;
	int rc;

	e = entry_named(&r->cat, a->name, &i);
	if (!e)
		return run_error(r, -ENOENT, "%s: planned but not in the catalog", a->name);
	if (a->roll_up_first) {
		if (r->failed[i])
			return 0; /* failed in step 4; recorded there */
		rc = roll_up(r, e);
		if (rc)
			return rc == -ECANCELED ? rc : 0;
	}
	if ((rc = unlink_one(r, "unlink", a->name)))
		return rc == -ECANCELED ? rc : 0;
	rc = report_add(r->out, a);
	if (rc)
		return run_error(r, rc, "out of memory");
	rc = unlink_sides(r, a->name);
	return rc == -ECANCELED ? rc : 0;
}

/* ---- a run ---------------------------------------------------------------- */

static void env_resolve(struct retention_env *dst, const struct retention_env *env)
{
	memset(dst, 0, sizeof(*dst));
	if (env)
		*dst = *env;
	if (!dst->now_ns)
		dst->now_ns = default_now;
	if (!dst->fs_free)
		dst->fs_free = default_fs_free;
}

static void horizons(struct run *r)
{
	int64_t now = r->out->now_ns;

	for (int k = 0; k < SCHEMA_NKINDS; k++) {
		int64_t retain = r->p->retain_ns[k];

		r->horizon[k] = retain > 0 && now > retain ? now - retain : 0;
	}
}

/*
 * The rolled status of r->cat's entries (into r->rolled, r->failed) from
 * what step 4 found for first's; entries new since (sealed meanwhile by
 * another process) are asked.
 */
static int carry_status(struct run *r, const struct catalog *first, const int *rolled,
			const char *failed)
{
	size_t n = r->cat.n ? r->cat.n : 1;

	r->rolled = calloc(n, sizeof(*r->rolled));
	r->failed = calloc(n, 1);
	if (!r->rolled || !r->failed)
		return run_error(r, -ENOMEM, "out of memory");
	for (size_t i = 0; i < r->cat.n; i++) {
		const struct catalog_entry *e = &r->cat.entries[i];
		size_t j;

		if (!is_sealed_raw(e))
			continue;
		if (entry_named(first, e->name, &j) && is_sealed_raw(&first->entries[j])) {
			r->rolled[i] = rolled[j];
			r->failed[i] = failed[j];
		} else {
			r->rolled[i] = rolled_status(r, e) > 0;
		}
	}
	rolled_unsealed(r, &r->cat, r->rolled);
	return 0;
}

/* Steps 3 and 4 of the real run, or their prediction (dry run); then the
 * scan to plan from (r->cat, r->rolled, r->failed) and the free space. */
static int prepare(struct run *r, struct catalog *first, uint64_t *free_bytes)
{
	int *rolled = calloc(first->n ? first->n : 1, sizeof(*rolled));
	char *failed = calloc(first->n ? first->n : 1, 1);
	int rc;

	if (!rolled || !failed) {
		free(rolled);
		free(failed);
		return run_error(r, -ENOMEM, "out of memory");
	}
	if (r->dry_run) {
		uint64_t in_entries = entries_bytes(first);
		uint64_t temp_bytes = first->bytes > in_entries ? first->bytes - in_entries : 0;

		r->out->temps_removed = first->temps;
		rc = roll_up_sealed(r, first, rolled, failed);
		r->cat = *first; /* ownership moves */
		memset(first, 0, sizeof(*first));
		r->cat.bytes -= temp_bytes;
		r->cat.temps = 0;
		*free_bytes += temp_bytes;
		r->rolled = rolled;
		r->failed = failed;
		rolled_unsealed(r, &r->cat, r->rolled);
		return rc;
	}
	rc = sweep_temps(r, first);
	if (rc == -ECANCELED)
		goto out;
	rc = roll_up_sealed(r, first, rolled, failed);
	if (rc)
		goto out;
	if ((rc = scan(r, first, &r->cat)) || (rc = measure_free(r, free_bytes)))
		goto out;
	rc = carry_status(r, first, rolled, failed);
out:
	free(rolled);
	free(failed);
	return rc;
}

/* The plan from r->cat, executed (real run) or reported (dry run). */
static int plan_and_execute(struct run *r, uint64_t free_bytes)
{
	struct retention_report plan;
	int rc;

	rc = retention_plan(&r->cat, r->rolled, r->p, r->out->now_ns, free_bytes,
			    r->env.may_remove_open, r->env.ctx, &plan);
	if (rc)
		return run_error(r, rc, "retention plan: %s", strerror(-rc));
	r->out->kept_unsealed = plan.kept_unsealed;
	r->out->broken = plan.broken;
	if (r->dry_run) {
		r->out->actions = plan.actions;
		r->out->n = plan.n;
		r->out->bytes_after = plan.bytes_after;
		r->out->free_after = plan.free_after;
		return 0;
	}
	for (size_t i = 0; i < plan.n && !rc; i++)
		rc = execute(r, &plan.actions[i]);
	free(plan.actions);
	return rc;
}

/* Step 7: what the dir looks like now. Errors are recorded only. */
static void measure_after(struct run *r)
{
	struct catalog cat;

	if (catalog_scan_since(r->dir, &r->cat, &cat) == 0) {
		r->out->bytes_after = cat.bytes;
		if (r->env.known) { /* the next run starts from here */
			catalog_free(r->env.known);
			*r->env.known = cat;
		} else {
			catalog_free(&cat);
		}
	} else {
		run_error(r, -EIO, "%s", schema_last_error());
	}
	measure_free(r, &r->out->free_after);
}

static int run_steps(struct run *r)
{
	struct catalog first = { 0 };
	uint64_t free_bytes = 0;
	int rc;

	r->out->now_ns = r->env.now_ns(r->env.ctx);
	horizons(r);
	if ((rc = measure_free(r, &free_bytes)) || (rc = scan(r, r->env.known, &first)))
		return rc;
	r->out->free_before = free_bytes;
	r->out->bytes_before = first.bytes;
	rc = prepare(r, &first, &free_bytes);
	catalog_free(&first);
	if (rc) /* cancelled, or nothing to plan from */
		goto out;
	rc = plan_and_execute(r, free_bytes);
out:
	if (!r->dry_run)
		measure_after(r);
	return rc;
}

int retention_run(const char *dir, const struct retention_policy *p,
		  const struct retention_env *env, int dry_run, struct retention_report *out)
{
	struct run r = { .dir = dir, .p = p, .out = out, .dry_run = dry_run };
	int lock_fd = -1;
	int rc;

	if (!out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (!dir || !p)
		return run_error(&r, -EINVAL, "retention_run: bad arguments");
	env_resolve(&r.env, env);
	rc = lock_take(&r, &lock_fd);
	if (!rc)
		rc = run_steps(&r);
	catalog_free(&r.cat);
	free(r.rolled);
	free(r.failed);
	rollup_marks_clear(&r.marks);
	if (lock_fd >= 0)
		close(lock_fd); /* releases the flock */
	return rc ? rc : r.err;
}

void retention_report_free(struct retention_report *r)
{
	if (!r)
		return;
	free(r->actions);
	r->actions = NULL;
	r->n = 0;
}

/* ---- the report, for people ------------------------------------------------ */

static const char *fmt_bytes(char *buf, size_t len, uint64_t b)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double v = (double)b;
	int u = -1;

	if (b < 1024) {
		snprintf(buf, len, "%" PRIu64 " B", b);
		return buf;
	}
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

static const char *fmt_time(char *buf, size_t len, int64_t ns)
{
	time_t t = (time_t)(ns / 1000000000LL);
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "%" PRId64 " ns", ns);
	return buf;
}

/* "7d 23h", "5h 3m", "12m 5s", "40s": the two largest units. */
static const char *fmt_age(char *buf, size_t len, int64_t ns)
{
	int64_t s = ns > 0 ? ns / 1000000000LL : 0;

	if (s >= 86400)
		snprintf(buf, len, "%" PRId64 "d %" PRId64 "h", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(buf, len, "%" PRId64 "h %" PRId64 "m", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		snprintf(buf, len, "%" PRId64 "m %" PRId64 "s", s / 60, s % 60);
	else
		snprintf(buf, len, "%" PRId64 "s", s);
	return buf;
}

static void print_why(FILE *f, const struct retention_report *r, const struct retention_action *a)
{
	char b1[32], b2[32];

	switch (a->why) {
	case RETENTION_AGE:
		fprintf(f, "age: period ended %s, %s ago", fmt_time(b1, sizeof(b1), a->period_end_ns),
			fmt_age(b2, sizeof(b2), r->now_ns - a->period_end_ns));
		break;
	case RETENTION_MAX_DISK:
		fprintf(f, "max-disk: store %s > %s", fmt_bytes(b1, sizeof(b1), a->level),
			fmt_bytes(b2, sizeof(b2), a->limit));
		break;
	case RETENTION_MIN_FREE:
		fprintf(f, "min-free: %s free < %s", fmt_bytes(b1, sizeof(b1), a->level),
			fmt_bytes(b2, sizeof(b2), a->limit));
		break;
	default:
		fprintf(f, "%s", retention_why_name(a->why));
	}
}

static const char *plural(size_t n)
{
	return n == 1 ? "" : "s";
}

static void print_summary(FILE *f, const struct retention_report *r, int dry_run)
{
	char b[5][32];
	uint64_t removed = 0;

	for (size_t i = 0; i < r->n; i++)
		removed += r->actions[i].bytes;
	fprintf(f, "retention%s: %s %zu file%s (%s); store %s -> %s; free %s -> %s; ",
		dry_run ? " (dry run)" : "", dry_run ? "would remove" : "removed", r->n,
		plural(r->n), fmt_bytes(b[0], sizeof(b[0]), removed),
		fmt_bytes(b[1], sizeof(b[1]), r->bytes_before),
		fmt_bytes(b[2], sizeof(b[2]), r->bytes_after),
		fmt_bytes(b[3], sizeof(b[3]), r->free_before),
		fmt_bytes(b[4], sizeof(b[4]), r->free_after));
	fprintf(f, "%zu temporary file%s %s; ", r->temps_removed, plural(r->temps_removed),
		dry_run ? "to remove" : "removed");
	if (dry_run)
		fprintf(f, "%zu partition%s to roll up", r->rolled_up, plural(r->rolled_up));
	else
		fprintf(f, "%zu partition%s rolled up (%" PRIu64 " rows)", r->rolled_up,
			plural(r->rolled_up), r->rollup_rows);
	if (r->kept_unsealed)
		fprintf(f, "; %zu unsealed partition%s kept", r->kept_unsealed,
			plural(r->kept_unsealed));
	if (r->broken)
		fprintf(f, "; %zu broken file%s kept", r->broken, plural(r->broken));
	fputc('\n', f);
}

void retention_report_print(FILE *f, const struct retention_report *r, int dry_run)
{
	char b[32];

	for (size_t i = 0; i < r->n; i++) {
		const struct retention_action *a = &r->actions[i];

		fprintf(f, "%s %s (%s)%s: ", dry_run ? "would remove" : "removed", a->name,
			fmt_bytes(b, sizeof(b), a->bytes),
			!a->roll_up_first ? "" : dry_run ? ", roll up first" : ", rolled up first");
		print_why(f, r, a);
		fputc('\n', f);
	}
	print_summary(f, r, dry_run);
}
