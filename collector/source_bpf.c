/*
 * The kernel source: the BPF programs of bpf/ loaded into the running kernel,
 * and their ring buffer read on the libuv loop.
 *
 * Setup (source_bpf_new), every failure one log line:
 *   preflight (privileges, BTF) -> open the skeleton -> size the ring buffer
 *   and the connection map -> rodata -> load -> attach -> ring buffer reader.
 * main then drops the capabilities nothing later needs
 * (source_bpf_drop_capabilities), before it starts any thread.
 *
 * Reading, once started:
 *  - A uv_poll_t watches ring_buffer__epoll_fd(): a kernel wakeup makes it
 *    readable and its callback consumes.
 *  - A drain timer consumes every drain_ms as well: under the no-wakeup
 *    policy (wakeup_bytes > 0) the kernel wakes us only past a threshold, and
 *    with libbpf 1.1 consuming is the only way to reach what lies below it.
 *  - Each record goes to sink.event() as it is, with its sample size (the
 *    pipeline validates). The kernel cannot wait, so has_room() is never
 *    asked: the pipeline counts what it drops, and resume() has nothing to do.
 *  - One consume hands over at most CONSUME_BUDGET records, so a flood never
 *    starves the rest of the loop; what is left keeps the poll readable.
 *  - The UTC offset handed with each record is re-sampled at most every
 *    OFFSET_RESAMPLE_NS, at the start of a consume, never per record.
 *  - Every LOSS_READ_MS, and at stop, the per-CPU loss counters are summed
 *    and stored into stats->kernel_lost[] (the kernel's totals, not deltas).
 *
 * Stopping loses nothing: stop() detaches the programs (no new records) and
 * closes the handles; the last close callback drains the ring to its end and
 * reads the losses once more, then calls `stopped`. destroy() frees the
 * reader and the BPF objects. Handles are initialised by start(), so a
 * source that never started may be destroyed without stop().
 */
#include "source.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/capability.h>

#include <bpf/libbpf.h>

#include "conn.skel.h"
#include "events.h"
#include "log.h"
#include "stats.h"

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

#define BTF_PATH "/sys/kernel/btf/vmlinux"
#define CONSUME_BUDGET 16384
#define OFFSET_RESAMPLE_NS 100000000LL /* 100 ms */
#define LOSS_READ_MS 1000

struct bpf_source {
	struct source base; /* first: a struct source * is one of these */
	struct conn_bpf *skel;
	struct ring_buffer *rb;
	struct stats *stats;
	uint64_t *per_cpu; /* ncpu loss counters, one lookup's worth */
	int ncpu;
	uint32_t drain_ms;
	unsigned consumed; /* records handed over in the current consume */
	int64_t utc_offset_ns;
	int64_t offset_sampled_ns;
	bool offset_valid;
	bool started, stopping;
	bool consume_failed, losses_failed, losses_seen; /* each logged once */
	int open_handles;
	void (*stopped)(struct source *s);
	uv_poll_t poll;
	uv_timer_t drain_timer;
	uv_timer_t loss_timer;
};

static struct bpf_source *from_base(struct source *s)
{
	return (struct bpf_source *)s;
}

/* ---- libbpf's log ------------------------------------------------------- */

/* While the programs are set up, everything libbpf says is debug: a failed
 * load is one line of ours, and --log-level debug shows libbpf's reason
 * (the verifier's log). After that it is demoted one level: its warnings
 * are our info, the rest our debug. */
static bool libbpf_setting_up;

__attribute__((format(printf, 2, 0))) static int libbpf_log(enum libbpf_print_level level,
							     const char *fmt, va_list ap)
{
	enum log_level ours = level == LIBBPF_WARN && !libbpf_setting_up ? LOG_INFO : LOG_DEBUG;
	char *text, *line, *save;
	va_list aq;
	int n;

	if (ours > log_threshold)
		return 0;
	va_copy(aq, ap);
	n = vsnprintf(NULL, 0, fmt, aq);
	va_end(aq);
	if (n < 0 || !(text = malloc((size_t)n + 1)))
		return 0;
	vsnprintf(text, (size_t)n + 1, fmt, ap);
	/* The verifier's log is one call of many lines: one of ours each. */
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		LOG(ours, "%s", line); /* libbpf starts its lines with "libbpf: " */
	free(text);
	return n;
}

/* ---- capabilities ------------------------------------------------------- */

static int caps_get(struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3])
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };

	memset(d, 0, sizeof(*d) * _LINUX_CAPABILITY_U32S_3);
	return syscall(SYS_capget, &h, d) ? -errno : 0;
}

static bool cap_effective(const struct __user_cap_data_struct *d, int cap)
{
	return d[cap / 32].effective & (1u << (cap % 32));
}

int source_bpf_preflight(void)
{
	struct __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3];
	bool allowed;

	if (caps_get(caps))
		allowed = geteuid() == 0;
	else /* CAP_SYS_ADMIN stands for both before Linux 5.8 */
		allowed = (cap_effective(caps, CAP_BPF) && cap_effective(caps, CAP_PERFMON)) ||
			  cap_effective(caps, CAP_SYS_ADMIN);
	if (!allowed) {
		LOG(LOG_ERROR, "--source bpf needs root (or CAP_BPF and CAP_PERFMON) to load "
			       "its kernel programs");
		return -EPERM;
	}
	if (access(BTF_PATH, F_OK)) {
		LOG(LOG_ERROR, "--source bpf: this kernel has no BTF (CONFIG_DEBUG_INFO_BTF): "
			       "%s is missing", BTF_PATH);
		return -ENOENT;
	}
	return 0;
}

/* What the daemon may still need once the programs are attached: attaching
 * TC programs to interfaces that appear later (CAP_BPF, CAP_NET_ADMIN, and
 * CAP_PERFMON / CAP_SYS_ADMIN for what older kernels gate behind them), and
 * writing the data dir as root (CAP_DAC_OVERRIDE, CAP_CHOWN, CAP_FOWNER). */
static const struct {
	int cap;
	const char *name;
} kept_caps[] = {
	{ CAP_BPF, "bpf" },
	{ CAP_PERFMON, "perfmon" },
	{ CAP_NET_ADMIN, "net_admin" },
	{ CAP_SYS_ADMIN, "sys_admin" },
	{ CAP_DAC_OVERRIDE, "dac_override" },
	{ CAP_CHOWN, "chown" },
	{ CAP_FOWNER, "fowner" },
};

static bool cap_kept(int cap)
{
	for (size_t i = 0; i < sizeof(kept_caps) / sizeof(kept_caps[0]); i++)
		if (kept_caps[i].cap == cap)
			return true;
	return false;
}

/* The bounding set limits what a program we exec could regain as root.
 * Dropping from it needs CAP_SETPCAP, so it comes before capset(). */
static void drop_bounding_set(void)
{
	int held;

	for (int cap = 0; (held = prctl(PR_CAPBSET_READ, cap, 0, 0, 0)) >= 0; cap++) {
		if (!held || cap_kept(cap))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)) {
			LOG(LOG_DEBUG, "the bounding set stays as it is: %s", strerror(errno));
			return;
		}
	}
}

void source_bpf_drop_capabilities(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
	uint32_t keep[_LINUX_CAPABILITY_U32S_3] = { 0 };
	char names[160] = "";
	size_t used = 0;
	int err = caps_get(d);

	if (err) {
		LOG(LOG_WARN, "cannot read our capabilities, none dropped: %s", strerror(-err));
		return;
	}
	for (size_t i = 0; i < sizeof(kept_caps) / sizeof(kept_caps[0]); i++)
		keep[kept_caps[i].cap / 32] |= 1u << (kept_caps[i].cap % 32);
	drop_bounding_set();
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	for (int w = 0; w < _LINUX_CAPABILITY_U32S_3; w++) {
		d[w].effective &= keep[w];
		d[w].permitted &= keep[w];
		d[w].inheritable = 0;
	}
	if (syscall(SYS_capset, &h, d)) {
		LOG(LOG_WARN, "cannot drop capabilities: %s", strerror(errno));
		return;
	}
	for (size_t i = 0; i < sizeof(kept_caps) / sizeof(kept_caps[0]); i++)
		if (cap_effective(d, kept_caps[i].cap) && used < sizeof(names))
			used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s",
						 used ? " " : "", kept_caps[i].name);
	LOG(LOG_INFO, "capabilities dropped; kept: %s", used ? names : "none");
}

/* ---- reading ------------------------------------------------------------ */

static void refresh_offset(struct bpf_source *s)
{
	int64_t now = clock_monotonic(s->base.clock);

	if (s->offset_valid && now - s->offset_sampled_ns < OFFSET_RESAMPLE_NS)
		return;
	s->utc_offset_ns = clock_utc_offset(s->base.clock);
	s->offset_sampled_ns = now;
	s->offset_valid = true;
}

/* A negative return ends the consume; the record itself has been taken. */
static int on_record(void *ctx, void *data, size_t size)
{
	struct bpf_source *s = ctx;

	s->base.sink.event(s->base.sink.ctx, data, size, s->utc_offset_ns);
	return ++s->consumed < CONSUME_BUDGET ? 0 : -EAGAIN;
}

/* Hands at most CONSUME_BUDGET records to the sink; true if more may wait. */
static bool consume(struct bpf_source *s)
{
	int rc;

	refresh_offset(s);
	s->consumed = 0;
	rc = ring_buffer__consume(s->rb);
	if (rc == -EAGAIN)
		return true;
	if (rc < 0 && !s->consume_failed) {
		s->consume_failed = true;
		LOG(LOG_WARN, "reading the kernel ring buffer: %s", strerror(-rc));
	}
	return false;
}

/* The kernel's loss counters, summed over CPUs, into stats->kernel_lost. */
static void read_losses(struct bpf_source *s)
{
	size_t size = (size_t)s->ncpu * sizeof(*s->per_cpu);
	bool grew = false;

	for (uint32_t r = 0; r < FS_LOSS_MAX; r++) {
		uint64_t total = 0;
		int err = bpf_map__lookup_elem(s->skel->maps.losses, &r, sizeof(r), s->per_cpu,
					       size, 0);

		if (err) {
			if (!s->losses_failed)
				LOG(LOG_WARN, "cannot read the kernel's loss counters: %s",
				    strerror(-err));
			s->losses_failed = true;
			return;
		}
		for (int c = 0; c < s->ncpu; c++)
			total += s->per_cpu[c];
		grew |= total > stats_get(&s->stats->kernel_lost[r]);
		atomic_store_explicit(&s->stats->kernel_lost[r], total, memory_order_relaxed);
	}
	if (grew && !s->losses_seen) {
		s->losses_seen = true;
		LOG(LOG_WARN, "the kernel lost records (ring buffer or map full, or parse "
			      "errors); the kernel_lost_* counters say how many");
	}
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct bpf_source *s = h->data;

	(void)events;
	if (status < 0) {
		LOG(LOG_WARN, "watching the kernel ring buffer: %s; draining it every %u ms only",
		    uv_strerror(status), (unsigned)s->drain_ms);
		uv_poll_stop(h);
		return;
	}
	consume(s);
}

static void on_drain(uv_timer_t *t)
{
	consume(t->data);
}

static void on_loss_timer(uv_timer_t *t)
{
	read_losses(t->data);
}

/* ---- lifecycle ---------------------------------------------------------- */

static int bpf_start(struct source *base)
{
	struct bpf_source *s = from_base(base);
	int err;

	if (s->started || s->stopping)
		return -EALREADY;
	err = uv_poll_init(base->loop, &s->poll, ring_buffer__epoll_fd(s->rb));
	if (err) {
		LOG(LOG_ERROR, "cannot watch the kernel ring buffer: %s", uv_strerror(err));
		return err;
	}
	/* Neither timer init can fail: libuv only ever returns 0 from them. */
	uv_timer_init(base->loop, &s->drain_timer);
	uv_timer_init(base->loop, &s->loss_timer);
	s->poll.data = s->drain_timer.data = s->loss_timer.data = s;
	s->started = true;
	s->open_handles = 3;
	refresh_offset(s);
	uv_timer_start(&s->drain_timer, on_drain, s->drain_ms, s->drain_ms);
	uv_timer_start(&s->loss_timer, on_loss_timer, LOSS_READ_MS, LOSS_READ_MS);
	return uv_poll_start(&s->poll, UV_READABLE, on_poll);
}

/* The kernel does not wait for room, so there is never anything to resume. */
static void bpf_resume(struct source *base)
{
	(void)base;
}

static void on_close(uv_handle_t *h)
{
	struct bpf_source *s = h->data;

	assert(s->open_handles > 0);
	if (--s->open_handles)
		return;
	while (consume(s)) /* detached: the ring only empties */
		;
	read_losses(s);
	s->stopped(&s->base);
}

static void bpf_stop(struct source *base, void (*stopped)(struct source *s))
{
	struct bpf_source *s = from_base(base);

	if (s->stopping)
		return;
	s->stopping = true;
	s->stopped = stopped;
	conn_bpf__detach(s->skel); /* no new records: the last drain gets every one */
	if (!s->started) {
		read_losses(s);
		stopped(base);
		return;
	}
	uv_close((uv_handle_t *)&s->poll, on_close);
	uv_close((uv_handle_t *)&s->drain_timer, on_close);
	uv_close((uv_handle_t *)&s->loss_timer, on_close);
}

static void bpf_destroy(struct source *base)
{
	struct bpf_source *s = from_base(base);

	if (!s)
		return;
	assert(!s->started || (s->stopping && s->open_handles == 0));
	ring_buffer__free(s->rb);
	conn_bpf__destroy(s->skel); /* detaches what is still attached */
	free(s->per_cpu);
	free(s);
}

static const struct source_ops bpf_ops = {
	.name = "bpf",
	.start = bpf_start,
	.resume = bpf_resume,
	.stop = bpf_stop,
	.destroy = bpf_destroy,
};

/* ---- setup -------------------------------------------------------------- */

static int check_opts(struct bpf_source_opts *o)
{
	long page = sysconf(_SC_PAGESIZE);

	if (!o->ring_bytes)
		o->ring_bytes = BPF_RING_BYTES_DEFAULT;
	if (!o->max_conns)
		o->max_conns = BPF_MAX_CONNS_DEFAULT;
	if (!o->drain_ms)
		o->drain_ms = BPF_DRAIN_MS_DEFAULT;
	/* A threshold the ring cannot reach would leave it all to the timer. */
	if (o->wakeup_bytes > o->ring_bytes / 2)
		o->wakeup_bytes = o->ring_bytes / 2;
	if ((o->ring_bytes & (o->ring_bytes - 1)) || page <= 0 || o->ring_bytes % (uint32_t)page) {
		LOG(LOG_ERROR, "the ring buffer size (%u bytes) must be a power of two and a "
			       "multiple of the page size (%ld)", (unsigned)o->ring_bytes, page);
		return -EINVAL;
	}
	return 0;
}

/* Open the skeleton and configure it: map sizes, rodata. */
static int open_programs(struct bpf_source *s, const struct bpf_source_opts *o)
{
	int err;

	s->skel = conn_bpf__open();
	if (!s->skel) {
		err = -errno;
		LOG(LOG_ERROR, "cannot open the kernel programs: %s", strerror(-err));
		return err;
	}
	err = bpf_map__set_max_entries(s->skel->maps.events, o->ring_bytes);
	if (!err)
		err = bpf_map__set_max_entries(s->skel->maps.conns, o->max_conns);
	if (err) {
		LOG(LOG_ERROR, "cannot size the kernel maps: %s", strerror(-err));
		return err;
	}
	s->skel->rodata->ringbuf_wakeup_bytes = o->wakeup_bytes;
	return 0;
}

static int load_programs(struct bpf_source *s)
{
	int err = conn_bpf__load(s->skel);

	if (err) {
		LOG(LOG_ERROR, "cannot load the kernel programs: this kernel lacks what flowstore "
			       "needs (%s); --log-level debug shows libbpf's reason", strerror(-err));
		return err;
	}
	err = conn_bpf__attach(s->skel);
	if (err)
		LOG(LOG_ERROR, "cannot attach the kernel programs: this kernel lacks what "
			       "flowstore needs (%s); --log-level debug shows libbpf's reason",
		    strerror(-err));
	return err;
}

static int open_reader(struct bpf_source *s)
{
	s->ncpu = libbpf_num_possible_cpus();
	if (s->ncpu <= 0) {
		LOG(LOG_ERROR, "cannot count the CPUs: %s", strerror(-s->ncpu));
		return s->ncpu < 0 ? s->ncpu : -EINVAL;
	}
	s->per_cpu = calloc((size_t)s->ncpu, sizeof(*s->per_cpu));
	if (!s->per_cpu) {
		LOG(LOG_ERROR, "out of memory");
		return -ENOMEM;
	}
	s->rb = ring_buffer__new(bpf_map__fd(s->skel->maps.events), on_record, s, NULL);
	if (!s->rb) {
		int err = -errno;

		LOG(LOG_ERROR, "cannot read the kernel ring buffer: %s", strerror(-err));
		return err;
	}
	return 0;
}

int source_bpf_new(uv_loop_t *loop, const struct fs_clock *clock,
		   const struct bpf_source_opts *opts, const struct source_sink *sink,
		   struct stats *stats, struct source **out)
{
	struct bpf_source_opts o = *opts;
	struct bpf_source *s;
	int err;

	assert(stats);
	libbpf_set_print(libbpf_log);
	if ((err = source_bpf_preflight()) || (err = check_opts(&o)))
		return err;
	s = calloc(1, sizeof(*s));
	if (!s) {
		LOG(LOG_ERROR, "out of memory");
		return -ENOMEM;
	}
	s->base.ops = &bpf_ops;
	s->base.loop = loop;
	s->base.sink = *sink;
	s->base.clock = clock;
	s->stats = stats;
	s->drain_ms = o.drain_ms;
	libbpf_setting_up = true;
	if ((err = open_programs(s, &o)) || (err = load_programs(s)) || (err = open_reader(s))) {
		libbpf_setting_up = false;
		bpf_destroy(&s->base);
		return err;
	}
	libbpf_setting_up = false;
	read_losses(s);
	LOG(LOG_INFO, "kernel programs attached: TCP lifecycle (ring buffer %u KiB, wakeup at "
		      "%u bytes waiting, drained every %u ms)", (unsigned)(o.ring_bytes >> 10),
	    (unsigned)o.wakeup_bytes, (unsigned)o.drain_ms);
	*out = &s->base;
	return 0;
}
