/*
 * The replay source: plays a recording (recording.h) into the sink, each
 * event with the UTC offset recorded with it, as fast as the pipeline takes.
 *
 * A uv_idle_t plays up to CHUNK frames per loop iteration, asking
 * sink.has_room() before each one; without room it stops its handle until
 * ops->resume(). At the end of the file it calls sink.done(0); on a corrupt
 * or truncated frame it logs the reason and calls sink.done(-EIO) -- what
 * was read before the bad frame has been played. The reader is closed as
 * soon as the recording is finished, so its file is not held open.
 *
 * The idle handle is initialised by start(), so a source that never started
 * may be destroyed without stop(); stop() closes it and `stopped` runs from
 * its close callback (or at once if nothing was started).
 */
#include "source.h"
#include "recording.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 1024

struct replay_source {
	struct source base; /* first: a struct source * is one of these */
	struct recording_reader *reader; /* NULL once finished */
	char *path;
	bool started, paused, finished, stopping;
	void (*stopped)(struct source *s);
	uv_idle_t idle;
};

static struct replay_source *from_base(struct source *s)
{
	return (struct replay_source *)s;
}

static void finish(struct replay_source *s, int status)
{
	s->finished = true;
	uv_idle_stop(&s->idle);
	recording_reader_close(s->reader);
	s->reader = NULL;
	s->base.sink.done(s->base.sink.ctx, status);
}

/* Plays one frame; false once nothing more may be played now. */
static bool play_one(struct replay_source *s)
{
	const struct source_sink *sink = &s->base.sink;
	struct recording_frame f;
	char err[128];
	int rc = recording_next(s->reader, &f, err, sizeof(err));

	if (rc == 1) {
		sink->event(sink->ctx, f.data, f.size, f.utc_offset_ns);
		return !s->stopping;
	}
	if (rc == 0) {
		finish(s, 0);
	} else {
		LOG(LOG_ERROR, "replay %s: %s", s->path, err);
		finish(s, -EIO);
	}
	return false;
}

static void on_idle(uv_idle_t *h)
{
	struct replay_source *s = h->data;
	const struct source_sink *sink = &s->base.sink;

	for (int i = 0; i < CHUNK; i++) {
		if (!sink->has_room(sink->ctx)) {
			s->paused = true;
			uv_idle_stop(h);
			return;
		}
		if (!play_one(s))
			return;
	}
}

static int replay_start(struct source *base)
{
	struct replay_source *s = from_base(base);

	if (s->started || s->stopping)
		return -EALREADY;
	uv_idle_init(base->loop, &s->idle); /* cannot fail */
	s->idle.data = s;
	s->started = true;
	return uv_idle_start(&s->idle, on_idle);
}

static void replay_resume(struct source *base)
{
	struct replay_source *s = from_base(base);

	if (!s->started || !s->paused || s->finished || s->stopping)
		return;
	s->paused = false;
	uv_idle_start(&s->idle, on_idle);
}

static void on_close(uv_handle_t *h)
{
	struct replay_source *s = h->data;

	s->stopped(&s->base);
}

static void replay_stop(struct source *base, void (*stopped)(struct source *s))
{
	struct replay_source *s = from_base(base);

	if (s->stopping)
		return;
	s->stopping = true;
	s->stopped = stopped;
	if (!s->started) {
		stopped(base);
		return;
	}
	uv_close((uv_handle_t *)&s->idle, on_close);
}

static void replay_destroy(struct source *base)
{
	struct replay_source *s = from_base(base);

	if (!s)
		return;
	recording_reader_close(s->reader);
	free(s->path);
	free(s);
}

static const struct source_ops replay_ops = {
	.name = "replay",
	.start = replay_start,
	.resume = replay_resume,
	.stop = replay_stop,
	.destroy = replay_destroy,
};

int source_replay_new(uv_loop_t *loop, const char *path,
		      const struct source_sink *sink, struct source **out)
{
	struct replay_source *s = calloc(1, sizeof(*s));
	char err[128];
	int rc;

	if (!s || !(s->path = strdup(path))) {
		free(s);
		LOG(LOG_ERROR, "replay %s: out of memory", path);
		return -ENOMEM;
	}
	rc = recording_reader_open(path, &s->reader, err, sizeof(err));
	if (rc < 0) {
		LOG(LOG_ERROR, "replay %s: %s", path, err);
		free(s->path);
		free(s);
		return rc;
	}
	s->base.ops = &replay_ops;
	s->base.loop = loop;
	s->base.sink = *sink;
	s->base.clock = &clock_system;
	*out = &s->base;
	return 0;
}
