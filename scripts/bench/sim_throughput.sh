#!/usr/bin/env bash
# SSE throughput of the simulator on one core: the server and engine threads are pinned to
# CPU ${SIM_CPU:-0}, the raw-HTTP client to the other CPUs (sim/examples/sim_bench.rs).
# usage: scripts/bench/sim_throughput.sh [STREAMS=512] [SECONDS=10] [MAX_TOKENS=256] [STEP_US=2000]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p sim --example sim_bench
bin="${CARGO_TARGET_DIR:-target}/release/examples/sim_bench"
for i in 1 2 3; do
  "$bin" "${1:-512}" "${2:-10}" "${3:-256}" "${4:-2000}"
done
