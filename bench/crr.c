// SPDX-License-Identifier: GPL-2.0
/*
 * crr: TCP connect/request/response workload, like netperf's TCP_CRR.
 *
 *   crr server [-p PORT] [-n NPORTS] [-w WORKERS] ADDR
 *	Listen on ADDR, ports PORT..PORT+NPORTS-1 (default 5001, 1 port),
 *	with WORKERS processes per port (default 8) taking connections in
 *	turn: each reads the 1-byte request, writes the 1-byte reply, waits
 *	for the client's FIN and closes.  Runs until SIGTERM or SIGINT.  Prints
 *	"ready" on stdout once every port listens.
 *
 *   crr client [-p PORT] [-n NPORTS] [-P PROCS] [-t SECONDS] [-r RATE] ADDR
 *	PROCS processes (default 1), each connecting in a loop to ADDR on
 *	the ports in turn: connect, write 1 byte, read 1 byte, close (the
 *	client closes first and keeps the TIME_WAIT).  Stops after SECONDS
 *	(default 5; fractions allowed).  With RATE, the processes together
 *	start at most RATE connections per second, evenly spaced.  Prints
 *	one JSON object: {"conns":N,"errors":N,"secs":S,"rate":R}.
 *
 * ADDR is an IPv4 or IPv6 literal.  Errors of single connections (refused,
 * reset, timed out) are counted, not fatal; the first few are reported on
 * stderr.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PORTS	64
#define MAX_PROCS	256

struct opts {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int port;
	int nports;
	int procs;
	int workers;
	double secs;
	double rate;
};

/* What each client process reports back, in shared memory. */
struct result {
	uint64_t conns;
	uint64_t errors;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: crr server [-p PORT] [-n NPORTS] [-w WORKERS] ADDR\n"
		"       crr client [-p PORT] [-n NPORTS] [-P PROCS] [-t SECONDS] [-r RATE] ADDR\n");
	exit(2);
}

static double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void set_port(struct opts *o, int port)
{
	if (o->addr.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&o->addr)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)&o->addr)->sin_port = htons(port);
}

static void parse_addr(struct opts *o, const char *s)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&o->addr;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&o->addr;

	memset(&o->addr, 0, sizeof(o->addr));
	if (inet_pton(AF_INET, s, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		o->addrlen = sizeof(*sin);
	} else if (inet_pton(AF_INET6, s, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		o->addrlen = sizeof(*sin6);
	} else {
		fprintf(stderr, "crr: not an address: %s\n", s);
		exit(2);
	}
}

static void parse_opts(struct opts *o, int argc, char **argv)
{
	int c;

	o->port = 5001;
	o->nports = 1;
	o->procs = 1;
	o->workers = 8;
	o->secs = 5;
	o->rate = 0;
	while ((c = getopt(argc, argv, "p:n:P:w:t:r:")) != -1) {
		switch (c) {
		case 'p':
			o->port = atoi(optarg);
			break;
		case 'n':
			o->nports = atoi(optarg);
			break;
		case 'P':
			o->procs = atoi(optarg);
			break;
		case 'w':
			o->workers = atoi(optarg);
			break;
		case 't':
			o->secs = atof(optarg);
			break;
		case 'r':
			o->rate = atof(optarg);
			break;
		default:
			usage();
		}
	}
	if (optind + 1 != argc || o->port < 1 || o->nports < 1 ||
	    o->nports > MAX_PORTS || o->port + o->nports > 65536 ||
	    o->procs < 1 || o->procs > MAX_PROCS || o->workers < 1 ||
	    o->workers > MAX_PROCS || o->secs <= 0 || o->rate < 0)
		usage();
	parse_addr(o, argv[optind]);
}

/* One connection, server side; errors only end it early. */
static void serve_one(int fd)
{
	char buf[64];
	ssize_t n;

	n = read(fd, buf, 1);
	if (n == 1 && write(fd, buf, 1) == 1) {
		/* wait for the client's FIN, so that the client closes first */
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			;
	}
	close(fd);
}

static void worker(int lfd)
{
	while (!stop) {
		int fd = accept(lfd, NULL, NULL);

		if (fd >= 0)
			serve_one(fd);
		else if (errno != EINTR && errno != ECONNABORTED)
			die("accept");
	}
	exit(0);
}

static int cmd_server(struct opts *o)
{
	pid_t pids[MAX_PROCS];
	int nw = o->workers * o->nports;
	int lfd[MAX_PORTS];
	struct sigaction sa;
	int i, one = 1;

	for (i = 0; i < o->nports; i++) {
		lfd[i] = socket(o->addr.ss_family, SOCK_STREAM, 0);
		if (lfd[i] < 0)
			die("socket");
		setsockopt(lfd[i], SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		set_port(o, o->port + i);
		if (bind(lfd[i], (struct sockaddr *)&o->addr, o->addrlen))
			die("bind");
		if (listen(lfd[i], 4096))
			die("listen");
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (nw > MAX_PROCS)
		usage();
	for (i = 0; i < nw; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			die("fork");
		if (!pids[i])
			worker(lfd[i % o->nports]);
	}
	printf("ready\n");
	fflush(stdout);
	while (!stop)
		pause();
	for (i = 0; i < nw; i++)
		kill(pids[i], SIGKILL);
	for (i = 0; i < nw; i++)
		waitpid(pids[i], NULL, 0);
	return 0;
}

/* One connection, client side: 0, or -1 and errno. */
static int crr_one(struct opts *o)
{
	struct linger lg = { .l_onoff = 0 };
	char c = 'q';
	int fd, one = 1;

	fd = socket(o->addr.ss_family, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	if (connect(fd, (struct sockaddr *)&o->addr, o->addrlen) ||
	    write(fd, &c, 1) != 1 || read(fd, &c, 1) != 1) {
		int err = errno ? errno : EPIPE;

		close(fd);
		errno = err;
		return -1;
	}
	close(fd);
	return 0;
}

static void client_proc(struct opts *o, int idx, struct result *res)
{
	double start = now_sec(), end = start + o->secs, next = start;
	double gap = o->rate > 0 ? o->procs / o->rate : 0;
	int port = idx % o->nports;
	unsigned int reported = 0;

	/* spread the processes over the interval */
	next += gap * idx / o->procs;
	while (!stop) {
		double t = now_sec();

		if (t >= end)
			break;
		if (gap > 0) {
			if (t < next) {
				struct timespec ts;
				double d = next - t;

				ts.tv_sec = (time_t)d;
				ts.tv_nsec = (long)((d - ts.tv_sec) * 1e9);
				nanosleep(&ts, NULL);
				continue;
			}
			next += gap;
			/* a late process does not catch up in a burst */
			if (next < t - 0.1)
				next = t;
		}
		set_port(o, o->port + port);
		port = (port + 1) % o->nports;
		errno = 0;
		if (crr_one(o)) {
			res->errors++;
			if (reported++ < 3)
				fprintf(stderr, "crr: client %d: %s\n", idx,
					strerror(errno));
		} else {
			res->conns++;
		}
	}
	exit(0);
}

static int cmd_client(struct opts *o)
{
	struct result *res;
	uint64_t conns = 0, errors = 0;
	double start, secs;
	struct sigaction sa;
	int i;

	res = mmap(NULL, sizeof(*res) * o->procs, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (res == MAP_FAILED)
		die("mmap");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	start = now_sec();
	for (i = 0; i < o->procs; i++) {
		pid_t pid = fork();

		if (pid < 0)
			die("fork");
		if (!pid)
			client_proc(o, i, &res[i]);
	}
	while (wait(NULL) > 0 || errno == EINTR)
		;
	secs = now_sec() - start;
	for (i = 0; i < o->procs; i++) {
		conns += res[i].conns;
		errors += res[i].errors;
	}
	printf("{\"conns\":%llu,\"errors\":%llu,\"secs\":%.3f,\"rate\":%.1f}\n",
	       (unsigned long long)conns, (unsigned long long)errors, secs,
	       conns / secs);
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;

	if (argc < 2)
		usage();
	memset(&o, 0, sizeof(o));
	parse_opts(&o, argc - 1, argv + 1);
	if (!strcmp(argv[1], "server"))
		return cmd_server(&o);
	if (!strcmp(argv[1], "client"))
		return cmd_client(&o);
	usage();
	return 2;
}
