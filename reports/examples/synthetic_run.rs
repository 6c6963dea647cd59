//! `cargo run --release -p reports --example synthetic_run -- DIR [SAMPLES] [MEAN_OUTPUT_TOKENS]`:
//! writes a synthetic run directory (default 1,000,000 samples, 128 output
//! tokens on average, 1000 QPS, server and GPU metrics) for the report benchmark.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or("usage: synthetic_run DIR [SAMPLES] [MEAN_OUTPUT_TOKENS]")?,
    );
    let samples = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let mean = args.next().map(|s| s.parse()).transpose()?.unwrap_or(128);
    std::fs::create_dir(&dir)?;
    let run = reports::synthetic::SyntheticRun {
        samples,
        qps: 1000.0,
        mean_output_tokens: mean,
        fail_every: 1000,
        seed: 2027,
        metrics: true,
        gpu: true,
        finished: true,
    };
    reports::synthetic::write_run(&dir, &run)?;
    Ok(())
}
