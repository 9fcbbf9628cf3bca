#!/usr/bin/env bash
# A/B of shadowtap builds (and nginx as a plain proxy) in one pinned run: CPU per request split
# into user and system time, context switches per request, peak RSS and (rate mode) the p50
# the load generator saw. For "what did this change buy": run the old and the new binary side
# by side, interleaved, several rounds.
#
#   loadtests/ab.sh [--mirror] [--h2c] [--mode closed|rate] [--rate R] [--rounds N]
#                   [--duration S] [--path /] [--ports BASE] LABEL=BINARY|nginx ...
#
#   loadtests/ab.sh old=/tmp/shadowtap-old new=target/release/shadowtap nginx=nginx
#   loadtests/ab.sh --mirror old=/tmp/shadowtap-old new=target/release/shadowtap
#
# Each contender runs alone on cpu 1 (one worker) against the upstream nginx on cpu 0, with the
# load generator on cpu 0 (wrk -t1 -c64 in closed mode, oha -q RATE -c64 in rate mode), 2 s
# warm-up then DURATION measured, rounds interleaved and rotated (A B C, B C A, C A B, ...:
# no contender always runs first or last). --mirror: shadowtap
# mirrors every request to a second nginx (a healthy shadow) and compares
# (conf/shadowtap-mirror.toml.in); "nginx" stays a plain proxy. --h2c: the clients speak
# HTTP/2 with prior knowledge (oha --http2, also in closed mode: oha -c64 without a rate);
# nginx gets an `http2` listener for them, the upstreams stay HTTP/1.1. Counters are read from
# /proc (utime, stime of the process and its children; context switches of all threads;
# VmHWM). Defaults: closed, 3 rounds of 5 s, path /, ports 18000+ (as profile.sh: don't run
# beside run.sh unless --ports differs). Needs nginx, wrk, oha (run.sh --smoke installs them).
# Loopback only; everything started here is stopped by its PID on exit.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODE=closed; RATE=5000; ROUNDS=3; DURATION=5; URLPATH=/; PORTS=18000; MIRROR=0; H2C=0
LOADGEN_CPU="${LOADGEN_CPU:-0}"; PROXY_CPU="${PROXY_CPU:-1}"
CONTENDERS=()
while (($#)); do
  case "$1" in
    --mirror) MIRROR=1; shift;;
    --h2c) H2C=1; shift;;
    --mode) MODE="$2"; shift 2;;
    --rate) RATE="$2"; shift 2;;
    --rounds) ROUNDS="$2"; shift 2;;
    --duration) DURATION="$2"; shift 2;;
    --path) URLPATH="$2"; shift 2;;
    --ports) PORTS="$2"; shift 2;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    *=*) CONTENDERS+=("$1"); shift;;
    *) echo "unknown argument $1 (contenders are LABEL=BINARY or LABEL=nginx)" >&2; exit 2;;
  esac
done
((${#CONTENDERS[@]})) || { echo "no contenders: give LABEL=BINARY (or LABEL=nginx) at least once" >&2; exit 2; }
[[ "$MODE" == closed || "$MODE" == rate ]] || { echo "--mode: closed or rate" >&2; exit 2; }
for n in "$RATE" "$ROUNDS" "$DURATION"; do
  [[ "$n" =~ ^[0-9]+$ && "$n" -ge 1 ]] || { echo "numbers must be positive integers: $n" >&2; exit 2; }
done
for tool in nginx wrk oha python3 taskset; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run loadtests/run.sh --smoke once to install the tools" >&2; exit 1; }
done
# shellcheck source=loadtests/lib.sh
source "$HERE/lib.sh"
set_ports "$PORTS"

RUN_DIR="$(mktemp -d /tmp/shadowtap-ab.XXXXXX)"; chmod 755 "$RUN_DIR"
mkdir -p "$RUN_DIR"/{www,tmp}
PIDS=(); CURRENT=""
cleanup() {
  local rc=$? pid
  for pid in $CURRENT "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
taskset -p -c "$LOADGEN_CPU" $$ >/dev/null

start_upstream "$RUN_DIR" "$UPSTREAM_PORT" "$H2_PORT"
((MIRROR)) && start_upstream "$RUN_DIR/shadow" "$SHADOW_PORT" "$SHADOW_H2_PORT"

# utime stime cutime cstime of a process and its direct children (nginx's worker), summed.
cpu_ticks() {
  local pid total=(0 0 0 0) a b c d
  for pid in "$1" $(cat "/proc/$1/task/"*/children 2>/dev/null); do
    read -r a b c d < <(awk '{print $14, $15, $16, $17}' "/proc/$pid/stat")
    total=($((total[0] + a)) $((total[1] + b)) $((total[2] + c)) $((total[3] + d)))
  done
  echo "${total[@]}"
}
switches() { # voluntary + involuntary, all threads of the process and its children
  local pid
  for pid in "$1" $(cat "/proc/$1/task/"*/children 2>/dev/null); do cat "/proc/$pid/task/"*/status 2>/dev/null; done |
    awk '/ctxt_switches/ { n += $2 } END { print n + 0 }'
}

# nginx takes h2c on a listener of its own, next to the HTTP/1.1 one; shadowtap on the same port.
NGINX_H2_PORT=$((LISTEN_PORT + 3)); H2_LINE=""
((H2C)) && H2_LINE="        listen 127.0.0.1:$NGINX_H2_PORT http2 backlog=4096;"

start_contender() { # LABEL BINARY -> PID on stdout
  local label="$1" bin="$2"
  if [[ "$bin" == nginx ]]; then
    sed -e "s#@RUN@#$RUN_DIR#g" -e "s#@UPSTREAM_PORT@#$UPSTREAM_PORT#g" -e "s#@LISTEN_PORT@#$LISTEN_PORT#g" \
      -e "s#@EXTRA_PROXY_HEADERS@##" -e "s#@H2_LISTEN@#$H2_LINE#" "$HERE/conf/nginx-proxy.conf.in" >"$RUN_DIR/$label.conf"
    taskset -c "$PROXY_CPU" nginx -p "$RUN_DIR" -c "$RUN_DIR/$label.conf" >"$RUN_DIR/$label.out" 2>&1 &
  else
    write_shadowtap_config "$RUN_DIR/$label.toml" "$MIRROR"
    taskset -c "$PROXY_CPU" env RUST_LOG=warn "$bin" run --config "$RUN_DIR/$label.toml" >"$RUN_DIR/$label.out" 2>&1 &
  fi
  echo $!
}

load() { # SECONDS PORT -> "requests p50-µs" on stdout (p50 "-" in closed HTTP/1.1 mode: wrk)
  local url="http://127.0.0.1:$2$URLPATH" rate=()
  if [[ "$MODE" == closed ]] && ((!H2C)); then
    taskset -c "$LOADGEN_CPU" wrk -t1 -c64 -d"$1"s "$url" | awk '/requests in/ { print $1, "-" }'
  else
    [[ "$MODE" == rate ]] && rate=(-q "$RATE" --latency-correction)
    ((H2C)) && rate+=(--http2)
    taskset -c "$LOADGEN_CPU" oha --no-tui "${rate[@]}" -c 64 -z "$1"s -w \
      --output-format json "$url" | python3 -c 'import json, sys; d = json.load(sys.stdin); print(sum(d["statusCodeDistribution"].values()), round(d["latencyPercentiles"]["p50"] * 1e6))'
  fi
}

hz="$(getconf CLK_TCK)"
echo "== $MODE, path $URLPATH, mirror $MIRROR, h2c $H2C, $ROUNDS round(s) of ${DURATION} s; CPU in µs per request"
printf '%-7s %-14s %10s %8s %8s %8s %10s %9s %8s\n' round contender requests user sys total ctxsw/req "peak MiB" "p50 µs"
for round in $(seq 1 "$ROUNDS"); do
  n_contenders=${#CONTENDERS[@]}
  for ((k = 0; k < n_contenders; k++)); do
    spec="${CONTENDERS[$(( (k + round - 1) % n_contenders ))]}"
    label="${spec%%=*}"; bin="${spec#*=}"
    pid="$(start_contender "$label" "$bin")"; CURRENT="$pid"
    port="$LISTEN_PORT"; [[ "$bin" == nginx ]] && ((H2C)) && port="$NGINX_H2_PORT"
    wait_port "$port"
    load 2 "$port" >/dev/null
    read -r u1 s1 cu1 cs1 < <(cpu_ticks "$pid"); x1="$(switches "$pid")"
    read -r n p50 < <(load "$DURATION" "$port")
    read -r u2 s2 cu2 cs2 < <(cpu_ticks "$pid"); x2="$(switches "$pid")"
    hwm="$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status")"
    # Started inside $(...), so not this shell's child: poll until it is gone, or the next
    # contender could find the port still taken.
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true; CURRENT=""
    python3 - "$round" "$label" "$n" "$hz" "$((u2 - u1 + cu2 - cu1))" "$((s2 - s1 + cs2 - cs1))" "$((x2 - x1))" "${hwm:-0}" "${p50:--}" <<'EOF' | tee -a "$RUN_DIR/rows"
import sys
rnd, label, n, hz, user, system, switches, hwm, p50 = sys.argv[1:]
n = max(int(n or 0), 1); hz = int(hz)
u = int(user) / hz * 1e6 / n; s = int(system) / hz * 1e6 / n
print("%-7s %-14s %10d %8.1f %8.1f %8.1f %10.2f %9.1f %8s" % (rnd, label, n, u, s, u + s, int(switches) / n, int(hwm) / 1024, p50))
EOF
  done
done
# Medians over rounds, per contender, in the order given on the command line.
python3 - "$RUN_DIR/rows" "${CONTENDERS[@]%%=*}" <<'EOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
def median(mine, i):
    values = [float(r[i]) for r in mine if r[i] != "-"]
    return statistics.median(values) if values else float("nan")
for label in sys.argv[2:]:
    mine = [r for r in rows if r[1] == label]
    if mine:
        m = [median(mine, i) for i in range(2, 9)]
        print("%-7s %-14s %10d %8.1f %8.1f %8.1f %10.2f %9.1f %8.0f" % ("median", label, *m))
EOF
