//! Text answers turned into token ids (`SutConfig::output_tokenizer`), so
//! the accuracy log holds int32 token ids for servers that send text only.

use std::sync::Arc;

use dataset::tokenizer::{Tokenizer, TokenizerError};
use loadgen::{ErrorKind, OutputData, SystemUnderTest, tokens_to_bytes};
use serde_json::{Value, json};
use sut::{OpenAiSut, OutputTokenizer, SutConfig};

use crate::common::*;

/// llama.cpp's stream: text only, usage in the final chunk.
fn text_stream(pieces: &[&str], completion_tokens: u32) -> Reply {
    let mut steps = Vec::new();
    for (i, text) in pieces.iter().enumerate() {
        let last = i + 1 == pieces.len();
        let mut c = json!({
            "choices": [{"text": text, "index": 0,
                         "finish_reason": if last { json!("length") } else { Value::Null }}],
            "object": "text_completion", "id": "chatcmpl-abc"
        });
        if last {
            c["usage"] = json!({"completion_tokens": completion_tokens, "prompt_tokens": 5});
        }
        steps.push(Step::Bytes(event(&c)));
    }
    steps.push(Step::Bytes(DONE.into()));
    Reply::Sse(steps)
}

/// One id per character, offset so ids differ from the mock server's bytes.
struct CharTokenizer;

impl Tokenizer for CharTokenizer {
    fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, TokenizerError> {
        assert!(!add_special_tokens, "answers are encoded without BOS");
        Ok(text.chars().map(|c| 1000 + u32::from(c)).collect())
    }
    fn decode(&self, _: &[u32], _: bool) -> Result<String, TokenizerError> {
        unreachable!("answers are only encoded")
    }
}

struct FailingTokenizer;

impl Tokenizer for FailingTokenizer {
    fn encode(&self, _: &str, _: bool) -> Result<Vec<u32>, TokenizerError> {
        Err(TokenizerError::Codec("no vocabulary".into()))
    }
    fn decode(&self, _: &[u32], _: bool) -> Result<String, TokenizerError> {
        unreachable!()
    }
}

async fn run_one(
    server: &MockServer,
    tokenizer: Option<OutputTokenizer>,
) -> loadgen::QuerySampleResponse {
    let mut config = SutConfig::new([server.url.as_str()]);
    config.endpoint_kind = sut::EndpointKind::CompletionsText;
    config.output_tokenizer = tokenizer;
    let sut = OpenAiSut::connect(config, dataset(4)).await.unwrap();
    let (rec, responder) = Recorder::new();
    sut.issue_query(&samples([0]), &responder);
    rec.wait_done(1).await;
    sut.drain().await;
    assert_eq!(sut.outstanding_samples(), 0);
    rec.responses()[&1000].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_answers_become_the_local_tokenizers_ids() {
    let server = MockServer::start(|_| text_stream(&["ab", "c"], 2)).await;
    let r = run_one(
        &server,
        Some(OutputTokenizer::Local(Arc::new(CharTokenizer))),
    )
    .await;
    assert!(r.detail.error.is_none(), "{:?}", r.detail.error);
    assert_eq!(r.data, tokens_to_bytes(&[1097, 1098, 1099]));
    assert_eq!(r.detail.output_data, OutputData::TokenIds);
    // The token count stays the server's.
    assert_eq!(r.n_tokens, 2);

    // Without a tokenizer the text is kept.
    let r = run_one(&server, None).await;
    assert_eq!(
        (r.data.as_slice(), r.detail.output_data),
        (&b"abc"[..], OutputData::Text)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_answers_become_the_servers_ids_in_llama_cpp_shape() {
    let options = ServerOptions {
        owned_by: "llamacpp".into(),
        ..ServerOptions::default()
    };
    let server = MockServer::start_with(options, |_| text_stream(&["Hi", "!"], 2)).await;
    let r = run_one(&server, Some(OutputTokenizer::Server)).await;
    assert!(r.detail.error.is_none(), "{:?}", r.detail.error);
    // The mock tokenizes into bytes, without BOS (add_special: false).
    assert_eq!(r.data, tokens_to_bytes(&[72, 105, 33]));
    assert_eq!(r.detail.output_data, OutputData::TokenIds);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_id_answers_are_left_alone_and_encoding_failures_fail_the_sample() {
    let server = MockServer::start(|_| Reply::Sse(vllm_stream(&[("a", Some(&[7, 8]))], 3))).await;
    let r = run_one(
        &server,
        Some(OutputTokenizer::Local(Arc::new(FailingTokenizer))),
    )
    .await;
    assert!(r.detail.error.is_none(), "{:?}", r.detail.error);
    assert_eq!(r.data, tokens_to_bytes(&[7, 8]));

    let server = MockServer::start(|_| text_stream(&["x"], 1)).await;
    let r = run_one(
        &server,
        Some(OutputTokenizer::Local(Arc::new(FailingTokenizer))),
    )
    .await;
    let e = r.detail.error.unwrap();
    assert_eq!(e.kind, ErrorKind::Other);
    assert!(e.message.contains("no vocabulary"), "{}", e.message);
    assert!(r.data.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_tokenize_fails_at_connect() {
    let server = MockServer::start(|_| Reply::Status(404, "no".into())).await;
    let mut config = SutConfig::new([format!("{}/nothing-here", server.url)]);
    config.output_tokenizer = Some(OutputTokenizer::Server);
    config.client.health_check = false;
    config.request.model = Some("m".into());
    let e = OpenAiSut::connect(config, dataset(1))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/nothing-here/tokenize") && e.contains("local tokenizer"),
        "{e}"
    );
}
