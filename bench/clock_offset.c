/*
 * bench/clock_offset: how accurate is the kernel-time → UTC conversion?
 *
 * Kernel records carry CLOCK_MONOTONIC; flowstored adds an offset
 * (realtime − monotonic) from clock_utc_offset(), re-sampled every 100 ms.
 * A row's UTC time is off by (a) half the realtime read window the offset
 * was taken in, and (b) how far the true offset moves before the next
 * sample (NTP slewing; a step shows as a jump). This samples exactly as the
 * daemon does, for SECONDS, and prints both, plus the kernel's NTP state.
 *
 *   build/gcc/bench/bench_clock_offset [SECONDS]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/timex.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static int64_t pct(int64_t *v, size_t n, double p)
{
	qsort(v, n, sizeof(*v), cmp_i64);
	return v[(size_t)(p * (double)(n - 1))];
}

/* The tightest of three read windows, as clock_utc_offset() picks it. */
static int64_t best_window(void)
{
	int64_t best = INT64_MAX;

	for (int i = 0; i < 3; i++) {
		int64_t r1 = clock_realtime(&clock_system);
		int64_t r2;

		(void)clock_monotonic(&clock_system);
		r2 = clock_realtime(&clock_system);
		if (r2 - r1 < best)
			best = r2 - r1;
	}
	return best;
}

int main(int argc, char **argv)
{
	int seconds = argc > 1 ? atoi(argv[1]) : 10;
	size_t n = (size_t)(seconds > 0 ? seconds : 10) * 10;
	int64_t *win = calloc(n, sizeof(*win)), *delta = calloc(n, sizeof(*delta));
	int64_t prev = clock_utc_offset(&clock_system);
	struct timex tx = { 0 };
	int state = adjtimex(&tx);

	if (!win || !delta)
		return 1;
	for (size_t i = 0; i < n; i++) {
		int64_t off;

		usleep(100000);
		win[i] = best_window();
		off = clock_utc_offset(&clock_system);
		delta[i] = llabs(off - prev);
		prev = off;
	}
	printf("bench/clock_offset: %zu samples, 100 ms apart (as flowstored re-samples)\n", n);
	printf("  read window (error <= window/2): p50 %lld ns, p99 %lld ns, max %lld ns\n",
	       (long long)pct(win, n, 0.5), (long long)pct(win, n, 0.99),
	       (long long)pct(win, n, 1.0));
	printf("  offset change between samples (drift within 100 ms): p50 %lld ns, p99 %lld ns, max %lld ns\n",
	       (long long)pct(delta, n, 0.5), (long long)pct(delta, n, 0.99),
	       (long long)pct(delta, n, 1.0));
	printf("  kernel NTP: %s, frequency adjustment %.3f ppm, status 0x%x\n",
	       state == TIME_ERROR ? "unsynchronised" : "synchronised",
	       (double)tx.freq / 65536.0, tx.status);
	free(win);
	free(delta);
	return 0;
}
