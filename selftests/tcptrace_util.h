/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared code of the tcptrace selftests: network namespaces joined by veth
 * (or one namespace over loopback), sockets in them, and reading records
 * from /dev/tcptrace.
 */
#ifndef TCPTRACE_UTIL_H
#define TCPTRACE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "tcptrace.h"

/* Kernel TCP states (include/net/tcp_states.h). */
enum {
	TT_ESTABLISHED = 1,
	TT_SYN_SENT,
	TT_SYN_RECV,
	TT_FIN_WAIT1,
	TT_FIN_WAIT2,
	TT_TIME_WAIT,
	TT_CLOSE,
	TT_CLOSE_WAIT,
	TT_LAST_ACK,
	TT_LISTEN,
	TT_CLOSING,
	TT_NEW_SYN_RECV,
};

#define TT_F_FIN	TCPTRACE_FLAG_FIN
#define TT_F_SYN	TCPTRACE_FLAG_SYN
#define TT_F_RST	TCPTRACE_FLAG_RST
#define TT_F_ACK	TCPTRACE_FLAG_ACK

/* TCP_TIMEWAIT_LEN of the kernel, in ms */
#define TT_TIMEWAIT_MS	60000

/*
 * A client and a server namespace joined by the veth pair va (client) and
 * vb (server), or a single namespace where both talk over loopback.
 */
struct tt_env {
	int family;		/* AF_INET or AF_INET6 */
	bool veth;
	int orig_ns;		/* namespace the test started in */
	int c_ns;		/* client namespace */
	int s_ns;		/* server namespace (== c_ns on loopback) */
	uint32_t c_ino;
	uint32_t s_ino;
	uint8_t c_addr[16];	/* addresses as records carry them */
	uint8_t s_addr[16];
	char c_text[INET6_ADDRSTRLEN];
	char s_text[INET6_ADDRSTRLEN];
};

/* A growable array of records. */
struct tt_recs {
	struct tcptrace_record *r;
	size_t n;
	size_t cap;
};

/* Formats into err and returns -1 on failure, 0 on success. */
int tt_env_setup(struct tt_env *env, int family, bool veth,
		 char *err, size_t errlen);
/* Closes the namespace fds; the namespaces go away with their sockets. */
void tt_env_cleanup(struct tt_env *env);
int tt_enter_ns(int nsfd);
uint32_t tt_ns_inode(int nsfd);
uint32_t tt_self_ns_inode(void);

/* Socket in the client or the server namespace. */
int tt_socket(const struct tt_env *env, bool server);
socklen_t tt_sockaddr(const struct tt_env *env, bool server, uint16_t port,
		      struct sockaddr_storage *ss);
/* Listening socket bound to the server address; -errno on failure. */
int tt_listen(const struct tt_env *env, uint16_t port);
/*
 * Blocking connect from the client namespace.  Returns the socket (also on
 * connect failure, so the caller decides when to close it) or -errno when
 * no socket could be made; *err gets connect's errno or 0.
 */
int tt_connect(const struct tt_env *env, uint16_t port, int *err);
uint16_t tt_local_port(int fd);
/*
 * One whole connection: listen, connect, accept, a few bytes, close by the
 * client, then the server, then the listener.  Returns 0 or -errno.
 */
int tt_quick_conn(const struct tt_env *env, uint16_t port);
/* TCP state of a socket from TCP_INFO, or -1. */
int tt_tcp_state(int fd);

ssize_t tt_send_all(int fd, const void *buf, size_t len);
/* Reads exactly len bytes (or until EOF/error); returns the count. */
ssize_t tt_recv_all(int fd, void *buf, size_t len);

/* /dev/tcptrace; returns fd or -errno. */
int tt_dev_open(int flags);
int tt_dev_clear(int fd);
int tt_dev_stats(int fd, struct tcptrace_stats *st);
/*
 * Reads records until none came for idle_ms, or max_ms passed.  Returns 0,
 * or -errno of a failed poll/read, or -EPROTO when read() returned a length
 * that is not a multiple of the record size.
 */
int tt_collect(int fd, struct tt_recs *recs, int idle_ms, int max_ms);
int tt_recs_push(struct tt_recs *recs, const struct tcptrace_record *r);
void tt_recs_free(struct tt_recs *recs);
/*
 * Appends to out the records of in whose netns is ino1 or ino2, but for
 * TIMEWAIT_END records of timewait sockets whose start is not in @in (left
 * by an earlier namespace with the same inode number).
 */
void tt_recs_select_netns(const struct tt_recs *in, struct tt_recs *out,
			  uint32_t ino1, uint32_t ino2);

/*
 * Checks len, version, type and that every field the ABI leaves unused for
 * the record's type is zero.  Returns NULL when the record is well-formed,
 * else a static description of the first problem.
 */
const char *tt_record_problem(const struct tcptrace_record *r);

const char *tt_type_name(int type);
const char *tt_state_name(int state);
/* "SYN_ACCEPTQ", "ACK_ACCEPTQ", "SYN_SYNQ" of tcptrace_listen.reason */
const char *tt_overflow_name(int reason);
/* tcpdump-style flag letters ("S", "S.", "F.", "R.", ".") */
const char *tt_flags_str(uint8_t flags, char *buf, size_t len);
void tt_format(const struct tcptrace_record *r, char *buf, size_t len);
void tt_dump(FILE *f, const char *title, const struct tt_recs *recs);

uint64_t tt_now_ns(void);
void tt_msleep(int ms);
/* system() on a formatted command; returns its exit status or -1. */
int tt_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* tt_run() in the client or the server namespace. */
int tt_run_ns(const struct tt_env *env, bool server, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/*
 * tt_run_ns() with the command's standard output read into out (at most
 * outlen - 1 bytes kept, NUL-terminated).
 */
int tt_run_ns_output(const struct tt_env *env, bool server, char *out,
		     size_t outlen, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* userspace/tcptracectl next to the selftests' directory */
const char *tt_ctl_path(void);

/* A line of /proc/net/tcptrace_listeners */
struct tt_listener {
	unsigned int syn_queue;
	unsigned int accept_queue;
	unsigned int backlog;
};

/*
 * Reads /proc/net/tcptrace_listeners in the server namespace and fills l
 * from the line of the server address and port.  Returns 0, -ENOENT when
 * no such line, -EPROTO on a malformed file, or -errno.
 */
int tt_listener_queues(const struct tt_env *env, uint16_t port,
		       struct tt_listener *l);
int tt_pin_cpu(int cpu);
int tt_nr_cpus_online(void);

/* $TCPTRACE_KO, else ../module/tcptrace.ko next to the test program */
void tt_module_path(char *buf, size_t len);

/*
 * What a test of connections between the client and the server namespace
 * works with: the device, the namespaces, the sockets (-1 when not open)
 * and the records read.
 */
struct tt_case {
	int dev;
	struct tt_env env;
	int lfd;		/* listener */
	int cfd;		/* client */
	int afd;		/* accepted */
	uint16_t cport;
	struct tt_recs all;	/* every record read */
	struct tt_recs ours;	/* those of the test's namespaces */
	char msg[768];		/* what tt_case_collect() found wrong */
};

/*
 * Opens /dev/tcptrace and sets up the namespaces.  Formats into err and
 * returns -1 on failure, 0 on success.
 */
int tt_case_setup(struct tt_case *c, int family, bool veth,
		  char *err, size_t errlen);
/*
 * Closes what tt_case_setup() and the test opened and frees the records;
 * when the test failed, first prints the records of its namespaces.
 */
void tt_case_teardown(struct tt_case *c, bool passed);
/*
 * Reads what is queued (until nothing came for idle_ms) into c->all, and
 * selects c->ours from all of it again.  Checks with tt_record_problem()
 * every record read and their timestamps' order when all is set, else only
 * the records of the test's namespaces.  Returns NULL, or a description of
 * the first problem.
 */
const char *tt_case_collect(struct tt_case *c, int idle_ms, bool all);
/*
 * Listen on port, connect to it and accept: c->lfd, cfd, afd and cport.
 * Returns NULL, or a description of the first step that failed.
 */
const char *tt_case_establish(struct tt_case *c, uint16_t port);

/* Indices (at most max) of the PACKET records of ns, dir, flags, sport */
size_t tt_find_pkts(const struct tt_recs *o, uint32_t ns, int dir,
		    uint8_t flags, uint16_t sport, size_t *idx, size_t max);
/* Indices (at most max) of the records of type */
size_t tt_find_type(const struct tt_recs *o, int type, size_t *idx,
		    size_t max);

/*
 * The variants of a fixture whose setup calls tt_case_setup(): IPv4 and
 * IPv6 between namespaces joined by veth, and with TT_LO_VARIANTS() also in
 * one namespace over loopback.  Used after kselftest_harness.h.
 */
#define TT_VETH_VARIANTS(f)						\
	FIXTURE_VARIANT(f) {						\
		int family;						\
		bool veth;						\
	};								\
	FIXTURE_VARIANT_ADD(f, ip4_veth) {				\
		.family = AF_INET,					\
		.veth = true,						\
	};								\
	FIXTURE_VARIANT_ADD(f, ip6_veth) {				\
		.family = AF_INET6,					\
		.veth = true,						\
	}

#define TT_LO_VARIANTS(f)						\
	FIXTURE_VARIANT_ADD(f, ip4_lo) {				\
		.family = AF_INET,					\
		.veth = false,						\
	};								\
	FIXTURE_VARIANT_ADD(f, ip6_lo) {				\
		.family = AF_INET6,					\
		.veth = false,						\
	}

#endif /* TCPTRACE_UTIL_H */
