#!/usr/bin/env bash
# Scaling: cost per query from 1k to 10M queries, for the load generator
# (a whole LoadGen test against an instant SUT, Server and Offline) and for
# report generation (reports::generate over a run directory's files).
# Time and memory per query should stay flat (linear growth or better).
#
# usage: scripts/bench/scaling.sh [SIZES="1000 10000 100000 1000000 10000000"]
#        [REPORT_SIZES="1000 10000 100000 1000000"] [REPORT_TOKENS=16]
#   Server: target 1,000,000 QPS, min_query_count = N (so N queries over
#   N/1M seconds), target latency 10 ms. Offline: one query of N samples.
#   Both through harness/examples/issue_bench.rs, which writes LoadGen's logs
#   and records.jsonl as `harness run` does (deleted after each test).
#   Report: synthetic run directories (reports/examples/synthetic_run.rs,
#   REPORT_TOKENS mean output tokens per sample, so a chunk time per token in
#   records.jsonl), made once under .cache/bench/ and reused; the figure is
#   the whole `reports::generate` (summary.json, charts, CSV, report.html).
# Prints markdown tables on stdout.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
sizes=${1:-"1000 10000 100000 1000000 10000000"}
report_sizes=${2:-"1000 10000 100000 1000000"}
tokens=${3:-16}
cargo build --release -q -p harness --example issue_bench
cargo build --release -q -p reports --example synthetic_run --example report
bin="$CARGO_TARGET_DIR/release/examples"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "machine: $(nproc) cores, $(uname -srm); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "### Load generator: one whole test per size (instant SUT)"
echo
echo "| queries (Server / Offline) | Server wall | Server ns/query | Server peak RSS growth / query | Offline wall | Offline ns/sample | Offline peak RSS growth / sample |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for n in $sizes; do
  dur=$(( n / 1000 )); [ "$dur" -ge 1 ] || dur=1
  "$bin/issue_bench" server 1000000 "$dur" "$n" "$work/server" > "$work/server.json"
  offline_qps=$(python3 -c "print($n / 1.1)")
  "$bin/issue_bench" offline "$offline_qps" 1000 1 "$work/offline" > "$work/offline.json"
  rm -rf "$work/server" "$work/offline"
  python3 - "$work/server.json" "$work/offline.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); o = json.load(open(sys.argv[2]))
def cell(r, key):
    n = r["generated_samples"]
    wall = r["start_test_wall_s"]
    before, peak = r.get("rss_before_bytes"), r.get("peak_rss_bytes")
    per = wall * 1e9 / n
    if before is None or peak is None:
        return f"{wall:.3f} s | {per:.0f} | n/a"
    # Per sample: an Offline test is one query of n samples.
    return f"{wall:.3f} s | {per:.0f} | {(peak - before) / n:.1f} B"
print(f"| {s['generated_samples']:,} / {o['generated_samples']:,} | {cell(s, 'q')} | {cell(o, 's')} |")
PY
done
echo
echo "Server: wall includes the N/1M s of scheduled time; ns/query is wall / queries."
echo
echo "### Report generation (reports::generate: summary.json, charts, CSV, report.html)"
echo
echo "| samples | records.jsonl | wall | CPU (user+sys) | µs/sample | max RSS | RSS / sample |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for n in $report_sizes; do
  dir="$root/.cache/bench/report-$n-$tokens"
  if [ ! -f "$dir/records.jsonl" ]; then
    rm -rf "$dir"; mkdir -p "$(dirname "$dir")"
    "$bin/synthetic_run" "$dir" "$n" "$tokens" > /dev/null
  fi
  cat "$dir/records.jsonl" > /dev/null # page cache warm, as after a run
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$bin/report" "$dir" > /dev/null
  read -r wall user sys rss_kb < "$work/time"
  size=$(stat -c %s "$dir/records.jsonl")
  python3 -c "
n=$n; wall=$wall; cpu=$user+$sys; rss=$rss_kb*1024; size=$size
print(f'| {n:,} | {size/2**20:,.1f} MiB | {wall:.2f} s | {cpu:.2f} s | {wall*1e6/n:.2f} | {rss/2**20:,.0f} MiB | {rss/n:,.0f} B |')"
done
echo
echo "command: scripts/bench/scaling.sh \"$sizes\" \"$report_sizes\" $tokens"
