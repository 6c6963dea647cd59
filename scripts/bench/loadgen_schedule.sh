#!/usr/bin/env bash
# Benchmark: pre-generating LoadGen-exact Server queries (time and bytes per
# query). Usage: scripts/bench/loadgen_schedule.sh [queries] [qps] [repeats]
# Defaults: 10000000 queries at 100000 qps, best of 3. With LOADGEN_PYTHON set
# (scripts/peers/loadgen.sh) the real LoadGen wheel is timed on the same
# queries for comparison (it needs ~450 bytes of RAM per query).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet -p loadgen --example schedule_bench
echo "machine: $(nproc) cores, $(uname -srm)"
echo "command: cargo run --release -p loadgen --example schedule_bench -- ${1:-10000000} ${2:-100000} ${3:-3}"
cargo run --release --quiet -p loadgen --example schedule_bench -- "${1:-10000000}" "${2:-100000}" "${3:-3}"
if [ -n "${LOADGEN_PYTHON:-}" ]; then
  echo "command: \$LOADGEN_PYTHON scripts/bench/loadgen_schedule_wheel.py ${1:-10000000} ${2:-100000}"
  "$LOADGEN_PYTHON" scripts/bench/loadgen_schedule_wheel.py "${1:-10000000}" "${2:-100000}"
fi
