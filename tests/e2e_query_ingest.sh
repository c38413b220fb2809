#!/usr/bin/env bash
# Queries never get in the way of writing: with the synthetic source at full
# speed (as fast as the writer commits), ten seconds of back-to-back queries
# from two clients — counts, ORDER BY ts DESC LIMIT, aggregates over the
# live partition, the partitions and stats tables — all succeed (no error,
# no SQLITE_BUSY, no 503), rows keep being written meanwhile, and nothing is
# dropped.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/query_lib.sh"
test_dir

D="$T/d"
S="$D/flowstore.sock"
start_daemon "$T/d.log" "$S" --data "$D" --source synthetic --partition-rows 200000
pid=$DAEMON

QUERIES=(
	"SELECT count(*) FROM flows"
	"SELECT ts, proto, orig_addr, resp_addr, resp_port FROM flows ORDER BY ts DESC LIMIT 10"
	"SELECT proto, count(*), sum(orig_bytes) FROM flows WHERE ts > ago('5s') GROUP BY proto"
	"SELECT direction, count(*) FROM connections GROUP BY direction"
	"SELECT count(*) FROM tcp_states WHERE new_state = 'ESTABLISHED'"
	"SELECT name, status, flows FROM partitions"
	"SELECT name, labels, value FROM stats WHERE name = 'rows_written'"
)

# client N: queries for 10 s; prints how many ran; stops at the first failure.
client() {
	local n=0 end=$((SECONDS + 10)) q
	while [ $SECONDS -lt $end ]; do
		for q in "${QUERIES[@]}"; do
			if ! "$FLOWQ" --socket "$S" --format csv "$q" >"$T/out.$1" 2>"$T/err.$1"; then
				echo "FAILED: $q: $(cat "$T/err.$1")"
				return 1
			fi
			n=$((n + 1))
		done
	done
	echo "$n"
}

rows0=$(metric "$S" 'flowstore_rows_written{table="flows"}')
client 1 >"$T/c1" &
c1=$!
client 2 >"$T/c2" &
c2=$!
wait "$c1" || fail "client 1: $(cat "$T/c1")"
wait "$c2" || fail "client 2: $(cat "$T/c2")"
rows1=$(metric "$S" 'flowstore_rows_written{table="flows"}')
grep -q 'BUSY\|locked' "$T"/err.* && fail "SQLITE_BUSY: $(cat "$T"/err.*)"
[ "$(metric "$S" 'flowstore_queries_total{outcome="busy"}')" = 0 ] || fail "503 busy"
stop_daemon "$pid"
dropped=$(stat_value "$T/d.log" events_dropped)
echo "e2e_query_ingest: $(cat "$T/c1") + $(cat "$T/c2") queries in 10 s;" \
	"$((rows1 - rows0)) flow rows written meanwhile; events_dropped=$dropped"
[ "$((rows1 - rows0))" -gt 10000 ] || fail "writing stalled: $((rows1 - rows0)) flow rows in 10 s"
[ "$(cat "$T/c1")" -gt 20 ] && [ "$(cat "$T/c2")" -gt 20 ] || fail "too few queries ran"
[ "$dropped" = 0 ] || fail "events dropped: $dropped"
[ "$(stat_value "$T/d.log" write_errors)" = 0 ] || fail "write errors"
echo "e2e_query_ingest: ok"
