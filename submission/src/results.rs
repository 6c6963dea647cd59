//! The results of a submission tree (ours or MLCommons' published results
//! repositories, same layout) and two trees side by side, like the MLCommons
//! results table: one row per benchmark, scenario and system, the metric
//! the checker reports for it, and the ratio of the second tree to the
//! first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::tree::{RunLogs, TreeError};

/// One performance result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultEntry {
    /// `closed` / `open`.
    pub division: String,
    /// Submitter.
    pub submitter: String,
    /// System name.
    pub system: String,
    /// Benchmark (`llama3.1-8b`, ...).
    pub benchmark: String,
    /// Scenario folder (`Server`, `Offline`, `Interactive`, ...).
    pub scenario: String,
    /// The detail-log key the value comes from (the checker's metric).
    pub metric: String,
    /// The value.
    pub value: f64,
    /// Its unit.
    pub unit: String,
    /// `result_validity`.
    pub valid: bool,
}

impl ResultEntry {
    /// Latency metrics are better when lower.
    pub fn lower_is_better(&self) -> bool {
        self.metric.starts_with("early_stopping_latency")
    }
}

/// The checker's metric for a scenario (`RESULT_FIELD_NEW` plus the LLM
/// token overrides): key and unit.
fn metric(scenario: &str, tokens: bool) -> (&'static str, &'static str) {
    match (scenario, tokens) {
        ("Offline", true) => ("result_tokens_per_second", "Tokens/s"),
        ("Offline", false) => ("result_samples_per_second", "Samples/s"),
        ("Server" | "Interactive", true) => ("result_completed_tokens_per_second", "Tokens/s"),
        ("Server" | "Interactive", false) => ("result_completed_samples_per_sec", "Queries/s"),
        ("MultiStream", _) => ("early_stopping_latency_ms", "Latency (ns)"),
        _ => ("early_stopping_latency_ss", "Latency (ns)"),
    }
}

fn find_details(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), TreeError> {
    let entries = std::fs::read_dir(dir).map_err(|source| TreeError::Io {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            find_details(&path, out)?;
        } else if path.ends_with("performance/run_1/mlperf_log_detail.txt") {
            out.push(path);
        }
    }
    Ok(())
}

/// Whether `dir` looks like a submission tree (or a published results
/// repository): a `closed/`, `open/` or `results/` folder and no run or
/// sweep files.
pub fn is_submission_tree(dir: &Path) -> bool {
    !dir.join("run.json").exists()
        && !dir.join("sweep.json").exists()
        && ["closed", "open", "results"]
            .iter()
            .any(|d| dir.join(d).is_dir())
}

/// Every `<division>/<submitter>/results/<system>/<benchmark>/<scenario>/
/// performance/run_1/mlperf_log_detail.txt` under `root`, sorted. Compliance
/// runs (`TEST*/performance/run_1`) are not results and are skipped.
pub fn read_results(root: &Path) -> Result<Vec<ResultEntry>, TreeError> {
    let mut details = Vec::new();
    find_details(root, &mut details)?;
    let mut results = Vec::new();
    for path in details {
        // .../<division>/<submitter>/results/<system>/<benchmark>/<scenario>/performance/run_1/<file>
        let parts: Vec<String> = path
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let n = parts.len();
        if n < 9 || parts[n - 7] != "results" {
            continue;
        }
        let scenario = parts[n - 4].clone();
        let Some(run_dir) = path.parent() else {
            continue;
        };
        let logs = RunLogs::read(run_dir)?;
        let tokens = logs.detail.get("requested_use_token_latencies") == Some(&Value::Bool(true));
        let (key, unit) = metric(&scenario, tokens);
        let Some(value) = logs.detail.get(key).and_then(Value::as_f64) else {
            return Err(TreeError::Format {
                path: path.clone(),
                message: format!("no {key}"),
            });
        };
        results.push(ResultEntry {
            division: parts[n - 9].clone(),
            submitter: parts[n - 8].clone(),
            system: parts[n - 6].clone(),
            benchmark: parts[n - 5].clone(),
            scenario,
            metric: key.to_owned(),
            value,
            unit: unit.to_owned(),
            valid: logs.detail.get("result_validity") == Some(&Value::from("VALID")),
        });
    }
    results.sort_by(|a, b| {
        (&a.benchmark, &a.scenario, &a.system).cmp(&(&b.benchmark, &b.scenario, &b.system))
    });
    Ok(results)
}

/// One row of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComparedRow {
    /// Benchmark.
    pub benchmark: String,
    /// Scenario.
    pub scenario: String,
    /// The first tree's result, if it has one.
    pub a: Option<ResultEntry>,
    /// The second tree's result, if it has one.
    pub b: Option<ResultEntry>,
    /// `b / a` for throughput, `a / b` for latency: above 1 means the
    /// second tree is better.
    pub speedup: Option<f64>,
}

/// Pairs two trees' results by benchmark and scenario; when a side has
/// several systems for one, they pair by system name.
pub fn compare(a: &[ResultEntry], b: &[ResultEntry]) -> Vec<ComparedRow> {
    type Key = (String, String);
    let mut groups: BTreeMap<Key, (Vec<&ResultEntry>, Vec<&ResultEntry>)> = BTreeMap::new();
    for r in a {
        let key = (r.benchmark.clone(), r.scenario.clone());
        groups.entry(key).or_default().0.push(r);
    }
    for r in b {
        let key = (r.benchmark.clone(), r.scenario.clone());
        groups.entry(key).or_default().1.push(r);
    }
    let mut rows = Vec::new();
    for ((benchmark, scenario), (left, right)) in groups {
        let mut pairs: Vec<(Option<&ResultEntry>, Option<&ResultEntry>)> = Vec::new();
        if left.len() == 1 && right.len() == 1 {
            pairs.push((Some(left[0]), Some(right[0])));
        } else {
            for l in &left {
                pairs.push((
                    Some(*l),
                    right.iter().copied().find(|r| r.system == l.system),
                ));
            }
            for r in &right {
                if !left.iter().any(|l| l.system == r.system) {
                    pairs.push((None, Some(*r)));
                }
            }
        }
        for (x, y) in pairs {
            let speedup = match (x, y) {
                (Some(x), Some(y)) if x.metric == y.metric && x.value > 0.0 && y.value > 0.0 => {
                    Some(if x.lower_is_better() {
                        x.value / y.value
                    } else {
                        y.value / x.value
                    })
                }
                _ => None,
            };
            rows.push(ComparedRow {
                benchmark: benchmark.clone(),
                scenario: scenario.clone(),
                a: x.cloned(),
                b: y.cloned(),
                speedup,
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn put(root: &Path, system: &str, scenario: &str, pairs: &[(&str, Value)]) {
        let dir = root
            .join("closed/Acme/results")
            .join(system)
            .join("llama3.1-8b")
            .join(scenario)
            .join("performance/run_1");
        std::fs::create_dir_all(&dir).unwrap();
        let text: String = pairs
            .iter()
            .map(|(k, v)| format!(":::MLLOG {}\n", json!({"key": k, "value": v})))
            .collect();
        std::fs::write(dir.join("mlperf_log_detail.txt"), text).unwrap();
    }

    #[test]
    fn trees_pair_by_benchmark_and_scenario_with_the_checkers_metric() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        fn llm(key: &'static str, v: f64) -> Vec<(&'static str, Value)> {
            vec![
                ("requested_use_token_latencies", json!(true)),
                ("result_validity", json!("VALID")),
                (key, json!(v)),
            ]
        }
        put(
            a.path(),
            "box1",
            "Offline",
            &llm("result_tokens_per_second", 1000.0),
        );
        put(
            a.path(),
            "box1",
            "Server",
            &llm("result_completed_tokens_per_second", 800.0),
        );
        put(
            b.path(),
            "box2",
            "Offline",
            &llm("result_tokens_per_second", 2500.0),
        );
        // A compliance run is not a result.
        let audit = b
            .path()
            .join("closed/Acme/results/box2/llama3.1-8b/Offline/TEST01/performance/run_1");
        std::fs::create_dir_all(&audit).unwrap();
        std::fs::write(audit.join("mlperf_log_detail.txt"), "").unwrap();
        let ra = read_results(a.path()).unwrap();
        let rb = read_results(b.path()).unwrap();
        assert_eq!(rb.len(), 1);
        assert_eq!(rb[0].unit, "Tokens/s");
        let rows = compare(&ra, &rb);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].scenario, "Offline");
        assert_eq!(rows[0].speedup, Some(2.5));
        assert_eq!(rows[1].scenario, "Server");
        assert!(rows[1].b.is_none() && rows[1].speedup.is_none());
    }

    #[test]
    fn latency_speedup_is_inverted() {
        let r = |v: f64| ResultEntry {
            division: "closed".into(),
            submitter: "x".into(),
            system: "s".into(),
            benchmark: "resnet".into(),
            scenario: "SingleStream".into(),
            metric: "early_stopping_latency_ss".into(),
            value: v,
            unit: "Latency (ns)".into(),
            valid: true,
        };
        assert_eq!(compare(&[r(200.0)], &[r(100.0)])[0].speedup, Some(2.0));
    }
}
