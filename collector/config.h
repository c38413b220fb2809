/*
 * flowstored's command line: parsing and validation, separate from main so
 * tests can drive it. Every bad flag or value is a one-line error; main
 * prints it with the usage and exits 2.
 */
#ifndef FLOWSTORE_CONFIG_H
#define FLOWSTORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* SOURCE_NONE: collect nothing; serve queries on the data dir as it is
 * (examining a copied store). */
enum source_kind { SOURCE_BPF, SOURCE_SYNTHETIC, SOURCE_REPLAY, SOURCE_NONE };

/* --tcp-states: numbered as enum fs_tcp_state_policy (bpf/events.h). */
enum config_tcp_states { CONFIG_TCP_STATES_ALL, CONFIG_TCP_STATES_OPEN, CONFIG_TCP_STATES_NONE };

/* --accept-owner: numbered as enum bpf_accept_owner (source.h). */
enum config_accept_owner { CONFIG_ACCEPT_OWNER_IO, CONFIG_ACCEPT_OWNER_SYSCALL };

/* --tc-attach: numbered as enum tc_mode (tc_attach.h). */
enum config_tc_attach { CONFIG_TC_AUTO, CONFIG_TC_TCX, CONFIG_TC_CLSACT };

struct config {
	const char *data_dir;
	enum source_kind source;
	uint64_t synthetic_rate; /* events/s; 0 = as fast as possible */
	const char *replay_path;
	const char *record_path;
	int64_t partition_ns;
	uint64_t partition_rows;
	size_t batch_rows;
	uint64_t batch_ms;
	size_t queue_batches;
	uint64_t count; /* synthetic: stop after this many events */
	uint64_t seed;
	int log_level;
	const char *socket_path; /* the query socket; NULL = DATA/flowstore.sock */
	const char *socket_group; /* group of the socket; NULL = the daemon's */
	int64_t query_timeout_ns; /* the most any query may run */
	unsigned query_workers;   /* queries running at once */
	uint64_t query_max_rows;  /* row cap of table and json results */
	int64_t query_queue_wait_ns; /* how long a query waits for a worker before 503 */
	bool no_query;            /* serve no queries (no socket) */
	bool query_flags;         /* a query flag was given (refused with no_query) */
	const char *interfaces;  /* bpf: comma-separated names; NULL = every one up but lo */
	uint32_t ring_bytes;     /* the kernel source's ring buffer (each program's) */
	uint32_t flow_map_size;  /* bpf: flows tracked at once */
	uint32_t max_conns;      /* bpf: TCP sockets tracked at once */
	int64_t idle_timeout_ns;   /* bpf: a flow idle this long is exported */
	int64_t active_timeout_ns; /* bpf: a long flow is exported this often */
	int tcp_states;            /* bpf: enum config_tcp_states */
	int tc_attach;             /* bpf: enum config_tc_attach */
	int accept_owner;          /* bpf: enum config_accept_owner */
	bool bpf_flags;            /* a bpf-only flag was given */
	/* retention (retention.h); by kind: raw, 1m, 1h */
	int64_t retain_ns[3];      /* age limits; 0 = keep forever */
	uint64_t max_disk;         /* bytes of our files in the data dir; 0 = no limit */
	uint64_t min_free;         /* bytes to leave free on its file system; 0 = none */
	int64_t retention_interval_ns; /* how often the policies are applied */
	bool dry_run;              /* `flowstored retention --dry-run` */
	bool help, version;
};

/* Fill cfg from argv (defaults first). 0, or -EINVAL with err set. */
int config_parse(int argc, char **argv, struct config *cfg, char *err, size_t errlen);

void config_usage(FILE *f);

/* `flowstored retention [OPTION]...`: argv[0] is "retention". Takes --data,
 * the retention flags, --dry-run, --log-level, -h. */
int config_parse_retention(int argc, char **argv, struct config *cfg, char *err, size_t errlen);
void config_usage_retention(FILE *f);

/* "500ms", "90s", "15m", "1h", "7d" (a bare number is seconds) → ns. */
int config_parse_duration(const char *s, int64_t *ns);

/* "1000", "10k", "2M", "1G" → value (k = 1000). */
int config_parse_count(const char *s, uint64_t *v);

/* "4096", "64K", "16M", "1G" → bytes (K = 1024). */
int config_parse_size(const char *s, uint64_t *v);

#endif /* FLOWSTORE_CONFIG_H */
