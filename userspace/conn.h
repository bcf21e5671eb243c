/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tcptracectl: per-connection ISN tracking for relative sequence numbers.
 */
#ifndef TCPTRACECTL_CONN_H
#define TCPTRACECTL_CONN_H

#include "tcptracectl.h"

struct conn_table;

struct conn_table *conn_table_new(void);
void conn_table_free(struct conn_table *t);
/*
 * Learn ISNs from @r (a SYN or SYN-ACK segment, a SYNACK_RETRANSMIT record)
 * and fill @out with what is known for the two endpoints of @r.
 */
void conn_track(struct conn_table *t, const struct tcptrace_record *r,
		struct isns *out);
/* timewait sockets whose start is remembered at once, at most */
#define CONN_TW_MAX	(256u * 1024)
/* TIME_WAIT starts pushed out by later ones before their end came */
uint64_t conn_tw_forgotten(const struct conn_table *t);

#endif /* TCPTRACECTL_CONN_H */
