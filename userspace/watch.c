// SPDX-License-Identifier: GPL-2.0
/*
 * tcptracectl watch: stream records from the device (or a file).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "tcptracectl.h"

#define MAX_FILTER	64
/* Room for a batch of records plus the rest of one record of any len. */
#define BUF_SIZE	(128 * 1024)

struct filter {
	bool v4, v6;
	size_t nports, nlports, nrports, nnetns;
	uint16_t ports[MAX_FILTER];
	uint16_t lports[MAX_FILTER];
	uint16_t rports[MAX_FILTER];
	uint32_t netns[MAX_FILTER];
};

struct watch {
	struct filter filter;
	struct fmt_opts fmt;
	struct conn_table *conns;
	bool json;
	bool device;
	bool warned;
	uint64_t count;		/* 0: unlimited */
	uint64_t printed;
	uint64_t offset;	/* input offset of the next record */
	double duration;	/* 0: unlimited */
};

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

void usage_watch(FILE *out)
{
	fprintf(out,
"Usage: " PROG " watch [OPTIONS]\n"
"\n"
"Print the records of " TCPTRACE_DEVICE " as they arrive, one line per record,\n"
"until interrupted (SIGINT/SIGTERM end cleanly), --count or --duration.\n"
"\n"
"Options:\n"
"  -4                   only IPv4 records\n"
"  -6                   only IPv6 records\n"
"  -p, --port PORT      only records with source or destination port PORT\n"
"                       (local or remote end); may be repeated\n"
"  -L, --lport PORT     only records whose local port is PORT; may be repeated\n"
"  -D, --rport PORT     only records whose remote port is PORT; may be repeated\n"
"  -n, --netns INODE    only records of the network namespace with this inode\n"
"                       number ('stat -Lc %%i /proc/PID/ns/net'); may be repeated\n"
"  -c, --count N        stop after printing N records\n"
"      --duration SEC   stop after SEC seconds, even without traffic\n"
"                       (fractions allowed)\n"
"  -T, --absolute       print absolute CLOCK_MONOTONIC timestamps\n"
"                       (seconds.nanoseconds) instead of seconds since the\n"
"                       first printed record\n"
"  -j, --json           print JSON Lines instead of text\n"
"  -i, --input FILE     read raw records from FILE ('-': standard input)\n"
"                       instead of the device, e.g. a capture made with\n"
"                       'cat " TCPTRACE_DEVICE " > FILE'\n"
"  -h, --help           print this help and exit\n"
"\n"
"Filters of different kinds must all match; repeated values of one kind\n"
"match when any of them does.  LOST records are always printed.  Records of\n"
"unknown types or newer versions are skipped with a warning.\n"
"\n"
"Text output:\n"
"  TIME net:[INODE] in|out SRC > DST [FLAGS] seq N (rel R) ack N (rel R)\n"
"       win W len L\n"
"  TIME net:[INODE] TYPE LOCAL <-> REMOTE DETAILS\n"
"  TIME *** LOST N records (cpu C) ***\n"
"where 'ack' is shown only with ACK set, each line followed by\n"
"' pid PID (COMM)' when the record names a task.  Addresses are\n"
"ADDR:PORT for IPv4 and [ADDR]:PORT for IPv6; FLAGS are tcpdump's letters\n"
"F S R P . U E W, '.' being ACK ('none' when no flag is set); state changes\n"
"read 'OLD -> NEW' with the kernel's state names.  Relative numbers ('rel')\n"
"count from each side's ISN (its SYN has seq 0), once the SYN, the SYN-ACK\n"
"or a SYN-ACK retransmission of the connection has been seen.\n"
"\n"
"JSON output (--json), one object per line:\n"
"  every record:  ts_ns, type, netns, family (4, 6; 0 for lost), cpu, pid,\n"
"                 comm (only when pid is not 0), sock_id (only when not 0)\n"
"  all but lost:  saddr, sport, daddr, dport (packet: source and destination\n"
"                 of the segment; others: local and remote end)\n"
"  packet:        dir (in|out), flags, seq, ack, win, len, and rel_seq,\n"
"                 rel_ack when the ISNs are known (rel_ack only with ACK set)\n"
"  state:         old_state, new_state, snd_nxt, rcv_nxt, snd_una\n"
"  synack_retransmit: snt_isn, rcv_isn, num_retrans\n"
"  retransmit:    flags, seq, end_seq, state, and rel_seq, rel_end_seq when\n"
"                 the local ISN is known\n"
"  reset_sent, reset_received, destroy: state, snd_nxt, rcv_nxt\n"
"  timewait:      state, tw_substate, timeo_ms, snd_nxt, rcv_nxt\n"
"  timewait_end:  tw_substate, end (expired|killed), snd_nxt, rcv_nxt, and\n"
"                 duration_ns when its timewait record was seen\n"
"  listen_overflow: reason (accept_queue_full_syn_dropped,\n"
"                 accept_queue_full_ack_dropped, syn_queue_full), syn_queue,\n"
"                 accept_queue, backlog (saddr/sport: the listener;\n"
"                 daddr/dport: the peer turned away)\n"
"  lost:          count\n"
"\n"
"EXAMPLES\n"
"  " PROG " watch\n"
"  " PROG " watch -p 8080\n"
"  " PROG " watch -6 -p 443 -c 10\n"
"  " PROG " watch --json -c 20 > out.jsonl\n"
"  " PROG " watch --duration 5 -n 4026531840 | tee trace.txt\n"
"  " PROG " watch --json -i capture.bin\n");
}

static int add_port(const char *opt, const char *arg, uint16_t *ports,
		    size_t *n)
{
	uint64_t v;

	if (parse_uint(opt, arg, 1, 65535, &v))
		return -1;
	if (*n == MAX_FILTER) {
		errmsg("too many %s options (at most %d)", opt, MAX_FILTER);
		return -1;
	}
	ports[(*n)++] = (uint16_t)v;
	return 0;
}

static bool port_in(const uint16_t *ports, size_t n, uint16_t port)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (ports[i] == port)
			return true;
	return false;
}

static bool filter_match(const struct filter *f,
			 const struct tcptrace_record *r)
{
	uint16_t lport = r->sport, rport = r->dport;
	size_t i;

	if (r->type == TCPTRACE_T_LOST)
		return true;
	if ((f->v4 || f->v6) &&
	    !(f->v4 && r->family == AF_INET) &&
	    !(f->v6 && r->family == AF_INET6))
		return false;
	if (f->nnetns) {
		for (i = 0; i < f->nnetns; i++)
			if (f->netns[i] == r->netns)
				break;
		if (i == f->nnetns)
			return false;
	}
	if (f->nports && !port_in(f->ports, f->nports, r->sport) &&
	    !port_in(f->ports, f->nports, r->dport))
		return false;
	/* A segment that arrived has the local end as its destination. */
	if (r->type == TCPTRACE_T_PACKET && r->dir == TCPTRACE_DIR_IN) {
		lport = r->dport;
		rport = r->sport;
	}
	if (f->nlports && !port_in(f->lports, f->nlports, lport))
		return false;
	if (f->nrports && !port_in(f->rports, f->nrports, rport))
		return false;
	return true;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

static bool done(const struct watch *w)
{
	return stop_signal || (w->count && w->printed >= w->count);
}

/*
 * Prints the whole records in buf[0..len) and returns how many bytes they
 * took; the rest is an incomplete record.  Returns -1 on a malformed record.
 */
static ssize_t process(struct watch *w, const unsigned char *buf, size_t len)
{
	struct tcptrace_record r;
	size_t pos = 0;
	struct isns isn;
	uint16_t rlen;
	uint8_t version, type;

	while (len - pos >= 4 && !done(w)) {
		memcpy(&rlen, buf + pos, sizeof(rlen));
		version = buf[pos + 2];
		type = buf[pos + 3];
		if (rlen < TCPTRACE_RECORD_SIZE || version == 0) {
			errmsg("malformed record at input offset %llu: len %u, version %u",
			       (unsigned long long)(w->offset + pos), rlen,
			       version);
			return -1;
		}
		if (len - pos < rlen)
			break;
		if (rlen > TCPTRACE_RECORD_SIZE ||
		    version > TCPTRACE_RECORD_VERSION ||
		    !record_type_name(type)) {
			if (!w->warned)
				warnmsg("skipping records of unknown type or newer version (first: type %u, version %u, len %u)",
					type, version, rlen);
			w->warned = true;
			pos += rlen;
			continue;
		}
		memcpy(&r, buf + pos, sizeof(r));
		pos += rlen;
		conn_track(w->conns, &r, &isn);
		if (!filter_match(&w->filter, &r))
			continue;
		if (w->json)
			format_json(stdout, &r, &isn);
		else
			format_text(stdout, &r, &isn, &w->fmt);
		w->printed++;
	}
	w->offset += pos;
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

static int watch_loop(struct watch *w, int fd, const sigset_t *mask)
{
	unsigned char *buf = NULL;
	uint64_t deadline = 0;
	size_t have = 0, room;
	bool hup = false;
	ssize_t n, used;
	int err = 0, ready;

	buf = malloc(BUF_SIZE);
	if (!buf) {
		errmsg("out of memory");
		err = ENOMEM;
		goto cleanup;
	}
	if (w->duration > 0)
		deadline = now_ns() + (uint64_t)(w->duration * 1e9);

	while (!done(w)) {
		if (deadline && now_ns() >= deadline)
			break;
		if (w->device) {
			ready = wait_readable(fd, deadline, mask, &hup);
			if (ready < 0) {
				err = EIO;
				goto cleanup;
			}
			if (!ready && !hup)
				continue;
		}
		/* The device wants room for whole records. */
		room = (BUF_SIZE - have) & ~(size_t)(TCPTRACE_RECORD_SIZE - 1);
		n = read(fd, buf + have, room);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			err = errno;
			if (err == EBUSY && w->device)
				errmsg("%s is already being read by another process (one reader at a time)",
				       device_path());
			else
				errmsg("read %s: %s", w->device ?
				       device_path() : "input", strerror(err));
			goto cleanup;
		}
		if (n == 0) {
			/* A device read of 0 is no data, unless hung up. */
			if (w->device && !hup)
				continue;
			if (have) {
				errmsg("truncated record at input offset %llu: %zu of its bytes present",
				       (unsigned long long)w->offset, have);
				err = EINVAL;
			}
			break;
		}
		have += (size_t)n;
		used = process(w, buf, have);
		if (fflush(stdout) || ferror(stdout)) {
			err = errno ? errno : EIO;
			errmsg("error writing output: %s", strerror(err));
			goto cleanup;
		}
		if (used < 0) {
			err = EINVAL;
			goto cleanup;
		}
		have -= (size_t)used;
		memmove(buf, buf + used, have);
	}
cleanup:
	free(buf);
	return err;
}

int cmd_watch(int argc, char **argv)
{
	enum { OPT_DURATION = 0x100 };
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "lport", required_argument, NULL, 'L' },
		{ "rport", required_argument, NULL, 'D' },
		{ "netns", required_argument, NULL, 'n' },
		{ "count", required_argument, NULL, 'c' },
		{ "duration", required_argument, NULL, OPT_DURATION },
		{ "absolute", no_argument, NULL, 'T' },
		{ "json", no_argument, NULL, 'j' },
		{ "input", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sigaction sa = { .sa_handler = on_signal };
	struct watch w = { .device = true };
	struct filter *f = &w.filter;
	const char *input = NULL;
	sigset_t block, orig;
	bool masked = false;
	int fd = -1, err = 0, c;
	uint64_t v;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":46p:L:D:n:c:Tji:h", opts,
				NULL)) != -1) {
		switch (c) {
		case '4':
			f->v4 = true;
			break;
		case '6':
			f->v6 = true;
			break;
		case 'p':
			if (add_port("--port", optarg, f->ports, &f->nports))
				return EXIT_USAGE;
			break;
		case 'L':
			if (add_port("--lport", optarg, f->lports, &f->nlports))
				return EXIT_USAGE;
			break;
		case 'D':
			if (add_port("--rport", optarg, f->rports, &f->nrports))
				return EXIT_USAGE;
			break;
		case 'n':
			if (parse_uint("--netns", optarg, 1, UINT32_MAX, &v))
				return EXIT_USAGE;
			if (f->nnetns == MAX_FILTER) {
				errmsg("too many --netns options (at most %d)",
				       MAX_FILTER);
				return EXIT_USAGE;
			}
			f->netns[f->nnetns++] = (uint32_t)v;
			break;
		case 'c':
			if (parse_uint("--count", optarg, 1, UINT64_MAX,
				       &w.count))
				return EXIT_USAGE;
			break;
		case OPT_DURATION:
			if (parse_seconds("--duration", optarg, &w.duration))
				return EXIT_USAGE;
			break;
		case 'T':
			w.fmt.absolute = true;
			break;
		case 'j':
			w.json = true;
			break;
		case 'i':
			input = optarg;
			break;
		case 'h':
			usage_watch(stdout);
			return 0;
		default:
			return bad_option("watch", c, argv);
		}
	}
	if (optind < argc) {
		errmsg("watch: unexpected argument '%s'", argv[optind]);
		return EXIT_USAGE;
	}

	w.conns = conn_table_new();
	if (!w.conns) {
		errmsg("out of memory");
		err = ENOMEM;
		goto cleanup;
	}
	if (input) {
		w.device = false;
		if (!strcmp(input, "-")) {
			fd = STDIN_FILENO;
		} else {
			fd = open(input, O_RDONLY | O_CLOEXEC);
			if (fd < 0) {
				err = errno;
				errmsg("cannot open %s: %s", input,
				       strerror(err));
				goto cleanup;
			}
		}
	} else if (device_open(O_NONBLOCK, &fd)) {
		err = EIO;
		goto cleanup;
	}

	/*
	 * Signals stay blocked except inside ppoll(), so that one arriving
	 * just before it cannot be missed.  A file is read without waiting
	 * for it, so signals are left unblocked to interrupt that read.
	 */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	if (w.device) {
		sigprocmask(SIG_BLOCK, &block, &orig);
		masked = true;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	err = watch_loop(&w, fd, masked ? &orig : NULL);
cleanup:
	if (fd > STDIN_FILENO)
		close(fd);
	conn_table_free(w.conns);
	if (masked)
		sigprocmask(SIG_SETMASK, &orig, NULL);
	return err != 0;
}
