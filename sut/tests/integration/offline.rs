//! Offline: a work queue drained by a fixed number of in-flight requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use loadgen::{SystemUnderTest, tokens_to_bytes};
use serde_json::{Value, json};
use sut::{BatchPolicy, Dispatch, OpenAiSut, SutConfig};

use crate::common::*;

/// Output of a prompt: its first id + 5000 and + 6000, so every answer can
/// be matched to its own prompt.
fn outputs_of(prompt: &Value) -> [u32; 2] {
    let first = prompt[0].as_u64().unwrap() as u32;
    [first + 5000, first + 6000]
}

/// The prompts of a request: `[[ids], [ids]]`, or `[ids]` for one.
fn prompt_list(body: &Value) -> Vec<Value> {
    let prompt = body["prompt"].as_array().unwrap();
    if prompt.iter().all(Value::is_array) {
        prompt.clone()
    } else {
        vec![body["prompt"].clone()]
    }
}

fn offline(url: &str, max_in_flight: usize, prompts_per_request: usize, stream: bool) -> SutConfig {
    let mut config = SutConfig::new([url]);
    config.dispatch = Dispatch::Batched(BatchPolicy {
        max_in_flight,
        prompts_per_request,
    });
    config.request.stream = stream;
    config.request.max_tokens = Some(2);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_prompt_non_streaming_batches_match_choices_by_index() {
    let server = MockServer::start(|req| {
        let prompts = prompt_list(&req.body);
        // Choices in reverse order: the client must use `index`.
        let choices: Vec<Value> = prompts
            .iter()
            .enumerate()
            .rev()
            .map(|(i, p)| {
                json!({"index": i, "text": "xy", "token_ids": outputs_of(p), "finish_reason": "length"})
            })
            .collect();
        let n = prompts.len() as u32;
        Reply::Status(
            200,
            json!({"id": "cmpl-b", "choices": choices,
                   "usage": {"prompt_tokens": 3 * n, "completion_tokens": 2 * n}})
            .to_string(),
        )
    })
    .await;
    let sut = OpenAiSut::connect(offline(&server.url, 2, 2, false), dataset(5))
        .await
        .unwrap();
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples(0..5), &responder);
    rec.wait_done(5).await;
    let responses = rec.responses();
    for i in 0..5u32 {
        let r = &responses[&(1000 + u64::from(i))];
        assert!(r.detail.error.is_none(), "{:?}", r.detail.error);
        assert_eq!(
            r.data,
            tokens_to_bytes(&[i * 10 + 1 + 5000, i * 10 + 1 + 6000])
        );
        assert_eq!(r.n_tokens, 2);
    }
    let mut sizes = Vec::new();
    while let Some(req) = server.try_request().await {
        sizes.push(prompt_list(&req.body).len());
    }
    sizes.sort_unstable();
    assert_eq!(sizes, vec![1, 2, 2]);
    assert_eq!(sut.endpoint_stats()[0].requests, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_prompt_streaming_answers_each_sample_at_its_own_finish() {
    // Prompt 1 finishes, then the stream waits on a gate before prompt 0
    // finishes: sample 1 must be answered while the request is still open.
    let gate = Gate::default();
    let server_gate = gate.clone();
    let server = MockServer::start(move |req| {
        let prompts = req.body["prompt"].as_array().unwrap();
        let (a, b) = (outputs_of(&prompts[0]), outputs_of(&prompts[1]));
        let c = |index: usize, ids: &[u32], finish: Value| {
            Step::Bytes(event(&json!({"choices": [{"index": index, "text": "t", "token_ids": ids, "finish_reason": finish}]})))
        };
        Reply::Sse(vec![
            c(0, &a[..1], Value::Null),
            c(1, &b[..], json!("stop")),
            Step::Wait(server_gate.clone()),
            c(0, &a[1..], json!("length")),
            Step::Bytes(event(&json!({"choices": [], "usage": {"prompt_tokens": 6, "completion_tokens": 4}}))),
            Step::Bytes(DONE.into()),
        ])
    })
    .await;
    let sut = OpenAiSut::connect(offline(&server.url, 1, 2, true), dataset(2))
        .await
        .unwrap();
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples(0..2), &responder);
    rec.wait_done(1).await;
    let responses = rec.responses();
    assert_eq!(responses.len(), 1);
    assert_eq!(
        responses[&1001].data,
        tokens_to_bytes(&[11 + 5000, 11 + 6000])
    );
    gate.open();
    rec.wait_done(2).await;
    let r = &rec.responses()[&1000];
    assert_eq!(r.data, tokens_to_bytes(&[1 + 5000, 1 + 6000]));
    assert_eq!(r.detail.chunk_tokens, vec![1, 1]);
    assert_eq!(rec.first_tokens().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_with_different_max_tokens_never_share_a_request() {
    let server = MockServer::start(|req| {
        let prompts = prompt_list(&req.body);
        let choices: Vec<Value> = prompts
            .iter()
            .enumerate()
            .map(|(i, p)| json!({"index": i, "text": "", "token_ids": outputs_of(p), "finish_reason": "length"}))
            .collect();
        Reply::Status(200, json!({"choices": choices}).to_string())
    })
    .await;
    let mut data = (*dataset(6)).clone();
    for (i, s) in data.samples.iter_mut().enumerate() {
        s.max_output_tokens = Some(if i % 2 == 0 { 10 } else { 20 });
    }
    let sut = OpenAiSut::connect(offline(&server.url, 4, 4, false), Arc::new(data))
        .await
        .unwrap();
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples(0..6), &responder);
    rec.wait_done(6).await;
    assert!(rec.responses().values().all(|r| r.detail.error.is_none()));
    let mut seen = Vec::new();
    while let Some(req) = server.try_request().await {
        let firsts: Vec<u64> = prompt_list(&req.body)
            .iter()
            .map(|p| p[0].as_u64().unwrap())
            .collect();
        seen.push((req.body["max_tokens"].as_u64().unwrap(), firsts));
    }
    seen.sort();
    assert_eq!(seen, vec![(10, vec![1, 21, 41]), (20, vec![11, 31, 51])]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_keep_the_server_saturated_without_head_of_line_waiting() {
    // Two workers. The first request is held until the end; the other
    // worker must keep sending while it is held, and never more than two
    // requests are open at the server.
    let hold = Gate::default();
    let hold_server = hold.clone();
    let open = Arc::new(AtomicUsize::new(0));
    let max_open = Arc::new(AtomicUsize::new(0));
    let (open_s, max_s) = (open.clone(), max_open.clone());
    let server = MockServer::start(move |req| {
        let now = open_s.fetch_add(1, Ordering::SeqCst) + 1;
        max_s.fetch_max(now, Ordering::SeqCst);
        let ids = outputs_of(&req.body["prompt"]);
        let mut steps = Vec::new();
        if req.seq == 0 {
            steps.push(Step::Wait(hold_server.clone()));
        }
        let mut stream = vllm_stream(&[("a", Some(&ids[..]))], 3);
        // Closed before [DONE] goes out: the client only sends its next
        // request after reading [DONE].
        let closing = open_s.clone();
        let done = stream.pop().unwrap();
        stream.push(Step::Run(Arc::new(move || {
            closing.fetch_sub(1, Ordering::SeqCst);
        })));
        stream.push(done);
        steps.extend(stream);
        Reply::Sse(steps)
    })
    .await;
    let sut = OpenAiSut::connect(offline(&server.url, 2, 1, true), dataset(6))
        .await
        .unwrap();
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples(0..6), &responder);
    // Five samples finish while the first request is held.
    rec.wait_done(5).await;
    let held = server.next_request().await;
    assert_eq!(held.seq, 0);
    let held_id = 1000 + (held.body["prompt"][0].as_u64().unwrap() - 1) / 10;
    let responses = rec.responses();
    assert_eq!(responses.len(), 5);
    assert!(!responses.contains_key(&held_id));
    // The held request, and maybe the last one still reading its [DONE].
    assert!((1..=2).contains(&sut.endpoint_stats()[0].in_flight));
    hold.open();
    rec.wait_done(6).await;
    sut.drain().await;
    assert_eq!(max_open.load(Ordering::SeqCst), 2);
    assert_eq!(sut.endpoint_stats()[0].requests, 6);
    assert_eq!(sut.endpoint_stats()[0].in_flight, 0);
}
