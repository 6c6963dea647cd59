#!/usr/bin/env python3
"""Helpers of scripts/bench/client_vs_python.sh (see its header for the method).

  prompts DATASET TOKENIZER_DIR PROMPT_TOKENS OUTPUT_TOKENS N OUTDIR
      the one prompt set every tool sends, in each tool's input format
  sharegpt OUTDIR COUNT
      benchmark_serving's ShareGPT file of COUNT entries (it samples without
      replacement, so it needs one entry per request)
  guidellm OUTDIR COUNT
      OUTDIR/guidellm-run.jsonl: COUNT rows cycling guidellm.jsonl's prompts
      (GuideLLM sends each row of a JSON file once and then stops, so a run
      needs at least one row per request of its duration)
  summarize TOOL TARGET RUNDIR BOUND_MS STARTUP_CPU_S
      one run's JSON line: rates, completion, TTFT p99 (client and server),
      client CPU, other processes' CPU, sustained
  report RESULTS.jsonl SECONDS REPEATS BOUND_MS QUIET_CORES [BISECT]
      the Markdown tables and the ratios
"""
import glob
import json
import math
import os
import statistics
import sys


def pct(values, p):
    """Nearest-rank percentile (LoadGen's definition), NaN when empty."""
    if not values:
        return float("nan")
    values = sorted(values)
    k = max(1, math.ceil(len(values) * p / 100))
    return values[k - 1]


def prompts(dataset, tokenizer_dir, prompt_tokens, output_tokens, n, outdir):
    # Windows of PROMPT_TOKENS of the bundled dataset's Llama 3 token ids,
    # decoded to text: the same text for every tool (not every tool can send
    # token ids; every tool can send text).
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    ids = []
    for sample in json.load(open(dataset)):
        ids.extend(i for i in sample["tok_input"] if i < 128000)
    texts = []
    for start in range(0, len(ids) - prompt_tokens, max(1, prompt_tokens // 4)):
        texts.append(tok.decode(ids[start:start + prompt_tokens]))
        if len(texts) == n:
            break
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "prompts.jsonl"), "w") as f:  # harness
        for t in texts:
            f.write(json.dumps({"prompt": t}) + "\n")
    with open(os.path.join(outdir, "guidellm.jsonl"), "w") as f:
        for t in texts:
            f.write(json.dumps({"prompt": t, "output_tokens_count": output_tokens}) + "\n")
    with open(os.path.join(outdir, "aiperf.jsonl"), "w") as f:
        for t in texts:
            f.write(json.dumps({"text": t, "output_length": output_tokens}) + "\n")
    print(f"{len(texts)} prompts of {prompt_tokens} tokens", file=sys.stderr)


def sharegpt(outdir, count):
    texts = [json.loads(l)["prompt"] for l in open(os.path.join(outdir, "prompts.jsonl"))]
    rows = [{"conversations": [{"from": "human", "value": texts[i % len(texts)]},
                               {"from": "gpt", "value": "unused: --sharegpt-output-len"}]}
            for i in range(count)]
    with open(os.path.join(outdir, "sharegpt.json"), "w") as f:
        json.dump(rows, f)


def guidellm_rows(outdir, count):
    with open(os.path.join(outdir, "guidellm.jsonl")) as f:
        rows = [line for line in f if line.strip()]
    with open(os.path.join(outdir, "guidellm-run.jsonl"), "w") as f:
        for i in range(count):
            f.write(rows[i % len(rows)])


def client_side(tool, out):
    """(sent, ok, client's own achieved req/s or None, TTFT p99 ms from its
    own send, its TTFT p50 ms)."""
    if tool == "harness":
        recs = []
        for path in glob.glob(os.path.join(out, "runs", "*", "records.jsonl")):
            for line in open(path):
                d = json.loads(line)
                if d.get("type") == "query":
                    recs.append(d)
        ok = [r for r in recs if "error" not in r]
        ttft = [(r["first_token_ns"] - r["issued_ns"]) / 1e6 for r in ok if "first_token_ns" in r]
        span = (max(r["end_ns"] for r in ok) - min(r["issued_ns"] for r in recs)) / 1e9 if ok else 0
        return len(recs), len(ok), (len(ok) / span if span else 0.0), pct(ttft, 99), pct(ttft, 50)
    if tool == "benchmark_serving":
        doc = json.load(open(os.path.join(out, "bs.json")))
        ttft = [t * 1000 for t, e in zip(doc["ttfts"], doc["errors"]) if not e and t]
        return (len(doc["errors"]), doc["completed"], doc["request_throughput"],
                pct(ttft, 99), pct(ttft, 50))
    if tool == "aiperf":
        ttft, sent, ok = [], 0, 0
        path = os.path.join(out, "aiperf", "profile_export.jsonl")
        for line in open(path):
            d = json.loads(line)
            if d["metadata"].get("benchmark_phase") != "profiling":
                continue
            sent += 1
            if d.get("error") or d["metadata"].get("was_cancelled"):
                continue
            ok += 1
            t = d["metrics"].get("time_to_first_token")
            if t:
                ttft.append(t["value"])
        summary = json.load(open(os.path.join(out, "aiperf", "profile_export_aiperf.json")))
        return sent, ok, summary["request_throughput"]["avg"], pct(ttft, 99), pct(ttft, 50)
    # GuideLLM keeps percentiles, not every request's timings: its own p99.
    doc = json.load(open(os.path.join(out, "guidellm.json")))
    b = doc["benchmarks"][0]
    window = b["scheduler_metrics"]["measure_end_time"] - b["scheduler_metrics"]["measure_start_time"]
    totals = b["metrics"]["request_totals"]
    t = b["metrics"]["time_to_first_token_ms"]["successful"]["percentiles"]
    # "incomplete" are the requests GuideLLM cancels itself when its
    # duration ends: not failures of the run.
    sent = totals["successful"] + totals["errored"]
    return sent, totals["successful"], totals["successful"] / window, t["p99"], t["p50"]


def summarize(tool, target, out, bound_ms, startup_cpu_s):
    target, bound_ms, startup_cpu_s = float(target), float(bound_ms), float(startup_cpu_s)
    user, system, wall = (float(x) for x in open(os.path.join(out, "time.txt")).read().split()[-3:])
    env = json.load(open(os.path.join(out, "env.json")))
    # seq 0 is the script's own warm-up request, sent before the client.
    truth = [g for g in map(json.loads, open(os.path.join(out, "truth.jsonl"))) if g.get("seq") != 0]
    truth_ok = [g for g in truth if g.get("outcome") == "ok" and g.get("first_token_ns") is not None]
    sim_ttft = [(g["first_token_ns"] - g["arrival_ns"]) / 1e6 for g in truth_ok]
    # The rate every tool is judged by, measured the same way for all: the
    # requests the server finished, from the first arrival to the last end.
    span = (max(g["end_ns"] for g in truth_ok) - min(g["arrival_ns"] for g in truth_ok)) / 1e9 \
        if len(truth_ok) > 1 else 0.0
    server_rate = len(truth_ok) / span if span else 0.0
    sent, ok, own_rate, ttft_p99, ttft_p50 = client_side(tool, out)
    completion = ok / sent if sent else 0.0
    sim_p99 = pct(sim_ttft, 99)
    added = ttft_p99 - sim_p99
    cpu = user + system
    # Other processes' CPU during the run: all busy time on the machine less
    # the client's and the simulator's.
    others = max(env["busy_s"] - cpu - env["sim_cpu_s"], 0.0) / max(env["wall_s"], 1e-9)
    row = {
        "tool": tool, "target": target, "server_rate": server_rate, "own_rate": own_rate,
        "sent": sent, "ok": ok, "completion": completion,
        "ttft_p50_ms": ttft_p50, "ttft_p99_ms": ttft_p99, "sim_ttft_p99_ms": sim_p99,
        "added_ttft_p99_ms": added, "cpu_s": cpu, "wall_s": wall,
        "cpu_ms_per_req": cpu / max(ok, 1) * 1000,
        # Less the tool's start-up and tear-down (imports, tokenizer, worker
        # processes), measured once per tool by a 2-second run at 10 req/s.
        "steady_cpu_ms_per_req": max(cpu - startup_cpu_s, 0.0) / max(ok, 1) * 1000,
        "load_before": env["load_before"], "others_cores": others,
    }
    row["sustained"] = bool(server_rate >= 0.95 * target and completion >= 0.99
                            and added <= bound_ms)
    print(json.dumps(row))


def fmt_range(values, spec):
    if not values:
        return "-"
    med = statistics.median(values)
    return f"{med:{spec}} ({min(values):{spec}}-{max(values):{spec}})"


def report(path, seconds, repeats, bound_ms, quiet, bisect=None):
    rows = [json.loads(l) for l in open(path)]
    # Say what was run: a quick run (one repeat, no bisection) must not
    # read as the full method.
    reps = f"{repeats} repeat{'' if int(repeats) == 1 else 's'} per rate"
    if bisect is None:
        search = "bisection around each tool's limit"
    elif int(bisect) == 0:
        search = "no bisection (only the ends of each tool's range)"
    else:
        search = f"{bisect} bisection step{'' if int(bisect) == 1 else 's'} around each tool's limit"
    print(f"Streaming clients against `harness sim --profile throughput-bench`, {seconds} s per run, "
          f"{reps} with the tools interleaved, {search}. "
          f"Sustained: server-counted rate >= 95% of target, >= 99% completed, and client-added TTFT p99 "
          f"(the tool's TTFT p99 from its own send minus the server's) <= {bound_ms} ms, in every repeat. "
          f"Runs where other processes used more than {quiet} cores are marked busy.\n")
    print("| tool | target req/s | repeat | achieved req/s (server / tool's own) | completed "
          "| TTFT p99 ms (tool / server) | client-added TTFT p99 ms | client CPU ms/req (all / steady) "
          "| load avg / others' cores | sustained |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r.get("failed"):
            print(f"| {r['tool']} | {r['target']:.0f} | {r.get('repeat', '')} | failed | | | | | | no |")
            continue
        busy = " busy" if r["others_cores"] > quiet else ""
        print(f"| {r['tool']} | {r['target']:.0f} | {r.get('repeat', '')} "
              f"| {r['server_rate']:.0f} / {r['own_rate']:.0f} | {100 * r['completion']:.1f}% "
              f"| {r['ttft_p99_ms']:.2f} / {r['sim_ttft_p99_ms']:.2f} | {r['added_ttft_p99_ms']:.2f} "
              f"| {r['cpu_ms_per_req']:.3f} / {r['steady_cpu_ms_per_req']:.3f} | {r['load_before']} / {r['others_cores']:.2f}{busy} "
              f"| {'yes' if r['sustained'] else 'no'} |")
    print()
    # Per tool and rate: sustained only when every repeat was.
    by = {}
    for r in rows:
        by.setdefault(r["tool"], {}).setdefault(r["target"], []).append(r)
    limits = {}
    for tool, rates in by.items():
        good = [t for t, rs in rates.items() if all(x.get("sustained") for x in rs)]
        bad = [t for t, rs in rates.items() if not all(x.get("sustained") for x in rs)]
        lo = max(good) if good else None
        hi = min([t for t in bad if lo is None or t > lo], default=None)
        limits[tool] = (lo, hi)
        if lo is None:
            print(f"- {tool}: no rate sustained in every repeat (lowest tried {min(rates):.0f} req/s)")
            continue
        at = [x for x in rates[lo] if not x.get("failed")]
        print(f"- {tool}: max sustained {lo:.0f} req/s in every repeat"
              f"{f' (failed at {hi:.0f})' if hi else ' (the top of its range: the limit is higher)'}; at that rate "
              f"client-added TTFT p99 {fmt_range([x['added_ttft_p99_ms'] for x in at], '.2f')} ms, "
              f"client CPU {fmt_range([x['steady_cpu_ms_per_req'] for x in at], '.3f')} ms/req steady, "
              f"{fmt_range([x['cpu_ms_per_req'] for x in at], '.3f')} with start-up")
    h_lo, h_hi = limits.get("harness", (None, None))
    for peer, (p_lo, p_hi) in limits.items():
        if peer == "harness" or not h_lo or not p_lo:
            continue
        # The limits are brackets [sustained, failed): the ratio holds within
        # the ratio of the brackets' ends.
        low = h_lo / p_hi if p_hi else None
        high = h_hi / p_lo if h_hi else None
        print(f"- ratio harness / {peer}: {h_lo / p_lo:.1f}x (bracket: "
              f"{f'{low:.1f}x' if low else 'open'} to {f'{high:.1f}x' if high else 'open'})")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "prompts":
        prompts(args[0], args[1], int(args[2]), int(args[3]), int(args[4]), args[5])
    elif cmd == "sharegpt":
        sharegpt(args[0], int(args[1]))
    elif cmd == "guidellm":
        guidellm_rows(args[0], int(args[1]))
    elif cmd == "summarize":
        summarize(*args)
    elif cmd == "report":
        report(args[0], args[1], args[2], float(args[3]), float(args[4]), *args[5:6])
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
