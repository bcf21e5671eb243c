/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tcptracectl: write PACKET records as packets of a pcap file.
 */
#ifndef TCPTRACECTL_PCAPW_H
#define TCPTRACECTL_PCAPW_H

#include "tcptracectl.h"

enum pcapw_link {
	PCAPW_LINK_ETHER,	/* DLT_EN10MB: Ethernet header, fixed MACs */
	PCAPW_LINK_RAW,		/* DLT_RAW: the IP header first */
};

/* Longest packet written: Ethernet, IPv6 and a 60-byte TCP header. */
#define PCAPW_MAX_HDR		(14 + 40 + 60)
/* The snapshot length in the file header: headers only. */
#define PCAPW_SNAPLEN		128

struct pcapw;

/* "ether" or "raw" to @out; -1 when @name is neither. */
int pcapw_link_parse(const char *name, enum pcapw_link *out);

/*
 * CLOCK_REALTIME minus CLOCK_MONOTONIC now, in nanoseconds: added to a
 * record's ts_ns it gives the wall-clock time of the record.
 */
int64_t pcapw_clock_offset(void);

/*
 * Builds the headers of the segment of PACKET record @r in @buf (at least
 * PCAPW_MAX_HDR bytes).  Returns their length; *@wire_len is set to the
 * length the packet had with its payload.
 */
size_t pcapw_build(const struct tcptrace_record *r, enum pcapw_link link,
		   unsigned char *buf, uint32_t *wire_len);

/*
 * Creates @path ("-": standard output) and writes the pcap file header,
 * nanosecond timestamps.  Timestamps are ts_ns + @ts_offset_ns.  Prints
 * the error and returns NULL on failure.
 */
struct pcapw *pcapw_open(const char *path, enum pcapw_link link,
			 int64_t ts_offset_ns);

/* Writes PACKET record @r (other types are ignored); 0 or -1 (printed). */
int pcapw_write(struct pcapw *w, const struct tcptrace_record *r);

/* Flushes what was written to the file; 0 or -1 (printed). */
int pcapw_flush(struct pcapw *w);

/* Packets written so far. */
uint64_t pcapw_count(const struct pcapw *w);

/* The name of the file for messages ("standard output" for "-"). */
const char *pcapw_name(const struct pcapw *w);

/* Flushes and closes @w (NULL is fine); 0 or -1 (printed). */
int pcapw_close(struct pcapw *w);

#endif /* TCPTRACECTL_PCAPW_H */
