#!/usr/bin/env bash
# Where shadowtap's CPU goes on the live path: run it under valgrind's callgrind (instruction
# counts are exact and repeatable on a VM where perf's hardware counters are not available),
# send a bounded number of requests through it, and print the top functions.
#
#   loadtests/profile.sh [--requests N] [--connections C] [--path /16k] [--mirror]
#                        [--percent P] [--h2c] [--log LEVEL] [--ports BASE] [--out DIR]
#                        [--max-response-body BYTES]
#
# Defaults: 20000 requests (after 2000 unmeasured warm-up requests), 8 connections, path /
# (64-byte body; /16k: 16 KiB, /json: 16 KiB of JSON), the live path only. --mirror: every
# request also mirrored to a healthy shadow (a second nginx serving the same bodies) and
# compared (conf/shadowtap-mirror.toml.in, the comparison workers' instructions included);
# --percent P samples P % of them instead of every one.
# --max-response-body BYTES: mirror.max_response_body_bytes (with --mirror): answers longer
# than it are compared by length and running hash instead of kept (what that hash costs).
# --h2c: the client speaks HTTP/2 with prior knowledge (oha --http2), the upstreams HTTP/1.1.
# --log: RUST_LOG for shadowtap [warn].
# --ports BASE: listen on BASE+81.. instead of 18081.., to profile beside a run.sh run.
# Writes DIR/callgrind.out (open it with kcachegrind or callgrind_annotate)
# and DIR/top-inclusive.txt, DIR/top-self.txt. DIR defaults to a new directory under /tmp.
# Same layout as run.sh: upstream nginx + load generator on cpu 0, shadowtap on cpu 1 with one
# worker. Uses SHADOWTAP_BIN if set, else builds like run.sh. Needs valgrind (apt, installed if
# missing), nginx, oha (see run.sh). Loopback only; everything started here is stopped on exit.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
MAX_BODY=""; REQUESTS=20000; CONNS=8; URLPATH=/; OUT=""; MIRROR=0; LOG=warn; PORTS=18000; CLIENT=()
LOADGEN_CPU="${LOADGEN_CPU:-0}"; PROXY_CPU="${PROXY_CPU:-1}"
while (($#)); do
  case "$1" in
    --requests) REQUESTS="$2"; shift 2;;
    --connections) CONNS="$2"; shift 2;;
    --path) URLPATH="$2"; shift 2;;
    --mirror) MIRROR=1; shift;;
    --percent) export MIRROR_PERCENT="$2"; shift 2;;
    --max-response-body) MAX_BODY="$2"; shift 2;;
    --h2c) CLIENT=(--http2); shift;;
    --log) LOG="$2"; shift 2;;
    --ports) PORTS="$2"; shift 2;;
    --out) OUT="$2"; shift 2;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
[[ "$REQUESTS" =~ ^[0-9]+$ && "$REQUESTS" -le 1000000 ]] || { echo "--requests: 1..1000000" >&2; exit 2; }
# shellcheck source=loadtests/lib.sh
source "$HERE/lib.sh"
set_ports "$PORTS"
export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"
SUDO=(); [[ "$(id -u)" == 0 ]] || SUDO=(sudo)
if ! command -v valgrind >/dev/null; then
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq valgrind >/dev/null
fi
for tool in nginx oha callgrind_annotate; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run loadtests/run.sh --smoke once to install the tools" >&2; exit 1; }
done
shadowtap_binary "$ROOT"
taskset -p -c "$LOADGEN_CPU" $$ >/dev/null

RUN_DIR="$(mktemp -d /tmp/shadowtap-profile.XXXXXX)"; chmod 755 "$RUN_DIR"
mkdir -p "$RUN_DIR"/{www,tmp}
[[ -n "$OUT" ]] || OUT="$RUN_DIR"
mkdir -p "$OUT"
stop_started_on_exit
# The upstream of run.sh (its h2c server listens too, unused here); with --mirror a second
# one, in a directory of its own, is the healthy shadow.
start_upstream "$RUN_DIR" "$UPSTREAM_PORT" "$H2_PORT"
((MIRROR)) && start_upstream "$RUN_DIR/shadow" "$SHADOW_PORT" "$SHADOW_H2_PORT"
write_shadowtap_config "$RUN_DIR/shadowtap.toml" "$MIRROR"
if [[ -n "$MAX_BODY" ]]; then
  sed -i "/^\[mirror\]/a max_response_body_bytes = $MAX_BODY" "$RUN_DIR/shadowtap.toml"
fi
# Instrumentation starts off and is switched on after the warm-up, so start-up and the first
# connections do not count.
taskset -c "$PROXY_CPU" env RUST_LOG="$LOG" valgrind --tool=callgrind --instr-atstart=no \
  --callgrind-out-file="$OUT/callgrind.out" "$SHADOWTAP_BIN" run --config "$RUN_DIR/shadowtap.toml" \
  >"$RUN_DIR/shadowtap.out" 2>&1 &
ST_PID=$!; PIDS+=("$ST_PID"); wait_port "$LISTEN_PORT"

load() { timeout 600 taskset -c "$LOADGEN_CPU" oha --no-tui -n "$1" -c "$CONNS" -t 30s "${CLIENT[@]}" \
  --output-format json "http://127.0.0.1:$LISTEN_PORT$URLPATH" | python3 -c '
import json, sys; d = json.load(sys.stdin); c = d.get("statusCodeDistribution", {})
e = d.get("errorDistribution", {}); rps = d["summary"]["requestsPerSec"]
print("  %d responses %s, errors %s, %.0f req/s under valgrind" % (sum(c.values()), c, e, rps))'; }
echo "== warm-up (not collected)"; load 2000
callgrind_control -i on "$ST_PID" >/dev/null
echo "== $REQUESTS requests, $CONNS connections, path $URLPATH (collected)"; load "$REQUESTS"
callgrind_control -i off "$ST_PID" >/dev/null
# SIGTERM: shadowtap shuts down gracefully and callgrind writes its file at exit.
kill -TERM "$ST_PID"; for _ in $(seq 1 300); do kill -0 "$ST_PID" 2>/dev/null || break; sleep 0.1; done
[[ -s "$OUT/callgrind.out" ]] || { echo "no callgrind output; see $RUN_DIR/shadowtap.out" >&2; exit 1; }
# Whole files, then cut: `| head` would end callgrind_annotate early (SIGPIPE under pipefail).
callgrind_annotate --inclusive=yes "$OUT/callgrind.out" >"$OUT/inclusive-full.txt" 2>/dev/null || true
callgrind_annotate "$OUT/callgrind.out" >"$OUT/self-full.txt" 2>/dev/null || true
head -80 "$OUT/inclusive-full.txt" >"$OUT/top-inclusive.txt"
head -60 "$OUT/self-full.txt" >"$OUT/top-self.txt"
total="$(awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }' "$OUT/top-self.txt")"; [[ "$total" =~ ^[0-9]+$ ]] || total=0
echo "== $total instructions for $REQUESTS requests: $((total / REQUESTS)) per request"
echo "== top functions by self cost ($OUT/top-self.txt):"
sed -n '/^-* *$/,$p' "$OUT/top-self.txt" | grep -E '^ *[0-9,]+ \(' | head -25
echo "== inclusive costs: $OUT/top-inclusive.txt; full profile: $OUT/callgrind.out"
