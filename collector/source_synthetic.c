/*
 * The synthetic source: paces the generator (synthetic.c) on the libuv loop.
 *
 * Two modes:
 *  - rate 0, "as fast as the pipeline takes": a uv_idle_t emits up to CHUNK
 *    events per loop iteration, asking sink.has_room() before each one;
 *    without room it stops its handle (paused) until ops->resume().
 *  - rate > 0: a uv_timer_t ticks every TICK_MS and emits the events due
 *    (rate x monotonic time since the pace started, minus those emitted).
 *    Like the kernel it never waits for room: the pipeline counts drops.
 *    After a stall (the loop busy elsewhere) it emits at most MAX_BURST_MS
 *    worth of events and forgets the rest, rather than flooding.
 *
 * Both stop after `count` events when count > 0, calling sink.done(0) once.
 * The UTC offset handed with each event is re-sampled at most every
 * OFFSET_RESAMPLE_NS; `now` is read once per callback, not per event.
 *
 * Handles are initialised by start(), so a source that never started may be
 * destroyed without stop(). stop() closes them; `stopped` runs from the
 * last close callback (or at once if nothing was started).
 */
#include "source.h"
#include "synthetic.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#define CHUNK 1024
#define TICK_MS 1
#define MAX_BURST_MS 50
#define OFFSET_RESAMPLE_NS 100000000LL /* 100 ms */

struct synthetic_source {
	struct source base; /* first: a struct source * is one of these */
	struct synthetic *gen;
	uint64_t rate, count;
	uint64_t emitted;       /* events handed to the sink */
	int64_t pace_start_ns;  /* rate mode: when pacing (re)started */
	uint64_t paced;         /* events due since pace_start_ns, scheduled */
	int64_t utc_offset_ns;
	int64_t offset_sampled_ns;
	bool offset_valid;
	bool started, paused, finished, stopping;
	int open_handles;
	void (*stopped)(struct source *s);
	uv_idle_t idle;
	uv_timer_t timer;
	_Alignas(8) unsigned char buf[FS_EVENT_MAX_SIZE];
};

static struct synthetic_source *from_base(struct source *s)
{
	return (struct synthetic_source *)s;
}

static void refresh_offset(struct synthetic_source *s, int64_t now)
{
	if (s->offset_valid && now - s->offset_sampled_ns < OFFSET_RESAMPLE_NS)
		return;
	s->utc_offset_ns = clock_utc_offset(s->base.clock);
	s->offset_sampled_ns = now;
	s->offset_valid = true;
}

static void finish(struct synthetic_source *s)
{
	s->finished = true;
	uv_idle_stop(&s->idle);
	uv_timer_stop(&s->timer);
	s->base.sink.done(s->base.sink.ctx, 0);
}

/* One event to the sink; false once nothing more may be emitted. */
static bool emit_one(struct synthetic_source *s, int64_t now)
{
	size_t size = synthetic_next(s->gen, now, s->buf);

	s->base.sink.event(s->base.sink.ctx, s->buf, size, s->utc_offset_ns);
	s->emitted++;
	if (s->count && s->emitted == s->count && !s->stopping)
		finish(s);
	return !s->finished && !s->stopping;
}

static void on_idle(uv_idle_t *h)
{
	struct synthetic_source *s = h->data;
	const struct source_sink *sink = &s->base.sink;
	int64_t now = clock_monotonic(s->base.clock);

	refresh_offset(s, now);
	for (int i = 0; i < CHUNK; i++) {
		if (!sink->has_room(sink->ctx)) {
			s->paused = true;
			uv_idle_stop(h);
			return;
		}
		if (!emit_one(s, now))
			return;
	}
}

/* rate x elapsed, without overflowing for any plausible rate. */
static uint64_t events_due(uint64_t rate, int64_t elapsed_ns)
{
	uint64_t el = elapsed_ns > 0 ? (uint64_t)elapsed_ns : 0;

	return rate * (el / 1000000000u) + rate * (el % 1000000000u) / 1000000000u;
}

static void on_tick(uv_timer_t *h)
{
	struct synthetic_source *s = h->data;
	int64_t now = clock_monotonic(s->base.clock);
	uint64_t due = events_due(s->rate, now - s->pace_start_ns);
	uint64_t max_burst = s->rate * MAX_BURST_MS / 1000 + 1;
	uint64_t n = due > s->paced ? due - s->paced : 0;

	refresh_offset(s, now);
	if (n > max_burst) { /* a stall: emit a burst, forget the backlog */
		n = max_burst;
		s->pace_start_ns = now;
		s->paced = 0;
	} else {
		s->paced += n;
	}
	while (n-- > 0 && emit_one(s, now)) /* emit_one() stops at count */
		;
}

static int synthetic_start(struct source *base)
{
	struct synthetic_source *s = from_base(base);

	if (s->started || s->stopping)
		return -EALREADY;
	/* Neither init can fail: libuv only ever returns 0 from them. */
	uv_idle_init(base->loop, &s->idle);
	uv_timer_init(base->loop, &s->timer);
	s->idle.data = s;
	s->timer.data = s;
	s->started = true;
	s->open_handles = 2;
	s->pace_start_ns = clock_monotonic(base->clock);
	if (s->rate == 0)
		return uv_idle_start(&s->idle, on_idle);
	return uv_timer_start(&s->timer, on_tick, TICK_MS, TICK_MS);
}

static void synthetic_resume(struct source *base)
{
	struct synthetic_source *s = from_base(base);

	if (!s->started || !s->paused || s->finished || s->stopping)
		return;
	s->paused = false;
	uv_idle_start(&s->idle, on_idle);
}

static void on_close(uv_handle_t *h)
{
	struct synthetic_source *s = h->data;

	assert(s->open_handles > 0);
	if (--s->open_handles == 0)
		s->stopped(&s->base);
}

static void synthetic_stop(struct source *base, void (*stopped)(struct source *s))
{
	struct synthetic_source *s = from_base(base);

	if (s->stopping)
		return;
	s->stopping = true;
	s->stopped = stopped;
	if (!s->started) {
		stopped(base);
		return;
	}
	uv_close((uv_handle_t *)&s->idle, on_close);
	uv_close((uv_handle_t *)&s->timer, on_close);
}

static void synthetic_destroy(struct source *base)
{
	struct synthetic_source *s = from_base(base);

	if (!s)
		return;
	assert(!s->started || (s->stopping && s->open_handles == 0));
	synthetic_free(s->gen);
	free(s);
}

static const struct source_ops synthetic_ops = {
	.name = "synthetic",
	.start = synthetic_start,
	.resume = synthetic_resume,
	.stop = synthetic_stop,
	.destroy = synthetic_destroy,
};

int source_synthetic_new(uv_loop_t *loop, const struct fs_clock *clock,
			 const struct synthetic_opts *opts,
			 const struct source_sink *sink, struct source **out)
{
	struct synthetic_source *s = calloc(1, sizeof(*s));
	int rc;

	if (!s)
		return -ENOMEM;
	rc = synthetic_new(opts->seed, &s->gen);
	if (rc < 0) {
		free(s);
		return rc;
	}
	s->base.ops = &synthetic_ops;
	s->base.loop = loop;
	s->base.sink = *sink;
	s->base.clock = clock;
	s->rate = opts->rate;
	s->count = opts->count;
	*out = &s->base;
	return 0;
}
