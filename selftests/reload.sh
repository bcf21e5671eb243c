#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# rmmod/insmod tcptrace ROUNDS times (default 20; make stress: 200) while
# connections run without a pause in a namespace of their own and a reader
# has the device open.  Each round: insmod, start a reader, check that
# rmmod is refused while the device is open, let it read for a random time
# (0-2 s), wait until it sleeps inside its read(2) or poll(2) on the device
# (/proc/PID/syscall), kill it there, rmmod.  The readers take turns:
#   - cat: a blocking read(2);
#   - poll: python3 in poll(2) (select.poll) on a non-blocking open, then
#     reads what poll(2) announced;
#   - watch: tcptracectl watch, its reading thread in ppoll(2);
# each killed with SIGTERM and with SIGKILL (6 rounds make every pair).
# At the end: the traffic ran through, the kernel logged no WARNING, BUG or
# Oops since the start, and is not tainted but O/E.
#
# Needs root and python3.  TCPTRACE_KO: the module (default
# ../module/tcptrace.ko).  Leaves it loaded when it was.  Prints TAP; exits
# non-zero when a round failed.

set -u

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=selftests/lib.sh
. "$here/lib.sh"

rounds=${ROUNDS:-20}
ns=tt_reload_$$
tmp=$(mktemp -d)
reader_pid=
was_loaded=0
# the syscalls (x86_64 numbers) a reader sleeps in
sys_read=0
sys_poll=7
sys_ppoll=271

cleanup() {
	# not waited for: it may be stuck for good
	[ -n "$reader_pid" ] && kill -KILL "$reader_pid" 2>/dev/null
	traffic_stop
	ip netns del "$ns" 2>/dev/null
	rm -rf "$tmp"
	# leave the module as the tests found it (with default parameters)
	if [ "$was_loaded" = 1 ] && ! module_loaded; then
		insmod "$ko" || echo "# could not load $ko again"
	fi
}
trap cleanup EXIT

tap_start
need_root
plan $((rounds + 3))
[ -r "$ko" ] || bail "$ko not found (build it, or set TCPTRACE_KO)"
module_loaded && was_loaded=1
dmesg_mark

ip netns add "$ns" || bail "ip netns add $ns failed"
ip -n "$ns" link set lo up
# long enough for the slowest round (20 s), then it stops by itself
traffic_start "$ns" 7000 $((rounds * 20 + 120))

# The reader in poll(2): a non-blocking open, poll, then one read of what
# came; POLLERR (not the reader) ends it.
poll_reader='
import os, select, sys
fd = os.open("/dev/tcptrace", os.O_RDONLY | os.O_NONBLOCK)
p = select.poll()
p.register(fd, select.POLLIN)
while True:
    for _, ev in p.poll():
        if ev & select.POLLERR:
            sys.exit("POLLERR")
        try:
            data = os.read(fd, 128 * 64)
        except BlockingIOError:
            continue
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
'

# in_syscall PID NR...: waits up to 5 s until a thread of process PID
# sleeps in one of the syscalls NR (tcptracectl reads the device from a
# thread of its own); prints the syscall and the thread's wchan then.
in_syscall() {
	local pid=$1 tries=100 nr wchan want task

	shift
	while [ "$tries" -gt 0 ]; do
		for task in /proc/"$pid"/task/*; do
			nr=$(cut -d' ' -f1 "$task/syscall" 2>/dev/null)
			wchan=$(cat "$task/wchan" 2>/dev/null)
			for want in "$@"; do
				if [ "$nr" = "$want" ]; then
					echo "syscall $nr, wchan $wchan"
					return 0
				fi
			done
		done
		sleep 0.05
		tries=$((tries - 1))
	done
	echo "syscall ${nr:-?}, wchan ${wchan:-?}"
	return 1
}

module_loaded && { rmmod_retry || echo "# could not unload tcptrace"; }

kills_in=0
for round in $(seq "$rounds"); do
	out=$tmp/out.$round
	why=
	if ! modcmd insmod "$ko"; then
		not_ok "round $round: insmod failed"
		continue
	fi
	kind=$(((round - 1) % 3))
	if [ $((((round - 1) / 3) % 2)) = 0 ]; then
		sig=TERM
	else
		sig=KILL
	fi
	if [ "$kind" = 2 ] && [ ! -x "$tool" ]; then
		kind=0
	fi
	case $kind in
	0)
		reader="cat"
		calls=$sys_read
		cat /dev/tcptrace >"$out" 2>"$out.err" &
		;;
	1)
		reader="poll"
		# glibc's poll() may be ppoll(2)
		calls="$sys_poll $sys_ppoll"
		python3 -c "$poll_reader" >"$out" 2>"$out.err" &
		;;
	2)
		reader="tcptracectl watch"
		calls=$sys_ppoll
		"$tool" watch >"$out" 2>"$out.err" &
		;;
	esac
	reader_pid=$!
	# give the reader time to start and get records (slow under emulation)
	for _ in $(seq 100); do
		[ -s "$out" ] && break
		kill -0 "$reader_pid" 2>/dev/null || break
		sleep 0.1
	done
	if ! kill -0 "$reader_pid" 2>/dev/null; then
		why="$why; $reader exited early: $(head -c 200 "$out.err")"
	fi
	if modcmd rmmod tcptrace; then
		why="$why; rmmod succeeded while $reader had the device open"
	fi
	delay=$((RANDOM % 2000))
	sleep "$((delay / 1000)).$(printf %03d $((delay % 1000)))"
	# shellcheck disable=SC2086
	if where=$(in_syscall "$reader_pid" $calls); then
		kills_in=$((kills_in + 1))
	else
		why="$why; $reader not seen inside its syscall ($calls) to be killed: $where"
	fi
	kill -"$sig" "$reader_pid" 2>/dev/null
	if ! reap "$reader_pid" "$reader"; then
		not_ok "round $round ($reader, SIG$sig): the reader did not end"
		break
	fi
	reader_pid=
	if module_loaded && ! rmmod_retry; then
		why="$why; rmmod failed after $reader ended"
	fi
	if module_loaded; then
		why="$why; module still loaded"
	fi
	size=$(stat -c %s "$out")
	if [ "$size" -eq 0 ]; then
		why="$why; $reader read nothing under traffic"
	elif [ "$reader" != "tcptracectl watch" ] && [ $((size % 128)) != 0 ]; then
		why="$why; $reader read $size bytes, not whole 128-byte records"
	fi
	if [ -n "$why" ]; then
		not_ok "round $round ($reader, SIG$sig after ${delay} ms) ${why#; }"
	else
		ok "round $round ($reader, SIG$sig after ${delay} ms in $where, $size bytes)"
	fi
	rm -f "$out" "$out.err"
done
echo "# $kills_in of $rounds readers killed inside read(2)/poll(2)/ppoll(2)"

if kill -0 "$traffic_pid" 2>/dev/null; then
	ok "traffic kept running through the reloads"
else
	not_ok "traffic generator died"
fi
dmesg_check
taint_check
finish
