// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * conn: TCP state transitions of local sockets, one struct fs_tcp_state_event
 * per call of the inet_sock_set_state tracepoint (tp_btf: no tracefs needed).
 *
 * Invariants:
 *  - Only IPPROTO_TCP sockets of AF_INET or AF_INET6 are reported.
 *  - Every record is reserve -> fill -> submit on the `events` ring buffer;
 *    a failed reserve is counted in `losses`[FS_LOSS_RINGBUF_FULL], never
 *    silent. User space sizes `events` before load (bpf_map__set_max_entries).
 *  - Every byte of a record is written (reserved memory is not zeroed).
 *  - local_port is 0 at CLOSE -> SYN_SENT: the kernel has not chosen it yet.
 *    The socket cookie ties that record to the socket's later ones.
 *  - pid/comm are taken from the current task only at CLOSE -> SYN_SENT,
 *    i.e. inside connect(): at any other transition the current task is
 *    often not the socket's owner (softirq, timers), so they stay 0/"".
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "events.h"

/* Not in vmlinux.h: they are macros in the kernel. */
#define AF_INET 2
#define AF_INET6 10

_Static_assert(FS_TCP_ESTABLISHED == TCP_ESTABLISHED, "TCP state numbering");
_Static_assert(FS_TCP_SYN_SENT == TCP_SYN_SENT, "TCP state numbering");
_Static_assert(FS_TCP_SYN_RECV == TCP_SYN_RECV, "TCP state numbering");
_Static_assert(FS_TCP_FIN_WAIT1 == TCP_FIN_WAIT1, "TCP state numbering");
_Static_assert(FS_TCP_FIN_WAIT2 == TCP_FIN_WAIT2, "TCP state numbering");
_Static_assert(FS_TCP_TIME_WAIT == TCP_TIME_WAIT, "TCP state numbering");
_Static_assert(FS_TCP_CLOSE == TCP_CLOSE, "TCP state numbering");
_Static_assert(FS_TCP_CLOSE_WAIT == TCP_CLOSE_WAIT, "TCP state numbering");
_Static_assert(FS_TCP_LAST_ACK == TCP_LAST_ACK, "TCP state numbering");
_Static_assert(FS_TCP_LISTEN == TCP_LISTEN, "TCP state numbering");
_Static_assert(FS_TCP_CLOSING == TCP_CLOSING, "TCP state numbering");
_Static_assert(FS_TCP_NEW_SYN_RECV == TCP_NEW_SYN_RECV, "TCP state numbering");

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20); /* default; user space sets it before load */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FS_LOSS_MAX);
	__type(key, __u32);
	__type(value, __u64);
} losses SEC(".maps");

static __always_inline void count_loss(__u32 reason)
{
	__u64 *n = bpf_map_lookup_elem(&losses, &reason);

	if (n)
		*n += 1; /* per-CPU: no other writer */
}

static __always_inline __u8 direction_of(int oldstate, int newstate)
{
	if (oldstate == FS_TCP_SYN_SENT || newstate == FS_TCP_SYN_SENT)
		return FS_DIR_OUT;
	if (oldstate == FS_TCP_SYN_RECV || newstate == FS_TCP_SYN_RECV ||
	    oldstate == FS_TCP_NEW_SYN_RECV || newstate == FS_TCP_NEW_SYN_RECV ||
	    oldstate == FS_TCP_LISTEN || newstate == FS_TCP_LISTEN)
		return FS_DIR_IN;
	return FS_DIR_UNKNOWN;
}

/* Local and remote address, 16 bytes each, IPv4 as ::ffff:a.b.c.d. */
static __always_inline void read_addrs(struct fs_tcp_state_event *e,
				       const struct sock *sk, __u16 family)
{
	if (family == AF_INET6) {
		BPF_CORE_READ_INTO(&e->local_addr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&e->remote_addr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
		return;
	}
	e->local_addr[10] = 0xff;
	e->local_addr[11] = 0xff;
	e->remote_addr[10] = 0xff;
	e->remote_addr[11] = 0xff;
	BPF_CORE_READ_INTO((__be32 *)&e->local_addr[12], sk, __sk_common.skc_rcv_saddr);
	BPF_CORE_READ_INTO((__be32 *)&e->remote_addr[12], sk, __sk_common.skc_daddr);
}

/*
 * skc_num is 0 at CLOSE -> SYN_SENT (connect() picks the port just after)
 * and again at -> CLOSE (the port was released just before, unless bind()
 * named it); inet_sport still holds it at -> CLOSE.
 */
static __always_inline __u16 local_port(const struct sock *sk)
{
	__u16 port = BPF_CORE_READ(sk, __sk_common.skc_num);

	if (port)
		return port;
	return bpf_ntohs(BPF_CORE_READ((const struct inet_sock *)sk, inet_sport));
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(conn_set_state, const struct sock *sk, int oldstate, int newstate)
{
	struct fs_tcp_state_event *e;
	__u16 family;

	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_loss(FS_LOSS_RINGBUF_FULL);
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));

	e->hdr.ts_ns = bpf_ktime_get_ns();
	e->hdr.type = FS_EVENT_TCP_STATE;
	e->hdr.size = sizeof(*e);
	e->sock_cookie = bpf_get_socket_cookie((void *)sk);
	read_addrs(e, sk, family);
	e->local_port = local_port(sk);
	e->remote_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	e->old_state = oldstate;
	e->new_state = newstate;
	e->direction = direction_of(oldstate, newstate);
	if (oldstate == FS_TCP_CLOSE && newstate == FS_TCP_SYN_SENT) {
		e->pid = bpf_get_current_pid_tgid() >> 32;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
	}

	bpf_ringbuf_submit(e, 0);
	return 0;
}
