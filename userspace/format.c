// SPDX-License-Identifier: GPL-2.0
/*
 * tcptracectl: text and JSON formatting of records.
 *
 * Text lines (one per record):
 *   TIME net:[INODE] in|out SRC > DST [FLAGS] seq N (rel R) ack N (rel R)
 *	win W len L
 *   TIME net:[INODE] TYPE LOCAL <-> REMOTE DETAILS
 *   TIME *** LOST N records (cpu C) ***
 * followed by " pid PID (COMM)" when the record names a task.  Addresses
 * are ADDR:PORT for IPv4 and [ADDR]:PORT for IPv6.
 *
 * JSON Lines: one object per record, keys as documented in usage_watch().
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

#include "story.h"

static const char *const type_names[TCPTRACE_T_MAX] = {
	[TCPTRACE_T_PACKET]		= "packet",
	[TCPTRACE_T_STATE]		= "state",
	[TCPTRACE_T_SYNACK_RETRANSMIT]	= "synack_retransmit",
	[TCPTRACE_T_RETRANSMIT]		= "retransmit",
	[TCPTRACE_T_RESET_SENT]		= "reset_sent",
	[TCPTRACE_T_RESET_RECEIVED]	= "reset_received",
	[TCPTRACE_T_TIMEWAIT]		= "timewait",
	[TCPTRACE_T_DESTROY]		= "destroy",
	[TCPTRACE_T_LOST]		= "lost",
	[TCPTRACE_T_TIMEWAIT_END]	= "timewait_end",
	[TCPTRACE_T_LISTEN_OVERFLOW]	= "listen_overflow",
};

/* tcptrace_listen.reason */
const char *overflow_reason(unsigned int reason)
{
	switch (reason) {
	case TCPTRACE_OVF_SYN_ACCEPTQ:
		return "accept_queue_full_syn_dropped";
	case TCPTRACE_OVF_ACK_ACCEPTQ:
		return "accept_queue_full_ack_dropped";
	case TCPTRACE_OVF_SYN_SYNQ:
		return "syn_queue_full";
	default:
		return "unknown";
	}
}

const char *tw_end_how(unsigned int flags)
{
	return flags == TCPTRACE_TW_EXPIRED ? "expired" :
	       flags == TCPTRACE_TW_KILLED ? "killed" : "unknown";
}

/* The kernel's TCP_* state numbering. */
static const char *const state_names[] = {
	[1]	= "ESTABLISHED",
	[2]	= "SYN_SENT",
	[3]	= "SYN_RECV",
	[4]	= "FIN_WAIT1",
	[5]	= "FIN_WAIT2",
	[6]	= "TIME_WAIT",
	[7]	= "CLOSE",
	[8]	= "CLOSE_WAIT",
	[9]	= "LAST_ACK",
	[10]	= "LISTEN",
	[11]	= "CLOSING",
	[12]	= "NEW_SYN_RECV",
};

const char *record_type_name(unsigned int type)
{
	return type < TCPTRACE_T_MAX ? type_names[type] : NULL;
}

const char *tcp_state_name(unsigned int state, char *buf, size_t size)
{
	if (state < sizeof(state_names) / sizeof(state_names[0]) &&
	    state_names[state])
		return state_names[state];
	snprintf(buf, size, "UNKNOWN(%u)", state);
	return buf;
}

/* tcpdump's letters and order: F S R P . U E W ('.' is ACK). */
void tcp_flags_str(unsigned int flags, char *buf, size_t size)
{
	static const struct {
		unsigned int bit;
		char c;
	} letters[] = {
		{ TCPTRACE_FLAG_FIN, 'F' }, { TCPTRACE_FLAG_SYN, 'S' },
		{ TCPTRACE_FLAG_RST, 'R' }, { TCPTRACE_FLAG_PSH, 'P' },
		{ TCPTRACE_FLAG_ACK, '.' }, { TCPTRACE_FLAG_URG, 'U' },
		{ TCPTRACE_FLAG_ECE, 'E' }, { TCPTRACE_FLAG_CWR, 'W' },
	};
	size_t i, n = 0;

	if (size < 9)
		return;
	for (i = 0; i < sizeof(letters) / sizeof(letters[0]); i++)
		if (flags & letters[i].bit)
			buf[n++] = letters[i].c;
	buf[n] = '\0';
	if (!n)
		snprintf(buf, size, "none");
}

static const char *addr_str(const struct tcptrace_record *r,
			    const uint8_t *addr, char *buf, size_t size)
{
	int af = r->family == AF_INET ? AF_INET : AF_INET6;
	char *p = buf;
	int i, v;

	/* IPv4 by hand: inet_ntop() goes through sprintf() */
	if (r->family == AF_INET && size >= 16) {
		for (i = 0; i < 4; i++) {
			v = addr[i];
			if (v >= 100)
				*p++ = (char)('0' + v / 100);
			if (v >= 10)
				*p++ = (char)('0' + v / 10 % 10);
			*p++ = (char)('0' + v % 10);
			*p++ = i < 3 ? '.' : '\0';
		}
		return buf;
	}
	if ((r->family != AF_INET && r->family != AF_INET6) ||
	    !inet_ntop(af, addr, buf, size))
		snprintf(buf, size, "?");
	return buf;
}

static const char *endpoint_str(const struct tcptrace_record *r,
				const uint8_t *addr, uint16_t port,
				char *buf, size_t size)
{
	char a[INET6_ADDRSTRLEN];

	addr_str(r, addr, a, sizeof(a));
	if (r->family == AF_INET6)
		snprintf(buf, size, "[%s]:%u", a, port);
	else
		snprintf(buf, size, "%s:%u", a, port);
	return buf;
}

/* Length of the valid UTF-8 sequence at s, or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len, i;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/*
 * JSON is built in memory, many lines at a time (see format_json()): a
 * reader keeping up with thousands of records a second spends its time
 * here, under an emulated CPU more than anywhere, so the pieces below are
 * written for few instructions per byte.  Every put_*() returns the new
 * end.
 */
static char *put_mem(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

/* a string literal */
#define put_lit(p, lit) put_mem(p, lit, sizeof(lit) - 1)

/*
 * "0000" to "9999", and the number of digits of each without its leading
 * zeros; made once by make_quads()
 */
static char quads[10000][4];
static uint8_t quad_len[10000];

static void make_quads(void)
{
	unsigned int i;

	for (i = 0; i < 10000; i++) {
		quads[i][0] = (char)('0' + i / 1000);
		quads[i][1] = (char)('0' + i / 100 % 10);
		quads[i][2] = (char)('0' + i / 10 % 10);
		quads[i][3] = (char)('0' + i % 10);
		quad_len[i] = (uint8_t)(1 + (i >= 10) + (i >= 100) + (i >= 1000));
	}
}

/*
 * w < 10000 in decimal: 4 bytes copied from quads[] (up to 3 of them from
 * the next entry), 1 to 4 kept
 */
static inline char *put_lead(char *p, uint32_t w)
{
	unsigned int n = quad_len[w];

	memcpy(p, quads[w] + 4 - n, 4);
	return p + n;
}

/* w < 10000 as four digits, leading zeros kept */
static inline char *put_quad(char *p, uint32_t w)
{
	memcpy(p, quads[w], 4);
	return p + 4;
}

/*
 * v in decimal: split by 10000 (and 10^8 above 32 bits) into groups of
 * four digits, the first without its leading zeros.  No loop and no
 * scratch buffer: every record has a dozen numbers, most of them under
 * 10^10.
 */
static inline char *put_u32(char *p, uint32_t v)
{
	uint32_t hi, top;

	if (v < 10000)
		return put_lead(p, v);
	hi = v / 10000;
	if (hi < 10000) {
		p = put_lead(p, hi);
	} else {
		top = hi / 10000;	/* v < 2^32: top < 43 */
		p = put_quad(put_lead(p, top), hi - top * 10000);
	}
	return put_quad(p, v - hi * 10000);
}

/* v mod 10^8 as eight digits */
static inline char *put_oct(char *p, uint32_t v)
{
	uint32_t hi = v / 10000;

	return put_quad(put_quad(p, hi), v - hi * 10000);
}

static char *put_u64(char *p, uint64_t v)
{
	uint64_t hi, top;

	if (v <= UINT32_MAX)
		return put_u32(p, (uint32_t)v);
	hi = v / 100000000;
	if (hi <= UINT32_MAX) {
		p = put_u32(p, (uint32_t)hi);
	} else {
		top = hi / 100000000;	/* v < 2^64: top < 1845 */
		p = put_oct(put_lead(p, (uint32_t)top),
			    (uint32_t)(hi - top * 100000000));
	}
	return put_oct(p, (uint32_t)(v - hi * 100000000));
}

/*
 * s[0..n) escaped for a JSON string, invalid UTF-8 as U+FFFD; p has room
 * for 6 * n bytes.
 */
static char *put_text_body(char *p, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)s;
	size_t i, l;

	/* the common case: printable ASCII with nothing to escape */
	for (i = 0; i < n; i++)
		if (u[i] < 0x20 || u[i] >= 0x7f || u[i] == '"' ||
		    u[i] == '\\')
			break;
	p = put_mem(p, s, i);
	while (i < n) {
		unsigned char c = u[i];

		switch (c) {
		case '"':  p = put_lit(p, "\\\""); break;
		case '\\': p = put_lit(p, "\\\\"); break;
		case '\b': p = put_lit(p, "\\b"); break;
		case '\f': p = put_lit(p, "\\f"); break;
		case '\n': p = put_lit(p, "\\n"); break;
		case '\r': p = put_lit(p, "\\r"); break;
		case '\t': p = put_lit(p, "\\t"); break;
		default:
			if (c < 0x20 || c == 0x7f) {
				p = put_lit(p, "\\u00");
				*p++ = hex[c >> 4];
				*p++ = hex[c & 0xf];
			} else if (c < 0x80) {
				*p++ = (char)c;
			} else if ((l = utf8_len(u + i, n - i)) != 0) {
				p = put_mem(p, s + i, l);
				i += l;
				continue;
			} else {
				p = put_lit(p, "\\ufffd");
			}
		}
		i++;
	}
	return p;
}

/* Writes s[0..n) as a JSON string; invalid UTF-8 becomes U+FFFD. */
void json_text(FILE *out, const char *s, size_t n)
{
	enum { PIECE = 256 };
	char buf[6 * (PIECE + 4)];
	size_t k, l;

	fputc_unlocked('"', out);
	while (n) {
		/* pieces end where the decoder steps: never inside a character */
		for (k = 0; k < n && k < PIECE; k += l) {
			l = (unsigned char)s[k] < 0x80 ? 0 :
			    utf8_len((const unsigned char *)s + k, n - k);
			if (!l)
				l = 1;
		}
		fwrite_unlocked(buf, 1,
				(size_t)(put_text_body(buf, s, k) - buf), out);
		s += k;
		n -= k;
	}
	fputc_unlocked('"', out);
}

/* A command name for text output, non-printable bytes as '?'. */
const char *comm_printable(const char *comm, char *buf)
{
	size_t i, n = strnlen(comm, TCPTRACE_COMM_LEN);

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)comm[i];

		buf[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	buf[n] = '\0';
	return buf;
}

static const char *comm_text(const struct tcptrace_record *r, char *buf)
{
	return comm_printable(r->comm, buf);
}

static void print_time(FILE *out, const struct tcptrace_record *r,
		       struct fmt_opts *o)
{
	uint64_t d;

	if (o->absolute) {
		fprintf(out, "%" PRIu64 ".%09" PRIu64,
			(uint64_t)r->ts_ns / 1000000000,
			(uint64_t)r->ts_ns % 1000000000);
		return;
	}
	if (!o->have_base) {
		o->base_ts = r->ts_ns;
		o->have_base = true;
	}
	if (r->ts_ns >= o->base_ts) {
		d = r->ts_ns - o->base_ts;
	} else {
		d = o->base_ts - r->ts_ns;
		fputs("-", out);
	}
	fprintf(out, "%" PRIu64 ".%06" PRIu64, d / 1000000000,
		d % 1000000000 / 1000);
}

/* " NAME N" or " NAME N (rel R)" */
static void print_seq(FILE *out, const char *name, uint32_t v, bool known,
		      uint32_t isn)
{
	fprintf(out, " %s %" PRIu32, name, v);
	if (known)
		fprintf(out, " (rel %" PRIu32 ")", (uint32_t)(v - isn));
}

void format_text(FILE *out, const struct tcptrace_record *r,
		 const struct isns *isn, struct fmt_opts *o,
		 const struct story_ann *ann)
{
	char src[INET6_ADDRSTRLEN + 8], dst[INET6_ADDRSTRLEN + 8];
	char s1[24], s2[24], fl[16], comm[TCPTRACE_COMM_LEN + 1];
	const struct tcptrace_state *st = &r->state;

	print_time(out, r, o);
	if (r->type == TCPTRACE_T_LOST) {
		fprintf(out, " *** LOST %" PRIu64 " records (cpu %u) ***\n",
			(uint64_t)r->lost.count, r->cpu);
		return;
	}
	endpoint_str(r, r->saddr, r->sport, src, sizeof(src));
	endpoint_str(r, r->daddr, r->dport, dst, sizeof(dst));
	fprintf(out, " net:[%" PRIu32 "] ", r->netns);
	if (r->type != TCPTRACE_T_PACKET)
		fprintf(out, "%s %s <-> %s", record_type_name(r->type), src,
			dst);

	switch (r->type) {
	case TCPTRACE_T_PACKET:
		tcp_flags_str(r->packet.flags, fl, sizeof(fl));
		fprintf(out, "%s %s > %s [%s]",
			r->dir == TCPTRACE_DIR_IN ? "in" :
			r->dir == TCPTRACE_DIR_OUT ? "out" : "?",
			src, dst, fl);
		print_seq(out, "seq", r->packet.seq, isn->s_known, isn->s_isn);
		if (r->packet.flags & TCPTRACE_FLAG_ACK)
			print_seq(out, "ack", r->packet.ack, isn->d_known,
				  isn->d_isn);
		fprintf(out, " win %u len %" PRIu32, r->packet.win,
			r->packet.payload_len);
		break;
	case TCPTRACE_T_STATE:
		fprintf(out, " %s -> %s",
			tcp_state_name(st->old_state, s1, sizeof(s1)),
			tcp_state_name(st->new_state, s2, sizeof(s2)));
		break;
	case TCPTRACE_T_SYNACK_RETRANSMIT:
		fprintf(out, " #%" PRIu32 " snt_isn %" PRIu32
			" rcv_isn %" PRIu32, r->synack.num_retrans,
			r->synack.snt_isn, r->synack.rcv_isn);
		break;
	case TCPTRACE_T_RETRANSMIT:
		tcp_flags_str(st->flags, fl, sizeof(fl));
		fprintf(out, " [%s]", fl);
		print_seq(out, "seq", st->seq, isn->s_known, isn->s_isn);
		print_seq(out, "end_seq", st->end_seq, isn->s_known,
			  isn->s_isn);
		fprintf(out, " state %s",
			tcp_state_name(st->old_state, s1, sizeof(s1)));
		break;
	case TCPTRACE_T_TIMEWAIT:
		fprintf(out, " state %s substate %s timeo %" PRIu32 "ms",
			tcp_state_name(st->old_state, s1, sizeof(s1)),
			tcp_state_name(st->new_state, s2, sizeof(s2)),
			st->timeo_ms);
		print_seq(out, "snd_nxt", st->snd_nxt, isn->s_known,
			  isn->s_isn);
		print_seq(out, "rcv_nxt", st->rcv_nxt, isn->d_known,
			  isn->d_isn);
		break;
	case TCPTRACE_T_TIMEWAIT_END:
		fprintf(out, " substate %s %s",
			tcp_state_name(st->new_state, s2, sizeof(s2)),
			tw_end_how(st->flags));
		if (isn->tw_known)
			fprintf(out, " after %" PRIu64 ".%03" PRIu64 "s",
				isn->tw_ns / 1000000000,
				isn->tw_ns / 1000000 % 1000);
		break;
	case TCPTRACE_T_LISTEN_OVERFLOW:
		fprintf(out, " %s syn_queue %" PRIu32 " accept_queue %" PRIu32
			" backlog %" PRIu32, overflow_reason(r->listen.reason),
			r->listen.syn_queue, r->listen.accept_queue,
			r->listen.backlog);
		break;
	case TCPTRACE_T_RESET_SENT:
	case TCPTRACE_T_RESET_RECEIVED:
	case TCPTRACE_T_DESTROY:
		fprintf(out, " state %s",
			tcp_state_name(st->old_state, s1, sizeof(s1)));
		print_seq(out, "snd_nxt", st->snd_nxt, isn->s_known,
			  isn->s_isn);
		print_seq(out, "rcv_nxt", st->rcv_nxt, isn->d_known,
			  isn->d_isn);
		break;
	}
	if (r->pid)
		fprintf(out, " pid %" PRIu32 " (%s)", r->pid,
			comm_text(r, comm));
	else if (ann && ann->owner_known)
		fprintf(out, " owner %" PRIu32 " (%s)", ann->owner_pid,
			comm_printable(ann->owner_comm, comm));
	if (ann && ann->violation)
		fprintf(out, " VIOLATION %s", ann->violation);
	fputc('\n', out);
}

/* ,"KEY": for a literal KEY, whose length the compiler knows */
#define put_key(p, key) put_lit(p, ",\"" key "\":")
#define put_key_str(p, key, val) put_str(put_key(p, key), val)
/* a number, in 32-bit arithmetic when its type is no wider */
#define put_key_num(p, key, val)					\
	(sizeof(val) <= sizeof(uint32_t) ?				\
	 put_u32(put_key(p, key), (uint32_t)(val)) :			\
	 put_u64(put_key(p, key), (uint64_t)(val)))
#define put_key_frag(p, key, f) put_frag(put_key(p, key), f)

/*
 * A string of the tool's own (a name from a table, flag letters, an
 * address): nothing in it to escape, copied as it is scanned.
 */
static char *put_str(char *p, const char *val)
{
	*p++ = '"';
	while (*val)
		*p++ = *val++;
	*p++ = '"';
	return p;
}

/*
 * The JSON strings of names and flags, quoted, made once from the tables
 * above: each is copied whole (a fixed-size copy) and p moves on by its
 * length, which needs FRAG_SIZE bytes of room past it.
 */
#define FRAG_SIZE	32
struct frag {
	char s[FRAG_SIZE - 1];
	uint8_t len;
};

/* an IPv4 address (as in the record) and its text */
struct v4_frag {
	uint32_t addr;
	struct frag f;		/* len 0: unused */
};

static struct {
	bool made;
	struct frag type[TCPTRACE_T_MAX];
	struct frag state[sizeof(state_names) / sizeof(state_names[0])];
	struct frag flags[256];
	struct frag octet[256];		/* "0" to "255", not quoted */
	bool plain[256];	/* a byte copied into a JSON string as it is */
	struct v4_frag v4[256];	/* IPv4 addresses seen, by their last byte */
	char comm_key[TCPTRACE_COMM_LEN];	/* the last command name */
	struct frag comm;	/* its text, quoted; len 0: none */
} frags;

static void make_frag(struct frag *f, const char *s, bool quote)
{
	int n = snprintf(f->s, sizeof(f->s), quote ? "\"%s\"" : "%s", s);

	f->len = (uint8_t)n;
}

static void make_frags(void)
{
	char buf[16];
	unsigned int i;

	for (i = 0; i < TCPTRACE_T_MAX; i++)
		if (type_names[i])
			make_frag(&frags.type[i], type_names[i], true);
	for (i = 0; i < sizeof(frags.state) / sizeof(frags.state[0]); i++)
		if (state_names[i])
			make_frag(&frags.state[i], state_names[i], true);
	for (i = 0; i < 256; i++) {
		tcp_flags_str(i, buf, sizeof(buf));
		make_frag(&frags.flags[i], buf, true);
		snprintf(buf, sizeof(buf), "%u", i);
		make_frag(&frags.octet[i], buf, false);
		frags.plain[i] = i >= 0x20 && i < 0x7f && i != '"' &&
				 i != '\\';
	}
	make_quads();
	frags.made = true;
}

static char *put_frag(char *p, const struct frag *f)
{
	memcpy(p, f->s, sizeof(f->s));
	return p + f->len;
}

static char *put_state_name(char *p, unsigned int state)
{
	char buf[24];

	if (state < sizeof(frags.state) / sizeof(frags.state[0]) &&
	    frags.state[state].len)
		return put_frag(p, &frags.state[state]);
	return put_str(p, tcp_state_name(state, buf, sizeof(buf)));
}

#define put_state(p, key, state) put_state_name(put_key(p, key), state)

/* the quoted text of an IPv4 address */
static void make_v4_frag(struct v4_frag *c, const uint8_t *addr)
{
	char *p = c->f.s;
	int i;

	*p++ = '"';
	for (i = 0; i < 4; i++) {
		/* 4 bytes copied, 1 to 3 kept */
		memcpy(p, frags.octet[addr[i]].s, 4);
		p += frags.octet[addr[i]].len;
		*p++ = '.';
	}
	p[-1] = '"';
	c->f.len = (uint8_t)(p - c->f.s);
	memcpy(&c->addr, addr, 4);
}

/*
 * An address, quoted.  An IPv4 address's text is kept, by its last byte:
 * a record has two, and the next record most often the same two.
 */
static char *put_addr(char *p, const struct tcptrace_record *r,
		      const uint8_t *addr)
{
	char a[INET6_ADDRSTRLEN];
	struct v4_frag *c;
	uint32_t v;

	if (r->family != AF_INET)
		return put_str(p, addr_str(r, addr, a, sizeof(a)));
	memcpy(&v, addr, 4);
	c = &frags.v4[addr[3]];
	if (!c->f.len || c->addr != v)
		make_v4_frag(c, addr);
	return put_frag(p, &c->f);
}

/* a command name, TCPTRACE_COMM_LEN bytes or up to a NUL, quoted */
static char *make_comm(char *p, const char *comm)
{
	const unsigned char *u = (const unsigned char *)comm;
	size_t i;

	*p++ = '"';
	/* printable ASCII, nothing to escape: copied as it is scanned */
	for (i = 0; i < TCPTRACE_COMM_LEN && frags.plain[u[i]]; i++)
		p[i] = comm[i];
	p += i;
	if (i < TCPTRACE_COMM_LEN && u[i])
		p = put_text_body(p, comm + i,
				  strnlen(comm + i, TCPTRACE_COMM_LEN - i));
	*p++ = '"';
	return p;
}

/*
 * The same, the last one's text kept (when it fits a frag): most records
 * name the same task, or the same owner.
 */
static char *put_comm(char *p, const char *comm)
{
	char *e;

	if (frags.comm.len &&
	    !memcmp(frags.comm_key, comm, TCPTRACE_COMM_LEN))
		return put_frag(p, &frags.comm);
	e = make_comm(p, comm);
	if (e - p <= (ptrdiff_t)sizeof(frags.comm.s)) {
		memcpy(frags.comm_key, comm, TCPTRACE_COMM_LEN);
		memcpy(frags.comm.s, p, (size_t)(e - p));
		frags.comm.len = (uint8_t)(e - p);
	}
	return e;
}

char *format_json(char *line, const struct tcptrace_record *r,
		  const struct isns *isn, const struct story_ann *ann)
{
	const struct tcptrace_state *st = &r->state;
	unsigned int family = r->family;
	char *p = line;

	if (!frags.made)
		make_frags();
	p = put_lit(p, "{\"ts_ns\":");
	p = put_u64(p, r->ts_ns);
	p = put_key_frag(p, "type", &frags.type[r->type]);
	p = put_key_num(p, "netns", r->netns);
	if (family == AF_INET)
		family = 4;
	else if (family == AF_INET6)
		family = 6;
	p = put_key_num(p, "family", family);
	if (family == 4 || family == 6) {
		p = put_addr(put_key(p, "saddr"), r, r->saddr);
		p = put_key_num(p, "sport", r->sport);
		p = put_addr(put_key(p, "daddr"), r, r->daddr);
		p = put_key_num(p, "dport", r->dport);
	}
	p = put_key_num(p, "cpu", r->cpu);
	p = put_key_num(p, "pid", r->pid);
	if (r->pid)
		p = put_comm(put_key(p, "comm"), r->comm);
	if (r->sock_id)
		p = put_key_num(p, "sock_id", r->sock_id);

	switch (r->type) {
	case TCPTRACE_T_PACKET:
		if (r->dir == TCPTRACE_DIR_IN)
			p = put_lit(p, ",\"dir\":\"in\"");
		else if (r->dir == TCPTRACE_DIR_OUT)
			p = put_lit(p, ",\"dir\":\"out\"");
		else
			p = put_lit(p, ",\"dir\":\"unknown\"");
		p = put_key_frag(p, "flags", &frags.flags[r->packet.flags]);
		p = put_key_num(p, "seq", r->packet.seq);
		p = put_key_num(p, "ack", r->packet.ack);
		p = put_key_num(p, "win", r->packet.win);
		p = put_key_num(p, "len", r->packet.payload_len);
		if (isn->s_known)
			p = put_key_num(p, "rel_seq",
				     (uint32_t)(r->packet.seq - isn->s_isn));
		if (isn->d_known && (r->packet.flags & TCPTRACE_FLAG_ACK))
			p = put_key_num(p, "rel_ack",
				     (uint32_t)(r->packet.ack - isn->d_isn));
		break;
	case TCPTRACE_T_STATE:
		p = put_state(p, "old_state", st->old_state);
		p = put_state(p, "new_state", st->new_state);
		p = put_key_num(p, "snd_nxt", st->snd_nxt);
		p = put_key_num(p, "rcv_nxt", st->rcv_nxt);
		p = put_key_num(p, "snd_una", st->snd_una);
		break;
	case TCPTRACE_T_SYNACK_RETRANSMIT:
		p = put_key_num(p, "snt_isn", r->synack.snt_isn);
		p = put_key_num(p, "rcv_isn", r->synack.rcv_isn);
		p = put_key_num(p, "num_retrans", r->synack.num_retrans);
		break;
	case TCPTRACE_T_RETRANSMIT:
		p = put_key_frag(p, "flags", &frags.flags[st->flags]);
		p = put_key_num(p, "seq", st->seq);
		p = put_key_num(p, "end_seq", st->end_seq);
		p = put_state(p, "state", st->old_state);
		if (isn->s_known) {
			p = put_key_num(p, "rel_seq",
				     (uint32_t)(st->seq - isn->s_isn));
			p = put_key_num(p, "rel_end_seq",
				     (uint32_t)(st->end_seq - isn->s_isn));
		}
		break;
	case TCPTRACE_T_TIMEWAIT:
		p = put_state(p, "state", st->old_state);
		p = put_state(p, "tw_substate", st->new_state);
		p = put_key_num(p, "timeo_ms", st->timeo_ms);
		p = put_key_num(p, "snd_nxt", st->snd_nxt);
		p = put_key_num(p, "rcv_nxt", st->rcv_nxt);
		break;
	case TCPTRACE_T_RESET_SENT:
	case TCPTRACE_T_RESET_RECEIVED:
	case TCPTRACE_T_DESTROY:
		p = put_state(p, "state", st->old_state);
		p = put_key_num(p, "snd_nxt", st->snd_nxt);
		p = put_key_num(p, "rcv_nxt", st->rcv_nxt);
		break;
	case TCPTRACE_T_TIMEWAIT_END:
		p = put_state(p, "tw_substate", st->new_state);
		p = put_key_str(p, "end", tw_end_how(st->flags));
		p = put_key_num(p, "snd_nxt", st->snd_nxt);
		p = put_key_num(p, "rcv_nxt", st->rcv_nxt);
		if (isn->tw_known)
			p = put_key_num(p, "duration_ns", isn->tw_ns);
		break;
	case TCPTRACE_T_LISTEN_OVERFLOW:
		p = put_key_str(p, "reason", overflow_reason(r->listen.reason));
		p = put_key_num(p, "syn_queue", r->listen.syn_queue);
		p = put_key_num(p, "accept_queue", r->listen.accept_queue);
		p = put_key_num(p, "backlog", r->listen.backlog);
		break;
	case TCPTRACE_T_LOST:
		p = put_key_num(p, "count", r->lost.count);
		break;
	}
	if (ann && ann->owner_known) {
		p = put_key_num(p, "owner_pid", ann->owner_pid);
		p = put_comm(put_key(p, "owner_comm"), ann->owner_comm);
	}
	if (ann && ann->violation)
		p = put_key_str(p, "violation", ann->violation);
	return put_lit(p, "}\n");
}
