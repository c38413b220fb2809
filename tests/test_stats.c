/*
 * The counters' two text forms: the "stats:" log line (parsed by the shell
 * tests and the benchmark) and the Prometheus exposition format (served as
 * /metrics by the query socket).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "stats.h"

static struct stats sample(void)
{
	struct stats s;

	memset(&s, 0, sizeof(s));
	stats_add(&s.events_in[SCHEMA_FLOWS], 11);
	stats_add(&s.events_in[SCHEMA_TCP_STATES], 33);
	stats_add(&s.malformed[MALFORMED_SIZE], 2);
	stats_add(&s.dropped_queue_full, 5);
	stats_add(&s.rows_written[SCHEMA_CONNECTIONS], 7);
	atomic_store(&s.kernel_lost[FS_LOSS_RINGBUF_FULL], 4);
	stats_max(&s.commit_ns_max, 900);
	stats_max(&s.commit_ns_max, 300); /* a max never goes down */
	return s;
}

static void test_line(void **state)
{
	struct stats s = sample();
	char line[4096];
	int n;

	(void)state;
	n = stats_format_line(&s, line, sizeof(line));
	assert_int_equal(n, (int)strlen(line));
	assert_true(strncmp(line, "stats: ", 7) == 0);
	assert_non_null(strstr(line, " events_in_flows=11 "));
	assert_non_null(strstr(line, " events_in_tcp_states=33 "));
	assert_non_null(strstr(line, " events_malformed_size=2 "));
	assert_non_null(strstr(line, " events_dropped=5 "));
	assert_non_null(strstr(line, " rows_written_connections=7 "));
	assert_non_null(strstr(line, " commit_ns_max=900 "));
	assert_non_null(strstr(line, " kernel_lost_ringbuf_full=4"));
	assert_non_null(strstr(line, " kernel_lost_map_full=0"));
	assert_null(strchr(line, '\n'));
}

static void test_prometheus(void **state)
{
	struct stats s = sample();
	char text[16384], *line, *save;
	int n, samples = 0;

	(void)state;
	n = stats_format_prometheus(&s, text, sizeof(text));
	assert_true(n > 0 && n < (int)sizeof(text));
	assert_non_null(strstr(text, "# TYPE flowstore_events_in counter\n"));
	assert_non_null(strstr(text, "flowstore_events_in{table=\"flows\"} 11\n"));
	assert_non_null(strstr(text, "flowstore_events_malformed{reason=\"size\"} 2\n"));
	assert_non_null(strstr(text, "flowstore_events_dropped 5\n"));
	assert_non_null(strstr(text, "flowstore_kernel_lost{reason=\"ringbuf_full\"} 4\n"));
	assert_non_null(strstr(text, "# TYPE flowstore_queue_depth gauge\n"));
	/* Every line is a comment or "name[{labels}] value". */
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long long v;
		char name[128];

		if (line[0] == '#') {
			assert_true(!strncmp(line, "# HELP flowstore_", 17) ||
				    !strncmp(line, "# TYPE flowstore_", 17));
			continue;
		}
		assert_int_equal(sscanf(line, "%127[a-z_]%*[^ ] %llu", name, &v) == 2 ||
					 sscanf(line, "%127[a-z_] %llu", name, &v) == 2,
				 1);
		assert_true(strncmp(name, "flowstore_", 10) == 0);
		samples++;
	}
	assert_true(samples >= 20);
}

static void test_prometheus_reports_needed_size(void **state)
{
	struct stats s = sample();
	char small[64], big[16384];
	int need = stats_format_prometheus(&s, small, sizeof(small));

	(void)state;
	assert_int_equal(need, stats_format_prometheus(&s, big, sizeof(big)));
	assert_int_equal(need, (int)strlen(big));
	assert_true(strlen(small) < sizeof(small)); /* truncated, terminated */
}

struct each {
	char text[16384]; /* the series as Prometheus lines, rebuilt from the emits */
	size_t used, n;
};

static void each_emit(void *arg, const char *name, const char *labels, const char *kind,
		      const char *help, double value)
{
	struct each *e = arg;

	assert_true(!strcmp(kind, "counter") || !strcmp(kind, "gauge"));
	assert_true(*help);
	e->used += (size_t)snprintf(e->text + e->used, sizeof(e->text) - e->used,
				    "flowstore_%s%s%s%s %.0f\n", name, *labels ? "{" : "", labels,
				    *labels ? "}" : "", value);
	e->n++;
}

/* stats_each walks the same table as the Prometheus text: every series it
 * emits is a line there, with the same value, and nothing is missing. */
static void test_each(void **state)
{
	struct stats s = sample();
	static struct each e;
	char prom[16384];
	size_t series = 0;

	(void)state;
	memset(&e, 0, sizeof(e));
	stats_each(&s, each_emit, &e);
	stats_format_prometheus(&s, prom, sizeof(prom));
	for (char *line = strtok(e.text, "\n"); line; line = strtok(NULL, "\n")) {
		char want[256];

		snprintf(want, sizeof(want), "\n%s\n", line);
		if (!strstr(prom, want))
			fail_msg("'%s' is not in the Prometheus text", line);
	}
	for (const char *p = prom; (p = strchr(p, '\n')); p++)
		series += p[1] && p[1] != '#';
	assert_int_equal(e.n, series);
	memset(&e, 0, sizeof(e));
	stats_each(&s, each_emit, &e);
	assert_non_null(strstr(e.text, "flowstore_events_in{table=\"tcp_states\"} 33\n"));
	assert_non_null(strstr(e.text, "flowstore_commit_ns_max 900\n"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line),
		cmocka_unit_test(test_prometheus),
		cmocka_unit_test(test_prometheus_reports_needed_size),
		cmocka_unit_test(test_each),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
