#!/usr/bin/env bash
# Real peer: kubernetes-validate (PyPI), which checks the manifests of
# deploy/kubernetes/ against the Kubernetes API's JSON schemas, offline (the
# schemas ship in the package). .ci/run runs it on every manifest.
#
# Installs idempotently into .cache/peers/kubernetes-validate and prints, on
# stdout, only:
#   export KUBERNETES_VALIDATE=<the venv's kubernetes-validate command>
# Progress goes to stderr.
set -euo pipefail

PACKAGE="kubernetes-validate==1.37.0"

root="$(cd "$(dirname "$0")/../.." && pwd)"
dir="$root/.cache/peers/kubernetes-validate"
venv="$dir/venv"
bin="$venv/bin/kubernetes-validate"
python="${PYTHON:-python3}"

ready() {
  [ -x "$bin" ] && [ "$(cat "$dir/.installed" 2>/dev/null)" = "$PACKAGE" ] &&
    "$bin" --version >/dev/null 2>&1
}

if ! ready; then
  echo "kubernetes-validate peer: installing $PACKAGE into $venv" >&2
  mkdir -p "$dir"
  "$python" -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$PACKAGE" >&2
  echo "$PACKAGE" >"$dir/.installed"
  ready || { echo "kubernetes-validate peer: not usable after install" >&2; exit 1; }
fi

echo "kubernetes-validate peer: $("$bin" --version 2>&1 | head -n1)" >&2
printf 'export KUBERNETES_VALIDATE=%q\n' "$bin"
