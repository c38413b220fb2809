/*
 * Attaching a pair of TC programs (ingress, egress) to one network interface,
 * and taking them off again.
 *
 * Two ways, chosen per attach: TCX links (Linux >= 6.6), else the classic
 * clsact qdisc with a direct-action filter on each hook (libbpf's bpf_tc_*).
 * A TCX link is a file descriptor: it dies with the process, so even a
 * kill -9 leaves nothing of ours on the interface, and no qdisc is created.
 * A clsact filter outlives the process: tc_detach() removes our filters, and
 * the qdisc only if we created it; a kill -9 leaves them behind (there, only
 * on kernels without TCX).
 *
 * Lifetime: tc_attach() allocates *out; tc_detach() takes the programs off
 * (if the interface still exists) and frees it.
 */
#ifndef FLOWSTORE_TC_ATTACH_H
#define FLOWSTORE_TC_ATTACH_H

struct tc_attachment;

/* Attaches ingress_fd and egress_fd to ifindex (a negative fd: not that
 * hook). 0, or a negative errno (nothing stays attached then). */
int tc_attach(int ifindex, int ingress_fd, int egress_fd, struct tc_attachment **out);

/* "tcx" or "clsact". */
const char *tc_attach_kind(const struct tc_attachment *a);

/* Takes the programs off and frees a (NULL is fine). gone: the interface no
 * longer exists, its hooks went with it: only free. */
void tc_detach(struct tc_attachment *a, int gone);

#endif /* FLOWSTORE_TC_ATTACH_H */
