//! The exposition as documented: the README's table of exposed series is the
//! code's table, and a fully loaded exposition holds every family of that
//! table, with exactly the documented labels and values carried over from
//! the run (scaled to Prometheus' base units).

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common {
    pub mod readme;
}

use std::collections::{BTreeMap, BTreeSet};

use loadgen::{ErrorKind, QueryError, QueryRecord, RunObserver};
use rundir::metrics::{MetricSource, names};
use telemetry::prom_endpoint::{FAMILIES, Kind, Origin, markdown_table};
use telemetry::prom_parse::Exposition;
use telemetry::{LiveMetrics, RunFigures, RunLabels};

const START: &str =
    "<!-- prometheus-series-table: generated from telemetry/src/prom_endpoint.rs -->\n";
const END: &str = "<!-- /prometheus-series-table -->";

#[test]
fn the_readme_table_is_the_code_table() {
    common::readme::assert_readme_table(START, END, "Prometheus series", &markdown_table());
}

fn record(seq: u64, input: u32, tokens: i64) -> QueryRecord {
    QueryRecord {
        seq,
        query: seq,
        sample_index: 0,
        scheduled_ns: 0,
        issued_ns: 1_000,
        first_token_ns: Some(50_000_000),
        end_ns: 400_000_000,
        n_tokens: tokens,
        extras: loadgen::RecordExtras {
            input_tokens: Some(input),
            ..loadgen::RecordExtras::default()
        }
        .boxed(),
    }
}

fn failed(seq: u64, kind: ErrorKind, status: Option<u16>) -> QueryRecord {
    record(seq, 7, 0).with_error(QueryError {
        kind,
        http_status: status,
        message: "injected".into(),
    })
}

/// A live registry holding something for every family.
fn loaded() -> LiveMetrics {
    let live = LiveMetrics::new();
    live.set_run_labels(RunLabels {
        run_id: "run-1".into(),
        scenario: "Server".into(),
        backend: "sim://tiny".into(),
        backend_names: BTreeMap::from([("http://127.0.0.1:9".into(), "sim://tiny".into())]),
    });
    let mut settings = loadgen::TestSettings {
        scenario: loadgen::Scenario::Server,
        server_target_qps: 12.5,
        use_token_latencies: true,
        server_ttft_latency: 2_000_000_000,
        ..loadgen::TestSettings::default()
    };
    settings.server_tpot_latency = 100_000_000;
    let (effective, _) = loadgen::EffectiveSettings::new(&settings, 10, 10).unwrap();
    live.phase_started(&loadgen::PhaseStart {
        phase: loadgen::Phase::Performance,
        scenario: loadgen::Scenario::Server,
        mode: loadgen::TestMode::PerformanceOnly,
        start_unix_ns: 0,
        settings: effective,
        query_count: 5,
        sample_count: 5,
    });
    live.query_issued(0, 5, 0);
    live.sample_completed(record(0, 300, 11));
    live.sample_completed(record(1, 3, 1));
    live.sample_completed(failed(2, ErrorKind::HttpStatus, Some(503)));
    live.sample_completed(failed(3, ErrorKind::HttpStatus, Some(503)));
    live.sample_completed(failed(4, ErrorKind::Timeout, None));

    let mut server = BTreeMap::new();
    for f in FAMILIES {
        match f.origin {
            Origin::Reading {
                source: MetricSource::Server,
                name,
                ..
            } => {
                server.insert(name.to_owned(), 0.5);
            }
            Origin::ServerDistribution(stem) => {
                server.insert(names::quantile_name(stem, "mean"), 0.2);
                server.insert(names::quantile_lower_name(stem, "p99"), 0.25);
                server.insert(names::quantile_upper_name(stem, "p99"), 0.5);
            }
            _ => {}
        }
    }
    live.set_reading(MetricSource::Server, "http://127.0.0.1:9", server);
    for (source, instance) in [
        (MetricSource::Gpu, "gpu0"),
        (MetricSource::System, "host-a"),
        (MetricSource::Process, "harness"),
    ] {
        let values = FAMILIES
            .iter()
            .filter_map(|f| match f.origin {
                Origin::Reading {
                    source: s, name, ..
                } if s == source => Some((name.to_owned(), 50.0)),
                _ => None,
            })
            .collect();
        live.set_reading(source, instance, values);
    }
    live.publish_run_figures(RunFigures {
        run_id: "run-1".into(),
        figures: vec![("samples_per_s".into(), "samples/s".into(), 4.5)],
    });
    live
}

#[test]
fn every_family_is_exposed_with_its_documented_labels() {
    let mut buf = Vec::new();
    loaded().render_prometheus(&mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    let e = Exposition::parse(&text);
    assert!(e.issues.is_empty(), "{:?}\n{text}", e.issues);
    let declared: BTreeSet<&str> = e.types.keys().copied().collect();
    let documented: BTreeSet<&str> = FAMILIES.iter().map(|f| f.name).collect();
    assert_eq!(declared, documented, "{text}");
    for f in FAMILIES {
        let name = match f.kind {
            Kind::Histogram => format!("{}_bucket", f.name),
            Kind::Counter | Kind::Gauge => f.name.to_owned(),
        };
        let samples: Vec<_> = e.samples_named(&name).collect();
        assert!(!samples.is_empty(), "{} has no sample:\n{text}", f.name);
        let want: BTreeSet<&str> = f.labels.iter().copied().collect();
        for s in samples {
            let mut got: BTreeSet<&str> = s.labels.iter().map(|(k, _)| *k).collect();
            got.remove("le");
            // A failure without an HTTP status has no status label.
            if f.name == "harness_requests_failed_total" && s.label("kind") == Some("timeout") {
                got.insert("status");
            }
            assert_eq!(got, want, "{} {:?}", f.name, s.labels);
            assert_eq!(s.label("run_id"), Some("run-1"), "{}", f.name);
            if want.contains("backend") {
                // The server's own series name the backend as run.json does.
                assert_eq!(s.label("backend"), Some("sim://tiny"), "{}", f.name);
            }
        }
    }
    let value = |name: &str, label: (&str, &str)| -> f64 {
        e.samples_named(name)
            .find(|s| s.label(label.0) == Some(label.1))
            .unwrap_or_else(|| panic!("{name} {label:?}"))
            .value
    };
    let failures = |status: Option<&str>, kind: &str| -> f64 {
        e.samples_named("harness_requests_failed_total")
            .find(|s| s.label("status") == status && s.label("kind") == Some(kind))
            .unwrap_or_else(|| panic!("failures {status:?} {kind}"))
            .value
    };
    assert_eq!(failures(Some("503"), "http_status"), 2.0);
    assert_eq!(failures(None, "timeout"), 1.0);
    assert_eq!(value("harness_target_qps", ("scenario", "Server")), 12.5);
    assert_eq!(
        value("harness_ttft_limit_seconds", ("scenario", "Server")),
        2.0
    );
    // Input lengths 300, 3 and three failed samples' 7: 5 observations.
    assert_eq!(
        value("harness_request_input_tokens_bucket", ("le", "5")),
        1.0
    );
    assert_eq!(
        value("harness_request_input_tokens_bucket", ("le", "10")),
        4.0
    );
    assert_eq!(
        value("harness_request_input_tokens_sum", ("run_id", "run-1")),
        324.0
    );
    // Output lengths of the two successful samples: 11 and 1.
    assert_eq!(
        value("harness_request_output_tokens_bucket", ("le", "1")),
        1.0
    );
    assert_eq!(
        value("harness_request_output_tokens_count", ("run_id", "run-1")),
        2.0
    );
    // Percent to ratio, MHz to Hz; statistics of the server's histograms.
    assert_eq!(value("harness_gpu_utilization_ratio", ("gpu", "gpu0")), 0.5);
    assert_eq!(value("harness_gpu_sm_clock_hertz", ("gpu", "gpu0")), 50e6);
    assert_eq!(
        value("harness_host_cpu_utilization_ratio", ("host", "host-a")),
        0.5
    );
    assert_eq!(
        value("harness_server_ttft_seconds", ("statistic", "p99_le")),
        0.5
    );
    assert_eq!(
        value("harness_server_ttft_seconds", ("statistic", "p99_gt")),
        0.25
    );
    assert_eq!(
        value("harness_server_ttft_seconds", ("statistic", "mean")),
        0.2
    );
}

#[test]
fn names_follow_prometheus_conventions() {
    for f in FAMILIES {
        assert!(f.name.starts_with("harness_"), "{}", f.name);
        assert_eq!(
            f.kind == Kind::Counter,
            f.name.ends_with("_total"),
            "{}: _total is for counters only",
            f.name
        );
        for bad in ["_pct", "_frac", "_mhz", "_s", "_per_s", "_c", "_w"] {
            assert!(!f.name.ends_with(bad), "{}: not a base unit", f.name);
        }
    }
}
