#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The demo, run as root in the guest (make demo): load tcptrace, make real
# TCP connections between two network namespaces joined by veth, and show
# what tcptracectl watch recorded.
#   1. client connects, sends, the client closes first
#   2. client connects, the server closes first
# each drawn as a ladder (tcptracectl ladder), then, each recorded on a port
# of its own and drawn the same way:
#   3. a connection refused (no listener on port 9)
#   4. a lost third ACK: SYN-ACK retransmissions, the request given up, the
#      client's data answered with RST (port 8081)
#   5. a simultaneous close: both FINs cross, both sides go through CLOSING
#      (port 8082)
#   6. an accept queue overflow: somaxconn 2, nobody accepts, SYNs dropped
#      and retransmitted (port 8083)
set -euo pipefail
cd "$(dirname "$0")/.."

ko=${TCPTRACE_KO:-module/tcptrace.ko}
ctl=userspace/tcptracectl
out=$(mktemp)
wout=$(mktemp)
cleanup() {
	[ -n "${watch_pid:-}" ] && kill -INT "$watch_pid" 2>/dev/null && wait "$watch_pid" || true
	ip netns del demo_cli 2>/dev/null || true
	ip netns del demo_srv 2>/dev/null || true
	rm -f "$out" "$wout"
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
"$ctl" watch --json >"$out" &
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
PY
wait "$srv_pid"
sleep 1
kill -INT "$watch_pid"
wait "$watch_pid" || true
watch_pid=

echo "== Three-way handshake and four-way teardown: the client closes first, then a connection the server closes first (port 8080)"
echo "-- the records (tcptracectl watch):"
"$ctl" watch -r "$out"
echo
echo "-- the same as ladders (tcptracectl ladder), one per connection:"
"$ctl" ladder -r "$out" -w 110
# One watch per scenario, on the scenario's port only.
start_watch() {
	"$ctl" watch --json -p "$1" >"$wout" &
	watch_pid=$!
	sleep 0.5
}
stop_watch() {
	sleep 0.5
	kill -INT "$watch_pid"
	wait "$watch_pid" || true
	watch_pid=
	"$ctl" ladder -r "$wout" -w 110
}
listeners() {
	echo "-- /proc/net/tcptrace_listeners of the server netns $1:"
	ip netns exec demo_srv cat /proc/net/tcptrace_listeners | sed 's/^/   /'
}
wait_listen() {
	for _ in $(seq 100); do
		ip netns exec demo_srv ss -Hltn "sport = :$1" | grep -q . && return
		sleep 0.1
	done
}

echo
echo "== Connection refused: nothing listens on port 9, the SYN (seq x) is answered by RST|ACK with ack x+1"
start_watch 9
ip netns exec demo_cli python3 -c '
import socket
try:
    socket.create_connection(("10.7.0.2", 9), timeout=2)
except OSError as e:
    print("-- the client:", e)
'
stop_watch

echo
echo "== Lost third ACK: the server retransmits its SYN-ACK (tcp_synack_retries=2), gives up, then answers the client's data with RST"
"$ctl" tune --netns demo_srv --synack-retries 2 | sed 's/^/-- tune: /'
ip netns exec demo_cli nft 'add table inet demo; add chain inet demo out { type filter hook output priority 0; }; add rule inet demo out tcp dport 8081 tcp flags == ack drop'
start_watch 8081
ip netns exec demo_srv python3 -c '
import socket, time
s = socket.socket()
s.bind(("10.7.0.2", 8081)); s.listen(8)
time.sleep(12)
' &
srv_pid=$!
wait_listen 8081
ip netns exec demo_cli python3 -c '
import socket, sys, time
c = socket.create_connection(("10.7.0.2", 8081))
print("connected", flush=True)
sys.stdin.readline()
c.sendall(b"hello\n")
try:
    c.recv(100)
    print("-- the client: no reset?")
except ConnectionResetError as e:
    print("-- the client:", e)
' < <(sleep 1; ip netns exec demo_srv cat /proc/net/tcptrace_listeners >"$out"
      # 1 + 2 + 4 s from the SYN-ACK until the request is dropped, and
      # python starts slowly under emulation
      sleep 9; ip netns exec demo_cli nft delete table inet demo; echo go) >"$out.cli"
stop_watch
echo "-- /proc/net/tcptrace_listeners of the server netns while the ACK is lost:"
sed 's/^/   /' "$out"
listeners "after the SYN-ACK retries"
grep -v '^connected' "$out.cli" || true
rm -f "$out.cli"
kill "$srv_pid" 2>/dev/null || true
wait "$srv_pid" 2>/dev/null || true

echo
echo "== Simultaneous close: both FINs cross (200 ms each way), both sides go FIN_WAIT1 -> CLOSING -> TIME_WAIT"
ip netns exec demo_cli tc qdisc add dev va root netem delay 200ms
ip netns exec demo_srv tc qdisc add dev vb root netem delay 200ms
start_watch 8082
# Both shut down at the same CLOCK_MONOTONIC instant, 1 s after the client
# connected: the client writes that instant to $out, the server reads it.
: >"$out"
close_at='
def close_at(c, at):
    time.sleep(max(0, at - time.monotonic()))
    c.shutdown(socket.SHUT_WR)
    while c.recv(100):
        pass
    time.sleep(0.6)
    c.close()
'
ip netns exec demo_srv python3 -c "
import socket, time
$close_at
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('10.7.0.2', 8082)); s.listen(8)
c, _ = s.accept()
while not open('$out').read().endswith('\\n'):
    time.sleep(0.01)
close_at(c, float(open('$out').read()))
" &
srv_pid=$!
wait_listen 8082
ip netns exec demo_cli python3 -c "
import socket, time
$close_at
c = socket.create_connection(('10.7.0.2', 8082))
at = time.monotonic() + 1
with open('$out', 'w') as f:
    f.write('%f\\n' % at)
close_at(c, at)
"
wait "$srv_pid"
stop_watch
ip netns exec demo_cli tc qdisc del dev va root
ip netns exec demo_srv tc qdisc del dev vb root

echo
echo "== Accept queue overflow: somaxconn=2 caps listen(8), nobody accepts; the 4th to 6th SYNs are dropped and retransmitted"
"$ctl" tune --netns demo_srv --somaxconn 2 | sed 's/^/-- tune: /'
start_watch 8083
ip netns exec demo_srv python3 -c '
import socket, time
s = socket.socket()
s.bind(("10.7.0.2", 8083)); s.listen(8)
time.sleep(5)
' &
srv_pid=$!
wait_listen 8083
ip netns exec demo_cli python3 -c '
import select, socket, time
cs = []
for i in range(6):
    c = socket.socket()
    c.setblocking(False)
    c.connect_ex(("10.7.0.2", 8083))
    select.select([], [c], [], 0.2)
    cs.append(c)
# the first SYN retransmissions come after 1 s
time.sleep(1.3)
# byte 0 of TCP_INFO: the state, 1 ESTABLISHED, 2 SYN_SENT
st = [c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] for c in cs]
print("-- clients established:", st.count(1), "of", len(cs), "- still in SYN_SENT:", st.count(2))
'
listeners "(accept queue 3 > backlog 2: full)"
stop_watch
kill "$srv_pid" 2>/dev/null || true
wait "$srv_pid" 2>/dev/null || true

echo
echo "== counters (tcptracectl stats):"
"$ctl" stats
