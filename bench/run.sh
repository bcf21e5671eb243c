#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The tcptrace benchmark, run as root in the QEMU guest (make bench):
#
#   selftests/vm/run --smp 2 --timeout 1500 -- bench/run.sh
#
# Workload: bench/crr opening and closing TCP connections as fast as it
# can (connect, 1-byte request, 1-byte reply, close; the client closes
# first), between two network namespaces over veth, and on loopback in a
# third namespace.  The port range is widened, TIME_WAIT sockets may be
# reused for new connections and their table is large, so ports do not run
# out; the servers listen on several ports.
#
# Part 1, overhead: the conditions below, interleaved (A B C ... A B C ...)
# for BENCH_ROUNDS rounds in this one boot, each measured on veth then on
# loopback for BENCH_SECS seconds; medians, and ratios to the baseline of
# the same run:
#   baseline         tcptrace not loaded, no tracer
#   tcptrace         tcptrace loaded, nobody reading (the rings fill, then
#                    every record is a counted drop)
#   tcptrace-filtered  tcptrace loaded with ports=9, a port nothing uses:
#                    every hook runs and returns at its port test, nothing
#                    is recorded: the cost of the hooks themselves
#   tcptrace+cat     tcptrace loaded, cat /dev/tcptrace > /dev/null: the
#                    cost of the module and of read(), without formatting
#   tcptrace+reader  tcptrace loaded, tcptracectl watch --json > /dev/null
#                    (its formatting thread in the background: SCHED_IDLE
#                    while it keeps up, SCHED_OTHER when it falls behind)
#   tcptrace+reader-fg  the same with TCPTRACE_FOREGROUND=1: formatting at
#                    SCHED_OTHER all along, as before the background policy
#   ftrace           the tracepoints tcptrace uses (sock:inet_sock_set_state,
#                    tcp:tcp_retransmit_skb, tcp_retransmit_synack,
#                    tcp_send_reset, tcp_receive_reset, tcp_destroy_sock)
#                    enabled in tracefs, trace_pipe read to /dev/null
#   bpftrace         bpftrace printing every sock:inet_sock_set_state event
#                    (its output counted and thrown away)
#   tcpdump          tcpdump -w /dev/null on the client's interface (veth,
#                    or lo) with a SYN/FIN/RST filter
#   alt, alt+cat, alt+reader  tcptrace, tcptrace+cat and tcptrace+reader
#                    with another build of the module, BENCH_ALT_KO (not
#                    run by default): a change to the module measured side
#                    by side with the current one, in the same boot
# Per condition: connections/s, guest CPU time per connection (busy time of
# all CPUs in /proc/stat over the run), records per connection (written or
# dropped) and drops.  For the two tcptracectl readers, how much of their
# output was written by the end of the run and how long after it they had
# written all of it (their bytes written, /proc/PID/io wchar): a reader
# that kept up has written nearly all by the end.
#
# Part 2, events until loss: with tcptracectl watch --json reading, more
# and more client processes on veth, for the default ring and larger ones;
# the highest rate with no drop and the rate at which drops reach 1%.
# Part 3, read() throughput: rings filled with no reader, then read with
# bench/readtp and buffers of one record, 128 KiB (tcptracectl's) and 4 MiB;
# and through tcptracectl watch --json.  Then the formatting alone: records
# of the same workload saved to a file and formatted from it by
# tcptracectl watch --json -i, its CPU time per record (less that of its
# start, on an empty file), set against the records per connection and the
# baseline's CPU time per connection.
# Part 4, memory: tcptracectl stats at rest and under load.
#
# Prints a table, writes everything as JSON to BENCH_OUT (default
# bench/results.json).  Environment: BENCH_ROUNDS (5), BENCH_SECS (5),
# BENCH_WARMUP (70: seconds of workload before part 1),
# BENCH_PROCS (client processes in part 1, 2), BENCH_CONDS (a subset of
# the conditions, by name), BENCH_LOSS=0 / BENCH_READ=0 to skip parts 2/3,
# BENCH_LOSS_BUFS (the ring sizes of part 2, "4096 16384 65536"),
# BENCH_PROFILE (conditions to run under perf record instead),
# BENCH_PROFILE_FREQ (its sampling rate, 499), BENCH_ALT_KO (the module
# of the alt conditions), TCPTRACE_KO.

set -u

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
ko=${TCPTRACE_KO:-$repo/module/tcptrace.ko}
alt_ko=${BENCH_ALT_KO:-}
alt_given=$alt_ko
tool=$repo/userspace/tcptracectl
crr=$here/crr
readtp=$here/readtp
clockcheck=$here/clockcheck
out=${BENCH_OUT:-$here/results.json}
rounds=${BENCH_ROUNDS:-5}
secs=${BENCH_SECS:-5}
procs=${BENCH_PROCS:-2}
warmup=${BENCH_WARMUP:-70}
conds=${BENCH_CONDS:-baseline tcptrace-filtered tcptrace tcptrace+cat tcptrace+reader tcptrace+reader-fg ftrace bpftrace tcpdump}
T=/sys/kernel/tracing

ns_cli=ttb_cli
ns_srv=ttb_srv
ns_lo=ttb_lo
ip_cli=10.203.0.1
ip_srv=10.203.0.2
port=5001
nports=4

tmp=$(mktemp -d)
runs=$tmp/runs.jsonl
extra=$tmp/extra.jsonl
: >"$runs"
: >"$extra"
pids=()

log() {
	echo "# $*" >&2
}

cleanup() {
	local p

	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null
	done
	wait 2>/dev/null
	[ -w $T/events/enable ] && echo 0 >$T/events/enable
	ip netns del $ns_cli 2>/dev/null
	ip netns del $ns_srv 2>/dev/null
	ip netns del $ns_lo 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for f in "$crr" "$readtp" "$clockcheck" "$tool" "$ko"; do
	if [ ! -e "$f" ]; then
		echo "bench: $f is missing: build with make (or make bench)" >&2
		exit 2
	fi
done
case " ${BENCH_CONDS:-} ${BENCH_PROFILE:-} " in
*" alt"*)
	if [ -z "$alt_ko" ] || [ ! -f "$alt_ko" ]; then
		echo "bench: the alt conditions need BENCH_ALT_KO, another build of tcptrace.ko${alt_ko:+ ($alt_ko is not a file)}" >&2
		exit 2
	fi
	;;
esac
if [ "$(id -u)" != 0 ]; then
	echo "bench: needs root (run it in the guest: make bench)" >&2
	exit 2
fi
# work on copies: a rebuild in the tree during the run must not change them
cp "$crr" "$readtp" "$clockcheck" "$tool" "$ko" "$tmp/" || exit 1
crr=$tmp/crr readtp=$tmp/readtp tool=$tmp/tcptracectl ko=$tmp/${ko##*/}
if [ -n "$alt_ko" ]; then
	mkdir "$tmp/alt" && cp "$alt_ko" "$tmp/alt/" || exit 1
	alt_ko=$tmp/alt/${alt_ko##*/}
fi
clockcheck=$tmp/clockcheck

# The clock every record's timestamp comes from: ktime_get_ns(), read
# through the kernel's clocksource.  make bench boots the guest with
# tsc=reliable (BENCH_CLOCK=tsc): the vCPUs' TSCs are one host clock, but
# the kernel's boot-time check, run on vCPUs that take turns on one host
# thread, finds them unsynchronised and falls back to the HPET, whose
# every read is an emulated device access, far dearer than on a real
# machine (where the TSC is read in some 20 ns).  clockcheck shows that
# CLOCK_MONOTONIC still never goes backwards from one CPU to the other.
clocksource=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)
clockcheck_res=$("$clockcheck" -t 2)
case $? in
0) log "clocksource $clocksource: $clockcheck_res" ;;
1) log "clocksource $clocksource: TIME GOES BACKWARDS between CPUs: $clockcheck_res" ;;
*) echo "bench: clockcheck failed" >&2; exit 1 ;;
esac

# ---- setup ---------------------------------------------------------------

tune_ns() {
	ip netns exec "$1" sysctl -q -w \
		net.ipv4.ip_local_port_range="1024 65535" \
		net.ipv4.tcp_tw_reuse=1 \
		net.ipv4.tcp_max_tw_buckets=262144 \
		net.ipv4.tcp_max_syn_backlog=4096 \
		net.core.somaxconn=4096
}

setup() {
	ip netns add $ns_cli && ip netns add $ns_srv && ip netns add $ns_lo ||
		return 1
	ip link add ttb0 netns $ns_cli type veth peer name ttb1 netns $ns_srv ||
		return 1
	ip -n $ns_cli addr add $ip_cli/24 dev ttb0
	ip -n $ns_srv addr add $ip_srv/24 dev ttb1
	ip -n $ns_cli link set ttb0 up
	ip -n $ns_srv link set ttb1 up
	local ns
	for ns in $ns_cli $ns_srv $ns_lo; do
		ip -n $ns link set lo up
		tune_ns $ns || return 1
	done
	start_server $ns_srv $ip_srv || return 1
	start_server $ns_lo 127.0.0.1 || return 1
}

start_server() {
	local ready=$tmp/server.$1

	ip netns exec "$1" "$crr" server -p $port -n $nports -w 4 "$2" \
		>"$ready" &
	pids+=($!)
	for _ in $(seq 100); do
		grep -q ready "$ready" && return 0
		sleep 0.1
	done
	echo "bench: the server in $1 did not start" >&2
	return 1
}

module_loaded() {
	[ -d /sys/module/tcptrace ]
}

# the module under test (not the alt one) loaded, with no port filter
alt_loaded=0
loaded_plain() {
	[ "$alt_loaded" = 0 ] && module_loaded &&
		[ -z "$(cat /sys/module/tcptrace/parameters/ports)" ]
}

load() {
	module_loaded && rmmod tcptrace
	alt_loaded=0
	insmod "$ko" "$@"
}

# the module of the alt conditions, loaded afresh
load_alt() {
	module_loaded && rmmod tcptrace
	insmod "$alt_ko" && alt_loaded=1
}

unload() {
	if module_loaded; then
		rmmod tcptrace
	fi
	alt_loaded=0
}

# ---- measurements --------------------------------------------------------

# busy and total jiffies of all CPUs
cpu_jiffies() {
	awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i;
		print t - $5 - $6, t; exit }' /proc/stat
}

# a field of tcptracectl stats --json, 0 without the module
tt_stat() {
	if module_loaded; then
		"$tool" stats --json |
			python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], 0))' "$1"
	else
		echo 0
	fi
}

# records and drops of the current tracer, so far: "records drops"
counters() {
	case $1 in
	tcptrace* | alt*)
		"$tool" stats --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
print(s["events"] - s["per_type"].get("lost", 0) + s["drops"], s["drops"])'
		;;
	ftrace)
		# entries in the buffer + read + lost, per CPU
		cat $T/per_cpu/cpu*/stats | awk '
			/^entries:/ { r += $2 } /^read events:/ { r += $3 }
			/^overrun:/ { d += $2 } /^dropped events:/ { d += $3 }
			END { print r + d, d }'
		;;
	bpftrace)
		local lost
		lost=$(grep -ho 'Lost [0-9]* events' "$tmp/bt.out" "$tmp/bt.err" |
			awk '{ s += $2 } END { print s + 0 }')
		echo $(($(grep -c . "$tmp/bt.out") - 1 + lost)) "$lost"
		;;
	*)
		echo 0 0
		;;
	esac
}

# measure ROUND COND LINK: one timed run of the client, appended to $runs
measure() {
	local round=$1 cond=$2 link=$3 ns addr res c0 c1 b0 t0 b1 t1
	local r0 d0 r1 d1 w0 w1 lag=() ru0 rs0 rp0 ru1 rs1 rp1

	if [ "$link" = veth ]; then
		ns=$ns_cli addr=$ip_srv
	else
		ns=$ns_lo addr=127.0.0.1
	fi
	[ "$cond" = tcpdump ] && { start_tcpdump "$ns" "$link" || return; }
	read -r r0 d0 < <(counters "$cond")
	w0=$(reader_written)
	read -r ru0 rs0 rp0 < <(reader_cpu)
	read -r b0 t0 < <(cpu_jiffies)
	res=$(ip netns exec "$ns" "$crr" client -p $port -n $nports \
		-P "$procs" -t "$secs" "$addr")
	read -r b1 t1 < <(cpu_jiffies)
	# let the tracers' readers catch up with the last events
	case $cond in
	tcptrace+reader* | alt+reader)
		# shellcheck disable=SC2207
		lag=($(reader_catch_up))
		w1=${lag[1]}
		lag=("$((lag[0] - w0))" "$((w1 - w0))" "${lag[2]}")
		;;
	*) sleep 0.5 ;;
	esac
	# the reader's own CPU time: the run's records, formatted or copied
	read -r ru1 rs1 rp1 < <(reader_cpu)
	if [ "$cond" = tcpdump ]; then
		read -r r1 d1 < <(stop_tcpdump)
		r0=0 d0=0
	else
		read -r r1 d1 < <(counters "$cond")
	fi
	c1=$(python3 -c '
import json, sys
r = json.loads(sys.argv[1])
r.update(round=int(sys.argv[2]), cond=sys.argv[3], link=sys.argv[4],
	 busy_jiffies=int(sys.argv[5]), total_jiffies=int(sys.argv[6]),
	 records=int(sys.argv[7]), drops=int(sys.argv[8]))
if sys.argv[3] in ("tcptrace+cat", "alt+cat", "alt+reader") or sys.argv[3].startswith("tcptrace+reader"):
	r.update(reader_user_ticks=int(sys.argv[9]),
		 reader_sys_ticks=int(sys.argv[10]),
		 reader_preempted=int(sys.argv[11]))
if sys.argv[3].startswith("tcptrace+reader") or sys.argv[3] == "alt+reader":
	r.update(out_bytes_at_end=int(sys.argv[12]), out_bytes=int(sys.argv[13]),
		 catch_up_s=float(sys.argv[14]))
print(json.dumps(r))' "$res" "$round" "$cond" "$link" $((b1 - b0)) \
		$((t1 - t0)) $((r1 - r0)) $((d1 - d0)) $((ru1 - ru0)) \
		$((rs1 - rs0)) $((rp1 - rp0)) "${lag[@]}")
	echo "$c1" >>"$runs"
	log "round $round $cond $link: $res records $((r1 - r0)) drops $((d1 - d0))${lag[1]:+ output ${lag[0]}/${lag[1]} bytes by the end, all ${lag[2]} s after}"
}

# reader_cpu: "USER SYSTEM PREEMPTED" of the reader's threads so far, in
# clock ticks (USER_HZ) and involuntary context switches; "0 0 0" without
# a reader
reader_cpu() {
	[ -n "$reader_pid" ] || { echo 0 0 0; return; }
	awk 'FILENAME ~ /stat$/ { u += $14; s += $15 }
	     /^nonvoluntary_ctxt_switches/ { p += $2 }
	     END { print u + 0, s + 0, p + 0 }' \
		/proc/"$reader_pid"/task/*/stat \
		/proc/"$reader_pid"/task/*/status 2>/dev/null || echo 0 0 0
}

# ---- the tracers ---------------------------------------------------------

# start_reader [cat|fg]: tcptracectl watch --json (fg: formatting at
# SCHED_OTHER all along), or cat, reading
reader_pid=
start_reader() {
	if [ "${1:-}" = cat ]; then
		cat /dev/tcptrace >/dev/null 2>"$tmp/reader.err" &
	elif [ "${1:-}" = fg ]; then
		TCPTRACE_FOREGROUND=1 "$tool" watch --json >/dev/null \
			2>"$tmp/reader.err" &
	else
		"$tool" watch --json >/dev/null 2>"$tmp/reader.err" &
	fi
	reader_pid=$!
	sleep 0.5
}

# bytes the reader has written so far (0 without one)
reader_written() {
	[ -n "$reader_pid" ] || { echo 0; return; }
	awk '$1 == "wchar:" { print $2 }' "/proc/$reader_pid/io" 2>/dev/null ||
		echo 0
}

# reader_catch_up, right after a run: "BYTES_AT_END BYTES_FINAL SECONDS":
# what the reader had written when the run ended, when it had written
# everything (no change for 0.5 s, at most 60 s), and how long after the
# end its last write came
reader_catch_up() {
	local t0 w_end w last=0 now t_last same=0

	t0=$(date +%s%N)
	w_end=$(reader_written)
	w=$w_end
	t_last=$t0
	while [ "$same" -lt 5 ] && [ $(($(date +%s%N) - t0)) -lt 60000000000 ]; do
		sleep 0.1
		now=$(reader_written)
		if [ "$now" != "$w" ]; then
			w=$now same=0 t_last=$(date +%s%N)
		else
			same=$((same + 1))
		fi
	done
	[ "$w" != "$w_end" ] && last=$((t_last - t0))
	printf '%s %s %d.%03d\n' "$w_end" "$w" $((last / 1000000000)) \
		$((last / 1000000 % 1000))
}

stop_reader() {
	[ -n "$reader_pid" ] || return
	# a background job of a script ignores SIGINT: cat would not stop
	kill -TERM "$reader_pid" 2>/dev/null
	wait "$reader_pid" 2>/dev/null
	reader_pid=
}

ftrace_events="sock/inet_sock_set_state tcp/tcp_retransmit_skb
tcp/tcp_retransmit_synack tcp/tcp_send_reset tcp/tcp_receive_reset
tcp/tcp_destroy_sock"
ftrace_pid=
start_ftrace() {
	local e

	echo 0 >$T/tracing_on
	echo >$T/trace
	for e in $ftrace_events; do
		echo 1 >"$T/events/$e/enable" || return 1
	done
	echo 1 >$T/tracing_on
	cat $T/trace_pipe >/dev/null &
	ftrace_pid=$!
}

stop_ftrace() {
	local e

	for e in $ftrace_events; do
		echo 0 >"$T/events/$e/enable"
	done
	kill "$ftrace_pid" 2>/dev/null
	wait "$ftrace_pid" 2>/dev/null
	echo >$T/trace
}

bpftrace_prog='BEGIN { printf("ready\n"); }
tracepoint:sock:inet_sock_set_state {
	printf("%s %d %d %d %d %d\n", comm, args->protocol, args->oldstate,
	       args->newstate, args->sport, args->dport);
}'
bpftrace_pid=
bpftrace_skip=
start_bpftrace() {
	if ! command -v bpftrace >/dev/null; then
		bpftrace_skip="bpftrace is not installed (scripts/deps.sh bench)"
		return 1
	fi
	bpftrace -e "$bpftrace_prog" >"$tmp/bt.out" 2>"$tmp/bt.err" &
	bpftrace_pid=$!
	for _ in $(seq 1200); do
		grep -q ready "$tmp/bt.out" && return 0
		if ! kill -0 $bpftrace_pid 2>/dev/null; then
			bpftrace_skip="bpftrace failed: $(head -c 300 "$tmp/bt.err" | tr '\n' ' ')"
			return 1
		fi
		sleep 0.1
	done
	bpftrace_skip="bpftrace did not attach within 120 s"
	kill $bpftrace_pid
	return 1
}

stop_bpftrace() {
	kill -INT "$bpftrace_pid" 2>/dev/null
	wait "$bpftrace_pid" 2>/dev/null
}

tcpdump_pid=
start_tcpdump() {
	local ns=$1 dev=ttb0

	[ "$2" = lo ] && dev=lo
	ip netns exec "$ns" tcpdump -i $dev -n -w /dev/null \
		'tcp[tcpflags] & (tcp-syn|tcp-fin|tcp-rst) != 0' \
		2>"$tmp/td.err" &
	tcpdump_pid=$!
	for _ in $(seq 300); do
		grep -q 'listening on' "$tmp/td.err" && return 0
		kill -0 $tcpdump_pid 2>/dev/null || break
		sleep 0.1
	done
	echo "bench: tcpdump did not start: $(cat "$tmp/td.err")" >&2
	return 1
}

# prints "captured dropped"
stop_tcpdump() {
	kill -INT "$tcpdump_pid" 2>/dev/null
	wait "$tcpdump_pid" 2>/dev/null
	awk '/packets captured/ { c = $1 } /dropped by kernel/ { d = $1 }
		END { print c + 0, d + 0 }' "$tmp/td.err"
}

# cond_start COND: 0 when COND can run now
cond_start() {
	case $1 in
	baseline | ftrace | bpftrace | tcpdump) unload ;;
	esac
	case $1 in
	baseline | tcpdump) return 0 ;;
	tcptrace-filtered)
		load ports=9
		"$tool" clear
		;;
	tcptrace)
		loaded_plain || load
		stop_reader
		"$tool" clear
		;;
	tcptrace+reader)
		loaded_plain || load
		"$tool" clear
		start_reader
		;;
	tcptrace+reader-fg)
		loaded_plain || load
		"$tool" clear
		start_reader fg
		;;
	tcptrace+cat)
		loaded_plain || load
		"$tool" clear
		start_reader cat
		;;
	alt)
		load_alt
		stop_reader
		"$tool" clear
		;;
	alt+cat)
		load_alt
		"$tool" clear
		start_reader cat
		;;
	alt+reader)
		load_alt
		"$tool" clear
		start_reader
		;;
	ftrace) start_ftrace ;;
	bpftrace) [ -z "$bpftrace_skip" ] && start_bpftrace ;;
	*) echo "bench: unknown condition $1" >&2; return 1 ;;
	esac
}

cond_stop() {
	case $1 in
	tcptrace+reader | tcptrace+reader-fg | tcptrace+cat | alt+cat | alt+reader)
		stop_reader
		;;
	ftrace) stop_ftrace ;;
	bpftrace) stop_bpftrace ;;
	esac
}

# ---- part 1 --------------------------------------------------------------

part1() {
	local round cond link

	# Every connection leaves a TIME_WAIT socket for 60 s, and connect()
	# searches a free port among them: the rate falls while their number
	# grows, for a minute.  Measure once it has stopped growing.
	log "warm-up: $warmup s, until the TIME_WAIT sockets are as many as they will be"
	unload
	local t
	for t in $(seq $(((warmup + 9) / 10))); do
		ip netns exec $ns_cli "$crr" client -p $port -n $nports -P "$procs" \
			-t 5 $ip_srv >/dev/null
		ip netns exec $ns_lo "$crr" client -p $port -n $nports -P "$procs" \
			-t 5 127.0.0.1 >/dev/null
	done
	for round in $(seq "$rounds"); do
		for cond in $conds; do
			if ! cond_start "$cond"; then
				log "round $round $cond: skipped: ${bpftrace_skip:-start failed}"
				continue
			fi
			for link in veth lo; do
				measure "$round" "$cond" "$link"
			done
			cond_stop "$cond"
		done
	done
	unload
}

# ---- part 2 --------------------------------------------------------------

# loss BUF_RECORDS: the ramp with a reader, one line per step in $extra
loss() {
	local buf=$1 p res e0 d0 e1 d1

	load buf_records="$buf"
	start_reader
	for p in 1 2 4 8 16; do
		read -r e0 d0 < <(counters tcptrace)
		res=$(ip netns exec $ns_cli "$crr" client -p $port -n $nports \
			-P "$p" -t "$secs" $ip_srv)
		sleep 0.5
		read -r e1 d1 < <(counters tcptrace)
		log "loss buf_records=$buf procs=$p: $res records $((e1 - e0)) drops $((d1 - d0))"
		python3 -c '
import json, sys
r = json.loads(sys.argv[1])
r.update(part="loss", buf_records=int(sys.argv[2]), procs=int(sys.argv[3]),
	 records=int(sys.argv[4]), drops=int(sys.argv[5]))
print(json.dumps(r))' "$res" "$buf" "$p" $((e1 - e0)) $((d1 - d0)) >>"$extra"
	done
	stop_reader
	unload
}

# ---- part 3 --------------------------------------------------------------

# fill SECONDS: connections with no reader, then the records queued
fill() {
	ip netns exec $ns_cli "$crr" client -p $port -n $nports -P "$procs" \
		-t "$1" $ip_srv >/dev/null
	tt_stat queued
}

readbench() {
	local q n b res t0 t1

	load buf_records=32768
	q=$(fill $((secs * 2)))
	log "read(): $q records queued"
	# one record per read(), tcptracectl's 128 KiB, then 4 MiB for the rest
	n=$(((q - 2048) / 2 / 1024 * 1024))
	for b in 128:2048 131072:$n 4194304:$q; do
		res=$("$readtp" -b ${b%%:*} -n ${b##*:})
		log "read() buffer ${b%%:*}: $res"
		echo "$res" | python3 -c '
import json, sys
r = json.load(sys.stdin); r.update(part="read", reader="readtp")
print(json.dumps(r))' >>"$extra"
	done
	# through the tool that formats every record as JSON
	q=$(fill "$secs")
	t0=$(date +%s.%N)
	"$tool" watch --json -c "$q" >/dev/null
	t1=$(date +%s.%N)
	python3 -c '
import json, sys
n, t = int(sys.argv[1]), float(sys.argv[3]) - float(sys.argv[2])
print(json.dumps(dict(part="read", reader="tcptracectl watch --json",
		      bufsize=131072, records=n, secs=round(t, 4),
		      rate=round(n / t))))' "$q" "$t0" "$t1" >>"$extra"
	log "tcptracectl watch --json: $q records in $(echo "$t1 - $t0" | bc) s"
	# The formatting alone, with no device, wake-up or other process in
	# its way: records of the same workload, saved, then formatted from
	# the file three times; the tool's CPU time (user + system), the
	# median of the three, less that of a run on an empty file (the
	# tool's start and end), per record.
	fill "$secs" >/dev/null
	python3 - "$tmp/fmt.raw" <<'EOF'
import os, sys
fd = os.open("/dev/tcptrace", os.O_RDONLY | os.O_NONBLOCK)
with open(sys.argv[1], "wb") as out:
    while True:
        try:
            b = os.read(fd, 1 << 20)
        except BlockingIOError:
            break
        if not b:
            break
        out.write(b)
EOF
	python3 - "$tool" "$tmp/fmt.raw" <<'EOF' | tee -a "$extra" >&2
import json, os, resource, subprocess, sys, time
tool, path = sys.argv[1:3]
n = os.path.getsize(path) // 128
empty = path + ".empty"
open(empty, "wb").close()


def cpu_time(f):
    runs = []
    for _ in range(3):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        subprocess.run([tool, "watch", "--json", "-i", f],
                       stdout=subprocess.DEVNULL, check=True)
        t = time.monotonic() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        u = r1.ru_utime - r0.ru_utime
        s = r1.ru_stime - r0.ru_stime
        runs.append((u + s, t, u, s))
    return sorted(runs)[1]


cpu, t, user, sys_ = cpu_time(path)
cpu0, _, user0, sys0 = cpu_time(empty)
os.unlink(empty)
print(json.dumps(dict(part="format", reader="tcptracectl watch --json -i FILE",
                      records=n, cpu_s=round(cpu, 4), secs=round(t, 4),
                      cpu_empty_s=round(cpu0, 4),
                      us_per_record=round((cpu - cpu0) * 1e6 / n, 3),
                      user_us_per_record=round((user - user0) * 1e6 / n, 3),
                      sys_us_per_record=round((sys_ - sys0) * 1e6 / n, 3))))
EOF
	rm -f "$tmp/fmt.raw"
	unload
}

# ---- part 4 --------------------------------------------------------------

memory() {
	local at_rest under_load

	load
	at_rest=$("$tool" stats --json)
	ip netns exec $ns_cli "$crr" client -p $port -n $nports -P "$procs" \
		-t "$secs" $ip_srv >/dev/null
	under_load=$("$tool" stats --json)
	python3 -c '
import json, sys
print(json.dumps(dict(part="memory", at_rest=json.loads(sys.argv[1]),
		      under_load=json.loads(sys.argv[2]))))' \
		"$at_rest" "$under_load" >>"$extra"
	"$tool" stats >&2
	unload
}

# ---- profile -------------------------------------------------------------

# profile COND [LINK]: perf record -a during one run of COND, then the top
# of perf report (software clock: TCG has no hardware counters)
profile() {
	local cond=$1 link=${2:-veth} ns=$ns_cli addr=$ip_srv

	[ "$link" = lo ] && ns=$ns_lo addr=127.0.0.1
	cond_start "$cond" || return 1
	[ "$cond" = tcpdump ] && { start_tcpdump "$ns" "$link" || return 1; }
	perf stat -a -e context-switches,cpu-migrations,irq_vectors:call_function_single_entry,irq_vectors:irq_work_entry,irq_vectors:reschedule_entry,syscalls:sys_enter_read,syscalls:sys_enter_ppoll \
		-o "$tmp/perf.stat" -- ip netns exec "$ns" "$crr" client -p $port \
		-n $nports -P "$procs" -t "$secs" "$addr"
	cat "$tmp/perf.stat"
	perf record -q -a -g -e cpu-clock -F "${BENCH_PROFILE_FREQ:-499}" -o "$tmp/perf.data" -- \
		ip netns exec "$ns" "$crr" client -p $port -n $nports \
		-P "$procs" -t "$secs" "$addr"
	[ "$cond" = tcpdump ] && stop_tcpdump >/dev/null
	cond_stop "$cond"
	echo "clocksource: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
	perf report -i "$tmp/perf.data" --no-children --sort comm --stdio \
		-g none 2>/dev/null | grep -v '^$' | grep -v '^#' | head -12
	perf report -i "$tmp/perf.data" --no-children --sort dso,sym \
		--comm tcptracectl,cat --stdio -g none 2>/dev/null |
		grep -v "^$" | grep -v "^#" | head -"${BENCH_PROFILE_LINES:-25}"
	perf report -i "$tmp/perf.data" --no-children --sort sym --stdio \
		-g none 2>/dev/null | grep -E ' tt_| read_hpet| memset' | head -20
	perf report -i "$tmp/perf.data" --no-children --percent-limit 0.01 --sort comm,dso,sym \
		--stdio -g none 2>/dev/null | grep -v '^$' | head -${BENCH_PROFILE_LINES:-60}
	unload
}

# ---- main ----------------------------------------------------------------

if [ -n "${BENCH_PROFILE:-}" ]; then
	setup || exit 1
	for c in $BENCH_PROFILE; do
		echo "==== profile $c"
		profile "$c"
	done
	exit 0
fi

was_loaded=0
module_loaded && was_loaded=1
setup || exit 1
start=$(date +%s)
part1
[ "${BENCH_LOSS:-1}" = 1 ] && for b in ${BENCH_LOSS_BUFS:-4096 16384 65536}; do loss $b; done
[ "${BENCH_READ:-1}" = 1 ] && readbench
memory
[ "$was_loaded" = 1 ] && load
log "took $(($(date +%s) - start)) s"

python3 "$here/report.py" --runs "$runs" --extra "$extra" \
	--meta "$(printf '{"kernel":"%s","cpus":%d,"rounds":%d,"secs":%s,"procs":%d,"clocksource":"%s","clockcheck":%s,"accel":"%s","bpftrace_skip":"%s","alt_ko":"%s","date":"%s"}' \
		"$(uname -r)" "$(nproc)" "$rounds" "$secs" "$procs" \
		"$clocksource" "$clockcheck_res" "${TCPTRACE_VM_ACCEL:-tcg,thread=single}" \
		"${bpftrace_skip//\"/\'}" "${alt_given//\"/\'}" "$(date -u +%FT%TZ)")" \
	--out "$out"
