#!/usr/bin/env bash
# Shutdown loses nothing and writes nothing twice:
#  1. --count K: exactly K events in, K rows on disk, counters agree.
#  2. SIGTERM while rows still sit in a batch (huge --batch-ms): exit 0,
#     every event the daemon took in is on disk, once.
. "$(dirname "$0")/lib.sh"
test_dir

check_consistent() { # DIR LOG
	local t in written rows meta
	for t in flows connections tcp_states; do
		in=$(stat_value "$2" "events_in_$t")
		written=$(stat_value "$2" "rows_written_$t")
		rows=$(sum_rows "$1" "$t")
		meta=$(sum_meta "$1" "$t")
		[ -n "$in" ] || fail "no stats line in $2"
		[ "$in" = "$written" ] && [ "$written" = "$rows" ] && [ "$rows" = "$meta" ] ||
			fail "$t: events_in=$in rows_written=$written rows=$rows meta=$meta"
	done
	[ "$(stat_value "$2" events_dropped)" = 0 ] || fail "events dropped"
	[ "$(stat_value "$2" rows_lost)" = 0 ] || fail "rows lost"
	# No row twice: sockets are unique per connection, and per transition.
	for f in "$1"/raw-*.db; do
		sqlite3 "file:$f?mode=ro" "SELECT sock_cookie FROM connections" >>"$T/cookies"
		sqlite3 "file:$f?mode=ro" "SELECT sock_cookie, new_state FROM tcp_states" >>"$T/transitions"
	done
	[ -z "$(sort "$T/cookies" | uniq -d)" ] || fail "a connection was written twice"
	[ -z "$(sort "$T/transitions" | uniq -d)" ] || fail "a transition was written twice"
	rm -f "$T/cookies" "$T/transitions"
}

K=25000
"$FLOWSTORED" --data "$T/a" --source synthetic:50000 --count $K --partition-rows 10000 2>"$T/a.log" ||
	fail "exit $? with --count: $(tail -n 5 "$T/a.log")"
total=0
for t in flows connections tcp_states; do
	total=$((total + $(sum_rows "$T/a" $t)))
done
[ "$total" = $K ] || fail "--count $K wrote $total rows"
check_consistent "$T/a" "$T/a.log"
ls "$T/a"/raw-*.db | wc -l | grep -qx 3 || fail "row cap 10000 over $K rows should give 3 partitions: $(ls "$T/a")"

"$FLOWSTORED" --data "$T/b" --source synthetic:5000 --batch-ms 60000 --batch-rows 1000000 2>"$T/b.log" &
pid=$!
cleanup_hook() { kill -9 "$pid" 2>/dev/null || true; }
sleep 2
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 0 ] || fail "SIGTERM: exit $rc: $(tail -n 5 "$T/b.log")"
in=$(stat_value "$T/b.log" events_in_tcp_states)
[ "$in" -gt 1000 ] || fail "only $in events in two seconds at 5000/s"
check_consistent "$T/b" "$T/b.log"
echo "e2e_shutdown: ok"
