#!/usr/bin/env bash
# Real peer: pandas, which writes the MLPerf llama2-70b dataset pickle. Used by
# the dataset crate's pickle tests (dataset/tests/pickle.rs): they have pandas
# write DataFrame pickles (tests/fixtures/datasets/make_pickles.py) and check
# that our reader recovers every column. Two versions, because the pickled
# BlockManager state differs between pandas 2.x and 3.x.
#
# Installs idempotently into .cache/peers/pandas{3,2} and prints, on stdout, only:
#   export PANDAS_PYTHON=<python of the pandas 3.x venv>
#   export PANDAS2_PYTHON=<python of the pandas 2.x venv>
# Progress goes to stderr.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
python="${PYTHON:-python3}"

install() { # venv-name requirement...
  local venv="$root/.cache/peers/$1"
  shift
  local py="$venv/bin/python"
  if ! { [ -x "$py" ] && "$py" -c "import pandas, numpy" 2>/dev/null; }; then
    echo "pandas peer: installing $* into $venv" >&2
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv" >&2
    "$py" -m pip install --quiet --disable-pip-version-check --only-binary=:all: "$@" >&2
    "$py" -c "import pandas, numpy" >&2 ||
      { echo "pandas peer: pandas does not import in $venv" >&2; exit 1; }
  fi
  echo "pandas peer: $("$py" -c 'import pandas; print("pandas", pandas.__version__)') in $venv" >&2
}

install pandas3 "pandas==3.0.*"
install pandas2 "pandas==2.3.*"
printf 'export PANDAS_PYTHON=%q\n' "$root/.cache/peers/pandas3/bin/python"
printf 'export PANDAS2_PYTHON=%q\n' "$root/.cache/peers/pandas2/bin/python"
