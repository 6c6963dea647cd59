//! Streaming requests, one per sample (Server / SingleStream / MultiStream).

use std::sync::Arc;

use loadgen::{ErrorKind, OutputData, SystemUnderTest, tokens_to_bytes};
use serde_json::{Value, json};
use sut::{ApiKey, EndpointKind, HttpVersion, OpenAiSut, SutConfig};

use crate::common::*;

async fn connect(url: &str, edit: impl FnOnce(&mut SutConfig)) -> OpenAiSut {
    let mut config = SutConfig::new([url]);
    edit(&mut config);
    OpenAiSut::connect(config, dataset(8)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vllm_stream_with_token_ids() {
    let server = MockServer::start(|_| {
        Reply::Sse(vllm_stream(
            &[
                ("Hel", Some(&[501, 502])),
                ("lo", Some(&[503])),
                ("!", Some(&[504])),
            ],
            3,
        ))
    })
    .await;
    let sut = connect(&server.url, |c| c.request.max_tokens = Some(64)).await;
    assert_eq!(sut.model(), "mock-model");
    assert_eq!(sut.name(), "openai:mock-model");
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples([2]), &responder);
    rec.wait_done(1).await;

    let req = server.next_request().await;
    assert_eq!(req.path, "/v1/completions");
    assert_eq!(
        req.body,
        json!({
            "model": "mock-model", "prompt": [21, 22, 23], "max_tokens": 64,
            "return_token_ids": true, "stream": true,
            "stream_options": {"include_usage": true}
        })
    );
    assert_eq!(req.headers["accept"], "text/event-stream");
    assert!(req.headers.get("authorization").is_none());

    let firsts = rec.first_tokens();
    assert_eq!(firsts[&1002].0, tokens_to_bytes(&[501, 502]));
    let r = &rec.responses()[&1002];
    assert!(r.detail.error.is_none(), "{:?}", r.detail.error);
    assert_eq!(r.data, tokens_to_bytes(&[501, 502, 503, 504]));
    assert_eq!(r.n_tokens, 4);
    assert_eq!(r.detail.input_tokens, Some(3));
    assert_eq!(r.detail.endpoint, Some(0));
    assert_eq!(r.detail.output_data, OutputData::TokenIds);
    assert_eq!(r.detail.chunk_tokens, vec![2, 1, 1]);
    assert_eq!(r.detail.chunk_ns.len(), 3);
    assert!(r.detail.chunk_ns.windows(2).all(|w| w[0] <= w[1]));
    // The first token is reported no earlier than its chunk arrived.
    assert!(firsts[&1002].1 >= r.detail.chunk_ns[0]);
    sut.drain().await;
    assert_eq!(sut.outstanding_samples(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llama_cpp_style_stream_without_token_ids() {
    // llama.cpp: chatcmpl- ids on text completions, usage and timings in the
    // final chunk with the finish reason, no token ids, model ignored.
    let server = MockServer::start(|_| {
        let chunk = |text: &str, last: bool| {
            let mut c = json!({
                "choices": [{"text": text, "index": 0, "logprobs": null,
                             "finish_reason": if last { json!("length") } else { Value::Null }}],
                "created": 1, "model": "smollm2", "system_fingerprint": "b1",
                "object": "text_completion", "id": "chatcmpl-abc"
            });
            if last {
                c["usage"] = json!({"completion_tokens": 3, "prompt_tokens": 5, "total_tokens": 8});
                c["timings"] = json!({"prompt_n": 5, "predicted_n": 3, "predicted_ms": 12.5});
            }
            event(&c)
        };
        Reply::Sse(vec![
            Step::Bytes(chunk("The", false)),
            Step::Bytes(chunk(" cat", false)),
            Step::Bytes(chunk(" sat", true)),
            Step::Bytes(DONE.into()),
        ])
    })
    .await;
    let sut = connect(&server.url, |_| {}).await;
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples([0]), &responder);
    rec.wait_done(1).await;
    let r = &rec.responses()[&1000];
    assert!(r.detail.error.is_none(), "{:?}", r.detail.error);
    assert_eq!(r.data, b"The cat sat");
    assert_eq!(r.detail.output_data, OutputData::Text);
    assert_eq!(r.n_tokens, 3);
    assert_eq!(r.detail.input_tokens, Some(5));
    assert_eq!(r.detail.chunk_tokens, vec![1, 1, 1]);
    assert_eq!(rec.first_tokens()[&1000].0, b"The");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vllm_usage_chunk_gives_the_count_without_ids() {
    let server =
        MockServer::start(|_| Reply::Sse(vllm_stream(&[("a", None), ("b", None), ("", None)], 7)))
            .await;
    let sut = connect(&server.url, |c| c.request.return_token_ids = false).await;
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples([1]), &responder);
    rec.wait_done(1).await;
    let req = server.next_request().await;
    assert!(req.body.get("return_token_ids").is_none());
    let r = &rec.responses()[&1001];
    assert_eq!((r.n_tokens, r.detail.input_tokens), (3, Some(7)));
    assert_eq!(r.data, b"ab");
    // Two content chunks, three tokens: per-chunk counts stay unknown.
    assert_eq!(r.detail.chunk_tokens, vec![0, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_token_chunks_count_tokens_not_chunks() {
    // Speculative decoding: one chunk carries several tokens.
    let server = MockServer::start(|_| {
        Reply::Sse(vllm_stream(
            &[
                ("abc", Some(&[1, 2, 3])),
                ("de", Some(&[4, 5])),
                ("", Some(&[])),
            ],
            3,
        ))
    })
    .await;
    let sut = connect(&server.url, |_| {}).await;
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples([0]), &responder);
    rec.wait_done(1).await;
    let r = &rec.responses()[&1000];
    assert_eq!(r.n_tokens, 5);
    assert_eq!(r.detail.chunk_tokens, vec![3, 2]);
    assert_eq!(rec.first_tokens()[&1000].0, tokens_to_bytes(&[1, 2, 3]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_split_and_joined_across_network_pieces() {
    // Two events in one piece, one event split over three pieces with CRLF
    // line ends and a comment: the same result, and events that arrive
    // together share one arrival time.
    let server = MockServer::start(|_| {
        let steps = vllm_stream(
            &[("a", Some(&[1])), ("b", Some(&[2])), ("c", Some(&[3]))],
            3,
        );
        let Step::Bytes(first) = &steps[0] else {
            unreachable!()
        };
        let Step::Bytes(second) = &steps[1] else {
            unreachable!()
        };
        let Step::Bytes(third) = &steps[2] else {
            unreachable!()
        };
        let third = third.replace("\n\n", "\r\n\r\n");
        let (x, y) = third.split_at(9);
        let (y, z) = y.split_at(y.len() - 3);
        let mut out = vec![
            Step::Bytes(format!(": ping\n\n{first}{second}")),
            Step::Bytes(x.to_string()),
            Step::Bytes(y.to_string()),
            Step::Bytes(z.to_string()),
        ];
        out.extend(steps[3..].iter().cloned());
        Reply::Sse(out)
    })
    .await;
    let sut = connect(&server.url, |_| {}).await;
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples([0]), &responder);
    rec.wait_done(1).await;
    let r = &rec.responses()[&1000];
    assert!(r.detail.error.is_none(), "{:?}", r.detail.error);
    assert_eq!(r.data, tokens_to_bytes(&[1, 2, 3]));
    assert_eq!(r.detail.chunk_ns.len(), 3);
    assert_eq!(r.detail.chunk_ns[0], r.detail.chunk_ns[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_endpoint_sends_messages_and_reads_deltas() {
    let server = MockServer::start(|_| {
        let chunk = |delta: Value, finish: Value| {
            event(
                &json!({"id": "chatcmpl-1", "object": "chat.completion.chunk",
                         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
            )
        };
        Reply::Sse(vec![
            Step::Bytes(chunk(
                json!({"role": "assistant", "content": ""}),
                Value::Null,
            )),
            Step::Bytes(chunk(json!({"content": "Hi"}), Value::Null)),
            Step::Bytes(chunk(json!({"content": " there"}), json!("stop"))),
            Step::Bytes(event(
                &json!({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}}),
            )),
            Step::Bytes(DONE.into()),
        ])
    })
    .await;
    let sut = connect(&server.url, |c| {
        c.endpoint_kind = EndpointKind::ChatCompletions;
        c.request.temperature = Some(0.0);
    })
    .await;
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples([3]), &responder);
    rec.wait_done(1).await;
    let req = server.next_request().await;
    assert_eq!(req.path, "/v1/chat/completions");
    assert_eq!(
        req.body["messages"],
        json!([{"role": "user", "content": "prompt 3"}])
    );
    assert_eq!(req.body["temperature"], 0.0);
    let r = &rec.responses()[&1003];
    assert_eq!((r.data.as_slice(), r.n_tokens), (&b"Hi there"[..], 2));
    assert_eq!(rec.first_tokens()[&1003].0, b"Hi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_prompts_on_completions() {
    let server = MockServer::start(|_| Reply::Sse(vllm_stream(&[("x", Some(&[9]))], 2))).await;
    let sut = connect(&server.url, |c| {
        c.endpoint_kind = EndpointKind::CompletionsText;
    })
    .await;
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples([5]), &responder);
    rec.wait_done(1).await;
    assert_eq!(server.next_request().await.body["prompt"], "prompt 5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_endpoint_needs_text_in_every_sample() {
    let server = MockServer::start(|_| Reply::Status(500, String::new())).await;
    let mut data = (*dataset(3)).clone();
    data.samples[1].input_text = None;
    let mut config = SutConfig::new([server.url.as_str()]);
    config.endpoint_kind = EndpointKind::ChatCompletions;
    let e = OpenAiSut::connect(config, Arc::new(data))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("sample 1"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_sample_max_tokens_and_extra_body() {
    let server = MockServer::start(|_| Reply::Sse(vllm_stream(&[("x", Some(&[9]))], 2))).await;
    let mut data = (*dataset(2)).clone();
    data.samples[1].max_output_tokens = Some(7);
    let mut config = SutConfig::new([server.url.as_str()]);
    config.request.max_tokens = Some(100);
    config.request.ignore_eos = Some(true);
    config
        .request
        .extra_body
        .insert("repetition_penalty".into(), json!(1.0));
    let sut = OpenAiSut::connect(config, Arc::new(data)).await.unwrap();
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples([0]), &responder);
    rec.wait_done(1).await;
    sut.issue_query(&samples([1]), &responder);
    rec.wait_done(2).await;
    let a = server.next_request().await.body;
    let b = server.next_request().await.body;
    assert_eq!(
        (a["max_tokens"].clone(), b["max_tokens"].clone()),
        (json!(100), json!(7))
    );
    assert_eq!(a["ignore_eos"], true);
    assert_eq!(a["repetition_penalty"], 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_streams_each_answered_once() {
    let server = MockServer::start(|req| {
        // Echo the prompt's first id as the output so answers can be matched.
        let first = req.body["prompt"][0].as_u64().unwrap() as u32;
        let ids = [first + 100_000, first + 200_000];
        Reply::Sse(vllm_stream(
            &[("a", Some(&ids[..1])), ("b", Some(&ids[1..]))],
            3,
        ))
    })
    .await;
    let mut config = SutConfig::new([server.url.as_str()]);
    config.request.model = Some("mock-model".into());
    let sut = OpenAiSut::connect(config, dataset(200)).await.unwrap();
    let (rec, responder) = Recorder::new();
    // MultiStream-like queries of 8 samples each.
    for q in 0..25 {
        sut.issue_query(&samples(q * 8..q * 8 + 8), &responder);
    }
    rec.wait_done(200).await;
    let responses = rec.responses();
    assert_eq!(responses.len(), 200);
    for i in 0..200u32 {
        let r = &responses[&(1000 + u64::from(i))];
        assert_eq!(
            r.data,
            tokens_to_bytes(&[i * 10 + 1 + 100_000, i * 10 + 1 + 200_000])
        );
    }
    assert_eq!(rec.first_tokens().len(), 200);
    assert_eq!(sut.endpoint_stats()[0].requests, 200);
    assert_eq!(sut.endpoint_stats()[0].errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_streaming_single_prompt() {
    let server = MockServer::start(|_| {
        Reply::Status(
            200,
            json!({"id": "cmpl-1", "object": "text_completion", "choices": [
                {"index": 0, "text": "xyz", "token_ids": [7, 8, 9], "finish_reason": "length"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 3}})
            .to_string(),
        )
    })
    .await;
    let sut = connect(&server.url, |c| c.request.stream = false).await;
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples([0]), &responder);
    rec.wait_done(1).await;
    let body = server.next_request().await.body;
    assert_eq!(body["stream"], false);
    assert!(body.get("stream_options").is_none());
    let r = &rec.responses()[&1000];
    assert_eq!(
        (r.n_tokens, r.data.clone()),
        (3, tokens_to_bytes(&[7, 8, 9]))
    );
    assert!(rec.first_tokens().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_is_sent_and_never_shown() {
    const SECRET: &str = "sk-very-secret-4711";
    let server = MockServer::start(|req| {
        if req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            == Some("Bearer sk-very-secret-4711")
        {
            Reply::Sse(vllm_stream(&[("x", Some(&[1]))], 3))
        } else {
            Reply::Status(401, json!({"error": {"message": "bad key"}}).to_string())
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    std::fs::write(&path, format!("{SECRET}\n")).unwrap();
    let key = ApiKey::from_file(&path).unwrap();
    let mut config = SutConfig::new([server.url.as_str()]);
    config.api_key = Some(key.clone());
    let shown = format!("{config:?} {key:?}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(shown.contains("<redacted>"));
    let sut = OpenAiSut::connect(config, dataset(2)).await.unwrap();
    assert!(!format!("{sut:?}").contains(SECRET));
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples([0]), &responder);
    rec.wait_done(1).await;
    assert!(rec.responses()[&1000].detail.error.is_none());
    let req = server.next_request().await;
    assert_eq!(req.headers["authorization"], format!("Bearer {SECRET}"));

    // A failing request with the key: the error does not carry it.
    let failing = MockServer::start(|_| {
        Reply::Status(401, json!({"error": {"message": "bad key"}}).to_string())
    })
    .await;
    let mut config = SutConfig::new([failing.url.as_str()]);
    config.api_key = Some(ApiKey::new(SECRET, "test").unwrap());
    let sut = OpenAiSut::connect(config, dataset(2)).await.unwrap();
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples([0]), &responder);
    rec.wait_done(1).await;
    let error = rec.responses()[&1000].detail.error.clone().unwrap();
    assert_eq!(
        (error.kind, error.http_status),
        (ErrorKind::HttpStatus, Some(401))
    );
    assert!(!format!("{error} {error:?}").contains(SECRET));

    // Key errors name the source, never the value.
    let e = ApiKey::new("bad key\nwith newline", "env X").unwrap_err();
    assert!(!e.to_string().contains("bad key"), "{e}");
    let e = ApiKey::from_env("SUT_TEST_SURELY_UNSET_VARIABLE").unwrap_err();
    assert!(
        e.to_string().contains("SUT_TEST_SURELY_UNSET_VARIABLE"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_keep_alive_by_default_and_http2_on_request() {
    let server = MockServer::start(|_| Reply::Sse(vllm_stream(&[("x", Some(&[9]))], 2))).await;
    for (http, want) in [
        (HttpVersion::Auto, axum::http::Version::HTTP_11),
        (HttpVersion::Http2, axum::http::Version::HTTP_2),
    ] {
        let sut = connect(&server.url, |c| c.client.http = http).await;
        let (rec, responder) = Recorder::new();
        sut.issue_query(&samples(0..4), &responder);
        rec.wait_done(4).await;
        assert!(rec.responses().values().all(|r| r.detail.error.is_none()));
        for _ in 0..4 {
            assert_eq!(server.next_request().await.version, want);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_stream_still_works() {
    let server = MockServer::start(|_| {
        Reply::Status(
            200,
            json!({"choices": [{"index": 0, "text": "ab", "token_ids": [3, 4], "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
            .to_string(),
        )
    })
    .await;
    let sut = connect(&server.url, |_| {}).await;
    assert!(sut.streams());
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples([0]), &responder);
    rec.wait_done(1).await;
    let r = &rec.responses()[&1000];
    assert_eq!((r.n_tokens, r.data.clone()), (2, tokens_to_bytes(&[3, 4])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_is_reused_for_sequential_streams() {
    // The stream is read to its end after [DONE], and the connection goes
    // back to the pool before the sample's task ends, so every later
    // stream finds it there.
    const STREAMS: usize = 8;
    let server = MockServer::start(|_| Reply::Sse(vllm_stream(&[("x", Some(&[9]))], 2))).await;
    let sut = connect(&server.url, |_| {}).await;
    let (rec, responder) = Recorder::new();
    for i in 0..STREAMS {
        sut.issue_query(&samples([i]), &responder);
        rec.wait_done(i + 1).await;
        sut.drain().await;
    }
    let mut peers = std::collections::BTreeSet::new();
    for _ in 0..STREAMS {
        peers.insert(server.next_request().await.peer);
    }
    assert_eq!(
        peers.len(),
        1,
        "connections for {STREAMS} sequential streams"
    );
    assert_eq!(sut.endpoint_stats()[0].resent, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_header_carries_the_sample_sequence_number() {
    let server = MockServer::start(|_| Reply::Sse(vllm_stream(&[("a", Some(&[7]))], 1))).await;
    let plain = connect(&server.url, |_| {}).await;
    let (rec, responder) = Recorder::new();
    plain.issue_query(&samples([1]), &responder);
    rec.wait_done(1).await;
    let req = server.next_request().await;
    assert!(req.headers.get("x-request-id").is_none());
    plain.drain().await;

    let tagged = connect(&server.url, |c| {
        c.client.request_id_prefix = Some("run7-".into());
    })
    .await;
    let (rec, responder) = Recorder::new();
    tagged.issue_query(&samples([3, 5]), &responder);
    rec.wait_done(2).await;
    let mut ids: Vec<String> = Vec::new();
    for _ in 0..2 {
        let req = server.next_request().await;
        ids.push(req.headers["x-request-id"].to_str().unwrap().to_owned());
    }
    ids.sort();
    assert_eq!(ids, ["run7-1003", "run7-1005"]);
    tagged.drain().await;

    let mut config = SutConfig::new([server.url.as_str()]);
    config.client.request_id_prefix = Some("bad\nprefix".into());
    let err = OpenAiSut::connect(config, dataset(8)).await.unwrap_err();
    assert!(err.to_string().contains("request id prefix"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_headers_go_with_every_request_and_never_into_debug_or_errors() {
    let server = MockServer::start(|_| Reply::Sse(vllm_stream(&[("a", Some(&[7]))], 1))).await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "file-secret-42\n").unwrap();
    let headers = vec![
        sut::ExtraHeader::parse("x-api-key: inline-secret-17").unwrap(),
        sut::ExtraHeader::parse(&format!("X-Other : @file:{}", key_file.display())).unwrap(),
    ];
    let sut = connect(&server.url, |c| c.headers = headers.clone()).await;
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples([0]), &responder);
    rec.wait_done(1).await;
    let received = server.next_request().await;
    assert_eq!(received.headers["x-api-key"], "inline-secret-17");
    assert_eq!(received.headers["x-other"], "file-secret-42");

    let debug = format!("{headers:?} {sut:?}");
    assert!(!debug.contains("secret"), "{debug}");
    for bad in [
        "x-api-key inline-secret-17",
        "x-api-key: @env:SUT_TEST_SURELY_UNSET_VARIABLE",
        "bad name: secret-9",
        "x-api-key: secret-\u{7}",
    ] {
        let e = sut::ExtraHeader::parse(bad).unwrap_err().to_string();
        assert!(!e.contains("secret-"), "{e}");
    }
}
