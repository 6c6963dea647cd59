//! The run-level figures: one registry of every figure a run is judged by
//! (name, unit, which direction is better, definition, and the function that
//! computes it), evaluated once per run into `summary.json`'s `figures`.
//! The terminal screen, the history database, sweep.csv, compare, gate and
//! report.html all read the figures from there, so a figure has one value
//! wherever it is shown.
//!
//! Where MLPerf LoadGen defines a figure, the value is LoadGen's own, taken
//! from the `PerformanceSummary` that also wrote `mlperf_log_summary.txt`
//! (kept in run.json as `loadgen_results`). Figures LoadGen does not define
//! (Offline TTFT and TPOT, token latencies when LoadGen does not measure
//! them) come from `records.jsonl` and say so in their definitions.
//!
//! The names are those the history database and gate rules have always
//! used; [`FIGURES`] lists them in display order.

use std::collections::BTreeMap;

use loadgen::Scenario;
use loadgen::results::PerformanceSummary;

use crate::summary::Summary;

/// Which direction of a figure is an improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// More is better (throughput, validity).
    Higher,
    /// Less is better (latency, failures).
    Lower,
}

/// One run-level figure.
#[derive(Debug, Clone, Copy)]
pub struct Figure {
    /// The name in summary.json `figures`, the history, sweep.csv and gate
    /// rules.
    pub name: &'static str,
    /// Unit.
    pub unit: &'static str,
    /// Which direction is better.
    pub better: Better,
    /// What it is, for the user's manual.
    pub definition: &'static str,
    /// Computes it from a summary (`None` where the run has no such figure).
    pub compute: fn(&Summary) -> Option<f64>,
}

/// Every run-level figure.
pub static FIGURES: &[Figure] = &[
    Figure {
        name: "samples_per_s",
        unit: "samples/s",
        better: Better::Higher,
        definition: "LoadGen's throughput for the scenario: Offline result_samples_per_second \
                     (samples / longest latency), Server result_completed_samples_per_sec \
                     ((samples - 1) / last query's completion), SingleStream \
                     result_qps_with_loadgen_overhead ((samples - 1) / last query's issue). \
                     MultiStream, for which LoadGen reports no rate, uses the Server formula. \
                     Failed samples count, as in LoadGen.",
        compute: samples_per_s,
    },
    Figure {
        name: "output_tokens_per_s",
        unit: "tokens/s",
        better: Better::Higher,
        definition: "LoadGen's token throughput: Offline result_tokens_per_second (tokens / \
                     longest latency), otherwise result_completed_tokens_per_second (tokens / \
                     last query's completion). When LoadGen does not count tokens \
                     (use_token_latencies = 0), the output tokens of successful samples over \
                     the same duration.",
        compute: output_tokens_per_s,
    },
    Figure {
        name: "target_qps",
        unit: "queries/s",
        better: Better::Higher,
        definition: "The target (Server) or expected (Offline) QPS the phase ran at.",
        compute: |s| s.settings.as_ref().map(|x| x.target_qps),
    },
    Figure {
        name: "failed",
        unit: "samples",
        better: Better::Lower,
        definition: "Samples that completed with an error.",
        compute: |s| s.phase.as_ref().map(|_| s.counts.failed as f64),
    },
    Figure {
        name: "valid",
        unit: "1 = VALID",
        better: Better::Higher,
        definition: "The run's verdict: 1 VALID, 0 INVALID.",
        compute: |s| s.validity.run_valid.map(|v| f64::from(u8::from(v))),
    },
    latency(
        "latency_p50_ms",
        0,
        "LoadGen's 50th percentile latency (completion - scheduled; MultiStream: per query).",
    ),
    latency(
        "latency_p90_ms",
        1,
        "LoadGen's 90th percentile latency (completion - scheduled; MultiStream: per query).",
    ),
    latency(
        "latency_p99_ms",
        4,
        "LoadGen's 99th percentile latency (completion - scheduled; MultiStream: per query).",
    ),
    Figure {
        name: "latency_max_ms",
        unit: "ms",
        better: Better::Lower,
        definition: "LoadGen's max latency (MultiStream: per query).",
        compute: |s| {
            let r = loadgen_results(s)?;
            Some(ms(if r.scenario == Scenario::MultiStream {
                r.query_latency_max
            } else {
                r.sample_latency_max
            }))
        },
    },
    token("ttft_p50_ms", Token::Ttft, 0),
    token("ttft_p90_ms", Token::Ttft, 1),
    token("ttft_p99_ms", Token::Ttft, 4),
    token("ttft_max_ms", Token::Ttft, MAX),
    token("tpot_p50_ms", Token::Tpot, 0),
    token("tpot_p90_ms", Token::Tpot, 1),
    token("tpot_p99_ms", Token::Tpot, 4),
    token("tpot_max_ms", Token::Tpot, MAX),
];

/// The figure called `name`.
pub fn find(name: &str) -> Option<&'static Figure> {
    FIGURES.iter().find(|f| f.name == name)
}

/// Every figure the run has, by name.
pub fn compute(summary: &Summary) -> BTreeMap<String, f64> {
    FIGURES
        .iter()
        .filter_map(|f| {
            (f.compute)(summary)
                .filter(|v| v.is_finite())
                .map(|v| (f.name.to_owned(), v))
        })
        .collect()
}

fn ms(ns: i64) -> f64 {
    ns as f64 / 1e6
}

/// LoadGen's results, when the phase had any samples.
fn loadgen_results(s: &Summary) -> Option<&PerformanceSummary> {
    s.loadgen.as_ref().filter(|r| r.sample_count > 0)
}

fn token_mode(s: &Summary) -> bool {
    s.settings.as_ref().is_some_and(|x| x.use_token_latencies)
}

fn samples_per_s(s: &Summary) -> Option<f64> {
    let r = loadgen_results(s)?;
    match r.scenario {
        Scenario::Offline => r.rates.samples_per_second,
        Scenario::Server => r.rates.completed_samples_per_sec,
        Scenario::SingleStream => r.rates.qps_with_loadgen_overhead,
        Scenario::MultiStream => {
            Some(r.sample_count.saturating_sub(1) as f64 / r.final_query_all_samples_done_time)
        }
    }
}

fn output_tokens_per_s(s: &Summary) -> Option<f64> {
    let r = loadgen_results(s)?;
    if token_mode(s) {
        return match r.scenario {
            Scenario::Offline => r.rates.tokens_per_second,
            _ => r.rates.completed_tokens_per_second,
        };
    }
    let duration = match r.scenario {
        Scenario::Offline => r.max_latency,
        _ => r.final_query_all_samples_done_time,
    };
    let tokens = s.throughput.as_ref()?.output_tokens;
    Some(tokens as f64 / duration)
}

const fn latency(name: &'static str, index: usize, definition: &'static str) -> Figure {
    Figure {
        name,
        unit: "ms",
        better: Better::Lower,
        definition,
        compute: match index {
            0 => |s| latency_at(s, 0),
            1 => |s| latency_at(s, 1),
            _ => |s| latency_at(s, 4),
        },
    }
}

fn latency_at(s: &Summary, index: usize) -> Option<f64> {
    let r = loadgen_results(s)?;
    let p = r.latency_percentiles.get(index)?;
    Some(ms(if r.scenario == Scenario::MultiStream {
        p.query_latency
    } else {
        p.sample_latency
    }))
}

#[derive(Clone, Copy)]
enum Token {
    Ttft,
    Tpot,
}

/// Index for the max in [`token`].
const MAX: usize = usize::MAX;

const TTFT_DEFINITION: &str = "Time to first token: LoadGen's (first token - scheduled) \
    where LoadGen measures token latencies (use_token_latencies, not Offline); otherwise \
    the same from records.jsonl over successful samples (Offline: from the start of the \
    phase, since every sample is scheduled at 0).";
const TPOT_DEFINITION: &str = "Time per output token: LoadGen's ((latency - TTFT) / \
    (tokens - 1)) where LoadGen measures token latencies (use_token_latencies, not \
    Offline); otherwise (completion - first token) / (tokens - 1) from records.jsonl over \
    successful samples with at least 2 tokens. Offline always uses the latter: LoadGen \
    has no first token there, and latency / (tokens - 1) would count the wait in the \
    queue as decoding.";

const fn token(name: &'static str, which: Token, index: usize) -> Figure {
    Figure {
        name,
        unit: "ms",
        better: Better::Lower,
        definition: match which {
            Token::Ttft => TTFT_DEFINITION,
            Token::Tpot => TPOT_DEFINITION,
        },
        compute: match (which, index) {
            (Token::Ttft, 0) => |s| token_at(s, Token::Ttft, 0),
            (Token::Ttft, 1) => |s| token_at(s, Token::Ttft, 1),
            (Token::Ttft, 4) => |s| token_at(s, Token::Ttft, 4),
            (Token::Ttft, _) => |s| token_at(s, Token::Ttft, MAX),
            (Token::Tpot, 0) => |s| token_at(s, Token::Tpot, 0),
            (Token::Tpot, 1) => |s| token_at(s, Token::Tpot, 1),
            (Token::Tpot, 4) => |s| token_at(s, Token::Tpot, 4),
            (Token::Tpot, _) => |s| token_at(s, Token::Tpot, MAX),
        },
    }
}

fn token_at(s: &Summary, which: Token, index: usize) -> Option<f64> {
    let from_loadgen = token_mode(s)
        && s.loadgen
            .as_ref()
            .is_some_and(|r| r.scenario != Scenario::Offline);
    if from_loadgen {
        let r = loadgen_results(s)?;
        let (table, max) = match which {
            Token::Ttft => (&r.token_latency_percentiles, r.first_token_latency_max),
            Token::Tpot => (&r.tpot_percentiles, r.time_per_output_token_max),
        };
        return Some(ms(if index == MAX {
            max
        } else {
            table.get(index)?.sample_latency
        }));
    }
    // Without LoadGen's token results: LoadGen's percentile method
    // (`sorted[floor(N * p)]`) over records.jsonl.
    let stats = match which {
        Token::Ttft => s.ttft_ns.as_ref()?,
        Token::Tpot => s.tpot_ns.as_ref()?,
    };
    let ns = match index {
        MAX => stats.max,
        0 => stats.percentiles.get("p50")?.loadgen,
        1 => stats.percentiles.get("p90")?.loadgen,
        _ => stats.percentiles.get("p99")?.loadgen,
    };
    Some(ns / 1e6)
}

/// The verdict line: `VALID` or `INVALID`, then what LoadGen logged as
/// errors and which samples failed, e.g. `INVALID: LoadGen logged 2 errors
/// (error_runtime x2); 3 samples failed (http_status 2, timeout 1)`.
pub fn verdict_line(s: &Summary) -> String {
    let mut line = match s.validity.run_valid.or(s.validity.mlperf_valid) {
        Some(true) => "VALID".to_owned(),
        Some(false) => "INVALID".to_owned(),
        None => "no verdict (the run did not finish)".to_owned(),
    };
    let mut notes = Vec::new();
    let logged: u64 = s.errors.loadgen.iter().map(|e| e.count).sum();
    if logged > 0 {
        let mut by_key: Vec<(&str, u64)> = Vec::new();
        for e in &s.errors.loadgen {
            match by_key.iter_mut().find(|(k, _)| *k == e.key) {
                Some((_, n)) => *n += e.count,
                None => by_key.push((&e.key, e.count)),
            }
        }
        let kinds: Vec<String> = by_key.iter().map(|(k, n)| format!("{k} x{n}")).collect();
        notes.push(format!(
            "LoadGen logged {logged} error{} ({})",
            if logged == 1 { "" } else { "s" },
            kinds.join(", ")
        ));
    }
    if s.counts.failed > 0 {
        let mut kinds: Vec<(&String, &u64)> = s.errors.by_kind.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
        notes.push(format!(
            "{} sample{} failed ({})",
            s.counts.failed,
            if s.counts.failed == 1 { "" } else { "s" },
            kinds.join(", ")
        ));
    }
    if !notes.is_empty() {
        line.push_str(": ");
        line.push_str(&notes.join("; "));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_defined() {
        let mut names: Vec<&str> = FIGURES.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FIGURES.len());
        for f in FIGURES {
            assert!(!f.definition.is_empty() && !f.unit.is_empty(), "{}", f.name);
        }
        // The names gate rules and the history have always used.
        for old in [
            "target_qps",
            "samples_per_s",
            "output_tokens_per_s",
            "failed",
            "latency_p50_ms",
            "latency_p99_ms",
            "ttft_p50_ms",
            "ttft_p99_ms",
            "tpot_p50_ms",
            "tpot_p99_ms",
        ] {
            assert!(find(old).is_some(), "{old}");
        }
        assert_eq!(find("samples_per_s").unwrap().better, Better::Higher);
        // SCHEMA.md documents every figure.
        let doc = include_str!("../SCHEMA.md");
        let section = &doc[doc.find("## `figures`").unwrap()..];
        for f in FIGURES {
            assert!(
                section.contains(&format!("`{}`", f.name)),
                "SCHEMA.md lacks {}",
                f.name
            );
        }
        assert_eq!(find("tpot_p99_ms").unwrap().better, Better::Lower);
    }
}
