/*
 * Link changes from rtnetlink (see iface_watch.h).
 *
 * One NETLINK_ROUTE socket, bound to RTMGRP_LINK, non-blocking. The first
 * listing (RTM_GETLINK dump) is read synchronously in iface_watch_open(),
 * waiting for its NLMSG_DONE with poll(); later messages, the dump's
 * multicast companions and a re-dump after ENOBUFS included, are read by a
 * uv_poll_t callback until EAGAIN. Every RTM_NEWLINK / RTM_DELLINK becomes
 * one iface_event; anything else is ignored.
 */
#include "iface_watch.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>

#include "log.h"

#define RECV_BUF_BYTES 32768
#define DUMP_WAIT_MS 5000

struct iface_watch {
	int fd;
	uint32_t dump_seq;
	bool dump_done;
	bool started, closing;
	iface_watch_cb cb;
	void *ctx;
	void (*closed)(void *ctx);
	uv_poll_t poll;
	char buf[RECV_BUF_BYTES];
};

static int request_dump(struct iface_watch *w)
{
	struct {
		struct nlmsghdr nh;
		struct ifinfomsg ifi;
	} req = {
		.nh = {
			.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg)),
			.nlmsg_type = RTM_GETLINK,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
			.nlmsg_seq = ++w->dump_seq,
		},
		.ifi = { .ifi_family = AF_UNSPEC },
	};

	w->dump_done = false;
	return send(w->fd, &req, req.nh.nlmsg_len, 0) < 0 ? -errno : 0;
}

static void report_link(struct iface_watch *w, const struct nlmsghdr *nh)
{
	const struct ifinfomsg *ifi = NLMSG_DATA(nh);
	int len = (int)IFLA_PAYLOAD(nh);
	char name[IF_NAMESIZE] = "";
	struct iface_event e;

	if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(*ifi)))
		return;
	for (const struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		if (a->rta_type != IFLA_IFNAME)
			continue;
		size_t n = RTA_PAYLOAD(a) < sizeof(name) ? RTA_PAYLOAD(a) : sizeof(name) - 1;

		memcpy(name, RTA_DATA(a), n);
		name[n] = 0; /* the payload ends with a NUL; this is for one that does not */
	}
	e = (struct iface_event){
		.ifindex = ifi->ifi_index,
		.name = name,
		.flags = ifi->ifi_flags,
		.type = ifi->ifi_type,
		.removed = nh->nlmsg_type == RTM_DELLINK,
	};
	w->cb(w->ctx, &e);
}

/* One datagram's messages. */
static void handle(struct iface_watch *w, size_t n)
{
	__u32 len = (__u32)n;

	for (const struct nlmsghdr *nh = (const void *)w->buf; NLMSG_OK(nh, len);
	     nh = NLMSG_NEXT(nh, len)) {
		switch (nh->nlmsg_type) {
		case RTM_NEWLINK:
		case RTM_DELLINK:
			report_link(w, nh);
			break;
		case NLMSG_DONE:
		case NLMSG_ERROR: /* a failed dump: it ends there */
			if (nh->nlmsg_seq == w->dump_seq)
				w->dump_done = true;
			break;
		default:
			break;
		}
	}
}

/* Reads until the socket is empty: 0, or a negative errno. */
static int read_all(struct iface_watch *w)
{
	for (;;) {
		ssize_t n = recv(w->fd, w->buf, sizeof(w->buf), 0);

		if (n > 0) {
			handle(w, (size_t)n);
			continue;
		}
		if (n == 0 || errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == ENOBUFS) {
			LOG(LOG_WARN, "link changes came faster than we read them; listing the "
				      "interfaces again");
			int err = request_dump(w);

			if (err)
				return err;
			continue;
		}
		return -errno;
	}
}

static int first_listing(struct iface_watch *w)
{
	struct pollfd p = { .fd = w->fd, .events = POLLIN };
	int err = request_dump(w);

	while (!err && !w->dump_done) {
		int rc = poll(&p, 1, DUMP_WAIT_MS);

		if (rc == 0)
			return -ETIMEDOUT;
		if (rc < 0 && errno != EINTR)
			return -errno;
		err = read_all(w);
	}
	return err;
}

int iface_watch_open(iface_watch_cb cb, void *ctx, struct iface_watch **out)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK };
	struct iface_watch *w = calloc(1, sizeof(*w));
	int err;

	if (!w)
		return -ENOMEM;
	w->cb = cb;
	w->ctx = ctx;
	w->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
	if (w->fd < 0 || bind(w->fd, (struct sockaddr *)&sa, sizeof(sa))) {
		err = -errno;
		LOG(LOG_ERROR, "cannot watch the network interfaces (rtnetlink): %s",
		    strerror(-err));
		iface_watch_free(w);
		return err;
	}
	err = first_listing(w);
	if (err) {
		LOG(LOG_ERROR, "cannot list the network interfaces (rtnetlink): %s",
		    strerror(-err));
		iface_watch_free(w);
		return err;
	}
	*out = w;
	return 0;
}

static void on_readable(uv_poll_t *h, int status, int events)
{
	struct iface_watch *w = h->data;
	int err;

	(void)events;
	if (status < 0) {
		LOG(LOG_WARN, "watching the network interfaces: %s; interfaces that appear "
			      "from now on are not attached", uv_strerror(status));
		uv_poll_stop(h);
		return;
	}
	err = read_all(w);
	if (err) {
		LOG(LOG_WARN, "reading link changes: %s; interfaces that appear from now on "
			      "are not attached", strerror(-err));
		uv_poll_stop(h);
	}
}

int iface_watch_start(struct iface_watch *w, uv_loop_t *loop)
{
	int err = uv_poll_init(loop, &w->poll, w->fd);

	if (err) {
		LOG(LOG_ERROR, "cannot watch the network interfaces: %s", uv_strerror(err));
		return err;
	}
	w->poll.data = w;
	w->started = true;
	return uv_poll_start(&w->poll, UV_READABLE, on_readable);
}

static void on_closed(uv_handle_t *h)
{
	struct iface_watch *w = h->data;

	w->closed(w->ctx);
}

void iface_watch_close(struct iface_watch *w, void (*closed)(void *ctx))
{
	if (!w->started || w->closing) {
		closed(w->ctx);
		return;
	}
	w->closing = true;
	w->closed = closed;
	uv_close((uv_handle_t *)&w->poll, on_closed);
}

void iface_watch_free(struct iface_watch *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	free(w);
}
