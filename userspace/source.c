// SPDX-License-Identifier: GPL-2.0
/*
 * tcptracectl: read records from the device, a raw file or JSON Lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "source.h"

/* Room for a batch of records plus the rest of one record of any len. */
#define BUF_SIZE	(128 * 1024)
/* The longest JSON line accepted. */
#define LINE_MAX_LEN	(64 * 1024)

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
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

static bool done(const struct run *rn)
{
	return stop_signal || rn->stopped;
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
		memcpy(&r, buf + pos, sizeof(r));
		pos += rlen;
		if (deliver(rn, &r))
			return -1;
	}
	rn->offset += pos;
	return (ssize_t)pos;
}

/*
 * Waits until fd is readable, the deadline passes or a signal arrives.
 * Returns 1 when readable, 0 otherwise, -1 on error.
 */
static int wait_readable(int fd, uint64_t deadline, const sigset_t *mask,
			 bool *hup)
{
	struct timespec ts, *tsp = NULL;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	uint64_t now;
	int n;

	if (deadline) {
		now = now_ns();
		if (now >= deadline)
			return 0;
		ts.tv_sec = (time_t)((deadline - now) / 1000000000);
		ts.tv_nsec = (long)((deadline - now) % 1000000000);
		tsp = &ts;
	}
	n = ppoll(&pfd, 1, tsp, mask);
	if (n < 0) {
		if (errno == EINTR)
			return 0;
		errmsg("poll %s: %s", device_path(), strerror(errno));
		return -1;
	}
	if (n > 0 && (pfd.revents & POLLNVAL)) {
		errmsg("poll %s: invalid file descriptor", device_path());
		return -1;
	}
	*hup = n > 0 && (pfd.revents & POLLHUP) && !(pfd.revents & POLLIN);
	return n > 0;
}

static int do_flush(struct run *rn)
{
	if (rn->flush && rn->flush(rn->ctx))
		return -1;
	return 0;
}

/* Raw records from the device or a file. */
static int run_raw(struct run *rn, int fd, const sigset_t *mask)
{
	bool device = rn->s->kind == SOURCE_DEVICE;
	uint64_t wake, tick;
	unsigned char *buf = NULL;
	size_t have = 0, room;
	bool hup = false;
	ssize_t n, used;
	int err = 0, ready;

	buf = malloc(BUF_SIZE);
	if (!buf) {
		errmsg("out of memory");
		err = 1;
		goto cleanup;
	}
	while (!done(rn)) {
		if (rn->deadline && now_ns() >= rn->deadline)
			break;
		if (device) {
			wake = rn->deadline;
			if (rn->s->tick > 0) {
				tick = now_ns() + (uint64_t)(rn->s->tick * 1e9);
				if (!wake || tick < wake)
					wake = tick;
			}
			ready = wait_readable(fd, wake, mask, &hup);
			if (ready < 0) {
				err = 1;
				goto cleanup;
			}
			if (!ready && !hup) {
				if (do_flush(rn)) {
					err = 1;
					goto cleanup;
				}
				continue;
			}
		}
		/* The device wants room for whole records. */
		room = (BUF_SIZE - have) & ~(size_t)(TCPTRACE_RECORD_SIZE - 1);
		n = read(fd, buf + have, room);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			if (errno == EBUSY && device)
				errmsg("%s is already being read by another process (one reader at a time)",
				       device_path());
			else
				errmsg("read %s: %s", device ? device_path() :
				       rn->s->path, strerror(errno));
			err = 1;
			goto cleanup;
		}
		if (n == 0) {
			/* A device read of 0 is no data, unless hung up. */
			if (device && !hup)
				continue;
			if (have) {
				errmsg("truncated record at input offset %llu: %zu of its bytes present",
				       (unsigned long long)rn->offset, have);
				err = 1;
			}
			break;
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
cleanup:
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
