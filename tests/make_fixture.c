/*
 * make_fixture [--cookbook] DIR: write the known data dir of fixture.h into
 * DIR (created if missing), for the end-to-end tests of the query side;
 * --cookbook writes the cookbook's instead (docs/cookbook.md).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fixture.h"
#include "schema.h"

int main(int argc, char **argv)
{
	bool cookbook = argc == 3 && !strcmp(argv[1], "--cookbook");
	const char *dir = argv[argc - 1];

	if (argc != 2 && !cookbook) {
		fprintf(stderr, "usage: make_fixture [--cookbook] DIR\n");
		return 2;
	}
	if (mkdir(dir, 0755) && errno != EEXIST) {
		fprintf(stderr, "make_fixture: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	if (schema_init() || (cookbook ? fixture_write_cookbook(dir) : fixture_write(dir)))
		return 1;
	return 0;
}
