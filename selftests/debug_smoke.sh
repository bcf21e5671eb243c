#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make check-debug's run inside the guest, booted with the debug kernel of
# scripts/debug-kernel.sh (KASAN, lockdep, kmemleak, UBSAN, atomic-sleep
# checks); scripts/check-debug.sh starts it:
#
#   selftests/vm/run -- selftests/debug_smoke.sh
#
#  1. checks that the kernel has its checkers: kmemleak, lockdep, KASAN;
#  2. two kmemleak scans and "clear": what the boot left is not ours;
#  3. the tests of $TCPTRACE_DEBUG_TESTS, each through selftests/run_all.sh
#     and timed.  The default is a smoke subset that every part of the
#     module runs in, in about 10 minutes under emulation: the device ABI
#     (abi_test), module parameters and their errors (params_test), every
#     scenario of the handshake and teardown, IPv4 and IPv6 (scenario_test),
#     the ring's overflow (overflow_test), namespace churn (netns_churn.sh,
#     $TCPTRACE_DEBUG_NETNS namespaces, default 16) and reloads under
#     traffic (reload.sh, $TCPTRACE_DEBUG_ROUNDS rounds, default 6: each
#     of its readers killed by either signal).  conn_test is left out:
#     scenario_test and the stress tests go through the same handshakes and
#     teardowns;
#  4. rmmod tcptrace, then two kmemleak scans: any "unreferenced object"
#     fails, and is printed;
#  5. lockdep is still on (debug_locks 1): no checker turned it off.
#
# Reports from the checkers go to the kernel log, which the host checks
# (scripts/check-debug.sh).  Prints TAP and ends with the totals of
# run_all.sh plus its own cases, as run_all.sh does:
#
#   # Totals: pass:N fail:N skip:N
#   N passed, N failed

set -u

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=selftests/lib.sh
. "$here/lib.sh"
tests=${TCPTRACE_DEBUG_TESTS:-abi_test params_test scenario_test overflow_test netns_churn.sh reload.sh}
export ROUNDS=${TCPTRACE_DEBUG_ROUNDS:-6}
export NETNS=${TCPTRACE_DEBUG_NETNS:-16}
kml=/sys/kernel/debug/kmemleak

# the totals, and the summary line check-debug.sh reads
finish() {
	echo "# Totals: pass:$pass fail:$fail skip:$skip"
	echo "$pass passed, $fail failed"
	[ "$fail" = 0 ] && [ "$pass" -gt 0 ]
	exit
}

# scan: one kmemleak scan (10-20 s under emulation)
scan() {
	echo scan >"$kml"
}

echo "# kernel $(uname -r): $(cat /proc/cmdline)"
why=
[ -w "$kml" ] || why="$why, no kmemleak (kmemleak=off?)"
[ -r /proc/lockdep_stats ] || why="$why, no lockdep"
dmesg | grep -q 'KernelAddressSanitizer initialized' || why="$why, no KASAN"
if [ -n "$why" ]; then
	not_ok "the kernel has its checkers: ${why#, }"
	finish
fi
ok "the kernel has its checkers: KASAN, lockdep, kmemleak"

t0=$SECONDS
scan
scan
before=$(grep -c '^unreferenced object' "$kml")
echo clear >"$kml"
echo "# kmemleak: $before objects suspected after boot, cleared; 2 scans in $((SECONDS - t0)) s"

# One run_all.sh per test, for the time each one takes.
# shellcheck disable=SC2086 # a list of test names
run_tests $tests
echo "# seconds per test:$times"

if [ -d /sys/module/tcptrace ] && ! rmmod tcptrace; then
	not_ok "rmmod tcptrace"
else
	ok "tcptrace unloaded"
fi

# Freed objects wait for RCU grace periods and work queues; kmemleak
# reports an object on the second scan that finds it unreferenced.
t0=$SECONDS
sleep 5
scan
scan
leaks=$(grep -c '^unreferenced object' "$kml")
echo "# kmemleak: 2 scans in $((SECONDS - t0)) s"
if [ "$leaks" = 0 ]; then
	ok "kmemleak: no unreferenced object after the tests and rmmod"
else
	not_ok "kmemleak: $leaks unreferenced objects after the tests and rmmod"
	# the host looks for these lines in our output too
	head -n 400 "$kml"
fi

locks=$(sed -nE 's/^ *debug_locks: *([0-9]+)/\1/p' /proc/lockdep_stats)
if [ "$locks" = 1 ]; then
	ok "lockdep still on at the end (debug_locks: 1)"
else
	not_ok "lockdep turned itself off (debug_locks: ${locks:-?}): a checker reported, or lockdep ran out of room"
fi
finish
