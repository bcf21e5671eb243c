#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Hand-made TCP segments through tcptrace's netfilter hooks (as root, in
the guest, with the module loaded).

Raw IPv4 packets go from a client namespace to a server namespace over
veth.  A segment with a truncated or invalid TCP header is counted as
malformed where it leaves and where it arrives, and never recorded; a
well-formed one is recorded with exactly the fields it was made with.
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

results = []


def ok(name, cond, detail=""):
    results.append(bool(cond))
    print("%s %d %s" % ("ok" if cond else "not ok", len(results), name))
    if not cond and detail:
        for line in str(detail).splitlines():
            print("#   " + line)


def sh(cmd):
    subprocess.run(cmd, shell=True, check=True)


def stats():
    out = subprocess.run([TOOL, "stats", "--json"], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def ns_inode(name):
    return os.stat("/run/netns/" + name).st_ino


def ip_header(payload_len):
    # tot_len and checksum are filled in by the kernel (IP_HDRINCL)
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + payload_len, 0, 0,
                       64, socket.IPPROTO_TCP, 0, socket.inet_aton(C_ADDR),
                       socket.inet_aton(S_ADDR))


def tcp_header(sport, dport, seq, ack, doff_words, flags, win):
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff_words << 4,
                       flags, win, 0, 0)


def send_raw(ns, packet):
    code = ("import socket,sys\n"
            "s=socket.socket(socket.AF_INET,socket.SOCK_RAW,"
            "socket.IPPROTO_RAW)\n"
            "s.sendto(bytes.fromhex(sys.argv[1]),(sys.argv[2],0))\n")
    subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code,
                    packet.hex(), S_ADDR], check=True)


def main():
    tag = str(os.getpid())
    cns, sns = "tt_mf_c" + tag, "tt_mf_s" + tag
    reader = None
    try:
        sh("ip netns add %s && ip netns add %s" % (cns, sns))
        sh("ip link add va netns %s type veth peer name vb netns %s"
           % (cns, sns))
        sh("ip -n %s addr add %s/24 dev va && ip -n %s link set va up"
           % (cns, C_ADDR, cns))
        sh("ip -n %s addr add %s/24 dev vb && ip -n %s link set vb up"
           % (sns, S_ADDR, sns))
        c_ino, s_ino = ns_inode(cns), ns_inode(sns)
        # a static neighbour entry, so no packet waits on ARP
        mac = json.loads(subprocess.run(
            ["ip", "-j", "-n", sns, "link", "show", "vb"], check=True,
            capture_output=True, text=True).stdout)[0]["address"]
        sh("ip -n %s neigh replace %s lladdr %s dev va nud permanent"
           % (cns, S_ADDR, mac))

        reader = subprocess.Popen([TOOL, "watch", "--json", "-n", str(c_ino),
                                   "-n", str(s_ino)],
                                  stdout=subprocess.PIPE, text=True)
        time.sleep(1)
        before = stats()

        # 1. 10 bytes of TCP header: shorter than its fixed 20
        send_raw(cns, ip_header(10) + tcp_header(1, 2, 3, 4, 5, 0x02,
                                                 1000)[:10])
        # 2. data offset 15 words (60 bytes) with only 20 present
        send_raw(cns, ip_header(20) + tcp_header(1, 2, 3, 4, 15, 0x02,
                                                 1000))
        # 3. data offset 3 words: below the minimum of 5
        send_raw(cns, ip_header(20) + tcp_header(1, 2, 3, 4, 3, 0x02, 1000))
        # 4. a well-formed SYN|FIN|RST with 8 bytes of options, 5 of data
        good = tcp_header(40001, 9, 0x12345678, 0x9abcdef0, 7,
                          0x02 | 0x01 | 0x04 | 0x10, 4321)
        good += bytes([1] * 8) + b"hello"
        send_raw(cns, ip_header(len(good)) + good)
        time.sleep(1.5)
        after = stats()
    finally:
        if reader:
            reader.send_signal(2)
            out = reader.communicate(timeout=10)[0]
        subprocess.run("ip netns del %s; ip netns del %s" % (cns, sns),
                       shell=True, stderr=subprocess.DEVNULL)

    recs = [json.loads(line) for line in out.splitlines()]
    ok("three bad headers counted malformed twice each (out and in)",
       after["malformed"] - before["malformed"] == 6,
       "malformed went from %d to %d" % (before["malformed"],
                                          after["malformed"]))
    bad = [r for r in recs if r.get("sport") == 1]
    ok("no record of a malformed segment", not bad, bad)
    pk = [r for r in recs if r["type"] == "packet" and r["sport"] == 40001]
    ok("the well-formed segment recorded out and in",
       [(r["netns"], r["dir"]) for r in pk] == [(c_ino, "out"),
                                                 (s_ino, "in")], pk)
    want = dict(family=4, saddr=C_ADDR, daddr=S_ADDR, sport=40001, dport=9,
                flags="FSR.", seq=0x12345678, ack=0x9abcdef0, win=4321,
                len=5)
    for r in pk:
        got = {k: r.get(k) for k in want}
        ok("fields of the %s record exact" % r["dir"], got == want,
           "got %r" % got)
    # every record read back is still whole after the bad ones
    ok("records after the bad segments are well-formed",
       all("type" in r and "ts_ns" in r for r in recs), recs)

    failed = results.count(False)
    print("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:0 error:0"
          % (len(results) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    print("TAP version 13")
    sys.exit(main())
