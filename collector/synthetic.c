/*
 * The synthetic event generator (synthetic.h says what mix it promises).
 *
 * How it works:
 *  1. One lifecycle at a time. synthetic_next() hands out buffered events;
 *     when the buffer is empty it plans the next lifecycle at the caller's
 *     `now` -- a TCP connection, a UDP flow or an ICMP echo flow -- and
 *     renders all of its events at once, in causal order: a connection's
 *     state changes, then its connection record, then its flow record.
 *  2. Time: a lifecycle ends at `now` (or, for a flow an idle sweep
 *     exported, some time before it) and started a sampled duration
 *     earlier (log-normal, capped at LIFETIME_CAP). Nothing is ever stamped
 *     after `now`; the records the kernel emits at close carry ts = now.
 *  3. What inet_sock_set_state really shows, not the textbook diagram:
 *     - an active close ends FIN_WAIT2 -> CLOSE: TIME_WAIT lives in a
 *       separate timewait sock whose state change is not traced;
 *     - a passive open starts LISTEN -> SYN_RECV when the child socket is
 *       cloned at the handshake's third packet (the request sock's
 *       NEW_SYN_RECV is not traced), so the socket starts one RTT after the
 *       flow's first packet, and its owner is unknown until accept();
 *     - CLOSE -> SYN_SENT fires before connect() binds the local port, so
 *       that one event carries local port 0;
 *     - an inbound SYN refused or left unanswered never had a socket: it
 *       leaves only a flow record, with no cookie and no owner.
 *  4. Consistency: all counters of a lifecycle derive from one plan
 *     (payloads, segments, retransmits), so flow bytes = packets x header +
 *     payload (+ what was resent), a connection's segs_out/segs_in equal
 *     its flow's packets on the local/remote side, and the flows' TCP flag
 *     ORs are derived from their Zeek history letters.
 *  5. Deterministic and cheap: xoshiro256** seeded through splitmix64, no
 *     rand(), no libm (exp/ln below are local approximations), no malloc
 *     after synthetic_new(). The one input from the host is its interface
 *     list (flow ifindex), read once in synthetic_new(); on one host the
 *     stream depends only on the seed and the sequence of `now` values.
 */
#include "synthetic.h"

#include <assert.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define US 1000LL
#define MS 1000000LL
#define SEC 1000000000LL

#define LIFETIME_CAP (120 * SEC)
#define IDLE_TIMEOUT (10 * SEC)   /* the flow sweep's idle timeout we mimic */
#define ACTIVE_TIMEOUT (60 * SEC) /* longer flows are exported while alive */
#define BYTE_TIME_NS 20           /* 50 MB/s: a transfer takes at least this */

#define V4_POOL 50000u
#define V6_POOL 5000u
#define ZIPF_S 1.1
#define GUIDE_BITS 12 /* a Zipf search starts from 1 of 4096 buckets */

#define EPHEMERAL_LO 32768u
#define EPHEMERAL_HI 60999u

#define PENDING_MAX 8 /* 5 state changes + connection + flow, and room */
#define MAX_STATES 6
#define MAX_IFS 8

union event_buf {
	struct fs_event_hdr hdr;
	struct fs_flow_event flow;
	struct fs_tcp_state_event state;
	struct fs_tcp_conn_event conn;
};

struct synthetic {
	uint64_t rng[4];
	uint64_t next_cookie;
	unsigned npending, next;
	union event_buf pending[PENDING_MAX];
	uint32_t ifindex[MAX_IFS];
	unsigned nif;
	struct zipf {
		uint32_t *cdf;                          /* scaled to 2^32 */
		uint32_t guide[(1u << GUIDE_BITS) + 1]; /* first rank of each bucket */
	} v4_zipf, v6_zipf;
	uint32_t v4_cdf[V4_POOL];
	uint32_t v6_cdf[V6_POOL];
};

/* ---- numbers ------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256** */
static inline uint64_t rng_next(struct synthetic *g)
{
	uint64_t *s = g->rng;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* Uniform in [0, n), n > 0 (Lemire's multiply; the bias is negligible). */
static inline uint32_t rng_below(struct synthetic *g, uint32_t n)
{
	return (uint32_t)(((rng_next(g) >> 32) * n) >> 32);
}

static inline bool rng_percent(struct synthetic *g, unsigned percent)
{
	return rng_below(g, 100) < percent;
}

static inline uint32_t rng_range(struct synthetic *g, uint32_t lo, uint32_t hi)
{
	return lo + rng_below(g, hi - lo + 1);
}

/* About N(0,1): the sum of twelve uniforms minus six (Irwin-Hall), drawn
 * as 16-bit slices of three 64-bit outputs. Tails end at +-6 sigma. */
static double rng_normal(struct synthetic *g)
{
	uint64_t w[3] = { rng_next(g), rng_next(g), rng_next(g) };
	uint64_t sum = 0;

	for (int i = 0; i < 3; i++)
		for (int k = 0; k < 4; k++)
			sum += (w[i] >> (16 * k)) & 0xffff;
	return (double)sum / 65536.0 - 6.0;
}

/* e^x for |x| < 700; relative error below 1e-9. */
static double fexp(double x)
{
	double k, r, p;
	uint64_t bits;

	if (x > 700)
		x = 700;
	if (x < -700)
		x = -700;
	k = (double)(int64_t)(x * 1.4426950408889634 + (x < 0 ? -0.5 : 0.5));
	r = x - k * 0.6931471805599453; /* |r| <= ln2 / 2 */
	p = 1 + r * (1 + r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 +
	    r * (1.0 / 720 + r * (1.0 / 5040 + r * (1.0 / 40320 + r / 362880))))))));
	memcpy(&bits, &p, sizeof(bits));
	bits += (uint64_t)(int64_t)k << 52;
	memcpy(&p, &bits, sizeof(p));
	return p;
}

/* ln x for a normal x > 0; absolute error below 1e-10. */
static double fln(double x)
{
	uint64_t bits;
	double m, z, z2;
	int e;

	memcpy(&bits, &x, sizeof(bits));
	e = (int)((bits >> 52) & 0x7ff) - 1023;
	bits = (bits & ~(0x7ffULL << 52)) | (1023ULL << 52);
	memcpy(&m, &bits, sizeof(m)); /* x = m * 2^e, m in [1, 2) */
	if (m > 1.4142135623730951) {
		m /= 2;
		e++;
	}
	z = (m - 1) / (m + 1);
	z2 = z * z;
	return e * 0.6931471805599453 +
	       2 * z * (1 + z2 * (1.0 / 3 + z2 * (1.0 / 5 + z2 * (1.0 / 7 +
	       z2 * (1.0 / 9 + z2 * (1.0 / 11 + z2 / 13))))));
}

/* A log-normal sample with the given median, clamped to [1, cap]. */
static int64_t lognormal(struct synthetic *g, double median, double sigma, int64_t cap)
{
	double v = median * fexp(sigma * rng_normal(g));

	if (v > (double)cap)
		return cap;
	return v < 1 ? 1 : (int64_t)v;
}

static int64_t max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

/* Tables whose first member is a uint32_t weight. */
static size_t pick_index(struct synthetic *g, const void *table, size_t n, size_t stride)
{
	const char *p = table;
	uint32_t total = 0, r;
	size_t i;

	for (i = 0; i < n; i++)
		total += *(const uint32_t *)(const void *)(p + i * stride);
	r = rng_below(g, total);
	for (i = 0; i + 1 < n; i++) {
		uint32_t w = *(const uint32_t *)(const void *)(p + i * stride);

		if (r < w)
			break;
		r -= w;
	}
	return i;
}

#define PICK(g, table)                                                         \
	(&(table)[pick_index((g), (table), sizeof(table) / sizeof((table)[0]), \
			     sizeof((table)[0]))])

/* ---- who: processes, services, addresses -------------------------------- */

struct proc {
	uint32_t pid, uid;
	uint64_t cgroup_id;
	char comm[FS_COMM_LEN];
};

static const struct proc p_chrome = { 2481, 1000, 9321, "chrome" };
static const struct proc p_curl = { 31337, 1000, 9321, "curl" };
static const struct proc p_python = { 4410, 1000, 9321, "python3" };
static const struct proc p_java = { 5120, 1001, 7735, "java" };
static const struct proc p_node = { 3210, 1000, 9321, "node" };
static const struct proc p_apt = { 7702, 42, 2210, "http" };
static const struct proc p_ssh = { 6021, 1000, 9321, "ssh" };
static const struct proc p_smtp = { 1577, 107, 2391, "smtp" };
static const struct proc p_resolved = { 611, 101, 1841, "systemd-resolve" };
static const struct proc p_timesyncd = { 598, 102, 1825, "systemd-timesyn" };
static const struct proc p_ping = { 9012, 1000, 9321, "ping" };
static const struct proc p_nginx = { 1123, 33, 2087, "nginx" };
static const struct proc p_sshd = { 842, 0, 1977, "sshd" };
static const struct proc p_postgres = { 1301, 112, 2145, "postgres" };
static const struct proc p_mysqld = { 1402, 113, 2163, "mysqld" };
static const struct proc p_smtpd = { 1550, 107, 2391, "smtpd" };

struct owner_choice {
	uint32_t weight;
	const struct proc *proc;
};

static const struct owner_choice web_clients[] = {
	{ 45, &p_chrome }, { 15, &p_curl }, { 12, &p_python },
	{ 10, &p_java }, { 10, &p_node }, { 8, &p_apt },
};
static const struct owner_choice db_clients[] = {
	{ 50, &p_java }, { 30, &p_python }, { 20, &p_node },
};

enum svc_kind { SVC_WEB, SVC_SSH, SVC_DB, SVC_MAIL, SVC_DNS, SVC_OTHER, SVC_KINDS };

/* How long connections of a kind live and how much each side says. */
struct svc_profile {
	double dur_median_ns, dur_sigma;
	double client_median, client_sigma; /* payload bytes, orig -> resp */
	double server_median, server_sigma; /* payload bytes, resp -> orig */
	bool server_speaks_first;
};

static const struct svc_profile profiles[SVC_KINDS] = {
	[SVC_WEB] = { 60e6, 1.8, 700, 1.0, 12000, 2.2, false },
	[SVC_SSH] = { 8e9, 2.0, 6000, 2.0, 20000, 2.2, true },
	[SVC_DB] = { 1.5e9, 2.0, 3000, 1.8, 30000, 2.2, false },
	[SVC_MAIL] = { 400e6, 1.2, 25000, 1.5, 600, 0.5, true },
	[SVC_DNS] = { 30e6, 1.0, 45, 0.3, 300, 0.8, false },
	[SVC_OTHER] = { 200e6, 2.0, 1000, 1.5, 5000, 2.0, false },
};

struct tcp_service {
	uint32_t weight;
	uint16_t port;
	uint8_t kind;
	const struct proc *owner; /* inbound: the listener; outbound: NULL */
};

static const struct tcp_service outbound_services[] = {
	{ 600, 443, SVC_WEB, NULL }, { 120, 80, SVC_WEB, NULL },
	{ 40, 8080, SVC_WEB, NULL }, { 40, 22, SVC_SSH, NULL },
	{ 50, 5432, SVC_DB, NULL }, { 30, 3306, SVC_DB, NULL },
	{ 10, 25, SVC_MAIL, NULL }, { 10, 53, SVC_DNS, NULL },
	{ 10, 6379, SVC_DB, NULL }, { 10, 8443, SVC_WEB, NULL },
	{ 5, 9200, SVC_OTHER, NULL }, { 5, 993, SVC_OTHER, NULL },
	{ 5, 5672, SVC_OTHER, NULL }, { 3, 27017, SVC_DB, NULL },
	{ 2, 11211, SVC_OTHER, NULL }, { 2, 9092, SVC_OTHER, NULL },
};

static const struct tcp_service inbound_services[] = {
	{ 45, 443, SVC_WEB, &p_nginx }, { 20, 80, SVC_WEB, &p_nginx },
	{ 15, 22, SVC_SSH, &p_sshd }, { 10, 5432, SVC_DB, &p_postgres },
	{ 5, 3306, SVC_DB, &p_mysqld }, { 5, 25, SVC_MAIL, &p_smtpd },
};

/* What scanners knock on: refused or dropped, no socket involved. */
static const uint16_t scanned_ports[] = {
	23, 445, 3389, 21, 8080, 1433, 5900, 6379, 9200, 139, 111, 2323,
};

static void addr_v4(uint8_t a[16], uint32_t ip)
{
	memset(a, 0, 10);
	a[10] = 0xff;
	a[11] = 0xff;
	a[12] = (uint8_t)(ip >> 24);
	a[13] = (uint8_t)(ip >> 16);
	a[14] = (uint8_t)(ip >> 8);
	a[15] = (uint8_t)ip;
}

static void addr_v6(uint8_t a[16], const uint16_t w[8])
{
	for (int i = 0; i < 8; i++) {
		a[2 * i] = (uint8_t)(w[i] >> 8);
		a[2 * i + 1] = (uint8_t)w[i];
	}
}

/* The host's two address pairs: the main interface and a bridge. */
static const uint32_t local_v4[2] = { 0x0a000005, 0xc0a87a01 }; /* 10.0.0.5, 192.168.122.1 */
static const uint16_t local_v6[2][8] = {
	{ 0x2001, 0x0db8, 0, 0, 0, 0, 0, 5 }, /* 2001:db8::5 */
	{ 0xfd00, 0, 0, 0x122, 0, 0, 0, 1 },  /* fd00:0:0:122::1 */
};

/* The remote pools. Rank r (0 = most popular) maps to a pool slot through
 * a fixed bijection, so popular addresses spread over the ranges; rank 0 of
 * IPv4 is 203.0.113.7. */
static uint32_t pool_v4(uint32_t rank)
{
	static const uint32_t doc_nets[3] = {
		0xcb007100, /* 203.0.113.0/24 */
		0xc6336400, /* 198.51.100.0/24 */
		0xc0000200, /* 192.0.2.0/24 */
	};
	uint32_t slot = (rank * 40503u + 6) % V4_POOL, host, net;

	if (slot < 3 * 254)
		return doc_nets[slot / 254] | (slot % 254 + 1);
	slot -= 3 * 254;
	host = slot / 2;
	net = host / 254;
	if (slot & 1) /* 198.18.0.0/15, the benchmarking range */
		return (0xc6120000 + (net << 8)) | (host % 254 + 1);
	return (0x0a800000 + (net << 8)) | (host % 254 + 1); /* 10.128.0.0/9 */
}

static void pool_v6(uint32_t rank, uint8_t a[16])
{
	uint32_t slot = (rank * 2957u) % V6_POOL;
	uint64_t x = slot, h = splitmix64(&x);
	uint16_t w[8] = { 0x2001, 0x0db8, (uint16_t)(0x100 + slot), (uint16_t)h, 0, 0, 0, 0 };

	if (h & (1ULL << 63)) { /* a SLAAC-looking interface id */
		w[4] = (uint16_t)(h >> 16);
		w[5] = (uint16_t)(h >> 32);
		w[6] = (uint16_t)(h >> 40);
		w[7] = (uint16_t)(h >> 48);
	} else { /* a short server-style one */
		w[7] = (uint16_t)(1 + (h >> 16) % 0x1ff);
	}
	addr_v6(a, w);
}

/* The first rank whose CDF reaches r (a branchless lower bound). */
static uint32_t zipf_sample(struct synthetic *g, const struct zipf *z)
{
	uint32_t r = (uint32_t)(rng_next(g) >> 32);
	uint32_t bucket = r >> (32 - GUIDE_BITS);
	const uint32_t *base = z->cdf + z->guide[bucket];
	uint32_t n = z->guide[bucket + 1] - z->guide[bucket] + 1;

	while (n > 1) {
		uint32_t half = n / 2;

		base = base[half - 1] < r ? base + half : base;
		n -= half;
	}
	return (uint32_t)(base - z->cdf);
}

static void zipf_build(struct zipf *z, uint32_t *cdf, uint32_t n, double s)
{
	double total = 0, acc = 0;
	uint32_t rank = 0;

	for (uint32_t k = 1; k <= n; k++)
		total += fexp(-s * fln(k));
	for (uint32_t k = 1; k <= n; k++) {
		acc += fexp(-s * fln(k));
		cdf[k - 1] = (uint32_t)(acc / total * 4294967295.0);
	}
	cdf[n - 1] = UINT32_MAX;
	z->cdf = cdf;
	for (uint32_t b = 0; b < (1u << GUIDE_BITS); b++) {
		uint32_t lo = b << (32 - GUIDE_BITS);

		while (cdf[rank] < lo)
			rank++;
		z->guide[b] = rank;
	}
	z->guide[1u << GUIDE_BITS] = n - 1;
}

/* A remote's base RTT, fixed per address: near for 10/8, far otherwise. */
static uint32_t remote_rtt_us(const uint8_t a[16])
{
	uint64_t lo, hi, x;
	uint32_t h;

	memcpy(&lo, a, 8);
	memcpy(&hi, a + 8, 8);
	x = lo ^ (hi * 0x9e3779b97f4a7c15ULL);
	h = (uint32_t)splitmix64(&x);
	if (a[10] == 0xff && a[11] == 0xff) {
		if (a[12] == 10)
			return 200 + h % 3000;
		if (a[12] == 198 && (a[13] & 0xfe) == 18)
			return 2000 + h % 30000;
		return 8000 + h % 170000;
	}
	return 10000 + h % 140000;
}

static uint16_t ephemeral_port(struct synthetic *g)
{
	return (uint16_t)rng_range(g, EPHEMERAL_LO, EPHEMERAL_HI);
}

/* ---- rendering ---------------------------------------------------------- */

static union event_buf *push(struct synthetic *g, uint16_t type, uint16_t size, int64_t ts)
{
	union event_buf *e;

	assert(g->npending < PENDING_MAX);
	e = &g->pending[g->npending++];
	memset(e, 0, size);
	e->hdr.ts_ns = (uint64_t)ts;
	e->hdr.type = type;
	e->hdr.size = size;
	return e;
}

/* Where a lifecycle happens: addresses, interface, owner. */
struct endpoints {
	bool v6;
	uint8_t local[16], remote[16];
	uint16_t local_port, remote_port;
	uint32_t ifindex;
};

static void pick_endpoints(struct synthetic *g, struct endpoints *ep)
{
	unsigned pair = rng_percent(g, 85) ? 0 : 1;

	ep->v6 = rng_percent(g, 30);
	ep->ifindex = g->ifindex[pair % g->nif];
	if (ep->v6) {
		addr_v6(ep->local, local_v6[pair]);
		pool_v6(zipf_sample(g, &g->v6_zipf), ep->remote);
	} else {
		addr_v4(ep->local, local_v4[pair]);
		addr_v4(ep->remote, pool_v4(zipf_sample(g, &g->v4_zipf)));
	}
}

/* Everything a flow record says. */
struct flow_spec {
	const uint8_t *orig_addr, *resp_addr;
	uint16_t orig_port, resp_port;
	uint8_t proto, end_reason;
	uint64_t orig_pkts, orig_bytes, resp_pkts, resp_bytes;
	int64_t first, last, now;
	uint64_t cookie;
	const struct proc *owner; /* NULL: unknown */
	uint32_t ifindex;
	const char *history;
};

static void history_flags(const char *h, uint8_t *orig, uint8_t *resp)
{
	for (*orig = *resp = 0; *h; h++) {
		switch (*h) {
		case 'S': *orig |= FS_TCP_SYN; break;
		case 'h': *resp |= FS_TCP_SYN | FS_TCP_ACK; break;
		case 'A': *orig |= FS_TCP_ACK; break;
		case 'a': *resp |= FS_TCP_ACK; break;
		case 'D': *orig |= FS_TCP_ACK | FS_TCP_PSH; break;
		case 'd': *resp |= FS_TCP_ACK | FS_TCP_PSH; break;
		case 'F': *orig |= FS_TCP_FIN | FS_TCP_ACK; break;
		case 'f': *resp |= FS_TCP_FIN | FS_TCP_ACK; break;
		case 'R': *orig |= FS_TCP_RST | FS_TCP_ACK; break;
		case 'r': *resp |= FS_TCP_RST | FS_TCP_ACK; break;
		}
	}
}

static void render_flow(struct synthetic *g, const struct flow_spec *f)
{
	struct fs_flow_event *e =
		&push(g, FS_EVENT_FLOW, sizeof(*e), f->now)->flow;

	e->first_ns = (uint64_t)f->first;
	e->last_ns = (uint64_t)f->last;
	e->orig_pkts = f->orig_pkts;
	e->orig_bytes = f->orig_bytes;
	e->resp_pkts = f->resp_pkts;
	e->resp_bytes = f->resp_bytes;
	e->sock_cookie = f->cookie;
	memcpy(e->orig_addr, f->orig_addr, 16);
	memcpy(e->resp_addr, f->resp_addr, 16);
	e->ifindex = f->ifindex;
	e->orig_port = f->orig_port;
	e->resp_port = f->resp_port;
	e->proto = f->proto;
	e->end_reason = f->end_reason;
	if (f->proto == IPPROTO_TCP)
		history_flags(f->history, &e->orig_tcp_flags, &e->resp_tcp_flags);
	memcpy(e->history, f->history, strnlen(f->history, FS_HISTORY_LEN));
	if (f->owner) {
		e->pid = f->owner->pid;
		memcpy(e->comm, f->owner->comm, FS_COMM_LEN);
	}
}

/* ---- TCP ---------------------------------------------------------------- */

enum tcp_outcome { TCP_SF, TCP_REJ, TCP_S0, TCP_RSTO, TCP_RSTR };

struct outcome_choice {
	uint32_t weight;
	uint8_t outcome;
};

static const struct outcome_choice outcomes[] = {
	{ 85, TCP_SF }, { 5, TCP_REJ }, { 4, TCP_S0 }, { 3, TCP_RSTO }, { 3, TCP_RSTR },
};

/* Zeek's history: a letter per kind of packet, in order of first sight. */
struct history {
	char s[FS_HISTORY_LEN + 1];
	unsigned n;
	uint64_t seen; /* bit c - 'A' for each letter c in s */
};

struct state_change {
	int64_t ts;
	uint8_t old_state, new_state;
};

/* One TCP connection, decided before any event is rendered. */
struct tcp_plan {
	struct endpoints ep;
	uint8_t dir, outcome;
	bool socket;        /* a local socket existed (false: inbound REJ/S0) */
	bool local_closes;  /* SF: this host sent the first FIN */
	bool simultaneous;  /* SF: both FINs crossed (CLOSING) */
	bool owner_on_flow; /* the flow record knows the owner */
	const struct proc *owner;
	const struct svc_profile *prof;
	uint64_t cookie;
	uint64_t orig_payload, resp_payload;
	uint32_t retrans, syn_retrans;
	uint32_t srtt_us;
	int64_t rtt, start, now;
	uint64_t orig_pkts, resp_pkts, orig_bytes, resp_bytes;
	int64_t flow_first, flow_last;
	unsigned nstates;
	struct state_change states[MAX_STATES];
	struct history history;
};

static const struct proc *outbound_owner(struct synthetic *g, uint8_t kind)
{
	switch (kind) {
	case SVC_WEB: return PICK(g, web_clients)->proc;
	case SVC_SSH: return &p_ssh;
	case SVC_MAIL: return &p_smtp;
	case SVC_DNS: return &p_resolved;
	default: return PICK(g, db_clients)->proc;
	}
}

static void tcp_plan_who(struct synthetic *g, struct tcp_plan *p)
{
	const struct tcp_service *svc;

	pick_endpoints(g, &p->ep);
	p->outcome = PICK(g, outcomes)->outcome;
	p->dir = rng_percent(g, 70) ? FS_DIR_OUT : FS_DIR_IN;
	p->socket = p->dir == FS_DIR_OUT ||
		    (p->outcome != TCP_REJ && p->outcome != TCP_S0);
	if (p->dir == FS_DIR_OUT) {
		svc = PICK(g, outbound_services);
		p->owner = outbound_owner(g, svc->kind);
		p->ep.local_port = ephemeral_port(g);
		p->ep.remote_port = svc->port;
		p->owner_on_flow = true;
	} else if (p->socket) {
		svc = PICK(g, inbound_services);
		p->owner = svc->owner;
		p->ep.local_port = svc->port;
		p->ep.remote_port = ephemeral_port(g);
		p->owner_on_flow = rng_percent(g, 60);
	} else {
		svc = &outbound_services[0]; /* only its profile is used */
		p->ep.local_port = scanned_ports[rng_below(g, sizeof(scanned_ports) / sizeof(scanned_ports[0]))];
		p->ep.remote_port = ephemeral_port(g);
	}
	p->prof = &profiles[svc->kind];
	if (p->socket)
		p->cookie = g->next_cookie++;
}

static uint32_t sample_retransmits(struct synthetic *g)
{
	uint32_t r = rng_below(g, 100);

	if (r < 88)
		return 0;
	if (r < 97)
		return rng_range(g, 1, 3);
	return rng_range(g, 4, 40);
}

/* SYN retransmits before the application gave up: 1 (at 1 s) .. 5. */
static uint32_t sample_syn_retransmits(struct synthetic *g)
{
	static const uint32_t weights[4] = { 35, 25, 20, 12 }; /* 5: the rest */
	uint32_t r = rng_below(g, 100), i;

	for (i = 0; i < 4 && r >= weights[i]; i++)
		r -= weights[i];
	return i + 1;
}

static void tcp_plan_sizes(struct synthetic *g, struct tcp_plan *p)
{
	const struct svc_profile *pr = p->prof;

	p->srtt_us = remote_rtt_us(p->ep.remote) * (90 + rng_below(g, 40)) / 100;
	p->rtt = (int64_t)p->srtt_us * US;
	if (p->outcome == TCP_REJ || p->outcome == TCP_S0) {
		if (p->outcome == TCP_S0)
			p->syn_retrans = sample_syn_retransmits(g);
		p->srtt_us = 0; /* no RTT sample without a SYN-ACK */
		return;
	}
	if (p->outcome != TCP_SF || !rng_percent(g, 3)) {
		p->orig_payload = (uint64_t)lognormal(g, pr->client_median, pr->client_sigma, 256 << 20);
		p->resp_payload = (uint64_t)lognormal(g, pr->server_median, pr->server_sigma, 256 << 20);
	}
	p->retrans = sample_retransmits(g);
	p->local_closes = rng_percent(g, p->dir == FS_DIR_OUT ? 75 : 35);
	p->simultaneous = rng_percent(g, 2);
}

static void add_state(struct tcp_plan *p, int64_t ts, uint8_t old_state, uint8_t new_state)
{
	int64_t prev = p->nstates ? p->states[p->nstates - 1].ts : p->start;

	assert(p->nstates < MAX_STATES);
	ts = min64(max64(ts, prev), p->now);
	p->states[p->nstates++] = (struct state_change){ ts, old_state, new_state };
}

/* The lifetime of the socket (or, without one, of the exchange). */
static int64_t tcp_duration(struct synthetic *g, const struct tcp_plan *p)
{
	int64_t d, floor_ns;

	if (p->outcome == TCP_REJ)
		return p->rtt;
	if (p->outcome == TCP_S0) /* SYNs at 0, 1, 3, 7 ... s; then give up */
		return ((2LL << p->syn_retrans) - 1) * SEC;
	d = lognormal(g, p->prof->dur_median_ns, p->prof->dur_sigma, LIFETIME_CAP);
	floor_ns = 3 * p->rtt + (int64_t)(p->orig_payload + p->resp_payload) * BYTE_TIME_NS;
	return min64(max64(d, floor_ns), LIFETIME_CAP);
}

static void tcp_plan_close(struct tcp_plan *p, int64_t est)
{
	int64_t now = p->now, rtt = p->rtt;

	if (p->outcome != TCP_SF) { /* a RST either way */
		add_state(p, now, FS_TCP_ESTABLISHED, FS_TCP_CLOSE);
	} else if (p->local_closes) {
		add_state(p, max64(est, now - rtt), FS_TCP_ESTABLISHED, FS_TCP_FIN_WAIT1);
		add_state(p, now - rtt / 2, FS_TCP_FIN_WAIT1,
			  p->simultaneous ? FS_TCP_CLOSING : FS_TCP_FIN_WAIT2);
		add_state(p, now, p->simultaneous ? FS_TCP_CLOSING : FS_TCP_FIN_WAIT2,
			  FS_TCP_CLOSE);
	} else {
		add_state(p, max64(est, now - rtt - rtt / 4), FS_TCP_ESTABLISHED,
			  FS_TCP_CLOSE_WAIT);
		add_state(p, now - rtt, FS_TCP_CLOSE_WAIT, FS_TCP_LAST_ACK);
		add_state(p, now, FS_TCP_LAST_ACK, FS_TCP_CLOSE);
	}
}

static void tcp_plan_times(struct synthetic *g, struct tcp_plan *p, int64_t now)
{
	int64_t d = tcp_duration(g, p), est;

	p->now = now;
	p->start = now - min64(d, now);
	p->flow_first = p->start;
	p->flow_last = now;
	if (p->outcome == TCP_S0) /* the last SYN went out long before */
		p->flow_last = min64(now, p->start + ((1LL << p->syn_retrans) - 1) * SEC);
	if (!p->socket)
		return;
	if (p->dir == FS_DIR_OUT) {
		add_state(p, p->start, FS_TCP_CLOSE, FS_TCP_SYN_SENT);
		if (p->outcome == TCP_REJ || p->outcome == TCP_S0) {
			add_state(p, now, FS_TCP_SYN_SENT, FS_TCP_CLOSE);
			return;
		}
		add_state(p, p->start + p->rtt, FS_TCP_SYN_SENT, FS_TCP_ESTABLISHED);
	} else { /* the child socket is born at the handshake's last ACK */
		add_state(p, p->start + p->rtt, FS_TCP_LISTEN, FS_TCP_SYN_RECV);
		add_state(p, p->start + p->rtt + 2 * US, FS_TCP_SYN_RECV, FS_TCP_ESTABLISHED);
	}
	est = p->states[p->nstates - 1].ts;
	tcp_plan_close(p, est);
}

static void history_add(struct history *h, char c)
{
	uint64_t bit = 1ULL << (c - 'A');

	if (h->n < FS_HISTORY_LEN && !(h->seen & bit)) {
		h->s[h->n++] = c;
		h->seen |= bit;
	}
}

static void tcp_plan_history(struct tcp_plan *p)
{
	struct history *h = &p->history;
	bool orig_closes = p->local_closes == (p->dir == FS_DIR_OUT);

	history_add(h, 'S');
	if (p->outcome == TCP_REJ)
		history_add(h, 'r');
	if (p->outcome == TCP_REJ || p->outcome == TCP_S0)
		return;
	history_add(h, 'h');
	history_add(h, 'A');
	if (p->prof->server_speaks_first && p->resp_payload)
		history_add(h, 'd');
	if (p->orig_payload) {
		history_add(h, 'D');
		history_add(h, 'a');
	}
	if (p->resp_payload)
		history_add(h, 'd');
	if (p->outcome == TCP_RSTO) {
		history_add(h, 'R');
	} else if (p->outcome == TCP_RSTR) {
		history_add(h, 'r');
	} else {
		history_add(h, orig_closes ? 'F' : 'f');
		history_add(h, orig_closes ? 'f' : 'F');
	}
}

/* Packets each way: handshake, data segments, delayed ACKs, the close. */
static void tcp_plan_counts(struct tcp_plan *p)
{
	uint64_t hdr = p->ep.v6 ? 60 : 40, mss = p->ep.v6 ? 1440 : 1460;
	uint64_t so = (p->orig_payload + mss - 1) / mss;
	uint64_t sr = (p->resp_payload + mss - 1) / mss;
	uint64_t retrans_bytes, *local_pkts, *local_bytes;
	bool local_is_orig = p->dir == FS_DIR_OUT;

	switch (p->outcome) {
	case TCP_REJ:
		p->orig_pkts = p->resp_pkts = 1;
		break;
	case TCP_S0:
		p->orig_pkts = 1 + p->syn_retrans;
		break;
	default:
		p->orig_pkts = 2 + so + (sr + 1) / 2;
		p->resp_pkts = 1 + sr + (so + 1) / 2;
		if (p->outcome == TCP_RSTO)
			p->orig_pkts++;
		else if (p->outcome == TCP_RSTR)
			p->resp_pkts++;
		else /* FIN each way, and the last ACK */
			p->orig_pkts += 2, p->resp_pkts++;
	}
	p->orig_bytes = p->orig_pkts * hdr + p->orig_payload;
	p->resp_bytes = p->resp_pkts * hdr + p->resp_payload;
	/* Retransmits are the local side's (that is what tcp_sock counts). */
	local_pkts = local_is_orig ? &p->orig_pkts : &p->resp_pkts;
	local_bytes = local_is_orig ? &p->orig_bytes : &p->resp_bytes;
	retrans_bytes = local_is_orig ? p->orig_payload : p->resp_payload;
	retrans_bytes = retrans_bytes < mss ? retrans_bytes : mss;
	*local_pkts += p->retrans;
	*local_bytes += p->retrans * (hdr + retrans_bytes);
}

static void render_tcp_states(struct synthetic *g, const struct tcp_plan *p)
{
	for (unsigned i = 0; i < p->nstates; i++) {
		const struct state_change *c = &p->states[i];
		struct fs_tcp_state_event *e =
			&push(g, FS_EVENT_TCP_STATE, sizeof(*e), c->ts)->state;
		/* inbound: the owner is known once accept() took the socket */
		bool owner_known = p->dir == FS_DIR_OUT || i >= 2;

		e->sock_cookie = p->cookie;
		memcpy(e->local_addr, p->ep.local, 16);
		memcpy(e->remote_addr, p->ep.remote, 16);
		e->local_port = c->new_state == FS_TCP_SYN_SENT ? 0 : p->ep.local_port;
		e->remote_port = p->ep.remote_port;
		e->old_state = c->old_state;
		e->new_state = c->new_state;
		e->direction = p->dir;
		if (owner_known) {
			e->pid = p->owner->pid;
			memcpy(e->comm, p->owner->comm, FS_COMM_LEN);
		}
	}
}

static void render_tcp_conn(struct synthetic *g, const struct tcp_plan *p)
{
	struct fs_tcp_conn_event *e =
		&push(g, FS_EVENT_TCP_CONN, sizeof(*e), p->now)->conn;
	bool out = p->dir == FS_DIR_OUT;

	e->start_ns = (uint64_t)p->states[0].ts;
	e->end_ns = (uint64_t)p->states[p->nstates - 1].ts;
	e->sock_cookie = p->cookie;
	e->cgroup_id = p->owner->cgroup_id;
	e->bytes_acked = out ? p->orig_payload : p->resp_payload;
	e->bytes_received = out ? p->resp_payload : p->orig_payload;
	memcpy(e->local_addr, p->ep.local, 16);
	memcpy(e->remote_addr, p->ep.remote, 16);
	e->segs_out = (uint32_t)(out ? p->orig_pkts : p->resp_pkts);
	e->segs_in = (uint32_t)(out ? p->resp_pkts : p->orig_pkts);
	e->retransmits = p->outcome == TCP_S0 ? p->syn_retrans : p->retrans;
	e->srtt_us = p->srtt_us;
	e->pid = p->owner->pid;
	e->uid = p->owner->uid;
	e->local_port = p->ep.local_port;
	e->remote_port = p->ep.remote_port;
	e->direction = p->dir;
	e->close_state = p->states[p->nstates - 1].old_state;
	e->path_len = (uint8_t)p->nstates;
	for (unsigned i = 0; i < p->nstates; i++)
		e->state_path[i] = p->states[i].new_state;
	memcpy(e->comm, p->owner->comm, FS_COMM_LEN);
}

static void render_tcp_flow(struct synthetic *g, const struct tcp_plan *p)
{
	bool out = p->dir == FS_DIR_OUT;
	struct flow_spec f = {
		.orig_addr = out ? p->ep.local : p->ep.remote,
		.resp_addr = out ? p->ep.remote : p->ep.local,
		.orig_port = out ? p->ep.local_port : p->ep.remote_port,
		.resp_port = out ? p->ep.remote_port : p->ep.local_port,
		.proto = IPPROTO_TCP,
		.orig_pkts = p->orig_pkts, .orig_bytes = p->orig_bytes,
		.resp_pkts = p->resp_pkts, .resp_bytes = p->resp_bytes,
		.first = p->flow_first, .last = p->flow_last, .now = p->now,
		.cookie = p->cookie,
		.owner = p->owner_on_flow ? p->owner : NULL,
		.ifindex = p->ep.ifindex,
		.history = p->history.s,
	};

	switch (p->outcome) {
	case TCP_SF: f.end_reason = FS_END_TCP_FIN; break;
	case TCP_S0: f.end_reason = FS_END_IDLE_TIMEOUT; break;
	default: f.end_reason = FS_END_TCP_RST; break;
	}
	render_flow(g, &f);
}

static void gen_tcp(struct synthetic *g, int64_t now)
{
	struct tcp_plan p;

	memset(&p, 0, sizeof(p));
	tcp_plan_who(g, &p);
	tcp_plan_sizes(g, &p);
	tcp_plan_times(g, &p, now);
	tcp_plan_history(&p);
	tcp_plan_counts(&p);
	if (p.socket) {
		render_tcp_states(g, &p);
		render_tcp_conn(g, &p);
	}
	render_tcp_flow(g, &p);
}

/* ---- UDP and ICMP ------------------------------------------------------- */

enum udp_kind { UDP_DNS, UDP_QUIC, UDP_NTP, UDP_SNMP_IN, UDP_SYSLOG_IN };

struct udp_choice {
	uint32_t weight;
	uint8_t kind;
};

static const struct udp_choice udp_kinds[] = {
	{ 72, UDP_DNS }, { 15, UDP_QUIC }, { 5, UDP_NTP },
	{ 5, UDP_SNMP_IN }, { 3, UDP_SYSLOG_IN },
};

struct resolver {
	uint32_t weight;
	uint32_t v4;
	uint16_t v6[8];
};

static const struct resolver resolvers[] = {
	{ 80, 0x0a000002, { 0x2001, 0x0db8, 0, 0, 0, 0, 0, 0x53 } },     /* 10.0.0.2 */
	{ 15, 0xc0000235, { 0x2001, 0x0db8, 0x53, 0, 0, 0, 0, 0x53 } },  /* 192.0.2.53 */
	{ 5, 0xc6336435, { 0x2001, 0x0db8, 0x53, 0, 0, 0, 0, 0x153 } }, /* 198.51.100.53 */
};

/* A flow's timing when an idle sweep exported it: it went quiet a while
 * before now. Long ones were exported while still active. */
static void idle_flow_times(struct synthetic *g, struct flow_spec *f, int64_t now, int64_t d)
{
	int64_t gap = IDLE_TIMEOUT + (int64_t)rng_below(g, 1000) * MS;

	f->now = now;
	if (d > ACTIVE_TIMEOUT) {
		f->end_reason = FS_END_ACTIVE_TIMEOUT;
		gap = (int64_t)rng_below(g, 1000) * MS;
	} else {
		f->end_reason = FS_END_IDLE_TIMEOUT;
	}
	f->last = now - min64(gap, now);
	f->first = f->last - min64(d, f->last);
}

static void udp_outbound(struct synthetic *g, struct flow_spec *f, struct endpoints *ep, uint8_t kind)
{
	const struct resolver *res;

	ep->local_port = ephemeral_port(g);
	f->orig_addr = ep->local;
	f->resp_addr = ep->remote;
	f->orig_port = ep->local_port;
	f->cookie = g->next_cookie++;
	switch (kind) {
	case UDP_DNS:
		res = PICK(g, resolvers);
		if (ep->v6)
			addr_v6(ep->remote, res->v6);
		else
			addr_v4(ep->remote, res->v4);
		f->resp_port = 53;
		f->owner = &p_resolved;
		break;
	case UDP_QUIC:
		f->resp_port = 443;
		f->owner = &p_chrome;
		break;
	default:
		f->resp_port = 123;
		f->owner = &p_timesyncd;
		break;
	}
}

static void udp_counts(struct synthetic *g, struct flow_spec *f, uint8_t kind, uint64_t hdr, int64_t *d)
{
	uint64_t orig_payload = 0, resp_payload = 0;
	uint32_t rtt = remote_rtt_us(f->resp_addr);

	switch (kind) {
	case UDP_DNS: /* a query, sometimes A + AAAA or a retry; rarely lost */
		f->orig_pkts = rng_percent(g, 80) ? 1 : rng_range(g, 2, 3);
		f->resp_pkts = rng_percent(g, 97) ? f->orig_pkts : 0;
		orig_payload = f->orig_pkts * rng_range(g, 30, 70);
		resp_payload = f->resp_pkts * (uint64_t)lognormal(g, 120, 0.7, 1232);
		*d = (int64_t)f->orig_pkts * rtt * US;
		break;
	case UDP_QUIC:
		orig_payload = (uint64_t)lognormal(g, 3000, 1.5, 64 << 20);
		resp_payload = (uint64_t)lognormal(g, 200000, 2.5, 512 << 20);
		f->orig_pkts = 2 + orig_payload / 1252 + resp_payload / 1252 / 8;
		f->resp_pkts = 1 + resp_payload / 1252 + orig_payload / 1252 / 8;
		*d = max64(lognormal(g, 2e9, 2.0, LIFETIME_CAP),
			   (int64_t)(orig_payload + resp_payload) * BYTE_TIME_NS);
		*d = min64(*d, LIFETIME_CAP);
		break;
	case UDP_NTP:
		f->orig_pkts = f->resp_pkts = 1;
		orig_payload = resp_payload = 48;
		*d = (int64_t)rtt * US;
		break;
	case UDP_SNMP_IN:
		f->orig_pkts = rng_range(g, 1, 20);
		f->resp_pkts = f->orig_pkts;
		orig_payload = f->orig_pkts * rng_range(g, 40, 90);
		resp_payload = f->resp_pkts * rng_range(g, 60, 1400);
		*d = (int64_t)f->orig_pkts * 3 * MS;
		break;
	default: /* syslog: one way */
		f->orig_pkts = rng_range(g, 1, 200);
		orig_payload = f->orig_pkts * rng_range(g, 80, 600);
		*d = (int64_t)f->orig_pkts * (int64_t)rng_range(g, 1, 200) * MS;
		break;
	}
	f->orig_bytes = f->orig_pkts * hdr + orig_payload;
	f->resp_bytes = f->resp_pkts * hdr + resp_payload;
	f->history = f->resp_pkts ? "Dd" : "D";
}

static void gen_udp(struct synthetic *g, int64_t now)
{
	uint8_t kind = PICK(g, udp_kinds)->kind;
	struct endpoints ep;
	struct flow_spec f;
	int64_t d = 0;

	memset(&f, 0, sizeof(f));
	pick_endpoints(g, &ep);
	f.proto = IPPROTO_UDP;
	f.ifindex = ep.ifindex;
	if (kind == UDP_DNS || kind == UDP_QUIC || kind == UDP_NTP) {
		udp_outbound(g, &f, &ep, kind);
	} else { /* the kernel's socket answers; no owner known for the flow */
		ep.local_port = kind == UDP_SNMP_IN ? 161 : 514;
		f.orig_addr = ep.remote;
		f.resp_addr = ep.local;
		f.orig_port = ephemeral_port(g);
		f.resp_port = ep.local_port;
	}
	udp_counts(g, &f, kind, ep.v6 ? 48 : 28, &d);
	idle_flow_times(g, &f, now, d);
	render_flow(g, &f);
}

static void gen_icmp(struct synthetic *g, int64_t now)
{
	static const uint8_t ping_counts[] = { 1, 1, 1, 2, 3, 3, 4, 4, 4, 4, 5, 5, 5, 10, 10 };
	struct endpoints ep;
	struct flow_spec f;
	uint64_t size, n;
	bool outbound = rng_percent(g, 80);

	memset(&f, 0, sizeof(f));
	pick_endpoints(g, &ep);
	n = ping_counts[rng_below(g, sizeof(ping_counts))];
	size = ep.v6 ? 104 : 84; /* IP + ICMP header + 56 bytes of data */
	f.proto = ep.v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP;
	f.orig_port = ep.v6 ? 128 : 8; /* echo request type; resp_port: code 0 */
	f.orig_addr = outbound ? ep.local : ep.remote;
	f.resp_addr = outbound ? ep.remote : ep.local;
	f.orig_pkts = n;
	f.orig_bytes = n * size;
	f.resp_pkts = rng_percent(g, 92) ? n : 0;
	f.resp_bytes = f.resp_pkts * size;
	f.ifindex = ep.ifindex;
	f.history = "";
	if (outbound) {
		f.cookie = g->next_cookie++;
		f.owner = &p_ping;
	}
	idle_flow_times(g, &f, now, (int64_t)(n - 1) * SEC + (int64_t)remote_rtt_us(ep.remote) * US);
	render_flow(g, &f);
}

/* ---- the generator ------------------------------------------------------ */

static bool iface_is_up(const struct ifaddrs *list, const char *name)
{
	for (const struct ifaddrs *a = list; a; a = a->ifa_next)
		if (a->ifa_name && strcmp(a->ifa_name, name) == 0)
			return (a->ifa_flags & IFF_UP) && !(a->ifa_flags & IFF_LOOPBACK);
	return false;
}

/* The host's interfaces, up ones first; "lo" only if nothing else. */
static void pick_interfaces(struct synthetic *g)
{
	struct if_nameindex *ifs = if_nameindex();
	struct ifaddrs *addrs = NULL;

	if (getifaddrs(&addrs) != 0)
		addrs = NULL;
	for (int want_up = 1; ifs && want_up >= 0 && g->nif == 0; want_up--) {
		for (struct if_nameindex *i = ifs; i->if_index && g->nif < MAX_IFS; i++) {
			if (strcmp(i->if_name, "lo") == 0)
				continue;
			if (want_up && !iface_is_up(addrs, i->if_name))
				continue;
			g->ifindex[g->nif++] = i->if_index;
		}
	}
	if (g->nif == 0)
		g->ifindex[g->nif++] = 1;
	if (addrs)
		freeifaddrs(addrs);
	if (ifs)
		if_freenameindex(ifs);
}

int synthetic_new(uint64_t seed, struct synthetic **out)
{
	struct synthetic *g = calloc(1, sizeof(*g));
	uint64_t x = seed;

	if (!g)
		return -ENOMEM;
	for (int i = 0; i < 4; i++)
		g->rng[i] = splitmix64(&x);
	g->next_cookie = 4096;
	zipf_build(&g->v4_zipf, g->v4_cdf, V4_POOL, ZIPF_S);
	zipf_build(&g->v6_zipf, g->v6_cdf, V6_POOL, ZIPF_S);
	pick_interfaces(g);
	*out = g;
	return 0;
}

void synthetic_free(struct synthetic *g)
{
	free(g);
}

static void gen_lifecycle(struct synthetic *g, int64_t now)
{
	uint32_t r = rng_below(g, 100);

	g->npending = g->next = 0;
	if (r < 45)
		gen_tcp(g, now);
	else if (r < 90)
		gen_udp(g, now);
	else
		gen_icmp(g, now);
}

size_t synthetic_next(struct synthetic *g, int64_t mono_now_ns, void *buf)
{
	const union event_buf *e;

	if (g->next == g->npending)
		gen_lifecycle(g, mono_now_ns > 0 ? mono_now_ns : 0);
	e = &g->pending[g->next++];
	memcpy(buf, e, e->hdr.size);
	return e->hdr.size;
}
