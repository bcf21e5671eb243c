// SPDX-License-Identifier: GPL-2.0
/*
 * tcptracectl: read and control the tcptrace kernel module.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "tcptracectl.h"

static void usage(FILE *out)
{
	fprintf(out,
"Usage: " PROG " [-h] [-V] COMMAND [OPTIONS]\n"
"\n"
"Show the TCP handshakes and teardowns recorded by the tcptrace kernel\n"
"module: every SYN, SYN-ACK, ACK, FIN and RST with its seq/ack, and every\n"
"socket state change.\n"
"\n"
"Commands:\n"
"  watch     print records as they arrive (text or JSON Lines), or one\n"
"            summary per connection (--summary)\n"
"  ladder    draw each connection as a sequence diagram, segment by\n"
"            segment, with the state each side entered\n"
"  record    write the recorded segments to a pcap file (-w FILE)\n"
"  stats     print the module's counters\n"
"  clear     discard queued records and zero the module's counters\n"
"  tune      show or set the sysctls that shape handshakes and teardowns,\n"
"            in this or another network namespace\n"
"  metrics   serve counters made from the records as Prometheus metrics\n"
"            over HTTP (--listen ADDR:PORT)\n"
"  version   print the version of tcptracectl and the module's ABI version\n"
"  help [COMMAND]  print this help, or the help of COMMAND\n"
"\n"
"Options:\n"
"  -h, --help     print this help and exit\n"
"  -V, --version  print the version of tcptracectl and exit\n"
"\n"
"Run '" PROG " COMMAND --help' for the options of a command.\n"
"\n"
"The device is " TCPTRACE_DEVICE "; opening it needs root (CAP_NET_ADMIN)\n"
"and it has one reader at a time.\n"
"\n"
"Environment:\n"
"  TCPTRACE_DEVICE       path of the device to open instead of\n"
"                        " TCPTRACE_DEVICE "\n"
"  TCPTRACE_SYSCTL_ROOT  directory 'tune' uses instead of /proc/sys\n"
"\n"
"Exit status: 0 on success, 1 on runtime errors, 2 on usage errors.\n"
"\n"
"EXAMPLES\n"
"  " PROG " watch -p 8080\n"
"  " PROG " watch --json -c 20 > out.jsonl\n"
"  " PROG " stats\n"
"  " PROG " clear\n"
"  " PROG " tune --synack-retries 2\n");
}

static void usage_version(FILE *out)
{
	fprintf(out,
"Usage: " PROG " version [-h]\n"
"\n"
"Print the version of " PROG ", the record and ABI versions it was built\n"
"for and the ABI version of the loaded module.\n"
"\n"
"EXAMPLES\n"
"  " PROG " version\n");
}

static void vmsg(const char *prefix, const char *fmt, va_list ap)
{
	fflush(stdout);
	fprintf(stderr, PROG ": %s", prefix);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void errmsg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg("", fmt, ap);
	va_end(ap);
}

void warnmsg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg("warning: ", fmt, ap);
	va_end(ap);
}

const char *device_path(void)
{
	const char *p = getenv("TCPTRACE_DEVICE");

	return p && *p ? p : TCPTRACE_DEVICE;
}

/*
 * Opens the device with O_RDONLY | @flags and checks its ABI version.
 * Prints the error and returns -1 on failure.
 */
int device_open(int flags, int *fdp)
{
	const char *path = device_path();
	__u32 abi = 0;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | flags);
	if (fd < 0) {
		err = errno;
		if (err == ENOENT || err == ENODEV || err == ENXIO)
			errmsg("tcptrace module not loaded: insmod module/tcptrace.ko");
		else if (err == EACCES || err == EPERM)
			errmsg("permission denied opening %s: run as root (needs CAP_NET_ADMIN)",
			       path);
		else if (err == EBUSY)
			errmsg("%s is busy: %s", path, strerror(err));
		else
			errmsg("cannot open %s: %s", path, strerror(err));
		goto cleanup;
	}
	if (ioctl(fd, TCPTRACE_IOC_VERSION, &abi) < 0) {
		err = errno;
		errmsg("%s: TCPTRACE_IOC_VERSION failed: %s", path,
		       strerror(err));
		goto cleanup;
	}
	if (abi != TCPTRACE_ABI_VERSION) {
		err = EPROTO;
		errmsg("ABI version mismatch: module has %u, tcptracectl expects %u",
		       abi, TCPTRACE_ABI_VERSION);
		goto cleanup;
	}
	*fdp = fd;
	fd = -1;
cleanup:
	if (fd >= 0)
		close(fd);
	return err ? -1 : 0;
}

/* Parses a decimal number in [min, max]; prints a usage error if not. */
int parse_uint(const char *opt, const char *arg, uint64_t min, uint64_t max,
	       uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (*arg < '0' || *arg > '9')
		goto bad;
	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno || *end || v < min || v > max)
		goto bad;
	*out = v;
	return 0;
bad:
	errmsg("invalid value '%s' for %s: expected a number from %llu to %llu",
	       arg, opt, (unsigned long long)min, (unsigned long long)max);
	return -1;
}

/* Parses a positive number of seconds, fractions allowed. */
int parse_seconds(const char *opt, const char *arg, double *out)
{
	char *end;
	double v;

	if ((*arg < '0' || *arg > '9') && *arg != '.')
		goto bad;
	errno = 0;
	v = strtod(arg, &end);
	if (errno || *end || !isfinite(v) || v <= 0 || v > 1e9)
		goto bad;
	*out = v;
	return 0;
bad:
	errmsg("invalid value '%s' for %s: expected a positive number of seconds",
	       arg, opt);
	return -1;
}

/*
 * Reports the option getopt_long() rejected (with opterr = 0 and an
 * optstring starting with ':').  Returns EXIT_USAGE.
 */
int bad_option(const char *cmd, int opt, char **argv)
{
	const char *arg = argv[optind - 1];

	if (opt == ':') {
		if (optopt && optopt < 0x80 && arg[0] == '-' && arg[1] != '-')
			errmsg("%s: option '-%c' requires an argument", cmd,
			       optopt);
		else
			errmsg("%s: option '%s' requires an argument", cmd,
			       arg);
	} else if (optopt && optopt < 0x80) {
		errmsg("%s: unknown option '-%c'", cmd, optopt);
	} else {
		errmsg("%s: unknown option '%s'", cmd, arg);
	}
	return EXIT_USAGE;
}

static int cmd_version(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int fd = -1, err = 0, c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage_version(stdout);
			return 0;
		default:
			return bad_option("version", c, argv);
		}
	}
	if (optind < argc) {
		errmsg("version: unexpected argument '%s'", argv[optind]);
		return EXIT_USAGE;
	}
	printf(PROG " %s (ABI version %u, record version %u)\n",
	       TCPTRACECTL_VERSION, TCPTRACE_ABI_VERSION,
	       TCPTRACE_RECORD_VERSION);
	fflush(stdout);
	if (device_open(0, &fd)) {
		err = 1;
		goto cleanup;
	}
	printf("module ABI version %u\n", TCPTRACE_ABI_VERSION);
cleanup:
	if (fd >= 0)
		close(fd);
	return err != 0;
}

static const struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	void (*usage)(FILE *out);
} commands[] = {
	{ "watch", cmd_watch, usage_watch },
	{ "ladder", cmd_ladder, usage_ladder },
	{ "record", cmd_record, usage_record },
	{ "stats", cmd_stats, usage_stats },
	{ "clear", cmd_clear, usage_clear },
	{ "tune", cmd_tune, usage_tune },
	{ "metrics", cmd_metrics, usage_metrics },
	{ "version", cmd_version, usage_version },
};

static const struct command *find_command(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static int cmd_help(int argc, char **argv)
{
	const struct command *cmd;

	if (argc < 2) {
		usage(stdout);
		return 0;
	}
	cmd = find_command(argv[1]);
	if (!cmd) {
		errmsg("unknown command '%s' (see '" PROG " --help')", argv[1]);
		return EXIT_USAGE;
	}
	cmd->usage(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *cmd;
	int c, ret;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf(PROG " %s (ABI version %u, record version %u)\n",
			       TCPTRACECTL_VERSION, TCPTRACE_ABI_VERSION,
			       TCPTRACE_RECORD_VERSION);
			return 0;
		default:
			bad_option(PROG, c, argv);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		errmsg("missing command (see '" PROG " --help')");
		return EXIT_USAGE;
	}
	argc -= optind;
	argv += optind;
	/* Restart getopt for the command's own options. */
	optind = 0;

	if (!strcmp(argv[0], "help"))
		return cmd_help(argc, argv);
	cmd = find_command(argv[0]);
	if (!cmd) {
		errmsg("unknown command '%s' (see '" PROG " --help')", argv[0]);
		return EXIT_USAGE;
	}
	ret = cmd->run(argc, argv);
	if (fflush(stdout) || ferror(stdout)) {
		errmsg("error writing output: %s", strerror(errno));
		ret = 1;
	}
	return ret;
}
