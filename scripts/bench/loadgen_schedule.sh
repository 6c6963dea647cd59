#!/usr/bin/env bash
# Benchmark: pre-generating LoadGen-exact Server queries (time and bytes per
# query). Usage: scripts/bench/loadgen_schedule.sh [queries] [qps] [repeats]
# Defaults: 10000000 queries at 100000 qps, best of 3.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet -p loadgen --example schedule_bench
echo "machine: $(nproc) cores, $(uname -srm)"
echo "command: cargo run --release -p loadgen --example schedule_bench -- ${1:-10000000} ${2:-100000} ${3:-3}"
cargo run --release --quiet -p loadgen --example schedule_bench -- "${1:-10000000}" "${2:-100000}" "${3:-3}"
