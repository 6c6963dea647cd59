"""Runs MLCommons' own log parsers on logs our tests generated.

Usage: check_parsers.py <inference-checkout> <logs-dir>
<logs-dir> holds one folder per scenario (written by the loadgen `logs` test
with MLPERF_LOG_OUT_DIR set), each with the four log files and
expected.json (our PerformanceSummary). Exits non-zero on any mismatch.
"""
import datetime
import json
import math
import os
import sys


def main():
    checkout, logs = sys.argv[1], sys.argv[2]
    submission = os.path.join(checkout, "tools", "submission")
    sys.path.insert(0, submission)
    from log_parser import MLPerfLog  # noqa: E402
    from submission_checker.parsers.loadgen_parser import LoadgenParser  # noqa: E402

    failures = []
    scenarios = sorted(os.listdir(logs))
    for scenario in scenarios:
        d = os.path.join(logs, scenario)
        detail = os.path.join(d, "mlperf_log_detail.txt")
        expected = json.load(open(os.path.join(d, "expected.json")))
        for name, parser in (("log_parser", MLPerfLog), ("loadgen_parser", LoadgenParser)):
            log = parser(detail, strict=True)

            def check(key, want):
                got = log[key]
                ok = (
                    math.isclose(got, want, rel_tol=1e-5)
                    if isinstance(want, float) and isinstance(got, (int, float))
                    else got == want
                )
                if not ok:
                    failures.append(f"{scenario} {name} {key}: got {got!r}, want {want!r}")

            check("effective_scenario", scenario)
            check("sut_name", "TestSUT")
            check("result_validity", "VALID" if expected["valid"] else "INVALID")
            check("early_stopping_met", expected["early_stopping_met"])
            check("result_min_duration_met", expected["min_duration_met"])
            check("result_mean_latency_ns", expected["sample_latency_mean"])
            check("result_99.00_percentile_latency_ns",
                  expected["latency_percentiles"][4]["sample_latency"])
            check("effective_sample_index_rng_seed", 14771362308971278857)
            check("requested_use_token_latencies", True)
            check("num_errors", 1)
            if scenario == "Server":
                check("result_completed_tokens_per_second",
                      expected["rates"]["completed_tokens_per_second"])
                check("result_first_token_99.00_percentile_latency_ns",
                      expected["token_latency_percentiles"][4]["sample_latency"])
                check("result_time_per_output_token_99.00_percentile_ns",
                      expected["tpot_percentiles"][4]["sample_latency"])
            if scenario == "Offline":
                check("result_tokens_per_second", expected["rates"]["tokens_per_second"])
                check("result_samples_per_second", expected["rates"]["samples_per_second"])
            errors = log.get_errors()
            if len(errors) != 1 or errors[0]["value"] != "Number of tokens need to be greater than 1":
                failures.append(f"{scenario} {name}: get_errors() = {errors!r}")
            print(f"{scenario}: {name} parsed {len(log.get_keys())} keys")
        # The power checker's own reading of power_begin / power_end (it
        # asserts both exist and parses them as UTC).
        from submission_checker.checks.power import power_checker  # noqa: E402
        begin, end = power_checker._get_begin_end_time_from_mlperf_log_detail(d, None)
        if not begin <= end:
            failures.append(f"{scenario} power_checker: power_begin {begin} after power_end {end}")
        # performance_check's reading of the same keys (strptime, no regex).
        fmt = "%m-%d-%Y %H:%M:%S.%f"
        log = LoadgenParser(detail, strict=True)
        b = datetime.datetime.strptime(log["power_begin"], fmt)
        e = datetime.datetime.strptime(log["power_end"], fmt)
        if abs((e - b).total_seconds() - expected["power_window_s"]) > 0.0015:
            failures.append(f"{scenario} power window {e - b}, want {expected['power_window_s']} s")
        sha1 = log["loadgen_file_sha1"]
        if not isinstance(sha1, dict) or "/src/lib.rs" not in sha1:
            failures.append(f"{scenario} loadgen_file_sha1 = {sha1!r}")
    for f in failures:
        print("FAIL", f)
    if failures or not scenarios:
        sys.exit(1)
    print("OK: MLCommons parsers read our logs with the expected values")


if __name__ == "__main__":
    main()
