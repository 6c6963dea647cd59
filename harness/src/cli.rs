//! The command line. Clap types live here and nowhere else; each subcommand
//! validates its arguments into a plain config struct before doing anything.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

/// MLPerf-style load testing for LLM serving.
#[derive(Debug, Parser)]
#[command(name = "harness", version, about, long_about = None)]
pub struct Cli {
    /// Log filter (tracing's RUST_LOG syntax), e.g. `info` or `sut=debug`.
    #[arg(long, global = true, default_value = "warn", env = "HARNESS_LOG")]
    pub log: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an MLPerf test (performance, accuracy, submission or peak search)
    /// against a backend, or against the built-in simulator when no
    /// --backend is given.
    Run(Box<RunArgs>),
    /// Regenerate the reports of a run directory from its files.
    Report(ReportArgs),
    /// Score a run's mlperf_log_accuracy.json (ROUGE, gen_len) against the
    /// dataset's references.
    Accuracy(AccuracyArgs),
    /// Run a grid of runs over settings (target QPS, max tokens, backends,
    /// any user.conf key...), each a normal run directory, plus sweep.json
    /// and sweep.csv; an interrupted sweep resumes where it stopped.
    Sweep(Box<SweepArgs>),
    /// Compare runs (or sweeps' points) side by side: percentiles with
    /// bootstrap intervals of the difference, Mann-Whitney tests, rankings.
    Compare(CompareArgs),
    /// Fail (exit 1) when a candidate run regresses against a baseline
    /// beyond the thresholds in a rules file, significantly.
    Gate(GateArgs),
    /// Find the highest Server QPS that meets the latency constraints
    /// (LoadGen's FindPeakPerformance search, or --fast), each step a run.
    FindPeak(Box<FindPeakArgs>),
    /// List recorded runs, or follow one metric over time (table and chart).
    History(HistoryArgs),
    /// Serve the built-in vLLM simulator.
    Sim(Box<crate::sim_cmd::SimArgs>),
    /// Run an MLPerf compliance audit (TEST06): the audited test under the
    /// test's audit.config, then MLCommons' verification of its logs,
    /// writing TEST06/verify_accuracy.txt and TEST06/accuracy/.
    Audit(Box<AuditArgs>),
    /// Build the MLPerf v6.0 submission tree (results/, systems/,
    /// measurements) from run directories; refuses runs that cannot belong
    /// to a valid submission, with the reason.
    Submission(SubmissionArgs),
    /// Serve the results history over HTTP: rankings with confidence
    /// intervals, runs, trends (JSON under /api/v1, API keys required).
    Serve(ServeArgs),
    /// Upload a finished run directory to a results service (`harness
    /// serve`'s POST /api/v1/runs), which records it in its history.
    Push(PushArgs),
}

/// Output of `harness compare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompareFormat {
    /// Aligned columns.
    Terminal,
    /// A markdown table.
    Markdown,
    /// JSON.
    Json,
    /// CSV (submission trees only).
    Csv,
}

/// `harness compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Run directories or sweep directories; the first run is the baseline.
    /// Or two submission trees (or MLCommons results repositories): their
    /// results side by side per benchmark and scenario, with ratios.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "terminal")]
    pub format: CompareFormat,
    /// Also draw CDF overlays of latency, TTFT and TPOT into this directory.
    #[arg(long, value_name = "DIR")]
    pub charts: Option<PathBuf>,
    /// Compare runs whose workloads differ (scenario, mode, LoadGen model,
    /// target QPS, dataset, max tokens, sampling); refused (exit 4) without.
    #[arg(long)]
    pub allow_mismatch: bool,
    /// Compare runs that crashed, were interrupted, or had failed queries;
    /// refused (exit 4) without.
    #[arg(long)]
    pub allow_failed_runs: bool,
}

/// `harness gate`.
#[derive(Debug, Args)]
pub struct GateArgs {
    /// The reference run.
    #[arg(long)]
    pub baseline: PathBuf,
    /// The run under test.
    #[arg(long)]
    pub candidate: PathBuf,
    /// Rules (TOML): `[[rule]] metric = "ttft_p99_ms" max_regression_pct = 10`.
    #[arg(long)]
    pub rules: PathBuf,
    /// Also write the checks as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Gate runs whose workloads differ (scenario, mode, LoadGen model,
    /// target QPS, dataset, max tokens, sampling); refused (exit 4) without.
    #[arg(long)]
    pub allow_mismatch: bool,
    /// Gate runs that crashed, were interrupted, or had failed queries;
    /// refused (exit 4) without.
    #[arg(long)]
    pub allow_failed_runs: bool,
}

/// `harness find-peak`.
#[derive(Debug, Clone, Args)]
pub struct FindPeakArgs {
    /// Search with shortened runs, then confirm the peak at full length.
    #[arg(long)]
    pub fast: bool,
    /// With --fast: fraction of min_duration and min_query_count per step.
    #[arg(long, default_value_t = 0.2)]
    pub fast_factor: f64,
    /// Decimals of QPS the bisection resolves
    /// (server_find_peak_qps_decimals_of_precision; LoadGen's default 1).
    #[arg(long, value_parser = clap::value_parser!(u8))]
    pub precision: Option<u8>,
    /// Widening factor minus one (server_find_peak_qps_boundary_step_size;
    /// LoadGen's default 1: double the QPS).
    #[arg(long)]
    pub step_size: Option<f64>,
    /// Continue the search in this directory (after Ctrl-C or a failed
    /// step) with its own settings: the finished steps are kept, the
    /// others run.
    #[arg(long, value_name = "SEARCH_DIR")]
    pub resume: Option<PathBuf>,
    /// Options of every run (as for `harness run`; the search starts at the
    /// Server target QPS and uses the conf's server_find_peak_* settings).
    #[command(flatten)]
    pub run: RunArgs,
}

/// `harness history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The history database: an SQLite file, or a PostgreSQL server's
    /// `postgres://user:password@host:port/dbname` URL.
    #[arg(long, global = true, value_name = "FILE|URL", default_value_t = crate::shared::default_db(Path::new(crate::shared::DEFAULT_OUTPUT_DIR)))]
    pub db: history::Database,
    /// Import run directories or prune old runs (without one: list runs).
    #[command(subcommand)]
    pub action: Option<HistoryAction>,
    /// Only runs of this LoadGen model key.
    #[arg(long)]
    pub model: Option<String>,
    /// Only runs of this scenario.
    #[arg(long)]
    pub scenario: Option<String>,
    /// At most this many runs, newest first.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Show this metric's trend (e.g. samples_per_s, ttft_p99_ms).
    #[arg(long)]
    pub metric: Option<String>,
    /// With --metric: also draw the trend to this PNG file.
    #[arg(long, value_name = "FILE.png", requires = "metric")]
    pub chart: Option<PathBuf>,
}

/// `harness history import|prune`.
#[derive(Debug, Subcommand)]
pub enum HistoryAction {
    /// Record existing run directories without re-running them (also ones
    /// written before the database existed); already recorded runs are
    /// skipped, directories that are not finished runs refused.
    Import(HistoryImportArgs),
    /// Remove old runs from the history database (its rows only: run
    /// directories stay on disk).
    Prune(HistoryPruneArgs),
}

/// `harness history import`.
#[derive(Debug, Args)]
pub struct HistoryImportArgs {
    /// Run directories (each holding run.json and records.jsonl).
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
}

/// `harness history prune`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["older_than", "keep"])))]
pub struct HistoryPruneArgs {
    /// Remove runs started longer ago than this (`30d`, `12h`, `2weeks`).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub older_than: Option<std::time::Duration>,
    /// Keep only the newest N runs.
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,
    /// Say what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `harness push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The run directory.
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
    /// The results service's base URL (`http://host:8080`).
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// The environment variable holding an upload key.
    #[arg(long, value_name = "VAR", default_value = "HARNESS_API_KEY")]
    pub api_key_env: String,
    /// A file holding an upload key (its first line); instead of the variable.
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,
}

/// `harness serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The history database: an SQLite file, or a PostgreSQL server's
    /// `postgres://user:password@host:port/dbname` URL (several `serve`
    /// instances over one PostgreSQL database stay consistent).
    #[arg(long, value_name = "FILE|URL", default_value_t = crate::shared::default_db(Path::new(crate::shared::DEFAULT_OUTPUT_DIR)))]
    pub db: history::Database,
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// A file of API keys, one entry a line: `read:KEY`, `upload:KEY` or a
    /// bare KEY (read); `#` starts a comment.
    #[arg(long, value_name = "FILE")]
    pub api_keys_file: Option<PathBuf>,
    /// The environment variable holding API keys (entries as in the file,
    /// separated by commas or newlines), used when set.
    #[arg(long, value_name = "VAR", default_value = "HARNESS_API_KEYS")]
    pub api_keys_env: String,
    /// Where runs uploaded through `POST /api/v1/runs` (`harness push`) are
    /// stored, one directory each (created when missing).
    #[arg(long, value_name = "DIR", default_value = crate::shared::DEFAULT_OUTPUT_DIR)]
    pub runs_dir: PathBuf,
    /// Serve the web dashboard at / without login (a trusted network or a
    /// kiosk); by default it asks for one of the API keys once and keeps a
    /// session cookie. The /api routes need a key either way.
    #[arg(long)]
    pub public_dashboard: bool,
    /// Also serve gauges derived from the history for Prometheus at
    /// http://ADDR/metrics (runs recorded, latest run time and latest value
    /// of each figure per system, model and scenario); no key asked.
    #[arg(long, value_name = "ADDR:PORT")]
    pub prometheus_listen: Option<std::net::SocketAddr>,
    /// Keep no cached answer: every rankings request, and every scrape of
    /// --prometheus-listen's /metrics, is answered from the database (to
    /// measure that path, as scripts/bench/service_rankings.sh does; slower,
    /// never needed for freshness).
    #[arg(long)]
    pub no_cache: bool,
}

/// `harness sweep`.
#[derive(Debug, Clone, Args)]
pub struct SweepArgs {
    /// A dimension of the grid, NAME=V1,V2,... (repeatable; the grid is
    /// their product). NAME is one of target_qps, max_tokens,
    /// max_in_flight, prompts_per_request, scenario, dataset, backend
    /// (values separated by `,`; one point's replicas by `+`), model (the
    /// served model asked for), temperature, top_p, extra_body:KEY (a
    /// request body field), user_conf
    /// (named configurations: one user.conf file per value), or conf:KEY
    /// for any user.conf key (applied as `*.*.KEY = V`).
    #[arg(
        long = "vary",
        value_name = "NAME=V1,V2,...",
        required_unless_present = "resume"
    )]
    pub vary: Vec<String>,
    /// Continue the sweep in this directory with its own settings (those
    /// it began with, stored in sweep.json): points already complete are
    /// kept, the others run. Other flags must agree with the stored ones.
    #[arg(long, value_name = "SWEEP_DIR")]
    pub resume: Option<PathBuf>,
    /// Options of every run (as for `harness run`).
    #[command(flatten)]
    pub run: RunArgs,
}

/// `--gpus`: NVML indices, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuList(pub Vec<u32>);

/// Parses `--gpus 0,2`: whole numbers, each once.
pub fn parse_gpus(text: &str) -> Result<GpuList, String> {
    let mut out: Vec<u32> = Vec::new();
    for item in text.split(',').map(str::trim) {
        let index: u32 = item
            .parse()
            .map_err(|_| format!("{item:?} is not a GPU index (NVML indices, e.g. 0,2)"))?;
        if out.contains(&index) {
            return Err(format!("GPU {index} is listed twice"));
        }
        out.push(index);
    }
    Ok(GpuList(out))
}

/// `--metrics-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MetricsFormatArg {
    /// One `t_ns,source,instance,metric,value` row per reading, streamed.
    Long,
    /// One row per collection round, one column per series.
    Wide,
}

/// LoadGen scenarios, plus MLPerf's Interactive category (a Server run under
/// the model's `-interactive` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "PascalCase")]
pub enum ScenarioArg {
    /// One query with every sample.
    Offline,
    /// Poisson arrivals at the target QPS.
    Server,
    /// One sample at a time.
    SingleStream,
    /// Eight samples per query, one query at a time.
    MultiStream,
    /// Server with the model's interactive latency limits.
    Interactive,
}

/// LoadGen test modes (the reference SUTs' lowercase names are accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TestModeArg {
    /// A timed run.
    #[value(name = "PerformanceOnly", alias = "performance")]
    PerformanceOnly,
    /// Every sample once, responses logged for scoring.
    #[value(name = "AccuracyOnly", alias = "accuracy")]
    AccuracyOnly,
    /// Accuracy then performance.
    #[value(name = "SubmissionRun", alias = "submission")]
    SubmissionRun,
    /// Server only: the highest target QPS that meets the latency limits.
    #[value(name = "FindPeakPerformance", alias = "find-peak")]
    FindPeakPerformance,
}

/// Which API the prompts go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ApiArg {
    /// /v1/completions with token ids (the dataset's exact tokens).
    Completions,
    /// /v1/completions with the prompt text.
    CompletionsText,
    /// /v1/chat/completions with the prompt text as one user message.
    Chat,
}

/// Dataset file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DatasetFormatArg {
    /// Decide from the file name and content.
    Auto,
    /// MLPerf llama3.1-8b `cnn_eval.json` (pandas records with tok_input).
    CnnEval,
    /// MLPerf llama2-70b pandas pickle.
    Pickle,
    /// One JSON object per line.
    Jsonl,
    /// ShareGPT conversations.
    Sharegpt,
}

/// Which LoadGen runs a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LoadgenArg {
    /// This harness's Rust LoadGen.
    Rust,
    /// MLCommons' C++ LoadGen 6.0.17 (builds with the `official` feature).
    Official,
}

/// `harness run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Which LoadGen runs the test: `rust` (this harness's own) or
    /// `official` (MLCommons' C++ LoadGen, linked in by the `official`
    /// cargo feature; closed-division submissions need it).
    #[arg(long, value_enum, default_value = "rust")]
    pub loadgen: LoadgenArg,
    /// Scenario.
    #[arg(long, value_enum, default_value = "Server")]
    pub scenario: ScenarioArg,
    /// Test mode.
    #[arg(long, value_enum, default_value = "PerformanceOnly")]
    pub test_mode: TestModeArg,
    /// The MLPerf reference SUT's spelling of `--test-mode AccuracyOnly`.
    #[arg(long, conflicts_with = "test_mode")]
    pub accuracy: bool,
    /// LoadGen model key for mlperf.conf and user.conf lookups.
    #[arg(long, default_value = "llama3_1-8b")]
    pub lg_model_name: String,
    /// user.conf (LoadGen syntax). Default: the example user.conf compiled
    /// into the binary (short runs, not submission durations).
    #[arg(long)]
    pub user_conf: Option<PathBuf>,
    /// audit.config (compliance tests); like LoadGen's, its keys override
    /// mlperf.conf, user.conf and the flags (`harness audit` writes it).
    #[arg(long)]
    pub audit_conf: Option<PathBuf>,
    /// An audit.config's text (name, text) given by `harness audit` instead
    /// of a file; not a flag.
    #[arg(skip)]
    pub audit_text: Option<(String, String)>,
    /// Dataset file. Default: the bundled CNN-DailyMail-shaped sample.
    #[arg(long)]
    pub dataset_path: Option<PathBuf>,
    /// A synthetic dataset instead of a file: seeded random token ids,
    /// e.g. `samples=1000,input=128:1024,output=128,prefix=0,seed=1`
    /// (lengths: N, MIN:MAX, or normal:MEAN:STD[:MIN:MAX]).
    #[arg(long, value_name = "SPEC", conflicts_with = "dataset_path")]
    pub synthetic: Option<String>,
    /// The served model's tokenizer: a tokenizer.json, or `server` for the
    /// backend's own /tokenize. Turns text-only datasets (ShareGPT) into
    /// token ids, re-tokenizes other datasets' prompt text (a model whose
    /// vocabulary is not the dataset's), and encodes text answers for the
    /// accuracy log.
    #[arg(long, value_name = "FILE|server")]
    pub tokenizer: Option<PathBuf>,
    /// Format of --dataset-path.
    #[arg(long, value_enum, default_value = "auto")]
    pub dataset_format: DatasetFormatArg,
    /// Use only the first N samples of the dataset.
    #[arg(long)]
    pub total_sample_count: Option<usize>,
    /// Where run directories are created (each run gets a fresh one).
    /// `--output-log-dir` is the MLPerf reference SUT's spelling.
    #[arg(long, visible_alias = "output-log-dir", default_value = crate::shared::DEFAULT_OUTPUT_DIR)]
    pub output_dir: PathBuf,
    /// A label added to the run directory's name and run.json.
    #[arg(long)]
    pub label: Option<String>,

    /// Base URL of an OpenAI-compatible server (repeat for data-parallel
    /// replicas). Default: start the built-in simulator in-process.
    /// `--api-server` is the MLPerf reference SUT's spelling.
    #[arg(long = "backend", visible_alias = "api-server", value_name = "URL")]
    pub backends: Vec<String>,
    /// Simulator profile when no --backend is given.
    #[arg(long, default_value = "llama3.1-8b-h100")]
    pub sim_profile: String,
    /// The built-in simulator answers each prompt with the dataset's
    /// reference output (encoded with --tokenizer, else its own vocabulary)
    /// instead of sampled tokens: an AccuracyOnly run scores the reference.
    #[arg(long, conflicts_with = "backends")]
    pub sim_replay: bool,
    /// Served model name (default: asked from /v1/models).
    /// `--api-model-name` is the MLPerf reference SUT's spelling.
    #[arg(long, visible_alias = "api-model-name")]
    pub model: Option<String>,
    /// API style.
    #[arg(long, value_enum, default_value = "completions")]
    pub api: ApiArg,
    /// Environment variable holding the API key (sent as a Bearer token).
    #[arg(long, value_name = "VAR")]
    pub api_key_env: Option<String>,
    /// File holding the API key.
    #[arg(long, value_name = "FILE", conflicts_with = "api_key_env")]
    pub api_key_file: Option<PathBuf>,
    /// A header sent with every request, `'Name: value'` (repeatable), for
    /// auth schemes besides Bearer: `--header 'x-api-key: @env:MY_KEY'`. A
    /// value `@env:VAR` is read from that variable, `@file:PATH` from that
    /// file. Values never appear in run.json, logs or output.
    #[arg(long = "header", value_name = "'NAME: VALUE'")]
    pub headers: Vec<String>,
    /// Output token cap (the MLPerf llama3.1-8b reference uses 128).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_tokens: u32,
    /// Ask the server to ignore EOS (fixed output lengths).
    #[arg(long)]
    pub ignore_eos: bool,
    /// Extra JSON merged into every request body.
    #[arg(long, value_name = "JSON")]
    pub extra_body: Option<String>,
    /// Offline: requests in flight at once.
    #[arg(long, default_value_t = 256)]
    pub max_in_flight: usize,
    /// Offline: prompts per request.
    #[arg(long, default_value_t = 1)]
    pub prompts_per_request: usize,
    /// Per-request timeout, seconds (0: none).
    #[arg(long, default_value_t = 600.0)]
    pub request_timeout: f64,
    /// A stream silent this long (seconds) fails its query (0: never).
    #[arg(long, default_value_t = 60.0)]
    pub stall_timeout: f64,
    /// A new connection per request (no HTTP keep-alive), for servers that
    /// drop idle or reused connections.
    #[arg(long)]
    pub no_keep_alive: bool,
    /// Send every request with `X-Request-Id: <PREFIX><seq>` (`seq` as in
    /// records.jsonl) so the server's logs join to the records; vLLM and the
    /// simulator name the request `cmpl-<PREFIX><seq>`. Make the prefix unique
    /// per run.
    #[arg(long, value_name = "PREFIX")]
    pub request_id_prefix: Option<String>,
    /// Wait up to this long (seconds) for the backends to become healthy (a
    /// server still loading its model); 0 checks once.
    #[arg(long, default_value_t = 0.0)]
    pub wait_ready: f64,
    /// Give up on the run when nothing completes for this long (seconds).
    #[arg(long, default_value_t = 120.0)]
    pub idle_timeout: f64,

    /// Override the target QPS (Server) or expected QPS (Offline).
    #[arg(long)]
    pub target_qps: Option<f64>,
    /// Override min_duration (ms).
    #[arg(long)]
    pub min_duration_ms: Option<u64>,
    /// Override min_query_count.
    #[arg(long)]
    pub min_query_count: Option<u64>,
    /// Override max_duration (ms; 0 = none).
    #[arg(long)]
    pub max_duration_ms: Option<u64>,

    /// Sample server /metrics, GPUs and the host during the run.
    #[arg(long)]
    pub enable_metrics_collection: bool,
    /// Sampling interval, seconds.
    #[arg(long, default_value_t = 1.0)]
    pub metrics_collection_interval: f64,
    /// The GPUs to monitor, by NVML index (`0,2`); default all.
    #[arg(
        long,
        value_name = "LIST",
        value_parser = parse_gpus,
        requires = "enable_metrics_collection"
    )]
    pub gpus: Option<GpuList>,
    /// Layout of metrics.csv: a row per reading, or a row per collection
    /// round and a column per series.
    #[arg(
        long,
        value_enum,
        default_value_t = MetricsFormatArg::Long,
        requires = "enable_metrics_collection"
    )]
    pub metrics_format: MetricsFormatArg,
    /// Also copy the run's metric files (metrics.jsonl, metrics.csv) into
    /// DIR when the run ends (the MLPerf reference integration's flag);
    /// turns metrics collection on.
    #[arg(long, value_name = "DIR")]
    pub metrics_output_dir: Option<PathBuf>,
    /// Serve the harness's own live metrics for Prometheus on ADDR, and
    /// the run's final figures (summary.json's) once it is summarised.
    #[arg(long, value_name = "ADDR")]
    pub prometheus_listen: Option<SocketAddr>,
    /// After the run, wait up to SECONDS for a scrape of the final figures
    /// before exiting (stderr says where); 0 does not wait.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 0.0,
        requires = "prometheus_listen"
    )]
    pub prometheus_linger: f64,
    /// Write mlperf_log_trace.json.
    #[arg(long)]
    pub enable_log_trace: bool,
    /// Results history every run is recorded in: an SQLite file, or a
    /// PostgreSQL server's `postgres://` URL (shared by a team).
    /// Default: history.sqlite in --output-dir.
    #[arg(long, value_name = "FILE|URL")]
    pub db: Option<history::Database>,
    /// Do not record the run in the history database.
    #[arg(long, conflicts_with = "db")]
    pub no_history: bool,
    /// Skip report generation at the end (`harness report` can make it later).
    #[arg(long)]
    pub no_report: bool,
    /// No progress display.
    #[arg(long)]
    pub quiet: bool,
}

/// `harness report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run directory.
    pub run_dir: PathBuf,
}

/// `harness accuracy`.
#[derive(Debug, Args)]
pub struct AccuracyArgs {
    /// A run directory, or an mlperf_log_accuracy.json file.
    pub path: PathBuf,
    /// The dataset with the references (default: the run's dataset).
    #[arg(long)]
    pub dataset_path: Option<PathBuf>,
    /// tokenizer.json used to decode the output token ids.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Decode with this server's /detokenize instead (vLLM or llama.cpp;
    /// special tokens are decoded as the server does).
    #[arg(long, value_name = "URL", conflicts_with = "tokenizer")]
    pub detokenize_url: Option<String>,
    /// Environment variable holding the server's API key.
    #[arg(long, value_name = "VAR")]
    pub api_key_env: Option<String>,
    /// Model whose accuracy targets apply.
    #[arg(long, default_value = "llama3_1-8b")]
    pub lg_model_name: String,
    /// Token id width in the log.
    #[arg(long, default_value = "int32")]
    pub dtype: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_lists_are_nvml_indices_each_once() {
        assert_eq!(parse_gpus("0,2").unwrap(), GpuList(vec![0, 2]));
        assert_eq!(parse_gpus(" 3 ").unwrap(), GpuList(vec![3]));
        assert!(parse_gpus("0,0").unwrap_err().contains("twice"));
        assert!(parse_gpus("0,").unwrap_err().contains("\"\""));
        assert!(parse_gpus("gpu1").unwrap_err().contains("\"gpu1\""));
        assert!(parse_gpus("-1").is_err());
    }
}

/// Arguments of `harness audit`.
#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// The compliance test (the LLM benchmarks need TEST06).
    #[arg(value_parser = ["TEST06"], ignore_case = true)]
    pub test: String,
    /// Where TEST06/ (verify_accuracy.txt, accuracy/) is written, e.g.
    /// `<results>/<system>/<benchmark>/<scenario>`. Default: the run directory.
    #[arg(long, value_name = "DIR")]
    pub compliance_dir: Option<PathBuf>,
    /// Token id the EOS check counts (the script's `--eos_token_id`; its
    /// default is 2, Llama 2's EOS).
    #[arg(long, default_value_t = 2)]
    pub eos_token_id: i64,
    /// Element type of the accuracy log's token data (the script's `--dtype`).
    #[arg(long, default_value = "int32", value_parser = ["int64", "int32", "int16", "float32"])]
    pub dtype: String,
    /// The audited run: every `harness run` option.
    #[command(flatten)]
    pub run: RunArgs,
}

/// `--division`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DivisionArg {
    /// Closed division (official LoadGen only).
    Closed,
    /// Open division.
    Open,
}

/// Arguments of `harness submission`.
#[derive(Debug, Clone, Args)]
pub struct SubmissionArgs {
    /// Run directories: performance, accuracy (scored by harness accuracy)
    /// and audit (harness audit) runs.
    #[arg(required = true, value_name = "RUN_DIR")]
    pub runs: Vec<PathBuf>,
    /// Where the tree is written (`<out>/<division>/<submitter>/...`).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Division.
    #[arg(long, value_enum)]
    pub division: DivisionArg,
    /// Submitter (organisation) name.
    #[arg(long)]
    pub submitter: String,
    /// System name (systems/<system>.json, results/<system>/).
    #[arg(long)]
    pub system: String,
    /// Benchmark as MLPerf names it (llama3.1-8b, llama2-70b-99, ...).
    #[arg(long, default_value = "llama3.1-8b")]
    pub benchmark: String,
    /// A JSON object with the system description's values (the rest are
    /// written empty and listed).
    #[arg(long, value_name = "FILE")]
    pub system_json: Option<PathBuf>,
    /// A JSON object with measurements.json's values.
    #[arg(long, value_name = "FILE")]
    pub measurements_json: Option<PathBuf>,
    /// Fill the host's processor (model, sockets, cores), memory and
    /// operating system, and the accelerators NVML sees (model, count,
    /// memory, driver), from this machine: build the tree on the system
    /// under test. --system-json values win.
    #[arg(long)]
    pub host_fields: bool,
    /// Place runs that break only the rules' size requirements (duration,
    /// sample counts, a gen_len sized for the full dataset), listing each:
    /// a preview of the tree from short runs, never a submission (exit 3).
    #[arg(long)]
    pub draft: bool,
}
