/*
 * Unit tests of query/format.c: the exact bytes of every format for a small
 * fixed result set, the row cap, streaming (chunks, a sink that fails),
 * escaping and UTF-8 repair.
 *
 * Results come from real statements over VALUES on an in-memory connection,
 * so column types are SQLite's own; the sink collects what it is given and
 * can be told to fail.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "format.h"

/*
 * Three rows, five columns, every type and the awkward values:
 *   id  INTEGER
 *   s   'plain' | a,b "q" CR LF x \  | three code points of 2, 3 and 4 bytes
 *   r   1.5 | 0.1 | +Inf
 *   n   NULL | 'tab' TAB 'end' | 100.0
 *   e   '' | x'00ff10' | 'ctl' 0x01 0x7f
 */
#define DATASET                                                                              \
	"SELECT column1 AS id, column2 AS s, column3 AS r, column4 AS n, column5 AS e FROM (VALUES" \
	" (1, 'plain', 1.5, NULL, '')," \
	" (2, 'a,b \"q\"' || char(13, 10) || 'x\\', 0.1, 'tab' || char(9) || 'end', x'00ff10')," \
	" (-3, char(233, 8364, 128512), 1e300 * 1e300, 100.0, 'ctl' || char(1, 127)))"

#define ELAPSED_NS 1500000 /* 1.500 ms */

/* ---- helpers ----------------------------------------------------------------- */

struct sink {
	char *data;
	size_t len, cap;
	int calls;
	int fail_at;      /* 1-based call that fails; 0: never */
	size_t max_chunk; /* largest len given */
};

static int sink_collect(void *ctx, const void *buf, size_t len)
{
	struct sink *s = ctx;

	s->calls++;
	if (len > s->max_chunk)
		s->max_chunk = len;
	if (s->fail_at && s->calls >= s->fail_at)
		return -1;
	if (s->len + len + 1 > s->cap) {
		s->cap = (s->len + len + 1) * 2;
		s->data = realloc(s->data, s->cap);
		assert_non_null(s->data);
	}
	memcpy(s->data + s->len, buf, len);
	s->len += len;
	s->data[s->len] = '\0';
	return 0;
}

static int setup(void **state)
{
	sqlite3 *db;

	if (sqlite3_open(":memory:", &db) != SQLITE_OK)
		return -1;
	*state = db;
	return 0;
}

static int teardown(void **state)
{
	sqlite3_close(*state);
	return 0;
}

/* Run sql through a writer; the writer's last return code. */
static int render(sqlite3 *db, const char *sql, enum qformat f, uint64_t max_rows, struct sink *out,
		  struct qwriter **keep)
{
	struct qwriter *w = qwriter_new(f, max_rows, sink_collect, out);
	sqlite3_stmt *st;
	int rc, wrc;

	assert_non_null(w);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	wrc = qwriter_begin(w, st);
	while (wrc == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW)
		wrc = qwriter_row(w, st);
	if (wrc >= 0)
		wrc = qwriter_end(w, ELAPSED_NS);
	sqlite3_finalize(st);
	if (keep)
		*keep = w;
	else
		qwriter_free(w);
	return wrc;
}

static void expect_output(sqlite3 *db, const char *sql, enum qformat f, uint64_t max_rows,
			  const char *want)
{
	struct sink out = { 0 };

	assert_int_equal(render(db, sql, f, max_rows, &out, NULL), 0);
	if (strcmp(out.data ? out.data : "", want) != 0)
		fail_msg("%s as %s:\n--- want\n%s\n--- got\n%s", sql, qformat_name(f), want,
			 out.data ? out.data : "(nothing)");
	free(out.data);
}

/* ---- every format, exactly --------------------------------------------------- */

static void test_csv(void **state)
{
	expect_output(*state, DATASET, QFORMAT_CSV, 0,
		      "id,s,r,n,e\r\n"
		      "1,plain,1.5,,\"\"\r\n"
		      "2,\"a,b \"\"q\"\"\r\nx\\\",0.1,tab\tend,AP8Q\r\n"
		      "-3,\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80,Inf,100.0,ctl\x01\x7f\r\n");
	/* Names are quoted by the same rule. */
	expect_output(*state, "SELECT 1 AS \"a,b\", 2 AS \"\"", QFORMAT_CSV, 0,
		      "\"a,b\",\"\"\r\n1,2\r\n");
}

static void test_tsv(void **state)
{
	expect_output(*state, DATASET, QFORMAT_TSV, 0,
		      "id\ts\tr\tn\te\n"
		      "1\tplain\t1.5\t\\N\t\n"
		      "2\ta,b \"q\"\\r\\nx\\\\\t0.1\ttab\\tend\tAP8Q\n"
		      "-3\t\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\tInf\t100.0\tctl\x01\x7f\n");
	expect_output(*state, "SELECT 1 AS \"a\tb\"", QFORMAT_TSV, 0, "a\\tb\n1\n");
}

static void test_json(void **state)
{
	expect_output(*state, DATASET, QFORMAT_JSON, 0,
		      "{\"columns\":[\"id\",\"s\",\"r\",\"n\",\"e\"],\"rows\":["
		      "[1,\"plain\",1.5,null,\"\"],"
		      "[2,\"a,b \\\"q\\\"\\r\\nx\\\\\",0.1,\"tab\\tend\",\"AP8Q\"],"
		      "[-3,\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\",null,100.0,\"ctl\\u0001\x7f\"]"
		      "],\"row_count\":3,\"elapsed_ms\":1.500,\"truncated\":false}\n");
	expect_output(*state, "SELECT 1 AS a WHERE 0", QFORMAT_JSON, 0,
		      "{\"columns\":[\"a\"],\"rows\":[],\"row_count\":0,\"elapsed_ms\":1.500,"
		      "\"truncated\":false}\n");
}

static void test_ndjson(void **state)
{
	expect_output(*state, DATASET, QFORMAT_NDJSON, 0,
		      "{\"id\":1,\"s\":\"plain\",\"r\":1.5,\"n\":null,\"e\":\"\"}\n"
		      "{\"id\":2,\"s\":\"a,b \\\"q\\\"\\r\\nx\\\\\",\"r\":0.1,\"n\":\"tab\\tend\",\"e\":\"AP8Q\"}\n"
		      "{\"id\":-3,\"s\":\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\",\"r\":null,\"n\":100.0,"
		      "\"e\":\"ctl\\u0001\x7f\"}\n");
	expect_output(*state, "SELECT 1 AS a WHERE 0", QFORMAT_NDJSON, 0, "");
}

static void test_table(void **state)
{
	/* id and r right-aligned (numbers only), the rest left; widths in code
	 * points (the 9-byte s of row 3 is 3 wide); controls escaped. */
	expect_output(*state, DATASET, QFORMAT_TABLE, 0,
		      "id  s                r  n         e\n"
		      "--  -------------  ---  --------  -----------\n"
		      " 1  plain          1.5  NULL      \n"
		      " 2  a,b \"q\"\\r\\nx\\  0.1  tab\\tend  x'00ff10'\n"
		      "-3  \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80            Inf  100.0     ctl\\x01\\x7f\n"
		      "(3 rows)\n");
	expect_output(*state, "SELECT 1 AS a, 'x' AS b WHERE 0", QFORMAT_TABLE, 0,
		      "a  b\n"
		      "-  -\n"
		      "(0 rows)\n");
	expect_output(*state, "SELECT 'x' AS long_name, 7 AS n", QFORMAT_TABLE, 0,
		      "long_name  n\n"
		      "---------  -\n"
		      "x          7\n"
		      "(1 row)\n");
	/* C1 controls and invalid UTF-8 cannot reach the terminal as such. */
	expect_output(*state, "SELECT char(155) || CAST(x'ff' AS TEXT) AS t", QFORMAT_TABLE, 0,
		      "t\n"
		      "-------\n"
		      "\\u009b\xEF\xBF\xBD\n"
		      "(1 row)\n");
}

/* Integer time columns become ISO-8601, ns kept; nothing else does. */
static void test_table_time_columns(void **state)
{
	expect_output(*state,
		      "SELECT 1795774502123456789 AS ts, 0 AS ts_end, -1 AS start_ts, 5 AS TS_First,"
		      " 'x' AS ts_label, 7 AS tsx, 8 AS its",
		      QFORMAT_TABLE, 0,
		      "ts                              ts_end                          "
		      "start_ts                        TS_First                        "
		      "ts_label  tsx  its\n"
		      "------------------------------  ------------------------------  "
		      "------------------------------  ------------------------------  "
		      "--------  ---  ---\n"
		      "2026-11-27T10:15:02.123456789Z  1970-01-01T00:00:00.000000000Z  "
		      "1969-12-31T23:59:59.999999999Z  1970-01-01T00:00:00.000000005Z  "
		      "x           7    8\n"
		      "(1 row)\n");
	/* Other formats keep the integer. */
	expect_output(*state, "SELECT 1795774502123456789 AS ts", QFORMAT_CSV, 0,
		      "ts\r\n1795774502123456789\r\n");
}

/* ---- values ------------------------------------------------------------------ */

static void test_reals(void **state)
{
	expect_output(*state,
		      "SELECT 0.1, 1.0, -0.0, 1e20, 123456789.125, 0.1 + 0.2, 1.0 / 3, -2.5e-7, 4.9e-324",
		      QFORMAT_NDJSON, 0,
		      "{\"0.1\":0.1,\"1.0\":1.0,\"-0.0\":-0.0,\"1e20\":1e+20,\"123456789.125\":123456789.125,"
		      "\"0.1 + 0.2\":0.30000000000000004,\"1.0 / 3\":0.3333333333333333,"
		      "\"-2.5e-7\":-2.5e-07,\"4.9e-324\":4.94065645841247e-324}\n");
	/* Every REAL printed reads back as the same double. */
	{
		struct sink out = { 0 };
		char *p, *end;

		assert_int_equal(render(*state,
			"WITH RECURSIVE c(i, x) AS (SELECT 0, 0.7 UNION ALL "
			"SELECT i + 1, x * 1.37 + 1e-5 FROM c WHERE i < 500) SELECT x FROM c",
			QFORMAT_CSV, 0, &out, NULL), 0);
		p = strchr(out.data, '\n') + 1;
		for (int i = 0; i <= 500; i++) {
			double v = strtod(p, &end);
			sqlite3_stmt *st;

			assert_int_equal(sqlite3_prepare_v2(*state, "SELECT ?1 = (WITH RECURSIVE c(i, x) AS "
				"(SELECT 0, 0.7 UNION ALL SELECT i + 1, x * 1.37 + 1e-5 FROM c WHERE i < ?2) "
				"SELECT x FROM c WHERE i = ?2)", -1, &st, NULL), SQLITE_OK);
			sqlite3_bind_double(st, 1, v);
			sqlite3_bind_int(st, 2, i);
			assert_int_equal(sqlite3_step(st), SQLITE_ROW);
			assert_int_equal(sqlite3_column_int(st, 0), 1);
			sqlite3_finalize(st);
			assert_true(end[0] == '\r' && end[1] == '\n');
			p = end + 2;
		}
		free(out.data);
	}
}

static void test_json_escaping(void **state)
{
	struct sink out = { 0 };

	(void)state;
	assert_int_equal(qformat_json_string(sink_collect, &out, "a\x01\x1f\"\\\b\f\n\r\t/\0z", 13), 0);
	assert_string_equal(out.data, "\"a\\u0001\\u001f\\\"\\\\\\b\\f\\n\\r\\t/\\u0000z\"");
	out.len = 0;
	/* Invalid UTF-8: one U+FFFD per maximal ill-formed subpart. */
	static const char bad[] =
		"\xff"               /* never valid */
		"\xe2\x82" "a"       /* truncated 3-byte sequence: one */
		"\xed\xa0\x80"       /* a surrogate: three */
		"\xc0\xaf"           /* overlong: two */
		"\xf4\x90\x80\x80"   /* past U+10FFFF: four */
		"\xe2\x82\xac"       /* valid: the euro sign */
		"\xf0\x9f\x98";      /* truncated at the end: one */

	assert_int_equal(qformat_json_string(sink_collect, &out, bad, sizeof(bad) - 1), 0);
	assert_string_equal(out.data, "\""
		"\xEF\xBF\xBD"
		"\xEF\xBF\xBD" "a"
		"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
		"\xEF\xBF\xBD\xEF\xBF\xBD"
		"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
		"\xE2\x82\xAC"
		"\xEF\xBF\xBD" "\"");
	free(out.data);

	/* The same repair in a result. */
	expect_output(*state, "SELECT CAST(x'61ff62' AS TEXT) AS t", QFORMAT_JSON, 0,
		      "{\"columns\":[\"t\"],\"rows\":[[\"a\xEF\xBF\xBD" "b\"]],\"row_count\":1,"
		      "\"elapsed_ms\":1.500,\"truncated\":false}\n");
	expect_output(*state, "SELECT CAST(x'61ff62' AS TEXT) AS t", QFORMAT_CSV, 0,
		      "t\r\na\xEF\xBF\xBD" "b\r\n");
	/* Blobs are base64, padded. */
	expect_output(*state, "SELECT x'', x'ff', x'ffee', x'ffeedd', x'ffeeddcc'", QFORMAT_TSV, 0,
		      "x''\tx'ff'\tx'ffee'\tx'ffeedd'\tx'ffeeddcc'\n\t/w==\t/+4=\t/+7d\t/+7dzA==\n");
}

/* ---- the cap and streaming --------------------------------------------------- */

static void test_row_cap(void **state)
{
	struct qwriter *w;
	struct sink out = { 0 };

	expect_output(*state, DATASET, QFORMAT_JSON, 2,
		      "{\"columns\":[\"id\",\"s\",\"r\",\"n\",\"e\"],\"rows\":["
		      "[1,\"plain\",1.5,null,\"\"],"
		      "[2,\"a,b \\\"q\\\"\\r\\nx\\\\\",0.1,\"tab\\tend\",\"AP8Q\"]"
		      "],\"row_count\":2,\"elapsed_ms\":1.500,\"truncated\":true}\n");
	expect_output(*state, "SELECT value AS v FROM json_each('[1,2,3]')", QFORMAT_TABLE, 2,
		      "v\n-\n1\n2\n(2 rows, truncated at 2)\n");
	expect_output(*state, "SELECT value AS v FROM json_each('[1,2,3]')", QFORMAT_CSV, 2,
		      "v\r\n1\r\n2\r\n");
	expect_output(*state, "SELECT value AS v FROM json_each('[1,2,3]')", QFORMAT_NDJSON, 1,
		      "{\"v\":1}\n");
	/* Exactly at the cap is not truncated: nothing was left out. */
	expect_output(*state, "SELECT value AS v FROM json_each('[1,2]')", QFORMAT_TABLE, 2,
		      "v\n-\n1\n2\n(2 rows)\n");

	/* qwriter_row says 1 for the row past the cap, and keeps saying it. */
	{
		sqlite3_stmt *st;

		w = qwriter_new(QFORMAT_CSV, 1, sink_collect, &out);
		assert_int_equal(sqlite3_prepare_v2(*state, "SELECT value FROM json_each('[1,2,3]')", -1,
						    &st, NULL), SQLITE_OK);
		assert_int_equal(qwriter_begin(w, st), 0);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_int_equal(qwriter_row(w, st), 0);
		assert_int_equal(qwriter_truncated(w), 0);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_int_equal(qwriter_row(w, st), 1);
		assert_int_equal(qwriter_row(w, st), 1);
		assert_int_equal(qwriter_truncated(w), 1);
		assert_int_equal(qwriter_rows(w), 1);
		assert_int_equal(qwriter_end(w, 0), 0);
		sqlite3_finalize(st);
		qwriter_free(w);
		free(out.data);
	}
}

#define BIG "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20000) " \
	    "SELECT i, printf('%090d', i) AS pad FROM c"

static void test_streaming(void **state)
{
	static const enum qformat streamed[] = { QFORMAT_CSV, QFORMAT_TSV, QFORMAT_JSON, QFORMAT_NDJSON };

	for (size_t i = 0; i < sizeof(streamed) / sizeof(streamed[0]); i++) {
		struct sink out = { 0 };

		assert_int_equal(render(*state, BIG, streamed[i], 0, &out, NULL), 0);
		assert_true(out.len > 1000000);
		assert_true(out.max_chunk <= 16 * 1024);
		assert_true(out.calls >= (int)(out.len / (16 * 1024))); /* sent as it came */
		free(out.data);
	}
}

static void test_sink_fails(void **state)
{
	static const enum qformat all[] = { QFORMAT_CSV, QFORMAT_TSV, QFORMAT_JSON, QFORMAT_NDJSON,
					    QFORMAT_TABLE };

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		struct sink out = { .fail_at = 2 };
		struct qwriter *w;
		sqlite3_stmt *st;
		int rc;

		rc = render(*state, BIG, all[i], 0, &out, &w);
		assert_int_equal(rc, -EPIPE);
		assert_int_equal(out.calls, 2); /* the failed call was the last */
		/* Every later call: -EPIPE, and the sink is left alone. */
		assert_int_equal(sqlite3_prepare_v2(*state, "SELECT 1", -1, &st, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_int_equal(qwriter_row(w, st), -EPIPE);
		assert_int_equal(qwriter_end(w, 0), -EPIPE);
		assert_int_equal(out.calls, 2);
		sqlite3_finalize(st);
		qwriter_free(w);
		free(out.data);
	}
}

static void test_names(void **state)
{
	enum qformat f;

	(void)state;
	assert_int_equal(qformat_parse("csv", &f), 0);
	assert_int_equal(f, QFORMAT_CSV);
	assert_int_equal(qformat_parse("NDJSON", &f), 0);
	assert_int_equal(f, QFORMAT_NDJSON);
	assert_int_equal(qformat_parse("xml", &f), -EINVAL);
	assert_int_equal(qformat_parse(NULL, &f), -EINVAL);
	assert_string_equal(qformat_name(QFORMAT_TABLE), "table");
	assert_string_equal(qformat_content_type(QFORMAT_TABLE), "text/plain; charset=utf-8");
	assert_string_equal(qformat_content_type(QFORMAT_CSV), "text/csv; charset=utf-8; header=present");
	assert_string_equal(qformat_content_type(QFORMAT_TSV), "text/tab-separated-values; charset=utf-8");
	assert_string_equal(qformat_content_type(QFORMAT_JSON), "application/json");
	assert_string_equal(qformat_content_type(QFORMAT_NDJSON), "application/x-ndjson");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_csv, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tsv, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ndjson, setup, teardown),
		cmocka_unit_test_setup_teardown(test_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_table_time_columns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_escaping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_row_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_streaming, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sink_fails, setup, teardown),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
