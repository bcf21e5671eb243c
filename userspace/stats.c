// SPDX-License-Identifier: GPL-2.0
/*
 * tcptracectl stats and clear.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "tcptracectl.h"

#define NR_PER_TYPE	(sizeof(((struct tcptrace_stats *)0)->per_type) / \
			 sizeof(__u64))

void usage_stats(FILE *out)
{
	fprintf(out,
"Usage: " PROG " stats [-j] [-h]\n"
"\n"
"Print the counters of the tcptrace module (since it was loaded or last\n"
"cleared), one 'name: value' per line:\n"
"  abi_version, nr_cpus, ring_records (capacity of each per-CPU ring),\n"
"  events (records written, LOST records included), drops (records lost\n"
"  because a ring was full), malformed (invalid TCP headers seen),\n"
"  expect_evictions (handshake/teardown ACK expectations overwritten),\n"
"  queued (records waiting to be read); the memory the module holds:\n"
"  ring_bytes (the per-CPU rings), expect_slots and expect_bytes (the\n"
"  table of expected handshake/teardown ACKs, its bound and size) and\n"
"  expect_used (its live entries), all fixed at load but expect_used;\n"
"  then 'per_type:' and the records written per record type, indented.\n"
"\n"
"Options:\n"
"  -j, --json   print one JSON object; per-type counts are in the object\n"
"               \"per_type\", keyed by record type name\n"
"  -h, --help   print this help and exit\n"
"\n"
"EXAMPLES\n"
"  " PROG " stats\n"
"  " PROG " stats --json\n");
}

void usage_clear(FILE *out)
{
	fprintf(out,
"Usage: " PROG " clear [-h]\n"
"\n"
"Discard the records queued in the tcptrace module and zero its counters.\n"
"\n"
"EXAMPLES\n"
"  " PROG " clear\n");
}

/* Name of per_type[i]: the record type name, or type_I when unknown. */
static const char *per_type_name(unsigned int i, char *buf, size_t size)
{
	const char *name = record_type_name(i);

	if (name)
		return name;
	snprintf(buf, size, "type_%u", i);
	return buf;
}

static void print_stats(const struct tcptrace_stats *s, bool json)
{
	const struct {
		const char *name;
		uint64_t val;
	} fields[] = {
		{ "abi_version", s->abi_version },
		{ "nr_cpus", s->nr_cpus },
		{ "ring_records", s->ring_records },
		{ "events", s->events },
		{ "drops", s->drops },
		{ "malformed", s->malformed },
		{ "expect_evictions", s->expect_evictions },
		{ "queued", s->queued },
		{ "ring_bytes", s->ring_bytes },
		{ "expect_slots", s->expect_slots },
		{ "expect_bytes", s->expect_bytes },
		{ "expect_used", s->expect_used },
	};
	const char *sep = "", *name;
	unsigned int i;
	char buf[16];

	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (json)
			printf("%s\"%s\":%" PRIu64, i ? "," : "{",
			       fields[i].name, fields[i].val);
		else
			printf("%s: %" PRIu64 "\n", fields[i].name,
			       fields[i].val);
	}
	printf(json ? ",\"per_type\":{" : "per_type:\n");
	for (i = 0; i < NR_PER_TYPE; i++) {
		/* Unused slots are listed only when the module filled them. */
		if (!record_type_name(i) && !s->per_type[i])
			continue;
		name = per_type_name(i, buf, sizeof(buf));
		if (json)
			printf("%s\"%s\":%" PRIu64, sep, name,
			       (uint64_t)s->per_type[i]);
		else
			printf("  %s: %" PRIu64 "\n", name,
			       (uint64_t)s->per_type[i]);
		sep = ",";
	}
	if (json)
		printf("}}\n");
}

/* Parses the options of a command whose only options are -h and -j. */
static int simple_opts(const char *cmd, int argc, char **argv, bool *json,
		       void (*usage)(FILE *))
{
	static const struct option opts_json[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, json ? ":jh" : ":h",
				json ? opts_json : opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			*json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return bad_option(cmd, c, argv);
		}
	}
	if (optind < argc) {
		errmsg("%s: unexpected argument '%s'", cmd, argv[optind]);
		return EXIT_USAGE;
	}
	return -1;
}

int cmd_stats(int argc, char **argv)
{
	struct tcptrace_stats s;
	bool json = false;
	int fd = -1, err = 0, ret;

	ret = simple_opts("stats", argc, argv, &json, usage_stats);
	if (ret >= 0)
		return ret;
	if (device_open(0, &fd)) {
		err = EIO;
		goto cleanup;
	}
	memset(&s, 0, sizeof(s));
	if (ioctl(fd, TCPTRACE_IOC_STATS, &s) < 0) {
		err = errno;
		errmsg("%s: TCPTRACE_IOC_STATS failed: %s", device_path(),
		       strerror(err));
		goto cleanup;
	}
	print_stats(&s, json);
cleanup:
	if (fd >= 0)
		close(fd);
	return err != 0;
}

int cmd_clear(int argc, char **argv)
{
	int fd = -1, err = 0, ret;

	ret = simple_opts("clear", argc, argv, NULL, usage_clear);
	if (ret >= 0)
		return ret;
	if (device_open(0, &fd)) {
		err = EIO;
		goto cleanup;
	}
	if (ioctl(fd, TCPTRACE_IOC_CLEAR, 0UL) < 0) {
		err = errno;
		errmsg("%s: TCPTRACE_IOC_CLEAR failed: %s", device_path(),
		       strerror(err));
		goto cleanup;
	}
cleanup:
	if (fd >= 0)
		close(fd);
	return err != 0;
}
