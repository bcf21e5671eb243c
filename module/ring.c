// SPDX-License-Identifier: GPL-2.0
/*
 * tcptrace: per-CPU record rings.
 *
 * Why a ring of our own rather than the kernel's ring_buffer or a kfifo:
 * - every record has the same size (128 bytes), so a power-of-two array
 *   indexed by free-running head/tail counters is all that is needed;
 * - each CPU has its own ring with exactly one producer (the CPU itself,
 *   with interrupts off for the few hundred nanoseconds of a write, so a
 *   softirq cannot nest into a process-context probe) and one consumer
 *   (the reader, serialised by tt_read_mutex): head and tail are published
 *   with release/acquire and need no lock and no atomic read-modify-write;
 * - when a ring is full the record is dropped and counted in lost_pending;
 *   the next record written on that CPU is preceded by an in-band LOST
 *   record carrying the count, so the reader sees the gap where it
 *   happened (the kernel's ring_buffer reports losses only in overwrite
 *   mode, and its wake-up and clock helpers are not exported);
 * - the reader merges the CPUs by timestamp.  A record is handed out only
 *   when no CPU can still commit an older one: every write is bracketed by
 *   per-CPU sequence count made odd before its timestamp is taken, and the
 *   reader waits for the writes it saw in progress before it trusts a
 *   horizon.
 * - probes never wake the reader themselves, and wake it in batches: when
 *   it sleeps it sets tt_waiting to TT_SLEEPING; the first record after
 *   that moves it to TT_DEFERRED and queues an irq_work that arms a timer,
 *   and the timer wakes the reader TT_WAKE_DELAY later, or a producer does
 *   (through another irq_work) as soon as its ring is a quarter full.  A
 *   reader that keeps up thus wakes at most every TT_WAKE_DELAY, and reads
 *   all that came meanwhile in one go, rather than once per connection.
 *
 * Producers touch only their own CPU's cache lines, except the tail they
 * read and the tt_waiting flag they read (and change twice per sleep).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/irq_work.h>
#include <linux/mutex.h>
#include <linux/percpu.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/timekeeping.h>
#include <linux/timer.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>
#include <linux/wait.h>

#include "tcptrace.h"

struct tt_cpu {
	/* written by the owning CPU, interrupts off */
	u32 head;
	u32 wseq;	/* odd while a record is being written */
	u64 events;
	u64 drops;
	u64 malformed;
	u64 expect_evictions;
	u64 per_type[TCPTRACE_T_MAX];
	atomic_long_t lost_pending;
	struct tcptrace_record *recs;
	/* written by the reader */
	u32 tail ____cacheline_aligned_in_smp;
};

static struct tt_cpu __percpu *tt_cpus;
static u32 tt_mask;

/* counters at the last TCPTRACE_IOC_CLEAR, subtracted from the totals */
static struct tcptrace_stats tt_base;

static DEFINE_MUTEX(tt_read_mutex);
static DECLARE_WAIT_QUEUE_HEAD(tt_wq);

/* tt_waiting: no reader asleep (or its wake-up is on its way) */
#define TT_AWAKE		0
/* the reader sleeps and no record came since */
#define TT_SLEEPING		1
/* records came: the timer will wake the reader, or a filling ring will */
#define TT_DEFERRED		2
static int tt_waiting;

/* how long records may wait for a sleeping reader, at most */
#define TT_WAKE_DELAY		max(HZ / 50, 1)
/* a ring this full wakes the reader at once */
static u32 tt_wake_mark;

/*
 * Ordering of the rings.  A producer fills a slot, then publishes it with
 * a release store of head; the reader's acquire load of head makes the
 * slot's contents visible.  The reader copies a slot out, then frees it
 * with a release store of tail; the producer's acquire load of tail keeps
 * it from reusing the slot before the copy is done.  wseq works like head
 * for the horizon (tt_horizon()).
 */
static u32 tt_load_head(struct tt_cpu *c)
{
	/* pairs with tt_publish_head() */
	return smp_load_acquire(&c->head);
}

static void tt_publish_head(struct tt_cpu *c, u32 head)
{
	/* pairs with tt_load_head() */
	smp_store_release(&c->head, head);
}

static u32 tt_load_tail(struct tt_cpu *c)
{
	/* pairs with tt_release_tail() */
	return smp_load_acquire(&c->tail);
}

static void tt_release_tail(struct tt_cpu *c, u32 tail)
{
	/* pairs with tt_load_tail() */
	smp_store_release(&c->tail, tail);
}

static u32 tt_load_wseq(struct tt_cpu *c)
{
	/* pairs with tt_end_write() */
	return smp_load_acquire(&c->wseq);
}

static void tt_end_write(struct tt_cpu *c)
{
	/* pairs with tt_load_wseq() */
	smp_store_release(&c->wseq, c->wseq + 1);
}

static void tt_wake_fn(struct irq_work *work)
{
	wake_up_interruptible(&tt_wq);
}

static struct irq_work tt_wake_work = IRQ_WORK_INIT(tt_wake_fn);

static void tt_timer_fn(struct timer_list *t)
{
	if (xchg(&tt_waiting, TT_AWAKE) != TT_AWAKE)
		wake_up_interruptible(&tt_wq);
}

static DEFINE_TIMER(tt_wake_timer, tt_timer_fn);

static void tt_arm_fn(struct irq_work *work)
{
	if (READ_ONCE(tt_waiting) == TT_DEFERRED &&
	    !timer_pending(&tt_wake_timer))
		mod_timer(&tt_wake_timer, jiffies + TT_WAKE_DELAY);
}

static struct irq_work tt_arm_work = IRQ_WORK_INIT(tt_arm_fn);

/* A record was committed on @c while the reader sleeps (@w). */
static noinline void tt_kick(struct tt_cpu *c, int w)
{
	if (w == TT_SLEEPING) {
		if (cmpxchg(&tt_waiting, TT_SLEEPING, TT_DEFERRED) ==
		    TT_SLEEPING)
			irq_work_queue(&tt_arm_work);
		return;
	}
	if (c->head - tt_load_tail(c) >= tt_wake_mark &&
	    xchg(&tt_waiting, TT_AWAKE) != TT_AWAKE)
		irq_work_queue(&tt_wake_work);
}

int tt_ring_init(unsigned int records)
{
	int cpu;

	tt_cpus = alloc_percpu(struct tt_cpu);
	if (!tt_cpus)
		return -ENOMEM;
	tt_mask = records - 1;
	tt_wake_mark = max(records / 4, 1U);
	for_each_possible_cpu(cpu) {
		struct tt_cpu *c = per_cpu_ptr(tt_cpus, cpu);

		c->recs = vzalloc_node(array_size(records, sizeof(*c->recs)),
				       cpu_to_node(cpu));
		if (!c->recs)
			goto out_free_rings;
	}
	return 0;

out_free_rings:
	tt_ring_exit();
	return -ENOMEM;
}

/* Called with every probe unregistered and synchronised. */
void tt_ring_exit(void)
{
	int cpu;

	irq_work_sync(&tt_arm_work);
	del_timer_sync(&tt_wake_timer);
	irq_work_sync(&tt_wake_work);
	for_each_possible_cpu(cpu)
		vfree(per_cpu_ptr(tt_cpus, cpu)->recs);
	free_percpu(tt_cpus);
	tt_cpus = NULL;
}

/*
 * Zeroes a record with sixteen 8-byte stores: memset() of a constant 128
 * bytes compiles to "rep stosq", which an emulated CPU runs one iteration
 * per step, several times slower than the plain stores.
 */
static void tt_zero_record(struct tcptrace_record *r)
{
	u64 *w = (u64 *)r;
	unsigned int i;

	BUILD_BUG_ON(sizeof(*r) % sizeof(u64));
#pragma GCC unroll 16
	for (i = 0; i < sizeof(*r) / sizeof(u64); i++)
		w[i] = 0;
}

static void tt_fill_header(struct tcptrace_record *r, u8 type, u64 ts)
{
	tt_zero_record(r);
	r->len = sizeof(*r);
	r->version = TCPTRACE_RECORD_VERSION;
	r->type = type;
	r->cpu = smp_processor_id();
	r->ts_ns = ts;
}

/**
 * tt_ring_reserve() - start a record on this CPU's ring
 * @type: enum tcptrace_type
 * @flags: saved interrupt state, to hand to tt_ring_commit()
 *
 * Return: a zeroed record with its header, time and task filled in, or
 * NULL when the ring is full (the drop is counted).  On success the
 * caller fills the record and calls tt_ring_commit(flags) at once.
 */
struct tcptrace_record *tt_ring_reserve(u8 type, unsigned long *flags)
{
	struct tcptrace_record *r;
	struct tt_cpu *c;
	u32 head, used;
	long lost;
	u64 ts;

	local_irq_save(*flags);
	c = this_cpu_ptr(tt_cpus);
	/* a full ring only counts the drop: no clock, no write begun */
	head = c->head;
	used = head - tt_load_tail(c);
	lost = atomic_long_read(&c->lost_pending);
	if (unlikely(used + (lost ? 2 : 1) > tt_mask + 1)) {
		atomic_long_inc(&c->lost_pending);
		c->drops++;
		local_irq_restore(*flags);
		return NULL;
	}
	/* the reader only frees slots meanwhile: there is still room */
	WRITE_ONCE(c->wseq, c->wseq + 1);
	/* order the count before the clock read; pairs with tt_horizon() */
	smp_mb();
	ts = ktime_get_ns();
	if (unlikely(lost)) {
		lost = atomic_long_xchg(&c->lost_pending, 0);
		if (lost) {
			r = &c->recs[head & tt_mask];
			tt_fill_header(r, TCPTRACE_T_LOST, ts);
			r->lost.count = lost;
			c->events++;
			c->per_type[TCPTRACE_T_LOST]++;
			head++;
			/* publish it now: it is complete */
			tt_publish_head(c, head);
		}
	}
	r = &c->recs[head & tt_mask];
	tt_fill_header(r, type, ts);
	if (in_task()) {
		r->pid = task_tgid_nr(current);
		memcpy(r->comm, current->comm, sizeof(r->comm));
		r->comm[sizeof(r->comm) - 1] = '\0';
	}
	c->events++;
	c->per_type[type]++;
	return r;
}

/**
 * tt_ring_commit() - publish the record returned by tt_ring_reserve()
 * @flags: the interrupt state tt_ring_reserve() saved
 */
void tt_ring_commit(unsigned long flags)
{
	struct tt_cpu *c = this_cpu_ptr(tt_cpus);
	int w;

	tt_publish_head(c, c->head + 1);
	tt_end_write(c);
	/* order the head before tt_waiting; pairs with tt_prepare_wait() */
	smp_mb();
	w = READ_ONCE(tt_waiting);
	if (unlikely(w != TT_AWAKE))
		tt_kick(c, w);
	local_irq_restore(flags);
}

void tt_count_malformed(void)
{
	this_cpu_inc(tt_cpus->malformed);
}

void tt_count_expect_eviction(void)
{
	this_cpu_inc(tt_cpus->expect_evictions);
}

static bool tt_has_data(void)
{
	int cpu;

	for_each_possible_cpu(cpu) {
		struct tt_cpu *c = per_cpu_ptr(tt_cpus, cpu);

		if (tt_load_head(c) != c->tail ||
		    atomic_long_read(&c->lost_pending))
			return true;
	}
	return false;
}

/* Announce a sleeping reader, then look again (pairs with commit). */
static bool tt_prepare_wait(void)
{
	/* a deferred wake-up stays deferred: the timer is armed */
	cmpxchg(&tt_waiting, TT_AWAKE, TT_SLEEPING);
	/* order the flag before the look at the rings; pairs with commit */
	smp_mb();
	return tt_has_data();
}

/*
 * The time before which every record is committed: a write that began
 * before we read the clock may still hold an older timestamp, so wait for
 * it to end; a write that begins later takes a timestamp after ours.
 */
static u64 tt_horizon(void)
{
	u64 now = ktime_get_ns();
	int cpu;

	/* order the clock read before the counts; pairs with reserve */
	smp_mb();
	for_each_possible_cpu(cpu) {
		struct tt_cpu *c = per_cpu_ptr(tt_cpus, cpu);
		u32 seq = tt_load_wseq(c);

		if (seq & 1)
			while (tt_load_wseq(c) == seq)
				cpu_relax();
	}
	return now;
}

/*
 * One record to the reader, 8 bytes at a time: copy_to_user() of 128
 * bytes is a byte-wise "rep movsb" on CPUs with ERMS, whose start-up
 * costs more than the copy at this size (and which an emulated CPU runs
 * one byte per step).  Returns 0 or -EFAULT.
 */
static int tt_copy_record(char __user *dst, const struct tcptrace_record *r)
{
	if (!user_access_begin(dst, sizeof(*r)))
		return -EFAULT;
	unsafe_copy_to_user(dst, (const char *)r, sizeof(*r), efault);
	user_access_end();
	return 0;

efault:
	user_access_end();
	return -EFAULT;
}

/*
 * Copy out records older than the horizon, oldest first; with @netns, only
 * those of that network namespace (and LOST records): the others are
 * consumed unseen.
 */
static ssize_t tt_copy_merged(char __user *buf, size_t count, u32 netns)
{
	const size_t rsz = sizeof(struct tcptrace_record);
	u64 horizon = tt_horizon();
	size_t done = 0;
	int cpu;

	while (done + rsz <= count) {
		struct tt_cpu *best = NULL;
		u64 best_ts = horizon;

		for_each_possible_cpu(cpu) {
			struct tt_cpu *c = per_cpu_ptr(tt_cpus, cpu);
			u32 tail = c->tail;

			if (tt_load_head(c) == tail)
				continue;
			if (c->recs[tail & tt_mask].ts_ns < best_ts) {
				best_ts = c->recs[tail & tt_mask].ts_ns;
				best = c;
			}
		}
		if (!best)
			break;
		if (netns && best->recs[best->tail & tt_mask].netns != netns &&
		    best->recs[best->tail & tt_mask].type != TCPTRACE_T_LOST) {
			tt_release_tail(best, best->tail + 1);
			continue;
		}
		if (tt_copy_record(buf + done, &best->recs[best->tail & tt_mask]))
			return done ? done : -EFAULT;
		tt_release_tail(best, best->tail + 1);
		done += rsz;
	}
	if (done + rsz > count)
		return done;

	/*
	 * Drops on a CPU whose ring has drained since: no later record will
	 * carry them, so report them here, at the end of what was read.
	 */
	for_each_possible_cpu(cpu) {
		struct tt_cpu *c = per_cpu_ptr(tt_cpus, cpu);
		struct tcptrace_record r;
		long lost;

		if (done + rsz > count)
			break;
		if (tt_load_head(c) != c->tail ||
		    !atomic_long_read(&c->lost_pending))
			continue;
		lost = atomic_long_xchg(&c->lost_pending, 0);
		if (!lost)
			continue;
		memset(&r, 0, sizeof(r));
		r.len = rsz;
		r.version = TCPTRACE_RECORD_VERSION;
		r.type = TCPTRACE_T_LOST;
		r.cpu = cpu;
		r.ts_ns = ktime_get_ns();
		r.lost.count = lost;
		if (copy_to_user(buf + done, &r, rsz)) {
			atomic_long_add(lost, &c->lost_pending);
			return done ? done : -EFAULT;
		}
		/* counted like the LOST records producers write */
		this_cpu_inc(tt_cpus->events);
		this_cpu_inc(tt_cpus->per_type[TCPTRACE_T_LOST]);
		done += rsz;
	}
	return done;
}

ssize_t tt_ring_read(char __user *buf, size_t count, bool nonblock, u32 netns)
{
	ssize_t ret;

	if (count < sizeof(struct tcptrace_record))
		return -EINVAL;

	for (;;) {
		if (mutex_lock_interruptible(&tt_read_mutex))
			return -ERESTARTSYS;
		ret = tt_copy_merged(buf, count, netns);
		mutex_unlock(&tt_read_mutex);
		if (ret)
			return ret;
		if (nonblock)
			return -EAGAIN;
		ret = wait_event_interruptible(tt_wq, tt_prepare_wait());
		if (ret)
			return ret;
	}
}

/* Whether a ring is at the wake-up mark, or has dropped records. */
static bool tt_filling(void)
{
	int cpu;

	for_each_possible_cpu(cpu) {
		struct tt_cpu *c = per_cpu_ptr(tt_cpus, cpu);

		if (tt_load_head(c) - READ_ONCE(c->tail) >= tt_wake_mark ||
		    atomic_long_read(&c->lost_pending))
			return true;
	}
	return false;
}

/*
 * EPOLLIN: records to read.  EPOLLPRI: a ring is at least a quarter full
 * (or dropping), the mark at which a sleeping reader is woken at once.  A
 * reader that waits a while between reads, to take records in batches,
 * waits for EPOLLPRI alone: a burst then wakes it before a ring fills,
 * while a trickle lets it sleep out its time.
 */
__poll_t tt_ring_poll(struct file *file, poll_table *wait)
{
	__poll_t mask = 0;

	poll_wait(file, &tt_wq, wait);
	if (tt_prepare_wait())
		mask |= EPOLLIN | EPOLLRDNORM;
	if (tt_filling())
		mask |= EPOLLPRI;
	return mask;
}

static void tt_sum(struct tcptrace_stats *st)
{
	int cpu, i;

	memset(st, 0, sizeof(*st));
	for_each_possible_cpu(cpu) {
		struct tt_cpu *c = per_cpu_ptr(tt_cpus, cpu);

		st->events += READ_ONCE(c->events);
		st->drops += READ_ONCE(c->drops);
		st->malformed += READ_ONCE(c->malformed);
		st->expect_evictions += READ_ONCE(c->expect_evictions);
		for (i = 0; i < TCPTRACE_T_MAX; i++)
			st->per_type[i] += READ_ONCE(c->per_type[i]);
		st->queued += tt_load_head(c) - READ_ONCE(c->tail);
	}
}

void tt_ring_stats(struct tcptrace_stats *st)
{
	int i;

	mutex_lock(&tt_read_mutex);
	tt_sum(st);
	st->events -= tt_base.events;
	st->drops -= tt_base.drops;
	st->malformed -= tt_base.malformed;
	st->expect_evictions -= tt_base.expect_evictions;
	for (i = 0; i < TCPTRACE_T_MAX; i++)
		st->per_type[i] -= tt_base.per_type[i];
	mutex_unlock(&tt_read_mutex);

	st->size = sizeof(*st);
	st->abi_version = TCPTRACE_ABI_VERSION;
	st->nr_cpus = num_possible_cpus();
	st->ring_records = tt_mask + 1;
	st->ring_bytes = (u64)st->nr_cpus * st->ring_records *
			 sizeof(struct tcptrace_record);
	tt_expect_stats(st);
}

/* Discard what is queued and start the counters from zero. */
void tt_ring_clear(void)
{
	int cpu;

	mutex_lock(&tt_read_mutex);
	for_each_possible_cpu(cpu) {
		struct tt_cpu *c = per_cpu_ptr(tt_cpus, cpu);

		atomic_long_set(&c->lost_pending, 0);
		tt_release_tail(c, tt_load_head(c));
	}
	tt_sum(&tt_base);
	mutex_unlock(&tt_read_mutex);
}
