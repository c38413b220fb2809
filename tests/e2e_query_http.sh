#!/usr/bin/env bash
# The query socket end to end, with curl, against the real daemon:
#  1. --source none on the fixture (tests/fixture.h): the socket file, every
#     endpoint, every format by GET and POST, the error statuses, the time
#     budget, the row cap, 503 when busy, a stalled client, clients that
#     leave mid-query, keep-alive.
#  2. --source synthetic with short partitions: live and sealed partitions
#     read as one table; SIGTERM with a query running exits at once; after
#     the stop the same counts as the files.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/query_lib.sh"
test_dir

"$MAKE_FIXTURE" "$T/fx" || fail "make_fixture"
S="$T/fx/flowstore.sock"
start_daemon "$T/fx.log" "$S" --data "$T/fx" --source none --query-workers 1 \
	--query-queue-wait 300ms --query-max-rows 4
fx=$DAEMON
U=http://flowstore

# The socket: 0660, a socket, ours.
[ "$(stat -c %a "$S")" = 660 ] || fail "socket mode $(stat -c %a "$S"), want 660"
[ -S "$S" ] || fail "$S is not a socket"
grep -q "queries on $S" "$T/fx.log" || fail "no 'queries on' line: $(cat "$T/fx.log")"
# A second daemon on the same socket (another data dir) is refused; the
# first keeps its socket.
mkdir "$T/other"
rc=0
"$FLOWSTORED" --data "$T/other" --source none --socket "$S" 2>"$T/other.log" || rc=$?
[ "$rc" = 1 ] || fail "a second daemon on a live socket: exit $rc"
grep -q "something answers on $S" "$T/other.log" || fail "second daemon: $(cat "$T/other.log")"
expect 200 '"status":"ok"' "$S" "$U/health"

# Every format, by POST and by GET, from the sealed and the open partition.
Q='SELECT ts, proto, comm FROM flows ORDER BY ts'
QU='SELECT+ts%2C+proto%2C+comm+FROM+flows+ORDER+BY+ts'
for f in table csv tsv json ndjson; do
	expect 200 "" "$S" "$U/query?format=$f" --data-binary "$Q"
	cp "$T/body" "$T/post.$f"
	expect 200 "" "$S" "$U/query?format=$f&sql=$QU"
	cmp -s "$T/body" "$T/post.$f" || [ $f = json ] || fail "GET and POST differ for $f"
done
grep -q '^Content-Type: text/csv; charset=utf-8; header=present' "$T/head" ||
	grep -qi '^content-type: application/x-ndjson' "$T/head" || fail "content type: $(cat "$T/head")"
[ "$(wc -l <"$T/post.csv")" = 6 ] || fail "csv: $(cat "$T/post.csv")"
grep -q '^1704067230000000005,tcp,"we,""ird"' "$T/post.csv" || fail "csv quoting: $(cat "$T/post.csv")"
grep -q '2024-01-01T01:00:05.000000000Z  icmp' "$T/post.table" || fail "table: $(cat "$T/post.table")"
[ "$(wc -l <"$T/post.ndjson")" = 5 ] || fail "ndjson: $(cat "$T/post.ndjson")"
grep -q '"comm":null' "$T/post.ndjson" || fail "ndjson NULL: $(cat "$T/post.ndjson")"

# The row cap (--query-max-rows 4): json and table are capped, csv is not.
expect 200 '"row_count":4,' "$S" "$U/query" --data-binary 'SELECT * FROM flows'
grep -q '"truncated":true' "$T/body" || fail "no truncated:true: $(cat "$T/body")"
grep -qi '^X-Flowstore-Truncated: true' "$T/head" || fail "no truncation header: $(cat "$T/head")"
expect 200 '(4 rows, truncated at 4)' "$S" "$U/query?format=table" --data-binary 'SELECT * FROM flows'
expect 200 "" "$S" "$U/query?format=csv" --data-binary 'SELECT * FROM flows'
[ "$(wc -l <"$T/body")" = 6 ] || fail "csv is capped: $(cat "$T/body")"
expect 200 '"truncated":true' "$S" "$U/query?max_rows=2" --data-binary 'SELECT * FROM flows'

# The other endpoints.
expect 200 '"name":"sock_cookie"' "$S" "$U/tables"
for t in flows connections tcp_states partitions stats; do
	grep -q "{\"name\":\"$t\",\"meaning\":" "$T/body" || fail "/tables lacks $t"
done
expect 200 '"rows_written_flows": 0' "$S" "$U/stats"
grep -q '"queries_total_ok": ' "$T/body" || fail "/stats lacks the server's counters"
expect 200 'flowstore_rows_written{table="flows"} 0' "$S" "$U/metrics"
grep -q '^# TYPE flowstore_query_duration_seconds histogram' "$T/body" || fail "no histogram"
grep -q '^flowstore_query_connections_open 1' "$T/body" || fail "connections_open"
ok0=$(metric "$S" 'flowstore_queries_total{outcome="ok"}')
req0=$(metric "$S" 'flowstore_query_requests_total{code="2xx"}')
expect 200 '' "$S" "$U/query" --data-binary 'SELECT 1'
[ "$(metric "$S" 'flowstore_queries_total{outcome="ok"}')" = $((ok0 + 1)) ] || fail "ok count did not move"
[ "$(metric "$S" 'flowstore_query_requests_total{code="2xx"}')" -ge $((req0 + 2)) ] ||
	fail "2xx count did not move"
expect 200 '"value":1' "$S" "$U/query?format=ndjson" --data-binary \
	"SELECT value FROM stats WHERE name = 'queries_running'"

# Errors, each with its status.
expect 400 '"code":"sql_error"' "$S" "$U/query" --data-binary 'SELEKT 1'
expect 403 '"code":"denied"' "$S" "$U/query" --data-binary "INSERT INTO flows(ts) VALUES (1)"
expect 403 '"code":"denied"' "$S" "$U/query" --data-binary "ATTACH '$T/x.db' AS x"
expect 404 '"code":"not_found"' "$S" "$U/nope"
expect 405 '' "$S" -X PUT "$U/query"
head -c $((2 << 20)) /dev/zero | tr '\0' ' ' >"$T/big.sql"
expect 413 '"code":"too_large"' "$S" "$U/query" --data-binary @"$T/big.sql"
expect 431 '"code":"headers_too_large"' "$S" "$U/health" -H "X-Big: $(head -c 20000 /dev/zero | tr '\0' a)"
expect 414 '"code":"uri_too_long"' "$S" "$U/query?sql=$(head -c 20000 /dev/zero | tr '\0' a)"
expect 400 'malformed' "$S" -X 'GE T' "$U/health"
expect 400 'format' "$S" "$U/query?format=xml" --data-binary 'SELECT 1'

# A runaway recursive CTE: 504 within its budget (timeout=1).
RUNAWAY='WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c'
t0=$(date +%s%N)
expect 504 '"code":"timeout"' "$S" "$U/query?timeout=1" --data-binary "$RUNAWAY"
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -ge 900 ] && [ "$ms" -lt 3000 ] || fail "timeout=1 answered after $ms ms"

# Too many queries (--query-workers 1, --query-queue-wait 300ms): 503 with
# Retry-After while a slow query holds the only slot.
curl -s --unix-socket "$S" -o /dev/null "$U/query?timeout=3" --data-binary "$RUNAWAY" &
slow=$!
for _ in $(seq 50); do
	[ "$(metric "$S" flowstore_queries_running)" = 1 ] && break
	sleep 0.1
done
expect 503 '"code":"busy"' "$S" "$U/query" --data-binary 'SELECT 1'
grep -qi '^Retry-After: 1' "$T/head" || fail "503 without Retry-After: $(cat "$T/head")"
wait "$slow" || true

# A client that sends half a request and stalls: 408 after the request
# timeout (10 s), and others are served meanwhile.
cancelled0=$(metric "$S" 'flowstore_queries_total{outcome="cancelled"}')
# (It says 100 bytes and sends 8.)
curl -s --unix-socket "$S" -o /dev/null -w '%{http_code}' -H 'Content-Length: 100' \
	--data-binary 'SELECT 1' "$U/query" >"$T/stalled.status" &
stalled=$!
t0=$(date +%s%N)
sleep 1
for _ in 1 2 3; do
	expect 200 '' "$S" "$U/query" --data-binary 'SELECT count(*) FROM connections'
done
wait "$stalled" || true
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$(cat "$T/stalled.status")" = 408 ] || fail "stalled client: '$(cat "$T/stalled.status")', want 408"
[ "$ms" -ge 8500 ] && [ "$ms" -lt 13000 ] || fail "the stalled client was answered after $ms ms, not 10 s"

# A client that leaves a silent query: stopped within a second.
curl -s --max-time 1 --unix-socket "$S" -o /dev/null "$U/query?timeout=30" \
	--data-binary "$RUNAWAY" || true
for _ in $(seq 20); do
	[ "$(metric "$S" 'flowstore_queries_total{outcome="cancelled"}')" = $((cancelled0 + 1)) ] && break
	sleep 0.1
done
[ "$(metric "$S" 'flowstore_queries_total{outcome="cancelled"}')" = $((cancelled0 + 1)) ] ||
	fail "the query of a client that left was not cancelled"
[ "$(metric "$S" flowstore_queries_running)" = 0 ] || fail "a query still runs"
# A client that leaves a huge result midway: the query stops too.
curl -s --unix-socket "$S" "$U/query?format=csv&timeout=30" --data-binary \
	'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x, hex(x) FROM c' |
	head -c 300000 >/dev/null || true
for _ in $(seq 30); do
	[ "$(metric "$S" 'flowstore_queries_total{outcome="cancelled"}')" = $((cancelled0 + 2)) ] && break
	sleep 0.1
done
[ "$(metric "$S" 'flowstore_queries_total{outcome="cancelled"}')" = $((cancelled0 + 2)) ] ||
	fail "the query of a client that left mid-stream was not cancelled"
expect 200 '"status":"ok"' "$S" "$U/health"

# Keep-alive: two requests on one connection.
curl -sv --unix-socket "$S" "$U/health" "$U/query?sql=SELECT+1" -o /dev/null -o /dev/null \
	2>"$T/keepalive" || fail "keep-alive: $(cat "$T/keepalive")"
grep -q 'Re-using existing connection' "$T/keepalive" || fail "no connection reuse: $(cat "$T/keepalive")"

stop_daemon "$fx"
[ ! -e "$S" ] || fail "the socket was left behind"
[ "$(ls "$T/fx"/raw-*.db | wc -l)" = 2 ] || fail "--source none changed the data dir: $(ls "$T/fx")"
sqlite3 "file:$T/fx/raw-20240101T010000Z-0000.db?mode=ro" 'SELECT sealed FROM meta' | grep -qx 0 ||
	fail "--source none sealed a partition"

# 2. Live and sealed partitions as one table.
D="$T/live"
S2="$T/live.sock"
start_daemon "$T/live.log" "$S2" --data "$D" --source synthetic:20000 --partition 2s --socket "$S2"
live=$DAEMON
for _ in $(seq 100); do
	expect 200 "" "$S2" "$U/query?format=csv" --data-binary \
		"SELECT count(*) FROM partitions WHERE status = 'sealed'"
	[ "$(tail -n 1 "$T/body" | tr -d '\r')" -ge 2 ] && break
	sleep 0.1
done
expect 200 "" "$S2" "$U/query?format=csv" --data-binary \
	"SELECT status, count(*) FROM partitions GROUP BY status ORDER BY status"
grep -q '^open,' "$T/body" && grep -q '^sealed,' "$T/body" || fail "partitions: $(cat "$T/body")"
expect 200 "" "$S2" "$U/query?format=csv" --data-binary \
	"SELECT count(*) FROM flows WHERE ts > ago('1h')"
[ "$(tail -n 1 "$T/body" | tr -d '\r')" -gt 1000 ] || fail "flows: $(cat "$T/body")"
expect 200 '(10 rows)' "$S2" "$U/query?format=table" --data-binary \
	'SELECT ts, proto, orig_addr, resp_addr FROM flows ORDER BY ts DESC LIMIT 10'
# A stop does not wait for a running query: SIGTERM cancels it.
curl -s --unix-socket "$S2" -o /dev/null "$U/query?timeout=30" --data-binary "$RUNAWAY" &
for _ in $(seq 50); do
	[ "$(metric "$S2" flowstore_queries_running)" = 1 ] && break
	sleep 0.1
done
t0=$(date +%s%N)
stop_daemon "$live"
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -lt 3000 ] || fail "SIGTERM with a query running took $ms ms"
grep -q 'events_dropped=0 ' "$T/live.log" || fail "events dropped: $(grep stats: "$T/live.log" | tail -n 1)"
# What the spanning tables count is what the files hold.
start_daemon "$T/copy.log" "$S2" --data "$D" --source none --socket "$S2"
for t in flows connections tcp_states; do
	expect 200 "" "$S2" "$U/query?format=csv" --data-binary "SELECT count(*) FROM $t"
	[ "$(tail -n 1 "$T/body" | tr -d '\r')" = "$(sum_rows "$D" $t)" ] ||
		fail "$t: the query counts $(tail -n 1 "$T/body"), the files hold $(sum_rows "$D" $t)"
done
stop_daemon "$DAEMON"
echo "e2e_query_http: ok"
