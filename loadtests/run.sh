#!/usr/bin/env bash
# shadowtap load tests: the proxy under test side by side with a direct baseline and nginx,
# in one pinned layout, interleaved rounds, medians. See loadtests/README.md for the method.
# Two suites: "live" (the live path, no mirroring: direct, nginx-proxy, shadowtap) and
# "mirror" (issue 3: mirroring off / to a healthy / a slow / a dead shadow, shadowtap next to
# nginx's mirror module).
#
#   loadtests/run.sh [options]
#
# Options (defaults in brackets):
#   --suite S           live, mirror or all                                        [all]
#   --rounds N          interleaved rounds (A B C, A B C, ...)                      [5]
#   --duration S        measured seconds per run                                   [8]
#   --warmup S          unmeasured seconds before each run, same settings          [2]
#   --rate R            offered req/s in fixed-rate mode                           [5000]
#   --connections C     client connections (both modes)                            [64]
#   --contenders LIST   comma list: direct,nginx-proxy,shadowtap[,nginx-proxy-fwd] [direct,nginx-proxy,shadowtap]
#   --scenarios LIST    comma list: small (64 B body), large (16 KiB body)         [small,large]
#   --modes LIST        comma list: closed (wrk), rate (oha -q, latency-corrected) [closed,rate]
#   --max-interference P  re-run a measurement when other processes used more than P % of
#                       either cpu during it (a shared box: builds, test suites)   [10]
#   --retries N         re-runs per measurement for interference (bounded overall) [2]
#   --quiet-wait S      before each measurement, wait up to S s for other processes to
#                       drop below --max-interference (at most 600 s per script run) [90]
#   --smoke             CI mode: 1 round, 2 s runs (mirror suite: 1 s, healthy and dead shadow,
#                       closed and rate), 1 s warm-up, no re-runs; fails (exit 1) if any contender
#                       answered non-2xx, had socket errors or served nothing, or if shadowtap
#                       mirrored nothing to the healthy shadow
# Mirror suite (--suite mirror|all):
#   --shadows LIST      comma list: off (no mirroring), healthy, slow, dead        [off,healthy,slow,dead]
#   --mirror-modes LIST comma list: closed, rate, few (oha -q FEW_RATE -c FEW_CONNS) [closed,rate,few]
#   --mirror-duration S measured seconds per mirror-suite run                      [5]
#   --few-rate R        offered req/s of the "few" mode                            [1000]
#   --few-connections C client connections of the "few" mode                       [8]
#   --shadow-delay S    how late the slow shadow answers, seconds                  [1]
#   --out FILE          results JSON      [loadtests/results/<UTC timestamp>.json]
#   --no-install        do not install missing tools (fail instead)
#   --keep              keep the temporary run directory (configs, logs)
#   -h, --help
#
# Environment:
#   SHADOWTAP_BIN=PATH    use this binary instead of building one
#   SHADOWTAP_SRC=DIR     source tree to build (cargo build --release) [the repo holding this script]
#   CARGO_TARGET_DIR      respected by the build
#   OHA_VERSION           oha version `cargo install` pins when oha is missing [1.16.0]
#   LOADGEN_CPU=0 PROXY_CPU=1   the pinned layout (see README)
#
# Everything listens on 127.0.0.1 only (ports 18080-18099, 19901-19904; the dead shadow is
# 127.0.0.1:18086, where nothing may listen). Every process is started
# by this script and stopped by its recorded PID when the script exits.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
COMMAND_LINE="loadtests/run.sh${*:+ $*}"
ROOT="$(cd "$HERE/.." && pwd)"

# ---------------------------------------------------------------- settings
ROUNDS=5; DURATION=8; WARMUP=2; RATE=5000; CONNS=64
CONTENDERS="direct,nginx-proxy,shadowtap"
SCENARIOS="small,large"
MODES="closed,rate"
SMOKE=0; INSTALL=1; KEEP=0; OUT=""; MAX_INTERFERENCE=10; RETRIES=2; QUIET_WAIT=90
SUITE=all; SHADOWS="off,healthy,slow,dead"; MIRROR_MODES="closed,rate,few"; MIRROR_DURATION=5
FEW_RATE=1000; FEW_CONNS=8; SHADOW_DELAY=1
MIRROR_TIMEOUT_S=5   # shadowtap [mirror] timeout in conf/shadowtap-mirror.toml.in
QUIET_BUDGET=600   # seconds of waiting for a quiet box, over the whole run
LOADGEN_CPU="${LOADGEN_CPU:-0}"; PROXY_CPU="${PROXY_CPU:-1}"
OHA_VERSION="${OHA_VERSION:-1.16.0}"

UPSTREAM_PORT=18081          # nginx serving the fixed bodies
NGINX_PROXY_PORT=18080       # contender nginx-proxy
NGINX_PROXY_FWD_PORT=18083   # contender nginx-proxy-fwd
SHADOWTAP_PORT=18090         # contender shadowtap
SHADOWTAP_ADMIN_PORT=19901   # shadowtap's admin port (/metrics)
# Mirror suite. The shadow: one nginx (cpu 0, 1 worker) answering the same 64 B body on the
# healthy port at once and on the slow port after --shadow-delay; nothing listens on the dead
# port (connection refused). Its stub_status counts the requests that reached it.
declare -A SHADOW_PORT=([healthy]=18084 [slow]=18085 [dead]=18086)
SHADOW_STATUS_PORT=18087
# One mirroring contender per shadow condition, each with its own port (and admin port).
declare -A COND_INDEX=([healthy]=0 [slow]=1 [dead]=2)
NGINX_MIRROR_PORT0=18092     # nginx-mirror: 18092 healthy, 18093 slow, 18094 dead
SHADOWTAP_MIRROR_PORT0=18095 # shadowtap with [routes.mirror]: 18095, 18096, 18097
SHADOWTAP_MIRROR_ADMIN0=19902 # their admin ports: 19902, 19903, 19904

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

while (($#)); do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2;;
    --duration) DURATION="$2"; shift 2;;
    --warmup) WARMUP="$2"; shift 2;;
    --rate) RATE="$2"; shift 2;;
    --connections) CONNS="$2"; shift 2;;
    --contenders) CONTENDERS="$2"; shift 2;;
    --suite) SUITE="$2"; shift 2;;
    --shadows) SHADOWS="$2"; SHADOWS_SET=1; shift 2;;
    --mirror-modes) MIRROR_MODES="$2"; MIRROR_MODES_SET=1; shift 2;;
    --mirror-duration) MIRROR_DURATION="$2"; shift 2;;
    --few-rate) FEW_RATE="$2"; shift 2;;
    --few-connections) FEW_CONNS="$2"; shift 2;;
    --shadow-delay) SHADOW_DELAY="$2"; shift 2;;
    --scenarios) SCENARIOS="$2"; shift 2;;
    --modes) MODES="$2"; shift 2;;
    --max-interference) MAX_INTERFERENCE="$2"; shift 2;;
    --retries) RETRIES="$2"; shift 2;;
    --quiet-wait) QUIET_WAIT="$2"; shift 2;;
    --smoke) SMOKE=1; shift;;
    --out) OUT="$2"; shift 2;;
    --no-install) INSTALL=0; shift;;
    --keep) KEEP=1; shift;;
    -h|--help) usage; exit 0;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2;;
  esac
done
if ((SMOKE)); then
  ROUNDS=1; DURATION=2; WARMUP=1; RETRIES=0; QUIET_WAIT=0; MIRROR_DURATION=1
  [[ -n "${SHADOWS_SET:-}" ]] || SHADOWS="healthy,dead"
  [[ -n "${MIRROR_MODES_SET:-}" ]] || MIRROR_MODES="closed,rate"
fi
for n in ROUNDS DURATION WARMUP RATE CONNS MAX_INTERFERENCE RETRIES QUIET_WAIT MIRROR_DURATION FEW_RATE FEW_CONNS; do
  [[ "${!n}" =~ ^[0-9]+$ && "${!n}" -ge 0 ]] || { echo "$n must be a whole number" >&2; exit 2; }
done
((ROUNDS >= 1 && ROUNDS <= 50)) || { echo "--rounds must be 1..50" >&2; exit 2; }
((DURATION >= 1 && DURATION <= 120)) || { echo "--duration must be 1..120 s" >&2; exit 2; }
IFS=, read -r -a CONTENDER_LIST <<<"$CONTENDERS"
IFS=, read -r -a SCENARIO_LIST <<<"$SCENARIOS"
IFS=, read -r -a MODE_LIST <<<"$MODES"
IFS=, read -r -a SHADOW_LIST <<<"$SHADOWS"
IFS=, read -r -a MIRROR_MODE_LIST <<<"$MIRROR_MODES"
((MIRROR_DURATION >= 1 && MIRROR_DURATION <= 120)) || { echo "--mirror-duration must be 1..120 s" >&2; exit 2; }
[[ "$SHADOW_DELAY" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "--shadow-delay must be a number of seconds" >&2; exit 2; }
RUN_LIVE=0; RUN_MIRROR=0
case "$SUITE" in
  live) RUN_LIVE=1;; mirror) RUN_MIRROR=1;; all) RUN_LIVE=1; RUN_MIRROR=1;;
  *) echo "--suite must be live, mirror or all" >&2; exit 2;;
esac
for c in "${SHADOW_LIST[@]}"; do
  [[ "$c" =~ ^(off|healthy|slow|dead)$ ]] || { echo "unknown shadow condition $c" >&2; exit 2; }
done
for m in "${MIRROR_MODE_LIST[@]}"; do
  [[ "$m" =~ ^(closed|rate|few)$ ]] || { echo "unknown mirror mode $m" >&2; exit 2; }
done
NEED_SHADOW=0
((RUN_MIRROR)) && [[ ",$SHADOWS," =~ ,(healthy|slow|dead), ]] && NEED_SHADOW=1

# ---------------------------------------------------------------- scenarios
# A scenario is a request the load generator sends; add one here and to --scenarios.
scenario_path() {
  case "$1" in
    small) echo "/";;      # 64-byte body
    large) echo "/16k";;   # 16 KiB body
    *) echo "unknown scenario $1" >&2; return 1;;
  esac
}
scenario_body_bytes() {
  case "$1" in small) echo 64;; large) echo 16384;; esac
}
for s in "${SCENARIO_LIST[@]}"; do scenario_path "$s" >/dev/null; done
for m in "${MODE_LIST[@]}"; do
  [[ "$m" == closed || "$m" == rate ]] || { echo "unknown mode $m" >&2; exit 2; }
done

# ---------------------------------------------------------------- tools
need_apt=()
command -v nginx >/dev/null || need_apt+=(nginx-light)
# The slow shadow sleeps with echo_sleep (Debian's nginx-light depends on this module).
ECHO_MODULE=/usr/lib/nginx/modules/ngx_http_echo_module.so
((NEED_SHADOW == 0)) || [[ -e "$ECHO_MODULE" ]] || need_apt+=(libnginx-mod-http-echo)
modes=","
((RUN_LIVE)) && modes+="$MODES,"
((RUN_MIRROR)) && modes+="${MIRROR_MODES//few/rate},"
[[ "$modes" != *,closed,* ]] || command -v wrk >/dev/null || need_apt+=(wrk)
command -v taskset >/dev/null || need_apt+=(util-linux)
command -v curl >/dev/null || need_apt+=(curl)
command -v python3 >/dev/null || need_apt+=(python3)
export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"
SUDO=(); [[ "$(id -u)" == 0 ]] || SUDO=(sudo)
if ((${#need_apt[@]})); then
  ((INSTALL)) || { echo "missing tools (apt): ${need_apt[*]}" >&2; exit 1; }
  echo "== installing ${need_apt[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq "${need_apt[@]}" >/dev/null
  # Debian does not start nginx here (no systemd); nothing to stop.
fi
if [[ "$modes" == *,rate,* ]] && ! command -v oha >/dev/null; then
  ((INSTALL)) || { echo "missing tool: oha (cargo install oha --locked)" >&2; exit 1; }
  # Debian 12 has no oha package; crates.io does. A cold build takes a few minutes, once.
  echo "== installing oha $OHA_VERSION (cargo install --locked; a few minutes, once)"
  cargo install oha --version "$OHA_VERSION" --locked -q
fi

# ---------------------------------------------------------------- shadowtap binary
if [[ -n "${SHADOWTAP_BIN:-}" ]]; then
  [[ -x "$SHADOWTAP_BIN" ]] || { echo "SHADOWTAP_BIN=$SHADOWTAP_BIN is not executable" >&2; exit 1; }
  # Which commit a prebuilt binary came from is only known if SHADOWTAP_SRC says so.
  SHADOWTAP_SRC="${SHADOWTAP_SRC:-}"
else
  SHADOWTAP_SRC="${SHADOWTAP_SRC:-$ROOT}"
  echo "== building shadowtap (release) in $SHADOWTAP_SRC"
  (cd "$SHADOWTAP_SRC" && cargo build --release --locked -q)
  SHADOWTAP_BIN="${CARGO_TARGET_DIR:-$SHADOWTAP_SRC/target}/release/shadowtap"
fi
SHADOWTAP_COMMIT=unknown
[[ -z "$SHADOWTAP_SRC" ]] || SHADOWTAP_COMMIT="$(git -C "$SHADOWTAP_SRC" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
if [[ "$SHADOWTAP_COMMIT" != unknown ]] && [[ -n "$(git -C "$SHADOWTAP_SRC" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]]; then
  SHADOWTAP_COMMIT+="+dirty"
fi

# ---------------------------------------------------------------- layout
NCPU="$(nproc)"
if ((NCPU < 2)); then
  echo "warning: $NCPU cpu: load generator and proxy share cpu 0; numbers are not comparable with the pinned 2-cpu layout" >&2
  LOADGEN_CPU=0; PROXY_CPU=0
fi
# The orchestration itself (this shell, python, curl) stays on the load generator's cpu so
# it never competes with the proxy under test.
taskset -p -c "$LOADGEN_CPU" $$ >/dev/null

RUN_DIR="$(mktemp -d /tmp/shadowtap-loadtest.XXXXXX)"
# nginx workers drop root privileges (user nobody/www-data): they must be able to read www/.
chmod 755 "$RUN_DIR"
mkdir -p "$RUN_DIR"/{www,tmp,pids}
RAW="$RUN_DIR/raw.jsonl"; : >"$RAW"
TRIES="$RUN_DIR/attempts.jsonl"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
SUFFIX=""; ((SMOKE)) && SUFFIX="-smoke"
[[ -n "$OUT" ]] || OUT="$HERE/results/$STAMP$SUFFIX.json"
mkdir -p "$(dirname "$OUT")"

# ---------------------------------------------------------------- processes
PIDS=()
stop_pid() { # pid: TERM, up to 5 s, then KILL
  local pid="$1" i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$? pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  wait 2>/dev/null || true
  if ((KEEP)) || ((rc != 0)); then echo "run directory kept: $RUN_DIR" >&2; else rm -rf "$RUN_DIR"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

launch() { # name cpu cmd... ; sets LAUNCHED_PID
  local name="$1" cpu="$2"; shift 2
  taskset -c "$cpu" "$@" >"$RUN_DIR/$name.out" 2>&1 &
  LAUNCHED_PID=$!
  PIDS+=("$LAUNCHED_PID")
  echo "$LAUNCHED_PID" >"$RUN_DIR/pids/$name"
}

wait_port() { # port [pid]: up to 10 s
  local port="$1" pid="${2:-}" i
  for i in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "nothing listening on 127.0.0.1:$port" >&2; return 1
}

render() { # template output [extra sed args...]
  local in="$1" out="$2"; shift 2
  sed -e "s#@RUN@#$RUN_DIR#g" -e "s#@UPSTREAM_PORT@#$UPSTREAM_PORT#g" "$@" "$in" >"$out"
}

start_nginx() { # name template listen_port [extra headers]
  local name="$1" template="$2" port="$3" extra="${4:-}"
  render "$HERE/conf/$template" "$RUN_DIR/$name.conf" -e "s#@LISTEN_PORT@#$port#g" \
    -e "s#@EXTRA_PROXY_HEADERS@#$extra#"
  nginx -t -q -p "$RUN_DIR" -c "$RUN_DIR/$name.conf" 2>"$RUN_DIR/$name.check" ||
    { cat "$RUN_DIR/$name.check" >&2; return 1; }
  launch "$name" "$PROXY_CPU" nginx -p "$RUN_DIR" -c "$RUN_DIR/$name.conf"
  wait_port "$port" "$LAUNCHED_PID"
}

# Contenders: start_<name> starts it (or nothing) and sets ADDR and PID (the process whose
# CPU time is charged to the contender, children included). To add one, write start_<name>
# and list it in --contenders.
declare -A ADDR PID METRICS
SHADOW_PID=""
start_direct() { ADDR[direct]="127.0.0.1:$UPSTREAM_PORT"; PID[direct]="$UPSTREAM_PID"; }
start_nginx-proxy() {
  start_nginx nginx-proxy nginx-proxy.conf.in "$NGINX_PROXY_PORT"
  ADDR[nginx-proxy]="127.0.0.1:$NGINX_PROXY_PORT"; PID[nginx-proxy]="$LAUNCHED_PID"
}
# nginx doing the same header work as shadowtap (X-Forwarded-*, a request id): optional.
start_nginx-proxy-fwd() {
  local h='            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n'
  h+='            proxy_set_header X-Forwarded-Proto $scheme;\n'
  h+='            proxy_set_header X-Forwarded-Host $host;\n'
  h+='            proxy_set_header X-Request-Id $request_id;'
  start_nginx nginx-proxy-fwd nginx-proxy.conf.in "$NGINX_PROXY_FWD_PORT" "$h"
  ADDR[nginx-proxy-fwd]="127.0.0.1:$NGINX_PROXY_FWD_PORT"; PID[nginx-proxy-fwd]="$LAUNCHED_PID"
}
start_shadowtap() {
  render "$HERE/conf/shadowtap.toml.in" "$RUN_DIR/shadowtap.toml" \
    -e "s#@LISTEN_PORT@#$SHADOWTAP_PORT#g" -e "s#@ADMIN_PORT@#$SHADOWTAP_ADMIN_PORT#g"
  "$SHADOWTAP_BIN" check --config "$RUN_DIR/shadowtap.toml" >/dev/null 2>"$RUN_DIR/shadowtap.check" ||
    { cat "$RUN_DIR/shadowtap.check" >&2; return 1; }
  launch shadowtap "$PROXY_CPU" env RUST_LOG=warn "$SHADOWTAP_BIN" run --config "$RUN_DIR/shadowtap.toml"
  wait_port "$SHADOWTAP_PORT" "$LAUNCHED_PID"
  ADDR[shadowtap]="127.0.0.1:$SHADOWTAP_PORT"; PID[shadowtap]="$LAUNCHED_PID"
  METRICS[shadowtap]="http://127.0.0.1:$SHADOWTAP_ADMIN_PORT/metrics"
}

# ---- mirror suite: the shadow and the mirroring contenders
start_shadow() { # one nginx on cpu 0: healthy + slow shadow ports, stub_status
  if (exec 3<>"/dev/tcp/127.0.0.1/${SHADOW_PORT[dead]}") 2>/dev/null; then
    echo "something listens on 127.0.0.1:${SHADOW_PORT[dead]}, the dead shadow's port" >&2; return 1
  fi
  render "$HERE/conf/shadow.conf.in" "$RUN_DIR/shadow.conf" -e "s#@ECHO_MODULE@#$ECHO_MODULE#g" \
    -e "s#@HEALTHY_PORT@#${SHADOW_PORT[healthy]}#g" -e "s#@SLOW_PORT@#${SHADOW_PORT[slow]}#g" \
    -e "s#@STATUS_PORT@#$SHADOW_STATUS_PORT#g" -e "s#@SHADOW_DELAY@#$SHADOW_DELAY#g"
  nginx -t -q -p "$RUN_DIR" -c "$RUN_DIR/shadow.conf" 2>"$RUN_DIR/shadow.check" ||
    { cat "$RUN_DIR/shadow.check" >&2; return 1; }
  launch shadow "$LOADGEN_CPU" nginx -p "$RUN_DIR" -c "$RUN_DIR/shadow.conf"
  SHADOW_PID="$LAUNCHED_PID"
  wait_port "${SHADOW_PORT[healthy]}" "$SHADOW_PID"; wait_port "$SHADOW_STATUS_PORT" "$SHADOW_PID"
}
# A contender in the mirror suite is "<name>@<condition>" (the off condition uses the live
# suite's processes: direct, nginx-proxy, shadowtap without mirroring).
instance() { # contender condition
  if [[ -z "$2" || "$2" == off ]]; then echo "$1"; else echo "$1@$2"; fi
}
start_mirror_nginx-mirror() { # condition
  local cond="$1" port=$((NGINX_MIRROR_PORT0 + COND_INDEX[$1])) name="nginx-mirror-$1"
  render "$HERE/conf/nginx-mirror.conf.in" "$RUN_DIR/$name.conf" -e "s#@LISTEN_PORT@#$port#g" \
    -e "s#@NAME@#$name#g" -e "s#@SHADOW_PORT@#${SHADOW_PORT[$cond]}#g" \
    -e "s#@MIRROR_TIMEOUT@#${MIRROR_TIMEOUT_S}s#g"
  nginx -t -q -p "$RUN_DIR" -c "$RUN_DIR/$name.conf" 2>"$RUN_DIR/$name.check" ||
    { cat "$RUN_DIR/$name.check" >&2; return 1; }
  launch "$name" "$PROXY_CPU" nginx -p "$RUN_DIR" -c "$RUN_DIR/$name.conf"
  wait_port "$port" "$LAUNCHED_PID"
  ADDR[nginx-mirror@$cond]="127.0.0.1:$port"; PID[nginx-mirror@$cond]="$LAUNCHED_PID"
}
start_mirror_shadowtap() { # condition
  local cond="$1" port=$((SHADOWTAP_MIRROR_PORT0 + COND_INDEX[$1]))
  local admin=$((SHADOWTAP_MIRROR_ADMIN0 + COND_INDEX[$1])) name="shadowtap-mirror-$1"
  render "$HERE/conf/shadowtap-mirror.toml.in" "$RUN_DIR/$name.toml" -e "s#@LISTEN_PORT@#$port#g" \
    -e "s#@ADMIN_PORT@#$admin#g" -e "s#@SHADOW_PORT@#${SHADOW_PORT[$cond]}#g" \
    -e "s#@MIRROR_TIMEOUT@#${MIRROR_TIMEOUT_S}s#g"
  "$SHADOWTAP_BIN" check --config "$RUN_DIR/$name.toml" >"$RUN_DIR/$name.effective" 2>"$RUN_DIR/$name.check" ||
    { cat "$RUN_DIR/$name.check" >&2; return 1; }
  launch "$name" "$PROXY_CPU" env RUST_LOG=warn "$SHADOWTAP_BIN" run --config "$RUN_DIR/$name.toml"
  wait_port "$port" "$LAUNCHED_PID"
  ADDR[shadowtap@$cond]="127.0.0.1:$port"; PID[shadowtap@$cond]="$LAUNCHED_PID"
  METRICS[shadowtap@$cond]="http://127.0.0.1:$admin/metrics"
}
# Counters around a mirror-suite run (JSON): shadowtap's requests and mirror outcomes, and
# the requests that reached the shadow.
scrape() { # instance
  local args=()
  [[ -z "${METRICS[$1]:-}" ]] || args+=(--metrics "${METRICS[$1]}")
  [[ -z "$SHADOW_PID" ]] || args+=(--shadow-status "http://127.0.0.1:$SHADOW_STATUS_PORT/status")
  python3 "$HERE/harness.py" scrape "${args[@]}" 2>>"$RUN_DIR/scrape.err" || echo "{}"
}
# Let the mirrored requests of the previous load finish, so that every outcome counted lands
# in the window it belongs to and nothing runs on during the next measurement: shadowtap
# until its mirror queue and in-flight gauges read 0 (bounded by its mirror timeout + 2 s);
# nginx-mirror with the slow shadow for the shadow's delay. Prints the seconds waited.
settle() { # instance
  case "$1" in
    shadowtap@*) python3 "$HERE/harness.py" drain --metrics "${METRICS[$1]}" --max $((MIRROR_TIMEOUT_S + 2));;
    nginx-mirror@slow) sleep "$SHADOW_DELAY"; sleep 0.3; echo "$SHADOW_DELAY";;
    *) echo 0;;
  esac
}

# Requests shadowtap itself counted (from its /metrics): "<2xx> <other>".
probe_shadowtap() {
  curl -fsS --max-time 2 "http://127.0.0.1:$SHADOWTAP_ADMIN_PORT/metrics" 2>/dev/null |
    awk '/^shadowtap_requests_total\{/ { if ($1 ~ /status_class="2xx"/) ok += $2; else bad += $2 }
         END { printf "%d %d\n", ok, bad }'
}

# ---------------------------------------------------------------- measuring
HZ="$(getconf CLK_TCK)"
cpu_ticks() { # pid -> utime+stime of pid and its children (all threads: the tgid's stat sums them)
  local total=0 p
  for p in "$1" $(pgrep -P "$1" 2>/dev/null || true); do
    [[ -r "/proc/$p/stat" ]] || continue
    total=$((total + $(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$p/stat")))
  done
  echo "$total"
}
cpu_line() { awk -v c="cpu$1" '$1 == c { print $2, $3, $4, $5, $6, $7, $8, $9 }' /proc/stat; }

run_load() { # mode url seconds outfile
  local mode="$1" url="$2" secs="$3" out="$4"
  # Bounded twice: the tool's own duration and an outer timeout. harness.py exec notes the
  # tool's own CPU time, to tell our load from other processes' on the same cpu.
  local acct=(python3 "$HERE/harness.py" exec "$out.rusage" --)
  case "$mode" in
    closed)
      "${acct[@]}" timeout $((secs + 30)) taskset -c "$LOADGEN_CPU" \
        wrk -t1 -c"$CONNS" -d"${secs}s" --timeout 5s -s "$HERE/conf/wrk-report.lua" "$url" >"$out" 2>&1 ;;
    rate)
      # -w: in-flight requests at the deadline are waited for, not counted as errors.
      "${acct[@]}" timeout $((secs + 30)) taskset -c "$LOADGEN_CPU" \
        oha --no-tui --output-format json -z "${secs}s" -c "$CONNS" -q "$RATE" \
        --latency-correction -w -t 5s "$url" >"$out" 2>"$out.err" ;;
    few)
      # The slow-shadow case that hurts nginx's mirror: few connections, each sending more
      # often than the shadow answers.
      "${acct[@]}" timeout $((secs + 30)) taskset -c "$LOADGEN_CPU" \
        oha --no-tui --output-format json -z "${secs}s" -c "$FEW_CONNS" -q "$FEW_RATE" \
        --latency-correction -w -t 5s "$url" >"$out" 2>"$out.err" ;;
  esac
}

# CUR_SUITE (live|mirror) and CUR_SHADOW (mirror suite: off|healthy|slow|dead) say which
# suite a measurement belongs to.
CUR_SUITE=live; CUR_SHADOW=""
measure() { # round scenario mode contender attempt -> appends one record to $TRIES
  local round="$1" scenario="$2" mode="$3" who="$4" attempt="$5" inst secs="$DURATION"
  inst="$(instance "$who" "$CUR_SHADOW")"
  local url="http://${ADDR[$inst]}$(scenario_path "$scenario")" pid="${PID[$inst]}"
  local out="$RUN_DIR/run-$round-$scenario-${CUR_SHADOW:-live}-$mode-$who.txt" probe0="" probe1=""
  local rate="$RATE" conns="$CONNS" extra=() drained
  [[ "$mode" != few ]] || { rate="$FEW_RATE"; conns="$FEW_CONNS"; }
  [[ "$CUR_SUITE" != mirror ]] || secs="$MIRROR_DURATION"
  if ((WARMUP > 0)); then run_load "$mode" "$url" "$WARMUP" "$out.warmup" || true; fi
  if [[ "$CUR_SUITE" == mirror ]]; then
    settle "$inst" >/dev/null; scrape "$inst" >"$out.scrape0"
  else
    [[ "$(type -t "probe_$who")" == function ]] && probe0="$("probe_$who")"
  fi
  local t0 u0 s0=0 c0a c1a t1 u1 s1=0 c0b c1b rc=0
  t0="$(cpu_ticks "$pid")"; u0="$(cpu_ticks "$UPSTREAM_PID")"; c0a="$(cpu_line "$LOADGEN_CPU")"; c1a="$(cpu_line "$PROXY_CPU")"
  [[ -z "$SHADOW_PID" ]] || s0="$(cpu_ticks "$SHADOW_PID")"
  run_load "$mode" "$url" "$secs" "$out" || rc=$?
  t1="$(cpu_ticks "$pid")"; u1="$(cpu_ticks "$UPSTREAM_PID")"; c0b="$(cpu_line "$LOADGEN_CPU")"; c1b="$(cpu_line "$PROXY_CPU")"
  [[ -z "$SHADOW_PID" ]] || s1="$(cpu_ticks "$SHADOW_PID")"
  if [[ "$CUR_SUITE" == mirror ]]; then
    drained="$(settle "$inst")"; scrape "$inst" >"$out.scrape1"
    extra+=(--suite mirror --shadow "$CUR_SHADOW" --scrape "$out.scrape0" "$out.scrape1" --drained "$drained")
  else
    [[ "$(type -t "probe_$who")" == function ]] && probe1="$("probe_$who")"
  fi
  [[ -z "$SHADOW_PID" ]] || extra+=(--shadow-ticks "$s0" "$s1")
  python3 "$HERE/harness.py" record --out "$TRIES" --round "$round" --scenario "$scenario" \
    --mode "$mode" --contender "$who" --tool-output "$out" --tool-rc "$rc" --hz "$HZ" \
    --cpu-ticks "$t0" "$t1" --upstream-ticks "$u0" "$u1" --rate "$rate" --connections "$conns" \
    --body-bytes "$(scenario_body_bytes "$scenario")" \
    --loadgen-cpu-stat "$c0a" "$c0b" --proxy-cpu-stat "$c1a" "$c1b" \
    --loadgen-rusage "$out.rusage" --attempt "$attempt" --max-interference "$MAX_INTERFERENCE" \
    ${probe0:+--probe "$probe0" "$probe1"} "${extra[@]}"
}

# Between measurements none of our processes does any work, so whatever keeps the cpus busy
# now belongs to someone else. Prints the busier cpu's busy % over one second.
other_load() {
  local a b
  a="$(cpu_line "$LOADGEN_CPU"; cpu_line "$PROXY_CPU")"; sleep 1
  b="$(cpu_line "$LOADGEN_CPU"; cpu_line "$PROXY_CPU")"
  printf '%s\n%s\n' "$a" "$b" | awk '
    { busy[NR] = $1 + $2 + $3 + $6 + $7; total[NR] = $1 + $2 + $3 + $4 + $5 + $6 + $7 + $8 }
    END { m = 0; for (i = 1; i <= 2; i++) { t = total[i + 2] - total[i];
            p = t > 0 ? 100 * (busy[i + 2] - busy[i]) / t : 0; if (p > m) m = p }
          printf "%.0f\n", m }'
}
wait_quiet() { # bounded per call (QUIET_WAIT) and per run (QUIET_BUDGET)
  local level waited=0
  ((QUIET_WAIT > 0)) || return 0
  while level="$(other_load)"; ((level > MAX_INTERFERENCE)); do
    if ((waited >= QUIET_WAIT || QUIET_BUDGET <= 0)); then
      echo "      (box still busy: other processes use $level% of a cpu; measuring anyway)"; return 0
    fi
    ((waited == 0)) && echo "      (waiting for other processes to calm down: $level% of a cpu busy)"
    sleep 2; waited=$((waited + 3)); QUIET_BUDGET=$((QUIET_BUDGET - 3))
  done
}

# A measurement disturbed by other processes on the box is run again (bounded per
# measurement and overall); the least disturbed attempt is kept, the others are noted.
measure_settled() { # round scenario mode contender
  local attempt=1 level
  : >"$TRIES"
  while :; do
    wait_quiet
    measure "$@" "$attempt"
    level="$(python3 "$HERE/harness.py" interference "$TRIES")"
    if ((attempt > RETRIES || RETRY_BUDGET <= 0)) ||
      ! awk -v i="$level" -v m="$MAX_INTERFERENCE" 'BEGIN { exit !(i > m) }'; then break; fi
    echo "      (re-running: other processes used $level% of a cpu)"
    RETRY_BUDGET=$((RETRY_BUDGET - 1)); attempt=$((attempt + 1))
  done
  python3 "$HERE/harness.py" settle "$TRIES" "$RAW"
}

# ---------------------------------------------------------------- go
echo "== layout: load generator + upstream on cpu $LOADGEN_CPU, contender on cpu $PROXY_CPU (1 worker each)"
echo "== shadowtap $SHADOWTAP_BIN (commit $SHADOWTAP_COMMIT)"
head -c 64 /dev/zero | tr '\0' 'x' >"$RUN_DIR/www/body-64"
head -c 16384 /dev/zero | tr '\0' 'y' >"$RUN_DIR/www/body-16k"
render "$HERE/conf/upstream.conf.in" "$RUN_DIR/upstream.conf"
nginx -t -q -p "$RUN_DIR" -c "$RUN_DIR/upstream.conf"
launch upstream "$LOADGEN_CPU" nginx -p "$RUN_DIR" -c "$RUN_DIR/upstream.conf"
UPSTREAM_PID="$LAUNCHED_PID"
wait_port "$UPSTREAM_PORT" "$UPSTREAM_PID"

# Which processes to start: the live suite's contenders; for the mirror suite the same three
# without mirroring (condition "off") and, per shadow condition, nginx-mirror and shadowtap
# mirroring 100 % to that shadow.
MIRROR_OFF_CONTENDERS=(direct nginx-proxy shadowtap)
MIRROR_CONTENDERS=(nginx-mirror shadowtap)
declare -A WANT_SCENARIOS=()   # instance -> scenarios to check it with
INSTANCES=()
want() { # instance scenario
  [[ -n "${WANT_SCENARIOS[$1]+x}" ]] || INSTANCES+=("$1")
  [[ " ${WANT_SCENARIOS[$1]:-} " == *" $2 "* ]] || WANT_SCENARIOS[$1]+=" $2"
}
if ((RUN_LIVE)); then
  for who in "${CONTENDER_LIST[@]}"; do for sc in "${SCENARIO_LIST[@]}"; do want "$who" "$sc"; done; done
fi
if ((RUN_MIRROR)); then
  for cond in "${SHADOW_LIST[@]}"; do
    if [[ "$cond" == off ]]; then
      for who in "${MIRROR_OFF_CONTENDERS[@]}"; do want "$who" small; done
    else
      for who in "${MIRROR_CONTENDERS[@]}"; do want "$who@$cond" small; done
    fi
  done
  ((NEED_SHADOW == 0)) || start_shadow
  ((NEED_SHADOW == 0)) || echo "== started the shadow (pid $SHADOW_PID): healthy :${SHADOW_PORT[healthy]}," \
    "slow (${SHADOW_DELAY} s) :${SHADOW_PORT[slow]}, dead :${SHADOW_PORT[dead]} (nothing listens)"
fi

for inst in "${INSTANCES[@]}"; do
  if [[ "$inst" == *@* ]]; then
    fn="start_mirror_${inst%@*}"
    [[ "$(type -t "$fn")" == function ]] || { echo "unknown mirror contender ${inst%@*}" >&2; exit 2; }
    "$fn" "${inst#*@}"
  else
    [[ "$(type -t "start_$inst")" == function ]] || { echo "unknown contender $inst" >&2; exit 2; }
    "start_$inst"
  fi
  # One request per scenario through the contender before any load: right status, whole body.
  for s in ${WANT_SCENARIOS[$inst]}; do
    got="$(curl -sS --max-time 5 -o /dev/null -w '%{http_code} %{size_download}' "http://${ADDR[$inst]}$(scenario_path "$s")" || true)"
    if [[ "$got" != "200 $(scenario_body_bytes "$s")" ]]; then
      echo "contender $inst does not serve $s correctly (got '$got'); logs in $RUN_DIR" >&2; exit 1
    fi
  done
  echo "== started $inst on ${ADDR[$inst]} (pid ${PID[$inst]})"
done

# One round: every (suite, scenario or shadow condition, mode, contender), interleaved.
JOBS=()   # "suite scenario condition mode contender"
if ((RUN_LIVE)); then
  for scenario in "${SCENARIO_LIST[@]}"; do for mode in "${MODE_LIST[@]}"; do
    for who in "${CONTENDER_LIST[@]}"; do JOBS+=("live $scenario - $mode $who"); done
  done; done
fi
if ((RUN_MIRROR)); then
  for mode in "${MIRROR_MODE_LIST[@]}"; do for cond in "${SHADOW_LIST[@]}"; do
    if [[ "$cond" == off ]]; then list=("${MIRROR_OFF_CONTENDERS[@]}"); else list=("${MIRROR_CONTENDERS[@]}"); fi
    for who in "${list[@]}"; do JOBS+=("mirror small $cond $mode $who"); done
  done; done
fi
runs=$((ROUNDS * ${#JOBS[@]}))
live_runs=0; ((RUN_LIVE)) && live_runs=$((ROUNDS * ${#SCENARIO_LIST[@]} * ${#MODE_LIST[@]} * ${#CONTENDER_LIST[@]}))
mirror_runs=$((runs - live_runs))
quiet_s=0; ((QUIET_WAIT == 0)) || quiet_s=1
est=$(( live_runs * (WARMUP + DURATION + 1 + quiet_s) + mirror_runs * (WARMUP + MIRROR_DURATION + 2 + quiet_s) ))
echo "== $runs runs (live: $live_runs of ${WARMUP}+${DURATION} s; mirror: $mirror_runs of ${WARMUP}+${MIRROR_DURATION} s): about $(( (est + 59) / 60 )) min"
started=$SECONDS; n=0
RETRY_BUDGET=$(( runs / 3 > 3 ? runs / 3 : 3 ))
for round in $(seq 1 "$ROUNDS"); do
  for job in "${JOBS[@]}"; do
    read -r CUR_SUITE scenario CUR_SHADOW mode who <<<"$job"
    [[ "$CUR_SHADOW" != - ]] || CUR_SHADOW=""
    inst="$(instance "$who" "$CUR_SHADOW")"
    n=$((n + 1))
    kill -0 "${PID[$inst]}" 2>/dev/null || { echo "$inst (pid ${PID[$inst]}) died; logs in $RUN_DIR" >&2; exit 1; }
    measure_settled "$round" "$scenario" "$mode" "$who"
    printf '[%3d/%d %4ds] ' "$n" "$runs" $((SECONDS - started))
    python3 "$HERE/harness.py" last "$RAW"
  done
done

META="$RUN_DIR/meta.json"
COMMAND_LINE="$COMMAND_LINE" python3 - "$META" <<PY
import json, platform, subprocess, sys, os
def sh(cmd):
    try:
        done = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10)
        return (done.stdout + done.stderr).strip()
    except Exception as e:
        return f"? ({e})"
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
meta = {
  "date_utc": "$STAMP",
  "command": os.environ.get("COMMAND_LINE", "?"),
  "machine": {"nproc": os.cpu_count(), "cpu_model": model, "kernel": platform.release()},
  "layout": {"loadgen_and_upstream_cpu": $LOADGEN_CPU, "contender_cpu": $PROXY_CPU, "workers": 1},
  "settings": {"rounds": $ROUNDS, "duration_s": $DURATION, "warmup_s": $WARMUP, "rate": $RATE,
               "connections": $CONNS, "smoke": bool($SMOKE), "max_interference_pct": $MAX_INTERFERENCE,
               "retries": $RETRIES},
  "suite": "$SUITE",
  "contenders": "$CONTENDERS".split(","), "scenarios": "$SCENARIOS".split(","), "modes": "$MODES".split(","),
  "mirror": {"shadows": "$SHADOWS".split(","), "modes": "$MIRROR_MODES".split(","),
             "duration_s": $MIRROR_DURATION, "few_rate": $FEW_RATE, "few_connections": $FEW_CONNS,
             "slow_delay_s": $SHADOW_DELAY, "shadowtap_mirror_timeout_s": $MIRROR_TIMEOUT_S,
             "shadowtap_config": "conf/shadowtap-mirror.toml.in", "nginx_config": "conf/nginx-mirror.conf.in"},
  "shadowtap": {"binary": "$SHADOWTAP_BIN", "commit": "$SHADOWTAP_COMMIT"},
  "tools": {"nginx": sh("nginx -v"), "wrk": sh("wrk -v | head -1"), "oha": sh("oha --version")},
}
json.dump(meta, open(sys.argv[1], "w"), indent=1)
PY
echo
check=(); ((SMOKE)) && check=(--check)
python3 "$HERE/harness.py" summarize --raw "$RAW" --meta "$META" --out "$OUT" "${check[@]}"
