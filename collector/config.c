/*
 * Command-line parsing for flowstored (see config.h). getopt_long, then a
 * validation pass over the whole config, so a conflict between two flags
 * gets the same one-line error as a bad value.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "source.h" /* the kernel source's defaults */

#define NS_PER_S 1000000000LL

enum {
	OPT_DATA = 1000, OPT_SOURCE, OPT_RECORD, OPT_PARTITION, OPT_PARTITION_ROWS,
	OPT_BATCH_ROWS, OPT_BATCH_MS, OPT_QUEUE_BATCHES, OPT_COUNT, OPT_SEED,
	OPT_LOG_LEVEL, OPT_SOCKET, OPT_INTERFACES, OPT_RING_SIZE, OPT_FLOW_MAP_SIZE,
	OPT_MAX_CONNS,
	OPT_IDLE_TIMEOUT, OPT_ACTIVE_TIMEOUT, OPT_SOCKET_GROUP, OPT_QUERY_TIMEOUT,
	OPT_QUERY_WORKERS, OPT_QUERY_MAX_ROWS, OPT_QUERY_QUEUE_WAIT, OPT_NO_QUERY,
	OPT_TCP_STATES, OPT_TC_ATTACH, OPT_ACCEPT_OWNER, OPT_RETAIN_RAW, OPT_RETAIN_1M,
	OPT_RETAIN_1H, OPT_MAX_DISK, OPT_MIN_FREE, OPT_RETENTION_INTERVAL, OPT_DRY_RUN,
};

#define RETENTION_OPTIONS                                                      \
	{ "retain-raw", required_argument, 0, OPT_RETAIN_RAW },                \
	{ "retain-1m", required_argument, 0, OPT_RETAIN_1M },                  \
	{ "retain-1h", required_argument, 0, OPT_RETAIN_1H },                  \
	{ "max-disk", required_argument, 0, OPT_MAX_DISK },                    \
	{ "min-free", required_argument, 0, OPT_MIN_FREE }

static const struct option long_options[] = {
	{ "data", required_argument, 0, OPT_DATA },
	{ "source", required_argument, 0, OPT_SOURCE },
	{ "record", required_argument, 0, OPT_RECORD },
	{ "partition", required_argument, 0, OPT_PARTITION },
	{ "partition-rows", required_argument, 0, OPT_PARTITION_ROWS },
	{ "batch-rows", required_argument, 0, OPT_BATCH_ROWS },
	{ "batch-ms", required_argument, 0, OPT_BATCH_MS },
	{ "queue-batches", required_argument, 0, OPT_QUEUE_BATCHES },
	{ "count", required_argument, 0, OPT_COUNT },
	{ "seed", required_argument, 0, OPT_SEED },
	{ "log-level", required_argument, 0, OPT_LOG_LEVEL },
	{ "socket", required_argument, 0, OPT_SOCKET },
	{ "interfaces", required_argument, 0, OPT_INTERFACES },
	{ "ring-size", required_argument, 0, OPT_RING_SIZE },
	{ "flow-map-size", required_argument, 0, OPT_FLOW_MAP_SIZE },
	{ "max-conns", required_argument, 0, OPT_MAX_CONNS },
	{ "idle-timeout", required_argument, 0, OPT_IDLE_TIMEOUT },
	{ "active-timeout", required_argument, 0, OPT_ACTIVE_TIMEOUT },
	{ "socket-group", required_argument, 0, OPT_SOCKET_GROUP },
	{ "query-timeout", required_argument, 0, OPT_QUERY_TIMEOUT },
	{ "query-workers", required_argument, 0, OPT_QUERY_WORKERS },
	{ "query-max-rows", required_argument, 0, OPT_QUERY_MAX_ROWS },
	{ "query-queue-wait", required_argument, 0, OPT_QUERY_QUEUE_WAIT },
	{ "no-query", no_argument, 0, OPT_NO_QUERY },
	{ "tcp-states", required_argument, 0, OPT_TCP_STATES },
	{ "tc-attach", required_argument, 0, OPT_TC_ATTACH },
	{ "accept-owner", required_argument, 0, OPT_ACCEPT_OWNER },
	RETENTION_OPTIONS,
	{ "retention-interval", required_argument, 0, OPT_RETENTION_INTERVAL },
	{ "help", no_argument, 0, 'h' },
	{ "version", no_argument, 0, 'V' },
	{ 0, 0, 0, 0 },
};

static const struct option retention_options[] = {
	{ "data", required_argument, 0, OPT_DATA },
	RETENTION_OPTIONS,
	{ "dry-run", no_argument, 0, OPT_DRY_RUN },
	{ "log-level", required_argument, 0, OPT_LOG_LEVEL },
	{ "help", no_argument, 0, 'h' },
	{ 0, 0, 0, 0 },
};

#define RETENTION_USAGE                                                                   \
	"  --retain-raw DURATION   keep raw rows this long (default 7d; 0 = forever)\n"   \
	"  --retain-1m DURATION    keep per-minute rollups (flows_1m) this long\n"        \
	"                          (default 90d; 0 = forever)\n"                          \
	"  --retain-1h DURATION    keep per-hour rollups (flows_1h) this long\n"          \
	"                          (default 400d; 0 = forever)\n"                         \
	"  --max-disk SIZE         most the data dir's files may take (e.g. 200M, 50G;\n" \
	"                          K/M/G = 1024); oldest raw partitions go first, down\n"  \
	"                          to 90%; default no limit\n"                            \
	"  --min-free SIZE         free space to leave on the data dir's file system;\n"  \
	"                          default none\n"

void config_usage(FILE *f)
{
	fputs("usage: flowstored [OPTION]...\n"
	      "Record network flows and TCP connections into time-partitioned SQLite files.\n"
	      "\n"
	      "  --data DIR              where partitions live (default /var/lib/flowstore)\n"
	      "  --source SRC            bpf (default; the kernel programs), synthetic[:RATE]\n"
	      "                          (generated events, RATE per second, default as fast\n"
	      "                          as they can be written), replay:FILE, or none\n"
	      "                          (collect nothing: serve queries on the data dir as\n"
	      "                          it is, e.g. a copied store; nothing is sealed)\n"
	      "  --record FILE           also write every raw event to FILE (for replay:)\n"
	      "  --partition DURATION    period of one partition (default 1h; e.g. 15m, 1d)\n"
	      "  --partition-rows N      roll over at N rows too (default 2M)\n"
	      "  --batch-rows N          rows per write transaction (default 10k)\n"
	      "  --batch-ms N            write a partial batch after N ms (default 250)\n"
	      "  --queue-batches N       batches that may wait for the writer (default 4);\n"
	      "                          past that, events are dropped and counted\n"
	      "  --count N               synthetic: stop after N events\n"
	      "  --seed N                synthetic: random seed (default 1)\n"
	      "  --log-level LEVEL       error, warn, info (default) or debug\n"
	      "  --socket PATH           query socket (default DIR/flowstore.sock), mode 0660\n"
	      "  --socket-group NAME     group of the query socket (default the daemon's)\n"
	      "  --query-timeout DURATION the most any query may run (default 30s)\n"
	      "  --query-workers N       queries running at once (default 4); more wait\n"
	      "  --query-max-rows N      row cap of table and json results (default 100k)\n"
	      "  --query-queue-wait DURATION how long a query waits for a worker before\n"
	      "                          503 (too busy; default 2s)\n"
	      "  --no-query              serve no queries: no socket\n"
	      "  --interfaces LIST       bpf: interfaces to watch (comma-separated; lo may be\n"
	      "                          named); default every interface that is up but lo,\n"
	      "                          and every one that comes up later\n"
	      "  --ring-size SIZE        bpf: kernel ring buffer, bytes (default 2M; a power\n"
	      "                          of two, K/M/G = 1024), one per program; what\n"
	      "                          overflows it is counted\n"
	      "  --flow-map-size N       bpf: flows tracked at once (default 128k, 240 bytes\n"
	      "                          each); a flow that finds no room is a one-packet\n"
	      "                          record, counted\n"
	      "  --max-conns N           bpf: TCP sockets tracked at once (default 64k,\n"
	      "                          128 bytes each); a socket that finds no room\n"
	      "                          still gets its records, with less in them, counted\n"
	      "  --idle-timeout DURATION bpf: export a flow idle this long (default 15s;\n"
	      "                          shorter, down to 1s, while the flow map fills)\n"
	      "  --active-timeout DURATION bpf: export a long flow this often (default 60s)\n"
	      "  --tcp-states WHICH      bpf: TCP transitions kept as tcp_states rows: open\n"
	      "                          (default: to LISTEN or ESTABLISHED, and a listener's\n"
	      "                          close), all, or none; connection rows always have\n"
	      "                          the whole path of states\n"
	      "  --tc-attach HOW         bpf: auto (default: TCX links, else clsact), tcx or\n"
	      "                          clsact\n"
	      "  --accept-owner HOW      bpf: the owner of an accepted connection is the first\n"
	      "                          task to send, receive or close on it (io, default),\n"
	      "                          or the task whose accept() returned it (syscall: a\n"
	      "                          hook on every system call's exit of the host)\n"
	      RETENTION_USAGE
	      "  --retention-interval DURATION apply the retention policies this often\n"
	      "                          (default 1m; also at start, after each seal and\n"
	      "                          when a write finds the disk full)\n"
	      "  -h, --help              this text\n"
	      "  -V, --version           the version\n"
	      "\n"
	      "       flowstored retention --data DIR [--dry-run] [RETENTION OPTION]...\n"
	      "Apply the retention policies once (see flowstored retention --help).\n",
	      f);
}

void config_usage_retention(FILE *f)
{
	fputs("usage: flowstored retention --data DIR [--dry-run] [OPTION]...\n"
	      "Roll up sealed partitions not rolled up yet, then remove what the policies\n"
	      "say must go (whole files, oldest first); safe while the daemon runs. Give\n"
	      "the same policy flags as the daemon's.\n"
	      "\n"
	      "  --data DIR              the data dir (default /var/lib/flowstore)\n"
	      "  --dry-run               print what would go and why; change nothing\n"
	      RETENTION_USAGE
	      "  --log-level LEVEL       error, warn, info (default) or debug\n"
	      "  -h, --help              this text\n",
	      f);
}

struct unit {
	char suffix;
	uint64_t mult;
};

/* The digits s starts with (no sign, no space); *end points past them. */
static int parse_leading(const char *s, uintmax_t *n, char **end)
{
	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	*n = strtoumax(s, end, 10);
	return errno ? -EINVAL : 0;
}

/* A whole number with at most one unit suffix from units[]. */
static int parse_scaled(const char *s, const struct unit *units, size_t nunits, uint64_t *v)
{
	uint64_t mult = 1;
	char *end;
	uintmax_t n;

	if (parse_leading(s, &n, &end))
		return -EINVAL;
	if (*end) {
		size_t i;

		for (i = 0; i < nunits; i++)
			if (*end == units[i].suffix)
				break;
		if (i == nunits || end[1])
			return -EINVAL;
		mult = units[i].mult;
	}
	if (n > UINT64_MAX / mult)
		return -EINVAL;
	*v = (uint64_t)n * mult;
	return 0;
}

int config_parse_count(const char *s, uint64_t *v)
{
	static const struct unit units[] = {
		{ 'k', 1000ULL }, { 'K', 1000ULL }, { 'M', 1000000ULL }, { 'G', 1000000000ULL },
	};

	return parse_scaled(s, units, sizeof(units) / sizeof(units[0]), v);
}

int config_parse_size(const char *s, uint64_t *v)
{
	static const struct unit units[] = {
		{ 'k', 1ULL << 10 }, { 'K', 1ULL << 10 }, { 'M', 1ULL << 20 }, { 'G', 1ULL << 30 },
	};

	return parse_scaled(s, units, sizeof(units) / sizeof(units[0]), v);
}

int config_parse_duration(const char *s, int64_t *ns)
{
	static const struct { const char *suffix; int64_t mult; } units[] = {
		{ "", NS_PER_S }, { "ms", 1000000LL }, { "s", NS_PER_S }, { "m", 60 * NS_PER_S },
		{ "h", 3600 * NS_PER_S }, { "d", 86400 * NS_PER_S },
	};
	char *end;
	uintmax_t n;

	if (parse_leading(s, &n, &end))
		return -EINVAL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].suffix) == 0) {
			if (n > (uintmax_t)(INT64_MAX / units[i].mult))
				return -EINVAL;
			*ns = (int64_t)n * units[i].mult;
			return 0;
		}
	}
	return -EINVAL;
}

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* The kernel wants a power of two, a multiple of the page; 1G is plenty. */
static int parse_ring_size(const char *arg, struct config *cfg, char *err, size_t len)
{
	long page = sysconf(_SC_PAGESIZE);
	uint64_t v;

	if (config_parse_size(arg, &v) || v < (uint64_t)page || v > (1u << 30) || (v & (v - 1)))
		return fail(err, len, "--ring-size: '%s' is not a power of two from %ldK to 1G "
			    "(e.g. 4M, 16M, 64M)", arg, page >> 10);
	cfg->ring_bytes = (uint32_t)v;
	return 0;
}

static const char *const tcp_states_names[] = {
	[CONFIG_TCP_STATES_ALL] = "all", [CONFIG_TCP_STATES_OPEN] = "open",
	[CONFIG_TCP_STATES_NONE] = "none", NULL,
};

static const char *const accept_owner_names[] = {
	[CONFIG_ACCEPT_OWNER_IO] = "io", [CONFIG_ACCEPT_OWNER_SYSCALL] = "syscall", NULL,
};

static const char *const tc_attach_names[] = {
	[CONFIG_TC_AUTO] = "auto", [CONFIG_TC_TCX] = "tcx", [CONFIG_TC_CLSACT] = "clsact", NULL,
};

/* One of names (a NULL-terminated list): its index into *out. */
static int parse_choice(const char *flag, const char *arg, const char *const *names, int *out,
			char *err, size_t len)
{
	char list[128] = "";

	for (int i = 0; names[i]; i++) {
		if (strcmp(arg, names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	for (int i = 0; names[i]; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "",
			 names[i]);
	return fail(err, len, "%s: '%s' is not one of %s", flag, arg, list);
}

/* Comma-separated interface names, each a valid one (1 to IFNAMSIZ-1 bytes,
 * no '/', ':' or white space), none twice. */
static int parse_interfaces(const char *arg, struct config *cfg, char *err, size_t len)
{
	const char *p = arg;

	for (;;) {
		size_t n = strcspn(p, ",");

		if (n == 0 || n >= IFNAMSIZ)
			return fail(err, len, "--interfaces: '%s' is not a comma-separated list of "
				    "interface names (1 to %d characters each)", arg, IFNAMSIZ - 1);
		for (size_t i = 0; i < n; i++)
			if (p[i] == '/' || p[i] == ':' || isspace((unsigned char)p[i]))
				return fail(err, len, "--interfaces: '%.*s' is not an interface name",
					    (int)n, p);
		for (const char *q = arg; q < p; q += strcspn(q, ",") + 1)
			if (strcspn(q, ",") == n && strncmp(q, p, n) == 0)
				return fail(err, len, "--interfaces: '%.*s' is named twice", (int)n, p);
		if (!p[n])
			break;
		p += n + 1;
	}
	cfg->interfaces = arg;
	return 0;
}

/* A timeout from min_s seconds to a day. */
static int parse_timeout(const char *name, const char *arg, int64_t min_s, int64_t *ns,
			 char *err, size_t len)
{
	if (config_parse_duration(arg, ns) || *ns < min_s * NS_PER_S || *ns > 86400 * NS_PER_S)
		return fail(err, len, "%s: '%s' is not a duration from %llds to 1d (e.g. 30s, 5m)",
			    name, arg, (long long)min_s);
	return 0;
}

static int parse_source(const char *arg, struct config *cfg, char *err, size_t len)
{
	if (strcmp(arg, "bpf") == 0) {
		cfg->source = SOURCE_BPF;
	} else if (strcmp(arg, "synthetic") == 0) {
		cfg->source = SOURCE_SYNTHETIC;
		cfg->synthetic_rate = 0;
	} else if (strncmp(arg, "synthetic:", 10) == 0) {
		cfg->source = SOURCE_SYNTHETIC;
		if (config_parse_count(arg + 10, &cfg->synthetic_rate) || !cfg->synthetic_rate)
			return fail(err, len, "--source synthetic:RATE: '%s' is not a positive rate", arg + 10);
	} else if (strcmp(arg, "none") == 0) {
		cfg->source = SOURCE_NONE;
	} else if (strncmp(arg, "replay:", 7) == 0 && arg[7]) {
		cfg->source = SOURCE_REPLAY;
		cfg->replay_path = arg + 7;
	} else {
		return fail(err, len, "--source: '%s' is not bpf, synthetic[:RATE], replay:FILE or none",
			    arg);
	}
	return 0;
}

/* A count within [min, max], for flag `name`. */
static int parse_bounded(const char *name, const char *arg, uint64_t min, uint64_t max,
			 uint64_t *v, char *err, size_t len)
{
	if (config_parse_count(arg, v) || *v < min || *v > max)
		return fail(err, len, "%s: '%s' is not a number from %" PRIu64 " to %" PRIu64,
			    name, arg, min, max);
	return 0;
}

/* An age limit: "0" (forever) or a duration from 1 minute to 100 years. */
static int parse_retain(const char *name, const char *arg, int64_t *ns, char *err, size_t len)
{
	if (strcmp(arg, "0") == 0) {
		*ns = 0;
		return 0;
	}
	if (config_parse_duration(arg, ns) || *ns < 60 * NS_PER_S || *ns > 36500LL * 86400 * NS_PER_S)
		return fail(err, len, "%s: '%s' is not 0 (forever) or a duration from 1m to 36500d "
			    "(e.g. 7d, 90d)", name, arg);
	return 0;
}

static int parse_disk_size(const char *name, const char *arg, uint64_t *v, char *err, size_t len)
{
	if (strcmp(arg, "0") == 0) {
		*v = 0;
		return 0;
	}
	if (config_parse_size(arg, v) || *v < (1u << 20))
		return fail(err, len, "%s: '%s' is not 0 (no limit) or a size of 1M or more "
			    "(e.g. 200M, 50G)", name, arg);
	return 0;
}

/* The retention flags (the daemon's and `flowstored retention`'s). */
static int parse_retention_option(int opt, const char *arg, struct config *cfg, char *err,
				  size_t len)
{
	switch (opt) {
	case OPT_RETAIN_RAW: return parse_retain("--retain-raw", arg, &cfg->retain_ns[0], err, len);
	case OPT_RETAIN_1M: return parse_retain("--retain-1m", arg, &cfg->retain_ns[1], err, len);
	case OPT_RETAIN_1H: return parse_retain("--retain-1h", arg, &cfg->retain_ns[2], err, len);
	case OPT_MAX_DISK: return parse_disk_size("--max-disk", arg, &cfg->max_disk, err, len);
	case OPT_MIN_FREE: return parse_disk_size("--min-free", arg, &cfg->min_free, err, len);
	case OPT_RETENTION_INTERVAL:
		if (config_parse_duration(arg, &cfg->retention_interval_ns) ||
		    cfg->retention_interval_ns < NS_PER_S || cfg->retention_interval_ns > 86400 * NS_PER_S)
			return fail(err, len, "--retention-interval: '%s' is not a duration from 1s "
				    "to 1d (e.g. 30s, 5m)", arg);
		return 0;
	case OPT_DRY_RUN: cfg->dry_run = true; return 0;
	}
	return 0;
}

/* The query server's flags. */
static int parse_query_option(int opt, const char *arg, struct config *cfg, char *err, size_t len)
{
	uint64_t v;
	int rc = 0;

	cfg->query_flags = true;
	switch (opt) {
	case OPT_SOCKET:
		if (!*arg)
			return fail(err, len, "--socket: the path is empty");
		cfg->socket_path = arg;
		break;
	case OPT_SOCKET_GROUP:
		if (!*arg)
			return fail(err, len, "--socket-group: the group name is empty");
		cfg->socket_group = arg;
		break;
	case OPT_QUERY_TIMEOUT:
		return parse_timeout("--query-timeout", arg, 1, &cfg->query_timeout_ns, err, len);
	case OPT_QUERY_WORKERS:
		rc = parse_bounded("--query-workers", arg, 1, 256, &v, err, len);
		cfg->query_workers = (unsigned)v;
		break;
	case OPT_QUERY_MAX_ROWS:
		return parse_bounded("--query-max-rows", arg, 1, 1000000000, &cfg->query_max_rows,
				     err, len);
	case OPT_QUERY_QUEUE_WAIT:
		if (config_parse_duration(arg, &cfg->query_queue_wait_ns) ||
		    cfg->query_queue_wait_ns < 1000000 || cfg->query_queue_wait_ns > 60 * NS_PER_S)
			return fail(err, len, "--query-queue-wait: '%s' is not a duration from 1ms "
				    "to 60s (e.g. 500ms, 2s)", arg);
		break;
	}
	return rc;
}

static int parse_option(int opt, const char *arg, struct config *cfg, char *err, size_t len)
{
	uint64_t v;
	int rc = 0;

	switch (opt) {
	case OPT_DATA: cfg->data_dir = arg; break;
	case OPT_SOURCE: return parse_source(arg, cfg, err, len);
	case OPT_RECORD: cfg->record_path = arg; break;
	case OPT_PARTITION:
		if (config_parse_duration(arg, &cfg->partition_ns) || cfg->partition_ns < NS_PER_S ||
		    cfg->partition_ns > 31 * 86400 * NS_PER_S)
			return fail(err, len, "--partition: '%s' is not a duration from 1s to 31d (e.g. 15m, 1h, 1d)", arg);
		break;
	case OPT_PARTITION_ROWS:
		return parse_bounded("--partition-rows", arg, 1, 1000000000, &cfg->partition_rows, err, len);
	case OPT_BATCH_ROWS:
		rc = parse_bounded("--batch-rows", arg, 1, 1000000, &v, err, len);
		cfg->batch_rows = (size_t)v;
		break;
	case OPT_BATCH_MS:
		return parse_bounded("--batch-ms", arg, 1, 60000, &cfg->batch_ms, err, len);
	case OPT_QUEUE_BATCHES:
		rc = parse_bounded("--queue-batches", arg, 1, 1024, &v, err, len);
		cfg->queue_batches = (size_t)v;
		break;
	case OPT_COUNT:
		return parse_bounded("--count", arg, 1, UINT64_MAX, &cfg->count, err, len);
	case OPT_SEED:
		return parse_bounded("--seed", arg, 0, UINT64_MAX, &cfg->seed, err, len);
	case OPT_LOG_LEVEL:
		cfg->log_level = log_level_parse(arg);
		if (cfg->log_level < 0)
			return fail(err, len, "--log-level: '%s' is not error, warn, info or debug", arg);
		break;
	case OPT_SOCKET:
	case OPT_SOCKET_GROUP:
	case OPT_QUERY_TIMEOUT:
	case OPT_QUERY_WORKERS:
	case OPT_QUERY_MAX_ROWS:
	case OPT_QUERY_QUEUE_WAIT:
		return parse_query_option(opt, arg, cfg, err, len);
	case OPT_NO_QUERY: cfg->no_query = true; break;
	case OPT_INTERFACES: return parse_interfaces(arg, cfg, err, len);
	case OPT_RING_SIZE: return parse_ring_size(arg, cfg, err, len);
	case OPT_FLOW_MAP_SIZE:
		rc = parse_bounded("--flow-map-size", arg, 1024, 1u << 24, &v, err, len);
		cfg->flow_map_size = (uint32_t)v;
		break;
	case OPT_MAX_CONNS:
		rc = parse_bounded("--max-conns", arg, 1024, 1u << 24, &v, err, len);
		cfg->max_conns = (uint32_t)v;
		break;
	case OPT_IDLE_TIMEOUT:
		return parse_timeout("--idle-timeout", arg, 1, &cfg->idle_timeout_ns, err, len);
	case OPT_ACTIVE_TIMEOUT:
		return parse_timeout("--active-timeout", arg, 1, &cfg->active_timeout_ns, err, len);
	case OPT_TCP_STATES:
		cfg->bpf_flags = true;
		return parse_choice("--tcp-states", arg, tcp_states_names, &cfg->tcp_states, err, len);
	case OPT_TC_ATTACH:
		cfg->bpf_flags = true;
		return parse_choice("--tc-attach", arg, tc_attach_names, &cfg->tc_attach, err, len);
	case OPT_ACCEPT_OWNER:
		cfg->bpf_flags = true;
		return parse_choice("--accept-owner", arg, accept_owner_names, &cfg->accept_owner,
				    err, len);
	case OPT_RETAIN_RAW:
	case OPT_RETAIN_1M:
	case OPT_RETAIN_1H:
	case OPT_MAX_DISK:
	case OPT_MIN_FREE:
	case OPT_RETENTION_INTERVAL:
	case OPT_DRY_RUN:
		return parse_retention_option(opt, arg, cfg, err, len);
	case 'h': cfg->help = true; break;
	case 'V': cfg->version = true; break;
	}
	return rc;
}

static int validate(const struct config *cfg, char *err, size_t len)
{
	if (cfg->bpf_flags && cfg->source != SOURCE_BPF)
		return fail(err, len, "--tcp-states, --tc-attach and --accept-owner work only with "
			    "--source bpf");
	if (!*cfg->data_dir)
		return fail(err, len, "--data: the directory name is empty");
	if (cfg->count && cfg->source != SOURCE_SYNTHETIC)
		return fail(err, len, "--count works only with --source synthetic");
	if (cfg->record_path && cfg->replay_path && strcmp(cfg->record_path, cfg->replay_path) == 0)
		return fail(err, len, "--record: '%s' is the file being replayed", cfg->record_path);
	if (cfg->interfaces && cfg->source != SOURCE_BPF)
		return fail(err, len, "--interfaces works only with --source bpf");
	if (cfg->source == SOURCE_NONE && cfg->no_query)
		return fail(err, len, "--source none only serves queries: it cannot go with --no-query");
	if (cfg->source == SOURCE_NONE && cfg->record_path)
		return fail(err, len, "--record needs a source of events, not --source none");
	if (cfg->no_query && cfg->query_flags)
		return fail(err, len, "--no-query: the --socket and --query-* flags mean nothing "
			    "without the query server");
	return 0;
}

static void set_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->data_dir = "/var/lib/flowstore";
	cfg->source = SOURCE_BPF;
	cfg->partition_ns = 3600 * NS_PER_S;
	cfg->partition_rows = 2000000;
	cfg->batch_rows = 10000;
	cfg->batch_ms = 250;
	cfg->queue_batches = 4;
	cfg->seed = 1;
	cfg->log_level = LOG_INFO;
	cfg->ring_bytes = BPF_RING_BYTES_DEFAULT;
	cfg->flow_map_size = BPF_FLOW_MAP_SIZE_DEFAULT;
	cfg->max_conns = BPF_MAX_CONNS_DEFAULT;
	cfg->tcp_states = CONFIG_TCP_STATES_OPEN;
	cfg->idle_timeout_ns = BPF_IDLE_TIMEOUT_NS_DEFAULT;
	cfg->active_timeout_ns = BPF_ACTIVE_TIMEOUT_NS_DEFAULT;
	cfg->query_timeout_ns = 30 * NS_PER_S;
	cfg->query_workers = 4;
	cfg->query_max_rows = 100000;
	cfg->query_queue_wait_ns = 2 * NS_PER_S;
	cfg->retain_ns[0] = 7 * 86400 * NS_PER_S;
	cfg->retain_ns[1] = 90 * 86400 * NS_PER_S;
	cfg->retain_ns[2] = 400 * 86400 * NS_PER_S;
	cfg->retention_interval_ns = 60 * NS_PER_S;
}

static int parse_args(int argc, char **argv, const char *shorts, const struct option *options,
		      struct config *cfg, char *err, size_t errlen)
{
	int opt;

	set_defaults(cfg);
	optind = 0; /* reset: tests parse several argv in one process */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, shorts, options, NULL)) != -1) {
		if (opt == '?')
			return fail(err, errlen, "unknown option '%s'", argv[optind - 1]);
		if (opt == ':')
			return fail(err, errlen, "option '%s' needs a value", argv[optind - 1]);
		if (parse_option(opt, optarg, cfg, err, errlen))
			return -EINVAL;
	}
	if (optind < argc)
		return fail(err, errlen, "unexpected argument '%s'", argv[optind]);
	return 0;
}

int config_parse(int argc, char **argv, struct config *cfg, char *err, size_t errlen)
{
	if (parse_args(argc, argv, ":hV", long_options, cfg, err, errlen))
		return -EINVAL;
	return validate(cfg, err, errlen);
}

int config_parse_retention(int argc, char **argv, struct config *cfg, char *err, size_t errlen)
{
	if (parse_args(argc, argv, ":h", retention_options, cfg, err, errlen))
		return -EINVAL;
	if (!*cfg->data_dir)
		return fail(err, errlen, "--data: the directory name is empty");
	return 0;
}
