#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tcptrace's memory is bounded: the rings and the handshake/teardown ACK
# table are allocated at load and never grow, and unloading gives all of
# it back.
#
# 1. Loads the module with the smallest table (expect_slots=256), makes
#    CONNS (default 400; make stress: 100000) connections between two
#    network namespaces over veth, each of which expects three ACKs (of the
#    SYN-ACK and of both FINs), so that the table is filled well past its
#    bound, with a reader draining the device, and checks with the stats
#    ioctl (tcptracectl stats) and /proc/vmallocinfo that:
#    - ring_bytes, expect_slots and expect_bytes are what the parameters
#      say, and stay the same under load;
#    - expect_used never exceeds expect_slots (read every CONNS/100
#      connections, at least every 100);
#    - expect_evictions counts the expectations pushed out: at least the
#      ones that did not fit;
#    - the table's vmalloc area has the same size before and after.
# 2. CYCLES (default 10; make stress: 100) load/unload cycles with default
#    parameters, each with CYCLE_CONNS (default 100) connections read by a
#    reader: every load has the same ring_bytes, expect_bytes and
#    expect_slots, starts with expect_used 0 and stays within the slots;
#    and the kernel's memory after the cycles is what it was before them
#    (module unloaded both times, caches dropped): Slab within SLAB_TOL_KB
#    (default 512) kB, and the vmalloc areas and per-CPU memory exactly.
#    Slab is not exact: the slab allocator keeps partial and per-CPU
#    slabs, sockets are freed after an RCU grace period, and the shell's
#    own processes hold objects; 512 kB is above what that moves by
#    between two idle moments.  In make stress's 100 cycles of 100
#    connections, a leak of 8 kB per load (800 kB) or of 64 bytes per
#    connection (640 kB) goes past it; make check's 10 cycles catch only
#    leaks of more than 52 kB per cycle.  The connections of the cycles
#    end with a reset (SO_LINGER 0), so no TIME_WAIT socket is left in the
#    slab to be counted.
# Then loads the module again with its default parameters.
#
#   make && selftests/vm/run -- selftests/bench_memory_test.sh
#
# Needs root, ip(8), python3 and tcptracectl.  TCPTRACE_KO: the module
# (default ../module/tcptrace.ko).  Prints TAP; exits non-zero when a case
# failed.

set -u

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=selftests/lib.sh
. "$here/lib.sh"

conns=${CONNS:-400}
cycles=${CYCLES:-10}
cycle_conns=${CYCLE_CONNS:-100}
slab_tol=${SLAB_TOL_KB:-512}
slots=256
nsa=tt_mem_a_$$
nsb=tt_mem_b_$$
ipa=10.204.0.1
ipb=10.204.0.2
port=5101
tmp=$(mktemp -d)
server_pid=
reader_pid=

cleanup() {
	[ -n "$reader_pid" ] && kill -KILL "$reader_pid" 2>/dev/null
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null &&
		wait "$server_pid" 2>/dev/null
	ip netns del $nsa 2>/dev/null
	ip netns del $nsb 2>/dev/null
	rm -rf "$tmp"
	# leave the module loaded with its default parameters
	module_loaded && rmmod tcptrace
	insmod "$ko" || echo "# could not load $ko again"
}

stat() {
	stats_get "$@"
}

snap() {
	stats_snap "$tmp/stats.json"
}

# the size of the table's vmalloc area, as /proc/vmallocinfo shows it
vmalloc_size() {
	awk '/tt_expect_init/ { print $2; exit }' /proc/vmallocinfo
}

both() {
	"$1" "$2" "$3" "$4" && "$5" "$6" "$7" "$8"
}

# reader_start / reader_stop: a reader draining the device meanwhile
reader_start() {
	cat /dev/tcptrace >/dev/null &
	reader_pid=$!
}

reader_stop() {
	kill -KILL "$reader_pid" 2>/dev/null
	wait "$reader_pid" 2>/dev/null
	reader_pid=
}

# client N EVERY [rst]: N connections from nsa to the server, the stats
# saved after every EVERY-th in $tmp/during.jsonl; "rst": each one ended by
# a reset rather than a FIN
client() {
	ip netns exec $nsa python3 -c '
import socket, struct, subprocess, sys
addr, port, n, every, tool, out, rst = sys.argv[1], int(sys.argv[2]), \
	int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6], sys.argv[7]
peaks = open(out, "w")
for i in range(n):
    c = socket.create_connection((addr, port))
    c.sendall(b"q")
    c.recv(1)
    if rst == "rst":
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    if i % every == every - 1:
        peaks.write(subprocess.run([tool, "stats", "--json"], check=True,
                                   capture_output=True, text=True).stdout)
' $ipb $port "$1" "$2" "$tool" "$tmp/during.jsonl" "${3:-fin}"
}

# mem_snap: Slab, vmalloc areas (count and bytes, but the kernel stacks of
# tasks, which come and go with the kernel's worker threads: /proc/vmallocinfo
# names their caller alloc_thread_stack_node, or kernel_clone or
# copy_process where it is inlined, as in Debian's 6.1; and the
# "unpurged vm_area" lines: areas already freed, whose addresses the
# kernel releases lazily) and per-CPU memory, once freed sockets have gone
# through RCU and the caches are dropped
vmalloc_skip='thread_stack|kernel_clone|copy_process|dup_task_struct|unpurged'
mem_snap() {
	sleep 2
	sync
	echo 3 >/proc/sys/vm/drop_caches
	sleep 1
	# the areas by size and caller, for a difference to be shown
	awk -v skip="$vmalloc_skip" '$0 !~ skip { print $2, $3 }' /proc/vmallocinfo |
		sort >"$tmp/vmalloc.$1"
	echo "$(meminfo_kb Slab) $(meminfo_kb SUnreclaim)" \
		"$(awk -v skip="$vmalloc_skip" '$0 !~ skip { n++; s += $2 } END { print n, s }' /proc/vmallocinfo)" \
		"$(meminfo_kb Percpu)"
}

tap_start
if [ "$(id -u)" != 0 ] || [ ! -x "$tool" ] || [ ! -e "$ko" ]; then
	echo "# needs root, $tool and $ko"
	not_ok "prerequisites"
	finish
fi
trap cleanup EXIT

# ---- 1. the table's bound under CONNS connections ---------------------------

module_loaded && rmmod tcptrace
check "insmod expect_slots=$slots" insmod "$ko" expect_slots=$slots

ip netns add $nsa && ip netns add $nsb &&
	ip link add tt_mem0 netns $nsa type veth peer name tt_mem1 netns $nsb &&
	ip -n $nsa addr add $ipa/24 dev tt_mem0 &&
	ip -n $nsb addr add $ipb/24 dev tt_mem1 &&
	ip -n $nsa link set tt_mem0 up && ip -n $nsb link set tt_mem1 up &&
	ip -n $nsa link set lo up && ip -n $nsb link set lo up
check "two namespaces over veth" [ $? = 0 ]

# the server: 1-byte request, 1-byte reply, the client closes first (or
# resets)
ip netns exec $nsb python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(128)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    try:
        if c.recv(1):
            c.sendall(b"r")
            while c.recv(64):
                pass
    except ConnectionResetError:
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

# CONNS connections, the stats read regularly: used stays bounded
every=$((conns / 100))
[ "$every" -lt 100 ] && every=100
reader_start
t0=$SECONDS
client "$conns" "$every"
check "$conns connections made ($((SECONDS - t0)) s)" [ $? = 0 ]
sleep 1
reader_stop
snap
ev1=$(stat expect_evictions)
used_max=$(python3 -c '
import json, sys
print(max(json.loads(l)["expect_used"] for l in open(sys.argv[1])))' "$tmp/during.jsonl")
samples=$(wc -l <"$tmp/during.jsonl")
echo "# expect_used: at most $used_max in $samples reads during the connections, $(stat expect_used) after"
echo "# expect_evictions: $ev0 before, $ev1 after $conns connections ($((3 * conns)) expectations)"
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
check "handshake ACKs still recorded ($(stat per_type.packet) packet records)" \
	[ "$(stat per_type.packet)" -gt "$conns" ]

# ---- 2. load/unload cycles: the memory comes back ---------------------------

rmmod tcptrace
# one cycle first: what the first load brings for good (veth's and the
# device's, the kernel's caches) is not counted
cycle_fail=
cycle_first=
cycle() {
	local got

	if ! modcmd insmod "$ko"; then
		cycle_fail="$cycle_fail; cycle $1: insmod failed"
		return
	fi
	snap
	got="$(stat ring_bytes) $(stat expect_bytes) $(stat expect_slots)"
	[ "$(stat expect_used)" = 0 ] ||
		cycle_fail="$cycle_fail; cycle $1: expect_used $(stat expect_used) after load"
	reader_start
	client "$cycle_conns" "$cycle_conns" rst ||
		cycle_fail="$cycle_fail; cycle $1: the connections failed"
	reader_stop
	snap
	[ "$(stat expect_used)" -le "$(stat expect_slots)" ] ||
		cycle_fail="$cycle_fail; cycle $1: expect_used $(stat expect_used) > expect_slots"
	[ "$(stat events)" -gt "$cycle_conns" ] ||
		cycle_fail="$cycle_fail; cycle $1: $(stat events) records for $cycle_conns connections"
	got="$got $(stat ring_bytes) $(stat expect_bytes) $(stat expect_slots)"
	if [ -z "$cycle_first" ]; then
		cycle_first=$got
		echo "# ring_bytes, expect_bytes, expect_slots at load and after the connections: $got"
	elif [ "$got" != "$cycle_first" ]; then
		cycle_fail="$cycle_fail; cycle $1: memory counters $got, not $cycle_first"
	fi
	rmmod_retry || cycle_fail="$cycle_fail; cycle $1: rmmod failed"
}

cycle 0
read -r slab0 sunr0 vmn0 vmb0 pcpu0 <<<"$(mem_snap before)"
t0=$SECONDS
for c in $(seq "$cycles"); do
	cycle "$c"
done
secs=$((SECONDS - t0))
read -r slab1 sunr1 vmn1 vmb1 pcpu1 <<<"$(mem_snap after)"
echo "# before $cycles cycles: Slab $slab0 kB (unreclaimable $sunr0), $vmn0 vmalloc areas of $vmb0 bytes, Percpu $pcpu0 kB"
echo "# after  $cycles cycles: Slab $slab1 kB (unreclaimable $sunr1), $vmn1 vmalloc areas of $vmb1 bytes, Percpu $pcpu1 kB"
if [ -z "$cycle_fail" ]; then
	ok "$cycles load/unload cycles with $cycle_conns connections each ($secs s): same memory counters ($cycle_first)"
else
	not_ok "load/unload cycles: ${cycle_fail#; }"
fi
check "Slab after the cycles within $slab_tol kB of before ($((slab1 - slab0)) kB, $(((slab1 - slab0) * 1024 / (cycles > 0 ? cycles : 1))) bytes per cycle)" \
	[ $((slab1 - slab0)) -le "$slab_tol" ]
same "vmalloc areas after the cycles as before (count and bytes)" \
	"$vmn1 $vmb1" "$vmn0 $vmb0" ||
	diff "$tmp/vmalloc.before" "$tmp/vmalloc.after" | grep '^[<>]' |
	sed 's/^/#   vmalloc (size caller): /'
same "per-CPU memory after the cycles as before (kB)" "$pcpu1" "$pcpu0"

insmod "$ko"
snap
check "reloaded with the default table ($(stat expect_slots) slots)" \
	both test "$(stat expect_slots)" = "$(cat /sys/module/tcptrace/parameters/expect_slots)" \
	test "$(stat expect_slots)" -gt $slots
finish
