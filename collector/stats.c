/*
 * Formatting the counters of stats.h. A table drives both formats so a new
 * counter is one line here and appears everywhere.
 */
#include "stats.h"

#include <stdarg.h>
#include <stdio.h>

static const char *const malformed_names[MALFORMED_NREASONS] = {
	[MALFORMED_SHORT] = "short",
	[MALFORMED_SIZE] = "size",
	[MALFORMED_TYPE] = "type",
	[MALFORMED_VALUE] = "value",
};

const char *stats_malformed_name(enum malformed_reason r)
{
	return r < MALFORMED_NREASONS ? malformed_names[r] : "unknown";
}

static const char *const kernel_loss_names[FS_LOSS_MAX] = {
	[FS_LOSS_RINGBUF_FULL] = "ringbuf_full",
	[FS_LOSS_MAP_FULL] = "map_full",
	[FS_LOSS_PARSE] = "parse",
};

const char *stats_kernel_loss_name(enum fs_loss_reason r)
{
	return (unsigned)r < FS_LOSS_MAX ? kernel_loss_names[r] : "unknown";
}

enum metric_kind { COUNTER, GAUGE };

struct metric {
	const char *name; /* flowstore_<name> in Prometheus, <name> in the line */
	const char *help;
	enum metric_kind kind;
	size_t offset;     /* of the first counter in struct stats */
	size_t n;          /* counters in the family */
	const char *label; /* label key when n > 1 */
	const char *const *label_values;
};

static const char *const table_labels[SCHEMA_NTABLES] = { "flows", "connections", "tcp_states" };
static const char *const kind_labels[SCHEMA_NKINDS] = { "raw", "1m", "1h" };
static const char *const why_labels[3] = { "age", "max_disk", "min_free" };

#define M(name, help, kind, field, n, label, values)                          \
	{ name, help, kind, offsetof(struct stats, field), n, label, values }

static const struct metric metrics[] = {
	M("events_in", "Events decoded, by table.", COUNTER, events_in, SCHEMA_NTABLES, "table", table_labels),
	M("owners_in", "Owner records of datagram sockets decoded (they fill flows' pid and comm; not rows).", COUNTER, owners_in, 1, 0, 0),
	M("events_malformed", "Malformed events skipped, by reason.", COUNTER, malformed, MALFORMED_NREASONS, "reason", malformed_names),
	M("kernel_lost", "Records lost in the kernel, by reason.", COUNTER, kernel_lost, FS_LOSS_MAX, "reason", kernel_loss_names),
	M("kernel_recursion_misses", "Kernel program runs skipped because the program was already running on the CPU.", COUNTER, kernel_recursion_misses, 1, 0, 0),
	M("interfaces_attached", "Interfaces the flow programs are attached to.", GAUGE, interfaces_attached, 1, 0, 0),
	M("flows_swept", "Flows exported from the kernel's flow map by user space (idle, shutdown).", COUNTER, flows_swept, 1, 0, 0),
	M("events_dropped", "Events dropped because the write queue was full.", COUNTER, dropped_queue_full, 1, 0, 0),
	M("batches_queued", "Batches handed to the writer.", COUNTER, batches_queued, 1, 0, 0),
	M("record_errors", "Failed writes to the --record file.", COUNTER, record_errors, 1, 0, 0),
	M("rows_written", "Rows committed to partitions, by table.", COUNTER, rows_written, SCHEMA_NTABLES, "table", table_labels),
	M("rows_lost", "Rows that could not be written before exit.", COUNTER, rows_lost, 1, 0, 0),
	M("batches_committed", "Write transactions committed.", COUNTER, batches_committed, 1, 0, 0),
	M("commit_ns_total", "Time spent writing batches, ns.", COUNTER, commit_ns_total, 1, 0, 0),
	M("commit_ns_max", "Slowest batch write, ns.", GAUGE, commit_ns_max, 1, 0, 0),
	M("write_errors", "Failed write attempts (each retried).", COUNTER, write_errors, 1, 0, 0),
	M("queue_depth", "Batches waiting for the writer.", GAUGE, queue_depth, 1, 0, 0),
	M("partitions_created", "Partitions created.", COUNTER, partitions_created, 1, 0, 0),
	M("checkpoints", "WAL checkpoints of the open partition, off the writer thread.", COUNTER, checkpoints, 1, 0, 0),
	M("checkpoint_errors", "WAL checkpoints that failed (retried at the next commit).", COUNTER, checkpoint_errors, 1, 0, 0),
	M("checkpoint_restarts", "WAL checkpoints that held the writer off to start the WAL over (it had grown past 256 MiB).", COUNTER, checkpoint_restarts, 1, 0, 0),
	M("checkpoint_ns_total", "Time spent in WAL checkpoints, ns.", COUNTER, checkpoint_ns_total, 1, 0, 0),
	M("checkpoint_ns_max", "Slowest WAL checkpoint, ns.", GAUGE, checkpoint_ns_max, 1, 0, 0),
	M("wal_pages_max", "Most pages the open partition's WAL held after a commit.", GAUGE, wal_pages_max, 1, 0, 0),
	M("partitions_sealed", "Partitions sealed.", COUNTER, partitions_sealed, 1, 0, 0),
	M("seal_errors", "Seals that failed.", COUNTER, seal_errors, 1, 0, 0),
	M("seal_busy_retries", "Seals put off because a query was reading the partition (retried).", COUNTER, seal_busy_retries, 1, 0, 0),
	M("seal_ns_total", "Time spent sealing, ns.", COUNTER, seal_ns_total, 1, 0, 0),
	M("seal_rows_total", "Rows in the partitions sealed.", COUNTER, seal_rows_total, 1, 0, 0),
	M("retention_runs", "Retention runs (rollups, then policies).", COUNTER, retention_runs, 1, 0, 0),
	M("retention_errors", "Retention runs that failed (retried at the next run).", COUNTER, retention_errors, 1, 0, 0),
	M("retention_ns_total", "Time spent in retention runs, ns.", COUNTER, retention_ns_total, 1, 0, 0),
	M("files_removed", "Files removed by retention, by kind.", COUNTER, files_removed, SCHEMA_NKINDS, "kind", kind_labels),
	M("files_removed_why", "Files removed by retention, by policy.", COUNTER, files_removed_why, 3, "policy", why_labels),
	M("bytes_removed", "Bytes of the files removed by retention.", COUNTER, bytes_removed, 1, 0, 0),
	M("rollup_partitions", "Raw partitions rolled up into flows_1m and flows_1h.", COUNTER, rollup_partitions, 1, 0, 0),
	M("rollup_rows", "Rows added to flows_1m and flows_1h.", COUNTER, rollup_rows, 1, 0, 0),
	M("temps_removed", "Leftovers of interrupted retention steps removed.", COUNTER, temps_removed, 1, 0, 0),
	M("store_bytes", "Bytes of flowstore's files in the data dir (at the last retention run).", GAUGE, store_bytes, 1, 0, 0),
	M("fs_free_bytes", "Bytes free on the data dir's file system (at the last retention run).", GAUGE, fs_free_bytes, 1, 0, 0),
	M("partitions_broken", "Files named like partitions that cannot be read (left alone).", GAUGE, partitions_broken, 1, 0, 0),
	M("files_foreign", "Files in the data dir that are not flowstore's (left alone).", GAUGE, files_foreign, 1, 0, 0),
};

#undef M

static uint64_t metric_value(const struct stats *s, const struct metric *m, size_t i)
{
	const atomic_uint_fast64_t *c =
		(const atomic_uint_fast64_t *)((const char *)s + m->offset);

	return stats_get(&c[i]);
}

struct out {
	char *buf;
	size_t len, used;
};

__attribute__((format(printf, 2, 3))) static void out_printf(struct out *o, const char *fmt, ...)
{
	size_t room = o->used < o->len ? o->len - o->used : 0;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(room ? o->buf + o->used : NULL, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->used += (size_t)n;
}

void stats_each(void *ctx, stats_emit_fn emit, void *arg)
{
	const struct stats *s = ctx;

	for (size_t m = 0; m < sizeof(metrics) / sizeof(metrics[0]); m++) {
		const struct metric *mt = &metrics[m];
		const char *kind = mt->kind == COUNTER ? "counter" : "gauge";

		for (size_t i = 0; i < mt->n; i++) {
			char labels[64] = "";

			if (mt->n > 1)
				snprintf(labels, sizeof(labels), "%s=\"%s\"", mt->label,
					 mt->label_values[i]);
			emit(arg, mt->name, labels, kind, mt->help, (double)metric_value(s, mt, i));
		}
	}
}

int stats_format_line(const struct stats *s, char *buf, size_t len)
{
	struct out o = { buf, len, 0 };

	out_printf(&o, "stats:");
	for (size_t m = 0; m < sizeof(metrics) / sizeof(metrics[0]); m++) {
		const struct metric *mt = &metrics[m];

		for (size_t i = 0; i < mt->n; i++) {
			if (mt->n > 1)
				out_printf(&o, " %s_%s=%llu", mt->name, mt->label_values[i],
					   (unsigned long long)metric_value(s, mt, i));
			else
				out_printf(&o, " %s=%llu", mt->name,
					   (unsigned long long)metric_value(s, mt, i));
		}
	}
	return (int)o.used;
}

int stats_format_prometheus(const struct stats *s, char *buf, size_t len)
{
	struct out o = { buf, len, 0 };

	for (size_t m = 0; m < sizeof(metrics) / sizeof(metrics[0]); m++) {
		const struct metric *mt = &metrics[m];

		out_printf(&o, "# HELP flowstore_%s %s\n# TYPE flowstore_%s %s\n", mt->name,
			   mt->help, mt->name, mt->kind == COUNTER ? "counter" : "gauge");
		for (size_t i = 0; i < mt->n; i++) {
			if (mt->n > 1)
				out_printf(&o, "flowstore_%s{%s=\"%s\"} %llu\n", mt->name, mt->label,
					   mt->label_values[i],
					   (unsigned long long)metric_value(s, mt, i));
			else
				out_printf(&o, "flowstore_%s %llu\n", mt->name,
					   (unsigned long long)metric_value(s, mt, i));
		}
	}
	return (int)o.used;
}
