/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tcptracectl fuzzing: what the harnesses share.
 *
 * An input is written to a memfd and read through its /proc/self/fd path
 * by source_run(), as 'tcptracectl watch -i FILE' or 'ladder -r FILE'
 * read a file: the same decoder loop (or JSON reader), connection model
 * and output code.
 */
#ifndef TCPTRACECTL_FUZZ_COMMON_H
#define TCPTRACECTL_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "source.h"

/* One run of a subcommand: its argv with "@@" standing for the input. */
struct fuzz_cmd {
	int (*run)(int argc, char **argv);
	const char *argv[12];	/* NULL-terminated */
};

void fuzz_init(void);
/*
 * Runs @cmd on @data with its stdout in memory (*@out, freed by the
 * caller) or in /dev/null (@out NULL).  Returns its exit status, 0 or 1:
 * it aborts (a crash for the fuzzer) on any other, and when the command
 * fails without printing an error message.
 */
int fuzz_cmd_run(const struct fuzz_cmd *cmd, const uint8_t *data,
		 size_t size, char **out, size_t *outlen);
/* Aborts unless out[0..len) is JSON objects, one a line. */
void fuzz_check_json(const char *out, size_t len, const char *what);
/* The open stories kept with events: few, so that eviction is fuzzed too. */
#define FUZZ_MAX_OPEN	8

/*
 * What 'watch' does with each record, in one pass and without its
 * options: source_run() reads @data as a file of @kind (SOURCE_RAW or
 * SOURCE_JSON); each record goes through conn_track(), story_feed() of
 * two tables (one keeping events as 'ladder' does, one without as
 * 'watch'), filter_match(), format_text() and format_json(); each story
 * that ends through filter_story(), summary_text() and summary_json().  The JSON written must be JSON
 * objects, one a line; that of format_json() is returned in *@out when
 * @out is not NULL.  Returns source_run()'s status, aborting when it
 * failed without an error message.
 */
int fuzz_direct(enum source_kind kind, const uint8_t *data, size_t size,
		char **out, size_t *outlen);

#endif /* TCPTRACECTL_FUZZ_COMMON_H */
