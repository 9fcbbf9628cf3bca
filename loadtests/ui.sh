#!/usr/bin/env bash
# Is the web page responsive with 10,000 samples held and 200 routes? Runs
# tests/ui/perf.mjs: two node upstreams that differ in one field, the real binary with one
# route of 200 templates and room for 10,000 samples, 10,000 divergent pairs, then the page
# in Debian's headless chromium (first render, a filter keystroke, a sort click, the longest
# main-thread task over 20 s of live updates, the route and sample views). Prints the figures
# as JSON; exits 1 past the limits in perf.mjs. Needs /usr/bin/chromium and `npm ci` in
# tests/ui. Uses target/release/shadowtap if built, else the debug binary (built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/shadowtap
if [ ! -x "$bin" ]; then
    bin=target/debug/shadowtap
    [ -x "$bin" ] || cargo build --quiet
fi
echo "binary: $bin"
(cd tests/ui && node perf.mjs "../../$bin")
