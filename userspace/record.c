// SPDX-License-Identifier: GPL-2.0
/*
 * tcptracectl record: write the recorded segments to a pcap file.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pcapw.h"
#include "source.h"
#include "tcptracectl.h"

#define MAX_FILTER	64

struct recorder {
	bool v4, v6;
	unsigned int dir;	/* TCPTRACE_DIR_*, 0: both */
	size_t nports, nnetns;
	uint16_t ports[MAX_FILTER];
	uint32_t netns[MAX_FILTER];
	uint64_t count;		/* 0: unlimited */
	uint64_t lost;		/* records the module lost */
	struct pcapw *w;
};

void usage_record(FILE *out)
{
	fprintf(out,
"Usage: " PROG " record -w FILE [OPTIONS]\n"
"\n"
"Write the TCP segments recorded by the tcptrace module to FILE as a pcap\n"
"file for tcpdump, tshark or Wireshark, one packet per PACKET record, until\n"
"interrupted (SIGINT/SIGTERM end cleanly, with a complete file), --count or\n"
"--duration.  The records come from " TCPTRACE_DEVICE ", or from a file\n"
"with -i or -r.  At the end, 'N packets written to FILE' goes to stderr.\n"
"Packets are written in the background (SCHED_IDLE; SCHED_OTHER while over\n"
"1 MiB of records wait); TCPTRACE_FOREGROUND=1 keeps the caller's policy.\n"
"\n"
"Options:\n"
"  -w, --write FILE     the pcap file to create ('-': standard output);\n"
"                       required\n"
"  -c, --count N        stop after writing N packets\n"
"      --link TYPE      link type: 'ether' (default: Ethernet, DLT_EN10MB)\n"
"                       or 'raw' (packets start with the IP header, DLT_RAW)\n"
"      --dir DIR        'in': only segments as they arrived in a network\n"
"                       namespace, 'out': only as they left one, 'both'\n"
"                       (default)\n"
"  -4                   only IPv4 segments\n"
"  -6                   only IPv6 segments\n"
"  -p, --port PORT      only segments with source or destination port PORT;\n"
"                       may be repeated\n"
"  -n, --netns INODE    only segments seen in the network namespace with\n"
"                       this inode number ('stat -Lc %%i /proc/PID/ns/net');\n"
"                       may be repeated\n"
"      --duration SEC   stop after SEC seconds, even without traffic\n"
"                       (fractions allowed)\n"
"  -i, --input FILE     read raw records from FILE ('-': standard input)\n"
"                       instead of the device, e.g. a capture made with\n"
"                       'cat " TCPTRACE_DEVICE " > FILE'\n"
"  -r, --read FILE      read the JSON Lines of 'watch --json' from FILE\n"
"                       ('-': standard input) instead of the device\n"
"  -h, --help           print this help and exit\n"
"\n"
"Filters of different kinds must all match; repeated values of one kind\n"
"match when any of them does.\n"
"\n"
"Packets: headers only, as a capture with a short snapshot length has\n"
"them.  Each packet's captured length is that of its headers, its original\n"
"length includes the payload, so tshark shows the segment's real size and\n"
"TCP length.  Seq, ack, flags, window and ports are the record's; the TCP\n"
"header keeps its length, its options (not recorded) are zero: End of\n"
"Option List and padding.  IPv4: TOS 0, ID 0, DF, TTL 64, a valid header\n"
"checksum; IPv6: traffic class and flow label 0, hop limit 64.  The TCP\n"
"checksum is computed with the payload taken as absent: it is valid for\n"
"segments without payload.  JSON Lines have no header length: the TCP\n"
"header is then 20 bytes.  With --link ether the Ethernet addresses are\n"
"02:00:00:00:00:01 for the lower end of a connection (address, then port)\n"
"and 02:00:00:00:00:02 for the other.\n"
"\n"
"Timestamps: records carry CLOCK_MONOTONIC times; the wall-clock time\n"
"written is that plus (CLOCK_REALTIME - CLOCK_MONOTONIC) measured once\n"
"when " PROG " starts, in nanoseconds.  Records read from a file get the\n"
"same offset: their times are right only if the file was recorded since\n"
"this machine last booted; the times between packets are always exact.\n"
"\n"
"A segment between two network namespaces of this machine is recorded\n"
"twice, as it leaves one (out) and as it arrives in the other (in), and so\n"
"appears twice in the file, as a capture on both interfaces would show it.\n"
"Keep one of them with --dir out (or in), or with -n the namespace of one\n"
"end.  LOST records are not packets: when there are some, a warning tells\n"
"how many records the module lost.\n"
"\n"
"EXAMPLES\n"
"  " PROG " record -w out.pcap -p 8080\n"
"  " PROG " record -w out.pcap -c 100 --dir out\n"
"  " PROG " record -w out.pcap -n 4026531840 --duration 10\n"
"  " PROG " record -w - -p 443 | tshark -r -\n"
"  " PROG " record -w trace.pcap --link raw -i capture.bin\n"
"  " PROG " record -w trace.pcap -r out.jsonl\n"
"  tshark -r out.pcap -o tcp.relative_sequence_numbers:FALSE\n");
}

/* Parses the value of a filter that has @n values so far. */
static int add_filter(const char *opt, const char *arg, uint64_t max,
		      size_t n, uint64_t *v)
{
	if (parse_uint(opt, arg, 1, max, v))
		return -1;
	if (n == MAX_FILTER) {
		errmsg("too many %s options (at most %d)", opt, MAX_FILTER);
		return -1;
	}
	return 0;
}

static bool match(const struct recorder *rc, const struct tcptrace_record *r)
{
	size_t i;

	if (rc->dir && r->dir != rc->dir)
		return false;
	if ((rc->v4 || rc->v6) &&
	    !(rc->v4 && r->family == AF_INET) &&
	    !(rc->v6 && r->family == AF_INET6))
		return false;
	if (rc->nnetns) {
		for (i = 0; i < rc->nnetns; i++)
			if (rc->netns[i] == r->netns)
				break;
		if (i == rc->nnetns)
			return false;
	}
	if (rc->nports) {
		for (i = 0; i < rc->nports; i++)
			if (rc->ports[i] == r->sport ||
			    rc->ports[i] == r->dport)
				break;
		if (i == rc->nports)
			return false;
	}
	return true;
}

static int on_record(void *ctx, const struct tcptrace_record *r)
{
	struct recorder *rc = ctx;

	if (r->type == TCPTRACE_T_LOST) {
		rc->lost += r->lost.count;
		return 0;
	}
	if (r->type != TCPTRACE_T_PACKET || !match(rc, r))
		return 0;
	if (pcapw_write(rc->w, r))
		return -1;
	return rc->count && pcapw_count(rc->w) >= rc->count;
}

static int on_flush(void *ctx)
{
	struct recorder *rc = ctx;

	return pcapw_flush(rc->w);
}

/* Whether the files @a and @b (neither "-") are one. */
static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	if (!strcmp(a, "-") || !strcmp(b, "-"))
		return false;
	return !stat(a, &sa) && !stat(b, &sb) && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

/*
 * Whether the input can be opened, so that a missing module or input file
 * is told before the output file is created.
 */
static int check_input(const struct source *s)
{
	int fd = -1;

	if (s->kind == SOURCE_DEVICE) {
		if (device_open(O_NONBLOCK, &fd))
			return -1;
	} else if (strcmp(s->path, "-")) {
		fd = open(s->path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			errmsg("cannot open %s: %s", s->path, strerror(errno));
			return -1;
		}
	}
	if (fd >= 0)
		close(fd);
	return 0;
}

int cmd_record(int argc, char **argv)
{
	enum { OPT_DURATION = 0x100, OPT_LINK, OPT_DIR };
	static const struct option opts[] = {
		{ "write", required_argument, NULL, 'w' },
		{ "count", required_argument, NULL, 'c' },
		{ "link", required_argument, NULL, OPT_LINK },
		{ "dir", required_argument, NULL, OPT_DIR },
		{ "port", required_argument, NULL, 'p' },
		{ "netns", required_argument, NULL, 'n' },
		{ "duration", required_argument, NULL, OPT_DURATION },
		{ "input", required_argument, NULL, 'i' },
		{ "read", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct source src = { .kind = SOURCE_DEVICE };
	enum pcapw_link link = PCAPW_LINK_ETHER;
	const char *out = NULL, *input = NULL, *json = NULL, *name;
	struct recorder rc = { 0 };
	uint64_t n, v;
	int err = 0, c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":w:c:46p:n:i:r:h", opts,
				NULL)) != -1) {
		switch (c) {
		case 'w':
			if (!*optarg) {
				errmsg("record: -w needs a file name");
				return EXIT_USAGE;
			}
			out = optarg;
			break;
		case 'c':
			if (parse_uint("--count", optarg, 1, UINT64_MAX,
				       &rc.count))
				return EXIT_USAGE;
			break;
		case OPT_LINK:
			if (pcapw_link_parse(optarg, &link)) {
				errmsg("invalid value '%s' for --link: expected ether or raw",
				       optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_DIR:
			if (!strcmp(optarg, "in")) {
				rc.dir = TCPTRACE_DIR_IN;
			} else if (!strcmp(optarg, "out")) {
				rc.dir = TCPTRACE_DIR_OUT;
			} else if (!strcmp(optarg, "both")) {
				rc.dir = 0;
			} else {
				errmsg("invalid value '%s' for --dir: expected in, out or both",
				       optarg);
				return EXIT_USAGE;
			}
			break;
		case '4':
			rc.v4 = true;
			break;
		case '6':
			rc.v6 = true;
			break;
		case 'p':
			if (add_filter("--port", optarg, 65535, rc.nports, &v))
				return EXIT_USAGE;
			rc.ports[rc.nports++] = (uint16_t)v;
			break;
		case 'n':
			if (add_filter("--netns", optarg, UINT32_MAX,
				       rc.nnetns, &v))
				return EXIT_USAGE;
			rc.netns[rc.nnetns++] = (uint32_t)v;
			break;
		case OPT_DURATION:
			if (parse_seconds("--duration", optarg, &src.duration))
				return EXIT_USAGE;
			break;
		case 'i':
			input = optarg;
			break;
		case 'r':
			json = optarg;
			break;
		case 'h':
			usage_record(stdout);
			return 0;
		default:
			return bad_option("record", c, argv);
		}
	}
	if (optind < argc) {
		errmsg("record: unexpected argument '%s'", argv[optind]);
		return EXIT_USAGE;
	}
	if (!out) {
		errmsg("record: missing -w FILE (the pcap file to write; '-' for standard output)");
		return EXIT_USAGE;
	}
	if (input && json) {
		errmsg("record: -i and -r cannot be used together");
		return EXIT_USAGE;
	}
	if (input && !*input) {
		errmsg("record: -i needs a file name");
		return EXIT_USAGE;
	}
	if (json && !*json) {
		errmsg("record: -r needs a file name");
		return EXIT_USAGE;
	}
	if (input) {
		src.kind = SOURCE_RAW;
		src.path = input;
	} else if (json) {
		src.kind = SOURCE_JSON;
		src.path = json;
	}
	if (src.kind != SOURCE_DEVICE && same_file(src.path, out)) {
		errmsg("record: %s is the input file: it would be overwritten",
		       out);
		return EXIT_USAGE;
	}

	if (check_input(&src)) {
		err = 1;
		goto cleanup;
	}
	rc.w = pcapw_open(out, link, pcapw_clock_offset());
	if (!rc.w) {
		err = 1;
		goto cleanup;
	}
	/* packets go to a file: write them in the background */
	src.background = true;
	err = source_run(&src, on_record, on_flush, &rc);
cleanup:
	if (rc.w) {
		n = pcapw_count(rc.w);
		name = pcapw_name(rc.w);
		if (pcapw_close(rc.w))
			err = 1;
		fprintf(stderr, "%llu packet%s written to %s\n",
			(unsigned long long)n, n == 1 ? "" : "s", name);
		if (rc.lost)
			warnmsg("the module lost %llu records (its ring was full): segments are missing",
				(unsigned long long)rc.lost);
	}
	return err != 0;
}
