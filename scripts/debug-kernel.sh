#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Builds, once, the debug kernel of make check-debug: Debian's
# linux-source-6.1 (the source of the kernel `make check` boots) with
# x86_64_defconfig + kvm_guest.config + scripts/debug-kernel.config, that
# is KASAN, lockdep (PROVE_LOCKING, PROVE_RCU), kmemleak,
# DEBUG_ATOMIC_SLEEP and UBSAN bounds, and everything the module and the
# selftests need built in.  Builds bzImage and modules, installs the
# modules for selftests/vm/run's MODDIR; the tree then builds out-of-tree
# modules (make -C KDIR M=...).
#
# usage: scripts/debug-kernel.sh [--built]
#
# Prints, on stdout and nothing else, where the result is:
#   KDIR=<build tree>  KERNEL=<bzImage>  MODDIR=<modules>  KREL=<release>
# one per line.  Progress goes to stderr, the build's output to build.log
# next to the tree (its tail is shown when the build fails).  With
# --built it builds nothing: it prints the same when the tree is already
# built, else exits 1 (.ci/run asks, to know how long check-debug takes).
#
# The tree lives in $TCPTRACE_DEBUG_CACHE (default
# ${XDG_CACHE_HOME:-~/.cache}/tcptrace-debug-kernel), in a directory named
# after a hash of the fragment, this script's commands (not its comments),
# the source package and the compiler: a second run finds it built and
# takes a second.  Only the newest tree is kept (2.2 GB); a build cut short
# goes on where it stopped.  The build runs under `nice -n
# $TCPTRACE_DEBUG_NICE` (default 19) with `make -j$TCPTRACE_DEBUG_JOBS`
# (default: the number of CPUs); it takes about 40 CPU-minutes: some 20
# minutes on 2 idle cores, more on a busy machine.  Needs flex, bison, bc,
# libelf-dev, libssl-dev (scripts/deps.sh debug) and about 3 GB of disk.
set -euo pipefail

query=
case ${1:-} in
--built) query=1 ;;
"") ;;
*)
	echo "usage: $0 [--built]" >&2
	exit 2
	;;
esac

here=$(cd "$(dirname "$0")" && pwd -P)
fragment=$here/debug-kernel.config
tarball=${TCPTRACE_DEBUG_SRC:-/usr/src/linux-source-6.1.tar.xz}
base=${TCPTRACE_DEBUG_CACHE:-${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/tcptrace-debug-kernel}
jobs=${TCPTRACE_DEBUG_JOBS:-$(nproc)}
niceness=${TCPTRACE_DEBUG_NICE:-19}

msg() {
	echo "debug-kernel: $*" >&2
}

die() {
	msg "$*"
	exit 1
}

[ -r "$tarball" ] || die "no $tarball: apt-get install linux-source-6.1 (scripts/deps.sh debug)"
for t in flex bison bc gcc make xz; do
	command -v "$t" >/dev/null || die "$t not found: run scripts/deps.sh debug as root"
done
[ -r /usr/include/libelf.h ] || die "no libelf.h: apt-get install libelf-dev (scripts/deps.sh debug)"
[ -r /usr/include/openssl/ssl.h ] || die "no openssl headers: apt-get install libssl-dev (scripts/deps.sh debug)"

key=$( {
	cat "$fragment"
	grep -v '^[[:space:]]*#' "$0"
	stat -Lc '%n %s %Y' "$tarball"
	gcc --version | head -n 1
} | sha256sum | cut -c1-16)

mkdir -p "$base" || die "cannot create $base"
dir=$base/$key
src=$dir/src
mods=$dir/modules

# result: print where the kernel is
result() {
	local krel

	krel=$(cat "$src/include/config/kernel.release")
	echo "KDIR=$src"
	echo "KERNEL=$src/arch/x86/boot/bzImage"
	echo "MODDIR=$mods/lib/modules/$krel"
	echo "KREL=$krel"
}

if [ -n "$query" ]; then
	[ -e "$dir/done" ] || exit 1
	result
	exit 0
fi

# One build at a time (worktrees, parallel runs): the others wait for it.
exec {lock}>"$base/.lock"
if ! flock -n "$lock"; then
	msg "waiting for another build in $base"
	flock "$lock"
fi

if [ -e "$dir/done" ]; then
	result
	exit 0
fi

log=$dir/build.log
# make_logged ARGS...: make in the tree, niced, its output to the log
make_logged() {
	if ! nice -n "$niceness" make -C "$src" -j"$jobs" "$@" >>"$log" 2>&1; then
		msg "make $* failed; the end of $log:"
		tail -n 40 "$log" | sed 's/^/  /' >&2
		exit 1
	fi
}

# configure: the .config, checked against the fragment
configure() {
	local bad=0 line opt want got

	msg "configuring: x86_64_defconfig + kvm_guest.config + ${fragment##*/}"
	make_logged x86_64_defconfig
	make_logged kvm_guest.config
	(cd "$src" && scripts/kconfig/merge_config.sh -m .config "$fragment") >>"$log" 2>&1 ||
		die "merge_config.sh failed: see $log"
	make_logged olddefconfig
	# Every line of the fragment must have survived olddefconfig's dependencies.
	while IFS= read -r line; do
		case $line in
		CONFIG_*=*) opt=${line%%=*} want=$line ;;
		"# CONFIG_"*" is not set")
			opt=${line#\# }
			opt=${opt%% *}
			want=
			;;
		*) continue ;;
		esac
		got=$(grep -E "^$opt=" "$src/.config" || true)
		if [ "$got" != "$want" ]; then
			msg "the .config has '${got:-$opt unset}' where the fragment says '${want:-$opt unset}'"
			bad=1
		fi
	done <"$fragment"
	[ "$bad" = 0 ] || die "fix ${fragment##*/} (the Kconfig dependencies of these options)"
}

start=$SECONDS
# A build cut short goes on where it stopped, once the tree is configured.
if [ ! -e "$dir/configured" ]; then
	rm -rf "$dir"
	mkdir -p "$dir"
	: >"$log"
	msg "building the debug kernel in $dir (log: $log)"
	msg "extracting $tarball"
	tar -xJf "$tarball" -C "$dir"
	mv "$dir/linux-source-6.1" "$src"
	configure
	touch "$dir/configured"
else
	msg "going on with the build in $dir (log: $log)"
fi

msg "make -j$jobs bzImage modules (nice -n $niceness; about 40 CPU-minutes)"
make_logged bzImage modules
make_logged INSTALL_MOD_PATH="$mods" modules_install
krel=$(cat "$src/include/config/kernel.release")
[ -r "$mods/lib/modules/$krel/modules.dep" ] || die "modules_install made no modules.dep"
touch "$dir/done"
msg "built $krel in $((SECONDS - start)) s"

# Keep only this tree: each one is several GB.
for old in "$base"/*/; do
	old=${old%/}
	[ "$old" = "$dir" ] || rm -rf "$old"
done
result
