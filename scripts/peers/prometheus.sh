#!/usr/bin/env bash
# Real peer: Prometheus and promtool (Debian's `prometheus` package). .ci/run
# checks and unit-tests prometheus/alerts.yml with promtool, and
# harness/tests/observability.rs starts a real Prometheus that scrapes a
# running `harness run --prometheus-listen`.
#
# Installs the package with apt-get if either binary is missing (needs root),
# idempotently, and prints on stdout only:
#   export PROMETHEUS_BIN=<path> PROMTOOL_BIN=<path>
# Progress goes to stderr. Prints nothing (and exits 0) when they cannot be
# installed here, so the tests skip with a reason instead of failing CI.
# Nothing is started: the test starts its own server and stops it.
set -euo pipefail

say() { echo "prometheus peer: $*" >&2; }

have() { command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; }

if ! have; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    say "installing the prometheus package with apt-get"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; } >&2 ||
      { say "apt-get install prometheus failed; tests will skip"; exit 0; }
    # The package enables a system service; the tests start their own server.
    if command -v systemctl >/dev/null 2>&1; then systemctl disable --now prometheus >/dev/null 2>&1 || true; fi
    have || { say "no prometheus/promtool after install"; exit 0; }
  else
    say "no prometheus/promtool and no root apt-get; tests will skip"
    exit 0
  fi
fi
say "$(prometheus --version 2>&1 | head -n1)"
printf 'export PROMETHEUS_BIN=%q PROMTOOL_BIN=%q\n' "$(command -v prometheus)" "$(command -v promtool)"
