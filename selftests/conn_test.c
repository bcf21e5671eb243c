// SPDX-License-Identifier: GPL-2.0
/*
 * tcptrace records of a TCP handshake, of a teardown with a half-close
 * started by either side, and of a refused connection.
 *
 * Every test runs in fresh network namespaces: a client and a server joined
 * by veth, or one namespace where both talk over loopback.  All the records
 * of these namespaces belong to the test, so each is accounted for: every
 * expected record exactly once, in order, with exact seq/ack numbers, and
 * nothing else.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "tcptrace_util.h"

#define PORT		5000
#define CLOSED_PORT	5001
/* bytes the closing side sends before its FIN */
#define DATA_C		100
/* bytes the other side sends in CLOSE_WAIT */
#define DATA_D		1000
/* longer than the delayed ACK of a FIN (40..200 ms) */
#define ACK_DELAY_MS	500

/* TCP header length with the options Linux puts in a SYN / other segments */
#define DOFF_SYN	40
#define DOFF_TS		32
#define DOFF_BARE	20

#define MAX_SEL		64

/* Indices into the records of the test's namespaces */
struct sel {
	size_t n;
	size_t i[MAX_SEL];
};

struct exp_pkt {
	uint32_t netns;
	uint8_t dir;
	bool from_client;
	uint8_t flags;
	uint32_t seq;
	uint32_t ack;		/* checked when flags has ACK */
	uint32_t payload;
	uint8_t doff;
};

struct exp_sk {
	uint8_t type;
	uint8_t old_state;
	uint8_t new_state;
	bool addrs;		/* check addresses, ports and sequence numbers */
	bool disconnected;	/* after a failed connect(): see refused */
	uint32_t snd_nxt;
	uint32_t rcv_nxt;
	uint32_t snd_una;
	uint32_t timeo_ms;
};

static struct exp_sk sk_bare(uint8_t type, uint8_t old, uint8_t new)
{
	struct exp_sk e = {
		.type = type,
		.old_state = old,
		.new_state = new,
	};

	return e;
}

static struct exp_sk sk_full(uint8_t type, uint8_t old, uint8_t new,
			     uint32_t snd_nxt, uint32_t rcv_nxt,
			     uint32_t snd_una, uint32_t timeo_ms)
{
	struct exp_sk e = {
		.type = type,
		.old_state = old,
		.new_state = new,
		.addrs = true,
		.snd_nxt = snd_nxt,
		.rcv_nxt = rcv_nxt,
		.snd_una = snd_una,
		.timeo_ms = timeo_ms,
	};

	return e;
}

FIXTURE(conn) {
	struct tt_case c;
	char comm[16];
};

TT_VETH_VARIANTS(conn);
TT_LO_VARIANTS(conn);

FIXTURE_SETUP(conn)
{
	char err[256];

	prctl(PR_GET_NAME, self->comm);
	ASSERT_EQ(0, tt_case_setup(&self->c, variant->family, variant->veth,
				   err, sizeof(err)))
		TH_LOG("%s", err);
	ASSERT_EQ(0, tt_dev_clear(self->c.dev));
}

FIXTURE_TEARDOWN(conn)
{
	tt_case_teardown(&self->c, _metadata->passed);
}

static void collect(struct __test_metadata *_metadata,
		    FIXTURE_DATA(conn) *self)
{
	const char *p = tt_case_collect(&self->c, 300, true);

	ASSERT_EQ(NULL, p) TH_LOG("%s", p);
}

static void select_pkts(const struct tt_recs *in, struct sel *out,
			uint16_t p1, uint16_t p2)
{
	size_t i;

	out->n = 0;
	for (i = 0; i < in->n && out->n < MAX_SEL; i++) {
		const struct tcptrace_record *r = &in->r[i];

		if (r->type != TCPTRACE_T_PACKET)
			continue;
		if ((r->sport == p1 && r->dport == p2) ||
		    (r->sport == p2 && r->dport == p1))
			out->i[out->n++] = i;
	}
}

static void select_sock(const struct tt_recs *in, struct sel *out,
			uint64_t id)
{
	size_t i;

	out->n = 0;
	for (i = 0; i < in->n && out->n < MAX_SEL; i++)
		if (in->r[i].type != TCPTRACE_T_PACKET &&
		    in->r[i].sock_id == id)
			out->i[out->n++] = i;
}

/* Index of the only STATE record of ns going old->new; asserts it is one. */
static size_t find_state(struct __test_metadata *_metadata,
			 const struct tt_recs *in, uint32_t ns,
			 int old, int new)
{
	size_t i, found = 0, n = 0;

	for (i = 0; i < in->n; i++) {
		const struct tcptrace_record *r = &in->r[i];

		if (r->type == TCPTRACE_T_STATE && r->netns == ns &&
		    r->state.old_state == old && r->state.new_state == new) {
			found = i;
			n++;
		}
	}
	ASSERT_EQ(1, n)
		TH_LOG("STATE %s->%s records in ns %u", tt_state_name(old),
		       tt_state_name(new), ns);
	return found;
}

static void push_seg(const struct tt_env *env, struct exp_pkt *e, size_t *n,
		     bool from_client, uint8_t flags, uint32_t seq,
		     uint32_t ack, uint32_t payload, uint8_t doff)
{
	struct exp_pkt p = {
		.from_client = from_client,
		.flags = flags,
		.seq = seq,
		.ack = ack,
		.payload = payload,
		.doff = doff,
	};

	p.netns = from_client ? env->c_ino : env->s_ino;
	p.dir = TCPTRACE_DIR_OUT;
	e[(*n)++] = p;
	if (env->veth) {
		p.netns = from_client ? env->s_ino : env->c_ino;
		p.dir = TCPTRACE_DIR_IN;
		e[(*n)++] = p;
	}
}

static void check_pkts(struct __test_metadata *_metadata,
		       FIXTURE_DATA(conn) *self, const struct sel *pk,
		       const struct exp_pkt *e, size_t n, uint16_t sport)
{
	const struct tt_env *env = &self->c.env;
	size_t k;

	ASSERT_EQ(n, pk->n) TH_LOG("PACKET records of the connection");
	for (k = 0; k < n; k++) {
		const struct tcptrace_record *r = &self->c.ours.r[pk->i[k]];
		const uint8_t *src = e[k].from_client ? env->c_addr : env->s_addr;
		const uint8_t *dst = e[k].from_client ? env->s_addr : env->c_addr;
		uint16_t sp = e[k].from_client ? self->c.cport : sport;
		uint16_t dp = e[k].from_client ? sport : self->c.cport;

		ASSERT_EQ(e[k].netns, r->netns) TH_LOG("packet %zu netns", k);
		ASSERT_EQ(e[k].dir, r->dir) TH_LOG("packet %zu dir", k);
		ASSERT_EQ(env->family, r->family);
		ASSERT_EQ(0, memcmp(src, r->saddr, 16))
			TH_LOG("packet %zu saddr", k);
		ASSERT_EQ(0, memcmp(dst, r->daddr, 16))
			TH_LOG("packet %zu daddr", k);
		ASSERT_EQ(sp, r->sport) TH_LOG("packet %zu sport", k);
		ASSERT_EQ(dp, r->dport) TH_LOG("packet %zu dport", k);
		ASSERT_EQ(e[k].flags, r->packet.flags)
			TH_LOG("packet %zu flags", k);
		ASSERT_EQ(e[k].seq, r->packet.seq) TH_LOG("packet %zu seq", k);
		if (e[k].flags & TT_F_ACK) {
			ASSERT_EQ(e[k].ack, r->packet.ack)
				TH_LOG("packet %zu ack", k);
		}
		ASSERT_EQ(e[k].payload, r->packet.payload_len)
			TH_LOG("packet %zu payload_len", k);
		ASSERT_EQ(e[k].doff, r->packet.doff)
			TH_LOG("packet %zu doff", k);
		if (e[k].flags & TT_F_RST) {
			ASSERT_EQ(0, r->packet.win);
		} else {
			ASSERT_NE(0, r->packet.win);
		}
	}
}

/*
 * Checks the records of one socket (sel) against e[].  The addresses are
 * those of the client side when client is set, else of the server side.
 */
static void check_sock(struct __test_metadata *_metadata,
		       FIXTURE_DATA(conn) *self, const struct sel *sk,
		       const struct exp_sk *e, size_t n, bool client,
		       uint16_t sport, const char *what)
{
	const struct tt_env *env = &self->c.env;
	const uint8_t zero[16] = { 0 };
	size_t k;

	ASSERT_EQ(n, sk->n) TH_LOG("number of records of the %s socket", what);
	for (k = 0; k < n; k++) {
		const struct tcptrace_record *r = &self->c.ours.r[sk->i[k]];

		ASSERT_EQ(e[k].type, r->type) TH_LOG("%s %zu type", what, k);
		ASSERT_EQ(client ? env->c_ino : env->s_ino, r->netns);
		ASSERT_EQ(env->family, r->family);
		ASSERT_EQ(e[k].old_state, r->state.old_state)
			TH_LOG("%s %zu old_state", what, k);
		ASSERT_EQ(e[k].new_state, r->state.new_state)
			TH_LOG("%s %zu new_state", what, k);
		ASSERT_EQ(e[k].timeo_ms, r->state.timeo_ms)
			TH_LOG("%s %zu timeo_ms", what, k);
		if (!e[k].addrs)
			continue;
		ASSERT_EQ(client ? self->c.cport : sport, r->sport)
			TH_LOG("%s %zu sport", what, k);
		if (e[k].disconnected) {
			/* tcp_disconnect() reset the local address and the
			 * remote port
			 */
			ASSERT_EQ(0, memcmp(zero, r->saddr, 16))
				TH_LOG("%s %zu saddr", what, k);
			ASSERT_EQ(0, r->dport) TH_LOG("%s %zu dport", what, k);
		} else {
			ASSERT_EQ(0, memcmp(client ? env->c_addr : env->s_addr,
					    r->saddr, 16))
				TH_LOG("%s %zu saddr", what, k);
			ASSERT_EQ(0, memcmp(client ? env->s_addr : env->c_addr,
					    r->daddr, 16))
				TH_LOG("%s %zu daddr", what, k);
			ASSERT_EQ(client ? sport : self->c.cport, r->dport)
				TH_LOG("%s %zu dport", what, k);
		}
		ASSERT_EQ(e[k].snd_nxt, r->state.snd_nxt)
			TH_LOG("%s %zu snd_nxt", what, k);
		ASSERT_EQ(e[k].rcv_nxt, r->state.rcv_nxt)
			TH_LOG("%s %zu rcv_nxt", what, k);
		ASSERT_EQ(e[k].snd_una, r->state.snd_una)
			TH_LOG("%s %zu snd_una", what, k);
	}
}

/* Record of the calling task: pid and comm. */
static void check_task(struct __test_metadata *_metadata,
		       FIXTURE_DATA(conn) *self, const struct tcptrace_record *r)
{
	ASSERT_EQ((uint32_t)getpid(), r->pid);
	ASSERT_EQ(0, strncmp(self->comm, r->comm, sizeof(r->comm)));
}

static void establish(struct __test_metadata *_metadata,
		      FIXTURE_DATA(conn) *self)
{
	const char *p = tt_case_establish(&self->c, PORT);

	ASSERT_EQ(NULL, p) TH_LOG("%s", p);
}

struct hs {
	uint32_t x;		/* client ISN */
	uint32_t y;		/* server ISN */
	uint64_t c_id;		/* client socket */
	uint64_t l_id;		/* listener */
	uint64_t s_id;		/* accepted socket */
	size_t n;		/* records of the handshake */
	struct sel pk;		/* PACKET records of the connection */
};

/*
 * Checks the handshake part of self->c.ours; extra_c/extra_s are the records
 * expected on the client/accepted socket after the handshake.
 */
static void check_handshake(struct __test_metadata *_metadata,
			    FIXTURE_DATA(conn) *self, struct hs *h,
			    const struct exp_sk *extra_c, size_t n_extra_c,
			    const struct exp_sk *extra_s, size_t n_extra_s)
{
	const struct tt_env *env = &self->c.env;
	const struct tt_recs *o = &self->c.ours;
	struct exp_sk ec[16], es[16];
	struct exp_pkt ep[8];
	size_t i_syn_sent, i_listen, i_synrecv, i_c_est, i_s_est, np = 0;
	struct sel sk;
	size_t k;

	/* The client's SYN gives x, the server's SYN-ACK y. */
	select_pkts(o, &h->pk, self->c.cport, PORT);
	ASSERT_LE(env->veth ? 6 : 3, h->pk.n);
	h->x = o->r[h->pk.i[0]].packet.seq;
	h->y = o->r[h->pk.i[env->veth ? 2 : 1]].packet.seq;

	push_seg(env, ep, &np, true, TT_F_SYN, h->x, 0, 0, DOFF_SYN);
	push_seg(env, ep, &np, false, TT_F_SYN | TT_F_ACK, h->y, h->x + 1, 0,
		 DOFF_SYN);
	push_seg(env, ep, &np, true, TT_F_ACK, h->x + 1, h->y + 1, 0, DOFF_TS);
	{
		struct sel hp = h->pk;

		hp.n = np;
		check_pkts(_metadata, self, &hp, ep, np, PORT);
	}
	/* the SYN left in connect(); the server's segments in softirq */
	check_task(_metadata, self, &o->r[h->pk.i[0]]);
	for (k = 1; k < np; k++)
		if (!ep[k].from_client) {
			ASSERT_EQ(0, o->r[h->pk.i[k]].pid)
				TH_LOG("server segment %zu has a pid", k);
		}
	if (env->veth) {
		ASSERT_EQ(0, o->r[h->pk.i[1]].pid);
	}

	i_listen = find_state(_metadata, o, env->s_ino, TT_CLOSE, TT_LISTEN);
	i_syn_sent = find_state(_metadata, o, env->c_ino, TT_CLOSE,
				TT_SYN_SENT);
	i_synrecv = find_state(_metadata, o, env->s_ino, TT_LISTEN,
			       TT_SYN_RECV);
	h->l_id = o->r[i_listen].sock_id;
	h->c_id = o->r[i_syn_sent].sock_id;
	h->s_id = o->r[i_synrecv].sock_id;
	ASSERT_NE(0, h->l_id);
	ASSERT_NE(0, h->c_id);
	ASSERT_NE(0, h->s_id);
	ASSERT_NE(h->l_id, h->c_id);
	ASSERT_NE(h->l_id, h->s_id);
	ASSERT_NE(h->c_id, h->s_id);
	check_task(_metadata, self, &o->r[i_listen]);
	check_task(_metadata, self, &o->r[i_syn_sent]);

	/* the listener */
	{
		const struct tcptrace_record *r = &o->r[i_listen];
		uint8_t zero[16] = { 0 };

		select_sock(o, &sk, h->l_id);
		ASSERT_EQ(1, sk.n) TH_LOG("records of the listener");
		ASSERT_EQ(0, memcmp(env->s_addr, r->saddr, 16));
		ASSERT_EQ(PORT, r->sport);
		ASSERT_EQ(0, memcmp(zero, r->daddr, 16));
		ASSERT_EQ(0, r->dport);
		ASSERT_EQ(0, r->state.snd_nxt);
		ASSERT_EQ(0, r->state.rcv_nxt);
		ASSERT_EQ(0, r->state.snd_una);
	}

	/* the client: CLOSE->SYN_SENT before its port is chosen */
	{
		const struct tcptrace_record *r = &o->r[i_syn_sent];

		ASSERT_EQ(0, memcmp(env->c_addr, r->saddr, 16));
		ASSERT_EQ(0, memcmp(env->s_addr, r->daddr, 16));
		ASSERT_EQ(0, r->sport);
		ASSERT_EQ(PORT, r->dport);
		ASSERT_EQ(0, r->state.snd_nxt);
		ASSERT_EQ(0, r->state.rcv_nxt);
		ASSERT_EQ(0, r->state.snd_una);
	}
	ec[0] = sk_bare(TCPTRACE_T_STATE, TT_CLOSE, TT_SYN_SENT);
	ec[1] = sk_full(TCPTRACE_T_STATE, TT_SYN_SENT, TT_ESTABLISHED,
			 h->x + 1, h->y + 1, h->x + 1, 0);
	ASSERT_GE(14, n_extra_c);
	memcpy(ec + 2, extra_c, n_extra_c * sizeof(*ec));
	select_sock(o, &sk, h->c_id);
	check_sock(_metadata, self, &sk, ec, 2 + n_extra_c, true, PORT,
		   "client");
	i_c_est = sk.i[1];
	/* x cross-checked with the client's snd_nxt at ESTABLISHED */
	ASSERT_EQ(h->x, o->r[i_c_est].state.snd_nxt - 1);

	/* the accepted socket: LISTEN->SYN_RECV before its addresses are set */
	es[0] = sk_bare(TCPTRACE_T_STATE, TT_LISTEN, TT_SYN_RECV);
	es[1] = sk_full(TCPTRACE_T_STATE, TT_SYN_RECV, TT_ESTABLISHED,
			 h->y + 1, h->x + 1, h->y + 1, 0);
	ASSERT_GE(14, n_extra_s);
	memcpy(es + 2, extra_s, n_extra_s * sizeof(*es));
	select_sock(o, &sk, h->s_id);
	check_sock(_metadata, self, &sk, es, 2 + n_extra_s, false, PORT,
		   "accepted");
	ASSERT_EQ(i_synrecv, sk.i[0]);
	i_s_est = sk.i[1];
	ASSERT_EQ(h->y, o->r[i_s_est].state.snd_nxt - 1);

	/* causal order across the two sides */
	ASSERT_LT(i_listen, i_syn_sent);
	ASSERT_LT(i_syn_sent, h->pk.i[0]);
	/* ESTABLISHED after the SYN-ACK came in, before the ACK went out */
	ASSERT_LT(h->pk.i[env->veth ? 3 : 1], i_c_est);
	ASSERT_LT(i_c_est, h->pk.i[env->veth ? 4 : 2]);
	/* the accepted socket appears when the ACK arrives */
	ASSERT_LT(h->pk.i[np - 1], i_synrecv);
	ASSERT_LT(i_synrecv, i_s_est);

	h->n = 1 + 2 + 2 + np;
}

TEST_F(conn, handshake)
{
	struct hs h;

	establish(_metadata, self);
	collect(_metadata, self);
	check_handshake(_metadata, self, &h, NULL, 0, NULL, 0);
	/* nothing else: every segment once, no stray record */
	ASSERT_EQ(h.n, self->c.ours.n);
	ASSERT_EQ(h.n, h.pk.n + 5);
}

/*
 * The half-close: the active side sends DATA_C bytes, then shutdown(SHUT_WR)
 * (FIN seq=u).  The passive side ACKs it (ack=u+1) after its delayed-ACK
 * timer, sends DATA_D bytes in CLOSE_WAIT (seq=v..v+d), then closes (FIN
 * seq=w=v+d ack=u+1).  The active side's final ACK is seq=u+1 ack=w+1, and
 * it goes through tcp_time_wait() with the TIME_WAIT sub-state.
 */
static void teardown_test(struct __test_metadata *_metadata,
			  FIXTURE_DATA(conn) *self, bool client_closes)
{
	static char buf_c[DATA_C], buf_d[DATA_D], rbuf[DATA_D + 1];
	const struct tt_env *env = &self->c.env;
	uint32_t a_isn, p_isn, u, v, w, fin_w, ack_v;
	struct exp_sk ea[5], ep[4];
	struct exp_pkt e[16];
	struct hs h;
	size_t np = 0, k, ia, ip;
	struct sel ska, skp;
	int afd, pfd;

	establish(_metadata, self);
	afd = client_closes ? self->c.cfd : self->c.afd;
	pfd = client_closes ? self->c.afd : self->c.cfd;
	memset(buf_c, 'c', sizeof(buf_c));
	memset(buf_d, 'd', sizeof(buf_d));

	ASSERT_EQ(DATA_C, tt_send_all(afd, buf_c, DATA_C));
	ASSERT_EQ(DATA_C, tt_recv_all(pfd, rbuf, DATA_C));
	tt_msleep(300);

	ASSERT_EQ(0, shutdown(afd, SHUT_WR));
	ASSERT_EQ(0, recv(pfd, rbuf, sizeof(rbuf), 0));	/* EOF: the FIN */
	tt_msleep(ACK_DELAY_MS);
	ASSERT_EQ(TT_FIN_WAIT2, tt_tcp_state(afd));
	ASSERT_EQ(TT_CLOSE_WAIT, tt_tcp_state(pfd));

	ASSERT_EQ(DATA_D, tt_send_all(pfd, buf_d, DATA_D));
	ASSERT_EQ(DATA_D, tt_recv_all(afd, rbuf, DATA_D));
	tt_msleep(ACK_DELAY_MS);

	ASSERT_EQ(0, close(pfd));
	if (client_closes)
		self->c.afd = -1;
	else
		self->c.cfd = -1;
	ASSERT_EQ(0, recv(afd, rbuf, sizeof(rbuf), 0));	/* the peer's FIN */
	tt_msleep(100);
	ASSERT_EQ(TT_CLOSE, tt_tcp_state(afd));
	ASSERT_EQ(0, close(afd));
	if (client_closes)
		self->c.cfd = -1;
	else
		self->c.afd = -1;

	collect(_metadata, self);

	/* sequence numbers from the handshake records */
	select_pkts(&self->c.ours, &h.pk, self->c.cport, PORT);
	ASSERT_LE(env->veth ? 6 : 3, h.pk.n);
	h.x = self->c.ours.r[h.pk.i[0]].packet.seq;
	h.y = self->c.ours.r[h.pk.i[env->veth ? 2 : 1]].packet.seq;
	a_isn = client_closes ? h.x : h.y;
	p_isn = client_closes ? h.y : h.x;
	u = a_isn + 1 + DATA_C;
	v = p_isn + 1;
	w = v + DATA_D;

	ea[0] = sk_full(TCPTRACE_T_STATE, TT_ESTABLISHED, TT_FIN_WAIT1,
			 u, v, u, 0);
	ea[1] = sk_full(TCPTRACE_T_STATE, TT_FIN_WAIT1, TT_FIN_WAIT2,
			 u + 1, v, u + 1, 0);
	ea[2] = sk_full(TCPTRACE_T_TIMEWAIT, TT_FIN_WAIT2, TT_TIME_WAIT,
			 u + 1, w + 1, u + 1, TT_TIMEWAIT_MS);
	ea[3] = sk_full(TCPTRACE_T_STATE, TT_FIN_WAIT2, TT_CLOSE,
			 u + 1, w + 1, u + 1, 0);
	ea[4] = sk_full(TCPTRACE_T_DESTROY, TT_CLOSE, 0,
			 u + 1, w + 1, u + 1, 0);
	ep[0] = sk_full(TCPTRACE_T_STATE, TT_ESTABLISHED, TT_CLOSE_WAIT,
			 v, u + 1, v, 0);
	ep[1] = sk_full(TCPTRACE_T_STATE, TT_CLOSE_WAIT, TT_LAST_ACK,
			 w, u + 1, w, 0);
	ep[2] = sk_full(TCPTRACE_T_STATE, TT_LAST_ACK, TT_CLOSE,
			 w + 1, u + 1, w + 1, 0);
	ep[3] = sk_full(TCPTRACE_T_DESTROY, TT_CLOSE, 0,
			 w + 1, u + 1, w + 1, 0);
	if (client_closes)
		check_handshake(_metadata, self, &h, ea, 5, ep, 4);
	else
		check_handshake(_metadata, self, &h, ep, 4, ea, 5);

	/* the teardown segments follow the handshake's */
	{
		size_t nh = env->veth ? 6 : 3;
		struct sel tp;

		/* FIN seq=u from the active side */
		push_seg(env, e, &np, client_closes, TT_F_FIN | TT_F_ACK, u, v,
			 0, DOFF_TS);
		/* its (delayed) ACK */
		push_seg(env, e, &np, !client_closes, TT_F_ACK, v, u + 1, 0,
			 DOFF_TS);
		/* DATA_D bytes seq=v are not recorded; FIN seq=w=v+d */
		push_seg(env, e, &np, !client_closes, TT_F_FIN | TT_F_ACK, w,
			 u + 1, 0, DOFF_TS);
		/* the final ACK */
		push_seg(env, e, &np, client_closes, TT_F_ACK, u + 1, w + 1, 0,
			 DOFF_TS);

		ASSERT_EQ(nh + np, h.pk.n)
			TH_LOG("PACKET records of the connection");
		tp.n = np;
		for (k = 0; k < np; k++)
			tp.i[k] = h.pk.i[nh + k];
		check_pkts(_metadata, self, &tp, e, np, PORT);
		/* w = v + d exactly, v from the passive side's ACK */
		fin_w = self->c.ours.r[tp.i[env->veth ? 4 : 2]].packet.seq;
		ack_v = self->c.ours.r[tp.i[env->veth ? 2 : 1]].packet.seq;
		ASSERT_EQ(DATA_D, fin_w - ack_v);

		/* causal order of the states and the segments */
		select_sock(&self->c.ours, &ska,
			    client_closes ? h.c_id : h.s_id);
		select_sock(&self->c.ours, &skp,
			    client_closes ? h.s_id : h.c_id);
		ia = 2;		/* first record of each after the handshake */
		ip = 2;
		/* active: ESTABLISHED->FIN_WAIT1 in shutdown(), then its FIN */
		check_task(_metadata, self, &self->c.ours.r[ska.i[ia]]);
		ASSERT_LT(ska.i[ia], tp.i[0]);
		/* passive: CLOSE_WAIT when the FIN arrives, before its ACK */
		ASSERT_LT(tp.i[env->veth ? 1 : 0], skp.i[ip]);
		ASSERT_LT(skp.i[ip], tp.i[env->veth ? 2 : 1]);
		/* active: FIN_WAIT2 when that ACK arrives */
		ASSERT_LT(tp.i[env->veth ? 3 : 1], ska.i[ia + 1]);
		/* passive: LAST_ACK in close(), then its FIN */
		check_task(_metadata, self, &self->c.ours.r[skp.i[ip + 1]]);
		ASSERT_LT(ska.i[ia + 1], skp.i[ip + 1]);
		ASSERT_LT(skp.i[ip + 1], tp.i[env->veth ? 4 : 2]);
		/* active: final ACK, then TIMEWAIT, then FIN_WAIT2->CLOSE */
		ASSERT_LT(tp.i[env->veth ? 6 : 3], ska.i[ia + 2]);
		ASSERT_EQ(ska.i[ia + 2] + 1, ska.i[ia + 3]);
		/* passive: CLOSE when the final ACK arrives, then destroyed */
		ASSERT_LT(tp.i[np - 1], skp.i[ip + 2]);
		ASSERT_LT(skp.i[ip + 2], skp.i[ip + 3]);
	}

	/* nothing else */
	ASSERT_EQ(1 + 7 + 6 + h.pk.n, self->c.ours.n);
}

TEST_F(conn, teardown_by_client)
{
	teardown_test(_metadata, self, true);
}

TEST_F(conn, teardown_by_server)
{
	teardown_test(_metadata, self, false);
}

TEST_F(conn, refused)
{
	const struct tt_env *env = &self->c.env;
	const struct tt_recs *o = &self->c.ours;
	struct exp_pkt e[4];
	struct exp_sk es[4];
	struct sel pk, sk;
	size_t np = 0, i_syn_sent;
	uint32_t x;
	int err;

	self->c.cfd = tt_connect(env, CLOSED_PORT, &err);
	ASSERT_LE(0, self->c.cfd);
	ASSERT_EQ(ECONNREFUSED, err);
	self->c.cport = tt_local_port(self->c.cfd);
	ASSERT_NE(0, self->c.cport);
	ASSERT_EQ(TT_CLOSE, tt_tcp_state(self->c.cfd));
	ASSERT_EQ(0, close(self->c.cfd));
	self->c.cfd = -1;

	collect(_metadata, self);

	select_pkts(o, &pk, self->c.cport, CLOSED_PORT);
	ASSERT_LE(1, pk.n);
	x = o->r[pk.i[0]].packet.seq;
	push_seg(env, e, &np, true, TT_F_SYN, x, 0, 0, DOFF_SYN);
	/* the RST of a segment without a socket: seq 0, ack x+1 */
	push_seg(env, e, &np, false, TT_F_RST | TT_F_ACK, 0, x + 1, 0,
		 DOFF_BARE);
	check_pkts(_metadata, self, &pk, e, np, CLOSED_PORT);

	i_syn_sent = find_state(_metadata, o, env->c_ino, TT_CLOSE, TT_SYN_SENT);
	select_sock(o, &sk, o->r[i_syn_sent].sock_id);
	ASSERT_NE(0, o->r[i_syn_sent].sock_id);
	es[0] = sk_bare(TCPTRACE_T_STATE, TT_CLOSE, TT_SYN_SENT);
	es[1] = sk_full(TCPTRACE_T_RESET_RECEIVED, TT_SYN_SENT, 0,
			 x + 1, 0, x, 0);
	es[2] = sk_full(TCPTRACE_T_STATE, TT_SYN_SENT, TT_CLOSE,
			 x + 1, 0, x, 0);
	/*
	 * connect() failed, so the kernel ran tcp_disconnect(), which cleared
	 * the local address and the remote port before close() destroyed it.
	 */
	es[3] = sk_full(TCPTRACE_T_DESTROY, TT_CLOSE, 0,
			 x + 1, 0, x, 0);
	es[3].disconnected = true;
	check_sock(_metadata, self, &sk, es, 4, true, CLOSED_PORT, "client");
	check_task(_metadata, self, &o->r[sk.i[0]]);
	ASSERT_EQ(0, o->r[sk.i[0]].sport);
	ASSERT_EQ(CLOSED_PORT, o->r[sk.i[0]].dport);

	/* order: SYN_SENT, SYN out, ..., RST in, RESET_RECEIVED, CLOSE */
	ASSERT_LT(sk.i[0], pk.i[0]);
	ASSERT_LT(pk.i[np - 1], sk.i[1]);
	ASSERT_EQ(sk.i[1] + 1, sk.i[2]);
	ASSERT_LT(sk.i[2], sk.i[3]);
	/* no RESET_SENT: the RST was not sent by a socket */
	ASSERT_EQ(np + 4, o->n);
}

TEST_HARNESS_MAIN
