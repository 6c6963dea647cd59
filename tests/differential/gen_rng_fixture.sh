#!/usr/bin/env bash
# Regenerates loadgen/tests/fixtures/libstdcxx_rng.json from the real
# libstdc++ (g++ >= 11), the library MLPerf LoadGen's wheel is built against.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"${CXX:-c++}" -std=c++17 -O2 -o "$tmp/rng" "$root/tests/differential/libstdcxx_rng.cc"
"$tmp/rng" > "$root/loadgen/tests/fixtures/libstdcxx_rng.json"
echo "wrote loadgen/tests/fixtures/libstdcxx_rng.json" >&2
