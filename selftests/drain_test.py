#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""`tcptracectl watch --json` keeps the module's rings empty while its own
output is held up (as root, in the guest).

The module is reloaded with small rings (buf_records=512 per CPU) and
ports= the test's port, so that only the test's connections are recorded.
A watcher is started with its standard output on a pipe that the test does
not read; CONNS connections are made on loopback in a namespace of the
test's own (connect, 1 byte each way, the client closes first).  Their
JSON lines are far more than the pipe and the tool's output buffer hold,
so the tool's formatting blocks in write() long before the traffic ends.
The device must still be drained, by the tool's reading thread:

  - while the output is still blocked: nothing queued in the module
    (stats' queued 0) and no drop;
  - then the pipe is read to its end after SIGINT: every record the module
    produced (stats' events, per type) is there exactly once, in order of
    time per CPU, with no LOST record, and each connection's segments are
    all there: CONNS SYNs, SYN-ACKs, client FINs and server FINs.

With a reader that formats before it reads again, the rings (1024 records
in all) overflow within the first 2000 or so records and the module
counts drops.  Needs root and the module (TCPTRACE_KO); leaves it loaded
with default parameters.  Prints TAP; exits non-zero when a case failed.
"""
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TOOL = os.path.join(REPO, "userspace", "tcptracectl")
KO = os.environ.get("TCPTRACE_KO") or os.path.join(REPO, "module",
                                                   "tcptrace.ko")
PORT = 7201
CONNS = 400
# what the output may hold before write() blocks: the tool's stdio buffer
# (256 KiB, see watch.c) and a pipe (64 KiB)
HELD = (256 + 64) * 1024

CLIENT = r"""
import socket, sys, threading
port, n = int(sys.argv[1]), int(sys.argv[2])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", port))
ls.listen(128)
def serve():
    for _ in range(n):
        s, _ = ls.accept()
        s.recv(1)
        s.sendall(b"y")
        s.recv(1)
        s.close()
threading.Thread(target=serve, daemon=True).start()
for _ in range(n):
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(b"x")
    c.recv(1)
    c.close()
print("done", flush=True)
"""

results = []


def ok(name, cond, detail=""):
    results.append(cond)
    print("%s %d - %s" % ("ok" if cond else "not ok", len(results), name))
    if not cond and detail:
        for line in str(detail).splitlines():
            print("#   " + line)


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def stats():
    out = run([TOOL, "stats", "--json"], check=True).stdout
    return json.loads(out)


def reload(*params):
    deadline = time.monotonic() + 10
    while os.path.isdir("/sys/module/tcptrace"):
        if not run(["rmmod", "tcptrace"]).returncode:
            break
        if time.monotonic() > deadline:
            raise RuntimeError("rmmod tcptrace keeps failing")
        time.sleep(0.2)
    subprocess.run(["insmod", KO] + list(params), check=True)


def main():
    print("TAP version 13")
    print("1..4")
    ns = "tt_drain_%d" % os.getpid()
    watch = None
    try:
        reload("buf_records=512", "ports=%d" % PORT)
        subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"],
                       check=True)
        before = stats()
        watch = subprocess.Popen([TOOL, "watch", "--json"],
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        time.sleep(0.5)
        cl = run(["ip", "netns", "exec", ns, sys.executable, "-c", CLIENT,
                  str(PORT), str(CONNS)], timeout=240)
        ok("%d connections made" % CONNS,
           cl.returncode == 0 and "done" in cl.stdout, cl.stderr)
        # every record is made by now, but for the TIME_WAITs' ends (60 s)
        time.sleep(1.0)
        mid = stats()
        held = {k: mid[k] - before[k] for k in ("events", "drops")}
        ok("output blocked: nothing queued in the module, no drop",
           watch.poll() is None and mid["queued"] == 0 and
           held["drops"] == 0,
           "watcher running %s, queued %d, %s" %
           (watch.poll() is None, mid["queued"], held))

        watch.send_signal(signal.SIGINT)
        out, err = watch.communicate(timeout=120)
        after = stats()
        recs = [json.loads(line) for line in out.splitlines()]
        types = {}
        for r in recs:
            types[r["type"]] = types.get(r["type"], 0) + 1
        produced = {t: after["per_type"][t] - before["per_type"][t]
                    for t in after["per_type"]
                    if after["per_type"][t] != before["per_type"][t]}
        ok("every record produced read once, none lost, output held up",
           watch.returncode == 0 and not err and
           after["drops"] == before["drops"] and types == produced and
           len(out) > 2 * HELD,
           "exit %s, stderr %r, drops %d, read %s, produced %s, %d bytes" %
           (watch.returncode, err[:200], after["drops"] - before["drops"],
            types, produced, len(out)))

        pk = [r for r in recs if r["type"] == "packet"]
        syn = sum(1 for r in pk if r["flags"] == "S")
        synack = sum(1 for r in pk if r["flags"] == "S.")
        cfin = sum(1 for r in pk if "F" in r["flags"] and
                   r["dport"] == PORT)
        sfin = sum(1 for r in pk if "F" in r["flags"] and
                   r["sport"] == PORT)
        order = all(a["ts_ns"] <= b["ts_ns"] for a, b in zip(recs, recs[1:]))
        ok("%d SYNs, SYN-ACKs, client and server FINs, in time order" % CONNS,
           (syn, synack, cfin, sfin) == (CONNS,) * 4 and order,
           "SYN %d, SYN-ACK %d, FIN %d/%d, in order %s" %
           (syn, synack, cfin, sfin, order))
    except Exception as e:  # noqa: BLE001 - reported as a failure
        ok("test ran", False, repr(e))
    finally:
        if watch and watch.poll() is None:
            watch.kill()
            watch.wait()
        run(["ip", "netns", "del", ns])
        try:
            reload()
        except Exception as e:  # noqa: BLE001
            ok("module reloaded with defaults", False, repr(e))
    failed = results.count(False)
    print("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:0 error:0"
          % (len(results) - failed, failed))
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
