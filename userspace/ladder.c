// SPDX-License-Identifier: GPL-2.0
/*
 * tcptracectl ladder: each connection as a sequence diagram.
 *
 *   TIME      CLIENT       10.7.0.1:38028             10.7.0.2:8080  SERVER
 *   0.000000  SYN_SENT     |--- SYN seq=0 ------------->|
 *   0.000463               |<-- SYN-ACK seq=0 ack=1 ----|  (SYN_RECV)
 *   0.000503  ESTABLISHED  |--- ACK seq=1 ack=1 ------->|  ESTABLISHED
 *
 * One row per segment (drawn once even when both ends recorded it), with
 * the state each side entered because of it: the state a side enters just
 * before sending a segment, or just after receiving one, shares that
 * segment's row.  States in parentheses are deduced from the segments (a
 * half-open request and a timewait socket change state without a record).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "source.h"
#include "story.h"

#define TIME_W		10
#define STATE_W		13
#define MIN_ARROW	24
#define MAX_WIDTH	400
/* a state change this soon after a segment arrived is its effect */
#define CAUSE_NS	100000000ULL

#define C_RESET		"\033[0m"
#define C_CLIENT	"\033[36m"	/* cyan */
#define C_SERVER	"\033[33m"	/* yellow */
#define C_RST		"\033[31m"	/* red */
#define C_BAD		"\033[1;31m"	/* bold red */
#define C_STATE		"\033[32m"	/* green */
#define C_NOTE		"\033[2m"	/* dim */
#define C_HEAD		"\033[1m"	/* bold */

struct ladder {
	struct filter filter;
	bool absolute;
	bool color;
	bool flush_only;
	int width;
	uint64_t printed;
	/* --flush: the connections that ended, drawn at the end */
	struct story *held;
	size_t nheld, capheld;
};

void usage_ladder(FILE *out)
{
	fprintf(out,
"Usage: " PROG " ladder [OPTIONS]\n"
"\n"
"Draw each TCP connection as a sequence diagram, the way textbooks draw the\n"
"handshake: the client on the left, the server on the right, one arrow per\n"
"segment with its flags and seq/ack, the time since the connection's first\n"
"record, and the state each side entered next to the segment that caused\n"
"it.  Retransmissions, resets (and why they were sent), lost records and\n"
"protocol violations are marked under the arrow; a summary ends each\n"
"diagram.  A connection is drawn when it ends: when every end that was\n"
"seen has closed and its TIME_WAIT is over.  Connections still open are\n"
"drawn at the end of the input, at SIGINT/SIGTERM or after --duration.\n"
"When the output is not a terminal, drawing runs in the background\n"
"(SCHED_IDLE; SCHED_OTHER while over 1 MiB of records wait);\n"
"TCPTRACE_FOREGROUND=1 keeps the caller's policy.\n"
"\n"
"Options:\n"
"  -r, --read FILE      read the JSON Lines of 'watch --json' from FILE\n"
"                       ('-': standard input) instead of the device\n"
"  -i, --input FILE     read raw records from FILE ('-': standard input)\n"
"  -a, --absolute       absolute sequence numbers (default: relative to\n"
"                       each side's ISN, as Wireshark shows them)\n"
"      --flush          draw nothing until the end, then every connection\n"
"      --duration SEC   stop after SEC seconds (fractions allowed)\n"
"  -w, --width N        draw N columns wide (default: the terminal's width,\n"
"                       100 when not a terminal; %d..%d)\n"
"      --color          colour even when not writing to a terminal\n"
"      --no-color       no colour (the default when not a terminal)\n"
"  -4, -6               only IPv4 / IPv6 connections\n"
"  -p, --port PORT      only connections with an end on PORT (repeatable)\n"
"  -n, --netns INODE    only connections with an end in this network\n"
"                       namespace (repeatable)\n"
"  -h, --help           print this help and exit\n"
"\n"
"Reading a diagram:\n"
"  |--- FLAGS seq=S ack=A len=L --->|  a segment from the client\n"
"  |<-- FLAGS ... ------------------|  a segment from the server\n"
"  FLAGS are SYN, FIN, RST, PSH, URG, ECE, CWR joined by '-', ending with\n"
"  ACK when it is set (SYN-ACK, FIN-ACK, ACK).  A state next to a row is\n"
"  the one that side entered; (STATE) is deduced, not recorded.  Lines\n"
"  under an arrow start with '^' for a mark (retransmit #N after T s, why\n"
"  a RST was sent, not seen arriving) and '!!' for a protocol violation:\n"
"    synack_ack_not_isn_plus_1     the SYN-ACK's ack is not the SYN's seq+1\n"
"    fin_ack_not_seq_plus_1        a segment acknowledges past a FIN\n"
"    final_ack_seq_not_fin_plus_1  the last ACK's seq is not its FIN's seq+1\n"
"    seq_unexpected                seq before the ISN+1, or not FIN seq+1\n"
"                                  after the sender's FIN\n"
"  '~~' rows mark records lost by the module (the diagram may miss events).\n"
"\n"
"EXAMPLES\n"
"  " PROG " ladder -p 8080\n"
"  " PROG " watch --json -p 8080 > trace.jsonl; " PROG " ladder -r trace.jsonl\n"
"  " PROG " ladder -r trace.jsonl -a --no-color | less\n"
"  " PROG " ladder --flush --duration 10 -w 120\n",
		MIN_ARROW + TIME_W + 2 * STATE_W + 4, MAX_WIDTH);
}

static const char *col(const struct ladder *l, const char *c)
{
	return l->color ? c : "";
}

static void flags_label(uint8_t f, char *buf, size_t size)
{
	static const struct {
		uint8_t bit;
		const char *name;
	} names[] = {
		{ TCPTRACE_FLAG_SYN, "SYN" }, { TCPTRACE_FLAG_FIN, "FIN" },
		{ TCPTRACE_FLAG_RST, "RST" }, { TCPTRACE_FLAG_PSH, "PSH" },
		{ TCPTRACE_FLAG_URG, "URG" }, { TCPTRACE_FLAG_ECE, "ECE" },
		{ TCPTRACE_FLAG_CWR, "CWR" }, { TCPTRACE_FLAG_ACK, "ACK" },
	};
	size_t i, n = 0;

	buf[0] = '\0';
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(f & names[i].bit))
			continue;
		n += (size_t)snprintf(buf + n, size - n, "%s%s", n ? "-" : "",
				      names[i].name);
		if (n >= size)
			break;
	}
	if (!buf[0])
		snprintf(buf, size, "none");
}

/* A row of the diagram, built from the story's events. */
struct row {
	const struct story_ev *seg;	/* NULL: a state or note row */
	uint64_t ts;
	char state[2][32];
	const char *text;		/* note row */
	const char *under;		/* a state's note, printed below */
	bool lost;
};

static void state_text(const struct story_ev *e, char *buf, size_t size)
{
	char s[24];
	const char *name = tcp_state_name(e->new_state, s, sizeof(s));

	if (e->new_state == 7)
		name = "CLOSED";
	snprintf(buf, size, e->inferred ? "(%s)" : "%s", name);
}

static void print_pad(FILE *out, const char *s, int w)
{
	fprintf(out, "%-*s", w, s);
}

static void print_arrow(FILE *out, const struct ladder *l,
			const struct story *st, const struct story_ev *e,
			int w)
{
	const struct story_side *snd = &st->side[e->side];
	const struct story_side *rcv = &st->side[!e->side];
	bool s_known = e->old_numbers ? snd->old_isn_known : snd->isn_known;
	bool r_known = e->old_numbers ? rcv->old_isn_known : rcv->isn_known;
	uint32_t s_isn = e->old_numbers ? snd->old_isn : snd->isn;
	uint32_t r_isn = e->old_numbers ? rcv->old_isn : rcv->isn;
	char fl[48], label[160];
	const char *c;
	int n = 0, dash;

	/* relative to the ISNs of the connection the numbers belong to */
	flags_label(e->flags, fl, sizeof(fl));
	n = snprintf(label, sizeof(label), "%s seq=%u", fl,
		     !l->absolute && s_known ? e->seq - s_isn : e->seq);
	if (e->flags & TCPTRACE_FLAG_ACK)
		n += snprintf(label + n, sizeof(label) - (size_t)n, " ack=%u",
			      !l->absolute && r_known ? e->ack - r_isn :
			      e->ack);
	if (e->len)
		n += snprintf(label + n, sizeof(label) - (size_t)n, " len=%u",
			      e->len);
	c = e->flags & TCPTRACE_FLAG_RST ? C_RST :
	    e->side == STORY_CLIENT ? C_CLIENT : C_SERVER;
	if (e->violation)
		c = C_BAD;
	/* |--- LABEL ---->|  or  |<-- LABEL -----|, at least w wide */
	dash = w - n - 8;
	if (dash < 1)
		dash = 1;
	fputs(col(l, c), out);
	if (e->side == STORY_CLIENT)
		fprintf(out, "|--- %s %.*s>|", label, dash,
			"-----------------------------------------------------"
			"-----------------------------------------------------"
			"-----------------------------------------------------"
			"-----------------------------------------------------");
	else
		fprintf(out, "|<-- %s %.*s-|", label, dash,
			"-----------------------------------------------------"
			"-----------------------------------------------------"
			"-----------------------------------------------------"
			"-----------------------------------------------------");
	fputs(col(l, C_RESET), out);
}

static void print_under(FILE *out, const struct ladder *l, int w,
			const char *c, const char *prefix, const char *text)
{
	int n;

	fprintf(out, "%*s|", TIME_W + STATE_W + 2, "");
	fputs(col(l, c), out);
	n = fprintf(out, "   %s %s", prefix, text);
	fputs(col(l, C_RESET), out);
	if (n < w - 2)
		fprintf(out, "%*s|", w - 2 - n, "");
	fputc('\n', out);
}

static void print_row(FILE *out, const struct ladder *l,
		      const struct story *st, const struct row *rw, int w)
{
	const struct story_ev *e = rw->seg;
	char t[32], note[128];

	snprintf(t, sizeof(t), "%.6f", (double)(rw->ts - st->start_ns) / 1e9);
	fprintf(out, "%*s  ", TIME_W, t);
	fputs(col(l, C_STATE), out);
	print_pad(out, rw->state[0], STATE_W);
	fputs(col(l, C_RESET), out);
	if (e) {
		print_arrow(out, l, st, e, w);
	} else if (rw->text) {
		fputs(col(l, rw->lost ? C_BAD : C_NOTE), out);
		fprintf(out, "%s %-*s %s", rw->lost ? "~~" : "| ", w - 6,
			rw->text, rw->lost ? "~~" : " |");
		fputs(col(l, C_RESET), out);
	} else {
		fprintf(out, "|%*s|", w - 2, "");
	}
	if (rw->state[1][0]) {
		fputs("  ", out);
		fputs(col(l, C_STATE), out);
		fputs(rw->state[1], out);
		fputs(col(l, C_RESET), out);
	}
	fputc('\n', out);
	if (rw->under && rw->under[0])
		print_under(out, l, w, C_NOTE, "^", rw->under);
	if (!e)
		return;
	if (rw->text && rw->text[0])
		print_under(out, l, w, C_NOTE, "^", rw->text);
	if (e->note[0])
		print_under(out, l, w, e->flags & TCPTRACE_FLAG_RST ? C_RST :
			    C_NOTE, "^", e->note);
	if (e->old_numbers) {
		const struct story_side *snd = &st->side[e->side];
		const struct story_side *rcv = &st->side[!e->side];
		bool sk = !l->absolute && snd->old_isn_known;
		bool rk = !l->absolute && rcv->old_isn_known &&
			  (e->flags & TCPTRACE_FLAG_ACK);

		/* what the label shows relative, the rest is absolute */
		snprintf(note, sizeof(note), "%s%s%s relative to the earlier connection",
			 sk ? "seq" : "", sk && rk ? " and " : "",
			 rk ? "ack" : "");
		if (sk || rk)
			print_under(out, l, w, C_NOTE, "^", note);
	}
	if (e->seen_out && !e->seen_in && st->side[!e->side].netns_known &&
	    st->side[e->side].netns_known &&
	    st->side[!e->side].netns != st->side[e->side].netns) {
		snprintf(note, sizeof(note), "not seen arriving at the %s",
			 side_name(!e->side));
		print_under(out, l, w, C_NOTE, "^", note);
	}
	if (e->violation) {
		snprintf(note, sizeof(note), "violation: %s", e->violation);
		print_under(out, l, w, C_BAD, "!!", note);
	}
}

static void print_head(FILE *out, const struct ladder *l, int w)
{
	fputs(col(l, C_HEAD), out);
	fprintf(out, "%*s  %-*s|%*s|  %s\n", TIME_W, "TIME", STATE_W,
		"CLIENT", w - 2, "", "SERVER");
	fputs(col(l, C_RESET), out);
}

/*
 * The row of the segment whose arrival at side @s moved it to a state at
 * @ts: the latest segment received by @s, among the last rows, when no row
 * after it shows a state of @s (which would then read out of order).
 */
static struct row *received_row(struct row *rows, size_t n, int s,
				uint64_t ts)
{
	size_t i, lo = n > 4 ? n - 4 : 0;
	struct row *r;

	for (i = n; i-- > lo;) {
		r = &rows[i];
		if (r->state[s][0])
			return NULL;
		if (r->seg && r->seg->side != s &&
		    (!r->seg->seen_in || r->seg->ts_in <= ts) &&
		    ts - (r->seg->seen_in ? r->seg->ts_in : r->seg->ts) <=
		    CAUSE_NS)
			return r;
	}
	return NULL;
}

/* Lays the events out in rows and prints them. */
static void draw(FILE *out, const struct ladder *l, const struct story *st)
{
	int w = l->width - TIME_W - 2 * STATE_W - 4;
	const struct story_ev *e, *pend[2] = { NULL, NULL };
	char shown[2][32] = { "", "" }, buf[32];
	struct row *rows, *last = NULL, *at;
	size_t i, n = 0;
	int s;

	if (w < MIN_ARROW)
		w = MIN_ARROW;
	rows = calloc(st->nev * 2 + 2, sizeof(*rows));
	if (!rows) {
		errmsg("out of memory");
		return;
	}
	for (i = 0; i < st->nev; i++) {
		e = &st->ev[i];
		if (e->kind == EV_STATE) {
			state_text(e, buf, sizeof(buf));
			s = e->side;
			/* a state shown already (the child of a request) */
			if (!strcmp(shown[s], buf) ||
			    (!strcmp(shown[s], "(SYN_RECV)") &&
			     !strcmp(buf, "SYN_RECV")))
				continue;
			/* after receiving a segment: on its row */
			at = pend[s] ? NULL : received_row(rows, n, s, e->ts);
			if (at) {
				snprintf(at->state[s], sizeof(at->state[s]),
					 "%s", buf);
				if (e->note[0] && !at->under)
					at->under = e->note;
				snprintf(shown[s], sizeof(shown[s]), "%s", buf);
				continue;
			}
			/* before sending one: wait for it */
			if (!pend[s]) {
				pend[s] = e;
				continue;
			}
		}
		/* a pending state not followed by its side's segment */
		for (s = 0; s < 2; s++) {
			if (!pend[s] || (e->kind == EV_SEG && e->side == s))
				continue;
			last = &rows[n++];
			last->ts = pend[s]->ts;
			last->under = pend[s]->note;
			state_text(pend[s], last->state[s],
				   sizeof(last->state[s]));
			snprintf(shown[s], sizeof(shown[s]), "%s",
				 last->state[s]);
			pend[s] = NULL;
		}
		if (e->kind == EV_STATE) {
			/* now pending is free */
			pend[e->side] = e;
			continue;
		}
		last = &rows[n++];
		last->ts = e->ts;
		if (e->kind == EV_SEG) {
			last->seg = e;
			s = e->side;
			if (pend[s]) {
				state_text(pend[s], last->state[s],
					   sizeof(last->state[s]));
				snprintf(shown[s], sizeof(shown[s]), "%s",
					 last->state[s]);
				pend[s] = NULL;
			}
			/* a half-open request has no state record */
			if (s == STORY_SERVER && e->seen_out &&
			    (e->flags & (TCPTRACE_FLAG_SYN |
					 TCPTRACE_FLAG_ACK)) ==
			    (TCPTRACE_FLAG_SYN | TCPTRACE_FLAG_ACK) &&
			    !shown[s][0] && !last->state[s][0] &&
			    strcmp(shown[s], "(SYN_RECV)")) {
				snprintf(last->state[s], sizeof(last->state[s]),
					 "(SYN_RECV)");
				snprintf(shown[s], sizeof(shown[s]), "%s",
					 last->state[s]);
			}
			if (!last->state[s][0] && e->flags &
			    TCPTRACE_FLAG_SYN && !(e->flags & TCPTRACE_FLAG_ACK)
			    && !st->side[s].sock_known)
				snprintf(last->state[s], sizeof(last->state[s]),
					 "(SYN_SENT)");
		} else {
			last->text = e->note;
			last->lost = e->kind == EV_LOST;
		}
	}
	/* the states left over, in time order */
	while (pend[0] || pend[1]) {
		s = !pend[0] || (pend[1] && pend[1]->ts < pend[0]->ts);
		last = &rows[n++];
		last->ts = pend[s]->ts;
		last->under = pend[s]->note;
		state_text(pend[s], last->state[s], sizeof(last->state[s]));
		pend[s] = NULL;
	}

	print_head(out, l, w);
	for (i = 0; i < n; i++)
		print_row(out, l, st, &rows[i], w);
	free(rows);
}

static void draw_story(struct ladder *l, const struct story *st)
{
	if (l->printed++)
		fputc('\n', stdout);
	draw(stdout, l, st);
	summary_text(stdout, st);
}

/* Keeps a copy of @st (its events too) to draw at the end. */
static int hold(struct ladder *l, const struct story *st)
{
	struct story *h;
	size_t cap;

	if (l->nheld == l->capheld) {
		cap = l->capheld ? l->capheld * 2 : 16;
		h = realloc(l->held, cap * sizeof(*h));
		if (!h)
			goto nomem;
		l->held = h;
		l->capheld = cap;
	}
	h = &l->held[l->nheld];
	*h = *st;
	h->ev = NULL;
	h->cap = h->nev;
	if (st->nev) {
		h->ev = malloc(st->nev * sizeof(*h->ev));
		if (!h->ev)
			goto nomem;
		memcpy(h->ev, st->ev, st->nev * sizeof(*h->ev));
	}
	l->nheld++;
	return 0;
nomem:
	errmsg("out of memory");
	return -1;
}

static int on_story_end(void *ctx, const struct story *st)
{
	struct ladder *l = ctx;

	if (!filter_story(&l->filter, st))
		return 0;
	if (l->flush_only)
		return hold(l, st);
	draw_story(l, st);
	return 0;
}

struct ladder_run {
	struct ladder *l;
	struct story_table *t;
	bool live;		/* from the device: time is now */
};

static int on_record(void *ctx, const struct tcptrace_record *r)
{
	struct ladder_run *lr = ctx;

	return story_feed(lr->t, r, NULL);
}

static int flush_out(void)
{
	if (fflush(stdout) || ferror(stdout)) {
		errmsg("error writing output: %s",
		       strerror(errno ? errno : EIO));
		return -1;
	}
	return 0;
}

/* After each batch, and when idle: draw what ended a while ago. */
static int on_flush(void *ctx)
{
	struct ladder_run *lr = ctx;

	if (lr->live && story_expire(lr->t, now_ns()))
		return -1;
	return flush_out();
}

static int terminal_width(void)
{
	struct winsize ws;

	if (isatty(STDOUT_FILENO) &&
	    !ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) && ws.ws_col)
		return ws.ws_col;
	return 100;
}

int cmd_ladder(int argc, char **argv)
{
	enum { OPT_DURATION = 0x100, OPT_FLUSH, OPT_COLOR, OPT_NO_COLOR };
	static const struct option opts[] = {
		{ "read", required_argument, NULL, 'r' },
		{ "input", required_argument, NULL, 'i' },
		{ "absolute", no_argument, NULL, 'a' },
		{ "flush", no_argument, NULL, OPT_FLUSH },
		{ "duration", required_argument, NULL, OPT_DURATION },
		{ "width", required_argument, NULL, 'w' },
		{ "color", no_argument, NULL, OPT_COLOR },
		{ "no-color", no_argument, NULL, OPT_NO_COLOR },
		{ "port", required_argument, NULL, 'p' },
		{ "netns", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct source src = { .kind = SOURCE_DEVICE };
	struct ladder l = { .width = 0 };
	struct ladder_run lr = { .l = &l };
	int err = 0, c, ret, color = -1;
	uint64_t v;
	size_t i;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":r:i:aw:46p:n:h", opts,
				NULL)) != -1) {
		ret = filter_option(&l.filter, c, optarg);
		if (ret < 0)
			return EXIT_USAGE;
		if (ret > 0)
			continue;
		switch (c) {
		case 'r':
		case 'i':
			if (src.kind != SOURCE_DEVICE) {
				errmsg("ladder: give one of --read and --input, once");
				return EXIT_USAGE;
			}
			src.kind = c == 'i' ? SOURCE_RAW : SOURCE_JSON;
			src.path = optarg;
			break;
		case 'a':
			l.absolute = true;
			break;
		case OPT_FLUSH:
			l.flush_only = true;
			break;
		case OPT_DURATION:
			if (parse_seconds("--duration", optarg, &src.duration))
				return EXIT_USAGE;
			break;
		case 'w':
			if (parse_uint("--width", optarg,
				       MIN_ARROW + TIME_W + 2 * STATE_W + 4,
				       MAX_WIDTH, &v))
				return EXIT_USAGE;
			l.width = (int)v;
			break;
		case OPT_COLOR:
			color = 1;
			break;
		case OPT_NO_COLOR:
			color = 0;
			break;
		case 'h':
			usage_ladder(stdout);
			return 0;
		default:
			return bad_option("ladder", c, argv);
		}
	}
	if (optind < argc) {
		errmsg("ladder: unexpected argument '%s'", argv[optind]);
		return EXIT_USAGE;
	}
	if (!l.width)
		l.width = terminal_width();
	if (l.width > MAX_WIDTH)
		l.width = MAX_WIDTH;
	l.color = color < 0 ? isatty(STDOUT_FILENO) && getenv("TERM") &&
			      strcmp(getenv("TERM"), "dumb") : color;

	lr.t = story_table_new(0, true, on_story_end, &l);
	if (!lr.t) {
		errmsg("out of memory");
		err = 1;
		goto cleanup;
	}
	lr.live = src.kind == SOURCE_DEVICE;
	src.tick = 0.25;
	/* nobody watches it happen: draw in the background */
	src.background = !isatty(STDOUT_FILENO);
	err = source_run(&src, on_record, on_flush, &lr);
	/* the connections still open, then with --flush all of them */
	if (story_flush(lr.t))
		err = 1;
	for (i = 0; i < l.nheld; i++)
		draw_story(&l, &l.held[i]);
	if (flush_out())
		err = 1;
cleanup:
	for (i = 0; i < l.nheld; i++)
		free(l.held[i].ev);
	free(l.held);
	story_table_free(lr.t);
	return err != 0;
}
