#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make stress's run inside the guest: the long variants of the stress and
# fault tests, each through selftests/run_all.sh and timed:
#
#   selftests/vm/run --timeout 7200 -- selftests/stress.sh
#
#   - reload.sh: STRESS_ROUNDS (default 200) insmod/rmmod cycles under
#     connections at full rate, a reader killed in read(2), poll(2) or
#     ppoll(2) by SIGTERM or SIGKILL after a random delay each round;
#   - netns_churn.sh: STRESS_NETNS (default 1000) network namespaces, made,
#     used by connections and destroyed, STRESS_PAR (default 2) at a time,
#     while a reader drains the device;
#   - overflow_test: the rings overflow for STRESS_SECS (default 180)
#     seconds under a slow reader; received + lost == produced, exactly;
#   - bench_memory_test.sh: STRESS_CONNS (default 100000) connections
#     against a 256-slot ACK table, then STRESS_CYCLES (default 100)
#     load/unload cycles with traffic, Slab before and after within
#     STRESS_SLAB_TOL_KB (default 512) kB.
# Each one checks at its end that the kernel logged no WARNING, BUG or
# Oops and is not tainted but O/E (the guest's harness checks both again).
# STRESS_TESTS: the tests to run (default all four, in that order).
#
# Prints TAP and ends with the totals of run_all.sh, as run_all.sh does:
#
#   # Totals: pass:N fail:N skip:N
#   N passed, N failed

set -u

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=selftests/lib.sh
. "$here/lib.sh"
tests=${STRESS_TESTS:-reload.sh netns_churn.sh overflow_test bench_memory_test.sh}
export ROUNDS=${STRESS_ROUNDS:-200}
export NETNS=${STRESS_NETNS:-1000}
export PAR=${STRESS_PAR:-2}
export TCPTRACE_OVERFLOW_SECS=${STRESS_SECS:-180}
export CONNS=${STRESS_CONNS:-100000}
export CYCLES=${STRESS_CYCLES:-100}
export SLAB_TOL_KB=${STRESS_SLAB_TOL_KB:-512}
# run_all.sh's limit per test (settings: 300 s) and the test programs'
# harness limits, 12 times longer: an hour each
export TCPTRACE_TIMEOUT_SCALE=${TCPTRACE_TIMEOUT_SCALE:-12}

echo "# stress: ROUNDS=$ROUNDS NETNS=$NETNS PAR=$PAR OVERFLOW_SECS=$TCPTRACE_OVERFLOW_SECS CONNS=$CONNS CYCLES=$CYCLES SLAB_TOL_KB=$SLAB_TOL_KB"
echo "# kernel $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ { print $2 }' /proc/meminfo) kB"
t_all=$SECONDS
# shellcheck disable=SC2086 # a list of test names
run_tests $tests
echo "# seconds per test:$times; $((SECONDS - t_all)) s in all"
echo "# Totals: pass:$pass fail:$fail skip:$skip"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ] && [ "$pass" -gt 0 ]
