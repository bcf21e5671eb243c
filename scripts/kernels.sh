#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Builds the module against every kernel headers package that the
# machine's package sources offer (the amd64 flavour of each kernel ABI;
# with --all-flavours also cloud-amd64 and rt-amd64), each in a copy of
# the sources under .build/kernels/KVER, with W=1 and warnings as errors.
# Prints TAP, a table of the results in .build/kernels/results.txt and a
# final "N passed, N failed".
#
#   scripts/kernels.sh                 build against the headers installed
#   scripts/kernels.sh --install       first install (apt-get, as root)
#                                      every offered headers package missing
#   scripts/kernels.sh --list          only list the offered packages
#   scripts/kernels.sh --newest        only the newest ABI of each series
#                                      and flavour (what make check builds)
#
# Packages are found with:
#   apt-cache search --names-only '^linux-headers-'
# keeping linux-headers-VERSION-amd64 (VERSION such as 6.1.0-56 or
# 6.12.117+deb12).  An offered package that is not installed is reported
# as skipped (not a failure) unless --install was given.
#
# Installing the cloud-amd64 and rt-amd64 headers of 6.1 changes which ones
# the Makefile picks by default (the newest /usr/src/linux-headers-6.1.*-
# amd64 by name): set KDIR= then, or remove them afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

install=0 list=0 newest=0 flavours='amd64'
for a in "$@"; do
	case $a in
	--install) install=1 ;;
	--list) list=1 ;;
	--newest) newest=1 ;;
	--all-flavours) flavours='amd64|cloud-amd64|rt-amd64' ;;
	-h | --help)
		sed -n '3,/^set /{/^#/p}' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "usage: $0 [--install] [--list] [--newest] [--all-flavours]" >&2
		exit 2
		;;
	esac
done

mapfile -t offered < <(apt-cache search --names-only '^linux-headers-' |
	awk '{print $1}' |
	grep -E "^linux-headers-[0-9]+\.[0-9]+(\.[0-9]+)?(-[0-9]+|\+deb[0-9]+)-($flavours)\$" |
	sort -V -u)
# headers installed but no longer offered are built too
for d in /usr/src/linux-headers-*; do
	[ -e "$d/Makefile" ] && [ -e "$d/include/config/auto.conf" ] || continue
	p=${d##*/}
	[[ $p =~ -($flavours)$ ]] || continue
	printf '%s\n' "${offered[@]}" | grep -qxF "$p" || offered+=("$p")
done
if [ "$newest" = 1 ]; then
	# of each series X.Y and flavour, the newest installed, else the
	# newest offered
	mapfile -t offered < <(for p in "${offered[@]}"; do
		[ -e "/usr/src/$p/Makefile" ] && echo "1 $p" || echo "0 $p"
	done | sort -k2,2V |
		awk '{ v = $2; sub(/^linux-headers-/, "", v); split(v, a, ".")
		       fl = v; sub(/^[^-]*-[0-9]*-|^[^-]*-/, "", fl)
		       k = a[1] "." a[2] " " fl
		       any[k] = $2; if ($1) inst[k] = $2 }
		     END { for (k in any) print (k in inst) ? inst[k] : any[k] }' |
		sort -V)
fi
if [ ${#offered[@]} -eq 0 ]; then
	echo "no linux-headers package offered or installed (apt-get update?)" >&2
	echo "0 passed, 1 failed"
	exit 1
fi
if [ "$list" = 1 ]; then
	printf '%s\n' "${offered[@]}"
	exit 0
fi

installed() {
	[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

if [ "$install" = 1 ]; then
	missing=()
	for p in "${offered[@]}"; do
		installed "$p" || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		if [ "$(id -u)" -ne 0 ]; then
			echo "run as root: apt-get install -y ${missing[*]}" >&2
			exit 1
		fi
		echo "# installing: ${missing[*]}"
		mkdir -p .build
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			--no-install-recommends "${missing[@]}" >.build/kernels-apt.log 2>&1 ||
			{ tail -20 .build/kernels-apt.log >&2; exit 1; }
	fi
fi

out=.build/kernels
mkdir -p "$out"
results=$out/results.txt
: >"$results"
pass=0 fail=0 skip=0 n=0
for p in "${offered[@]}"; do
	kver=${p#linux-headers-}
	kdir=/usr/src/$p
	n=$((n + 1))
	if [ ! -e "$kdir/Makefile" ]; then
		skip=$((skip + 1))
		echo "ok $n - $kver # SKIP $p not installed (scripts/kernels.sh --install)"
		printf '%-28s %s\n' "$kver" "not installed" >>"$results"
		continue
	fi
	code=$(sed -n 's/.*LINUX_VERSION_CODE \([0-9]*\).*/\1/p' \
		"$kdir/include/generated/uapi/linux/version.h" 2>/dev/null || true)
	upstream=
	[ -n "$code" ] && upstream="$((code >> 16)).$(((code >> 8) & 255)).$((code & 255))"
	b=$out/$kver
	rm -rf "$b"
	mkdir -p "$b/module"
	cp Kbuild "$b/"
	cp module/Kbuild module/*.c module/*.h "$b/module/"
	rm -f "$b"/module/*.mod.c
	cp -r module/uapi "$b/module/"
	log=$b/build.log
	if make -C "$kdir" M="$PWD/$b" W=1 KCFLAGS=-Werror modules >"$log" 2>&1 &&
		! grep -q 'warning:' "$log" && [ -f "$b/module/tcptrace.ko" ]; then
		pass=$((pass + 1))
		echo "ok $n - $kver (Linux $upstream): builds with W=1, no warning"
		printf '%-28s %-10s %s\n' "$kver" "$upstream" "built" >>"$results"
	else
		fail=$((fail + 1))
		echo "not ok $n - $kver (Linux $upstream): build failed or warned"
		{ grep -E 'error|warning' "$log" || tail -5 "$log"; } | head -20 | sed 's/^/# /'
		printf '%-28s %-10s %s\n' "$kver" "$upstream" "FAILED" >>"$results"
	fi
done
echo "1..$n"
echo "# results in $results"
echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:$skip error:0"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
