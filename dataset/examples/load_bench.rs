//! Load-time benchmark: `cargo run --release -p dataset --example load_bench -- PATH [REPEATS]`.
//! Loads the dataset REPEATS times (default 5) with format detection and
//! prints the sample count and the min / median wall time.

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::time::Instant;

use dataset::{Dataset, DatasetOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: load_bench PATH [REPEATS]")?;
    let repeats: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(5);
    let mut times = Vec::with_capacity(repeats);
    let mut samples = 0;
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        let d = Dataset::load(&path, &DatasetOptions::new())?;
        times.push(t.elapsed().as_secs_f64());
        samples = d.samples.len();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{path}: {samples} samples, min {:.3} s, median {:.3} s over {} loads",
        times[0],
        times[times.len() / 2],
        times.len()
    );
    Ok(())
}
