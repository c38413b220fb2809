/*
 * `flowstored retention`: apply the retention policies once, from the
 * command line (cron, or by hand before a big copy), and the policy the
 * daemon's flags describe.
 */
#ifndef FLOWSTORE_RETENTION_CMD_H
#define FLOWSTORE_RETENTION_CMD_H

#include "config.h"
#include "retention.h"

/* The policy of cfg's --retain-* / --max-disk / --min-free flags. */
void retention_policy_from_config(const struct config *cfg, struct retention_policy *p);

/* argv[0] is "retention". Prints the report on stdout; returns the exit
 * code (0 done, 1 failed, 2 bad flags). */
int retention_command(int argc, char **argv);

#endif /* FLOWSTORE_RETENTION_CMD_H */
