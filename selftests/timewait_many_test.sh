#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# TIME_WAIT durations with many timewait sockets at once, on a live
# kernel.  In a namespace of its own, a process makes COUNT (default 12000)
# connections over loopback, each closed by the client first, so that each
# leaves a timewait socket; the namespace allows 262144 of them
# (tcp_max_tw_buckets) and reuses none of their ports (tcp_tw_reuse 0).  When the process exits the namespace goes and its
# exit kills every timewait socket at once.  tcptracectl watch --json
# reads the device all along, as a user would run it, and every
# timewait_end line must carry duration_ns, its time less its timewait
# record's.
#
# The module is loaded again for the test with rings of BUF_RECORDS
# (default 65536) records a CPU, enough for the 12000 ends of the
# namespace's exit even if the reader does not run meanwhile: under
# single-threaded emulation (make check) one vCPU may run for a long time
# while the other waits.  With the default rings and vCPUs in parallel
# (BUF_RECORDS=4096, QEMU -accel tcg,thread=multi) nothing is lost either,
# which takes the reading thread's pause for POLLPRI (see tcptrace(4)).  The
# default parameters are back at the end.  (When the tool kept the starts in its ISN table, 8192 entries,
# the older sockets' ends lost their duration.)
#
# Needs root, python3 and tcptracectl, and the module: TCPTRACE_KO (default
# ../module/tcptrace.ko) is loaded when it is not.  Prints TAP; exits
# non-zero when a case failed.

set -u

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=selftests/lib.sh
. "$here/lib.sh"

count=${COUNT:-12000}
bufrec=${BUF_RECORDS:-65536}
port=7313
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
watch_pid=

at_exit() {
	if [ -n "$watch_pid" ]; then
		kill -KILL "$watch_pid" 2>/dev/null
		wait "$watch_pid" 2>/dev/null
	fi
	rm -rf "$tmp"
	module_loaded && rmmod_retry
	insmod "$ko" || echo "# could not load $ko again"
}

tap_start
need_root
plan 6
[ -x "$tool" ] || bail "$tool not built (make tool)"
if module_loaded; then
	rmmod_retry || bail "cannot unload the module to load it with buf_records=$bufrec"
fi
trap at_exit EXIT
insmod "$ko" buf_records="$bufrec" || bail "insmod $ko buf_records=$bufrec failed"
"$tool" watch --json -p "$port" >"$tmp/json" 2>"$tmp/watch.err" &
watch_pid=$!

start=$SECONDS
python3 - "$count" "$port" >"$tmp/conns" 2>&1 <<'EOF'
import ctypes, os, socket, subprocess, sys, time

count, port = (int(a) for a in sys.argv[1:3])
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def sysctl(name, value):
    with open("/proc/sys/net/ipv4/" + name, "w") as f:
        f.write(value)


def timewait_sockets():
    """timewait sockets, by their timer (03): in TIME_WAIT, or in
    FIN_WAIT2 until the server's FIN comes (sent again if it was lost in
    a race with the client socket's change)"""
    with open("/proc/net/tcp") as f:
        return sum(line.split()[5].startswith("03:")
                   for line in f.readlines()[1:])


pid = os.fork()
if pid == 0:
    try:
        if libc.unshare(CLONE_NEWNET):
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        sysctl("tcp_max_tw_buckets", "262144")
        sysctl("ip_local_port_range", "1024 65535")
        # no port of a timewait socket taken again (loopback allows it by
        # default): each socket lasts until the namespace goes
        sysctl("tcp_tw_reuse", "0")
        lsn = socket.socket()
        lsn.bind(("127.0.0.1", port))
        lsn.listen(64)
        for _ in range(count):
            c = socket.create_connection(("127.0.0.1", port))
            a, _ = lsn.accept()
            c.close()           # the client's FIN first
            a.recv(1)           # its end of file
            a.close()           # then the server's: the client's TIME_WAIT
        # the last FINs may still be on their way
        end = time.monotonic() + 30
        while timewait_sockets() < count and time.monotonic() < end:
            time.sleep(0.1)
        print("timewait sockets %d" % timewait_sockets(), flush=True)
        os._exit(0)
    except BaseException as e:
        print("child: %r" % e, flush=True)
        os._exit(1)
_, status = os.waitpid(pid, 0)
print("exit %d" % os.waitstatus_to_exitcode(status))
EOF
secs=$((SECONDS - start))
tws=$(sed -n 's/^timewait sockets //p' "$tmp/conns")
made=0
[ "$(sed -n 's/^exit //p' "$tmp/conns")" = 0 ] && [ "${tws:-0}" = "$count" ] &&
	made=1
check "$count connections made, each leaving a timewait socket ($secs s; ${tws:-?} of them)" \
	[ "$made" = 1 ]
[ "$made" = 1 ] || sed 's/^/# /' "$tmp/conns" | head -10

# counts: of the lines watch wrote so far (the last may be cut short), as
# shell assignments: tw (timewait), ended (timewait_end), dur (ends whose
# duration_ns is their time less their start's), lost (LOST counts)
counts() {
	python3 -c '
import json, sys
c = {"tw": 0, "ended": 0, "dur": 0, "lost": 0}
start = {}
for line in open(sys.argv[1]):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    t = r["type"]
    if t == "timewait":
        c["tw"] += 1
        start[(r["sport"], r["dport"])] = r["ts_ns"]
    elif t == "timewait_end":
        c["ended"] += 1
        s = start.get((r["sport"], r["dport"]))
        c["dur"] += s is not None and r.get("duration_ns") == r["ts_ns"] - s
    elif t == "lost":
        c["lost"] += r["count"]
print(" ".join("%s=%d" % kv for kv in c.items()))
' "$tmp/json"
}

# the namespace is torn down by a work queue after its process exits
tw=0 ended=0 dur=0 lost=0
end=$((SECONDS + 120))
while [ "$SECONDS" -lt "$end" ]; do
	eval "$(counts)"
	[ "$ended" -ge "$count" ] && [ "$ended" = "$tw" ] && break
	sleep 2
done
# a signal ends the reading; what was read is still printed
kill -INT "$watch_pid"
wait "$watch_pid"
st=$?
watch_pid=
eval "$(counts)"
echo "# timewait $tw, ended $ended, with their duration $dur, lost $lost"
quiet=0
[ "$st" = 0 ] && [ ! -s "$tmp/watch.err" ] && quiet=1
check "watch ended with exit 0 ($st) and said nothing on stderr" \
	[ "$quiet" = 1 ]

stats_snap "$tmp/stats.json"
drops=$(stats_get drops)
check "no record dropped (drops $drops, LOST counts $lost)" \
	[ $((drops + lost)) = 0 ]
check "a timewait record for each connection ($tw, expected $count)" \
	[ "$tw" = "$count" ]
same "every timewait socket has its end record" "$ended" "$tw"
same "every end has its TIME_WAIT's duration, end less start" "$dur" "$ended"
sed 's/^/# watch: /' "$tmp/watch.err"
finish
