/*
 * The synthetic event generator: a realistic mix of what the kernel programs
 * emit, for tests, benchmarks and trying flowstore without root.
 *
 * Mix: IPv4 and IPv6 (about 70/30); TCP connections with their whole
 * lifecycle (state transitions, a connection record at close, a flow record),
 * outbound and inbound, most ending normally (SF), some refused (REJ),
 * unanswered (S0) or reset (RSTO/RSTR); UDP (mostly DNS) and ICMP/ICMPv6 echo
 * flows. Remote addresses and ports follow a skewed (Zipf-like) popularity, a
 * few local processes own most connections. Times come from the monotonic
 * clock the caller passes, as kernel events would: a lifecycle's events are
 * stamped in the recent past and never in the future.
 *
 * Deterministic for a given seed and sequence of `now` values.
 */
#ifndef FLOWSTORE_SYNTHETIC_H
#define FLOWSTORE_SYNTHETIC_H

#include <stddef.h>
#include <stdint.h>

#include "events.h"

struct synthetic; /* opaque; synthetic_free() frees */

int synthetic_new(uint64_t seed, struct synthetic **out);
void synthetic_free(struct synthetic *g);

/*
 * Write the next event into buf (at least FS_EVENT_MAX_SIZE bytes), stamped
 * relative to mono_now_ns. Returns its size.
 */
size_t synthetic_next(struct synthetic *g, int64_t mono_now_ns, void *buf);

#endif /* FLOWSTORE_SYNTHETIC_H */
