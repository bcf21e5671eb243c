#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make check-install (and a line of make check): tcptrace installed as an
# out-of-tree module is installed, on the host.
#
#   - the man pages: mandoc -T lint and groff -ww report nothing, man -l
#     renders them, and they name every command and option of tcptracectl,
#     every ioctl and every module parameter;
#   - bash completion: the commands, each command's options (all of those
#     of its --help), and the values of --link and --dir;
#   - make install DESTDIR=... (PREFIX=/usr and the default /usr/local):
#     exactly the expected files, the tool runs, make uninstall removes
#     them all;
#   - make sign with a throwaway key and certificate: modinfo shows the
#     signer and hash, signing twice is refused;
#   - the module builds against the newest installed headers of each
#     kernel series (scripts/kernels.sh --newest), and LINUX_VERSION_CODE
#     is tested in module/compat.h only;
#   - DKMS (as root): make dkms-install (dkms add, build, install) against
#     KDIR's kernel, then the guest boots that kernel with the host's
#     /lib/modules and modprobe loads the DKMS-built module, /dev/tcptrace
#     appears with mode 0600; make dkms-remove leaves nothing behind.
#
# Prints TAP and a final "N passed, N failed".  KDIR as in the Makefile.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${KDIR:-}" ]; then
	KDIR=/lib/modules/$(uname -r)/build
	[ -d "$KDIR" ] || KDIR=$(ls -d /usr/src/linux-headers-6.1.*[0-9]-amd64 2>/dev/null | sort -V | tail -n 1)
fi
KVER=$(sed -n 's/.*UTS_RELEASE "\(.*\)"/\1/p' "$KDIR/include/generated/utsrelease.h" 2>/dev/null) || true
export KDIR

pass=0 fail=0 skip=0 n=0
tmp=$(mktemp -d)
dkms_added=0 mok_before=0
[ -e /var/lib/dkms/mok.key ] && mok_before=1

cleanup() {
	if [ "$dkms_added" = 1 ]; then
		make -s --no-print-directory dkms-remove >/dev/null 2>&1 || true
		if [ "$mok_before" = 0 ]; then
			rm -f /var/lib/dkms/mok.key /var/lib/dkms/mok.pub
		fi
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

ok() {
	n=$((n + 1)) pass=$((pass + 1))
	echo "ok $n - $*"
}

not_ok() {
	n=$((n + 1)) fail=$((fail + 1))
	echo "not ok $n - $*"
}

skip() {
	n=$((n + 1)) skip=$((skip + 1))
	echo "ok $n - $1 # SKIP $2"
}

# check DESC COMMAND...: passes when COMMAND succeeds; its output is shown
# (as comments) when it fails
check() {
	local desc=$1 out
	shift
	if out=$("$@" 2>&1); then
		ok "$desc"
	else
		not_ok "$desc"
		printf '%s\n' "$out" | head -30 | sed 's/^/#   /'
	fi
}

# same DESC GOT EXPECTED
same() {
	if [ "$2" = "$3" ]; then
		ok "$1"
	else
		not_ok "$1"
		diff <(printf '%s\n' "$3") <(printf '%s\n' "$2") | head -30 | sed 's/^/#   /'
	fi
}

echo "TAP version 13"
if ! scripts/deps.sh install >"$tmp/deps.log" 2>&1; then
	sed 's/^/# /' "$tmp/deps.log"
fi
tool=userspace/tcptracectl
if [ ! -x "$tool" ] || [ ! -f module/tcptrace.ko ]; then
	echo "# building first: make build"
	make -s build >"$tmp/build.log" 2>&1 || { sed 's/^/# /' "$tmp/build.log" | tail -20; }
fi
commands="watch ladder record stats clear tune metrics version"

# opts_of COMMAND: the options of COMMAND, from the option lines of its --help
opts_of() {
	"$tool" "$1" --help | awk '/^ +-/ {
		s = $0; sub(/^ +/, "", s); split(s, parts, "  ")
		n = split(parts[1], o, ", ")
		for (i = 1; i <= n; i++) { split(o[i], w, " "); print w[1] }
	}' | sort -u
}

# ---- man pages -------------------------------------------------------------

for page in userspace/tcptracectl.8 module/tcptrace.4; do
	check "mandoc -T lint $page: no warning" \
		bash -c "out=\$(mandoc -T lint -W warning '$page' 2>&1); [ -z \"\$out\" ] || { echo \"\$out\"; false; }"
	check "groff -ww $page: no warning" \
		bash -c "out=\$(LC_ALL=C.UTF-8 groff -ww -man -t -z '$page' 2>&1); [ -z \"\$out\" ] || { echo \"\$out\"; false; }"
	check "man -l $page renders" \
		bash -c "out=\$(LC_ALL=C.UTF-8 MANWIDTH=80 man -l '$page' 2>&1 >/dev/null); [ -z \"\$out\" ] && [ \$(LC_ALL=C.UTF-8 MANWIDTH=80 man -l '$page' 2>/dev/null | wc -l) -gt 100 ]"
done

# every command and every long option of each command's --help is in
# tcptracectl(8); short options too
rendered=$(LC_ALL=C.UTF-8 MANWIDTH=200 man -l userspace/tcptracectl.8 2>/dev/null | sed 's/‐/-/g') || true
missing=
for c in $commands; do
	grep -q "^   $c\$" <<<"$rendered" || missing+=" command:$c"
	for o in $(opts_of "$c"); do
		grep -qF -- "$o" <<<"$rendered" || missing+=" $c:$o"
	done
done
same "tcptracectl(8) names every command and option of tcptracectl" "$missing" ""

rendered4=$(LC_ALL=C.UTF-8 MANWIDTH=200 man -l module/tcptrace.4 2>/dev/null | sed 's/‐/-/g') || true
missing=
for p in $(sed -n 's/^module_param[a-z_]*(\([a-z_]*\),.*/\1/p' module/main.c); do
	grep -q "$p=" <<<"$rendered4" || missing+=" param:$p"
done
for i in $(grep -oE 'TCPTRACE_(IOC|T)_[A-Z_]+' module/uapi/tcptrace.h | grep -v -e _MAGIC -e T_MAX | sort -u); do
	grep -qF "$i" <<<"$rendered4" || missing+=" $i"
done
same "tcptrace(4) names every module parameter, record type and ioctl" "$missing" ""

# ---- bash completion ---------------------------------------------------------

comp() { # WORDS...: what completing the last word offers, one line
	bash -c '
		[ -r /usr/share/bash-completion/bash_completion ] &&
			. /usr/share/bash-completion/bash_completion
		. userspace/tcptracectl.bash-completion
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
		_tcptracectl
		echo "${COMPREPLY[*]}"' comp "$@"
}
check "bash -n tcptracectl.bash-completion" bash -n userspace/tcptracectl.bash-completion
same "completion: the commands" "$(comp tcptracectl '')" \
	"watch ladder record stats clear tune metrics version help"
same "completion: 'me' is metrics" "$(comp tcptracectl me)" "metrics"
same "completion: record --link" "$(comp tcptracectl record --link '')" "ether raw"
same "completion: record --dir o" "$(comp tcptracectl record --dir o)" "out"
same "completion: help l" "$(comp tcptracectl help l)" "ladder"
missing=
for c in $commands; do
	offered=" $(comp tcptracectl "$c" -) "
	for o in $(opts_of "$c"); do
		[[ $offered == *" $o "* ]] || missing+=" $c:$o"
	done
done
same "completion: every option of every command's --help" "$missing" ""

# ---- make install / uninstall into a DESTDIR --------------------------------

expected_files() { # PREFIX
	printf '%s\n' \
		"/lib/modules/$KVER/extra/tcptrace.ko" \
		"$1/lib/udev/rules.d/99-tcptrace.rules" \
		"$1/sbin/tcptracectl" \
		"$1/share/bash-completion/completions/tcptracectl" \
		"$1/share/man/man4/tcptrace.4" \
		"$1/share/man/man8/tcptracectl.8" | sort
}
for prefix in /usr /usr/local; do
	d=$tmp/destdir$prefix
	if [ "$prefix" = /usr/local ]; then set -- ; else set -- PREFIX=$prefix; fi
	if make -s --no-print-directory install DESTDIR="$d" "$@" >"$tmp/install.log" 2>&1; then
		ok "make install DESTDIR=... ${*:-(default PREFIX)}"
	else
		not_ok "make install DESTDIR=... ${*:-(default PREFIX)}"
		tail -20 "$tmp/install.log" | sed 's/^/#   /'
	fi
	same "installed files with PREFIX=$prefix" \
		"$(cd "$d" 2>/dev/null && find . -type f | sed 's/^\.//' | sort)" \
		"$(expected_files "$prefix")"
	same "modes: tool 755, the rest 644" \
		"$(cd "$d" 2>/dev/null && find . -type f -printf '%m %P\n' | sort -k2 | cut -d' ' -f1 | sort | uniq -c | awk '{print $1 "x" $2}' | tr '\n' ' ')" \
		"5x644 1x755 "
	check "the installed tcptracectl runs" "$d$prefix/sbin/tcptracectl" --version
	check "the installed module is tcptrace for $KVER" \
		bash -c "modinfo -F vermagic '$d/lib/modules/$KVER/extra/tcptrace.ko' | grep -q '^$KVER '"
	check "the installed udev rule sets mode 0600" \
		grep -q 'KERNEL=="tcptrace".*MODE="0600"' "$d$prefix/lib/udev/rules.d/99-tcptrace.rules"
	make -s --no-print-directory uninstall DESTDIR="$d" "$@" >"$tmp/uninstall.log" 2>&1 || true
	same "make uninstall DESTDIR=... removes every file" \
		"$(cd "$d" 2>/dev/null && find . -type f)" ""
done

# ---- signing -----------------------------------------------------------------

if openssl req -new -x509 -newkey rsa:2048 -sha256 -nodes -days 1 \
	-subj "/CN=tcptrace throwaway test key/" -outform DER \
	-keyout "$tmp/key.pem" -out "$tmp/cert.der" >"$tmp/openssl.log" 2>&1; then
	cp module/tcptrace.ko "$tmp/tcptrace.ko"
	check "make sign KEY=... CERT=... KO=..." \
		make -s --no-print-directory sign KEY="$tmp/key.pem" CERT="$tmp/cert.der" KO="$tmp/tcptrace.ko"
	same "modinfo shows the signer" "$(modinfo -F signer "$tmp/tcptrace.ko")" \
		"tcptrace throwaway test key"
	same "modinfo shows the hash and signature type" \
		"$(modinfo -F sig_hashalgo "$tmp/tcptrace.ko") $(modinfo -F sig_id "$tmp/tcptrace.ko")" \
		"sha256 PKCS#7"
	same "the signature is appended" "$(tail -c 28 "$tmp/tcptrace.ko")" \
		"~Module signature appended~"
	st=0
	make -s --no-print-directory sign KEY="$tmp/key.pem" CERT="$tmp/cert.der" \
		KO="$tmp/tcptrace.ko" >"$tmp/sign2.log" 2>&1 || st=$?
	same "signing a signed module is refused" "$st:$(grep -c 'already signed' "$tmp/sign2.log")" "2:1"
	rm -rf "$tmp/signdest"
	make -s --no-print-directory install DESTDIR="$tmp/signdest" \
		KEY="$tmp/key.pem" CERT="$tmp/cert.der" >"$tmp/install.log" 2>&1 || true
	same "make install KEY=... CERT=... signs the installed module" \
		"$(modinfo -F signer "$tmp/signdest/lib/modules/$KVER/extra/tcptrace.ko" 2>&1)" \
		"tcptrace throwaway test key"
	same "... and not module/tcptrace.ko" "$(modinfo -F signer module/tcptrace.ko)" ""
else
	not_ok "openssl makes a throwaway key"
	sed 's/^/#   /' "$tmp/openssl.log"
fi

# ---- kernel versions ---------------------------------------------------------

same "LINUX_VERSION_CODE only in module/compat.h" \
	"$(grep -l LINUX_VERSION_CODE module/*.c module/*.h module/uapi/*.h | grep -v '\.mod\.c$')" \
	"module/compat.h"
st=0
scripts/kernels.sh --newest >"$tmp/kernels.log" 2>&1 || st=$?
while read -r line; do
	case $line in
	"ok "*"# SKIP"*) skip "${line#ok * - }" "" ;;
	"ok "*) ok "kernels: ${line#ok * - }" ;;
	"not ok "*) not_ok "kernels: ${line#not ok * - }" ;;
	"# Totals"*) ;;
	"#"*) echo "$line" ;;
	esac
done <"$tmp/kernels.log"
[ "$st" -eq 0 ] || grep -q '^not ok' "$tmp/kernels.log" || not_ok "scripts/kernels.sh --newest exited $st"

# ---- DKMS ----------------------------------------------------------------------

dkms_ko=/lib/modules/$KVER/updates/dkms/tcptrace.ko
if [ "$(id -u)" -ne 0 ]; then
	skip "DKMS" "needs root"
elif ! command -v dkms >/dev/null; then
	not_ok "dkms installed (scripts/deps.sh install)"
elif [ -n "$(dkms status -m tcptrace 2>/dev/null)" ]; then
	skip "DKMS" "tcptrace is already registered with DKMS here (dkms status): not touched"
else
	dkms_added=1
	if make --no-print-directory dkms-install >"$tmp/dkms.log" 2>&1; then
		ok "make dkms-install: dkms add, build, install for $KVER"
	else
		not_ok "make dkms-install: dkms add, build, install for $KVER"
		tail -30 "$tmp/dkms.log" | sed 's/^/#   /'
	fi
	same "dkms status" "$(dkms status -m tcptrace -k "$KVER" 2>&1)" \
		"tcptrace/0.1.0, $KVER, x86_64: installed"
	check "the DKMS module is $dkms_ko, for $KVER" \
		bash -c "modinfo -F vermagic '$dkms_ko' | grep -q '^$KVER '"
	check "depmod knows it: modprobe -S $KVER finds updates/dkms" \
		bash -c "modprobe -S '$KVER' --show-depends tcptrace | grep -q 'updates/dkms/tcptrace.ko'"
	kernel=/boot/vmlinuz-$KVER
	if [ -r "$kernel" ]; then
		out=$(KERNEL=$kernel selftests/vm/run --timeout 300 -- sh -c '
			modprobe tcptrace || exit 1
			modinfo -F filename tcptrace
			sleep 1
			stat -c "%F %a %U" /dev/tcptrace
			userspace/tcptracectl version | tail -n 1
			rmmod tcptrace' 2>&1) || true
		same "the guest ($KVER) loads the DKMS module with modprobe" "$out" \
"$dkms_ko
character special file 600 root
module ABI version 1"
	else
		skip "the guest loads the DKMS module" "no $kernel to boot"
	fi
	make --no-print-directory dkms-remove >"$tmp/dkms.log" 2>&1 || true
	dkms_added=0
	same "make dkms-remove: nothing left" \
		"$(dkms status -m tcptrace 2>&1; ls -d /usr/src/tcptrace-* "$dkms_ko" 2>/dev/null)" ""
	check "make dkms-remove again: nothing to do, exit 0" \
		make -s --no-print-directory dkms-remove
	if [ "$mok_before" = 0 ]; then
		rm -f /var/lib/dkms/mok.key /var/lib/dkms/mok.pub
	fi
fi

echo "1..$n"
echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:$skip error:0"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
