//! No API key ever reaches the log: the whole log of a session with good,
//! wrong and bearer keys is searched for them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use history::Database;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn keys_never_appear_in_the_log() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    let tmp = tempfile::tempdir().unwrap();
    let db = Database::from(tmp.path().join("history.sqlite"));
    record_all(&db, &fixture());
    let s = start(db).await;
    let wrong = "wrong-key-but-secret-0123456789";
    let bearer = format!("Bearer {READ_KEY}");
    for (method, path, headers) in [
        ("GET", "/api/v1/runs", vec![("x-api-key", READ_KEY)]),
        (
            "GET",
            "/api/v1/benchmarks/rankings",
            vec![("authorization", bearer.as_str())],
        ),
        ("GET", "/api/v1/runs", vec![("x-api-key", wrong)]),
        (
            "GET",
            "/api/v1/runs?limit=bad",
            vec![("x-api-key", READ_KEY)],
        ),
        (
            "DELETE",
            "/api/v1/runs/vllm-1",
            vec![("x-api-key", READ_KEY)],
        ),
        (
            "DELETE",
            "/api/v1/runs/vllm-1",
            vec![("x-api-key", UPLOAD_KEY)],
        ),
    ] {
        send(s.addr, method, path, &headers).await;
    }
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The log is really captured: one line per request, with its status.
    for status in ["status=200", "status=401", "status=400", "status=403"] {
        assert!(log.contains(status), "{status} missing from:\n{log}");
    }
    for key in [READ_KEY, UPLOAD_KEY, wrong] {
        assert!(!log.contains(key), "a key is in the log:\n{log}");
    }
}
