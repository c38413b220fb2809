/*
 * Recordings (recording.c) and the replay source (source_replay.c): a
 * byte-exact round trip, every way a file can be bad (each a clean error
 * naming the problem and the offset), a small mutation fuzz, and replay on
 * a real loop -- end to end, through a pausing sink, and over a corrupt file.
 *
 * Files live in a fresh directory under $FLOWSTORE_TEST_TMP (or /tmp) and
 * are removed by the group teardown.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <uv.h>

#include "events.h"
#include "log.h"
#include "recording.h"
#include "source.h"
#include "synthetic.h"

#define HEADER 32
#define FRAME_HDR 16

static char tmpdir[PATH_MAX];

static const char *tmp_path(const char *name)
{
	static char path[2 * PATH_MAX];

	if (snprintf(path, sizeof(path), "%s/%s", tmpdir, name) >= (int)sizeof(path))
		fail_msg("path too long: %s/%s", tmpdir, name);
	return path;
}

/* mkdir -p: ctest's temp dir may not exist yet. */
static void make_dirs(const char *path)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p == '/') {
			*p = 0;
			mkdir(buf, 0755);
			*p = '/';
		}
	}
	mkdir(buf, 0755);
}

static int group_setup(void **state)
{
	const char *base = getenv("FLOWSTORE_TEST_TMP");

	(void)state;
	if (!base || !*base)
		base = "/tmp";
	make_dirs(base);
	if (snprintf(tmpdir, sizeof(tmpdir), "%s/test_recording.XXXXXX", base) >= (int)sizeof(tmpdir))
		return -1;
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;

	(void)state;
	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			unlink(tmp_path(e->d_name));
	if (d)
		closedir(d);
	return rmdir(tmpdir);
}

/* ---- test data ---------------------------------------------------------- */

static uint64_t rng_state = 0x5eed;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

struct frame_set {
	size_t n;
	size_t *size;
	int64_t *offset;
	unsigned char **data;
	uint64_t *file_offset; /* where each frame starts in the file */
};

static size_t pick_size(size_t i)
{
	static const size_t fixed[] = { 1, 88, 152, 160, RECORDING_MAX_EVENT, 2, 4096 };

	if (i < sizeof(fixed) / sizeof(fixed[0]))
		return fixed[i];
	return i % 3 == 0 ? 1 + rnd() % 3000 : (size_t[]){ 88, 152, 160 }[i % 3];
}

static int64_t pick_offset(size_t i)
{
	static const int64_t fixed[] = { 0, -1, INT64_MIN, INT64_MAX, 1700000000123456789LL };

	if (i < sizeof(fixed) / sizeof(fixed[0]))
		return fixed[i];
	return (int64_t)rnd();
}

static void frames_make(struct frame_set *fs, size_t n)
{
	uint64_t at = HEADER;

	fs->n = n;
	fs->size = calloc(n, sizeof(*fs->size));
	fs->offset = calloc(n, sizeof(*fs->offset));
	fs->data = calloc(n, sizeof(*fs->data));
	fs->file_offset = calloc(n, sizeof(*fs->file_offset));
	assert_non_null(fs->size);
	assert_non_null(fs->offset);
	assert_non_null(fs->data);
	assert_non_null(fs->file_offset);
	for (size_t i = 0; i < n; i++) {
		fs->size[i] = pick_size(i);
		fs->offset[i] = pick_offset(i);
		fs->data[i] = malloc(fs->size[i]);
		assert_non_null(fs->data[i]);
		for (size_t k = 0; k < fs->size[i]; k++)
			fs->data[i][k] = (unsigned char)rnd();
		fs->file_offset[i] = at;
		at += FRAME_HDR + fs->size[i];
	}
}

/* Frames of one fixed size, so offsets are easy to reason about. */
static void frames_make_fixed(struct frame_set *fs, size_t n, size_t size)
{
	frames_make(fs, n);
	for (size_t i = 0; i < n; i++) {
		free(fs->data[i]);
		fs->size[i] = size;
		fs->data[i] = malloc(size);
		assert_non_null(fs->data[i]);
		for (size_t k = 0; k < size; k++)
			fs->data[i][k] = (unsigned char)rnd();
		fs->file_offset[i] = HEADER + i * (FRAME_HDR + size);
	}
}

static void frames_free(struct frame_set *fs)
{
	for (size_t i = 0; i < fs->n; i++)
		free(fs->data[i]);
	free(fs->size);
	free(fs->offset);
	free(fs->data);
	free(fs->file_offset);
}

static void write_recording(const char *path, const struct frame_set *fs)
{
	struct recording_writer *w = NULL;
	char err[128] = "";

	assert_int_equal(recording_writer_open(path, 1700000000000000000LL, &w, err, sizeof(err)), 0);
	for (size_t i = 0; i < fs->n; i++)
		assert_int_equal(recording_write(w, fs->data[i], fs->size[i], fs->offset[i]), 0);
	assert_int_equal(recording_writer_close(w), 0);
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	long n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void spit(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void patch_u32(const char *path, size_t at, uint32_t v)
{
	size_t len;
	unsigned char *buf = slurp(path, &len);

	assert_true(at + 4 <= len);
	memcpy(buf + at, &v, 4);
	spit(path, buf, len);
	free(buf);
}

static void flip_byte(const char *path, size_t at)
{
	size_t len;
	unsigned char *buf = slurp(path, &len);

	assert_true(at < len);
	buf[at] ^= 0x5a;
	spit(path, buf, len);
	free(buf);
}

/* Reads every frame there is; returns the count, *rc the final result. */
static size_t read_all(const char *path, const struct frame_set *expect, int *rc,
		       char *err, size_t errlen)
{
	struct recording_reader *r = NULL;
	struct recording_frame f;
	size_t n = 0;

	*rc = recording_reader_open(path, &r, err, errlen);
	if (*rc < 0)
		return 0;
	while ((*rc = recording_next(r, &f, err, errlen)) == 1) {
		if (expect) {
			assert_true(n < expect->n);
			assert_int_equal(f.size, expect->size[n]);
			assert_memory_equal(f.data, expect->data[n], f.size);
			assert_int_equal(f.utc_offset_ns, expect->offset[n]);
		}
		n++;
	}
	recording_reader_close(r);
	return n;
}

/* Opening fails: the error is negative and says `what`. */
static void assert_open_fails(const char *path, const char *what)
{
	struct recording_reader *r = NULL;
	char err[128] = "";
	int rc = recording_reader_open(path, &r, err, sizeof(err));

	assert_true(rc < 0);
	assert_null(r);
	if (!strstr(err, what))
		fail_msg("error \"%s\" does not say \"%s\"", err, what);
}

/* Reading fails after `good` frames with `what` at `offset`. */
static void assert_read_fails(const char *path, const struct frame_set *fs, size_t good,
			      const char *what, uint64_t offset)
{
	char err[128] = "", want[128];
	int rc;
	size_t n = read_all(path, fs, &rc, err, sizeof(err));

	snprintf(want, sizeof(want), "%s at offset %llu", what, (unsigned long long)offset);
	assert_int_equal(n, good);
	assert_true(rc < 0);
	if (strcmp(err, want) != 0)
		fail_msg("error \"%s\", expected \"%s\"", err, want);
}

/* ---- the format --------------------------------------------------------- */

static void test_round_trip(void **state)
{
	const char *path = tmp_path("round_trip.rec");
	struct frame_set fs;
	char err[128] = "";
	size_t len;
	unsigned char *file;
	int rc;

	(void)state;
	frames_make(&fs, 3000);
	write_recording(path, &fs);
	assert_int_equal(read_all(path, &fs, &rc, err, sizeof(err)), fs.n);
	assert_int_equal(rc, 0);
	/* The bytes are the documented format, not just self-consistent. */
	file = slurp(path, &len);
	assert_int_equal(len, fs.file_offset[fs.n - 1] + FRAME_HDR + fs.size[fs.n - 1]);
	assert_memory_equal(file, "FLOWSREC", 8);
	assert_int_equal(*(uint32_t *)(void *)(file + 8), 0x01020304);
	assert_int_equal(*(uint32_t *)(void *)(file + 12), RECORDING_VERSION);
	assert_int_equal(*(uint32_t *)(void *)(file + 16), FS_ABI_VERSION);
	assert_int_equal(*(uint32_t *)(void *)(file + 20), HEADER);
	assert_int_equal(*(int64_t *)(void *)(file + 24), 1700000000000000000LL);
	assert_int_equal(*(uint32_t *)(void *)(file + HEADER), fs.size[0]);
	assert_memory_equal(file + HEADER + FRAME_HDR, fs.data[0], fs.size[0]);
	free(file);
	frames_free(&fs);
	unlink(path);
}

static void test_empty_recording(void **state)
{
	const char *path = tmp_path("empty.rec");
	struct recording_writer *w = NULL;
	struct recording_reader *r = NULL;
	struct recording_frame f;
	char err[128] = "";

	(void)state;
	assert_int_equal(recording_writer_open(path, 0, &w, err, sizeof(err)), 0);
	assert_int_equal(recording_writer_close(w), 0);
	assert_int_equal(recording_reader_open(path, &r, err, sizeof(err)), 0);
	assert_int_equal(recording_next(r, &f, err, sizeof(err)), 0);
	assert_int_equal(recording_next(r, &f, err, sizeof(err)), 0); /* and stays there */
	recording_reader_close(r);
	unlink(path);
}

static void test_write_rejects_bad_sizes(void **state)
{
	const char *path = tmp_path("sizes.rec");
	struct recording_writer *w = NULL;
	static unsigned char big[RECORDING_MAX_EVENT + 1];
	struct frame_set fs;
	char err[128] = "";
	int rc;

	(void)state;
	frames_make_fixed(&fs, 1, 88);
	assert_int_equal(recording_writer_open(path, 0, &w, err, sizeof(err)), 0);
	assert_int_equal(recording_write(w, big, 0, 0), -EINVAL);
	assert_int_equal(recording_write(w, big, sizeof(big), 0), -EINVAL);
	assert_int_equal(recording_write(w, fs.data[0], fs.size[0], fs.offset[0]), 0);
	assert_int_equal(recording_writer_close(w), 0);
	/* the refused writes left nothing behind */
	assert_int_equal(read_all(path, &fs, &rc, err, sizeof(err)), 1);
	assert_int_equal(rc, 0);
	frames_free(&fs);
	unlink(path);
}

static void test_open_errors(void **state)
{
	struct recording_writer *w = NULL;
	struct recording_reader *r = NULL;
	char err[128] = "";

	(void)state;
	assert_int_equal(recording_reader_open(tmp_path("missing.rec"), &r, err, sizeof(err)), -ENOENT);
	assert_true(strlen(err) > 0);
	err[0] = 0;
	assert_true(recording_writer_open(tmp_path("no/such/dir.rec"), 0, &w, err, sizeof(err)) < 0);
	assert_true(strlen(err) > 0);
	/* errbuf is optional */
	assert_int_equal(recording_reader_open(tmp_path("missing.rec"), &r, NULL, 0), -ENOENT);
}

static void test_bad_headers(void **state)
{
	const char *path = tmp_path("header.rec");
	static const char junk[] = "GARBAGE!this is not a recording at all......";
	struct frame_set fs;

	(void)state;
	spit(path, "", 0);
	assert_open_fails(path, "not a flowstore recording");
	spit(path, "FLOW", 4);
	assert_open_fails(path, "not a flowstore recording");
	spit(path, junk, sizeof(junk));
	assert_open_fails(path, "not a flowstore recording");

	frames_make_fixed(&fs, 2, 100);
	write_recording(path, &fs);
	patch_u32(path, 8, 0x04030201);
	assert_open_fails(path, "byte order");
	write_recording(path, &fs);
	patch_u32(path, 8, 0xdeadbeef);
	assert_open_fails(path, "byte-order mark");
	write_recording(path, &fs);
	patch_u32(path, 12, 7);
	assert_open_fails(path, "recording version 7 is not supported");
	write_recording(path, &fs);
	patch_u32(path, 20, 48);
	assert_open_fails(path, "header size");
	write_recording(path, &fs);
	patch_u32(path, 16, FS_ABI_VERSION + 1);
	assert_open_fails(path, "event ABI");
	write_recording(path, &fs);
	assert_int_equal(truncate(path, 20), 0);
	assert_open_fails(path, "truncated header");
	frames_free(&fs);
	unlink(path);
}

static void test_truncated_frames(void **state)
{
	const char *path = tmp_path("truncated.rec");
	uint64_t third = HEADER + 2 * (FRAME_HDR + 100);
	struct frame_set fs;

	(void)state;
	frames_make_fixed(&fs, 3, 100);
	write_recording(path, &fs);
	assert_int_equal(truncate(path, (off_t)(third + FRAME_HDR + 90)), 0); /* in the payload */
	assert_read_fails(path, &fs, 2, "truncated frame", third);
	write_recording(path, &fs);
	assert_int_equal(truncate(path, (off_t)(third + 5)), 0); /* in the frame header */
	assert_read_fails(path, &fs, 2, "truncated frame", third);
	write_recording(path, &fs);
	assert_int_equal(truncate(path, (off_t)third), 0); /* on a boundary: a clean end */
	{
		char err[128];
		int rc;

		assert_int_equal(read_all(path, &fs, &rc, err, sizeof(err)), 2);
		assert_int_equal(rc, 0);
	}
	frames_free(&fs);
	unlink(path);
}

static void test_checksum_mismatch(void **state)
{
	const char *path = tmp_path("crc.rec");
	struct frame_set fs;

	(void)state;
	frames_make_fixed(&fs, 4, 100);
	write_recording(path, &fs);
	flip_byte(path, fs.file_offset[2] + FRAME_HDR + 50); /* payload */
	assert_read_fails(path, &fs, 2, "checksum mismatch", fs.file_offset[2]);
	write_recording(path, &fs);
	flip_byte(path, fs.file_offset[1] + 4); /* the crc itself */
	assert_read_fails(path, &fs, 1, "checksum mismatch", fs.file_offset[1]);
	frames_free(&fs);
	unlink(path);
}

static void test_absurd_frame_size(void **state)
{
	const char *path = tmp_path("size.rec");
	static const uint32_t bad[] = { 0xffffffffu, 0, RECORDING_MAX_EVENT + 1 };
	struct frame_set fs;

	(void)state;
	frames_make_fixed(&fs, 3, 100);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_recording(path, &fs);
		patch_u32(path, fs.file_offset[1], bad[i]);
		assert_read_fails(path, &fs, 1, "corrupt frame", fs.file_offset[1]);
	}
	/* a size that is plausible but runs past the end: truncated */
	write_recording(path, &fs);
	patch_u32(path, fs.file_offset[2], 5000);
	assert_read_fails(path, &fs, 2, "truncated frame", fs.file_offset[2]);
	frames_free(&fs);
	unlink(path);
}

static void test_error_is_sticky(void **state)
{
	const char *path = tmp_path("sticky.rec");
	struct recording_reader *r = NULL;
	struct recording_frame f;
	struct frame_set fs;
	char err[128] = "";
	int rc;

	(void)state;
	frames_make_fixed(&fs, 3, 100);
	write_recording(path, &fs);
	flip_byte(path, fs.file_offset[0] + FRAME_HDR);
	assert_int_equal(recording_reader_open(path, &r, err, sizeof(err)), 0);
	rc = recording_next(r, &f, err, sizeof(err));
	assert_true(rc < 0);
	err[0] = 0;
	/* the next frame is fine, but a reader past a bad one stays failed */
	assert_int_equal(recording_next(r, &f, err, sizeof(err)), rc);
	assert_string_equal(err, "checksum mismatch at offset 32");
	recording_reader_close(r);
	frames_free(&fs);
	unlink(path);
}

/* Random damage never crashes the reader (ASan watches) and never yields
 * more frames than were written. */
static void test_fuzz_reader(void **state)
{
	const char *good = tmp_path("fuzz_good.rec"), *path = tmp_path("fuzz.rec");
	struct frame_set fs;
	unsigned char *orig, *buf;
	size_t len;
	char err[128];
	int rc;

	(void)state;
	frames_make(&fs, 40);
	write_recording(good, &fs);
	orig = slurp(good, &len);
	buf = malloc(len);
	assert_non_null(buf);
	for (int iter = 0; iter < 400; iter++) {
		size_t n = len;

		memcpy(buf, orig, len);
		switch (iter % 4) {
		case 0: /* flip a few bytes */
			for (int k = 0; k < 1 + iter % 8; k++)
				buf[rnd() % len] ^= (unsigned char)(1 + rnd() % 255);
			break;
		case 1: /* cut anywhere */
			n = rnd() % len;
			break;
		case 2: /* a random frame size field somewhere */
			memcpy(buf + fs.file_offset[rnd() % fs.n], &(uint32_t){ (uint32_t)rnd() }, 4);
			break;
		default: /* random bytes after a good header */
			for (size_t k = HEADER + rnd() % (len - HEADER); k < len; k++)
				buf[k] = (unsigned char)rnd();
			break;
		}
		spit(path, buf, n);
		assert_true(read_all(path, NULL, &rc, err, sizeof(err)) <= fs.n);
		assert_true(rc <= 0);
	}
	free(buf);
	free(orig);
	frames_free(&fs);
	unlink(good);
	unlink(path);
}

/* ---- the replay source -------------------------------------------------- */

struct replay_sink {
	struct source *src;
	const struct frame_set *expect;
	size_t events, mismatches;
	size_t pause_every; /* has_room false every so many events */
	size_t paused_at;
	bool room_blocked;
	int pauses, resumes;
	int done_calls, done_status, stopped_calls;
	uv_timer_t resume_timer;
};

static void replay_stopped(struct source *s)
{
	struct replay_sink *t = s->user;

	t->stopped_calls++;
}

static void rs_event(void *ctx, const void *data, size_t size, int64_t utc_offset_ns)
{
	struct replay_sink *t = ctx;
	const struct frame_set *fs = t->expect;

	if (t->room_blocked || t->events >= fs->n || size != fs->size[t->events] ||
	    memcmp(data, fs->data[t->events], size) != 0 ||
	    utc_offset_ns != fs->offset[t->events])
		t->mismatches++;
	t->events++;
	if (t->pause_every && t->events % t->pause_every == 0) {
		t->room_blocked = true;
		t->paused_at = t->events;
	}
}

static bool rs_has_room(void *ctx)
{
	struct replay_sink *t = ctx;

	return !t->room_blocked;
}

static void rs_done(void *ctx, int status)
{
	struct replay_sink *t = ctx;

	t->done_calls++;
	t->done_status = status;
	t->src->ops->stop(t->src, replay_stopped);
	if (t->pause_every)
		uv_close((uv_handle_t *)&t->resume_timer, NULL);
}

/* While the sink is blocked nothing arrives; then it makes room. */
static void on_resume_timer(uv_timer_t *h)
{
	struct replay_sink *t = h->data;

	if (!t->room_blocked)
		return;
	if (t->events != t->paused_at)
		t->mismatches++;
	t->pauses++;
	t->room_blocked = false;
	t->resumes++;
	t->src->ops->resume(t->src);
}

static void play(const char *path, struct replay_sink *t)
{
	struct source_sink sink = {
		.event = rs_event, .has_room = rs_has_room, .done = rs_done, .ctx = t,
	};
	struct source *s = NULL;
	uv_loop_t loop;

	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(source_replay_new(&loop, path, &sink, &s), 0);
	assert_string_equal(s->ops->name, "replay");
	s->user = t;
	t->src = s;
	if (t->pause_every) {
		uv_timer_init(&loop, &t->resume_timer);
		t->resume_timer.data = t;
		uv_timer_start(&t->resume_timer, on_resume_timer, 1, 1);
	}
	assert_int_equal(s->ops->start(s), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	s->ops->destroy(s);
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* A recording of realistic events: what --record would have written. */
static void frames_from_generator(struct frame_set *fs, size_t n)
{
	struct synthetic *g = NULL;
	unsigned char buf[FS_EVENT_MAX_SIZE];

	frames_make(fs, n);
	assert_int_equal(synthetic_new(11, &g), 0);
	for (size_t i = 0; i < n; i++) {
		size_t size = synthetic_next(g, 1000000000000LL + (int64_t)i * 1000, buf);

		free(fs->data[i]);
		fs->data[i] = malloc(size);
		assert_non_null(fs->data[i]);
		memcpy(fs->data[i], buf, size);
		fs->size[i] = size;
		fs->offset[i] = 1700000000000000000LL + (int64_t)(i / 100);
		fs->file_offset[i] = i ? fs->file_offset[i - 1] + FRAME_HDR + fs->size[i - 1] : HEADER;
	}
	synthetic_free(g);
}

static void test_replay_end_to_end(void **state)
{
	const char *path = tmp_path("replay.rec");
	struct frame_set fs;
	struct replay_sink t = { 0 };

	(void)state;
	frames_from_generator(&fs, 5000);
	write_recording(path, &fs);
	t.expect = &fs;
	play(path, &t);
	assert_int_equal(t.events, fs.n);
	assert_int_equal(t.mismatches, 0);
	assert_int_equal(t.done_calls, 1);
	assert_int_equal(t.done_status, 0);
	assert_int_equal(t.stopped_calls, 1);
	frames_free(&fs);
	unlink(path);
}

static void test_replay_pausing_sink(void **state)
{
	const char *path = tmp_path("replay_pause.rec");
	struct frame_set fs;
	struct replay_sink t = { .pause_every = 700 };

	(void)state;
	frames_from_generator(&fs, 5000);
	write_recording(path, &fs);
	t.expect = &fs;
	play(path, &t);
	assert_int_equal(t.events, fs.n);
	assert_int_equal(t.mismatches, 0);
	assert_int_equal(t.resumes, 5000 / 700);
	assert_int_equal(t.done_calls, 1);
	assert_int_equal(t.done_status, 0);
	assert_int_equal(t.stopped_calls, 1);
	frames_free(&fs);
	unlink(path);
}

static void test_replay_corrupt(void **state)
{
	const char *path = tmp_path("replay_bad.rec");
	struct frame_set fs;
	struct replay_sink t = { 0 };
	struct replay_sink t2 = { 0 };

	(void)state;
	frames_from_generator(&fs, 2000);
	write_recording(path, &fs);
	flip_byte(path, fs.file_offset[1234] + FRAME_HDR + 3);
	t.expect = &fs;
	play(path, &t);
	assert_int_equal(t.events, 1234); /* the good prefix, then the error */
	assert_int_equal(t.mismatches, 0);
	assert_int_equal(t.done_calls, 1);
	assert_int_equal(t.done_status, -EIO);
	assert_int_equal(t.stopped_calls, 1);

	write_recording(path, &fs);
	assert_int_equal(truncate(path, (off_t)(fs.file_offset[1999] + 7)), 0);
	t2.expect = &fs;
	play(path, &t2);
	assert_int_equal(t2.events, 1999);
	assert_int_equal(t2.mismatches, 0);
	assert_int_equal(t2.done_status, -EIO);
	frames_free(&fs);
	unlink(path);
}

static void test_replay_bad_file(void **state)
{
	const char *path = tmp_path("replay_notrec.rec");
	struct replay_sink t = { 0 };
	struct source_sink sink = {
		.event = rs_event, .has_room = rs_has_room, .done = rs_done, .ctx = &t,
	};
	struct source *s = NULL;
	uv_loop_t loop;

	(void)state;
	spit(path, "hello, world\n", 13);
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(source_replay_new(&loop, path, &sink, &s), -EINVAL);
	assert_null(s);
	assert_int_equal(source_replay_new(&loop, tmp_path("nope.rec"), &sink, &s), -ENOENT);
	assert_int_equal(uv_loop_close(&loop), 0);
	assert_int_equal(t.done_calls, 0);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_empty_recording),
		cmocka_unit_test(test_write_rejects_bad_sizes),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_bad_headers),
		cmocka_unit_test(test_truncated_frames),
		cmocka_unit_test(test_checksum_mismatch),
		cmocka_unit_test(test_absurd_frame_size),
		cmocka_unit_test(test_error_is_sticky),
		cmocka_unit_test(test_fuzz_reader),
		cmocka_unit_test(test_replay_end_to_end),
		cmocka_unit_test(test_replay_pausing_sink),
		cmocka_unit_test(test_replay_corrupt),
		cmocka_unit_test(test_replay_bad_file),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
