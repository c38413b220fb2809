# Helpers for the query side's shell tests. Sourced after lib.sh.
: "${FLOWQ:?FLOWQ must name the flowq binary}"
: "${MAKE_FIXTURE:?MAKE_FIXTURE must name the make_fixture binary}"
command -v curl >/dev/null || skip "curl is not installed (scripts/deps.sh installs it)"

DAEMONS=()
cleanup_hook() {
	local p
	for p in "${DAEMONS[@]}"; do
		kill -9 "$p" 2>/dev/null || true
	done
}

# start_daemon LOG SOCKET ARGS...: flowstored in the background, until its
# socket answers; its pid in $DAEMON.
start_daemon() {
	local log=$1 sock=$2
	shift 2
	"$FLOWSTORED" "$@" 2>"$log" &
	DAEMON=$!
	DAEMONS+=("$DAEMON")
	for _ in $(seq 100); do
		curl -s --unix-socket "$sock" -o /dev/null http://flowstore/health && return 0
		kill -0 "$DAEMON" 2>/dev/null || fail "flowstored $* exited: $(cat "$log")"
		sleep 0.1
	done
	fail "flowstored $* does not answer on $sock: $(cat "$log")"
}

# stop_daemon PID: SIGTERM, and it must exit 0 within 10 s.
stop_daemon() {
	local rc=0
	kill -TERM "$1"
	for _ in $(seq 100); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$1" 2>/dev/null && fail "flowstored $1 still runs 10 s after SIGTERM"
	wait "$1" || rc=$?
	[ "$rc" = 0 ] || fail "flowstored $1 exited $rc after SIGTERM"
}

# http SOCKET ARGS...: curl; the body in $T/body, the headers in $T/head,
# the status printed.
http() {
	local sock=$1
	shift
	curl -sS --unix-socket "$sock" -o "$T/body" -D "$T/head" -w '%{http_code}' "$@"
}

# expect STATUS PATTERN SOCKET ARGS...: the status, and PATTERN (grep -F) in the body.
expect() {
	local want=$1 pattern=$2 got
	shift 2
	got=$(http "$@") || true
	[ "$got" = "$want" ] || fail "curl ${*:2}: status $got, want $want: $(head -c 500 "$T/body")"
	[ -z "$pattern" ] || grep -qF -- "$pattern" "$T/body" ||
		fail "curl ${*:2}: no '$pattern' in: $(head -c 500 "$T/body")"
}

# metric SOCKET SERIES: the value of one series of /metrics.
metric() {
	curl -sS --unix-socket "$1" http://flowstore/metrics | awk -v s="$2" '$1 == s { print $2 }'
}
