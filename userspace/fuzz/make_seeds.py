#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Writes the seed corpora of the fuzzers.

Usage: make_seeds.py TCPTRACECTL OUTDIR

OUTDIR/records/ gets files of raw records: the host tests' synthetic
records (tests/test_tcptracectl.py's CASES and its malformed inputs,
tests/test_views.py's connections) and the real capture in
seeds/demo-capture.jsonl (written by 'watch --json' in make demo's guest)
turned back into records.  OUTDIR/json/ gets what 'TCPTRACECTL watch
--json' and 'watch --summary --json' print for each of them, the real
capture, and a few lines the reader must reject.  Files are cut to the
fuzzers' -max_len (4096 and 8192 bytes) on record and line boundaries.
"""
import hashlib
import json
import os
import socket
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(HERE, "..", "tests")
MAX_RECORDS = 4096
MAX_JSON = 8192

FLAG_LETTERS = "FSRP.UEW"
STATES = ["", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1",
          "FIN_WAIT2", "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK",
          "LISTEN", "CLOSING", "NEW_SYN_RECV"]
REASONS = ["", "accept_queue_full_syn_dropped",
           "accept_queue_full_ack_dropped", "syn_queue_full"]
ENDS = ["", "expired", "killed"]


def flags(text):
    return 0 if text == "none" else sum(1 << FLAG_LETTERS.index(c)
                                        for c in text)


def from_json(b, o):
    """The raw record a line of 'watch --json' was printed from."""
    t = o["type"]
    rtype = {"packet": b.T_PACKET, "state": b.T_STATE,
             "synack_retransmit": b.T_SYNACK_RETRANSMIT,
             "retransmit": b.T_RETRANSMIT, "reset_sent": b.T_RESET_SENT,
             "reset_received": b.T_RESET_RECEIVED,
             "timewait": b.T_TIMEWAIT, "destroy": b.T_DESTROY,
             "lost": b.T_LOST, "timewait_end": b.T_TIMEWAIT_END,
             "listen_overflow": b.T_LISTEN_OVERFLOW}[t]
    s = STATES.index
    if t == "packet":
        body = b.PACKET.pack(o["seq"], o["ack"], o["win"], flags(o["flags"]),
                             20, o["len"])
    elif t == "state":
        body = b.STATE.pack(s(o["old_state"]), s(o["new_state"]), 0, 0,
                            o["snd_nxt"], o["rcv_nxt"], o["snd_una"], 0, 0, 0)
    elif t == "synack_retransmit":
        body = b.SYNACK.pack(o["snt_isn"], o["rcv_isn"], o["num_retrans"])
    elif t == "retransmit":
        body = b.STATE.pack(s(o["state"]), 0, flags(o["flags"]), 0, 0, 0, 0,
                            o["seq"], o["end_seq"], 0)
    elif t == "timewait":
        body = b.STATE.pack(s(o["state"]), s(o["tw_substate"]), 0, 0,
                            o["snd_nxt"], o["rcv_nxt"], 0, 0, 0,
                            o["timeo_ms"])
    elif t == "timewait_end":
        body = b.STATE.pack(6, s(o["tw_substate"]), ENDS.index(o["end"]), 0,
                            o["snd_nxt"], o["rcv_nxt"], 0, 0, 0, 0)
    elif t == "listen_overflow":
        body = b.LISTEN.pack(REASONS.index(o["reason"]), o["syn_queue"],
                             o["accept_queue"], o["backlog"])
    elif t == "lost":
        body = b.LOST.pack(o["count"])
    else:  # reset_sent, reset_received, destroy
        body = b.STATE.pack(s(o["state"]), 0, 0, 0, o["snd_nxt"],
                            o["rcv_nxt"], 0, 0, 0, 0)
    family = {4: socket.AF_INET, 6: socket.AF_INET6}.get(o["family"], 0)
    src = (o.get("saddr", "0.0.0.0"), o.get("sport", 0))
    dst = (o.get("daddr", "0.0.0.0"), o.get("dport", 0))
    direction = {"in": b.DIR_IN, "out": b.DIR_OUT}.get(o.get("dir"), 0)
    return b.record(rtype, body, o["ts_ns"], src, dst, netns=o["netns"],
                    direction=direction, cpu=o["cpu"], pid=o["pid"],
                    comm=o.get("comm", "").encode()[:15],
                    sock_id=o.get("sock_id", 0), family=family)


def chunks(items, limit):
    """items (bytes) joined into pieces of at most limit bytes."""
    out, cur = [], b""
    for it in items:
        if cur and len(cur) + len(it) > limit:
            out.append(cur)
            cur = b""
        cur += it[:limit]
    if cur:
        out.append(cur)
    return out


def raw_seeds(b, v):
    """(name, [records]) of the host tests."""
    seeds = [("cases", [r for r, _ in b.CASES])]
    seeds += [("case%02d" % i, [r]) for i, (r, _) in enumerate(b.CASES)]
    good = b.CASES[0][0]
    short = bytearray(good)
    short[0:2] = (100).to_bytes(2, "little")
    v0 = bytearray(good)
    v0[2] = 0
    seeds += [("short", [good, bytes(short)]), ("version0", [bytes(v0)]),
              ("truncated", [good, good[:60]]),
              ("unknown-long", [b.record(77, bytes(40), 1, b.CLI, b.SRV,
                                         length=1024), good])]
    seeds += [("connection", [v.listen_record()] + v.connection()),
              ("connection6", v.connection(cli=("2001:db8::1", 50000),
                                           srv=("2001:db8::2", 443))),
              ("loopback", v.connection(netns=(v.NSC, v.NSC))),
              ("refused", v.refused(0, 9))]
    for kind in ("synack_ack_not_isn_plus_1", "fin_ack_not_seq_plus_1",
                 "final_ack_seq_not_fin_plus_1", "seq_unexpected"):
        seeds.append(("violation-" + kind, v.with_violation(kind)[0]))
    lost = v.connection()
    lost.insert(12, b.record(b.T_LOST, b.LOST.pack(3), v.us(1001), cpu=1))
    seeds.append(("lost", lost))
    two = v.connection(t=0)[:14] + v.connection(
        t=100, cli=("10.7.0.1", 38100), isn_c=77, isn_s=88)[:14]
    two.sort(key=lambda r: int.from_bytes(r[16:24], "little"))
    seeds.append(("two", two))
    return seeds


def tool_json(tool, data, *args):
    p = subprocess.run([tool, "watch", "--json", "-i", "-"] + list(args),
                       input=data, capture_output=True, timeout=60)
    return p.stdout


def write(dirname, name, data):
    # the name of its content, as libFuzzer names the units it keeps
    path = os.path.join(dirname, "%s-%s" % (
        name, hashlib.sha1(data).hexdigest()[:12]))
    with open(path, "wb") as f:
        f.write(data)


def main():
    if len(sys.argv) != 3:
        sys.stderr.write("usage: make_seeds.py TCPTRACECTL OUTDIR\n")
        return 2
    tool, outdir = os.path.abspath(sys.argv[1]), sys.argv[2]
    sys.argv = [sys.argv[0], tool]  # what the test modules read
    sys.path.insert(0, TESTS)
    import test_tcptracectl as b
    import test_views as v
    v.B = b

    rec_dir, json_dir = (os.path.join(outdir, d) for d in ("records", "json"))
    for d in (rec_dir, json_dir):
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))

    seeds = raw_seeds(b, v)
    with open(os.path.join(HERE, "seeds", "demo-capture.jsonl"), "rb") as f:
        capture = f.read().splitlines(keepends=True)
    seeds.append(("capture", [from_json(b, json.loads(line))
                              for line in capture]))

    nrec = njson = 0
    for name, recs in seeds:
        pieces = chunks(recs, MAX_RECORDS)
        for i, data in enumerate(pieces):
            part = name if len(pieces) == 1 else "%s.%d" % (name, i)
            write(rec_dir, part, data)
            nrec += 1
            for kind, args in (("", ()), ("summary-", ("--summary",))):
                out = tool_json(tool, data, *args)
                if not out:
                    continue
                lines = out.splitlines(keepends=True)
                for j, js in enumerate(chunks(lines, MAX_JSON)):
                    write(json_dir, "%s%s.%d" % (kind, part, j), js)
                    njson += 1
    for i, js in enumerate(chunks(capture, MAX_JSON)):
        write(json_dir, "capture.%d" % i, js)
        njson += 1
    first = capture[0].decode()
    for name, text in (
            ("not-json", "not json\n"),
            ("missing-key", '{"type":"summary"}\n\n{"ts_ns":1,"type":"packet"}\n'),
            ("spaced", first.replace('":', '": ')),
            ("crlf", first.rstrip("\n") + "\r\n"),
            ("big-sock-id", first.replace('"sock_id":', '"sock_id":18446744073709551615,"x":')),
    ):
        write(json_dir, name, text.encode())
        njson += 1
    print("seeds: %d raw record files in %s, %d JSON Lines files in %s" %
          (nrec, rec_dir, njson, json_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
