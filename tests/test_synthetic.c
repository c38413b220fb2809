/*
 * The synthetic generator (synthetic.c) and its libuv source
 * (source_synthetic.c): determinism, the event ABI, a realistic mix, the
 * internal consistency of each TCP connection, skew, and the source's
 * pacing, pausing, counting and stopping on a real loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <uv.h>

#include "events.h"
#include "source.h"
#include "synthetic.h"

#define NOW0 (5000LL * 1000000000LL) /* an uptime of 5000 s */
#define BIG_RUN 200000

union any_event {
	struct fs_event_hdr hdr;
	struct fs_flow_event flow;
	struct fs_tcp_state_event state;
	struct fs_tcp_conn_event conn;
	unsigned char bytes[FS_EVENT_MAX_SIZE];
};

/* A plausible sequence of nows: a few microseconds apart, sometimes equal. */
static int64_t now_at(uint64_t i)
{
	return NOW0 + (int64_t)(i * 3 / 2) * 1000;
}

static struct synthetic *new_gen(uint64_t seed)
{
	struct synthetic *g = NULL;

	assert_int_equal(synthetic_new(seed, &g), 0);
	assert_non_null(g);
	return g;
}

static bool is_v4_mapped(const uint8_t a[16])
{
	static const uint8_t prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	return memcmp(a, prefix, 12) == 0;
}

/* Every address the generator uses: v4-mapped, or IPv6 in 2001:db8::/32
 * (documentation) or fd00::/8 (unique local). */
static void assert_address_ok(const uint8_t a[16])
{
	if (is_v4_mapped(a)) {
		assert_int_not_equal(a[15], 0);
		return;
	}
	assert_true((a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8) ||
		    a[0] == 0xfd);
}

/* NUL-padded: once a NUL appears, only NULs follow. */
static void assert_nul_padded(const char *s, size_t len, bool must_end_nul)
{
	size_t n = strnlen(s, len);

	for (size_t i = n; i < len; i++)
		assert_int_equal(s[i], 0);
	if (must_end_nul)
		assert_true(n < len);
}

static void test_deterministic(void **state)
{
	struct synthetic *a = new_gen(42), *b = new_gen(42), *c = new_gen(43);
	union any_event ea, eb, ec;
	unsigned differ = 0;

	(void)state;
	for (uint64_t i = 0; i < 100000; i++) {
		size_t na = synthetic_next(a, now_at(i), &ea);
		size_t nb = synthetic_next(b, now_at(i), &eb);
		size_t nc = synthetic_next(c, now_at(i), &ec);

		assert_int_equal(na, nb);
		assert_memory_equal(&ea, &eb, na);
		if (na != nc || memcmp(&ea, &ec, na) != 0)
			differ++;
	}
	assert_true(differ > 50000); /* another seed, another stream */
	synthetic_free(a);
	synthetic_free(b);
	synthetic_free(c);
}

static void check_flow(const struct fs_flow_event *f, int64_t now)
{
	assert_int_equal(f->reserved, 0);
	assert_true(f->first_ns <= f->last_ns);
	assert_true((int64_t)f->last_ns <= now);
	assert_true(f->proto == IPPROTO_TCP || f->proto == IPPROTO_UDP ||
		    f->proto == IPPROTO_ICMP || f->proto == IPPROTO_ICMPV6);
	assert_in_range(f->end_reason, FS_END_TCP_FIN, FS_END_MAX);
	assert_true(f->orig_pkts > 0);
	assert_true(f->orig_bytes >= f->orig_pkts * 28);
	assert_true(f->resp_bytes >= f->resp_pkts * 28);
	assert_true(f->ifindex > 0);
	assert_address_ok(f->orig_addr);
	assert_address_ok(f->resp_addr);
	assert_int_equal(is_v4_mapped(f->orig_addr), is_v4_mapped(f->resp_addr));
	assert_nul_padded(f->history, FS_HISTORY_LEN, false);
	assert_nul_padded(f->comm, FS_COMM_LEN, true);
	assert_int_equal(f->pid == 0, f->comm[0] == 0);
	if (f->proto != IPPROTO_TCP) {
		assert_int_equal(f->orig_tcp_flags, 0);
		assert_int_equal(f->resp_tcp_flags, 0);
	} else {
		assert_true(f->orig_tcp_flags & FS_TCP_SYN);
		assert_int_equal(f->history[0], 'S');
	}
	if (f->proto == IPPROTO_ICMP || f->proto == IPPROTO_ICMPV6) {
		assert_int_equal(f->orig_port, f->proto == IPPROTO_ICMP ? 8 : 128);
		assert_int_equal(f->resp_port, 0);
		assert_int_equal(is_v4_mapped(f->orig_addr), f->proto == IPPROTO_ICMP);
	}
}

static void check_state(const struct fs_tcp_state_event *e)
{
	assert_int_equal(e->reserved1, 0);
	assert_int_equal(e->reserved2, 0);
	assert_true(e->sock_cookie != 0);
	assert_in_range(e->old_state, FS_TCP_ESTABLISHED, FS_TCP_STATE_MAX);
	assert_in_range(e->new_state, FS_TCP_ESTABLISHED, FS_TCP_STATE_MAX);
	assert_in_range(e->direction, FS_DIR_OUT, FS_DIR_IN);
	assert_address_ok(e->local_addr);
	assert_address_ok(e->remote_addr);
	assert_nul_padded(e->comm, FS_COMM_LEN, true);
}

static void check_conn(const struct fs_tcp_conn_event *e, int64_t now)
{
	assert_int_equal(e->reserved1, 0);
	assert_true(e->start_ns <= e->end_ns);
	assert_true((int64_t)e->end_ns <= now);
	assert_true(e->sock_cookie != 0);
	assert_true(e->cgroup_id != 0);
	assert_true(e->pid != 0);
	assert_true(e->comm[0] != 0);
	assert_in_range(e->direction, FS_DIR_OUT, FS_DIR_IN);
	assert_in_range(e->path_len, 2, FS_STATE_PATH_LEN);
	for (unsigned i = e->path_len; i < FS_STATE_PATH_LEN; i++)
		assert_int_equal(e->state_path[i], 0);
	assert_true(e->srtt_us < 1000000);
	assert_nul_padded(e->comm, FS_COMM_LEN, true);
	assert_address_ok(e->local_addr);
	assert_address_ok(e->remote_addr);
	assert_true(e->local_port != 0 && e->remote_port != 0);
}

/* The ABI of every event: type, size, reserved fields, padding, times. */
static void test_events_valid(void **state)
{
	struct synthetic *g = new_gen(1);
	union any_event e;

	(void)state;
	for (uint64_t i = 0; i < BIG_RUN; i++) {
		int64_t now = now_at(i);
		size_t n = synthetic_next(g, now, &e);

		assert_int_equal(n, e.hdr.size);
		assert_int_equal(e.hdr.reserved, 0);
		assert_true((int64_t)e.hdr.ts_ns <= now);
		assert_true((int64_t)e.hdr.ts_ns > now - 200LL * 1000000000LL);
		switch (e.hdr.type) {
		case FS_EVENT_FLOW:
			assert_int_equal(n, sizeof(struct fs_flow_event));
			check_flow(&e.flow, now);
			break;
		case FS_EVENT_TCP_STATE:
			assert_int_equal(n, sizeof(struct fs_tcp_state_event));
			check_state(&e.state);
			break;
		case FS_EVENT_TCP_CONN:
			assert_int_equal(n, sizeof(struct fs_tcp_conn_event));
			check_conn(&e.conn, now);
			break;
		default:
			fail_msg("event %llu has type %u", (unsigned long long)i, e.hdr.type);
		}
	}
	synthetic_free(g);
}

/* Right after boot a lifecycle cannot start before 0. */
static void test_small_now(void **state)
{
	struct synthetic *g = new_gen(5);
	union any_event e;

	(void)state;
	for (int64_t i = 0; i < 20000; i++) {
		int64_t now = i < 100 ? 0 : i * 50;

		synthetic_next(g, now, &e);
		assert_true((int64_t)e.hdr.ts_ns <= now);
		if (e.hdr.type == FS_EVENT_FLOW)
			assert_true(e.flow.first_ns <= e.flow.last_ns &&
				    (int64_t)e.flow.last_ns <= now);
		if (e.hdr.type == FS_EVENT_TCP_CONN)
			assert_true(e.conn.start_ns <= e.conn.end_ns &&
				    (int64_t)e.conn.end_ns <= now);
	}
	synthetic_free(g);
}

struct mix {
	uint64_t events, by_type[4];
	uint64_t flows, v6_flows, tcp_flows, udp_flows, dns_flows, icmp, icmp6;
	uint64_t sf, rej, s0, rsto, rstr, other;
	uint64_t in_conns, out_conns;
};

static void count_tcp_outcome(struct mix *m, const char *h)
{
	char hist[FS_HISTORY_LEN + 1] = { 0 };

	memcpy(hist, h, FS_HISTORY_LEN);
	if (strcmp(hist, "S") == 0)
		m->s0++;
	else if (strcmp(hist, "Sr") == 0)
		m->rej++;
	else if (strchr(hist, 'h') && strchr(hist, 'R'))
		m->rsto++;
	else if (strchr(hist, 'h') && strchr(hist, 'r'))
		m->rstr++;
	else if (strchr(hist, 'F') && strchr(hist, 'f'))
		m->sf++;
	else
		m->other++;
}

static void count_event(struct mix *m, const union any_event *e)
{
	const struct fs_flow_event *f = &e->flow;

	m->events++;
	m->by_type[e->hdr.type & 3]++;
	if (e->hdr.type == FS_EVENT_TCP_CONN)
		(*(e->conn.direction == FS_DIR_IN ? &m->in_conns : &m->out_conns))++;
	if (e->hdr.type != FS_EVENT_FLOW)
		return;
	m->flows++;
	m->v6_flows += !is_v4_mapped(f->orig_addr);
	switch (f->proto) {
	case IPPROTO_TCP:
		m->tcp_flows++;
		count_tcp_outcome(m, f->history);
		break;
	case IPPROTO_UDP:
		m->udp_flows++;
		m->dns_flows += f->resp_port == 53;
		break;
	case IPPROTO_ICMP:
		m->icmp++;
		break;
	case IPPROTO_ICMPV6:
		m->icmp6++;
		break;
	}
}

static void test_mix(void **state)
{
	struct synthetic *g = new_gen(2);
	union any_event e;
	struct mix m = { 0 };
	double v6_share, tcp_event_share;

	(void)state;
	for (uint64_t i = 0; i < BIG_RUN; i++) {
		synthetic_next(g, now_at(i), &e);
		count_event(&m, &e);
	}
	synthetic_free(g);
	v6_share = (double)m.v6_flows / (double)m.flows;
	tcp_event_share = (double)(m.by_type[FS_EVENT_TCP_STATE] + m.by_type[FS_EVENT_TCP_CONN] +
				   m.tcp_flows) / (double)m.events;
	print_message("flows %llu (tcp %llu udp %llu dns %llu icmp %llu icmp6 %llu) v6 %.1f%% "
		      "tcp events %.1f%%; SF %llu REJ %llu S0 %llu RSTO %llu RSTR %llu\n",
		      (unsigned long long)m.flows, (unsigned long long)m.tcp_flows,
		      (unsigned long long)m.udp_flows, (unsigned long long)m.dns_flows,
		      (unsigned long long)m.icmp, (unsigned long long)m.icmp6, 100 * v6_share,
		      100 * tcp_event_share, (unsigned long long)m.sf, (unsigned long long)m.rej,
		      (unsigned long long)m.s0, (unsigned long long)m.rsto, (unsigned long long)m.rstr);
	assert_true(m.by_type[FS_EVENT_TCP_CONN] > 10000);
	assert_true(tcp_event_share > 0.6);
	assert_true(m.udp_flows > 5000 && m.dns_flows > m.udp_flows / 2);
	assert_true(m.icmp > 100 && m.icmp6 > 100);
	assert_true(v6_share >= 0.20 && v6_share <= 0.40);
	assert_true(m.sf > m.tcp_flows * 3 / 4);
	assert_true(m.rej > m.tcp_flows / 100 && m.s0 > m.tcp_flows / 100);
	assert_true(m.rsto > m.tcp_flows / 100 && m.rstr > m.tcp_flows / 100);
	assert_int_equal(m.other, 0);
	assert_true(m.in_conns > 1000 && m.out_conns > m.in_conns);
}

/* One connection's events as they came: its state changes, then the
 * connection record, then the flow record. */
struct conn_track {
	uint64_t cookie, last_cookie;
	unsigned nstates;
	uint8_t old_states[16], new_states[16];
	uint64_t first_ts, last_ts;
	bool have_conn;
	struct fs_tcp_conn_event conn;
	uint64_t conns_checked;
};

static void track_state(struct conn_track *t, const struct fs_tcp_state_event *e)
{
	if (e->sock_cookie != t->cookie) {
		assert_false(t->have_conn); /* the previous one got its flow */
		assert_true(e->sock_cookie > t->last_cookie); /* unique, increasing */
		t->cookie = t->last_cookie = e->sock_cookie;
		t->nstates = 0;
		t->first_ts = e->hdr.ts_ns;
	} else {
		assert_int_equal(e->old_state, t->new_states[t->nstates - 1]);
		assert_true(e->hdr.ts_ns >= t->last_ts);
	}
	assert_true(t->nstates < 16);
	t->old_states[t->nstates] = e->old_state;
	t->new_states[t->nstates++] = e->new_state;
	t->last_ts = e->hdr.ts_ns;
	if (e->new_state == FS_TCP_SYN_SENT)
		assert_int_equal(e->local_port, 0); /* connect() binds it later */
}

static bool path_has(const struct conn_track *t, uint8_t state)
{
	return memchr(t->new_states, state, t->nstates) != NULL;
}

static void track_conn(struct conn_track *t, const struct fs_tcp_conn_event *c)
{
	assert_int_equal(c->sock_cookie, t->cookie);
	assert_int_equal(c->path_len, t->nstates);
	assert_memory_equal(c->state_path, t->new_states, t->nstates);
	assert_int_equal(c->close_state, t->old_states[t->nstates - 1]);
	assert_int_equal(t->new_states[t->nstates - 1], FS_TCP_CLOSE);
	assert_int_equal(c->start_ns, t->first_ts);
	assert_int_equal(c->end_ns, t->last_ts);
	assert_int_equal(t->new_states[0], c->direction == FS_DIR_OUT ? FS_TCP_SYN_SENT : FS_TCP_SYN_RECV);
	if (!path_has(t, FS_TCP_ESTABLISHED))
		assert_int_equal(c->srtt_us, 0);
	else
		assert_true(c->srtt_us > 0);
	t->conn = *c;
	t->have_conn = true;
}

static void track_flow(struct conn_track *t, const struct fs_flow_event *f)
{
	const struct fs_tcp_conn_event *c = &t->conn;
	bool out = c->direction == FS_DIR_OUT;
	uint64_t local_bytes = out ? f->orig_bytes : f->resp_bytes;
	uint64_t remote_bytes = out ? f->resp_bytes : f->orig_bytes;
	char hist[FS_HISTORY_LEN + 1] = { 0 };

	if (f->proto != IPPROTO_TCP || f->sock_cookie == 0) {
		assert_false(t->have_conn);
		return;
	}
	assert_true(t->have_conn);
	t->have_conn = false;
	t->conns_checked++;
	memcpy(hist, f->history, FS_HISTORY_LEN);
	assert_int_equal(f->sock_cookie, c->sock_cookie);
	assert_memory_equal(out ? f->orig_addr : f->resp_addr, c->local_addr, 16);
	assert_memory_equal(out ? f->resp_addr : f->orig_addr, c->remote_addr, 16);
	assert_int_equal(out ? f->orig_port : f->resp_port, c->local_port);
	assert_int_equal(out ? f->resp_port : f->orig_port, c->remote_port);
	assert_true(local_bytes >= c->bytes_acked && remote_bytes >= c->bytes_received);
	assert_int_equal(out ? f->orig_pkts : f->resp_pkts, c->segs_out);
	assert_int_equal(out ? f->resp_pkts : f->orig_pkts, c->segs_in);
	assert_true(c->segs_out > c->retransmits); /* a resend is a segment too */
	assert_true(f->first_ns <= c->start_ns);
	if (out)
		assert_int_equal(f->pid, c->pid);
	if (!path_has(t, FS_TCP_ESTABLISHED)) {
		assert_true(strcmp(hist, "S") == 0 || strcmp(hist, "Sr") == 0);
	} else if (c->close_state == FS_TCP_ESTABLISHED) {
		assert_int_equal(f->end_reason, FS_END_TCP_RST);
		assert_true(strchr(hist, 'R') || strchr(hist, 'r'));
		assert_true((f->orig_tcp_flags | f->resp_tcp_flags) & FS_TCP_RST);
	} else {
		assert_int_equal(f->end_reason, FS_END_TCP_FIN);
		assert_true(strchr(hist, 'F') && strchr(hist, 'f'));
		assert_true(f->orig_tcp_flags & f->resp_tcp_flags & FS_TCP_FIN);
	}
}

static void test_connections_consistent(void **state)
{
	struct synthetic *g = new_gen(3);
	struct conn_track t = { 0 };
	union any_event e;

	(void)state;
	for (uint64_t i = 0; i < BIG_RUN; i++) {
		synthetic_next(g, now_at(i), &e);
		if (e.hdr.type == FS_EVENT_TCP_STATE)
			track_state(&t, &e.state);
		else if (e.hdr.type == FS_EVENT_TCP_CONN)
			track_conn(&t, &e.conn);
		else
			track_flow(&t, &e.flow);
	}
	assert_true(t.conns_checked > 10000);
	synthetic_free(g);
}

static int cmp_addr(const void *a, const void *b)
{
	return memcmp(a, b, 16);
}

static int cmp_count_desc(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? 1 : x > y ? -1 : 0;
}

/* Remote peers of TCP connections follow a skewed popularity. */
static void test_zipf_skew(void **state)
{
	struct synthetic *g = new_gen(4);
	uint8_t (*addrs)[16] = calloc(BIG_RUN, 16);
	uint32_t *counts = calloc(BIG_RUN, sizeof(*counts));
	size_t n = 0, distinct = 0;
	union any_event e;

	(void)state;
	assert_non_null(addrs);
	assert_non_null(counts);
	for (uint64_t i = 0; i < BIG_RUN; i++) {
		synthetic_next(g, now_at(i), &e);
		if (e.hdr.type == FS_EVENT_TCP_CONN)
			memcpy(addrs[n++], e.conn.remote_addr, 16);
	}
	qsort(addrs, n, 16, cmp_addr);
	for (size_t i = 0; i < n; i++) {
		if (i == 0 || memcmp(addrs[i], addrs[i - 1], 16) != 0)
			distinct++;
		counts[distinct - 1]++;
	}
	qsort(counts, distinct, sizeof(*counts), cmp_count_desc);
	print_message("%zu connections, %zu remotes, top %u, median %u\n",
		      n, distinct, counts[0], counts[distinct / 2]);
	assert_true(distinct > 1000);
	assert_true(counts[0] > 20 * counts[distinct / 2]);
	assert_true(counts[0] > n / 50);
	free(addrs);
	free(counts);
	synthetic_free(g);
}

/* ---- the libuv source --------------------------------------------------- */

#define FAKE_OFFSET 1700000000000000000LL

/* Realtime runs FAKE_OFFSET ahead of monotonic, plus a microsecond per
 * realtime read, so each resample of the offset gives a new value. */
struct fake_clock {
	int64_t realtime_reads;
};

static int64_t fake_monotonic(void *ctx)
{
	(void)ctx;
	return (int64_t)uv_hrtime();
}

static int64_t fake_realtime(void *ctx)
{
	struct fake_clock *c = ctx;

	return (int64_t)uv_hrtime() + FAKE_OFFSET + 1000 * ++c->realtime_reads;
}

struct test_sink {
	struct source *src;
	uint64_t events, bad, room_limit; /* has_room false at room_limit events */
	uint64_t stop_after;              /* stop() from the event callback */
	uint64_t offset_changes;
	int64_t last_offset;
	int done_calls, done_status, stopped_calls;
	uint64_t events_at_pause;
	int phase;
};

static void on_stopped(struct source *s)
{
	struct test_sink *t = s->user;

	t->stopped_calls++;
}

static void sink_event(void *ctx, const void *data, size_t size, int64_t utc_offset_ns)
{
	struct test_sink *t = ctx;
	struct fs_event_hdr h;

	memcpy(&h, data, sizeof(h));
	if (h.size != size || h.type < FS_EVENT_FLOW || h.type > FS_EVENT_TCP_CONN)
		t->bad++;
	if (utc_offset_ns < FAKE_OFFSET || utc_offset_ns > FAKE_OFFSET + 1000000000LL)
		t->bad++;
	if (utc_offset_ns != t->last_offset)
		t->offset_changes++;
	t->last_offset = utc_offset_ns;
	t->events++;
	if (t->stop_after && t->events == t->stop_after)
		t->src->ops->stop(t->src, on_stopped);
}

static bool sink_has_room(void *ctx)
{
	struct test_sink *t = ctx;

	return t->room_limit == 0 || t->events < t->room_limit;
}

static void sink_done(void *ctx, int status)
{
	struct test_sink *t = ctx;

	t->done_calls++;
	t->done_status = status;
	t->src->ops->stop(t->src, on_stopped);
}

static struct source *start_source(uv_loop_t *loop, struct fake_clock *clock_ctx,
				   struct fs_clock *clock, struct test_sink *t,
				   uint64_t rate, uint64_t count)
{
	struct synthetic_opts opts = { .rate = rate, .count = count, .seed = 9 };
	struct source_sink sink = {
		.event = sink_event, .has_room = sink_has_room, .done = sink_done, .ctx = t,
	};
	struct source *s = NULL;

	*clock = (struct fs_clock){ fake_realtime, fake_monotonic, clock_ctx };
	assert_int_equal(uv_loop_init(loop), 0);
	assert_int_equal(source_synthetic_new(loop, clock, &opts, &sink, &s), 0);
	assert_string_equal(s->ops->name, "synthetic");
	s->user = t;
	t->src = s;
	assert_int_equal(s->ops->start(s), 0);
	return s;
}

static void finish_loop(uv_loop_t *loop, struct source *s)
{
	s->ops->destroy(s);
	assert_int_equal(uv_loop_close(loop), 0);
}

static void test_source_rate_count(void **state)
{
	struct fake_clock cc = { 0 };
	struct fs_clock clock;
	struct test_sink t = { 0 };
	uv_loop_t loop;
	struct source *s = start_source(&loop, &cc, &clock, &t, 20000, 5000);
	uint64_t t0 = uv_hrtime();
	double elapsed;

	(void)state;
	uv_run(&loop, UV_RUN_DEFAULT); /* ends once the source's handles closed */
	elapsed = (double)(uv_hrtime() - t0) / 1e9;
	print_message("5000 events at 20000/s in %.3f s, %llu offset samples\n",
		      elapsed, (unsigned long long)t.offset_changes);
	assert_int_equal(t.events, 5000);
	assert_int_equal(t.bad, 0);
	assert_int_equal(t.done_calls, 1);
	assert_int_equal(t.done_status, 0);
	assert_int_equal(t.stopped_calls, 1);
	assert_true(elapsed >= 0.2 && elapsed < 5.0);
	/* resampled at most every 100 ms, not per event */
	assert_true(t.offset_changes <= 2 + (uint64_t)(elapsed * 10));
	finish_loop(&loop, s);
}

static void test_source_max_count(void **state)
{
	struct fake_clock cc = { 0 };
	struct fs_clock clock;
	struct test_sink t = { 0 };
	uv_loop_t loop;
	struct source *s = start_source(&loop, &cc, &clock, &t, 0, 7777);

	(void)state;
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(t.events, 7777);
	assert_int_equal(t.bad, 0);
	assert_int_equal(t.done_calls, 1);
	assert_int_equal(t.stopped_calls, 1);
	finish_loop(&loop, s);
}

/* Every 20 ms: wait until the source paused at 3000 events; 20 ms later
 * still 3000 (nothing while there is no room), resume; wait until it
 * paused again at 9000; stop. */
static void on_check_timer(uv_timer_t *h)
{
	struct test_sink *t = h->data;

	switch (t->phase) {
	case 0:
	case 2:
		if (t->events < t->room_limit)
			return; /* a slow machine: not there yet */
		assert_int_equal(t->events, t->room_limit);
		break;
	case 1:
		assert_int_equal(t->events, 3000);
		t->room_limit = 9000;
		t->src->ops->resume(t->src);
		t->src->ops->resume(t->src); /* harmless twice */
		break;
	case 3:
		assert_int_equal(t->events, 9000);
		t->src->ops->stop(t->src, on_stopped);
		uv_close((uv_handle_t *)h, NULL);
		break;
	}
	t->phase++;
}

static void test_source_pauses_without_room(void **state)
{
	struct fake_clock cc = { 0 };
	struct fs_clock clock;
	struct test_sink t = { .room_limit = 3000 };
	uv_loop_t loop;
	uv_timer_t check;
	struct source *s = start_source(&loop, &cc, &clock, &t, 0, 0);

	(void)state;
	uv_timer_init(&loop, &check);
	check.data = &t;
	uv_timer_start(&check, on_check_timer, 20, 20);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(t.phase, 4);
	assert_int_equal(t.events, 9000);
	assert_int_equal(t.done_calls, 0);
	assert_int_equal(t.stopped_calls, 1);
	finish_loop(&loop, s);
}

static void test_source_stop_midstream(void **state)
{
	struct fake_clock cc = { 0 };
	struct fs_clock clock;
	struct test_sink t = { .stop_after = 1500 };
	uv_loop_t loop;
	struct source *s = start_source(&loop, &cc, &clock, &t, 0, 0);

	(void)state;
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(t.events, 1500); /* not one event after stop() */
	assert_int_equal(t.done_calls, 0);
	assert_int_equal(t.stopped_calls, 1);
	s->ops->stop(s, on_stopped); /* a second stop is a no-op */
	assert_int_equal(t.stopped_calls, 1);
	finish_loop(&loop, s);
}

static void test_source_rate_stop(void **state)
{
	struct fake_clock cc = { 0 };
	struct fs_clock clock;
	struct test_sink t = { .stop_after = 300 };
	uv_loop_t loop;
	struct source *s = start_source(&loop, &cc, &clock, &t, 100000, 0);

	(void)state;
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(t.events, 300);
	assert_int_equal(t.done_calls, 0);
	assert_int_equal(t.stopped_calls, 1);
	finish_loop(&loop, s);
}

static void test_source_never_started(void **state)
{
	struct synthetic_opts opts = { .rate = 0, .count = 0, .seed = 1 };
	struct test_sink t = { 0 };
	struct source_sink sink = {
		.event = sink_event, .has_room = sink_has_room, .done = sink_done, .ctx = &t,
	};
	struct source *s = NULL;
	uv_loop_t loop;

	(void)state;
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(source_synthetic_new(&loop, &clock_system, &opts, &sink, &s), 0);
	s->user = &t;
	s->ops->stop(s, on_stopped);
	assert_int_equal(t.stopped_calls, 1);
	s->ops->destroy(s);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_events_valid),
		cmocka_unit_test(test_small_now),
		cmocka_unit_test(test_mix),
		cmocka_unit_test(test_connections_consistent),
		cmocka_unit_test(test_zipf_skew),
		cmocka_unit_test(test_source_rate_count),
		cmocka_unit_test(test_source_max_count),
		cmocka_unit_test(test_source_pauses_without_room),
		cmocka_unit_test(test_source_stop_midstream),
		cmocka_unit_test(test_source_rate_stop),
		cmocka_unit_test(test_source_never_started),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
