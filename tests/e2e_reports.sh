#!/usr/bin/env bash
# flowq report, every report, against a daemon serving the cookbook's data
# dir (make_fixture --cookbook; tests/fixture.h), in three states of it:
#  1. raw partitions only: each report over the day before the fixture's
#     "now" (W1 = [2024-01-07T12:00Z, 2024-01-08T12:00Z)) answers
#     tests/fixtures/reports/NAME.csv, worked out from the fixture's rows
#     (and checked with sqlite3 over them); each over W2 (7.5 days, whole
#     minutes, not whole hours) is kept for step 2 and 3;
#  2. every sealed partition rolled up (roll_fixture: what retention does
#     after a seal; the open one is not): the same answers, now read from
#     flows_1h (W1) and flows_1m (W2) plus raw rows for the hour not rolled
#     up yet (--sql shows the plan);
#  3. the raw partitions before 2024-01-08T03:00Z removed, as retention
#     would: reports over rollups still give the same answers; the two
#     "raw, else any" reports answer from rollups (NAME.rollup.csv); the
#     raw-only report refuses the window with a message, and answers one
#     within what raw partitions still hold.
# Plus --list against query/reports/, and usage errors (exit 2, one line).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/query_lib.sh"
test_dir

HERE="$(cd "$(dirname "$0")" && pwd)"
EXPECTED="$HERE/fixtures/reports"
REPORT_DIR="$HERE/../query/reports"
ROLL_FIXTURE="${ROLL_FIXTURE:-$(dirname "$MAKE_FIXTURE")/roll_fixture}"
[ -x "$ROLL_FIXTURE" ] || fail "$ROLL_FIXTURE is not built (cmake --build ... --target roll_fixture)"
W1=(--since 2024-01-07T12:00:00Z --until 2024-01-08T12:00:00Z)
W2=(--since 2024-01-01T00:30:00Z --until 2024-01-08T11:59:00Z)
RAW_ELSE_ANY="failed-connections port-scan-suspects"
RAW_ONLY="long-lived-connections"

"$MAKE_FIXTURE" --cookbook "$T/fx" || fail "make_fixture --cookbook"
S="$T/fx/flowstore.sock"
start_daemon "$T/fx.log" "$S" --data "$T/fx" --source none

report() { "$FLOWQ" -s "$S" report "$@"; }
same() { # OUT EXPECTED WHAT
	cmp -s "$1" "$2" || fail "$3: the answer is not $(basename "$2"):
$(diff "$2" "$1" | head -40)"
}
is_in() { case " $2 " in *" $1 "*) return 0 ;; esac; return 1; }

# --list: every file of query/reports/, with its one line, in name order.
report --list >"$T/list" || fail "flowq report --list: exit $?"
names=$(cd "$REPORT_DIR" && ls ./*.sql | sed 's|^\./||; s|\.sql$||')
[ "$(awk '{ print $1 }' "$T/list")" = "$names" ] ||
	fail "flowq report --list lists $(awk '{ print $1 }' "$T/list" | tr '\n' ' '), query/reports/ has $(echo $names)"
[ "$(echo "$names" | wc -l)" = 8 ] || fail "want 8 reports, query/reports/ has: $names"
while read -r name line; do
	[ -n "$line" ] || fail "flowq report --list: no description for $name"
	[ "$(head -n 1 "$REPORT_DIR/$name.sql")" = "-- $name: $line" ] ||
		fail "flowq report --list: '$name $line' is not the first line of $name.sql"
done <"$T/list"

# Usage errors: exit 2 and one line on stderr.
usage() { # WHAT ARGS...
	local what=$1 rc=0
	shift
	"$FLOWQ" -s "$S" "$@" >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" = 2 ] || fail "$what: exit $rc, want 2: $(cat "$T/err")"
	[ "$(wc -l <"$T/err")" = 1 ] || fail "$what: want one line on stderr: $(cat "$T/err")"
	[ ! -s "$T/out" ] || fail "$what: printed $(cat "$T/out")"
}
usage "no such report" report top-talker
grep -q "no report 'top-talker'" "$T/err" || fail "no such report: $(cat "$T/err")"
usage "no report name" report
usage "an unknown flag" report top-talkers --sinse 1d
usage "a bad --since" report top-talkers --since yesterday
grep -q -- "--since: 'yesterday'" "$T/err" || fail "a bad --since: $(cat "$T/err")"
usage "a bad --until" report top-talkers --until 2024-13-01
usage "a bad --format" report top-talkers --format xml
usage "two names" report top-talkers top-ports
usage "an empty window" report top-talkers --since 2024-01-08T00:00:00Z --until 2024-01-07T00:00:00Z

# As a cron job would run it, with the defaults (the last day, real time):
# it runs, whatever it finds.
for name in $names; do
	report "$name" --format csv >"$T/out" 2>"$T/err" || fail "$name with the defaults: $(cat "$T/err")"
	head -n 1 "$T/out" | grep -q , || fail "$name with the defaults: no CSV header: $(cat "$T/out")"
done

# 1. Raw partitions only.
for name in $names; do
	report "$name" "${W1[@]}" --format csv >"$T/out" 2>"$T/err" || fail "$name: $(cat "$T/err")"
	same "$T/out" "$EXPECTED/$name.csv" "$name over raw partitions"
	report "$name" "${W2[@]}" --format csv >"$T/$name.w2" 2>"$T/err" || fail "$name W2: $(cat "$T/err")"
	report "$name" "${W1[@]}" --sql >"$T/sql" || fail "$name --sql: exit $?"
	! grep -q 'flows_1[mh]' "$T/sql" || fail "$name reads rollups before there are any: $(cat "$T/sql")"
done
[ "$(grep -c . "$T/new-destinations.w2")" -gt 1 ] || fail "new-destinations over W2 found nothing"
# Other formats go to the server as the query's.
report top-ports "${W1[@]}" --format json >"$T/out" || fail "top-ports --format json: exit $?"
grep -qF '["tcp",873,20,1,1,53040000]' "$T/out" || fail "top-ports --format json: $(head -c 300 "$T/out")"
report top-ports "${W1[@]}" -F tsv >"$T/out" || fail "top-ports -F tsv: exit $?"
grep -q "^tcp	873	20	" "$T/out" || fail "top-ports -F tsv: $(head -c 300 "$T/out")"
report top-ports "${W1[@]}" >"$T/out" || fail "top-ports (table): exit $?"
grep -q "responders" "$T/out" || fail "top-ports (table): $(head -c 300 "$T/out")"
"$FLOWQ" -s "$S" --format ndjson report top-ports "${W1[@]}" >"$T/out" ||
	fail "flowq --format ndjson report: exit $?"
[ "$(wc -l <"$T/out")" = 16 ] || fail "flowq --format ndjson report top-ports: $(cat "$T/out")"

# 2. Rolled up (all but the open partition).
"$ROLL_FIXTURE" "$T/fx" >/dev/null || fail "roll_fixture"
rolled=$("$FLOWQ" -s "$S" -F csv "SELECT sum(rolled_up), count(*) FROM partitions WHERE kind = 'raw'" | tail -n 1 | tr -d '\r')
[ "$rolled" = "11,12" ] || fail "after roll_fixture, rolled_up/raw partitions: $rolled, want 11,12"
check_rolled() { # STATE
	local name
	for name in $names; do
		if is_in "$name" "$RAW_ELSE_ANY $RAW_ONLY"; then
			continue
		fi
		report "$name" "${W1[@]}" --format csv >"$T/out" 2>"$T/err" || fail "$name ($1): $(cat "$T/err")"
		same "$T/out" "$EXPECTED/$name.csv" "$name ($1)"
		report "$name" "${W1[@]}" --sql >"$T/sql"
		head -n 1 "$T/sql" | grep -q '^-- flows_1h for \[.*raw rows for \[2024-01-08T11:00:00Z, 2024-01-08T12:00:00Z)' ||
			fail "$name ($1): not flows_1h, then raw rows from 11:00: $(head -n 1 "$T/sql")"
		report "$name" "${W2[@]}" --format csv >"$T/out" 2>"$T/err" || fail "$name W2 ($1): $(cat "$T/err")"
		same "$T/out" "$T/$name.w2" "$name W2 ($1) against raw rows"
		report "$name" "${W2[@]}" --sql >"$T/sql"
		head -n 1 "$T/sql" | grep -q '^-- flows_1m for \[.*raw rows for \[2024-01-08T11:49:00Z, ' ||
			fail "$name W2 ($1): not flows_1m, then raw rows from 11:49: $(head -n 1 "$T/sql")"
	done
}
check_rolled "rolled up"
for name in $RAW_ELSE_ANY $RAW_ONLY; do # raw partitions hold the window: raw rows
	report "$name" "${W1[@]}" --format csv >"$T/out" 2>"$T/err" || fail "$name (rolled up): $(cat "$T/err")"
	same "$T/out" "$EXPECTED/$name.csv" "$name (rolled up)"
done

# 3. Raw partitions older than 2024-01-08T03:00Z removed (whole files).
for f in "$T"/fx/raw-*.db; do
	[[ "$(basename "$f")" < raw-20240108T030000Z ]] && rm -f "$f"
done
[ "$(ls "$T"/fx/raw-*.db | wc -l)" = 6 ] || fail "want 6 raw partitions left: $(ls "$T/fx")"
check_rolled "raw partitions removed"
for name in $RAW_ELSE_ANY; do
	report "$name" "${W1[@]}" --format csv >"$T/out" 2>"$T/err" || fail "$name (removed): $(cat "$T/err")"
	same "$T/out" "$EXPECTED/$name.rollup.csv" "$name over rollups"
	# a window raw partitions still hold: raw rows (every row of W1 is after 03:00)
	report "$name" --since 2024-01-08T03:00:00Z --until 2024-01-08T12:00:00Z --format csv >"$T/out" ||
		fail "$name from 03:00: exit $?"
	same "$T/out" "$EXPECTED/$name.csv" "$name from 03:00 (raw rows)"
done
rc=0
report long-lived-connections "${W1[@]}" --format csv >"$T/out" 2>"$T/err" || rc=$?
[ "$rc" = 1 ] || fail "long-lived-connections beyond raw retention: exit $rc, want 1"
grep -q "kept from 2024-01-08T03:00:00Z" "$T/err" ||
	fail "long-lived-connections beyond raw retention: $(cat "$T/err")"
report long-lived-connections --since 2024-01-08T03:00:00Z --until 2024-01-08T12:00:00Z \
	--format csv >"$T/out" || fail "long-lived-connections from 03:00: exit $?"
same "$T/out" "$EXPECTED/long-lived-connections.since-03.csv" "long-lived-connections from 03:00"

stop_daemon "$DAEMON"
echo "e2e_reports: ok ($(echo $names | wc -w) reports)"
