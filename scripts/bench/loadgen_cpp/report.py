#!/usr/bin/env python3
"""Helper of scripts/bench/loadgen_issue.sh.

parse IMPL DIR DRIVER_JSON SCENARIO QPS LOAD_BEFORE LOAD_AFTER BUSY_CORES ATTEMPT
    Turns one run into a result line: for cpp and cpp-jemalloc from LoadGen
    C++'s mlperf_log_summary.txt and mlperf_log_detail.txt in DIR plus the
    driver's JSON line, for rust from issue_bench's JSON line (LoadGen's
    Server early-stopping check applied here). "busy" is set when other
    processes used more than BUSY_CORES cores during the run.
valid-at RESULTS_JSONL IMPL QPS
    Prints 1 when IMPL ran at QPS and every kept run there was VALID, else 0.
next-rung RESULTS_JSONL IMPL
    Prints the geometric middle of IMPL's bracket (its highest rung VALID in
    every repeat, and the lowest rung above that was not), to 3 significant
    digits; nothing when there is no bracket or it is within 5%.
table RESULTS_JSONL [BUSY_JSONL]
    Prints the markdown tables of a whole benchmark.
disk-floor RESULTS_JSONL FILE LOAD_BEFORE
    Writes as many bytes as the last rust Offline run's records.jsonl to
    FILE with dd (1 MiB blocks, conv=fdatasync), times it, removes FILE and
    appends a "disk-floor" row to RESULTS_JSONL: what the disk alone takes
    for the bytes the Rust side writes and LoadGen C++ does not.
wait-quiet MAX_CORES TIMEOUT_S
    Waits (up to TIMEOUT_S) until the machine's busy time over a 3 s window
    is below MAX_CORES cores; prints what it saw on stderr.
measure CMD...
    Runs CMD and prints its stdout (one JSON object) with
    "others_cpu_cores" added: the CPU time everything else on the machine
    used during the run (all busy time in /proc/stat minus CMD's own), per
    second of wall time, and "steal_cores": the time the hypervisor took
    from the machine's virtual CPUs meanwhile, per second of wall time. The
    1-minute load average cannot tell our own previous run from someone
    else's compile; this can.
"""

import json
import math
import os
import pathlib
import re
import resource
import statistics
import subprocess
import sys
import time


def parse(impl, directory, driver_json, scenario, qps, load_before, load_after, busy_cores,
          attempt):
    if impl in ("rust", "rust-norecords"):
        row = json.loads(driver_json)
        row["impl"] = impl
        if row["scenario"] == "Server":
            row["valid_without_early_stopping"] = row["valid"]
            row["early_stopping_met"] = server_early_stopping(row["samples_issued"],
                                                              row["over_latency"])
            row["valid"] = row["valid"] and row["early_stopping_met"]
        else:
            row["valid_without_early_stopping"] = row["valid"]
        row["load_before"] = float(load_before)
        row["load_after"] = float(load_after)
    else:
        row = parse_cpp(impl, directory, driver_json, scenario, qps, load_before, load_after)
    row["attempt"] = int(attempt)
    row["busy"] = (row.get("others_cpu_cores") or 0.0) > float(busy_cores)
    print(json.dumps(row))


def parse_cpp(impl, directory, driver_json, scenario, qps, load_before, load_after):
    d = pathlib.Path(directory)
    summary = {}
    for line in (d / "mlperf_log_summary.txt").read_text().splitlines():
        m = re.match(r"^\s*(.*?)\s*:\s*(.*?)\s*$", line)
        if m:
            summary.setdefault(m.group(1), m.group(2))
    detail = {}
    for line in (d / "mlperf_log_detail.txt").read_text().splitlines():
        if line.startswith(":::MLLOG "):
            entry = json.loads(line[len(":::MLLOG "):])
            detail.setdefault(entry["key"], entry["value"])
    driver = json.loads(driver_json)

    def num(key):
        v = summary.get(key)
        return float(v) if v is not None else None

    yes = lambda key: summary.get(key) == "Yes"  # noqa: E731
    queries = int(detail["generated_query_count"])
    spq = int(detail["generated_samples_per_query"])
    server = scenario == "server"
    perf_ok = yes("Performance constraints satisfied") if server else True
    row = {
        "impl": impl,
        "scenario": "Server" if server else "Offline",
        "target_qps": float(qps),
        "generated_queries": queries,
        "generated_samples": queries * spq,
        "completed_per_s": num("Completed samples per second" if server else "Samples per second"),
        "scheduled_per_s": num("Scheduled samples per second"),
        "latency_p50_ns": num("50.00 percentile latency (ns)"),
        "latency_p99_ns": num("99.00 percentile latency (ns)"),
        "latency_max_ns": num("Max latency (ns)"),
        "perf_constraints_met": perf_ok,
        "min_duration_met": yes("Min duration satisfied"),
        "min_queries_met": yes("Min queries satisfied"),
        "early_stopping_met": yes("Early stopping satisfied"),
        "valid": summary.get("Result is") == "VALID",
        # The rule issue_bench applies (no early stopping), for a like-for-like column.
        "valid_without_early_stopping": perf_ok
        and yes("Min duration satisfied")
        and yes("Min queries satisfied"),
        "start_test_wall_s": driver["start_test_wall_s"],
        "rss_before_bytes": driver["rss_before_bytes"],
        "peak_rss_bytes": driver["peak_rss_bytes"],
        "peak_rss_growth_per_query": (driver["peak_rss_bytes"] - driver["rss_before_bytes"])
        / max(queries, 1),
        "others_cpu_cores": driver.get("others_cpu_cores"),
        "steal_cores": driver.get("steal_cores"),
        "cpu_s": driver.get("cpu_s"),
        "load_before": float(load_before),
        "load_after": float(load_after),
        "timer_slack_ns": driver.get("timer_slack_ns"),
    }
    return row


def _beta_reg_upper_odds(h, t, p):
    """P[at most t of h + t samples exceed the p-quantile]: LoadGen's
    early-stopping odds (regularized incomplete beta I_p(h, t + 1), via the
    terminating hypergeometric series LoadGen uses)."""
    a, b, x = h, 1 + t, p
    term, total, i = 1.0, 1.0, 0
    z = x / (x - 1)
    while abs(term) > 2.0 ** -33:
        term *= (1 - b + i) * z / (1 + a + i)
        total += term
        i += 1
    lbeta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    return math.exp(a * math.log(x) + (b - 1) * math.log(1 - x) - lbeta) / a * total


def server_early_stopping(n, t, p=0.99, confidence=0.99):
    """LoadGen's Server early-stopping check (early_stopping.cc, results.cc)
    for n samples of which t exceed the target latency: passes when n >= h + t,
    h the fewest under-target samples that make t overs unlikely enough. A
    fresh finder per check, as LoadGen builds one per EarlyStopping call."""
    y1 = math.ceil(math.log(1 - confidence) / math.log(p))
    lo = int(t * p / (1 - p) + y1)
    if n < lo + t:  # the search cannot end below lo
        return False
    hi = int(t * y1 + y1 + 1)
    count = hi - lo
    while count > 0:  # lower bound of odds < 1 - confidence
        step = count // 2
        if _beta_reg_upper_odds(lo + step, t, p) < 1 - confidence:
            count = step
        else:
            lo += step + 1
            count -= step + 1
    return n >= lo + t


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt_ns(ns):
    if ns is None:
        return "n/a"
    if ns < 1e3:
        return f"{ns:.0f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns / 1e6:.2f} ms"


def fmt_rate(r):
    return "n/a" if r is None else f"{r / 1e3:,.1f}k"


def slope(rows):
    """Least-squares bytes of peak RSS per generated query."""
    pts = [(r["generated_queries"], r["peak_rss_bytes"]) for r in rows]
    if len({x for x, _ in pts}) < 2:
        return None
    mx = statistics.mean(x for x, _ in pts)
    my = statistics.mean(y for _, y in pts)
    num = sum((x - mx) * (y - my) for x, y in pts)
    den = sum((x - mx) ** 2 for x, _ in pts)
    return num / den


IMPLS = ("rust", "cpp", "cpp-jemalloc", "rust-norecords")


def load_rows(path):
    return [json.loads(line) for line in open(path) if line.strip()]


def valid_rungs(rows, impl):
    """{qps: VALID in every kept repeat} for IMPL's Server runs."""
    out = {}
    for r in rows:
        if r["impl"] == impl and r["scenario"] == "Server":
            out[r["target_qps"]] = out.get(r["target_qps"], True) and bool(r["valid"])
    return out


def bracket(rows, impl):
    """(highest rung VALID in every repeat, lowest rung above it that was not)."""
    rungs = valid_rungs(rows, impl)
    ok = [q for q, v in rungs.items() if v]
    lo = max(ok) if ok else None
    above = [q for q, v in rungs.items() if not v and (lo is None or q > lo)]
    hi = min(above) if above else None
    return lo, hi


def valid_at(path, impl, qps):
    rungs = valid_rungs(load_rows(path), impl)
    print(int(rungs.get(float(qps), False)))


def next_rung(path, impl):
    lo, hi = bracket(load_rows(path), impl)
    if lo is None or hi is None or hi / lo < 1.05:
        return
    mid = math.sqrt(lo * hi)
    digits = 3 - int(math.floor(math.log10(mid))) - 1
    mid = round(mid, digits)
    if lo < mid < hi:
        print(int(mid))


def span(values, fmt):
    """median [min-max] of the non-missing values."""
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    if len(values) == 1:
        return fmt(values[0])
    return f"{fmt(statistics.median(values))} [{fmt(min(values))}-{fmt(max(values))}]"


def max_of(rows, key):
    """The largest of `key` over rows, or n/a where no row has it (runs
    recorded before the field existed)."""
    values = [r[key] for r in rows if r.get(key) is not None]
    return f"{max(values):.2f}" if values else "n/a"


def table(path, busy_path=None):
    rows = load_rows(path)
    busy = load_rows(busy_path) if busy_path and os.path.exists(busy_path) else []
    server = [r for r in rows if r["scenario"] == "Server"]
    offline = [r for r in rows if r["scenario"] == "Offline"]
    floors = [r for r in rows if r["scenario"] == "DiskFloor"]
    impls = [i for i in IMPLS if any(r["impl"] == i for r in server)]
    offline_impls = [i for i in IMPLS if any(r["impl"] == i for r in offline)]
    loads = [r["load_before"] for r in rows] + [r["load_after"] for r in rows]
    print(f"Load average (1 min) before/after the runs: min {min(loads):.2f}, "
          f"median {med(loads):.2f}, max {max(loads):.2f}")
    others = [r["others_cpu_cores"] for r in server + offline
              if r.get("others_cpu_cores") is not None]
    if others:
        print(f"CPU used by other processes during the kept runs (cores): median "
              f"{med(others):.2f}, max {max(others):.2f}; runs set aside as busy and "
              f"repeated: {len(busy)}; kept runs still busy after two repeats: "
              f"{sum(bool(r.get('busy')) for r in rows)}")
    steal = [r["steal_cores"] for r in server + offline if r.get("steal_cores") is not None]
    if steal:
        print(f"CPU the hypervisor took from this VM during the kept runs (steal, cores): "
              f"median {med(steal):.2f}, max {max(steal):.2f}; not counted as busy: the "
              f"Rust side's own disk writes cause it where the host emulates the disk")
    print()

    print("### Server (instant SUT, target latency at p99; median [min-max] over the repeats)\n")
    print("| target QPS | impl | VALID runs | completed/s | p99 latency | max latency "
          "| > target | issue lateness p50 / p99 / max | peak RSS | RSS B/query "
          "| others' CPU (max) | steal (max) |")
    print("|---:|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for qps in sorted({r["target_qps"] for r in server}):
        for impl in impls:
            rs = [r for r in server if r["target_qps"] == qps and r["impl"] == impl]
            if not rs:
                continue
            n_valid = sum(bool(r["valid"]) for r in rs)
            n_rule = sum(bool(r["valid_without_early_stopping"]) for r in rs)
            valid = f"{n_valid}/{len(rs)} ({n_rule}/{len(rs)} w/o early stopping)"
            lateness = "n/a (not logged)"
            over = "n/a"
            if impl == "rust":
                over = span([r["over_latency"] / max(r["samples_issued"], 1) for r in rs],
                            lambda v: f"{v:.3%}")
                lateness = " / ".join(
                    fmt_ns(med([r[k] for r in rs]))
                    for k in ("issue_lateness_p50_ns", "issue_lateness_p99_ns",
                              "issue_lateness_max_ns"))
            print(f"| {qps:,.0f} | {impl} | {valid} | "
                  f"{fmt_rate(med([r['completed_per_s'] for r in rs]))} | "
                  f"{span([r['latency_p99_ns'] for r in rs], fmt_ns)} | "
                  f"{span([r['latency_max_ns'] for r in rs], fmt_ns)} | {over} | {lateness} | "
                  f"{med([r['peak_rss_bytes'] for r in rs]) / 2**20:,.0f} MiB | "
                  f"{span([r['peak_rss_growth_per_query'] for r in rs], lambda v: f'{v:.0f}')} | "
                  f"{max(r.get('others_cpu_cores') or 0 for r in rs):.2f} | "
                  f"{max_of(rs, 'steal_cores')} |")
    print()
    brackets = {impl: bracket(server, impl) for impl in impls}
    for impl in impls:
        lo, hi = brackets[impl]
        upper = f"not VALID in every repeat at {hi:,.0f}" if hi else "never failed: a lower bound"
        print(f"- highest target QPS VALID in every repeat, {impl}: "
              f"{(lo or 0):,.0f} ({upper})")
    rust_lo, rust_hi = brackets.get("rust", (None, None))
    for impl in impls:
        # rust-norecords is a diagnostic of the Rust side itself, not a peer.
        if impl.startswith("rust") or not rust_lo:
            continue
        lo, hi = brackets[impl]
        if not lo:
            continue
        ratio = f"{rust_lo / lo:.2f}x"
        low = rust_lo / hi if hi else None
        high = rust_hi / lo if rust_hi else None
        # A peer that never failed has no upper bracket, so the ratio has no
        # lower one (and the other way round): say which bound is known.
        if low and high:
            held = f"the brackets allow {low:.2f}x to {high:.2f}x"
        elif high:
            held = f"at most {high:.2f}x: {impl} never failed"
        elif low:
            held = f"at least {low:.2f}x: rust never failed"
        else:
            held = "unbounded both ways: neither failed"
        # Issue 15's goal is stated against the -O3 build (cpp); the
        # jemalloc build is reported beside it.
        goal = (f"; goal (issue 15) >= 10x: {'MET' if rust_lo / lo >= 10 else 'MISSED'}"
                if impl == "cpp" else "")
        print(f"- ratio rust / {impl}: {ratio} ({held}){goal}")
    print()

    print("### Memory per generated query at rates every implementation sustains\n")
    common = sorted(q for q in {r["target_qps"] for r in server}
                    if all(valid_rungs(server, i).get(q) for i in impls))
    common = [q for q in common
              if min(r["generated_queries"] for r in server if r["target_qps"] == q) >= 100_000]
    if common:
        q = common[-1]
        print(f"At {q:,.0f} QPS (the highest rate with >= 100k queries VALID in every repeat "
              "for every implementation):\n")
        print("| impl | queries | peak RSS growth / query |")
        print("|---|---:|---:|")
        for impl in impls:
            rs = [r for r in server if r["impl"] == impl and r["target_qps"] == q]
            print(f"| {impl} | {rs[0]['generated_queries']:,} | "
                  f"{span([r['peak_rss_growth_per_query'] for r in rs], lambda v: f'{v:.1f} B')} |")
        rust = [r for r in server if r["impl"] == "rust" and r["target_qps"] == q]
        if rust:
            worst = max(r["peak_rss_growth_per_query"] for r in rust)
            print(f"\n- goal (issue 15) <= 64 B/query at equal rates, rust: "
                  f"{'MET' if worst <= 64 else 'MISSED'} (at most {worst:.1f} B over the repeats)")
            r = rust[-1]
            print(f"\nRust structure (B/query): schedule {r['schedule_heap_bytes_per_query']:.1f} "
                  f"(freed before issuing), plan {r['plan_heap_bytes_per_query']:.1f}, "
                  f"phase arrays {r['state_bytes_per_query']:.1f}, "
                  f"collected latencies {r['result_bytes_per_query']:.1f}")
    else:
        print("No rate with >= 100k queries was VALID in every repeat for every implementation.")
    print()

    if offline:
        print("### Offline (one query, instant SUT, whole test timed; median [min-max])\n")
        print("| impl | samples | whole-test wall | samples / wall | process CPU (user+sys) "
              "| peak RSS growth / sample | steal (max) |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        walls = {}
        cpus = {}
        for impl in offline_impls:
            rs = [r for r in offline if r["impl"] == impl]
            if not rs:
                continue
            samples = rs[0]["generated_samples"]
            walls[impl] = [r["start_test_wall_s"] for r in rs]
            cpus[impl] = [r["cpu_s"] for r in rs if r.get("cpu_s") is not None]
            print(f"| {impl} | {samples:,} | "
                  f"{span(walls[impl], lambda v: f'{v:.3f} s')} | "
                  f"{span([samples / w / 1e6 for w in walls[impl]], lambda v: f'{v:.1f}M/s')} | "
                  f"{span(cpus[impl], lambda v: f'{v:.3f} s') if cpus[impl] else 'n/a'} | "
                  f"{span([(r['peak_rss_bytes'] - r['rss_before_bytes']) / samples for r in rs], lambda v: f'{v:.0f} B')} | "
                  f"{max_of(rs, 'steal_cores')} |")
        if "rust" in walls:
            for impl, w in walls.items():
                if impl.startswith("rust"):
                    continue
                rw = walls["rust"]
                goal = (f"; goal (issue 15) <= 1/3: "
                        f"{'MET' if med(rw) / med(w) <= 1 / 3 else 'MISSED'}"
                        if impl == "cpp" else "")
                print(f"\n- whole-test time rust / {impl}: {med(rw) / med(w):.3f} "
                      f"(over the repeats {min(rw) / max(w):.3f} to {max(rw) / min(w):.3f})"
                      f"{goal}")
                rc, c = cpus.get("rust"), cpus.get(impl)
                if rc and c:
                    print(f"- process CPU rust / {impl}: {med(rc) / med(c):.3f} "
                          f"(over the repeats {min(rc) / max(c):.3f} to {max(rc) / min(c):.3f})")
        offline_diagnostics(walls, floors, offline)


def offline_diagnostics(walls, floors, offline):
    """Where the Rust side's Offline time goes: without records.jsonl
    (rust-norecords, not the path `harness run` takes), and the disk's own
    time for the bytes records.jsonl holds (LoadGen C++ writes none)."""
    cpp = walls.get("cpp")
    if not cpp or "rust" not in walls:
        return
    print("\nDiagnostics (not the compared path; they show where the Rust side's time goes):\n")
    if "rust-norecords" in walls:
        nw = walls["rust-norecords"]
        print(f"- whole-test time rust-norecords / cpp: {med(nw) / med(cpp):.3f} "
              f"(over the repeats {min(nw) / max(cpp):.3f} to {max(nw) / min(cpp):.3f}): "
              "the same binary without records.jsonl")
    syncs = [r["records_sync_s"] for r in offline
             if r["impl"] == "rust" and r.get("records_sync_s") is not None]
    if syncs:
        print(f"- records.jsonl's sync, after the timed window (the test hands the bytes to "
              f"the kernel, as LoadGen C++ hands its logs to an ofstream and syncs nothing; "
              f"`harness run` syncs before it reports): {span(syncs, lambda v: f'{v:.3f} s')}")
    if floors:
        walls_dd = [r["wall_s"] for r in floors]
        mb = med([r["bytes"] for r in floors]) / 1e6
        lines = med([r["record_lines"] for r in offline if r["impl"] == "rust"])
        print(f"- the disk alone: dd writing and syncing records.jsonl's {mb:,.0f} MB "
              f"({mb * 1e6 / max(lines, 1):.0f} B per line, {lines:,.0f} lines) took "
              f"{span(walls_dd, lambda v: f'{v:.3f} s')}; a test that waited for the disk "
              f"could not take less")


def disk_floor(results_path, file, load_before):
    rust = [r for r in load_rows(results_path)
            if r["impl"] == "rust" and r["scenario"] == "Offline"]
    if not rust or not rust[-1].get("records_bytes"):
        sys.exit("disk-floor: no rust Offline run with records_bytes in " + results_path)
    nbytes = rust[-1]["records_bytes"]
    start = time.monotonic()
    subprocess.run(["dd", "if=/dev/zero", f"of={file}", "bs=1M",
                    f"count={-(-nbytes // 2**20)}", "conv=fdatasync", "status=none"],
                   check=True)
    wall = time.monotonic() - start
    os.remove(file)
    row = {"impl": "disk-floor", "scenario": "DiskFloor", "bytes": nbytes,
           "wall_s": round(wall, 4), "load_before": float(load_before),
           "load_after": float(open("/proc/loadavg").read().split()[0])}
    with open(results_path, "a") as f:
        f.write(json.dumps(row) + "\n")


def _cpu_seconds():
    """(busy, steal) CPU seconds of the whole machine since boot. Steal is
    time the hypervisor ran something else while a virtual CPU wanted to
    run: on a VM whose disk is emulated by the host (seen here: a
    Firecracker guest), writing records.jsonl makes the host take the busy
    issuer's CPU, so steal is reported apart from other processes' CPU."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    steal = fields[7]
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(fields[:7]) - idle) / tick, steal / tick


def _busy_seconds():
    return _cpu_seconds()[0]


def wait_quiet(max_cores, timeout_s):
    deadline = time.monotonic() + timeout_s
    while True:
        before = _busy_seconds()
        time.sleep(3)
        busy = (_busy_seconds() - before) / 3
        if busy < max_cores or time.monotonic() > deadline:
            print(f"loadgen_issue: machine busy {busy:.2f} cores", file=sys.stderr)
            return


def measure(cmd):
    before_busy, before_steal = _cpu_seconds()
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    wall = time.monotonic() - start
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (after_children.ru_utime - before_children.ru_utime
           + after_children.ru_stime - before_children.ru_stime)
    after_busy, after_steal = _cpu_seconds()
    others = max(after_busy - before_busy - own, 0.0) / wall
    row = json.loads(out.strip().splitlines()[-1])
    row["others_cpu_cores"] = round(others, 3)
    row["steal_cores"] = round((after_steal - before_steal) / wall, 3)
    # The process's own CPU (all threads, user + system): on a shared box
    # the wall time also holds the time other processes had the core.
    row["cpu_s"] = round(own, 4)
    print(json.dumps(row))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "wait-quiet":
        wait_quiet(float(sys.argv[2]), float(sys.argv[3]))
    elif len(sys.argv) == 5 and sys.argv[1] == "disk-floor":
        disk_floor(*sys.argv[2:])
    elif len(sys.argv) >= 3 and sys.argv[1] == "measure":
        measure(sys.argv[2:])
    elif len(sys.argv) == 11 and sys.argv[1] == "parse":
        parse(*sys.argv[2:])
    elif len(sys.argv) == 5 and sys.argv[1] == "valid-at":
        valid_at(*sys.argv[2:])
    elif len(sys.argv) == 4 and sys.argv[1] == "next-rung":
        next_rung(*sys.argv[2:])
    elif len(sys.argv) in (3, 4) and sys.argv[1] == "table":
        table(*sys.argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
