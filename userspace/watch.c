// SPDX-License-Identifier: GPL-2.0
/*
 * tcptracectl watch: stream records from the device (or a file).
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "source.h"
#include "story.h"

struct watch {
	struct filter filter;
	struct fmt_opts fmt;
	struct conn_table *conns;
	struct story_table *stories;
	bool json;
	bool summary;
	bool live;		/* reading the device */
	uint64_t count;		/* 0: unlimited */
	uint64_t printed;
	/* JSON lines not yet handed to stdout */
	char *out;
	size_t out_len;
};

/*
 * JSON lines are made in a buffer of their own and handed to stdout many
 * at a time: one copy and one call per OUT_SIZE bytes instead of per
 * line.  Anything else written to stdout puts them out first.
 */
#define OUT_SIZE	(256 * 1024)

static void out_put(struct watch *w)
{
	fwrite_unlocked(w->out, 1, w->out_len, stdout);
	w->out_len = 0;
}

void usage_watch(FILE *out)
{
	fprintf(out,
"Usage: " PROG " watch [OPTIONS]\n"
"\n"
"Print the records of " TCPTRACE_DEVICE " as they arrive, one line per record,\n"
"until interrupted (SIGINT/SIGTERM end cleanly), --count or --duration.\n"
"With --summary, print one summary per connection instead, when it ends.\n"
"The device is read by a thread of its own into a queue in memory (up to\n"
"64 MiB), so that the module's rings are emptied even while the output is\n"
"slow; that thread takes nice -10 when the process runs at nice 0 and may\n"
"(root, CAP_SYS_NICE or RLIMIT_NICE).  A first signal ends the reading and\n"
"what was read is still printed, a second one stops at once.  When the\n"
"output is not a terminal, formatting runs in the background (SCHED_IDLE,\n"
"SCHED_OTHER while the queue holds over 1 MiB); TCPTRACE_FOREGROUND=1 keeps\n"
"it at the caller's policy.\n"
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
"      --summary        one summary per connection when it ends (and for\n"
"                       those still open at the end): outcome, handshake\n"
"                       times, retransmissions, who closed first, time in\n"
"                       FIN_WAIT2/CLOSE_WAIT/TIME_WAIT, bytes each way,\n"
"                       violations; filters select connections by either end\n"
"  -i, --input FILE     read raw records from FILE ('-': standard input)\n"
"                       instead of the device, e.g. a capture made with\n"
"                       'cat " TCPTRACE_DEVICE " > FILE'\n"
"  -r, --read FILE      read the JSON Lines of an earlier 'watch --json'\n"
"                       from FILE ('-': standard input)\n"
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
"' pid PID (COMM)' when the record names a task, else by ' owner PID (COMM)'\n"
"when the process behind the local end is known, and by ' VIOLATION CODE'\n"
"for a segment that breaks a rule (see 'ladder --help').  Addresses are\n"
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
"                 rel_ack when the ISNs are known (rel_ack only with ACK set;\n"
"                 a timewait socket's segments to a new connection on its\n"
"                 ports, and a RST answering one: its own connection's)\n"
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
"  when known:    owner_pid, owner_comm: the process behind the record's\n"
"                 local end (packets: the sender's end when out, the\n"
"                 receiver's when in), learnt from its connect(), listen()\n"
"                 (for the connections it accepts) or close(), so that\n"
"                 records made in softirq (pid 0) still name it\n"
"  packet:        violation, when the segment breaks a protocol rule:\n"
"                 synack_ack_not_isn_plus_1, fin_ack_not_seq_plus_1,\n"
"                 final_ack_seq_not_fin_plus_1, seq_unexpected\n"
"\n"
"Summary (--summary --json), one object per connection:\n"
"  type \"summary\", family, client and server {addr, port, netns, pid,\n"
"  comm}, start_ns (its first SYN), end_ns, handshake_ns {client, server},\n"
"  syn_retransmits, synack_retransmits, closed_first (client|server|both),\n"
"  fin_wait2_ns, close_wait_ns, time_wait_ns {client, server}, outcome\n"
"  (closed|refused|reset by client|reset by server|timed out|aborted|open),\n"
"  bytes {client_to_server, server_to_client}, violations [...],\n"
"  lost_records, complete; null where unknown\n"
"\n"
"EXAMPLES\n"
"  " PROG " watch\n"
"  " PROG " watch -p 8080\n"
"  " PROG " watch -6 -p 443 -c 10\n"
"  " PROG " watch --json -c 20 > out.jsonl\n"
"  " PROG " watch --duration 5 -n 4026531840 | tee trace.txt\n"
"  " PROG " watch --json -i capture.bin\n"
"  " PROG " watch --summary -p 8080\n"
"  " PROG " watch --summary --json -r out.jsonl\n");
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

int filter_option(struct filter *f, int c, const char *arg)
{
	uint64_t v;

	switch (c) {
	case '4':
		f->v4 = true;
		return 1;
	case '6':
		f->v6 = true;
		return 1;
	case 'p':
		return add_port("--port", arg, f->ports, &f->nports) ? -1 : 1;
	case 'L':
		return add_port("--lport", arg, f->lports, &f->nlports) ?
		       -1 : 1;
	case 'D':
		return add_port("--rport", arg, f->rports, &f->nrports) ?
		       -1 : 1;
	case 'n':
		if (parse_uint("--netns", arg, 1, UINT32_MAX, &v))
			return -1;
		if (f->nnetns == MAX_FILTER) {
			errmsg("too many --netns options (at most %d)",
			       MAX_FILTER);
			return -1;
		}
		f->netns[f->nnetns++] = (uint32_t)v;
		return 1;
	}
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

static bool netns_in(const struct filter *f, uint32_t netns)
{
	size_t i;

	for (i = 0; i < f->nnetns; i++)
		if (f->netns[i] == netns)
			return true;
	return false;
}

static bool family_in(const struct filter *f, unsigned int family)
{
	return !(f->v4 || f->v6) || (f->v4 && family == AF_INET) ||
	       (f->v6 && family == AF_INET6);
}

bool filter_match(const struct filter *f, const struct tcptrace_record *r)
{
	uint16_t lport = r->sport, rport = r->dport;

	if (r->type == TCPTRACE_T_LOST)
		return true;
	if (!family_in(f, r->family))
		return false;
	if (f->nnetns && !netns_in(f, r->netns))
		return false;
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

/*
 * A connection matches when one of its ends does: --lport and --rport
 * name the server's and the client's port (the connection's local end is
 * that of whoever looks), --netns either end's namespace.
 */
bool filter_story(const struct filter *f, const struct story *st)
{
	const struct story_side *c = &st->side[STORY_CLIENT];
	const struct story_side *s = &st->side[STORY_SERVER];

	if (!family_in(f, st->family))
		return false;
	if (f->nnetns && !(c->netns_known && netns_in(f, c->netns)) &&
	    !(s->netns_known && netns_in(f, s->netns)))
		return false;
	if (f->nports && !port_in(f->ports, f->nports, c->port) &&
	    !port_in(f->ports, f->nports, s->port))
		return false;
	if (f->nlports && !port_in(f->lports, f->nlports, c->port) &&
	    !port_in(f->lports, f->nlports, s->port))
		return false;
	if (f->nrports && !port_in(f->rports, f->nrports, c->port) &&
	    !port_in(f->rports, f->nrports, s->port))
		return false;
	return true;
}

static bool done(const struct watch *w)
{
	return w->count && w->printed >= w->count;
}

static int on_story_end(void *ctx, const struct story *st)
{
	struct watch *w = ctx;

	if (!w->summary || done(w) || !filter_story(&w->filter, st))
		return 0;
	out_put(w);
	if (w->json)
		summary_json(stdout, st);
	else
		summary_text(stdout, st);
	w->printed++;
	return 0;
}

static int on_record(void *ctx, const struct tcptrace_record *r)
{
	struct watch *w = ctx;
	struct story_ann ann;
	struct isns isn;

	conn_track(w->conns, r, &isn);
	story_feed(w->stories, r, &ann);
	if (ann.old_numbers) {
		isn.s_known = ann.old_s_known;
		isn.s_isn = ann.old_s_isn;
		isn.d_known = ann.old_d_known;
		isn.d_isn = ann.old_d_isn;
	}
	if (w->summary)
		return done(w);
	if (!filter_match(&w->filter, r))
		return 0;
	if (w->json) {
		w->out_len = (size_t)(format_json(w->out + w->out_len, r, &isn,
						  &ann) - w->out);
		if (w->out_len > OUT_SIZE - JSON_LINE_MAX)
			out_put(w);
	} else {
		format_text(stdout, r, &isn, &w->fmt, &ann);
	}
	w->printed++;
	return done(w);
}

static int flush_out(void *ctx)
{
	struct watch *w = ctx;

	/* summaries of what ended a while ago, from the device */
	if (w->summary && w->live && story_expire(w->stories, now_ns()))
		return -1;
	out_put(w);
	if (fflush(stdout) || ferror(stdout)) {
		errmsg("error writing output: %s",
		       strerror(errno ? errno : EIO));
		return -1;
	}
	return 0;
}

int cmd_watch(int argc, char **argv)
{
	enum { OPT_DURATION = 0x100, OPT_SUMMARY };
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "lport", required_argument, NULL, 'L' },
		{ "rport", required_argument, NULL, 'D' },
		{ "netns", required_argument, NULL, 'n' },
		{ "count", required_argument, NULL, 'c' },
		{ "duration", required_argument, NULL, OPT_DURATION },
		{ "absolute", no_argument, NULL, 'T' },
		{ "json", no_argument, NULL, 'j' },
		{ "summary", no_argument, NULL, OPT_SUMMARY },
		{ "input", required_argument, NULL, 'i' },
		{ "read", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct source src = { .kind = SOURCE_DEVICE };
	struct watch w = { 0 };
	int err = 0, c, ret;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":46p:L:D:n:c:Tji:r:h", opts,
				NULL)) != -1) {
		ret = filter_option(&w.filter, c, optarg);
		if (ret < 0)
			return EXIT_USAGE;
		if (ret > 0)
			continue;
		switch (c) {
		case 'c':
			if (parse_uint("--count", optarg, 1, UINT64_MAX,
				       &w.count))
				return EXIT_USAGE;
			break;
		case OPT_DURATION:
			if (parse_seconds("--duration", optarg, &src.duration))
				return EXIT_USAGE;
			break;
		case 'T':
			w.fmt.absolute = true;
			break;
		case 'j':
			w.json = true;
			break;
		case OPT_SUMMARY:
			w.summary = true;
			break;
		case 'i':
		case 'r':
			if (src.kind != SOURCE_DEVICE) {
				errmsg("watch: give one of --input and --read, once");
				return EXIT_USAGE;
			}
			src.kind = c == 'i' ? SOURCE_RAW : SOURCE_JSON;
			src.path = optarg;
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
	w.stories = story_table_new(0, false, on_story_end, &w);
	w.out = malloc(OUT_SIZE);
	if (!w.conns || !w.stories || !w.out) {
		errmsg("out of memory");
		err = 1;
		goto cleanup;
	}
	w.live = src.kind == SOURCE_DEVICE;
	if (w.summary)
		src.tick = 0.25;
	/*
	 * Output is flushed after each batch of records read: into a pipe or
	 * a file, one write() for the batch rather than one per 4 KiB.
	 */
	if (!isatty(STDOUT_FILENO)) {
		setvbuf(stdout, NULL, _IOFBF, 256 * 1024);
		/* nobody watches it happen: format in the background */
		src.background = true;
	}
	err = source_run(&src, on_record, flush_out, &w);
	/* lines made before an error or the end, if no flush came since */
	out_put(&w);
	if (story_evicted(w.stories))
		warnmsg("watch: over %u connections followed at once: the oldest %llu were followed no further (summarised early as incomplete; their later records have no owner_pid, owner_comm or protocol checks)",
			STORY_MAX_OPEN,
			(unsigned long long)story_evicted(w.stories));
	if (conn_tw_forgotten(w.conns))
		warnmsg("watch: over %u timewait sockets at once: the start of %llu of them was forgotten; their timewait_end lines have no duration",
			CONN_TW_MAX,
			(unsigned long long)conn_tw_forgotten(w.conns));
	/* connections still open at the end are summarised too */
	if (w.summary && !err) {
		story_flush(w.stories);
		if (flush_out(&w))
			err = 1;
	}
cleanup:
	story_table_free(w.stories);
	conn_table_free(w.conns);
	free(w.out);
	return err != 0;
}
