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

#endif /* FLOWSTORE_TEST_FIXTURE_H */
