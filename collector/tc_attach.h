/*
 * Attaching a pair of TC programs (ingress, egress) to one network interface,
 * and taking them off again.
 *
 * Two ways: TCX links (Linux >= 6.6), or the classic clsact qdisc with a
 * direct-action filter on each hook (libbpf's bpf_tc_*). The caller picks
 * one (enum tc_mode), or lets each attach try TCX first and fall back to
 * clsact on a kernel that has no TCX (TC_MODE_AUTO).
 * A TCX link is a file descriptor: it dies with the process, so even a
 * kill -9 leaves nothing of ours on the interface, and no qdisc is created.
 * A clsact filter outlives the process: tc_detach() removes our filters, and
 * the qdisc only if we created it; a kill -9 leaves them behind (under
 * TC_MODE_AUTO, only on kernels without TCX).
 *
 * Lifetime: tc_attach() allocates *out; tc_detach() takes the programs off
 * (if the interface still exists) and frees it.
 */
#ifndef FLOWSTORE_TC_ATTACH_H
#define FLOWSTORE_TC_ATTACH_H

struct tc_attachment;

enum tc_mode {
	TC_MODE_AUTO = 0, /* TCX; clsact once the kernel has refused TCX (EINVAL) */
	TC_MODE_TCX,      /* TCX only: a kernel without it is an error */
	TC_MODE_CLSACT,   /* clsact qdisc and direct-action filters only */
};

/* Attaches ingress_fd and egress_fd to ifindex (a negative fd: not that
 * hook), the way `mode` says. 0, or a negative errno (nothing stays attached
 * then; -EINVAL for a mode that is none of the above). */
int tc_attach(int ifindex, int ingress_fd, int egress_fd, enum tc_mode mode,
	      struct tc_attachment **out);

/* "tcx" or "clsact". */
const char *tc_attach_kind(const struct tc_attachment *a);

/* Takes the programs off and frees a (NULL is fine). gone: the interface no
 * longer exists, its hooks went with it: only free. */
void tc_detach(struct tc_attachment *a, int gone);

#endif /* FLOWSTORE_TC_ATTACH_H */
