#!/usr/bin/env python3
"""How `harness run` scales over client cores: the same LoadGen Server test
as scripts/bench/sut_vs_python.py (same simulator profile, same token-id
prompts, same per-run measurements: LoadGen's verdict, client CPU per query
split into user and kernel, context switches, client-added TTFT against the
simulator's ground truth), with the client confined by taskset to each CPU
set in --client-cpus in turn. Driven by scripts/bench/client_cores.sh.

Two modes, chosen by whether the simulator has CPUs of its own:
- limit (the simulator's CPUs are disjoint from every client's): a ladder of
  target QPS per CPU set, doubled while the top rung passes, then --bisect
  steps of geometric bisection; reports each set's highest target QPS VALID
  in every repeat and the ratio to the first set's (near-linear scaling over
  2 cores is >= 1.8x). Needs 4 cores for 1 vs 2 client cores, since the
  simulator needs about as much CPU as the client at the client's limit;
- fixed (a client set shares a CPU with the simulator, as it must on a
  2-core machine): the --rates only, and the cost of spreading the client
  over more cores: CPU and context switches per query at equal rates. A
  limit measured there would be the machine's, not the client's, so none
  is reported.

Every rate runs each CPU set --repeats times, the sets interleaved; runs
during which other processes used more than --busy-cores are set aside and
repeated (up to twice). Prints markdown.
"""

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sut_vs_python as svp  # noqa: E402


def cpus_of(spec):
    """The CPU numbers of a taskset list such as "0,2-3"."""
    out = set()
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def label(spec):
    n = len(cpus_of(spec))
    return f"{n} core{'s' if n > 1 else ''} (CPU {spec})"


def run(bench, a, spec, qps, tag, out):
    a.client_cpu = spec
    row = bench.run("harness", qps, tag)
    # The helpers of sut_vs_python group rows by "tool": here a CPU set.
    row["tool"] = label(spec)
    row["client_cpus"] = spec
    with open(os.path.join(a.out, "client_cores.jsonl"), "a") as f:
        f.write(json.dumps(row) + "\n")
    out.append(row)
    return row


def table(rows, busy, a, specs, limit):
    f2 = lambda v: f"{v:.2f}"  # noqa: E731
    f3 = lambda v: f"{v:.3f}"  # noqa: E731
    shared = sorted(set().union(*(cpus_of(s) for s in specs)) & cpus_of(a.sim_cpu))
    print(f"machine: {os.cpu_count()} cores; simulator (`--profile {a.profile}`) on CPU "
          f"{a.sim_cpu}; client CPU sets: {', '.join(label(s) for s in specs)}; "
          f"{a.seconds} s per run, {a.repeats} repeat(s) per rate, the sets interleaved; "
          f"{a.output_tokens} output tokens, the bundled dataset's token ids as prompts.")
    if shared:
        print(f"Mode: fixed rates. The client shares CPU {','.join(map(str, shared))} with the "
              "simulator, so the figures below are the cost of spreading the client over "
              "more cores at equal rates, not its limit.")
    else:
        print("Mode: limit (ladder, then bisection, per CPU set); the simulator has its own CPUs.")
    print(svp.load_line(rows, busy))
    print("| client CPUs | target QPS | VALID runs | completed/s (LoadGen) | client CPU ms/query "
          "| user / kernel ms/query | context switches / query | client-added TTFT p50 / p99 ms "
          "| client / simulator cores | others' CPU (max) |")
    print("|---|---:|---|---:|---:|---|---:|---|---|---:|")
    for spec in specs:
        name = label(spec)
        for q in sorted({r["target_qps"] for r in rows if r["tool"] == name}):
            rs = [r for r in rows if r["tool"] == name and r["target_qps"] == q]
            print(f"| {name} | {q:,} | {sum(r['valid'] for r in rs)}/{len(rs)} | "
                  f"{svp.span([r['completed_per_s'] for r in rs], lambda v: f'{v:,.0f}')} | "
                  f"{svp.span([r['cpu_ms_per_query'] for r in rs], f3)} | "
                  f"{svp.span([r['cpu_user_ms_per_query'] for r in rs], f3)} / "
                  f"{svp.span([r['cpu_kernel_ms_per_query'] for r in rs], f3)} | "
                  f"{svp.span([r['context_switches_per_query'] for r in rs], f2)} | "
                  f"{svp.span([r['ttft_added_p50_ms'] for r in rs], f2)} / "
                  f"{svp.span([r['ttft_added_p99_ms'] for r in rs], f2)} | "
                  f"{svp.cores(rs, 'cpu_s')} / {svp.cores(rs, 'sim_cpu_s')} | "
                  f"{max(r['others_cpu_cores'] for r in rs):.2f} |")
    print()
    base, rest = specs[0], specs[1:]
    for spec in rest:
        for q in sorted({r["target_qps"] for r in rows}):
            pair = {}
            for s in (base, spec):
                rs = [r for r in rows if r["tool"] == label(s) and r["target_qps"] == q]
                if not rs or not all(r["valid"] for r in rs):
                    break
                pair[s] = rs
            else:
                b = [r["cpu_ms_per_query"] for r in pair[base]]
                m = [r["cpu_ms_per_query"] for r in pair[spec]]
                bc = statistics.median(r["context_switches_per_query"] for r in pair[base])
                mc = statistics.median(r["context_switches_per_query"] for r in pair[spec])
                print(f"- CPU per query at {q:,} QPS (both VALID), {label(spec)} / {label(base)}: "
                      f"{statistics.median(m) / statistics.median(b):.2f} (over the repeats "
                      f"{min(m) / max(b):.2f} to {max(m) / min(b):.2f}); context switches per "
                      f"query {mc:.2f} / {bc:.2f}")
    if not limit:
        print(f"- max VALID QPS over client cores: not measured on this {os.cpu_count()}-core "
              "machine (the simulator needs about as much CPU as the client at the client's "
              "limit: 1 vs 2 client cores needs 4 cores, 2 of them the simulator's); goal "
              "(issue 15): near-linear scaling")
        return
    brackets = {s: svp.bracket(rows, label(s)) for s in specs}
    for s in specs:
        lo, hi = brackets[s]
        upper = f"not VALID in every repeat at {hi:,}" if hi else "never failed: a lower bound"
        print(f"- highest target QPS VALID in every repeat, {label(s)}: {lo or 0:,} ({upper})")
    bl, bh = brackets[base]
    for s in rest:
        lo, hi = brackets[s]
        if lo and bl:
            n = len(cpus_of(s)) / len(cpus_of(base))
            allow = ((f"{lo / bh:.2f}x" if bh else "no lower bound")
                     + " to " + (f"{hi / bl:.2f}x" if hi else "unbounded"))
            print(f"- max VALID QPS, {label(s)} / {label(base)}: {lo / bl:.2f}x (the brackets "
                  f"allow {allow}); linear would be {n:.0f}x; goal (issue 15): near-linear "
                  f"(>= {0.9 * n:.1f}x)")


def main():
    p = argparse.ArgumentParser()
    svp.add_run_args(p, 18433)
    p.add_argument("--client-cpus", default=None,
                   help='taskset CPU lists, the first the baseline (default: "0 0,1")')
    p.add_argument("--sim-cpu", default=None,
                   help="the simulator's taskset CPU list (default: 2,3 on 4+ cores, else 1)")
    p.add_argument("--rates", default="1000 2000 4000",
                   help="target QPS: every rate in fixed mode, the ladder's start in limit mode")
    p.add_argument("--max-qps", type=int, default=128000)
    a = p.parse_args()
    big = (os.cpu_count() or 1) >= 4
    a.sim_cpu = a.sim_cpu or ("2,3" if big else "1")
    specs = (a.client_cpus or "0 0,1").split()
    a.python = a.python_sut = None
    os.makedirs(a.out, exist_ok=True)
    limit = not any(cpus_of(s) & cpus_of(a.sim_cpu) for s in specs)
    bench = svp.Bench(a)
    rows = []
    ladder = [int(q) for q in a.rates.split()]
    if not limit:
        for q in ladder:
            for r in range(1, a.repeats + 1):
                for s in specs:
                    svp.log(f"{label(s)} {q} QPS, run {r}/{a.repeats}")
                    run(bench, a, s, q, f"c{len(cpus_of(s))}r{r}", rows)
    else:
        spec_of = {label(s): s for s in specs}
        svp.find_limits(
            list(spec_of), {n: list(ladder) for n in spec_of}, {n: a.max_qps for n in spec_of},
            a, lambda n, q, tag: run(bench, a, spec_of[n], q,
                                     f"c{len(cpus_of(spec_of[n]))}{tag}", rows), rows)
    table(rows, bench.busy, a, specs, limit)


if __name__ == "__main__":
    main()
