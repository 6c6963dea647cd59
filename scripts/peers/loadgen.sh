#!/usr/bin/env bash
# Real peer: the MLPerf LoadGen Python wheel (mlcommons-loadgen 6.0.17), used by
# loadgen's differential tests (loadgen/tests/differential.rs).
#
# Installs idempotently into .cache/peers/loadgen-venv and prints, on stdout,
# only:   export LOADGEN_PYTHON=<absolute path of the venv's python>
# Progress goes to stderr.
set -euo pipefail

VERSION="6.0.17"
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/.cache/peers/loadgen-venv"
py="$venv/bin/python"
python="${PYTHON:-python3}"

have_wheel() {
  [ -x "$py" ] && "$py" - "$VERSION" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
import mlperf_loadgen  # noqa: F401  (the compiled module must import)
sys.exit(0 if version("mlcommons-loadgen") == sys.argv[1] else 1)
EOF
}

if ! have_wheel; then
  echo "loadgen peer: installing mlcommons-loadgen==$VERSION into $venv" >&2
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv" >&2
  # Only the binary wheel: building LoadGen from the sdist needs a C++
  # toolchain and would test a different build than the one MLPerf ships.
  "$py" -m pip install --quiet --disable-pip-version-check --only-binary=:all: \
    "mlcommons-loadgen==$VERSION" >&2
  have_wheel || { echo "loadgen peer: mlperf_loadgen does not import after install" >&2; exit 1; }
fi

echo "loadgen peer: mlcommons-loadgen $VERSION ready" >&2
printf 'export LOADGEN_PYTHON=%q\n' "$py"
