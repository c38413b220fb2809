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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_durations_and_counts),
		cmocka_unit_test(test_defaults_and_values),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_ring_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
