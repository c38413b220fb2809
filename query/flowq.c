/*
 * flowq: the command-line client of flowstored's query socket.
 *
 *   flowq [--socket PATH] [--format F] [--timeout S] [--max-rows N] "SQL"
 *   flowq [...] -f FILE          SQL from a file ("-": stdin)
 *   flowq [...] < query.sql      SQL from stdin when it is not a terminal
 *   flowq [...]                  on a terminal: an interactive shell
 *   flowq [...] --tables         every table and column, with meanings
 *   flowq report NAME [--since D] [--until D] [--format F]
 *                                a report of query/reports/ (report.h),
 *                                compiled in; flowq report --list
 *
 * The server formats; flowq asks for format=F and copies the body to
 * stdout as it arrives. The default format is `table` whatever stdout is,
 * so a command prints the same thing in a terminal and in a pipe; scripts
 * say --format csv (or json, tsv, ndjson).
 *
 * Exit codes (a contract for scripts): 0 the result was printed whole;
 * 1 the query failed (the server's message on stderr, as is); 2 usage;
 * 3 flowstored cannot be reached, or the connection broke before the
 * result was whole (what was printed is incomplete).
 *
 * The socket: --socket, else $FLOWSTORE_SOCKET, else
 * ./flowstore-data/flowstore.sock if it exists (where scripts/run.sh puts
 * it), else /var/lib/flowstore/flowstore.sock (the daemon's default).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <editline/readline.h>

#include "client.h"
#include "functions.h"
#include "report.h"

enum { EXIT_OK = 0, EXIT_QUERY = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

#define DEFAULT_FORMAT "table"
#define HISTORY_FILE ".flowq_history"
#define HISTORY_MAX 1000

struct opts {
	const char *socket;
	char format[16];
	const char *timeout;  /* passed through as timeout= */
	const char *max_rows; /* passed through as max_rows= */
	const char *file;
	const char *sql;
	bool tables, help, version;
};

static volatile int interrupted;

static void usage(FILE *f)
{
	fputs("usage: flowq [OPTION]... [SQL]\n"
	      "Run read-only SQL on flowstored's data, through its query socket.\n"
	      "\n"
	      "  SQL                  one statement (quote it); without it, SQL is read from\n"
	      "                       -f FILE, or stdin when stdin is not a terminal; on a\n"
	      "                       terminal, flowq is an interactive shell\n"
	      "  -f, --file FILE      read the SQL from FILE (- for stdin)\n"
	      "  -s, --socket PATH    the query socket (default $FLOWSTORE_SOCKET, else\n"
	      "                       ./flowstore-data/flowstore.sock if it exists, else\n"
	      "                       /var/lib/flowstore/flowstore.sock)\n"
	      "  -F, --format F       table (default), csv, tsv, json or ndjson\n"
	      "  -t, --timeout S      give up on the query after S seconds (the server's\n"
	      "                       maximum applies too)\n"
	      "  -n, --max-rows N     stop after N rows\n"
	      "      --tables         list the tables and their columns\n"
	      "  -h, --help           this text\n"
	      "  -V, --version        the version\n"
	      "\n"
	      "       flowq report NAME [--since D] [--until D] [OPTION]...\n"
	      "       flowq report --list\n"
	      "Run a report (see flowq report --help).\n"
	      "\n"
	      "Exit: 0 ok, 1 the query failed, 2 usage, 3 flowstored not reachable or the\n"
	      "result broke off.\n",
	      f);
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("flowq: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'flowq --help'.\n", stderr);
	return EXIT_USAGE;
}

static bool valid_format(const char *f)
{
	static const char *const names[] = { "table", "csv", "tsv", "json", "ndjson" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(f, names[i]))
			return true;
	return false;
}

static bool positive_number(const char *s, bool whole)
{
	char *end;
	double v;

	if (!*s || *s == '-' || *s == '+' || *s == ' ')
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !(v > 0))
		return false;
	return !whole || strspn(s, "0123456789") == strlen(s);
}

static const char *default_socket(void)
{
	const char *env = getenv("FLOWSTORE_SOCKET");
	struct stat st;

	if (env && *env)
		return env;
	if (stat("flowstore-data/flowstore.sock", &st) == 0)
		return "./flowstore-data/flowstore.sock";
	return "/var/lib/flowstore/flowstore.sock";
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	enum { OPT_TABLES = 1000 };
	static const struct option longopts[] = {
		{ "socket", required_argument, 0, 's' },
		{ "format", required_argument, 0, 'F' },
		{ "timeout", required_argument, 0, 't' },
		{ "max-rows", required_argument, 0, 'n' },
		{ "file", required_argument, 0, 'f' },
		{ "tables", no_argument, 0, OPT_TABLES },
		{ "help", no_argument, 0, 'h' },
		{ "version", no_argument, 0, 'V' },
		{ 0, 0, 0, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	snprintf(o->format, sizeof(o->format), "%s", DEFAULT_FORMAT);
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":s:F:t:n:f:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 's': o->socket = optarg; break;
		case 'F':
			if (!valid_format(optarg))
				return usage_error("--format: '%s' is not table, csv, tsv, json or "
						   "ndjson", optarg);
			snprintf(o->format, sizeof(o->format), "%s", optarg);
			break;
		case 't':
			if (!positive_number(optarg, false))
				return usage_error("--timeout: '%s' is not a number of seconds "
						   "greater than 0", optarg);
			o->timeout = optarg;
			break;
		case 'n':
			if (!positive_number(optarg, true))
				return usage_error("--max-rows: '%s' is not a whole number greater "
						   "than 0", optarg);
			o->max_rows = optarg;
			break;
		case 'f': o->file = optarg; break;
		case OPT_TABLES: o->tables = true; break;
		case 'h': o->help = true; break;
		case 'V': o->version = true; break;
		case ':': return usage_error("option '%s' needs a value", argv[optind - 1]);
		default: return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		o->sql = argv[optind++];
	if (optind < argc)
		return usage_error("one SQL statement, as one argument (quote it); "
				   "unexpected '%s'", argv[optind]);
	if (o->sql && o->file)
		return usage_error("SQL given both as an argument and with -f");
	if (o->tables && (o->sql || o->file))
		return usage_error("--tables takes no SQL");
	if (!o->socket)
		o->socket = default_socket();
	return 0;
}

/* ---- one request ------------------------------------------------------------------ */

static int to_stdout(void *ctx, const void *buf, size_t len)
{
	(void)ctx;
	return fwrite(buf, 1, len, stdout) != len;
}

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* In the shell, Ctrl-C during a query drops it (closing the connection
 * stops it on the server) and returns to the prompt. */
static void catch_sigint(bool on)
{
	struct sigaction sa = { .sa_handler = on ? on_sigint : SIG_DFL };

	sigemptyset(&sa.sa_mask);
	interrupted = 0;
	sigaction(SIGINT, &sa, NULL);
}

static int report_error(const struct client_response *r)
{
	char *msg = client_error_message(r->error_body, r->error_len);

	if (msg) {
		fprintf(stderr, "%s\n", msg);
		free(msg);
	} else {
		fprintf(stderr, "flowq: HTTP %d%s%.*s\n", r->status, r->error_len ? ": " : "",
			(int)r->error_len, r->error_body ? r->error_body : "");
	}
	return EXIT_QUERY;
}

/* Send, hand the body to sink, and turn the outcome into an exit code. */
static int exchange_to(const struct opts *o, const char *method, const char *target,
		       const char *body, size_t len, bool shell, client_sink_fn sink, void *ctx)
{
	struct client_response r;
	int fd = client_connect(o->socket), rc;

	if (fd < 0) {
		fprintf(stderr, "flowq: cannot reach flowstored at %s: %s\n", o->socket,
			strerror(-fd));
		return EXIT_UNREACHABLE;
	}
	if (shell)
		catch_sigint(true);
	rc = client_request(fd, method, target, body, len);
	if (!rc)
		rc = client_read(fd, sink, ctx, shell ? &interrupted : NULL, &r);
	else
		memset(&r, 0, sizeof(r));
	close(fd);
	if (shell)
		catch_sigint(false);
	if (fflush(stdout) && rc == 0)
		rc = -EIO;
	if (rc == -EINTR) {
		fprintf(stderr, "flowq: interrupted\n");
		rc = EXIT_QUERY;
	} else if (rc == -EIO) {
		fprintf(stderr, "flowq: cannot write the result: %s\n", strerror(errno));
		rc = EXIT_QUERY;
	} else if (rc) {
		fprintf(stderr, "flowq: the connection to flowstored at %s broke before the "
			"result was whole\n", o->socket);
		rc = EXIT_UNREACHABLE;
	} else if (r.status < 200 || r.status >= 300) {
		rc = report_error(&r);
	} else {
		if (r.truncated && (!strcmp(o->format, "csv") || !strcmp(o->format, "tsv") ||
				    !strcmp(o->format, "ndjson")))
			fprintf(stderr, "flowq: result truncated at %llu rows\n",
				(unsigned long long)r.rows);
		rc = EXIT_OK;
	}
	client_response_free(&r);
	return rc;
}

/* Send, print, and turn the outcome into an exit code. */
static int exchange(const struct opts *o, const char *method, const char *target,
		    const char *body, size_t len, bool shell)
{
	return exchange_to(o, method, target, body, len, shell, to_stdout, NULL);
}

static int run_query(const struct opts *o, const char *sql, size_t len, bool shell)
{
	char target[256];

	snprintf(target, sizeof(target), "/query?format=%s%s%s%s%s", o->format,
		 o->timeout ? "&timeout=" : "", o->timeout ? o->timeout : "",
		 o->max_rows ? "&max_rows=" : "", o->max_rows ? o->max_rows : "");
	return exchange(o, "POST", target, sql, len, shell);
}

static int list_tables(const struct opts *o, bool shell)
{
	char target[64];

	snprintf(target, sizeof(target), "/tables?format=%s", o->format);
	return exchange(o, "GET", target, NULL, 0, shell);
}

/* ---- SQL from a file or stdin -------------------------------------------------------- */

static int read_all(FILE *f, char **out, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);

	while (buf) {
		size_t got = fread(buf + n, 1, cap - n - 1, f);

		n += got;
		if (n + 1 < cap) {
			if (ferror(f))
				break;
			buf[n] = 0;
			*out = buf;
			*len = n;
			return 0;
		}
		cap *= 2;
		{
			char *b = realloc(buf, cap);

			if (!b)
				break;
			buf = b;
		}
	}
	free(buf);
	return -EIO;
}

static bool blank(const char *s)
{
	return s[strspn(s, " \t\r\n")] == 0;
}

static int run_from(const struct opts *o, const char *path)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
	char *sql;
	size_t len;
	int rc;

	if (!f) {
		fprintf(stderr, "flowq: cannot read %s: %s\n", path, strerror(errno));
		return EXIT_USAGE;
	}
	rc = read_all(f, &sql, &len);
	if (f != stdin)
		fclose(f);
	if (rc) {
		fprintf(stderr, "flowq: cannot read %s\n", path);
		return EXIT_USAGE;
	}
	if (blank(sql))
		rc = usage_error("no SQL in %s", strcmp(path, "-") ? path : "stdin");
	else
		rc = run_query(o, sql, len, false);
	free(sql);
	return rc;
}

/* ---- the shell ------------------------------------------------------------------------ */

static char *history_path(void)
{
	const char *home = getenv("HOME");
	char *p;

	if (!home || !*home || asprintf(&p, "%s/" HISTORY_FILE, home) < 0)
		return NULL;
	return p;
}

static void shell_help(void)
{
	puts("End a statement with ';' to run it (it may span lines).\n"
	     "  .tables          the tables and their columns\n"
	     "  .format [F]      show or set the output: table, csv, tsv, json, ndjson\n"
	     "  .timeout [S]     show or set the time budget in seconds (off: the server's)\n"
	     "  .help            this text\n"
	     "  .quit, .exit     leave (so does Ctrl-D)");
}

/* A line starting with '.': returns false to leave the shell. */
static bool shell_command(struct opts *o, char *line, char *timeout_buf, size_t tlen)
{
	char *cmd = strtok(line, " \t"), *arg = strtok(NULL, " \t");

	if (!strcmp(cmd, ".quit") || !strcmp(cmd, ".exit"))
		return false;
	if (!strcmp(cmd, ".tables")) {
		list_tables(o, true);
	} else if (!strcmp(cmd, ".format")) {
		if (!arg)
			printf("%s\n", o->format);
		else if (valid_format(arg))
			snprintf(o->format, sizeof(o->format), "%s", arg);
		else
			fprintf(stderr, "flowq: '%s' is not table, csv, tsv, json or ndjson\n", arg);
	} else if (!strcmp(cmd, ".timeout")) {
		if (!arg) {
			printf("%s\n", o->timeout ? o->timeout : "off");
		} else if (!strcmp(arg, "off")) {
			o->timeout = NULL;
		} else if (positive_number(arg, false)) {
			snprintf(timeout_buf, tlen, "%s", arg);
			o->timeout = timeout_buf;
		} else {
			fprintf(stderr, "flowq: '%s' is not a number of seconds\n", arg);
		}
	} else if (!strcmp(cmd, ".help")) {
		shell_help();
	} else {
		fprintf(stderr, "flowq: unknown command '%s'; .help lists them\n", cmd);
	}
	return true;
}

/* The statement ends when a line ends with ';'. */
static bool ends_statement(const char *line)
{
	size_t n = strlen(line);

	while (n && strchr(" \t\r\n", line[n - 1]))
		n--;
	return n && line[n - 1] == ';';
}

static void remember(const char *stmt)
{
	char *one = strdup(stmt);

	if (!one)
		return;
	size_t n = strlen(one);

	while (n && strchr(" \t\r\n", one[n - 1]))
		one[--n] = 0;
	for (char *p = one; *p; p++)
		if (*p == '\n')
			*p = ' ';
	add_history(one);
	free(one);
}

static int shell(struct opts *o)
{
	char *hist = history_path(), *stmt = NULL, timeout_buf[32];
	size_t len = 0;

	using_history();
	stifle_history(HISTORY_MAX);
	if (hist)
		read_history(hist);
	printf("flowq %s: SQL on %s; end statements with ';', .help for more\n",
	       FLOWSTORE_VERSION, o->socket);
	for (;;) {
		char *line = readline(len ? "   ...> " : "flowq> ");
		char *grown;

		if (!line) {
			putchar('\n');
			break;
		}
		if (!len && line[strspn(line, " \t")] == '.') {
			bool go_on;

			add_history(line);
			go_on = shell_command(o, line + strspn(line, " \t"), timeout_buf,
					      sizeof(timeout_buf));
			free(line);
			if (!go_on)
				break;
			continue;
		}
		if (!len && blank(line)) {
			free(line);
			continue;
		}
		grown = realloc(stmt, len + strlen(line) + 2);
		if (!grown) {
			free(line);
			break;
		}
		stmt = grown;
		len += (size_t)sprintf(stmt + len, "%s\n", line);
		if (ends_statement(line)) {
			remember(stmt);
			run_query(o, stmt, len, true);
			len = 0;
		}
		free(line);
	}
	free(stmt);
	if (hist && write_history(hist))
		fprintf(stderr, "flowq: cannot write %s\n", hist);
	free(hist);
	return EXIT_OK;
}

/* ---- flowq report -------------------------------------------------------------------- */

struct report_opts {
	struct opts q;          /* socket, format, timeout, max_rows as for a query */
	const char *name;
	const char *since, *until;
	bool list, sql;
};

/* A report's usage error: one line (cron mails it whole). */
__attribute__((format(printf, 1, 2))) static int report_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("flowq: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_USAGE;
}

static void report_usage(FILE *f)
{
	fputs("usage: flowq report NAME [--since D] [--until D] [OPTION]...\n"
	      "       flowq report --list\n"
	      "Run one of the reports compiled into flowq over the window [since, until),\n"
	      "reading the coarsest tables that hold it (docs/reports.md).\n"
	      "\n"
	      "  --list               the reports, one line each\n"
	      "  --since D            start of the window (default 1d): a duration ago (1d,\n"
	      "                       7d, 90m), an ISO time (2024-01-08T12:00:00Z), or ns\n"
	      "                       since the epoch\n"
	      "  --until D            end of the window, excluded (default now)\n"
	      "  -F, --format F       table (default), csv, tsv, json or ndjson\n"
	      "  -s, --socket PATH    the query socket (as for flowq queries)\n"
	      "  -t, --timeout S      give up after S seconds\n"
	      "  -n, --max-rows N     stop after N rows\n"
	      "      --sql            print the SQL the report would run, and stop\n"
	      "  -h, --help           this text\n"
	      "\n"
	      "Exit: 0 ok, 1 the report failed (or needs raw rows the store no longer\n"
	      "keeps), 2 usage, 3 flowstored not reachable or the result broke off.\n",
	      f);
}

/* Whether argv asks for `flowq report`: its first operand is "report".
 * Options before it are skipped with their values. */
static bool wants_report(int argc, char **argv)
{
	static const char *const with_value[] = { "-s", "--socket", "-F", "--format", "-t",
						  "--timeout", "-n", "--max-rows", "-f", "--file",
						  "--since", "--until" };

	for (int i = 1; i < argc; i++) {
		bool skip = false;

		if (!strcmp(argv[i], "--"))
			return i + 1 < argc && !strcmp(argv[i + 1], "report");
		if (argv[i][0] != '-' || !argv[i][1])
			return !strcmp(argv[i], "report");
		for (size_t k = 0; k < sizeof(with_value) / sizeof(with_value[0]); k++)
			skip |= !strcmp(argv[i], with_value[k]);
		i += skip;
	}
	return false;
}

static int64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* D: ns since the epoch (digits only), a duration before now, or an ISO time. */
static int parse_when(const char *flag, const char *text, int64_t now, int64_t *ns)
{
	int64_t d;

	if (*text && strspn(text, "0123456789") == strlen(text) && strlen(text) <= 19) {
		*ns = strtoll(text, NULL, 10);
		return 0;
	}
	if (qfunc_parse_duration(text, &d) == 0 && d >= 0 && d <= now) {
		*ns = now - d;
		return 0;
	}
	if (qfunc_parse_time(text, ns) == 0)
		return 0;
	return report_usage_error("%s: '%s' is not a duration (1d, 90m), an ISO time "
				  "(2024-01-08T12:00:00Z) or ns since the epoch", flag, text);
}

static int parse_report_args(int argc, char **argv, struct report_opts *o)
{
	enum { OPT_LIST = 1000, OPT_SINCE, OPT_UNTIL, OPT_SQL };
	static const struct option longopts[] = {
		{ "socket", required_argument, 0, 's' },
		{ "format", required_argument, 0, 'F' },
		{ "timeout", required_argument, 0, 't' },
		{ "max-rows", required_argument, 0, 'n' },
		{ "since", required_argument, 0, OPT_SINCE },
		{ "until", required_argument, 0, OPT_UNTIL },
		{ "list", no_argument, 0, OPT_LIST },
		{ "sql", no_argument, 0, OPT_SQL },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	int c, operands = 0;

	memset(o, 0, sizeof(*o));
	snprintf(o->q.format, sizeof(o->q.format), "%s", DEFAULT_FORMAT);
	o->since = "1d";
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":s:F:t:n:h", longopts, NULL)) != -1) {
		switch (c) {
		case 's': o->q.socket = optarg; break;
		case 'F':
			if (!valid_format(optarg))
				return report_usage_error("--format: '%s' is not table, csv, "
							  "tsv, json or ndjson", optarg);
			snprintf(o->q.format, sizeof(o->q.format), "%s", optarg);
			break;
		case 't':
			if (!positive_number(optarg, false))
				return report_usage_error("--timeout: '%s' is not a number of "
							  "seconds greater than 0", optarg);
			o->q.timeout = optarg;
			break;
		case 'n':
			if (!positive_number(optarg, true))
				return report_usage_error("--max-rows: '%s' is not a whole "
							  "number greater than 0", optarg);
			o->q.max_rows = optarg;
			break;
		case OPT_SINCE: o->since = optarg; break;
		case OPT_UNTIL: o->until = optarg; break;
		case OPT_LIST: o->list = true; break;
		case OPT_SQL: o->sql = true; break;
		case 'h': o->q.help = true; break;
		case ':': return report_usage_error("option '%s' needs a value", argv[optind - 1]);
		default: return report_usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	for (; optind < argc; optind++, operands++) {
		if (operands == 0)
			continue; /* "report" */
		if (operands > 1)
			return report_usage_error("report: one report name; unexpected '%s'",
						  argv[optind]);
		o->name = argv[optind];
	}
	if (!o->q.help && !o->list && !o->name)
		return report_usage_error("report: which one? 'flowq report --list' lists them");
	if (o->list && o->name)
		return report_usage_error("report: --list takes no report name");
	if (!o->q.socket)
		o->q.socket = default_socket();
	return 0;
}

static int list_reports(void)
{
	char err[256];

	for (size_t i = 0; i < report_count(); i++) {
		struct report r;

		if (report_load(i, &r, err, sizeof(err))) {
			fprintf(stderr, "flowq: %s\n", err);
			return EXIT_QUERY;
		}
		printf("%-26s %s\n", r.name, r.summary);
		report_free(&r);
	}
	return EXIT_OK;
}

struct membuf {
	char *p;
	size_t len, cap;
};

static int to_mem(void *ctx, const void *buf, size_t len)
{
	struct membuf *m = ctx;

	if (m->len + len + 1 > m->cap) {
		size_t cap = (m->len + len + 1) * 2;
		char *p = realloc(m->p, cap);

		if (!p)
			return 1;
		m->p = p;
		m->cap = cap;
	}
	memcpy(m->p + m->len, buf, len);
	m->len += len;
	m->p[m->len] = 0;
	return 0;
}

/* What the data dir holds (report_tiers), asked through the socket. */
static int fetch_tiers(const struct opts *o, struct report_tiers *t)
{
	struct membuf m = { 0 };
	int rc = exchange_to(o, "POST", "/query?format=csv", REPORT_TIERS_SQL,
			     strlen(REPORT_TIERS_SQL), false, to_mem, &m);

	if (rc == EXIT_OK && report_tiers_parse(m.p ? m.p : "", m.len, t)) {
		fprintf(stderr, "flowq: flowstored's partitions table answered what flowq does "
			"not understand: %.200s\n", m.p ? m.p : "");
		rc = EXIT_QUERY;
	}
	free(m.p);
	return rc;
}

/* "-- flows_1h for [a, b), raw rows for [b, c)": what --sql prints first. */
static void print_plan(const struct report_plan *p)
{
	char a[QFUNC_TIME_MAX], b[QFUNC_TIME_MAX], c[QFUNC_TIME_MAX];
	int64_t cut = p->rollup ? p->split : INT64_MIN;

	qfunc_format_time(p->lo, 0, a, sizeof(a));
	qfunc_format_time(p->hi, 0, c, sizeof(c));
	if (!p->rollup || cut <= p->lo) {
		printf("-- raw rows for [%s, %s)\n", a, c);
	} else if (cut >= p->hi) {
		printf("-- %s for [%s, %s)\n", p->rollup, a, c);
	} else {
		qfunc_format_time(cut, 0, b, sizeof(b));
		printf("-- %s for [%s, %s), raw rows for [%s, %s)\n", p->rollup, a, b, b, c);
	}
}

static int run_report(struct report_opts *o)
{
	struct report r;
	struct report_tiers t;
	struct report_plan plan;
	int64_t now = now_ns(), since, until = now;
	char err[512], *sql = NULL;
	int rc;

	if (parse_when("--since", o->since, now, &since) ||
	    (o->until && parse_when("--until", o->until, now, &until)))
		return EXIT_USAGE;
	if (report_find(o->name, &r, err, sizeof(err)))
		return report_usage_error("%s", err);
	if (since >= until) {
		report_free(&r);
		return report_usage_error("the window is empty: --since must be before --until");
	}
	rc = fetch_tiers(&o->q, &t);
	if (rc == EXIT_OK && report_plan(&r, since, until, &t, &plan, err, sizeof(err))) {
		fprintf(stderr, "flowq: %s\n", err);
		rc = EXIT_QUERY;
	}
	if (rc == EXIT_OK && report_sql(&r, &plan, &sql, err, sizeof(err))) {
		fprintf(stderr, "flowq: %s\n", err);
		rc = EXIT_QUERY;
	}
	if (rc == EXIT_OK && o->sql) {
		print_plan(&plan);
		printf("%s\n", sql);
	} else if (rc == EXIT_OK) {
		rc = run_query(&o->q, sql, strlen(sql), false);
	}
	free(sql);
	report_free(&r);
	return rc;
}

static int report_main(int argc, char **argv)
{
	struct report_opts o;
	int rc = parse_report_args(argc, argv, &o);

	if (rc)
		return rc;
	if (o.q.help) {
		report_usage(stdout);
		return EXIT_OK;
	}
	if (o.list)
		return list_reports();
	return run_report(&o);
}

int main(int argc, char **argv)
{
	struct opts o;
	int rc;

	if (wants_report(argc, argv))
		return report_main(argc, argv);
	rc = parse_args(argc, argv, &o);

	if (rc)
		return rc;
	if (o.help) {
		usage(stdout);
		return EXIT_OK;
	}
	if (o.version) {
		printf("flowq %s\n", FLOWSTORE_VERSION);
		return EXIT_OK;
	}
	if (o.tables)
		return list_tables(&o, false);
	if (o.sql) {
		if (blank(o.sql))
			return usage_error("no SQL");
		return run_query(&o, o.sql, strlen(o.sql), false);
	}
	if (o.file)
		return run_from(&o, o.file);
	if (!isatty(STDIN_FILENO))
		return run_from(&o, "-");
	return shell(&o);
}
