/*
 * The owner cache: flow rows get the pid and comm of the socket whose
 * cookie they carry, learnt from state and connection rows; it stays
 * bounded and prefers recent sockets when full.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "owner_cache.h"

static struct schema_row state_row(int64_t cookie, uint32_t pid, const char *comm)
{
	struct schema_row r;

	memset(&r, 0, sizeof(r));
	r.table = SCHEMA_TCP_STATES;
	r.state.sock_cookie = cookie;
	r.state.pid = pid;
	strcpy(r.state.comm, comm);
	return r;
}

static struct schema_row flow_row(int64_t cookie)
{
	struct schema_row r;

	memset(&r, 0, sizeof(r));
	r.table = SCHEMA_FLOWS;
	r.flow.sock_cookie = cookie;
	return r;
}

static void test_fills_flow_from_state_and_conn(void **state)
{
	struct owner_cache c;
	struct schema_row s = state_row(41, 1234, "curl"), f = flow_row(41), conn;

	(void)state;
	assert_int_equal(owner_cache_init(&c, 100), 0);
	owner_cache_apply(&c, &s);
	owner_cache_apply(&c, &f);
	assert_int_equal(f.flow.pid, 1234);
	assert_string_equal(f.flow.comm, "curl");

	memset(&conn, 0, sizeof(conn));
	conn.table = SCHEMA_CONNECTIONS;
	conn.conn.sock_cookie = 42;
	conn.conn.pid = 77;
	strcpy(conn.conn.comm, "nginx");
	owner_cache_apply(&c, &conn);
	f = flow_row(42);
	owner_cache_apply(&c, &f);
	assert_int_equal(f.flow.pid, 77);
	assert_string_equal(f.flow.comm, "nginx");
	owner_cache_destroy(&c);
}

/* A datagram socket's owner record (not a row) teaches the cache too; a
 * 16-character comm keeps all 16. */
static void test_fills_flow_from_learn(void **state)
{
	struct owner_cache c;
	struct schema_row f = flow_row(51);

	(void)state;
	assert_int_equal(owner_cache_init(&c, 100), 0);
	owner_cache_learn(&c, 51, 4321, "0123456789abcdef");
	owner_cache_learn(&c, 52, 0, "nobody"); /* no pid: not learnt */
	owner_cache_apply(&c, &f);
	assert_int_equal(f.flow.pid, 4321);
	assert_string_equal(f.flow.comm, "0123456789abcdef");
	f = flow_row(52);
	owner_cache_apply(&c, &f);
	assert_int_equal(f.flow.pid, 0);
	assert_string_equal(f.flow.comm, "");
	owner_cache_destroy(&c);
}

static void test_leaves_unknown_and_known_alone(void **state)
{
	struct owner_cache c;
	struct schema_row s = state_row(5, 10, "sshd"), f;

	(void)state;
	assert_int_equal(owner_cache_init(&c, 16), 0);
	owner_cache_apply(&c, &s);
	f = flow_row(6); /* another socket */
	owner_cache_apply(&c, &f);
	assert_int_equal(f.flow.pid, 0);
	assert_string_equal(f.flow.comm, "");
	f = flow_row(0); /* no socket */
	owner_cache_apply(&c, &f);
	assert_int_equal(f.flow.pid, 0);
	f = flow_row(5); /* already owned: kept */
	f.flow.pid = 99;
	strcpy(f.flow.comm, "other");
	owner_cache_apply(&c, &f);
	assert_int_equal(f.flow.pid, 99);
	assert_string_equal(f.flow.comm, "other");
	/* A row without an owner teaches nothing and forgets nothing. */
	s = state_row(5, 0, "");
	owner_cache_apply(&c, &s);
	f = flow_row(5);
	owner_cache_apply(&c, &f);
	assert_int_equal(f.flow.pid, 10);
	owner_cache_destroy(&c);
}

static void test_bounded_recent_survive(void **state)
{
	struct owner_cache c;
	int found = 0;

	(void)state;
	assert_int_equal(owner_cache_init(&c, 1024), 0);
	for (int64_t k = 1; k <= 100000; k++) {
		struct schema_row s = state_row(k, (uint32_t)k, "p");

		owner_cache_apply(&c, &s);
	}
	assert_int_equal(c.mask + 1, 1024); /* never grew */
	/* The most recent sockets are still known. */
	for (int64_t k = 100000; k > 100000 - 256; k--) {
		struct schema_row f = flow_row(k);

		owner_cache_apply(&c, &f);
		found += f.flow.pid == (uint32_t)k;
	}
	assert_true(found >= 250);
	owner_cache_destroy(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fills_flow_from_state_and_conn),
		cmocka_unit_test(test_fills_flow_from_learn),
		cmocka_unit_test(test_leaves_unknown_and_known_alone),
		cmocka_unit_test(test_bounded_recent_survive),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
