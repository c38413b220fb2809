/*
 * flowstored's flags: values, units, defaults, and every refusal with its
 * message (the binary-level behaviour — exit 2 and the usage — is in
 * e2e_flags.sh).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"

#define S 1000000000LL

static int parse(struct config *cfg, char *err, const char *const *args)
{
	char *argv[32];
	int argc = 0;

	argv[argc++] = (char *)"flowstored";
	while (*args)
		argv[argc++] = (char *)*args++;
	argv[argc] = NULL;
	return config_parse(argc, argv, cfg, err, 256);
}

static void test_durations_and_counts(void **state)
{
	int64_t ns;
	uint64_t v;

	(void)state;
	assert_int_equal(config_parse_duration("90", &ns), 0);
	assert_int_equal(ns, 90 * S);
	assert_int_equal(config_parse_duration("500ms", &ns), 0);
	assert_int_equal(ns, 500000000LL);
	assert_int_equal(config_parse_duration("15m", &ns), 0);
	assert_int_equal(ns, 900 * S);
	assert_int_equal(config_parse_duration("1h", &ns), 0);
	assert_int_equal(ns, 3600 * S);
	assert_int_equal(config_parse_duration("7d", &ns), 0);
	assert_int_equal(ns, 7 * 86400 * S);
	assert_int_equal(config_parse_duration("1x", &ns), -EINVAL);
	assert_int_equal(config_parse_duration("-1h", &ns), -EINVAL);
	assert_int_equal(config_parse_duration("", &ns), -EINVAL);
	assert_int_equal(config_parse_duration("99999999999999999999d", &ns), -EINVAL);
	assert_int_equal(config_parse_count("10k", &v), 0);
	assert_int_equal(v, 10000);
	assert_int_equal(config_parse_count("2M", &v), 0);
	assert_int_equal(v, 2000000);
	assert_int_equal(config_parse_count("1G", &v), 0);
	assert_int_equal(v, 1000000000);
	assert_int_equal(config_parse_count("12", &v), 0);
	assert_int_equal(v, 12);
	assert_int_equal(config_parse_count("1.5k", &v), -EINVAL);
	assert_int_equal(config_parse_count("kk", &v), -EINVAL);
	assert_int_equal(config_parse_count("20000000000G", &v), -EINVAL);
	assert_int_equal(config_parse_size("4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(config_parse_size("64K", &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(config_parse_size("16M", &v), 0);
	assert_int_equal(v, 16u << 20);
	assert_int_equal(config_parse_size("1G", &v), 0);
	assert_int_equal(v, 1u << 30);
	assert_int_equal(config_parse_size("1T", &v), -EINVAL);
	assert_int_equal(config_parse_size("M", &v), -EINVAL);
}

static void test_ring_size(void **state)
{
	const char *ok[] = { "--ring-size", "4M", NULL };
	const char *odd[] = { "--ring-size", "3M", NULL };
	const char *tiny[] = { "--ring-size", "1K", NULL };
	struct config cfg;
	char err[256];

	(void)state;
	assert_int_equal(parse(&cfg, err, ok), 0);
	assert_int_equal(cfg.ring_bytes, 4u << 20);
	assert_int_equal(parse(&cfg, err, odd), -EINVAL);
	assert_non_null(strstr(err, "--ring-size: '3M'"));
	assert_int_equal(parse(&cfg, err, tiny), -EINVAL);
	assert_non_null(strstr(err, "--ring-size: '1K'"));
}

static void test_defaults_and_values(void **state)
{
	struct config cfg;
	char err[256];
	const char *none[] = { NULL };
	const char *many[] = { "--data", "/d", "--source", "synthetic:50k", "--partition", "15m",
			       "--partition-rows", "1M", "--batch-rows", "5000", "--batch-ms", "100",
			       "--queue-batches", "8", "--count", "10", "--seed", "3",
			       "--log-level", "debug", "--record", "/r", NULL };
	const char *replay[] = { "--source", "replay:/x.rec", NULL };

	(void)state;
	assert_int_equal(parse(&cfg, err, none), 0);
	assert_string_equal(cfg.data_dir, "/var/lib/flowstore");
	assert_int_equal(cfg.source, SOURCE_BPF);
	assert_int_equal(cfg.partition_ns, 3600 * S);
	assert_int_equal(cfg.partition_rows, 2000000);
	assert_int_equal(cfg.batch_rows, 10000);
	assert_int_equal(cfg.batch_ms, 250);
	assert_int_equal(cfg.queue_batches, 4);

	assert_int_equal(parse(&cfg, err, many), 0);
	assert_string_equal(cfg.data_dir, "/d");
	assert_int_equal(cfg.source, SOURCE_SYNTHETIC);
	assert_int_equal(cfg.synthetic_rate, 50000);
	assert_int_equal(cfg.partition_ns, 900 * S);
	assert_int_equal(cfg.partition_rows, 1000000);
	assert_int_equal(cfg.batch_rows, 5000);
	assert_int_equal(cfg.batch_ms, 100);
	assert_int_equal(cfg.queue_batches, 8);
	assert_int_equal(cfg.count, 10);
	assert_int_equal(cfg.seed, 3);
	assert_int_equal(cfg.log_level, 3);
	assert_string_equal(cfg.record_path, "/r");

	assert_int_equal(parse(&cfg, err, replay), 0);
	assert_int_equal(cfg.source, SOURCE_REPLAY);
	assert_string_equal(cfg.replay_path, "/x.rec");
}

static void test_refusals(void **state)
{
	static const struct {
		const char *args[6];
		const char *message;
	} cases[] = {
		{ { "--nope" }, "unknown option '--nope'" },
		{ { "--data" }, "option '--data' needs a value" },
		{ { "--partition", "0s" }, "--partition: '0s'" },
		{ { "--partition", "40d" }, "--partition: '40d'" },
		{ { "--partition-rows", "0" }, "--partition-rows: '0' is not a number from 1" },
		{ { "--batch-rows", "2M" }, "--batch-rows: '2M'" },
		{ { "--batch-ms", "x" }, "--batch-ms: 'x'" },
		{ { "--source", "synthetic:0" }, "synthetic:RATE: '0'" },
		{ { "--source", "replay:" }, "--source: 'replay:'" },
		{ { "--source", "pcap" }, "--source: 'pcap'" },
		{ { "--log-level", "trace" }, "--log-level: 'trace'" },
		{ { "--count", "5" }, "--count works only with --source synthetic" },
		{ { "--source", "synthetic", "--interfaces", "eth0" }, "--interfaces works only with --source bpf" },
		{ { "--source", "replay:a", "--record", "a" }, "--record: 'a' is the file being replayed" },
		{ { "--data", "" }, "--data: the directory name is empty" },
		{ { "stray" }, "unexpected argument 'stray'" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config cfg;
		char err[256] = "";

		assert_int_equal(parse(&cfg, err, cases[i].args), -EINVAL);
		if (!strstr(err, cases[i].message))
			fail_msg("case %zu: got '%s', want '%s'", i, err, cases[i].message);
	}
}

static void test_query_flags(void **state)
{
	const char *none[] = { NULL };
	const char *all[] = { "--socket", "/run/f.sock", "--socket-group", "adm",
			      "--query-timeout", "2m", "--query-workers", "8",
			      "--query-max-rows", "5k", "--query-queue-wait", "250ms", NULL };
	const char *serve[] = { "--source", "none", "--data", "/copy", NULL };
	const char *off[] = { "--no-query", "--source", "synthetic", NULL };
	struct config cfg;
	char err[256];

	(void)state;
	assert_int_equal(parse(&cfg, err, none), 0);
	assert_null(cfg.socket_path);
	assert_null(cfg.socket_group);
	assert_int_equal(cfg.query_timeout_ns, 30 * S);
	assert_int_equal(cfg.query_workers, 4);
	assert_int_equal(cfg.query_max_rows, 100000);
	assert_int_equal(cfg.query_queue_wait_ns, 2 * S);
	assert_false(cfg.no_query);

	assert_int_equal(parse(&cfg, err, all), 0);
	assert_string_equal(cfg.socket_path, "/run/f.sock");
	assert_string_equal(cfg.socket_group, "adm");
	assert_int_equal(cfg.query_timeout_ns, 120 * S);
	assert_int_equal(cfg.query_workers, 8);
	assert_int_equal(cfg.query_max_rows, 5000);
	assert_int_equal(cfg.query_queue_wait_ns, 250000000LL);

	assert_int_equal(parse(&cfg, err, serve), 0);
	assert_int_equal(cfg.source, SOURCE_NONE);
	assert_string_equal(cfg.data_dir, "/copy");

	assert_int_equal(parse(&cfg, err, off), 0);
	assert_true(cfg.no_query);
}

static void test_query_refusals(void **state)
{
	static const struct {
		const char *args[6];
		const char *message;
	} cases[] = {
		{ { "--query-timeout", "0" }, "--query-timeout: '0' is not a duration from 1s to 1d" },
		{ { "--query-timeout", "2d" }, "--query-timeout: '2d'" },
		{ { "--query-timeout", "soon" }, "--query-timeout: 'soon'" },
		{ { "--query-workers", "0" }, "--query-workers: '0' is not a number from 1 to 256" },
		{ { "--query-workers", "1000" }, "--query-workers: '1000'" },
		{ { "--query-max-rows", "0" }, "--query-max-rows: '0' is not a number from 1" },
		{ { "--query-max-rows", "many" }, "--query-max-rows: 'many'" },
		{ { "--query-queue-wait", "0" }, "--query-queue-wait: '0' is not a duration from 1ms" },
		{ { "--query-queue-wait", "2m" }, "--query-queue-wait: '2m'" },
		{ { "--socket", "" }, "--socket: the path is empty" },
		{ { "--socket-group", "" }, "--socket-group: the group name is empty" },
		{ { "--socket-group" }, "option '--socket-group' needs a value" },
		{ { "--no-query", "--socket", "/s" }, "--no-query: the --socket and --query-* flags" },
		{ { "--no-query", "--query-workers", "2" }, "--no-query: the --socket and --query-*" },
		{ { "--source", "none", "--no-query" }, "--source none only serves queries" },
		{ { "--source", "none", "--record", "/r" }, "--record needs a source of events" },
		{ { "--source", "none", "--count", "5" }, "--count works only with --source synthetic" },
		{ { "--source", "nothing" }, "--source: 'nothing' is not bpf, synthetic[:RATE], "
					     "replay:FILE or none" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config cfg;
		char err[256] = "";

		assert_int_equal(parse(&cfg, err, cases[i].args), -EINVAL);
		if (!strstr(err, cases[i].message))
			fail_msg("case %zu: got '%s', want '%s'", i, err, cases[i].message);
	}
}

/* --tcp-states and --tc-attach: names to numbers, defaults, refusals. */
static void test_bpf_choices(void **state)
{
	struct config cfg;
	char err[256];

	(void)state;
	assert_int_equal(parse(&cfg, err, (const char *const[]){ NULL }), 0);
	assert_int_equal(cfg.tcp_states, CONFIG_TCP_STATES_OPEN);
	assert_int_equal(cfg.tc_attach, CONFIG_TC_AUTO);
	assert_int_equal(cfg.flow_map_size, 131072);
	assert_int_equal(cfg.max_conns, 65536);
	assert_int_equal(parse(&cfg, err, (const char *const[]){ "--max-conns", "300000", NULL }), 0);
	assert_int_equal(cfg.max_conns, 300000);
	assert_int_equal(parse(&cfg, err, (const char *const[]){ "--max-conns", "1000", NULL }), -EINVAL);
	assert_non_null(strstr(err, "--max-conns"));
	assert_int_equal(parse(&cfg, err, (const char *const[]){ "--tcp-states", "all", "--tc-attach",
								 "clsact", NULL }),
			 0);
	assert_int_equal(cfg.tcp_states, CONFIG_TCP_STATES_ALL);
	assert_int_equal(cfg.tc_attach, CONFIG_TC_CLSACT);
	assert_int_equal(parse(&cfg, err, (const char *const[]){ "--tcp-states", "none", NULL }), 0);
	assert_int_equal(cfg.tcp_states, CONFIG_TCP_STATES_NONE);
	assert_int_equal(parse(&cfg, err, (const char *const[]){ "--tc-attach", "tcx", NULL }), 0);
	assert_int_equal(cfg.tc_attach, CONFIG_TC_TCX);
	assert_int_equal(parse(&cfg, err, (const char *const[]){ "--tcp-states", "some", NULL }),
			 -EINVAL);
	assert_string_equal(err, "--tcp-states: 'some' is not one of all, open, none");
	assert_int_equal(parse(&cfg, err, (const char *const[]){ "--tc-attach", "xdp", NULL }),
			 -EINVAL);
	assert_string_equal(err, "--tc-attach: 'xdp' is not one of auto, tcx, clsact");
	assert_int_equal(parse(&cfg, err, (const char *const[]){ "--source", "synthetic",
								 "--tcp-states", "all", NULL }),
			 -EINVAL);
	assert_string_equal(err, "--tcp-states, --tc-attach and --accept-owner work only with "
				 "--source bpf");
	assert_int_equal(cfg.accept_owner, CONFIG_ACCEPT_OWNER_IO); /* the default */
	assert_int_equal(parse(&cfg, err, (const char *const[]){ "--accept-owner", "syscall", NULL }),
			 0);
	assert_int_equal(cfg.accept_owner, CONFIG_ACCEPT_OWNER_SYSCALL);
	assert_int_equal(parse(&cfg, err, (const char *const[]){ "--accept-owner", "fexit", NULL }),
			 -EINVAL);
	assert_string_equal(err, "--accept-owner: 'fexit' is not one of io, syscall");
}

static int parse_retention(struct config *cfg, char *err, const char *const *args)
{
	char *argv[32];
	int argc = 0;

	argv[argc++] = (char *)"retention";
	while (*args)
		argv[argc++] = (char *)*args++;
	argv[argc] = NULL;
	return config_parse_retention(argc, argv, cfg, err, 256);
}

static void test_retention_flags(void **state)
{
	struct config cfg;
	char err[256];

	(void)state;
	assert_int_equal(parse(&cfg, err, (const char *const[]){ NULL }), 0);
	assert_int_equal(cfg.retain_ns[0], 7 * 86400 * S);
	assert_int_equal(cfg.retain_ns[1], 90 * 86400 * S);
	assert_int_equal(cfg.retain_ns[2], 400 * 86400 * S);
	assert_int_equal(cfg.max_disk, 0);
	assert_int_equal(cfg.min_free, 0);
	assert_int_equal(cfg.retention_interval_ns, 60 * S);
	assert_int_equal(parse(&cfg, err, (const char *const[]){ "--retain-raw", "2d", "--retain-1m",
								 "0", "--retain-1h", "3650d",
								 "--max-disk", "200M", "--min-free",
								 "1G", "--retention-interval", "5s",
								 NULL }),
			 0);
	assert_int_equal(cfg.retain_ns[0], 2 * 86400 * S);
	assert_int_equal(cfg.retain_ns[1], 0);
	assert_int_equal(cfg.retain_ns[2], 3650 * 86400 * S);
	assert_int_equal(cfg.max_disk, 200ull << 20);
	assert_int_equal(cfg.min_free, 1ull << 30);
	assert_int_equal(cfg.retention_interval_ns, 5 * S);

	assert_int_equal(parse(&cfg, err, (const char *const[]){ "--retain-raw", "30s", NULL }),
			 -EINVAL);
	assert_string_equal(err, "--retain-raw: '30s' is not 0 (forever) or a duration from 1m to "
				 "36500d (e.g. 7d, 90d)");
	assert_int_equal(parse(&cfg, err, (const char *const[]){ "--max-disk", "100K", NULL }),
			 -EINVAL);
	assert_string_equal(err, "--max-disk: '100K' is not 0 (no limit) or a size of 1M or more "
				 "(e.g. 200M, 50G)");
	assert_int_equal(parse(&cfg, err, (const char *const[]){ "--min-free", "lots", NULL }),
			 -EINVAL);
	assert_int_equal(parse(&cfg, err, (const char *const[]){ "--retention-interval", "0", NULL }),
			 -EINVAL);
	assert_string_equal(err, "--retention-interval: '0' is not a duration from 1s to 1d "
				 "(e.g. 30s, 5m)");
	/* --dry-run is the command's, not the daemon's */
	assert_int_equal(parse(&cfg, err, (const char *const[]){ "--dry-run", NULL }), -EINVAL);
	assert_string_equal(err, "unknown option '--dry-run'");

	/* flowstored retention */
	assert_int_equal(parse_retention(&cfg, err, (const char *const[]){ "--data", "/d",
									   "--dry-run", "--max-disk",
									   "2G", NULL }),
			 0);
	assert_string_equal(cfg.data_dir, "/d");
	assert_true(cfg.dry_run);
	assert_int_equal(cfg.max_disk, 2ull << 30);
	assert_int_equal(cfg.retain_ns[0], 7 * 86400 * S);
	assert_int_equal(parse_retention(&cfg, err, (const char *const[]){ "--source", "bpf", NULL }),
			 -EINVAL);
	assert_string_equal(err, "unknown option '--source'");
	assert_int_equal(parse_retention(&cfg, err, (const char *const[]){ "--data", "", NULL }),
			 -EINVAL);
	assert_string_equal(err, "--data: the directory name is empty");
	assert_int_equal(parse_retention(&cfg, err, (const char *const[]){ "extra", NULL }),
			 -EINVAL);
	assert_string_equal(err, "unexpected argument 'extra'");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_durations_and_counts),
		cmocka_unit_test(test_defaults_and_values),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_ring_size),
		cmocka_unit_test(test_query_flags),
		cmocka_unit_test(test_query_refusals),
		cmocka_unit_test(test_bpf_choices),
		cmocka_unit_test(test_retention_flags),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
