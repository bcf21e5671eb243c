// SPDX-License-Identifier: GPL-2.0
/*
 * tcptracectl: write PACKET records as packets of a pcap file.
 *
 * Each segment becomes its headers alone, as a capture with a short
 * snapshot length would have them: the caplen is the length of the
 * headers, the len what the packet had with its payload.  The TCP header
 * carries the seq, ack, flags and window of the record and keeps its
 * length (doff); the options were not recorded and their room is zero,
 * i.e. an End of Option List followed by padding.  IP fields the record
 * does not have are fixed: IPv4 TOS 0, ID 0, DF, TTL 64; IPv6 traffic
 * class 0, flow label 0, hop limit 64.  The IPv4 header checksum is right;
 * the TCP checksum is computed over the pseudo-header and the TCP header
 * with the payload taken as absent (zero), so it is the right one for
 * segments without payload and only those.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "pcapw.h"

#define ETH_HLEN	14
#define IP4_HLEN	20
#define IP6_HLEN	40
#define TCP_HLEN	20
#define ETHERTYPE_IP4	0x0800
#define ETHERTYPE_IP6	0x86dd
#define IPPROTO_TCP_	6
#define TTL		64

struct pcapw {
	pcap_t *pcap;
	pcap_dumper_t *dumper;
	enum pcapw_link link;
	int64_t ts_offset;
	uint64_t count;
	const char *name;
};

int pcapw_link_parse(const char *name, enum pcapw_link *out)
{
	if (!strcmp(name, "ether"))
		*out = PCAPW_LINK_ETHER;
	else if (!strcmp(name, "raw"))
		*out = PCAPW_LINK_RAW;
	else
		return -1;
	return 0;
}

static int64_t clock_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t pcapw_clock_offset(void)
{
	int64_t m1, r, m2;

	/* the realtime read halfway between two monotonic ones */
	m1 = clock_ns(CLOCK_MONOTONIC);
	r = clock_ns(CLOCK_REALTIME);
	m2 = clock_ns(CLOCK_MONOTONIC);
	return r - (m1 + (m2 - m1) / 2);
}

static void put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

static void put32(unsigned char *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

/* The Internet checksum sum of big-endian 16-bit words, not folded. */
static uint32_t csum_add(uint32_t sum, const unsigned char *p, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* The TCP header length of @r: its doff, when that is a valid one. */
static unsigned int tcp_hlen(const struct tcptrace_record *r)
{
	unsigned int doff = r->packet.doff;

	if (doff < TCP_HLEN || doff > 60 || doff % 4)
		return TCP_HLEN;
	return doff;
}

/* -1, 0, 1 as the source endpoint of @r sorts before its destination. */
static int endpoint_cmp(const struct tcptrace_record *r)
{
	int c = memcmp(r->saddr, r->daddr, sizeof(r->saddr));

	if (c)
		return c;
	return (r->sport > r->dport) - (r->sport < r->dport);
}

size_t pcapw_build(const struct tcptrace_record *r, enum pcapw_link link,
		   unsigned char *buf, uint32_t *wire_len)
{
	static const unsigned char mac_lo[6] = { 2, 0, 0, 0, 0, 1 };
	static const unsigned char mac_hi[6] = { 2, 0, 0, 0, 0, 2 };
	bool v6 = r->family == AF_INET6;
	unsigned int alen = v6 ? 16 : 4;
	unsigned int thlen = tcp_hlen(r);
	unsigned int iphlen = v6 ? IP6_HLEN : IP4_HLEN;
	unsigned char *ip, *tcp, pseudo[12];
	uint64_t tcp_len, ip_len;
	size_t off = 0;
	uint32_t sum;

	memset(buf, 0, PCAPW_MAX_HDR);
	if (link == PCAPW_LINK_ETHER) {
		/* the lower endpoint (address, port) is ...:01 */
		if (endpoint_cmp(r) <= 0) {
			memcpy(buf, mac_hi, 6);
			memcpy(buf + 6, mac_lo, 6);
		} else {
			memcpy(buf, mac_lo, 6);
			memcpy(buf + 6, mac_hi, 6);
		}
		put16(buf + 12, v6 ? ETHERTYPE_IP6 : ETHERTYPE_IP4);
		off = ETH_HLEN;
	}
	ip = buf + off;
	tcp = ip + iphlen;
	tcp_len = (uint64_t)thlen + r->packet.payload_len;
	ip_len = iphlen + tcp_len;

	if (v6) {
		ip[0] = 0x60;
		put16(ip + 4, tcp_len > 0xffff ? 0xffff : (uint16_t)tcp_len);
		ip[6] = IPPROTO_TCP_;
		ip[7] = TTL;
		memcpy(ip + 8, r->saddr, 16);
		memcpy(ip + 24, r->daddr, 16);
	} else {
		ip[0] = 0x45;
		put16(ip + 2, ip_len > 0xffff ? 0xffff : (uint16_t)ip_len);
		put16(ip + 6, 0x4000);		/* DF */
		ip[8] = TTL;
		ip[9] = IPPROTO_TCP_;
		memcpy(ip + 12, r->saddr, 4);
		memcpy(ip + 16, r->daddr, 4);
		put16(ip + 10, csum_fold(csum_add(0, ip, IP4_HLEN)));
	}

	put16(tcp, r->sport);
	put16(tcp + 2, r->dport);
	put32(tcp + 4, r->packet.seq);
	put32(tcp + 8, r->packet.ack);
	tcp[12] = (unsigned char)(thlen / 4 << 4);
	tcp[13] = r->packet.flags;
	put16(tcp + 14, r->packet.win);
	/* options (zero: End of Option List), urgent pointer stay zero */

	/* pseudo-header: addresses, then protocol and the TCP length */
	sum = csum_add(0, r->saddr, alen);
	sum = csum_add(sum, r->daddr, alen);
	memset(pseudo, 0, sizeof(pseudo));
	put32(pseudo, (uint32_t)(tcp_len > UINT32_MAX ? UINT32_MAX : tcp_len));
	pseudo[7] = IPPROTO_TCP_;
	sum = csum_add(sum, pseudo, 8);
	sum = csum_add(sum, tcp, thlen);
	put16(tcp + 16, csum_fold(sum));

	*wire_len = off + ip_len > UINT32_MAX ? UINT32_MAX :
		(uint32_t)(off + ip_len);
	return off + iphlen + thlen;
}

/* A pcap handle for writing @link, with nanosecond timestamps. */
static pcap_t *open_dead(enum pcapw_link link)
{
	int dlt = link == PCAPW_LINK_ETHER ? DLT_EN10MB : DLT_RAW;

	return pcap_open_dead_with_tstamp_precision(dlt, PCAPW_SNAPLEN,
						    PCAP_TSTAMP_PRECISION_NANO);
}

struct pcapw *pcapw_open(const char *path, enum pcapw_link link,
			 int64_t ts_offset_ns)
{
	struct pcapw *w = NULL, *ret = NULL;
	bool to_stdout = !strcmp(path, "-");
	FILE *f = NULL;
	int fd = -1;

	w = calloc(1, sizeof(*w));
	if (!w) {
		errmsg("out of memory");
		goto cleanup;
	}
	w->link = link;
	w->ts_offset = ts_offset_ns;
	w->name = to_stdout ? "standard output" : path;
	w->pcap = open_dead(link);
	if (!w->pcap) {
		errmsg("out of memory");
		goto cleanup;
	}
	if (to_stdout) {
		if (isatty(STDOUT_FILENO)) {
			errmsg("refusing to write pcap data to a terminal (redirect standard output or give -w FILE)");
			goto cleanup;
		}
		/* a copy: closing the dumper must not close stdout */
		fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 0);
		if (fd < 0) {
			errmsg("cannot write to standard output: %s",
			       strerror(errno));
			goto cleanup;
		}
		f = fdopen(fd, "wb");
		if (!f) {
			errmsg("cannot write to standard output: %s",
			       strerror(errno));
			goto cleanup;
		}
		fd = -1;
	} else {
		f = fopen(path, "wbe");
		if (!f) {
			errmsg("cannot create %s: %s", path, strerror(errno));
			goto cleanup;
		}
	}
	w->dumper = pcap_dump_fopen(w->pcap, f);
	if (!w->dumper) {
		errmsg("cannot write %s: %s", w->name, pcap_geterr(w->pcap));
		goto cleanup;
	}
	f = NULL;
	/* the file header is on disk even when nothing follows */
	if (pcapw_flush(w))
		goto cleanup;
	ret = w;
	w = NULL;
cleanup:
	if (f)
		fclose(f);
	if (fd >= 0)
		close(fd);
	if (w) {
		if (w->dumper)
			pcap_dump_close(w->dumper);
		if (w->pcap)
			pcap_close(w->pcap);
		free(w);
	}
	return ret;
}

int pcapw_write(struct pcapw *w, const struct tcptrace_record *r)
{
	unsigned char buf[PCAPW_MAX_HDR];
	struct pcap_pkthdr h;
	uint32_t wire_len;
	int64_t t;

	if (r->type != TCPTRACE_T_PACKET)
		return 0;
	memset(&h, 0, sizeof(h));
	h.caplen = (bpf_u_int32)pcapw_build(r, w->link, buf, &wire_len);
	h.len = wire_len;
	t = (int64_t)r->ts_ns + w->ts_offset;
	if (t < 0)
		t = 0;
	/* with nanosecond precision, tv_usec holds nanoseconds */
	h.ts.tv_sec = (time_t)(t / 1000000000);
	h.ts.tv_usec = (suseconds_t)(t % 1000000000);
	pcap_dump((u_char *)w->dumper, &h, buf);
	w->count++;
	if (ferror(pcap_dump_file(w->dumper))) {
		errmsg("error writing %s: %s", w->name, strerror(errno));
		return -1;
	}
	return 0;
}

int pcapw_flush(struct pcapw *w)
{
	if (pcap_dump_flush(w->dumper) ||
	    ferror(pcap_dump_file(w->dumper))) {
		errmsg("error writing %s: %s", w->name,
		       errno ? strerror(errno) : "I/O error");
		return -1;
	}
	return 0;
}

uint64_t pcapw_count(const struct pcapw *w)
{
	return w->count;
}

const char *pcapw_name(const struct pcapw *w)
{
	return w->name;
}

int pcapw_close(struct pcapw *w)
{
	int err = 0;

	if (!w)
		return 0;
	if (w->dumper) {
		err = pcapw_flush(w);
		pcap_dump_close(w->dumper);
	}
	if (w->pcap)
		pcap_close(w->pcap);
	free(w);
	return err;
}
