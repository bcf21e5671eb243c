#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
#
# Who may read what from /dev/tcptrace:
#  - a reader that opened the device inside a network namespace other than
#    the initial one gets only that namespace's records, while connections
#    run in two namespaces at once;
#  - a reader in the initial namespace gets both, and `watch -n` picks one;
#  - without CAP_NET_ADMIN, open() fails with EPERM and tcptracectl says why.
#
# Needs root and the module (loaded by run_all.sh).  Prints TAP.

import errno
import json
import os
import signal
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(os.path.dirname(HERE), "userspace", "tcptracectl")
DEVICE = "/dev/tcptrace"
PORT = 6404

# N connections on loopback to PORT, each closed by the client
TRAFFIC = r"""
import socket, sys
n = int(sys.argv[1])
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", %d))
l.listen(16)
for _ in range(n):
    c = socket.create_connection(("127.0.0.1", %d))
    a, _ = l.accept()
    c.close()
    a.close()
l.close()
""" % (PORT, PORT)


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, **kw)


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


class Two:
    """Two network namespaces with lo up."""

    def __init__(self):
        self.names = ["tt_iso_a_%d" % os.getpid(), "tt_iso_b_%d" % os.getpid()]
        for ns in self.names:
            r = run(["ip", "netns", "add", ns])
            check(r.returncode == 0, "ip netns add: " + r.stderr)
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        self.ino = [os.stat("/run/netns/" + ns).st_ino for ns in self.names]

    def close(self):
        for ns in self.names:
            run(["ip", "netns", "del", ns])


def traffic(two, n):
    procs = [subprocess.Popen(["ip", "netns", "exec", ns, sys.executable,
                               "-c", TRAFFIC, str(n)]) for ns in two.names]
    for p in procs:
        check(p.wait(timeout=120) == 0, "traffic failed")


def read_with(prefix, extra, two, n):
    """Runs watch --json (under prefix, e.g. ip netns exec) during traffic
    in both namespaces; returns the records."""
    w = subprocess.Popen(prefix + [TOOL, "watch", "--json", "-p", str(PORT)]
                         + extra, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while not device_open_by(w.pid):
            if w.poll() is not None:
                raise Failure("watch exited: %s" % w.stderr.read())
            check(time.monotonic() < deadline, "watch never opened the device")
            time.sleep(0.05)
        traffic(two, n)
        time.sleep(0.5)
        w.send_signal(signal.SIGINT)
        out, err = w.communicate(timeout=20)
        check(w.returncode == 0, "watch: exit %d: %s" % (w.returncode, err))
        return [json.loads(line) for line in out.splitlines()]
    finally:
        if w.poll() is None:
            w.kill()
            w.wait()


def per_ns(recs):
    counts = {}
    for r in recs:
        if r["type"] != "lost":
            counts[r["netns"]] = counts.get(r["netns"], 0) + 1
    return counts


def test_container_reader():
    two = Two()
    try:
        recs = read_with(["ip", "netns", "exec", two.names[0]], [], two, 5)
        counts = per_ns(recs)
        check(set(counts) == {two.ino[0]},
              "a reader in netns %d saw records of %r" % (two.ino[0],
                                                          counts))
        # 5 connections: at least their SYNs, SYN-ACKs and state changes
        check(counts[two.ino[0]] >= 5 * 10,
              "%d records of its own namespace" % counts[two.ino[0]])
        syns = [r for r in recs if r["type"] == "packet" and
                r["flags"] == "S"]
        check(len(syns) == 5, "%d SYNs, not 5" % len(syns))
    finally:
        two.close()


def test_host_reader():
    two = Two()
    try:
        recs = read_with([], ["-n", str(two.ino[0]), "-n", str(two.ino[1])],
                         two, 5)
        counts = per_ns(recs)
        check(set(counts) == set(two.ino),
              "the initial namespace's reader saw %r, not both of %r" %
              (counts, two.ino))
        check(min(counts.values()) >= 5 * 10,
              "the same traffic gave %r" % counts)
        recs = read_with([], ["-n", str(two.ino[1])], two, 3)
        check(set(per_ns(recs)) == {two.ino[1]}, "watch -n %d: %r" %
              (two.ino[1], per_ns(recs)))
    finally:
        two.close()


def drop_net_admin(cmd):
    # a root process whose bounding set lacks CAP_NET_ADMIN loses it at exec
    return ["setpriv", "--bounding-set", "-net_admin", "--inh-caps",
            "-net_admin"] + cmd


def test_no_cap_net_admin():
    probe = ("import errno, os\n"
             "try:\n    os.open('%s', os.O_RDONLY)\n    print('opened')\n"
             "except OSError as e:\n    print(errno.errorcode[e.errno])\n"
             % DEVICE)
    r = run(drop_net_admin([sys.executable, "-c", probe]))
    check(r.returncode == 0 and r.stdout.strip() == "EPERM",
          "open() without CAP_NET_ADMIN: %r %r" % (r.stdout, r.stderr))
    r = run([sys.executable, "-c", probe])
    check(r.stdout.strip() == "opened", "open() as root: %r" % r.stdout)
    r = run(drop_net_admin([TOOL, "watch", "-c", "1"]))
    check(r.returncode == 1 and not r.stdout and r.stderr ==
          "tcptracectl: permission denied opening %s: run as root (needs "
          "CAP_NET_ADMIN)\n" % DEVICE, "tcptracectl without CAP_NET_ADMIN: "
          "exit %d, %r" % (r.returncode, r.stderr))
    r = run(drop_net_admin([TOOL, "stats"]))
    check(r.returncode == 1 and "permission denied" in r.stderr,
          "stats without CAP_NET_ADMIN: %r" % r.stderr)


def main():
    if os.geteuid() != 0:
        print("1..0 # SKIP needs root")
        return 4
    tests = [
        ("a reader in a container's netns sees only its records",
         test_container_reader),
        ("a reader in the initial netns sees both; -n picks one",
         test_host_reader),
        ("no CAP_NET_ADMIN: EPERM and the tool's message",
         test_no_cap_net_admin),
    ]
    print("TAP version 13")
    print("1..%d" % len(tests))
    failed = 0
    for i, (name, fn) in enumerate(tests, 1):
        try:
            fn()
            print("ok %d %s" % (i, name))
        except Exception as e:
            failed += 1
            if not isinstance(e, Failure):
                for line in traceback.format_exc().splitlines():
                    print("# " + line)
            print("# %s" % e)
            print("not ok %d %s" % (i, name))
        sys.stdout.flush()
    print("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:0 error:0"
          % (len(tests) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
