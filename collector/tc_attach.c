/*
 * TC attachment of one interface (see tc_attach.h).
 *
 * 1. TCX (TC_MODE_TCX, and TC_MODE_AUTO first):
 *    bpf_link_create(prog, ifindex, BPF_TCX_INGRESS/EGRESS).
 *    libbpf 1.1 has no bpf_program__attach_tcx, and the system's linux/bpf.h
 *    may predate the attach types, so their numbers are ours (they are ABI).
 *    Our links go after any other TCX program; TC_ACT_UNSPEC (what our
 *    programs return) is TCX_NEXT: whatever follows decides the packet.
 * 2. clsact (TC_MODE_CLSACT): the qdisc (kept if it was there, created and
 *    remembered if not) and one filter per hook. Detaching removes exactly
 *    our filters (by handle and priority), then the qdisc if ours.
 *    Under TC_MODE_AUTO, a kernel without TCX says EINVAL (unknown attach
 *    type); from then on every interface gets clsact. TC_MODE_TCX returns
 *    that EINVAL instead.
 * 3. An attach that fails half way undoes its first half.
 */
#include "tc_attach.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "log.h"

/* enum bpf_attach_type, Linux 6.6 (include/uapi/linux/bpf.h) */
#define ATTACH_TCX_INGRESS 46
#define ATTACH_TCX_EGRESS 47

enum { SIDE_INGRESS, SIDE_EGRESS, NSIDES };

struct tc_attachment {
	int ifindex;
	bool tcx;
	int link_fd[NSIDES];      /* tcx */
	bool created_qdisc;       /* clsact: ours to remove */
	__u32 handle[NSIDES];     /* clsact: our filters */
	__u32 priority[NSIDES];
	bool filter[NSIDES];
};

/* Set once a kernel refused TCX: no use asking again for every interface. */
static bool tcx_missing;

static int tcx_attach(struct tc_attachment *a, const int fds[NSIDES])
{
	static const int types[NSIDES] = { ATTACH_TCX_INGRESS, ATTACH_TCX_EGRESS };

	for (int i = 0; i < NSIDES; i++) {
		int fd;

		if (fds[i] < 0)
			continue;
		fd = bpf_link_create(fds[i], a->ifindex, (enum bpf_attach_type)types[i], NULL);
		if (fd < 0)
			return fd;
		a->link_fd[i] = fd;
	}
	return 0;
}

static void tcx_detach(struct tc_attachment *a)
{
	for (int i = 0; i < NSIDES; i++) {
		if (a->link_fd[i] >= 0)
			close(a->link_fd[i]);
		a->link_fd[i] = -1;
	}
}

static void clsact_detach(struct tc_attachment *a, bool gone)
{
	static const enum bpf_tc_attach_point points[NSIDES] = { BPF_TC_INGRESS, BPF_TC_EGRESS };
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = a->ifindex);
	int err;

	for (int i = 0; i < NSIDES && !gone; i++) {
		DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = a->handle[i],
				    .priority = a->priority[i]);

		if (!a->filter[i])
			continue;
		hook.attach_point = points[i];
		err = bpf_tc_detach(&hook, &opts);
		if (err && err != -ENOENT && err != -ENODEV)
			LOG(LOG_WARN, "ifindex %d: cannot remove our tc filter: %d", a->ifindex, err);
	}
	if (a->created_qdisc && !gone) {
		hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
		err = bpf_tc_hook_destroy(&hook);
		if (err && err != -ENOENT && err != -ENODEV)
			LOG(LOG_WARN, "ifindex %d: cannot remove the clsact qdisc we made: %d",
			    a->ifindex, err);
	}
	a->created_qdisc = false;
	a->filter[SIDE_INGRESS] = a->filter[SIDE_EGRESS] = false;
}

static int clsact_attach(struct tc_attachment *a, const int fds[NSIDES])
{
	static const enum bpf_tc_attach_point points[NSIDES] = { BPF_TC_INGRESS, BPF_TC_EGRESS };
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = a->ifindex,
			    .attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS);
	int err = bpf_tc_hook_create(&hook);

	if (err == 0)
		a->created_qdisc = true;
	else if (err != -EEXIST)
		return err;
	for (int i = 0; i < NSIDES; i++) {
		DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = fds[i]);

		if (fds[i] < 0)
			continue;
		hook.attach_point = points[i];
		err = bpf_tc_attach(&hook, &opts);
		if (err) {
			clsact_detach(a, false);
			return err;
		}
		a->handle[i] = opts.handle;
		a->priority[i] = opts.priority;
		a->filter[i] = true;
	}
	return 0;
}

/* Both links, or none. */
static int tcx_attach_both(struct tc_attachment *a, const int fds[NSIDES])
{
	int err;

	a->tcx = true;
	err = tcx_attach(a, fds);
	if (err)
		tcx_detach(a);
	return err;
}

/* TC_MODE_AUTO: the first EINVAL from TCX turns every later attach into
 * clsact. */
static int auto_attach(struct tc_attachment *a, const int fds[NSIDES])
{
	if (!tcx_missing) {
		int err = tcx_attach_both(a, fds);

		if (err != -EINVAL)
			return err;
		tcx_missing = true;
		LOG(LOG_INFO, "this kernel has no TCX links (Linux < 6.6): attaching with "
			      "clsact filters, which a kill -9 leaves behind");
	}
	a->tcx = false;
	return clsact_attach(a, fds);
}

int tc_attach(int ifindex, int ingress_fd, int egress_fd, enum tc_mode mode,
	      struct tc_attachment **out)
{
	const int fds[NSIDES] = { ingress_fd, egress_fd };
	struct tc_attachment *a;
	int err;

	if (mode != TC_MODE_AUTO && mode != TC_MODE_TCX && mode != TC_MODE_CLSACT)
		return -EINVAL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->ifindex = ifindex;
	a->link_fd[SIDE_INGRESS] = a->link_fd[SIDE_EGRESS] = -1;
	if (mode == TC_MODE_TCX)
		err = tcx_attach_both(a, fds);
	else if (mode == TC_MODE_CLSACT)
		err = clsact_attach(a, fds);
	else
		err = auto_attach(a, fds);
	if (err) {
		free(a);
		return err;
	}
	*out = a;
	return 0;
}

const char *tc_attach_kind(const struct tc_attachment *a)
{
	return a->tcx ? "tcx" : "clsact";
}

void tc_detach(struct tc_attachment *a, int gone)
{
	if (!a)
		return;
	if (a->tcx)
		tcx_detach(a); /* a link whose device went is closed the same way */
	else
		clsact_detach(a, gone);
	free(a);
}
