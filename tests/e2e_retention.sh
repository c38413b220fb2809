#!/usr/bin/env bash
# Retention in the daemon, for real: the synthetic source writing fast into
# small partitions under --max-disk; the data dir never grows past the limit
# plus one partition (the open one, with its WAL), every removed partition
# was rolled up first, and each row is counted exactly once in flows_1m and
# flows_1h. Then a kill -9 in the middle of it all, a restart that sweeps
# what was interrupted, and `flowstored retention --dry-run` against the
# real run.
. "$(dirname "$0")/lib.sh"
test_dir
command -v sqlite3 >/dev/null || skip "sqlite3 (the shell) is not installed"
D="$T/data"
LIMIT=$((72 * 1024 * 1024))

# files_bytes DIR [FIND TESTS...]: bytes (allocated, as du counts them)
# of DIR's files that pass the tests (all files without any).
files_bytes() {
	local dir=$1
	shift
	{ find "$dir" -maxdepth 1 -type f "$@" -printf '%b\n' 2>/dev/null || true; } |
		awk '{ s += $1 * 512 } END { print s + 0 }'
}

# Bytes of everything in the dir.
dir_bytes() { files_bytes "$1"; }

# The largest raw partition with its side files seen so far, bytes.
biggest_partition() {
	local f b max=0
	for f in "$1"/raw-*.db; do
		[ -e "$f" ] || continue
		b=$(files_bytes "$1" -name "$(basename "$f")*")
		[ "$b" -gt "$max" ] && max=$b
	done
	echo "$max"
}

# sum_rollup DIR KIND COLUMN: the column summed over every rollup file of KIND.
sum_rollup() { sum_sql "$1" "$2-*.db" "SELECT ifnull(sum($3), 0) FROM flows_$2"; }

# Rows of TABLE in the raw partitions that are not sealed (not rolled up).
unsealed_rows() {
	sum_sql "$1" 'raw-*.db' "SELECT CASE (SELECT sealed FROM meta) WHEN 1 THEN 0 ELSE (SELECT count(*) FROM $2) END"
}

# assert_exact DIR FLOWS CONNECTIONS: every row written (FLOWS flows and
# CONNECTIONS connections in all) is either in an unsealed partition or
# counted once in flows_1m and once in flows_1h.
assert_exact() {
	local table written open kind got
	for table in flows connections; do # each is also the rollups' column of its count
		written=$([ $table = flows ] && echo "$2" || echo "$3")
		open=$(unsealed_rows "$1" "$table")
		for kind in 1m 1h; do
			got=$(sum_rollup "$1" $kind "$table")
			[ "$got" = $((written - open)) ] ||
				fail "sum($table) over flows_$kind is $got; $written $table written, $open in unsealed partitions"
		done
	done
	[ "$(sum_rollup "$1" 1m orig_bytes)" = "$(sum_rollup "$1" 1h orig_bytes)" ] ||
		fail "1m and 1h disagree on bytes"
}

run_daemon() { # SECONDS LOG
	"$FLOWSTORED" --data "$D" --source synthetic:40000 --partition-rows 40000 \
		--max-disk "$LIMIT" --retention-interval 1s --no-query 2>"$2" &
	pid=$!
	local max=0 part=0 b p end=$((SECONDS + $1))
	while [ $SECONDS -lt $end ]; do
		b=$(dir_bytes "$D")
		p=$(biggest_partition "$D")
		[ "$b" -gt "$max" ] && max=$b
		[ "$p" -gt "$part" ] && part=$p
		sleep 0.1
	done
	peak=$max
	peak_part=$part
}
cleanup_hook() { kill -9 "${pid:-0}" 2>/dev/null || true; }

# 1. A clean run: bounded, and exact.
run_daemon 16 "$T/run1.log"
kill -TERM "$pid"
wait "$pid" || fail "the daemon exited $?: $(tail -n 5 "$T/run1.log")"
[ "$peak" -le $((LIMIT + peak_part)) ] ||
	fail "the data dir reached $peak bytes: more than $LIMIT + one partition ($peak_part)"
removed=$(stat_value "$T/run1.log" files_removed_raw)
[ "${removed:-0}" -ge 3 ] || fail "retention removed ${removed:-0} raw partitions; want several: $(grep retention "$T/run1.log" | tail -n 3)"
[ "$(stat_value "$T/run1.log" retention_errors)" = 0 ] || fail "retention failed: $(grep -i error "$T/run1.log" | head)"
grep -q 'retention: removed raw-.*max-disk' "$T/run1.log" || fail "removals are not logged"
# The limit leaves room for the rollups: only raw partitions went, so the
# rollups below must hold every row ever written.
[ "$(stat_value "$T/run1.log" files_removed_1m)$(stat_value "$T/run1.log" files_removed_1h)" = 00 ] ||
	fail "rollup files were removed: the test's limit is too small for its rollups"

"$FLOWSTORED" retention --data "$D" --max-disk "$LIMIT" >"$T/manual.out" ||
	fail "flowstored retention: exit $?"
assert_exact "$D" "$(stat_value "$T/run1.log" rows_written_flows)" \
	"$(stat_value "$T/run1.log" rows_written_connections)"

# 2. kill -9 in the middle, then a restart: what was interrupted is redone
#    or swept, and nothing of ours is left half-made.
run_daemon 6 "$T/run2.log"
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
"$FLOWSTORED" --data "$D" --source synthetic:40000 --count 20000 --partition-rows 40000 \
	--max-disk "$LIMIT" --no-query 2>"$T/run3.log" || fail "restart: exit $?: $(tail -n 5 "$T/run3.log")"
[ "$(stat_value "$T/run3.log" retention_errors)" = 0 ] || fail "retention failed after kill -9"
leftovers=$(find "$D" -maxdepth 1 -name '.*.tmp*' | wc -l)
[ "$leftovers" = 0 ] || fail "temporary files left: $(ls -a "$D")"
for f in "$D"/*-wal "$D"/*-journal; do
	[ -e "$f" ] || continue
	[ -e "${f%-*}" ] || fail "side file without its partition: $f"
done
for f in "$D"/1m-*.db "$D"/1h-*.db; do
	dup=$(sqlite3 "file:$f?mode=ro" "SELECT count(*) - count(DISTINCT source) FROM rolled")
	[ "$dup" = 0 ] || fail "$f counts a partition twice"
	[ "$(sqlite3 "file:$f?mode=ro" 'PRAGMA integrity_check')" = ok ] || fail "$f is damaged"
done

# 3. The dry run says exactly what the real run then does, and changes nothing.
#    First a run with no limit, so that sealed raw partitions are there to
#    plan for whatever the runs above left.
"$FLOWSTORED" --data "$D" --source synthetic:40000 --count 40000 --partition-rows 10000 \
	--no-query 2>"$T/run4.log" || fail "run 4: exit $?: $(tail -n 5 "$T/run4.log")"
echo "my notes" >"$D/notes.txt"
before=$(ls -l --time-style=full-iso "$D" | sort)
"$FLOWSTORED" retention --data "$D" --max-disk 4M --dry-run >"$T/dry.out" || fail "dry run: exit $?"
after=$(ls -l --time-style=full-iso "$D" | sort)
[ "$after" = "$before" ] || fail "the dry run changed the data dir: $(diff <(echo "$before") <(echo "$after"))"
grep -q 'would remove raw-' "$T/dry.out" || fail "the dry run plans nothing: $(cat "$T/dry.out")"
"$FLOWSTORED" retention --data "$D" --max-disk 4M >"$T/real.out" || fail "real run: exit $?"
diff <(grep -o '^would remove [^ ]*' "$T/dry.out" | cut -d' ' -f3) \
	<(grep -o '^removed [^ ]*' "$T/real.out" | cut -d' ' -f2) || fail "the dry run and the real run differ: $(cat "$T/dry.out") --- $(cat "$T/real.out")"
for f in $(grep -o '^removed [^ ]*' "$T/real.out" | cut -d' ' -f2); do
	[ ! -e "$D/$f" ] || fail "$f is still there"
done
[ "$(cat "$D/notes.txt")" = "my notes" ] || fail "a foreign file was touched"

# 4. Runs in one period with retention removing rolled-up partitions in
#    between: a partition's name is its mark in the rollups' `rolled`
#    tables, so a later run must not give a removed partition's name again
#    (its rows would count as rolled up already and be removed unrolled).
#    Between runs, retention keeps the rollups and the unsealed partition and
#    removes every sealed raw one: --max-disk just above what it keeps. (Runs
#    that straddle an hour boundary test less, and still must pass.)
D2="$T/data2"
flows=0
conns=0
for run in a b c; do
	"$FLOWSTORED" --data "$D2" --source synthetic:40000 --count 30000 --partition-rows 10000 \
		--no-query 2>"$T/run5$run.log" || fail "run 5$run: exit $?: $(tail -n 5 "$T/run5$run.log")"
	flows=$((flows + $(stat_value "$T/run5$run.log" rows_written_flows)))
	conns=$((conns + $(stat_value "$T/run5$run.log" rows_written_connections)))
	keep=$(files_bytes "$D2" \( -name '1[mh]-*' -o -name 'raw-*' -perm -u=w \))
	"$FLOWSTORED" retention --data "$D2" --max-disk $((keep * 10 / 9 + 65536)) >"$T/trim$run.out" ||
		fail "retention after run 5$run: exit $?"
	grep -q '^removed raw-' "$T/trim$run.out" || fail "retention removed nothing: $(cat "$T/trim$run.out")"
	grep -q '^removed 1[mh]-' "$T/trim$run.out" && fail "a rollup file went: $(cat "$T/trim$run.out")"
	assert_exact "$D2" "$flows" "$conns"
done
echo "e2e_retention: ok"
