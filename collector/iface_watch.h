/*
 * The network interfaces of our namespace, as rtnetlink tells them: the ones
 * there now, then every change (one appears, comes up, is renamed, goes
 * away), read on the libuv loop.
 *
 * The socket joins RTMGRP_LINK before the first listing is asked for, so no
 * change falls between the two; a change may then be told twice, and a
 * listener must take every event as "this is how the link is now". When the
 * socket's buffer overflows (ENOBUFS: changes were lost), the whole list is
 * asked for again.
 *
 * Lifetime: iface_watch_open() allocates and reports the current links;
 * iface_watch_start() reads changes on the loop; iface_watch_close() closes
 * the handle and calls `closed` once libuv has; then iface_watch_free().
 * A watch that never started may be freed at once.
 */
#ifndef FLOWSTORE_IFACE_WATCH_H
#define FLOWSTORE_IFACE_WATCH_H

#include <stdbool.h>
#include <uv.h>

struct iface_event {
	int ifindex;
	const char *name;  /* valid during the call only */
	unsigned flags;    /* IFF_* */
	unsigned short type; /* ARPHRD_* */
	bool removed;      /* the link left our namespace */
};

typedef void (*iface_watch_cb)(void *ctx, const struct iface_event *e);

struct iface_watch;

/* Opens the socket and reports every link there is now to cb, before it
 * returns. 0 or a negative errno (logged). */
int iface_watch_open(iface_watch_cb cb, void *ctx, struct iface_watch **out);

/* From now on changes reach cb from the loop. */
int iface_watch_start(struct iface_watch *w, uv_loop_t *loop);

void iface_watch_close(struct iface_watch *w, void (*closed)(void *ctx));

void iface_watch_free(struct iface_watch *w);

#endif /* FLOWSTORE_IFACE_WATCH_H */
