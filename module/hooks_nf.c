// SPDX-License-Identifier: GPL-2.0
/*
 * tcptrace: segments, seen by netfilter in every network namespace.
 *
 * PRE_ROUTING at the first priority sees a segment as it arrives (dir in),
 * POST_ROUTING at the last priority as it leaves (dir out), both before
 * and after any firewall of the namespace.  On loopback the same segment
 * passes both: it is recorded once, leaving, and skipped on arrival.
 *
 * Recorded: SYN, FIN and RST segments, and the pure ACKs that answer a
 * SYN-ACK or a FIN (see expect.c); every segment with all_segments=1.
 * A data segment costs one header read and a flag test.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/netdevice.h>
#include <linux/netfilter.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6.h>
#include <linux/skbuff.h>
#include <linux/tcp.h>
#include <net/ip.h>
#include <net/ipv6.h>
#include <net/net_namespace.h>
#include <net/tcp.h>

#include "tcptrace.h"

/* The socket that sent a segment, when it is the segment's own. */
static u64 tt_nf_sock_id(const struct sk_buff *skb, const struct tcphdr *th)
{
	const struct sock *sk = skb->sk;

	if (!sk)
		return 0;
	if (sk->sk_state == TCP_NEW_SYN_RECV)
		return tt_sock_id(sk);
	/* replies with no socket of their own use a per-CPU control socket */
	if (sk_fullsock(sk) && sk->sk_type == SOCK_STREAM &&
	    sk->sk_protocol == IPPROTO_TCP &&
	    inet_sk(sk)->inet_sport == th->source &&
	    inet_sk(sk)->inet_dport == th->dest)
		return tt_sock_id(sk);
	return 0;
}

static void tt_nf_segment(struct sk_buff *skb,
			  const struct nf_hook_state *state, int family,
			  const void *saddr, const void *daddr,
			  const struct tcphdr *th, unsigned int payload)
{
	const int alen = family == AF_INET6 ? 16 : 4;
	u8 flags = tcp_flag_byte(th);
	struct tcptrace_record *r;
	unsigned long irqflags;
	u32 seq, ack;

	if (!(flags & (TCPHDR_SYN | TCPHDR_FIN | TCPHDR_RST)) &&
	    payload && !tt_all_segments)
		return;
	if (!tt_port_wanted(ntohs(th->source), ntohs(th->dest)))
		return;

	seq = ntohl(th->seq);
	ack = ntohl(th->ack_seq);
	if (flags & (TCPHDR_SYN | TCPHDR_FIN)) {
		if ((flags & (TCPHDR_SYN | TCPHDR_ACK)) ==
		    (TCPHDR_SYN | TCPHDR_ACK))
			tt_expect_add(family, daddr, saddr, th->dest,
				      th->source, seq + 1);
		if (flags & TCPHDR_FIN)
			tt_expect_add(family, daddr, saddr, th->dest,
				      th->source,
				      seq + payload + 1 + !!(flags & TCPHDR_SYN));
	} else if (!(flags & TCPHDR_RST) && !tt_all_segments) {
		if (!(flags & TCPHDR_ACK) ||
		    !tt_expect_match(family, saddr, daddr, th->source,
				     th->dest, ack))
			return;
	}

	r = tt_ring_reserve(TCPTRACE_T_PACKET, &irqflags);
	if (!r)
		return;
	r->family = family;
	r->dir = state->hook == NF_INET_PRE_ROUTING ?
		 TCPTRACE_DIR_IN : TCPTRACE_DIR_OUT;
	r->netns = state->net->ns.inum;
	if (r->dir == TCPTRACE_DIR_OUT)
		r->sock_id = tt_nf_sock_id(skb, th);
	memcpy(r->saddr, saddr, alen);
	memcpy(r->daddr, daddr, alen);
	r->sport = ntohs(th->source);
	r->dport = ntohs(th->dest);
	r->packet.seq = seq;
	r->packet.ack = ack;
	r->packet.win = ntohs(th->window);
	r->packet.flags = flags;
	r->packet.doff = th->doff * 4;
	r->packet.payload_len = payload;
	tt_ring_commit(irqflags);
}

/* Whether a segment arriving here was already recorded leaving. */
static bool tt_nf_looped(const struct nf_hook_state *state)
{
	return state->hook == NF_INET_PRE_ROUTING && state->in &&
	       (state->in->flags & IFF_LOOPBACK);
}

/* Reads the TCP header at @thoff, within bounds, and looks at it. */
static unsigned int tt_nf_tcp(struct sk_buff *skb,
			      const struct nf_hook_state *state, int family,
			      const void *saddr, const void *daddr,
			      unsigned int thoff)
{
	const struct tcphdr *th;
	struct tcphdr _th;
	unsigned int doff;

	th = skb_header_pointer(skb, thoff, sizeof(_th), &_th);
	if (!th)
		goto malformed;
	doff = th->doff * 4;
	if (doff < sizeof(*th) || thoff + doff > skb->len)
		goto malformed;
	tt_nf_segment(skb, state, family, saddr, daddr, th,
		      skb->len - thoff - doff);
	return NF_ACCEPT;

malformed:
	tt_count_malformed();
	return NF_ACCEPT;
}

static unsigned int tt_nf_ipv4(void *priv, struct sk_buff *skb,
			       const struct nf_hook_state *state)
{
	const struct iphdr *iph = ip_hdr(skb);

	if (iph->protocol != IPPROTO_TCP || tt_nf_looped(state))
		return NF_ACCEPT;
	/* a fragment other than the first has no TCP header */
	if (iph->frag_off & htons(IP_OFFSET))
		return NF_ACCEPT;
	return tt_nf_tcp(skb, state, AF_INET, &iph->saddr, &iph->daddr,
			 skb_network_offset(skb) + iph->ihl * 4);
}

static unsigned int tt_nf_ipv6(void *priv, struct sk_buff *skb,
			       const struct nf_hook_state *state)
{
	const struct ipv6hdr *ip6h = ipv6_hdr(skb);
	unsigned short fragoff = 0;
	unsigned int thoff = 0;
	int proto;

	if (tt_nf_looped(state))
		return NF_ACCEPT;
	if (ip6h->nexthdr == IPPROTO_TCP) {
		thoff = skb_network_offset(skb) + sizeof(*ip6h);
	} else {
		proto = ipv6_find_hdr(skb, &thoff, IPPROTO_TCP, &fragoff, NULL);
		if (proto == -EBADMSG) {
			tt_count_malformed();
			return NF_ACCEPT;
		}
		if (proto != IPPROTO_TCP || fragoff)
			return NF_ACCEPT;
	}
	return tt_nf_tcp(skb, state, AF_INET6, &ip6h->saddr, &ip6h->daddr,
			 thoff);
}

static const struct nf_hook_ops tt_nf_ops[] = {
	{
		.hook		= tt_nf_ipv4,
		.pf		= NFPROTO_IPV4,
		.hooknum	= NF_INET_PRE_ROUTING,
		.priority	= NF_IP_PRI_FIRST,
	},
	{
		.hook		= tt_nf_ipv4,
		.pf		= NFPROTO_IPV4,
		.hooknum	= NF_INET_POST_ROUTING,
		.priority	= NF_IP_PRI_LAST,
	},
	{
		.hook		= tt_nf_ipv6,
		.pf		= NFPROTO_IPV6,
		.hooknum	= NF_INET_PRE_ROUTING,
		.priority	= NF_IP6_PRI_FIRST,
	},
	{
		.hook		= tt_nf_ipv6,
		.pf		= NFPROTO_IPV6,
		.hooknum	= NF_INET_POST_ROUTING,
		.priority	= NF_IP6_PRI_LAST,
	},
};

static int __net_init tt_nf_net_init(struct net *net)
{
	return nf_register_net_hooks(net, tt_nf_ops, ARRAY_SIZE(tt_nf_ops));
}

static void __net_exit tt_nf_net_exit(struct net *net)
{
	nf_unregister_net_hooks(net, tt_nf_ops, ARRAY_SIZE(tt_nf_ops));
}

static struct pernet_operations tt_nf_net_ops = {
	.init = tt_nf_net_init,
	.exit = tt_nf_net_exit,
};

/* Hooks every namespace that exists now and every one created later. */
int tt_nf_register(void)
{
	return register_pernet_subsys(&tt_nf_net_ops);
}

void tt_nf_unregister(void)
{
	unregister_pernet_subsys(&tt_nf_net_ops);
}
