/*
 * The query server: HTTP/1.1 on a Unix-domain socket, parsed with Debian's
 * http-parser, queries run on worker threads (never on the collector's
 * libuv loop), results streamed with chunked transfer encoding.
 *
 *   POST /query            SQL in the body (Content-Type ignored); query
 *                          parameters as below
 *   GET  /query?sql=...    same; parameters: format=table|csv|tsv|json|ndjson
 *                          (default json), timeout=SECONDS (lowers the budget,
 *                          never raises it past the server's maximum),
 *                          max_rows=N (lowers the cap)
 *   GET  /tables           every table and column: type and meaning (JSON;
 *                          format=table|csv|tsv|ndjson: one row per column)
 *   GET  /health           {"status":"ok", ...} (200)
 *   GET  /stats            the collector's and the server's counters (JSON)
 *   GET  /metrics          Prometheus text format 0.0.4
 *
 * Errors are JSON {"error":{"code":"...","message":"..."}} with a status that
 * says what went wrong: 400 bad SQL / bad request, 403 not a read, 404, 405,
 * 408 request not received in time, 411, 413 SQL/body/headers too large,
 * 414, 431, 500, 503 + Retry-After (too busy), 504 time budget spent.
 * An error after the first bytes of a result were sent ends the chunked
 * stream without its last chunk, so the client sees an incomplete transfer
 * (curl exits 18) rather than a short result that looks complete; the
 * first 64 KiB of a result are held back so that most errors still get
 * their status.
 *
 * Connections: keep-alive; each connection is served by one thread of a
 * bounded pool (max_connections; past it, 503 at once). A request must
 * arrive whole within request_timeout_ms, or 408 and close. Queries: at most
 * max_queries run at once; a request waits up to queue_wait_ms for a slot,
 * then 503 with Retry-After. A client that disconnects stops its query.
 *
 * As built (details in docs/operations.md):
 *  - a connection idle between requests for request_timeout_ms is closed
 *    without an answer; 408 only for a request that began;
 *  - request bodies may be chunked; Expect: 100-continue is honoured, and a
 *    too large Content-Length is refused (413) before the body is sent;
 *    sql= in a GET is bounded by max_header_bytes (414): long SQL goes in
 *    a POST body;
 *  - a result carries X-Flowstore-Rows and X-Flowstore-Truncated, as
 *    headers when it fits in 64 KiB, else as trailers of the chunked body;
 *  - the stats table, /stats and /metrics show the collector's counters
 *    (cfg.stats) and the server's own (query_server_stats).
 */
#ifndef FLOWSTORE_SERVER_H
#define FLOWSTORE_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "stats_vtab.h"

struct query_server_config {
	const char *socket_path;
	const char *data_dir;
	const char *socket_group; /* NULL: the daemon's group */
	unsigned max_queries;     /* 0 = 4 */
	unsigned max_connections; /* 0 = 64 */
	int64_t max_timeout_ms;   /* 0 = 30000: the most any query may run */
	uint64_t max_rows;        /* 0 = 100000: cap for table and json; csv/tsv/ndjson stream uncapped unless the request sets max_rows */
	size_t max_sql_bytes;     /* 0 = 1 MiB (body or sql= parameter) */
	size_t max_header_bytes;  /* 0 = 16 KiB, request line and headers together */
	int64_t request_timeout_ms; /* 0 = 10000 */
	int64_t queue_wait_ms;    /* 0 = 2000 */
	qstat_source_fn stats;    /* the collector's counters; may be NULL */
	void *stats_ctx;
};

struct query_server;

/* Bind the socket (an existing socket file is replaced only if nothing
 * answers on it), set its mode 0660 and group, start the threads. Binding
 * sets the process umask for a moment: start the server before threads
 * that create files.
 * 0, or a negative errno with a one-line reason in err. */
int query_server_start(const struct query_server_config *cfg, struct query_server **out,
		       char *err, size_t errlen);

/* Stop accepting, cancel running queries, join every thread, unlink the
 * socket. NULL is a no-op. */
void query_server_stop(struct query_server *srv);

/* The server's own counters (requests by status class, queries, errors by
 * kind, latency histogram) through the same emit callback as stats_vtab.h. */
void query_server_stats(struct query_server *srv, qstat_emit_fn emit, void *arg);

#endif /* FLOWSTORE_SERVER_H */
