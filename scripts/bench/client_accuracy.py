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

With --summary FILE, the run's headline figures (client-added TTFT and
e2e p99 of |harness - sim|, whether the target was met) are appended to FILE
as one tab-separated row with its condition and competing load;
--summarize FILE prints those rows as one table, the conditions side by
side (each run, and the median over the runs).

usage: client_accuracy.py RECORDS_JSONL TRUTH_JSONL PREFIX
           [--summary FILE --condition quiet|loaded --load TEXT
            --load-share TEXT --loadavg TEXT]
       client_accuracy.py --summarize FILE
"""

import argparse
import json
import math
import statistics
import sys

# How each condition is named in the summary table, in its order.
CONDITIONS = {"quiet": "quiet", "loaded": "under load"}
SUMMARY_FIELDS = ["condition", "load", "load_share", "loadavg", "ttft_us", "e2e_us", "met"]


def pct(values, p):
    k = max(1, math.ceil(len(values) * p / 100))
    return values[k - 1]


def compare(records_path, truth_path, prefix):
    """Prints the per-run table; returns (TTFT p99 |diff| µs, e2e p99 |diff| µs,
    met), or None when no sample matched."""
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
        issued, sched = r["issued_ns"], r.get("scheduled_ns", 0)  # left out when 0
        rows[names[0]].append((r["first_token_ns"] - issued) - s_ttft)
        rows[names[1]].append((r["end_ns"] - issued) - s_e2e)
        rows[names[2]].append((r["first_token_ns"] - sched) - s_ttft)
        rows[names[3]].append((r["end_ns"] - sched) - s_e2e)
        rows[names[4]].append(issued - sched)
    print(f"samples {matched + failed + unmatched} (failed {failed}, unmatched {unmatched}, "
          f"matched {matched}); ground-truth records {len(truth)}")
    if not matched:
        print("no sample matched: nothing to report")
        return None
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
    return ttft, e2e, met


def summarize(path):
    """Prints the conditions side by side from the rows --summary appended."""
    with open(path) as f:
        runs = [dict(zip(SUMMARY_FIELDS, line.rstrip("\n").split("\t"))) for line in f if line.strip()]
    print("client-added time through `harness run`, p99 of |harness(issued) - sim(arrival)| per run (µs)")
    print()
    print("| condition | competing load on the client's CPU | its CPU share per run | load average per run "
          "| TTFT p99 per run | TTFT p99 median | e2e p99 per run | e2e p99 median | target < 1 ms met |")
    print("|---|---|---|---|---|---|---|---|---|")
    for condition, name in CONDITIONS.items():
        rows = [r for r in runs if r["condition"] == condition]
        if not rows:
            continue
        ttft = [float(r["ttft_us"]) for r in rows]
        e2e = [float(r["e2e_us"]) for r in rows]
        met = sum(r["met"] == "MET" for r in rows)
        loads = sorted({r["load"] for r in rows})
        print(f"| {name} | {'; '.join(loads)} | {', '.join(r['load_share'] for r in rows)} "
              f"| {', '.join(r['loadavg'] for r in rows)} "
              f"| {', '.join(f'{v:.1f}' for v in ttft)} | {statistics.median(ttft):.1f} "
              f"| {', '.join(f'{v:.1f}' for v in e2e)} | {statistics.median(e2e):.1f} "
              f"| {met}/{len(rows)} |")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("records", nargs="?")
    parser.add_argument("truth", nargs="?")
    parser.add_argument("prefix", nargs="?")
    parser.add_argument("--summary", help="append this run's headline figures to FILE")
    parser.add_argument("--condition", choices=list(CONDITIONS), default="quiet")
    parser.add_argument("--load", default="none", help="the competing load, as text")
    parser.add_argument("--load-share", default="-", help="the CPU share the competing load got")
    parser.add_argument("--loadavg", default="-", help="the machine's load average before the run")
    parser.add_argument("--summarize", metavar="FILE", help="print the table of the rows in FILE")
    args = parser.parse_args()
    if args.summarize:
        return summarize(args.summarize)
    if not (args.records and args.truth and args.prefix):
        parser.error("RECORDS_JSONL TRUTH_JSONL PREFIX are required")
    result = compare(args.records, args.truth, args.prefix)
    if result is None:
        return 1
    if args.summary:
        ttft, e2e, met = result
        row = [args.condition, args.load, args.load_share, args.loadavg,
               f"{ttft:.1f}", f"{e2e:.1f}", "MET" if met else "NOT MET"]
        if any("\t" in v or "\n" in v for v in row):
            parser.error("--load, --load-share and --loadavg must not hold tabs or newlines")
        with open(args.summary, "a") as f:
            f.write("\t".join(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
