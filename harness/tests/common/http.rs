//! `GET` over plain HTTP/1.1 on std's TcpStream, for the servers tests start
//! on loopback (no client library, no runtime).

use std::io::{Read, Write};
use std::time::Duration;

/// GETs `path` from `addr` (host:port) with `headers` (whole `name: value`
/// lines) and `connection: close`; the status and the body.
pub fn get(addr: &str, path: &str, headers: &[&str]) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    // A server that never answers fails the test instead of hanging it.
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(
        answer.contains("\r\n\r\n"),
        "GET {path}: no end of head in {answer:?}"
    );
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok());
    assert!(status.is_some(), "GET {path}: no status in {head:?}");
    (status.unwrap(), body.to_owned())
}
