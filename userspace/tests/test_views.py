# SPDX-License-Identifier: GPL-2.0
"""Host tests of the connection views: ladder, watch --summary, protocol
checks, process attribution, and reading back JSON Lines (-r).

Run from test_tcptracectl.py: run(base, tmp) gets that module for its
record packing and check().
"""
import json
import os
import select
import subprocess
import threading
import time

B = None  # the base module
NSC, NSS = 4026532196, 4026532249
CLI = ("10.7.0.1", 38028)
SRV = ("10.7.0.2", 8080)
ISN_C, ISN_S = 4123646274, 1842616573


def us(n):
    return 5_000_000_000 + n * 1000


def connection(t=0, cli=CLI, srv=SRV, isn_c=ISN_C, isn_s=ISN_S, sent_c=14,
               sent_s=22, cpid=142, spid=130, netns=(NSC, NSS)):
    """A connection as the module records it between two namespaces: the
    client sends sent_c bytes, the server sent_s, the client closes first;
    times in microseconds from t.  Returns the raw records."""
    b = B
    nc, ns = netns
    C = dict(pid=cpid, comm=b"python3")
    S = dict(pid=spid, comm=b"python3")
    cid, sid = 11, 22
    fc, fs = isn_c + 1 + sent_c, isn_s + 1 + sent_s
    r = []

    def both(tt, src, dst, fl, seq, ack, sender_ns, recv_ns, **kw):
        r.append(b.pkt(us(tt), src, dst, b.DIR_OUT, fl, seq, ack,
                       netns=sender_ns, **kw))
        r.append(b.pkt(us(tt + 5), src, dst, b.DIR_IN, fl, seq, ack,
                       netns=recv_ns))

    r.append(b.st(b.T_STATE, us(t), (cli[0], 0), srv, old=b.CLOSE,
                  new=b.SYN_SENT, netns=nc, sock_id=cid, **C))
    both(t + 10, cli, srv, b.SYN, isn_c, 0, nc, ns, sock_id=cid, **C)
    both(t + 100, srv, cli, b.SYN | b.ACK, isn_s, isn_c + 1, ns, nc)
    r.append(b.st(b.T_STATE, us(t + 120), cli, srv, old=b.SYN_SENT,
                  new=b.ESTABLISHED, netns=nc, sock_id=cid, **C))
    both(t + 130, cli, srv, b.ACK, isn_c + 1, isn_s + 1, nc, ns,
         sock_id=cid, **C)
    r.append(b.st(b.T_STATE, us(t + 140), (srv[0], srv[1]), ("0.0.0.0", 0),
                  old=TCP_LISTEN, new=b.SYN_RECV, netns=ns, sock_id=sid))
    r.append(b.st(b.T_STATE, us(t + 150), srv, cli, old=b.SYN_RECV,
                  new=b.ESTABLISHED, netns=ns, sock_id=sid))
    r.append(b.st(b.T_STATE, us(t + 1000), cli, srv, old=b.ESTABLISHED,
                  new=b.FIN_WAIT1, netns=nc, sock_id=cid, **C))
    both(t + 1010, cli, srv, b.FIN | b.ACK, fc, isn_s + 1 + sent_s, nc, ns,
         sock_id=cid, **C)
    r.append(b.st(b.T_STATE, us(t + 1020), srv, cli, old=b.ESTABLISHED,
                  new=b.CLOSE_WAIT, netns=ns, sock_id=sid))
    both(t + 1100, srv, cli, b.ACK, fs, fc + 1, ns, nc, sock_id=sid)
    r.append(b.st(b.T_STATE, us(t + 1110), cli, srv, old=b.FIN_WAIT1,
                  new=b.FIN_WAIT2, netns=nc, sock_id=cid))
    r.append(b.st(b.T_TIMEWAIT, us(t + 1111), cli, srv, old=b.FIN_WAIT2,
                  new=b.FIN_WAIT2, timeo_ms=60000, netns=nc, sock_id=cid))
    r.append(b.st(b.T_STATE, us(t + 1112), cli, srv, old=b.FIN_WAIT2,
                  new=b.CLOSE, netns=nc, sock_id=cid))
    r.append(b.st(b.T_DESTROY, us(t + 1113), cli, srv, old=b.CLOSE,
                  netns=nc, sock_id=cid))
    r.append(b.st(b.T_STATE, us(t + 2000), srv, cli, old=b.CLOSE_WAIT,
                  new=b.LAST_ACK, netns=ns, sock_id=sid, **S))
    both(t + 2010, srv, cli, b.FIN | b.ACK, fs, fc + 1, ns, nc,
         sock_id=sid, **S)
    both(t + 2100, cli, srv, b.ACK, fc + 1, fs + 1, nc, ns)
    r.append(b.st(b.T_STATE, us(t + 2110), srv, cli, old=b.LAST_ACK,
                  new=b.CLOSE, netns=ns, sock_id=sid, **S))
    r.append(b.st(b.T_TIMEWAIT_END, us(t + 60_002_015), cli, srv,
                  old=b.TIME_WAIT, new=b.TIME_WAIT, flags=1, netns=nc,
                  sock_id=33))
    return r


TCP_LISTEN = 10  # the base module uses LISTEN for a struct


def listen_record(t=0, port=8080, pid=130):
    return B.st(B.T_STATE, us(t), (SRV[0], port), ("0.0.0.0", 0),
                old=B.CLOSE, new=TCP_LISTEN, netns=NSS, sock_id=44, pid=pid,
                comm=b"python3")


GOLDEN = """\
      TIME  CLIENT       |                                                |  SERVER
  0.000000  SYN_SENT     |--- SYN seq=0 --------------------------------->|
  0.000090  ESTABLISHED  |<-- SYN-ACK seq=0 ack=1 ------------------------|  (SYN_RECV)
  0.000120               |--- ACK seq=1 ack=1 --------------------------->|  ESTABLISHED
  0.001000  FIN_WAIT1    |--- FIN-ACK seq=15 ack=23 --------------------->|  CLOSE_WAIT
  0.001090  FIN_WAIT2    |<-- ACK seq=23 ack=16 --------------------------|
  0.001101               |  client: now a timewait socket (60 s at most)  |
  0.002000  (TIME_WAIT)  |<-- FIN-ACK seq=23 ack=16 ----------------------|  LAST_ACK
  0.002090               |--- ACK seq=16 ack=24 ------------------------->|  CLOSED
 60.002005  CLOSED       |                                                |
                         |   ^ TIME_WAIT ended after 60.00 s              |
  outcome closed, closed first by client; 60.002005 s from its first record to its last
  client 10.7.0.1:38028 net:[4026532196] pid 142 (python3)
    handshake 0.120 ms, FIN_WAIT2 0.905 ms, CLOSE_WAIT -, TIME_WAIT 60000.000 ms, sent 14 bytes
  server 10.7.0.2:8080 net:[4026532249] pid 130 (python3)
    handshake 0.135 ms, FIN_WAIT2 -, CLOSE_WAIT 0.980 ms, TIME_WAIT -, sent 22 bytes
  retransmitted SYN 0, SYN-ACK 0; violations: none
"""


def tool(args, data=None):
    p = B.run(args, data=data)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def summaries(path, *extra):
    rc, out, err = tool(["watch", "--summary", "--json", "-i", path] +
                        list(extra))
    return rc, [json.loads(line) for line in out.splitlines()], err


def test_ladder_golden(tmp):
    path = B.write_input(tmp, "conn.bin",
                         listen_record() + b"".join(connection()))
    rc, out, err = tool(["ladder", "-i", path, "--no-color", "-w", "90"])
    lines, want = out.splitlines(), GOLDEN.splitlines()
    bad = [(g, w) for g, w in zip(lines, want) if g != w]
    B.check("ladder: exit 0, nothing on stderr", rc == 0 and not err, err)
    B.check("ladder: golden output, line count", len(lines) == len(want),
            "%d != %d\n%s" % (len(lines), len(want), out))
    B.check("ladder: golden output, lines exact", not bad,
            "\n  got:  %r\n  want: %r" % bad[0] if bad else "")
    # absolute numbers with -a
    rc, out, _ = tool(["ladder", "-i", path, "--no-color", "-a"])
    B.check("ladder -a: absolute seq/ack",
            "SYN-ACK seq=%d ack=%d" % (ISN_S, ISN_C + 1) in out and
            "SYN seq=%d " % ISN_C in out, out)
    # colour only when asked (not a terminal here)
    rc, out, _ = tool(["ladder", "-i", path, "--color"])
    B.check("ladder --color: escapes", "\033[" in out)
    rc, out, _ = tool(["ladder", "-i", path])
    B.check("ladder: no colour when piped", "\033[" not in out)
    # the width follows -w: every arrow row is as wide
    for w in (70, 140):
        rc, out, _ = tool(["ladder", "-i", path, "--no-color", "-w",
                           str(w)])
        rows = [ln[:ln.rindex("|") + 1] for ln in out.splitlines()
                if "--" in ln]
        B.check("ladder -w %d: arrows fill the width" % w,
                len(rows) == 7 and all(len(ln) == w - 15 for ln in rows),
                repr([len(ln) for ln in rows]))
    # the same from the JSON Lines of watch --json
    rc, js, _ = tool(["watch", "--json", "-i", path])
    jpath = os.path.join(tmp, "conn.jsonl")
    with open(jpath, "w") as f:
        f.write(js)
    rc, out, err = tool(["ladder", "-r", jpath, "--no-color", "-w", "90"])
    B.check("ladder -r JSONL: same diagram", rc == 0 and out == GOLDEN,
            err + out)
    rc, out2, err = tool(["watch", "--json", "-r", jpath])
    B.check("watch -r: JSON Lines read back to the same records",
            rc == 0 and out2 == js, err)
    rc, out, err = tool(["ladder", "-r", "-", "--no-color", "-w", "90"],
                        data=js.encode())
    B.check("ladder -r -: stdin", rc == 0 and out == GOLDEN, err)


def test_summary(tmp):
    path = B.write_input(tmp, "sum.bin",
                         listen_record() + b"".join(connection()))
    rc, objs, err = summaries(path)
    want = {
        "type": "summary", "family": 4,
        "client": {"addr": "10.7.0.1", "port": 38028, "netns": NSC,
                   "pid": 142, "comm": "python3"},
        "server": {"addr": "10.7.0.2", "port": 8080, "netns": NSS,
                   "pid": 130, "comm": "python3"},
        "start_ns": us(10), "end_ns": us(60_002_015),
        "handshake_ns": {"client": 120_000, "server": 135_000},
        "syn_retransmits": 0, "synack_retransmits": 0,
        "closed_first": "client",
        "fin_wait2_ns": {"client": 905_000, "server": None},
        "close_wait_ns": {"client": None, "server": 980_000},
        "time_wait_ns": {"client": 60_000_000_000, "server": None},
        "outcome": "closed",
        "bytes": {"client_to_server": 14, "server_to_client": 22},
        "violations": [], "lost_records": 0, "complete": True,
    }
    B.check("summary: one, exit 0", rc == 0 and len(objs) == 1, err)
    B.check("summary: every value exact", objs and objs[0] == want,
            B.diff_objs(objs[:1], [want]))
    # text form
    rc, out, _ = tool(["watch", "--summary", "-i", path])
    B.check("summary text: outcome and bytes",
            out.startswith("  outcome closed, closed first by client;") and
            "sent 14 bytes" in out and "sent 22 bytes" in out, out)
    # filters pick connections by either end
    for args, n in ((["-p", "8080"], 1), (["-p", "9"], 0),
                    (["-n", str(NSS)], 1), (["-n", "1"], 0), (["-6"], 0)):
        rc, objs, _ = summaries(path, *args)
        B.check("summary filter %s: %d" % (" ".join(args), n),
                rc == 0 and len(objs) == n)
    # still open at the end of the input: printed, outcome open
    recs = connection()[:9]
    p2 = B.write_input(tmp, "open.bin", b"".join(recs))
    rc, objs, _ = summaries(p2)
    B.check("summary: open connection at end of input",
            len(objs) == 1 and objs[0]["outcome"] == "open" and
            objs[0]["closed_first"] is None, repr(objs))


def refused(t, port):
    b = B
    cli, srv = ("10.7.0.1", 42390), ("10.7.0.2", port)
    return [
        b.st(b.T_STATE, us(t), ("10.7.0.1", 0), srv, old=b.CLOSE,
             new=b.SYN_SENT, netns=NSC, sock_id=5, pid=147,
             comm=b"python3"),
        b.pkt(us(t + 10), cli, srv, b.DIR_OUT, b.SYN, 100, 0, netns=NSC,
              sock_id=5, pid=147, comm=b"python3"),
        b.pkt(us(t + 15), cli, srv, b.DIR_IN, b.SYN, 100, 0, netns=NSS),
        b.pkt(us(t + 20), srv, cli, b.DIR_OUT, b.RST | b.ACK, 0, 101,
              netns=NSS),
        b.pkt(us(t + 25), srv, cli, b.DIR_IN, b.RST | b.ACK, 0, 101,
              netns=NSC),
        b.st(b.T_RESET_RECEIVED, us(t + 30), cli, srv, old=b.SYN_SENT,
             netns=NSC, sock_id=5),
        b.st(b.T_STATE, us(t + 31), cli, srv, old=b.SYN_SENT, new=b.CLOSE,
             netns=NSC, sock_id=5),
    ]


def test_outcomes(tmp):
    b = B
    path = b.write_input(tmp, "refused.bin", b"".join(refused(0, 9)))
    rc, objs, _ = summaries(path)
    B.check("outcome: refused", len(objs) == 1 and
            objs[0]["outcome"] == "refused" and
            objs[0]["client"]["pid"] == 147 and
            objs[0]["server"]["pid"] is None, repr(objs))
    rc, out, _ = tool(["ladder", "-i", path, "--no-color"])
    B.check("ladder: RST reason for a closed port",
            "^ RST sent by server: no listener on the port" in out and
            "CLOSED       |<-- RST-ACK seq=0 ack=1" in out, out)
    # an abortive close by the client after the handshake
    recs = connection(sent_c=0, sent_s=0)[:10]
    recs.append(b.st(b.T_RESET_SENT, us(900), CLI, SRV, old=b.ESTABLISHED,
                     netns=NSC, sock_id=11, pid=142, comm=b"python3"))
    recs.append(b.pkt(us(901), CLI, SRV, b.DIR_OUT, b.RST | b.ACK,
                      ISN_C + 1, ISN_S + 1, netns=NSC))
    recs.append(b.st(b.T_STATE, us(902), CLI, SRV, old=b.ESTABLISHED,
                     new=b.CLOSE, netns=NSC, sock_id=11, pid=142,
                     comm=b"python3"))
    recs.append(b.st(b.T_STATE, us(910), SRV, CLI, old=b.ESTABLISHED,
                     new=b.CLOSE, netns=NSS, sock_id=22))
    path = b.write_input(tmp, "reset.bin", b"".join(recs))
    rc, objs, _ = summaries(path)
    B.check("outcome: reset by client", len(objs) == 1 and
            objs[0]["outcome"] == "reset by client" and
            objs[0]["bytes"]["client_to_server"] == 0, repr(objs))
    rc, out, _ = tool(["ladder", "-i", path, "--no-color"])
    B.check("ladder: RST by a socket names its state",
            "^ RST sent by client: by its socket in ESTABLISHED" in out, out)
    # SYN retransmitted by a timer, then the connect() times out
    cli = ("10.7.0.1", 43000)
    srv = ("10.7.0.2", 8083)
    recs = [
        b.pkt(us(0), cli, srv, b.DIR_OUT, b.SYN, 500, 0, netns=NSC, pid=9,
              comm=b"cli"),
        b.pkt(us(1_000_000), cli, srv, b.DIR_OUT, b.SYN, 500, 0,
              netns=NSC),
        b.pkt(us(3_000_000), cli, srv, b.DIR_OUT, b.SYN, 500, 0,
              netns=NSC),
        b.st(b.T_STATE, us(7_000_000), cli, srv, old=b.SYN_SENT,
             new=b.CLOSE, netns=NSC),
    ]
    path = b.write_input(tmp, "timeout.bin", b"".join(recs))
    rc, objs, _ = summaries(path)
    B.check("outcome: timed out, 2 SYN retransmissions",
            len(objs) == 1 and objs[0]["outcome"] == "timed out" and
            objs[0]["syn_retransmits"] == 2, repr(objs))
    rc, out, _ = tool(["ladder", "-i", path, "--no-color"])
    B.check("ladder: SYN retransmit marks",
            "^ SYN retransmit #1 after 1.00 s" in out and
            "^ SYN retransmit #2 after 2.00 s" in out, out)
    # the same closed by the application: aborted
    recs[-1] = b.st(b.T_STATE, us(7_000_000), cli, srv, old=b.SYN_SENT,
                    new=b.CLOSE, netns=NSC, pid=9, comm=b"cli")
    path = b.write_input(tmp, "abort.bin", b"".join(recs))
    rc, objs, _ = summaries(path)
    B.check("outcome: aborted by close()", len(objs) == 1 and
            objs[0]["outcome"] == "aborted", repr(objs))


def with_violation(kind):
    """The scripted connection with one segment broken."""
    b = B
    recs = connection()
    fc = ISN_C + 1 + 14
    fs = ISN_S + 1 + 22
    if kind == "synack_ack_not_isn_plus_1":
        recs[3] = b.pkt(us(100), SRV, CLI, b.DIR_OUT, b.SYN | b.ACK, ISN_S,
                        ISN_C + 2, netns=NSS)
        recs[4] = b.pkt(us(105), SRV, CLI, b.DIR_IN, b.SYN | b.ACK, ISN_S,
                        ISN_C + 2, netns=NSC)
        return recs, [3, 4]
    # the server's ACK of the client's FIN (records 14, 15)
    if kind == "fin_ack_not_seq_plus_1":
        recs[14] = b.pkt(us(1100), SRV, CLI, b.DIR_OUT, b.ACK, fs, fc + 2,
                         netns=NSS, sock_id=22)
        recs[15] = b.pkt(us(1105), SRV, CLI, b.DIR_IN, b.ACK, fs, fc + 2,
                         netns=NSC)
        return recs, [14, 15]
    # the client's last ACK (records 23, 24)
    if kind == "final_ack_seq_not_fin_plus_1":
        recs[23] = b.pkt(us(2100), CLI, SRV, b.DIR_OUT, b.ACK, fc + 3,
                         fs + 1, netns=NSC)
        recs[24] = b.pkt(us(2105), CLI, SRV, b.DIR_IN, b.ACK, fc + 3,
                         fs + 1, netns=NSS)
        return recs, [23, 24]
    # the handshake's ACK with a seq before the client's ISN + 1
    recs[6] = b.pkt(us(130), CLI, SRV, b.DIR_OUT, b.ACK, ISN_C - 10,
                    ISN_S + 1, netns=NSC, sock_id=11, pid=142,
                    comm=b"python3")
    recs[7] = b.pkt(us(135), CLI, SRV, b.DIR_IN, b.ACK, ISN_C - 10,
                    ISN_S + 1, netns=NSS)
    return recs, [6, 7]


def test_violations(tmp):
    # normal traffic: no flag anywhere
    path = B.write_input(tmp, "ok.bin", b"".join(connection()))
    rc, out, _ = tool(["watch", "--json", "-i", path])
    B.check("violations: none in normal traffic", rc == 0 and
            out.count("\n") == 27 and '"violation"' not in out)
    for kind in ("synack_ack_not_isn_plus_1", "fin_ack_not_seq_plus_1",
                 "final_ack_seq_not_fin_plus_1", "seq_unexpected"):
        recs, bad = with_violation(kind)
        path = B.write_input(tmp, kind + ".bin", b"".join(recs))
        rc, out, _ = tool(["watch", "--json", "-i", path])
        got = [i for i, line in enumerate(out.splitlines())
               if json.loads(line).get("violation") == kind]
        others = [line for line in out.splitlines()
                  if '"violation"' in line and
                  json.loads(line)["violation"] != kind]
        B.check("violation %s: flagged on exactly its segment" % kind,
                got == bad and not others, "%r %r" % (got, others))
        rc, objs, _ = summaries(path)
        B.check("violation %s: in the summary" % kind,
                len(objs) == 1 and objs[0]["violations"] == [kind],
                repr(objs))
        rc, out, _ = tool(["ladder", "-i", path, "--no-color"])
        B.check("violation %s: marked on the ladder's arrow" % kind,
                "!! violation: %s" % kind in out and
                "violations: %s" % kind in out, out)
        rc, out, _ = tool(["watch", "-i", path])
        B.check("violation %s: in watch's text" % kind,
                out.count(" VIOLATION %s" % kind) == len(bad), out)


def test_owner(tmp):
    path = B.write_input(tmp, "own.bin",
                         listen_record(pid=130) + b"".join(connection()))
    rc, out, _ = tool(["watch", "--json", "-i", path])
    objs = [json.loads(line) for line in out.splitlines()]
    wrong = []
    for o in objs[1:]:
        local_ns = o["netns"]
        want = 142 if local_ns == NSC else 130
        if o.get("owner_pid") != want or o.get("owner_comm") != "python3":
            wrong.append(o)
    B.check("owner: every record names its end's process", not wrong,
            repr(wrong[:2]))
    B.check("owner: softirq records keep pid 0",
            sum(1 for o in objs if o["pid"] == 0) == 18)
    # without the listen() record the server's softirq records before its
    # close() have no owner
    rc, out, _ = tool(["watch", "--json", "-i",
                       B.write_input(tmp, "own2.bin",
                                     b"".join(connection()))])
    objs = [json.loads(line) for line in out.splitlines()]
    first_srv = next(o for o in objs if o["netns"] == NSS)
    B.check("owner: unknown until the process shows itself",
            "owner_pid" not in first_srv, repr(first_srv))


def test_lost(tmp):
    b = B
    recs = connection()
    recs.insert(12, b.record(b.T_LOST, b.LOST.pack(3), us(1001), cpu=1))
    path = b.write_input(tmp, "lost.bin", b"".join(recs))
    rc, objs, _ = summaries(path)
    B.check("lost: counted in the summary", len(objs) == 1 and
            objs[0]["lost_records"] == 3 and not objs[0]["complete"],
            repr(objs))
    rc, out, _ = tool(["ladder", "-i", path, "--no-color"])
    B.check("lost: a ~~ row on the ladder",
            "~~ 3 records lost (cpu 1): this story may miss events" in out
            and "incomplete: 3 records were lost" in out, out)


def test_errors(tmp):
    path = B.write_input(tmp, "e.bin", b"".join(connection()))
    cases = [
        (["ladder", "-r", os.path.join(tmp, "nope")], 1,
         "tcptracectl: cannot open %s: No such file or directory\n" %
         os.path.join(tmp, "nope")),
        (["ladder", "-r", path, "-i", path], 2,
         "tcptracectl: ladder: give one of --read and --input, once\n"),
        (["ladder", "-w", "10"], 2, None),
        (["ladder", "extra"], 2,
         "tcptracectl: ladder: unexpected argument 'extra'\n"),
        (["ladder", "--bogus"], 2, None),
        (["watch", "-r", path, "-i", path], 2,
         "tcptracectl: watch: give one of --input and --read, once\n"),
    ]
    for args, code, msg in cases:
        rc, out, err = tool(args)
        B.check("error %s: exit %d" % (" ".join(args[:2]), code),
                rc == code and not out and err.startswith("tcptracectl: ")
                and (msg is None or err == msg), repr(err))
    bad = os.path.join(tmp, "bad.jsonl")
    with open(bad, "w") as f:
        f.write('{"type":"summary"}\n\n{"ts_ns":1,"type":"packet"}\n')
    rc, out, err = tool(["ladder", "-r", bad])
    B.check("bad JSON line: its line number and what is wrong",
            rc == 1 and err == "tcptracectl: %s:3: missing key \"netns\"\n"
            % bad, repr(err))
    with open(bad, "w") as f:
        f.write('not json\n')
    rc, out, err = tool(["watch", "-r", bad])
    B.check("not JSON: said so", rc == 1 and
            err.startswith("tcptracectl: %s:1: not JSON: " % bad), err)
    rc, out, err = tool(["ladder", "--help"])
    B.check("ladder --help", rc == 0 and "EXAMPLES" in out and
            "--read FILE" in out and "--flush" in out and "--no-color" in out
            and "synack_ack_not_isn_plus_1" in out and not err)
    rc, out, err = tool(["watch", "--help"])
    B.check("watch --help: --summary, --read, owner, violation",
            "--summary" in out and "--read FILE" in out and "owner_pid" in
            out and "violation" in out)


def test_flush_order(tmp):
    # two connections, the second ends first: drawn when they end, or in
    # the order they ended with --flush (after all input)
    a = connection(t=0)
    c2 = ("10.7.0.1", 38100)
    b2 = connection(t=100, cli=c2, isn_c=77, isn_s=88)[:-1]  # no TW end
    recs = sorted(a + b2, key=lambda r: int.from_bytes(r[16:24], "little"))
    path = B.write_input(tmp, "two.bin", b"".join(recs))
    rc, out, _ = tool(["ladder", "-i", path, "--no-color"])
    firsts = [ln for ln in out.splitlines() if ln.startswith("  client ")]
    B.check("ladder: each connection once, in the order they ended",
            len(firsts) == 2 and ":38028 " in firsts[0] and
            ":38100 " in firsts[1], repr(firsts))


def test_regressions(tmp):
    b = B
    # a timewait socket killed with its namespace: the kworker that did it
    # is not the owner of the client's end
    recs = connection()
    recs[-1] = b.st(b.T_TIMEWAIT_END, us(60_002_015), CLI, SRV,
                    old=b.TIME_WAIT, new=b.TIME_WAIT, flags=2, netns=NSC,
                    sock_id=33, pid=9, comm=b"kworker/u4:0")
    path = b.write_input(tmp, "kw.bin", listen_record() + b"".join(recs))
    rc, out, _ = tool(["watch", "--json", "-i", path])
    last = json.loads(out.splitlines()[-1])
    B.check("owner: not the kworker that killed the timewait socket",
            last["pid"] == 9 and last["owner_pid"] == 142, repr(last))
    rc, objs, _ = summaries(path)
    B.check("owner: the summary keeps the client",
            len(objs) == 1 and objs[0]["client"]["pid"] == 142, repr(objs))
    # an abortive close whose reset_sent comes after both ends closed:
    # one connection, and the RST explained by the socket
    recs = connection(sent_c=0, sent_s=0)[:10]
    recs += [
        b.st(b.T_STATE, us(900), CLI, SRV, old=b.ESTABLISHED, new=b.CLOSE,
             netns=NSC, sock_id=11, pid=142, comm=b"python3"),
        b.pkt(us(901), CLI, SRV, b.DIR_OUT, b.RST | b.ACK, ISN_C + 1,
              ISN_S + 1, netns=NSC, pid=142, comm=b"python3"),
        b.pkt(us(905), CLI, SRV, b.DIR_IN, b.RST | b.ACK, ISN_C + 1,
              ISN_S + 1, netns=NSS),
        b.st(b.T_STATE, us(910), SRV, CLI, old=b.ESTABLISHED, new=b.CLOSE,
             netns=NSS, sock_id=22),
        b.st(b.T_RESET_SENT, us(920), CLI, SRV, old=b.CLOSE, netns=NSC,
             sock_id=11, pid=142, comm=b"python3"),
        b.st(b.T_DESTROY, us(930), CLI, SRV, old=b.CLOSE, netns=NSC,
             sock_id=11, pid=142, comm=b"python3"),
    ]
    path = b.write_input(tmp, "abort2.bin", b"".join(recs))
    rc, objs, _ = summaries(path)
    B.check("abortive close: one connection, reset by client",
            len(objs) == 1 and objs[0]["outcome"] == "reset by client",
            repr(objs))
    rc, out, _ = tool(["ladder", "-i", path, "--no-color"])
    B.check("abortive close: the RST's reason comes from reset_sent",
            "^ RST sent by client: its socket was closed by the "
            "application (abort)" in out and out.count("TIME ") == 1, out)
    # a forged SYN-ACK (never seen leaving the server) with a wrong ack:
    # no (SYN_RECV) deduced, the client's much later CLOSE on its own row
    cli, srv = ("10.7.0.1", 45000), ("10.7.0.2", 7000)
    recs = [
        b.st(b.T_STATE, us(0), ("10.7.0.1", 0), srv, old=b.CLOSE,
             new=b.SYN_SENT, netns=NSC, sock_id=5, pid=7, comm=b"c"),
        b.pkt(us(10), cli, srv, b.DIR_OUT, b.SYN, 100, 0, netns=NSC,
              sock_id=5, pid=7, comm=b"c"),
        b.pkt(us(15), cli, srv, b.DIR_IN, b.SYN, 100, 0, netns=NSS),
        b.pkt(us(500), srv, cli, b.DIR_IN, b.SYN | b.ACK, 900, 102,
              netns=NSC),
        b.pkt(us(510), cli, srv, b.DIR_OUT, b.RST, 102, 0, netns=NSC),
        b.st(b.T_STATE, us(3_000_000), cli, srv, old=b.SYN_SENT,
             new=b.CLOSE, netns=NSC, sock_id=5, pid=7, comm=b"c"),
    ]
    path = b.write_input(tmp, "forged.bin", b"".join(recs))
    rc, out, _ = tool(["ladder", "-i", path, "--no-color"])
    rows = out.splitlines()
    synack = [ln for ln in rows if "<-- SYN-ACK" in ln]
    B.check("forged SYN-ACK: no deduced state, no CLOSED on its row",
            len(synack) == 1 and "SYN_RECV" not in synack[0] and
            "CLOSED" not in synack[0] and
            any(ln.startswith("  2.999990  CLOSED") for ln in rows), out)
    rc, objs, _ = summaries(path)
    B.check("forged SYN-ACK: no bytes from the RST's copied ack",
            len(objs) == 1 and
            objs[0]["bytes"]["client_to_server"] is None and
            objs[0]["violations"] == ["synack_ack_not_isn_plus_1"],
            repr(objs))
    rc, out, _ = tool(["watch", "--json", "-i", path])
    rst = [json.loads(ln) for ln in out.splitlines() if '"R"' in ln]
    B.check("forged SYN-ACK: the client's ISN stays its SYN's",
            len(rst) == 1 and rst[0]["rel_seq"] == 2, repr(rst))
    # JSON with spaces after the colons reads the same
    rc, js, _ = tool(["watch", "--json", "-i", path])
    spaced = js.replace('":', '": ')
    rc, out2, err = tool(["watch", "--json", "-r", "-"],
                         data=spaced.encode())
    B.check("watch -r: JSON with spaces", rc == 0 and out2 == js, err)


def test_memory(tmp):
    """A connection followed through its TIME_WAIT keeps no block of recent
    segments once both its sockets are closed or in TIME_WAIT: the memory
    (VmRSS) of watch --json once it has printed N and 2N connections,
    none of them over (no timewait_end), grows by well under the 1.2 kB
    per connection it took when they kept them."""
    def make(n):
        recs = []
        for i in range(n):
            cli = ("10.7.%d.%d" % (i >> 8 & 255, i & 255), 30000 + (i >> 16))
            recs += connection(t=i * 3000, cli=cli)[:-1]
        return b"".join(recs), len(recs)

    def rss_after(data, nrec):
        """VmRSS of a watch fed data on stdin, once it printed nrec lines
        and waits for more; and the lines it printed."""
        p = subprocess.Popen([B.TOOL, "watch", "--json", "-i", "-"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        def feed():
            try:
                p.stdin.write(data)
            except BrokenPipeError:
                pass    # the tool was stopped: the check says so

        w = threading.Thread(target=feed)
        w.start()
        lines, rss = 0, None
        deadline = time.monotonic() + 60
        while lines < nrec and time.monotonic() < deadline:
            # never blocks for good: a tool that stopped printing fails
            if not select.select([p.stdout], [], [], 1)[0]:
                continue
            chunk = p.stdout.read1(1 << 20)
            if not chunk:
                break
            lines += chunk.count(b"\n")
        if lines == nrec:
            with open("/proc/%d/status" % p.pid) as f:
                rss = next(int(l.split()[1]) * 1024 for l in f
                           if l.startswith("VmRSS:"))
        if lines < nrec:
            p.kill()
        w.join()
        try:
            p.stdin.close()
        except BrokenPipeError:
            pass
        lines += p.stdout.read().count(b"\n")
        p.wait()
        return rss, lines

    # ASan's red zones and UBSan's checks (make -C fuzz asan-test) add
    # some 350 bytes to each connection
    bound = 1400 if os.environ.get("TCPTRACE_TEST_SANITIZED") else 900
    n = 6000
    (d1, r1), (d2, r2) = make(n), make(2 * n)
    (m1, l1), (m2, l2) = rss_after(d1, r1), rss_after(d2, r2)
    ok = m1 is not None and m2 is not None and l1 == r1 and l2 == r2
    per_conn = (m2 - m1) / n if ok else 0
    B.check("memory: every record of %d and %d connections printed"
            % (n, 2 * n), ok, "%d of %d, %d of %d lines" % (l1, r1, l2, r2))
    B.check("memory: a followed connection takes under %d bytes" % bound,
            ok and 0 < per_conn < bound,
            "VmRSS %s -> %s bytes for %d more connections: %.0f each"
            % (m1, m2, n, per_conn))


def test_timewait_assassination(tmp):
    """The server end connects from its port to the client's while the
    client's timewait socket holds it (RFC 1337): the timewait socket
    answers the SYN with an ACK of the old connection, the new socket in
    SYN_SENT resets it with that ACK's ack as seq, which kills the timewait
    socket; the SYN sent again 8 ms later is refused."""
    b = B
    isn_c, isn_s, sent_c, sent_s = ISN_C, ISN_S, 14, 22
    fc, fs = isn_c + 1 + sent_c, isn_s + 1 + sent_s
    z = 3_000_000_000
    recs = connection()[:-1]  # the timewait socket has not ended
    S = dict(pid=130, comm=b"python3")

    def both(tt, src, dst, fl, seq, ack, sender_ns, recv_ns, **kw):
        recs.append(b.pkt(us(tt), src, dst, b.DIR_OUT, fl, seq, ack,
                          netns=sender_ns, **kw))
        recs.append(b.pkt(us(tt + 5), src, dst, b.DIR_IN, fl, seq, ack,
                          netns=recv_ns))

    recs.append(b.st(b.T_STATE, us(300_000), SRV, CLI, old=b.CLOSE,
                     new=b.SYN_SENT, netns=NSS, sock_id=55, **S))
    both(300_010, SRV, CLI, b.SYN, z, 0, NSS, NSC, sock_id=55, **S)
    both(300_100, CLI, SRV, b.ACK, fc + 1, fs + 1, NSC, NSS)
    recs.append(b.st(b.T_RESET_SENT, us(300_200), SRV, CLI,
                     old=b.SYN_SENT, netns=NSS, sock_id=55))
    both(300_210, SRV, CLI, b.RST, fs + 1, 0, NSS, NSC)
    recs.append(b.st(b.T_TIMEWAIT_END, us(300_220), CLI, SRV,
                     old=b.TIME_WAIT, new=b.TIME_WAIT, flags=2, netns=NSC,
                     sock_id=33))
    both(308_000, SRV, CLI, b.SYN, z, 0, NSS, NSC, sock_id=55)
    both(308_100, CLI, SRV, b.RST | b.ACK, 0, z + 1, NSC, NSS)
    recs.append(b.st(b.T_STATE, us(308_200), SRV, CLI, old=b.SYN_SENT,
                     new=b.CLOSE, netns=NSS, sock_id=55, **S))
    path = b.write_input(tmp, "rfc1337.bin",
                         listen_record() + b"".join(recs))
    rc, out, err = tool(["ladder", "-i", path, "--no-color", "-w", "90"])
    parts = out.split("\n\n")
    B.check("assassination: two connections, the old one first",
            rc == 0 and not err and out.count("TIME ") == 2 and
            "new connection on these ports; client's timewait stays"
            in parts[0], out)
    new = parts[-1] if len(parts) > 1 else ""
    # the old connection's numbers, relative to its ISNs, as its last ACK
    B.check("assassination: the timewait socket's ACK, in the numbers of "
            "the earlier connection",
            "<-- ACK seq=%d ack=%d -" % (sent_c + 2, sent_s + 2) in new and
            "^ from the earlier connection's timewait socket" in new and
            "^ seq and ack relative to the earlier connection" in new, new)
    B.check("assassination: killed by the new client's RST, on its row",
            "^ timewait socket killed by client's RST (RFC 1337)" in new
            and "--- RST seq=%d -" % (sent_s + 2) in new and
            "^ RST sent by client: by its socket in SYN_SENT" in new and
            "^ seq relative to the earlier connection" in new, new)
    B.check("assassination: the new connection's own numbers stay its own",
            "--- SYN seq=0 -" in new and "<-- RST-ACK seq=0 ack=1 -" in new
            and new.count("relative to the earlier connection") == 2, new)
    rc, out, err = tool(["ladder", "-i", path, "--no-color", "-w", "90",
                         "-a"])
    new = out.split("\n\n")[-1]
    B.check("assassination: -a prints them absolute, with no remark",
            "ACK seq=%d ack=%d" % (fc + 1, fs + 1) in new and
            "RST seq=%d " % (fs + 1) in new and
            "relative to the earlier" not in new, new)
    # the earlier connection's handshake not recorded: its ISNs unknown,
    # its numbers absolute, and no remark says otherwise
    part = b.write_input(tmp, "rfc1337-noisn.bin", listen_record() +
                         b"".join(recs[:1] + recs[5:]))
    rc, out, err = tool(["ladder", "-i", part, "--no-color", "-w", "90"])
    new = out.split("\n\n")[-1]
    B.check("assassination: earlier ISNs unknown, absolute and unmarked",
            rc == 0 and "ACK seq=%d ack=%d" % (fc + 1, fs + 1) in new and
            "RST seq=%d " % (fs + 1) in new and
            "^ from the earlier connection's timewait socket" in new and
            "relative to the earlier" not in new, out + err)
    B.check("assassination: the RST's seq is the ACK's ack, no violation",
            "violations: none" in new and "SYN retransmit #1" in new, new)
    rc, out, err = tool(["watch", "--json", "-i", path])
    pk = [json.loads(x) for x in out.splitlines()]
    pk = [(o["flags"], o.get("rel_seq"), o.get("rel_ack"))
          for o in pk if o["type"] == "packet" and o["ts_ns"] >= us(300_000)]
    B.check("assassination: watch --json, the same relative numbers",
            rc == 0 and not err and pk == [
                ("S", 0, None), ("S", 0, None),
                (".", sent_c + 2, sent_s + 2), (".", sent_c + 2, sent_s + 2),
                ("R", sent_s + 2, None), ("R", sent_s + 2, None),
                ("S", 0, None), ("S", 0, None),
                ("R.", None, 1), ("R.", None, 1)], repr(pk))
    rc, objs, _ = summaries(path)
    B.check("assassination: summaries, closed then refused (the RST that "
            "killed the timewait socket did not reset the new connection)",
            [o["outcome"] for o in objs] == ["closed", "refused"],
            repr(objs))

    # tcp_rfc1337=1: the timewait socket ignores the RST and answers the
    # SYN sent again with its ACK again; each RST has its own reset_sent
    recs = recs[:-6]  # from the end of the timewait socket on
    both(308_000, SRV, CLI, b.SYN, z, 0, NSS, NSC, sock_id=55)
    both(308_100, CLI, SRV, b.ACK, fc + 1, fs + 1, NSC, NSS)
    recs.append(b.st(b.T_RESET_SENT, us(308_200), SRV, CLI,
                     old=b.SYN_SENT, netns=NSS, sock_id=55))
    both(308_210, SRV, CLI, b.RST, fs + 1, 0, NSS, NSC)
    recs.append(b.st(b.T_STATE, us(1_300_000), SRV, CLI, old=b.SYN_SENT,
                     new=b.CLOSE, netns=NSS, sock_id=55, **S))
    path = b.write_input(tmp, "rfc1337-1.bin",
                         listen_record() + b"".join(recs))
    rc, out, err = tool(["ladder", "-i", path, "--no-color", "-w", "90"])
    new = out.split("\n\n")[-1]
    B.check("rfc1337=1: two ACKs of the timewait socket, two RSTs by the "
            "socket in SYN_SENT, no end of the timewait socket",
            rc == 0 and new.count("^ from the earlier connection's "
                                  "timewait socket") == 2 and
            new.count("^ RST sent by client: by its socket in SYN_SENT")
            == 2 and "killed" not in new and "violations: none" in new and
            new.count("relative to the earlier connection") == 4, new)
    rc, objs, _ = summaries(path)
    B.check("rfc1337=1: summaries, closed then aborted by its process",
            [o["outcome"] for o in objs] == ["closed", "aborted"],
            repr(objs))

    # the timewait socket expires, a listener on its port takes the SYN
    # sent again; the client sends 9 bytes and resets: its bytes come from
    # that RST, not from the one in the earlier connection's numbers
    recs = recs[:-1]  # not the SYN_SENT -> CLOSE
    y = 1_000_000_000
    recs.append(b.st(b.T_TIMEWAIT_END, us(360_000), CLI, SRV,
                     old=b.TIME_WAIT, new=b.TIME_WAIT, flags=1, netns=NSC,
                     sock_id=33))
    both(360_100, SRV, CLI, b.SYN, z, 0, NSS, NSC, sock_id=55)
    both(360_200, CLI, SRV, b.SYN | b.ACK, y, z + 1, NSC, NSS)
    recs.append(b.st(b.T_STATE, us(360_300), SRV, CLI, old=b.SYN_SENT,
                     new=b.ESTABLISHED, netns=NSS, sock_id=55, **S))
    both(360_310, SRV, CLI, b.ACK, z + 1, y + 1, NSS, NSC)
    both(360_400, SRV, CLI, b.ACK | b.PSH, z + 1, y + 1, NSS, NSC, plen=9)
    both(360_500, SRV, CLI, b.RST | b.ACK, z + 10, y + 1, NSS, NSC)
    recs.append(b.st(b.T_STATE, us(360_510), SRV, CLI, old=b.ESTABLISHED,
                     new=b.CLOSE, netns=NSS, sock_id=55, **S))
    path = b.write_input(tmp, "rfc1337-2.bin",
                         listen_record() + b"".join(recs))
    rc, objs, _ = summaries(path)
    new = objs[-1] if objs else {}
    B.check("rfc1337=1, then connected: reset by client, its 9 bytes "
            "counted from its own RST",
            rc == 0 and new.get("outcome") == "reset by client" and
            new.get("bytes", {}).get("client_to_server") == 9, repr(objs))


def test_simultaneous_open(tmp):
    """Both ends bound, both connect (CLOSE -> SYN_SENT with the 4-tuple),
    the SYNs cross: one connection, not two."""
    b = B
    a, z = ("10.7.0.1", 6001), ("10.7.0.2", 6002)
    x, y = 1000, 5000
    recs = [
        b.st(b.T_STATE, us(0), a, z, old=b.CLOSE, new=b.SYN_SENT,
             netns=NSC, sock_id=1, pid=7, comm=b"a"),
        b.st(b.T_STATE, us(1), z, a, old=b.CLOSE, new=b.SYN_SENT,
             netns=NSS, sock_id=2, pid=8, comm=b"z"),
        b.pkt(us(10), a, z, b.DIR_OUT, b.SYN, x, 0, netns=NSC, sock_id=1),
        b.pkt(us(11), z, a, b.DIR_OUT, b.SYN, y, 0, netns=NSS, sock_id=2),
        b.pkt(us(20), a, z, b.DIR_IN, b.SYN, x, 0, netns=NSS),
        b.pkt(us(21), z, a, b.DIR_IN, b.SYN, y, 0, netns=NSC),
        b.st(b.T_STATE, us(22), a, z, old=b.SYN_SENT, new=b.SYN_RECV,
             netns=NSC, sock_id=1),
        b.st(b.T_STATE, us(23), z, a, old=b.SYN_SENT, new=b.SYN_RECV,
             netns=NSS, sock_id=2),
        b.pkt(us(30), a, z, b.DIR_OUT, b.SYN | b.ACK, x, y + 1, netns=NSC),
        b.pkt(us(31), z, a, b.DIR_OUT, b.SYN | b.ACK, y, x + 1, netns=NSS),
        b.pkt(us(40), a, z, b.DIR_IN, b.SYN | b.ACK, x, y + 1, netns=NSS),
        b.pkt(us(41), z, a, b.DIR_IN, b.SYN | b.ACK, y, x + 1, netns=NSC),
        b.st(b.T_STATE, us(42), a, z, old=b.SYN_RECV, new=b.ESTABLISHED,
             netns=NSC, sock_id=1),
        b.st(b.T_STATE, us(43), z, a, old=b.SYN_RECV, new=b.ESTABLISHED,
             netns=NSS, sock_id=2),
    ]
    path = b.write_input(tmp, "simopen.bin", b"".join(recs))
    rc, out, err = tool(["ladder", "-i", path, "--no-color", "--flush"])
    B.check("simultaneous open: one connection", rc == 0 and not err and
            out.count("TIME ") == 1, out)


def run(base, tmp):
    global B
    B = base
    test_ladder_golden(tmp)
    test_summary(tmp)
    test_outcomes(tmp)
    test_violations(tmp)
    test_owner(tmp)
    test_lost(tmp)
    test_errors(tmp)
    test_flush_order(tmp)
    test_regressions(tmp)
    test_timewait_assassination(tmp)
    test_simultaneous_open(tmp)
    test_memory(tmp)
