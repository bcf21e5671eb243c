# SPDX-License-Identifier: GPL-2.0
"""Host tests of 'tcptracectl record': pcap files from raw records.

run(base, tmp) is called by test_tcptracectl.py with itself as @base (for
record(), check(), run(), the FIFO device).  The pcap files are parsed
here with struct, every header field checked, and read again with tshark
when it is installed.
"""
import os
import pty
import shutil
import signal
import socket
import struct
import subprocess
import time
import traceback

B = None            # the test_tcptracectl module
NS1 = 4026531840
NS2 = 4026532000
T0 = 7_000_000_000

PCAP_HDR = struct.Struct("=IHHiIII")
PCAP_REC = struct.Struct("=IIII")
MAGIC_NS = 0xa1b23c4d
DLT_EN10MB, LINKTYPE_RAW = 1, 101
MAC1, MAC2 = bytes([2, 0, 0, 0, 0, 1]), bytes([2, 0, 0, 0, 0, 2])


def ms(n):
    return T0 + n * 1_000_000


def seg(ts, src, dst, direction, flags, seq, ack=0, win=64240, plen=0,
        doff=20, netns=NS1, **kw):
    """A PACKET record, with any doff."""
    return B.record(B.T_PACKET, B.PACKET.pack(seq, ack, win, flags, doff,
                                              plen),
                    ts, src, dst, direction=direction, netns=netns, **kw)


C4, S4 = ("192.0.2.10", 40001), ("192.0.2.1", 8080)
C6, S6 = ("2001:db8::10", 50001), ("2001:db8::1", 443)


def cases():
    """(record bytes, expected packet or None when not written)."""
    F = B
    out, inn = F.DIR_OUT, F.DIR_IN
    L = []

    def p(ts, src, dst, d, flags, seq, ack=0, win=64240, plen=0, doff=20,
          netns=NS1, **kw):
        L.append((seg(ts, src, dst, d, flags, seq, ack, win, plen, doff,
                      netns, **kw),
                  dict(ts=ts, src=src, dst=dst, dir=d, flags=flags, seq=seq,
                       ack=ack, win=win, plen=plen,
                       doff=doff if doff in range(20, 61, 4) else 20,
                       netns=netns, v6=":" in src[0])))

    def other(rec):
        L.append((rec, None))

    # an IPv4 connection, as seen in the client's netns
    p(ms(0), C4, S4, out, F.SYN, 1000, doff=40, pid=5, comm=b"curl")
    other(F.st(F.T_STATE, ms(0) + 1, C4, S4, old=F.CLOSE,
               new=F.SYN_SENT))
    p(ms(1), S4, C4, inn, F.SYN | F.ACK | F.ECE, 0xfffffffe, 1001,
      win=65160, doff=40)
    p(ms(2), C4, S4, out, F.ACK, 1001, 0xffffffff, win=502, doff=32)
    p(ms(3), C4, S4, out, F.PSH | F.ACK, 1001, 0xffffffff, win=502,
      plen=100, doff=32)
    other(F.record(F.T_LOST, F.LOST.pack(7), ms(3) + 5, netns=0))
    p(ms(4), C4, S4, out, F.FIN | F.ACK, 1101, 0xffffffff, win=502)
    p(ms(5), S4, C4, inn, F.FIN | F.PSH | F.ACK, 0xffffffff, 1102, plen=3)
    p(ms(6), C4, S4, out, F.ACK, 1102, 3, win=0)
    other(F.st(F.T_TIMEWAIT, ms(6) + 1, C4, S4, old=F.FIN_WAIT2,
               new=F.TIME_WAIT, timeo_ms=60000))
    # IPv6, in another netns; odd flags, a bad doff, a RST, no flags
    p(ms(10), C6, S6, inn, F.SYN | F.ECE | F.CWR, 0x12345678, netns=NS2,
      doff=60)
    p(ms(11), S6, C6, out, F.SYN | F.ACK, 0x9abcdef0, 0x12345679,
      netns=NS2, doff=17)
    p(ms(12), C6, S6, inn, F.ACK | F.URG | F.PSH, 0x12345679, 0x9abcdef1,
      win=1, netns=NS2, plen=1400)
    p(ms(13), S6, C6, out, F.RST, 0x9abcdef1, netns=NS2, win=0, doff=0)
    p(ms(14), ("::ffff:10.1.2.3", 1), ("fe80::1", 65535), inn, 0, 5,
      netns=NS2)
    # payload beyond the IP length fields; all flags
    p(ms(20), ("10.9.9.9", 9), ("10.9.9.1", 10), out, 0xff, 1, 2,
      plen=100000)
    p(ms(21), ("fd00::9", 9), ("fd00::1", 10), out, F.ACK, 1, 2,
      plen=70000, netns=NS2)
    # unknown type and newer version: skipped by the reader
    other(F.record(42, bytes(40), ms(22), C4, S4, length=256))
    other(seg(ms(23), C4, S4, out, F.RST, 1, version=2))
    p(ms(30), ("10.0.0.255", 65535), ("10.0.0.1", 1), inn, F.SYN, 0,
      win=65535)
    return L


# --- pcap parsing ---------------------------------------------------------

def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return s


def read_pcap(data):
    """(header dict, [packet dict]) or raises ValueError."""
    if len(data) < PCAP_HDR.size:
        raise ValueError("%d bytes: no pcap header" % len(data))
    magic, major, minor, zone, sigfigs, snaplen, link = \
        PCAP_HDR.unpack_from(data)
    hdr = dict(magic=magic, version=(major, minor), zone=zone,
               sigfigs=sigfigs, snaplen=snaplen, link=link)
    pos = PCAP_HDR.size
    pkts = []
    while pos < len(data):
        if len(data) - pos < PCAP_REC.size:
            raise ValueError("truncated packet header at %d" % pos)
        sec, nsec, caplen, wlen = PCAP_REC.unpack_from(data, pos)
        pos += PCAP_REC.size
        if len(data) - pos < caplen:
            raise ValueError("truncated packet at %d" % pos)
        pkts.append(dict(ts=sec * 1_000_000_000 + nsec, nsec=nsec,
                         caplen=caplen, len=wlen,
                         data=data[pos:pos + caplen]))
        pos += caplen
    return hdr, pkts


def decode(p, link):
    """Adds the fields of the headers of packet @p; raises ValueError."""
    d = p["data"]
    if link == DLT_EN10MB:
        p["dmac"], p["smac"] = d[0:6], d[6:12]
        p["ethertype"] = struct.unpack("!H", d[12:14])[0]
        d = d[14:]
    ver = d[0] >> 4
    p["ipver"] = ver
    if ver == 4:
        (vihl, tos, tot, ident, frag, ttl, proto, ipsum) = \
            struct.unpack("!BBHHHBBH", d[:12])
        p.update(ihl=vihl & 15, tos=tos, iplen=tot, ipid=ident, frag=frag,
                 ttl=ttl, proto=proto, ipsum_ok=csum(d[:20]) == 0xffff,
                 src=socket.inet_ntop(socket.AF_INET, d[12:16]),
                 dst=socket.inet_ntop(socket.AF_INET, d[16:20]))
        pseudo_addrs = d[12:20]
        tcp = d[20:]
    elif ver == 6:
        (vtf, plen, nxt, hop) = struct.unpack("!IHBB", d[:8])
        p.update(vtf=vtf, iplen=plen, proto=nxt, ttl=hop,
                 src=socket.inet_ntop(socket.AF_INET6, d[8:24]),
                 dst=socket.inet_ntop(socket.AF_INET6, d[24:40]))
        pseudo_addrs = d[8:40]
        tcp = d[40:]
    else:
        raise ValueError("IP version %d" % ver)
    (sport, dport, seq, ack, off, flags, win, tsum, urg) = \
        struct.unpack("!HHIIBBHHH", tcp[:20])
    hlen = (off >> 4) * 4
    p.update(sport=sport, dport=dport, seq=seq, ack=ack, hlen=hlen,
             res=off & 15, flags=flags, win=win, urg=urg,
             options=tcp[20:hlen], tail=tcp[hlen:])
    # the checksum over the pseudo-header and the header, payload absent
    tcp_len = p["len"] - (p["caplen"] - len(tcp))
    pseudo = pseudo_addrs + struct.pack("!IxxxB", tcp_len, 6)
    p["tcpsum_ok"] = csum(pseudo + tcp[:hlen]) == 0xffff
    return p


def parse_file(path):
    with open(path, "rb") as f:
        data = f.read()
    hdr, pkts = read_pcap(data)
    for p in pkts:
        decode(p, hdr["link"])
    return hdr, pkts


def mismatch(p, e, link):
    """The first field of packet @p not as expected from record @e."""
    v6 = e["v6"]
    ip_hlen = 40 if v6 else 20
    eth = 14 if link == DLT_EN10MB else 0
    want = dict(
        seq=e["seq"], ack=e["ack"], flags=e["flags"], win=e["win"],
        sport=e["src"][1], dport=e["dst"][1], src=e["src"][0],
        dst=e["dst"][0], hlen=e["doff"], res=0, urg=0,
        options=bytes(e["doff"] - 20), tail=b"",
        caplen=eth + ip_hlen + e["doff"],
        len=eth + ip_hlen + e["doff"] + e["plen"],
        ipver=6 if v6 else 4, proto=6, ttl=64)
    if v6:
        want.update(vtf=0x60000000,
                    iplen=min(0xffff, e["doff"] + e["plen"]))
    else:
        want.update(ihl=5, tos=0, ipid=0, frag=0x4000, ipsum_ok=True,
                    iplen=min(0xffff, 20 + e["doff"] + e["plen"]))
    if e["plen"] == 0:
        want["tcpsum_ok"] = True
    if link == DLT_EN10MB:
        lo = (socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET,
                               e["src"][0]), e["src"][1]) <= \
             (socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET,
                               e["dst"][0]), e["dst"][1])
        want.update(ethertype=0x86dd if v6 else 0x0800,
                    smac=MAC1 if lo else MAC2, dmac=MAC2 if lo else MAC1)
    for k, v in want.items():
        if p.get(k) != v:
            return "%s: got %r, expected %r" % (k, p.get(k), v)
    return ""


def check_packets(name, pkts, exp, link):
    bad = ""
    for i, (p, e) in enumerate(zip(pkts, exp)):
        m = mismatch(p, e, link)
        if m:
            bad = "packet %d: %s" % (i, m)
            break
    if not bad and len(pkts) != len(exp):
        bad = "%d packets, expected %d" % (len(pkts), len(exp))
    B.check(name, not bad, bad)


def offsets():
    return (time.clock_gettime_ns(time.CLOCK_REALTIME) -
            time.clock_gettime_ns(time.CLOCK_MONOTONIC))


def written(n, name):
    return "%d packet%s written to %s\n" % (n, "" if n == 1 else "s", name)


LOST_WARN = ("tcptracectl: warning: the module lost 7 records (its ring was "
             "full): segments are missing\n")
SKIP_WARN = "tcptracectl: warning: skipping records of unknown type"


# --- the tests ------------------------------------------------------------

def test_basic(tmp, path, exp):
    out = os.path.join(tmp, "basic.pcap")
    before = offsets()
    p = B.run(["record", "-i", path, "-w", out])
    after = offsets()
    err = p.stderr.decode()
    B.check("record: exit 0, nothing on stdout", p.returncode == 0 and
            not p.stdout, err)
    lines = err.splitlines(True)
    B.check("record: stderr: skip warning, count, lost warning",
            len(lines) == 3 and lines[0].startswith(SKIP_WARN) and
            lines[1] == written(len(exp), out) and lines[2] == LOST_WARN,
            repr(err))
    try:
        hdr, pkts = parse_file(out)
    except (OSError, ValueError, struct.error) as e:
        B.check("record: a pcap file", False, str(e))
        return None
    B.check("record: pcap header (nanosecond, 2.4, snaplen 128, Ethernet)",
            hdr == dict(magic=MAGIC_NS, version=(2, 4), zone=0, sigfigs=0,
                        snaplen=128, link=DLT_EN10MB), repr(hdr))
    check_packets("record: every header field of every packet", pkts, exp,
                  DLT_EN10MB)
    offs = {p["ts"] - e["ts"] for p, e in zip(pkts, exp)}
    B.check("record: timestamps keep the records' spacing to the ns",
            len(offs) == 1, repr(sorted(offs)))
    off = offs.pop() if len(offs) == 1 else 0
    B.check("record: timestamps are CLOCK_MONOTONIC + (REALTIME - "
            "MONOTONIC) at start", before - 10**7 <= off <= after + 10**7,
            "offset %d, host %d..%d" % (off, before, after))
    B.check("record: nanoseconds in range",
            all(p["nsec"] < 10**9 for p in pkts))
    return pkts


TSHARK_FIELDS = ["frame.len", "frame.cap_len", "ip.src", "ipv6.src",
                 "ip.dst", "ipv6.dst", "tcp.srcport", "tcp.dstport",
                 "tcp.seq_raw", "tcp.ack_raw", "tcp.flags",
                 "tcp.window_size_value", "tcp.hdr_len", "tcp.len",
                 "tcp.checksum.status", "ip.checksum.status",
                 "frame.time_delta"]


def tshark(path, extra=()):
    """Rows of TSHARK_FIELDS, or None when tshark failed."""
    cmd = ["tshark", "-n", "-r", path, "-o",
           "tcp.relative_sequence_numbers:FALSE", "-o",
           "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE",
           "-T", "fields", "-E", "separator=|"]
    for f in TSHARK_FIELDS:
        cmd += ["-e", f]
    p = subprocess.run(cmd + list(extra), capture_output=True, timeout=60)
    if p.returncode != 0:
        return None, p.stderr.decode()
    return [dict(zip(TSHARK_FIELDS, line.split("|")))
            for line in p.stdout.decode().splitlines()], ""


def test_tshark(tmp, exp):
    out = os.path.join(tmp, "basic.pcap")
    rows, err = tshark(out)
    B.check("tshark reads the file", rows is not None, err)
    if rows is None:
        return
    bad = ""
    prev = None
    for i, (r, e) in enumerate(zip(rows, exp)):
        v6 = e["v6"]
        hlen = (40 if v6 else 20) + e["doff"]
        want = {
            "frame.len": str(14 + hlen + e["plen"]),
            "frame.cap_len": str(14 + hlen),
            "ipv6.src" if v6 else "ip.src": e["src"][0],
            "ipv6.dst" if v6 else "ip.dst": e["dst"][0],
            "tcp.srcport": str(e["src"][1]),
            "tcp.dstport": str(e["dst"][1]),
            "tcp.seq_raw": str(e["seq"]),
            "tcp.ack_raw": str(e["ack"]),
            "tcp.flags": "0x%04x" % e["flags"],
            "tcp.window_size_value": str(e["win"]),
            "tcp.hdr_len": str(e["doff"]),
            # the IP length fields stop at 65535
            "tcp.len": str(min(e["plen"], 0xffff - (0 if v6 else 20) -
                               e["doff"])),
            # 1: good; 2: unverified (truncated)
            "tcp.checksum.status": "1" if e["plen"] == 0 else "2",
        }
        if not v6:
            want["ip.checksum.status"] = "1"
        if prev is not None:
            want["frame.time_delta"] = "%.9f" % ((e["ts"] - prev) / 1e9)
        prev = e["ts"]
        for k, v in want.items():
            if r.get(k) != v:
                bad = "packet %d %s: got %r, expected %r" % (i, k, r.get(k),
                                                             v)
                break
        if bad:
            break
    if not bad and len(rows) != len(exp):
        bad = "%d rows, expected %d" % (len(rows), len(exp))
    B.check("tshark: seq, ack, flags, window, ports, addresses, lengths, "
            "checksums, time deltas", not bad, bad)


def test_link_raw(tmp, path, exp):
    out = os.path.join(tmp, "raw.pcap")
    p = B.run(["record", "--link", "raw", "-w", out, "-i", path])
    try:
        hdr, pkts = parse_file(out)
    except (OSError, ValueError, struct.error) as e:
        B.check("--link raw: a pcap file", False, str(e))
        return
    B.check("--link raw: exit 0, LINKTYPE_RAW", p.returncode == 0 and
            hdr["link"] == LINKTYPE_RAW and hdr["snaplen"] == 128,
            repr(hdr) + p.stderr.decode())
    check_packets("--link raw: packets start with the IP header", pkts, exp,
                  LINKTYPE_RAW)
    p = B.run(["record", "--link=ether", "-w", out, "-i", path])
    hdr, pkts = parse_file(out)
    B.check("--link=ether", p.returncode == 0 and hdr["link"] == DLT_EN10MB
            and len(pkts) == len(exp))
    if shutil.which("tshark"):
        rows, err = tshark(out)
        B.check("tshark reads --link raw", rows is not None and
                len(rows) == len(exp), err)


def sel(tmp, path, args):
    """Times (ms after T0) of the records of the packets written with
    @args."""
    out = os.path.join(tmp, "sel.pcap")
    p = B.run(["record", "-w", out, "-i", path] + args)
    if p.returncode != 0:
        return "rc %d %r" % (p.returncode, p.stderr)
    when = {(e["seq"], e["src"][1], e["dst"][1], e["flags"]): e["ts"]
            for e in ALL}
    return [(when.get((x["seq"], x["sport"], x["dport"], x["flags"]), T0 - 1)
             - T0) // 1_000_000 for x in parse_file(out)[1]]


ALL = []


def test_filters(tmp, path):
    B.check("record -c 3", sel(tmp, path, ["-c", "3"]) == [0, 1, 2],
            repr(sel(tmp, path, ["-c", "3"])))
    out = os.path.join(tmp, "c.pcap")
    p = B.run(["record", "-w", out, "-i", path, "--count", "1"])
    B.check("record -c 1: '1 packet written'", p.returncode == 0 and
            p.stderr.decode() == written(1, out) and
            len(parse_file(out)[1]) == 1, repr(p.stderr))
    cases = [
        (["-4"], [0, 1, 2, 3, 4, 5, 6, 20, 30]),
        (["-6"], [10, 11, 12, 13, 14, 21]),
        (["-4", "-6"], [0, 1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14, 20, 21, 30]),
        (["-p", "443"], [10, 11, 12, 13]),
        (["-p", "443", "--port", "8080"],
         [0, 1, 2, 3, 4, 5, 6, 10, 11, 12, 13]),
        (["-p", "10", "-6"], [21]),
        (["-n", str(NS2)], [10, 11, 12, 13, 14, 21]),
        (["-n", "1", "--netns", str(NS1)], [0, 1, 2, 3, 4, 5, 6, 20, 30]),
        (["--dir", "out"], [0, 2, 3, 4, 6, 11, 13, 20, 21]),
        (["--dir", "in"], [1, 5, 10, 12, 14, 30]),
        (["--dir", "both"],
         [0, 1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14, 20, 21, 30]),
        (["--dir=in", "-p", "8080", "-c", "1"], [1]),
        (["-p", "1234"], []),
    ]
    for args, want in cases:
        got = sel(tmp, path, args)
        B.check("record %s" % " ".join(args), got == want, repr(got))


def test_stdout(tmp, path, exp):
    out = os.path.join(tmp, "file.pcap")
    B.run(["record", "-w", out, "-i", path])
    p = B.run(["record", "-w", "-", "-i", path])
    try:
        hdr, pkts = read_pcap(p.stdout)
        ok = True
    except ValueError:
        ok = False
    B.check("record -w -: the pcap on stdout", p.returncode == 0 and ok and
            p.stderr.decode().splitlines(True)[1:2] ==
            [written(len(exp), "standard output")], repr(p.stderr))
    if ok:
        fhdr, fpkts = read_pcap(open(out, "rb").read())
        B.check("record -w -: the same packets as in a file",
                hdr == fhdr and [x["data"] for x in pkts] ==
                [x["data"] for x in fpkts] and
                [x["len"] for x in pkts] == [x["len"] for x in fpkts])
    data = open(path, "rb").read()
    p = B.run(["record", "-w", out, "-i", "-"], data=data)
    B.check("record -i -: records from stdin", p.returncode == 0 and
            len(parse_file(out)[1]) == len(exp), p.stderr.decode())
    # a terminal gets no binary data
    master, slave = pty.openpty()
    try:
        p = subprocess.run([B.TOOL, "record", "-w", "-", "-i", path],
                           stdout=slave, stderr=subprocess.PIPE, timeout=20)
    finally:
        os.close(slave)
        os.close(master)
    B.check("record -w - to a terminal is refused", p.returncode == 1 and
            p.stderr.decode().startswith("tcptracectl: refusing to write "
                                         "pcap data to a terminal"),
            repr(p.stderr))


def test_json(tmp, path, exp):
    """-r: the JSON Lines of 'watch --json' give the same segments (with
    20-byte TCP headers: JSON has no header length)."""
    p = B.run(["watch", "--json", "-i", path])
    jpath = os.path.join(tmp, "in.jsonl")
    with open(jpath, "wb") as f:
        f.write(p.stdout)
    out = os.path.join(tmp, "json.pcap")
    p = B.run(["record", "-r", jpath, "-w", out])
    B.check("record -r: exit 0", p.returncode == 0 and
            p.stderr.decode().splitlines(True)[:1] ==
            [written(len(exp), out)], repr(p.stderr))
    try:
        hdr, pkts = parse_file(out)
    except (OSError, ValueError, struct.error) as e:
        B.check("record -r: a pcap file", False, str(e))
        return
    exp20 = [dict(e, doff=20) for e in exp]
    check_packets("record -r: the segments of the JSON Lines", pkts, exp20,
                  DLT_EN10MB)
    offs = {p["ts"] - e["ts"] for p, e in zip(pkts, exp)}
    B.check("record -r: timestamps", len(offs) == 1, repr(offs))


def test_empty_and_bad_input(tmp):
    out = os.path.join(tmp, "empty.pcap")
    empty = B.write_input(tmp, "empty.bin", b"")
    p = B.run(["record", "-w", out, "-i", empty])
    hdr, pkts = parse_file(out)
    B.check("record: no records, a pcap header alone", p.returncode == 0 and
            not pkts and hdr["magic"] == MAGIC_NS and
            os.path.getsize(out) == 24 and
            p.stderr.decode() == written(0, out), repr(p.stderr))
    # a record then a truncated one: the first is written, exit 1
    good = seg(ms(0), C4, S4, B.DIR_OUT, B.SYN, 1000)
    bad = B.write_input(tmp, "trunc.bin", good + good[:60])
    p = B.run(["record", "-w", out, "-i", bad])
    err = p.stderr.decode()
    try:
        _, pkts = parse_file(out)
    except ValueError:
        pkts = None
    B.check("record: truncated input, exit 1, a complete file before it",
            p.returncode == 1 and pkts is not None and len(pkts) == 1 and
            "truncated record at input offset 128" in err and
            err.endswith(written(1, out)), repr(err))


def test_errors(tmp, path):
    env = {"TCPTRACE_DEVICE": "/nonexistent"}
    out = os.path.join(tmp, "err.pcap")
    usage = [
        (["record"], "missing -w FILE"),
        (["record", "-i", path], "missing -w FILE"),
        (["record", "-w"], "requires an argument"),
        (["record", "--write"], "requires an argument"),
        (["record", "-w", ""], "-w"),
        (["record", "-w", out, "--link", "ppp"], "--link"),
        (["record", "-w", out, "--link", ""], "--link"),
        (["record", "-w", out, "--link"], "requires an argument"),
        (["record", "-w", out, "--dir", "up"], "--dir"),
        (["record", "-w", out, "-c", "0"], "--count"),
        (["record", "-w", out, "-c", "x"], "--count"),
        (["record", "-w", out, "-p", "0"], "--port"),
        (["record", "-w", out, "-p", "65536"], "--port"),
        (["record", "-w", out, "-n", "0"], "--netns"),
        (["record", "-w", out, "--duration", "0"], "--duration"),
        (["record", "-w", out, "-i", path, "-r", path], "cannot be used "
         "together"),
        (["record", "-w", out, "-i", ""], "-i"),
        (["record", "-w", out, "--bogus"], "--bogus"),
        (["record", "-w", out, "-x"], "-x"),
        (["record", "-w", out, "-j"], "-j"),
        (["record", "-w", out, "extra"], "extra"),
    ]
    for args, needle in usage:
        p = B.run(args, env=env)
        err = p.stderr.decode()
        shown = [a.replace(tmp, "TMP") for a in args[1:]]
        B.check("record: usage error %r" % shown, p.returncode == 2 and
                err.startswith("tcptracectl: ") and needle in err and
                err.count("\n") == 1 and not p.stdout and
                not os.path.exists(out), "rc %d %r" % (p.returncode, err))
    p = B.run(["record", "-w", out] + ["-p", "1"] * 65, env=env)
    B.check("record: too many -p", p.returncode == 2 and
            "too many --port" in p.stderr.decode(), repr(p.stderr))

    before = open(path, "rb").read()
    for opt in ("-i", "-r"):
        same = os.path.join(os.path.dirname(path), ".",
                            os.path.basename(path))
        p = B.run(["record", opt, path, "-w", same])
        B.check("record %s: -w the input file is refused" % opt,
                p.returncode == 2 and p.stderr.decode() ==
                "tcptracectl: record: %s is the input file: it would be "
                "overwritten\n" % same and
                open(path, "rb").read() == before, repr(p.stderr))

    bad_out = os.path.join(tmp, "no", "such", "dir", "x.pcap")
    p = B.run(["record", "-w", bad_out, "-i", path])
    B.check("record: cannot create the file", p.returncode == 1 and
            p.stderr.decode() == "tcptracectl: cannot create %s: No such "
            "file or directory\n" % bad_out, repr(p.stderr))
    p = B.run(["record", "-w", tmp, "-i", path])
    B.check("record: a directory is not writable as a file",
            p.returncode == 1 and p.stderr.decode() ==
            "tcptracectl: cannot create %s: Is a directory\n" % tmp,
            repr(p.stderr))
    p = B.run(["record", "-w", out], env=env)
    B.check("record: module not loaded, no file created",
            p.returncode == 1 and p.stderr.decode() == B.NOT_LOADED and
            not os.path.exists(out), repr(p.stderr))
    missing = os.path.join(tmp, "missing.bin")
    for opt in ("-i", "-r"):
        p = B.run(["record", "-w", out, opt, missing])
        B.check("record %s: missing input, no file created" % opt,
                p.returncode == 1 and p.stderr.decode() ==
                "tcptracectl: cannot open %s: No such file or directory\n"
                % missing and not os.path.exists(out), repr(p.stderr))
    if os.path.exists("/dev/full"):
        p = B.run(["record", "-w", "/dev/full", "-i", path])
        B.check("record: a full disk is an error", p.returncode == 1 and
                "tcptracectl: error writing /dev/full: No space left on "
                "device\n" in p.stderr.decode(), repr(p.stderr))


def test_help():
    for args in (["record", "--help"], ["record", "-h"], ["help", "record"],
                 ["record", "-w", "x", "-h"]):
        p = B.run(args)
        out = p.stdout.decode()
        B.check("help %r" % args, p.returncode == 0 and not p.stderr and
                "EXAMPLES" in out and
                "tcptracectl record -w out.pcap -p 8080" in out and
                all(o in out for o in ("--write", "--count", "--link",
                                       "--dir", "--port", "--netns",
                                       "--duration", "--input", "--read",
                                       "CLOCK_MONOTONIC", "DLT_RAW",
                                       "DLT_EN10MB")) and
                max(len(line) for line in out.splitlines()) <= 79,
                repr(p.stderr))


def wait_rc(proc, timeout=5):
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def test_device(tmp, recs):
    """The FIFO plays the device: live flushing, SIGINT, SIGTERM, -c."""
    dev = B.FakeDevice(tmp)
    out = os.path.join(tmp, "dev.pcap")
    try:
        proc = B.spawn(["record", "-w", out], dev.env)
        deadline = time.monotonic() + 5
        while not os.path.exists(out) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.1)
        dev.write(recs[0] + recs[1])
        # each batch is flushed: the packets are in the file already
        n = -1
        while time.monotonic() < deadline:
            try:
                n = len(parse_file(out)[1])
            except (OSError, ValueError):
                n = -1
            if n == 2:
                break
            time.sleep(0.05)
        B.check("record from the device: packets flushed as they come",
                n == 2, "%d packets" % n)
        dev.write(recs[2][:50])
        time.sleep(0.1)
        dev.write(recs[2][50:])
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        rc = wait_rc(proc)
        err = proc.stderr.read().decode()
        proc.stdout.close()
        proc.stderr.close()
        try:
            _, pkts = parse_file(out)
        except (OSError, ValueError) as e:
            pkts = str(e)
        B.check("record from the device: SIGINT, exit 0, complete file",
                rc == 0 and err == written(3, out) and
                isinstance(pkts, list) and len(pkts) == 3,
                "rc %r %r %r" % (rc, err, pkts))

        proc = B.spawn(["record", "-w", out, "--link", "raw"], dev.env)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        rc = wait_rc(proc)
        err = proc.stderr.read().decode()
        proc.stdout.close()
        proc.stderr.close()
        hdr, pkts = parse_file(out)
        B.check("record from the device: SIGTERM with no traffic",
                rc == 0 and err == written(0, out) and not pkts and
                hdr["link"] == LINKTYPE_RAW, "rc %r %r" % (rc, err))

        proc = B.spawn(["record", "-w", out, "-c", "2", "-p", "443"],
                       dev.env)
        time.sleep(0.2)
        dev.write(b"".join(recs))
        rc = wait_rc(proc)
        err = proc.stderr.read().decode()
        proc.stdout.close()
        proc.stderr.close()
        _, pkts = parse_file(out)
        B.check("record from the device: -c 2 ends it",
                rc == 0 and err == written(2, out) and len(pkts) == 2 and
                all(443 in (p["sport"], p["dport"]) for p in pkts),
                "rc %r %r" % (rc, err))
        # what -c left behind must not be read by the next one
        os.set_blocking(dev.fd, False)
        try:
            while os.read(dev.fd, 65536):
                pass
        except BlockingIOError:
            pass

        t = time.monotonic()
        p = B.run(["record", "-w", out, "--duration", "0.5"], env=dev.env,
                  timeout=10)
        dt = time.monotonic() - t
        B.check("record from the device: --duration", p.returncode == 0 and
                p.stderr.decode() == written(0, out) and 0.45 <= dt < 5,
                "rc %d %.2fs %r" % (p.returncode, dt, p.stderr))
        p = B.run(["record", "-w", out],
                  env=dict(dev.env, TCPTRACE_FAKE_ABI="2"))
        B.check("record from the device: ABI mismatch", p.returncode == 1
                and "ABI version mismatch" in p.stderr.decode())
    finally:
        dev.close()


def guarded(fn, *args):
    """Runs one test function; an exception in it is one failure."""
    try:
        fn(*args)
    except Exception:
        B.check("%s ends without an exception" % fn.__name__, False,
                traceback.format_exc().strip().splitlines()[-1])


def run(base, tmp):
    global B, ALL
    B = base
    tmp = os.path.join(tmp, "pcap")
    os.makedirs(tmp, exist_ok=True)
    L = cases()
    exp = [e for _, e in L if e is not None]
    ALL = exp
    path = B.write_input(tmp, "in.bin", b"".join(r for r, _ in L))
    guarded(test_basic, tmp, path, exp)
    if shutil.which("tshark"):
        guarded(test_tshark, tmp, exp)
    else:
        print("skip tshark tests: tshark not installed")
    guarded(test_link_raw, tmp, path, exp)
    guarded(test_filters, tmp, path)
    guarded(test_stdout, tmp, path, exp)
    guarded(test_json, tmp, path, exp)
    guarded(test_empty_and_bad_input, tmp)
    guarded(test_errors, tmp, path)
    guarded(test_help)
    if B.FAKEDEV:
        guarded(test_device, tmp, [r for r, e in L if e is not None])
    else:
        print("skip record device tests: no fakedev.so given")
