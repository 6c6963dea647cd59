//! The remote tokenizer against both request shapes.

use sut::{RemoteTokenizer, TokenizerApi, TokenizerError};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vllm_shape_detected_and_used() {
    let server = MockServer::start(|_| Reply::Hang).await;
    let tok = RemoteTokenizer::detect(&format!("{}/v1", server.url), None)
        .await
        .unwrap();
    assert_eq!(tok.api(), TokenizerApi::Vllm);
    assert_eq!(tok.tokenize("hi", false).await.unwrap(), vec![104, 105]);
    assert_eq!(tok.tokenize("hi", true).await.unwrap(), vec![1, 104, 105]);
    assert_eq!(tok.detokenize(&[104, 105]).await.unwrap(), "hi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llama_cpp_shape_detected_and_used() {
    let server = MockServer::start_with(
        ServerOptions {
            owned_by: "llamacpp".into(),
            ..ServerOptions::default()
        },
        |_| Reply::Hang,
    )
    .await;
    let tok = RemoteTokenizer::detect(&server.url, None).await.unwrap();
    assert_eq!(tok.api(), TokenizerApi::LlamaCpp);
    assert_eq!(tok.tokenize("ok", true).await.unwrap(), vec![1, 111, 107]);
    assert_eq!(tok.detokenize(&[111, 107]).await.unwrap(), "ok");
    // The wrong shape gets llama.cpp's silent empty answer: why detection
    // matters.
    let wrong = RemoteTokenizer::new(&server.url, TokenizerApi::Vllm, None, None).unwrap();
    assert!(wrong.tokenize("ok", false).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_tokenizer_names_the_url() {
    let dead = dead_url().await;
    let tok = RemoteTokenizer::new(&dead, TokenizerApi::Vllm, None, None).unwrap();
    let e = tok.tokenize("x", false).await.unwrap_err();
    assert!(matches!(e, TokenizerError::Request { .. }), "{e:?}");
    assert!(e.to_string().contains(&format!("{dead}/tokenize")), "{e}");
}
