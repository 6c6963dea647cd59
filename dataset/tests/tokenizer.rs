//! The local tokenizer against the real Llama 3.2 tokenizer.json and Python
//! `transformers` (scripts/peers/llama_tokenizer.sh).

// Helpers outside #[test] fns are test code too; clippy.toml's in-tests
// allowances do not reach them.
#![allow(clippy::unwrap_used)]

mod common {
    pub mod peer;
}

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use dataset::tokenizer::{HfTokenizer, Tokenizer};
use dataset::{Dataset, DatasetOptions};
use loadgen::rng::{Mt19937, uniform_int};

use common::peer::run_peer;

fn peer() -> Option<(String, String)> {
    match (
        std::env::var("LLAMA_TOKENIZER_PYTHON"),
        std::env::var("LLAMA_TOKENIZER_JSON"),
    ) {
        (Ok(py), Ok(json)) => Some((py, json)),
        _ => None,
    }
}

fn bundled() -> Dataset {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../datasets/cnn_dailymail_sample.json");
    Dataset::load(path, &DatasetOptions::new()).unwrap()
}

#[test]
fn encodes_the_bundled_prompts_like_python_tokenizers() {
    let Some((py, json)) = peer() else {
        println!(
            "skipping encodes_the_bundled_prompts_like_python_tokenizers: LLAMA_TOKENIZER_JSON unset (scripts/peers/llama_tokenizer.sh)"
        );
        return;
    };
    let t = HfTokenizer::from_file(&json).unwrap();
    assert!(
        t.clean_up_tokenization_spaces(),
        "tokenizer_config.json not honoured"
    );
    // The vocabulary, added tokens included, as Python tokenizers counts it
    // (this file: Llama 3's 128,000 BPE ids, 256 special tokens and a pad).
    let stdout = run_peer(std::process::Command::new(&py).args([
        "-c",
        "import sys; from tokenizers import Tokenizer; \
         print(Tokenizer.from_file(sys.argv[1]).get_vocab_size(with_added_tokens=True))",
        &json,
    ]));
    let python: u32 = String::from_utf8_lossy(&stdout).trim().parse().unwrap();
    assert!(python > 128_000, "{python}");
    assert_eq!(t.vocab_size(), Some(python));
    // tok_input was written by Python tokenizers (scripts/make_sample_dataset.py).
    for (i, s) in bundled().samples.iter().enumerate() {
        let ids = t.encode(s.input_text.as_deref().unwrap(), true).unwrap();
        assert_eq!(ids, s.input_tokens, "sample {i}");
    }
    assert_eq!(
        t.encode("Hello world!", false).unwrap(),
        vec![9906, 1917, 0]
    );
}

#[test]
fn decodes_like_transformers_batch_decode() {
    let Some((py, json)) = peer() else {
        println!(
            "skipping decodes_like_transformers_batch_decode: LLAMA_TOKENIZER_PYTHON unset (scripts/peers/llama_tokenizer.sh)"
        );
        return;
    };
    let t = HfTokenizer::from_file(&json).unwrap();
    let mut batch: Vec<Vec<u32>> = Vec::new();
    // Model-like outputs: the references and tricky text, with BOS/EOT.
    let texts = [
        "I don't know . It's fine , isn't it ? Yes !",
        "Prices rose 12.5% to $3.40 -- a \"record\" (again).",
        "Caf\u{e9} \u{fc}ber na\u{ef}ve \u{2014} \u{65e5}\u{672c}\u{8a9e} \u{1f600}",
        "  leading and trailing spaces  \n\n new lines\t",
        "",
    ];
    for text in texts.iter().copied().chain(
        bundled()
            .samples
            .iter()
            .filter_map(|s| s.reference.as_deref()),
    ) {
        let mut ids = t.encode(text, true).unwrap();
        ids.push(128_009); // <|eot_id|>
        batch.push(ids);
    }
    // Random ids over the whole vocabulary, special tokens included (they
    // may split UTF-8 sequences: both sides must agree on the replacement).
    let mut g = Mt19937::new(42);
    for _ in 0..200 {
        let n = uniform_int(&mut g, 0, 60) as usize;
        batch.push(
            (0..n)
                .map(|_| uniform_int(&mut g, 0, 128_255) as u32)
                .collect(),
        );
    }
    let mut input = tempfile::NamedTempFile::new().unwrap();
    serde_json::to_writer(&mut input, &batch).unwrap();
    input.flush().unwrap();
    let dir = PathBuf::from(&json).parent().unwrap().to_path_buf();
    let script = r#"
import json, sys
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1], use_fast=False)
batch = json.load(open(sys.argv[2]))
json.dump({"skip": tok.batch_decode(batch, skip_special_tokens=True),
           "keep": tok.batch_decode(batch, skip_special_tokens=False)}, sys.stdout)
"#;
    let stdout = run_peer(
        Command::new(&py)
            .args(["-c", script])
            .arg(&dir)
            .arg(input.path()),
    );
    let want: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    let refs: Vec<&[u32]> = batch.iter().map(Vec::as_slice).collect();
    for (key, skip) in [("skip", true), ("keep", false)] {
        let ours = t.batch_decode(&refs, skip).unwrap();
        let theirs: Vec<String> = serde_json::from_value(want[key].clone()).unwrap();
        assert_eq!(ours.len(), theirs.len());
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(a, b, "{key} sequence {i}: {:?}", batch[i]);
        }
    }
}
