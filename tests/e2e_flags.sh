#!/usr/bin/env bash
# Bad flags and values: one line naming the problem, then the usage, exit 2.
# Unusable data dirs and sources: a clear line naming the path, exit 1.
. "$(dirname "$0")/lib.sh"
test_dir

expect_exit() { # CODE PATTERN ARGS...
	local code=$1 pattern=$2 rc=0
	shift 2
	"$FLOWSTORED" "$@" >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" = "$code" ] || fail "flowstored $*: exit $rc, want $code; stderr: $(cat "$T/err")"
	grep -q -- "$pattern" "$T/err" "$T/out" || fail "flowstored $*: no '$pattern' in: $(cat "$T/err")"
}

expect_usage_error() { # PATTERN ARGS...
	expect_exit 2 "$@"
	[ "$(head -n 1 "$T/err" | grep -c '^flowstored: ')" = 1 ] || fail "first line is not the error: $(head -n 1 "$T/err")"
	grep -q '^usage: flowstored' "$T/err" || fail "no usage after the error for $*"
}

D="$T/data"
expect_usage_error "unknown option '--bogus'" --bogus
expect_usage_error "needs a value" --data
expect_usage_error "--partition: '0'" --data "$D" --partition 0
expect_usage_error "--partition: '1x'" --data "$D" --partition 1x
expect_usage_error "--partition-rows: '0'" --data "$D" --partition-rows 0
expect_usage_error "--batch-rows: 'many'" --data "$D" --batch-rows many
expect_usage_error "--batch-ms: '0'" --data "$D" --batch-ms 0
expect_usage_error "--queue-batches: '5000'" --data "$D" --queue-batches 5000
expect_usage_error "--source: 'kafka'" --data "$D" --source kafka
expect_usage_error "synthetic:RATE: 'fast'" --data "$D" --source synthetic:fast
expect_usage_error "--log-level: 'loud'" --data "$D" --log-level loud
expect_usage_error "--ring-size: '17M' is not a power of two" --data "$D" --ring-size 17M
expect_usage_error "--ring-size: '1K'" --data "$D" --ring-size 1K
expect_usage_error "--ring-size: '2G'" --data "$D" --ring-size 2G
expect_usage_error "--count works only with --source synthetic" --data "$D" --source replay:x --count 5
expect_usage_error "--interfaces: 'eth0,,eth1'" --data "$D" --interfaces eth0,,eth1
expect_usage_error "--interfaces: 'averyveryverylongname'" --data "$D" --interfaces averyveryverylongname
expect_usage_error "--interfaces: 'eth0' is named twice" --data "$D" --interfaces eth0,lo,eth0
expect_usage_error "--interfaces works only with --source bpf" --data "$D" --source synthetic --interfaces lo
expect_usage_error "--idle-timeout: '0'" --data "$D" --idle-timeout 0
expect_usage_error "--idle-timeout: 'soon'" --data "$D" --idle-timeout soon
expect_usage_error "--active-timeout: '2d'" --data "$D" --active-timeout 2d
expect_usage_error "--flow-map-size: '10'" --data "$D" --flow-map-size 10
expect_usage_error "--max-conns: '100'" --data "$D" --max-conns 100
expect_usage_error "unexpected argument 'extra'" --data "$D" extra

expect_exit 0 "usage: flowstored" --help
expect_exit 0 "flowstored 0" --version

# Nothing was created by any of the refused runs.
[ ! -e "$D" ] || fail "a refused run created $D"

# Data dirs that cannot be used.
touch "$T/file"
expect_exit 1 "cannot use data dir $T/file: Not a directory" --data "$T/file" --source synthetic --count 1
expect_exit 1 "cannot create data dir /proc/flowstore-test" --data /proc/flowstore-test --source synthetic --count 1
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	chmod 0755 "$T"
	mkdir -m 0755 "$T/rootonly"
	rc=0
	setpriv --reuid=65534 --regid=65534 --clear-groups "$FLOWSTORED" --data "$T/rootonly" \
		--source synthetic --count 1 2>"$T/err" || rc=$?
	[ "$rc" = 1 ] || fail "unwritable dir: exit $rc"
	grep -q "data dir $T/rootonly is not writable" "$T/err" || fail "unwritable dir: $(cat "$T/err")"
fi

# The kernel source without privileges: one line saying so, exit 1, before
# the data dir is touched.
bpf_refused() { # RUN...: the run is expected to fail for want of privileges
	local rc=0
	"$@" --data "$T/nobody" --source bpf >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" = 1 ] || fail "--source bpf without privileges: exit $rc, want 1; stderr: $(cat "$T/err")"
	[ "$(cat "$T/err" "$T/out" | wc -l)" = 1 ] || fail "--source bpf without privileges: not one line: $(cat "$T/err")"
	grep -q '^flowstored: error: --source bpf needs root' "$T/err" ||
		fail "--source bpf without privileges: $(cat "$T/err")"
	[ ! -e "$T/nobody" ] || fail "a refused --source bpf created its data dir"
}
if [ "$(id -u)" != 0 ]; then
	bpf_refused "$FLOWSTORED"
elif command -v setpriv >/dev/null; then
	bpf_refused setpriv --reuid=65534 --regid=65534 --clear-groups "$FLOWSTORED"
fi

# As root it starts, sized by --ring-size, and stops cleanly on SIGTERM.
if [ "$(id -u)" = 0 ] && [ -e /sys/kernel/btf/vmlinux ]; then
	"$FLOWSTORED" --data "$T/bpf" --source bpf --ring-size 4M --flow-map-size 4096 \
		--max-conns 5000 --idle-timeout 30s --active-timeout 2m 2>"$T/bpf.log" &
	bpf=$!
	for _ in $(seq 100); do
		grep -q 'data in' "$T/bpf.log" && break
		kill -0 "$bpf" 2>/dev/null || break
		sleep 0.1
	done
	kill -TERM "$bpf" 2>/dev/null || true
	rc=0
	wait "$bpf" || rc=$?
	[ "$rc" = 0 ] || fail "--source bpf as root: exit $rc: $(cat "$T/bpf.log")"
	grep -q 'ring buffer 4096 KiB' "$T/bpf.log" || fail "--ring-size 4M not used: $(cat "$T/bpf.log")"
	grep -q 'stats:.* kernel_lost_ringbuf_full=' "$T/bpf.log" || fail "no kernel loss counters: $(cat "$T/bpf.log")"
	grep -q 'stats:.* kernel_recursion_misses=' "$T/bpf.log" || fail "no recursion miss counter: $(cat "$T/bpf.log")"
	grep -q 'flow map 4096 entries, idle timeout 30000 ms, active timeout 120000 ms' "$T/bpf.log" ||
		fail "--flow-map-size/--idle-timeout/--active-timeout not used: $(cat "$T/bpf.log")"
	grep -q 'connection table 8192 slots and a spill of 4096' "$T/bpf.log" ||
		fail "--max-conns not used: $(cat "$T/bpf.log")"
fi

# Sources that cannot start.
expect_exit 1 "no-such-file" --data "$D" --source replay:"$T/no-such-file"
echo "this is not a recording, just some text of sufficient length......." >"$T/junk.rec"
expect_exit 1 "not a flowstore recording" --data "$D" --source replay:"$T/junk.rec"

# One daemon per data dir.
"$FLOWSTORED" --data "$D" --source synthetic:100 2>"$T/first" &
first=$!
cleanup_hook() { kill "$first" 2>/dev/null || true; wait "$first" 2>/dev/null || true; }
for _ in $(seq 50); do grep -q 'data in' "$T/first" && break; sleep 0.1; done
expect_exit 1 "in use by another flowstored" --data "$D" --source synthetic --count 1
kill -TERM "$first"
wait "$first" || fail "first daemon exited $?"
# Retention flags, the daemon's and `flowstored retention`'s.
expect_usage_error "--max-disk: 'huge'" --data "$D" --max-disk huge
expect_usage_error "--retain-raw: '10s'" --data "$D" --retain-raw 10s
expect_usage_error "unknown option '--dry-run'" --data "$D" --dry-run
expect_exit 2 "flowstored retention: unknown option '--source'" retention --data "$D" --source bpf
grep -q '^usage: flowstored retention' "$T/err" || fail "no retention usage after the error"
expect_exit 2 "flowstored retention: --min-free: '-1'" retention --data "$D" --min-free -1
expect_exit 1 "is not a data dir" retention --data "$T/no-such-dir"
"$FLOWSTORED" retention --help | grep -q -- '--dry-run' || fail "retention --help lacks --dry-run"
"$FLOWSTORED" --help | grep -q -- '--max-disk' || fail "--help lacks --max-disk"
echo "e2e_flags: ok"
