//! Times LoadGen-exact query generation for a large Server run and reports
//! the memory the schedule holds per query.
//!
//! `cargo run --release -p loadgen --example schedule_bench -- [queries] [qps] [repeats]`
//! (defaults: 10000000 queries at 100000 qps, best of 3). Run through
//! `scripts/bench/loadgen_schedule.sh`.

// A benchmark's output is its purpose.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use loadgen::schedule::{SequenceGen, generate_queries, performance_set};
use loadgen::{EffectiveSettings, Phase, Scenario, TestSettings};

fn arg(i: usize, default: f64) -> f64 {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

/// Peak resident set size of this process, from /proc (Linux), in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let queries = arg(1, 10_000_000.0) as u64;
    let qps = arg(2, 100_000.0);
    let repeats = arg(3, 3.0).max(1.0) as usize;
    // min_query_count forces exactly `queries` queries; the window is a
    // little shorter so it does not add any. MLPerf's seeds.
    let settings = TestSettings {
        scenario: Scenario::Server,
        server_target_qps: qps,
        min_duration_ms: (queries as f64 / qps * 1000.0 * 0.99) as u64,
        min_query_count: queries,
        qsl_rng_seed: 2_085_463_073_848_966_840,
        sample_index_rng_seed: 2_747_215_439_041_700_203,
        schedule_rng_seed: 16_159_082_839_903_944_936,
        ..TestSettings::default()
    };
    let (effective, _) = EffectiveSettings::new(&settings, 13_368, 13_368)?;
    let set = performance_set(&effective, 13_368)?;
    let rss_before = peak_rss();

    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..repeats {
        drop(last.take());
        let start = Instant::now();
        let schedule = generate_queries(
            &effective,
            Phase::Performance,
            &set,
            &mut SequenceGen::new(),
        )?;
        best = best.min(start.elapsed().as_secs_f64());
        last = Some(schedule);
    }
    let schedule = last.ok_or("no run")?;
    let n = schedule.len() as f64;
    println!("queries generated      : {}", schedule.len());
    println!(
        "generated duration (s) : {:.3}",
        schedule.generated_query_duration() as f64 / 1e9
    );
    println!("best of {repeats} (s)         : {best:.3}");
    println!("ns per query           : {:.1}", best * 1e9 / n);
    println!("queries per second     : {:.3e}", n / best);
    println!("heap bytes             : {}", schedule.heap_bytes());
    println!(
        "heap bytes per query   : {:.2}",
        schedule.heap_bytes() as f64 / n
    );
    if let (Some(before), Some(after)) = (rss_before, peak_rss()) {
        println!(
            "peak RSS growth / query: {:.2} (transient peak while generating)",
            after.saturating_sub(before) as f64 / n
        );
    }
    Ok(())
}
