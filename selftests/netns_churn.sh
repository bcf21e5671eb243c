#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Network namespace churn with tcptrace loaded and a reader draining the
# device: NETNS namespaces (default 50), PAR at a time (default 2), each
# made by a process of its own (unshare), used and destroyed when that
# process exits.  In each one, over loopback, IPv4 and IPv6:
#   - a connection closed by the client, whose TIME_WAIT socket is still
#     there when the namespace goes: the namespace's exit kills it (the
#     child checks in /proc/net/tcp{,6} that it is a timewait socket
#     before it goes on, and again before it exits);
#   - a connection left established, with its listener, when the process
#     exits: the sockets close while the namespace is being torn down.
# Each namespace sets net.ipv4.tcp_rfc1337 to 1, so that its timewait
# sockets ignore resets: the server's delayed ACK of the client's FIN can
# leave one CPU just before its FIN leaves the other and arrive after it
# (loopback queues a segment on the CPU that sends it); the timewait
# socket answers that old ACK with an ACK of its own, the server's socket
# is gone by then and its listener answers with a RST, which kills a
# timewait socket when tcp_rfc1337 is 0, the default (RFC 1337's
# "TIME-WAIT assassination").  About once in a few thousand connections
# under emulation; tcptrace's records of one are in the README.
# tcptrace's per-namespace state (netfilter hooks, /proc/net entries) is
# made and freed once per namespace.  Checks that every namespace made its
# connections, that the records show each of them, and that every
# TIME_WAIT socket has its end record, killed with its namespace.  Leaks,
# use-after-free and lock order are for the kernel's checkers to see (make
# check-debug runs this under KASAN, lockdep and kmemleak).
#
# Then: no WARNING, BUG or Oops in the kernel log since the start, no taint
# but O/E.  A namespace that fails says why, with its TCP counters (resets
# sent, segments sent again, timewait sockets), and what tcptrace recorded
# in it follows the counts.
#
# Needs root, python3 and tcptracectl (to decode the records), and the
# module: TCPTRACE_KO (default ../module/tcptrace.ko) is loaded when it is
# not.  Prints TAP; exits non-zero when a case failed.

set -u

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=selftests/lib.sh
. "$here/lib.sh"

count=${NETNS:-50}
par=${PAR:-2}
port=7311
tmp=$(mktemp -d)
reader_pid=

cleanup() {
	[ -n "$reader_pid" ] && kill -KILL "$reader_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

tap_start
need_root
plan 7
[ -x "$tool" ] || bail "$tool not built (make tool)"
module_loaded || insmod "$ko" || bail "insmod $ko failed"
dmesg_mark

"$tool" clear
cat /dev/tcptrace >"$tmp/raw" 2>"$tmp/raw.err" &
reader_pid=$!

start=$SECONDS
python3 - "$count" "$par" "$port" >"$tmp/churn" 2>&1 <<'EOF'
import ctypes, fcntl, os, socket, struct, sys, time

count, par, port = (int(a) for a in sys.argv[1:4])
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def lo_up():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ifr = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH14x", b"lo", 0))
    flags = struct.unpack("16sH14x", ifr)[1]
    fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    s.close()


def tcp_sockets():
    """(family, local, remote, state, timer) of every TCP socket of this
    namespace, as /proc/net/tcp{,6} show them (hex).  A timewait socket
    shows its substate: TIME_WAIT, or FIN_WAIT2 until the peer's FIN comes
    (a FIN lost in a race with the socket's change is sent again); its
    timer is 03, the timewait timer."""
    socks = []
    for fam, f in ((4, "/proc/net/tcp"), (6, "/proc/net/tcp6")):
        with open(f) as fh:
            for line in fh.readlines()[1:]:
                v = line.split()
                socks.append((fam, v[1], v[2], v[3], v[5].split(":")[0]))
    return socks


def tcp_counters():
    """The namespace's TCP counters that tell how a socket ended: resets
    sent, segments sent again, timewait sockets recycled or ended."""
    keep = {"OutRsts", "RetransSegs", "EstabResets", "TW", "TWRecycled",
            "TWKilled", "TCPTimeWaitOverflow"}
    out = {}
    for f in ("/proc/net/snmp", "/proc/net/netstat"):
        with open(f) as fh:
            lines = [line.split() for line in fh]
        for names, values in zip(lines[::2], lines[1::2]):
            if names[0] in ("Tcp:", "TcpExt:"):
                out.update((n, int(v)) for n, v in zip(names[1:], values[1:])
                           if n in keep)
    return out


def wait_timewait(ports, what):
    """wait until the sockets of these (family, local port) are all
    timewait sockets"""
    end = time.monotonic() + 30
    while True:
        socks = tcp_sockets()
        tw = {(fam, int(local.rsplit(":", 1)[1], 16))
              for fam, local, _, _, timer in socks if timer == "03"}
        if ports <= tw:
            return
        if time.monotonic() > end:
            raise RuntimeError("%s: %s not all timewait sockets after 30 s;"
                               " sockets (family local remote state timer):"
                               " %s; counters %s" % (what, sorted(ports),
                                                     socks, tcp_counters()))
        time.sleep(0.05)


def child():
    if libc.unshare(CLONE_NEWNET):
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
    lo_up()
    # a late ACK's reset must not kill a timewait socket (see the top)
    with open("/proc/sys/net/ipv4/tcp_rfc1337", "w") as f:
        f.write("1")
    keep, closed = [], set()
    for fam, addr in ((4, "127.0.0.1"), (6, "::1")):
        lsn = socket.socket(socket.AF_INET if fam == 4 else socket.AF_INET6,
                            socket.SOCK_STREAM)
        lsn.bind((addr, port))
        lsn.listen(4)
        c = socket.create_connection((addr, port))
        a, _ = lsn.accept()
        c.sendall(b"x")
        a.recv(1)
        cport = (fam, c.getsockname()[1])
        c.close()
        a.recv(1)
        a.close()
        closed.add(cport)
        wait_timewait({cport}, "after the close")
        c = socket.create_connection((addr, port))
        a, _ = lsn.accept()
        keep += [lsn, c, a]
    # still there: nothing (a reused port, say) ended them early
    wait_timewait(closed, "at the end")


procs, started, failed = set(), 0, 0
while started < count or procs:
    while started < count and len(procs) < par:
        pid = os.fork()
        if pid == 0:
            try:
                child()
                os._exit(0)
            except BaseException as e:
                try:
                    ino = os.stat("/proc/self/ns/net").st_ino
                except OSError:
                    ino = 0
                print("namespace %d (net:[%d]): %r" % (started, ino, e),
                      flush=True)
                os._exit(1)
        procs.add(pid)
        started += 1
    pid, status = os.wait()
    procs.discard(pid)
    if status:
        failed += 1
print("failed %d" % failed)
EOF
py=$?
churn_secs=$((SECONDS - start))

failed=$(sed -n 's/^failed //p' "$tmp/churn")
if [ "$py" = 0 ] && [ "$failed" = 0 ]; then
	ok "$count namespaces made their connections ($churn_secs s)"
else
	not_ok "namespaces failed: exit $py, ${failed:-?} of $count"
	sed 's/^/# /' "$tmp/churn" | head -20
fi

# counts: the records of our port, from the JSON, as shell assignments:
# est (ESTABLISHED), tw (TIME_WAIT), ended (their ends), killed (ended by
# the namespace's exit), lost (the counts of the LOST records)
counts() {
	"$tool" watch --json -i "$tmp/raw" -p "$port" 2>/dev/null | python3 -c '
import json, sys
c = {"tw": 0, "killed": 0, "ended": 0, "est": 0, "lost": 0}
for line in sys.stdin:
    r = json.loads(line)
    t = r["type"]
    if t == "timewait":
        c["tw"] += 1
    elif t == "timewait_end":
        c["ended"] += 1
        c["killed"] += r.get("end") == "killed"
    elif t == "state" and r.get("new_state") == "ESTABLISHED":
        c["est"] += 1
    elif t == "lost":
        c["lost"] += r["count"]
print(" ".join("%s=%d" % kv for kv in c.items()))
'
}

# The namespaces are torn down by a work queue after their process exits:
# wait for the end of all their TIME_WAIT sockets.
est=0 tw=0 ended=0 killed=0 lost=0
end=$((SECONDS + 120 + count / 4))
while [ "$SECONDS" -lt "$end" ]; do
	eval "$(counts)"
	[ "$killed" -ge $((2 * count)) ] && [ "$ended" = "$tw" ] && break
	sleep 2
done
kill -KILL "$reader_pid" 2>/dev/null
wait "$reader_pid" 2>/dev/null
reader_pid=
eval "$(counts)"

echo "# $(stat -c %s "$tmp/raw") bytes read; ESTABLISHED $est, TIME_WAIT $tw, ended $ended (killed $killed), lost $lost"
# what tcptrace recorded in the namespaces that failed
for ino in $(sed -n 's/^namespace [0-9]* (net:\[\([0-9]*\)\]).*/\1/p' "$tmp/churn" | head -3); do
	echo "# the records of net:[$ino]:"
	"$tool" watch -i "$tmp/raw" -n "$ino" -p "$port" 2>&1 | head -60 | sed 's/^/#   /'
done
stats_snap "$tmp/stats.json"
drops=$(stats_get drops)
check "no record dropped (drops $drops, LOST counts $lost)" \
	[ $((drops + lost)) = 0 ]
# 2 connections per family, both sides: 8 ESTABLISHED per namespace
check "every connection reached ESTABLISHED in the records ($est, expected $((8 * count)))" \
	[ "$est" = $((8 * count)) ]
# the first connection of each family is in TIME_WAIT when the namespace
# goes; the kept one may get there too as its process exits
tw_ok=0
[ "$tw" -ge $((2 * count)) ] && [ "$killed" = "$tw" ] && tw_ok=1
check "TIME_WAIT sockets ($tw) at least 2 per namespace, all killed with it ($killed)" \
	[ "$tw_ok" = 1 ]
same "every TIME_WAIT socket has its end record" "$ended" "$tw"
dmesg_check
taint_check
finish
