#!/usr/bin/env bash
# What metrics collection costs the harness: the collector samples a running
# simulator's /metrics, NVML (when present) and the host every second for 60 s
# in its own process; prints its CPU time as a share of one core.
#   scripts/bench/telemetry_overhead.sh [SECONDS] [INTERVAL_S]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-60}"; interval="${2:-1}"
cargo build --release -q -p harness -p telemetry --example collector_overhead
target="${CARGO_TARGET_DIR:-target}"
port=18777
"$target/release/harness" sim --profile tiny-fast --listen "127.0.0.1:$port" >/dev/null 2>&1 &
sim=$!
trap 'kill $sim 2>/dev/null' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
"$target/release/examples/collector_overhead" "http://127.0.0.1:$port" "$seconds" "$interval"
