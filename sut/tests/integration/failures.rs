//! Every failure answers the sample with one error kind and a clear line.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use loadgen::{ErrorKind, QueryError, SystemUnderTest};
use serde_json::json;
use sut::{OpenAiSut, SutConfig, SutError};

use crate::common::*;

/// Runs one sample against a server scripted by `reply`; returns its error.
async fn error_of(reply: Reply, edit: impl FnOnce(&mut SutConfig)) -> QueryError {
    let server = MockServer::start(move |_| reply.clone()).await;
    let mut config = SutConfig::new([server.url.as_str()]);
    edit(&mut config);
    let sut = OpenAiSut::connect(config, dataset(1)).await.unwrap();
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples([0]), &responder);
    rec.wait_done(1).await;
    let r = rec.responses().remove(&1000).unwrap();
    assert_eq!(r.n_tokens, 0);
    assert_eq!(r.detail.endpoint, Some(0));
    assert_eq!(sut.endpoint_stats()[0].errors, 1);
    r.detail.error.expect("the sample should have failed")
}

fn chunk(text: &str, id: u32) -> String {
    event(
        &json!({"choices": [{"index": 0, "text": text, "token_ids": [id], "finish_reason": null}]}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_500_with_json_message() {
    let e = error_of(
        Reply::Status(
            500,
            json!({"error": {"message": "engine crashed", "code": 500}}).to_string(),
        ),
        |_| {},
    )
    .await;
    assert_eq!((e.kind, e.http_status), (ErrorKind::HttpStatus, Some(500)));
    assert!(e.message.contains("engine crashed"), "{}", e.message);
    assert!(e.message.contains("/v1/completions"), "{}", e.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_429_too_many_requests() {
    let e = error_of(Reply::Status(429, "Too Many Requests".into()), |_| {}).await;
    assert_eq!((e.kind, e.http_status), (ErrorKind::HttpStatus, Some(429)));
    assert!(e.message.contains("Too Many Requests"), "{}", e.message);
    assert_eq!(e.to_string().lines().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connection_fails_every_query_quickly() {
    let url = dead_url().await;
    let mut config = SutConfig::new([url.as_str()]);
    config.client.health_check = false;
    config.request.model = Some("m".into());
    let sut = OpenAiSut::connect(config, dataset(8)).await.unwrap();
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples(0..8), &responder);
    rec.wait_done(8).await;
    for r in rec.responses().values() {
        let e = r.detail.error.as_ref().unwrap();
        assert_eq!(e.kind, ErrorKind::Connect);
        assert!(e.message.contains(&url), "{}", e.message);
        assert!(
            e.message.to_lowercase().contains("refused"),
            "{}",
            e.message
        );
    }
    assert_eq!(sut.endpoint_stats()[0].errors, 8);
    assert_eq!(sut.endpoint_stats()[0].in_flight, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_between_chunks() {
    let e = error_of(
        Reply::Sse(vec![Step::Bytes(chunk("a", 1)), Step::Hang]),
        |c| c.client.stall_timeout = Some(Duration::from_millis(150)),
    )
    .await;
    assert_eq!(e.kind, ErrorKind::Stalled);
    assert!(e.message.contains("150ms"), "{}", e.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_but_steady_stream_is_not_a_stall() {
    // Twelve pieces 50 ms apart: 600 ms in all, never 400 ms of silence.
    let server = MockServer::start(|_| {
        let mut steps = Vec::new();
        for i in 0..12 {
            steps.push(Step::Delay(Duration::from_millis(50)));
            steps.push(Step::Bytes(chunk("a", i)));
        }
        steps.push(Step::Bytes(event(
            &json!({"choices": [{"index": 0, "text": "", "finish_reason": "length"}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 12}}),
        )));
        steps.push(Step::Bytes(DONE.into()));
        Reply::Sse(steps)
    })
    .await;
    let mut config = SutConfig::new([server.url.as_str()]);
    config.client.stall_timeout = Some(Duration::from_millis(400));
    let sut = OpenAiSut::connect(config, dataset(1)).await.unwrap();
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples([0]), &responder);
    rec.wait_done(1).await;
    let r = rec.responses().remove(&1000).unwrap();
    assert!(r.detail.error.is_none(), "{:?}", r.detail.error);
    assert_eq!(r.n_tokens, 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stall_timeout_does_not_cover_the_wait_for_the_first_piece() {
    // Queueing and prefill on the server may take long before any byte: only
    // the request timeout bounds that wait.
    let e = error_of(Reply::Sse(vec![Step::Hang]), |c| {
        c.client.stall_timeout = Some(Duration::from_millis(50));
        c.client.request_timeout = Some(Duration::from_millis(400));
    })
    .await;
    assert_eq!(e.kind, ErrorKind::Timeout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_mid_stream() {
    let e = error_of(
        Reply::Sse(vec![
            Step::Bytes(chunk("a", 1)),
            Step::Bytes(chunk("b", 2)),
            Step::Break,
        ]),
        |_| {},
    )
    .await;
    assert_eq!(e.kind, ErrorKind::Disconnected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_end_without_done_or_finish() {
    let e = error_of(Reply::Sse(vec![Step::Bytes(chunk("a", 1))]), |_| {}).await;
    assert_eq!(e.kind, ErrorKind::Disconnected);
    assert!(e.message.contains("without [DONE]"), "{}", e.message);
    let e = error_of(
        Reply::Sse(vec![
            Step::Bytes(chunk("a", 1)),
            Step::Bytes("data: {\"choi".into()),
        ]),
        |_| {},
    )
    .await;
    assert_eq!(e.kind, ErrorKind::Disconnected);
    assert!(e.message.contains("middle of an event"), "{}", e.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_in_the_stream() {
    let e = error_of(
        Reply::Sse(vec![
            Step::Bytes(chunk("a", 1)),
            Step::Bytes("data: {not json}\n\n".into()),
        ]),
        |_| {},
    )
    .await;
    assert_eq!(e.kind, ErrorKind::MalformedResponse);
    assert!(e.message.contains("event 2"), "{}", e.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_event_is_malformed() {
    let e = error_of(
        Reply::Sse(vec![Step::Bytes(format!("data: {}", "x".repeat(5000)))]),
        |c| c.client.max_event_bytes = 1024,
    )
    .await;
    assert_eq!(e.kind, ErrorKind::MalformedResponse);
    assert!(e.message.contains("1024"), "{}", e.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mid_stream_error_event() {
    // vLLM sends the error as a data event, then [DONE].
    let e = error_of(
        Reply::Sse(vec![
            Step::Bytes(chunk("a", 1)),
            Step::Bytes(event(&json!({"error": {"object": "error", "message": "out of KV cache", "type": "InternalServerError", "code": 500}}))),
            Step::Bytes(DONE.into()),
        ]),
        |_| {},
    )
    .await;
    assert_eq!(e.kind, ErrorKind::ServerError);
    assert!(e.message.contains("out of KV cache"), "{}", e.message);
    // An `event: error` with a plain-text payload.
    let e = error_of(
        Reply::Sse(vec![Step::Bytes(
            "event: error\ndata: backend died\n\n".into(),
        )]),
        |_| {},
    )
    .await;
    assert_eq!(e.kind, ErrorKind::ServerError);
    assert!(e.message.contains("backend died"), "{}", e.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_request_timeout_when_no_answer_comes() {
    let e = error_of(Reply::Hang, |c| {
        c.client.request_timeout = Some(Duration::from_millis(200));
    })
    .await;
    assert_eq!(e.kind, ErrorKind::Timeout);
    assert!(e.message.contains("200ms"), "{}", e.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_request_timeout_also_bounds_a_slow_stream() {
    let e = error_of(
        Reply::Sse(vec![Step::Bytes(chunk("a", 1)), Step::Hang]),
        |c| c.client.request_timeout = Some(Duration::from_millis(200)),
    )
    .await;
    assert_eq!(e.kind, ErrorKind::Timeout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_failure_names_the_url() {
    let server = MockServer::start_with(
        ServerOptions {
            health: 503,
            ..ServerOptions::default()
        },
        |_| Reply::Hang,
    )
    .await;
    let good = MockServer::start(|_| Reply::Hang).await;
    let config = SutConfig::new([good.url.as_str(), server.url.as_str()]);
    let e = OpenAiSut::connect(config, dataset(1)).await.unwrap_err();
    assert!(matches!(e, SutError::Unhealthy { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains(&format!("{}/health", server.url)), "{text}");
    assert!(text.contains("503"), "{text}");

    let dead = dead_url().await;
    let e = OpenAiSut::connect(SutConfig::new([dead.as_str()]), dataset(1))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&dead) && e.contains("cannot connect"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_must_be_served_by_every_endpoint() {
    let a = MockServer::start(|_| Reply::Hang).await;
    let b = MockServer::start_with(
        ServerOptions {
            models: vec!["other".into()],
            ..ServerOptions::default()
        },
        |_| Reply::Hang,
    )
    .await;
    let e = OpenAiSut::connect(SutConfig::new([a.url.as_str(), b.url.as_str()]), dataset(1))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("mock-model") && e.contains("other") && e.contains(&b.url),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_is_rejected_with_context() {
    let e = OpenAiSut::connect(SutConfig::new(["ftp://x"]), dataset(1))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("ftp://x"), "{e}");
    let e = OpenAiSut::connect(SutConfig::new(Vec::<String>::new()), dataset(1))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no endpoint"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_index_out_of_range_is_an_error_not_a_panic() {
    let server = MockServer::start(|_| Reply::Hang).await;
    let sut = OpenAiSut::connect(SutConfig::new([server.url.as_str()]), dataset(2))
        .await
        .unwrap();
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples([5]), &responder);
    rec.wait_done(1).await;
    let e = rec.responses()[&1005].detail.error.clone().unwrap();
    assert_eq!(e.kind, ErrorKind::Other);
    assert!(e.message.contains("out of range"), "{}", e.message);
}

/// Reads one whole request (the head, then Content-Length bytes) from
/// `socket` and removes it from `buffer`, which keeps what came after it.
/// False when the connection ended or failed first.
async fn read_request(socket: &mut tokio::net::TcpStream, buffer: &mut Vec<u8>) -> bool {
    use tokio::io::AsyncReadExt;
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
            let body_len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
            if buffer.len() >= end + 4 + body_len {
                buffer.drain(..end + 4 + body_len);
                return true;
            }
        }
        let mut piece = [0u8; 4096];
        match socket.read(&mut piece).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buffer.extend_from_slice(&piece[..n]),
        }
    }
}

/// A raw HTTP/1.1 server that answers at most `answers_per_connection`
/// requests on a connection, then closes it when the next request arrives,
/// without a word and without `Connection: close` (llama.cpp's way after
/// every streamed answer). Returns its URL and the requests it saw.
async fn closing_server(answers_per_connection: usize) -> (String, Arc<AtomicUsize>) {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut answered = 0;
                let mut buffer = Vec::new();
                loop {
                    if !read_request(&mut socket, &mut buffer).await {
                        return;
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    if answered == answers_per_connection {
                        return; // drops the socket: closed, unanswered
                    }
                    answered += 1;
                    let body = format!("{}data: [DONE]\n\n", chunk("hi", 7));
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                         content-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if socket.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}

fn one_at_a_time(url: &str) -> SutConfig {
    let mut config = SutConfig::new([url]);
    config.client.health_check = false;
    config.request.model = Some("m".into());
    config.client.max_in_flight_per_endpoint = Some(1);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_closed_unanswered_is_resent_once_and_counted() {
    let (url, seen) = closing_server(1).await;
    let sut = OpenAiSut::connect(one_at_a_time(&url), dataset(4))
        .await
        .unwrap();
    let (rec, responder) = Recorder::new();
    // One at a time, so each request after the first finds the previous
    // one's connection in the pool, and the server closes it unanswered.
    for i in 0..4 {
        sut.issue_query(&samples([i]), &responder);
        within(rec.wait_done(i + 1)).await;
    }
    for r in rec.responses().values() {
        assert_eq!(r.detail.error, None);
        assert_eq!(r.n_tokens, 1);
    }
    let stats = &sut.endpoint_stats()[0];
    assert_eq!((stats.requests, stats.errors, stats.resent), (4, 0, 3));
    assert_eq!(seen.load(Ordering::SeqCst), 4 + 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_fails_after_one_resend() {
    let (url, seen) = closing_server(0).await;
    let sut = OpenAiSut::connect(one_at_a_time(&url), dataset(1))
        .await
        .unwrap();
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples([0]), &responder);
    within(rec.wait_done(1)).await;
    let e = rec.responses()[&1000].detail.error.clone().unwrap();
    assert_eq!(e.kind, ErrorKind::Disconnected, "{}", e.message);
    assert!(e.message.contains("closed"), "{}", e.message);
    let stats = &sut.endpoint_stats()[0];
    assert_eq!((stats.requests, stats.errors, stats.resent), (1, 1, 1));
    assert_eq!(seen.load(Ordering::SeqCst), 2);
}

/// A raw HTTP/1.1 server that answers one request per connection and then
/// closes it at once (llama.cpp's way after a streamed answer). Each close
/// is reported on the channel once the socket is closed; a closed socket
/// on 127.0.0.1 has delivered its FIN to the peer by then.
async fn close_after_answer_server() -> (
    String,
    Arc<AtomicUsize>,
    tokio::sync::mpsc::UnboundedReceiver<()>,
) {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    let (closed, closes) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            if !read_request(&mut socket, &mut Vec::new()).await {
                continue;
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let body = format!("{}data: [DONE]\n\n", chunk("hi", 7));
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                 content-length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
            drop(socket);
            let _ = closed.send(());
        }
    });
    (url, seen, closes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_server_closed_after_answering_is_not_reused() {
    let (url, seen, mut closes) = close_after_answer_server().await;
    let sut = OpenAiSut::connect(one_at_a_time(&url), dataset(4))
        .await
        .unwrap();
    let (rec, responder) = Recorder::new();
    for i in 0..4 {
        sut.issue_query(&samples([i]), &responder);
        within(rec.wait_done(i + 1)).await;
        within(closes.recv()).await;
    }
    for r in rec.responses().values() {
        assert_eq!(r.detail.error, None);
        assert_eq!(r.n_tokens, 1);
    }
    // Each request found the pooled connection closed and opened a new
    // one instead of sending into it and being resent.
    let stats = &sut.endpoint_stats()[0];
    assert_eq!((stats.requests, stats.errors, stats.resent), (4, 0, 0));
    assert_eq!(seen.load(Ordering::SeqCst), 4);
}

/// A raw server that reads a request and answers with `answer`, then keeps
/// the connection open without another byte.
async fn raw_answer_server(answer: Vec<u8>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut piece = [0u8; 4096];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut piece).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&piece[..n]),
                    }
                }
                if socket.write_all(&answer).await.is_err() {
                    return;
                }
                // Hold the connection open, silent, until the client goes.
                let _ = socket.read(&mut piece).await;
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_is_not_sound_http_fails_as_malformed_in_bounded_time() {
    let endless_head = {
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        while head.len() <= 70 * 1024 {
            head.extend_from_slice(b"x-filler: 0123456789abcdef0123456789abcdef\r\n");
        }
        head
    };
    let long_size_line = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n1;{}",
        "e".repeat(5000)
    );
    let cases: [(&str, Vec<u8>); 4] = [
        ("not HTTP", b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec()),
        ("a head without an end", endless_head),
        (
            "a bad chunk size",
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"
                .to_vec(),
        ),
        ("a chunk-size line without an end", long_size_line.into_bytes()),
    ];
    for (what, answer) in cases {
        let url = raw_answer_server(answer).await;
        let mut config = one_at_a_time(&url);
        config.client.stall_timeout = Some(Duration::from_secs(30));
        let sut = OpenAiSut::connect(config, dataset(1)).await.unwrap();
        let (rec, responder) = Recorder::new();
        sut.issue_query(&samples([0]), &responder);
        within(rec.wait_done(1)).await;
        let e = rec.responses()[&1000].detail.error.clone().unwrap();
        assert_eq!(
            e.kind,
            ErrorKind::MalformedResponse,
            "{what}: {}",
            e.message
        );
        assert!(e.message.contains(&url), "{what}: {}", e.message);
        assert_eq!(sut.endpoint_stats()[0].errors, 1, "{what}");
    }
}
