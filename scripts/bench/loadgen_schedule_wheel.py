#!/usr/bin/env python3
"""The same benchmark on the real LoadGen wheel: times GenerateQueries for N
Server queries (from LoadGen's own trace) and reports peak RSS per query.

Usage: $LOADGEN_PYTHON scripts/bench/loadgen_schedule_wheel.py [queries] [qps]
Needs about 450 bytes of memory per query. max_duration cuts issuing short
after 50 ms, so the run is mostly generation.
"""
import array
import json
import os
import resource
import sys
import tempfile
import time

import mlperf_loadgen as lg

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
qps = float(sys.argv[2]) if len(sys.argv) > 2 else 100_000.0

s = lg.TestSettings()
s.scenario = lg.TestScenario.Server
s.mode = lg.TestMode.PerformanceOnly
s.server_target_qps = qps
s.min_duration_ms = int(n / qps * 1000 * 0.99)
s.min_query_count = n
s.max_duration_ms = 50
s.qsl_rng_seed = 2085463073848966840
s.sample_index_rng_seed = 2747215439041700203
s.schedule_rng_seed = 16159082839903944936

payload = array.array("i", [7])
addr, _ = payload.buffer_info()


def issue(queries):
    lg.QuerySamplesComplete([lg.QuerySampleResponse(q.id, addr, 4) for q in queries])


rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
sut = lg.ConstructSUT(issue, lambda: None)
qsl = lg.ConstructQSL(13368, 13368, lambda x: None, lambda x: None)
with tempfile.TemporaryDirectory() as out:
    log_output = lg.LogOutputSettings()
    log_output.outdir = out
    log_settings = lg.LogSettings()
    log_settings.log_output = log_output
    log_settings.enable_trace = True
    start = time.time()
    lg.StartTestWithLogSettings(sut, qsl, s, log_settings, "no-audit.config")
    wall = time.time() - start
    duration_us = None
    with open(os.path.join(out, "mlperf_log_trace.json")) as f:
        for line in f:
            if '"name":"GenerateQueries"' in line:
                duration_us = json.loads(line.strip().rstrip(","))["dur"]
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(f"LoadGen wheel: {n} Server queries at {qps:g} qps")
print(f"GenerateQueries (s)    : {duration_us / 1e6:.3f}")
print(f"ns per query           : {duration_us * 1e3 / n:.1f}")
print(f"peak RSS growth / query: {(rss - rss_before) / n:.1f}")
print(f"StartTest wall (s)     : {wall:.3f}")
