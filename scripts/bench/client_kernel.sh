#!/usr/bin/env bash
# Where each client's CPU goes at one rate both sustain: `harness run` and
# the Python reference-style SUT (scripts/bench/python_sut.py), the same
# Server test, simulator and prompts as sut_vs_python.sh, each run recorded
# with `perf record -g` (the client's every thread, kernel call stacks) and
# the kernel's TCP counters read around it. Each perf sample goes to the
# first category its stack matches (scripts/bench/sut_vs_python.py,
# PROFILE_CATEGORIES): the ACKs TCP sends from inside a read (with, on
# loopback, the peer's processing of them on the reader's CPU), the rest of
# socket reads, request writes, epoll waits, sleeps and wake-ups, other
# kernel work, user space. Recording costs CPU, so the CPU figures here are
# diagnostics; sut_vs_python.sh's are the published ones.
#
# usage: scripts/bench/client_kernel.sh [--qps N] [options of sut_vs_python.py]
# Default: 2,000 QPS (the rate sut_vs_python compares CPU at), 20 s runs,
# 3 repeats, tools interleaved: 6 runs of about 25 s plus perf's processing,
# about 4 minutes.
# Needs: what sut_vs_python.sh needs, plus perf with call stacks
# (kernel.perf_event_paranoid <= 1, or root) and its kernel symbols.
set -euo pipefail
cd "$(dirname "$0")/../.."
qps=2000
if [ "${1:-}" = --qps ]; then
  qps=$2
  shift 2
fi
if ! command -v perf >/dev/null; then
  echo "client_kernel: needs perf (linux-tools / linux-perf)" >&2
  exit 2
fi
# Kernel call stacks of an unprivileged process need paranoid <= 1.
paranoid=$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null || echo 2)
if [ "$(id -u)" != 0 ] && [ "$paranoid" -gt 1 ]; then
  echo "client_kernel: kernel.perf_event_paranoid is $paranoid; kernel call stacks need <= 1 (sysctl kernel.perf_event_paranoid=1) or root" >&2
  exit 2
fi
exec scripts/bench/sut_vs_python.sh --seconds 20 --repeats 3 --bisect 0 \
  --harness-qps "$qps" --python-qps "$qps" --harness-max-qps "$qps" --python-max-qps "$qps" \
  --profile-kernel "$@"
