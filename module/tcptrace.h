/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tcptrace: declarations shared by the files of the module.
 *
 * main.c     parameters, init and exit
 * ring.c     per-CPU record rings, the reader's merge, counters
 * expect.c   which pure ACKs complete a handshake or a teardown
 * hooks_tp.c tracepoint and kprobe probes (socket events)
 * hooks_nf.c netfilter hooks (segments), in every network namespace
 * device.c   /dev/tcptrace
 * procfs.c   /proc/tcptrace
 */
#ifndef _TCPTRACE_H
#define _TCPTRACE_H

#include <linux/types.h>
#include <linux/poll.h>
#include <net/sock.h>

#include "uapi/tcptrace.h"

/* module parameters (main.c) */
#define TT_MAX_PORTS		16
extern unsigned int tt_buf_records;
extern unsigned int tt_expect_slots;
extern bool tt_all_segments;
extern unsigned short tt_ports[TT_MAX_PORTS];
extern int tt_nr_ports;

static inline bool tt_port_wanted(u16 sport, u16 dport)
{
	int i;

	if (likely(!tt_nr_ports))
		return true;
	for (i = 0; i < tt_nr_ports; i++)
		if (tt_ports[i] == sport || tt_ports[i] == dport)
			return true;
	return false;
}

/* ring.c */
int tt_ring_init(unsigned int records);
void tt_ring_exit(void);
struct tcptrace_record *tt_ring_reserve(u8 type, unsigned long *flags);
void tt_ring_commit(unsigned long flags);
void tt_count_malformed(void);
void tt_count_expect_eviction(void);
ssize_t tt_ring_read(char __user *buf, size_t count, bool nonblock,
		     u32 netns);
__poll_t tt_ring_poll(struct file *file, poll_table *wait);
void tt_ring_stats(struct tcptrace_stats *st);
void tt_ring_clear(void);

/* expect.c */
int tt_expect_init(unsigned int slots);
void tt_expect_exit(void);
void tt_expect_add(int family, const void *saddr, const void *daddr,
		   __be16 sport, __be16 dport, u32 ack);
bool tt_expect_match(int family, const void *saddr, const void *daddr,
		     __be16 sport, __be16 dport, u32 ack);
u64 tt_sock_id(const void *sk);
void tt_expect_stats(struct tcptrace_stats *st);

/* hooks_tp.c */
int tt_tp_register(void);
void tt_tp_unregister(void);

/* hooks_nf.c */
int tt_nf_register(void);
void tt_nf_unregister(void);

/* device.c */
int tt_device_register(void);
void tt_device_unregister(void);

/* procfs.c */
int tt_procfs_create(void);
void tt_procfs_remove(void);

#endif /* _TCPTRACE_H */
