// SPDX-License-Identifier: GPL-2.0
/*
 * Ring overflow: with buf_records=16, connections made without reading
 * overflow the ring.  The reader then gets LOST records whose counts add up
 * to stats.drops exactly, and well-formed records around them.
 *
 * slow_reader: the rings overflow for TCPTRACE_OVERFLOW_SECS seconds
 * (default 20; make stress: 180) under connections made as fast as they go
 * on every CPU, while a reader takes one to four records at a time and
 * sleeps between reads.  Every record it gets is well-formed and, per
 * type, exactly what the module counted; the LOST records' counts add up
 * to the drops exactly: records received + lost == records produced.
 *
 * The tests reload the module (rmmod, insmod $TCPTRACE_KO buf_records=16)
 * and restore it with default parameters afterwards.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "tcptrace_util.h"

#define PORT		5000
#define CLOSED_PORT	5001
#define RING		16
#define FLOOD_CONNS	40
/* slow_reader: its ports (one per CPU), run time and pace */
#define SLOW_PORT	5100
#define SLOW_SECS	20
#define SLOW_MAX_SECS	3000
#define SLOW_PAUSE_US	5000
#define MAX_CPUS	64

FIXTURE(overflow) {
	struct tt_env env;
	int dev;
	char ko[PATH_MAX];
	bool reloaded;
	struct tt_recs recs;
};

FIXTURE_SETUP(overflow)
{
	char err[256];

	self->dev = -1;
	tt_module_path(self->ko, sizeof(self->ko));
	ASSERT_EQ(0, access(self->ko, R_OK))
		TH_LOG("%s: %s (set TCPTRACE_KO)", self->ko, strerror(errno));
	tt_run("rmmod tcptrace 2>/dev/null");
	self->reloaded = true;
	ASSERT_EQ(0, tt_run("insmod %s buf_records=%d", self->ko, RING));
	self->dev = tt_dev_open(O_RDONLY);
	ASSERT_LE(0, self->dev);
	ASSERT_EQ(0, tt_env_setup(&self->env, AF_INET, false, err,
				  sizeof(err)))
		TH_LOG("%s", err);
}

FIXTURE_TEARDOWN(overflow)
{
	if (!_metadata->passed)
		tt_dump(stderr, "records read", &self->recs);
	tt_recs_free(&self->recs);
	tt_env_cleanup(&self->env);
	if (self->dev >= 0)
		close(self->dev);
	if (self->reloaded) {
		tt_run("rmmod tcptrace");
		if (tt_run("insmod %s", self->ko))
			fprintf(stderr, "# could not load %s again\n",
				self->ko);
	}
}

/* Connections as fast as possible, none of their records read. */
static int flood(const struct tt_env *env)
{
	char buf[8] = "x";
	int lfd, i, ret = 0;

	lfd = tt_listen(env, PORT);
	if (lfd < 0)
		return lfd;
	for (i = 0; i < FLOOD_CONNS && !ret; i++) {
		int cfd, afd, err;

		cfd = tt_connect(env, PORT, &err);
		if (cfd < 0)
			return cfd;
		if (err) {
			close(cfd);
			ret = -err;
			break;
		}
		afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (afd < 0) {
			ret = -errno;
		} else {
			if (tt_send_all(cfd, buf, 1) != 1 ||
			    tt_recv_all(afd, buf, 1) != 1)
				ret = -EIO;
			close(afd);
		}
		close(cfd);
	}
	close(lfd);
	return ret;
}

TEST_F_TIMEOUT(overflow, lost_records, 120)
{
	struct tcptrace_stats s1, s2;
	uint64_t lost_sum = 0, n_lost = 0, n_after_lost = 0;
	int ncpu = tt_nr_cpus_online(), cpu, lfd;
	size_t i;

	ASSERT_EQ(0, tt_dev_stats(self->dev, &s1));
	ASSERT_EQ(RING, s1.ring_records);
	ASSERT_EQ(0, tt_dev_clear(self->dev));

	/* the flood on one CPU, so its ring overflows for sure */
	ASSERT_EQ(0, tt_pin_cpu(0));
	ASSERT_EQ(0, flood(&self->env));
	tt_msleep(500);		/* delayed ACKs and FINs settle */

	ASSERT_EQ(0, tt_dev_stats(self->dev, &s1));
	/* each connection makes about 20 records */
	ASSERT_LT(FLOOD_CONNS * 10, s1.drops);
	ASSERT_GE(RING * s1.nr_cpus, s1.queued);

	ASSERT_EQ(0, tt_collect(self->dev, &self->recs, 300, 10000));
	/*
	 * A few records on every CPU, so that any LOST still pending is
	 * written: CLOSE->LISTEN, LISTEN->CLOSE, DESTROY.
	 */
	for (cpu = 0; cpu < ncpu; cpu++) {
		ASSERT_EQ(0, tt_pin_cpu(cpu));
		lfd = tt_listen(&self->env, CLOSED_PORT);
		ASSERT_LE(0, lfd);
		close(lfd);
	}
	ASSERT_EQ(0, tt_collect(self->dev, &self->recs, 300, 10000));
	ASSERT_EQ(0, tt_dev_stats(self->dev, &s2));

	/* no drops while reading; everything written was read */
	ASSERT_EQ(s1.drops, s2.drops);
	ASSERT_EQ(0, s2.queued);
	ASSERT_EQ(s2.events, self->recs.n);

	for (i = 0; i < self->recs.n; i++) {
		const struct tcptrace_record *r = &self->recs.r[i];
		const char *p = tt_record_problem(r);
		char line[512];

		tt_format(r, line, sizeof(line));
		ASSERT_EQ(NULL, p) TH_LOG("record %zu: %s: %s", i, p, line);
		if (i) {
			ASSERT_LE(self->recs.r[i - 1].ts_ns, r->ts_ns)
				TH_LOG("timestamps go back at record %zu", i);
		}
		if (r->type == TCPTRACE_T_LOST) {
			n_lost++;
			lost_sum += r->lost.count;
			if (i + 1 < self->recs.n)
				n_after_lost++;
		}
	}
	ASSERT_LE(1, n_lost);
	ASSERT_LE(1, n_after_lost);
	ASSERT_EQ(s2.drops, lost_sum);
	ASSERT_EQ(n_lost, s2.per_type[TCPTRACE_T_LOST]);
	/* the last records are the listeners' of the loop above */
	ASSERT_LE(3, self->recs.n);
	ASSERT_EQ(TCPTRACE_T_DESTROY, self->recs.r[self->recs.n - 1].type);
	ASSERT_EQ(CLOSED_PORT, self->recs.r[self->recs.n - 1].sport);
}

/*
 * Connections on CPU @cpu until killed: listen once, then connect,
 * accept, one byte, and an abortive close (SO_LINGER 0) by the client, so
 * that no TIME_WAIT socket is left to make records after the flood.
 */
static void __attribute__((noreturn))
slow_flood(const struct tt_env *env, int cpu)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	uint16_t port = SLOW_PORT + cpu;
	char buf[1] = "x";
	int lfd;

	/* ends with the test, whichever way the test ends */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) || tt_pin_cpu(cpu))
		_exit(2);
	lfd = tt_listen(env, port);
	if (lfd < 0)
		_exit(3);
	for (;;) {
		int cfd, afd, err;

		cfd = tt_connect(env, port, &err);
		if (cfd < 0 || err)
			_exit(4);
		afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (afd < 0 || tt_send_all(cfd, buf, 1) != 1 ||
		    tt_recv_all(afd, buf, 1) != 1)
			_exit(5);
		setsockopt(cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(cfd);
		close(afd);
	}
}

struct slow_count {
	uint64_t recs;
	uint64_t per_type[16];
	uint64_t lost_sum;
	uint64_t last_ts;
	uint64_t bad;
	char bad_line[512];
};

/* Accounts the @n records of @buf. */
static void slow_account(struct slow_count *sc,
			 const struct tcptrace_record *buf, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const struct tcptrace_record *r = &buf[i];
		const char *p = tt_record_problem(r);

		sc->recs++;
		if (!p && r->type >= 16)
			p = "type out of range";
		/*
		 * A LOST record written at the end of a read carries the
		 * time of that read, which records read later may precede.
		 */
		if (!p && r->type != TCPTRACE_T_LOST) {
			if (r->ts_ns < sc->last_ts)
				p = "timestamp goes back";
			sc->last_ts = r->ts_ns;
		}
		if (p) {
			if (!sc->bad++) {
				int len = snprintf(sc->bad_line,
						   sizeof(sc->bad_line),
						   "record %llu: %s: ",
						   (unsigned long long)sc->recs,
						   p);

				tt_format(r, sc->bad_line + len,
					  sizeof(sc->bad_line) - len);
			}
			continue;
		}
		sc->per_type[r->type]++;
		if (r->type == TCPTRACE_T_LOST)
			sc->lost_sum += r->lost.count;
	}
}

TEST_F_TIMEOUT(overflow, slow_reader, SLOW_MAX_SECS + 300)
{
	static struct tcptrace_record buf[256];
	const char *env_secs = getenv("TCPTRACE_OVERFLOW_SECS");
	int secs = env_secs ? atoi(env_secs) : SLOW_SECS;
	int ncpu = tt_nr_cpus_online(), cpu, i, flags, quarter = 0;
	uint64_t drops_at[5] = { 0 }, start, end, now, next_q;
	struct slow_count sc = { 0 };
	struct tcptrace_stats st;
	pid_t pids[MAX_CPUS];
	unsigned int nread = 0;
	uint64_t produced;
	ssize_t n;

	ASSERT_LT(0, secs);
	ASSERT_GE(SLOW_MAX_SECS, secs);
	ASSERT_GE(MAX_CPUS, ncpu);
	ASSERT_EQ(0, tt_dev_clear(self->dev));

	for (cpu = 0; cpu < ncpu; cpu++) {
		pids[cpu] = fork();
		ASSERT_LE(0, pids[cpu]);
		if (!pids[cpu])
			slow_flood(&self->env, cpu);
	}

	/* the slow reader: 1 to 4 records per read, a pause after each */
	start = tt_now_ns();
	end = start + (uint64_t)secs * 1000000000;
	next_q = start + (end - start) / 4;
	for (now = start; now < end; now = tt_now_ns()) {
		struct timespec pause = { 0, SLOW_PAUSE_US * 1000 };

		n = read(self->dev, buf, (1 + nread++ % 4) * sizeof(buf[0]));
		ASSERT_LT(0, n) TH_LOG("read: %s", strerror(errno));
		ASSERT_EQ(0, n % TCPTRACE_RECORD_SIZE);
		slow_account(&sc, buf, n / TCPTRACE_RECORD_SIZE);
		if (now >= next_q && quarter < 4) {
			ASSERT_EQ(0, tt_dev_stats(self->dev, &st));
			drops_at[++quarter] = st.drops;
			next_q += (end - start) / 4;
		}
		nanosleep(&pause, NULL);
	}
	for (cpu = 0; cpu < ncpu; cpu++) {
		int status;

		/* a flood that ended by itself failed */
		ASSERT_EQ(0, waitpid(pids[cpu], &status, WNOHANG))
			TH_LOG("the flood on CPU %d ended: status %#x", cpu,
			       status);
		kill(pids[cpu], SIGKILL);
		ASSERT_EQ(pids[cpu], waitpid(pids[cpu], &status, 0));
	}
	ASSERT_EQ(0, tt_dev_stats(self->dev, &st));
	drops_at[4] = st.drops;

	/* the last packets settle, then everything left is read */
	tt_msleep(1000);
	flags = fcntl(self->dev, F_GETFL);
	ASSERT_EQ(0, fcntl(self->dev, F_SETFL, flags | O_NONBLOCK));
	while ((n = read(self->dev, buf, sizeof(buf))) > 0)
		slow_account(&sc, buf, n / TCPTRACE_RECORD_SIZE);
	ASSERT_EQ(EAGAIN, errno);
	ASSERT_EQ(0, tt_dev_stats(self->dev, &st));

	produced = st.events - st.per_type[TCPTRACE_T_LOST] + st.drops;
	fprintf(stderr,
		"# slow reader, %d s, %d CPUs: %llu records produced, %llu received (%llu LOST records), %llu lost (drops %llu), %u reads\n",
		secs, ncpu, (unsigned long long)produced,
		(unsigned long long)sc.recs,
		(unsigned long long)sc.per_type[TCPTRACE_T_LOST],
		(unsigned long long)sc.lost_sum,
		(unsigned long long)st.drops, nread);
	ASSERT_EQ(0, sc.bad) TH_LOG("%llu bad records; the first: %s",
				    (unsigned long long)sc.bad, sc.bad_line);
	/* it overflowed all along: drops in each quarter of the run */
	for (i = 1; i <= 4; i++)
		ASSERT_LT(drops_at[i - 1], drops_at[i])
			TH_LOG("no drop in quarter %d of the run", i);
	ASSERT_EQ(0, st.queued);
	/* every record written was read, and each LOST count adds up */
	ASSERT_EQ(st.events, sc.recs);
	for (i = 0; i < 16; i++)
		ASSERT_EQ(st.per_type[i], sc.per_type[i])
			TH_LOG("records of type %d (%s)", i, tt_type_name(i));
	ASSERT_EQ(st.drops, sc.lost_sum);
	ASSERT_EQ(produced, sc.recs - sc.per_type[TCPTRACE_T_LOST] +
			    sc.lost_sum);
	/* the reader got a share of it, not only LOST records */
	ASSERT_LT(sc.per_type[TCPTRACE_T_LOST], sc.recs);
}

TEST_HARNESS_MAIN
