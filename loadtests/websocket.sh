#!/usr/bin/env bash
# The WebSocket cell (issue 20): WebSocket echo messages per CPU-second of the proxy, shadowtap
# against nginx, each splicing real WebSocket connections between a real client and server.
#
#   loadtests/websocket.sh [--rounds N] [--duration S] [--connections C] [--size B]
#                          [--ports BASE] [--smoke]
#
#   loadtests/websocket.sh                 # 5 rounds of 5 s, 64 connections, 128-byte messages
#   loadtests/websocket.sh --smoke         # CI: 1 round of 1 s (~15 s with the build)
#   SHADOWTAP_BIN=path/to/shadowtap WS_BENCH_BIN=path/to/ws_bench loadtests/websocket.sh
#
# Method. The echo server and the load generator are examples/ws_bench.rs (tokio-tungstenite):
# `echo` answers every message with itself; `load` opens C WebSockets through a contender, and
# each sends a B-byte binary message and waits for its echo, again and again, for S seconds,
# then closes (the close handshake). Contenders: nginx (conf/nginx-websocket.conf.in: one
# worker, the Upgrade passed on as its manual shows) and shadowtap (one worker thread, one
# route to the echo server), both on cpu 1; the echo server and the load generator on cpu 0,
# so neither contender shares a core with them. A contender's CPU is utime + stime of its
# process and children (nginx's worker) from /proc over the run, after a warm-up run that is
# not counted; the figure is echoes per CPU-second of the contender (higher is better), with
# the echoes per second beside it (the load generator, on its own core, sets that pace for
# both). Rounds alternate the order. The medians over rounds and the ratio follow; the target
# is shadowtap ≥ 1.0 × nginx.
# --smoke exits 1 when a contender echoed nothing or an echo came back wrong or a connection
# failed; never on timings.
#
# Needs nginx, python3 and taskset (`loadtests/run.sh --smoke` installs them). Without
# SHADOWTAP_BIN / WS_BENCH_BIN it builds target/release/shadowtap and the ws_bench example.
# Ports BASE+81.. (default 18300+). Only 127.0.0.1; everything started here is stopped by its
# PID on exit.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
ROUNDS=5; DURATION=5; CONNS=64; SIZE=128; PORTS=18300; SMOKE=0
LOADGEN_CPU="${LOADGEN_CPU:-0}"; PROXY_CPU="${PROXY_CPU:-1}"
while (($#)); do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2;;
    --duration) DURATION="$2"; shift 2;;
    --connections) CONNS="$2"; shift 2;;
    --size) SIZE="$2"; shift 2;;
    --ports) PORTS="$2"; shift 2;;
    --smoke) SMOKE=1; shift;;
    -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2;;
  esac
done
WARMUP=2
((SMOKE)) && { ROUNDS=1; DURATION=1; WARMUP=1; }
for n in "$ROUNDS" "$DURATION" "$CONNS" "$SIZE"; do
  [[ "$n" =~ ^[0-9]+$ && "$n" -ge 1 ]] || { echo "numbers must be positive integers: $n" >&2; exit 2; }
done
for tool in nginx python3 taskset; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run loadtests/run.sh --smoke once to install the tools" >&2; exit 1; }
done
# shellcheck source=loadtests/lib.sh
source "$HERE/lib.sh"
shadowtap_binary "$ROOT"
if [[ -z "${WS_BENCH_BIN:-}" ]]; then
  echo "== building the ws_bench example (release)"
  (cd "$ROOT" && cargo build --release --locked --quiet --example ws_bench)
  WS_BENCH_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/ws_bench"
fi
set_ports "$PORTS"
ECHO_PORT=$UPSTREAM_PORT
declare -A PORT=([shadowtap]=$LISTEN_PORT [nginx]=$((LISTEN_PORT + 1)))
declare -A PID=()

RUN_DIR="$(mktemp -d /tmp/shadowtap-websocket.XXXXXX)"; chmod 755 "$RUN_DIR"
mkdir -p "$RUN_DIR/tmp"
PIDS=()
cleanup() {
  local rc=$? pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
taskset -p -c "$LOADGEN_CPU" $$ >/dev/null

taskset -c "$LOADGEN_CPU" "$WS_BENCH_BIN" echo "127.0.0.1:$ECHO_PORT" >"$RUN_DIR/echo.out" 2>&1 &
PIDS+=($!); wait_port "$ECHO_PORT"
sed -e "s#@RUN@#$RUN_DIR#g" -e "s#@LISTEN_PORT@#${PORT[nginx]}#g" -e "s#@ECHO_PORT@#$ECHO_PORT#g" \
  "$HERE/conf/nginx-websocket.conf.in" >"$RUN_DIR/nginx.conf"
taskset -c "$PROXY_CPU" nginx -p "$RUN_DIR" -c "$RUN_DIR/nginx.conf" >"$RUN_DIR/nginx.out" 2>&1 &
PIDS+=($!); PID[nginx]=$!
sed -e "s#@UPSTREAM_PORT@#$ECHO_PORT#g" -e "s#@LISTEN_PORT@#${PORT[shadowtap]}#g" \
  -e "s#@ADMIN_PORT@#$ADMIN_PORT#g" "$HERE/conf/shadowtap.toml.in" >"$RUN_DIR/shadowtap.toml"
taskset -c "$PROXY_CPU" env RUST_LOG=warn "$SHADOWTAP_BIN" run --config "$RUN_DIR/shadowtap.toml" \
  >"$RUN_DIR/shadowtap.out" 2>&1 &
PIDS+=($!); PID[shadowtap]=$!
for label in "${!PORT[@]}"; do wait_port "${PORT[$label]}"; done

# One run: "<echoes> <wrong> <failed> <cpu seconds of the contender> <wall seconds>".
run() { # LABEL SECONDS
  local before after out start end
  before=$(cpu_ticks "${PID[$1]}"); start=$(date +%s.%N)
  out=$(taskset -c "$LOADGEN_CPU" "$WS_BENCH_BIN" load "ws://127.0.0.1:${PORT[$1]}/ws" "$CONNS" "$2" "$SIZE")
  end=$(date +%s.%N); after=$(cpu_ticks "${PID[$1]}")
  python3 -c 'import json, os, sys
d = json.loads(sys.argv[1]); b = list(map(int, sys.argv[2].split())); a = list(map(int, sys.argv[3].split()))
cpu = (sum(a) - sum(b)) / os.sysconf("SC_CLK_TCK")
print(d["echoed"], d["wrong"], d["failed"], cpu, float(sys.argv[5]) - float(sys.argv[4]))' \
    "$out" "$before" "$after" "$start" "$end"
}

RESULTS="$RUN_DIR/results.txt"; : >"$RESULTS"
for round in $(seq 1 "$ROUNDS"); do
  order=(shadowtap nginx); ((round % 2)) || order=(nginx shadowtap)
  for label in "${order[@]}"; do
    run "$label" "$WARMUP" >/dev/null
    echo "$label $(run "$label" "$DURATION")" | tee -a "$RESULTS"
  done
done
python3 - "$RESULTS" "$SMOKE" "$CONNS" "$SIZE" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
smoke = sys.argv[2] == "1"
per = {}
bad = []
for label, echoed, wrong, failed, cpu, wall in rows:
    echoed, wrong, failed, cpu, wall = int(echoed), int(wrong), int(failed), float(cpu), float(wall)
    if echoed == 0 or wrong or failed:
        bad.append(f"{label}: {echoed} echoed, {wrong} wrong, {failed} failed connections")
    per.setdefault(label, []).append((echoed / cpu if cpu else 0.0, echoed / wall))
print(f"\nWebSocket echo, {sys.argv[3]} connections, {sys.argv[4]}-byte messages (medians over rounds)")
print(f"{'contender':<10} {'echoes/CPU-s':>14} {'echoes/s':>10}")
med = {}
for label in ("shadowtap", "nginx"):
    cpu_rate = statistics.median(r[0] for r in per[label])
    wall_rate = statistics.median(r[1] for r in per[label])
    med[label] = cpu_rate
    print(f"{label:<10} {cpu_rate:>14,.0f} {wall_rate:>10,.0f}")
if med["nginx"]:
    ratio = med["shadowtap"] / med["nginx"]
    print(f"shadowtap / nginx: {ratio:.2f}x echoes per CPU-second (target >= 1.0x)")
for line in bad:
    print("FAIL", line, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
