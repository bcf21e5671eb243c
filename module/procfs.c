// SPDX-License-Identifier: GPL-2.0
/*
 * tcptrace: /proc/tcptrace, the counters and parameters as text.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/proc_fs.h>
#include <linux/seq_file.h>

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
	for (i = 1; i < TCPTRACE_T_MAX; i++)
		seq_printf(m, "events_%s %llu\n", tt_type_names[i],
			   st.per_type[i]);
	return 0;
}

int tt_procfs_create(void)
{
	tt_proc = proc_create_single("tcptrace", 0444, NULL, tt_proc_show);
	return tt_proc ? 0 : -ENOMEM;
}

void tt_procfs_remove(void)
{
	proc_remove(tt_proc);
}
