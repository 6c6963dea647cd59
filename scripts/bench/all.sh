#!/usr/bin/env bash
# Runs the benchmarks, side by side with the peers where there is one, and
# writes the results with their exact commands to BENCHMARKS.md.
#
#   scripts/bench/all.sh               # every section; writes BENCHMARKS.md
#   scripts/bench/all.sh --sections loadgen_issue,sut_vs_python
#                                      # a subset; BENCHMARKS.md lists the
#                                      # sections not run and why
#   scripts/bench/all.sh --update --sections scaling,report_1m
#                                      # runs only those sections and keeps
#                                      # every other section of the existing
#                                      # BENCHMARKS.md as it was, with the
#                                      # commit and date that produced it
#   scripts/bench/all.sh --out FILE    # somewhere else than BENCHMARKS.md
#   scripts/bench/all.sh --quick --out FILE
#                                      # smoke test: seconds per run, one
#                                      # repeat; proves the scripts work, and
#                                      # never writes BENCHMARKS.md
# Options: --sections a,b,... (names below), --update (keep the sections
# not run from the existing output file instead of listing them as not run),
# --skip-reason TEXT (why the others were left out; printed in BENCHMARKS.md,
# default "not selected"),
# --issue-qps "Q1 Q2 ...", --issue-bisect N and --issue-impls "I1 I2 ..."
# (loadgen_issue's ladder, bisection steps and implementations; without
# --issue-qps the ladder is loadgen_issue.sh's default; the command line is
# printed in its section).
#
# Sections and their full-method durations on a quiet 2-core machine (runs
# x run length + each tool's start-up; builds and first peer installs not
# counted, allow ~15 minutes more on a first run). Every timed comparison
# runs >= 3 repeats with the tools interleaved, >= 30 s per run, and
# bisects around each tool's limit:
#   loadgen_issue       ~65 min  LoadGen core vs LoadGen C++ (-O3, jemalloc):
#                                (up to 7 rungs + 3 bisection steps) x 3
#                                repeats x 3 builds x 45-90 s (a Rust run at
#                                millions of QPS spends 15-25 s generating
#                                and freeing its queries around the 30 s;
#                                3538 s at 6029b24 with the ladder ending
#                                at 6M), plus Offline (3 builds,
#                                the Rust side without records.jsonl, and dd
#                                writing as many bytes, 3 repeats each)
#   sut_vs_python       ~30 min  harness run vs the Python reference-style SUT
#                                on the LoadGen wheel: (8 + 6) x 3 x ~35 s
#   client_kernel        ~4 min  where each client's CPU goes at 2,000 QPS
#                                (perf call stacks, TCP counters): 3 x 2 x
#                                ~25 s, recorded (diagnostic CPU figures)
#   client_cores        ~11 min  harness run on 1 vs 2 client cores: on 2 cores
#                                fixed rates, 3 x 2 x 3 x ~35 s (the 2-core
#                                client shares a CPU with the simulator); on
#                                4+ cores each set's max VALID QPS (~30 min)
#   client_vs_python    ~50 min  harness vs GuideLLM, AIPerf, benchmark_serving:
#                                (2 + 3) x 3 x (4 x 30 s + ~75 s start-up)
#   scaling             ~15 min  1k to 10M queries, and report generation
#   service_rankings     ~5 min  the results service over 100,000 runs
#                                (312 s at 367bc21)
#   loadgen_schedule     ~1 min  query generation vs the LoadGen wheel
#   client_accuracy      ~4 min  measurement accuracy at 1,000 QPS: 3 quiet
#                                and 3 under-load runs (a busy loop on the
#                                client's CPU), interleaved, 30 s each (the
#                                3 quiet ones took 91 s at 367bc21)
#   sim_throughput       ~5 min  simulator SSE throughput: saturated, then a
#                                bisection over the number of streams for
#                                step lateness p99 <= 10% of the step:
#                                (1 + 1 + 6) points x 3 repeats x ~11 s
#   report_1m            ~2 min  report of a 1M-query run, 3 repeats (~8 s
#                                each), plus ~2 min to make the run directory
#                                the first time
#   telemetry_overhead   ~2 min  metrics collection overhead (60 s runs)
# All: about 3 hours 15 minutes. A publication needs not run everything:
# --update --sections a,b,... reruns those and keeps the other sections of
# BENCHMARKS.md, each with the commit and date that produced it. A
# ~60-minute update with the full method: --update --sections
# sut_vs_python,scaling,report_1m,sim_throughput,service_rankings,client_accuracy
# (~61 min); loadgen_issue alone is ~30 min with --issue-qps "300000 1000000
# 3000000" --issue-bisect 2 (1828 s at 367bc21).
# --quick: about 12 minutes for every section (after builds and installs).
#
# Requirements:
# - a QUIET machine with 2 or more cores: every run records the load
#   average and the CPU other processes used during it; runs where others
#   used more than 0.25 core are set aside and repeated, and BENCHMARKS.md
#   counts those still busy. Do not publish figures from a busy machine;
# - a clean commit: BENCHMARKS.md names the commit that produced it, so the
#   work tree must have no changes (BENCHMARKS.md aside) and no untracked
#   files outside .gitignore;
# - ~30 GB of RAM for the top LoadGen C++ rungs (choose --qps there
#   otherwise), ~8 GB of disk under .cache/;
# - g++, python3 with venv and pip, GNU time, taskset, curl, wrk, perf
#   (client_kernel: call stacks, so kernel.perf_event_paranoid <= 1); PyPI
#   reachable on first use. Peers, installed under .cache/peers/ on first
#   use: MLPerf LoadGen 6.0.17 (the C++ library built from the PyPI sdist at
#   -O3, plus a jemalloc link when libjemalloc-dev is installed; the Python
#   wheel with aiohttp for the Python reference-style SUT), GuideLLM 0.8.1,
#   AIPerf 0.13.0, vLLM 0.7.3's standalone benchmark_serving.py (labelled
#   old: current vLLM's client, `vllm bench serve`, needs the vllm package
#   and its torch/CUDA stack; see client_peer_benchmark_serving.sh).
# Each section's raw output is kept in .cache/bench/all/<time>/<name>.txt
# (client_vs_python's every run in .cache/bench/all/<time>/client_runs/).
# A benchmark that fails is reported as failed in the file and the others
# still run; the exit status is non-zero if any failed.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
# Every section, in the order they run; --sections picks among these.
all_sections="loadgen_issue sut_vs_python client_kernel client_cores loadgen_schedule scaling client_vs_python client_accuracy sim_throughput report_1m telemetry_overhead service_rankings"
usage="usage: scripts/bench/all.sh [--quick] [--update] [--out FILE] [--sections a,b,...] [--skip-reason TEXT] [--issue-qps 'Q1 Q2 ...'] [--issue-bisect N] [--issue-impls 'I1 I2 ...']
sections: ${all_sections// /, }"
quick=0
update=0
out="$root/BENCHMARKS.md"
selected="$all_sections"
skip_reason="not selected"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; shift ;;
    --update) update=1; shift ;;
    --out) [ $# -ge 2 ] || { echo "$usage" >&2; exit 2; }; out="$(realpath -m "$2")"; shift 2 ;;
    --sections)
      [ $# -ge 2 ] && [ -n "$2" ] || { echo "$usage" >&2; exit 2; }
      selected="${2//,/ }"
      for s in $selected; do
        case " $all_sections " in
          *" $s "*) ;;
          *) echo "scripts/bench/all.sh: --sections: unknown section '$s'" >&2; echo "$usage" >&2; exit 2 ;;
        esac
      done
      shift 2 ;;
    --skip-reason) [ $# -ge 2 ] || { echo "$usage" >&2; exit 2; }; skip_reason="$2"; shift 2 ;;
    --issue-qps) [ $# -ge 2 ] && [ -n "$2" ] || { echo "$usage" >&2; exit 2; }; issue_qps="$2"; shift 2 ;;
    --issue-bisect) [ $# -ge 2 ] && [ "$2" -ge 0 ] 2>/dev/null || { echo "$usage" >&2; exit 2; }; issue_bisect="$2"; shift 2 ;;
    --issue-impls) [ $# -ge 2 ] && [ -n "$2" ] || { echo "$usage" >&2; exit 2; }; issue_impls="$2"; shift 2 ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
wanted() { case " $selected " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
if [ $quick = 1 ] && [ "$out" = "$root/BENCHMARKS.md" ]; then
  echo "scripts/bench/all.sh: --quick figures are not worth publishing; give --out FILE" >&2
  exit 2
fi
# BENCHMARKS.md must name the code that produced it: a clean commit.
if [ "$out" = "$root/BENCHMARKS.md" ] && [ -n "$(git status --porcelain -- . ':!BENCHMARKS.md')" ]; then
  echo "scripts/bench/all.sh: the work tree has uncommitted changes or untracked files; commit them first (or use --out FILE for a scratch run)" >&2
  exit 2
fi
if [ $update = 1 ] && [ "$out" = "$root/BENCHMARKS.md" ] && [ $quick = 1 ]; then
  echo "scripts/bench/all.sh: --update --quick would mix smoke-test figures into BENCHMARKS.md; give --out FILE" >&2
  exit 2
fi
commit=$(git rev-parse --short HEAD)
dirty=$([ -n "$(git status --porcelain -- . ':!BENCHMARKS.md')" ] && echo ' (with uncommitted changes: not publishable)')
started_at=$(date +%s)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
raw="$root/.cache/bench/all/$stamp"
mkdir -p "$raw"
: > "$raw/sections.tsv"
# What tells two machines apart when a virtual machine's CPU model string
# hides the host's (a KVM guest may show every host as "AMD EPYC"): the
# clock the guest was given, the caches it sees, the hypervisor, and what a
# system call costs (kernel mitigations and the virtualization set it, and
# a client pays it per call, so tools that make different numbers of calls
# per request move differently with it). Ratios against Python peers moved
# by a third between two builds of the same VM type; compare these before
# reading a trend into a rerun.
cpu_detail() {
  local family mhz caches hyp syscall
  # Two hosts with the same clock and caches told apart (AMD family 25 and
  # 26 both showed 2596 MHz, L3 32 MiB here).
  family=$(awk -F': *' '/^cpu family/ {f = $2} /^model[ \t]*:/ {m = $2} END {if (f != "") printf "family %s model %s", f, m}' /proc/cpuinfo)
  mhz=$(awk -F: '/^cpu MHz/ {printf "%.0f MHz", $2; exit}' /proc/cpuinfo)
  caches=$(lscpu 2>/dev/null | awk -F: '/^L2 cache|^L3 cache/ {gsub(/^ +/, "", $2); sub(/ \(.*/, "", $2); sub(/ cache/, "", $1); printf "%s%s %s", sep, $1, $2; sep=", "}')
  hyp=$(lscpu 2>/dev/null | awk -F: '/^Hypervisor vendor/ {gsub(/^ +/, "", $2); print $2}')
  [ -n "$family" ] && printf '%s, ' "$family"
  printf '%s' "$mhz"
  [ -n "$caches" ] && printf ', %s' "$caches"
  [ -n "$hyp" ] && printf ', %s guest' "$hyp"
  # perf's getppid loop, best of three (a blip on a shared host only slows).
  syscall=$(for _ in 1 2 3; do perf bench syscall basic -l 1000000 2>/dev/null; done |
    awk '/usecs\/op/ {v = $1 * 1000; if (best == "" || v < best) best = v} END {if (best != "") printf "%.0f ns per system call", best}')
  [ -n "$syscall" ] && printf ', %s' "$syscall"
  return 0
}
machine="$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(cpu_detail); $(uname -srm)), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) of memory"
# A section's commit names the code that produced it; a scratch run from a
# dirty tree says so in every section it writes.
section_commit="$commit${dirty:+ (uncommitted changes)}"

echo "== building (release)" >&2
cargo build --release -q -p harness --bin harness || exit 1
cargo build --release -q -p loadgen --example schedule_bench || exit 1
cargo build --release -q -p harness --example issue_bench || exit 1
cargo build --release -q -p reports --example synthetic_run --example report || exit 1
cargo build --release -q -p harness --example measure_accuracy || exit 1
cargo build --release -q -p sim --example sim_bench || exit 1
cargo build --release -q -p telemetry --example overhead_bench || exit 1
if wanted loadgen_issue || wanted sut_vs_python || wanted loadgen_schedule; then
  eval "$(bash scripts/peers/loadgen.sh)"
fi

if [ $quick = 1 ]; then
  issue_args=(--qps "10000 100000" --bisect 0 --repeats 1 --duration-ms 2000 --offline-samples 400000)
  sut_args=(--quick)
  kernel_args=(--seconds 3 --repeats 1)
  cores_args=(--quick)
  client_seconds=3
  scaling_sizes="1000 10000 100000"
  report_sizes="1000 10000"
  schedule_queries=100000
  accuracy_seconds=3
  telemetry_seconds=5
  report_samples=10000
  report_repeats=1
  sim_seconds=2
  sim_bisect=2
  sim_repeats=1
  client_env=(REPEATS=1 BISECT=0 HARNESS_RANGE="500 2000" GUIDELLM_RANGE="25 100" AIPERF_RANGE="25 100" BENCHMARK_SERVING_RANGE="25 100")
  rankings_args=(2000 3)
else
  # The default ladder is loadgen_issue.sh's own, kept in one place.
  issue_args=(--bisect "${issue_bisect:-3}" --repeats 3 --duration-ms 30000 --quiet-cores 0.5)
  [ -z "${issue_qps:-}" ] || issue_args+=(--qps "$issue_qps")
  [ -z "${issue_impls:-}" ] || issue_args+=(--impls "$issue_impls")
  sut_args=()
  kernel_args=()
  cores_args=()
  client_seconds=30
  scaling_sizes="1000 10000 100000 1000000 10000000"
  report_sizes="1000 10000 100000 1000000"
  schedule_queries=2000000
  accuracy_seconds=30
  telemetry_seconds=60
  report_samples=1000000
  report_repeats=3
  sim_seconds=10
  sim_bisect=6
  sim_repeats=3
  client_env=(REPEATS=3 BISECT=3)
  rankings_args=(100000 15)
fi

failed=()
# section NAME TITLE FORMAT(md|text) COMMAND...: runs one benchmark (when
# --sections selected it).
section() {
  local name=$1 title=$2 format=$3
  shift 3
  if ! wanted "$name"; then
    printf '%s\t%s\tskipped\n' "$name" "$title" >> "$raw/sections.tsv"
    return 0
  fi
  echo "== $title: $*" >&2
  local started=$(date +%s) load_before=$(cut -d' ' -f1-3 /proc/loadavg)
  local run_on=$(date -u '+%Y-%m-%d %H:%M UTC')
  "$@" > "$raw/$name.txt" 2> "$raw/$name.err"
  local rc=$?
  local took=$(( $(date +%s) - started ))
  local status=ok
  [ $rc -eq 0 ] || status=failed
  {
    # The marker lets a later --update keep this section and name its origin.
    echo "<!-- section: $name; commit: $section_commit; date: $run_on; status: $status -->"
    echo "## $title"
    echo
    echo "Run at commit $section_commit on $run_on$([ $quick = 1 ] && echo ' with --quick (a smoke test: not worth publishing)'), on $machine."
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
  printf '%s\t%s\t%s\n' "$name" "$title" "$([ $rc -eq 0 ] && echo run || echo failed)" >> "$raw/sections.tsv"
}

section loadgen_issue "LoadGen core vs MLPerf LoadGen C++ 6.0.17 (-O3, and with jemalloc): max VALID Server QPS, Offline whole-test time, memory per query at equal rates" md \
  scripts/bench/loadgen_issue.sh "${issue_args[@]}"
section sut_vs_python "harness run vs a Python reference-style SUT on the LoadGen wheel: max VALID Server QPS per client core, CPU per query, client-added TTFT/TPOT" md \
  scripts/bench/sut_vs_python.sh "${sut_args[@]}"
section client_kernel "Where each client's CPU goes at 2,000 QPS: harness run vs the Python reference-style SUT, by kernel call stack" md \
  scripts/bench/client_kernel.sh "${kernel_args[@]}"
section client_cores "harness run on 1 vs 2 client cores: CPU and context switches per query at equal rates, and max VALID QPS where the machine has cores for it" md \
  scripts/bench/client_cores.sh "${cores_args[@]}"
section loadgen_schedule "Query generation vs the MLPerf LoadGen wheel: time and memory per pre-generated query" text \
  scripts/bench/loadgen_schedule.sh "$schedule_queries" 100000 1
section scaling "Scaling: cost per query from 1k to 10M queries, and report generation" md \
  scripts/bench/scaling.sh "$scaling_sizes" "$report_sizes" 16
section client_vs_python "HTTP client vs GuideLLM, AIPerf and vLLM 0.7.3's benchmark_serving (old) under one sustained rule, same prompts, Poisson arrivals, one core each" md \
  env "${client_env[@]}" RUNS_DIR="$raw/client_runs" scripts/bench/client_vs_python.sh "$client_seconds"
section client_accuracy "Measurement accuracy vs the simulator's ground truth at 1,000 QPS streaming" text \
  scripts/bench/client_accuracy.sh 1000 "$accuracy_seconds" 16 tiny-fast
section sim_throughput "Simulator SSE throughput on one core" text \
  scripts/bench/sim_throughput.sh 512 "$sim_seconds" 256 2000 "$sim_bisect" "$sim_repeats"
section report_1m "Report generation for a 1M-query run (128 output tokens per sample)" text \
  scripts/bench/report_1m.sh "$report_samples" 128 "$report_repeats"
section telemetry_overhead "Metrics collection overhead at 1 s" text \
  scripts/bench/telemetry_overhead.sh "$telemetry_seconds" 1000 1 1
section service_rankings "Results service: rankings over a large history, uncached and cached p99, cached requests/s on one core" md \
  scripts/bench/service_rankings.sh "${rankings_args[@]}"

took_min=$(( ($(date +%s) - started_at + 59) / 60 ))
{
  if [ $update = 1 ]; then
    echo "Updated by \`scripts/bench/all.sh --update --sections ${selected// /,}$([ $quick = 1 ] && echo ' --quick (a smoke test: not worth publishing)')\` on $(date -u '+%Y-%m-%d %H:%M UTC'),"
    echo "commit $commit$dirty, in $took_min minutes, on $machine."
    echo "Only the sections marked \"this run\" below ran now; the others were kept as"
    echo "an earlier run wrote them, on the commit and date the table gives."
  else
    echo "Written by \`scripts/bench/all.sh$([ "$selected" != "$all_sections" ] && echo " --sections ${selected// /,}")$([ $quick = 1 ] && echo ' --quick (a smoke test: not worth publishing)')\` on $(date -u '+%Y-%m-%d %H:%M UTC'),"
    echo "commit $commit$dirty, in $took_min minutes, on $machine."
    echo "Every figure below comes from that one run."
  fi
  echo "The peers ran on the same machine in the same run as the harness they are"
  echo "compared with. Sections say what each benchmark measures; the scripts'"
  echo "headers say how."
} > "$raw/preamble.md"
keep=()
# --update keeps the existing file's sections that were not run now.
[ $update = 1 ] && keep=(--keep "$out")
python3 scripts/bench/merge_sections.py --dir "$raw" --out "$raw/merged.md" --skip-reason "$skip_reason" "${keep[@]}" || exit 1
# No path of this machine in a file meant for the repository.
sed "s|$root/||g; s|$CARGO_TARGET_DIR/|target/|g" "$raw/merged.md" > "$out"
echo "wrote $out" >&2
[ ${#failed[@]} -eq 0 ]
