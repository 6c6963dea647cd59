//! What the rules (as MLCommons' v6.0/v6.1 submission checker enforces
//! them) demand of a run's size, per benchmark, and what runs of one
//! submission must share.

use serde_json::Value;

/// The rules' minimum run length (`TEST_DURATION_MS`).
pub const MIN_DURATION_MS: u64 = 600_000;

/// A benchmark's size requirements (the checker's
/// `performance-sample-count`, `dataset-size` / `accuracy-sample-count` and
/// `OFFLINE_MIN_SPQ_SINCE_V4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchmarkRules {
    /// Smallest `effective_performance_sample_count`.
    pub performance_sample_count: u64,
    /// The accuracy run's sample count: the whole dataset.
    pub accuracy_sample_count: u64,
    /// Smallest Offline `effective_samples_per_query` (closed division).
    pub offline_min_samples_per_query: u64,
}

/// The rules of the LLM benchmarks this harness serves; `None` for a
/// benchmark it has no table for (its sizes are then not checked).
pub fn benchmark_rules(benchmark: &str) -> Option<BenchmarkRules> {
    let n = match benchmark {
        "llama3.1-8b" | "llama3.1-8b-interactive" => 13_368,
        "llama3.1-8b-edge" => 5_000,
        "llama2-70b-99"
        | "llama2-70b-99.9"
        | "llama2-70b-interactive-99"
        | "llama2-70b-interactive-99.9" => 24_576,
        _ => return None,
    };
    Some(BenchmarkRules {
        performance_sample_count: n,
        accuracy_sample_count: n,
        offline_min_samples_per_query: n,
    })
}

/// The MLPerf model key of a benchmark (mlperf.conf's and user.conf's
/// `model` part).
pub fn model_key(benchmark: &str) -> String {
    benchmark
        .trim_end_matches("-99.9")
        .trim_end_matches("-99")
        .replace("llama3.1", "llama3_1")
}

/// The settings every run of one submission (one benchmark on one system)
/// must share, as `(what, value)`: read from run.json (absent fields read
/// as empty) and the detail log.
pub fn shared_settings(
    manifest: Option<&Value>,
    qsl_total: Option<&Value>,
) -> Vec<(&'static str, String)> {
    let m = manifest.unwrap_or(&Value::Null);
    let config = &m["config"];
    let text = |v: &Value| match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    vec![
        ("LoadGen model key", text(&m["model"])),
        ("served model", text(&config["server_model"])),
        ("dataset", text(&m["dataset"])),
        (
            "dataset size (qsl_reported_total_count)",
            qsl_total.map(text).unwrap_or_default(),
        ),
        ("backends", text(&m["backends"])),
        ("server", text(&config["server"])),
        ("request settings", text(&config["request"])),
        ("tokenizer", text(&config["tokenizer"])),
        ("LoadGen", text(&m["loadgen"])),
        ("system label", text(&m["labels"]["system"])),
    ]
}

/// The first setting in which `run` differs from `reference`, as a reason.
pub fn settings_mismatch(
    run: &[(&'static str, String)],
    reference: &[(&'static str, String)],
    reference_name: &str,
) -> Option<String> {
    run.iter()
        .zip(reference)
        .find(|(a, b)| a.1 != b.1)
        .map(|(a, b)| {
            format!(
                "settings differ from {reference_name}: {} is {} here, {} there",
                a.0,
                shown(&a.1),
                shown(&b.1)
            )
        })
}

fn shown(v: &str) -> String {
    if v.is_empty() {
        "not recorded".to_owned()
    } else {
        format!("{v:?}")
    }
}

/// A user.conf's settings lines (comments, blank lines and surrounding
/// space dropped): two files that set the same keys compare equal.
pub fn conf_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split_once('#').map_or(l, |(before, _)| before))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn model_keys_are_mlperf_conf_names() {
        assert_eq!(model_key("llama3.1-8b"), "llama3_1-8b");
        assert_eq!(model_key("llama2-70b-99.9"), "llama2-70b");
        assert_eq!(
            model_key("llama2-70b-interactive-99"),
            "llama2-70b-interactive"
        );
        assert_eq!(
            benchmark_rules("llama3.1-8b")
                .unwrap()
                .performance_sample_count,
            13_368
        );
        assert_eq!(
            benchmark_rules("llama2-70b-99.9")
                .unwrap()
                .accuracy_sample_count,
            24_576
        );
        assert_eq!(benchmark_rules("resnet"), None);
    }

    #[test]
    fn the_first_differing_setting_is_named_with_both_values() {
        let run = |model: &str, max_tokens: u64| {
            json!({"model": "llama3_1-8b", "dataset": "cnn_eval.json",
                   "config": {"server_model": model, "request": {"max_tokens": max_tokens}}})
        };
        let a = shared_settings(Some(&run("m", 128)), Some(&json!(13368)));
        assert_eq!(settings_mismatch(&a, &a, "runs/a"), None);
        let b = shared_settings(Some(&run("m", 64)), Some(&json!(13368)));
        assert_eq!(
            settings_mismatch(&b, &a, "runs/a").unwrap(),
            "settings differ from runs/a: request settings is \"{\\\"max_tokens\\\":64}\" here, \
             \"{\\\"max_tokens\\\":128}\" there"
        );
        let c = shared_settings(None, Some(&json!(13368)));
        assert!(
            settings_mismatch(&c, &a, "runs/a")
                .unwrap()
                .contains("is not recorded here")
        );
    }

    #[test]
    fn conf_lines_ignore_comments_and_spacing() {
        assert_eq!(
            conf_lines(
                "# mine\n*.Offline.target_qps  =  10 \n\n llama3_1-8b.*.min_duration = 600000\n"
            ),
            conf_lines(
                "*.Offline.target_qps = 10\nllama3_1-8b.*.min_duration = 600000 # ten minutes"
            ),
        );
        assert_ne!(
            conf_lines("*.Offline.target_qps = 10"),
            conf_lines("*.Offline.target_qps = 11")
        );
    }
}
