#!/usr/bin/env bash
# Audits shadowtap's TLS listener with testssl.sh (issue 19): the real binary, a TLS listener on
# 127.0.0.1 with a certificate made here (a throw-away P-256 CA and leaf, as
# config/tls/make-example-certs.sh makes them) in front of an upstream nginx, and testssl.sh's
# JSON findings judged by this script. It fails (exit 1) when
#   - SSLv2, SSLv3, TLS 1.0 or TLS 1.1 is offered;
#   - any weak cipher is offered: testssl's NULL, aNULL (anonymous), EXPORT, LOW (64-bit and
#     DES), 3DES/IDEA and AVERAGE ("obsoleted" in testssl 3.2: CBC, no forward secrecy)
#     categories, or RC4;
#   - any finding is rated HIGH or CRITICAL.
# TLS 1.2 and 1.3 must both be offered (the listener's contract), else it fails too.
#
#   loadtests/testssl.sh            # the full run: testssl's default checks (minutes)
#   loadtests/testssl.sh --smoke    # protocols, cipher categories, forward secrecy and the
#                                   # vulnerability checks only (what .ci/run runs)
#   SHADOWTAP_BIN=path/to/shadowtap loadtests/testssl.sh   # audit a given binary
#   loadtests/testssl.sh --json OUT # keep testssl's JSON findings in OUT
#   loadtests/testssl.sh --ports BASE   # move the ports (default 18300+, see lib.sh's layout)
#
# Installs testssl.sh (Debian package `testssl.sh`), nginx, openssl and curl with apt if
# missing, as run.sh installs its tools. Without SHADOWTAP_BIN it builds
# target/release/shadowtap. Only 127.0.0.1; everything started here is stopped by its PID on exit.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SMOKE=0; JSON_OUT=""; PORTS=18300
LOADGEN_CPU="${LOADGEN_CPU:-0}"; PROXY_CPU="${PROXY_CPU:-1}"
while (($#)); do
  case "$1" in
    --smoke) SMOKE=1; shift;;
    --json) JSON_OUT="$2"; shift 2;;
    --ports) PORTS="$2"; shift 2;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2;;
  esac
done

SUDO=(); [[ "$(id -u)" == 0 ]] || SUDO=(sudo)
missing=()
command -v testssl >/dev/null || missing+=(testssl.sh)
command -v nginx >/dev/null || missing+=(nginx-light)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
  echo "== installing ${missing[*]} (apt)"
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# shellcheck source=loadtests/lib.sh
source "$HERE/lib.sh"
shadowtap_binary "$ROOT"
set_ports "$PORTS"
RUN_DIR="$(mktemp -d /tmp/shadowtap-testssl.XXXXXX)"; chmod 755 "$RUN_DIR"
PIDS=()
cleanup() {
  local rc=$? pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

make_test_certificate "$RUN_DIR/tls"
start_upstream "$RUN_DIR" "$UPSTREAM_PORT" "$H2_PORT"
write_shadowtap_config "$RUN_DIR/shadowtap.toml" 0
add_listener_tls "$RUN_DIR/shadowtap.toml" "$RUN_DIR/tls"
taskset -c "$PROXY_CPU" env RUST_LOG=warn "$SHADOWTAP_BIN" run --config "$RUN_DIR/shadowtap.toml" \
  >"$RUN_DIR/shadowtap.out" 2>&1 &
PIDS+=($!)
wait_port "$LISTEN_PORT"
# One real request through the listener first: a broken listener must not pass as "nothing weak".
curl -sS --fail -o /dev/null --cacert "$RUN_DIR/tls/ca.pem" --resolve "localhost:$LISTEN_PORT:127.0.0.1" \
  "https://localhost:$LISTEN_PORT/" || { echo "the TLS listener did not answer 200" >&2; exit 1; }

checks=()
if ((SMOKE)); then checks=(--protocols --std --server-preference --fs --vulnerable); fi
json="$RUN_DIR/testssl.json"
echo "== testssl $(testssl --version 2>/dev/null | grep -o 'testssl *[0-9.]*' | head -n 1 | tr -s ' ') against 127.0.0.1:$LISTEN_PORT (${checks[*]:-default checks})"
start=$SECONDS
# --ip: no DNS; --warnings off: never stop at a prompt; --add-ca: the test CA is trusted, as
# a real CA would be. testssl's own exit status counts
# findings, so the verdict is this script's, from the JSON.
taskset -c "$LOADGEN_CPU" testssl --quiet --color 0 --warnings off --ip 127.0.0.1 --add-ca "$RUN_DIR/tls/ca.pem" \
  --jsonfile "$json" "${checks[@]}" "localhost:$LISTEN_PORT" >"$RUN_DIR/testssl.out" 2>&1 || true
echo "== testssl took $((SECONDS - start)) s"
[[ -s "$json" ]] || { tail -n 20 "$RUN_DIR/testssl.out" >&2; echo "testssl wrote no JSON" >&2; exit 1; }
[[ -z "$JSON_OUT" ]] || cp "$json" "$JSON_OUT"

python3 - "$json" <<'EOF'
import json, sys
findings = json.load(open(sys.argv[1]))
by_id = {f["id"]: f for f in findings}
problems = []
# Protocols: offered ones read "offered..." (testssl 3.0: "offered", "offered (OK)", ...).
for proto in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
    f = by_id.get(proto)
    if f is None:
        problems.append(f"{proto}: not tested")
    elif not f["finding"].startswith("not offered"):
        problems.append(f"{proto}: {f['finding']}")
for proto in ("TLS1_2", "TLS1_3"):
    f = by_id.get(proto)
    if f is None or not f["finding"].startswith("offered"):
        problems.append(f"{proto} must be offered: {f['finding'] if f else 'not tested'}")
# Weak cipher categories (testssl's --std ids).
# testssl 3.0 (Debian 12) calls the last one AVERAGE, 3.2 OBSOLETED.
for cat in ("cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT", "cipherlist_LOW",
            "cipherlist_3DES_IDEA", "cipherlist_AVERAGE|cipherlist_OBSOLETED"):
    f = next((by_id[c] for c in cat.split("|") if c in by_id), None)
    if f is None:
        problems.append(f"{cat}: not tested")
    elif not f["finding"].startswith("not offered"):
        problems.append(f"{cat}: {f['finding']}")
rc4 = by_id.get("RC4")
if rc4 is None or not rc4["finding"].startswith("not vulnerable"):
    problems.append(f"RC4: {rc4['finding'] if rc4 else 'not tested'}")
for f in findings:
    if f.get("severity") in ("HIGH", "CRITICAL"):
        problems.append(f"{f['id']} [{f['severity']}]: {f['finding']}")
severities = {}
for f in findings:
    severities[f.get("severity", "?")] = severities.get(f.get("severity", "?"), 0) + 1
print("== findings by severity: " + ", ".join(f"{k} {v}" for k, v in sorted(severities.items())))
for proto in ("SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3"):
    print(f"   {proto:8} {by_id.get(proto, {}).get('finding', 'not tested')}")
for f in findings:
    if f.get("severity") in ("LOW", "MEDIUM"):
        print(f"   {f['severity']:8} {f['id']}: {f['finding']}")
if problems:
    print("== FAIL")
    for p in problems:
        print("   " + p)
    sys.exit(1)
print("== PASS: TLS 1.2 and 1.3 only, no weak cipher, no HIGH or CRITICAL finding")
EOF
