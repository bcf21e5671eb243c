// SPDX-License-Identifier: GPL-2.0
/*
 * Module parameters: bad values make insmod fail; ports= records only the
 * connections of those ports; all_segments=1 records data segments too.
 *
 * Every test reloads the module ($TCPTRACE_KO, else ../module/tcptrace.ko
 * next to this program) and loads it again with default parameters after.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "tcptrace_util.h"

#define PARAMS	"/sys/module/tcptrace/parameters/"

static bool module_loaded(void)
{
	struct stat st;

	return stat("/sys/module/tcptrace", &st) == 0;
}

static void read_param(const char *name, char *buf, size_t len)
{
	char path[256];
	FILE *f;

	buf[0] = 0;
	snprintf(path, sizeof(path), PARAMS "%s", name);
	f = fopen(path, "r");
	if (!f)
		return;
	if (!fgets(buf, len, f))
		buf[0] = 0;
	buf[strcspn(buf, "\n")] = 0;
	fclose(f);
}

FIXTURE(params) {
	struct tt_env env;
	int dev;
	char ko[PATH_MAX];
	struct tt_recs recs;
	struct tt_recs ours;
};

FIXTURE_SETUP(params)
{
	char err[256];

	self->dev = -1;
	tt_module_path(self->ko, sizeof(self->ko));
	ASSERT_EQ(0, access(self->ko, R_OK))
		TH_LOG("%s: %s (set TCPTRACE_KO)", self->ko, strerror(errno));
	ASSERT_EQ(0, tt_env_setup(&self->env, AF_INET, false, err,
				  sizeof(err)))
		TH_LOG("%s", err);
	if (module_loaded()) {
		ASSERT_EQ(0, tt_run("rmmod tcptrace"));
	}
}

FIXTURE_TEARDOWN(params)
{
	if (!_metadata->passed)
		tt_dump(stderr, "records of the test's namespace", &self->ours);
	tt_recs_free(&self->recs);
	tt_recs_free(&self->ours);
	tt_env_cleanup(&self->env);
	if (self->dev >= 0)
		close(self->dev);
	if (module_loaded())
		tt_run("rmmod tcptrace");
	if (tt_run("insmod %s", self->ko))
		fprintf(stderr, "# could not load %s again\n", self->ko);
}

static void load(struct __test_metadata *_metadata,
		 FIXTURE_DATA(params) *self, const char *args)
{
	ASSERT_EQ(0, tt_run("insmod %s %s", self->ko, args))
		TH_LOG("insmod %s %s", self->ko, args);
	self->dev = tt_dev_open(O_RDONLY);
	ASSERT_LE(0, self->dev);
}

static void collect(struct __test_metadata *_metadata,
		    FIXTURE_DATA(params) *self)
{
	ASSERT_EQ(0, tt_collect(self->dev, &self->recs, 300, 10000));
	tt_recs_select_netns(&self->recs, &self->ours, self->env.c_ino, 0);
}

TEST_F(params, bad_values)
{
	static const char *const bad[] = {
		"buf_records=0", "buf_records=8", "buf_records=15",
		"buf_records=1048577", "buf_records=-1", "buf_records=abc",
		"ports=0", "ports=65536", "ports=-1", "ports=http",
		"ports=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17",
		"ports=80,0", "all_segments=maybe",
	};
	struct tcptrace_stats st;
	char val[256];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ASSERT_NE(0, tt_run("insmod %s %s 2>/dev/null", self->ko,
				    bad[i]))
			TH_LOG("insmod with %s succeeded", bad[i]);
		ASSERT_FALSE(module_loaded()) TH_LOG("%s", bad[i]);
	}

	/* good values, buf_records rounded up to a power of two */
	ASSERT_EQ(0, tt_run("insmod %s buf_records=100 ports=80,443,65535",
			    self->ko));
	read_param("buf_records", val, sizeof(val));
	ASSERT_STREQ("128", val);
	read_param("ports", val, sizeof(val));
	ASSERT_STREQ("80,443,65535", val);
	read_param("all_segments", val, sizeof(val));
	ASSERT_STREQ("N", val);
	self->dev = tt_dev_open(O_RDONLY);
	ASSERT_LE(0, self->dev);
	ASSERT_EQ(0, tt_dev_stats(self->dev, &st));
	ASSERT_EQ(128, st.ring_records);
	close(self->dev);
	self->dev = -1;
	ASSERT_EQ(0, tt_run("rmmod tcptrace"));
	ASSERT_EQ(0, tt_run("insmod %s buf_records=16", self->ko));
	ASSERT_EQ(0, tt_run("rmmod tcptrace"));
	ASSERT_EQ(0, tt_run("insmod %s buf_records=1048576", self->ko));
	read_param("buf_records", val, sizeof(val));
	ASSERT_STREQ("1048576", val);
}

static bool has_port(const struct tcptrace_record *r, uint16_t port)
{
	return r->sport == port || r->dport == port;
}

TEST_F(params, ports_filter)
{
	size_t i, syn_5000 = 0, syn_5002 = 0;
	int fd, err;

	load(_metadata, self, "ports=5000,5002");
	ASSERT_EQ(0, tt_quick_conn(&self->env, 6000));
	ASSERT_EQ(0, tt_quick_conn(&self->env, 5000));
	ASSERT_EQ(0, tt_quick_conn(&self->env, 5002));
	fd = tt_connect(&self->env, 6001, &err);
	ASSERT_LE(0, fd);
	ASSERT_EQ(ECONNREFUSED, err);
	close(fd);
	collect(_metadata, self);

	for (i = 0; i < self->ours.n; i++) {
		const struct tcptrace_record *r = &self->ours.r[i];
		char line[512];

		tt_format(r, line, sizeof(line));
		ASSERT_TRUE(has_port(r, 5000) || has_port(r, 5002))
			TH_LOG("record %zu: %s", i, line);
		if (r->type == TCPTRACE_T_PACKET && r->packet.flags == TT_F_SYN) {
			syn_5000 += r->dport == 5000;
			syn_5002 += r->dport == 5002;
		}
	}
	ASSERT_EQ(1, syn_5000);
	ASSERT_EQ(1, syn_5002);
}

TEST_F(params, all_segments)
{
	static char buf[1000];
	size_t i, data = 0, data_ack = 0, syn = 0;
	int lfd, cfd, afd, err;
	uint16_t cport;
	uint32_t x = 0;

	load(_metadata, self, "all_segments=1 ports=5000");
	lfd = tt_listen(&self->env, 5000);
	ASSERT_LE(0, lfd);
	cfd = tt_connect(&self->env, 5000, &err);
	ASSERT_LE(0, cfd);
	ASSERT_EQ(0, err);
	afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	ASSERT_LE(0, afd);
	cport = tt_local_port(cfd);
	memset(buf, 'z', sizeof(buf));
	ASSERT_EQ(sizeof(buf), tt_send_all(cfd, buf, sizeof(buf)));
	ASSERT_EQ(sizeof(buf), tt_recv_all(afd, buf, sizeof(buf)));
	tt_msleep(500);		/* the delayed ACK of the data */
	close(cfd);
	close(afd);
	close(lfd);
	tt_msleep(200);
	collect(_metadata, self);

	for (i = 0; i < self->ours.n; i++) {
		const struct tcptrace_record *r = &self->ours.r[i];

		if (r->type != TCPTRACE_T_PACKET)
			continue;
		if (r->sport == cport && r->packet.flags == TT_F_SYN) {
			x = r->packet.seq;
			syn++;
		}
	}
	ASSERT_EQ(1, syn);
	for (i = 0; i < self->ours.n; i++) {
		const struct tcptrace_record *r = &self->ours.r[i];

		if (r->type != TCPTRACE_T_PACKET)
			continue;
		/* the data: one segment (loopback MSS is large) */
		if (r->sport == cport && r->packet.payload_len) {
			ASSERT_EQ(sizeof(buf), r->packet.payload_len);
			ASSERT_EQ(x + 1, r->packet.seq);
			data++;
		}
		/* and the pure ACK of it, which ACKs no SYN-ACK nor FIN */
		if (r->dport == cport && !r->packet.payload_len &&
		    r->packet.flags == TT_F_ACK &&
		    r->packet.ack == x + 1 + sizeof(buf))
			data_ack++;
	}
	ASSERT_EQ(1, data);
	ASSERT_EQ(1, data_ack);
}

TEST_HARNESS_MAIN
