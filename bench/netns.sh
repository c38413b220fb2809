# bench/netns.sh: sourced by bench/overhead.sh and bench/storm_profile.sh.
#
# median: the median of the numbers on stdin, one a line.
# stats_drops LOG [KEY...]: the drop counters (events_dropped,
# kernel_lost_*) and the KEYs given, from the last "stats:" line of the
# daemon's LOG, as KEY=N words.
#
# netns_pair A B: two network namespaces joined by a veth pair, veth-a in A
# (10.253.0.1/24) and veth-b in B (10.253.0.2/24), loopback up, and what a
# connection storm needs (ephemeral ports 10000-65000, tcp_tw_reuse).
# netns_pair_del A B: removes them (and so the pair); quiet if they are gone.

# The drop counters of a stats line, as a grep -E alternation.
DROP_KEYS='events_dropped|kernel_lost_[a-z_]*'

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

stats_drops() {
	local log=$1 keys=$DROP_KEYS
	shift
	for k in "$@"; do keys="$keys|$k"; done
	grep 'stats:' "$log" | tail -n 1 | tr ' ' '\n' | grep -E "^($keys)=" | tr '\n' ' ' | sed 's/ $//'
}

netns_pair() {
	ip netns add "$1"
	ip netns add "$2"
	ip link add veth-a netns "$1" type veth peer name veth-b netns "$2"
	ip -n "$1" addr add 10.253.0.1/24 dev veth-a
	ip -n "$2" addr add 10.253.0.2/24 dev veth-b
	for ns in "$1" "$2"; do
		ip -n "$ns" link set lo up
		ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="10000 65000"
		ip netns exec "$ns" sysctl -qw net.ipv4.tcp_tw_reuse=1
	done
	ip -n "$1" link set veth-a up
	ip -n "$2" link set veth-b up
}

netns_pair_del() {
	ip netns del "$1" 2>/dev/null || true
	ip netns del "$2" 2>/dev/null || true
}

# bench_pair NAME: the pair as $A (NAME-a-PID) and $B (NAME-b-PID), a
# scratch dir $T, and an EXIT trap that kills $daemon and $server (when
# set) and removes the pair and $T.
bench_pair() {
	A=$1-a-$$
	B=$1-b-$$
	T=$(mktemp -d "/tmp/$1.XXXXXX")
	trap bench_pair_cleanup EXIT
	netns_pair "$A" "$B"
}

bench_pair_cleanup() {
	[ -n "${daemon:-}" ] && kill -9 "$daemon" 2>/dev/null
	[ -n "${server:-}" ] && kill "$server" 2>/dev/null
	netns_pair_del "$A" "$B"
	rm -rf "$T"
}
