#!/usr/bin/env python3
"""A Python SUT on the MLPerf LoadGen wheel (mlcommons-loadgen), in the style
of MLCommons' reference SUTs for served LLMs: one thread runs an asyncio loop
with a streaming aiohttp client; LoadGen's IssueQuery hands each sample to
that loop (asyncio.run_coroutine_threadsafe), and the loop thread reports the
first token (lg.FirstTokenComplete) and the whole answer
(lg.QuerySamplesComplete). It is the comparison MLPerf submitters face for
`harness run` (scripts/bench/sut_vs_python.py runs both).

It sends the request body `harness run` sends for the same sample (the
dataset's token ids as the prompt, max_tokens, ignore_eos, stream with
usage), reads the same settings (the embedded mlperf.conf, then --user-conf,
under the LoadGen model key --model-key) and writes LoadGen's logs to
--outdir, plus client_timings.jsonl: per request, its X-Request-Id
(`py-<LoadGen's sample id>`, which the simulator makes its id
`cmpl-py-<id>`, so each request joins to the server's record of it),
monotonic ns of the send, the first token and the end, and the tokens
received (for client-side TTFT and TPOT, each measured from this client's own
send).

usage: python_sut.py --url URL --model NAME --dataset cnn_dailymail_sample.json
                     --user-conf FILE --outdir DIR [--max-tokens 16]
                     [--model-key llama3_1-8b] [--scenario Server]
"""

import argparse
import array
import asyncio
import json
import os
import threading
import time

import aiohttp
import mlperf_loadgen as lg


class Sut:
    def __init__(self, url, model, prompts, max_tokens):
        self.url = url.rstrip("/") + "/v1/completions"
        self.model = model
        self.prompts = prompts
        self.max_tokens = max_tokens
        self.timings = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run_loop, daemon=True)
        self.session = None
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._open(), self.loop).result()

    def _run_loop(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def _open(self):
        # No connection cap: the reference's setting for maximum throughput.
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=600))

    async def _close(self):
        await self.session.close()

    def issue_queries(self, query_samples):
        # LoadGen's issue thread: hand every sample to the loop thread.
        for qs in query_samples:
            asyncio.run_coroutine_threadsafe(self._request(qs.id, qs.index), self.loop)

    def flush_queries(self):
        pass

    async def _request(self, query_id, index):
        body = {
            "model": self.model,
            "prompt": self.prompts[index],
            "max_tokens": self.max_tokens,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        request_id = f"py-{query_id}"
        sent = time.monotonic_ns()
        first = None
        received = 0
        usage_tokens = None
        ok = True
        try:
            async with self.session.post(self.url, json=body,
                                         headers={"X-Request-Id": request_id}) as resp:
                resp.raise_for_status()
                async for line in resp.content:
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        break
                    chunk = json.loads(data)
                    usage = chunk.get("usage")
                    if usage:
                        usage_tokens = usage.get("completion_tokens")
                    for choice in chunk.get("choices") or ():
                        if not choice.get("text"):
                            continue
                        received += 1
                        if first is None:
                            first = time.monotonic_ns()
                            ids = array.array("i", [0])
                            ptr, n = ids.buffer_info()
                            lg.FirstTokenComplete(
                                [lg.QuerySampleResponse(query_id, ptr, n * ids.itemsize, 1)])
        except Exception as e:  # noqa: BLE001 - a failed sample is still answered
            ok = False
            print(f"python_sut: request failed: {e!r}", flush=True)
        end = time.monotonic_ns()
        n_tokens = usage_tokens if usage_tokens is not None else received
        # The answer's data: as many int32 as tokens (their values do not
        # matter to a performance run).
        ids = array.array("i", bytes(4 * max(received, 1)))
        ptr, n = ids.buffer_info()
        lg.QuerySamplesComplete(
            [lg.QuerySampleResponse(query_id, ptr, n * ids.itemsize, n_tokens)])
        self.timings.append((request_id, sent, first, end, n_tokens, ok))

    def close(self):
        asyncio.run_coroutine_threadsafe(self._close(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--user-conf", required=True)
    p.add_argument("--outdir", required=True)
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--model-key", default="llama3_1-8b")
    p.add_argument("--scenario", default="Server")
    args = p.parse_args()

    with open(args.dataset) as f:
        prompts = [row["tok_input"] for row in json.load(f)]
    settings = lg.TestSettings()
    settings.FromConfig(args.user_conf, args.model_key, args.scenario)
    settings.scenario = getattr(lg.TestScenario, args.scenario)
    settings.mode = lg.TestMode.PerformanceOnly
    os.makedirs(args.outdir, exist_ok=True)
    log = lg.LogSettings()
    log.log_output.outdir = args.outdir
    log.enable_trace = False

    sut = Sut(args.url, args.model, prompts, args.max_tokens)
    lg_sut = lg.ConstructSUT(sut.issue_queries, sut.flush_queries)
    qsl = lg.ConstructQSL(len(prompts), len(prompts), lambda _: None, lambda _: None)
    lg.StartTestWithLogSettings(lg_sut, qsl, settings, log)
    sut.close()
    lg.DestroyQSL(qsl)
    lg.DestroySUT(lg_sut)
    with open(os.path.join(args.outdir, "client_timings.jsonl"), "w") as f:
        for request_id, sent, first, end, n, ok in sut.timings:
            f.write(json.dumps({"id": request_id, "sent_ns": sent, "first_token_ns": first,
                                "end_ns": end, "n_tokens": n, "ok": ok}) + "\n")


if __name__ == "__main__":
    main()
