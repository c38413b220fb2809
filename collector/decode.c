/*
 * Raw event → row (see decode.h). Runs on the loop thread for every event,
 * so it stays allocation-free: rows are filled in place.
 *
 * The monotonic → UTC conversion happens here, with the offset that travelled
 * with the event (sampled by the source, or recorded), so a replay gives the
 * same rows as the run it recorded.
 */
#include "decode.h"

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "events.h"

static const char *const tcp_state_names[FS_TCP_STATE_MAX + 1] = {
	[FS_TCP_ESTABLISHED] = "ESTABLISHED", [FS_TCP_SYN_SENT] = "SYN_SENT",
	[FS_TCP_SYN_RECV] = "SYN_RECV",       [FS_TCP_FIN_WAIT1] = "FIN_WAIT1",
	[FS_TCP_FIN_WAIT2] = "FIN_WAIT2",     [FS_TCP_TIME_WAIT] = "TIME_WAIT",
	[FS_TCP_CLOSE] = "CLOSE",             [FS_TCP_CLOSE_WAIT] = "CLOSE_WAIT",
	[FS_TCP_LAST_ACK] = "LAST_ACK",       [FS_TCP_LISTEN] = "LISTEN",
	[FS_TCP_CLOSING] = "CLOSING",         [FS_TCP_NEW_SYN_RECV] = "NEW_SYN_RECV",
};

static const char *const end_reason_names[FS_END_MAX + 1] = {
	[FS_END_TCP_FIN] = "fin",
	[FS_END_TCP_RST] = "rst",
	[FS_END_ACTIVE_TIMEOUT] = "active_timeout",
	[FS_END_IDLE_TIMEOUT] = "idle_timeout",
	[FS_END_MAP_FULL] = "map_full",
	[FS_END_SHUTDOWN] = "shutdown",
};

static const char *const direction_names[FS_DIR_MAX + 1] = {
	[FS_DIR_UNKNOWN] = "", [FS_DIR_OUT] = "out", [FS_DIR_IN] = "in",
};

const char *decode_tcp_state_name(unsigned state)
{
	return state <= FS_TCP_STATE_MAX ? tcp_state_names[state] : NULL;
}

/* Decimal 0..255 without a leading zero; returns the end. */
static char *put_u8(char *o, unsigned v)
{
	if (v >= 100)
		*o++ = (char)('0' + v / 100);
	if (v >= 10)
		*o++ = (char)('0' + v / 10 % 10);
	*o++ = (char)('0' + v % 10);
	return o;
}

static char *put_ipv4(char *o, const uint8_t a[4])
{
	for (int i = 0; i < 4; i++) {
		if (i)
			*o++ = '.';
		o = put_u8(o, a[i]);
	}
	return o;
}

/* Lower-case hex without leading zeros. */
static char *put_hex16(char *o, unsigned v)
{
	static const char digits[] = "0123456789abcdef";
	int shift = 12;

	while (shift > 0 && !(v >> shift))
		shift -= 4;
	for (; shift >= 0; shift -= 4)
		*o++ = digits[(v >> shift) & 0xf];
	return o;
}

/*
 * RFC 5952 text, as glibc's inet_ntop() writes it (the tests compare the two
 * on random addresses): the longest run of two or more zero groups (the
 * first if tied) becomes "::", and an address whose first 96 bits are zero
 * but for ::ffff: keeps its last 32 bits dotted. inet_ntop() formats with
 * sprintf, which costs more than the rest of decoding together.
 */
static char *put_ipv6(char *o, const uint8_t a[16])
{
	unsigned w[8];
	int best = -1, best_len = 0;

	for (int i = 0; i < 8; i++)
		w[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
	for (int i = 0; i < 8;) {
		int j = i;

		while (j < 8 && w[j] == 0)
			j++;
		if (j - i > best_len) {
			best = i;
			best_len = j - i;
		}
		i = j > i ? j : i + 1;
	}
	if (best_len < 2)
		best = -1;
	for (int i = 0; i < 8; i++) {
		if (i == best) {
			*o++ = ':';
			if (i + best_len == 8)
				*o++ = ':';
			i += best_len - 1;
			continue;
		}
		if (i)
			*o++ = ':';
		if (i == 6 && best == 0 && (best_len == 6 || (best_len == 5 && w[5] == 0xffff)))
			return put_ipv4(o, a + 12);
		o = put_hex16(o, w[i]);
	}
	return o;
}

void decode_addr(const uint8_t addr[16], char out[SCHEMA_ADDR_LEN])
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	char *end;

	if (memcmp(addr, v4mapped, sizeof(v4mapped)) == 0)
		end = put_ipv4(out, addr + 12);
	else
		end = put_ipv6(out, addr);
	*end = 0;
}

/* Copy a fixed-width, maybe unterminated kernel string. */
static void copy_fixed(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	size_t n = strnlen(src, srclen);

	if (n >= dstlen)
		n = dstlen - 1;
	memcpy(dst, src, n);
	dst[n] = 0;
}

static void proto_name(uint8_t proto, char out[8])
{
	switch (proto) {
	case IPPROTO_TCP: strcpy(out, "tcp"); break;
	case IPPROTO_UDP: strcpy(out, "udp"); break;
	case IPPROTO_ICMP: strcpy(out, "icmp"); break;
	case IPPROTO_ICMPV6: strcpy(out, "icmp6"); break;
	default: snprintf(out, 8, "%u", proto); break;
	}
}

/* Index of letter c in the history, or -1. */
static int hist_pos(const char *history, char c)
{
	const char *p = strchr(history, c);

	return p ? (int)(p - history) : -1;
}

static bool first_of(const char *history, char a, char b)
{
	int pa = hist_pos(history, a), pb = hist_pos(history, b);

	return pa >= 0 && (pb < 0 || pa < pb);
}

/*
 * Zeek's TCP connection states, from the history letters:
 * S = orig SYN, h = resp SYN+ACK, F/f = FIN, R/r = RST (upper = originator).
 */
static const char *tcp_conn_state(const char *h, uint64_t resp_pkts)
{
	bool syn = hist_pos(h, 'S') >= 0, synack = hist_pos(h, 'h') >= 0;
	bool o_fin = hist_pos(h, 'F') >= 0, r_fin = hist_pos(h, 'f') >= 0;
	bool o_rst = hist_pos(h, 'R') >= 0, r_rst = hist_pos(h, 'r') >= 0;

	if (syn && synack) {
		if (o_fin && r_fin)
			return "SF";
		if (o_rst || r_rst)
			return first_of(h, 'R', 'r') ? "RSTO" : "RSTR";
		if (o_fin)
			return "S2";
		if (r_fin)
			return "S3";
		return "S1";
	}
	if (syn) {
		if (r_rst)
			return "REJ";
		if (o_rst)
			return "RSTOS0";
		if (o_fin)
			return "SH";
		return resp_pkts ? "OTH" : "S0";
	}
	if (synack) {
		if (r_rst)
			return "RSTRH";
		if (r_fin)
			return "SHR";
	}
	return "OTH";
}

const char *decode_conn_state(uint8_t proto, const char *history, uint64_t orig_pkts,
			      uint64_t resp_pkts)
{
	if (proto == IPPROTO_TCP)
		return tcp_conn_state(history, resp_pkts);
	if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6)
		return "OTH";
	/* UDP and the rest: a reply or not. */
	return orig_pkts && resp_pkts ? "SF" : "S0";
}

static bool history_valid(const char *h, size_t len)
{
	for (size_t i = 0; i < len && h[i]; i++)
		if (!strchr("ShADFRshadfr", h[i]))
			return false;
	return true;
}

static int decode_flow(const struct fs_flow_event *e, int64_t off,
		       decode_ifname_fn ifname, struct flow_row *r)
{
	if (e->end_reason == 0 || e->end_reason > FS_END_MAX ||
	    !history_valid(e->history, sizeof(e->history)))
		return -1;
	r->ts = (int64_t)e->first_ns + off;
	r->ts_end = (int64_t)e->last_ns + off;
	r->orig_pkts = (int64_t)e->orig_pkts;
	r->orig_bytes = (int64_t)e->orig_bytes;
	r->resp_pkts = (int64_t)e->resp_pkts;
	r->resp_bytes = (int64_t)e->resp_bytes;
	r->sock_cookie = (int64_t)e->sock_cookie;
	r->pid = e->pid;
	r->orig_port = e->orig_port;
	r->resp_port = e->resp_port;
	proto_name(e->proto, r->proto);
	copy_fixed(r->history, sizeof(r->history), e->history, sizeof(e->history));
	strcpy(r->conn_state, decode_conn_state(e->proto, r->history, e->orig_pkts, e->resp_pkts));
	ifname(e->ifindex, r->ifname);
	strcpy(r->end_reason, end_reason_names[e->end_reason]);
	decode_addr(e->orig_addr, r->orig_addr);
	decode_addr(e->resp_addr, r->resp_addr);
	copy_fixed(r->comm, sizeof(r->comm), e->comm, sizeof(e->comm));
	return 0;
}

/* Local/remote → orig/resp: the opener is the originator. */
static void orient(uint8_t direction, const uint8_t *laddr, uint16_t lport,
		   const uint8_t *raddr, uint16_t rport, char *orig_addr,
		   uint16_t *orig_port, char *resp_addr, uint16_t *resp_port)
{
	bool local_is_orig = direction != FS_DIR_IN;

	decode_addr(local_is_orig ? laddr : raddr, orig_addr);
	decode_addr(local_is_orig ? raddr : laddr, resp_addr);
	*orig_port = local_is_orig ? lport : rport;
	*resp_port = local_is_orig ? rport : lport;
}

static int decode_tcp_state(const struct fs_tcp_state_event *e, int64_t off,
			    struct tcp_state_row *r)
{
	const char *old = decode_tcp_state_name(e->old_state);
	const char *new = decode_tcp_state_name(e->new_state);

	if (!old || !new || e->direction > FS_DIR_MAX)
		return -1;
	r->ts = (int64_t)e->hdr.ts_ns + off;
	r->sock_cookie = (int64_t)e->sock_cookie;
	r->pid = e->pid;
	strcpy(r->direction, direction_names[e->direction]);
	strcpy(r->old_state, old);
	strcpy(r->new_state, new);
	orient(e->direction, e->local_addr, e->local_port, e->remote_addr, e->remote_port,
	       r->orig_addr, &r->orig_port, r->resp_addr, &r->resp_port);
	copy_fixed(r->comm, sizeof(r->comm), e->comm, sizeof(e->comm));
	return 0;
}

static int format_path(const struct fs_tcp_conn_event *e, char *out)
{
	unsigned n = e->path_len < FS_STATE_PATH_LEN ? e->path_len : FS_STATE_PATH_LEN;
	char *o = out;

	/* 16 names of at most 12 characters, 15 '>' and ">..." fit in len */
	_Static_assert(sizeof(((struct conn_row *)0)->states) >= FS_STATE_PATH_LEN * 13 + 5,
		       "conn_row.states holds the longest path");
	for (unsigned i = 0; i < n; i++) {
		const char *name = decode_tcp_state_name(e->state_path[i]);
		size_t l;

		if (!name)
			return -1;
		if (i)
			*o++ = '>';
		l = strlen(name);
		memcpy(o, name, l);
		o += l;
	}
	if (e->path_len > FS_STATE_PATH_LEN) {
		memcpy(o, ">...", 4);
		o += 4;
	}
	*o = 0;
	return 0;
}

static int decode_tcp_conn(const struct fs_tcp_conn_event *e, int64_t off,
			   struct conn_row *r)
{
	const char *close = decode_tcp_state_name(e->close_state);

	if (!close || e->direction > FS_DIR_MAX || format_path(e, r->states))
		return -1;
	r->ts = (int64_t)e->start_ns + off;
	r->ts_end = (int64_t)e->end_ns + off;
	r->sock_cookie = (int64_t)e->sock_cookie;
	r->cgroup_id = (int64_t)e->cgroup_id;
	r->bytes_sent = (int64_t)e->bytes_acked;
	r->bytes_received = (int64_t)e->bytes_received;
	r->segs_out = e->segs_out;
	r->segs_in = e->segs_in;
	r->retransmits = e->retransmits;
	r->srtt_us = e->srtt_us;
	r->pid = e->pid;
	r->uid = e->uid;
	strcpy(r->direction, direction_names[e->direction]);
	strcpy(r->close_state, close);
	orient(e->direction, e->local_addr, e->local_port, e->remote_addr, e->remote_port,
	       r->orig_addr, &r->orig_port, r->resp_addr, &r->resp_port);
	copy_fixed(r->comm, sizeof(r->comm), e->comm, sizeof(e->comm));
	return 0;
}

bool decode_is_sock_owner(const void *data, size_t size)
{
	struct fs_event_hdr hdr;

	if (size < sizeof(hdr))
		return false;
	memcpy(&hdr, data, sizeof(hdr));
	return hdr.type == FS_EVENT_SOCK_OWNER;
}

/* The record sizes of the row types; 0 for any other type. */
static size_t row_size(unsigned type)
{
	switch (type) {
	case FS_EVENT_FLOW: return sizeof(struct fs_flow_event);
	case FS_EVENT_TCP_STATE: return sizeof(struct fs_tcp_state_event);
	case FS_EVENT_TCP_CONN: return sizeof(struct fs_tcp_conn_event);
	default: return 0;
	}
}

static size_t owner_size(unsigned type)
{
	return type == FS_EVENT_SOCK_OWNER ? sizeof(struct fs_sock_owner_event) : 0;
}

/* The header of one whole record of a type size_of knows (its size; 0 for
 * the others): 0, or -1 with *reason set. */
static int check_header(const void *data, size_t size, size_t (*size_of)(unsigned),
			struct fs_event_hdr *hdr, enum malformed_reason *reason)
{
	size_t want;

	if (size < sizeof(*hdr)) {
		*reason = MALFORMED_SHORT;
		return -1;
	}
	memcpy(hdr, data, sizeof(*hdr)); /* ring buffer records are 8-aligned; recordings may not be */
	want = size_of(hdr->type);
	if (!want) {
		*reason = MALFORMED_TYPE;
		return -1;
	}
	if (hdr->size != size || size != want) {
		*reason = MALFORMED_SIZE;
		return -1;
	}
	return 0;
}

int decode_sock_owner(const void *data, size_t size, struct decode_owner *out,
		      enum malformed_reason *reason)
{
	struct fs_sock_owner_event e;

	if (check_header(data, size, owner_size, &e.hdr, reason))
		return -1;
	memcpy(&e, data, sizeof(e));
	if (!e.sock_cookie || !e.pid || e.sock_cookie > INT64_MAX) {
		*reason = MALFORMED_VALUE;
		return -1;
	}
	out->sock_cookie = (int64_t)e.sock_cookie;
	out->pid = e.pid;
	copy_fixed(out->comm, sizeof(out->comm), e.comm, sizeof(e.comm));
	return 0;
}

int decode_event(const void *data, size_t size, int64_t utc_offset_ns,
		 decode_ifname_fn ifname, struct schema_row *row,
		 enum malformed_reason *reason)
{
	struct fs_event_hdr hdr;
	int err;

	if (check_header(data, size, row_size, &hdr, reason))
		return -1;
	union {
		struct fs_flow_event flow;
		struct fs_tcp_state_event state;
		struct fs_tcp_conn_event conn;
	} ev;
	memcpy(&ev, data, size);
	switch (hdr.type) {
	case FS_EVENT_FLOW:
		row->table = SCHEMA_FLOWS;
		err = decode_flow(&ev.flow, utc_offset_ns, ifname, &row->flow);
		break;
	case FS_EVENT_TCP_STATE:
		row->table = SCHEMA_TCP_STATES;
		err = decode_tcp_state(&ev.state, utc_offset_ns, &row->state);
		break;
	default:
		row->table = SCHEMA_CONNECTIONS;
		err = decode_tcp_conn(&ev.conn, utc_offset_ns, &row->conn);
		break;
	}
	if (err)
		*reason = MALFORMED_VALUE;
	return err;
}

/* ---- interface names ------------------------------------------------------- */

#define IFNAME_CACHE 256

static struct {
	char name[IF_NAMESIZE];
	time_t checked; /* for misses: when we last asked */
} ifname_cache[IFNAME_CACHE];

void decode_ifname_system(uint32_t ifindex, char buf[16])
{
	char tmp[IF_NAMESIZE];
	time_t now;

	buf[0] = 0;
	if (ifindex == 0)
		return;
	if (ifindex >= IFNAME_CACHE) {
		if (if_indextoname(ifindex, tmp))
			copy_fixed(buf, 16, tmp, sizeof(tmp));
		return;
	}
	if (ifname_cache[ifindex].name[0]) {
		memcpy(buf, ifname_cache[ifindex].name, 16);
		return;
	}
	now = time(NULL);
	if (ifname_cache[ifindex].checked == now)
		return;
	ifname_cache[ifindex].checked = now;
	if (if_indextoname(ifindex, tmp))
		copy_fixed(ifname_cache[ifindex].name, 16, tmp, sizeof(tmp));
	memcpy(buf, ifname_cache[ifindex].name, 16);
}
