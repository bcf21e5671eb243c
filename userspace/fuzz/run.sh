#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs the fuzzers built by 'make' on the seeds written by 'make seeds':
# first every file of regress/ through both (each once), then each fuzzer
# for SECONDS (the two at once, one per core), starting from corpus/TARGET
# and build/work/TARGET (where the inputs that found new coverage are kept
# from run to run).  A crash, leak, undefined behaviour, timeout or
# out-of-memory is written to build/artifacts/TARGET/ and printed with the
# commands that replay it.  Exits 1 when any was found.
#
# usage: run.sh [SECONDS]     (default 60; from make run / make fuzz)
set -uo pipefail
cd "$(dirname "$0")" || exit 2

secs=${1:-60}
B=build
targets=(records json)
declare -A max_len=([records]=4096 [json]=8192)
declare -A opts=([records]="" [json]="-dict=json.dict")
declare -A read_opt=([records]="-i" [json]="-r")

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ] && command -v llvm-symbolizer >/dev/null; then
	ASAN_SYMBOLIZER_PATH=$(command -v llvm-symbolizer)
	export ASAN_SYMBOLIZER_PATH
fi

for t in "${targets[@]}"; do
	if [ ! -x "$B/fuzz_$t" ] || [ ! -d "corpus/$t" ]; then
		echo "fuzz: no $B/fuzz_$t or corpus/$t: run make -C userspace/fuzz all seeds" >&2
		exit 2
	fi
done
mkdir -p $B/logs
crashes=0

report() {	# report TARGET FILE: one reproducer
	local t=$1 f=$2
	crashes=$((crashes + 1))
	echo "fuzz: $t: REPRODUCER $PWD/$f"
	echo "fuzz:   replay: userspace/fuzz/$B/fuzz_$t userspace/fuzz/$f"
	echo "fuzz:     or: make -C userspace/fuzz asan; userspace/fuzz/$B/tcptracectl-asan {watch,ladder} ${read_opt[$t]} userspace/fuzz/$f"
	echo "fuzz:   once fixed, keep it in userspace/fuzz/regress/ (replayed by make fuzz and tests/test_fuzz_regress.py)"
}

# the inputs that crashed once must not crash again
mapfile -t regress < <(find regress -type f ! -name 'README*' 2>/dev/null | sort)
if [ ${#regress[@]} -gt 0 ]; then
	for t in "${targets[@]}"; do
		log=$B/logs/regress-$t.log
		if "$B/fuzz_$t" "${regress[@]}" >"$log" 2>&1; then
			echo "fuzz: $t: ${#regress[@]} regression inputs of regress/ pass"
		else
			grep -E '^SUMMARY|^fuzz: ' "$log" | head -3
			f=$(sed -n 's/^Running: //p' "$log" | tail -1)
			report "$t" "$f"
			echo "fuzz:   log: $PWD/$log"
		fi
	done
fi

echo "fuzz: running ${targets[*]} for $secs s each, at once (logs: userspace/fuzz/$B/logs/)"
declare -A pid
for t in "${targets[@]}"; do
	art=$B/artifacts/$t
	rm -rf "$art"
	mkdir -p "$art" "$B/work/$t"
	(
		start=$SECONDS
		# shellcheck disable=SC2086
		$B/fuzz_$t -max_len=${max_len[$t]} -max_total_time="$secs" \
			-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
			-artifact_prefix="$art/" ${opts[$t]} $B/work/$t corpus/$t \
			>$B/logs/$t.log 2>&1
		rc=$?
		echo $((SECONDS - start)) >"$B/logs/$t.seconds"
		exit $rc
	) &
	pid[$t]=$!
done

for t in "${targets[@]}"; do
	wait "${pid[$t]}"
	rc=$?
	log=$B/logs/$t.log
	stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
	edges=$(sed -n 's/.*Loaded 1 modules *(\([0-9]*\) inline 8-bit counters.*/\1/p' "$log" | head -1)
	last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1)
	cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
	ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
	corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
	echo "fuzz: $t: $(stat number_of_executed_units) runs in $(cat "$B/logs/$t.seconds") s ($(stat average_exec_per_sec) exec/s), cov ${cov:-?} of ${edges:-?} edges, ft ${ft:-?}, corpus ${corp:-?} inputs ($(stat new_units_added) new), peak rss $(stat peak_rss_mb) MB"
	found=0
	for f in "$B/artifacts/$t"/*; do
		[ -e "$f" ] || continue
		case $(basename "$f") in
		crash-* | leak-* | timeout-* | oom-* | undefined-*)
			grep -E '^SUMMARY|^fuzz: |ERROR: libFuzzer' "$log" | head -3
			report "$t" "$f"
			found=1 ;;
		esac
	done
	if [ "$rc" -ne 0 ] && [ $found -eq 0 ]; then
		crashes=$((crashes + 1))
		echo "fuzz: $t: exit status $rc without a reproducer; log: $PWD/$log"
		tail -5 "$log"
	fi
done

echo "fuzz: ${#targets[@]} targets, $crashes crashes"
[ $crashes -eq 0 ]
