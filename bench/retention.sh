#!/usr/bin/env bash
# bench/retention.sh: the synthetic source at full rate into a data dir under
# --max-disk for a while; samples the dir's size twice a second and prints the
# peak next to the limit and the largest partition, with what retention did.
#
# usage: bench/retention.sh BUILD_DIR [SECONDS=600] [MAX_DISK=200M] [PARTITION_ROWS=200000]
set -euo pipefail
B=${1:?usage: bench/retention.sh BUILD_DIR [SECONDS] [MAX_DISK] [PARTITION_ROWS]}
SECS=${2:-600}
MAX=${3:-200M}
ROWS=${4:-200000}
FLOWSTORED="$B/collector/flowstored"
D=$(mktemp -d /tmp/flowstore-bench-retention.XXXXXX)
trap 'kill -9 $pid 2>/dev/null || true; rm -rf "$D"' EXIT

to_bytes() { numfmt --from=iec "$1"; }
LIMIT=$(to_bytes "$MAX")
dir_bytes() { { find "$1" -maxdepth 1 -type f -printf '%b\n' 2>/dev/null || true; } | awk '{ s += $1 * 512 } END { print s + 0 }'; }
part_bytes() { # the largest raw partition with its side files
	{ find "$1" -maxdepth 1 -name 'raw-*' -printf '%b %f\n' 2>/dev/null || true; } |
		awk '{ sub(/\.db.*/, "", $2); s[$2] += $1 * 512 } END { m = 0; for (k in s) if (s[k] > m) m = s[k]; print m }'
}

"$FLOWSTORED" --data "$D/data" --source synthetic --partition-rows "$ROWS" --max-disk "$MAX" \
	--no-query 2>"$D/log" &
pid=$!
peak=0 peak_part=0 samples=0 over=0
end=$((SECONDS + SECS))
while [ $SECONDS -lt $end ]; do
	b=$(dir_bytes "$D/data")
	p=$(part_bytes "$D/data")
	[ "$b" -gt "$peak" ] && peak=$b
	[ "$p" -gt "$peak_part" ] && peak_part=$p
	[ "$b" -gt $((LIMIT + p)) ] && over=$((over + 1))
	samples=$((samples + 1))
	sleep 0.5
done
kill -TERM $pid
rc=0
wait $pid || rc=$?
[ $rc = 0 ] || { echo "bench/retention: flowstored exited $rc:"; tail -n 5 "$D/log"; }
stat() { grep 'stats:' "$D/log" | tail -n 1 | tr ' ' '\n' | sed -n "s/^$1=//p"; }
rows=0
for t in flows connections tcp_states; do rows=$((rows + $(stat rows_written_$t))); done
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "bench/retention: synthetic at full rate, $SECS s, --max-disk $MAX, --partition-rows $ROWS"
echo "  rows written        $rows ($((rows / SECS)) rows/s), events dropped $(stat events_dropped)"
echo "  data dir peak       $(mib $peak) (limit $(mib $LIMIT), largest partition $(mib $peak_part); limit + partition = $(mib $((LIMIT + peak_part))))"
echo "  samples over limit + current partition: $over of $samples"
echo "  partitions          created $(stat partitions_created), sealed $(stat partitions_sealed), removed $(stat files_removed_raw) (max-disk $(stat files_removed_why_max_disk))"
echo "  rollups             $(stat rollup_partitions) partitions, $(stat rollup_rows) rows; rollup files removed $(( $(stat files_removed_1m) + $(stat files_removed_1h) ))"
echo "  retention           $(stat retention_runs) runs, $(stat retention_errors) errors, $(awk -v n="$(stat retention_ns_total)" 'BEGIN { printf "%.1f", n / 1e9 }') s in all"
echo "  final size          $(mib "$(dir_bytes "$D/data")")"
