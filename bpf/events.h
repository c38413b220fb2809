/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The event ABI: every record that crosses the BPF ring buffer, shared by the
 * kernel programs (bpf/\*.bpf.c) and user space (collector/).
 *
 * Invariants:
 *  - Fixed widths only, widest field first, explicit reserved fields; every
 *    size is _Static_assert'ed, so a layout change is a compile error on both
 *    sides, never a silent misread.
 *  - Every record starts with struct fs_event_hdr; hdr.size is the size of
 *    the whole record, hdr.type says which body follows.
 *  - Addresses are always 16 bytes: IPv4 as v4-mapped IPv6 (::ffff:a.b.c.d).
 *    Ports are in host byte order.
 *  - Times are kernel CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns());
 *    user space turns them into UTC (collector/clock.c).
 *  - A change to any record bumps FS_ABI_VERSION (recordings carry it). A
 *    new record type does not: readers that predate it count it as
 *    malformed (type) and go on; no record they know changes.
 *
 * This header holds only constants, event structs and the flow map's key and
 * value (read by user space), nothing else.
 */
#ifndef FLOWSTORE_BPF_EVENTS_H
#define FLOWSTORE_BPF_EVENTS_H

#ifndef __VMLINUX_H__
#include <linux/bpf.h> /* struct bpf_spin_lock, in struct fs_flow_value */
#include <linux/types.h>
#endif

#define FS_ABI_VERSION 1

#define FS_COMM_LEN 16
#define FS_HISTORY_LEN 12 /* s h a d f r, each at most once per side */
#define FS_STATE_PATH_LEN 16

enum fs_event_type {
	FS_EVENT_FLOW = 1,
	FS_EVENT_TCP_STATE = 2,
	FS_EVENT_TCP_CONN = 3,
	FS_EVENT_SOCK_OWNER = 4,
};

/* Why a flow record left the kernel (flows.end_reason). */
enum fs_flow_end {
	FS_END_TCP_FIN = 1,        /* FIN seen both ways */
	FS_END_TCP_RST = 2,        /* RST seen */
	FS_END_ACTIVE_TIMEOUT = 3, /* long-lived flow, exported periodically */
	FS_END_IDLE_TIMEOUT = 4,   /* user-space sweep found it idle */
	FS_END_MAP_FULL = 5,       /* flow map full: a one-packet record */
	FS_END_SHUTDOWN = 6,       /* flowstored stopped, map drained */
	FS_END_MAX = FS_END_SHUTDOWN,
};

/* Who opened a TCP connection, seen from this host. */
enum fs_direction {
	FS_DIR_UNKNOWN = 0,
	FS_DIR_OUT = 1, /* this host connected (active open) */
	FS_DIR_IN = 2,  /* a peer connected to us (passive open) */
	FS_DIR_MAX = FS_DIR_IN,
};

/* TCP states, numbered as the kernel numbers them (include/net/tcp_states.h);
 * the BPF side asserts the match against vmlinux.h. */
enum fs_tcp_state {
	FS_TCP_ESTABLISHED = 1,
	FS_TCP_SYN_SENT = 2,
	FS_TCP_SYN_RECV = 3,
	FS_TCP_FIN_WAIT1 = 4,
	FS_TCP_FIN_WAIT2 = 5,
	FS_TCP_TIME_WAIT = 6,
	FS_TCP_CLOSE = 7,
	FS_TCP_CLOSE_WAIT = 8,
	FS_TCP_LAST_ACK = 9,
	FS_TCP_LISTEN = 10,
	FS_TCP_CLOSING = 11,
	FS_TCP_NEW_SYN_RECV = 12,
	FS_TCP_STATE_MAX = FS_TCP_NEW_SYN_RECV,
};

/* Which TCP state changes become tcp_state records (conn.bpf.c's rodata
 * `tcp_state_events`). Every change is still followed: the connection record
 * carries the whole path of states whatever the policy. */
enum fs_tcp_state_policy {
	FS_STATES_ALL = 0,  /* every transition */
	FS_STATES_OPEN = 1, /* a socket starts listening or a connection becomes
			       ESTABLISHED, and a listener closes */
	FS_STATES_NONE = 2, /* none: connection records only */
	FS_STATES_POLICY_MAX = FS_STATES_NONE,
};

/* Why a record was lost in the kernel: the index into each program's per-CPU
 * loss counter array (__u64 per CPU), which has FS_LOSS_MAX entries. Unlike
 * the other _MAX constants here, FS_LOSS_MAX is a count, not the last value. */
enum fs_loss_reason {
	FS_LOSS_RINGBUF_FULL = 0, /* bpf_ringbuf_reserve() failed */
	FS_LOSS_MAP_FULL = 1,     /* a state map had no room for a new entry */
	FS_LOSS_PARSE = 2,        /* a packet or kernel struct could not be read */
	FS_LOSS_MAX = 3,
};

/* TCP header flag bits, as in the TCP header's flags byte. */
#define FS_TCP_FIN 0x01
#define FS_TCP_SYN 0x02
#define FS_TCP_RST 0x04
#define FS_TCP_PSH 0x08
#define FS_TCP_ACK 0x10
#define FS_TCP_URG 0x20

struct fs_event_hdr {
	__u64 ts_ns;    /* CLOCK_MONOTONIC when the record was made */
	__u16 type;     /* enum fs_event_type */
	__u16 size;     /* sizeof the whole record, header included */
	__u32 reserved; /* zero */
};

/* One bidirectional flow on one interface. orig = the side seen first (for
 * TCP, the SYN sender when the SYN was seen). Bytes at the IP layer. */
struct fs_flow_event {
	struct fs_event_hdr hdr;
	__u64 first_ns; /* first packet, CLOCK_MONOTONIC */
	__u64 last_ns;  /* last packet, CLOCK_MONOTONIC */
	__u64 orig_pkts;
	__u64 orig_bytes;
	__u64 resp_pkts;
	__u64 resp_bytes;
	__u64 sock_cookie; /* owning local socket, 0 if unknown */
	__u8 orig_addr[16];
	__u8 resp_addr[16];
	__u32 ifindex;
	__u32 pid; /* tgid of the socket's owner, 0 if unknown */
	__u16 orig_port; /* ICMP: type */
	__u16 resp_port; /* ICMP: code */
	__u8 proto;      /* IPPROTO_* */
	__u8 end_reason; /* enum fs_flow_end */
	__u8 orig_tcp_flags; /* OR of FS_TCP_* sent by orig */
	__u8 resp_tcp_flags; /* OR of FS_TCP_* sent by resp */
	char history[FS_HISTORY_LEN]; /* Zeek letters, first appearance order, NUL-padded */
	char comm[FS_COMM_LEN];       /* owner's comm, NUL-padded, "" if unknown */
	__u32 reserved;
};

/* One TCP state transition of a local socket (tp_btf/inet_sock_set_state). */
struct fs_tcp_state_event {
	struct fs_event_hdr hdr;
	__u64 sock_cookie;
	__u8 local_addr[16];
	__u8 remote_addr[16];
	__u32 pid; /* owner's tgid when known, else 0 */
	__u16 local_port;
	__u16 remote_port;
	__u8 old_state; /* enum fs_tcp_state */
	__u8 new_state;
	__u8 direction; /* enum fs_direction */
	__u8 reserved1;
	char comm[FS_COMM_LEN];
	__u32 reserved2;
};

/* A TCP connection, emitted when its socket reaches CLOSE. */
struct fs_tcp_conn_event {
	struct fs_event_hdr hdr;
	__u64 start_ns; /* first state change seen (SYN_SENT / SYN_RECV) */
	__u64 end_ns;   /* CLOSE */
	__u64 sock_cookie;
	__u64 cgroup_id;
	__u64 bytes_acked;    /* payload sent and acknowledged */
	__u64 bytes_received; /* payload received */
	__u8 local_addr[16];
	__u8 remote_addr[16];
	__u32 segs_out;
	__u32 segs_in;
	__u32 retransmits;
	__u32 srtt_us;
	__u32 pid; /* tgid of the opener (connect or accept), 0 if unknown */
	__u32 uid;
	__u16 local_port;
	__u16 remote_port;
	__u8 direction;   /* enum fs_direction */
	__u8 close_state; /* the state it moved to CLOSE from */
	__u8 path_len;    /* entries used in state_path (it may have been longer) */
	__u8 reserved1;
	__u8 state_path[FS_STATE_PATH_LEN]; /* states entered, in order */
	char comm[FS_COMM_LEN];
};

/*
 * The owner of a local datagram socket (UDP, UDP-Lite, ICMP "ping"), sent
 * once per socket, at the first send seen (tp_btf/sock_send_length runs in
 * the sending task). Not a row: flows carry the cookie of the socket their
 * egress packets came from, and user space fills their pid and comm from
 * this, as it does for TCP from the connection records.
 */
struct fs_sock_owner_event {
	struct fs_event_hdr hdr;
	__u64 sock_cookie;
	__u64 cgroup_id;
	__u32 pid; /* tgid */
	__u32 uid;
	char comm[FS_COMM_LEN];
};

_Static_assert(sizeof(struct fs_event_hdr) == 16, "fs_event_hdr layout");
_Static_assert(sizeof(struct fs_sock_owner_event) == 56, "fs_sock_owner_event layout");
_Static_assert(sizeof(struct fs_flow_event) == 152, "fs_flow_event layout");
_Static_assert(sizeof(struct fs_tcp_state_event) == 88, "fs_tcp_state_event layout");
_Static_assert(sizeof(struct fs_tcp_conn_event) == 160, "fs_tcp_conn_event layout");

#define FS_EVENT_MAX_SIZE 160

/*
 * The flow map: `flows` in bpf/flow.bpf.c, a BPF_MAP_TYPE_HASH of
 * struct fs_flow_key -> struct fs_flow_value. User space reads it to export
 * idle flows (and every flow at shutdown); the rules it must keep are here.
 *
 *  - One entry per flow and interface. The key holds the two endpoints in a
 *    fixed order, "side 0" and "side 1": side 0 is the lower (address, port),
 *    addresses compared as 128-bit big-endian numbers, then ports. Both
 *    directions of a flow find the same entry. Unused bytes are zero.
 *  - ICMP and ICMPv6 "ports" are Zeek's: the sender's port is the message
 *    type, the receiver's the counterpart type of a request/reply pair
 *    (echo 8<->0, ICMPv6 echo 128<->129, ...), else the code; so a request
 *    and its reply share one entry.
 *  - The value is in originator/responder terms, like struct fs_flow_event;
 *    orig_side says which key side is the originator. Counters, times and
 *    TCP flags cover the current interval (since the entry was made or last
 *    exported on an active timeout); history, orig_side and sock_cookie
 *    cover the whole flow.
 *  - Read values with BPF_F_LOCK (bpf_map_lookup_elem_flags, or
 *    bpf_map_lookup_and_delete_elem_flags to take one out): the program
 *    updates them under `lock`, so a copy without it may be torn.
 *  - state FS_FLOW_EXPORTED: the program has exported the flow (FIN, RST)
 *    and is deleting the entry itself; user space must neither export nor
 *    delete it (a delete could hit the next flow of the same key).
 */
/*
 * `flow_counts`, a per-CPU array beside the map: entries the program made
 * and entries it deleted. With the deletions user space made itself, they
 * say how full the map is without walking it (the sweep hurries when it
 * fills).
 */
enum fs_flow_count {
	FS_FLOWS_CREATED = 0,
	FS_FLOWS_DELETED = 1,
	FS_FLOW_COUNTS = 2, /* a count, not a value */
};

enum fs_flow_entry_state {
	FS_FLOW_LIVE = 0,
	FS_FLOW_CLOSING = 1,  /* FIN seen both ways; waiting for the last ACK */
	FS_FLOW_EXPORTED = 2, /* record sent; being deleted by the program */
};

struct fs_flow_key {
	__u8 addr[2][16]; /* IPv4 as ::ffff:a.b.c.d */
	__u32 ifindex;
	__u16 port[2]; /* host order */
	__u8 proto;    /* IPPROTO_* */
	__u8 reserved[3];
};

struct fs_flow_value {
	__u64 first_ns; /* first packet of the interval, CLOCK_MONOTONIC */
	__u64 last_ns;  /* last packet, CLOCK_MONOTONIC */
	__u64 orig_pkts;
	__u64 orig_bytes;
	__u64 resp_pkts;
	__u64 resp_bytes;
	__u64 sock_cookie;       /* first owning socket seen, 0 if none */
	struct fs_flow_key key;  /* the entry's own key: checked under the lock */
	struct bpf_spin_lock lock;
	__u8 orig_side;  /* 0 or 1: the key side of the originator */
	__u8 state;      /* enum fs_flow_entry_state */
	__u8 end_reason; /* FS_FLOW_EXPORTED: enum fs_flow_end of its record */
	__u8 fin_side;   /* FS_FLOW_CLOSING: key side whose FIN came second */
	__u8 orig_tcp_flags;
	__u8 resp_tcp_flags;
	__u8 orig_seen; /* the program's: history letters each side has shown */
	__u8 resp_seen;
	char history[FS_HISTORY_LEN]; /* as in fs_flow_event */
	__u8 history_len;
	__u8 reserved[3];
};

_Static_assert(sizeof(struct fs_flow_key) == 44, "fs_flow_key layout");
_Static_assert(sizeof(struct fs_flow_value) == 128, "fs_flow_value layout");

#endif /* FLOWSTORE_BPF_EVENTS_H */
