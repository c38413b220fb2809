# Shared helpers for the shell tests. Sourced; sets -eu.
set -euo pipefail
# Debian keeps ip, tc, sysctl and bpftool in the sbin directories.
export PATH="$PATH:/usr/sbin:/sbin"

: "${FLOWSTORED:?FLOWSTORED must name the flowstored binary}"
: "${FLOWSTORE_TEST_TMP:=/tmp/flowstore-tests}"

skip() {
	if [ "${CI:-}" = true ]; then
		echo "FAILED: cannot run under CI=true: $*" >&2
		exit 1
	fi
	echo "SKIPPED: $*" >&2
	exit 77
}

fail() {
	echo "FAILED: $*" >&2
	exit 1
}

# A fresh directory for this test, removed on exit.
test_dir() {
	mkdir -p "$FLOWSTORE_TEST_TMP"
	T=$(mktemp -d "$FLOWSTORE_TEST_TMP/$(basename "$0" .sh).XXXXXX")
	trap 'rc=$?; cleanup_hook; rm -rf "$T"; exit $rc' EXIT
}

cleanup_hook() { :; }

# sum_sql DIR PATTERN SQL: SQL's one integer summed over every file of DIR
# that PATTERN (a glob) matches, each opened read-only; 0 when none does.
sum_sql() {
	local total=0 n f
	for f in "$1"/$2; do
		[ -e "$f" ] || continue
		n=$(sqlite3 "file:$f?mode=ro" "$3")
		total=$((total + n))
	done
	echo "$total"
}

# sum_meta DIR TABLE: rows recorded in every partition's metadata.
sum_meta() { sum_sql "$1" 'raw-*.db' "SELECT rows FROM meta_tables WHERE name='$2'"; }

# sum_rows DIR TABLE: rows actually in every partition's table.
sum_rows() { sum_sql "$1" 'raw-*.db' "SELECT count(*) FROM $2"; }

# stat_value LOGFILE KEY: the value of KEY=N in the last "stats:" line.
stat_value() {
	grep 'stats:' "$1" | tail -n 1 | tr ' ' '\n' | sed -n "s/^$2=//p"
}
