/*
 * The known data dir of fixture.h. Every value is a constant here: the
 * same files, the same rows, every run (only the files' created/sealed
 * times are fixed too, so even the metadata is the same).
 */
#include "fixture.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "schema.h"

#define S 1000000000LL
#define HOUR (3600 * S)

static struct schema_row flow(int64_t ts, const char *proto, const char *orig, uint16_t oport,
			      const char *resp, uint16_t rport, int64_t obytes, uint32_t pid,
			      const char *comm)
{
	struct schema_row r = { .table = SCHEMA_FLOWS };
	bool tcp = !strcmp(proto, "tcp");

	r.flow.ts = ts;
	r.flow.ts_end = ts + 1500 * 1000000LL;
	snprintf(r.flow.proto, sizeof(r.flow.proto), "%s", proto);
	snprintf(r.flow.orig_addr, sizeof(r.flow.orig_addr), "%s", orig);
	snprintf(r.flow.resp_addr, sizeof(r.flow.resp_addr), "%s", resp);
	r.flow.orig_port = oport;
	r.flow.resp_port = rport;
	r.flow.orig_pkts = 3;
	r.flow.orig_bytes = obytes;
	r.flow.resp_pkts = 2;
	r.flow.resp_bytes = obytes * 2;
	snprintf(r.flow.conn_state, sizeof(r.flow.conn_state), "%s",
		 !strcmp(proto, "icmp") ? "OTH" : "SF");
	snprintf(r.flow.history, sizeof(r.flow.history), "%s", tcp ? "ShADadFf" : "Dd");
	snprintf(r.flow.ifname, sizeof(r.flow.ifname), "eth0");
	snprintf(r.flow.end_reason, sizeof(r.flow.end_reason), "%s", tcp ? "fin" : "idle_timeout");
	r.flow.pid = pid;
	snprintf(r.flow.comm, sizeof(r.flow.comm), "%s", comm);
	r.flow.sock_cookie = pid ? 1000 + pid : 0;
	return r;
}

static struct schema_row conn(int64_t ts, const char *dir, const char *orig, const char *resp,
			      uint16_t rport, uint32_t pid, const char *comm, int64_t sent)
{
	struct schema_row r = { .table = SCHEMA_CONNECTIONS };

	r.conn.ts = ts;
	r.conn.ts_end = ts + 2 * S;
	snprintf(r.conn.direction, sizeof(r.conn.direction), "%s", dir);
	snprintf(r.conn.orig_addr, sizeof(r.conn.orig_addr), "%s", orig);
	snprintf(r.conn.resp_addr, sizeof(r.conn.resp_addr), "%s", resp);
	r.conn.orig_port = 40000;
	r.conn.resp_port = rport;
	r.conn.pid = pid;
	r.conn.uid = pid ? 1000 : 0;
	snprintf(r.conn.comm, sizeof(r.conn.comm), "%s", comm);
	r.conn.cgroup_id = 42;
	r.conn.bytes_sent = sent;
	r.conn.bytes_received = sent * 10;
	r.conn.segs_out = 5;
	r.conn.segs_in = 6;
	r.conn.retransmits = 0;
	r.conn.srtt_us = 250;
	snprintf(r.conn.states, sizeof(r.conn.states), "SYN_SENT>ESTABLISHED>FIN_WAIT1>FIN_WAIT2>CLOSE");
	snprintf(r.conn.close_state, sizeof(r.conn.close_state), "FIN_WAIT2");
	r.conn.sock_cookie = 1000 + pid;
	return r;
}

static struct schema_row state(int64_t ts, const char *old, const char *new, uint32_t pid)
{
	struct schema_row r = { .table = SCHEMA_TCP_STATES };

	r.state.ts = ts;
	r.state.sock_cookie = 1000 + pid;
	r.state.pid = pid;
	r.state.orig_port = 40000;
	r.state.resp_port = 443;
	snprintf(r.state.direction, sizeof(r.state.direction), "out");
	snprintf(r.state.old_state, sizeof(r.state.old_state), "%s", old);
	snprintf(r.state.new_state, sizeof(r.state.new_state), "%s", new);
	snprintf(r.state.orig_addr, sizeof(r.state.orig_addr), "10.0.0.5");
	snprintf(r.state.resp_addr, sizeof(r.state.resp_addr), "203.0.113.7");
	snprintf(r.state.comm, sizeof(r.state.comm), "curl");
	return r;
}

static int write_partition(const char *dir, int64_t start, const struct schema_row *rows,
			   size_t n, bool seal)
{
	struct partition *p = NULL;
	char path[4096];
	int err = partition_create(dir, start, HOUR, 0, start + 5 * S, &p);

	if (err)
		goto fail;
	snprintf(path, sizeof(path), "%s", partition_path(p));
	err = partition_begin(p);
	for (size_t i = 0; !err && i < n; i++)
		err = partition_add(p, &rows[i]);
	if (!err)
		err = partition_commit(p);
	else
		partition_rollback(p);
	partition_close(p);
	if (!err && seal)
		err = partition_seal(path, start + HOUR + 60 * S, NULL);
	if (!err)
		return 0;
fail:
	fprintf(stderr, "fixture: %s: %s (%s)\n", dir, strerror(-err), schema_last_error());
	return err;
}

int fixture_write(const char *dir)
{
	const int64_t t0 = FIXTURE_T0, t1 = FIXTURE_T0 + HOUR;
	const struct schema_row first[] = {
		flow(t0 + 10 * S + 123456789, "tcp", "10.0.0.5", 40000, "203.0.113.7", 443, 1000,
		     1234, "curl"),
		flow(t0 + 20 * S, "udp", "10.0.0.5", 5353, "10.0.0.1", 53, 80, 0, ""),
		flow(t0 + 30 * S + 5, "tcp", "2001:db8::5", 40001, "2001:db8::1", 8080, 5000, 77,
		     "we,\"ird"),
		conn(t0 + 10 * S, "out", "10.0.0.5", "203.0.113.7", 443, 1234, "curl", 900),
		conn(t0 + 30 * S, "in", "2001:db8::1", "2001:db8::5", 8080, 77, "we,\"ird", 4000),
		state(t0 + 10 * S, "CLOSE", "SYN_SENT", 1234),
		state(t0 + 10 * S + 1000, "SYN_SENT", "ESTABLISHED", 1234),
		state(t0 + 12 * S, "ESTABLISHED", "FIN_WAIT1", 1234),
	};
	const struct schema_row second[] = {
		flow(t1 + 5 * S, "icmp", "10.0.0.5", 8, "198.51.100.9", 0, 84, 0, ""),
		flow(t1 + 6 * S, "tcp", "10.0.0.5", 40002, "198.51.100.9", 22, 2048, 4321,
		     "tab\there"),
		conn(t1 + 6 * S, "out", "10.0.0.5", "198.51.100.9", 22, 4321, "tab\there", 1800),
		state(t1 + 6 * S, "CLOSE", "SYN_SENT", 4321),
		state(t1 + 6 * S + 500, "SYN_SENT", "ESTABLISHED", 4321),
	};
	int err = write_partition(dir, t0, first, sizeof(first) / sizeof(first[0]), true);

	if (!err)
		err = write_partition(dir, t1, second, sizeof(second) / sizeof(second[0]), false);
	return err;
}
