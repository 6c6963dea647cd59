//! The harness's Prometheus exposition parses back with the same strict
//! parser used on vLLM, the endpoint serves it, and the Grafana dashboard
//! uses only metrics that exist.

// Helpers outside #[test] fns are test code too; clippy only exempts the fns.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use loadgen::{ErrorKind, QueryError, QueryRecord, RunObserver};
use telemetry::prom_parse::{Exposition, MetricType};
use telemetry::{LiveMetrics, exported_metrics, serve_prometheus};

fn record(seq: u64, ttft_ms: u64, latency_ms: u64, tokens: i64) -> QueryRecord {
    QueryRecord {
        seq,
        query: seq,
        sample_index: 0,
        scheduled_ns: 0,
        issued_ns: 20_000,
        first_token_ns: Some(ttft_ms * 1_000_000),
        end_ns: latency_ms * 1_000_000,
        n_tokens: tokens,
        extras: loadgen::RecordExtras {
            input_tokens: Some(64),
            ..loadgen::RecordExtras::default()
        }
        .boxed(),
    }
}

fn loaded() -> LiveMetrics {
    let live = LiveMetrics::new();
    live.query_issued(0, 5, 0);
    // TTFT 30 ms, 150 ms (exactly on no bound), 1000 ms (exactly on a bound).
    live.sample_completed(record(0, 30, 400, 11));
    live.sample_completed(record(1, 150, 900, 11));
    live.sample_completed(record(2, 1000, 2000, 11));
    live.sample_completed(record(3, 0, 5, 0).with_error(QueryError {
        kind: ErrorKind::HttpStatus,
        http_status: Some(503),
        message: "overloaded".into(),
    }));
    live
}

fn value(e: &Exposition<'_>, name: &str, label: Option<(&str, &str)>) -> f64 {
    e.samples_named(name)
        .find(|s| label.is_none_or(|(k, v)| s.label(k) == Some(v)))
        .unwrap_or_else(|| panic!("{name} {label:?} missing"))
        .value
}

#[test]
fn exposition_parses_back_with_the_values_recorded() {
    let live = loaded();
    let mut buf = Vec::new();
    live.render_prometheus(&mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    let e = Exposition::parse(&text);
    assert!(e.issues.is_empty(), "{:?}\n{text}", e.issues);
    for family in exported_metrics() {
        assert!(e.metric_type(family).is_some(), "no TYPE line for {family}");
    }
    assert_eq!(
        e.metric_type("harness_ttft_seconds"),
        Some(MetricType::Histogram)
    );
    assert_eq!(
        e.metric_type("harness_requests_in_flight"),
        Some(MetricType::Gauge)
    );
    assert_eq!(value(&e, "harness_requests_issued_total", None), 5.0);
    assert_eq!(value(&e, "harness_requests_completed_total", None), 4.0);
    assert_eq!(value(&e, "harness_requests_in_flight", None), 1.0);
    assert_eq!(
        value(
            &e,
            "harness_requests_failed_total",
            Some(("kind", "http_status"))
        ),
        1.0
    );
    assert_eq!(value(&e, "harness_input_tokens_total", None), 256.0);
    assert_eq!(value(&e, "harness_output_tokens_total", None), 33.0);
    // TTFT buckets (vLLM's bounds): 0.03 falls in le=0.04, 0.15 in le=0.25,
    // 1.0 in le=1.0 (bounds are inclusive).
    let b = |le: &str| value(&e, "harness_ttft_seconds_bucket", Some(("le", le)));
    assert_eq!(b("0.02"), 0.0);
    assert_eq!(b("0.04"), 1.0);
    assert_eq!(b("0.1"), 1.0);
    assert_eq!(b("0.25"), 2.0);
    assert_eq!(b("0.75"), 2.0);
    assert_eq!(b("1"), 3.0);
    assert_eq!(b("+Inf"), 3.0);
    assert_eq!(value(&e, "harness_ttft_seconds_count", None), 3.0);
    assert!((value(&e, "harness_ttft_seconds_sum", None) - 1.18).abs() < 1e-9);
    // TPOT of record 0: (400 - 30) / 10 ms = 37 ms.
    assert_eq!(value(&e, "harness_tpot_seconds_count", None), 3.0);
    let tpot = |le: &str| value(&e, "harness_tpot_seconds_bucket", Some(("le", le)));
    assert_eq!(tpot("0.025"), 0.0);
    assert_eq!(tpot("0.05"), 1.0);
    // Issue delay: 20 µs each, in le=0.000025.
    assert_eq!(
        value(
            &e,
            "harness_issue_delay_seconds_bucket",
            Some(("le", "0.000025"))
        ),
        3.0
    );
    // Buckets are cumulative and end at the count, for every histogram.
    for family in [
        "harness_ttft_seconds",
        "harness_tpot_seconds",
        "harness_request_latency_seconds",
    ] {
        let counts: Vec<f64> = e
            .samples_named(&format!("{family}_bucket"))
            .map(|s| s.value)
            .collect();
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{family}");
        assert_eq!(
            counts.last(),
            Some(&value(&e, &format!("{family}_count"), None))
        );
    }
}

#[tokio::test]
async fn the_endpoint_serves_the_exposition() {
    let live = Arc::new(loaded());
    let server = serve_prometheus("127.0.0.1:0".parse().unwrap(), Arc::clone(&live))
        .await
        .unwrap();
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let resp = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let body = resp.text().await.unwrap();
    let e = Exposition::parse(&body);
    assert!(e.issues.is_empty(), "{:?}", e.issues);
    assert_eq!(value(&e, "harness_requests_completed_total", None), 4.0);

    // Counters move between scrapes.
    live.sample_completed(record(9, 10, 20, 2));
    let body = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let e = Exposition::parse(&body);
    assert_eq!(value(&e, "harness_requests_completed_total", None), 5.0);
    let missing = client
        .get(format!("http://{addr}/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    server.shutdown().await;
    let fresh = reqwest::Client::new();
    assert!(
        fresh
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn listening_on_a_taken_port_is_a_clear_error() {
    let live = Arc::new(LiveMetrics::new());
    let first = serve_prometheus("127.0.0.1:0".parse().unwrap(), Arc::clone(&live))
        .await
        .unwrap();
    let err = serve_prometheus(first.local_addr(), live)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("cannot listen on {}", first.local_addr())),
        "{err}"
    );
    first.shutdown().await;
}

/// Every `expr` in the dashboard, rows included.
fn exprs(panel: &serde_json::Value, out: &mut Vec<String>) {
    if let Some(targets) = panel["targets"].as_array() {
        for t in targets {
            out.push(t["expr"].as_str().expect("expr is a string").to_owned());
        }
    }
    if let Some(children) = panel["panels"].as_array() {
        for c in children {
            exprs(c, out);
        }
    }
}

#[test]
fn grafana_dashboard_is_valid_and_uses_only_real_metrics() {
    let path = format!(
        "{}/../grafana/harness-dashboard.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(dash["title"].is_string());
    assert!(dash["uid"].is_string());
    assert!(dash["schemaVersion"].as_u64().unwrap() >= 30);
    let panels = dash["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "duplicate panel id");
        assert!(p["gridPos"]["w"].as_u64().is_some());
        if p["type"] == "timeseries" {
            assert_eq!(p["datasource"]["uid"], "${datasource}");
        }
    }
    assert!(
        dash["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "datasource" && v["type"] == "datasource")
    );

    // The metric families our exposition really contains.
    let mut buf = Vec::new();
    loaded().render_prometheus(&mut buf).unwrap();
    let body = String::from_utf8(buf).unwrap();
    let exposed: BTreeSet<&str> = Exposition::parse(&body).types.keys().copied().collect();
    let servers: BTreeSet<&str> = telemetry::mapping::source_names().into_iter().collect();
    let promql = [
        "or",
        "sum",
        "avg",
        "rate",
        "by",
        "le",
        "kind",
        "histogram_quantile",
        "$__rate_interval",
        "max",
        "status",
        "backend",
        "gpu",
        "host",
        "statistic",
        "p99_le",
    ];

    let mut all = Vec::new();
    for p in panels {
        exprs(p, &mut all);
    }
    assert!(!all.is_empty());
    let mut used = BTreeSet::new();
    for expr in &all {
        let tokens = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '$'))
            .filter(|t| !t.is_empty() && !t.chars().all(|c| c.is_ascii_digit()));
        for token in tokens {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| token.strip_suffix(s))
                .unwrap_or(token);
            if token.starts_with("harness_") {
                assert!(
                    exposed.contains(family),
                    "{token} in {expr:?} is not exported"
                );
                used.insert(family.to_owned());
            } else if ["vllm:", "llamacpp:", "sglang:", "tgi_"]
                .iter()
                .any(|p| token.starts_with(p))
            {
                let base = token.strip_suffix("_total").unwrap_or(token);
                assert!(
                    servers.contains(base) || servers.contains(family),
                    "{token} in {expr:?} is not a server metric name we know"
                );
            } else {
                assert!(promql.contains(&token), "unexpected {token:?} in {expr:?}");
            }
        }
    }
    // And the dashboard shows every family we export.
    for family in exported_metrics() {
        assert!(used.contains(family), "{family} is on no panel");
    }
}

#[test]
fn normalized_server_gauges_are_exported_per_backend() {
    let live = LiveMetrics::new();
    let mut values = std::collections::BTreeMap::new();
    values.insert("requests_running".to_owned(), 2.0);
    values.insert("kv_cache_usage_frac".to_owned(), 0.125);
    live.set_reading(
        rundir::metrics::MetricSource::Server,
        "http://127.0.0.1:8080",
        values,
    );
    let mut buf = Vec::new();
    live.render_prometheus(&mut buf).unwrap();
    let body = String::from_utf8(buf).unwrap();
    let e = Exposition::parse(&body);
    assert!(e.issues.is_empty(), "{:?}", e.issues);
    let backend = Some(("backend", "http://127.0.0.1:8080"));
    assert_eq!(value(&e, "harness_server_requests_running", backend), 2.0);
    assert_eq!(
        value(&e, "harness_server_kv_cache_usage_ratio", backend),
        0.125
    );
    // No reading, no sample (the family is still declared).
    assert!(!e.has("harness_server_requests_waiting"));
    assert!(e.types.contains_key("harness_server_requests_waiting"));
}
