/*
 * stats_vtab.c: the `stats` table (stats_vtab.h), the daemon's counters as
 * rows, read through a callback at query time.
 *
 * Invariants:
 *  1. Eponymous only (xCreate NULL): the table exists on every connection it
 *     is registered on and CREATE VIRTUAL TABLE ... USING stats is refused.
 *     No xUpdate: it cannot be written ("table stats may not be modified").
 *  2. One snapshot per scan: xFilter calls the source once and copies every
 *     counter into the cursor, so a scan sees consistent rows however long
 *     the query holds it, and the source's strings need not outlive emit().
 *  3. Nothing is pushed down: the source is called whole, SQLite filters
 *     (a few hundred rows at most).
 *  4. value is an INTEGER when the counter is a whole number that a double
 *     holds exactly (|v| < 2^53), else a REAL; counters read as integers.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "stats_vtab.h"

enum { COL_NAME, COL_LABELS, COL_VALUE, COL_KIND, COL_HELP };

struct stats_source {
	qstat_source_fn fn;
	void *ctx;
};

struct stat_row {
	char *name, *labels, *kind, *help; /* owned; NULL when the source gave NULL */
	double value;
};

struct stats_cursor {
	sqlite3_vtab_cursor base;
	struct stat_row *rows;
	size_t n, cap, pos;
	int nomem;
};

struct stats_vtab {
	sqlite3_vtab base;
	const struct stats_source *src;
};

static int stats_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
			 sqlite3_vtab **out, char **err)
{
	struct stats_vtab *t;
	int rc;

	(void)argc;
	(void)argv;
	(void)err;
	rc = sqlite3_declare_vtab(db, "CREATE TABLE x(name TEXT, labels TEXT, value NUMERIC,"
				      " kind TEXT, help TEXT)");
	if (rc != SQLITE_OK)
		return rc;
	sqlite3_vtab_config(db, SQLITE_VTAB_INNOCUOUS);
	t = sqlite3_malloc(sizeof(*t));
	if (!t)
		return SQLITE_NOMEM;
	memset(t, 0, sizeof(*t));
	t->src = aux;
	*out = &t->base;
	return SQLITE_OK;
}

static int stats_disconnect(sqlite3_vtab *vt)
{
	sqlite3_free(vt);
	return SQLITE_OK;
}

static int stats_best_index(sqlite3_vtab *vt, sqlite3_index_info *info)
{
	(void)vt;
	info->estimatedCost = 100.0;
	info->estimatedRows = 100;
	return SQLITE_OK;
}

static int stats_open(sqlite3_vtab *vt, sqlite3_vtab_cursor **out)
{
	struct stats_cursor *c = sqlite3_malloc(sizeof(*c));

	(void)vt;
	if (!c)
		return SQLITE_NOMEM;
	memset(c, 0, sizeof(*c));
	*out = &c->base;
	return SQLITE_OK;
}

static void rows_clear(struct stats_cursor *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->rows[i].name);
		free(c->rows[i].labels);
		free(c->rows[i].kind);
		free(c->rows[i].help);
	}
	c->n = 0;
	c->pos = 0;
	c->nomem = 0;
}

static int stats_close(sqlite3_vtab_cursor *cur)
{
	struct stats_cursor *c = (struct stats_cursor *)cur;

	rows_clear(c);
	free(c->rows);
	sqlite3_free(c);
	return SQLITE_OK;
}

static char *dup_or_null(const char *s, int *nomem)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*nomem = 1;
	return d;
}

/* qstat_emit_fn: one counter into the cursor's snapshot. */
static void stats_emit(void *arg, const char *name, const char *labels, const char *kind,
		       const char *help, double value)
{
	struct stats_cursor *c = arg;
	struct stat_row *r;

	if (c->nomem)
		return;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		struct stat_row *rows = realloc(c->rows, cap * sizeof(*rows));

		if (!rows) {
			c->nomem = 1;
			return;
		}
		c->rows = rows;
		c->cap = cap;
	}
	r = &c->rows[c->n++];
	r->name = dup_or_null(name, &c->nomem);
	r->labels = dup_or_null(labels, &c->nomem);
	r->kind = dup_or_null(kind, &c->nomem);
	r->help = dup_or_null(help, &c->nomem);
	r->value = value;
}

static int stats_filter(sqlite3_vtab_cursor *cur, int idx, const char *idx_str, int argc,
			sqlite3_value **argv)
{
	struct stats_cursor *c = (struct stats_cursor *)cur;
	const struct stats_source *src = ((struct stats_vtab *)cur->pVtab)->src;

	(void)idx;
	(void)idx_str;
	(void)argc;
	(void)argv;
	rows_clear(c);
	if (src->fn)
		src->fn(src->ctx, stats_emit, c);
	if (c->nomem) {
		rows_clear(c);
		return SQLITE_NOMEM;
	}
	return SQLITE_OK;
}

static int stats_next(sqlite3_vtab_cursor *cur)
{
	((struct stats_cursor *)cur)->pos++;
	return SQLITE_OK;
}

static int stats_eof(sqlite3_vtab_cursor *cur)
{
	struct stats_cursor *c = (struct stats_cursor *)cur;

	return c->pos >= c->n;
}

static void result_text(sqlite3_context *ctx, const char *s)
{
	if (s)
		sqlite3_result_text(ctx, s, -1, SQLITE_TRANSIENT);
}

static int stats_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int col)
{
	struct stats_cursor *c = (struct stats_cursor *)cur;
	const struct stat_row *r = &c->rows[c->pos];

	switch (col) {
	case COL_NAME: result_text(ctx, r->name); break;
	case COL_LABELS: result_text(ctx, r->labels); break;
	case COL_KIND: result_text(ctx, r->kind); break;
	case COL_HELP: result_text(ctx, r->help); break;
	case COL_VALUE:
		if (isfinite(r->value) && r->value == trunc(r->value) && fabs(r->value) < 9007199254740992.0)
			sqlite3_result_int64(ctx, (sqlite3_int64)r->value);
		else
			sqlite3_result_double(ctx, r->value); /* NaN reads as NULL */
		break;
	}
	return SQLITE_OK;
}

static int stats_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid)
{
	*rowid = (sqlite3_int64)((struct stats_cursor *)cur)->pos + 1;
	return SQLITE_OK;
}

static const sqlite3_module stats_module = {
	.iVersion = 0,
	.xCreate = NULL, /* eponymous only */
	.xConnect = stats_connect,
	.xBestIndex = stats_best_index,
	.xDisconnect = stats_disconnect,
	.xDestroy = stats_disconnect,
	.xOpen = stats_open,
	.xClose = stats_close,
	.xFilter = stats_filter,
	.xNext = stats_next,
	.xEof = stats_eof,
	.xColumn = stats_column,
	.xRowid = stats_rowid,
};

int stats_vtab_register(sqlite3 *db, qstat_source_fn source, void *ctx)
{
	struct stats_source *src = sqlite3_malloc(sizeof(*src));

	if (!src)
		return SQLITE_NOMEM;
	src->fn = source;
	src->ctx = ctx;
	/* On failure create_module_v2 calls the destructor itself. */
	return sqlite3_create_module_v2(db, "stats", &stats_module, src, sqlite3_free);
}
