/*
 * The query server's private parts, shared by server.c (socket, threads,
 * routing), server_query.c (POST/GET /query) and server_info.c (/tables,
 * /health, /stats, /metrics and the counters). Nothing outside query/
 * includes this.
 */
#ifndef FLOWSTORE_SERVER_INT_H
#define FLOWSTORE_SERVER_INT_H

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "http.h"
#include "sandbox.h"
#include "server.h"
#include "span.h"

/* What became of a query, for queries_total{outcome=...}. */
enum query_outcome {
	OUTCOME_OK,
	OUTCOME_TRUNCATED,     /* ok, stopped at the row cap */
	OUTCOME_SQL_ERROR,
	OUTCOME_DENIED,
	OUTCOME_TOO_LARGE,
	OUTCOME_TIMEOUT,
	OUTCOME_CANCELLED,     /* client gone, or the server stopping */
	OUTCOME_RUNTIME_ERROR,
	OUTCOME_BUSY,          /* no slot within queue_wait_ms: 503 */
	OUTCOME_FAILED,        /* our fault: 500 */
	OUTCOME_N,
};

#define LATENCY_BUCKETS 14 /* the last is +Inf */

/* Relaxed atomics: many writers (connection threads), readers want
 * eventual values. */
struct server_counters {
	atomic_uint_fast64_t requests[5]; /* by status class, 1xx..5xx */
	atomic_uint_fast64_t queries[OUTCOME_N];
	atomic_uint_fast64_t latency[LATENCY_BUCKETS]; /* per bucket, not cumulative */
	atomic_uint_fast64_t latency_ns_total;
	atomic_uint_fast64_t rows_sent;
	atomic_uint_fast64_t connections_total;
	atomic_uint_fast64_t connections_rejected; /* 503 at max_connections */
	atomic_uint_fast64_t connections_open;     /* gauge */
	atomic_uint_fast64_t queries_running;      /* gauge */
};

/* A query slot: held by a connection thread while its query runs; the
 * flags under srv->lock. `running` is set only after sandbox_prepare (which
 * clears a cancel), so sandbox_cancel from another thread is never lost.
 * The slot owns a sandbox, opened by its first holder and kept for every
 * later one (one thread at a time: the holder), closed at stop: at most
 * max_queries sandboxes, whatever the number of connections. */
struct query_slot {
	bool used, running;
	bool client_gone; /* the listener saw the client hang up and cancelled */
	int fd;
	struct sandbox *sb;
};

/* A connection thread: serves one connection at a time. */
struct worker {
	struct query_server *srv;
	pthread_t thread;
};

struct query_server {
	struct query_server_config cfg; /* defaults filled in; strings below */
	char *socket_path, *data_dir;
	int listen_fd;
	int stop_pipe[2]; /* [0] readable once stopping: every poll watches it */
	int wake_fd;      /* eventfd: a query started, the listener watches clients */
	dev_t sock_dev;
	ino_t sock_ino;
	int64_t started_ms;
	struct span_set *spans;
	bool listener_started;
	pthread_t listener;

	pthread_mutex_t lock;
	pthread_cond_t conn_cond; /* a connection is pending, or stopping */
	pthread_cond_t slot_cond; /* a slot was freed, or stopping */
	bool stopping;
	int *pending;             /* accepted, not yet taken by a thread (ring) */
	unsigned pending_head, npending;
	unsigned conns_open;      /* pending + being served */
	struct worker *workers;   /* max_connections; nworkers started */
	unsigned nworkers, idle_workers;
	struct query_slot *slots; /* max_queries */
	unsigned slots_used;
	struct pollfd *watch_pfd; /* max_queries each: the listener's, for watch_clients */
	unsigned *watch_idx;

	struct server_counters counters;
};

static inline void counter_add(atomic_uint_fast64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline uint64_t counter_get(const atomic_uint_fast64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* server.c */
/* Wait up to wait_ms for a slot: 0, -EBUSY, or -ECANCELED (stopping). */
int server_slot_take(struct query_server *srv, int fd, int64_t wait_ms, struct query_slot **out);
/* The slot's sandbox, opened on first use. 0 or a negative errno. */
int server_slot_sandbox(struct query_server *srv, struct query_slot *slot, struct sandbox **out);
int server_slot_running(struct query_server *srv, struct query_slot *slot);
bool server_slot_client_gone(struct query_server *srv, struct query_slot *slot);
void server_slot_release(struct query_server *srv, struct query_slot *slot);
void server_count_response(struct query_server *srv, int status);

/* server_query.c: GET/POST /query. Sets *keep to false when the connection
 * must close after it. */
void server_query(struct worker *w, struct http_conn *c, bool *keep);

/* server_info.c */
void server_tables(struct worker *w, struct http_conn *c, bool *keep);
void server_health(struct query_server *srv, struct http_conn *c, bool *keep);
void server_stats_json(struct query_server *srv, struct http_conn *c, bool *keep);
void server_metrics(struct query_server *srv, struct http_conn *c, bool *keep);
void server_count_query(struct query_server *srv, enum query_outcome o, int64_t elapsed_ns);
/* The collector's counters then the server's: what the stats table shows. */
void server_stats_source(void *srv, qstat_emit_fn emit, void *arg);

#endif /* FLOWSTORE_SERVER_INT_H */
