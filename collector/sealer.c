/*
 * The sealer thread (see sealer.h). A mutex-protected list of paths; the
 * thread seals them in submission order. Sealing failures are logged and
 * counted; the file is left as it is (a valid open partition, or a broken
 * file that is never deleted).
 *
 * A partition being read cannot be sealed at that moment: the checkpoint
 * waits for readers, and the switch out of WAL needs none at all (queries
 * read the open partition too). That refusal (-EBUSY) is retried with a
 * backoff from 10 ms to 1 s until the seal goes through or the sealer
 * stops (every step of a seal is idempotent); a query holds a partition
 * for at most its time budget, so the wait is bounded in practice. A
 * warning says so once a partition has waited SEAL_BUSY_WARN_MS.
 *
 * Retention (when enabled) runs between seals: first thing, whenever a
 * seal completed (the new partition is rolled up, sizes are checked), when
 * its interval has passed, and when kicked. A run that fails is logged and
 * counted; the next one starts from what is on disk. A queued partition
 * that retention removed is skipped when its turn comes.
 */
#include "sealer.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "retention.h"
#include "schema.h"

#define SEALER_NICE 10
#define SEAL_BUSY_FIRST_MS 10
#define SEAL_BUSY_MAX_MS 1000
#define SEAL_BUSY_WARN_MS 60000

struct seal_job {
	struct seal_job *next;
	char path[];
};

struct sealer {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct seal_job *head, *tail;
	bool busy, stopping;
	atomic_int cancel;
	const struct fs_clock *clock;
	struct stats *stats;
	/* retention; dir == NULL: off */
	char *dir;
	struct retention_policy policy;
	int64_t interval_ns;
	int64_t next_run_ns; /* CLOCK_MONOTONIC; 0 = now */
	bool retention_due;  /* kicked, or a seal completed */
	bool retention_held; /* sealer_hold_retention: no run starts */
	bool in_retention;   /* a run is going on */
	struct catalog known; /* the dir after the last run (retention_env.known) */
	/* sealer_room(): bytes of partitions submitted so far, and what the
	 * last retention run measured (with the total when it started) */
	_Atomic uint64_t closed_total;
	_Atomic uint64_t measured, measured_base;
	_Atomic bool measured_valid;
	_Atomic bool writer_waiting; /* sealer_room said no since the last run */
	_Atomic uint64_t last_closed; /* size of the partition closed last */
	_Atomic bool force_room;      /* a run after a refusal found nothing to remove */
};

static struct timespec mono_deadline(int64_t ns)
{
	struct timespec t = { (time_t)(ns / 1000000000LL), (long)(ns % 1000000000LL) };

	return t;
}

/* With s->mu held: a run is wanted now. */
static bool retention_wanted(struct sealer *s)
{
	return s->dir && !s->retention_held &&
	       (s->retention_due || clock_monotonic(&clock_system) >= s->next_run_ns);
}

/*
 * Wait for work: a partition to seal (*job), or a retention run (*run).
 * false: stopping.
 */
static bool next_work(struct sealer *s, struct seal_job **job, bool *run)
{
	pthread_mutex_lock(&s->mu);
	while (!s->stopping && !retention_wanted(s) && !s->head) {
		if (s->dir) {
			struct timespec until = mono_deadline(s->next_run_ns);

			pthread_cond_timedwait(&s->cv, &s->mu, &until);
		} else {
			pthread_cond_wait(&s->cv, &s->mu);
		}
	}
	bool going = !s->stopping;

	*job = NULL;
	*run = false;
	if (going) {
		if (retention_wanted(s)) {
			*run = true;
			s->retention_due = false;
			s->in_retention = true;
		} else {
			*job = s->head;
			s->head = (*job)->next;
			if (!s->head)
				s->tail = NULL;
		}
		s->busy = true;
	}
	pthread_mutex_unlock(&s->mu);
	return going;
}

/* Sleeps ms, or less if the sealer is stopping. false: stopping. */
static bool backoff(struct sealer *s, unsigned ms)
{
	struct timespec until;
	bool stopping;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->mu);
	while (!s->stopping && pthread_cond_timedwait(&s->cv, &s->mu, &until) != ETIMEDOUT)
		;
	stopping = s->stopping;
	pthread_mutex_unlock(&s->mu);
	return !stopping;
}

/* partition_seal, again while readers keep the file busy. */
static int seal_retrying(struct sealer *s, const char *path)
{
	unsigned wait_ms = SEAL_BUSY_FIRST_MS;
	int64_t start = clock_monotonic(&clock_system);
	bool warned = false;
	int err;

	while ((err = partition_seal(path, clock_realtime(s->clock), &s->cancel)) == -EBUSY) {
		stats_add(&s->stats->seal_busy_retries, 1);
		if (!warned && clock_monotonic(&clock_system) - start >= SEAL_BUSY_WARN_MS * 1000000LL) {
			LOG(LOG_WARN, "%s has been busy for %d s (%s); still trying to seal it",
			    path, SEAL_BUSY_WARN_MS / 1000, schema_last_error());
			warned = true;
		}
		if (!backoff(s, wait_ms))
			return -ECANCELED;
		if (wait_ms < SEAL_BUSY_MAX_MS)
			wait_ms *= 2;
	}
	return err;
}

static void seal_one(struct sealer *s, const char *path)
{
	struct partition_meta meta;
	int64_t t0 = clock_monotonic(&clock_system);
	int err;

	if (access(path, F_OK) && errno == ENOENT) {
		LOG(LOG_DEBUG, "%s was removed by retention before its seal", path);
		return;
	}
	err = seal_retrying(s, path);
	if (err == -ECANCELED) {
		LOG(LOG_INFO, "sealing %s interrupted; the next start seals it", path);
		return;
	}
	if (err) {
		stats_add(&s->stats->seal_errors, 1);
		LOG(LOG_ERROR, "cannot seal %s: %s", path, schema_last_error());
		return;
	}
	stats_add(&s->stats->partitions_sealed, 1);
	stats_add(&s->stats->seal_ns_total, (uint64_t)(clock_monotonic(&clock_system) - t0));
	if (partition_read_meta(path, &meta) == 0) {
		uint64_t rows = 0;

		for (int t = 0; t < SCHEMA_NTABLES; t++)
			rows += meta.tables[t].rows;
		stats_add(&s->stats->seal_rows_total, rows);
		LOG(LOG_INFO, "sealed %s (%llu rows)", path, (unsigned long long)rows);
	}
	if (s->dir) {
		pthread_mutex_lock(&s->mu);
		s->retention_due = true; /* roll it up, check the sizes */
		pthread_mutex_unlock(&s->mu);
	}
}

/* ---- retention ----------------------------------------------------------------- */

static int64_t env_now(void *ctx)
{
	struct sealer *s = ctx;

	return clock_realtime(s->clock);
}

/* A closed partition still waiting for its seal may go under size
 * pressure: it is in the queue (the writer's open one never is), and
 * nothing seals it while retention runs on this same thread. */
static int env_may_remove_open(const char *name, void *ctx)
{
	struct sealer *s = ctx;
	size_t len = strlen(name);
	int found = 0;

	pthread_mutex_lock(&s->mu);
	for (struct seal_job *j = s->head; j && !found; j = j->next) {
		size_t plen = strlen(j->path);

		found = plen > len && j->path[plen - len - 1] == '/' &&
			strcmp(j->path + plen - len, name) == 0;
	}
	pthread_mutex_unlock(&s->mu);
	return found;
}

static void retention_account(struct sealer *s, const struct retention_report *r)
{
	struct stats *st = s->stats;
	uint64_t bytes = 0;

	for (size_t i = 0; i < r->n; i++) {
		const struct retention_action *a = &r->actions[i];

		stats_add(&st->files_removed[a->kind], 1);
		stats_add(&st->files_removed_why[a->why - 1], 1);
		bytes += a->bytes;
		LOG(LOG_INFO, "retention: removed %s (%.1f MiB): %s", a->name,
		    (double)a->bytes / (1 << 20), retention_why_name(a->why));
	}
	stats_add(&st->bytes_removed, bytes);
	stats_add(&st->rollup_partitions, r->rolled_up);
	stats_add(&st->rollup_rows, r->rollup_rows);
	stats_add(&st->temps_removed, r->temps_removed);
	if (r->bytes_after || r->free_after) {
		atomic_store(&st->store_bytes, r->bytes_after);
		atomic_store(&st->fs_free_bytes, r->free_after);
	}
	if (r->rolled_up)
		LOG(LOG_DEBUG, "retention: rolled up %zu partitions (%llu rollup rows)", r->rolled_up,
		    (unsigned long long)r->rollup_rows);
	if (r->kept_unsealed && (s->policy.max_disk || s->policy.min_free))
		LOG(LOG_DEBUG, "retention: %zu unsealed partitions were out of reach",
		    r->kept_unsealed);
}

/*
 * The writer's gate: room below the low watermark for twice the size of
 * the partition closed last. After the gate, the dir still grows by the
 * partition being written, by the seal of the one before (indexes written
 * through its WAL) and by its rollup; the margin is for those, so the dir
 * stays within the limit plus one partition.
 */
static uint64_t room_gate(struct sealer *s)
{
	uint64_t low = s->policy.max_disk / 100 * RETENTION_LOW_WATER_PCT;
	uint64_t next = atomic_load(&s->last_closed);

	/* twice: the partition being written, and the seal of the last one */
	return low > 2 * next ? low - 2 * next : 0;
}

int sealer_room(struct sealer *s)
{
	uint64_t used;

	if (!s || !s->dir || !s->policy.max_disk || !atomic_load(&s->measured_valid))
		return 0;
	used = atomic_load(&s->measured) + (atomic_load(&s->closed_total) -
					    atomic_load(&s->measured_base));
	if (used <= room_gate(s) || atomic_exchange(&s->force_room, false))
		return 0;
	atomic_store(&s->writer_waiting, true);
	return -EDQUOT;
}

/* A closed partition's size with its WAL, for sealer_room(). */
static uint64_t closed_bytes(const char *path)
{
	char wal[4200];
	struct stat st;
	uint64_t n = 0;

	if (stat(path, &st) == 0)
		n += (uint64_t)st.st_blocks * 512;
	snprintf(wal, sizeof(wal), "%s-wal", path);
	if (stat(wal, &st) == 0)
		n += (uint64_t)st.st_blocks * 512;
	return n;
}

static void retention_once(struct sealer *s)
{
	struct retention_env env = {
		.now_ns = env_now,
		.may_remove_open = env_may_remove_open,
		.ctx = s,
		.cancel = &s->cancel,
		.known = &s->known, /* only this thread runs retention */
	};
	struct retention_policy policy = s->policy;
	struct retention_report r;
	int64_t t0 = clock_monotonic(&clock_system);
	uint64_t base = atomic_load(&s->closed_total);
	bool waiting = atomic_exchange(&s->writer_waiting, false);
	int err;

	/* The writer waits at the gate, below the limit; with the store
	 * between the two, nothing would be over the limit and it would wait
	 * for ever: make room below the gate instead. */
	if (waiting) {
		uint64_t gate = room_gate(s);

		policy.max_disk = gate > 1 ? gate : 1; /* 0 would mean no limit */
	}
	memset(&r, 0, sizeof(r));
	err = retention_run(s->dir, &policy, &env, 0, &r);
	/* The limit is smaller than what cannot go (rollups being written, a
	 * partition too big for the gate): let the writer go on rather than
	 * stop for ever. */
	if (waiting && !err && r.n == 0)
		atomic_store(&s->force_room, true);
	if (err != -ECANCELED) { /* measured at its end, even when it failed */
		/* partitions closed while it ran may be counted twice: on the
		 * safe side */
		atomic_store(&s->measured, r.bytes_after);
		atomic_store(&s->measured_base, base);
		atomic_store(&s->measured_valid, true);
	}
	retention_account(s, &r);
	stats_add(&s->stats->retention_runs, 1);
	stats_add(&s->stats->retention_ns_total, (uint64_t)(clock_monotonic(&clock_system) - t0));
	if (err && err != -ECANCELED) {
		stats_add(&s->stats->retention_errors, 1);
		LOG(LOG_ERROR, "retention in %s: %s (%s)", s->dir, strerror(-err),
		    r.error[0] ? r.error : schema_last_error());
	}
	retention_report_free(&r);
	pthread_mutex_lock(&s->mu);
	s->next_run_ns = clock_monotonic(&clock_system) + s->interval_ns;
	pthread_mutex_unlock(&s->mu);
}

int sealer_enable_retention(struct sealer *s, const char *dir,
			    const struct retention_policy *policy, int64_t interval_ns)
{
	char *copy = strdup(dir);

	if (!copy)
		return -ENOMEM;
	pthread_mutex_lock(&s->mu);
	free(s->dir);
	s->dir = copy;
	s->policy = *policy;
	s->interval_ns = interval_ns > 0 ? interval_ns : INT64_MAX / 2;
	s->next_run_ns = 0; /* at start */
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

void sealer_kick(struct sealer *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	if (s->dir && !s->retention_due) {
		s->retention_due = true;
		pthread_cond_broadcast(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
}

static void *sealer_main(void *arg)
{
	struct sealer *s = arg;
	struct seal_job *job;
	bool run;

	/* Writing comes first: sealing takes the CPU the writer and the loop
	 * leave (nice 10 on this thread only; failure is harmless). */
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), SEALER_NICE))
		LOG(LOG_DEBUG, "sealer: setpriority: %s", strerror(errno));

	while (next_work(s, &job, &run)) {
		if (run)
			retention_once(s);
		if (job)
			seal_one(s, job->path);
		free(job);
		pthread_mutex_lock(&s->mu);
		s->busy = false;
		s->in_retention = false;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
	}
	return NULL;
}

int sealer_start(const struct fs_clock *clock, struct stats *stats, struct sealer **out)
{
	struct sealer *s = calloc(1, sizeof(*s));
	pthread_condattr_t attr;
	int err;

	if (!s)
		return -ENOMEM;
	s->clock = clock;
	s->stats = stats;
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* backoff() waits on it */
	pthread_cond_init(&s->cv, &attr);
	pthread_condattr_destroy(&attr);
	err = pthread_create(&s->thread, NULL, sealer_main, s);
	if (err) {
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mu);
		free(s);
		return -err;
	}
	*out = s;
	return 0;
}

void sealer_submit(struct sealer *s, const char *path)
{
	size_t len = strlen(path) + 1;
	struct seal_job *job = malloc(sizeof(*job) + len);

	if (!job) {
		LOG(LOG_ERROR, "out of memory queueing %s for sealing; the next start seals it", path);
		return;
	}
	job->next = NULL;
	memcpy(job->path, path, len);
	{
		uint64_t bytes = closed_bytes(path);

		atomic_fetch_add(&s->closed_total, bytes);
		atomic_store(&s->last_closed, bytes);
	}
	pthread_mutex_lock(&s->mu);
	if (s->tail)
		s->tail->next = job;
	else
		s->head = job;
	s->tail = job;
	/* A rollover: the dir just grew by a whole partition, and the new one
	 * starts empty; checking the limits now keeps the dir within them
	 * plus the partition being written. */
	if (s->dir)
		s->retention_due = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

void sealer_hold_retention(struct sealer *s, bool hold)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->retention_held = hold;
	while (hold && s->in_retention)
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

void sealer_wait_idle(struct sealer *s)
{
	pthread_mutex_lock(&s->mu);
	while (s->head || s->busy || (s->dir && s->retention_due && !s->retention_held))
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
}

void sealer_stop(struct sealer *s)
{
	struct seal_job *job;

	if (!s)
		return;
	atomic_store(&s->cancel, 1);
	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	while ((job = s->head)) {
		s->head = job->next;
		free(job);
	}
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	catalog_free(&s->known);
	free(s->dir);
	free(s);
}
