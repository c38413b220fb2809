/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * User space: sizing conn.bpf.c's connection table before load (its
 * invariant 3). `conns` is a direct-mapped array indexed by socket cookie,
 * `conns_spill` the hash for sockets whose slot another live socket holds.
 *
 * Include after conn.skel.h.
 */
#ifndef FLOWSTORE_BPF_CONN_TABLE_H
#define FLOWSTORE_BPF_CONN_TABLE_H

#include <errno.h>
#include <stdint.h>

#include <bpf/libbpf.h>

/*
 * Slots for `sockets` sockets (rounded up to a power of two, at most 2^31)
 * and a spill of `spill` entries (0: half the slots).
 *
 * The table holds slots + spill sockets when their cookies are
 * consecutive (sockets opened together), and fewer when they collide:
 * long-lived sockets opened over hours have cookies that fall on slots
 * about at random, and N of them over S slots take about
 * S * (1 - e^(-N/S)) slots, the rest spilling. With the spill at half the
 * slots that is room for about 1.25 * S such sockets (N = S spills 37%);
 * a quarter (the old default) ran out at 0.8 * S, below `sockets`.
 */
static inline int conn_table_size(struct conn_bpf *skel, uint32_t sockets, uint32_t spill)
{
	uint32_t slots = 1;
	int err;

	if (sockets == 0 || sockets > (1u << 31))
		return -EINVAL;
	while (slots < sockets)
		slots <<= 1;
	if (!spill)
		spill = slots >= 2 ? slots / 2 : 1;
	err = bpf_map__set_max_entries(skel->maps.conns, slots);
	if (!err)
		err = bpf_map__set_max_entries(skel->maps.conns_spill, spill);
	if (!err)
		skel->rodata->conn_slot_mask = slots - 1;
	return err;
}

#endif /* FLOWSTORE_BPF_CONN_TABLE_H */
