#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Host tests of bench/report.py on made-up runs: medians and ratios, the
events-until-loss summary, each target's verdict at its bounds, and the
command line (a results file printed again, a bad file, a closed pipe).

    python3 bench/test_report.py

Ends with "N passed, N failed"; exits 1 on any failure.
"""
import io
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPORT = os.path.join(HERE, "report.py")
sys.path.insert(0, HERE)
import report  # noqa: E402

passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok   %s" % name)
    else:
        failed += 1
        print("FAIL %s%s" % (name, ": " + str(detail) if detail else ""))


def run(cond, link, rate, busy=800, total=1000, conns=10000, records=0,
        drops=0, secs=5.0, **extra):
    r = dict(cond=cond, link=link, rate=rate, busy_jiffies=busy,
             total_jiffies=total, conns=conns, records=records, drops=drops,
             secs=secs, errors=0)
    r.update(extra)
    return r


def lagging(behind_s, secs=5.0, out=1000000):
    """The fields of a tcptracectl reader that owed behind_s at the end."""
    return dict(out_bytes=out,
                out_bytes_at_end=round(out * (1 - behind_s / secs)),
                catch_up_s=0.1)


def test_summarise():
    runs = [run("baseline", "veth", r, busy=b, conns=c) for r, b, c in
            ((100, 500, 1000), (300, 900, 3000), (200, 400, 2000))]
    runs += [run("tcptrace+cat", "veth", 150, busy=600, conns=1500,
                 records=39000, drops=7, reader_user_ticks=3,
                 reader_sys_ticks=1, reader_preempted=50)]
    s = report.summarise(runs)
    b = s["baseline"]["veth"]
    check("median rate of three rounds", b["rate"] == 200, b)
    # busy jiffies at USER_HZ 100 -> us per connection: 5000, 3000, 2000
    check("median CPU us per connection", b["cpu_us_per_conn"] == 3000, b)
    check("busy fraction", b["cpu_busy"] == 0.5, b)
    check("baseline ratio 1", b["rate_ratio"] == 1.0 and
          b["cpu_ratio"] == 1.0, b)
    c = s["tcptrace+cat"]["veth"]
    check("rate ratio to the baseline", c["rate_ratio"] == 0.75, c)
    check("CPU ratio to the baseline", c["cpu_us_per_conn"] == 4000 and
          c["cpu_ratio"] == round(4000 / 3000, 3), c)
    check("records per connection and drops", c["records_per_conn"] == 26
          and c["drops"] == 7, c)
    check("reader's own time per connection",
          c["reader_user_us_per_conn"] == 20.0 and
          c["reader_sys_us_per_conn"] == 6.7 and
          c["reader_preempted_per_s"] == 10, c)
    check("no lag fields without output counts", "behind_s" not in c, c)
    check("no link without runs", "lo" not in s["baseline"], s)


def test_round_ranges():
    runs = [run("baseline", "veth", r, round=n) for n, r in
            ((1, 1000), (2, 2000), (3, 1500))]
    runs += [run("tcptrace+cat", "veth", r, round=n) for n, r in
             ((1, 900), (2, 1500), (3, 1350))]
    # a round whose baseline did not run is left out
    runs += [run("tcptrace+cat", "veth", 10, round=4)]
    runs += [run("tcptrace+cat", "lo", 500, round=1)]
    s = report.summarise(runs)
    c = s["tcptrace+cat"]["veth"]
    # 0.9, 0.75, 0.9: paired by round, not by the medians (1350 / 1500)
    check("each round's ratio to its own baseline: lowest and highest",
          c["rate_ratio_rounds"] == [0.75, 0.9], c)
    check("none for the baseline itself",
          "rate_ratio_rounds" not in s["baseline"]["veth"], s["baseline"])
    check("none without a baseline on the link",
          "rate_ratio_rounds" not in s["tcptrace+cat"]["lo"], s)
    s = report.summarise([run("baseline", "veth", 1000),
                          run("tcptrace+cat", "veth", 900)])
    check("none for runs without round numbers",
          "rate_ratio_rounds" not in s["tcptrace+cat"]["veth"], s)
    with tempfile.TemporaryDirectory() as tmp:
        # a results file written before the ranges: --table adds them
        res = dict(meta=dict(kernel="k", cpus=2, rounds=3, secs=5, procs=2),
                   summary=report.summarise(runs), runs=runs)
        del res["summary"]["tcptrace+cat"]["veth"]["rate_ratio_rounds"]
        old = os.path.join(tmp, "old.json")
        with open(old, "w") as f:
            json.dump(res, f)
        p = subprocess.run([sys.executable, REPORT, "--table", old],
                           capture_output=True, text=True)
        check("--table prints the ranges of an older file",
              p.returncode == 0 and re.search(
                  r"^tcptrace\+cat +veth +[\d.]+ +[\d.]+ +0\.750-0\.900 ",
                  p.stdout, re.M) and re.search(
                  r"^baseline +veth +1500\.0 +1\.000 +- ", p.stdout, re.M),
              p.stdout + p.stderr)


def test_loss():
    steps = [dict(part="loss", buf_records=4096, procs=p, rate=r,
                  records=rec, drops=d, secs=5.0, conns=int(r * 5),
                  errors=0)
             for p, r, rec, d in ((1, 1000, 100000, 0), (2, 1500, 150000, 0),
                                  (4, 1800, 180000, 900),
                                  (8, 1700, 170000, 1700),
                                  (16, 1600, 160000, 3200))]
    lo = report.loss_summary(steps)["4096"]
    check("highest rate with no drop", lo["max_rate_no_drop"] == 1500, lo)
    check("records/s at it", lo["max_records_per_s_no_drop"] == 30000, lo)
    # 0.5% at 1800 is not 1%; 1% at 1700 and 2% at 1600: the lower rate
    check("first rate with 1% drops", lo["rate_at_1pct_drops"] == 1600, lo)
    check("drop percentage", [e["drop_pct"] for e in lo["steps"]] ==
          [0, 0, 0.5, 1.0, 2.0], lo["steps"])
    clean = report.loss_summary([dict(steps[0])])["4096"]
    check("1% never reached", clean["rate_at_1pct_drops"] is None, clean)


def targets_of(runs, loss_steps=()):
    s = report.summarise(runs)
    return report.targets(s, report.loss_summary(list(loss_steps)))


def base():
    return [run("baseline", link, 1000, busy=500, conns=5000)
            for link in report.LINKS]


def test_rate_target():
    key = "tcptrace+reader keeps >=95% of veth rate"
    t = targets_of(base() + [run("tcptrace+reader", "veth", 950,
                                 **lagging(0.25))])
    check("95% and 0.25 s behind: met", t[key]["met"], t[key])
    check("its detail", "ratio 0.950, kept up (0.25 s behind" in
          t[key]["detail"], t[key])
    t = targets_of(base() + [run("tcptrace+reader", "veth", 949,
                                 **lagging(0))])
    check("94.9%: missed", not t[key]["met"], t[key])
    t = targets_of(base() + [run("tcptrace+reader", "veth", 1000,
                                 **lagging(0.3))])
    check("a reader 0.3 s behind: missed at any rate", not t[key]["met"] and
          "FELL BEHIND" in t[key]["detail"], t[key])
    t = targets_of(base() + [run("tcptrace+cat", "veth", 960)])
    key = "tcptrace+cat keeps >=95% of veth rate"
    check("cat has no lag to meet", t[key]["met"] and
          t[key]["detail"] == "ratio 0.960", t[key])
    t = targets_of(base() + [run("tcptrace+cat", "lo", 960)])
    check("no veth run: no verdict", key not in t, t)


def test_median_ci():
    ci = report.median_ci([5, 1, 4, 2, 3])
    check("5 rounds: the lowest and the highest, 93.75%",
          ci == (1, 5, 0.9375), ci)
    check("4 rounds: too few for 90%", report.median_ci([1, 2, 3, 4]) is None)
    ci = report.median_ci(list(range(15, 0, -1)))
    # P(Bin(15, 1/2) <= 3) = 0.0176, <= 4: 0.0592
    check("15 rounds: the 4th lowest and the 4th highest, 96.5%",
          ci[:2] == (4, 12) and abs(ci[2] - 0.96484375) < 1e-9, ci)
    ci = report.median_ci(list(range(15)), conf=0.5)
    check("a lower confidence narrows it", ci[:2] == (5, 9), ci)


def rounds(cond, ratios, **extra):
    """Runs of cond on veth, one per round, at these ratios to a baseline
    of 1000 in every round."""
    out = []
    for n, q in enumerate(ratios, 1):
        out.append(run("baseline", "veth", 1000, round=n))
        out.append(run(cond, "veth", 1000 * q, round=n, **extra))
    return out


def test_rate_target_rounds():
    key = "tcptrace+reader keeps >=95% of veth rate"
    t = targets_of(rounds("tcptrace+reader", (0.95, 0.97, 0.99, 1.0, 0.96),
                          **lagging(0)))[key]
    check("every round at 95% or more: met", t["met"] and
          "undecided" not in t and "rounds' ratios: median 0.970, 94% "
          "interval 0.950-1.000" in t["detail"], t)
    t = targets_of(rounds("tcptrace+reader", (0.90, 0.97, 0.99, 1.0, 0.96),
                          **lagging(0)))[key]
    check("a median over 95% with a round under it: undecided, not met",
          not t["met"] and t.get("undecided") and
          "ratio 0.970" in t["detail"], t)
    t = targets_of(rounds("tcptrace+reader", (0.80, 0.85, 0.90, 0.94, 0.96),
                          **lagging(0)))[key]
    check("a median under 95% with a round over it: undecided too",
          not t["met"] and t.get("undecided"), t)
    t = targets_of(rounds("tcptrace+reader", (0.80, 0.85, 0.90, 0.94, 0.949),
                          **lagging(0)))[key]
    check("every round under 95%: missed", not t["met"] and
          "undecided" not in t, t)
    t = targets_of(rounds("tcptrace+reader", (0.95, 0.97, 0.99, 1.0, 0.96),
                          **lagging(0.3)))[key]
    check("a reader that fell behind: missed, whatever the rounds",
          not t["met"] and "undecided" not in t, t)
    t = targets_of(rounds("tcptrace+cat", (0.96, 0.97, 0.99, 1.0)))
    t = t["tcptrace+cat keeps >=95% of veth rate"]
    check("4 rounds: no interval, the ratio of the medians decides",
          t["met"] and "interval" not in t["detail"], t)
    with tempfile.TemporaryDirectory() as tmp:
        runs = rounds("tcptrace+reader", (0.90, 0.97, 0.99, 1.0, 0.96),
                      **lagging(0))
        s = report.summarise(runs)
        res = dict(meta=dict(kernel="k", cpus=2, rounds=5, secs=5, procs=2),
                   summary=s, runs=runs, targets=report.targets(s, {}))
        path = os.path.join(tmp, "r.json")
        with open(path, "w") as f:
            json.dump(res, f)
        p = subprocess.run([sys.executable, REPORT, "--table", path],
                           capture_output=True, text=True)
        check("--table prints UNDECIDED", p.returncode == 0 and re.search(
            r"target tcptrace\+reader keeps >=95% of veth rate +UNDECIDED  "
            r"ratio 0\.970", p.stdout), p.stdout + p.stderr)


def test_cheaper_by_rounds():
    key = "tcptrace+cat cheaper than tcpdump"

    def verdict(cat, dump, links=("veth",)):
        """cat, dump: (rate, busy) per round, the same on every link"""
        runs = []
        for link in links:
            for n, ((r1, b1), (r2, b2)) in enumerate(zip(cat, dump), 1):
                runs.append(run("baseline", link, 1000, round=n))
                runs.append(run("tcptrace+cat", link, r1, busy=b1,
                                conns=5000, round=n))
                runs.append(run("tcpdump", link, r2, busy=b2, conns=5000,
                                round=n))
        return targets_of(runs)[key]

    same = [(900, 500)] * 5
    t = verdict([(900, 500), (950, 500), (910, 500), (990, 500), (905, 500)],
                same)
    check("rounds: a rate at or over the other's in every round: met",
          t["met"] and "undecided" not in t and
          "rate x1.00-1.10, CPU x1.00-1.00" in t["detail"], t)
    t = verdict([(800, 600), (990, 400), (850, 550), (950, 450), (870, 520)],
                same)
    check("rounds: both intervals hold 1: undecided, not met",
          not t["met"] and t.get("undecided"), t)
    t = verdict([(800, 480), (990, 450), (850, 480), (950, 450), (870, 490)],
                same)
    check("rounds: the rate's holds 1, less CPU in every round: met",
          t["met"] and "undecided" not in t, t)
    t = verdict([(800, 600), (890, 510), (850, 550), (880, 520), (870, 520)],
                same)
    check("rounds: a lower rate and more CPU in every round: missed",
          not t["met"] and "undecided" not in t, t)
    t = verdict([(900, 500)] * 4, [(900, 500)] * 4)
    check("4 rounds: no intervals, the medians decide",
          t["met"] and "rounds" not in t["detail"], t)


def test_bar_95():
    runs = rounds("tcptrace+cat", (0.96, 0.97, 0.99, 1.0, 0.96))
    runs += [r for r in rounds("tcpdump", (0.97, 0.93, 0.96, 0.92, 0.91))
             + rounds("ftrace", (0.7, 0.71, 0.69, 0.72, 0.7))
             if r["cond"] != "baseline"]
    s = report.summarise(runs)
    bar = report.bar_95(s)
    check("bar_95: every condition against 0.95, in the table's order",
          [(c, m, side) for c, m, ci, side in bar] ==
          [("tcptrace+cat", 0.97, "over"), ("ftrace", 0.7, "under"),
           ("tcpdump", 0.93, "holds 0.95")] and
          bar[2][2] == (0.91, 0.97, 0.9375), bar)
    check("bar_95: under 5 rounds, nothing",
          report.bar_95(report.summarise(
              rounds("tcptrace+cat", (0.96, 0.97, 0.99, 1.0)))) == [])
    out = io.StringIO()
    report.print_tables(dict(meta=dict(kernel="k", cpus=2, rounds=5, secs=5,
                                       procs=2), summary=s, bar=bar), out)
    check("bar_95: printed", "the >= 95% bar on veth, every condition" in
          out.getvalue() and "  tcpdump            median 0.930, 94% "
          "interval 0.910-0.970: holds 0.95\n" in out.getvalue(),
          out.getvalue())


def test_pool():
    def results(ratios):
        runs = rounds("tcptrace+reader", ratios, **lagging(0))
        sm = report.summarise(runs)
        return dict(meta=dict(kernel="k", cpus=2, rounds=len(ratios), secs=5,
                              procs=2), summary=sm, runs=runs,
                    targets=report.targets(sm, {}))

    a = results((0.90, 0.97, 0.96, 0.99))
    b = results((0.96, 0.98, 0.95, 0.97))
    p = report.pool([a, b])
    s = p["summary"]["tcptrace+reader"]["veth"]
    check("pool: rounds kept apart, paired within each file",
          sorted(r["round"] for r in p["runs"]
                 if r["cond"] == "baseline") ==
          [1, 2, 3, 4, 1001, 1002, 1003, 1004] and
          s["rate_ratio_rounds"] == [0.9, 0.99], s)
    t = p["targets"]["tcptrace+reader keeps >=95% of veth rate"]
    # 8 rounds: the 2nd lowest and 2nd highest, 0.95 and 0.98
    check("pool: 8 rounds decide what 4 and 4 could not",
          t["met"] and "interval 0.950-0.980" in t["detail"] and
          p["meta"]["rounds"] == 8 and p["meta"]["pooled"] == 2, t)
    check("pool: the files themselves are left as they were",
          [r["round"] for r in a["runs"]][:2] == [1, 1], a["runs"][:2])
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, res in enumerate((a, b)):
            paths.append(os.path.join(tmp, "r%d.json" % i))
            with open(paths[-1], "w") as f:
                json.dump(res, f)
        q = subprocess.run([sys.executable, REPORT, "--pool"] + paths,
                           capture_output=True, text=True)
        check("--pool prints the pooled table and its targets",
              q.returncode == 0 and "8 rounds of 5 s, 2 client processes, "
              "2 runs pooled" in q.stdout and re.search(
                  r"target tcptrace\+reader keeps >=95% of veth rate +met",
                  q.stdout), q.stdout + q.stderr)
        check("--pool prints where every condition stands against 0.95",
              "the >= 95% bar on veth, every condition" in q.stdout and
              "  tcptrace+reader    median 0.965, 93% interval 0.950-0.980: "
              "over\n" in q.stdout, q.stdout)
        check("--pool: files of the same settings, no warning",
              q.stderr == "", q.stderr)
        b["meta"]["secs"] = 10
        with open(paths[1], "w") as f:
            json.dump(b, f)
        q = subprocess.run([sys.executable, REPORT, "--pool"] + paths,
                           capture_output=True, text=True)
        check("--pool warns of a file run with other settings",
              q.returncode == 0 and q.stderr ==
              "report.py: warning: %s has secs 10, %s has 5\n" % (
                  paths[1], paths[0]), q.stderr)
        bad = os.path.join(tmp, "bad.json")
        with open(bad, "w") as f:
            f.write("{}")
        q = subprocess.run([sys.executable, REPORT, "--pool", paths[0], bad],
                           capture_output=True, text=True)
        check("--pool names a file that is not a results file",
              q.returncode == 2 and q.stderr.startswith(
                  "report.py: %s is not a results file" % bad) and
              "Traceback" not in q.stderr, q.stderr)


def test_cheaper_target():
    key = "tcptrace+cat cheaper than tcpdump"

    def verdict(cat, dump):
        runs = base()
        for link, (rate, busy) in zip(report.LINKS, cat):
            runs.append(run("tcptrace+cat", link, rate, busy=busy,
                            conns=5000))
        for link, (rate, busy) in zip(report.LINKS, dump):
            runs.append(run("tcpdump", link, rate, busy=busy, conns=5000))
        return targets_of(runs)[key]

    t = verdict(((900, 500), (900, 500)), ((900, 500), (900, 500)))
    check("equal cost counts as cheaper", t["met"], t)
    t = verdict(((950, 600), (950, 600)), ((900, 500), (900, 500)))
    check("a higher rate is enough", t["met"], t)
    t = verdict(((850, 450), (850, 450)), ((900, 500), (900, 500)))
    check("less CPU per connection is enough", t["met"], t)
    t = verdict(((900, 500), (850, 550)), ((900, 500), (900, 500)))
    check("dearer on one link: missed", not t["met"], t)
    check("both links in the detail", t["detail"] ==
          "veth 900 vs 900 conn/s, 1000 vs 1000 us/conn; "
          "lo 850 vs 900 conn/s, 1100 vs 1000 us/conn", t["detail"])
    t = targets_of(base() + [run("tcptrace+cat", "veth", 900)])
    check("no other tracer: no verdict", key not in t, t)


def test_drop_targets():
    part1 = "no drop, watch --json, default ring (part 1)"
    ramp = "no drop, watch --json, default ring (ramp)"
    step = dict(part="loss", buf_records=4096, procs=8, rate=2000,
                records=200000, secs=5.0, conns=10000, errors=0)
    runs = base() + [run("tcptrace+reader", link, 900, **lagging(0))
                     for link in report.LINKS]
    t = targets_of(runs, [dict(step, drops=0)])
    check("no drop anywhere: both met", t[part1]["met"] and t[ramp]["met"],
          t)
    t = targets_of(runs[:-1] + [run("tcptrace+reader", "lo", 900, drops=1,
                                    **lagging(0))], [dict(step, drops=0)])
    check("one drop in part 1: missed", not t[part1]["met"] and
          t[part1]["detail"].startswith("1 drops"), t[part1])
    t = targets_of(runs, [dict(step, drops=0),
                          dict(step, procs=16, drops=1)])
    check("one drop in the ramp: missed", not t[ramp]["met"], t[ramp])
    t = targets_of(runs, [dict(step, buf_records=65536, drops=5)])
    check("drops with a larger ring do not count", ramp not in t, t)


def test_cli():
    with tempfile.TemporaryDirectory() as tmp:
        runs = os.path.join(tmp, "runs.jsonl")
        extra = os.path.join(tmp, "extra.jsonl")
        out = os.path.join(tmp, "out.json")
        with open(runs, "w") as f:
            for r in base() + [run("tcptrace+cat", "veth", 960,
                                   records=130000)]:
                f.write(json.dumps(r) + "\n")
        open(extra, "w").close()
        p = subprocess.run([sys.executable, REPORT, "--runs", runs,
                            "--extra", extra, "--meta",
                            json.dumps(dict(kernel="k", cpus=2, rounds=1,
                                            secs=5, procs=2)),
                            "--out", out], capture_output=True, text=True)
        check("report writes the JSON", p.returncode == 0 and
              os.path.exists(out), p.stderr)
        p = subprocess.run([sys.executable, REPORT, "--table", out],
                           capture_output=True, text=True)
        check("--table prints the targets again", p.returncode == 0 and
              re.search(r"^target tcptrace\+cat keeps >=95% of veth rate +"
                        r"met +ratio 0\.960$", p.stdout, re.M),
              p.stdout + p.stderr)
        missing = os.path.join(tmp, "nonexistent.json")
        p = subprocess.run([sys.executable, REPORT, "--table", missing],
                           capture_output=True, text=True)
        check("a missing file: exit 2 and one line",
              p.returncode == 2 and "Traceback" not in p.stderr and
              p.stderr.startswith("report.py: cannot read %s:" % missing),
              (p.returncode, p.stderr))
        bad = os.path.join(tmp, "bad.json")
        with open(bad, "w") as f:
            f.write("{not json")
        p = subprocess.run([sys.executable, REPORT, "--table", bad],
                           capture_output=True, text=True)
        check("a file that is not JSON: exit 2 and one line",
              p.returncode == 2 and "Traceback" not in p.stderr and
              p.stderr.startswith("report.py: %s is not a results file" %
                                  bad), (p.returncode, p.stderr))
        p = subprocess.run([sys.executable, REPORT], capture_output=True,
                           text=True)
        check("no argument: usage, exit 2", p.returncode == 2 and
              "usage:" in p.stderr, (p.returncode, p.stderr))
    # the reader of the output goes away early (| head -1)
    p = subprocess.run("%s %s --table %s | head -1" % (
        sys.executable, REPORT, os.path.join(HERE, "results.json")),
        shell=True, capture_output=True, text=True)
    check("a closed pipe: no traceback", "Traceback" not in p.stderr and
          p.stdout.startswith("tcptrace benchmark:"), p.stderr)


def test_bar_old_files():
    """A results file made before the intervals keeps its verdicts, and
    --table prints no bar for it: both come from the summary it holds."""
    runs = rounds("tcptrace+cat", (0.96, 0.97, 0.99, 1.0, 0.96))
    s = report.summarise(runs)
    for c in s.values():
        for link in c.values():
            for k in ("rate_ratio_ci", "rate_ratio_ci_conf",
                      "rate_ratio_paired", "by_round"):
                link.pop(k, None)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "old.json")
        with open(path, "w") as f:
            json.dump(dict(meta=dict(kernel="k", cpus=2, rounds=5, secs=5,
                                     procs=2), summary=s, runs=runs), f)
        p = subprocess.run([sys.executable, REPORT, "--table", path],
                           capture_output=True, text=True)
        check("--table of a file made before the intervals: no bar",
              p.returncode == 0 and "tcptrace+cat keeps >=95%" in p.stdout
              and "bar on veth" not in p.stdout, p.stdout + p.stderr)


def test_committed_results():
    for name in sorted(os.listdir(HERE)):
        if not (name.startswith("results") and name.endswith(".json")):
            continue
        with open(os.path.join(HERE, name)) as f:
            res = json.load(f)
        t = report.targets(res["summary"], res.get("loss") or {})
        check("%s: its targets as report.py computes them" % name,
              t == res["targets"], name)


def main():
    test_summarise()
    test_round_ranges()
    test_loss()
    test_rate_target()
    test_median_ci()
    test_rate_target_rounds()
    test_cheaper_target()
    test_cheaper_by_rounds()
    test_bar_95()
    test_pool()
    test_drop_targets()
    test_cli()
    test_bar_old_files()
    test_committed_results()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
