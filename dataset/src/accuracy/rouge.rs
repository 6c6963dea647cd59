//! ROUGE exactly as Google's `rouge_score` 0.1.2 computes it, called the way
//! Hugging Face `evaluate`'s "rouge" metric calls it
//! (`RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"],
//! use_stemmer=True).score(reference, prediction)`).
//!
//! - Tokenizer: lowercase (Unicode, as Python's `str.lower`), every run of
//!   characters outside `[a-z0-9]` becomes a space, split on whitespace,
//!   tokens longer than 3 characters go through NLTK's Porter stemmer
//!   ([`super::porter::stem`]), empty tokens dropped.
//! - rouge1/rouge2: clipped n-gram overlap; precision over the prediction's
//!   n-grams, recall over the reference's (each denominator at least 1).
//! - rougeL: longest common subsequence over the whole token lists.
//! - rougeLsum: sentences are the `\n`-separated non-empty lines; the
//!   summary-level union-LCS with `rouge_score`'s double-counting guard.
//! - F-measure `2PR/(P+R)`, 0 when `P+R = 0`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// F-measures of one prediction against one reference (0..=1).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RougeScores {
    /// ROUGE-1 F-measure.
    pub rouge1: f64,
    /// ROUGE-2 F-measure.
    pub rouge2: f64,
    /// ROUGE-L F-measure.
    pub rouge_l: f64,
    /// ROUGE-Lsum F-measure.
    pub rouge_lsum: f64,
}

/// `rouge_score`'s tokenizer with the stemmer on.
pub fn tokenize(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    lower
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|t| !t.is_empty())
        .map(|t| {
            if t.len() > 3 {
                super::porter::stem(t)
            } else {
                t.to_string()
            }
        })
        .filter(|t| !t.is_empty())
        .collect()
}

/// Scores `prediction` against `reference`.
pub fn score(reference: &str, prediction: &str) -> RougeScores {
    let r = intern_tokens(reference, prediction);
    RougeScores {
        rouge1: ngram_f(&r.reference, &r.prediction, 1),
        rouge2: ngram_f(&r.reference, &r.prediction, 2),
        rouge_l: lcs_f(&r.reference, &r.prediction),
        rouge_lsum: summary_lcs_f(&r.reference_sents, &r.prediction_sents),
    }
}

/// Token ids (interned strings) for the whole texts and per line.
struct Interned {
    reference: Vec<u32>,
    prediction: Vec<u32>,
    reference_sents: Vec<Vec<u32>>,
    prediction_sents: Vec<Vec<u32>>,
}

fn intern_tokens(reference: &str, prediction: &str) -> Interned {
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut intern = |tokens: Vec<String>| -> Vec<u32> {
        tokens
            .into_iter()
            .map(|t| {
                let next = ids.len() as u32;
                *ids.entry(t).or_insert(next)
            })
            .collect()
    };
    let sents = |text: &str| -> Vec<String> {
        text.split('\n')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    let reference_ids = intern(tokenize(reference));
    let prediction_ids = intern(tokenize(prediction));
    let reference_sents = sents(reference)
        .iter()
        .map(|s| intern(tokenize(s)))
        .collect();
    let prediction_sents = sents(prediction)
        .iter()
        .map(|s| intern(tokenize(s)))
        .collect();
    Interned {
        reference: reference_ids,
        prediction: prediction_ids,
        reference_sents,
        prediction_sents,
    }
}

fn fmeasure(precision: f64, recall: f64) -> f64 {
    if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    }
}

fn ngram_f(reference: &[u32], prediction: &[u32], n: usize) -> f64 {
    let r = ngram_counts(reference, n);
    let p = ngram_counts(prediction, n);
    let overlap: usize = r
        .iter()
        .map(|(g, &c)| c.min(p.get(g).copied().unwrap_or(0)))
        .sum();
    let r_total: usize = r.values().sum();
    let p_total: usize = p.values().sum();
    let precision = overlap as f64 / p_total.max(1) as f64;
    let recall = overlap as f64 / r_total.max(1) as f64;
    fmeasure(precision, recall)
}

fn ngram_counts(tokens: &[u32], n: usize) -> HashMap<&[u32], usize> {
    let mut m: HashMap<&[u32], usize> = HashMap::new();
    if tokens.len() >= n {
        for g in tokens.windows(n) {
            *m.entry(g).or_default() += 1;
        }
    }
    m
}

/// The full LCS table, (len(a)+1) x (len(b)+1), row-major.
fn lcs_table(a: &[u32], b: &[u32]) -> Vec<u32> {
    let cols = b.len() + 1;
    let mut t = vec![0u32; (a.len() + 1) * cols];
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            t[i * cols + j] = if a[i - 1] == b[j - 1] {
                t[(i - 1) * cols + j - 1] + 1
            } else {
                t[(i - 1) * cols + j].max(t[i * cols + j - 1])
            };
        }
    }
    t
}

fn lcs_f(reference: &[u32], prediction: &[u32]) -> f64 {
    if reference.is_empty() || prediction.is_empty() {
        return 0.0;
    }
    let t = lcs_table(reference, prediction);
    let lcs = f64::from(t[t.len() - 1]);
    fmeasure(lcs / prediction.len() as f64, lcs / reference.len() as f64)
}

/// Indices into `r` of one LCS of `r` and `c`, chosen by `rouge_score`'s
/// `_backtrack_norec` (ties move up, not left).
fn lcs_indices(r: &[u32], c: &[u32]) -> Vec<usize> {
    let t = lcs_table(r, c);
    let cols = c.len() + 1;
    let (mut i, mut j) = (r.len(), c.len());
    let mut out = Vec::new();
    while i > 0 && j > 0 {
        if r[i - 1] == c[j - 1] {
            out.push(i - 1);
            i -= 1;
            j -= 1;
        } else if t[i * cols + j - 1] > t[(i - 1) * cols + j] {
            j -= 1;
        } else {
            i -= 1;
        }
    }
    out.reverse();
    out
}

fn summary_lcs_f(reference: &[Vec<u32>], prediction: &[Vec<u32>]) -> f64 {
    if reference.is_empty() || prediction.is_empty() {
        return 0.0;
    }
    let m: usize = reference.iter().map(Vec::len).sum();
    let n: usize = prediction.iter().map(Vec::len).sum();
    if m == 0 || n == 0 {
        return 0.0;
    }
    let mut count_r: HashMap<u32, usize> = HashMap::new();
    let mut count_c: HashMap<u32, usize> = HashMap::new();
    for &t in reference.iter().flatten() {
        *count_r.entry(t).or_default() += 1;
    }
    for &t in prediction.iter().flatten() {
        *count_c.entry(t).or_default() += 1;
    }
    let mut hits = 0usize;
    for r in reference {
        let mut union: Vec<usize> = prediction.iter().flat_map(|c| lcs_indices(r, c)).collect();
        union.sort_unstable();
        union.dedup();
        for i in union {
            let t = r[i];
            let (Some(cc), Some(cr)) = (count_c.get_mut(&t), count_r.get_mut(&t)) else {
                continue;
            };
            if *cc > 0 && *cr > 0 {
                hits += 1;
                *cc -= 1;
                *cr -= 1;
            }
        }
    }
    fmeasure(hits as f64 / n as f64, hits as f64 / m as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_lowercases_strips_and_stems() {
        assert_eq!(
            tokenize("The Cats' running-shoes cost $12.50!"),
            vec!["the", "cat", "run", "shoe", "cost", "12", "50"]
        );
        assert_eq!(tokenize("  ...  "), Vec::<String>::new());
        // Only tokens longer than 3 characters are stemmed.
        assert_eq!(tokenize("was dies"), vec!["was", "die"]);
    }

    #[test]
    fn hand_checked_scores() {
        let s = score("the cat sat on the mat", "the cat sat on the mat");
        assert_eq!(
            (s.rouge1, s.rouge2, s.rouge_l, s.rouge_lsum),
            (1.0, 1.0, 1.0, 1.0)
        );
        // 4 of 6 unigrams; bigrams: "the cat" only of 5; LCS 3 ("the", "cat", "the"?) ...
        let s = score("a b c d", "a c");
        // P = 2/2, R = 2/4 -> F = 2/3.
        assert!((s.rouge1 - 2.0 / 3.0).abs() < 1e-15);
        assert_eq!(s.rouge2, 0.0);
        assert!((s.rouge_l - 2.0 / 3.0).abs() < 1e-15);
        let empty = score("", "something");
        assert_eq!(empty, RougeScores::default());
    }
}
