#!/usr/bin/env bash
# Flow accounting end to end: two network namespaces joined by a veth pair,
# flowstored run inside namespace A with --interfaces veth-a (so the flow
# programs sit at TC on veth-a), traffic of known shape, then the stored flow
# rows are checked exactly:
#   - TCP over IPv4 and IPv6, each alone on the link: packets and bytes each
#     way equal to what namespace A's own counters (nstat: TCP segments sent
#     and retransmitted, received; IP octets) moved during the exchange; conn_state SF, the exact history,
#     ended by the program on the last ACK (end_reason fin);
#   - a refused connect: REJ, ended by the RST;
#   - UDP, each way: N datagrams of S bytes, N x (20 + 8 + S) bytes,
#     exported by the user-space idle sweep (end_reason idle_timeout);
#   - ICMP and ICMPv6 echo: 3 packets each way, exact IP-layer bytes;
#   - TCP with segmentation offload on both ways (GSO super-packets of up to
#     64 KiB at TC): packets = the segments each sender's TCP sent, bytes =
#     payload + every segment's headers, i.e. what the wire carried.
# Then cleanup: after SIGTERM and after kill -9, no filter, qdisc, link or
# program of ours is left. The link is kept quiet so the counters are exact:
# static neighbours (no ARP, no neighbour discovery), no IPv6 link-local
# addresses, router solicitations or DAD, segmentation offload off but in
# the GSO part (the kernel's octet counters count a GSO packet's headers
# once, the wire as many times as it has segments).
. "$(dirname "$0")/lib.sh"
: "${TCP_PEER:?TCP_PEER must name the tcp_peer helper}"
[ "$(id -u)" = 0 ] || skip "needs root for network namespaces and BPF"
[ -r /sys/kernel/btf/vmlinux ] || skip "the kernel has no BTF"
for tool in ip tc nstat ping sqlite3 bpftool; do
	command -v "$tool" >/dev/null || fail "$tool is not installed (scripts/deps.sh installs it)"
done
test_dir
A="fs-fa-$$"
B="fs-fb-$$"
daemon=
cleanup_hook() {
	local j
	[ -n "${daemon:-}" ] && kill -9 "$daemon" 2>/dev/null
	for j in $(jobs -p); do kill "$j" 2>/dev/null; done # peers left waiting
	ip netns del "$A" 2>/dev/null || true
	ip netns del "$B" 2>/dev/null || true
}

# ---- the link -------------------------------------------------------------
ip netns add "$A"
ip netns add "$B"
for ns in "$A" "$B"; do
	for k in accept_dad router_solicitations accept_ra; do
		ip netns exec "$ns" sysctl -q -w "net.ipv6.conf.all.$k=0" "net.ipv6.conf.default.$k=0"
	done
	ip netns exec "$ns" sysctl -q -w net.ipv6.conf.default.addr_gen_mode=1 \
		net.ipv6.conf.all.mldv2_unsolicited_report_interval=10 \
		net.ipv6.conf.default.mldv2_unsolicited_report_interval=10
	ip -n "$ns" link set lo up
done
ip link add veth-a netns "$A" type veth peer name veth-b netns "$B"
ip -n "$A" link set veth-a gso_max_segs 1
ip -n "$B" link set veth-b gso_max_segs 1
ip -n "$A" addr add 10.252.0.1/24 dev veth-a
ip -n "$B" addr add 10.252.0.2/24 dev veth-b
ip -n "$A" addr add fd52::1/64 dev veth-a nodad
ip -n "$B" addr add fd52::2/64 dev veth-b nodad
mac_a=$(ip -n "$A" -o link show veth-a | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
mac_b=$(ip -n "$B" -o link show veth-b | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
ip -n "$A" neigh replace 10.252.0.2 lladdr "$mac_b" dev veth-a nud permanent
ip -n "$A" neigh replace fd52::2 lladdr "$mac_b" dev veth-a nud permanent
ip -n "$B" neigh replace 10.252.0.1 lladdr "$mac_a" dev veth-b nud permanent
ip -n "$B" neigh replace fd52::1 lladdr "$mac_a" dev veth-b nud permanent
ip -n "$A" link set veth-a up
ip -n "$B" link set veth-b up
ifindex_a=$(ip -n "$A" -o link show veth-a | cut -d: -f1)
sleep 1 # whatever the kernel sends when a link comes up, it sends now

# ---- the daemon -----------------------------------------------------------
start_daemon() { # DATA LOG FLAGS...
	local data=$1 log=$2
	shift 2
	ip netns exec "$A" "$FLOWSTORED" --data "$data" --source bpf "$@" \
		--batch-ms 50 --idle-timeout 2s 2>"$log" &
	daemon=$!
	for _ in $(seq 100); do
		grep -q "data in" "$log" && break
		kill -0 "$daemon" 2>/dev/null || fail "flowstored exited: $(cat "$log")"
		sleep 0.1
	done
	grep -q "flow programs attached to veth-a (ifindex $ifindex_a, tcx)" "$log" ||
		fail "not attached to veth-a with tcx: $(cat "$log")"
}

wait_log() { # LOG PATTERN
	for _ in $(seq 50); do
		grep -q -- "$2" "$1" && return 0
		sleep 0.1
	done
	fail "no '$2' in the log: $(cat "$1")"
}

# our_progs: the ids of the programs the daemon holds; checks that two of
# its links are TCX links on veth-a (bpftool before 7.3 does not show them).
our_progs() {
	local f tcx=0
	progs=
	for f in /proc/"$daemon"/fdinfo/*; do
		grep -q '^prog_id:' "$f" 2>/dev/null || continue
		progs="$progs $(sed -n 's/^prog_id:[[:space:]]*//p' "$f")"
		if grep -q '^link_type:[[:space:]]*tcx' "$f" &&
			grep -q "^ifindex:[[:space:]]*$ifindex_a\$" "$f"; then
			tcx=$((tcx + 1))
		fi
	done
	progs=$(echo "$progs" | tr ' ' '\n' | sort -un | tr '\n' ' ')
	[ "$tcx" = 2 ] || fail "want 2 TCX links on veth-a, found $tcx"
	[ -n "$progs" ] || fail "no BPF programs held by flowstored"
}

# nothing_left IDS...: no program of ours stays loaded, nothing on veth-a.
nothing_left() {
	local id left
	for _ in $(seq 50); do # programs are freed after an RCU grace period
		left=
		for id in "$@"; do
			bpftool prog show id "$id" >/dev/null 2>&1 && left="$left $id"
		done
		[ -z "$left" ] && break
		sleep 0.1
	done
	[ -z "$left" ] || fail "programs still loaded: $left"
	for dir in ingress egress; do
		[ -z "$(ip netns exec "$A" tc filter show dev veth-a "$dir")" ] ||
			fail "a tc filter stays on veth-a $dir: $(ip netns exec "$A" tc filter show dev veth-a "$dir")"
	done
	! ip netns exec "$A" tc qdisc show dev veth-a | grep -q clsact ||
		fail "a clsact qdisc stays on veth-a"
	! bpftool link show 2>/dev/null | grep -qE "prog ($(echo "$*" | tr ' ' '|'))\b" ||
		fail "a link to our programs remains: $(bpftool link show)"
}

start_daemon "$T/d" "$T/log" --interfaces veth-a
our_progs
progs1=$progs

# ---- traffic --------------------------------------------------------------
traffic_from=$(date +%s%N)
# counters NAME...: namespace A's counters, "NAME=VALUE" lines.
counters() {
	ip netns exec "$A" nstat -asz 2>/dev/null | awk '{print $1 "=" $2}'
}
counter() { # SNAPSHOT NAME
	echo "$1" | sed -n "s/^$2=//p"
}

# quiet: waits until namespace A has sent and received no IP packet for
# half a second (MLD reports for the groups an address joins come late).
quiet() {
	local last now
	last=$(ip netns exec "$A" nstat -asz | awk '/^(IpInReceives|IpOutRequests|Ip6InReceives|Ip6OutRequests) / {s = s $2 " "} END {print s}')
	for _ in $(seq 20); do
		sleep 0.5
		now=$(ip netns exec "$A" nstat -asz | awk '/^(IpInReceives|IpOutRequests|Ip6InReceives|Ip6OutRequests) / {s = s $2 " "} END {print s}')
		[ "$now" = "$last" ] && return 0
		last=$now
	done
	fail "namespace $A never went quiet"
}

# run_pair ADDR PORT K M: a TCP server in B, a client in A.
run_pair() {
	ip netns exec "$B" "$TCP_PEER" server "$1" "$2" "$3" "$4" >"$T/server.out" &
	local s=$!
	for _ in $(seq 50); do [ -s "$T/server.out" ] && break; sleep 0.05; done
	ip netns exec "$A" "$TCP_PEER" client "$1" "$2" "$3" "$4" >"$T/client-$2.out" ||
		fail "client to $1:$2 failed"
	wait "$s" || fail "server on $1:$2 failed"
	sleep 0.3 # the last ACK
}

# tcp_exchange ADDR PORT K M OCTETS: sets want_PORT to the packets and bytes
# namespace A's counters saw (OCTETS: IpExt or Ip6).
tcp_exchange() {
	local before after
	quiet
	before=$(counters)
	run_pair "$1" "$2" "$3" "$4"
	after=$(counters)
	# OutSegs leaves out retransmissions; the wire (and the IP octets) has them
	local out_p=$(($(counter "$after" TcpOutSegs) - $(counter "$before" TcpOutSegs) +
		$(counter "$after" TcpRetransSegs) - $(counter "$before" TcpRetransSegs)))
	local in_p=$(($(counter "$after" TcpInSegs) - $(counter "$before" TcpInSegs)))
	local out_b=$(($(counter "$after" "$5OutOctets") - $(counter "$before" "$5OutOctets")))
	local in_b=$(($(counter "$after" "$5InOctets") - $(counter "$before" "$5InOctets")))
	[ "$out_b" -gt "$3" ] && [ "$in_b" -gt "$4" ] ||
		fail "namespace counters for :$2 look wrong: out $out_b in $in_b bytes"
	eval "want_$2='$out_p $out_b $in_p $in_b'"
}

tcp_exchange 10.252.0.2 5001 123457 65432 IpExt
tcp_exchange fd52::2 5002 70001 3 Ip6
# A client whose TCP stamps each packet 700 ms ahead (TCP_TX_DELAY; no
# pacing qdisc, so the packets leave at once): its flow's last packet time
# is the stamp, not the clock, so it lies ahead of when the client exited.
# (The server ignores the variable.)
TCP_PEER_TX_DELAY_US=700000 run_pair 10.252.0.2 5006 1000 1000
delayed_exit=$(($(date +%s%N) - 300000000)) # no earlier than the exit: run_pair slept 0.3 s after
rc=0
ip netns exec "$A" "$TCP_PEER" client 10.252.0.2 5999 1 1 >/dev/null 2>&1 || rc=$?
[ "$rc" = 3 ] || fail "the connect to a closed port was not refused (exit $rc)"

UDP_N=10 UDP_SIZE=100
ip netns exec "$B" "$TCP_PEER" udp-server 10.252.0.2 5003 $UDP_N $UDP_SIZE >"$T/udp.out" &
udp=$!
for _ in $(seq 50); do [ -s "$T/udp.out" ] && break; sleep 0.05; done
ip netns exec "$A" "$TCP_PEER" udp-client 10.252.0.2 5003 $UDP_N $UDP_SIZE >"$T/udp-client.out" ||
	fail "udp client failed"
wait "$udp" || fail "udp server failed"

# The other way (B sends to A): the originator is the key's side 1.
ip netns exec "$A" "$TCP_PEER" udp-server 10.252.0.1 5004 $UDP_N $UDP_SIZE >"$T/udp.out" &
udp=$!
for _ in $(seq 50); do [ -s "$T/udp.out" ] && break; sleep 0.05; done
ip netns exec "$B" "$TCP_PEER" udp-client 10.252.0.1 5004 $UDP_N $UDP_SIZE >/dev/null ||
	fail "udp client in B failed"
wait "$udp" || fail "udp server in A failed"

# GSO/GRO left on: each side now hands its veth super-packets of up to 64
# KiB (the TC programs see one skb for many wire segments). Packets must
# still be the wire's segments and bytes the wire's bytes.
ip -n "$A" link set veth-a gso_max_segs 65535
ip -n "$B" link set veth-b gso_max_segs 65535
# A's TcpInSegs counts a GRO'd skb once, so the segments B sent come from
# B's own TcpOutSegs (counted per segment, retransmissions apart).
b_sent() {
	ip netns exec "$B" nstat -asz 2>/dev/null | awk '/^(TcpOutSegs|TcpRetransSegs) / {s += $2} END {print s}'
}
skbs_before=$(ip netns exec "$A" cat /sys/class/net/veth-a/statistics/tx_packets)
b_before=$(b_sent)
GSO_K=3000000 GSO_M=1500000
tcp_exchange 10.252.0.2 5005 $GSO_K $GSO_M IpExt
skbs=$(($(ip netns exec "$A" cat /sys/class/net/veth-a/statistics/tx_packets) - skbs_before))
b_segs=$(($(b_sent) - b_before))
ip -n "$A" link set veth-a gso_max_segs 1
ip -n "$B" link set veth-b gso_max_segs 1

ip netns exec "$A" ping -q -c 3 -i 0.2 -s 56 10.252.0.2 >/dev/null || fail "ping failed"
ip netns exec "$A" ping -q -6 -c 3 -i 0.2 -s 56 fd52::2 >/dev/null || fail "ping -6 failed"
sleep 3.5 # past the idle timeout (2s) and a sweep tick
traffic_to=$(date +%s%N)

kill -TERM "$daemon"
wait "$daemon" || fail "flowstored exited $?: $(tail -n 3 "$T/log")"
daemon=
nothing_left $progs1

# ---- the rows -------------------------------------------------------------
q() { # SQL over every partition, one merged answer
	local f
	for f in "$T/d"/raw-*.db; do sqlite3 -separator ' ' "file:$f?mode=ro" "$1"; done
}
COLS="orig_addr, resp_addr, resp_port, orig_pkts, orig_bytes, resp_pkts, resp_bytes, conn_state, history, ifname, end_reason"
expect_flow() { # WHERE WANT
	local got
	got=$(q "SELECT $COLS FROM flows WHERE $1")
	[ "$got" = "$2" ] || fail "flows where $1: got '$got', want '$2'"
}

read -r op ob ip ib <<<"$want_5001"
expect_flow "proto = 'tcp' AND resp_port = 5001" \
	"10.252.0.1 10.252.0.2 5001 $op $ob $ip $ib SF ShADadfF veth-a fin"
read -r op ob ip ib <<<"$want_5002"
expect_flow "proto = 'tcp' AND resp_port = 5002" \
	"fd52::1 fd52::2 5002 $op $ob $ip $ib SF ShADadfF veth-a fin"
# The TC hook cannot know the owner; the socket cookie of the client's
# egress packets joins the flow to the owner the lifecycle program captured
# in connect().
for port in 5001 5002; do
	cpid=$(sed -n 's/^pid=\([0-9]*\).*/\1/p' "$T/client-$port.out")
	got=$(q "SELECT pid, comm FROM flows WHERE proto = 'tcp' AND resp_port = $port")
	[ "$got" = "$cpid fs-client" ] || fail "flow :$port owner: got '$got', want '$cpid fs-client'"
done
# Every segment of this IPv4 exchange has a 20-byte IP header and a 32-byte
# TCP header (timestamps), but the SYN and SYN+ACK (40-byte TCP header with
# their options): bytes = payload + 52 per packet + 8.
read -r op ob ip ib <<<"$want_5005"
[ "$skbs" -lt "$op" ] || fail "GSO did not happen: $skbs skbs for $op segments sent"
expect_flow "proto = 'tcp' AND resp_port = 5005" \
	"10.252.0.1 10.252.0.2 5005 $op $((GSO_K + 52 * op + 8)) $b_segs $((GSO_M + 52 * b_segs + 8)) SF ShADadfF veth-a fin"
echo "GSO: A sent $op segments in $skbs skbs; B sent $b_segs segments, A's TCP saw $ip skbs"
# Times: TCP packets take the departure time their sender's TCP stamped
# (bpf/flow.bpf.c, invariant 15), every other packet the clock. Either way
# each flow lies within the traffic's wall-clock window.
bad=$(q "SELECT proto, resp_port, ts, ts_end FROM flows
	WHERE ts < $traffic_from OR ts_end > $traffic_to OR ts > ts_end")
# ... and a stamp is what a TCP packet's time is: the delayed client's last
# packets are stamped 700 ms past its exit (the clock would say before).
got=$(q "SELECT conn_state, ts_end > $delayed_exit + 400000000 FROM flows
	WHERE proto = 'tcp' AND resp_port = 5006")
[ "$got" = "SF 1" ] || fail "the TCP_TX_DELAY flow: got '$got' (want SF, ending 700 ms after $delayed_exit): $(q "SELECT ts, ts_end FROM flows WHERE resp_port = 5006")"
[ -z "$bad" ] || fail "flows outside the traffic's window [$traffic_from, $traffic_to]: $bad"
expect_flow "proto = 'tcp' AND resp_port = 5999" \
	"10.252.0.1 10.252.0.2 5999 1 60 1 40 REJ Sr veth-a rst"
expect_flow "proto = 'udp' AND resp_port = 5003" \
	"10.252.0.1 10.252.0.2 5003 $UDP_N $((UDP_N * (20 + 8 + UDP_SIZE))) 0 0 S0 D veth-a idle_timeout"
expect_flow "proto = 'udp' AND resp_port = 5004" \
	"10.252.0.2 10.252.0.1 5004 $UDP_N $((UDP_N * (20 + 8 + UDP_SIZE))) 0 0 S0 D veth-a idle_timeout"
# A UDP socket's owner is sent at its first send, and joined by cookie
# like TCP's: the 5003 flow left through veth-a from A's client; the 5004
# flow only came in on veth-a (its sender is in B), so no socket of A's.
upid=$(sed -n 's/^pid=\([0-9]*\).*/\1/p' "$T/udp-client.out")
got=$(q "SELECT pid, comm FROM flows WHERE proto = 'udp' AND resp_port = 5003")
[ "$got" = "$upid fs-client" ] || fail "udp flow :5003 owner: got '$got', want '$upid fs-client'"
got=$(q "SELECT count(*) FROM flows WHERE proto = 'udp' AND resp_port = 5004 AND pid IS NULL AND comm IS NULL" |
	awk '{s += $1} END {print s}')
[ "$got" = 1 ] || fail "udp flow :5004 has an owner: $(q "SELECT pid, comm FROM flows WHERE resp_port = 5004")"
expect_flow "proto = 'icmp'" \
	"10.252.0.1 10.252.0.2 0 3 $((3 * (20 + 8 + 56))) 3 $((3 * (20 + 8 + 56))) OTH  veth-a idle_timeout"
expect_flow "proto = 'icmp6' AND orig_port = 128" \
	"fd52::1 fd52::2 129 3 $((3 * (40 + 8 + 56))) 3 $((3 * (40 + 8 + 56))) OTH  veth-a idle_timeout"
others=$(q "SELECT count(*) FROM flows WHERE resp_port NOT IN (5001, 5002, 5005, 5006, 5999, 5003, 5004) AND proto NOT IN ('icmp', 'icmp6')" | awk '{s += $1} END {print s}')
[ "$others" = 0 ] || fail "unexpected flows: $(q "SELECT * FROM flows")"
# The counter is there; it need not be 0: the lifecycle programs see the
# whole host, and a transition of any socket that fires while the same
# program runs on that CPU is skipped and counted (conn.bpf.c, invariant
# 10); the rows checked above are exact whatever it says.
grep -q 'stats:.* kernel_recursion_misses=[0-9]' "$T/log" || fail "no recursion miss counter: $(grep stats: "$T/log")"
grep -q 'stats:.* kernel_lost_ringbuf_full=0 kernel_lost_map_full=0 kernel_lost_parse=0' "$T/log" ||
	fail "the kernel lost records: $(grep stats: "$T/log")"

# ---- the default set, interfaces that come and go; kill -9 -----------------
# Without --interfaces: every Ethernet interface that is up (veth-a), not lo;
# one that comes up later is attached, one that goes is forgotten.
start_daemon "$T/d2" "$T/log2"
our_progs
! grep -q "attached to lo " "$T/log2" || fail "lo attached by default: $(cat "$T/log2")"
ip -n "$A" link add veth-c type veth peer name veth-d
ip -n "$A" link set veth-c up
ifindex_c=$(ip -n "$A" -o link show veth-c | cut -d: -f1)
wait_log "$T/log2" "flow programs attached to veth-c (ifindex $ifindex_c, tcx)"
ip -n "$A" link del veth-c
wait_log "$T/log2" "flow programs detached from veth-c (ifindex $ifindex_c, gone)"
! grep -q "attached to veth-d" "$T/log2" || fail "veth-d attached while down: $(cat "$T/log2")"
kill -9 "$daemon"
wait "$daemon" 2>/dev/null || true
daemon=
nothing_left $progs

# ---- many short flows: the sweep keeps the map from filling ----------------
# 5000 new one-packet UDP flows a second for 6 s into a map of 16384 with
# the default idle timeout (15 s): left alone the map would be full after
# about 3 s and every later flow a one-packet map_full record. The sweep
# shortens the idle period to what keeps the map half full; no flow is lost
# or recorded as map_full, and every datagram is one flow row.
: "${TCP_LOAD:?TCP_LOAD must name bench/tcp_load}"
ip netns exec "$A" "$FLOWSTORED" --data "$T/d3" --source bpf --interfaces veth-a \
	--flow-map-size 16384 --batch-ms 50 2>"$T/log3" &
daemon=$!
wait_log "$T/log3" "flow programs attached to veth-a"
sent=$(ip netns exec "$A" "$TCP_LOAD" flows veth-a "$mac_b" 10.252.0.2 9 6 5000 | sed -n 's/^flows //p')
[ "$sent" -ge 29000 ] || fail "the load sent $sent flows"
sleep 1
kill -TERM "$daemon"
wait "$daemon" || fail "flowstored exited $?: $(tail -n 3 "$T/log3")"
daemon=
grep -q "exporting flows idle for" "$T/log3" || fail "the idle period was not shortened: $(cat "$T/log3")"
grep -q 'stats:.* kernel_lost_ringbuf_full=0 kernel_lost_map_full=0 kernel_lost_parse=0' "$T/log3" ||
	fail "the kernel lost or degraded records: $(grep stats: "$T/log3" | tail -n 1)"
got=$(for f in "$T/d3"/raw-*.db; do
	sqlite3 "file:$f?mode=ro" "SELECT count(*) FROM flows WHERE proto = 'udp' AND resp_port = 9 AND orig_pkts = 1 AND resp_pkts = 0 AND end_reason IN ('idle_timeout', 'shutdown')"
done | awk '{s += $1} END {print s}')
[ "$got" = "$sent" ] || fail "$sent flows sent, $got one-packet flow rows"
echo "e2e_bpf_flows: ok"
