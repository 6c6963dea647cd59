//! Measures what metrics collection costs: runs the collector (backend
//! /metrics scrape, NVML when present, host and process stats) at the given
//! interval for the given time and prints this process's CPU time as a share
//! of one core. Point it at a running server (`harness sim` in another
//! process, so its CPU is not counted here).
//!
//!     cargo run --release -p telemetry --example collector_overhead -- URL SECONDS [INTERVAL_S]
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::{Duration, Instant};

use telemetry::{Collector, CollectorConfig, ScrapeTarget};

/// utime + stime of this process, in clock ticks (100 per second on Linux).
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .ok_or("usage: collector_overhead URL SECONDS [INTERVAL_S]")?;
    let seconds: f64 = args.get(2).map_or(Ok(60.0), |s| s.parse())?;
    let interval: f64 = args.get(3).map_or(Ok(1.0), |s| s.parse())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let report = runtime.block_on(async {
        let config = CollectorConfig {
            interval: Some(Duration::from_secs_f64(interval)),
            targets: vec![ScrapeTarget::for_backend(url)?],
            ..CollectorConfig::default()
        };
        let collector = Collector::start(config, dir.path(), Instant::now(), None)?;
        let before = cpu_ticks().unwrap_or(0);
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        let ticks = cpu_ticks().unwrap_or(0) - before;
        let wall = start.elapsed().as_secs_f64();
        let report = collector.finish().await?;
        Ok::<_, Box<dyn std::error::Error>>((ticks, wall, report))
    })?;
    let (ticks, wall, report) = report;
    let cpu_s = ticks as f64 / 100.0;
    println!(
        "interval {interval} s, {wall:.1} s: {} samples, {} warnings, CPU {cpu_s:.2} s = {:.3}% of one core",
        report.samples,
        report.warnings,
        100.0 * cpu_s / wall
    );
    Ok(())
}
