# SPDX-License-Identifier: GPL-2.0
"""Host tests of 'tcptracectl metrics': Prometheus metrics from records.

run(base, tmp) is called by test_tcptracectl.py with itself as @base (for
record(), st(), check(), run(), spawn() and the FIFO device played with
tests/fakedev.so).  Records of every kind the metrics count are written to
the FIFO, /metrics is scraped over HTTP and each series is checked for its
exact value; then the HTTP side (paths, methods, headers), promtool when it
is installed, and the errors of --listen.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import traceback
import urllib.error
import urllib.request

B = None            # the test_tcptracectl module
T0 = 9_000_000_000
NS1 = 4026531840
NS2 = 4026532000
ST_LISTEN = 10      # B.LISTEN is the struct of listen_overflow records
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def ms(n):
    return T0 + n * 1_000_000


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def state(ts, local, remote, old, new, sock_id, pid=0, **kw):
    return B.st(B.T_STATE, ts, local, remote, old=old, new=new,
                sock_id=sock_id, pid=pid,
                comm=b"app" if pid else b"", **kw)


def sock_ev(rtype, ts, local, remote, st, sock_id=0, pid=0, **kw):
    return B.st(rtype, ts, local, remote, old=st, sock_id=sock_id, pid=pid,
                comm=b"app" if pid else b"", **kw)


def rst_out(ts, src, dst, netns=NS1):
    return B.pkt(ts, src, dst, B.DIR_OUT, B.RST | B.ACK, 1000, 2000,
                 netns=netns)


def overflow(ts, listener, peer, reason, netns=NS1):
    body = B.LISTEN.pack(reason, 3, 5, 4)
    return B.record(B.T_LISTEN_OVERFLOW, body, ts, listener, peer,
                    netns=netns)


def lost(ts, count):
    return B.record(B.T_LOST, B.LOST.pack(count), ts)


C = ("10.0.0.2", 40000)
S = ("10.0.0.1", 8080)
S6 = ("2001:db8::1", 443)


def records():
    """The records, and the series they must give (name{labels}: value)."""
    R = []
    E = {}
    # handshakes: completed at each side
    R.append(state(ms(1), C, S, B.SYN_SENT, B.ESTABLISHED, 1, pid=10))
    R.append(state(ms(2), S, C, B.SYN_RECV, B.ESTABLISHED, 2))
    R.append(state(ms(3), ("10.0.0.2", 40001), S, B.SYN_SENT,
                   B.ESTABLISHED, 3))
    # refused: the RST is taken in SYN_SENT, then the socket closes
    R.append(sock_ev(B.T_RESET_RECEIVED, ms(4), ("10.0.0.2", 40002), S,
                     B.SYN_SENT, 4))
    R.append(state(ms(5), ("10.0.0.2", 40002), S, B.SYN_SENT, B.CLOSE, 4))
    # the kernel gave up (softirq), the application closed it
    R.append(state(ms(6), ("10.0.0.2", 40003), S, B.SYN_SENT, B.CLOSE, 5))
    R.append(state(ms(7), ("10.0.0.2", 40004), S, B.SYN_SENT, B.CLOSE, 6,
                   pid=11))
    # a server side socket closed before ESTABLISHED
    R.append(state(ms(8), S, ("10.0.0.2", 40005), B.SYN_RECV, B.CLOSE, 7))
    # states that are not the end of a handshake
    R.append(state(ms(9), C, S, B.ESTABLISHED, B.FIN_WAIT1, 1))
    R.append(state(ms(10), C, S, B.CLOSE, B.SYN_SENT, 8, pid=10))
    E['tcptrace_handshakes_completed_total{side="client"}'] = 2
    E['tcptrace_handshakes_completed_total{side="server"}'] = 1
    E['tcptrace_handshakes_failed_total{side="client",reason="reset"}'] = 1
    E['tcptrace_handshakes_failed_total{side="client",reason="timeout"}'] = 1
    E['tcptrace_handshakes_failed_total{side="client",reason="aborted"}'] = 1
    E['tcptrace_handshakes_failed_total{side="server",reason="reset"}'] = 0
    E['tcptrace_handshakes_failed_total{side="server",reason="timeout"}'] = 1
    E['tcptrace_handshakes_failed_total{side="server",reason="aborted"}'] = 0

    # retransmissions
    R.append(sock_ev(B.T_RETRANSMIT, ms(20), C, S, B.SYN_SENT,
                     flags=B.SYN, seq=1, end_seq=2))
    R.append(sock_ev(B.T_RETRANSMIT, ms(21), C, S, B.SYN_SENT,
                     flags=B.SYN, seq=1, end_seq=2))
    R.append(sock_ev(B.T_RETRANSMIT, ms(22), S, C, B.SYN_RECV,
                     flags=B.SYN | B.ACK, seq=1, end_seq=2))
    R.append(sock_ev(B.T_RETRANSMIT, ms(23), C, S, B.FIN_WAIT1,
                     flags=B.FIN | B.ACK, seq=10, end_seq=11))
    R.append(B.record(B.T_SYNACK_RETRANSMIT, B.SYNACK.pack(5000, 1000, 1),
                      ms(24), S, C))
    R.append(B.record(B.T_SYNACK_RETRANSMIT, B.SYNACK.pack(5000, 1000, 2),
                      ms(25), S, C))
    E["tcptrace_syn_retransmissions_total"] = 2
    E["tcptrace_synack_retransmissions_total"] = 3
    E["tcptrace_fin_retransmissions_total"] = 1

    # resets sent: a refused SYN (no socket), a listener's (its record
    # first), an abort by the application (the segment first), a socket's
    # whose segment was not seen, a RST arriving (not sent), and one in
    # another namespace that does not pair with a record of this one
    R.append(rst_out(ms(30), ("10.0.0.1", 9999), ("10.0.0.2", 40010)))
    R.append(sock_ev(B.T_RESET_SENT, ms(31), S, ("0.0.0.0", 0), ST_LISTEN))
    R.append(rst_out(ms(31) + 5000, S, ("10.0.0.2", 40011)))
    R.append(rst_out(ms(32), ("10.0.0.2", 40012), S))
    R.append(sock_ev(B.T_RESET_SENT, ms(32) + 9000, ("10.0.0.2", 40012), S,
                     B.CLOSE, sock_id=9, pid=12))
    R.append(sock_ev(B.T_RESET_SENT, ms(33), ("10.0.0.2", 40013), S,
                     B.ESTABLISHED, sock_id=10))
    R.append(B.pkt(ms(34), S, ("10.0.0.2", 40014), B.DIR_IN, B.RST, 1))
    R.append(rst_out(ms(35), ("10.0.0.2", 40013), S, netns=NS2))
    R.append(sock_ev(B.T_RESET_SENT, ms(36), ("10.0.0.2", 40015), S,
                     B.FIN_WAIT2, sock_id=11))
    R.append(rst_out(ms(36) + 1000, ("10.0.0.2", 40015), S))
    E['tcptrace_resets_sent_total{reason="no_socket"}'] = 2
    E['tcptrace_resets_sent_total{reason="listener"}'] = 1
    E['tcptrace_resets_sent_total{reason="aborted"}'] = 1
    E['tcptrace_resets_sent_total{reason="in_established"}'] = 1
    E['tcptrace_resets_sent_total{reason="in_fin_wait2"}'] = 1
    E['tcptrace_resets_sent_total{reason="in_close"}'] = 0
    E['tcptrace_resets_sent_total{reason="in_syn_recv"}'] = 0

    # resets received
    R.append(sock_ev(B.T_RESET_RECEIVED, ms(40), C, S, B.ESTABLISHED,
                     sock_id=1))
    R.append(sock_ev(B.T_RESET_RECEIVED, ms(41), C, S, B.CLOSE_WAIT,
                     sock_id=1))
    E['tcptrace_resets_received_total{reason="in_syn_sent"}'] = 1
    E['tcptrace_resets_received_total{reason="in_established"}'] = 1
    E['tcptrace_resets_received_total{reason="in_close_wait"}'] = 1
    E['tcptrace_resets_received_total{reason="in_syn_recv"}'] = 0

    # listener overflows: IPv4 in two namespaces, IPv6
    for i in range(2):
        R.append(overflow(ms(50 + i), S, ("10.0.0.2", 41000 + i), 1))
    R.append(overflow(ms(52), S, ("10.0.0.2", 41002), 2))
    R.append(overflow(ms(53), S, ("10.0.0.2", 41003), 2, netns=NS2))
    R.append(overflow(ms(54), S6, ("2001:db8::2", 41004), 3))
    L1 = 'listener="10.0.0.1:8080",netns="%d"' % NS1
    L2 = 'listener="10.0.0.1:8080",netns="%d"' % NS2
    L6 = 'listener="[2001:db8::1]:443",netns="%d"' % NS1
    E['tcptrace_accept_queue_overflows_total{%s,dropped="syn"}' % L1] = 2
    E['tcptrace_accept_queue_overflows_total{%s,dropped="ack"}' % L1] = 1
    E['tcptrace_accept_queue_overflows_total{%s,dropped="syn"}' % L2] = 0
    E['tcptrace_accept_queue_overflows_total{%s,dropped="ack"}' % L2] = 1
    E['tcptrace_accept_queue_overflows_total{%s,dropped="syn"}' % L6] = 0
    E['tcptrace_syn_queue_overflows_total{%s}' % L1] = 0
    E['tcptrace_syn_queue_overflows_total{%s}' % L6] = 1

    # TIME_WAIT
    R.append(B.st(B.T_TIMEWAIT, ms(60), C, S, old=B.FIN_WAIT2,
                  new=B.TIME_WAIT, timeo_ms=60000))
    R.append(B.st(B.T_TIMEWAIT, ms(61), C, S, old=B.CLOSING,
                  new=B.TIME_WAIT, timeo_ms=60000))
    R.append(B.st(B.T_TIMEWAIT, ms(62), C, S, old=B.FIN_WAIT2,
                  new=B.FIN_WAIT2, timeo_ms=60000))
    R.append(B.st(B.T_TIMEWAIT_END, ms(63), C, S, old=B.TIME_WAIT,
                  new=B.TIME_WAIT, flags=1))
    R.append(B.st(B.T_TIMEWAIT_END, ms(64), C, S, old=B.TIME_WAIT,
                  new=B.TIME_WAIT, flags=2))
    R.append(B.st(B.T_TIMEWAIT_END, ms(65), C, S, old=B.TIME_WAIT,
                  new=B.TIME_WAIT, flags=2))
    E['tcptrace_timewait_entered_total{substate="time_wait"}'] = 2
    E['tcptrace_timewait_entered_total{substate="fin_wait2"}'] = 1
    E['tcptrace_timewait_ended_total{end="expired"}'] = 1
    E['tcptrace_timewait_ended_total{end="killed"}'] = 2

    R.append(lost(ms(70), 7))
    R.append(lost(ms(71), 3))
    E["tcptrace_records_lost_total"] = 10
    E['tcptrace_records_read_total{type="lost"}'] = 2
    E['tcptrace_records_read_total{type="state"}'] = 9
    E['tcptrace_records_read_total{type="packet"}'] = 6
    E['tcptrace_records_read_total{type="listen_overflow"}'] = 5
    # the fixed values of tests/fakedev.so's TCPTRACE_IOC_STATS
    E["tcptrace_module_up"] = 1
    E["tcptrace_module_events_total"] = 1234
    E["tcptrace_module_drops_total"] = 5
    E["tcptrace_module_malformed_total"] = 6
    E["tcptrace_module_queued_records"] = 8
    return R, E


def get(port, path="/metrics", method="GET", host="127.0.0.1"):
    """(status, headers, body) of one request."""
    req = urllib.request.Request("http://%s:%d%s" % (host, port, path),
                                 method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def parse(text):
    """{series: value} and the list of (name, type) of # TYPE lines."""
    vals, types = {}, []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            types.append((name, typ))
        elif line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            vals[series] = int(value)
    return vals, types


def wait_listening(port, proc, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        rc = None
    err = proc.stderr.read().decode()
    proc.stdout.close()
    proc.stderr.close()
    return rc, err


def scrape_until(port, want, timeout=5.0):
    """Scrapes until the series in @want have their values, or time out."""
    end = time.monotonic() + timeout
    vals = {}
    while time.monotonic() < end:
        status, _, body = get(port)
        vals, _ = parse(body) if status == 200 else ({}, [])
        if all(vals.get(k) == v for k, v in want.items()):
            break
        time.sleep(0.1)
    return vals


def fake_device(tmp, name):
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    return B.FakeDevice(d)


def test_counts(tmp):
    recs, exp = records()
    dev = fake_device(tmp, "counts")
    port = free_port()
    proc = B.spawn(["metrics", "--listen", "127.0.0.1:%d" % port], dev.env)
    try:
        up = wait_listening(port, proc)
        B.check("metrics: listening on 127.0.0.1", up)
        status, hdr, body = get(port)
        vals, types = parse(body)
        B.check("metrics: all zero before any record",
                status == 200 and vals.get(
                    'tcptrace_handshakes_completed_total{side="client"}') == 0
                and vals.get("tcptrace_records_lost_total") == 0 and
                not any(k.startswith("tcptrace_accept_queue") for k in vals),
                body[:300])
        B.check("metrics: Content-Type of the text format",
                hdr.get("Content-Type") == CONTENT_TYPE, repr(hdr))
        # the handshakes and retransmissions, a scrape, then the rest: no
        # double counting (not between the two halves of a reset: a scrape
        # settles a reset whose other half has not come in 100 ms, and
        # these records are older than that)
        half = 16
        dev.write(b"".join(recs[:half]))
        time.sleep(0.3)
        get(port)
        dev.write(b"".join(recs[half:]))
        vals = scrape_until(port, exp)
        bad = ["%s: %r, expected %r" % (k, vals.get(k), v)
               for k, v in sorted(exp.items()) if vals.get(k) != v]
        B.check("metrics: every series has its value (%d checked)" %
                len(exp), not bad, "; ".join(bad[:6]))
        B.check("metrics: no series of a listener that was not seen",
                not [k for k in vals if "listener=" in k and
                     "8080" not in k and "443" not in k], "")
        status, hdr, body = get(port)
        vals, types = parse(body)
        names = [n for n, _ in types]
        B.check("metrics: one TYPE line per family, counters end in _total",
                len(names) == len(set(names)) and
                all(n.endswith("_total") == (t == "counter")
                    for n, t in types), repr(types))
        B.check("metrics: every family has HELP",
                all(("# HELP %s " % n) in body for n in names))
        # samples of a family follow its TYPE line, never elsewhere
        fam = None
        grouped = True
        for line in body.splitlines():
            if line.startswith("# TYPE "):
                fam = line.split(" ")[2]
            elif line and not line.startswith("#"):
                grouped &= re.split(r"[{ ]", line, 1)[0] == fam
        B.check("metrics: samples grouped under their family", grouped)
        if shutil.which("promtool"):
            p = subprocess.run(["promtool", "check", "metrics"],
                               input=body.encode(), capture_output=True)
            B.check("metrics: promtool check metrics passes",
                    p.returncode == 0, (p.stdout + p.stderr).decode())
        else:
            print("skip promtool check: promtool not installed "
                  "(scripts/deps.sh install)")

        # HTTP
        status, hdr, body = get(port, "/")
        B.check("metrics: GET / is 404", status == 404, str(status))
        status, hdr, body = get(port, "/metrics/x")
        B.check("metrics: GET /metrics/x is 404", status == 404, str(status))
        status, hdr, body = get(port, "/metrics?name[]=x")
        B.check("metrics: a query string is ignored",
                status == 200 and "tcptrace_records_lost_total 10" in body,
                str(status))
        status, hdr, body = get(port, method="POST")
        B.check("metrics: POST is 405 with Allow",
                status == 405 and hdr.get("Allow") == "GET, HEAD", str(status))
        status, hdr, body = get(port, method="HEAD")
        B.check("metrics: HEAD has the headers and no body",
                status == 200 and body == "" and
                int(hdr.get("Content-Length", "0")) > 1000, repr(hdr))
        s = socket.create_connection(("127.0.0.1", port), 5)
        s.sendall(b"garbage\r\n\r\n")
        reply = s.recv(100)
        s.close()
        B.check("metrics: a malformed request gets 400",
                reply.startswith(b"HTTP/1.1 400 "), repr(reply))
        # a client that says nothing does not stop the others for long
        idle = socket.create_connection(("127.0.0.1", port), 5)
        t = time.monotonic()
        status, _, _ = get(port)
        idle.close()
        B.check("metrics: served after an idle client",
                status == 200 and time.monotonic() - t < 7, str(status))
    finally:
        rc, err = stop(proc)
        dev.close()
    B.check("metrics: SIGTERM exits 0, one line on stderr",
            rc == 0 and err == "tcptracectl: serving metrics at "
            "http://127.0.0.1:%d/metrics\n" % port, "rc %r %r" % (rc, err))


def test_listeners_cap(tmp):
    dev = fake_device(tmp, "cap")
    port = free_port()
    proc = B.spawn(["metrics", "--listen", "127.0.0.1:%d" % port,
                    "--max-listeners", "2"], dev.env)
    try:
        wait_listening(port, proc)
        recs = [overflow(ms(i), ("10.1.0.%d" % (i + 1), 80),
                         ("10.2.0.1", 50000 + i), 1) for i in range(5)]
        recs.append(overflow(ms(9), ("10.1.0.1", 80), ("10.2.0.1", 50009), 2))
        dev.write(b"".join(recs))
        other = 'listener="other",netns="other"'
        want = {
            'tcptrace_accept_queue_overflows_total{listener="10.1.0.1:80",'
            'netns="%d",dropped="syn"}' % NS1: 1,
            'tcptrace_accept_queue_overflows_total{listener="10.1.0.1:80",'
            'netns="%d",dropped="ack"}' % NS1: 1,
            'tcptrace_accept_queue_overflows_total{listener="10.1.0.2:80",'
            'netns="%d",dropped="syn"}' % NS1: 1,
            'tcptrace_accept_queue_overflows_total{%s,dropped="syn"}' %
            other: 3,
            'tcptrace_syn_queue_overflows_total{%s}' % other: 0,
        }
        vals = scrape_until(port, want)
        bad = ["%s: %r" % (k, vals.get(k)) for k, v in want.items()
               if vals.get(k) != v]
        n = len({k.split(",dropped")[0] for k in vals
                 if k.startswith("tcptrace_accept_queue")})
        B.check("metrics: --max-listeners 2: two listeners and 'other'",
                not bad and n == 3, "; ".join(bad) + " %d label sets" % n)
    finally:
        stop(proc)
        dev.close()


def test_filters(tmp):
    dev = fake_device(tmp, "filters")
    port = free_port()
    proc = B.spawn(["metrics", "-l", "127.0.0.1:%d" % port, "-p", "8080",
                    "-n", str(NS1)], dev.env)
    try:
        wait_listening(port, proc)
        dev.write(state(ms(1), C, S, B.SYN_SENT, B.ESTABLISHED, 1) +
                  state(ms(2), C, ("10.0.0.1", 9090), B.SYN_SENT,
                        B.ESTABLISHED, 2) +
                  state(ms(3), C, S, B.SYN_SENT, B.ESTABLISHED, 3,
                        netns=NS2) +
                  lost(ms(4), 4))
        want = {'tcptrace_handshakes_completed_total{side="client"}': 1,
                "tcptrace_records_lost_total": 4}
        vals = scrape_until(port, want)
        B.check("metrics: -p and -n select the records counted",
                all(vals.get(k) == v for k, v in want.items()),
                repr({k: vals.get(k) for k in want}))
    finally:
        stop(proc)
        dev.close()


def test_ipv6_and_any(tmp):
    dev = fake_device(tmp, "v6")
    for arg, host, shown in ((":%d", "127.0.0.1", "[::]:%d"),
                             ("[::1]:%d", "[::1]", "[::1]:%d")):
        port = free_port()
        proc = B.spawn(["metrics", "--listen", arg % port], dev.env)
        try:
            time.sleep(0.3)
            try:
                status, _, _ = get(port, host=host)
            except OSError as e:
                status = str(e)
        finally:
            rc, err = stop(proc)
        B.check("metrics: --listen %s serves on %s" %
                (arg.replace("%d", "PORT"), host),
                status == 200 and rc == 0 and (shown % port) in err,
                "%r rc %r %r" % (status, rc, err))
    dev.close()


def test_errors(tmp):
    dev = fake_device(tmp, "errors")

    def err_of(args, env=None):
        p = B.run(["metrics"] + args, env=env or dev.env, timeout=10)
        return p.returncode, p.stderr.decode(), p.stdout.decode()

    cases = [
        ([], 2, "tcptracectl: metrics: missing --listen ADDR:PORT (where to "
         "serve /metrics, e.g. --listen :9464)\n"),
        (["--listen", "9464"], 2, "tcptracectl: metrics: invalid value "
         "'9464' for --listen: expected ADDR:PORT, e.g. 127.0.0.1:9464, "
         "[::1]:9464 or :9464\n"),
        (["--listen", "127.0.0.1:"], 2, "tcptracectl: metrics: invalid port "
         "'' in --listen '127.0.0.1:': expected a number from 1 to 65535\n"),
        (["--listen", "127.0.0.1:0"], 2, "tcptracectl: metrics: invalid "
         "port '0' in --listen '127.0.0.1:0': expected a number from 1 to "
         "65535\n"),
        (["--listen", "127.0.0.1:65536"], 2, "tcptracectl: metrics: invalid"
         " port '65536' in --listen '127.0.0.1:65536': expected a number "
         "from 1 to 65535\n"),
        (["--listen", "::1:9464"], 2, "tcptracectl: metrics: invalid value "
         "'::1:9464' for --listen: put an IPv6 address in brackets, e.g. "
         "[::1]:9464\n"),
        (["--listen", "[::1:9464"], 2, "tcptracectl: metrics: invalid value"
         " '[::1:9464' for --listen: expected ADDR:PORT, e.g. "
         "127.0.0.1:9464, [::1]:9464 or :9464\n"),
        (["--listen", "[10.0.0.1]:9464"], 2, None),
        (["--listen", ":9464", "--max-listeners", "0"], 2,
         "tcptracectl: invalid value '0' for --max-listeners: expected a "
         "number from 1 to 65536\n"),
        (["--listen", ":9464", "extra"], 2,
         "tcptracectl: metrics: unexpected argument 'extra'\n"),
        (["--bogus"], 2, "tcptracectl: metrics: unknown option '--bogus'\n"),
        (["--listen"], 2, "tcptracectl: metrics: option '--listen' requires"
         " an argument\n"),
        (["--listen", "192.0.2.1:%d" % free_port()], 1, None),
    ]
    for args, rc, msg in cases:
        got_rc, got_err, got_out = err_of(args)
        ok = got_rc == rc and not got_out and (
            got_err == msg if msg else got_err.count("\n") == 1)
        B.check("metrics %s: exit %d, %s" % (" ".join(args), rc,
                                             (msg or got_err).strip()[:60]),
                ok, "rc %d %r" % (got_rc, got_err))
    got_rc, got_err, _ = err_of(["--listen", "192.0.2.1:9464"])
    B.check("metrics: an address that is not the host's",
            got_rc == 1 and got_err == "tcptracectl: metrics: cannot listen "
            "on 192.0.2.1:9464: 192.0.2.1 is not an address of this host\n",
            got_err)

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    got_rc, got_err, _ = err_of(["--listen", "127.0.0.1:%d" % port])
    busy.close()
    B.check("metrics: a port in use",
            got_rc == 1 and got_err == "tcptracectl: metrics: cannot listen "
            "on 127.0.0.1:%d: port %d is already in use\n" % (port, port),
            got_err)

    got_rc, got_err, _ = err_of(["--listen", "127.0.0.1:%d" % free_port()],
                                env={"TCPTRACE_DEVICE": os.path.join(
                                    tmp, "no-such-device")})
    B.check("metrics: module not loaded, before listening",
            got_rc == 1 and got_err == "tcptracectl: tcptrace module not "
            "loaded: insmod module/tcptrace.ko\n", got_err)
    got_rc, got_err, _ = err_of(["--listen", ":%d" % free_port()],
                                env=dict(dev.env, TCPTRACE_FAKE_ABI="7"))
    B.check("metrics: ABI mismatch",
            got_rc == 1 and "ABI version mismatch" in got_err, got_err)

    # --duration ends it, exit 0
    t = time.monotonic()
    got_rc, got_err, _ = err_of(["--listen", "127.0.0.1:%d" % free_port(),
                                 "--duration", "0.5"])
    B.check("metrics: --duration 0.5 ends it with exit 0",
            got_rc == 0 and 0.4 < time.monotonic() - t < 5, got_err)
    dev.close()


def test_help():
    p = B.run(["metrics", "--help"])
    out = p.stdout.decode()
    B.check("metrics --help", p.returncode == 0 and
            out.startswith("Usage: tcptracectl metrics --listen ADDR:PORT") and
            "one reader at a time" in out and "EXAMPLES" in out, out[:200])
    p = B.run(["--help"])
    B.check("tcptracectl --help lists metrics",
            "\n  metrics   serve counters" in p.stdout.decode())


def guarded(fn, *args):
    try:
        fn(*args)
    except Exception:
        B.check("%s ends without an exception" % fn.__name__, False,
                traceback.format_exc().strip().splitlines()[-1])


def run(base, tmp):
    global B
    B = base
    tmp = os.path.join(tmp, "metrics")
    os.makedirs(tmp, exist_ok=True)
    guarded(test_help)
    if not B.FAKEDEV:
        print("skip metrics device tests: no fakedev.so given")
        return
    guarded(test_counts, tmp)
    guarded(test_listeners_cap, tmp)
    guarded(test_filters, tmp)
    guarded(test_ipv6_and_any, tmp)
    guarded(test_errors, tmp)
