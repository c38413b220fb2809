/*
 * Clocks, injectable so tests can cross a period boundary without waiting.
 *
 * Kernel events carry CLOCK_MONOTONIC nanoseconds; rows carry UTC
 * nanoseconds. clock_utc_offset() samples (realtime - monotonic) between two
 * realtime reads and keeps the pair that were closest together, so the
 * offset's error is bounded by half the tightest read window (tens of ns),
 * plus whatever NTP slews between two samples.
 */
#ifndef FLOWSTORE_CLOCK_H
#define FLOWSTORE_CLOCK_H

#include <stdint.h>

struct fs_clock {
	int64_t (*realtime_ns)(void *ctx);
	int64_t (*monotonic_ns)(void *ctx);
	void *ctx;
};

/* CLOCK_REALTIME and CLOCK_MONOTONIC. */
extern const struct fs_clock clock_system;

static inline int64_t clock_realtime(const struct fs_clock *c)
{
	return c->realtime_ns(c->ctx);
}

static inline int64_t clock_monotonic(const struct fs_clock *c)
{
	return c->monotonic_ns(c->ctx);
}

/* UTC ns = monotonic ns + clock_utc_offset(). */
int64_t clock_utc_offset(const struct fs_clock *c);

#endif /* FLOWSTORE_CLOCK_H */
