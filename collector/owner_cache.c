/* Socket cookie → owning process (see owner_cache.h). */
#include "owner_cache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROBE_WINDOW 8

int owner_cache_init(struct owner_cache *c, size_t capacity)
{
	size_t n = 16;

	while (n < capacity)
		n <<= 1;
	c->slots = calloc(n, sizeof(*c->slots));
	if (!c->slots)
		return -ENOMEM;
	c->mask = n - 1;
	c->clock = 0;
	return 0;
}

void owner_cache_destroy(struct owner_cache *c)
{
	free(c->slots);
	c->slots = NULL;
}

static size_t slot_of(const struct owner_cache *c, uint64_t cookie)
{
	/* cookies are sequential: spread them (Fibonacci hashing) */
	return (size_t)((cookie * 0x9E3779B97F4A7C15ULL) >> 32) & c->mask;
}

static struct owner_entry *find(struct owner_cache *c, uint64_t cookie)
{
	size_t s = slot_of(c, cookie);

	for (size_t i = 0; i < PROBE_WINDOW; i++) {
		struct owner_entry *e = &c->slots[(s + i) & c->mask];

		if (e->cookie == cookie)
			return e;
	}
	return NULL;
}

/* The entry for cookie: its own, an empty one, or the least recently used. */
static struct owner_entry *claim(struct owner_cache *c, uint64_t cookie)
{
	size_t s = slot_of(c, cookie);
	struct owner_entry *victim = NULL;

	for (size_t i = 0; i < PROBE_WINDOW; i++) {
		struct owner_entry *e = &c->slots[(s + i) & c->mask];

		if (e->cookie == cookie || e->cookie == 0)
			return e;
		if (!victim || e->used < victim->used)
			victim = e;
	}
	return victim;
}

static void learn(struct owner_cache *c, int64_t cookie, uint32_t pid, const char *comm)
{
	struct owner_entry *e;

	if (!cookie || !pid)
		return;
	e = claim(c, (uint64_t)cookie);
	e->cookie = (uint64_t)cookie;
	e->used = ++c->clock;
	e->pid = pid;
	memcpy(e->comm, comm, sizeof(e->comm));
}

void owner_cache_learn(struct owner_cache *c, int64_t cookie, uint32_t pid, const char *comm)
{
	char padded[SCHEMA_COMM_LEN] = { 0 };

	snprintf(padded, sizeof(padded), "%s", comm);
	learn(c, cookie, pid, padded);
}

static void fill(struct owner_cache *c, struct flow_row *r)
{
	struct owner_entry *e;

	if (r->pid || !r->sock_cookie)
		return;
	e = find(c, (uint64_t)r->sock_cookie);
	if (!e)
		return;
	e->used = ++c->clock;
	r->pid = e->pid;
	memcpy(r->comm, e->comm, sizeof(r->comm));
}

void owner_cache_apply(struct owner_cache *c, struct schema_row *row)
{
	switch (row->table) {
	case SCHEMA_FLOWS:
		fill(c, &row->flow);
		break;
	case SCHEMA_TCP_STATES:
		learn(c, row->state.sock_cookie, row->state.pid, row->state.comm);
		break;
	case SCHEMA_CONNECTIONS:
		learn(c, row->conn.sock_cookie, row->conn.pid, row->conn.comm);
		break;
	default:
		break;
	}
}
