#!/usr/bin/env bash
# bench/overhead: what does flowstored cost the traffic it watches?
#
# Two network namespaces joined by a veth pair; a bulk TCP stream and a
# connection storm from A to B, each measured without and with
# `flowstored --source bpf --interfaces veth-a` running in A (its TC programs
# on veth-a and its TCP lifecycle tracepoints), alternating, ROUNDS times;
# and a third time with the daemon frozen (SIGSTOP) after attaching: the
# kernel programs run and nothing reads what they produce ("frozen", what a
# hung daemon costs the host: its rings fill, every reserve fails and
# counts a loss, and flows whose record found no room stay in the flow map
# until it is full, after which every new flow takes the map-full path; not
# a lower bound of the running daemon's cost). Each round runs the three in turn
# (forwards, then backwards the next round); prints the medians, the
# median of the per-round ratios, CPU used, and the daemon's kernel and
# user-space drop counters.
#
# Two placements, each measured the same way:
#   shared  the load and the daemon share every CPU (a host with no CPU to
#           spare: each cycle the daemon spends is taken from the load);
#   pinned  the load (client, server, and so the softirqs of their veth
#           traffic) on CPU 1, the daemon on CPU 0 (a host with a core to
#           spare: what remains is the in-path cost of the kernel programs
#           and whatever crosses CPUs).
#
# and last, new UDP flows at 50k/s: the drop counters and rows written.
#
#   bench/overhead.sh [BUILD_DIR] [SECONDS] [ROUNDS] [shared|pinned|both]   (as root)
#
# OVERHEAD_LOADS (default "bulk storm") and OVERHEAD_FROZEN=0 (no frozen
# runs) narrow a run to what is asked, so more rounds fit in the time: the
# per-round ratios spread widely on this VM (0.6 to 1.1 for one storm
# build), and only many rounds give a median worth a point.
# OVERHEAD_BASELINE=BUILD_DIR adds a mode to every round: the daemon of
# that other build (an earlier commit's, say), reported like "with" as
# "baseline", so two builds' throughput is compared within the same rounds.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/netns.sh"
BUILD=${1:-build/gcc}
SECS=${2:-10}
ROUNDS=${3:-3}
PLACEMENTS=${4:-both}
LOADS=${OVERHEAD_LOADS:-bulk storm}
FROZEN=${OVERHEAD_FROZEN:-1}
BASELINE=${OVERHEAD_BASELINE:-}
[ "$PLACEMENTS" = both ] && PLACEMENTS="shared pinned"
FLOWSTORED=$BUILD/collector/flowstored
LOAD=$BUILD/bench/tcp_load
[ "$(id -u)" = 0 ] || { echo "bench/overhead: needs root" >&2; exit 1; }
[ -x "$FLOWSTORED" ] && [ -x "$LOAD" ] || { echo "bench/overhead: build $BUILD first" >&2; exit 1; }
[ -z "$BASELINE" ] || [ -x "$BASELINE/collector/flowstored" ] ||
	{ echo "bench/overhead: OVERHEAD_BASELINE: build $BASELINE first" >&2; exit 1; }

bench_pair fsbench

# Placement: the CPU lists for the load and the daemon (empty: any).
LOAD_CPUS= DAEMON_CPUS=
on() { # CPUS: the command prefix that runs a command on them (none when empty)
	[ -n "$1" ] && echo "taskset -c $1"
	return 0
}
start_server() {
	[ -n "${server:-}" ] && { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; }
	# shellcheck disable=SC2046
	ip netns exec "$B" $(on "$LOAD_CPUS") "$LOAD" server 10.253.0.2 7000 >"$T/server.out" &
	server=$!
	sleep 0.3
}

busy_jiffies() { awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat; }

# measure KIND: one run; prints "VALUE CPU_PERCENT"
measure() {
	local b0 b1 t0 t1 v
	b0=$(busy_jiffies); t0=$(date +%s.%N)
	# shellcheck disable=SC2046
	v=$(ip netns exec "$A" $(on "$LOAD_CPUS") "$LOAD" "$1" 10.253.0.2 7000 "$SECS" | awk '{print $2}')
	b1=$(busy_jiffies); t1=$(date +%s.%N)
	echo "$v $(echo "$b0 $b1 $t0 $t1" | awk -v hz="$(getconf CLK_TCK)" '{printf "%.0f", 100*($2-$1)/hz/($4-$3)}')"
}

start_daemon() { # [FLOWSTORED]
	rm -rf "$T/data"
	# shellcheck disable=SC2046
	ip netns exec "$A" $(on "$DAEMON_CPUS") "${1:-$FLOWSTORED}" --source bpf --interfaces veth-a \
		--data "$T/data" 2>"$T/daemon.log" &
	daemon=$!
	for _ in $(seq 100); do grep -q "data in" "$T/daemon.log" && break; sleep 0.1; done
	grep -q "data in" "$T/daemon.log" || { cat "$T/daemon.log"; exit 1; }
}

stop_daemon() { # [STATS_FILE]
	kill -TERM "$daemon"
	wait "$daemon" || true
	daemon=
	grep 'stats:' "$T/daemon.log" | tail -n 1 >>"${1:-$T/stats}"
}

# ratios A B: line by line, the first value of file A over that of file B.
ratios() { paste "$1" "$2" | awk '{print $1 / $3}'; }

# The middle half of the values: "P25-P75" (nearest rank).
quartiles() { sort -n | awk '{a[NR]=$1} END {printf "%.3f-%.3f", a[int((NR+3)/4)], a[int((3*NR+3)/4)]}'; }

# One run of KIND in MODE (off: no daemon; on: daemon running; base: the
# baseline build's daemon running; frozen: daemon stopped after
# attaching); appends "VALUE CPU" to $T/KIND.MODE.
run_mode() { # KIND MODE
	case $2 in
	off) measure "$1" >>"$T/$1.off" ;;
	on)
		start_daemon
		measure "$1" >>"$T/$1.on"
		stop_daemon
		;;
	base)
		start_daemon "$BASELINE/collector/flowstored"
		measure "$1" >>"$T/$1.base"
		stop_daemon "$T/stats.base"
		;;
	frozen)
		start_daemon
		kill -STOP "$daemon"
		measure "$1" >>"$T/$1.frozen"
		kill -CONT "$daemon"
		kill -TERM "$daemon"
		wait "$daemon" || true
		daemon=
		;;
	esac
}

# Each round measures all three modes, in turn forwards and backwards, so
# a drift of the machine's speed (this VM's neighbours) hits both sides of
# a ratio alike; the ratios are taken per round, then their median.
run_placement() {
	local frozen= base=
	[ "$FROZEN" = 0 ] || frozen=frozen
	[ -z "$BASELINE" ] || base=base
	for kind in $LOADS; do
		: >"$T/$kind.off"; : >"$T/$kind.on"
		: >"$T/$kind.frozen"; : >"$T/$kind.base"
		for r in $(seq "$ROUNDS"); do
			if [ $((r % 2)) = 1 ]; then order="off on $base $frozen"; else order="$frozen $base on off"; fi
			for mode in $order; do run_mode "$kind" "$mode"; done
		done
	done
}

report() { # KIND UNIT [SUFFIX]
	local off on coff con ratio spread
	off=$(awk '{print $1}' "$T/$1.off" | median)
	on=$(awk '{print $1}' "$T/$1.${3:-on}" | median)
	coff=$(awk '{print $2}' "$T/$1.off" | median)
	con=$(awk '{print $2}' "$T/$1.${3:-on}" | median)
	ratio=$(ratios "$T/$1.${3:-on}" "$T/$1.off" | median)
	spread=$(ratios "$T/$1.${3:-on}" "$T/$1.off" | quartiles)
	echo "$1${3:+ ($3)}: without $off $2, with $on $2 (medians); per-round ratio median" \
		"$(echo "$ratio" | awk '{printf "%.3f (%+.1f%%)", $1, 100 * ($1 - 1)}'), middle half $spread;" \
		"CPU busy ${coff}% -> ${con}% of $(nproc) cores"
}

# counters: the drop counters and rows written, summed over the stats
# lines on stdin.
counters() {
	tr ' ' '\n' | grep -E "^($DROP_KEYS|kernel_recursion_misses|rows_written_flows|rows_written_connections)=" |
		awk -F= '{s[$1]+=$2} END {for (k in s) printf "  %s total %d\n", k, s[k]}' | sort
}

# new_flows RATE: flowstored (defaults) watching veth-a while tcp_load
# sends RATE new one-packet UDP flows a second for SECS; prints what was
# sent, what was written, and every drop counter.
new_flows() {
	local sent mac
	mac=$(ip -n "$B" -o link show veth-b | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
	start_daemon
	sent=$(ip netns exec "$A" "$LOAD" flows veth-a "$mac" 10.253.0.2 9 "$SECS" "$1" | sed -n 's/^flows //p')
	sleep 1
	kill -TERM "$daemon"
	wait "$daemon" || true
	daemon=
	echo "new flows at $1/s for $SECS s: $sent sent; daemon: $(stats_drops "$T/daemon.log" rows_written_flows)"
	grep -E 'exporting flows idle' "$T/daemon.log" | sed 's/^/  /' || true
}

for placement in $PLACEMENTS; do
	case $placement in
	shared) LOAD_CPUS= DAEMON_CPUS= ;;
	pinned) LOAD_CPUS=1 DAEMON_CPUS=0 ;;
	*) echo "bench/overhead: placement is shared, pinned or both" >&2; exit 2 ;;
	esac
	start_server
	: >"$T/stats"; : >"$T/stats.base"
	run_placement
	echo "bench/overhead: $placement placement (load on CPUs ${LOAD_CPUS:-all}, daemon on ${DAEMON_CPUS:-all}), $SECS s per run, $ROUNDS rounds, medians"
	for kind in $LOADS; do
		unit="conns/s"
		[ "$kind" = bulk ] && unit="bytes/s"
		report "$kind" "$unit"
		if [ -n "$BASELINE" ]; then
			report "$kind" "$unit" base
			echo "$kind: this build / baseline, per-round ratio median" \
				"$(ratios "$T/$kind.on" "$T/$kind.base" | median)," \
				"middle half $(ratios "$T/$kind.on" "$T/$kind.base" | quartiles)"
		fi
		[ "$FROZEN" = 0 ] || report "$kind" "$unit" frozen
	done
	echo "runs (value cpu%):"
	for kind in $LOADS; do
		for mode in off on base frozen; do
			if [ -s "$T/$kind.$mode" ]; then echo "  $kind.$mode: $(tr '\n' ';' <"$T/$kind.$mode")"; fi
		done
	done
	echo "daemon counters at each stop of a running (not frozen) daemon:"
	counters <"$T/stats"
	if [ -n "$BASELINE" ]; then
		echo "the same, baseline build ($BASELINE):"
		counters <"$T/stats.base"
	fi
done
echo "bench/overhead: new flows, daemon with its defaults, $placement placement"
new_flows 50000
