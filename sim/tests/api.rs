//! The simulator over real HTTP on 127.0.0.1:0.

// Test scaffolding outside #[test] fns: a failed setup must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use sim::{ErrorRate, SimConfig, SimHandle, Simulator};

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn start(config: SimConfig) -> SimHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    Simulator::start(config, listener).unwrap()
}

fn tiny() -> SimConfig {
    let mut c = SimConfig::from_profile("tiny-fast").unwrap();
    c.engine.step_overhead_us = 0.0;
    c.engine.decode_us_per_seq = 0.0;
    c.engine.prefill_us_per_token = 0.0;
    c
}

async fn post(sim: &SimHandle, path: &str, body: serde_json::Value) -> (u16, String) {
    let r = client()
        .post(format!("{}{path}", sim.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

/// Splits an SSE body into its `data:` payloads, checking the framing strictly.
fn events(body: &str) -> Vec<String> {
    assert!(
        body.ends_with("\n\n"),
        "body must end with a blank line: {body:?}"
    );
    body.split_terminator("\n\n")
        .map(|e| {
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("bad event {e:?}"))
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn streaming_completion_matches_vllm_chunk_format() {
    let sim = start(tiny()).await;
    let (status, body) = post(
        &sim,
        "/v1/completions",
        serde_json::json!({"model": "sim-tiny", "prompt": [1, 2, 3, 4, 5], "max_tokens": 4,
            "ignore_eos": true, "stream": true, "stream_options": {"include_usage": true}}),
    )
    .await;
    assert_eq!(status, 200);
    let ev = events(&body);
    assert_eq!(ev.len(), 4 + 2);
    assert_eq!(ev[5], "[DONE]");
    let first: serde_json::Value = serde_json::from_str(&ev[0]).unwrap();
    let id = first["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("cmpl-"));
    let created = first["created"].as_u64().unwrap();
    let mut text = String::new();
    for (i, e) in ev[..4].iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(e).unwrap();
        let t = v["choices"][0]["text"].as_str().unwrap().to_owned();
        let finish = if i == 3 { "\"length\"" } else { "null" };
        // Field order and `exclude_unset` nulls as vLLM's CompletionStreamResponse dumps them.
        let want = format!(
            "{{\"id\":\"{id}\",\"object\":\"text_completion\",\"created\":{created},\"model\":\"sim-tiny\",\"choices\":[{{\"index\":0,\"text\":{},\"logprobs\":null,\"finish_reason\":{finish},\"stop_reason\":null,\"prompt_token_ids\":null,\"token_ids\":null}}]}}",
            serde_json::to_string(&t).unwrap()
        );
        assert_eq!(e, &want);
        text.push_str(&t);
    }
    assert_eq!(
        ev[4],
        format!(
            "{{\"id\":\"{id}\",\"object\":\"text_completion\",\"created\":{created},\"model\":\"sim-tiny\",\"choices\":[],\"usage\":{{\"prompt_tokens\":5,\"total_tokens\":9,\"completion_tokens\":4}}}}"
        )
    );
    // The same request without streaming yields the same text (seeded by prompt).
    let (status, body) = post(
        &sim,
        "/v1/completions",
        serde_json::json!({"prompt": [1, 2, 3, 4, 5], "max_tokens": 4, "ignore_eos": true}),
    )
    .await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["choices"][0]["text"], text);
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 4);
    assert_eq!(v["object"], "text_completion");
    sim.shutdown().await;
}

#[tokio::test]
async fn sut_sse_parser_reads_the_stream() {
    let sim = start(tiny()).await;
    let (_, body) = post(
        &sim,
        "/v1/completions",
        serde_json::json!({"prompt": "hello there", "max_tokens": 7, "ignore_eos": true,
            "stream": true, "return_token_ids": true,
            "stream_options": {"include_usage": true, "continuous_usage_stats": true}}),
    )
    .await;
    let mut p = sut::sse::SseParser::new(1 << 20);
    // Feed in awkward pieces.
    for piece in body.as_bytes().chunks(7) {
        p.feed(piece);
    }
    let mut n = 0;
    let mut done = false;
    let mut ids = Vec::new();
    while let Some(ev) = p.next_event().unwrap() {
        if ev.is_done() {
            done = true;
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(ev.data).unwrap();
        if let Some(c) = v["choices"].get(0) {
            n += 1;
            ids.extend(
                c["token_ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap()),
            );
            assert_eq!(v["usage"]["completion_tokens"], n);
            if n == 1 {
                assert_eq!(c["prompt_token_ids"].as_array().unwrap().len(), 2);
            } else {
                assert!(c["prompt_token_ids"].is_null());
            }
        } else {
            assert_eq!(v["usage"]["completion_tokens"], 7);
        }
    }
    assert!(done);
    assert_eq!(n, 7);
    // /detokenize renders the same text the chunks carried.
    let (_, d) = post(&sim, "/detokenize", serde_json::json!({"tokens": ids})).await;
    let d: serde_json::Value = serde_json::from_str(&d).unwrap();
    assert_eq!(d["prompt"].as_str().unwrap().split_whitespace().count(), 7);
    sim.shutdown().await;
}

#[tokio::test]
async fn validation_errors_use_vllm_shape_and_status() {
    let mut c = tiny();
    c.max_model_len = 100;
    let sim = start(c).await;
    let (s, b) = post(
        &sim,
        "/v1/completions",
        serde_json::json!({"prompt": [1], "stream_options": {"include_usage": true}}),
    )
    .await;
    assert_eq!(s, 400);
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["error"]["type"], "BadRequestError");
    assert_eq!(v["error"]["code"], 400);
    assert_eq!(v["error"]["param"], "stream_options");
    assert_eq!(
        v["error"]["message"],
        "Stream options can only be defined when `stream=True`."
    );
    let (s, b) = post(
        &sim,
        "/v1/completions",
        serde_json::json!({"prompt": vec![1; 90], "max_tokens": 20}),
    )
    .await;
    assert_eq!(s, 400);
    assert!(b.contains("maximum context length is 100 tokens"), "{b}");
    let (s, _) = post(
        &sim,
        "/v1/completions",
        serde_json::json!({"prompt": vec![1; 100]}),
    )
    .await;
    assert_eq!(s, 400);
    let (s, b) = post(
        &sim,
        "/v1/completions",
        serde_json::json!({"model": "nope", "prompt": [1]}),
    )
    .await;
    assert_eq!(s, 404);
    assert!(b.contains("NotFoundError"));
    let (s, _) = post(&sim, "/v1/completions", serde_json::json!({"prompt": ""})).await;
    assert_eq!(s, 400);
    sim.shutdown().await;
}

#[tokio::test]
async fn batch_of_prompts_and_n_make_indexed_choices() {
    let sim = start(tiny()).await;
    let (s, b) = post(
        &sim,
        "/v1/completions",
        serde_json::json!({"prompt": [[1, 2], [3, 4, 5]], "n": 2, "max_tokens": 3, "ignore_eos": true, "seed": 9}),
    )
    .await;
    assert_eq!(s, 200);
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 4);
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i);
    }
    assert_ne!(
        choices[0]["text"], choices[1]["text"],
        "the n samples differ"
    );
    assert_eq!(v["usage"]["prompt_tokens"], 5);
    assert_eq!(v["usage"]["completion_tokens"], 12);
    sim.shutdown().await;
}

#[tokio::test]
async fn chat_streams_role_then_content() {
    let sim = start(tiny()).await;
    let (s, body) = post(
        &sim,
        "/v1/chat/completions",
        serde_json::json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2,
            "ignore_eos": true, "stream": true}),
    )
    .await;
    assert_eq!(s, 200);
    let ev = events(&body);
    assert_eq!(ev.len(), 1 + 2 + 1);
    let v: serde_json::Value = serde_json::from_str(&ev[0]).unwrap();
    assert_eq!(v["object"], "chat.completion.chunk");
    assert_eq!(v["choices"][0]["delta"]["role"], "assistant");
    let last: serde_json::Value = serde_json::from_str(&ev[2]).unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "length");
    sim.shutdown().await;
}

#[tokio::test]
async fn models_health_tokenize() {
    let sim = start(tiny()).await;
    let c = client();
    let r = c
        .get(format!("{}/health", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "");
    let m: serde_json::Value = c
        .get(format!("{}/v1/models", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(m["object"], "list");
    assert_eq!(m["data"][0]["id"], "sim-tiny");
    assert_eq!(m["data"][0]["owned_by"], "vllm");
    assert_eq!(m["data"][0]["max_model_len"], 4096);
    let (_, t) = post(&sim, "/tokenize", serde_json::json!({"prompt": "a b c."})).await;
    let t: serde_json::Value = serde_json::from_str(&t).unwrap();
    assert_eq!(t["count"], 4);
    sim.shutdown().await;
}

/// A strict exposition check: HELP then TYPE before each family's samples, sample names belong
/// to the family, values parse.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let mut family = String::new();
    let mut kind = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            family = rest.split(' ').next().unwrap().to_owned();
            let ty = lines.next().unwrap();
            let parts: Vec<&str> = ty.split(' ').collect();
            assert_eq!(&parts[..3], &["#", "TYPE", family.as_str()], "{ty}");
            kind = parts[3].to_owned();
            continue;
        }
        let (name_labels, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        let name = name_labels.split('{').next().unwrap();
        let ok = match kind.as_str() {
            "histogram" => ["_bucket", "_count", "_sum"]
                .iter()
                .any(|s| name == format!("{family}{s}")),
            _ => name == family,
        };
        assert!(ok, "{name} outside family {family}");
        assert!(
            name_labels.ends_with('}') && name_labels.contains("model_name=\""),
            "{line}"
        );
        out.insert(name_labels.to_owned(), value);
    }
    out
}

#[tokio::test]
async fn metrics_count_what_was_served() {
    let mut c = tiny();
    c.legacy_metric_names = true;
    let sim = start(c).await;
    for i in 0..3u32 {
        let (s, _) = post(
            &sim,
            "/v1/completions",
            serde_json::json!({"prompt": [i, 1, 2], "max_tokens": 5, "ignore_eos": true}),
        )
        .await;
        assert_eq!(s, 200);
    }
    let text = client()
        .get(format!("{}/metrics", sim.base_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let m = parse_metrics(&text);
    let l = "{engine=\"0\",model_name=\"sim-tiny\"}";
    assert_eq!(m[&format!("vllm:generation_tokens_total{l}")], 15.0);
    assert_eq!(m[&format!("vllm:prompt_tokens_total{l}")], 9.0);
    assert_eq!(
        m["vllm:request_success_total{engine=\"0\",finished_reason=\"length\",model_name=\"sim-tiny\"}"],
        3.0
    );
    assert_eq!(
        m[&format!("vllm:e2e_request_latency_seconds_count{l}")],
        3.0
    );
    assert_eq!(
        m[&format!("vllm:inter_token_latency_seconds_count{l}")],
        12.0
    );
    assert_eq!(m[&format!("vllm:num_requests_running{l}")], 0.0);
    assert!(m.contains_key(&format!("vllm:gpu_cache_usage_perc{l}")));
    assert!(m.contains_key(&format!("vllm:time_per_output_token_seconds_count{l}")));
    sim.shutdown().await;
}

#[tokio::test]
async fn ground_truth_times_are_ordered() {
    let mut c = tiny();
    c.ground_truth.in_memory = true;
    let sim = start(c).await;
    post(
        &sim,
        "/v1/completions",
        serde_json::json!({"prompt": [1, 2], "max_tokens": 6, "ignore_eos": true, "stream": true}),
    )
    .await;
    let gt = sim.ground_truth();
    assert_eq!(gt.len(), 1);
    let r = &gt[0];
    assert_eq!(
        (r.completion_tokens, r.prompt_tokens, r.status),
        (6, 2, 200)
    );
    assert_eq!(r.outcome, "ok");
    let (s, f) = (r.scheduled_ns.unwrap(), r.first_token_ns.unwrap());
    assert!(r.arrival_ns <= s && s <= f && f <= r.end_ns, "{r:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn client_request_id_names_the_request_as_in_vllm() {
    let mut c = tiny();
    c.ground_truth.in_memory = true;
    let sim = start(c).await;
    let body = serde_json::json!({"prompt": [1, 2], "max_tokens": 2, "ignore_eos": true});
    for header in ["run7-42", "bad id with spaces"] {
        let r = client()
            .post(format!("{}/v1/completions", sim.base_url()))
            .header("x-request-id", header)
            .json(&body)
            .send()
            .await
            .unwrap();
        let v: serde_json::Value = r.json().await.unwrap();
        let id = v["id"].as_str().unwrap();
        if header == "run7-42" {
            assert_eq!(id, "cmpl-run7-42");
        } else {
            assert!(id.starts_with("cmpl-") && !id.contains(' '), "{id}");
        }
    }
    let gt = sim.ground_truth();
    assert_eq!(gt.len(), 2);
    assert_eq!(gt[0].id, "cmpl-run7-42");
    assert_ne!(gt[1].id, gt[0].id);
    sim.shutdown().await;
}

async fn statuses(seed: u64) -> Vec<u16> {
    let mut c = tiny();
    c.seed = seed;
    c.faults.error_rates = vec![
        ErrorRate {
            status: 500,
            probability: 0.3,
        },
        ErrorRate {
            status: 429,
            probability: 0.2,
        },
    ];
    let sim = start(c).await;
    let mut v = Vec::new();
    for _ in 0..30 {
        v.push(
            post(
                &sim,
                "/v1/completions",
                serde_json::json!({"prompt": [1], "max_tokens": 1}),
            )
            .await
            .0,
        );
    }
    sim.shutdown().await;
    v
}

#[tokio::test]
async fn injected_errors_are_seeded() {
    let a = statuses(1).await;
    assert_eq!(a, statuses(1).await);
    assert_ne!(a, statuses(2).await);
    assert!(
        a.contains(&500) && a.contains(&429) && a.contains(&200),
        "{a:?}"
    );
}

#[tokio::test]
async fn disconnect_and_error_event_faults() {
    let mut c = tiny();
    c.faults.disconnect_probability = 1.0;
    let sim = start(c).await;
    let r = client()
        .post(format!("{}/v1/completions", sim.base_url()))
        .json(&serde_json::json!({"prompt": [1], "max_tokens": 50, "ignore_eos": true, "stream": true}))
        .send()
        .await;
    // The cut may come before or after the response head went out.
    if let Ok(r) = r {
        assert!(r.text().await.is_err(), "the body must end abruptly");
    }
    sim.shutdown().await;

    let mut c = tiny();
    c.faults.error_event_probability = 1.0;
    let sim = start(c).await;
    let (_, body) = post(
        &sim,
        "/v1/completions",
        serde_json::json!({"prompt": [1], "max_tokens": 50, "ignore_eos": true, "stream": true}),
    )
    .await;
    let ev = events(&body);
    assert_eq!(ev.last().unwrap(), "[DONE]");
    let err: serde_json::Value = serde_json::from_str(&ev[ev.len() - 2]).unwrap();
    assert_eq!(err["error"]["code"], 500);
    sim.shutdown().await;
}

#[tokio::test]
async fn refuse_after_kills_the_server() {
    let mut c = tiny();
    c.faults.refuse_after = Some(2);
    let sim = start(c).await;
    for _ in 0..2 {
        assert_eq!(
            post(
                &sim,
                "/v1/completions",
                serde_json::json!({"prompt": [1], "max_tokens": 1})
            )
            .await
            .0,
            200
        );
    }
    let r = client()
        .post(format!("{}/v1/completions", sim.base_url()))
        .json(&serde_json::json!({"prompt": [1], "max_tokens": 1}))
        .send()
        .await;
    match r {
        Err(_) => {}
        Ok(r) => assert!(r.text().await.is_err()),
    }
    assert!(sim.killed());
    // Nothing listens any more.
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(sim.local_addr())
            .await
            .is_err()
        {
            refused = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(refused);
    sim.shutdown().await;
}
