/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tcptrace: what differs between the kernels the module is built for.
 *
 * Every test of LINUX_VERSION_CODE in the module is in this file; the .c
 * files include it and are written for the newest kernel's names.  Built
 * against Debian's 6.1 (linux-headers-6.1.0-*-amd64) and 6.12
 * (linux-headers-6.12.*+deb12-amd64), see scripts/kernels.sh.
 */
#ifndef _TCPTRACE_COMPAT_H
#define _TCPTRACE_COMPAT_H

#include <linux/version.h>

/*
 * 6.10 passes the reason of a RST to the tcp_send_reset tracepoint
 * (enum sk_rst_reason of <net/rstreason.h>), after the skb.  The
 * parameters of the probe, after its void *data.
 */
#if KERNEL_VERSION(6, 10, 0) <= LINUX_VERSION_CODE
#include <net/rstreason.h>
#define TT_SEND_RESET_PARAMS						\
	const struct sock *sk, const struct sk_buff *skb,		\
	const enum sk_rst_reason reason
#else
#define TT_SEND_RESET_PARAMS						\
	const struct sock *sk, const struct sk_buff *skb
#endif

/*
 * 6.12 removed no_llseek(): a NULL .llseek does the same (the file is not
 * seekable, as nonseekable_open() made it).
 */
#if KERNEL_VERSION(6, 12, 0) <= LINUX_VERSION_CODE
#define no_llseek		NULL
#endif

#endif /* _TCPTRACE_COMPAT_H */
