#!/usr/bin/env bash
# --record then --source replay: gives the same rows, byte for byte; a
# damaged recording replays its good prefix and fails with a clear error.
. "$(dirname "$0")/lib.sh"
test_dir

dump() { # DIR: every row of every table, in a stable order
	local f t
	for t in flows connections tcp_states; do
		for f in "$1"/raw-*.db; do
			sqlite3 -header "file:$f?mode=ro" "SELECT * FROM $t"
		done | sort
	done
}

"$FLOWSTORED" --data "$T/live" --source synthetic:40000 --count 20000 --seed 7 \
	--record "$T/run.rec" 2>"$T/live.log" || fail "recording run: $(tail -n 3 "$T/live.log")"
"$FLOWSTORED" --data "$T/replayed" --source replay:"$T/run.rec" 2>"$T/replay.log" ||
	fail "replay: $(tail -n 3 "$T/replay.log")"
dump "$T/live" >"$T/live.txt"
dump "$T/replayed" >"$T/replayed.txt"
[ "$(wc -l <"$T/live.txt")" -gt 20000 ] || fail "the dump is too small to mean anything"
cmp -s "$T/live.txt" "$T/replayed.txt" || fail "replay differs: $(diff "$T/live.txt" "$T/replayed.txt" | head -n 5)"

# Cut the recording in the middle of a frame.
size=$(stat -c %s "$T/run.rec")
head -c $((size / 2 + 3)) "$T/run.rec" >"$T/cut.rec"
rc=0
"$FLOWSTORED" --data "$T/cut" --source replay:"$T/cut.rec" 2>"$T/cut.log" || rc=$?
[ "$rc" = 1 ] || fail "a truncated recording: exit $rc"
grep -q "truncated frame at offset" "$T/cut.log" || fail "no reason given: $(cat "$T/cut.log")"
rows=$(( $(sum_rows "$T/cut" flows) + $(sum_rows "$T/cut" connections) + $(sum_rows "$T/cut" tcp_states) ))
[ "$rows" -gt 5000 ] && [ "$rows" -lt 20000 ] || fail "the good prefix was not kept: $rows rows"
echo "e2e_record_replay: ok"
