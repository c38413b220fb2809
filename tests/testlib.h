/*
 * Helpers shared by the collector tests: temp dirs, a settable clock, and
 * builders of valid raw events.
 */
#ifndef FLOWSTORE_TESTLIB_H
#define FLOWSTORE_TESTLIB_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "events.h"
#include "testdir.h"

/* A realtime clock the test sets; monotonic stays real. */
struct test_clock {
	struct fs_clock clock;
	atomic_llong now;
};

static inline int64_t test_clock_realtime(void *ctx)
{
	return atomic_load(&((struct test_clock *)ctx)->now);
}

static inline int64_t test_clock_monotonic(void *ctx)
{
	(void)ctx;
	return clock_monotonic(&clock_system);
}

static inline void test_clock_init(struct test_clock *c, int64_t now)
{
	c->clock.realtime_ns = test_clock_realtime;
	c->clock.monotonic_ns = test_clock_monotonic;
	c->clock.ctx = c;
	atomic_store(&c->now, now);
}

/* A valid UDP flow event numbered i (ports and bytes derive from i). */
static inline struct fs_flow_event test_flow_event(uint64_t i)
{
	struct fs_flow_event e;

	memset(&e, 0, sizeof(e));
	e.hdr.type = FS_EVENT_FLOW;
	e.hdr.size = sizeof(e);
	e.hdr.ts_ns = 1000 + i;
	e.first_ns = 1000 + i;
	e.last_ns = 2000 + i;
	e.orig_pkts = 1;
	e.orig_bytes = 100 + i;
	e.orig_addr[10] = e.orig_addr[11] = 0xff;
	e.orig_addr[12] = 10, e.orig_addr[15] = 5;
	e.resp_addr[10] = e.resp_addr[11] = 0xff;
	e.resp_addr[12] = 192, e.resp_addr[13] = 0, e.resp_addr[14] = 2, e.resp_addr[15] = 1;
	e.orig_port = (uint16_t)(1024 + i % 60000);
	e.resp_port = 53;
	e.proto = 17;
	e.end_reason = FS_END_IDLE_TIMEOUT;
	memcpy(e.history, "D", 1);
	return e;
}

#endif /* FLOWSTORE_TESTLIB_H */
