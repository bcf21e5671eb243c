// SPDX-License-Identifier: GPL-2.0
/*
 * LD_PRELOAD shim for the host tests: when TCPTRACE_DEVICE names a FIFO,
 * the tcptrace ioctls on it are answered here, so that the device code
 * paths of tcptracectl (open, ABI check, poll, read, stats, clear) run
 * without the module.
 *
 *   TCPTRACE_FAKE_ABI   ABI version to report (default TCPTRACE_ABI_VERSION)
 *   TCPTRACE_FAKE_LOG   file to which "clear" is appended on CLEAR, and
 *                       "ppoll EVENTS" (in hex) for each ppoll() that
 *                       waits on the device
 *
 * STATS reports fixed values: see the test for what it expects.
 */
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tcptrace.h"

int ioctl(int fd, unsigned long req, ...);

int ioctl(int fd, unsigned long req, ...)
{
	static int (*real_ioctl)(int, unsigned long, ...);
	struct tcptrace_stats *s;
	const char *env;
	struct stat st;
	void *arg;
	va_list ap;
	FILE *log;
	int i;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);

	if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode)) {
		switch (req) {
		case TCPTRACE_IOC_VERSION:
			env = getenv("TCPTRACE_FAKE_ABI");
			*(__u32 *)arg = env ? (__u32)atoi(env) :
				TCPTRACE_ABI_VERSION;
			return 0;
		case TCPTRACE_IOC_STATS:
			s = arg;
			memset(s, 0, sizeof(*s));
			s->size = sizeof(*s);
			s->abi_version = TCPTRACE_ABI_VERSION;
			s->nr_cpus = 4;
			s->ring_records = 4096;
			s->events = 1234;
			s->drops = 5;
			s->malformed = 6;
			s->expect_evictions = 7;
			s->queued = 8;
			s->ring_bytes = 2097152;
			s->expect_slots = 16384;
			s->expect_bytes = 131072;
			s->expect_used = 9;
			for (i = 1; i < TCPTRACE_T_MAX; i++)
				s->per_type[i] = 100 + i;
			s->per_type[12] = 3;
			return 0;
		case TCPTRACE_IOC_CLEAR:
			/* as the module: the argument must be 0 */
			if (arg) {
				errno = EINVAL;
				return -1;
			}
			env = getenv("TCPTRACE_FAKE_LOG");
			if (env) {
				log = fopen(env, "a");
				if (log) {
					fputs("clear\n", log);
					fclose(log);
				}
			}
			return 0;
		}
	}
	if (!real_ioctl)
		real_ioctl = (int (*)(int, unsigned long, ...))
			dlsym(RTLD_NEXT, "ioctl");
	return real_ioctl(fd, req, arg);
}

int ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
	  const sigset_t *sigmask)
{
	static int (*real_ppoll)(struct pollfd *, nfds_t,
				 const struct timespec *, const sigset_t *);
	const char *log_path = getenv("TCPTRACE_FAKE_LOG");
	const char *dev = getenv("TCPTRACE_DEVICE");
	struct stat st, dst;
	FILE *log;
	nfds_t i;

	if (log_path && dev && stat(dev, &dst) == 0) {
		for (i = 0; i < nfds; i++) {
			if (fds[i].fd < 0 || fstat(fds[i].fd, &st) ||
			    st.st_dev != dst.st_dev || st.st_ino != dst.st_ino)
				continue;
			log = fopen(log_path, "a");
			if (log) {
				fprintf(log, "ppoll %#x\n",
					(unsigned int)fds[i].events);
				fclose(log);
			}
		}
	}
	if (!real_ppoll)
		real_ppoll = (int (*)(struct pollfd *, nfds_t,
				      const struct timespec *,
				      const sigset_t *))
			dlsym(RTLD_NEXT, "ppoll");
	return real_ppoll(fds, nfds, timeout, sigmask);
}
