//! `harness serve` as a user starts it: keys from the environment or a
//! file, a free port printed at start, refused without a key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

const KEY: &str = "read-key-0123456789abcdef";

fn get(addr: &str, path: &str, key: Option<&str>) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let key = key.map_or(String::new(), |k| format!("x-api-key: {k}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{key}\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.split(' ').nth(1).unwrap().parse().unwrap();
    let body = answer.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

#[test]
fn serve_prints_its_address_and_answers_with_a_key_from_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys.txt");
    std::fs::write(&keys, format!("# the team\nread:{KEY}\n")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(tmp.path().join("h.sqlite"))
        .arg("--api-keys-file")
        .arg(&keys)
        .env_remove("HARNESS_API_KEYS")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().rsplit_once("http://").unwrap().1.to_owned();
    let health = get(&addr, "/health", None);
    let runs = get(&addr, "/api/v1/runs", Some(KEY));
    let unauthorized = get(&addr, "/api/v1/runs", None);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(health.0, 200, "{line}");
    assert_eq!(runs.0, 200);
    assert!(runs.1.contains("\"data\":[]"), "{}", runs.1);
    assert_eq!(unauthorized.0, 401);
}

#[test]
fn serve_refuses_to_start_without_a_key_or_with_a_weak_one() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("h.sqlite");
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(&db)
        .env_remove("HARNESS_API_KEYS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no API key: set HARNESS_API_KEYS"),
        "{stderr}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(&db)
        .env("HARNESS_API_KEYS", "upload:tooshortsecret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("HARNESS_API_KEYS: entry 1: a key needs at least 16"),
        "{stderr}"
    );
    assert!(!stderr.contains("tooshortsecret"), "{stderr}");
}
