//! `harness run`'s arguments validated into a [`RunConfig`]: the conf files
//! read, every number checked, nothing started. Each part of the pipeline
//! gets only the option struct it needs.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use loadgen::{ConfigLoader, Scenario, TestMode, TestSettings};

use crate::cli::{ApiArg, LoadgenArg, RunArgs, ScenarioArg, TestModeArg};
use crate::data::{DatasetSource, DatasetSpec, Vocabulary};
use crate::hooks::LogOptions;
use crate::outcome::UsageError;
use crate::run_telemetry::TelemetryOptions;
use crate::shared::{BUILTIN_USER_CONF, default_db};
use crate::tokenizers::TokenizerChoice;

/// A validated `harness run`.
#[derive(Debug)]
pub struct RunConfig {
    /// LoadGen settings after mlperf.conf, user.conf, audit.config and flags.
    pub settings: TestSettings,
    /// The model key used for conf lookups.
    pub model_key: String,
    /// Where the user.conf came from (a path, or "built-in example").
    pub user_conf: String,
    /// The user.conf text the settings came from, kept in the run directory
    /// (a submission copies the user.conf its runs really ran with).
    pub user_conf_text: String,
    /// Dataset to load.
    pub dataset: DatasetSpec,
    /// The system under test.
    pub backend: BackendOptions,
    /// LoadGen's log files.
    pub logs: LogOptions,
    /// Live metrics, collection and the Prometheus endpoint.
    pub telemetry: TelemetryOptions,
    /// Where results go.
    pub output: OutputOptions,
    /// The command line, redacted.
    pub command: Vec<String>,
    /// `--loadgen official`: what MLCommons' LoadGen builds its settings
    /// from (`None`: the Rust LoadGen runs the test).
    pub official: Option<OfficialOptions>,
}

/// `--loadgen official`: the conf files and flags as given, for LoadGen's
/// own `FromConfig` (the Rust LoadGen's derivation of the same files is in
/// [`RunConfig::settings`]).
#[derive(Debug, Clone)]
pub struct OfficialOptions {
    /// `--user-conf`; `None`: the built-in example.
    pub user_conf: Option<PathBuf>,
    /// `--target-qps`.
    pub target_qps: Option<f64>,
    /// `--min-duration-ms`.
    pub min_duration_ms: Option<u64>,
    /// `--min-query-count`.
    pub min_query_count: Option<u64>,
    /// `--max-duration-ms`.
    pub max_duration_ms: Option<u64>,
    /// `--audit-conf`, or `harness audit`'s audit.config text (name, text).
    pub audit: Option<AuditSource>,
}

/// Where an audit.config comes from.
#[derive(Debug, Clone)]
pub enum AuditSource {
    /// A file.
    File(PathBuf),
    /// Text `harness audit` generated.
    Text(String),
}

/// `--loadgen official` validated: a usage error (exit 2) in a build
/// without the library or for a mode it cannot run.
fn official_options(args: &RunArgs, mode: TestMode) -> anyhow::Result<Option<OfficialOptions>> {
    if args.loadgen != LoadgenArg::Official {
        return Ok(None);
    }
    if !loadgen_official::AVAILABLE {
        return Err(UsageError(format!(
            "--loadgen official: {}",
            loadgen_official::BUILD_HINT
        ))
        .into());
    }
    if let Err(e) = loadgen_official::mode_code(mode) {
        return Err(UsageError(format!("--loadgen official: {e}")).into());
    }
    Ok(Some(OfficialOptions {
        user_conf: args.user_conf.clone(),
        target_qps: args.target_qps,
        min_duration_ms: args.min_duration_ms,
        min_query_count: args.min_query_count,
        max_duration_ms: args.max_duration_ms,
        audit: match (&args.audit_conf, &args.audit_text) {
            (Some(path), _) => Some(AuditSource::File(path.clone())),
            (None, Some((_, text))) => Some(AuditSource::Text(text.clone())),
            (None, None) => None,
        },
    }))
}

/// The system under test.
#[derive(Debug, Clone)]
pub struct BackendOptions {
    /// Backend URLs; empty: start the simulator.
    pub backends: Vec<String>,
    /// Simulator profile for the in-process simulator.
    pub sim_profile: String,
    /// Replay mode for the in-process simulator (`--sim-replay`).
    pub sim_replay: Option<SimReplay>,
    /// How the SUT talks to the backend.
    pub sut: sut::SutConfig,
    /// Give up when nothing completes for this long.
    pub idle_timeout: Duration,
}

/// The in-process simulator answers each prompt with its reference output.
#[derive(Debug, Clone)]
pub struct SimReplay {
    /// tokenizer.json encoding the references (`--tokenizer`); `None`: the
    /// simulator profile's own vocabulary.
    pub tokenizer: Option<PathBuf>,
}

/// Where a run's results go.
#[derive(Debug, Clone)]
pub struct OutputOptions {
    /// Parent directory of run directories.
    pub output_dir: PathBuf,
    /// Optional label.
    pub label: Option<String>,
    /// History database to record the run in.
    pub history_db: Option<history::Database>,
    /// Generate reports at the end.
    pub report: bool,
    /// Progress display.
    pub progress: bool,
    /// Where the run's metric files are also copied.
    pub metrics_output_dir: Option<PathBuf>,
}

fn seconds(name: &str, value: f64) -> anyhow::Result<Option<Duration>> {
    if !value.is_finite() || value < 0.0 {
        bail!("--{name} must be a number of seconds >= 0, got {value}");
    }
    Ok((value > 0.0).then(|| Duration::from_secs_f64(value)))
}

fn scenario_name(scenario: ScenarioArg) -> &'static str {
    match scenario {
        ScenarioArg::Offline => "Offline",
        ScenarioArg::Server => "Server",
        ScenarioArg::SingleStream => "SingleStream",
        ScenarioArg::MultiStream => "MultiStream",
        ScenarioArg::Interactive => "Interactive",
    }
}

/// Where the user.conf came from and its text.
struct UserConf {
    source: String,
    text: String,
}

/// LoadGen's settings from the conf files and the flags that override
/// them: `(settings, model key, user.conf description, diagnostics)`.
fn test_settings(args: &RunArgs) -> anyhow::Result<(TestSettings, String, UserConf, Vec<String>)> {
    let scenario_name = scenario_name(args.scenario);
    let (model_key, scenario) = loadgen::config::config_target(&args.lg_model_name, scenario_name)
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
            // Read again for the run directory's copy: the loader keeps no
            // text, and it has just read this file within the same limit.
            let text =
                loadgen::input::read_limited_to_string(path, loadgen::input::CONF_FILE_LIMIT)
                    .with_context(|| format!("reading --user-conf {}", path.display()))?;
            UserConf {
                source: path.display().to_string(),
                text,
            }
        }
        None => {
            loader.user_conf_text(
                &mut settings,
                "user.conf (built-in example)",
                BUILTIN_USER_CONF,
                &model_key,
                scenario.as_str(),
            )?;
            UserConf {
                source: "built-in example user.conf".to_owned(),
                text: BUILTIN_USER_CONF.to_owned(),
            }
        }
    };
    settings.mode = match args.test_mode {
        _ if args.accuracy => TestMode::AccuracyOnly,
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
    // LoadGen applies audit.config in StartTest, over everything the
    // application set (its flags included), then test05.
    if let Some(path) = &args.audit_conf {
        loader
            .audit_config(&mut settings, path, "*", scenario.as_str())
            .with_context(|| format!("reading --audit-conf {}", path.display()))?;
    }
    if let Some((name, text)) = &args.audit_text {
        loader
            .audit_config_text(&mut settings, name, text, "*", scenario.as_str())
            .with_context(|| format!("reading {name}"))?;
    }
    // LoadGen ignores these silently; a user most likely did not mean them.
    for warning in loader.warnings() {
        tracing::warn!("{warning}");
    }
    if loadgen::config::apply_test05(&mut settings) {
        tracing::warn!("Test05 flag detected Overriding random seeds");
    }
    let diagnostics = loader.diagnostics().to_vec();
    Ok((settings, model_key, user_conf, diagnostics))
}

/// How the SUT talks to the backends.
fn sut_config(args: &RunArgs, scenario: Scenario) -> anyhow::Result<sut::SutConfig> {
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
    sut_config.client.request_id_prefix = args.request_id_prefix.clone();
    sut_config.headers = args
        .headers
        .iter()
        .map(|h| sut::ExtraHeader::parse(h))
        .collect::<Result<_, _>>()
        .context("--header")?;
    sut_config.api_key = match (&args.api_key_env, &args.api_key_file) {
        (Some(var), _) => Some(sut::ApiKey::from_env(var)?),
        (None, Some(file)) => Some(sut::ApiKey::from_file(file)?),
        (None, None) => None,
    };
    Ok(sut_config)
}

fn dataset_spec(args: &RunArgs, tokenizer: Option<TokenizerChoice>) -> anyhow::Result<DatasetSpec> {
    let source = match (&args.synthetic, &args.dataset_path) {
        (Some(spec), _) => DatasetSource::Synthetic(crate::data::parse_synthetic(spec)?),
        (None, Some(path)) => DatasetSource::File {
            path: path.clone(),
            format: args.dataset_format,
        },
        (None, None) => DatasetSource::Bundled,
    };
    // The built-in simulator's vocabulary is its profile's; a bad profile
    // name is reported when the simulator starts.
    let vocabulary = if args.backends.is_empty() {
        sim::SimConfig::from_profile(&args.sim_profile)
            .ok()
            .map(|config| Vocabulary {
                source: format!("--sim-profile {}", args.sim_profile),
                size: config.vocab_size,
            })
    } else {
        None
    };
    Ok(DatasetSpec {
        source,
        limit: args.total_sample_count,
        tokenizer,
        vocabulary,
    })
}

impl RunConfig {
    /// Validates the arguments and reads the conf files.
    pub fn from_args(args: &RunArgs, command: Vec<String>) -> anyhow::Result<RunConfig> {
        let (settings, model_key, user_conf, conf_diagnostics) = test_settings(args)?;
        let official = official_options(args, settings.mode)?;
        let mut sut = sut_config(args, settings.scenario)?;
        let tokenizer = TokenizerChoice::from_arg(
            args.tokenizer.as_deref(),
            &args.backends,
            sut.api_key.as_ref(),
        )?;
        // MLPerf's accuracy log holds token ids, so runs that write one
        // encode text answers (text APIs, servers that return no ids) with
        // the served model's tokenizer: --tokenizer's, else the server's.
        let text_api = matches!(args.api, ApiArg::CompletionsText | ApiArg::Chat);
        let logs_accuracy = matches!(
            settings.mode,
            TestMode::AccuracyOnly | TestMode::SubmissionRun
        );
        if logs_accuracy && (text_api || tokenizer.is_some()) {
            sut.output_tokenizer = Some(match &tokenizer {
                Some(TokenizerChoice::File(path)) => {
                    sut::OutputTokenizer::Local(TokenizerChoice::File(path.clone()).load()?)
                }
                Some(TokenizerChoice::Server { .. }) | None => sut::OutputTokenizer::Server,
            });
        }
        let idle_timeout = seconds("idle-timeout", args.idle_timeout)?
            .context("--idle-timeout must be above 0: a silent backend would hang the run")?;
        let metrics_interval =
            if args.enable_metrics_collection || args.metrics_output_dir.is_some() {
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
        Ok(RunConfig {
            settings,
            model_key,
            user_conf: user_conf.source,
            user_conf_text: user_conf.text,
            dataset: dataset_spec(args, tokenizer)?,
            backend: BackendOptions {
                backends: args.backends.clone(),
                sim_profile: args.sim_profile.clone(),
                sim_replay: args.sim_replay.then(|| SimReplay {
                    tokenizer: args.tokenizer.clone(),
                }),
                sut,
                idle_timeout,
            },
            logs: LogOptions {
                trace: args.enable_log_trace,
                conf_diagnostics,
                audit_config: args.audit_conf.is_some() || args.audit_text.is_some(),
            },
            telemetry: TelemetryOptions {
                metrics_interval,
                prometheus_listen: args.prometheus_listen,
                prometheus_linger: seconds("prometheus-linger", args.prometheus_linger)?
                    .unwrap_or_default(),
                gpus: args.gpus.clone().map(|g| g.0),
                metrics_format: match args.metrics_format {
                    crate::cli::MetricsFormatArg::Long => rundir::metrics_csv::CsvFormat::Long,
                    crate::cli::MetricsFormatArg::Wide => rundir::metrics_csv::CsvFormat::Wide,
                },
            },
            output: OutputOptions {
                output_dir: args.output_dir.clone(),
                label: args.label.clone(),
                history_db: if args.no_history {
                    None
                } else {
                    Some(
                        args.db
                            .clone()
                            .unwrap_or_else(|| default_db(&args.output_dir)),
                    )
                },
                report: !args.no_report,
                progress: !args.quiet,
                metrics_output_dir: args.metrics_output_dir.clone(),
            },
            command,
            official,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    /// `harness run ARGS` through clap and validation, in-process.
    fn config(args: &[&str]) -> anyhow::Result<RunConfig> {
        let cli = Cli::try_parse_from(["harness", "run"].iter().chain(args))?;
        let Command::Run(run) = cli.command else {
            unreachable!("parsed a run command");
        };
        RunConfig::from_args(&run, vec!["harness".into()])
    }

    fn error(args: &[&str]) -> String {
        format!("{:#}", config(args).unwrap_err())
    }

    #[test]
    fn loadgen_official_is_a_usage_error_without_the_library_or_for_a_mode_it_cannot_run() {
        assert!(config(&[]).unwrap().official.is_none());
        let err = config(&["--loadgen", "official"]);
        if loadgen_official::AVAILABLE {
            let c = err.unwrap();
            assert!(c.official.is_some_and(|o| o.user_conf.is_none()));
        } else {
            let err = err.unwrap_err();
            assert!(err.downcast_ref::<UsageError>().is_some());
            assert!(format!("{err}").contains("--features official"), "{err}");
        }
        let err = config(&["--loadgen", "official", "--test-mode", "SubmissionRun"]).unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_some());
    }

    #[test]
    fn defaults_are_a_server_run_against_the_simulator() {
        let c = config(&[]).unwrap();
        assert_eq!(c.settings.scenario, Scenario::Server);
        assert_eq!(c.settings.mode, TestMode::PerformanceOnly);
        assert_eq!(c.model_key, "llama3_1-8b");
        assert!(c.backend.backends.is_empty());
        assert_eq!(c.user_conf, "built-in example user.conf");
        assert_eq!(c.user_conf_text, BUILTIN_USER_CONF);
        assert_eq!(
            c.output.history_db.unwrap().to_string(),
            default_db(std::path::Path::new("runs")).to_string()
        );
        assert!(c.output.report && c.output.progress);
        assert_eq!(c.telemetry.metrics_interval, None);
        assert_eq!(c.backend.idle_timeout, Duration::from_secs(120));
        // The reference SUT's sampling.
        assert_eq!(c.backend.sut.request.temperature, Some(0.0));
        assert_eq!(c.backend.sut.request.max_tokens, Some(128));
        assert_eq!(c.backend.sut.client.request_id_prefix, None);
    }

    #[test]
    fn request_id_prefix_reaches_the_client() {
        let c = config(&["--request-id-prefix", "acc1-"]).unwrap();
        assert_eq!(
            c.backend.sut.client.request_id_prefix.as_deref(),
            Some("acc1-")
        );
    }

    #[test]
    fn an_audit_config_overrides_the_flags_as_in_loadgen() {
        let dir = tempfile::tempdir().unwrap();
        let audit = dir.path().join("audit.config");
        std::fs::write(&audit, "*.*.mode = 2\n*.*.min_query_count = 100\n").unwrap();
        let audit = audit.to_str().unwrap();
        let c = config(&[
            "--test-mode",
            "AccuracyOnly",
            "--min-query-count",
            "9",
            "--audit-conf",
            audit,
        ])
        .unwrap();
        assert_eq!(c.settings.mode, TestMode::PerformanceOnly);
        assert_eq!(c.settings.min_query_count, 100);
        assert!(c.logs.audit_config);
        assert!(!config(&[]).unwrap().logs.audit_config);
    }

    #[test]
    fn flags_override_the_conf_files() {
        let c = config(&[
            "--scenario",
            "Offline",
            "--target-qps",
            "7.5",
            "--min-duration-ms",
            "1234",
            "--min-query-count",
            "9",
            "--no-history",
            "--quiet",
            "--enable-metrics-collection",
            "--metrics-collection-interval",
            "0.5",
        ])
        .unwrap();
        assert_eq!(c.settings.scenario, Scenario::Offline);
        assert_eq!(c.settings.offline_expected_qps, 7.5);
        assert_eq!(c.settings.min_duration_ms, 1234);
        assert_eq!(c.settings.min_query_count, 9);
        assert!(c.output.history_db.is_none() && !c.output.progress);
        assert_eq!(
            c.telemetry.metrics_interval,
            Some(Duration::from_millis(500))
        );
        assert!(matches!(c.backend.sut.dispatch, sut::Dispatch::Batched(_)));
    }

    #[test]
    fn bad_values_are_refused_by_flag_name() {
        assert!(error(&["--target-qps", "0"]).contains("--target-qps must be above 0"));
        assert!(
            error(&["--scenario", "SingleStream", "--target-qps", "2"])
                .contains("--target-qps applies to Server and Offline")
        );
        assert!(error(&["--idle-timeout", "0"]).contains("--idle-timeout must be above 0"));
        assert!(
            error(&["--request-timeout=-1"])
                .contains("--request-timeout must be a number of seconds")
        );
        assert!(error(&["--extra-body", "[1]"]).contains("--extra-body must be a JSON object"));
        assert!(error(&["--extra-body", "{"]).contains("--extra-body is not valid JSON"));
        assert!(
            error(&["--scenario", "Offline", "--max-in-flight", "0"])
                .contains("--max-in-flight and --prompts-per-request")
        );
        assert!(
            error(&["--user-conf", "/nonexistent/user.conf"])
                .contains("reading --user-conf /nonexistent/user.conf")
        );
        assert!(
            error(&[
                "--enable-metrics-collection",
                "--metrics-collection-interval",
                "0"
            ])
            .contains("--metrics-collection-interval must be above 0")
        );
    }

    #[test]
    fn accuracy_runs_turn_text_answers_into_token_ids() {
        let tokenizer = |args: &[&str]| config(args).unwrap().backend.sut.output_tokenizer;
        let accuracy = ["--test-mode", "AccuracyOnly", "--backend", "http://h:1"];
        // Text APIs in runs that write an accuracy log: the server's
        // tokenizer unless --tokenizer names one.
        for api in ["completions-text", "chat"] {
            let args = [&accuracy[..], &["--api", api]].concat();
            assert_eq!(tokenizer(&args), Some(sut::OutputTokenizer::Server));
            assert_eq!(tokenizer(&["--api", api, "--backend", "http://h:1"]), None);
        }
        // The token-id API only when the served model's tokenizer is named
        // (its answers are then text from a server that returns no ids).
        assert_eq!(tokenizer(&accuracy), None);
        let args = [&accuracy[..], &["--tokenizer", "server"]].concat();
        assert_eq!(tokenizer(&args), Some(sut::OutputTokenizer::Server));
        let c = config(&args).unwrap();
        assert!(matches!(
            c.dataset.tokenizer,
            Some(TokenizerChoice::Server { ref url, .. }) if url == "http://h:1"
        ));
        assert!(
            error(&["--tokenizer", "server"]).contains("--tokenizer server uses the backend's")
        );
        assert!(
            error(&[&accuracy[..], &["--tokenizer", "/nonexistent/t.json"]].concat())
                .contains("loading --tokenizer /nonexistent/t.json")
        );
    }

    #[test]
    fn the_reference_suts_spellings_work() {
        let c = config(&[
            "--accuracy",
            "--api-server",
            "http://h:1",
            "--api-model-name",
            "m",
            "--output-log-dir",
            "logs",
            "--metrics-output-dir",
            "m-out",
        ])
        .unwrap();
        assert_eq!(c.settings.mode, TestMode::AccuracyOnly);
        assert_eq!(c.backend.backends, vec!["http://h:1".to_owned()]);
        assert_eq!(c.backend.sut.request.model.as_deref(), Some("m"));
        assert_eq!(c.output.output_dir, PathBuf::from("logs"));
        assert_eq!(c.output.metrics_output_dir, Some(PathBuf::from("m-out")));
        // --metrics-output-dir turns collection on.
        assert!(c.telemetry.metrics_interval.is_some());
        assert!(error(&["--accuracy", "--test-mode", "PerformanceOnly"]).contains("--accuracy"));
        let e = error(&["--header", "x-api-key secret-1"]);
        assert!(e.contains("--header") && !e.contains("secret-1"), "{e}");
    }

    #[test]
    fn an_explicit_database_wins_over_the_default() {
        let c = config(&["--db", "elsewhere.sqlite", "--output-dir", "out"]).unwrap();
        assert_eq!(c.output.history_db.unwrap().to_string(), "elsewhere.sqlite");
        let c = config(&["--output-dir", "out"]).unwrap();
        assert_eq!(
            c.output.history_db.unwrap().to_string(),
            default_db(std::path::Path::new("out")).to_string()
        );
    }
}
