/*
 * Exporting flows from the kernel's flow map (`flows` of bpf/flow.bpf.c)
 * from user space: the idle ones while running (end_reason idle_timeout),
 * every one at shutdown (end_reason shutdown). The map's rules are in
 * bpf/events.h; this is the user-space side of them.
 *
 * A sweep is done in steps, each looking at a bounded number of entries, so
 * a full map never holds the loop for long: a step reads the next batch of
 * keys and values (BPF_MAP_LOOKUP_BATCH, each value under its entry's lock)
 * from where the previous one stopped, and takes out (lookup-and-delete,
 * under the lock) those to export. Each export becomes a struct fs_flow_event, exactly as the kernel
 * program would have written it, handed to `emit`.
 *
 * Lifetime: flow_sweep_new() allocates; flow_sweep_free() frees. The map fd
 * is borrowed: it must outlive the sweep.
 */
#ifndef FLOWSTORE_FLOW_SWEEP_H
#define FLOWSTORE_FLOW_SWEEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "events.h"

struct flow_sweep;

/* e is valid for the duration of the call only. */
typedef void (*flow_sweep_emit)(void *ctx, const struct fs_flow_event *e);

/* budget: entries looked at per step (> 0; at least the longest hash
 * bucket: a few thousand is plenty). 0 or a negative errno. */
int flow_sweep_new(int map_fd, size_t budget, struct flow_sweep **out);

/*
 * One step: looks at up to `budget` entries, exports those whose last
 * packet is at least idle_ns before now_ns (CLOCK_MONOTONIC; idle_ns 0:
 * every entry), each with end_reason, ts_ns = now_ns. Returns how many it
 * exported. *pass_done is set when the walk reached the end of the map: the
 * next step starts from its beginning again.
 */
size_t flow_sweep_step(struct flow_sweep *fs, uint64_t now_ns, uint64_t idle_ns,
		       uint8_t end_reason, flow_sweep_emit emit, void *ctx, bool *pass_done);

/* Starts the next step from the beginning of the map. */
void flow_sweep_restart(struct flow_sweep *fs);

/* Fills e from an entry taken out of the map (as the program's record_fill). */
void flow_sweep_event(const struct fs_flow_value *v, uint8_t end_reason, uint64_t now_ns,
		      struct fs_flow_event *e);

void flow_sweep_free(struct flow_sweep *fs);

#endif /* FLOWSTORE_FLOW_SWEEP_H */
