/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * How every kernel program of flowstore hands records to user space: its
 * `events` ring buffer, its per-CPU `losses` counters, and the wakeup
 * policy, one copy for all programs (each .bpf.c object gets its own maps).
 *
 *  - User space sizes `events` before load (bpf_map__set_max_entries).
 *  - A failed reserve is counted in losses[FS_LOSS_RINGBUF_FULL], never
 *    silent; nothing may be marked "seen" before a reserve succeeded.
 *  - ringbuf_wakeup_bytes = 0 submits with flags 0 (libbpf's adaptive
 *    wakeup); N > 0 submits with BPF_RB_NO_WAKEUP unless N bytes or more
 *    are waiting, then forces a wakeup (user space also drains on a timer).
 *
 * Include after vmlinux.h, the libbpf headers and events.h.
 */
#ifndef FLOWSTORE_BPF_OUTPUT_H
#define FLOWSTORE_BPF_OUTPUT_H

const volatile __u64 ringbuf_wakeup_bytes = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 2 << 20); /* default; user space sets it before load */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FS_LOSS_MAX);
	__type(key, __u32);
	__type(value, __u64);
} losses SEC(".maps");

/* Entry `key` of a per-CPU array of __u64 counters, plus one. */
static __always_inline void percpu_inc(void *map, __u32 key)
{
	__u64 *n = bpf_map_lookup_elem(map, &key);

	if (n)
		*n += 1; /* per-CPU: no other writer */
}

static __always_inline void count_loss(__u32 reason)
{
	percpu_inc(&losses, reason);
}

static __always_inline void *output_reserve(__u64 size)
{
	void *r = bpf_ringbuf_reserve(&events, size, 0);

	if (!r)
		count_loss(FS_LOSS_RINGBUF_FULL);
	return r;
}

static __always_inline void output_submit(void *r)
{
	__u64 flags = 0;

	if (ringbuf_wakeup_bytes) {
		if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= ringbuf_wakeup_bytes)
			flags = BPF_RB_FORCE_WAKEUP;
		else
			flags = BPF_RB_NO_WAKEUP;
	}
	bpf_ringbuf_submit(r, flags);
}

#endif /* FLOWSTORE_BPF_OUTPUT_H */
