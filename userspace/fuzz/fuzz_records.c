// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer harness: arbitrary bytes as a file of raw records, read the
 * way 'tcptracectl watch -i FILE' and 'ladder -i FILE' read it: the
 * decoder loop of source.c, then what 'watch' does with each record and
 * each connection (fuzz_direct(): conn_track(), story_feed(),
 * format_text(), format_json(), the summaries), then 'ladder -i' itself,
 * which draws every connection.
 */
#include "fuzz_common.h"
#include "tcptracectl.h"

static const struct fuzz_cmd ladder = {
	cmd_ladder, { "ladder", "--flush", "--color", "-w", "64", "-i", "@@",
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_direct(SOURCE_RAW, data, size, NULL, NULL);
	fuzz_cmd_run(&ladder, data, size, NULL, NULL);
	return 0;
}
