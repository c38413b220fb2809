/*
 * tcp_peer: one side of a TCP connection of known shape, for the kernel
 * end-to-end tests.
 *
 *   tcp_peer server ADDR PORT K M   listen, accept one connection, read
 *                                   exactly K bytes, write M, close
 *   tcp_peer client ADDR PORT K M   connect, write K bytes, read exactly M,
 *                                   wait for the server to close, close
 *   tcp_peer udp-server ADDR PORT N S   bind, receive N datagrams of S bytes
 *   tcp_peer udp-client ADDR PORT N S   send N datagrams of S bytes (1 ms
 *                                   apart, so none overflows the receiver)
 *
 * The client sets TCP_TX_DELAY (microseconds) from $TCP_PEER_TX_DELAY_US if
 * set: its TCP then stamps every packet it sends with a departure time that
 * much in the future (with no pacing qdisc the packet leaves at once).
 *
 * Prints "pid=N comm=NAME" first (the server once listening, so a test can
 * start the client). comm is set to fs-server / fs-client so the test can
 * tell the owner captured in the kernel from any other task. Exit 0 on
 * success, 3 when the connection is refused, 1 on any other error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef TCP_TX_DELAY
#define TCP_TX_DELAY 37 /* linux/tcp.h, since 5.4 */
#endif

static int parse_addr(const char *addr, int port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		*len = sizeof(*in4);
		return AF_INET;
	}
	if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*in6);
		return AF_INET6;
	}
	return -1;
}

static int transfer(int fd, long send_n, long recv_n, int send_first)
{
	char buf[65536];

	memset(buf, 'x', sizeof(buf));
	for (int step = 0; step < 2; step++) {
		int sending = (step == 0) == send_first;
		long left = sending ? send_n : recv_n;

		while (left > 0) {
			size_t chunk = left < (long)sizeof(buf) ? (size_t)left : sizeof(buf);
			ssize_t n = sending ? write(fd, buf, chunk) : read(fd, buf, chunk);

			if (n <= 0) {
				fprintf(stderr, "tcp_peer: %s: %s\n", sending ? "write" : "read",
					n ? strerror(errno) : "peer closed early");
				return -1;
			}
			left -= n;
		}
	}
	return 0;
}

static int server(struct sockaddr_storage *ss, socklen_t len, long k, long m)
{
	int one = 1, lfd, fd;

	lfd = socket(ss->ss_family, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)ss, len) || listen(lfd, 4)) {
		perror("tcp_peer: listen");
		return 1;
	}
	printf("pid=%d comm=fs-server\n", getpid());
	fflush(stdout);
	fd = accept(lfd, NULL, NULL);
	if (fd < 0 || transfer(fd, m, k, 0))
		return 1;
	close(fd);
	close(lfd);
	return 0;
}

static int client(struct sockaddr_storage *ss, socklen_t len, long k, long m)
{
	int fd = socket(ss->ss_family, SOCK_STREAM, 0);
	char buf_eof[512];
	const char *delay = getenv("TCP_PEER_TX_DELAY_US");

	printf("pid=%d comm=fs-client\n", getpid());
	fflush(stdout);
	if (fd < 0)
		return 1;
	if (delay) {
		int us = atoi(delay);

		if (setsockopt(fd, IPPROTO_TCP, TCP_TX_DELAY, &us, sizeof(us))) {
			perror("tcp_peer: TCP_TX_DELAY");
			return 1;
		}
	}
	if (connect(fd, (struct sockaddr *)ss, len)) {
		int err = errno;

		fprintf(stderr, "tcp_peer: connect: %s\n", strerror(err));
		return err == ECONNREFUSED ? 3 : 1;
	}
	if (transfer(fd, k, m, 1))
		return 1;
	/* The server closes first: no simultaneous close, so the order of the
	 * FINs (and the flow's history) is always the same. */
	while (read(fd, buf_eof, sizeof(buf_eof)) > 0)
		;
	close(fd);
	return 0;
}

static int udp_server(struct sockaddr_storage *ss, socklen_t len, long n, long size)
{
	int fd = socket(ss->ss_family, SOCK_DGRAM, 0);
	char buf[65536];

	if (fd < 0 || bind(fd, (struct sockaddr *)ss, len)) {
		perror("tcp_peer: udp bind");
		return 1;
	}
	printf("pid=%d comm=fs-server\n", getpid());
	fflush(stdout);
	for (long i = 0; i < n; i++) {
		ssize_t got = recv(fd, buf, sizeof(buf), 0);

		if (got != size) {
			fprintf(stderr, "tcp_peer: udp recv: %zd bytes, want %ld\n", got, size);
			return 1;
		}
	}
	close(fd);
	return 0;
}

static int udp_client(struct sockaddr_storage *ss, socklen_t len, long n, long size)
{
	int fd = socket(ss->ss_family, SOCK_DGRAM, 0);
	char buf[65536];

	printf("pid=%d comm=fs-client\n", getpid());
	fflush(stdout);
	if (fd < 0 || size < 0 || size > (long)sizeof(buf))
		return 1;
	memset(buf, 'u', (size_t)size);
	for (long i = 0; i < n; i++) {
		if (sendto(fd, buf, (size_t)size, 0, (struct sockaddr *)ss, len) != size) {
			perror("tcp_peer: udp send");
			return 1;
		}
		usleep(1000);
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len;
	long k, m;

	if (argc != 6 || parse_addr(argv[2], atoi(argv[3]), &ss, &len) < 0) {
		fprintf(stderr, "usage: tcp_peer server|client|udp-server|udp-client ADDR PORT K M\n");
		return 2;
	}
	k = atol(argv[4]);
	m = atol(argv[5]);
	if (strcmp(argv[1], "udp-server") == 0) {
		prctl(PR_SET_NAME, "fs-server");
		return udp_server(&ss, len, k, m);
	}
	if (strcmp(argv[1], "udp-client") == 0) {
		prctl(PR_SET_NAME, "fs-client");
		return udp_client(&ss, len, k, m);
	}
	if (strcmp(argv[1], "server") == 0) {
		prctl(PR_SET_NAME, "fs-server");
		return server(&ss, len, k, m);
	}
	prctl(PR_SET_NAME, "fs-client");
	return client(&ss, len, k, m);
}
