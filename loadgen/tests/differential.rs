//! Differential test against the real MLPerf LoadGen (the
//! `mlcommons-loadgen==6.0.17` wheel): config parsing, effective settings,
//! loaded sample sets, every issued query's samples, the generated query
//! count / samples per query / duration, and the accuracy-log sampling must
//! be identical.
//!
//! The wheel is driven by `tests/differential/loadgen_probe.py` under
//! `$LOADGEN_PYTHON` (install it with `eval "$(bash scripts/peers/loadgen.sh)"`).

// Test-only helpers: a failed unwrap or expect is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use loadgen::config::{ConfigLoader, apply_test05};
use loadgen::find_peak::{FindPeakSettings, find_peak};
use loadgen::format::cpp_double;
use loadgen::schedule::{
    LoadableSet, Schedule, SequenceGen, accuracy_sets, generate_queries, performance_set,
};
use loadgen::{EffectiveSettings, Phase, Scenario, TestMode, TestSettings};
use serde_json::{Map, Value, json};

const SCENARIOS: [&str; 4] = ["SingleStream", "MultiStream", "Server", "Offline"];

/// MLPerf's official seeds, and some that exercise the mod-2^32 seeding.
const SEEDS: [[u64; 3]; 4] = [
    [
        2_085_463_073_848_966_840,
        2_747_215_439_041_700_203,
        16_159_082_839_903_944_936,
    ],
    [0, 0, 0],
    [1, 2, 3],
    [u64::MAX, 4_294_967_301, 12_345_678_901_234],
];

fn seeds(i: usize) -> Map<String, Value> {
    let [qsl, sample, schedule] = SEEDS[i % SEEDS.len()];
    let mut m = Map::new();
    m.insert("qsl_rng_seed".into(), json!(qsl));
    m.insert("sample_index_rng_seed".into(), json!(sample));
    m.insert("schedule_rng_seed".into(), json!(schedule));
    m
}

/// Small, fast settings: tens of milliseconds of generated schedule.
fn quick() -> Map<String, Value> {
    let v = json!({
        "min_duration_ms": 40,
        "min_query_count": 20,
        "server_target_qps": 2500.0,
        "single_stream_expected_latency_ns": 200_000.0,
        "multi_stream_expected_latency_ns": 1_000_000.0,
        "multi_stream_samples_per_query": 8,
        "offline_expected_qps": 1500.0,
    });
    v.as_object().unwrap().clone()
}

fn merge(mut a: Map<String, Value>, b: Map<String, Value>) -> Map<String, Value> {
    a.extend(b);
    a
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn run_case(
    name: String,
    scenario: &str,
    mode: &str,
    settings: Map<String, Value>,
    qsl: [u64; 2],
) -> Value {
    let mut case = Map::new();
    case.insert("name".into(), Value::String(name));
    case.insert("scenario".into(), json!(scenario));
    case.insert("mode".into(), json!(mode));
    case.insert("settings".into(), Value::Object(settings));
    case.insert("qsl".into(), json!(qsl));
    Value::Object(case)
}

fn conf(text: &str, model: &str, scenario: &str) -> Value {
    json!({"text": text, "model": model, "scenario": scenario, "conf_type": 1})
}

/// Runs with settings given directly: every scenario and mode, equal issue on
/// and off, the audit knobs, accuracy-log sampling, odd QSL sizes.
fn direct_cases() -> Vec<Value> {
    let mut cases = Vec::new();
    let qsls = [[100, 20], [37, 37], [1000, 64], [10, 4], [5, 50]];
    let mut i = 0;
    for scenario in SCENARIOS {
        for mode in ["PerformanceOnly", "AccuracyOnly", "SubmissionRun"] {
            for equal_issue in [false, true] {
                let s = merge(
                    merge(quick(), seeds(i)),
                    obj(json!({"sample_concatenate_permutation": equal_issue})),
                );
                let qsl = qsls[i % qsls.len()];
                cases.push(run_case(
                    format!("direct {scenario} {mode} equal_issue={equal_issue} qsl={qsl:?}"),
                    scenario,
                    mode,
                    s,
                    qsl,
                ));
                i += 1;
            }
        }
        // Audit knobs (performance mode).
        for (k, extra) in [
            ("unique", json!({"performance_issue_unique": true})),
            (
                "same",
                json!({"performance_issue_same": true, "performance_issue_same_index": 3}),
            ),
            (
                "unique+same",
                json!({"performance_issue_unique": true, "performance_issue_same": true,
                       "performance_issue_same_index": 1}),
            ),
        ] {
            let s = merge(merge(quick(), seeds(i)), obj(extra));
            cases.push(run_case(
                format!("direct {scenario} issue_{k}"),
                scenario,
                "PerformanceOnly",
                s,
                [60, 30],
            ));
            i += 1;
        }
        // Accuracy-log sampling by probability and by target, continuing the
        // sequence after an accuracy phase.
        let s = merge(
            merge(quick(), seeds(i)),
            obj(
                json!({"accuracy_log_probability": 0.3, "accuracy_log_rng_seed": 720381539243781796u64}),
            ),
        );
        cases.push(run_case(
            format!("direct {scenario} accuracy_log_probability"),
            scenario,
            "SubmissionRun",
            s,
            [40, 24],
        ));
        let s = merge(
            merge(quick(), seeds(i + 1)),
            obj(json!({"accuracy_log_sampling_target": 7, "accuracy_log_rng_seed": 3})),
        );
        cases.push(run_case(
            format!("direct {scenario} accuracy_log_sampling_target"),
            scenario,
            "PerformanceOnly",
            s,
            [40, 24],
        ));
        i += 2;
        // Overrides of the QSL's counts.
        let s = merge(
            merge(quick(), seeds(i)),
            obj(
                json!({"performance_sample_count_override": 16, "accuracy_sample_count_override": 21}),
            ),
        );
        cases.push(run_case(
            format!("direct {scenario} count overrides"),
            scenario,
            "SubmissionRun",
            s,
            [50, 30],
        ));
        i += 1;
    }
    // MultiStream with other query sizes, and a set smaller than the padding.
    for (spq, qsl) in [(1, [20, 20]), (3, [40, 10]), (16, [30, 5])] {
        let s = merge(
            merge(quick(), seeds(spq)),
            obj(json!({"multi_stream_samples_per_query": spq})),
        );
        for mode in ["PerformanceOnly", "AccuracyOnly"] {
            cases.push(run_case(
                format!("direct MultiStream spq={spq} {mode} qsl={qsl:?}"),
                "MultiStream",
                mode,
                s.clone(),
                qsl,
            ));
        }
    }
    // Server: more queries, min_query_count beyond the window, equal issue
    // growth over several set sizes.
    let s = merge(
        merge(quick(), seeds(0)),
        obj(json!({"server_target_qps": 20000.0, "min_duration_ms": 100})),
    );
    cases.push(run_case(
        "direct Server 2000 queries".into(),
        "Server",
        "PerformanceOnly",
        s,
        [500, 100],
    ));
    let s = merge(
        merge(quick(), seeds(2)),
        obj(json!({"min_query_count": 300, "min_duration_ms": 10})),
    );
    cases.push(run_case(
        "direct Server min_query_count past the window".into(),
        "Server",
        "PerformanceOnly",
        s,
        [100, 100],
    ));
    let s = merge(
        merge(quick(), seeds(3)),
        obj(
            json!({"sample_concatenate_permutation": true, "min_query_count": 5,
                   "min_duration_ms": 60, "server_target_qps": 3000.0}),
        ),
    );
    cases.push(run_case(
        "direct Server equal issue growth".into(),
        "Server",
        "SubmissionRun",
        s,
        [70, 17],
    ));
    // FindPeakPerformance: the probe's SUT fails runs of more than N queries
    // by completing them 0.55 s late, past a 0.5 s latency bound; passing runs
    // complete within ~50 ms, so the verdict has a wide margin on a busy box.
    for (i, (base, decimals, step, fail_above)) in [
        (500.0, 0, 1.0, 60u64),
        (300.0, 1, 0.5, 45),
        (800.0, 2, 1.0, 25),
        // The base run fails: the search stops there.
        (3000.0, 1, 1.0, 60),
    ]
    .into_iter()
    .enumerate()
    {
        let s = merge(
            merge(quick(), seeds(i)),
            obj(
                json!({"server_target_qps": base, "min_duration_ms": 40, "min_query_count": 1,
                       "server_target_latency_ns": 500_000_000u64,
                       "server_find_peak_qps_decimals_of_precision": decimals,
                       "server_find_peak_qps_boundary_step_size": step}),
            ),
        );
        let mut case = run_case(
            format!("direct Server find-peak base={base} decimals={decimals} step={step}"),
            "Server",
            "FindPeakPerformance",
            s,
            [100, 50],
        );
        case["find_peak"] = json!({"fail_above_queries": fail_above, "fail_sleep_s": 0.55});
        cases.push(case);
    }
    // TEST05 seeds replace the normal ones and force a performance run.
    let s = merge(
        merge(quick(), seeds(1)),
        obj(
            json!({"test05": true, "test05_qsl_rng_seed": 7975553102935885558u64,
                   "test05_sample_index_rng_seed": 11403566307062068064u64,
                   "test05_schedule_rng_seed": 15816800565822761601u64}),
        ),
    );
    cases.push(run_case(
        "direct Server test05".into(),
        "Server",
        "AccuracyOnly",
        s,
        [50, 25],
    ));
    cases
}

/// Runs configured from the embedded mlperf.conf plus a user.conf, with the
/// real model keys (LLM equal issue and token latencies included).
fn config_run_cases() -> Vec<Value> {
    let mut cases = Vec::new();
    let short = "*.SingleStream.min_duration = 30\n*.MultiStream.min_duration = 30\n\
                 *.Server.min_duration = 60\n*.Offline.min_duration = 20\n\
                 *.MultiStream.min_query_count = 20\n";
    let runs: [(&str, &str, &str, &str, [u64; 2]); 16] = [
        (
            "llama3_1-8b",
            "Server",
            "PerformanceOnly",
            "llama3_1-8b.Server.target_qps = 2000\n",
            [150, 150],
        ),
        (
            "llama3_1-8b",
            "Offline",
            "PerformanceOnly",
            "llama3_1-8b.Offline.target_qps = 100\n",
            [300, 300],
        ),
        (
            "llama3_1-8b",
            "Server",
            "AccuracyOnly",
            "*.*.mode = 1\nllama3_1-8b.Server.target_qps = 2000\n",
            [120, 120],
        ),
        (
            "llama3_1-8b",
            "Offline",
            "AccuracyOnly",
            "*.*.mode = 1\n",
            [120, 120],
        ),
        (
            "llama3_1-8b",
            "Server",
            "SubmissionRun",
            "*.*.mode = 0\n*.Server.target_qps = 2500\n",
            [90, 90],
        ),
        (
            "llama3_1-8b",
            "SingleStream",
            "PerformanceOnly",
            "*.SingleStream.target_latency = 0.1\n",
            [50, 50],
        ),
        (
            "llama3_1-8b-interactive",
            "Server",
            "PerformanceOnly",
            "llama3_1-8b-interactive.Server.target_qps = 1500\n",
            [120, 60],
        ),
        (
            "llama3_1-8b-edge",
            "Offline",
            "PerformanceOnly",
            "*.Offline.target_qps = 10\n",
            [200, 200],
        ),
        (
            "llama2-70b",
            "Server",
            "PerformanceOnly",
            "llama2-70b.Server.target_qps = 3000\n",
            [250, 250],
        ),
        (
            "llama2-70b",
            "Offline",
            "SubmissionRun",
            "*.*.mode = 0\nllama2-70b.Offline.target_qps = 50\n",
            [100, 100],
        ),
        (
            "llama2-70b-interactive",
            "Server",
            "PerformanceOnly",
            "*.Server.target_qps = 2000\n",
            [80, 80],
        ),
        (
            "resnet50",
            "Server",
            "PerformanceOnly",
            "resnet50.Server.target_qps = 2500\n",
            [2000, 1024],
        ),
        (
            "resnet50",
            "Offline",
            "PerformanceOnly",
            "resnet50.Offline.target_qps = 100\n",
            [1500, 1024],
        ),
        (
            "resnet50",
            "SingleStream",
            "PerformanceOnly",
            "resnet50.SingleStream.target_latency = 0.2\n",
            [300, 300],
        ),
        (
            "resnet50",
            "MultiStream",
            "PerformanceOnly",
            "resnet50.MultiStream.target_latency = 1\n",
            [300, 300],
        ),
        (
            "resnet50",
            "MultiStream",
            "AccuracyOnly",
            "*.*.mode = 1\n",
            [45, 20],
        ),
    ];
    for (model, scenario, mode, user, qsl) in runs {
        cases.push(json!({
            "name": format!("config {model} {scenario} {mode}"),
            "scenario": scenario,
            "mode": "PerformanceOnly",
            "configs": [conf(&format!("# user.conf\n{short}{user}"), model, scenario)],
            "qsl": qsl,
            "expect_mode": mode,
        }));
    }
    // An audit.config found by StartTest (TEST01-style sampling target).
    cases.push(json!({
        "name": "audit.config in StartTest",
        "scenario": "Server",
        "mode": "PerformanceOnly",
        "configs": [conf(&format!("{short}*.Server.target_qps = 2000\n"), "resnet50", "Server")],
        "audit_config": "*.*.mode = 2\n*.*.accuracy_log_rng_seed = 720381539243781796\n\
                         *.*.accuracy_log_sampling_target = 30\n*.*.min_query_count = 150\n\
                         *.*.qsl_rng_seed = 1\n",
        "qsl": [400, 200],
    }));
    cases
}

/// FromConfig alone: LoadGen's grammar and lookup quirks.
fn config_only_cases() -> Vec<Value> {
    let mut cases = Vec::new();
    let tokens = [
        "0.5",
        "1.5e3",
        "0x10",
        "0X1f",
        "010",
        "08",
        "0x",
        "0xg",
        "1e",
        "1e+",
        "-1",
        "+5",
        "-0x10",
        "inf",
        "INF",
        "-Infinity",
        "infin",
        "nan",
        "nan(abc_1)",
        "nan(",
        "0x1p3",
        "0x1.8p1",
        "0x.8",
        "0x1p",
        ".5",
        "5.",
        ".",
        "1e400",
        "1e-400",
        "99999999999999999999999",
        "18446744073709551616",
        "abc",
        "0b1",
        "1,5",
        "1_000",
        "\u{ff11}",
        "00",
        "0e0",
        "4294967301",
        "2147483648",
    ];
    for tok in tokens {
        let text = format!(
            "*.*.min_query_count = {tok}\n*.Server.target_qps = {tok}\n\
             *.Server.target_latency = {tok}\n*.*.accuracy_log_rng_seed = {tok}\n\
             *.Server.max_async_queries = {tok}\n*.Server.target_latency_percentile = {tok}\n"
        );
        cases.push(json!({
            "name": format!("value token {tok:?}"),
            "scenario": "Server",
            "configs": [conf(&text, "m", "Server")],
            "run": false,
        }));
    }
    let grammar = [
        (
            "no spaces",
            "*.*.min_query_count=5\n*.*.max_query_count = 6\n",
        ),
        ("space before value only", "*.*.min_query_count =5\n"),
        ("space after key only", "*.*.min_query_count= 5\n"),
        (
            "trailing comment",
            "*.*.max_query_count = 9\n*.*.min_query_count = 5 # note\n",
        ),
        (
            "glued comment word",
            "#this is a comment\n*.*.max_query_count = 9\n",
        ),
        ("glued comment alone", "#comment\n*.*.max_query_count = 9\n"),
        (
            "glued comment with equals",
            "#x = 5\n*.*.max_query_count = 9\n",
        ),
        (
            "spaced comments",
            "# a comment\n   #   \n\n\t\n*.*.max_query_count = 9\n",
        ),
        (
            "comment in equals position",
            "*.*.max_query_count # = 9\n*.*.min_query_count = 4\n",
        ),
        ("several values", "*.*.max_query_count = 1 2 3\n"),
        (
            "key without value",
            "*.*.max_query_count =\n*.*.min_query_count\n",
        ),
        (
            "crlf and tabs",
            "*.*.max_query_count\t=\t7\r\n*.*.min_query_count = 8\r\n",
        ),
        ("no final newline", "*.*.max_query_count = 7"),
        ("equals as key", "= = 5\n*.*.max_query_count = 6\n"),
        (
            "duplicate keys",
            "*.*.max_query_count = 6\n*.*.max_query_count = 8\n",
        ),
        ("two bad lines", "a = b\nc d\n*.*.max_query_count = 6\n"),
        (
            "unknown keys",
            "*.*.no_such_key = 5\n*.Server.target_duration = 9\n",
        ),
        (
            "vertical tab and form feed",
            "*.*.max_query_count\u{b}=\u{c}5\n",
        ),
        (
            "seeds and test05 in user.conf",
            "*.*.qsl_rng_seed = 1\n*.*.sample_index_rng_seed = 2\n\
            *.*.schedule_rng_seed = 3\n*.*.accuracy_log_probability = 50\n*.*.test05 = 1\n\
            *.*.test05_qsl_rng_seed = 4\n",
        ),
        ("mode 1", "*.*.mode = 1\n"),
        ("mode 3", "*.Server.mode = 3\n"),
        ("mode invalid", "*.*.mode = 7\n*.*.max_query_count = 6\n"),
        (
            "booleans",
            "*.*.performance_issue_unique = 2\n*.*.performance_issue_same = 0x1\n\
            *.*.sample_concatenate_permutation = 2\n*.Server.coalesce_queries = 5\n\
            *.*.print_timestamps = 1\n*.*.use_token_latencies = 2\n",
        ),
        (
            "token latencies off",
            "m.*.ttft_latency = 5\nm.Server.tpot_latency = 6\n",
        ),
        (
            "token latencies on",
            "m.*.use_token_latencies = 1\nm.*.ttft_latency = 5\n\
            m.Offline.tpot_latency = 6\nm.Server.tpot_latency = 7.9\n",
        ),
        (
            "infer token latencies",
            "*.*.infer_token_latencies = 1\n*.*.token_latency_scaling_factor = 3\n",
        ),
        (
            "scenario-specific keys",
            "*.SingleStream.target_latency = 2.5\n\
            *.MultiStream.target_latency = 0x10\n*.MultiStream.samples_per_query = 4\n\
            *.Offline.target_qps = 7.5\n*.SingleStream.target_latency_percentile = 95\n\
            *.MultiStream.target_latency_percentile = 99.9\n*.Offline.target_latency_percentile = 50\n",
        ),
        (
            "durations and counts",
            "*.*.min_duration = 1000\n*.*.max_duration = 2000\n\
            *.*.min_query_count = 3\n*.*.max_query_count = 4\n\
            *.*.performance_sample_count_override = 5\n*.*.accuracy_sample_count_override = 6\n\
            *.*.performance_issue_same_index = 7\n*.*.accuracy_log_sampling_target = 8\n",
        ),
    ];
    for (name, text) in grammar {
        for scenario in ["Server", "Offline"] {
            cases.push(json!({
                "name": format!("grammar {name} ({scenario})"),
                "scenario": scenario,
                "configs": [conf(text, "m", scenario)],
                "run": false,
            }));
        }
    }
    // Lookup precedence for every combination of model and scenario, with
    // and without the more specific levels present.
    let levels = [
        "*.*.min_query_count = 44\n",
        "resnet50.*.min_query_count = 33\n",
        "*.Server.min_query_count = 22\n",
        "resnet50.Server.min_query_count = 11\n",
    ];
    for mask in 1..16u32 {
        let text: String = (0..4)
            .filter(|b| mask >> b & 1 == 1)
            .map(|b| levels[b])
            .collect();
        for (model, scenario) in [
            ("resnet50", "Server"),
            ("bert", "Server"),
            ("resnet50", "Offline"),
        ] {
            cases.push(json!({
                "name": format!("precedence {mask:04b} {model} {scenario}"),
                "configs": [conf(&text, model, scenario)],
                "run": false,
            }));
        }
    }
    // Every model and scenario of mlperf.conf through an empty user.conf.
    for model in [
        "llama3_1-8b",
        "llama3_1-8b-interactive",
        "llama3_1-8b-edge",
        "llama2-70b",
        "llama2-70b-interactive",
        "resnet50",
        "gptj",
        "gpt-oss-120b",
        "3d-unet",
        "qwen3-vl-235b-a22b",
        "unknown-model",
    ] {
        for scenario in SCENARIOS {
            cases.push(json!({
                "name": format!("mlperf.conf {model} {scenario}"),
                "configs": [conf("", model, scenario)],
                "run": false,
            }));
        }
    }
    // The process-wide state: multiple files, missing files, conf types 0 and 2.
    cases.push(json!({
        "name": "multiple conf files",
        "configs": [conf("*.*.min_query_count = 5\n", "resnet50", "Offline"),
                    conf("*.*.max_query_count = 6\n*.*.qsl_rng_seed = 9\n", "llama2-70b", "Offline")],
        "settings_after": {},
        "run": false,
    }));
    cases.push(json!({
        "name": "missing user.conf, then another",
        "configs": [{"text": "", "model": "resnet50", "scenario": "Offline", "missing": true},
                    conf("*.*.max_query_count = 6\n", "resnet50", "Offline")],
        "run": false,
    }));
    cases.push(json!({
        "name": "invalid first user.conf still loads mlperf.conf",
        "configs": [conf("*.*.max_query_count = 6 #\n", "llama3_1-8b", "Server")],
        "run": false,
    }));
    cases.push(json!({
        "name": "conf_type 0 then 1",
        "configs": [{"text": "ignored = 1\n", "model": "llama2-70b", "scenario": "Server", "conf_type": 0},
                    conf("*.*.min_query_count = 5\n", "llama2-70b", "Server")],
        "run": false,
    }));
    cases.push(json!({
        "name": "conf_type 2 (audit) cannot set seeds",
        "configs": [{"text": "*.*.qsl_rng_seed = 5\n*.*.mode = 1\n*.Offline.min_query_count = 9\n*.*.accuracy_log_probability = 3\n",
                     "model": "*", "scenario": "Offline", "conf_type": 2},
                    conf("*.*.max_query_count = 6\n", "resnet50", "Offline")],
        "run": false,
    }));
    cases.push(json!({
        "name": "settings before config survive unset keys",
        "settings": {"use_token_latencies": true, "min_query_count": 77, "server_target_qps": 3.5},
        "configs": [conf("m.Server.ttft_latency = 12\n", "m", "Offline")],
        "run": false,
    }));
    cases
}

/// Our side of a case: the settings after the configs, FromConfig return
/// codes and the `error_invalid_config` messages.
struct Configured {
    settings: TestSettings,
    rcs: Vec<i64>,
    loader: ConfigLoader,
}

fn python_to_rust_field(name: &str) -> &str {
    match name {
        "ttft_latency" => "server_ttft_latency",
        "tpot_latency" => "server_tpot_latency",
        other => other,
    }
}

fn set_fields(settings: &mut TestSettings, attrs: Option<&Value>) {
    let Some(attrs) = attrs.and_then(Value::as_object) else {
        return;
    };
    let mut v = serde_json::to_value(&*settings).unwrap();
    for (k, val) in attrs {
        let field = python_to_rust_field(k);
        assert!(v.get(field).is_some(), "unknown settings field {k}");
        v[field] = val.clone();
    }
    *settings = serde_json::from_value(v).unwrap();
}

fn configure(case: &Value) -> Configured {
    let mut settings = TestSettings {
        scenario: case["scenario"]
            .as_str()
            .unwrap_or("SingleStream")
            .parse()
            .unwrap(),
        mode: case["mode"]
            .as_str()
            .unwrap_or("PerformanceOnly")
            .parse()
            .unwrap(),
        ..TestSettings::default()
    };
    set_fields(&mut settings, case.get("settings"));
    let mut loader = ConfigLoader::new();
    let mut rcs = Vec::new();
    for c in case["configs"].as_array().into_iter().flatten() {
        let (model, scenario) = (
            c["model"].as_str().unwrap(),
            c["scenario"].as_str().unwrap(),
        );
        let text = c["text"].as_str().unwrap();
        let result = match c["conf_type"].as_i64().unwrap_or(1) {
            0 => {
                loader.mlperf_conf(&mut settings, model, scenario);
                Ok(())
            }
            2 => loader.audit_config_text(&mut settings, "audit.config", text, model, scenario),
            _ if c["missing"].as_bool() == Some(true) => loader.user_conf(
                &mut settings,
                Path::new("missing/user.conf"),
                model,
                scenario,
            ),
            _ => loader.user_conf_text(&mut settings, "user.conf", text, model, scenario),
        };
        rcs.push(result.map_or_else(|e| i64::from(e.loadgen_return_code()), |()| 0));
    }
    set_fields(&mut settings, case.get("settings_after"));
    Configured {
        settings,
        rcs,
        loader,
    }
}

/// Error messages with file paths replaced, so ours and the probe's compare.
fn normalize_path_messages(messages: impl IntoIterator<Item = String>) -> Vec<String> {
    messages
        .into_iter()
        .map(|m| {
            if m.starts_with("can't open file ") {
                "can't open file <path>".to_owned()
            } else {
                m
            }
        })
        .collect()
}

fn f64_of(v: &Value) -> f64 {
    match v {
        Value::String(s) => s.parse().unwrap(),
        Value::Number(n) => n.as_f64().unwrap(),
        other => panic!("not a number: {other}"),
    }
}

fn same_f64(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// The f64 fields of TestSettings, compared bit for bit (JSON would turn
/// NaN and infinities into null).
fn f64_fields(s: &TestSettings) -> [(&'static str, f64); 9] {
    [
        (
            "single_stream_expected_latency_ns",
            s.single_stream_expected_latency_ns,
        ),
        (
            "single_stream_target_latency_percentile",
            s.single_stream_target_latency_percentile,
        ),
        (
            "multi_stream_expected_latency_ns",
            s.multi_stream_expected_latency_ns,
        ),
        (
            "multi_stream_target_latency_percentile",
            s.multi_stream_target_latency_percentile,
        ),
        ("server_target_qps", s.server_target_qps),
        (
            "server_target_latency_percentile",
            s.server_target_latency_percentile,
        ),
        (
            "server_find_peak_qps_boundary_step_size",
            s.server_find_peak_qps_boundary_step_size,
        ),
        ("offline_expected_qps", s.offline_expected_qps),
        ("accuracy_log_probability", s.accuracy_log_probability),
    ]
}

/// Compares every TestSettings field with the wheel's.
fn check_settings(ours: &TestSettings, theirs: &Value, failures: &mut Vec<String>) {
    let doubles = f64_fields(ours);
    let ours_json = serde_json::to_value(ours).unwrap();
    for (k, their) in theirs.as_object().unwrap() {
        let field = python_to_rust_field(k);
        let (equal, our) = match doubles.iter().find(|(name, _)| *name == field) {
            Some(&(_, x)) => (same_f64(x, f64_of(their)), json!(format!("{x:?}"))),
            None => (ours_json[field] == *their, ours_json[field].clone()),
        };
        if !equal {
            failures.push(format!("setting {k}: ours {our}, LoadGen {their}"));
        }
    }
}

/// A value LoadGen logs as `effective_*`.
enum Logged {
    /// Doubles are logged with 6 significant digits.
    Double(f64),
    Exact(Value),
}

/// Compares our effective settings with the wheel's `effective_*` log keys.
fn check_effective(e: &EffectiveSettings, theirs: &Value, failures: &mut Vec<String>) {
    use Logged::{Double, Exact};
    let ours = [
        ("effective_scenario", Exact(json!(e.scenario.as_str()))),
        ("effective_test_mode", Exact(json!(e.mode.as_str()))),
        (
            "effective_samples_per_query",
            Exact(json!(e.samples_per_query)),
        ),
        ("effective_target_qps", Double(e.target_qps)),
        (
            "effective_target_latency_ns",
            Exact(json!(e.target_latency_ns)),
        ),
        (
            "effective_target_latency_percentile",
            Double(e.target_latency_percentile),
        ),
        (
            "effective_max_async_queries",
            Exact(json!(e.max_async_queries)),
        ),
        (
            "effective_target_duration_ms",
            Exact(json!(e.target_duration_ms)),
        ),
        ("effective_min_duration_ms", Exact(json!(e.min_duration_ms))),
        ("effective_max_duration_ms", Exact(json!(e.max_duration_ms))),
        ("effective_min_query_count", Exact(json!(e.min_query_count))),
        ("effective_max_query_count", Exact(json!(e.max_query_count))),
        (
            "effective_min_sample_count",
            Exact(json!(e.min_sample_count)),
        ),
        ("effective_qsl_rng_seed", Exact(json!(e.qsl_rng_seed))),
        (
            "effective_sample_index_rng_seed",
            Exact(json!(e.sample_index_rng_seed)),
        ),
        (
            "effective_schedule_rng_seed",
            Exact(json!(e.schedule_rng_seed)),
        ),
        (
            "effective_accuracy_log_rng_seed",
            Exact(json!(e.accuracy_log_rng_seed)),
        ),
        (
            "effective_accuracy_log_probability",
            Double(e.accuracy_log_probability),
        ),
        (
            "effective_accuracy_log_sampling_target",
            Exact(json!(e.accuracy_log_sampling_target)),
        ),
        (
            "effective_print_timestamps",
            Exact(json!(e.print_timestamps)),
        ),
        (
            "effective_performance_issue_unique",
            Exact(json!(e.performance_issue_unique)),
        ),
        (
            "effective_performance_issue_same",
            Exact(json!(e.performance_issue_same)),
        ),
        (
            "effective_performance_issue_same_index",
            Exact(json!(e.performance_issue_same_index)),
        ),
        (
            "effective_performance_sample_count",
            Exact(json!(e.performance_sample_count)),
        ),
        (
            "effective_accuracy_sample_count",
            Exact(json!(e.accuracy_sample_count)),
        ),
        (
            "effective_sample_concatenate_permutation",
            Exact(json!(e.sample_concatenate_permutation)),
        ),
    ];
    for (key, our) in ours {
        let their = &theirs[key];
        let (equal, shown) = match our {
            Double(x) => {
                let text = cpp_double(x);
                (same_f64(text.parse().unwrap(), f64_of(their)), json!(text))
            }
            Exact(v) => (v == *their, v),
        };
        if !equal {
            failures.push(format!("{key}: ours {shown}, LoadGen {their}"));
        }
    }
}

fn index_list(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

/// Our phases for a run: (phase, loaded set, schedule), in LoadGen's order.
fn our_phases(
    e: &EffectiveSettings,
    qsl_total: u64,
) -> Result<Vec<(Phase, LoadableSet, Schedule)>, String> {
    let mut seq = SequenceGen::new();
    let mut phases = Vec::new();
    let accuracy = matches!(e.mode, TestMode::SubmissionRun | TestMode::AccuracyOnly);
    let performance = matches!(e.mode, TestMode::SubmissionRun | TestMode::PerformanceOnly);
    if accuracy {
        for set in accuracy_sets(e, qsl_total) {
            let s =
                generate_queries(e, Phase::Accuracy, &set, &mut seq).map_err(|x| x.to_string())?;
            phases.push((Phase::Accuracy, set, s));
        }
    }
    if performance {
        let set = performance_set(e, qsl_total).map_err(|x| x.to_string())?;
        let s =
            generate_queries(e, Phase::Performance, &set, &mut seq).map_err(|x| x.to_string())?;
        phases.push((Phase::Performance, set, s));
    }
    Ok(phases)
}

/// Compares one run; returns the differences.
fn check_run(case: &Value, ours: &Configured, result: &Value) -> Vec<String> {
    let mut failures = Vec::new();
    let mut requested = ours.settings.clone();
    if let Some(audit) = case["audit_config"].as_str() {
        let scenario = requested.scenario.as_str();
        let mut loader = ConfigLoader::new();
        if let Err(e) =
            loader.audit_config_text(&mut requested, "audit.config", audit, "*", scenario)
        {
            failures.push(format!("audit.config: {e}"));
        }
    }
    apply_test05(&mut requested);
    if let Some(mode) = case["expect_mode"].as_str() {
        let mode: TestMode = mode.parse().unwrap();
        if requested.mode != mode {
            failures.push(format!(
                "case expects mode {mode}, configured {}",
                requested.mode
            ));
        }
    }
    let [total, perf] = [
        case["qsl"][0].as_u64().unwrap(),
        case["qsl"][1].as_u64().unwrap(),
    ];
    let e = match EffectiveSettings::new(&requested, perf, total) {
        Ok((e, _)) => e,
        Err(err) => {
            failures.push(format!("effective settings: {err}"));
            return failures;
        }
    };
    check_effective(&e, &result["effective"], &mut failures);
    if e.mode == TestMode::FindPeakPerformance {
        check_find_peak(case, &e, total, result, &mut failures);
        return failures;
    }

    let phases = match our_phases(&e, total) {
        Ok(p) => p,
        Err(err) => {
            failures.push(format!("generation failed: {err}"));
            return failures;
        }
    };
    let generated: Vec<Value> = phases
        .iter()
        .map(|(_, _, s)| {
            json!([
                s.generated_query_count(),
                s.generated_samples_per_query(),
                s.generated_query_duration()
            ])
        })
        .collect();
    if generated != *result["generated"].as_array().unwrap() {
        failures.push(format!(
            "generated (count, samples per query, duration): ours {generated:?}, LoadGen {}",
            result["generated"]
        ));
    }

    // Split the probe's events into phases: load, queries, unload.
    let mut segments: Vec<(Vec<u64>, Vec<Vec<u64>>)> = Vec::new();
    for ev in result["events"].as_array().unwrap() {
        match (ev[0].as_str().unwrap(), segments.last_mut()) {
            ("load", _) => segments.push((index_list(&ev[1]), Vec::new())),
            ("query", Some(seg)) => seg.1.push(index_list(&ev[1])),
            ("unload", _) => {}
            (other, _) => failures.push(format!("unexpected event {other}")),
        }
    }
    if segments.len() != phases.len() {
        failures.push(format!(
            "LoadGen loaded {} sets, we have {} phases",
            segments.len(),
            phases.len()
        ));
        return failures;
    }
    let mut expected_log: Vec<(u64, u64)> = Vec::new();
    for (i, ((loaded, issued), (phase, set, schedule))) in segments.iter().zip(&phases).enumerate()
    {
        let ours_loaded: Vec<u64> = set.samples.iter().map(|&x| x as u64).collect();
        if *loaded != ours_loaded {
            failures.push(format!(
                "phase {i}: loaded set: ours {ours_loaded:?}, LoadGen {loaded:?}"
            ));
            continue;
        }
        // Every query of accuracy phases and of Server is issued; the other
        // scenarios stop once the minimum count and duration are met.
        let all_issued = *phase == Phase::Accuracy || e.scenario == Scenario::Server;
        if issued.len() > schedule.len()
            || (all_issued && issued.len() != schedule.len())
            || issued.is_empty()
        {
            failures.push(format!(
                "phase {i}: LoadGen issued {} queries, we generated {}",
                issued.len(),
                schedule.len()
            ));
            continue;
        }
        for (q, their) in issued.iter().enumerate() {
            let query = schedule.query(q);
            let our: Vec<u64> = query.samples.iter().map(|&x| u64::from(x)).collect();
            if our != *their {
                failures.push(format!(
                    "phase {i} query {q}: ours {our:?}, LoadGen {their:?}"
                ));
                break;
            }
            for (k, &idx) in query.samples.iter().enumerate() {
                let seq = query.first_sample_sequence_id + k as u64;
                if schedule.is_accuracy_logged(seq) {
                    expected_log.push((seq, u64::from(idx)));
                }
            }
        }
    }
    let mut logged: Vec<(u64, u64)> = result["accuracy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x[0].as_u64().unwrap(), x[1].as_u64().unwrap()))
        .collect();
    logged.sort_unstable();
    expected_log.sort_unstable();
    if logged != expected_log {
        failures.push(format!(
            "accuracy log: ours {} entries {:?}..., LoadGen {} entries {:?}...",
            expected_log.len(),
            &expected_log[..expected_log.len().min(8)],
            logged.len(),
            &logged[..logged.len().min(8)]
        ));
    }
    failures
}

/// FindPeakPerformance: the probe's SUT fails a run exactly when it has more
/// than `fail_above_queries` queries, so our search over our own schedules
/// must test the same QPS values, log the same messages and issue the same
/// queries.
fn check_find_peak(
    case: &Value,
    e: &EffectiveSettings,
    qsl_total: u64,
    result: &Value,
    failures: &mut Vec<String>,
) {
    let limit = case["find_peak"]["fail_above_queries"].as_u64().unwrap() as usize;
    let set = performance_set(e, qsl_total).unwrap();
    let mut seq = SequenceGen::new();
    let mut schedules: Vec<Schedule> = Vec::new();
    let outcome = find_peak(
        e.target_qps,
        FindPeakSettings::from_settings(&e.requested),
        |qps| -> Result<(bool, f64), loadgen::schedule::ScheduleError> {
            let run = EffectiveSettings {
                target_qps: qps,
                ..e.clone()
            };
            let schedule = generate_queries(&run, Phase::Performance, &set, &mut seq)?;
            let passed = schedule.len() <= limit;
            schedules.push(schedule);
            Ok((passed, qps))
        },
    )
    .unwrap();
    let messages: Vec<String> = result["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    if outcome.loadgen_messages() != messages {
        failures.push(format!(
            "find-peak messages:\nours    {:?}\nLoadGen {messages:?}",
            outcome.loadgen_messages()
        ));
    }
    let generated: Vec<Value> = schedules
        .iter()
        .map(|s| {
            json!([
                s.generated_query_count(),
                s.generated_samples_per_query(),
                s.generated_query_duration()
            ])
        })
        .collect();
    if generated != *result["generated"].as_array().unwrap() {
        failures.push(format!(
            "find-peak generated: ours {generated:?}, LoadGen {}",
            result["generated"]
        ));
    }
    // Issued queries, run by run (each run ends with its FlushQueries).
    let mut runs: Vec<Vec<Vec<u64>>> = vec![Vec::new()];
    let ours_loaded: Vec<u64> = set.samples.iter().map(|&x| x as u64).collect();
    for ev in result["events"].as_array().unwrap() {
        match ev[0].as_str().unwrap() {
            "query" => runs.last_mut().unwrap().push(index_list(&ev[1])),
            "flush" => runs.push(Vec::new()),
            "load" if index_list(&ev[1]) != ours_loaded => {
                failures.push("find-peak loaded set differs".into());
            }
            _ => {}
        }
    }
    runs.pop();
    if runs.len() != schedules.len() {
        failures.push(format!(
            "find-peak: LoadGen ran {} times, we {}",
            runs.len(),
            schedules.len()
        ));
        return;
    }
    for (r, (issued, schedule)) in runs.iter().zip(&schedules).enumerate() {
        let ours: Vec<Vec<u64>> = schedule
            .iter()
            .map(|q| q.samples.iter().map(|&x| u64::from(x)).collect())
            .collect();
        if *issued != ours {
            failures.push(format!("find-peak run {r}: issued queries differ"));
        }
    }
}

fn run_probe(python: &str, cases: &[Value]) -> Vec<Value> {
    let probe =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/differential/loadgen_probe.py");
    let mut child = Command::new(python)
        .arg(&probe)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the LoadGen probe");
    let input = serde_json::to_vec(cases).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Write from another thread: the probe only answers after reading all.
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(output.status.success(), "probe failed: {}", output.status);
    serde_json::from_slice(&output.stdout).expect("probe output is JSON")
}

/// Compares the wheel's results with ours, case by case; returns the number
/// of runs compared and every difference found.
fn compare(cases: &[Value], results: &[Value]) -> (usize, Vec<String>) {
    assert_eq!(results.len(), cases.len());
    let mut failures = Vec::new();
    let mut runs = 0;
    for (case, result) in cases.iter().zip(results) {
        let name = case["name"].as_str().unwrap();
        let mut case_failures = Vec::new();
        if let Some(err) = result.get("error") {
            failures.push(format!("{name}: probe error: {err}"));
            continue;
        }
        let ours = configure(case);
        let rcs: Vec<i64> = result["rc"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect();
        if rcs != ours.rcs {
            case_failures.push(format!("FromConfig returned {rcs:?}, ours {:?}", ours.rcs));
        }
        check_settings(&ours.settings, &result["settings"], &mut case_failures);
        let their_diags: Vec<String> = result["errors"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e[0] == "error_invalid_config")
            .map(|e| e[1].as_str().unwrap().to_owned())
            .collect();
        let mut our_diags = ours.loader.diagnostics().to_vec();
        if case["run"].as_bool() != Some(false) {
            if let Some(audit) = case["audit_config"].as_str() {
                let mut s = ours.settings.clone();
                let mut l = ConfigLoader::new();
                let scenario = s.scenario.as_str();
                let _ = l.audit_config_text(&mut s, "audit.config", audit, "*", scenario);
                our_diags.extend(l.diagnostics().iter().cloned());
            }
            runs += 1;
            case_failures.extend(check_run(case, &ours, result));
        }
        let (ours_n, theirs_n) = (
            normalize_path_messages(our_diags),
            normalize_path_messages(their_diags),
        );
        if ours_n != theirs_n {
            case_failures.push(format!(
                "config errors: ours {ours_n:?}, LoadGen {theirs_n:?}"
            ));
        }
        failures.extend(case_failures.into_iter().map(|f| format!("{name}: {f}")));
    }
    (runs, failures)
}

fn all_cases() -> Vec<Value> {
    let mut cases = direct_cases();
    cases.extend(config_run_cases());
    cases.extend(config_only_cases());
    cases
}

#[test]
fn identical_to_the_loadgen_wheel() {
    let Ok(python) = std::env::var("LOADGEN_PYTHON") else {
        println!(
            "skipping identical_to_the_loadgen_wheel: set LOADGEN_PYTHON (scripts/peers/loadgen.sh)"
        );
        return;
    };
    let cases = all_cases();
    let results = run_probe(&python, &cases);
    let (runs, failures) = compare(&cases, &results);
    println!(
        "compared {} cases ({runs} runs) with the LoadGen wheel: {} failures",
        cases.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Cases whose wheel output is recorded in `fixtures/loadgen_wheel_golden.json`,
/// so that exactness is checked even where the wheel is not installed.
const GOLDEN: &[&str] = &[
    "direct SingleStream PerformanceOnly equal_issue=false qsl=[100, 20]",
    "direct SingleStream AccuracyOnly equal_issue=true qsl=[10, 4]",
    "direct MultiStream SubmissionRun equal_issue=false qsl=[37, 37]",
    "direct MultiStream spq=16 PerformanceOnly qsl=[30, 5]",
    "direct Server SubmissionRun equal_issue=true qsl=[5, 50]",
    "direct Server accuracy_log_probability",
    "direct Server accuracy_log_sampling_target",
    "direct Server issue_same",
    "direct Server equal issue growth",
    "direct Server find-peak base=300 decimals=1 step=0.5",
    "direct Offline SubmissionRun equal_issue=true qsl=[37, 37]",
    "direct Offline issue_unique",
    "config llama3_1-8b Server PerformanceOnly",
    "config llama3_1-8b Offline AccuracyOnly",
    "config llama2-70b-interactive Server PerformanceOnly",
    "value token \"0x1p3\"",
    "value token \"08\"",
    "value token \"1.5e3\"",
    "grammar trailing comment (Server)",
    "grammar glued comment word (Server)",
    "grammar no spaces (Server)",
    "precedence 0110 resnet50 Server",
    "mlperf.conf llama3_1-8b-interactive Server",
    "multiple conf files",
    "missing user.conf, then another",
];

fn golden_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/loadgen_wheel_golden.json")
}

#[test]
fn identical_to_recorded_loadgen_output() {
    let text = std::fs::read_to_string(golden_path()).unwrap();
    let golden: Value = serde_json::from_str(&text).unwrap();
    let (cases, results) = (
        golden["cases"].as_array().unwrap(),
        golden["results"].as_array().unwrap(),
    );
    assert_eq!(cases.len(), GOLDEN.len());
    let (runs, failures) = compare(cases, results);
    assert!(runs >= 10);
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Re-records the golden fixture from the wheel:
/// `cargo test -p loadgen --test differential -- --ignored record_golden`
/// with `LOADGEN_PYTHON` set.
#[test]
#[ignore = "rewrites tests/fixtures/loadgen_wheel_golden.json from the LoadGen wheel"]
fn record_golden() {
    let python = std::env::var("LOADGEN_PYTHON").expect("set LOADGEN_PYTHON");
    let all = all_cases();
    let cases: Vec<Value> = GOLDEN
        .iter()
        .map(|name| {
            all.iter()
                .find(|c| c["name"] == *name)
                .unwrap_or_else(|| panic!("no case named {name}"))
                .clone()
        })
        .collect();
    let results = run_probe(&python, &cases);
    let text = serde_json::to_string(&json!({
        "source": "mlcommons-loadgen 6.0.17 wheel via tests/differential/loadgen_probe.py",
        "cases": cases,
        "results": results,
    }))
    .unwrap();
    std::fs::write(golden_path(), text + "\n").unwrap();
}
