#!/usr/bin/env python3
"""Helper of loadtests/run.sh (stdlib only).

  harness.py exec RUSAGE_FILE [--rss-pid PID --rss-out FILE] -- CMD...
                                             run the load generator; write its CPU seconds and
                                             the wall time to RUSAGE_FILE; exit with its status;
                                             meanwhile sample PID's RSS (children included)
                                             every 200 ms into FILE (JSON: peak, first, last)
  harness.py rss PID                         PID's RSS now, children included (KiB)
  harness.py make-json FILE BYTES            a deterministic JSON document of exactly BYTES
  harness.py record  --out RAW.jsonl ...     parse one wrk/oha run + CPU counters -> one JSON line
  harness.py last    RAW.jsonl               one-line progress report of the last run
  harness.py scrape [--metrics URL] [--shadow-status URL]
                                             one JSON line: shadowtap's request and mirror-outcome
                                             counters and queue gauges, comparisons, the shadow
                                             nginx's request count
  harness.py drain --metrics URL --max S     wait (bounded) until shadowtap's mirror queue and
                                             in-flight gauges are 0 and its comparisons caught up;
                                             prints the seconds waited
  harness.py summarize --raw RAW.jsonl --meta META.json --out RESULT.json [--check]
                                             medians, ranges, ratios, issue-2, -3 and -5 targets
                                             (the perf suite's tables are in perf_report.py);
                                             prints Markdown tables; --check exits 1 on failed runs
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
import re
import urllib.request

import perf_report

BASELINES = ("direct", "nginx-proxy")  # ratios are given against these, when present
PUT = "shadowtap"  # the proxy under test: its failures fail a --check run first


# ------------------------------------------------------------------ exec

def cmd_exec(argv):
    """Run the load generator and account its CPU (children and grandchildren it reaped);
    optionally sample a contender's memory while it runs."""
    out, rest = argv[0], argv[1:]
    opts = {}
    while rest and rest[0] in ("--rss-pid", "--rss-out"):
        opts[rest[0]] = rest[1]
        rest = rest[2:]
    cmd = rest[1:] if rest and rest[0] == "--" else rest
    sampler = None
    if "--rss-pid" in opts:
        sampler = RssSampler(int(opts["--rss-pid"]))
        sampler.start()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    rc = subprocess.run(cmd).returncode
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    with open(out, "w") as f:
        f.write(f"{cpu:.4f} {wall:.4f}\n")
    if sampler:
        sampler.stop()
        with open(opts["--rss-out"], "w") as f:
            json.dump(sampler.result(), f)
    return rc


# ------------------------------------------------------------------ memory

def process_tree(pid):
    """pid and its descendants (nginx: the master and its worker), from /proc/PID/task/*/children."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def rss_kib(pid):
    """VmRSS of pid and its descendants, summed (KiB). Pages the processes share (nginx's master
    and worker) are counted once per process: an upper bound, the way `ps` shows it."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


class RssSampler:
    """Samples rss_kib(pid) every 200 ms on a thread of the (cpu-0) harness process: /proc reads
    cost microseconds, so the contender on cpu 1 is not disturbed."""

    INTERVAL = 0.2

    def __init__(self, pid):
        self.pid, self.samples = pid, []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()

    def _run(self):
        while True:
            self.samples.append(rss_kib(self.pid))
            if self._done.wait(self.INTERVAL):
                break

    def stop(self):
        self._done.set()
        self._thread.join()
        self.samples.append(rss_kib(self.pid))

    def result(self):
        s = [x for x in self.samples if x] or [0]
        return {"peak_kib": max(s), "first_kib": s[0], "last_kib": s[-1], "samples": len(self.samples)}


def cmd_rss(a):
    print(rss_kib(a.pid))


# ------------------------------------------------------------------ JSON bodies

def json_document(size):
    """A catalogue page as compact JSON of exactly `size` bytes (deterministic: the primary and
    the shadow serve the same file, so their comparison is a match)."""
    def render(items, pad=""):
        return json.dumps({"page": 1, "total": len(items), "items": items, "pad": pad}, separators=(",", ":"))
    items = []
    while True:
        i = len(items)
        item = {"id": i, "sku": f"SKU-{i:06d}", "name": f"item number {i}", "price": round(i * 1.37 % 100, 2),
                "in_stock": i % 3 != 0, "tags": ["new", "sale"][: i % 3], "dims": {"w": i % 17, "h": i % 11}}
        if len(render(items + [item])) > size:
            break
        items.append(item)
    text = render(items)
    text = render(items, "p" * (size - len(text)))
    assert len(text) == size, (len(text), size)
    return text


def cmd_make_json(a):
    with open(a.file, "w") as f:
        f.write(json_document(a.bytes))


# ------------------------------------------------------------------ scrape / drain

OUTCOMES = ("completed", "error", "timeout", "dropped_queue_full", "dropped_body_too_large",
            "dropped_client_aborted", "dropped_primary_failed", "dropped_memory_budget", "skipped_method",
            "skipped_circuit_open")
PROM_LINE = re.compile(r'^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
PROM_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def fetch(url, timeout=2.0):
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return answer.read().decode(errors="replace")


COMPARISONS = ("match", "noise_only", "diverged")


def scrape(metrics_url=None, status_url=None):
    """shadowtap's counters from /metrics; the shadow nginx's request count from stub_status."""
    out = {}
    if metrics_url:
        ok = bad = queue = in_flight = pairs = dropped = 0.0
        outcomes = dict.fromkeys(OUTCOMES, 0.0)
        compared = dict.fromkeys(COMPARISONS, 0.0)
        for line in fetch(metrics_url).splitlines():
            m = PROM_LINE.match(line)
            if not m or line.startswith("#"):
                continue
            name, labels, value = m.group(1), dict(PROM_LABEL.findall(m.group(2) or "")), float(m.group(3))
            if name == "shadowtap_requests_total":
                # client_closed: abandoned by the client (a load generator stopping with
                # requests in flight), not an answer.
                if labels.get("status_class") == "2xx":
                    ok += value
                elif labels.get("status_class") != "client_closed":
                    bad += value
            elif name == "shadowtap_mirror_requests_total":
                outcomes[labels.get("outcome", "?")] = outcomes.get(labels.get("outcome", "?"), 0.0) + value
            elif name == "shadowtap_mirror_queue_depth":
                queue += value
            elif name == "shadowtap_mirror_in_flight":
                in_flight += value
            elif name == "shadowtap_mirror_pairs_total" and labels.get("result") == "complete":
                pairs += value
            elif name == "shadowtap_comparisons_total":
                compared[labels.get("result", "?")] = compared.get(labels.get("result", "?"), 0.0) + value
            elif name == "shadowtap_compare_dropped_total":
                dropped += value
        out.update({"ok": int(ok), "other": int(bad), "outcomes": {k: int(v) for k, v in outcomes.items()},
                    "queue_depth": queue, "in_flight": in_flight, "pairs_complete": int(pairs),
                    "comparisons": {k: int(v) for k, v in compared.items()}, "compare_dropped": int(dropped)})
    if status_url:
        # stub_status: "Active connections: N / server accepts handled requests / A H R / ..."
        lines = fetch(status_url).splitlines()
        out["shadow_requests"] = int(lines[2].split()[2])
    return out


def cmd_scrape(a):
    print(json.dumps(scrape(a.metrics, a.shadow_status)))


def cmd_drain(a):
    """Wait until shadowtap has no mirror job queued or under way and its comparison worker has
    caught up with the completed pairs, so that neither runs on into the next measurement
    (bounded by --max). Caught up: every complete pair compared or dropped, or - should the
    counters not add up that way - the comparison count unchanged for 0.3 s."""
    t0 = time.monotonic()
    last, still = None, 0
    while time.monotonic() - t0 < a.max:
        try:
            got = scrape(a.metrics)
            handled = sum(got["comparisons"].values()) + got["compare_dropped"]
            still = still + 1 if handled == last else 0
            last = handled
            if got["queue_depth"] <= 0 and got["in_flight"] <= 0 and (handled >= got["pairs_complete"] or still >= 3):
                break
        except OSError:
            pass
        time.sleep(0.1)
    print(f"{time.monotonic() - t0:.1f}")


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
    errors = dict(d.get("errorDistribution") or {})
    # With --http2, oha 1.16 still cuts a request or so at the deadline despite -w (one per
    # connection in closed loop): the load generator stopping, not the contender failing.
    deadline = errors.pop("aborted due to deadline", 0)
    return {
        "requests": ok + bad,
        "rps": s.get("requestsPerSec") or 0.0,
        "p50_us": us(p.get("p50")), "p90_us": us(p.get("p90")), "p99_us": us(p.get("p99")),
        "p999_us": us(p.get("p99.9")), "max_us": us(s.get("slowest")),
        "non_2xx": bad,
        "socket_errors": sum(errors.values()),
        "aborted_at_deadline": deadline,
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
    # wrk for closed-loop HTTP/1.1, oha (JSON) otherwise.
    parsed = parse_wrk(text) if "WRK_RESULT " in text else parse_oha(text)
    rec = {"round": a.round, "scenario": a.scenario, "mode": a.mode, "contender": a.contender,
           "attempt": a.attempt, "body_bytes": a.body_bytes, "tool_rc": a.tool_rc,
           "suite": a.suite, "connections": a.connections, "offered_rate": a.rate if a.mode != "closed" else None}
    if a.mode != "closed" and a.seconds:
        rec["offered_requests"] = a.rate * a.seconds
    if a.shadow:
        rec["shadow"] = a.shadow
    if a.cell:
        rec["cell"], rec["protocol"] = a.cell, a.proto
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
    sh_ticks = (a.shadow_ticks[1] - a.shadow_ticks[0]) if a.shadow_ticks else 0
    if a.shadow_ticks:
        rec["shadow_cpu_s"] = sh_ticks / a.hz
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
        up_pct = 100 * (up_ticks + sh_ticks) / a.hz / wall  # the shadow nginx shares cpu 0
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
    if a.scrape:
        before, after = (json.loads(open(f).read() or "{}") for f in a.scrape)
        if "ok" in before and "ok" in after:
            rec["proxy_counted_2xx"] = after["ok"] - before["ok"]
            rec["proxy_counted_other"] = after["other"] - before["other"]
            if rec["proxy_counted_other"]:
                problems.append(f"proxy counted {rec['proxy_counted_other']} non-2xx answers")
            rec["mirror_outcomes"] = {k: after["outcomes"].get(k, 0) - before["outcomes"].get(k, 0)
                                      for k in OUTCOMES}
            if "comparisons" in after and "comparisons" in before:
                rec["comparisons"] = {k: after["comparisons"].get(k, 0) - before["comparisons"].get(k, 0)
                                      for k in COMPARISONS}
                rec["compare_dropped"] = after["compare_dropped"] - before["compare_dropped"]
        if "shadow_requests" in before and "shadow_requests" in after:
            # the second stub_status request counts itself
            rec["shadow_hits"] = max(0, after["shadow_requests"] - before["shadow_requests"] - 1)
    if a.drained is not None:
        rec["drain_wait_s"] = a.drained
    if a.rss and os.path.exists(a.rss):
        rss = json.load(open(a.rss))
        rec["rss_peak_kib"], rec["rss_first_kib"], rec["rss_last_kib"] = rss["peak_kib"], rss["first_kib"], rss["last_kib"]
    if a.tool_rc:
        problems.append(f"load generator exited {a.tool_rc}")
    if n == 0 or not rec.get("rps"):
        problems.append("no requests served")
    if rec.get("non_2xx"):
        problems.append(f"{rec['non_2xx']} non-2xx responses")
    if rec.get("socket_errors"):
        problems.append(f"{rec['socket_errors']} socket errors/timeouts")
    warnings = []
    if a.mode != "closed" and rec.get("rps", 0) < 0.95 * a.rate:
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
    if r.get("cell"):
        where = f"{r['cell']:<17} {r['shadow']:<9}"
    else:
        where = f"shadow {r['shadow']:<8}" if r.get("shadow") else f"{r['scenario']:<6}"
    extra = ""
    if r.get("shadow_hits") is not None:
        extra += f"  shadow hits {r['shadow_hits']}"
    if r.get("mirror_outcomes") and any(r["mirror_outcomes"].values()):
        extra += "  outcomes " + ",".join(f"{k}={v}" for k, v in r["mirror_outcomes"].items() if v)
    if r.get("comparisons") and any(r["comparisons"].values()):
        extra += "  compared " + ",".join(f"{k}={v}" for k, v in r["comparisons"].items() if v)
    if r.get("rss_peak_kib"):
        extra += f"  rss {r['rss_peak_kib'] / 1024:.0f} MiB"
    print(f"round {r['round']} {where}{r['mode']:<7}{r['contender']:<14}"
          f"{r.get('rps', 0):>9.0f} req/s  p50 {r.get('p50_us', 0):>7.0f}  p99 {r.get('p99_us', 0):>7.0f} us"
          f"  cpu {cpu if cpu is not None else '-':>6} us/req"
          f"  cpu0 {r['loadgen_cpu_busy_pct']:>5}%  cpu1 {r['proxy_cpu_busy_pct']:>5}%"
          f"  other {r.get('interference_pct', '?')}%"
          + extra
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


SHADOWS = ("off", "healthy", "slow", "dead")
MIRROR_MODES = ("closed", "rate", "few")
MIRROR_PUT_PEER = "nginx-mirror"  # the mirroring baseline


def fmt_time(us):
    """Latency for the mirror tables: µs when small, ms or s when a shadow stalls the client."""
    if us is None:
        return "–"
    if us < 10_000:
        return f"{us:,.0f} µs"
    if us < 1_000_000:
        return f"{us / 1000:,.1f} ms"
    return f"{us / 1e6:,.2f} s"


def fmt_time_range(st):
    """min–max of a latency, the unit written once when both ends share it."""
    if not st:
        return "–"
    lo, hi = fmt_time(st["min"]), fmt_time(st["max"])
    if lo.split()[-1] == hi.split()[-1]:
        return f"{lo.rsplit(' ', 1)[0]}–{hi}"
    return f"{lo}–{hi}"


# Two-sided 95% quantiles of Student's t, by degrees of freedom (1–30; beyond, 2.0).
T95 = [12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23, 2.20, 2.18, 2.16, 2.14, 2.13,
       2.12, 2.11, 2.10, 2.09, 2.09, 2.08, 2.07, 2.07, 2.06, 2.06, 2.06, 2.05, 2.05, 2.05, 2.04]


def paired_ci95(diffs):
    """Mean of same-round differences and its 95% confidence interval, (mean, low, high);
    None under 3 rounds. Says whether a difference of medians is larger than the rounds'
    own scatter: an interval that includes 0 is a tie this run cannot resolve."""
    if len(diffs) < 3:
        return None
    mean = statistics.fmean(diffs)
    half = (T95[len(diffs) - 2] if len(diffs) - 1 <= len(T95) else 2.0) * statistics.stdev(diffs) / len(diffs) ** 0.5
    return [round(mean, 1), round(mean - half, 1), round(mean + half, 1)]


def paired(groups, key, who, cond, base_cond, metric):
    """Per-round ratios metric(cond) / metric(base_cond) of one contender (same round)."""
    a = {r["round"]: r.get(metric) for r in groups.get((key, cond, who), [])}
    b = {r["round"]: r.get(metric) for r in groups.get((key, base_cond, who), [])}
    return [round(a[k] / b[k], 3) for k in sorted(a) if k in b and a[k] and b[k]]


def summarize_mirror(raw_all, meta, out):
    """Issue 3: the mirror suite's tables (per mode: shadow condition x contender) and targets."""
    mraw = [r for r in raw_all if r.get("suite") == "mirror"]
    if not mraw:
        return {}, []
    s = meta["settings"]
    ms = meta.get("mirror", {})
    groups = {}
    for r in mraw:
        groups.setdefault((r["mode"], r["shadow"], r["contender"]), []).append(r)
    medians = {}
    for (mode, cond, who), rs in groups.items():
        m = {k: stats([r.get(k) for r in rs]) for k in METRICS}
        m["requests"] = stats([r.get("requests") for r in rs])
        m["shadow_hits"] = stats([r.get("shadow_hits") for r in rs])
        m["hit_share"] = stats([r["shadow_hits"] / r["requests"] for r in rs
                                if r.get("shadow_hits") is not None and r.get("requests")])
        if any(r.get("mirror_outcomes") for r in rs):
            m["outcomes"] = {o: stats([(r.get("mirror_outcomes") or {}).get(o, 0) for r in rs]) for o in OUTCOMES}
        m["errors"] = sum(r.get("non_2xx", 0) + r.get("socket_errors", 0) for r in rs)
        m["failed_runs"] = sum(1 for r in rs if not r["ok"])
        medians.setdefault(mode, {}).setdefault(cond, {})[who] = m

    titles = {
        "closed": f"closed loop: wrk -t1 -c{s['connections']}",
        "rate": f"fixed rate: oha -q {s['rate']} -c{s['connections']} --latency-correction",
        "few": f"fixed rate, few connections: oha -q {ms.get('few_rate', '?')} -c{ms.get('few_connections', '?')} "
               f"--latency-correction",
    }
    out += ["", f"## Mirroring (issue 3): 64 B body, shadow answering healthy / after "
                f"{ms.get('slow_delay_s', '?')} s / dead (connection refused)", "",
            f"{s['rounds']} round(s) of {ms.get('duration_s', '?')} s (+{s['warmup_s']} s warm-up). "
            "shadow hits: requests that reached the shadow during the measured window (its nginx "
            "stub_status), with the share of the requests served. shadowtap outcomes: "
            "`shadowtap_mirror_requests_total` by outcome over the same window, counted after "
            "shadowtap's mirror queue had drained (medians per run)."]
    for mode in MIRROR_MODES:
        if mode not in medians:
            continue
        out += ["", f"### mirroring, {titles[mode]}", ""]
        out.append("| shadow | contender | req/s (min–max) | p50 | p99 (min–max) | CPU µs/req (min–max) "
                   "| requests | shadow hits (share) | shadowtap outcomes | cpu0 / cpu1 busy % | other % | errors |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for cond in SHADOWS:
            for who, m in medians[mode].get(cond, {}).items():
                label = who + (" (upstream's CPU)" if who == "direct" else "")
                p99 = m["p99_us"]
                hits = "–"
                if m["shadow_hits"]:
                    hits = f"{med(m['shadow_hits'])} ({100 * m['hit_share']['median']:.0f} %)" if m["hit_share"] \
                        else med(m["shadow_hits"])
                oc = "–"
                if m.get("outcomes") and cond != "off":
                    oc = ", ".join(f"{o} {v['median']:,.0f}" for o, v in m["outcomes"].items()
                                   if v and v["max"]) or "none"
                out.append(
                    f"| {cond} | {label} | {med(m['rps'])} ({rng(m['rps'])}) "
                    f"| {fmt_time(m['p50_us']['median'] if m['p50_us'] else None)} "
                    f"| {fmt_time(p99['median'] if p99 else None)} ({fmt_time_range(p99)}) "
                    f"| {med(m['cpu_us_per_req'], 1)} ({rng(m['cpu_us_per_req'], 1)}) "
                    f"| {med(m['requests'])} | {hits} | {oc} "
                    f"| {med(m['loadgen_cpu_busy_pct'])} / {med(m['proxy_cpu_busy_pct'])} "
                    f"| {med(m['interference_pct'], 1)} | {m['errors']} |")

    # The issue-3 targets: with the slow or the dead shadow, shadowtap keeps >= 95 % of its
    # healthy-shadow throughput and its p99 within +10 %. nginx-mirror's ratios alongside.
    checks = [("throughput (req/s) ≥ 95 % of healthy", "closed", "rps", lambda x: x >= 0.95, True),
              ("p99 ≤ healthy + 10 %", "rate", "p99_us", lambda x: x <= 1.10, True),
              ("p99 ≤ healthy + 10 %", "few", "p99_us", lambda x: x <= 1.10, True),
              ("p99 ≤ healthy + 10 % (closed loop: informational)", "closed", "p99_us", lambda x: x <= 1.10, False)]
    targets = []
    for name, mode, metric, ok, binding in checks:
        conds = medians.get(mode, {})
        for cond in ("slow", "dead"):
            row = {"target": name, "mode": mode, "metric": metric, "condition": cond, "binding": binding}
            for who in (PUT, MIRROR_PUT_PEER):
                h, c = conds.get("healthy", {}).get(who), conds.get(cond, {}).get(who)
                if not h or not c or not h[metric] or not c[metric] or not h[metric]["median"]:
                    continue
                r = c[metric]["median"] / h[metric]["median"]
                row[who] = {"healthy": h[metric]["median"], cond: c[metric]["median"], "ratio": r,
                            "per_round": paired(groups, mode, who, cond, "healthy", metric)}
            if PUT in row:
                row["met"] = ok(row[PUT]["ratio"])
                targets.append(row)
    if targets:
        out += ["", "### issue-3 targets (shadowtap, slow or dead shadow vs healthy shadow, medians of this run)", ""]
        out.append("| target | mode | shadow | shadowtap healthy → this shadow | ratio (per round) | verdict "
                   "| nginx-mirror healthy → this shadow | nginx-mirror ratio |")
        out.append("|---|---|---|---|---|---|---|---|")
        for t in targets:
            f = (lambda v: f"{v:,.0f}") if t["metric"] == "rps" else fmt_time
            p = t[PUT]
            pr = ", ".join(f"{x:.2f}" for x in p["per_round"])
            n = t.get(MIRROR_PUT_PEER)
            verdict = ("met" if t["met"] else "NOT met") if t["binding"] else ("(ok)" if t["met"] else "(over)")
            n_span = f"{f(n['healthy'])} → {f(n[t['condition']])}" if n else "–"
            n_ratio = f"{n['ratio']:.2f}" if n else "–"
            out.append(f"| {t['target']} | {t['mode']} | {t['condition']} | {f(p['healthy'])} → {f(p[t['condition']])} "
                       f"| {p['ratio']:.3f} ({pr}) | {verdict} "
                       f"| {n_span} | {n_ratio} |")
        binding = [t for t in targets if t["binding"]]
        out += ["", "issue-3 targets: " + ("all met" if all(t["met"] for t in binding)
                                           else f"{sum(not t['met'] for t in binding)} of {len(binding)} NOT met")]
    return medians, targets


def run_label(r):
    """Which run a warning or failure is about."""
    if r.get("cell"):
        return f"round {r['round']} perf {r['cell']} {r['shadow']} {r['contender']}"
    where = f"mirror {r['shadow']}" if r.get("shadow") else r["scenario"]
    return f"round {r['round']} {where} {r['mode']} {r['contender']}"


def cmd_summarize(a):
    raw_all = [json.loads(l) for l in open(a.raw) if l.strip()]
    raw = [r for r in raw_all if r.get("suite", "live") == "live"]
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
                    # Beside the verdict (medians over rounds): the same-round difference of
                    # p50s, which drift between rounds does not move (rounds are interleaved).
                    pairs = {}
                    for r in groups[(scenario, mode, PUT)]:
                        pairs[r["round"]] = [r.get("p50_us")]
                    for r in groups[(scenario, mode, "nginx-proxy")]:
                        pairs.setdefault(r["round"], [None]).append(r.get("p50_us"))
                    diffs = [p[0] - p[1] for p in pairs.values()
                             if len(p) == 2 and p[0] is not None and p[1] is not None]
                    targets.append({
                        "target": f"added p50 at {s['rate']}/s ≤ nginx-proxy's", "scenario": scenario,
                        "mode": mode, "shadowtap": pa, "nginx-proxy": na, "met": pa <= na,
                        "ranges_overlap": None,
                        "same_round_p50_diff_us": diffs,
                        "same_round_p50_diff_median_us": statistics.median(diffs) if diffs else None,
                        "same_round_p50_diff_ci95_us": paired_ci95(diffs)})
    if targets:
        out += ["", "## issue-2 targets (shadowtap vs nginx-proxy, medians of this run)", ""]
        out.append("| target | scenario | mode | shadowtap | nginx-proxy | verdict |")
        out.append("|---|---|---|---|---|---|")
        for t in targets:
            note = ""
            if t["ranges_overlap"]:
                note = " (min–max ranges overlap)"
            diffs = t.get("same_round_p50_diff_us")
            if diffs:
                note += (f" (same-round p50 − nginx-proxy's: median {t['same_round_p50_diff_median_us']:+.0f} µs; "
                         f"not above nginx's in {sum(d <= 0 for d in diffs)} of {len(diffs)} rounds")
                ci = t.get("same_round_p50_diff_ci95_us")
                if ci:
                    note += (f"; mean {ci[0]:+.0f} µs, 95% CI [{ci[1]:+.0f}, {ci[2]:+.0f}]"
                             + (" — includes 0: a tie at this run's resolution" if ci[1] <= 0 <= ci[2] else ""))
                note += ")"
            out.append(f"| {t['target']} | {t['scenario']} | {t['mode']} | {t['shadowtap']:.1f} "
                       f"| {t['nginx-proxy']:.1f} | {'met' if t['met'] else 'NOT met'}{note} |")

    mirror_medians, mirror_targets = summarize_mirror(raw_all, meta, out)
    perf_medians, perf_targets, perf_memory = perf_report.summarize_perf(raw_all, meta, out)

    raw = raw_all
    rerun = [r for r in raw if r.get("attempts", 1) > 1]
    out += ["", f"busy %: how busy each cpu was (cpu0: load generator + upstream, cpu1: the contender); "
                f"other %: cpu time used by processes outside this test (median). "
                f"{len(rerun)} of {len(raw)} runs were re-run because other processes used more than "
                f"{s['max_interference_pct']}% of a cpu."]
    failed = [r for r in raw if not r["ok"]]
    warnings = [r for r in raw if r.get("warning")]
    if warnings:
        out += ["", "Warnings:"] + [f"- {run_label(r)}: {r['warning']}" for r in warnings]
    if failed:
        out += ["", "FAILED runs:"] + [f"- {run_label(r)}: " + "; ".join(r["problems"]) for r in failed]
    text = "\n".join(out)
    print(text)
    json.dump({"meta": meta, "medians": medians, "targets": targets, "mirror_medians": mirror_medians,
               "mirror_targets": mirror_targets, "perf_medians": perf_medians, "perf_targets": perf_targets,
               "perf_memory": perf_memory, "runs": raw, "table_markdown": text},
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
        healthy = [r for r in raw if r.get("suite") == "mirror" and r["contender"] == PUT
                   and r.get("shadow") == "healthy"]
        if healthy and not any(r.get("shadow_hits") and (r.get("mirror_outcomes") or {}).get("completed")
                               for r in healthy):
            print(f"SMOKE FAILED: {PUT} mirrored nothing to the healthy shadow", file=sys.stderr)
            return 1
        perf_broken = perf_report.smoke_problems(raw, meta)
        if perf_broken:
            print("SMOKE FAILED: " + "; ".join(perf_broken), file=sys.stderr)
            return 1
        perf = any(r.get("suite") == "perf" for r in raw)
        print("smoke ok: every contender served every request with a 2xx"
              + ("; shadowtap mirrored to the healthy shadow" if healthy else "")
              + ("; perf suite: every mirroring contender reached the shadow, shadowtap compared pairs" if perf else ""))
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
    r.add_argument("--mode", choices=("closed", "rate", "few"), required=True)
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
    r.add_argument("--suite", default="live")
    r.add_argument("--shadow")
    r.add_argument("--connections", type=int)
    r.add_argument("--shadow-ticks", type=int, nargs=2)
    r.add_argument("--scrape", nargs=2)
    r.add_argument("--drained", type=float)
    r.add_argument("--seconds", type=int)
    r.add_argument("--cell")
    r.add_argument("--proto", default="h1")
    r.add_argument("--rss")
    rs = sub.add_parser("rss")
    rs.add_argument("pid", type=int)
    mj = sub.add_parser("make-json")
    mj.add_argument("file")
    mj.add_argument("bytes", type=int)
    sc = sub.add_parser("scrape")
    sc.add_argument("--metrics")
    sc.add_argument("--shadow-status")
    dr = sub.add_parser("drain")
    dr.add_argument("--metrics", required=True)
    dr.add_argument("--max", type=float, default=7.0)
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
            "scrape": cmd_scrape, "drain": cmd_drain, "rss": cmd_rss, "make-json": cmd_make_json,
            "last": cmd_last, "summarize": cmd_summarize}[a.cmd](a) or 0


if __name__ == "__main__":
    sys.exit(main())
