// SPDX-License-Identifier: GPL-2.0
/*
 * tcptracectl fuzzing: running the tool's readers on an input in memory.
 *
 * tcptracectl.c (main() and the helpers it shares) is not linked in: the
 * few helpers the subcommands call are defined here.  Messages are
 * formatted (so that a bad format argument still shows under ASan) and
 * dropped, unless TCPTRACECTL_FUZZ_VERBOSE is set.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "conn.h"
#include "source.h"
#include "story.h"

static int input_fd = -1;
static char input_path[64];
static bool verbose;
static unsigned long nerrors;

/* ---- what tcptracectl.c gives the subcommands -------------------------- */

static void vmsg(const char *prefix, const char *fmt, va_list ap)
{
	char buf[1024];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (verbose)
		fprintf(stderr, PROG ": %s%s\n", prefix, buf);
}

void errmsg(const char *fmt, ...)
{
	va_list ap;

	nerrors++;
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
	return TCPTRACE_DEVICE;
}

/* The harnesses read files only. */
int device_open(int flags, int *fdp)
{
	(void)flags;
	(void)fdp;
	fprintf(stderr, "fuzz: device_open called\n");
	abort();
}

int parse_uint(const char *opt, const char *arg, uint64_t min, uint64_t max,
	       uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno || *end || v < min || v > max) {
		fprintf(stderr, "fuzz: bad value %s for %s\n", arg, opt);
		abort();
	}
	*out = v;
	return 0;
}

int parse_seconds(const char *opt, const char *arg, double *out)
{
	(void)arg;
	(void)out;
	fprintf(stderr, "fuzz: %s is not used by the harnesses\n", opt);
	abort();
}

int bad_option(const char *cmd, int opt, char **argv)
{
	(void)argv;
	fprintf(stderr, "fuzz: %s: bad option %d in the harness\n", cmd, opt);
	abort();
}

/* ---- running a subcommand on an input ---------------------------------- */

void fuzz_init(void)
{
	verbose = getenv("TCPTRACECTL_FUZZ_VERBOSE") != NULL;
	input_fd = memfd_create("tcptracectl-fuzz-input", MFD_CLOEXEC);
	if (input_fd < 0) {
		perror("fuzz: memfd_create");
		abort();
	}
	snprintf(input_path, sizeof(input_path), "/proc/self/fd/%d",
		 input_fd);
}

static void put_input(const uint8_t *data, size_t size)
{
	size_t off = 0;
	ssize_t n;

	if (ftruncate(input_fd, 0)) {
		perror("fuzz: ftruncate");
		abort();
	}
	while (off < size) {
		n = pwrite(input_fd, data + off, size - off, (off_t)off);
		if (n <= 0) {
			perror("fuzz: pwrite");
			abort();
		}
		off += (size_t)n;
	}
}

void fuzz_check_json(const char *out, size_t len, const char *what)
{
	const char *p = out, *nl;
	json_error_t e;
	json_t *j;

	while (p < out + len) {
		nl = memchr(p, '\n', (size_t)(out + len - p));
		if (!nl) {
			fprintf(stderr, "fuzz: %s: output does not end with a newline\n",
				what);
			abort();
		}
		/* sock_id may not fit in a long long: read numbers as doubles */
		j = json_loadb(p, (size_t)(nl - p), JSON_DECODE_INT_AS_REAL,
			       &e);
		if (!j || !json_is_object(j)) {
			fprintf(stderr, "fuzz: %s: not a JSON object (%s): %.*s\n",
				what, j ? "not an object" : e.text,
				(int)(nl - p), p);
			abort();
		}
		json_decref(j);
		p = nl + 1;
	}
}

int fuzz_cmd_run(const struct fuzz_cmd *cmd, const uint8_t *data,
		 size_t size, char **out, size_t *outlen)
{
	struct sigaction old_int, old_term;
	char *argv[sizeof(cmd->argv) / sizeof(cmd->argv[0])];
	FILE *saved = stdout, *mem;
	char *buf = NULL;
	size_t len = 0;
	int argc, ret;

	put_input(data, size);
	for (argc = 0; cmd->argv[argc]; argc++)
		argv[argc] = !strcmp(cmd->argv[argc], "@@") ? input_path :
			     (char *)cmd->argv[argc];
	argv[argc] = NULL;

	mem = out ? open_memstream(&buf, &len) : fopen("/dev/null", "w");
	if (!mem) {
		perror("fuzz: output stream");
		abort();
	}
	stdout = mem;
	/* source_run() takes SIGINT and SIGTERM: libFuzzer's come back */
	sigaction(SIGINT, NULL, &old_int);
	sigaction(SIGTERM, NULL, &old_term);
	optind = 0;
	nerrors = 0;
	ret = cmd->run(argc, argv);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	stdout = saved;
	fclose(mem);

	if (ret != 0 && ret != 1) {
		fprintf(stderr, "fuzz: %s %s: exit status %d\n", argv[0],
			argv[1], ret);
		abort();
	}
	if (ret == 1 && !nerrors) {
		fprintf(stderr, "fuzz: %s %s: failed without an error message\n",
			argv[0], argv[1]);
		abort();
	}
	if (out) {
		*out = buf;
		*outlen = len;
	}
	return ret;
}

/* ---- the pipeline of 'watch', in one pass ------------------------------ */

struct direct {
	struct conn_table *conns;
	struct story_table *stories;	/* with events, as ladder's */
	struct story_table *counts;	/* without, as watch's */
	struct fmt_opts fmt;
	struct filter filter;
	FILE *text;		/* format_text(), summary_text() */
	FILE *json;		/* format_json() */
	FILE *summaries;	/* summary_json() */
};

static int direct_story_end(void *ctx, const struct story *st)
{
	struct direct *d = ctx;

	filter_story(&d->filter, st);
	summary_text(d->text, st);
	summary_json(d->summaries, st);
	return 0;
}

static int direct_record(void *ctx, const struct tcptrace_record *r)
{
	struct direct *d = ctx;
	char line[JSON_LINE_MAX];
	struct story_ann ann;
	struct isns isn;
	size_t n;

	conn_track(d->conns, r, &isn);
	story_feed(d->counts, r, NULL);
	story_feed(d->stories, r, &ann);
	filter_match(&d->filter, r);
	format_text(d->text, r, &isn, &d->fmt, &ann);
	n = (size_t)(format_json(line, r, &isn, &ann) - line);
	/* within the bound, with room for the fixed-size copies past the end */
	if (n > JSON_LINE_MAX - 32) {
		fprintf(stderr, "fuzz: format_json() wrote a line of %zu bytes\n",
			n);
		abort();
	}
	fwrite(line, 1, n, d->json);
	return 0;
}

int fuzz_direct(enum source_kind kind, const uint8_t *data, size_t size,
		char **out, size_t *outlen)
{
	struct source src = { .kind = kind, .path = input_path };
	struct direct d = { .filter = { .v6 = true, .nports = 1,
					.ports = { 8080 }, .nlports = 1,
					.lports = { 443 } } };
	struct sigaction old_int, old_term;
	char *json = NULL, *sums = NULL;
	size_t json_len = 0, sums_len = 0;
	int ret;

	put_input(data, size);
	d.text = fopen("/dev/null", "w");
	d.json = open_memstream(&json, &json_len);
	d.summaries = open_memstream(&sums, &sums_len);
	d.conns = conn_table_new();
	d.stories = story_table_new(FUZZ_MAX_OPEN, true, direct_story_end,
				    &d);
	d.counts = story_table_new(4096, false, direct_story_end, &d);
	if (!d.text || !d.json || !d.summaries || !d.conns || !d.stories ||
	    !d.counts) {
		perror("fuzz: setting up");
		abort();
	}
	sigaction(SIGINT, NULL, &old_int);
	sigaction(SIGTERM, NULL, &old_term);
	nerrors = 0;
	ret = source_run(&src, direct_record, NULL, &d);
	/* as ladder does, even after an error */
	story_flush(d.stories);
	story_flush(d.counts);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	if (ret && !nerrors) {
		fprintf(stderr, "fuzz: source_run failed without an error message\n");
		abort();
	}
	story_table_free(d.stories);
	story_table_free(d.counts);
	conn_table_free(d.conns);
	fclose(d.text);
	fclose(d.json);
	fclose(d.summaries);
	fuzz_check_json(json, json_len, "format_json");
	fuzz_check_json(sums, sums_len, "summary_json");
	free(sums);
	if (out) {
		*out = json;
		*outlen = json_len;
	} else {
		free(json);
	}
	return ret;
}
