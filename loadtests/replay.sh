#!/usr/bin/env bash
# What a replay costs: requests per CPU-second of `shadowtap replay` with comparison on
# (client, in-process proxy, recorded-answer server and comparison workers all counted), to
# set beside the live mirror's cost per request (profile.sh --mirror, docs/PERFORMANCE.md).
#
#   loadtests/replay.sh [--requests N] [--concurrency C] [--path /] [--ports BASE]
#
# Method: an nginx upstream (run.sh's, on cpu 0) is recorded through `shadowtap run
# --record` with oha (N requests to PATH, default 20000 to / with its 64-byte answer); then
# `shadowtap replay` sends the recording to the same nginx as the shadow, answered from the
# recording as the primary, every pair compared (both answers equal: a pass). The replay
# runs on cpu 1 alone; its user + system CPU time (getrusage of the child) and wall time are
# printed with requests per CPU-second and per wall second. Uses SHADOWTAP_BIN if set, else
# builds like run.sh. Needs nginx and oha (run.sh --smoke installs them). Loopback only;
# everything started here is stopped on exit.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
REQUESTS=20000; CONC=32; URLPATH=/; PORTS=19000
LOADGEN_CPU="${LOADGEN_CPU:-0}"; PROXY_CPU="${PROXY_CPU:-1}"
while (($#)); do
  case "$1" in
    --requests) REQUESTS="$2"; shift 2;;
    --concurrency) CONC="$2"; shift 2;;
    --path) URLPATH="$2"; shift 2;;
    --ports) PORTS="$2"; shift 2;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
[[ "$REQUESTS" =~ ^[0-9]+$ && "$REQUESTS" -le 1000000 ]] || { echo "--requests: 1..1000000" >&2; exit 2; }
# shellcheck source=loadtests/lib.sh
source "$HERE/lib.sh"
set_ports "$PORTS"
export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"
for tool in nginx oha; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run loadtests/run.sh --smoke once to install the tools" >&2; exit 1; }
done
shadowtap_binary "$ROOT"
RUN_DIR="$(mktemp -d /tmp/shadowtap-replay.XXXXXX)"; chmod 755 "$RUN_DIR"
mkdir -p "$RUN_DIR"/{www,tmp}
stop_started_on_exit
start_upstream "$RUN_DIR" "$UPSTREAM_PORT" "$H2_PORT"

echo "== recording $REQUESTS requests to $URLPATH through shadowtap run --record"
taskset -c "$PROXY_CPU" env RUST_LOG=warn "$SHADOWTAP_BIN" run --primary "http://127.0.0.1:$UPSTREAM_PORT" \
  --listen "127.0.0.1:$LISTEN_PORT" --admin "127.0.0.1:$ADMIN_PORT" --record "$RUN_DIR/traffic.jsonl" \
  >"$RUN_DIR/record.out" 2>&1 &
REC_PID=$!; PIDS+=("$REC_PID"); wait_port "$LISTEN_PORT"
timeout 600 taskset -c "$LOADGEN_CPU" oha --no-tui -n "$REQUESTS" -c 8 "http://127.0.0.1:$LISTEN_PORT$URLPATH" >/dev/null
sleep 1
kill -TERM "$REC_PID"; for _ in $(seq 1 100); do kill -0 "$REC_PID" 2>/dev/null || break; sleep 0.1; done
echo "   $(wc -l <"$RUN_DIR/traffic.jsonl") entries, $(du -h "$RUN_DIR/traffic.jsonl" | cut -f1)"

echo "== replaying against the same build as shadow, concurrency $CONC, comparison on"
python3 - "$SHADOWTAP_BIN" "$RUN_DIR/traffic.jsonl" "http://127.0.0.1:$UPSTREAM_PORT" "$CONC" "$PROXY_CPU" <<'PY'
import json, os, resource, subprocess, sys, time
binary, recording, shadow, conc, cpu = sys.argv[1:]
start = time.monotonic()
run = subprocess.run(["taskset", "-c", cpu, binary, "replay", recording, "--shadow", shadow,
                      "--concurrency", conc, "--format", "json"], capture_output=True, text=True)
wall = time.monotonic() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu_seconds = usage.ru_utime + usage.ru_stime
out = json.loads(run.stdout)
answered = out["replay"]["answered"]
pairs = sum(r["comparisons"]["match"] + r["comparisons"]["diverged"] + r["comparisons"]["noise_only"]
            + r["comparisons"]["unjudged"] for r in out["routes"] if r["shadow"] == "shadow")
print("   exit %d, verdict %s: %d answered, %d pairs compared" % (run.returncode, out["verdict"]["verdict"], answered, pairs))
print("   sending %.2f s, whole run %.2f s wall, %.2f s CPU (user %.2f, system %.2f)"
      % (out["replay"]["seconds"], wall, cpu_seconds, usage.ru_utime, usage.ru_stime))
print("== %.0f requests per CPU-second, %.0f per wall second of sending" % (answered / cpu_seconds, answered / out["replay"]["seconds"]))
PY
