// SPDX-License-Identifier: GPL-2.0
/*
 * tcptrace: which pure ACKs belong to a handshake or a teardown.
 *
 * A pure ACK carries no flag that says "I complete a handshake" or "I
 * acknowledge a FIN".  When a SYN-ACK or a FIN passes a hook, the ACK that
 * will answer it is known exactly: the reverse 4-tuple with ack = seq + 1
 * (plus the FIN's payload).  That expectation goes into a fixed-size,
 * lossy hash table; a pure ACK is recorded when it finds its expectation.
 *
 * Each slot is one u64: 32 bits of the key's hash (those not used for the
 * index, so a false match needs a 2^-32 coincidence) and the 32-bit
 * jiffies at which it expires.  Slots are written with plain stores: two
 * writers racing for a slot leave one of the two expectations, and an
 * expectation overwritten before it expired is counted as an eviction.
 * Expectations are not removed on a match, because the same ACK passes
 * the sender's namespace and then the receiver's, and a retransmitted FIN
 * is acknowledged again (from TIME_WAIT, for instance).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/jiffies.h>
#include <linux/random.h>
#include <linux/sched.h>
#include <linux/siphash.h>
#include <linux/socket.h>
#include <linux/vmalloc.h>

#include "tcptrace.h"

/* long enough for SYN-ACK retransmissions and a whole TIME_WAIT */
#define TT_EXPECT_LIFETIME	(120 * HZ)

static u64 *tt_expect;
static u32 tt_expect_mask;
static siphash_key_t tt_expect_key;
static siphash_key_t tt_id_key;

int tt_expect_init(unsigned int slots)
{
	tt_expect = vzalloc(array_size(slots, sizeof(*tt_expect)));
	if (!tt_expect)
		return -ENOMEM;
	tt_expect_mask = slots - 1;
	get_random_bytes(&tt_expect_key, sizeof(tt_expect_key));
	get_random_bytes(&tt_id_key, sizeof(tt_id_key));
	return 0;
}

void tt_expect_exit(void)
{
	vfree(tt_expect);
	tt_expect = NULL;
}

/**
 * tt_sock_id() - the id user space sees for a socket
 * @sk: full, request or timewait socket
 *
 * A keyed hash of the address: stable while the socket lives, equal on
 * every record of it, and telling nothing about kernel memory.
 */
u64 tt_sock_id(const void *sk)
{
	u64 id = siphash_1u64((u64)(unsigned long)sk, &tt_id_key);

	return id ? id : 1;
}

struct tt_expect_key {
	__be32 saddr[4];
	__be32 daddr[4];
	__be16 sport;
	__be16 dport;
	u32 ack;
};

static u64 tt_expect_hash(int family, const void *saddr, const void *daddr,
			  __be16 sport, __be16 dport, u32 ack)
{
	struct tt_expect_key k;
	int alen = family == AF_INET6 ? 16 : 4;

	memset(&k, 0, sizeof(k));
	memcpy(k.saddr, saddr, alen);
	memcpy(k.daddr, daddr, alen);
	k.sport = sport;
	k.dport = dport;
	k.ack = ack;
	return siphash(&k, sizeof(k), &tt_expect_key);
}

/**
 * tt_expect_add() - expect a pure ACK
 * @family: AF_INET or AF_INET6
 * @saddr: source address of the expected ACK
 * @daddr: destination address of the expected ACK
 * @sport: source port of the expected ACK
 * @dport: destination port of the expected ACK
 * @ack: its acknowledgment number (host order)
 */
void tt_expect_add(int family, const void *saddr, const void *daddr,
		   __be16 sport, __be16 dport, u32 ack)
{
	u64 h = tt_expect_hash(family, saddr, daddr, sport, dport, ack);
	u64 *slot = &tt_expect[h & tt_expect_mask];
	u32 now = jiffies;
	u64 old = READ_ONCE(*slot);
	u64 val = (h & 0xffffffff00000000ULL) | (u32)(now + TT_EXPECT_LIFETIME);

	if (old && (old >> 32) != (h >> 32) && time_before32(now, (u32)old))
		tt_count_expect_eviction();
	WRITE_ONCE(*slot, val);
}

/**
 * tt_expect_stats() - the memory of the table, and how much of it is used
 * @st: gets expect_slots, expect_bytes and expect_used
 *
 * Counting the live slots walks the whole table: for the stats ioctl and
 * /proc/tcptrace only, never on a probe's path.
 */
void tt_expect_stats(struct tcptrace_stats *st)
{
	u32 now = jiffies, i;
	u64 used = 0;

	for (i = 0; i <= tt_expect_mask; i++) {
		u64 v = READ_ONCE(tt_expect[i]);

		if (v && time_before32(now, (u32)v))
			used++;
		if (!(i & 0xffff))
			cond_resched();
	}
	st->expect_slots = (u64)tt_expect_mask + 1;
	st->expect_bytes = st->expect_slots * sizeof(*tt_expect);
	st->expect_used = used;
}

/* Whether a pure ACK with these fields was expected. */
bool tt_expect_match(int family, const void *saddr, const void *daddr,
		     __be16 sport, __be16 dport, u32 ack)
{
	u64 h = tt_expect_hash(family, saddr, daddr, sport, dport, ack);
	u64 v = READ_ONCE(tt_expect[h & tt_expect_mask]);

	return v && (v >> 32) == (h >> 32) && time_before32((u32)jiffies, (u32)v);
}
