// SPDX-License-Identifier: GPL-2.0
/*
 * tcptrace: socket events from tracepoints, and from kprobes what 6.1 has
 * no tracepoint for: TIME_WAIT entry (tcp_time_wait(): the full socket goes
 * to CLOSE when a timewait socket replaces it) and end (inet_twsk_kill()),
 * and listeners turning connections away because a queue is full
 * (tcp_conn_request(), tcp_v4/v6_syn_recv_sock()).
 *
 * Most of these tracepoints are not exported to modules, so they are found
 * by name with for_each_kernel_tracepoint().  Each probe's prototype is
 * checked at build time against the kernel's register_trace_<name>(): a
 * kernel whose tracepoint changed fails the build instead of calling a
 * probe with the wrong arguments.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/build_bug.h>
#include <linux/ipv6.h>
#include <linux/kprobes.h>
#include <linux/tcp.h>
#include <linux/tracepoint.h>
#include <net/inet_connection_sock.h>
#include <net/inet_sock.h>
#include <net/inet_timewait_sock.h>
#include <net/request_sock.h>
#include <net/tcp.h>
#include <trace/events/sock.h>
#include <trace/events/tcp.h>

#include "compat.h"
#include "tcptrace.h"

/* Addresses, ports and namespace of a socket; @lport in network order. */
static void tt_fill_sock(struct tcptrace_record *r,
			 const struct sock_common *skc, __be16 lport)
{
	r->family = skc->skc_family;
	r->netns = read_pnet(&skc->skc_net)->ns.inum;
	if (skc->skc_family == AF_INET6) {
		memcpy(r->saddr, &skc->skc_v6_rcv_saddr, 16);
		memcpy(r->daddr, &skc->skc_v6_daddr, 16);
	} else {
		memcpy(r->saddr, &skc->skc_rcv_saddr, 4);
		memcpy(r->daddr, &skc->skc_daddr, 4);
	}
	r->sport = ntohs(lport);
	r->dport = ntohs(skc->skc_dport);
}

static bool tt_sock_wanted(const struct sock *sk)
{
	return sk->sk_protocol == IPPROTO_TCP && sk->sk_type == SOCK_STREAM &&
	       tt_port_wanted(ntohs(inet_sk(sk)->inet_sport),
			      ntohs(sk->sk_dport));
}

/*
 * Start a record about a full TCP socket: addresses, id, state and the
 * sequence numbers.  Commit it with tt_ring_commit().
 */
static struct tcptrace_record *tt_sock_record(u8 type, const struct sock *sk,
					      unsigned long *irqflags)
{
	const struct tcp_sock *tp = tcp_sk(sk);
	struct tcptrace_record *r;

	r = tt_ring_reserve(type, irqflags);
	if (!r)
		return NULL;
	tt_fill_sock(r, &sk->__sk_common, inet_sk(sk)->inet_sport);
	r->sock_id = tt_sock_id(sk);
	r->state.old_state = sk->sk_state;
	r->state.snd_nxt = READ_ONCE(tp->snd_nxt);
	r->state.rcv_nxt = READ_ONCE(tp->rcv_nxt);
	r->state.snd_una = READ_ONCE(tp->snd_una);
	return r;
}

static void tt_probe_state(void *data, const struct sock *sk,
			   const int oldstate, const int newstate)
{
	struct tcptrace_record *r;
	unsigned long irqflags;

	if (!tt_sock_wanted(sk))
		return;
	r = tt_sock_record(TCPTRACE_T_STATE, sk, &irqflags);
	if (!r)
		return;
	r->state.old_state = oldstate;
	r->state.new_state = newstate;
	tt_ring_commit(irqflags);
}

static void tt_probe_synack(void *data, const struct sock *sk,
			    const struct request_sock *req)
{
	const struct inet_request_sock *ireq = inet_rsk(req);
	struct tcptrace_record *r;
	unsigned long irqflags;

	if (!tt_port_wanted(ireq->ir_num, ntohs(ireq->ir_rmt_port)))
		return;
	r = tt_ring_reserve(TCPTRACE_T_SYNACK_RETRANSMIT, &irqflags);
	if (!r)
		return;
	tt_fill_sock(r, &req->__req_common, htons(ireq->ir_num));
	r->sock_id = tt_sock_id(req);
	r->synack.snt_isn = tcp_rsk(req)->snt_isn;
	r->synack.rcv_isn = tcp_rsk(req)->rcv_isn;
	/* counted by the caller once this returns */
	r->synack.num_retrans = req->num_retrans + 1;
	tt_ring_commit(irqflags);
}

static void tt_probe_retransmit(void *data, const struct sock *sk,
				const struct sk_buff *skb)
{
	const struct tcp_skb_cb *cb = TCP_SKB_CB(skb);
	struct tcptrace_record *r;
	unsigned long irqflags;

	if (!(cb->tcp_flags & (TCPHDR_SYN | TCPHDR_FIN)) && !tt_all_segments)
		return;
	if (!tt_sock_wanted(sk))
		return;
	r = tt_sock_record(TCPTRACE_T_RETRANSMIT, sk, &irqflags);
	if (!r)
		return;
	r->state.flags = cb->tcp_flags;
	r->state.seq = cb->seq;
	r->state.end_seq = cb->end_seq;
	tt_ring_commit(irqflags);
}

static void tt_probe_sk_event(u8 type, const struct sock *sk)
{
	unsigned long irqflags;

	if (!sk || !tt_sock_wanted(sk))
		return;
	if (tt_sock_record(type, sk, &irqflags))
		tt_ring_commit(irqflags);
}

static void tt_probe_send_reset(void *data, TT_SEND_RESET_PARAMS)
{
	tt_probe_sk_event(TCPTRACE_T_RESET_SENT, sk);
}

static void tt_probe_receive_reset(void *data, struct sock *sk)
{
	tt_probe_sk_event(TCPTRACE_T_RESET_RECEIVED, sk);
}

static void tt_probe_destroy(void *data, struct sock *sk)
{
	tt_probe_sk_event(TCPTRACE_T_DESTROY, sk);
}

/* void tcp_time_wait(struct sock *sk, int state, int timeo) */
static int tt_kprobe_time_wait(struct kprobe *p, struct pt_regs *regs)
{
	struct sock *sk = (struct sock *)regs_get_kernel_argument(regs, 0);
	int state = regs_get_kernel_argument(regs, 1);
	int timeo = regs_get_kernel_argument(regs, 2);
	const struct inet_connection_sock *icsk = inet_csk(sk);
	struct tcptrace_record *r;
	unsigned long irqflags;
	int rto;

	if (!tt_sock_wanted(sk))
		return 0;
	r = tt_sock_record(TCPTRACE_T_TIMEWAIT, sk, &irqflags);
	if (!r)
		return 0;
	/* the lifetime tcp_time_wait() gives the timewait socket */
	rto = (icsk->icsk_rto << 2) - (icsk->icsk_rto >> 1);
	if (state == TCP_TIME_WAIT)
		timeo = TCP_TIMEWAIT_LEN;
	else if (timeo < rto)
		timeo = rto;
	r->state.new_state = state;
	r->state.timeo_ms = jiffies_to_msecs(timeo);
	tt_ring_commit(irqflags);
	return 0;
}

/*
 * static void inet_twsk_kill(struct inet_timewait_sock *tw): the timewait
 * socket leaves the hash tables, from its timer or killed early.
 */
static int tt_kprobe_twsk_kill(struct kprobe *p, struct pt_regs *regs)
{
	struct inet_timewait_sock *tw =
		(struct inet_timewait_sock *)regs_get_kernel_argument(regs, 0);
	const struct tcp_timewait_sock *tcptw = tcp_twsk((struct sock *)tw);
	struct tcptrace_record *r;
	unsigned long irqflags;

	/* DCCP has timewait sockets too, with a death row of its own */
	if (tw->tw_dr != &twsk_net(tw)->ipv4.tcp_death_row)
		return 0;
	if (!tt_port_wanted(ntohs(tw->tw_sport), ntohs(tw->tw_dport)))
		return 0;
	r = tt_ring_reserve(TCPTRACE_T_TIMEWAIT_END, &irqflags);
	if (!r)
		return 0;
	tt_fill_sock(r, &tw->__tw_common, tw->tw_sport);
	r->sock_id = tt_sock_id(tw);
	r->state.old_state = TCP_TIME_WAIT;
	r->state.new_state = tw->tw_substate;
	r->state.flags = time_after_eq(jiffies, tw->tw_timer.expires) ?
			 TCPTRACE_TW_EXPIRED : TCPTRACE_TW_KILLED;
	r->state.snd_nxt = READ_ONCE(tcptw->tw_snd_nxt);
	r->state.rcv_nxt = READ_ONCE(tcptw->tw_rcv_nxt);
	tt_ring_commit(irqflags);
	return 0;
}

/*
 * A listener's queue is full; @rmt (of family @rfamily) and @rport name the
 * peer turned away.  An IPv4 peer of an IPv6 listener is shown v4-mapped.
 */
static void tt_listen_overflow(const struct sock *sk, u8 reason, int rfamily,
			       const void *rmt, __be16 rport)
{
	struct tcptrace_record *r;
	unsigned long irqflags;

	if (!tt_sock_wanted(sk))
		return;
	r = tt_ring_reserve(TCPTRACE_T_LISTEN_OVERFLOW, &irqflags);
	if (!r)
		return;
	tt_fill_sock(r, &sk->__sk_common, inet_sk(sk)->inet_sport);
	if (r->family == AF_INET6 && rfamily == AF_INET)
		ipv6_addr_set_v4mapped(*(const __be32 *)rmt,
				       (struct in6_addr *)r->daddr);
	else
		memcpy(r->daddr, rmt, rfamily == AF_INET6 ? 16 : 4);
	r->dport = ntohs(rport);
	r->sock_id = tt_sock_id(sk);
	r->listen.reason = reason;
	r->listen.syn_queue = inet_csk_reqsk_queue_len(sk);
	r->listen.accept_queue = READ_ONCE(sk->sk_ack_backlog);
	r->listen.backlog = READ_ONCE(sk->sk_max_ack_backlog);
	tt_ring_commit(irqflags);
}

/*
 * int tcp_conn_request(struct request_sock_ops *rsk_ops,
 *			const struct tcp_request_sock_ops *af_ops,
 *			struct sock *sk, struct sk_buff *skb): a SYN reached a
 * listener.  It is dropped if the accept queue is full, and dropped or
 * answered with a cookie if the SYN queue is full.
 */
static int tt_kprobe_conn_request(struct kprobe *p, struct pt_regs *regs)
{
	struct sock *sk = (struct sock *)regs_get_kernel_argument(regs, 2);
	struct sk_buff *skb = (struct sk_buff *)regs_get_kernel_argument(regs, 3);
	u8 reason;

	if (sk_acceptq_is_full(sk))
		reason = TCPTRACE_OVF_SYN_ACCEPTQ;
	else if (inet_csk_reqsk_queue_is_full(sk))
		reason = TCPTRACE_OVF_SYN_SYNQ;
	else
		return 0;
	if (skb->protocol == htons(ETH_P_IPV6))
		tt_listen_overflow(sk, reason, AF_INET6, &ipv6_hdr(skb)->saddr,
				   tcp_hdr(skb)->source);
	else
		tt_listen_overflow(sk, reason, AF_INET, &ip_hdr(skb)->saddr,
				   tcp_hdr(skb)->source);
	return 0;
}

/*
 * struct sock *tcp_v4_syn_recv_sock(const struct sock *sk,
 *		struct sk_buff *skb, struct request_sock *req, ...), and its
 * IPv6 twin: the third ACK of a half-open connection wants a child socket,
 * and does not get one if the accept queue is full.
 */
static int tt_kprobe_syn_recv_sock(struct kprobe *p, struct pt_regs *regs)
{
	struct sock *sk = (struct sock *)regs_get_kernel_argument(regs, 0);
	struct request_sock *req =
		(struct request_sock *)regs_get_kernel_argument(regs, 2);
	const struct sock_common *rc = &req->__req_common;

	if (!sk_acceptq_is_full(sk))
		return 0;
	if (rc->skc_family == AF_INET6)
		tt_listen_overflow(sk, TCPTRACE_OVF_ACK_ACCEPTQ, AF_INET6,
				   &rc->skc_v6_daddr, rc->skc_dport);
	else
		tt_listen_overflow(sk, TCPTRACE_OVF_ACK_ACCEPTQ, AF_INET,
				   &rc->skc_daddr, rc->skc_dport);
	return 0;
}

/* The IPv6 one hands IPv4 segments to the IPv4 one: count those once. */
static int tt_kprobe_syn_recv_sock6(struct kprobe *p, struct pt_regs *regs)
{
	struct sk_buff *skb = (struct sk_buff *)regs_get_kernel_argument(regs, 1);

	if (skb->protocol == htons(ETH_P_IP))
		return 0;
	return tt_kprobe_syn_recv_sock(p, regs);
}

static struct kprobe tt_kprobes[] = {
	{
		.symbol_name	= "tcp_time_wait",
		.pre_handler	= tt_kprobe_time_wait,
	},
	{
		.symbol_name	= "inet_twsk_kill",
		.pre_handler	= tt_kprobe_twsk_kill,
	},
	{
		.symbol_name	= "tcp_conn_request",
		.pre_handler	= tt_kprobe_conn_request,
	},
	{
		.symbol_name	= "tcp_v4_syn_recv_sock",
		.pre_handler	= tt_kprobe_syn_recv_sock,
	},
	{
		.symbol_name	= "tcp_v6_syn_recv_sock",
		.pre_handler	= tt_kprobe_syn_recv_sock6,
	},
};

static struct kprobe *tt_kprobe_ptrs[ARRAY_SIZE(tt_kprobes)];

struct tt_tp {
	const char *name;
	void *probe;
	struct tracepoint *tp;
	bool registered;
};

/*
 * The probe must have the exact prototype the kernel's tracepoint calls.
 * register_trace_<name>() is only looked at, inside typeof(), so nothing
 * refers to the unexported __tracepoint_<name> symbol.
 */
#define TT_TP(_name, _probe) { .name = #_name, .probe = _probe }
#define TT_CHECK_PROBE(_name, _probe)					\
	static_assert(__same_type(&register_trace_##_name,		\
				  int (*)(typeof(_probe) *, void *)),	\
		      #_probe " does not match tracepoint " #_name)

TT_CHECK_PROBE(inet_sock_set_state, tt_probe_state);
TT_CHECK_PROBE(tcp_retransmit_synack, tt_probe_synack);
TT_CHECK_PROBE(tcp_retransmit_skb, tt_probe_retransmit);
TT_CHECK_PROBE(tcp_send_reset, tt_probe_send_reset);
TT_CHECK_PROBE(tcp_receive_reset, tt_probe_receive_reset);
TT_CHECK_PROBE(tcp_destroy_sock, tt_probe_destroy);

static struct tt_tp tt_tps[] = {
	TT_TP(inet_sock_set_state, tt_probe_state),
	TT_TP(tcp_retransmit_synack, tt_probe_synack),
	TT_TP(tcp_retransmit_skb, tt_probe_retransmit),
	TT_TP(tcp_send_reset, tt_probe_send_reset),
	TT_TP(tcp_receive_reset, tt_probe_receive_reset),
	TT_TP(tcp_destroy_sock, tt_probe_destroy),
};

static void tt_tp_lookup(struct tracepoint *tp, void *priv)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(tt_tps); i++)
		if (!strcmp(tp->name, tt_tps[i].name))
			tt_tps[i].tp = tp;
}

static void tt_tp_release(void)
{
	int i;

	for (i = ARRAY_SIZE(tt_tps) - 1; i >= 0; i--) {
		if (tt_tps[i].registered)
			tracepoint_probe_unregister(tt_tps[i].tp,
						    tt_tps[i].probe, NULL);
		tt_tps[i].registered = false;
	}
}

int tt_tp_register(void)
{
	int i, ret;

	for_each_kernel_tracepoint(tt_tp_lookup, NULL);
	for (i = 0; i < ARRAY_SIZE(tt_tps); i++) {
		if (!tt_tps[i].tp) {
			pr_err("tracepoint %s not found in this kernel\n",
			       tt_tps[i].name);
			ret = -ENOENT;
			goto out_unregister_tps;
		}
		ret = tracepoint_probe_register(tt_tps[i].tp, tt_tps[i].probe,
						NULL);
		if (ret) {
			pr_err("cannot attach to tracepoint %s: %d\n",
			       tt_tps[i].name, ret);
			goto out_unregister_tps;
		}
		tt_tps[i].registered = true;
	}

	for (i = 0; i < ARRAY_SIZE(tt_kprobes); i++) {
		tt_kprobe_ptrs[i] = &tt_kprobes[i];
		ret = register_kprobe(&tt_kprobes[i]);
		if (ret) {
			pr_err("cannot attach a kprobe to %s: %d\n",
			       tt_kprobes[i].symbol_name, ret);
			goto out_unregister_kprobes;
		}
	}
	return 0;

out_unregister_kprobes:
	if (i)
		unregister_kprobes(tt_kprobe_ptrs, i);

out_unregister_tps:
	tt_tp_release();
	tracepoint_synchronize_unregister();
	return ret;
}

/* Detach every probe and wait until none is running. */
void tt_tp_unregister(void)
{
	unregister_kprobes(tt_kprobe_ptrs, ARRAY_SIZE(tt_kprobes));
	tt_tp_release();
	tracepoint_synchronize_unregister();
}
