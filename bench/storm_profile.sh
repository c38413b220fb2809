#!/usr/bin/env bash
# bench/storm_profile: where does a connection storm's CPU go in flowstore's
# kernel programs? A steadier figure than a throughput ratio on a noisy VM.
#
# The pinned placement of bench/overhead.sh (load on CPU 1, daemon on CPU 0:
# two namespaces, a veth pair, `tcp_load storm` from A to B, `flowstored
# --source bpf --interfaces veth-a` in A), with `perf record -C 1` sampling
# the load's CPU. Every sample whose call chain passes through one of our
# programs (bpf_prog_<tag>_<name>) or the tracepoint dispatch that runs them
# (bpf_trace_run*) is counted for that program, with the function it was in
# (the program itself, a map operation, the clock, the ring buffer, ...).
# The share of all samples is the share of the load's CPU our programs
# took: with the load CPU-bound, about the throughput it costs, before any
# indirect effect (caches).
#
#   bench/storm_profile.sh [VARIANT[,VARIANT...]] [SECONDS] [RUNS] [-- FLOWSTORED FLAGS]
#   VARIANT: BUILD_DIR, optionally followed by flowstored flags of its own
#   (`build/gcc,build/gcc --ring-size 1M`: one build, two settings)
#   (as root; needs perf)
#
# STORM_PROFILE_LINES=1 also gives, per program, the source lines of
# the bpf/ sources its own samples fell in (the heaviest first, as shares of
# all samples): bench/prog_lines reads the JIT's line table of the loaded
# programs before the daemon exits. A line's share includes its cache
# misses, and a sampler's skid puts some of an instruction's cost on the
# next one.
#
# Prints, per run: connections/s, the daemon's drop counters, the share per
# program and its heaviest functions, and the total. Several variants (an
# A/B of two builds, or of two settings): each run profiles every variant
# in turn, the order alternating from run to run, so the VM's drift hits
# all alike; a last table gives each variant's totals, run by run, and
# their median. The load generator is the first variant's build's.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/netns.sh"
IFS=, read -r -a BUILDS <<<"${1:-build/gcc}"
SECS=${2:-5}
RUNS=${3:-2}
shift $(($# < 3 ? $# : 3))
[ "${1:-}" = -- ] && shift
EXTRA=("$@")
LOAD=${BUILDS[0]%% *}/bench/tcp_load
[ "$(id -u)" = 0 ] || { echo "bench/storm_profile: needs root" >&2; exit 1; }
command -v perf >/dev/null || { echo "bench/storm_profile: needs perf (apt-get install linux-perf)" >&2; exit 1; }
for v in "${BUILDS[@]}"; do
	b=${v%% *}
	[ -x "$b/collector/flowstored" ] && [ -x "$b/bench/tcp_load" ] ||
		{ echo "bench/storm_profile: build $b first" >&2; exit 1; }
	[ "${STORM_PROFILE_LINES:-0}" != 1 ] || [ -x "$b/bench/prog_lines" ] ||
		{ echo "bench/storm_profile: STORM_PROFILE_LINES=1: build $b/bench/prog_lines first" >&2; exit 1; }
done

bench_pair fsprof
ip netns exec "$B" taskset -c 1 "$LOAD" server 10.253.0.2 7000 >/dev/null &
server=$!
sleep 0.3

# Reads `perf script -F ip,sym` on stdin; prints the share per program.
attribute() {
	awk '
	function flush(   i, prog, leaf) {
		if (n == 0) return
		total++
		prog = ""
		for (i = 1; i <= n; i++) {
			if (match(frame[i], /bpf_prog_[0-9a-f]+_[A-Za-z0-9_]+/)) {
				prog = substr(frame[i], RSTART, RLENGTH)
				sub(/bpf_prog_[0-9a-f]+_/, "", prog)
				break
			}
			if (frame[i] ~ /bpf_trace_run/) { prog = "(tracepoint dispatch)"; break }
		}
		if (prog != "") {
			leaf = frame[1]
			sub(/\+0x[0-9a-f]+$/, "", leaf)
			byprog[prog]++
			byleaf[prog SUBSEP leaf]++
		}
		n = 0
	}
	/^[[:space:]]*$/ { flush(); next }
	/^[[:space:]]/ { n++; frame[n] = $2; next }
	{ n = 0 }
	END {
		flush()
		if (total == 0) { print "  no samples"; exit }
		for (p in byprog) {
			printf "  %-26s %6.2f%%\n", p, 100 * byprog[p] / total
			for (k in byleaf) {
				split(k, pl, SUBSEP)
				if (pl[1] == p && 100 * byleaf[k] / total >= 0.1)
					printf "      %-44s %6.2f%%\n", pl[2], 100 * byleaf[k] / total
			}
			all += byprog[p]
		}
		printf "  all of flowstore%s %6.2f%% of %d samples\n", "          ", 100 * all / total, total
	}'
}

# by_line LINES: reads `perf script -F ip,sym,symoff` on stdin; prints,
# per program, the source lines (from LINES, bench/prog_lines' output)
# under its own samples, as shares of all samples.
by_line() {
	awk -v lines="$1" '
	function hex(h,   i, v) {
		v = 0
		for (i = 1; i <= length(h); i++)
			v = v * 16 + index("0123456789abcdef", substr(h, i, 1)) - 1
		return v
	}
	BEGIN {
		first = 1 # the first sample has no blank line before it
		while ((getline l < lines) > 0) {
			split(l, f, " ")
			p = f[1]; k = ++n[p]
			off[p, k] = hex(f[2])
			txt = l; sub(/^[^ ]+ [^ ]+ /, "", txt)
			src[p, k] = txt
		}
	}
	/^[[:space:]]*$/ { first = 1; next }
	first {
		first = 0; total++
		if (!match($2, /bpf_prog_[0-9a-f]+_[A-Za-z0-9_]+\+0x[0-9a-f]+/)) next
		s = substr($2, RSTART, RLENGTH)
		o = hex(substr(s, index(s, "+0x") + 3))
		sub(/\+0x.*/, "", s); sub(/^bpf_prog_/, "", s) # TAG_NAME, as prog_lines prints it
		best = 0
		for (k = 1; k <= n[s]; k++) if (off[s, k] <= o) best = k
		hits[s, best ? src[s, best] : "(no line info)"]++
	}
	END {
		if (total == 0) exit
		for (h in hits) {
			split(h, hp, SUBSEP)
			printf "%s\t%.2f\t%s\n", hp[1], 100 * hits[h] / total, hp[2]
		}
	}' | sort -t "$(printf '\t')" -k1,1 -k2,2nr |
		awk -F '\t' '$1 != last { print "  lines of " $1 ":"; last = $1; shown = 0 }
			shown < 8 && $2 >= 0.05 { printf "      %5.2f%%  %s\n", $2, substr($3, 1, 80); shown++ }'
}

# profile RUN VARIANT [AB]: one pinned storm with VARIANT's daemon, profiled.
profile() {
	local total build flags
	read -r build flags <<<"$2"
	read -r -a flags <<<"$flags"
	rm -rf "$T/data"
	ip netns exec "$A" taskset -c 0 "$build/collector/flowstored" --source bpf --interfaces veth-a \
		--data "$T/data" "${flags[@]}" "${EXTRA[@]}" 2>"$T/daemon.log" &
	daemon=$!
	for _ in $(seq 100); do grep -q "data in" "$T/daemon.log" && break; sleep 0.1; done
	grep -q "data in" "$T/daemon.log" || { cat "$T/daemon.log"; exit 1; }
	perf record -C 1 -F 2999 -g -o "$T/perf.data" -- sleep "$SECS" >/dev/null 2>&1 &
	perf=$!
	rate=$(ip netns exec "$A" taskset -c 1 "$LOAD" storm 10.253.0.2 7000 "$SECS" | awk '{print $2}')
	wait "$perf"
	if [ "${STORM_PROFILE_LINES:-0}" = 1 ]; then
		"$build/bench/prog_lines" flow_egress flow_ingress conn_set_state conn_send \
			conn_recv conn_accept >"$T/lines" ||
			echo "bench/storm_profile: no line table: samples stay off the lines" >&2
	fi
	kill -TERM "$daemon"
	wait "$daemon" || true
	daemon=
	echo "run $1${3:+ ($2)}: $rate connections/s; $(stats_drops "$T/daemon.log")"
	perf script -i "$T/perf.data" -F ip,sym 2>/dev/null | attribute | tee "$T/attr"
	if [ "${STORM_PROFILE_LINES:-0}" = 1 ]; then
		perf script -i "$T/perf.data" -F ip,sym,symoff 2>/dev/null | by_line "$T/lines"
	fi
	total=$(awk '/all of flowstore/ {print $4}' "$T/attr")
	echo "$total" >>"$T/totals.$(echo "$2" | tr -c 'A-Za-z0-9.-' _)"
}

ab=${BUILDS[1]:+ab}
for run in $(seq "$RUNS"); do
	if [ $((run % 2)) = 1 ]; then order=("${BUILDS[@]}"); else
		order=(); for ((i = ${#BUILDS[@]} - 1; i >= 0; i--)); do order+=("${BUILDS[i]}"); done
	fi
	for b in "${order[@]}"; do profile "$run" "$b" "$ab"; done
done
if [ -n "$ab" ]; then
	echo "all of flowstore, run by run, and the median:"
	for b in "${BUILDS[@]}"; do
		f="$T/totals.$(echo "$b" | tr -c 'A-Za-z0-9.-' _)"
		echo "  $b: $(tr '\n' ' ' <"$f")-> median $(tr -d % <"$f" | median)%"
	done
fi
