#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs every tcptrace selftest, as root, on a machine where loading the
# module is fine (the QEMU guest of selftests/vm/run):
#
#   selftests/vm/run -- selftests/run_all.sh
#
# Loads $TCPTRACE_KO (default <repo>/module/tcptrace.ko) when the module is
# not loaded, runs each test with the timeout of ./settings, prints its TAP
# output, and ends with the totals of the individual test cases:
#
#   # Totals: pass:N fail:N skip:N
#   N passed, N failed
#
# Exits 0 only when nothing failed and at least one test case passed.
# Run a subset by naming tests: run_all.sh conn_test reload.sh

set -u

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
export TCPTRACE_KO=${TCPTRACE_KO:-$repo/module/tcptrace.ko}

all_tests="abi_test conn_test retrans_test overflow_test params_test scenario_test"
all_tests="$all_tests tool_json.py"
# other scripts of the form *_test.sh / *_test.py, then the reloads last
for f in "$here"/*_test.sh "$here"/*_test.py; do
	[ -x "$f" ] && all_tests="$all_tests ${f##*/}"
done
all_tests="$all_tests reload.sh"
tests=${*:-$all_tests}

timeout=$(sed -n 's/^timeout=//p' "$here/settings" 2>/dev/null)
# TCPTRACE_TIMEOUT_SCALE: every time limit that many times longer, here and
# in the test programs' harness (a slow kernel: make check-debug)
timeout=$((${timeout:-300} * ${TCPTRACE_TIMEOUT_SCALE:-1}))

pass=0
fail=0
skip=0

finish() {
	echo "# Totals: pass:$pass fail:$fail skip:$skip"
	echo "$pass passed, $fail failed"
	[ "$fail" = 0 ] && [ "$pass" -gt 0 ]
	exit
}

if [ "$(id -u)" != 0 ]; then
	echo "# run_all.sh needs root (run it in the VM: selftests/vm/run -- selftests/run_all.sh)"
	fail=1
	finish
fi

missing=
for t in $tests; do
	[ -x "$here/$t" ] || missing=1
done
if [ -n "$missing" ] && ! make -s -C "$here" >&2; then
	echo "# building the selftests failed"
	fail=1
	finish
fi

if [ ! -d /sys/module/tcptrace ]; then
	if ! insmod "$TCPTRACE_KO"; then
		echo "# insmod $TCPTRACE_KO failed"
		fail=1
		finish
	fi
fi

cd "$here" || exit 1
for t in $tests; do
	echo "# ==== $t (timeout ${timeout}s) ===="
	out=$(mktemp)
	# The output goes through a file, not a pipe: a test process stuck in
	# the kernel must not keep this script waiting for the pipe's end.
	timeout --kill-after=10 "$timeout" "./$t" >"$out" 2>&1 &
	tpid=$!
	tail -n +1 --pid="$tpid" -f "$out" &
	tailpid=$!
	deadline=$((SECONDS + timeout + 30))
	while kill -0 "$tpid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
		sleep 1
	done
	if kill -0 "$tpid" 2>/dev/null; then
		kill "$tailpid" 2>/dev/null
		echo "# $t: still not ended $((timeout + 30))s after its start (stuck in the kernel?)"
		rc=124
	else
		wait "$tpid"
		rc=$?
		wait "$tailpid"
	fi
	totals=$(grep -E '^# Totals: pass:[0-9]+ fail:[0-9]+' "$out" | tail -1)
	rm -f "$out"
	p=0 f=0 s=0 xf=0 e=0
	if [ -n "$totals" ]; then
		p=$(sed -nE 's/.*Totals: pass:([0-9]+).*/\1/p' <<<"$totals")
		f=$(sed -nE 's/.* fail:([0-9]+).*/\1/p' <<<"$totals")
		s=$(sed -nE 's/.* skip:([0-9]+).*/\1/p' <<<"$totals")
		xf=$(sed -nE 's/.* xfail:([0-9]+).*/\1/p' <<<"$totals")
		e=$(sed -nE 's/.* error:([0-9]+).*/\1/p' <<<"$totals")
		p=${p:-0} f=${f:-0}
		s=${s:-0} xf=${xf:-0} e=${e:-0}
		p=$((p + xf))
		f=$((f + e))
	fi
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		echo "# $t: timed out after ${timeout}s"
		f=$((f + 1))
	elif [ -z "$totals" ] && [ "$rc" = 4 ]; then
		s=1
	elif [ -z "$totals" ] || { [ "$rc" != 0 ] && [ "$rc" != 4 ] && [ "$f" = 0 ]; }; then
		echo "# $t: exit status $rc without a failed test case counted"
		f=$((f + 1))
	fi
	echo "# $t: exit $rc, pass:$p fail:$f skip:$s"
	pass=$((pass + p))
	fail=$((fail + f))
	skip=$((skip + s))
done

# the tests that reload the module leave it loaded with default parameters
if [ ! -d /sys/module/tcptrace ]; then
	echo "# tcptrace is no longer loaded after the tests"
	fail=$((fail + 1))
fi
finish
