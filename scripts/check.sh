#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make check: static checks of the module, the host tests of the tool and
# of the benchmark's report, then every selftest inside the QEMU guest.
# Ends with "N passed, N failed" summed over all of them and exits
# non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."

total_pass=0 total_fail=0

# run NAME COMMAND...: show its output, add up its final "N passed, N failed"
run() {
	local name=$1 log st line p f
	shift
	log=$(mktemp)
	echo "==== $name: $*"
	"$@" 2>&1 | tee "$log"
	st=${PIPESTATUS[0]}
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	rm -f "$log"
	p=${line%% passed*}
	f=${line#*passed, }
	f=${f%% failed*}
	if [ -z "$line" ]; then
		p=0 f=1
		echo "==== $name: no result line (exit $st): counted as 1 failure"
	elif [ "$st" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
		echo "==== $name: exit status $st with no failed test: counted as 1 failure"
	fi
	echo "==== $name: $p passed, $f failed"
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
}

run lint scripts/lint.sh
run tool make -s -C userspace test
run bench-report python3 bench/test_report.py
run install scripts/install-test.sh
run selftests selftests/vm/run --timeout "${TCPTRACE_VM_TIMEOUT:-3000}" -- \
	selftests/run_all.sh

echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ] && [ "$total_pass" -gt 0 ]
