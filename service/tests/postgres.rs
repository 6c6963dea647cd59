//! Two `serve` instances over one PostgreSQL history: a run recorded by
//! anyone reaches both through LISTEN/NOTIFY, so neither serves a stale
//! cached ranking. Skips when HARNESS_TEST_PG_URL is unset.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_sharing_postgres_drop_their_cache_when_a_run_is_recorded() {
    let Ok(server) = std::env::var("HARNESS_TEST_PG_URL") else {
        println!(
            "skipping: HARNESS_TEST_PG_URL is unset (eval \"$(bash scripts/peers/postgres.sh)\")"
        );
        return;
    };
    let db = fresh_postgres_schema(&server, "service_cache").await;
    let seed = db.clone();
    tokio::task::spawn_blocking(move || record_all(&seed, &fixture()))
        .await
        .unwrap();
    let a = start(db.clone()).await;
    let b = start(db.clone()).await;
    let path = "/api/v1/benchmarks/rankings/ttft?label=vllm";
    for s in [&a, &b] {
        assert_eq!(get(s.addr, path).await.header("x-cache"), Some("miss"));
        assert_eq!(get(s.addr, path).await.header("x-cache"), Some("hit"));
    }
    let (mut seen_a, mut seen_b) = (a.service.invalidations(), b.service.invalidations());
    seen_a.mark_unchanged();
    seen_b.mark_unchanged();
    // A third client (a `harness run`, say) records a run.
    let writer = db.clone();
    tokio::task::spawn_blocking(move || {
        record_all(
            &writer,
            &[run(
                "vllm-9",
                "2026-11-29T10:00:00+00:00",
                "vllm",
                "Server",
                10.0,
                50.0,
            )],
        );
    })
    .await
    .unwrap();
    // The notification arrives on each instance's listener thread; the
    // timeout only bounds a failure.
    for seen in [&mut seen_a, &mut seen_b] {
        tokio::time::timeout(Duration::from_secs(30), seen.changed())
            .await
            .expect("no invalidation within 30 s")
            .unwrap();
    }
    for s in [&a, &b] {
        let fresh = get(s.addr, path).await;
        assert_eq!(fresh.header("x-cache"), Some("miss"));
        assert_eq!(fresh.json()["data"][0]["ttft"][0]["sample_count"], 5);
    }
}
