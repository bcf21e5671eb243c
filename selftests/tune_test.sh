#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# 'tcptracectl tune' against the real sysctls, in network namespaces: values
# set with --netns or --netns-pid change in that namespace only (not in
# another one, not in the initial one); the limits the tool checks before
# writing match the kernel's where the kernel has some, and stop a negative
# tcp_max_syn_backlog, which the kernel takes; a write that fails half-way
# (a sysctl file made read-only by a bind mount) is rolled back.
#
#   make -C userspace && selftests/vm/run -- selftests/tune_test.sh
#
# Needs root and ip(8); the module is not needed.  Leaves the initial
# namespace as it was.  Prints TAP; exits non-zero when a case failed.

set -u

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=selftests/lib.sh
. "$here/lib.sh"
unset TCPTRACE_SYSCTL_ROOT

nsa=tt_tune_a_$$
nsb=tt_tune_b_$$
tmp=$(mktemp -d)
sleeper=
rc=''
out=''
err=''

knobs="net/ipv4/tcp_synack_retries net/ipv4/tcp_syn_retries net/core/somaxconn
net/ipv4/tcp_max_syn_backlog net/ipv4/tcp_abort_on_overflow
net/ipv4/tcp_syncookies net/ipv4/tcp_fin_timeout"

# expect DESC RC OUT ERR: one case, passed when the last tool run exited
# with RC and printed OUT on stdout and ERR on stderr (whole texts).
expect() {
	if [ "$rc" = "$2" ] && [ "$out" = "$3" ] && [ "$err" = "$4" ]; then
		ok "$1"
		return
	fi
	not_ok "$1"
	echo "#   exit status $rc, expected $2"
	[ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/#   stdout: /'
	[ -n "$err" ] && printf '%s\n' "$err" | sed 's/^/#   stderr: /'
	return 0
}

# tool ARGS...: runs tcptracectl; sets out, err and rc.
tool() {
	out=$("$tool" "$@" 2>"$tmp/err")
	rc=$?
	err=$(cat "$tmp/err")
}

# in_ns NS COMMAND...: COMMAND in netns NS, or in this one when NS is "".
in_ns() {
	local ns=$1

	shift
	if [ -n "$ns" ]; then
		ip netns exec "$ns" "$@"
	else
		"$@"
	fi
}

# values NS: every knob of netns NS ("": this one), as 'tune' prints them.
values() {
	local k

	for k in $knobs; do
		printf '%s: %s\n' "${k##*/}" "$(in_ns "$1" cat "/proc/sys/$k")"
	done
}

# old VALUES NAME: the value of NAME in VALUES, the output of values().
old() {
	printf '%s\n' "$1" | sed -n "s/^$2: //p"
}

cleanup() {
	if [ -n "$sleeper" ]; then
		kill "$sleeper" 2>/dev/null
		wait "$sleeper" 2>/dev/null
	fi
	ip netns del "$nsa" 2>/dev/null
	ip netns del "$nsb" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

tap_start
[ "$(id -u)" = 0 ] ||
	bail "needs root (run it in the VM: selftests/vm/run -- selftests/tune_test.sh)"
[ -x "$tool" ] || bail "$tool not found (make -C userspace)"
ip netns add "$nsa" && ip netns add "$nsb" || bail "ip netns add failed"

init0=$(values "")
a0=$(values "$nsa")
b0=$(values "$nsb")

# --- reading ---------------------------------------------------------------

tool tune
expect "tune prints the values of the initial netns" 0 "$init0" ""

tool tune --json
check "tune --json prints the same values as one object" \
	python3 -c '
import json, sys
obj = json.loads(sys.argv[1])
exp = dict(l.split(": ") for l in sys.argv[2].splitlines())
sys.exit(sys.argv[1].count("\n") != 0 or
         obj != {k: int(v) for k, v in exp.items()})' "$out" "$init0"

tool tune --netns "$nsa"
expect "tune --netns prints that netns' values" 0 "$a0" ""

# --- writing in one netns --------------------------------------------------

tool tune --netns "$nsa" --synack-retries 2 --syn-retries 3 --somaxconn 16 \
	--max-syn-backlog 16 --abort-on-overflow 1
exp="tcp_synack_retries: $(old "$a0" tcp_synack_retries) -> 2
tcp_syn_retries: $(old "$a0" tcp_syn_retries) -> 3
somaxconn: $(old "$a0" somaxconn) -> 16
tcp_max_syn_backlog: $(old "$a0" tcp_max_syn_backlog) -> 16
tcp_abort_on_overflow: $(old "$a0" tcp_abort_on_overflow) -> 1"
expect "tune --netns A ... prints 'name: old -> new'" 0 "$exp" ""
a1=$(printf '%s\n' "$a0" | sed -e 's/^\(tcp_synack_retries\): .*/\1: 2/' \
	-e 's/^\(tcp_syn_retries\): .*/\1: 3/' -e 's/^\(somaxconn\): .*/\1: 16/' \
	-e 's/^\(tcp_max_syn_backlog\): .*/\1: 16/' \
	-e 's/^\(tcp_abort_on_overflow\): .*/\1: 1/')
same "the values changed in netns A" "$(values "$nsa")" "$a1"
same "the values did not change in netns B" "$(values "$nsb")" "$b0"
same "the values did not change in the initial netns" \
	"$(values "")" "$init0"
tool tune --netns "$nsa"
expect "tune --netns A reads the new values" 0 "$a1" ""
tool tune
expect "tune reads the initial netns' values still" 0 "$init0" ""

# --- --netns-pid -----------------------------------------------------------

ip netns exec "$nsb" sleep 600 &
sleeper=$!
want=$(ip netns exec "$nsb" readlink /proc/self/ns/net)
for _ in $(seq 100); do
	[ "$(readlink "/proc/$sleeper/ns/net" 2>/dev/null)" = "$want" ] && break
	sleep 0.1
done
same "a process sleeps in netns B" \
	"$(readlink "/proc/$sleeper/ns/net")" "$want"
tool tune --netns-pid "$sleeper"
expect "tune --netns-pid prints that process' netns values" \
	0 "$b0" ""
tool tune --netns-pid "$sleeper" --synack-retries 7 --syn-retries 4
exp="tcp_synack_retries: $(old "$b0" tcp_synack_retries) -> 7
tcp_syn_retries: $(old "$b0" tcp_syn_retries) -> 4"
expect "tune --netns-pid PID ... writes" 0 "$exp" ""
b1=$(printf '%s\n' "$b0" | sed -e 's/^\(tcp_synack_retries\): .*/\1: 7/' \
	-e 's/^\(tcp_syn_retries\): .*/\1: 4/')
same "the values changed in netns B" "$(values "$nsb")" "$b1"
same "the values did not change in netns A" "$(values "$nsa")" "$a1"
same "the values did not change in the initial netns" \
	"$(values "")" "$init0"

# --- the limits ------------------------------------------------------------

f=/proc/sys/net/ipv4/tcp_syn_retries
check "the kernel refuses tcp_syn_retries 128" \
	ip netns exec "$nsa" sh -c "! echo 128 > $f" 2>/dev/null
check "the kernel takes tcp_syn_retries 127" \
	ip netns exec "$nsa" sh -c "echo 127 > $f && [ \$(cat $f) = 127 ]"
ip netns exec "$nsa" sh -c "echo 3 > $f"
tool tune --netns "$nsa" --somaxconn 32 --syn-retries 128
expect "tune refuses --syn-retries 128 before writing anything" 2 "" \
	"tcptracectl: --syn-retries 128: out of range 1..127 (tcp_syn_retries)"
same "  and nothing changed" "$(values "$nsa")" "$a1"
tool tune --netns "$nsa" --syn-retries 127
expect "tune takes --syn-retries 127" \
	0 "tcp_syn_retries: 3 -> 127" ""
tool tune --netns "$nsa" --syn-retries 3
tool tune --netns "$nsa" --syn-retries 0
expect "tune refuses --syn-retries 0 (as the kernel does)" 2 "" \
	"tcptracectl: --syn-retries 0: out of range 1..127 (tcp_syn_retries)"

f=/proc/sys/net/ipv4/tcp_synack_retries
check "the kernel refuses tcp_synack_retries 256" \
	ip netns exec "$nsa" sh -c "! echo 256 > $f" 2>/dev/null
tool tune --netns "$nsa" --synack-retries 256
expect "tune refuses --synack-retries 256" 2 "" \
	"tcptracectl: --synack-retries 256: out of range 0..255 (tcp_synack_retries)"

f=/proc/sys/net/core/somaxconn
check "the kernel refuses somaxconn -1" \
	ip netns exec "$nsa" sh -c "! echo -1 > $f" 2>/dev/null
tool tune --netns "$nsa" --somaxconn -1
expect "tune refuses --somaxconn -1" 2 "" \
	"tcptracectl: --somaxconn -1: out of range 0..2147483647 (somaxconn)"

f=/proc/sys/net/ipv4/tcp_max_syn_backlog
check "the kernel takes a negative tcp_max_syn_backlog" \
	ip netns exec "$nsa" sh -c "echo -5 > $f && [ \$(cat $f) = -5 ]"
ip netns exec "$nsa" sh -c "echo 16 > $f"
tool tune --netns "$nsa" --somaxconn 32 --max-syn-backlog -5
expect "tune refuses --max-syn-backlog -5" 2 "" \
	"tcptracectl: --max-syn-backlog -5: out of range 1..2147483647 (tcp_max_syn_backlog)"
tool tune --netns "$nsa" --max-syn-backlog 0
expect "tune refuses --max-syn-backlog 0" 2 "" \
	"tcptracectl: --max-syn-backlog 0: out of range 1..2147483647 (tcp_max_syn_backlog)"
tool tune --netns "$nsa" --abort-on-overflow 2
expect "tune refuses --abort-on-overflow 2" 2 "" \
	"tcptracectl: --abort-on-overflow 2: out of range 0..1 (tcp_abort_on_overflow)"
same "netns A is unchanged by the refused values" \
	"$(values "$nsa")" "$a1"

# --- a real failure half-way -----------------------------------------------

# tcp_max_syn_backlog read-only (a read-only bind mount, private to the mount
# namespace 'ip netns exec' makes): the three writes before it are undone.
f=/proc/sys/net/ipv4/tcp_max_syn_backlog
# shellcheck disable=SC2016
out=$(ip netns exec "$nsa" sh -c 'mount --bind "$1" "$1" &&
	mount -o remount,bind,ro "$1" && exec "$2" tune --synack-retries 9 \
	--syn-retries 9 --somaxconn 99 --max-syn-backlog 99 \
	--abort-on-overflow 0' sh "$f" "$tool" 2>"$tmp/err")
rc=$?
err=$(cat "$tmp/err")
expect "a failed write is rolled back, the last written first" 1 "" \
	"tcptracectl: cannot write 99 to $f: Read-only file system
tcptracectl: rolled back somaxconn to 16
tcptracectl: rolled back tcp_syn_retries to 3
tcptracectl: rolled back tcp_synack_retries to 2"
same "  and netns A is as it was" "$(values "$nsa")" "$a1"
check "  and the bind mount is gone with its mount namespace" \
	ip netns exec "$nsa" sh -c "echo 16 > $f"

# --- errors ----------------------------------------------------------------

tool tune --netns "tt_tune_none_$$" --somaxconn 8
expect "a missing netns is named" 1 "" \
	"tcptracectl: network namespace 'tt_tune_none_$$' not found: no /run/netns/tt_tune_none_$$ (see 'ip netns list')"
tool tune --netns "$nsa" --netns-pid "$sleeper" --somaxconn 8
expect "--netns with --netns-pid is a usage error" 2 "" \
	"tcptracectl: tune: --netns and --netns-pid cannot be used together"
same "  and nothing changed" \
	"$(values "$nsa")$(values "$nsb")$(values "")" "$a1$b1$init0"

if command -v setpriv >/dev/null; then
	nobody="setpriv --reuid 65534 --regid 65534 --clear-groups"
	out=$($nobody "$tool" tune --synack-retries 1 2>"$tmp/err")
	rc=$?
	err=$(cat "$tmp/err")
	expect "without root: permission denied" 1 "" \
		"tcptracectl: permission denied writing /proc/sys/net/ipv4/tcp_synack_retries: run as root"
	out=$($nobody "$tool" tune --netns "$nsa" 2>"$tmp/err")
	rc=$?
	err=$(cat "$tmp/err")
	expect "without root: --netns is denied" 1 "" \
		"tcptracectl: permission denied entering network namespace '$nsa': run as root"
fi
same "the initial netns is as it was" "$(values "")" "$init0"

finish
