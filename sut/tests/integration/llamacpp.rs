//! Against a real llama.cpp server (SmolLM2-135M on CPU): the peer from
//! `scripts/peers/llamacpp.sh`. Skipped when `LLAMACPP_PYTHON` /
//! `LLAMACPP_MODEL` are unset.
//!
//! llama.cpp differs from vLLM in ways the SUT must absorb: no token ids in
//! OpenAI-style responses (the SUT keeps text), usage inside the final
//! completion chunk (a separate chunk for chat), `chatcmpl-` ids and a
//! `timings` object on text completions, `owned_by: "llamacpp"`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use dataset::{Dataset, Sample};
use loadgen::{ErrorKind, OutputData, SystemUnderTest};
use sut::{
    BatchPolicy, Dispatch, EndpointKind, OpenAiSut, RemoteTokenizer, SutConfig, TokenizerApi,
};

use crate::common::*;

/// The server process; it exits when its stdin closes (when this test
/// process ends, however it ends) or when dropped here.
struct LlamaServer {
    child: Child,
    url: String,
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Option<LlamaServer> {
    let (Ok(python), Ok(model)) = (
        std::env::var("LLAMACPP_PYTHON"),
        std::env::var("LLAMACPP_MODEL"),
    ) else {
        println!(
            "skipping real_llama_cpp_server: LLAMACPP_PYTHON and LLAMACPP_MODEL are unset \
             (eval \"$(bash scripts/peers/llamacpp.sh)\")"
        );
        return None;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/serve_llamacpp.py");
    let mut child = Command::new(python)
        .args([script, model.as_str(), "0"])
        .env("THREADS", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the llama.cpp server");
    // Readiness: the launcher prints its address once it accepts requests.
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected launcher output {line:?}"))
        .to_string();
    Some(LlamaServer { child, url })
}

/// Prompts as token ids (SmolLM2 vocabulary), with their text for the text
/// endpoints.
fn prompts(n: usize) -> Arc<Dataset> {
    let texts = [
        "The capital of France is",
        "Once upon a time",
        "1, 2, 3, 4,",
        "def fibonacci(n):",
    ];
    Arc::new(Dataset {
        name: "llamacpp-prompts".into(),
        samples: (0..n)
            .map(|i| Sample {
                input_tokens: vec![504 + i as u32, 3458, 282, 4649, 314],
                input_text: Some(texts[i % texts.len()].to_string()),
                reference: None,
                max_output_tokens: None,
            })
            .collect(),
        performance_sample_count: n,
    })
}

fn config(url: &str, edit: impl FnOnce(&mut SutConfig)) -> SutConfig {
    let mut c = SutConfig::new([url]);
    c.request.max_tokens = Some(8);
    c.request.ignore_eos = Some(true);
    c.request.temperature = Some(0.0);
    c.request.seed = Some(42);
    edit(&mut c);
    c
}

async fn run(sut: &OpenAiSut, indices: std::ops::Range<usize>) -> Arc<Recorder> {
    let (rec, responder) = Recorder::new();
    let n = indices.len();
    sut.issue_query(&samples(indices), &responder);
    rec.wait_done(n).await;
    sut.drain().await;
    rec
}

// One test, run step by step: concurrent requests would be batched together
// by the server, and greedy outputs are only comparable run alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_llama_cpp_server() {
    let Some(server) = start_server() else { return };
    let url = server.url.as_str();

    // Streaming, token-id prompts: the default configuration.
    let sut = OpenAiSut::connect(config(url, |_| {}), prompts(4))
        .await
        .unwrap();
    assert_eq!(sut.model(), "smollm2-135m");
    let rec = run(&sut, 0..1).await;
    let streamed = rec.responses().remove(&1000).unwrap();
    assert!(
        streamed.detail.error.is_none(),
        "{:?}",
        streamed.detail.error
    );
    assert_eq!(streamed.n_tokens, 8, "ignore_eos with max_tokens 8");
    assert_eq!(streamed.detail.input_tokens, Some(5));
    assert_eq!(streamed.detail.output_data, OutputData::Text);
    assert!(!streamed.data.is_empty());
    let chunks = &streamed.detail.chunk_ns;
    assert!(!chunks.is_empty() && chunks.len() <= 8);
    assert!(chunks.windows(2).all(|w| w[0] <= w[1]));
    if chunks.len() == 8 {
        assert_eq!(streamed.detail.chunk_tokens, vec![1; 8]);
    }
    let (first_data, first_at) = rec.first_tokens().remove(&1000).unwrap();
    assert!(streamed.data.starts_with(&first_data));
    assert!(first_at >= chunks[0]);

    // Differential: the same greedy request without streaming gives the
    // same text, assembled by the server instead of from chunks.
    let whole = OpenAiSut::connect(config(url, |c| c.request.stream = false), prompts(4))
        .await
        .unwrap();
    let rec = run(&whole, 0..1).await;
    let unstreamed = rec.responses().remove(&1000).unwrap();
    assert!(
        unstreamed.detail.error.is_none(),
        "{:?}",
        unstreamed.detail.error
    );
    assert_eq!(
        String::from_utf8_lossy(&unstreamed.data),
        String::from_utf8_lossy(&streamed.data)
    );
    assert_eq!(unstreamed.n_tokens, 8);

    // Chat: usage comes in a separate chunk, as with vLLM.
    let chat = OpenAiSut::connect(
        config(url, |c| c.endpoint_kind = EndpointKind::ChatCompletions),
        prompts(4),
    )
    .await
    .unwrap();
    let rec = run(&chat, 1..2).await;
    let r = rec.responses().remove(&1001).unwrap();
    assert!(r.detail.error.is_none(), "{:?}", r.detail.error);
    assert_eq!(r.n_tokens, 8);
    assert!(
        r.detail.input_tokens.unwrap() > 5,
        "the chat template adds tokens"
    );
    assert_eq!(rec.first_tokens().len(), 1);

    // Offline, one prompt per request, two in flight.
    let offline = OpenAiSut::connect(
        config(url, |c| {
            c.dispatch = Dispatch::Batched(BatchPolicy {
                max_in_flight: 2,
                prompts_per_request: 1,
            });
        }),
        prompts(4),
    )
    .await
    .unwrap();
    let rec = run(&offline, 0..4).await;
    let responses = rec.responses();
    assert_eq!(responses.len(), 4);
    assert!(
        responses
            .values()
            .all(|r| r.detail.error.is_none() && r.n_tokens == 8),
        "{:?}",
        responses
            .values()
            .map(|r| (&r.detail.error, r.n_tokens))
            .collect::<Vec<_>>()
    );

    // Several prompts per request: llama.cpp returns no token ids, so the
    // per-sample counts are unknown and the SUT says so.
    let multi = OpenAiSut::connect(
        config(url, |c| {
            c.request.stream = false;
            c.dispatch = Dispatch::Batched(BatchPolicy {
                max_in_flight: 1,
                prompts_per_request: 2,
            });
        }),
        prompts(2),
    )
    .await
    .unwrap();
    let rec = run(&multi, 0..2).await;
    for r in rec.responses().values() {
        let e = r.detail.error.as_ref().unwrap();
        assert_eq!(e.kind, ErrorKind::MalformedResponse);
        assert!(e.message.contains("return_token_ids"), "{}", e.message);
    }

    // The remote tokenizer: llama.cpp's shape, detected; a round trip.
    let tokenizer = RemoteTokenizer::detect(url, None).await.unwrap();
    assert_eq!(tokenizer.api(), TokenizerApi::LlamaCpp);
    let text = "The capital of France is Paris.";
    let ids = tokenizer.tokenize(text, false).await.unwrap();
    assert!(ids.len() > 3 && ids.len() < text.len());
    assert_eq!(tokenizer.detokenize(&ids).await.unwrap(), text);
}
