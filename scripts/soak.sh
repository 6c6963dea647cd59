#!/usr/bin/env bash
# Soak test: a long Server run at high QPS against the simulator with every
# kind of fault injected, then proof that nothing was lost and memory stayed
# flat.
#
#   scripts/soak.sh                       # 30 minutes at 1,000 QPS
#   SOAK_MINUTES=2 SOAK_QPS=500 scripts/soak.sh   # a quick look
#
# The simulator runs as its own process (`harness sim`, profile tiny-fast)
# with 0.5% HTTP 500s, 0.5% 503s, mid-stream stalls of 3 s (0.05% per chunk) (the run's
# stall timeout is 1 s, so they fail as stalls), 0.2% mid-stream
# disconnects, 0.2% malformed chunks and 0.2% error events, all seeded. The
# harness is sampled every 5 s (RSS from /proc), and at the end
# scripts/soak/check.py verifies, from the run directory's files alone:
# - every query LoadGen generated is in records.jsonl exactly once (seq
#   0..N-1), completed or failed with a kind, and the counts agree with
#   the phase end line and mlperf_log_detail.txt;
# - the run is INVALID with the failed-query reason (faults were injected);
# - memory is flat: after warm-up, RSS grows by no more than the bytes the
#   run must keep per query (LoadGen keeps every latency for its
#   percentiles), and the growth rate is the same in the first and the last
#   third of the run (a leak per request would show as extra growth).
# Writes soak-runs/<run>/soak.json and prints a summary; exit 0 when every
# check passes.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=${SOAK_MINUTES:-30}
qps=${SOAK_QPS:-1000}
out=${SOAK_OUTPUT_DIR:-soak-runs}
cargo build --release -p harness --locked
bin=${CARGO_TARGET_DIR:-target}/release/harness

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" sim --profile tiny-fast --listen "127.0.0.1:$port" --seed 7 \
  --error-rate 500:0.005 --error-rate 503:0.005 \
  --stall-mid-probability 0.0005 --stall-ms 3000 \
  --disconnect-probability 0.002 --malformed-probability 0.002 \
  --error-event-probability 0.002 > /dev/null 2>&1 &
sim=$!
trap 'kill $sim 2>/dev/null || true' EXIT

mkdir -p "$out"
before=$(ls "$out")
"$bin" run --backend "http://127.0.0.1:$port" --wait-ready 30 --scenario Server \
  --target-qps "$qps" --min-duration-ms $((minutes * 60000)) --min-query-count 1 \
  --max-tokens 16 --ignore-eos --stall-timeout 1 --request-timeout 30 \
  --enable-metrics-collection --no-history --quiet --label soak --output-dir "$out" \
  > "$out/.soak-stdout" 2>&1 &
run=$!
samples=$(mktemp)
echo "t_s,harness_rss_kib,sim_rss_kib" > "$samples"
start=$(date +%s)
while kill -0 $run 2>/dev/null; do
  rss=$(awk '/^VmRSS/ {print $2}' /proc/$run/status 2>/dev/null || echo "")
  srss=$(awk '/^VmRSS/ {print $2}' /proc/$sim/status 2>/dev/null || echo "")
  [ -n "$rss" ] && echo "$(( $(date +%s) - start )),$rss,$srss" >> "$samples"
  sleep 5
done
set +e
wait $run
rc=$?
set -e
rundir=$(comm -13 <(echo "$before") <(ls "$out") | head -1)
[ -n "$rundir" ] || { echo "soak: no run directory appeared; harness said:"; cat "$out/.soak-stdout"; exit 1; }
mv "$samples" "$out/$rundir/soak_rss.csv"
mv "$out/.soak-stdout" "$out/$rundir/soak_stdout.txt"
python3 scripts/soak/check.py "$out/$rundir" --exit-code "$rc" --qps "$qps" --minutes "$minutes"
