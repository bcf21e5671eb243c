#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Installs the Debian packages tcptrace needs, once: packages already
# installed are not touched.  As root it runs apt-get; otherwise it prints
# the command to run and fails.
#
# usage: scripts/deps.sh [build|vm|all|bench|install|debug|fuzz]   (default: all)
#
# install: what make check-install, make dkms-install and the metrics test
# need on top of all: dkms, promtool (prometheus), curl, man page linters
# (mandoc, groff, man-db), openssl (a throwaway signing key), bash-completion.
#
# bench: what make bench needs on top of all: bpftrace (one of the tracers
# it compares) and linux-perf (perf, to profile in the guest).
#
# debug: what make check-debug needs on top of all to build a kernel from
# linux-source-6.1: flex, bison, bc, libelf-dev, libssl-dev (no dwarves:
# the debug kernel has no BTF).
#
# fuzz: what make fuzz needs on top of build: clang with libFuzzer and the
# sanitizer runtimes (libclang-rt-dev), llvm (llvm-symbolizer).
set -euo pipefail

build_pkgs=(make gcc libc6-dev linux-headers-amd64 linux-source-6.1 sparse
	    xz-utils perl python3 pkg-config libpcap-dev libjansson-dev)
vm_pkgs=(qemu-system-x86 busybox-static linux-image-amd64 cpio kmod
	 iproute2 nftables tcpdump procps tshark)
bench_pkgs=(bpftrace linux-perf)
debug_pkgs=(flex bison bc libelf-dev libssl-dev)
install_pkgs=(dkms prometheus curl mandoc groff-base man-db kmod openssl
	      bash-completion)
fuzz_pkgs=(clang llvm libclang-rt-dev)

case "${1:-all}" in
build) want=("${build_pkgs[@]}") ;;
vm) want=("${vm_pkgs[@]}") ;;
all) want=("${build_pkgs[@]}" "${vm_pkgs[@]}") ;;
bench) want=("${build_pkgs[@]}" "${vm_pkgs[@]}" "${bench_pkgs[@]}") ;;
install) want=("${build_pkgs[@]}" "${vm_pkgs[@]}" "${install_pkgs[@]}") ;;
debug) want=("${build_pkgs[@]}" "${vm_pkgs[@]}" "${debug_pkgs[@]}") ;;
fuzz) want=("${build_pkgs[@]}" "${fuzz_pkgs[@]}") ;;
*) echo "usage: $0 [build|vm|all|bench|install|debug|fuzz]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "tcptrace needs these packages: ${missing[*]}" >&2
	echo "run as root: apt-get update && apt-get install -y ${missing[*]}" >&2
	exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
