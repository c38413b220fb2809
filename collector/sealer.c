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
 */
#include "sealer.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
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
};

static struct seal_job *next_job(struct sealer *s)
{
	struct seal_job *job;

	pthread_mutex_lock(&s->mu);
	while (!s->head && !s->stopping)
		pthread_cond_wait(&s->cv, &s->mu);
	job = s->stopping ? NULL : s->head;
	if (job) {
		s->head = job->next;
		if (!s->head)
			s->tail = NULL;
		s->busy = true;
	}
	pthread_mutex_unlock(&s->mu);
	return job;
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
}

static void *sealer_main(void *arg)
{
	struct sealer *s = arg;
	struct seal_job *job;

	/* Writing comes first: sealing takes the CPU the writer and the loop
	 * leave (nice 10 on this thread only; failure is harmless). */
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), SEALER_NICE))
		LOG(LOG_DEBUG, "sealer: setpriority: %s", strerror(errno));

	while ((job = next_job(s))) {
		seal_one(s, job->path);
		free(job);
		pthread_mutex_lock(&s->mu);
		s->busy = false;
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
	pthread_mutex_lock(&s->mu);
	if (s->tail)
		s->tail->next = job;
	else
		s->head = job;
	s->tail = job;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

void sealer_wait_idle(struct sealer *s)
{
	pthread_mutex_lock(&s->mu);
	while (s->head || s->busy)
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
	free(s);
}
