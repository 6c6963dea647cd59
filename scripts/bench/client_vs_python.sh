#!/usr/bin/env bash
# Streaming request rate one client process sustains: the harness against
# GuideLLM (the vLLM project's Python client) and vLLM 0.7.3's standalone
# benchmarks/benchmark_serving.py (the client `vllm bench serve` grew out
# of), same server, same run of this script.
#
# The server is `harness sim --profile throughput-bench` (2 ms steps, free
# prefill: the server is not the bottleneck), restarted for every run with a
# fresh ground-truth file, pinned to CPU $SIM_CPU; the client runs pinned to
# CPU $CLIENT_CPU. Each client is driven at a list of fixed request rates
# with Poisson arrivals (the harness's Server scenario, benchmark_serving's
# --request-rate, GuideLLM's poisson profile) for $SECONDS seconds; outputs
# 16 tokens, streamed.
#
# One rule for every tool: a rate is "sustained" when the client achieved
# >= 95% of it (its own count; the server's ground-truth rate is printed
# beside it), completed >= 99% of what it sent without error, and its
# client-added TTFT p99 (its TTFT p99, each tool timed from its own send:
# the harness from issued_ns, not from the scheduled time) over the
# server's own TTFT p99 (ground truth) for the same run stayed within 10 ms.
# Client CPU is user+system seconds of the client process (GNU time).
#
# Known gap (issue 15): prompts are not yet identical across tools: the
# harness sends the bundled dataset's token ids (~128 tokens), the peers
# synthetic text of ~128 tokens from their own generators; and vLLM's
# client here is 0.7.3's standalone script (old): current vLLM's is
# `vllm bench serve`, inside the vllm package with its torch stack.
#
# usage: scripts/bench/client_vs_python.sh [SECONDS=20]
# env:   HARNESS_RATES, GUIDELLM_RATES (space-separated req/s), SIM_CPU=1,
#        BENCHMARK_SERVING_RATES, CLIENT_CPU=0, PORT=18431, OUTPUT_TOKENS=16,
#        PROMPT_TOKENS=128
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$(pwd)"

seconds="${1:-20}"
harness_rates="${HARNESS_RATES:-500 1000 2000 3000 4000 5000}"
guidellm_rates="${GUIDELLM_RATES:-50 100 200 300 400 600}"
bs_rates="${BENCHMARK_SERVING_RATES:-50 100 200 300 400 600}"
sim_cpu="${SIM_CPU:-1}"
client_cpu="${CLIENT_CPU:-0}"
port="${PORT:-18431}"
output_tokens="${OUTPUT_TOKENS:-16}"
prompt_tokens="${PROMPT_TOKENS:-128}"
url="http://127.0.0.1:$port"

target_dir="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p harness --bin harness
harness="$target_dir/release/harness"
eval "$(bash scripts/bench/client_peer_guidellm.sh)"
eval "$(bash scripts/bench/client_peer_benchmark_serving.sh)"

work="$(mktemp -d)"
sim_pid=""
cleanup() {
  if [ -n "$sim_pid" ]; then kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

start_sim() {
  local gt="$1"
  taskset -c "$sim_cpu" "$harness" sim --listen "127.0.0.1:$port" --profile throughput-bench \
    --ground-truth "$gt" >"$work/sim.log" 2>&1 &
  sim_pid=$!
  for _ in $(seq 100); do
    curl -sf "$url/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "the simulator did not come up: $(cat "$work/sim.log")" >&2
  exit 1
}

stop_sim() {
  kill "$sim_pid" 2>/dev/null || true
  wait "$sim_pid" 2>/dev/null || true
  sim_pid=""
}

write_conf() {
  printf '*.Server.min_duration = %s\n*.Server.min_query_count = 1\n' "$(($1 * 1000))" >"$work/user-$1.conf"
}
write_conf "$seconds"
write_conf 2

# Reads one run's client output, GNU time output and ground truth; prints
# one JSON line.
summarize() {
  python3 - "$@" <<'PY'
import json, sys, glob, os

client, target, out, timefile, gtfile, startup = sys.argv[1:7]
target = float(target)
startup = float(startup)

def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = max(1, -(-len(values) * p // 100))
    return values[int(k) - 1]

user, system, wall = (float(x) for x in open(timefile).read().split()[-3:])
truth = [json.loads(l) for l in open(gtfile)] if os.path.exists(gtfile) else []
truth_ok = [g for g in truth if g.get("outcome") == "ok" and g.get("first_token_ns") is not None]
sim_ttft = [(g["first_token_ns"] - g["arrival_ns"]) / 1e6 for g in truth_ok]
# What the server saw, whatever the client says: finished requests per second
# between the first arrival and the last end.
server_rate = (len(truth_ok) / ((max(g["end_ns"] for g in truth_ok)
                                - min(g["arrival_ns"] for g in truth_ok)) / 1e9)
               if len(truth_ok) > 1 else 0.0)

if client == "harness":
    path = glob.glob(os.path.join(out, "runs", "*", "records.jsonl"))[0]
    recs = []
    for line in open(path):
        d = json.loads(line)
        if d.get("type") == "query":
            recs.append(d)
    ok = [r for r in recs if "error" not in r]
    sent = len(recs)
    start = min(r["issued_ns"] for r in recs)
    end = max(r["end_ns"] for r in ok)
    achieved = len(ok) / ((end - start) / 1e9)
    # Timed from its own send, like the peers: issued_ns.
    ttft = [(r["first_token_ns"] - r["issued_ns"]) / 1e6 for r in ok if "first_token_ns" in r]
    ttft_issued = [(r["first_token_ns"] - r["scheduled_ns"]) / 1e6 for r in ok if "first_token_ns" in r]
    ok_n = len(ok)
elif client == "benchmark_serving":
    doc = json.load(open(os.path.join(out, "bs.json")))
    sent = len(doc["errors"])
    ok_n = doc["completed"]
    # Its own figure: completed requests over the whole benchmark, from the
    # first request sent to the last answer.
    achieved = doc["request_throughput"]
    ttft = [t * 1000 for t, e in zip(doc["ttfts"], doc["errors"]) if not e and t]
    ttft_issued = None
else:
    doc = json.load(open(os.path.join(out, "guidellm.json")))
    b = doc["benchmarks"][0]
    window = (b["scheduler_metrics"]["measure_end_time"]
              - b["scheduler_metrics"]["measure_start_time"])
    # GuideLLM's scheduler_metrics.requests_made also counts requests queued
    # ahead of their time and cancelled at the end; request_totals counts
    # the requests of the measured window.
    totals = b["metrics"]["request_totals"]
    sent = totals["total"]
    ok_n = totals["successful"]
    achieved = ok_n / window
    t = b["metrics"]["time_to_first_token_ms"]["successful"]["percentiles"]
    ttft = None
    ttft_p50, ttft_p99 = t["p50"], t["p99"]
    ttft_issued = None

if ttft is not None:
    ttft_p50, ttft_p99 = pct(ttft, 50), pct(ttft, 99)
completion = ok_n / sent if sent else 0.0
sim_p99 = pct(sim_ttft, 99)
cpu = user + system
row = {
    "client": client, "target": target, "achieved": achieved, "sent": sent, "ok": ok_n,
    "completion": completion, "ttft_p50_ms": ttft_p50, "ttft_p99_ms": ttft_p99,
    "sim_ttft_p50_ms": pct(sim_ttft, 50), "sim_ttft_p99_ms": sim_p99,
    "server_rate": server_rate, "server_ok": len(truth_ok),
    "cpu_s": cpu, "wall_s": wall, "cpu_s_per_1k": cpu / max(ok_n, 1) * 1000,
    "startup_cpu_s": startup,
    "steady_cpu_s_per_1k": max(cpu - startup, 0.0) / max(ok_n, 1) * 1000,
}
if ttft_issued is not None:
    # LoadGen's definition (from the scheduled time), for reference only.
    row["ttft_from_scheduled_p99_ms"] = pct(ttft_issued, 99)
row["sustained"] = bool(achieved >= 0.95 * target and completion >= 0.99
                        and ttft_p99 - sim_p99 <= 10.0)
print(json.dumps(row))
PY
}

results="$work/results.jsonl"
: >"$results"
# run_one CLIENT RATE SECONDS STARTUP_CPU_S
run_one() {
  local client="$1" rate="$2" secs="$3" startup="$4"
  local out="$work/$client-$rate-$secs"
  mkdir -p "$out"
  start_sim "$out/truth.jsonl"
  if [ "$client" = harness ]; then
    /usr/bin/time -f "%U %S %e" -o "$out/time.txt" taskset -c "$client_cpu" \
      "$harness" run --backend "$url" --scenario Server --target-qps "$rate" \
      --user-conf "$work/user-$secs.conf" --max-tokens "$output_tokens" --ignore-eos \
      --quiet --no-report --output-dir "$out/runs" --label "r$rate" >"$out/log.txt" 2>&1 || true
  elif [ "$client" = benchmark_serving ]; then
    # Poisson arrivals (burstiness 1), like the harness's Server scenario.
    /usr/bin/time -f "%U %S %e" -o "$out/time.txt" taskset -c "$client_cpu" \
      "$BENCHMARK_SERVING_PYTHON" "$BENCHMARK_SERVING" --backend vllm --base-url "$url" \
      --endpoint /v1/completions --model sim-bench --tokenizer "$GUIDELLM_PROCESSOR" \
      --dataset-name random --random-input-len "$prompt_tokens" \
      --random-output-len "$output_tokens" --ignore-eos \
      --num-prompts "$(python3 -c "print(max(1, int($rate * $secs)))")" --request-rate "$rate" \
      --seed 1 --disable-tqdm --save-result --result-dir "$out" --result-filename bs.json \
      >"$out/log.txt" 2>&1 || true
  else
    /usr/bin/time -f "%U %S %e" -o "$out/time.txt" taskset -c "$client_cpu" \
      "$GUIDELLM" run \
      --backend "kind=openai_http,target=$url,model=sim-bench,request_format=/v1/completions" \
      --profile "kind=poisson,rate=$rate" \
      --constraint "kind=max_duration,seconds=$secs" \
      --data "kind=synthetic_text,prompt_tokens=$prompt_tokens,output_tokens=$output_tokens" \
      --tokenizer "kind=hf_auto,model=$GUIDELLM_PROCESSOR" \
      --output "kind=json,path=$out/guidellm.json" \
      --disable-console-interactive >"$out/log.txt" 2>&1 || true
  fi
  stop_sim
  local into="$results"
  [ "$secs" = "$seconds" ] || into="$work/startup.jsonl"
  if ! summarize "$client" "$rate" "$out" "$out/time.txt" "$out/truth.jsonl" "$startup" >>"$into" 2>"$out/summary.err"; then
    echo "{\"client\": \"$client\", \"target\": $rate, \"failed\": true}" >>"$into"
    echo "$client at $rate req/s: no result ($(tail -3 "$out/log.txt" "$out/summary.err" | tr '\n' ' '))" >&2
  fi
  tail -1 "$into" >&2
}

# A 2-second run at 10 req/s gives each client's start-up and tear-down CPU
# (imports, tokenizer, synthetic data, worker processes), subtracted for the
# steady-state CPU per 1k requests.
startup_cpu() {
  run_one "$1" 10 2 0 2>/dev/null
  python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readlines()[-1]).get("cpu_s", 0))' "$work/startup.jsonl"
}
g_startup="$(startup_cpu guidellm)"
b_startup="$(startup_cpu benchmark_serving)"
h_startup="$(startup_cpu harness)"
echo "start-up CPU: guidellm ${g_startup} s, benchmark_serving ${b_startup} s, harness ${h_startup} s" >&2
for rate in $guidellm_rates; do run_one guidellm "$rate" "$seconds" "$g_startup"; done
for rate in $bs_rates; do run_one benchmark_serving "$rate" "$seconds" "$b_startup"; done
for rate in $harness_rates; do run_one harness "$rate" "$seconds" "$h_startup"; done

python3 - "$results" "$seconds" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"Streaming clients against `harness sim --profile throughput-bench` "
      f"({sys.argv[2]} s per rate; server and client pinned to separate CPUs)\n")
print("| client | target req/s | achieved req/s (client / server) | completed | TTFT p50 / p99 ms (client, from its own send) "
      "| TTFT p50 / p99 ms (server truth) | client CPU s / 1k req (all / steady) | sustained |")
print("|---|---|---|---|---|---|---|---|")
best = {}
for r in rows:
    if r.get("failed"):
        print(f"| {r['client']} | {r['target']:.0f} | failed | | | | | no |")
        continue
    print(f"| {r['client']} | {r['target']:.0f} | {r['achieved']:.0f} / {r['server_rate']:.0f} "
          f"| {100*r['completion']:.1f}% "
          f"| {r['ttft_p50_ms']:.2f} / {r['ttft_p99_ms']:.2f} "
          f"| {r['sim_ttft_p50_ms']:.2f} / {r['sim_ttft_p99_ms']:.2f} "
          f"| {r['cpu_s_per_1k']:.3f} / {r['steady_cpu_s_per_1k']:.3f} "
          f"| {'yes' if r['sustained'] else 'no'} |")
    if r["sustained"]:
        best[r["client"]] = max(best.get(r["client"], 0.0), r["achieved"])
print()
for c, v in best.items():
    print(f"- {c}: max sustained {v:.0f} req/s")
for peer in ("guidellm", "benchmark_serving"):
    if "harness" in best and peer in best:
        print(f"- ratio harness / {peer}: {best['harness'] / best[peer]:.1f}x")
PY
