//! The server metric mapping table as documented: the README's table is the
//! code's table, and the Grafana dashboard's server row asks every server
//! for the series the table reads.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common {
    pub mod readme;
}

use common::readme::repo_file;
use rundir::metrics::names;
use telemetry::mapping::{CounterId, MAPPINGS, Read, Target, markdown_table};

const START: &str = "<!-- server-metrics-table: generated from telemetry/src/mapping.rs -->\n";
const END: &str = "<!-- /server-metrics-table -->";

#[test]
fn the_readme_table_is_the_code_table() {
    common::readme::assert_readme_table(START, END, "server metrics", &markdown_table());
}

/// The families a Prometheus scraping the servers can see for one row
/// (`llamacpp_slots:*` is derived by the harness from llama.cpp's /slots).
fn scrapable(target: Target) -> Vec<String> {
    let row = MAPPINGS.iter().find(|m| m.target == target).unwrap();
    let mut out = Vec::new();
    for s in row.sources {
        let families: Vec<&str> = match s.read {
            Read::Gauge(n, _) | Read::Histogram(n) => vec![n],
            Read::Ratio(a, b) => vec![a, b],
            Read::Counter(f, _) => f.to_vec(),
        };
        out.extend(
            families
                .into_iter()
                .filter(|f| !f.starts_with("llamacpp_slots:"))
                .map(str::to_owned),
        );
    }
    out
}

#[test]
fn the_grafana_server_row_covers_every_server() {
    let dash: serde_json::Value =
        serde_json::from_str(&repo_file("grafana/harness-dashboard.json")).unwrap();
    let panel_exprs = |title: &str| -> String {
        let panel = dash["panels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["title"] == title)
            .unwrap_or_else(|| panic!("no panel {title:?}"));
        panel["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["expr"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join("\n")
    };
    for (title, targets) in [
        (
            "Scheduler",
            vec![
                Target::Gauge(names::REQUESTS_RUNNING),
                Target::Gauge(names::REQUESTS_WAITING),
            ],
        ),
        (
            "KV-cache usage",
            vec![Target::Gauge(names::KV_CACHE_USAGE_FRAC)],
        ),
        (
            "Server token throughput",
            vec![
                Target::Counter(CounterId::PromptTokens),
                Target::Counter(CounterId::GenerationTokens),
            ],
        ),
        (
            "TTFT p99: client vs server",
            vec![Target::Histogram(names::TTFT)],
        ),
    ] {
        let exprs = panel_exprs(title);
        for target in &targets {
            // What Prometheus cannot scrape from a server (llama.cpp's KV
            // cache from /slots) comes from the harness's own export.
            if let Target::Gauge(name) = target {
                let exported = telemetry::prom_endpoint::family_of_reading(
                    rundir::metrics::MetricSource::Server,
                    name,
                )
                .unwrap_or_else(|| panic!("{name} is not exported"))
                .name;
                assert!(
                    exprs.contains(exported),
                    "panel {title:?} does not read {exported}"
                );
            }
        }
        for target in targets {
            for family in scrapable(target) {
                assert!(
                    exprs.contains(&family),
                    "panel {title:?} does not read {family} ({target:?})"
                );
            }
        }
    }
}
