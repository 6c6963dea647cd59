#!/usr/bin/env bash
# `harness run` against a Python SUT on the MLPerf LoadGen wheel in the style
# of MLCommons' reference SUTs (scripts/bench/python_sut.py: one asyncio
# loop thread with a streaming aiohttp client; FirstTokenComplete and
# QuerySamplesComplete from that thread): the same LoadGen Server test
# against the same simulator with identical token-id prompts, each client
# pinned to one core. Reports the highest target QPS VALID in every repeat
# (ladder, then bisection), client CPU per query, peak RSS, and client-added
# TTFT/TPOT against the simulator's per-request ground truth. The method is
# in scripts/bench/sut_vs_python.py's header.
#
# usage: scripts/bench/sut_vs_python.sh [--quick] [options of sut_vs_python.py]
#   --quick   3 s runs, 1 repeat, two rungs each, no bisection: proves the
#             script works (about a minute); figures not worth publishing
# Full run (defaults: 30 s runs, 3 repeats, 4 rungs each, doubled until a
# rung fails, 3 bisection steps): about (10 rungs + 6 bisection runs) x 3 x
# ~40 s = 30 to 35 minutes (a failing rung runs longer while its backlog drains).
# Needs: 2 CPUs or more (client on CPU 0, simulator on CPU 1; --client-cpu,
# --sim-cpu), python3 with venv and pip (installs mlcommons-loadgen 6.0.17
# and aiohttp from PyPI into .cache/peers/python-sut), GNU time, taskset.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
args=()
if [ "${1:-}" = --quick ]; then
  shift
  args=(--seconds 3 --repeats 1 --bisect 0 --harness-qps "500 2000" --python-qps "200 800")
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release -q -p harness --bin harness

LOADGEN_VERSION=6.0.17
venv="$root/.cache/peers/python-sut/venv"
if ! [ -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import mlperf_loadgen, aiohttp' 2>/dev/null; then
  echo "sut_vs_python: installing mlcommons-loadgen==$LOADGEN_VERSION and aiohttp into $venv" >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --only-binary=:all: \
    "mlcommons-loadgen==$LOADGEN_VERSION" aiohttp >&2
fi
aiohttp_version=$("$venv/bin/python" -c 'import aiohttp; print(aiohttp.__version__)')
out="$root/.cache/bench/sut_vs_python/$(date -u +%Y%m%dT%H%M%SZ)"
echo "Python SUT: scripts/bench/python_sut.py on mlcommons-loadgen $LOADGEN_VERSION, aiohttp $aiohttp_version, $("$venv/bin/python" -V)"
echo "command: scripts/bench/sut_vs_python.sh ${args[*]} $*"
echo
python3 scripts/bench/sut_vs_python.py --harness "$CARGO_TARGET_DIR/release/harness" \
  --python "$venv/bin/python" --python-sut scripts/bench/python_sut.py \
  --dataset datasets/cnn_dailymail_sample.json --out "$out" "${args[@]}" "$@"
