#!/usr/bin/env python3
"""Checks a soak run directory (see scripts/soak.sh): nothing lost, memory flat.

Reads only the run directory's files: records.jsonl, mlperf_log_detail.txt,
run.json and soak_rss.csv (written by soak.sh). Writes soak.json beside them
and exits non-zero when a check fails.
"""
import argparse
import collections
import csv
import json
import os
import sys

# What the run must keep per query, at most, after warm-up: LoadGen keeps
# every sample's latency (and TTFT/TPOT) for its exact percentiles, and the
# harness its per-query timing for the report's statistics. Anything above
# this is growth a soak must not have.
MAX_GROWTH_BYTES_PER_QUERY = 256


def mllog(path, key):
    with open(path) as f:
        for line in f:
            if line.startswith(":::MLLOG "):
                entry = json.loads(line[len(":::MLLOG "):])
                if entry.get("key") == key:
                    return entry.get("value")
    return None


def slope(points):
    """Least-squares slope of (x, y) points."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--exit-code", type=int, required=True)
    ap.add_argument("--qps", type=float, required=True)
    ap.add_argument("--minutes", type=float, required=True)
    a = ap.parse_args()
    d = a.run_dir
    failures = []

    # Every generated query is in records.jsonl exactly once.
    seqs = collections.Counter()
    errors = collections.Counter()
    phase_end = None
    in_perf = False
    with open(os.path.join(d, "records.jsonl")) as f:
        for line in f:
            rec = json.loads(line)
            kind = rec["type"]
            if kind == "phase":
                in_perf = rec.get("phase") == "performance"
            elif kind == "query" and in_perf:
                seqs[rec["seq"]] += 1
                if rec.get("error"):
                    errors[rec["error"]["kind"]] += 1
            elif kind == "phase_end" and rec.get("phase") == "performance":
                phase_end = rec
    detail = os.path.join(d, "mlperf_log_detail.txt")
    generated = mllog(detail, "generated_query_count")
    per_query = mllog(detail, "generated_samples_per_query") or 1
    expected = None if generated is None else generated * per_query
    duplicates = sum(1 for c in seqs.values() if c > 1)
    missing = None
    if expected is None:
        failures.append("mlperf_log_detail.txt has no generated_query_count")
    else:
        missing = expected - len(seqs)
        if missing or set(seqs) != set(range(expected)):
            failures.append(f"{expected} samples generated, {len(seqs)} distinct in records.jsonl")
    if duplicates:
        failures.append(f"{duplicates} samples recorded more than once")
    if phase_end is None:
        failures.append("records.jsonl has no performance phase_end line")
    else:
        # completed_samples counts failed samples too.
        total = phase_end["completed_samples"]
        if total != len(seqs):
            failures.append(f"phase_end counts {total} samples, records hold {len(seqs)}")
        if phase_end["failed_samples"] != sum(errors.values()):
            failures.append(
                f"phase_end counts {phase_end['failed_samples']} failures, records {sum(errors.values())}")
        if phase_end.get("valid") is not False:
            failures.append("faults were injected but the run is not INVALID")
    if sum(errors.values()) == 0:
        failures.append("no query failed: the faults were not injected")
    if a.exit_code == 0:
        failures.append("the harness exited 0 for an INVALID run")
    with open(os.path.join(d, "run.json")) as f:
        manifest = json.load(f)

    # Memory: after warm-up and before the end (the report is built after
    # the last query, from the files, and is not part of the soak), growth
    # per query and its rate early vs late.
    rows = []
    with open(os.path.join(d, "soak_rss.csv")) as f:
        for r in csv.DictReader(f):
            rows.append((float(r["t_s"]), float(r["harness_rss_kib"]) * 1024,
                         float(r["sim_rss_kib"] or 0) * 1024))
    duration = a.minutes * 60
    warm = [r for r in rows if duration * 0.1 <= r[0] <= duration * 0.95]
    memory = {}
    if len(warm) < 6:
        failures.append(f"only {len(warm)} RSS samples after warm-up")
    else:
        third = len(warm) // 3
        early = slope([(t, m) for t, m, _ in warm[:third]]) / a.qps
        late = slope([(t, m) for t, m, _ in warm[-third:]]) / a.qps
        overall = slope([(t, m) for t, m, _ in warm]) / a.qps
        sim_overall = slope([(t, s) for t, _, s in warm]) / a.qps
        memory = {
            "harness_rss_start_mib": warm[0][1] / 2**20,
            "harness_rss_end_mib": warm[-1][1] / 2**20,
            "harness_rss_max_mib": max(m for _, m, _ in rows) / 2**20,
            "growth_bytes_per_query": overall,
            "growth_bytes_per_query_first_third": early,
            "growth_bytes_per_query_last_third": late,
            "simulator_rss_end_mib": warm[-1][2] / 2**20,
            "simulator_growth_bytes_per_query": sim_overall,
        }
        if overall > MAX_GROWTH_BYTES_PER_QUERY:
            failures.append(f"harness memory grows {overall:.0f} B/query (limit {MAX_GROWTH_BYTES_PER_QUERY})")
        if late > max(2 * early, early + 64):
            failures.append(f"harness memory grows faster late ({late:.0f} B/query) than early ({early:.0f})")
        if sim_overall > MAX_GROWTH_BYTES_PER_QUERY:
            failures.append(f"simulator memory grows {sim_overall:.0f} B/query")

    result = {
        "run_dir": os.path.basename(os.path.normpath(d)),
        "minutes": a.minutes,
        "target_qps": a.qps,
        "exit_code": a.exit_code,
        "status": manifest.get("status"),
        "samples_generated": expected,
        "samples_recorded": len(seqs),
        "samples_missing": missing,
        "samples_duplicated": duplicates,
        "failed_by_kind": dict(sorted(errors.items())),
        "memory": memory,
        "failures": failures,
        "passed": not failures,
    }
    with open(os.path.join(d, "soak.json"), "w") as f:
        json.dump(result, f, indent=2)
    json.dump(result, sys.stdout, indent=2)
    print()
    print("soak: PASS" if not failures else "soak: FAIL\n  " + "\n  ".join(failures))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
