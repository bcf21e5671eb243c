// SPDX-License-Identifier: GPL-2.0
/*
 * tcptracectl: the summary of a connection, as text or JSON.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <string.h>
#include <sys/socket.h>

#include "story.h"

static void addr_text(const struct story *st, int s, char *buf, size_t size)
{
	int af = st->family == AF_INET ? AF_INET : AF_INET6;

	if (!inet_ntop(af, st->side[s].addr, buf, size))
		snprintf(buf, size, "?");
}

void endpoint_text(const struct story *st, int s, char *buf, size_t size)
{
	char a[INET6_ADDRSTRLEN];

	addr_text(st, s, a, sizeof(a));
	if (st->family == AF_INET6)
		snprintf(buf, size, "[%s]:%u", a, st->side[s].port);
	else
		snprintf(buf, size, "%s:%u", a, st->side[s].port);
}

/* Bytes sent by side s, from its sequence numbers; false when unknown. */
static bool bytes_sent(const struct story *st, int s, uint32_t *out)
{
	const struct story_side *sd = &st->side[s];

	if (!sd->isn_known)
		return false;
	if (sd->fin_seen)
		*out = sd->fin_seq - sd->isn - 1;
	else if (sd->rst_seen && !sd->rst_old && sd->t_est)
		*out = sd->rst_seq - sd->isn - 1;
	else if (sd->end_known)
		*out = sd->max_end - sd->isn - 1;
	else
		return false;
	return true;
}

static bool handshake_ns(const struct story *st, int s, uint64_t *out)
{
	const struct story_side *sd = &st->side[s];

	if (!sd->t_start || !sd->t_est || sd->t_est < sd->t_start)
		return false;
	*out = sd->t_est - sd->t_start;
	return true;
}

static const char *closed_first(const struct story *st)
{
	if (st->closed_first == 2)
		return "both";
	if (st->closed_first < 0)
		return NULL;
	return side_name(st->closed_first);
}

static void text_ms(FILE *out, bool known, uint64_t ns)
{
	if (known)
		fprintf(out, "%.3f ms", (double)ns / 1e6);
	else
		fputs("-", out);
}

static void text_side(FILE *out, const struct story *st, int s)
{
	const struct story_side *sd = &st->side[s];
	char ep[INET6_ADDRSTRLEN + 10], comm[TCPTRACE_COMM_LEN + 1];

	endpoint_text(st, s, ep, sizeof(ep));
	fprintf(out, "%s %s", side_name(s), ep);
	if (sd->netns_known)
		fprintf(out, " net:[%" PRIu32 "]", sd->netns);
	if (sd->owner_known)
		fprintf(out, " pid %" PRIu32 " (%s)", sd->pid,
			comm_printable(sd->comm, comm));
}

void summary_text(FILE *out, const struct story *st)
{
	const struct story_side *sd;
	const char *cf = closed_first(st);
	uint64_t ns = 0;
	uint32_t b = 0;
	unsigned int i;
	bool known;
	int s;

	fprintf(out, "  outcome %s", story_outcome(st));
	if (cf)
		fprintf(out, ", closed first by %s", cf);
	fprintf(out, "; %.6f s from its first record to its last\n",
		st->end_ns > st->start_ns ?
		(double)(st->end_ns - st->start_ns) / 1e9 : 0.0);
	for (s = 0; s < 2; s++) {
		sd = &st->side[s];
		fputs("  ", out);
		text_side(out, st, s);
		fputs("\n    handshake ", out);
		known = handshake_ns(st, s, &ns);
		text_ms(out, known, ns);
		fputs(", FIN_WAIT2 ", out);
		text_ms(out, sd->fw2_known, sd->fw2_ns);
		fputs(", CLOSE_WAIT ", out);
		text_ms(out, sd->cw_known, sd->cw_ns);
		fputs(", TIME_WAIT ", out);
		text_ms(out, sd->tw_known, sd->tw_ns);
		if (bytes_sent(st, s, &b))
			fprintf(out, ", sent %" PRIu32 " bytes\n", b);
		else
			fputs(", sent - bytes\n", out);
	}
	fprintf(out, "  retransmitted SYN %u, SYN-ACK %u; violations:",
		st->syn_retransmits, st->synack_retransmits);
	for (i = 0; i < st->nviolations; i++)
		fprintf(out, "%s%s", i ? ", " : " ", st->violations[i]);
	if (!st->nviolations)
		fputs(" none", out);
	fputc('\n', out);
	if (st->lost_records)
		fprintf(out, "  incomplete: %" PRIu64 " records were lost while it was open\n",
			st->lost_records);
	if (st->evicted)
		fputs("  incomplete: printed early, too many connections were open\n",
		      out);
	if (st->ev_dropped)
		fprintf(out, "  incomplete: %zu events beyond the first %d not kept\n",
			st->ev_dropped, STORY_MAX_EVENTS);
}

static void json_opt_ns(FILE *out, const char *key, bool known, uint64_t v)
{
	if (known)
		fprintf(out, "\"%s\":%" PRIu64, key, v);
	else
		fprintf(out, "\"%s\":null", key);
}

static void json_pair_ns(FILE *out, const char *key, const struct story *st,
			 size_t known_off, size_t ns_off)
{
	int s;

	fprintf(out, ",\"%s\":{", key);
	for (s = 0; s < 2; s++) {
		const char *base = (const char *)&st->side[s];
		bool known = *(const bool *)(base + known_off);
		uint64_t ns = *(const uint64_t *)(base + ns_off);

		if (s)
			fputc(',', out);
		json_opt_ns(out, side_name(s), known, ns);
	}
	fputc('}', out);
}

static void json_side(FILE *out, const struct story *st, int s)
{
	const struct story_side *sd = &st->side[s];
	char a[INET6_ADDRSTRLEN];

	addr_text(st, s, a, sizeof(a));
	fprintf(out, ",\"%s\":{\"addr\":\"%s\",\"port\":%u", side_name(s), a,
		sd->port);
	if (sd->netns_known)
		fprintf(out, ",\"netns\":%" PRIu32, sd->netns);
	else
		fputs(",\"netns\":null", out);
	if (sd->owner_known) {
		fprintf(out, ",\"pid\":%" PRIu32 ",\"comm\":", sd->pid);
		json_text(out, sd->comm, strnlen(sd->comm,
						   sizeof(sd->comm)));
	} else {
		fputs(",\"pid\":null,\"comm\":null", out);
	}
	fputc('}', out);
}

void summary_json(FILE *out, const struct story *st)
{
	const char *cf = closed_first(st);
	uint64_t ns = 0;
	uint32_t b = 0;
	unsigned int i;
	bool known;
	int s;

	fprintf(out, "{\"type\":\"summary\",\"family\":%d",
		st->family == AF_INET ? 4 : 6);
	json_side(out, st, STORY_CLIENT);
	json_side(out, st, STORY_SERVER);
	fprintf(out, ",\"start_ns\":%" PRIu64 ",\"end_ns\":%" PRIu64,
		st->start_ns, st->end_ns);
	fputs(",\"handshake_ns\":{", out);
	for (s = 0; s < 2; s++) {
		if (s)
			fputc(',', out);
		known = handshake_ns(st, s, &ns);
		json_opt_ns(out, side_name(s), known, ns);
	}
	fprintf(out, "},\"syn_retransmits\":%u,\"synack_retransmits\":%u",
		st->syn_retransmits, st->synack_retransmits);
	if (cf)
		fprintf(out, ",\"closed_first\":\"%s\"", cf);
	else
		fputs(",\"closed_first\":null", out);
	json_pair_ns(out, "fin_wait2_ns", st,
		     offsetof(struct story_side, fw2_known),
		     offsetof(struct story_side, fw2_ns));
	json_pair_ns(out, "close_wait_ns", st,
		     offsetof(struct story_side, cw_known),
		     offsetof(struct story_side, cw_ns));
	json_pair_ns(out, "time_wait_ns", st,
		     offsetof(struct story_side, tw_known),
		     offsetof(struct story_side, tw_ns));
	fprintf(out, ",\"outcome\":\"%s\",\"bytes\":{", story_outcome(st));
	known = bytes_sent(st, STORY_CLIENT, &b);
	json_opt_ns(out, "client_to_server", known, b);
	fputc(',', out);
	known = bytes_sent(st, STORY_SERVER, &b);
	json_opt_ns(out, "server_to_client", known, b);
	fputs("},\"violations\":[", out);
	for (i = 0; i < st->nviolations; i++)
		fprintf(out, "%s\"%s\"", i ? "," : "", st->violations[i]);
	fprintf(out, "],\"lost_records\":%" PRIu64 ",\"complete\":%s}\n",
		st->lost_records,
		st->lost_records || st->evicted || st->ev_dropped ?
		"false" : "true");
}
