//! The REST API end to end over a real socket: rankings, runs, trends,
//! files, auth and the cache.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use history::Database;
use serde_json::Value;

async fn fixture_server() -> (tempfile::TempDir, Database, Server) {
    let tmp = tempfile::tempdir().unwrap();
    let db = Database::from(tmp.path().join("history.sqlite"));
    record_all(&db, &fixture());
    let server = start(db.clone()).await;
    (tmp, db, server)
}

fn names(ranking: &Value) -> Vec<(String, i64, bool)> {
    ranking
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["system"].as_str().unwrap().to_owned(),
                e["rank"].as_i64().unwrap(),
                e["tied_with_previous"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn rankings_order_by_the_metric_with_intervals_counts_and_ties() {
    let (_tmp, _db, s) = fixture_server().await;
    let a = get(s.addr, "/api/v1/benchmarks/rankings/ttft?scenario=Server").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-type"), Some("application/json"));
    let body = a.json();
    let ttft = &body["data"][0]["ttft"];
    // vllm 10.0/10.5/10.0 and tgi 10.1/10.6/10.1 do not differ
    // significantly; sglang (20.0/20.5/20.0) is clearly slower.
    assert_eq!(
        names(ttft),
        [
            ("vllm".to_owned(), 1, false),
            ("tgi".to_owned(), 1, true),
            ("sglang".to_owned(), 3, false)
        ]
    );
    let first = &ttft[0];
    assert_eq!(first["llm_name"], "llama3_1-8b");
    assert_eq!(first["sample_count"], 3);
    let mean = first["mean_value"].as_f64().unwrap();
    assert!((mean - 30.5 / 3.0).abs() < 1e-9, "{mean}");
    assert!(
        first["ci_low"].as_f64().unwrap() <= mean && mean <= first["ci_high"].as_f64().unwrap()
    );
    assert_eq!(body["figures"]["ttft"], "ttft_p50_ms");

    // All headline rankings, in the documented order; rates rank high first.
    let body = get(s.addr, "/api/v1/benchmarks/rankings").await.json();
    let keys: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_object().unwrap().keys().next().unwrap().as_str())
        .collect();
    assert_eq!(keys, ["ttft", "tps", "e2e_latency", "rps", "tpot"]);
    assert_eq!(names(&body["data"][3]["rps"])[0].0, "vllm");
    assert_eq!(names(&body["data"][3]["rps"])[2].0, "sglang");
    // No run records TPOT: an empty ranking, not an error.
    assert_eq!(body["data"][4]["tpot"], Value::Array(vec![]));

    // A recorded name works as is.
    let a = get(
        s.addr,
        "/api/v1/benchmarks/rankings/samples_per_s?label=tgi",
    )
    .await;
    assert_eq!(
        names(&a.json()["data"][0]["samples_per_s"]),
        [("tgi".to_owned(), 1, false)]
    );
}

#[tokio::test]
async fn an_unknown_metric_is_a_404_listing_the_valid_ones() {
    let (_tmp, _db, s) = fixture_server().await;
    for path in [
        "/api/v1/benchmarks/rankings/ttft_p999",
        "/api/v1/trends/ttft_p999",
    ] {
        let a = get(s.addr, path).await;
        assert_eq!(a.status, 404, "{path}");
        let body = a.json();
        assert_eq!(body["error"], "unknown metric \"ttft_p999\"");
        let valid: Vec<&str> = body["valid_metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for m in [
            "ttft",
            "tps",
            "e2e_latency",
            "rps",
            "ttft_p50_ms",
            "samples_per_s",
        ] {
            assert!(valid.contains(&m), "{m} missing from {valid:?}");
        }
    }
}

#[tokio::test]
async fn filters_narrow_rankings_runs_and_trends() {
    let (_tmp, _db, s) = fixture_server().await;
    let count = |body: Value, metric: &str| -> i64 {
        body["data"][0][metric]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["sample_count"].as_i64().unwrap())
            .sum()
    };
    let all = get(s.addr, "/api/v1/benchmarks/rankings/ttft").await.json();
    assert_eq!(count(all, "ttft"), 12);
    for (query, expected) in [
        ("scenario=Offline", 3),
        ("label=vllm", 4),
        ("system=vllm", 0),
        ("backend=http://tgi:8000/v1", 4),
        ("model=llama3_1-8b&dataset=datasets/cnn_eval.json", 12),
        ("model=other", 0),
        ("since=2026-11-21&until=2026-11-23", 6),
        (
            "since=2026-11-21T10:00:00Z&until=2026-11-22T10:00:00%2B00:00",
            3,
        ),
    ] {
        let body = get(s.addr, &format!("/api/v1/benchmarks/rankings/ttft?{query}"))
            .await
            .json();
        assert_eq!(count(body, "ttft"), expected, "{query}");
    }
    let trend = get(s.addr, "/api/v1/trends/rps?label=vllm").await.json();
    assert_eq!(trend["figure"], "samples_per_s");
    let points = trend["data"][0]["points"].as_array().unwrap();
    let values: Vec<f64> = points
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .collect();
    assert_eq!(values, [50.0, 51.0, 50.0, 51.0], "oldest first");
    assert_eq!(trend["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn runs_page_without_overlap_and_one_run_links_its_files() {
    let (tmp, db, s) = fixture_server().await;
    let mut seen = Vec::new();
    let mut offset = Some(0);
    while let Some(at) = offset {
        let body = get(s.addr, &format!("/api/v1/runs?limit=5&offset={at}"))
            .await
            .json();
        for run in body["data"].as_array().unwrap() {
            seen.push(run["run_id"].as_str().unwrap().to_owned());
        }
        offset = body["next_offset"].as_u64();
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (12, 12));
    assert_eq!(seen[0], "vllm-3", "newest first (then run id)");

    // A run whose directory is on this server: its charts and report.
    let dir = tmp.path().join("run-with-files");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("report.html"), "<html>report</html>").unwrap();
    std::fs::write(dir.join("ttft_cdf.png"), [0x89, b'P', b'N', b'G']).unwrap();
    std::fs::write(dir.join("records.jsonl"), "{}").unwrap();
    let mut entry = run(
        "with-files",
        "2026-11-30T10:00:00+00:00",
        "vllm",
        "Server",
        9.0,
        50.0,
    );
    entry.run_dir = dir.display().to_string();
    record_all(&db, &[entry]);
    let body = get(s.addr, "/api/v1/runs/with-files").await.json();
    assert_eq!(body["data"]["run_id"], "with-files");
    assert_eq!(body["data"]["metrics"][0][0], "latency_p50_ms");
    let links = body["links"].as_object().unwrap();
    assert_eq!(
        links.keys().collect::<Vec<_>>(),
        ["report.html", "ttft_cdf.png"],
        "records.jsonl is not served"
    );
    let a = get(s.addr, links["ttft_cdf.png"].as_str().unwrap()).await;
    assert_eq!(
        (a.status, a.header("content-type")),
        (200, Some("image/png"))
    );
    assert_eq!(a.body, [0x89, b'P', b'N', b'G']);
    assert_eq!(get(s.addr, "/api/v1/runs/nope").await.status, 404);
}

#[tokio::test]
async fn every_api_route_needs_a_key_and_writes_need_an_upload_key() {
    let (_tmp, _db, s) = fixture_server().await;
    let health = send(s.addr, "GET", "/health", &[]).await;
    assert_eq!(
        (health.status, health.json()["status"].clone()),
        (200, "ok".into())
    );
    for path in [
        "/api/v1/benchmarks/rankings",
        "/api/v1/benchmarks/rankings/ttft",
        "/api/v1/runs",
        "/api/v1/runs/vllm-0",
        "/api/v1/trends/ttft",
        "/api/v1/metrics",
        "/api/v1/no-such-route",
    ] {
        let a = send(s.addr, "GET", path, &[]).await;
        assert_eq!(a.status, 401, "{path}");
        assert!(
            a.json()["error"]
                .as_str()
                .unwrap()
                .contains("missing API key")
        );
        let a = send(
            s.addr,
            "GET",
            path,
            &[("x-api-key", "wrong-key-0123456789abcdef")],
        )
        .await;
        assert_eq!(a.status, 401, "{path}");
        assert_eq!(a.json()["error"], "invalid API key");
        // A prefix of a real key is no key.
        let a = send(s.addr, "GET", path, &[("x-api-key", &READ_KEY[..20])]).await;
        assert_eq!(a.status, 401, "{path}");
    }
    let bearer = format!("Bearer {READ_KEY}");
    let a = send(s.addr, "GET", "/api/v1/runs", &[("authorization", &bearer)]).await;
    assert_eq!(a.status, 200);
    // A read key may not change the history...
    let a = send(
        s.addr,
        "DELETE",
        "/api/v1/runs/vllm-0",
        &[("x-api-key", READ_KEY)],
    )
    .await;
    assert_eq!(a.status, 403);
    assert!(a.json()["error"].as_str().unwrap().contains("upload key"));
    assert_eq!(get(s.addr, "/api/v1/runs/vllm-0").await.status, 200);
    // ... an upload key may.
    let a = send(
        s.addr,
        "DELETE",
        "/api/v1/runs/vllm-0",
        &[("x-api-key", UPLOAD_KEY)],
    )
    .await;
    assert_eq!((a.status, a.json()["removed"].clone()), (200, 1.into()));
    assert_eq!(get(s.addr, "/api/v1/runs/vllm-0").await.status, 404);
    // No answer ever shows a key.
    for a in [a, health] {
        let text = String::from_utf8_lossy(&a.body).into_owned();
        assert!(!text.contains(READ_KEY) && !text.contains(UPLOAD_KEY));
    }
}

#[tokio::test]
async fn rankings_are_cached_until_a_run_is_recorded_or_removed() {
    let (_tmp, db, s) = fixture_server().await;
    let path = "/api/v1/benchmarks/rankings/ttft?label=vllm";
    let first = get(s.addr, path).await;
    assert_eq!(first.header("x-cache"), Some("miss"));
    let again = get(s.addr, path).await;
    assert_eq!(again.header("x-cache"), Some("hit"));
    assert_eq!(first.body, again.body);
    // Another process records into the same SQLite file.
    record_elsewhere(
        &s,
        &db,
        &[run(
            "vllm-9",
            "2026-11-29T10:00:00+00:00",
            "vllm",
            "Server",
            10.0,
            50.0,
        )],
    )
    .await;
    let fresh = get(s.addr, path).await;
    assert_eq!(fresh.header("x-cache"), Some("miss"));
    assert_eq!(fresh.json()["data"][0]["ttft"][0]["sample_count"], 5);
    assert_eq!(get(s.addr, path).await.header("x-cache"), Some("hit"));
    // A run removed through the API.
    let a = send(
        s.addr,
        "DELETE",
        "/api/v1/runs/vllm-9",
        &[("x-api-key", UPLOAD_KEY)],
    )
    .await;
    assert_eq!(a.status, 200);
    let fresh = get(s.addr, path).await;
    assert_eq!(fresh.header("x-cache"), Some("miss"));
    assert_eq!(fresh.json()["data"][0]["ttft"][0]["sample_count"], 4);
}

#[tokio::test]
async fn since_and_until_compare_instants_whatever_the_offsets() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Database::from(tmp.path().join("history.sqlite"));
    // 11:30 UTC written at -02:00 (its text sorts before "2026-11-20T11"),
    // and 11:00 UTC written at +05:00 (its text sorts after).
    record_all(
        &db,
        &[
            run(
                "west",
                "2026-11-20T09:30:00-02:00",
                "a",
                "Server",
                10.0,
                1.0,
            ),
            run(
                "east",
                "2026-11-20T16:00:00+05:00",
                "b",
                "Server",
                10.0,
                1.0,
            ),
        ],
    );
    let s = start(db).await;
    let ids = |body: Value| -> Vec<String> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["run_id"].as_str().unwrap().to_owned())
            .collect()
    };
    for (query, expected) in [
        ("since=2026-11-20T11:15:00Z", vec!["west"]),
        ("until=2026-11-20T11:15:00Z", vec!["east"]),
        ("since=2026-11-20T12:15:00%2B01:00", vec!["west"]),
        (
            "since=2026-11-20T11:00:00Z&until=2026-11-20T11:30:00Z",
            vec!["east"],
        ),
        ("since=2026-11-20", vec!["west", "east"]),
        ("until=2026-11-20", vec![]),
    ] {
        let a = get(s.addr, &format!("/api/v1/runs?{query}")).await;
        assert_eq!(a.status, 200, "{query}");
        let mut got = ids(a.json());
        got.sort();
        let mut expected: Vec<String> = expected.into_iter().map(str::to_owned).collect();
        expected.sort();
        assert_eq!(got, expected, "{query}");
    }
    let bad = get(s.addr, "/api/v1/runs?until=2026-13-40").await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.json()["error"]
            .as_str()
            .unwrap()
            .contains("parameter until")
    );
}
