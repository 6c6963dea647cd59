#!/usr/bin/env bash
# Python peer for scripts/bench/client_vs_python.sh: vLLM's standalone
# benchmark client `benchmarks/benchmark_serving.py` as of vLLM 0.7.3 (the
# "v0.7 benchmark_serving" that `vllm bench serve` grew out of), taken from
# vLLM's source distribution on PyPI (checksum pinned), with the packages it
# imports in a venv. No torch and no vllm install: the script falls back to
# its own tokenizer loader and argparse when vllm is absent.
#
# OLD on purpose: vLLM's current client, `vllm bench serve` (checked: vllm
# 0.33.0's wheel, vllm/benchmarks/serve.py), lives inside the vllm package.
# `import vllm` runs vllm/__init__.py -> vllm.env_override -> `import
# torch`; vllm.utils and vllm/benchmarks/datasets (via vllm.multimodal)
# import torch too; and the wheel pins torch 2.14.0, torchaudio,
# torchvision, flashinfer and nvidia-* CUDA packages. It cannot run
# without that GPU stack, so this torch-free script from 0.7.3 stands in.
#
# Kept out of scripts/peers/ on purpose: no test needs it, and .ci/run
# evaluates every script there.
#
# Installs idempotently into .cache/peers/benchmark_serving and prints, on
# stdout, only:
#   export BENCHMARK_SERVING=<benchmark_serving.py>
#   export BENCHMARK_SERVING_PYTHON=<python of its venv>
# Progress goes to stderr.
set -euo pipefail

VLLM_VERSION=0.7.3
SDIST_URL="https://files.pythonhosted.org/packages/f5/73/87825ee293f0e721eb8aadbd0cf9c3436d4e3b3458322878f1f6e7398a0d/vllm-0.7.3.tar.gz"
SDIST_SHA256=841cc30bd4ffbc037e8b8bf6dbacbedc60cc0b2abb60366873b185159a1204e6

root="$(cd "$(dirname "$0")/../.." && pwd)"
dir="$root/.cache/peers/benchmark_serving"
venv="$dir/venv"
py="$venv/bin/python"
src="$dir/vllm-$VLLM_VERSION/benchmarks"
python="${PYTHON:-python3}"

ready() {
  [ -s "$src/benchmark_serving.py" ] && [ -x "$py" ] &&
    (cd "$src" && "$py" -c 'import benchmark_serving' 2>/dev/null)
}

if ! ready; then
  echo "benchmark_serving peer: fetching vllm-$VLLM_VERSION sdist from PyPI" >&2
  mkdir -p "$dir"
  curl -sSfL -o "$dir/vllm.tar.gz" "$SDIST_URL"
  echo "$SDIST_SHA256  $dir/vllm.tar.gz" | sha256sum -c --quiet - >&2
  tar -xzf "$dir/vllm.tar.gz" -C "$dir" \
    "vllm-$VLLM_VERSION/benchmarks/benchmark_serving.py" \
    "vllm-$VLLM_VERSION/benchmarks/backend_request_func.py" \
    "vllm-$VLLM_VERSION/benchmarks/benchmark_utils.py"
  rm -f "$dir/vllm.tar.gz"
  echo "benchmark_serving peer: installing its imports into $venv" >&2
  "$python" -m venv "$venv" >&2
  "$py" -m pip install --quiet --disable-pip-version-check \
    numpy==2.4.6 pandas==3.1.1 datasets==5.2.0 transformers==5.3.0 tokenizers==0.22.2 \
    huggingface_hub==1.33.0 aiohttp pillow tqdm >&2
  ready || { echo "benchmark_serving peer: benchmark_serving.py does not import" >&2; exit 1; }
fi

echo "benchmark_serving peer: ready (vLLM $VLLM_VERSION benchmarks/benchmark_serving.py)" >&2
printf 'export BENCHMARK_SERVING=%q\n' "$src/benchmark_serving.py"
printf 'export BENCHMARK_SERVING_PYTHON=%q\n' "$py"
