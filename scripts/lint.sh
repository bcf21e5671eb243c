#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Static checks of the module: a W=1 build with warnings as errors, sparse
# (C=2) and checkpatch.pl --strict (taken from linux-source-6.1 at first
# use).  Prints TAP lines and a final "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

: "${KDIR:?set KDIR to the kernel build tree}"
src=/usr/src/linux-source-6.1.tar.xz
cpdir=.build/checkpatch
pass=0 fail=0 n=0

result() { # name status logfile
	n=$((n + 1))
	if [ "$2" -eq 0 ]; then
		pass=$((pass + 1)); echo "ok $n - $1"
	else
		fail=$((fail + 1)); echo "not ok $n - $1"; sed 's/^/# /' "$3" | head -40
	fi
}

log=$(mktemp)
trap 'rm -f "$log"' EXIT

make -s -C "$KDIR" M="$PWD" W=1 KCFLAGS=-Werror -B modules >"$log" 2>&1
st=$?
! grep -q 'warning:' "$log" && [ $st -eq 0 ]
result "module builds with W=1 and no warning" $? "$log"

make -s -C "$KDIR" M="$PWD" C=2 modules >"$log" 2>&1
st=$?
! grep -E -q '(warning|error):' "$log" && [ $st -eq 0 ]
result "sparse (C=2) reports nothing" $? "$log"

if [ ! -x "$cpdir/scripts/checkpatch.pl" ]; then
	if [ ! -f "$src" ]; then
		echo "# $src missing: apt-get install linux-source-6.1" >"$log"
		result "checkpatch --strict" 1 "$log"
		echo "$pass passed, $fail failed"
		exit 1
	fi
	mkdir -p "$cpdir"
	tar -xJf "$src" -C "$cpdir" --strip-components=1 --wildcards \
		'linux-source-6.1/scripts/checkpatch.pl' \
		'linux-source-6.1/scripts/spelling.txt' \
		'linux-source-6.1/scripts/const_structs.checkpatch'
fi
files=$(git ls-files 'module/*.c' 'module/*.h' 2>/dev/null)
[ -n "$files" ] || files=$(ls module/*.c module/*.h module/uapi/*.h | grep -v '\.mod\.c$')
# shellcheck disable=SC2086
perl "$cpdir/scripts/checkpatch.pl" --strict --no-tree --terse \
	-f $files >"$log" 2>&1
grep -E -q ': (ERROR|WARNING|CHECK):' "$log" && st=1 || st=0
grep -E ': (ERROR|WARNING|CHECK):' "$log" >"$log.x"; mv "$log.x" "$log"
result "checkpatch --strict reports nothing" $st "$log"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
