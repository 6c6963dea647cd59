//! `--header 'Name: value'`: sent with every request, never written
//! anywhere. A fake OpenAI-compatible server on 127.0.0.1:0 records the raw
//! requests; the run's files and output are searched for the values.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};

/// Answers every request on its own connection (`Connection: close`) and
/// keeps each request's head.
fn fake_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&heads);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
            seen.lock().unwrap().push(head);
            let (kind, body) = match path.as_str() {
                "/v1/models" => (
                    "application/json",
                    r#"{"object":"list","data":[{"id":"fake","object":"model","owned_by":"vllm"}]}"#
                        .to_owned(),
                ),
                "/v1/completions" => (
                    "text/event-stream",
                    "data: {\"choices\":[{\"index\":0,\"text\":\"a\",\"token_ids\":[5],\"finish_reason\":\"length\"}]}\n\n\
                     data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n\
                     data: [DONE]\n\n"
                        .to_owned(),
                ),
                "/health" => ("text/plain", String::new()),
                _ => {
                    let _ = stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                    continue;
                }
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, heads)
}

/// Every file under `dir`, as lossy text.
fn all_text(dir: &std::path::Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            all_text(&path, out);
        } else {
            out.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
        }
    }
}

#[test]
fn headers_reach_the_server_and_their_values_are_written_nowhere() {
    let (url, heads) = fake_server();
    let scratch = tempfile::tempdir().unwrap();
    std::fs::write(
        scratch.path().join("user.conf"),
        "*.Offline.target_qps = 100\n*.*.min_duration = 0\n*.Offline.min_query_count = 2\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_harness"))
        .current_dir(scratch.path())
        .env("HARNESS_TEST_HEADER_KEY", "env-secret-5150")
        .args([
            "run",
            "--no-report",
            "--user-conf",
            "user.conf",
            "--scenario",
            "Offline",
        ])
        .args(["--api-server", &url, "--api-model-name", "fake"])
        .args(["--total-sample-count", "2", "--output-log-dir", "out"])
        .args(["--header", "x-api-key: @env:HARNESS_TEST_HEADER_KEY"])
        .arg("--header=X-Tenant: inline-secret-8086")
        .args(["--metrics-output-dir", "metrics-copy"])
        .output()
        .unwrap();
    let printed = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{printed}");

    let heads = heads.lock().unwrap().clone();
    let generation: Vec<&String> = heads
        .iter()
        .filter(|h| h.starts_with("POST /v1/completions"))
        .collect();
    assert_eq!(generation.len(), 2, "{heads:#?}");
    for head in heads.iter().filter(|h| !h.contains("/metrics")) {
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains("x-api-key: env-secret-5150"), "{head}");
        assert!(lower.contains("x-tenant: inline-secret-8086"), "{head}");
    }

    // The aliases took effect: the run went under --output-log-dir, and the
    // metric files were copied to --metrics-output-dir.
    assert!(scratch.path().join("out").is_dir());
    assert!(scratch.path().join("metrics-copy/metrics.jsonl").is_file());
    let mut written = printed;
    all_text(scratch.path(), &mut written);
    assert!(
        written.contains("@env:HARNESS_TEST_HEADER_KEY"),
        "the source is recorded"
    );
    for secret in ["env-secret-5150", "inline-secret-8086"] {
        assert!(!written.contains(secret), "{secret} was written or printed");
    }
}
