#!/usr/bin/env bash
# flowq against a daemon serving the fixture (tests/fixture.h):
#  - every format, byte for byte, against tests/fixtures/flowq/flows.<format>
#    (json's elapsed_ms, the one thing that varies, set to 0);
#  - SQL from the argument, -f FILE, -f -, and stdin;
#  - exit codes: 0 ok, 1 query error (the server's message as is),
#    2 usage, 3 no daemon / a result that broke off;
#  - the default socket ($FLOWSTORE_SOCKET, ./flowstore-data/flowstore.sock);
#  - --tables; the interactive shell on a pty (script(1)): continuation
#    lines, .format, .tables, .quit, the history file.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/query_lib.sh"
test_dir

EXPECTED="$(cd "$(dirname "$0")" && pwd)/fixtures/flowq"
"$MAKE_FIXTURE" "$T/fx" || fail "make_fixture"
S="$T/fx/flowstore.sock"
start_daemon "$T/fx.log" "$S" --data "$T/fx" --source none

Q='SELECT ts, proto, orig_addr, resp_addr, resp_port, orig_bytes, pid, comm FROM flows ORDER BY ts'

# flowq_rc CODE ARGS...: run flowq, stdout in $T/out, stderr in $T/err,
# and it must exit CODE.
flowq_rc() {
	local want=$1 rc=0
	shift
	"$FLOWQ" "$@" >"$T/out" 2>"$T/err" </dev/null || rc=$?
	[ "$rc" = "$want" ] || fail "flowq $*: exit $rc, want $want; stderr: $(cat "$T/err")"
}

same() { # FILE EXPECTED
	cmp -s "$1" "$2" || fail "$(basename "$2") differs:$(diff <(cat -A "$2") <(cat -A "$1") | head -20)"
}

for f in table csv tsv json ndjson; do
	flowq_rc 0 --socket "$S" --format $f "$Q"
	[ $f = json ] && sed -i -E 's/"elapsed_ms":[0-9.e+-]+/"elapsed_ms":0/' "$T/out"
	same "$T/out" "$EXPECTED/flows.$f"
	[ ! -s "$T/err" ] || fail "--format $f wrote to stderr: $(cat "$T/err")"
done
# table is the default, on a terminal or not.
flowq_rc 0 --socket "$S" "$Q"
same "$T/out" "$EXPECTED/flows.table"

# SQL from a file, from -f -, from stdin.
printf '%s\n' "$Q" >"$T/q.sql"
flowq_rc 0 -s "$S" -F csv -f "$T/q.sql"
same "$T/out" "$EXPECTED/flows.csv"
"$FLOWQ" -s "$S" -F csv -f - <"$T/q.sql" >"$T/out" || fail "-f -: exit $?"
same "$T/out" "$EXPECTED/flows.csv"
"$FLOWQ" -s "$S" -F tsv <"$T/q.sql" >"$T/out" || fail "stdin: exit $?"
same "$T/out" "$EXPECTED/flows.tsv"
echo "$Q" | "$FLOWQ" -s "$S" --format=ndjson >"$T/out" || fail "pipe: exit $?"
same "$T/out" "$EXPECTED/flows.ndjson"

# --max-rows and --timeout reach the server.
flowq_rc 0 -s "$S" -F csv --max-rows 2 "$Q"
[ "$(wc -l <"$T/out")" = 3 ] || fail "--max-rows 2: $(cat "$T/out")"
grep -qx 'flowq: result truncated at 2 rows' "$T/err" || fail "--max-rows 2 stderr: $(cat "$T/err")"
flowq_rc 1 -s "$S" --timeout 0.5 \
	'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c'
grep -q 'time budget of 500 ms' "$T/err" || fail "--timeout 0.5: $(cat "$T/err")"

# Query errors: exit 1, the server's message as is (no prefix, no JSON).
flowq_rc 1 -s "$S" 'SELECT nope FROM flows'
grep -qx 'no such column: nope' "$T/err" || fail "bad column: '$(cat "$T/err")'"
[ ! -s "$T/out" ] || fail "an error printed on stdout: $(cat "$T/out")"
flowq_rc 1 -s "$S" "DELETE FROM flows"
grep -q '^DELETE is not allowed: queries are read-only' "$T/err" || fail "delete: $(cat "$T/err")"
curl -s --unix-socket "$S" http://flowstore/query --data-binary 'DELETE FROM flows' |
	grep -qF "\"message\":\"$(head -n 1 "$T/err")\"" || fail "not the server's message as is"

# Usage: exit 2, nothing sent.
flowq_rc 2 -s "$S" --format xml "$Q"
grep -q "^flowq: --format: 'xml' is not" "$T/err" || fail "--format xml: $(cat "$T/err")"
flowq_rc 2 -s "$S" --bogus
flowq_rc 2 -s "$S" 'SELECT 1' 'SELECT 2'
flowq_rc 2 -s "$S" --timeout 0 'SELECT 1'
flowq_rc 2 -s "$S" --max-rows 1.5 'SELECT 1'
flowq_rc 2 -s "$S" -f "$T/q.sql" 'SELECT 1'
flowq_rc 2 -s "$S" -f "$T/no-such.sql"
flowq_rc 2 -s "$S" '   '
flowq_rc 0 --help
grep -q '^usage: flowq' "$T/out" || fail "--help"

# Unreachable: exit 3 with the path.
flowq_rc 3 -s "$T/nothing.sock" 'SELECT 1'
grep -q "^flowq: cannot reach flowstored at $T/nothing.sock" "$T/err" || fail "unreachable: $(cat "$T/err")"
# A result that breaks off after the first bytes went out: exit 3.
flowq_rc 3 -s "$S" -F csv 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c
	WHERE x < 100000) SELECT x, CASE WHEN x > 50000 THEN abs(-9223372036854775807 - 1) END FROM c'
grep -q 'broke before the result was whole' "$T/err" || fail "broken stream: $(cat "$T/err")"

# The default socket: $FLOWSTORE_SOCKET, else ./flowstore-data/flowstore.sock.
FLOWSTORE_SOCKET="$S" "$FLOWQ" -F csv "SELECT count(*) AS n FROM flows" >"$T/out" || fail "FLOWSTORE_SOCKET"
[ "$(tr -d '\r' <"$T/out")" = "$(printf 'n\n5')" ] || fail "FLOWSTORE_SOCKET: $(cat "$T/out")"
mkdir -p "$T/cwd/flowstore-data"
ln -s "$S" "$T/cwd/flowstore-data/flowstore.sock"
(cd "$T/cwd" && env -u FLOWSTORE_SOCKET "$FLOWQ" -F csv "SELECT count(*) AS n FROM connections") >"$T/out" ||
	fail "./flowstore-data/flowstore.sock"
[ "$(tr -d '\r' <"$T/out")" = "$(printf 'n\n3')" ] || fail "./flowstore-data: $(cat "$T/out")"
(cd "$T" && env -u FLOWSTORE_SOCKET "$FLOWQ" 'SELECT 1' 2>"$T/err") && fail "no socket anywhere: exit 0"
grep -q 'cannot reach flowstored at /var/lib/flowstore/flowstore.sock' "$T/err" ||
	[ -S /var/lib/flowstore/flowstore.sock ] || fail "the last default: $(cat "$T/err")"

# --tables.
flowq_rc 0 -s "$S" --tables
grep -q '^flows  *sock_cookie  *INTEGER  *local socket cookie' "$T/out" || fail "--tables: $(head "$T/out")"
grep -q '^partitions  *status' "$T/out" || fail "--tables lacks partitions"
flowq_rc 0 -s "$S" --tables --format csv
grep -q '^connections,pid,INTEGER,' "$T/out" || fail "--tables --format csv: $(head "$T/out")"

# The shell, on a pseudo-terminal.
HOME="$T" script -qec "$FLOWQ -s $S" /dev/null >"$T/shell" 2>&1 <<'EOF'
.format csv
SELECT count(*) AS n
  FROM tcp_states;
.format
.tables
SELECT nope;
.quit
EOF
tr -d '\r' <"$T/shell" >"$T/shell.txt"
grep -q '^   ...> ' "$T/shell.txt" || fail "no continuation prompt: $(cat "$T/shell.txt")"
grep -qx 'n' "$T/shell.txt" && grep -qx '5' "$T/shell.txt" || fail "shell query: $(cat "$T/shell.txt")"
grep -qx 'csv' "$T/shell.txt" || fail ".format: $(cat "$T/shell.txt")"
grep -q '^flows,ts,INTEGER,' "$T/shell.txt" || fail ".tables: $(cat "$T/shell.txt")"
grep -q 'no such column: nope' "$T/shell.txt" || fail "shell error: $(cat "$T/shell.txt")"
# (libedit writes a space as \040.)
sed 's/\\040/ /g' "$T/.flowq_history" 2>/dev/null | grep -qx 'SELECT count(\*) AS n   FROM tcp_states;' &&
	sed 's/\\040/ /g' "$T/.flowq_history" | grep -qx '.format csv' ||
	fail "history: $(cat "$T/.flowq_history" 2>/dev/null)"

stop_daemon "$DAEMON"
echo "e2e_flowq: ok"
