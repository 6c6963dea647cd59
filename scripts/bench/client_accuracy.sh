#!/usr/bin/env bash
# Measurement accuracy of the harness against the simulator's ground truth at
# 1,000 QPS streaming (harness/examples/measure_accuracy.rs): simulator and
# client in one process, pinned to different CPUs, every record joined to the
# simulator's record of the same request by X-Request-Id. Three runs; the
# machine's load average is printed before each (figures taken while other
# work runs on the machine are not worth publishing).
# usage: scripts/bench/client_accuracy.sh [QPS=1000] [SECONDS=25] [MAX_TOKENS=16] [PROFILE=tiny-fast]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p harness --example measure_accuracy
bin="${CARGO_TARGET_DIR:-target}/release/examples/measure_accuracy"
for i in 1 2 3; do
  echo "run $i; load average: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs"
  "$bin" --qps "${1:-1000}" --duration-s "${2:-25}" --max-tokens "${3:-16}" --profile "${4:-tiny-fast}"
  echo
done
