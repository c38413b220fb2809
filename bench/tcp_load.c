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
 *   tcp_load flows IFNAME DSTMAC ADDR PORT SECONDS RATE
 *                                        new UDP flows at RATE per second:
 *                                        one 64-byte IPv4 datagram each, from
 *                                        a source address and port no flow of
 *                                        this run had (10.254.0.0/16 x ports
 *                                        1024-65535), written to IFNAME with
 *                                        an AF_PACKET socket (through TC
 *                                        egress); prints "flows_per_s N"
 *
 * The server tells the two apart by the first byte: 'B' bulk, 'S' storm.
 */
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
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

/* ---- new UDP flows at a rate ---------------------------------------------- */

#define FLOW_BATCH 64
#define FLOW_PAYLOAD 36 /* 20 + 8 + 36 = 64-byte IP packets */

struct flow_frame {
	struct ether_header eth;
	struct iphdr ip;
	struct udphdr udp;
	char payload[FLOW_PAYLOAD];
} __attribute__((packed));

static uint16_t ip_checksum(const void *data, size_t len)
{
	const uint16_t *w = data;
	uint32_t sum = 0;

	for (; len > 1; len -= 2)
		sum += *w++;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* The n-th flow of the run: source 10.254.0.0/16 x ports 1024..65535. */
static void flow_frame_fill(struct flow_frame *f, uint64_t n)
{
	uint32_t port = 1024 + (uint32_t)(n % 64512), host = (uint32_t)(n / 64512) & 0xffff;

	f->ip.saddr = htonl((10u << 24) | (254u << 16) | host);
	f->udp.source = htons((uint16_t)port);
	f->ip.check = 0;
	f->ip.check = ip_checksum(&f->ip, sizeof(f->ip));
}

static int new_flows(const char *ifname, const char *mac, const char *addr, const char *port,
		     double seconds, double rate)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_halen = ETH_ALEN };
	static struct flow_frame frames[FLOW_BATCH];
	struct mmsghdr msgs[FLOW_BATCH];
	struct iovec iov[FLOW_BATCH];
	unsigned m[ETH_ALEN];
	struct in_addr dst;
	uint64_t sent = 0;
	double start, t;
	int fd;

	if (sscanf(mac, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6 ||
	    inet_pton(AF_INET, addr, &dst) != 1 || rate <= 0) {
		fprintf(stderr, "tcp_load flows: bad MAC, IPv4 address or rate\n");
		return 2;
	}
	sll.sll_ifindex = (int)if_nametoindex(ifname);
	fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (!sll.sll_ifindex || fd < 0) {
		perror("tcp_load flows");
		return 1;
	}
	for (int i = 0; i < FLOW_BATCH; i++) {
		struct flow_frame *f = &frames[i];

		for (int b = 0; b < ETH_ALEN; b++)
			f->eth.ether_dhost[b] = sll.sll_addr[b] = (uint8_t)m[b];
		f->eth.ether_type = htons(ETHERTYPE_IP);
		f->ip.version = 4;
		f->ip.ihl = 5;
		f->ip.tot_len = htons(sizeof(*f) - sizeof(f->eth));
		f->ip.ttl = 64;
		f->ip.protocol = IPPROTO_UDP;
		f->ip.daddr = dst.s_addr;
		f->udp.dest = htons((uint16_t)atoi(port));
		f->udp.len = htons(sizeof(f->udp) + FLOW_PAYLOAD);
		iov[i] = (struct iovec){ f, sizeof(*f) };
		msgs[i] = (struct mmsghdr){ .msg_hdr = { .msg_name = &sll, .msg_namelen = sizeof(sll),
							 .msg_iov = &iov[i], .msg_iovlen = 1 } };
	}
	start = now_s();
	while ((t = now_s() - start) < seconds) {
		uint64_t due = (uint64_t)(t * rate), n;
		int r;

		if (sent >= due) {
			usleep(1000);
			continue;
		}
		n = due - sent < FLOW_BATCH ? due - sent : FLOW_BATCH;
		for (uint64_t i = 0; i < n; i++)
			flow_frame_fill(&frames[i], sent + i);
		r = sendmmsg(fd, msgs, (unsigned)n, 0);
		if (r < 0 && errno != ENOBUFS && errno != EAGAIN) {
			perror("tcp_load flows: sendmmsg");
			return 1;
		}
		if (r > 0)
			sent += (uint64_t)r;
	}
	printf("flows_per_s %.0f\nflows %llu\n", sent / (now_s() - start), (unsigned long long)sent);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (argc == 8 && !strcmp(argv[1], "flows"))
		return new_flows(argv[2], argv[3], argv[4], argv[5], atof(argv[6]), atof(argv[7]));
	if (argc < 4) {
		fprintf(stderr, "usage: tcp_load server|bulk|storm ADDR PORT [SECONDS]\n"
				"       tcp_load flows IFNAME DSTMAC ADDR PORT SECONDS RATE\n");
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
