#!/usr/bin/env bash
# A/B of shadowtap builds (and nginx as a plain proxy) in one pinned run: CPU per request split
# into user and system time, context switches per request, peak RSS and (rate mode) the p50
# the load generator saw. For "what did this change buy": run the old and the new binary side
# by side, interleaved, several rounds.
#
#   loadtests/ab.sh [--mirror] [--h2c] [--mode closed|rate] [--rate R] [--rounds N]
#                   [--duration S] [--path /] [--ports BASE] [--syscalls]
#                   LABEL=BINARY|nginx|nginx-mirror ...
#
#   loadtests/ab.sh old=/tmp/shadowtap-old new=target/release/shadowtap nginx=nginx
#   loadtests/ab.sh --mirror old=/tmp/shadowtap-old new=target/release/shadowtap
#   loadtests/ab.sh --mirror --syscalls st=target/release/shadowtap nm=nginx-mirror
#
# Each contender runs alone on cpu 1 (one worker) against the upstream nginx on cpu 0, with the
# load generator on cpu 0 (wrk -t1 -c64 in closed mode, oha -q RATE -c64 in rate mode), 2 s
# warm-up then DURATION measured, rounds interleaved and rotated (A B C, B C A, C A B, ...:
# no contender always runs first or last). --mirror: shadowtap
# mirrors every request to a second nginx (a healthy shadow) and compares
# (conf/shadowtap-mirror.toml.in); "nginx" stays a plain proxy; "nginx-mirror" is nginx with
# its mirror module sending every request to that shadow (conf/nginx-mirror.conf.in). --h2c: the clients speak
# HTTP/2 with prior knowledge (oha --http2, also in closed mode: oha -c64 without a rate);
# nginx gets an `http2` listener for them, the upstreams stay HTTP/1.1. Counters are read from
# /proc (utime, stime of the process and its children; context switches of all threads;
# VmHWM). --syscalls: also count the contender's system calls per request during the measured
# window (perf stat on the kernel's syscall tracepoints, all its threads and nginx's worker):
# the total, and the calls that move data or wait (read/write family, epoll, futex), one column
# each; needs `perf` and tracepoints (perf_event_paranoid ≤ 1 or root). Defaults: closed, 3 rounds of 5 s, path /, ports 18000+ (as profile.sh: don't run
# beside run.sh unless --ports differs). Needs nginx, wrk, oha (run.sh --smoke installs them).
# Loopback only; everything started here is stopped by its PID on exit.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODE=closed; RATE=5000; ROUNDS=3; DURATION=5; URLPATH=/; PORTS=18000; MIRROR=0; H2C=0; SYSCALLS=0
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
    --syscalls) SYSCALLS=1; shift;;
    -h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    *=*) CONTENDERS+=("$1"); shift;;
    *) echo "unknown argument $1 (contenders are LABEL=BINARY, LABEL=nginx or LABEL=nginx-mirror)" >&2; exit 2;;
  esac
done
((${#CONTENDERS[@]})) || { echo "no contenders: give LABEL=BINARY (or LABEL=nginx, LABEL=nginx-mirror) at least once" >&2; exit 2; }
[[ "$MODE" == closed || "$MODE" == rate ]] || { echo "--mode: closed or rate" >&2; exit 2; }
if ((SYSCALLS)); then
  command -v perf >/dev/null || { echo "--syscalls needs perf (apt: linux-perf)" >&2; exit 1; }
  perf stat -e raw_syscalls:sys_enter true >/dev/null 2>&1 ||
    { echo "--syscalls: perf cannot read the syscall tracepoints here (perf_event_paranoid, or not root)" >&2; exit 1; }
fi
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
NEED_SHADOW=$MIRROR
for spec in "${CONTENDERS[@]}"; do [[ "${spec#*=}" == nginx-mirror ]] && NEED_SHADOW=1; done
((NEED_SHADOW)) && start_upstream "$RUN_DIR/shadow" "$SHADOW_PORT" "$SHADOW_H2_PORT"

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
  if [[ "$bin" == nginx || "$bin" == nginx-mirror ]]; then
    # nginx-mirror: every request mirrored to the shadow (as run.sh's perf suite runs it).
    local template="$HERE/conf/nginx-proxy.conf.in"
    [[ "$bin" == nginx-mirror ]] && template="$HERE/conf/nginx-mirror.conf.in"
    sed -e "s#@RUN@#$RUN_DIR#g" -e "s#@UPSTREAM_PORT@#$UPSTREAM_PORT#g" -e "s#@LISTEN_PORT@#$LISTEN_PORT#g" \
      -e "s#@EXTRA_PROXY_HEADERS@##" -e "s#@H2_LISTEN@#$H2_LINE#" -e "s#@NAME@#$label#g" \
      -e "s#@SAMPLE_SPLIT@##" -e "s#@SAMPLE_GATE@##" -e "s#@SHADOW_PORT@#$SHADOW_PORT#g" \
      -e "s#@MIRROR_TIMEOUT@#5s#g" "$template" >"$RUN_DIR/$label.conf"
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

# --syscalls: perf stat on the contender (all threads, and nginx's worker) while the load runs.
SYSCALL_EVENTS=raw_syscalls:sys_enter
for call in read readv recvfrom recvmsg write writev sendto sendmsg epoll_wait epoll_pwait epoll_pwait2 epoll_ctl futex; do
  SYSCALL_EVENTS+=",syscalls:sys_enter_$call"
done
PERF_PID=""
start_syscall_count() { # PID CSV
  local pids
  pids="$(echo "$1" $(cat "/proc/$1/task/"*/children 2>/dev/null) | tr ' ' ',')"
  perf stat -x, -e "$SYSCALL_EVENTS" -p "$pids" -o "$2" &
  PERF_PID=$!
}
stop_syscall_count() { # ROUND LABEL REQUESTS CSV -> a row of per-request counts in sysrows
  kill -INT "$PERF_PID" 2>/dev/null || true
  wait "$PERF_PID" 2>/dev/null || true
  python3 - "$@" <<'EOF' >>"$RUN_DIR/sysrows"
import sys
rnd, label, n, csv = sys.argv[1:]
n = max(int(n or 0), 1)
counts = {}
for line in open(csv):
    parts = line.strip().split(",")
    if len(parts) > 2 and parts[0].replace(".", "").isdigit():
        counts[parts[2].split(":")[-1].replace("sys_enter_", "")] = float(parts[0])
group = lambda *names: sum(counts.get(x, 0) for x in names) / n
print("%s %s %.2f %.2f %.2f %.2f %.2f %.2f" % (rnd, label, counts.get("sys_enter", 0) / n,
      group("read", "readv", "recvfrom", "recvmsg"), group("write", "writev", "sendto", "sendmsg"),
      group("epoll_wait", "epoll_pwait", "epoll_pwait2"), group("epoll_ctl"), group("futex")))
EOF
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
    port="$LISTEN_PORT"; [[ "$bin" == nginx* ]] && ((H2C)) && port="$NGINX_H2_PORT"
    wait_port "$port"
    load 2 "$port" >/dev/null
    read -r u1 s1 cu1 cs1 < <(cpu_ticks "$pid"); x1="$(switches "$pid")"
    ((SYSCALLS)) && start_syscall_count "$pid" "$RUN_DIR/perf-$round-$label.csv"
    read -r n p50 < <(load "$DURATION" "$port")
    ((SYSCALLS)) && stop_syscall_count "$round" "$label" "$n" "$RUN_DIR/perf-$round-$label.csv"
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
if ((SYSCALLS)); then
  echo "== system calls per request (perf stat on the contender during the measured window)"
  python3 - "$RUN_DIR/sysrows" "${CONTENDERS[@]%%=*}" <<'EOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
head = ("round", "contender", "all", "reads", "writes", "epoll_wait", "epoll_ctl", "futex")
print("%-7s %-14s %8s %8s %8s %10s %9s %8s" % head)
for r in rows:
    print("%-7s %-14s %8s %8s %8s %10s %9s %8s" % tuple(r))
for label in sys.argv[2:]:
    mine = [r for r in rows if r[1] == label]
    if mine:
        m = [statistics.median(float(r[i]) for r in mine) for i in range(2, 8)]
        print("%-7s %-14s %8.2f %8.2f %8.2f %10.2f %9.2f %8.2f" % ("median", label, *m))
EOF
fi
