#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The demo, run as root in the guest (make demo): load tcptrace, make real
# TCP connections between two network namespaces joined by veth, and show
# what tcptracectl watch recorded.
#   1. client connects, sends, the client closes first
#   2. client connects, the server closes first
#   3. a connection refused (no listener)
set -euo pipefail
cd "$(dirname "$0")/.."

ko=${TCPTRACE_KO:-module/tcptrace.ko}
ctl=userspace/tcptracectl
out=$(mktemp)
cleanup() {
	[ -n "${watch_pid:-}" ] && kill -INT "$watch_pid" 2>/dev/null && wait "$watch_pid" || true
	ip netns del demo_cli 2>/dev/null || true
	ip netns del demo_srv 2>/dev/null || true
	rm -f "$out"
}
trap cleanup EXIT

grep -q '^tcptrace ' /proc/modules || insmod "$ko"

ip netns add demo_cli
ip netns add demo_srv
ip link add va netns demo_cli type veth peer name vb netns demo_srv
ip -n demo_cli addr add 10.7.0.1/24 dev va
ip -n demo_srv addr add 10.7.0.2/24 dev vb
for ns in demo_cli demo_srv; do
	ip -n $ns link set lo up
done
ip -n demo_cli link set va up
ip -n demo_srv link set vb up

echo "== client netns inode $(ip netns exec demo_cli stat -L -c %i /proc/self/ns/net)," \
     "server netns inode $(ip netns exec demo_srv stat -L -c %i /proc/self/ns/net)"
"$ctl" clear
"$ctl" watch >"$out" &
watch_pid=$!
sleep 0.5

# A server that answers each connection, closing first when asked to.
ip netns exec demo_srv python3 - <<'PY' &
import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.7.0.2", 8080)); s.listen(8)
for _ in range(2):
    c, _ = s.accept()
    req = c.recv(100)
    c.sendall(b"hello from the server\n")
    if req.startswith(b"server-closes"):
        c.close()
    else:
        while c.recv(100):
            pass
        time.sleep(0.3)
        c.close()
s.close()
PY
srv_pid=$!
for _ in $(seq 100); do
	ip netns exec demo_srv ss -Hltn 'sport = :8080' | grep -q . && break
	sleep 0.1
done

ip netns exec demo_cli python3 - <<'PY'
import socket, time
for who in ("client-closes", "server-closes"):
    c = socket.create_connection(("10.7.0.2", 8080))
    c.sendall(who.encode() + b"\n")
    c.recv(100)
    if who == "server-closes":
        while c.recv(100):
            pass
        time.sleep(0.3)
    c.close()
    time.sleep(0.5)
try:
    socket.create_connection(("10.7.0.2", 9), timeout=2)
except OSError as e:
    print("== refused as expected:", e)
PY
wait "$srv_pid"
sleep 1
kill -INT "$watch_pid"
wait "$watch_pid" || true
watch_pid=

echo "== what tcptrace recorded (tcptracectl watch):"
cat "$out"
echo "== counters (tcptracectl stats):"
"$ctl" stats
