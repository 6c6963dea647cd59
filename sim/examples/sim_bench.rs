//! Throughput of the simulator's SSE streaming: starts the simulator on a current-thread
//! runtime (one core when the process is pinned with `taskset`) and drives it from a separate
//! client runtime on other threads with raw HTTP/1.1 keep-alive connections (no SSE parsing,
//! only `[DONE]` detection and byte counting, so the client is never the bottleneck).
//!
//! The server thread (and the engine thread it spawns, which inherits the mask) is pinned to
//! CPU `SIM_CPU` (default 0), the client threads to every other CPU.
//!
//! usage: sim_bench [STREAMS] [SECONDS] [MAX_TOKENS] [STEP_US]   (scripts/bench/sim_throughput.sh)
//! It prints one line: tokens/s generated (sum of completion tokens over all streams).

// A benchmark program: it reports on stdout and fails loudly.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn pin(cpus: impl Iterator<Item = usize>) {
    let mut set = rustix::thread::CpuSet::new();
    for c in cpus {
        set.set(c);
    }
    rustix::thread::sched_setaffinity(None, &set).expect("sched_setaffinity");
}

fn main() {
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let sim_cpu: usize = std::env::var("SIM_CPU").map_or(0, |s| s.parse().unwrap());
    let args: Vec<String> = std::env::args().collect();
    let streams: usize = args.get(1).map_or(256, |s| s.parse().unwrap());
    let seconds: u64 = args.get(2).map_or(10, |s| s.parse().unwrap());
    let max_tokens: u32 = args.get(3).map_or(512, |s| s.parse().unwrap());
    let step_us: f64 = args.get(4).map_or(2000.0, |s| s.parse().unwrap());

    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        pin(std::iter::once(sim_cpu));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut cfg = sim::SimConfig::from_profile("throughput-bench").unwrap();
            cfg.engine.max_num_seqs = streams as u32;
            cfg.engine.step_overhead_us = step_us;
            // Up to 512 streams connect at once: the kernel's default queue
            // of 128 would drop SYNs (see sim::LISTEN_BACKLOG).
            let l = sim::listen(([127, 0, 0, 1], 0).into()).unwrap();
            let h = sim::Simulator::start(cfg, l).unwrap();
            addr_tx.send(h.local_addr()).unwrap();
            let _ = stop_rx.await;
            let t = h.step_timing();
            println!(
                "engine steps {} mean late {:.1} us p99 late {:.1} us max late {:.1} us",
                t.steps, t.mean_late_us, t.p99_late_us, t.max_late_us
            );
            h.shutdown().await;
        });
    });
    let addr = addr_rx.recv().unwrap();
    if ncpu > 1 {
        pin((0..ncpu).filter(|&c| c != sim_cpu));
    }
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tokens = Arc::new(AtomicU64::new(0));
    let body = format!(
        "{{\"prompt\":[1,2,3,4,5,6,7,8],\"max_tokens\":{max_tokens},\"ignore_eos\":true,\"stream\":true}}"
    );
    let req = format!(
        "POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    client.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..streams {
            let tokens = tokens.clone();
            let req = req.clone();
            tasks.push(tokio::spawn(async move {
                let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                s.set_nodelay(true).unwrap();
                let mut buf = vec![0u8; 64 * 1024];
                while Instant::now() < deadline {
                    s.write_all(req.as_bytes()).await.unwrap();
                    // Read until the chunked body's terminator after [DONE].
                    let mut tail: Vec<u8> = Vec::new();
                    loop {
                        let n = s.read(&mut buf).await.unwrap();
                        assert!(n > 0, "connection closed");
                        tail.extend_from_slice(&buf[..n]);
                        if tail.len() > 64 {
                            tail.drain(..tail.len() - 64);
                        }
                        if tail.ends_with(b"data: [DONE]\n\n\r\n0\r\n\r\n") {
                            break;
                        }
                    }
                    tokens.fetch_add(u64::from(max_tokens), Ordering::Relaxed);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let elapsed = start.elapsed().as_secs_f64();
    let n = tokens.load(Ordering::Relaxed);
    println!(
        "streams {streams} max_tokens {max_tokens}: {n} tokens in {elapsed:.2} s = {:.0} tokens/s",
        n as f64 / elapsed
    );
    let _ = stop_tx.send(());
    server.join().unwrap();
}
