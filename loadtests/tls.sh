#!/usr/bin/env bash
# The TLS cells of the perf suite (issue 19): shadowtap terminating TLS next to nginx
# terminating TLS with the same certificate, in the pinned layout of run.sh and ab.sh, CPU µs
# per request of each contender's own process as the main figure.
#
#   loadtests/tls.sh [--rounds N] [--duration S] [--rate R] [--cells a,b,...] [--ports BASE]
#                    [--json OUT] [--smoke]
#
#   loadtests/tls.sh                              # every cell, 5 rounds of 5 s (~10 min)
#   loadtests/tls.sh --cells conn-full,conn-resumed --rounds 3
#   SHADOWTAP_BIN=path/to/shadowtap SHADOWTAP_COMMIT=abc123 loadtests/tls.sh   # a given build
#   loadtests/tls.sh --smoke                      # CI: 1 round of 1 s per cell (~40 s)
#
# Cells (clients always speak TLS to the contender; the contenders speak plaintext HTTP/1.1
# to the upstream, except the mirroring cell's https shadow):
#   h1-closed     keep-alive HTTP/1.1 over TLS, wrk -t1 -c64, as fast as it goes
#   h1-rate       the same at a fixed 5,000 req/s (oha -q, latency-corrected)
#   h2-closed     h2 over TLS (ALPN), oha --http2 -c64, as fast as it goes
#   h2-rate       the same at 5,000 req/s
#   conn-full     a new connection per request, full handshakes: openssl s_time -new
#   conn-resumed  a new connection per request, resumed handshakes: openssl s_time -reuse
#                 (the run fails unless s_time reports every connection after its first resumed)
#   mirror-closed 100 % mirrored to an https shadow with comparison on, wrk -t1 -c64:
#                 shadowtap-mirror against nginx-mirror (its mirror module, proxy_pass https)
#   mirror-rate   the same at 5,000 req/s
# Contenders: nginx and shadowtap (one worker each, cpu 1, both listening for the whole run);
# in the mirror cells nginx-mirror and shadowtap-mirror. The load generator, the upstream
# nginx and the https shadow nginx run on cpu 0. Each measured run follows a 2 s warm-up (1 s
# in --smoke, none for s_time); rounds are interleaved and the order rotates. CPU is utime +
# stime of the contender and its children (nginx's worker) from /proc, divided by the requests
# answered 2xx; "other %" is the share of the contenders' cpu that other processes (a build
# beside the run) used meanwhile. The medians over rounds and the issue's targets follow:
#   keep-alive cells: shadowtap ≤ nginx; conn-full: shadowtap ≤ 1.1 × nginx;
#   mirror cells: shadowtap-mirror ≤ 0.5 × nginx-mirror; conn-resumed: shown, no target.
# --smoke exits 1 if any run had errors or answered nothing, resumption did not happen, or
# shadowtap-mirror compared nothing; never on timings.
#
# Needs nginx (with its ssl and http_v2 modules), wrk, oha, openssl, curl, python3, taskset
# (`loadtests/run.sh --smoke` installs them). Without SHADOWTAP_BIN it builds
# target/release/shadowtap. Ports BASE+81.. (default 18200+). Only 127.0.0.1; everything
# started here is stopped by its PID on exit.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
ROUNDS=5; DURATION=5; RATE=5000; PORTS=18200; SMOKE=0; JSON_OUT=""
ALL_CELLS=h1-closed,h1-rate,h2-closed,h2-rate,conn-full,conn-resumed,mirror-closed,mirror-rate
CELLS=$ALL_CELLS
LOADGEN_CPU="${LOADGEN_CPU:-0}"; PROXY_CPU="${PROXY_CPU:-1}"
while (($#)); do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2;;
    --duration) DURATION="$2"; shift 2;;
    --rate) RATE="$2"; shift 2;;
    --cells) CELLS="$2"; shift 2;;
    --ports) PORTS="$2"; shift 2;;
    --json) JSON_OUT="$2"; shift 2;;
    --smoke) SMOKE=1; shift;;
    -h|--help) sed -n '2,42p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2;;
  esac
done
WARMUP=2
((SMOKE)) && { ROUNDS=1; DURATION=1; WARMUP=1; }
for n in "$RATE" "$ROUNDS" "$DURATION"; do
  [[ "$n" =~ ^[0-9]+$ && "$n" -ge 1 ]] || { echo "numbers must be positive integers: $n" >&2; exit 2; }
done
IFS=, read -r -a SELECTED <<<"$CELLS"
for cell in "${SELECTED[@]}"; do
  [[ ",$ALL_CELLS," == *",$cell,"* ]] || { echo "unknown cell $cell (cells: $ALL_CELLS)" >&2; exit 2; }
done
for tool in nginx wrk oha openssl python3 taskset curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run loadtests/run.sh --smoke once to install the tools" >&2; exit 1; }
done
nginx -V 2>&1 | grep -q -- --with-http_ssl_module || { echo "this nginx has no ssl module" >&2; exit 1; }
# shellcheck source=loadtests/lib.sh
source "$HERE/lib.sh"
shadowtap_binary "$ROOT"
set_ports "$PORTS"
# Beside lib.sh's layout: the contenders on LISTEN_PORT (shadowtap) and +1..+3, the https
# shadow's stub_status on SHADOW_PORT+5, shadowtap-mirror's admin port on ADMIN_PORT+1.
declare -A PORT=([shadowtap]=$LISTEN_PORT [nginx]=$((LISTEN_PORT + 1)) [nginx-mirror]=$((LISTEN_PORT + 2))
  [shadowtap-mirror]=$((LISTEN_PORT + 3)))
declare -A ADMIN=([shadowtap]=$ADMIN_PORT [shadowtap-mirror]=$((ADMIN_PORT + 1)))
declare -A PID=()
SHADOW_STATUS_PORT=$((SHADOW_PORT + 5))

RUN_DIR="$(mktemp -d /tmp/shadowtap-tls.XXXXXX)"; chmod 755 "$RUN_DIR"
mkdir -p "$RUN_DIR"/{www,tmp}
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
TLS="$RUN_DIR/tls"
make_test_certificate "$TLS"

# ------------------------------------------------------------------ processes
start_upstream "$RUN_DIR" "$UPSTREAM_PORT" "$H2_PORT"
sed -e "s#@RUN@#$RUN_DIR#g" -e "s#@SHADOW_PORT@#$SHADOW_PORT#g" -e "s#@TLS@#$TLS#g" \
  -e "s#@STATUS_PORT@#$SHADOW_STATUS_PORT#g" "$HERE/conf/shadow-tls.conf.in" >"$RUN_DIR/shadow-tls.conf"
taskset -c "$LOADGEN_CPU" nginx -p "$RUN_DIR" -c "$RUN_DIR/shadow-tls.conf" >"$RUN_DIR/shadow-tls.out" 2>&1 &
PIDS+=($!); wait_port "$SHADOW_PORT"

# nginx terminating TLS: the run.sh templates with the listener made `ssl http2` and the TLS
# settings a production edge would have (TLS 1.2 and 1.3, a session cache; tickets are on by
# default). nginx-mirror's mirror location speaks https to the shadow, verifying it against
# the test CA under the name localhost (as shadowtap-mirror does), reusing sessions and
# keep-alive connections.
start_nginx() { # LABEL TEMPLATE
  local label="$1" tls
  tls="        ssl_certificate $TLS/cert.pem;\n        ssl_certificate_key $TLS/key.pem;"
  tls+="\n        ssl_protocols TLSv1.2 TLSv1.3;\n        ssl_session_cache shared:$label:10m;"
  sed -e "s#pid @RUN@/nginx-proxy.pid#pid @RUN@/$label.pid#" -e "s#@RUN@#$RUN_DIR#g" \
    -e "s#@UPSTREAM_PORT@#$UPSTREAM_PORT#g" -e "s#listen 127.0.0.1:@LISTEN_PORT@ backlog=4096;#listen 127.0.0.1:${PORT[$label]} ssl http2 backlog=4096;#" \
    -e "s#@EXTRA_PROXY_HEADERS@##" -e "s#@H2_LISTEN@#$tls#" -e "s#@NAME@#$label#g" \
    -e "s#@SAMPLE_SPLIT@##" -e "s#@SAMPLE_GATE@##" -e "s#@SHADOW_PORT@#$SHADOW_PORT#g" \
    -e "s#@MIRROR_TIMEOUT@#5s#g" \
    -e "s#proxy_pass http://shadow\$request_uri;#proxy_pass https://shadow\$request_uri;\n            proxy_ssl_verify on;\n            proxy_ssl_trusted_certificate $TLS/ca.pem;\n            proxy_ssl_name localhost;\n            proxy_ssl_server_name on;\n            proxy_ssl_session_reuse on;#" \
    "$HERE/conf/$2" >"$RUN_DIR/$label.conf"
  taskset -c "$PROXY_CPU" nginx -p "$RUN_DIR" -c "$RUN_DIR/$label.conf" >"$RUN_DIR/$label.out" 2>&1 &
  PIDS+=($!); PID[$label]=$!
}
# shadowtap: conf/shadowtap.toml.in (the live path) or conf/shadowtap-perf.toml.in (mirroring
# 100 % with comparison on, the perf suite's settings) with the listener terminating TLS; the
# mirroring one's shadow is https://127.0.0.1, verified against the test CA as localhost.
start_shadowtap() { # LABEL TEMPLATE
  local label="$1"
  sed -e "s#@UPSTREAM_PORT@#$UPSTREAM_PORT#g" -e "s#@LISTEN_PORT@#${PORT[$label]}#g" \
    -e "s#@ADMIN_PORT@#${ADMIN[$label]}#g" -e "s#@MIRROR_PERCENT@#100#g" -e "s#@MIRROR_TIMEOUT@#5s#g" \
    -e "s#^url = \"http://127.0.0.1:@SHADOW_PORT@\"#url = \"https://127.0.0.1:$SHADOW_PORT\"\n\n[upstreams.shadow.tls]\nca_file = \"$TLS/ca.pem\"\nserver_name = \"localhost\"#" \
    "$HERE/conf/$2" >"$RUN_DIR/$label.toml"
  add_listener_tls "$RUN_DIR/$label.toml" "$TLS"
  taskset -c "$PROXY_CPU" env RUST_LOG=warn "$SHADOWTAP_BIN" run --config "$RUN_DIR/$label.toml" \
    >"$RUN_DIR/$label.out" 2>&1 &
  PIDS+=($!); PID[$label]=$!
}
start_nginx nginx nginx-proxy.conf.in
start_shadowtap shadowtap shadowtap.toml.in
start_nginx nginx-mirror nginx-mirror.conf.in
start_shadowtap shadowtap-mirror shadowtap-perf.toml.in
for label in "${!PORT[@]}"; do
  wait_port "${PORT[$label]}"
  # One request each over TLS, verified against the test CA: a misconfigured contender fails
  # here instead of producing a fast table of errors.
  curl -sS --fail -o /dev/null --cacert "$TLS/ca.pem" --resolve "localhost:${PORT[$label]}:127.0.0.1" \
    "https://localhost:${PORT[$label]}/" || { echo "$label did not answer 200 over TLS" >&2; exit 1; }
done

# ------------------------------------------------------------------ load
# Each prints "<2xx answers> <errors> <p50 µs or -> <resumed or ->" on stdout.
URL_PATH=/
load() { # CELL SECONDS PORT
  local url="https://127.0.0.1:$3$URL_PATH" args=()
  case "$1" in
    h1-closed|mirror-closed)
      taskset -c "$LOADGEN_CPU" wrk -t1 -c64 -d"$2"s -s "$HERE/conf/wrk-report.lua" "$url" |
        python3 -c 'import sys
for line in sys.stdin:
    if line.startswith("WRK_RESULT "):
        d = {k: int(float(v)) for k, v in (f.split("=") for f in line.split()[1:])}
        errors = sum(d[k] for k in ("bad_status", "connect_errors", "read_errors", "write_errors", "timeouts"))
        print(d["requests"] - d["bad_status"], errors, d["p50_us"], "-")'
      ;;
    h1-rate|mirror-rate|h2-closed|h2-rate)
      [[ "$1" == *-rate ]] && args+=(-q "$RATE" --latency-correction)
      [[ "$1" == h2-* ]] && args+=(--http2)
      taskset -c "$LOADGEN_CPU" oha --no-tui --insecure "${args[@]}" -c 64 -z "$2"s -w --output-format json "$url" |
        python3 -c 'import json, sys
d = json.load(sys.stdin)
codes = {int(k): v for k, v in d["statusCodeDistribution"].items()}
ok = sum(v for k, v in codes.items() if 200 <= k < 300)
# Requests still in flight when the window closes are abandoned by oha (it does not wait for
# them over h2); they are no answer and no error of the contender.
errors = {k: v for k, v in d["errorDistribution"].items() if k != "aborted due to deadline"}
if errors:
    print("oha errors:", errors, file=sys.stderr)
print(ok, sum(codes.values()) - ok + sum(errors.values()), round(d["latencyPercentiles"]["p50"] * 1e6), "-")'
      ;;
    conn-full|conn-resumed)
      local mode=-new; [[ "$1" == conn-resumed ]] && mode=-reuse
      # s_time prints a character per connection ('r' when resumed) and then
      # "<N> connections in <T> real seconds"; the first connection of -reuse is a full one.
      taskset -c "$LOADGEN_CPU" openssl s_time -connect "127.0.0.1:$3" "$mode" -time "$2" -www "$URL_PATH" 2>&1 |
        python3 -c 'import re, sys
out = sys.stdin.read()
m = re.search(r"(\d+) connections in [\d.]+s", out) or re.search(r"(\d+) connections in", out)
n = int(m.group(1)) if m else 0
marks = "".join(re.findall(r"^[r*0-9]+$", out, re.M))
print(n, 0 if n else 1, "-", marks.count("r") if "-reuse" in sys.argv else "-")' "$mode"
      ;;
  esac
}
metric_sum() { # LABEL NAME: the sum of a counter over its label sets, from the admin port
  curl -s "http://127.0.0.1:${ADMIN[$1]}/metrics" | awk -v n="$2" '$1 ~ "^"n"({|$)" { s += $2 } END { print s + 0 }'
}
shadow_hits() { # requests the https shadow has received (its stub_status)
  curl -s "http://127.0.0.1:$SHADOW_STATUS_PORT/status" | awk 'NR == 3 { print $3 }'
}
cpu_busy() { # "<all ticks> <idle ticks>" of the contenders' cpu
  awk -v c="cpu$PROXY_CPU" '$1 == c { print $2 + $3 + $4 + $5 + $6 + $7 + $8, $5 + $6 }' /proc/stat
}
contenders() { # CELL
  if [[ "$1" == mirror-* ]]; then echo "nginx-mirror shadowtap-mirror"; else echo "nginx shadowtap"; fi
}

hz="$(getconf CLK_TCK)"
# The commit the binary was built from: this tree's when built here, else SHADOWTAP_COMMIT
# (a given binary's source is not known to this script).
if [[ -n "${SHADOWTAP_COMMIT:-}" ]]; then COMMIT="$SHADOWTAP_COMMIT"
elif [[ "$SHADOWTAP_BIN" == "$ROOT/target/release/shadowtap" ]]; then
  COMMIT="$(git -C "$ROOT" rev-parse --short=12 HEAD)"
  [[ -z "$(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock)" ]] || COMMIT+="+dirty"
else COMMIT=unknown; fi
echo "== TLS cells: $ROUNDS round(s) of $DURATION s, rate $RATE/s, shadowtap $SHADOWTAP_BIN ($COMMIT)"
printf '%-6s %-14s %-17s %9s %7s %9s %9s %8s %10s %8s %s\n' round cell contender answered errors "CPU µs" "p50 µs" resumed handshakes other% "shadow-hits compared"
: >"$RUN_DIR/rows"
for round in $(seq 1 "$ROUNDS"); do
  for cell in "${SELECTED[@]}"; do
    read -r -a who <<<"$(contenders "$cell")"
    ((round % 2)) || who=("${who[1]}" "${who[0]}")
    for label in "${who[@]}"; do
      pid="${PID[$label]}"; port="${PORT[$label]}"
      [[ "$cell" == conn-* ]] || load "$cell" "$WARMUP" "$port" >/dev/null
      hs1=0; compared1=0; shadow1="$(shadow_hits)"
      if [[ -n "${ADMIN[$label]:-}" ]]; then
        hs1="$(metric_sum "$label" shadowtap_tls_handshakes_total)"
        compared1="$(metric_sum "$label" shadowtap_comparisons_total)"
      fi
      read -r u1 s1 cu1 cs1 < <(cpu_ticks "$pid")
      read -r all1 idle1 < <(cpu_busy)
      read -r n errors p50 resumed < <(load "$cell" "$DURATION" "$port")
      read -r u2 s2 cu2 cs2 < <(cpu_ticks "$pid")
      read -r all2 idle2 < <(cpu_busy)
      hs=-; shadow=-; compared=-
      if [[ -n "${ADMIN[$label]:-}" ]]; then
        hs=$(($(metric_sum "$label" shadowtap_tls_handshakes_total) - hs1))
        if [[ "$label" == shadowtap-mirror ]]; then
          sleep 0.3 # the last copies' comparisons land on the compare worker's next batch
          compared=$(($(metric_sum "$label" shadowtap_comparisons_total) - compared1))
        fi
      fi
      [[ "$cell" == mirror-* ]] && shadow=$(($(shadow_hits) - shadow1))
      python3 - "$round" "$cell" "$label" "${n:-0}" "${errors:-1}" "$hz" \
        "$((u2 - u1 + cu2 - cu1 + s2 - s1 + cs2 - cs1))" "${p50:--}" "${resumed:--}" "$hs" \
        "$((all2 - all1))" "$((idle2 - idle1))" "$shadow" "$compared" <<'EOF' | tee -a "$RUN_DIR/rows"
import sys
rnd, cell, label, n, errors, hz, ticks, p50, resumed, hs, all_t, idle_t, shadow, compared = sys.argv[1:]
cpu_us = int(ticks) / int(hz) * 1e6 / max(int(n), 1)
# The share of the contender's cpu that others used meanwhile (another build, a test suite).
other = 100.0 * (int(all_t) - int(idle_t) - int(ticks)) / max(int(all_t), 1)
print("%-6s %-14s %-17s %9s %7s %9.1f %9s %8s %10s %8.0f %s %s" % (rnd, cell, label, n, errors, cpu_us, p50, resumed, hs, other, shadow, compared))
EOF
    done
  done
done

python3 - "$RUN_DIR/rows" "$SMOKE" "$COMMIT" "${JSON_OUT:-}" "$ROUNDS" "$DURATION" "$RATE" <<'EOF'
import json, statistics, sys
path, smoke, commit, json_out, rounds, duration, rate = sys.argv[1:]
rows = []
for line in open(path):
    r = line.split()
    rows.append(dict(round=int(r[0]), cell=r[1], contender=r[2], answered=int(r[3]), errors=int(r[4]),
                     cpu_us=float(r[5]), p50_us=None if r[6] == "-" else int(r[6]),
                     resumed=None if r[7] == "-" else int(r[7]), handshakes=None if r[8] == "-" else int(r[8]),
                     other_pct=float(r[9]), shadow_hits=None if r[10] == "-" else int(r[10]),
                     compared=None if r[11] == "-" else int(r[11])))
cells = list(dict.fromkeys(r["cell"] for r in rows))
# (baseline, contender, allowed ratio) per cell; None: shown without a target.
targets = {"h1-closed": 1.0, "h1-rate": 1.0, "h2-closed": 1.0, "h2-rate": 1.0, "conn-full": 1.1,
           "conn-resumed": None, "mirror-closed": 0.5, "mirror-rate": 0.5}
def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None
table = []
print()
print("== medians over %s round(s) of %s s; CPU µs per 2xx answer of the contender's own process" % (rounds, duration))
print("%-14s %11s %16s %7s %8s %5s %7s" % ("cell", "nginx µs", "shadowtap µs", "ratio", "target", "met?", "other%"))
for cell in cells:
    base, mine = ("nginx-mirror", "shadowtap-mirror") if cell.startswith("mirror") else ("nginx", "shadowtap")
    b = [r for r in rows if r["cell"] == cell and r["contender"] == base]
    m = [r for r in rows if r["cell"] == cell and r["contender"] == mine]
    bm, mm = med(r["cpu_us"] for r in b), med(r["cpu_us"] for r in m)
    ratio = mm / bm if bm else float("nan")
    limit = targets[cell]
    met = "-" if limit is None else ("yes" if ratio <= limit else "NO")
    entry = dict(cell=cell, baseline=base, contender=mine, baseline_cpu_us=bm, cpu_us=mm, ratio=ratio,
                 target_ratio=limit, met=met,
                 baseline_range=[min(r["cpu_us"] for r in b), max(r["cpu_us"] for r in b)] if b else None,
                 range=[min(r["cpu_us"] for r in m), max(r["cpu_us"] for r in m)] if m else None,
                 p50_us={base: med(r["p50_us"] for r in b), mine: med(r["p50_us"] for r in m)})
    table.append(entry)
    other = med(r["other_pct"] for r in b + m)
    entry["other_pct"] = other
    print("%-14s %11.1f %16.1f %7.2f %8s %5s %7.0f" % (cell, bm or 0, mm or 0, ratio, "-" if limit is None else "≤ %.1f×" % limit, met, other))
problems = []
for r in rows:
    if r["answered"] == 0 or r["errors"]:
        problems.append("%s %s round %d: %d answered, %d errors" % (r["cell"], r["contender"], r["round"], r["answered"], r["errors"]))
    if r["cell"] == "conn-resumed" and r["resumed"] is not None and r["resumed"] < r["answered"] - 1:
        problems.append("%s %s round %d: only %d of %d connections resumed" % (r["cell"], r["contender"], r["round"], r["resumed"], r["answered"]))
    if r["cell"].startswith("mirror") and not r["shadow_hits"]:
        problems.append("%s %s round %d: nothing reached the shadow" % (r["cell"], r["contender"], r["round"]))
    if r["contender"] == "shadowtap-mirror" and not r["compared"]:
        problems.append("%s round %d: shadowtap-mirror compared nothing" % (r["cell"], r["round"]))
print("== shadowtap commit " + commit)
if json_out:
    json.dump(dict(commit=commit, rounds=int(rounds), duration_s=int(duration), rate=int(rate),
                   runs=rows, medians=table), open(json_out, "w"), indent=1)
    print("== wrote " + json_out)
if problems:
    print("== PROBLEMS")
    for p in problems:
        print("   " + p)
    sys.exit(1)
EOF
