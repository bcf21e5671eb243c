// SPDX-License-Identifier: GPL-2.0
/*
 * tcptracectl: per-connection ISN tracking.
 *
 * It also remembers when a connection's timewait socket began, to tell
 * how long it lasted when it ends.
 *
 * Relative sequence numbers work like Wireshark's: each side's SYN carries
 * its ISN, which becomes 0.  Connections are keyed by the network namespace
 * and the normalized 4-tuple (the lower endpoint first), so the segments of
 * both directions and the socket records of both ends find the same entry.
 *
 * The table is set-associative with a fixed size: a new connection replaces
 * the least recently used entry of its set, which bounds the memory however
 * many connections pass by.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conn.h"

#define CONN_SETS	1024	/* power of two */
#define CONN_WAYS	8

struct conn_key {
	uint32_t netns;
	uint8_t family;
	uint8_t pad[3];
	uint16_t port[2];
	uint8_t addr[2][16];
};

struct conn_entry {
	struct conn_key key;
	uint64_t last_use;	/* 0: slot unused */
	uint32_t isn[2];
	bool known[2];
	bool from_syn[2];	/* learnt from a SYN without ACK */
	uint64_t tw_start;	/* ts_ns of its TIMEWAIT record, or 0 */
};

/*
 * The hashes of a set's keys side by side: a lookup compares them (one
 * cache line) before it touches an entry.
 */
struct conn_set {
	uint32_t tag[CONN_WAYS];
	struct conn_entry e[CONN_WAYS];
};

struct conn_table {
	uint64_t clock;
	/*
	 * The entry found or made last.  Consecutive records are often of
	 * one connection (a segment leaving, then its state changes): its
	 * key is compared first, without hashing or looking in the set.  A
	 * key is in one entry at most, so this finds what the set would.
	 */
	struct conn_entry *last;
	struct conn_set set[CONN_SETS];
};

struct conn_table *conn_table_new(void)
{
	return calloc(1, sizeof(struct conn_table));
}

void conn_table_free(struct conn_table *t)
{
	free(t);
}

static uint32_t conn_hash(const struct conn_key *k)
{
	return key_hash_bytes(k, sizeof(*k));
}

/* Builds the key of @r; returns the side (0 or 1) of its s endpoint. */
static int conn_key_of(const struct tcptrace_record *r, struct conn_key *k)
{
	int c, s;

	memset(k, 0, sizeof(*k));
	k->netns = r->netns;
	k->family = r->family;
	c = addr_cmp(r->saddr, r->daddr, r->family);
	if (c == 0)
		c = (int)r->sport - (int)r->dport;
	s = c <= 0 ? 0 : 1;
	/* constant lengths: a few moves, not a call */
	if (r->family == AF_INET) {
		memcpy(k->addr[s], r->saddr, 4);
		memcpy(k->addr[!s], r->daddr, 4);
	} else {
		memcpy(k->addr[s], r->saddr, 16);
		memcpy(k->addr[!s], r->daddr, 16);
	}
	k->port[s] = r->sport;
	k->port[!s] = r->dport;
	return s;
}

static struct conn_entry *conn_lookup(struct conn_table *t,
				      const struct conn_key *k, bool create)
{
	struct conn_entry *e = t->last, *victim;
	struct conn_set *set;
	uint32_t h;
	int i;

	if (e && !memcmp(&e->key, k, sizeof(*k))) {
		e->last_use = ++t->clock;
		return e;
	}
	h = conn_hash(k);
	set = &t->set[h & (CONN_SETS - 1)];
	for (i = 0; i < CONN_WAYS; i++) {
		e = &set->e[i];
		if (set->tag[i] == h && e->last_use &&
		    !memcmp(&e->key, k, sizeof(*k))) {
			e->last_use = ++t->clock;
			t->last = e;
			return e;
		}
	}
	if (!create)
		return NULL;
	victim = &set->e[0];
	for (i = 1; i < CONN_WAYS; i++)
		if (set->e[i].last_use < victim->last_use)
			victim = &set->e[i];
	memset(victim, 0, sizeof(*victim));
	victim->key = *k;
	victim->last_use = ++t->clock;
	set->tag[victim - set->e] = h;
	t->last = victim;
	return victim;
}

static void conn_set(struct conn_entry *e, int side, uint32_t isn, bool syn)
{
	e->isn[side] = isn;
	e->known[side] = true;
	e->from_syn[side] = syn;
}

void conn_track(struct conn_table *t, const struct tcptrace_record *r,
		struct isns *out)
{
	struct conn_entry *e;
	struct conn_key k;
	uint8_t f;
	int s, d;

	memset(out, 0, sizeof(*out));
	if (r->family != AF_INET && r->family != AF_INET6)
		return;
	s = conn_key_of(r, &k);
	d = !s;

	if (r->type == TCPTRACE_T_PACKET && (r->packet.flags &
					     TCPTRACE_FLAG_SYN)) {
		f = r->packet.flags;
		e = conn_lookup(t, &k, true);
		if (!(f & TCPTRACE_FLAG_ACK)) {
			/*
			 * A SYN: the same ISN again is a retransmission; the
			 * peer's SYN without ACK is a simultaneous open;
			 * anything else starts a new connection.
			 */
			if (e->known[s] && e->isn[s] == r->packet.seq)
				;
			else if (!e->known[s] && e->known[d] && e->from_syn[d])
				conn_set(e, s, r->packet.seq, true);
			else {
				memset(e->isn, 0, sizeof(e->isn));
				memset(e->known, 0, sizeof(e->known));
				memset(e->from_syn, 0, sizeof(e->from_syn));
				conn_set(e, s, r->packet.seq, true);
			}
		} else {
			/* A SYN-ACK carries both ISNs; the peer's SYN, when
			 * seen, is the better witness of its own ISN. */
			conn_set(e, s, r->packet.seq, false);
			if (!(e->known[d] && e->from_syn[d]))
				conn_set(e, d, r->packet.ack - 1, false);
		}
	} else if (r->type == TCPTRACE_T_SYNACK_RETRANSMIT) {
		/* s is the listener, d the client. */
		e = conn_lookup(t, &k, true);
		conn_set(e, s, r->synack.snt_isn, false);
		conn_set(e, d, r->synack.rcv_isn, false);
	} else if (r->type == TCPTRACE_T_TIMEWAIT) {
		/* one timewait socket per 4-tuple and namespace at a time */
		e = conn_lookup(t, &k, true);
		e->tw_start = r->ts_ns;
	} else {
		e = conn_lookup(t, &k, false);
	}
	if (!e)
		return;
	if (r->type == TCPTRACE_T_TIMEWAIT_END && e->tw_start &&
	    r->ts_ns >= e->tw_start) {
		out->tw_known = true;
		out->tw_ns = r->ts_ns - e->tw_start;
		e->tw_start = 0;
	}
	out->s_known = e->known[s];
	out->s_isn = e->isn[s];
	out->d_known = e->known[d];
	out->d_isn = e->isn[d];
}
