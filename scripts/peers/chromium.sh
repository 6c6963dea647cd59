#!/usr/bin/env bash
# Real peer: headless Chromium, which the reports tests use to load
# report.html offline and check that it renders (reports/tests/html_chromium.rs).
#
# Installs the Debian `chromium` package if no Chromium is on the PATH
# (apt-get, needs root), idempotently, and prints on stdout only:
#   export CHROMIUM=<path of the chromium binary>
# Progress goes to stderr. Prints nothing (and exits 0) when Chromium cannot
# be installed here, so the tests skip with a reason instead of failing CI.
set -euo pipefail

find_chromium() {
  for name in chromium chromium-browser google-chrome; do
    if command -v "$name" >/dev/null 2>&1; then
      command -v "$name"
      return 0
    fi
  done
  return 1
}

if ! bin="$(find_chromium)"; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "chromium peer: installing the chromium package with apt-get" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >&2 ||
      { echo "chromium peer: apt-get install chromium failed; tests will skip" >&2; exit 0; }
    bin="$(find_chromium)" || { echo "chromium peer: no chromium after install" >&2; exit 0; }
  else
    echo "chromium peer: no chromium and no root apt-get; tests will skip" >&2
    exit 0
  fi
fi
echo "chromium peer: $("$bin" --version 2>/dev/null || echo "$bin")" >&2
printf 'export CHROMIUM=%q\n' "$bin"
