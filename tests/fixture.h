/*
 * A small data dir whose every row is known, written through schema.h:
 * two partitions of 2024-01-01 (UTC), the first sealed, the second left
 * open, so queries read both kinds. The rows carry what output formats
 * must get right: NULLs, IPv6, a comma, a double quote and a tab in text.
 *
 *   raw-20240101T000000Z-0000.db  sealed  3 flows, 2 connections, 3 tcp_states
 *   raw-20240101T010000Z-0000.db  open    2 flows, 1 connection,  2 tcp_states
 *
 * The expected outputs in tests/fixtures/flowq/ are of these rows.
 */
#ifndef FLOWSTORE_TEST_FIXTURE_H
#define FLOWSTORE_TEST_FIXTURE_H

#define FIXTURE_T0 1704067200000000000LL /* 2024-01-01T00:00:00Z, ns */
#define FIXTURE_FLOWS 5
#define FIXTURE_CONNECTIONS 3
#define FIXTURE_TCP_STATES 5

/* Write the fixture into dir (which must exist and hold no partitions),
 * after schema_init(). 0 or a negative errno; a message on stderr. */
int fixture_write(const char *dir);

/*
 * The cookbook's data dir (docs/cookbook.md, checked by
 * tests/e2e_cookbook.sh): a week of one host, 10.0.0.5 / 2001:db8::5,
 * told as its rows — rsync backups to 192.0.2.50 (the last one with heavy
 * retransmits), curl and a python3 upload of 49 MB to 203.0.113.7, a
 * container reaching it through NAT (one flow on its veth, one on eth0),
 * sshd and nginx accepting, a port scan from 192.0.2.66, refused, timed-out
 * and reset connects, DNS to 10.0.0.1, 8.8.8.8 and 2001:db8::53,
 * listeners opening and closing, an ssh session and a curl still open.
 * One hourly partition per hour that has rows, from 2023-12-28T03 to
 * 2024-01-08T11; the last is left open, the others are sealed. The
 * recipes read it as if the time were COOKBOOK_NOW (the test puts that
 * instant where they say ago() or now_ns()).
 */
#define COOKBOOK_NOW 1704715200000000000LL /* 2024-01-08T12:00:00Z, ns */
#define COOKBOOK_FLOWS 68
#define COOKBOOK_CONNECTIONS 16
#define COOKBOOK_TCP_STATES 22
#define COOKBOOK_PARTITIONS 12

int fixture_write_cookbook(const char *dir);

#endif /* FLOWSTORE_TEST_FIXTURE_H */
