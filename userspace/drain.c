// SPDX-License-Identifier: GPL-2.0
/*
 * tcptracectl: the device drained by a thread of its own.
 *
 * Formatting a record costs several times what reading it does, and under
 * load the reader is one runnable task among many: if it read the device
 * only as fast as it formats, the module's rings would fill and lose
 * records.  So one thread does nothing but read() the device into a queue
 * in memory, and the caller takes records from that queue at its own pace.
 * The thread sleeps most of the time, which the scheduler repays with a
 * prompt wake-up when the module wakes it.
 *
 * After a read that returned less than a quarter of a chunk, the thread
 * pauses for DRAIN_PAUSE_NS before it reads again, so that records are
 * read in batches rather than a few at a time as they trickle in.  It
 * pauses in poll() for POLLPRI, which the module reports once a ring is a
 * quarter full: a burst (a namespace's exit killing thousands of timewait
 * sockets at once) ends the pause before a ring fills.
 *
 * The queue is bounded (DRAIN_RING chunks of DRAIN_CHUNK bytes): while it
 * is full the thread does not read, the module's rings fill and the module
 * counts what it cannot store, which reaches the caller as LOST records in
 * the stream, as it would without the queue.  Nothing is lost unseen.
 *
 * Nothing is copied on the way: the thread reads into the free end of the
 * last chunk (a new one when less than a quarter of it is free), and
 * drain_pop() hands the caller a pointer to what it has not taken yet.
 *
 * Nor does the thread wait on the caller through the kernel: the process's
 * memory map has a lock of its own, which a page fault takes to read and
 * brk(), mmap() and mprotect() (malloc() and free() growing or trimming a
 * heap) to write.  A caller at SCHED_IDLE can be preempted while it holds
 * it and then wait for a CPU for seconds; a thread that needs it meanwhile
 * waits as long.  So the thread makes DRAIN_POOL chunks and touches their
 * pages before it reads anything, and keeps that many for reuse: while the
 * caller is less than DRAIN_POOL chunks behind, a read() writes into
 * memory that is there and the thread calls neither malloc() nor free().
 *
 * No lock is shared between the thread and the caller, which may format
 * at SCHED_IDLE (source.c): a lock it held while preempted would stall the
 * reading for as long as the machine is busy, and the module would drop
 * records.  The queue is a single-producer single-consumer ring of chunk
 * pointers with acquire/release indices; a chunk's len is published the
 * same way.  The thread only writes past a chunk's len, and the caller
 * gives back only the chunks it has taken whole that are not the last
 * one (the thread may be reading into that), through a second such ring;
 * the thread reuses or frees them, so that the caller does not even share
 * an allocator arena with it.  The caller sleeps on an eventfd, which the
 * thread writes when it said so.
 *
 * A caller that formats at SCHED_IDLE (drain_caller_idle()) returns to
 * SCHED_OTHER when it finds too much waiting, but only once it runs, and
 * on a machine that is busy a SCHED_IDLE thread may not run for a long
 * time: the queue then outgrows the chunks made at the start and the
 * thread must allocate, and so take the memory-map lock, which the caller
 * may hold (it was preempted in a page fault, say) and keep until it runs
 * again.  So the thread itself returns the caller to SCHED_OTHER as soon
 * as more than the caller's mark waits: before the made chunks run out,
 * and whether the caller runs or not.
 *
 * The thread itself must not be kept waiting either: at tens of
 * thousands of records a second a ring of the module lasts a tenth of a
 * second, and on a machine with dozens of busy tasks a thread at the
 * default nice value gets too small a share to keep every ring from
 * filling.  So when the process runs at nice 0 under SCHED_OTHER and may
 * raise its priority (root, CAP_SYS_NICE or RLIMIT_NICE), the thread
 * takes nice DRAIN_NICE, as auditd does with its priority_boost; it uses
 * little CPU time.  A process started with another nice value or policy
 * keeps it.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "source.h"

/* the queue: 64 MiB of chunks at the most */
#define DRAIN_RING	1024u
#define DRAIN_PAUSE_NS	10000000L
/* chunks made at the start, and kept for reuse rather than freed (2 MiB) */
#define DRAIN_POOL	32u
/* the thread's nice value, when it may take it */
#define DRAIN_NICE	(-10)

struct chunk {
	struct chunk *next;	/* the thread's spare list */
	_Atomic size_t len;	/* bytes read into data: stored with release */
	unsigned char data[DRAIN_CHUNK];
};

struct drain {
	int fd;
	int stop_fd;		/* eventfd: the caller asks the thread to end */
	int data_fd;		/* eventfd: the thread wakes a waiting caller */
	const sigset_t *mask;	/* signal mask to wait with */
	pthread_t thread;

	/* the queue: ring[tail .. head), indices free-running */
	struct chunk *ring[DRAIN_RING];
	_Atomic unsigned int head;	/* stored by the thread */
	_Atomic unsigned int tail;	/* stored by the caller */
	/* chunks given back: back[btail .. bhead) */
	struct chunk *back[DRAIN_RING];
	_Atomic unsigned int bhead;	/* stored by the caller */
	_Atomic unsigned int btail;	/* stored by the thread */
	_Atomic size_t queued;		/* bytes read and not yet taken */
	atomic_bool waiting;		/* the caller sleeps on data_fd */
	atomic_bool ended;		/* the thread reads no more */
	/* written by the thread before ended */
	int error;		/* errno of the read or poll that failed */
	bool hup;		/* it ended on a hang-up */
	bool interrupted;	/* it ended on a signal */

	/* the caller's policy: see drain_caller_idle() */
	pid_t caller;			/* its thread id */
	_Atomic size_t boost;		/* 0: at SCHED_OTHER; else its mark */
	int boost_error;		/* the thread's own, set once */

	/* the thread's own */
	struct chunk *spare;
	unsigned int nspare;
	/* the caller's own */
	size_t off;		/* bytes of ring[tail] taken */
};

/* After something the caller may wait for: wake it if it said it sleeps. */
static void drain_wake(struct drain *d)
{
	const uint64_t one = 1;

	/* pairs with the fence in drain_sleep() */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load(&d->waiting))
		while (write(d->data_fd, &one, sizeof(one)) < 0 &&
		       errno == EINTR)
			;
}

static void drain_end(struct drain *d, int error, bool hup, bool intr)
{
	d->error = error;
	d->hup = hup;
	d->interrupted = intr;
	atomic_store_explicit(&d->ended, true, memory_order_release);
	drain_wake(d);
}

/*
 * Waits for @events of the device (none: not for the device) or for
 * @timeout; returns 1 when the device has one, 0 on the timeout, 2 when
 * asked to stop, 3 on a signal, -1 on an error (errno set; EBADF for
 * POLLNVAL).  *@hup is set on a hang-up with nothing left to read.
 */
static int drain_wait(struct drain *d, short events,
		      const struct timespec *timeout, bool *hup)
{
	struct pollfd pfd[2] = {
		{ .fd = d->stop_fd, .events = POLLIN },
		{ .fd = events ? d->fd : -1, .events = events },
	};
	int n;

	n = ppoll(pfd, 2, timeout, d->mask);
	if (n < 0)
		return errno == EINTR ? 3 : -1;
	if (pfd[0].revents)
		return 2;
	if (pfd[1].revents & POLLNVAL) {
		errno = EBADF;
		return -1;
	}
	*hup = (pfd[1].revents & POLLHUP) && !(pfd[1].revents & POLLIN);
	return n > 0;
}

/* Takes back the chunks the caller is done with: kept or freed. */
static void drain_reclaim(struct drain *d)
{
	unsigned int t = atomic_load_explicit(&d->btail, memory_order_relaxed);
	unsigned int h = atomic_load_explicit(&d->bhead, memory_order_acquire);
	struct chunk *c;

	for (; t != h; t++) {
		c = d->back[t % DRAIN_RING];
		if (d->nspare < DRAIN_POOL) {
			c->next = d->spare;
			d->spare = c;
			d->nspare++;
		} else {
			free(c);
		}
	}
	atomic_store_explicit(&d->btail, t, memory_order_release);
}

/*
 * The chunks read into while the caller keeps up, their pages touched (in
 * the thread's own malloc() arena).  Short of memory, fewer.
 */
static void drain_pool(struct drain *d)
{
	struct chunk *c;

	while (d->nspare < DRAIN_POOL) {
		c = malloc(sizeof(*c));
		if (!c)
			return;
		memset(c->data, 0, sizeof(c->data));
		c->next = d->spare;
		d->spare = c;
		d->nspare++;
	}
}

/* A chunk to read into, len 0; NULL when out of memory. */
static struct chunk *drain_chunk(struct drain *d)
{
	struct chunk *c = d->spare;

	if (c) {
		d->spare = c->next;
		d->nspare--;
	} else {
		c = malloc(sizeof(*c));
		if (!c)
			return NULL;
	}
	atomic_store_explicit(&c->len, 0, memory_order_relaxed);
	return c;
}

int drain_caller_idle(struct drain *d, size_t mark)
{
	struct sched_param sp = { .sched_priority = 0 };

	if (sched_setscheduler(0, SCHED_IDLE, &sp))
		return errno;
	/* after the change: the thread undoes only what was done */
	atomic_store(&d->boost, mark);
	return 0;
}

int drain_caller_return(struct drain *d)
{
	struct sched_param sp = { .sched_priority = 0 };
	size_t mark = atomic_exchange(&d->boost, 0);

	if (!mark)
		return 0;
	if (sched_setscheduler(d->caller, SCHED_OTHER, &sp)) {
		int err = errno;

		/* still SCHED_IDLE: the next try may report it */
		atomic_store(&d->boost, mark);
		return err;
	}
	return 0;
}

bool drain_caller_is_idle(struct drain *d)
{
	return atomic_load(&d->boost) != 0;
}

/* The thread's priority raised, when the process has not chosen its own. */
static void drain_raise(void)
{
	id_t self = (id_t)gettid();

	errno = 0;
	if (sched_getscheduler(0) != SCHED_OTHER ||
	    getpriority(PRIO_PROCESS, self) != 0 || errno)
		return;
	/* without the right to, the thread stays at nice 0 */
	(void)setpriority(PRIO_PROCESS, self, DRAIN_NICE);
}

static void *drain_thread(void *arg)
{
	const struct timespec pause = { .tv_nsec = DRAIN_PAUSE_NS };
	struct drain *d = arg;
	struct chunk *c = NULL, *dst;
	unsigned int head, tail;
	bool hup = false;
	size_t off, queued, boost;
	ssize_t n;
	int ret;

	drain_raise();
	drain_pool(d);
	for (;;) {
		drain_reclaim(d);
		head = atomic_load_explicit(&d->head, memory_order_relaxed);
		tail = atomic_load_explicit(&d->tail, memory_order_acquire);
		if (head - tail >= DRAIN_RING) {
			/* full: the caller is behind */
			ret = drain_wait(d, 0, &pause, &hup);
			if (ret < 0) {
				drain_end(d, errno, false, false);
				goto wait_stop;
			}
			if (ret > 1)
				break;
			continue;
		}
		if (!c) {
			c = drain_chunk(d);
			if (!c) {
				drain_end(d, ENOMEM, false, false);
				goto wait_stop;
			}
		}
		ret = drain_wait(d, POLLIN, NULL, &hup);
		if (ret < 0) {
			drain_end(d, errno, false, false);
			goto wait_stop;
		}
		if (ret > 1)
			break;
		if (!ret && !hup)
			continue;
		/*
		 * Into the free end of the last chunk when a quarter of it or
		 * more is free: the caller does not give that one back.
		 */
		dst = c;
		off = 0;
		if (head != tail) {
			dst = d->ring[(head - 1) % DRAIN_RING];
			off = atomic_load_explicit(&dst->len,
						   memory_order_relaxed);
			if (DRAIN_CHUNK - off < DRAIN_CHUNK / 4) {
				dst = c;
				off = 0;
			}
		}
		/* the device wants room for whole records */
		n = read(d->fd, dst->data + off,
			 (DRAIN_CHUNK - off) & ~(size_t)(TCPTRACE_RECORD_SIZE - 1));
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			drain_end(d, errno, false, false);
			goto wait_stop;
		}
		if (n == 0) {
			/* a device read of 0 is no data, unless hung up */
			if (!hup)
				continue;
			drain_end(d, 0, true, false);
			goto wait_stop;
		}
		queued = atomic_fetch_add(&d->queued, (size_t)n) + (size_t)n;
		atomic_store_explicit(&dst->len, off + (size_t)n,
				      memory_order_release);
		boost = atomic_load_explicit(&d->boost, memory_order_relaxed);
		/* once: if it fails, the caller finds out and says so */
		if (boost && queued > boost && !d->boost_error)
			d->boost_error = drain_caller_return(d);
		if (dst == c) {
			d->ring[head % DRAIN_RING] = c;
			atomic_store_explicit(&d->head, head + 1,
					      memory_order_release);
			c = NULL;
		}
		drain_wake(d);
		if ((size_t)n < DRAIN_CHUNK / 4) {
			/* a ring filling fast ends the pause (POLLPRI) */
			ret = drain_wait(d, POLLPRI, &pause, &hup);
			if (ret > 1)
				break;
		}
	}
	free(c);
	c = NULL;
	drain_end(d, 0, false, ret == 3);
wait_stop:
	free(c);
	/* stay until asked to stop, so that further signals are caught */
	while (drain_wait(d, 0, NULL, &hup) != 2)
		;
	return NULL;
}

int drain_start(struct drain **dp, int fd, const sigset_t *mask)
{
	struct drain *d;
	int err;

	d = calloc(1, sizeof(*d));
	if (!d)
		return ENOMEM;
	d->fd = fd;
	d->mask = mask;
	d->caller = gettid();
	d->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (d->stop_fd < 0) {
		err = errno;
		goto free_drain;
	}
	d->data_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->data_fd < 0) {
		err = errno;
		goto close_stop_fd;
	}
	err = pthread_create(&d->thread, NULL, drain_thread, d);
	if (err)
		goto close_data_fd;
	*dp = d;
	return 0;

close_data_fd:
	close(d->data_fd);
close_stop_fd:
	close(d->stop_fd);
free_drain:
	free(d);
	return err;
}

/*
 * Sleeps until the thread may have queued something or ended, or until
 * @deadline (0: none).  Returns 0 on the deadline, else 1.
 */
static int drain_sleep(struct drain *d, uint64_t deadline)
{
	unsigned int head, tail;
	struct timespec ts, *tsp = NULL;
	struct pollfd pfd = { .fd = d->data_fd, .events = POLLIN };
	uint64_t now, count;
	int n;

	atomic_store(&d->waiting, true);
	/* pairs with the fence in drain_wake() */
	atomic_thread_fence(memory_order_seq_cst);
	head = atomic_load_explicit(&d->head, memory_order_acquire);
	tail = atomic_load_explicit(&d->tail, memory_order_relaxed);
	if (head != tail && atomic_load_explicit(
		    &d->ring[tail % DRAIN_RING]->len, memory_order_acquire) >
	    d->off)
		goto awake;
	if (head - tail > 1 || atomic_load(&d->ended))
		goto awake;
	if (deadline) {
		now = now_ns();
		if (now >= deadline) {
			atomic_store(&d->waiting, false);
			return 0;
		}
		ts.tv_sec = (time_t)((deadline - now) / 1000000000);
		ts.tv_nsec = (long)((deadline - now) % 1000000000);
		tsp = &ts;
	}
	n = ppoll(&pfd, 1, tsp, NULL);
	if (n == 0) {
		atomic_store(&d->waiting, false);
		return 0;
	}
	/*
	 * The count back to 0.  A failed read (EAGAIN: nothing left) costs
	 * at most one more trip round the caller's loop.
	 */
	if (n > 0 && read(d->data_fd, &count, sizeof(count)) < 0)
		count = 0;
awake:
	atomic_store(&d->waiting, false);
	return 1;
}

ssize_t drain_pop(struct drain *d, const void **data, uint64_t deadline)
{
	unsigned int head, tail, bhead;
	struct chunk *c;
	size_t len;

	for (;;) {
		tail = atomic_load_explicit(&d->tail, memory_order_relaxed);
		head = atomic_load_explicit(&d->head, memory_order_acquire);
		if (head != tail) {
			c = d->ring[tail % DRAIN_RING];
			len = atomic_load_explicit(&c->len,
						   memory_order_acquire);
			if (len > d->off) {
				*data = c->data + d->off;
				len -= d->off;
				d->off += len;
				atomic_fetch_sub(&d->queued, len);
				return (ssize_t)len;
			}
			/* taken whole, and not the last: give it back */
			if (head - tail > 1) {
				bhead = atomic_load_explicit(
					&d->bhead, memory_order_relaxed);
				/* at most DRAIN_RING chunks exist at once */
				d->back[bhead % DRAIN_RING] = c;
				atomic_store_explicit(&d->bhead, bhead + 1,
						      memory_order_release);
				atomic_store_explicit(&d->tail, tail + 1,
						      memory_order_release);
				d->off = 0;
				continue;
			}
		}
		if (atomic_load_explicit(&d->ended, memory_order_acquire)) {
			/* what came before the end is visible now */
			head = atomic_load_explicit(&d->head,
						    memory_order_acquire);
			if (head != tail && atomic_load_explicit(
				    &d->ring[tail % DRAIN_RING]->len,
				    memory_order_acquire) > d->off)
				continue;
			if (head - tail > 1)
				continue;
			return -1;
		}
		if (!drain_sleep(d, deadline))
			return 0;
	}
}

void drain_result(struct drain *d, struct drain_result *res)
{
	bool ended = atomic_load_explicit(&d->ended, memory_order_acquire);

	res->error = ended ? d->error : 0;
	res->hup = ended && d->hup;
	res->interrupted = ended && d->interrupted;
	res->queued = atomic_load(&d->queued);
}

bool drain_status(struct drain *d, size_t *queued)
{
	*queued = atomic_load_explicit(&d->queued, memory_order_relaxed);
	return !atomic_load_explicit(&d->ended, memory_order_relaxed);
}

void drain_finish(struct drain *d)
{
	const uint64_t one = 1;

	/* the count stays: every later wait of the thread sees it */
	while (write(d->stop_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

void drain_stop(struct drain *d)
{
	unsigned int i, end;
	struct chunk *c;

	if (!d)
		return;
	drain_finish(d);
	pthread_join(d->thread, NULL);
	drain_reclaim(d);
	end = atomic_load(&d->head);
	for (i = atomic_load(&d->tail); i != end; i++)
		free(d->ring[i % DRAIN_RING]);
	while ((c = d->spare)) {
		d->spare = c->next;
		free(c);
	}
	close(d->data_fd);
	close(d->stop_fd);
	free(d);
}
