//! Parsing and mapping against recorded exposition texts: vLLM v1 (two
//! engines), an older vLLM with the deprecated names, a real llama.cpp
//! server, and damaged text. Expected values are worked out by hand in
//! `tests/fixtures/metrics/gen_vllm_fixtures.py` and its README.

// Helpers outside #[test] fns are test code too; clippy only exempts the fns.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common {
    pub mod metrics;
}

use std::collections::BTreeMap;

use common::metrics::{assert_close, fixture};
use rundir::metrics::names;
use telemetry::prom_parse::Exposition;
use telemetry::server::{CounterId, ServerDelta, ServerSnapshot, interval_values};

fn snapshot(text: &str) -> ServerSnapshot {
    let expo = Exposition::parse(text);
    assert!(expo.issues.is_empty(), "{:?}", expo.issues);
    ServerSnapshot::from_exposition(&expo)
}

/// The server's quantile `p` of `stem` is reported as the bucket it lies
/// in, `(lower, upper]`, never as an interpolated value.
#[track_caller]
fn assert_bucket(values: &BTreeMap<String, f64>, stem: &str, p: &str, lower: f64, upper: f64) {
    assert_close(values, &names::quantile_lower_name(stem, p), lower);
    assert_close(values, &names::quantile_upper_name(stem, p), upper);
    assert!(
        !values.contains_key(&names::quantile_name(stem, p)),
        "no interpolated {stem} {p}"
    );
}

#[test]
fn vllm_v1_two_engines_rates_and_quantiles() {
    let a = snapshot(&fixture("vllm_v1_a.txt"));
    let b = snapshot(&fixture("vllm_v1_b.txt"));

    // The first scrape alone: gauges only, summed (or averaged) over engines.
    let first = interval_values(None, &a, 0.0);
    assert_eq!(first.len(), 3, "{first:?}");
    assert_close(&first, names::REQUESTS_RUNNING, 1.0);
    assert_close(&first, names::REQUESTS_WAITING, 0.0);
    assert_close(&first, names::KV_CACHE_USAGE_FRAC, 0.05);

    let v = interval_values(Some(&a), &b, 2.0);
    // Gauges at B: running 3 + 2, waiting 1 + 0 (not the by-reason gauge),
    // KV usage mean of 0.5 and 0.25.
    assert_close(&v, names::REQUESTS_RUNNING, 5.0);
    assert_close(&v, names::REQUESTS_WAITING, 1.0);
    assert_close(&v, names::KV_CACHE_USAGE_FRAC, 0.375);
    // Counters over 2 s.
    assert_close(&v, names::PROMPT_TOKENS_PER_S, 1536.0);
    assert_close(&v, names::GENERATION_TOKENS_PER_S, 384.0);
    assert_close(&v, names::REQUEST_SUCCESS_PER_S, 3.0);
    assert_close(&v, names::REQUEST_FAILURE_PER_S, 0.5);
    assert_close(&v, names::PREEMPTIONS_PER_S, 1.0);
    assert_close(&v, names::PREFIX_CACHE_HIT_FRAC, 1.0 / 3.0);
    // TTFT over the window, both engines merged.
    // The interpolated values these buckets used to give (TTFT p50 0.064,
    // queue p50 0.15 s...) were straight-line guesses; the bucket bounds are
    // what the histogram supports.
    assert_bucket(&v, names::TTFT, "p50", 0.06, 0.08);
    assert_bucket(&v, names::TTFT, "p90", 0.06, 0.08);
    assert_bucket(&v, names::TTFT, "p99", 0.1, 0.25);
    assert_close(&v, &names::quantile_name(names::TTFT, "mean"), 1.28 / 20.0);
    assert_bucket(&v, names::ITL, "p50", 0.01, 0.025);
    assert_bucket(&v, names::ITL, "p90", 0.025, 0.05);
    assert_bucket(&v, names::ITL, "p99", 0.025, 0.05);
    assert_bucket(&v, names::TPOT, "p50", 0.01, 0.025);
    assert_bucket(&v, names::TPOT, "p99", 0.01, 0.025);
    assert_bucket(&v, names::E2E, "p50", 1.0, 1.5);
    assert_bucket(&v, names::E2E, "p90", 1.0, 1.5);
    // Every queue time fell in vLLM's first bucket: at most 0.3 s is all
    // the histogram says (interpolation made it 0.15 s).
    assert_bucket(&v, names::QUEUE, "p50", 0.0, 0.3);
    assert_bucket(&v, names::PREFILL, "p50", 0.0, 0.3);
    assert_bucket(&v, names::DECODE, "p50", 1.0, 1.5);

    // Observation counts per histogram and counter deltas.
    let d = ServerDelta::between(&a, &b, 2.0);
    assert_eq!(d.histograms[names::TTFT].count, 20.0);
    assert_eq!(d.histograms[names::ITL].count, 200.0);
    assert_eq!(d.counters[&CounterId::PrefixCacheQueries], 3072.0);
    assert_eq!(d.resets, 0);
    // Engine label sets are kept apart before summing.
    assert_eq!(b.counters[&CounterId::PromptTokens].len(), 2);
    assert_eq!(b.counters[&CounterId::RequestSuccess].len(), 4);
    assert_eq!(b.counters[&CounterId::RequestFailure].len(), 2);
}

#[test]
fn older_vllm_names_map_to_the_same_vocabulary() {
    let a = snapshot(&fixture("vllm_old_a.txt"));
    let b = snapshot(&fixture("vllm_old_b.txt"));
    let v = interval_values(Some(&a), &b, 2.0);
    assert_close(&v, names::REQUESTS_RUNNING, 4.0);
    assert_close(&v, names::REQUESTS_WAITING, 2.0);
    assert_close(&v, names::KV_CACHE_USAGE_FRAC, 0.8);
    assert_close(&v, names::PROMPT_TOKENS_PER_S, 150.0);
    assert_close(&v, names::GENERATION_TOKENS_PER_S, 450.0);
    assert_close(&v, names::REQUEST_SUCCESS_PER_S, 2.0);
    assert_close(&v, names::REQUEST_FAILURE_PER_S, 0.0);
    assert_close(&v, names::PREEMPTIONS_PER_S, 0.5);
    assert_close(&v, names::PREFIX_CACHE_HIT_FRAC, 0.25);
    assert_bucket(&v, names::TTFT, "p50", 0.25, 0.5);
    // time_per_output_token_seconds stands in for the inter-token latency.
    assert_bucket(&v, names::ITL, "p50", 0.05, 0.075);
    assert_bucket(&v, names::E2E, "p50", 2.5, 5.0);
    assert!(!v.contains_key(&names::quantile_upper_name(names::TPOT, "p50")));
}

#[test]
fn real_llamacpp_scrapes_map_to_the_vocabulary() {
    let idle = snapshot(&fixture("llamacpp_idle.txt"));
    let busy = snapshot(&fixture("llamacpp_busy.txt"));
    let after = snapshot(&fixture("llamacpp_after.txt"));

    let at_idle = interval_values(None, &idle, 0.0);
    assert_close(&at_idle, names::REQUESTS_RUNNING, 0.0);
    // Two slots busy, the third request deferred.
    let v = interval_values(Some(&idle), &busy, 1.0);
    assert_close(&v, names::REQUESTS_RUNNING, 2.0);
    assert_close(&v, names::REQUESTS_WAITING, 1.0);
    assert_close(&v, names::PROMPT_TOKENS_PER_S, 26.0);
    assert_close(&v, names::GENERATION_TOKENS_PER_S, 0.0);
    // Over 5 s: 5 more prompt tokens computed and 8 reused from the cache
    // (13 prompt tokens in all), 180 tokens generated.
    let v = interval_values(Some(&busy), &after, 5.0);
    assert_close(&v, names::REQUESTS_RUNNING, 0.0);
    assert_close(&v, names::PROMPT_TOKENS_PER_S, 13.0 / 5.0);
    assert_close(&v, names::GENERATION_TOKENS_PER_S, 36.0);
    assert_close(&v, names::PREFIX_CACHE_HIT_FRAC, 8.0 / 13.0);
    // llama.cpp has no KV-usage gauge any more, no request counters, no
    // histograms: those keys are absent, not zero.
    assert!(!v.contains_key(names::KV_CACHE_USAGE_FRAC));
    assert!(!v.contains_key(names::REQUEST_SUCCESS_PER_S));
    assert!(!v.keys().any(|k| k.contains("_p50_")));
}

#[test]
fn damaged_scrapes_are_reported_and_the_rest_is_used() {
    let mut text = fixture("vllm_v1_b.txt");
    text.push_str("<html>502 Bad Gateway</html>\n");
    text.push_str("vllm:num_requests_running{engine=\"2\",model_name=\"m\"} twelve\n");
    // A repeated series: the first value (0.5) must win.
    text.push_str(
        "vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"} 0.99\n",
    );
    text.push_str("vllm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"0.5\"\n");
    let expo = Exposition::parse(&text);
    assert_eq!(expo.issues.len(), 4, "{:?}", expo.issues);
    assert!(expo.issues[1].message.contains("invalid value \"twelve\""));
    assert!(
        expo.issues[2]
            .message
            .contains("duplicate series vllm:kv_cache_usage_perc")
    );
    let b = ServerSnapshot::from_exposition(&expo);
    let a = snapshot(&fixture("vllm_v1_a.txt"));
    let v = interval_values(Some(&a), &b, 2.0);
    assert_close(&v, names::KV_CACHE_USAGE_FRAC, 0.375);
    assert_close(&v, names::REQUESTS_RUNNING, 5.0);
    assert_bucket(&v, names::TTFT, "p50", 0.06, 0.08);

    // Text that is not an exposition at all maps to nothing, without panic.
    let junk = Exposition::parse("\u{0}\u{1}binary\u{fffd} junk\n{}}}\n");
    assert!(!junk.issues.is_empty());
    assert!(ServerSnapshot::from_exposition(&junk).is_empty());
}

#[test]
fn a_restarted_server_counts_from_zero() {
    // B then A: every counter and histogram went down, as after a restart;
    // the interval's values are A's totals, not negative rates.
    let a = snapshot(&fixture("vllm_v1_a.txt"));
    let b = snapshot(&fixture("vllm_v1_b.txt"));
    let d = ServerDelta::between(&b, &a, 1.0);
    assert!(d.resets > 0);
    assert_eq!(d.counters[&CounterId::PromptTokens], 1500.0);
    assert_eq!(d.counters[&CounterId::GenerationTokens], 7000.0);
    assert_eq!(d.histograms[names::TTFT].count, 15.0);
    assert!(d.rates().values().all(|v| *v >= 0.0));
}

#[test]
fn llamacpp_kv_cache_comes_from_its_slots() {
    let mut text = fixture("llamacpp_busy.txt");
    text.push_str(
        &telemetry::slots::slots_exposition(&fixture("llamacpp_slots_busy.json")).unwrap(),
    );
    let busy = snapshot(&text);
    // Slot 0: 17 prompt + 6 decoded tokens, slot 1: 16 + 5, of 2 x 1024.
    assert_close(
        &interval_values(None, &busy, 0.0),
        names::KV_CACHE_USAGE_FRAC,
        44.0 / 2048.0,
    );
    let mut text = fixture("llamacpp_idle.txt");
    text.push_str(
        &telemetry::slots::slots_exposition(&fixture("llamacpp_slots_idle.json")).unwrap(),
    );
    assert_close(
        &interval_values(None, &snapshot(&text), 0.0),
        names::KV_CACHE_USAGE_FRAC,
        0.0,
    );
    // Every one of llama.cpp's 15 series is kept as scraped.
    assert_eq!(snapshot(&fixture("llamacpp_busy.txt")).raw.len(), 15);
}

#[test]
fn sglang_scrapes_map_to_the_vocabulary() {
    let a = snapshot(&fixture("sglang_a.txt"));
    let b = snapshot(&fixture("sglang_b.txt"));
    let v = interval_values(Some(&a), &b, 2.0);
    assert_close(&v, names::REQUESTS_RUNNING, 6.0);
    assert_close(&v, names::REQUESTS_WAITING, 3.0);
    assert_close(&v, names::KV_CACHE_USAGE_FRAC, 0.45);
    assert_close(&v, names::PROMPT_TOKENS_PER_S, 1000.0);
    assert_close(&v, names::GENERATION_TOKENS_PER_S, 200.0);
    assert_close(&v, names::REQUEST_SUCCESS_PER_S, 2.0);
    assert_close(&v, names::REQUEST_FAILURE_PER_S, 0.5);
    assert_close(&v, names::PREEMPTIONS_PER_S, 0.5);
    assert_close(&v, names::PREFIX_CACHE_HIT_FRAC, 0.25);
    let q = |stem: &str, p: &str| names::quantile_name(stem, p);
    assert_bucket(&v, names::TTFT, "p50", 0.1, 0.2);
    assert_bucket(&v, names::TTFT, "p90", 0.2, 0.4);
    assert_close(&v, &q(names::TTFT, "mean"), 0.275);
    assert_bucket(&v, names::ITL, "p50", 0.015, 0.02);
    assert_bucket(&v, names::E2E, "p50", 1.0, 2.0);
    assert_close(&v, &q(names::E2E, "mean"), 1.5);
    assert_bucket(&v, names::QUEUE, "p50", 0.1, 0.2);
    // Every series, `_created` ones included, is kept as scraped.
    let text = fixture("sglang_b.txt");
    assert_eq!(b.raw.len(), Exposition::parse(&text).samples.len());
    assert!(
        b.raw
            .contains_key("sglang:token_usage{model_name=\"meta-llama/Llama-3.1-8B-Instruct\"}")
    );
}

#[test]
fn tgi_scrapes_map_to_the_vocabulary() {
    let a = snapshot(&fixture("tgi_a.txt"));
    let b = snapshot(&fixture("tgi_b.txt"));
    let v = interval_values(Some(&a), &b, 2.0);
    assert_close(&v, names::REQUESTS_RUNNING, 5.0);
    assert_close(&v, names::REQUESTS_WAITING, 3.0);
    // Token counters from the _sum of the per-request token histograms.
    assert_close(&v, names::PROMPT_TOKENS_PER_S, 300.0);
    assert_close(&v, names::GENERATION_TOKENS_PER_S, 160.0);
    assert_close(&v, names::REQUEST_SUCCESS_PER_S, 2.0);
    assert_close(&v, names::REQUEST_FAILURE_PER_S, 0.5);
    let q = |stem: &str, p: &str| names::quantile_name(stem, p);
    assert_close(&v, &q(names::E2E, "mean"), 1.0);
    assert_close(&v, &q(names::QUEUE, "mean"), 0.05);
    assert_close(&v, &q(names::TPOT, "mean"), 0.02);
    // The 4 new requests took 1.0 s, inside TGI's bucket (0.748..., 1.122...].
    let (gt, le) = (
        v[&names::quantile_lower_name(names::E2E, "p50")],
        v[&names::quantile_upper_name(names::E2E, "p50")],
    );
    assert!(
        (0.748..0.7482).contains(&gt) && (1.1222..1.1223).contains(&le),
        "({gt}, {le}]"
    );
    // TGI has no KV-cache gauge and no TTFT histogram: absent, not zero.
    assert!(!v.contains_key(names::KV_CACHE_USAGE_FRAC));
    assert!(!v.contains_key(&q(names::TTFT, "mean")));
}
