#!/usr/bin/env bash
# Fuzzes every parser that reads outside input, with cargo fuzz (libFuzzer,
# AddressSanitizer), for SECONDS per target (default 600), two targets at a
# time (one per core here).
#
#   scripts/fuzz.sh                 # every target, 10 minutes each
#   scripts/fuzz.sh 60 sse          # one target, one minute
#
# Targets (fuzz/fuzz_targets/): user_conf, sse, prometheus, dataset_json,
# dataset_jsonl, dataset_pickle. Seeds come from the repository's own files
# (user.conf, the bundled dataset, recorded /metrics, the pickle fixtures, a
# vLLM stream). The corpus grows in fuzz/corpus/<target> and is kept between
# runs; a failing input is written to fuzz/artifacts/<target>/ and the script
# exits non-zero. Copy such an input into fuzz/regressions/<target>/ once it
# is fixed: `cargo test` replays every file there.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). The machine's
# toolchain is stable, so RUSTC_BOOTSTRAP=1 lets it take the -Z sanitizer
# flags libFuzzer needs.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-600}
shift || true
all=(user_conf sse prometheus dataset_json dataset_jsonl dataset_pickle)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
jobs=${FUZZ_PARALLEL:-$(nproc)}

command -v cargo-fuzz >/dev/null || {
  echo "fuzz.sh: cargo-fuzz is not installed: cargo install cargo-fuzz --locked" >&2
  exit 2
}
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$PWD/fuzz/target}

seed() { # seed TARGET NAME < content
  mkdir -p "fuzz/corpus/$1"
  cat > "fuzz/corpus/$1/seed-$2"
}
# The first byte of some targets picks a variant (scenario, cut step, format).
{ printf '\x01'; cat user.conf; } | seed user_conf user.conf
{ printf '\x00'; cat user.conf; } | seed user_conf user.conf.offline
python3 - <<'PY' | seed sse vllm-stream
import json, sys
out = sys.stdout.buffer
out.write(b"\x03")
for i, tok in enumerate([791, 6460, 374]):
    chunk = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m",
             "choices": [{"index": 0, "text": " x", "token_ids": [tok], "logprobs": None,
                          "finish_reason": None if i < 2 else "length", "stop_reason": None}]}
    out.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
usage = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m", "choices": [],
         "usage": {"prompt_tokens": 5, "total_tokens": 8, "completion_tokens": 3}}
out.write(b"data: " + json.dumps(usage).encode() + b"\r\n\r\n: keep-alive\nevent: x\ndata: a\ndata: b\n\ndata: [DONE]\n\n")
PY
for f in tests/fixtures/metrics/*.txt; do seed prometheus "$(basename "$f")" < "$f"; done
python3 - <<'PY'
import json, os
records = json.load(open("datasets/cnn_dailymail_sample.json"))[:2]
os.makedirs("fuzz/corpus/dataset_json", exist_ok=True)
os.makedirs("fuzz/corpus/dataset_jsonl", exist_ok=True)
with open("fuzz/corpus/dataset_json/seed-cnn", "wb") as f:
    f.write(b"\x00" + json.dumps(records).encode())
columns = {k: {str(i): r[k] for i, r in enumerate(records)} for k in records[0]}
with open("fuzz/corpus/dataset_json/seed-cnn-columns", "wb") as f:
    f.write(b"\x02" + json.dumps(columns).encode())
share = [{"id": "a", "conversations": [{"from": "human", "value": "hi there you"},
                                        {"from": "gpt", "value": "hello to you too"}]}]
with open("fuzz/corpus/dataset_json/seed-sharegpt", "wb") as f:
    f.write(b"\x01" + json.dumps(share).encode())
with open("fuzz/corpus/dataset_jsonl/seed-jsonl", "w") as f:
    f.write('{"prompt": "a b c", "output_len": 4}\n{"tok_input": [1, 2, 3], "max_tokens": 2}\n')
PY
for f in tests/fixtures/datasets/pickles/*.pkl; do seed dataset_pickle "$(basename "$f")" < "$f"; done
for t in "${targets[@]}"; do
  if [ -d "fuzz/regressions/$t" ]; then cp fuzz/regressions/"$t"/* "fuzz/corpus/$t/" 2>/dev/null || true; fi
done

echo "fuzz.sh: building ${targets[*]}" >&2
for t in "${targets[@]}"; do cargo fuzz build -O "$t"; done

mkdir -p fuzz/logs
run_one() {
  local t=$1
  mkdir -p "fuzz/artifacts/$t"
  # -rss_limit_mb: a hostile length field must not make a loader allocate
  # gigabytes. -timeout: no single input may take a second.
  if cargo fuzz run -O "$t" "fuzz/corpus/$t" -- \
      -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=1 \
      -artifact_prefix="fuzz/artifacts/$t/" -print_final_stats=1 \
      > "fuzz/logs/$t.log" 2>&1; then
    echo "fuzz.sh: $t: no failure in ${seconds}s ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "fuzz/logs/$t.log" | grep -o '[0-9]*$') inputs)"
  else
    echo "fuzz.sh: $t: FAILED, see fuzz/logs/$t.log and fuzz/artifacts/$t/"
    return 1
  fi
}
export -f run_one
export seconds
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one {}'
