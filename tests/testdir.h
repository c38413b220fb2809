/*
 * Temporary directories for tests: needs nothing of the project, so tests
 * of any part can use it (testlib.h includes it for the collector's).
 */
#ifndef FLOWSTORE_TESTDIR_H
#define FLOWSTORE_TESTDIR_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* A fresh directory under $FLOWSTORE_TEST_TMP (or /tmp); caller frees the
 * string and removes the tree with test_rmtree(). */
static inline char *test_mkdtemp(const char *name)
{
	const char *base = getenv("FLOWSTORE_TEST_TMP");
	char *path;

	if (!base)
		base = "/tmp";
	mkdir(base, 0755);
	if (asprintf(&path, "%s/%s.XXXXXX", base, name) < 0 || !mkdtemp(path))
		abort();
	return path;
}

static inline void test_rmtree(const char *path)
{
	char *cmd;

	if (asprintf(&cmd, "rm -rf '%s'", path) < 0)
		abort();
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", path);
	free(cmd);
}

#endif /* FLOWSTORE_TESTDIR_H */
