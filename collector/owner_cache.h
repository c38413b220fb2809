/*
 * The owner cache: which process owns a socket, by socket cookie, so flow
 * rows get the pid and comm the TC hook cannot know.
 *
 * The TCP lifecycle program knows a socket's owner (captured in connect(),
 * or at an accepted socket's first I/O) and puts it on state and
 * connection records, and sends a datagram socket's owner at its first send
 * (owner_cache_learn()); the flow
 * program knows only the cookie of the local socket an egress packet
 * carried. The pipeline feeds every decoded row through owner_cache_apply():
 * rows that carry an owner teach the cache, flow rows that lack one are
 * filled from it. Bounded: a fixed open-addressing table; when a probe
 * window is full the least recently used entry in it is replaced, so a
 * closed connection's owner stays long enough for its flow's export (which
 * may come after the close) on any but a flooded table.
 *
 * Loop thread only (no locking). Deterministic for a given row order, so a
 * replay gives the rows the recorded run gave.
 */
#ifndef FLOWSTORE_OWNER_CACHE_H
#define FLOWSTORE_OWNER_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "schema.h"

struct owner_entry {
	uint64_t cookie; /* 0: empty */
	uint64_t used;   /* the cache's clock when last written or read */
	uint32_t pid;
	char comm[SCHEMA_COMM_LEN];
};

struct owner_cache {
	struct owner_entry *slots;
	size_t mask; /* capacity - 1; capacity is a power of two */
	uint64_t clock;
};

/* capacity is rounded up to a power of two (at least 16). */
int owner_cache_init(struct owner_cache *c, size_t capacity);
void owner_cache_destroy(struct owner_cache *c);

/* Learn from a row, or fill a flow row's missing owner. */
void owner_cache_apply(struct owner_cache *c, struct schema_row *row);

/* Learn a socket's owner from a record that is not a row (a datagram
 * socket's, bpf/events.h struct fs_sock_owner_event). comm: NUL-terminated,
 * at most SCHEMA_COMM_LEN bytes with the NUL. */
void owner_cache_learn(struct owner_cache *c, int64_t cookie, uint32_t pid, const char *comm);

#endif /* FLOWSTORE_OWNER_CACHE_H */
