// SPDX-License-Identifier: GPL-2.0
/*
 * tcptracectl tune: show and set the sysctls that shape TCP handshakes and
 * teardowns, in this network namespace or another one.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tcptracectl.h"

#define SYSCTL_ROOT	"/proc/sys"
#define NETNS_RUN_DIR	"/run/netns"

enum {
	K_SYNACK_RETRIES,
	K_SYN_RETRIES,
	K_SOMAXCONN,
	K_MAX_SYN_BACKLOG,
	K_ABORT_ON_OVERFLOW,
	K_SYNCOOKIES,
	K_FIN_TIMEOUT,
	NR_KNOBS
};

struct knob {
	const char *name;	/* file name, and the name printed */
	const char *dir;	/* its directory under the sysctl root */
	const char *opt;	/* the option setting it; NULL: shown only */
	long min, max;		/* the values that option takes */
};

/*
 * Listed, written and printed in this order.  The ranges are those of the
 * 6.1 kernel, except for tcp_max_syn_backlog (the kernel takes any int) and
 * tcp_abort_on_overflow (the kernel takes 0..255, and reads it as a flag).
 */
static const struct knob knobs[NR_KNOBS] = {
	[K_SYNACK_RETRIES] = { "tcp_synack_retries", "net/ipv4",
			       "--synack-retries", 0, 255 },
	[K_SYN_RETRIES] = { "tcp_syn_retries", "net/ipv4", "--syn-retries",
			    1, 127 },
	[K_SOMAXCONN] = { "somaxconn", "net/core", "--somaxconn", 0, INT_MAX },
	[K_MAX_SYN_BACKLOG] = { "tcp_max_syn_backlog", "net/ipv4",
				"--max-syn-backlog", 1, INT_MAX },
	[K_ABORT_ON_OVERFLOW] = { "tcp_abort_on_overflow", "net/ipv4",
				  "--abort-on-overflow", 0, 1 },
	[K_SYNCOOKIES] = { "tcp_syncookies", "net/ipv4", NULL, 0, 0 },
	[K_FIN_TIMEOUT] = { "tcp_fin_timeout", "net/ipv4", NULL, 0, 0 },
};

void usage_tune(FILE *out)
{
	fprintf(out,
"Usage: " PROG " tune [OPTIONS]\n"
"\n"
"Show or change the sysctls that shape TCP handshakes and teardowns.  They\n"
"are per network namespace: " PROG " acts in its own namespace, or in the\n"
"one given by --netns or --netns-pid.\n"
"\n"
"Without a value option, print them one 'name: value' per line:\n"
"  tcp_synack_retries     SYN-ACK retransmissions before a passive open\n"
"                         is given up\n"
"  tcp_syn_retries        SYN retransmissions before connect() fails\n"
"  somaxconn              cap on the backlog argument of listen()\n"
"  tcp_max_syn_backlog    cap on the connection requests (SYN_RECV) kept\n"
"                         per listener\n"
"  tcp_abort_on_overflow  1: reset the connections a full accept queue\n"
"                         refuses; 0: drop their ACK and let them retry\n"
"  tcp_syncookies         0: never, 1: when the SYN queue overflows,\n"
"                         2: always send SYN cookies\n"
"  tcp_fin_timeout        seconds an orphaned connection stays in FIN_WAIT2\n"
"With value options, write the values given and print 'name: old -> new'\n"
"for each.\n"
"\n"
"Options:\n"
"      --synack-retries N     set tcp_synack_retries (0..255)\n"
"      --syn-retries N        set tcp_syn_retries (1..127)\n"
"      --somaxconn N          set somaxconn (0..2147483647)\n"
"      --max-syn-backlog N    set tcp_max_syn_backlog (1..2147483647)\n"
"      --abort-on-overflow 0|1\n"
"                             set tcp_abort_on_overflow\n"
"      --netns NAME           act in the network namespace NAME of 'ip netns'\n"
"                             (" NETNS_RUN_DIR "/NAME)\n"
"      --netns-pid PID        act in the network namespace of process PID\n"
"                             (/proc/PID/ns/net)\n"
"  -j, --json                 print one JSON object: {\"name\":value,...}, or\n"
"                             {\"name\":{\"old\":N,\"new\":N},...} when setting\n"
"  -h, --help                 print this help and exit\n"
"\n"
"Every value is checked before anything is written, against the limits of\n"
"the kernel (6.1) and, where the kernel has none, of sense: it takes a\n"
"negative tcp_max_syn_backlog and any tcp_abort_on_overflow up to 255.\n"
"All the changes are made or none: the old values are read first, and when\n"
"a write fails the values already written are restored, the last first.\n"
"Writing needs root (CAP_NET_ADMIN); --netns and --netns-pid need\n"
"CAP_SYS_ADMIN.\n"
"\n"
"Environment:\n"
"  TCPTRACE_SYSCTL_ROOT  directory to use instead of " SYSCTL_ROOT " (e.g. a\n"
"                        copy of it, for tests)\n"
"\n"
"EXAMPLES\n"
"  " PROG " tune\n"
"  " PROG " tune --json\n"
"  " PROG " tune --synack-retries 2\n"
"  " PROG " tune --netns srv --somaxconn 16 --max-syn-backlog 16\n"
"  " PROG " tune --netns-pid 1234 --abort-on-overflow 1\n");
}

/* Parses the value of a knob's option: a decimal integer in its range. */
static int parse_knob(const struct knob *k, const char *arg, long *out)
{
	const char *digits = arg + (*arg == '-');
	char *end;
	long v;

	if (*digits < '0' || *digits > '9')
		goto bad;
	errno = 0;
	v = strtol(arg, &end, 10);
	if (*end)
		goto bad;
	if (errno == ERANGE || v < k->min || v > k->max) {
		errmsg("%s %s: out of range %ld..%ld (%s)", k->opt, arg, k->min,
		       k->max, k->name);
		return -1;
	}
	*out = v;
	return 0;
bad:
	errmsg("%s '%s': not a decimal integer, expected %ld..%ld (%s)",
	       k->opt, arg, k->min, k->max, k->name);
	return -1;
}

/* A name 'ip netns' could have made: a plain file name. */
static bool netns_name_ok(const char *name)
{
	return *name && !strchr(name, '/') && strcmp(name, ".") &&
	       strcmp(name, "..") && strlen(name) <= NAME_MAX;
}

/*
 * Moves this process into the network namespace NAME of 'ip netns', or else
 * into the one of process @pid.  The sysctls under /proc/sys/net opened
 * afterwards are those of that namespace.
 */
static int enter_netns(const char *name, long pid)
{
	char path[PATH_MAX], what[NAME_MAX + 64];
	int fd = -1, err = 0;

	if (name) {
		snprintf(path, sizeof(path), NETNS_RUN_DIR "/%s", name);
		snprintf(what, sizeof(what), "network namespace '%s'", name);
	} else {
		snprintf(path, sizeof(path), "/proc/%ld/ns/net", pid);
		snprintf(what, sizeof(what),
			 "the network namespace of PID %ld", pid);
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = errno;
		if (err == ENOENT && name)
			errmsg("network namespace '%s' not found: no %s (see 'ip netns list')",
			       name, path);
		else if (err == ENOENT || err == ESRCH)
			errmsg("network namespace of PID %ld not found: no process %ld (%s)",
			       pid, pid, path);
		else if (err == EACCES || err == EPERM)
			errmsg("permission denied opening %s: run as root",
			       path);
		else
			errmsg("cannot open %s: %s", path, strerror(err));
		goto cleanup;
	}
	if (setns(fd, CLONE_NEWNET) < 0) {
		err = errno;
		if (err == EPERM)
			errmsg("permission denied entering %s: run as root",
			       what);
		else if (err == EINVAL)
			errmsg("cannot enter %s: %s is not a network namespace",
			       what, path);
		else
			errmsg("cannot enter %s: %s", what, strerror(err));
		goto cleanup;
	}
cleanup:
	if (fd >= 0)
		close(fd);
	return err ? -1 : 0;
}

/* The file of a knob, under $TCPTRACE_SYSCTL_ROOT or /proc/sys. */
static int knob_path(const struct knob *k, char *buf, size_t size)
{
	const char *root = getenv("TCPTRACE_SYSCTL_ROOT");
	int n;

	if (!root || !*root)
		root = SYSCTL_ROOT;
	n = snprintf(buf, size, "%s/%s/%s", root, k->dir, k->name);
	if (n < 0 || (size_t)n >= size) {
		errmsg("TCPTRACE_SYSCTL_ROOT is too long");
		return -1;
	}
	return 0;
}

/* Reads the current value of a knob; prints the error on failure. */
static int read_knob(const struct knob *k, long *out)
{
	char path[PATH_MAX], buf[32], *end;
	int fd = -1, err = 0;
	ssize_t n;
	long v;

	if (knob_path(k, path, sizeof(path))) {
		err = ENAMETOOLONG;
		goto cleanup;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = errno;
		errmsg("cannot read %s: %s", path, strerror(err));
		goto cleanup;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0) {
		err = errno;
		errmsg("cannot read %s: %s", path, strerror(err));
		goto cleanup;
	}
	buf[n] = '\0';
	errno = 0;
	v = strtol(buf, &end, 10);
	if (end == buf || errno || (*end && strcmp(end, "\n"))) {
		err = EINVAL;
		errmsg("cannot read %s: not an integer", path);
		goto cleanup;
	}
	*out = v;
cleanup:
	if (fd >= 0)
		close(fd);
	return err ? -1 : 0;
}

/* Writes a value to a knob; prints the error on failure. */
static int write_knob(const struct knob *k, long val)
{
	char path[PATH_MAX], buf[32];
	int fd = -1, err = 0, len;
	ssize_t n;

	if (knob_path(k, path, sizeof(path))) {
		err = ENAMETOOLONG;
		goto cleanup;
	}
	len = snprintf(buf, sizeof(buf), "%ld\n", val);
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0) {
		err = errno;
		goto report;
	}
	n = write(fd, buf, (size_t)len);
	if (n < 0)
		err = errno;
	else if (n != len)
		err = EIO;
	if (close(fd) < 0 && !err)
		err = errno;
	fd = -1;
report:
	if (err == EACCES || err == EPERM)
		errmsg("permission denied writing %s: run as root", path);
	else if (err)
		errmsg("cannot write %ld to %s: %s", val, path, strerror(err));
cleanup:
	if (fd >= 0)
		close(fd);
	return err ? -1 : 0;
}

static int show_knobs(bool json)
{
	long val[NR_KNOBS];
	unsigned int i;

	for (i = 0; i < NR_KNOBS; i++)
		if (read_knob(&knobs[i], &val[i]))
			return 1;
	for (i = 0; i < NR_KNOBS; i++) {
		if (json)
			printf("%s\"%s\":%ld", i ? "," : "{", knobs[i].name,
			       val[i]);
		else
			printf("%s: %ld\n", knobs[i].name, val[i]);
	}
	if (json)
		printf("}\n");
	return 0;
}

/* Restores the knobs written before knob @failed, the last written first. */
static void roll_back(unsigned int failed, const bool *set, const long *old,
		      const long *val)
{
	unsigned int i = failed;

	while (i-- > 0) {
		if (!set[i])
			continue;
		if (write_knob(&knobs[i], old[i]))
			errmsg("could not roll back %s: it stays %ld (was %ld)",
			       knobs[i].name, val[i], old[i]);
		else
			errmsg("rolled back %s to %ld", knobs[i].name, old[i]);
	}
}

static int set_knobs(const bool *set, const long *val, bool json)
{
	long old[NR_KNOBS];
	const char *sep = "{";
	unsigned int i;

	for (i = 0; i < NR_KNOBS; i++)
		if (set[i] && read_knob(&knobs[i], &old[i]))
			return 1;
	for (i = 0; i < NR_KNOBS; i++) {
		if (set[i] && write_knob(&knobs[i], val[i])) {
			roll_back(i, set, old, val);
			return 1;
		}
	}
	for (i = 0; i < NR_KNOBS; i++) {
		if (!set[i])
			continue;
		if (json)
			printf("%s\"%s\":{\"old\":%ld,\"new\":%ld}", sep,
			       knobs[i].name, old[i], val[i]);
		else
			printf("%s: %ld -> %ld\n", knobs[i].name, old[i],
			       val[i]);
		sep = ",";
	}
	if (json)
		printf("}\n");
	return 0;
}

int cmd_tune(int argc, char **argv)
{
	enum { OPT_KNOB = 0x100, OPT_NETNS = 0x200, OPT_NETNS_PID };
	static const struct option opts[] = {
		{ "synack-retries", required_argument, NULL,
		  OPT_KNOB + K_SYNACK_RETRIES },
		{ "syn-retries", required_argument, NULL,
		  OPT_KNOB + K_SYN_RETRIES },
		{ "somaxconn", required_argument, NULL,
		  OPT_KNOB + K_SOMAXCONN },
		{ "max-syn-backlog", required_argument, NULL,
		  OPT_KNOB + K_MAX_SYN_BACKLOG },
		{ "abort-on-overflow", required_argument, NULL,
		  OPT_KNOB + K_ABORT_ON_OVERFLOW },
		{ "netns", required_argument, NULL, OPT_NETNS },
		{ "netns-pid", required_argument, NULL, OPT_NETNS_PID },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool set[NR_KNOBS] = { false }, any = false, json = false;
	const char *netns = NULL;
	long val[NR_KNOBS] = { 0 };
	uint64_t pid = 0;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":jh", opts, NULL)) != -1) {
		if (c >= OPT_KNOB && c < OPT_KNOB + NR_KNOBS) {
			if (parse_knob(&knobs[c - OPT_KNOB], optarg,
				       &val[c - OPT_KNOB]))
				return EXIT_USAGE;
			set[c - OPT_KNOB] = any = true;
			continue;
		}
		switch (c) {
		case OPT_NETNS:
			if (!netns_name_ok(optarg)) {
				errmsg("tune: invalid --netns name '%s': expected the name of a namespace in "
				       NETNS_RUN_DIR, optarg);
				return EXIT_USAGE;
			}
			netns = optarg;
			break;
		case OPT_NETNS_PID:
			if (parse_uint("--netns-pid", optarg, 1, INT_MAX, &pid))
				return EXIT_USAGE;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage_tune(stdout);
			return 0;
		default:
			return bad_option("tune", c, argv);
		}
	}
	if (optind < argc) {
		errmsg("tune: unexpected argument '%s'", argv[optind]);
		return EXIT_USAGE;
	}
	if (netns && pid) {
		errmsg("tune: --netns and --netns-pid cannot be used together");
		return EXIT_USAGE;
	}
	if ((netns || pid) && enter_netns(netns, (long)pid))
		return 1;
	return any ? set_knobs(set, val, json) : show_knobs(json);
}
