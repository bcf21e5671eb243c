// SPDX-License-Identifier: GPL-2.0
/*
 * readtp: how fast records come out of /dev/tcptrace through read().
 *
 *   readtp [-b BYTES] [-n RECORDS] [DEVICE]
 *
 * Reads DEVICE (default /dev/tcptrace) with O_NONBLOCK and a buffer of
 * BYTES (default 131072, the buffer of tcptracectl watch), until RECORDS
 * records were read (default: all; never more, each read() asks for no
 * more than what is left) or read() fails with EAGAIN: the rings
 * are empty.  Fill them first, with no reader attached.  Prints one JSON
 * object: {"bufsize":B,"records":N,"reads":N,"secs":S,"rate":R}, R in
 * records per second.  The records are counted, not looked at.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tcptrace.h"

static double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	const char *dev = TCPTRACE_DEVICE;
	size_t bufsize = 128 * 1024;
	uint64_t records = 0, reads = 0, limit = UINT64_MAX;
	double start, secs;
	char *buf;
	int c, fd;

	while ((c = getopt(argc, argv, "b:n:")) != -1) {
		switch (c) {
		case 'b':
			bufsize = strtoul(optarg, NULL, 0);
			break;
		case 'n':
			limit = strtoull(optarg, NULL, 0);
			break;
		default:
			fprintf(stderr, "usage: readtp [-b BYTES] [-n RECORDS] [DEVICE]\n");
			return 2;
		}
	}
	if (optind < argc)
		dev = argv[optind];
	if (bufsize < TCPTRACE_RECORD_SIZE) {
		fprintf(stderr, "readtp: the buffer must hold one record (%d bytes)\n",
			TCPTRACE_RECORD_SIZE);
		return 2;
	}
	buf = malloc(bufsize);
	if (!buf)
		return 1;
	fd = open(dev, O_RDONLY | O_NONBLOCK);
	if (fd < 0) {
		perror(dev);
		return 1;
	}
	/* a reader that runs for long has its buffer in memory already */
	memset(buf, 0, bufsize);
	start = now_sec();
	while (records < limit) {
		size_t want = bufsize;
		ssize_t n;

		if ((limit - records) * TCPTRACE_RECORD_SIZE < want)
			want = (limit - records) * TCPTRACE_RECORD_SIZE;
		n = read(fd, buf, want);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			perror("read");
			return 1;
		}
		if (n == 0)
			break;
		reads++;
		records += n / TCPTRACE_RECORD_SIZE;
	}
	secs = now_sec() - start;
	printf("{\"bufsize\":%zu,\"records\":%llu,\"reads\":%llu,\"secs\":%.4f,\"rate\":%.0f}\n",
	       bufsize, (unsigned long long)records, (unsigned long long)reads,
	       secs, secs > 0 ? records / secs : 0);
	close(fd);
	free(buf);
	return 0;
}
