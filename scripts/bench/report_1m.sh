#!/usr/bin/env bash
# Times reports::generate on a synthetic 1,000,000-sample run directory
# (Server at 1000 QPS, 1 in 1000 samples failed, server + GPU metrics each
# second). Target: under 5 s on the 2-core dev box, release build.
#
# Usage: scripts/bench/report_1m.sh [SAMPLES] [MEAN_OUTPUT_TOKENS] [REPEATS]
#   MEAN_OUTPUT_TOKENS defaults to 128 (about 2.1 GB of records.jsonl, 128 M
#   chunk times); 32 gives about 0.6 GB.
# The run directory is made once under .cache/bench/ (gitignored) and reused.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
samples="${1:-1000000}"
tokens="${2:-128}"
repeats="${3:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
cd "$root"
cargo build --release -q -p reports --example synthetic_run --example report
dir="$root/.cache/bench/report-${samples}-${tokens}"
if [ ! -f "$dir/records.jsonl" ]; then
  rm -rf "$dir"
  mkdir -p "$(dirname "$dir")"
  echo "generating $dir" >&2
  "$CARGO_TARGET_DIR/release/examples/synthetic_run" "$dir" "$samples" "$tokens"
fi
ls -l "$dir/records.jsonl" >&2
cat "$dir/records.jsonl" > /dev/null # page cache warm
echo "machine: $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq "$repeats"); do
  /usr/bin/time -f "run $i: %e s wall, %U s user, %S s sys, %M KB max RSS" \
    "$CARGO_TARGET_DIR/release/examples/report" "$dir" | grep '^generate'
done
