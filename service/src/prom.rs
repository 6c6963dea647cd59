//! `harness serve --prometheus-listen ADDR`: gauges derived from the
//! history, at `http://ADDR/metrics`, for a Prometheus (and its alerts)
//! watching what teams record: per system, model and scenario the runs
//! recorded, when the latest started, and the latest value of every
//! run-level figure of the registry (`reports::figures`, the same names,
//! units and values as summary.json and the history).
//!
//! The exposition is computed once per history change (the rankings
//! cache's generation: a run recorded here, by another process, or with
//! PostgreSQL by another instance) and then served from memory. No key is
//! asked: the listener is separate from the API and meant for a private
//! network, and it shows aggregates only (no run directory, no file).
//!
//! The text is written here, not by a metrics crate: these are snapshots of
//! the database, recomputed whole, with label sets that come and go as runs
//! are recorded and pruned; a registry of long-lived metric objects would
//! need clearing and refilling on every change. Its few lines are checked
//! by the strict text-format parser test below.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use history::RunEntry;

use crate::rankings::system_of;

/// One family of the exposition: name, type, labels, meaning.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// Its name.
    pub name: &'static str,
    /// `gauge` (all of them).
    pub kind: &'static str,
    /// Its labels, in order.
    pub labels: &'static [&'static str],
    /// What it measures (its HELP text).
    pub help: &'static str,
}

const GROUP: &[&str] = &["system", "model", "scenario"];

/// Every family, in exposition order.
pub const FAMILIES: &[Family] = &[
    Family {
        name: "harness_history_runs",
        kind: "gauge",
        labels: GROUP,
        help: "Runs recorded in the history.",
    },
    Family {
        name: "harness_history_last_run_timestamp_seconds",
        kind: "gauge",
        labels: GROUP,
        help: "When the latest recorded run started, Unix time.",
    },
    Family {
        name: "harness_history_figure",
        kind: "gauge",
        labels: &["system", "model", "scenario", "name", "unit"],
        help: "The latest recorded value of each run-level figure (summary.json's figures).",
    },
];

/// The README's table of these series.
pub fn markdown_table() -> String {
    let mut out = String::from("| series | type | labels | meaning |\n|---|---|---|---|\n");
    for f in FAMILIES {
        let labels = f
            .labels
            .iter()
            .map(|l| format!("`{l}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(out, "| `{}` | {} | {labels} | {} |", f.name, f.kind, f.help);
    }
    out
}

/// What one (system, model, scenario) group shows.
#[derive(Debug, Default)]
struct Group {
    runs: u64,
    last_start_s: Option<f64>,
    /// Figure name -> the newest run's value of it.
    figures: BTreeMap<&'static str, f64>,
}

/// The exposition of `runs`, given newest first (as [`history::History::list`]
/// returns them): a figure's value is that of the newest run that has it.
pub fn render(runs: &[RunEntry]) -> String {
    let mut groups: BTreeMap<(String, String, String), Group> = BTreeMap::new();
    for run in runs {
        let key = (
            system_of(&run.labels, &run.backends),
            run.model.clone(),
            run.scenario.clone(),
        );
        let group = groups.entry(key).or_default();
        group.runs += 1;
        let start = chrono::DateTime::parse_from_rfc3339(&run.started_at)
            .ok()
            .map(|t| t.timestamp_millis() as f64 / 1e3);
        if let Some(start) = start {
            group.last_start_s = Some(group.last_start_s.map_or(start, |s| s.max(start)));
        }
        for (name, value) in &run.metrics {
            if let Some(figure) = reports::figures::find(name) {
                group.figures.entry(figure.name).or_insert(*value);
            }
        }
    }
    let mut out = String::new();
    for family in FAMILIES {
        let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
        let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind);
        for ((system, model, scenario), group) in &groups {
            let labels = [("system", system), ("model", model), ("scenario", scenario)];
            let base = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                .collect::<Vec<_>>()
                .join(",");
            match family.name {
                "harness_history_runs" => {
                    let _ = writeln!(out, "{}{{{base}}} {}", family.name, group.runs);
                }
                "harness_history_last_run_timestamp_seconds" => {
                    if let Some(t) = group.last_start_s {
                        let _ = writeln!(out, "{}{{{base}}} {}", family.name, prom_float(t));
                    }
                }
                _ => {
                    for (name, value) in &group.figures {
                        let unit = reports::figures::find(name).map_or("", |f| f.unit);
                        let _ = writeln!(
                            out,
                            "{}{{{base},name=\"{}\",unit=\"{}\"}} {}",
                            family.name,
                            escape_label(name),
                            escape_label(unit),
                            prom_float(*value)
                        );
                    }
                }
            }
        }
    }
    out
}

/// A label value in the text format's escaping.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A sample value as the text format spells it; finite values in Rust's
/// shortest round-trip form (the same f64 as the history holds).
fn prom_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, system: &str, started_at: &str, metrics: &[(&str, f64)]) -> RunEntry {
        RunEntry {
            run_id: id.into(),
            run_dir: format!("runs/{id}"),
            started_at: started_at.into(),
            model: "llama3_1-8b".into(),
            scenario: "Server".into(),
            mode: "PerformanceOnly".into(),
            backends: vec!["http://a:8000".into()],
            dataset: None,
            labels: vec![("system".into(), system.into())],
            status: "complete".into(),
            valid: Some(true),
            reasons: vec![],
            harness_version: "0".into(),
            loadgen: String::new(),
            metrics: metrics.iter().map(|(n, v)| ((*n).into(), *v)).collect(),
        }
    }

    #[test]
    fn the_newest_value_of_each_figure_per_system() {
        // Newest first, as the history lists them.
        let runs = [
            run(
                "b2",
                "vllm \"b\"",
                "2026-01-02T00:00:00+00:00",
                &[("samples_per_s", 12.5)],
            ),
            run(
                "b1",
                "vllm \"b\"",
                "2026-01-01T00:00:00+00:00",
                &[
                    ("samples_per_s", 10.0),
                    ("ttft_p99_ms", 80.0),
                    ("no_such_figure", 1.0),
                ],
            ),
            run(
                "a1",
                "sglang",
                "2026-01-01T12:00:00+01:00",
                &[("samples_per_s", 7.25)],
            ),
        ];
        let text = render(&runs);
        let b = "system=\"vllm \\\"b\\\"\",model=\"llama3_1-8b\",scenario=\"Server\"";
        let a = "system=\"sglang\",model=\"llama3_1-8b\",scenario=\"Server\"";
        let unit = |n: &str| reports::figures::find(n).unwrap().unit;
        for line in [
            format!("harness_history_runs{{{b}}} 2"),
            format!("harness_history_runs{{{a}}} 1"),
            format!("harness_history_last_run_timestamp_seconds{{{b}}} 1767312000"),
            format!("harness_history_last_run_timestamp_seconds{{{a}}} 1767265200"),
            format!(
                "harness_history_figure{{{b},name=\"samples_per_s\",unit=\"{}\"}} 12.5",
                unit("samples_per_s")
            ),
            // A figure the newest run lacks comes from the newest that has it.
            format!(
                "harness_history_figure{{{b},name=\"ttft_p99_ms\",unit=\"{}\"}} 80",
                unit("ttft_p99_ms")
            ),
            format!(
                "harness_history_figure{{{a},name=\"samples_per_s\",unit=\"{}\"}} 7.25",
                unit("samples_per_s")
            ),
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        // Only the registry's figures.
        assert!(!text.contains("no_such_figure"), "{text}");
        for f in FAMILIES {
            assert!(text.contains(&format!("# TYPE {} gauge\n", f.name)));
        }
    }

    #[test]
    fn the_readme_table_is_the_code_table() {
        const START: &str = "<!-- serve-prometheus-table: generated from service/src/prom.rs -->\n";
        const END: &str = "<!-- /serve-prometheus-table -->";
        let path = format!("{}/../README.md", env!("CARGO_MANIFEST_DIR"));
        let readme = std::fs::read_to_string(&path).unwrap();
        let start = readme
            .find(START)
            .expect("README.md lacks the start marker")
            + START.len();
        let len = readme[start..]
            .find(END)
            .expect("README.md lacks the end marker");
        let table = markdown_table();
        assert!(
            readme[start..start + len] == table,
            "README.md's serve series table differs from the code's; replace it with:\n\n{table}"
        );
    }
}
