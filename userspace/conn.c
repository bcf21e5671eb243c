// SPDX-License-Identifier: GPL-2.0
/*
 * tcptracectl: per-connection ISN tracking.
 *
 * It also remembers when a connection's timewait socket began, to tell
 * how long it lasted when it ends (see struct tw_table).
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
#include <sys/mman.h>
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
};

/*
 * The hashes of a set's keys side by side: a lookup compares them (one
 * cache line) before it touches an entry.
 */
struct conn_set {
	uint32_t tag[CONN_WAYS];
	struct conn_entry e[CONN_WAYS];
};

/*
 * When the timewait sockets began.  One lives a minute (TCP_TIMEWAIT_LEN)
 * or more, while a busy host starts thousands of connections a second:
 * far more than the ISN table above keeps, whose entries are needed for a
 * few round trips only.  So the starts have a table of their own: a ring
 * of up to TW_MAX of them in the order they began, indexed by an
 * open-addressing hash (linear probing) of their keys, which doubles
 * whenever it is half full.  An end takes its start out; a start that
 * finds the ring full pushes out the oldest entry, and if that one was
 * still waiting for its end, counts it as forgotten (conn_tw_forgotten()):
 * its end, if it comes, has no duration.  Both are mapped, not allocated:
 * the kernel gives zeroed pages as they are first touched, so the memory
 * taken follows the starts seen and the sockets waiting, not the bounds
 * (calloc() might clear all of a heap block it reuses).
 */
#define TW_MAX		CONN_TW_MAX	/* power of two */
#define TW_INDEX_MIN	1024u		/* one page */
#define TW_INDEX_MAX	(2 * TW_MAX)

struct tw_entry {
	struct conn_key key;
	uint32_t hash;
	uint64_t start;		/* ts_ns of its TIMEWAIT record */
	bool live;		/* waiting for its end */
};

struct tw_table {
	struct tw_entry *ring;	/* TW_MAX entries */
	uint32_t *index;	/* ring slot + 1, or 0: empty */
	uint32_t index_size;	/* a power of two, over twice nlive */
	uint32_t nlive;		/* entries indexed: waiting for their end */
	uint32_t head, tail;	/* ring[tail .. head), free-running */
	uint64_t forgotten;
};

struct conn_table {
	struct tw_table tw;
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

static void *zmap(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	/*
	 * Pages of 4 KiB: with transparent huge pages, the first start
	 * would have the kernel clear 2 MiB at once (some 25 ms in an
	 * emulated guest), for a ring used 64 bytes at a time.  Advice only.
	 */
	madvise(p, len, MADV_NOHUGEPAGE);
	return p;
}

struct conn_table *conn_table_new(void)
{
	struct conn_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->tw.ring = zmap(TW_MAX * sizeof(*t->tw.ring));
	t->tw.index = zmap(TW_INDEX_MIN * sizeof(*t->tw.index));
	t->tw.index_size = TW_INDEX_MIN;
	if (!t->tw.ring || !t->tw.index) {
		conn_table_free(t);
		return NULL;
	}
	return t;
}

void conn_table_free(struct conn_table *t)
{
	if (!t)
		return;
	if (t->tw.ring)
		munmap(t->tw.ring, TW_MAX * sizeof(*t->tw.ring));
	if (t->tw.index)
		munmap(t->tw.index, t->tw.index_size * sizeof(*t->tw.index));
	free(t);
}

uint64_t conn_tw_forgotten(const struct conn_table *t)
{
	return t->tw.forgotten;
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

/* The index position of @k, or of the empty one where it would go. */
static uint32_t tw_find(const struct tw_table *tw, const struct conn_key *k,
			uint32_t h)
{
	const uint32_t mask = tw->index_size - 1;
	const struct tw_entry *e;
	uint32_t i = h & mask;

	for (; tw->index[i]; i = (i + 1) & mask) {
		e = &tw->ring[tw->index[i] - 1];
		if (e->hash == h && !memcmp(&e->key, k, sizeof(*k)))
			break;
	}
	return i;
}

/* Empties index position @i, moving up the entries probed past it. */
static void tw_unindex(struct tw_table *tw, uint32_t i)
{
	const uint32_t mask = tw->index_size - 1;
	uint32_t j = i, home;

	tw->ring[tw->index[i] - 1].live = false;
	tw->nlive--;
	for (;;) {
		j = (j + 1) & mask;
		if (!tw->index[j])
			break;
		home = tw->ring[tw->index[j] - 1].hash & mask;
		/* stays if its home lies cyclically in (i, j] */
		if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		tw->index[i] = tw->index[j];
		i = j;
	}
	tw->index[i] = 0;
}

/* Doubles the index; false when it cannot. */
static bool tw_grow(struct tw_table *tw)
{
	uint32_t size = 2 * tw->index_size, mask = size - 1, i, j;
	uint32_t *index;

	if (size > TW_INDEX_MAX)
		return false;
	index = zmap(size * sizeof(*index));
	if (!index)
		return false;
	for (i = 0; i < tw->index_size; i++) {
		if (!tw->index[i])
			continue;
		j = tw->ring[tw->index[i] - 1].hash & mask;
		while (index[j])
			j = (j + 1) & mask;
		index[j] = tw->index[i];
	}
	munmap(tw->index, tw->index_size * sizeof(*tw->index));
	tw->index = index;
	tw->index_size = size;
	return true;
}

static void tw_start(struct tw_table *tw, const struct conn_key *k,
		     uint64_t ts)
{
	uint32_t h = conn_hash(k), i, slot;
	struct tw_entry *e;

	if (tw->head - tw->tail == TW_MAX) {
		e = &tw->ring[tw->tail++ & (TW_MAX - 1)];
		if (e->live) {
			tw->forgotten++;
			tw_unindex(tw, tw_find(tw, &e->key, e->hash));
		}
	}
	i = tw_find(tw, k, h);
	if (tw->index[i])
		/* a start whose end never came: this one replaces it */
		tw_unindex(tw, i);
	/* at most half full, so that probes stay short and end */
	if (2 * (tw->nlive + 1) > tw->index_size && !tw_grow(tw)) {
		tw->forgotten++;	/* no memory: not remembered */
		return;
	}
	i = tw_find(tw, k, h);
	slot = tw->head++ & (TW_MAX - 1);
	e = &tw->ring[slot];
	e->key = *k;
	e->hash = h;
	e->start = ts;
	e->live = true;
	tw->index[i] = slot + 1;
	tw->nlive++;
}

/* Takes the start of @k out; false when it is not known. */
static bool tw_end(struct tw_table *tw, const struct conn_key *k,
		   uint64_t *start)
{
	uint32_t i = tw_find(tw, k, conn_hash(k));

	if (!tw->index[i])
		return false;
	*start = tw->ring[tw->index[i] - 1].start;
	tw_unindex(tw, i);
	return true;
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
	uint64_t tw;
	uint8_t f;
	int s, d;

	memset(out, 0, sizeof(*out));
	if (r->family != AF_INET && r->family != AF_INET6)
		return;
	/* state changes carry no sequence number: nothing to learn or give */
	if (r->type == TCPTRACE_T_STATE || r->type == TCPTRACE_T_LISTEN_OVERFLOW)
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
	} else {
		/* one timewait socket per 4-tuple and namespace at a time */
		if (r->type == TCPTRACE_T_TIMEWAIT) {
			tw_start(&t->tw, &k, r->ts_ns);
		} else if (r->type == TCPTRACE_T_TIMEWAIT_END &&
			   tw_end(&t->tw, &k, &tw) && r->ts_ns >= tw) {
			out->tw_known = true;
			out->tw_ns = r->ts_ns - tw;
		}
		e = conn_lookup(t, &k, false);
	}
	if (!e)
		return;
	out->s_known = e->known[s];
	out->s_isn = e->isn[s];
	out->d_known = e->known[d];
	out->d_isn = e->isn[d];
}
