// SPDX-License-Identifier: GPL-2.0
/*
 * tcptracectl: put records together into connections ("stories").
 *
 * A connection is keyed by its family and normalized 4-tuple, not by the
 * namespace, so that both ends of a connection between two namespaces (or
 * on loopback) share one story.  Its client is the end that sent the first
 * SYN; a story that starts in the middle guesses (the lower port is the
 * server's).  A new SYN with another ISN on the 4-tuple of an open story
 * ends it and starts another.
 *
 * Records about a socket before it has its 4-tuple (CLOSE -> SYN_SENT
 * before the port is chosen, LISTEN -> SYN_RECV of a child still carrying
 * its listener's addresses) wait in a small table by socket id until a
 * record of the same socket names the connection.  listen() calls are
 * remembered by namespace and port, so that an accepted connection is
 * attributed to the process that listens.
 *
 * Memory is bounded: at most max_open stories (the oldest is ended early,
 * marked evicted), STORY_MAX_EVENTS events each, and fixed tables for
 * pending records and listeners.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "story.h"

#define TCP_ESTABLISHED	1
#define TCP_SYN_SENT	2
#define TCP_SYN_RECV	3
#define TCP_FIN_WAIT1	4
#define TCP_FIN_WAIT2	5
#define TCP_TIME_WAIT	6
#define TCP_CLOSE	7
#define TCP_CLOSE_WAIT	8
#define TCP_LAST_ACK	9
#define TCP_LISTEN	10

/* a timewait socket's end this soon after the peer's RST: killed by it */
#define TW_RST_NS	100000000ull

#define F_FIN		TCPTRACE_FLAG_FIN
#define F_SYN		TCPTRACE_FLAG_SYN
#define F_RST		TCPTRACE_FLAG_RST
#define F_ACK		TCPTRACE_FLAG_ACK

#define PENDING_SLOTS		256
#define PENDING_FILTER		1024	/* power of two */
#define LISTENER_SLOTS		1024
#define RECENT_SPARE		256

/*
 * The key of a connection: its family and its two endpoints, the lower one
 * (by address, then port) in slot 0.  An IPv4 address takes 4 bytes, the
 * second one following the first at addr[4], so that a key is hashed and
 * compared over its first KEY_LEN_V4 bytes (KEY_LEN_V6 for IPv6), whole
 * words, not over the zeros that follow.
 */
struct key {
	uint8_t family;
	uint8_t pad[3];
	uint16_t port[2];
	uint8_t addr[32];
};

#define KEY_LEN_V4	(offsetof(struct key, addr) + 2 * 4)
#define KEY_LEN_V6	(offsetof(struct key, addr) + 2 * 16)

struct node {
	struct key key;
	uint32_t hash;			/* key_hash(&key) */
	/*
	 * The side of the end in each key slot.  The two sides of a story
	 * are the two endpoints of its key, so the side of an end follows
	 * from its slot without comparing addresses.  A socket connected to
	 * itself has one endpoint in both slots: side 0 for both, the first
	 * side whose address matches.
	 */
	uint8_t slot_side[2];
	struct story st;
	struct node *hnext;		/* hash chain */
	struct node *prev, *next;	/* age list, oldest first */
	struct node *cnext;		/* closing list */
	bool closing;
	uint64_t over_ns;		/* when it was over */
};

struct pending {
	uint64_t sock_id;
	struct tcptrace_record r;
};

struct listener {
	uint32_t netns;
	uint16_t port;
	bool used;
	uint32_t pid;
	char comm[TCPTRACE_COMM_LEN];
};

struct story_table {
	story_end_fn end;
	void *ctx;
	size_t max_open, nopen, nbuckets;
	uint64_t evicted;	/* stories ended early for want of room */
	struct node **bucket;
	struct node *oldest, *newest;
	struct pending pending[PENDING_SLOTS];
	unsigned int pending_next, npending;
	/*
	 * How many pending records have a sock_id of each pending_filter()
	 * value: most records find 0 there and need not scan the slots.
	 */
	uint16_t pending_count[PENDING_FILTER];
	struct listener listeners[LISTENER_SLOTS];
	bool events;
	size_t ev_left;		/* events that may still be kept */
	/* stories over, kept STORY_GRACE_NS for their last records */
	struct node *closing, *closing_tail;
	/* recent-segment blocks given back by quiet stories, for reuse */
	struct story_seg *recent_spare[RECENT_SPARE];
	unsigned int nrecent_spare;
	/*
	 * The story of the record before.  Consecutive records are often of
	 * one connection (a segment leaving, arriving, the state changes it
	 * causes): its key is compared first, without hashing.  A key is in
	 * one story at most, so this finds what find_slot() would.
	 */
	struct node *last;
	int err;
};

const char *side_name(int side)
{
	return side == STORY_CLIENT ? "client" : "server";
}

struct story_table *story_table_new(size_t max_open, bool events,
				    story_end_fn end, void *ctx)
{
	struct story_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->max_open = max_open ? max_open : STORY_MAX_OPEN;
	t->nbuckets = 1;
	while (t->nbuckets < t->max_open && t->nbuckets < (1u << 20))
		t->nbuckets <<= 1;
	t->bucket = calloc(t->nbuckets, sizeof(*t->bucket));
	if (!t->bucket) {
		free(t);
		return NULL;
	}
	t->end = end;
	t->ctx = ctx;
	t->events = events;
	t->ev_left = STORY_EVENT_BUDGET;
	return t;
}

static void node_free(struct node *n)
{
	/* the events of an ended story go back to the budget */
	if (n->st.ev_left)
		*n->st.ev_left += n->st.nev;
	free(n->st.ev);
	free(n->st.recent);
	free(n);
}

void story_table_free(struct story_table *t)
{
	struct node *n, *next;

	if (!t)
		return;
	for (n = t->oldest; n; n = next) {
		next = n->next;
		node_free(n);
	}
	while (t->nrecent_spare)
		free(t->recent_spare[--t->nrecent_spare]);
	free(t->bucket);
	free(t);
}

/* Constant lengths, so that the compiler unrolls the hash. */
static uint32_t key_hash(const struct key *k)
{
	if (k->family == AF_INET)
		return key_hash_bytes(k, KEY_LEN_V4);
	return key_hash_bytes(k, KEY_LEN_V6);
}

/*
 * Keys of different families differ in their first byte; an IPv4 key is
 * zeros after KEY_LEN_V4 (make_key() clears it all), so reading it up to
 * KEY_LEN_V6 reads nothing undefined.
 */
static bool key_eq(const struct key *a, const struct key *b)
{
	if (a->family == AF_INET)
		return !memcmp(a, b, KEY_LEN_V4);
	return !memcmp(a, b, KEY_LEN_V6);
}

static size_t alen(uint8_t family)
{
	return family == AF_INET ? 4 : 16;
}

/*
 * The key of the connection between endpoints a and b.  Returns the slot
 * of a: 0 (a is the lower endpoint, or the same as b) or 1.
 */
static int make_key(struct key *k, uint8_t family, const uint8_t *a_addr,
		    uint16_t a_port, const uint8_t *b_addr, uint16_t b_port)
{
	const uint8_t *lo_addr = a_addr, *hi_addr = b_addr;
	uint16_t lo_port = a_port, hi_port = b_port;
	int c;

	c = addr_cmp(a_addr, b_addr, family);
	if (c == 0)
		c = (int)a_port - (int)b_port;
	if (c > 0) {
		lo_addr = b_addr;
		lo_port = b_port;
		hi_addr = a_addr;
		hi_port = a_port;
	}
	memset(k, 0, sizeof(*k));
	k->family = family;
	k->port[0] = lo_port;
	k->port[1] = hi_port;
	if (family == AF_INET) {
		memcpy(k->addr, lo_addr, 4);
		memcpy(k->addr + 4, hi_addr, 4);
	} else {
		memcpy(k->addr, lo_addr, 16);
		memcpy(k->addr + 16, hi_addr, 16);
	}
	return c > 0;
}

static struct node **find_slot(struct story_table *t, const struct key *k)
{
	uint32_t h = key_hash(k);
	struct node **pp = &t->bucket[h & (t->nbuckets - 1)];

	while (*pp && ((*pp)->hash != h || !key_eq(&(*pp)->key, k)))
		pp = &(*pp)->hnext;
	return pp;
}

static void unlink_node(struct story_table *t, struct node *n)
{
	struct node **pp = &t->bucket[n->hash & (t->nbuckets - 1)], **cp;

	/* by its address: its key is in no other node */
	while (*pp && *pp != n)
		pp = &(*pp)->hnext;

	if (n->closing) {
		for (cp = &t->closing; *cp && *cp != n; cp = &(*cp)->cnext)
			;
		if (*cp)
			*cp = n->cnext;
		if (t->closing_tail == n) {
			t->closing_tail = NULL;
			for (cp = &t->closing; *cp; cp = &(*cp)->cnext)
				t->closing_tail = *cp;
		}
	}

	if (*pp == n)
		*pp = n->hnext;
	if (n->prev)
		n->prev->next = n->next;
	else
		t->oldest = n->next;
	if (n->next)
		n->next->prev = n->prev;
	else
		t->newest = n->prev;
	t->nopen--;
}

/* Ends the story of @n: hands it to the view, then frees it. */
static void finish(struct story_table *t, struct node *n, uint64_t ts)
{
	unlink_node(t, n);
	if (t->last == n)
		t->last = NULL;
	if (!ts && n->st.nev)
		ts = n->st.ev[n->st.nev - 1].ts;
	if (!n->st.end_ns)
		n->st.end_ns = ts ? ts : n->st.start_ns;
	if (t->end && t->end(t->ctx, &n->st))
		t->err = -1;
	node_free(n);
}

/* Ends the stories that have been over for STORY_GRACE_NS at @now_ns. */
int story_expire(struct story_table *t, uint64_t now_ns)
{
	struct node *n;

	while ((n = t->closing) && n->over_ns + STORY_GRACE_NS <= now_ns) {
		n->st.ended = true;
		finish(t, n, n->over_ns);
	}
	return t->err;
}

/* The story is over: it ends once STORY_GRACE_NS has passed. */
static void mark_over(struct story_table *t, struct node *n, uint64_t ts)
{
	if (n->closing)
		return;
	n->closing = true;
	n->over_ns = ts;
	n->cnext = NULL;
	if (t->closing_tail)
		t->closing_tail->cnext = n;
	else
		t->closing = n;
	t->closing_tail = n;
}

uint64_t story_evicted(const struct story_table *t)
{
	return t->evicted;
}

int story_flush(struct story_table *t)
{
	struct node *n;

	while ((n = t->oldest)) {
		if (n->closing) {
			n->st.ended = true;
			finish(t, n, n->over_ns);
		} else {
			finish(t, n, 0);
		}
	}
	return t->err;
}

/*
 * Where the events not kept are written (watch keeps none).  Nothing reads
 * it, so it is not cleared: a caller of add_ev() only stores into the event
 * it gets (and ev_note() writes nothing here).
 */
static struct story_ev scratch;

/* The note of @e, formatted only when the event is kept. */
__attribute__((format(printf, 2, 3)))
static void ev_note(struct story_ev *e, const char *fmt, ...)
{
	va_list ap;

	if (e == &scratch)
		return;
	va_start(ap, fmt);
	vsnprintf(e->note, sizeof(e->note), fmt, ap);
	va_end(ap);
}

static struct story_ev *keep_ev(struct story *st, uint8_t kind, uint8_t side,
				uint64_t ts)
{
	struct story_ev *e;
	size_t cap;

	if (st->nev >= STORY_MAX_EVENTS || !*st->ev_left) {
		st->ev_dropped++;
		return &scratch;
	}
	if (st->nev == st->cap) {
		cap = st->cap ? st->cap * 2 : 16;
		e = realloc(st->ev, cap * sizeof(*e));
		if (!e) {
			st->ev_dropped++;
			return &scratch;
		}
		st->ev = e;
		st->cap = cap;
	}
	(*st->ev_left)--;
	e = &st->ev[st->nev++];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->side = side;
	e->ts = ts;
	return e;
}

/* inline: a story without events (watch) needs no call */
static inline struct story_ev *add_ev(struct story *st, uint8_t kind,
				      uint8_t side, uint64_t ts)
{
	if (!st->ev_left)
		return &scratch;
	return keep_ev(st, kind, side, ts);
}

static void add_violation(struct story *st, const char *v)
{
	unsigned int i;

	for (i = 0; i < st->nviolations; i++)
		if (st->violations[i] == v)
			return;
	if (st->nviolations < sizeof(st->violations) /
			      sizeof(st->violations[0]))
		st->violations[st->nviolations++] = v;
}

static struct node *new_story(struct story_table *t, const struct key *k,
			      const struct tcptrace_record *r,
			      const uint8_t *c_addr, uint16_t c_port,
			      const uint8_t *s_addr, uint16_t s_port,
			      bool roles_known)
{
	struct node *n;
	struct story *st;
	int i;

	while (t->nopen >= t->max_open && t->oldest) {
		t->oldest->st.evicted = true;
		t->evicted++;
		finish(t, t->oldest, r->ts_ns);
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->key = *k;
	st = &n->st;
	st->family = r->family;
	st->roles_known = roles_known;
	st->start_ns = r->ts_ns;
	st->closed_first = -1;
	st->reset_by = -1;
	st->ev_left = t->events ? &t->ev_left : NULL;
	memcpy(st->side[0].addr, c_addr, alen(r->family));
	st->side[0].port = c_port;
	memcpy(st->side[1].addr, s_addr, alen(r->family));
	st->side[1].port = s_port;
	/* both slots are the client's for a socket connected to itself */
	for (i = 0; i < 2; i++)
		n->slot_side[i] = k->port[i] == c_port &&
				  !memcmp(k->addr + i * alen(r->family), c_addr,
					  alen(r->family)) ?
				  STORY_CLIENT : STORY_SERVER;

	n->hash = key_hash(k);
	n->hnext = t->bucket[n->hash & (t->nbuckets - 1)];
	t->bucket[n->hash & (t->nbuckets - 1)] = n;
	n->prev = t->newest;
	if (t->newest)
		t->newest->next = n;
	else
		t->oldest = n;
	t->newest = n;
	t->nopen++;
	return n;
}

/* inline: owner_from_listener() looks one up for nearly every record */
static inline struct listener *listener_slot(struct story_table *t,
					     uint32_t netns, uint16_t port,
					     bool create)
{
	uint32_t h = (netns * 2654435761u) ^ port;
	struct listener *l = &t->listeners[h % LISTENER_SLOTS];

	if (l->used && l->netns == netns && l->port == port)
		return l;
	if (!create)
		return NULL;
	memset(l, 0, sizeof(*l));
	l->used = true;
	l->netns = netns;
	l->port = port;
	return l;
}

/*
 * The first process seen on an end stays its owner: a later record made in
 * another task's context (a kworker killing a namespace's sockets, a
 * timewait socket's end) does not name the process behind the end.
 */
static void set_owner(struct story_side *sd, const struct tcptrace_record *r)
{
	if (sd->owner_known || r->type == TCPTRACE_T_TIMEWAIT_END ||
	    r->type == TCPTRACE_T_DESTROY)
		return;
	sd->owner_known = true;
	sd->pid = r->pid;
	memcpy(sd->comm, r->comm, sizeof(sd->comm));
	sd->comm[sizeof(sd->comm) - 1] = '\0';
}

static void set_netns(struct story_side *sd, uint32_t netns)
{
	sd->netns = netns;
	sd->netns_known = true;
}

static double secs(uint64_t ns)
{
	return (double)ns / 1e9;
}

/* ---- socket records ---------------------------------------------------- */

static void end_side_if_closed(struct story_side *sd)
{
	if (sd->state == TCP_CLOSE && !sd->tw_pending)
		sd->done = true;
}

static void enter_time_wait(struct story *st, int s, uint64_t ts, bool infer)
{
	struct story_side *sd = &st->side[s];
	struct story_ev *e;

	if (sd->t_fw2 && !sd->fw2_known) {
		sd->fw2_ns = ts - sd->t_fw2;
		sd->fw2_known = true;
	}
	sd->t_tw = ts;
	sd->tw_sub = TCP_TIME_WAIT;
	if (infer) {
		e = add_ev(st, EV_STATE, (uint8_t)s, ts);
		e->old_state = TCP_FIN_WAIT2;
		e->new_state = TCP_TIME_WAIT;
		e->inferred = true;
	}
}

static void apply_state(struct story *st, int s,
			const struct tcptrace_record *r)
{
	const struct tcptrace_state *rs = &r->state;
	struct story_side *sd = &st->side[s];
	uint8_t old = rs->old_state, new = rs->new_state;
	struct story_ev *e;
	bool hide = false;

	sd->sock_known = true;
	if (new == TCP_SYN_SENT && !sd->t_start)
		sd->t_start = r->ts_ns;
	if (new == TCP_SYN_RECV && !sd->t_start)
		sd->t_start = r->ts_ns;
	if (new == TCP_ESTABLISHED && !sd->t_est)
		sd->t_est = r->ts_ns;
	if (new == TCP_FIN_WAIT2)
		sd->t_fw2 = r->ts_ns;
	if (new == TCP_CLOSE_WAIT)
		sd->t_cw = r->ts_ns;
	if (old == TCP_CLOSE_WAIT && sd->t_cw && !sd->cw_known) {
		sd->cw_ns = r->ts_ns - sd->t_cw;
		sd->cw_known = true;
	}
	if (new == TCP_CLOSE) {
		/* the full socket gives way to its timewait socket */
		if (sd->tw_pending)
			hide = true;
		else if (old == TCP_FIN_WAIT2 && sd->t_fw2 && !sd->fw2_known) {
			sd->fw2_ns = r->ts_ns - sd->t_fw2;
			sd->fw2_known = true;
		}
		if (old == TCP_SYN_SENT || old == TCP_SYN_RECV) {
			st->handshake_left = true;
			/* close() by the application, or a timer */
			st->left_by_app = r->pid != 0;
		}
	}
	if (!hide) {
		e = add_ev(st, EV_STATE, (uint8_t)s, r->ts_ns);
		e->old_state = old;
		e->new_state = new;
		sd->state = new;
	}
	if (new == TCP_CLOSE)
		sd->state = TCP_CLOSE;
	end_side_if_closed(sd);
}

static void apply_timewait(struct story *st, int s,
			   const struct tcptrace_record *r)
{
	struct story_side *sd = &st->side[s];
	struct story_ev *e;

	sd->sock_known = true;
	sd->tw_pending = true;
	sd->tw_sub = r->state.new_state;
	if (sd->tw_sub == TCP_TIME_WAIT) {
		enter_time_wait(st, s, r->ts_ns, false);
		e = add_ev(st, EV_STATE, (uint8_t)s, r->ts_ns);
		e->old_state = r->state.old_state;
		e->new_state = TCP_TIME_WAIT;
		sd->state = TCP_TIME_WAIT;
	} else {
		e = add_ev(st, EV_NOTE, (uint8_t)s, r->ts_ns);
		ev_note(e, "%s: now a timewait socket (%.0f s at most)",
			side_name(s), r->state.timeo_ms / 1000.0);
	}
}

static void apply_timewait_end(struct story *st, int s,
			       const struct tcptrace_record *r)
{
	struct story_side *sd = &st->side[s];
	const struct story_side *peer = &st->side[!s];
	struct story_ev *e;

	if (!sd->tw_pending)
		return;
	sd->tw_pending = false;
	if (sd->tw_sub == TCP_TIME_WAIT && sd->t_tw && !sd->tw_carried) {
		sd->tw_ns = r->ts_ns - sd->t_tw;
		sd->tw_known = true;
	}
	e = add_ev(st, EV_STATE, (uint8_t)s, r->ts_ns);
	e->old_state = sd->tw_sub;
	e->new_state = TCP_CLOSE;
	if (r->state.flags == TCPTRACE_TW_KILLED && peer->rst_seen &&
	    r->ts_ns - peer->rst_ts < TW_RST_NS)
		ev_note(e, "timewait socket killed by %s's RST (RFC 1337)",
			side_name(!s));
	else if (r->state.flags == TCPTRACE_TW_KILLED)
		ev_note(e, "timewait socket killed early");
	else if (sd->tw_known)
		ev_note(e, "TIME_WAIT ended after %.2f s", secs(sd->tw_ns));
	/* the end of an earlier connection's socket: this end may have none */
	if (sd->tw_carried) {
		sd->tw_carried = false;
		if (!sd->sock_known)
			sd->state = TCP_CLOSE;
		return;
	}
	sd->state = TCP_CLOSE;
	sd->done = true;
}

/*
 * A new connection on the 4-tuple of a story whose end (not the one that
 * opens the new connection, @opener) is still held by a timewait socket:
 * the old story ends, saying so, and the new one takes the timewait
 * socket over, to show how it ends (an RST in sequence kills it, RFC 1337).
 */
struct tw_carry {
	bool valid;
	uint8_t addr[16];
	uint16_t port;
	uint8_t sub;
	uint64_t t_tw;
	uint32_t netns;
	bool netns_known;
	/* the ISNs of the earlier connection: [0] the timewait end's */
	bool isn_known[2];
	uint32_t isn[2];
};

static void carry_timewait(struct story *old, const uint8_t *opener_addr,
			   uint16_t opener_port, uint64_t ts,
			   struct tw_carry *c)
{
	size_t len = alen(old->family);
	struct story_ev *e;
	int s;

	c->valid = false;
	for (s = 0; s < 2; s++) {
		const struct story_side *sd = &old->side[s];

		if (!sd->tw_pending || (sd->port == opener_port &&
					!memcmp(sd->addr, opener_addr, len)))
			continue;
		c->valid = true;
		memcpy(c->addr, sd->addr, len);
		c->port = sd->port;
		c->sub = sd->tw_sub;
		c->t_tw = sd->t_tw;
		c->netns = sd->netns;
		c->netns_known = sd->netns_known;
		c->isn_known[0] = sd->isn_known;
		c->isn[0] = sd->isn;
		c->isn_known[1] = old->side[!s].isn_known;
		c->isn[1] = old->side[!s].isn;
		e = add_ev(old, EV_NOTE, (uint8_t)s, ts);
		ev_note(e, "new connection on these ports; %s's timewait stays",
			side_name(s));
		return;
	}
}

static void take_timewait(struct story *st, const struct tw_carry *c)
{
	struct story_side *sd;
	int s;

	if (!c->valid)
		return;
	for (s = 0; s < 2; s++) {
		sd = &st->side[s];
		if (sd->port != c->port ||
		    memcmp(sd->addr, c->addr, alen(st->family)))
			continue;
		sd->tw_pending = true;
		sd->tw_carried = true;
		sd->tw_sub = c->sub;
		sd->t_tw = c->t_tw;
		sd->state = c->sub;
		if (c->netns_known)
			set_netns(sd, c->netns);
		sd->old_isn_known = c->isn_known[0];
		sd->old_isn = c->isn[0];
		st->side[!s].old_isn_known = c->isn_known[1];
		st->side[!s].old_isn = c->isn[1];
		return;
	}
}

/* ---- segments ---------------------------------------------------------- */

static int32_t sdiff(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b);
}

/* Why a socket sent a RST, from its state when it did. */
static void socket_reset_reason(uint8_t state, bool by_app, char *buf,
				size_t size)
{
	char sbuf[24];

	if (state == TCP_CLOSE && by_app)
		snprintf(buf, size,
			 "its socket was closed by the application (abort)");
	else
		snprintf(buf, size, "by its socket in %s",
			 tcp_state_name(state, sbuf, sizeof(sbuf)));
}

static const char *reset_reason(struct story *st, int s, char *buf,
				size_t size)
{
	struct story_side *sd = &st->side[s];

	if (sd->reset_pending) {
		sd->reset_pending = false;
		socket_reset_reason(sd->reset_state, sd->reset_by_app, buf,
				    size);
	} else if (s == STORY_SERVER && !st->synack_sent) {
		snprintf(buf, size, "no listener on the port");
	} else if (s == STORY_SERVER && !st->side[s].t_est) {
		snprintf(buf, size, "no half-open entry");
	} else {
		snprintf(buf, size, "no socket for this segment");
	}
	return buf;
}

static void mark_retransmit(struct story_ev *e, const char *what,
			    unsigned int nth, uint64_t since)
{
	ev_note(e, "%s retransmit #%u after %.2f s", what, nth, secs(since));
}

/* The checks of a segment from side s; NULL when it is fine. */
static const char *check_segment(const struct story *st, int s,
				 const struct tcptrace_record *r)
{
	const struct story_side *me = &st->side[s], *peer = &st->side[!s];
	uint32_t seq = r->packet.seq, ack = r->packet.ack;
	uint8_t f = r->packet.flags;

	if ((f & (F_SYN | F_ACK)) == (F_SYN | F_ACK) && peer->isn_known &&
	    ack != peer->isn + 1)
		return "synack_ack_not_isn_plus_1";
	if (f & F_SYN)
		return NULL;
	/* a RST answering an ACK takes that ACK's ack as its seq */
	if ((f & (F_RST | F_ACK)) == F_RST && peer->ack_known &&
	    seq == peer->last_ack)
		return NULL;
	if ((f & F_ACK) && peer->fin_seen && sdiff(ack, peer->fin_seq + 1) > 0)
		return "fin_ack_not_seq_plus_1";
	if (me->fin_seen && !((f & F_FIN) &&
			      seq + r->packet.payload_len == me->fin_seq) &&
	    seq != me->fin_seq + 1) {
		if ((f & F_ACK) && !(f & F_FIN) && peer->fin_seen &&
		    ack == peer->fin_seq + 1)
			return "final_ack_seq_not_fin_plus_1";
		return "seq_unexpected";
	}
	if (me->isn_known && sdiff(seq, me->isn + 1) < 0)
		return "seq_unexpected";
	return NULL;
}

/*
 * The segments a story saw last, to pair a segment's arrival with its
 * departure and a socket's RST with its segment, take STORY_RECENT slots
 * (512 bytes, two fifths of a story).  A story that keeps no events (watch)
 * holds them only while it is live: once every socket of the connection
 * it has seen is closed or in TIME_WAIT, no segment of it is normally on
 * its way, and the block goes back to the table, for the next connection.
 * A segment that still comes (a stray one at a timewait socket, its
 * answer) takes a fresh block, which the story then keeps; only one that
 * left before and arrives after (a retransmission crossing the last ACK)
 * is not paired with its departure.  So a watch that follows a minute of
 * connections through their TIME_WAIT keeps blocks only for those in
 * progress, and takes less new memory for each one.
 */
static struct story_seg *recent_slot(struct story_table *t, struct story *st)
{
	static struct story_seg lost;
	struct story_seg *g;
	unsigned int i;

	if (!st->recent) {
		g = t->nrecent_spare ? t->recent_spare[--t->nrecent_spare] :
		    malloc(STORY_RECENT * sizeof(*g));
		if (!g)
			return &lost;	/* remembered nowhere */
		for (i = 0; i < STORY_RECENT; i++)
			g[i].ev = -2;	/* unused */
		st->recent = g;
		st->recent_next = 0;
	}
	return &st->recent[st->recent_next++ % STORY_RECENT];
}

static void recent_put(struct story_table *t, struct story *st)
{
	if (t->nrecent_spare < RECENT_SPARE)
		t->recent_spare[t->nrecent_spare++] = st->recent;
	else
		free(st->recent);
	st->recent = NULL;
}

/* A dir-in record of a segment already seen leaving: the same segment. */
static struct story_seg *find_sent(struct story *st, int s,
				   const struct tcptrace_record *r)
{
	unsigned int i;
	struct story_seg *g;

	if (!st->recent)
		return NULL;
	for (i = 1; i <= STORY_RECENT; i++) {
		g = &st->recent[(st->recent_next - i) % STORY_RECENT];
		if (g->flags == r->packet.flags && g->side == s &&
		    !g->seen_in && g->ev != -2 && g->seq == r->packet.seq &&
		    g->ack == r->packet.ack && g->len == r->packet.payload_len)
			return g;
	}
	return NULL;
}

/* The ISNs of the connection before, for a segment in its numbers. */
static void ann_old_numbers(struct story_ann *ann,
			    const struct story_side *me,
			    const struct story_side *peer)
{
	ann->old_numbers = true;
	ann->old_s_known = me->old_isn_known;
	ann->old_s_isn = me->old_isn;
	ann->old_d_known = peer->old_isn_known;
	ann->old_d_isn = peer->old_isn;
}

static void apply_packet(struct story_table *t, struct story *st, int s,
			 const struct tcptrace_record *r,
			 struct story_ann *ann)
{
	struct story_side *me = &st->side[s], *peer = &st->side[!s];
	uint32_t seq = r->packet.seq, ack = r->packet.ack;
	uint32_t len = r->packet.payload_len;
	uint8_t f = r->packet.flags;
	bool in = r->dir == TCPTRACE_DIR_IN;
	bool peer_tw = false, old = false;
	const char *violation;
	struct story_seg *g;
	struct story_ev *e;
	char why[64];

	if (in)
		set_netns(peer, r->netns);
	else
		set_netns(me, r->netns);
	if (in) {
		g = find_sent(st, s, r);
		if (g) {
			g->seen_in = true;
			if (g->ev >= 0) {
				st->ev[g->ev].seen_in = true;
				st->ev[g->ev].ts_in = r->ts_ns;
			}
			if (ann)
				ann->violation = g->violation;
			if (ann && g->old_numbers)
				ann_old_numbers(ann, me, peer);
			if ((f & F_SYN) && !(f & F_ACK) && !peer->t_start)
				peer->t_start = r->ts_ns;
			/* the FIN reached a timewait socket in FIN_WAIT2 */
			if ((f & F_FIN) && peer->tw_pending &&
			    peer->tw_sub == TCP_FIN_WAIT2)
				enter_time_wait(st, !s, r->ts_ns, true);
			return;
		}
	}
	e = add_ev(st, EV_SEG, (uint8_t)s, r->ts_ns);
	g = recent_slot(t, st);
	g->side = (uint8_t)s;
	g->flags = f;
	g->seq = seq;
	g->ack = ack;
	g->len = len;
	g->seen_in = in;
	g->old_numbers = false;
	g->ev = st->ev && e >= st->ev && e < st->ev + st->nev ?
		(int32_t)(e - st->ev) : -1;
	e->flags = f;
	e->seq = seq;
	e->ack = ack;
	e->len = len;
	e->win = r->packet.win;
	if (in) {
		e->seen_in = true;
		e->ts_in = r->ts_ns;
	} else {
		e->seen_out = true;
	}

	violation = check_segment(st, s, r);
	e->violation = violation;
	g->violation = violation;
	if (violation)
		add_violation(st, violation);
	if (ann)
		ann->violation = violation;

	if (f & F_SYN) {
		if (me->syn_tx && me->isn_known && me->isn == seq) {
			mark_retransmit(e, f & F_ACK ? "SYN-ACK" : "SYN",
					me->syn_tx, r->ts_ns - me->last_syn_ts);
			if (f & F_ACK)
				st->synack_retransmits++;
			else
				st->syn_retransmits++;
		}
		me->syn_tx++;
		me->last_syn_ts = r->ts_ns;
		me->isn = seq;
		me->isn_known = true;
		if (f & F_ACK) {
			st->synack_sent = true;
			if (!peer->isn_known) {
				peer->isn = ack - 1;
				peer->isn_known = true;
			}
		} else if (in && !peer->t_start) {
			peer->t_start = r->ts_ns;
		} else if (!in && peer->netns_known &&
			   peer->netns == me->netns && !peer->t_start) {
			/* loopback: no record of the arrival */
			peer->t_start = r->ts_ns;
		}
	}
	if (f & F_FIN) {
		if (me->fin_seen && seq + len == me->fin_seq) {
			me->fin_tx++;
			mark_retransmit(e, "FIN", me->fin_tx - 1,
					r->ts_ns - me->last_fin_ts);
		} else if (!me->fin_seen) {
			me->fin_seen = true;
			me->fin_seq = seq + len;
			me->fin_ts = r->ts_ns;
			me->fin_tx = 1;
			if (st->closed_first < 0)
				st->closed_first = s;
			else if (st->closed_first == !s &&
				 !((f & F_ACK) && ack == peer->fin_seq + 1))
				st->closed_first = 2;	/* they crossed */
		}
		me->last_fin_ts = r->ts_ns;
		/*
		 * The peer's timewait socket moves to TIME_WAIT when the FIN
		 * arrives: now, unless its arrival will be recorded (the peer
		 * is in another namespace that is traced).
		 */
		if (peer->tw_pending && peer->tw_sub == TCP_FIN_WAIT2 &&
		    (in || !peer->netns_known || peer->netns == me->netns))
			peer_tw = true;
	}
	/*
	 * The timewait socket of the connection before answers, in that
	 * connection's numbers, and so does a RST that takes its ack as seq.
	 */
	if ((me->tw_carried && !(f & F_SYN)) ||
	    (peer->tw_carried && (f & (F_RST | F_ACK)) == F_RST &&
	     peer->ack_known && seq == peer->last_ack)) {
		old = true;
		e->old_numbers = true;
		g->old_numbers = true;
		if (ann)
			ann_old_numbers(ann, me, peer);
	}
	if (f & F_ACK) {
		me->last_ack = ack;
		me->ack_known = true;
	}
	if (me->tw_carried && !(f & (F_SYN | F_RST)))
		ev_note(e, "from the earlier connection's timewait socket");
	if (f & F_RST) {
		ev_note(e, "RST sent by %s: %s", side_name(s),
			reset_reason(st, s, why, sizeof(why)));
		/* the first RST in this connection's own numbers */
		if (!me->rst_seen || (me->rst_old && !old)) {
			me->rst_seq = seq;
			me->rst_old = old;
		}
		me->rst_seen = true;
		me->rst_ts = r->ts_ns;
		/* one between the timewait socket and the new one: not ours */
		if (st->reset_by < 0 && !old) {
			if (s == STORY_SERVER && !st->side[0].t_est &&
			    !st->side[1].t_est)
				st->refused = true;
			else
				st->reset_by = s;
		}
	}
	/* a RST's seq may be copied from the segment it answers */
	if (!(f & (F_SYN | F_RST)) && me->isn_known &&
	    (!me->end_known || sdiff(seq + len, me->max_end) > 0)) {
		me->max_end = seq + len;
		me->end_known = true;
	}
	/* last: its event may move st->ev, and e points into it (FIN|RST) */
	if (peer_tw)
		enter_time_wait(st, !s, r->ts_ns, true);
}

/*
 * A socket's RST may be recorded leaving before the socket's reset_sent
 * record: then the reason on the arrow is corrected.  True when the RST
 * was found.
 */
static bool reset_after_rst(struct story *st, int s,
			    const struct tcptrace_record *r)
{
	struct story_ev *e;
	struct story_seg *g;
	unsigned int i;
	char why[64];

	if (!st->recent)
		return false;
	for (i = 1; i <= STORY_RECENT; i++) {
		g = &st->recent[(st->recent_next - i) % STORY_RECENT];
		if (g->ev == -2)
			return false;
		if (g->side != s)
			continue;
		/* the side's last segment must be the RST */
		if (!(g->flags & F_RST))
			return false;
		if (g->ev < 0)
			return true;
		e = &st->ev[g->ev];
		if (r->ts_ns - e->ts > 100000000)	/* 100 ms */
			return false;
		socket_reset_reason(r->state.old_state, r->pid != 0, why,
				    sizeof(why));
		ev_note(e, "RST sent by %s: %s", side_name(s), why);
		return true;
	}
	return false;
}

/* ---- records to stories ------------------------------------------------ */

/* The guess of who is the client was wrong: its SYN came from the other. */
static void swap_sides(struct node *n)
{
	struct story *st = &n->st;
	struct story_side tmp = st->side[0];
	uint8_t slot0 = n->slot_side[0];
	size_t i;

	/* swapped, not flipped: a socket connected to itself keeps 0, 0 */
	n->slot_side[0] = n->slot_side[1];
	n->slot_side[1] = slot0;
	st->side[0] = st->side[1];
	st->side[1] = tmp;
	for (i = 0; i < st->nev; i++)
		st->ev[i].side ^= 1;
	for (i = 0; st->recent && i < STORY_RECENT; i++)
		st->recent[i].side ^= 1;
	if (st->closed_first == 0 || st->closed_first == 1)
		st->closed_first ^= 1;
	if (st->reset_by >= 0)
		st->reset_by ^= 1;
}

static unsigned int pending_filter(uint64_t sock_id)
{
	return (unsigned int)((sock_id * 0x9e3779b97f4a7c15ull) >> 32) &
	       (PENDING_FILTER - 1);
}

/* @r has a sock_id: a free slot has 0. */
static void pending_put(struct story_table *t, const struct tcptrace_record *r)
{
	struct pending *p = &t->pending[t->pending_next++ % PENDING_SLOTS];

	if (!p->sock_id)
		t->npending++;
	else
		t->pending_count[pending_filter(p->sock_id)]--;

	p->sock_id = r->sock_id;
	p->r = *r;
	t->pending_count[pending_filter(p->sock_id)]++;
}

static void fill_owner(struct story_ann *ann, const struct story_side *sd)
{
	if (!ann || !sd->owner_known)
		return;
	ann->owner_known = true;
	ann->owner_pid = sd->pid;
	memcpy(ann->owner_comm, sd->comm, sizeof(ann->owner_comm));
}

static bool side_ended(const struct story_side *sd)
{
	return !sd->sock_known || sd->done;
}

static bool story_over(const struct story *st)
{
	return (st->side[0].sock_known || st->side[1].sock_known) &&
	       side_ended(&st->side[0]) && side_ended(&st->side[1]);
}

/* Every socket seen is closed or in TIME_WAIT (or a timewait socket). */
static bool side_quiet(const struct story_side *sd)
{
	return !sd->sock_known || sd->done || sd->tw_pending ||
	       sd->state == TCP_CLOSE || sd->state == TCP_TIME_WAIT;
}

static bool story_quiet(const struct story *st)
{
	return (st->side[0].sock_known || st->side[1].sock_known) &&
	       side_quiet(&st->side[0]) && side_quiet(&st->side[1]);
}

/* The owner of a server end that has none: the process that listens. */
static void owner_from_listener(struct story_table *t, struct story *st)
{
	struct story_side *sd = &st->side[STORY_SERVER];
	struct listener *l;

	if (sd->owner_known || !sd->netns_known)
		return;
	l = listener_slot(t, sd->netns, sd->port, false);
	if (l && l->pid) {
		sd->owner_known = true;
		sd->pid = l->pid;
		memcpy(sd->comm, l->comm, sizeof(sd->comm));
	}
}

static void feed_socket(struct node *n, int s,
			const struct tcptrace_record *r)
{
	struct story *st = &n->st;
	struct story_side *sd = &st->side[s];
	struct story_ev *e;
	char buf[24];

	set_netns(sd, r->netns);
	if (r->pid)
		set_owner(sd, r);
	switch (r->type) {
	case TCPTRACE_T_STATE:
		apply_state(st, s, r);
		break;
	case TCPTRACE_T_TIMEWAIT:
		apply_timewait(st, s, r);
		break;
	case TCPTRACE_T_TIMEWAIT_END:
		apply_timewait_end(st, s, r);
		break;
	case TCPTRACE_T_RESET_SENT:
		sd->sock_known = true;
		if (!reset_after_rst(st, s, r)) {
			sd->reset_pending = true;
			sd->reset_state = r->state.old_state;
			sd->reset_by_app = r->pid != 0;
		}
		break;
	case TCPTRACE_T_RESET_RECEIVED:
		sd->sock_known = true;
		/* a note only when the RST itself was not recorded */
		if (!st->side[!s].rst_seen) {
			e = add_ev(st, EV_NOTE, (uint8_t)s, r->ts_ns);
			ev_note(e, "%s: reset received in %s", side_name(s),
				tcp_state_name(r->state.old_state, buf,
					       sizeof(buf)));
		}
		if (r->state.old_state == TCP_SYN_SENT && s == STORY_CLIENT &&
		    st->reset_by < 0)
			st->refused = true;
		break;
	case TCPTRACE_T_SYNACK_RETRANSMIT:
		if (r->synack.num_retrans > st->synack_retransmits)
			st->synack_retransmits = r->synack.num_retrans;
		sd->isn = r->synack.snt_isn;
		sd->isn_known = true;
		st->side[!s].isn = r->synack.rcv_isn;
		st->side[!s].isn_known = true;
		break;
	case TCPTRACE_T_LISTEN_OVERFLOW:
		e = add_ev(st, EV_NOTE, (uint8_t)s, r->ts_ns);
		if (r->listen.reason == TCPTRACE_OVF_SYN_SYNQ)
			ev_note(e, "server: SYN queue full (%u): SYN dropped",
				r->listen.syn_queue);
		else
			ev_note(e,
				"server: accept queue full (%u, backlog %u): %s dropped",
				r->listen.accept_queue, r->listen.backlog,
				r->listen.reason == TCPTRACE_OVF_ACK_ACCEPTQ ?
				 "third ACK" : "SYN");
		break;
	case TCPTRACE_T_DESTROY:
	case TCPTRACE_T_RETRANSMIT:
	default:
		sd->sock_known = true;
		break;
	}
}

/* The records of this socket that waited for its 4-tuple, oldest first. */
static void feed_pending(struct story_table *t, struct node *n, int s,
			 uint64_t sock_id)
{
	unsigned int f, i, back = 0, left;
	struct pending *p;

	if (!sock_id || !t->npending)
		return;
	f = pending_filter(sock_id);
	left = t->pending_count[f];
	/*
	 * How far back the oldest of them is: the search stops when it has
	 * found as many as the filter counts, which is all of them unless
	 * another sock_id shares the filter's counter.
	 */
	for (i = 1; i <= PENDING_SLOTS && left; i++) {
		if (t->pending[(t->pending_next - i) % PENDING_SLOTS].sock_id ==
		    sock_id) {
			back = i;
			left--;
		}
	}
	for (i = back; i >= 1; i--) {
		p = &t->pending[(t->pending_next - i) % PENDING_SLOTS];
		if (p->sock_id != sock_id)
			continue;
		p->sock_id = 0;
		t->npending--;
		t->pending_count[f]--;
		feed_socket(n, s, &p->r);
	}
}

static void note_lost(struct story_table *t, const struct tcptrace_record *r)
{
	struct story_ev *e;
	struct node *n;

	for (n = t->oldest; n; n = n->next) {
		n->st.lost_records += r->lost.count;
		e = add_ev(&n->st, EV_LOST, 0, r->ts_ns);
		ev_note(e,
			"%llu records lost (cpu %u): this story may miss events",
			(unsigned long long)r->lost.count, r->cpu);
	}
}

int story_feed(struct story_table *t, const struct tcptrace_record *r,
	       struct story_ann *ann)
{
	const uint8_t *l_addr = r->saddr, *r_addr = r->daddr;
	uint16_t l_port = r->sport, r_port = r->dport;
	bool pkt = r->type == TCPTRACE_T_PACKET;
	bool in = pkt && r->dir == TCPTRACE_DIR_IN;
	struct tw_carry carry;
	struct listener *lst;
	struct node *n;
	struct key k;
	int s, ls, l_slot, s_slot;

	if (ann)
		memset(ann, 0, sizeof(*ann));
	/* the test of story_expire() first: most records end no story */
	if (r->ts_ns > STORY_GRACE_NS && t->closing &&
	    t->closing->over_ns + STORY_GRACE_NS <= r->ts_ns)
		story_expire(t, r->ts_ns);
	if (r->type == TCPTRACE_T_LOST) {
		note_lost(t, r);
		return t->err;
	}
	if (r->family != AF_INET && r->family != AF_INET6)
		return t->err;
	if (in) {
		l_addr = r->daddr;
		l_port = r->dport;
		r_addr = r->saddr;
		r_port = r->sport;
	}
	/* listeners, and sockets that do not have their 4-tuple yet */
	if (!pkt && (!l_port || !r_port)) {
		if (r->type == TCPTRACE_T_STATE &&
		    r->state.new_state == TCP_LISTEN && r->pid) {
			lst = listener_slot(t, r->netns, l_port, true);
			lst->pid = r->pid;
			memcpy(lst->comm, r->comm, sizeof(lst->comm));
		} else if (r->type == TCPTRACE_T_STATE && r->sock_id &&
			   r->state.new_state != TCP_LISTEN &&
			   !(r->state.old_state == TCP_LISTEN &&
			     r->state.new_state == TCP_CLOSE)) {
			pending_put(t, r);
		}
		if (ann && r->pid) {
			ann->owner_known = true;
			ann->owner_pid = r->pid;
			memcpy(ann->owner_comm, r->comm,
			       sizeof(ann->owner_comm));
		} else if (ann) {
			/* e.g. the child of a listener, before its 4-tuple */
			lst = listener_slot(t, r->netns, l_port, false);
			if (lst && lst->pid) {
				ann->owner_known = true;
				ann->owner_pid = lst->pid;
				memcpy(ann->owner_comm, lst->comm,
				       sizeof(ann->owner_comm));
			}
		}
		return t->err;
	}

	/* the key slots of the local end and of a segment's sender */
	l_slot = make_key(&k, r->family, l_addr, l_port, r_addr, r_port);
	s_slot = in ? !l_slot : l_slot;
	n = t->last;
	if (!n || !key_eq(&n->key, &k))
		n = *find_slot(t, &k);
	carry.valid = false;

	/*
	 * A socket bound to these ports connects (CLOSE -> SYN_SENT with its
	 * 4-tuple) while the story has seen a socket at this end already: a
	 * new connection, the old one ends here.
	 */
	if (n && r->type == TCPTRACE_T_STATE &&
	    r->state.old_state == TCP_CLOSE &&
	    r->state.new_state == TCP_SYN_SENT &&
	    n->st.side[n->slot_side[l_slot]].sock_known) {
		carry_timewait(&n->st, l_addr, l_port, r->ts_ns, &carry);
		n->st.ended = story_over(&n->st);
		finish(t, n, n->closing ? n->over_ns : r->ts_ns);
		n = NULL;
	}

	if (pkt && (r->packet.flags & (F_SYN | F_ACK)) == F_SYN) {
		/* a SYN: the sender's ISN again, the peer's crossing SYN,
		 * or a new connection on this 4-tuple */
		if (n) {
			s = n->slot_side[s_slot];
			/* the story began with a state record: its SYN */
			if (!n->st.roles_known && !n->st.side[s].syn_tx &&
			    !story_over(&n->st)) {
				if (s == STORY_SERVER)
					swap_sides(n);
				n->st.roles_known = true;
				n->st.start_ns = r->ts_ns;
				s = STORY_CLIENT;
			}
			if (n->closing ||
			    !((n->st.side[s].isn_known &&
			       n->st.side[s].isn == r->packet.seq) ||
			      (!n->st.side[s].syn_tx &&
			       !n->st.side[s].isn_known &&
			       !story_over(&n->st)))) {
				carry_timewait(&n->st, r->saddr, r->sport,
					       r->ts_ns, &carry);
				n->st.ended = story_over(&n->st);
				finish(t, n, n->closing ? n->over_ns : r->ts_ns);
				n = NULL;
			}
		}
		if (!n) {
			n = new_story(t, &k, r, r->saddr, r->sport, r->daddr,
				      r->dport, true);
			if (n)
				take_timewait(&n->st, &carry);
		}
	} else if (!n) {
		/* no story: start one, unless the record is an epilogue */
		if (r->type == TCPTRACE_T_TIMEWAIT_END ||
		    r->type == TCPTRACE_T_DESTROY ||
		    r->type == TCPTRACE_T_LISTEN_OVERFLOW ||
		    ((r->type == TCPTRACE_T_RESET_SENT ||
		      r->type == TCPTRACE_T_RESET_RECEIVED) &&
		     r->state.old_state == TCP_CLOSE) ||
		    (r->type == TCPTRACE_T_STATE &&
		     r->state.new_state == TCP_CLOSE))
			return t->err;
		if (pkt && (r->packet.flags & (F_SYN | F_ACK)) ==
			   (F_SYN | F_ACK))
			n = new_story(t, &k, r, r->daddr, r->dport, r->saddr,
				      r->sport, false);
		else if (l_port < r_port)
			n = new_story(t, &k, r, r_addr, r_port, l_addr, l_port,
				      false);
		else
			n = new_story(t, &k, r, l_addr, l_port, r_addr, r_port,
				      false);
		if (n)
			take_timewait(&n->st, &carry);
	}
	if (!n)
		return t->err;
	t->last = n;

	ls = n->slot_side[l_slot];
	set_netns(&n->st.side[ls], r->netns);
	feed_pending(t, n, ls, r->sock_id);
	if (pkt) {
		s = n->slot_side[s_slot];
		if (r->pid && r->dir == TCPTRACE_DIR_OUT)
			set_owner(&n->st.side[s], r);
		apply_packet(t, &n->st, s, r, ann);
	} else {
		feed_socket(n, ls, r);
	}
	owner_from_listener(t, &n->st);
	fill_owner(ann, &n->st.side[ls]);
	if (story_over(&n->st))
		mark_over(t, n, r->ts_ns);
	else if (!t->events && n->st.recent && !n->st.recent_returned &&
		 story_quiet(&n->st)) {
		recent_put(t, &n->st);
		n->st.recent_returned = true;
	}
	return t->err;
}

const char *story_outcome(const struct story *st)
{
	if (st->refused)
		return "refused";
	if (st->reset_by == STORY_CLIENT)
		return "reset by client";
	if (st->reset_by == STORY_SERVER)
		return "reset by server";
	/* both FINs: closed, even if a timewait socket still lingers */
	if (st->side[0].fin_seen && st->side[1].fin_seen)
		return "closed";
	if (st->handshake_left)
		return st->left_by_app ? "aborted" : "timed out";
	return st->ended ? "aborted" : "open";
}
