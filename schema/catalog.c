/*
 * catalog.c: the partitions of a data directory, as the file system lists
 * them (the file system is the catalog; there is no second list).
 *
 * Invariants:
 *  1. Read-only: the scan never creates, deletes, renames or writes a file.
 *     Files that are not ours are not even opened by SQLite (see
 *     schema_header_read), so no side file appears next to them.
 *  2. A name that parses as a partition name is ours, whatever its content:
 *     it is listed, as CATALOG_BROKEN if it is not a readable partition, so
 *     that nobody reuses or deletes it by mistake.
 *  3. SQLite's side files of our names (-wal, -shm, -journal) belong to
 *     their partition; every other entry (files, directories, dotfiles) is
 *     counted as foreign and left alone.
 *  4. Entries are sorted by name, which is time order.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "schema.h"
#include "schemaInt.h"

/* A side file of a partition: "<partition name><suffix>". */
static int is_side_file(const char *name)
{
	static const char *const suffixes[] = { "-wal", "-shm", "-journal" };
	size_t len = strlen(name);
	char base[SCHEMA_NAME_LEN];

	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		size_t slen = strlen(suffixes[i]);

		if (len <= slen || len - slen >= sizeof(base) ||
		    strcmp(name + len - slen, suffixes[i]))
			continue;
		memcpy(base, name, len - slen);
		base[len - slen] = 0;
		if (partition_name_parse(base, NULL, NULL) == 0)
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

static void set_error(struct catalog_entry *e, const char *reason)
{
	snprintf(e->error, sizeof(e->error), "%s", reason);
}

/*
 * Fill e from the file's metadata. Returns 1 to list e, 0 to skip it (the
 * file went away since readdir), or a negative errno to stop the scan.
 */
static int entry_fill(const char *path, struct catalog_entry *e)
{
	struct partition_meta m;
	int rc = partition_read_meta(path, &m);

	if (rc == -ENOENT)
		return 0;
	if (rc == -ENOMEM)
		return rc;
	if (rc == -EAGAIN || rc == -EBUSY) {
		/* a crash left recovery to do, or the file is locked for now:
		 * ours, and the seal (read-write, patient) sorts it out */
		e->status = CATALOG_OPEN;
		e->needs_seal = 1;
		set_error(e, schema_error_reason());
	} else if (rc) {
		e->status = CATALOG_BROKEN;
		set_error(e, schema_error_reason());
	} else if (m.period_start_ns != e->period_start_ns || m.seq != e->seq) {
		e->status = CATALOG_BROKEN;
		snprintf(e->error, sizeof(e->error),
			 "renamed: meta says period start %lld ns, seq %u",
			 (long long)m.period_start_ns, m.seq);
	} else {
		e->status = m.sealed ? CATALOG_SEALED : CATALOG_OPEN;
		e->needs_seal = !partition_seal_complete(path, &m);
	}
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

/* One directory entry: a partition, a side file, or foreign. */
static int catalog_consider(struct catalog *c, size_t *cap, const char *dir, const char *name)
{
	char path[PATH_MAX];
	struct catalog_entry *e;
	int rc;

	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || is_side_file(name))
		return 0;
	if (c->n == *cap && (rc = catalog_grow(c, cap)))
		return schema_error(rc, dir, "out of memory");
	e = &c->entries[c->n];
	memset(e, 0, sizeof(*e));
	if (partition_name_parse(name, &e->period_start_ns, &e->seq)) {
		c->foreign++;
		return 0;
	}
	snprintf(e->name, sizeof(e->name), "%s", name);
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return schema_error(-ENAMETOOLONG, dir, "path too long");
	rc = entry_fill(path, e);
	if (rc > 0)
		c->n++;
	return rc < 0 ? rc : 0;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct catalog_entry *)a)->name,
		      ((const struct catalog_entry *)b)->name);
}

int catalog_scan(const char *dir, struct catalog *out)
{
	struct catalog c = { 0 };
	struct dirent *de;
	size_t cap = 0;
	DIR *d = NULL;
	int rc = 0;

	if (!dir || !out)
		return schema_error(-EINVAL, dir, "catalog_scan: bad arguments");
	memset(out, 0, sizeof(*out));
	d = opendir(dir);
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
		rc = catalog_consider(&c, &cap, dir, de->d_name);
	}
	closedir(d);
	if (rc) {
		catalog_free(&c);
		return rc;
	}
	if (c.n)
		qsort(c.entries, c.n, sizeof(*c.entries), entry_cmp);
	*out = c;
	return 0;
}

void catalog_free(struct catalog *c)
{
	if (!c)
		return;
	free(c->entries);
	c->entries = NULL;
	c->n = 0;
	c->foreign = 0;
}
