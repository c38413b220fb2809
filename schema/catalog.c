/*
 * catalog.c: the files of a data directory, as the file system lists them
 * (the file system is the catalog; there is no second list): raw
 * partitions, rollup files, and the leftovers of interrupted work.
 *
 * Invariants:
 *  1. catalog_scan is read-only: it never creates, deletes, renames or
 *     writes a file. Files that are not ours are not even opened by SQLite
 *     (see schema_header_read), so no side file appears next to them.
 *  2. A name that parses as one of our names (schema_name_parse) is ours,
 *     whatever its content: it is listed, as CATALOG_BROKEN if it is not a
 *     readable file of the kind its name says, so that nobody reuses or
 *     deletes it by mistake.
 *  3. SQLite's side files of our names (-wal, -shm, -journal) belong to
 *     their file, or, when that file is gone (an interrupted removal), are
 *     leftovers; so are our temporary names (schema_is_temp_name). The
 *     retention lock (.retention.lock) is ours and is none of these. Every
 *     other entry (files, directories, dotfiles) is foreign and left alone.
 *  4. catalog_remove_temps unlinks leftovers and nothing else, and never a
 *     temporary file a creator holds locked (rollup_file.c, invariant 2).
 *  5. Entries are sorted by kind (raw, 1m, 1h), then by name, which is
 *     time order within a kind.
 *  6. catalog_scan_since reuses an earlier scan's entry only for a raw
 *     partition whose seal was whole then and whose file stat(2) shows
 *     unchanged now (device, inode, size, mtime, ctime: sealing, writing
 *     and chmod all move ctime), with no -wal or -journal. Everything
 *     else, and every rollup file (rollups write into them), is read
 *     again. The stat is taken before the read, so a change racing a
 *     read is seen by the next scan.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "schema.h"
#include "schemaInt.h"


static const char *const side_suffixes[] = { "-wal", "-shm", "-journal" };
#define NSIDES (sizeof(side_suffixes) / sizeof(side_suffixes[0]))

/* A side file of one of our names: "<name><suffix>"; base gets <name>. */
static int side_file_base(const char *name, char base[SCHEMA_NAME_LEN])
{
	size_t len = strlen(name);

	for (size_t i = 0; i < NSIDES; i++) {
		size_t slen = strlen(side_suffixes[i]);

		if (len <= slen || len - slen >= SCHEMA_NAME_LEN ||
		    strcmp(name + len - slen, side_suffixes[i]))
			continue;
		memcpy(base, name, len - slen);
		base[len - slen] = 0;
		if (schema_name_classify(base, NULL, NULL, NULL) == 0)
			return 1;
	}
	return 0;
}

int partition_seal_complete(const char *path, const struct partition_meta *m)
{
	struct schema_header h;
	struct stat st;

	if (!m->sealed || stat(path, &st) || (st.st_mode & 0222))
		return 0;
	if (schema_side_file_exists(path, "-wal") || schema_side_file_exists(path, "-journal"))
		return 0;
	return schema_header_read(path, &h) == 0 && !h.wal;
}

/* Allocated size of dir/name (st_blocks), 0 if it is not there. */
static uint64_t allocated(int dfd, const char *name)
{
	struct stat st;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW))
		return 0;
	return (uint64_t)st.st_blocks * 512;
}

/* An entry's bytes: the file and its side files. */
static uint64_t entry_bytes(int dfd, const char *name)
{
	char side[SCHEMA_NAME_LEN + 16];
	uint64_t bytes = allocated(dfd, name);

	for (size_t i = 0; i < NSIDES; i++) {
		snprintf(side, sizeof(side), "%s%s", name, side_suffixes[i]);
		bytes += allocated(dfd, side);
	}
	return bytes;
}

static int exists_at(int dfd, const char *name)
{
	struct stat st;

	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void set_error(struct catalog_entry *e, const char *reason)
{
	snprintf(e->error, sizeof(e->error), "%s", reason);
}

/* The file's metadata, and -EINVAL if it is not of the kind its name says. */
static int entry_read_meta(const char *path, struct catalog_entry *e)
{
	enum schema_kind kind;
	int rc = schema_file_read_meta(path, &kind, &e->meta);

	return rc ? rc : schema_kind_check(path, kind, SCHEMA_WANT(e->kind));
}

/*
 * Fill e from the file's metadata. Returns 1 to list e, 0 to skip it (the
 * file went away since readdir), or a negative errno to stop the scan.
 */
static int entry_fill(const char *path, struct catalog_entry *e)
{
	int rc = entry_read_meta(path, e);
	const struct partition_meta *m = &e->meta;

	if (rc == -ENOENT)
		return 0;
	if (rc == -ENOMEM)
		return rc;
	if (rc == -EAGAIN || rc == -EBUSY) {
		/* a crash left recovery to do, or the file is locked for now:
		 * ours; a read-write open (the seal of a raw partition, the
		 * next rollup step of a rollup file) sorts it out */
		e->status = CATALOG_OPEN;
		e->needs_seal = e->kind == SCHEMA_KIND_RAW;
		set_error(e, schema_error_reason());
	} else if (rc) {
		e->status = CATALOG_BROKEN;
		set_error(e, schema_error_reason());
	} else if (m->period_start_ns != e->period_start_ns || m->seq != e->seq) {
		e->status = CATALOG_BROKEN;
		snprintf(e->error, sizeof(e->error),
			 "renamed: meta says period start %lld ns, seq %u",
			 (long long)m->period_start_ns, m->seq);
	} else if (e->kind == SCHEMA_KIND_RAW) {
		e->status = m->sealed ? CATALOG_SEALED : CATALOG_OPEN;
		e->needs_seal = !partition_seal_complete(path, m);
		e->has_meta = 1;
	} else {
		e->status = CATALOG_OPEN; /* rollup files are never sealed */
		e->has_meta = 1;
	}
	if (!e->has_meta)
		memset(&e->meta, 0, sizeof(e->meta));
	return 1;
}

static int catalog_grow(struct catalog *c, size_t *cap)
{
	size_t n = *cap ? *cap * 2 : 16;
	struct catalog_entry *e = realloc(c->entries, n * sizeof(*e));

	if (!e)
		return -ENOMEM;
	c->entries = e;
	*cap = n;
	return 0;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct catalog_entry *x = a, *y = b;

	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	return strcmp(x->name, y->name);
}

static void id_of(int dfd, const char *name, struct catalog_id *id)
{
	struct stat st;

	memset(id, 0, sizeof(*id));
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW))
		return; /* unknown: never equal to an earlier scan's */
	id->dev = (uint64_t)st.st_dev;
	id->ino = (uint64_t)st.st_ino;
	id->size = (uint64_t)st.st_size;
	id->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	id->ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
}

/* prev's entry for e (name, kind; its file at path) if it may stand for e:
 * a whole seal of the same, unchanged file (catalog_scan_since). */
static const struct catalog_entry *entry_unchanged(const struct catalog *prev, const char *path,
						   const struct catalog_entry *e)
{
	const struct catalog_entry *old;

	if (!prev || !prev->n || e->kind != SCHEMA_KIND_RAW || !e->id.ino)
		return NULL;
	old = bsearch(e, prev->entries, prev->n, sizeof(*e), entry_cmp);
	if (!old || old->status != CATALOG_SEALED || old->needs_seal || !old->has_meta ||
	    memcmp(&old->id, &e->id, sizeof(e->id)))
		return NULL;
	/* the side files partition_seal_complete looks for */
	if (schema_side_file_exists(path, "-wal") || schema_side_file_exists(path, "-journal"))
		return NULL;
	return old;
}

/* A file of ours: list it (from prev if it is unchanged there). */
static int catalog_add(struct catalog *c, size_t *cap, const struct catalog *prev,
		       const char *dir, int dfd, const char *name, enum schema_kind kind,
		       int64_t start, unsigned seq)
{
	const struct catalog_entry *old;
	char path[PATH_MAX];
	struct catalog_entry *e;
	int rc;

	if (c->n == *cap && (rc = catalog_grow(c, cap)))
		return schema_error(rc, dir, "out of memory");
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return schema_error(-ENAMETOOLONG, dir, "path too long");
	e = &c->entries[c->n];
	memset(e, 0, sizeof(*e));
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->kind = kind;
	e->period_start_ns = start;
	e->seq = seq;
	id_of(dfd, name, &e->id); /* before the read: a change after it shows next time */
	old = entry_unchanged(prev, path, e);
	if (old) {
		*e = *old;
		rc = 1;
	} else {
		rc = entry_fill(path, e);
	}
	if (rc <= 0)
		return rc;
	e->bytes = entry_bytes(dfd, name);
	c->bytes += e->bytes;
	c->n++;
	return 0;
}

/* A leftover: a temporary name, or a side file whose file is gone. */
static void catalog_leftover(struct catalog *c, int dfd, const char *name)
{
	c->temps++;
	c->bytes += allocated(dfd, name);
}

/* One directory entry: a file of ours, a side file, a leftover, or foreign. */
static int catalog_consider(struct catalog *c, size_t *cap, const struct catalog *prev,
			    const char *dir, int dfd, const char *name)
{
	char base[SCHEMA_NAME_LEN];
	enum schema_kind kind;
	int64_t start;
	unsigned seq;
	struct stat st;

	if (!strcmp(name, ".") || !strcmp(name, "..") || !strcmp(name, SCHEMA_RETENTION_LOCK))
		return 0;
	if (side_file_base(name, base)) {
		if (!exists_at(dfd, base))
			catalog_leftover(c, dfd, name);
		return 0;
	}
	if (schema_is_temp_name(name)) {
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
			c->foreign++; /* not something catalog_remove_temps may unlink */
		else
			catalog_leftover(c, dfd, name);
		return 0;
	}
	if (schema_name_classify(name, &kind, &start, &seq)) {
		c->foreign++;
		return 0;
	}
	return catalog_add(c, cap, prev, dir, dfd, name, kind, start, seq);
}

/* Call fn for each entry of dir, until it returns nonzero. */
static int dir_each(const char *dir, int (*fn)(const char *dir, int dfd, const char *name,
					       void *ctx), void *ctx)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int rc = 0;

	if (!d)
		return schema_error(-errno, dir, "%s", strerror(errno));
	while (!rc) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				rc = schema_error(-errno, dir, "%s", strerror(errno));
			break;
		}
		rc = fn(dir, dirfd(d), de->d_name, ctx);
	}
	closedir(d);
	return rc;
}

struct scan_ctx {
	struct catalog c;
	size_t cap;
	const struct catalog *prev;
};

static int scan_one(const char *dir, int dfd, const char *name, void *ctx)
{
	struct scan_ctx *s = ctx;

	return catalog_consider(&s->c, &s->cap, s->prev, dir, dfd, name);
}

int catalog_scan(const char *dir, struct catalog *out)
{
	return catalog_scan_since(dir, NULL, out);
}

int catalog_scan_since(const char *dir, const struct catalog *prev, struct catalog *out)
{
	struct scan_ctx s = { { 0 }, 0, prev };
	int rc;

	if (!dir || !out || out == prev)
		return schema_error(-EINVAL, dir, "catalog_scan: bad arguments");
	memset(out, 0, sizeof(*out));
	rc = dir_each(dir, scan_one, &s);
	if (rc) {
		catalog_free(&s.c);
		return rc;
	}
	if (s.c.n)
		qsort(s.c.entries, s.c.n, sizeof(*s.c.entries), entry_cmp);
	*out = s.c;
	return 0;
}

void catalog_free(struct catalog *c)
{
	if (!c)
		return;
	free(c->entries);
	memset(c, 0, sizeof(*c));
}

/* ---- the next seq of a period ------------------------------------------------------ */

struct seq_ctx {
	int64_t period_start_ns;
	unsigned next;
};

static void seq_seen(struct seq_ctx *s, unsigned seq)
{
	if (seq >= s->next)
		s->next = seq + 1; /* may pass SCHEMA_SEQ_MAX: the caller says -ERANGE */
}

static int seq_one(const char *dir, int dfd, const char *name, void *ctx)
{
	struct seq_ctx *s = ctx;
	char path[PATH_MAX];
	enum schema_kind kind;
	int64_t start;
	unsigned seq;

	(void)dfd;
	if (schema_name_classify(name, &kind, &start, &seq))
		return 0;
	if (kind == SCHEMA_KIND_RAW) {
		if (start == s->period_start_ns)
			seq_seen(s, seq);
		return 0;
	}
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return 0;
	if (rollup_file_last_seq(path, s->period_start_ns, &seq) == 1)
		seq_seen(s, seq);
	return 0;
}

int catalog_next_seq(const char *dir, int64_t period_start_ns, unsigned *seq)
{
	struct seq_ctx s = { period_start_ns, 0 };
	int rc;

	if (!dir || !seq)
		return schema_error(-EINVAL, dir, "catalog_next_seq: bad arguments");
	rc = dir_each(dir, seq_one, &s);
	if (rc)
		return rc;
	if (s.next > SCHEMA_SEQ_MAX)
		return schema_error(-ERANGE, dir, "every seq of the period is used");
	*seq = s.next;
	return 0;
}

/* ---- removing leftovers ------------------------------------------------------------ */

/*
 * Whether a creator holds the temporary file tmp (rollup_file.c): try its
 * lock. 1 held, 0 free (then *fd holds the lock until the caller closes
 * it; -1 when tmp is gone or not a regular file).
 */
static int tmp_held(int dfd, const char *tmp, int *fd)
{
	*fd = openat(dfd, tmp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (*fd < 0)
		return 0;
	if (flock(*fd, LOCK_EX | LOCK_NB) == 0)
		return 0;
	close(*fd);
	*fd = -1;
	return errno == EWOULDBLOCK;
}

/* The temporary file a temporary name belongs to (itself, or the file of
 * its -journal). */
static void tmp_main(const char *name, char *buf, size_t len)
{
	size_t n = strlen(name), jlen = strlen("-journal");

	if (n > jlen && strcmp(name + n - jlen, "-journal") == 0)
		n -= jlen;
	snprintf(buf, len, "%.*s", (int)n, name);
}

struct remove_ctx {
	size_t removed;
	int err;
};

static void remove_name(struct remove_ctx *r, const char *dir, int dfd, const char *name)
{
	if (unlinkat(dfd, name, 0) == 0) {
		r->removed++;
	} else if (errno != ENOENT && errno != EISDIR && !r->err) {
		/* keep going: one stuck file must not keep the others */
		r->err = schema_error(-errno, dir, "unlink %s: %s", name, strerror(errno));
	}
}

static int remove_one(const char *dir, int dfd, const char *name, void *ctx)
{
	struct remove_ctx *r = ctx;
	char base[SCHEMA_NAME_LEN + 16];
	int fd = -1;

	if (schema_is_temp_name(name)) {
		tmp_main(name, base, sizeof(base));
		if (!tmp_held(dfd, base, &fd))
			remove_name(r, dir, dfd, name); /* under its lock, if it has one */
		if (fd >= 0)
			close(fd);
	} else if (side_file_base(name, base) && !exists_at(dfd, base)) {
		remove_name(r, dir, dfd, name);
	}
	return 0;
}

int catalog_remove_temps(const char *dir, size_t *removed)
{
	struct remove_ctx r = { 0, 0 };
	int rc;

	if (removed)
		*removed = 0;
	if (!dir)
		return schema_error(-EINVAL, NULL, "catalog_remove_temps: no dir");
	rc = dir_each(dir, remove_one, &r);
	if (removed)
		*removed = r.removed;
	return rc ? rc : r.err;
}
