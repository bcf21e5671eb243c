// SPDX-License-Identifier: GPL-2.0
/*
 * Ring overflow: with buf_records=16, connections made without reading
 * overflow the ring.  The reader then gets LOST records whose counts add up
 * to stats.drops exactly, and well-formed records around them.
 *
 * The test reloads the module (rmmod, insmod $TCPTRACE_KO buf_records=16)
 * and restores it with default parameters afterwards.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "tcptrace_util.h"

#define PORT		5000
#define CLOSED_PORT	5001
#define RING		16
#define FLOOD_CONNS	40

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

TEST_HARNESS_MAIN
