#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Host tests of tcptracectl; no kernel module needed.

Usage: test_tcptracectl.py [TCPTRACECTL [FAKEDEV_SO]]

Records are packed here after module/uapi/tcptrace.h and fed to
'tcptracectl watch -i FILE'.  With FAKEDEV_SO (tests/fakedev.so), a FIFO
stands in for /dev/tcptrace and the shim answers the ioctls, which covers
the device paths: ABI check, poll/read, --duration, signals, stats, clear.
"""
import json
import os
import re
import resource
import select
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(HERE, "..", "tcptracectl"))
FAKEDEV = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else None

# --- the UAPI, as in module/uapi/tcptrace.h --------------------------------
RECORD_SIZE = 128
T_PACKET, T_STATE, T_SYNACK_RETRANSMIT, T_RETRANSMIT = 1, 2, 3, 4
T_RESET_SENT, T_RESET_RECEIVED, T_TIMEWAIT, T_DESTROY, T_LOST = 5, 6, 7, 8, 9
T_TIMEWAIT_END, T_LISTEN_OVERFLOW = 10, 11
DIR_IN, DIR_OUT = 1, 2
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 1, 2, 4, 8, 0x10, 0x20, 0x40, 0x80
(ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT1, FIN_WAIT2, TIME_WAIT, CLOSE,
 CLOSE_WAIT, LAST_ACK, LISTEN, CLOSING, NEW_SYN_RECV) = range(1, 13)

HEAD = struct.Struct("=HBBBBHIIQQ16s16sHHI16s")
PACKET = struct.Struct("=IIHBBI24x")
STATE = struct.Struct("=BBBBIIIIII12x")
SYNACK = struct.Struct("=III28x")
LOST = struct.Struct("=Q32x")
LISTEN = struct.Struct("=B3xIII24x")
assert HEAD.size == 88
assert PACKET.size == STATE.size == SYNACK.size == LOST.size == 40

NS1 = 4026531840
NS2 = 4026532000
T0 = 5_000_000_000


def addr(text):
    if ":" in text:
        return socket.inet_pton(socket.AF_INET6, text)
    return socket.inet_pton(socket.AF_INET, text) + bytes(12)


def record(rtype, body, ts, src=("0.0.0.0", 0), dst=("0.0.0.0", 0),
           netns=NS1, direction=0, cpu=0, pid=0, comm=b"", sock_id=0,
           family=None, length=RECORD_SIZE, version=1):
    if family is None:
        family = 0 if rtype == T_LOST else (
            socket.AF_INET6 if ":" in src[0] else socket.AF_INET)
    head = HEAD.pack(length, version, rtype, family, direction, cpu, netns,
                     pid, ts, sock_id, addr(src[0]), addr(dst[0]), src[1],
                     dst[1], 0, comm)
    return head + body + bytes(length - RECORD_SIZE)


def pkt(ts, src, dst, direction, flags, seq, ack=0, win=64240, plen=0,
        **kw):
    return record(T_PACKET, PACKET.pack(seq, ack, win, flags, 20, plen), ts,
                  src, dst, direction=direction, **kw)


def st(rtype, ts, local, remote, old=0, new=0, flags=0, snd_nxt=0,
       rcv_nxt=0, snd_una=0, seq=0, end_seq=0, timeo_ms=0, **kw):
    return record(rtype, STATE.pack(old, new, flags, 0, snd_nxt, rcv_nxt,
                                    snd_una, seq, end_seq, timeo_ms),
                  ts, local, remote, **kw)


def ms(n):
    return T0 + n * 1_000_000


CLI = ("10.0.0.1", 40000)
SRV = ("10.0.0.2", 8080)
CLI3 = ("10.0.0.3", 41000)
V6C = ("2001:db8::1", 50000)
V6S = ("2001:db8::2", 443)
CURL = dict(pid=321, comm=b"curl")
ODD_COMM = b'a"b\\c\x01\xff'

# (record bytes, expected JSON object or None when it must be skipped)
CASES = [
    (pkt(ms(0), CLI, SRV, DIR_OUT, SYN, 1000, cpu=1,
         sock_id=0xfedcba9876543210, **CURL),
     dict(ts_ns=ms(0), type="packet", netns=NS1, family=4,
          saddr="10.0.0.1", sport=40000, daddr="10.0.0.2", dport=8080,
          cpu=1, pid=321, comm="curl", sock_id=0xfedcba9876543210,
          dir="out", flags="S", seq=1000, ack=0, win=64240, len=0,
          rel_seq=0)),
    (st(T_STATE, ms(1), CLI, SRV, old=CLOSE, new=SYN_SENT, snd_nxt=1001,
        snd_una=1000, sock_id=7, **CURL),
     dict(ts_ns=ms(1), type="state", netns=NS1, family=4, saddr="10.0.0.1",
          sport=40000, daddr="10.0.0.2", dport=8080, cpu=0, pid=321,
          comm="curl", sock_id=7, old_state="CLOSE", new_state="SYN_SENT",
          snd_nxt=1001, rcv_nxt=0, snd_una=1000)),
    (st(T_RETRANSMIT, ms(2), CLI, SRV, old=SYN_SENT, flags=SYN, seq=1000,
        end_seq=1001, snd_nxt=1001, snd_una=1000, sock_id=7),
     dict(ts_ns=ms(2), type="retransmit", netns=NS1, family=4,
          saddr="10.0.0.1", sport=40000, daddr="10.0.0.2", dport=8080,
          cpu=0, pid=0, sock_id=7, flags="S", seq=1000, end_seq=1001,
          state="SYN_SENT", rel_seq=0, rel_end_seq=1)),
    (pkt(ms(3), SRV, CLI, DIR_IN, SYN | ACK, 5000, 1001, win=65160),
     dict(ts_ns=ms(3), type="packet", netns=NS1, family=4,
          saddr="10.0.0.2", sport=8080, daddr="10.0.0.1", dport=40000,
          cpu=0, pid=0, dir="in", flags="S.", seq=5000, ack=1001,
          win=65160, len=0, rel_seq=0, rel_ack=1)),
    (st(T_STATE, ms(4), CLI, SRV, old=SYN_SENT, new=ESTABLISHED,
        snd_nxt=1001, rcv_nxt=5001, snd_una=1001, sock_id=7),
     dict(ts_ns=ms(4), type="state", netns=NS1, family=4, saddr="10.0.0.1",
          sport=40000, daddr="10.0.0.2", dport=8080, cpu=0, pid=0,
          sock_id=7, old_state="SYN_SENT", new_state="ESTABLISHED",
          snd_nxt=1001, rcv_nxt=5001, snd_una=1001)),
    (pkt(ms(5), CLI, SRV, DIR_OUT, ACK, 1001, 5001, win=502),
     dict(ts_ns=ms(5), type="packet", netns=NS1, family=4,
          saddr="10.0.0.1", sport=40000, daddr="10.0.0.2", dport=8080,
          cpu=0, pid=0, dir="out", flags=".", seq=1001, ack=5001, win=502,
          len=0, rel_seq=1, rel_ack=1)),
    (pkt(ms(6), CLI, SRV, DIR_OUT, PSH | ACK, 1001, 5001, win=502, plen=100,
         **CURL),
     dict(ts_ns=ms(6), type="packet", netns=NS1, family=4,
          saddr="10.0.0.1", sport=40000, daddr="10.0.0.2", dport=8080,
          cpu=0, pid=321, comm="curl", dir="out", flags="P.", seq=1001,
          ack=5001, win=502, len=100, rel_seq=1, rel_ack=1)),
    (record(T_LOST, LOST.pack(123), ms(7), netns=0, cpu=2),
     dict(ts_ns=ms(7), type="lost", netns=0, family=0, cpu=2, pid=0,
          count=123)),
    # an unknown type with a larger len, then a newer record version
    (record(42, bytes(40), ms(8), CLI, SRV, length=256), None),
    (pkt(ms(9), CLI, SRV, DIR_OUT, RST, 1, version=2), None),
    (pkt(ms(10), CLI, SRV, DIR_OUT, FIN | ACK, 1101, 5001, win=502),
     dict(ts_ns=ms(10), type="packet", netns=NS1, family=4,
          saddr="10.0.0.1", sport=40000, daddr="10.0.0.2", dport=8080,
          cpu=0, pid=0, dir="out", flags="F.", seq=1101, ack=5001, win=502,
          len=0, rel_seq=101, rel_ack=1)),
    (st(T_STATE, ms(11), CLI, SRV, old=ESTABLISHED, new=FIN_WAIT1,
        snd_nxt=1102, rcv_nxt=5001, snd_una=1101),
     dict(ts_ns=ms(11), type="state", netns=NS1, family=4,
          saddr="10.0.0.1", sport=40000, daddr="10.0.0.2", dport=8080,
          cpu=0, pid=0, old_state="ESTABLISHED", new_state="FIN_WAIT1",
          snd_nxt=1102, rcv_nxt=5001, snd_una=1101)),
    (st(T_TIMEWAIT, ms(12), CLI, SRV, old=FIN_WAIT2, new=TIME_WAIT,
        snd_nxt=1102, rcv_nxt=5002, timeo_ms=60000),
     dict(ts_ns=ms(12), type="timewait", netns=NS1, family=4,
          saddr="10.0.0.1", sport=40000, daddr="10.0.0.2", dport=8080,
          cpu=0, pid=0, state="FIN_WAIT2", tw_substate="TIME_WAIT",
          timeo_ms=60000, snd_nxt=1102, rcv_nxt=5002)),
    # IPv6, in another netns, an ISN that wraps, a comm needing escapes
    (pkt(ms(13), V6C, V6S, DIR_OUT, SYN, 0xfffffff0, netns=NS2, cpu=3,
         pid=77, comm=ODD_COMM),
     dict(ts_ns=ms(13), type="packet", netns=NS2, family=6,
          saddr="2001:db8::1", sport=50000, daddr="2001:db8::2",
          dport=443, cpu=3, pid=77, comm='a"b\\c\x01\ufffd', dir="out",
          flags="S", seq=0xfffffff0, ack=0, win=64240, len=0, rel_seq=0)),
    (pkt(ms(14), V6S, V6C, DIR_IN, SYN | ACK, 7, 0xfffffff1, netns=NS2),
     dict(ts_ns=ms(14), type="packet", netns=NS2, family=6,
          saddr="2001:db8::2", sport=443, daddr="2001:db8::1",
          dport=50000, cpu=0, pid=0, dir="in", flags="S.", seq=7,
          ack=0xfffffff1, win=64240, len=0, rel_seq=0, rel_ack=1)),
    (pkt(ms(15), V6C, V6S, DIR_OUT, PSH | ACK, 0x11, 8, plen=10,
         netns=NS2),
     dict(ts_ns=ms(15), type="packet", netns=NS2, family=6,
          saddr="2001:db8::1", sport=50000, daddr="2001:db8::2",
          dport=443, cpu=0, pid=0, dir="out", flags="P.", seq=0x11, ack=8,
          win=64240, len=10, rel_seq=0x21, rel_ack=1)),
    # ISNs learnt from a SYN-ACK retransmission alone
    (record(T_SYNACK_RETRANSMIT, SYNACK.pack(9000, 3000, 2), ms(16), SRV,
            CLI3, sock_id=99),
     dict(ts_ns=ms(16), type="synack_retransmit", netns=NS1, family=4,
          saddr="10.0.0.2", sport=8080, daddr="10.0.0.3", dport=41000,
          cpu=0, pid=0, sock_id=99, snt_isn=9000, rcv_isn=3000,
          num_retrans=2)),
    (pkt(ms(17), CLI3, SRV, DIR_IN, ACK, 3001, 9001),
     dict(ts_ns=ms(17), type="packet", netns=NS1, family=4,
          saddr="10.0.0.3", sport=41000, daddr="10.0.0.2", dport=8080,
          cpu=0, pid=0, dir="in", flags=".", seq=3001, ack=9001,
          win=64240, len=0, rel_seq=1, rel_ack=1)),
    (st(T_RESET_SENT, ms(18), SRV, CLI3, old=ESTABLISHED, snd_nxt=9001,
        rcv_nxt=3001),
     dict(ts_ns=ms(18), type="reset_sent", netns=NS1, family=4,
          saddr="10.0.0.2", sport=8080, daddr="10.0.0.3", dport=41000,
          cpu=0, pid=0, state="ESTABLISHED", snd_nxt=9001, rcv_nxt=3001)),
    (st(T_RESET_RECEIVED, ms(19), CLI3, SRV, old=ESTABLISHED, snd_nxt=3001,
        rcv_nxt=9001),
     dict(ts_ns=ms(19), type="reset_received", netns=NS1, family=4,
          saddr="10.0.0.3", sport=41000, daddr="10.0.0.2", dport=8080,
          cpu=0, pid=0, state="ESTABLISHED", snd_nxt=3001, rcv_nxt=9001)),
    (st(T_DESTROY, ms(20), SRV, CLI3, old=CLOSE, snd_nxt=9001,
        rcv_nxt=3001),
     dict(ts_ns=ms(20), type="destroy", netns=NS1, family=4,
          saddr="10.0.0.2", sport=8080, daddr="10.0.0.3", dport=41000,
          cpu=0, pid=0, state="CLOSE", snd_nxt=9001, rcv_nxt=3001)),
    # a new SYN on the first 4-tuple forgets the old ISNs
    (pkt(ms(21), CLI, SRV, DIR_OUT, SYN, 777777),
     dict(ts_ns=ms(21), type="packet", netns=NS1, family=4,
          saddr="10.0.0.1", sport=40000, daddr="10.0.0.2", dport=8080,
          cpu=0, pid=0, dir="out", flags="S", seq=777777, ack=0,
          win=64240, len=0, rel_seq=0)),
    (pkt(ms(22), SRV, CLI, DIR_IN, RST | ACK, 0, 777778, win=0),
     dict(ts_ns=ms(22), type="packet", netns=NS1, family=4,
          saddr="10.0.0.2", sport=8080, daddr="10.0.0.1", dport=40000,
          cpu=0, pid=0, dir="in", flags="R.", seq=0, ack=777778, win=0,
          len=0, rel_ack=1)),
    (pkt(ms(23), ("10.0.0.5", 1234), ("10.0.0.6", 80), DIR_OUT,
         SYN | ECE | CWR | URG, 42),
     dict(ts_ns=ms(23), type="packet", netns=NS1, family=4,
          saddr="10.0.0.5", sport=1234, daddr="10.0.0.6", dport=80, cpu=0,
          pid=0, dir="out", flags="SUEW", seq=42, ack=0, win=64240, len=0,
          rel_seq=0)),
    (pkt(ms(24), ("10.0.0.7", 1), ("10.0.0.8", 2), DIR_IN, 0, 5),
     dict(ts_ns=ms(24), type="packet", netns=NS1, family=4,
          saddr="10.0.0.7", sport=1, daddr="10.0.0.8", dport=2, cpu=0,
          pid=0, dir="in", flags="none", seq=5, ack=0, win=64240, len=0)),
    (st(T_DESTROY, ms(25), ("fe80::1", 22), ("::ffff:10.1.2.3", 60000),
        old=LAST_ACK, netns=NS2),
     dict(ts_ns=ms(25), type="destroy", netns=NS2, family=6,
          saddr="fe80::1", sport=22, daddr="::ffff:10.1.2.3", dport=60000,
          cpu=0, pid=0, state="LAST_ACK", snd_nxt=0, rcv_nxt=0)),
    # ECN SYN-ACK; a retransmitted SYN (same ISN) keeps the peer's ISN
    (pkt(ms(26), ("10.0.0.6", 80), ("10.0.0.5", 1234), DIR_IN,
         SYN | ACK | ECE, 100, 43),
     dict(ts_ns=ms(26), type="packet", netns=NS1, family=4,
          saddr="10.0.0.6", sport=80, daddr="10.0.0.5", dport=1234, cpu=0,
          pid=0, dir="in", flags="S.E", seq=100, ack=43, win=64240, len=0,
          rel_seq=0, rel_ack=1)),
    (pkt(ms(27), ("10.0.0.5", 1234), ("10.0.0.6", 80), DIR_OUT, SYN, 42),
     dict(ts_ns=ms(27), type="packet", netns=NS1, family=4,
          saddr="10.0.0.5", sport=1234, daddr="10.0.0.6", dport=80, cpu=0,
          pid=0, dir="out", flags="S", seq=42, ack=0, win=64240, len=0,
          rel_seq=0)),
    (pkt(ms(28), ("10.0.0.6", 80), ("10.0.0.5", 1234), DIR_IN,
         FIN | PSH | ACK, 101, 43, plen=5),
     dict(ts_ns=ms(28), type="packet", netns=NS1, family=4,
          saddr="10.0.0.6", sport=80, daddr="10.0.0.5", dport=1234, cpu=0,
          pid=0, dir="in", flags="FP.", seq=101, ack=43, win=64240, len=5,
          rel_seq=1, rel_ack=1)),
]

INPUT = b"".join(r for r, _ in CASES)
EXPECTED = [e for _, e in CASES if e is not None]

# exact text lines for the same input
EXPECTED_TEXT = [
    "0.000000 net:[4026531840] out 10.0.0.1:40000 > 10.0.0.2:8080 [S] "
    "seq 1000 (rel 0) win 64240 len 0 pid 321 (curl)",
    "0.001000 net:[4026531840] state 10.0.0.1:40000 <-> 10.0.0.2:8080 "
    "CLOSE -> SYN_SENT pid 321 (curl)",
    "0.002000 net:[4026531840] retransmit 10.0.0.1:40000 <-> "
    "10.0.0.2:8080 [S] seq 1000 (rel 0) end_seq 1001 (rel 1) state SYN_SENT",
    "0.003000 net:[4026531840] in 10.0.0.2:8080 > 10.0.0.1:40000 [S.] "
    "seq 5000 (rel 0) ack 1001 (rel 1) win 65160 len 0",
    "0.004000 net:[4026531840] state 10.0.0.1:40000 <-> 10.0.0.2:8080 "
    "SYN_SENT -> ESTABLISHED",
    "0.005000 net:[4026531840] out 10.0.0.1:40000 > 10.0.0.2:8080 [.] "
    "seq 1001 (rel 1) ack 5001 (rel 1) win 502 len 0",
    "0.006000 net:[4026531840] out 10.0.0.1:40000 > 10.0.0.2:8080 [P.] "
    "seq 1001 (rel 1) ack 5001 (rel 1) win 502 len 100 pid 321 (curl)",
    "0.007000 *** LOST 123 records (cpu 2) ***",
    "0.010000 net:[4026531840] out 10.0.0.1:40000 > 10.0.0.2:8080 [F.] "
    "seq 1101 (rel 101) ack 5001 (rel 1) win 502 len 0",
    "0.011000 net:[4026531840] state 10.0.0.1:40000 <-> 10.0.0.2:8080 "
    "ESTABLISHED -> FIN_WAIT1",
    "0.012000 net:[4026531840] timewait 10.0.0.1:40000 <-> 10.0.0.2:8080 "
    "state FIN_WAIT2 substate TIME_WAIT timeo 60000ms "
    "snd_nxt 1102 (rel 102) rcv_nxt 5002 (rel 2)",
    "0.013000 net:[4026532000] out [2001:db8::1]:50000 > [2001:db8::2]:443 "
    "[S] seq 4294967280 (rel 0) win 64240 len 0 pid 77 (a\"b\\c??)",
    "0.014000 net:[4026532000] in [2001:db8::2]:443 > [2001:db8::1]:50000 "
    "[S.] seq 7 (rel 0) ack 4294967281 (rel 1) win 64240 len 0",
    "0.015000 net:[4026532000] out [2001:db8::1]:50000 > [2001:db8::2]:443 "
    "[P.] seq 17 (rel 33) ack 8 (rel 1) win 64240 len 10",
    "0.016000 net:[4026531840] synack_retransmit 10.0.0.2:8080 <-> "
    "10.0.0.3:41000 #2 snt_isn 9000 rcv_isn 3000",
    "0.017000 net:[4026531840] in 10.0.0.3:41000 > 10.0.0.2:8080 [.] "
    "seq 3001 (rel 1) ack 9001 (rel 1) win 64240 len 0",
    "0.018000 net:[4026531840] reset_sent 10.0.0.2:8080 <-> "
    "10.0.0.3:41000 state ESTABLISHED snd_nxt 9001 (rel 1) "
    "rcv_nxt 3001 (rel 1)",
    "0.019000 net:[4026531840] reset_received 10.0.0.3:41000 <-> "
    "10.0.0.2:8080 state ESTABLISHED snd_nxt 3001 (rel 1) "
    "rcv_nxt 9001 (rel 1)",
    "0.020000 net:[4026531840] destroy 10.0.0.2:8080 <-> 10.0.0.3:41000 "
    "state CLOSE snd_nxt 9001 (rel 1) rcv_nxt 3001 (rel 1)",
    "0.021000 net:[4026531840] out 10.0.0.1:40000 > 10.0.0.2:8080 [S] "
    "seq 777777 (rel 0) win 64240 len 0",
    "0.022000 net:[4026531840] in 10.0.0.2:8080 > 10.0.0.1:40000 [R.] "
    "seq 0 ack 777778 (rel 1) win 0 len 0",
    "0.023000 net:[4026531840] out 10.0.0.5:1234 > 10.0.0.6:80 [SUEW] "
    "seq 42 (rel 0) win 64240 len 0",
    "0.024000 net:[4026531840] in 10.0.0.7:1 > 10.0.0.8:2 [none] seq 5 "
    "win 64240 len 0",
    "0.025000 net:[4026532000] destroy [fe80::1]:22 <-> "
    "[::ffff:10.1.2.3]:60000 state LAST_ACK snd_nxt 0 rcv_nxt 0",
    "0.026000 net:[4026531840] in 10.0.0.6:80 > 10.0.0.5:1234 [S.E] "
    "seq 100 (rel 0) ack 43 (rel 1) win 64240 len 0",
    "0.027000 net:[4026531840] out 10.0.0.5:1234 > 10.0.0.6:80 [S] "
    "seq 42 (rel 0) win 64240 len 0",
    "0.028000 net:[4026531840] in 10.0.0.6:80 > 10.0.0.5:1234 [FP.] "
    "seq 101 (rel 1) ack 43 (rel 1) win 64240 len 5",
]

# The process behind each record's local end, carried by watch from the
# records made in its context (pid set) to those made in softirq (pid 0):
# curl connected 10.0.0.1:40000, the process with the odd name [fd00::1]:50000.
OWNERS = {i: (321, "curl") for i in (0, 1, 2, 3, 4, 5, 6, 8, 9, 10)}
OWNERS.update({i: (77, 'a"b\\c\x01\ufffd') for i in (11, 12, 13)})
for i, (opid, ocomm) in OWNERS.items():
    EXPECTED[i].update(owner_pid=opid, owner_comm=ocomm)
    if EXPECTED[i]["pid"] == 0:
        EXPECTED_TEXT[i] += " owner %d (%s)" % (
            opid, "curl" if opid == 321 else 'a"b\\c??')

NOT_LOADED = ("tcptracectl: tcptrace module not loaded: "
              "insmod module/tcptrace.ko\n")

passed = 0
failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok   " + name)
    else:
        failed += 1
        print("FAIL " + name + (": " + detail if detail else ""))


def run(args, env=None, data=None, timeout=20, **kw):
    full_env = dict(os.environ)
    full_env.pop("TCPTRACE_DEVICE", None)
    full_env.update(env or {})
    return subprocess.run([TOOL] + args, input=data, capture_output=True,
                          env=full_env, timeout=timeout, **kw)


def write_input(tmp, name, data):
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def json_lines(out):
    return [json.loads(line) for line in out.decode().splitlines()]


def diff_objs(got, exp):
    for i, (g, e) in enumerate(zip(got, exp)):
        if g != e:
            keys = sorted(set(g) | set(e))
            bad = {k: (g.get(k), e.get(k)) for k in keys
                   if g.get(k) != e.get(k)}
            return "record %d differs (got, expected): %r" % (i, bad)
    if len(got) != len(exp):
        return "got %d objects, expected %d" % (len(got), len(exp))
    return ""


def test_timewait_and_overflow(tmp):
    """TIMEWAIT_END gets the lifetime from its TIMEWAIT; LISTEN_OVERFLOW."""
    cli, srv = ("10.0.0.1", 40000), ("10.0.0.2", 8080)
    tw = st(T_TIMEWAIT, ms(10), cli, srv, old=FIN_WAIT2, new=TIME_WAIT,
            timeo_ms=60000, snd_nxt=11, rcv_nxt=22)
    end = st(T_TIMEWAIT_END, ms(10) + 60_004_000_000, cli, srv,
             old=TIME_WAIT, new=TIME_WAIT, flags=1, snd_nxt=11, rcv_nxt=22)
    ovf = record(T_LISTEN_OVERFLOW, LISTEN.pack(2, 3, 5, 4), ms(11),
                 ("fd00::2", 8080), ("fd00::1", 51000), sock_id=9)
    path = write_input(tmp, "tw.bin", tw + ovf + end)
    p = run(["watch", "--json", "-i", path])
    got = json_lines(p.stdout) if p.returncode == 0 else []
    check("json: listen_overflow", len(got) == 3 and got[1] == dict(
        ts_ns=ms(11), type="listen_overflow", netns=NS1, family=6,
        saddr="fd00::2", sport=8080, daddr="fd00::1", dport=51000, cpu=0,
        pid=0, sock_id=9, reason="accept_queue_full_ack_dropped",
        syn_queue=3, accept_queue=5, backlog=4), repr(got))
    check("json: timewait_end with its duration", len(got) == 3 and
          got[2] == dict(ts_ns=ms(10) + 60_004_000_000, type="timewait_end",
                         netns=NS1, family=4, saddr="10.0.0.1", sport=40000,
                         daddr="10.0.0.2", dport=8080, cpu=0, pid=0,
                         tw_substate="TIME_WAIT", end="expired", snd_nxt=11,
                         rcv_nxt=22, duration_ns=60_004_000_000), repr(got))
    p = run(["watch", "-i", path])
    lines = p.stdout.decode().splitlines()
    check("text: timewait_end", len(lines) == 3 and lines[2].endswith(
        "timewait_end 10.0.0.1:40000 <-> 10.0.0.2:8080 substate TIME_WAIT "
        "expired after 60.004s"), repr(lines))
    check("text: listen_overflow", len(lines) == 3 and lines[1].endswith(
        "listen_overflow [fd00::2]:8080 <-> [fd00::1]:51000 "
        "accept_queue_full_ack_dropped syn_queue 3 accept_queue 5 "
        "backlog 4"), repr(lines))
    # without its TIMEWAIT the duration is unknown, not made up
    path = write_input(tmp, "tw2.bin", end)
    p = run(["watch", "--json", "-i", path])
    got = json_lines(p.stdout) if p.returncode == 0 else [{}]
    check("json: timewait_end alone has no duration",
          "duration_ns" not in got[0] and got[0].get("end") == "expired",
          repr(got))


TW_MAX = 256 * 1024     # CONN_TW_MAX in conn.h
STORY_MAX_OPEN = 65536  # story.h


def test_timewait_many(tmp):
    """TIME_WAIT durations with more timewait sockets than the table holds:
    the oldest starts are forgotten and counted, the rest all known, and
    the table's slots are reused once their sockets have ended."""
    over = 10

    def ep(i):
        return ("10.%d.%d.%d" % (i // 62500, i // 250 % 250, i % 250 + 1),
                1024 + i % 60000)

    def tw(i, ts):
        return st(T_TIMEWAIT, ts, ep(i), SRV, old=FIN_WAIT2, new=TIME_WAIT,
                  timeo_ms=60000)

    def end(i, ts):
        return st(T_TIMEWAIT_END, ts, ep(i), SRV, old=TIME_WAIT,
                  new=TIME_WAIT, flags=1)

    n = TW_MAX + over
    parts = [tw(i, T0 + i) for i in range(n)]
    parts += [end(i, T0 + 60_000_000_000 + i) for i in range(n)]
    # then connections that come and go, 100 in TIME_WAIT at a time, on
    # slots of the ring used before
    t1 = T0 + 70_000_000_000
    for i in range(1000):
        parts.append(tw(n + i, t1 + 1000 * i))
        if i >= 100:
            parts.append(end(n + i - 100, t1 + 1000 * i + 1))
    for i in range(900, 1000):
        parts.append(end(n + i, t1 + 2_000_000 + i))
    path = write_input(tmp, "twmany.bin", b"".join(parts))
    del parts
    p = run(["watch", "--json", "-i", path], timeout=120)
    ends = [json.loads(line) for line in p.stdout.decode().splitlines()
            if b'"timewait_end"' in line.encode()]
    known = [("duration_ns" in e) for e in ends]
    check("timewait many: every end printed", p.returncode == 0 and
          len(ends) == n + 1000, "%d %r" % (len(ends), p.stderr[-300:]))
    check("timewait many: the oldest %d forgotten, the rest known" % over,
          known == [False] * over + [True] * (n - over + 1000),
          "%d unknown" % known.count(False))
    check("timewait many: durations", len(ends) == n + 1000 and
          ends[over].get("duration_ns") == 60_000_000_000 and
          ends[-1].get("duration_ns") == 2_000_000 + 999 - 1000 * 999 and
          ends[n].get("duration_ns") == 100 * 1000 + 1,
          repr([ends[over], ends[n], ends[-1]]))
    # each timewait record also opens a connection, of which the tool
    # follows STORY_MAX_OPEN at once
    check("timewait many: the losses are reported",
          p.stderr.decode() == "tcptracectl: warning: watch: over %d "
          "connections followed at once: the oldest %d were followed no "
          "further (summarised early as incomplete; their later records "
          "have no owner_pid, owner_comm or protocol checks)\n"
          "tcptracectl: warning: watch: over %d "
          "timewait sockets at once: the start of %d of them was "
          "forgotten; their timewait_end lines have no duration\n"
          % (STORY_MAX_OPEN, n - STORY_MAX_OPEN, TW_MAX, over),
          p.stderr.decode())
    os.unlink(path)


def test_followed_many(tmp):
    """More connections open at once than the tool follows: the oldest
    are followed no further, their later records lose their owner, and
    watch says how many on exit."""
    over = 3
    n = STORY_MAX_OPEN + over

    def ep(i):
        return ("10.%d.%d.%d" % (i // 62500, i // 250 % 250, i % 250 + 1),
                1024 + i % 60000)

    parts = [pkt(T0 + i, ep(i), SRV, DIR_OUT, SYN, 1000, pid=7 + i,
                 comm=b"c") for i in range(n)]
    # a retransmission (in softirq, no pid) of the first and the last SYN
    parts.append(pkt(T0 + n, ep(0), SRV, DIR_OUT, SYN, 1000))
    parts.append(pkt(T0 + n + 1, ep(n - 1), SRV, DIR_OUT, SYN, 1000))
    path = write_input(tmp, "followed.bin", b"".join(parts))
    p = run(["watch", "--json", "-i", path], timeout=60)
    got = json_lines(p.stdout) if p.returncode == 0 else []
    check("followed many: every record printed", len(got) == n + 2,
          "%d %r" % (len(got), p.stderr[-300:]))
    check("followed many: the first one's owner forgotten, the last's not",
          len(got) == n + 2 and "owner_pid" not in got[-2] and
          got[-1].get("owner_pid") == 7 + n - 1, repr(got[-2:]))
    check("followed many: the loss is reported",
          p.stderr.decode() == "tcptracectl: warning: watch: over %d "
          "connections followed at once: the oldest %d were followed no "
          "further (summarised early as incomplete; their later records "
          "have no owner_pid, owner_comm or protocol checks)\n"
          % (STORY_MAX_OPEN, over + 1), p.stderr.decode())
    os.unlink(path)


def test_json(tmp, path):
    p = run(["watch", "--json", "-i", path])
    check("json: exit 0", p.returncode == 0, p.stderr.decode())
    got = json_lines(p.stdout)
    check("json: every value exact", got == EXPECTED, diff_objs(got, EXPECTED))
    err = p.stderr.decode().splitlines()
    check("json: unknown type and newer version skipped, one warning",
          len(err) == 1 and err[0].startswith("tcptracectl: warning: ")
          and "type 42" in err[0] and "len 256" in err[0], repr(err))
    raw = p.stdout.decode()
    check("json: comm escapes", '"comm":"a\\"b\\\\c\\u0001\\ufffd"' in raw,
          raw.splitlines()[12] if len(raw.splitlines()) > 12 else raw)
    check("json: sock_id is a plain number",
          '"sock_id":18364758544493064720' in raw)
    lines = raw.splitlines()
    check("json: key order starts with ts_ns, type",
          all(line.startswith('{"ts_ns":') and ',"type":"' in line
              for line in lines))
    # -T does not change JSON
    p2 = run(["watch", "--json", "-T", "-i", path])
    check("json: -T leaves JSON alone", p2.stdout == p.stdout)
    # stdin input
    p3 = run(["watch", "--json", "-i", "-"], data=INPUT)
    check("json: -i - reads stdin", p3.returncode == 0 and
          p3.stdout == p.stdout, p3.stderr.decode())


def test_json_numbers(tmp):
    """Numbers at each digit-count boundary and addresses whose bytes have
    1 to 3 digits, as watch --json writes them (four digits at a time,
    address bytes from a table): exact, no leading zero."""
    vals = [0, 9, 10, 99, 100, 999, 1000, 9999, 10000, 99999999,
            100000000, 100000001, 1000000001, 2**32 - 1, 2**32,
            10**12, 10**12 + 7, 10**16 - 1, 10**16, 10**17 + 5,
            2**32 * 10**8 - 1, 2**32 * 10**8, 10**19 - 1, 10**19,
            2**64 - 1]
    data = b"".join(
        st(T_STATE, v, ("255.0.10.199", 65535), ("1.99.100.0", 9),
           old=ESTABLISHED, new=FIN_WAIT1, snd_nxt=v & 0xffffffff,
           sock_id=v or 1)
        for v in vals)
    path = write_input(tmp, "numbers.bin", data)
    p = run(["watch", "--json", "-i", path])
    raw = p.stdout.decode()
    lines = raw.splitlines()
    exp = ['{"ts_ns":%d,"type":"state","netns":%d,"family":4,'
           '"saddr":"255.0.10.199","sport":65535,"daddr":"1.99.100.0",'
           '"dport":9,"cpu":0,"pid":0,"sock_id":%d,'
           '"old_state":"ESTABLISHED","new_state":"FIN_WAIT1",'
           '"snd_nxt":%d,"rcv_nxt":0,"snd_una":0}'
           % (v, NS1, v or 1, v & 0xffffffff) for v in vals]
    bad = [(g, e) for g, e in zip(lines, exp) if g != e]
    check("json: numbers at every digit-count boundary, address bytes",
          p.returncode == 0 and len(lines) == len(vals) and not bad,
          p.stderr.decode() + repr(bad[:2]))


def test_json_kept_texts(tmp):
    """watch --json keeps the text of an IPv4 address by its last byte and
    that of the last command name: addresses that share a last byte, and
    names that differ only after their NUL or in length, alternate; each
    record must still print its own."""
    addrs = ["10.0.0.5", "192.168.1.5", "10.0.0.5", "0.0.0.5", "10.0.0.5",
             "255.255.255.255", "10.0.1.255"]
    comms = [b"ab", b"ab\0xyz", b"abc", b"ab", b"a\"b", b"ab",
             b"fifteen-chars-x"]
    data = b"".join(
        st(T_STATE, 1000 + i, (a, 1000 + i), (addrs[-1 - i], 80),
           old=ESTABLISHED, new=FIN_WAIT1, pid=100 + i, comm=c,
           sock_id=1 + i)
        for i, (a, c) in enumerate(zip(addrs, comms)))
    path = write_input(tmp, "kept.bin", data)
    p = run(["watch", "--json", "-i", path])
    objs = json_lines(p.stdout) if p.returncode == 0 else []
    got = [(o.get("saddr"), o.get("daddr"), o.get("comm")) for o in objs]
    exp = [(a, addrs[-1 - i], c.split(b"\0")[0].decode())
           for i, (a, c) in enumerate(zip(addrs, comms))]
    check("json: kept address and command-name texts follow each record",
          got == exp, "%r" % [(g, e) for g, e in zip(got, exp) if g != e])


def test_text(tmp, path):
    p = run(["watch", "-i", path])
    check("text: exit 0", p.returncode == 0, p.stderr.decode())
    got = p.stdout.decode().splitlines()
    bad = [(g, e) for g, e in zip(got, EXPECTED_TEXT) if g != e]
    check("text: line count", len(got) == len(EXPECTED_TEXT),
          "%d != %d" % (len(got), len(EXPECTED_TEXT)))
    check("text: lines exact", not bad,
          "\n  got:      %s\n  expected: %s" % bad[0] if bad else "")
    p = run(["watch", "-T", "-i", path])
    got = p.stdout.decode().splitlines()
    check("text: -T absolute CLOCK_MONOTONIC time",
          len(got) == len(EXPECTED_TEXT) and
          got[0].startswith("5.000000000 net:[4026531840] out ") and
          got[3].startswith("5.003000000 "), got[0] if got else "")


def count_types(out):
    return [(o["type"], o.get("sport"), o.get("dport"))
            for o in json_lines(out)]


def test_filters(tmp, path):
    def sel(args):
        p = run(["watch", "--json", "-i", path] + args)
        if p.returncode != 0:
            return None
        return [(o["ts_ns"] - T0) // 1_000_000 for o in json_lines(p.stdout)]

    check("filter -p 443", sel(["-p", "443"]) == [7, 13, 14, 15],
          repr(sel(["-p", "443"])))
    check("filter -p repeated", sel(["-p", "443", "--port", "80"]) ==
          [7, 13, 14, 15, 23, 26, 27, 28],
          repr(sel(["-p", "443", "--port", "80"])))
    check("filter -6", sel(["-6"]) == [7, 13, 14, 15, 25], repr(sel(["-6"])))
    check("filter -4", sel(["-4"]) == [0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12,
                                       16, 17, 18, 19, 20, 21, 22, 23, 24,
                                       26, 27, 28],
          repr(sel(["-4"])))
    check("filter -4 -6 is everything", sel(["-4", "-6"]) ==
          [(e["ts_ns"] - T0) // 1_000_000 for e in EXPECTED])
    check("filter -n", sel(["-n", str(NS2)]) == [7, 13, 14, 15, 25],
          repr(sel(["-n", str(NS2)])))
    check("filter -n repeated", sel(["-n", "1", "--netns", str(NS2)]) ==
          [7, 13, 14, 15, 25])
    check("filter --lport (in: dport is local)", sel(["-L", "8080"]) ==
          [7, 16, 17, 18, 20], repr(sel(["-L", "8080"])))
    check("filter --rport (in: sport is remote)", sel(["--rport", "8080"]) ==
          [0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 19, 21, 22],
          repr(sel(["--rport", "8080"])))
    check("filters combine with AND", sel(["-6", "-p", "8080"]) == [7])
    check("-c stops after N printed", sel(["-c", "3"]) == [0, 1, 2])
    check("-c counts filtered records", sel(["-p", "443", "-c", "2"]) ==
          [7, 13])
    p = run(["watch", "-c", "2", "-i", path])
    check("-c in text mode", len(p.stdout.decode().splitlines()) == 2)


def test_many_connections(tmp):
    """ISN tracking is bounded: old connections are evicted, new ones kept."""
    n = 20000
    syns, acks = [], []
    for i in range(n):
        c = ("10.%d.%d.1" % (i >> 8, i & 255), 30000)
        syns.append(pkt(i, c, SRV, DIR_IN, SYN, i * 7))
        acks.append(pkt(n + i, c, SRV, DIR_IN, ACK, i * 7 + 1, 1))
    path = write_input(tmp, "many.bin", b"".join(syns + acks))
    p = run(["watch", "--json", "-p", "8080", "-i", path])
    objs = json_lines(p.stdout)[n:] if p.returncode == 0 else []
    first = sum("rel_seq" in o for o in objs[:1000])
    last = sum(o.get("rel_seq") == 1 for o in objs[-1000:])
    check("many connections: recent ISNs kept", len(objs) == n and
          last == 1000, "%d objects, %d of the last 1000" % (len(objs), last))
    check("many connections: old ISNs evicted", first < 1000,
          "%d of the first 1000 kept" % first)


def test_records_errors(tmp):
    good = CASES[0][0]
    short = bytearray(good)
    short[0:2] = struct.pack("=H", 100)
    p = run(["watch", "-i", write_input(tmp, "short.bin", good + short)])
    err = p.stderr.decode()
    check("len < 128 is an error", p.returncode == 1 and
          err == "tcptracectl: malformed record at input offset 128: "
          "len 100, version 1\n", repr(err))
    check("records before a bad one are printed",
          len(p.stdout.decode().splitlines()) == 1)
    v0 = bytearray(good)
    v0[2] = 0
    p = run(["watch", "--json", "-i", write_input(tmp, "v0.bin", bytes(v0))])
    check("version 0 is an error", p.returncode == 1 and
          "malformed record" in p.stderr.decode() and not p.stdout)
    p = run(["watch", "-i", write_input(tmp, "trunc.bin", good + good[:60])])
    check("truncated input is an error", p.returncode == 1 and
          "truncated record at input offset 128" in p.stderr.decode(),
          p.stderr.decode())
    big = record(77, bytes(40), 1, CLI, SRV, length=60000) + good
    p = run(["watch", "--json", "-i", write_input(tmp, "big.bin", big)])
    check("a 60000-byte unknown record is skipped", p.returncode == 0 and
          len(json_lines(p.stdout)) == 1, p.stderr.decode())
    p = run(["watch", "-i", write_input(tmp, "empty.bin", b"")])
    check("empty input", p.returncode == 0 and not p.stdout and not p.stderr)
    p = run(["watch", "-i", os.path.join(tmp, "missing.bin")])
    check("missing input file", p.returncode == 1 and
          p.stderr.decode().startswith("tcptracectl: cannot open "))


def test_cli_errors(tmp):
    env = {"TCPTRACE_DEVICE": "/nonexistent"}
    for cmd in (["watch"], ["stats"], ["clear"], ["watch", "-p", "80"]):
        p = run(cmd, env=env)
        check("not loaded: %s" % " ".join(cmd), p.returncode == 1 and
              p.stderr.decode() == NOT_LOADED, repr(p.stderr))
    p = run(["version"], env=env)
    check("not loaded: version", p.returncode == 1 and
          p.stderr.decode() == NOT_LOADED and
          p.stdout.decode().startswith("tcptracectl 0.1.0 "))
    p = run(["stats"], env={"TCPTRACE_DEVICE": "/dev/null"})
    check("not a tcptrace device", p.returncode == 1 and
          p.stderr.decode().startswith("tcptracectl: /dev/null: "
                                       "TCPTRACE_IOC_VERSION failed: "),
          p.stderr.decode())

    noperm = os.path.join(tmp, "noperm")
    with open(noperm, "w"):
        pass
    os.chmod(noperm, 0)
    kw = {}
    if os.geteuid() == 0:
        os.chmod(tmp, 0o755)
        kw["preexec_fn"] = lambda: (os.setgid(65534), os.setuid(65534))
    p = run(["stats"], env={"TCPTRACE_DEVICE": noperm}, **kw)
    check("permission denied", p.returncode == 1 and p.stderr.decode() ==
          "tcptracectl: permission denied opening %s: run as root "
          "(needs CAP_NET_ADMIN)\n" % noperm, p.stderr.decode())

    usage = [
        (["watch", "--bogus"], "--bogus"),
        (["watch", "-x"], "-x"),
        (["--bogus"], "--bogus"),
        (["frobnicate"], "frobnicate"),
        ([], "missing command"),
        (["watch", "extra"], "extra"),
        (["watch", "-p"], "requires an argument"),
        (["watch", "--port"], "requires an argument"),
        (["watch", "-p", "0"], "--port"),
        (["watch", "-p", "65536"], "--port"),
        (["watch", "-p", "http"], "--port"),
        (["watch", "-p", "-1"], "--port"),
        (["watch", "-p", "80x"], "--port"),
        (["watch", "--port="], "--port"),
        (["watch", "-L", "0"], "--lport"),
        (["watch", "-D", "99999"], "--rport"),
        (["watch", "-n", "abc"], "--netns"),
        (["watch", "-n", "4294967296"], "--netns"),
        (["watch", "-c", "-5"], "--count"),
        (["watch", "-c", "0"], "--count"),
        (["watch", "-c", "ten"], "--count"),
        (["watch", "--duration", "0"], "--duration"),
        (["watch", "--duration", "-1"], "--duration"),
        (["watch", "--duration", "soon"], "--duration"),
        (["stats", "--bogus"], "--bogus"),
        (["stats", "extra"], "extra"),
        (["clear", "--json"], "--json"),
        (["help", "nope"], "nope"),
    ]
    for args, needle in usage:
        p = run(args, env=env)
        err = p.stderr.decode()
        check("usage error %r" % args, p.returncode == 2 and
              err.startswith("tcptracectl: ") and needle in err and
              err.count("\n") == 1 and not p.stdout, "rc %d %r" %
              (p.returncode, err))


def test_help():
    for args in (["--help"], ["-h"], ["help"]):
        p = run(args)
        out = p.stdout.decode()
        check("help %r" % args, p.returncode == 0 and "EXAMPLES" in out and
              "tcptracectl watch --json -c 20 > out.jsonl" in out and
              "TCPTRACE_DEVICE" in out and not p.stderr)
    for args in (["watch", "--help"], ["watch", "-h"], ["help", "watch"]):
        p = run(args)
        out = p.stdout.decode()
        check("help %r" % args, p.returncode == 0 and "EXAMPLES" in out and
              "tcptracectl watch -p 8080" in out and "--duration" in out and
              "[ADDR]:PORT" in out and "rel_seq" in out and
              "that thread takes nice -10 when the process runs at nice 0" in
              " ".join(out.split()))
    for cmd in ("stats", "clear", "version"):
        p = run([cmd, "--help"], env={"TCPTRACE_DEVICE": "/nonexistent"})
        check("help %s" % cmd, p.returncode == 0 and
              "EXAMPLES" in p.stdout.decode())
    p = run(["--version"], env={"TCPTRACE_DEVICE": "/nonexistent"})
    check("--version needs no device", p.returncode == 0 and
          p.stdout.decode() == "tcptracectl 0.1.0 (ABI version 1, "
          "record version 1)\n")


# --- the device paths, with a FIFO and tests/fakedev.so -------------------

class FakeDevice:
    def __init__(self, tmp):
        self.path = os.path.join(tmp, "tcptrace.fifo")
        os.mkfifo(self.path)
        # Held open for writing, so that the tool's open() never blocks.
        self.fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)
        self.env = {"TCPTRACE_DEVICE": self.path, "LD_PRELOAD": FAKEDEV}

    def write(self, data):
        os.write(self.fd, data)

    def close(self):
        os.close(self.fd)


def read_line(proc, timeout=5.0):
    """Reads one line from proc.stdout without blocking past timeout."""
    buf = b""
    end = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    while not buf.endswith(b"\n"):
        left = end - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        c = os.read(fd, 1)
        if not c:
            return None
        buf += c
    return buf.decode()


def spawn(args, env, preexec=None):
    full_env = dict(os.environ)
    full_env.update(env)
    return subprocess.Popen([TOOL] + args, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=full_env,
                            preexec_fn=preexec)


def interrupt(proc):
    """Ends a spawned tool with SIGINT (SIGKILL if it takes over 10 s)."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


SCHED_OTHER, SCHED_BATCH, SCHED_IDLE = 0, 3, 5


def thread_stat(pid, field):
    """{tid: the numeric field (numbered as in proc(5)) of its stat} for
    the threads of pid."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
            # fields 1 and 2 end at the last ')'
            fields = f.read().rsplit(")", 1)[1].split()
        out[int(tid)] = int(fields[field - 3])
    return out


def thread_policies(pid):
    """{tid: scheduling policy} of the threads of pid (stat field 41)."""
    return thread_stat(pid, 41)


def feed(dev, data, seconds=20):
    """Writes data into the FIFO device; what could not be written."""
    end = time.monotonic() + seconds
    while data and time.monotonic() < end:
        try:
            data = data[os.write(dev.fd, data):]
        except BlockingIOError:
            time.sleep(0.01)
    return data


def read_lines(proc, n, timeout=20.0):
    """Reads n lines or more of proc.stdout (fewer on EOF or timeout)."""
    got, fd = 0, proc.stdout.fileno()
    end = time.monotonic() + timeout
    while got < n:
        left = end - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        b = os.read(fd, 1 << 16)
        if not b:
            break
        got += b.count(b"\n")
    return got


def idle_policies(env, preexec=None):
    """The thread policies of a 'watch --json' into a pipe, with nothing to
    read; it is then stopped with SIGINT."""
    proc = spawn(["watch", "--json"], env, preexec)
    time.sleep(0.3)
    pol = thread_policies(proc.pid)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=10)
    return pol


def test_pause_pri(dev, tmp):
    """After a small read the reading thread pauses in ppoll() for the
    device's POLLPRI, which the module reports once a ring is a quarter
    full, so that a burst ends the pause: not in a wait the device cannot
    end."""
    log = os.path.join(tmp, "pri.log")
    proc = spawn(["watch", "--json"], dict(dev.env, TCPTRACE_FAKE_LOG=log))
    try:
        time.sleep(0.3)
        left = feed(dev, CASES[0][0])
        got = read_lines(proc, 1)
        time.sleep(0.3)
    finally:
        interrupt(proc)
    try:
        with open(log) as f:
            waits = f.read().split()[1::2]
    except OSError:
        waits = []
    pri = "%#x" % select.POLLPRI
    check("watch: after a small read the reading thread waits for the "
          "device's POLLPRI",
          not left and got == 1 and waits[:1] == ["%#x" % select.POLLIN]
          and pri in waits[1:], repr(waits))


def test_background(dev):
    """Formatting at SCHED_IDLE when the output is not a terminal, back at
    SCHED_OTHER while more than 1 MiB of records wait (put there by the
    reading thread if need be) and after the reading ends, and never with
    TCPTRACE_FOREGROUND=1 or under a policy set by the user; the reading
    thread at SCHED_OTHER always."""
    pol = idle_policies(dict(dev.env, TCPTRACE_FOREGROUND="1"))
    check("watch: TCPTRACE_FOREGROUND=1 formats at SCHED_OTHER",
          len(pol) == 2 and set(pol.values()) == {SCHED_OTHER}, repr(pol))
    # a policy the user chose (chrt -b) is left alone
    pol = idle_policies(dev.env, lambda: os.sched_setscheduler(
        0, os.SCHED_BATCH, os.sched_param(0)))
    check("watch under chrt -b: both threads stay SCHED_BATCH",
          len(pol) == 2 and set(pol.values()) == {SCHED_BATCH}, repr(pol))

    # after the reading ends (a signal), the rest at SCHED_OTHER, though
    # the queue never held 1 MiB
    n = 2000
    proc = spawn(["watch", "--json"], dev.env)
    try:
        time.sleep(0.3)
        left = feed(dev, CASES[0][0] * n)
        time.sleep(0.5)
        before = thread_policies(proc.pid).get(proc.pid)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.2)
        # past the first batch: the thread takes the next one
        got = read_lines(proc, 700)
        time.sleep(0.2)
        after = thread_policies(proc.pid).get(proc.pid)
        got += read_lines(proc, n - got)
        rc = proc.wait(10)
        check("watch: SCHED_IDLE below the mark, SCHED_OTHER once a signal "
              "ended the reading, and every record printed",
              not left and before == SCHED_IDLE and after == SCHED_OTHER and
              got == n and rc == 0, "left %d, %r then %r, %d of %d lines, "
              "rc %r" % (len(left), before, after, got, n, rc))
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()

    n = 80000  # 10 MB of records: far past the 1 MiB mark
    proc = spawn(["watch", "--json"], dev.env)
    try:
        time.sleep(0.3)
        pol = thread_policies(proc.pid)
        check("watch into a pipe: the formatting thread at SCHED_IDLE, the "
              "reading thread at SCHED_OTHER",
              pol.get(proc.pid) == SCHED_IDLE and
              sorted(pol.values()) == [SCHED_OTHER, SCHED_IDLE], repr(pol))
        # the output blocked while the records pile up in the queue
        left = feed(dev, CASES[0][0] * n)
        time.sleep(0.5)
        # a little output read: the thread takes the next batch, with
        # more than 1 MiB waiting behind it
        got = read_lines(proc, 4000)
        time.sleep(0.2)
        busy = thread_policies(proc.pid).get(proc.pid)
        got += read_lines(proc, n - got)
        time.sleep(0.2)
        idle = thread_policies(proc.pid).get(proc.pid)
        check("watch: SCHED_OTHER while over 1 MiB of records wait, "
              "SCHED_IDLE again once they are printed",
              not left and busy == SCHED_OTHER and idle == SCHED_IDLE and
              got == n, "left %d, %r then %r, %d of %d lines" % (
                  len(left), busy, idle, got, n))
    finally:
        interrupt(proc)

    # A formatting thread that cannot run (here: held up in write(), the
    # output not read) cannot see the queue grow: the reading thread
    # returns it to SCHED_OTHER once more than 1 MiB waits.
    proc = spawn(["watch", "--json"], dev.env)
    try:
        time.sleep(0.3)
        # 250 KB: its output fills the pipe and the tool's buffer, and
        # stops the thread with less than the mark left in the queue
        left = feed(dev, CASES[0][0] * 2000)
        time.sleep(0.5)
        blocked = thread_policies(proc.pid).get(proc.pid)
        # 2 MB more, read into the queue while the thread still waits
        left += feed(dev, CASES[0][0] * 16000)
        time.sleep(0.5)
        returned = thread_policies(proc.pid).get(proc.pid)
        got = read_lines(proc, 18000)
        time.sleep(0.2)
        idle = thread_policies(proc.pid).get(proc.pid)
        check("watch: a formatting thread held up is returned to "
              "SCHED_OTHER by the reading thread past 1 MiB, and goes "
              "back to SCHED_IDLE once all is printed",
              not left and blocked == SCHED_IDLE and
              returned == SCHED_OTHER and idle == SCHED_IDLE and
              got == 18000, "left %d, %r, %r, then %r, %d of 18000 lines" % (
                  len(left), blocked, returned, idle, got))
    finally:
        interrupt(proc)


def may_take_nice(n):
    """Whether this process may lower its nice value to n: root (or
    CAP_SYS_NICE, not looked for), or RLIMIT_NICE as can_nice() reads it."""
    if os.geteuid() == 0:
        return True
    cur = resource.getrlimit(resource.RLIMIT_NICE)[0]
    return cur == resource.RLIM_INFINITY or 20 - n <= cur


def test_reader_nice(dev):
    """The reading thread takes nice -10 when it may and the process runs
    at nice 0; the formatting thread keeps nice 0; a process started at
    another nice value keeps it in both threads."""
    for start, want in ((0, -10 if may_take_nice(-10) else 0), (5, 5)):
        proc = spawn(["watch", "--json"], dev.env,
                     (lambda n=start: os.nice(n)) if start else None)
        try:
            time.sleep(0.3)
            nices = thread_stat(proc.pid, 19)
            reader = [n for t, n in nices.items() if t != proc.pid]
            check("watch started at nice %d: the reading thread at nice "
                  "%d, the formatting thread at %d" % (start, want, start),
                  reader == [want] and nices.get(proc.pid) == start,
                  repr(nices))
        finally:
            interrupt(proc)


def minor_faults(pid, tid):
    """Minor page faults of thread tid so far (/proc stat field 10)."""
    with open("/proc/%d/task/%d/stat" % (pid, tid)) as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])


def test_reader_faults(dev):
    """The reading thread reads into memory it made and touched before its
    first read: with the formatting keeping up it takes no page fault, and
    so never waits on the memory-map lock, which a formatting thread at
    SCHED_IDLE may hold while it waits for a CPU."""
    proc = spawn(["watch", "--json"], dev.env)
    faults, left, got = None, b"", 0
    try:
        time.sleep(0.3)
        readers = [t for t in thread_policies(proc.pid) if t != proc.pid]
        if len(readers) == 1:
            before = minor_faults(proc.pid, readers[0])
            # 40 batches of 500 records (62.5 KiB, about a chunk each),
            # printed as they come: 2.4 MiB in all, more than the chunks
            # made at the start, which the thread reuses
            for _ in range(40):
                left += feed(dev, CASES[0][0] * 500)
                got += read_lines(proc, 500)
            faults = minor_faults(proc.pid, readers[0]) - before
        check("watch: the reading thread takes no page fault while the "
              "formatting keeps up (2.4 MiB read)",
              faults == 0 and not left and got == 20000,
              "threads %r, %r faults, left %d, %d of 20000 lines" % (
                  readers, faults, len(left), got))
    finally:
        interrupt(proc)


def test_device(tmp):
    dev = FakeDevice(tmp)
    try:
        p = run(["stats"], env=dict(dev.env, TCPTRACE_FAKE_ABI="2"))
        check("ABI mismatch", p.returncode == 1 and p.stderr.decode() ==
              "tcptracectl: ABI version mismatch: module has 2, "
              "tcptracectl expects 1\n", p.stderr.decode())
        p = run(["watch", "--duration", "5"],
                env=dict(dev.env, TCPTRACE_FAKE_ABI="0"))
        check("ABI mismatch before watching", p.returncode == 1 and
              "module has 0" in p.stderr.decode())

        p = run(["version"], env=dev.env)
        check("version", p.returncode == 0 and p.stdout.decode() ==
              "tcptracectl 0.1.0 (ABI version 1, record version 1)\n"
              "module ABI version 1\n", p.stdout.decode())

        p = run(["stats"], env=dev.env)
        exp = ("abi_version: 1\nnr_cpus: 4\nring_records: 4096\n"
               "events: 1234\ndrops: 5\nmalformed: 6\nexpect_evictions: 7\n"
               "queued: 8\nring_bytes: 2097152\nexpect_slots: 16384\n"
               "expect_bytes: 131072\nexpect_used: 9\n"
               "per_type:\n  packet: 101\n  state: 102\n"
               "  synack_retransmit: 103\n  retransmit: 104\n"
               "  reset_sent: 105\n  reset_received: 106\n"
               "  timewait: 107\n  destroy: 108\n  lost: 109\n"
               "  timewait_end: 110\n  listen_overflow: 111\n"
               "  type_12: 3\n")
        check("stats text", p.returncode == 0 and p.stdout.decode() == exp,
              p.stdout.decode() + p.stderr.decode())
        p = run(["stats", "--json"], env=dev.env)
        try:
            obj = json.loads(p.stdout)
        except ValueError:
            obj = None
        check("stats --json", p.returncode == 0 and obj == {
            "abi_version": 1, "nr_cpus": 4, "ring_records": 4096,
            "events": 1234, "drops": 5, "malformed": 6,
            "expect_evictions": 7, "queued": 8,
            "ring_bytes": 2097152, "expect_slots": 16384,
            "expect_bytes": 131072, "expect_used": 9,
            "per_type": {"packet": 101, "state": 102,
                         "synack_retransmit": 103, "retransmit": 104,
                         "reset_sent": 105, "reset_received": 106,
                         "timewait": 107, "destroy": 108, "lost": 109,
                         "timewait_end": 110, "listen_overflow": 111,
                         "type_12": 3}}, p.stdout.decode())

        log = os.path.join(tmp, "fake.log")
        p = run(["clear"], env=dict(dev.env, TCPTRACE_FAKE_LOG=log))
        check("clear issues TCPTRACE_IOC_CLEAR", p.returncode == 0 and
              not p.stdout and os.path.exists(log) and
              open(log).read() == "clear\n")

        # --duration ends a watch without any traffic
        t = time.monotonic()
        p = run(["watch", "--duration", "0.5"], env=dev.env, timeout=10)
        dt = time.monotonic() - t
        check("--duration with no traffic", p.returncode == 0 and
              not p.stdout and 0.45 <= dt < 5, "rc %d, %.2fs, %r" %
              (p.returncode, dt, p.stderr))

        # live output through a pipe, then SIGINT
        proc = spawn(["watch"], dev.env)
        time.sleep(0.2)
        dev.write(CASES[0][0])
        line1 = read_line(proc)
        # a record split across writes
        dev.write(CASES[3][0][:50])
        time.sleep(0.1)
        dev.write(CASES[3][0][50:])
        line2 = read_line(proc)
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = None
        err = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
        check("watch: lines arrive live through a pipe",
              line1 == EXPECTED_TEXT[0] + "\n", repr(line1))
        check("watch: record split across reads",
              line2 is not None and line2.startswith("0.003000 ") and
              "[S.] seq 5000 (rel 0) ack 1001 (rel 1)" in line2, repr(line2))
        check("watch: SIGINT exits 0", rc == 0 and not err,
              "rc %r %r" % (rc, err))

        proc = spawn(["watch", "--json"], dev.env)
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = None
        proc.stdout.close()
        proc.stderr.close()
        check("watch: SIGTERM exits 0", rc == 0, "rc %r" % rc)

        # Records read while the output is blocked are still printed after
        # SIGINT; a second signal stops at once and says how many were left.
        n = 4000
        for sigs in (1, 2):
            proc = spawn(["watch", "--json"], dev.env)
            time.sleep(0.2)
            data = CASES[0][0] * n
            end = time.monotonic() + 20
            while data and time.monotonic() < end:
                try:
                    data = data[os.write(dev.fd, data):]
                except BlockingIOError:
                    time.sleep(0.01)
            # the last of it out of the FIFO, into the tool's queue
            time.sleep(0.5)
            for _ in range(sigs):
                proc.send_signal(signal.SIGINT)
                time.sleep(0.2)
            try:
                out, err = proc.communicate(timeout=20)
                rc = proc.returncode
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
                rc = None
            lines = out.count(b"\n")
            err = err.decode()
            m = re.match(r"tcptracectl: warning: (\d+) records read from "
                         r"\S+ were left unhandled at the end\n$", err)
            if sigs == 1:
                check("watch: SIGINT with the output blocked: all %d "
                      "records read are printed" % n,
                      not data and rc == 0 and lines == n and not err,
                      "rc %r, %d lines, %r" % (rc, lines, err))
            else:
                check("watch: a second SIGINT stops at once and counts "
                      "what was left", not data and rc == 0 and m and
                      lines < n and lines + int(m.group(1)) == n,
                      "rc %r, %d lines, %r" % (rc, lines, err))

        test_background(dev)
        test_pause_pri(dev, tmp)
        test_reader_faults(dev)
        test_reader_nice(dev)

        proc = spawn(["watch", "--json", "-c", "2"], dev.env)
        dev.write(CASES[0][0] + CASES[1][0] + CASES[2][0])
        try:
            out, err = proc.communicate(timeout=5)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            rc = None
        check("watch: -c 2 from the device", rc == 0 and
              json_lines(out) == EXPECTED[:2], "rc %r %r" % (rc, err))
    finally:
        dev.close()


# --- tune, against a fake /proc/sys in TCPTRACE_SYSCTL_ROOT ---------------

# (file, directory, initial value), in the order tune prints them
SYSCTLS = [
    ("tcp_synack_retries", "net/ipv4", 5),
    ("tcp_syn_retries", "net/ipv4", 6),
    ("somaxconn", "net/core", 4096),
    ("tcp_max_syn_backlog", "net/ipv4", 128),
    ("tcp_abort_on_overflow", "net/ipv4", 0),
    ("tcp_syncookies", "net/ipv4", 1),
    ("tcp_fin_timeout", "net/ipv4", 60),
]
# option, file, allowed range
TUNE_OPTS = [
    ("--synack-retries", "tcp_synack_retries", (0, 255)),
    ("--syn-retries", "tcp_syn_retries", (1, 127)),
    ("--somaxconn", "somaxconn", (0, 2147483647)),
    ("--max-syn-backlog", "tcp_max_syn_backlog", (1, 2147483647)),
    ("--abort-on-overflow", "tcp_abort_on_overflow", (0, 1)),
]
INITIAL = {name: val for name, _, val in SYSCTLS}
NOBODY = 65534


class FakeSysctl:
    """A tree of sysctl files in the layout of /proc/sys."""

    def __init__(self, tmp, name):
        self.root = os.path.join(tmp, name)
        self.dirs = {}
        for sysctl, subdir, val in SYSCTLS:
            os.makedirs(os.path.join(self.root, subdir), exist_ok=True)
            self.dirs[sysctl] = subdir
            with open(self.path(sysctl), "w") as f:
                f.write("%d\n" % val)
        self.env = {"TCPTRACE_SYSCTL_ROOT": self.root}

    def path(self, sysctl):
        return os.path.join(self.root, self.dirs[sysctl], sysctl)

    def snapshot(self):
        """The content of each file (the kind, when not a regular file)."""
        snap = {}
        for sysctl in self.dirs:
            path = self.path(sysctl)
            if os.path.islink(path) or not os.path.isfile(path):
                snap[sysctl] = "link" if os.path.islink(path) else "dir"
            else:
                with open(path, "rb") as f:
                    snap[sysctl] = f.read()
        return snap

    def values(self):
        return {k: int(v) for k, v in self.snapshot().items()}


def tune(fake, args, **kw):
    return run(["tune"] + args, env=fake.env, **kw)


def test_tune_show(tmp):
    fake = FakeSysctl(tmp, "show")
    p = tune(fake, [])
    exp = "".join("%s: %d\n" % (n, v) for n, _, v in SYSCTLS)
    check("tune: prints every value", p.returncode == 0 and
          p.stdout.decode() == exp and not p.stderr,
          repr(p.stdout) + repr(p.stderr))
    for opt in ("--json", "-j"):
        p = tune(fake, [opt])
        try:
            obj = json.loads(p.stdout)
        except ValueError:
            obj = None
        check("tune %s: one JSON object" % opt, p.returncode == 0 and
              obj == INITIAL and p.stdout.count(b"\n") == 1 and
              list(obj) == [n for n, _, _ in SYSCTLS], repr(p.stdout))
    with open(fake.path("tcp_fin_timeout"), "w") as f:
        f.write("-1\n")
    with open(fake.path("somaxconn"), "w") as f:
        f.write("2147483647\n")
    p = tune(fake, [])
    check("tune: negative and large values read back",
          p.returncode == 0 and "tcp_fin_timeout: -1\n" in p.stdout.decode()
          and "somaxconn: 2147483647\n" in p.stdout.decode(),
          p.stdout.decode())
    with open(fake.path("tcp_syncookies"), "w") as f:
        f.write("1 2\n")
    p = tune(fake, [])
    check("tune: a file that is not one integer is an error",
          p.returncode == 1 and not p.stdout and p.stderr.decode() ==
          "tcptracectl: cannot read %s: not an integer\n" %
          fake.path("tcp_syncookies"), p.stderr.decode())
    p = run(["tune"], env={"TCPTRACE_SYSCTL_ROOT":
                           os.path.join(tmp, "missing")})
    check("tune: missing sysctl root", p.returncode == 1 and not p.stdout and
          p.stderr.decode() == "tcptracectl: cannot read %s: No such file "
          "or directory\n" % os.path.join(tmp, "missing", "net", "ipv4",
                                          "tcp_synack_retries"),
          p.stderr.decode())


def test_tune_set(tmp):
    fake = FakeSysctl(tmp, "set")
    p = tune(fake, ["--abort-on-overflow", "1", "--max-syn-backlog", "16",
                    "--somaxconn", "16", "--syn-retries", "3",
                    "--synack-retries", "2"])
    check("tune: old -> new for each, in a fixed order",
          p.returncode == 0 and not p.stderr and p.stdout.decode() ==
          "tcp_synack_retries: 5 -> 2\ntcp_syn_retries: 6 -> 3\n"
          "somaxconn: 4096 -> 16\ntcp_max_syn_backlog: 128 -> 16\n"
          "tcp_abort_on_overflow: 0 -> 1\n",
          repr(p.stdout) + repr(p.stderr))
    snap = fake.snapshot()
    check("tune: the files are written", snap == dict(
        INITIAL, tcp_synack_retries=b"2\n", tcp_syn_retries=b"3\n",
        somaxconn=b"16\n", tcp_max_syn_backlog=b"16\n",
        tcp_abort_on_overflow=b"1\n", tcp_syncookies=b"1\n",
        tcp_fin_timeout=b"60\n"), repr(snap))

    fake = FakeSysctl(tmp, "set-one")
    p = tune(fake, ["--somaxconn=1024"])
    exp = {k: v for k, v in INITIAL.items()}
    exp["somaxconn"] = 1024
    check("tune: only the values given are written", p.returncode == 0 and
          p.stdout.decode() == "somaxconn: 4096 -> 1024\n" and
          fake.values() == exp, repr(p.stdout))
    p = tune(fake, ["--json", "--somaxconn", "64", "--synack-retries", "1"])
    try:
        obj = json.loads(p.stdout)
    except ValueError:
        obj = None
    check("tune --json when writing", p.returncode == 0 and obj == {
        "tcp_synack_retries": {"old": 5, "new": 1},
        "somaxconn": {"old": 1024, "new": 64}} and
        p.stdout.count(b"\n") == 1, repr(p.stdout))
    p = tune(fake, ["--synack-retries", "1"])
    check("tune: writing the same value", p.returncode == 0 and
          p.stdout.decode() == "tcp_synack_retries: 1 -> 1\n")

    for opt, name, (lo, hi) in TUNE_OPTS:
        for val in (lo, hi):
            fake = FakeSysctl(tmp, "bound")
            p = tune(fake, [opt, str(val)])
            exp = dict(INITIAL)
            exp[name] = val
            check("tune %s %d: the bound is allowed" % (opt, val),
                  p.returncode == 0 and fake.values() == exp and
                  p.stdout.decode() == "%s: %d -> %d\n" %
                  (name, INITIAL[name], val), p.stderr.decode())


def test_tune_bad_values(tmp):
    fake = FakeSysctl(tmp, "bad")
    before = fake.snapshot()
    bad_range = [
        ("--synack-retries", "256"), ("--synack-retries", "300"),
        ("--synack-retries", "-1"), ("--syn-retries", "0"),
        ("--syn-retries", "128"), ("--syn-retries", "-3"),
        ("--somaxconn", "-1"), ("--somaxconn", "2147483648"),
        ("--max-syn-backlog", "0"), ("--max-syn-backlog", "-5"),
        ("--max-syn-backlog", "-2147483648"),
        ("--max-syn-backlog", "2147483648"),
        ("--abort-on-overflow", "2"), ("--abort-on-overflow", "-1"),
        ("--somaxconn", "99999999999999999999"),
        ("--syn-retries", "-99999999999999999999"),
    ]
    ranges = {opt: (name, r) for opt, name, r in TUNE_OPTS}
    for opt, val in bad_range:
        name, (lo, hi) = ranges[opt]
        # a good value first: it must not be written either
        good = (["--synack-retries", "1"] if opt != "--synack-retries"
                else ["--syn-retries", "2"])
        for args in ([opt, val], good + [opt, val], [opt, val] + good):
            p = tune(fake, args)
            check("tune %s: out of range" % " ".join(args),
                  p.returncode == 2 and not p.stdout and p.stderr.decode() ==
                  "tcptracectl: %s %s: out of range %d..%d (%s)\n" %
                  (opt, val, lo, hi, name) and fake.snapshot() == before,
                  "rc %d %r" % (p.returncode, p.stderr))
    for opt, name, (lo, hi) in TUNE_OPTS:
        for val in ("", "12abc", "+", "+5", " 5", "5 ", "0x10", "1e3", "-",
                    "abc", "1.5", "٣"):
            p = tune(fake, ["--synack-retries", "1", opt, val])
            err = p.stderr.decode()
            check("tune %s %r: not a number" % (opt, val),
                  p.returncode == 2 and not p.stdout and
                  err.startswith("tcptracectl: %s " % opt) and name in err
                  and "%d..%d" % (lo, hi) in err and err.count("\n") == 1
                  and fake.snapshot() == before,
                  "rc %d %r" % (p.returncode, err))
    p = tune(fake, ["--syn-retries=", "--somaxconn", "1"])
    check("tune --syn-retries= (empty)", p.returncode == 2 and
          p.stderr.decode() == "tcptracectl: --syn-retries '': not a "
          "decimal integer, expected 1..127 (tcp_syn_retries)\n" and
          fake.snapshot() == before, p.stderr.decode())

    usage = [
        (["tune", "extra"], "extra"),
        (["tune", "--bogus"], "--bogus"),
        (["tune", "-x"], "-x"),
        (["tune", "--somaxconn"], "requires an argument"),
        (["tune", "--netns"], "requires an argument"),
        (["tune", "--netns-pid", "0"], "--netns-pid"),
        (["tune", "--netns-pid", "-1"], "--netns-pid"),
        (["tune", "--netns-pid", "init"], "--netns-pid"),
        (["tune", "--netns-pid", "2147483648"], "--netns-pid"),
        (["tune", "--netns", "a/b"], "a/b"),
        (["tune", "--netns", ".."], ".."),
        (["tune", "--netns", ""], "--netns"),
        (["tune", "--netns", "x", "--netns-pid", "1"], "--netns-pid"),
        (["tune", "--netns-pid", "1", "--netns", "x", "--somaxconn", "1"],
         "cannot be used together"),
    ]
    for args, needle in usage:
        p = run(args, env=fake.env)
        err = p.stderr.decode()
        check("tune: usage error %r" % args[1:], p.returncode == 2 and
              err.startswith("tcptracectl: ") and needle in err and
              err.count("\n") == 1 and not p.stdout and
              fake.snapshot() == before, "rc %d %r" % (p.returncode, err))


def as_nobody():
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def unwritable(tmp, fake, sysctl):
    """Makes one file of @fake readable but not writable by the tool;
    returns the keywords to run it with."""
    path = fake.path(sysctl)
    if os.geteuid() != 0:
        os.chmod(path, 0o444)
        return {}
    # root writes through any mode: run the tool as nobody, owner of all
    # the other files
    os.chmod(tmp, 0o755)
    for dirpath, dirnames, filenames in os.walk(fake.root):
        for n in dirnames + filenames:
            os.chown(os.path.join(dirpath, n), NOBODY, NOBODY)
    os.chown(path, 0, 0)
    return {"preexec_fn": as_nobody}


def test_tune_failures(tmp):
    # nothing to roll back: the first write fails
    fake = FakeSysctl(tmp, "perm")
    before = fake.snapshot()
    kw = unwritable(tmp, fake, "tcp_synack_retries")
    p = tune(fake, ["--synack-retries", "2", "--somaxconn", "16"], **kw)
    check("tune: permission denied", p.returncode == 1 and not p.stdout and
          p.stderr.decode() == "tcptracectl: permission denied writing "
          "%s: run as root\n" % fake.path("tcp_synack_retries") and
          fake.snapshot() == before, p.stderr.decode())
    p = tune(fake, [], **kw)
    check("tune: reading needs no permission to write", p.returncode == 0 and
          p.stdout.decode().startswith("tcp_synack_retries: 5\n"))

    # the fourth write fails: the three before it are undone, last first
    fake = FakeSysctl(tmp, "rollback")
    before = fake.snapshot()
    kw = unwritable(tmp, fake, "tcp_max_syn_backlog")
    p = tune(fake, ["--synack-retries", "2", "--syn-retries", "3",
                    "--somaxconn", "16", "--max-syn-backlog", "16",
                    "--abort-on-overflow", "1"], **kw)
    check("tune: a failed write rolls back the earlier ones",
          p.returncode == 1 and not p.stdout and p.stderr.decode() ==
          "tcptracectl: permission denied writing %s: run as root\n"
          "tcptracectl: rolled back somaxconn to 4096\n"
          "tcptracectl: rolled back tcp_syn_retries to 6\n"
          "tcptracectl: rolled back tcp_synack_retries to 5\n" %
          fake.path("tcp_max_syn_backlog"), p.stderr.decode())
    snap = fake.snapshot()
    check("tune: every file is back as it was", snap == before,
          "%r != %r" % (snap, before))

    # a file that cannot even be read: nothing is written at all
    for kind in ("dir", "link"):
        fake = FakeSysctl(tmp, "unreadable-" + kind)
        path = fake.path("somaxconn")
        os.unlink(path)
        if kind == "dir":
            os.mkdir(path)
        else:
            os.symlink(os.path.join(tmp, "nowhere"), path)
        before = fake.snapshot()
        p = tune(fake, ["--synack-retries", "2", "--syn-retries", "3",
                        "--somaxconn", "16"])
        err = p.stderr.decode()
        check("tune: old values are read before writing (%s)" % kind,
              p.returncode == 1 and not p.stdout and
              err.startswith("tcptracectl: cannot read %s: " % path) and
              err.count("\n") == 1 and fake.snapshot() == before, err)


def test_tune_netns(tmp):
    fake = FakeSysctl(tmp, "netns")
    before = fake.snapshot()
    name = "tcptrace-test-missing-%d" % os.getpid()
    p = tune(fake, ["--netns", name, "--somaxconn", "16"])
    check("tune --netns: missing namespace", p.returncode == 1 and
          not p.stdout and p.stderr.decode() ==
          "tcptracectl: network namespace '%s' not found: no /run/netns/%s "
          "(see 'ip netns list')\n" % (name, name) and
          fake.snapshot() == before, p.stderr.decode())
    p = tune(fake, ["--netns-pid", "2147483647", "--somaxconn", "16"])
    check("tune --netns-pid: no such process", p.returncode == 1 and
          not p.stdout and p.stderr.decode() ==
          "tcptracectl: network namespace of PID 2147483647 not found: "
          "no process 2147483647 (/proc/2147483647/ns/net)\n" and
          fake.snapshot() == before, p.stderr.decode())
    # the tool's own namespace, entered again: allowed to root only
    p = tune(fake, ["--netns-pid", str(os.getpid())])
    if os.geteuid() == 0:
        check("tune --netns-pid: reads in that namespace",
              p.returncode == 0 and p.stdout.decode() ==
              "".join("%s: %d\n" % (n, v) for n, _, v in SYSCTLS),
              p.stderr.decode())
    os.chmod(tmp, 0o755)
    p = tune(fake, ["--netns-pid", "1"],
             **({"preexec_fn": as_nobody} if os.geteuid() == 0 else {}))
    err = p.stderr.decode()
    check("tune --netns-pid: permission denied", p.returncode == 1 and
          not p.stdout and err.startswith("tcptracectl: permission denied ")
          and "run as root" in err and err.count("\n") == 1, err)


def test_tune_help():
    for args in (["tune", "--help"], ["tune", "-h"], ["help", "tune"]):
        p = run(args)
        out = p.stdout.decode()
        check("help %r" % args, p.returncode == 0 and not p.stderr and
              "EXAMPLES" in out and "tcptracectl tune --synack-retries 2"
              in out and "tcptracectl tune --netns srv --somaxconn 16 "
              "--max-syn-backlog 16" in out and "TCPTRACE_SYSCTL_ROOT" in out
              and "Environment:" in out and "--netns-pid PID" in out and
              all(n in out for n, _, _ in SYSCTLS) and
              all(o in out for o, _, _ in TUNE_OPTS))
    p = run(["--help"])
    check("help lists tune", p.returncode == 0 and
          "\n  tune " in p.stdout.decode())


def run_extra(tmp):
    """The tests of the other subcommands, each module in its own file:
    its run(base, tmp) gets this module for record(), check() and run()."""
    import importlib
    sys.path.insert(0, HERE)
    for name in ("test_views", "test_pcap", "test_metrics", "test_fuzz_regress"):
        if os.path.exists(os.path.join(HERE, name + ".py")):
            importlib.import_module(name).run(sys.modules[__name__], tmp)


def main():
    if not os.access(TOOL, os.X_OK):
        print("FAIL no executable at %s" % TOOL)
        print("0 passed, 1 failed")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        path = write_input(tmp, "trace.bin", INPUT)
        test_json(tmp, path)
        test_json_numbers(tmp)
        test_json_kept_texts(tmp)
        test_timewait_and_overflow(tmp)
        test_timewait_many(tmp)
        test_followed_many(tmp)
        test_text(tmp, path)
        test_filters(tmp, path)
        test_records_errors(tmp)
        test_many_connections(tmp)
        test_cli_errors(tmp)
        test_help()
        test_tune_show(tmp)
        test_tune_set(tmp)
        test_tune_bad_values(tmp)
        test_tune_failures(tmp)
        test_tune_netns(tmp)
        test_tune_help()
        run_extra(tmp)
        if FAKEDEV:
            test_device(tmp)
        else:
            print("skip device tests: no fakedev.so given")
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
