#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Installs the Debian packages tcptrace needs, once: packages already
# installed are not touched.  As root it runs apt-get; otherwise it prints
# the command to run and fails.
#
# usage: scripts/deps.sh [build|vm|all]   (default: all)
set -euo pipefail

build_pkgs=(make gcc libc6-dev linux-headers-amd64 linux-source-6.1 sparse
	    xz-utils perl python3 pkg-config libpcap-dev libjansson-dev)
vm_pkgs=(qemu-system-x86 busybox-static linux-image-amd64 cpio kmod
	 iproute2 nftables tcpdump procps tshark)

case "${1:-all}" in
build) want=("${build_pkgs[@]}") ;;
vm) want=("${vm_pkgs[@]}") ;;
all) want=("${build_pkgs[@]}" "${vm_pkgs[@]}") ;;
*) echo "usage: $0 [build|vm|all]" >&2; exit 2 ;;
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
