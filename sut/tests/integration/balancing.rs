//! Several endpoints: least outstanding requests, ties round-robin.

use loadgen::SystemUnderTest;
use sut::{OpenAiSut, SutConfig};

use crate::common::*;

/// A server whose streams wait on `gate` before finishing.
async fn gated_server(gate: &Gate) -> MockServer {
    let gate = gate.clone();
    MockServer::start(move |_| {
        let mut steps = vec![Step::Wait(gate.clone())];
        steps.extend(vllm_stream(&[("a", Some(&[1]))], 3));
        Reply::Sse(steps)
    })
    .await
}

fn in_flight(sut: &OpenAiSut) -> Vec<u64> {
    sut.endpoint_stats().iter().map(|s| s.in_flight).collect()
}

fn requests(sut: &OpenAiSut) -> Vec<u64> {
    sut.endpoint_stats().iter().map(|s| s.requests).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_outstanding_with_round_robin_ties() {
    let gates = [Gate::default(), Gate::default(), Gate::default()];
    let servers = [
        gated_server(&gates[0]).await,
        gated_server(&gates[1]).await,
        gated_server(&gates[2]).await,
    ];
    let sut = OpenAiSut::connect(
        SutConfig::new(servers.iter().map(|s| s.url.clone())),
        dataset(16),
    )
    .await
    .unwrap();
    let (rec, responder) = Recorder::new();

    // Ties: one each, then a second each.
    for i in 0..3 {
        sut.issue_query(&samples([i]), &responder);
    }
    assert_eq!(in_flight(&sut), vec![1, 1, 1]);
    sut.issue_query(&samples(3..6), &responder);
    assert_eq!(in_flight(&sut), vec![2, 2, 2]);
    for s in &servers {
        s.next_request().await;
        s.next_request().await;
    }

    // Endpoint 1 finishes its two; the next two requests go to it.
    gates[1].open();
    rec.wait_done(2).await;
    assert_eq!(in_flight(&sut), vec![2, 0, 2]);
    sut.issue_query(&samples([6]), &responder);
    sut.issue_query(&samples([7]), &responder);
    rec.wait_done(4).await;
    assert_eq!(requests(&sut), vec![2, 4, 2]);
    for r in rec.responses().values() {
        assert_eq!(r.detail.endpoint, Some(1));
    }

    // A fresh tie between 0 and 2 (1 is now idle again and least loaded).
    sut.issue_query(&samples([8]), &responder);
    assert_eq!(requests(&sut), vec![2, 5, 2]);

    for g in &gates {
        g.open();
    }
    rec.wait_done(9).await;
    sut.drain().await;
    assert_eq!(in_flight(&sut), vec![0, 0, 0]);
    let responses = rec.responses();
    let mut per_endpoint = [0; 3];
    for r in responses.values() {
        assert!(r.detail.error.is_none());
        per_endpoint[r.detail.endpoint.unwrap() as usize] += 1;
    }
    assert_eq!(per_endpoint, [2, 5, 2]);
}

// One thread: no request task runs (and no quick 503 frees its endpoint)
// before `issue_query` has picked every endpoint.
#[tokio::test(flavor = "current_thread")]
async fn errors_are_counted_per_endpoint() {
    let ok = MockServer::start(|_| Reply::Sse(vllm_stream(&[("a", Some(&[1]))], 3))).await;
    let bad = MockServer::start(|_| Reply::Status(503, "overloaded".into())).await;
    let sut = OpenAiSut::connect(
        SutConfig::new([ok.url.as_str(), bad.url.as_str()]),
        dataset(8),
    )
    .await
    .unwrap();
    let (rec, responder) = Recorder::new();
    // Issued together, so ties alternate: four each.
    sut.issue_query(&samples(0..8), &responder);
    rec.wait_done(8).await;
    sut.drain().await;
    let stats = sut.endpoint_stats();
    assert_eq!((stats[0].requests, stats[0].errors), (4, 0));
    assert_eq!((stats[1].requests, stats[1].errors), (4, 4));
    assert_eq!(stats[1].url, bad.url);
    let failed = rec
        .responses()
        .values()
        .filter(|r| r.detail.error.is_some())
        .inspect(|r| assert_eq!(r.detail.endpoint, Some(1)))
        .count();
    assert_eq!(failed, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_endpoint_limit_queues_in_the_client() {
    let gate = Gate::default();
    let server = gated_server(&gate).await;
    let mut config = SutConfig::new([server.url.as_str()]);
    config.client.max_in_flight_per_endpoint = Some(2);
    let sut = OpenAiSut::connect(config, dataset(5)).await.unwrap();
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples(0..5), &responder);
    server.next_request().await;
    server.next_request().await;
    // Two requests are held at the server; the other three wait in the
    // client. Without the limit a third would arrive at once; with it none
    // can (the wait only bounds how long the test looks).
    let third =
        tokio::time::timeout(std::time::Duration::from_millis(100), server.next_request()).await;
    assert!(third.is_err(), "a third request reached the server");
    assert_eq!(rec.done_count(), 0);
    gate.open();
    rec.wait_done(5).await;
    for _ in 0..3 {
        server.next_request().await;
    }
    assert!(rec.responses().values().all(|r| r.detail.error.is_none()));
}
