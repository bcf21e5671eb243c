// SPDX-License-Identifier: GPL-2.0
/*
 * tcptrace: the character device /dev/tcptrace.
 *
 * One reader at a time: the first open file to read() becomes the reader
 * until it is closed; read() on any other open file gets EBUSY, and poll()
 * on it reports EPOLLERR, so no record is split between readers.  Other
 * open files may still use the ioctls (tcptracectl stats while a watch
 * runs).  Opening needs CAP_NET_ADMIN, on top of the node's mode 0600.
 *
 * A file opened from a network namespace other than the initial one reads
 * only the records of that namespace (and LOST records): a container sees
 * its own connections, not the host's.  The namespace is the opener's at
 * open() time.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/build_bug.h>
#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/nsproxy.h>
#include <linux/uaccess.h>
#include <net/net_namespace.h>

#include "compat.h"
#include "tcptrace.h"

/* The ABI: fixed size, natural alignment, no hidden padding. */
static_assert(sizeof(struct tcptrace_record) == TCPTRACE_RECORD_SIZE);
static_assert(offsetof(struct tcptrace_record, ts_ns) == 16);
static_assert(offsetof(struct tcptrace_record, saddr) == 32);
static_assert(offsetof(struct tcptrace_record, comm) == 72);
static_assert(offsetof(struct tcptrace_record, packet) == 88);
static_assert(sizeof(struct tcptrace_packet) == 40);
static_assert(sizeof(struct tcptrace_state) == 40);
static_assert(sizeof(struct tcptrace_synack) == 40);
static_assert(sizeof(struct tcptrace_listen) == 40);
static_assert(sizeof(struct tcptrace_lost) == 40);
static_assert(sizeof(struct tcptrace_stats) == 248);
static_assert(offsetof(struct tcptrace_stats, ring_bytes) == 184);
static_assert(offsetof(struct tcptrace_stats, expect_used) == 208);
static_assert(ARRAY_SIZE(((struct tcptrace_stats *)0)->per_type) >=
	      TCPTRACE_T_MAX);

/* the open file that reads, or NULL */
static struct file *tt_reader;

static int tt_dev_open(struct inode *inode, struct file *file)
{
	struct net *net = current->nsproxy->net_ns;

	if (!capable(CAP_NET_ADMIN))
		return -EPERM;
	/* the namespace whose records it reads; 0: all of them */
	file->private_data = (void *)(unsigned long)
		(net_eq(net, &init_net) ? 0 : net->ns.inum);
	return nonseekable_open(inode, file);
}

static int tt_dev_release(struct inode *inode, struct file *file)
{
	cmpxchg(&tt_reader, file, NULL);
	return 0;
}

/* Whether @file is, or has just become, the reader. */
static bool tt_is_reader(struct file *file, bool claim)
{
	struct file *cur = READ_ONCE(tt_reader);

	if (cur == file)
		return true;
	if (cur || !claim)
		return !cur;
	return !cmpxchg(&tt_reader, NULL, file);
}

static ssize_t tt_dev_read(struct file *file, char __user *buf, size_t count,
			   loff_t *ppos)
{
	if (!tt_is_reader(file, true))
		return -EBUSY;
	return tt_ring_read(buf, count, file->f_flags & O_NONBLOCK,
			    (u32)(unsigned long)file->private_data);
}

static __poll_t tt_dev_poll(struct file *file, poll_table *wait)
{
	if (!tt_is_reader(file, false))
		return EPOLLERR;
	return tt_ring_poll(file, wait);
}

static long tt_dev_ioctl(struct file *file, unsigned int cmd,
			 unsigned long arg)
{
	void __user *uarg = (void __user *)arg;
	struct tcptrace_stats st;
	u32 version;

	switch (cmd) {
	case TCPTRACE_IOC_VERSION:
		version = TCPTRACE_ABI_VERSION;
		return put_user(version, (u32 __user *)uarg);
	case TCPTRACE_IOC_STATS:
		tt_ring_stats(&st);
		return copy_to_user(uarg, &st, sizeof(st)) ? -EFAULT : 0;
	case TCPTRACE_IOC_CLEAR:
		if (arg)
			return -EINVAL;
		tt_ring_clear();
		return 0;
	default:
		return -ENOTTY;
	}
}

static const struct file_operations tt_fops = {
	.owner		= THIS_MODULE,
	.open		= tt_dev_open,
	.release	= tt_dev_release,
	.read		= tt_dev_read,
	.poll		= tt_dev_poll,
	.unlocked_ioctl	= tt_dev_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.llseek		= no_llseek,
};

static struct miscdevice tt_miscdev = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= "tcptrace",
	.fops	= &tt_fops,
	.mode	= 0600,
};

int tt_device_register(void)
{
	return misc_register(&tt_miscdev);
}

void tt_device_unregister(void)
{
	misc_deregister(&tt_miscdev);
}
