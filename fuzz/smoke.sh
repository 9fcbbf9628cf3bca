#!/usr/bin/env bash
# Fuzzes each target for a short time (CI's smoke; fuzz/README.md has the long run).
# A crash, a panic, a timeout or an out-of-memory input fails the script (libFuzzer's exit
# status); its reproducer is left in fuzz/artifacts/<target>/. New inputs found go to fuzz/work/<target> (git-ignored);
# the committed seeds in fuzz/corpus/<target> are read, never written.
#
#   bash fuzz/smoke.sh               # every target, FUZZ_SECONDS (default 25) each
#   bash fuzz/smoke.sh chunked 600   # one target, 10 minutes
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${2:-${FUZZ_SECONDS:-25}}
# cargo fuzz needs nightly flags (-Zsanitizer, coverage instrumentation); the machine's
# toolchain is stable, which accepts them under RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
export CARGO_PROFILE_DEV_DEBUG=0
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

targets=${1:-$(cargo fuzz list)}
cargo fuzz build
for target in $targets; do
    mkdir -p "fuzz/work/$target"
    echo "-- $target: ${seconds}s"
    log=$(mktemp)
    if ! cargo fuzz run "$target" "fuzz/work/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        tail -n 80 "$log"
        echo "FAILED: $target found an input that breaks an invariant (reproducer in fuzz/artifacts/$target/)"
        exit 1
    fi
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" || true
    rm -f "$log"
done
echo "fuzz smoke: every target ran ${seconds}s without a finding"
