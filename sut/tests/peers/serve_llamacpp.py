#!/usr/bin/env python3
"""Start llama.cpp's HTTP server (the xllamacpp wheel) for the sut tests.

usage: serve_llamacpp.py MODEL.gguf PORT [ALIAS]

Prints one line "listening on HOST:PORT" once the server accepts requests
(the tests wait for it instead of polling), then serves until stdin closes or
SIGTERM arrives: a test that dies takes its server with it.
"""
import os
import signal
import sys

import xllamacpp as xlc

model, port = sys.argv[1], int(sys.argv[2])
alias = sys.argv[3] if len(sys.argv) > 3 else "smollm2-135m"

params = xlc.CommonParams()
params.model.path = model
params.hostnames = ["127.0.0.1"]
params.port = port
params.model_alias = {alias}
params.n_ctx = 2048
params.n_parallel = 2
params.endpoint_metrics = True
# One thread each: the tests run on a 2-core machine.
params.cpuparams.n_threads = int(os.environ.get("THREADS", "1"))
params.cpuparams_batch.n_threads = params.cpuparams.n_threads

server = xlc.Server(params)
print(f"listening on {server.listening_address}", flush=True)
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
sys.stdin.read()
os._exit(0)
