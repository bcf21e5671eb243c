#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
#
# `tcptracectl metrics` during real traffic: the metrics server reads the
# device while connections run between two network namespaces joined by
# veth, and /metrics, scraped with curl before and after each scenario,
# must have moved by exactly what the scenario did:
#
#   normal      3 connections closed by the client, 1 reset by the server
#               (SO_LINGER 0): handshakes completed at both sides, TIME_WAIT
#               entries, a RST sent "aborted" and received in ESTABLISHED;
#   refused     2 SYNs to a port with no listener: failed handshakes
#               (reset), RSTs received in SYN_SENT, RSTs sent for no socket;
#   syn lost    the server's firewall drops SYNs, tcp_syn_retries 2: 2 SYN
#               retransmissions, a failed handshake (timeout);
#   synack      the client's ACKs are dropped, tcp_synack_retries 2: 2
#               SYN-ACK retransmissions, then an abortive close;
#   overflow    a listener with backlog 1 that never accepts, a third client
#               with tcp_syn_retries 1: 2 accept-queue overflows (SYN
#               dropped) labelled with the listener and its namespace;
#   lost        the module reloaded with buf_records=16 (and ports= the
#               test's port, not the scrapes' one) and the metrics
#               server stopped (SIGSTOP) during traffic: the lost records
#               it reads add up to the module's drop counter.
#
# promtool (Debian's prometheus package) checks the text format.  Needs
# root, the module (TCPTRACE_KO, loaded when it is not; the last case
# reloads it and leaves it loaded with default parameters), ip, nft and
# curl.  Prints TAP; exits non-zero when a case failed.

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TOOL = os.path.join(REPO, "userspace", "tcptracectl")
KO = os.environ.get("TCPTRACE_KO") or os.path.join(REPO, "module",
                                                   "tcptrace.ko")
METRICS_PORT = 9464
CADDR, SADDR = "10.213.1.1", "10.213.1.2"
PORT = {"normal": 7101, "abort": 7102, "refused": 7103, "synlost": 7104,
        "synack": 7105, "overflow": 7106, "lost": 7107}


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, **kw)


def must(cmd, **kw):
    r = run(cmd, **kw)
    check(r.returncode == 0, "%s: %s" % (" ".join(cmd), r.stderr.strip()))
    return r.stdout


def load_module(*params):
    if not os.path.isdir("/sys/module/tcptrace"):
        must(["insmod", KO] + list(params))


def unload_module():
    deadline = time.monotonic() + 10
    while os.path.isdir("/sys/module/tcptrace"):
        if not run(["rmmod", "tcptrace"]).returncode:
            break
        check(time.monotonic() < deadline, "rmmod tcptrace keeps failing")
        time.sleep(0.2)


class Netns:
    def __init__(self):
        tag = str(os.getpid())
        self.c = "tt_met_c_" + tag
        self.s = "tt_met_s_" + tag
        for cmd in (
            ["ip", "netns", "add", self.c],
            ["ip", "netns", "add", self.s],
            ["ip", "-n", self.c, "link", "set", "lo", "up"],
            ["ip", "-n", self.s, "link", "set", "lo", "up"],
            ["ip", "-n", self.c, "link", "add", "va", "type", "veth",
             "peer", "name", "vb", "netns", self.s],
            ["ip", "-n", self.c, "link", "set", "va", "up"],
            ["ip", "-n", self.s, "link", "set", "vb", "up"],
            ["ip", "-n", self.c, "addr", "add", CADDR + "/24", "dev", "va"],
            ["ip", "-n", self.s, "addr", "add", SADDR + "/24", "dev", "vb"],
        ):
            r = run(cmd)
            if r.returncode:
                self.close()
                raise Failure("%s: %s" % (" ".join(cmd), r.stderr.strip()))
        # 6.5 and later retransmit the first SYNs after 1 s each
        # (tcp_syn_linear_timeouts, 4 by default), more of them within
        # tcp_syn_retries' time: back off from the first, as 6.1 does
        run(["ip", "netns", "exec", self.c, "sh", "-c",
             "f=/proc/sys/net/ipv4/tcp_syn_linear_timeouts; "
             "[ ! -e $f ] || echo 0 > $f"])
        self.c_ino = os.stat("/run/netns/" + self.c).st_ino
        self.s_ino = os.stat("/run/netns/" + self.s).st_ino

    def py(self, ns, code, *args, **kw):
        return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable,
                                 "-c", code] + [str(a) for a in args],
                                stdout=subprocess.PIPE, text=True, **kw)

    def close(self):
        for ns in (self.c, self.s):
            run(["ip", "netns", "del", ns])


# A server: listen(backlog) on PORT, print "ready", then accept N
# connections (0: never accept) and handle each per MODE: 'eof' reads until
# EOF and closes; 'abort' closes at once with SO_LINGER 0 (a RST).
SERVER = r"""
import socket, struct, sys, time
addr, port, n, mode, backlog = sys.argv[1], int(sys.argv[2]), \
    int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((addr, port))
l.listen(backlog)
print("ready", flush=True)
if n == 0:
    time.sleep(3600)
for _ in range(n):
    a, _ = l.accept()
    if mode == "abort":
        a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
        a.close()
        continue
    while a.recv(100):
        pass
    a.close()
l.close()
"""

# A client: connect and then per MODE: 'close' sends 5 bytes and closes
# first; 'wait' waits for the server's RST (or EOF) and closes; 'fail'
# expects connect() to fail and prints the error; 'idle S' waits S
# seconds and closes with SO_LINGER 0; 'hold' connects and sleeps.
CLIENT = r"""
import socket, struct, sys, time
addr, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
c = socket.socket()
try:
    c.connect((addr, port))
except OSError as e:
    print("connect failed: %s" % e.strerror, flush=True)
    sys.exit(0 if mode == "fail" else 1)
if mode == "fail":
    sys.exit(1)
print("connected", flush=True)
if mode == "close":
    c.sendall(b"hello")
    time.sleep(0.2)
    c.close()
elif mode == "wait":
    try:
        while c.recv(100):
            pass
    except ConnectionResetError:
        print("reset", flush=True)
    c.close()
elif mode == "idle":
    time.sleep(float(sys.argv[4]))
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
elif mode == "hold":
    time.sleep(3600)
"""


def scrape():
    """{series: value} from curl http://127.0.0.1:PORT/metrics."""
    r = run(["curl", "-sS", "--max-time", "10", "-D", "/dev/stderr",
             "http://127.0.0.1:%d/metrics" % METRICS_PORT])
    check(r.returncode == 0, "curl: %s" % r.stderr.strip())
    check("Content-Type: text/plain; version=0.0.4" in r.stderr,
          "curl: no text format content type: %s" % r.stderr.strip())
    vals = {}
    for line in r.stdout.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            vals[series] = int(value)
    return vals, r.stdout


def delta(before, after):
    keys = set(before) | set(after)
    return {k: after.get(k, 0) - before.get(k, 0) for k in keys
            if after.get(k, 0) != before.get(k, 0)}


# The families whose every change a scenario must explain.
WATCHED = ("tcptrace_handshakes_", "tcptrace_syn_retransmissions",
           "tcptrace_synack_retransmissions", "tcptrace_resets_",
           "tcptrace_accept_queue_", "tcptrace_syn_queue_",
           "tcptrace_timewait_entered", "tcptrace_records_lost")


def expect_delta(before, want, what, settle=3.0, extra_ok=()):
    """Scrapes until the watched series moved by @want (sums of series
    matching a regex when a key starts with '~'), within @settle s."""
    deadline = time.monotonic() + settle
    while True:
        after, _ = scrape()
        d = delta(before, after)
        got = {}
        for k, v in want.items():
            if k.startswith("~"):
                got[k] = sum(x for s, x in d.items() if re.search(k[1:], s))
            else:
                got[k] = d.get(k, 0)
        explained = set()
        for k in want:
            explained |= {s for s in d if (re.search(k[1:], s) if
                                           k.startswith("~") else s == k)}
        stray = {s: x for s, x in d.items() if s not in explained and
                 s.startswith(WATCHED) and
                 not any(re.search(p, s) for p in extra_ok)}
        if got == want and not stray:
            return after
        if time.monotonic() > deadline:
            raise Failure("%s: moved %r, expected %r; also moved %r" %
                          (what, got, want, stray))
        time.sleep(0.3)


class Metrics:
    def __init__(self, ns):
        self.proc = subprocess.Popen(
            [TOOL, "metrics", "--listen", "127.0.0.1:%d" % METRICS_PORT,
             "-n", str(ns.c_ino), "-n", str(ns.s_ino)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", METRICS_PORT),
                                         1).close()
                break
            except OSError:
                if self.proc.poll() is not None:
                    raise Failure("metrics exited: %s" %
                                  self.proc.stderr.read())
                check(time.monotonic() < deadline, "metrics never listened")
                time.sleep(0.1)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        err = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode, err


def start_server(ns, port, n, mode="eof", backlog=16):
    p = ns.py(ns.s, SERVER, SADDR, port, n, mode, backlog)
    line = p.stdout.readline()
    if line != "ready\n":
        p.kill()
        raise Failure("server on port %d did not start" % port)
    return p


def finish(procs, timeout=30):
    end = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(end - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            hung = [" ".join(q.args[7:]) for q in procs if q.poll() is None]
            kill(procs)
            raise Failure("still running after %d s: %s" % (timeout,
                                                            "; ".join(hung)))


def kill(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
        if p.stdout:
            p.stdout.close()


def case_normal(ns):
    before, _ = scrape()
    srv = start_server(ns, PORT["normal"], 3)
    cl = [ns.py(ns.c, CLIENT, SADDR, PORT["normal"], "close")
          for _ in range(3)]
    finish(cl + [srv])
    check(all(p.returncode == 0 for p in cl + [srv]), "a client failed")
    kill(cl + [srv])
    before = expect_delta(before, {
        'tcptrace_handshakes_completed_total{side="client"}': 3,
        'tcptrace_handshakes_completed_total{side="server"}': 3,
        "~^tcptrace_timewait_entered_total": 3,
    }, "3 connections closed by the client")

    srv = start_server(ns, PORT["abort"], 1, mode="abort")
    cl = ns.py(ns.c, CLIENT, SADDR, PORT["abort"], "wait")
    finish([cl, srv])
    out = cl.stdout.read()
    kill([cl, srv])
    check("reset" in out, "the client saw no reset: %r" % out)
    expect_delta(before, {
        'tcptrace_handshakes_completed_total{side="client"}': 1,
        'tcptrace_handshakes_completed_total{side="server"}': 1,
        'tcptrace_resets_sent_total{reason="aborted"}': 1,
        'tcptrace_resets_received_total{reason="in_established"}': 1,
    }, "a connection the server resets (SO_LINGER 0)")


def case_refused(ns):
    before, _ = scrape()
    cl = [ns.py(ns.c, CLIENT, SADDR, PORT["refused"], "fail")
          for _ in range(2)]
    finish(cl)
    outs = [p.stdout.read() for p in cl]
    kill(cl)
    check(all("Connection refused" in o for o in outs), repr(outs))
    expect_delta(before, {
        'tcptrace_handshakes_failed_total{side="client",reason="reset"}': 2,
        'tcptrace_resets_received_total{reason="in_syn_sent"}': 2,
        'tcptrace_resets_sent_total{reason="no_socket"}': 2,
    }, "2 refused connections")


def case_retransmissions(ns):
    """The lost SYNs and the lost ACKs, at the same time."""
    before, _ = scrape()
    must([TOOL, "tune", "--netns", ns.c, "--syn-retries", "2"])
    must([TOOL, "tune", "--netns", ns.s, "--synack-retries", "2"])
    nft = ["add table inet tt_met",
           "add chain inet tt_met in { type filter hook input priority 0; }",
           "add rule inet tt_met in tcp dport %d "
           "tcp flags & (syn | ack) == syn drop" % PORT["synlost"],
           "add rule inet tt_met in tcp dport %d "
           "tcp flags & (syn | ack | fin | rst) == ack drop" % PORT["synack"]]
    must(["ip", "netns", "exec", ns.s, "nft", "-f", "-"],
         input="\n".join(nft) + "\n")
    procs = []
    try:
        procs.append(start_server(ns, PORT["synlost"], 1))
        procs.append(start_server(ns, PORT["synack"], 1))
        lost = ns.py(ns.c, CLIENT, SADDR, PORT["synlost"], "fail")
        # idle past the server's last SYN-ACK (1 s, 3 s) and its giving
        # up (7 s), then a RST that finds nothing
        idle = ns.py(ns.c, CLIENT, SADDR, PORT["synack"], "idle", "8.5")
        procs += [lost, idle]
        finish([lost, idle], timeout=40)
        out = lost.stdout.read()
        check("timed out" in out, "connect() did not time out: %r" % out)
        check(idle.returncode == 0, "the idle client failed")
        expect_delta(before, {
            "tcptrace_syn_retransmissions_total": 2,
            'tcptrace_handshakes_failed_total{side="client",'
            'reason="timeout"}': 1,
            "tcptrace_synack_retransmissions_total": 2,
            'tcptrace_handshakes_completed_total{side="client"}': 1,
            'tcptrace_resets_sent_total{reason="aborted"}': 1,
        }, "SYNs dropped (syn_retries 2) and ACKs dropped (synack_retries 2)")
    finally:
        kill(procs)
        run(["ip", "netns", "exec", ns.s, "nft", "delete", "table", "inet",
             "tt_met"])


def case_overflow(ns):
    before, _ = scrape()
    must([TOOL, "tune", "--netns", ns.c, "--syn-retries", "1"])
    procs = []
    try:
        procs.append(start_server(ns, PORT["overflow"], 0, backlog=1))
        # backlog 1: the accept queue holds 2; the third client's SYN and
        # its one retransmission find it full
        for _ in range(2):
            p = ns.py(ns.c, CLIENT, SADDR, PORT["overflow"], "hold")
            procs.append(p)
            check(p.stdout.readline() == "connected\n", "a client failed")
        third = ns.py(ns.c, CLIENT, SADDR, PORT["overflow"], "fail")
        procs.append(third)
        finish([third], timeout=20)
        listener = 'listener="%s:%d",netns="%d"' % (SADDR, PORT["overflow"],
                                                    ns.s_ino)
        expect_delta(before, {
            'tcptrace_handshakes_completed_total{side="client"}': 2,
            'tcptrace_handshakes_completed_total{side="server"}': 2,
            'tcptrace_accept_queue_overflows_total{%s,dropped="syn"}'
            % listener: 2,
            "tcptrace_syn_retransmissions_total": 1,
            'tcptrace_handshakes_failed_total{side="client",'
            'reason="timeout"}': 1,
        }, "accept queue full (backlog 1)")
        after, _ = scrape()
        check('tcptrace_accept_queue_overflows_total{%s,dropped="ack"}'
              % listener in after, "no dropped=\"ack\" series of %s" %
              listener)
    finally:
        kill(procs)


def case_promtool(ns):
    _, text = scrape()
    check(shutil.which("promtool"), "promtool not installed "
          "(scripts/deps.sh install)")
    r = subprocess.run(["promtool", "check", "metrics"], input=text,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    check(r.returncode == 0, "promtool: %s" % r.stdout.strip())


def case_lost(ns):
    """A tiny ring, a reader stopped during traffic."""
    unload_module()
    metrics = None
    procs = []
    try:
        # only the test's port: the scrapes are not recorded
        load_module("buf_records=16", "ports=%d" % PORT["lost"])
        metrics = Metrics(ns)
        before, _ = scrape()
        check(before.get("tcptrace_module_drops_total") == 0,
              "drops before the traffic: %r" %
              before.get("tcptrace_module_drops_total"))
        must([TOOL, "tune", "--netns", ns.c, "--syn-retries", "6"])
        metrics.proc.send_signal(signal.SIGSTOP)
        srv = start_server(ns, PORT["lost"], 6)
        cl = [ns.py(ns.c, CLIENT, SADDR, PORT["lost"], "close")
              for _ in range(6)]
        procs = cl + [srv]
        finish(procs, timeout=120)
        metrics.proc.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 10
        while True:
            after, _ = scrape()
            lost = after.get("tcptrace_records_lost_total", 0)
            drops = after.get("tcptrace_module_drops_total", -1)
            if lost and lost == drops:
                break
            check(time.monotonic() < deadline,
                  "lost records %d, module drops %d" % (lost, drops))
            time.sleep(0.3)
    finally:
        kill(procs)
        if metrics:
            metrics.proc.send_signal(signal.SIGCONT)
            metrics.stop()
        unload_module()
        load_module()


def main():
    tests = [
        ("normal connections and a server reset", case_normal),
        ("refused connections", case_refused),
        ("SYN and SYN-ACK retransmissions", case_retransmissions),
        ("accept-queue overflow, labelled by listener", case_overflow),
        ("promtool check metrics on a live scrape", case_promtool),
    ]
    print("TAP version 13")
    print("1..%d" % (len(tests) + 2))
    if os.geteuid() != 0:
        print("# SKIP: needs root")
        print("# Totals: pass:0 fail:0 xfail:0 xpass:0 skip:%d error:0"
              % (len(tests) + 2))
        return 4
    npass = nfail = 0
    ns = metrics = None

    def result(n, name, fn, *args):
        nonlocal npass, nfail
        try:
            fn(*args)
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

    try:
        check(os.access(TOOL, os.X_OK), "%s not built" % TOOL)
        check(shutil.which("curl"), "curl not installed")
        load_module()
        ns = Netns()
        metrics = Metrics(ns)
    except Failure as e:
        print("Bail out! %s" % e)
        print("# Totals: pass:0 fail:%d xfail:0 xpass:0 skip:0 error:0"
              % (len(tests) + 2))
        if ns:
            ns.close()
        return 1
    try:
        for n, (name, fn) in enumerate(tests, 1):
            result(n, name, fn, ns)

        def stop_metrics():
            rc, err = metrics.stop()
            check(rc == 0, "metrics exit status %r: %s" % (rc, err))
            check(err == "tcptracectl: serving metrics at "
                  "http://127.0.0.1:%d/metrics\n" % METRICS_PORT,
                  "metrics stderr: %r" % err)
        result(len(tests) + 1, "SIGTERM ends metrics with exit 0",
               stop_metrics)
        result(len(tests) + 2, "lost records add up to the module's drops",
               case_lost, ns)
    finally:
        if metrics and metrics.proc.poll() is None:
            metrics.stop()
        ns.close()
    print("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:0 error:0"
          % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
