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

# sum_meta DIR TABLE: rows recorded in every partition's metadata.
sum_meta() {
	local total=0 n f
	for f in "$1"/raw-*.db; do
		[ -e "$f" ] || continue
		n=$(sqlite3 "file:$f?mode=ro" "SELECT rows FROM meta_tables WHERE name='$2'")
		total=$((total + n))
	done
	echo "$total"
}

# sum_rows DIR TABLE: rows actually in every partition's table.
sum_rows() {
	local total=0 n f
	for f in "$1"/raw-*.db; do
		[ -e "$f" ] || continue
		n=$(sqlite3 "file:$f?mode=ro" "SELECT count(*) FROM $2")
		total=$((total + n))
	done
	echo "$total"
}

# stat_value LOGFILE KEY: the value of KEY=N in the last "stats:" line.
stat_value() {
	grep 'stats:' "$1" | tail -n 1 | tr ' ' '\n' | sed -n "s/^$2=//p"
}
