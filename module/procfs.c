// SPDX-License-Identifier: GPL-2.0
/*
 * tcptrace: /proc/tcptrace, the counters and parameters as text, and
 * /proc/net/tcptrace_listeners in every network namespace: the namespace's
 * TCP listeners with the lengths of their SYN and accept queues.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <net/inet_connection_sock.h>
#include <net/inet_hashtables.h>
#include <net/net_namespace.h>
#include <net/tcp.h>

#include "tcptrace.h"

static const char *const tt_type_names[TCPTRACE_T_MAX] = {
	[TCPTRACE_T_PACKET]		= "packet",
	[TCPTRACE_T_STATE]		= "state",
	[TCPTRACE_T_SYNACK_RETRANSMIT]	= "synack_retransmit",
	[TCPTRACE_T_RETRANSMIT]		= "retransmit",
	[TCPTRACE_T_RESET_SENT]		= "reset_sent",
	[TCPTRACE_T_RESET_RECEIVED]	= "reset_received",
	[TCPTRACE_T_TIMEWAIT]		= "timewait",
	[TCPTRACE_T_DESTROY]		= "destroy",
	[TCPTRACE_T_LOST]		= "lost",
	[TCPTRACE_T_TIMEWAIT_END]	= "timewait_end",
	[TCPTRACE_T_LISTEN_OVERFLOW]	= "listen_overflow",
};

static struct proc_dir_entry *tt_proc;

static int tt_proc_show(struct seq_file *m, void *v)
{
	struct tcptrace_stats st;
	int i;

	tt_ring_stats(&st);
	seq_printf(m, "abi_version %u\n", st.abi_version);
	seq_printf(m, "cpus %u\n", st.nr_cpus);
	seq_printf(m, "ring_records %u\n", st.ring_records);
	seq_printf(m, "expect_slots %u\n", tt_expect_slots);
	seq_printf(m, "all_segments %d\n", tt_all_segments);
	seq_puts(m, "ports");
	for (i = 0; i < tt_nr_ports; i++)
		seq_printf(m, "%c%u", i ? ',' : ' ', tt_ports[i]);
	seq_puts(m, tt_nr_ports ? "\n" : " all\n");
	seq_printf(m, "events %llu\n", st.events);
	seq_printf(m, "drops %llu\n", st.drops);
	seq_printf(m, "malformed %llu\n", st.malformed);
	seq_printf(m, "expect_evictions %llu\n", st.expect_evictions);
	seq_printf(m, "queued %llu\n", st.queued);
	seq_printf(m, "ring_bytes %llu\n", st.ring_bytes);
	seq_printf(m, "expect_bytes %llu\n", st.expect_bytes);
	seq_printf(m, "expect_used %llu\n", st.expect_used);
	for (i = 1; i < TCPTRACE_T_MAX; i++)
		seq_printf(m, "events_%s %llu\n", tt_type_names[i],
			   st.per_type[i]);
	return 0;
}

static void tt_show_listener(struct seq_file *m, const struct sock *sk)
{
	__be16 port = inet_sk(sk)->inet_sport;

	if (sk->sk_family == AF_INET6)
		seq_printf(m, "[%pI6c]:%u", &sk->sk_v6_rcv_saddr, ntohs(port));
	else
		seq_printf(m, "%pI4:%u", &sk->sk_rcv_saddr, ntohs(port));
	seq_printf(m, " %u %u %u\n", inet_csk_reqsk_queue_len(sk),
		   READ_ONCE(sk->sk_ack_backlog),
		   READ_ONCE(sk->sk_max_ack_backlog));
}

/* Walks the listening hash as inet_diag does, under each bucket's lock. */
static int tt_listeners_show(struct seq_file *m, void *v)
{
	struct net *net = seq_file_single_net(m);
	/* tcp_hashinfo, or the namespace's own ehash sharing its lhash2 */
	struct inet_hashinfo *hinfo = net->ipv4.tcp_death_row.hashinfo;
	unsigned int i;

	seq_puts(m, "# local syn_queue accept_queue backlog\n");
	for (i = 0; i <= hinfo->lhash2_mask; i++) {
		struct inet_listen_hashbucket *ilb = &hinfo->lhash2[i];
		struct hlist_nulls_node *node;
		struct sock *sk;

		if (hlist_nulls_empty(&ilb->nulls_head))
			continue;
		spin_lock_bh(&ilb->lock);
		sk_nulls_for_each(sk, node, &ilb->nulls_head)
			if (net_eq(sock_net(sk), net) &&
			    sk->sk_protocol == IPPROTO_TCP)
				tt_show_listener(m, sk);
		spin_unlock_bh(&ilb->lock);
	}
	return 0;
}

static int __net_init tt_proc_net_init(struct net *net)
{
	if (!proc_create_net_single("tcptrace_listeners", 0444, net->proc_net,
				    tt_listeners_show, NULL))
		return -ENOMEM;
	return 0;
}

static void __net_exit tt_proc_net_exit(struct net *net)
{
	remove_proc_entry("tcptrace_listeners", net->proc_net);
}

static struct pernet_operations tt_proc_net_ops = {
	.init = tt_proc_net_init,
	.exit = tt_proc_net_exit,
};

int tt_procfs_create(void)
{
	int ret;

	ret = register_pernet_subsys(&tt_proc_net_ops);
	if (ret)
		return ret;
	tt_proc = proc_create_single("tcptrace", 0444, NULL, tt_proc_show);
	if (!tt_proc) {
		unregister_pernet_subsys(&tt_proc_net_ops);
		return -ENOMEM;
	}
	return 0;
}

void tt_procfs_remove(void)
{
	proc_remove(tt_proc);
	unregister_pernet_subsys(&tt_proc_net_ops);
}
