/*
 * test_bpf_load: the conn BPF program on the real kernel. Loads and attaches
 * the skeleton, makes TCP connections over 127.0.0.1 and ::1, and checks
 * what comes out of the ring buffer: every state transition, one connection
 * record per connected socket with its counters, path and owner, the owner
 * of a passive socket being the first task to send, receive or close on it
 * (the default) or, with conn_accept loaded (--accept-owner syscall), the
 * task whose accept() returned it; that `conns` forgets
 * every socket at its close; that the loss counters count; and both ring
 * buffer wakeup policies.
 *
 * Needs root and kernel BTF; skips (fails under CI=true) without them.
 * Other TCP traffic on the machine reaches the same ring buffer: records are
 * kept only when a port of ours is on one side, then told apart by the
 * socket cookies of our sockets (SO_COOKIE), so it is ignored.
 *
 * The accepting side of the full exchange runs in a forked child renamed
 * ACCEPTER_COMM, so the test tells the accepting task from the client and
 * from whatever task runs the softirq. A child reports through a pipe and
 * exits; it never calls cmocka (a failed assert there would unwind into a
 * copy of the test runner).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

#include <bpf/libbpf.h>

#include "conn.skel.h"
#include "conn_table.h"
#include "events.h"
#include "skip.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

#define BTF_PATH "/sys/kernel/btf/vmlinux"
#define RING_BYTES (1u << 20)
#define CONNS_DEFAULT 65536
#define POLL_BUDGET_MS 5000
#define MAX_STATES 128
#define MAX_CONNS 64

/* The full exchange: the client sends K, the accepter answers M. */
#define CLIENT_BYTES 3000
#define SERVER_BYTES 100000
#define ACCEPTER_COMM "fs-accepter"

/* Never reached: the ring holds 1 MiB. */
#define WAKEUP_NEVER (1ull << 40)

static const uint8_t v4_loopback[16] = { [10] = 0xff, [11] = 0xff, 127, 0, 0, 1 };
static const uint8_t v6_loopback[16] = { [15] = 1 };

/* One connection, seen from user space: its three sockets. */
struct conn_sides {
	uint16_t listen_port, client_port;
	uint64_t listener_cookie, client_cookie, server_cookie;
	pid_t accepter; /* 0: accepted in this process */
};

/* The records of our ports, collected by on_event(). */
struct capture {
	uint16_t port; /* a listener's: every record of ours has it on one side */
	unsigned nstates, nconns;
	struct fs_tcp_state_event states[MAX_STATES];
	struct fs_tcp_conn_event conns[MAX_CONNS];
	unsigned nowners;
	/* owner records of datagram sockets whose owner is one of owner_pids
	 * (other processes' sockets are foreign) */
	struct fs_sock_owner_event owners[MAX_CONNS];
	pid_t owner_pids[2];
	unsigned foreign; /* other traffic's records, ignored */
	unsigned bad;     /* records of no known type and size */
};

/* Loaded by the group setup with every default: what the loader gets.
 * Attached throughout, so every socket has its cookie from its first
 * transition on (test_midlife relies on it). */
static struct conn_bpf *skel;

/* ---- the ring buffer ---------------------------------------------------- */

static bool ours(const struct capture *c, uint16_t local_port, uint16_t remote_port)
{
	return c->port != 0 && (local_port == c->port || remote_port == c->port);
}

static int on_event(void *ctx, void *data, size_t size)
{
	struct capture *c = ctx;
	const struct fs_event_hdr *h = data;

	if (size >= sizeof(*h) && h->type == FS_EVENT_TCP_STATE &&
	    size == sizeof(struct fs_tcp_state_event) && h->size == size) {
		const struct fs_tcp_state_event *e = data;

		if (!ours(c, e->local_port, e->remote_port))
			c->foreign++;
		else if (c->nstates < MAX_STATES)
			c->states[c->nstates++] = *e;
		return 0;
	}
	if (size >= sizeof(*h) && h->type == FS_EVENT_SOCK_OWNER &&
	    size == sizeof(struct fs_sock_owner_event) && h->size == size) {
		const struct fs_sock_owner_event *e = data;
		bool mine = e->pid && (e->pid == (uint32_t)c->owner_pids[0] ||
				       e->pid == (uint32_t)c->owner_pids[1]);

		if (mine && c->nowners < MAX_CONNS)
			memcpy(&c->owners[c->nowners++], data, size);
		else
			c->foreign++;
		return 0;
	}
	if (size >= sizeof(*h) && h->type == FS_EVENT_TCP_CONN &&
	    size == sizeof(struct fs_tcp_conn_event) && h->size == size) {
		const struct fs_tcp_conn_event *e = data;

		if (!ours(c, e->local_port, e->remote_port))
			c->foreign++;
		else if (c->nconns < MAX_CONNS)
			c->conns[c->nconns++] = *e;
		return 0;
	}
	c->bad++;
	return 0;
}

/* The i-th state event of the socket `cookie` (-1: the last one). */
static const struct fs_tcp_state_event *state_of(const struct capture *c, uint64_t cookie,
						 int old_state, int new_state)
{
	for (unsigned i = 0; i < c->nstates; i++) {
		const struct fs_tcp_state_event *e = &c->states[i];

		if (e->sock_cookie == cookie && (old_state < 0 || e->old_state == old_state) &&
		    e->new_state == new_state)
			return e;
	}
	return NULL;
}

static unsigned conns_of(const struct capture *c, uint64_t cookie,
			 const struct fs_tcp_conn_event **first)
{
	unsigned n = 0;

	for (unsigned i = 0; i < c->nconns; i++) {
		if (c->conns[i].sock_cookie != cookie)
			continue;
		if (n++ == 0 && first)
			*first = &c->conns[i];
	}
	return n;
}

/* Every socket of the connection reached CLOSE and was reported. */
static bool capture_complete(const struct capture *c, const struct conn_sides *s)
{
	return state_of(c, s->listener_cookie, FS_TCP_LISTEN, FS_TCP_CLOSE) &&
	       conns_of(c, s->client_cookie, NULL) && conns_of(c, s->server_cookie, NULL);
}

static long elapsed_ms(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
}

/*
 * Reads records until the connection is complete or the budget is spent.
 * Under a no-wakeup policy epoll never fires: consume on a timer instead,
 * as flowstored does.
 */
static void drain(struct ring_buffer *rb, bool consume_only, struct capture *c,
		  const struct conn_sides *s)
{
	struct timespec start;

	clock_gettime(CLOCK_MONOTONIC, &start);
	while (!capture_complete(c, s) && elapsed_ms(&start) <= POLL_BUDGET_MS) {
		int n;

		if (consume_only) {
			n = ring_buffer__consume(rb);
			usleep(10000);
		} else {
			n = ring_buffer__poll(rb, 100);
		}
		assert_true(n >= 0 || n == -EINTR);
	}
}

static void dump(const struct capture *c)
{
	for (unsigned i = 0; i < c->nstates; i++) {
		const struct fs_tcp_state_event *e = &c->states[i];

		print_message("  state cookie %llu port %u->%u state %u->%u dir %u pid %u comm '%.16s'\n",
			      (unsigned long long)e->sock_cookie, e->local_port, e->remote_port,
			      e->old_state, e->new_state, e->direction, e->pid, e->comm);
	}
	for (unsigned i = 0; i < c->nconns; i++) {
		const struct fs_tcp_conn_event *e = &c->conns[i];

		print_message("  conn cookie %llu port %u->%u dir %u close %u path_len %u "
			      "acked %llu received %llu segs %u/%u retrans %u srtt %u pid %u "
			      "uid %u comm '%.16s' cgroup %llu\n",
			      (unsigned long long)e->sock_cookie, e->local_port, e->remote_port,
			      e->direction, e->close_state, e->path_len,
			      (unsigned long long)e->bytes_acked,
			      (unsigned long long)e->bytes_received, e->segs_out, e->segs_in,
			      e->retransmits, e->srtt_us, e->pid, e->uid, e->comm,
			      (unsigned long long)e->cgroup_id);
	}
}

/* ---- the skeleton ------------------------------------------------------- */

/* How the owner of an accepted socket is found (collector/source_bpf.c
 * choose_owner_programs() makes the same choice). */
enum owner_mode {
	OWNER_IO,      /* the default: conn_send and conn_recv */
	OWNER_SYSCALL, /* conn_accept at every syscall's exit instead */
};

static void choose_owner(struct conn_bpf *obj, enum owner_mode mode)
{
	/* conn_send stays: it also tells datagram sockets' owners */
	obj->rodata->tcp_owner_from_io = mode == OWNER_IO;
	assert_int_equal(bpf_program__set_autoload(obj->progs.conn_accept, mode == OWNER_SYSCALL), 0);
	assert_int_equal(bpf_program__set_autoload(obj->progs.conn_recv, mode == OWNER_IO), 0);
}

/* Opened, configured and loaded, not attached: the caller makes its ring
 * buffer first, so epoll starts from an empty ring. conns_max 0: the default
 * table; spill_max 0: the default share of conns_max. */
static struct conn_bpf *conn_load(uint64_t wakeup_bytes, uint32_t conns_max, uint32_t spill_max,
				  enum owner_mode mode)
{
	struct conn_bpf *obj = conn_bpf__open();

	assert_non_null(obj);
	choose_owner(obj, mode);
	obj->rodata->ringbuf_wakeup_bytes = wakeup_bytes;
	assert_int_equal(bpf_map__set_max_entries(obj->maps.events, RING_BYTES), 0);
	if (conns_max)
		assert_int_equal(conn_table_size(obj, conns_max, spill_max), 0);
	assert_int_equal(conn_bpf__load(obj), 0);
	return obj;
}

static uint64_t loss_total(const struct conn_bpf *obj, uint32_t reason)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *per_cpu, sum = 0;

	assert_true(ncpu > 0);
	per_cpu = calloc(ncpu, sizeof(*per_cpu));
	assert_non_null(per_cpu);
	assert_int_equal(bpf_map__lookup_elem(obj->maps.losses, &reason, sizeof(reason), per_cpu,
					      ncpu * sizeof(*per_cpu), 0),
			 0);
	for (int i = 0; i < ncpu; i++)
		sum += per_cpu[i];
	free(per_cpu);
	return sum;
}

/* Where the socket `cookie`'s entry is (conn.bpf.c, invariant 3): a mask
 * of IN_SLOT (its slot of `conns` holds the cookie), IN_FILLING (its slot
 * holds the cookie's filling marker) and IN_SPILL. */
enum { IN_SLOT = 1, IN_FILLING = 2, IN_SPILL = 4 };
static unsigned entry_place(const struct conn_bpf *obj, uint64_t cookie)
{
	size_t vsize = bpf_map__value_size(obj->maps.conns);
	uint32_t slot = (uint32_t)cookie & obj->rodata->conn_slot_mask;
	uint64_t *value = malloc(vsize);
	unsigned place = 0;

	assert_non_null(value);
	assert_int_equal(bpf_map__lookup_elem(obj->maps.conns, &slot, sizeof(slot), value, vsize, 0),
			 0);
	if (value[0] == cookie) /* conn_slot.cookie */
		place |= IN_SLOT;
	if (value[0] == (cookie ^ (1ull << 63)))
		place |= IN_FILLING;
	free(value);
	vsize = bpf_map__value_size(obj->maps.conns_spill);
	value = malloc(vsize);
	assert_non_null(value);
	if (bpf_map__lookup_elem(obj->maps.conns_spill, &cookie, sizeof(cookie), value, vsize, 0) == 0)
		place |= IN_SPILL;
	free(value);
	return place;
}

/* The socket `cookie` has no entry. */
static void assert_forgotten(const struct conn_bpf *obj, uint64_t cookie)
{
	assert_int_equal(entry_place(obj, cookie), 0);
}

/* Fills `conns_spill` with entries of cookies no socket has. */
static void fill_spill(const struct conn_bpf *obj)
{
	size_t vsize = bpf_map__value_size(obj->maps.conns_spill);
	void *value = calloc(1, vsize);

	assert_non_null(value);
	for (uint32_t i = 0; i < bpf_map__max_entries(obj->maps.conns_spill); i++) {
		uint64_t cookie = (1ull << 62) + i;

		assert_int_equal(bpf_map__update_elem(obj->maps.conns_spill, &cookie, sizeof(cookie),
						      value, vsize, BPF_NOEXIST),
				 0);
	}
	free(value);
}

/* ---- sockets ------------------------------------------------------------ */

static socklen_t make_addr(int family, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return sizeof(*sin);
	}
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	sin6->sin6_addr = in6addr_loopback;
	return sizeof(*sin6);
}

static uint16_t bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len))
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* 0 on error: never a valid cookie. */
static uint64_t sock_cookie(int fd)
{
	uint64_t cookie = 0;
	socklen_t len = sizeof(cookie);

	if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len))
		return 0;
	return cookie;
}

/* A listener on the loopback address of `family`, port chosen by the kernel.
 * Returns the fd, or -1 with errno set when the family is unavailable here. */
static int loopback_listener(int family)
{
	struct sockaddr_storage ss;
	socklen_t len = make_addr(family, 0, &ss);
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 16)) {
		int err = errno;

		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

/* A loopback listener. The IPv6 tests need an IPv6 loopback: a host
 * without one fails them with the reason rather than passing them unseen. */
static int listener_or_fail(int family)
{
	int lfd = loopback_listener(family);

	if (lfd < 0)
		fail_msg("cannot listen on the %s loopback: %s", family == AF_INET6 ? "IPv6" : "IPv4",
			 strerror(errno));
	return lfd;
}

static int connect_to(int family, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len = make_addr(family, port, &ss);
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&ss, len), 0);
	return fd;
}

static bool send_all(int fd, size_t n)
{
	char buf[4096];

	memset(buf, 'x', sizeof(buf));
	while (n > 0) {
		ssize_t w = send(fd, buf, n < sizeof(buf) ? n : sizeof(buf), MSG_NOSIGNAL);

		if (w <= 0 && errno != EINTR)
			return false;
		if (w > 0)
			n -= (size_t)w;
	}
	return true;
}

static bool recv_all(int fd, size_t n)
{
	char buf[4096];

	while (n > 0) {
		ssize_t r = recv(fd, buf, n < sizeof(buf) ? n : sizeof(buf), 0);

		if (r == 0 || (r < 0 && errno != EINTR))
			return false;
		if (r > 0)
			n -= (size_t)r;
	}
	return true;
}

/* What the accepting child tells the parent. */
struct accepter_report {
	uint64_t server_cookie;
	int error; /* 0, or the step that failed */
};

/* The forked accepter: accept, read K, write M, read the client's FIN,
 * close. Reports on `report_fd`; never returns. */
static void accepter_main(int lfd, int report_fd)
{
	struct accepter_report r = { 0 };
	char byte;
	int afd;

	if (prctl(PR_SET_NAME, ACCEPTER_COMM))
		r.error = 1;
	afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	close(lfd);
	if (afd < 0)
		r.error = 2;
	else if (!(r.server_cookie = sock_cookie(afd)))
		r.error = 3;
	else if (!recv_all(afd, CLIENT_BYTES))
		r.error = 4;
	else if (!send_all(afd, SERVER_BYTES))
		r.error = 5;
	else if (recv(afd, &byte, 1, 0) != 0)
		r.error = 6;
	if (afd >= 0)
		close(afd);
	if (write(report_fd, &r, sizeof(r)) != sizeof(r))
		_exit(2);
	_exit(r.error ? 1 : 0);
}

/* The full exchange: a forked child accepts and answers, this process is
 * the client and closes first; the listener is closed last. */
static void exchange_forked(int family, int lfd, struct conn_sides *s)
{
	struct accepter_report r;
	int pipefd[2], cfd, status;

	s->listen_port = bound_port(lfd);
	s->listener_cookie = sock_cookie(lfd);
	assert_int_equal(pipe(pipefd), 0);
	s->accepter = fork();
	assert_true(s->accepter >= 0);
	if (s->accepter == 0) {
		close(pipefd[0]);
		accepter_main(lfd, pipefd[1]);
	}
	close(pipefd[1]);

	cfd = connect_to(family, s->listen_port);
	s->client_port = bound_port(cfd);
	s->client_cookie = sock_cookie(cfd);
	assert_true(send_all(cfd, CLIENT_BYTES));
	assert_true(recv_all(cfd, SERVER_BYTES));
	close(cfd);

	assert_int_equal(read(pipefd[0], &r, sizeof(r)), sizeof(r));
	close(pipefd[0]);
	assert_int_equal(waitpid(s->accepter, &status, 0), s->accepter);
	assert_int_equal(r.error, 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	s->server_cookie = r.server_cookie;
	close(lfd);
}

/* A short exchange in this process: one byte each way; the client closes
 * first. The listener stays open. */
static void exchange_local(int family, int lfd, struct conn_sides *s)
{
	char byte = 'x';
	int cfd, afd;

	s->listen_port = bound_port(lfd);
	s->listener_cookie = sock_cookie(lfd);
	cfd = connect_to(family, s->listen_port);
	s->client_port = bound_port(cfd);
	s->client_cookie = sock_cookie(cfd);
	afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(afd >= 0);
	s->server_cookie = sock_cookie(afd);
	s->accepter = 0;

	assert_int_equal(send(cfd, &byte, 1, 0), 1);
	assert_int_equal(recv(afd, &byte, 1, 0), 1);
	assert_int_equal(send(afd, &byte, 1, 0), 1);
	assert_int_equal(recv(cfd, &byte, 1, 0), 1);
	close(cfd);
	assert_int_equal(recv(afd, &byte, 1, 0), 0); /* the client's FIN */
	close(afd);
}

/* ---- what the records must say ----------------------------------------- */

static uint64_t now_ns(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

static void my_comm(char comm[FS_COMM_LEN + 1])
{
	memset(comm, 0, FS_COMM_LEN + 1);
	assert_int_equal(prctl(PR_GET_NAME, comm), 0);
}

/* The cgroup v2 id bpf_get_current_cgroup_id() gives this process: the inode
 * of its cgroup directory. 0 if cgroup2 is not mounted here. */
static uint64_t my_cgroup_id(void)
{
	char line[512], mnt[256] = "", path[256] = "", full[600];
	FILE *f = fopen("/proc/self/mountinfo", "r");
	struct stat st;

	if (!f)
		return 0;
	while (!mnt[0] && fgets(line, sizeof(line), f)) {
		char *dash = strstr(line, " - cgroup2 ");

		if (dash)
			sscanf(line, "%*s %*s %*s %*s %255s", mnt);
	}
	fclose(f);
	f = fopen("/proc/self/cgroup", "r");
	if (!f)
		return 0;
	while (!path[0] && fgets(line, sizeof(line), f))
		if (strncmp(line, "0::", 3) == 0)
			sscanf(line + 3, "%255s", path);
	fclose(f);
	if (!mnt[0] || !path[0])
		return 0;
	snprintf(full, sizeof(full), "%s%s", mnt, path);
	return stat(full, &st) ? 0 : (uint64_t)st.st_ino;
}

static void check_state_header(const struct fs_tcp_state_event *e)
{
	assert_int_equal(e->hdr.type, FS_EVENT_TCP_STATE);
	assert_int_equal(e->hdr.size, sizeof(*e));
	assert_int_equal(e->hdr.reserved, 0);
	assert_true(e->hdr.ts_ns > 0 && e->hdr.ts_ns <= now_ns());
	assert_int_equal(e->reserved1, 0);
	assert_int_equal(e->reserved2, 0);
	assert_in_range(e->old_state, FS_TCP_ESTABLISHED, FS_TCP_STATE_MAX);
	assert_in_range(e->new_state, FS_TCP_ESTABLISHED, FS_TCP_STATE_MAX);
	assert_in_range(e->direction, FS_DIR_UNKNOWN, FS_DIR_MAX);
}

/* Every state event of a connected socket (client or accepted end): the
 * right tuple, and the states chain (each old state is the last new one). */
static void check_connected_states(const struct capture *c, uint64_t cookie,
				   uint16_t local_port, uint16_t remote_port,
				   const uint8_t addr[16])
{
	unsigned n = 0;
	int last = -1;

	for (unsigned i = 0; i < c->nstates; i++) {
		const struct fs_tcp_state_event *e = &c->states[i];

		if (e->sock_cookie != cookie)
			continue;
		n++;
		assert_memory_equal(e->local_addr, addr, 16);
		assert_memory_equal(e->remote_addr, addr, 16);
		assert_int_equal(e->remote_port, remote_port);
		/* not chosen yet at CLOSE -> SYN_SENT */
		if (!(e->old_state == FS_TCP_CLOSE && e->new_state == FS_TCP_SYN_SENT))
			assert_int_equal(e->local_port, local_port);
		if (last >= 0)
			assert_int_equal(e->old_state, last);
		last = e->new_state;
	}
	assert_true(n >= 3);
	assert_int_equal(last, FS_TCP_CLOSE);
}

/* The connection record of `cookie`: there is exactly one, its header,
 * tuple and times are right, and its path is the socket's state events. */
static const struct fs_tcp_conn_event *check_conn(const struct capture *c, uint64_t cookie,
						  uint16_t local_port, uint16_t remote_port,
						  const uint8_t addr[16])
{
	const struct fs_tcp_conn_event *e = NULL;
	const struct fs_tcp_state_event *first = NULL, *last = NULL;
	unsigned n = 0;

	assert_int_equal(conns_of(c, cookie, &e), 1);
	assert_int_equal(e->hdr.type, FS_EVENT_TCP_CONN);
	assert_int_equal(e->hdr.size, sizeof(*e));
	assert_int_equal(e->hdr.reserved, 0);
	assert_int_equal(e->reserved1, 0);
	assert_memory_equal(e->local_addr, addr, 16);
	assert_memory_equal(e->remote_addr, addr, 16);
	assert_int_equal(e->local_port, local_port);
	assert_int_equal(e->remote_port, remote_port);

	for (unsigned i = 0; i < c->nstates; i++) {
		const struct fs_tcp_state_event *s = &c->states[i];

		if (s->sock_cookie != cookie)
			continue;
		if (!first)
			first = s;
		last = s;
		assert_true(n < FS_STATE_PATH_LEN);
		assert_int_equal(e->state_path[n], s->new_state);
		n++;
	}
	assert_int_equal(e->path_len, n);
	for (unsigned i = n; i < FS_STATE_PATH_LEN; i++)
		assert_int_equal(e->state_path[i], 0);
	assert_int_equal(e->state_path[n - 1], FS_TCP_CLOSE);
	assert_int_equal(e->close_state, last->old_state);
	/* the open (or first transition seen) to the close */
	assert_int_equal(e->start_ns, first->hdr.ts_ns);
	assert_int_equal(e->end_ns, last->hdr.ts_ns);
	assert_int_equal(e->hdr.ts_ns, e->end_ns);
	assert_true(e->start_ns < e->end_ns);
	return e;
}

static void check_owner(const struct fs_tcp_conn_event *e, pid_t pid, const char *comm)
{
	uint64_t cgroup = my_cgroup_id();

	assert_int_equal(e->pid, pid);
	assert_int_equal(e->uid, getuid());
	assert_string_equal(e->comm, comm);
	assert_true(e->cgroup_id != 0);
	if (cgroup)
		assert_int_equal(e->cgroup_id, cgroup);
}

static void check_client(const struct capture *c, const struct conn_sides *s,
			 const uint8_t addr[16])
{
	const struct fs_tcp_state_event *e;
	const struct fs_tcp_conn_event *conn;
	char comm[FS_COMM_LEN + 1];

	my_comm(comm);
	check_connected_states(c, s->client_cookie, s->client_port, s->listen_port, addr);
	/* connect() ran in this task: every event names it, and says out. */
	for (unsigned i = 0; i < c->nstates; i++) {
		e = &c->states[i];
		if (e->sock_cookie != s->client_cookie)
			continue;
		assert_int_equal(e->direction, FS_DIR_OUT);
		assert_int_equal(e->pid, getpid());
		assert_string_equal(e->comm, comm);
	}
	assert_non_null(state_of(c, s->client_cookie, FS_TCP_CLOSE, FS_TCP_SYN_SENT));
	assert_non_null(state_of(c, s->client_cookie, FS_TCP_SYN_SENT, FS_TCP_ESTABLISHED));

	conn = check_conn(c, s->client_cookie, s->client_port, s->listen_port, addr);
	assert_int_equal(conn->direction, FS_DIR_OUT);
	assert_int_equal(conn->state_path[0], FS_TCP_SYN_SENT);
	assert_int_equal(conn->state_path[1], FS_TCP_ESTABLISHED);
	/* the active closer leaves its full socket from FIN_WAIT1/2 or CLOSING */
	assert_true(conn->close_state == FS_TCP_FIN_WAIT1 ||
		    conn->close_state == FS_TCP_FIN_WAIT2 || conn->close_state == FS_TCP_CLOSING);
	assert_int_equal(conn->bytes_acked, CLIENT_BYTES);
	assert_int_equal(conn->bytes_received, SERVER_BYTES);
	assert_true(conn->segs_out >= 1);
	assert_true(conn->segs_in >= 1);
	assert_true(conn->srtt_us > 0);
	check_owner(conn, getpid(), comm);
}

static void check_server(const struct capture *c, const struct conn_sides *s,
			 const uint8_t addr[16])
{
	const struct fs_tcp_state_event *syn_recv, *established, *e;
	const struct fs_tcp_conn_event *conn;

	check_connected_states(c, s->server_cookie, s->listen_port, s->client_port, addr);

	/* The held-back LISTEN -> SYN_RECV: the child's own tuple, its own
	 * time, and out before SYN_RECV -> ESTABLISHED. */
	syn_recv = state_of(c, s->server_cookie, FS_TCP_LISTEN, FS_TCP_SYN_RECV);
	established = state_of(c, s->server_cookie, FS_TCP_SYN_RECV, FS_TCP_ESTABLISHED);
	assert_non_null(syn_recv);
	assert_non_null(established);
	assert_true(syn_recv < established);
	assert_true(syn_recv->hdr.ts_ns <= established->hdr.ts_ns);
	assert_int_equal(syn_recv->remote_port, s->client_port);
	assert_int_equal(syn_recv->local_port, s->listen_port);
	assert_memory_equal(syn_recv->remote_addr, addr, 16);

	/* Before the accepter reads (or, syscall mode, accepts) nobody owns
	 * it; after, the accepter does. */
	for (unsigned i = 0; i < c->nstates; i++) {
		e = &c->states[i];
		if (e->sock_cookie != s->server_cookie)
			continue;
		assert_int_equal(e->direction, FS_DIR_IN);
		if (e == syn_recv || e == established) {
			assert_int_equal(e->pid, 0);
			assert_string_equal(e->comm, "");
		}
	}
	e = state_of(c, s->server_cookie, FS_TCP_ESTABLISHED, FS_TCP_CLOSE_WAIT);
	assert_non_null(e);
	assert_int_equal(e->pid, s->accepter);
	assert_string_equal(e->comm, ACCEPTER_COMM);

	conn = check_conn(c, s->server_cookie, s->listen_port, s->client_port, addr);
	assert_int_equal(conn->direction, FS_DIR_IN);
	assert_int_equal(conn->state_path[0], FS_TCP_SYN_RECV);
	assert_int_equal(conn->state_path[1], FS_TCP_ESTABLISHED);
	assert_int_equal(conn->close_state, FS_TCP_LAST_ACK);
	assert_int_equal(conn->bytes_acked, SERVER_BYTES);
	assert_int_equal(conn->bytes_received, CLIENT_BYTES);
	assert_true(conn->segs_out >= 1);
	assert_true(conn->segs_in >= 1);
	assert_true(conn->srtt_us > 0);
	check_owner(conn, s->accepter, ACCEPTER_COMM);
}

/* A listener is not a connection: state events, no record. */
static void check_listener(const struct capture *c, const struct conn_sides *s,
			   const uint8_t addr[16])
{
	const struct fs_tcp_state_event *e;

	e = state_of(c, s->listener_cookie, FS_TCP_CLOSE, FS_TCP_LISTEN);
	assert_non_null(e);
	assert_int_equal(e->direction, FS_DIR_IN);
	assert_int_equal(e->local_port, s->listen_port);
	assert_int_equal(e->remote_port, 0);
	assert_memory_equal(e->local_addr, addr, 16);
	e = state_of(c, s->listener_cookie, FS_TCP_LISTEN, FS_TCP_CLOSE);
	assert_non_null(e);
	assert_int_equal(e->local_port, s->listen_port);
	assert_int_equal(conns_of(c, s->listener_cookie, NULL), 0);
}

/* ---- tests -------------------------------------------------------------- */

/*
 * The whole life of one connection, under one wakeup policy: 0 (libbpf's
 * default: poll), 1 (a forced wakeup at every record: poll), or never (no
 * wakeup at all: poll sees nothing, consume sees everything).
 */
static void run_lifecycle(int family, const uint8_t addr[16], uint64_t wakeup_bytes,
			  enum owner_mode mode)
{
	struct capture *c = calloc(1, sizeof(*c));
	struct conn_sides s = { 0 };
	struct ring_buffer *rb;
	struct conn_bpf *obj;
	int lfd;

	assert_non_null(c);
	close(listener_or_fail(family)); /* fail before loading anything */
	obj = conn_load(wakeup_bytes, 0, 0, mode);
	rb = ring_buffer__new(bpf_map__fd(obj->maps.events), on_event, c, NULL);
	assert_non_null(rb);
	assert_int_equal(conn_bpf__attach(obj), 0);
	lfd = listener_or_fail(family);
	c->port = bound_port(lfd);

	exchange_forked(family, lfd, &s);
	if (wakeup_bytes == WAKEUP_NEVER) {
		assert_int_equal(ring_buffer__poll(rb, 200), 0);
		assert_int_equal(c->nstates + c->nconns + c->foreign, 0);
	}
	drain(rb, wakeup_bytes == WAKEUP_NEVER, c, &s);

	print_message("port %u: %u state and %u conn records of ours, %u of other traffic\n",
		      s.listen_port, c->nstates, c->nconns, c->foreign);
	if (!capture_complete(c, &s))
		dump(c);
	assert_int_equal(c->bad, 0);
	assert_true(capture_complete(c, &s));
	for (unsigned i = 0; i < c->nstates; i++)
		check_state_header(&c->states[i]);
	check_client(c, &s, addr);
	check_server(c, &s, addr);
	check_listener(c, &s, addr);
	assert_forgotten(obj, s.client_cookie);
	assert_forgotten(obj, s.server_cookie);
	assert_forgotten(obj, s.listener_cookie);
	assert_int_equal(loss_total(obj, FS_LOSS_RINGBUF_FULL), 0);

	ring_buffer__free(rb);
	conn_bpf__destroy(obj);
	free(c);
}

static void test_lifecycle_ipv4(void **state)
{
	(void)state;
	run_lifecycle(AF_INET, v4_loopback, 0, OWNER_IO);
}

static void test_lifecycle_ipv6(void **state)
{
	(void)state;
	run_lifecycle(AF_INET6, v6_loopback, 0, OWNER_IO);
}

static void test_lifecycle_ipv4_forced_wakeup(void **state)
{
	(void)state;
	run_lifecycle(AF_INET, v4_loopback, 1, OWNER_IO);
}

static void test_lifecycle_ipv6_forced_wakeup(void **state)
{
	(void)state;
	run_lifecycle(AF_INET6, v6_loopback, 1, OWNER_IO);
}

static void test_lifecycle_ipv4_no_wakeup(void **state)
{
	(void)state;
	run_lifecycle(AF_INET, v4_loopback, WAKEUP_NEVER, OWNER_IO);
}

static void test_lifecycle_ipv6_no_wakeup(void **state)
{
	(void)state;
	run_lifecycle(AF_INET6, v6_loopback, WAKEUP_NEVER, OWNER_IO);
}

/* The same with the owner taken at accept() (--accept-owner syscall). */
static void test_lifecycle_ipv4_accept_syscall(void **state)
{
	(void)state;
	run_lifecycle(AF_INET, v4_loopback, 0, OWNER_SYSCALL);
}

static void test_lifecycle_ipv6_accept_syscall(void **state)
{
	(void)state;
	run_lifecycle(AF_INET6, v6_loopback, 0, OWNER_SYSCALL);
}

/* Consumes everything of ours until `n` connection records are in. */
static void drain_conns(struct ring_buffer *rb, struct capture *c, unsigned n)
{
	struct timespec start;

	clock_gettime(CLOCK_MONOTONIC, &start);
	while (c->nconns < n && elapsed_ms(&start) <= POLL_BUDGET_MS) {
		int got = ring_buffer__poll(rb, 100);

		assert_true(got >= 0 || got == -EINTR);
	}
}

/*
 * Sockets that opened before the program was loaded: the client is first
 * seen at ESTABLISHED -> FIN_WAIT1, which its close() makes (direction
 * unknown, start = that transition, owner = the closing task); the server
 * was handshaken before the load and is accepted after it. In syscall mode
 * accept() makes its entry and names this process; in io mode the entry is
 * made at its next transition (ESTABLISHED -> CLOSE_WAIT, in softirq: no
 * owner yet) and the owner is the task that reads the client's FIN next.
 * (The programs find a socket by its cookie, and the kernel makes a cookie
 * only when first asked: here the group's skeleton, attached throughout,
 * asked at the child's SYN_RECV.)
 */
static void run_midlife(enum owner_mode mode)
{
	struct capture *c = calloc(1, sizeof(*c));
	const struct fs_tcp_conn_event *client = NULL, *server = NULL;
	const struct fs_tcp_state_event *e;
	struct ring_buffer *rb;
	struct conn_bpf *obj;
	uint64_t client_cookie, server_cookie, before_accept;
	char byte = 'x', comm[FS_COMM_LEN + 1];
	int lfd, cfd, afd;

	assert_non_null(c);
	my_comm(comm);
	lfd = listener_or_fail(AF_INET);
	c->port = bound_port(lfd);
	cfd = connect_to(AF_INET, c->port);
	client_cookie = sock_cookie(cfd);

	obj = conn_load(0, 0, 0, mode);
	rb = ring_buffer__new(bpf_map__fd(obj->maps.events), on_event, c, NULL);
	assert_non_null(rb);
	assert_int_equal(conn_bpf__attach(obj), 0);
	before_accept = now_ns();
	afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(afd >= 0);
	server_cookie = sock_cookie(afd);
	assert_int_equal(send(cfd, &byte, 1, 0), 1);
	assert_int_equal(recv(afd, &byte, 1, 0), 1);
	close(cfd);
	assert_int_equal(recv(afd, &byte, 1, 0), 0);
	close(afd);
	drain_conns(rb, c, 2);
	if (c->nconns != 2)
		dump(c);
	assert_int_equal(c->bad, 0);

	assert_int_equal(conns_of(c, client_cookie, &client), 1);
	assert_int_equal(client->direction, FS_DIR_UNKNOWN);
	check_owner(client, getpid(), comm); /* its close() */
	assert_int_equal(client->state_path[0], FS_TCP_FIN_WAIT1);
	e = state_of(c, client_cookie, FS_TCP_ESTABLISHED, FS_TCP_FIN_WAIT1);
	assert_non_null(e);
	assert_int_equal(e->pid, getpid());
	assert_int_equal(client->start_ns, e->hdr.ts_ns);
	assert_int_equal(client->bytes_acked, 1);
	assert_int_equal(client->bytes_received, 0); /* not its peer's FIN */

	assert_int_equal(conns_of(c, server_cookie, &server), 1);
	/* accept() tells an incoming socket; a transition in mid-life cannot */
	assert_int_equal(server->direction, mode == OWNER_SYSCALL ? FS_DIR_IN : FS_DIR_UNKNOWN);
	assert_int_equal(server->state_path[0], FS_TCP_CLOSE_WAIT);
	assert_int_equal(server->close_state, FS_TCP_LAST_ACK);
	assert_true(server->start_ns >= before_accept);
	e = state_of(c, server_cookie, FS_TCP_ESTABLISHED, FS_TCP_CLOSE_WAIT);
	assert_non_null(e);
	assert_true(server->start_ns <= e->hdr.ts_ns);
	/* syscall mode: the owner from accept() on; io: from the read of the
	 * FIN, which comes after this transition */
	assert_int_equal(e->pid, mode == OWNER_SYSCALL ? getpid() : 0);
	e = state_of(c, server_cookie, FS_TCP_CLOSE_WAIT, FS_TCP_LAST_ACK);
	assert_non_null(e);
	assert_int_equal(e->pid, getpid());
	check_owner(server, getpid(), comm);
	assert_int_equal(server->bytes_acked, 0);
	assert_int_equal(server->bytes_received, 1);

	assert_forgotten(obj, client_cookie);
	assert_forgotten(obj, server_cookie);
	close(lfd);
	ring_buffer__free(rb);
	conn_bpf__destroy(obj);
	free(c);
}

static void test_midlife(void **state)
{
	(void)state;
	run_midlife(OWNER_IO);
}

static void test_midlife_accept_syscall(void **state)
{
	(void)state;
	run_midlife(OWNER_SYSCALL);
}

#define IO_CHILD_COMM "fs-io-child"

/*
 * Who owns an accepted socket that one task accepts and another uses: this
 * process accepts, a forked child renamed IO_CHILD_COMM reads and answers,
 * then this process closes its copy last. io mode: the child (first I/O);
 * syscall mode: this process (accept()). And a socket accepted and closed
 * with no I/O at all: io mode finds its owner at its close.
 */
static void run_owner_split(enum owner_mode mode)
{
	struct capture *c = calloc(1, sizeof(*c));
	const struct fs_tcp_conn_event *server = NULL, *quiet = NULL;
	uint64_t server_cookie, quiet_cookie;
	struct ring_buffer *rb;
	struct conn_bpf *obj;
	char byte = 'x', comm[FS_COMM_LEN + 1];
	int lfd, cfd, afd, status;
	pid_t child;

	assert_non_null(c);
	my_comm(comm);
	obj = conn_load(0, 0, 0, mode);
	rb = ring_buffer__new(bpf_map__fd(obj->maps.events), on_event, c, NULL);
	assert_non_null(rb);
	assert_int_equal(conn_bpf__attach(obj), 0);
	lfd = listener_or_fail(AF_INET);
	c->port = bound_port(lfd);

	cfd = connect_to(AF_INET, c->port);
	afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(afd >= 0);
	server_cookie = sock_cookie(afd);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) { /* no cmocka here: exit codes only */
		if (prctl(PR_SET_NAME, IO_CHILD_COMM) || recv(afd, &byte, 1, 0) != 1 ||
		    send(afd, &byte, 1, 0) != 1)
			_exit(1);
		_exit(0);
	}
	assert_int_equal(send(cfd, &byte, 1, 0), 1);
	assert_int_equal(recv(cfd, &byte, 1, 0), 1);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(cfd);
	close(afd);

	/* accepted, then closed with no I/O: only its close names a task */
	cfd = connect_to(AF_INET, c->port);
	afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(afd >= 0);
	quiet_cookie = sock_cookie(afd);
	close(afd);
	assert_int_equal(recv(cfd, &byte, 1, 0), 0);
	close(cfd);

	drain_conns(rb, c, 4);
	if (c->nconns != 4)
		dump(c);
	assert_int_equal(c->bad, 0);
	assert_int_equal(conns_of(c, server_cookie, &server), 1);
	assert_int_equal(server->direction, FS_DIR_IN);
	if (mode == OWNER_IO) {
		assert_int_equal(server->pid, child);
		assert_string_equal(server->comm, IO_CHILD_COMM);
	} else {
		check_owner(server, getpid(), comm);
	}
	assert_int_equal(conns_of(c, quiet_cookie, &quiet), 1);
	assert_int_equal(quiet->direction, FS_DIR_IN);
	assert_int_equal(quiet->state_path[2], FS_TCP_FIN_WAIT1); /* its close() */
	assert_true(quiet->close_state == FS_TCP_FIN_WAIT1 ||
		    quiet->close_state == FS_TCP_FIN_WAIT2 || quiet->close_state == FS_TCP_CLOSING);
	check_owner(quiet, getpid(), comm);

	assert_forgotten(obj, server_cookie);
	assert_forgotten(obj, quiet_cookie);
	close(lfd);
	ring_buffer__free(rb);
	conn_bpf__destroy(obj);
	free(c);
}

static void test_owner_split_io(void **state)
{
	(void)state;
	run_owner_split(OWNER_IO);
}

static void test_owner_split_accept_syscall(void **state)
{
	(void)state;
	run_owner_split(OWNER_SYSCALL);
}

/* The owner records of `cookie` in c. */
static unsigned owners_of(const struct capture *c, uint64_t cookie,
			  const struct fs_sock_owner_event **first)
{
	unsigned n = 0;

	for (unsigned i = 0; i < c->nowners; i++) {
		if (c->owners[i].sock_cookie != cookie)
			continue;
		if (!n++ && first)
			*first = &c->owners[i];
	}
	return n;
}

#define UDP_CHILD_COMM "fs-udp-child"

/*
 * Datagram sockets: one owner record per socket, at its first send, naming
 * the sending task; none for a socket that only receives; the same in
 * syscall mode (conn_send runs in both).
 */
static void run_dgram_owner(int family, enum owner_mode mode)
{
	struct capture *c = calloc(1, sizeof(*c));
	const struct fs_sock_owner_event *o = NULL;
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	struct ring_buffer *rb;
	struct conn_bpf *obj;
	uint64_t rx_cookie, tx_cookie, child_cookie;
	char byte = 'x', comm[FS_COMM_LEN + 1];
	int rx, tx, status, pipefd[2];
	pid_t child;
	struct timespec start;

	assert_non_null(c);
	my_comm(comm);
	obj = conn_load(0, 0, 0, mode);
	rb = ring_buffer__new(bpf_map__fd(obj->maps.events), on_event, c, NULL);
	assert_non_null(rb);
	assert_int_equal(conn_bpf__attach(obj), 0);

	ss.ss_family = family;
	if (family == AF_INET) {
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(struct sockaddr_in);
	} else {
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
		len = sizeof(struct sockaddr_in6);
	}
	rx = socket(family, SOCK_DGRAM, 0);
	assert_true(rx >= 0);
	assert_int_equal(bind(rx, (struct sockaddr *)&ss, len), 0);
	assert_int_equal(getsockname(rx, (struct sockaddr *)&ss, &len), 0);
	rx_cookie = sock_cookie(rx);
	tx = socket(family, SOCK_DGRAM, 0);
	assert_true(tx >= 0);
	tx_cookie = sock_cookie(tx);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(sendto(tx, &byte, 1, 0, (struct sockaddr *)&ss, len), 1);
		assert_int_equal(recv(rx, &byte, 1, 0), 1);
	}
	assert_int_equal(pipe(pipefd), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) { /* no cmocka here: exit codes only */
		int fd = socket(family, SOCK_DGRAM, 0);
		uint64_t ck = fd >= 0 ? sock_cookie(fd) : 0;

		if (fd < 0 || prctl(PR_SET_NAME, UDP_CHILD_COMM) ||
		    sendto(fd, &byte, 1, 0, (struct sockaddr *)&ss, len) != 1 ||
		    write(pipefd[1], &ck, sizeof(ck)) != sizeof(ck))
			_exit(1);
		_exit(0);
	}
	close(pipefd[1]);
	assert_int_equal(read(pipefd[0], &child_cookie, sizeof(child_cookie)), sizeof(child_cookie));
	close(pipefd[0]);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(recv(rx, &byte, 1, 0), 1);

	c->owner_pids[0] = getpid();
	c->owner_pids[1] = child;
	clock_gettime(CLOCK_MONOTONIC, &start);
	while ((!owners_of(c, tx_cookie, NULL) || !owners_of(c, child_cookie, NULL)) &&
	       elapsed_ms(&start) <= POLL_BUDGET_MS)
		assert_true(ring_buffer__poll(rb, 100) >= 0);
	ring_buffer__poll(rb, 100);
	assert_int_equal(c->bad, 0);

	assert_int_equal(owners_of(c, tx_cookie, &o), 1); /* three sends, one record */
	assert_int_equal(o->hdr.size, sizeof(*o));
	assert_int_equal(o->pid, getpid());
	assert_int_equal(o->uid, getuid());
	assert_string_equal(o->comm, comm);
	assert_true(o->cgroup_id != 0);
	assert_int_equal(owners_of(c, child_cookie, &o), 1);
	assert_int_equal(o->pid, child);
	assert_string_equal(o->comm, UDP_CHILD_COMM);
	assert_int_equal(owners_of(c, rx_cookie, NULL), 0); /* it only received */
	assert_int_equal(loss_total(obj, FS_LOSS_RINGBUF_FULL), 0);

	close(tx);
	close(rx);
	ring_buffer__free(rb);
	conn_bpf__destroy(obj);
	free(c);
}

static void test_dgram_owner_ipv4(void **state)
{
	(void)state;
	run_dgram_owner(AF_INET, OWNER_IO);
}

static void test_dgram_owner_ipv6(void **state)
{
	(void)state;
	run_dgram_owner(AF_INET6, OWNER_IO);
}

static void test_dgram_owner_accept_syscall(void **state)
{
	(void)state;
	run_dgram_owner(AF_INET, OWNER_SYSCALL);
}

/* A refused connect() is a connection that never got past SYN_SENT. */
static void test_refused(void **state)
{
	struct capture *c = calloc(1, sizeof(*c));
	const struct fs_tcp_conn_event *conn = NULL;
	struct sockaddr_storage ss;
	struct ring_buffer *rb;
	struct conn_bpf *obj;
	uint64_t cookie;
	socklen_t len;
	int lfd, fd;

	(void)state;
	assert_non_null(c);
	lfd = listener_or_fail(AF_INET); /* a free port, then nobody there */
	c->port = bound_port(lfd);
	close(lfd);

	obj = conn_load(0, 0, 0, OWNER_IO);
	rb = ring_buffer__new(bpf_map__fd(obj->maps.events), on_event, c, NULL);
	assert_non_null(rb);
	assert_int_equal(conn_bpf__attach(obj), 0);
	len = make_addr(AF_INET, c->port, &ss);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&ss, len), -1);
	assert_int_equal(errno, ECONNREFUSED);
	cookie = sock_cookie(fd);
	close(fd);
	drain_conns(rb, c, 1);

	assert_int_equal(conns_of(c, cookie, &conn), 1);
	assert_int_equal(conn->direction, FS_DIR_OUT);
	assert_int_equal(conn->close_state, FS_TCP_SYN_SENT);
	assert_int_equal(conn->path_len, 2);
	assert_int_equal(conn->state_path[0], FS_TCP_SYN_SENT);
	assert_int_equal(conn->state_path[1], FS_TCP_CLOSE);
	assert_int_equal(conn->bytes_acked, 0);
	assert_int_equal(conn->bytes_received, 0);
	assert_int_equal(conn->pid, getpid());
	assert_int_equal(conn->remote_port, c->port);
	assert_forgotten(obj, cookie);
	ring_buffer__free(rb);
	conn_bpf__destroy(obj);
	free(c);
}

/* A listener for c, and the conn programs loaded with a table of `slots`
 * and `spill` (0: the default, half the slots; as conn_load), the spill
 * filled first if `fill`, attached, their ring read into c. */
static struct conn_bpf *table_attach(struct capture *c, uint32_t slots, uint32_t spill, bool fill,
				     int *lfd, struct ring_buffer **rb)
{
	struct conn_bpf *obj;

	*lfd = listener_or_fail(AF_INET);
	c->port = bound_port(*lfd);
	obj = conn_load(0, slots, spill, OWNER_IO);
	assert_int_equal(bpf_map__max_entries(obj->maps.conns), slots);
	assert_int_equal(bpf_map__max_entries(obj->maps.conns_spill), spill ? spill : slots / 2);
	if (fill)
		fill_spill(obj);
	*rb = ring_buffer__new(bpf_map__fd(obj->maps.events), on_event, c, NULL);
	assert_non_null(*rb);
	assert_int_equal(conn_bpf__attach(obj), 0);
	return obj;
}

/* With room for one socket (one slot, a spill already full), connections
 * overflow the table: counted, and every connected socket still gets its
 * record at close. */
static void test_map_full_is_counted(void **state)
{
	enum { CONNECTIONS = 4 };
	struct capture *c = calloc(1, sizeof(*c));
	struct conn_sides s[CONNECTIONS];
	struct ring_buffer *rb;
	struct conn_bpf *obj;
	int lfd;

	(void)state;
	assert_non_null(c);
	obj = table_attach(c, 1, 1, true, &lfd, &rb);

	for (int i = 0; i < CONNECTIONS; i++)
		exchange_local(AF_INET, lfd, &s[i]);
	drain_conns(rb, c, 2 * CONNECTIONS);
	print_message("%u conn records, map full %llu times\n", c->nconns,
		      (unsigned long long)loss_total(obj, FS_LOSS_MAP_FULL));
	assert_int_equal(c->bad, 0);
	assert_true(loss_total(obj, FS_LOSS_MAP_FULL) > 0);
	for (int i = 0; i < CONNECTIONS; i++) {
		const struct fs_tcp_conn_event *e = NULL;

		assert_int_equal(conns_of(c, s[i].client_cookie, &e), 1);
		assert_int_equal(e->close_state, FS_TCP_FIN_WAIT2);
		assert_int_equal(conns_of(c, s[i].server_cookie, &e), 1);
		assert_int_equal(e->close_state, FS_TCP_LAST_ACK);
		assert_non_null(state_of(c, s[i].server_cookie, FS_TCP_LISTEN, FS_TCP_SYN_RECV));
		assert_forgotten(obj, s[i].client_cookie);
		assert_forgotten(obj, s[i].server_cookie);
	}
	close(lfd);
	ring_buffer__free(rb);
	conn_bpf__destroy(obj);
	free(c);
}

/* Is the path of states recorded in e the one given (FS_TCP_... , 0)? */
static bool path_is(const struct fs_tcp_conn_event *e, const uint8_t *want)
{
	unsigned n = 0;

	while (want[n])
		n++;
	return e->path_len == n && memcmp(e->state_path, want, n) == 0;
}

static const uint8_t client_path[] = { FS_TCP_SYN_SENT, FS_TCP_ESTABLISHED, FS_TCP_FIN_WAIT1,
				       FS_TCP_FIN_WAIT2, FS_TCP_CLOSE, 0 };
static const uint8_t server_path[] = { FS_TCP_SYN_RECV, FS_TCP_ESTABLISHED, FS_TCP_CLOSE_WAIT,
				       FS_TCP_LAST_ACK, FS_TCP_CLOSE, 0 };

/*
 * One slot for every socket: the client of each exchange takes it and its
 * server, alive at the same time, lands in the spill. Both records are
 * whole (path, owner, bytes), nothing is counted lost, and both sockets are
 * forgotten at close, wherever their entry was.
 */
static void test_spill(void **state)
{
	enum { CONNECTIONS = 3 };
	struct capture *c = calloc(1, sizeof(*c));
	struct conn_sides s[CONNECTIONS];
	struct ring_buffer *rb;
	struct conn_bpf *obj;
	int lfd;

	(void)state;
	assert_non_null(c);
	memset(s, 0, sizeof(s));
	obj = conn_load(0, 1, 64, OWNER_IO);
	assert_int_equal(obj->rodata->conn_slot_mask, 0);
	rb = ring_buffer__new(bpf_map__fd(obj->maps.events), on_event, c, NULL);
	assert_non_null(rb);
	assert_int_equal(conn_bpf__attach(obj), 0);

	/* A listener per exchange (exchange_forked closes it); records are
	 * kept by port, so each is drained before the next. */
	for (int i = 0; i < CONNECTIONS; i++) {
		lfd = listener_or_fail(AF_INET);
		c->port = bound_port(lfd);
		exchange_forked(AF_INET, lfd, &s[i]);
		drain_conns(rb, c, 2 * (i + 1));
	}
	assert_int_equal(c->bad, 0);
	assert_int_equal(loss_total(obj, FS_LOSS_MAP_FULL), 0);
	for (int i = 0; i < CONNECTIONS; i++) {
		const struct fs_tcp_conn_event *client = NULL, *server = NULL;

		assert_int_equal(conns_of(c, s[i].client_cookie, &client), 1);
		assert_int_equal(conns_of(c, s[i].server_cookie, &server), 1);
		if (!path_is(client, client_path) || !path_is(server, server_path))
			dump(c);
		assert_true(path_is(client, client_path));
		assert_true(path_is(server, server_path));
		assert_int_equal(client->bytes_acked, CLIENT_BYTES);
		assert_int_equal(server->bytes_acked, SERVER_BYTES);
		assert_int_equal(client->pid, getpid());
		assert_int_equal(server->pid, s[i].accepter);
		assert_string_equal(server->comm, ACCEPTER_COMM);
		assert_forgotten(obj, s[i].client_cookie);
		assert_forgotten(obj, s[i].server_cookie);
	}
	ring_buffer__free(rb);
	conn_bpf__destroy(obj);
	free(c);
}

/* Burns socket cookies (one per throwaway socket) until the next one the
 * kernel hands out falls in `slot` of a table of `slots`. Cookies come
 * from one counter for the whole host: a socket elsewhere taking one
 * meanwhile only moves ours by one. */
static void steer_cookie(uint32_t slots, uint32_t slot)
{
	for (unsigned tries = 0; tries < 4 * slots; tries++) {
		int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		uint64_t cookie;

		assert_true(fd >= 0);
		cookie = sock_cookie(fd);
		close(fd);
		assert_true(cookie != 0);
		if (((cookie + 1) & (slots - 1)) == slot)
			return;
	}
	fail_msg("cookies do not come from one counter here");
}

/*
 * A table sized for 32 sockets (32 slots, a spill of 16) holds 32 sockets
 * alive at once when their cookies collide as badly as the spill allows:
 * 16 connections whose clients are steered two by two onto the same slot
 * (slots 0, 2, .. 14; each accepted child takes the next cookie, so the
 * next slot), so that 16 slots are taken and the 16 second comers fill the
 * spill. Nothing is lost and every socket's entry is in its slot or in
 * the spill. One more connection onto a taken slot finds the spill full:
 * counted, and its two records still go out at close. Afterwards every
 * entry is gone.
 */
static void test_capacity(void **state)
{
	enum { SOCKETS = 32, CONNECTIONS = SOCKETS / 2 + 1 };
	struct capture *c = calloc(1, sizeof(*c));
	int cfd[CONNECTIONS], afd[CONNECTIONS];
	uint64_t cookie[2 * CONNECTIONS];
	uint8_t used[SOCKETS] = { 0 };
	unsigned spilled = 0, distinct = 0;
	struct ring_buffer *rb;
	struct conn_bpf *obj;
	int lfd;

	(void)state;
	assert_non_null(c);
	obj = table_attach(c, SOCKETS, 0, false, &lfd, &rb);

	for (int i = 0; i < CONNECTIONS; i++) {
		steer_cookie(SOCKETS, 2 * (uint32_t)(i % (SOCKETS / 4)));
		cfd[i] = connect_to(AF_INET, c->port);
		afd[i] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		assert_true(afd[i] >= 0);
		cookie[2 * i] = sock_cookie(cfd[i]);
		cookie[2 * i + 1] = sock_cookie(afd[i]);
		if (i == CONNECTIONS - 1)
			break;
		for (int k = 2 * i; k < 2 * i + 2; k++) {
			if (used[cookie[k] & (SOCKETS - 1)]++)
				spilled++;
			else
				distinct++;
		}
	}
	print_message("%u sockets in %u slots, %u in the spill; map full %llu times\n",
		      SOCKETS, distinct, spilled,
		      (unsigned long long)loss_total(obj, FS_LOSS_MAP_FULL));
	/* the steering worked (a stray cookie elsewhere may move a pair) */
	assert_true(spilled >= SOCKETS / 2 - 4 && spilled <= SOCKETS / 2);
	for (int k = 0; k < 2 * (CONNECTIONS - 1); k++) {
		unsigned place = entry_place(obj, cookie[k]);

		if (place != IN_SLOT && place != IN_SPILL)
			fail_msg("socket %d (cookie %llu): entry place %u", k,
				 (unsigned long long)cookie[k], place);
	}
	assert_int_equal(loss_total(obj, FS_LOSS_MAP_FULL) > 0, 1); /* the last connection */

	for (int i = 0; i < CONNECTIONS; i++) {
		close(cfd[i]);
		close(afd[i]);
	}
	drain_conns(rb, c, 2 * CONNECTIONS);
	assert_int_equal(c->bad, 0);
	for (int k = 0; k < 2 * CONNECTIONS; k++) {
		const struct fs_tcp_conn_event *e = NULL;

		assert_int_equal(conns_of(c, cookie[k], &e), 1);
		if (k < 2 * (CONNECTIONS - 1)) /* had an entry: its whole path */
			assert_int_equal(e->state_path[0], k % 2 ? FS_TCP_SYN_RECV : FS_TCP_SYN_SENT);
		assert_forgotten(obj, cookie[k]);
	}
	close(lfd);
	ring_buffer__free(rb);
	conn_bpf__destroy(obj);
	free(c);
}

/*
 * The tcp_state policies other than "all": the connection records are the
 * same (whole path of states, owners, bytes), and only the transitions the
 * policy names become state records.
 */
static void run_state_policy(uint32_t policy)
{
	struct capture *c = calloc(1, sizeof(*c));
	const struct fs_tcp_conn_event *client = NULL, *server = NULL;
	struct conn_sides s = { 0 };
	struct ring_buffer *rb;
	struct timespec start;
	struct conn_bpf *obj;
	unsigned established = 0;
	int lfd;

	assert_non_null(c);
	obj = conn_bpf__open();
	assert_non_null(obj);
	obj->rodata->tcp_state_events = policy;
	assert_int_equal(bpf_map__set_max_entries(obj->maps.events, RING_BYTES), 0);
	assert_int_equal(conn_bpf__load(obj), 0);
	rb = ring_buffer__new(bpf_map__fd(obj->maps.events), on_event, c, NULL);
	assert_non_null(rb);
	assert_int_equal(conn_bpf__attach(obj), 0);
	lfd = listener_or_fail(AF_INET);
	c->port = bound_port(lfd);

	exchange_forked(AF_INET, lfd, &s);
	clock_gettime(CLOCK_MONOTONIC, &start);
	while ((!conns_of(c, s.client_cookie, NULL) || !conns_of(c, s.server_cookie, NULL)) &&
	       elapsed_ms(&start) <= POLL_BUDGET_MS)
		assert_true(ring_buffer__poll(rb, 100) >= 0);
	/* the listener's close comes after the server's: give it its time */
	ring_buffer__poll(rb, 200);

	assert_int_equal(c->bad, 0);
	assert_int_equal(conns_of(c, s.client_cookie, &client), 1);
	assert_int_equal(conns_of(c, s.server_cookie, &server), 1);
	assert_true(path_is(client, client_path));
	assert_true(path_is(server, server_path));
	assert_int_equal(client->bytes_acked, CLIENT_BYTES);
	assert_int_equal(server->bytes_acked, SERVER_BYTES);
	assert_int_equal(server->pid, s.accepter);
	assert_int_equal(client->pid, getpid());
	for (unsigned i = 0; i < c->nstates; i++) {
		const struct fs_tcp_state_event *e = &c->states[i];

		check_state_header(e);
		assert_true(policy == FS_STATES_OPEN);
		assert_true(e->new_state == FS_TCP_ESTABLISHED || e->new_state == FS_TCP_LISTEN ||
			    (e->old_state == FS_TCP_LISTEN && e->new_state == FS_TCP_CLOSE));
		if (e->new_state == FS_TCP_ESTABLISHED)
			established++;
	}
	if (policy == FS_STATES_OPEN) {
		assert_int_equal(established, 2);
		assert_non_null(state_of(c, s.client_cookie, FS_TCP_SYN_SENT, FS_TCP_ESTABLISHED));
		assert_non_null(state_of(c, s.server_cookie, FS_TCP_SYN_RECV, FS_TCP_ESTABLISHED));
		assert_non_null(state_of(c, s.listener_cookie, FS_TCP_LISTEN, FS_TCP_CLOSE));
	}
	assert_forgotten(obj, s.client_cookie);
	assert_forgotten(obj, s.server_cookie);

	ring_buffer__free(rb);
	conn_bpf__destroy(obj);
	free(c);
}

static void test_state_policy_open(void **state)
{
	(void)state;
	run_state_policy(FS_STATES_OPEN);
}

static void test_state_policy_none(void **state)
{
	(void)state;
	run_state_policy(FS_STATES_NONE);
}

/* What the loader gets when it changes nothing. */
static void test_defaults(void **state)
{
	(void)state;
	assert_int_equal(bpf_map__max_entries(skel->maps.losses), FS_LOSS_MAX);
	assert_int_equal(bpf_map__max_entries(skel->maps.events), RING_BYTES);
	assert_int_equal(bpf_map__max_entries(skel->maps.conns), CONNS_DEFAULT);
	assert_int_equal(bpf_map__key_size(skel->maps.conns), sizeof(uint32_t));
	assert_int_equal(bpf_map__type(skel->maps.conns), BPF_MAP_TYPE_ARRAY);
	assert_int_equal(skel->rodata->conn_slot_mask, CONNS_DEFAULT - 1);
	assert_int_equal(bpf_map__max_entries(skel->maps.conns_spill), CONNS_DEFAULT / 2);
	assert_int_equal(bpf_map__key_size(skel->maps.conns_spill), sizeof(uint64_t));
	assert_int_equal(bpf_map__type(skel->maps.conns_spill), BPF_MAP_TYPE_HASH);
	assert_int_equal(skel->rodata->ringbuf_wakeup_bytes, 0);
	assert_int_equal(skel->rodata->tcp_state_events, FS_STATES_ALL);
	for (uint32_t r = 0; r < FS_LOSS_MAX; r++)
		(void)loss_total(skel, r);
}

/* A one-page ring that nobody reads overflows after a few connections, and
 * the records that did not fit are counted. */
static void test_ringbuf_full_is_counted(void **state)
{
	struct conn_bpf *small = conn_bpf__open();
	long page = sysconf(_SC_PAGESIZE);

	(void)state;
	assert_non_null(small);
	assert_int_equal(bpf_map__set_max_entries(small->maps.events, page), 0);
	assert_int_equal(conn_bpf__load(small), 0);
	assert_int_equal(conn_bpf__attach(small), 0);
	assert_int_equal(loss_total(small, FS_LOSS_RINGBUF_FULL), 0);

	for (long i = 0; i < page / (long)sizeof(struct fs_tcp_state_event) + 1; i++) {
		struct conn_sides s;
		int lfd = loopback_listener(AF_INET);

		assert_true(lfd >= 0);
		exchange_local(AF_INET, lfd, &s);
		close(lfd);
	}
	assert_true(loss_total(small, FS_LOSS_RINGBUF_FULL) > 0);
	conn_bpf__destroy(small);
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static int load_skeleton(void **state)
{
	(void)state;
	skel = conn_bpf__open();
	if (!skel)
		return -1;
	if (bpf_map__set_max_entries(skel->maps.events, RING_BYTES) || conn_bpf__load(skel) ||
	    conn_bpf__attach(skel)) {
		fprintf(stderr, "conn: load/attach failed: %s\n", strerror(errno));
		conn_bpf__destroy(skel);
		skel = NULL;
		return -1;
	}
	return 0;
}

static int destroy_skeleton(void **state)
{
	(void)state;
	conn_bpf__destroy(skel);
	skel = NULL;
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_lifecycle_ipv4),
		cmocka_unit_test(test_lifecycle_ipv6),
		cmocka_unit_test(test_lifecycle_ipv4_forced_wakeup),
		cmocka_unit_test(test_lifecycle_ipv6_forced_wakeup),
		cmocka_unit_test(test_lifecycle_ipv4_no_wakeup),
		cmocka_unit_test(test_lifecycle_ipv6_no_wakeup),
		cmocka_unit_test(test_lifecycle_ipv4_accept_syscall),
		cmocka_unit_test(test_lifecycle_ipv6_accept_syscall),
		cmocka_unit_test(test_midlife),
		cmocka_unit_test(test_midlife_accept_syscall),
		cmocka_unit_test(test_owner_split_io),
		cmocka_unit_test(test_owner_split_accept_syscall),
		cmocka_unit_test(test_dgram_owner_ipv4),
		cmocka_unit_test(test_dgram_owner_ipv6),
		cmocka_unit_test(test_dgram_owner_accept_syscall),
		cmocka_unit_test(test_state_policy_open),
		cmocka_unit_test(test_state_policy_none),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_spill),
		cmocka_unit_test(test_capacity),
		cmocka_unit_test(test_map_full_is_counted),
		cmocka_unit_test(test_ringbuf_full_is_counted),
	};

	if (geteuid() != 0)
		test_skip_all("loading BPF programs needs root");
	if (access(BTF_PATH, R_OK) != 0)
		test_skip_all("the kernel has no BTF (" BTF_PATH "; CONFIG_DEBUG_INFO_BTF)");
	libbpf_set_print(libbpf_print);
	return cmocka_run_group_tests(tests, load_skeleton, destroy_skeleton);
}
