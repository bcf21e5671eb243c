#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tcptrace's memory is bounded: the rings and the handshake/teardown ACK
# table are allocated at load and never grow.  Loads the module with the
# smallest table (expect_slots=256), makes CONNS (default 400) connections
# between two network namespaces over veth, each of which expects three
# ACKs (of the SYN-ACK and of both FINs), so that the table is filled well
# past its bound, and checks with the stats ioctl (tcptracectl stats) and
# /proc/vmallocinfo that:
#   - ring_bytes, expect_slots and expect_bytes are what the parameters
#     say, and stay the same under load;
#   - expect_used never exceeds expect_slots;
#   - expect_evictions counts the expectations pushed out: at least the
#     ones that did not fit;
#   - the table's vmalloc area has the same size before and after.
# Then loads the module again with its default parameters.
#
#   make && selftests/vm/run -- selftests/bench_memory_test.sh
#
# Needs root, ip(8), python3 and tcptracectl.  TCPTRACE_KO: the module
# (default ../module/tcptrace.ko).  Prints TAP; exits non-zero when a case
# failed.

set -u

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
ko=${TCPTRACE_KO:-$repo/module/tcptrace.ko}
tool=$repo/userspace/tcptracectl
conns=${CONNS:-400}
slots=256
nsa=tt_mem_a_$$
nsb=tt_mem_b_$$
ipa=10.204.0.1
ipb=10.204.0.2
port=5101
tmp=$(mktemp -d)
server_pid=
pass=0
fail=0
n=0

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

cleanup() {
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null &&
		wait "$server_pid" 2>/dev/null
	ip netns del $nsa 2>/dev/null
	ip netns del $nsb 2>/dev/null
	rm -rf "$tmp"
	# leave the module loaded with its default parameters
	[ -d /sys/module/tcptrace ] && rmmod tcptrace
	insmod "$ko" || echo "# could not load $ko again"
}

finish() {
	echo "# Totals: pass:$pass fail:$fail skip:0"
	[ "$fail" = 0 ]
	exit
}

# stat NAME: a field of tcptracectl stats --json
stat() {
	python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' \
		"$tmp/stats.json" "$1"
}

snap() {
	"$tool" stats --json >"$tmp/stats.json"
}

# the size of the table's vmalloc area, as /proc/vmallocinfo shows it
vmalloc_size() {
	awk '/tt_expect_init/ { print $2; exit }' /proc/vmallocinfo
}

echo "TAP version 13"
echo "1..15"
if [ "$(id -u)" != 0 ] || [ ! -x "$tool" ] || [ ! -e "$ko" ]; then
	echo "# needs root, $tool and $ko"
	not_ok "prerequisites"
	finish
fi
trap cleanup EXIT

[ -d /sys/module/tcptrace ] && rmmod tcptrace
check "insmod expect_slots=$slots" insmod "$ko" expect_slots=$slots

ip netns add $nsa && ip netns add $nsb &&
	ip link add tt_mem0 netns $nsa type veth peer name tt_mem1 netns $nsb &&
	ip -n $nsa addr add $ipa/24 dev tt_mem0 &&
	ip -n $nsb addr add $ipb/24 dev tt_mem1 &&
	ip -n $nsa link set tt_mem0 up && ip -n $nsb link set tt_mem1 up &&
	ip -n $nsa link set lo up && ip -n $nsb link set lo up
check "two namespaces over veth" [ $? = 0 ]

# the server: 1-byte request, 1-byte reply, the client closes first
ip netns exec $nsb python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(128)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    if c.recv(1):
        c.sendall(b"r")
        while c.recv(64):
            pass
    c.close()
' $ipb $port >"$tmp/server.out" &
server_pid=$!
for _ in $(seq 100); do
	grep -q ready "$tmp/server.out" && break
	sleep 0.1
done

snap
ring0=$(stat ring_bytes)
nr_cpus=$(stat nr_cpus)
ring_records=$(stat ring_records)
ev0=$(stat expect_evictions)
vm0=$(vmalloc_size)
check "ring_bytes is nr_cpus * ring_records * 128 ($ring0)" \
	[ "$ring0" = $((nr_cpus * ring_records * 128)) ]
check "expect_slots is $slots" [ "$(stat expect_slots)" = $slots ]
check "expect_bytes is $((slots * 8))" [ "$(stat expect_bytes)" = $((slots * 8)) ]
check "expect_used is at most expect_slots at rest" \
	[ "$(stat expect_used)" -le $slots ]

# CONNS connections, the stats read after every 100th: used stays bounded
ip netns exec $nsa python3 -c '
import socket, subprocess, sys
addr, port, n, tool, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
peaks = open(out, "w")
for i in range(n):
    c = socket.create_connection((addr, port))
    c.sendall(b"q")
    c.recv(1)
    c.close()
    if i % 100 == 99:
        peaks.write(subprocess.run([tool, "stats", "--json"], check=True,
                                   capture_output=True, text=True).stdout)
' $ipb $port "$conns" "$tool" "$tmp/during.jsonl"
check "$conns connections made" [ $? = 0 ]
sleep 1
snap
ev1=$(stat expect_evictions)
used_max=$(python3 -c '
import json, sys
print(max(json.loads(l)["expect_used"] for l in open(sys.argv[1])))' "$tmp/during.jsonl")
echo "# expect_used: at most $used_max during the connections, $(stat expect_used) after"
echo "# expect_evictions: $ev0 before, $ev1 after $conns connections ($((3 * conns)) expectations)"
both() {
	"$1" "$2" "$3" "$4" && "$5" "$6" "$7" "$8"
}
check "expect_used stayed at most $slots under load (max $used_max)" \
	both test "$used_max" -le $slots test "$(stat expect_used)" -le $slots
check "expect_used is not zero after the connections" \
	[ "$(stat expect_used)" -gt 0 ]
# 3 expectations per connection; those beyond the slots must have evicted
check "expect_evictions rose by at least $((3 * conns - slots)) ($((ev1 - ev0)))" \
	[ $((ev1 - ev0)) -ge $((3 * conns - slots)) ]
check "expect_slots and expect_bytes unchanged" \
	both test "$(stat expect_slots)" = $slots test "$(stat expect_bytes)" = $((slots * 8))
check "ring_bytes unchanged ($(stat ring_bytes))" [ "$(stat ring_bytes)" = "$ring0" ]
vm1=$(vmalloc_size)
check "the table's vmalloc area kept its size (${vm0:-?} bytes)" \
	both test "${vm0:-none}" != none test "$vm0" = "$vm1"
# each connection's handshake and teardown ACKs were still recorded when
# their expectation survived: most do, since they come right after
check "handshake ACKs still recorded" [ "$(python3 -c '
import json, sys
print(json.load(open(sys.argv[1]))["per_type"]["packet"])' "$tmp/stats.json")" -gt "$conns" ]

rmmod tcptrace && insmod "$ko"
snap
check "reloaded with the default table ($(stat expect_slots) slots)" \
	both test "$(stat expect_slots)" = "$(cat /sys/module/tcptrace/parameters/expect_slots)" \
	test "$(stat expect_slots)" -gt $slots
finish
