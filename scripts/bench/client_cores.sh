#!/usr/bin/env bash
# How `harness run` scales over client cores: the Server test of
# scripts/bench/sut_vs_python.sh (same simulator profile, prompts and
# per-run measurements), the client confined to 1 core and then to 2, the
# two interleaved. On 4 or more cores the simulator gets CPUs 2-3 and each
# CPU set's highest target QPS VALID in every repeat is found (ladder, then
# bisection); on 2 cores the 2-core client shares CPU 1 with the simulator,
# so only fixed rates run and the figures are the cost of spreading the
# client over two cores (CPU and context switches per query), not a limit.
# The method is in scripts/bench/client_cores.py's header.
#
# usage: scripts/bench/client_cores.sh [--quick] [options of client_cores.py]
#   --quick   3 s runs, 1 repeat, two rates, no bisection: proves the script
#             works (under a minute); figures not worth publishing
# Full run on 2 cores (defaults: 3 rates x 2 CPU sets x 3 repeats x ~35 s):
# about 11 minutes; on 4+ cores the ladder and bisection take about 30.
# Needs: GNU time, taskset, python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
args=()
if [ "${1:-}" = --quick ]; then
  shift
  args=(--seconds 3 --repeats 1 --bisect 0 --rates "500 2000")
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release -q -p harness --bin harness
out="$root/.cache/bench/client_cores/$(date -u +%Y%m%dT%H%M%SZ)"
echo "command: scripts/bench/client_cores.sh ${args[*]} $*"
echo
python3 scripts/bench/client_cores.py --harness "$CARGO_TARGET_DIR/release/harness" \
  --dataset datasets/cnn_dailymail_sample.json --out "$out" "${args[@]}" "$@"
