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

/* ---- the cookbook's data dir (fixture.h) --------------------------------- */

#define MS 1000000LL
#define MIN (60 * S)
#define DAY (24 * HOUR)
/* Day d of 2024-01 counted from the 1st (0), so -4 is 2023-12-28. */
#define AT(d, h, m, s, ms) \
	(FIXTURE_T0 + (d) * DAY + (h) * HOUR + (m) * MIN + (s) * S + (ms) * MS)

#define OUT_FIN "SYN_SENT>ESTABLISHED>FIN_WAIT1>FIN_WAIT2>CLOSE"
#define IN_FIN "SYN_RECV>ESTABLISHED>FIN_WAIT1>FIN_WAIT2>CLOSE"
#define IN_LAST_ACK "SYN_RECV>ESTABLISHED>CLOSE_WAIT>LAST_ACK>CLOSE"

struct cb_flow {
	int64_t ts, ts_end;
	const char *proto, *orig;
	uint16_t oport;
	const char *resp;
	uint16_t rport;
	int64_t opkts, obytes, rpkts, rbytes;
	const char *conn_state, *history, *ifname, *end_reason;
	uint32_t pid;
	const char *comm; /* NULL: unknown */
	int64_t cookie;   /* 0: none */
};

struct cb_conn {
	int64_t ts, ts_end;
	const char *direction, *orig;
	uint16_t oport;
	const char *resp;
	uint16_t rport;
	uint32_t pid, uid;
	const char *comm;
	int64_t cgroup, sent, received, segs_out, segs_in, retransmits, srtt_us;
	const char *states, *close_state;
	int64_t cookie;
};

struct cb_state {
	int64_t ts;
	const char *direction, *orig;
	uint16_t oport;
	const char *resp;
	uint16_t rport;
	const char *old_state, *new_state;
	uint32_t pid;
	const char *comm;
	int64_t cookie;
};

#define COPY(dst, src) snprintf((dst), sizeof(dst), "%s", (src) ? (src) : "")

static struct schema_row cb_flow_row(const struct cb_flow *f)
{
	struct schema_row r = { .table = SCHEMA_FLOWS };

	r.flow.ts = f->ts;
	r.flow.ts_end = f->ts_end;
	COPY(r.flow.proto, f->proto);
	COPY(r.flow.orig_addr, f->orig);
	COPY(r.flow.resp_addr, f->resp);
	r.flow.orig_port = f->oport;
	r.flow.resp_port = f->rport;
	r.flow.orig_pkts = f->opkts;
	r.flow.orig_bytes = f->obytes;
	r.flow.resp_pkts = f->rpkts;
	r.flow.resp_bytes = f->rbytes;
	COPY(r.flow.conn_state, f->conn_state);
	COPY(r.flow.history, f->history);
	COPY(r.flow.ifname, f->ifname);
	COPY(r.flow.end_reason, f->end_reason);
	r.flow.pid = f->pid;
	COPY(r.flow.comm, f->comm);
	r.flow.sock_cookie = f->cookie;
	return r;
}

static struct schema_row cb_conn_row(const struct cb_conn *c)
{
	struct schema_row r = { .table = SCHEMA_CONNECTIONS };

	r.conn.ts = c->ts;
	r.conn.ts_end = c->ts_end;
	COPY(r.conn.direction, c->direction);
	COPY(r.conn.orig_addr, c->orig);
	COPY(r.conn.resp_addr, c->resp);
	r.conn.orig_port = c->oport;
	r.conn.resp_port = c->rport;
	r.conn.pid = c->pid;
	r.conn.uid = c->uid;
	COPY(r.conn.comm, c->comm);
	r.conn.cgroup_id = c->cgroup;
	r.conn.bytes_sent = c->sent;
	r.conn.bytes_received = c->received;
	r.conn.segs_out = c->segs_out;
	r.conn.segs_in = c->segs_in;
	r.conn.retransmits = c->retransmits;
	r.conn.srtt_us = c->srtt_us;
	COPY(r.conn.states, c->states);
	COPY(r.conn.close_state, c->close_state);
	r.conn.sock_cookie = c->cookie;
	return r;
}

static struct schema_row cb_state_row(const struct cb_state *s)
{
	struct schema_row r = { .table = SCHEMA_TCP_STATES };

	r.state.ts = s->ts;
	COPY(r.state.direction, s->direction);
	COPY(r.state.orig_addr, s->orig);
	COPY(r.state.resp_addr, s->resp);
	r.state.orig_port = s->oport;
	r.state.resp_port = s->rport;
	COPY(r.state.old_state, s->old_state);
	COPY(r.state.new_state, s->new_state);
	r.state.pid = s->pid;
	COPY(r.state.comm, s->comm);
	r.state.sock_cookie = s->cookie;
	return r;
}

/* When the collector would have written the row: its partition is the
 * one open then. */
static int64_t cb_written(const struct schema_row *r)
{
	switch (r->table) {
	case SCHEMA_FLOWS: return r->flow.ts_end;
	case SCHEMA_CONNECTIONS: return r->conn.ts_end;
	default: return r->state.ts;
	}
}

/* Flows one at a time, tcp_states (default policy 'open': →LISTEN,
 * →ESTABLISHED, LISTEN→CLOSE), connections (written at close). */
static const struct cb_flow cb_flows[] = {
	/* 2023-12-28 03:00, the backup of the week before the previous one */
	{ AT(-4, 3, 0, 0, 0), AT(-4, 3, 0, 50, 0), "tcp", "10.0.0.5", 51000, "192.0.2.50", 873,
	  34600, 51800000, 17400, 900000, "SF", "ShADadFf", "eth0", "fin", 3100, "rsync", 101 },
	/* 2024-01-02 09:00: DNS, curl, apt, an ssh session (idle in the middle: two rows) */
	{ AT(1, 9, 0, 0, 0), AT(1, 9, 0, 0, 20), "udp", "10.0.0.5", 41000, "10.0.0.1", 53,
	  2, 150, 2, 320, "SF", "Dd", "eth0", "idle_timeout", 0, NULL, 0 },
	{ AT(1, 9, 0, 1, 0), AT(1, 9, 0, 1, 900), "tcp", "10.0.0.5", 52000, "203.0.113.7", 443,
	  12, 1800, 14, 9200, "SF", "ShADadFf", "eth0", "fin", 1234, "curl", 102 },
	{ AT(1, 9, 0, 5, 0), AT(1, 9, 0, 20, 0), "tcp", "10.0.0.5", 52010, "151.101.2.132", 80,
	  900, 40000, 1500, 2100000, "SF", "ShADadFf", "eth0", "fin", 2001, "http", 103 },
	{ AT(1, 9, 5, 0, 0), AT(1, 9, 5, 40, 0), "tcp", "198.51.100.23", 50123, "10.0.0.5", 22,
	  300, 30000, 280, 60000, "S1", "ShADad", "eth0", "idle_timeout", 800, "sshd", 104 },
	{ AT(1, 9, 34, 50, 0), AT(1, 9, 35, 0, 0), "tcp", "198.51.100.23", 50123, "10.0.0.5", 22,
	  40, 4000, 30, 6000, "OTH", "DdAaFf", "eth0", "fin", 800, "sshd", 104 },
	/* 2024-01-04 14:00: nginx restarted, a client, the weekly backup */
	{ AT(3, 14, 5, 0, 0), AT(3, 14, 5, 3, 0), "tcp", "198.51.100.40", 60000, "10.0.0.5", 443,
	  20, 3000, 25, 30000, "SF", "ShADadFf", "eth0", "fin", 900, "nginx", 205 },
	{ AT(3, 14, 30, 0, 0), AT(3, 14, 30, 45, 0), "tcp", "10.0.0.5", 51200, "192.0.2.50", 873,
	  34000, 51000000, 17000, 880000, "SF", "ShADadFf", "eth0", "fin", 3188, "rsync", 206 },
	/* 2024-01-06 22:00 */
	{ AT(5, 22, 0, 0, 0), AT(5, 22, 0, 0, 15), "udp", "10.0.0.5", 41001, "10.0.0.1", 53,
	  2, 140, 2, 300, "SF", "Dd", "eth0", "idle_timeout", 0, NULL, 0 },
	{ AT(5, 22, 0, 0, 100), AT(5, 22, 0, 1, 100), "tcp", "10.0.0.5", 52100, "203.0.113.7", 443,
	  10, 1500, 12, 8100, "SF", "ShADadFf", "eth0", "fin", 1299, "curl", 207 },
	/* 2024-01-07 20:00: an ssh session that is still open at 12:00 the next day */
	{ AT(6, 20, 0, 0, 0), AT(6, 20, 0, 50, 0), "tcp", "198.51.100.23", 50500, "10.0.0.5", 22,
	  200, 20000, 190, 41000, "S1", "ShADad", "eth0", "idle_timeout", 800, "sshd", 301 },
	/* 2024-01-08: 02:00 the backup (cb_intervals), 03:00 the scan (cb_scan) */
	{ AT(7, 7, 59, 0, 0), AT(7, 7, 59, 0, 30), "udp", "10.0.0.5", 45000, "8.8.8.8", 53,
	  1, 60, 1, 124, "SF", "Dd", "eth0", "idle_timeout", 0, NULL, 0 },
	{ AT(7, 7, 59, 10, 0), AT(7, 7, 59, 10, 40), "udp", "10.0.0.5", 41002, "10.0.0.1", 53,
	  4, 280, 4, 600, "SF", "Dd", "eth0", "idle_timeout", 0, NULL, 0 },
	/* 08:00 the upload (cb_intervals); 08:05 a container, NATed: its flow
	 * on its veth and again on eth0, neither with a local socket */
	{ AT(7, 8, 5, 0, 0), AT(7, 8, 5, 30, 0), "tcp", "172.17.0.2", 40100, "203.0.113.7", 443,
	  50, 6000, 60, 70000, "SF", "ShADadFf", "veth3f2a", "fin", 0, NULL, 0 },
	{ AT(7, 8, 5, 0, 1), AT(7, 8, 5, 30, 1), "tcp", "10.0.0.5", 61000, "203.0.113.7", 443,
	  50, 6000, 60, 70000, "SF", "ShADadFf", "eth0", "fin", 0, NULL, 0 },
	/* 09:00: refused, timed out (connect timeout 10 s), reset before any
	 * data, and reset after data (not a failure) */
	{ AT(7, 9, 0, 0, 0), AT(7, 9, 0, 0, 1), "tcp", "10.0.0.5", 53100, "198.51.100.99", 8443,
	  1, 60, 1, 40, "REJ", "Sr", "eth0", "rst", 6001, "curl", 601 },
	{ AT(7, 9, 1, 0, 0), AT(7, 9, 1, 7, 0), "tcp", "10.0.0.5", 53200, "203.0.113.99", 443,
	  4, 240, 0, 0, "S0", "S", "eth0", "idle_timeout", 4242, "python3", 602 },
	{ AT(7, 9, 2, 0, 0), AT(7, 9, 2, 0, 60), "tcp", "10.0.0.5", 53300, "203.0.113.7", 443,
	  2, 112, 2, 100, "RSTR", "ShAr", "eth0", "rst", 4242, "python3", 603 },
	{ AT(7, 9, 3, 0, 0), AT(7, 9, 3, 2, 0), "tcp", "10.0.0.5", 53400, "203.0.113.7", 443,
	  10, 1400, 11, 9000, "RSTO", "ShADadR", "eth0", "rst", 6002, "curl", 604 },
	/* 10:00: clients of nginx, DNS over IPv4 and IPv6 */
	{ AT(7, 10, 0, 0, 0), AT(7, 10, 0, 2, 0), "tcp", "198.51.100.40", 60100, "10.0.0.5", 443,
	  18, 2600, 22, 27000, "SF", "ShADadFf", "eth0", "fin", 900, "nginx", 701 },
	{ AT(7, 10, 30, 0, 0), AT(7, 10, 30, 1, 0), "tcp", "203.0.113.200", 55000, "10.0.0.5", 80,
	  8, 900, 6, 1200, "SF", "ShADadFf", "eth0", "fin", 900, "nginx", 702 },
	{ AT(7, 10, 45, 0, 0), AT(7, 10, 45, 0, 50), "udp", "10.0.0.5", 41003, "10.0.0.1", 53,
	  6, 420, 6, 900, "SF", "Dd", "eth0", "idle_timeout", 0, NULL, 0 },
	{ AT(7, 10, 46, 0, 0), AT(7, 10, 46, 0, 10), "udp", "2001:db8::5", 41005, "2001:db8::53", 53,
	  2, 180, 2, 360, "SF", "Dd", "eth0", "idle_timeout", 0, NULL, 0 },
	/* 11:00 (the open partition): DNS, then a curl long poll, quiet since */
	{ AT(7, 11, 49, 59, 900), AT(7, 11, 49, 59, 920), "udp", "10.0.0.5", 41004, "10.0.0.1", 53,
	  2, 150, 2, 310, "SF", "Dd", "eth0", "idle_timeout", 0, NULL, 0 },
	{ AT(7, 11, 50, 0, 0), AT(7, 11, 50, 0, 500), "tcp", "10.0.0.5", 53500, "203.0.113.7", 443,
	  6, 900, 5, 4000, "S1", "ShADad", "eth0", "idle_timeout", 6100, "curl", 801 },
};

static const struct cb_conn cb_conns[] = {
	{ AT(-4, 3, 0, 0, 0), AT(-4, 3, 0, 50, 100), "out", "10.0.0.5", 51000, "192.0.2.50", 873,
	  3100, 0, "rsync", 7, 50000000, 20000, 34600, 17400, 2, 21000, OUT_FIN, "FIN_WAIT2", 101 },
	{ AT(1, 9, 0, 1, 0), AT(1, 9, 0, 1, 900), "out", "10.0.0.5", 52000, "203.0.113.7", 443,
	  1234, 1000, "curl", 9, 900, 8000, 12, 14, 0, 12000, OUT_FIN, "FIN_WAIT2", 102 },
	{ AT(1, 9, 0, 5, 0), AT(1, 9, 0, 20, 0), "out", "10.0.0.5", 52010, "151.101.2.132", 80,
	  2001, 42, "http", 11, 2000, 2040000, 900, 1500, 0, 8000, OUT_FIN, "FIN_WAIT2", 103 },
	{ AT(1, 9, 5, 0, 0), AT(1, 9, 35, 0, 0), "in", "198.51.100.23", 50123, "10.0.0.5", 22,
	  800, 0, "sshd", 5, 60000, 28000, 310, 340, 1, 35000, IN_LAST_ACK, "LAST_ACK", 104 },
	{ AT(3, 14, 5, 0, 0), AT(3, 14, 5, 3, 0), "in", "198.51.100.40", 60000, "10.0.0.5", 443,
	  900, 33, "nginx", 13, 28000, 1800, 25, 20, 0, 40000, IN_FIN, "FIN_WAIT2", 205 },
	{ AT(3, 14, 30, 0, 0), AT(3, 14, 30, 45, 50), "out", "10.0.0.5", 51200, "192.0.2.50", 873,
	  3188, 0, "rsync", 7, 49000000, 19000, 34000, 17000, 5, 20000, OUT_FIN, "FIN_WAIT2", 206 },
	{ AT(5, 22, 0, 0, 100), AT(5, 22, 0, 1, 100), "out", "10.0.0.5", 52100, "203.0.113.7", 443,
	  1299, 1000, "curl", 9, 700, 7000, 10, 12, 0, 11000, OUT_FIN, "FIN_WAIT2", 207 },
	{ AT(7, 2, 0, 0, 0), AT(7, 2, 20, 0, 0), "out", "10.0.0.5", 51300, "192.0.2.50", 873,
	  3301, 0, "rsync", 7, 50000000, 18000, 40000, 20000, 1800, 180000, OUT_FIN, "FIN_WAIT2", 401 },
	{ AT(7, 8, 0, 0, 0), AT(7, 8, 10, 0, 0), "out", "10.0.0.5", 53000, "203.0.113.7", 443,
	  4242, 1000, "python3", 21, 48000000, 9000, 34000, 17000, 12, 30000, OUT_FIN, "FIN_WAIT2", 502 },
	{ AT(7, 8, 5, 0, 0), AT(7, 8, 5, 30, 0), "out", "172.17.0.2", 40100, "203.0.113.7", 443,
	  5100, 0, "node", 31, 5000, 66000, 50, 60, 0, 25000, OUT_FIN, "FIN_WAIT2", 503 },
	{ AT(7, 9, 0, 0, 0), AT(7, 9, 0, 0, 1), "out", "10.0.0.5", 53100, "198.51.100.99", 8443,
	  6001, 1000, "curl", 9, 0, 0, 1, 1, 0, 0, "SYN_SENT>CLOSE", "SYN_SENT", 601 },
	{ AT(7, 9, 1, 0, 0), AT(7, 9, 1, 10, 0), "out", "10.0.0.5", 53200, "203.0.113.99", 443,
	  4242, 1000, "python3", 21, 0, 0, 4, 0, 3, 0, "SYN_SENT>CLOSE", "SYN_SENT", 602 },
	{ AT(7, 9, 2, 0, 0), AT(7, 9, 2, 0, 60), "out", "10.0.0.5", 53300, "203.0.113.7", 443,
	  4242, 1000, "python3", 21, 0, 0, 2, 2, 0, 30000, "SYN_SENT>ESTABLISHED>CLOSE",
	  "ESTABLISHED", 603 },
	{ AT(7, 9, 3, 0, 0), AT(7, 9, 3, 2, 0), "out", "10.0.0.5", 53400, "203.0.113.7", 443,
	  6002, 1000, "curl", 9, 800, 8200, 10, 11, 0, 12000, "SYN_SENT>ESTABLISHED>CLOSE",
	  "ESTABLISHED", 604 },
	{ AT(7, 10, 0, 0, 0), AT(7, 10, 0, 2, 0), "in", "198.51.100.40", 60100, "10.0.0.5", 443,
	  900, 33, "nginx", 13, 25000, 1500, 22, 18, 0, 40000, IN_FIN, "FIN_WAIT2", 701 },
	{ AT(7, 10, 30, 0, 0), AT(7, 10, 30, 1, 0), "in", "203.0.113.200", 55000, "10.0.0.5", 80,
	  900, 33, "nginx", 13, 600, 400, 6, 8, 0, 60000, IN_LAST_ACK, "LAST_ACK", 702 },
};

/* Inbound sockets become ESTABLISHED before accept(): no owner yet. A
 * listener has no owner either, and its remote side is the wildcard. */
static const struct cb_state cb_states[] = {
	{ AT(-4, 3, 0, 0, 21), "out", "10.0.0.5", 51000, "192.0.2.50", 873,
	  "SYN_SENT", "ESTABLISHED", 3100, "rsync", 101 },
	{ AT(1, 9, 0, 1, 12), "out", "10.0.0.5", 52000, "203.0.113.7", 443,
	  "SYN_SENT", "ESTABLISHED", 1234, "curl", 102 },
	{ AT(1, 9, 0, 5, 8), "out", "10.0.0.5", 52010, "151.101.2.132", 80,
	  "SYN_SENT", "ESTABLISHED", 2001, "http", 103 },
	{ AT(1, 9, 5, 0, 30), "in", "198.51.100.23", 50123, "10.0.0.5", 22,
	  "SYN_RECV", "ESTABLISHED", 0, NULL, 104 },
	{ AT(3, 14, 0, 0, 0), "in", "0.0.0.0", 0, "0.0.0.0", 443, "LISTEN", "CLOSE", 0, NULL, 201 },
	{ AT(3, 14, 0, 0, 1), "in", "0.0.0.0", 0, "0.0.0.0", 80, "LISTEN", "CLOSE", 0, NULL, 202 },
	{ AT(3, 14, 0, 1, 0), "in", "0.0.0.0", 0, "0.0.0.0", 443, "CLOSE", "LISTEN", 0, NULL, 203 },
	{ AT(3, 14, 0, 1, 1), "in", "0.0.0.0", 0, "0.0.0.0", 80, "CLOSE", "LISTEN", 0, NULL, 204 },
	{ AT(3, 14, 5, 0, 10), "in", "198.51.100.40", 60000, "10.0.0.5", 443,
	  "SYN_RECV", "ESTABLISHED", 0, NULL, 205 },
	{ AT(3, 14, 30, 0, 20), "out", "10.0.0.5", 51200, "192.0.2.50", 873,
	  "SYN_SENT", "ESTABLISHED", 3188, "rsync", 206 },
	{ AT(5, 22, 0, 0, 111), "out", "10.0.0.5", 52100, "203.0.113.7", 443,
	  "SYN_SENT", "ESTABLISHED", 1299, "curl", 207 },
	{ AT(6, 20, 0, 0, 40), "in", "198.51.100.23", 50500, "10.0.0.5", 22,
	  "SYN_RECV", "ESTABLISHED", 0, NULL, 301 },
	{ AT(7, 2, 0, 0, 150), "out", "10.0.0.5", 51300, "192.0.2.50", 873,
	  "SYN_SENT", "ESTABLISHED", 3301, "rsync", 401 },
	{ AT(7, 7, 58, 0, 0), "in", "::", 0, "::", 8000, "CLOSE", "LISTEN", 0, NULL, 501 },
	{ AT(7, 8, 0, 0, 30), "out", "10.0.0.5", 53000, "203.0.113.7", 443,
	  "SYN_SENT", "ESTABLISHED", 4242, "python3", 502 },
	{ AT(7, 8, 5, 0, 25), "out", "172.17.0.2", 40100, "203.0.113.7", 443,
	  "SYN_SENT", "ESTABLISHED", 5100, "node", 503 },
	{ AT(7, 8, 15, 0, 0), "in", "::", 0, "::", 8000, "LISTEN", "CLOSE", 0, NULL, 501 },
	{ AT(7, 9, 2, 0, 30), "out", "10.0.0.5", 53300, "203.0.113.7", 443,
	  "SYN_SENT", "ESTABLISHED", 4242, "python3", 603 },
	{ AT(7, 9, 3, 0, 12), "out", "10.0.0.5", 53400, "203.0.113.7", 443,
	  "SYN_SENT", "ESTABLISHED", 6002, "curl", 604 },
	{ AT(7, 10, 0, 0, 10), "in", "198.51.100.40", 60100, "10.0.0.5", 443,
	  "SYN_RECV", "ESTABLISHED", 0, NULL, 701 },
	{ AT(7, 10, 30, 0, 20), "in", "203.0.113.200", 55000, "10.0.0.5", 80,
	  "SYN_RECV", "ESTABLISHED", 0, NULL, 702 },
	{ AT(7, 11, 50, 0, 12), "out", "10.0.0.5", 53500, "203.0.113.7", 443,
	  "SYN_SENT", "ESTABLISHED", 6100, "curl", 801 },
};

/* A long TCP flow as the kernel exports it: one row per --active-timeout
 * (60 s) interval, history and state of the connection so far, FIN in the
 * last one. Every interval carries the same counts. */
static size_t cb_intervals(struct schema_row *out, struct cb_flow f, int n)
{
	int64_t start = f.ts;

	for (int i = 0; i < n; i++) {
		bool last = i == n - 1;

		f.ts = start + i * MIN;
		f.ts_end = f.ts + 59900 * MS;
		f.conn_state = last ? "SF" : "S1";
		f.history = last ? "ShADadFf" : "ShADad";
		f.end_reason = last ? "fin" : "active_timeout";
		out[i] = cb_flow_row(&f);
	}
	return (size_t)n;
}

/* 192.0.2.66 probes 13 ports of 10.0.0.5, 100 ms apart: open ones answer
 * SYN+ACK and get the scanner's RST (RSTO, no data), closed ones a RST
 * (REJ), filtered ones nothing (S0, the SYN sent twice). The probes never
 * become sockets: no connections, no tcp_states. */
static size_t cb_scan(struct schema_row *out)
{
	static const struct {
		uint16_t port;
		char kind; /* o(pen), c(losed), f(iltered) */
	} probes[] = { { 21, 'c' },  { 22, 'o' },   { 23, 'c' },   { 25, 'c' },   { 80, 'o' },
		       { 110, 'c' }, { 139, 'c' },  { 443, 'o' },  { 445, 'f' },  { 3306, 'c' },
		       { 3389, 'f' }, { 5432, 'c' }, { 8080, 'c' } };
	size_t n = sizeof(probes) / sizeof(probes[0]);

	for (size_t i = 0; i < n; i++) {
		struct cb_flow f = { .proto = "tcp", .orig = "192.0.2.66", .oport = 61000,
				     .resp = "10.0.0.5", .rport = probes[i].port, .ifname = "eth0" };

		f.ts = AT(7, 3, 0, 0, 0) + (int64_t)i * 100 * MS;
		f.ts_end = f.ts + MS;
		f.end_reason = "rst";
		switch (probes[i].kind) {
		case 'o':
			f.opkts = 2, f.obytes = 84, f.rpkts = 1, f.rbytes = 44;
			f.conn_state = "RSTO", f.history = "ShR";
			break;
		case 'c':
			f.opkts = 1, f.obytes = 44, f.rpkts = 1, f.rbytes = 40;
			f.conn_state = "REJ", f.history = "Sr";
			break;
		default:
			f.opkts = 2, f.obytes = 88, f.rpkts = 0, f.rbytes = 0;
			f.conn_state = "S0", f.history = "S", f.end_reason = "idle_timeout";
			f.ts_end = f.ts + 1000 * MS;
			break;
		}
		out[i] = cb_flow_row(&f);
	}
	return n;
}

int fixture_write_cookbook(const char *dir)
{
	struct schema_row rows[COOKBOOK_FLOWS + COOKBOOK_CONNECTIONS + COOKBOOK_TCP_STATES];
	struct schema_row part[sizeof(rows) / sizeof(rows[0])];
	const struct cb_flow backup = { AT(7, 2, 0, 0, 0), 0, "tcp", "10.0.0.5", 51300,
					"192.0.2.50", 873, 2000, 2600000, 1000, 52000, NULL,
					NULL, "eth0", NULL, 3301, "rsync", 401 };
	const struct cb_flow upload = { AT(7, 8, 0, 0, 0), 0, "tcp", "10.0.0.5", 53000,
					"203.0.113.7", 443, 3400, 4900000, 1700, 70000, NULL,
					NULL, "eth0", NULL, 4242, "python3", 502 };
	size_t n = 0, parts = 0;
	int64_t period = INT64_MIN;
	int err = 0;

	for (size_t i = 0; i < sizeof(cb_flows) / sizeof(cb_flows[0]); i++)
		rows[n++] = cb_flow_row(&cb_flows[i]);
	n += cb_intervals(rows + n, backup, 20);
	n += cb_scan(rows + n);
	n += cb_intervals(rows + n, upload, 10);
	for (size_t i = 0; i < sizeof(cb_conns) / sizeof(cb_conns[0]); i++)
		rows[n++] = cb_conn_row(&cb_conns[i]);
	for (size_t i = 0; i < sizeof(cb_states) / sizeof(cb_states[0]); i++)
		rows[n++] = cb_state_row(&cb_states[i]);
	if (n != sizeof(rows) / sizeof(rows[0])) {
		fprintf(stderr, "fixture: cookbook: %zu rows, want %zu\n", n,
			sizeof(rows) / sizeof(rows[0]));
		return -EINVAL;
	}

	/* One partition per hour that has rows, in time order; within one,
	 * rows in the order above. The last hour's stays open. */
	for (;;) {
		int64_t next = INT64_MAX;
		size_t k = 0;

		for (size_t i = 0; i < n; i++) {
			int64_t p = partition_period_start(cb_written(&rows[i]), HOUR);

			if (p > period && p < next)
				next = p;
		}
		if (next == INT64_MAX)
			break;
		for (size_t i = 0; i < n; i++)
			if (partition_period_start(cb_written(&rows[i]), HOUR) == next)
				part[k++] = rows[i];
		period = next;
		parts++;
		err = write_partition(dir, period, part, k, parts < COOKBOOK_PARTITIONS);
		if (err)
			return err;
	}
	if (parts != COOKBOOK_PARTITIONS) {
		fprintf(stderr, "fixture: cookbook: %zu partitions, want %d\n", parts,
			COOKBOOK_PARTITIONS);
		return -EINVAL;
	}
	return 0;
}
