#!/usr/bin/env bash
# Streaming request rate one client sustains on the same number of cores:
# the harness against the Python clients a user would reach for instead:
# GuideLLM 0.8.1, NVIDIA's AIPerf 0.13.0 and vLLM 0.7.3's standalone
# benchmarks/benchmark_serving.py (OLD: vLLM's current client is
# `vllm bench serve` inside the vllm package; `import vllm` imports torch
# (vllm/__init__.py -> vllm.env_override -> `import torch`), and so do
# vllm.utils and the benchmark's datasets module, and the 0.33.0 wheel
# pins torch 2.14.0 with its CUDA stack, flashinfer and nvidia-* packages:
# it cannot run without that GPU stack, so 0.7.3's torch-free script stands
# in for it, labelled old).
#
# Like for like, for every tool:
# - Server: `harness sim --profile throughput-bench` (2 ms steps, free
#   prefill: the server is not the bottleneck), restarted for every run
#   with a fresh per-request ground-truth file (`--ground-truth`: arrival,
#   first-token and end time of each request), pinned to CPU $SIM_CPU.
# - Client: pinned with taskset to the same CPUs ($CLIENT_CPUS, one core by
#   default), configured per its own documentation for throughput on that
#   many cores: GuideLLM with GUIDELLM__MAX_WORKER_PROCESSES = the number of
#   cores (its default is 10 worker processes, which on one core only
#   contend); AIPerf with --workers-max and --record-processors = the number
#   of cores and --use-server-token-count (no client-side tokenizing of
#   answers), its dashboard, /metrics scraping and GPU telemetry off (the
#   harness does not scrape either unless asked); benchmark_serving as it
#   is (one asyncio loop); the harness with its defaults.
# - Requests: identical TEXT prompts (not every tool can send token ids;
#   all can send text): $PROMPT_TOKENS-token windows (a quarter window
#   apart) of the bundled dataset's Llama 3 token ids decoded to text, the
#   same prompts for every tool (at most 256; 186 at 128 tokens), each in its own input format (harness --api
#   completions-text with a JSONL dataset, GuideLLM and AIPerf JSONL files,
#   benchmark_serving a ShareGPT file; GuideLLM's and benchmark_serving's
#   files repeat the prompts to one row per request of the run, as both
#   send each row at most once), POST /v1/completions, streamed,
#   max_tokens $OUTPUT_TOKENS with ignore_eos.
# - Arrivals: Poisson for every tool (the harness's Server scenario,
#   GuideLLM's poisson profile, AIPerf --arrival-pattern poisson,
#   benchmark_serving --request-rate with its default burstiness 1).
# - One "sustained" rule: at a target rate a run is sustained when the
#   server's ground truth counts >= 95% of the target (requests finished
#   between the first arrival and the last end: measured the same way for
#   every tool), >= 99% of the requests the tool sent succeeded (requests
#   the tool itself cancels when its duration ends, as GuideLLM does, are
#   not counted as sent), and its
#   client-added TTFT p99 (its own TTFT p99, each tool timed from its own
#   send, minus the server's TTFT p99 for the same run) is <= $BOUND_MS ms.
#   A rate counts only when every repeat at it was sustained. GuideLLM's
#   p99 is its own figure (it keeps percentiles, not each request's times);
#   the others' are computed here from their per-request records.
# - Method: for each tool a bracket [low, high] of rates ($<TOOL>_RANGE);
#   both ends are tried, then $BISECT bisection steps (geometric) narrow
#   it; every rate is run $REPEATS times with the tools interleaved
#   (A B C D A B C D ...), $SECONDS s per run. Each run records the load
#   average and the CPU other processes used (all busy CPU less the
#   client's and the simulator's); a run where others used more than
#   $QUIET_CORES cores is repeated once and marked busy if still so.
#   Client CPU is user+system of the client process tree (GNU time;
#   AIPerf's services and GuideLLM's workers are processes), per request
#   with start-up and, "steady", less each tool's start-up and tear-down
#   CPU measured once by a 2-second run at 10 req/s (the harness's LoadGen
#   issues at least one query per prompt, 186, so its start-up figure holds
#   their CPU too: conservative against the harness).
#
# Duration: about (2 + BISECT) x REPEATS x (4 x SECONDS + ~75 s of tool
# start-up and tear-down, measured on the shared 2-core box: AIPerf ~35 s,
# GuideLLM ~27 s, benchmark_serving ~12 s, the harness ~2 s), plus four
# start-up runs (~2 min) and the peers' first install: with the defaults
# (30 s, 3 repeats, 3 steps) about 50 minutes; all.sh --quick's (3 s, one
# repeat, no bisection) about 6 minutes. Busy runs repeated add to it.
# Requirements: 2 cores (client and simulator apart), python3 with venv,
# GNU time, taskset, curl; PyPI on first use (the peers install under
# .cache/peers/: GuideLLM ~1 GB, AIPerf ~1.5 GB, benchmark_serving ~1 GB).
#
# usage: scripts/bench/client_vs_python.sh [SECONDS=30]
# env:   REPEATS=3, BISECT=3, TOOLS="harness guidellm aiperf benchmark_serving",
#        HARNESS_RANGE="500 16000", GUIDELLM_RANGE, AIPERF_RANGE,
#        BENCHMARK_SERVING_RANGE (each "25 800"), BOUND_MS=10,
#        QUIET_CORES=0.25, CLIENT_CPUS=0, SIM_CPU=1, PORT=18431,
#        OUTPUT_TOKENS=16, PROMPT_TOKENS=128, HARNESS (a prebuilt harness
#        binary instead of building target/release/harness), RUNS_DIR (keep
#        every run's outputs, logs and ground truth there; default: a
#        temporary directory, removed at the end)
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$(pwd)"

seconds="${1:-30}"
repeats="${REPEATS:-3}"
bisect="${BISECT:-3}"
tools="${TOOLS:-harness guidellm aiperf benchmark_serving}"
bound_ms="${BOUND_MS:-10}"
quiet_cores="${QUIET_CORES:-0.25}"
sim_cpu="${SIM_CPU:-1}"
client_cpus="${CLIENT_CPUS:-0}"
port="${PORT:-18431}"
output_tokens="${OUTPUT_TOKENS:-16}"
prompt_tokens="${PROMPT_TOKENS:-128}"
url="http://127.0.0.1:$port"
ncores=$(taskset -c "$client_cpus" nproc)
helper="$root/scripts/bench/client_vs_python.py"

if [ -n "${HARNESS:-}" ]; then
  harness="$HARNESS"
else
  cargo build --release -q -p harness --bin harness
  harness="${CARGO_TARGET_DIR:-target}/release/harness"
fi
eval "$(bash scripts/bench/client_peer_guidellm.sh)"
case " $tools " in *" aiperf "*) eval "$(bash scripts/bench/client_peer_aiperf.sh)" ;; esac
case " $tools " in *" benchmark_serving "*) eval "$(bash scripts/bench/client_peer_benchmark_serving.sh)" ;; esac

work="$(mktemp -d)"
sim_pid=""
cleanup() {
  if [ -n "$sim_pid" ]; then kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$GUIDELLM_PYTHON" "$helper" prompts datasets/cnn_dailymail_sample.json "$GUIDELLM_PROCESSOR" \
  "$prompt_tokens" "$output_tokens" 256 "$work/prompts"

start_sim() {
  taskset -c "$sim_cpu" "$harness" sim --listen "127.0.0.1:$port" --profile throughput-bench \
    --ground-truth "$1" >"$work/sim.log" 2>&1 &
  sim_pid=$!
  for _ in $(seq 100); do
    if curl -sf "$url/health" >/dev/null 2>&1; then
      # One request before the client starts, so no tool pays for a cold
      # server; the summary leaves it out of the ground truth (seq 0).
      curl -sf "$url/v1/completions" -H 'Content-Type: application/json' \
        -d '{"model": "sim-bench", "prompt": "warm up", "max_tokens": 2}' >/dev/null
      return 0
    fi
    sleep 0.1
  done
  echo "the simulator did not come up: $(cat "$work/sim.log")" >&2
  exit 1
}

# CPU seconds the simulator used so far (utime + stime of /proc/PID/stat).
sim_cpu_s() {
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$sim_pid/stat"
}

# Busy CPU seconds of the whole machine (every CPU, all but idle and iowait).
busy_s() {
  awk -v hz="$(getconf CLK_TCK)" '/^cpu / {print ($2 + $3 + $4 + $7 + $8 + $9) / hz}' /proc/stat
}

# client TOOL RATE OUT [SECONDS]: runs one tool at RATE req/s.
client() {
  local tool=$1 rate=$2 out=$3 seconds=${4:-$seconds}
  local timed=(/usr/bin/time -f "%U %S %e" -o "$out/time.txt" taskset -c "$client_cpus")
  case "$tool" in
    harness)
      "${timed[@]}" "$harness" run --backend "$url" --api completions-text \
        --dataset-path "$work/prompts/prompts.jsonl" --dataset-format jsonl \
        --scenario Server --target-qps "$rate" --min-duration-ms "$((seconds * 1000))" --min-query-count 1 \
        --max-tokens "$output_tokens" --ignore-eos --quiet --no-report \
        --output-dir "$out/runs" --label "r$rate" ;;
    guidellm)
      # One row per request the run can send (Poisson: 10% and 50 rows of
      # headroom, many standard deviations): GuideLLM stops at the end of
      # a JSON file, which with the 186 prompts alone ended a 30 s run at
      # 25 req/s after 7 s.
      local rows
      rows=$(python3 -c "import math; print(math.ceil($rate * $seconds * 1.1) + 50)")
      python3 "$helper" guidellm "$work/prompts" "$rows"
      GUIDELLM__MAX_WORKER_PROCESSES="$ncores" "${timed[@]}" "$GUIDELLM" run \
        --backend "kind=openai_http,target=$url,model=sim-bench,request_format=/v1/completions" \
        --profile "kind=poisson,rate=$rate" \
        --constraint "kind=max_duration,seconds=$seconds" \
        --data "kind=json_file,path=$work/prompts/guidellm-run.jsonl" \
        --tokenizer "kind=hf_auto,model=$GUIDELLM_PROCESSOR" \
        --output "kind=json,path=$out/guidellm.json" \
        --disable-console-interactive ;;
    aiperf)
      "${timed[@]}" "$AIPERF" profile --model sim-bench --url "$url" \
        --endpoint-type completions --streaming --use-legacy-max-tokens \
        --input-file "$work/prompts/aiperf.jsonl" --custom-dataset-type single_turn \
        --dataset-sampling-strategy sequential --tokenizer "$GUIDELLM_PROCESSOR" \
        --use-server-token-count --extra-inputs ignore_eos:true \
        --request-rate "$rate" --arrival-pattern poisson --random-seed 1 \
        --benchmark-duration "$seconds" --benchmark-grace-period 10 \
        --workers-max "$ncores" --record-processors "$ncores" --ui none \
        --no-server-metrics --no-gpu-telemetry \
        --export-level records --artifact-dir "$out/aiperf" ;;
    benchmark_serving)
      local n
      n=$(python3 -c "print(max(1, int($rate * $seconds)))")
      "$GUIDELLM_PYTHON" "$helper" sharegpt "$work/prompts" "$n"
      "${timed[@]}" "$BENCHMARK_SERVING_PYTHON" "$BENCHMARK_SERVING" --backend vllm --base-url "$url" \
        --endpoint /v1/completions --model sim-bench --tokenizer "$GUIDELLM_PROCESSOR" \
        --dataset-name sharegpt --dataset-path "$work/prompts/sharegpt.json" \
        --sharegpt-output-len "$output_tokens" --ignore-eos \
        --num-prompts "$n" --request-rate "$rate" \
        --seed 1 --disable-tqdm --save-result --result-dir "$out" --result-filename bs.json ;;
  esac
}

runs_dir="${RUNS_DIR:-$work/runs}"
results="$runs_dir/results.jsonl"
mkdir -p "$runs_dir"
: >"$results"
runs=0
# run_one TOOL RATE REPEAT: one run, summarised into $results (repeated
# once when other processes were busy).
run_one() {
  local tool=$1 rate=$2 rep=$3 try
  for try in 1 2; do
    runs=$((runs + 1))
    local out="$runs_dir/$runs-$tool-$rate"
    mkdir -p "$out"
    start_sim "$out/truth.jsonl"
    local load busy0 t0
    load=$(cut -d' ' -f1 /proc/loadavg); busy0=$(busy_s); t0=$(date +%s.%N)
    client "$tool" "$rate" "$out" >"$out/log.txt" 2>&1 || true
    local sim_s busy1 t1
    sim_s=$(sim_cpu_s); busy1=$(busy_s); t1=$(date +%s.%N)
    kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; sim_pid=""
    printf '{"load_before": "%s", "busy_s": %s, "sim_cpu_s": %s, "wall_s": %s}\n' \
      "$load" "$(awk "BEGIN {print $busy1 - $busy0}")" "$sim_s" "$(awk "BEGIN {print $t1 - $t0}")" >"$out/env.json"
    local row
    if ! row=$(python3 "$helper" summarize "$tool" "$rate" "$out" "$bound_ms" "${startup[$tool]}" 2>"$out/summary.err"); then
      row="{\"tool\": \"$tool\", \"target\": $rate, \"failed\": true}"
      echo "$tool at $rate req/s: no result ($(tail -n 3 "$out/log.txt" "$out/summary.err" | tr '\n' ' '))" >&2
    fi
    row=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["repeat"]=int(sys.argv[2]); print(json.dumps(r))' "$row" "$rep")
    local busy
    busy=$(python3 -c 'import json,sys; print(int(json.loads(sys.argv[1]).get("others_cores", 0) > float(sys.argv[2])))' "$row" "$quiet_cores")
    if [ "$busy" = 1 ] && [ "$try" = 1 ]; then
      echo "$tool at $rate req/s: other processes were busy; repeating the run" >&2
      continue
    fi
    echo "$row" >>"$results"
    echo "$row" >&2
    return 0
  done
}

declare -A lo hi rate done_
for t in $tools; do
  case $t in
    harness) r="${HARNESS_RANGE:-500 16000}" ;;
    guidellm) r="${GUIDELLM_RANGE:-25 800}" ;;
    aiperf) r="${AIPERF_RANGE:-25 800}" ;;
    benchmark_serving) r="${BENCHMARK_SERVING_RANGE:-25 800}" ;;
    *) echo "unknown tool $t" >&2; exit 2 ;;
  esac
  lo[$t]=${r% *}; hi[$t]=${r#* }; done_[$t]=0
done

# sustained TOOL RATE: 0 when every repeat at RATE was sustained.
sustained() {
  python3 - "$results" "$1" "$2" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rs = [r for r in rows if r["tool"] == sys.argv[2] and r["target"] == float(sys.argv[3])]
sys.exit(0 if rs and all(r.get("sustained") for r in rs) else 1)
PY
}

# round: every tool not done runs at ${rate[tool]}, repeats interleaved.
round() {
  local rep t
  for rep in $(seq "$repeats"); do
    for t in $tools; do
      [ "${done_[$t]}" = 1 ] || run_one "$t" "${rate[$t]}" "$rep"
    done
  done
}

# Each tool's start-up and tear-down CPU: a 2-second run at 10 req/s.
declare -A startup
for t in $tools; do
  out="$runs_dir/startup-$t"
  mkdir -p "$out"
  start_sim "$out/truth.jsonl"
  client "$t" 10 "$out" 2 >"$out/log.txt" 2>&1 || true
  kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; sim_pid=""
  startup[$t]=$(tail -n 1 "$out/time.txt" 2>/dev/null | awk '{print $1 + $2}')
  startup[$t]=${startup[$t]:-0}
  echo "$t: start-up and tear-down CPU ${startup[$t]} s" >&2
done

for t in $tools; do rate[$t]=${lo[$t]}; done
round
for t in $tools; do
  sustained "$t" "${lo[$t]}" || { done_[$t]=1; echo "$t: not sustained at the bottom of its range, ${lo[$t]} req/s" >&2; }
  rate[$t]=${hi[$t]}
done
round
for t in $tools; do
  [ "${done_[$t]}" = 1 ] && continue
  sustained "$t" "${hi[$t]}" && { done_[$t]=1; echo "$t: sustained at the top of its range, ${hi[$t]} req/s" >&2; }
done
for _ in $(seq "$bisect"); do
  for t in $tools; do
    [ "${done_[$t]}" = 1 ] || rate[$t]=$(python3 -c "import math; print(round(math.sqrt(${lo[$t]} * ${hi[$t]})))")
  done
  round
  for t in $tools; do
    [ "${done_[$t]}" = 1 ] && continue
    if sustained "$t" "${rate[$t]}"; then lo[$t]=${rate[$t]}; else hi[$t]=${rate[$t]}; fi
  done
done

python3 "$helper" report "$results" "$seconds" "$repeats" "$bound_ms" "$quiet_cores" "$bisect"
