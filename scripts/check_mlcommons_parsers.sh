#!/usr/bin/env bash
# Feeds logs written by our LoadGen log writer to MLCommons' own parsers
# (tools/submission/log_parser.py and submission_checker/parsers/loadgen_parser.py)
# and checks the values they read. The parsers live in mlcommons/inference,
# which CI cannot reach, so this runs against a local checkout:
#   scripts/check_mlcommons_parsers.sh <path-to-inference-checkout>
# It also re-renders the real 5.1 AMD summaries in that checkout and compares bytes, and
# runs the submission crate's checks against MLCommons' compliance script and checker
# patterns (TEST06 needs PANDAS_PYTHON, a Python with numpy: scripts/peers/pandas.sh).
set -euo pipefail
checkout=${1:?usage: $0 <path-to-mlcommons-inference-checkout>}
checkout=$(cd "$checkout" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cd "$root"
MLPERF_LOG_OUT_DIR="$out" MLPERF_INFERENCE_DIR="$checkout" \
  cargo test -q -p loadgen --test logs >&2
python3 tests/mlcommons/check_parsers.py "$checkout" "$out"
MLPERF_INFERENCE_DIR="$checkout" cargo test -q -p submission --test test06_crosscheck --test checker_patterns >&2
