#!/usr/bin/env bash
# A full disk: the daemon keeps running, keeps the batch and retries, counts
# what it drops, warns, and resumes when space returns; what it reports as
# written is exactly what is on disk.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || skip "needs root to mount a small tmpfs"
test_dir
D="$T/small"
mkdir -p "$D"
mount -t tmpfs -o size=6m tmpfs "$D" || skip "cannot mount tmpfs here"
cleanup_hook() {
	[ -n "${pid:-}" ] && kill -9 "$pid" 2>/dev/null
	umount "$D" 2>/dev/null || umount -l "$D" 2>/dev/null || true
}
# Leave ~1.5 MiB for the daemon.
dd if=/dev/zero of="$D/filler" bs=1M count=4 status=none 2>/dev/null || true

"$FLOWSTORED" --data "$D" --source synthetic:20000 --batch-rows 2000 --log-level info 2>"$T/log" &
pid=$!
for _ in $(seq 150); do
	grep -q "write failed" "$T/log" && break
	sleep 0.1
done
grep -q "write failed" "$T/log" || fail "the disk never filled: $(tail -n 3 "$T/log")"
sleep 1
kill -0 "$pid" || fail "the daemon died on a full disk"
rm -f "$D/filler"
for _ in $(seq 100); do
	grep -q "writing works again" "$T/log" && break
	sleep 0.1
done
grep -q "writing works again" "$T/log" || fail "writing did not resume: $(tail -n 3 "$T/log")"
sleep 0.5
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" = 0 ] || fail "exit $rc after a full disk"
[ "$(stat_value "$T/log" events_dropped)" -gt 0 ] || fail "no drops counted while the disk was full"
[ "$(stat_value "$T/log" write_errors)" -gt 0 ] || fail "no write errors counted"
for t in flows connections tcp_states; do
	w=$(stat_value "$T/log" "rows_written_$t")
	r=$(sum_rows "$D" "$t")
	[ "$w" = "$r" ] || fail "$t: the daemon says $w rows, the files hold $r"
done
echo "e2e_disk_full: ok"
