// SPDX-License-Identifier: GPL-2.0
/*
 * tcptracectl metrics: count what the records tell (handshakes, SYN and
 * SYN-ACK retransmissions, resets, listener overflows, TIME_WAIT entries,
 * lost records) and serve the counters as Prometheus text-format metrics
 * over HTTP (GET /metrics).
 *
 * The main thread is the device's reader (source_run()); a second thread
 * accepts the scrapes.  The counters are shared under one mutex.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "source.h"
#include "tcptracectl.h"

#define DEFAULT_MAX_LISTENERS	256
#define MAX_MAX_LISTENERS	65536
/* TCP states as the kernel numbers them */
#define NR_TCP_STATES		13
#define ST_ESTABLISHED		1
#define ST_SYN_SENT		2
#define ST_SYN_RECV		3
#define ST_FIN_WAIT2		5
#define ST_CLOSE		7
#define ST_LISTEN		10
/*
 * The states in which a full socket sends a RST (CLOSE: from a timer; by
 * the application it is "aborted"), and takes one; series of the others
 * are shown once non-zero.
 */
#define RESET_RECEIVED_STATES	(1u << 1 | 1u << 2 | 1u << 3 | 1u << 4 | \
				 1u << 5 | 1u << 8 | 1u << 9 | 1u << 11)
#define RESET_SENT_STATES	(RESET_RECEIVED_STATES | 1u << ST_CLOSE)
/* a socket's reset_sent and its RST segment are paired within this */
#define PAIR_NS			100000000ULL
#define PENDING			64
/* sockets that took a RST in SYN_SENT/SYN_RECV, until they close */
#define RST_SLOTS		1024
/* an HTTP request: its header must come within this many bytes and ms */
#define REQ_MAX			8192
#define REQ_TIMEOUT_MS		3000

enum side { SIDE_CLIENT, SIDE_SERVER, NR_SIDES };
enum fail_reason { FAIL_RESET, FAIL_TIMEOUT, FAIL_ABORTED, NR_FAIL };
/* resets sent: these, then one per state ("in_<state>") */
enum { RS_NO_SOCKET, RS_LISTENER, RS_ABORTED, RS_STATE0 };
#define NR_RESET_SENT		(RS_STATE0 + NR_TCP_STATES)
enum ovf { OVF_SYN_ACCEPTQ, OVF_ACK_ACCEPTQ, OVF_SYNQ, NR_OVF };

static const char *const side_names[NR_SIDES] = { "client", "server" };
static const char *const fail_names[NR_FAIL] = { "reset", "timeout",
						 "aborted" };

struct listener {
	uint32_t netns;		/* 0 with other: the bucket of the rest */
	uint8_t family;
	uint8_t addr[16];
	uint16_t port;
	bool other;
	uint64_t ovf[NR_OVF];
};

struct counters {
	uint64_t handshakes[NR_SIDES];
	uint64_t failed[NR_SIDES][NR_FAIL];
	uint64_t syn_retrans;
	uint64_t synack_retrans;
	uint64_t fin_retrans;
	uint64_t reset_sent[NR_RESET_SENT];
	uint64_t reset_received[NR_TCP_STATES];
	uint64_t tw_entered[2];		/* TIME_WAIT, FIN_WAIT2 */
	uint64_t tw_ended[2];		/* expired, killed */
	uint64_t lost;
	uint64_t records[TCPTRACE_T_MAX];
};

/* A RST or a reset_sent record waiting for its other half. */
struct pending {
	bool used;
	bool is_packet;		/* else a reset_sent record */
	uint8_t reason;		/* reset_sent: RS_* */
	uint32_t netns;
	uint16_t port;		/* the local port */
	uint64_t ts;
};

struct metrics {
	struct filter filter;
	pthread_mutex_t lock;
	struct counters c;
	struct listener *listeners;
	size_t nlisteners, max_listeners;
	struct pending pending[PENDING];
	uint64_t rst_sock[RST_SLOTS];
	uint64_t last_ts;
	/* the HTTP side */
	int lfd;
	int stop_pipe[2];
	char where[INET6_ADDRSTRLEN + 16];
};

void usage_metrics(FILE *out)
{
	fprintf(out,
"Usage: " PROG " metrics --listen ADDR:PORT [OPTIONS]\n"
"\n"
"Read the records of the tcptrace module and serve counters made from them\n"
"as Prometheus text-format metrics at http://ADDR:PORT/metrics, until\n"
"SIGINT/SIGTERM or --duration.  'metrics' is the device's reader: while it\n"
"runs, 'watch', 'ladder' and 'record' on the device fail with 'already\n"
"being read' (one reader at a time); 'stats' and 'clear' still work.\n"
"Counters start at 0 when it starts.\n"
"\n"
"Options:\n"
"  -l, --listen ADDR:PORT  the address and TCP port to serve on, e.g.\n"
"                          127.0.0.1:9464, [::1]:9464, or :9464 for every\n"
"                          address of the host (IPv6 and IPv4); required\n"
"      --max-listeners N   label the overflows of at most N listeners\n"
"                          (1..65536, default 256); the others are counted\n"
"                          under listener=\"other\",netns=\"other\"\n"
"  -4                      count only IPv4 records\n"
"  -6                      count only IPv6 records\n"
"  -p, --port PORT         count only records with local or remote port\n"
"                          PORT; may be repeated\n"
"  -n, --netns INODE       count only records of the network namespace with\n"
"                          this inode number; may be repeated\n"
"      --duration SEC      stop after SEC seconds (fractions allowed)\n"
"  -h, --help              print this help and exit\n"
"\n"
"Only GET (and HEAD) of /metrics is served; any other path gets 404.\n"
"\n"
"Metrics (counters since start; see tcptracectl(8) for each definition):\n"
"  tcptrace_handshakes_completed_total{side}        side: client, server\n"
"  tcptrace_handshakes_failed_total{side,reason}    reason: reset, timeout,\n"
"                                                   aborted\n"
"  tcptrace_syn_retransmissions_total\n"
"  tcptrace_synack_retransmissions_total\n"
"  tcptrace_fin_retransmissions_total\n"
"  tcptrace_resets_sent_total{reason}      no_socket, listener, aborted,\n"
"                                          in_<state>\n"
"  tcptrace_resets_received_total{reason}  in_<state> (in_syn_sent: refused)\n"
"  tcptrace_accept_queue_overflows_total{listener,netns,dropped}\n"
"                                          dropped: syn, ack\n"
"  tcptrace_syn_queue_overflows_total{listener,netns}\n"
"  tcptrace_timewait_entered_total{substate}  time_wait, fin_wait2\n"
"  tcptrace_timewait_ended_total{end}         expired, killed\n"
"  tcptrace_records_lost_total\n"
"  tcptrace_records_read_total{type}\n"
"  tcptrace_module_up, tcptrace_module_events_total,\n"
"  tcptrace_module_drops_total, tcptrace_module_malformed_total,\n"
"  tcptrace_module_queued_records (from the module's counters)\n"
"\n"
"EXAMPLES\n"
"  " PROG " metrics --listen :9464\n"
"  " PROG " metrics --listen 127.0.0.1:9464 -p 443\n"
"  curl -s http://127.0.0.1:9464/metrics\n");
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

/* ---- counting ----------------------------------------------------------- */

static uint64_t *rst_slot(struct metrics *m, uint64_t sock_id)
{
	return &m->rst_sock[sock_id % RST_SLOTS];
}

static void count_handshake_end(struct metrics *m,
				const struct tcptrace_record *r)
{
	unsigned int side = r->state.old_state == ST_SYN_SENT ?
			    SIDE_CLIENT : SIDE_SERVER;
	uint64_t *slot = rst_slot(m, r->sock_id);

	if (r->state.new_state == ST_ESTABLISHED) {
		m->c.handshakes[side]++;
	} else if (r->state.new_state != ST_CLOSE) {
		return;
	} else if (r->sock_id && *slot == r->sock_id) {
		/* it took a RST in this state just before */
		m->c.failed[side][FAIL_RESET]++;
		*slot = 0;
	} else {
		/* closed in a process's context: by the application */
		m->c.failed[side][r->pid ? FAIL_ABORTED : FAIL_TIMEOUT]++;
	}
}

/* The reason label of a reset_sent record. */
static unsigned int reset_sent_reason(const struct tcptrace_record *r)
{
	unsigned int st = r->state.old_state;

	if (st == ST_LISTEN)
		return RS_LISTENER;
	if (st == ST_CLOSE && r->pid)
		return RS_ABORTED;
	return RS_STATE0 + (st < NR_TCP_STATES ? st : 0);
}

/*
 * Settles the halves that waited PAIR_NS for the other: a RST segment alone
 * was sent for no socket; a reset_sent record alone (its segment was not
 * recorded) counts by its reason.
 */
static void expire_pending(struct metrics *m, uint64_t now)
{
	struct pending *p;
	size_t i;

	for (i = 0; i < PENDING; i++) {
		p = &m->pending[i];
		if (!p->used || p->ts > now || now - p->ts < PAIR_NS)
			continue;
		m->c.reset_sent[p->is_packet ? RS_NO_SOCKET : p->reason]++;
		p->used = false;
	}
}

/*
 * The RST segment of a reset_sent record may be recorded before or after
 * it: whichever comes second finds the first here.  A RST segment found
 * with no reset_sent record is one the kernel sent for a segment that
 * matched no socket.
 */
static void pair_reset(struct metrics *m, bool is_packet, unsigned int reason,
		       const struct tcptrace_record *r, uint16_t port)
{
	struct pending *p, *oldest = NULL;
	size_t i;

	expire_pending(m, r->ts_ns);
	for (i = 0; i < PENDING; i++) {
		p = &m->pending[i];
		if (p->used && p->is_packet != is_packet &&
		    p->netns == r->netns && p->port == port) {
			m->c.reset_sent[is_packet ? p->reason : reason]++;
			p->used = false;
			return;
		}
	}
	for (i = 0; i < PENDING; i++) {
		p = &m->pending[i];
		if (!p->used)
			break;
		if (!oldest || p->ts < oldest->ts)
			oldest = p;
	}
	if (i == PENDING) {
		/* full: the oldest is settled now */
		p = oldest;
		m->c.reset_sent[p->is_packet ? RS_NO_SOCKET : p->reason]++;
	}
	*p = (struct pending){
		.used = true, .is_packet = is_packet, .reason = (uint8_t)reason,
		.netns = r->netns, .port = port, .ts = r->ts_ns,
	};
}

static struct listener *find_listener(struct metrics *m,
				      const struct tcptrace_record *r)
{
	size_t alen = r->family == AF_INET6 ? 16 : 4;
	struct listener *l;
	size_t i;

	for (i = 0; i < m->nlisteners; i++) {
		l = &m->listeners[i];
		if (!l->other && l->netns == r->netns &&
		    l->family == r->family && l->port == r->sport &&
		    !memcmp(l->addr, r->saddr, alen))
			return l;
	}
	if (m->nlisteners < m->max_listeners) {
		l = &m->listeners[m->nlisteners++];
		memset(l, 0, sizeof(*l));
		l->netns = r->netns;
		l->family = r->family;
		memcpy(l->addr, r->saddr, alen);
		l->port = r->sport;
		return l;
	}
	/* the bucket of the rest, one past the labelled ones */
	l = &m->listeners[m->max_listeners];
	l->other = true;
	return l;
}

static void count(struct metrics *m, const struct tcptrace_record *r)
{
	unsigned int st = r->state.old_state, f;
	struct listener *l;

	m->c.records[r->type]++;
	switch (r->type) {
	case TCPTRACE_T_STATE:
		if (st == ST_SYN_SENT || st == ST_SYN_RECV)
			count_handshake_end(m, r);
		break;
	case TCPTRACE_T_SYNACK_RETRANSMIT:
		m->c.synack_retrans++;
		break;
	case TCPTRACE_T_RETRANSMIT:
		f = r->state.flags;
		if ((f & TCPTRACE_FLAG_SYN) && (f & TCPTRACE_FLAG_ACK))
			m->c.synack_retrans++;
		else if (f & TCPTRACE_FLAG_SYN)
			m->c.syn_retrans++;
		else if (f & TCPTRACE_FLAG_FIN)
			m->c.fin_retrans++;
		break;
	case TCPTRACE_T_PACKET:
		if (r->dir == TCPTRACE_DIR_OUT &&
		    (r->packet.flags & TCPTRACE_FLAG_RST))
			pair_reset(m, true, 0, r, r->sport);
		break;
	case TCPTRACE_T_RESET_SENT:
		pair_reset(m, false, reset_sent_reason(r), r, r->sport);
		break;
	case TCPTRACE_T_RESET_RECEIVED:
		m->c.reset_received[st < NR_TCP_STATES ? st : 0]++;
		if ((st == ST_SYN_SENT || st == ST_SYN_RECV) && r->sock_id)
			*rst_slot(m, r->sock_id) = r->sock_id;
		break;
	case TCPTRACE_T_TIMEWAIT:
		m->c.tw_entered[r->state.new_state == ST_FIN_WAIT2]++;
		break;
	case TCPTRACE_T_TIMEWAIT_END:
		m->c.tw_ended[r->state.flags == TCPTRACE_TW_KILLED]++;
		break;
	case TCPTRACE_T_LISTEN_OVERFLOW:
		if (r->listen.reason < TCPTRACE_OVF_SYN_ACCEPTQ ||
		    r->listen.reason > TCPTRACE_OVF_SYN_SYNQ)
			break;
		l = find_listener(m, r);
		l->ovf[r->listen.reason - TCPTRACE_OVF_SYN_ACCEPTQ]++;
		break;
	case TCPTRACE_T_LOST:
		m->c.lost += r->lost.count;
		break;
	}
}

static int on_record(void *ctx, const struct tcptrace_record *r)
{
	struct metrics *m = ctx;

	if (!filter_match(&m->filter, r))
		return 0;
	pthread_mutex_lock(&m->lock);
	count(m, r);
	if (r->ts_ns > m->last_ts)
		m->last_ts = r->ts_ns;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

/* ---- the text format ---------------------------------------------------- */

static void family_header(FILE *out, const char *name, const char *type,
			  const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(FILE *out, const char *name, const char *labels,
		   uint64_t v)
{
	fprintf(out, "%s%s%s%s %" PRIu64 "\n", name, *labels ? "{" : "",
		labels, *labels ? "}" : "", v);
}

/* A label value with \, " and newline escaped, as the format wants. */
static void label_value(char *buf, size_t size, const char *s)
{
	size_t n = 0;

	for (; *s && n + 3 < size; s++) {
		if (*s == '\\' || *s == '"') {
			buf[n++] = '\\';
			buf[n++] = *s;
		} else if (*s == '\n') {
			buf[n++] = '\\';
			buf[n++] = 'n';
		} else {
			buf[n++] = *s;
		}
	}
	buf[n] = '\0';
}

/* "in_<state>", the state's kernel name in lower case */
static void in_state(unsigned int st, char *buf, size_t size)
{
	char tmp[24];
	const char *name = tcp_state_name(st, tmp, sizeof(tmp));
	size_t i, n;

	n = (size_t)snprintf(buf, size, "in_%s", name);
	for (i = 3; i < n && i < size; i++)
		if (buf[i] >= 'A' && buf[i] <= 'Z')
			buf[i] = (char)(buf[i] - 'A' + 'a');
}

static void listener_labels(const struct listener *l, char *buf, size_t size)
{
	char a[INET6_ADDRSTRLEN], ep[INET6_ADDRSTRLEN + 16], v[sizeof(ep) * 2];

	if (l->other) {
		snprintf(buf, size, "listener=\"other\",netns=\"other\"");
		return;
	}
	inet_ntop(l->family == AF_INET6 ? AF_INET6 : AF_INET, l->addr, a,
		  sizeof(a));
	snprintf(ep, sizeof(ep), l->family == AF_INET6 ? "[%s]:%u" : "%s:%u",
		 a, l->port);
	label_value(v, sizeof(v), ep);
	snprintf(buf, size, "listener=\"%s\",netns=\"%" PRIu32 "\"", v,
		 l->netns);
}

/*
 * Row @i of the listeners: the @nl labelled ones, then the bucket of the
 * others when it was used.  False when there is no such row.
 */
static bool listener_row(const struct listener *ls, size_t nl, size_t i,
			 char *buf, size_t size)
{
	if (i == nl && !ls[nl].other)
		return false;
	listener_labels(&ls[i], buf, size);
	return true;
}

/* The module's own counters, read with TCPTRACE_IOC_STATS. */
static void render_module(FILE *out)
{
	struct tcptrace_stats s;
	__u32 abi = 0;
	bool up = false;
	int fd;

	memset(&s, 0, sizeof(s));
	fd = open(device_path(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0) {
		up = !ioctl(fd, TCPTRACE_IOC_VERSION, &abi) &&
		     abi == TCPTRACE_ABI_VERSION &&
		     !ioctl(fd, TCPTRACE_IOC_STATS, &s);
		close(fd);
	}
	family_header(out, "tcptrace_module_up", "gauge",
		      "1 when the module's counters could be read (TCPTRACE_IOC_STATS), else 0.");
	sample(out, "tcptrace_module_up", "", up);
	if (!up)
		return;
	family_header(out, "tcptrace_module_events_total", "counter",
		      "Records the module wrote to its rings (since load or 'tcptracectl clear').");
	sample(out, "tcptrace_module_events_total", "", s.events);
	family_header(out, "tcptrace_module_drops_total", "counter",
		      "Records the module dropped because a ring was full (since load or 'tcptracectl clear').");
	sample(out, "tcptrace_module_drops_total", "", s.drops);
	family_header(out, "tcptrace_module_malformed_total", "counter",
		      "Segments with a truncated or invalid TCP header (since load or 'tcptracectl clear').");
	sample(out, "tcptrace_module_malformed_total", "", s.malformed);
	family_header(out, "tcptrace_module_queued_records", "gauge",
		      "Records waiting in the module's rings to be read.");
	sample(out, "tcptrace_module_queued_records", "", s.queued);
}

static void render(struct metrics *m, FILE *out)
{
	static const char *const tw_sub[2] = { "time_wait", "fin_wait2" };
	static const char *const tw_end[2] = { "expired", "killed" };
	static const char *const ovf_dropped[2] = { "syn", "ack" };
	struct listener *ls = NULL;
	char lab[256], sb[24], lb[200];
	struct counters c;
	size_t nl, i;
	unsigned int s, k;

	pthread_mutex_lock(&m->lock);
	/* RSTs alone long enough were sent for no socket */
	expire_pending(m, m->last_ts > mono_ns() ? m->last_ts : mono_ns());
	c = m->c;
	nl = m->nlisteners;
	/* the labelled listeners, then the bucket of the others */
	ls = malloc((nl + 1) * sizeof(*ls));
	if (ls) {
		memcpy(ls, m->listeners, nl * sizeof(*ls));
		ls[nl] = m->listeners[m->max_listeners];
	}
	pthread_mutex_unlock(&m->lock);

	family_header(out, "tcptrace_handshakes_completed_total", "counter",
		      "Handshakes completed: state SYN_SENT->ESTABLISHED (side client) or SYN_RECV->ESTABLISHED (side server).");
	for (s = 0; s < NR_SIDES; s++) {
		snprintf(lab, sizeof(lab), "side=\"%s\"", side_names[s]);
		sample(out, "tcptrace_handshakes_completed_total", lab,
		       c.handshakes[s]);
	}
	family_header(out, "tcptrace_handshakes_failed_total", "counter",
		      "Handshakes failed: state SYN_SENT->CLOSE (side client) or SYN_RECV->CLOSE (side server); reason reset (a RST was received), aborted (closed by the application), timeout (closed by the kernel: retries ran out or an ICMP error).");
	for (s = 0; s < NR_SIDES; s++) {
		for (k = 0; k < NR_FAIL; k++) {
			snprintf(lab, sizeof(lab), "side=\"%s\",reason=\"%s\"",
				 side_names[s], fail_names[k]);
			sample(out, "tcptrace_handshakes_failed_total", lab,
			       c.failed[s][k]);
		}
	}
	family_header(out, "tcptrace_syn_retransmissions_total", "counter",
		      "SYN segments retransmitted by connecting sockets.");
	sample(out, "tcptrace_syn_retransmissions_total", "", c.syn_retrans);
	family_header(out, "tcptrace_synack_retransmissions_total", "counter",
		      "SYN-ACK segments retransmitted (half-open requests of listeners, and full sockets).");
	sample(out, "tcptrace_synack_retransmissions_total", "",
	       c.synack_retrans);
	family_header(out, "tcptrace_fin_retransmissions_total", "counter",
		      "FIN segments retransmitted.");
	sample(out, "tcptrace_fin_retransmissions_total", "", c.fin_retrans);

	family_header(out, "tcptrace_resets_sent_total", "counter",
		      "RST segments sent: no_socket (for a segment that matched no socket, e.g. a refused SYN), listener (by a listener, e.g. an ACK with no half-open entry), aborted (the application closed a connection abortively), in_<state> (by a socket in that state).");
	for (k = 0; k < NR_RESET_SENT; k++) {
		/* the states a full socket sends a RST in, and any other seen */
		if (k >= RS_STATE0 && !c.reset_sent[k] &&
		    !((1u << (k - RS_STATE0)) & RESET_SENT_STATES))
			continue;
		if (k == RS_NO_SOCKET)
			snprintf(sb, sizeof(sb), "no_socket");
		else if (k == RS_LISTENER)
			snprintf(sb, sizeof(sb), "listener");
		else if (k == RS_ABORTED)
			snprintf(sb, sizeof(sb), "aborted");
		else
			in_state(k - RS_STATE0, sb, sizeof(sb));
		snprintf(lab, sizeof(lab), "reason=\"%s\"", sb);
		sample(out, "tcptrace_resets_sent_total", lab,
		       c.reset_sent[k]);
	}
	family_header(out, "tcptrace_resets_received_total", "counter",
		      "RST segments accepted by a socket, by its state: in_<state> (in_syn_sent: a refused connection).");
	for (k = 0; k < NR_TCP_STATES; k++) {
		if (!c.reset_received[k] &&
		    !((1u << k) & RESET_RECEIVED_STATES))
			continue;
		in_state(k, sb, sizeof(sb));
		snprintf(lab, sizeof(lab), "reason=\"%s\"", sb);
		sample(out, "tcptrace_resets_received_total", lab,
		       c.reset_received[k]);
	}

	family_header(out, "tcptrace_accept_queue_overflows_total", "counter",
		      "Connection attempts a listener turned away because its accept queue was full: dropped syn (the SYN) or ack (the third ACK, or answered with RST under tcp_abort_on_overflow).");
	for (i = 0; ls && i <= nl; i++) {
		if (!listener_row(ls, nl, i, lb, sizeof(lb)))
			continue;
		for (k = 0; k < 2; k++) {
			snprintf(lab, sizeof(lab), "%s,dropped=\"%s\"", lb,
				 ovf_dropped[k]);
			sample(out, "tcptrace_accept_queue_overflows_total",
			       lab, ls[i].ovf[k]);
		}
	}
	family_header(out, "tcptrace_syn_queue_overflows_total", "counter",
		      "SYNs that found a listener's SYN queue full (dropped, or answered with a SYN cookie).");
	for (i = 0; ls && i <= nl; i++) {
		if (!listener_row(ls, nl, i, lb, sizeof(lb)))
			continue;
		sample(out, "tcptrace_syn_queue_overflows_total", lb,
		       ls[i].ovf[OVF_SYNQ]);
	}

	family_header(out, "tcptrace_timewait_entered_total", "counter",
		      "Sockets replaced by a timewait socket, by its sub-state: time_wait, or fin_wait2 (this side closed first and waits for the peer's FIN).");
	for (k = 0; k < 2; k++) {
		snprintf(lab, sizeof(lab), "substate=\"%s\"", tw_sub[k]);
		sample(out, "tcptrace_timewait_entered_total", lab,
		       c.tw_entered[k]);
	}
	family_header(out, "tcptrace_timewait_ended_total", "counter",
		      "Timewait sockets that ended: expired (their timer ran out) or killed (ended early: reused, reset, namespace gone).");
	for (k = 0; k < 2; k++) {
		snprintf(lab, sizeof(lab), "end=\"%s\"", tw_end[k]);
		sample(out, "tcptrace_timewait_ended_total", lab,
		       c.tw_ended[k]);
	}
	family_header(out, "tcptrace_records_lost_total", "counter",
		      "Records the module dropped because a ring was full, as told to this reader by its lost records.");
	sample(out, "tcptrace_records_lost_total", "", c.lost);
	family_header(out, "tcptrace_records_read_total", "counter",
		      "Records read from the device and counted, by record type.");
	for (k = 1; k < TCPTRACE_T_MAX; k++) {
		snprintf(lab, sizeof(lab), "type=\"%s\"", record_type_name(k));
		sample(out, "tcptrace_records_read_total", lab, c.records[k]);
	}
	render_module(out);
	free(ls);
}

/* ---- HTTP --------------------------------------------------------------- */

static int send_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len) {
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* @len SIZE_MAX: @body is a string */
static void respond(int fd, const char *status, const char *type,
		    const char *extra, const char *body, size_t len, bool head)
{
	char hdr[512];
	int n;

	if (len == SIZE_MAX)
		len = strlen(body);
	n = snprintf(hdr, sizeof(hdr),
		     "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n",
		     status, type, len, extra);
	if (n > 0 && (size_t)n < sizeof(hdr) && !send_all(fd, hdr, (size_t)n) &&
	    !head)
		send_all(fd, body, len);
}

/* Reads the request header; returns its length, or -1. */
static ssize_t read_request(int fd, char *buf, size_t size)
{
	uint64_t deadline = mono_ns() + REQ_TIMEOUT_MS * 1000000ULL, now;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t have = 0;
	ssize_t n;

	while (have + 1 < size) {
		now = mono_ns();
		if (now >= deadline)
			return -1;
		n = poll(&pfd, 1, (int)((deadline - now) / 1000000) + 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		n = recv(fd, buf + have, size - 1 - have, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		have += (size_t)n;
		buf[have] = '\0';
		if (strstr(buf, "\r\n\r\n") || strstr(buf, "\n\n"))
			return (ssize_t)have;
	}
	return (ssize_t)have;	/* too long: the request line decides */
}

static void serve(struct metrics *m, int fd)
{
	static const char text[] = "text/plain; charset=utf-8";
	char req[REQ_MAX], *sp1, *sp2, *q;
	char *body = NULL;
	size_t len = 0;
	bool head;
	FILE *out;

	if (read_request(fd, req, sizeof(req)) < 0)
		return;
	sp1 = strchr(req, ' ');
	sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || !sp2 || strncmp(sp2 + 1, "HTTP/", 5)) {
		respond(fd, "400 Bad Request", text, "", "bad request\n",
			SIZE_MAX, false);
		return;
	}
	*sp1 = *sp2 = '\0';
	head = !strcmp(req, "HEAD");
	if (!head && strcmp(req, "GET")) {
		respond(fd, "405 Method Not Allowed", text,
			"Allow: GET, HEAD\r\n", "only GET and HEAD\n",
			SIZE_MAX, false);
		return;
	}
	q = strchr(sp1 + 1, '?');
	if (q)
		*q = '\0';
	if (strcmp(sp1 + 1, "/metrics")) {
		respond(fd, "404 Not Found", text, "",
			"not found: metrics are at /metrics\n", SIZE_MAX,
			head);
		return;
	}
	out = open_memstream(&body, &len);
	if (!out) {
		respond(fd, "500 Internal Server Error", text, "",
			"out of memory\n", SIZE_MAX, head);
		return;
	}
	render(m, out);
	if (fclose(out)) {
		respond(fd, "500 Internal Server Error", text, "",
			"out of memory\n", SIZE_MAX, head);
	} else {
		respond(fd, "200 OK", "text/plain; version=0.0.4; charset=utf-8",
			"", body, len, head);
	}
	free(body);
}

static void *http_thread(void *arg)
{
	struct metrics *m = arg;
	struct pollfd pfd[2] = {
		{ .fd = m->lfd, .events = POLLIN },
		{ .fd = m->stop_pipe[0], .events = POLLIN },
	};
	int fd;

	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			errmsg("metrics: poll: %s", strerror(errno));
			break;
		}
		if (pfd[1].revents)
			break;
		if (!(pfd[0].revents & POLLIN))
			continue;
		fd = accept4(m->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EINTR && errno != EAGAIN &&
			    errno != ECONNABORTED && errno != EMFILE &&
			    errno != ENFILE)
				warnmsg("metrics: accept: %s", strerror(errno));
			if (errno == EMFILE || errno == ENFILE)
				poll(NULL, 0, 100);
			continue;
		}
		serve(m, fd);
		close(fd);
	}
	return NULL;
}

/* ---- --listen ----------------------------------------------------------- */

/* Binds and listens on @ai; the socket, or -1 with errno set. */
static int listen_on(const struct addrinfo *ai, bool dual)
{
	int fd, one = 1, zero = 0, err;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (dual)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (!bind(fd, ai->ai_addr, ai->ai_addrlen) && !listen(fd, 64))
		return fd;
	err = errno;
	close(fd);
	errno = err;
	return -1;
}

/*
 * Splits ADDR:PORT ([IPV6]:PORT; ':PORT' for every address) and opens the
 * listening socket.  Returns 0, or the exit status after printing why not.
 */
static int open_listener(struct metrics *m, const char *arg)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	char host[256], port[8], a[INET6_ADDRSTRLEN];
	struct addrinfo *res = NULL, *ai = NULL;
	const char *colon, *p;
	int fd = -1, ret, err = 0;
	unsigned long portnum;
	bool any;
	size_t hl;
	char *end;

	if (arg[0] == '[') {
		p = strchr(arg, ']');
		if (!p || p[1] != ':' || p == arg + 1 ||
		    (size_t)(p - arg - 1) >= sizeof(host))
			goto bad;
		hl = (size_t)(p - arg - 1);
		memcpy(host, arg + 1, hl);
		colon = p + 1;
		hints.ai_flags |= AI_NUMERICHOST;
		hints.ai_family = AF_INET6;
	} else {
		colon = strrchr(arg, ':');
		if (!colon)
			goto bad;
		hl = (size_t)(colon - arg);
		if (memchr(arg, ':', hl)) {
			errmsg("metrics: invalid value '%s' for --listen: put an IPv6 address in brackets, e.g. [::1]:9464",
			       arg);
			return EXIT_USAGE;
		}
		if (hl >= sizeof(host))
			goto bad;
		memcpy(host, arg, hl);
	}
	host[hl] = '\0';
	any = !hl;
	errno = 0;
	portnum = strtoul(colon + 1, &end, 10);
	if (colon[1] < '0' || colon[1] > '9' || *end || errno ||
	    portnum < 1 || portnum > 65535) {
		errmsg("metrics: invalid port '%s' in --listen '%s': expected a number from 1 to 65535",
		       colon + 1, arg);
		return EXIT_USAGE;
	}
	snprintf(port, sizeof(port), "%lu", portnum);

	if (any)	/* every address: IPv6 and IPv4 on one socket */
		hints.ai_family = AF_INET6;
	ret = getaddrinfo(any ? NULL : host, port, &hints, &res);
	if (ret) {
		errmsg("metrics: invalid address '%s' in --listen '%s': %s",
		       host, arg, ret == EAI_SYSTEM ? strerror(errno) :
		       gai_strerror(ret));
		return ret == EAI_AGAIN || ret == EAI_SYSTEM ? 1 : EXIT_USAGE;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = listen_on(ai, any);
		if (fd >= 0)
			break;
		err = errno;
	}
	if (fd < 0 && any && err == EAFNOSUPPORT) {
		/* no IPv6 on this host: every IPv4 address */
		freeaddrinfo(res);
		res = NULL;
		hints.ai_family = AF_INET;
		if (!getaddrinfo(NULL, port, &hints, &res)) {
			for (ai = res; ai; ai = ai->ai_next) {
				fd = listen_on(ai, false);
				if (fd >= 0)
					break;
				err = errno;
			}
		}
	}
	if (fd < 0) {
		if (err == EADDRINUSE)
			errmsg("metrics: cannot listen on %s: port %s is already in use",
			       arg, port);
		else if (err == EADDRNOTAVAIL)
			errmsg("metrics: cannot listen on %s: %s is not an address of this host",
			       arg, host);
		else if (err == EACCES)
			errmsg("metrics: cannot listen on %s: %s (ports below 1024 need root or CAP_NET_BIND_SERVICE)",
			       arg, strerror(err));
		else
			errmsg("metrics: cannot listen on %s: %s", arg,
			       strerror(err ? err : EINVAL));
		if (res)
			freeaddrinfo(res);
		return 1;
	}
	if (ai->ai_family == AF_INET6)
		inet_ntop(AF_INET6,
			  &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, a,
			  sizeof(a));
	else
		inet_ntop(AF_INET,
			  &((struct sockaddr_in *)ai->ai_addr)->sin_addr, a,
			  sizeof(a));
	snprintf(m->where, sizeof(m->where),
		 ai->ai_family == AF_INET6 ? "[%s]:%s" : "%s:%s", a, port);
	freeaddrinfo(res);
	m->lfd = fd;
	return 0;
bad:
	errmsg("metrics: invalid value '%s' for --listen: expected ADDR:PORT, e.g. 127.0.0.1:9464, [::1]:9464 or :9464",
	       arg);
	return EXIT_USAGE;
}

/* ---- the command -------------------------------------------------------- */

int cmd_metrics(int argc, char **argv)
{
	enum { OPT_DURATION = 256, OPT_MAX_LISTENERS };
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "max-listeners", required_argument, NULL, OPT_MAX_LISTENERS },
		{ "port", required_argument, NULL, 'p' },
		{ "netns", required_argument, NULL, 'n' },
		{ "duration", required_argument, NULL, OPT_DURATION },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct source src = { .kind = SOURCE_DEVICE };
	static struct metrics m;
	const char *listen_arg = NULL;
	sigset_t block, orig;
	bool started = false;
	uint64_t v;
	pthread_t th;
	int c, fd, ret, err = 0;

	memset(&m, 0, sizeof(m));
	m.max_listeners = DEFAULT_MAX_LISTENERS;
	m.lfd = -1;
	m.stop_pipe[0] = m.stop_pipe[1] = -1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":l:46p:n:h", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			listen_arg = optarg;
			break;
		case OPT_MAX_LISTENERS:
			if (parse_uint("--max-listeners", optarg, 1,
				       MAX_MAX_LISTENERS, &v))
				return EXIT_USAGE;
			m.max_listeners = v;
			break;
		case '4':
		case '6':
		case 'p':
		case 'n':
			if (filter_option(&m.filter, c, optarg) < 0)
				return EXIT_USAGE;
			break;
		case OPT_DURATION:
			if (parse_seconds("--duration", optarg, &src.duration))
				return EXIT_USAGE;
			break;
		case 'h':
			usage_metrics(stdout);
			return 0;
		default:
			return bad_option("metrics", c, argv);
		}
	}
	if (optind < argc) {
		errmsg("metrics: unexpected argument '%s'", argv[optind]);
		return EXIT_USAGE;
	}
	if (!listen_arg) {
		errmsg("metrics: missing --listen ADDR:PORT (where to serve /metrics, e.g. --listen :9464)");
		return EXIT_USAGE;
	}
	/* the module first: a scraper should not find a server that ends */
	if (device_open(O_NONBLOCK, &fd))
		return 1;
	close(fd);
	ret = open_listener(&m, listen_arg);
	if (ret)
		return ret;

	/* labelled listeners, and one more: the bucket of the others */
	m.listeners = calloc(m.max_listeners + 1, sizeof(*m.listeners));
	if (!m.listeners || pipe2(m.stop_pipe, O_CLOEXEC)) {
		errmsg("metrics: %s", strerror(errno ? errno : ENOMEM));
		err = 1;
		goto cleanup;
	}
	pthread_mutex_init(&m.lock, NULL);

	/* SIGINT and SIGTERM go to the reader, which waits for them */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &block, &orig);
	ret = pthread_create(&th, NULL, http_thread, &m);
	pthread_sigmask(SIG_SETMASK, &orig, NULL);
	if (ret) {
		errmsg("metrics: cannot start the HTTP thread: %s",
		       strerror(ret));
		err = 1;
		goto cleanup;
	}
	started = true;
	fprintf(stderr, PROG ": serving metrics at http://%s/metrics\n",
		m.where);

	err = source_run(&src, on_record, NULL, &m);
cleanup:
	if (started) {
		if (write(m.stop_pipe[1], "x", 1) < 0)
			pthread_cancel(th);
		pthread_join(th, NULL);
		pthread_mutex_destroy(&m.lock);
	}
	if (m.stop_pipe[0] >= 0)
		close(m.stop_pipe[0]);
	if (m.stop_pipe[1] >= 0)
		close(m.stop_pipe[1]);
	if (m.lfd >= 0)
		close(m.lfd);
	free(m.listeners);
	return err;
}
