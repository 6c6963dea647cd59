//! Ctrl-C: shutdown cancels in-flight and queued work, answering every
//! sample with `Cancelled`; drain waits for everything to be answered.

use loadgen::{ErrorKind, SystemUnderTest};
use sut::{BatchPolicy, Dispatch, OpenAiSut, SutConfig};

use crate::common::*;

fn all_cancelled(rec: &Recorder, n: usize) {
    let responses = rec.responses();
    assert_eq!(responses.len(), n);
    for r in responses.values() {
        let e = r.detail.error.as_ref().expect("cancelled");
        assert_eq!(e.kind, ErrorKind::Cancelled, "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_streams_in_flight() {
    let server = MockServer::start(|_| {
        Reply::Sse(vec![
            Step::Bytes(event(
                &serde_json::json!({"choices": [{"index": 0, "text": "a", "token_ids": [1]}]}),
            )),
            Step::Hang,
        ])
    })
    .await;
    let sut = OpenAiSut::connect(SutConfig::new([server.url.as_str()]), dataset(4))
        .await
        .unwrap();
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples(0..4), &responder);
    for _ in 0..4 {
        server.next_request().await;
    }
    assert_eq!(sut.outstanding_samples(), 4);
    within(sut.shutdown()).await;
    all_cancelled(&rec, 4);
    assert_eq!(sut.outstanding_samples(), 0);
    assert_eq!(sut.endpoint_stats()[0].in_flight, 0);

    // After shutdown, new samples are answered at once.
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples([0, 1]), &responder);
    assert_eq!(rec.done_count(), 2);
    all_cancelled(&rec, 2);
    let mut config = SutConfig::new([server.url.as_str()]);
    config.dispatch = Dispatch::Batched(BatchPolicy::default());
    let offline = OpenAiSut::connect(config, dataset(4)).await.unwrap();
    offline.shutdown().await;
    let (rec, responder) = Recorder::new();
    offline.issue_query(&samples(0..4), &responder);
    all_cancelled(&rec, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_queued_offline_batches() {
    let server = MockServer::start(|_| Reply::Hang).await;
    let mut config = SutConfig::new([server.url.as_str()]);
    config.dispatch = Dispatch::Batched(BatchPolicy {
        max_in_flight: 2,
        prompts_per_request: 3,
    });
    let sut = OpenAiSut::connect(config, dataset(20)).await.unwrap();
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples(0..20), &responder);
    server.next_request().await;
    server.next_request().await;
    within(sut.shutdown()).await;
    all_cancelled(&rec, 20);
}

/// A server on a runtime of its own, for tests that drive the client's
/// runtime by hand.
fn server_runtime(reply: Reply) -> (tokio::runtime::Runtime, MockServer) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(MockServer::start(move |_| reply.clone()));
    (rt, server)
}

#[test]
fn shutdown_before_tasks_run_still_answers() {
    let (server_rt, server) = server_runtime(Reply::Hang);
    // A current-thread runtime runs nothing outside `block_on`, so the
    // tasks are aborted before their first poll.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sut = rt
        .block_on(OpenAiSut::connect(
            SutConfig::new([server.url.as_str()]),
            dataset(3),
        ))
        .unwrap();
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples(0..3), &responder);
    assert_eq!(rec.done_count(), 0);
    rt.block_on(sut.shutdown());
    all_cancelled(&rec, 3);
    drop(server_rt);
}

#[test]
fn dropping_the_runtime_answers_every_sample() {
    let (server_rt, server) = server_runtime(Reply::Hang);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sut = rt
        .block_on(OpenAiSut::connect(
            SutConfig::new([server.url.as_str()]),
            dataset(3),
        ))
        .unwrap();
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples(0..3), &responder);
    for _ in 0..3 {
        server_rt.block_on(server.next_request());
    }
    assert_eq!(rec.done_count(), 0);
    // The runtime goes away with the requests in flight.
    drop(rt);
    all_cancelled(&rec, 3);
    assert_eq!(sut.outstanding_samples(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_waits_for_every_answer() {
    let gate = Gate::default();
    let g = gate.clone();
    let server = MockServer::start(move |_| {
        let mut steps = vec![Step::Wait(g.clone())];
        steps.extend(vllm_stream(&[("a", Some(&[1]))], 3));
        Reply::Sse(steps)
    })
    .await;
    let sut = OpenAiSut::connect(SutConfig::new([server.url.as_str()]), dataset(3))
        .await
        .unwrap();
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples(0..3), &responder);
    let drained = tokio::spawn({
        let sut = sut.clone();
        async move { sut.drain().await }
    });
    for _ in 0..3 {
        server.next_request().await;
    }
    assert!(!drained.is_finished());
    assert_eq!(rec.done_count(), 0);
    gate.open();
    within(drained).await.unwrap();
    assert_eq!(rec.done_count(), 3);
    assert!(rec.responses().values().all(|r| r.detail.error.is_none()));
}

#[test]
fn issuing_after_the_runtime_is_gone_answers_at_once() {
    let (server_rt, server) = server_runtime(Reply::Hang);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sut = rt
        .block_on(OpenAiSut::connect(
            SutConfig::new([server.url.as_str()]),
            dataset(3),
        ))
        .unwrap();
    drop(rt);
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples(0..3), &responder);
    all_cancelled(&rec, 3);
    assert_eq!(sut.outstanding_samples(), 0);
    drop(server_rt);
}
