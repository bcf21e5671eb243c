#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make check-debug: the module under the kernel's own checkers.
#
#  1. scripts/debug-kernel.sh: Debian's linux-source-6.1 built with KASAN,
#     lockdep (PROVE_LOCKING, PROVE_RCU), kmemleak, DEBUG_ATOMIC_SLEEP and
#     UBSAN bounds (once: some 20 minutes on 2 cores, then cached);
#  2. the module built against it, from a copy of its sources in
#     .build/debug-module (module/tcptrace.ko is left alone), with the
#     patch $TCPTRACE_DEBUG_PATCH applied to the copy when it is set (a
#     planted bug, to see the checkers catch it);
#  3. selftests/debug_smoke.sh in the QEMU guest booted with that kernel
#     (selftests/vm/run): a smoke subset of the selftests and the stress
#     tests, then two kmemleak scans after rmmod;
#  4. the guest's kernel log and output checked for any report of the
#     checkers: KASAN, UBSAN, lockdep, "BUG:", "WARNING:", kmemleak's
#     "unreferenced object"; each one found is printed and fails the run.
#
# Ends with "N passed, N failed" summed over the steps and exits non-zero
# on any failure.  Environment: TCPTRACE_VM_TIMEOUT (the guest's time
# limit, default 3000 s), TCPTRACE_DEBUG_TESTS, TCPTRACE_DEBUG_ROUNDS,
# TCPTRACE_DEBUG_NETNS (see selftests/debug_smoke.sh),
# TCPTRACE_TIMEOUT_SCALE (the tests' time limits are that many times longer,
# default 5), TCPTRACE_DEBUG_KEEP (where to keep the guest's console log,
# default .build/debug-console.log), and those of scripts/debug-kernel.sh.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
repo=$(pwd -P)

total_pass=0 total_fail=0
started=$SECONDS

step_ok() {
	echo "==== $1: 1 passed, 0 failed"
	total_pass=$((total_pass + 1))
}

step_failed() {
	echo "==== $1: 0 passed, 1 failed"
	total_fail=$((total_fail + 1))
}

finish() {
	echo "==== check-debug took $((SECONDS - started)) s"
	echo "$total_pass passed, $total_fail failed"
	[ "$total_fail" -eq 0 ] && [ "$total_pass" -gt 0 ]
	exit
}

# ---- 1. the kernel
echo "==== debug kernel: scripts/debug-kernel.sh"
t0=$SECONDS
if ! vars=$(scripts/debug-kernel.sh); then
	step_failed "debug kernel"
	finish
fi
KDIR=$(sed -n 's/^KDIR=//p' <<<"$vars")
KERNEL=$(sed -n 's/^KERNEL=//p' <<<"$vars")
MODDIR=$(sed -n 's/^MODDIR=//p' <<<"$vars")
KREL=$(sed -n 's/^KREL=//p' <<<"$vars")
echo "$KREL: $KERNEL ($((SECONDS - t0)) s)"
step_ok "debug kernel"

# ---- 2. the module, built apart
echo "==== debug module: make -C $KDIR M=$repo/.build/debug-module"
out=$repo/.build/debug-module
rm -rf "$out"
mkdir -p "$out/module"
cp Kbuild "$out/"
cp -r module/Kbuild module/*.c module/*.h module/uapi "$out/module/"
rm -f "$out"/module/*.mod.c
# a planted bug, to see the checkers catch it (README: "The debug kernel")
if [ -n "${TCPTRACE_DEBUG_PATCH:-}" ]; then
	echo "applying $TCPTRACE_DEBUG_PATCH to the copy"
	if ! patch -s -d "$out" -p1 <"$TCPTRACE_DEBUG_PATCH"; then
		step_failed "debug module"
		finish
	fi
fi
log=$(mktemp)
if make -C "$KDIR" M="$out" modules >"$log" 2>&1; then
	grep -E 'warning:|error:' "$log"
	rm -f "$log"
	step_ok "debug module"
else
	tail -n 40 "$log"
	rm -f "$log"
	step_failed "debug module"
	finish
fi
ko=$out/module/tcptrace.ko

# ---- 3. the guest
# the tests' time limits, 5 times longer than under Debian's kernel: the
# checkers make the guest 10-25 times slower (most tests wait on timers)
export TCPTRACE_TIMEOUT_SCALE=${TCPTRACE_TIMEOUT_SCALE:-5}
console=${TCPTRACE_DEBUG_KEEP:-$repo/.build/debug-console.log}
guest_out=$(mktemp)
echo "==== debug guest: selftests/debug_smoke.sh under $KREL"
# la57=off: 4-level paging.  QEMU's "-cpu max" offers LA57, and with 5-level
# paging KASAN's idea of where kernel addresses end follows the LA57 bit of
# boot_cpu_data, which identify_cpu() clears for a moment at boot: an
# interrupt in that window is reported as a "wild-memory-access" in the
# kernel's own code (seen on a loaded host), a false report of no concern
# to the module.
KERNEL=$KERNEL MODDIR=$MODDIR TCPTRACE_KO=$ko \
	TCPTRACE_VM_CPU=${TCPTRACE_VM_CPU:-max,la57=off} \
	TCPTRACE_VM_APPEND="kasan_multi_shot ${TCPTRACE_VM_APPEND:-}" \
	selftests/vm/run --timeout "${TCPTRACE_VM_TIMEOUT:-3000}" --mem 2048 \
	--keep-log "$console" -- selftests/debug_smoke.sh 2>&1 | tee "$guest_out"
st=${PIPESTATUS[0]}
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$guest_out" | tail -n 1)
if [ -z "$line" ]; then
	p=0 f=1
	echo "==== debug guest: no result line (exit $st): counted as 1 failure"
else
	p=${line%% passed*}
	f=${line#*passed, }
	f=${f%% failed*}
	if [ "$st" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
		echo "==== debug guest: exit status $st with no failed test: counted as 1 failure"
	fi
fi
echo "==== debug guest: $p passed, $f failed"
total_pass=$((total_pass + p))
total_fail=$((total_fail + f))

# ---- 4. the checkers' reports, in the console log and in the output
# (kmemleak's list is printed by debug_smoke.sh)
echo "==== checker reports: $console"
pattern='BUG:|WARNING:|UBSAN:|KASAN|unreferenced object|possible circular locking|'
pattern+='possible recursive locking|inconsistent lock state|suspicious RCU usage|'
pattern+='lock held when returning|held lock freed|sleeping function called from invalid context|'
pattern+='new suspected memory leaks|Oops|general protection|kernel BUG'
# KASAN's banner at boot is no report; from the guest's output, only
# kmemleak's list counts (the tests' own lines may name the checkers)
found=$( {
	tr -d '\r' <"$console" | grep -aE "$pattern" |
		grep -av 'KernelAddressSanitizer initialized'
	grep -aE '^unreferenced object' "$guest_out"
} 2>/dev/null | sed -E 's/^\[ *[0-9.]+\] //' | awk '!seen[$0]++')
if [ -z "$found" ]; then
	echo "none: no KASAN, UBSAN, lockdep, BUG, WARNING or kmemleak report"
	step_ok "checker reports"
else
	echo "found (each line once):"
	head -n 40 <<<"$found" | sed 's/^/  /'
	# The first report whole: from the line before the first match (the
	# "=====" rule the checkers print) to 80 lines after it.
	first=$(tr -d '\r' <"$console" | grep -naE "$pattern" |
		grep -av 'KernelAddressSanitizer initialized' | head -n 1 | cut -d: -f1)
	if [ -n "$first" ]; then
		echo "the first report, from the console log:"
		tr -d '\r' <"$console" | sed -n "$((first > 1 ? first - 1 : 1)),$((first + 80))p" |
			sed 's/^/  /'
	fi
	echo "the whole console log: $console"
	step_failed "checker reports"
fi
rm -f "$guest_out"
finish
