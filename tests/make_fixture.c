/*
 * make_fixture DIR: write the known data dir of fixture.h into DIR (created
 * if missing), for the end-to-end tests of the query side.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fixture.h"
#include "schema.h"

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: make_fixture DIR\n");
		return 2;
	}
	if (mkdir(argv[1], 0755) && errno != EEXIST) {
		fprintf(stderr, "make_fixture: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	if (schema_init() || fixture_write(argv[1]))
		return 1;
	return 0;
}
