//! Measurement accuracy of the harness against the simulator's ground truth.
//!
//! Runs the built-in simulator and a LoadGen Server run with the OpenAI SUT
//! in one process: the simulator on its own runtime and threads (pinned to
//! one CPU), the client (issuer thread and HTTP runtime) on another. The SUT
//! tags every request `X-Request-Id: acc-<seq>` and the simulator names the
//! request `cmpl-acc-<seq>`, so each `QueryRecord` is joined to the
//! simulator's `GroundTruthRecord` by sequence number, not by arrival order.
//!
//! Both sides read the same monotonic clock (`Instant`), so the phase clock's
//! zero and the simulator's start are aligned exactly. For each request it
//! prints percentiles of
//!
//! - harness TTFT − simulator TTFT, each side from its own request start
//!   (harness: `issued_ns`; simulator: `arrival_ns`), and the same for e2e
//!   latency;
//! - the same with LoadGen's definition (from `scheduled_ns`);
//! - on the aligned clock: send lag (simulator arrival − harness issue) and
//!   receive lag (harness first token − simulator's hand-off of its bytes).
//!
//! ```text
//! cargo run --release -p harness --example measure_accuracy -- \
//!     --qps 1000 --duration-s 25 --max-tokens 16
//! ```
//!
//! Options: `--qps`, `--duration-s`, `--max-tokens`, `--profile`
//! (simulator profile, default `tiny-fast`), `--client-workers` (HTTP runtime
//! threads, default 1), `--sim-cpu` / `--client-cpu` (default 1 / 0),
//! `--no-pin`, `--json PATH` (also write the figures as JSON).
#![allow(clippy::print_stdout, clippy::print_stderr)] // an example reports on stdout

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use loadgen::{
    EffectiveSettings, NoPhaseLog, PhaseLog, PhaseMeasurements, PhaseVerdict, QueryRecord,
    RunObserver, RunOptions, Scenario, TestHooks, TestMode, TestSettings,
};

const USAGE: &str = "usage: measure_accuracy [--qps 1000] [--duration-s 25] [--max-tokens 16] \
[--profile tiny-fast] [--client-workers 1] [--sim-cpu 1] [--client-cpu 0] [--no-pin] [--json PATH]";

struct Args {
    qps: f64,
    duration_s: f64,
    max_tokens: u32,
    profile: String,
    client_workers: usize,
    sim_cpu: usize,
    client_cpu: usize,
    pin: bool,
    json: Option<String>,
}

/// The options, or `None` when only the usage was asked for.
fn parse_args() -> anyhow::Result<Option<Args>> {
    let mut args = Args {
        qps: 1000.0,
        duration_s: 25.0,
        max_tokens: 16,
        profile: "tiny-fast".into(),
        client_workers: 1,
        sim_cpu: 1,
        client_cpu: 0,
        pin: true,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--no-pin" {
            args.pin = false;
            continue;
        }
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            return Ok(None);
        }
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| anyhow::anyhow!("{flag} {value}: {e}");
        match flag.as_str() {
            "--qps" => args.qps = value.parse().map_err(|e| bad(&e))?,
            "--duration-s" => args.duration_s = value.parse().map_err(|e| bad(&e))?,
            "--max-tokens" => args.max_tokens = value.parse().map_err(|e| bad(&e))?,
            "--profile" => args.profile = value,
            "--client-workers" => args.client_workers = value.parse().map_err(|e| bad(&e))?,
            "--sim-cpu" => args.sim_cpu = value.parse().map_err(|e| bad(&e))?,
            "--client-cpu" => args.client_cpu = value.parse().map_err(|e| bad(&e))?,
            "--json" => args.json = Some(value),
            _ => bail!("unknown option {flag}"),
        }
    }
    if !(args.qps > 0.0 && args.duration_s > 0.0 && args.client_workers > 0) {
        bail!("--qps, --duration-s and --client-workers must be above 0");
    }
    Ok(Some(args))
}

/// Pins the calling thread (and the threads it spawns later, which inherit
/// its mask) to one CPU.
fn pin_current_thread(cpu: usize) -> anyhow::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let mut set = rustix::thread::CpuSet::new();
        set.set(cpu);
        rustix::thread::sched_setaffinity(None, &set)
            .with_context(|| format!("pinning a thread to CPU {cpu}"))?;
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cpu;
    Ok(())
}

/// Collects every record of the run.
#[derive(Default)]
struct Collect(Mutex<Vec<QueryRecord>>);

impl RunObserver for Collect {
    fn sample_completed(&self, record: QueryRecord) {
        if let Ok(mut v) = self.0.lock() {
            v.push(record);
        }
    }
}

/// Keeps the phase clock; judges nothing.
#[derive(Default)]
struct Hooks(Mutex<Option<loadgen::PhaseClock>>);

impl TestHooks for Hooks {
    fn phase_log(&self) -> Arc<dyn PhaseLog> {
        Arc::new(NoPhaseLog)
    }
    fn performance_finished(
        &self,
        _settings: &EffectiveSettings,
        measurements: &PhaseMeasurements,
    ) -> PhaseVerdict {
        if let Ok(mut c) = self.0.lock() {
            *c = Some(measurements.clock);
        }
        PhaseVerdict {
            valid: true,
            perf_constraints_met: true,
            reasons: Vec::new(),
        }
    }
}

/// The simulator on its own thread and runtime; dropped at the end.
struct SimSide {
    handle: sim::SimHandle,
    runtime: tokio::runtime::Runtime,
}

fn start_sim(args: &Args) -> anyhow::Result<SimSide> {
    let mut config = sim::SimConfig::from_profile(&args.profile)?;
    config.ground_truth.in_memory = true;
    // The engine spins before each step deadline; on a core it shares with
    // the simulator's HTTP task, that spin would delay the sockets the
    // ground truth stands for. Sleeping costs only step precision.
    config.engine.spin_us = 0;
    let (pin, cpu) = (args.pin, args.sim_cpu);
    // Built on a pinned thread: the runtime's workers and the engine thread
    // it spawns inherit the mask.
    std::thread::Builder::new()
        .name("sim-start".into())
        .spawn(move || -> anyhow::Result<SimSide> {
            if pin {
                pin_current_thread(cpu)?;
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("sim-io")
                .enable_all()
                .build()?;
            let handle = runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                anyhow::Ok(sim::Simulator::start(config, listener)?)
            })?;
            Ok(SimSide { handle, runtime })
        })?
        .join()
        .map_err(|_| anyhow::anyhow!("the simulator's start thread panicked"))?
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Stat {
    name: &'static str,
    values: Vec<i64>,
}

impl Stat {
    fn new(name: &'static str) -> Stat {
        Stat {
            name,
            values: Vec::new(),
        }
    }
    fn summary(&mut self) -> serde_json::Value {
        self.values.sort_unstable();
        let mut abs: Vec<i64> = self.values.iter().map(|v| v.abs()).collect();
        abs.sort_unstable();
        let us = |ns: i64| ns as f64 / 1000.0;
        serde_json::json!({
            "name": self.name,
            "n": self.values.len(),
            "min_us": us(self.values.first().copied().unwrap_or(0)),
            "p50_us": us(pct(&self.values, 50.0)),
            "p99_us": us(pct(&self.values, 99.0)),
            "max_us": us(self.values.last().copied().unwrap_or(0)),
            "abs_p99_us": us(pct(&abs, 99.0)),
            "abs_max_us": us(abs.last().copied().unwrap_or(0)),
        })
    }
}

fn main() -> anyhow::Result<()> {
    let Some(args) = parse_args()? else {
        return Ok(());
    };
    let sim = start_sim(&args)?;
    if args.pin {
        pin_current_thread(args.client_cpu)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_workers)
        .thread_name("harness-io")
        .enable_all()
        .build()?;

    let dataset_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/cnn_dailymail_sample.json");
    let dataset = Arc::new(
        dataset::Dataset::load(&dataset_path, &dataset::DatasetOptions::new())
            .with_context(|| format!("loading {}", dataset_path.display()))?,
    );
    let mut sut_config = sut::SutConfig::new([sim.handle.base_url()]);
    sut_config.request.max_tokens = Some(args.max_tokens);
    sut_config.request.min_tokens = Some(1);
    sut_config.request.ignore_eos = Some(true);
    sut_config.request.temperature = Some(0.0);
    sut_config.client.request_id_prefix = Some("acc-".into());
    let sut = runtime.block_on(sut::OpenAiSut::connect(sut_config, Arc::clone(&dataset)))?;

    let duration_ms = (args.duration_s * 1000.0) as u64;
    let settings = TestSettings {
        scenario: Scenario::Server,
        mode: TestMode::PerformanceOnly,
        server_target_qps: args.qps,
        min_duration_ms: duration_ms,
        max_duration_ms: duration_ms * 2,
        min_query_count: 1,
        use_token_latencies: true,
        ..TestSettings::default()
    };
    let (effective, _) = EffectiveSettings::new(
        &settings,
        dataset.performance_sample_count as u64,
        dataset.samples.len() as u64,
    )?;
    let records = Arc::new(Collect::default());
    let hooks = Hooks::default();
    let options = RunOptions {
        observer: Some(records.clone()),
        idle_timeout: Some(Duration::from_secs(30)),
        ..RunOptions::default()
    };
    let usage_before = cpu_times();
    let wall = Instant::now();
    let outcome = loadgen::start_test(&sut, &*dataset, &effective, &hooks, &options)?;
    let wall_s = wall.elapsed().as_secs_f64();
    let usage_after = cpu_times();
    runtime.block_on(sut.shutdown());
    drop(options);

    let clock = hooks
        .0
        .lock()
        .ok()
        .and_then(|c| *c)
        .context("the performance phase did not finish")?;
    let records = std::mem::take(&mut *records.0.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    let truth = sim.handle.ground_truth();
    // Phase zero on the simulator's time scale: both are `Instant`s.
    let offset = clock
        .origin()
        .checked_duration_since(sim.handle.started_at())
        .context("the phase started before the simulator")?
        .as_nanos() as i64;
    let by_id: HashMap<&str, &sim::GroundTruthRecord> =
        truth.iter().map(|g| (g.id.as_str(), g)).collect();

    let mut stats = [
        Stat::new("ttft: harness(issued) - sim(arrival)"),
        Stat::new("e2e: harness(issued) - sim(arrival)"),
        Stat::new("ttft: loadgen(scheduled) - sim(arrival)"),
        Stat::new("e2e: loadgen(scheduled) - sim(arrival)"),
        Stat::new("send lag: sim arrival - harness issued"),
        Stat::new("recv lag: harness first token - sim first token"),
        Stat::new("recv lag: harness end - sim end"),
        Stat::new("issue delay: issued - scheduled"),
    ];
    let (mut matched, mut failed, mut unmatched) = (0u64, 0u64, 0u64);
    for r in &records {
        if !r.is_ok() {
            failed += 1;
            continue;
        }
        let Some(g) = by_id.get(format!("cmpl-acc-{}", r.seq).as_str()) else {
            unmatched += 1;
            continue;
        };
        let (Some(h_first), Some(s_first)) = (r.first_token_ns, g.first_token_ns) else {
            unmatched += 1;
            continue;
        };
        matched += 1;
        let (issued, sched, h_first, h_end) = (
            r.issued_ns as i64,
            r.scheduled_ns as i64,
            h_first as i64,
            r.end_ns as i64,
        );
        let (arr, s_first, s_end) = (g.arrival_ns as i64, s_first as i64, g.end_ns as i64);
        let (s_ttft, s_e2e) = (s_first - arr, s_end - arr);
        stats[0].values.push((h_first - issued) - s_ttft);
        stats[1].values.push((h_end - issued) - s_e2e);
        stats[2].values.push((h_first - sched) - s_ttft);
        stats[3].values.push((h_end - sched) - s_e2e);
        stats[4].values.push(arr - (issued + offset));
        stats[5].values.push((h_first + offset) - s_first);
        stats[6].values.push((h_end + offset) - s_end);
        stats[7].values.push(issued - sched);
    }

    let perf = outcome.performance().context("no performance phase")?;
    let span_ns = records.iter().map(|r| r.end_ns).max().unwrap_or(0);
    let client_cpu_s = usage_after.0 - usage_before.0;
    let summaries: Vec<serde_json::Value> = stats.iter_mut().map(Stat::summary).collect();
    println!(
        "measure_accuracy: profile {} target {} QPS for {} s, max_tokens {}, pinned {} (sim CPU {}, client CPU {}), client workers {}",
        args.profile,
        args.qps,
        args.duration_s,
        args.max_tokens,
        args.pin,
        args.sim_cpu,
        args.client_cpu,
        args.client_workers
    );
    println!(
        "samples {} (failed {failed}, unmatched {unmatched}, matched {matched}); ground-truth records {}; achieved {:.1} QPS issued; process CPU {:.2} s over {:.1} s wall",
        records.len(),
        truth.len(),
        perf.measurements.samples_issued as f64 / (span_ns.max(1) as f64 / 1e9),
        client_cpu_s,
        wall_s
    );
    println!();
    println!("| difference (µs) | n | min | p50 | p99 | max | p99 of abs |");
    println!("|---|---|---|---|---|---|---|");
    for s in &summaries {
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            s["name"].as_str().unwrap_or(""),
            s["n"],
            s["min_us"].as_f64().unwrap_or(0.0),
            s["p50_us"].as_f64().unwrap_or(0.0),
            s["p99_us"].as_f64().unwrap_or(0.0),
            s["max_us"].as_f64().unwrap_or(0.0),
            s["abs_p99_us"].as_f64().unwrap_or(0.0),
        );
    }
    let ttft_p99 = summaries[0]["abs_p99_us"].as_f64().unwrap_or(f64::MAX);
    let e2e_p99 = summaries[1]["abs_p99_us"].as_f64().unwrap_or(f64::MAX);
    let complete = failed == 0 && unmatched == 0 && matched > 0;
    let pass = complete && ttft_p99 < 1000.0 && e2e_p99 < 1000.0;
    println!();
    println!(
        "target (p99 |harness - sim| < 1 ms for TTFT and e2e, every sample matched): {} (TTFT {:.1} µs, e2e {:.1} µs)",
        if pass { "MET" } else { "NOT MET" },
        ttft_p99,
        e2e_p99
    );
    if let Some(path) = &args.json {
        let doc = serde_json::json!({
            "profile": args.profile, "qps": args.qps, "duration_s": args.duration_s,
            "max_tokens": args.max_tokens, "pinned": args.pin, "samples": records.len(),
            "matched": matched, "failed": failed, "unmatched": unmatched,
            "stats": summaries, "target_met": pass,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("writing {path}"))?;
    }
    let SimSide {
        handle,
        runtime: sim_runtime,
    } = sim;
    sim_runtime.block_on(handle.shutdown());
    Ok(())
}

/// (user + system CPU seconds of this process) from /proc, 0 elsewhere.
fn cpu_times() -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return (0.0, 0.0);
    };
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line, in clock ticks (100 Hz on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 100.0
    };
    (tick(11) + tick(12), 0.0)
}
