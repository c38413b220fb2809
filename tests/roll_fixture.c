/*
 * roll_fixture DIR: roll every sealed raw partition of DIR up into its 1m
 * and 1h files (retention/rollup.h), as the daemon's retention does after
 * each seal, for tests/e2e_reports.sh. Partitions that are not sealed are
 * left alone (the daemon rolls those up once sealed). Rolling up twice is
 * harmless: a partition already marked in a file is skipped.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "rollup.h"
#include "schema.h"

int main(int argc, char **argv)
{
	static const int64_t no_horizon[SCHEMA_NKINDS] = { 0 };
	struct catalog cat;
	struct timespec now;
	unsigned rolled = 0;
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: roll_fixture DIR\n");
		return 2;
	}
	if (schema_init() || (rc = catalog_scan(argv[1], &cat))) {
		fprintf(stderr, "roll_fixture: %s: %s\n", argv[1], schema_last_error());
		return 1;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	for (size_t i = 0; i < cat.n; i++) {
		const struct catalog_entry *e = &cat.entries[i];
		struct rollup_result res;

		if (e->kind != SCHEMA_KIND_RAW || e->status != CATALOG_SEALED || !e->has_meta)
			continue;
		rc = rollup_partition(argv[1], e->name, &e->meta, no_horizon,
				      (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec, 5000, &res);
		if (rc) {
			fprintf(stderr, "roll_fixture: %s: %s\n", e->name, schema_last_error());
			catalog_free(&cat);
			return 1;
		}
		rolled++;
	}
	catalog_free(&cat);
	printf("roll_fixture: %u sealed partitions rolled up\n", rolled);
	return 0;
}
