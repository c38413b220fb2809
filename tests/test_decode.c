/*
 * decode_event(): raw ABI records → rows, and every way a record can be
 * malformed (counted, never a crash, never a wrong row).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>

#include "decode.h"
#include "events.h"

static void fake_ifname(uint32_t ifindex, char buf[16])
{
	if (ifindex == 7)
		strcpy(buf, "veth7");
	else
		buf[0] = 0;
}

static void v4(uint8_t a[16], uint8_t x, uint8_t y, uint8_t z, uint8_t w)
{
	memset(a, 0, 16);
	a[10] = a[11] = 0xff;
	a[12] = x, a[13] = y, a[14] = z, a[15] = w;
}

static void v6_doc(uint8_t a[16], uint8_t last)
{
	memset(a, 0, 16);
	a[0] = 0x20, a[1] = 0x01, a[2] = 0x0d, a[3] = 0xb8;
	a[15] = last;
}

static struct fs_flow_event flow_event(void)
{
	struct fs_flow_event e;

	memset(&e, 0, sizeof(e));
	e.hdr.type = FS_EVENT_FLOW;
	e.hdr.size = sizeof(e);
	e.hdr.ts_ns = 5000;
	e.first_ns = 1000;
	e.last_ns = 4000;
	e.orig_pkts = 10, e.orig_bytes = 1400, e.resp_pkts = 8, e.resp_bytes = 9000;
	e.sock_cookie = 77;
	v4(e.orig_addr, 10, 0, 0, 5);
	v4(e.resp_addr, 203, 0, 113, 7);
	e.ifindex = 7;
	e.pid = 4242;
	e.orig_port = 40000, e.resp_port = 443;
	e.proto = 6;
	e.end_reason = FS_END_TCP_FIN;
	memcpy(e.history, "ShADadFf", 8);
	memcpy(e.comm, "curl", 4);
	return e;
}

static int decode(const void *e, size_t size, struct schema_row *row, enum malformed_reason *why)
{
	return decode_event(e, size, 1000000000LL, fake_ifname, row, why);
}

static void test_flow(void **state)
{
	struct fs_flow_event e = flow_event();
	enum malformed_reason why;
	struct schema_row row;

	(void)state;
	assert_int_equal(decode(&e, sizeof(e), &row, &why), 0);
	assert_int_equal(row.table, SCHEMA_FLOWS);
	assert_int_equal(row.flow.ts, 1000001000LL);
	assert_int_equal(row.flow.ts_end, 1000004000LL);
	assert_string_equal(row.flow.orig_addr, "10.0.0.5");
	assert_string_equal(row.flow.resp_addr, "203.0.113.7");
	assert_int_equal(row.flow.orig_port, 40000);
	assert_int_equal(row.flow.resp_port, 443);
	assert_string_equal(row.flow.proto, "tcp");
	assert_string_equal(row.flow.conn_state, "SF");
	assert_string_equal(row.flow.history, "ShADadFf");
	assert_string_equal(row.flow.ifname, "veth7");
	assert_string_equal(row.flow.end_reason, "fin");
	assert_string_equal(row.flow.comm, "curl");
	assert_int_equal(row.flow.pid, 4242);
	assert_int_equal(row.flow.orig_bytes, 1400);
	assert_int_equal(row.flow.resp_pkts, 8);
	assert_int_equal(row.flow.sock_cookie, 77);
}

static void test_flow_ipv6_other_proto(void **state)
{
	struct fs_flow_event e = flow_event();
	enum malformed_reason why;
	struct schema_row row;

	(void)state;
	v6_doc(e.orig_addr, 1);
	v6_doc(e.resp_addr, 0x22);
	e.proto = 47; /* GRE */
	e.ifindex = 99;
	e.end_reason = FS_END_IDLE_TIMEOUT;
	memset(e.history, 0, sizeof(e.history));
	memcpy(e.comm, "0123456789abcdef", 16); /* a full, unterminated comm */
	assert_int_equal(decode(&e, sizeof(e), &row, &why), 0);
	assert_string_equal(row.flow.orig_addr, "2001:db8::1");
	assert_string_equal(row.flow.resp_addr, "2001:db8::22");
	assert_string_equal(row.flow.proto, "47");
	assert_string_equal(row.flow.ifname, "");
	assert_string_equal(row.flow.end_reason, "idle_timeout");
	assert_string_equal(row.flow.conn_state, "SF"); /* both ways, not TCP */
	assert_string_equal(row.flow.comm, "0123456789abcdef");
}

static void test_conn_states(void **state)
{
	static const struct {
		const char *history;
		uint64_t resp_pkts;
		const char *want;
	} cases[] = {
		{ "ShADadFf", 5, "SF" },  { "ShAdDaFf", 5, "SF" }, { "S", 0, "S0" },
		{ "Sr", 1, "REJ" },       { "ShADadR", 3, "RSTO" }, { "ShADadr", 3, "RSTR" },
		{ "ShADadRr", 3, "RSTO" }, { "ShADadrR", 3, "RSTR" }, { "ShA", 1, "S1" },
		{ "ShADF", 1, "S2" },     { "ShADaf", 2, "S3" },   { "SR", 0, "RSTOS0" },
		{ "SF", 0, "SH" },        { "hr", 1, "RSTRH" },    { "hf", 1, "SHR" },
		{ "Da", 3, "OTH" },       { "ShADadFfR", 4, "SF" }, { "SA", 1, "OTH" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got = decode_conn_state(6, cases[i].history, 1, cases[i].resp_pkts);

		if (strcmp(got, cases[i].want))
			fail_msg("history %s: got %s, want %s", cases[i].history, got, cases[i].want);
	}
	assert_string_equal(decode_conn_state(17, "D", 3, 0), "S0");
	assert_string_equal(decode_conn_state(17, "Dd", 3, 3), "SF");
	assert_string_equal(decode_conn_state(1, "", 1, 1), "OTH");
	assert_string_equal(decode_conn_state(58, "", 1, 0), "OTH");
}

static struct fs_tcp_state_event state_event(void)
{
	struct fs_tcp_state_event e;

	memset(&e, 0, sizeof(e));
	e.hdr.type = FS_EVENT_TCP_STATE;
	e.hdr.size = sizeof(e);
	e.hdr.ts_ns = 123;
	e.sock_cookie = 9;
	v4(e.local_addr, 10, 0, 0, 5);
	v4(e.remote_addr, 198, 51, 100, 1);
	e.local_port = 22;
	e.remote_port = 50000;
	e.old_state = FS_TCP_SYN_RECV;
	e.new_state = FS_TCP_ESTABLISHED;
	e.direction = FS_DIR_IN;
	e.pid = 0;
	return e;
}

static void test_tcp_state_inbound_orientation(void **state)
{
	struct fs_tcp_state_event e = state_event();
	enum malformed_reason why;
	struct schema_row row;

	(void)state;
	assert_int_equal(decode(&e, sizeof(e), &row, &why), 0);
	assert_int_equal(row.table, SCHEMA_TCP_STATES);
	assert_int_equal(row.state.ts, 1000000123LL);
	/* A peer opened it: the peer is the originator. */
	assert_string_equal(row.state.orig_addr, "198.51.100.1");
	assert_int_equal(row.state.orig_port, 50000);
	assert_string_equal(row.state.resp_addr, "10.0.0.5");
	assert_int_equal(row.state.resp_port, 22);
	assert_string_equal(row.state.direction, "in");
	assert_string_equal(row.state.old_state, "SYN_RECV");
	assert_string_equal(row.state.new_state, "ESTABLISHED");
	assert_string_equal(row.state.comm, "");

	e.direction = FS_DIR_OUT;
	assert_int_equal(decode(&e, sizeof(e), &row, &why), 0);
	assert_string_equal(row.state.orig_addr, "10.0.0.5");
	assert_string_equal(row.state.direction, "out");
}

static struct fs_tcp_conn_event conn_event(void)
{
	struct fs_tcp_conn_event e;
	static const uint8_t path[] = { FS_TCP_SYN_SENT, FS_TCP_ESTABLISHED, FS_TCP_FIN_WAIT1,
					FS_TCP_FIN_WAIT2, FS_TCP_CLOSE };

	memset(&e, 0, sizeof(e));
	e.hdr.type = FS_EVENT_TCP_CONN;
	e.hdr.size = sizeof(e);
	e.start_ns = 10;
	e.end_ns = 20;
	e.sock_cookie = 5;
	e.cgroup_id = 1234;
	e.bytes_acked = 100;
	e.bytes_received = 2000;
	v6_doc(e.local_addr, 5);
	v6_doc(e.remote_addr, 9);
	e.segs_out = 4, e.segs_in = 5, e.retransmits = 1, e.srtt_us = 350;
	e.pid = 31, e.uid = 1000;
	e.local_port = 41000, e.remote_port = 443;
	e.direction = FS_DIR_OUT;
	e.close_state = FS_TCP_FIN_WAIT2;
	e.path_len = sizeof(path);
	memcpy(e.state_path, path, sizeof(path));
	memcpy(e.comm, "wget", 4);
	return e;
}

static void test_tcp_conn(void **state)
{
	struct fs_tcp_conn_event e = conn_event();
	enum malformed_reason why;
	struct schema_row row;

	(void)state;
	assert_int_equal(decode(&e, sizeof(e), &row, &why), 0);
	assert_int_equal(row.table, SCHEMA_CONNECTIONS);
	assert_int_equal(row.conn.ts, 1000000010LL);
	assert_int_equal(row.conn.ts_end, 1000000020LL);
	assert_string_equal(row.conn.orig_addr, "2001:db8::5");
	assert_string_equal(row.conn.resp_addr, "2001:db8::9");
	assert_int_equal(row.conn.resp_port, 443);
	assert_string_equal(row.conn.states, "SYN_SENT>ESTABLISHED>FIN_WAIT1>FIN_WAIT2>CLOSE");
	assert_string_equal(row.conn.close_state, "FIN_WAIT2");
	assert_int_equal(row.conn.bytes_sent, 100);
	assert_int_equal(row.conn.bytes_received, 2000);
	assert_int_equal(row.conn.retransmits, 1);
	assert_int_equal(row.conn.srtt_us, 350);
	assert_int_equal(row.conn.uid, 1000);
	assert_int_equal(row.conn.cgroup_id, 1234);
	assert_string_equal(row.conn.comm, "wget");

	/* A path longer than the record holds says so. */
	e.path_len = 40;
	for (int i = 0; i < FS_STATE_PATH_LEN; i++)
		e.state_path[i] = (uint8_t)(i % 2 ? FS_TCP_ESTABLISHED : FS_TCP_CLOSE_WAIT);
	assert_int_equal(decode(&e, sizeof(e), &row, &why), 0);
	assert_non_null(strstr(row.conn.states, ">..."));
}

static void expect_malformed(const void *data, size_t size, enum malformed_reason want)
{
	enum malformed_reason why = MALFORMED_NREASONS;
	struct schema_row row;

	assert_int_equal(decode(data, size, &row, &why), -1);
	assert_int_equal(why, want);
}

static void test_malformed(void **state)
{
	struct fs_flow_event f = flow_event();
	struct fs_tcp_state_event s = state_event();
	struct fs_tcp_conn_event c = conn_event();
	uint8_t big[512] = { 0 };

	(void)state;
	expect_malformed(&f, 0, MALFORMED_SHORT);
	expect_malformed(&f, 15, MALFORMED_SHORT);
	expect_malformed(&f, sizeof(f) - 8, MALFORMED_SIZE); /* truncated */
	memcpy(big, &f, sizeof(f));
	expect_malformed(big, sizeof(f) + 8, MALFORMED_SIZE); /* trailing bytes */
	f.hdr.size = sizeof(f) + 8;
	memcpy(big, &f, sizeof(f));
	expect_malformed(big, sizeof(f) + 8, MALFORMED_SIZE); /* consistent but wrong for the type */
	f = flow_event();
	f.hdr.type = 99;
	expect_malformed(&f, sizeof(f), MALFORMED_TYPE);
	f = flow_event();
	f.end_reason = 0;
	expect_malformed(&f, sizeof(f), MALFORMED_VALUE);
	f = flow_event();
	memcpy(f.history, "S\x01", 2);
	expect_malformed(&f, sizeof(f), MALFORMED_VALUE);
	s.new_state = 0;
	expect_malformed(&s, sizeof(s), MALFORMED_VALUE);
	s = state_event();
	s.old_state = 13;
	expect_malformed(&s, sizeof(s), MALFORMED_VALUE);
	s = state_event();
	s.direction = 3;
	expect_malformed(&s, sizeof(s), MALFORMED_VALUE);
	c.state_path[1] = 200;
	expect_malformed(&c, sizeof(c), MALFORMED_VALUE);
	c = conn_event();
	c.close_state = 0;
	expect_malformed(&c, sizeof(c), MALFORMED_VALUE);
	/* A state event sized like a conn event. */
	memcpy(big, &s, sizeof(s));
	((struct fs_event_hdr *)big)->size = sizeof(c);
	expect_malformed(big, sizeof(c), MALFORMED_SIZE);
}

static void test_unaligned_input(void **state)
{
	struct fs_tcp_conn_event c = conn_event();
	enum malformed_reason why;
	uint8_t buf[sizeof(c) + 1];
	struct schema_row row;

	(void)state;
	memcpy(buf + 1, &c, sizeof(c));
	assert_int_equal(decode(buf + 1, sizeof(c), &row, &why), 0);
	assert_int_equal(row.conn.bytes_received, 2000);
}

/* decode_addr() writes what inet_ntop() writes, on edge cases and on random
 * addresses with runs of zero groups in every position. */
static void test_addr_text_matches_inet_ntop(void **state)
{
	static const char *const edge[] = {
		"::", "::1", "1::", "2001:db8::1", "2001:db8:0:0:1:0:0:1", "2001:0:0:1:0:0:0:1",
		"fe80::1:2", "::1.2.3.4", "::ffff:0:0", "1:2:3:4:5:6:7:8", "0:1:0:1:0:1:0:1",
		"::0.0.1.0", "ff02::fb", "2001:db8:85a3::8a2e:370:7334", "0:0:1::",
	};
	char want[INET6_ADDRSTRLEN], got[SCHEMA_ADDR_LEN];
	uint8_t a[16];
	uint64_t x = 88172645463325252ULL;

	(void)state;
	for (size_t i = 0; i < sizeof(edge) / sizeof(edge[0]); i++) {
		assert_int_equal(inet_pton(AF_INET6, edge[i], a), 1);
		decode_addr(a, got);
		if (a[10] == 0xff && a[11] == 0xff && !memcmp(a, "\0\0\0\0\0\0\0\0\0\0", 10))
			inet_ntop(AF_INET, a + 12, want, sizeof(want));
		else
			inet_ntop(AF_INET6, a, want, sizeof(want));
		assert_string_equal(got, want);
	}
	for (int n = 0; n < 200000; n++) {
		for (int i = 0; i < 16; i += 2) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			/* zero groups often, so every run shape appears */
			uint16_t g = (x & 3) ? 0 : (uint16_t)(x >> 20);
			a[i] = (uint8_t)(g >> 8);
			a[i + 1] = (uint8_t)g;
		}
		if (n % 4 == 0) { /* IPv4, v4-mapped */
			memset(a, 0, 10);
			a[10] = a[11] = 0xff;
			inet_ntop(AF_INET, a + 12, want, sizeof(want));
		} else if (a[10] == 0xff && a[11] == 0xff && !memcmp(a, "\0\0\0\0\0\0\0\0\0\0", 10)) {
			inet_ntop(AF_INET, a + 12, want, sizeof(want));
		} else {
			inet_ntop(AF_INET6, a, want, sizeof(want));
		}
		decode_addr(a, got);
		if (strcmp(got, want))
			fail_msg("decode_addr wrote %s, inet_ntop %s", got, want);
	}
}

/* A datagram socket's owner: not a row, its own decoder; every malformed
 * shape refused with its reason. */
static void test_sock_owner(void **state)
{
	struct fs_sock_owner_event e;
	struct decode_owner o;
	enum malformed_reason why;
	struct schema_row row;

	(void)state;
	memset(&e, 0, sizeof(e));
	e.hdr.ts_ns = 5;
	e.hdr.type = FS_EVENT_SOCK_OWNER;
	e.hdr.size = sizeof(e);
	e.sock_cookie = 4242;
	e.cgroup_id = 7;
	e.pid = 1234;
	e.uid = 1000;
	memcpy(e.comm, "0123456789abcdef", 16); /* all 16 bytes: no NUL in the record */

	assert_true(decode_is_sock_owner(&e, sizeof(e)));
	assert_int_equal(decode_sock_owner(&e, sizeof(e), &o, &why), 0);
	assert_int_equal(o.sock_cookie, 4242);
	assert_int_equal(o.pid, 1234);
	assert_string_equal(o.comm, "0123456789abcdef");
	/* not a row: decode_event() does not take it */
	assert_int_equal(decode(&e, sizeof(e), &row, &why), -1);
	assert_int_equal(why, MALFORMED_TYPE);

	assert_false(decode_is_sock_owner(&e, sizeof(e.hdr) - 1));
	assert_int_equal(decode_sock_owner(&e, sizeof(e.hdr) - 1, &o, &why), -1);
	assert_int_equal(why, MALFORMED_SHORT);
	assert_int_equal(decode_sock_owner(&e, sizeof(e) - 8, &o, &why), -1);
	assert_int_equal(why, MALFORMED_SIZE);
	e.pid = 0;
	assert_int_equal(decode_sock_owner(&e, sizeof(e), &o, &why), -1);
	assert_int_equal(why, MALFORMED_VALUE);
	e.pid = 1;
	e.sock_cookie = 0;
	assert_int_equal(decode_sock_owner(&e, sizeof(e), &o, &why), -1);
	assert_int_equal(why, MALFORMED_VALUE);
	e.sock_cookie = 1;
	e.hdr.type = FS_EVENT_FLOW;
	assert_false(decode_is_sock_owner(&e, sizeof(e)));
	assert_int_equal(decode_sock_owner(&e, sizeof(e), &o, &why), -1);
	assert_int_equal(why, MALFORMED_TYPE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flow),
		cmocka_unit_test(test_flow_ipv6_other_proto),
		cmocka_unit_test(test_conn_states),
		cmocka_unit_test(test_tcp_state_inbound_orientation),
		cmocka_unit_test(test_tcp_conn),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_sock_owner),
		cmocka_unit_test(test_unaligned_input),
		cmocka_unit_test(test_addr_text_matches_inet_ntop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
