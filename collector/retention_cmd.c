/*
 * `flowstored retention [--dry-run]` (retention_cmd.h). The run takes the
 * data dir's retention lock, so it is safe while a daemon works on the same
 * dir: the two never run retention at once, and neither touches the
 * partition the daemon is writing (this command removes only sealed
 * partitions and rollup files). The daemon's own lock on the dir is not
 * needed and not taken.
 */
#include "retention_cmd.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "schema.h"

void retention_policy_from_config(const struct config *cfg, struct retention_policy *p)
{
	retention_policy_default(p);
	for (int k = 0; k < SCHEMA_NKINDS; k++)
		p->retain_ns[k] = cfg->retain_ns[k];
	p->max_disk = cfg->max_disk;
	p->min_free = cfg->min_free;
}

int retention_command(int argc, char **argv)
{
	struct retention_policy policy;
	struct retention_env env = { 0 };
	struct retention_report report;
	struct config cfg;
	struct stat st;
	char err[512];
	int rc;

	if (config_parse_retention(argc, argv, &cfg, err, sizeof(err))) {
		fprintf(stderr, "flowstored retention: %s\n", err);
		config_usage_retention(stderr);
		return 2;
	}
	if (cfg.help) {
		config_usage_retention(stdout);
		return 0;
	}
	log_threshold = (enum log_level)cfg.log_level;
	if (stat(cfg.data_dir, &st) || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "flowstored retention: %s is not a data dir: %s\n", cfg.data_dir,
			errno ? strerror(errno) : "not a directory");
		return 1;
	}
	if (schema_init()) {
		fprintf(stderr, "flowstored retention: cannot initialise SQLite\n");
		return 1;
	}
	retention_policy_from_config(&cfg, &policy);
	memset(&report, 0, sizeof(report));
	rc = retention_run(cfg.data_dir, &policy, &env, cfg.dry_run, &report);
	retention_report_print(stdout, &report, cfg.dry_run);
	if (rc)
		fprintf(stderr, "flowstored retention: %s: %s (%s)\n", cfg.data_dir, strerror(-rc),
			report.error[0] ? report.error : schema_last_error());
	retention_report_free(&report);
	return rc ? 1 : 0;
}
