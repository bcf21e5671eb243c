/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * tcptrace: the records and ioctls of /dev/tcptrace.
 *
 * This header is the whole ABI between the tcptrace module and user space.
 * It is included by the module and by tcptracectl alike.
 *
 * read() on /dev/tcptrace returns whole struct tcptrace_record items, merged
 * from all CPUs in timestamp order.  Every record starts with its length and
 * version so that a reader can skip records it does not know.  Every field
 * not described for a record type, and every reserved field, is zero.
 *
 * open() needs CAP_NET_ADMIN.  A file opened from a network namespace
 * other than the initial one reads only that namespace's records (and
 * LOST records); one opened from the initial namespace reads all.  One
 * reader at a time: the first open file
 * that calls read() is the reader until it is closed; read() on another
 * open file fails with EBUSY and poll() on it reports EPOLLERR.  The ioctls
 * work on any open file.  read() blocks until a record is queued (EAGAIN
 * with O_NONBLOCK) and fails with EINVAL when the buffer cannot hold one
 * record.  A reader asleep in read() or poll() is woken in batches: 20 ms
 * after the first record that comes, or as soon as a CPU's ring is a
 * quarter full, whichever is first.  poll() reports POLLIN while a record
 * is queued and POLLPRI while a CPU's ring is at least a quarter full (or
 * has dropped records): a reader that pauses between reads, to take them
 * in batches, can pause in poll() for POLLPRI and be woken by a burst
 * before a ring fills.
 */
#ifndef _UAPI_LINUX_TCPTRACE_H
#define _UAPI_LINUX_TCPTRACE_H

#include <linux/types.h>
#include <linux/ioctl.h>

/* Bumped on any incompatible change of a record or an ioctl. */
#define TCPTRACE_ABI_VERSION		1
/* Value of tcptrace_record.version for the layout below. */
#define TCPTRACE_RECORD_VERSION		1

#define TCPTRACE_DEVICE			"/dev/tcptrace"

/**
 * enum tcptrace_type - what a record describes
 * @TCPTRACE_T_PACKET: a TCP segment seen by netfilter (SYN, SYN-ACK, FIN,
 *	RST, the ACK completing a handshake or acknowledging a FIN; every
 *	segment when the module runs with all_segments=1).
 * @TCPTRACE_T_STATE: a socket changed state (inet_sock_set_state).
 * @TCPTRACE_T_SYNACK_RETRANSMIT: a listener retransmitted the SYN-ACK of a
 *	half-open connection (tcp_retransmit_synack).
 * @TCPTRACE_T_RETRANSMIT: a SYN or FIN segment was retransmitted
 *	(tcp_retransmit_skb; every retransmission with all_segments=1).
 * @TCPTRACE_T_RESET_SENT: a full socket sent a RST (tcp_send_reset).  A RST
 *	sent for a segment that matches no socket is only a PACKET record.
 * @TCPTRACE_T_RESET_RECEIVED: a socket accepted a RST (tcp_receive_reset).
 * @TCPTRACE_T_TIMEWAIT: a socket was replaced by a timewait socket
 *	(tcp_time_wait()).
 * @TCPTRACE_T_DESTROY: a full socket was destroyed (tcp_destroy_sock).
 * @TCPTRACE_T_LOST: records were dropped here because the ring was full.
 * @TCPTRACE_T_TIMEWAIT_END: a timewait socket ended: its timer expired, or
 *	it was killed early (reused, reset, namespace gone).
 * @TCPTRACE_T_LISTEN_OVERFLOW: a listener's queue was full and the kernel
 *	dropped (or, with tcp_abort_on_overflow, reset) a connection attempt.
 */
enum tcptrace_type {
	TCPTRACE_T_PACKET		= 1,
	TCPTRACE_T_STATE		= 2,
	TCPTRACE_T_SYNACK_RETRANSMIT	= 3,
	TCPTRACE_T_RETRANSMIT		= 4,
	TCPTRACE_T_RESET_SENT		= 5,
	TCPTRACE_T_RESET_RECEIVED	= 6,
	TCPTRACE_T_TIMEWAIT		= 7,
	TCPTRACE_T_DESTROY		= 8,
	TCPTRACE_T_LOST			= 9,
	TCPTRACE_T_TIMEWAIT_END		= 10,
	TCPTRACE_T_LISTEN_OVERFLOW	= 11,
	TCPTRACE_T_MAX			= 12,
};

/* tcptrace_record.dir for TCPTRACE_T_PACKET */
#define TCPTRACE_DIR_IN			1	/* arrived in this netns */
#define TCPTRACE_DIR_OUT		2	/* left this netns */

/* TCP header flag bits, as in byte 13 of the TCP header */
#define TCPTRACE_FLAG_FIN		0x01
#define TCPTRACE_FLAG_SYN		0x02
#define TCPTRACE_FLAG_RST		0x04
#define TCPTRACE_FLAG_PSH		0x08
#define TCPTRACE_FLAG_ACK		0x10
#define TCPTRACE_FLAG_URG		0x20
#define TCPTRACE_FLAG_ECE		0x40
#define TCPTRACE_FLAG_CWR		0x80

/**
 * struct tcptrace_packet - type-specific part of TCPTRACE_T_PACKET
 * @seq: sequence number (host order, absolute)
 * @ack: acknowledgment number (meaningful when ACK is set)
 * @win: window field as sent (not scaled)
 * @flags: TCPTRACE_FLAG_* bits
 * @doff: TCP header length in bytes (20..60)
 * @payload_len: bytes of payload after the TCP header
 * @reserved: zero
 */
struct tcptrace_packet {
	__u32 seq;
	__u32 ack;
	__u16 win;
	__u8 flags;
	__u8 doff;
	__u32 payload_len;
	__u32 reserved[6];
};

/**
 * struct tcptrace_state - type-specific part of STATE, TIMEWAIT,
 *	TIMEWAIT_END, DESTROY, RESET_SENT, RESET_RECEIVED and RETRANSMIT
 * @old_state: state before (TCP_* numbering of the kernel, 1..12); for
 *	TIMEWAIT, RESET_* and DESTROY the socket's state at the event;
 *	TIME_WAIT for TIMEWAIT_END
 * @new_state: state after; for TIMEWAIT and TIMEWAIT_END the timewait
 *	sub-state (TIME_WAIT, or FIN_WAIT2 when this side closed first and
 *	still waits for the peer's FIN); zero otherwise
 * @flags: RETRANSMIT: TCP flags of the retransmitted segment;
 *	TIMEWAIT_END: TCPTRACE_TW_EXPIRED or TCPTRACE_TW_KILLED
 * @reserved0: zero
 * @snd_nxt: next sequence number to send
 * @rcv_nxt: next sequence number expected from the peer
 * @snd_una: oldest unacknowledged sequence number
 * @seq: RETRANSMIT: first sequence number of the segment
 * @end_seq: RETRANSMIT: sequence number after the segment (SYN/FIN count 1)
 * @timeo_ms: TIMEWAIT: how long the timewait socket will live, in ms
 * @reserved: zero
 */
struct tcptrace_state {
	__u8 old_state;
	__u8 new_state;
	__u8 flags;
	__u8 reserved0;
	__u32 snd_nxt;
	__u32 rcv_nxt;
	__u32 snd_una;
	__u32 seq;
	__u32 end_seq;
	__u32 timeo_ms;
	__u32 reserved[3];
};

/* tcptrace_state.flags of TIMEWAIT_END */
#define TCPTRACE_TW_EXPIRED		1	/* its timer ran out */
#define TCPTRACE_TW_KILLED		2	/* ended before its time */

/**
 * struct tcptrace_synack - type-specific part of SYNACK_RETRANSMIT
 * @snt_isn: the listener's ISN, the seq of every SYN-ACK of this request
 * @rcv_isn: the client's ISN (its SYN's seq); SYN-ACK ack = rcv_isn + 1
 * @num_retrans: which retransmission this is (1 for the first)
 * @reserved: zero
 */
struct tcptrace_synack {
	__u32 snt_isn;
	__u32 rcv_isn;
	__u32 num_retrans;
	__u32 reserved[7];
};

/*
 * tcptrace_listen.reason:
 * SYN_ACCEPTQ: accept queue full, the SYN was dropped;
 * ACK_ACCEPTQ: accept queue full, the third ACK was dropped (or answered
 *	by RST with tcp_abort_on_overflow);
 * SYN_SYNQ: SYN queue full, the SYN was dropped or answered with a cookie.
 */
#define TCPTRACE_OVF_SYN_ACCEPTQ	1
#define TCPTRACE_OVF_ACK_ACCEPTQ	2
#define TCPTRACE_OVF_SYN_SYNQ		3

/**
 * struct tcptrace_listen - type-specific part of LISTEN_OVERFLOW; the
 *	record's saddr/sport are the listener's, daddr/dport the peer's
 * @reason: TCPTRACE_OVF_*
 * @reserved0: zero
 * @syn_queue: half-open requests of the listener (SYN_RECV)
 * @accept_queue: connections waiting for accept()
 * @backlog: the limit in force, min(listen() backlog, somaxconn)
 * @reserved: zero
 */
struct tcptrace_listen {
	__u8 reason;
	__u8 reserved0[3];
	__u32 syn_queue;
	__u32 accept_queue;
	__u32 backlog;
	__u32 reserved[6];
};

/**
 * struct tcptrace_lost - type-specific part of TCPTRACE_T_LOST
 * @count: records dropped on this CPU since the previous record of it
 * @reserved: zero
 */
struct tcptrace_lost {
	__u64 count;
	__u64 reserved[4];
};

#define TCPTRACE_COMM_LEN		16

/**
 * struct tcptrace_record - one event; fixed size, naturally aligned
 * @len: sizeof(struct tcptrace_record); step by this to the next record
 * @version: TCPTRACE_RECORD_VERSION
 * @type: enum tcptrace_type
 * @family: AF_INET (2) or AF_INET6 (10); 0 for LOST
 * @dir: TCPTRACE_DIR_IN or TCPTRACE_DIR_OUT for PACKET, else 0
 * @cpu: CPU that produced the record
 * @netns: inode number of the network namespace (as in /proc/PID/ns/net)
 * @pid: thread group id of the task in whose context the event happened;
 *	0 when it happened in softirq or another context with no such task
 * @ts_ns: CLOCK_MONOTONIC time in nanoseconds
 * @sock_id: stable id of the socket (full or request socket) while it
 *	lives; 0 when none is known.  It is a keyed hash, not an address.
 * @saddr: PACKET: source address of the segment; others: local address.
 *	IPv4 addresses use the first 4 bytes, the rest is zero.
 * @daddr: PACKET: destination address; others: remote address
 * @sport: PACKET: source port; others: local port (host order)
 * @dport: PACKET: destination port; others: remote port (host order)
 * @reserved0: zero
 * @comm: command name of the task when @pid is not 0, else zero
 * @packet: PACKET
 * @state: STATE, RETRANSMIT, RESET_SENT, RESET_RECEIVED, TIMEWAIT,
 *	TIMEWAIT_END, DESTROY
 * @synack: SYNACK_RETRANSMIT
 * @listen: LISTEN_OVERFLOW
 * @lost: LOST
 */
struct tcptrace_record {
	__u16 len;
	__u8 version;
	__u8 type;
	__u8 family;
	__u8 dir;
	__u16 cpu;
	__u32 netns;
	__u32 pid;
	__u64 ts_ns;
	__u64 sock_id;
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u32 reserved0;
	char comm[TCPTRACE_COMM_LEN];
	union {
		struct tcptrace_packet packet;
		struct tcptrace_state state;
		struct tcptrace_synack synack;
		struct tcptrace_listen listen;
		struct tcptrace_lost lost;
	};
};

#define TCPTRACE_RECORD_SIZE		128

/**
 * struct tcptrace_stats - counters since load or the last TCPTRACE_IOC_CLEAR
 * @size: sizeof(struct tcptrace_stats), filled by the module
 * @abi_version: TCPTRACE_ABI_VERSION
 * @nr_cpus: CPUs with a ring
 * @ring_records: capacity of each per-CPU ring, in records
 * @events: records written to the rings (LOST records included)
 * @drops: records dropped because a ring was full
 * @malformed: segments whose TCP header was truncated or invalid
 * @expect_evictions: handshake/teardown ACK expectations overwritten
 *	before they expired (such an ACK may then go unrecorded)
 * @queued: records waiting to be read now
 * @per_type: records written, indexed by enum tcptrace_type
 * @ring_bytes: memory of the record rings of all CPUs, allocated at load
 *	(nr_cpus * ring_records * TCPTRACE_RECORD_SIZE); it never grows
 * @expect_bytes: memory of the handshake/teardown ACK table, allocated at
 *	load (expect_slots * 8); it never grows
 * @expect_slots: slots of that table (module parameter expect_slots,
 *	rounded up to a power of two): the bound on the expectations held
 * @expect_used: slots holding an expectation that has not expired yet;
 *	at most @expect_slots (not reset by TCPTRACE_IOC_CLEAR)
 * @reserved: zero
 */
struct tcptrace_stats {
	__u32 size;
	__u32 abi_version;
	__u32 nr_cpus;
	__u32 ring_records;
	__u64 events;
	__u64 drops;
	__u64 malformed;
	__u64 expect_evictions;
	__u64 queued;
	__u64 per_type[16];
	__u64 ring_bytes;
	__u64 expect_bytes;
	__u64 expect_slots;
	__u64 expect_used;
	__u64 reserved[4];
};

#define TCPTRACE_IOC_MAGIC		0xb7

/* Returns TCPTRACE_ABI_VERSION in the __u32 pointed to. */
#define TCPTRACE_IOC_VERSION		_IOR(TCPTRACE_IOC_MAGIC, 1, __u32)
/* Fills struct tcptrace_stats. */
#define TCPTRACE_IOC_STATS		_IOR(TCPTRACE_IOC_MAGIC, 2, struct tcptrace_stats)
/*
 * Discards queued records and zeroes the counters.  The argument is
 * reserved and must be 0 (EINVAL otherwise, and nothing is cleared).
 */
#define TCPTRACE_IOC_CLEAR		_IO(TCPTRACE_IOC_MAGIC, 3)

#endif /* _UAPI_LINUX_TCPTRACE_H */
