// SPDX-License-Identifier: GPL-2.0
/*
 * tcptrace: records TCP handshakes and teardowns, segment by segment and
 * state by state, for user space to read from /dev/tcptrace.
 *
 * Init builds the rings and the ACK table, attaches the probes and hooks,
 * then makes /proc/tcptrace and the device visible last; exit undoes it in
 * the opposite order and frees nothing a probe could still be using.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/log2.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/sizes.h>

#include "tcptrace.h"

#define TT_MIN_RECORDS		16
#define TT_MAX_RECORDS		SZ_1M
#define TT_MIN_SLOTS		256
#define TT_MAX_SLOTS		SZ_4M

unsigned int tt_buf_records = 4096;
module_param_named(buf_records, tt_buf_records, uint, 0444);
MODULE_PARM_DESC(buf_records,
		 "records per CPU ring, rounded up to a power of two (16..1048576, default 4096; 128 bytes each)");

unsigned int tt_expect_slots = 16384;
module_param_named(expect_slots, tt_expect_slots, uint, 0444);
MODULE_PARM_DESC(expect_slots,
		 "slots of the handshake/teardown ACK table, rounded up to a power of two (256..4194304, default 16384; 8 bytes each)");

bool tt_all_segments;
module_param_named(all_segments, tt_all_segments, bool, 0444);
MODULE_PARM_DESC(all_segments,
		 "record every segment and retransmission, not only handshake and teardown ones (default 0; use with ports=)");

unsigned short tt_ports[TT_MAX_PORTS];
int tt_nr_ports;
module_param_array_named(ports, tt_ports, ushort, &tt_nr_ports, 0444);
MODULE_PARM_DESC(ports,
		 "record only connections with one of these local or remote ports (comma list of up to 16, 1..65535; default all)");

static int __init tt_check_params(void)
{
	int i;

	if (tt_buf_records < TT_MIN_RECORDS || tt_buf_records > TT_MAX_RECORDS) {
		pr_err("buf_records=%u is out of range %u..%u\n",
		       tt_buf_records, TT_MIN_RECORDS, TT_MAX_RECORDS);
		return -EINVAL;
	}
	if (tt_expect_slots < TT_MIN_SLOTS || tt_expect_slots > TT_MAX_SLOTS) {
		pr_err("expect_slots=%u is out of range %u..%u\n",
		       tt_expect_slots, TT_MIN_SLOTS, TT_MAX_SLOTS);
		return -EINVAL;
	}
	for (i = 0; i < tt_nr_ports; i++) {
		if (!tt_ports[i]) {
			pr_err("ports: 0 is not a port (1..65535)\n");
			return -EINVAL;
		}
	}
	tt_buf_records = roundup_pow_of_two(tt_buf_records);
	tt_expect_slots = roundup_pow_of_two(tt_expect_slots);
	return 0;
}

static int __init tt_init(void)
{
	int ret;

	ret = tt_check_params();
	if (ret)
		return ret;

	ret = tt_ring_init(tt_buf_records);
	if (ret)
		return ret;
	ret = tt_expect_init(tt_expect_slots);
	if (ret)
		goto out_free_ring;
	ret = tt_tp_register();
	if (ret)
		goto out_free_expect;
	ret = tt_nf_register();
	if (ret)
		goto out_unregister_tp;
	ret = tt_procfs_create();
	if (ret)
		goto out_unregister_nf;
	ret = tt_device_register();
	if (ret)
		goto out_remove_proc;

	pr_info("loaded: %u records per CPU ring, ABI %u\n", tt_buf_records,
		TCPTRACE_ABI_VERSION);
	return 0;

out_remove_proc:
	tt_procfs_remove();
out_unregister_nf:
	tt_nf_unregister();
out_unregister_tp:
	tt_tp_unregister();
out_free_expect:
	tt_expect_exit();
out_free_ring:
	tt_ring_exit();
	return ret;
}

static void __exit tt_exit(void)
{
	tt_device_unregister();
	tt_procfs_remove();
	tt_nf_unregister();
	tt_tp_unregister();
	tt_expect_exit();
	tt_ring_exit();
}

module_init(tt_init);
module_exit(tt_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Records TCP handshakes, teardowns and state changes");
MODULE_VERSION("0.1");
