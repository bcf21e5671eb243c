// SPDX-License-Identifier: GPL-2.0
/*
 * Retransmissions during the handshake, forced with nftables rules that
 * drop segments on the output path of one side (before POST_ROUTING, so
 * the dropped segments are never recorded):
 *  - the client's ACKs dropped: the listener retransmits its SYN-ACK after
 *    1 s: one SYNACK_RETRANSMIT record (snt_isn, rcv_isn, num_retrans 1)
 *    and the SYN-ACK recorded twice on each side;
 *  - the server's SYN-ACKs dropped: the client retransmits its SYN after
 *    1 s: a RETRANSMIT record (flags S, seq x, end_seq x+1) and one more
 *    SYN record per retransmission.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "tcptrace_util.h"

#define PORT		5000
#define NFT_TABLE	"add table inet tt; " \
			"add chain inet tt out { type filter hook output priority 0; }; "

FIXTURE(retrans) {
	struct tt_case c;
};

TT_VETH_VARIANTS(retrans);

FIXTURE_SETUP(retrans)
{
	char err[256];

	ASSERT_EQ(0, tt_case_setup(&self->c, variant->family, variant->veth,
				   err, sizeof(err)))
		TH_LOG("%s", err);
	ASSERT_EQ(0, tt_run("nft --version >/dev/null"))
		TH_LOG("nft (nftables) is needed");
	ASSERT_EQ(0, tt_dev_clear(self->c.dev));
}

FIXTURE_TEARDOWN(retrans)
{
	tt_case_teardown(&self->c, _metadata->passed);
}

/* Reads what is queued; checks the records of the test's namespaces. */
static void collect(struct __test_metadata *_metadata,
		    FIXTURE_DATA(retrans) *self)
{
	const char *p = tt_case_collect(&self->c, 300, false);

	ASSERT_EQ(NULL, p) TH_LOG("%s", p);
}

TEST_F(retrans, synack_retransmit)
{
	const struct tt_env *env = &self->c.env;
	const struct tt_recs *o = &self->c.ours;
	size_t syn[8], sa_out[8], sa_in[8], srt[8], rt[8], ack[8];
	const struct tcptrace_record *r;
	uint32_t x, y;
	char c = 'x';
	int err, k;

	/* the client's pure ACKs (the third of the handshake) are dropped */
	ASSERT_EQ(0, tt_run_ns(env, false, "nft '" NFT_TABLE
			       "add rule inet tt out tcp dport %d tcp flags == ack drop'",
			       PORT));
	self->c.lfd = tt_listen(env, PORT);
	ASSERT_LE(0, self->c.lfd);
	self->c.cfd = tt_connect(env, PORT, &err);
	ASSERT_LE(0, self->c.cfd);
	ASSERT_EQ(0, err);
	self->c.cport = tt_local_port(self->c.cfd);
	/* the SYN-ACK comes again after 1 s, the next one after 3 s */
	tt_msleep(1700);
	ASSERT_EQ(0, tt_run_ns(env, false, "nft delete table inet tt"));
	/* the data carries the ACK the listener waits for */
	ASSERT_EQ(1, tt_send_all(self->c.cfd, &c, 1));
	self->c.afd = accept4(self->c.lfd, NULL, NULL, SOCK_CLOEXEC);
	ASSERT_LE(0, self->c.afd);
	ASSERT_EQ(1, tt_recv_all(self->c.afd, &c, 1));
	collect(_metadata, self);

	ASSERT_EQ(1, tt_find_pkts(o, env->c_ino, TCPTRACE_DIR_OUT, TT_F_SYN,
			       self->c.cport, syn, 8));
	x = o->r[syn[0]].packet.seq;
	ASSERT_EQ(2, tt_find_pkts(o, env->s_ino, TCPTRACE_DIR_OUT,
			       TT_F_SYN | TT_F_ACK, PORT, sa_out, 8));
	ASSERT_EQ(2, tt_find_pkts(o, env->c_ino, TCPTRACE_DIR_IN,
			       TT_F_SYN | TT_F_ACK, PORT, sa_in, 8));
	y = o->r[sa_out[0]].packet.seq;
	for (k = 0; k < 2; k++) {
		ASSERT_EQ(y, o->r[sa_out[k]].packet.seq);
		ASSERT_EQ(x + 1, o->r[sa_out[k]].packet.ack);
		ASSERT_EQ(y, o->r[sa_in[k]].packet.seq);
		ASSERT_EQ(x + 1, o->r[sa_in[k]].packet.ack);
	}
	/* the client's ACKs never left its namespace */
	ASSERT_EQ(0, tt_find_pkts(o, env->c_ino, TCPTRACE_DIR_OUT, TT_F_ACK,
			       self->c.cport, ack, 8));

	ASSERT_EQ(1, tt_find_type(o, TCPTRACE_T_SYNACK_RETRANSMIT, srt, 8));
	r = &o->r[srt[0]];
	ASSERT_EQ(env->s_ino, r->netns);
	ASSERT_EQ(env->family, r->family);
	ASSERT_EQ(y, r->synack.snt_isn);
	ASSERT_EQ(x, r->synack.rcv_isn);
	ASSERT_EQ(1, r->synack.num_retrans);
	ASSERT_EQ(0, memcmp(env->s_addr, r->saddr, 16));
	ASSERT_EQ(0, memcmp(env->c_addr, r->daddr, 16));
	ASSERT_EQ(PORT, r->sport);
	ASSERT_EQ(self->c.cport, r->dport);
	ASSERT_EQ(0, r->pid);		/* the request socket's timer */
	/* recorded after the retransmitted segment left */
	ASSERT_LT(sa_out[1], srt[0]);
	ASSERT_EQ(0, tt_find_type(o, TCPTRACE_T_RETRANSMIT, rt, 8));
}

TEST_F(retrans, syn_retransmit)
{
	const struct tt_env *env = &self->c.env;
	const struct tt_recs *o = &self->c.ours;
	size_t syn_out[8], syn_in[8], sa_out[8], rt[8], n_syn, n_rt, k;
	struct pollfd pfd = { .events = POLLOUT };
	struct sockaddr_storage ss;
	const struct tcptrace_record *r;
	socklen_t len = sizeof(int);
	int soerr = -1;
	uint32_t x, y;

	/* the server's SYN-ACKs are dropped */
	ASSERT_EQ(0, tt_run_ns(env, true, "nft '" NFT_TABLE
			       "add rule inet tt out tcp sport %d tcp flags & (syn | ack) == syn | ack drop'",
			       PORT));
	self->c.lfd = tt_listen(env, PORT);
	ASSERT_LE(0, self->c.lfd);
	self->c.cfd = tt_socket(env, false);
	ASSERT_LE(0, self->c.cfd);
	ASSERT_EQ(0, fcntl(self->c.cfd, F_SETFL, O_NONBLOCK));
	ASSERT_EQ(-1, connect(self->c.cfd, (struct sockaddr *)&ss,
			      tt_sockaddr(env, true, PORT, &ss)));
	ASSERT_EQ(EINPROGRESS, errno);
	self->c.cport = tt_local_port(self->c.cfd);
	/* the SYN goes again after 1 s */
	tt_msleep(1700);
	ASSERT_EQ(0, tt_run_ns(env, true, "nft delete table inet tt"));
	pfd.fd = self->c.cfd;
	ASSERT_EQ(1, poll(&pfd, 1, 10000));
	ASSERT_EQ(0, getsockopt(self->c.cfd, SOL_SOCKET, SO_ERROR, &soerr,
				&len));
	ASSERT_EQ(0, soerr);
	self->c.afd = accept4(self->c.lfd, NULL, NULL, SOCK_CLOEXEC);
	ASSERT_LE(0, self->c.afd);
	collect(_metadata, self);

	n_rt = tt_find_type(o, TCPTRACE_T_RETRANSMIT, rt, 8);
	ASSERT_LE(1, n_rt);
	n_syn = tt_find_pkts(o, env->c_ino, TCPTRACE_DIR_OUT, TT_F_SYN,
			  self->c.cport, syn_out, 8);
	/* the SYN, and each retransmission of it, once */
	ASSERT_EQ(1 + n_rt, n_syn);
	ASSERT_EQ(n_syn, tt_find_pkts(o, env->s_ino, TCPTRACE_DIR_IN, TT_F_SYN,
				   self->c.cport, syn_in, 8));
	x = o->r[syn_out[0]].packet.seq;
	for (k = 0; k < n_syn; k++) {
		ASSERT_EQ(x, o->r[syn_out[k]].packet.seq);
		ASSERT_EQ(x, o->r[syn_in[k]].packet.seq);
	}
	for (k = 0; k < n_rt; k++) {
		r = &o->r[rt[k]];
		ASSERT_EQ(env->c_ino, r->netns);
		ASSERT_EQ(env->family, r->family);
		ASSERT_EQ(TT_F_SYN, r->state.flags);
		ASSERT_EQ(x, r->state.seq);
		ASSERT_EQ(x + 1, r->state.end_seq);
		ASSERT_EQ(TT_SYN_SENT, r->state.old_state);
		ASSERT_EQ(0, memcmp(env->c_addr, r->saddr, 16));
		ASSERT_EQ(0, memcmp(env->s_addr, r->daddr, 16));
		ASSERT_EQ(self->c.cport, r->sport);
		ASSERT_EQ(PORT, r->dport);
		ASSERT_EQ(o->r[syn_out[0]].sock_id, r->sock_id);
		/* recorded after the retransmitted SYN left */
		ASSERT_LT(syn_out[k + 1], rt[k]);
	}
	/* the handshake then completed: SYN-ACK seq y ack x+1 */
	ASSERT_LE(1, tt_find_pkts(o, env->s_ino, TCPTRACE_DIR_OUT,
			       TT_F_SYN | TT_F_ACK, PORT, sa_out, 8));
	y = o->r[sa_out[0]].packet.seq;
	ASSERT_EQ(x + 1, o->r[sa_out[0]].packet.ack);
	for (k = 0; k < o->n; k++) {
		r = &o->r[k];
		if (r->type == TCPTRACE_T_STATE && r->netns == env->c_ino &&
		    r->state.new_state == TT_ESTABLISHED)
			break;
	}
	ASSERT_GT(o->n, k) TH_LOG("no ESTABLISHED record of the client");
	ASSERT_EQ(TT_SYN_SENT, r->state.old_state);
	ASSERT_EQ(x + 1, r->state.snd_nxt);
	ASSERT_EQ(y + 1, r->state.rcv_nxt);
	ASSERT_EQ(0, tt_find_type(o, TCPTRACE_T_RESET_SENT, rt, 8));
}

TEST_HARNESS_MAIN
