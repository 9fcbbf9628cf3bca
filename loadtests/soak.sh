#!/usr/bin/env bash
# The soak (issue 25): shadowtap under steady mixed load (GET, and POSTs with bodies) with
# every request mirrored and compared, its shadow flapping between healthy, dead, hanging,
# slow and resetting mid-body (a TCP relay before it), its primary restarted once half way.
# Afterwards it checks, prints and exits 1 when one fails:
#   live        no failed client request outside the primary's restart window; each failure
#               in it a 502 the proxy counted
#   accounting  sampled = the sum of the mirror outcomes (from /metrics)
#   rss         RSS flat (its slope reported, from /proc samples)
#   fds         open file descriptors back to their start value
#   gauges      mirror queue, in-flight and buffered-bytes (budget) gauges back to 0
# The work is done by loadtests/soak.py (stdlib Python); see loadtests/README.md.
#
#   loadtests/soak.sh [options]
#
# Options (defaults in brackets):
#   --duration D     how long the load runs: 90, 90s, 10m, 1h                    [1h]
#   --smoke          CI mode: 60 s, the shadow's state changing every 6 s
#   --rate R         requests a second, all connections together                [200]
#   --connections C  client connections                                         [8]
#   --phase D        how long the shadow stays in each state                     [30s]
#   --out FILE       results JSON         [loadtests/results/soak-<UTC timestamp>.json]
#   --keep           keep the run directory (config, shadowtap's and the backends' logs)
#   -h, --help
#
# Environment:
#   SHADOWTAP_BIN=PATH   use this binary instead of building one (cargo build --release)
#   CARGO_TARGET_DIR     respected by the build
#
# Every port is picked free on 127.0.0.1 when the run starts; every process is started by
# soak.py and stopped by its own PID when the run ends.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
DURATION=1h; RATE=200; CONNS=8; PHASE=30s; OUT=""; KEEP=0

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

while (($#)); do
  case "$1" in
    --duration) DURATION="$2"; shift 2;;
    --smoke) DURATION=60s; PHASE=6s; RATE=100; shift;;
    --rate) RATE="$2"; shift 2;;
    --connections) CONNS="$2"; shift 2;;
    --phase) PHASE="$2"; shift 2;;
    --out) OUT="$2"; shift 2;;
    --keep) KEEP=1; shift;;
    -h|--help) usage; exit 0;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2;;
  esac
done

# shellcheck source=loadtests/lib.sh
source "$HERE/lib.sh"
shadowtap_binary "$ROOT"

RUN_DIR="$(mktemp -d -t shadowtap-soak.XXXXXX)"
if ((KEEP)); then
  echo "== run directory kept: $RUN_DIR"
else
  trap 'rm -rf "$RUN_DIR"' EXIT
fi
mkdir -p "$HERE/results"
OUT="${OUT:-$HERE/results/soak-$(date -u +%Y%m%dT%H%M%SZ).json}"

TREE="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "== soak: shadowtap $SHADOWTAP_BIN (the tree is at commit $TREE; a given SHADOWTAP_BIN may be another build)"
status=0
python3 "$HERE/soak.py" run --bin "$SHADOWTAP_BIN" --duration "$DURATION" --rate "$RATE" \
  --connections "$CONNS" --phase "$PHASE" --dir "$RUN_DIR" --out "$OUT" || status=$?
echo "== results: $OUT"
if ((status)) && ((KEEP == 0)); then
  echo "== shadowtap's log (last 40 lines)"; tail -n 40 "$RUN_DIR/shadowtap.log" || true
fi
exit "$status"
