// SPDX-License-Identifier: GPL-2.0
/*
 * The /dev/tcptrace ABI: ioctls, read() sizes and blocking, poll(), the
 * single opener, and the layout of every record of real connections.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "tcptrace_util.h"

#define PORT		5000
#define PARAM_SLOTS	"/sys/module/tcptrace/parameters/expect_slots"
#define PARAM_BUF	"/sys/module/tcptrace/parameters/buf_records"

static long read_long(const char *path)
{
	char buf[64] = "";
	long v = -1;
	FILE *f;

	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fgets(buf, sizeof(buf), f))
		v = strtol(buf, NULL, 0);
	fclose(f);
	return v;
}

static uint32_t roundup_pow2(uint32_t v)
{
	uint32_t p = 1;

	while (p < v)
		p <<= 1;
	return p;
}

/* Number of CPUs in a list like "0-3,5" (sysfs cpu lists). */
static int count_cpu_list(const char *path)
{
	char buf[256] = "", *p, *tok, *save = NULL;
	int n = 0;
	FILE *f;

	f = fopen(path, "r");
	if (!f)
		return -1;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	for (p = buf; (tok = strtok_r(p, ",\n", &save)); p = NULL) {
		int a, b;

		if (sscanf(tok, "%d-%d", &a, &b) == 2)
			n += b - a + 1;
		else
			n++;
	}
	return n;
}

/*
 * Empties the device: CLEAR, then checks a non-blocking read finds nothing.
 * Retries a few times in case traffic of the machine came in between.
 * Returns 0 when empty, else the last errno or -1.
 */
static int clear_quiet(int fd)
{
	struct tcptrace_record r;
	int flags = fcntl(fd, F_GETFL);
	int i, ret = -1;

	fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	for (i = 0; i < 10; i++) {
		if (tt_dev_clear(fd))
			break;
		if (read(fd, &r, sizeof(r)) < 0) {
			ret = errno == EAGAIN ? 0 : errno;
			break;
		}
		tt_msleep(100);
	}
	fcntl(fd, F_SETFL, flags);
	return ret;
}

FIXTURE(abi) {
	struct tt_case c;
};

FIXTURE_SETUP(abi)
{
	char err[256];

	ASSERT_EQ(0, tt_case_setup(&self->c, AF_INET, false, err,
				   sizeof(err)))
		TH_LOG("%s", err);
}

FIXTURE_TEARDOWN(abi)
{
	tt_case_teardown(&self->c, true);
}

TEST_F(abi, version)
{
	__u32 v = 0;

	ASSERT_EQ(0, ioctl(self->c.dev, TCPTRACE_IOC_VERSION, &v));
	ASSERT_EQ(TCPTRACE_ABI_VERSION, v);
}

TEST_F(abi, unknown_ioctl)
{
	__u64 big = 0;
	__u32 v = 0;

	errno = 0;
	ASSERT_EQ(-1, ioctl(self->c.dev, _IO(TCPTRACE_IOC_MAGIC, 0x7f)));
	ASSERT_EQ(ENOTTY, errno);
	errno = 0;
	ASSERT_EQ(-1, ioctl(self->c.dev, _IOR('T', 1, __u32), &v));
	ASSERT_EQ(ENOTTY, errno);
	/* the VERSION number with another size is another command */
	errno = 0;
	ASSERT_EQ(-1, ioctl(self->c.dev, _IOR(TCPTRACE_IOC_MAGIC, 1, __u64),
			    &big));
	ASSERT_EQ(ENOTTY, errno);
	/* and CLEAR with a direction */
	errno = 0;
	ASSERT_EQ(-1, ioctl(self->c.dev, _IOW(TCPTRACE_IOC_MAGIC, 3, __u32),
			    &v));
	ASSERT_EQ(ENOTTY, errno);
}

/* An address in the kernel's half: never the caller's memory. */
#define KERNEL_PTR	((void *)0xffffffff81000000UL)

/*
 * Every ioctl and read() given memory the caller cannot write fails with
 * EFAULT, and changes nothing: the counters stay, and queued records stay
 * queued.  CLEAR's reserved argument must be 0: EINVAL, nothing cleared.
 */
TEST_F(abi, bad_user_memory)
{
	struct tcptrace_stats before, st;
	struct tcptrace_record r;
	long page = sysconf(_SC_PAGESIZE);
	void *bad[3];
	char *map, *ro, *edge;
	size_t i, n;
	ssize_t got;
	__u32 v;

	/* two pages: the first writable, the second read-only */
	map = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, map);
	ro = map + page;
	ASSERT_EQ(0, mprotect(ro, page, PROT_READ));
	bad[0] = NULL;
	bad[1] = ro;
	bad[2] = KERNEL_PTR;

	ASSERT_EQ(0, tt_quick_conn(&self->c.env, PORT));
	ASSERT_EQ(0, tt_dev_stats(self->c.dev, &before));
	ASSERT_LT(2, before.queued);

	for (i = 0; i < 3; i++) {
		errno = 0;
		EXPECT_EQ(-1, ioctl(self->c.dev, TCPTRACE_IOC_VERSION, bad[i]));
		EXPECT_EQ(EFAULT, errno) TH_LOG("VERSION, pointer %zu", i);
		errno = 0;
		EXPECT_EQ(-1, ioctl(self->c.dev, TCPTRACE_IOC_STATS, bad[i]));
		EXPECT_EQ(EFAULT, errno) TH_LOG("STATS, pointer %zu", i);
		errno = 0;
		EXPECT_EQ(-1, read(self->c.dev, bad[i], sizeof(r)));
		EXPECT_EQ(EFAULT, errno) TH_LOG("read, pointer %zu", i);
	}
	/* a stats structure and a __u32 that run into the read-only page */
	errno = 0;
	EXPECT_EQ(-1, ioctl(self->c.dev, TCPTRACE_IOC_STATS,
			    ro - sizeof(st) / 2));
	EXPECT_EQ(EFAULT, errno);
	errno = 0;
	EXPECT_EQ(-1, ioctl(self->c.dev, TCPTRACE_IOC_VERSION, ro - 2));
	EXPECT_EQ(EFAULT, errno);
	/* a record whose second half would fall in the read-only page */
	errno = 0;
	EXPECT_EQ(-1, read(self->c.dev, ro - sizeof(r) / 2, sizeof(r)));
	EXPECT_EQ(EFAULT, errno);
	/* CLEAR with a non-zero argument */
	errno = 0;
	EXPECT_EQ(-1, ioctl(self->c.dev, TCPTRACE_IOC_CLEAR, 1UL));
	EXPECT_EQ(EINVAL, errno);
	errno = 0;
	EXPECT_EQ(-1, ioctl(self->c.dev, TCPTRACE_IOC_CLEAR, KERNEL_PTR));
	EXPECT_EQ(EINVAL, errno);

	/* nothing changed */
	ASSERT_EQ(0, tt_dev_stats(self->c.dev, &st));
	EXPECT_EQ(before.events, st.events);
	EXPECT_EQ(before.drops, st.drops);
	EXPECT_EQ(before.queued, st.queued);
	EXPECT_EQ(0, memcmp(before.per_type, st.per_type,
			    sizeof(st.per_type)));
	ASSERT_EQ(0, ioctl(self->c.dev, TCPTRACE_IOC_VERSION, &v));
	EXPECT_EQ(TCPTRACE_ABI_VERSION, v);

	/*
	 * Room for one record before the read-only page and a count of two:
	 * the first is copied and returned, the second stays queued.
	 */
	edge = ro - sizeof(r);
	got = read(self->c.dev, edge, 2 * sizeof(r));
	ASSERT_EQ((ssize_t)sizeof(r), got);
	ASSERT_EQ(sizeof(r), ((struct tcptrace_record *)edge)->len);
	ASSERT_EQ(0, tt_dev_stats(self->c.dev, &st));
	EXPECT_EQ(before.queued - 1, st.queued);
	EXPECT_EQ(before.events, st.events);

	/* and every other record is still there, in order */
	ASSERT_EQ(0, fcntl(self->c.dev, F_SETFL, O_NONBLOCK));
	for (n = 0; read(self->c.dev, &r, sizeof(r)) == sizeof(r); n++)
		;
	EXPECT_EQ(EAGAIN, errno);
	EXPECT_EQ(before.queued - 1, n);
	munmap(map, 2 * page);
}

TEST_F(abi, stats)
{
	struct tcptrace_stats st;
	long param = read_long(PARAM_BUF);
	int possible = count_cpu_list("/sys/devices/system/cpu/possible");
	int online = count_cpu_list("/sys/devices/system/cpu/online");
	size_t i;

	ASSERT_LT(0, param) TH_LOG("cannot read " PARAM_BUF);
	ASSERT_EQ(0, tt_dev_stats(self->c.dev, &st));
	ASSERT_EQ(sizeof(st), st.size);
	ASSERT_EQ(TCPTRACE_ABI_VERSION, st.abi_version);
	ASSERT_EQ(roundup_pow2(param), st.ring_records);
	ASSERT_LE(online, (int)st.nr_cpus);
	ASSERT_GE(possible, (int)st.nr_cpus);
	for (i = 0; i < sizeof(st.reserved) / sizeof(st.reserved[0]); i++) {
		ASSERT_EQ(0, st.reserved[i]);
	}
	/* no type 0 nor beyond TCPTRACE_T_MAX */
	ASSERT_EQ(0, st.per_type[0]);
	for (i = TCPTRACE_T_MAX; i < 16; i++) {
		ASSERT_EQ(0, st.per_type[i]);
	}
	ASSERT_GE(st.ring_records * st.nr_cpus, st.queued);
	/* the memory, fixed at load and bounded by the parameters */
	ASSERT_EQ((__u64)st.nr_cpus * st.ring_records * TCPTRACE_RECORD_SIZE,
		  st.ring_bytes);
	ASSERT_EQ(roundup_pow2(read_long(PARAM_SLOTS)), st.expect_slots);
	ASSERT_EQ(st.expect_slots * 8, st.expect_bytes);
	ASSERT_GE(st.expect_slots, st.expect_used);
}

TEST_F(abi, clear)
{
	struct tcptrace_stats st;
	struct tcptrace_record r;
	size_t i;

	ASSERT_EQ(0, tt_quick_conn(&self->c.env, PORT));
	ASSERT_EQ(0, tt_dev_stats(self->c.dev, &st));
	ASSERT_LT(0, st.events);
	ASSERT_LT(0, st.queued);
	ASSERT_LT(0, st.per_type[TCPTRACE_T_PACKET]);
	ASSERT_LT(0, st.per_type[TCPTRACE_T_STATE]);

	ASSERT_EQ(0, tt_dev_clear(self->c.dev));
	ASSERT_EQ(0, tt_dev_stats(self->c.dev, &st));
	ASSERT_EQ(0, st.events);
	ASSERT_EQ(0, st.drops);
	ASSERT_EQ(0, st.queued);
	for (i = 0; i < 16; i++) {
		ASSERT_EQ(0, st.per_type[i]);
	}
	ASSERT_EQ(0, fcntl(self->c.dev, F_SETFL, O_NONBLOCK));
	ASSERT_EQ(-1, read(self->c.dev, &r, sizeof(r)));
	ASSERT_EQ(EAGAIN, errno);
}

TEST_F(abi, short_read)
{
	struct tcptrace_record r[2];
	struct tt_recs recs = { 0 }, ours = { 0 };
	int lfd;

	ASSERT_EQ(0, clear_quiet(self->c.dev));
	/* three records: CLOSE->LISTEN, LISTEN->CLOSE, DESTROY */
	lfd = tt_listen(&self->c.env, PORT);
	ASSERT_LE(0, lfd);
	close(lfd);

	errno = 0;
	ASSERT_EQ(-1, read(self->c.dev, r, TCPTRACE_RECORD_SIZE - 1));
	ASSERT_EQ(EINVAL, errno);
	errno = 0;
	ASSERT_EQ(-1, read(self->c.dev, r, 1));
	ASSERT_EQ(EINVAL, errno);
	/* whole records only: 200 bytes give one */
	ASSERT_EQ(TCPTRACE_RECORD_SIZE, read(self->c.dev, r, 200));
	ASSERT_EQ(0, tt_recs_push(&recs, &r[0]));
	ASSERT_EQ(0, tt_collect(self->c.dev, &recs, 300, 5000));
	tt_recs_select_netns(&recs, &ours, self->c.env.c_ino, 0);
	/* the failed reads consumed nothing */
	ASSERT_EQ(3, ours.n);
	ASSERT_EQ(TCPTRACE_T_STATE, ours.r[0].type);
	ASSERT_EQ(TT_CLOSE, ours.r[0].state.old_state);
	ASSERT_EQ(TT_LISTEN, ours.r[0].state.new_state);
	ASSERT_EQ(TCPTRACE_T_STATE, ours.r[1].type);
	ASSERT_EQ(TT_LISTEN, ours.r[1].state.old_state);
	ASSERT_EQ(TT_CLOSE, ours.r[1].state.new_state);
	ASSERT_EQ(TCPTRACE_T_DESTROY, ours.r[2].type);
	ASSERT_EQ(ours.r[0].sock_id, ours.r[1].sock_id);
	ASSERT_EQ(ours.r[0].sock_id, ours.r[2].sock_id);
	tt_recs_free(&recs);
	tt_recs_free(&ours);
}

TEST_F(abi, nonblock_empty)
{
	struct tcptrace_record r;
	struct pollfd pfd = { .fd = self->c.dev, .events = POLLIN };

	ASSERT_EQ(0, clear_quiet(self->c.dev));
	close(self->c.dev);
	self->c.dev = tt_dev_open(O_RDONLY | O_NONBLOCK);
	ASSERT_LE(0, self->c.dev);
	errno = 0;
	ASSERT_EQ(-1, read(self->c.dev, &r, sizeof(r)));
	ASSERT_EQ(EAGAIN, errno);
	ASSERT_EQ(0, poll(&pfd, 1, 0));
}

/*
 * One reader at a time: any number of opens, the first file to read() is
 * the reader until closed; read() elsewhere is EBUSY and poll() EPOLLERR,
 * while the ioctls work on every open file.
 */
TEST_F(abi, one_reader)
{
	struct pollfd pfd = { .events = POLLIN };
	char buf[TCPTRACE_RECORD_SIZE];
	struct tcptrace_stats st;
	__u32 version = 0;
	int a, b, c;

	ASSERT_EQ(0, clear_quiet(self->c.dev));
	/* self->c.dev read last: it is the reader until it is closed */
	a = tt_dev_open(O_RDONLY | O_NONBLOCK);
	ASSERT_LE(0, a);
	ASSERT_EQ(-1, read(a, buf, sizeof(buf)));
	ASSERT_EQ(EBUSY, errno);
	close(self->c.dev);
	self->c.dev = -1;

	/* any number of opens; the ioctls work on each */
	b = tt_dev_open(O_RDONLY | O_NONBLOCK);
	ASSERT_LE(0, b);
	ASSERT_EQ(0, ioctl(b, TCPTRACE_IOC_VERSION, &version));
	ASSERT_EQ(TCPTRACE_ABI_VERSION, version);
	ASSERT_EQ(0, ioctl(b, TCPTRACE_IOC_STATS, &st));

	/* the first to read becomes the reader: here b */
	ASSERT_EQ(-1, read(b, buf, sizeof(buf)));
	ASSERT_EQ(EAGAIN, errno);
	ASSERT_EQ(-1, read(a, buf, sizeof(buf)));
	ASSERT_EQ(EBUSY, errno);
	pfd.fd = a;
	ASSERT_EQ(1, poll(&pfd, 1, 0));
	ASSERT_EQ(POLLERR, pfd.revents & (POLLIN | POLLERR));
	ASSERT_EQ(0, ioctl(a, TCPTRACE_IOC_STATS, &st));
	ASSERT_EQ(0, ioctl(a, TCPTRACE_IOC_CLEAR, 0UL));

	/* closing the reader frees the place for a */
	close(b);
	pfd.revents = 0;
	ASSERT_EQ(0, poll(&pfd, 1, 0));
	ASSERT_EQ(0, tt_quick_conn(&self->c.env, PORT));
	ASSERT_EQ(1, poll(&pfd, 1, 2000));
	ASSERT_EQ(POLLIN, pfd.revents & (POLLIN | POLLERR));
	ASSERT_EQ((ssize_t)sizeof(buf), read(a, buf, sizeof(buf)));
	c = tt_dev_open(O_RDONLY | O_NONBLOCK);
	ASSERT_LE(0, c);
	ASSERT_EQ(-1, read(c, buf, sizeof(buf)));
	ASSERT_EQ(EBUSY, errno);
	close(c);
	self->c.dev = a;
}

TEST_F(abi, poll_readable)
{
	struct pollfd pfd = { .fd = self->c.dev, .events = POLLIN };

	ASSERT_EQ(0, clear_quiet(self->c.dev));
	ASSERT_EQ(0, poll(&pfd, 1, 0));
	ASSERT_EQ(0, tt_quick_conn(&self->c.env, PORT));
	pfd.revents = 0;
	ASSERT_EQ(1, poll(&pfd, 1, 2000));
	ASSERT_EQ(POLLIN, pfd.revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL));
}

/*
 * A child that makes one connection 300 ms from now, exiting 0 when it
 * could: the first records come to a device the test already waits on.
 */
static pid_t late_conn(const struct tt_env *env)
{
	pid_t pid = fork();

	if (pid == 0) {
		tt_msleep(300);
		_exit(tt_quick_conn(env, PORT) ? 1 : 0);
	}
	return pid;
}

/* poll() sleeping when the first record comes */
TEST_F(abi, poll_wakeup)
{
	struct pollfd pfd = { .fd = self->c.dev, .events = POLLIN };
	uint64_t t0;
	pid_t pid;
	int status;

	ASSERT_EQ(0, clear_quiet(self->c.dev));
	pid = late_conn(&self->c.env);
	ASSERT_LE(0, pid);
	t0 = tt_now_ns();
	ASSERT_EQ(1, poll(&pfd, 1, 5000));
	ASSERT_LE(200000000ull, tt_now_ns() - t0);
	ASSERT_NE(0, pfd.revents & POLLIN);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(0, status);
}

/* a blocking read() sleeps until a record comes */
TEST_F(abi, blocking_read)
{
	static struct tcptrace_record r[64];
	uint64_t t0;
	ssize_t n;
	pid_t pid;
	int status;

	ASSERT_EQ(0, clear_quiet(self->c.dev));
	pid = late_conn(&self->c.env);
	ASSERT_LE(0, pid);
	t0 = tt_now_ns();
	n = read(self->c.dev, r, sizeof(r));
	ASSERT_LT(0, n);
	ASSERT_EQ(0, n % TCPTRACE_RECORD_SIZE);
	ASSERT_LE(200000000ull, tt_now_ns() - t0);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(0, status);
}

/* A blocked reader is woken by a signal: EINTR (or a restart) */
static void on_alarm(int sig)
{
	(void)sig;
}

TEST_F(abi, blocking_read_signal)
{
	struct sigaction sa = { .sa_handler = on_alarm };
	struct tcptrace_record r;
	pid_t parent = getpid(), pid;

	ASSERT_EQ(0, clear_quiet(self->c.dev));
	ASSERT_EQ(0, sigaction(SIGUSR1, &sa, NULL));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		tt_msleep(300);
		kill(parent, SIGUSR1);
		_exit(0);
	}
	errno = 0;
	ASSERT_EQ(-1, read(self->c.dev, &r, sizeof(r)));
	ASSERT_EQ(EINTR, errno);
	waitpid(pid, NULL, 0);
}

/*
 * POLLPRI: a ring at least a quarter full.  None on an empty device, nor
 * with a few records queued (POLLIN then); with every connection made
 * from CPU 0, it comes once the rings hold a quarter of one in all (not
 * before: one ring at the mark holds that many) and at the latest when
 * they hold a quarter of each (then one of them is at the mark).
 *
 * This test and the next make some sixty connections each, whose
 * timewait sockets end (and are recorded) while the fixture's namespaces
 * are taken down, after the test: they come last, so that no test that
 * needs a quiet device follows them.
 */
TEST_F(abi, poll_pri_mark)
{
	struct pollfd pfd = { .fd = self->c.dev, .events = POLLIN | POLLPRI };
	struct tcptrace_stats st;
	__u64 mark, before = 0;
	int i;

	ASSERT_EQ(0, tt_pin_cpu(0));
	ASSERT_EQ(0, clear_quiet(self->c.dev));
	ASSERT_EQ(0, tt_dev_stats(self->c.dev, &st));
	mark = st.ring_records / 4;
	ASSERT_EQ(0, poll(&pfd, 1, 0));
	ASSERT_EQ(0, tt_quick_conn(&self->c.env, PORT));
	ASSERT_EQ(1, poll(&pfd, 1, 0));
	ASSERT_EQ(POLLIN, pfd.revents);
	/* a connection makes well over 5 records */
	for (i = 0; i < (int)(st.nr_cpus * mark / 5); i++) {
		ASSERT_EQ(0, tt_dev_stats(self->c.dev, &st));
		before = st.queued;
		ASSERT_EQ(1, poll(&pfd, 1, 0));
		if (pfd.revents & POLLPRI)
			break;
		ASSERT_GT(st.nr_cpus * mark, before)
			TH_LOG("%llu queued, no POLLPRI", (unsigned long long)before);
		ASSERT_EQ(0, tt_quick_conn(&self->c.env, PORT));
	}
	ASSERT_EQ(POLLIN | POLLPRI, pfd.revents);
	ASSERT_EQ(0, tt_dev_stats(self->c.dev, &st));
	ASSERT_LE(mark, st.queued);
	ASSERT_EQ(0, st.drops);
	TH_LOG("POLLPRI with %llu-%llu records queued, mark %llu",
	       (unsigned long long)before, (unsigned long long)st.queued,
	       (unsigned long long)mark);
}

/*
 * A poll() for POLLPRI alone sleeps through the first records (the ones
 * that wake a POLLIN poll()) and wakes when a ring reaches the mark.
 */
TEST_F(abi, poll_pri_wakeup)
{
	struct pollfd pfd = { .fd = self->c.dev, .events = POLLPRI };
	struct tcptrace_stats st;
	uint64_t t0;
	int status, i;
	pid_t pid;

	ASSERT_EQ(0, tt_pin_cpu(0));
	ASSERT_EQ(0, clear_quiet(self->c.dev));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		tt_msleep(300);
		/* until killed, or far past the mark */
		for (i = 0; i < 100000; i++)
			if (tt_quick_conn(&self->c.env, PORT))
				_exit(1);
		_exit(2);
	}
	t0 = tt_now_ns();
	ASSERT_EQ(1, poll(&pfd, 1, 60000));
	ASSERT_EQ(0, tt_dev_stats(self->c.dev, &st));
	kill(pid, SIGKILL);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFSIGNALED(status)) TH_LOG("child exit %d", status);
	ASSERT_EQ(POLLPRI, pfd.revents);
	ASSERT_LE(300000000ull, tt_now_ns() - t0);
	ASSERT_LE(st.ring_records / 4, st.queued);
	TH_LOG("woken with %llu records queued, mark %u",
	       (unsigned long long)st.queued, st.ring_records / 4);
}

FIXTURE(records) {
	struct tt_case c;
};

TT_VETH_VARIANTS(records);
TT_LO_VARIANTS(records);

FIXTURE_SETUP(records)
{
	char err[256];

	ASSERT_EQ(0, tt_case_setup(&self->c, variant->family, variant->veth,
				   err, sizeof(err)))
		TH_LOG("%s", err);
}

/* On failure, every record read: they all belong to the test. */
FIXTURE_TEARDOWN(records)
{
	if (!_metadata->passed)
		tt_dump(stderr, "records read", &self->c.all);
	tt_case_teardown(&self->c, true);
}

/*
 * Every record of connections (handshake, data, teardown) and of a refused
 * one: the fixed header, zeroed reserved fields and unused union bytes,
 * non-decreasing CLOCK_MONOTONIC timestamps, and counters that agree with
 * what was read.
 */
TEST_F(records, wellformed)
{
	int ncpu = (int)sysconf(_SC_NPROCESSORS_CONF);
	struct tcptrace_stats before, after;
	uint64_t per_type[16] = { 0 };
	size_t i, ours = 0, try;
	uint64_t t0, t1;
	int err, fd;

	for (try = 0; try < 5; try++) {
		tt_recs_free(&self->c.all);
		memset(per_type, 0, sizeof(per_type));
		ours = 0;
		ASSERT_EQ(0, clear_quiet(self->c.dev));
		t0 = tt_now_ns();
		ASSERT_EQ(0, tt_quick_conn(&self->c.env, PORT));
		ASSERT_EQ(0, tt_quick_conn(&self->c.env, PORT + 1));
		fd = tt_connect(&self->c.env, PORT + 2, &err);
		ASSERT_LE(0, fd);
		ASSERT_EQ(ECONNREFUSED, err);
		close(fd);
		tt_msleep(300);
		ASSERT_EQ(0, tt_dev_stats(self->c.dev, &before));
		ASSERT_EQ(0, tt_collect(self->c.dev, &self->c.all, 300, 10000));
		t1 = tt_now_ns();
		ASSERT_EQ(0, tt_dev_stats(self->c.dev, &after));
		/* something else of the machine wrote records meanwhile */
		if (after.events != before.events)
			continue;
		break;
	}
	ASSERT_EQ(after.events, before.events);
	ASSERT_EQ(0, before.drops);
	ASSERT_EQ(0, after.queued);
	ASSERT_EQ(self->c.all.n, before.queued);
	ASSERT_EQ(self->c.all.n, before.events);

	for (i = 0; i < self->c.all.n; i++) {
		const struct tcptrace_record *r = &self->c.all.r[i];
		const char *p = tt_record_problem(r);
		char line[512];

		tt_format(r, line, sizeof(line));
		ASSERT_EQ(NULL, p) TH_LOG("record %zu: %s: %s", i, p, line);
		ASSERT_EQ(TCPTRACE_RECORD_SIZE, r->len);
		ASSERT_EQ(TCPTRACE_RECORD_VERSION, r->version);
		ASSERT_GT(ncpu, r->cpu);
		ASSERT_LE(t0, r->ts_ns) TH_LOG("record %zu: %s", i, line);
		ASSERT_GE(t1, r->ts_ns) TH_LOG("record %zu: %s", i, line);
		if (i) {
			ASSERT_LE(self->c.all.r[i - 1].ts_ns, r->ts_ns)
				TH_LOG("timestamps go back at record %zu", i);
		}
		per_type[r->type]++;
		if (r->netns == self->c.env.c_ino ||
		    r->netns == self->c.env.s_ino)
			ours++;
		if (r->type != TCPTRACE_T_LOST) {
			ASSERT_EQ(self->c.env.family, r->family);
		}
	}
	/* the connections above are all there is */
	ASSERT_EQ(self->c.all.n, ours);
	for (i = 0; i < 16; i++) {
		ASSERT_EQ(per_type[i], before.per_type[i])
			TH_LOG("per_type[%zu] (%s)", i, tt_type_name(i));
	}
	ASSERT_EQ(0, per_type[TCPTRACE_T_LOST]);
	/*
	 * Each connection: one TIMEWAIT (the client closed first) and three
	 * sockets destroyed (listener, client, accepted); the refused one:
	 * one RESET_RECEIVED and one DESTROY.
	 */
	ASSERT_EQ(2, per_type[TCPTRACE_T_TIMEWAIT]);
	ASSERT_EQ(1, per_type[TCPTRACE_T_RESET_RECEIVED]);
	ASSERT_EQ(2 * 3 + 1, per_type[TCPTRACE_T_DESTROY]);
	ASSERT_EQ(0, per_type[TCPTRACE_T_RESET_SENT]);
	ASSERT_EQ(0, per_type[TCPTRACE_T_RETRANSMIT]);
	ASSERT_EQ(0, per_type[TCPTRACE_T_SYNACK_RETRANSMIT]);
}

TEST_HARNESS_MAIN
