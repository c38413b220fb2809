/*
 * test_bpf_load: the conn BPF program on the real kernel. Loads and attaches
 * the skeleton, makes TCP connections over 127.0.0.1 and ::1, and checks
 * what comes out of the ring buffer, and that the loss counters work.
 *
 * Needs root and kernel BTF; skips (fails under CI=true) without them.
 * Other TCP traffic on the machine reaches the same ring buffer: records are
 * kept only when our listener's port is on one side, then told apart by the
 * socket cookies of our three sockets (SO_COOKIE), so it is ignored.
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

#include <cmocka.h>

#include <bpf/libbpf.h>

#include "conn.skel.h"
#include "events.h"
#include "skip.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

#define BTF_PATH "/sys/kernel/btf/vmlinux"
#define RING_BYTES (1u << 20)
#define POLL_BUDGET_MS 5000
#define MAX_SEEN 64

static const uint8_t v4_loopback[16] = { [10] = 0xff, [11] = 0xff, 127, 0, 0, 1 };
static const uint8_t v6_loopback[16] = { [15] = 1 };

/* What one connection did, seen from user space: its three sockets. */
struct conn_sides {
	uint16_t listen_port, client_port;
	uint64_t listener_cookie, client_cookie, server_cookie;
};

/* The events of one connection, collected by on_event(). */
struct capture {
	uint16_t port; /* the listener's: every event of ours has it on one side */
	unsigned n;
	struct fs_tcp_state_event seen[MAX_SEEN];
	unsigned foreign; /* other traffic's events, ignored */
	unsigned bad_size;
};

static struct conn_bpf *skel;

static int on_event(void *ctx, void *data, size_t size)
{
	struct capture *c = ctx;
	const struct fs_tcp_state_event *e = data;

	if (size != sizeof(*e)) {
		c->bad_size++;
		return 0;
	}
	if (c->port == 0 || (e->local_port != c->port && e->remote_port != c->port)) {
		c->foreign++;
		return 0;
	}
	if (c->n < MAX_SEEN)
		c->seen[c->n++] = *e;
	return 0;
}

static const struct fs_tcp_state_event *find(const struct capture *c, uint64_t cookie,
					     int old_state, int new_state)
{
	for (unsigned i = 0; i < c->n; i++) {
		const struct fs_tcp_state_event *e = &c->seen[i];

		if (e->sock_cookie == cookie && (old_state < 0 || e->old_state == old_state) &&
		    e->new_state == new_state)
			return e;
	}
	return NULL;
}

/* Every socket of the connection reached CLOSE. */
static bool capture_complete(const struct capture *c, const struct conn_sides *s)
{
	return find(c, s->listener_cookie, FS_TCP_CLOSE, FS_TCP_LISTEN) &&
	       find(c, s->listener_cookie, FS_TCP_LISTEN, FS_TCP_CLOSE) &&
	       find(c, s->client_cookie, FS_TCP_CLOSE, FS_TCP_SYN_SENT) &&
	       find(c, s->client_cookie, FS_TCP_SYN_SENT, FS_TCP_ESTABLISHED) &&
	       find(c, s->client_cookie, -1, FS_TCP_CLOSE) &&
	       find(c, s->server_cookie, FS_TCP_SYN_RECV, FS_TCP_ESTABLISHED) &&
	       find(c, s->server_cookie, -1, FS_TCP_CLOSE);
}

static void drain(struct ring_buffer *rb, struct capture *c, const struct conn_sides *s)
{
	struct timespec start, now;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		int n = ring_buffer__poll(rb, 100);

		assert_true(n >= 0 || n == -EINTR);
		if (capture_complete(c, s))
			return;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 >
		    POLL_BUDGET_MS)
			return;
	}
}

static void dump(const struct capture *c)
{
	for (unsigned i = 0; i < c->n; i++) {
		const struct fs_tcp_state_event *e = &c->seen[i];

		print_message("  cookie %llu port %u->%u state %u->%u dir %u pid %u comm '%.16s'\n",
			      (unsigned long long)e->sock_cookie, e->local_port, e->remote_port,
			      e->old_state, e->new_state, e->direction, e->pid, e->comm);
	}
}

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

	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static uint64_t sock_cookie(int fd)
{
	uint64_t cookie = 0;
	socklen_t len = sizeof(cookie);

	assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len), 0);
	assert_true(cookie != 0);
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
	if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 4)) {
		int err = errno;

		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

/* connect, accept, one byte each way; the client closes first, then the
 * accepted end, then the listener. */
static void tcp_exchange(int family, int lfd, struct conn_sides *s)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char byte = 'x';
	int cfd, afd;

	s->listen_port = bound_port(lfd);
	s->listener_cookie = sock_cookie(lfd);
	len = make_addr(family, s->listen_port, &ss);
	cfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(cfd >= 0);
	assert_int_equal(connect(cfd, (struct sockaddr *)&ss, len), 0);
	s->client_port = bound_port(cfd);
	s->client_cookie = sock_cookie(cfd);
	afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(afd >= 0);
	s->server_cookie = sock_cookie(afd);

	assert_int_equal(send(cfd, &byte, 1, 0), 1);
	assert_int_equal(recv(afd, &byte, 1, 0), 1);
	assert_int_equal(send(afd, &byte, 1, 0), 1);
	assert_int_equal(recv(cfd, &byte, 1, 0), 1);

	close(cfd);
	assert_int_equal(recv(afd, &byte, 1, 0), 0); /* the client's FIN */
	close(afd);
	close(lfd);
}

static void check_header(const struct fs_tcp_state_event *e)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	assert_int_equal(e->hdr.type, FS_EVENT_TCP_STATE);
	assert_int_equal(e->hdr.size, sizeof(*e));
	assert_int_equal(e->hdr.reserved, 0);
	assert_true(e->hdr.ts_ns > 0);
	assert_true(e->hdr.ts_ns <= (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec);
	assert_int_equal(e->reserved1, 0);
	assert_int_equal(e->reserved2, 0);
	assert_in_range(e->old_state, FS_TCP_ESTABLISHED, FS_TCP_STATE_MAX);
	assert_in_range(e->new_state, FS_TCP_ESTABLISHED, FS_TCP_STATE_MAX);
}

/* Every event of a connected socket (client or accepted end). */
static void check_connected(const struct capture *c, uint64_t cookie, uint16_t local_port,
			    uint16_t remote_port, const uint8_t addr[16])
{
	unsigned n = 0;

	for (unsigned i = 0; i < c->n; i++) {
		const struct fs_tcp_state_event *e = &c->seen[i];

		if (e->sock_cookie != cookie)
			continue;
		n++;
		assert_memory_equal(e->local_addr, addr, 16);
		assert_memory_equal(e->remote_addr, addr, 16);
		assert_int_equal(e->remote_port, remote_port);
		/* not chosen yet at CLOSE -> SYN_SENT */
		if (!(e->old_state == FS_TCP_CLOSE && e->new_state == FS_TCP_SYN_SENT))
			assert_int_equal(e->local_port, local_port);
	}
	assert_true(n >= 3);
}

static void check_client(const struct capture *c, const struct conn_sides *s)
{
	const struct fs_tcp_state_event *e;
	char comm[FS_COMM_LEN + 1] = "";

	/* connect() runs in our task: the only record that names it. */
	e = find(c, s->client_cookie, FS_TCP_CLOSE, FS_TCP_SYN_SENT);
	assert_non_null(e);
	assert_int_equal(e->direction, FS_DIR_OUT);
	assert_int_equal(e->pid, getpid());
	assert_int_equal(prctl(PR_GET_NAME, comm), 0);
	assert_string_equal(e->comm, comm);

	e = find(c, s->client_cookie, FS_TCP_SYN_SENT, FS_TCP_ESTABLISHED);
	assert_non_null(e);
	assert_int_equal(e->direction, FS_DIR_OUT);
	assert_int_equal(e->pid, 0);
	assert_string_equal(e->comm, "");

	e = find(c, s->client_cookie, -1, FS_TCP_CLOSE);
	assert_non_null(e);
	assert_int_equal(e->pid, 0);
}

static void check_server(const struct capture *c, const struct conn_sides *s,
			 const uint8_t addr[16])
{
	const struct fs_tcp_state_event *e;

	e = find(c, s->server_cookie, FS_TCP_SYN_RECV, FS_TCP_ESTABLISHED);
	assert_non_null(e);
	assert_int_equal(e->direction, FS_DIR_IN);
	assert_int_equal(e->pid, 0);
	assert_string_equal(e->comm, "");
	assert_non_null(find(c, s->server_cookie, FS_TCP_ESTABLISHED, FS_TCP_CLOSE_WAIT));
	assert_non_null(find(c, s->server_cookie, -1, FS_TCP_CLOSE));

	/* The listener has no peer; it keeps its port to the end. */
	e = find(c, s->listener_cookie, FS_TCP_CLOSE, FS_TCP_LISTEN);
	assert_non_null(e);
	assert_int_equal(e->direction, FS_DIR_IN);
	assert_int_equal(e->local_port, s->listen_port);
	assert_int_equal(e->remote_port, 0);
	assert_memory_equal(e->local_addr, addr, 16);
	e = find(c, s->listener_cookie, FS_TCP_LISTEN, FS_TCP_CLOSE);
	assert_non_null(e);
	assert_int_equal(e->local_port, s->listen_port);
}

static void run_family(int family, const uint8_t addr[16])
{
	struct capture *c = calloc(1, sizeof(*c));
	struct ring_buffer *rb = NULL;
	struct conn_sides s = { 0 };
	int lfd;

	assert_non_null(c);
	rb = ring_buffer__new(bpf_map__fd(skel->maps.events), on_event, c, NULL);
	assert_non_null(rb);
	ring_buffer__consume(rb); /* older records, e.g. the other family's */

	lfd = loopback_listener(family);
	if (lfd < 0 && family == AF_INET6 &&
	    (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL)) {
		const char *ci = getenv("CI");

		ring_buffer__free(rb);
		free(c);
		if (ci && strcmp(ci, "true") == 0)
			fail_msg("no IPv6 loopback here (%s), and CI=true", strerror(errno));
		fprintf(stderr, "SKIPPED: no IPv6 loopback here: %s\n", strerror(errno));
		skip();
	}
	assert_true(lfd >= 0);
	c->port = bound_port(lfd);
	tcp_exchange(family, lfd, &s);
	drain(rb, c, &s);
	ring_buffer__free(rb);

	print_message("port %u: %u records of ours, %u of other traffic\n", s.listen_port, c->n,
		      c->foreign);
	if (!capture_complete(c, &s))
		dump(c);
	assert_int_equal(c->bad_size, 0);
	for (unsigned i = 0; i < c->n; i++)
		check_header(&c->seen[i]);
	check_connected(c, s.client_cookie, s.client_port, s.listen_port, addr);
	check_connected(c, s.server_cookie, s.listen_port, s.client_port, addr);
	check_client(c, &s);
	check_server(c, &s, addr);
	free(c);
}

static void test_tcp_ipv4(void **state)
{
	(void)state;
	run_family(AF_INET, v4_loopback);
}

static void test_tcp_ipv6(void **state)
{
	(void)state;
	run_family(AF_INET6, v6_loopback);
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

static void test_losses_readable(void **state)
{
	(void)state;
	assert_int_equal(bpf_map__max_entries(skel->maps.losses), FS_LOSS_MAX);
	assert_int_equal(bpf_map__max_entries(skel->maps.events), RING_BYTES);
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
		tcp_exchange(AF_INET, lfd, &s);
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
		cmocka_unit_test(test_tcp_ipv4),
		cmocka_unit_test(test_tcp_ipv6),
		cmocka_unit_test(test_losses_readable),
		cmocka_unit_test(test_ringbuf_full_is_counted),
	};

	if (geteuid() != 0)
		test_skip_all("loading BPF programs needs root");
	if (access(BTF_PATH, R_OK) != 0)
		test_skip_all("the kernel has no BTF (" BTF_PATH "; CONFIG_DEBUG_INFO_BTF)");
	libbpf_set_print(libbpf_print);
	return cmocka_run_group_tests(tests, load_skeleton, destroy_skeleton);
}
