//! Prints the simulator's /metrics text after a few requests (the tests/fixtures/metrics sample).
//! usage: cargo run -p sim --example metrics_sample > tests/fixtures/metrics/sim_vllm_v1.txt

// A tool program: it writes on stdout and fails loudly.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main]
async fn main() {
    let mut cfg = sim::SimConfig::from_profile("tiny-fast").unwrap();
    cfg.model = "meta-llama/Llama-3.1-8B-Instruct".into();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let h = sim::Simulator::start(cfg, l).unwrap();
    for i in 0..4u32 {
        let body = format!(
            "{{\"prompt\":[{i},1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17],\"max_tokens\":20,\"stream\":true}}"
        );
        let mut s = tokio::net::TcpStream::connect(h.local_addr())
            .await
            .unwrap();
        let req = format!(
            "POST /v1/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
    }
    print!("{}", h.metrics_text());
    h.shutdown().await;
}
