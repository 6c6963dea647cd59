#!/usr/bin/env python3
"""Joins one `harness run` records.jsonl to the simulator's ground truth of
the same run (`harness sim --ground-truth`) and prints how far the
harness's per-request timings are from the server's own.

The run sent `X-Request-Id: <prefix><seq>` (`harness run
--request-id-prefix`) and the simulator names each request
`cmpl-<prefix><seq>`, so records are joined by sequence number, never by
arrival order. Each side is timed from its own start of the request
(harness: `issued_ns`, or LoadGen's `scheduled_ns`; simulator:
`arrival_ns`), so the two processes' clocks need no alignment: the
difference is the time the client added (sending, its own scheduling,
reading and parsing) plus the loopback. Driven by
scripts/bench/client_accuracy.sh.

usage: client_accuracy.py RECORDS_JSONL TRUTH_JSONL PREFIX
"""

import json
import math
import sys


def pct(values, p):
    k = max(1, math.ceil(len(values) * p / 100))
    return values[k - 1]


def main():
    records_path, truth_path, prefix = sys.argv[1:4]
    truth = {}
    for line in open(truth_path):
        g = json.loads(line)
        truth[g["id"]] = g
    rows = {
        "ttft: harness(issued) - sim(arrival)": [],
        "e2e: harness(issued) - sim(arrival)": [],
        "ttft: loadgen(scheduled) - sim(arrival)": [],
        "e2e: loadgen(scheduled) - sim(arrival)": [],
        "issue delay: issued - scheduled": [],
    }
    names = list(rows)
    matched = failed = unmatched = 0
    for line in open(records_path):
        r = json.loads(line)
        if r.get("type") != "query":
            continue
        if r.get("error"):
            failed += 1
            continue
        g = truth.get(f"cmpl-{prefix}{r['seq']}")
        if g is None or g.get("first_token_ns") is None or r.get("first_token_ns") is None:
            unmatched += 1
            continue
        matched += 1
        s_ttft = g["first_token_ns"] - g["arrival_ns"]
        s_e2e = g["end_ns"] - g["arrival_ns"]
        issued, sched = r["issued_ns"], r["scheduled_ns"]
        rows[names[0]].append((r["first_token_ns"] - issued) - s_ttft)
        rows[names[1]].append((r["end_ns"] - issued) - s_e2e)
        rows[names[2]].append((r["first_token_ns"] - sched) - s_ttft)
        rows[names[3]].append((r["end_ns"] - sched) - s_e2e)
        rows[names[4]].append(issued - sched)
    print(f"samples {matched + failed + unmatched} (failed {failed}, unmatched {unmatched}, "
          f"matched {matched}); ground-truth records {len(truth)}")
    if not matched:
        print("no sample matched: nothing to report")
        return 1
    print()
    print("| difference (µs) | n | min | p50 | p99 | max | p99 of abs |")
    print("|---|---|---|---|---|---|---|")
    p99_abs = {}
    for name, values in rows.items():
        values.sort()
        absolute = sorted(abs(v) for v in values)
        p99_abs[name] = pct(absolute, 99) / 1e3
        print(f"| {name} | {len(values)} | {values[0] / 1e3:.1f} | {pct(values, 50) / 1e3:.1f} | "
              f"{pct(values, 99) / 1e3:.1f} | {values[-1] / 1e3:.1f} | {p99_abs[name]:.1f} |")
    ttft, e2e = p99_abs[names[0]], p99_abs[names[1]]
    met = ttft < 1000 and e2e < 1000 and unmatched == 0 and failed == 0
    print()
    print(f"target (p99 |harness - sim| < 1 ms for TTFT and e2e, every sample matched): "
          f"{'MET' if met else 'NOT MET'} (TTFT {ttft:.1f} µs, e2e {e2e:.1f} µs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
