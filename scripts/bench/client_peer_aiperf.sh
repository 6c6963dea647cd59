#!/usr/bin/env bash
# Python peer for scripts/bench/client_vs_python.sh: NVIDIA's AIPerf (the
# successor of GenAI-Perf; PyPI `aiperf`), installed with pip in a venv. It
# runs against any OpenAI-compatible endpoint (`aiperf profile --url ...
# --endpoint-type completions --streaming`); no torch, no GPU. It needs a
# tokenizer for its input files: client_vs_python.sh passes the local Llama
# 3.2 tokenizer directory that client_peer_guidellm.sh writes.
#
# Kept out of scripts/peers/ on purpose: no test needs it, and .ci/run
# evaluates every script there.
#
# Installs idempotently into .cache/peers/aiperf and prints, on stdout, only:
#   export AIPERF=<the aiperf executable>
# Progress goes to stderr.
set -euo pipefail

AIPERF_VERSION="${AIPERF_VERSION:-0.13.0}"

root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/.cache/peers/aiperf/venv"
python="${PYTHON:-python3}"

ready() {
  [ -x "$venv/bin/aiperf" ] &&
    [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("aiperf"))' 2>/dev/null)" = "$AIPERF_VERSION" ]
}

if ! ready; then
  echo "aiperf peer: installing aiperf==$AIPERF_VERSION into $venv" >&2
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "aiperf==$AIPERF_VERSION" >&2
  ready || { echo "aiperf peer: aiperf $AIPERF_VERSION is not usable after install" >&2; exit 1; }
fi

echo "aiperf peer: ready (aiperf $AIPERF_VERSION)" >&2
printf 'export AIPERF=%q\n' "$venv/bin/aiperf"
