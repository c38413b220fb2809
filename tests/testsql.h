/*
 * One-value SQLite queries for cmocka tests: the first column of the one
 * row a statement returns, failing the test (with the statement) on an
 * error, no row or, for test_sql_int, a NULL. Include after <cmocka.h> and
 * <sqlite3.h>.
 */
#ifndef FLOWSTORE_TESTSQL_H
#define FLOWSTORE_TESTSQL_H

#include <stdint.h>

static inline sqlite3 *test_sql_open_ro(const char *path)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	return db;
}

/* *is_null says whether the value is NULL (then 0). */
static inline int64_t test_sql_value(sqlite3 *db, const char *sql, int *is_null)
{
	sqlite3_stmt *st = NULL;
	int64_t v;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	*is_null = sqlite3_column_type(st, 0) == SQLITE_NULL;
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static inline int64_t test_sql_int(sqlite3 *db, const char *sql)
{
	int is_null;
	int64_t v = test_sql_value(db, sql, &is_null);

	if (is_null)
		fail_msg("%s: NULL", sql);
	return v;
}

/* The same on a file of its own, opened read-only for the one query. */
static inline int64_t test_sql_int_at(const char *path, const char *sql)
{
	sqlite3 *db = test_sql_open_ro(path);
	int64_t v = test_sql_int(db, sql);

	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	return v;
}

#endif /* FLOWSTORE_TESTSQL_H */
