#!/usr/bin/env bash
# What a config reload costs the live traffic: the same fixed-rate load on shadowtap,
# mirroring every request to a shadow and comparing, once steady and once while the config
# is reloaded (POST /api/v1/reload) every INTERVAL seconds, alternating between two files
# that differ (the shadow's percent: 100 and 50, so each reload changes a route). Reports
# the latency percentiles the load generator saw in each phase, the failed requests, and
# the ratio of the reloading phase's p99 to the steady one's (medians over the rounds).
#
#   loadtests/reload.sh [--rounds N] [--duration S] [--rate R] [--interval S] [--ports BASE]
#                       [--json OUT] [--smoke]
#
# shadowtap runs on cpu 1 (one worker); the upstream nginx, the shadow nginx, the load
# generator (oha -q RATE -c 64 --latency-correction) and the reloader on cpu 0. Each round
# runs both phases, the order alternating between rounds; a 2 s warm-up comes first.
# Defaults: 5 rounds of 10 s at 2,000 req/s, a reload every 0.5 s, ports 18400+.
# --smoke: 1 round of 2 s (CI: the script cannot rot). Exits 1 if any request failed or any
# reload was refused. Without SHADOWTAP_BIN it builds target/release/shadowtap. Needs nginx,
# oha, curl, python3 (loadtests/run.sh --smoke installs them). Only 127.0.0.1; everything
# started here is stopped by its PID on exit.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
ROUNDS=5; DURATION=10; RATE=2000; INTERVAL=0.5; PORTS=18400; JSON_OUT=""
LOADGEN_CPU="${LOADGEN_CPU:-0}"; PROXY_CPU="${PROXY_CPU:-1}"
while (($#)); do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2;;
    --duration) DURATION="$2"; shift 2;;
    --rate) RATE="$2"; shift 2;;
    --interval) INTERVAL="$2"; shift 2;;
    --ports) PORTS="$2"; shift 2;;
    --json) JSON_OUT="$2"; shift 2;;
    --smoke) ROUNDS=1; DURATION=2; shift;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
for n in "$ROUNDS" "$DURATION" "$RATE"; do
  [[ "$n" =~ ^[0-9]+$ && "$n" -ge 1 ]] || { echo "numbers must be positive integers: $n" >&2; exit 2; }
done
[[ "$INTERVAL" =~ ^[0-9]*\.?[0-9]+$ ]] || { echo "--interval: seconds, e.g. 0.5" >&2; exit 2; }
for tool in nginx oha curl python3 taskset; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run loadtests/run.sh --smoke once to install the tools" >&2; exit 1; }
done
# shellcheck source=loadtests/lib.sh
source "$HERE/lib.sh"
set_ports "$PORTS"
shadowtap_binary "$ROOT"

RUN_DIR="$(mktemp -d /tmp/shadowtap-reload.XXXXXX)"; chmod 755 "$RUN_DIR"
mkdir -p "$RUN_DIR"/{www,tmp}
PIDS=(); RELOADER=""
cleanup() {
  local rc=$? pid
  for pid in $RELOADER "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$RUN_DIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
taskset -p -c "$LOADGEN_CPU" $$ >/dev/null

start_upstream "$RUN_DIR" "$UPSTREAM_PORT" "$H2_PORT"
start_upstream "$RUN_DIR/shadow" "$SHADOW_PORT" "$SHADOW_H2_PORT"
write_shadowtap_config "$RUN_DIR/every.toml" 1
MIRROR_PERCENT=50 write_shadowtap_config "$RUN_DIR/half.toml" 1
cmp -s "$RUN_DIR/every.toml" "$RUN_DIR/half.toml" && { echo "the two configs do not differ" >&2; exit 1; }
cp "$RUN_DIR/every.toml" "$RUN_DIR/shadowtap.toml"
taskset -c "$PROXY_CPU" env RUST_LOG=warn "$SHADOWTAP_BIN" run --config "$RUN_DIR/shadowtap.toml" \
  >"$RUN_DIR/shadowtap.out" 2>&1 &
PIDS+=($!)
wait_port "$LISTEN_PORT"; wait_port "$ADMIN_PORT"
URL="http://127.0.0.1:$LISTEN_PORT/"

# Reloads every INTERVAL until killed, swapping the two files (a rename: never half a file);
# each answer's status goes to RUN_DIR/reloads.
reloader() {
  local next=half
  while true; do
    cp "$RUN_DIR/$next.toml" "$RUN_DIR/shadowtap.next" && mv "$RUN_DIR/shadowtap.next" "$RUN_DIR/shadowtap.toml"
    curl -s -o /dev/null -w '%{http_code}\n' -X POST "http://127.0.0.1:$ADMIN_PORT/api/v1/reload" >>"$RUN_DIR/reloads"
    if [[ "$next" == half ]]; then next=every; else next=half; fi
    sleep "$INTERVAL"
  done
}

load() { # SECONDS OUT
  oha --no-tui -q "$RATE" --latency-correction -c 64 -z "$1"s --output-format json "$URL" >"$2"
}

echo "== hot reload under load: $ROUNDS round(s) of $DURATION s at $RATE req/s, a reload every $INTERVAL s ($SHADOWTAP_BIN)"
load 2 "$RUN_DIR/warmup.json"
: >"$RUN_DIR/reloads"
for round in $(seq 1 "$ROUNDS"); do
  phases=(steady reloading)
  ((round % 2)) || phases=(reloading steady)
  for phase in "${phases[@]}"; do
    if [[ "$phase" == reloading ]]; then
      reloader & RELOADER=$!
    fi
    load "$DURATION" "$RUN_DIR/$phase-$round.json"
    if [[ -n "$RELOADER" ]]; then
      kill -TERM "$RELOADER" 2>/dev/null || true; wait "$RELOADER" 2>/dev/null || true; RELOADER=""
    fi
  done
done

python3 - "$RUN_DIR" "$ROUNDS" "$JSON_OUT" <<'EOF'
import json, statistics, sys
run, rounds, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def phase(name):
    rows = []
    for r in range(1, rounds + 1):
        d = json.load(open(f"{run}/{name}-{r}.json"))
        codes = d.get("statusCodeDistribution", {})
        ok = sum(n for code, n in codes.items() if code.startswith("2"))
        failed = sum(n for code, n in codes.items() if not code.startswith("2"))
        errors = dict(d.get("errorDistribution", {}))
        # oha cuts the requests still under way when -z runs out: the load's end, not a failure.
        cut = errors.pop("aborted due to deadline", 0)
        failed += sum(errors.values())
        p = d["latencyPercentiles"]
        kinds = {code: n for code, n in codes.items() if not code.startswith("2")}
        kinds.update(errors)
        rows.append({"requests": ok + failed, "failed": failed, "cut_at_end": cut, "failures": kinds, "p50_ms": p["p50"] * 1e3,
                     "p99_ms": p["p99"] * 1e3, "max_ms": d["summary"]["slowest"] * 1e3})
    return rows
steady, reloading = phase("steady"), phase("reloading")
reloads = [line.strip() for line in open(f"{run}/reloads") if line.strip()]
refused = [code for code in reloads if code != "200"]
med = lambda rows, key: statistics.median(row[key] for row in rows)
print(f"{'phase':<10} {'requests':>9} {'failed':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}   (medians over {rounds} round(s))")
for name, rows in (("steady", steady), ("reloading", reloading)):
    print(f"{name:<10} {sum(r['requests'] for r in rows):>9} {sum(r['failed'] for r in rows):>7} "
          f"{med(rows, 'p50_ms'):>8.2f} {med(rows, 'p99_ms'):>8.2f} {med(rows, 'max_ms'):>8.2f}")
ratio = med(reloading, "p99_ms") / med(steady, "p99_ms")
print(f"reloads: {len(reloads)} ({len(refused)} refused); p99 reloading / steady: {ratio:.2f}x")
if out:
    json.dump({"steady": steady, "reloading": reloading, "reloads": len(reloads),
               "refused": len(refused), "p99_ratio": ratio}, open(out, "w"), indent=2)
failed = sum(r["failed"] for r in steady + reloading)
if failed or refused or not reloads:
    print(f"FAIL: {failed} failed request(s), {len(refused)} refused reload(s), {len(reloads)} reload(s)")
    for row in steady + reloading:
        if row["failures"]:
            print("  failures:", row["failures"])
    sys.exit(1)
EOF
