# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# Shell helpers of the tcptrace selftest scripts, sourced (not run):
#
#   here=$(cd "$(dirname "$0")" && pwd)
#   . "$here/lib.sh"
#
# Sets repo, ko (TCPTRACE_KO, default ../module/tcptrace.ko) and tool
# (userspace/tcptracectl) unless the script set them first.  TAP: plan, ok,
# not_ok, skip, check, same, bail and finish keep the counts that finish
# prints as the "# Totals:" line run_all.sh reads.  Then the module
# (module_loaded, modcmd, rmmod_retry), tasks that may be stuck in the
# kernel (show_stuck, reap), the kernel's state (taint_check, dmesg_mark,
# dmesg_check, meminfo_kb), tcptracectl stats (stats_snap, stats_get) and
# connection traffic (traffic_start, traffic_stop).

repo=${repo:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
ko=${ko:-${TCPTRACE_KO:-$repo/module/tcptrace.ko}}
tool=${tool:-$repo/userspace/tcptracectl}

pass=0
fail=0
skip=0
n=0
tt_planned=0

# ---- TAP --------------------------------------------------------------------

tap_start() {
	echo "TAP version 13"
}

# plan N: the number of cases, when known before they run (else finish
# prints the plan)
plan() {
	echo "1..$1"
	tt_planned=1
}

ok() {
	n=$((n + 1))
	pass=$((pass + 1))
	echo "ok $n - $*"
}

not_ok() {
	n=$((n + 1))
	fail=$((fail + 1))
	echo "not ok $n - $*"
}

skip() {
	n=$((n + 1))
	skip=$((skip + 1))
	echo "ok $n # SKIP $*"
}

# check DESC COMMAND...: one case, passed when COMMAND succeeds.
check() {
	local desc=$1

	shift
	if "$@"; then
		ok "$desc"
	else
		not_ok "$desc"
	fi
}

# same DESC GOT EXPECTED: one case, passed when GOT is EXPECTED; returns 1
# when it is not.
same() {
	if [ "$2" = "$3" ]; then
		ok "$1"
	else
		not_ok "$1"
		printf '%s\n' "$2" | sed 's/^/#   got:      /'
		printf '%s\n' "$3" | sed 's/^/#   expected: /'
		return 1
	fi
}

# finish: the totals; exits non-zero when a case failed or none passed
# (a script whose cases were all skipped exits 4, as kselftest does).
finish() {
	[ "$tt_planned" = 1 ] || echo "1..$n"
	echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:$skip error:0"
	[ "$fail" = 0 ] || exit 1
	[ "$pass" = 0 ] && [ "$skip" -gt 0 ] && exit 4
	exit 0
}

# bail REASON: the script cannot go on; counted as one failure.
bail() {
	echo "Bail out! $*"
	fail=$((fail + 1))
	finish
}

# need_root: skip the whole script when not root.
need_root() {
	if [ "$(id -u)" != 0 ]; then
		echo "# SKIP: needs root (run it in the VM: selftests/vm/run -- $0)"
		skip=$((skip + 1))
		finish
	fi
}

# ---- the module -------------------------------------------------------------

module_loaded() {
	[ -d /sys/module/tcptrace ]
}

# show_stuck PID WHAT: where a task is stuck, its kernel stack and the
# kernel's last words.
show_stuck() {
	echo "# $2 (pid $1) is stuck; its kernel stack:"
	sed 's/^/#   /' "/proc/$1/stack" 2>/dev/null
	dmesg | tail -20 | sed 's/^/#   /'
}

# modcmd COMMAND...: a module command with a 20 s limit; a hang returns 99.
modcmd() {
	local pid tries=200

	"$@" 2>/dev/null &
	pid=$!
	while kill -0 "$pid" 2>/dev/null && [ "$tries" -gt 0 ]; do
		sleep 0.1
		tries=$((tries - 1))
	done
	if kill -0 "$pid" 2>/dev/null; then
		show_stuck "$pid" "$*"
		return 99
	fi
	wait "$pid"
}

# rmmod_retry: rmmod tcptrace, retried for 5 s while the module is busy.
rmmod_retry() {
	local tries=50 ret

	while [ "$tries" -gt 0 ]; do
		modcmd rmmod tcptrace
		ret=$?
		[ "$ret" = 0 ] && return 0
		[ "$ret" = 99 ] && return 1
		sleep 0.1
		tries=$((tries - 1))
	done
	return 1
}

# reap PID WHAT: waits up to 10 s for a killed child to end.
reap() {
	local tries=100

	while [ -d "/proc/$1" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ] &&
	      [ "$tries" -gt 0 ]; do
		sleep 0.1
		tries=$((tries - 1))
	done
	if [ "$tries" = 0 ]; then
		show_stuck "$1" "$2"
		return 1
	fi
	wait "$1" 2>/dev/null
	return 0
}

# ---- the kernel's state -----------------------------------------------------

# taint_check: one case, passed when the kernel has no taint flag but O
# (out-of-tree module, 4096) and E (unsigned module, 8192).
taint_check() {
	local taint

	taint=$(cat /proc/sys/kernel/tainted)
	if [ $((taint & ~(4096 | 8192))) = 0 ]; then
		ok "kernel not tainted but O/E (tainted=$taint)"
	else
		not_ok "kernel tainted: $taint (flags other than O and E: $((taint & ~(4096 | 8192))))"
		dmesg | tail -40 | sed 's/^/# /'
	fi
}

tt_dmesg_mark=

# dmesg_mark: writes a line to the kernel log; dmesg_check looks after it.
dmesg_mark() {
	tt_dmesg_mark="tcptrace selftest ${0##*/} $$ start $(date +%s%N)"
	echo "$tt_dmesg_mark" >/dev/kmsg
}

# dmesg_check: one case, passed when the kernel logged no WARNING, BUG,
# Oops, GPF or call trace since dmesg_mark (the whole log if the mark has
# left the ring buffer).
dmesg_check() {
	local bad

	bad=$(dmesg | awk -v m="$tt_dmesg_mark" '
		index($0, m) { delete l; c = 0; next }
		{ l[++c] = $0 }
		END { for (i = 1; i <= c; i++) print l[i] }' |
		grep -E 'WARNING:|BUG:|Oops|general protection|Call Trace|RIP:')
	if [ -z "$bad" ]; then
		ok "no WARNING, BUG or Oops in the kernel log"
	else
		not_ok "the kernel logged $(printf '%s\n' "$bad" | wc -l) WARNING/BUG/Oops lines"
		printf '%s\n' "$bad" | head -20 | sed 's/^/#   /'
	fi
}

# meminfo_kb FIELD: a /proc/meminfo value, in kB.
meminfo_kb() {
	awk -v f="$1:" '$1 == f { print $2; exit }' /proc/meminfo
}

# ---- tcptracectl stats ------------------------------------------------------

tt_stats_file=

# stats_snap [FILE]: saves tcptracectl stats --json in FILE (default: a
# file of the last call, or a new temporary one).
stats_snap() {
	tt_stats_file=${1:-${tt_stats_file:-$(mktemp)}}
	"$tool" stats --json >"$tt_stats_file"
}

# stats_get NAME [FILE]: a counter of the last snapshot; per_type.TYPE for
# the count of a record type.
stats_get() {
	python3 -c '
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v[k]
print(v)' "${2:-$tt_stats_file}" "$1"
}

# ---- traffic ----------------------------------------------------------------

traffic_pid=

# traffic_start NS PORT SECS: connections over loopback in netns NS, IPv4
# and IPv6, as fast as they go, for at most SECS seconds; each one a whole
# handshake, one byte each way and a teardown started by the client.
# Sets traffic_pid.
traffic_start() {
	ip netns exec "$1" python3 -c '
import socket, sys, time
port, end = int(sys.argv[1]), time.monotonic() + int(sys.argv[2])
ls = []
for fam, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    l = socket.socket(fam, socket.SOCK_STREAM)
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((addr, port))
    l.listen(64)
    ls.append((fam, addr, l))
while time.monotonic() < end:
    for fam, addr, l in ls:
        c = socket.create_connection((addr, port))
        a, _ = l.accept()
        c.sendall(b"x")
        a.recv(1)
        c.close()
        a.recv(1)
        a.close()
' "$2" "$3" &
	traffic_pid=$!
}

# traffic_stop: ends the traffic of traffic_start.
traffic_stop() {
	if [ -n "$traffic_pid" ]; then
		kill -TERM "$traffic_pid" 2>/dev/null
		wait "$traffic_pid" 2>/dev/null
	fi
	traffic_pid=
}

# ---- running other tests ----------------------------------------------------

# run_tests TEST...: each test through run_all.sh (its TAP shown), timed;
# adds its totals to pass/fail/skip (a test without totals is one failure)
# and its seconds to $times (" test:Ns ...").
times=
run_tests() {
	local t t0 line f skipped out

	out=$(mktemp)
	for t in "$@"; do
		t0=$SECONDS
		"$repo/selftests/run_all.sh" "$t" | tee "$out"
		times="$times $t:$((SECONDS - t0))s"
		line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
		skipped=$(sed -nE 's/^# Totals: .* skip:([0-9]+).*/\1/p' "$out" | tail -n 1)
		if [ -n "$line" ]; then
			pass=$((pass + ${line%% passed*}))
			f=${line#*passed, }
			fail=$((fail + ${f%% failed*}))
			skip=$((skip + ${skipped:-0}))
		else
			not_ok "$t: run_all.sh gave no totals"
		fi
	done
	rm -f "$out"
}
