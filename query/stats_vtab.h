/*
 * The `stats` table: the daemon's counters as rows (name, labels, value,
 * kind, help), read at query time through a callback so query/ never
 * reaches into the collector. Eponymous virtual table, read-only.
 *
 *   SELECT name, labels, value FROM stats WHERE name LIKE 'rows_%';
 */
#ifndef FLOWSTORE_STATS_VTAB_H
#define FLOWSTORE_STATS_VTAB_H

#include <stdint.h>

#include <sqlite3.h>

/* One counter: name as in Prometheus without the flowstore_ prefix
 * ("rows_written"), labels as Prometheus writes them ('table="flows"', ""
 * when none), kind "counter" or "gauge". */
typedef void (*qstat_emit_fn)(void *arg, const char *name, const char *labels,
			      const char *kind, const char *help, double value);

/* Calls emit once per counter; must be thread-safe (called from query
 * threads while the daemon runs). */
typedef void (*qstat_source_fn)(void *ctx, qstat_emit_fn emit, void *arg);

/* Register `stats` on db. source may be NULL (the table is then empty). */
int stats_vtab_register(sqlite3 *db, qstat_source_fn source, void *ctx);

#endif /* FLOWSTORE_STATS_VTAB_H */
