//! Collector overhead: runs the real collector (every backend scraped, NVML,
//! host and process readings) for a while and reports this process's CPU
//! time over the collection, as a percentage of one core.
//!
//! `overhead_bench <seconds> <interval_ms> <metrics_url>...` (each URL is
//! scraped as its own backend). Run it through
//! `scripts/bench/telemetry_overhead.sh`, which serves a recorded vLLM
//! `/metrics` from another process so serving costs are not counted here.

// A benchmark binary: printing and exit codes are its job.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::exit)]

use std::time::{Duration, Instant};

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
use telemetry::{Collector, CollectorConfig, GpuSource, ScrapeTarget};

/// CPU time (user + system, all threads, exited ones included) of this
/// process, ms.
fn cpu_ms(sys: &mut System, pid: Pid) -> u64 {
    sys.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        false,
        ProcessRefreshKind::nothing().with_cpu(),
    );
    sys.process(pid).map_or(0, |p| p.accumulated_cpu_time())
}

fn fail(msg: &str) -> ! {
    eprintln!("overhead_bench: {msg}");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        fail("usage: overhead_bench <seconds> <interval_ms> <metrics_url>...");
    }
    let seconds: u64 = args[0].parse().unwrap_or_else(|_| fail("bad seconds"));
    let interval_ms: u64 = args[1].parse().unwrap_or_else(|_| fail("bad interval_ms"));
    let targets: Vec<ScrapeTarget> = args[2..]
        .iter()
        .enumerate()
        .map(|(i, url)| {
            ScrapeTarget::for_backend(url)
                .map(|t| t.with_instance(format!("backend{i}")))
                .unwrap_or_else(|e| fail(&e.to_string()))
        })
        .collect();
    let n_targets = targets.len();
    let dir = tempfile::tempdir().unwrap_or_else(|e| fail(&e.to_string()));
    // Two workers: what a small harness runtime would have.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&e.to_string()));
    let pid = sysinfo::get_current_pid().unwrap_or_else(|e| fail(&e.to_string()));
    let mut sys = System::new().unwrap_or_else(|e| fail(&e.to_string()));

    let report = rt.block_on(async {
        let config = CollectorConfig {
            interval: Some(Duration::from_millis(interval_ms)),
            targets,
            gpu: GpuSource::Nvml,
            system: true,
            ..CollectorConfig::default()
        };
        let run_start = Instant::now();
        let collector = Collector::start(config, dir.path(), run_start, None)
            .unwrap_or_else(|e| fail(&e.to_string()));
        // Skip start-up (thread spawn, NVML load, sysinfo's device lists):
        // a one-off cost, not the per-interval overhead measured here.
        tokio::time::sleep(Duration::from_millis(interval_ms.min(500))).await;
        let wall0 = Instant::now();
        let cpu0 = cpu_ms(&mut sys, pid);
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let cpu1 = cpu_ms(&mut sys, pid);
        let wall = wall0.elapsed().as_secs_f64();
        let report = collector
            .finish()
            .await
            .unwrap_or_else(|e| fail(&e.to_string()));
        (report, cpu1.saturating_sub(cpu0), wall)
    });
    let (report, cpu, wall) = report;
    let pct = cpu as f64 / 1000.0 / wall * 100.0;
    println!(
        "backends={n_targets} interval_ms={interval_ms} wall_s={wall:.1} cpu_ms={cpu} \
         cpu_pct_of_one_core={pct:.3} samples={} csv_rows={} warnings={} skipped_ticks={}",
        report.samples, report.csv_rows, report.warnings, report.skipped_ticks
    );
    for w in &report.warning_messages {
        eprintln!("warning: {w}");
    }
}
