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
 * read in batches rather than a few at a time as they trickle in.
 *
 * The queue is bounded (DRAIN_QUEUE_MAX bytes of chunks; a short read is
 * added to the last chunk when it fits): while it is full the thread
 * does not read, the module's rings fill and the module counts what it
 * cannot store, which reaches the caller as LOST records in the stream, as
 * it would without the queue.  Nothing is lost unseen.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "source.h"

#define DRAIN_CHUNK	(64 * 1024)
#define DRAIN_QUEUE_MAX	((size_t)64 << 20)
#define DRAIN_PAUSE_NS	10000000L
/* chunks kept for reuse rather than freed */
#define DRAIN_SPARE	8

struct chunk {
	struct chunk *next;
	size_t len;		/* bytes read into data */
	size_t off;		/* bytes of data already taken */
	unsigned char data[DRAIN_CHUNK];
};

struct drain {
	int fd;
	int stop_fd;		/* eventfd: the caller asks the thread to end */
	const sigset_t *mask;	/* signal mask to wait with */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* data, or the end, for the caller */
	/* under lock */
	struct chunk *head, *tail;
	struct chunk *spare;
	unsigned int nspare;
	size_t nchunks;		/* chunks in the queue */
	size_t queued;		/* bytes in the queue */
	bool ended;		/* the thread reads no more */
	bool hup;		/* it ended on a hang-up */
	bool interrupted;	/* it ended on a signal */
	int error;		/* errno of the read or poll that failed */
};

static void drain_end(struct drain *d, int error, bool hup, bool intr)
{
	pthread_mutex_lock(&d->lock);
	d->ended = true;
	d->error = error;
	d->hup = hup;
	d->interrupted = intr;
	pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

/*
 * Waits for the device (when @fd_too) or for @timeout; returns 1 when the
 * device is readable, 0 on the timeout, 2 when asked to stop, 3 on a
 * signal, -1 on an error (errno set; EBADF for POLLNVAL).  *@hup is set
 * on a hang-up with nothing left to read.
 */
static int drain_wait(struct drain *d, bool fd_too,
		      const struct timespec *timeout, bool *hup)
{
	struct pollfd pfd[2] = {
		{ .fd = d->stop_fd, .events = POLLIN },
		{ .fd = fd_too ? d->fd : -1, .events = POLLIN },
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

static struct chunk *drain_chunk(struct drain *d)
{
	struct chunk *c;

	pthread_mutex_lock(&d->lock);
	c = d->spare;
	if (c) {
		d->spare = c->next;
		d->nspare--;
	}
	pthread_mutex_unlock(&d->lock);
	return c ? c : malloc(sizeof(*c));
}

/* The queue's memory is its chunks, however full they are. */
static bool drain_full(struct drain *d)
{
	bool full;

	pthread_mutex_lock(&d->lock);
	full = d->nchunks >= DRAIN_QUEUE_MAX / DRAIN_CHUNK;
	pthread_mutex_unlock(&d->lock);
	return full;
}

/*
 * Queues what was read into @c; a short read goes at the end of the last
 * chunk when it fits there.  Returns whether @c was kept (else it can be
 * read into again).
 */
static bool drain_push(struct drain *d, struct chunk *c)
{
	struct chunk *t;
	bool kept = true;

	pthread_mutex_lock(&d->lock);
	t = d->tail;
	if (t && DRAIN_CHUNK - t->len >= c->len) {
		memcpy(t->data + t->len, c->data, c->len);
		t->len += c->len;
		kept = false;
	} else {
		c->next = NULL;
		if (t)
			t->next = c;
		else
			d->head = c;
		d->tail = c;
		d->nchunks++;
	}
	d->queued += c->len;
	pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->lock);
	return kept;
}

static void *drain_thread(void *arg)
{
	const struct timespec pause = { .tv_nsec = DRAIN_PAUSE_NS };
	struct drain *d = arg;
	struct chunk *c = NULL;
	bool hup = false;
	ssize_t n;
	int ret;

	for (;;) {
		if (drain_full(d)) {
			ret = drain_wait(d, false, &pause, &hup);
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
		ret = drain_wait(d, true, NULL, &hup);
		if (ret < 0) {
			drain_end(d, errno, false, false);
			goto wait_stop;
		}
		if (ret > 1)
			break;
		if (!ret && !hup)
			continue;
		/* the device wants room for whole records */
		n = read(d->fd, c->data, DRAIN_CHUNK);
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
		c->len = (size_t)n;
		c->off = 0;
		if (drain_push(d, c))
			c = NULL;
		if ((size_t)n < DRAIN_CHUNK / 4) {
			ret = drain_wait(d, false, &pause, &hup);
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
	while (drain_wait(d, false, NULL, &hup) != 2)
		;
	return NULL;
}

int drain_start(struct drain **dp, int fd, const sigset_t *mask)
{
	pthread_condattr_t attr;
	struct drain *d;
	int err;

	d = calloc(1, sizeof(*d));
	if (!d)
		return ENOMEM;
	d->fd = fd;
	d->mask = mask;
	d->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (d->stop_fd < 0) {
		err = errno;
		goto free_drain;
	}
	err = pthread_mutex_init(&d->lock, NULL);
	if (err)
		goto close_stop_fd;
	err = pthread_condattr_init(&attr);
	if (err)
		goto destroy_lock;
	/* drain_pop()'s deadlines are CLOCK_MONOTONIC, as now_ns() */
	err = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (!err)
		err = pthread_cond_init(&d->cond, &attr);
	pthread_condattr_destroy(&attr);
	if (err)
		goto destroy_lock;
	err = pthread_create(&d->thread, NULL, drain_thread, d);
	if (err)
		goto destroy_cond;
	*dp = d;
	return 0;

destroy_cond:
	pthread_cond_destroy(&d->cond);
destroy_lock:
	pthread_mutex_destroy(&d->lock);
close_stop_fd:
	close(d->stop_fd);
free_drain:
	free(d);
	return err;
}

ssize_t drain_pop(struct drain *d, void *buf, size_t room, uint64_t deadline)
{
	struct timespec ts;
	struct chunk *c;
	size_t len;
	ssize_t ret;

	if (deadline) {
		ts.tv_sec = (time_t)(deadline / 1000000000);
		ts.tv_nsec = (long)(deadline % 1000000000);
	}
	pthread_mutex_lock(&d->lock);
	while (!d->head && !d->ended) {
		if (!deadline) {
			pthread_cond_wait(&d->cond, &d->lock);
		} else if (pthread_cond_timedwait(&d->cond, &d->lock, &ts) ==
			   ETIMEDOUT) {
			ret = 0;
			goto unlock;
		}
	}
	c = d->head;
	if (!c) {
		ret = -1;
		goto unlock;
	}
	len = c->len - c->off;
	if (len > room)
		len = room;
	memcpy(buf, c->data + c->off, len);
	c->off += len;
	d->queued -= len;
	ret = (ssize_t)len;
	if (c->off < c->len)
		goto unlock;
	d->head = c->next;
	if (!d->head)
		d->tail = NULL;
	d->nchunks--;
	if (d->nspare < DRAIN_SPARE) {
		c->next = d->spare;
		d->spare = c;
		d->nspare++;
	} else {
		free(c);
	}
unlock:
	pthread_mutex_unlock(&d->lock);
	return ret;
}

void drain_result(struct drain *d, struct drain_result *res)
{
	pthread_mutex_lock(&d->lock);
	res->error = d->error;
	res->hup = d->hup;
	res->interrupted = d->interrupted;
	res->queued = d->queued;
	pthread_mutex_unlock(&d->lock);
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
	struct chunk *c;

	if (!d)
		return;
	drain_finish(d);
	pthread_join(d->thread, NULL);
	while ((c = d->head)) {
		d->head = c->next;
		free(c);
	}
	while ((c = d->spare)) {
		d->spare = c->next;
		free(c);
	}
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->lock);
	close(d->stop_fd);
	free(d);
}
