#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
#
# `tcptracectl ladder` on a real connection: a scripted connection between
# two network namespaces joined by veth (fixed ports, 5 bytes one way, 3 the
# other, the client closes first) is recorded with `watch --json`, drawn
# with `ladder -r`, and compared line by line with selftests/golden/
# ladder_ip4.txt and ladder_ip6.txt.  Relative sequence numbers make the
# diagram deterministic; what varies from run to run (times, namespace
# inodes, pids, durations) is masked first.  Then the same diagram read
# from the raw records (`ladder -i`) and drawn live from the device.
#
# TCPTRACE_GOLDEN_UPDATE=1 writes the golden files instead of comparing.
# Needs root and the module (loaded by run_all.sh).  Prints TAP.

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TOOL = os.path.join(REPO, "userspace", "tcptracectl")
TMP = os.path.join(HERE, ".ladder_tmp")
GOLDEN = os.path.join(HERE, "golden")
DEVICE = "/dev/tcptrace"

CASES = {
    4: dict(caddr="10.203.1.1", saddr="10.203.1.2", sport=6304,
            cport=40304, pfx="/24"),
    6: dict(caddr="fd00:203::1", saddr="fd00:203::2", sport=6306,
            cport=40306, pfx="/64"),
}

SERVER = r"""
import socket, sys, time
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
l = socket.socket(fam, socket.SOCK_STREAM)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((sys.argv[1], int(sys.argv[2])))
l.listen(1)
print("ready", flush=True)
a, _ = l.accept()
data = b""
while len(data) < 5:
    data += a.recv(5 - len(data))
a.sendall(b"abc")
while a.recv(100):
    pass
time.sleep(0.3)
a.close()
l.close()
"""

CLIENT = r"""
import socket, sys, time
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
c = socket.socket(fam, socket.SOCK_STREAM)
c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
c.bind((sys.argv[3], int(sys.argv[4])))
c.connect((sys.argv[1], int(sys.argv[2])))
time.sleep(0.3)
c.sendall(b"hello")
got = b""
while len(got) < 3:
    got += c.recv(3 - len(got))
time.sleep(0.3)
c.shutdown(socket.SHUT_WR)
while c.recv(100):
    pass
time.sleep(0.3)
c.close()
"""

MASKS = [
    (re.compile(r"^ *\d+\.\d{6}  "), "         T  "),
    (re.compile(r"net:\[\d+\]"), "net:[NETNS]"),
    (re.compile(r"pid \d+ \("), "pid PID ("),
    (re.compile(r"\d+\.\d{3} ms"), "MS ms"),
    (re.compile(r"; \d+\.\d{6} s from"), "; S s from"),
    (re.compile(r"after \d+\.\d{2} s"), "after S s"),
]


class Failure(Exception):
    pass


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, **kw)


def mask(text):
    out = []
    for line in text.splitlines():
        for rx, rep in MASKS:
            line = rx.sub(rep, line)
        out.append(line)
    return "\n".join(out) + "\n"


def device_open_by(pid):
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == DEVICE:
                    return True
            except OSError:
                pass
    except OSError:
        pass
    return False


class Netns:
    def __init__(self, family, c):
        tag = "%d_%d" % (os.getpid(), family)
        self.c, self.s = "tt_lad_c_" + tag, "tt_lad_s_" + tag
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
            ["ip", "-n", self.c, "addr", "add", c["caddr"] + c["pfx"],
             "dev", "va"] + nodad,
            ["ip", "-n", self.s, "addr", "add", c["saddr"] + c["pfx"],
             "dev", "vb"] + nodad,
        ]
        for cmd in cmds:
            r = run(cmd)
            if r.returncode:
                self.close()
                raise Failure("%s: %s" % (" ".join(cmd), r.stderr.strip()))

    def close(self):
        for ns in (self.c, self.s):
            run(["ip", "netns", "del", ns])


def start_reader(args):
    p = subprocess.Popen([TOOL] + args, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while not device_open_by(p.pid):
        if p.poll() is not None:
            raise Failure("%s exited early: %s" % (args[0], p.stderr.read()))
        if time.monotonic() > deadline:
            raise Failure("%s never opened %s" % (args[0], DEVICE))
        time.sleep(0.05)
    return p


def stop_reader(p):
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=20)
    if p.returncode != 0 or err:
        raise Failure("reader: exit %d, stderr %r" % (p.returncode, err))
    return out


def scripted(family, reader_args):
    """Runs the scripted connection under a reader; returns its output."""
    c = CASES[family]
    ns = Netns(family, c)
    reader = server = None
    try:
        reader = start_reader(reader_args + ["-p", str(c["sport"])])
        server = subprocess.Popen(["ip", "netns", "exec", ns.s,
                                   sys.executable, "-c", SERVER, c["saddr"],
                                   str(c["sport"])],
                                  stdout=subprocess.PIPE, text=True)
        if server.stdout.readline() != "ready\n":
            raise Failure("server did not start")
        client = run(["ip", "netns", "exec", ns.c, sys.executable, "-c",
                      CLIENT, c["saddr"], str(c["sport"]), c["caddr"],
                      str(c["cport"])], timeout=60)
        if client.returncode:
            raise Failure("client: %s" % client.stderr)
        if server.wait(timeout=30):
            raise Failure("server failed")
        return stop_reader(reader)
    finally:
        for p in (server, reader):
            if p and p.poll() is None:
                p.kill()
                p.wait()
        ns.close()


def compare(name, got, family):
    path = os.path.join(GOLDEN, "ladder_ip%d.txt" % family)
    if os.environ.get("TCPTRACE_GOLDEN_UPDATE"):
        with open(path, "w") as f:
            f.write(got)
        return
    with open(path) as f:
        want = f.read()
    if got != want:
        g, w = got.splitlines(), want.splitlines()
        for i in range(max(len(g), len(w))):
            gl = g[i] if i < len(g) else "<none>"
            wl = w[i] if i < len(w) else "<none>"
            if gl != wl:
                raise Failure("%s: line %d differs from %s:\n#  got:  %r\n"
                              "#  want: %r\n# whole output:\n%s" %
                              (name, i + 1, path, gl, wl,
                               "".join("#  " + ln + "\n" for ln in g)))


def ladder_golden(family):
    jsonl = scripted(family, ["watch", "--json"])
    path = os.path.join(TMP, "ip%d.jsonl" % family)
    with open(path, "w") as f:
        f.write(jsonl)
    r = run([TOOL, "ladder", "-r", path, "--no-color", "-w", "100"])
    if r.returncode or r.stderr:
        raise Failure("ladder -r: exit %d: %s" % (r.returncode, r.stderr))
    compare("ladder -r", mask(r.stdout), family)


def ladder_live(family):
    # drawn from the device as it happens; the client's TIME_WAIT lasts
    # 60 s, so the connection is drawn at SIGINT, like at the end of a file
    out = scripted(family, ["ladder", "--no-color", "-w", "100"])
    compare("ladder live", mask(out), family)


def main():
    if os.geteuid() != 0:
        print("1..0 # SKIP needs root")
        return 0
    tests = [("ladder_golden_ip4", lambda: ladder_golden(4)),
             ("ladder_golden_ip6", lambda: ladder_golden(6)),
             ("ladder_live_ip4", lambda: ladder_live(4)),
             ("ladder_live_ip6", lambda: ladder_live(6))]
    shutil.rmtree(TMP, ignore_errors=True)
    os.makedirs(TMP)
    os.makedirs(GOLDEN, exist_ok=True)
    print("TAP version 13")
    print("1..%d" % len(tests))
    failed = 0
    try:
        for i, (name, fn) in enumerate(tests, 1):
            try:
                fn()
                print("ok %d %s" % (i, name))
            except Exception as e:
                failed += 1
                print("# %s" % e if isinstance(e, Failure) else
                      "".join("# " + ln + "\n" for ln in
                              traceback.format_exc().splitlines()))
                print("not ok %d %s" % (i, name))
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    print("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:0 error:0"
          % (len(tests) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
