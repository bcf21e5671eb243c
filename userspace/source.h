/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tcptracectl: where records come from — the device, a file of raw records
 * (as read from the device) or a JSON Lines file written by 'watch --json'.
 */
#ifndef TCPTRACECTL_SOURCE_H
#define TCPTRACECTL_SOURCE_H

#include <signal.h>
#include <sys/types.h>

#include "tcptracectl.h"

enum source_kind {
	SOURCE_DEVICE,		/* TCPTRACE_DEVICE (or $TCPTRACE_DEVICE) */
	SOURCE_RAW,		/* raw records, path or "-" for stdin */
	SOURCE_JSON,		/* JSON Lines of 'watch --json', path or "-" */
};

struct source {
	enum source_kind kind;
	const char *path;	/* SOURCE_RAW, SOURCE_JSON */
	double duration;	/* seconds; 0: until the end or a signal */
	double tick;		/* device: call flush this often when idle */
	bool background;	/* device: format at SCHED_IDLE (source.c) */
	/* set by source_run() */
	bool interrupted;	/* SIGINT or SIGTERM ended it */
	uint64_t records;	/* records handed to the callback */
};

/*
 * Called for each record, in order.  Returns 0 to go on, 1 to stop (not an
 * error), -1 on an error it has reported.
 */
typedef int (*source_fn)(void *ctx, const struct tcptrace_record *r);

/*
 * Reads records from @s and hands each to @fn until the input ends, the
 * duration passes, SIGINT/SIGTERM arrives or @fn stops.  @flush, when not
 * NULL, is called after each batch of records (to flush output), and every
 * s->tick seconds while the device has nothing to read.  Records
 * of unknown types or newer versions are skipped with one warning.
 * Returns 0, or 1 after printing an error.
 */
int source_run(struct source *s, source_fn fn, int (*flush)(void *ctx),
	       void *ctx);

uint64_t now_ns(void);

/*
 * drain.c: a thread that reads the device @fd into a bounded queue, waiting
 * with the signal mask @mask (SIGINT/SIGTERM unblocked: it is the thread
 * that catches them).  drain_start() returns 0 or an errno value.
 */
struct drain;

struct drain_result {
	int error;		/* errno of the read or poll that failed, or 0 */
	bool hup;		/* the device hung up */
	bool interrupted;	/* a signal ended the reading */
	size_t queued;		/* bytes read and not yet taken */
};

int drain_start(struct drain **dp, int fd, const sigset_t *mask);
/*
 * Takes what was read and not taken yet, in order, waiting for it until
 * @deadline (CLOCK_MONOTONIC ns; 0: no deadline): *@data points to it, in
 * the queue's own memory, valid until the next call (at most DRAIN_CHUNK
 * bytes, possibly ending inside a record).  Returns the number of bytes, 0
 * when the deadline passed, -1 when the reading has ended and everything
 * read was taken (see drain_result()).
 */
#define DRAIN_CHUNK	(64 * 1024)
ssize_t drain_pop(struct drain *d, const void **data, uint64_t deadline);
void drain_result(struct drain *d, struct drain_result *res);
/* whether the thread still reads, and *@queued the bytes not yet taken */
bool drain_status(struct drain *d, size_t *queued);
/*
 * The caller of drain_start() formatting in the background: it goes to
 * SCHED_IDLE, and the thread returns it to SCHED_OTHER as soon as more
 * than @mark bytes wait (drain.c says why).  drain_caller_return() returns
 * it at once (from any thread); drain_caller_is_idle() tells whether it is
 * at SCHED_IDLE.  Both changes return 0 or an errno value.
 */
int drain_caller_idle(struct drain *d, size_t mark);
int drain_caller_return(struct drain *d);
bool drain_caller_is_idle(struct drain *d);
/* asks the thread to read no more: drain_pop() then returns what is left */
void drain_finish(struct drain *d);
/* ends the thread and frees everything; @d may be NULL */
void drain_stop(struct drain *d);

/* jsonin.c: parse one line of 'watch --json' into @r; 0 or -1 (@err set) */
int json_to_record(const char *line, size_t len, struct tcptrace_record *r,
		   char *err, size_t errsize);

#endif /* TCPTRACECTL_SOURCE_H */
