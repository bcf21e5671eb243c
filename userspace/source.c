// SPDX-License-Identifier: GPL-2.0
/*
 * tcptracectl: read records from the device, a raw file or JSON Lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "source.h"

/*
 * Room for a batch of records plus the rest of one record of any len; from
 * the device, for the rest of a record and a chunk of the queue.
 */
#define BUF_SIZE	(128 * 1024)
_Static_assert(BUF_SIZE >= UINT16_MAX + DRAIN_CHUNK, "BUF_SIZE too small");
/* The longest JSON line accepted. */
#define LINE_MAX_LEN	(64 * 1024)

static volatile sig_atomic_t stop_signal;
static volatile sig_atomic_t signals;

static void on_signal(int sig)
{
	stop_signal = sig;
	if (signals < 2)
		signals++;
}

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

struct run {
	struct source *s;
	source_fn fn;
	int (*flush)(void *ctx);
	void *ctx;
	bool warned;
	bool stopped;		/* the callback asked to stop */
	uint64_t offset;	/* input offset of the next raw record */
	uint64_t deadline;
};

/*
 * From the device, a first signal ends the reading and what was read is
 * still handled (the reading thread ends it); a second one stops at once.
 */
static bool done(const struct run *rn)
{
	if (rn->stopped)
		return true;
	return rn->s->kind == SOURCE_DEVICE ? signals > 1 : signals > 0;
}

static int deliver(struct run *rn, const struct tcptrace_record *r)
{
	int ret = rn->fn(rn->ctx, r);

	rn->s->records++;
	if (ret > 0)
		rn->stopped = true;
	return ret < 0 ? -1 : 0;
}

static void warn_skip(struct run *rn, unsigned int type, unsigned int version,
		      unsigned int len)
{
	if (!rn->warned)
		warnmsg("skipping records of unknown type or newer version (first: type %u, version %u, len %u)",
			type, version, len);
	rn->warned = true;
}

/*
 * Hands the whole records in buf[0..len) to the callback and returns how
 * many bytes they took; the rest is an incomplete record.  Returns -1 on a
 * malformed record or a callback error.
 */
static ssize_t process_raw(struct run *rn, const unsigned char *buf,
			   size_t len)
{
	const struct tcptrace_record *rp;
	struct tcptrace_record r;
	size_t pos = 0;
	uint16_t rlen;
	uint8_t version, type;

	while (len - pos >= 4 && !done(rn)) {
		memcpy(&rlen, buf + pos, sizeof(rlen));
		version = buf[pos + 2];
		type = buf[pos + 3];
		if (rlen < TCPTRACE_RECORD_SIZE || version == 0) {
			errmsg("malformed record at input offset %llu: len %u, version %u",
			       (unsigned long long)(rn->offset + pos), rlen,
			       version);
			return -1;
		}
		if (len - pos < rlen)
			break;
		if (rlen > TCPTRACE_RECORD_SIZE ||
		    version > TCPTRACE_RECORD_VERSION ||
		    !record_type_name(type)) {
			warn_skip(rn, type, version, rlen);
			pos += rlen;
			continue;
		}
		/* in place when aligned, as records read from the device are */
		if ((uintptr_t)(buf + pos) % _Alignof(struct tcptrace_record)) {
			memcpy(&r, buf + pos, sizeof(r));
			rp = &r;
		} else {
			rp = (const struct tcptrace_record *)(buf + pos);
		}
		pos += rlen;
		if (deliver(rn, rp))
			return -1;
	}
	rn->offset += pos;
	return (ssize_t)pos;
}

static int do_flush(struct run *rn)
{
	if (rn->flush && rn->flush(rn->ctx))
		return -1;
	return 0;
}

/*
 * The device's reading ended and everything read was handled: why.
 * Returns 0 for a hang-up or a signal, 1 after printing an error.
 */
static int device_ended(struct run *rn, struct drain *dr, size_t have)
{
	struct drain_result res;

	drain_result(dr, &res);
	if (res.error == EBUSY) {
		errmsg("%s is already being read by another process (one reader at a time)",
		       device_path());
		return 1;
	}
	if (res.error == EBADF) {
		errmsg("poll %s: invalid file descriptor", device_path());
		return 1;
	}
	if (res.error) {
		errmsg("read %s: %s", device_path(), strerror(res.error));
		return 1;
	}
	if (res.hup && have) {
		errmsg("truncated record at input offset %llu: %zu of its bytes present",
		       (unsigned long long)rn->offset, have);
		return 1;
	}
	return 0;
}

/* Records read but left when a second signal ended it. */
static void warn_unhandled(struct drain *dr, size_t have)
{
	struct drain_result res;
	size_t n;

	drain_result(dr, &res);
	n = (res.queued + have) / TCPTRACE_RECORD_SIZE;
	if (n)
		warnmsg("%zu records read from %s were left unhandled at the end",
			n, device_path());
}

/*
 * Formatting in the background.  The formatting thread (the caller's) is
 * CPU-bound work that nothing waits for when the output is not a terminal:
 * the reading thread keeps the module's rings empty and the queue absorbs
 * the lag.  So it runs as SCHED_IDLE: on a CPU that nothing else wants,
 * preempted at once by any other task's wake-up, so that a burst of
 * formatting never delays the traced workload, which only loses the CPU
 * time it leaves idle.  When the queue grows past BG_HIGH (8192 records,
 * a fraction of a second's worth under load: the machine has had too
 * little idle time for a while) the thread goes back to SCHED_OTHER, its
 * fair share, until the queue is under BG_LOW: the lag stays that small
 * and the queue never fills because of the policy.  The reading thread
 * makes that return itself (drain_caller_idle()), since a thread kept off
 * the CPUs at SCHED_IDLE would notice the queue only once it ran.  After
 * the reading ends (a signal, --duration) the rest is formatted at
 * SCHED_OTHER.
 *
 * Not done when source.background is false (a terminal, the metrics
 * server), under a policy the user chose (chrt, anything but SCHED_OTHER),
 * without the right to return to SCHED_OTHER (root, CAP_SYS_NICE or
 * RLIMIT_NICE), or with TCPTRACE_FOREGROUND set in the environment.
 */
#define BG_HIGH	((size_t)1 << 20)
#define BG_LOW	((size_t)128 << 10)

struct bg {
	bool on;	/* the policy is ours to change */
	struct drain *dr;	/* which knows whether it is SCHED_IDLE */
};

static bool bg_may_return(void)
{
	struct rlimit rl;
	int nice;

	if (geteuid() == 0)
		return true;
	errno = 0;
	nice = getpriority(PRIO_PROCESS, 0);
	if (errno || getrlimit(RLIMIT_NICE, &rl))
		return false;
	/* what the kernel's can_nice() asks of an unprivileged thread */
	return rl.rlim_cur == RLIM_INFINITY ||
	       (rlim_t)(20 - nice) <= rl.rlim_cur;
}

static void bg_set(struct bg *b, bool idle)
{
	int err;

	if (!b->on || drain_caller_is_idle(b->dr) == idle)
		return;
	err = idle ? drain_caller_idle(b->dr, BG_HIGH) :
		     drain_caller_return(b->dr);
	if (err) {
		warnmsg("cannot make the formatting thread %s: %s",
			idle ? "SCHED_IDLE" : "SCHED_OTHER", strerror(err));
		b->on = false;
	}
}

static void bg_start(struct bg *b, struct drain *dr, bool wanted)
{
	const char *fg = getenv("TCPTRACE_FOREGROUND");

	b->dr = dr;
	b->on = wanted && !(fg && *fg && strcmp(fg, "0")) &&
		sched_getscheduler(0) == SCHED_OTHER && bg_may_return();
	bg_set(b, true);
}

/* after each batch taken from the queue, with what is left in it */
static void bg_update(struct bg *b, size_t queued, bool reading)
{
	if (!reading || queued > BG_HIGH)
		bg_set(b, false);
	else if (queued < BG_LOW)
		bg_set(b, true);
}

/*
 * Raw records from the device or a file.  The device is read by a thread
 * of its own (drain.c), so that formatting never holds up its draining.
 */
static int run_raw(struct run *rn, int fd, const sigset_t *mask)
{
	bool device = rn->s->kind == SOURCE_DEVICE;
	struct drain *dr = NULL;
	unsigned char *buf = NULL;
	struct bg bg = { 0 };
	const void *data;
	uint64_t wake, tick;
	size_t have = 0, room, queued;
	bool reading;
	ssize_t n, used;
	int err = 0;

	buf = malloc(BUF_SIZE);
	if (!buf) {
		errmsg("out of memory");
		err = 1;
		goto cleanup;
	}
	if (device) {
		err = drain_start(&dr, fd, mask);
		if (err) {
			errmsg("cannot start the thread that reads %s: %s",
			       device_path(), strerror(err));
			err = 1;
			goto cleanup;
		}
		bg_start(&bg, dr, rn->s->background);
	}
	while (!done(rn)) {
		if (rn->deadline && now_ns() >= rn->deadline) {
			if (!dr)
				break;
			/* what was read by the deadline is still handled */
			drain_finish(dr);
			rn->deadline = 0;
		}
		if (device) {
			wake = rn->deadline;
			if (rn->s->tick > 0) {
				tick = now_ns() + (uint64_t)(rn->s->tick * 1e9);
				if (!wake || tick < wake)
					wake = tick;
			}
			n = drain_pop(dr, &data, wake);
			reading = drain_status(dr, &queued);
			bg_update(&bg, queued, reading);
			if (n < 0) {
				err = device_ended(rn, dr, have);
				break;
			}
			if (n == 0) {
				if (do_flush(rn)) {
					err = 1;
					goto cleanup;
				}
				continue;
			}
			if (!have) {
				/* the records where the reading thread put them */
				used = process_raw(rn, data, (size_t)n);
				if (do_flush(rn) || used < 0) {
					err = 1;
					goto cleanup;
				}
				have = (size_t)(n - used);
				memcpy(buf, (const unsigned char *)data + used, have);
				continue;
			}
			/* the rest of a record cut at the end of a chunk */
			memcpy(buf + have, data, (size_t)n);
		} else {
			/* room for whole records */
			room = (BUF_SIZE - have) &
			       ~(size_t)(TCPTRACE_RECORD_SIZE - 1);
			n = read(fd, buf + have, room);
			if (n < 0) {
				if (errno == EINTR || errno == EAGAIN)
					continue;
				errmsg("read %s: %s", rn->s->path,
				       strerror(errno));
				err = 1;
				goto cleanup;
			}
			if (n == 0) {
				if (have) {
					errmsg("truncated record at input offset %llu: %zu of its bytes present",
					       (unsigned long long)rn->offset,
					       have);
					err = 1;
				}
				break;
			}
		}
		have += (size_t)n;
		used = process_raw(rn, buf, have);
		if (do_flush(rn) || used < 0) {
			err = 1;
			goto cleanup;
		}
		have -= (size_t)used;
		memmove(buf, buf + used, have);
	}
	if (dr && !err && !rn->stopped)
		warn_unhandled(dr, have);
cleanup:
	drain_stop(dr);
	free(buf);
	return err;
}

/* JSON Lines, as written by 'watch --json'. */
static int run_json(struct run *rn, FILE *in)
{
	struct tcptrace_record r;
	uint64_t lineno = 0;
	char *line = NULL;
	size_t cap = 0;
	char err[160];
	ssize_t n;
	int ret = 0;

	while (!done(rn)) {
		if (rn->deadline && now_ns() >= rn->deadline)
			break;
		errno = 0;
		n = getline(&line, &cap, in);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno) {
				errmsg("read %s: %s", rn->s->path,
				       strerror(errno));
				ret = 1;
			}
			break;
		}
		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0)
			continue;
		if (n > LINE_MAX_LEN) {
			errmsg("%s:%llu: line longer than %d bytes", rn->s->path,
			       (unsigned long long)lineno, LINE_MAX_LEN);
			ret = 1;
			break;
		}
		if (json_to_record(line, (size_t)n, &r, err, sizeof(err))) {
			errmsg("%s:%llu: %s", rn->s->path,
			       (unsigned long long)lineno, err);
			ret = 1;
			break;
		}
		/* a line of another kind (e.g. a summary) is not a record */
		if (!r.type)
			continue;
		if (deliver(rn, &r)) {
			ret = 1;
			break;
		}
	}
	if (!ret && do_flush(rn))
		ret = 1;
	free(line);
	return ret;
}

int source_run(struct source *s, source_fn fn, int (*flush)(void *ctx),
	       void *ctx)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct run rn = { .s = s, .fn = fn, .flush = flush, .ctx = ctx };
	bool masked = false, stdin_in;
	sigset_t block, orig;
	FILE *in = NULL;
	int fd = -1, err = 0;

	s->interrupted = false;
	s->records = 0;
	stop_signal = 0;
	signals = 0;
	stdin_in = s->kind != SOURCE_DEVICE && !strcmp(s->path, "-");
	if (s->kind == SOURCE_DEVICE) {
		if (device_open(O_NONBLOCK, &fd)) {
			err = 1;
			goto cleanup;
		}
	} else if (s->kind == SOURCE_RAW) {
		fd = stdin_in ? STDIN_FILENO : open(s->path,
						    O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			errmsg("cannot open %s: %s", s->path, strerror(errno));
			err = 1;
			goto cleanup;
		}
	} else {
		in = stdin_in ? stdin : fopen(s->path, "re");
		if (!in) {
			errmsg("cannot open %s: %s", s->path, strerror(errno));
			err = 1;
			goto cleanup;
		}
	}

	/*
	 * Signals stay blocked except inside ppoll(), so that one arriving
	 * just before it cannot be missed.  A file is read without waiting
	 * for it, so signals are left unblocked to interrupt that read.
	 */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	if (s->kind == SOURCE_DEVICE) {
		sigprocmask(SIG_BLOCK, &block, &orig);
		masked = true;
	}
	/* left in place: a second signal must not kill the final output */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (s->duration > 0)
		rn.deadline = now_ns() + (uint64_t)(s->duration * 1e9);

	if (in)
		err = run_json(&rn, in);
	else
		err = run_raw(&rn, fd, masked ? &orig : NULL);
	s->interrupted = stop_signal != 0;
cleanup:
	if (in && in != stdin)
		fclose(in);
	if (fd > STDIN_FILENO)
		close(fd);
	if (masked)
		sigprocmask(SIG_SETMASK, &orig, NULL);
	return err;
}
