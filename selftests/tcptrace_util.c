// SPDX-License-Identifier: GPL-2.0
/*
 * Shared code of the tcptrace selftests.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tcptrace_util.h"

#define TT_IP4_CLIENT	"10.200.1.1"
#define TT_IP4_SERVER	"10.200.1.2"
#define TT_IP6_CLIENT	"fd00::1"
#define TT_IP6_SERVER	"fd00::2"

uint64_t tt_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

void tt_msleep(int ms)
{
	struct timespec ts = {
		.tv_sec = ms / 1000,
		.tv_nsec = (long)(ms % 1000) * 1000000,
	};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

int tt_run(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	int ret;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	fflush(stdout);
	fflush(stderr);
	ret = system(cmd);
	if (ret == -1 || !WIFEXITED(ret))
		return -1;
	return WEXITSTATUS(ret);
}

int tt_run_ns(const struct tt_env *env, bool server, const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	int ret;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (tt_enter_ns(server ? env->s_ns : env->c_ns))
		return -1;
	ret = tt_run("%s", cmd);
	tt_enter_ns(env->orig_ns);
	return ret;
}

int tt_pin_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set);
}

int tt_nr_cpus_online(void)
{
	return (int)sysconf(_SC_NPROCESSORS_ONLN);
}

int tt_enter_ns(int nsfd)
{
	return setns(nsfd, CLONE_NEWNET);
}

uint32_t tt_ns_inode(int nsfd)
{
	struct stat st;

	if (fstat(nsfd, &st))
		return 0;
	return (uint32_t)st.st_ino;
}

uint32_t tt_self_ns_inode(void)
{
	struct stat st;

	if (stat("/proc/self/ns/net", &st))
		return 0;
	return (uint32_t)st.st_ino;
}

/* Makes a new namespace and returns an fd of it; stays in orig. */
static int new_ns(int orig)
{
	int fd;

	if (unshare(CLONE_NEWNET))
		return -1;
	fd = open("/proc/self/ns/net", O_RDONLY);
	if (setns(orig, CLONE_NEWNET)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static void set_addrs(struct tt_env *env)
{
	const char *c, *s;

	if (env->family == AF_INET) {
		c = env->veth ? TT_IP4_CLIENT : "127.0.0.1";
		s = env->veth ? TT_IP4_SERVER : "127.0.0.1";
	} else {
		c = env->veth ? TT_IP6_CLIENT : "::1";
		s = env->veth ? TT_IP6_SERVER : "::1";
	}
	snprintf(env->c_text, sizeof(env->c_text), "%s", c);
	snprintf(env->s_text, sizeof(env->s_text), "%s", s);
	memset(env->c_addr, 0, sizeof(env->c_addr));
	memset(env->s_addr, 0, sizeof(env->s_addr));
	inet_pton(env->family, c, env->c_addr);
	inet_pton(env->family, s, env->s_addr);
}

int tt_env_setup(struct tt_env *env, int family, bool veth,
		 char *err, size_t errlen)
{
	int ret;

	memset(env, 0, sizeof(*env));
	env->family = family;
	env->veth = veth;
	env->orig_ns = env->c_ns = env->s_ns = -1;
	set_addrs(env);

	env->orig_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (env->orig_ns < 0) {
		snprintf(err, errlen, "open /proc/self/ns/net: %s",
			 strerror(errno));
		return -1;
	}
	env->c_ns = new_ns(env->orig_ns);
	if (env->c_ns < 0) {
		snprintf(err, errlen, "unshare(CLONE_NEWNET): %s",
			 strerror(errno));
		return -1;
	}
	if (veth) {
		env->s_ns = new_ns(env->orig_ns);
		if (env->s_ns < 0) {
			snprintf(err, errlen, "unshare(CLONE_NEWNET): %s",
				 strerror(errno));
			return -1;
		}
	} else {
		env->s_ns = env->c_ns;
	}
	env->c_ino = tt_ns_inode(env->c_ns);
	env->s_ino = tt_ns_inode(env->s_ns);

	if (tt_enter_ns(env->c_ns)) {
		snprintf(err, errlen, "setns: %s", strerror(errno));
		return -1;
	}
	if (!veth) {
		ret = tt_run("ip link set lo up");
		tt_enter_ns(env->orig_ns);
		if (ret) {
			snprintf(err, errlen, "ip link set lo up: %d", ret);
			return -1;
		}
		return 0;
	}

	ret = tt_run("ip link set lo up && "
		     "ip link add va type veth peer name vb netns /proc/%d/fd/%d && "
		     "ip link set va up && "
		     "ip addr add " TT_IP4_CLIENT "/24 dev va && "
		     "ip -6 addr add " TT_IP6_CLIENT "/64 dev va nodad",
		     (int)getpid(), env->s_ns);
	if (!ret) {
		tt_enter_ns(env->s_ns);
		ret = tt_run("ip link set lo up && "
			     "ip link set vb up && "
			     "ip addr add " TT_IP4_SERVER "/24 dev vb && "
			     "ip -6 addr add " TT_IP6_SERVER "/64 dev vb nodad");
	}
	tt_enter_ns(env->orig_ns);
	if (ret) {
		snprintf(err, errlen, "ip commands for the veth pair failed: %d",
			 ret);
		return -1;
	}
	return 0;
}

void tt_env_cleanup(struct tt_env *env)
{
	if (env->orig_ns >= 0)
		tt_enter_ns(env->orig_ns);
	if (env->s_ns >= 0 && env->s_ns != env->c_ns)
		close(env->s_ns);
	if (env->c_ns >= 0)
		close(env->c_ns);
	if (env->orig_ns >= 0)
		close(env->orig_ns);
	env->orig_ns = env->c_ns = env->s_ns = -1;
}

int tt_socket(const struct tt_env *env, bool server)
{
	int fd, saved;

	if (tt_enter_ns(server ? env->s_ns : env->c_ns))
		return -1;
	fd = socket(env->family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
	saved = errno;
	tt_enter_ns(env->orig_ns);
	errno = saved;
	return fd;
}

socklen_t tt_sockaddr(const struct tt_env *env, bool server, uint16_t port,
		      struct sockaddr_storage *ss)
{
	const uint8_t *addr = server ? env->s_addr : env->c_addr;

	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	if (env->family == AF_INET) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, addr, 4);
		return sizeof(*sin);
	}
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	memcpy(&sin6->sin6_addr, addr, 16);
	return sizeof(*sin6);
}

int tt_listen(const struct tt_env *env, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1, ret;

	fd = tt_socket(env, true);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	len = tt_sockaddr(env, true, port, &ss);
	if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 128)) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

int tt_connect(const struct tt_env *env, uint16_t port, int *err)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	*err = 0;
	fd = tt_socket(env, false);
	if (fd < 0)
		return -errno;
	len = tt_sockaddr(env, true, port, &ss);
	if (connect(fd, (struct sockaddr *)&ss, len))
		*err = errno;
	return fd;
}

uint16_t tt_local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len))
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

int tt_quick_conn(const struct tt_env *env, uint16_t port)
{
	int lfd, cfd = -1, afd = -1, err = 0, ret = 0;
	char buf[16] = "hello";

	lfd = tt_listen(env, port);
	if (lfd < 0)
		return lfd;
	cfd = tt_connect(env, port, &err);
	if (cfd < 0 || err) {
		ret = cfd < 0 ? cfd : -err;
		goto out;
	}
	afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (afd < 0 || tt_send_all(cfd, buf, 5) != 5 ||
	    tt_recv_all(afd, buf, 5) != 5) {
		ret = -EIO;
		goto out;
	}
	close(cfd);
	cfd = -1;
	if (recv(afd, buf, sizeof(buf), 0) != 0)
		ret = -EIO;
out:
	if (afd >= 0)
		close(afd);
	if (cfd >= 0)
		close(cfd);
	close(lfd);
	tt_msleep(100);
	return ret;
}

int tt_tcp_state(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		return -1;
	return ti.tcpi_state;
}

ssize_t tt_send_all(int fd, const void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = send(fd, (const char *)buf + done, len - done,
				 MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return done ? (ssize_t)done : -1;
		}
		done += n;
	}
	return done;
}

ssize_t tt_recv_all(int fd, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = recv(fd, (char *)buf + done, len - done, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return done ? (ssize_t)done : -1;
		}
		if (n == 0)
			break;
		done += n;
	}
	return done;
}

int tt_dev_open(int flags)
{
	int fd = open(TCPTRACE_DEVICE, flags | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

int tt_dev_clear(int fd)
{
	return ioctl(fd, TCPTRACE_IOC_CLEAR, 0UL) ? -errno : 0;
}

int tt_dev_stats(int fd, struct tcptrace_stats *st)
{
	memset(st, 0xa5, sizeof(*st));
	return ioctl(fd, TCPTRACE_IOC_STATS, st) ? -errno : 0;
}

int tt_recs_push(struct tt_recs *recs, const struct tcptrace_record *r)
{
	if (recs->n == recs->cap) {
		size_t cap = recs->cap ? recs->cap * 2 : 256;
		void *p = realloc(recs->r, cap * sizeof(*recs->r));

		if (!p)
			return -ENOMEM;
		recs->r = p;
		recs->cap = cap;
	}
	recs->r[recs->n++] = *r;
	return 0;
}

void tt_recs_free(struct tt_recs *recs)
{
	free(recs->r);
	memset(recs, 0, sizeof(*recs));
}

/*
 * A namespace's inode number is reused once the namespace is gone, and its
 * timewait sockets are killed with it a little later: such a TIMEWAIT_END
 * may carry the inode of a namespace made since.  It belongs to no
 * TIMEWAIT record of @in.
 */
static bool tt_stale_tw_end(const struct tt_recs *in,
			    const struct tcptrace_record *e)
{
	size_t i;

	if (e->type != TCPTRACE_T_TIMEWAIT_END)
		return false;
	for (i = 0; i < in->n; i++) {
		const struct tcptrace_record *r = &in->r[i];

		if (r->type == TCPTRACE_T_TIMEWAIT && r->netns == e->netns &&
		    r->sport == e->sport && r->dport == e->dport &&
		    !memcmp(r->saddr, e->saddr, 16) &&
		    !memcmp(r->daddr, e->daddr, 16))
			return false;
	}
	return true;
}

void tt_recs_select_netns(const struct tt_recs *in, struct tt_recs *out,
			  uint32_t ino1, uint32_t ino2)
{
	size_t i;

	for (i = 0; i < in->n; i++)
		if ((in->r[i].netns == ino1 || in->r[i].netns == ino2) &&
		    !tt_stale_tw_end(in, &in->r[i]))
			tt_recs_push(out, &in->r[i]);
}

int tt_collect(int fd, struct tt_recs *recs, int idle_ms, int max_ms)
{
	static struct tcptrace_record buf[256];
	uint64_t end = tt_now_ns() + (uint64_t)max_ms * 1000000;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int64_t left = (int64_t)(end - tt_now_ns()) / 1000000;
		ssize_t n;
		int ret, i;

		if (left <= 0)
			return 0;
		ret = poll(&pfd, 1, left < idle_ms ? (int)left : idle_ms);
		if (ret < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (ret == 0)
			return 0;
		n = read(fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		if (n % TCPTRACE_RECORD_SIZE)
			return -EPROTO;
		for (i = 0; i < n / TCPTRACE_RECORD_SIZE; i++)
			if (tt_recs_push(recs, &buf[i]))
				return -ENOMEM;
	}
}

static bool all_zero(const void *p, size_t len)
{
	const uint8_t *b = p;
	size_t i;

	for (i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

static const char *state_part_problem(const struct tcptrace_record *r)
{
	const struct tcptrace_state *s = &r->state;

	if (s->reserved0 || !all_zero(s->reserved, sizeof(s->reserved)))
		return "state.reserved not zero";
	if (s->old_state < TT_ESTABLISHED || s->old_state > TT_NEW_SYN_RECV)
		return "state.old_state out of range";
	switch (r->type) {
	case TCPTRACE_T_STATE:
		if (s->new_state < TT_ESTABLISHED ||
		    s->new_state > TT_NEW_SYN_RECV)
			return "state.new_state out of range";
		if (s->flags || s->seq || s->end_seq || s->timeo_ms)
			return "STATE: flags/seq/end_seq/timeo_ms not zero";
		break;
	case TCPTRACE_T_TIMEWAIT:
		if (s->new_state != TT_TIME_WAIT &&
		    s->new_state != TT_FIN_WAIT2)
			return "TIMEWAIT: new_state not TIME_WAIT/FIN_WAIT2";
		if (s->flags || s->seq || s->end_seq)
			return "TIMEWAIT: flags/seq/end_seq not zero";
		break;
	case TCPTRACE_T_TIMEWAIT_END:
		if (s->old_state != TT_TIME_WAIT)
			return "TIMEWAIT_END: old_state not TIME_WAIT";
		if (s->new_state != TT_TIME_WAIT &&
		    s->new_state != TT_FIN_WAIT2)
			return "TIMEWAIT_END: new_state not TIME_WAIT/FIN_WAIT2";
		if (s->flags != TCPTRACE_TW_EXPIRED &&
		    s->flags != TCPTRACE_TW_KILLED)
			return "TIMEWAIT_END: flags not EXPIRED/KILLED";
		if (s->snd_una || s->seq || s->end_seq || s->timeo_ms)
			return "TIMEWAIT_END: snd_una/seq/end_seq/timeo_ms not zero";
		break;
	case TCPTRACE_T_RETRANSMIT:
		if (s->new_state || s->timeo_ms)
			return "RETRANSMIT: new_state/timeo_ms not zero";
		if (!s->flags)
			return "RETRANSMIT: flags zero";
		break;
	default:	/* DESTROY, RESET_SENT, RESET_RECEIVED */
		if (s->new_state || s->flags || s->seq || s->end_seq ||
		    s->timeo_ms)
			return "new_state/flags/seq/end_seq/timeo_ms not zero";
		break;
	}
	return NULL;
}

const char *tt_record_problem(const struct tcptrace_record *r)
{
	if (r->len != TCPTRACE_RECORD_SIZE)
		return "len != 128";
	if (r->version != TCPTRACE_RECORD_VERSION)
		return "version != TCPTRACE_RECORD_VERSION";
	if (r->type < TCPTRACE_T_PACKET || r->type >= TCPTRACE_T_MAX)
		return "unknown type";
	if (r->reserved0)
		return "reserved0 not zero";
	if (r->pid == 0) {
		if (!all_zero(r->comm, sizeof(r->comm)))
			return "comm not zero with pid 0";
	} else {
		size_t l = strnlen(r->comm, sizeof(r->comm));

		if (l == 0 || l == sizeof(r->comm))
			return "comm empty or not NUL-terminated";
		if (!all_zero(r->comm + l, sizeof(r->comm) - l))
			return "comm has bytes after its NUL";
	}

	if (r->type == TCPTRACE_T_LOST) {
		if (r->family || r->dir || r->sock_id || r->sport || r->dport)
			return "LOST: family/dir/sock_id/ports not zero";
		if (!all_zero(r->saddr, 16) || !all_zero(r->daddr, 16))
			return "LOST: addresses not zero";
		if (!all_zero(r->lost.reserved, sizeof(r->lost.reserved)))
			return "lost.reserved not zero";
		if (!r->lost.count)
			return "LOST: count zero";
		return NULL;
	}

	if (r->family != AF_INET && r->family != AF_INET6)
		return "family not AF_INET/AF_INET6";
	if (r->family == AF_INET &&
	    (!all_zero(r->saddr + 4, 12) || !all_zero(r->daddr + 4, 12)))
		return "IPv4 address bytes 4..15 not zero";

	switch (r->type) {
	case TCPTRACE_T_PACKET:
		if (r->dir != TCPTRACE_DIR_IN && r->dir != TCPTRACE_DIR_OUT)
			return "PACKET: dir not IN/OUT";
		if (!all_zero(r->packet.reserved, sizeof(r->packet.reserved)))
			return "packet.reserved not zero";
		if (r->packet.doff < 20 || r->packet.doff > 60 ||
		    r->packet.doff % 4)
			return "PACKET: doff not 20..60 in steps of 4";
		return NULL;
	case TCPTRACE_T_SYNACK_RETRANSMIT:
		if (r->dir)
			return "dir not zero";
		if (!all_zero(r->synack.reserved, sizeof(r->synack.reserved)))
			return "synack.reserved not zero";
		if (!r->synack.num_retrans)
			return "SYNACK_RETRANSMIT: num_retrans zero";
		return NULL;
	case TCPTRACE_T_LISTEN_OVERFLOW:
		if (r->dir)
			return "dir not zero";
		if (!all_zero(r->listen.reserved0,
			      sizeof(r->listen.reserved0)) ||
		    !all_zero(r->listen.reserved, sizeof(r->listen.reserved)))
			return "listen.reserved not zero";
		if (r->listen.reason < TCPTRACE_OVF_SYN_ACCEPTQ ||
		    r->listen.reason > TCPTRACE_OVF_SYN_SYNQ)
			return "LISTEN_OVERFLOW: reason not a TCPTRACE_OVF_*";
		return NULL;
	default:
		if (r->dir)
			return "dir not zero";
		return state_part_problem(r);
	}
}

const char *tt_type_name(int type)
{
	static const char *const names[] = {
		[TCPTRACE_T_PACKET] = "PACKET",
		[TCPTRACE_T_STATE] = "STATE",
		[TCPTRACE_T_SYNACK_RETRANSMIT] = "SYNACK_RETRANSMIT",
		[TCPTRACE_T_RETRANSMIT] = "RETRANSMIT",
		[TCPTRACE_T_RESET_SENT] = "RESET_SENT",
		[TCPTRACE_T_RESET_RECEIVED] = "RESET_RECEIVED",
		[TCPTRACE_T_TIMEWAIT] = "TIMEWAIT",
		[TCPTRACE_T_DESTROY] = "DESTROY",
		[TCPTRACE_T_LOST] = "LOST",
		[TCPTRACE_T_TIMEWAIT_END] = "TIMEWAIT_END",
		[TCPTRACE_T_LISTEN_OVERFLOW] = "LISTEN_OVERFLOW",
	};

	if (type > 0 && type < TCPTRACE_T_MAX)
		return names[type];
	return "?";
}

const char *tt_overflow_name(int reason)
{
	switch (reason) {
	case TCPTRACE_OVF_SYN_ACCEPTQ:
		return "SYN_ACCEPTQ";
	case TCPTRACE_OVF_ACK_ACCEPTQ:
		return "ACK_ACCEPTQ";
	case TCPTRACE_OVF_SYN_SYNQ:
		return "SYN_SYNQ";
	}
	return "?";
}

const char *tt_state_name(int state)
{
	static const char *const names[] = {
		"0", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1",
		"FIN_WAIT2", "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK",
		"LISTEN", "CLOSING", "NEW_SYN_RECV",
	};

	if (state >= 0 && state <= TT_NEW_SYN_RECV)
		return names[state];
	return "?";
}

const char *tt_flags_str(uint8_t flags, char *buf, size_t len)
{
	/* tcpdump's letters and order; '.' is ACK */
	static const char letters[] = "FSRP.UEW";
	static const uint8_t bits[] = {
		TT_F_FIN, TT_F_SYN, TT_F_RST, TCPTRACE_FLAG_PSH, TT_F_ACK,
		TCPTRACE_FLAG_URG, TCPTRACE_FLAG_ECE, TCPTRACE_FLAG_CWR,
	};
	size_t i, n = 0;

	if (len < sizeof(letters))
		return "";
	for (i = 0; i < sizeof(bits); i++)
		if (flags & bits[i])
			buf[n++] = letters[i];
	if (!n)
		buf[n++] = '-';
	buf[n] = 0;
	return buf;
}

static void addr_text(int family, const uint8_t *a, uint16_t port,
		      char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (family == AF_INET || family == AF_INET6)
		inet_ntop(family, a, ip, sizeof(ip));
	if (family == AF_INET6)
		snprintf(buf, len, "[%s]:%u", ip, port);
	else
		snprintf(buf, len, "%s:%u", ip, port);
}

void tt_format(const struct tcptrace_record *r, char *buf, size_t len)
{
	char src[64], dst[64], fl[16];
	int n;

	addr_text(r->family, r->saddr, r->sport, src, sizeof(src));
	addr_text(r->family, r->daddr, r->dport, dst, sizeof(dst));
	n = snprintf(buf, len, "ts=%llu cpu=%u ns=%u pid=%u sk=%016llx %s ",
		     (unsigned long long)r->ts_ns, r->cpu, r->netns, r->pid,
		     (unsigned long long)r->sock_id, tt_type_name(r->type));
	if (n < 0 || (size_t)n >= len)
		return;
	buf += n;
	len -= n;

	switch (r->type) {
	case TCPTRACE_T_PACKET:
		snprintf(buf, len,
			 "%s %s > %s %s seq=%u ack=%u win=%u doff=%u len=%u",
			 r->dir == TCPTRACE_DIR_IN ? "in" :
			 r->dir == TCPTRACE_DIR_OUT ? "out" : "dir?",
			 src, dst, tt_flags_str(r->packet.flags, fl, sizeof(fl)),
			 r->packet.seq, r->packet.ack, r->packet.win,
			 r->packet.doff, r->packet.payload_len);
		break;
	case TCPTRACE_T_SYNACK_RETRANSMIT:
		snprintf(buf, len, "%s > %s snt_isn=%u rcv_isn=%u num=%u",
			 src, dst, r->synack.snt_isn, r->synack.rcv_isn,
			 r->synack.num_retrans);
		break;
	case TCPTRACE_T_LISTEN_OVERFLOW:
		snprintf(buf, len,
			 "%s > %s reason=%s syn_queue=%u accept_queue=%u backlog=%u",
			 src, dst, tt_overflow_name(r->listen.reason),
			 r->listen.syn_queue, r->listen.accept_queue,
			 r->listen.backlog);
		break;
	case TCPTRACE_T_TIMEWAIT_END:
		snprintf(buf, len,
			 "%s > %s %s->%s snd_nxt=%u rcv_nxt=%u %s",
			 src, dst, tt_state_name(r->state.old_state),
			 tt_state_name(r->state.new_state), r->state.snd_nxt,
			 r->state.rcv_nxt,
			 r->state.flags == TCPTRACE_TW_EXPIRED ? "expired" :
			 r->state.flags == TCPTRACE_TW_KILLED ? "killed" :
			 "flags?");
		break;
	case TCPTRACE_T_LOST:
		snprintf(buf, len, "count=%llu",
			 (unsigned long long)r->lost.count);
		break;
	default:
		snprintf(buf, len,
			 "%s > %s %s->%s snd_nxt=%u rcv_nxt=%u snd_una=%u flags=%s seq=%u end_seq=%u timeo_ms=%u",
			 src, dst, tt_state_name(r->state.old_state),
			 tt_state_name(r->state.new_state), r->state.snd_nxt,
			 r->state.rcv_nxt, r->state.snd_una,
			 tt_flags_str(r->state.flags, fl, sizeof(fl)),
			 r->state.seq, r->state.end_seq, r->state.timeo_ms);
		break;
	}
}

void tt_dump(FILE *f, const char *title, const struct tt_recs *recs)
{
	char line[512];
	size_t i;

	fprintf(f, "# %s: %zu records\n", title, recs->n);
	for (i = 0; i < recs->n; i++) {
		tt_format(&recs->r[i], line, sizeof(line));
		fprintf(f, "#  [%zu] %s\n", i, line);
	}
}

const char *tt_ctl_path(void)
{
	static char path[4096 + 32];
	char exe[4096];
	ssize_t n;
	char *slash;

	if (path[0])
		return path;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return "tcptracectl";
	exe[n] = 0;
	slash = strrchr(exe, '/');
	if (slash)
		*slash = 0;
	snprintf(path, sizeof(path), "%s/../userspace/tcptracectl", exe);
	return path;
}

int tt_run_ns_output(const struct tt_env *env, bool server, char *out,
		     size_t outlen, const char *fmt, ...)
{
	char cmd[2048];
	size_t done = 0;
	va_list ap;
	FILE *f;
	int ret;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (outlen)
		out[0] = 0;
	if (tt_enter_ns(server ? env->s_ns : env->c_ns))
		return -1;
	fflush(stdout);
	fflush(stderr);
	f = popen(cmd, "r");
	tt_enter_ns(env->orig_ns);
	if (!f)
		return -1;
	while (outlen && done < outlen - 1) {
		size_t n = fread(out + done, 1, outlen - 1 - done, f);

		if (!n)
			break;
		done += n;
	}
	if (outlen)
		out[done] = 0;
	/* drain what did not fit */
	while (fgetc(f) != EOF)
		;
	ret = pclose(f);
	if (ret == -1 || !WIFEXITED(ret))
		return -1;
	return WEXITSTATUS(ret);
}

int tt_listener_queues(const struct tt_env *env, uint16_t port,
		       struct tt_listener *l)
{
	char want[INET6_ADDRSTRLEN + 16], line[256], addr[128];
	int found = -ENOENT;
	FILE *f;

	if (env->family == AF_INET6)
		snprintf(want, sizeof(want), "[%s]:%u", env->s_text, port);
	else
		snprintf(want, sizeof(want), "%s:%u", env->s_text, port);
	if (tt_enter_ns(env->s_ns))
		return -errno;
	f = fopen("/proc/net/tcptrace_listeners", "re");
	if (!f) {
		found = -errno;
		tt_enter_ns(env->orig_ns);
		return found;
	}
	tt_enter_ns(env->orig_ns);
	if (!fgets(line, sizeof(line), f) ||
	    strcmp(line, "# local syn_queue accept_queue backlog\n")) {
		fclose(f);
		return -EPROTO;
	}
	while (fgets(line, sizeof(line), f)) {
		struct tt_listener t;

		if (sscanf(line, "%127s %u %u %u", addr, &t.syn_queue,
			   &t.accept_queue, &t.backlog) != 4) {
			found = -EPROTO;
			break;
		}
		if (!strcmp(addr, want)) {
			*l = t;
			found = 0;
		}
	}
	fclose(f);
	return found;
}

void tt_module_path(char *buf, size_t len)
{
	const char *env = getenv("TCPTRACE_KO");
	char exe[PATH_MAX];
	ssize_t n;

	if (env && *env) {
		snprintf(buf, len, "%s", env);
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		n = 0;
	exe[n] = 0;
	snprintf(buf, len, "%s/../module/tcptrace.ko", dirname(exe));
}

int tt_case_setup(struct tt_case *c, int family, bool veth,
		  char *err, size_t errlen)
{
	c->lfd = c->cfd = c->afd = -1;
	c->dev = tt_dev_open(O_RDONLY);
	if (c->dev < 0) {
		snprintf(err, errlen,
			 "open %s: %s (is the tcptrace module loaded?)",
			 TCPTRACE_DEVICE, strerror(-c->dev));
		return -1;
	}
	return tt_env_setup(&c->env, family, veth, err, errlen);
}

void tt_case_teardown(struct tt_case *c, bool passed)
{
	if (!passed) {
		fprintf(stderr,
			"# client ns %u, server ns %u, client port %u\n",
			c->env.c_ino, c->env.s_ino, c->cport);
		tt_dump(stderr, "records of the test's namespaces", &c->ours);
	}
	if (c->afd >= 0)
		close(c->afd);
	if (c->cfd >= 0)
		close(c->cfd);
	if (c->lfd >= 0)
		close(c->lfd);
	tt_env_cleanup(&c->env);
	if (c->dev >= 0)
		close(c->dev);
	tt_recs_free(&c->all);
	tt_recs_free(&c->ours);
}

const char *tt_case_collect(struct tt_case *c, int idle_ms, bool all)
{
	const struct tt_recs *chk = all ? &c->all : &c->ours;
	int ret;
	size_t i;

	ret = tt_collect(c->dev, &c->all, idle_ms, 10000);
	if (ret) {
		snprintf(c->msg, sizeof(c->msg), "reading records: %s",
			 strerror(-ret));
		return c->msg;
	}
	c->ours.n = 0;
	tt_recs_select_netns(&c->all, &c->ours, c->env.c_ino, c->env.s_ino);
	for (i = 0; i < chk->n; i++) {
		const char *p = tt_record_problem(&chk->r[i]);
		char line[512];

		if (p) {
			tt_format(&chk->r[i], line, sizeof(line));
			snprintf(c->msg, sizeof(c->msg), "record %zu: %s: %s",
				 i, p, line);
			return c->msg;
		}
		if (all && i && chk->r[i - 1].ts_ns > chk->r[i].ts_ns) {
			snprintf(c->msg, sizeof(c->msg),
				 "timestamps go back at record %zu", i);
			return c->msg;
		}
	}
	return NULL;
}

const char *tt_case_establish(struct tt_case *c, uint16_t port)
{
	int err;

	c->lfd = tt_listen(&c->env, port);
	if (c->lfd < 0) {
		snprintf(c->msg, sizeof(c->msg), "listen: %s",
			 strerror(-c->lfd));
		return c->msg;
	}
	c->cfd = tt_connect(&c->env, port, &err);
	if (c->cfd < 0) {
		snprintf(c->msg, sizeof(c->msg), "socket: %s",
			 strerror(-c->cfd));
		return c->msg;
	}
	if (err) {
		snprintf(c->msg, sizeof(c->msg), "connect: %s",
			 strerror(err));
		return c->msg;
	}
	c->afd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (c->afd < 0) {
		snprintf(c->msg, sizeof(c->msg), "accept: %s",
			 strerror(errno));
		return c->msg;
	}
	c->cport = tt_local_port(c->cfd);
	if (!c->cport) {
		snprintf(c->msg, sizeof(c->msg), "no local port of the client");
		return c->msg;
	}
	return NULL;
}

size_t tt_find_pkts(const struct tt_recs *o, uint32_t ns, int dir,
		    uint8_t flags, uint16_t sport, size_t *idx, size_t max)
{
	size_t i, n = 0;

	for (i = 0; i < o->n; i++) {
		const struct tcptrace_record *r = &o->r[i];

		if (r->type == TCPTRACE_T_PACKET && r->netns == ns &&
		    r->dir == dir && r->packet.flags == flags &&
		    r->sport == sport && n < max)
			idx[n++] = i;
	}
	return n;
}

size_t tt_find_type(const struct tt_recs *o, int type, size_t *idx,
		    size_t max)
{
	size_t i, n = 0;

	for (i = 0; i < o->n; i++)
		if (o->r[i].type == type && n < max)
			idx[n++] = i;
	return n;
}

/*
 * The kselftest harness (6.1) limits each test with alarm(timeout).  Under
 * a slow kernel (make check-debug: KASAN, lockdep and kmemleak, emulated),
 * the limits are TCPTRACE_TIMEOUT_SCALE times longer: the test programs
 * get this alarm() in place of libc's.
 */
unsigned int alarm(unsigned int seconds)
{
	const char *env = getenv("TCPTRACE_TIMEOUT_SCALE");
	unsigned long scale = env ? strtoul(env, NULL, 10) : 1;
	struct itimerval it = { 0 }, old;

	if (scale < 1 || scale > 100)
		scale = 1;
	it.it_value.tv_sec = (time_t)seconds * scale;
	if (setitimer(ITIMER_REAL, &it, &old))
		return 0;
	return old.it_value.tv_sec + (old.it_value.tv_usec >= 500000);
}
