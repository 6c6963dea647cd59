//! ROUGE, the Porter stemmer and sentence splitting against the real Python
//! packages: Google's `rouge_score` 0.1.2 (what HF `evaluate`'s "rouge"
//! calls), NLTK 3.9's `PorterStemmer` and `sent_tokenize` with the English
//! Punkt tables (scripts/peers/rouge.sh exports ROUGE_PYTHON and
//! PUNKT_TAB_DIR).

// Helpers outside #[test] fns are test code too; clippy.toml's in-tests
// allowances do not reach them.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common {
    pub mod peer;
}

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use dataset::accuracy::punkt::{PunktParams, SentenceSplitter};
use dataset::accuracy::{porter, postprocess, rouge, score_texts};
use dataset::{Dataset, DatasetOptions};
use loadgen::rng::{Mt19937, shuffle, uniform_int};
use serde_json::{Value, json};

use common::peer::run_peer;

fn peer(test: &str) -> Option<(String, PathBuf)> {
    match (
        std::env::var("ROUGE_PYTHON"),
        std::env::var("PUNKT_TAB_DIR"),
    ) {
        (Ok(py), Ok(dir)) => Some((py, PathBuf::from(dir))),
        _ => {
            println!(
                "skipping {test}: ROUGE_PYTHON / PUNKT_TAB_DIR unset (scripts/peers/rouge.sh)"
            );
            None
        }
    }
}

/// Runs `script` under the peer with NLTK_DATA pointing at the Punkt tables;
/// argv[1] is a JSON file holding `input`; returns its JSON stdout.
fn run_python(py: &str, punkt_dir: &Path, script: &str, input: &Value) -> Value {
    let nltk_data = punkt_dir.ancestors().nth(3).unwrap();
    let mut f = tempfile::NamedTempFile::new().unwrap();
    serde_json::to_writer(&mut f, input).unwrap();
    f.flush().unwrap();
    let stdout = run_peer(
        Command::new(py)
            .env("NLTK_DATA", nltk_data)
            .args(["-c", script])
            .arg(f.path()),
    );
    serde_json::from_slice(&stdout).unwrap()
}

fn bundled() -> Dataset {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../datasets/cnn_dailymail_sample.json");
    Dataset::load(path, &DatasetOptions::new()).unwrap()
}

fn article(s: &dataset::Sample) -> String {
    let t = s.input_text.as_deref().unwrap();
    let start = t.find("Article:\n").unwrap() + "Article:\n".len();
    let end = t.rfind("\n\nSummary:").unwrap();
    t[start..end].to_string()
}

const TRICKY: &[&str] = &[
    "",
    "   ",
    "...",
    "!!! ??? ...",
    "The U.S. economy grew 2.5% in Q3. Mr. Smith, of Acme Inc., said so.",
    "Dr. J. R. Smith arrived at 5 p.m. on Jan. 3. He left at 6.",
    "He said \"stop.\" Then he left. (Really.) [Yes.] 'Fine.'",
    "Prices rose from $3.40 to $3.99 -- a record... Shoppers complained!",
    "running runs ran runner easily easy generously generalization relational conditional",
    "the the the the cat cat sat sat sat",
    "Caf\u{e9} \u{fc}ber na\u{ef}ve r\u{e9}sum\u{e9} \u{2014} \u{65e5}\u{672c} stra\u{df}e",
    "It was 1,000,000 dollars. Or 1.000.000? No: 10^6!",
    "Line one\nLine two\n\nLine three after a blank line.",
    "e.g. this, i.e. that; etc. And more.",
    "No. 5 won. It was no. 1 before.",
    "hyphen-ated well-known state-of-the-art co-operate",
    "The 1990s and the '80s. The 21st century.",
    "ABC. DEF. GHI.",
    "WHAT?! Really?! Yes!!",
    "a b c d e f g h i j k l m n o p",
];

/// Prediction/reference pairs: references are the bundled highlights;
/// predictions are seeded perturbations of them and of the articles, plus
/// the tricky strings against each other.
fn corpus() -> Vec<(String, String)> {
    let d = bundled();
    let mut g = Mt19937::new(2024);
    let mut pairs = Vec::new();
    for (i, s) in d.samples.iter().enumerate() {
        let reference = s.reference.clone().unwrap();
        let art = article(s);
        let words: Vec<&str> = reference.split_whitespace().collect();
        let mut shuffled = words.clone();
        shuffle(&mut shuffled, &mut g);
        let cut = uniform_int(&mut g, 0, words.len() as u64) as usize;
        let first_sentences: String = art.split(". ").take(2).collect::<Vec<_>>().join(". ");
        pairs.push((reference.replace('\n', " "), reference.clone()));
        pairs.push((shuffled.join(" "), reference.clone()));
        pairs.push((words[..cut].join(" "), reference.clone()));
        pairs.push((first_sentences, reference.clone()));
        pairs.push((art.clone(), reference.clone()));
        pairs.push((
            format!("{} {}", words.join(" "), words.join(" ")),
            reference.clone(),
        ));
        pairs.push((TRICKY[i % TRICKY.len()].to_string(), reference.clone()));
    }
    for a in TRICKY {
        for b in TRICKY.iter().take(6) {
            pairs.push(((*a).to_string(), (*b).to_string()));
        }
    }
    pairs
}

#[test]
fn porter_stemmer_matches_nltk() {
    let Some((py, dir)) = peer("porter_stemmer_matches_nltk") else {
        return;
    };
    let mut words: Vec<String> = Vec::new();
    for s in bundled().samples {
        for t in [article(&s), s.reference.unwrap()] {
            words.extend(
                t.to_lowercase()
                    .split(|c: char| !c.is_ascii_alphanumeric())
                    .filter(|w| !w.is_empty())
                    .map(str::to_string),
            );
        }
    }
    for t in TRICKY {
        words.extend(t.split_whitespace().map(str::to_lowercase));
    }
    // Suffix-rule coverage: every step's suffixes on a few stems.
    let suffixes = [
        "sses", "ies", "ss", "s", "eed", "ed", "ing", "at", "bl", "iz", "y", "ational", "tional",
        "enci", "anci", "izer", "bli", "alli", "entli", "eli", "ousli", "ization", "ation", "ator",
        "alism", "iveness", "fulness", "ousness", "aliti", "iviti", "biliti", "fulli", "logi",
        "icate", "ative", "alize", "iciti", "ical", "ful", "ness", "al", "ance", "ence", "er",
        "ic", "able", "ible", "ant", "ement", "ment", "ent", "sion", "tion", "ou", "ism", "ate",
        "iti", "ous", "ive", "ize", "e", "ll", "ied", "yed", "ying",
    ];
    for stem in [
        "cat", "hop", "fil", "tr", "bo", "generat", "sens", "x", "ab", "oscill", "happ",
    ] {
        for suf in suffixes {
            words.push(format!("{stem}{suf}"));
        }
    }
    words.sort();
    words.dedup();
    let script = r#"
import json, sys
from nltk.stem.porter import PorterStemmer
p = PorterStemmer()
print(json.dumps([p.stem(w) for w in json.load(open(sys.argv[1]))]))
"#;
    let want = run_python(&py, &dir, script, &json!(words));
    let mut mismatches = Vec::new();
    for (w, s) in words.iter().zip(want.as_array().unwrap()) {
        let ours = porter::stem(w);
        if ours != s.as_str().unwrap() {
            mismatches.push(format!("{w}: ours {ours:?}, nltk {s}"));
        }
    }
    println!("porter: {} words compared", words.len());
    assert!(
        mismatches.is_empty(),
        "{} mismatches: {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(20)]
    );
}

#[test]
fn rouge_matches_rouge_score_per_pair() {
    let Some((py, dir)) = peer("rouge_matches_rouge_score_per_pair") else {
        return;
    };
    let pairs = corpus();
    // Python splits sentences for both sides (so ROUGE-Lsum sees the same
    // lines here) and scores; we score the same processed strings.
    let script = r#"
import json, sys, nltk
from rouge_score import rouge_scorer
sc = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
out = []
for pred, ref in json.load(open(sys.argv[1])):
    p = "\n".join(nltk.sent_tokenize(pred.strip()))
    r = "\n".join(nltk.sent_tokenize(ref.strip()))
    s = sc.score(r, p)
    out.append({"p": p, "r": r, "s": [s[k].fmeasure for k in ("rouge1", "rouge2", "rougeL", "rougeLsum")]})
print(json.dumps(out))
"#;
    let want = run_python(&py, &dir, script, &json!(pairs));
    let mut worst = 0.0f64;
    for (i, w) in want.as_array().unwrap().iter().enumerate() {
        let (p, r) = (w["p"].as_str().unwrap(), w["r"].as_str().unwrap());
        let s = rouge::score(r, p);
        let theirs: Vec<f64> = w["s"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let ours = [s.rouge1, s.rouge2, s.rouge_l, s.rouge_lsum];
        for (k, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            worst = worst.max((a - b).abs());
            assert!(
                (a - b).abs() <= 1e-9,
                "pair {i} metric {k}: ours {a}, rouge_score {b}\npred {p:?}\nref {r:?}"
            );
        }
    }
    println!("rouge: {} pairs, max |diff| {worst:e}", pairs.len());
}

#[test]
fn sentence_splitting_matches_nltk_with_the_punkt_tables() {
    let Some((py, dir)) = peer("sentence_splitting_matches_nltk_with_the_punkt_tables") else {
        return;
    };
    let mut texts: Vec<String> = TRICKY.iter().map(|s| (*s).to_string()).collect();
    for s in bundled().samples {
        texts.push(article(&s));
        texts.push(s.reference.unwrap());
    }
    for (p, r) in corpus() {
        texts.push(p);
        texts.push(r);
    }
    let script = r#"
import json, sys, nltk
print(json.dumps([nltk.sent_tokenize(t) for t in json.load(open(sys.argv[1]))]))
"#;
    let want = run_python(&py, &dir, script, &json!(texts));
    let exact = SentenceSplitter::new(PunktParams::from_dir(&dir).unwrap());
    let builtin = SentenceSplitter::default();
    let mut builtin_agree = 0;
    for (t, w) in texts.iter().zip(want.as_array().unwrap()) {
        let theirs: Vec<&str> = w
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert_eq!(exact.split(t), theirs, "text {t:?}");
        if builtin.split(t) == theirs {
            builtin_agree += 1;
        }
    }
    println!(
        "punkt: {} texts identical with the NLTK tables; built-in tables agree on {builtin_agree}",
        texts.len()
    );
}

#[test]
fn mlperf_pipeline_matches_the_reference_computation() {
    let Some((py, dir)) = peer("mlperf_pipeline_matches_the_reference_computation") else {
        return;
    };
    let pairs = corpus();
    // evaluation.py's postprocess_text, compute(use_aggregator=False) as
    // HF evaluate does it, then the mean x100 rounded to 4 places.
    let script = r#"
import json, sys, nltk
import numpy as np
from rouge_score import rouge_scorer
pairs = json.load(open(sys.argv[1]))
preds = ["\n".join(nltk.sent_tokenize(p.strip())) for p, _ in pairs]
refs = ["\n".join(nltk.sent_tokenize(r.strip())) for _, r in pairs]
sc = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
scores = [sc.score(r, p) for r, p in zip(refs, preds)]
res = {k: round(np.mean([s[k].fmeasure for s in scores]) * 100, 4) for k in ("rouge1", "rouge2", "rougeL", "rougeLsum")}
res["gen_len"] = int(np.sum([len(p) for p in preds]))
res["gen_num"] = len(preds)
print(json.dumps(res))
"#;
    let want = run_python(&py, &dir, script, &json!(pairs));
    let splitter = SentenceSplitter::new(PunktParams::from_dir(&dir).unwrap());
    let preds: Vec<&str> = pairs.iter().map(|(p, _)| p.as_str()).collect();
    let refs: Vec<&str> = pairs.iter().map(|(_, r)| r.as_str()).collect();
    let r = score_texts(&preds, &refs, &splitter, 0);
    assert_eq!(r.rouge1, want["rouge1"].as_f64().unwrap());
    assert_eq!(r.rouge2, want["rouge2"].as_f64().unwrap());
    assert_eq!(r.rouge_l, want["rougeL"].as_f64().unwrap());
    assert_eq!(r.rouge_lsum, want["rougeLsum"].as_f64().unwrap());
    assert_eq!(r.gen_len, want["gen_len"].as_u64().unwrap());
    assert_eq!(r.gen_num as u64, want["gen_num"].as_u64().unwrap());
    println!("pipeline: {want}");
    // The postprocessed strings are what both sides scored.
    assert_eq!(postprocess("  A b. C d.  ", &splitter), "A b.\nC d.");
}
