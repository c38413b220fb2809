/*
 * The user-space half of the flow map's contract (bpf/events.h, "The flow
 * map"; see flow_sweep.h).
 *
 * Invariants:
 *  1. Values are read under the entry's lock (BPF_F_LOCK), and taken out
 *     under it (bpf_map_lookup_and_delete_elem_flags, BPF_F_LOCK, Linux
 *     5.14): what is exported is exactly what was removed, and a packet
 *     either made it into the export or finds no entry and starts a new one.
 *     A kernel that refuses the flag on lookup-and-delete gets a locked
 *     lookup then a delete: a packet counted between the two is lost. That
 *     is logged once.
 *  2. An entry in FS_FLOW_EXPORTED is the program's: never exported or
 *     deleted here. One that turns so between our look and our take (the
 *     program ended it in between) was already exported by the program: the
 *     copy we took is dropped, not exported twice. The program's own delete
 *     then finds nothing (or, if a new packet remade the key in that
 *     instant, removes the new entry: a window of a few instructions).
 *  3. The walk reads the map in batches (BPF_MAP_LOOKUP_BATCH, keys and
 *     values together, each value copied under its lock): one system call
 *     per batch instead of two per entry, and the kernel's batch cursor is a
 *     bucket index, so deleting entries never sends the walk back to the
 *     start. Keys inserted meanwhile may be seen next pass; none is seen
 *     twice in one pass.
 */
#include "flow_sweep.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>

#include "log.h"

struct flow_sweep {
	int map_fd;
	size_t budget;
	struct fs_flow_key *keys;     /* budget of them */
	struct fs_flow_value *values; /* budget of them */
	uint64_t batch;               /* the kernel's cursor (a bucket index) */
	bool has_batch;
	bool unlocked_delete; /* the kernel refused BPF_F_LOCK on lookup-and-delete */
	bool batch_failed;    /* logged once */
};

int flow_sweep_new(int map_fd, size_t budget, struct flow_sweep **out)
{
	struct flow_sweep *fs;

	if (!budget)
		return -EINVAL;
	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->keys = calloc(budget, sizeof(*fs->keys));
	fs->values = calloc(budget, sizeof(*fs->values));
	if (!fs->keys || !fs->values) {
		flow_sweep_free(fs);
		return -ENOMEM;
	}
	fs->map_fd = map_fd;
	fs->budget = budget;
	*out = fs;
	return 0;
}

void flow_sweep_free(struct flow_sweep *fs)
{
	if (!fs)
		return;
	free(fs->keys);
	free(fs->values);
	free(fs);
}

void flow_sweep_restart(struct flow_sweep *fs)
{
	fs->has_batch = false;
}

void flow_sweep_event(const struct fs_flow_value *v, uint8_t end_reason, uint64_t now_ns,
		      struct fs_flow_event *e)
{
	int orig = v->orig_side ? 1 : 0;

	memset(e, 0, sizeof(*e));
	e->hdr.ts_ns = now_ns;
	e->hdr.type = FS_EVENT_FLOW;
	e->hdr.size = sizeof(*e);
	e->first_ns = v->first_ns;
	e->last_ns = v->last_ns;
	e->orig_pkts = v->orig_pkts;
	e->orig_bytes = v->orig_bytes;
	e->resp_pkts = v->resp_pkts;
	e->resp_bytes = v->resp_bytes;
	e->sock_cookie = v->sock_cookie;
	memcpy(e->orig_addr, v->key.addr[orig], sizeof(e->orig_addr));
	memcpy(e->resp_addr, v->key.addr[!orig], sizeof(e->resp_addr));
	e->orig_port = v->key.port[orig];
	e->resp_port = v->key.port[!orig];
	e->ifindex = v->key.ifindex;
	e->proto = v->key.proto;
	e->end_reason = end_reason;
	e->orig_tcp_flags = v->orig_tcp_flags;
	e->resp_tcp_flags = v->resp_tcp_flags;
	memcpy(e->history, v->history, sizeof(e->history));
}

/* Reads the next batch of keys and values from the cursor on; returns how
 * many. -ENOENT from the kernel means this batch ends the pass. */
static size_t read_batch(struct flow_sweep *fs, bool *pass_done)
{
	DECLARE_LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_F_LOCK);
	uint64_t next = 0;
	__u32 count = (__u32)fs->budget;
	int err;

	err = bpf_map_lookup_batch(fs->map_fd, fs->has_batch ? &fs->batch : NULL, &next, fs->keys,
				   fs->values, &count, &opts);
	*pass_done = err != 0;
	if (err && err != -ENOENT) {
		if (!fs->batch_failed)
			LOG(LOG_WARN, "cannot read the flow map: %s", strerror(-err));
		fs->batch_failed = true;
		count = 0;
	}
	fs->batch = next;
	fs->has_batch = !*pass_done;
	return count;
}

/* Takes the entry out under its lock. 0, or a negative errno. */
static int take(struct flow_sweep *fs, const struct fs_flow_key *key, struct fs_flow_value *v)
{
	int err;

	if (!fs->unlocked_delete) {
		err = bpf_map_lookup_and_delete_elem_flags(fs->map_fd, key, v, BPF_F_LOCK);
		if (err != -EINVAL && err != -ENOTSUP && err != -EOPNOTSUPP)
			return err;
		fs->unlocked_delete = true;
		LOG(LOG_WARN, "this kernel cannot take a flow out of the map under its lock "
			      "(%s): a packet that arrives while a flow is exported may be lost",
		    strerror(-err));
	}
	err = bpf_map_lookup_elem_flags(fs->map_fd, key, v, BPF_F_LOCK);
	if (!err && v->state != FS_FLOW_EXPORTED)
		err = bpf_map_delete_elem(fs->map_fd, key);
	return err;
}

/* Exports the entry of key (whose value v was read under its lock) if it is
 * due. true if it was taken out. */
static bool sweep_one(struct flow_sweep *fs, const struct fs_flow_key *key,
		      const struct fs_flow_value *seen, uint64_t now_ns, uint64_t idle_ns,
		      uint8_t end_reason, flow_sweep_emit emit, void *ctx)
{
	struct fs_flow_value v;
	struct fs_flow_event e;

	if (seen->state == FS_FLOW_EXPORTED)
		return false;
	if (idle_ns && (now_ns < seen->last_ns || now_ns - seen->last_ns < idle_ns))
		return false;
	if (take(fs, key, &v))
		return false; /* gone meanwhile */
	if (v.state == FS_FLOW_EXPORTED)
		return true; /* the program exported it meanwhile (invariant 2) */
	flow_sweep_event(&v, end_reason, now_ns, &e);
	emit(ctx, &e);
	return true;
}

size_t flow_sweep_step(struct flow_sweep *fs, uint64_t now_ns, uint64_t idle_ns,
		       uint8_t end_reason, flow_sweep_emit emit, void *ctx, bool *pass_done)
{
	size_t n = read_batch(fs, pass_done), exported = 0;

	for (size_t i = 0; i < n; i++)
		if (sweep_one(fs, &fs->keys[i], &fs->values[i], now_ns, idle_ns, end_reason, emit,
			      ctx))
			exported++;
	return exported;
}
