#!/usr/bin/env bash
# Real peer: the MLPerf LoadGen C++ sources of the mlcommons-loadgen 6.0.17
# sdist on PyPI, which the `official` feature of the loadgen-official crate
# compiles (`harness run --loadgen official`, loadgen-official's differential
# test).
#
# Fetches and unpacks idempotently into .cache/peers/loadgen-sdist and prints,
# on stdout, only:   export LOADGEN_SRC=<absolute path of the unpacked sdist>
# Progress goes to stderr. The sdist carries the two files LoadGen's setup.py
# generates (version_generated.cc with the release's version, git hash and
# file hashes, and mlperf_conf.h), so the build compiles exactly what the
# release ships.
set -euo pipefail

VERSION="6.0.17"
root="$(cd "$(dirname "$0")/../.." && pwd)"
dest="$root/.cache/peers/loadgen-sdist"
src="$dest/mlcommons_loadgen-$VERSION"
python="${PYTHON:-python3}"

if [ ! -f "$src/loadgen.cc" ]; then
  echo "loadgen_src peer: fetching the mlcommons-loadgen $VERSION sdist from PyPI into $dest" >&2
  mkdir -p "$dest"
  "$python" -m pip download --quiet --disable-pip-version-check --no-deps \
    --no-binary=:all: "mlcommons-loadgen==$VERSION" -d "$dest" >&2
  # Unpack beside, then move into place: an interrupted unpack never looks done.
  tmp="$(mktemp -d "$dest/.unpack.XXXXXX")"
  tar xzf "$dest/mlcommons_loadgen-$VERSION.tar.gz" -C "$tmp"
  rm -rf "$src"
  mv "$tmp/mlcommons_loadgen-$VERSION" "$src"
  rmdir "$tmp"
  [ -f "$src/loadgen.cc" ] || { echo "loadgen_src peer: no loadgen.cc in the sdist" >&2; exit 1; }
fi

echo "loadgen_src peer: LoadGen $VERSION sources ready" >&2
printf 'export LOADGEN_SRC=%q\n' "$src"
