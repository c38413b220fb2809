/*
 * policy.c: which files go, and why (retention_plan). Pure: it reads a
 * catalog and numbers, and touches nothing, so the dry run and the real
 * run make the same plan from the same state.
 *
 * What may go:
 *  1. A raw partition sealed with every seal step done (CATALOG_SEALED and
 *     !needs_seal): it never changes again.
 *  2. A raw partition not (completely) sealed, only if it has readable
 *     metadata and may_remove_open(name) says 1: the daemon says so only
 *     for closed partitions waiting for their seal, never for the one being
 *     written. Such a partition may go by age as well as by size: a closed
 *     partition whose seal keeps failing must not outlive --retain-raw.
 *  3. A rollup file (1m, 1h) that is not broken.
 * Never: a CATALOG_BROKEN file of any kind (it has our name but is not a
 * readable file of ours: someone's evidence of what went wrong; counted in
 * report.broken and left), foreign files (the catalog does not list them),
 * the lock file (a dotfile, foreign to the catalog).
 *
 * Why, in this order (each file at most once; report.actions in order):
 *  1. age, per kind (raw, then 1m, then 1h; oldest first in each): the
 *     period ended at or before now - retain_ns[kind] (0: no age limit).
 *     A raw partition's period end is meta.period_end_ns; a rollup file's
 *     is its UTC day or month (rollup_period), from the name.
 *  2. max-disk: if the store (catalog.bytes less what age removes) is over
 *     max_disk, the remaining candidates go, all raw oldest first, then all
 *     1m oldest first, then all 1h, until the store is at or under
 *     max_disk * RETENTION_LOW_WATER_PCT / 100.
 *  3. min-free: if free space (free_bytes plus the bytes removed so far) is
 *     under min_free, the same order, until it is at or over
 *     min_free * 100 / RETENTION_LOW_WATER_PCT. Removing a file frees its
 *     bytes (catalog_entry.bytes, side files included): the plan assumes so.
 * A raw partition whose rollup is not done (rolled[i] == 0) is marked
 * roll_up_first: the run rolls it up before it unlinks it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "retention.h"

#define NS_PER_DAY (86400LL * 1000000000LL)

void retention_policy_default(struct retention_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->retain_ns[SCHEMA_KIND_RAW] = 7 * NS_PER_DAY;
	p->retain_ns[SCHEMA_KIND_1M] = 90 * NS_PER_DAY;
	p->retain_ns[SCHEMA_KIND_1H] = 400 * NS_PER_DAY;
}

const char *retention_why_name(enum retention_why w)
{
	switch (w) {
	case RETENTION_AGE:
		return "age";
	case RETENTION_MAX_DISK:
		return "max-disk";
	case RETENTION_MIN_FREE:
		return "min-free";
	}
	return "?";
}

/* The plan in the making. */
struct plan {
	const struct catalog *cat;
	const int *rolled;
	size_t *order;      /* candidates' indexes into cat->entries, removal order */
	size_t norder;
	char *gone;         /* per entry: planned already */
	uint64_t bytes;     /* the store, after what is planned so far */
	uint64_t free;      /* free space, likewise */
	struct retention_report *out;
	size_t cap;
};

static int is_sealed_raw(const struct catalog_entry *e)
{
	return e->kind == SCHEMA_KIND_RAW && e->status == CATALOG_SEALED && !e->needs_seal;
}

/* An unsealed raw partition (closed or being written), not broken. */
static int is_unsealed_raw(const struct catalog_entry *e)
{
	return e->kind == SCHEMA_KIND_RAW && e->status != CATALOG_BROKEN && !is_sealed_raw(e);
}

static int may_go(const struct catalog_entry *e,
		  int (*may_remove_open)(const char *name, void *ctx), void *ctx)
{
	if (e->status == CATALOG_BROKEN || (unsigned)e->kind >= SCHEMA_NKINDS)
		return 0;
	if (e->kind != SCHEMA_KIND_RAW || is_sealed_raw(e))
		return 1;
	return e->has_meta && may_remove_open && may_remove_open(e->name, ctx) == 1;
}

static int64_t period_end(const struct catalog_entry *e)
{
	int64_t start, end;

	if (e->kind == SCHEMA_KIND_RAW)
		return e->meta.period_end_ns;
	rollup_period(e->kind, e->period_start_ns, &start, &end);
	return end;
}

/* A candidate with its sort key: kind (raw, 1m, 1h), period start, seq. */
struct candidate {
	enum schema_kind kind;
	int64_t start;
	unsigned seq;
	size_t i;
};

static int candidate_cmp(const void *a, const void *b)
{
	const struct candidate *x = a, *y = b;

	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int plan_add(struct plan *pl, size_t i, enum retention_why why, uint64_t level,
		    uint64_t limit)
{
	const struct catalog_entry *e = &pl->cat->entries[i];
	struct retention_report *out = pl->out;
	struct retention_action *a;

	if (out->n == pl->cap) {
		size_t cap = pl->cap ? pl->cap * 2 : 16;

		a = realloc(out->actions, cap * sizeof(*a));
		if (!a)
			return -ENOMEM;
		out->actions = a;
		pl->cap = cap;
	}
	a = &out->actions[out->n++];
	memset(a, 0, sizeof(*a));
	memcpy(a->name, e->name, sizeof(a->name));
	a->kind = e->kind;
	a->why = why;
	a->bytes = e->bytes;
	a->period_end_ns = period_end(e);
	a->roll_up_first = e->kind == SCHEMA_KIND_RAW && !(pl->rolled && pl->rolled[i]);
	a->level = level;
	a->limit = limit;
	pl->gone[i] = 1;
	pl->bytes = pl->bytes > e->bytes ? pl->bytes - e->bytes : 0;
	pl->free = pl->free > UINT64_MAX - e->bytes ? UINT64_MAX : pl->free + e->bytes;
	return 0;
}

/* now - retain, saturating: files whose period ended by then go. */
static int64_t age_cutoff(int64_t now_ns, int64_t retain)
{
	return now_ns < INT64_MIN + retain ? INT64_MIN : now_ns - retain;
}

static int plan_age(struct plan *pl, const struct retention_policy *p, int64_t now_ns)
{
	for (size_t j = 0; j < pl->norder; j++) {
		size_t i = pl->order[j];
		const struct catalog_entry *e = &pl->cat->entries[i];
		int64_t retain = p->retain_ns[e->kind];
		int rc;

		if (retain > 0 && period_end(e) <= age_cutoff(now_ns, retain) &&
		    (rc = plan_add(pl, i, RETENTION_AGE, 0, (uint64_t)retain)))
			return rc;
	}
	return 0;
}

/* x * num / den without overflow (saturating). */
static uint64_t scale(uint64_t x, uint64_t num, uint64_t den)
{
	unsigned __int128 r = (unsigned __int128)x * num / den;

	return r > UINT64_MAX ? UINT64_MAX : (uint64_t)r;
}

static int plan_max_disk(struct plan *pl, uint64_t max_disk)
{
	uint64_t low = scale(max_disk, RETENTION_LOW_WATER_PCT, 100);
	uint64_t level = pl->bytes;
	int rc;

	if (!max_disk || pl->bytes <= max_disk)
		return 0;
	for (size_t j = 0; j < pl->norder && pl->bytes > low; j++)
		if (!pl->gone[pl->order[j]] &&
		    (rc = plan_add(pl, pl->order[j], RETENTION_MAX_DISK, level, max_disk)))
			return rc;
	return 0;
}

static int plan_min_free(struct plan *pl, uint64_t min_free)
{
	uint64_t high = scale(min_free, 100, RETENTION_LOW_WATER_PCT);
	uint64_t level = pl->free;
	int rc;

	if (!min_free || pl->free >= min_free)
		return 0;
	for (size_t j = 0; j < pl->norder && pl->free < high; j++)
		if (!pl->gone[pl->order[j]] &&
		    (rc = plan_add(pl, pl->order[j], RETENTION_MIN_FREE, level, min_free)))
			return rc;
	return 0;
}

/* Candidates in removal order; broken files counted. */
static int plan_candidates(struct plan *pl,
			   int (*may_remove_open)(const char *name, void *ctx), void *ctx)
{
	const struct catalog *cat = pl->cat;
	size_t n = cat->n ? cat->n : 1;
	struct candidate *c = malloc(n * sizeof(*c));

	pl->order = malloc(n * sizeof(*pl->order));
	pl->gone = calloc(n, 1);
	if (!c || !pl->order || !pl->gone) {
		free(c);
		return -ENOMEM;
	}
	for (size_t i = 0; i < cat->n; i++) {
		const struct catalog_entry *e = &cat->entries[i];

		if (e->status == CATALOG_BROKEN)
			pl->out->broken++;
		else if (may_go(e, may_remove_open, ctx))
			c[pl->norder++] = (struct candidate){ e->kind, e->period_start_ns, e->seq, i };
	}
	qsort(c, pl->norder, sizeof(*c), candidate_cmp);
	for (size_t j = 0; j < pl->norder; j++)
		pl->order[j] = c[j].i;
	free(c);
	return 0;
}

static void count_kept_unsealed(struct plan *pl)
{
	for (size_t i = 0; i < pl->cat->n; i++)
		if (is_unsealed_raw(&pl->cat->entries[i]) && !pl->gone[i])
			pl->out->kept_unsealed++;
}

int retention_plan(const struct catalog *cat, const int *rolled,
		   const struct retention_policy *p, int64_t now_ns, uint64_t free_bytes,
		   int (*may_remove_open)(const char *name, void *ctx), void *ctx,
		   struct retention_report *out)
{
	struct plan pl = { .cat = cat, .rolled = rolled, .out = out };
	int rc;

	if (!cat || !p || !out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	for (int k = 0; k < SCHEMA_NKINDS; k++)
		if (p->retain_ns[k] < 0)
			return -EINVAL;
	out->now_ns = now_ns;
	out->bytes_before = pl.bytes = cat->bytes;
	out->free_before = pl.free = free_bytes;
	rc = plan_candidates(&pl, may_remove_open, ctx);
	if (!rc)
		rc = plan_age(&pl, p, now_ns);
	if (!rc)
		rc = plan_max_disk(&pl, p->max_disk);
	if (!rc)
		rc = plan_min_free(&pl, p->min_free);
	if (!rc)
		count_kept_unsealed(&pl);
	out->bytes_after = pl.bytes;
	out->free_after = pl.free;
	free(pl.order);
	free(pl.gone);
	if (rc)
		retention_report_free(out);
	return rc;
}
