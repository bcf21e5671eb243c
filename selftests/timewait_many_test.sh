#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# TIME_WAIT durations with many timewait sockets at once, on a live
# kernel.  In a namespace of its own, a process makes COUNT (default 12000)
# connections over loopback, each closed by the client first, so that each
# leaves a timewait socket; the namespace allows 262144 of them
# (tcp_max_tw_buckets) and reuses none of their ports (tcp_tw_reuse 0).  When the process exits the namespace goes and its
# exit kills every timewait socket at once.  The device is drained by cat
# all along; then tcptracectl watch --json reads what it saved, and every
# timewait_end line must carry duration_ns, its time less its timewait
# record's.  (When the tool kept the starts in its ISN table, 8192 entries,
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
port=7313
tmp=$(mktemp -d)
reader_pid=

cleanup() {
	[ -n "$reader_pid" ] && kill -KILL "$reader_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

tap_start
need_root
plan 5
[ -x "$tool" ] || bail "$tool not built (make tool)"
module_loaded || insmod "$ko" || bail "insmod $ko failed"

"$tool" clear
cat /dev/tcptrace >"$tmp/raw" 2>"$tmp/raw.err" &
reader_pid=$!

start=$SECONDS
python3 - "$count" "$port" >"$tmp/conns" 2>&1 <<'EOF'
import ctypes, fcntl, os, socket, struct, sys, time

count, port = (int(a) for a in sys.argv[1:3])
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def lo_up():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ifr = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH14x", b"lo", 0))
    flags = struct.unpack("16sH14x", ifr)[1]
    fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    s.close()


def sysctl(name, value):
    with open("/proc/sys/net/ipv4/" + name, "w") as f:
        f.write(value)


def timewait_sockets():
    with open("/proc/net/tcp") as f:
        return sum(line.split()[3] == "06" for line in f.readlines()[1:])


pid = os.fork()
if pid == 0:
    try:
        if libc.unshare(CLONE_NEWNET):
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
        lo_up()
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

# counts: of the records of our port (the client's end), as shell
# assignments: tw (timewait), ended (timewait_end), dur (ends with a
# duration_ns that fits: after its start, before now), lost (LOST counts),
# and what watch said on stderr
counts() {
	"$tool" watch --json -i "$tmp/raw" -p "$port" 2>"$tmp/watch.err" |
		python3 -c '
import json, sys
c = {"tw": 0, "ended": 0, "dur": 0, "lost": 0}
start = {}
for line in sys.stdin:
    r = json.loads(line)
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
'
}

# the namespace is torn down by a work queue after its process exits
tw=0 ended=0 dur=0 lost=0
end=$((SECONDS + 120))
while [ "$SECONDS" -lt "$end" ]; do
	eval "$(counts)"
	[ "$ended" -ge "$count" ] && [ "$ended" = "$tw" ] && break
	sleep 2
done
kill -KILL "$reader_pid" 2>/dev/null
wait "$reader_pid" 2>/dev/null
reader_pid=
eval "$(counts)"
echo "# $(stat -c %s "$tmp/raw") bytes read; timewait $tw, ended $ended, with their duration $dur, lost $lost"

stats_snap "$tmp/stats.json"
drops=$(stats_get drops)
check "no record dropped (drops $drops, LOST counts $lost)" \
	[ $((drops + lost)) = 0 ]
check "a timewait record for each connection ($tw, expected $count)" \
	[ "$tw" = "$count" ]
same "every timewait socket has its end record" "$ended" "$tw"
same "every end has its TIME_WAIT's duration, end less start" "$dur" "$ended"
[ -s "$tmp/watch.err" ] && sed 's/^/# watch: /' "$tmp/watch.err"
finish
