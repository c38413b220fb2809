# bench/netns.sh: sourced by bench/overhead.sh and bench/storm_profile.sh.
#
# netns_pair A B: two network namespaces joined by a veth pair, veth-a in A
# (10.253.0.1/24) and veth-b in B (10.253.0.2/24), loopback up, and what a
# connection storm needs (ephemeral ports 10000-65000, tcp_tw_reuse).
# netns_pair_del A B: removes them (and so the pair); quiet if they are gone.

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
