//! Test helpers: a service on 127.0.0.1:0, a minimal HTTP/1.1 client that
//! sends exactly the bytes a test gives (hostile ones included), and a
//! recorded history.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::net::SocketAddr;

use history::{Database, History, RunEntry};
use service::{KeySet, Service, ServiceConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const READ_KEY: &str = "read-key-0123456789abcdef";
pub const UPLOAD_KEY: &str = "upload-key-0123456789abcdef";

pub struct Server {
    pub addr: SocketAddr,
    pub service: Service,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub async fn start(db: Database) -> Server {
    start_with(db, service::DashboardAccess::Login).await
}

pub async fn start_with(db: Database, dashboard: service::DashboardAccess) -> Server {
    start_uploading(db, dashboard, None).await
}

pub async fn start_uploading(
    db: Database,
    dashboard: service::DashboardAccess,
    uploads: Option<service::Uploads>,
) -> Server {
    let keys = KeySet::parse(&format!("read:{READ_KEY}\nupload:{UPLOAD_KEY}"), "test").unwrap();
    let service = tokio::task::spawn_blocking(move || {
        Service::open(ServiceConfig {
            db,
            keys,
            dashboard,
            uploads,
        })
    })
    .await
    .unwrap()
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = service.clone();
    tokio::spawn(async move {
        serving
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Server {
        addr,
        service,
        _stop: stop,
    }
}

pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{e}: status {} body {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request (`Connection: close`) and reads the whole answer.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Content-Length: 0\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    parse(&raw)
}

pub async fn get(addr: SocketAddr, target: &str) -> Answer {
    send(addr, "GET", target, &[("x-api-key", READ_KEY)]).await
}

fn parse(raw: &[u8]) -> Answer {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = body.as_slice();
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap().trim(), 16)
                    .unwrap();
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
            rest = &rest[line_end + 2 + size + 2..];
        }
        body = out;
    }
    Answer {
        status,
        headers,
        body,
    }
}

pub fn run(id: &str, at: &str, system: &str, scenario: &str, ttft: f64, qps: f64) -> RunEntry {
    RunEntry {
        run_id: id.into(),
        run_dir: format!("runs/{id}"),
        started_at: at.into(),
        model: "llama3_1-8b".into(),
        scenario: scenario.into(),
        mode: "PerformanceOnly".into(),
        backends: vec![format!("http://{system}:8000/v1")],
        dataset: Some("datasets/cnn_eval.json".into()),
        labels: vec![("label".into(), system.into())],
        status: "complete".into(),
        valid: Some(true),
        reasons: vec![],
        harness_version: "0.1.0".into(),
        loadgen: "harness-rust 0.1.0".into(),
        metrics: vec![
            ("ttft_p50_ms".into(), ttft),
            ("latency_p50_ms".into(), ttft * 10.0),
            ("samples_per_s".into(), qps),
            ("output_tokens_per_s".into(), qps * 100.0),
        ],
    }
}

/// Twelve runs: vllm and tgi close (a tie), sglang clearly slower; one
/// Offline run per system on the last day.
pub fn fixture() -> Vec<RunEntry> {
    let mut runs = Vec::new();
    for (system, base, qps) in [
        ("vllm", 10.0, 50.0),
        ("tgi", 10.1, 49.0),
        ("sglang", 20.0, 30.0),
    ] {
        for day in 0..4 {
            let scenario = if day == 3 { "Offline" } else { "Server" };
            runs.push(run(
                &format!("{system}-{day}"),
                &format!("2026-11-2{day}T10:00:00+00:00"),
                system,
                scenario,
                base + f64::from(day % 2) * 0.5,
                qps + f64::from(day % 2),
            ));
        }
    }
    runs
}

pub fn record_all(db: &Database, runs: &[RunEntry]) {
    let mut history = History::open(db).unwrap();
    for run in runs {
        history.record(run).unwrap();
    }
}

/// Records `runs` as another process would (its own connection) and waits
/// until `server` has dropped its cached answers, which it does at its
/// next poll of the SQLite file. The timeout is a deadlock guard.
pub async fn record_elsewhere(server: &Server, db: &Database, runs: &[RunEntry]) {
    let mut invalidations = server.service.invalidations();
    let (db, runs) = (db.clone(), runs.to_vec());
    tokio::task::spawn_blocking(move || record_all(&db, &runs))
        .await
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(60), invalidations.changed())
        .await
        .expect("the server never noticed the recorded run")
        .unwrap();
}

/// Sends one request with a body (`Connection: close`).
pub async fn send_body(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    // The server may answer (413) and close before reading all of it.
    let _ = stream.write_all(&bytes).await;
    let mut raw = Vec::new();
    // A reset after a complete answer (the server closed before reading
    // an oversized body) still leaves the answer read.
    let _ = stream.read_to_end(&mut raw).await;
    parse(&raw)
}

/// A history database in a fresh PostgreSQL schema `schema` on `server`
/// (dropped and created again), so a test starts empty and parallel tests
/// never see each other's runs.
pub async fn fresh_postgres_schema(server: &str, schema: &'static str) -> history::Database {
    let admin_url = server.to_owned();
    tokio::task::spawn_blocking(move || {
        postgres::Client::connect(&admin_url, postgres::NoTls)
            .unwrap()
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            ))
            .unwrap();
    })
    .await
    .unwrap();
    let sep = if server.contains('?') { '&' } else { '?' };
    history::Database::parse(&format!("{server}{sep}options=-csearch_path%3D{schema}"))
}
