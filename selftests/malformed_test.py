#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Hand-made IPv4 and IPv6 packets through tcptrace's netfilter hooks (as
root, in the guest, with the module loaded).

Raw packets, headers written by hand, go from a client namespace to a
server namespace over veth, so each passes the hooks twice: leaving (out)
and arriving (in).  Every case has source ports of its own, and expects
either exact records or none, and an exact number of malformed segments:

  - TCP headers shorter than 20 bytes, data offsets below 5 words or past
    the packet, an IPv6 extension header that runs past the packet: each
    counted malformed where it leaves and where it arrives, never recorded;
  - IPv4 options, IPv6 hop-by-hop and destination options headers before
    TCP, a 60-byte TCP header: recorded with exactly the fields they were
    made with;
  - fragments, IPv4 and IPv6: a segment is recorded once, from its first
    fragment (len counts that fragment's data); a later fragment alone is
    no segment; a first fragment too short for the TCP header is malformed;
  - all 256 combinations of the 8 TCP flags with no payload, SYN|FIN|RST
    and no flag at all included: those with SYN, FIN or RST recorded with
    exactly their flags, the others (which answer nothing) not recorded.

The kernel drops all of these on arrival (their TCP checksums are 0): no
socket sees them, only the hooks do.
"""
import json
import os
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(HERE, "..", "userspace", "tcptracectl")
C_ADDR, S_ADDR = "10.203.1.1", "10.203.1.2"
C6_ADDR, S6_ADDR = "fd00:203:1::1", "fd00:203:1::2"
FLAG_LETTERS = "FSRP.UEW"  # bits 0..7, as the tool prints them
SYN, FIN, RST, ACK = 0x02, 0x01, 0x04, 0x10

results = []


def ok(name, cond, detail=""):
    results.append(bool(cond))
    print("%s %d %s" % ("ok" if cond else "not ok", len(results), name))
    if not cond and detail:
        for line in str(detail).splitlines()[:20]:
            print("#   " + line)


def sh(cmd):
    subprocess.run(cmd, shell=True, check=True)


def stats():
    out = subprocess.run([TOOL, "stats", "--json"], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def ns_inode(name):
    return os.stat("/run/netns/" + name).st_ino


def flag_text(f):
    return "".join(c for i, c in enumerate(FLAG_LETTERS) if f >> i & 1) or \
        "none"


def ip4(payload, ihl=5, options=b"", ident=0, frag=0):
    """An IPv4 header; tot_len and the checksum are the kernel's
    (IP_HDRINCL).  frag: the flags and offset field."""
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 0, ident, frag, 64,
                       socket.IPPROTO_TCP, 0, socket.inet_aton(C_ADDR),
                       socket.inet_aton(S_ADDR)) + options + payload


def ip6(nexthdr, payload):
    """An IPv6 header before payload."""
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), nexthdr, 64,
                       socket.inet_pton(socket.AF_INET6, C6_ADDR),
                       socket.inet_pton(socket.AF_INET6, S6_ADDR)) + payload


def opts6(nexthdr, length=8):
    """A hop-by-hop or destination options header of length bytes (a
    multiple of 8), filled with one PadN option."""
    return struct.pack("!BBBB", nexthdr, length // 8 - 1, 1, length - 4) + \
        bytes(length - 4)


def frag6(nexthdr, offset, more, ident):
    return struct.pack("!BBHI", nexthdr, 0, offset << 3 | more, ident)


def tcp(sport, dport, seq, ack, flags, win, doff_words=5, options=b"",
        data=b""):
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff_words << 4,
                       flags, win, 0, 0) + options + data


SENDER = r"""
import socket, sys
s4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
for line in sys.stdin:
    fam, dst, hexpkt = line.split()
    pkt = bytes.fromhex(hexpkt)
    if fam == "4":
        s4.sendto(pkt, (dst, 0))
    else:
        s6.sendto(pkt, (dst, 0))
"""


def send_all(ns, packets):
    """Sends [(family, packet)] from a raw socket in ns, in order."""
    lines = "".join("%d %s %s\n" % (fam, S_ADDR if fam == 4 else S6_ADDR,
                                    pkt.hex()) for fam, pkt in packets)
    subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", SENDER],
                   input=lines, text=True, check=True)


def cases():
    """The packets to send, and what each source port must give:
    ([(family, packet)], {sport: [fields of the record, out then in]}).
    Source ports below 100 must give no record."""
    pk, want = [], {}

    def v4(p):
        pk.append((4, p))

    def v6(p):
        pk.append((6, p))

    def expect(sport, family, flags, seq, ack, win, length, dport=9):
        want[sport] = dict(family=family, sport=sport, dport=dport,
                           flags=flag_text(flags), seq=seq, ack=ack, win=win,
                           len=length)

    # -- malformed: 2 each (out and in), 10 in all
    # 10 bytes of TCP header: shorter than its fixed 20
    v4(ip4(tcp(1, 2, 3, 4, SYN, 1000)[:10]))
    # data offset 15 words (60 bytes) with only 20 present
    v4(ip4(tcp(2, 2, 3, 4, SYN, 1000, doff_words=15)))
    # data offset 3 words: below the minimum of 5
    v4(ip4(tcp(3, 2, 3, 4, SYN, 1000, doff_words=3)))
    # IPv6: 10 bytes of TCP header, and a data offset of 3
    v6(ip6(socket.IPPROTO_TCP, tcp(4, 2, 3, 4, SYN, 1000)[:10]))
    v6(ip6(socket.IPPROTO_TCP, tcp(5, 2, 3, 4, SYN, 1000, doff_words=3)))

    # -- well-formed, recorded exactly
    # SYN|FIN|RST|ACK with 8 bytes of options and 5 of data
    v4(ip4(tcp(40001, 9, 0x12345678, 0x9abcdef0, SYN | FIN | RST | ACK,
               4321, doff_words=7, options=bytes([1] * 8), data=b"hello")))
    expect(40001, 4, SYN | FIN | RST | ACK, 0x12345678, 0x9abcdef0, 4321, 5)
    # IPv4 options (NOP NOP NOP EOL, and 40 bytes of them) before a SYN
    v4(ip4(tcp(40002, 9, 7, 0, SYN, 100), ihl=6, options=b"\x01\x01\x01\x00"))
    expect(40002, 4, SYN, 7, 0, 100, 0)
    v4(ip4(tcp(40003, 9, 8, 0, SYN, 101, data=b"abc"), ihl=15,
           options=b"\x01" * 39 + b"\x00"))
    expect(40003, 4, SYN, 8, 0, 101, 3)
    # the longest TCP header: 40 bytes of options (NOPs, then EOL)
    v4(ip4(tcp(40004, 9, 9, 10, FIN | ACK, 102, doff_words=15,
               options=b"\x01" * 39 + b"\x00")))
    expect(40004, 4, FIN | ACK, 9, 10, 102, 0)
    # IPv6: plain, and after hop-by-hop and destination options headers
    v6(ip6(socket.IPPROTO_TCP, tcp(40005, 9, 11, 0, SYN, 103)))
    expect(40005, 6, SYN, 11, 0, 103, 0)
    v6(ip6(0, opts6(60) + opts6(socket.IPPROTO_TCP, 16) +
           tcp(40006, 9, 12, 13, RST | ACK, 104, data=b"xy")))
    expect(40006, 6, RST | ACK, 12, 13, 104, 2)

    # -- fragments
    # IPv4: first fragment with the TCP header and 4 bytes of data (24
    # bytes, offset 0, more fragments), then 6 bytes at offset 3 (24 bytes)
    seg = tcp(40007, 9, 14, 0, SYN, 105, data=b"0123456789")
    v4(ip4(seg[:24], ident=0x4007, frag=0x2000))
    v4(ip4(seg[24:], ident=0x4007, frag=3))
    expect(40007, 4, SYN, 14, 0, 105, 4)
    # IPv4: a first fragment with 8 bytes of TCP header (malformed, 2),
    # then the other 12: the TCP header is never whole in one packet
    seg = tcp(40, 9, 15, 0, SYN, 106)
    v4(ip4(seg[:8], ident=0x4008, frag=0x2000))
    v4(ip4(seg[8:], ident=0x4008, frag=1))
    # IPv4: a fragment at offset 800 bytes alone, whose first 20 bytes
    # would read as a SYN: no TCP header there
    v4(ip4(tcp(41, 9, 16, 0, SYN, 107), ident=0x4009, frag=100))
    # IPv6: the same whole-header first fragment and its second part
    seg = tcp(40010, 9, 17, 0, SYN, 108, data=b"0123456789")
    v6(ip6(44, frag6(socket.IPPROTO_TCP, 0, 1, 0x6010) + seg[:24]))
    v6(ip6(44, frag6(socket.IPPROTO_TCP, 3, 0, 0x6010) + seg[24:]))
    expect(40010, 6, SYN, 17, 0, 108, 4)
    # IPv6: a later fragment alone
    v6(ip6(44, frag6(socket.IPPROTO_TCP, 100, 0, 0x6011) +
           tcp(42, 9, 18, 0, SYN, 109)))
    # IPv6: a destination options header of 24 bytes with 8 present, then
    # nothing: the TCP header is past the packet (malformed, 2)
    v6(ip6(60, opts6(socket.IPPROTO_TCP, 24)[:8]))

    # -- every flag combination, no payload
    for f in range(256):
        v4(ip4(tcp(41000 + f, 9, 1000 + f, 2000 + f, f, 1 + f)))
        if f & (SYN | FIN | RST):
            expect(41000 + f, 4, f, 1000 + f, 2000 + f, 1 + f, 0)
    return pk, want, 14


def main():
    tag = str(os.getpid())
    cns, sns = "tt_mf_c" + tag, "tt_mf_s" + tag
    reader = None
    out = ""
    packets, want, malformed = cases()
    try:
        sh("ip netns add %s && ip netns add %s" % (cns, sns))
        sh("ip link add va netns %s type veth peer name vb netns %s"
           % (cns, sns))
        sh("ip -n %s addr add %s/24 dev va && ip -n %s link set va up"
           % (cns, C_ADDR, cns))
        sh("ip -n %s addr add %s/24 dev vb && ip -n %s link set vb up"
           % (sns, S_ADDR, sns))
        sh("ip -n %s addr add %s/64 dev va nodad" % (cns, C6_ADDR))
        sh("ip -n %s addr add %s/64 dev vb nodad" % (sns, S6_ADDR))
        c_ino, s_ino = ns_inode(cns), ns_inode(sns)
        # static neighbour entries, so no packet waits on ARP or ND
        mac = json.loads(subprocess.run(
            ["ip", "-j", "-n", sns, "link", "show", "vb"], check=True,
            capture_output=True, text=True).stdout)[0]["address"]
        sh("ip -n %s neigh replace %s lladdr %s dev va nud permanent"
           % (cns, S_ADDR, mac))
        sh("ip -n %s -6 neigh replace %s lladdr %s dev va nud permanent"
           % (cns, S6_ADDR, mac))

        reader = subprocess.Popen([TOOL, "watch", "--json", "-n", str(c_ino),
                                   "-n", str(s_ino)],
                                  stdout=subprocess.PIPE, text=True)
        time.sleep(1)
        before = stats()
        send_all(cns, packets)
        time.sleep(2)
        after = stats()
    finally:
        if reader:
            reader.send_signal(2)
            out = reader.communicate(timeout=30)[0]
        subprocess.run("ip netns del %s; ip netns del %s" % (cns, sns),
                       shell=True, stderr=subprocess.DEVNULL)

    recs = [json.loads(line) for line in out.splitlines()]
    ok("malformed segments counted where they leave and where they arrive",
       after["malformed"] - before["malformed"] == malformed,
       "malformed went from %d to %d, %d expected" % (
           before["malformed"], after["malformed"], malformed))
    ok("no lost record", not after["drops"] - before["drops"] and
       not [r for r in recs if r["type"] == "lost"])
    ours = [r for r in recs if r["type"] == "packet" and
            r.get("saddr") in (C_ADDR, C6_ADDR)]
    bad = [r for r in ours if r["sport"] < 100]
    ok("no record of a malformed segment or of a later fragment", not bad,
       bad)
    got = {}
    for r in ours:
        got.setdefault(r["sport"], []).append(r)
    extra = sorted(set(got) - set(want) - {r["sport"] for r in bad})
    ok("no record of a segment with neither SYN, FIN nor RST", not extra,
       "recorded source ports: %s" % extra)

    # the named cases one by one, the flag combinations together
    for sport in sorted(want):
        w = want[sport]
        rs = got.get(sport, [])
        saddr, daddr = (C_ADDR, S_ADDR) if w["family"] == 4 else \
            (C6_ADDR, S6_ADDR)
        full = dict(w, saddr=saddr, daddr=daddr)
        dirs = [(r["netns"], r["dir"]) for r in rs]
        fields = [{k: r.get(k) for k in full} for r in rs]
        good = dirs == [(c_ino, "out"), (s_ino, "in")] and \
            fields == [full, full]
        if sport < 41000:
            ok("port %d: recorded once out and once in, fields exact"
               % sport, good, "got %r" % rs)
        elif not good:
            ok("flags %s (port %d): recorded out and in, fields exact"
               % (w["flags"], sport), False, "got %r" % rs)
    combos = [s for s in want if s >= 41000]
    ok("the %d flag combinations with SYN, FIN or RST recorded exactly"
       % len(combos),
       all(len(got.get(s, [])) == 2 for s in combos))

    failed = results.count(False)
    print("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:0 error:0"
          % (len(results) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    print("TAP version 13")
    sys.exit(main())
