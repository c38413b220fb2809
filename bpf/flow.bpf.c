// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * flow: per-flow accounting at TC (clsact ingress and egress). Every packet
 * is added to one bidirectional entry of `flows` (struct fs_flow_key ->
 * struct fs_flow_value, bpf/events.h); a flow leaves the kernel as one
 * struct fs_flow_event on `events` when TCP ends it, when it has been
 * accumulating for active_timeout_ns, or when `flows` has no room for it.
 * Idle flows are exported by user space, which walks the map.
 *
 * Invariants:
 *  1. Both programs return TC_ACT_UNSPEC for every packet: they only watch.
 *  2. Parsed: Ethernet, up to two 802.1Q/802.1AD tags, IPv4 (options),
 *     IPv6 with up to IPV6_EXT_MAX hop-by-hop/routing/fragment/destination/
 *     AH headers, TCP, UDP, ICMP, ICMPv6; other IP protocols are flows with
 *     ports 0. Non-IP frames are ignored. Every frame is taken to start
 *     with an Ethernet header: attach the programs to Ethernet-type devices
 *     (and lo) only, never to raw-IP ones (tun, wireguard).
 *     A packet that cannot be parsed (cut short, a header length that does
 *     not fit, a longer extension chain, a third VLAN tag) is counted in
 *     `losses`[FS_LOSS_PARSE] and leaves no trace in `flows` or `events`.
 *     Two parsers, one answer: parse_fast() reads the common shape
 *     (untagged IPv4 without options or IPv6 without extensions, then TCP
 *     or UDP) straight from the packet's linear head; everything else, and
 *     anything it doubts, goes to parse_general() (bpf_skb_load_bytes()).
 *     test_flow_bpf runs every case through both and random frames through
 *     the pair, and requires the same records, entries and counts.
 *  3. Fragments: the first one (offset 0) carries the ports and counts
 *     toward its flow. Later fragments carry none: they count toward the
 *     flow of the same addresses and protocol with ports 0 (no reassembly;
 *     for ICMP that reads as type 0, code 0).
 *  4. ICMP/ICMPv6 ports are Zeek's (bpf/events.h): type, and the counterpart
 *     type of a request/reply pair (else the code), so echo request and
 *     reply meet in one entry: orig_port 8, resp_port 0 (ICMPv6: 128, 129).
 *  5. Bytes are counted at the IP layer (IP header in, L2 out), from the IP
 *     length field, not the frame (frames may be padded); 0 in that field
 *     (BIG TCP, jumbograms) means the rest of the frame. Packets are wire
 *     packets: a GSO/GRO packet of gso_segs > 1 counts gso_segs packets and
 *     its length plus (gso_segs - 1) copies of its IP and L4 headers.
 *  6. Originator: the sender of the first packet seen; for TCP a SYN (no
 *     ACK) makes its sender the originator even when other packets came
 *     first (unless the originator had sent a SYN itself), and a SYN+ACK
 *     seen first makes its receiver the originator.
 *  7. History: Zeek's letters, each at most once per side, in order of first
 *     appearance (S SYN, H SYN+ACK, A pure ACK, D payload, F FIN, R RST;
 *     upper case for the originator); UDP shows D/d; other protocols none.
 *     TCP flags: the OR of FIN SYN RST PSH ACK URG each way (the FS_TCP_*
 *     bits; ECE and CWR are left out).
 *  8. Every update of an entry is made under its bpf_spin_lock, so two CPUs
 *     never split or tear a flow; no helper is called under the lock.
 *     The entry keeps a copy of its key, checked under the lock: a
 *     preallocated hash element freed by a delete can be reused at once for
 *     another key while a CPU still holds a pointer to it. (An insert copies
 *     its value in without the lock, so a CPU that locks a just-reused
 *     element could still see a half-written key: a window of nanoseconds
 *     that needs a delete and a reuse between its lookup and its lock.)
 *  9. Exports: the ring buffer record is reserved before the lock is taken
 *     (whenever an unlocked look says an export may be due); under the lock
 *     the decision is made, the record filled and the entry reset or marked
 *     exported, all at once; after it the record is submitted. So nothing is
 *     marked exported unless its record exists: a failed reserve is counted
 *     in `losses`[FS_LOSS_RINGBUF_FULL] and the flow stays in the map, whole,
 *     for the next packet or the user-space sweep to export.
 * 10. TCP end: a RST ends the flow (FS_END_TCP_RST) on the packet that
 *     carries it. FIN both ways puts the entry in FS_FLOW_CLOSING; the flow
 *     ends (FS_END_TCP_FIN) with the last ACK, the next ACK without
 *     SYN/FIN/RST from the side whose FIN came first, so that the ACK is
 *     counted in the flow instead of starting a new entry. Without it the
 *     user-space sweep exports the flow when idle.
 *     An ended entry is marked FS_FLOW_EXPORTED under the lock and deleted
 *     right after the unlock. A packet that finds it marked in between
 *     (another CPU) goes out as a one-packet record of the same end reason:
 *     it must not be added to an entry about to be deleted, and must not
 *     delete or remake it (the delete would take the new one).
 * 11. Active timeout: a packet that finds its entry accumulating for
 *     >= active_timeout_ns (0: never) exports the entry as it was
 *     (FS_END_ACTIVE_TIMEOUT) and starts a fresh interval with itself.
 *     Counters, times and TCP flags are per interval; the history, the
 *     originator and the socket cookie belong to the whole flow.
 * 12. `flows` is a plain hash (LRU would silently evict live counters);
 *     user space sets its max_entries before load. When an insert fails,
 *     the packet goes out as a one-packet record (FS_END_MAP_FULL) and
 *     `losses`[FS_LOSS_MAP_FULL] counts it.
 * 13. sock_cookie: on egress, the cookie of the packet's full, non-raw
 *     socket (not a request or time-wait socket, nor the kernel's raw
 *     control sockets that send RSTs and ICMP replies); the first seen is
 *     kept, and asked for only while the entry has none. pid and comm
 *     stay 0/"": TC runs in softirq, where the current task is anyone's;
 *     user space joins owners by cookie.
 * 14. Wakeups: ringbuf_wakeup_bytes = 0 submits with flags 0; N > 0 submits
 *     without a wakeup unless the ring holds >= N bytes, this record
 *     included (the producer position moves at reserve), when it forces one
 *     (DESIGN.md, "Wakeups decide the ring buffer's cost").
 * 15. Time: a packet's time is bpf_ktime_get_ns() (CLOCK_MONOTONIC), read
 *     once per packet, except for a TCP packet stamped with its departure
 *     time by a local TCP stack (skb->tstamp of type MONOTONIC, "EDT"):
 *     the stack read that from the same clock just before sending, and the
 *     stamp survives a veth into another namespace, so the packet's time
 *     is its stamp and the clock is not read again (~33 ns on this VM).
 *     Under the fq qdisc's pacing the stamp is the planned departure, up
 *     to the pacing delay later than the program runs: when the packet
 *     leaves. TCP_TX_DELAY, an EDT rate limiter before us and a SYN-cookie
 *     SYN-ACK stamp further off (docs/capture.md, "Time"). Stamps of other
 *     kinds are never taken: a receive stamp is CLOCK_REALTIME, and a UDP
 *     socket's SO_TXTIME may name any time. Kernels without the stamp's
 *     type (before 5.18) read the clock for every packet.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "events.h"

/* Not in vmlinux.h: they are macros in the kernel. */
#define TC_ACT_UNSPEC (-1)
#define EEXIST 17
#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define VLAN_HLEN 4
#define IP_OFFSET 0x1FFF  /* IPv4 fragment offset bits */
#define IP6_OFFSET 0xFFF8 /* IPv6 fragment header offset bits */
#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_AUTH 51
#define NEXTHDR_DEST 60
#define NEXTHDR_ICMPV6 58

#define VLAN_MAX_DEPTH 2
#define IPV6_EXT_MAX 8
#define FLOW_ATTEMPTS 3 /* lookup/insert rounds before giving up (invariant 8) */

/* History letters as bits, in the order one packet's letters are written. */
#define HIST_S 0x01 /* SYN without ACK */
#define HIST_H 0x02 /* SYN+ACK */
#define HIST_A 0x04 /* pure ACK */
#define HIST_D 0x08 /* payload */
#define HIST_F 0x10 /* FIN */
#define HIST_R 0x20 /* RST */
#define HIST_KINDS 6
/* The letters of those bits, one per byte from the lowest. */
#define HIST_LETTERS                                                                   \
	((__u64)'S' | (__u64)'H' << 8 | (__u64)'A' << 16 | (__u64)'D' << 24 |          \
	 (__u64)'F' << 32 | (__u64)'R' << 40)
#define LOWER_CASE 0x20

#define TCP_FLAGS_KEPT 0x3F /* FIN SYN RST PSH ACK URG: the FS_TCP_* bits */

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set before load. 0 disables the active timeout. */
const volatile __u64 active_timeout_ns = 60ULL * 1000000000ULL;
/* Set before load: 1 sends every packet through the general parser (tests
 * compare the two parsers on the same packets). */
const volatile __u8 general_parser_only = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536); /* default; user space sets it before load */
	__type(key, struct fs_flow_key);
	__type(value, struct fs_flow_value);
} flows SEC(".maps");

#include "output.bpf.h"

/* enum fs_flow_count: entries made and deleted by the program. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FS_FLOW_COUNTS);
	__type(key, __u32);
	__type(value, __u64);
} flow_counts SEC(".maps");

static __always_inline void flow_count(__u32 which)
{
	percpu_inc(&flow_counts, which);
}

/* One packet, as the accounting sees it. */
struct flow_pkt {
	struct fs_flow_key key;
	__u32 segs; /* wire packets it stands for */
	__u64 bytes;  /* IP layer, over all segs */
	__u64 cookie; /* owning socket (egress), else 0 */
	__u8 sender;  /* key side that sent it */
	__u8 tcp_flags;
	__u8 letters; /* HIST_* it shows */
	__u8 reserved[5];
};

/* Where the IP layer put things, as skb offsets. */
struct flow_l3 {
	__u32 l3_off;
	__u32 l4_off;
	__u32 ip_end; /* end of the IP datagram: what lies beyond is padding */
	__u8 proto;
	__u8 later_fragment;
};

struct flow_ipv6_frag {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 identification;
};

enum parse_result { PARSE_OK, PARSE_NOT_IP, PARSE_BAD, PARSE_GENERAL };
enum update_result { UPDATE_DONE, UPDATE_RETRY };

/* ---- parsing --------------------------------------------------------------- */

static __always_inline int parse_ipv4(struct __sk_buff *skb, struct flow_pkt *p,
				      struct flow_l3 *l3)
{
	__u32 off = l3->l3_off, avail, hlen, tot;
	struct iphdr ip;

	if (bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)))
		return PARSE_BAD;
	avail = skb->len - off;
	hlen = ip.ihl * 4;
	tot = bpf_ntohs(ip.tot_len);
	if (ip.version != 4 || ip.ihl < 5 || hlen > avail)
		return PARSE_BAD;
	if (tot == 0 && p->segs > 1)
		tot = avail; /* a GSO packet above 64 KiB (BIG TCP) */
	if (tot < hlen || tot > avail)
		return PARSE_BAD;

	p->key.addr[0][10] = 0xff;
	p->key.addr[0][11] = 0xff;
	__builtin_memcpy(&p->key.addr[0][12], &ip.saddr, 4);
	p->key.addr[1][10] = 0xff;
	p->key.addr[1][11] = 0xff;
	__builtin_memcpy(&p->key.addr[1][12], &ip.daddr, 4);
	l3->proto = ip.protocol;
	l3->l4_off = off + hlen;
	l3->ip_end = off + tot;
	l3->later_fragment = (bpf_ntohs(ip.frag_off) & IP_OFFSET) != 0;
	return PARSE_OK;
}

static __always_inline bool ipv6_ext(__u8 nexthdr)
{
	return nexthdr == NEXTHDR_HOP || nexthdr == NEXTHDR_ROUTING ||
	       nexthdr == NEXTHDR_FRAGMENT || nexthdr == NEXTHDR_AUTH ||
	       nexthdr == NEXTHDR_DEST;
}

/* Walks the extension headers: l3->l4_off and proto end at the upper layer. */
static __always_inline int parse_ipv6_ext(struct __sk_buff *skb, struct flow_l3 *l3)
{
	__u32 off = l3->l4_off, end = l3->ip_end;
	__u8 nexthdr = l3->proto;
	int i;

	for (i = 0; i < IPV6_EXT_MAX && ipv6_ext(nexthdr); i++) {
		struct flow_ipv6_frag frag;
		__u8 hdr[2]; /* next header, length */

		if (nexthdr == NEXTHDR_FRAGMENT) {
			if (off + sizeof(frag) > end ||
			    bpf_skb_load_bytes(skb, off, &frag, sizeof(frag)))
				return PARSE_BAD;
			off += sizeof(frag);
			nexthdr = frag.nexthdr;
			if (bpf_ntohs(frag.frag_off) & IP6_OFFSET) {
				l3->later_fragment = 1;
				break; /* what follows is the middle of a datagram */
			}
			continue;
		}
		if (off + sizeof(hdr) > end || bpf_skb_load_bytes(skb, off, hdr, sizeof(hdr)))
			return PARSE_BAD;
		if (nexthdr == NEXTHDR_AUTH)
			off += ((__u32)hdr[1] + 2) * 4;
		else
			off += ((__u32)hdr[1] + 1) * 8;
		nexthdr = hdr[0];
	}
	if (!l3->later_fragment && ipv6_ext(nexthdr))
		return PARSE_BAD; /* longer than IPV6_EXT_MAX */
	if (off > end)
		return PARSE_BAD;
	l3->l4_off = off;
	l3->proto = nexthdr;
	return PARSE_OK;
}

static __always_inline int parse_ipv6(struct __sk_buff *skb, struct flow_pkt *p,
				      struct flow_l3 *l3)
{
	__u32 off = l3->l3_off, avail, tot;
	struct ipv6hdr ip6;

	if (bpf_skb_load_bytes(skb, off, &ip6, sizeof(ip6)))
		return PARSE_BAD;
	if (ip6.version != 6)
		return PARSE_BAD;
	avail = skb->len - off;
	tot = bpf_ntohs(ip6.payload_len);
	/* 0: a jumbogram or a GSO packet above 64 KiB (BIG TCP) */
	tot = tot ? tot + sizeof(ip6) : avail;
	if (tot > avail)
		return PARSE_BAD;

	__builtin_memcpy(p->key.addr[0], &ip6.saddr, 16);
	__builtin_memcpy(p->key.addr[1], &ip6.daddr, 16);
	l3->proto = ip6.nexthdr;
	l3->l4_off = off + sizeof(ip6);
	l3->ip_end = off + tot;
	return parse_ipv6_ext(skb, l3);
}

/* Zeek's ICMP counterpart types (request <-> reply), or -1 for one-way types. */
static __always_inline int icmp4_counterpart(__u8 type)
{
	switch (type) {
	case 8: return 0;   /* echo */
	case 0: return 8;
	case 13: return 14; /* timestamp */
	case 14: return 13;
	case 15: return 16; /* information */
	case 16: return 15;
	case 10: return 9;  /* router solicitation / advertisement */
	case 9: return 10;
	case 17: return 18; /* address mask */
	case 18: return 17;
	default: return -1;
	}
}

static __always_inline int icmp6_counterpart(__u8 type)
{
	switch (type) {
	case 128: return 129; /* echo */
	case 129: return 128;
	case 133: return 134; /* router solicitation / advertisement */
	case 134: return 133;
	case 135: return 136; /* neighbour solicitation / advertisement */
	case 136: return 135;
	case 130: return 131; /* MLD query / report */
	case 131: return 130;
	case 139: return 140; /* node information query / response */
	case 140: return 139;
	case 144: return 145; /* home agent address discovery */
	case 145: return 144;
	default: return -1;
	}
}

static __always_inline __u8 tcp_letters(__u8 flags, bool payload)
{
	__u8 l = 0;

	if (flags & FS_TCP_SYN)
		l |= (flags & FS_TCP_ACK) ? HIST_H : HIST_S;
	if (payload)
		l |= HIST_D;
	if (flags & FS_TCP_FIN)
		l |= HIST_F;
	if (flags & FS_TCP_RST)
		l |= HIST_R;
	if ((flags & FS_TCP_ACK) && !(flags & (FS_TCP_SYN | FS_TCP_FIN | FS_TCP_RST)) && !payload)
		l |= HIST_A;
	return l;
}

/*
 * The upper layer: ports (sender's first), TCP flags and letters, and the
 * length of the headers a GSO packet repeats in every segment.
 */
static __always_inline int parse_l4(struct __sk_buff *skb, struct flow_pkt *p,
				    const struct flow_l3 *l3, __u16 ports[2], __u32 *hdrs)
{
	__u32 off = l3->l4_off, end = l3->ip_end;

	*hdrs = off - l3->l3_off;
	if (l3->later_fragment) {
		if (l3->proto == IPPROTO_UDP)
			p->letters = HIST_D;
		return PARSE_OK;
	}
	switch (l3->proto) {
	case IPPROTO_TCP: {
		struct tcphdr th;
		__u32 thlen;

		if (off + sizeof(th) > end || bpf_skb_load_bytes(skb, off, &th, sizeof(th)))
			return PARSE_BAD;
		thlen = th.doff * 4;
		if (th.doff < 5 || off + thlen > end)
			return PARSE_BAD;
		ports[0] = bpf_ntohs(th.source);
		ports[1] = bpf_ntohs(th.dest);
		p->tcp_flags = ((__u8 *)&th)[13] & TCP_FLAGS_KEPT;
		p->letters = tcp_letters(p->tcp_flags, off + thlen < end);
		*hdrs += thlen;
		return PARSE_OK;
	}
	case IPPROTO_UDP: {
		struct udphdr uh;

		if (off + sizeof(uh) > end || bpf_skb_load_bytes(skb, off, &uh, sizeof(uh)))
			return PARSE_BAD;
		ports[0] = bpf_ntohs(uh.source);
		ports[1] = bpf_ntohs(uh.dest);
		p->letters = HIST_D;
		*hdrs += sizeof(uh);
		return PARSE_OK;
	}
	case IPPROTO_ICMP:
	case NEXTHDR_ICMPV6: {
		__u8 icmp[4]; /* type, code, checksum: the least any message has */
		int counterpart;

		if (off + sizeof(icmp) > end || bpf_skb_load_bytes(skb, off, icmp, sizeof(icmp)))
			return PARSE_BAD;
		counterpart = l3->proto == IPPROTO_ICMP ? icmp4_counterpart(icmp[0])
							: icmp6_counterpart(icmp[0]);
		ports[0] = icmp[0];
		ports[1] = counterpart >= 0 ? counterpart : icmp[1];
		return PARSE_OK;
	}
	default:
		return PARSE_OK;
	}
}

/* Is endpoint a (address, port) above endpoint b? Addresses as numbers. */
static __always_inline bool endpoint_above(const __u8 *a, __u16 aport, const __u8 *b,
					   __u16 bport)
{
	__u64 ah, al, bh, bl;

	__builtin_memcpy(&ah, a, 8);
	__builtin_memcpy(&al, a + 8, 8);
	__builtin_memcpy(&bh, b, 8);
	__builtin_memcpy(&bl, b + 8, 8);
	ah = bpf_be64_to_cpu(ah);
	al = bpf_be64_to_cpu(al);
	bh = bpf_be64_to_cpu(bh);
	bl = bpf_be64_to_cpu(bl);
	if (ah != bh)
		return ah > bh;
	if (al != bl)
		return al > bl;
	return aport > bport;
}

/* The key holds sender, receiver: put the lower endpoint on side 0. */
static __always_inline void order_sides(struct flow_pkt *p, const __u16 ports[2])
{
	__u64 t0, t1;

	if (!endpoint_above(p->key.addr[0], ports[0], p->key.addr[1], ports[1])) {
		p->key.port[0] = ports[0];
		p->key.port[1] = ports[1];
		p->sender = 0;
		return;
	}
	__builtin_memcpy(&t0, p->key.addr[0], 8);
	__builtin_memcpy(&t1, p->key.addr[0] + 8, 8);
	__builtin_memcpy(p->key.addr[0], p->key.addr[1], 16);
	__builtin_memcpy(p->key.addr[1], &t0, 8);
	__builtin_memcpy(p->key.addr[1] + 8, &t1, 8);
	p->key.port[0] = ports[1];
	p->key.port[1] = ports[0];
	p->sender = 1;
}

/*
 * The shape nearly every packet has, read straight from the packet's linear
 * head instead of through bpf_skb_load_bytes(): untagged Ethernet; IPv4
 * without options and not a later fragment, or IPv6 with no extension
 * header; then TCP or UDP. Anything else, anything not wholly in the head,
 * any length that does not add up: PARSE_GENERAL, and the general parser
 * below decides (and counts what it cannot parse). So for every packet it
 * accepts, it finds exactly what the general parser would. Fixed offsets
 * only, so that the verifier's work grows by little (a general parser on
 * direct packet access, variable offsets and all, took it 216k
 * instructions and seconds of load time).
 * Fills the key's addresses, ports (sender's first), proto, tcp_flags,
 * letters, the IP datagram's length and the headers a segment repeats.
 */
static __always_inline int parse_fast(struct __sk_buff *skb, struct flow_pkt *p,
				      __u16 ports[2], __u32 *ip_len, __u32 *hdrs)
{
	void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__u32 avail, tot, l3_hdr;
	void *l4;

	if (general_parser_only || (void *)(eth + 1) > data_end)
		return PARSE_GENERAL;
	avail = skb->len - ETH_HLEN;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end || *(__u8 *)ip != 0x45 ||
		    (ip->frag_off & bpf_htons(IP_OFFSET)))
			return PARSE_GENERAL;
		tot = bpf_ntohs(ip->tot_len);
		if (tot == 0 && p->segs > 1)
			tot = avail; /* a GSO packet above 64 KiB (BIG TCP) */
		if (tot < sizeof(*ip) || tot > avail)
			return PARSE_GENERAL;
		p->key.addr[0][10] = 0xff;
		p->key.addr[0][11] = 0xff;
		__builtin_memcpy(&p->key.addr[0][12], &ip->saddr, 4);
		p->key.addr[1][10] = 0xff;
		p->key.addr[1][11] = 0xff;
		__builtin_memcpy(&p->key.addr[1][12], &ip->daddr, 4);
		p->key.proto = ip->protocol;
		l3_hdr = sizeof(*ip);
		l4 = ip + 1;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end || ip6->version != 6)
			return PARSE_GENERAL;
		tot = bpf_ntohs(ip6->payload_len);
		tot = tot ? tot + sizeof(*ip6) : avail; /* 0: jumbogram, BIG TCP */
		if (tot > avail)
			return PARSE_GENERAL;
		__builtin_memcpy(p->key.addr[0], &ip6->saddr, 16);
		__builtin_memcpy(p->key.addr[1], &ip6->daddr, 16);
		p->key.proto = ip6->nexthdr;
		l3_hdr = sizeof(*ip6);
		l4 = ip6 + 1;
	} else {
		return PARSE_GENERAL;
	}

	if (p->key.proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;
		__u32 th_len;

		if ((void *)(th + 1) > data_end)
			return PARSE_GENERAL;
		th_len = th->doff * 4;
		if (th->doff < 5 || l3_hdr + th_len > tot)
			return PARSE_GENERAL;
		ports[0] = bpf_ntohs(th->source);
		ports[1] = bpf_ntohs(th->dest);
		p->tcp_flags = ((__u8 *)th)[13] & TCP_FLAGS_KEPT;
		p->letters = tcp_letters(p->tcp_flags, l3_hdr + th_len < tot);
		*hdrs = l3_hdr + th_len;
	} else if (p->key.proto == IPPROTO_UDP) {
		struct udphdr *uh = l4;

		if ((void *)(uh + 1) > data_end || l3_hdr + sizeof(*uh) > tot)
			return PARSE_GENERAL;
		ports[0] = bpf_ntohs(uh->source);
		ports[1] = bpf_ntohs(uh->dest);
		p->letters = HIST_D;
		*hdrs = l3_hdr + sizeof(*uh);
	} else {
		return PARSE_GENERAL;
	}
	*ip_len = tot;
	return PARSE_OK;
}

/* The general parser: any frame, through bpf_skb_load_bytes(). */
static __always_inline int parse_general(struct __sk_buff *skb, struct flow_pkt *p,
					 __u16 ports[2], __u32 *ip_len, __u32 *hdrs)
{
	struct flow_l3 l3 = {};
	__be16 ethertype;
	__u32 off = ETH_HLEN;
	int i, r;

	if (bpf_skb_load_bytes(skb, ETH_HLEN - 2, &ethertype, sizeof(ethertype)))
		return PARSE_BAD;
	for (i = 0; i < VLAN_MAX_DEPTH; i++) {
		if (ethertype != bpf_htons(ETH_P_8021Q) && ethertype != bpf_htons(ETH_P_8021AD))
			break;
		if (bpf_skb_load_bytes(skb, off + 2, &ethertype, sizeof(ethertype)))
			return PARSE_BAD;
		off += VLAN_HLEN;
	}
	l3.l3_off = off;
	if (ethertype == bpf_htons(ETH_P_IP))
		r = parse_ipv4(skb, p, &l3);
	else if (ethertype == bpf_htons(ETH_P_IPV6))
		r = parse_ipv6(skb, p, &l3);
	else if (ethertype == bpf_htons(ETH_P_8021Q) || ethertype == bpf_htons(ETH_P_8021AD))
		return PARSE_BAD; /* a third tag */
	else
		return PARSE_NOT_IP;
	if (r != PARSE_OK)
		return r;
	r = parse_l4(skb, p, &l3, ports, hdrs);
	if (r != PARSE_OK)
		return r;
	p->key.proto = l3.proto;
	*ip_len = l3.ip_end - l3.l3_off;
	return PARSE_OK;
}

static __always_inline int parse_packet(struct __sk_buff *skb, struct flow_pkt *p)
{
	__u16 ports[2] = {};
	__u32 ip_len = 0, hdrs = 0;
	int r = parse_fast(skb, p, ports, &ip_len, &hdrs);

	if (r == PARSE_GENERAL) {
		/* The fast path may have written addresses, proto and flags
		 * before it gave up: the general parser writes each again (the
		 * same frame, the same Ethernet type) or fails. */
		r = parse_general(skb, p, ports, &ip_len, &hdrs);
		if (r != PARSE_OK)
			return r;
	}
	p->key.ifindex = skb->ifindex;
	p->bytes = (__u64)ip_len + (__u64)(p->segs - 1) * hdrs;
	order_sides(p, ports);
	return PARSE_OK;
}

/* ---- the owning socket ------------------------------------------------------- */

/* Invariant 13. Only egress packets carry their sender's socket. */
static __always_inline __u64 owner_cookie(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;

	if (!sk)
		return 0;
	sk = bpf_sk_fullsock(sk);
	if (!sk || sk->type == SOCK_RAW)
		return 0;
	return bpf_get_socket_cookie(skb);
}

/* ---- entries (map values or stack copies) ----------------------------------- */

static __always_inline void history_append(struct fs_flow_value *v, __u8 fresh, bool upper)
{
	char *history = v->history;
	int i;

	/* Hide the alignment of a stack entry from clang, which would turn
	 * history + n into history | n: the verifier refuses that. */
	barrier_var(history);
	for (i = 0; i < HIST_KINDS; i++) {
		__u8 n = v->history_len;

		if (!(fresh & (1 << i)))
			continue;
		if (n >= FS_HISTORY_LEN)
			break;
		history[n] = (char)((HIST_LETTERS >> (8 * i)) & 0xff) | (upper ? 0 : LOWER_CASE);
		v->history_len = n + 1;
	}
}

static __always_inline void value_add(struct fs_flow_value *v, const struct flow_pkt *p,
				      __u64 now)
{
	bool orig = p->sender == v->orig_side;
	__u8 fresh;

	if (orig) {
		v->orig_pkts += p->segs;
		v->orig_bytes += p->bytes;
		v->orig_tcp_flags |= p->tcp_flags;
		fresh = p->letters & ~v->orig_seen;
		v->orig_seen |= fresh;
	} else {
		v->resp_pkts += p->segs;
		v->resp_bytes += p->bytes;
		v->resp_tcp_flags |= p->tcp_flags;
		fresh = p->letters & ~v->resp_seen;
		v->resp_seen |= fresh;
	}
	if (now > v->last_ns)
		v->last_ns = now;
	if (!v->sock_cookie)
		v->sock_cookie = p->cookie;
	history_append(v, fresh, orig);
}

#define SWAP(a, b)                                                                     \
	do {                                                                           \
		__typeof__(a) swap_tmp = (a);                                          \
		(a) = (b);                                                             \
		(b) = swap_tmp;                                                        \
	} while (0)

/* The responder becomes the originator (invariant 6). */
static __always_inline void value_flip(struct fs_flow_value *v)
{
	int i;

	SWAP(v->orig_pkts, v->resp_pkts);
	SWAP(v->orig_bytes, v->resp_bytes);
	SWAP(v->orig_tcp_flags, v->resp_tcp_flags);
	SWAP(v->orig_seen, v->resp_seen);
	v->orig_side ^= 1;
	for (i = 0; i < FS_HISTORY_LEN; i++)
		if (v->history[i])
			v->history[i] ^= LOWER_CASE;
}

static __always_inline bool flip_due(const struct fs_flow_value *v, const struct flow_pkt *p)
{
	return (p->letters & HIST_S) && p->sender != v->orig_side && !(v->orig_seen & HIST_S);
}

/* The ACK that answers the second FIN (invariant 10). */
static __always_inline bool last_ack(__u8 state, __u8 fin_side, const struct flow_pkt *p)
{
	return state == FS_FLOW_CLOSING && p->sender != fin_side &&
	       (p->tcp_flags & FS_TCP_ACK) &&
	       !(p->tcp_flags & (FS_TCP_SYN | FS_TCP_FIN | FS_TCP_RST));
}

static __always_inline bool active_expired(const struct fs_flow_value *v, __u64 now)
{
	/* first_ns may be a later CPU's now */
	return active_timeout_ns && now > v->first_ns && now - v->first_ns >= active_timeout_ns;
}

/* A new interval: what was accumulated has been exported. */
static __always_inline void interval_reset(struct fs_flow_value *v, __u64 now)
{
	v->first_ns = now;
	v->last_ns = now;
	v->orig_pkts = 0;
	v->orig_bytes = 0;
	v->resp_pkts = 0;
	v->resp_bytes = 0;
	v->orig_tcp_flags = 0;
	v->resp_tcp_flags = 0;
}

static __always_inline bool key_equal(const struct fs_flow_key *a, const struct fs_flow_key *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;
	int i;

	for (i = 0; i < sizeof(*a) / sizeof(__u32); i++)
		if (x[i] != y[i])
			return false;
	return true;
}

/* A fresh entry holding one packet. */
static __always_inline void value_init(struct fs_flow_value *v, const struct flow_pkt *p,
				       __u64 now)
{
	__builtin_memset(v, 0, sizeof(*v));
	__builtin_memcpy(&v->key, &p->key, sizeof(v->key));
	/* A SYN+ACK seen first: its receiver opened the connection. */
	v->orig_side = (p->letters & HIST_H) ? p->sender ^ 1 : p->sender;
	v->first_ns = now;
	v->last_ns = now;
	value_add(v, p, now);
}

/* ---- records ----------------------------------------------------------------- */

/* Every byte of e is written: reserved ring memory is not zeroed. No
 * helper calls: this runs under the entry's lock. */
static __always_inline void record_fill(struct fs_flow_event *e, const struct fs_flow_value *v,
					__u8 end_reason, __u64 now)
{
	__builtin_memset(e, 0, sizeof(*e));
	e->hdr.ts_ns = now;
	e->hdr.type = FS_EVENT_FLOW;
	e->hdr.size = sizeof(*e);
	e->first_ns = v->first_ns;
	e->last_ns = v->last_ns;
	e->orig_pkts = v->orig_pkts;
	e->orig_bytes = v->orig_bytes;
	e->resp_pkts = v->resp_pkts;
	e->resp_bytes = v->resp_bytes;
	e->sock_cookie = v->sock_cookie;
	if (v->orig_side) {
		__builtin_memcpy(e->orig_addr, v->key.addr[1], 16);
		__builtin_memcpy(e->resp_addr, v->key.addr[0], 16);
		e->orig_port = v->key.port[1];
		e->resp_port = v->key.port[0];
	} else {
		__builtin_memcpy(e->orig_addr, v->key.addr[0], 16);
		__builtin_memcpy(e->resp_addr, v->key.addr[1], 16);
		e->orig_port = v->key.port[0];
		e->resp_port = v->key.port[1];
	}
	e->ifindex = v->key.ifindex;
	e->proto = v->key.proto;
	e->end_reason = end_reason;
	e->orig_tcp_flags = v->orig_tcp_flags;
	e->resp_tcp_flags = v->resp_tcp_flags;
	__builtin_memcpy(e->history, v->history, FS_HISTORY_LEN);
}

static __always_inline struct fs_flow_event *record_reserve(void)
{
	return output_reserve(sizeof(struct fs_flow_event));
}

/* A record of v, which no one else can see. Returns 0 if it went out. */
static __always_inline int record_emit(const struct fs_flow_value *v, __u8 end_reason,
				       __u64 now)
{
	struct fs_flow_event *e = record_reserve();

	if (!e)
		return -1;
	record_fill(e, v, end_reason, now);
	output_submit(e);
	return 0;
}

/* The packet alone, as a one-packet flow. */
static __always_inline void record_emit_packet(const struct flow_pkt *p, __u8 end_reason,
					       __u64 now)
{
	struct fs_flow_value v;

	value_init(&v, p, now);
	record_emit(&v, end_reason, now);
}

/* ---- the flow of a packet ---------------------------------------------------- */

/* An unlocked look (a hint only): may this packet export the entry? */
static __always_inline bool export_likely(const struct fs_flow_value *v,
					  const struct flow_pkt *p, __u64 now)
{
	return (p->letters & HIST_R) || ((v->orig_seen | v->resp_seen) & HIST_R) ||
	       last_ack(v->state, v->fin_side, p) || active_expired(v, now);
}

/*
 * Under v's lock: the packet joins the entry. When e (reserved beforehand)
 * is there and an export is due, fills e and resets the entry or marks it
 * exported. Returns the end reason of the export, 0 if none.
 */
static __always_inline __u8 entry_apply(struct fs_flow_value *v, const struct flow_pkt *p,
					struct fs_flow_event *e, __u64 now)
{
	__u8 exported = 0;
	bool ends = (p->letters & HIST_R) || ((v->orig_seen | v->resp_seen) & HIST_R) ||
		    last_ack(v->state, v->fin_side, p);

	if (e && !ends && active_expired(v, now)) {
		record_fill(e, v, FS_END_ACTIVE_TIMEOUT, now);
		interval_reset(v, now);
		exported = FS_END_ACTIVE_TIMEOUT;
	}
	if (flip_due(v, p))
		value_flip(v);
	value_add(v, p, now);
	if (e && ends) {
		exported = ((v->orig_seen | v->resp_seen) & HIST_R) ? FS_END_TCP_RST : FS_END_TCP_FIN;
		record_fill(e, v, exported, now);
		v->state = FS_FLOW_EXPORTED;
		v->end_reason = exported;
	} else if (v->state == FS_FLOW_LIVE && (v->orig_seen & HIST_F) &&
		   (v->resp_seen & HIST_F)) {
		v->state = FS_FLOW_CLOSING;
		v->fin_side = p->sender;
	}
	return exported;
}

/* The packet joins an existing entry (invariants 8 to 11). */
static __always_inline int flow_update(struct fs_flow_value *v, const struct flow_pkt *p,
				       __u64 now)
{
	struct fs_flow_event *e = NULL;
	__u8 exported, straggler;

	if (export_likely(v, p, now))
		e = record_reserve();

	bpf_spin_lock(&v->lock);
	if (!key_equal(&v->key, &p->key)) {
		bpf_spin_unlock(&v->lock);
		if (e)
			bpf_ringbuf_discard(e, 0);
		return UPDATE_RETRY; /* the element went to another flow */
	}
	if (v->state == FS_FLOW_EXPORTED) {
		straggler = v->end_reason;
		bpf_spin_unlock(&v->lock);
		if (e)
			bpf_ringbuf_discard(e, 0);
		record_emit_packet(p, straggler, now);
		return UPDATE_DONE;
	}
	exported = entry_apply(v, p, e, now);
	bpf_spin_unlock(&v->lock);

	if (!e)
		return UPDATE_DONE;
	if (!exported) {
		bpf_ringbuf_discard(e, 0);
		return UPDATE_DONE;
	}
	output_submit(e);
	if (exported != FS_END_ACTIVE_TIMEOUT && bpf_map_delete_elem(&flows, &p->key) == 0)
		flow_count(FS_FLOWS_DELETED);
	return UPDATE_DONE;
}

/* The packet starts a flow (invariants 10 and 12). */
static __always_inline int flow_create(const struct flow_pkt *p, __u64 now)
{
	struct fs_flow_value v;
	long err;

	value_init(&v, p, now);
	/* Ended by its first packet: no entry needed, unless the ring is full. */
	if ((p->letters & HIST_R) && record_emit(&v, FS_END_TCP_RST, now) == 0)
		return UPDATE_DONE;
	err = bpf_map_update_elem(&flows, &p->key, &v, BPF_NOEXIST);
	if (err == 0) {
		flow_count(FS_FLOWS_CREATED);
		return UPDATE_DONE;
	}
	if (err == -EEXIST)
		return UPDATE_RETRY; /* another CPU made it first */
	count_loss(FS_LOSS_MAP_FULL);
	record_emit(&v, FS_END_MAP_FULL, now);
	return UPDATE_DONE;
}

/*
 * struct __sk_buff's tstamp_type (Linux 5.18) as CO-RE sees it: the program
 * builds against any vmlinux.h and loads on kernels without the field,
 * where bpf_core_field_exists() is 0 and the verifier never reaches the
 * read. Its MONOTONIC value is BPF_SKB_TSTAMP_DELIVERY_MONO in 5.18..6.10
 * and BPF_SKB_CLOCK_MONOTONIC since; 1 in both.
 */
struct __sk_buff___tstamp {
	__u8 tstamp_type;
} __attribute__((preserve_access_index));
#define SKB_TSTAMP_MONO 1

/* Invariant 15. */
static __always_inline __u64 packet_time(struct __sk_buff *skb, const struct flow_pkt *p)
{
	struct __sk_buff___tstamp *t = (void *)skb;

	if (p->key.proto == IPPROTO_TCP && bpf_core_field_exists(t->tstamp_type) &&
	    t->tstamp_type == SKB_TSTAMP_MONO && skb->tstamp)
		return skb->tstamp;
	return bpf_ktime_get_ns();
}

static __always_inline int flow_account(struct __sk_buff *skb, bool egress)
{
	struct flow_pkt p = {};
	__u32 segs = skb->gso_segs;
	bool want_cookie = egress; /* invariant 13 */
	__u64 now;
	int r, i;

	p.segs = segs > 1 ? segs : 1;
	r = parse_packet(skb, &p);
	if (r == PARSE_BAD)
		count_loss(FS_LOSS_PARSE);
	if (r != PARSE_OK)
		return TC_ACT_UNSPEC;
	now = packet_time(skb, &p);

	for (i = 0; i < FLOW_ATTEMPTS; i++) {
		struct fs_flow_value *v = bpf_map_lookup_elem(&flows, &p.key);

		/* The entry keeps the first cookie it saw: once it has one, a
		 * packet's is not needed (an unlocked look; a straggler's
		 * record is the packet alone and takes its own). */
		if (want_cookie && (!v || !v->sock_cookie || v->state == FS_FLOW_EXPORTED)) {
			p.cookie = owner_cookie(skb);
			want_cookie = false;
		}
		if (v)
			r = flow_update(v, &p, now);
		else
			r = flow_create(&p, now);
		if (r == UPDATE_DONE)
			return TC_ACT_UNSPEC;
	}
	/* The entry kept changing under us: the packet goes out alone. */
	if (want_cookie)
		p.cookie = owner_cookie(skb);
	count_loss(FS_LOSS_MAP_FULL);
	record_emit_packet(&p, FS_END_MAP_FULL, now);
	return TC_ACT_UNSPEC;
}

SEC("tc")
int flow_ingress(struct __sk_buff *skb)
{
	return flow_account(skb, false);
}

SEC("tc")
int flow_egress(struct __sk_buff *skb)
{
	return flow_account(skb, true);
}
