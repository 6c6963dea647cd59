#!/usr/bin/env bash
# Measurement accuracy of `harness run` itself against the simulator's
# ground truth at 1,000 QPS streaming: `harness sim --ground-truth` pinned
# to one CPU, `harness run --backend` (a LoadGen Server test, records.jsonl
# written, the same path as any run) pinned to another, every record joined
# to the simulator's record of the same request by X-Request-Id
# (--request-id-prefix; scripts/bench/client_accuracy.py). Three runs; the
# machine's load average is printed before each (figures taken while other
# work runs on the machine are not worth publishing).
# The split of the added time into send and receive lag needs one clock for
# both sides: harness/examples/measure_accuracy.rs runs both in one process
# for that.
# Needs: 2 CPUs or more, python3, taskset, curl. About (SECONDS + 5) x 3 s.
# usage: scripts/bench/client_accuracy.sh [QPS=1000] [SECONDS=25] [MAX_TOKENS=16] [PROFILE=tiny-fast]
set -euo pipefail
cd "$(dirname "$0")/../.."
qps="${1:-1000}" seconds="${2:-25}" max_tokens="${3:-16}" profile="${4:-tiny-fast}"
sim_cpu="${SIM_CPU:-1}" client_cpu="${CLIENT_CPU:-0}" port="${PORT:-18434}"
cargo build --release -q -p harness --bin harness
bin="${CARGO_TARGET_DIR:-target}/release/harness"
work=$(mktemp -d)
sim=
cleanup() {
  if [ -n "$sim" ]; then kill "$sim" 2>/dev/null || true; wait "$sim" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
for i in 1 2 3; do
  echo "run $i; load average: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs"
  echo "harness run: simulator profile $profile, target $qps QPS for $seconds s, max_tokens $max_tokens, client on CPU $client_cpu, simulator on CPU $sim_cpu"
  d="$work/run$i"
  mkdir -p "$d"
  taskset -c "$sim_cpu" "$bin" sim --listen "127.0.0.1:$port" --profile "$profile" \
    --ground-truth "$d/truth.jsonl" >/dev/null 2>"$d/sim.log" &
  sim=$!
  up=
  for _ in $(seq 200); do
    if curl -sf "http://127.0.0.1:$port/v1/models" >/dev/null; then up=1; break; fi
    sleep 0.05
  done
  [ -n "$up" ] || { echo "the simulator did not come up: $(cat "$d/sim.log")" >&2; exit 1; }
  # Exit 3 (INVALID: a latency bound missed) still leaves every record to
  # compare; anything else is a failure.
  rc=0
  taskset -c "$client_cpu" "$bin" run --backend "http://127.0.0.1:$port" --scenario Server \
    --target-qps "$qps" --min-duration-ms "$((seconds * 1000))" --min-query-count 100 \
    --max-tokens "$max_tokens" --ignore-eos --request-id-prefix "acc$i-" \
    --quiet --no-report --no-history --output-dir "$d/runs" --label accuracy \
    >"$d/run.log" 2>&1 || rc=$?
  if [ "$rc" != 0 ] && [ "$rc" != 3 ]; then
    echo "harness run failed (exit $rc): $(tail -5 "$d/run.log")" >&2
    exit 1
  fi
  # The simulator writes its ground truth as requests end; SIGTERM flushes it.
  kill "$sim"; wait "$sim" 2>/dev/null || true
  sim=
  records=$(find "$d/runs" -name records.jsonl | head -1)
  grep -h '^Result is' "$(dirname "$records")/mlperf_log_summary.txt" || true
  python3 scripts/bench/client_accuracy.py "$records" "$d/truth.jsonl" "acc$i-"
  echo
done
