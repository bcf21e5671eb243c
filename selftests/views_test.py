#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
#
# tcptracectl's views of a connection: the "violation" and "owner_pid" keys
# of `watch --json`, `watch --summary --json` and `ladder`, checked against
# scripted traffic between two network namespaces joined by veth:
#
#   violation  a client connects to a port where nothing listens; the
#              server's firewall drops the SYN (so its kernel sends no RST)
#              and a raw AF_PACKET socket on the server's veth answers it
#              with a forged SYN-ACK whose ack is the client's ISN + 2; the
#              client's kernel answers that with a RST (seq: that ack)
#   scripted   two connections of one client and one server process: data
#              both ways, then the client closes first; then the server
#              closes first
#   refused    nothing listens, no firewall: the server's kernel resets
#   reset      the client closes with SO_LINGER {1, 0}: a RST
#
# One `watch --json` per address family records all four (one port each);
# its JSON Lines go to a file that `watch --summary --json -r FILE` and
# `ladder -r FILE` read back.  The namespaces are deleted before the capture
# stops, so that their timewait sockets end (killed) and every connection
# is over.
#
# Needs root and the module: TCPTRACE_KO (default ../module/tcptrace.ko) is
# loaded when it is not.  TCPTRACE_TOOL overrides ../userspace/tcptracectl.
# Temporary files go to .views_tmp/ next to this script (removed at the
# end).  Prints TAP; exits non-zero when a test failed.

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TOOL = os.environ.get("TCPTRACE_TOOL") or os.path.join(REPO, "userspace",
                                                       "tcptracectl")
KO = os.environ.get("TCPTRACE_KO") or os.path.join(REPO, "module",
                                                   "tcptrace.ko")
TMP = os.path.join(HERE, ".views_tmp")
DEVICE = "/dev/tcptrace"

# one port per scenario and family: a namespace's inode number is reused
# once it is gone, and the records of its last moments may come after
PORTS = {
    "violation": {4: 6141, 6: 6161},
    "scripted": {4: 6142, 6: 6162},
    "refused": {4: 6143, 6: 6163},
    "reset": {4: 6144, 6: 6164},
}

ADDRS = {
    4: ("10.201.4.1", "10.201.4.2"),
    6: ("fd00:201:4::1", "fd00:201:4::2"),
}

VIOLATION = "synack_ack_not_isn_plus_1"
# the ack the forged SYN-ACK carries: the client's ISN + BAD_ACK_DELTA
BAD_ACK_DELTA = 2
SYNACK_ISN = 0x2b2b2b2b

# bytes of the scripted connections: 1: client closes first, 2: server
C2S_1, S2C_1, C2S_2, S2C_2 = 5, 7, 3, 9
# bytes the client sends before its abortive close
C2S_RESET = 4
# how long each side stays in CLOSE_WAIT (the scripts sleep that long)
CLOSE_WAIT_SLEEP = 0.3

# Every script but INJECT prints "id PID NETNS_INODE COMM" first.
PRELUDE = ("C2S_1, S2C_1, C2S_2, S2C_2 = %d, %d, %d, %d\n"
           "C2S_RESET, CLOSE_WAIT_SLEEP = %d, %r\n"
           % (C2S_1, S2C_1, C2S_2, S2C_2, C2S_RESET, CLOSE_WAIT_SLEEP)) + r"""
import os, socket, struct, sys, time
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
addr = (sys.argv[1], int(sys.argv[2]))
with open("/proc/self/comm") as f:
    comm = f.read().strip()
print("id %d %d %s" % (os.getpid(), os.stat("/proc/self/ns/net").st_ino,
                       comm), flush=True)

def recvn(s, n):
    b = b""
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            raise SystemExit("EOF after %d of %d bytes" % (len(b), n))
        b += d
    return b

def drain(s):
    while s.recv(100):
        pass
"""

# scripted: the server of both connections
SERVER = PRELUDE + r"""
l = socket.socket(fam, socket.SOCK_STREAM)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(addr)
l.listen(4)
print("ready", flush=True)
# 1: the client closes first
a, _ = l.accept()
recvn(a, C2S_1)
a.sendall(b"s" * S2C_1)
drain(a)
time.sleep(CLOSE_WAIT_SLEEP)
a.close()
# 2: the server closes first
a, _ = l.accept()
recvn(a, C2S_2)
a.sendall(b"S" * S2C_2)
a.shutdown(socket.SHUT_WR)
drain(a)
a.close()
l.close()
"""

# scripted: the client of both connections; prints each local port.  The
# server has accepted before data comes (data right behind the third ACK
# may be handled on another CPU at the same time as the ACK)
CLIENT = PRELUDE + r"""
c = socket.socket(fam, socket.SOCK_STREAM)
c.connect(addr)
print("port %d" % c.getsockname()[1], flush=True)
time.sleep(0.3)
c.sendall(b"c" * C2S_1)
recvn(c, S2C_1)
c.shutdown(socket.SHUT_WR)
drain(c)
c.close()
c = socket.socket(fam, socket.SOCK_STREAM)
c.connect(addr)
print("port %d" % c.getsockname()[1], flush=True)
time.sleep(0.3)
c.sendall(b"C" * C2S_2)
recvn(c, S2C_2)
drain(c)
time.sleep(CLOSE_WAIT_SLEEP)
c.close()
"""

# refused: connect() to a port where nothing listens
CLIENT_REFUSED = PRELUDE + r"""
c = socket.socket(fam, socket.SOCK_STREAM)
try:
    c.connect(addr)
except ConnectionRefusedError:
    print("refused", flush=True)
else:
    print("connected", flush=True)
c.close()
"""

# reset: the server reads until the end; the client sends, then closes
# with SO_LINGER {1, 0}
SERVER_RESET = PRELUDE + r"""
l = socket.socket(fam, socket.SOCK_STREAM)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(addr)
l.listen(1)
print("ready", flush=True)
a, _ = l.accept()
n = 0
try:
    while True:
        d = a.recv(100)
        if not d:
            break
        n += len(d)
    print("eof %d" % n, flush=True)
except ConnectionResetError:
    print("reset %d" % n, flush=True)
a.close()
l.close()
"""

CLIENT_RESET = PRELUDE + r"""
c = socket.socket(fam, socket.SOCK_STREAM)
c.connect(addr)
print("port %d" % c.getsockname()[1], flush=True)
time.sleep(0.3)
c.sendall(b"r" * C2S_RESET)
time.sleep(0.3)
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close()
"""

# violation: a non-blocking connect(); closes when told on stdin
CLIENT_VIOLATION = PRELUDE + r"""
import errno
c = socket.socket(fam, socket.SOCK_STREAM)
c.setblocking(False)
e = c.connect_ex(addr)
if e != errno.EINPROGRESS:
    raise SystemExit("connect: %s" % os.strerror(e))
print("port %d" % c.getsockname()[1], flush=True)
sys.stdin.readline()
c.close()
"""

# violation: on the server's veth (argv: device, port, timeout), answer
# the first SYN to port with a SYN-ACK acking the client's ISN + delta,
# then wait for the client's RST.  Prints "syn SPORT SEQ" and
# "rst SEQ ACK FLAGS".  AF_PACKET sees a frame before netfilter, so the
# firewall that keeps the server's kernel quiet does not hide it.
INJECT = r"""
import socket, struct, sys, time
dev, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
delta, isn = int(sys.argv[4]), int(sys.argv[5])
ETH_P_ALL, PACKET_HOST = 3, 0
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
s.bind((dev, 0))
print("ready", flush=True)

def csum(data):
    if len(data) % 2:
        data += b"\0"
    t = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while t >> 16:
        t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff

def parse(frame):
    # (family, source, destination, TCP header and payload) or None
    etype, = struct.unpack("!H", frame[12:14])
    ip = frame[14:]
    if etype == 0x0800 and len(ip) >= 20 and ip[9] == 6:
        ihl = (ip[0] & 15) * 4
        tot, = struct.unpack("!H", ip[2:4])
        return 4, ip[12:16], ip[16:20], ip[ihl:tot]
    if etype == 0x86dd and len(ip) >= 40 and ip[6] == 6:
        plen, = struct.unpack("!H", ip[4:6])
        return 6, ip[8:24], ip[24:40], ip[40:40 + plen]
    return None

def tcp_packet(fam, src, dst, sport, dport, seq, ack, flags):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags,
                      65535, 0, 0)
    if fam == 4:
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
    else:
        pseudo = src + dst + struct.pack("!I3xB", len(tcp), 6)
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    if fam == 4:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000,
                         64, 6, 0, src, dst)
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    else:
        ip = struct.pack("!IHBB16s16s", 6 << 28, len(tcp), 6, 64, src, dst)
    return ip + tcp

deadline = time.monotonic() + timeout
client = None
while True:
    left = deadline - time.monotonic()
    if left <= 0:
        raise SystemExit("timed out waiting for the %s"
                         % ("RST" if client else "SYN"))
    s.settimeout(left)
    frame, sa = s.recvfrom(65535)
    if sa[2] != PACKET_HOST:
        continue
    p = parse(frame)
    if not p:
        continue
    fam, src, dst, tcp = p
    if len(tcp) < 20:
        continue
    sport, dport, seq, ack, _, flags = struct.unpack("!HHIIBB", tcp[:14])
    if not client:
        if dport != port or flags & 0x12 != 0x02:
            continue
        client = sport
        print("syn %d %d" % (sport, seq), flush=True)
        reply = tcp_packet(fam, dst, src, port, sport, isn,
                           (seq + delta) & 0xffffffff, 0x12)
        eth = frame[6:12] + frame[0:6] + frame[12:14]
        s.send(eth + reply)
    elif sport == client and dport == port and flags & 0x04:
        print("rst %d %d %d" % (seq, ack, flags), flush=True)
        break
"""

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


def must(cmd):
    r = run(cmd, timeout=30)
    if r.returncode:
        raise Failure("%s: %s" % (" ".join(cmd), r.stderr.strip()))
    return r.stdout


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
        self.c = "tt_views_c_" + tag
        self.s = "tt_views_s_" + tag
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
        try:
            for cmd in cmds:
                must(cmd)
            self.c_ino = os.stat("/run/netns/" + self.c).st_ino
            self.s_ino = os.stat("/run/netns/" + self.s).st_ino
        except BaseException:
            self.close()
            raise

    def close(self):
        for ns in (self.c, self.s):
            if os.path.exists("/run/netns/" + ns):
                run(["ip", "netns", "del", ns])


class Proc:
    """A script run in a namespace; reads its "id" line."""

    def __init__(self, ns, script, args, stdin=False):
        self.p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable,
                                   "-c", script] + [str(a) for a in args],
                                  stdin=subprocess.PIPE if stdin else
                                  subprocess.DEVNULL,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.lines = []
        if script.startswith(PRELUDE):
            w = self.line("id").split()
            self.pid, self.netns, self.comm = int(w[1]), int(w[2]), w[3]

    def line(self, what):
        ln = self.p.stdout.readline()
        if not ln.startswith(what):
            self.p.kill()
            _, err = self.p.communicate()
            raise Failure("expected a line %r from the script, got %r "
                          "(stderr: %s)" % (what, ln, err.strip()))
        self.lines.append(ln.strip())
        return ln.strip()

    def wait(self, what, timeout=30):
        try:
            out, err = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.communicate()
            raise Failure("%s did not end within %d s" % (what, timeout))
        self.lines += [ln.strip() for ln in out.splitlines()]
        eq(0, self.p.returncode, "exit status of %s (stderr: %s)"
           % (what, err.strip()))

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.communicate()


def read_jsonl(path):
    recs = []
    with open(path) as f:
        for line in f:
            if line.endswith("\n"):
                recs.append(json.loads(line))
    return recs


class Capture:
    """The four scenarios of one family under `watch --json`."""

    def __init__(self, family):
        self.family = family
        self.path = os.path.join(TMP, "watch%d.jsonl" % family)
        self.summaries = None
        self.ladder = None
        self.summary_error = None
        self.ladder_error = None
        self.info = {}
        ns = self.ns = Netns(family)
        self.caddr, self.saddr = ADDRS[family]
        watch = None
        procs = []
        try:
            vport = PORTS["violation"][family]
            r = run(["ip", "netns", "exec", ns.s, "nft", "-f", "-"],
                    input="table inet tt_views {\n"
                    " chain input {\n"
                    "  type filter hook input priority 0; policy accept;\n"
                    "  tcp dport %d tcp flags & (syn | ack) == syn drop\n"
                    " }\n}\n" % vport)
            check(r.returncode == 0, "nft: %s" % r.stderr.strip())

            cmd = [TOOL, "watch", "--json", "-n", str(ns.c_ino), "-n",
                   str(ns.s_ino)]
            for sc in PORTS.values():
                cmd += ["-p", str(sc[family])]
            with open(self.path, "w") as out:
                watch = subprocess.Popen(cmd, stdout=out,
                                         stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 10
            while not has_device_open(watch.pid):
                if watch.poll() is not None:
                    raise Failure("watch exited early: %s"
                                  % watch.stderr.read())
                check(time.monotonic() < deadline,
                      "watch never opened " + DEVICE)
                time.sleep(0.05)

            self.run_violation(procs)
            self.run_scripted(procs)
            self.run_refused(procs)
            self.run_reset(procs)

            # the end of the namespaces kills their timewait sockets
            time.sleep(0.3)
            ns.close()
            deadline = time.monotonic() + 20
            while True:
                recs = read_jsonl(self.path)
                ntw = sum(r["type"] == "timewait" for r in recs)
                nend = sum(r["type"] == "timewait_end" for r in recs)
                if ntw and nend >= ntw:
                    break
                check(time.monotonic() < deadline,
                      "%d timewait records, %d timewait_end records 20 s "
                      "after the namespaces were deleted" % (ntw, nend))
                time.sleep(0.2)
            time.sleep(0.3)
            watch.send_signal(signal.SIGINT)
            try:
                _, err = watch.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                raise Failure("watch did not end on SIGINT")
            eq(0, watch.returncode, "watch exit status (stderr: %s)" % err)
            self.recs = read_jsonl(self.path)
        finally:
            for p in procs:
                p.kill()
            if watch and watch.poll() is None:
                watch.kill()
                watch.wait()
            ns.close()

    def run_violation(self, procs):
        ns, port = self.ns, PORTS["violation"][self.family]
        inj = Proc(ns.s, INJECT, ["vb", port, 20, BAD_ACK_DELTA, SYNACK_ISN])
        procs.append(inj)
        inj.line("ready")
        client = Proc(ns.c, CLIENT_VIOLATION, [ns.saddr, port], stdin=True)
        procs.append(client)
        cport = int(client.line("port").split()[1])
        syn = inj.line("syn").split()
        eq(cport, int(syn[1]), "source port of the SYN the injector saw")
        rst = inj.line("rst").split()
        inj.wait("the injector")
        client.p.stdin.write("\n")
        client.p.stdin.flush()
        client.wait("the client")
        self.info["violation"] = {
            "client": client, "cport": cport, "isn": int(syn[2]),
            "rst_seq": int(rst[1]), "rst_flags": int(rst[3])}

    def run_scripted(self, procs):
        ns, port = self.ns, PORTS["scripted"][self.family]
        server = Proc(ns.s, SERVER, [ns.saddr, port])
        procs.append(server)
        server.line("ready")
        client = Proc(ns.c, CLIENT, [ns.saddr, port])
        procs.append(client)
        cports = [int(client.line("port").split()[1]),
                  int(client.line("port").split()[1])]
        client.wait("the client")
        server.wait("the server")
        self.info["scripted"] = {"client": client, "server": server,
                                 "cports": cports}

    def run_refused(self, procs):
        ns, port = self.ns, PORTS["refused"][self.family]
        client = Proc(ns.c, CLIENT_REFUSED, [ns.saddr, port])
        procs.append(client)
        client.line("refused")
        client.wait("the client")
        self.info["refused"] = {"client": client}

    def run_reset(self, procs):
        ns, port = self.ns, PORTS["reset"][self.family]
        server = Proc(ns.s, SERVER_RESET, [ns.saddr, port])
        procs.append(server)
        server.line("ready")
        client = Proc(ns.c, CLIENT_RESET, [ns.saddr, port])
        procs.append(client)
        cport = int(client.line("port").split()[1])
        client.wait("the client")
        server.wait("the server")
        eq("reset %d" % C2S_RESET, server.lines[-1],
           "what the server saw of the abortive close")
        self.info["reset"] = {"client": client, "server": server,
                              "cport": cport}

    def conn_recs(self, scenario, cport=None):
        """The records of the port of scenario (and client port cport)."""
        port = PORTS[scenario][self.family]
        out = []
        for r in self.recs:
            if r["type"] == "lost":
                continue
            ends = {(r["saddr"], r["sport"]), (r["daddr"], r["dport"])}
            if (self.saddr, port) not in ends:
                continue
            if cport is not None and (self.caddr, cport) not in ends:
                continue
            out.append(r)
        return out

    def get_summaries(self):
        if self.summaries is None and self.summary_error is None:
            r = run([TOOL, "watch", "--summary", "--json", "-r", self.path],
                    timeout=60)
            if r.returncode:
                self.summary_error = ("watch --summary --json -r: exit %d: %s"
                                      % (r.returncode, r.stderr.strip()))
            else:
                try:
                    self.summaries = [json.loads(ln)
                                      for ln in r.stdout.splitlines()]
                except ValueError as e:
                    self.summary_error = ("watch --summary --json: %s in %r"
                                          % (e, r.stdout))
        if self.summary_error:
            raise Failure(self.summary_error)
        return self.summaries

    def summary(self, scenario, cport=None):
        """The one summary of the port of scenario (and client port)."""
        port = PORTS[scenario][self.family]
        found = [s for s in self.get_summaries()
                 if s.get("server", {}).get("port") == port and
                 (cport is None or s["client"].get("port") == cport)]
        eq(1, len(found), "summaries of server port %d%s" % (
            port, "" if cport is None else ", client port %d" % cport))
        return found[0]

    def get_ladder(self):
        if self.ladder is None and self.ladder_error is None:
            r = run([TOOL, "ladder", "-r", self.path, "--no-color"],
                    timeout=60)
            if r.returncode:
                self.ladder_error = ("ladder -r: exit %d: %s"
                                     % (r.returncode, r.stderr.strip()))
            else:
                self.ladder = r.stdout
        if self.ladder_error:
            raise Failure(self.ladder_error)
        return self.ladder

    def dump(self):
        print("# netns client %d server %d; %s"
              % (self.ns.c_ino, self.ns.s_ino, self.path))
        for sc, inf in self.info.items():
            desc = []
            for k, v in sorted(inf.items()):
                if isinstance(v, Proc):
                    v = "pid %d comm %s" % (v.pid, v.comm)
                desc.append("%s %s" % (k, v))
            print("# %s: %s" % (sc, ", ".join(desc)))
        for r in self.recs:
            print("#  " + json.dumps(r))
        if self.summaries:
            for s in self.summaries:
                print("# summary " + json.dumps(s))
        if self.ladder:
            for ln in self.ladder.splitlines():
                print("# ladder " + ln)


CAPTURES = {}


def capture(family):
    c = CAPTURES.get(family)
    if isinstance(c, Failure):
        raise Failure("capture failed: %s" % c)
    if c is None:
        try:
            c = Capture(family)
        except Failure as e:
            CAPTURES[family] = e
            path = os.path.join(TMP, "watch%d.jsonl" % family)
            if os.path.exists(path):
                print("# records of the failed capture:")
                with open(path) as f:
                    for line in f:
                        print("#  " + line.rstrip("\n"))
            raise
        CAPTURES[family] = c
    return c


def test(family, fn):
    def t():
        c = capture(family)
        try:
            fn(c)
        except Failure:
            if not getattr(c, "dumped", False):
                c.dumped = True
                c.dump()
            raise
    return t


def first(recs, what, **kw):
    found = [r for r in recs if all(r.get(k) == v for k, v in kw.items())]
    check(found, "no %s record (%r)" % (what, kw))
    return found[0]


def state(recs, netns, old, new):
    found = [r for r in recs if r["type"] == "state" and
             r["netns"] == netns and r["old_state"] == old and
             r["new_state"] == new]
    eq(1, len(found), "%s->%s records in netns %d" % (old, new, netns))
    return found[0]


# 1. the forged SYN-ACK

def check_violation_records(c):
    v = c.info["violation"]
    cport, isn = v["cport"], v["isn"]
    eq((isn + BAD_ACK_DELTA) & 0xffffffff, v["rst_seq"],
       "seq of the client's RST (the injector saw it)")
    eq(0x04, v["rst_flags"], "flags of the client's RST")
    recs = c.conn_recs("violation", cport)
    synack = first(recs, "SYN-ACK", type="packet", netns=c.ns.c_ino,
                   dir="in", flags="S.")
    eq((c.saddr, PORTS["violation"][c.family], c.caddr, cport),
       (synack["saddr"], synack["sport"], synack["daddr"], synack["dport"]),
       "addresses of the SYN-ACK")
    eq(SYNACK_ISN, synack["seq"], "seq of the SYN-ACK")
    eq((isn + BAD_ACK_DELTA) & 0xffffffff, synack["ack"],
       "ack of the SYN-ACK")
    eq(VIOLATION, synack.get("violation"), "violation of the SYN-ACK")
    rst = first(recs, "RST", type="packet", netns=c.ns.c_ino, dir="out",
                flags="R")
    eq((isn + BAD_ACK_DELTA) & 0xffffffff, rst["seq"], "seq of the RST")
    bad = [r for r in c.recs if "violation" in r and r is not synack]
    eq([], bad, "other records with a violation")


def check_violation_views(c):
    cport = c.info["violation"]["cport"]
    s = c.summary("violation", cport)
    eq([VIOLATION], s.get("violations"), "violations of the summary")
    eq({"addr": c.caddr, "port": cport},
       {"addr": s["client"]["addr"], "port": s["client"]["port"]},
       "client of the summary")
    others = [x for x in c.get_summaries() if x is not s and
              x.get("violations") != []]
    eq([], others, "other summaries with violations")
    # the mark under the SYN-ACK's arrow:
    #   |<-- SYN-ACK seq=0 ack=2 ... ---|
    #      !! synack_ack_not_isn_plus_1 ...
    # and in the summary that ends its diagram
    lines = c.get_ladder().splitlines()
    named = [i for i, ln in enumerate(lines) if VIOLATION in ln]
    marks = [i for i in named if lines[i].strip(" |").startswith("!!")]
    eq(1, len(marks), "ladder lines naming %s after '!!'" % VIOLATION)
    eq(2, len(named), "ladder lines naming %s" % VIOLATION)
    i = marks[0]
    check("violations:" in lines[max(named)], "the ladder names %s in %r"
          % (VIOLATION, lines[max(named)]))
    arrows = [ln for ln in lines[:i] if "-->" in ln or "<--" in ln]
    check(arrows, "no arrow above the violation in the ladder")
    arrow = arrows[-1]
    check("<--" in arrow and "SYN-ACK" in arrow and
          " ack=%d" % BAD_ACK_DELTA in arrow,
          "the arrow above the violation is not the SYN-ACK from the "
          "server with ack=%d: %r" % (BAD_ACK_DELTA, arrow))


# 2. no violation in normal traffic

def check_no_violation(c):
    for sc in ("scripted", "refused", "reset"):
        recs = c.conn_recs(sc)
        check(len(recs) >= 4, "%d records of %s" % (len(recs), sc))
        eq([], [r for r in recs if "violation" in r],
           "%s records with a violation" % sc)
    for cport in c.info["scripted"]["cports"]:
        eq([], c.summary("scripted", cport).get("violations"),
           "violations of the summary of client port %d" % cport)
    eq([], c.summary("refused").get("violations"),
       "violations of the refused connection's summary")
    eq([], c.summary("reset").get("violations"),
       "violations of the reset connection's summary")


# 3. the summaries

def check_ends(c, s, scenario, cport, client, server):
    """The client and server objects of summary s."""
    port = PORTS[scenario][c.family]
    eq(c.family, s.get("family"), "family")
    eq("summary", s.get("type"), "type")
    want_c = {"addr": c.caddr, "port": cport, "netns": c.ns.c_ino,
              "pid": client.pid if client else None,
              "comm": client.comm if client else None}
    want_s = {"addr": c.saddr, "port": port, "netns": c.ns.s_ino,
              "pid": server.pid if server else None,
              "comm": server.comm if server else None}
    eq(c.ns.c_ino, client.netns, "netns inode the client saw")
    if server:
        eq(c.ns.s_ino, server.netns, "netns inode the server saw")
    eq(want_c, s.get("client"), "client")
    eq(want_s, s.get("server"), "server")


def is_ns(v):
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def check_summary_closed(c, n):
    inf = c.info["scripted"]
    cport = inf["cports"][n]
    client, server = inf["client"], inf["server"]
    closer, other = ("client", "server") if n == 0 else ("server", "client")
    c2s, s2c = (C2S_1, S2C_1) if n == 0 else (C2S_2, S2C_2)
    s = c.summary("scripted", cport)
    what = "summary of client port %d: " % cport
    check_ends(c, s, "scripted", cport, client, server)
    recs = c.conn_recs("scripted", cport)
    eq("closed", s.get("outcome"), what + "outcome")
    eq(closer, s.get("closed_first"), what + "closed_first")
    eq(0, s.get("syn_retransmits"), what + "syn_retransmits")
    eq(0, s.get("synack_retransmits"), what + "synack_retransmits")
    eq({"client_to_server": c2s, "server_to_client": s2c}, s.get("bytes"),
       what + "bytes")
    eq([], s.get("violations"), what + "violations")
    eq(0, s.get("lost_records"), what + "lost_records")
    netns = {"client": c.ns.c_ino, "server": c.ns.s_ino}
    # the handshake: the client's from CLOSE->SYN_SENT (a record of no
    # local port yet: found by its sock_id) to SYN_SENT->ESTABLISHED; the
    # server's from the SYN's arrival to SYN_RECV->ESTABLISHED
    hs = s.get("handshake_ns") or {}
    est = state(recs, c.ns.c_ino, "SYN_SENT", "ESTABLISHED")
    sent = [r for r in c.recs if r.get("sock_id") == est["sock_id"] and
            r["type"] == "state" and r["new_state"] == "SYN_SENT" and
            r["ts_ns"] <= est["ts_ns"]]
    check(sent, "no CLOSE->SYN_SENT record of sock_id %d" % est["sock_id"])
    eq(est["ts_ns"] - sent[-1]["ts_ns"], hs.get("client"),
       what + "handshake_ns.client")
    syn = first(recs, "SYN", type="packet", netns=c.ns.s_ino, dir="in",
                flags="S")
    sest = state(recs, c.ns.s_ino, "SYN_RECV", "ESTABLISHED")
    eq(sest["ts_ns"] - syn["ts_ns"], hs.get("server"),
       what + "handshake_ns.server")
    for end in ("client", "server"):
        check(is_ns(hs[end]) and hs[end] < 10**9,
              what + "handshake_ns.%s %r" % (end, hs[end]))
    # FIN_WAIT2: from FIN_WAIT1->FIN_WAIT2 to the timewait record (its
    # TIME_WAIT begins); CLOSE_WAIT: the state records; TIME_WAIT: from
    # the timewait record to its end (killed with the namespace)
    fw = s.get("fin_wait2_ns") or {}
    cw = s.get("close_wait_ns") or {}
    tw = s.get("time_wait_ns") or {}
    fw_in = state(recs, netns[closer], "FIN_WAIT1", "FIN_WAIT2")
    twr = first(recs, "timewait", type="timewait", netns=netns[closer])
    eq(twr["ts_ns"] - fw_in["ts_ns"], fw.get(closer),
       what + "fin_wait2_ns.%s" % closer)
    eq(None, fw.get(other), what + "fin_wait2_ns.%s" % other)
    cw_in = state(recs, netns[other], "ESTABLISHED", "CLOSE_WAIT")
    cw_out = state(recs, netns[other], "CLOSE_WAIT", "LAST_ACK")
    eq(cw_out["ts_ns"] - cw_in["ts_ns"], cw.get(other),
       what + "close_wait_ns.%s" % other)
    check(cw[other] >= CLOSE_WAIT_SLEEP * 1e9,
          what + "close_wait_ns.%s %d < the %g s the script slept"
          % (other, cw[other], CLOSE_WAIT_SLEEP))
    eq(None, cw.get(closer), what + "close_wait_ns.%s" % closer)
    twe = first(recs, "timewait_end", type="timewait_end",
                netns=netns[closer])
    eq("killed", twe["end"], "end of the timewait socket")
    eq(twe["ts_ns"] - twr["ts_ns"], tw.get(closer),
       what + "time_wait_ns.%s" % closer)
    eq(twe.get("duration_ns"), tw[closer],
       what + "time_wait_ns.%s against the duration_ns of timewait_end"
       % closer)
    eq(None, tw.get(other), what + "time_wait_ns.%s" % other)
    syns = [r for r in recs if r["type"] == "packet" and r["flags"] == "S"]
    eq(min(r["ts_ns"] for r in syns), s.get("start_ns"),
       what + "start_ns (the first SYN)")
    eq(max(r["ts_ns"] for r in recs), s.get("end_ns"),
       what + "end_ns (the last record)")


def check_summary_refused(c):
    client = c.info["refused"]["client"]
    recs = c.conn_recs("refused")
    syn = first(recs, "SYN", type="packet", netns=c.ns.c_ino, dir="out",
                flags="S")
    rst = first(recs, "RST", type="packet", netns=c.ns.s_ino, dir="out",
                flags="R.")
    eq(syn["seq"] + 1, rst["ack"], "ack of the server's RST")
    s = c.summary("refused")
    check_ends(c, s, "refused", syn["sport"], client, None)
    eq(syn["ts_ns"], s.get("start_ns"), "start_ns (the SYN)")
    eq("refused", s.get("outcome"), "outcome")
    eq(None, s.get("closed_first"), "closed_first")
    eq(0, s.get("syn_retransmits"), "syn_retransmits")
    eq({"client": None, "server": None}, s.get("handshake_ns"),
       "handshake_ns")
    eq([], s.get("violations"), "violations")


def check_summary_reset(c):
    inf = c.info["reset"]
    cport = inf["cport"]
    s = c.summary("reset", cport)
    check_ends(c, s, "reset", cport, inf["client"], inf["server"])
    recs = c.conn_recs("reset", cport)
    rst = first(recs, "RST", type="packet", netns=c.ns.c_ino, dir="out",
                flags="R.")
    eq(syn_seq(recs, c.ns.c_ino) + 1 + C2S_RESET, rst["seq"],
       "seq of the client's RST")
    syn = first(recs, "SYN", type="packet", netns=c.ns.c_ino, dir="out",
                flags="S")
    eq(syn["ts_ns"], s.get("start_ns"), "start_ns (the SYN)")
    eq("reset by client", s.get("outcome"), "outcome")
    eq(None, s.get("closed_first"), "closed_first")
    eq({"client_to_server": C2S_RESET, "server_to_client": None},
       s.get("bytes"), "bytes")
    hs = s.get("handshake_ns") or {}
    for end in ("client", "server"):
        check(is_ns(hs.get(end)) and hs[end] < 10**9,
              "handshake_ns.%s %r" % (end, hs.get(end)))
    eq([], s.get("violations"), "violations")


def syn_seq(recs, netns):
    return first(recs, "SYN", type="packet", netns=netns, dir="out",
                 flags="S")["seq"]


# 4. process attribution

def check_owners(c):
    inf = c.info["scripted"]
    client, server = inf["client"], inf["server"]
    port = PORTS["scripted"][c.family]
    eq(os.path.basename(sys.executable)[:15], client.comm, "client's comm")
    eq(client.comm, server.comm, "server's comm")
    for netns, proc, who in ((c.ns.c_ino, client, "client"),
                             (c.ns.s_ino, server, "server")):
        # every record of the port in that namespace: the listener's,
        # CLOSE->SYN_SENT (no local port yet) and LISTEN->SYN_RECV (no
        # remote end yet) too; the only process there is proc
        mine = [r for r in c.conn_recs("scripted") if r["netns"] == netns]
        for cport in inf["cports"]:
            # both connections: a SYN or SYN-ACK that arrived in softirq
            check(any(r["type"] == "packet" and r["dir"] == "in" and
                      "S" in r["flags"] and r["pid"] == 0 and
                      cport in (r["sport"], r["dport"]) for r in mine),
                  "no SYN of client port %d arriving in softirq on the "
                  "%s's side" % (cport, who))
        for r in mine:
            what = "%s-side record %s" % (who, json.dumps(r))
            eq(proc.pid, r.get("owner_pid"), what + ": owner_pid")
            eq(proc.comm, r.get("owner_comm"), what + ": owner_comm")
            if r["pid"] not in (0, proc.pid):
                # the end of a timewait socket killed by the netns
                # cleanup, made in a kernel worker's context
                check(r["type"] == "timewait_end" and
                      r["end"] == "killed" and
                      r.get("comm", "").startswith("kworker/"),
                      what + ": pid neither 0 nor %d" % proc.pid)
    for cport in inf["cports"]:
        s = c.summary("scripted", cport)
        for end, proc in (("client", client), ("server", server)):
            eq((proc.pid, proc.comm), (s[end].get("pid"),
                                       s[end].get("comm")),
               "summary of client port %d: %s pid, comm" % (cport, end))


def main():
    tests = []
    for fam in (4, 6):
        ip = "IPv%d" % fam
        tests += [
            ("%s: the forged SYN-ACK has violation %s, no other record"
             % (ip, VIOLATION), test(fam, check_violation_records)),
            ("%s: summary and ladder show the violation" % ip,
             test(fam, check_violation_views)),
            ("%s: no violation in normal traffic" % ip,
             test(fam, check_no_violation)),
            ("%s: summary of a connection the client closes first" % ip,
             test(fam, lambda c: check_summary_closed(c, 0))),
            ("%s: summary of a connection the server closes first" % ip,
             test(fam, lambda c: check_summary_closed(c, 1))),
            ("%s: summary of a refused connection" % ip,
             test(fam, check_summary_refused)),
            ("%s: summary of a connection reset by the client" % ip,
             test(fam, check_summary_reset)),
            ("%s: owner_pid and owner_comm of the records, summary pids"
             % ip, test(fam, check_owners)),
        ]
    print("TAP version 13")
    print("1..%d" % len(tests))
    if os.geteuid() != 0:
        print("# SKIP: needs root")
        print("# Totals: pass:0 fail:0 xfail:0 xpass:0 skip:%d error:0"
              % len(tests))
        return 4
    npass = nfail = 0
    try:
        check(os.access(TOOL, os.X_OK), "%s not built (make -C userspace)"
              % TOOL)
        load_module()
        shutil.rmtree(TMP, ignore_errors=True)
        os.makedirs(TMP)
    except Failure as e:
        print("Bail out! %s" % e)
        print("# Totals: pass:0 fail:%d xfail:0 xpass:0 skip:0 error:0"
              % len(tests))
        return 1
    try:
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
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    print("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:0 error:0"
          % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
