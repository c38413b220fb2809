/*
 * The kernel source: the BPF programs of bpf/ loaded into the running kernel,
 * and their ring buffers read on the libuv loop.
 *
 * Two programs: conn (bpf/conn.bpf.c, TCP lifecycle, tp_btf: attached by its
 * skeleton) and flow (bpf/flow.bpf.c, per-flow accounting at TC: attached
 * here, per interface, by tc_attach.c).
 *
 * Setup (source_bpf_new), every failure one log line:
 *   preflight (privileges, BTF) -> open both skeletons -> size the ring
 *   buffers and maps -> rodata -> load -> attach conn -> ring buffer reader
 *   -> list the interfaces (iface_watch.c) and attach flow to those wanted.
 * main then drops the capabilities nothing later needs
 * (privileges_drop(), privileges.c), before it starts any thread.
 *
 * Interfaces: with --interfaces, exactly the named ones, whenever they exist
 * (up or not; one that appears later is attached then); without, every
 * interface that is up, except loopbacks, and every one that comes up
 * later (a container's veth). Only Ethernet-type devices (and lo, if named)
 * get the programs: they parse an Ethernet header. A loopback gets only the
 * egress one: every packet it carries passes both its hooks, and would be
 * counted twice. An interface that leaves
 * is forgotten (its links went with it). Each attach and detach is logged.
 *
 * Two rings (one `events` map per program), each --ring-size, each with its
 * own libbpf ring_buffer manager and uv_poll_t, and each its own budget per
 * consume: with one manager (ring_buffer__add), a ring that fills a consume's
 * budget ends the consume before the next ring is reached, so a flood of
 * connection records could starve the flows (or the other way round).
 * Sharing one map between the objects would save memory but tie their
 * loads together, and give the same starvation inside one ring.
 *
 * Idle flows: a sweep timer (every idle/3, within [100 ms, 1 s]) runs
 * bounded steps of flow_sweep.c, enough to walk the whole map once per
 * idle period, exporting the flows idle that long as records handed to the
 * sink like the kernel's. Under pressure (a pass found the map more than
 * half full) the idle period used is halved, down to SWEEP_IDLE_FLOOR_NS,
 * and doubled back towards --idle-timeout once it is less than a quarter
 * full: many short flows (50k new UDP flows a second) then leave the map
 * before it fills, rather than as one-packet map_full records.
 *
 * Reading, once started:
 *  - A uv_poll_t per ring watches ring_buffer__epoll_fd(): a kernel wakeup
 *    makes it readable and its callback consumes (both rings: cheap).
 *  - A drain timer consumes every drain_ms as well: under the no-wakeup
 *    policy (wakeup_bytes > 0) the kernel wakes us only past a threshold, and
 *    with libbpf 1.1 consuming is the only way to reach what lies below it.
 *  - Each record goes to sink.event() as it is, with its sample size (the
 *    pipeline validates). The kernel cannot wait, so has_room() is never
 *    asked: the pipeline counts what it drops, and resume() has nothing to do.
 *  - One consume hands over at most CONSUME_BUDGET records per ring, so a
 *    flood never starves the rest of the loop; what is left keeps the poll
 *    readable.
 *  - The UTC offset handed with each record is re-sampled at most every
 *    OFFSET_RESAMPLE_NS, at the start of a consume, never per record.
 *  - Every LOSS_READ_MS, and at stop, the per-CPU loss counters are summed
 *    and stored into stats->kernel_lost[] (the kernel's totals, not deltas).
 *  - Every LOSS_READ_MS too, each program's recursion_misses (runs the
 *    kernel skipped because the program was already running on that CPU)
 *    are summed into stats->kernel_recursion_misses.
 *
 * Stopping loses nothing: stop() detaches the programs (no new packets, no
 * new records) and closes the handles; the last close callback drains the
 * rings to their end, exports every flow still in the flow map (end_reason
 * shutdown), drains again, reads the counters once more, then calls
 * `stopped`. destroy() frees the reader and the BPF objects. Handles are
 * initialised by start(), so a source that never started may be destroyed
 * without stop().
 */
#include "source.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <net/if.h>
#include <net/if_arp.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "conn.skel.h"
#include "conn_table.h"
#include "events.h"
#include "flow.skel.h"
#include "flow_sweep.h"
#include "iface_watch.h"
#include "log.h"
#include "privileges.h"
#include "stats.h"
#include "tc_attach.h"

#define CONSUME_BUDGET 16384
#define OFFSET_RESAMPLE_NS 100000000LL /* 100 ms */
#define LOSS_READ_MS 1000
#define SWEEP_TICK_MAX_MS 1000
#define SWEEP_TICK_MIN_MS 100
#define SWEEP_BUDGET_MIN 4096 /* entries looked at per tick, at least */
#define SWEEP_BATCH 8192      /* entries read per system call */
#define SWEEP_IDLE_FLOOR_NS 1000000000ull /* under pressure, never below 1 s */
#define NS_PER_MS 1000000ull

enum { RING_CONN, RING_FLOW, NRINGS };

/* An interface the flow programs are attached to. */
struct attached_iface {
	int ifindex;
	char name[IF_NAMESIZE];
	struct tc_attachment *tc;
};

struct bpf_source {
	struct source base; /* first: a struct source * is one of these */
	struct conn_bpf *skel;
	struct flow_bpf *flow;
	struct ring_buffer *rb[NRINGS];
	struct stats *stats;
	uint64_t *per_cpu; /* ncpu loss counters, one lookup's worth */
	int ncpu;
	uint32_t drain_ms;
	/* interfaces */
	char **names; /* --interfaces, split; NULL: the default set */
	size_t nnames;
	struct attached_iface *ifaces;
	size_t nifaces, cap_ifaces;
	bool detached; /* stopping: attach nothing more */
	enum tc_mode tc_mode;
	enum bpf_accept_owner accept_owner; /* the one in use */
	struct iface_watch *watch;
	/* idle sweep */
	struct flow_sweep *sweep;
	uint64_t idle_ns;     /* --idle-timeout */
	uint64_t idle_eff_ns; /* the one in use: shorter under pressure */
	uint32_t flow_map_size;
	uint64_t sweep_tick_ms;
	uint64_t sweep_entries; /* looked at per tick: the map once per idle_eff_ns */
	uint64_t flows_swept;   /* entries the sweep took out of the map */
	uint64_t made, made_at_ns; /* the program's count of entries made, when read */
	uint64_t map_full_seen;    /* the flow program's map_full count, when read */
	bool prog_info_failed;
	unsigned consumed; /* records handed over in the current consume */
	int64_t utc_offset_ns;
	int64_t offset_sampled_ns;
	bool offset_valid;
	bool started, stopping;
	bool consume_failed, losses_failed, losses_seen; /* each logged once */
	int open_handles;
	void (*stopped)(struct source *s);
	uv_poll_t poll[NRINGS];
	uv_timer_t drain_timer;
	uv_timer_t loss_timer;
	uv_timer_t sweep_timer;
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

/* Hands at most CONSUME_BUDGET records of each ring to the sink; true if
 * more may wait. */
static bool consume(struct bpf_source *s)
{
	bool more = false;

	refresh_offset(s);
	for (int i = 0; i < NRINGS; i++) {
		int rc;

		s->consumed = 0;
		rc = ring_buffer__consume(s->rb[i]);
		if (rc == -EAGAIN)
			more = true;
		else if (rc < 0 && !s->consume_failed) {
			s->consume_failed = true;
			LOG(LOG_WARN, "reading the kernel ring buffer: %s", strerror(-rc));
		}
	}
	return more;
}

/* Entry r of a per-CPU array of u64 counters, summed over CPUs, added to
 * *total. */
static int add_percpu(struct bpf_source *s, const struct bpf_map *map, uint32_t r,
		    uint64_t *total)
{
	size_t size = (size_t)s->ncpu * sizeof(*s->per_cpu);
	int err = bpf_map__lookup_elem(map, &r, sizeof(r), s->per_cpu, size, 0);

	if (err)
		return err;
	for (int c = 0; c < s->ncpu; c++)
		*total += s->per_cpu[c];
	return 0;
}

static void sweep_adapt(struct bpf_source *s);

/* The kernel's loss counters, summed over CPUs and both programs, into
 * stats->kernel_lost. */
static void read_losses(struct bpf_source *s)
{
	bool grew = false;

	for (uint32_t r = 0; r < FS_LOSS_MAX; r++) {
		uint64_t total = 0;
		int err = add_percpu(s, s->skel->maps.losses, r, &total);

		if (!err)
			err = add_percpu(s, s->flow->maps.losses, r, &total);
		if (err) {
			if (!s->losses_failed)
				LOG(LOG_WARN, "cannot read the kernel's loss counters: %s",
				    strerror(-err));
			s->losses_failed = true;
			return;
		}
		grew |= total > stats_get(&s->stats->kernel_lost[r]);
		atomic_store_explicit(&s->stats->kernel_lost[r], total, memory_order_relaxed);
	}
	if (grew && !s->losses_seen) {
		s->losses_seen = true;
		LOG(LOG_WARN, "the kernel lost records (ring buffer or map full, or parse "
			      "errors); the kernel_lost_* counters say how many");
	}
}

/* Adds one object's programs' recursion_misses to *total. */
static int add_recursion_misses(struct bpf_object *obj, uint64_t *total)
{
	struct bpf_program *prog;

	bpf_object__for_each_program(prog, obj) {
		struct bpf_prog_info info;
		__u32 len = sizeof(info);
		int fd = bpf_program__fd(prog), err;

		if (fd < 0)
			continue; /* not loaded */
		memset(&info, 0, sizeof(info));
		err = bpf_obj_get_info_by_fd(fd, &info, &len);
		if (err)
			return err;
		*total += info.recursion_misses;
	}
	return 0;
}

static void read_recursion_misses(struct bpf_source *s)
{
	uint64_t total = 0;
	int err = add_recursion_misses(s->skel->obj, &total);

	if (!err)
		err = add_recursion_misses(s->flow->obj, &total);
	if (err) {
		if (!s->prog_info_failed)
			LOG(LOG_WARN, "cannot read the kernel programs' recursion misses: %s",
			    strerror(-err));
		s->prog_info_failed = true;
		return;
	}
	atomic_store_explicit(&s->stats->kernel_recursion_misses, total, memory_order_relaxed);
}

static void read_counters(struct bpf_source *s)
{
	read_losses(s);
	read_recursion_misses(s);
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
	read_counters(t->data);
	sweep_adapt(t->data);
}

/* ---- flows left in the map ---------------------------------------------- */

static void on_swept(void *ctx, const struct fs_flow_event *e)
{
	struct bpf_source *s = ctx;

	stats_add(&s->stats->flows_swept, 1);
	s->flows_swept++;
	s->base.sink.event(s->base.sink.ctx, e, sizeof(*e), s->utc_offset_ns);
}

static uint64_t now_mono(struct bpf_source *s)
{
	int64_t now = clock_monotonic(s->base.clock);

	return now > 0 ? (uint64_t)now : 0;
}

/* The tick and the entries per tick that walk the map once per idle_eff_ns. */
static void sweep_plan(struct bpf_source *s)
{
	uint64_t tick = s->idle_eff_ns / 3 / NS_PER_MS, entries;

	if (tick > SWEEP_TICK_MAX_MS)
		tick = SWEEP_TICK_MAX_MS;
	if (tick < SWEEP_TICK_MIN_MS)
		tick = SWEEP_TICK_MIN_MS;
	entries = (uint64_t)s->flow_map_size * tick * NS_PER_MS / s->idle_eff_ns + 1;
	if (entries < SWEEP_BUDGET_MIN)
		entries = SWEEP_BUDGET_MIN;
	if (entries > s->flow_map_size)
		entries = s->flow_map_size;
	s->sweep_tick_ms = tick;
	s->sweep_entries = entries;
}

/*
 * Every LOSS_READ_MS: how fast flows are made (the program's count of
 * entries made) and how full the map is (made, less deleted by the program
 * and by the sweep). The idle period in use is the one that keeps the map
 * half full at that rate — map_size/2 / rate — within [SWEEP_IDLE_FLOOR_NS,
 * --idle-timeout]; it is only ever shortened while the map is more than a
 * quarter full, and lengthened back as the rate falls. A flow that found the
 * map full (the flow program's map_full count grew) sends it to the floor at
 * once.
 */
static void sweep_adapt(struct bpf_source *s)
{
	uint64_t made = 0, deleted = 0, full = 0, live, was = s->idle_eff_ns, want = s->idle_ns;
	uint64_t now = now_mono(s), rate;
	bool was_full;

	if (add_percpu(s, s->flow->maps.flow_counts, FS_FLOWS_CREATED, &made) ||
	    add_percpu(s, s->flow->maps.flow_counts, FS_FLOWS_DELETED, &deleted) ||
	    add_percpu(s, s->flow->maps.losses, FS_LOSS_MAP_FULL, &full))
		return; /* logged with the loss counters, read the same way */
	was_full = full > s->map_full_seen;
	s->map_full_seen = full;
	live = made > deleted + s->flows_swept ? made - deleted - s->flows_swept : 0;
	if (live > s->flow_map_size)
		live = s->flow_map_size;
	rate = s->made_at_ns && now > s->made_at_ns
		       ? (made - s->made) * 1000000000ull / (now - s->made_at_ns)
		       : 0;
	s->made = made;
	s->made_at_ns = now;
	if (rate && (uint64_t)s->flow_map_size / 2 * 1000000000ull / rate < want)
		want = (uint64_t)s->flow_map_size / 2 * 1000000000ull / rate;
	if (want < SWEEP_IDLE_FLOOR_NS || was_full)
		want = SWEEP_IDLE_FLOOR_NS < s->idle_ns ? SWEEP_IDLE_FLOOR_NS : s->idle_ns;
	if (want < s->idle_eff_ns && live * 4 < s->flow_map_size && !was_full)
		return; /* the map has room: no need to cut flows short yet */
	/* small moves are not worth a new plan (or a log line) */
	if (want * 10 > was * 9 && want * 9 < was * 10 && want != s->idle_ns)
		return;
	if (want == was)
		return;
	s->idle_eff_ns = want;
	sweep_plan(s);
	uv_timer_set_repeat(&s->sweep_timer, s->sweep_tick_ms);
	LOG(want < was ? LOG_WARN : LOG_INFO,
	    "flow map %llu%% full (%llu of %u)%s, %llu new flows/s: exporting flows idle for "
	    "%.1f s (--idle-timeout %.1f s)",
	    (unsigned long long)(live * 100 / s->flow_map_size), (unsigned long long)live,
	    s->flow_map_size, was_full ? ", flows found it full" : "", (unsigned long long)rate,
	    (double)s->idle_eff_ns / 1e9, (double)s->idle_ns / 1e9);
}

static void on_sweep_timer(uv_timer_t *t)
{
	struct bpf_source *s = t->data;
	bool pass_done = false;

	refresh_offset(s);
	for (uint64_t looked = 0; looked < s->sweep_entries && !pass_done; looked += SWEEP_BATCH)
		flow_sweep_step(s->sweep, now_mono(s), s->idle_eff_ns, FS_END_IDLE_TIMEOUT, on_swept,
				s, &pass_done);
}

/* Every flow still in the map, at shutdown (nothing is attached by now). */
static void export_remaining(struct bpf_source *s)
{
	size_t rounds = s->flow_map_size / SWEEP_BATCH + 2, n = 0;
	bool pass_done = false;

	refresh_offset(s);
	flow_sweep_restart(s->sweep);
	for (size_t i = 0; i < rounds && !pass_done; i++)
		n += flow_sweep_step(s->sweep, now_mono(s), 0, FS_END_SHUTDOWN, on_swept, s,
				     &pass_done);
	LOG(LOG_INFO, "exported the %zu flows left in the kernel's flow map", n);
}

/* ---- interfaces --------------------------------------------------------- */

static struct attached_iface *find_iface(struct bpf_source *s, int ifindex)
{
	for (size_t i = 0; i < s->nifaces; i++)
		if (s->ifaces[i].ifindex == ifindex)
			return &s->ifaces[i];
	return NULL;
}

static bool named(const struct bpf_source *s, const char *name)
{
	for (size_t i = 0; i < s->nnames; i++)
		if (strcmp(s->names[i], name) == 0)
			return true;
	return false;
}

/* Does this link get the flow programs? */
static bool wanted(struct bpf_source *s, const struct iface_event *e)
{
	if (s->names) {
		if (!named(s, e->name))
			return false;
		if (e->type == ARPHRD_ETHER || e->type == ARPHRD_LOOPBACK)
			return true;
		LOG(LOG_WARN, "interface %s is not an Ethernet device (type %u): not watched",
		    e->name, (unsigned)e->type);
		return false;
	}
	return (e->flags & IFF_UP) && !(e->flags & IFF_LOOPBACK) && e->type == ARPHRD_ETHER;
}

static void attach_iface(struct bpf_source *s, const struct iface_event *e)
{
	bool loopback = e->flags & IFF_LOOPBACK;
	struct tc_attachment *tc;
	int err;

	if (s->nifaces == s->cap_ifaces) {
		size_t cap = s->cap_ifaces ? s->cap_ifaces * 2 : 8;
		struct attached_iface *n = realloc(s->ifaces, cap * sizeof(*n));

		if (!n) {
			LOG(LOG_WARN, "interface %s not watched: out of memory", e->name);
			return;
		}
		s->ifaces = n;
		s->cap_ifaces = cap;
	}
	/* A loopback receives every packet it sends: one hook sees each once. */
	err = tc_attach(e->ifindex,
			loopback ? -1 : bpf_program__fd(s->flow->progs.flow_ingress),
			bpf_program__fd(s->flow->progs.flow_egress), s->tc_mode, &tc);
	if (err) {
		LOG(LOG_WARN, "cannot attach the flow programs to %s (ifindex %d): %s", e->name,
		    e->ifindex, strerror(-err));
		return;
	}
	s->ifaces[s->nifaces].ifindex = e->ifindex;
	snprintf(s->ifaces[s->nifaces].name, IF_NAMESIZE, "%s", e->name);
	s->ifaces[s->nifaces].tc = tc;
	s->nifaces++;
	stats_add(&s->stats->interfaces_attached, 1);
	LOG(LOG_INFO, "flow programs attached to %s (ifindex %d, %s%s)", e->name, e->ifindex,
	    tc_attach_kind(tc), loopback ? ", egress only" : "");
}

static void detach_iface(struct bpf_source *s, struct attached_iface *a, bool gone)
{
	LOG(LOG_INFO, "flow programs detached from %s (ifindex %d%s)", a->name, a->ifindex,
	    gone ? ", gone" : "");
	tc_detach(a->tc, gone);
	*a = s->ifaces[--s->nifaces];
	atomic_store_explicit(&s->stats->interfaces_attached, s->nifaces, memory_order_relaxed);
}

static void detach_all(struct bpf_source *s)
{
	s->detached = true;
	while (s->nifaces)
		detach_iface(s, &s->ifaces[s->nifaces - 1], false);
}

static void on_link(void *ctx, const struct iface_event *e)
{
	struct bpf_source *s = ctx;
	struct attached_iface *a = find_iface(s, e->ifindex);

	if (e->removed) {
		if (a)
			detach_iface(s, a, true);
		return;
	}
	if (a) { /* attached already: a rename at most */
		snprintf(a->name, IF_NAMESIZE, "%s", e->name);
		return;
	}
	if (!s->detached && wanted(s, e))
		attach_iface(s, e);
}

/* --interfaces, split at commas (config.c has checked each name). */
static int split_names(struct bpf_source *s, const char *list)
{
	size_t n = 1;

	for (const char *p = list; *p; p++)
		n += *p == ',';
	s->names = calloc(n, sizeof(*s->names));
	if (!s->names)
		return -ENOMEM;
	for (const char *p = list;; p++) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (!(s->names[s->nnames] = strndup(p, len)))
			return -ENOMEM;
		s->nnames++;
		if (!end)
			break;
		p = end;
	}
	return 0;
}

/* The interfaces there now; what appears later comes through the watch. */
static int watch_interfaces(struct bpf_source *s, const char *list)
{
	int err;

	if (list && (err = split_names(s, list))) {
		LOG(LOG_ERROR, "out of memory");
		return err;
	}
	err = iface_watch_open(on_link, s, &s->watch);
	if (err)
		return err;
	for (size_t i = 0; i < s->nnames; i++) {
		bool found = false;

		for (size_t j = 0; j < s->nifaces; j++)
			found |= strcmp(s->ifaces[j].name, s->names[i]) == 0;
		if (!found)
			LOG(LOG_WARN, "interface %s is not watched now; it will be if it "
				      "appears", s->names[i]);
	}
	return 0;
}

/* ---- lifecycle ---------------------------------------------------------- */

static int bpf_start(struct source *base)
{
	struct bpf_source *s = from_base(base);
	int err;

	if (s->started || s->stopping)
		return -EALREADY;
	for (int i = 0; i < NRINGS; i++) {
		err = uv_poll_init(base->loop, &s->poll[i], ring_buffer__epoll_fd(s->rb[i]));
		if (err) {
			LOG(LOG_ERROR, "cannot watch the kernel ring buffer: %s", uv_strerror(err));
			/* not started: stop() closes nothing, the loop runs this
			 * close before main destroys us */
			for (int j = 0; j < i; j++)
				uv_close((uv_handle_t *)&s->poll[j], NULL);
			return err;
		}
		s->poll[i].data = s;
	}
	/* No timer init can fail: libuv only ever returns 0 from them. */
	uv_timer_init(base->loop, &s->drain_timer);
	uv_timer_init(base->loop, &s->loss_timer);
	uv_timer_init(base->loop, &s->sweep_timer);
	s->drain_timer.data = s->loss_timer.data = s->sweep_timer.data = s;
	s->started = true;
	s->open_handles = NRINGS + 4; /* the polls, three timers, the interface watch */
	refresh_offset(s);
	uv_timer_start(&s->drain_timer, on_drain, s->drain_ms, s->drain_ms);
	uv_timer_start(&s->loss_timer, on_loss_timer, LOSS_READ_MS, LOSS_READ_MS);
	uv_timer_start(&s->sweep_timer, on_sweep_timer, s->sweep_tick_ms, s->sweep_tick_ms);
	err = iface_watch_start(s->watch, base->loop);
	if (err)
		return err;
	for (int i = 0; i < NRINGS && !err; i++)
		err = uv_poll_start(&s->poll[i], UV_READABLE, on_poll);
	return err;
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
	while (consume(s)) /* detached: the rings only empty */
		;
	export_remaining(s);
	while (consume(s)) /* what the programs sent while the map was emptied */
		;
	read_counters(s);
	s->stopped(&s->base);
}

static void on_watch_closed(void *ctx)
{
	struct bpf_source *s = ctx;

	on_close((uv_handle_t *)&s->poll[0]); /* counts as one of ours */
}

static void bpf_stop(struct source *base, void (*stopped)(struct source *s))
{
	struct bpf_source *s = from_base(base);

	if (s->stopping)
		return;
	s->stopping = true;
	s->stopped = stopped;
	/* No new packets, no new records: the last drain gets every one. */
	conn_bpf__detach(s->skel);
	detach_all(s);
	if (!s->started) {
		read_counters(s);
		stopped(base);
		return;
	}
	for (int i = 0; i < NRINGS; i++)
		uv_close((uv_handle_t *)&s->poll[i], on_close);
	uv_close((uv_handle_t *)&s->drain_timer, on_close);
	uv_close((uv_handle_t *)&s->loss_timer, on_close);
	uv_close((uv_handle_t *)&s->sweep_timer, on_close);
	iface_watch_close(s->watch, on_watch_closed);
}

static void bpf_destroy(struct source *base)
{
	struct bpf_source *s = from_base(base);

	if (!s)
		return;
	assert(!s->started || (s->stopping && s->open_handles == 0));
	for (int i = 0; i < NRINGS; i++)
		ring_buffer__free(s->rb[i]);
	if (s->flow)
		detach_all(s);
	iface_watch_free(s->watch);
	flow_sweep_free(s->sweep);
	flow_bpf__destroy(s->flow);
	conn_bpf__destroy(s->skel); /* detaches what is still attached */
	for (size_t i = 0; i < s->nnames; i++)
		free(s->names[i]);
	free(s->names);
	free(s->ifaces);
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
	if (!o->flow_map_size)
		o->flow_map_size = BPF_FLOW_MAP_SIZE_DEFAULT;
	if (!o->idle_timeout_ns)
		o->idle_timeout_ns = BPF_IDLE_TIMEOUT_NS_DEFAULT;
	if (!o->active_timeout_ns)
		o->active_timeout_ns = BPF_ACTIVE_TIMEOUT_NS_DEFAULT;
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

/* The programs that find sockets' owners: the socket I/O tracepoints
 * (Linux 6.3+; loaded by default: an accepted TCP socket's first send or
 * receive, a datagram socket's first send), or for accepted sockets the
 * syscall exit hook (not loaded by default), which a kernel without the
 * tracepoints gets instead (and its datagram sockets no owner). */
static int choose_owner_programs(struct bpf_source *s, const struct bpf_source_opts *o)
{
	bool io = o->accept_owner == BPF_ACCEPT_OWNER_IO, have_io = true;
	int err;

	if (libbpf_find_vmlinux_btf_id("sock_send_length", BPF_TRACE_RAW_TP) < 0 ||
	    libbpf_find_vmlinux_btf_id("sock_recv_length", BPF_TRACE_RAW_TP) < 0) {
		LOG(LOG_WARN, "this kernel has no sock_send_length/sock_recv_length tracepoints "
			      "(Linux 6.3+): UDP and ICMP flows get no owner%s",
		    io ? ", and accepted sockets' owners come from the accept() syscall's exit "
			 "(--accept-owner syscall)" : "");
		io = have_io = false;
	}
	s->skel->rodata->tcp_owner_from_io = io;
	err = bpf_program__set_autoload(s->skel->progs.conn_accept, !io);
	if (!err)
		err = bpf_program__set_autoload(s->skel->progs.conn_send, have_io);
	if (!err)
		err = bpf_program__set_autoload(s->skel->progs.conn_recv, io);
	if (err)
		LOG(LOG_ERROR, "cannot choose the kernel programs: %s", strerror(-err));
	s->accept_owner = io ? BPF_ACCEPT_OWNER_IO : BPF_ACCEPT_OWNER_SYSCALL;
	return err;
}

/* Open the skeletons and configure them: map sizes, rodata, programs. */
static int open_programs(struct bpf_source *s, const struct bpf_source_opts *o)
{
	int err;

	s->skel = conn_bpf__open();
	s->flow = s->skel ? flow_bpf__open() : NULL;
	if (!s->skel || !s->flow) {
		err = -errno;
		LOG(LOG_ERROR, "cannot open the kernel programs: %s", strerror(-err));
		return err;
	}
	err = bpf_map__set_max_entries(s->skel->maps.events, o->ring_bytes);
	if (!err)
		err = conn_table_size(s->skel, o->max_conns, 0);
	if (!err)
		err = bpf_map__set_max_entries(s->flow->maps.events, o->ring_bytes);
	if (!err)
		err = bpf_map__set_max_entries(s->flow->maps.flows, o->flow_map_size);
	if (err) {
		LOG(LOG_ERROR, "cannot size the kernel maps: %s", strerror(-err));
		return err;
	}
	s->skel->rodata->ringbuf_wakeup_bytes = o->wakeup_bytes;
	s->flow->rodata->ringbuf_wakeup_bytes = o->wakeup_bytes;
	s->flow->rodata->active_timeout_ns = o->active_timeout_ns;
	s->skel->rodata->tcp_state_events = o->tcp_states;
	return choose_owner_programs(s, o);
}

/* Loads both; attaches conn (flow is attached per interface, later). */
static int load_programs(struct bpf_source *s)
{
	int err = conn_bpf__load(s->skel);

	if (!err)
		err = flow_bpf__load(s->flow);
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
	s->rb[RING_CONN] = ring_buffer__new(bpf_map__fd(s->skel->maps.events), on_record, s,
					    NULL);
	if (s->rb[RING_CONN])
		s->rb[RING_FLOW] = ring_buffer__new(bpf_map__fd(s->flow->maps.events), on_record,
						    s, NULL);
	if (!s->rb[RING_CONN] || !s->rb[RING_FLOW]) {
		int err = -errno;

		LOG(LOG_ERROR, "cannot read the kernel ring buffer: %s", strerror(-err));
		return err;
	}
	return 0;
}

/* The sweep: see sweep_plan(); batches of SWEEP_BATCH entries. */
static int open_sweep(struct bpf_source *s, const struct bpf_source_opts *o)
{
	int err;

	s->idle_ns = o->idle_timeout_ns;
	s->idle_eff_ns = o->idle_timeout_ns;
	s->flow_map_size = o->flow_map_size;
	sweep_plan(s);
	err = flow_sweep_new(bpf_map__fd(s->flow->maps.flows), SWEEP_BATCH, &s->sweep);
	if (err)
		LOG(LOG_ERROR, "cannot set up the idle flow sweep: %s", strerror(-err));
	return err;
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
	if ((err = privileges_check_bpf()) || (err = check_opts(&o)))
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
	s->tc_mode = (enum tc_mode)o.tc_mode;
	libbpf_setting_up = true;
	if ((err = open_programs(s, &o)) || (err = load_programs(s)) || (err = open_reader(s)) ||
	    (err = open_sweep(s, &o))) {
		libbpf_setting_up = false;
		bpf_destroy(&s->base);
		return err;
	}
	libbpf_setting_up = false;
	if ((err = watch_interfaces(s, o.interfaces))) {
		bpf_destroy(&s->base);
		return err;
	}
	read_counters(s);
	LOG(LOG_INFO, "kernel programs attached: TCP lifecycle (accepted sockets owned by %s; "
		      "connection table %u slots and a spill of %u), and flows on %zu interfaces "
		      "(%s; flow map %u entries, idle timeout %llu ms, active timeout %llu ms; "
		      "ring buffer %u KiB per program, wakeup at %u bytes waiting, drained every %u ms)",
	    s->accept_owner == BPF_ACCEPT_OWNER_IO ? "their first I/O" : "accept()",
	    bpf_map__max_entries(s->skel->maps.conns), bpf_map__max_entries(s->skel->maps.conns_spill),
	    s->nifaces,
	    o.interfaces ? o.interfaces : "every one up but lo",
	    (unsigned)o.flow_map_size, (unsigned long long)(o.idle_timeout_ns / NS_PER_MS),
	    (unsigned long long)(o.active_timeout_ns / NS_PER_MS),
	    (unsigned)(o.ring_bytes >> 10), (unsigned)o.wakeup_bytes, (unsigned)o.drain_ms);
	*out = &s->base;
	return 0;
}
