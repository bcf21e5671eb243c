#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# rmmod/insmod tcptrace ROUNDS times (default 20) while connections run
# without a pause in a namespace of their own and a reader has the device
# open.  Each round: insmod, start a reader (tcptracectl watch, or cat when
# the tool is not built, and cat every other round), check that rmmod is
# refused while the device is open, kill the reader (SIGTERM or SIGKILL),
# rmmod.  Kernel warnings are caught by the machine running the test (the
# VM harness checks dmesg); the taint flags are checked here at the end.
#
# Needs root.  TCPTRACE_KO: the module (default ../module/tcptrace.ko).
# Prints TAP; exits non-zero when a round failed.

set -u

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
ko=${TCPTRACE_KO:-$repo/module/tcptrace.ko}
tool=$repo/userspace/tcptracectl
rounds=${ROUNDS:-20}
ns=tt_reload_$$
tmp=$(mktemp -d)
traffic_pid=
reader_pid=
was_loaded=0
pass=0
fail=0
n=0

ok() {
	n=$((n + 1))
	pass=$((pass + 1))
	echo "ok $n $*"
}

not_ok() {
	n=$((n + 1))
	fail=$((fail + 1))
	echo "not ok $n $*"
}

module_loaded() {
	[ -d /sys/module/tcptrace ]
}

cleanup() {
	# not waited for: it may be stuck for good
	[ -n "$reader_pid" ] && kill -KILL "$reader_pid" 2>/dev/null
	[ -n "$traffic_pid" ] && kill -TERM "$traffic_pid" 2>/dev/null && wait "$traffic_pid" 2>/dev/null
	ip netns del "$ns" 2>/dev/null
	rm -rf "$tmp"
	# leave the module as the tests found it (with default parameters)
	if [ "$was_loaded" = 1 ] && ! module_loaded; then
		insmod "$ko" || echo "# could not load $ko again"
	fi
}
trap cleanup EXIT

echo "TAP version 13"
echo "1..$((rounds + 2))"

if [ "$(id -u)" != 0 ]; then
	echo "# SKIP: needs root"
	echo "# Totals: pass:0 fail:0 xfail:0 xpass:0 skip:1 error:0"
	exit 4
fi
if [ ! -r "$ko" ]; then
	echo "Bail out! $ko not found (build it, or set TCPTRACE_KO)"
	echo "# Totals: pass:0 fail:1 xfail:0 xpass:0 skip:0 error:0"
	exit 1
fi
module_loaded && was_loaded=1

# Connections over loopback, IPv4 and IPv6, as fast as they go, for at most
# 10 minutes; each one a whole handshake and teardown.
ip netns add "$ns" || exit 1
ip -n "$ns" link set lo up
ip netns exec "$ns" python3 -c '
import socket, time
end = time.monotonic() + 600
ls = []
for fam, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    l = socket.socket(fam, socket.SOCK_STREAM)
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((addr, 7000))
    l.listen(64)
    ls.append((fam, addr, l))
while time.monotonic() < end:
    for fam, addr, l in ls:
        c = socket.create_connection((addr, 7000))
        a, _ = l.accept()
        c.sendall(b"x")
        a.recv(1)
        c.close()
        a.recv(1)
        a.close()
' &
traffic_pid=$!

# Shows where a task is stuck: its kernel stack and the kernel's last words.
show_stuck() {
	echo "# $2 (pid $1) is stuck; its kernel stack:"
	sed 's/^/#   /' "/proc/$1/stack" 2>/dev/null
	dmesg | tail -20 | sed 's/^/#   /'
}

# Runs a module command with a time limit; a hang is a failure.
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

# Waits up to 10 s for a killed reader to go away.
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

module_loaded && { rmmod_retry || echo "# could not unload tcptrace"; }

for round in $(seq "$rounds"); do
	out=$tmp/out.$round
	why=
	if ! modcmd insmod "$ko"; then
		not_ok "round $round: insmod failed"
		continue
	fi
	if [ -x "$tool" ] && [ $((round % 2)) = 1 ]; then
		reader="tcptracectl watch"
		"$tool" watch >"$out" 2>"$out.err" &
		sig=TERM
	else
		reader="cat"
		cat /dev/tcptrace >"$out" 2>"$out.err" &
		sig=KILL
	fi
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
	elif [ "$reader" = cat ] && [ $((size % 128)) != 0 ]; then
		why="$why; cat read $size bytes, not whole 128-byte records"
	fi
	if [ -n "$why" ]; then
		not_ok "round $round ($reader, SIG$sig) ${why#; }"
	else
		ok "round $round ($reader, SIG$sig, $size bytes)"
	fi
done

if kill -0 "$traffic_pid" 2>/dev/null; then
	ok "traffic kept running through the reloads"
else
	not_ok "traffic generator died"
fi

taint=$(cat /proc/sys/kernel/tainted)
# O (out-of-tree, 4096) and E (unsigned, 8192) are expected
if [ $((taint & ~(4096 | 8192))) = 0 ]; then
	ok "kernel not tainted (tainted=$taint)"
else
	not_ok "kernel tainted: $taint"
	dmesg | tail -40 | sed 's/^/# /'
fi

echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:0 error:0"
[ "$fail" = 0 ]
