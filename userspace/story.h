/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tcptracectl: connections put together from records ("stories").
 *
 * A story is one TCP connection as both of its ends recorded it: the
 * segments (each once, even when seen leaving one namespace and arriving
 * in another), the state changes of each end, retransmissions, resets,
 * lost records, protocol violations and the process behind each end.
 * The views (ladder, watch --summary) print a story when it ends.
 */
#ifndef TCPTRACECTL_STORY_H
#define TCPTRACECTL_STORY_H

#include "tcptracectl.h"

#define STORY_CLIENT	0
#define STORY_SERVER	1
/* at most this many events are kept per story; later ones are counted */
#define STORY_MAX_EVENTS	1000

enum story_ev_kind {
	EV_SEG,		/* a segment, from side to !side */
	EV_STATE,	/* side entered new_state (inferred: deduced) */
	EV_NOTE,	/* text about side */
	EV_LOST,	/* records were lost: the story may miss events */
};

struct story_ev {
	uint64_t ts;		/* first record of it */
	uint64_t ts_in;		/* EV_SEG: arrival, when seen_in */
	uint8_t kind;
	uint8_t side;
	uint8_t flags;		/* EV_SEG */
	uint8_t old_state;	/* EV_STATE */
	uint8_t new_state;
	bool seen_out, seen_in;	/* EV_SEG: recorded leaving / arriving */
	bool inferred;		/* EV_STATE: deduced, not recorded */
	bool old_numbers;	/* EV_SEG: seq/ack of the earlier connection */
	uint32_t seq, ack, len;
	uint16_t win;
	const char *violation;	/* EV_SEG: NULL or a code */
	char note[96];		/* EV_SEG: mark on the arrow; EV_NOTE text */
};

struct story_side {
	uint8_t addr[16];
	uint16_t port;
	uint32_t netns;
	bool netns_known;
	bool sock_known;	/* a socket record of this end was seen */
	bool done;		/* its socket closed and its timewait ended */
	uint8_t state;		/* last state seen, 0 unknown */
	bool isn_known;
	uint32_t isn;
	bool owner_known;
	uint32_t pid;
	char comm[TCPTRACE_COMM_LEN];
	uint64_t t_start;	/* SYN_SENT, or the SYN's arrival (server) */
	uint64_t t_est;		/* ESTABLISHED */
	uint64_t t_fw2, t_cw;	/* entered FIN_WAIT2 / CLOSE_WAIT */
	uint64_t fw2_ns, cw_ns, tw_ns;
	bool fw2_known, cw_known, tw_known;
	bool tw_pending;	/* a timewait socket holds this end */
	uint8_t tw_sub;		/* its sub-state */
	uint64_t t_tw;		/* entered TIME_WAIT */
	bool fin_seen;
	uint32_t fin_seq;	/* sequence number the FIN occupies */
	uint64_t fin_ts;
	unsigned int fin_tx;	/* FIN transmissions */
	bool rst_seen;
	uint32_t rst_seq;
	bool rst_old;		/* rst_seq in an earlier connection's numbers */
	uint64_t rst_ts;	/* its last RST */
	bool ack_known;
	uint32_t last_ack;	/* the ack of its last segment with ACK */
	bool tw_carried;	/* the timewait socket of an earlier story */
	bool old_isn_known;
	uint32_t old_isn;	/* its ISN in that earlier connection */
	bool end_known;
	uint32_t max_end;	/* highest seq + len sent */
	unsigned int syn_tx;	/* SYN (or SYN-ACK) transmissions */
	uint64_t last_syn_ts, last_fin_ts;
	uint8_t reset_state;	/* state of its socket when it sent a RST */
	bool reset_pending;
	bool reset_by_app;
};

/* A recent segment, to recognise its arrival record. */
struct story_seg {
	uint8_t side, flags;
	bool seen_in;
	bool old_numbers;
	int32_t ev;		/* its event, or -1 */
	uint32_t seq, ack, len;
	const char *violation;
};

#define STORY_RECENT	16

struct story {
	uint8_t family;
	bool roles_known;	/* the client sent the first SYN we saw */
	bool ended;		/* ended by its records, not by a flush */
	bool evicted;		/* pushed out by too many open stories */
	struct story_side side[2];
	uint64_t start_ns, end_ns;
	unsigned int syn_retransmits, synack_retransmits;
	int closed_first;	/* -1 none, a side, or 2: both (FINs crossed) */
	bool refused, synack_sent;
	int reset_by;		/* -1, or the side of the first RST */
	bool handshake_left;	/* a side left SYN_SENT/SYN_RECV for CLOSE */
	bool left_by_app;	/* ... in its process's context: close() */
	uint64_t lost_records;
	const char *violations[8];
	unsigned int nviolations;
	struct story_ev *ev;
	size_t nev, cap, ev_dropped;
	/* private to story.c */
	struct story_seg *recent;	/* STORY_RECENT of them, or NULL */
	unsigned int recent_next;
	bool recent_returned;	/* recent given back once, when quiet */
	size_t *ev_left;	/* the table's event budget, NULL: no events */
};

/* What a record gets from its story, for 'watch'. */
struct story_ann {
	const char *violation;
	/*
	 * a segment in the numbers of the connection before (its timewait
	 * socket's, or a RST answering one): its sender's and receiver's
	 * ISNs there
	 */
	bool old_numbers;
	bool old_s_known, old_d_known;
	uint32_t old_s_isn, old_d_isn;
	bool owner_known;
	uint32_t owner_pid;
	char owner_comm[TCPTRACE_COMM_LEN];
};

struct story_table;
typedef int (*story_end_fn)(void *ctx, const struct story *st);

/* the open stories at most, by default */
#define STORY_MAX_OPEN		65536
/*
 * @max_open bounds the open stories (0: STORY_MAX_OPEN); @events: keep
 * each story's events (for drawing), at most STORY_MAX_EVENTS each and
 * STORY_EVENT_BUDGET in all; without, only counts and checks are kept.
 */
#define STORY_EVENT_BUDGET	(512 * 1024)
struct story_table *story_table_new(size_t max_open, bool events,
				    story_end_fn end, void *ctx);
void story_table_free(struct story_table *t);
/* Feeds @r; fills @ann (may be NULL).  Returns -1 when @end failed. */
int story_feed(struct story_table *t, const struct tcptrace_record *r,
	       struct story_ann *ann);
/* Stories ended early (marked evicted) to make room for new ones. */
uint64_t story_evicted(const struct story_table *t);
/* Ends every open story, oldest first (outcome "open" unless decided). */
int story_flush(struct story_table *t);
/*
 * A story is handed to the view STORY_GRACE_NS after it is over (every end
 * closed), so that records that trail its end (a reset_sent after the
 * socket's CLOSE) still join it; story_expire() ends those whose time has
 * come at @now_ns (CLOCK_MONOTONIC, like the records), as any record does.
 */
#define STORY_GRACE_NS		200000000ULL
int story_expire(struct story_table *t, uint64_t now_ns);

const char *story_outcome(const struct story *st);
const char *side_name(int side);

/* summary.c */
void summary_text(FILE *out, const struct story *st);
void summary_json(FILE *out, const struct story *st);
void endpoint_text(const struct story *st, int side, char *buf, size_t size);

#endif /* TCPTRACECTL_STORY_H */
