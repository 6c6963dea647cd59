//! `harness run`: settings from mlperf.conf + user.conf, a dataset as the
//! QSL, a backend (or the built-in simulator), loadgen's test driver, and a
//! fresh run directory that receives everything as it happens.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use loadgen::{
    ConfigLoader, EffectiveSettings, RunObserver, RunOptions, Scenario, StopSignal, TestMode,
    TestSettings,
};

use crate::cli::{ApiArg, RunArgs, ScenarioArg, TestModeArg};
use crate::hooks::{RunHooks, TestVerdict};
use crate::progress::Progress;

/// The example user.conf, used when no --user-conf is given.
pub const BUILTIN_USER_CONF: &str = include_str!("../../user.conf");

/// The bundled dataset, used when no --dataset-path is given.
pub const BUNDLED_DATASET: &str = "datasets/cnn_dailymail_sample.json";

/// A validated `harness run`.
#[derive(Debug)]
pub struct RunConfig {
    /// LoadGen settings after mlperf.conf, user.conf, audit.config and flags.
    pub settings: TestSettings,
    /// LoadGen's `error_invalid_config` messages from the conf files.
    pub conf_diagnostics: Vec<String>,
    /// The model key used for conf lookups.
    pub model_key: String,
    /// Where the user.conf came from (a path, or "built-in example").
    pub user_conf: String,
    /// Dataset to load.
    pub dataset: DatasetSpec,
    /// Backend URLs; empty: start the simulator.
    pub backends: Vec<String>,
    /// Simulator profile for the in-process simulator.
    pub sim_profile: String,
    /// How the SUT talks to the backend.
    pub sut: sut::SutConfig,
    /// Parent directory of run directories.
    pub output_dir: PathBuf,
    /// Optional label.
    pub label: Option<String>,
    /// Give up when nothing completes for this long.
    pub idle_timeout: Duration,
    /// Metrics collection interval, when enabled.
    pub metrics_interval: Option<Duration>,
    /// Prometheus exposition address.
    pub prometheus_listen: Option<std::net::SocketAddr>,
    /// Write the trace log.
    pub trace: bool,
    /// History database to record the run in.
    pub history_db: Option<history::Database>,
    /// Generate reports at the end.
    pub report: bool,
    /// Progress display.
    pub progress: bool,
    /// The command line, redacted.
    pub command: Vec<String>,
}

pub use crate::data::DatasetSpec;

fn seconds(name: &str, value: f64) -> anyhow::Result<Option<Duration>> {
    if !value.is_finite() || value < 0.0 {
        bail!("--{name} must be a number of seconds >= 0, got {value}");
    }
    Ok((value > 0.0).then(|| Duration::from_secs_f64(value)))
}

impl RunConfig {
    /// Validates the arguments and reads the conf files.
    pub fn from_args(args: &RunArgs, command: Vec<String>) -> anyhow::Result<RunConfig> {
        let scenario_name = match args.scenario {
            ScenarioArg::Offline => "Offline",
            ScenarioArg::Server => "Server",
            ScenarioArg::SingleStream => "SingleStream",
            ScenarioArg::MultiStream => "MultiStream",
            ScenarioArg::Interactive => "Interactive",
        };
        let (model_key, scenario) =
            loadgen::config::config_target(&args.lg_model_name, scenario_name)
                .with_context(|| format!("--scenario {scenario_name}"))?;
        let mut settings = TestSettings {
            scenario,
            ..TestSettings::default()
        };
        let mut loader = ConfigLoader::new();
        let user_conf = match &args.user_conf {
            Some(path) => {
                loader
                    .user_conf(&mut settings, path, &model_key, scenario.as_str())
                    .with_context(|| format!("reading --user-conf {}", path.display()))?;
                path.display().to_string()
            }
            None => {
                loader.user_conf_text(
                    &mut settings,
                    "user.conf (built-in example)",
                    BUILTIN_USER_CONF,
                    &model_key,
                    scenario.as_str(),
                )?;
                "built-in example user.conf".to_owned()
            }
        };
        if let Some(path) = &args.audit_conf {
            loader
                .audit_config(&mut settings, path, "*", scenario.as_str())
                .with_context(|| format!("reading --audit-conf {}", path.display()))?;
        }
        if loadgen::config::apply_test05(&mut settings) {
            tracing::warn!("Test05 flag detected Overriding random seeds");
        }
        settings.mode = match args.test_mode {
            TestModeArg::PerformanceOnly => TestMode::PerformanceOnly,
            TestModeArg::AccuracyOnly => TestMode::AccuracyOnly,
            TestModeArg::SubmissionRun => TestMode::SubmissionRun,
            TestModeArg::FindPeakPerformance => TestMode::FindPeakPerformance,
        };
        if let Some(qps) = args.target_qps {
            if !(qps.is_finite() && qps > 0.0) {
                bail!("--target-qps must be above 0, got {qps}");
            }
            match scenario {
                Scenario::Server => settings.server_target_qps = qps,
                Scenario::Offline => settings.offline_expected_qps = qps,
                _ => bail!("--target-qps applies to Server and Offline, not {scenario}"),
            }
        }
        if let Some(ms) = args.min_duration_ms {
            settings.min_duration_ms = ms;
        }
        if let Some(n) = args.min_query_count {
            settings.min_query_count = n;
        }
        if let Some(ms) = args.max_duration_ms {
            settings.max_duration_ms = ms;
        }

        let mut sut_config = sut::SutConfig::new(args.backends.iter().cloned());
        sut_config.endpoint_kind = match args.api {
            ApiArg::Completions => sut::EndpointKind::Completions,
            ApiArg::CompletionsText => sut::EndpointKind::CompletionsText,
            ApiArg::Chat => sut::EndpointKind::ChatCompletions,
        };
        let request = &mut sut_config.request;
        request.model = args.model.clone();
        request.max_tokens = Some(args.max_tokens);
        // The MLPerf llama3.1-8b reference SUT's sampling parameters.
        request.min_tokens = Some(1);
        request.temperature = Some(0.0);
        request.top_p = Some(1.0);
        request.seed = Some(42);
        if args.ignore_eos {
            request.ignore_eos = Some(true);
        }
        if let Some(extra) = &args.extra_body {
            let value: serde_json::Value =
                serde_json::from_str(extra).context("--extra-body is not valid JSON")?;
            let serde_json::Value::Object(map) = value else {
                bail!("--extra-body must be a JSON object");
            };
            request.extra_body = map;
        }
        // Offline sends every sample at once: a bounded work queue keeps the
        // server saturated without opening thousands of connections.
        if scenario == Scenario::Offline {
            if args.max_in_flight == 0 || args.prompts_per_request == 0 {
                bail!("--max-in-flight and --prompts-per-request must be at least 1");
            }
            sut_config.dispatch = sut::Dispatch::Batched(sut::BatchPolicy {
                max_in_flight: args.max_in_flight,
                prompts_per_request: args.prompts_per_request,
            });
        }
        sut_config.client.request_timeout = seconds("request-timeout", args.request_timeout)?;
        sut_config.client.stall_timeout = seconds("stall-timeout", args.stall_timeout)?;
        sut_config.client.wait_ready = seconds("wait-ready", args.wait_ready)?;
        if args.no_keep_alive {
            sut_config.client.pool_max_idle_per_endpoint = 0;
        }
        sut_config.api_key = match (&args.api_key_env, &args.api_key_file) {
            (Some(var), _) => Some(sut::ApiKey::from_env(var)?),
            (None, Some(file)) => Some(sut::ApiKey::from_file(file)?),
            (None, None) => None,
        };

        let idle_timeout = seconds("idle-timeout", args.idle_timeout)?
            .context("--idle-timeout must be above 0: a silent backend would hang the run")?;
        let metrics_interval = if args.enable_metrics_collection {
            Some(
                seconds(
                    "metrics-collection-interval",
                    args.metrics_collection_interval,
                )?
                .context("--metrics-collection-interval must be above 0")?,
            )
        } else {
            None
        };
        let source = match (&args.synthetic, &args.dataset_path) {
            (Some(spec), _) => {
                crate::data::DatasetSource::Synthetic(crate::data::parse_synthetic(spec)?)
            }
            (None, Some(path)) => crate::data::DatasetSource::File {
                path: path.clone(),
                format: args.dataset_format,
            },
            (None, None) => crate::data::DatasetSource::File {
                path: bundled_dataset()?,
                format: args.dataset_format,
            },
        };
        Ok(RunConfig {
            settings,
            conf_diagnostics: loader.diagnostics().to_vec(),
            model_key,
            user_conf,
            dataset: DatasetSpec {
                source,
                limit: args.total_sample_count,
                tokenizer: args.tokenizer.clone(),
            },
            backends: args.backends.clone(),
            sim_profile: args.sim_profile.clone(),
            sut: sut_config,
            output_dir: args.output_dir.clone(),
            label: args.label.clone(),
            idle_timeout,
            metrics_interval,
            prometheus_listen: args.prometheus_listen,
            trace: args.enable_log_trace,
            history_db: if args.no_history {
                None
            } else {
                Some(
                    args.db
                        .clone()
                        .unwrap_or_else(|| args.output_dir.join("history.sqlite").into()),
                )
            },
            report: !args.no_report,
            progress: !args.quiet,
            command,
        })
    }
}

/// The bundled dataset: next to the working directory when run from a
/// checkout, else next to the binary's workspace.
fn bundled_dataset() -> anyhow::Result<PathBuf> {
    let candidates = [
        PathBuf::from(BUNDLED_DATASET),
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(BUNDLED_DATASET),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .with_context(|| {
            format!("the bundled dataset {BUNDLED_DATASET} is missing: pass --dataset-path")
        })
}

/// What a finished run reports back to `main`.
#[derive(Debug)]
pub struct RunResult {
    /// The run directory.
    pub dir: PathBuf,
    /// Key figures of the reported performance phase.
    pub metrics: crate::summary::KeyMetrics,
    /// LoadGen's PerfConstraintsMet for that phase.
    pub perf_constraints_met: Option<bool>,
    /// Validity and reasons.
    pub verdict: TestVerdict,
    /// The run was stopped before it finished.
    pub interrupted: bool,
}

/// Fans one observer call out to several.
struct Observers(Vec<Arc<dyn RunObserver>>);

impl RunObserver for Observers {
    fn phase_started(&self, start: &loadgen::PhaseStart) {
        self.0.iter().for_each(|o| o.phase_started(start));
    }
    fn query_issued(&self, query: u64, samples: usize, issued_ns: u64) {
        self.0
            .iter()
            .for_each(|o| o.query_issued(query, samples, issued_ns));
    }
    fn first_token(&self, seq: u64, at_ns: u64) {
        self.0.iter().for_each(|o| o.first_token(seq, at_ns));
    }
    fn sample_completed(&self, record: loadgen::QueryRecord) {
        if let Some((last, rest)) = self.0.split_last() {
            for o in rest {
                o.sample_completed(record.clone());
            }
            last.sample_completed(record);
        }
    }
    fn phase_finished(&self, end: &loadgen::PhaseEnd) {
        self.0.iter().for_each(|o| o.phase_finished(end));
    }
}

/// Runs the test; `out` receives the summary.
pub fn execute(config: &RunConfig, out: &mut dyn std::io::Write) -> anyhow::Result<RunResult> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("harness-io")
        .build()
        .context("starting the async runtime")?;

    let progress = Arc::new(Progress::new(config.progress));
    progress.step(&format!("loading dataset {}", config.dataset.describe()));
    let dataset = Arc::new(
        crate::data::load(&config.dataset)
            .with_context(|| format!("loading dataset {}", config.dataset.describe()))?,
    );

    // The backend: the given URLs, or the simulator on a free local port.
    let mut sut_config = config.sut.clone();
    let simulator = if config.backends.is_empty() {
        let sim = runtime.block_on(start_simulator(&config.sim_profile))?;
        sut_config.endpoints = vec![format!("http://{}", sim.local_addr())];
        Some(sim)
    } else {
        None
    };
    let backends_for_manifest: Vec<String> = if simulator.is_some() {
        vec![format!("sim://{}", config.sim_profile)]
    } else {
        config.backends.iter().map(|b| redact_url(b)).collect()
    };
    let endpoints = sut_config.endpoints.clone();
    progress.step(&format!("checking {}", endpoints.join(", ")));
    let sut = Arc::new(
        runtime
            .block_on(sut::OpenAiSut::connect(sut_config, Arc::clone(&dataset)))
            .context("connecting to the backend")?,
    );

    let scenario = config.settings.scenario;
    let label = config
        .label
        .clone()
        .unwrap_or_else(|| format!("{}-{}", config.model_key, scenario.as_str()));
    let dir = rundir::create_run_dir(&config.output_dir, &label)?;
    let run_start = std::time::Instant::now();
    let start_unix_ns = unix_now_ns();
    let mut manifest = rundir::RunManifest {
        format_version: rundir::FORMAT_VERSION,
        harness_version: env!("CARGO_PKG_VERSION").to_owned(),
        run_id: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        started_at: chrono::Local::now().to_rfc3339(),
        start_unix_ns,
        finished_at: None,
        status: rundir::RunStatus::Running,
        command: config.command.clone(),
        model: config.model_key.clone(),
        scenario: scenario.as_str().to_owned(),
        mode: config.settings.mode.to_string(),
        backends: backends_for_manifest,
        dataset: Some(config.dataset.describe()),
        labels: config
            .label
            .iter()
            .map(|l| ("label".to_owned(), l.clone()))
            .collect(),
        config: serde_json::json!({
            "user_conf": config.user_conf,
            "server_model": sut.model(),
            "settings": config.settings,
        }),
        verdict: None,
    };
    manifest.write(&dir)?;

    let (effective, warnings) = EffectiveSettings::new(
        &config.settings,
        dataset.performance_sample_count as u64,
        dataset.samples.len() as u64,
    )
    .context("the settings are inconsistent")?;

    let records = Arc::new(rundir::RecordsWriter::create(&dir, start_unix_ns)?);
    let hooks = RunHooks::open(&dir, config, &effective, &warnings, &*dataset, sut.model())?;
    let mut observers: Vec<Arc<dyn RunObserver>> = vec![records.clone(), progress.clone()];

    let telemetry = crate::metrics::start(
        &runtime,
        config,
        &dir,
        &endpoints,
        run_start,
        Some(Arc::clone(&progress)),
    )?;
    observers.push(telemetry.observer());

    let stop = StopSignal::new();
    {
        let stop = stop.clone();
        // Ctrl-C or SIGTERM (a job scheduler, `kill`): stop issuing, give
        // answers in flight a moment, then write everything as interrupted.
        runtime.spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let terminated = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                r = tokio::signal::ctrl_c() => if r.is_ok() { stop.request() },
                () = terminated => stop.request(),
            }
        });
    }
    let options = RunOptions {
        observer: Some(Arc::new(Observers(observers))),
        stop,
        idle_timeout: Some(config.idle_timeout),
        // After a stop, answers in flight get this long before they are
        // recorded as cancelled.
        stop_grace: Duration::from_secs(2),
        ..RunOptions::default()
    };

    let outcome = loadgen::start_test(&*sut, &*dataset, &effective, &hooks, &options);
    progress.finish();
    runtime.block_on(sut.shutdown());
    drop(options);
    telemetry.finish(&runtime);
    let outcome = outcome?;
    let verdict = hooks.finish(&outcome)?;
    if let Some(sim) = simulator {
        runtime.block_on(sim.shutdown());
    }
    if let Ok(records) = Arc::try_unwrap(records) {
        records.finish()?;
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
    manifest.write(&dir)?;

    // The LoadGen results of the phase that stands for the test.
    let reported = outcome.performance().map(|p| {
        outcome.phases[..]
            .iter()
            .take_while(|q| !std::ptr::eq(*q, p))
            .filter(|q| q.phase == loadgen::Phase::Performance)
            .count()
    });
    let summaries = hooks.summaries();
    let loadgen_summary = reported.and_then(|i| summaries.get(i));
    crate::summary::render(out, &dir, &manifest, &outcome, &verdict, loadgen_summary)?;
    let metrics = crate::summary::KeyMetrics::of(&outcome);
    if let Some(db) = &config.history_db {
        // The run's files are complete; a history problem only warns.
        if let Err(e) = crate::history_cmd::record(db, &dir, &manifest, &metrics) {
            tracing::warn!("not recorded in the history: {e:#}");
        }
    }
    if config.report {
        crate::report_cmd::generate(&dir, out)?;
    }
    Ok(RunResult {
        perf_constraints_met: loadgen_summary.map(|s| s.perf_constraints_met),
        metrics,
        dir,
        verdict,
        interrupted: outcome.interrupted,
    })
}

/// The built-in simulator on a free local port, on the run's runtime.
async fn start_simulator(profile: &str) -> anyhow::Result<sim::SimHandle> {
    let config = sim::SimConfig::from_profile(profile)
        .with_context(|| format!("--sim-profile {profile}"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the simulator to 127.0.0.1")?;
    Ok(sim::Simulator::start(config, listener)?)
}

fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A URL without user info or query string (credentials never reach
/// run.json).
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let rest = rest.split_once('?').map_or(rest, |(base, _)| base);
    if scheme.is_empty() {
        rest.to_owned()
    } else {
        format!("{scheme}://{rest}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_survive_redaction() {
        assert_eq!(
            redact_url("https://user:secret@host:8000/v1?key=abc"),
            "https://host:8000/v1"
        );
        assert_eq!(redact_url("http://127.0.0.1:8000"), "http://127.0.0.1:8000");
    }
}
