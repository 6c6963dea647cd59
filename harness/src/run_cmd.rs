//! `harness run`: settings from mlperf.conf + user.conf, a dataset as the
//! QSL, a backend (or the built-in simulator), loadgen's test driver, and a
//! fresh run directory that receives everything as it happens.
//!
//! Three parts: [`config`] validates the arguments into a [`RunConfig`]
//! (nothing started), the pipeline below runs the test, and [`observers`]
//! fans the driver's events out to everyone who watches the run.

pub mod config;
pub mod observers;
mod official;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use loadgen::{EffectiveSettings, RunOptions, StopSignal, TestOutcome};

pub use config::RunConfig;

use crate::cli::RunArgs;
use crate::hooks::{RunHooks, TestVerdict};
use crate::outcome::Outcome;
use crate::progress::Progress;
use crate::run_cmd::config::BackendOptions;
use crate::run_cmd::observers::Observers;
use crate::shared::redact_url;

/// The user.conf a run's settings came from, copied into its directory.
pub const USER_CONF_FILE: &str = "user.conf";
/// The mlperf.conf (LoadGen's embedded one), copied into the run directory.
pub const MLPERF_CONF_FILE: &str = "mlperf.conf";

/// `harness run`.
pub fn main(args: &RunArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let config = RunConfig::from_args(args, crate::shared::redacted_command())?;
    Ok(execute(&config, out)?.outcome())
}

/// What a finished run reports back.
#[derive(Debug)]
pub struct RunResult {
    /// The run directory.
    pub dir: PathBuf,
    /// Key figures of the reported performance phase.
    pub metrics: crate::screen::KeyMetrics,
    /// LoadGen's PerfConstraintsMet for that phase.
    pub perf_constraints_met: Option<bool>,
    /// Validity and reasons.
    pub verdict: TestVerdict,
    /// The run was stopped before it finished.
    pub interrupted: bool,
}

impl RunResult {
    /// How the run ended.
    pub fn outcome(&self) -> Outcome {
        if self.interrupted {
            Outcome::Interrupted
        } else {
            Outcome::success_if(self.verdict.valid, Outcome::Invalid)
        }
    }
}

/// The system under test, connected.
struct Backend {
    sut: Arc<sut::OpenAiSut>,
    /// The in-process simulator, when no backend was given.
    simulator: Option<sim::SimHandle>,
    /// The URLs the SUT talks to.
    endpoints: Vec<String>,
    /// How run.json names the backends (no credentials).
    described: Vec<String>,
    /// What each backend says about itself (`/version`, `/v1/models`),
    /// under the name run.json gives it.
    identities: Vec<sut::ServerIdentity>,
}

impl Backend {
    /// Starts the simulator if needed and connects the SUT.
    fn connect(
        runtime: &tokio::runtime::Runtime,
        options: &BackendOptions,
        dataset: &Arc<dataset::Dataset>,
        progress: &Progress,
    ) -> anyhow::Result<Backend> {
        let mut sut_config = options.sut.clone();
        let simulator = if options.backends.is_empty() {
            let replay = match &options.sim_replay {
                Some(replay) => {
                    let tokenizer = crate::replay::replay_tokenizer(
                        replay.tokenizer.as_deref(),
                        &options.sim_profile,
                    )?;
                    Some(Arc::new(crate::replay::replay_table(dataset, &*tokenizer)?))
                }
                None => None,
            };
            let sim = runtime.block_on(start_simulator(&options.sim_profile, replay))?;
            sut_config.endpoints = vec![format!("http://{}", sim.local_addr())];
            Some(sim)
        } else {
            None
        };
        let described = if simulator.is_some() {
            vec![format!("sim://{}", options.sim_profile)]
        } else {
            options.backends.iter().map(|b| redact_url(b)).collect()
        };
        let endpoints = sut_config.endpoints.clone();
        progress.step(&format!("checking {}", endpoints.join(", ")));
        let sut = Arc::new(
            runtime
                .block_on(sut::OpenAiSut::connect(sut_config, Arc::clone(dataset)))
                .context("connecting to the backend")?,
        );
        let identities = runtime
            .block_on(sut.server_identities())
            .into_iter()
            .zip(&described)
            .map(|(identity, name)| sut::ServerIdentity {
                url: name.clone(),
                ..identity
            })
            .collect();
        Ok(Backend {
            sut,
            simulator,
            endpoints,
            described,
            identities,
        })
    }
}

/// Runs the test; `out` receives the summary. A run directory that an
/// error ends early says so in its `run.json` (status `failed`, the reason).
pub fn execute(config: &RunConfig, out: &mut dyn Write) -> anyhow::Result<RunResult> {
    let result = execute_steps(config, out);
    let reason = match &result {
        Err(e) => format!("{e:#}"),
        // Normally run.json already says how the run ended.
        Ok(_) => "the run ended without recording its end".to_owned(),
    };
    crate::shutdown::end_current_run(rundir::RunStatus::Failed, &reason);
    result
}

fn execute_steps(config: &RunConfig, out: &mut dyn Write) -> anyhow::Result<RunResult> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("harness-io")
        .build()
        .context("starting the async runtime")?;

    let progress = Arc::new(Progress::new(config.output.progress));
    progress.step(&format!("loading dataset {}", config.dataset.describe()));
    let dataset = Arc::new(
        crate::data::load(&config.dataset)
            .with_context(|| format!("loading dataset {}", config.dataset.describe()))?,
    );
    // Before anything is started: an absurd schedule is refused here.
    let (effective, warnings) = EffectiveSettings::new(
        &config.settings,
        dataset.performance_sample_count as u64,
        dataset.samples.len() as u64,
    )
    .context("the settings are inconsistent")?;
    for warning in &warnings {
        tracing::warn!("{}", warning.message);
    }
    let backend = Backend::connect(&runtime, &config.backend, &dataset, &progress)?;
    let clock = RunClock {
        start: Instant::now(),
        start_unix_ns: unix_now_ns(),
    };
    let (dir, mut manifest) = create_run_dir(config, &backend, &clock)?;
    let measured = measure(
        &runtime,
        config,
        &Plan {
            dataset: Arc::clone(&dataset),
            effective,
            warnings,
        },
        &dir,
        &clock,
        &backend,
        &progress,
    )?;
    if let Some(sim) = backend.simulator {
        runtime.block_on(sim.shutdown());
    }
    let Measured {
        outcome,
        verdict,
        reported,
        exporter,
        skipped_ticks,
    } = measured;
    // The collector never waits for a scrape (the issuer is never delayed);
    // what that cost is said here, so a gap in metrics.jsonl is explained.
    if skipped_ticks > 0 {
        let warning = format!(
            "{skipped_ticks} metrics collection ticks skipped: a /metrics scrape was still \
             outstanding (slow or unanswered endpoint)"
        );
        tracing::warn!("{warning}");
        manifest.warnings.push(warning);
    }

    // A server that ignores max_tokens inflates every output-token figure;
    // only the client knows what it asked for, so it is said here.
    let over_max_tokens: u64 = backend
        .sut
        .endpoint_stats()
        .iter()
        .map(|e| e.over_max_tokens)
        .sum();
    if over_max_tokens > 0 {
        let noun = if over_max_tokens == 1 {
            "sample"
        } else {
            "samples"
        };
        let warning = format!(
            "{over_max_tokens} {noun} answered with more output tokens than their max_tokens \
             (the server ignores the limit; output-token figures include the excess)"
        );
        tracing::warn!("{warning}");
        manifest.warnings.push(warning);
    }
    manifest.status = if outcome.interrupted {
        rundir::RunStatus::Interrupted
    } else {
        rundir::RunStatus::Complete
    };
    manifest.finished_at = Some(chrono::Local::now().to_rfc3339());
    manifest.verdict = Some(rundir::RunVerdict {
        valid: verdict.valid,
        reasons: verdict.reasons.clone(),
    });
    let perf_constraints_met = reported.as_ref().map(|s| s.perf_constraints_met);
    manifest.loadgen_results = reported;
    manifest.write(&dir)?;

    // One path for every output: the run's files are read back once and
    // summarised; the terminal, the history and the reports all show that
    // summary's figures.
    let data = reports::load(&dir, 0).with_context(|| format!("reading {}", dir.display()))?;
    let summary = reports::summarize(&data);
    crate::screen::render(out, &dir, &manifest, &outcome, &summary)?;
    // The reports before the history: a signal while they are written marks
    // the run interrupted (see `shutdown`), and it is never recorded as
    // complete; once they are in place the run's files are complete.
    if config.output.report {
        crate::report_cmd::write(&data, &summary, out)?;
    }
    if let Some(db) = &config.output.history_db {
        // The run's files are complete; a history problem only warns.
        if let Err(e) = crate::history_cmd::record(db, &dir, &manifest, &summary.figures) {
            tracing::warn!("not recorded in the history: {e:#}");
        }
    }
    if let Some(target) = &config.output.metrics_output_dir {
        copy_metrics(&dir, target)?;
    }
    if let Some(exporter) = exporter {
        exporter.publish(
            &runtime,
            &manifest.run_id,
            &summary.figures,
            config.telemetry.prometheus_linger,
            &mut std::io::stderr(),
        )?;
    }
    Ok(RunResult {
        perf_constraints_met,
        metrics: crate::screen::KeyMetrics::from_figures(&summary.figures),
        dir,
        verdict,
        interrupted: outcome.interrupted,
    })
}

/// `--metrics-output-dir`: the run's metric files, copied where the MLPerf
/// reference integration expects them.
fn copy_metrics(dir: &Path, target: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(target)
        .with_context(|| format!("--metrics-output-dir {}", target.display()))?;
    for name in [rundir::METRICS_FILE, rundir::metrics::METRICS_CSV_FILE] {
        let from = dir.join(name);
        if from.is_file() {
            std::fs::copy(&from, target.join(name))
                .with_context(|| format!("copying {} to {}", from.display(), target.display()))?;
        }
    }
    Ok(())
}

/// The tokenizer the run's token ids came from, when not the dataset's own:
/// `harness accuracy` decodes with it.
fn run_tokenizer(config: &RunConfig, backend: &Backend) -> serde_json::Value {
    match (
        &config.dataset.tokenizer,
        &config.backend.sut.output_tokenizer,
    ) {
        (Some(choice), _) => choice.describe(),
        (None, Some(_)) => backend.described.first().map_or(
            serde_json::Value::Null,
            |url| serde_json::json!({ "server": url }),
        ),
        (None, None) => serde_json::Value::Null,
    }
}

/// A fresh run directory with its run.json (status running).
fn create_run_dir(
    config: &RunConfig,
    backend: &Backend,
    clock: &RunClock,
) -> anyhow::Result<(PathBuf, rundir::RunManifest)> {
    let scenario = config.settings.scenario;
    let label = config
        .output
        .label
        .clone()
        .unwrap_or_else(|| format!("{}-{}", config.model_key, scenario.as_str()));
    let dir = rundir::create_run_dir(&config.output.output_dir, &label)?;
    crate::shutdown::set_run_dir(&dir);
    let manifest = rundir::RunManifest {
        format_version: rundir::FORMAT_VERSION,
        harness_version: env!("CARGO_PKG_VERSION").to_owned(),
        loadgen: if config.official.is_some() {
            official::identity()
        } else {
            rundir::LoadgenIdentity::harness_rust()
        },
        run_id: run_id(&dir),
        started_at: chrono::Local::now().to_rfc3339(),
        start_unix_ns: clock.start_unix_ns,
        finished_at: None,
        status: rundir::RunStatus::Running,
        command: config.command.clone(),
        model: config.model_key.clone(),
        scenario: scenario.as_str().to_owned(),
        mode: config.settings.mode.to_string(),
        backends: backend.described.clone(),
        dataset: Some(config.dataset.describe()),
        labels: config
            .output
            .label
            .iter()
            .map(|l| ("label".to_owned(), l.clone()))
            .collect(),
        config: serde_json::json!({
            "user_conf": config.user_conf,
            "server_model": backend.sut.model(),
            "server": backend
                .identities
                .iter()
                .map(|s| serde_json::json!({
                    "url": s.url,
                    "version": s.version,
                    "owned_by": s.owned_by,
                }))
                .collect::<Vec<_>>(),
            "settings": config.settings,
            // What each request asks for: compare and gate state (and
            // refuse) differences here.
            "request": request_settings(&config.backend.sut),
            "tokenizer": run_tokenizer(config, backend),
        }),
        verdict: None,
        loadgen_results: None,
        warnings: Vec::new(),
    };
    manifest.write(&dir)?;
    // The conf files the settings came from, as LoadGen's reference runs
    // keep them: a submission copies these (the user.conf it really ran
    // with; the mlperf.conf is the one embedded in the loadgen crate).
    for (name, text) in [
        (USER_CONF_FILE, config.user_conf_text.as_str()),
        (MLPERF_CONF_FILE, loadgen::MLPERF_CONF),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok((dir, manifest))
}

/// A run's id: its directory's name.
fn run_id(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The request settings run.json records (no secrets: the API key is not
/// among them).
fn request_settings(sut: &sut::SutConfig) -> serde_json::Value {
    let r = &sut.request;
    serde_json::json!({
        "api": format!("{:?}", sut.endpoint_kind),
        "max_tokens": r.max_tokens,
        "min_tokens": r.min_tokens,
        "ignore_eos": r.ignore_eos,
        "temperature": r.temperature,
        "top_p": r.top_p,
        "top_k": r.top_k,
        "seed": r.seed,
        "extra_body": r.extra_body,
    })
}

/// The run's zero, on the monotonic clock and the wall clock.
struct RunClock {
    start: Instant,
    start_unix_ns: u64,
}

/// The dataset and what LoadGen's settings make of it.
struct Plan {
    dataset: Arc<dataset::Dataset>,
    effective: EffectiveSettings,
    /// LoadGen's `error_invalid_test_settings` warnings.
    warnings: Vec<loadgen::SettingsWarning>,
}

/// What the test driver measured.
struct Measured {
    outcome: TestOutcome,
    verdict: TestVerdict,
    /// LoadGen's results of the performance phase that stands for the test.
    reported: Option<loadgen::results::PerformanceSummary>,
    /// The Prometheus endpoint, still serving, for the final figures.
    exporter: Option<crate::run_telemetry::Exporter>,
    /// Metrics-collection ticks skipped while a scrape was outstanding.
    skipped_ticks: u64,
}

/// Runs LoadGen's test driver with the run's observers and telemetry, then
/// closes the logs and records; the SUT is shut down on return.
fn measure(
    runtime: &tokio::runtime::Runtime,
    config: &RunConfig,
    plan: &Plan,
    dir: &std::path::Path,
    clock: &RunClock,
    backend: &Backend,
    progress: &Arc<Progress>,
) -> anyhow::Result<Measured> {
    if let Some(options) = &config.official {
        return official::measure(
            runtime, config, options, plan, dir, clock, backend, progress,
        );
    }
    let records = Arc::new(rundir::RecordsWriter::create(
        dir,
        clock.start_unix_ns,
        config.settings.scenario,
    )?);
    let hooks = RunHooks::open(
        dir,
        &config.logs,
        &plan.effective,
        &plan.warnings,
        &*plan.dataset,
        backend.sut.model(),
    )?;
    let telemetry = start_telemetry(runtime, config, dir, clock, backend, progress)?;
    // The live view's Offline "on the wire" count: requests the client has
    // sent and not finished, beside the samples still queued behind them.
    let samples_per_request = match config.backend.sut.dispatch {
        sut::Dispatch::Batched(policy) => policy.prompts_per_request as u64,
        _ => 1,
    };
    let sut = Arc::clone(&backend.sut);
    progress.set_requests_on_wire(
        move || sut.endpoint_stats().iter().map(|e| e.in_flight).sum(),
        samples_per_request,
    );
    let mut observers = Observers::default();
    // The progress view ignores records; the records writer keeps them
    // (it takes each record last, without a copy).
    observers.push(records.clone());
    observers.push_ignoring_records(progress.clone());
    observers.push_telemetry(&telemetry);

    let stop = StopSignal::new();
    // Ctrl-C or SIGTERM (a job scheduler, `kill`): stop issuing, give
    // answers in flight a moment, then write everything as interrupted.
    let issuing = crate::shutdown::issuing(stop.clone());
    let options = RunOptions {
        observer: Some(Arc::new(observers)),
        stop,
        idle_timeout: Some(config.backend.idle_timeout),
        // After a stop, answers in flight get this long before they are
        // recorded as cancelled.
        stop_grace: Duration::from_secs(2),
        ..RunOptions::default()
    };

    let outcome = loadgen::start_test(
        &*backend.sut,
        &*plan.dataset,
        &plan.effective,
        &hooks,
        &options,
    );
    drop(issuing);
    progress.finish();
    runtime.block_on(backend.sut.shutdown());
    drop(options);
    let (exporter, skipped_ticks) = telemetry.finish(runtime);
    let outcome = outcome?;
    let verdict = hooks.finish(&outcome)?;
    if let Ok(records) = Arc::try_unwrap(records) {
        records.finish()?;
    }
    let reported = outcome
        .performance_ordinal()
        .and_then(|i| hooks.summaries().into_iter().nth(i));
    Ok(Measured {
        outcome,
        verdict,
        reported,
        exporter,
        skipped_ticks,
    })
}

/// Starts the run's telemetry, its series labelled with the run directory's
/// name, the scenario and the backends; the live line goes to `progress`.
/// Both LoadGens' runs start it here.
fn start_telemetry(
    runtime: &tokio::runtime::Runtime,
    config: &RunConfig,
    dir: &Path,
    clock: &RunClock,
    backend: &Backend,
    progress: &Arc<Progress>,
) -> anyhow::Result<crate::run_telemetry::Telemetry> {
    let run_id = run_id(dir);
    let identity = crate::run_telemetry::RunIdentity {
        run_id: &run_id,
        scenario: config.settings.scenario.as_str(),
        described: &backend.described,
    };
    crate::run_telemetry::start(
        runtime,
        &config.telemetry,
        dir,
        &backend.endpoints,
        identity,
        clock.start,
        Some(Arc::clone(progress)),
    )
}

/// The built-in simulator on a free local port, on the run's runtime.
async fn start_simulator(
    profile: &str,
    replay: Option<Arc<sim::Replay>>,
) -> anyhow::Result<sim::SimHandle> {
    let mut config = sim::SimConfig::from_profile(profile)
        .with_context(|| format!("--sim-profile {profile}"))?;
    config.replay = replay;
    let listener = sim::listen(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .context("binding the simulator to 127.0.0.1")?;
    Ok(sim::Simulator::start(config, listener)?)
}

fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
