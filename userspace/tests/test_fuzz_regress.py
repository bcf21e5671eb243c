# SPDX-License-Identifier: GPL-2.0
"""Replays the inputs the fuzzers found (userspace/fuzz/regress/) through
the tool as a user would run it: each file as raw records and as JSON
Lines, to watch (text, JSON, summary) and ladder.  Each run must end with
exit status 0 or 1 (1 with an error message), never by a signal, a usage
error or a sanitizer report (when TOOL is built with -fsanitize).

Run from test_tcptracectl.py: run(base, tmp) gets that module for run()
and check().
"""
import os
import subprocess

REGRESS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                       "fuzz", "regress")
COMMANDS = (
    ["watch", "-i"],
    ["watch", "--json", "-i"],
    ["watch", "--summary", "-i"],
    ["watch", "--summary", "--json", "-i"],
    ["ladder", "--no-color", "-i"],
    ["watch", "-r"],
    ["watch", "--json", "-r"],
    ["watch", "--summary", "--json", "-r"],
    ["ladder", "--flush", "--color", "-a", "-w", "64", "-r"],
)
SANITIZER = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
             "UndefinedBehaviorSanitizer")


def inputs():
    found = []
    for root, _, files in os.walk(REGRESS):
        for name in files:
            if not name.startswith("README"):
                found.append(os.path.join(root, name))
    return sorted(found)


def run(base, tmp):
    files = inputs()
    base.check("fuzz regress: inputs in userspace/fuzz/regress/",
               len(files) > 0, REGRESS)
    for path in files:
        name = os.path.relpath(path, REGRESS)
        bad = []
        for cmd in COMMANDS:
            try:
                p = base.run(cmd + [path], timeout=60)
            except subprocess.TimeoutExpired:
                bad.append("%s: no exit within 60 s" % " ".join(cmd))
                continue
            err = p.stderr.decode(errors="replace")
            if p.returncode < 0:
                bad.append("%s: killed by signal %d" % (" ".join(cmd),
                                                         -p.returncode))
            elif p.returncode not in (0, 1):
                bad.append("%s: exit %d" % (" ".join(cmd), p.returncode))
            elif p.returncode == 1 and not err.startswith("tcptracectl: "):
                bad.append("%s: exit 1 without an error message"
                           % " ".join(cmd))
            if any(s in err for s in SANITIZER):
                summary = [ln for ln in err.splitlines()
                           if ln.startswith("SUMMARY:") or
                           "runtime error:" in ln]
                bad.append("%s: %s" % (" ".join(cmd),
                                       (summary or [err[-300:]])[0]))
        base.check("fuzz regress: %s read by watch and ladder (-i, -r)"
                   % name, not bad, "; ".join(bad))
