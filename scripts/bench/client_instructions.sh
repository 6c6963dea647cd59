#!/usr/bin/env bash
# User-space instructions per streamed request of `harness run`, counted by
# callgrind: a deterministic figure for judging a change to the client where
# CPU time is too noisy to (on the 2-vCPU guests we measure on, identical
# 20 s runs of one binary vary by a quarter in user time per query).
#
# usage: scripts/bench/client_instructions.sh [--top N] [BIN...]
#   BIN     harness binaries to compare, each measured the same way
#           (default: target/release/harness, built if missing)
#   --top N also list each binary's N costliest functions (their own
#           instructions per query, callees not included; default 0)
#
# Method: the throughput-bench simulator on CPU 1, the client under
# `valgrind --tool=callgrind` on CPU 0, a Server test at 200 QPS with the
# bundled dataset's token ids and 16 output tokens; once for 5 s and once for
# 20 s. The difference in instructions over the difference in queries is the
# cost per query without start-up (and with the per-query share of the
# end-of-run summary). Kernel time is not counted: see sut_vs_python.sh
# --count-syscalls for that side. About 1 minute per binary.
# Needs: valgrind (callgrind_annotate for --top), taskset, curl, 2 CPUs.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
top=0
bins=()
while [ $# -gt 0 ]; do
  case "$1" in
    --top) [ $# -ge 2 ] && [ "$2" -ge 0 ] 2>/dev/null || { echo "usage: $0 [--top N] [BIN...]" >&2; exit 2; }
      top="$2"; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) bins+=("$(realpath "$1")"); shift ;;
  esac
done
command -v valgrind >/dev/null || { echo "$0: valgrind is not installed" >&2; exit 2; }
if [ ${#bins[@]} -eq 0 ]; then
  bin="${CARGO_TARGET_DIR:-$root/target}/release/harness"
  [ -x "$bin" ] || (cd "$root" && cargo build --release -q -p harness)
  bins=("$bin")
fi
work="$(mktemp -d)"
sim_pid=""
cleanup() {
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# Runs BIN's client for SECONDS under callgrind and sets `queries` and
# `instructions`. It runs in this shell (not a subshell), so the EXIT trap
# sees the simulator it started.
measure() {
  local bin="$1" seconds="$2" out="$work/run-$2"
  rm -rf "$out"; mkdir -p "$out"
  printf 'llama3_1-8b.Server.target_qps = 200\n*.Server.min_duration = %d\n*.Server.min_query_count = 100\n' \
    $((seconds * 1000)) > "$out/user.conf"
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  taskset -c 1 "$bin" sim --listen "127.0.0.1:$port" --profile throughput-bench >"$out/sim.log" 2>&1 &
  sim_pid=$!
  for _ in $(seq 200); do curl -sf "127.0.0.1:$port/v1/models" >/dev/null && break; sleep 0.05; done
  taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out" \
    "$bin" run --backend "http://127.0.0.1:$port" --scenario Server --lg-model-name llama3_1-8b \
    --user-conf "$out/user.conf" --dataset-path "$root/datasets/cnn_dailymail_sample.json" \
    --max-tokens 16 --ignore-eos --quiet --no-report --no-history \
    --output-dir "$out/runs" --label instructions >"$out/client.log" 2>&1 \
    || { echo "$0: the client failed; see below" >&2; tail -20 "$out/client.log" >&2; exit 1; }
  kill "$sim_pid"; wait "$sim_pid" 2>/dev/null || true; sim_pid=""
  queries=$(grep -c '"type":"query"' "$(find "$out/runs" -name records.jsonl)")
  instructions=$(awk '/^summary:/ {print $2; exit}' "$out/callgrind.out")
}

printf '%-60s %12s %12s\n' "binary" "queries" "instr/query"
for bin in "${bins[@]}"; do
  measure "$bin" 5
  q5=$queries i5=$instructions
  cp "$work/run-5/callgrind.out" "$work/short.out"
  measure "$bin" 20
  q20=$queries i20=$instructions
  per=$(( (i20 - i5) / (q20 - q5) ))
  printf '%-60s %12d %12d\n' "$bin" $((q20 - q5)) "$per"
  if [ "$top" -gt 0 ]; then
    # Each function's own instructions per query, long run minus short run:
    # start-up cancels out, what remains is the per-query cost.
    python3 - "$work/short.out" "$work/run-20/callgrind.out" $((q20 - q5)) "$top" <<'EOF'
import re, subprocess, sys
short, long, queries, top = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def inclusive(path):
    text = subprocess.run(["callgrind_annotate", "--threshold=100", path],
                          capture_output=True, text=True, check=True).stdout
    costs = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+\S*?:(.+?)(?: \[.*\])?$", line)
        if m:
            name = m.group(2)
            # One function may be listed once per source file it inlines.
            costs[name] = costs.get(name, 0) + int(m.group(1).replace(",", ""))
    return costs
a, b = inclusive(short), inclusive(long)
rows = sorted(((b[n] - a.get(n, 0)) / queries, n) for n in b)
for per, name in reversed(rows[-top:]):
    print(f"    {per:10.0f}  {name[:100]}")
EOF
  fi
done
