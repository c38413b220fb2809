/*
 * SQL helper functions for the things people type, registered on every
 * query connection (all deterministic except where noted; documented with
 * examples in docs/sql.md):
 *
 *   ago('15m')            now minus a duration, ns since the epoch (not
 *                         deterministic: reads the clock once per statement)
 *   now_ns()              the current time, ns (once per statement)
 *   dur('1h30m')          a duration in ns: units ns us ms s m h d w, summed
 *   ts_iso(ts)            '2026-11-27T10:15:02.123456789Z' (ns kept)
 *   ts_iso(ts, 's'|'ms'|'us'|'ns')  with that precision
 *   ts_ns('2026-11-27T10:15:02Z') / ts_ns('2026-11-27 10:15') / ts_ns('2026-11-27')
 *                         ISO-8601 text (UTC, 'Z' or a ±hh:mm offset) to ns
 *   ts_sec(ts)            ts / 1e9 as REAL, for SQLite's date functions
 *   cidr_match(addr, '10.0.0.0/8')   1 if the address is in the prefix, else 0;
 *                         IPv4 and IPv6; an IPv4 address matches
 *                         '::ffff:10.0.0.0/104' too; NULL addr → NULL;
 *                         a malformed prefix is an error, not 0
 *   ip_family(addr)       4, 6, or NULL if not an address
 *
 * Bad arguments raise an SQL error with a message that says which argument
 * and why ("ago: bad duration 'x': expected a number and a unit such as 15m").
 */
#ifndef FLOWSTORE_FUNCTIONS_H
#define FLOWSTORE_FUNCTIONS_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

/* The clock ago() and now_ns() read: CLOCK_REALTIME ns unless a test sets
 * one. Process-wide; set before connections are opened. */
typedef int64_t (*qfunc_clock_fn)(void);
void qfunc_set_clock(qfunc_clock_fn fn);

/* 0 or an SQLite error code. */
int qfunc_register(sqlite3 *db);

/* Parsers the server shares (query parameters, flowq --since). 0, -EINVAL
 * (not a duration / time), or -ERANGE (does not fit in int64 ns). */
int qfunc_parse_duration(const char *text, int64_t *ns);
int qfunc_parse_time(const char *text, int64_t *ns);

/* ns as ts_iso() writes it, with digits (0, 3, 6 or 9) fraction digits:
 * "2026-11-27T10:15:02.123456789Z". Returns the length written, -EINVAL for
 * other digits, or -ENOSPC if len < QFUNC_TIME_MAX. (format.c's table uses it.) */
#define QFUNC_TIME_MAX 32
int qfunc_format_time(int64_t ns, int digits, char *buf, size_t len);

#endif /* FLOWSTORE_FUNCTIONS_H */
