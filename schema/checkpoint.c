/*
 * checkpoint.c: a second connection to an open partition that copies its
 * WAL back into the file, so that the writer's connection never does
 * (partition_defer_checkpoints, schema.h).
 *
 * Invariants:
 *  1. Passive unless asked: such a checkpoint never takes a lock the
 *     writer or a reader waits for, and never waits for one. It copies what
 *     it can (the pages no reader still needs, up to the last commit it
 *     sees) and syncs the WAL before and the file after, as
 *     synchronous=NORMAL requires: a crash at any point leaves a file
 *     SQLite recovers whole. A restart checkpoint (a WAL grown too long)
 *     does the same, then holds the writer off until the WAL starts over.
 *  2. The connection never creates the file and never checkpoints at close
 *     (SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE): the seal does (or the writer's
 *     plain partition_close, when it is the last), on its own thread.
 *  3. One thread uses a struct partition_ckpt at a time.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "schema.h"
#include "schemaInt.h"

struct partition_ckpt {
	sqlite3 *db;
	char *path;
};

int partition_ckpt_open(const char *path, struct partition_ckpt **out)
{
	struct partition_ckpt *c;
	int err;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (!c || !(c->path = strdup(path))) {
		free(c);
		return schema_error(-ENOMEM, path, "out of memory");
	}
	err = schema_db_open(path, SQLITE_OPEN_READWRITE, &c->db);
	if (!err && sqlite3_db_config(c->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL) != SQLITE_OK)
		err = schema_sql_fail(c->db, sqlite3_errcode(c->db), path, "no checkpoint on close",
				      SQL_WRITE);
	if (!err) {
		/* A new connection knows the file is in WAL mode only once it has
		 * read its header: before that a checkpoint is a no-op. */
		char mode[16] = "";
		int rc = schema_sql_query(c->db, "PRAGMA journal_mode", NULL, mode, sizeof(mode));

		if (rc != SQLITE_OK)
			err = schema_sql_fail(c->db, rc, path, "journal_mode", SQL_READ);
		else if (strcmp(mode, "wal"))
			err = schema_error(-EINVAL, path, "journal_mode is '%s', not 'wal'", mode);
	}
	if (err) {
		partition_ckpt_close(c);
		return err;
	}
	*out = c;
	return 0;
}

int partition_ckpt_run(struct partition_ckpt *c, bool restart, int *wal_frames, int *copied)
{
	int rc = sqlite3_wal_checkpoint_v2(c->db, NULL,
					   restart ? SQLITE_CHECKPOINT_RESTART : SQLITE_CHECKPOINT_PASSIVE,
					   wal_frames, copied);

	/* BUSY: another checkpoint (the sealer's, the writer's close) is running */
	if (rc == SQLITE_BUSY)
		return 0;
	return rc == SQLITE_OK ? 0 : schema_sql_fail(c->db, rc, c->path, "checkpoint", SQL_WRITE);
}

const char *partition_ckpt_path(const struct partition_ckpt *c)
{
	return c->path;
}

void partition_ckpt_close(struct partition_ckpt *c)
{
	if (!c)
		return;
	sqlite3_close_v2(c->db);
	free(c->path);
	free(c);
}
