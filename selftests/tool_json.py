#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
#
# tcptracectl as a user runs it: `tcptracectl watch --json` while a scripted
# connection runs between two network namespaces joined by veth, its JSON
# Lines checked record by record; then its error messages and exit codes.
#
# Needs root and the module: TCPTRACE_KO (default ../module/tcptrace.ko) is
# loaded when it is not, and loaded again after the test that unloads it.
# Prints TAP; exits non-zero when a test failed.

import json
import os
import signal
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TOOL = os.path.join(REPO, "userspace", "tcptracectl")
KO = os.environ.get("TCPTRACE_KO") or os.path.join(REPO, "module",
                                                   "tcptrace.ko")
# one port per family: a namespace's inode number is reused once it is
# gone, and the records of its last moments (timewait sockets killed with
# it) may come after, so each test also filters on its own port
PORTS = {4: 6004, 6: 6006}
DEVICE = "/dev/tcptrace"

ADDRS = {
    4: ("10.201.1.1", "10.201.1.2"),
    6: ("fd00:201::1", "fd00:201::2"),
}

COMMON_KEYS = {"ts_ns", "type", "netns", "family", "saddr", "sport", "daddr",
               "dport", "cpu", "pid"}
PACKET_KEYS = COMMON_KEYS | {"dir", "flags", "seq", "ack", "win", "len"}
STATE_KEYS = COMMON_KEYS | {"old_state", "new_state", "snd_nxt", "rcv_nxt",
                            "snd_una"}

# The client and the server, each run with `ip netns exec`.  The server
# accepts one connection, reads until EOF and closes; the client connects,
# waits, sends 5 bytes, half-closes, waits for EOF and closes.
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
# the server has accepted before data comes: data right behind the third
# ACK may be handled on another CPU at the same time, and both create a
# child socket (one is dropped: tcp_check_req() and its req_stolen path)
time.sleep(0.3)
c.sendall(b"hello")
time.sleep(0.3)
c.shutdown(socket.SHUT_WR)
while c.recv(100):
    pass
time.sleep(0.3)
c.close()
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
        self.c = "tt_tool_c_" + tag
        self.s = "tt_tool_s_" + tag
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


def watch_connection(family):
    """Runs the scripted connection under `watch --json`; returns
    (netns, records, client pid)."""
    ns = Netns(family)
    watch = None
    server = None
    try:
        watch = subprocess.Popen([TOOL, "watch", "--json", "-n",
                                  str(ns.c_ino), "-n", str(ns.s_ino),
                                  "-p", str(PORTS[family])],
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while not has_device_open(watch.pid):
            if watch.poll() is not None:
                raise Failure("watch exited early: %s" % watch.stderr.read())
            check(time.monotonic() < deadline, "watch never opened "
                  + DEVICE)
            time.sleep(0.05)
        server = subprocess.Popen(["ip", "netns", "exec", ns.s,
                                   sys.executable, "-c", SERVER, ns.saddr,
                                   str(PORTS[family])],
                                  stdout=subprocess.PIPE,
                                  text=True)
        eq("ready\n", server.stdout.readline(), "server start")
        client = subprocess.Popen(["ip", "netns", "exec", ns.c,
                                   sys.executable, "-c", CLIENT, ns.saddr,
                                   str(PORTS[family])])
        eq(0, client.wait(timeout=30), "client exit status")
        eq(0, server.wait(timeout=30), "server exit status")
        time.sleep(0.5)
        watch.send_signal(signal.SIGINT)
        out, err = watch.communicate(timeout=10)
        eq(0, watch.returncode, "watch exit status (stderr: %s)" % err)
        recs = [json.loads(line) for line in out.splitlines()]
        return ns, recs, client.pid
    finally:
        for p in (server, watch):
            if p and p.poll() is None:
                p.kill()
                p.wait()
        ns.close()


def check_handshake(family):
    ns, recs, client_pid = watch_connection(family)
    try:
        check_handshake_records(family, ns, recs, client_pid)
    except Failure:
        print("# netns client %d server %d, client pid %d; records:"
              % (ns.c_ino, ns.s_ino, client_pid))
        for r in recs:
            print("#  " + json.dumps(r))
        raise


def check_handshake_records(family, ns, recs, client_pid):
    caddr, saddr = ADDRS[family]
    comm = os.path.basename(sys.executable)[:15]

    check(recs, "no records printed")
    for i, r in enumerate(recs):
        check(r["netns"] in (ns.c_ino, ns.s_ino),
              "record %d of another netns: %r" % (i, r))
        eq(family, r["family"], "record %d family" % i)
        if i:
            check(recs[i - 1]["ts_ns"] <= r["ts_ns"],
                  "timestamps go back at record %d" % i)

    pk = [r for r in recs if r["type"] == "packet"]
    for r in pk:
        keys = set(r) - {"comm", "sock_id", "rel_seq", "rel_ack",
                         "owner_pid", "owner_comm"}
        eq(PACKET_KEYS, keys, "keys of a packet record")
        check(r["dir"] in ("in", "out"), "dir %r" % r["dir"])
        if r["pid"]:
            check("comm" in r, "comm missing with pid %d" % r["pid"])
        else:
            check("comm" not in r, "comm with pid 0")

    # the handshake: each segment out of one namespace and into the other
    want = [
        (ns.c_ino, "out", True, "S"),
        (ns.s_ino, "in", True, "S"),
        (ns.s_ino, "out", False, "S."),
        (ns.c_ino, "in", False, "S."),
        (ns.c_ino, "out", True, "."),
        (ns.s_ino, "in", True, "."),
    ]
    check(len(pk) >= 6, "%d packet records" % len(pk))
    cport = pk[0]["sport"]
    x = pk[0]["seq"]
    y = pk[2]["seq"]
    seqack = {"S": (x, None), "S.": (y, x + 1), ".": (x + 1, y + 1)}
    rel = {"S": (0, None), "S.": (0, 1), ".": (1, 1)}
    for k, (netns, d, from_client, flags) in enumerate(want):
        r = pk[k]
        what = "handshake packet %d" % k
        eq(netns, r["netns"], what + " netns")
        eq(d, r["dir"], what + " dir")
        eq(flags, r["flags"], what + " flags")
        src = (caddr, cport) if from_client else (saddr, PORTS[family])
        dst = (saddr, PORTS[family]) if from_client else (caddr, cport)
        eq(src, (r["saddr"], r["sport"]), what + " source")
        eq(dst, (r["daddr"], r["dport"]), what + " destination")
        seq, ack = seqack[flags]
        eq(seq, r["seq"], what + " seq")
        if ack is not None:
            eq(ack, r["ack"], what + " ack")
        eq(0, r["len"], what + " len")
        rseq, rack = rel[flags]
        eq(rseq, r.get("rel_seq"), what + " rel_seq")
        eq(rack, r.get("rel_ack"), what + " rel_ack")
    # every record of the client's end names the client, softirq or not
    for r in recs:
        if r["netns"] == ns.c_ino:
            eq((client_pid, comm), (r.get("owner_pid"), r.get("owner_comm")),
               "owner of the client's %s record at %d" % (r["type"],
                                                          r["ts_ns"]))
    # the SYN left in the client's connect()
    eq(client_pid, pk[0]["pid"], "pid of the SYN")
    eq(comm, pk[0].get("comm"), "comm of the SYN")

    st = [r for r in recs if r["type"] == "state"]
    for r in st:
        keys = set(r) - {"comm", "sock_id", "owner_pid", "owner_comm"}
        eq(STATE_KEYS, keys, "keys of a state record")

    def one(netns, old, new):
        found = [r for r in st if r["netns"] == netns and
                 r["old_state"] == old and r["new_state"] == new]
        eq(1, len(found), "%s->%s records in netns %d" % (old, new, netns))
        return found[0]

    lis = one(ns.s_ino, "CLOSE", "LISTEN")
    eq((saddr, PORTS[family]), (lis["saddr"], lis["sport"]), "listener address")
    syn_sent = one(ns.c_ino, "CLOSE", "SYN_SENT")
    eq(0, syn_sent["sport"], "sport at SYN_SENT")
    eq((saddr, PORTS[family]), (syn_sent["daddr"], syn_sent["dport"]),
       "remote at SYN_SENT")
    eq(client_pid, syn_sent["pid"], "pid of CLOSE->SYN_SENT")
    est = one(ns.c_ino, "SYN_SENT", "ESTABLISHED")
    eq(syn_sent["sock_id"], est["sock_id"], "client sock_id")
    eq((caddr, cport, saddr, PORTS[family]),
       (est["saddr"], est["sport"], est["daddr"], est["dport"]),
       "client ESTABLISHED addresses")
    eq((x + 1, y + 1, x + 1), (est["snd_nxt"], est["rcv_nxt"],
                               est["snd_una"]),
       "client ESTABLISHED snd_nxt, rcv_nxt, snd_una")
    srecv = one(ns.s_ino, "LISTEN", "SYN_RECV")
    sest = one(ns.s_ino, "SYN_RECV", "ESTABLISHED")
    eq(srecv["sock_id"], sest["sock_id"], "accepted socket sock_id")
    eq((saddr, PORTS[family], caddr, cport),
       (sest["saddr"], sest["sport"], sest["daddr"], sest["dport"]),
       "server ESTABLISHED addresses")
    eq((y + 1, x + 1, y + 1), (sest["snd_nxt"], sest["rcv_nxt"],
                               sest["snd_una"]),
       "server ESTABLISHED snd_nxt, rcv_nxt, snd_una")

    # the client closed first: a TIMEWAIT with its keys, on its socket
    tw = [r for r in recs if r["type"] == "timewait"]
    eq(1, len(tw), "timewait records")
    eq(COMMON_KEYS | {"state", "tw_substate", "timeo_ms", "snd_nxt",
                      "rcv_nxt"}, set(tw[0]) - {"comm", "sock_id",
                                                "owner_pid", "owner_comm"},
       "keys of the timewait record")
    eq(syn_sent["sock_id"], tw[0]["sock_id"], "timewait sock_id")
    eq(ns.c_ino, tw[0]["netns"], "timewait netns")
    eq("FIN_WAIT2", tw[0]["state"], "timewait state")
    eq("TIME_WAIT", tw[0]["tw_substate"], "timewait substate")
    eq(60000, tw[0]["timeo_ms"], "timewait timeo_ms")
    # FIN seq: x + 1 + 5 bytes
    fins = [r for r in pk if r["flags"] == "F." and r["sport"] == cport]
    check(fins, "no FIN of the client")
    eq(x + 6, fins[0]["seq"], "client FIN seq")
    eq(6, fins[0].get("rel_seq"), "client FIN rel_seq")


def check_not_loaded():
    was = module_loaded()
    if was:
        r = run(["rmmod", "tcptrace"])
        check(r.returncode == 0, "rmmod: %s" % r.stderr.strip())
    try:
        for args in (["watch"], ["watch", "--json"], ["stats"]):
            r = run([TOOL] + args, timeout=10)
            eq(1, r.returncode, "exit status of %s without the module"
               % " ".join(args))
            check("tcptrace module not loaded" in r.stderr,
                  "stderr of %s: %r" % (" ".join(args), r.stderr))
            eq("", r.stdout, "stdout of %s" % " ".join(args))
    finally:
        load_module()


def check_usage_errors():
    for args in (["watch", "--bogus"], ["watch", "-c", "abc"],
                 ["watch", "-p", "70000"], ["no-such-command"], ["-Z"]):
        r = run([TOOL] + args, timeout=10)
        eq(2, r.returncode, "exit status of tcptracectl %s" % " ".join(args))
        check(r.stderr.strip() != "", "no message for %s" % " ".join(args))


def main():
    tests = [
        ("watch --json of an IPv4 handshake over veth",
         lambda: check_handshake(4)),
        ("watch --json of an IPv6 handshake over veth",
         lambda: check_handshake(6)),
        ("module not loaded: exit 1 and its message", check_not_loaded),
        ("bad flags and arguments: exit 2", check_usage_errors),
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
