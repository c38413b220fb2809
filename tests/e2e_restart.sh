#!/usr/bin/env bash
# A start seals every partition an earlier run left open (here: a run killed
# with -9 in the middle of writing), leaves foreign and broken files alone,
# and a sealed partition reads as plain rows in the stock sqlite3 shell.
. "$(dirname "$0")/lib.sh"
test_dir
D="$T/data"

"$FLOWSTORED" --data "$D" --source synthetic:30000 --partition-rows 20000 2>"$T/killed.log" &
pid=$!
cleanup_hook() { kill -9 "$pid" 2>/dev/null || true; }
for _ in $(seq 100); do
	[ "$(ls "$D"/raw-*.db 2>/dev/null | wc -l)" -ge 2 ] && break
	sleep 0.1
done
sleep 0.5
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
left_open=$(for f in "$D"/raw-*.db; do sqlite3 "file:$f?mode=ro" "SELECT sealed FROM meta"; done | grep -c '^0$' || true)
[ "$left_open" -ge 1 ] || fail "the killed run left nothing open to test with"

echo "my notes" >"$D/notes.txt"
echo "garbage, not SQLite" >"$D/raw-20260101T000000Z-0000.db"
cp "$D/raw-20260101T000000Z-0000.db" "$T/broken.orig"

"$FLOWSTORED" --data "$D" --source synthetic:10000 --count 100 2>"$T/restart.log" ||
	fail "restart: exit $?: $(tail -n 5 "$T/restart.log")"
grep -q "raw-20260101T000000Z-0000.db is not a readable partition" "$T/restart.log" ||
	fail "the broken file was not reported"
grep -q "1 files in $D are not flowstore partitions" "$T/restart.log" || fail "the foreign file was not reported"
cmp -s "$D/raw-20260101T000000Z-0000.db" "$T/broken.orig" || fail "the broken file was changed"
[ "$(cat "$D/notes.txt")" = "my notes" ] || fail "the foreign file was changed"

newest=$(ls "$D"/raw-2*.db | grep -v 20260101T000000Z | tail -n 1)
for f in "$D"/raw-*.db; do
	[ "$f" = "$D/raw-20260101T000000Z-0000.db" ] && continue
	[ "$f" = "$newest" ] && continue
	[ "$(sqlite3 "file:$f?mode=ro" 'SELECT sealed FROM meta')" = 1 ] || fail "$f was not sealed"
	[ "$(stat -c %a "$f")" = 444 ] || fail "$f is writable after sealing"
	[ ! -e "$f-wal" ] || fail "$f kept its WAL"
	idx=$(sqlite3 "file:$f?immutable=1" "SELECT count(*) FROM sqlite_master WHERE type='index' AND name LIKE 'flows_%'")
	[ "$idx" -ge 4 ] || fail "$f has $idx flows indexes"
done

# What a person sees with the stock shell.
sealed=$(ls "$D"/raw-2*.db | grep -v 20260101T000000Z | head -n 1)
out=$(sqlite3 -readonly "$sealed" "SELECT proto, orig_addr, resp_port, conn_state FROM flows WHERE proto='tcp' LIMIT 1")
echo "$out" | grep -Eq '^tcp\|([0-9]+\.){3}[0-9]+\|[0-9]+\|S[F0]|^tcp\|[0-9a-f:]+\|[0-9]+\|' ||
	fail "unexpected row from the sqlite3 shell: $out"
[ "$(sqlite3 -readonly "$sealed" "SELECT count(*) FROM flows WHERE ts < 1700000000000000000 OR ts > ts_end")" = 0 ] ||
	fail "times are not UTC nanoseconds"
echo "e2e_restart: ok"
