#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
#
# `tcptracectl record -w FILE` against tcpdump: both capture a scripted
# connection between two network namespaces joined by veth, tcpdump on the
# server's interface, tcptracectl the records of the server's namespace;
# then tshark reads both files.  Every SYN, FIN and RST that tcpdump saw,
# and every pure ACK that answers a SYN-ACK or a FIN (the handshake's third
# ACK, the ACKs of the teardown), must be in the tcptracectl file with the
# same addresses, ports, seq, ack, flags, window and lengths, at about the
# same wall-clock time; and the tcptracectl file must hold nothing else.
# IPv4 and IPv6.
#
# Needs root, the module (TCPTRACE_KO, default ../module/tcptrace.ko, is
# loaded when it is not), tcpdump and tshark.  Files go to a temporary
# directory under selftests/ (the guest's /tmp is not the host's), removed
# at the end.  Prints TAP; exits non-zero when a test failed.

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TOOL = os.path.join(REPO, "userspace", "tcptracectl")
KO = os.environ.get("TCPTRACE_KO") or os.path.join(REPO, "module",
                                                   "tcptrace.ko")
# ports of their own: records of other tests (and of namespaces whose inode
# number is reused) must not match this test's filters
PORTS = {4: 6204, 6: 6206}
DEVICE = "/dev/tcptrace"

ADDRS = {
    4: ("10.202.1.1", "10.202.1.2"),
    6: ("fd00:202::1", "fd00:202::2"),
}

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10

# The server accepts one connection, reads until EOF and closes; the client
# connects, sends 5 bytes, half-closes, waits for EOF and closes.
SERVER = r"""
import socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
l = socket.socket(fam, socket.SOCK_STREAM)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((sys.argv[1], int(sys.argv[2])))
l.listen(1)
print("ready", flush=True)
a, _ = l.accept()
while a.recv(100):
    pass
a.close()
l.close()
"""

CLIENT = r"""
import socket, sys, time
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
c = socket.socket(fam, socket.SOCK_STREAM)
c.connect((sys.argv[1], int(sys.argv[2])))
time.sleep(0.3)
c.sendall(b"hello")
time.sleep(0.3)
c.shutdown(socket.SHUT_WR)
while c.recv(100):
    pass
time.sleep(0.3)
c.close()
"""

FIELDS = ["frame.time_epoch", "frame.len", "ip.src", "ip.dst", "ipv6.src",
          "ipv6.dst", "tcp.srcport", "tcp.dstport", "tcp.seq", "tcp.ack",
          "tcp.flags", "tcp.window_size_value", "tcp.len", "tcp.hdr_len"]
# what identifies a segment, and what must be equal besides
KEY = ["src", "dst", "tcp.srcport", "tcp.dstport", "tcp.seq", "tcp.ack",
       "tcp.flags"]
SAME = ["frame.len", "tcp.window_size_value", "tcp.len", "tcp.hdr_len"]


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def eq(expected, seen, what):
    if expected != seen:
        raise Failure("%s: expected %r, got %r" % (what, expected, seen))


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, **kw)


def module_loaded():
    return os.path.isdir("/sys/module/tcptrace")


def load_module():
    if not module_loaded():
        r = run(["insmod", KO])
        check(r.returncode == 0, "insmod %s: %s" % (KO, r.stderr.strip()))


def has_device_open(pid):
    """Whether process pid has the device open."""
    fddir = "/proc/%d/fd" % pid
    try:
        for fd in os.listdir(fddir):
            try:
                if os.readlink(os.path.join(fddir, fd)) == DEVICE:
                    return True
            except OSError:
                pass
    except OSError:
        pass
    return False


class Netns:
    def __init__(self, family):
        tag = "%d_%d" % (os.getpid(), family)
        self.c = "tt_pcap_c_" + tag
        self.s = "tt_pcap_s_" + tag
        self.caddr, self.saddr = ADDRS[family]
        pfx = "/24" if family == 4 else "/64"
        nodad = [] if family == 4 else ["nodad"]
        cmds = [
            ["ip", "netns", "add", self.c],
            ["ip", "netns", "add", self.s],
            ["ip", "-n", self.c, "link", "set", "lo", "up"],
            ["ip", "-n", self.s, "link", "set", "lo", "up"],
            ["ip", "-n", self.c, "link", "add", "va", "type", "veth",
             "peer", "name", "vb", "netns", self.s],
            ["ip", "-n", self.c, "link", "set", "va", "up"],
            ["ip", "-n", self.s, "link", "set", "vb", "up"],
            ["ip", "-n", self.c, "addr", "add", self.caddr + pfx, "dev",
             "va"] + nodad,
            ["ip", "-n", self.s, "addr", "add", self.saddr + pfx, "dev",
             "vb"] + nodad,
        ]
        for cmd in cmds:
            r = run(cmd)
            if r.returncode:
                self.close()
                raise Failure("%s: %s" % (" ".join(cmd), r.stderr.strip()))
        self.c_ino = os.stat("/run/netns/" + self.c).st_ino
        self.s_ino = os.stat("/run/netns/" + self.s).st_ino

    def close(self):
        for ns in (self.c, self.s):
            run(["ip", "netns", "del", ns])


def stop(proc, what):
    """SIGINT, then the exit status and stderr of @proc."""
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise Failure("%s did not end on SIGINT" % what)
    return proc.returncode, err


def wait_whole(path, timeout=20):
    """Waits until the pcap file at path holds two FINs and an ACK after
    them (-U writes each packet as it comes), at most timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = run(["tshark", "-n", "-r", path, "-T", "fields", "-e",
                 "tcp.flags"])
        flags = [int(f, 16) for f in r.stdout.split() if f]
        fins = [i for i, f in enumerate(flags) if f & 1]
        if len(fins) >= 2 and any(f == 0x10 for f in flags[fins[1] + 1:]):
            return
        time.sleep(0.2)


def capture(family, tmp):
    """Runs the connection under tcpdump and tcptracectl record; returns
    (tcpdump file, tcptracectl file, record's stderr)."""
    ns = Netns(family)
    port = PORTS[family]
    a = os.path.join(tmp, "tcpdump%d.pcap" % family)
    b = os.path.join(tmp, "tcptrace%d.pcap" % family)
    dump = rec = server = None
    try:
        # -Z root: tcpdump must not drop to its own user before creating
        # the file; -U: each packet written as it comes
        dump = subprocess.Popen(["ip", "netns", "exec", ns.s, "tcpdump",
                                 "-i", "vb", "-n", "-U", "-Z", "root",
                                 "-w", a, "tcp port %d" % port],
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        line = dump.stderr.readline()
        check("listening on" in line, "tcpdump did not start: %r" % line)
        rec = subprocess.Popen([TOOL, "record", "-w", b, "-p", str(port),
                                "-n", str(ns.s_ino)],
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while not has_device_open(rec.pid):
            if rec.poll() is not None:
                raise Failure("record exited early: %s" % rec.stderr.read())
            check(time.monotonic() < deadline, "record never opened "
                  + DEVICE)
            time.sleep(0.05)
        server = subprocess.Popen(["ip", "netns", "exec", ns.s,
                                   sys.executable, "-c", SERVER, ns.saddr,
                                   str(port)],
                                  stdout=subprocess.PIPE, text=True)
        eq("ready\n", server.stdout.readline(), "server start")
        client = subprocess.Popen(["ip", "netns", "exec", ns.c,
                                   sys.executable, "-c", CLIENT, ns.saddr,
                                   str(port)])
        eq(0, client.wait(timeout=60), "client exit status")
        eq(0, server.wait(timeout=60), "server exit status")
        server.stdout.close()
        # on a loaded machine tcpdump may not have read the last segments
        # yet: wait for both FINs and the ACK after them in its file
        wait_whole(a)
        time.sleep(0.5)
        rc, rec_err = stop(rec, "tcptracectl record")
        eq(0, rc, "record exit status (stderr: %s)" % rec_err.strip())
        rc, err = stop(dump, "tcpdump")
        eq(0, rc, "tcpdump exit status (stderr: %s)" % err.strip())
        return a, b, rec_err
    finally:
        for p in (server, rec, dump):
            if p and p.poll() is None:
                p.kill()
                p.wait()
        ns.close()


def tshark(path):
    """The segments of a pcap file, as dicts of FIELDS (and src, dst)."""
    cmd = ["tshark", "-n", "-r", path, "-o",
           "tcp.relative_sequence_numbers:FALSE", "-T", "fields",
           "-E", "separator=|"]
    for f in FIELDS:
        cmd += ["-e", f]
    r = run(cmd, timeout=120)
    # as root tshark warns about it: only the exit status tells
    check(r.returncode == 0, "tshark -r %s: exit %d: %s" %
          (path, r.returncode, r.stderr.strip()))
    segs = []
    for line in r.stdout.splitlines():
        s = dict(zip(FIELDS, line.split("|")))
        s["src"] = s["ip.src"] or s["ipv6.src"]
        s["dst"] = s["ip.dst"] or s["ipv6.dst"]
        s["flagbits"] = int(s["tcp.flags"], 16)
        segs.append(s)
    return segs


def wanted(segs):
    """The segments tcptrace records: SYN, FIN, RST, and the pure ACKs
    answering a SYN-ACK or a FIN seen before them (expect.c)."""
    out = []
    expect = set()
    for s in segs:
        f = s["flagbits"]
        seq, plen = int(s["tcp.seq"]), int(s["tcp.len"])
        rev = (s["dst"], s["tcp.dstport"], s["src"], s["tcp.srcport"])
        if f & (SYN | FIN | RST):
            out.append(s)
            if f & (SYN | ACK) == SYN | ACK:
                expect.add(rev + ((seq + 1) & 0xffffffff,))
            if f & FIN:
                end = seq + plen + 1 + (1 if f & SYN else 0)
                expect.add(rev + (end & 0xffffffff,))
        elif f & ACK and plen == 0:
            me = (s["src"], s["tcp.srcport"], s["dst"], s["tcp.dstport"],
                  int(s["tcp.ack"]))
            if me in expect:
                out.append(s)
    return out


def show(s):
    return "%s:%s > %s:%s flags %s seq %s ack %s win %s len %s" % (
        s["src"], s["tcp.srcport"], s["dst"], s["tcp.dstport"],
        s["tcp.flags"], s["tcp.seq"], s["tcp.ack"],
        s["tcp.window_size_value"], s["tcp.len"])


def compare(family):
    tmp = tempfile.mkdtemp(prefix=".pcap_test_", dir=HERE)
    try:
        a, b, rec_err = capture(family, tmp)
        dumped = tshark(a)
        traced = tshark(b)
        try:
            check_same(family, dumped, traced, rec_err, b)
        except Failure:
            print("# tcpdump:")
            for s in dumped:
                print("#   " + show(s))
            print("# tcptracectl record:")
            for s in traced:
                print("#   " + show(s))
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_same(family, dumped, traced, rec_err, path):
    caddr, saddr = ADDRS[family]
    eq("%d packets written to %s\n" % (len(traced), path), rec_err,
       "record's stderr")
    want = wanted(dumped)
    kinds = [s["flagbits"] for s in want]
    # the whole connection: SYN, SYN-ACK, ACK, two FINs and their ACKs
    check(sum(1 for f in kinds if f & SYN) >= 2 and
          sum(1 for f in kinds if f & FIN) >= 2 and
          sum(1 for f in kinds if f == ACK) >= 2,
          "tcpdump did not see a whole connection: %d segments to look for"
          % len(want))
    for s in want + traced:
        check({s["src"], s["dst"]} == {caddr, saddr},
              "addresses of %s" % show(s))
    left = list(traced)
    for s in want:
        key = [s[k] for k in KEY]
        found = [t for t in left if [t[k] for k in KEY] == key]
        check(found, "not in the tcptracectl file: %s" % show(s))
        t = found[0]
        left.remove(t)
        for k in SAME:
            eq(s[k], t[k], "%s of %s" % (k, show(s)))
        dt = abs(float(s["frame.time_epoch"]) -
                 float(t["frame.time_epoch"]))
        check(dt < 1.0, "time of %s: tcpdump %s, tcptracectl %s" %
              (show(s), s["frame.time_epoch"], t["frame.time_epoch"]))
    check(not left, "only in the tcptracectl file: %s" %
          "; ".join(show(t) for t in left))
    print("# %d segments of %d in both files, same seq, ack, flags, window,"
          " lengths" % (len(want), len(dumped)))


def check_usage():
    for args, needle in ((["record"], "-w"),
                         (["record", "-w", "x.pcap", "--link", "ppp"],
                          "--link"),
                         (["record", "-w", "x.pcap", "--dir", "up"],
                          "--dir")):
        r = run([TOOL] + args, timeout=30)
        eq(2, r.returncode, "exit status of tcptracectl %s" % " ".join(args))
        check(needle in r.stderr, "message of %s: %r" % (" ".join(args),
                                                         r.stderr))


def main():
    tests = [
        ("record -w of an IPv4 connection: the segments tcpdump saw",
         lambda: compare(4)),
        ("record -w of an IPv6 connection: the segments tcpdump saw",
         lambda: compare(6)),
        ("record: usage errors exit 2", check_usage),
    ]
    print("TAP version 13")
    print("1..%d" % len(tests))
    missing = [t for t in ("tcpdump", "tshark") if not shutil.which(t)]
    if os.geteuid() != 0 or missing:
        print("# SKIP: %s" % ("needs root" if os.geteuid() != 0 else
                              "not installed: " + " ".join(missing)))
        print("# Totals: pass:0 fail:0 xfail:0 xpass:0 skip:%d error:0"
              % len(tests))
        return 4
    npass = nfail = 0
    try:
        check(os.access(TOOL, os.X_OK), "%s not built (make -C userspace)"
              % TOOL)
        load_module()
    except Failure as e:
        print("Bail out! %s" % e)
        print("# Totals: pass:0 fail:%d xfail:0 xpass:0 skip:0 error:0"
              % len(tests))
        return 1
    for n, (name, fn) in enumerate(tests, 1):
        try:
            fn()
        except Exception as e:
            nfail += 1
            if not isinstance(e, Failure):
                for line in traceback.format_exc().splitlines():
                    print("# " + line)
            print("# %s" % e)
            print("not ok %d %s" % (n, name))
        else:
            npass += 1
            print("ok %d %s" % (n, name))
        sys.stdout.flush()
    print("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:0 error:0"
          % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
