#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Summarise the runs of bench/run.sh: print the tables, write the JSON.

    report.py --runs RUNS.jsonl --extra EXTRA.jsonl --meta JSON --out FILE
    report.py --table FILE          print the tables of a results file again
    report.py --pool FILE...        part 1 and its targets, the rounds of
                                    several runs (of the same code) together

Medians over the rounds of each condition and link; ratios are to the
baseline's median of the same run, and "rounds" gives the lowest and the
highest ratio of one round's rate to that round's baseline.  CPU time per connection is the busy
time of all guest CPUs (/proc/stat, USER_HZ 100) over a run divided by the
connections of the run.

The >= 95% targets are decided by the rounds when there are 5 or more: the
median of the rounds' ratios has a confidence interval (at least 90%,
from the ranks alone, see median_ci()); met when all of it is at or over
0.95, missed when all of it is under, undecided when it holds 0.95.  So
are the "cheaper than" targets, round by round against the other tracer:
cheaper when the interval of the rate ratio is all at or over 1 or that
of the CPU per connection all at or under 1, dearer when neither can be.
After the targets, where every condition stands against the same 0.95
on veth (bar_95()).
"""
import argparse
import json
import math
import signal
import statistics
import sys

USER_HZ = 100
CONDS = ["baseline", "tcptrace-filtered", "tcptrace", "tcptrace+cat",
         "tcptrace+reader", "tcptrace+reader-fg", "alt", "alt+cat",
         "alt+reader", "ftrace", "bpftrace", "tcpdump"]
READERS = ["tcptrace+reader", "tcptrace+reader-fg", "alt+reader"]
# A reader kept up when, at the end of a run, the output it still owed was
# at most this many seconds' worth of the run's (a formatting thread in the
# background may lag; it must not defer its work past the measurement)
KEPT_UP_S = 0.25
LINKS = ["veth", "lo"]


def median(xs):
    return statistics.median(xs) if xs else None


# the confidence asked of the interval around a median of the rounds
CI_CONF = 0.90


def median_ci(xs, conf=CI_CONF):
    """A confidence interval of the median of xs that assumes nothing of
    their distribution: the k-th lowest and the k-th highest of them, for
    the largest k with P(Binomial(n, 1/2) < k) <= (1 - conf) / 2.  Returns
    (low, high, its confidence), or None when there are too few (under 5
    for 0.90: even the lowest and the highest are not enough)."""
    n, ys = len(xs), sorted(xs)
    k, below = 0, 0.0
    while k < n:
        p = below + math.comb(n, k) / 2 ** n
        if p > (1 - conf) / 2:
            break
        below, k = p, k + 1
    if k == 0:
        return None
    return ys[k - 1], ys[n - k], 1 - 2 * below


def summarise(runs):
    out = {}
    for cond in CONDS:
        for link in LINKS:
            rs = [r for r in runs if r["cond"] == cond and r["link"] == link]
            if not rs:
                continue
            rate = median([r["rate"] for r in rs])
            cpu = median([r["busy_jiffies"] * 1e6 / USER_HZ / r["conns"]
                          for r in rs if r["conns"]])
            busy = median([r["busy_jiffies"] / r["total_jiffies"]
                           for r in rs if r["total_jiffies"]])
            rpc = median([r["records"] / r["conns"] for r in rs
                          if r["conns"]])
            out.setdefault(cond, {})[link] = {
                "rounds": len(rs),
                "rate": round(rate, 1),
                "cpu_us_per_conn": round(cpu) if cpu is not None else None,
                "cpu_busy": round(busy, 3) if busy is not None else None,
                "records_per_conn": round(rpc, 2) if rpc is not None else None,
                "drops": sum(r["drops"] for r in rs),
                "records": sum(r["records"] for r in rs),
                "errors": sum(r["errors"] for r in rs),
                "rates": [r["rate"] for r in rs],
            }
            # [round, rate, CPU us per connection]: to pair two tracers
            paired = [[r["round"], r["rate"],
                       r["busy_jiffies"] * 1e6 / USER_HZ / r["conns"]]
                      for r in rs if "round" in r and r["conns"]]
            if paired:
                out[cond][link]["by_round"] = paired
            own = [r for r in rs if "reader_user_ticks" in r and r["conns"]]
            if own:
                out[cond][link].update(
                    reader_user_us_per_conn=round(median([
                        r["reader_user_ticks"] * 1e6 / USER_HZ / r["conns"]
                        for r in own]), 1),
                    reader_sys_us_per_conn=round(median([
                        r["reader_sys_ticks"] * 1e6 / USER_HZ / r["conns"]
                        for r in own]), 1),
                    reader_preempted_per_s=round(median([
                        r["reader_preempted"] / r["secs"] for r in own])))
            lag = [r for r in rs if r.get("out_bytes")]
            if lag:
                behind = [(1 - r["out_bytes_at_end"] / r["out_bytes"]) *
                          r["secs"] for r in lag]
                out[cond][link].update(
                    out_at_end=round(median([
                        r["out_bytes_at_end"] / r["out_bytes"]
                        for r in lag]), 4),
                    behind_s=round(median(behind), 3),
                    behind_max_s=round(max(behind), 3),
                    catch_up_s=median([r["catch_up_s"] for r in lag]))
    for cond, links in out.items():
        for link, s in links.items():
            base = out.get("baseline", {}).get(link)
            if not base:
                continue
            s["rate_ratio"] = round(s["rate"] / base["rate"], 3)
            if s["cpu_us_per_conn"] and base["cpu_us_per_conn"]:
                s["cpu_ratio"] = round(s["cpu_us_per_conn"] /
                                       base["cpu_us_per_conn"], 3)
    add_round_ranges(out, runs)
    return out


def add_round_ranges(summary, runs):
    """Each round's rate over the baseline's of the same round and link:
    the lowest and highest of them, as rate_ratio_rounds.  The conditions
    of a round run one after the other, so this pairing leaves out the
    drift between rounds; its spread is the noise a ratio carries."""
    for link in LINKS:
        base = {r["round"]: r["rate"] for r in runs
                if r["cond"] == "baseline" and r["link"] == link and
                "round" in r and r["rate"]}
        for cond, links in summary.items():
            s = links.get(link)
            if not s or cond == "baseline":
                continue
            rs = [r["rate"] / base[r["round"]] for r in runs
                  if r["cond"] == cond and r["link"] == link and
                  r.get("round") in base]
            if rs:
                s["rate_ratio_rounds"] = [round(min(rs), 3),
                                          round(max(rs), 3)]
                s["rate_ratio_paired"] = round(median(rs), 3)
                ci = median_ci(rs)
                if ci:
                    s["rate_ratio_ci"] = [round(ci[0], 3), round(ci[1], 3)]
                    s["rate_ratio_ci_conf"] = round(ci[2], 4)


def loss_summary(extra):
    steps = [e for e in extra if e.get("part") == "loss"]
    out = {}
    for buf in sorted({e["buf_records"] for e in steps}):
        rows = [e for e in steps if e["buf_records"] == buf]
        for e in rows:
            total = e["records"]
            e["drop_pct"] = round(100.0 * e["drops"] / total, 3) if total else 0
            e["records_per_s"] = round(total / e["secs"]) if e["secs"] else 0
        clean = [e for e in rows if e["drops"] == 0]
        lossy = sorted([e for e in rows if e["drop_pct"] >= 1],
                       key=lambda e: e["rate"])
        out[str(buf)] = {
            "steps": rows,
            "max_rate_no_drop": max([e["rate"] for e in clean], default=None),
            "max_records_per_s_no_drop":
                max([e["records_per_s"] for e in clean], default=None),
            "max_rate": max(e["rate"] for e in rows),
            "rate_at_1pct_drops": lossy[0]["rate"] if lossy else None,
        }
    return out


def fmt(v, spec="{:.0f}"):
    return "-" if v is None else spec.format(v)


def print_tables(res, f=sys.stdout):
    m = res["meta"]
    print("tcptrace benchmark: %s, %d CPUs (TCG), %d rounds of %s s, "
          "%d client processes%s" % (
              m["kernel"], m["cpus"], m["rounds"], m["secs"], m["procs"],
              ", %d runs pooled" % m["pooled"] if m.get("pooled") else ""),
          file=f)
    if "clocksource" in m:
        cc = m.get("clockcheck", {})
        print("clocksource %s (%d cross-CPU clock reads, %d backwards)%s" %
              (m["clocksource"], cc.get("cross_cpu", 0), cc.get("warps", 0),
               ", QEMU -accel " + m["accel"] if m.get("accel") else ""),
              file=f)
    if m.get("alt_ko"):
        print("alt, alt+cat, alt+reader: the module %s" % m["alt_ko"], file=f)
    print("", file=f)
    hdr = ("%-18s %-4s %8s %6s %11s %9s %6s %5s %8s %7s" %
           ("condition", "link", "conn/s", "ratio", "rounds", "cpu_us/c",
            "ratio", "busy", "rec/conn", "drops"))
    print(hdr, file=f)
    print("-" * len(hdr), file=f)
    for link in LINKS:
        for cond in CONDS:
            s = res["summary"].get(cond, {}).get(link)
            if not s:
                if link == LINKS[0] and cond in res.get("skipped", {}):
                    print("%-18s skipped: %s" % (cond, res["skipped"][cond]),
                          file=f)
                continue
            rr = s.get("rate_ratio_rounds")
            print("%-18s %-4s %8.1f %6s %11s %9s %6s %5s %8s %7d" % (
                cond, link, s["rate"], fmt(s.get("rate_ratio"), "{:.3f}"),
                "%.3f-%.3f" % tuple(rr) if rr else "-",
                fmt(s["cpu_us_per_conn"]), fmt(s.get("cpu_ratio"), "{:.3f}"),
                fmt(s["cpu_busy"], "{:.2f}"),
                fmt(s["records_per_conn"], "{:.1f}"), s["drops"]), file=f)
    own = [(c, l, res["summary"][c][l]) for l in LINKS for c in CONDS
           if "reader_user_us_per_conn" in res["summary"].get(c, {}).get(l, {})]
    if own:
        print("", file=f)
        print("the reader's own CPU time (its threads' user and system time, "
              "the run and its catch-up), median of the rounds:", file=f)
        for c, l, s in own:
            base = res["summary"].get("baseline", {}).get(l, {})
            bcpu = base.get("cpu_us_per_conn")
            tot = s["reader_user_us_per_conn"] + s["reader_sys_us_per_conn"]
            print("  %-18s %-4s user %5.1f + system %5.1f = %5.1f us per "
                  "connection%s; preempted %d times/s" % (
                      c, l, s["reader_user_us_per_conn"],
                      s["reader_sys_us_per_conn"], tot,
                      " (%.1f%% of the baseline's CPU)" % (100 * tot / bcpu)
                      if bcpu else "", s["reader_preempted_per_s"]), file=f)
    lags = [(c, l, res["summary"][c][l]) for c in READERS for l in LINKS
            if "catch_up_s" in res["summary"].get(c, {}).get(l, {})]
    if lags:
        print("", file=f)
        print("the readers' output at the end of each run (watch --json, "
              "bytes written), median of the rounds:", file=f)
        for c, l, s in lags:
            print("  %-18s %-4s %5.1f%% written: %.2f s of the run behind "
                  "(at most %.2f s), the rest %.2f s after" % (
                      c, l, 100 * s["out_at_end"], s["behind_s"],
                      s["behind_max_s"], s["catch_up_s"]), file=f)
    loss = res.get("loss") or {}
    if loss:
        print("", file=f)
        print("events until loss (veth, tcptracectl watch --json reading):",
              file=f)
        print("%-11s %5s %8s %9s %7s %7s" % ("buf_records", "procs",
              "conn/s", "records/s", "drops", "drop%"), file=f)
        for buf, s in loss.items():
            for e in s["steps"]:
                print("%-11s %5d %8.1f %9d %7d %7.2f" % (
                    buf, e["procs"], e["rate"], e["records_per_s"],
                    e["drops"], e["drop_pct"]), file=f)
        for buf, s in loss.items():
            print("buf_records=%s: highest rate with no drop %s conn/s "
                  "(%s records/s); 1%% drops at %s" % (
                      buf, fmt(s["max_rate_no_drop"], "{:.1f}"),
                      fmt(s["max_records_per_s_no_drop"]),
                      "not reached (max %.1f conn/s)" % s["max_rate"]
                      if s["rate_at_1pct_drops"] is None
                      else "%.1f conn/s" % s["rate_at_1pct_drops"]), file=f)
    reads = res.get("read") or []
    if reads:
        print("", file=f)
        print("read() throughput, rings filled beforehand:", file=f)
        for r in reads:
            print("  %-26s buffer %8d B: %9d records/s (%d records)" % (
                r["reader"], r["bufsize"], r["rate"], r["records"]), file=f)
    fm = res.get("format")
    if fm:
        print("", file=f)
        print("formatting alone (%s, %d records of the same workload): "
              "%.2f us of CPU per record (%.3f s in all, %.3f s of it to "
              "start and end)" % (fm["reader"], fm["records"],
                                  fm["us_per_record"], fm["cpu_s"],
                                  fm.get("cpu_empty_s", 0)), file=f)
        if "user_us_per_record" in fm:
            print("  of it user %.2f us, system %.2f us (the file's read(), "
                  "and the page faults of the memory the connections' "
                  "state first takes)" % (fm["user_us_per_record"],
                                          fm["sys_us_per_record"]), file=f)
        for link in LINKS:
            rdr = res["summary"].get("tcptrace+reader", {}).get(link)
            base = res["summary"].get("baseline", {}).get(link)
            if not rdr or not base or not base["cpu_us_per_conn"]:
                continue
            per_conn = fm["us_per_record"] * rdr["records_per_conn"]
            print("  %-4s %.1f records per connection: %.0f us per "
                  "connection, %.1f%% of the baseline's %d us" % (
                      link, rdr["records_per_conn"], per_conn,
                      100 * per_conn / base["cpu_us_per_conn"],
                      base["cpu_us_per_conn"]), file=f)
    mem = res.get("memory")
    if mem:
        print("", file=f)
        for when in ("at_rest", "under_load"):
            s = mem[when]
            print("memory %-10s: %s" % (when.replace("_", " "), ", ".join(
                "%s %s" % (k, s[k]) for k in ("ring_bytes", "expect_bytes",
                                              "expect_slots", "expect_used",
                                              "queued") if k in s)), file=f)
    t = res.get("targets")
    if t:
        print("", file=f)
        for name, v in t.items():
            print("target %-45s %s  %s" % (
                name, "met      " if v["met"] else "UNDECIDED"
                if v.get("undecided") else "MISSED   ", v["detail"]),
                  file=f)
    bar = res.get("bar")
    if bar:
        print("", file=f)
        print("the >= 95% bar on veth, every condition (the rounds' ratios "
              "to their own baseline):", file=f)
        for cond, med, ci, side in bar:
            print("  %-18s median %.3f, %.0f%% interval %.3f-%.3f: %s" % (
                cond, med, 100 * ci[2], ci[0], ci[1], side), file=f)


def bar_95(summary):
    """Where every condition stands against the 0.95 of the rate target,
    on veth, by the rounds (5 or more): what being hooked in, the module
    alone, and the other tracers keep on the same host is the measure of
    what the target asks of a reader.  A list of (condition, the rounds'
    median ratio, its interval (low, high, confidence), "over", "under"
    or "holds 0.95"), in the table's order."""
    out = []
    for cond in CONDS:
        s = summary.get(cond, {}).get("veth")
        if cond == "baseline" or not s or "rate_ratio_ci" not in s:
            continue
        lo, hi = s["rate_ratio_ci"]
        side = "over" if lo >= 0.95 else "under" if hi < 0.95 \
            else "holds 0.95"
        out.append((cond, s["rate_ratio_paired"],
                    (lo, hi, s["rate_ratio_ci_conf"]), side))
    return out


def cheaper_by_rounds(a, b):
    """Whether a costs less than b, from the rounds both ran (5 or more):
    True when the interval of the median of the rounds' rate ratios (a
    over b) is all at or over 1, or that of their CPU per connection all
    at or under 1; False when the rate's is all under 1 and the CPU's all
    over; None (undecided) otherwise.  Returns (verdict, detail), or None
    when the rounds are too few or unnumbered."""
    ra = {n: (rate, cpu) for n, rate, cpu in a.get("by_round", [])}
    rb = {n: (rate, cpu) for n, rate, cpu in b.get("by_round", [])}
    both = [n for n in ra if n in rb and rb[n][0] and rb[n][1]]
    rate = median_ci([ra[n][0] / rb[n][0] for n in both])
    cpu = median_ci([ra[n][1] / rb[n][1] for n in both])
    if not rate or not cpu:
        return None
    if rate[0] >= 1 or cpu[1] <= 1:
        ok = True
    elif rate[1] < 1 and cpu[0] > 1:
        ok = False
    else:
        ok = None
    return ok, " (rounds, %.0f%% intervals: rate x%.2f-%.2f, CPU x%.2f-%.2f)" \
        % (100 * min(rate[2], cpu[2]), rate[0], rate[1], cpu[0], cpu[1])


def targets(summary, loss):
    out = {}
    for rdr in ("tcptrace+reader", "tcptrace+reader-fg", "tcptrace+cat"):
        tr = summary.get(rdr, {}).get("veth")
        if tr and "rate_ratio" in tr:
            # a reader that fell behind only deferred its cost
            kept = tr.get("behind_s", 0) <= KEPT_UP_S
            t = {"met": tr["rate_ratio"] >= 0.95 and kept,
                 "detail": "ratio %.3f%s" % (tr["rate_ratio"], "" if
                     "behind_s" not in tr else
                     ", %s (%.2f s behind at the end, median)" % (
                         "kept up" if kept else "FELL BEHIND",
                         tr["behind_s"]))}
            # the rounds decide only when the interval of their median
            # lies on one side of 0.95: a noisy host decides nothing
            ci = tr.get("rate_ratio_ci")
            if ci:
                t["detail"] += (
                    "; rounds' ratios: median %.3f, %.0f%% interval "
                    "%.3f-%.3f" % (tr["rate_ratio_paired"],
                                   100 * tr["rate_ratio_ci_conf"], ci[0],
                                   ci[1]))
                if kept and ci[0] < 0.95 <= ci[1]:
                    t["met"] = False
                    t["undecided"] = True
                elif kept:
                    t["met"] = ci[0] >= 0.95
            out["%s keeps >=95%% of veth rate" % rdr] = t
    for rdr in ("tcptrace+reader", "tcptrace+reader-fg", "tcptrace+cat"):
        for other in ("ftrace", "bpftrace", "tcpdump"):
            details, met, undecided = [], True, False
            for link in LINKS:
                a = summary.get(rdr, {}).get(link)
                b = summary.get(other, {}).get(link)
                if not a or not b:
                    continue
                # lower cost: a higher rate or less CPU per connection
                ok = a["rate"] >= b["rate"] or \
                    a["cpu_us_per_conn"] <= b["cpu_us_per_conn"]
                detail = "%s %.0f vs %.0f conn/s, %d vs %d us/conn" % (
                    link, a["rate"], b["rate"], a["cpu_us_per_conn"],
                    b["cpu_us_per_conn"])
                paired = cheaper_by_rounds(a, b)
                if paired:
                    ok, detail = paired[0], detail + paired[1]
                if ok is None:
                    undecided = True
                else:
                    met = met and ok
                details.append(detail)
            if details:
                t = {"met": met and not undecided,
                     "detail": "; ".join(details)}
                if met and undecided:
                    t["undecided"] = True
                out["%s cheaper than %s" % (rdr, other)] = t
    rdr = summary.get("tcptrace+reader", {})
    if rdr:
        drops = sum(s["drops"] for s in rdr.values())
        out["no drop, watch --json, default ring (part 1)"] = {
            "met": drops == 0,
            "detail": "%d drops at %s conn/s" % (drops, ", ".join(
                "%.0f" % s["rate"] for s in rdr.values()))}
    d = loss.get("4096")
    if d:
        drops = sum(e["drops"] for e in d["steps"])
        out["no drop, watch --json, default ring (ramp)"] = {
            "met": drops == 0,
            "detail": "%d drops in all steps, up to %.1f conn/s" % (
                drops, d["max_rate"])}
    return out


def pool(results):
    """The runs of several results files as one run: the rounds of each
    kept apart (file i's round n is round 1000 i + n), so the pairing with
    the baseline stays within a round; medians, intervals and targets of
    them all (those of part 1; the other parts are each file's own)."""
    runs = []
    for i, res in enumerate(results):
        for r in res["runs"]:
            r = dict(r)
            if "round" in r:
                r["round"] += 1000 * i
            runs.append(r)
    m = dict(results[0]["meta"])
    m["rounds"] = sum(res["meta"]["rounds"] for res in results)
    m["pooled"] = len(results)
    summary = summarise(runs)
    return {"meta": m, "summary": summary, "runs": runs,
            "skipped": results[0].get("skipped", {}),
            "targets": targets(summary, {}), "bar": bar_95(summary)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs")
    ap.add_argument("--extra")
    ap.add_argument("--meta", default="{}")
    ap.add_argument("--out")
    ap.add_argument("--table")
    ap.add_argument("--pool", nargs="+", metavar="FILE")
    a = ap.parse_args()
    # | head: end quietly, like any filter
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if a.table or a.pool:
        files = [a.table] if a.table else a.pool
        done = []
        for name in files:
            try:
                with open(name) as f:
                    res = json.load(f)
                if a.table:
                    res["targets"] = targets(res["summary"],
                                             res.get("loss") or {})
                    # like the targets, from the summary as it was made
                    res["bar"] = bar_95(res["summary"])
                    add_round_ranges(res["summary"], res.get("runs") or [])
                elif not res["runs"]:
                    raise ValueError("no runs in it")
            except OSError as e:
                print("report.py: cannot read %s: %s" % (name, e.strerror),
                      file=sys.stderr)
                return 2
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                print("report.py: %s is not a results file (%s: %s)" % (
                    name, type(e).__name__, e), file=sys.stderr)
                return 2
            done.append(res)
            # rounds of other settings pair with their own baselines, but
            # are not the same measurement: said, not refused
            for k in ("kernel", "cpus", "secs", "procs", "accel",
                      "clocksource"):
                if res["meta"].get(k) != done[0]["meta"].get(k):
                    print("report.py: warning: %s has %s %s, %s has %s" % (
                        name, k, res["meta"].get(k), files[0],
                        done[0]["meta"].get(k)), file=sys.stderr)
        print_tables(pool(done) if a.pool else done[0])
        return 0
    if not a.runs or not a.extra:
        ap.error("give --table FILE, or --runs and --extra")
    with open(a.runs) as f:
        runs = [json.loads(line) for line in f if line.strip()]
    with open(a.extra) as f:
        extra = [json.loads(line) for line in f if line.strip()]
    meta = json.loads(a.meta)
    skipped = {}
    if meta.get("bpftrace_skip"):
        skipped["bpftrace"] = meta["bpftrace_skip"]
    summary = summarise(runs)
    loss = loss_summary(extra)
    res = {
        "meta": meta,
        "summary": summary,
        "skipped": skipped,
        "loss": loss,
        "read": [e for e in extra if e.get("part") == "read"],
        "format": next((e for e in extra if e.get("part") == "format"),
                       None),
        "memory": next((e for e in extra if e.get("part") == "memory"), None),
        "runs": runs,
    }
    res["targets"] = targets(summary, loss)
    res["bar"] = bar_95(summary)
    print_tables(res)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
