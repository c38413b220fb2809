/*
 * bench/ingest: how fast does the whole pipeline write, next to what bare
 * SQLite can do on the same machine in the same run?
 *
 *  1. ceiling  — synthetic events decoded to rows in memory first, then
 *                inserted into one partition file (same tables, one prepared
 *                statement per table, 100k-row transactions, no collector).
 *  2. pipeline — flowstored --source synthetic (as fast as it is taken) for
 *                --seconds: generator → decode → batcher → queue → writer →
 *                rollover → sealer, all of it. Sustained rows/s, CPU seconds
 *                per million rows, RSS sampled through the run and at peak.
 *  3. sealing  — the ceiling's partition sealed (indexes built), rows/s; and
 *                flowstored at a steady 100k events/s for --seconds: does the
 *                sealer keep up (every rolled partition sealed by the end)?
 *
 * usage: bench_ingest [--seconds N] [--dir DIR] [--flowstored PATH]
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "decode.h"
#include "schema.h"
#include "synthetic.h"

#define NS 1000000000.0
#define CEILING_ROWS 2000000
#ifndef CEILING_TXN
#define CEILING_TXN 100000
#endif
#define DISTINCT_ROWS 500000

struct run {
	double seconds, cpu_seconds;
	uint64_t rows, dropped, sealed, created;
	double seal_ns, seal_rows;
	long peak_rss_kb;
	long rss_kb[64];
	int nrss;
};

static double now_s(void)
{
	return clock_monotonic(&clock_system) / NS;
}

static struct schema_row *make_rows(size_t n)
{
	struct schema_row *rows = calloc(n, sizeof(*rows));
	struct synthetic *g;
	uint8_t buf[FS_EVENT_MAX_SIZE];
	enum malformed_reason why;
	int64_t off = clock_utc_offset(&clock_system);

	if (!rows || synthetic_new(1, &g))
		abort();
	for (size_t i = 0; i < n; i++) {
		size_t size = synthetic_next(g, clock_monotonic(&clock_system), buf);

		if (decode_event(buf, size, off, decode_ifname_system, &rows[i], &why))
			abort();
	}
	synthetic_free(g);
	return rows;
}

static double ceiling(const char *dir, char *path, size_t pathlen)
{
	struct schema_row *rows = make_rows(DISTINCT_ROWS);
	struct partition *p;
	double t0;

	if (partition_create(dir, 0, 3600LL * 1000000000LL, 0, 0, &p)) {
		fprintf(stderr, "bench: %s\n", schema_last_error());
		exit(1);
	}
	snprintf(path, pathlen, "%s", partition_path(p));
	t0 = now_s();
	for (size_t i = 0; i < CEILING_ROWS; i += CEILING_TXN) {
		if (partition_begin(p))
			abort();
		for (size_t j = i; j < i + CEILING_TXN; j++)
			if (partition_add(p, &rows[j % DISTINCT_ROWS]))
				abort();
		if (partition_commit(p))
			abort();
	}
	t0 = now_s() - t0;
	partition_close(p);
	free(rows);
	return CEILING_ROWS / t0;
}

static long rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static uint64_t stat_from_log(const char *log, const char *key)
{
	char line[4096], *p, want[128];
	uint64_t v = 0;
	FILE *f = fopen(log, "r");

	if (!f)
		return 0;
	snprintf(want, sizeof(want), " %s=", key);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "stats:") && (p = strstr(line, want)))
			v = strtoull(p + strlen(want), NULL, 10);
	fclose(f);
	return v;
}

static void run_daemon(const char *flowstored, const char *dir, const char *source,
		       int seconds, struct run *r)
{
	char log[4096];
	struct rusage ru;
	double t0;
	pid_t pid;
	int status;

	snprintf(log, sizeof(log), "%s.log", dir);
	pid = fork();
	if (pid == 0) {
		if (!freopen(log, "w", stderr))
			_exit(127);
		execl(flowstored, "flowstored", "--data", dir, "--source", source, (char *)NULL);
		_exit(127);
	}
	t0 = now_s();
	memset(r, 0, sizeof(*r));
	for (int i = 1; i <= seconds; i++) {
		sleep(1);
		if (i % 5 == 0 && r->nrss < 64)
			r->rss_kb[r->nrss++] = rss_kb(pid);
	}
	kill(pid, SIGTERM);
	if (wait4(pid, &status, 0, &ru) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "bench: flowstored failed (see %s)\n", log);
		exit(1);
	}
	r->seconds = now_s() - t0;
	r->cpu_seconds = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
			 ru.ru_stime.tv_usec / 1e6;
	r->peak_rss_kb = ru.ru_maxrss;
	r->rows = stat_from_log(log, "rows_written_flows") +
		  stat_from_log(log, "rows_written_connections") +
		  stat_from_log(log, "rows_written_tcp_states");
	r->dropped = stat_from_log(log, "events_dropped");
	r->sealed = stat_from_log(log, "partitions_sealed");
	r->created = stat_from_log(log, "partitions_created");
	r->seal_ns = (double)stat_from_log(log, "seal_ns_total");
	r->seal_rows = (double)stat_from_log(log, "seal_rows_total");
}

static void print_rss(const struct run *r)
{
	printf("  RSS every 5 s (MiB):");
	for (int i = 0; i < r->nrss; i++)
		printf(" %.0f", r->rss_kb[i] / 1024.0);
	printf("\n  peak RSS: %.1f MiB\n", r->peak_rss_kb / 1024.0);
}

int main(int argc, char **argv)
{
	const char *flowstored = FLOWSTORED_PATH, *base = "/tmp/flowstore-bench";
	char dir[4096], path[4096];
	int seconds = 60;
	double ceil_rate, seal_t, pipe_rate;
	struct run full, steady;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--seconds"))
			seconds = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--dir"))
			base = argv[i + 1];
		else if (!strcmp(argv[i], "--flowstored"))
			flowstored = argv[i + 1];
	}
	schema_init();
	snprintf(dir, sizeof(dir), "rm -rf '%s' && mkdir -p '%s'", base, base);
	if (system(dir))
		return 1;

	snprintf(dir, sizeof(dir), "%s/ceiling", base);
	mkdir(dir, 0755);
	ceil_rate = ceiling(dir, path, sizeof(path));
	printf("ceiling: bare SQLite, %d rows in %d-row transactions: %.0f rows/s\n",
	       CEILING_ROWS, CEILING_TXN, ceil_rate);
	seal_t = now_s();
	if (partition_seal(path, 1, NULL)) {
		fprintf(stderr, "bench: seal: %s\n", schema_last_error());
		return 1;
	}
	seal_t = now_s() - seal_t;
	printf("sealing: %d rows in %.2f s: %.0f rows/s (indexes built, ANALYZE, checkpoint)\n",
	       CEILING_ROWS, seal_t, CEILING_ROWS / seal_t);

	snprintf(dir, sizeof(dir), "%s/full", base);
	run_daemon(flowstored, dir, "synthetic", seconds, &full);
	pipe_rate = full.rows / full.seconds;
	printf("pipeline: flowstored --source synthetic, %.0f s: %llu rows, %.0f rows/s = %.0f%% of the ceiling\n",
	       full.seconds, (unsigned long long)full.rows, pipe_rate, 100.0 * pipe_rate / ceil_rate);
	printf("  CPU: %.1f s = %.2f CPU s per million rows; dropped %llu; partitions %llu created, %llu sealed\n",
	       full.cpu_seconds, full.cpu_seconds / (full.rows / 1e6),
	       (unsigned long long)full.dropped, (unsigned long long)full.created,
	       (unsigned long long)full.sealed);
	print_rss(&full);

	snprintf(dir, sizeof(dir), "%s/steady", base);
	run_daemon(flowstored, dir, "synthetic:100000", seconds, &steady);
	printf("steady: flowstored --source synthetic:100000, %.0f s: %.0f rows/s, %.2f CPU s per million rows, dropped %llu\n",
	       steady.seconds, steady.rows / steady.seconds,
	       steady.cpu_seconds / (steady.rows / 1e6), (unsigned long long)steady.dropped);
	printf("  partitions: %llu created, %llu sealed while ingesting (the last one stays open); "
	       "sealing ran at %.0f rows/s\n",
	       (unsigned long long)steady.created, (unsigned long long)steady.sealed,
	       steady.seal_ns > 0 ? steady.seal_rows / (steady.seal_ns / NS) : 0.0);
	print_rss(&steady);
	return 0;
}
