/* The system clock and the monotonic → UTC offset (see clock.h). */
#include "clock.h"

#include <time.h>

static int64_t read_clock(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t system_realtime(void *ctx)
{
	(void)ctx;
	return read_clock(CLOCK_REALTIME);
}

static int64_t system_monotonic(void *ctx)
{
	(void)ctx;
	return read_clock(CLOCK_MONOTONIC);
}

const struct fs_clock clock_system = {
	.realtime_ns = system_realtime,
	.monotonic_ns = system_monotonic,
	.ctx = 0,
};

int64_t clock_utc_offset(const struct fs_clock *c)
{
	int64_t best_window = INT64_MAX, best = 0;

	for (int i = 0; i < 3; i++) {
		int64_t r1 = clock_realtime(c);
		int64_t m = clock_monotonic(c);
		int64_t r2 = clock_realtime(c);

		if (r2 - r1 < best_window) {
			best_window = r2 - r1;
			best = r1 + (r2 - r1) / 2 - m;
		}
	}
	return best;
}
