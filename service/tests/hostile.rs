//! Hostile input: SQL in every filter, huge and malformed parameters, path
//! traversal in the file route, many requests at once. Each gets a clear
//! answer, nothing changes in the history, and the server keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use history::{Database, Filter, History};

const INJECTIONS: &[&str] = &[
    "' OR '1'='1",
    "x'; DROP TABLE runs; --",
    "\" OR 1=1 --",
    "1) UNION SELECT name, sql FROM sqlite_master --",
    "%' OR run_id LIKE '%",
    "\\'; DELETE FROM metrics; --",
];

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn stored(db: &Database) -> usize {
    History::open(db)
        .unwrap()
        .list(&Filter::default())
        .unwrap()
        .len()
}

async fn fixture_server() -> (tempfile::TempDir, Database, Server) {
    let tmp = tempfile::tempdir().unwrap();
    let db = Database::from(tmp.path().join("history.sqlite"));
    record_all(&db, &fixture());
    let server = start(db.clone()).await;
    (tmp, db, server)
}

#[tokio::test]
async fn sql_in_any_filter_is_only_a_value_that_matches_nothing() {
    let (_tmp, db, s) = fixture_server().await;
    for injection in INJECTIONS {
        let v = encode(injection);
        for param in ["model", "scenario", "dataset", "system", "label", "backend"] {
            for route in [
                "/api/v1/runs",
                "/api/v1/benchmarks/rankings/ttft",
                "/api/v1/trends/ttft",
            ] {
                let a = get(s.addr, &format!("{route}?{param}={v}")).await;
                assert_eq!(a.status, 200, "{route} {param}={injection}");
                let data = &a.json()["data"];
                let empty = match route {
                    "/api/v1/benchmarks/rankings/ttft" => {
                        data[0]["ttft"].as_array().unwrap().is_empty()
                    }
                    _ => data.as_array().unwrap().is_empty(),
                };
                assert!(empty, "{route} {param}={injection}: {data}");
            }
        }
        // Times and numbers are parsed, so SQL there is a 400.
        for param in ["since", "until", "limit", "offset"] {
            let a = get(s.addr, &format!("/api/v1/runs?{param}={v}")).await;
            assert_eq!(a.status, 400, "{param}={injection}");
            assert!(a.json()["error"].as_str().unwrap().contains(param));
        }
        // In the path: an unknown run, an unknown metric.
        assert_eq!(get(s.addr, &format!("/api/v1/runs/{v}")).await.status, 404);
        assert_eq!(
            get(s.addr, &format!("/api/v1/benchmarks/rankings/{v}"))
                .await
                .status,
            404
        );
        let a = send(
            s.addr,
            "DELETE",
            &format!("/api/v1/runs/{v}"),
            &[("x-api-key", UPLOAD_KEY)],
        )
        .await;
        assert_eq!(a.status, 404, "{injection}");
    }
    assert_eq!(stored(&db), 12, "nothing removed");
    assert_eq!(
        get(s.addr, "/api/v1/runs?limit=100").await.json()["data"]
            .as_array()
            .unwrap()
            .len(),
        12
    );
}

#[tokio::test]
async fn huge_and_malformed_parameters_get_a_clear_4xx() {
    let (_tmp, db, s) = fixture_server().await;
    let long = "a".repeat(300);
    let over = "m".repeat(5000);
    let cases: Vec<(String, u16, &str)> = vec![
        (
            format!("/api/v1/runs?model={long}"),
            400,
            "longer than 256 bytes",
        ),
        (
            format!("/api/v1/runs?model={over}"),
            414,
            "longer than 4096 bytes",
        ),
        (
            "/api/v1/runs?limit=-1".into(),
            400,
            "limit must be a whole number",
        ),
        (
            "/api/v1/runs?limit=1001".into(),
            400,
            "limit must be a whole number",
        ),
        (
            "/api/v1/runs?limit=99999999999999999999999".into(),
            400,
            "limit",
        ),
        ("/api/v1/runs?offset=1e3".into(), 400, "offset"),
        (
            "/api/v1/runs?colour=red".into(),
            400,
            "unknown parameter \"colour\"",
        ),
        (
            "/api/v1/runs?model=a&model=b".into(),
            400,
            "model given twice",
        ),
        ("/api/v1/runs?model=%00x".into(), 400, "control character"),
        (
            "/api/v1/runs?model=%FF%FE".into(),
            400,
            "malformed query string",
        ),
        ("/api/v1/runs?system=a&label=b".into(), 400, "not both"),
        ("/api/v1/runs?since=yesterday".into(), 400, "RFC 3339"),
        ("/api/v1/runs?until=2026-13-45".into(), 400, "RFC 3339"),
        (
            "/api/v1/benchmarks/rankings/ttft?limit=5".into(),
            400,
            "unknown parameter",
        ),
        (
            format!("/api/v1/runs/{}", "r".repeat(300)),
            400,
            "malformed run id",
        ),
        ("/api/v1/runs/%0A".into(), 400, "malformed run id"),
    ];
    for (target, status, says) in &cases {
        let a = get(s.addr, target).await;
        let shown: String = target.chars().take(80).collect();
        assert_eq!(a.status, *status, "{shown}");
        let error = a.json()["error"].as_str().unwrap().to_owned();
        assert!(error.contains(says), "{shown}: {error}");
        assert!(error.len() < 300, "errors stay short: {shown}");
    }
    // A URI past hyper's own limit is refused before any route runs.
    let huge = "m".repeat(100_000);
    assert_eq!(
        get(s.addr, &format!("/api/v1/runs?model={huge}"))
            .await
            .status,
        414
    );
    assert_eq!(stored(&db), 12);
    assert_eq!(get(s.addr, "/api/v1/runs").await.status, 200);
}

#[tokio::test]
async fn the_file_route_serves_only_plain_files_inside_the_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Database::from(tmp.path().join("history.sqlite"));
    let dir = tmp.path().join("runs").join("r1");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("report.html"), "ok").unwrap();
    std::fs::write(tmp.path().join("runs").join("secret.txt"), "secret").unwrap();
    std::fs::write(dir.join(".hidden.txt"), "hidden").unwrap();
    std::os::unix::fs::symlink(
        tmp.path().join("runs").join("secret.txt"),
        dir.join("link.txt"),
    )
    .unwrap();
    std::fs::create_dir(dir.join("sub.txt")).unwrap();
    let mut entry = run(
        "r1",
        "2026-11-20T10:00:00+00:00",
        "vllm",
        "Server",
        1.0,
        1.0,
    );
    entry.run_dir = dir.display().to_string();
    record_all(&db, &[entry]);
    let s = start(db).await;
    assert_eq!(
        get(s.addr, "/api/v1/runs/r1/files/report.html").await.body,
        b"ok"
    );
    for (name, status) in [
        ("..%2Fsecret.txt", 400),
        ("%2E%2E%2Fsecret.txt", 400),
        ("..%5Csecret.txt", 400),
        ("%2Fetc%2Fpasswd", 400),
        (".hidden.txt", 400),
        ("records.jsonl", 400),
        ("report.html%00.png", 400),
        ("link.txt", 404),
        ("sub.txt", 404),
        ("missing.png", 404),
    ] {
        let a = get(s.addr, &format!("/api/v1/runs/r1/files/{name}")).await;
        assert_eq!(a.status, status, "{name}");
        assert!(
            !String::from_utf8_lossy(&a.body).contains("secret"),
            "{name}"
        );
    }
    // Unencoded dots are resolved by nobody: a route that does not exist.
    let a = get(s.addr, "/api/v1/runs/r1/files/../../../etc/passwd").await;
    assert!(a.status == 404 || a.status == 400, "{}", a.status);
    assert!(!String::from_utf8_lossy(&a.body).contains("root:"));
}

#[tokio::test]
async fn many_requests_at_once_are_all_answered_and_the_server_keeps_serving() {
    let (_tmp, db, s) = fixture_server().await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let addr = s.addr;
        tasks.push(tokio::spawn(async move {
            let (target, key, expected) = match i % 5 {
                0 => ("/api/v1/benchmarks/rankings/ttft".to_owned(), READ_KEY, 200),
                1 => (format!("/api/v1/runs?limit={}", i % 7 + 1), READ_KEY, 200),
                2 => ("/api/v1/runs?limit=zzz".to_owned(), READ_KEY, 400),
                3 => (
                    "/api/v1/trends/rps".to_owned(),
                    "wrong-key-0123456789abcdef",
                    401,
                ),
                _ => (
                    format!("/api/v1/benchmarks/rankings/nope{i}"),
                    READ_KEY,
                    404,
                ),
            };
            let a = send(addr, "GET", &target, &[("x-api-key", key)]).await;
            (target, a.status, expected)
        }));
    }
    for task in tasks {
        let (target, status, expected) = task.await.unwrap();
        assert_eq!(status, expected, "{target}");
    }
    assert_eq!(send(s.addr, "GET", "/health", &[]).await.status, 200);
    assert_eq!(stored(&db), 12);
}
