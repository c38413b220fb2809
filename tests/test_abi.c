/*
 * The event ABI's layout: sizes, offsets and alignment that the kernel
 * programs and user space both rely on. A change here is an ABI change and
 * must bump FS_ABI_VERSION.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "events.h"

static void test_header(void **state)
{
	(void)state;
	assert_int_equal(sizeof(struct fs_event_hdr), 16);
	assert_int_equal(offsetof(struct fs_event_hdr, ts_ns), 0);
	assert_int_equal(offsetof(struct fs_event_hdr, type), 8);
	assert_int_equal(offsetof(struct fs_event_hdr, size), 10);
	/* Every record begins with the header. */
	assert_int_equal(offsetof(struct fs_flow_event, hdr), 0);
	assert_int_equal(offsetof(struct fs_tcp_state_event, hdr), 0);
	assert_int_equal(offsetof(struct fs_tcp_conn_event, hdr), 0);
}

static void test_flow_layout(void **state)
{
	(void)state;
	assert_int_equal(sizeof(struct fs_flow_event), 152);
	assert_int_equal(offsetof(struct fs_flow_event, first_ns), 16);
	assert_int_equal(offsetof(struct fs_flow_event, sock_cookie), 64);
	assert_int_equal(offsetof(struct fs_flow_event, orig_addr), 72);
	assert_int_equal(offsetof(struct fs_flow_event, resp_addr), 88);
	assert_int_equal(offsetof(struct fs_flow_event, ifindex), 104);
	assert_int_equal(offsetof(struct fs_flow_event, orig_port), 112);
	assert_int_equal(offsetof(struct fs_flow_event, proto), 116);
	assert_int_equal(offsetof(struct fs_flow_event, history), 120);
	assert_int_equal(offsetof(struct fs_flow_event, comm), 132);
	assert_int_equal(sizeof(((struct fs_flow_event *)0)->orig_addr), 16);
}

static void test_tcp_state_layout(void **state)
{
	(void)state;
	assert_int_equal(sizeof(struct fs_tcp_state_event), 88);
	assert_int_equal(offsetof(struct fs_tcp_state_event, sock_cookie), 16);
	assert_int_equal(offsetof(struct fs_tcp_state_event, local_addr), 24);
	assert_int_equal(offsetof(struct fs_tcp_state_event, remote_addr), 40);
	assert_int_equal(offsetof(struct fs_tcp_state_event, old_state), 64);
	assert_int_equal(offsetof(struct fs_tcp_state_event, comm), 68);
}

static void test_tcp_conn_layout(void **state)
{
	(void)state;
	assert_int_equal(sizeof(struct fs_tcp_conn_event), 160);
	assert_int_equal(offsetof(struct fs_tcp_conn_event, start_ns), 16);
	assert_int_equal(offsetof(struct fs_tcp_conn_event, bytes_received), 56);
	assert_int_equal(offsetof(struct fs_tcp_conn_event, local_addr), 64);
	assert_int_equal(offsetof(struct fs_tcp_conn_event, segs_out), 96);
	assert_int_equal(offsetof(struct fs_tcp_conn_event, local_port), 120);
	assert_int_equal(offsetof(struct fs_tcp_conn_event, state_path), 128);
	assert_int_equal(offsetof(struct fs_tcp_conn_event, comm), 144);
	assert_true(FS_EVENT_MAX_SIZE >= sizeof(struct fs_tcp_conn_event));
	assert_true(FS_EVENT_MAX_SIZE >= sizeof(struct fs_flow_event));
}

/* Ring buffer records are 8-byte aligned: every record must be a multiple
 * of 8 so 64-bit fields stay aligned when records are packed. */
static void test_alignment(void **state)
{
	(void)state;
	assert_int_equal(sizeof(struct fs_flow_event) % 8, 0);
	assert_int_equal(sizeof(struct fs_tcp_state_event) % 8, 0);
	assert_int_equal(sizeof(struct fs_tcp_conn_event) % 8, 0);
	assert_int_equal(FS_TCP_ESTABLISHED, 1);
	assert_int_equal(FS_TCP_NEW_SYN_RECV, 12);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_flow_layout),
		cmocka_unit_test(test_tcp_state_layout),
		cmocka_unit_test(test_tcp_conn_layout),
		cmocka_unit_test(test_alignment),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
