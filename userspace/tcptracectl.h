/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tcptracectl: shared declarations.
 */
#ifndef TCPTRACECTL_H
#define TCPTRACECTL_H

#include <stdbool.h>
#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "tcptrace.h"

#define TCPTRACECTL_VERSION	"0.1.0"
#define PROG			"tcptracectl"

/*
 * A hash of a fixed-size key (the connection keys of conn.c and story.c),
 * read 8 bytes at a time and mixed at the end so that its low bits, which
 * pick the bucket, depend on every byte: a byte-at-a-time hash took a
 * fifth of the time of a reader keeping up with the device.
 */
static inline uint32_t key_hash_bytes(const void *key, size_t len)
{
	const unsigned char *p = key;
	uint64_t h = 0x9e3779b97f4a7c15ull ^ len, w;
	uint32_t u;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		__builtin_memcpy(&w, p + i, 8);
		h = ((h << 5 | h >> 59) ^ w) * 0x517cc1b727220a95ull;
	}
	/* the rest, big-endian: 4 bytes at once, then one by one */
	w = 0;
	if (len - i >= 4) {
		__builtin_memcpy(&u, p + i, 4);
		w = be32toh(u);
		i += 4;
	}
	for (; i < len; i++)
		w = w << 8 | p[i];
	h = ((h << 5 | h >> 59) ^ w) * 0x517cc1b727220a95ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return (uint32_t)h;
}

/*
 * memcmp() of two addresses, 4 bytes long for AF_INET and 16 for anything
 * else, read as big-endian words: the same sign, without a library call
 * for a few bytes (a tenth of a reader's time went into such calls).
 */
static inline int addr_cmp(const uint8_t *a, const uint8_t *b,
			   unsigned int family)
{
	uint64_t x, y;
	uint32_t u, v;

	if (family == AF_INET) {
		__builtin_memcpy(&u, a, 4);
		__builtin_memcpy(&v, b, 4);
		u = be32toh(u);
		v = be32toh(v);
		return (u > v) - (u < v);
	}
	__builtin_memcpy(&x, a, 8);
	__builtin_memcpy(&y, b, 8);
	if (x == y) {
		__builtin_memcpy(&x, a + 8, 8);
		__builtin_memcpy(&y, b + 8, 8);
	}
	x = be64toh(x);
	y = be64toh(y);
	return (x > y) - (x < y);
}

/* Exit status of usage errors; runtime errors exit with 1. */
#define EXIT_USAGE		2

/*
 * The layout of the records as this tool reads them.  A mismatch with the
 * UAPI header must fail the build, not misparse at run time.
 */
_Static_assert(sizeof(struct tcptrace_record) == TCPTRACE_RECORD_SIZE,
	       "struct tcptrace_record size");
_Static_assert(TCPTRACE_RECORD_SIZE == 128, "TCPTRACE_RECORD_SIZE");
_Static_assert(offsetof(struct tcptrace_record, len) == 0, "len");
_Static_assert(offsetof(struct tcptrace_record, version) == 2, "version");
_Static_assert(offsetof(struct tcptrace_record, type) == 3, "type");
_Static_assert(offsetof(struct tcptrace_record, family) == 4, "family");
_Static_assert(offsetof(struct tcptrace_record, dir) == 5, "dir");
_Static_assert(offsetof(struct tcptrace_record, cpu) == 6, "cpu");
_Static_assert(offsetof(struct tcptrace_record, netns) == 8, "netns");
_Static_assert(offsetof(struct tcptrace_record, pid) == 12, "pid");
_Static_assert(offsetof(struct tcptrace_record, ts_ns) == 16, "ts_ns");
_Static_assert(offsetof(struct tcptrace_record, sock_id) == 24, "sock_id");
_Static_assert(offsetof(struct tcptrace_record, saddr) == 32, "saddr");
_Static_assert(offsetof(struct tcptrace_record, daddr) == 48, "daddr");
_Static_assert(offsetof(struct tcptrace_record, sport) == 64, "sport");
_Static_assert(offsetof(struct tcptrace_record, dport) == 66, "dport");
_Static_assert(offsetof(struct tcptrace_record, comm) == 72, "comm");
_Static_assert(offsetof(struct tcptrace_record, packet) == 88, "union");
_Static_assert(offsetof(struct tcptrace_record, packet.seq) == 88, "seq");
_Static_assert(offsetof(struct tcptrace_record, packet.ack) == 92, "ack");
_Static_assert(offsetof(struct tcptrace_record, packet.win) == 96, "win");
_Static_assert(offsetof(struct tcptrace_record, packet.flags) == 98, "flags");
_Static_assert(offsetof(struct tcptrace_record, packet.payload_len) == 100,
	       "payload_len");
_Static_assert(offsetof(struct tcptrace_record, state.snd_nxt) == 92,
	       "snd_nxt");
_Static_assert(offsetof(struct tcptrace_record, state.timeo_ms) == 112,
	       "timeo_ms");
_Static_assert(offsetof(struct tcptrace_record, synack.num_retrans) == 96,
	       "num_retrans");
_Static_assert(offsetof(struct tcptrace_record, lost.count) == 88, "count");
_Static_assert(sizeof(struct tcptrace_stats) == 248, "struct tcptrace_stats");
_Static_assert(offsetof(struct tcptrace_stats, events) == 16, "events");
_Static_assert(offsetof(struct tcptrace_stats, per_type) == 56, "per_type");
_Static_assert(offsetof(struct tcptrace_stats, ring_bytes) == 184,
	       "ring_bytes");
_Static_assert(offsetof(struct tcptrace_stats, expect_used) == 208,
	       "expect_used");

/* Record filters of watch and ladder (watch.c). */
#define MAX_FILTER	64
struct filter {
	bool v4, v6;
	size_t nports, nlports, nrports, nnetns;
	uint16_t ports[MAX_FILTER];
	uint16_t lports[MAX_FILTER];
	uint16_t rports[MAX_FILTER];
	uint32_t netns[MAX_FILTER];
};

/* Options -4 -6 -p -L -D -n: 1 when @c is one and was taken, 0 when it is
 * not a filter option, -1 on a bad value (message printed). */
int filter_option(struct filter *f, int c, const char *arg);
bool filter_match(const struct filter *f, const struct tcptrace_record *r);
struct story;
bool filter_story(const struct filter *f, const struct story *st);

/* tcptracectl.c */
void errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void warnmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *device_path(void);
int device_open(int flags, int *fdp);
int parse_uint(const char *opt, const char *arg, uint64_t min, uint64_t max,
	       uint64_t *out);
int parse_seconds(const char *opt, const char *arg, double *out);
int bad_option(const char *cmd, int opt, char **argv);

/* Subcommands: each returns the exit status. */
int cmd_watch(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_clear(int argc, char **argv);
int cmd_tune(int argc, char **argv);
int cmd_ladder(int argc, char **argv);
int cmd_record(int argc, char **argv);
int cmd_metrics(int argc, char **argv);
void usage_watch(FILE *out);
void usage_stats(FILE *out);
void usage_clear(FILE *out);
void usage_tune(FILE *out);
void usage_ladder(FILE *out);
void usage_record(FILE *out);
void usage_metrics(FILE *out);

/* format.c */

/*
 * The ISNs known for the two endpoints of a record: "s" is the endpoint in
 * saddr/sport (the sender of a segment, else the local end), "d" the one in
 * daddr/dport.
 */
/* What is known of a record's connection from the records before it. */
struct isns {
	bool s_known;
	bool d_known;
	uint32_t s_isn;
	uint32_t d_isn;
	bool tw_known;		/* TIMEWAIT_END: its TIMEWAIT record was seen */
	uint64_t tw_ns;		/* and this long ago */
};

struct fmt_opts {
	bool absolute;		/* -T: CLOCK_MONOTONIC instead of relative */
	bool have_base;
	uint64_t base_ts;	/* ts_ns of the first printed record */
};

const char *record_type_name(unsigned int type);
const char *overflow_reason(unsigned int reason);
const char *tw_end_how(unsigned int flags);
const char *tcp_state_name(unsigned int state, char *buf, size_t size);
void tcp_flags_str(unsigned int flags, char *buf, size_t size);
struct story_ann;
void format_text(FILE *out, const struct tcptrace_record *r,
		 const struct isns *isn, struct fmt_opts *o,
		 const struct story_ann *ann);
/*
 * The JSON line of a record of a known type (< TCPTRACE_T_MAX, as the
 * readers deliver them), "\n" included, written at @line, which has room
 * for JSON_LINE_MAX bytes; returns its end.  The longest line: about
 * 40 keys, numbers of at most 20 digits, two IPv6 addresses, two command
 * names of 16 bytes escaped (6 bytes each), a violation code, and 32 bytes
 * that fixed-size copies may write past the end: well under 2 KiB.
 */
#define JSON_LINE_MAX		2048
char *format_json(char *line, const struct tcptrace_record *r,
		  const struct isns *isn, const struct story_ann *ann);
void json_text(FILE *out, const char *s, size_t n);
/* @buf: TCPTRACE_COMM_LEN + 1 bytes */
const char *comm_printable(const char *comm, char *buf);

#endif /* TCPTRACECTL_H */
