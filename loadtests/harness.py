#!/usr/bin/env python3
"""Helper of loadtests/run.sh (stdlib only).

  harness.py exec RUSAGE_FILE -- CMD...      run the load generator; write its CPU seconds and
                                             the wall time to RUSAGE_FILE; exit with its status
  harness.py record  --out RAW.jsonl ...     parse one wrk/oha run + CPU counters -> one JSON line
  harness.py last    RAW.jsonl               one-line progress report of the last run
  harness.py summarize --raw RAW.jsonl --meta META.json --out RESULT.json [--check]
                                             medians, ranges, ratios, issue-2 targets; prints
                                             Markdown tables; --check exits 1 on failed runs
"""
import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

BASELINES = ("direct", "nginx-proxy")  # ratios are given against these, when present
PUT = "shadowtap"  # the proxy under test: its failures fail a --check run first


# ------------------------------------------------------------------ exec

def cmd_exec(argv):
    """Run the load generator and account its CPU (children and grandchildren it reaped)."""
    out, cmd = argv[0], argv[1:]
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    rc = subprocess.run(cmd).returncode
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    with open(out, "w") as f:
        f.write(f"{cpu:.4f} {wall:.4f}\n")
    return rc


# ------------------------------------------------------------------ record

def parse_wrk(text):
    line = next((l for l in text.splitlines() if l.startswith("WRK_RESULT ")), None)
    if line is None:
        return None
    kv = dict(item.split("=", 1) for item in line.split()[1:])
    n = {k: float(v) for k, v in kv.items()}
    seconds = n["seconds"] or 1.0
    return {
        "requests": int(n["requests"]),
        "rps": n["requests"] / seconds,
        "p50_us": n["p50_us"], "p90_us": n["p90_us"], "p99_us": n["p99_us"],
        "p999_us": n["p999_us"], "max_us": n["max_us"],
        "non_2xx": int(n["bad_status"]),  # wrk counts status >= 400
        "socket_errors": int(n["connect_errors"] + n["read_errors"] + n["write_errors"] + n["timeouts"]),
    }


def parse_oha(text):
    try:
        d = json.loads(text)
    except ValueError:
        return None
    s, p = d["summary"], d["latencyPercentiles"]
    codes = d.get("statusCodeDistribution") or {}
    ok = sum(v for k, v in codes.items() if str(k).startswith("2"))
    bad = sum(v for k, v in codes.items() if not str(k).startswith("2"))
    us = lambda x: round((x or 0.0) * 1e6, 1)
    return {
        "requests": ok + bad,
        "rps": s.get("requestsPerSec") or 0.0,
        "p50_us": us(p.get("p50")), "p90_us": us(p.get("p90")), "p99_us": us(p.get("p99")),
        "p999_us": us(p.get("p99.9")), "max_us": us(s.get("slowest")),
        "non_2xx": bad,
        "socket_errors": sum((d.get("errorDistribution") or {}).values()),
    }


def busy_percent(before, after):
    """/proc/stat cpuN fields user nice system idle iowait irq softirq steal -> (busy %, steal %)."""
    a = [int(x) for x in before.split()]
    b = [int(x) for x in after.split()]
    d = [y - x for x, y in zip(a, b)]
    total = sum(d) or 1
    busy = d[0] + d[1] + d[2] + d[5] + d[6]
    return round(100.0 * busy / total, 1), round(100.0 * d[7] / total, 1)


def cmd_record(a):
    text = open(a.tool_output, errors="replace").read()
    parsed = parse_wrk(text) if a.mode == "closed" else parse_oha(text)
    rec = {"round": a.round, "scenario": a.scenario, "mode": a.mode, "contender": a.contender,
           "attempt": a.attempt, "body_bytes": a.body_bytes, "tool_rc": a.tool_rc}
    problems = []
    if parsed is None:
        problems.append("load generator produced no result")
        parsed = {"requests": 0, "rps": 0.0}
    rec.update(parsed)
    n = rec["requests"]
    ticks = a.cpu_ticks[1] - a.cpu_ticks[0]
    up_ticks = a.upstream_ticks[1] - a.upstream_ticks[0]
    rec["cpu_s"] = ticks / a.hz
    rec["cpu_us_per_req"] = round(ticks / a.hz * 1e6 / n, 2) if n else None
    rec["upstream_cpu_us_per_req"] = round(up_ticks / a.hz * 1e6 / n, 2) if n else None
    rec["loadgen_cpu_busy_pct"], rec["loadgen_cpu_steal_pct"] = busy_percent(*a.loadgen_cpu_stat)
    rec["proxy_cpu_busy_pct"], rec["proxy_cpu_steal_pct"] = busy_percent(*a.proxy_cpu_stat)
    # Who else used our two cpus during the window? Everything we started is accounted for:
    # cpu 0 runs the load generator and the upstream, cpu 1 the contender (direct: nothing).
    # The rest (another build, a test suite) is interference; it inflates latency and, on a
    # saturated cpu, lowers throughput. Softirq time not charged to a process lands here too.
    if a.loadgen_rusage:
        lg_cpu, wall = (float(x) for x in open(a.loadgen_rusage).read().split())
        wall = wall or 1.0
        rec["loadgen_cpu_pct"] = round(100 * lg_cpu / wall, 1)
        up_pct = 100 * up_ticks / a.hz / wall
        own_pct = 0.0 if a.contender == "direct" else 100 * ticks / a.hz / wall
        rec["interference_cpu0_pct"] = round(max(0.0, rec["loadgen_cpu_busy_pct"] - rec["loadgen_cpu_pct"] - up_pct), 1)
        rec["interference_cpu1_pct"] = round(max(0.0, rec["proxy_cpu_busy_pct"] - own_pct), 1)
        rec["interference_pct"] = max(rec["interference_cpu0_pct"], rec["interference_cpu1_pct"])
    if a.probe:
        ok0, bad0 = (int(x) for x in a.probe[0].split())
        ok1, bad1 = (int(x) for x in a.probe[1].split())
        rec["proxy_counted_2xx"], rec["proxy_counted_other"] = ok1 - ok0, bad1 - bad0
        if bad1 - bad0:
            problems.append(f"proxy counted {bad1 - bad0} non-2xx answers")
    if a.tool_rc:
        problems.append(f"load generator exited {a.tool_rc}")
    if n == 0 or not rec.get("rps"):
        problems.append("no requests served")
    if rec.get("non_2xx"):
        problems.append(f"{rec['non_2xx']} non-2xx responses")
    if rec.get("socket_errors"):
        problems.append(f"{rec['socket_errors']} socket errors/timeouts")
    warnings = []
    if a.mode == "rate" and rec.get("rps", 0) < 0.95 * a.rate:
        warnings.append(f"offered {a.rate}/s, achieved {rec['rps']:.0f}/s")
    if rec.get("interference_pct", 0) > a.max_interference:
        warnings.append(f"{rec['interference_pct']}% of a cpu used by other processes "
                        f"(cpu0 {rec['interference_cpu0_pct']}%, cpu1 {rec['interference_cpu1_pct']}%)")
    if warnings:
        rec["warning"] = "; ".join(warnings)
    rec["problems"] = problems
    rec["ok"] = not problems
    with open(a.out, "a") as f:
        f.write(json.dumps(rec) + "\n")


def cmd_interference(a):
    last = json.loads(open(a.tries).read().splitlines()[-1])
    print(last.get("interference_pct", 0))


def cmd_settle(a):
    tries = [json.loads(l) for l in open(a.tries) if l.strip()]
    best = min(tries, key=lambda r: (not r["ok"], r.get("interference_pct", 0)))
    best["attempts"] = len(tries)
    best["discarded_attempts_interference_pct"] = [r.get("interference_pct") for r in tries if r is not best]
    with open(a.raw, "a") as f:
        f.write(json.dumps(best) + "\n")


def cmd_last(a):
    lines = open(a.raw).read().splitlines()
    r = json.loads(lines[-1])
    cpu = r.get("cpu_us_per_req")
    print(f"round {r['round']} {r['scenario']:<6}{r['mode']:<7}{r['contender']:<16}"
          f"{r.get('rps', 0):>9.0f} req/s  p50 {r.get('p50_us', 0):>7.0f}  p99 {r.get('p99_us', 0):>7.0f} us"
          f"  cpu {cpu if cpu is not None else '-':>6} us/req"
          f"  cpu0 {r['loadgen_cpu_busy_pct']:>5}%  cpu1 {r['proxy_cpu_busy_pct']:>5}%"
          f"  other {r.get('interference_pct', '?')}%"
          + (f" (attempt {r['attempt']} of {r['attempts']})" if r.get("attempts", 1) > 1 else "")
          + ("" if r["ok"] else "  FAILED: " + "; ".join(r["problems"]))
          + (f"  ({r['warning']})" if r.get("warning") else ""))


# ------------------------------------------------------------------ summarize

def stats(values):
    v = [x for x in values if x is not None]
    if not v:
        return None
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}


METRICS = ("rps", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "cpu_us_per_req",
           "upstream_cpu_us_per_req", "loadgen_cpu_busy_pct", "proxy_cpu_busy_pct",
           "loadgen_cpu_pct", "interference_pct")


def fmt(x, digits=0):
    if x is None:
        return "–"
    return f"{x:,.{digits}f}"


def rng(s, digits=0):
    return f"{fmt(s['min'], digits)}–{fmt(s['max'], digits)}" if s else "–"


def med(s, digits=0):
    return fmt(s["median"] if s else None, digits)


def ratio(a, b):
    if not a or not b or not b["median"]:
        return None
    return a["median"] / b["median"]


def cmd_summarize(a):
    raw = [json.loads(l) for l in open(a.raw) if l.strip()]
    meta = json.load(open(a.meta))
    groups = {}
    for r in raw:
        groups.setdefault((r["scenario"], r["mode"], r["contender"]), []).append(r)
    medians = {}
    for (scenario, mode, who), rs in groups.items():
        m = {k: stats([r.get(k) for r in rs]) for k in METRICS}
        m["errors"] = sum(r.get("non_2xx", 0) + r.get("socket_errors", 0) for r in rs)
        m["failed_runs"] = sum(1 for r in rs if not r["ok"])
        medians.setdefault(scenario, {}).setdefault(mode, {})[who] = m
    # ratios of medians, and the paired per-round ratios (same round, same conditions)
    for scenario, modes in medians.items():
        for mode, whos in modes.items():
            for who, m in whos.items():
                m["cpu_ratio"] = {}
                m["cpu_ratio_per_round"] = {}
                for base in BASELINES:
                    if base in whos:
                        m["cpu_ratio"][base] = ratio(m["cpu_us_per_req"], whos[base]["cpu_us_per_req"])
                        pairs = {}
                        for r in groups[(scenario, mode, who)]:
                            pairs[r["round"]] = [r.get("cpu_us_per_req")]
                        for r in groups[(scenario, mode, base)]:
                            pairs.setdefault(r["round"], [None]).append(r.get("cpu_us_per_req"))
                        m["cpu_ratio_per_round"][base] = [
                            round(p[0] / p[1], 3) for p in pairs.values()
                            if len(p) == 2 and p[0] and p[1]]
                if mode == "rate" and "direct" in whos and m["p50_us"] and whos["direct"]["p50_us"]:
                    m["added_p50_us"] = m["p50_us"]["median"] - whos["direct"]["p50_us"]["median"]

    out = []
    s = meta["settings"]
    out.append(f"# shadowtap load test, {meta['date_utc']}")
    out.append("")
    out.append(f"- command: `{meta['command']}`")
    out.append(f"- shadowtap commit {meta['shadowtap']['commit']}; machine: {meta['machine']['nproc']} cpu "
               f"({meta['machine']['cpu_model']}), kernel {meta['machine']['kernel']}")
    out.append(f"- layout: load generator + upstream nginx on cpu {meta['layout']['loadgen_and_upstream_cpu']}, "
               f"contender alone on cpu {meta['layout']['contender_cpu']} with 1 worker; "
               f"{s['connections']} connections, HTTP/1.1 keep-alive")
    out.append(f"- {s['rounds']} interleaved round(s) of {s['duration_s']} s (+{s['warmup_s']} s warm-up); "
               f"medians, (min–max) over rounds")
    out.append(f"- tools: {meta['tools']['nginx']}; {meta['tools']['wrk'].split(' Copyright')[0]}; {meta['tools']['oha']}")
    for scenario, modes in medians.items():
        body = next(r["body_bytes"] for r in raw if r["scenario"] == scenario)
        if "closed" in modes:
            whos = modes["closed"]
            out += ["", f"## {scenario} ({body} B body), closed loop: wrk -t1 -c{s['connections']}", ""]
            out.append("| contender | req/s (min–max) | p50 µs | p99 µs (min–max) | CPU µs/req (min–max) "
                       "| × direct | × nginx-proxy | upstream CPU µs/req | cpu0 / cpu1 busy % | other % | errors |")
            out.append("|---|---|---|---|---|---|---|---|---|---|---|")
            for who, m in whos.items():
                label = who + (" (upstream's CPU)" if who == "direct" else "")
                out.append(
                    f"| {label} | {med(m['rps'])} ({rng(m['rps'])}) | {med(m['p50_us'])} "
                    f"| {med(m['p99_us'])} ({rng(m['p99_us'])}) "
                    f"| {med(m['cpu_us_per_req'], 1)} ({rng(m['cpu_us_per_req'], 1)}) "
                    f"| {fmt(m['cpu_ratio'].get('direct'), 2)} | {fmt(m['cpu_ratio'].get('nginx-proxy'), 2)} "
                    f"| {med(m['upstream_cpu_us_per_req'], 1)} "
                    f"| {med(m['loadgen_cpu_busy_pct'])} / {med(m['proxy_cpu_busy_pct'])} "
                    f"| {med(m['interference_pct'], 1)} | {m['errors']} |")
        if "rate" in modes:
            whos = modes["rate"]
            out += ["", f"## {scenario} ({body} B body), fixed rate: oha -q {s['rate']} -c{s['connections']} "
                        f"--latency-correction", ""]
            out.append("| contender | achieved req/s | p50 µs (min–max) | added p50 µs | p99 µs (min–max) "
                       "| p99.9 µs | CPU µs/req (min–max) | × direct | × nginx-proxy | cpu0 / cpu1 busy % | other % | errors |")
            out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
            for who, m in whos.items():
                label = who + (" (upstream's CPU)" if who == "direct" else "")
                added = m.get("added_p50_us")
                out.append(
                    f"| {label} | {med(m['rps'])} | {med(m['p50_us'])} ({rng(m['p50_us'])}) "
                    f"| {'–' if who == 'direct' else fmt(added)} "
                    f"| {med(m['p99_us'])} ({rng(m['p99_us'])}) | {med(m['p999_us'])} "
                    f"| {med(m['cpu_us_per_req'], 1)} ({rng(m['cpu_us_per_req'], 1)}) "
                    f"| {fmt(m['cpu_ratio'].get('direct'), 2)} | {fmt(m['cpu_ratio'].get('nginx-proxy'), 2)} "
                    f"| {med(m['loadgen_cpu_busy_pct'])} / {med(m['proxy_cpu_busy_pct'])} "
                    f"| {med(m['interference_pct'], 1)} | {m['errors']} |")

    # issue-2 targets: shadowtap vs nginx-proxy in the same run
    targets = []
    for scenario, modes in medians.items():
        for mode, whos in modes.items():
            if PUT in whos and "nginx-proxy" in whos:
                p, n = whos[PUT]["cpu_us_per_req"], whos["nginx-proxy"]["cpu_us_per_req"]
                if p and n:
                    targets.append({
                        "target": "CPU µs/req ≤ nginx-proxy", "scenario": scenario, "mode": mode,
                        "shadowtap": p["median"], "nginx-proxy": n["median"],
                        "met": p["median"] <= n["median"],
                        "ranges_overlap": p["min"] <= n["max"] and n["min"] <= p["max"]})
            if mode == "rate" and PUT in whos and "nginx-proxy" in whos and "direct" in whos:
                pa, na = whos[PUT].get("added_p50_us"), whos["nginx-proxy"].get("added_p50_us")
                if pa is not None and na is not None:
                    targets.append({
                        "target": f"added p50 at {s['rate']}/s ≤ nginx-proxy's", "scenario": scenario,
                        "mode": mode, "shadowtap": pa, "nginx-proxy": na, "met": pa <= na,
                        "ranges_overlap": None})
    if targets:
        out += ["", "## issue-2 targets (shadowtap vs nginx-proxy, medians of this run)", ""]
        out.append("| target | scenario | mode | shadowtap | nginx-proxy | verdict |")
        out.append("|---|---|---|---|---|---|")
        for t in targets:
            note = ""
            if t["ranges_overlap"]:
                note = " (min–max ranges overlap)"
            out.append(f"| {t['target']} | {t['scenario']} | {t['mode']} | {t['shadowtap']:.1f} "
                       f"| {t['nginx-proxy']:.1f} | {'met' if t['met'] else 'NOT met'}{note} |")

    rerun = [r for r in raw if r.get("attempts", 1) > 1]
    out += ["", f"busy %: how busy each cpu was (cpu0: load generator + upstream, cpu1: the contender); "
                f"other %: cpu time used by processes outside this test (median). "
                f"{len(rerun)} of {len(raw)} runs were re-run because other processes used more than "
                f"{s['max_interference_pct']}% of a cpu."]
    failed = [r for r in raw if not r["ok"]]
    warnings = [r for r in raw if r.get("warning")]
    if warnings:
        out += ["", "Warnings:"] + [f"- round {r['round']} {r['scenario']} {r['mode']} {r['contender']}: "
                                    f"{r['warning']}" for r in warnings]
    if failed:
        out += ["", "FAILED runs:"] + [f"- round {r['round']} {r['scenario']} {r['mode']} {r['contender']}: "
                                       + "; ".join(r["problems"]) for r in failed]
    text = "\n".join(out)
    print(text)
    json.dump({"meta": meta, "medians": medians, "targets": targets, "runs": raw, "table_markdown": text},
              open(a.out, "w"), indent=1)
    print(f"\nresults: {a.out}")
    if a.check:
        put_failed = [r for r in failed if r["contender"] == PUT]
        put_served = [r for r in raw if r["contender"] == PUT and r.get("requests")]
        if put_failed or not put_served:
            print(f"SMOKE FAILED: {PUT} did not serve every request with a 2xx", file=sys.stderr)
            return 1
        if failed:
            print("SMOKE FAILED: a baseline contender failed (the harness is broken)", file=sys.stderr)
            return 1
        print("smoke ok: every contender served every request with a 2xx")
    return 0


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "exec":
        return cmd_exec(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("--out", required=True)
    r.add_argument("--round", type=int, required=True)
    r.add_argument("--scenario", required=True)
    r.add_argument("--mode", choices=("closed", "rate"), required=True)
    r.add_argument("--contender", required=True)
    r.add_argument("--tool-output", required=True)
    r.add_argument("--tool-rc", type=int, default=0)
    r.add_argument("--hz", type=int, required=True)
    r.add_argument("--rate", type=int, required=True)
    r.add_argument("--body-bytes", type=int, required=True)
    r.add_argument("--cpu-ticks", type=int, nargs=2, required=True)
    r.add_argument("--upstream-ticks", type=int, nargs=2, required=True)
    r.add_argument("--loadgen-cpu-stat", nargs=2, required=True)
    r.add_argument("--proxy-cpu-stat", nargs=2, required=True)
    r.add_argument("--probe", nargs=2)
    r.add_argument("--loadgen-rusage")
    r.add_argument("--attempt", type=int, default=1)
    r.add_argument("--max-interference", type=float, default=10.0)
    i = sub.add_parser("interference")
    i.add_argument("tries")
    t = sub.add_parser("settle")
    t.add_argument("tries")
    t.add_argument("raw")
    l = sub.add_parser("last")
    l.add_argument("raw")
    s = sub.add_parser("summarize")
    s.add_argument("--raw", required=True)
    s.add_argument("--meta", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--check", action="store_true")
    a = ap.parse_args()
    return {"record": cmd_record, "interference": cmd_interference, "settle": cmd_settle,
            "last": cmd_last, "summarize": cmd_summarize}[a.cmd](a) or 0


if __name__ == "__main__":
    sys.exit(main())
