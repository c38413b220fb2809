/*
 * bench/rollup: what rolling up costs, and what a year of rollups weighs.
 *
 * For each host size (flows per second; default 1k and 20k), synthetic
 * events (collector/synthetic.h: the daemon's own generator) are decoded
 * into rows and spread evenly over a window (a whole hour at 1k flows/s;
 * --minutes of it at 20k, scaled down to keep the run short), written into
 * one raw partition and sealed, as the daemon does. Then, in the same run:
 *
 *   baseline  every flows and connections row read once (count, sums):
 *             the least any aggregate over the partition can cost;
 *   rollup    rollup_partition(): both the per-minute and the per-hour
 *             aggregate, written into their files, as after every seal.
 *
 * Printed: rows/s of each and their ratio, rollup rows per raw row, the
 * rollup files' bytes per rollup row, and the size of a year extrapolated
 * on paper from the measured rows per minute (1m) and per hour (1h). At
 * the scaled-down rate the hour's distinct keys cannot be measured; they
 * are estimated with the hour/minute key ratio measured at the full hour.
 *
 * usage: bench_rollup [--dir DIR] [--low N] [--high N] [--minutes M]
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "clock.h"
#include "decode.h"
#include "rollup.h"
#include "schema.h"
#include "synthetic.h"

#define NS 1000000000LL
#define T0 1767225600000000000LL /* 2026-01-01T00:00:00Z */

struct result {
	uint64_t flows, conns, rows_1m, rows_1h;
	double scan_s, rollup_s, seal_s;
	uint64_t bytes_raw, bytes_1m, bytes_1h;
	int minutes;
};

static double now_s(void)
{
	return (double)clock_monotonic(&clock_system) / NS;
}

static uint64_t file_bytes(const char *path)
{
	struct stat st;

	return stat(path, &st) ? 0 : (uint64_t)st.st_blocks * 512;
}

/* Rows of `flows` flows (and the connections and states the generator
 * makes with them), stamped evenly over [T0, T0 + minutes). */
static int write_partition(const char *dir, uint64_t flows, int minutes, struct result *r,
			   char *name, size_t namelen)
{
	int64_t window = (int64_t)minutes * 60 * NS, off = clock_utc_offset(&clock_system);
	uint8_t buf[FS_EVENT_MAX_SIZE];
	struct synthetic *g;
	struct partition *p;
	struct schema_row row;
	enum malformed_reason why;
	uint64_t n = 0;
	int err;

	if (synthetic_new(7, &g))
		return -ENOMEM;
	err = partition_create(dir, T0, 3600 * NS, 0, T0, &p);
	if (err) {
		synthetic_free(g);
		return err;
	}
	snprintf(name, namelen, "%s", strrchr(partition_path(p), '/') + 1);
	while (!err && r->flows < flows) {
		err = partition_begin(p);
		for (int i = 0; !err && i < 100000 && r->flows < flows; i++) {
			size_t size = synthetic_next(g, clock_monotonic(&clock_system), buf);
			int64_t *ts, *ts_end = NULL, dur;

			if (decode_event(buf, size, off, decode_ifname_system, &row, &why))
				continue; /* an owner record: not a row */
			switch (row.table) {
			case SCHEMA_FLOWS:
				ts = &row.flow.ts, ts_end = &row.flow.ts_end;
				r->flows++;
				break;
			case SCHEMA_CONNECTIONS:
				ts = &row.conn.ts, ts_end = &row.conn.ts_end;
				r->conns++;
				break;
			default:
				ts = &row.state.ts;
				break;
			}
			dur = ts_end ? *ts_end - *ts : 0;
			/* flows pace the clock; the rest rides along */
			*ts = T0 + (int64_t)((double)r->flows / (double)flows * (double)window);
			if (ts_end)
				*ts_end = *ts + (dur > 0 ? dur : 0);
			err = partition_add(p, &row);
			n++;
		}
		err = err ? err : partition_commit(p);
	}
	partition_close(p);
	synthetic_free(g);
	(void)n;
	return err;
}

static double scan(const char *path)
{
	static const char *const sql[] = {
		"SELECT count(*), sum(orig_bytes), sum(resp_bytes) FROM flows",
		"SELECT count(*), sum(bytes_sent) FROM connections",
	};
	sqlite3 *db;
	double t0 = now_s();

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL))
		exit(1);
	for (int i = 0; i < 2; i++) {
		sqlite3_stmt *st;

		if (sqlite3_prepare_v2(db, sql[i], -1, &st, NULL))
			exit(1);
		while (sqlite3_step(st) == SQLITE_ROW)
			;
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	return now_s() - t0;
}

/* The bench's own dir from an earlier run: emptied (files only). */
static void empty_dir(const char *dir)
{
	char path[4400];
	struct dirent *de;
	DIR *d = opendir(dir);

	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.' && (!de->d_name[1] || !strcmp(de->d_name, "..")))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
}

static int run(const char *base, uint64_t rate, int minutes, struct result *r)
{
	int64_t horizon[SCHEMA_NKINDS] = { 0 };
	struct rollup_result rr = { 0 };
	struct partition_meta m;
	char dir[4096], path[4200], name[SCHEMA_NAME_LEN], f[4300];
	double t;
	int err;

	memset(r, 0, sizeof(*r));
	r->minutes = minutes;
	snprintf(dir, sizeof(dir), "%s/rate-%llu", base, (unsigned long long)rate);
	if (mkdir(dir, 0755) && errno != EEXIST)
		return -errno;
	empty_dir(dir);
	fprintf(stderr, "bench_rollup: %llu flows/s for %d min: writing the partition...\n",
		(unsigned long long)rate, minutes);
	err = write_partition(dir, rate * (uint64_t)minutes * 60, minutes, r, name, sizeof(name));
	if (err)
		return err;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	t = now_s();
	if ((err = partition_seal(path, T0, NULL)) || (err = partition_read_meta(path, &m)))
		return err;
	r->seal_s = now_s() - t;
	r->bytes_raw = file_bytes(path);
	r->scan_s = scan(path);
	t = now_s();
	err = rollup_partition(dir, name, &m, horizon, T0, 5000, &rr);
	r->rollup_s = now_s() - t;
	if (err)
		return err;
	r->rows_1m = rr.rows_added[SCHEMA_KIND_1M];
	r->rows_1h = rr.rows_added[SCHEMA_KIND_1H];
	rollup_name_format(name, sizeof(name), SCHEMA_KIND_1M, T0);
	snprintf(f, sizeof(f), "%s/%s", dir, name);
	r->bytes_1m = file_bytes(f);
	rollup_name_format(name, sizeof(name), SCHEMA_KIND_1H, T0);
	snprintf(f, sizeof(f), "%s/%s", dir, name);
	r->bytes_1h = file_bytes(f);
	return 0;
}

static void print(uint64_t rate, const struct result *r, double hour_minute_ratio)
{
	double rows = (double)(r->flows + r->conns);
	double per_min = (double)r->rows_1m / r->minutes;
	double per_hour = r->minutes >= 60 ? (double)r->rows_1h * 60 / r->minutes
					   : per_min * hour_minute_ratio;
	double b1m = r->rows_1m ? (double)r->bytes_1m / (double)r->rows_1m : 0;
	double b1h = r->rows_1h ? (double)r->bytes_1h / (double)r->rows_1h : 0;
	double day_1m = per_min * 1440 * b1m, month_1h = per_hour * 24 * 30.44 * b1h;
	double gib = 1024.0 * 1024 * 1024;

	printf("\n%llu flows/s, %d min of it (%llu flows, %llu connections)\n",
	       (unsigned long long)rate, r->minutes, (unsigned long long)r->flows,
	       (unsigned long long)r->conns);
	printf("  seal               %7.2f s  (raw partition %.1f MiB)\n", r->seal_s,
	       (double)r->bytes_raw / (1 << 20));
	printf("  baseline: scan     %7.2f s  %10.0f rows/s\n", r->scan_s, rows / r->scan_s);
	printf("  rollup (1m + 1h)   %7.2f s  %10.0f rows/s  = %.2fx the scan's time\n",
	       r->rollup_s, rows / r->rollup_s, r->rollup_s / r->scan_s);
	printf("  rollup rows        1m %llu (%.3f per raw row, %.0f per minute), "
	       "1h %llu (%.0f per hour%s)\n",
	       (unsigned long long)r->rows_1m, (double)r->rows_1m / rows, per_min,
	       (unsigned long long)r->rows_1h, per_hour,
	       r->minutes >= 60 ? "" : ", estimated with the 1k hour/minute ratio");
	printf("  bytes per row      1m %.0f, 1h %.0f (indexes included)\n", b1m, b1h);
	printf("  extrapolated       1m: %.2f GiB a day, %.1f GiB for 90 d, %.1f GiB a year\n",
	       day_1m / gib, 90 * day_1m / gib, 365 * day_1m / gib);
	printf("                     1h: %.2f GiB a month, %.1f GiB a year, %.1f GiB for 400 d\n",
	       month_1h / gib, 12 * month_1h / gib, 400.0 / 30.44 * month_1h / gib);
	printf("                     default policy (90 d of 1m + 400 d of 1h): %.1f GiB\n",
	       (90 * day_1m + 400.0 / 30.44 * month_1h) / gib);
	printf("                     raw rows at this rate: %.1f GiB a day\n",
	       (double)r->bytes_raw * (1440.0 / r->minutes) / gib);
}

int main(int argc, char **argv)
{
	const char *dir = "/tmp/flowstore-bench-rollup";
	uint64_t low = 1000, high = 20000;
	int minutes = 3;
	struct result a, b;
	double ratio;
	int err;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "--low") && i + 1 < argc)
			low = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--high") && i + 1 < argc)
			high = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--minutes") && i + 1 < argc)
			minutes = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: bench_rollup [--dir DIR] [--low N] [--high N] "
				"[--minutes M]\n");
			return 2;
		}
	}
	if (!low || !high || minutes < 1 || minutes > 60) {
		fprintf(stderr, "bench_rollup: rates must be positive, minutes 1..60\n");
		return 2;
	}
	if ((mkdir(dir, 0755) && errno != EEXIST) || schema_init())
		return 1;
	if ((err = run(dir, low, 60, &a)) || (err = run(dir, high, minutes, &b))) {
		fprintf(stderr, "bench_rollup: %s (%s)\n", strerror(-err), schema_last_error());
		return 1;
	}
	ratio = a.rows_1m ? (double)a.rows_1h / ((double)a.rows_1m / 60) : 0;
	print(low, &a, ratio);
	print(high, &b, ratio);
	printf("\nhour/minute distinct-key ratio at %llu flows/s: %.1f\n",
	       (unsigned long long)low, ratio);
	return 0;
}
