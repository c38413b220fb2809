// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * conn: the TCP lifecycle of local sockets. Every state transition
 * (tp_btf/inet_sock_set_state: no tracefs needed) becomes a struct
 * fs_tcp_state_event; every connection, when its socket reaches CLOSE,
 * becomes one struct fs_tcp_conn_event. Between the two, `conns` holds what
 * a connection's record needs that the socket itself does not keep: when it
 * started, who opened it, the states it went through.
 *
 * A socket's life, as the programs see it (cookie = bpf_get_socket_cookie):
 *
 *   active:  CLOSE->SYN_SENT   in connect(): entry created, owner = current
 *            SYN_SENT->ESTABLISHED ... ->CLOSE
 *   passive: LISTEN->SYN_RECV  the child, in softirq (inet_csk_clone_lock):
 *                              entry created, the event held back (below)
 *            SYN_RECV->ESTABLISHED   held-back event emitted first
 *            owner = current at its first send or receive (conn_send,
 *            conn_recv) or its close, or (--accept-owner syscall) when
 *            accept()/accept4() returns it (conn_accept)
 *            ... ->CLOSE
 *   ->CLOSE: state event, then the connection record, then the entry goes.
 *
 * Invariants:
 *  1. Only IPPROTO_TCP sockets of AF_INET or AF_INET6 are looked at.
 *  2. Every record is reserve -> fill every byte -> submit on `events`; a
 *     failed reserve is counted in `losses`[FS_LOSS_RINGBUF_FULL], never
 *     silent. User space sizes `events` before load.
 *  3. A socket's entry lives in `conns`, a direct-mapped table: slot
 *     cookie & conn_slot_mask, or, when another live socket holds that slot,
 *     in `conns_spill`, a plain hash keyed by cookie (not LRU: eviction
 *     would silently cut a live connection's record). User space sizes both
 *     and sets the mask before load (bpf/conn_table.h). Socket cookies are
 *     handed out in sequence, so sockets alive together rarely share a slot;
 *     a slot costs a load and a compare-and-swap where a hash insert cost
 *     ~250 ns (docs/benchmarks.md, session 6). An entry lives from the
 *     socket's first traced transition (or its accept) to its ->CLOSE, where
 *     it is removed. Listeners get no entry: they are not connections. An
 *     entry that finds neither its slot nor the spill free is counted in
 *     `losses`[FS_LOSS_MAP_FULL]; the socket's events still go out, and its
 *     connection record carries what was known at close.
 *  4. The owner (tgid, uid, comm, cgroup) is taken from the current task
 *     only where that task is the owner: at CLOSE->SYN_SENT, which runs in
 *     connect(); for a socket whose owner is still unknown (an accepted
 *     child, a socket first seen mid-life), at its first sendmsg/recvmsg
 *     (tp_btf/sock_send_length and sock_recv_length fire in the calling
 *     task, io_uring's workers included) or at the transitions only its
 *     close()/shutdown() makes (ESTABLISHED or SYN_RECV -> FIN_WAIT1,
 *     CLOSE_WAIT -> LAST_ACK); or, when user space loads conn_accept
 *     (--accept-owner syscall), at the exit of the accept()/accept4()
 *     syscall that returned it. Elsewhere current is whoever runs the
 *     softirq or timer. Once known, every later event of the socket carries
 *     it. Left unknown: a passive socket reset before its task used it, and
 *     (syscall mode) one accepted by io_uring, an in-kernel server or an
 *     ia32 task. Two threads of one process taking the first I/O of a
 *     socket at the same instant may leave it with either thread's comm.
 *  5. The LISTEN->SYN_RECV event of a passive child is held in its entry
 *     (syn_recv_held; its time is the entry's start_ns, taken with it) and
 *     emitted, with that time, just before the
 *     child's next transition, reading the addresses then: before Linux 6.15
 *     the tracepoint fires inside inet_csk_clone_lock() before the child's
 *     remote address and ports are set (they still hold the listener's).
 *     Since 6.15 (commit a3a128f611a9, "inet: consolidate
 *     inet_csk_clone_lock()") they are set first; holding the event back is
 *     then harmless. Before 6.15 the child's cookie is not its own yet either
 *     (sock_copy() copied the listener's; the child's own is set after the
 *     tracepoint): a child whose remote port reads 0 there gets its event at
 *     once, as the kernel shows it, and no entry until its next transition.
 *  6. A connection record goes out for every socket that reaches CLOSE from
 *     any state but LISTEN. start_ns is when the entry was made: the open
 *     when state_path starts with SYN_SENT or SYN_RECV; for a socket first
 *     seen mid-life (flowstored started later) the first transition or
 *     accept seen; with no entry at all, the close. state_path holds the
 *     first FS_STATE_PATH_LEN states entered, CLOSE included; path_len
 *     counts them all (saturating at 255).
 *  7. local_port is 0 at CLOSE -> SYN_SENT: the kernel has not chosen it
 *     yet. The socket cookie ties that record to the socket's later ones.
 *  8. Wakeups: ringbuf_wakeup_bytes = 0 submits with flags 0 (libbpf's
 *     adaptive wakeup); N > 0 submits without a wakeup unless the ring then
 *     holds >= N bytes, when it forces one. User space then drains on a
 *     timer too (DESIGN.md, "Wakeups decide the ring buffer's cost").
 *  9. bytes_acked and bytes_received are payload: the kernel's counters
 *     also count the SYN and FINs, which are taken out (payload_acked()).
 * 10. The kernel skips a program that fires while it already runs on the
 *     same CPU (a softirq's transition interrupting one in process
 *     context) and counts it only in the program's recursion_misses
 *     (struct bpf_prog_info), not in `losses`: user space reads both.
 * 11. Datagram sockets (SOCK_DGRAM of AF_INET/AF_INET6: UDP, UDP-Lite, ICMP
 *     "ping") have no transitions: at the first send seen on one, conn_send
 *     emits a struct fs_sock_owner_event (cookie and the sending task), once
 *     per socket (a mark in the socket's own storage, `dgram_told`, freed
 *     with it). Flow records carry the cookie of their egress socket; user
 *     space joins the two. A failed reserve leaves the mark unset, so the
 *     next send tries again; two CPUs sending at once may both tell.
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

#if !defined(__TARGET_ARCH_x86)
#error "x86-64 only: conn_accept reads its syscall numbers and registers, entry_make relies on its store order"
#endif
#define NR_ACCEPT 43    /* x86-64 */
#define NR_ACCEPT4 288  /* x86-64 */
#define X32_SYSCALL_BIT 0x40000000
#define TS_COMPAT 0x0002 /* thread_info.status: in an ia32 syscall */

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


#define CONN_OWNER_KNOWN 0x01 /* conn_entry.flags: pid/uid/comm/cgroup_id valid */

/*
 * What `conns` keeps per socket until its ->CLOSE (key: socket cookie).
 * 56 bytes, so that a slot (cookie and entry) is one 64-byte cache line:
 * a new socket's slot is memory no one touched for a while, and a second
 * line was a second miss (docs/benchmarks.md, session 7).
 */
struct conn_entry {
	__u64 start_ns;  /* invariant 6 */
	__u64 cgroup_id; /* owner's, when CONN_OWNER_KNOWN */
	__u32 pid;       /* owner's tgid, when CONN_OWNER_KNOWN */
	__u32 uid;
	char comm[FS_COMM_LEN];
	__u64 state_path; /* the first FS_STATE_PATH_LEN states entered, 4 bits each
			   * from the lowest (TCP states are < 16) */
	__u8 path_len;  /* states entered, saturating at 255 */
	__u8 direction; /* enum fs_direction */
	__u8 flags;     /* CONN_OWNER_KNOWN; written only where the owner is */
	__u8 syn_recv_held; /* LISTEN->SYN_RECV event held back, at start_ns (inv. 5) */
	__u8 reserved[4];
};
_Static_assert(sizeof(struct conn_entry) == 56, "conn_entry layout");
_Static_assert(FS_STATE_PATH_LEN * 4 == sizeof(__u64) * 8, "state_path nibbles");
_Static_assert(TCP_MAX_STATES <= 16, "a TCP state fits in 4 bits");

#include "output.bpf.h"

/* enum fs_tcp_state_policy: which transitions become tcp_state records. */
const volatile __u32 tcp_state_events = FS_STATES_ALL;

static __always_inline bool state_wanted(int oldstate, int newstate)
{
	if (tcp_state_events == FS_STATES_ALL)
		return true;
	if (tcp_state_events == FS_STATES_NONE)
		return false;
	return newstate == FS_TCP_ESTABLISHED || newstate == FS_TCP_LISTEN ||
	       (oldstate == FS_TCP_LISTEN && newstate == FS_TCP_CLOSE);
}

/* conn_slot.cookie is cookie ^ SLOT_FILLING while its owner writes the
 * entry: readers match only a whole entry's cookie. An XOR, not an OR: a
 * cookie may have bit 63 set (kernels that hand out cookies from a
 * reverse counter when cookie generation nests), and cookie | bit 63 would
 * then be the cookie itself. The marker equals another live socket's
 * cookie only if the two differ in bit 63 alone. */
#define SLOT_FILLING (1ull << 63)

/* Reads of a slot another CPU is filling before entry_make gives up: the
 * filler's stores are a 56-byte copy and one store, done in nanoseconds
 * unless that CPU is interrupted in between. */
#define SLOT_FILL_WAIT 64

struct conn_slot {
	__u64 cookie; /* 0: free; else its socket's cookie (^ SLOT_FILLING while filled) */
	struct conn_entry e;
};

/* Slots - 1; user space sets it with the table's size (a power of two). */
const volatile __u32 conn_slot_mask = 65535;

_Static_assert(sizeof(struct conn_slot) == 64, "a slot is a cache line");

/* Mmapable only for its layout: the kernel then starts the values on a
 * page, so every 64-byte slot is a whole cache line. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 65536); /* default; user space sets it before load */
	__type(key, __u32);         /* cookie & conn_slot_mask */
	__type(value, struct conn_slot);
} conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768); /* default (half the slots); user space sets it before load */
	__type(key, __u64);         /* socket cookie */
	__type(value, struct conn_entry);
} conns_spill SEC(".maps");

static __always_inline struct conn_slot *slot_of(__u64 cookie)
{
	__u32 i = (__u32)cookie & conn_slot_mask;

	return bpf_map_lookup_elem(&conns, &i);
}

/* The entry of `cookie`, or NULL (invariant 3). */
static __always_inline struct conn_entry *entry_find(__u64 cookie)
{
	struct conn_slot *s = slot_of(cookie);

	if (s && s->cookie == cookie)
		return &s->e;
	return bpf_map_lookup_elem(&conns_spill, &cookie);
}

/*
 * Makes the entry of `cookie` a copy of *fresh and returns it, *made true.
 * If the socket has one already (another CPU made it meanwhile), returns
 * that one, *made false; if another CPU is filling this socket's slot at
 * this instant (a socket met mid-life by two CPUs at once), waits up to
 * SLOT_FILL_WAIT reads for it. NULL: no free slot or spill entry, or the
 * filler did not finish in time; counted as map full either way.
 */
static __always_inline struct conn_entry *entry_make(__u64 cookie,
						     const struct conn_entry *fresh, bool *made)
{
	struct conn_slot *s = slot_of(cookie);
	struct conn_entry *c;
	__u64 held;
	long err;
	int i;

	*made = false;
	if (!s) /* cannot happen: the index is masked */
		return NULL;
	held = __sync_val_compare_and_swap(&s->cookie, 0, cookie ^ SLOT_FILLING);
	if (held == 0) {
		s->e = *fresh;
		/* The entry is whole before its cookie shows: on x86-64 (TSO)
		 * other CPUs see these stores in program order, so a compiler
		 * barrier and a plain store publish it. A full barrier here
		 * (xchg) made the program wait for the entry's cache lines. */
		asm volatile("" ::: "memory");
		*(volatile __u64 *)&s->cookie = cookie;
		*made = true;
		return &s->e;
	}
	for (i = 0; i < SLOT_FILL_WAIT && held == (cookie ^ SLOT_FILLING); i++)
		held = *(volatile __u64 *)&s->cookie;
	if (held == cookie)
		return &s->e;
	if (held != (cookie ^ SLOT_FILLING)) {
		/* Another socket's slot: the spill. NOEXIST, as a CPU making
		 * this socket's entry there now may win. */
		err = bpf_map_update_elem(&conns_spill, &cookie, fresh, BPF_NOEXIST);
		c = bpf_map_lookup_elem(&conns_spill, &cookie);
		if (c) {
			*made = err == 0;
			return c;
		}
	}
	count_loss(FS_LOSS_MAP_FULL);
	return NULL;
}

/* The socket closed: its entry goes. */
static __always_inline void entry_forget(__u64 cookie)
{
	struct conn_slot *s = slot_of(cookie);

	if (s && s->cookie == cookie &&
	    __sync_val_compare_and_swap(&s->cookie, cookie, 0) == cookie)
		return;
	bpf_map_delete_elem(&conns_spill, &cookie);
}

/* Who opened the connection, guessed from one transition (no entry). */
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

/*
 * The socket's fields are read directly: the tracepoint's sk is a BTF
 * pointer the verifier knows, so a read is a plain load (guarded by the
 * exception table) rather than a bpf_probe_read_kernel() call per field,
 * and CO-RE still relocates each offset. Paths that must walk pointers of
 * unknown provenance (sock_of_fd) keep BPF_CORE_READ.
 */

/* Local and remote address, 16 bytes each, IPv4 as ::ffff:a.b.c.d. The
 * destinations are zeroed already. */
static __always_inline void read_addrs(__u8 *local, __u8 *remote, const struct sock *sk,
				       __u16 family)
{
	if (family == AF_INET6) {
		__builtin_memcpy(local, &sk->__sk_common.skc_v6_rcv_saddr, 16);
		__builtin_memcpy(remote, &sk->__sk_common.skc_v6_daddr, 16);
		return;
	}
	local[10] = 0xff;
	local[11] = 0xff;
	remote[10] = 0xff;
	remote[11] = 0xff;
	*(__be32 *)&local[12] = sk->__sk_common.skc_rcv_saddr;
	*(__be32 *)&remote[12] = sk->__sk_common.skc_daddr;
}

/*
 * skc_num is 0 at CLOSE -> SYN_SENT (connect() picks the port just after)
 * and again at -> CLOSE (the port was released just before, unless bind()
 * named it); inet_sport still holds it at -> CLOSE.
 */
static __always_inline __u16 local_port(const struct sock *sk)
{
	struct tcp_sock *tp;
	__u16 port = sk->__sk_common.skc_num;

	if (port)
		return port;
	tp = bpf_skc_to_tcp_sock((void *)sk);
	return tp ? bpf_ntohs(tp->inet_conn.icsk_inet.inet_sport) : 0;
}

static __always_inline __u16 remote_port(const struct sock *sk)
{
	return bpf_ntohs(sk->__sk_common.skc_dport);
}

/* The socket's family if it is one we trace, else 0. */
static __always_inline __u16 traced_family(const struct sock *sk)
{
	__u16 family;

	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6)
		return 0;
	return family;
}

/* The same, for a socket reached through probe reads (not a BTF pointer). */
static __always_inline bool traced_family_read(const struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	return BPF_CORE_READ(sk, sk_protocol) == IPPROTO_TCP &&
	       (family == AF_INET || family == AF_INET6);
}

/* Current task as the owner. Called only where it is (invariant 4). */
static __always_inline void owner_from_current(struct conn_entry *c)
{
	c->pid = bpf_get_current_pid_tgid() >> 32;
	c->uid = (__u32)bpf_get_current_uid_gid();
	c->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(c->comm, sizeof(c->comm));
	/* Readers test the flag first: set it after the fields. */
	asm volatile("" ::: "memory");
	c->flags |= CONN_OWNER_KNOWN;
}

static __always_inline void path_append(struct conn_entry *c, __u8 state)
{
	__u8 n = c->path_len;

	if (n < FS_STATE_PATH_LEN)
		c->state_path |= (__u64)(state & 0xf) << (4 * n);
	if (n < 255)
		c->path_len = n + 1;
}

/* The entry of `cookie`, made (no owner, path empty) if there is none;
 * NULL if there is no room (counted). */
static __always_inline struct conn_entry *entry_get_or_create(__u64 cookie, __u64 now,
							      __u8 direction)
{
	struct conn_entry *c = entry_find(cookie);
	struct conn_entry fresh = {
		.start_ns = now,
		.direction = direction,
	};
	bool made;

	if (c)
		return c;
	/* Another CPU may be making it now (accept vs. softirq): joined. */
	return entry_make(cookie, &fresh, &made);
}

/* Owner-only fields of an event: from the entry when its owner is known. */
static __always_inline void owner_into_state(struct fs_tcp_state_event *e,
					     const struct conn_entry *c)
{
	if (!c || !(c->flags & CONN_OWNER_KNOWN))
		return;
	asm volatile("" ::: "memory");
	e->pid = c->pid;
	__builtin_memcpy(e->comm, c->comm, sizeof(e->comm));
}

static __always_inline void emit_state(const struct sock *sk, __u16 family, __u64 cookie,
				       __u64 ts, int oldstate, int newstate,
				       const struct conn_entry *c)
{
	struct fs_tcp_state_event *e;

	if (!state_wanted(oldstate, newstate))
		return;
	e = output_reserve(sizeof(*e));
	if (!e)
		return;
	__builtin_memset(e, 0, sizeof(*e));
	e->hdr.ts_ns = ts;
	e->hdr.type = FS_EVENT_TCP_STATE;
	e->hdr.size = sizeof(*e);
	e->sock_cookie = cookie;
	read_addrs(e->local_addr, e->remote_addr, sk, family);
	e->local_port = local_port(sk);
	e->remote_port = remote_port(sk);
	e->old_state = oldstate;
	e->new_state = newstate;
	e->direction = c ? c->direction : direction_of(oldstate, newstate);
	owner_into_state(e, c);
	output_submit(e);
}

/* Our FIN went out: the states only our close or shutdown leads to. */
static __always_inline bool fin_sent(int oldstate)
{
	return oldstate == FS_TCP_FIN_WAIT1 || oldstate == FS_TCP_FIN_WAIT2 ||
	       oldstate == FS_TCP_CLOSING || oldstate == FS_TCP_LAST_ACK;
}

/*
 * Payload acknowledged. tcp_sock.bytes_acked counts how far snd_una moved,
 * so it also counts our SYN (active open: a passive child's snd_una starts
 * past its SYN-ACK) and our FIN once they are acked. Whether a socket first
 * seen mid-life made the active open is unknown; if all it sent was acked,
 * the payload is what it sent once (bytes_sent less bytes_retrans) instead.
 */
static __always_inline __u64 payload_acked(const struct tcp_sock *tp, __u8 direction,
					   int oldstate)
{
	__u64 acked = tp->bytes_acked;
	__u64 sent = tp->bytes_sent, resent = tp->bytes_retrans;
	bool all_acked = tp->snd_una == tp->write_seq;

	if (direction == FS_DIR_UNKNOWN && all_acked && sent >= resent)
		return sent - resent;
	if (fin_sent(oldstate) && all_acked && acked)
		acked--;
	if (direction == FS_DIR_OUT && oldstate != FS_TCP_SYN_SENT &&
	    oldstate != FS_TCP_SYN_RECV && acked)
		acked--;
	return acked;
}

/* Payload received: bytes_received counts the peer's FIN too, once
 * tcp_fin() has taken it (and set SOCK_DONE). */
static __always_inline __u64 payload_received(const struct tcp_sock *tp)
{
	__u64 received = tp->bytes_received;

	if ((tp->inet_conn.icsk_inet.sk.__sk_common.skc_flags & (1UL << SOCK_DONE)) && received)
		received--;
	return received;
}

static __always_inline void tcp_counters_into(struct fs_tcp_conn_event *e, const struct sock *sk,
					      int oldstate)
{
	const struct tcp_sock *tp = bpf_skc_to_tcp_sock((void *)sk);

	if (!tp) /* traced_family() said TCP: cannot happen */
		return;
	e->bytes_acked = payload_acked(tp, e->direction, oldstate);
	e->bytes_received = payload_received(tp);
	e->segs_out = tp->segs_out;
	e->segs_in = tp->segs_in;
	e->retransmits = tp->total_retrans;
	e->srtt_us = tp->srtt_us >> 3; /* kept << 3 */
}

/* What only the entry knows; with no entry, the closing transition alone. */
static __always_inline void entry_into_conn(struct fs_tcp_conn_event *e,
					    const struct conn_entry *c, int oldstate)
{
	int i;

	if (!c) {
		e->direction = direction_of(oldstate, FS_TCP_CLOSE);
		e->state_path[0] = FS_TCP_CLOSE;
		e->path_len = 1;
		return;
	}
	if (c->start_ns)
		e->start_ns = c->start_ns;
	e->direction = c->direction;
	e->path_len = c->path_len;
	for (i = 0; i < FS_STATE_PATH_LEN; i++)
		e->state_path[i] = (c->state_path >> (4 * i)) & 0xf;
	if (!(c->flags & CONN_OWNER_KNOWN))
		return;
	asm volatile("" ::: "memory");
	e->pid = c->pid;
	e->uid = c->uid;
	e->cgroup_id = c->cgroup_id;
	__builtin_memcpy(e->comm, c->comm, sizeof(e->comm));
}

static __always_inline void emit_conn(const struct sock *sk, __u16 family, __u64 cookie,
				      __u64 now, int oldstate, const struct conn_entry *c)
{
	struct fs_tcp_conn_event *e = output_reserve(sizeof(*e));

	if (!e)
		return;
	__builtin_memset(e, 0, sizeof(*e));
	e->hdr.ts_ns = now;
	e->hdr.type = FS_EVENT_TCP_CONN;
	e->hdr.size = sizeof(*e);
	e->start_ns = now;
	e->end_ns = now;
	e->sock_cookie = cookie;
	read_addrs(e->local_addr, e->remote_addr, sk, family);
	e->local_port = local_port(sk);
	e->remote_port = remote_port(sk);
	e->close_state = oldstate;
	entry_into_conn(e, c, oldstate);
	tcp_counters_into(e, sk, oldstate); /* after: needs the direction */
	output_submit(e);
}

/* CLOSE -> SYN_SENT runs in connect(): a fresh entry, owned by current. */
static __always_inline void on_connect(const struct sock *sk, __u16 family, __u64 cookie,
				       __u64 now)
{
	struct conn_entry fresh = {
		.start_ns = now,
		.direction = FS_DIR_OUT,
	};
	struct conn_entry *c;
	bool made;

	owner_from_current(&fresh);
	path_append(&fresh, FS_TCP_SYN_SENT);
	/* A socket in CLOSE has no live entry: whatever is left is replaced.
	 * The event reads the owner from the copy here. */
	c = entry_make(cookie, &fresh, &made);
	if (c && !made)
		*c = fresh;
	emit_state(sk, family, cookie, now, FS_TCP_CLOSE, FS_TCP_SYN_SENT, &fresh);
}

/* Transitions that only the socket's own close() or shutdown() makes
 * (tcp_close_state()): they run in the owner's task (invariant 4). */
static __always_inline bool closed_by_task(int oldstate, int newstate)
{
	return (newstate == FS_TCP_FIN_WAIT1 &&
		(oldstate == FS_TCP_ESTABLISHED || oldstate == FS_TCP_SYN_RECV)) ||
	       (oldstate == FS_TCP_CLOSE_WAIT && newstate == FS_TCP_LAST_ACK);
}

/* LISTEN -> SYN_RECV of a passive child: held back (invariant 5). */
static __always_inline void on_child(const struct sock *sk, __u16 family, __u64 cookie,
				     __u64 now)
{
	struct conn_entry fresh = {
		.start_ns = now,
		.direction = FS_DIR_IN,
		.syn_recv_held = 1,
	};
	struct conn_entry *c;
	bool made;

	if (remote_port(sk) == 0) {
		emit_state(sk, family, cookie, now, FS_TCP_LISTEN, FS_TCP_SYN_RECV, NULL);
		return;
	}
	/* A new child: its entry is made whole at once. */
	path_append(&fresh, FS_TCP_SYN_RECV);
	c = entry_make(cookie, &fresh, &made);
	if (made)
		return;
	if (!c) {
		emit_state(sk, family, cookie, now, FS_TCP_LISTEN, FS_TCP_SYN_RECV, NULL);
		return;
	}
	/* One was there already (no path makes one first; kept safe): join it. */
	c->syn_recv_held = 1; /* at the entry's start_ns */
	path_append(c, FS_TCP_SYN_RECV);
}

/* -> CLOSE: the last event, the connection record, the entry deleted. */
static __always_inline void on_close(const struct sock *sk, __u16 family, __u64 cookie,
				     __u64 now, int oldstate, struct conn_entry *c)
{
	if (c)
		path_append(c, FS_TCP_CLOSE);
	emit_state(sk, family, cookie, now, oldstate, FS_TCP_CLOSE, c);
	if (oldstate != FS_TCP_LISTEN)
		emit_conn(sk, family, cookie, now, oldstate, c);
	if (c)
		entry_forget(cookie);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(conn_set_state, const struct sock *sk, int oldstate, int newstate)
{
	__u16 family = traced_family(sk);
	struct conn_entry *c;
	__u64 cookie, now = 0;

	if (!family)
		return 0;
	/* Set at the socket's first traced transition: read, not asked for. */
	cookie = sk->__sk_common.skc_cookie.counter;
	if (!cookie)
		cookie = bpf_get_socket_cookie((void *)sk);

	if (oldstate == FS_TCP_CLOSE && newstate == FS_TCP_SYN_SENT) {
		on_connect(sk, family, cookie, bpf_ktime_get_ns());
		return 0;
	}
	if (oldstate == FS_TCP_LISTEN && newstate == FS_TCP_SYN_RECV) {
		on_child(sk, family, cookie, bpf_ktime_get_ns());
		return 0;
	}
	if (newstate == FS_TCP_LISTEN) { /* a listener: no entry */
		emit_state(sk, family, cookie, bpf_ktime_get_ns(), oldstate, newstate, NULL);
		return 0;
	}

	c = entry_find(cookie);
	if (c && c->syn_recv_held) {
		emit_state(sk, family, cookie, c->start_ns, FS_TCP_LISTEN, FS_TCP_SYN_RECV, c);
		c->syn_recv_held = 0;
	}
	if (newstate == FS_TCP_CLOSE) {
		on_close(sk, family, cookie, bpf_ktime_get_ns(), oldstate, c);
		return 0;
	}
	if (!c) {
		now = bpf_ktime_get_ns(); /* the entry's start and this event's time */
		c = entry_get_or_create(cookie, now, direction_of(oldstate, newstate));
	}
	if (c) {
		if (!(c->flags & CONN_OWNER_KNOWN) && closed_by_task(oldstate, newstate))
			owner_from_current(c);
		path_append(c, newstate);
	}
	/* The clock is read only when something needs it: a transition that
	 * only extends the path (most, under --tcp-states open) does not. */
	if (state_wanted(oldstate, newstate))
		emit_state(sk, family, cookie, now ? now : bpf_ktime_get_ns(), oldstate, newstate, c);
	return 0;
}

/*
 * The socket behind a file descriptor of the current task, or NULL. Every
 * pointer is checked against its back pointer (file -> socket -> file,
 * socket -> sock -> socket), so an fd that is not a socket, or that another
 * thread replaced meanwhile, yields NULL rather than a wrong socket.
 */
static __always_inline const struct sock *sock_of_fd(long fd)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds, *file = NULL;
	struct socket *sock;
	struct sock *sk;

	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (!fds || bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return NULL;
	sock = BPF_CORE_READ(file, private_data);
	if (!sock || BPF_CORE_READ(sock, file) != file)
		return NULL;
	sk = BPF_CORE_READ(sock, sk);
	if (!sk || BPF_CORE_READ(sk, sk_socket) != sock)
		return NULL;
	return sk;
}

/* An accept()/accept4() of a 64-bit task returned `ret`. */
static __always_inline bool is_accept_exit(const struct pt_regs *regs, long ret)
{
	struct task_struct *task;
	long nr;

	if (ret < 0)
		return false;
	nr = regs->orig_ax & ~X32_SYSCALL_BIT; /* a BTF pointer: a plain load */
	if (nr != NR_ACCEPT && nr != NR_ACCEPT4)
		return false;
	task = bpf_get_current_task_btf();
	/* ia32 tasks number their syscalls differently (accept4 is 364) */
	return !(BPF_CORE_READ(task, thread_info.status) & TS_COMPAT);
}

/*
 * A task sends or receives on sk: if the socket's owner is not known yet,
 * it is this task (invariant 4). Runs on every socket I/O of the host, so
 * it only looks: no entry is made here (an entry made for a socket closing
 * on another CPU would never be deleted); a socket without one gets it at
 * its next transition, and its owner at its next I/O.
 */
static __always_inline void owner_from_io(const struct sock *sk)
{
	struct conn_entry *c;
	__u64 cookie;

	if (!traced_family(sk))
		return;
	/* Set at the socket's first traced transition; 0: no entry to find. */
	cookie = sk->__sk_common.skc_cookie.counter;
	if (!cookie)
		return;
	c = entry_find(cookie);
	if (c && !(c->flags & CONN_OWNER_KNOWN))
		owner_from_current(c);
}

/* Whether a datagram socket's owner went out (invariant 11); freed with
 * the socket. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u32);
} dgram_told SEC(".maps");

/* 0: conn_send looks only at datagram sockets (--accept-owner syscall). */
const volatile __u32 tcp_owner_from_io = 1;

/* A datagram socket of ours (invariant 11)? */
static __always_inline bool traced_dgram(const struct sock *sk)
{
	__u16 family = sk->__sk_common.skc_family;

	return sk->sk_type == SOCK_DGRAM && (family == AF_INET || family == AF_INET6);
}

/* The first send on a datagram socket: its owner record. */
static __always_inline void dgram_owner(struct sock *sk)
{
	struct fs_sock_owner_event *e;
	__u32 *told = bpf_sk_storage_get(&dgram_told, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);

	if (!told) {
		count_loss(FS_LOSS_MAP_FULL); /* no memory for the mark */
		return;
	}
	if (*told)
		return;
	e = output_reserve(sizeof(*e));
	if (!e)
		return; /* counted; the next send tries again */
	*told = 1;
	__builtin_memset(e, 0, sizeof(*e));
	e->hdr.ts_ns = bpf_ktime_get_ns();
	e->hdr.type = FS_EVENT_SOCK_OWNER;
	e->hdr.size = sizeof(*e);
	e->sock_cookie = bpf_get_socket_cookie(sk);
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	output_submit(e);
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(conn_send, struct sock *sk, int ret, int flags)
{
	if (traced_dgram(sk))
		dgram_owner(sk);
	else if (tcp_owner_from_io)
		owner_from_io(sk);
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(conn_recv, const struct sock *sk, int ret, int flags)
{
	owner_from_io(sk);
	return 0;
}

/*
 * Returning from accept(): current is the owner of the socket it returns
 * (invariant 4). Loaded only with --accept-owner syscall: while it is
 * attached, every syscall of the host takes the slow exit path to run it.
 * fexit/inet_csk_accept would fire once per accept, but this kernel
 * refuses fentry/fexit programs (EPERM at load; it has no ftrace); the
 * sys_exit tracepoint is a BTF raw tracepoint, which it allows.
 */
SEC("?tp_btf/sys_exit") /* "?": not loaded unless user space asks */
int BPF_PROG(conn_accept, struct pt_regs *regs, long ret)
{
	const struct sock *sk;
	struct conn_entry *c;
	__u64 cookie;

	if (!is_accept_exit(regs, ret))
		return 0;
	sk = sock_of_fd(ret);
	if (!sk || !traced_family_read(sk))
		return 0;
	/* Set at the socket's first traced transition; 0: we never saw it. */
	cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	if (!cookie)
		return 0;
	c = entry_find(cookie);
	/* Mid-life (flowstored started after the handshake) or the map was
	 * full then: make the entry, unless the socket is closed already and
	 * nothing would ever delete it. */
	if (!c && BPF_CORE_READ(sk, __sk_common.skc_state) != FS_TCP_CLOSE)
		c = entry_get_or_create(cookie, bpf_ktime_get_ns(), FS_DIR_IN);
	if (c)
		owner_from_current(c);
	return 0;
}
