// SPDX-License-Identifier: GPL-2.0
/*
 * tcptracectl: read back the JSON Lines written by 'watch --json'.
 *
 * Each line becomes the record it was printed from: the keys are those of
 * format_json(), the names (type, states, flags, reasons) are mapped back
 * to their numbers.  Keys added by the views (rel_seq, violation, owner_*,
 * duration_ns) are derived and ignored.  A line whose "type" is not a record
 * type (e.g. "summary") yields a record of type 0, which callers skip.
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "source.h"

struct jctx {
	json_t *obj;
	char *err;
	size_t errsize;
	int failed;
};

static void jerr(struct jctx *j, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void jerr(struct jctx *j, const char *fmt, ...)
{
	va_list ap;

	if (j->failed++)
		return;
	va_start(ap, fmt);
	vsnprintf(j->err, j->errsize, fmt, ap);
	va_end(ap);
}

/* An integer key in [0, max]; @need: missing is an error. */
static uint64_t jint(struct jctx *j, const char *key, uint64_t max, bool need)
{
	json_t *v = json_object_get(j->obj, key);
	json_int_t n;

	if (!v) {
		if (need)
			jerr(j, "missing key \"%s\"", key);
		return 0;
	}
	if (!json_is_integer(v)) {
		jerr(j, "\"%s\" is not an integer", key);
		return 0;
	}
	n = json_integer_value(v);
	/* jansson holds integers as long long: ts_ns and sock_id fit */
	if (n < 0 || (uint64_t)n > max) {
		jerr(j, "\"%s\" out of range: %lld", key, (long long)n);
		return 0;
	}
	return (uint64_t)n;
}

static const char *jstr(struct jctx *j, const char *key, bool need)
{
	json_t *v = json_object_get(j->obj, key);

	if (!v) {
		if (need)
			jerr(j, "missing key \"%s\"", key);
		return NULL;
	}
	if (!json_is_string(v)) {
		jerr(j, "\"%s\" is not a string", key);
		return NULL;
	}
	return json_string_value(v);
}

static unsigned int jstate(struct jctx *j, const char *key)
{
	const char *s = jstr(j, key, true);
	char buf[32];
	unsigned int i;

	if (!s)
		return 0;
	for (i = 1; i < 64; i++)
		if (!strcmp(s, tcp_state_name(i, buf, sizeof(buf))))
			return i;
	jerr(j, "\"%s\": unknown state \"%s\"", key, s);
	return 0;
}

static unsigned int jflags(struct jctx *j, const char *key)
{
	static const char letters[] = "FSRP.UEW";
	const char *s = jstr(j, key, true), *p;
	unsigned int flags = 0;

	if (!s || !strcmp(s, "none"))
		return 0;
	for (; *s; s++) {
		p = strchr(letters, *s);
		if (!p) {
			jerr(j, "\"%s\": unknown flag '%c'", key, *s);
			return 0;
		}
		flags |= 1u << (p - letters);
	}
	return flags;
}

static void jaddr(struct jctx *j, const char *key, int family, uint8_t *out)
{
	const char *s = jstr(j, key, true);

	if (s && inet_pton(family, s, out) != 1)
		jerr(j, "\"%s\": bad address \"%s\"", key, s);
}

/* The name @s among @name(1..max); 0 and an error when none matches. */
static unsigned int jname(struct jctx *j, const char *key,
			  const char *(*name)(unsigned int), unsigned int max)
{
	const char *s = jstr(j, key, true);
	unsigned int i;

	if (!s)
		return 0;
	for (i = 1; i <= max; i++)
		if (!strcmp(s, name(i)))
			return i;
	jerr(j, "\"%s\": unknown value \"%s\"", key, s);
	return 0;
}

/*
 * jansson holds integers as long long, and a socket id may be larger: the
 * value of @key (a full 64-bit number) is taken from the line here, and
 * the JSON parsed from a copy where it is 0.
 */
static int take_u64(const char *line, size_t len, const char *key,
		    uint64_t *out, char **copy)
{
	const char *p = memmem(line, len, key, strlen(key));
	size_t start, end;
	uint64_t v = 0;

	*copy = NULL;
	if (!p)
		return 0;
	start = (size_t)(p - line) + strlen(key);
	while (start < len && (line[start] == ' ' || line[start] == '\t' ||
			       line[start] == '\n' || line[start] == '\r'))
		start++;
	for (end = start; end < len && line[end] >= '0' && line[end] <= '9';
	     end++) {
		if (v > (UINT64_MAX - (uint64_t)(line[end] - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(line[end] - '0');
	}
	if (end == start)
		return -1;
	*copy = malloc(len);
	if (!*copy)
		return -1;
	memcpy(*copy, line, len);
	(*copy)[start] = '0';
	memset(*copy + start + 1, ' ', end - start - 1);
	*out = v;
	return 0;
}

static void jstate_common(struct jctx *j, struct tcptrace_state *st)
{
	st->snd_nxt = (uint32_t)jint(j, "snd_nxt", UINT32_MAX, true);
	st->rcv_nxt = (uint32_t)jint(j, "rcv_nxt", UINT32_MAX, true);
}

int json_to_record(const char *line, size_t len, struct tcptrace_record *r,
		   char *err, size_t errsize)
{
	struct jctx j = { .err = err, .errsize = errsize };
	struct tcptrace_state *st = &r->state;
	unsigned int type, family, i;
	uint64_t sock_id = 0;
	json_error_t jerror;
	char *copy = NULL;
	const char *s;
	int af = 0;

	memset(r, 0, sizeof(*r));
	if (take_u64(line, len, "\"sock_id\":", &sock_id, &copy)) {
		snprintf(err, errsize, "bad \"sock_id\"");
		return -1;
	}
	j.obj = json_loadb(copy ? copy : line, len, JSON_REJECT_DUPLICATES,
			   &jerror);
	free(copy);
	if (!j.obj) {
		snprintf(err, errsize, "not JSON: %s", jerror.text);
		return -1;
	}
	if (!json_is_object(j.obj)) {
		jerr(&j, "not a JSON object");
		goto out;
	}
	s = jstr(&j, "type", true);
	if (!s)
		goto out;
	for (type = 1; type < TCPTRACE_T_MAX; type++)
		if (!strcmp(s, record_type_name(type)))
			break;
	if (type == TCPTRACE_T_MAX)
		goto out;	/* not a record: type 0 */

	r->len = TCPTRACE_RECORD_SIZE;
	r->version = TCPTRACE_RECORD_VERSION;
	r->type = (uint8_t)type;
	r->ts_ns = jint(&j, "ts_ns", INT64_MAX, true);
	r->netns = (uint32_t)jint(&j, "netns", UINT32_MAX, true);
	r->cpu = (uint16_t)jint(&j, "cpu", UINT16_MAX, true);
	r->pid = (uint32_t)jint(&j, "pid", UINT32_MAX, true);
	r->sock_id = sock_id;
	if (r->pid) {
		s = jstr(&j, "comm", false);
		if (s)
			strncpy(r->comm, s, sizeof(r->comm) - 1);
	}
	family = (unsigned int)jint(&j, "family", 6, true);
	if (type == TCPTRACE_T_LOST) {
		r->lost.count = jint(&j, "count", INT64_MAX, true);
		goto out;
	}
	if (family == 4) {
		af = AF_INET;
	} else if (family == 6) {
		af = AF_INET6;
	} else {
		jerr(&j, "\"family\" must be 4 or 6");
		goto out;
	}
	r->family = (uint8_t)af;
	jaddr(&j, "saddr", af, r->saddr);
	jaddr(&j, "daddr", af, r->daddr);
	r->sport = (uint16_t)jint(&j, "sport", UINT16_MAX, true);
	r->dport = (uint16_t)jint(&j, "dport", UINT16_MAX, true);

	switch (type) {
	case TCPTRACE_T_PACKET:
		s = jstr(&j, "dir", true);
		if (s && !strcmp(s, "in"))
			r->dir = TCPTRACE_DIR_IN;
		else if (s && !strcmp(s, "out"))
			r->dir = TCPTRACE_DIR_OUT;
		else if (s)
			jerr(&j, "\"dir\" must be \"in\" or \"out\"");
		r->packet.flags = (uint8_t)jflags(&j, "flags");
		r->packet.seq = (uint32_t)jint(&j, "seq", UINT32_MAX, true);
		r->packet.ack = (uint32_t)jint(&j, "ack", UINT32_MAX, true);
		r->packet.win = (uint16_t)jint(&j, "win", UINT16_MAX, true);
		r->packet.payload_len = (uint32_t)jint(&j, "len", UINT32_MAX,
						       true);
		r->packet.doff = 20;
		break;
	case TCPTRACE_T_STATE:
		st->old_state = (uint8_t)jstate(&j, "old_state");
		st->new_state = (uint8_t)jstate(&j, "new_state");
		jstate_common(&j, st);
		st->snd_una = (uint32_t)jint(&j, "snd_una", UINT32_MAX, true);
		break;
	case TCPTRACE_T_SYNACK_RETRANSMIT:
		r->synack.snt_isn = (uint32_t)jint(&j, "snt_isn", UINT32_MAX,
						   true);
		r->synack.rcv_isn = (uint32_t)jint(&j, "rcv_isn", UINT32_MAX,
						   true);
		r->synack.num_retrans = (uint32_t)jint(&j, "num_retrans",
						       UINT32_MAX, true);
		break;
	case TCPTRACE_T_RETRANSMIT:
		st->flags = (uint8_t)jflags(&j, "flags");
		st->seq = (uint32_t)jint(&j, "seq", UINT32_MAX, true);
		st->end_seq = (uint32_t)jint(&j, "end_seq", UINT32_MAX, true);
		st->old_state = (uint8_t)jstate(&j, "state");
		break;
	case TCPTRACE_T_TIMEWAIT:
		st->old_state = (uint8_t)jstate(&j, "state");
		st->new_state = (uint8_t)jstate(&j, "tw_substate");
		st->timeo_ms = (uint32_t)jint(&j, "timeo_ms", UINT32_MAX, true);
		jstate_common(&j, st);
		break;
	case TCPTRACE_T_RESET_SENT:
	case TCPTRACE_T_RESET_RECEIVED:
	case TCPTRACE_T_DESTROY:
		st->old_state = (uint8_t)jstate(&j, "state");
		jstate_common(&j, st);
		break;
	case TCPTRACE_T_TIMEWAIT_END:
		st->old_state = 6;	/* TIME_WAIT */
		st->new_state = (uint8_t)jstate(&j, "tw_substate");
		i = jname(&j, "end", tw_end_how, 2);
		st->flags = (uint8_t)i;
		jstate_common(&j, st);
		break;
	case TCPTRACE_T_LISTEN_OVERFLOW:
		r->listen.reason = (uint8_t)jname(&j, "reason",
						  overflow_reason, 3);
		r->listen.syn_queue = (uint32_t)jint(&j, "syn_queue",
						     UINT32_MAX, true);
		r->listen.accept_queue = (uint32_t)jint(&j, "accept_queue",
							UINT32_MAX, true);
		r->listen.backlog = (uint32_t)jint(&j, "backlog", UINT32_MAX,
						   true);
		break;
	}
out:
	json_decref(j.obj);
	if (j.failed)
		memset(r, 0, sizeof(*r));
	return j.failed ? -1 : 0;
}
