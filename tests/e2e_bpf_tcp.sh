#!/usr/bin/env bash
# The kernel source end to end: two network namespaces joined by a veth
# pair, flowstored --source bpf in the root namespace (tp_btf sees every
# namespace), TCP of known shape over IPv4 and IPv6 plus a refused connect;
# then the stored rows are checked exactly: bytes each way from each socket's
# view, pid and comm of the client and of the accepting server, states.
. "$(dirname "$0")/lib.sh"
: "${TCP_PEER:?TCP_PEER must name the tcp_peer helper}"
[ "$(id -u)" = 0 ] || skip "needs root for network namespaces and BPF"
[ -r /sys/kernel/btf/vmlinux ] || skip "the kernel has no BTF"
command -v ip >/dev/null || skip "iproute2 is not installed"
test_dir
A="fs-a-$$"
B="fs-b-$$"
cleanup_hook() {
	[ -n "${daemon:-}" ] && kill -9 "$daemon" 2>/dev/null
	ip netns del "$A" 2>/dev/null || true
	ip netns del "$B" 2>/dev/null || true
}
ip netns add "$A"
ip netns add "$B"
ip link add veth-a netns "$A" type veth peer name veth-b netns "$B"
ip -n "$A" addr add 10.251.0.1/24 dev veth-a
ip -n "$B" addr add 10.251.0.2/24 dev veth-b
ip -n "$A" addr add fd51::1/64 dev veth-a nodad
ip -n "$B" addr add fd51::2/64 dev veth-b nodad
for ns in "$A" "$B"; do
	ip -n "$ns" link set lo up
done
ip -n "$A" link set veth-a up
ip -n "$B" link set veth-b up

"$FLOWSTORED" --data "$T/d" --source bpf --batch-ms 50 2>"$T/log" &
daemon=$!
for _ in $(seq 100); do
	grep -q "data in" "$T/log" && break
	kill -0 "$daemon" 2>/dev/null || fail "flowstored exited: $(cat "$T/log")"
	sleep 0.1
done
sleep 0.3

# run_pair ADDR PORT K M: a server in B, a client in A; sets spid, cpid.
run_pair() {
	ip netns exec "$B" "$TCP_PEER" server "$1" "$2" "$3" "$4" >"$T/server.out" &
	local s=$!
	for _ in $(seq 50); do [ -s "$T/server.out" ] && break; sleep 0.05; done
	ip netns exec "$A" "$TCP_PEER" client "$1" "$2" "$3" "$4" >"$T/client.out" ||
		fail "client to $1:$2 failed"
	wait "$s" || fail "server on $1:$2 failed"
	spid=$(sed -n 's/^pid=\([0-9]*\).*/\1/p' "$T/server.out")
	cpid=$(sed -n 's/^pid=\([0-9]*\).*/\1/p' "$T/client.out")
}

# Wall-clock window around all the traffic: every kernel timestamp,
# converted to UTC by flowstored, must fall inside it (time accuracy).
t_before=$(date +%s%N)
K4=123457; M4=654321
run_pair 10.251.0.2 5001 $K4 $M4
spid4=$spid; cpid4=$cpid
K6=70001; M6=3
run_pair fd51::2 5002 $K6 $M6
spid6=$spid; cpid6=$cpid
rc=0
ip netns exec "$A" "$TCP_PEER" client 10.251.0.2 5999 1 1 >/dev/null 2>&1 || rc=$?
[ "$rc" = 3 ] || fail "the connect to a closed port was not refused (exit $rc)"
t_after=$(date +%s%N)

sleep 0.5
kill -TERM "$daemon"
wait "$daemon" || fail "flowstored exited $?: $(tail -n 3 "$T/log")"
daemon=

q() { # SQL over every partition, one merged answer
	local f
	for f in "$T/d"/raw-*.db; do sqlite3 -separator ' ' "file:$f?mode=ro" "$1"; done
}

# Only this test's rows: the lifecycle programs see every namespace, and a
# test of other namespaces may use the same ports meanwhile.
OURS="(resp_addr LIKE '10.251.0.%' OR resp_addr LIKE 'fd51::%')"

expect_conn() { # WHERE-clause WANT
	local got
	got=$(q "SELECT direction, orig_addr, resp_addr, resp_port, bytes_sent, bytes_received, pid, comm FROM connections WHERE $OURS AND $1")
	[ "$got" = "$2" ] || fail "connections where $1: got '$got', want '$2'"
}

expect_conn "resp_port = 5001 AND direction = 'out'" "out 10.251.0.1 10.251.0.2 5001 $K4 $M4 $cpid4 fs-client"
expect_conn "resp_port = 5001 AND direction = 'in'" "in 10.251.0.1 10.251.0.2 5001 $M4 $K4 $spid4 fs-server"
expect_conn "resp_port = 5002 AND direction = 'out'" "out fd51::1 fd51::2 5002 $K6 $M6 $cpid6 fs-client"
expect_conn "resp_port = 5002 AND direction = 'in'" "in fd51::1 fd51::2 5002 $M6 $K6 $spid6 fs-server"

got=$(q "SELECT states FROM connections WHERE $OURS AND resp_port = 5001 AND direction = 'out'")
case $got in SYN_SENT\>ESTABLISHED\>*CLOSE) ;; *) fail "client path: $got" ;; esac
got=$(q "SELECT close_state, comm FROM connections WHERE $OURS AND resp_port = 5999")
[ "$got" = "SYN_SENT fs-client" ] || fail "refused connect: got '$got'"
got=$(q "SELECT count(*) FROM tcp_states WHERE $OURS AND resp_port = 5001 AND new_state = 'ESTABLISHED'")
[ "$(echo "$got" | awk '{s+=$1} END {print s}')" = 2 ] ||
	fail "ESTABLISHED transitions for :5001: $got"
[ "$(q "SELECT count(*) FROM connections WHERE $OURS AND srtt_us <= 0 AND resp_port IN (5001, 5002)" | awk '{s+=$1} END {print s}')" = 0 ] ||
	fail "a connection without an RTT"
# Time: the conversion from the kernel's monotonic clock to UTC puts every
# row of this run between the wall-clock reads taken around it.
bad=$(q "SELECT count(*) FROM connections WHERE $OURS AND resp_port IN (5001, 5002, 5999)
	AND NOT (ts >= $t_before AND ts <= ts_end AND ts_end <= $t_after)" | awk '{s+=$1} END {print s}')
[ "$bad" = 0 ] || fail "$bad connection rows outside the wall-clock window [$t_before, $t_after]"
bad=$(q "SELECT count(*) FROM tcp_states WHERE $OURS AND resp_port IN (5001, 5002, 5999)
	AND NOT (ts >= $t_before AND ts <= $t_after)" | awk '{s+=$1} END {print s}')
[ "$bad" = 0 ] || fail "$bad state rows outside the wall-clock window"
echo "e2e_bpf_tcp: ok"
