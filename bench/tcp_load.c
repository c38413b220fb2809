/*
 * tcp_load: TCP load of two shapes for bench/overhead.sh.
 *
 *   tcp_load server ADDR PORT            accept forever: read and discard
 *                                        (bulk), or read 1 byte, write 1 byte,
 *                                        close (storm), per connection, in
 *                                        one epoll loop
 *   tcp_load bulk ADDR PORT SECONDS      one connection, write 64 KiB chunks
 *                                        for SECONDS; prints "bytes_per_s N"
 *   tcp_load storm ADDR PORT SECONDS     connect, write 1, read 1, close, as
 *                                        fast as possible with 32 in flight;
 *                                        prints "conns_per_s N"
 *
 * The server tells the two apart by the first byte: 'B' bulk, 'S' storm.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define INFLIGHT 32

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static socklen_t make_addr(const char *addr, const char *port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)atoi(port));
		return sizeof(*in4);
	}
	if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)atoi(port));
		return sizeof(*in6);
	}
	fprintf(stderr, "tcp_load: bad address %s\n", addr);
	exit(2);
}

static void serve_one(int ep, int fd)
{
	static char buf[1 << 16];
	ssize_t n = read(fd, buf, sizeof(buf));

	if (n > 0 && buf[0] == 'S') {
		if (write(fd, "s", 1) != 1) {
			/* the client went away: nothing to do */
		}
		n = 0;
	}
	if (n <= 0 && !(n < 0 && errno == EAGAIN)) {
		epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
		close(fd);
	}
}

static int server(struct sockaddr_storage *ss, socklen_t len)
{
	int one = 1, lfd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN }, evs[64];

	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)ss, len) || listen(lfd, 4096)) {
		perror("tcp_load: listen");
		return 1;
	}
	ev.data.fd = lfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	printf("listening\n");
	fflush(stdout);
	for (;;) {
		int n = epoll_wait(ep, evs, 64, -1);

		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd != lfd) {
				serve_one(ep, fd);
				continue;
			}
			while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
				ev.data.fd = fd;
				epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
			}
		}
	}
}

static int bulk(struct sockaddr_storage *ss, socklen_t len, double seconds)
{
	static char buf[1 << 16];
	int fd = socket(ss->ss_family, SOCK_STREAM, 0);
	double t0, t;
	unsigned long long bytes = 0;

	if (connect(fd, (struct sockaddr *)ss, len)) {
		perror("tcp_load: connect");
		return 1;
	}
	memset(buf, 'B', sizeof(buf));
	t0 = now_s();
	do {
		ssize_t n = write(fd, buf, sizeof(buf));

		if (n <= 0) {
			perror("tcp_load: write");
			return 1;
		}
		bytes += (unsigned long long)n;
		t = now_s();
	} while (t - t0 < seconds);
	printf("bytes_per_s %.0f\n", bytes / (t - t0));
	close(fd);
	return 0;
}

/* Start one storm connection (non-blocking connect). */
static int storm_start(int ep, struct sockaddr_storage *ss, socklen_t len)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct epoll_event ev = { .events = EPOLLOUT };

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)ss, len) && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	ev.data.fd = fd;
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	return 0;
}

/* One storm connection is ready: writable → send 'S'; readable → done.
 * 0: still going; 1: completed; -1: failed (closed either way). */
static int storm_step(int ep, int fd, uint32_t events)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
	int r = -1;
	char c;

	if (events & (EPOLLERR | EPOLLHUP) && !(events & EPOLLIN))
		goto out;
	if (events & EPOLLOUT) {
		if (write(fd, "S", 1) != 1)
			goto out;
		epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
		return 0;
	}
	if (read(fd, &c, 1) == 1)
		r = 1;
out:
	close(fd);
	return r;
}

static int storm(struct sockaddr_storage *ss, socklen_t len, double seconds)
{
	int ep = epoll_create1(0);
	struct epoll_event evs[INFLIGHT];
	unsigned long long done = 0;
	double t0 = now_s(), t = t0;
	int inflight = 0;

	while (t - t0 < seconds) {
		while (inflight < INFLIGHT && storm_start(ep, ss, len) == 0)
			inflight++;
		int n = epoll_wait(ep, evs, INFLIGHT, 100);

		for (int i = 0; i < n; i++) {
			int r = storm_step(ep, evs[i].data.fd, evs[i].events);

			if (r)
				inflight--;
			done += (unsigned long long)(r > 0);
		}
		t = now_s();
	}
	printf("conns_per_s %.0f\n", done / (t - t0));
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (argc < 4) {
		fprintf(stderr, "usage: tcp_load server|bulk|storm ADDR PORT [SECONDS]\n");
		return 2;
	}
	len = make_addr(argv[2], argv[3], &ss);
	if (!strcmp(argv[1], "server"))
		return server(&ss, len);
	if (argc < 5)
		return 2;
	if (!strcmp(argv[1], "bulk"))
		return bulk(&ss, len, atof(argv[4]));
	if (!strcmp(argv[1], "storm"))
		return storm(&ss, len, atof(argv[4]));
	return 2;
}
