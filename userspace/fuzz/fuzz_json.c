// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer harness: arbitrary bytes as the JSON Lines of 'watch --json',
 * read the way 'tcptracectl watch -r FILE' and 'ladder -r FILE' read them:
 * run_json() and json_to_record(), then what 'watch' does with each
 * record and each connection (fuzz_direct()), then 'ladder -r' itself.
 *
 * It also checks that the JSON written reads back: the lines printed for
 * the records read are accepted by the reader, and a second round prints
 * them unchanged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "tcptracectl.h"

static const struct fuzz_cmd ladder = {
	cmd_ladder, { "ladder", "--flush", "--color", "-w", "64", "-r", "@@",
		      NULL }
};

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_init();
	return 0;
}

/* out1 is what the input printed: it must read back, then stay as is. */
static void round_trip(const char *out1, size_t len1)
{
	char *out2, *out3;
	size_t len2, len3;

	if (fuzz_direct(SOURCE_JSON, (const uint8_t *)out1, len1, &out2,
			&len2)) {
		fprintf(stderr, "fuzz: -r rejects what format_json() wrote:\n%.*s",
			(int)len1, out1);
		abort();
	}
	fuzz_direct(SOURCE_JSON, (const uint8_t *)out2, len2, &out3, &len3);
	if (len2 != len3 || memcmp(out2, out3, len2)) {
		fprintf(stderr, "fuzz: read back and written again, the JSON changes:\n%.*s---\n%.*s",
			(int)len2, out2, (int)len3, out3);
		abort();
	}
	free(out2);
	free(out3);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t len;
	char *out;

	fuzz_direct(SOURCE_JSON, data, size, &out, &len);
	if (len)
		round_trip(out, len);
	free(out);
	fuzz_cmd_run(&ladder, data, size, NULL, NULL);
	return 0;
}
