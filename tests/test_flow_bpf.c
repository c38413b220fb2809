/*
 * test_flow_bpf: the flow accounting programs (bpf/flow.bpf.c) on the real
 * kernel, fed crafted frames with BPF_PROG_TEST_RUN: nothing is attached,
 * so no other traffic reaches the maps. Every test loads its own skeleton
 * (fresh maps, its own rodata), runs frames through flow_egress ("out", a
 * packet this host sends) or flow_ingress ("in"), and checks exactly what
 * came out of the ring buffer, what `flows` holds and what `losses` counted.
 *
 * What BPF_PROG_TEST_RUN gives a SCHED_CLS program (net/bpf/test_run.c,
 * as seen on Linux 6.18): the frame goes through eth_type_trans() on the
 * device of ctx.ifindex (0 or 1: lo; another must exist, else ENODEV), and
 * skb->sk is a dummy full socket (type 0, so egress records get a cookie).
 * Of struct __sk_buff only mark, priority, ingress_ifindex, ifindex, cb,
 * tstamp, wire_len, gso_segs (<= 65535), gso_size and hwtstamp may be
 * non-zero (else EINVAL); gso_segs is taken as is, so GSO is testable.
 * An untagged IPv4 frame shorter than 14 + 20 bytes, or IPv6 shorter than
 * 14 + 40, is refused (EINVAL) before the program runs: cut IP headers are
 * tested behind a VLAN tag, which the kernel does not look past.
 *
 * The program has two parsers (bpf/flow.bpf.c, invariant 2): every test
 * runs twice, once as loaded (the fast path takes the common shapes) and
 * once with general_parser_only set; test_parsers_agree feeds random,
 * mostly damaged frames to both and requires the same outcome.
 *
 * Needs root and kernel BTF; skips (fails under CI=true) without them.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <linux/bpf.h>
#include <netinet/in.h>

#include <cmocka.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "events.h"
#include "flow.skel.h"
#include "skip.h"

#define BTF_PATH "/sys/kernel/btf/vmlinux"
#define TC_ACT_UNSPEC (-1)
#define LO_IFINDEX 1
#define MAX_RECORDS 64
#define MAX_ENTRIES 64
#define FRAME_MAX 3600 /* test_run takes up to a page less skb overhead */

/* Records of 152 bytes take 160 in the ring (8-byte header). */
#define RECORD_RING_BYTES (sizeof(struct fs_flow_event) + 8)

#define SEC_NS 1000000000ULL

#define IP4_A "10.0.0.1"
#define IP4_B "10.0.0.2"
#define IP6_A "2001:db8::1"
#define IP6_B "2001:db8::2"

enum dir { OUT, IN }; /* flow_egress, flow_ingress */

struct config {
	uint32_t max_entries;
	uint64_t active_timeout_ns;
	uint32_t ring_bytes;
	uint64_t wakeup_bytes;
};

static const struct config defaults = {
	.max_entries = MAX_ENTRIES,
	.active_timeout_ns = 60 * SEC_NS,
	.ring_bytes = 1 << 16,
	.wakeup_bytes = 0,
};

/* One loaded skeleton and what its ring buffer gave. Freed by teardown(). */
struct fixture {
	struct flow_bpf *skel;
	struct ring_buffer *rb;
	unsigned n; /* records received */
	struct fs_flow_event rec[MAX_RECORDS]; /* the first MAX_RECORDS */
	struct fs_flow_event sum; /* counters summed over all records */
	unsigned empty; /* records of no packet */
	unsigned reasons[FS_END_MAX + 1];
	unsigned bad_size;
};

/* ---- the skeleton -------------------------------------------------------------- */

static int on_record(void *ctx, void *data, size_t size)
{
	struct fixture *fx = ctx;

	if (size != sizeof(struct fs_flow_event)) {
		fx->bad_size++;
		return 0;
	}
	const struct fs_flow_event *e = data;

	if (fx->n < MAX_RECORDS)
		memcpy(&fx->rec[fx->n], e, sizeof(*e));
	fx->n++;
	fx->sum.orig_pkts += e->orig_pkts;
	fx->sum.orig_bytes += e->orig_bytes;
	fx->sum.resp_pkts += e->resp_pkts;
	fx->sum.resp_bytes += e->resp_bytes;
	if (e->orig_pkts + e->resp_pkts == 0)
		fx->empty++;
	if (e->end_reason <= FS_END_MAX)
		fx->reasons[e->end_reason]++;
	return 0;
}

/* The parser the tests' skeletons use: set by main() for each pass. */
static bool general_parser_only;

static struct fixture *load_parser(void **state, const struct config *c, bool general_only)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	*state = fx;
	fx->skel = flow_bpf__open();
	assert_non_null(fx->skel);
	fx->skel->rodata->general_parser_only = general_only;
	fx->skel->rodata->active_timeout_ns = c->active_timeout_ns;
	fx->skel->rodata->ringbuf_wakeup_bytes = c->wakeup_bytes;
	assert_int_equal(bpf_map__set_max_entries(fx->skel->maps.flows, c->max_entries), 0);
	assert_int_equal(bpf_map__set_max_entries(fx->skel->maps.events, c->ring_bytes), 0);
	assert_int_equal(flow_bpf__load(fx->skel), 0);
	fx->rb = ring_buffer__new(bpf_map__fd(fx->skel->maps.events), on_record, fx, NULL);
	assert_non_null(fx->rb);
	return fx;
}

static struct fixture *load(void **state, const struct config *c)
{
	return load_parser(state, c, general_parser_only);
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	if (!fx)
		return 0;
	ring_buffer__free(fx->rb);
	flow_bpf__destroy(fx->skel);
	free(fx);
	*state = NULL;
	return 0;
}

/* Takes what the ring holds; returns how many records came. */
static unsigned drain(struct fixture *fx)
{
	unsigned before = fx->n;
	int n = ring_buffer__consume(fx->rb);

	assert_true(n >= 0);
	assert_int_equal(fx->bad_size, 0);
	return fx->n - before;
}

static uint64_t loss(struct fixture *fx, uint32_t reason)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *v, sum = 0;

	assert_true(ncpu > 0);
	v = calloc((size_t)ncpu, sizeof(*v));
	assert_non_null(v);
	assert_int_equal(bpf_map_lookup_elem(bpf_map__fd(fx->skel->maps.losses), &reason, v), 0);
	for (int i = 0; i < ncpu; i++)
		sum += v[i];
	free(v);
	return sum;
}

/* Every entry of `flows`, read as the user-space sweep will (BPF_F_LOCK). */
static unsigned entries(struct fixture *fx, struct fs_flow_value *vals, unsigned max)
{
	int fd = bpf_map__fd(fx->skel->maps.flows);
	struct fs_flow_key key, next;
	unsigned n = 0;
	void *prev = NULL;

	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		assert_true(n < max);
		assert_int_equal(bpf_map_lookup_elem_flags(fd, &next, &vals[n], BPF_F_LOCK), 0);
		assert_memory_equal(&vals[n].key, &next, sizeof(next));
		n++;
		key = next;
		prev = &key;
	}
	return n;
}

/* The only entry of `flows`. */
static struct fs_flow_value only_entry(struct fixture *fx)
{
	struct fs_flow_value v[MAX_ENTRIES];

	assert_int_equal(entries(fx, v, MAX_ENTRIES), 1);
	return v[0];
}

/* ---- frames --------------------------------------------------------------------- */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Ethernet header, with `tags` VLAN tags (two: 802.1AD outside 802.1Q). */
static size_t put_eth(uint8_t *f, int tags, uint16_t ethertype)
{
	static const uint8_t macs[12] = { 2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1 };
	size_t off = sizeof(macs);

	memcpy(f, macs, sizeof(macs));
	for (int i = tags; i > 0; i--) {
		put16(f + off, i == 2 ? 0x88a8 : 0x8100);
		put16(f + off + 2, (uint16_t)(100 * i));
		off += 4;
	}
	put16(f + off, ethertype);
	return off + 2;
}

static void addr16(const char *text, uint8_t out[16])
{
	memset(out, 0, 16);
	if (inet_pton(AF_INET6, text, out) == 1)
		return;
	out[10] = 0xff;
	out[11] = 0xff;
	assert_int_equal(inet_pton(AF_INET, text, out + 12), 1);
}

/* frag: the IPv4 flags and fragment offset field. */
static size_t frame_ip4(uint8_t *f, int tags, const char *src, const char *dst, uint8_t proto,
			const uint8_t *l4, size_t l4len, uint16_t frag)
{
	size_t off = put_eth(f, tags, 0x0800);
	uint8_t *ip = f + off;

	assert_true(off + 20 + l4len <= FRAME_MAX);
	memset(ip, 0, 20);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(20 + l4len));
	put16(ip + 4, 0x1234);
	put16(ip + 6, frag);
	ip[8] = 64;
	ip[9] = proto;
	assert_int_equal(inet_pton(AF_INET, src, ip + 12), 1);
	assert_int_equal(inet_pton(AF_INET, dst, ip + 16), 1);
	memcpy(ip + 20, l4, l4len);
	return off + 20 + l4len;
}

/* ext: extension headers (their next-header bytes already set), then l4;
 * nexthdr is the IPv6 header's. */
static size_t frame_ip6(uint8_t *f, const char *src, const char *dst, uint8_t nexthdr,
			const uint8_t *ext, size_t extlen, const uint8_t *l4, size_t l4len)
{
	size_t off = put_eth(f, 0, 0x86dd);
	uint8_t *ip = f + off;

	assert_true(off + 40 + extlen + l4len <= FRAME_MAX);
	memset(ip, 0, 40);
	ip[0] = 0x60;
	put16(ip + 4, (uint16_t)(extlen + l4len));
	ip[6] = nexthdr;
	ip[7] = 64;
	assert_int_equal(inet_pton(AF_INET6, src, ip + 8), 1);
	assert_int_equal(inet_pton(AF_INET6, dst, ip + 24), 1);
	if (extlen)
		memcpy(ip + 40, ext, extlen);
	memcpy(ip + 40 + extlen, l4, l4len);
	return off + 40 + extlen + l4len;
}

#define SYN 0x02
#define ACK 0x10
#define FIN 0x01
#define RST 0x04
#define PSH 0x08

/* A TCP segment of `payload` zero bytes; a SYN carries a 4-byte MSS option. */
static size_t tcp_seg(uint8_t *b, uint16_t sport, uint16_t dport, uint8_t flags, size_t payload)
{
	size_t hl = (flags & SYN) ? 24 : 20;

	memset(b, 0, hl + payload);
	put16(b, sport);
	put16(b + 2, dport);
	b[12] = (uint8_t)((hl / 4) << 4);
	b[13] = flags;
	put16(b + 14, 65535);
	if (flags & SYN) {
		b[20] = 2;
		b[21] = 4;
		put16(b + 22, 1460);
	}
	return hl + payload;
}

static size_t udp_dgram(uint8_t *b, uint16_t sport, uint16_t dport, size_t payload)
{
	memset(b, 0, 8 + payload);
	put16(b, sport);
	put16(b + 2, dport);
	put16(b + 4, (uint16_t)(8 + payload));
	return 8 + payload;
}

static size_t icmp_msg(uint8_t *b, uint8_t type, uint8_t code, size_t payload)
{
	memset(b, 0, 8 + payload);
	b[0] = type;
	b[1] = code;
	put16(b + 4, 0x77); /* echo id */
	return 8 + payload;
}

/* ---- running frames --------------------------------------------------------------- */

/* Runs one frame with the skb fields of ctx; every run must return
 * TC_ACT_UNSPEC. */
static void run_ctx(struct fixture *fx, enum dir d, const uint8_t *frame, size_t len,
		    struct __sk_buff *ctx)
{
	struct bpf_program *prog = d == OUT ? fx->skel->progs.flow_egress
					    : fx->skel->progs.flow_ingress;
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame, .data_size_in = (uint32_t)len,
		    .ctx_in = ctx, .ctx_size_in = sizeof(*ctx));

	assert_int_equal(bpf_prog_test_run_opts(bpf_program__fd(prog), &opts), 0);
	assert_int_equal((int)opts.retval, TC_ACT_UNSPEC);
}

static void run_gso(struct fixture *fx, enum dir d, const uint8_t *frame, size_t len,
		    uint32_t gso_segs, uint32_t gso_size)
{
	struct __sk_buff ctx = {
		.ifindex = LO_IFINDEX,
		.gso_segs = gso_segs,
		.gso_size = gso_size,
	};

	run_ctx(fx, d, frame, len, &ctx);
}

static void run(struct fixture *fx, enum dir d, const uint8_t *frame, size_t len)
{
	run_gso(fx, d, frame, len, 0, 0);
}

static void tcp4(struct fixture *fx, enum dir d, const char *src, uint16_t sport,
		 const char *dst, uint16_t dport, uint8_t flags, size_t payload)
{
	uint8_t l4[FRAME_MAX], f[FRAME_MAX];
	size_t l4len = tcp_seg(l4, sport, dport, flags, payload);

	run(fx, d, f, frame_ip4(f, 0, src, dst, IPPROTO_TCP, l4, l4len, 0));
}

static void udp4(struct fixture *fx, enum dir d, int tags, const char *src, uint16_t sport,
		 const char *dst, uint16_t dport, size_t payload)
{
	uint8_t l4[FRAME_MAX], f[FRAME_MAX];
	size_t l4len = udp_dgram(l4, sport, dport, payload);

	run(fx, d, f, frame_ip4(f, tags, src, dst, IPPROTO_UDP, l4, l4len, 0));
}

/* ---- checks --------------------------------------------------------------------- */

static void assert_history(const char *history, const char *want)
{
	char h[FS_HISTORY_LEN + 1] = { 0 };

	memcpy(h, history, FS_HISTORY_LEN);
	assert_string_equal(h, want);
	/* NUL-padded: nothing after the first NUL */
	for (size_t i = strlen(want); i < FS_HISTORY_LEN; i++)
		assert_int_equal(history[i], 0);
}

/* The endpoints of a record. */
static void assert_record_ends(const struct fs_flow_event *e, uint8_t proto, const char *orig,
			       uint16_t orig_port, const char *resp, uint16_t resp_port)
{
	uint8_t a[16];

	assert_int_equal(e->proto, proto);
	addr16(orig, a);
	assert_memory_equal(e->orig_addr, a, 16);
	addr16(resp, a);
	assert_memory_equal(e->resp_addr, a, 16);
	assert_int_equal(e->orig_port, orig_port);
	assert_int_equal(e->resp_port, resp_port);
}

/* What every record holds whatever its flow. */
static void assert_record_frame(const struct fs_flow_event *e)
{
	static const char no_comm[FS_COMM_LEN];

	assert_int_equal(e->hdr.type, FS_EVENT_FLOW);
	assert_int_equal(e->hdr.size, sizeof(*e));
	assert_int_equal(e->hdr.reserved, 0);
	assert_true(e->first_ns > 0);
	assert_true(e->first_ns <= e->last_ns);
	assert_true(e->last_ns <= e->hdr.ts_ns);
	assert_int_equal(e->ifindex, LO_IFINDEX);
	assert_int_equal(e->pid, 0);
	assert_memory_equal(e->comm, no_comm, FS_COMM_LEN);
	assert_int_equal(e->reserved, 0);
}

static void assert_counts(const struct fs_flow_event *e, uint64_t orig_pkts, uint64_t orig_bytes,
			  uint64_t resp_pkts, uint64_t resp_bytes)
{
	assert_int_equal(e->orig_pkts, orig_pkts);
	assert_int_equal(e->orig_bytes, orig_bytes);
	assert_int_equal(e->resp_pkts, resp_pkts);
	assert_int_equal(e->resp_bytes, resp_bytes);
}

/* An entry's endpoints, in orig/resp terms. */
static void assert_entry_ends(const struct fs_flow_value *v, uint8_t proto, const char *orig,
			      uint16_t orig_port, const char *resp, uint16_t resp_port)
{
	unsigned o = v->orig_side, r = !v->orig_side;
	uint8_t a[16];

	assert_true(v->orig_side <= 1);
	assert_int_equal(v->key.proto, proto);
	assert_int_equal(v->key.ifindex, LO_IFINDEX);
	addr16(orig, a);
	assert_memory_equal(v->key.addr[o], a, 16);
	addr16(resp, a);
	assert_memory_equal(v->key.addr[r], a, 16);
	assert_int_equal(v->key.port[o], orig_port);
	assert_int_equal(v->key.port[r], resp_port);
	/* side 0 is the lower endpoint */
	int c = memcmp(v->key.addr[0], v->key.addr[1], 16);
	assert_true(c < 0 || (c == 0 && v->key.port[0] <= v->key.port[1]));
}

static void assert_entry_counts(const struct fs_flow_value *v, uint64_t orig_pkts,
				uint64_t orig_bytes, uint64_t resp_pkts, uint64_t resp_bytes)
{
	assert_int_equal(v->orig_pkts, orig_pkts);
	assert_int_equal(v->orig_bytes, orig_bytes);
	assert_int_equal(v->resp_pkts, resp_pkts);
	assert_int_equal(v->resp_bytes, resp_bytes);
}

static void assert_no_trace(struct fixture *fx)
{
	struct fs_flow_value v[MAX_ENTRIES];

	assert_int_equal(drain(fx), 0);
	assert_int_equal(entries(fx, v, MAX_ENTRIES), 0);
}

/* ---- tests ---------------------------------------------------------------------- */

/*
 * Client A:40000 (this host, egress) to server B:80. IP lengths: SYN and
 * SYN+ACK 44 (MSS option), bare segments 40, data 40 + payload.
 * FIN both ways leaves the flow CLOSING; the ACK of the second FIN ends it.
 * History ShADadFf: S and h and F and f make decode_conn_state() say SF.
 */
static void test_tcp_fin(void **state)
{
	struct fixture *fx = load(state, &defaults);
	struct fs_flow_value v;
	const struct fs_flow_event *e;

	tcp4(fx, OUT, IP4_A, 40000, IP4_B, 80, SYN, 0);
	tcp4(fx, IN, IP4_B, 80, IP4_A, 40000, SYN | ACK, 0);
	tcp4(fx, OUT, IP4_A, 40000, IP4_B, 80, ACK, 0);
	tcp4(fx, OUT, IP4_A, 40000, IP4_B, 80, PSH | ACK, 100);
	tcp4(fx, IN, IP4_B, 80, IP4_A, 40000, ACK, 0);
	tcp4(fx, IN, IP4_B, 80, IP4_A, 40000, PSH | ACK, 200);
	tcp4(fx, OUT, IP4_A, 40000, IP4_B, 80, ACK, 0);
	tcp4(fx, OUT, IP4_A, 40000, IP4_B, 80, FIN | ACK, 0);
	assert_int_equal(drain(fx), 0);
	v = only_entry(fx);
	assert_int_equal(v.state, FS_FLOW_LIVE);
	assert_history(v.history, "ShADadF");

	tcp4(fx, IN, IP4_B, 80, IP4_A, 40000, FIN | ACK, 0);
	assert_int_equal(drain(fx), 0);
	v = only_entry(fx);
	assert_int_equal(v.state, FS_FLOW_CLOSING);
	assert_int_equal(v.fin_side, 1); /* B, the higher address, sent the second FIN */
	assert_history(v.history, "ShADadFf");

	tcp4(fx, OUT, IP4_A, 40000, IP4_B, 80, ACK, 0);
	assert_int_equal(drain(fx), 1);
	e = &fx->rec[0];
	assert_record_frame(e);
	assert_record_ends(e, IPPROTO_TCP, IP4_A, 40000, IP4_B, 80);
	assert_counts(e, 6, 44 + 40 + 140 + 40 + 40 + 40, 4, 44 + 40 + 240 + 40);
	assert_int_equal(e->orig_tcp_flags, FS_TCP_SYN | FS_TCP_ACK | FS_TCP_PSH | FS_TCP_FIN);
	assert_int_equal(e->resp_tcp_flags, FS_TCP_SYN | FS_TCP_ACK | FS_TCP_PSH | FS_TCP_FIN);
	assert_history(e->history, "ShADadFf");
	assert_int_equal(e->end_reason, FS_END_TCP_FIN);
	assert_true(e->sock_cookie != 0); /* egress packets carry test_run's socket */
	assert_no_trace(fx);
	assert_int_equal(loss(fx, FS_LOSS_PARSE) + loss(fx, FS_LOSS_MAP_FULL) +
				 loss(fx, FS_LOSS_RINGBUF_FULL), 0);
}

/* The server resets an established connection. The client, 10.0.0.9, is
 * side 1 of the key: the record still has it as originator. */
static void test_tcp_rst(void **state)
{
	struct fixture *fx = load(state, &defaults);
	const struct fs_flow_event *e;

	tcp4(fx, OUT, "10.0.0.9", 50000, "10.0.0.3", 443, SYN, 0);
	tcp4(fx, IN, "10.0.0.3", 443, "10.0.0.9", 50000, SYN | ACK, 0);
	tcp4(fx, OUT, "10.0.0.9", 50000, "10.0.0.3", 443, ACK, 0);
	tcp4(fx, OUT, "10.0.0.9", 50000, "10.0.0.3", 443, PSH | ACK, 10);
	assert_int_equal(drain(fx), 0);
	tcp4(fx, IN, "10.0.0.3", 443, "10.0.0.9", 50000, RST | ACK, 0);
	assert_int_equal(drain(fx), 1);
	e = &fx->rec[0];
	assert_record_frame(e);
	assert_record_ends(e, IPPROTO_TCP, "10.0.0.9", 50000, "10.0.0.3", 443);
	assert_counts(e, 3, 44 + 40 + 50, 2, 44 + 40);
	assert_int_equal(e->orig_tcp_flags, FS_TCP_SYN | FS_TCP_ACK | FS_TCP_PSH);
	assert_int_equal(e->resp_tcp_flags, FS_TCP_SYN | FS_TCP_ACK | FS_TCP_RST);
	assert_history(e->history, "ShADr"); /* RSTR */
	assert_int_equal(e->end_reason, FS_END_TCP_RST);
	assert_no_trace(fx);
}

/* A refused connect: SYN, then RST+ACK. History Sr: REJ. */
static void test_tcp_refused(void **state)
{
	struct fixture *fx = load(state, &defaults);
	const struct fs_flow_event *e;

	tcp4(fx, OUT, IP4_A, 40001, IP4_B, 81, SYN, 0);
	tcp4(fx, IN, IP4_B, 81, IP4_A, 40001, RST | ACK, 0);
	assert_int_equal(drain(fx), 1);
	e = &fx->rec[0];
	assert_record_frame(e);
	assert_record_ends(e, IPPROTO_TCP, IP4_A, 40001, IP4_B, 81);
	assert_counts(e, 1, 44, 1, 40);
	assert_history(e->history, "Sr");
	assert_int_equal(e->end_reason, FS_END_TCP_RST);
	assert_no_trace(fx);
}

static uint64_t monotonic_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/*
 * A packet's time is the clock's (CLOCK_MONOTONIC, as bpf_ktime_get_ns())
 * unless it is a TCP packet stamped with a MONOTONIC departure time
 * (invariant 15). BPF_PROG_TEST_RUN can only hand the program a stamp of
 * the CLOCK_REALTIME kind (tstamp_type must be 0 there), a receive stamp's:
 * it is not taken, on TCP or UDP. A MONOTONIC stamp is taken in
 * e2e_bpf_flows, where a local TCP stack sets it.
 */
static void test_time_stamps(void **state)
{
	struct fixture *fx = load(state, &defaults);
	uint8_t l4[FRAME_MAX], f[FRAME_MAX];
	struct __sk_buff ctx = { .ifindex = LO_IFINDEX, .tstamp = 1ull << 61 };
	const struct fs_flow_event *e;
	struct fs_flow_value v;
	uint64_t before, after;
	size_t len;

	before = monotonic_ns();
	len = frame_ip4(f, 0, "10.0.0.9", "10.0.0.3", IPPROTO_TCP, l4,
			tcp_seg(l4, 50000, 443, RST, 0), 0);
	run_ctx(fx, IN, f, len, &ctx);
	len = frame_ip4(f, 0, "10.0.0.9", "10.0.0.3", IPPROTO_UDP, l4,
			udp_dgram(l4, 5000, 53, 10), 0);
	run_ctx(fx, OUT, f, len, &ctx);
	after = monotonic_ns();

	assert_int_equal(drain(fx), 1); /* the RST ended its flow */
	e = &fx->rec[0];
	assert_record_frame(e);
	assert_int_equal(e->end_reason, FS_END_TCP_RST);
	assert_true(e->first_ns >= before && e->first_ns <= after);
	v = only_entry(fx);
	assert_int_equal(v.key.proto, IPPROTO_UDP);
	assert_true(v.first_ns >= before && v.first_ns <= after);
	assert_int_equal(v.first_ns, v.last_ns);
}

/* An unanswered SYN, sent twice: no record; the entry says S. */
static void test_tcp_syn_only(void **state)
{
	struct fixture *fx = load(state, &defaults);
	struct fs_flow_value v;

	tcp4(fx, OUT, IP4_A, 40002, IP4_B, 22, SYN, 0);
	tcp4(fx, OUT, IP4_A, 40002, IP4_B, 22, SYN, 0);
	assert_int_equal(drain(fx), 0);
	v = only_entry(fx);
	assert_entry_ends(&v, IPPROTO_TCP, IP4_A, 40002, IP4_B, 22);
	assert_entry_counts(&v, 2, 88, 0, 0);
	assert_int_equal(v.orig_tcp_flags, FS_TCP_SYN);
	assert_history(v.history, "S");
	assert_int_equal(v.history_len, 1);
	assert_int_equal(v.state, FS_FLOW_LIVE);
	assert_true(v.first_ns > 0 && v.first_ns <= v.last_ns);
	assert_true(v.sock_cookie != 0);
}

/* Originator rules: a SYN+ACK seen first makes its receiver the
 * originator; a SYN from the responder takes the role over. */
static void test_tcp_originator(void **state)
{
	struct fixture *fx = load(state, &defaults);
	struct fs_flow_value v;

	tcp4(fx, IN, IP4_B, 80, IP4_A, 40003, SYN | ACK, 0);
	v = only_entry(fx);
	assert_entry_ends(&v, IPPROTO_TCP, IP4_A, 40003, IP4_B, 80);
	assert_entry_counts(&v, 0, 0, 1, 44);
	assert_history(v.history, "h");
	bpf_map_delete_elem(bpf_map__fd(fx->skel->maps.flows), &v.key);

	/* Midstream: B's ACK is seen first, then A's SYN. */
	tcp4(fx, IN, IP4_B, 80, IP4_A, 40004, ACK, 0);
	v = only_entry(fx);
	assert_entry_ends(&v, IPPROTO_TCP, IP4_B, 80, IP4_A, 40004);
	assert_history(v.history, "A");
	tcp4(fx, OUT, IP4_A, 40004, IP4_B, 80, SYN, 0);
	v = only_entry(fx);
	assert_entry_ends(&v, IPPROTO_TCP, IP4_A, 40004, IP4_B, 80);
	assert_entry_counts(&v, 1, 44, 1, 40);
	assert_int_equal(v.orig_tcp_flags, FS_TCP_SYN);
	assert_int_equal(v.resp_tcp_flags, FS_TCP_ACK);
	assert_history(v.history, "aS");
	assert_int_equal(drain(fx), 0);
}

/* UDP both ways: history Dd, in the map (UDP ends by idle timeout only). */
static void test_udp(void **state)
{
	struct fixture *fx = load(state, &defaults);
	struct fs_flow_value v;

	udp4(fx, OUT, 0, IP4_A, 5353, IP4_B, 53, 30);
	udp4(fx, OUT, 0, IP4_A, 5353, IP4_B, 53, 50);
	udp4(fx, IN, 0, IP4_B, 53, IP4_A, 5353, 10);
	assert_int_equal(drain(fx), 0);
	v = only_entry(fx);
	assert_entry_ends(&v, IPPROTO_UDP, IP4_A, 5353, IP4_B, 53);
	assert_entry_counts(&v, 2, 58 + 78, 1, 38);
	assert_int_equal(v.orig_tcp_flags | v.resp_tcp_flags, 0);
	assert_history(v.history, "Dd");
	assert_true(v.sock_cookie != 0);
}

/* Echo request and reply meet in one entry: ports 8 and 0 (Zeek's). */
static void test_icmp_echo(void **state)
{
	struct fixture *fx = load(state, &defaults);
	uint8_t l4[128], f[256];
	struct fs_flow_value v;
	size_t n;

	n = icmp_msg(l4, 8, 0, 56);
	run(fx, OUT, f, frame_ip4(f, 0, IP4_A, IP4_B, IPPROTO_ICMP, l4, n, 0));
	n = icmp_msg(l4, 0, 0, 56);
	run(fx, IN, f, frame_ip4(f, 0, IP4_B, IP4_A, IPPROTO_ICMP, l4, n, 0));
	v = only_entry(fx);
	assert_entry_ends(&v, IPPROTO_ICMP, IP4_A, 8, IP4_B, 0);
	assert_entry_counts(&v, 1, 84, 1, 84);
	assert_history(v.history, "");

	/* A one-way type: type and code. */
	n = icmp_msg(l4, 3, 3, 28);
	run(fx, IN, f, frame_ip4(f, 0, IP4_B, IP4_A, IPPROTO_ICMP, l4, n, 0));
	struct fs_flow_value all[MAX_ENTRIES];
	unsigned count = entries(fx, all, MAX_ENTRIES);
	assert_int_equal(count, 2);
	for (unsigned i = 0; i < count; i++)
		if (all[i].key.port[0] == 3 || all[i].key.port[1] == 3) {
			assert_entry_ends(&all[i], IPPROTO_ICMP, IP4_B, 3, IP4_A, 3);
			assert_entry_counts(&all[i], 1, 56, 0, 0);
		}
	assert_int_equal(drain(fx), 0);
}

/* ICMPv6 echo: 128 and its counterpart 129. */
static void test_icmp6_echo(void **state)
{
	struct fixture *fx = load(state, &defaults);
	uint8_t l4[128], f[256];
	struct fs_flow_value v;
	size_t n;

	n = icmp_msg(l4, 128, 0, 56);
	run(fx, OUT, f, frame_ip6(f, IP6_A, IP6_B, 58, NULL, 0, l4, n));
	n = icmp_msg(l4, 129, 0, 56);
	run(fx, IN, f, frame_ip6(f, IP6_B, IP6_A, 58, NULL, 0, l4, n));
	v = only_entry(fx);
	assert_entry_ends(&v, 58, IP6_A, 128, IP6_B, 129);
	assert_entry_counts(&v, 1, 104, 1, 104);
	assert_history(v.history, "");
	assert_int_equal(drain(fx), 0);
}

/* IPv6 with hop-by-hop and destination options before a TCP SYN: the
 * bytes include the extension headers. */
static void test_ipv6_ext(void **state)
{
	struct fixture *fx = load(state, &defaults);
	uint8_t ext[16] = { 0 }, l4[64], f[256];
	struct fs_flow_value v;
	size_t n;

	ext[0] = 60; /* hop-by-hop, 8 bytes: next is destination options */
	ext[2] = 1;  /* PadN, 4 bytes of padding */
	ext[3] = 4;
	ext[8] = 6;  /* destination options, 8 bytes: next is TCP */
	ext[10] = 1;
	ext[11] = 4;
	n = tcp_seg(l4, 40010, 443, SYN, 0);
	run(fx, OUT, f, frame_ip6(f, IP6_A, IP6_B, 0, ext, sizeof(ext), l4, n));
	n = tcp_seg(l4, 443, 40010, SYN | ACK, 0);
	run(fx, IN, f, frame_ip6(f, IP6_B, IP6_A, 6, NULL, 0, l4, n));
	v = only_entry(fx);
	assert_entry_ends(&v, IPPROTO_TCP, IP6_A, 40010, IP6_B, 443);
	assert_entry_counts(&v, 1, 40 + 16 + 24, 1, 40 + 24);
	assert_history(v.history, "Sh");
	assert_int_equal(drain(fx), 0);
}

/* 802.1Q, and 802.1AD + 802.1Q: bytes are the IP layer's, without tags.
 * Ingress packets carry no socket: no cookie. */
static void test_vlan(void **state)
{
	struct fixture *fx = load(state, &defaults);
	struct fs_flow_value v;

	udp4(fx, IN, 1, IP4_B, 9999, IP4_A, 7777, 100);
	udp4(fx, IN, 2, IP4_B, 9999, IP4_A, 7777, 100);
	v = only_entry(fx);
	assert_entry_ends(&v, IPPROTO_UDP, IP4_B, 9999, IP4_A, 7777);
	assert_entry_counts(&v, 2, 2 * 128, 0, 0);
	assert_history(v.history, "D");
	assert_int_equal(v.sock_cookie, 0);
	assert_int_equal(drain(fx), 0);
}

/* IPv4 fragments: the first counts toward its flow, the rest toward the
 * flow of the same addresses with ports 0. */
static void test_ipv4_fragments(void **state)
{
	struct fixture *fx = load(state, &defaults);
	uint8_t l4[256], f[512];
	struct fs_flow_value all[MAX_ENTRIES];
	size_t n;

	n = udp_dgram(l4, 4000, 5000, 96); /* 104 bytes: 13 fragment blocks */
	run(fx, OUT, f, frame_ip4(f, 0, IP4_A, IP4_B, IPPROTO_UDP, l4, n, 0x2000)); /* MF */
	memset(l4, 0, 50);
	run(fx, OUT, f, frame_ip4(f, 0, IP4_A, IP4_B, IPPROTO_UDP, l4, 50, 13));
	assert_int_equal(entries(fx, all, MAX_ENTRIES), 2);
	for (int i = 0; i < 2; i++) {
		if (all[i].key.port[0] == 0) {
			assert_entry_ends(&all[i], IPPROTO_UDP, IP4_A, 0, IP4_B, 0);
			assert_entry_counts(&all[i], 1, 70, 0, 0);
		} else {
			assert_entry_ends(&all[i], IPPROTO_UDP, IP4_A, 4000, IP4_B, 5000);
			assert_entry_counts(&all[i], 1, 124, 0, 0);
		}
		assert_history(all[i].history, "D");
	}
	assert_int_equal(loss(fx, FS_LOSS_PARSE), 0);
}

/* Another IP protocol (GRE): by number, ports 0. */
static void test_other_proto(void **state)
{
	struct fixture *fx = load(state, &defaults);
	uint8_t l4[32] = { 0 }, f[128];
	struct fs_flow_value v;

	run(fx, OUT, f, frame_ip4(f, 0, IP4_A, IP4_B, 47, l4, sizeof(l4), 0));
	run(fx, IN, f, frame_ip4(f, 0, IP4_B, IP4_A, 47, l4, sizeof(l4), 0));
	v = only_entry(fx);
	assert_entry_ends(&v, 47, IP4_A, 0, IP4_B, 0);
	assert_entry_counts(&v, 1, 52, 1, 52);
	assert_history(v.history, "");
}

/* A non-IP frame (ARP) is none of our business: not a parse error. */
static void test_not_ip(void **state)
{
	struct fixture *fx = load(state, &defaults);
	uint8_t f[64] = { 0 };

	put_eth(f, 0, 0x0806);
	run(fx, IN, f, 60);
	assert_no_trace(fx);
	assert_int_equal(loss(fx, FS_LOSS_PARSE), 0);
}

/* Each malformed frame: counted as a parse loss, no record, no entry. */
static void test_malformed(void **state)
{
	struct fixture *fx = load(state, &defaults);
	uint8_t l4[64], f[256], ext[8];
	uint64_t expect = 0;
	size_t n, len;

	/* IPv4 header cut short: 10 of its 20 bytes. test_run refuses an
	 * untagged frame shorter than Ethernet + IP header (EINVAL): tagged,
	 * skb->protocol is 802.1Q and the frame reaches the program. */
	len = frame_ip4(f, 1, IP4_A, IP4_B, IPPROTO_UDP, l4, 0, 0);
	run(fx, OUT, f, len - 10);
	assert_int_equal(loss(fx, FS_LOSS_PARSE), ++expect);

	/* IHL 4 */
	n = udp_dgram(l4, 1, 2, 10);
	len = frame_ip4(f, 0, IP4_A, IP4_B, IPPROTO_UDP, l4, n, 0);
	f[14] = 0x44;
	run(fx, OUT, f, len);
	assert_int_equal(loss(fx, FS_LOSS_PARSE), ++expect);

	/* IHL 15: options longer than the packet */
	f[14] = 0x4f;
	run(fx, OUT, f, 14 + 40);
	assert_int_equal(loss(fx, FS_LOSS_PARSE), ++expect);

	/* total length beyond the frame */
	f[14] = 0x45;
	put16(f + 16, 400);
	run(fx, OUT, f, len);
	assert_int_equal(loss(fx, FS_LOSS_PARSE), ++expect);

	/* TCP header cut short (10 bytes), in a frame padded to 60 bytes */
	n = tcp_seg(l4, 1, 2, ACK, 0);
	len = frame_ip4(f, 0, IP4_A, IP4_B, IPPROTO_TCP, l4, 10, 0);
	memset(f + len, 0, 60 - len);
	run(fx, OUT, f, 60);
	assert_int_equal(loss(fx, FS_LOSS_PARSE), ++expect);

	/* TCP data offset 4 */
	len = frame_ip4(f, 0, IP4_A, IP4_B, IPPROTO_TCP, l4, n, 0);
	f[14 + 20 + 12] = 0x40;
	run(fx, OUT, f, len);
	assert_int_equal(loss(fx, FS_LOSS_PARSE), ++expect);

	/* UDP header cut short */
	n = udp_dgram(l4, 1, 2, 0);
	run(fx, OUT, f, frame_ip4(f, 0, IP4_A, IP4_B, IPPROTO_UDP, l4, 6, 0));
	assert_int_equal(loss(fx, FS_LOSS_PARSE), ++expect);

	/* IPv6 header cut short (tagged, as above) */
	n = udp_dgram(l4, 1, 2, 0);
	{
		uint8_t g[256];

		len = frame_ip6(g, IP6_A, IP6_B, 17, NULL, 0, l4, n);
		memcpy(f, g, 12);
		put16(f + 12, 0x8100);
		put16(f + 14, 100);
		memcpy(f + 16, g + 12, len - 12);
		run(fx, OUT, f, 18 + 30);
		assert_int_equal(loss(fx, FS_LOSS_PARSE), ++expect);
	}

	/* IPv6 hop-by-hop header of 88 bytes in a 16-byte payload */
	memset(ext, 0, sizeof(ext));
	ext[0] = 17;
	ext[1] = 10;
	run(fx, OUT, f, frame_ip6(f, IP6_A, IP6_B, 0, ext, sizeof(ext), l4, n));
	assert_int_equal(loss(fx, FS_LOSS_PARSE), ++expect);

	/* nine destination options headers: more than the parser walks */
	{
		uint8_t chain[9 * 8] = { 0 };

		for (int i = 0; i < 9; i++)
			chain[i * 8] = i < 8 ? 60 : 17;
		run(fx, OUT, f, frame_ip6(f, IP6_A, IP6_B, 60, chain, sizeof(chain), l4, n));
		assert_int_equal(loss(fx, FS_LOSS_PARSE), ++expect);
	}

	/* a third VLAN tag: one more in front of two */
	{
		uint8_t g[256];

		n = udp_dgram(l4, 1, 2, 0);
		len = frame_ip4(g, 2, IP4_A, IP4_B, IPPROTO_UDP, l4, n, 0);
		memcpy(f, g, 12);
		put16(f + 12, 0x88a8);
		put16(f + 14, 300);
		memcpy(f + 16, g + 12, len - 12);
		run(fx, OUT, f, len + 4);
		assert_int_equal(loss(fx, FS_LOSS_PARSE), ++expect);
	}

	assert_no_trace(fx);
	assert_int_equal(loss(fx, FS_LOSS_MAP_FULL) + loss(fx, FS_LOSS_RINGBUF_FULL), 0);
}

/* A map of one entry: the second flow goes out as a one-packet record. */
static void test_map_full(void **state)
{
	struct config c = defaults;
	struct fixture *fx;
	const struct fs_flow_event *e;
	struct fs_flow_value v;

	c.max_entries = 1;
	fx = load(state, &c);
	udp4(fx, OUT, 0, IP4_A, 1000, IP4_B, 2000, 20);
	assert_int_equal(drain(fx), 0);
	udp4(fx, OUT, 0, IP4_A, 1001, IP4_B, 2000, 30);
	assert_int_equal(drain(fx), 1);
	e = &fx->rec[0];
	assert_record_frame(e);
	assert_record_ends(e, IPPROTO_UDP, IP4_A, 1001, IP4_B, 2000);
	assert_counts(e, 1, 58, 0, 0);
	assert_history(e->history, "D");
	assert_int_equal(e->end_reason, FS_END_MAP_FULL);
	assert_int_equal(e->first_ns, e->last_ns);
	assert_int_equal(loss(fx, FS_LOSS_MAP_FULL), 1);
	v = only_entry(fx);
	assert_entry_ends(&v, IPPROTO_UDP, IP4_A, 1000, IP4_B, 2000);
	assert_entry_counts(&v, 1, 48, 0, 0);
	/* the first flow still counts */
	udp4(fx, IN, 0, IP4_B, 2000, IP4_A, 1000, 20);
	v = only_entry(fx);
	assert_entry_counts(&v, 1, 48, 1, 48);
	assert_int_equal(loss(fx, FS_LOSS_MAP_FULL), 1);
}

/* A 1 ns active timeout: each packet exports what came before it and
 * starts a new interval; the history carries over. */
static void test_active_timeout(void **state)
{
	struct config c = defaults;
	struct fixture *fx;
	const struct fs_flow_event *e;
	struct fs_flow_value v;

	c.active_timeout_ns = 1;
	fx = load(state, &c);
	udp4(fx, OUT, 0, IP4_A, 1234, IP4_B, 4321, 20);
	assert_int_equal(drain(fx), 0);
	udp4(fx, IN, 0, IP4_B, 4321, IP4_A, 1234, 30);
	assert_int_equal(drain(fx), 1);
	e = &fx->rec[0];
	assert_record_frame(e);
	assert_record_ends(e, IPPROTO_UDP, IP4_A, 1234, IP4_B, 4321);
	assert_counts(e, 1, 48, 0, 0);
	assert_history(e->history, "D");
	assert_int_equal(e->end_reason, FS_END_ACTIVE_TIMEOUT);
	assert_int_equal(e->first_ns, e->last_ns);

	v = only_entry(fx);
	assert_entry_ends(&v, IPPROTO_UDP, IP4_A, 1234, IP4_B, 4321);
	assert_entry_counts(&v, 0, 0, 1, 58);
	assert_history(v.history, "Dd");
	assert_int_equal(v.first_ns, v.last_ns);
	assert_true(v.first_ns > e->last_ns);

	udp4(fx, OUT, 0, IP4_A, 1234, IP4_B, 4321, 20);
	assert_int_equal(drain(fx), 1);
	e = &fx->rec[1];
	assert_counts(e, 0, 0, 1, 58);
	assert_history(e->history, "Dd");
	assert_int_equal(e->end_reason, FS_END_ACTIVE_TIMEOUT);
	assert_int_equal(e->first_ns, v.first_ns);
	v = only_entry(fx);
	assert_entry_counts(&v, 1, 48, 0, 0);
}

/* A GSO packet of 3 segments of 1000 bytes: 3 packets, and the bytes of
 * three 1040-byte IP packets. */
static void test_gso(void **state)
{
	struct fixture *fx = load(state, &defaults);
	uint8_t l4[FRAME_MAX], f[FRAME_MAX];
	struct fs_flow_value v;
	size_t n = tcp_seg(l4, 40020, 80, ACK | PSH, 3000);

	size_t len = frame_ip4(f, 0, IP4_A, IP4_B, IPPROTO_TCP, l4, n, 0);

	run_gso(fx, OUT, f, len, 3, 1000);
	v = only_entry(fx);
	assert_entry_ends(&v, IPPROTO_TCP, IP4_A, 40020, IP4_B, 80);
	assert_entry_counts(&v, 3, 3 * 1040, 0, 0);
	assert_history(v.history, "D");

	/* Total length 0, as BIG TCP sends above 64 KiB: the frame's length. */
	put16(f + 14 + 2, 0);
	run_gso(fx, OUT, f, len, 3, 1000);
	v = only_entry(fx);
	assert_entry_counts(&v, 6, 6 * 1040, 0, 0);
	/* ... but not without GSO: that is a malformed packet */
	run(fx, OUT, f, len);
	assert_int_equal(loss(fx, FS_LOSS_PARSE), 1);
	v = only_entry(fx);
	assert_entry_counts(&v, 6, 6 * 1040, 0, 0);
}

/* IPv6 fragments: the first (offset 0) has ports; a later one, ports 0. */
static void test_ipv6_fragments(void **state)
{
	struct fixture *fx = load(state, &defaults);
	uint8_t frag[8] = { 17, 0, 0, 0, 0, 0, 0, 9 }, l4[256], f[512];
	struct fs_flow_value all[MAX_ENTRIES];
	size_t n;

	put16(frag + 2, 0x0001); /* offset 0, more fragments */
	n = udp_dgram(l4, 4000, 5000, 96);
	run(fx, OUT, f, frame_ip6(f, IP6_A, IP6_B, 44, frag, sizeof(frag), l4, n));
	put16(frag + 2, 13 << 3); /* offset 13 blocks, last */
	memset(l4, 0, 50);
	run(fx, OUT, f, frame_ip6(f, IP6_A, IP6_B, 44, frag, sizeof(frag), l4, 50));
	assert_int_equal(entries(fx, all, MAX_ENTRIES), 2);
	for (int i = 0; i < 2; i++) {
		if (all[i].key.port[0] == 0) {
			assert_entry_ends(&all[i], IPPROTO_UDP, IP6_A, 0, IP6_B, 0);
			assert_entry_counts(&all[i], 1, 40 + 8 + 50, 0, 0);
		} else {
			assert_entry_ends(&all[i], IPPROTO_UDP, IP6_A, 4000, IP6_B, 5000);
			assert_entry_counts(&all[i], 1, 40 + 8 + 104, 0, 0);
		}
	}
	assert_int_equal(loss(fx, FS_LOSS_PARSE), 0);
}

/*
 * A ring of 4096 bytes holds 25 records. 30 RSTs of 30 flows: 25 records,
 * 5 reserves fail and are counted, and those 5 flows stay in the map with
 * their R (nothing marked exported without a record). The next packet of
 * one of them, once there is room, exports it.
 */
static void test_ring_full(void **state)
{
	struct config c = defaults;
	struct fixture *fx;
	struct fs_flow_value all[MAX_ENTRIES];
	uint16_t kept_port;

	c.ring_bytes = 4096;
	fx = load(state, &c);
	for (uint16_t i = 0; i < 30; i++)
		tcp4(fx, IN, IP4_B, 80, IP4_A, (uint16_t)(41000 + i), RST, 0);
	assert_int_equal(4096 / RECORD_RING_BYTES, 25);
	assert_int_equal(loss(fx, FS_LOSS_RINGBUF_FULL), 5);
	assert_int_equal(entries(fx, all, MAX_ENTRIES), 5);
	for (int i = 0; i < 5; i++) {
		assert_history(all[i].history, "R");
		assert_int_equal(all[i].state, FS_FLOW_LIVE);
	}
	assert_int_equal(drain(fx), 25);
	for (unsigned i = 0; i < 25; i++) {
		assert_int_equal(fx->rec[i].end_reason, FS_END_TCP_RST);
		assert_counts(&fx->rec[i], 1, 40, 0, 0);
	}

	kept_port = all[0].key.port[0] == 80 ? all[0].key.port[1] : all[0].key.port[0];
	tcp4(fx, OUT, IP4_A, kept_port, IP4_B, 80, ACK, 0);
	assert_int_equal(drain(fx), 1);
	assert_record_ends(&fx->rec[25], IPPROTO_TCP, IP4_B, 80, IP4_A, kept_port);
	assert_counts(&fx->rec[25], 1, 40, 1, 40);
	assert_history(fx->rec[25].history, "Ra");
	assert_int_equal(fx->rec[25].end_reason, FS_END_TCP_RST);
	assert_int_equal(entries(fx, all, MAX_ENTRIES), 4);
	assert_int_equal(loss(fx, FS_LOSS_RINGBUF_FULL), 5);
}

/*
 * ringbuf_wakeup_bytes = two records: the first record does not wake the
 * consumer (epoll sees nothing); the second, which makes two waiting,
 * forces a wakeup. (BPF_RB_AVAIL_DATA counts the record being submitted:
 * the producer position moved at reserve.)
 */
static void test_wakeup(void **state)
{
	struct config c = defaults;
	struct fixture *fx;

	c.wakeup_bytes = 2 * RECORD_RING_BYTES;
	fx = load(state, &c);
	tcp4(fx, IN, IP4_B, 80, IP4_A, 42000, RST, 0);
	assert_int_equal(ring_buffer__poll(fx->rb, 0), 0);
	tcp4(fx, IN, IP4_B, 80, IP4_A, 42001, RST, 0);
	assert_int_equal(ring_buffer__poll(fx->rb, 0), 2);
	assert_int_equal(fx->n, 2);
}

/*
 * The states another CPU can leave an entry in, made by hand: an entry
 * exported and not yet deleted (a packet that finds it goes out alone, with
 * the same end reason, and leaves the entry alone), and an element reused
 * for another key (its key copy differs: after three tries the packet goes
 * out alone as map-full).
 */
static void test_entry_races(void **state)
{
	struct fixture *fx = load(state, &defaults);
	int fd = bpf_map__fd(fx->skel->maps.flows);
	const struct fs_flow_event *e;
	struct fs_flow_value v, w;

	tcp4(fx, OUT, IP4_A, 40030, IP4_B, 80, SYN, 0);
	v = only_entry(fx);
	v.state = FS_FLOW_EXPORTED;
	v.end_reason = FS_END_TCP_RST;
	assert_int_equal(bpf_map_update_elem(fd, &v.key, &v, BPF_EXIST), 0);
	tcp4(fx, IN, IP4_B, 80, IP4_A, 40030, SYN | ACK, 0);
	assert_int_equal(drain(fx), 1);
	e = &fx->rec[0];
	assert_record_frame(e);
	assert_record_ends(e, IPPROTO_TCP, IP4_A, 40030, IP4_B, 80);
	assert_counts(e, 0, 0, 1, 44);
	assert_history(e->history, "h");
	assert_int_equal(e->end_reason, FS_END_TCP_RST);
	w = only_entry(fx);
	assert_memory_equal(&w, &v, offsetof(struct fs_flow_value, lock));
	assert_entry_counts(&w, 1, 44, 0, 0);
	assert_int_equal(loss(fx, FS_LOSS_MAP_FULL), 0);

	v.state = FS_FLOW_LIVE;
	v.key.port[0] ^= 1; /* the copy no longer matches the map's key */
	assert_int_equal(bpf_map_update_elem(fd, &w.key, &v, BPF_EXIST), 0);
	tcp4(fx, OUT, IP4_A, 40030, IP4_B, 80, ACK, 0);
	assert_int_equal(drain(fx), 1);
	e = &fx->rec[1];
	assert_record_ends(e, IPPROTO_TCP, IP4_A, 40030, IP4_B, 80);
	assert_counts(e, 1, 40, 0, 0);
	assert_history(e->history, "A");
	assert_int_equal(e->end_reason, FS_END_MAP_FULL);
	assert_int_equal(loss(fx, FS_LOSS_MAP_FULL), 1);
	/* the entry, untouched (only_entry() would object to its key copy) */
	struct fs_flow_key key = w.key, next;
	assert_int_equal(bpf_map_lookup_elem_flags(fd, &key, &w, BPF_F_LOCK), 0);
	assert_memory_equal(&w, &v, offsetof(struct fs_flow_value, lock));
	assert_int_equal(bpf_map_get_next_key(fd, &key, &next), -ENOENT);
}

/* ---- two CPUs, one flow ------------------------------------------------------------ */

#define RACE_CALLS 200
#define RACE_REPEAT 200 /* test_run runs the program this many times per call */

struct racer {
	int prog_fd;
	const uint8_t *frame;
	size_t len;
	int failures; /* runs that failed or returned other than TC_ACT_UNSPEC */
};

static void *race(void *arg)
{
	struct racer *r = arg;

	for (int i = 0; i < RACE_CALLS; i++) {
		struct __sk_buff ctx = { .ifindex = LO_IFINDEX };
		LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = r->frame,
			    .data_size_in = (uint32_t)r->len, .ctx_in = &ctx,
			    .ctx_size_in = sizeof(ctx), .repeat = RACE_REPEAT);

		if (bpf_prog_test_run_opts(r->prog_fd, &opts) != 0 ||
		    (int)opts.retval != TC_ACT_UNSPEC)
			r->failures++;
	}
	return NULL;
}

/* Both directions of one UDP flow at once, from two threads (this machine's
 * CPUs): returns when both are done. A's first packet goes first, so A is
 * the originator. Each side sends RACE_CALLS * RACE_REPEAT packets of 48 and
 * 58 bytes. */
static void race_udp(struct fixture *fx)
{
	uint8_t l4[64], fa[128], fb[128];
	struct racer r[2] = {
		{ .prog_fd = bpf_program__fd(fx->skel->progs.flow_egress), .frame = fa },
		{ .prog_fd = bpf_program__fd(fx->skel->progs.flow_ingress), .frame = fb },
	};
	pthread_t t[2];

	r[0].len = frame_ip4(fa, 0, IP4_A, IP4_B, IPPROTO_UDP, l4, udp_dgram(l4, 6000, 7000, 20), 0);
	r[1].len = frame_ip4(fb, 0, IP4_B, IP4_A, IPPROTO_UDP, l4, udp_dgram(l4, 7000, 6000, 30), 0);
	run(fx, OUT, fa, r[0].len);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	assert_int_equal(r[0].failures + r[1].failures, 0);
}

#define RACE_PKTS ((uint64_t)RACE_CALLS * RACE_REPEAT)

/* Every packet counted once: the lock keeps two CPUs from splitting or
 * tearing the flow. */
static void test_race_counts(void **state)
{
	struct fixture *fx = load(state, &defaults);
	struct fs_flow_value v;

	race_udp(fx);
	v = only_entry(fx);
	assert_entry_ends(&v, IPPROTO_UDP, IP4_A, 6000, IP4_B, 7000);
	assert_entry_counts(&v, 1 + RACE_PKTS, 48 * (1 + RACE_PKTS), RACE_PKTS, 58 * RACE_PKTS);
	assert_history(v.history, "Dd");
	assert_int_equal(drain(fx), 0);
}

/* A 1 ns active timeout under the same race: nearly every packet exports
 * an interval, and the intervals plus what is left add up to every packet. */
static void test_race_active_timeout(void **state)
{
	struct config c = defaults;
	struct fixture *fx;
	struct fs_flow_value v;
	uint64_t op, ob, rp, rb;

	c.active_timeout_ns = 1;
	c.ring_bytes = 16 << 20; /* > 2 * RACE_PKTS records */
	fx = load(state, &c);
	race_udp(fx);
	drain(fx);
	print_message("%u intervals exported for %llu packets\n", fx->n,
		      (unsigned long long)(1 + 2 * RACE_PKTS));
	assert_int_equal(loss(fx, FS_LOSS_RINGBUF_FULL), 0);
	assert_true(fx->n > 0);
	assert_int_equal(fx->reasons[FS_END_ACTIVE_TIMEOUT], fx->n);
	assert_int_equal(fx->empty, 0);
	op = fx->sum.orig_pkts;
	ob = fx->sum.orig_bytes;
	rp = fx->sum.resp_pkts;
	rb = fx->sum.resp_bytes;
	v = only_entry(fx);
	op += v.orig_pkts;
	ob += v.orig_bytes;
	rp += v.resp_pkts;
	rb += v.resp_bytes;
	assert_int_equal(op, 1 + RACE_PKTS);
	assert_int_equal(ob, 48 * (1 + RACE_PKTS));
	assert_int_equal(rp, RACE_PKTS);
	assert_int_equal(rb, 58 * RACE_PKTS);
}

/* ---- the two parsers agree ---------------------------------------------------- */

#define AGREE_FRAMES 4000
#define AGREE_ENTRIES 8192

static uint32_t agree_rand(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)(*s >> 33);
}

/* A valid frame of a random kind (IPv4/IPv6, TCP/UDP/ICMP, tags 0-2, a
 * few endpoints so that flows repeat), then most of the time damaged: a
 * byte of the headers replaced, the frame cut or padded. */
static size_t agree_frame(uint8_t *f, uint64_t *seed, uint32_t *gso_segs)
{
	static const char *const v4[] = { "10.0.0.1", "10.0.0.2", "192.0.2.9" };
	static const char *const v6[] = { "2001:db8::1", "2001:db8::2", "fe80::9" };
	uint8_t l4[512], ext[16] = { 0 };
	uint32_t r = agree_rand(seed), kind = r % 8, tags = (r >> 3) % 4 == 3 ? 1 + (r >> 5) % 2 : 0;
	uint16_t sport = (uint16_t)(1000 + agree_rand(seed) % 4), dport = (uint16_t)(80 + agree_rand(seed) % 2);
	size_t payload = agree_rand(seed) % 3 == 0 ? 0 : agree_rand(seed) % 300, l4len, len;
	static const uint8_t tcp_flags[] = { SYN, SYN | ACK, ACK, ACK | PSH, FIN | ACK, RST, RST | ACK };
	uint8_t flags = tcp_flags[agree_rand(seed) % sizeof(tcp_flags)];
	const char *a = NULL, *b = NULL;
	uint8_t proto;

	if (kind < 5) {
		a = v4[agree_rand(seed) % 3];
		b = v4[agree_rand(seed) % 3];
	}
	switch (kind) {
	case 0: case 1: case 5:
		proto = IPPROTO_TCP;
		l4len = tcp_seg(l4, sport, dport, flags, payload);
		break;
	case 2: case 6:
		proto = IPPROTO_UDP;
		l4len = udp_dgram(l4, sport, dport, payload);
		break;
	case 3:
		proto = IPPROTO_ICMP;
		l4len = icmp_msg(l4, agree_rand(seed) % 2 ? 8 : 0, 0, payload);
		break;
	default:
		proto = (uint8_t)(kind == 4 ? 47 : IPPROTO_TCP); /* GRE, or TCP over v6 below */
		l4len = proto == IPPROTO_TCP ? tcp_seg(l4, sport, dport, flags, payload)
					      : udp_dgram(l4, sport, dport, payload);
		break;
	}
	if (kind < 5) {
		len = frame_ip4(f, (int)tags, a, b, proto, l4, l4len,
				agree_rand(seed) % 8 == 0 ? (uint16_t)(agree_rand(seed) % 2 ? 0x2000 : 0x0010) : 0);
	} else {
		const char *x = v6[agree_rand(seed) % 3], *y = v6[agree_rand(seed) % 3];

		if (agree_rand(seed) % 4 == 0) { /* one destination options header */
			ext[0] = proto;
			len = frame_ip6(f, x, y, 60, ext, 8, l4, l4len);
		} else {
			len = frame_ip6(f, x, y, proto, NULL, 0, l4, l4len);
		}
	}
	*gso_segs = agree_rand(seed) % 6 == 0 ? 1 + agree_rand(seed) % 4 : 0;
	switch (agree_rand(seed) % 4) {
	case 0: /* a byte of the first 80 replaced */
		f[agree_rand(seed) % (len < 80 ? len : 80)] = (uint8_t)agree_rand(seed);
		break;
	case 1: /* cut, or padded with zeros as a short frame is on the wire */
		if (agree_rand(seed) % 2) {
			len -= agree_rand(seed) % (len - 14);
		} else {
			size_t pad = agree_rand(seed) % 40;

			memset(f + len, 0, pad);
			len += pad;
		}
		break;
	case 2: /* a length field replaced: IP total/payload length or the TCP data offset */
		f[14 + 4 * tags + (kind < 5 ? 3 : 5)] = (uint8_t)agree_rand(seed);
		if (proto == IPPROTO_TCP && kind < 5 && len > 14 + 4 * tags + 32)
			f[14 + 4 * tags + 32] = (uint8_t)(agree_rand(seed) << 4);
		break;
	default:
		break; /* intact */
	}
	return len;
}

/* One frame through a program; returns test_run's result (EINVAL for a frame
 * the kernel refuses before the program runs). */
static int agree_run(struct fixture *fx, enum dir d, const uint8_t *frame, size_t len,
		     uint32_t gso_segs)
{
	struct bpf_program *prog = d == OUT ? fx->skel->progs.flow_egress
					    : fx->skel->progs.flow_ingress;
	struct __sk_buff ctx = { .ifindex = LO_IFINDEX, .gso_segs = gso_segs };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame, .data_size_in = (uint32_t)len,
		    .ctx_in = &ctx, .ctx_size_in = sizeof(ctx));
	int err = bpf_prog_test_run_opts(bpf_program__fd(prog), &opts);

	if (err == 0)
		assert_int_equal((int)opts.retval, TC_ACT_UNSPEC);
	return err;
}

/* A record or an entry without its times (two runs never share a clock). */
static void agree_untime_record(struct fs_flow_event *e)
{
	e->hdr.ts_ns = 0;
	e->first_ns = 0;
	e->last_ns = 0;
}

static void test_parsers_agree(void **state)
{
	static const struct config c = {
		.max_entries = AGREE_ENTRIES,
		.active_timeout_ns = 0,
		.ring_bytes = 1 << 20,
		.wakeup_bytes = 0,
	};
	void *st_fast = NULL, *st_general = NULL;
	struct fixture *fast, *general;
	static struct fs_flow_value vf[AGREE_ENTRIES];
	uint64_t seed = 20261128;
	uint8_t f[FRAME_MAX];
	unsigned accepted = 0, n_entries;

	fast = load_parser(&st_fast, &c, false);
	general = load_parser(&st_general, &c, true);
	*state = NULL;
	for (unsigned i = 0; i < AGREE_FRAMES; i++) {
		uint32_t gso_segs;
		size_t len = agree_frame(f, &seed, &gso_segs);
		enum dir d = agree_rand(&seed) % 2 ? OUT : IN;
		int ef = agree_run(fast, d, f, len, gso_segs);

		assert_int_equal(agree_run(general, d, f, len, gso_segs), ef);
		accepted += ef == 0;
		drain(fast);
		drain(general);
		assert_int_equal(fast->n, general->n);
		if (fast->n && fast->n <= MAX_RECORDS) {
			struct fs_flow_event x = fast->rec[fast->n - 1], y = general->rec[general->n - 1];

			agree_untime_record(&x);
			agree_untime_record(&y);
			x.sock_cookie = y.sock_cookie = 0; /* each skeleton's dummy socket */
			assert_memory_equal(&x, &y, sizeof(x));
		}
		for (uint32_t why = 0; why < FS_LOSS_MAX; why++)
			assert_int_equal(loss(fast, why), loss(general, why));
		if (fast->n >= MAX_RECORDS) { /* keep comparing record by record */
			fast->n = general->n = 0;
		}
	}
	assert_true(accepted > AGREE_FRAMES / 2);
	assert_true(loss(fast, FS_LOSS_PARSE) > 0); /* the damage reached the parsers */
	assert_memory_equal(&fast->sum, &general->sum, sizeof(fast->sum));

	/* The entries left: the same keys, the same counters and history. */
	n_entries = entries(fast, vf, AGREE_ENTRIES);
	assert_true(n_entries > 10);
	for (unsigned i = 0; i < n_entries; i++) {
		struct fs_flow_value g;

		assert_int_equal(bpf_map_lookup_elem_flags(bpf_map__fd(general->skel->maps.flows),
							   &vf[i].key, &g, BPF_F_LOCK), 0);
		vf[i].first_ns = vf[i].last_ns = g.first_ns = g.last_ns = 0;
		vf[i].sock_cookie = g.sock_cookie = 0;
		assert_memory_equal(&vf[i], &g, sizeof(g));
	}
	{
		static struct fs_flow_value vg[AGREE_ENTRIES];

		assert_int_equal(entries(general, vg, AGREE_ENTRIES), n_entries);
	}
	teardown(&st_fast);
	teardown(&st_general);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_tcp_fin, teardown),
		cmocka_unit_test_teardown(test_tcp_rst, teardown),
		cmocka_unit_test_teardown(test_tcp_refused, teardown),
		cmocka_unit_test_teardown(test_tcp_syn_only, teardown),
		cmocka_unit_test_teardown(test_time_stamps, teardown),
		cmocka_unit_test_teardown(test_tcp_originator, teardown),
		cmocka_unit_test_teardown(test_udp, teardown),
		cmocka_unit_test_teardown(test_icmp_echo, teardown),
		cmocka_unit_test_teardown(test_icmp6_echo, teardown),
		cmocka_unit_test_teardown(test_ipv6_ext, teardown),
		cmocka_unit_test_teardown(test_vlan, teardown),
		cmocka_unit_test_teardown(test_ipv4_fragments, teardown),
		cmocka_unit_test_teardown(test_ipv6_fragments, teardown),
		cmocka_unit_test_teardown(test_other_proto, teardown),
		cmocka_unit_test_teardown(test_not_ip, teardown),
		cmocka_unit_test_teardown(test_malformed, teardown),
		cmocka_unit_test_teardown(test_map_full, teardown),
		cmocka_unit_test_teardown(test_active_timeout, teardown),
		cmocka_unit_test_teardown(test_gso, teardown),
		cmocka_unit_test_teardown(test_ring_full, teardown),
		cmocka_unit_test_teardown(test_wakeup, teardown),
		cmocka_unit_test_teardown(test_entry_races, teardown),
		cmocka_unit_test_teardown(test_race_counts, teardown),
		cmocka_unit_test_teardown(test_race_active_timeout, teardown),
	};
	const struct CMUnitTest agree[] = {
		cmocka_unit_test_teardown(test_parsers_agree, teardown),
	};
	int failed;

	if (geteuid() != 0)
		test_skip_all("test_flow_bpf needs root (BPF_PROG_TEST_RUN of tc programs)");
	if (access(BTF_PATH, R_OK) != 0)
		test_skip_all("test_flow_bpf needs kernel BTF (" BTF_PATH ")");
	failed = cmocka_run_group_tests_name("fast parser", tests, NULL, NULL);
	general_parser_only = true;
	failed += cmocka_run_group_tests_name("general parser only", tests, NULL, NULL);
	failed += cmocka_run_group_tests_name("parsers agree", agree, NULL, NULL);
	return failed;
}
