#!/usr/bin/env bash
# Runs every benchmark, side by side with the peers where there is one, and
# writes the results with their exact commands to BENCHMARKS.md.
#
#   scripts/bench/all.sh               # everything; writes BENCHMARKS.md
#   scripts/bench/all.sh --out FILE    # the same, somewhere else
#   scripts/bench/all.sh --quick --out FILE
#                                      # smoke test: seconds per run, one
#                                      # repeat; proves the scripts work, and
#                                      # never writes BENCHMARKS.md
#
# Duration (full): about 3 hours on a quiet 2-core machine; the sections'
# own estimates: loadgen_issue ~60 min, sut_vs_python ~30 min,
# client_vs_python ~45 min, scaling ~15 min, the rest ~20 min. --quick:
# about 10 minutes (after the builds and peer installs).
# Requirements:
# - a QUIET machine with 2 or more cores: every run records the load
#   average and the CPU other processes used during it; runs where others
#   used more than 0.25 core are set aside and repeated, and BENCHMARKS.md
#   counts those still busy. Do not publish figures from a busy machine;
# - a clean commit: BENCHMARKS.md names the commit that produced it, so the
#   work tree must have no changes (BENCHMARKS.md aside) and no untracked
#   files outside .gitignore;
# - ~30 GB of RAM for the top LoadGen C++ rungs (choose --qps there
#   otherwise), ~5 GB of disk under .cache/;
# - g++, python3 with venv and pip, GNU time, taskset, curl; PyPI reachable
#   on first use. Peers, installed under .cache/peers/ on first use:
#   MLPerf LoadGen 6.0.17 (the C++ library built from the PyPI sdist at -O3,
#   plus a jemalloc link when libjemalloc-dev is installed; the Python wheel
#   with aiohttp for the Python reference-style SUT), GuideLLM, vLLM 0.7.3's
#   standalone benchmark_serving.py (labelled old: current vLLM's client,
#   `vllm bench serve`, needs the vllm package and its torch stack).
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
    --out) out="$(realpath -m "$2")"; shift 2 ;;
    *) echo "usage: scripts/bench/all.sh [--quick] [--out FILE]" >&2; exit 2 ;;
  esac
done
if [ $quick = 1 ] && [ "$out" = "$root/BENCHMARKS.md" ]; then
  echo "scripts/bench/all.sh: --quick figures are not worth publishing; give --out FILE" >&2
  exit 2
fi
# BENCHMARKS.md must name the code that produced it: a clean commit.
if [ "$out" = "$root/BENCHMARKS.md" ] && [ -n "$(git status --porcelain -- . ':!BENCHMARKS.md')" ]; then
  echo "scripts/bench/all.sh: the work tree has uncommitted changes or untracked files; commit them first (or use --out FILE for a scratch run)" >&2
  exit 2
fi
commit=$(git rev-parse --short HEAD)
dirty=$([ -n "$(git status --porcelain -- . ':!BENCHMARKS.md')" ] && echo ' (with uncommitted changes: not publishable)')
started_at=$(date +%s)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
raw="$root/.cache/bench/all/$stamp"
mkdir -p "$raw"

echo "== building (release)" >&2
cargo build --release -q -p harness --bin harness || exit 1
cargo build --release -q -p loadgen --example schedule_bench || exit 1
cargo build --release -q -p harness --example issue_bench || exit 1
cargo build --release -q -p reports --example synthetic_run --example report || exit 1
cargo build --release -q -p harness --example measure_accuracy || exit 1
cargo build --release -q -p sim --example sim_bench || exit 1
cargo build --release -q -p telemetry --example overhead_bench || exit 1
eval "$(bash scripts/peers/loadgen.sh)"

if [ $quick = 1 ]; then
  issue_args=(--qps "10000 100000" --bisect 0 --repeats 1 --duration-ms 2000 --offline-samples 400000)
  sut_args=(--quick)
  client_seconds=3
  scaling_sizes="1000 10000 100000"
  report_sizes="1000 10000"
  schedule_queries=100000
  accuracy_seconds=3
  telemetry_seconds=5
  report_samples=10000
  sim_seconds=2
else
  issue_args=(--qps "10000 100000 300000 1000000 3000000" --bisect 3 --repeats 3 --duration-ms 30000 --quiet-cores 0.5)
  sut_args=()
  client_seconds=30
  scaling_sizes="1000 10000 100000 1000000 10000000"
  report_sizes="1000 10000 100000 1000000"
  schedule_queries=2000000
  accuracy_seconds=30
  telemetry_seconds=60
  report_samples=1000000
  sim_seconds=10
fi

failed=()
sections=()
# section NAME TITLE FORMAT(md|text) COMMAND...: runs one benchmark.
section() {
  local name=$1 title=$2 format=$3
  shift 3
  echo "== $title: $*" >&2
  local started=$(date +%s) load_before=$(cut -d' ' -f1-3 /proc/loadavg)
  "$@" > "$raw/$name.txt" 2> "$raw/$name.err"
  local rc=$?
  local took=$(( $(date +%s) - started ))
  {
    echo "## $title"
    echo
    echo "Command: \`$*\` ($took s; load average before $load_before, after $(cut -d' ' -f1-3 /proc/loadavg); raw output in \`.cache/bench/all/$stamp/$name.txt\`)"
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

section loadgen_issue "LoadGen core vs MLPerf LoadGen C++ 6.0.17 (-O3, and with jemalloc): max VALID Server QPS, Offline whole-test time, memory per query at equal rates" md \
  scripts/bench/loadgen_issue.sh "${issue_args[@]}"
section sut_vs_python "harness run vs a Python reference-style SUT on the LoadGen wheel: max VALID Server QPS per client core, CPU per query, client-added TTFT/TPOT" md \
  scripts/bench/sut_vs_python.sh "${sut_args[@]}"
section loadgen_schedule "Query generation vs the MLPerf LoadGen wheel: time and memory per pre-generated query" text \
  scripts/bench/loadgen_schedule.sh "$schedule_queries" 100000 1
section scaling "Scaling: cost per query from 1k to 10M queries, and report generation" md \
  scripts/bench/scaling.sh "$scaling_sizes" "$report_sizes" 16
section client_vs_python "HTTP client vs GuideLLM and vLLM 0.7.3's benchmark_serving (old) under one sustained rule" md \
  scripts/bench/client_vs_python.sh "$client_seconds"
section client_accuracy "Measurement accuracy vs the simulator's ground truth at 1,000 QPS streaming" text \
  scripts/bench/client_accuracy.sh 1000 "$accuracy_seconds" 16 tiny-fast
section sim_throughput "Simulator SSE throughput on one core" text \
  scripts/bench/sim_throughput.sh 512 "$sim_seconds" 256 2000
section report_1m "Report generation for a 1M-query run (128 output tokens per sample)" text \
  scripts/bench/report_1m.sh "$report_samples" 128 1
section telemetry_overhead "Metrics collection overhead at 1 s" text \
  scripts/bench/telemetry_overhead.sh "$telemetry_seconds" 1000 1 1

took_min=$(( ($(date +%s) - started_at + 59) / 60 ))
{
  echo "# Benchmarks"
  echo
  echo "Written by \`scripts/bench/all.sh$([ $quick = 1 ] && echo ' --quick (a smoke test: not worth publishing)')\` on $(date -u '+%Y-%m-%d %H:%M UTC'),"
  echo "commit $commit$dirty, in $took_min minutes,"
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
