#!/usr/bin/env bash
# Runs every benchmark, side by side with the peers where there is one, and
# writes the results with their exact commands to BENCHMARKS.md.
#
#   scripts/bench/all.sh            # everything (about 45 minutes here)
#   scripts/bench/all.sh --quick    # shorter ladders and runs (about 15 minutes)
#   scripts/bench/all.sh --out FILE # somewhere other than BENCHMARKS.md
#
# Peers, installed on first use under .cache/peers/ (PyPI only):
# - MLPerf LoadGen 6.0.17: the C++ library built from the PyPI sdist
#   (loadgen_issue.sh) and the Python wheel (loadgen_schedule.sh);
# - GuideLLM, the vLLM project's Python benchmarking client
#   (client_vs_python.sh, via client_peer_guidellm.sh).
# Each section's raw output is kept in .cache/bench/all/<time>/<name>.txt.
# A benchmark that fails is reported as failed in the file and the others
# still run; the exit status is non-zero if any failed.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
quick=0
out="$root/BENCHMARKS.md"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; shift ;;
    --out) out="$2"; shift 2 ;;
    *) echo "usage: scripts/bench/all.sh [--quick] [--out FILE]" >&2; exit 2 ;;
  esac
done
# BENCHMARKS.md must name the code that produced it: refuse a dirty tree
# (BENCHMARKS.md itself aside) unless writing somewhere else.
if [ "$out" = "$root/BENCHMARKS.md" ] && ! git diff --quiet HEAD -- . ':!BENCHMARKS.md'; then
  echo "scripts/bench/all.sh: the work tree has uncommitted changes; commit them first (or use --out FILE for a scratch run)" >&2
  exit 2
fi
stamp=$(date -u +%Y%m%dT%H%M%SZ)
raw="$root/.cache/bench/all/$stamp"
mkdir -p "$raw"

echo "== building (release)" >&2
cargo build --release -q -p harness --bin harness || exit 1
cargo build --release -q -p loadgen --example issue_bench --example schedule_bench || exit 1
cargo build --release -q -p reports --example synthetic_run --example report || exit 1
cargo build --release -q -p harness --example measure_accuracy || exit 1
cargo build --release -q -p sim --example sim_bench || exit 1
cargo build --release -q -p telemetry --example overhead_bench || exit 1
eval "$(bash scripts/peers/loadgen.sh)"

if [ $quick = 1 ]; then
  ladder="1000 10000 100000 400000 1000000"
  repeats=1
  client_seconds=10
  scaling_sizes="1000 10000 100000 1000000"
  report_sizes="1000 10000 100000"
  schedule_queries=1000000
  accuracy_seconds=10
  telemetry_seconds=20
else
  ladder="1000 10000 100000 400000 1000000 2000000 4000000"
  repeats=2
  client_seconds=20
  scaling_sizes="1000 10000 100000 1000000 10000000"
  report_sizes="1000 10000 100000 1000000"
  schedule_queries=2000000
  accuracy_seconds=25
  telemetry_seconds=60
fi

failed=()
sections=()
# section NAME TITLE FORMAT(md|text) COMMAND...: runs one benchmark.
section() {
  local name=$1 title=$2 format=$3
  shift 3
  echo "== $title: $*" >&2
  local started=$(date +%s)
  "$@" > "$raw/$name.txt" 2> "$raw/$name.err"
  local rc=$?
  local took=$(( $(date +%s) - started ))
  {
    echo "## $title"
    echo
    echo "Command: \`$*\` ($took s; raw output in \`.cache/bench/all/$stamp/$name.txt\`)"
    echo
    if [ $rc -ne 0 ]; then
      echo "**FAILED** (exit $rc). Last lines of its error output:"
      echo; echo '```'; tail -20 "$raw/$name.err"; echo '```'
      failed+=("$name")
    elif [ "$format" = md ]; then
      cat "$raw/$name.txt"
    else
      echo '```'; cat "$raw/$name.txt"; echo '```'
    fi
    echo
  } > "$raw/$name.md"
  sections+=("$name")
}

section loadgen_issue "LoadGen core vs MLPerf LoadGen C++ 6.0.17: max VALID Server QPS, issue lateness, Offline samples/s, memory per query" md \
  scripts/bench/loadgen_issue.sh --qps "$ladder" --repeats "$repeats" --quiet-cores 0.5
section loadgen_schedule "Query generation vs the MLPerf LoadGen wheel: time and memory per pre-generated query" text \
  scripts/bench/loadgen_schedule.sh "$schedule_queries" 100000 1
section scaling "Scaling: cost per query from 1k to 10M queries, and report generation" md \
  scripts/bench/scaling.sh "$scaling_sizes" "$report_sizes" 16
section client_vs_python "HTTP client vs GuideLLM: max sustained streaming request rate, TTFT vs ground truth, CPU per 1k requests" md \
  scripts/bench/client_vs_python.sh "$client_seconds"
section client_accuracy "Measurement accuracy vs the simulator's ground truth at 1,000 QPS streaming" text \
  scripts/bench/client_accuracy.sh 1000 "$accuracy_seconds" 16 tiny-fast
section sim_throughput "Simulator SSE throughput on one core" text \
  scripts/bench/sim_throughput.sh 512 10 256 2000
section report_1m "Report generation for a 1M-query run (128 output tokens per sample)" text \
  scripts/bench/report_1m.sh 1000000 128 1
section telemetry_overhead "Metrics collection overhead at 1 s" text \
  scripts/bench/telemetry_overhead.sh "$telemetry_seconds" 1000 1 1

{
  echo "# Benchmarks"
  echo
  echo "Written by \`scripts/bench/all.sh$([ $quick = 1 ] && echo ' --quick')\` on $(date -u '+%Y-%m-%d %H:%M UTC'),"
  echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!BENCHMARKS.md' || echo ' (with uncommitted changes)'),"
  echo "on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); $(uname -srm)),"
  echo "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) of memory. Every figure below comes from that one run; the"
  echo "peers ran on the same machine in the same run. Sections say what each"
  echo "benchmark measures; the scripts' headers say how."
  echo
  if [ ${#failed[@]} -gt 0 ]; then
    echo "**Failed benchmarks: ${failed[*]}** (see their sections)."
    echo
  fi
  for s in "${sections[@]}"; do cat "$raw/$s.md"; done
} > "$out"
# No path of this machine in a file meant for the repository.
sed -i "s|$root/||g; s|$CARGO_TARGET_DIR/|target/|g" "$out"
echo "wrote $out" >&2
[ ${#failed[@]} -eq 0 ]
