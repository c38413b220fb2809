/*
 * test_tc_attach: collector/tc_attach.c on the real kernel, each mode for
 * real. main() moves the process into a network namespace of its own
 * first, so nothing here touches the host's interfaces, and whatever a
 * failing test leaves behind dies with the process.
 *
 * Every test makes the veth pair veth0 <-> veth1 (both up, IPv6 off so the
 * kernel sends nothing of its own), loads the flow skeleton (default
 * rodata) and attaches its programs to veth0. What is attached is read back
 * from the kernel: clsact qdiscs and filters from `tc` (iproute2) output,
 * TCX programs with BPF_PROG_QUERY. A frame written to an AF_PACKET socket
 * on veth0 goes through veth0's TC egress; one written on veth1 arrives at
 * veth0's TC ingress. The teardown detaches and deletes the pair, whatever
 * the test got to.
 *
 * The foreign filter is u32, not matchall: the kernel this was written on
 * has no cls_matchall (nor gact), and u32 is in every kernel with clsact.
 *
 * Needs root and kernel BTF; skips (fails under CI=true) without them.
 */
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cmocka.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "events.h"
#include "flow.skel.h"
#include "skip.h"
#include "tc_attach.h"

#define BTF_PATH "/sys/kernel/btf/vmlinux"
#define DEV "veth0"
#define PEER "veth1"

/* enum bpf_attach_type, Linux 6.6: the system's linux/bpf.h may lack them */
#define ATTACH_TCX_INGRESS 46
#define ATTACH_TCX_EGRESS 47

/* The test flow: A:5000 on veth0's side to B:6000, UDP. */
#define IP4_A "10.9.0.1"
#define IP4_B "10.9.0.2"
#define PORT_A 5000
#define PORT_B 6000
#define PAYLOAD 16
#define IP_LEN (20 + 8 + PAYLOAD)

#define MAX_FILTERS 8
#define MAX_ENTRIES 16
#define INGRESS_WAIT_MS 2000

enum hook { INGRESS, EGRESS, NHOOKS };

static const char *const hook_names[NHOOKS] = { "ingress", "egress" };

/* One test's veth pair, skeleton and attachment. Freed by teardown(). */
struct fixture {
	struct flow_bpf *skel;
	struct tc_attachment *tc;
	int ifindex; /* veth0 */
	int peer_ifindex;
	__u32 prog_id[NHOOKS]; /* flow_ingress, flow_egress */
	int prog_fd[NHOOKS];
};

/* ---- the shell ------------------------------------------------------------------ */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Runs a command (stdout and stderr to ours); its exit status, or -1. */
static int sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	int n, st;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(cmd))
		return -1;
	st = system(cmd);
	return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* What `cmd` prints, into buf (NUL-terminated); the command must succeed. */
static void output(char *buf, size_t size, const char *cmd)
{
	FILE *p = popen(cmd, "r");
	size_t n;

	assert_non_null(p);
	n = fread(buf, 1, size - 1, p);
	buf[n] = '\0';
	assert_int_equal(pclose(p), 0);
	assert_true(n < size - 1);
}

/* ---- what the kernel says is attached ------------------------------------------ */

/* One filter priority of a clsact hook, as `tc filter show` lists it. */
struct filter {
	unsigned pref;
	char kind[16];   /* "bpf", "u32", ... */
	bool direct;     /* bpf: direct-action */
	__u32 prog_id;   /* bpf: the program's id */
};

/* The filters on veth0's clsact hook; how many. */
static unsigned filters(enum hook h, struct filter *f)
{
	char out[8192], cmd[64];
	unsigned n = 0;

	snprintf(cmd, sizeof(cmd), "tc filter show dev " DEV " %s", hook_names[h]);
	output(out, sizeof(out), cmd);
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		struct filter cur = { 0 };
		const char *id;
		unsigned i;

		if (sscanf(line, "filter protocol %*s pref %u %15s", &cur.pref, cur.kind) != 2)
			continue;
		for (i = 0; i < n && f[i].pref != cur.pref; i++)
			;
		if (i == n) {
			assert_true(n < MAX_FILTERS);
			f[n++] = cur;
		}
		if (strstr(line, " direct-action"))
			f[i].direct = true;
		if ((id = strstr(line, " id ")))
			assert_int_equal(sscanf(id, " id %u", &f[i].prog_id), 1);
	}
	return n;
}

static bool has_clsact(void)
{
	char out[4096];

	output(out, sizeof(out), "tc qdisc show dev " DEV);
	return strstr(out, "qdisc clsact ") != NULL;
}

/* The programs at veth0's TCX hook: how many (ids into ids[max]). */
static __u32 tcx_progs(enum hook h, __u32 *ids, __u32 max)
{
	static const int types[NHOOKS] = { ATTACH_TCX_INGRESS, ATTACH_TCX_EGRESS };
	int ifindex = (int)if_nametoindex(DEV);
	LIBBPF_OPTS(bpf_prog_query_opts, q, .prog_ids = ids, .prog_cnt = max);

	assert_true(ifindex > 0);
	assert_int_equal(bpf_prog_query_opts(ifindex, (enum bpf_attach_type)types[h], &q), 0);
	return q.prog_cnt;
}

/* Exactly our bpf filter on hook h, direct-action, and nothing else there. */
static void assert_only_our_filter(struct fixture *fx, enum hook h)
{
	struct filter f[MAX_FILTERS];

	assert_int_equal(filters(h, f), 1);
	assert_string_equal(f[0].kind, "bpf");
	assert_true(f[0].direct);
	assert_int_equal(f[0].prog_id, fx->prog_id[h]);
}

static void assert_no_filters(void)
{
	struct filter f[MAX_FILTERS];

	for (int h = 0; h < NHOOKS; h++)
		assert_int_equal(filters((enum hook)h, f), 0);
}

static void assert_tcx(struct fixture *fx, bool ours)
{
	for (int h = 0; h < NHOOKS; h++) {
		__u32 ids[4] = { 0 };

		assert_int_equal(tcx_progs((enum hook)h, ids, 4), ours ? 1 : 0);
		if (ours)
			assert_int_equal(ids[0], fx->prog_id[h]);
	}
}

static unsigned open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned n = 0;

	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* ---- the fixture ---------------------------------------------------------------- */

static __u32 prog_id(int fd)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	assert_int_equal(bpf_obj_get_info_by_fd(fd, &info, &len), 0);
	assert_true(info.id > 0);
	return info.id;
}

/* The veth pair, up, and the flow skeleton loaded. */
static struct fixture *make(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	*state = fx;
	assert_int_equal(sh("ip link add " DEV " type veth peer name " PEER " && "
			    "ip link set " DEV " up && ip link set " PEER " up"), 0);
	fx->ifindex = (int)if_nametoindex(DEV);
	fx->peer_ifindex = (int)if_nametoindex(PEER);
	assert_true(fx->ifindex > 0 && fx->peer_ifindex > 0);
	fx->skel = flow_bpf__open_and_load();
	assert_non_null(fx->skel);
	fx->prog_fd[INGRESS] = bpf_program__fd(fx->skel->progs.flow_ingress);
	fx->prog_fd[EGRESS] = bpf_program__fd(fx->skel->progs.flow_egress);
	for (int h = 0; h < NHOOKS; h++)
		fx->prog_id[h] = prog_id(fx->prog_fd[h]);
	return fx;
}

static void attach(struct fixture *fx, enum tc_mode mode)
{
	assert_null(fx->tc);
	assert_int_equal(tc_attach(fx->ifindex, fx->prog_fd[INGRESS], fx->prog_fd[EGRESS], mode,
				   &fx->tc), 0);
	assert_non_null(fx->tc);
}

static void detach(struct fixture *fx, int gone)
{
	struct tc_attachment *tc = fx->tc;

	fx->tc = NULL;
	tc_detach(tc, gone);
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	if (!fx)
		return 0;
	detach(fx, 0);
	flow_bpf__destroy(fx->skel);
	sh("ip link del " DEV " 2>/dev/null");
	free(fx);
	*state = NULL;
	return 0;
}

/* ---- packets -------------------------------------------------------------------- */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t ip_checksum(const uint8_t *h, size_t len)
{
	uint32_t sum = 0;

	for (size_t i = 0; i < len; i += 2)
		sum += (uint32_t)(h[i] << 8 | h[i + 1]);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* An Ethernet/IPv4/UDP frame of PAYLOAD zero bytes; its length. */
static size_t udp_frame(uint8_t *f, const char *src, uint16_t sport, const char *dst,
			uint16_t dport)
{
	static const uint8_t macs[12] = { 2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1 };
	uint8_t *ip = f + ETH_HLEN, *udp = ip + 20;

	memset(f, 0, ETH_HLEN + IP_LEN);
	memcpy(f, macs, sizeof(macs));
	put16(f + 12, ETH_P_IP);
	ip[0] = 0x45;
	put16(ip + 2, IP_LEN);
	ip[8] = 64;
	ip[9] = IPPROTO_UDP;
	assert_int_equal(inet_pton(AF_INET, src, ip + 12), 1);
	assert_int_equal(inet_pton(AF_INET, dst, ip + 16), 1);
	put16(ip + 10, ip_checksum(ip, 20));
	put16(udp, sport);
	put16(udp + 2, dport);
	put16(udp + 4, 8 + PAYLOAD);
	return ETH_HLEN + IP_LEN;
}

/* Writes one frame out of ifindex through an AF_PACKET socket: it passes
 * that device's TC egress (and the veth peer's ingress). */
static void send_frame(int ifindex, const char *src, uint16_t sport, const char *dst,
		       uint16_t dport)
{
	uint8_t f[ETH_HLEN + IP_LEN];
	size_t len = udp_frame(f, src, sport, dst, dport);
	struct sockaddr_ll to = {
		.sll_family = AF_PACKET,
		.sll_protocol = htons(ETH_P_IP),
		.sll_ifindex = ifindex,
		.sll_halen = ETH_ALEN,
	};
	int fd = socket(AF_PACKET, SOCK_RAW, 0);
	ssize_t sent;

	assert_true(fd >= 0);
	memcpy(to.sll_addr, f, ETH_ALEN);
	sent = sendto(fd, f, len, 0, (const struct sockaddr *)&to, sizeof(to));
	close(fd);
	assert_int_equal(sent, (ssize_t)len);
}

/* ---- the flows map -------------------------------------------------------------- */

static unsigned entries(struct fixture *fx, struct fs_flow_value *vals)
{
	int fd = bpf_map__fd(fx->skel->maps.flows);
	struct fs_flow_key key, next;
	unsigned n = 0;
	void *prev = NULL;

	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		assert_true(n < MAX_ENTRIES);
		assert_int_equal(bpf_map_lookup_elem_flags(fd, &next, &vals[n], BPF_F_LOCK), 0);
		n++;
		key = next;
		prev = &key;
	}
	return n;
}

static void mapped4(const char *text, uint8_t out[16])
{
	memset(out, 0, 16);
	out[10] = out[11] = 0xff;
	assert_int_equal(inet_pton(AF_INET, text, out + 12), 1);
}

/* `flows` holds exactly the test flow, on veth0, with these counts. */
static void assert_the_flow(struct fixture *fx, uint64_t orig_pkts, uint64_t resp_pkts)
{
	struct fs_flow_value v[MAX_ENTRIES];
	struct fs_flow_key want;

	memset(&want, 0, sizeof(want));
	mapped4(IP4_A, want.addr[0]); /* A < B: A is side 0 */
	mapped4(IP4_B, want.addr[1]);
	want.port[0] = PORT_A;
	want.port[1] = PORT_B;
	want.ifindex = (__u32)fx->ifindex;
	want.proto = IPPROTO_UDP;
	assert_int_equal(entries(fx, v), 1);
	assert_memory_equal(&v[0].key, &want, sizeof(want));
	assert_int_equal(v[0].orig_side, 0);
	assert_int_equal(v[0].orig_pkts, orig_pkts);
	assert_int_equal(v[0].orig_bytes, orig_pkts * IP_LEN);
	assert_int_equal(v[0].resp_pkts, resp_pkts);
	assert_int_equal(v[0].resp_bytes, resp_pkts * IP_LEN);
}

/* The reply's ingress runs in the receive softirq, maybe after sendto(). */
static void wait_resp(struct fixture *fx)
{
	struct timespec pause = { .tv_nsec = 1000000 };

	for (int ms = 0; ms < INGRESS_WAIT_MS; ms++) {
		struct fs_flow_value v[MAX_ENTRIES];

		if (entries(fx, v) == 1 && v[0].resp_pkts > 0)
			return;
		nanosleep(&pause, NULL);
	}
}

/* A packet out of veth0 (egress), then its reply into veth0 (ingress):
 * both counted, in the one entry of the flow. */
static void assert_counts_both_ways(struct fixture *fx)
{
	struct fs_flow_value v[MAX_ENTRIES];

	assert_int_equal(entries(fx, v), 0);
	send_frame(fx->ifindex, IP4_A, PORT_A, IP4_B, PORT_B);
	assert_the_flow(fx, 1, 0);
	send_frame(fx->peer_ifindex, IP4_B, PORT_B, IP4_A, PORT_A);
	wait_resp(fx);
	assert_the_flow(fx, 1, 1);
}

/* ---- tests ---------------------------------------------------------------------- */

/* clsact on an interface without a qdisc: we make it, and take it away. */
static void test_clsact(void **state)
{
	struct fixture *fx = make(state);

	assert_false(has_clsact());
	attach(fx, TC_MODE_CLSACT);
	assert_string_equal(tc_attach_kind(fx->tc), "clsact");
	assert_true(has_clsact());
	assert_only_our_filter(fx, INGRESS);
	assert_only_our_filter(fx, EGRESS);
	assert_tcx(fx, false);
	assert_counts_both_ways(fx);
	detach(fx, 0);
	assert_no_filters();
	assert_false(has_clsact());
}

/* clsact on a qdisc someone else made, with their filter on it: detaching
 * takes ours and leaves theirs. */
static void test_clsact_shared(void **state)
{
	struct fixture *fx = make(state);
	struct filter f[MAX_FILTERS];
	unsigned n;

	assert_int_equal(sh("tc qdisc add dev " DEV " clsact && tc filter add dev " DEV
			    " ingress pref 10 u32 match u32 0 0"), 0);
	attach(fx, TC_MODE_CLSACT);
	n = filters(INGRESS, f);
	assert_int_equal(n, 2);
	for (unsigned i = 0; i < n; i++) {
		bool theirs = f[i].pref == 10;

		assert_string_equal(f[i].kind, theirs ? "u32" : "bpf");
		if (!theirs)
			assert_int_equal(f[i].prog_id, fx->prog_id[INGRESS]);
	}
	assert_only_our_filter(fx, EGRESS);
	assert_counts_both_ways(fx);
	detach(fx, 0);
	assert_true(has_clsact());
	assert_int_equal(filters(INGRESS, f), 1);
	assert_int_equal(f[0].pref, 10);
	assert_string_equal(f[0].kind, "u32");
	assert_int_equal(filters(EGRESS, f), 0);
}

/* TCX: links, no qdisc, no filter; nothing left after. */
static void test_tcx(void **state)
{
	struct fixture *fx = make(state);

	attach(fx, TC_MODE_TCX);
	assert_string_equal(tc_attach_kind(fx->tc), "tcx");
	assert_tcx(fx, true);
	assert_false(has_clsact());
	assert_no_filters();
	assert_counts_both_ways(fx);
	detach(fx, 0);
	assert_tcx(fx, false);
	assert_false(has_clsact());
}

/* This kernel has TCX: AUTO takes it. */
static void test_auto(void **state)
{
	struct fixture *fx = make(state);

	attach(fx, TC_MODE_AUTO);
	assert_string_equal(tc_attach_kind(fx->tc), "tcx");
	assert_tcx(fx, true);
	assert_false(has_clsact());
	detach(fx, 0);
	assert_tcx(fx, false);
}

/* The egress attach fails (a map is no program): the ingress half is
 * undone, and the qdisc we made goes too. */
static void test_half_attach(void **state)
{
	static const enum tc_mode modes[] = { TC_MODE_CLSACT, TC_MODE_TCX };
	struct fixture *fx = make(state);
	int not_a_prog = bpf_map__fd(fx->skel->maps.flows);

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		struct tc_attachment *tc = NULL;
		unsigned fds = open_fds();

		assert_true(tc_attach(fx->ifindex, fx->prog_fd[INGRESS], not_a_prog, modes[i],
				      &tc) < 0);
		assert_null(tc);
		assert_int_equal(open_fds(), fds);
		assert_false(has_clsact());
		assert_no_filters();
		assert_tcx(fx, false);
	}
}

static void test_bad_mode(void **state)
{
	struct fixture *fx = make(state);
	struct tc_attachment *tc = NULL;

	assert_int_equal(tc_attach(fx->ifindex, fx->prog_fd[INGRESS], fx->prog_fd[EGRESS],
				   (enum tc_mode)42, &tc), -EINVAL);
	assert_null(tc);
	assert_tcx(fx, false);
	assert_false(has_clsact());
}

/* The interface went before the detach: nothing to ask the kernel, nothing
 * kept (the link fds closed; ASan sees the memory). */
static void gone(void **state, enum tc_mode mode)
{
	struct fixture *fx = make(state);
	unsigned fds = open_fds();

	attach(fx, mode);
	assert_int_equal(sh("ip link del " DEV), 0);
	detach(fx, 1);
	assert_int_equal(open_fds(), fds);
}

static void test_gone_clsact(void **state)
{
	gone(state, TC_MODE_CLSACT);
}

static void test_gone_tcx(void **state)
{
	gone(state, TC_MODE_TCX);
}

/* IPv6 off in this namespace, for the interfaces made from now on: no
 * router solicitations or DAD probes in `flows`. Absent without IPv6. */
static void ipv6_off(void)
{
	static const char *const paths[] = { "/proc/sys/net/ipv6/conf/default/disable_ipv6",
					     "/proc/sys/net/ipv6/conf/all/disable_ipv6" };

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		FILE *f = fopen(paths[i], "w");

		if (f) {
			fputs("1\n", f);
			fclose(f);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_clsact, teardown),
		cmocka_unit_test_teardown(test_clsact_shared, teardown),
		cmocka_unit_test_teardown(test_tcx, teardown),
		cmocka_unit_test_teardown(test_auto, teardown),
		cmocka_unit_test_teardown(test_half_attach, teardown),
		cmocka_unit_test_teardown(test_bad_mode, teardown),
		cmocka_unit_test_teardown(test_gone_clsact, teardown),
		cmocka_unit_test_teardown(test_gone_tcx, teardown),
	};

	if (geteuid() != 0)
		test_skip_all("test_tc_attach needs root (network namespaces, TC, BPF)");
	if (access(BTF_PATH, R_OK) != 0)
		test_skip_all("test_tc_attach needs kernel BTF (" BTF_PATH ")");
	if (unshare(CLONE_NEWNET) != 0)
		test_skip_all("test_tc_attach needs a network namespace of its own (unshare)");
	if (sh("ip -V >/dev/null && tc -V >/dev/null") != 0)
		test_skip_all("test_tc_attach needs iproute2 (ip, tc)");
	ipv6_off();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
