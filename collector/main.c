/*
 * flowstored: the daemon. Parses flags, claims the data dir, seals what an
 * earlier run left open, starts the query server on its socket, wires a
 * source to the pipeline, and runs the libuv loop until SIGINT/SIGTERM or
 * until the source is done (--count, the end of a replay).
 *
 * Shutdown order matters and is always the same: stop the query server
 * (running queries are cancelled, its threads joined: it never waits for a
 * client), stop the source (no more events), flush the last batch and let
 * the writer commit everything queued (pipeline_close), stop the sealer (a
 * seal in progress is cancelled and redone at the next start), print the
 * counters, exit 0. Nothing is sealed early: the open partition stays open
 * for the next start to seal.
 *
 * The sealer thread also applies the retention policies (sealer.h);
 * `flowstored retention` applies them once from the command line
 * (retention_cmd.h).
 *
 * --source none: no source, pipeline or sealer; the data dir is served as
 * it is (it must exist; nothing in it is written, sealed or removed).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "clock.h"
#include "config.h"
#include "decode.h"
#include "events.h"
#include "log.h"
#include "pipeline.h"
#include "privileges.h"
#include "recording.h"
#include "retention_cmd.h"
#include "schema.h"
#include "sealer.h"
#include "server.h"
#include "source.h"
#include "stats.h"
#include "tc_attach.h"

_Static_assert((int)CONFIG_TCP_STATES_ALL == (int)FS_STATES_ALL &&
		       (int)CONFIG_TCP_STATES_OPEN == (int)FS_STATES_OPEN &&
		       (int)CONFIG_TCP_STATES_NONE == (int)FS_STATES_NONE,
	       "--tcp-states values are the kernel's policy numbers");
_Static_assert((int)CONFIG_ACCEPT_OWNER_IO == (int)BPF_ACCEPT_OWNER_IO &&
		       (int)CONFIG_ACCEPT_OWNER_SYSCALL == (int)BPF_ACCEPT_OWNER_SYSCALL,
	       "--accept-owner values are source.h's modes");
_Static_assert((int)CONFIG_TC_AUTO == (int)TC_MODE_AUTO && (int)CONFIG_TC_TCX == (int)TC_MODE_TCX &&
		       (int)CONFIG_TC_CLSACT == (int)TC_MODE_CLSACT,
	       "--tc-attach values are tc_attach.h's modes");

#define STATS_LOG_INTERVAL_MS (60 * 1000)

struct daemon {
	uv_loop_t loop;
	struct config cfg;
	struct stats stats;
	char socket_path[4096];
	int dir_fd; /* flock()ed: one daemon per data dir */
	struct sealer *sealer;
	struct pipeline pipeline;
	bool pipeline_ready;
	struct source *source;
	struct query_server *server;
	uv_signal_t sigint, sigterm;
	uv_timer_t stats_timer;
	bool stopping, source_done;
	int exit_code;
};

static void log_stats(struct daemon *d)
{
	char line[8192];

	stats_format_line(&d->stats, line, sizeof(line));
	LOG(LOG_INFO, "%s", line);
}

/* mkdir, where an existing directory is success (whatever errno says). */
static int mkdir_one(const char *path, mode_t mode)
{
	struct stat st;

	if (mkdir(path, mode) == 0 || errno == EEXIST)
		return 0;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	return -errno;
}

static int mkdir_p(const char *path)
{
	char buf[4096];
	size_t len = strlen(path);
	int err;

	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		err = mkdir_one(buf, 0755);
		if (err)
			return err;
		*p = '/';
	}
	return mkdir_one(buf, 0750);
}

/* Create the data dir if needed, check we can write it, lock it. */
static int claim_data_dir(struct daemon *d)
{
	const char *dir = d->cfg.data_dir;
	bool writes = d->cfg.source != SOURCE_NONE;
	int err = writes ? mkdir_p(dir) : 0;

	if (err) {
		fprintf(stderr, "flowstored: cannot create data dir %s: %s\n", dir, strerror(-err));
		return -1;
	}
	d->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->dir_fd < 0) {
		fprintf(stderr, "flowstored: cannot use data dir %s: %s\n", dir, strerror(errno));
		return -1;
	}
	if (writes && access(dir, W_OK | X_OK)) {
		fprintf(stderr, "flowstored: data dir %s is not writable: %s\n", dir, strerror(errno));
		return -1;
	}
	if (flock(d->dir_fd, LOCK_EX | LOCK_NB)) {
		fprintf(stderr, "flowstored: data dir %s is in use by another flowstored\n", dir);
		return -1;
	}
	return 0;
}

/* Report what is in the data dir; queue what an earlier run left unsealed. */
static int scan_data_dir(struct daemon *d)
{
	struct catalog cat;
	size_t queued = 0;
	int err = catalog_scan(d->cfg.data_dir, &cat);

	if (err) {
		LOG(LOG_ERROR, "cannot list %s: %s", d->cfg.data_dir, strerror(-err));
		return err;
	}
	for (size_t i = 0; i < cat.n; i++) {
		const struct catalog_entry *e = &cat.entries[i];
		char path[4096];

		if (e->status == CATALOG_BROKEN) {
			LOG(LOG_WARN, "%s/%s is not a readable partition (%s); left alone",
			    d->cfg.data_dir, e->name, e->error);
			stats_add(&d->stats.partitions_broken, 1);
		} else if (e->kind == SCHEMA_KIND_RAW && e->needs_seal && d->sealer) {
			snprintf(path, sizeof(path), "%s/%s", d->cfg.data_dir, e->name);
			sealer_submit(d->sealer, path);
			queued++;
		}
	}
	/* Our own socket, in the data dir by default, is not a stranger. */
	if (cat.foreign && d->server && !d->cfg.socket_path)
		cat.foreign--;
	if (cat.foreign)
		LOG(LOG_WARN, "%zu files in %s are not flowstore partitions; left alone",
		    cat.foreign, d->cfg.data_dir);
	stats_add(&d->stats.files_foreign, cat.foreign);
	if (!d->sealer)
		LOG(LOG_INFO, "%zu partitions in %s, served as they are (--source none)", cat.n,
		    d->cfg.data_dir);
	else if (queued)
		LOG(LOG_INFO, "%zu partitions in %s, %zu left open by an earlier run: sealing them",
		    cat.n, d->cfg.data_dir, queued);
	else if (cat.n)
		LOG(LOG_INFO, "%zu partitions in %s, all sealed", cat.n, d->cfg.data_dir);
	else
		LOG(LOG_INFO, "no partitions in %s yet", d->cfg.data_dir);
	catalog_free(&cat);
	return 0;
}

static void on_handle_closed(uv_handle_t *h)
{
	(void)h;
}

static void on_pipeline_closed(struct pipeline *p)
{
	(void)p;
}

static void close_daemon_handles(struct daemon *d)
{
	uv_close((uv_handle_t *)&d->sigint, on_handle_closed);
	uv_close((uv_handle_t *)&d->sigterm, on_handle_closed);
	uv_close((uv_handle_t *)&d->stats_timer, on_handle_closed);
}

static void on_source_stopped(struct source *s)
{
	struct daemon *d = s->user;

	/* Blocks until the writer committed every queued batch. */
	pipeline_close(&d->pipeline, on_pipeline_closed);
	d->pipeline_ready = false;
	if (d->source_done)
		sealer_wait_idle(d->sealer);
	close_daemon_handles(d);
}

static void daemon_stop(struct daemon *d, const char *why)
{
	if (d->stopping)
		return;
	d->stopping = true;
	query_server_stop(d->server);
	d->server = NULL;
	if (!d->source) {
		LOG(LOG_INFO, "stopping (%s)", why);
		close_daemon_handles(d);
		return;
	}
	LOG(LOG_INFO, "stopping (%s): writing what is queued", why);
	d->source->ops->stop(d->source, on_source_stopped);
}

static void on_signal(uv_signal_t *h, int signum)
{
	daemon_stop(h->data, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

static void on_stats_timer(uv_timer_t *t)
{
	log_stats(t->data);
}

static void on_source_done(void *ctx, int status)
{
	struct daemon *d = ctx;

	d->source_done = true;
	if (status)
		d->exit_code = 1;
	daemon_stop(d, status ? "source failed" : "source done");
}

static void on_room(void *ctx)
{
	struct daemon *d = ctx;

	if (!d->stopping && d->source->ops->resume)
		d->source->ops->resume(d->source);
}

static int open_record(struct daemon *d)
{
	struct recording_writer *rec;
	char why[256];

	if (!d->cfg.record_path)
		return 0;
	if (recording_writer_open(d->cfg.record_path, clock_realtime(&clock_system), &rec, why,
				  sizeof(why))) {
		fprintf(stderr, "flowstored: --record %s: %s\n", d->cfg.record_path, why);
		return -1;
	}
	pipeline_set_record(&d->pipeline, rec);
	return 0;
}

static int new_bpf_source(struct daemon *d, const struct source_sink *sink)
{
	struct bpf_source_opts opts = {
		.ring_bytes = d->cfg.ring_bytes,
		.max_conns = d->cfg.max_conns,
		.wakeup_bytes = BPF_WAKEUP_BYTES_DEFAULT,
		.drain_ms = BPF_DRAIN_MS_DEFAULT,
		.flow_map_size = d->cfg.flow_map_size,
		.idle_timeout_ns = (uint64_t)d->cfg.idle_timeout_ns,
		.active_timeout_ns = (uint64_t)d->cfg.active_timeout_ns,
		.interfaces = d->cfg.interfaces,
		.tcp_states = (uint32_t)d->cfg.tcp_states,
		.tc_mode = d->cfg.tc_attach,
		.accept_owner = d->cfg.accept_owner,
	};
	int err = source_bpf_new(&d->loop, &clock_system, &opts, sink, &d->stats, &d->source);

	if (!err)
		privileges_drop();
	return err;
}

/*
 * Made before any thread starts: the kernel source drops the capabilities
 * it no longer needs, and a drop covers only the threads created after it.
 * The sink points at the pipeline, which pipeline_init() fills in later;
 * nothing reaches it before the source starts.
 */
static int make_source(struct daemon *d)
{
	struct source_sink sink = pipeline_sink(&d->pipeline);
	struct synthetic_opts opts = {
		.rate = d->cfg.synthetic_rate, .count = d->cfg.count, .seed = d->cfg.seed,
	};
	int err;

	switch (d->cfg.source) {
	case SOURCE_BPF:
		/* Its failures are logged as one line by the source itself. */
		return new_bpf_source(d, &sink) ? -1 : 0;
	case SOURCE_SYNTHETIC:
		err = source_synthetic_new(&d->loop, &clock_system, &opts, &sink, &d->source);
		break;
	default:
		err = source_replay_new(&d->loop, d->cfg.replay_path, &sink, &d->source);
		break;
	}
	if (err) {
		fprintf(stderr, "flowstored: cannot start the %s source: %s\n",
			d->cfg.source == SOURCE_SYNTHETIC ? "synthetic" : "replay", strerror(-err));
		return -1;
	}
	return 0;
}

/* After pipeline_init(), which clears these. */
static void connect_source(struct daemon *d)
{
	d->source->user = d;
	d->pipeline.on_room = on_room;
	d->pipeline.room_ctx = d;
	d->pipeline.on_source_done = on_source_done;
	d->pipeline.done_ctx = d;
}

static int start_pipeline(struct daemon *d)
{
	struct pipeline_config pcfg = {
		.batch_rows = d->cfg.batch_rows,
		.batch_ms = d->cfg.batch_ms,
		.queue_batches = d->cfg.queue_batches,
		.ifname = decode_ifname_system,
	};
	struct writer_config wcfg = {
		.dir = d->cfg.data_dir,
		.period_ns = d->cfg.partition_ns,
		.partition_rows = d->cfg.partition_rows,
		.clock = &clock_system,
		.shutdown_retry_ms = 10000,
	};
	int err = pipeline_init(&d->pipeline, &d->loop, &pcfg, &wcfg, d->sealer, &d->stats);

	if (err) {
		fprintf(stderr, "flowstored: cannot start the writer: %s\n", strerror(-err));
		return -1;
	}
	d->pipeline_ready = true;
	return 0;
}

static void start_handles(struct daemon *d)
{
	uv_signal_init(&d->loop, &d->sigint);
	uv_signal_init(&d->loop, &d->sigterm);
	uv_timer_init(&d->loop, &d->stats_timer);
	d->sigint.data = d->sigterm.data = d->stats_timer.data = d;
	uv_signal_start(&d->sigint, on_signal, SIGINT);
	uv_signal_start(&d->sigterm, on_signal, SIGTERM);
	uv_timer_start(&d->stats_timer, on_stats_timer, STATS_LOG_INTERVAL_MS,
		       STATS_LOG_INTERVAL_MS);
}

/* Before anything is touched: a user who cannot run the kernel source gets
 * one line saying why. */
static int check_source(const struct config *cfg)
{
	return cfg->source == SOURCE_BPF ? privileges_check_bpf() : 0;
}

static int parse_flags(struct daemon *d, int argc, char **argv)
{
	char err[512];

	if (config_parse(argc, argv, &d->cfg, err, sizeof(err))) {
		fprintf(stderr, "flowstored: %s\n", err);
		config_usage(stderr);
		exit(2);
	}
	if (d->cfg.help) {
		config_usage(stdout);
		exit(0);
	}
	if (d->cfg.version) {
		printf("flowstored %s (schema %d, event ABI %d, recording format %d)\n",
		       FLOWSTORE_VERSION, SCHEMA_VERSION, FS_ABI_VERSION, RECORDING_VERSION);
		exit(0);
	}
	log_threshold = (enum log_level)d->cfg.log_level;
	if (d->cfg.socket_path)
		snprintf(d->socket_path, sizeof(d->socket_path), "%s", d->cfg.socket_path);
	else
		snprintf(d->socket_path, sizeof(d->socket_path), "%s/flowstore.sock",
			 d->cfg.data_dir);
	return check_source(&d->cfg);
}

static void daemon_stats(void *ctx, qstat_emit_fn emit, void *arg)
{
	struct daemon *d = ctx;

	stats_each(&d->stats, emit, arg);
}

/*
 * After the data dir is locked and the source is made (its capability drop
 * must come before any thread starts), before the sealer and the writer:
 * binding sets the process umask for a moment, which no other thread may
 * see while it creates files.
 */
static int start_query_server(struct daemon *d)
{
	struct query_server_config qcfg = {
		.socket_path = d->socket_path,
		.data_dir = d->cfg.data_dir,
		.socket_group = d->cfg.socket_group,
		.max_queries = d->cfg.query_workers,
		.max_timeout_ms = d->cfg.query_timeout_ns / 1000000,
		.max_rows = d->cfg.query_max_rows,
		.queue_wait_ms = d->cfg.query_queue_wait_ns / 1000000,
		.stats = daemon_stats,
		.stats_ctx = d,
	};
	char err[512];

	if (d->cfg.no_query)
		return 0;
	if (query_server_start(&qcfg, &d->server, err, sizeof(err))) {
		fprintf(stderr, "flowstored: query socket: %s\n", err);
		return -1;
	}
	return 0;
}

/* --source none: the data dir as it is, and the query server. */
static int serve_only_setup(struct daemon *d)
{
	return start_query_server(d) || scan_data_dir(d) ? -1 : 0;
}

static int daemon_setup(struct daemon *d)
{
	int err;

	/* First: a SIGINT/SIGTERM during the setup is then a stop once the
	 * loop runs, not the default action (death) halfway through it. */
	start_handles(d);
	if (claim_data_dir(d))
		return -1;
	if (schema_init()) {
		fprintf(stderr, "flowstored: cannot initialise SQLite\n");
		return -1;
	}
	if (d->cfg.source == SOURCE_NONE)
		return serve_only_setup(d);
	if (make_source(d) || start_query_server(d))
		return -1;
	err = sealer_start(&clock_system, &d->stats, &d->sealer);
	if (!err) {
		struct retention_policy policy;

		retention_policy_from_config(&d->cfg, &policy);
		err = sealer_enable_retention(d->sealer, d->cfg.data_dir, &policy,
					      d->cfg.retention_interval_ns);
	}
	if (err) {
		fprintf(stderr, "flowstored: cannot start the sealer: %s\n", strerror(-err));
		return -1;
	}
	if (scan_data_dir(d) || start_pipeline(d) || open_record(d))
		return -1;
	connect_source(d);
	return 0;
}

/*
 * Descriptors: the query side keeps partition files open between queries
 * (a cache sized from RLIMIT_NOFILE, span.c) and each client is a socket,
 * so take the hard limit as the soft one (systemd's default soft 1024 is
 * meant for select() users; libuv and SQLite use poll/epoll).
 */
static void raise_nofile(void)
{
	struct rlimit r;

	if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
		r.rlim_cur = r.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &r))
			LOG(LOG_DEBUG, "cannot raise the open-file limit: %s", strerror(errno));
	}
}

int main(int argc, char **argv)
{
	static struct daemon d = { .dir_fd = -1 };

	signal(SIGPIPE, SIG_IGN);
	if (argc > 1 && strcmp(argv[1], "retention") == 0)
		return retention_command(argc - 1, argv + 1);
	raise_nofile();
	if (parse_flags(&d, argc, argv))
		return 1;
	uv_loop_init(&d.loop);
	if (daemon_setup(&d)) {
		d.exit_code = 1;
		close_daemon_handles(&d);
		if (!d.pipeline_ready)
			uv_run(&d.loop, UV_RUN_DEFAULT);
		goto cleanup;
	}
	if (d.server)
		LOG(LOG_INFO, "data in %s; queries on %s", d.cfg.data_dir, d.socket_path);
	else
		LOG(LOG_INFO, "data in %s; no query socket (--no-query)", d.cfg.data_dir);
	if (d.source && d.source->ops->start(d.source)) {
		fprintf(stderr, "flowstored: the %s source did not start\n", d.source->ops->name);
		d.exit_code = 1;
		daemon_stop(&d, "source failed");
	}
	uv_run(&d.loop, UV_RUN_DEFAULT);
	log_stats(&d);
cleanup:
	query_server_stop(d.server);
	if (d.pipeline_ready) {
		pipeline_close(&d.pipeline, on_pipeline_closed);
		uv_run(&d.loop, UV_RUN_DEFAULT);
	}
	sealer_stop(d.sealer);
	if (d.source)
		d.source->ops->destroy(d.source);
	uv_loop_close(&d.loop);
	if (d.dir_fd >= 0)
		close(d.dir_fd);
	return d.exit_code;
}
