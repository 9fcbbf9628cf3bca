"""The perf suite's report (issue 5), used by harness.py summarize (stdlib only).

One table per cell (a load shape: request, protocol, connections, mode) with a row per
(mirroring condition, contender): medians over rounds with (min-max) ranges, CPU µs per
request and its ratios against `direct` and the nginx and Envoy peers of the same condition,
the peak RSS, shadow hits and shadowtap's own mirror and comparison counts. Then the issue's
targets as a verdict table, and the memory of every process over the whole run.
"""
import statistics

PUT = "shadowtap"
NGINX_OFF, NGINX_MIRROR, ENVOY_MIRROR = "nginx-proxy", "nginx-mirror", "envoy-mirror"
CONDITIONS = ("off", "m100", "m10", "slow50ms", "slow1s", "dead")
CONDITION_LABELS = {
    "off": "off (no mirroring)", "m100": "100 % → healthy", "m10": "10 % → healthy",
    "slow50ms": "100 % → 50 ms late", "slow1s": "100 % → 1 s late", "dead": "100 % → dead",
}
SCENARIO_LABELS = {"small": "GET, 64 B answer", "json": "GET, 16 KiB JSON answer",
                   "post": "POST of 64 KiB JSON (mirrored by opt-in), small JSON answer",
                   "large": "GET, 16 KiB answer"}
PROTOCOL_LABELS = {"h1": "HTTP/1.1", "h2": "HTTP/2 (h2c, prior knowledge)"}
METRICS = ("rps", "p50_us", "p99_us", "p999_us", "cpu_us_per_req", "loadgen_cpu_busy_pct",
           "proxy_cpu_busy_pct", "interference_pct", "requests", "shadow_hits", "rss_peak_kib")
# The targets.
CPU_VS_NGINX_MIRROR, CPU_VS_ENVOY_MIRROR = 0.45, 0.55
ADDED_P50_SLACK_US = 20.0
FEW_P50_SLACK = 1.20
SERVED_SHARE = 0.99


# ------------------------------------------------------------------ numbers

def stats(values):
    v = [x for x in values if x is not None]
    if not v:
        return None
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}


def median(st):
    return st["median"] if st else None


def fmt(x, digits=0):
    return "–" if x is None else f"{x:,.{digits}f}"


def fmt_range(st, digits=0):
    return f"{fmt(st['min'], digits)}–{fmt(st['max'], digits)}" if st else "–"


def fmt_time(us):
    """µs when small, ms or s when a late shadow holds clients."""
    if us is None:
        return "–"
    if us < 10_000:
        return f"{us:,.0f} µs"
    if us < 1_000_000:
        return f"{us / 1000:,.1f} ms"
    return f"{us / 1e6:,.2f} s"


def fmt_time_range(st):
    if not st:
        return "–"
    lo, hi = fmt_time(st["min"]), fmt_time(st["max"])
    if lo.split()[-1] == hi.split()[-1]:
        return f"{lo.rsplit(' ', 1)[0]}–{hi}"
    return f"{lo}–{hi}"


def mib(kib):
    return "–" if not kib else f"{kib / 1024:,.1f}"


def ratio(a, b):
    a, b = median(a), median(b)
    return a / b if a is not None and b else None


def paired_ratios(runs_a, runs_b, metric):
    """Per-round ratios metric(a) / metric(b) from the same round (drift hits both alike)."""
    b = {r["round"]: r.get(metric) for r in runs_b}
    return [round(r[metric] / b[r["round"]], 3) for r in sorted(runs_a, key=lambda r: r["round"])
            if r.get(metric) and b.get(r["round"])]


# ------------------------------------------------------------------ grouping

def group(runs):
    """{(cell, condition, contender): [runs]}"""
    groups = {}
    for r in runs:
        groups.setdefault((r["cell"], r["shadow"], r["contender"]), []).append(r)
    return groups


def summarize_group(rs):
    m = {k: stats([r.get(k) for r in rs]) for k in METRICS}
    m["rss_peak_max_kib"] = max((r.get("rss_peak_kib") or 0 for r in rs), default=0) or None
    m["hit_share"] = stats([r["shadow_hits"] / r["requests"] for r in rs
                            if r.get("shadow_hits") is not None and r.get("requests")])
    m["served_share"] = stats([r["requests"] / r["offered_requests"] for r in rs
                               if r.get("offered_requests") and r.get("requests") is not None])
    if any(r.get("mirror_outcomes") for r in rs):
        m["outcomes"] = {o: stats([(r.get("mirror_outcomes") or {}).get(o, 0) for r in rs])
                         for o in {k for r in rs for k in (r.get("mirror_outcomes") or {})}}
    if any(r.get("comparisons") for r in rs):
        m["comparisons"] = {c: stats([(r.get("comparisons") or {}).get(c, 0) for r in rs])
                            for c in {k for r in rs for k in (r.get("comparisons") or {})}}
        m["compare_dropped"] = stats([r.get("compare_dropped", 0) for r in rs])
    m["errors"] = sum(r.get("non_2xx", 0) + r.get("socket_errors", 0) for r in rs)
    m["failed_runs"] = sum(1 for r in rs if not r["ok"])
    return m


# ------------------------------------------------------------------ tables

def cell_title(cell, s, ms):
    conns, mode, rate = cell["connections"], cell["mode"], cell.get("rate")
    if mode == "closed":
        tool = "wrk -t1" if cell["protocol"] == "h1" else "oha (no rate: wrk has no HTTP/2)"
        how = f"closed loop ({tool} -c{conns})"
    else:
        how = f"fixed rate {rate:,}/s over {conns} connection{'s' if conns != 1 else ''} (oha --latency-correction)"
    return (f"### {cell['cell']}: {SCENARIO_LABELS.get(cell['scenario'], cell['scenario'])}, "
            f"{PROTOCOL_LABELS.get(cell['protocol'], cell['protocol'])}, {how}")


def nginx_peer(cond):
    return NGINX_OFF if cond == "off" else NGINX_MIRROR


def shadowtap_counts(m):
    """shadowtap's non-zero mirror outcomes and comparison results (medians per run)."""
    parts = []
    if m.get("outcomes"):
        parts += [f"{o} {v['median']:,.0f}" for o, v in sorted(m["outcomes"].items()) if v and v["max"]]
    if m.get("comparisons"):
        comp = [f"{c} {v['median']:,.0f}" for c, v in sorted(m["comparisons"].items()) if v and v["max"]]
        if comp:
            parts.append("compared: " + ", ".join(comp))
        if m.get("compare_dropped") and m["compare_dropped"]["max"]:
            parts.append(f"compare dropped {m['compare_dropped']['median']:,.0f}")
    return "; ".join(parts) or "–"


def cell_table(cell, medians, envoy, out):
    cname = cell["cell"]
    rows = medians.get(cname, {})
    direct = rows.get("off", {}).get("direct")
    rate_like = cell["mode"] != "closed"
    out.append("")
    out.append("| condition | contender | req/s (min–max) | p50 | added p50 | p99 (min–max) | p99.9 "
               "| CPU µs/req (min–max) | × direct | × nginx¹ | × envoy-mirror | peak RSS MiB "
               "| shadow hits (share) | shadowtap: outcomes; comparisons | cpu0 / cpu1 busy % | other % | errors |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for cond in cell["conditions"]:
        whos = dict(rows.get(cond, {}))
        order = ["direct", NGINX_OFF, PUT] if cond == "off" else [NGINX_MIRROR, ENVOY_MIRROR, PUT]
        for who in order:
            m = whos.get(who)
            if m is None:
                if who == ENVOY_MIRROR and envoy.get("status") != "present":
                    out.append(f"| {CONDITION_LABELS[cond]} | envoy-mirror | absent: {envoy.get('note', '?')}"
                               + " | –" * 14 + " |")
                continue
            label = who + (" (upstream's CPU)" if who == "direct" else "")
            added = "–"
            if rate_like and direct and who != "direct" and m["p50_us"] and direct["p50_us"]:
                added = fmt_time(m["p50_us"]["median"] - direct["p50_us"]["median"])
            peer_n = whos.get(nginx_peer(cond))
            peer_e = whos.get(ENVOY_MIRROR) if cond != "off" else None
            hits = "–"
            if cond != "off" and m["shadow_hits"]:
                share = f" ({100 * m['hit_share']['median']:.0f} %)" if m["hit_share"] else ""
                hits = f"{fmt(median(m['shadow_hits']))}{share}"
            out.append(
                f"| {CONDITION_LABELS[cond]} | {label} | {fmt(median(m['rps']))} ({fmt_range(m['rps'])}) "
                f"| {fmt_time(median(m['p50_us']))} | {added} "
                f"| {fmt_time(median(m['p99_us']))} ({fmt_time_range(m['p99_us'])}) | {fmt_time(median(m['p999_us']))} "
                f"| {fmt(median(m['cpu_us_per_req']), 1)} ({fmt_range(m['cpu_us_per_req'], 1)}) "
                f"| {fmt(ratio(m['cpu_us_per_req'], direct['cpu_us_per_req']) if direct else None, 2)} "
                f"| {fmt(ratio(m['cpu_us_per_req'], peer_n['cpu_us_per_req']) if peer_n else None, 2)} "
                f"| {fmt(ratio(m['cpu_us_per_req'], peer_e['cpu_us_per_req']) if peer_e else None, 2)} "
                f"| {mib(m['rss_peak_max_kib'])} | {hits} "
                f"| {shadowtap_counts(m) if who == PUT and cond != 'off' else '–'} "
                f"| {fmt(median(m['loadgen_cpu_busy_pct']))} / {fmt(median(m['proxy_cpu_busy_pct']))} "
                f"| {fmt(median(m['interference_pct']), 1)} | {m['errors']} |")


# ------------------------------------------------------------------ targets

def target_rows(cells, groups, medians, settings, envoy):
    """The issue's targets, one row per (target, cell[, condition]) the run can judge."""
    rows = []

    def runs(cell, cond, who):
        return groups.get((cell, cond, who), [])

    for cell in cells:
        c = cell["cell"]
        by = medians.get(c, {})
        rate_like = cell["mode"] != "closed"
        # Mirroring 100 % to a healthy shadow with comparison on: CPU and fixed-rate p99.
        healthy = by.get("m100", {})
        if PUT in healthy:
            p = healthy[PUT]
            for peer, limit in ((NGINX_MIRROR, CPU_VS_NGINX_MIRROR), (ENVOY_MIRROR, CPU_VS_ENVOY_MIRROR)):
                row = {"target": f"CPU µs/req ≤ {limit}× {peer} (100 % → healthy, comparison on)",
                       "cell": c, "condition": "m100", "binding": True,
                       "shadowtap": median(p["cpu_us_per_req"])}
                if peer in healthy and ratio(p["cpu_us_per_req"], healthy[peer]["cpu_us_per_req"]) is not None:
                    r = ratio(p["cpu_us_per_req"], healthy[peer]["cpu_us_per_req"])
                    row.update({"reference": median(healthy[peer]["cpu_us_per_req"]), "ratio": r,
                                "per_round": paired_ratios(runs(c, "m100", PUT), runs(c, "m100", peer),
                                                           "cpu_us_per_req"),
                                "met": r <= limit})
                else:
                    row.update({"met": None, "why": f"{peer} not measured"
                                + (f" ({envoy.get('note')})" if peer == ENVOY_MIRROR and envoy.get("status") != "present" else "")})
                rows.append(row)
            if rate_like and cell["mode"] == "rate":
                for peer in (NGINX_MIRROR, ENVOY_MIRROR):
                    row = {"target": f"p99 at a fixed rate ≤ {peer}'s (100 % → healthy)", "cell": c,
                           "condition": "m100", "binding": True, "shadowtap": median(p["p99_us"]), "unit": "time"}
                    if peer in healthy and median(healthy[peer]["p99_us"]):
                        ref = median(healthy[peer]["p99_us"])
                        row.update({"reference": ref, "ratio": median(p["p99_us"]) / ref,
                                    "per_round": paired_ratios(runs(c, "m100", PUT), runs(c, "m100", peer), "p99_us"),
                                    "met": median(p["p99_us"]) <= ref})
                    else:
                        row.update({"met": None, "why": f"{peer} not measured"})
                    rows.append(row)
        # Mirroring off: CPU no more than nginx as a plain proxy; added p50 within 20 µs of nginx's.
        off = by.get("off", {})
        if PUT in off and NGINX_OFF in off:
            p, n = off[PUT], off[NGINX_OFF]
            r = ratio(p["cpu_us_per_req"], n["cpu_us_per_req"])
            if r is not None:
                rows.append({"target": "mirroring off: CPU µs/req ≤ nginx-proxy", "cell": c, "condition": "off",
                             "binding": True, "shadowtap": median(p["cpu_us_per_req"]),
                             "reference": median(n["cpu_us_per_req"]), "ratio": r,
                             "per_round": paired_ratios(runs(c, "off", PUT), runs(c, "off", NGINX_OFF), "cpu_us_per_req"),
                             "met": r <= 1.0})
            d = off.get("direct")
            if cell["mode"] == "rate" and d and median(d["p50_us"]) is not None and median(p["p50_us"]) is not None \
                    and median(n["p50_us"]) is not None:
                pa = median(p["p50_us"]) - median(d["p50_us"])
                na = median(n["p50_us"]) - median(d["p50_us"])
                at_rate = cell.get("rate") == settings.get("rate")
                rows.append({"target": f"mirroring off: added p50 ≤ nginx-proxy's + {ADDED_P50_SLACK_US:.0f} µs "
                                       f"(at {cell.get('rate'):,}/s" + ("" if at_rate else ", informational") + ")",
                             "cell": c, "condition": "off", "binding": at_rate, "unit": "time",
                             "shadowtap": pa, "reference": na, "difference_us": pa - na,
                             "met": pa - na <= ADDED_P50_SLACK_US})
        # Few connections, late or dead shadow: every offered request served, p50 within 20 %
        # of the healthy-shadow run. shadowtap is judged; the peers are shown alongside.
        if cell["mode"] == "few":
            for cond in ("slow50ms", "slow1s", "dead"):
                if cond not in by:
                    continue
                for who in (PUT, NGINX_MIRROR, ENVOY_MIRROR):
                    m, h = by[cond].get(who), by.get("m100", {}).get(who)
                    if not m:
                        continue
                    served = median(m["served_share"])
                    row = {"target": "few connections: every offered request served", "cell": c,
                           "condition": cond, "contender": who, "binding": who == PUT,
                           "shadowtap" if who == PUT else "value": served, "unit": "share",
                           "met": served is not None and served >= SERVED_SHARE and m["errors"] == 0}
                    rows.append(row)
                    if h and median(h["p50_us"]) and median(m["p50_us"]) is not None:
                        r = median(m["p50_us"]) / median(h["p50_us"])
                        rows.append({"target": f"few connections: p50 ≤ {FEW_P50_SLACK:.2f}× the healthy-shadow p50",
                                     "cell": c, "condition": cond, "contender": who, "binding": who == PUT,
                                     "unit": "time", "shadowtap" if who == PUT else "value": median(m["p50_us"]),
                                     "reference": median(h["p50_us"]), "ratio": r,
                                     "per_round": paired_ratios(runs(c, cond, who), runs(c, "m100", who), "p50_us"),
                                     "met": r <= FEW_P50_SLACK})
    return rows


def verdict(row):
    if row.get("met") is None:
        return "not measured"
    if row["binding"]:
        return "met" if row["met"] else "NOT met"
    return "(ok)" if row["met"] else "(over)"


def show_value(row, key):
    v = row.get(key)
    if v is None:
        return "–"
    unit = row.get("unit")
    if unit == "time":
        return fmt_time(v)
    if unit == "share":
        return f"{100 * v:.1f} % served"
    return fmt(v, 1)


def targets_table(rows, out, smoke=False):
    out += ["", "### issue-5 targets (medians of this run; ratios are shadowtap / reference, "
                "per-round paired ratios in brackets)", ""]
    if smoke:
        out += ["A --smoke run (1 s runs, no warm-up, one round): these verdicts say nothing; "
                "the smoke checks only that every contender works.", ""]
    out.append("| target | cell | condition | who | value | reference | ratio / difference (per round) | verdict |")
    out.append("|---|---|---|---|---|---|---|---|")
    for t in rows:
        who = t.get("contender", PUT)
        value = show_value(t, "shadowtap" if who == PUT else "value")
        if "ratio" in t:
            rel = f"{t['ratio']:.2f}" + (f" ({', '.join(f'{x:.2f}' for x in t['per_round'])})" if t.get("per_round") else "")
        elif "difference_us" in t:
            rel = f"{t['difference_us']:+,.0f} µs"
        else:
            rel = t.get("why", "–")
        out.append(f"| {t['target']} | {t['cell']} | {CONDITION_LABELS.get(t['condition'], t['condition'])} "
                   f"| {who} | {value} | {show_value(t, 'reference')} | {rel} | {verdict(t)} |")
    binding = [t for t in rows if t["binding"] and t.get("met") is not None]
    missing = [t for t in rows if t["binding"] and t.get("met") is None]
    failed = [t for t in binding if not t["met"]]
    out += ["", f"issue-5 targets: {len(binding) - len(failed)} of {len(binding)} met"
            + (f"; {len(missing)} not measured" if missing else "")
            + ("" if binding else " (nothing to judge in this run)")]


# ------------------------------------------------------------------ memory

def instance_name(who, cond):
    return who if cond == "off" else f"{who}@perf-{cond}"


def memory_rows(runs, meta):
    """Per process: RSS when started (idle), the peak over all its perf runs and the run it was
    in, and the RSS at the end of its last run (flat = no growth). `runs` in execution order."""
    idle = meta.get("rss_idle_kib") or {}
    procs = {}
    for r in runs:
        if r.get("rss_peak_kib"):
            procs.setdefault((r["contender"], r["shadow"]), []).append(r)
    rows = []
    for (who, cond), rs in sorted(procs.items(), key=lambda kv: (CONDITIONS.index(kv[0][1]), kv[0][0])):
        peak = max(rs, key=lambda r: r["rss_peak_kib"])
        rows.append({"contender": who, "condition": cond, "idle_kib": idle.get(instance_name(who, cond)),
                     "peak_kib": peak["rss_peak_kib"], "peak_cell": peak["cell"], "peak_round": peak["round"],
                     "end_kib": rs[-1].get("rss_last_kib")})
    return rows


def memory_table(rows, out):
    out += ["", "### Memory: RSS of each process (MiB; nginx: master + worker; direct: the upstream nginx)", "",
            "Sampled every 200 ms during every measured run. The processes live for the whole script, so a "
            "peak can carry memory over from an earlier cell (allocators keep freed pages); the idle "
            "column is right after start-up and one check request.", ""]
    out.append("| contender | condition | idle | peak (cell, round) | end of its last run |")
    out.append("|---|---|---|---|---|")
    for m in rows:
        out.append(f"| {m['contender']} | {CONDITION_LABELS[m['condition']]} | {mib(m['idle_kib'])} "
                   f"| {mib(m['peak_kib'])} ({m['peak_cell']}, {m['peak_round']}) | {mib(m['end_kib'])} |")
    dead = [m for m in rows if m["condition"] == "dead"]
    if dead:
        out += ["", "Peak RSS under a dead shadow: " + ", ".join(f"{m['contender']} {mib(m['peak_kib'])} MiB"
                                                             for m in dead) + "."]


# ------------------------------------------------------------------ entry

def summarize_perf(raw_all, meta, out):
    """Appends the perf suite's tables to `out`; returns (medians, targets, memory) for the JSON."""
    runs = [r for r in raw_all if r.get("suite") == "perf"]
    perf = meta.get("perf") or {}
    if not runs or not perf:
        return {}, [], []
    envoy = perf.get("envoy") or {}
    groups = group(runs)
    medians = {}
    for (cell, cond, who), rs in groups.items():
        medians.setdefault(cell, {}).setdefault(cond, {})[who] = summarize_group(rs)
    s = meta["settings"]
    out += ["", "## Perf suite (issue 5): shadowtap with mirroring and comparison on, next to nginx-mirror "
                "and envoy-mirror", "",
            f"{s['rounds']} interleaved round(s) of {perf.get('duration_s')} s (+{perf.get('warmup_s')} s warm-up) "
            "per (cell, condition, contender); medians, (min–max) over rounds. Envoy: "
            + (envoy.get("note", "?") if envoy.get("status") == "present" else f"**absent** ({envoy.get('note', '?')})")
            + ". ¹ × nginx: against nginx-proxy with mirroring off, nginx-mirror otherwise (same condition). "
            "added p50: p50 minus direct's p50 in the same cell. shadowtap's counts are medians per run, "
            "after its mirror queue drained. peak RSS: the highest sample over the rounds."]
    for cell in perf.get("cells", []):
        if cell["cell"] not in medians:
            continue
        out += ["", cell_title(cell, s, perf)]
        cell_table(cell, medians, envoy, out)
    targets = target_rows(perf.get("cells", []), groups, medians, s, envoy)
    if targets:
        targets_table(targets, out, bool(s.get("smoke")))
    memory = memory_rows(runs, meta)
    if memory:
        memory_table(memory, out)
    return medians, targets, memory


def smoke_problems(raw_all, meta):
    """--check for the perf suite: a mirroring contender that mirrored nothing to the healthy
    shadow, or a shadowtap that compared nothing, is broken (timings never fail a smoke)."""
    runs = [r for r in raw_all if r.get("suite") == "perf" and r.get("shadow") in ("m100", "m10")]
    problems = []
    for who in sorted({r["contender"] for r in runs}):
        mine = [r for r in runs if r["contender"] == who]
        if not any(r.get("shadow_hits") for r in mine):
            problems.append(f"{who} mirrored nothing to the healthy shadow (perf suite)")
        if who == PUT and not any(sum((r.get("comparisons") or {}).values()) for r in mine):
            problems.append(f"{who} compared no pair (perf suite)")
    return problems
