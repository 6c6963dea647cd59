#!/usr/bin/env python3
"""Runs the real MLPerf LoadGen (the mlcommons-loadgen wheel) on test cases and
reports what it did, for loadgen's differential test (loadgen/tests/differential.rs).

Usage:  python loadgen_probe.py < cases.json > results.json

A case (JSON object):
  name            label, echoed back
  scenario, mode  TestSettings.scenario / .mode before any config ("Server", "AccuracyOnly"...)
  settings        {attribute: value} set on TestSettings before the configs
  configs         [{"text": ..., "model": ..., "scenario": ..., "conf_type": 1,
                    "missing": false}]  FromConfig calls, in order; "missing"
                  passes a path that does not exist
  settings_after  {attribute: value} set after the configs
  audit_config    text of an audit.config that StartTest finds, or null
  qsl             [total_sample_count, performance_sample_count]
  run             true: StartTest with these settings; false: only collect
                  FromConfig's results (a trivial Offline run flushes its log)
  find_peak       {"fail_above_queries": N, "fail_sleep_s": S}: for
                  FindPeakPerformance, a run with more than N queries misses
                  its latency bound (completions wait S seconds)

A result:
  name, rc (FromConfig return codes), settings (every TestSettings field after
  the configs; doubles as repr strings so nan/inf survive JSON), events
  (["load", [...]], ["query", [...]], ["unload", [...]], and ["flush", n] in
  find-peak runs, in order), messages (generic_message values), generated
  ([generated_query_count, generated_samples_per_query, generated_query_duration]
  per GenerateQueries call), effective ({effective_* key: value}), errors and
  warnings ([key, message]), accuracy ([[seq_id, qsl_idx], ...]), or "error".

Each case runs in its own process: FromConfig counts user.conf loads in a
process-wide static. The SUT completes every query inline, from LoadGen's own
issuing thread (completing from short-lived threads crashes the 6.0.17 wheel).
"""
import array
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time

FIELDS = [
    "single_stream_expected_latency_ns", "single_stream_target_latency_percentile",
    "multi_stream_expected_latency_ns", "multi_stream_target_latency_percentile",
    "multi_stream_samples_per_query", "server_target_qps", "server_target_latency_ns",
    "server_target_latency_percentile", "server_coalesce_queries",
    "server_find_peak_qps_decimals_of_precision", "server_find_peak_qps_boundary_step_size",
    "server_max_async_queries", "server_num_issue_query_threads", "offline_expected_qps",
    "sample_concatenate_permutation", "min_duration_ms", "max_duration_ms",
    "min_query_count", "max_query_count", "qsl_rng_seed", "sample_index_rng_seed",
    "schedule_rng_seed", "accuracy_log_rng_seed", "accuracy_log_probability",
    "accuracy_log_sampling_target", "test05", "test05_qsl_rng_seed",
    "test05_sample_index_rng_seed", "test05_schedule_rng_seed", "print_timestamps",
    "performance_issue_unique", "performance_issue_same", "performance_issue_same_index",
    "performance_sample_count_override", "accuracy_sample_count_override",
    "use_token_latencies", "ttft_latency", "tpot_latency", "infer_token_latencies",
]


def dump_settings(lg, s):
    out = {"scenario": s.scenario.name, "mode": s.mode.name}
    for f in FIELDS:
        v = getattr(s, f)
        out[f] = repr(float(v)) if isinstance(v, float) else v
    return out


def apply_attrs(lg, s, attrs):
    for k, v in (attrs or {}).items():
        if k == "scenario":
            v = getattr(lg.TestScenario, v)
        elif k == "mode":
            v = getattr(lg.TestMode, v)
        setattr(s, k, v)


def parse_detail(path):
    generated, effective, errors, warnings, messages = [], {}, [], [], []
    current = None
    with open(path) as f:
        for line in f:
            if not line.startswith(":::MLLOG "):
                continue
            try:
                d = json.loads(line[len(":::MLLOG "):])
            except ValueError:
                continue
            key, value, meta = d["key"], d["value"], d.get("metadata", {})
            if meta.get("is_error"):
                errors.append([key, value])
            elif meta.get("is_warning"):
                warnings.append([key, value])
            if key == "generated_query_count":
                current = [value]
            elif key == "generated_samples_per_query" and current is not None:
                current.append(value)
            elif key == "generated_query_duration" and current is not None:
                current.append(value)
                generated.append(current)
                current = None
            elif key == "generic_message":
                messages.append(value)
            elif key.startswith("effective_"):
                effective[key] = repr(value) if isinstance(value, float) else value
    return generated, effective, errors, warnings, messages


def run_case(case, workdir):
    import mlperf_loadgen as lg

    s = lg.TestSettings()
    s.scenario = getattr(lg.TestScenario, case.get("scenario", "SingleStream"))
    s.mode = getattr(lg.TestMode, case.get("mode", "PerformanceOnly"))
    apply_attrs(lg, s, case.get("settings"))
    rcs = []
    for i, c in enumerate(case.get("configs") or []):
        path = os.path.join(workdir, f"conf{i}.conf")
        if c.get("missing"):
            path = os.path.join(workdir, "missing", "user.conf")
        else:
            with open(path, "w", newline="") as f:
                f.write(c["text"])
        rcs.append(s.FromConfig(path, c["model"], c["scenario"], c.get("conf_type", 1)))
    apply_attrs(lg, s, case.get("settings_after"))
    result = {"name": case["name"], "rc": rcs, "settings": dump_settings(lg, s)}

    run = case.get("run", True)
    if not run:
        # A trivial run, only so that FromConfig's queued errors reach a detail log.
        s = lg.TestSettings()
        s.scenario = lg.TestScenario.Offline
        s.mode = lg.TestMode.PerformanceOnly
        s.min_duration_ms = 0
        s.min_query_count = 1
        s.offline_expected_qps = 1

    audit = os.path.join(workdir, "audit.config")
    if case.get("audit_config") is not None:
        with open(audit, "w", newline="") as f:
            f.write(case["audit_config"])

    tokens = bool(s.use_token_latencies) and s.scenario != lg.TestScenario.Offline
    payload = array.array("i", [7, 8])
    addr, _ = payload.buffer_info()
    events = []

    def complete(query_samples):
        if tokens:
            lg.FirstTokenComplete([lg.QuerySampleResponse(q.id, addr, 4) for q in query_samples])
        lg.QuerySamplesComplete([lg.QuerySampleResponse(q.id, addr, 8, 2) for q in query_samples])

    # FindPeakPerformance: hold completions until FlushQueries (called once
    # a run has issued everything), then pass the run (complete at once) or
    # fail it (complete after more than the latency bound) depending only
    # on how many queries it had, which is a pure function of its target QPS.
    find_peak = case.get("find_peak")
    held = []

    def issue(query_samples):
        events.append(["query", [q.index for q in query_samples]])
        if find_peak:
            held.extend(query_samples)
        else:
            complete(query_samples)

    def flush():
        if not find_peak:
            return
        events.append(["flush", len(held)])
        if len(held) > find_peak["fail_above_queries"]:
            time.sleep(find_peak["fail_sleep_s"])
        complete(held)
        held.clear()

    def load(indices):
        events.append(["load", list(indices)])

    def unload(indices):
        events.append(["unload", list(indices)])

    total, perf = case.get("qsl", [16, 16]) if run else (4, 4)
    sut = lg.ConstructSUT(issue, flush)
    qsl = lg.ConstructQSL(total, perf, load, unload)
    outdir = os.path.join(workdir, "out")
    os.makedirs(outdir, exist_ok=True)
    log_output = lg.LogOutputSettings()
    log_output.outdir = outdir
    log_settings = lg.LogSettings()
    log_settings.log_output = log_output
    log_settings.enable_trace = False
    lg.StartTestWithLogSettings(sut, qsl, s, log_settings, audit)
    lg.DestroyQSL(qsl)
    lg.DestroySUT(sut)

    generated, effective, errors, warnings, messages = parse_detail(
        os.path.join(outdir, "mlperf_log_detail.txt"))
    # Messages may name files in the scratch directory; keep machine paths out.
    def scrub(entries):
        return [[k, v.replace(workdir, "<workdir>") if isinstance(v, str) else v]
                for k, v in entries]

    result["errors"] = scrub(errors)
    result["warnings"] = scrub(warnings)
    if run:
        with open(os.path.join(outdir, "mlperf_log_accuracy.json")) as f:
            acc = json.load(f)
        result.update(events=events, generated=generated, effective=effective,
                      messages=messages,
                      accuracy=[[e["seq_id"], e["qsl_idx"]] for e in acc])
    return result


def run_one_process():
    case = json.load(sys.stdin)
    with tempfile.TemporaryDirectory() as workdir:
        # LoadGen may print to stdout (print_timestamps); keep the result apart.
        result = run_case(case, workdir)
    with open(os.environ["PROBE_RESULT"], "w") as f:
        json.dump(result, f)


def spawn(case, timeout):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        env = dict(os.environ, PROBE_RESULT=out)
        try:
            p = subprocess.run([sys.executable, os.path.abspath(__file__), "--one"],
                               input=json.dumps(case), capture_output=True, text=True,
                               timeout=timeout, env=env, cwd=tmp)
        except subprocess.TimeoutExpired:
            return {"name": case["name"], "error": f"timed out after {timeout} s"}
        if p.returncode != 0 or not os.path.exists(out):
            return {"name": case["name"],
                    "error": f"exit {p.returncode}: {p.stderr[-2000:]}"}
        with open(out) as f:
            return json.load(f)


def main():
    if sys.argv[1:] == ["--one"]:
        run_one_process()
        return
    cases = json.load(sys.stdin)
    jobs = int(os.environ.get("PROBE_JOBS", "2"))
    timeout = float(os.environ.get("PROBE_TIMEOUT_S", "120"))
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(lambda c: spawn(c, timeout), cases))
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
