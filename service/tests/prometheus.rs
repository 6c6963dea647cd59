//! `serve --prometheus-listen`: the history's gauges over a real socket,
//! fresh after a run is recorded by another process (SQLite's
//! `data_version`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use history::Database;

/// The value of the sample line starting with `series` (labels included).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn the_history_gauges_follow_the_runs_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Database::from(tmp.path().join("history.sqlite"));
    record_all(&db, &fixture());
    let server = start(db.clone()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = server.service.clone();
    tokio::spawn(async move {
        serving
            .serve_prometheus(listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });

    let first = get(addr, "/metrics").await;
    assert_eq!(first.status, 200);
    assert!(
        first
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = String::from_utf8(first.body).unwrap();
    let vllm = "system=\"vllm\",model=\"llama3_1-8b\",scenario=\"Server\"";
    let runs = |text: &str| sample(text, &format!("harness_history_runs{{{vllm}}}"));
    let before = runs(&text).unwrap_or_else(|| panic!("{text}"));
    assert!(before >= 1.0, "{text}");
    // The figure has the registry's unit.
    let unit = reports::figures::find("ttft_p50_ms").unwrap().unit;
    assert!(
        sample(
            &text,
            &format!("harness_history_figure{{{vllm},name=\"ttft_p50_ms\",unit=\"{unit}\"}}")
        )
        .is_some(),
        "{text}"
    );
    // The same answer again, from memory.
    assert_eq!(
        String::from_utf8(get(addr, "/metrics").await.body).unwrap(),
        text
    );

    // Another process records a newer vllm run: the next scrape counts it,
    // and shows its figure as the latest.
    record_elsewhere(
        &server,
        &db,
        &[run(
            "vllm-new",
            "2030-01-01T00:00:00+00:00",
            "vllm",
            "Server",
            3.5,
            60.0,
        )],
    )
    .await;
    let after = String::from_utf8(get(addr, "/metrics").await.body).unwrap();
    assert_eq!(runs(&after), Some(before + 1.0), "{after}");
    assert_eq!(
        sample(
            &after,
            &format!("harness_history_figure{{{vllm},name=\"ttft_p50_ms\",unit=\"{unit}\"}}")
        ),
        Some(3.5),
        "{after}"
    );
    assert_eq!(
        sample(
            &after,
            &format!("harness_history_last_run_timestamp_seconds{{{vllm}}}")
        ),
        Some(1_893_456_000.0),
        "{after}"
    );
}
