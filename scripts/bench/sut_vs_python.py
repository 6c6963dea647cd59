#!/usr/bin/env python3
"""`harness run` against a Python SUT on the MLPerf LoadGen wheel
(scripts/bench/python_sut.py): the same LoadGen Server test (model key
llama3_1-8b, the same user.conf), the same identical token-id prompts (the
bundled dataset), the same simulator (`harness sim --profile
throughput-bench`, restarted for every run with a fresh ground-truth file),
each client pinned to one core with taskset and the simulator to another.
Driven by scripts/bench/sut_vs_python.sh, which installs what it needs.

Per run: LoadGen's verdict (mlperf_log_summary.txt, "Result is"), LoadGen's
completed samples per second, the client's CPU (user + system, GNU time)
per completed query (and apart: user, kernel, and voluntary + involuntary
context switches per query), compared at the highest rate both tools
sustain (if the Python SUT fails at every rung the ladders share, the
harness also runs at the Python SUT's highest VALID rung), its peak RSS,
and its client-added TTFT and TPOT per request: the client's own figures for a request, each timed from its own
send (harness: records.jsonl, issued_ns to first_token_ns; Python: its send
to its first token), minus the simulator's ground truth for the same request
(arrival to first-token hand-off; TPOT (end - first token) / (tokens - 1)),
joined by X-Request-Id (both clients send one; the simulator names the
request `cmpl-<id>`), at p50 and p99 over the requests. Other processes' CPU during the run (all busy time in /proc/stat less
the client's and the simulator's) and the load average are recorded; a run
during which others used more than --busy-cores is set aside and repeated
(up to twice). With --count-syscalls (a diagnostic, off for published
figures) perf stat also counts each client's system calls per query, in
total and by kind (socket reads and writes, event-loop waits, futex and
eventfd or self-pipe wakeups, sleeps), and the summary sets them side by
side at the rate where CPU per query is compared.

Method: a ladder of target QPS per tool, every rung --repeats times with the
tools interleaved (harness, python, harness, python, ...); a ladder whose
top rung passes keeps doubling (up to --harness-max-qps / --python-max-qps)
until a rung fails, since a limit never reached is no measurement; then --bisect
steps of geometric bisection between each tool's highest rung VALID in
every repeat and the lowest rung above it that was not. Prints markdown.
"""

import argparse
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

TOOLS = ("harness", "python")


def log(msg):
    print(f"sut_vs_python: {msg}", file=sys.stderr, flush=True)


def busy_seconds():
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


# The calls an HTTP streaming client's cost is made of, counted one by one
# beside the total: socket reads and writes, the event loop's waits, and the
# wakeups between threads (futex, eventfd or self-pipe writes) and timers.
SYSCALL_KINDS = ("recvfrom", "read", "sendto", "write", "epoll_wait", "futex",
                 "clock_nanosleep")


def syscall_events():
    """perf stat's events: the total, and each kind this kernel can trace."""
    events = ["raw_syscalls:sys_enter"]
    for kind in SYSCALL_KINDS:
        if os.path.exists(f"/sys/kernel/tracing/events/syscalls/sys_enter_{kind}") or \
                os.path.exists(f"/sys/kernel/debug/tracing/events/syscalls/sys_enter_{kind}"):
            events.append(f"syscalls:sys_enter_{kind}")
    return ",".join(events)


def syscall_counts(path):
    """{event: count} from perf stat's CSV output ("total" for all calls)."""
    counts = {}
    try:
        for line in open(path):
            fields = line.strip().split(",")
            if len(fields) > 2 and fields[0].isdigit():
                name = fields[2]
                if name.startswith("raw_syscalls:sys_enter"):
                    counts["total"] = int(fields[0])
                elif name.startswith("syscalls:sys_enter_"):
                    counts[name[len("syscalls:sys_enter_"):]] = int(fields[0])
    except (OSError, ValueError):
        pass
    return counts


def tcp_counters():
    """The kernel's TCP segment counters (system-wide; during a run the
    only TCP traffic is the client's with the simulator): segments sent, and
    pure ACKs received (on loopback every pure ACK either side sends is
    received by the other)."""
    out = {}
    for path in ("/proc/net/snmp", "/proc/net/netstat"):
        try:
            lines = open(path).read().splitlines()
        except OSError:
            continue
        for names, values in zip(lines[::2], lines[1::2]):
            prefix = names.split(":", 1)[0]
            for k, v in zip(names.split()[1:], values.split()[1:]):
                out[f"{prefix}.{k}"] = int(v)
    return out


# Where a client's CPU goes, from perf's call stacks: the first category
# whose pattern a sample's stack matches (root first, leaf last, ";"-joined)
# takes the sample. A read that frees receive-queue space makes TCP send an
# ACK from inside the read, and on loopback the peer's processing of that
# ACK (its TCP input, congestion control) runs on the reader's CPU too: the
# cost of reading each chunk as soon as it arrives, one read per chunk.
PROFILE_CATEGORIES = (
    ("ACKs sent by reads (+ peer's ACK input, loopback)",
     r"tcp_recvmsg(_locked)?;(?:[^;]*;)*?(__tcp_transmit_skb|__tcp_send_ack|tcp_send_ack)"),
    ("socket reads (copy, locking)", r"__sys_recv|sys_recvfrom|sys_recvmsg|sock_read_iter"),
    ("request writes (+ peer's TCP input, loopback)", r"tcp_sendmsg"),
    ("event-loop waits (epoll)", r"do_epoll_wait|ep_poll"),
    ("sleeps, wake-ups, scheduling",
     r"__schedule|schedule_idle|finish_task_switch|try_to_wake_up|futex|"
     r"do_nanosleep|hrtimer_nanosleep|eventfd_write|pipe_write"),
    # No pattern: a sample no stack pattern took, by where its leaf runs.
    ("other kernel", None),
    ("user space", None),
)


def kernel_profile(path):
    """{category: share of samples} and the sample count from `perf script`
    on a perf.data with call stacks."""
    try:
        text = subprocess.run(["perf", "script", "-i", path, "-F", "ip,sym,dso"],
                              capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None, 0
    patterns = [(name, re.compile(rx)) for name, rx in PROFILE_CATEGORIES if rx]
    counts = {name: 0 for name, _ in PROFILE_CATEGORIES}
    total = 0
    for sample in text.split("\n\n"):
        # perf script prints each frame as "address symbol+offset (dso)",
        # the leaf first.
        frames = []
        for line in sample.strip().splitlines():
            parts = line.split(None, 1)
            if len(parts) == 2:
                sym = parts[1].rsplit(" (", 1)[0].split("+0x", 1)[0]
                frames.append((sym, "[kernel.kallsyms]" in parts[1]))
        if not frames:
            continue
        total += 1
        stack = ";".join(sym for sym, _ in reversed(frames))
        name = next((name for name, rx in patterns if rx.search(stack)),
                    "other kernel" if frames[0][1] else "user space")
        counts[name] += 1
    if not total:
        return None, 0
    return {k: v / total for k, v in counts.items()}, total


def pct(values, p):
    if not values:
        return None
    values = sorted(values)
    k = max(1, math.ceil(len(values) * p / 100))
    return values[k - 1]


def loadgen_summary(directory):
    out = {}
    path = os.path.join(directory, "mlperf_log_summary.txt")
    if not os.path.exists(path):
        return out
    for line in open(path):
        if ":" in line:
            k, v = line.split(":", 1)
            out.setdefault(k.strip(), v.strip())
    return out


def find(root, name):
    for d, _, files in os.walk(root):
        if name in files:
            return os.path.join(d, name)
    return None


class Bench:
    def __init__(self, a):
        self.a = a
        self.url = f"http://127.0.0.1:{a.port}"
        self.results = []
        self.busy = []
        self.model = None

    def start_sim(self, truth):
        cmd = ["taskset", "-c", str(self.a.sim_cpu), self.a.harness, "sim", "--listen",
               f"127.0.0.1:{self.a.port}", "--profile", self.a.profile, "--ground-truth", truth]
        cmd += self.a.sim_args.split()
        sim = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(200):
            try:
                with urllib.request.urlopen(self.url + "/v1/models", timeout=1) as r:
                    if self.model is None:
                        self.model = json.load(r)["data"][0]["id"]
                    return sim
            except OSError:
                if sim.poll() is not None:
                    sys.exit(f"the simulator exited: {sim.stderr.read().decode()}")
                time.sleep(0.05)
        sim.kill()
        sys.exit("the simulator did not come up")

    def run(self, tool, qps, tag):
        for attempt in (1, 2, 3):
            row = self.run_once(tool, qps, f"{tag}-a{attempt}")
            row["attempt"] = attempt
            if row["busy"] and attempt < 3:
                self.busy.append(row)
                log(f"  busy run (others used {row['others_cpu_cores']:.2f} cores): repeating")
                continue
            self.results.append(row)
            with open(os.path.join(self.a.out, "results.jsonl"), "a") as f:
                f.write(json.dumps(row) + "\n")
            return row

    def run_once(self, tool, qps, tag):
        a = self.a
        d = os.path.join(a.out, f"{tool}-{qps}-{tag}")
        os.makedirs(d)
        conf = os.path.join(d, "user.conf")
        with open(conf, "w") as f:
            f.write(f"{a.model_key}.Server.target_qps = {qps}\n"
                    f"*.Server.min_duration = {a.seconds * 1000}\n"
                    f"*.Server.min_query_count = 100\n")
        truth = os.path.join(d, "truth.jsonl")
        sim = self.start_sim(truth)
        load_before = os.getloadavg()[0]
        timefile = os.path.join(d, "time.txt")
        if tool == "harness":
            client = [a.harness, "run", "--backend", self.url, "--scenario", "Server",
                      "--lg-model-name", a.model_key, "--user-conf", conf,
                      "--dataset-path", a.dataset, "--max-tokens", str(a.output_tokens),
                      "--ignore-eos", "--request-id-prefix", "h-",
                      "--quiet", "--no-report", "--no-history", "--output-dir",
                      os.path.join(d, "runs"), "--label", "bench"]
        else:
            client = [a.python, a.python_sut, "--url", self.url, "--model", self.model,
                      "--dataset", a.dataset, "--user-conf", conf, "--outdir",
                      os.path.join(d, "loadgen"), "--max-tokens", str(a.output_tokens),
                      "--model-key", a.model_key]
        cmd = ["/usr/bin/time", "-f", "%U %S %e %M %c %w", "-o", timefile,
               "taskset", "-c", str(a.client_cpu)] + client
        syscall_file = os.path.join(d, "syscalls.csv")
        if a.count_syscalls:
            # Counted in the kernel (no recording), the client's threads and
            # children included; perf's own few calls and time's are noise.
            cmd = ["perf", "stat", "-x,", "-e", syscall_events(),
                   "-o", syscall_file, "--"] + cmd
        profile_file = os.path.join(d, "perf.data")
        if a.profile_kernel:
            # The client's process and its children, every thread, with call
            # stacks (kernel ones are exact; user ones are not needed).
            cmd = ["perf", "record", "-q", "-g", "-F", "1999", "-o", profile_file,
                   "--"] + cmd
        tcp0 = tcp_counters()
        busy0 = busy_seconds()
        sim0 = proc_cpu_seconds(sim.pid)
        t0 = time.monotonic()
        with open(os.path.join(d, "client.log"), "w") as out:
            rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode
        wall = time.monotonic() - t0
        tcp1 = tcp_counters()
        sim_cpu = proc_cpu_seconds(sim.pid) - sim0
        busy = busy_seconds() - busy0
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=30)
        user, system, _, max_kb, involuntary, voluntary = open(timefile).read().split()[-6:]
        cpu = float(user) + float(system)
        others = max(busy - cpu - sim_cpu, 0.0) / wall
        row = {"tool": tool, "target_qps": qps, "rc": rc, "wall_s": wall, "cpu_s": cpu,
               "peak_rss_kb": int(max_kb), "sim_cpu_s": sim_cpu,
               "others_cpu_cores": others, "busy": others > a.busy_cores,
               "load_before": load_before, "load_after": os.getloadavg()[0]}
        row.update(self.figures(tool, d, truth))
        n = row["completed"]
        row["cpu_ms_per_query"] = (cpu / n * 1e3) if n else None
        # Where the CPU goes: the kernel's share (socket reads, loopback TCP
        # work, wakeups) is common to every client; context switches count
        # the wakeups themselves.
        row["cpu_user_ms_per_query"] = (float(user) / n * 1e3) if n else None
        row["cpu_kernel_ms_per_query"] = (float(system) / n * 1e3) if n else None
        row["context_switches_per_query"] = (
            (int(voluntary) + int(involuntary)) / n if n else None)
        if a.count_syscalls:
            counts = syscall_counts(syscall_file)
            calls = counts.pop("total", None)
            row["syscalls_per_query"] = (calls / n) if n and calls is not None else None
            row["syscalls_by_kind_per_query"] = (
                {k: v / n for k, v in counts.items()} if n else None)
        if a.profile_kernel:
            row["profile"], row["profile_samples"] = kernel_profile(profile_file)
            delta = {k: tcp1.get(k, 0) - tcp0.get(k, 0) for k in tcp1}
            row["segments_per_query"] = delta.get("Tcp.OutSegs", 0) / n if n else None
            row["pure_acks_per_query"] = ((delta.get("TcpExt.TCPHPAcks", 0)
                                           + delta.get("TcpExt.TCPPureAcks", 0)) / n
                                          if n else None)
        if not a.keep:
            shutil.rmtree(d)
        log(f"{tool} {qps} QPS: {'VALID' if row['valid'] else 'INVALID'}, "
            f"{row['completed_per_s'] or 0:.0f}/s, cpu {row['cpu_ms_per_query'] or 0:.3f} ms/query, "
            f"TTFT +{row['ttft_added_p99_ms'] or 0:.2f} ms p99, others {others:.2f} cores"
            + (f", {row['syscalls_per_query']:.1f} system calls/query"
               if row.get("syscalls_per_query") is not None else ""))
        return row

    def figures(self, tool, d, truth):
        summary_dir = None
        client = {}  # server id -> (ttft ns, tpot ns or None) per completed request
        if tool == "harness":
            records = find(os.path.join(d, "runs"), "records.jsonl")
            if records:
                summary_dir = os.path.dirname(records)
                for line in open(records):
                    r = json.loads(line)
                    if r.get("type") != "query" or r.get("error") or r.get("first_token_ns") is None:
                        continue
                    n = r.get("n_tokens") or 0
                    client[f"cmpl-h-{r['seq']}"] = (
                        r["first_token_ns"] - r["issued_ns"],
                        (r["end_ns"] - r["first_token_ns"]) / (n - 1) if n > 1 else None)
        else:
            summary_dir = os.path.join(d, "loadgen")
            path = os.path.join(summary_dir, "client_timings.jsonl")
            if os.path.exists(path):
                for line in open(path):
                    r = json.loads(line)
                    if not r["ok"] or r["first_token_ns"] is None:
                        continue
                    n = r["n_tokens"]
                    client[f"cmpl-{r['id']}"] = (
                        r["first_token_ns"] - r["sent_ns"],
                        (r["end_ns"] - r["first_token_ns"]) / (n - 1) if n > 1 else None)
        s = loadgen_summary(summary_dir) if summary_dir else {}
        server = {}
        if os.path.exists(truth):
            for line in open(truth):
                g = json.loads(line)
                if g.get("outcome") != "ok" or g.get("first_token_ns") is None:
                    continue
                n = g["completion_tokens"]
                server[g["id"]] = (g["first_token_ns"] - g["arrival_ns"],
                                   (g["end_ns"] - g["first_token_ns"]) / (n - 1) if n > 1 else None)
        # Per request: the client's figure minus the server's for the same
        # request (the two processes' clocks need no alignment).
        joined = [(c, server[k]) for k, c in client.items() if k in server]

        def added(i, p):
            d = [c[i] - g[i] for c, g in joined if c[i] is not None and g[i] is not None]
            v = pct(d, p)
            return None if v is None else v / 1e6

        rate = s.get("Completed samples per second")
        return {
            "valid": s.get("Result is") == "VALID",
            "completed_per_s": float(rate) if rate else None,
            "completed": len(client),
            "server_completed": len(server),
            "joined": len(joined),
            "ttft_client_p99_ms": (pct([x[0] for x in client.values()], 99) or 0) / 1e6,
            "ttft_server_p99_ms": (pct([x[0] for x in server.values()], 99) or 0) / 1e6,
            "ttft_added_p50_ms": added(0, 50),
            "ttft_added_p99_ms": added(0, 99),
            "tpot_added_p50_ms": added(1, 50),
            "tpot_added_p99_ms": added(1, 99),
        }


def rungs_valid(rows, tool):
    out = {}
    for r in rows:
        if r["tool"] == tool:
            out[r["target_qps"]] = out.get(r["target_qps"], True) and r["valid"]
    return out


def bracket(rows, tool):
    v = rungs_valid(rows, tool)
    ok = [q for q, good in v.items() if good]
    lo = max(ok) if ok else None
    above = [q for q, good in v.items() if not good and (lo is None or q > lo)]
    return lo, (min(above) if above else None)


def common_rung(rows):
    """The highest target QPS at which both tools were VALID in every
    repeat, or None."""
    h, p = rungs_valid(rows, "harness"), rungs_valid(rows, "python")
    both = [q for q in set(h) & set(p) if h[q] and p[q]]
    return max(both) if both else None


def ensure_common_rung(rows, a, run):
    """CPU per query compares the tools at one rate both sustain (the
    highest such). The ladders share rungs from 1,000 QPS up; when the
    Python SUT failed at every shared rung (a busy box), the harness also
    runs a.repeats times at the Python SUT's highest rung VALID in every
    repeat, so that the comparison is made at a lower rate instead of
    being left out."""
    if common_rung(rows) is not None:
        return
    lo = bracket(rows, "python")[0]
    if lo:
        for r in range(1, a.repeats + 1):
            log(f"common rung: harness {lo} QPS, run {r}/{a.repeats}")
            run("harness", lo, f"c{r}")


def midpoint(lo, hi):
    if lo is None or hi is None or hi / lo < 1.05:
        return None
    mid = math.sqrt(lo * hi)
    mid = round(mid, 2 - int(math.floor(math.log10(mid))))
    return int(mid) if lo < mid < hi else None


def find_limits(names, ladders, caps, a, run, rows):
    """Each name's highest target QPS VALID in every repeat: its ladder, the
    names interleaved (a.repeats runs of each rung), doubled past its top
    rung while that passes (up to caps[name]) and stopped after two failed
    rungs in a row, then a.bisect steps of geometric bisection. `run(name,
    qps, tag)` runs one and keeps its row in `rows` (tool: the name)."""
    failed = {n: 0 for n in names}
    i = 0
    while any(i < len(ladders[n]) and failed[n] < 2 for n in names):
        live = [n for n in names if i < len(ladders[n]) and failed[n] < 2]
        for r in range(1, a.repeats + 1):
            for n in live:
                log(f"{n} {ladders[n][i]} QPS, run {r}/{a.repeats}")
                run(n, ladders[n][i], f"r{r}")
        for n in live:
            ok = rungs_valid(rows, n).get(ladders[n][i])
            failed[n] = 0 if ok else failed[n] + 1
            # A ladder whose top rung passed says nothing about the limit:
            # keep doubling until a rung fails (or the cap), so the
            # bisection has a bracket to work in.
            if ok and i == len(ladders[n]) - 1 and ladders[n][i] * 2 <= caps[n]:
                ladders[n].append(ladders[n][i] * 2)
        i += 1
    for step in range(1, a.bisect + 1):
        mids = {n: midpoint(*bracket(rows, n)) for n in names}
        for r in range(1, a.repeats + 1):
            for n in names:
                if mids[n]:
                    log(f"bisect {step}: {n} {mids[n]} QPS, run {r}/{a.repeats}")
                    run(n, mids[n], f"b{step}r{r}")


def span(values, fmt):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    if len(values) == 1:
        return fmt(values[0])
    return f"{fmt(statistics.median(values))} [{fmt(min(values))} to {fmt(max(values))}]"


# A core this busy over a whole run (start-up and drain included) is
# saturated.
SATURATED = 0.9


def cores(rs, key):
    return f"{statistics.median(r[key] / r['wall_s'] for r in rs):.2f}"


def load_line(rows, busy):
    """The machine's load over the kept runs, and the busy runs set aside."""
    loads = [r["load_before"] for r in rows] + [r["load_after"] for r in rows]
    others = [r["others_cpu_cores"] for r in rows]
    return (f"Load average before/after runs: min {min(loads):.2f}, median "
            f"{statistics.median(loads):.2f}, max {max(loads):.2f}; other processes' CPU during "
            f"kept runs: median {statistics.median(others):.2f}, max {max(others):.2f} cores; "
            f"runs set aside as busy and repeated: {len(busy)}; kept runs still busy: "
            f"{sum(r['busy'] for r in rows)}.\n")


def table(rows, busy, a):
    print(f"{a.seconds} s per run, {a.repeats} repeat(s) per rung, tools interleaved; "
          f"{a.output_tokens} output tokens, the bundled dataset's token ids as prompts; "
          f"client on CPU {a.client_cpu}, simulator (`--profile {a.profile}`) on CPU {a.sim_cpu}.")
    print(load_line(rows, busy))
    print("| tool | target QPS | VALID runs | completed/s (LoadGen) | client CPU ms/query "
          "| peak RSS MiB | client-added TTFT p50 / p99 ms | client-added TPOT p50 / p99 ms "
          "| client / simulator cores | others' CPU (max) |")
    print("|---|---:|---|---:|---:|---:|---|---|---|---:|")
    f2 = lambda v: f"{v:.2f}"  # noqa: E731
    f3 = lambda v: f"{v:.3f}"  # noqa: E731
    for tool in TOOLS:
        for q in sorted({r["target_qps"] for r in rows if r["tool"] == tool}):
            rs = [r for r in rows if r["tool"] == tool and r["target_qps"] == q]
            print(f"| {tool} | {q:,} | {sum(r['valid'] for r in rs)}/{len(rs)} | "
                  f"{span([r['completed_per_s'] for r in rs], lambda v: f'{v:,.0f}')} | "
                  f"{span([r['cpu_ms_per_query'] for r in rs], f3)} | "
                  f"{span([r['peak_rss_kb'] / 1024 for r in rs], lambda v: f'{v:.0f}')} | "
                  f"{span([r['ttft_added_p50_ms'] for r in rs], f2)} / "
                  f"{span([r['ttft_added_p99_ms'] for r in rs], f2)} | "
                  f"{span([r['tpot_added_p50_ms'] for r in rs], f3)} / "
                  f"{span([r['tpot_added_p99_ms'] for r in rs], f3)} | "
                  f"{cores(rs, 'cpu_s')} / {cores(rs, 'sim_cpu_s')} | "
                  f"{max(r['others_cpu_cores'] for r in rs):.2f} |")
    print()
    if not a.profile_kernel:
        limits(rows)
    q = common_rung(rows)
    if q is not None:
        where_it_goes(rows, q, a)


def limits(rows):
    """Each tool's highest rung VALID in every repeat, and their ratio."""
    b = {t: bracket(rows, t) for t in TOOLS}
    for t in TOOLS:
        lo, hi = b[t]
        upper = f"not VALID in every repeat at {hi:,}" if hi else "never failed: a lower bound"
        print(f"- highest target QPS VALID in every repeat, {t}: {lo or 0:,} ({upper})")
        if hi:
            # A tool's limit is its own only while the simulator has CPU to
            # spare: on its one core the simulator also does the loopback TCP
            # work of every chunk it sends.
            rs = [r for r in rows if r["tool"] == t and r["target_qps"] == hi]
            client, sim = (statistics.median(r[k] / r["wall_s"] for r in rs)
                           for k in ("cpu_s", "sim_cpu_s"))
            busy = [n for n, v in (("the client", client), ("the simulator", sim))
                    if v >= SATURATED]
            print(f"  - at {hi:,}: the client used {client:.2f} of its core, the simulator "
                  f"{sim:.2f} of its (medians); saturated (>= {SATURATED}): "
                  f"{' and '.join(busy) if busy else 'neither'}"
                  + ("; the limit found is the simulator's as much as the client's"
                     if sim >= SATURATED else ""))
    (hl, hh), (pl, ph) = b["harness"], b["python"]
    if hl and pl:
        # The true ratio lies between harness-low / python-high and
        # harness-high / python-low; a tool that never failed leaves its end
        # of the bracket open.
        allow = ((f"{hl / ph:.1f}x" if ph else "no lower bound (python never failed)")
                 + " to " + (f"{hh / pl:.1f}x" if hh else "unbounded (harness never failed)"))
        print(f"- max VALID QPS per client core, harness / python: {hl / pl:.1f}x "
              f"(the brackets allow {allow}); goal >= 5x")
    if common_rung(rows) is None:
        print("- client CPU per query: no rate at which both tools were VALID in every repeat")


def where_it_goes(rows, q, a):
    """CPU per query at rung `q`, both tools VALID there: the ratio (the
    goal's, unless profiling skews it), user and kernel time, context
    switches, and the diagnostics' breakdowns when they ran."""
    def at_rung(tool):
        return [r for r in rows if r["tool"] == tool and r["target_qps"] == q]

    h = [r["cpu_ms_per_query"] for r in at_rung("harness") if r["cpu_ms_per_query"]]
    p = [r["cpu_ms_per_query"] for r in at_rung("python") if r["cpu_ms_per_query"]]
    if h and p:
        goal = ("diagnostic runs (perf recording), not the goal's figure"
                if a.profile_kernel else "goal <= 0.25")
        print(f"- client CPU per query at {q:,} QPS (both VALID), harness / python: "
              f"{statistics.median(h) / statistics.median(p):.2f} (over the repeats "
              f"{min(h) / max(p):.2f} to {max(h) / min(p):.2f}); {goal}")

    def median_of(tool, key):
        vs = [r.get(key) for r in at_rung(tool)]
        vs = [v for v in vs if v is not None]
        return statistics.median(vs) if vs else None

    split = {t: [median_of(t, k) for k in ("cpu_user_ms_per_query",
                                             "cpu_kernel_ms_per_query",
                                             "context_switches_per_query")]
             for t in TOOLS}
    if all(v is not None for t in TOOLS for v in split[t]):
        (hu, hk, hc), (pu, pk, pc) = split["harness"], split["python"]
        print(f"- where it goes at {q:,} QPS (medians), harness / python: user "
              f"{hu:.3f} / {pu:.3f} ms/query, kernel {hk:.3f} / {pk:.3f} ms/query "
              f"(socket reads and writes, loopback TCP, waits and wake-ups: "
              f"scripts/bench/client_kernel.sh splits it), context "
              f"switches {hc:.2f} / {pc:.2f} per query")
    profiled = {t: [r for r in at_rung(t) if r.get("profile")] for t in TOOLS}
    if all(profiled.values()):
        print()
        print(f"Where each client's CPU goes at {q:,} QPS (perf samples of the client's "
              f"threads with call stacks; each cell: the median share over the repeats, "
              f"and that share of the client's median CPU per query; recording costs "
              f"CPU too, so these runs' CPU figures are diagnostics):")
        print()
        print("| category | " + " | ".join(TOOLS) + " |")
        print("|---|" + "---:|" * len(TOOLS))
        cpu = {t: statistics.median(r["cpu_ms_per_query"] for r in profiled[t])
               for t in TOOLS}
        for name, _ in PROFILE_CATEGORIES:
            cells = []
            for t in TOOLS:
                share = statistics.median(r["profile"][name] for r in profiled[t])
                cells.append(f"{share * 100:.1f}% ({share * cpu[t]:.3f} ms)")
            print(f"| {name} | " + " | ".join(cells) + " |")
        cells = [f"{cpu[t]:.3f} ms, {statistics.median(r['profile_samples'] for r in profiled[t]):,.0f} samples"
                 for t in TOOLS]
        print("| all (CPU per query, samples) | " + " | ".join(cells) + " |")
        for key, label in (("segments_per_query", "TCP segments per query (both ways)"),
                           ("pure_acks_per_query", "pure ACKs per query (both ways)")):
            vals = [median_of(t, key) for t in TOOLS]
            if all(v is not None for v in vals):
                print(f"| {label} | " + " | ".join(f"{v:.1f}" for v in vals) + " |")
        print()
    calls = {t: median_of(t, "syscalls_per_query") for t in TOOLS}
    if all(v is not None for v in calls.values()):
        def kinds(tool):
            rs = [r.get("syscalls_by_kind_per_query") or {} for r in at_rung(tool)]
            names = sorted({k for r in rs for k in r})
            return ", ".join(
                f"{k} {statistics.median(r.get(k, 0.0) for r in rs):.2f}" for k in names)
        print(f"- system calls per query at {q:,} QPS (medians; counting them "
              f"costs a little per call, so these runs' CPU figures are "
              f"diagnostics): harness {calls['harness']:.1f} ({kinds('harness')}), "
              f"python {calls['python']:.1f} ({kinds('python')})")


def add_run_args(p, port):
    """The options Bench reads, for this script and for every script that
    drives Bench (client_cores.py), so a new one cannot be missing there."""
    p.add_argument("--harness", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seconds", type=int, default=30)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--bisect", type=int, default=3)
    p.add_argument("--output-tokens", type=int, default=16)
    p.add_argument("--model-key", default="llama3_1-8b")
    p.add_argument("--profile", default="throughput-bench")
    p.add_argument("--sim-args", default="",
                   help="more arguments for `harness sim` (e.g. \"--spin-us 0\")")
    p.add_argument("--port", type=int, default=port)
    p.add_argument("--busy-cores", type=float, default=0.25)
    p.add_argument("--keep", action="store_true", help="keep every run's files")
    p.add_argument("--profile-kernel", action="store_true",
                   help="record each client with perf (call stacks) and count TCP segments, "
                        "and say where its CPU goes (a diagnostic: recording costs CPU too, "
                        "so leave it off for published CPU figures)")
    p.add_argument("--count-syscalls", action="store_true",
                   help="count each client's system calls per query with perf stat "
                        "(a diagnostic: counting adds a little cost per call, more to the "
                        "client that makes more, so leave it off for published figures)")


def main():
    p = argparse.ArgumentParser()
    add_run_args(p, 18432)
    p.add_argument("--python", required=True, help="python with mlperf_loadgen and aiohttp")
    p.add_argument("--python-sut", required=True)
    p.add_argument("--harness-qps", default="1000 2000 4000 8000")
    p.add_argument("--python-qps", default="250 500 1000 2000")
    p.add_argument("--harness-max-qps", type=int, default=64000,
                   help="the ladder doubles past its last rung while rungs pass, up to this")
    p.add_argument("--python-max-qps", type=int, default=16000)
    p.add_argument("--sim-cpu", type=int, default=1)
    p.add_argument("--client-cpu", type=int, default=0)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    bench = Bench(a)
    ladders = {"harness": [int(q) for q in a.harness_qps.split()],
               "python": [int(q) for q in a.python_qps.split()]}
    caps = {"harness": a.harness_max_qps, "python": a.python_max_qps}
    find_limits(TOOLS, ladders, caps, a, bench.run, bench.results)
    ensure_common_rung(bench.results, a, bench.run)
    table(bench.results, bench.busy, a)


if __name__ == "__main__":
    main()
