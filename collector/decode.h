/*
 * Decoding: raw ring-buffer bytes (bpf/events.h) → a row of schema.h.
 *
 * Every raw event from every source passes through decode_event(), which
 * trusts nothing: the size must cover a header, hdr.size must equal the bytes
 * and the type's struct, enums must be in range. A malformed event yields a
 * reason and no row; it is counted by the caller and skipped.
 */
#ifndef FLOWSTORE_DECODE_H
#define FLOWSTORE_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "schema.h"
#include "stats.h"

/* Resolves an interface index to its name; returns "" (buf[0] = 0) if unknown. */
typedef void (*decode_ifname_fn)(uint32_t ifindex, char buf[16]);

/* Cached if_indextoname(); a miss is looked up again at most once a second.
 * The cache is unlocked: call it from one thread (the loop). */
void decode_ifname_system(uint32_t ifindex, char buf[16]);

/*
 * Decode one event. Returns 0 and fills *row, or -1 and sets *reason.
 * utc_offset_ns turns the event's monotonic times into UTC.
 */
int decode_event(const void *data, size_t size, int64_t utc_offset_ns,
		 decode_ifname_fn ifname, struct schema_row *row,
		 enum malformed_reason *reason);

/* The owner of a socket, from an FS_EVENT_SOCK_OWNER record (not a row). */
struct decode_owner {
	int64_t sock_cookie;
	uint32_t pid;
	char comm[SCHEMA_COMM_LEN]; /* NUL-terminated */
};

/* Is this an FS_EVENT_SOCK_OWNER record (by its header)? Then it goes to
 * decode_sock_owner(), not decode_event(). */
bool decode_is_sock_owner(const void *data, size_t size);

/* Decode one FS_EVENT_SOCK_OWNER record. 0, or -1 with *reason set. */
int decode_sock_owner(const void *data, size_t size, struct decode_owner *out,
		      enum malformed_reason *reason);

/* Zeek's conn_state from a flow's protocol, history and packet counts. */
const char *decode_conn_state(uint8_t proto, const char *history, uint64_t orig_pkts,
			      uint64_t resp_pkts);

/* "ESTABLISHED", ... ; NULL if out of range. */
const char *decode_tcp_state_name(unsigned state);

/* 16 bytes (IPv4 v4-mapped) → '10.0.0.5' or '2001:db8::1'. */
void decode_addr(const uint8_t addr[16], char out[SCHEMA_ADDR_LEN]);

#endif /* FLOWSTORE_DECODE_H */
