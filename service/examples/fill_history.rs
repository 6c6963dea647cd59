//! Fills a history database with synthetic runs for
//! `scripts/bench/service_rankings.sh`: direct inserts through the history
//! crate (no real runs), every figure of the registry per run, spread over
//! 20 systems, 2 models and 2 scenarios, one run a minute from 2026-01-01.
//! Seeded, so two fills hold the same values.
//!
//! `cargo run --release -p service --example fill_history -- DB RUNS`

#![allow(clippy::print_stdout)]

use std::time::Instant;

use history::{Database, History, RunEntry};

/// xorshift64*: enough spread for synthetic figures, no dependency.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(db), Some(runs)) = (args.next(), args.next()) else {
        return Err("usage: fill_history DB RUNS".into());
    };
    let runs: usize = runs.parse()?;
    let db: Database = db.parse()?;
    let mut history = History::open(&db)?;
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00+00:00")?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let began = Instant::now();
    for i in 0..runs {
        let system = i % 20;
        let model = ["llama3_1-8b", "llama2-70b"][(i / 20) % 2];
        let scenario = ["Server", "Offline"][(i / 40) % 2];
        // Each system a little faster than the last, with noise.
        let speed = 1.0 + system as f64 * 0.05;
        let metrics = reports::figures::FIGURES
            .iter()
            .map(|f| {
                let base = if f.name.ends_with("_ms") {
                    100.0 / speed
                } else {
                    50.0 * speed
                };
                (f.name.to_owned(), base * (0.9 + 0.2 * rng.next_f64()))
            })
            .collect();
        let started = start + chrono::Duration::minutes(i as i64);
        history.record(&RunEntry {
            run_id: format!("bench-{i:06}"),
            run_dir: format!("runs/bench-{i:06}"),
            started_at: started.to_rfc3339(),
            model: model.to_owned(),
            scenario: scenario.to_owned(),
            mode: "PerformanceOnly".to_owned(),
            backends: vec![format!("http://10.0.0.{system}:8000")],
            dataset: Some("cnn_dailymail".to_owned()),
            labels: vec![("system".to_owned(), format!("engine-{system:02}"))],
            status: "complete".to_owned(),
            valid: Some(true),
            reasons: Vec::new(),
            harness_version: env!("CARGO_PKG_VERSION").to_owned(),
            loadgen: String::new(),
            metrics,
        })?;
    }
    println!(
        "recorded {runs} runs in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    Ok(())
}
