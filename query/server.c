/*
 * The query server (server.h): the socket, its threads, and routing.
 *
 * Threads:
 *   listener    polls the listening socket, the stop pipe and a wake
 *               eventfd; accepts; hands each connection to an idle
 *               connection thread (starting one if fewer than
 *               max_connections exist) or, at max_connections, answers 503
 *               itself and lingers briefly so the client reads it. While
 *               queries run it also polls their clients every 50 ms and
 *               cancels the query of a client that hung up (POLLHUP: the
 *               peer closed; a half-close with shutdown(SHUT_WR) is not a
 *               hang-up). It does this rather than the span tables'
 *               interrupt callback because a query that reads no partition
 *               (a recursive CTE, a sort) never calls that callback.
 *   connection  at most max_connections, started on demand and kept: each
 *               serves one connection at a time (keep-alive: request after
 *               request) and runs its queries itself after taking a slot,
 *               in the slot's sandbox (max_queries slots, each with one
 *               sandbox kept from query to query: the sandboxes and their
 *               cached partition handles are bounded by max_queries, not
 *               by the number of connections).
 *
 * Invariants:
 *  1. conns_open (pending + being served) <= max_connections, and
 *     slots_used <= max_queries; both under lock.
 *  2. A slot's sandbox is cancelled only while slot->running, i.e. after
 *     sandbox_prepare (which clears the cancel flag) — so neither a stop
 *     nor a hang-up is forgotten.
 *  3. Every blocking wait watches stop_pipe[0]: once query_server_stop has
 *     written it, every thread returns promptly; running queries are
 *     cancelled; nothing waits for a client.
 *  4. The socket file is unlinked at stop only if it is still the one we
 *     bound (same device and inode).
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "serverInt.h"
#include "stats_vtab.h"

#define WATCH_MS 50        /* how often running queries' clients are polled */
#define LINGER_MAX 32      /* rejected connections lingering at once */
#define LINGER_MS 1000
#define REFUSAL_LINGER_MS 1000

__attribute__((format(printf, 3, 4))) static void fail(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

static void log_error(const char *what, int err)
{
	fprintf(stderr, "flowstored: error: query server: %s: %s\n", what, strerror(err));
}

/* Threads of the server take no signals: the daemon's loop handles them. */
static void block_signals(void)
{
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
}

/* ---- slots ------------------------------------------------------------------- */

static struct timespec deadline_in(int64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

int server_slot_take(struct query_server *srv, int fd, int64_t wait_ms, struct query_slot **out)
{
	struct timespec until = deadline_in(wait_ms);
	int rc = 0;

	pthread_mutex_lock(&srv->lock);
	while (srv->slots_used >= srv->cfg.max_queries && !srv->stopping) {
		if (pthread_cond_timedwait(&srv->slot_cond, &srv->lock, &until) == ETIMEDOUT)
			break;
	}
	if (srv->stopping) {
		rc = -ECANCELED;
	} else if (srv->slots_used >= srv->cfg.max_queries) {
		rc = -EBUSY;
	} else {
		for (unsigned i = 0; i < srv->cfg.max_queries; i++) {
			struct query_slot *s = &srv->slots[i];

			if (s->used)
				continue;
			*s = (struct query_slot){ .used = true, .fd = fd, .sb = s->sb };
			*out = s;
			break;
		}
		srv->slots_used++;
		counter_add(&srv->counters.queries_running, 1);
	}
	pthread_mutex_unlock(&srv->lock);
	return rc;
}

/* The statement is prepared: from now on a stop or a hang-up cancels it. */
int server_slot_running(struct query_server *srv, struct query_slot *slot)
{
	uint64_t one = 1;
	int rc = 0;

	pthread_mutex_lock(&srv->lock);
	if (srv->stopping)
		rc = -ECANCELED;
	else
		slot->running = true;
	pthread_mutex_unlock(&srv->lock);
	if (!rc && write(srv->wake_fd, &one, sizeof(one)) < 0)
		(void)0; /* full counter: the listener is awake anyway */
	return rc;
}

bool server_slot_client_gone(struct query_server *srv, struct query_slot *slot)
{
	bool gone;

	pthread_mutex_lock(&srv->lock);
	gone = slot->client_gone;
	pthread_mutex_unlock(&srv->lock);
	return gone;
}

void server_slot_release(struct query_server *srv, struct query_slot *slot)
{
	pthread_mutex_lock(&srv->lock);
	*slot = (struct query_slot){ .fd = -1, .sb = slot->sb };
	srv->slots_used--;
	atomic_fetch_sub_explicit(&srv->counters.queries_running, 1, memory_order_relaxed);
	pthread_cond_signal(&srv->slot_cond);
	pthread_mutex_unlock(&srv->lock);
}

void server_count_response(struct query_server *srv, int status)
{
	if (status >= 100 && status < 600)
		counter_add(&srv->counters.requests[status / 100 - 1], 1);
}

/* ---- sandboxes ------------------------------------------------------------------ */

int server_slot_sandbox(struct query_server *srv, struct query_slot *slot, struct sandbox **out)
{
	struct sandbox_limits limits = { .max_sql_bytes = srv->cfg.max_sql_bytes };
	struct sandbox *sb;
	char err[256] = "";
	sqlite3 *db;

	if (slot->sb) {
		*out = slot->sb;
		return 0;
	}
	if (sandbox_open(&limits, &sb, err, sizeof(err))) {
		fprintf(stderr, "flowstored: error: query server: cannot open a sandbox: %s\n", err);
		return -ENOMEM;
	}
	db = sandbox_db(sb);
	if (span_register(db, srv->spans, sandbox_interrupted, sb) != SQLITE_OK ||
	    stats_vtab_register(db, server_stats_source, srv) != SQLITE_OK) {
		fprintf(stderr, "flowstored: error: query server: cannot register tables: %s\n",
			sqlite3_errmsg(db));
		sandbox_close(sb);
		return -EIO;
	}
	/* Under the lock: the listener and stop read slot->sb there. */
	pthread_mutex_lock(&srv->lock);
	slot->sb = sb;
	pthread_mutex_unlock(&srv->lock);
	*out = sb;
	return 0;
}

/* ---- one connection ------------------------------------------------------------------ */

static void method_not_allowed(struct http_conn *c, const char *allow, bool *keep)
{
	char extra[64];
	char msg[96];

	snprintf(extra, sizeof(extra), "Allow: %s\r\n", allow);
	snprintf(msg, sizeof(msg), "%s is not allowed here; use %s",
		 http_method_str(c->req.method), allow);
	if (http_respond_error(c, 405, "method_not_allowed", msg, *keep, extra))
		*keep = false;
}

static void route(struct worker *w, struct http_conn *c, bool *keep)
{
	struct query_server *srv = w->srv;
	const char *path = c->req.path;
	bool get = c->req.method == HTTP_GET;

	if (strcmp(path, "/query") == 0) {
		if (get || c->req.method == HTTP_POST)
			server_query(w, c, keep);
		else
			method_not_allowed(c, "GET, POST", keep);
		return;
	}
	if (strcmp(path, "/tables") && strcmp(path, "/health") && strcmp(path, "/stats") &&
	    strcmp(path, "/metrics")) {
		char msg[192];

		snprintf(msg, sizeof(msg), "no such endpoint '%.64s'; there are /query, /tables, "
			 "/health, /stats, /metrics", path);
		if (http_respond_error(c, 404, "not_found", msg, *keep, NULL))
			*keep = false;
		return;
	}
	if (!get)
		method_not_allowed(c, "GET", keep);
	else if (strcmp(path, "/tables") == 0)
		server_tables(w, c, keep);
	else if (strcmp(path, "/health") == 0)
		server_health(srv, c, keep);
	else if (strcmp(path, "/stats") == 0)
		server_stats_json(srv, c, keep);
	else
		server_metrics(srv, c, keep);
}

/* A request we will not read to its end: answer, then close. */
static void refuse(struct query_server *srv, struct http_conn *c, int status)
{
	const struct query_server_config *cfg = &srv->cfg;
	char msg[160];
	const char *code = "bad_request";

	switch (status) {
	case 408:
		code = "request_timeout";
		snprintf(msg, sizeof(msg), "the request did not arrive whole within %lld ms",
			 (long long)cfg->request_timeout_ms);
		break;
	case 413:
		code = "too_large";
		snprintf(msg, sizeof(msg), "the request body is larger than %zu bytes",
			 cfg->max_sql_bytes);
		break;
	case 414:
		code = "uri_too_long";
		snprintf(msg, sizeof(msg), "the request line is longer than %zu bytes; send long "
			 "SQL in the body of a POST", cfg->max_header_bytes);
		break;
	case 431:
		code = "headers_too_large";
		snprintf(msg, sizeof(msg), "the request line and headers are larger than %zu bytes",
			 cfg->max_header_bytes);
		break;
	case 500:
		code = "internal";
		snprintf(msg, sizeof(msg), "out of memory");
		break;
	default:
		snprintf(msg, sizeof(msg), "malformed HTTP request");
		break;
	}
	/* The request's version is not known: answer as HTTP/1.1 with a length. */
	c->req.http_major = 1;
	c->req.http_minor = 1;
	if (http_respond_error(c, status, code, msg, false, NULL) == 0 && status != 408)
		http_linger(c, REFUSAL_LINGER_MS);
}

static void count_status(void *srv, int status)
{
	server_count_response(srv, status);
}

static void serve_connection(struct worker *w, int fd)
{
	struct query_server *srv = w->srv;
	struct http_conn *c = malloc(sizeof(*c));

	if (!c)
		return;
	http_conn_init(c, fd, srv->stop_pipe[0], srv->cfg.request_timeout_ms,
		       srv->cfg.max_header_bytes, srv->cfg.max_sql_bytes);
	c->on_status = count_status;
	c->status_ctx = srv;
	for (;;) {
		int rc = http_read_request(c);
		bool keep;

		if (rc == HTTP_CLOSE)
			break;
		if (rc) {
			refuse(srv, c, rc);
			break;
		}
		keep = c->req.keep_alive;
		route(w, c, &keep);
		if (!keep)
			break;
	}
	http_conn_free(c);
	free(c);
}

/* Wait for a pending connection; -1 when stopping. */
static int take_connection(struct query_server *srv)
{
	int fd = -1;

	pthread_mutex_lock(&srv->lock);
	while (!srv->npending && !srv->stopping) {
		srv->idle_workers++;
		pthread_cond_wait(&srv->conn_cond, &srv->lock);
		srv->idle_workers--;
	}
	if (!srv->stopping) {
		fd = srv->pending[srv->pending_head];
		srv->pending_head = (srv->pending_head + 1) % srv->cfg.max_connections;
		srv->npending--;
	}
	pthread_mutex_unlock(&srv->lock);
	return fd;
}

static void connection_done(struct query_server *srv, int fd)
{
	close(fd);
	pthread_mutex_lock(&srv->lock);
	srv->conns_open--;
	atomic_fetch_sub_explicit(&srv->counters.connections_open, 1, memory_order_relaxed);
	pthread_mutex_unlock(&srv->lock);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int fd;

	block_signals();
	while ((fd = take_connection(w->srv)) >= 0) {
		serve_connection(w, fd);
		connection_done(w->srv, fd);
	}
	return NULL;
}

/* ---- the listener --------------------------------------------------------------------- */

struct lingering {
	int fd;
	int64_t until_ms;
};

struct listener {
	struct query_server *srv;
	struct lingering linger[LINGER_MAX];
	unsigned nlinger;
	int64_t accept_paused_until, next_watch;
};

/* At max_connections: 503 at once, then let the client read it. */
static void reject(struct listener *l, int fd)
{
	static const char body[] =
		"{\"error\":{\"code\":\"busy\",\"message\":\"too many connections; try again\"}}\n";
	char resp[512];
	int n = snprintf(resp, sizeof(resp),
			 "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
			 "Content-Length: %zu\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s",
			 sizeof(body) - 1, body);

	counter_add(&l->srv->counters.connections_rejected, 1);
	server_count_response(l->srv, 503);
	if (send(fd, resp, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n ||
	    l->nlinger == LINGER_MAX) {
		close(fd);
		return;
	}
	shutdown(fd, SHUT_WR);
	l->linger[l->nlinger++] = (struct lingering){ fd, http_now_ms() + LINGER_MS };
}

static void drop_linger(struct listener *l, unsigned i)
{
	close(l->linger[i].fd);
	l->linger[i] = l->linger[--l->nlinger];
}

/* Read and discard what rejected clients send, until they close or time is up. */
static void service_linger(struct listener *l, const struct pollfd *pfd)
{
	int64_t now = http_now_ms();

	for (unsigned i = l->nlinger; i-- > 0;) {
		char sink[4096];
		ssize_t n = 1;

		if (pfd[i].revents)
			n = recv(l->linger[i].fd, sink, sizeof(sink), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN) || now >= l->linger[i].until_ms)
			drop_linger(l, i);
	}
}

/* Hand fd to a connection thread, starting one if none is idle. */
static void dispatch(struct listener *l, int fd)
{
	struct query_server *srv = l->srv;
	const struct query_server_config *cfg = &srv->cfg;
	bool rejected = false;

	pthread_mutex_lock(&srv->lock);
	if (srv->conns_open >= cfg->max_connections) {
		rejected = true;
	} else {
		unsigned tail = (srv->pending_head + srv->npending) % cfg->max_connections;

		srv->pending[tail] = fd;
		srv->npending++;
		if (srv->idle_workers < srv->npending && srv->nworkers < cfg->max_connections) {
			struct worker *w = &srv->workers[srv->nworkers];

			w->srv = srv;
			if (pthread_create(&w->thread, NULL, worker_main, w) == 0) {
				srv->nworkers++;
			} else if (srv->nworkers == 0) {
				srv->npending--; /* nobody could ever take it */
				rejected = true;
			}
		}
		if (!rejected) {
			srv->conns_open++;
			counter_add(&srv->counters.connections_open, 1);
			pthread_cond_signal(&srv->conn_cond);
		}
	}
	pthread_mutex_unlock(&srv->lock);
	counter_add(&srv->counters.connections_total, 1);
	if (rejected)
		reject(l, fd);
}

static void accept_all(struct listener *l)
{
	for (;;) {
		int fd = accept4(l->srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			dispatch(l, fd);
			continue;
		}
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			log_error("accept", errno);
			l->accept_paused_until = http_now_ms() + 100;
		}
		return; /* EAGAIN, or a connection that died in the backlog */
	}
}

/* Cancel the queries whose clients hung up. */
static void watch_clients(struct query_server *srv)
{
	struct pollfd *pfd = srv->watch_pfd;
	unsigned *idx = srv->watch_idx, n = 0;

	pthread_mutex_lock(&srv->lock);
	for (unsigned i = 0; i < srv->cfg.max_queries; i++) {
		struct query_slot *s = &srv->slots[i];

		if (s->used && s->running && !s->client_gone) {
			pfd[n] = (struct pollfd){ .fd = s->fd, .events = 0 };
			idx[n++] = i;
		}
	}
	if (n && poll(pfd, n, 0) > 0) {
		for (unsigned k = 0; k < n; k++) {
			struct query_slot *s = &srv->slots[idx[k]];

			if (pfd[k].revents & (POLLHUP | POLLERR | POLLNVAL)) {
				s->client_gone = true;
				sandbox_cancel(s->sb);
			}
		}
	}
	pthread_mutex_unlock(&srv->lock);
}

static int listener_timeout(const struct listener *l, int64_t now, bool watching)
{
	int64_t t = -1;

	if (watching)
		t = l->next_watch > now ? l->next_watch - now : 0;
	for (unsigned i = 0; i < l->nlinger; i++) {
		int64_t left = l->linger[i].until_ms > now ? l->linger[i].until_ms - now : 0;

		if (t < 0 || left < t)
			t = left;
	}
	if (l->accept_paused_until > now && (t < 0 || l->accept_paused_until - now < t))
		t = l->accept_paused_until - now;
	return (int)t;
}

static void *listener_main(void *arg)
{
	struct listener l = { .srv = arg };
	struct query_server *srv = l.srv;

	block_signals();
	for (;;) {
		struct pollfd pfd[3 + LINGER_MAX];
		int64_t now = http_now_ms();
		bool watching = counter_get(&srv->counters.queries_running) > 0;
		uint64_t wakes;

		for (unsigned i = 0; i < l.nlinger; i++)
			pfd[i] = (struct pollfd){ .fd = l.linger[i].fd, .events = POLLIN };
		pfd[l.nlinger] = (struct pollfd){ .fd = srv->stop_pipe[0], .events = POLLIN };
		pfd[l.nlinger + 1] = (struct pollfd){ .fd = srv->wake_fd, .events = POLLIN };
		pfd[l.nlinger + 2] = (struct pollfd){
			.fd = l.accept_paused_until > now ? -1 : srv->listen_fd, .events = POLLIN
		};
		if (poll(pfd, l.nlinger + 3, listener_timeout(&l, now, watching)) < 0 &&
		    errno != EINTR) {
			log_error("poll", errno);
			break;
		}
		if (pfd[l.nlinger].revents)
			break;
		if (pfd[l.nlinger + 1].revents && read(srv->wake_fd, &wakes, sizeof(wakes)) < 0)
			(void)0;
		if (pfd[l.nlinger + 2].revents & POLLIN)
			accept_all(&l);
		service_linger(&l, pfd);
		now = http_now_ms();
		if (counter_get(&srv->counters.queries_running) > 0 && now >= l.next_watch) {
			watch_clients(srv);
			l.next_watch = now + WATCH_MS;
		}
	}
	while (l.nlinger)
		drop_linger(&l, 0);
	return NULL;
}

/* ---- the socket --------------------------------------------------------------------------- */

/* An existing path: a dead socket is removed; anything else is refused. */
static int claim_path(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, rc;

	if (lstat(path, &st)) {
		if (errno == ENOENT)
			return 0;
		fail(err, errlen, "cannot use %s: %s", path, strerror(errno));
		return -errno;
	}
	if (!S_ISSOCK(st.st_mode)) {
		fail(err, errlen, "%s exists and is not a socket; not replacing it", path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		fail(err, errlen, "socket: %s", strerror(errno));
		return -errno;
	}
	memcpy(addr.sun_path, path, strlen(path) + 1);
	rc = connect(fd, (struct sockaddr *)&addr, sizeof(addr));
	if (rc == 0 || errno == EAGAIN || errno == EINPROGRESS) {
		close(fd);
		fail(err, errlen, "something answers on %s (another flowstored?); not replacing it",
		     path);
		return -EADDRINUSE;
	}
	rc = errno;
	close(fd);
	if (rc != ECONNREFUSED) {
		fail(err, errlen, "cannot check the existing socket %s: %s", path, strerror(rc));
		return -rc;
	}
	if (unlink(path) && errno != ENOENT) {
		fail(err, errlen, "cannot remove the stale socket %s: %s", path, strerror(errno));
		return -errno;
	}
	return 0;
}

static int group_id(const char *name, gid_t *gid, char *err, size_t errlen)
{
	struct group gr, *found = NULL;
	char buf[16384];
	int rc = getgrnam_r(name, &gr, buf, sizeof(buf), &found);

	if (rc || !found) {
		fail(err, errlen, "--socket-group: no group named '%s'%s%s", name,
		     rc ? ": " : "", rc ? strerror(rc) : "");
		return -ENOENT;
	}
	*gid = found->gr_gid;
	return 0;
}

/* Bind with mode 0660 from the start: the file never exists with a wider
 * mode. umask is process-wide: the daemon starts the server before any
 * other thread creates files. */
static int bind_socket(struct query_server *srv, char *err, size_t errlen)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	const char *path = srv->socket_path;
	struct stat st;
	gid_t gid = (gid_t)-1;
	mode_t old;
	int rc;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		fail(err, errlen, "socket path %s is longer than %zu bytes (choose another with "
		     "--socket)", path, sizeof(addr.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(addr.sun_path, path, strlen(path) + 1);
	if (srv->cfg.socket_group && (rc = group_id(srv->cfg.socket_group, &gid, err, errlen)))
		return rc;
	if ((rc = claim_path(path, err, errlen)))
		return rc;
	srv->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (srv->listen_fd < 0) {
		fail(err, errlen, "socket: %s", strerror(errno));
		return -errno;
	}
	old = umask(0117);
	rc = bind(srv->listen_fd, (struct sockaddr *)&addr, sizeof(addr));
	umask(old);
	if (rc) {
		fail(err, errlen, "cannot bind %s: %s", path, strerror(errno));
		return -errno;
	}
	if (lstat(path, &st) == 0) {
		srv->sock_dev = st.st_dev;
		srv->sock_ino = st.st_ino;
	}
	if (chmod(path, 0660)) {
		fail(err, errlen, "cannot chmod %s: %s", path, strerror(errno));
		return -errno;
	}
	if (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid)) {
		fail(err, errlen, "cannot give %s to group %s: %s", path, srv->cfg.socket_group,
		     strerror(errno));
		return -errno;
	}
	if (listen(srv->listen_fd, 128)) {
		fail(err, errlen, "cannot listen on %s: %s", path, strerror(errno));
		return -errno;
	}
	return 0;
}

static void unlink_socket(struct query_server *srv)
{
	struct stat st;

	if (!srv->sock_ino || lstat(srv->socket_path, &st))
		return;
	if (st.st_dev == srv->sock_dev && st.st_ino == srv->sock_ino)
		unlink(srv->socket_path);
}

/* ---- start and stop ----------------------------------------------------------------------- */

static void fill_defaults(struct query_server_config *c)
{
	if (!c->max_queries)
		c->max_queries = 4;
	if (!c->max_connections)
		c->max_connections = 64;
	if (!c->max_timeout_ms)
		c->max_timeout_ms = 30000;
	if (!c->max_rows)
		c->max_rows = 100000;
	if (!c->max_sql_bytes)
		c->max_sql_bytes = 1 << 20;
	if (!c->max_header_bytes)
		c->max_header_bytes = 16 << 10;
	if (!c->request_timeout_ms)
		c->request_timeout_ms = 10000;
	if (!c->queue_wait_ms)
		c->queue_wait_ms = 2000;
}

static int init_sync(struct query_server *srv)
{
	pthread_condattr_t attr;
	int rc;

	pthread_mutex_init(&srv->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	rc = pthread_cond_init(&srv->conn_cond, &attr) || pthread_cond_init(&srv->slot_cond, &attr);
	pthread_condattr_destroy(&attr);
	return rc ? -ENOMEM : 0;
}

static void server_free(struct query_server *srv)
{
	/* Every thread is joined: the sandboxes are nobody's now. */
	for (unsigned i = 0; srv->slots && i < srv->cfg.max_queries; i++)
		sandbox_close(srv->slots[i].sb);
	for (unsigned i = 0; i < srv->npending; i++)
		close(srv->pending[(srv->pending_head + i) % srv->cfg.max_connections]);
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	unlink_socket(srv);
	for (int i = 0; i < 2; i++)
		if (srv->stop_pipe[i] >= 0)
			close(srv->stop_pipe[i]);
	if (srv->wake_fd >= 0)
		close(srv->wake_fd);
	span_set_free(srv->spans);
	pthread_cond_destroy(&srv->conn_cond);
	pthread_cond_destroy(&srv->slot_cond);
	pthread_mutex_destroy(&srv->lock);
	free(srv->pending);
	free(srv->workers);
	free(srv->slots);
	free(srv->watch_pfd);
	free(srv->watch_idx);
	free(srv->socket_path);
	free(srv->data_dir);
	free(srv);
}

static int start_listener(struct query_server *srv, char *err, size_t errlen)
{
	int rc = pthread_create(&srv->listener, NULL, listener_main, srv);

	if (rc) {
		fail(err, errlen, "cannot start the listener thread: %s", strerror(rc));
		return -rc;
	}
	srv->listener_started = true;
	return 0;
}

int query_server_start(const struct query_server_config *cfg, struct query_server **out,
		       char *err, size_t errlen)
{
	struct query_server *srv = calloc(1, sizeof(*srv));
	int rc = -ENOMEM;

	if (!srv) {
		fail(err, errlen, "out of memory");
		return -ENOMEM;
	}
	srv->cfg = *cfg;
	fill_defaults(&srv->cfg);
	srv->listen_fd = srv->wake_fd = srv->stop_pipe[0] = srv->stop_pipe[1] = -1;
	srv->socket_path = strdup(cfg->socket_path ? cfg->socket_path : "");
	srv->data_dir = strdup(cfg->data_dir ? cfg->data_dir : "");
	srv->pending = calloc(srv->cfg.max_connections, sizeof(*srv->pending));
	srv->workers = calloc(srv->cfg.max_connections, sizeof(*srv->workers));
	srv->slots = calloc(srv->cfg.max_queries, sizeof(*srv->slots));
	srv->watch_pfd = calloc(srv->cfg.max_queries, sizeof(*srv->watch_pfd));
	srv->watch_idx = calloc(srv->cfg.max_queries, sizeof(*srv->watch_idx));
	srv->started_ms = http_now_ms();
	if (init_sync(srv) || !srv->socket_path || !srv->data_dir || !srv->pending ||
	    !srv->workers || !srv->slots || !srv->watch_pfd || !srv->watch_idx) {
		fail(err, errlen, "out of memory");
		goto fail;
	}
	srv->cfg.socket_path = srv->socket_path;
	srv->cfg.data_dir = srv->data_dir;
	if (pipe2(srv->stop_pipe, O_CLOEXEC | O_NONBLOCK) ||
	    (srv->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		rc = -errno;
		fail(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	rc = span_set_open(srv->data_dir, &srv->spans);
	if (rc) {
		fail(err, errlen, "cannot read the data dir %s: %s", srv->data_dir, strerror(-rc));
		goto fail;
	}
	rc = bind_socket(srv, err, errlen);
	if (rc || (rc = start_listener(srv, err, errlen)))
		goto fail;
	*out = srv;
	return 0;
fail:
	server_free(srv);
	return rc;
}

void query_server_stop(struct query_server *srv)
{
	if (!srv)
		return;
	pthread_mutex_lock(&srv->lock);
	srv->stopping = true;
	for (unsigned i = 0; i < srv->cfg.max_queries; i++)
		if (srv->slots[i].used && srv->slots[i].running)
			sandbox_cancel(srv->slots[i].sb);
	pthread_cond_broadcast(&srv->conn_cond);
	pthread_cond_broadcast(&srv->slot_cond);
	pthread_mutex_unlock(&srv->lock);
	if (write(srv->stop_pipe[1], "x", 1) < 0)
		log_error("stop pipe", errno);
	if (srv->listener_started)
		pthread_join(srv->listener, NULL);
	/* No more workers start once the listener is gone. */
	for (unsigned i = 0; i < srv->nworkers; i++)
		pthread_join(srv->workers[i].thread, NULL);
	server_free(srv);
}
