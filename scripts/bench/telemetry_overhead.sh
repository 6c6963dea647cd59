#!/usr/bin/env bash
# Benchmark: CPU cost of the telemetry collector at the default 1 s interval.
# Usage: scripts/bench/telemetry_overhead.sh [seconds] [interval_ms] [backends] [repeats]
# Defaults: 60 s at 1000 ms, 1 backend, 3 repeats. A separate Python process
# serves a recorded vLLM v1 /metrics (two engines, ~540 lines) so that serving
# it is not counted; the collector process scrapes it, reads NVML (one warning
# where there is no driver), host and process stats, and writes metrics.jsonl
# and metrics.csv. The figure is that process's CPU time (user + system, all
# threads) over the collection, as % of one core. Target: < 1%.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-60}
interval_ms=${2:-1000}
backends=${3:-1}
repeats=${4:-3}
cargo build --release --quiet -p telemetry --example overhead_bench
bin="${CARGO_TARGET_DIR:-target}/release/examples/overhead_bench"

work=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
python3 -u - tests/fixtures/metrics/vllm_v1_b.txt >"$work/port" <<'PY' &
import http.server, sys
body = open(sys.argv[1], "rb").read()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
PY
server_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
port=$(cat "$work/port")
urls=()
for _ in $(seq "$backends"); do urls+=("http://127.0.0.1:$port"); done

echo "machine: $(nproc) cores, $(uname -srm), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "command: $bin $seconds $interval_ms ${urls[*]}  (x$repeats)"
for _ in $(seq "$repeats"); do
  "$bin" "$seconds" "$interval_ms" "${urls[@]}"
done
