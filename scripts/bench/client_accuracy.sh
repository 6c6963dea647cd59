#!/usr/bin/env bash
# Measurement accuracy of `harness run` itself against the simulator's
# ground truth at 1,000 QPS streaming: `harness sim --ground-truth` pinned
# to one CPU, `harness run --backend` (a LoadGen Server test, records.jsonl
# written, the same path as any run) pinned to another, every record joined
# to the simulator's record of the same request by X-Request-Id
# (--request-id-prefix; scripts/bench/client_accuracy.py).
#
# Two conditions, interleaved (quiet, under load, quiet, under load, ...),
# three repeats each:
# - quiet: nothing of ours runs beside the client on its CPU;
# - under load: the same run while HOGS (default 1) CPU-bound busy loops
#   (`sh -c 'while :; do :; done'`, same nice level as the client) are
#   pinned to the client's CPU, so the client competes for its core under
#   the kernel's fair scheduler (with one loop each side gets about half of
#   the CPU; the loop's measured share is printed per run). The simulator's
#   CPU is left unloaded on purpose: the simulator's ground truth starts
#   when it reads the request, so load there would be charged to the
#   client. HOGS=0 skips the loaded runs.
# The machine's load average is printed before each run (figures taken while
# other work runs on the machine are not worth publishing), and a last table
# puts the two conditions side by side (per run and the median of the runs).
# Every process the script starts (simulator, client, busy loops) is killed
# when it ends, also on failure, Ctrl-C or SIGTERM.
# The split of the added time into send and receive lag needs one clock for
# both sides: harness/examples/measure_accuracy.rs runs both in one process
# for that.
# Needs: 2 CPUs or more, python3, taskset, curl. About (SECONDS + 5) x 6 s
# (x 3 with HOGS=0).
# usage: scripts/bench/client_accuracy.sh [QPS=1000] [SECONDS=25] [MAX_TOKENS=16] [PROFILE=tiny-fast]
# environment: CLIENT_CPU (0), SIM_CPU (1), PORT (18434), HOGS (1), REPEATS (3)
set -euo pipefail
cd "$(dirname "$0")/../.."
qps="${1:-1000}" seconds="${2:-25}" max_tokens="${3:-16}" profile="${4:-tiny-fast}"
sim_cpu="${SIM_CPU:-1}" client_cpu="${CLIENT_CPU:-0}" port="${PORT:-18434}"
hogs="${HOGS:-1}" repeats="${REPEATS:-3}"
cargo build --release -q -p harness --bin harness
bin="${CARGO_TARGET_DIR:-target}/release/harness"
work=$(mktemp -d)
sim= client= hog_pids=()
stop() {
  [ -n "$1" ] || return 0
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
stop_hogs() {
  local p
  for p in "${hog_pids[@]}"; do stop "$p"; done
  hog_pids=()
}
cleanup() {
  stop "$client"
  stop_hogs
  stop "$sim"
  rm -rf "$work"
}
trap cleanup EXIT
# A signal ends the script through exit, so the EXIT trap above runs.
trap 'exit 130' INT
trap 'exit 143' TERM
# cpu_ticks PID...: user + system clock ticks the processes have used.
cpu_ticks() {
  local p total=0 stat
  for p in "$@"; do
    stat=$(cat "/proc/$p/stat")
    stat=${stat##*) }
    set -- $stat
    total=$((total + ${12} + ${13}))
  done
  echo "$total"
}
summary="$work/summary.tsv"
conditions=(quiet)
[ "$hogs" -gt 0 ] && conditions+=(loaded)
for i in $(seq "$repeats"); do
  for condition in "${conditions[@]}"; do
    tag="$condition$i"
    d="$work/$tag"
    mkdir -p "$d"
    if [ "$condition" = quiet ]; then
      load="none"
    else
      load="$hogs busy loop(s) pinned to CPU $client_cpu"
    fi
    loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
    echo "run $i, $([ "$condition" = quiet ] && echo quiet || echo under load); load average: $loadavg; $(nproc) CPUs"
    echo "harness run: simulator profile $profile, target $qps QPS for $seconds s, max_tokens $max_tokens, client on CPU $client_cpu, simulator on CPU $sim_cpu; competing load on the client's CPU: $load"
    taskset -c "$sim_cpu" "$bin" sim --listen "127.0.0.1:$port" --profile "$profile" \
      --ground-truth "$d/truth.jsonl" >/dev/null 2>"$d/sim.log" &
    sim=$!
    up=
    for _ in $(seq 200); do
      if curl -sf "http://127.0.0.1:$port/v1/models" >/dev/null; then up=1; break; fi
      sleep 0.05
    done
    [ -n "$up" ] || { echo "the simulator did not come up: $(cat "$d/sim.log")" >&2; exit 1; }
    if [ "$condition" = loaded ]; then
      for _ in $(seq "$hogs"); do
        taskset -c "$client_cpu" sh -c 'while :; do :; done' &
        hog_pids+=($!)
      done
      hog_before=$(cpu_ticks "${hog_pids[@]}")
    fi
    started=$(date +%s%N)
    # Exit 3 (INVALID: a latency bound missed) still leaves every record to
    # compare; anything else is a failure. In the background so that a
    # signal reaches the traps at once (cleanup stops the client).
    taskset -c "$client_cpu" "$bin" run --backend "http://127.0.0.1:$port" --scenario Server \
      --target-qps "$qps" --min-duration-ms "$((seconds * 1000))" --min-query-count 100 \
      --max-tokens "$max_tokens" --ignore-eos --request-id-prefix "acc$tag-" \
      --quiet --no-report --no-history --output-dir "$d/runs" --label accuracy \
      >"$d/run.log" 2>&1 &
    client=$!
    rc=0
    wait "$client" || rc=$?
    client=
    share="-"
    if [ "$condition" = loaded ]; then
      hog_after=$(cpu_ticks "${hog_pids[@]}")
      elapsed_ms=$((($(date +%s%N) - started) / 1000000))
      share=$(((hog_after - hog_before) * 1000 * 100 / $(getconf CLK_TCK) / elapsed_ms))
      stop_hogs
      echo "competing load: $hogs busy loop(s) on CPU $client_cpu used ${share}% of a CPU during the run"
      share="$share%"
    fi
    if [ "$rc" != 0 ] && [ "$rc" != 3 ]; then
      echo "harness run failed (exit $rc): $(tail -5 "$d/run.log")" >&2
      exit 1
    fi
    # The simulator writes its ground truth as requests end; SIGTERM flushes it.
    stop "$sim"
    sim=
    records=$(find "$d/runs" -name records.jsonl | head -1)
    grep -h '^Result is' "$(dirname "$records")/mlperf_log_summary.txt" || true
    python3 scripts/bench/client_accuracy.py "$records" "$d/truth.jsonl" "acc$tag-" \
      --summary "$summary" --condition "$condition" --load "$load" --load-share "$share" \
      --loadavg "${loadavg%% *}"
    echo
  done
done
python3 scripts/bench/client_accuracy.py --summarize "$summary"
