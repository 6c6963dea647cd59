//! Mapping a server's `/metrics` onto the metric vocabulary
//! ([`rundir::metrics::names`]), and turning two scrapes into per-interval
//! values.
//!
//! A scrape becomes a [`ServerSnapshot`]: gauges already aggregated over
//! label sets, counters and histograms kept per series (per `engine`,
//! `finished_reason`, ...). Two snapshots give a [`ServerDelta`]: counter
//! increases and histogram observations between them, computed per series
//! with Prometheus' reset rule (a value that went down restarted from zero)
//! and then summed, so one engine restarting does not hide behind another.
//!
//! Each vocabulary entry lists its source names in order of preference; the
//! first one present in a scrape is used, so a server exposing both a new
//! and a deprecated name is not counted twice. The table is [`MAPPINGS`].

use std::collections::BTreeMap;

use rundir::metrics::names;

use crate::histogram::BucketHistogram;
use crate::prom_parse::{Exposition, Sample};

/// The quantiles reported for every server histogram, with their names.
pub const QUANTILES: [(f64, &str); 3] = [(0.5, "p50"), (0.9, "p90"), (0.99, "p99")];

/// A cumulative server counter, after mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CounterId {
    /// Prompt tokens processed.
    PromptTokens,
    /// Tokens generated.
    GenerationTokens,
    /// Requests finished normally (`stop`, `length`, ...).
    RequestSuccess,
    /// Requests aborted or failed (`finished_reason` `abort` or `error`).
    RequestFailure,
    /// Preemptions.
    Preemptions,
    /// Prompt tokens looked up in the prefix cache.
    PrefixCacheQueries,
    /// Prompt tokens found in the prefix cache.
    PrefixCacheHits,
}

impl CounterId {
    /// Every counter.
    pub const ALL: [CounterId; 7] = [
        CounterId::PromptTokens,
        CounterId::GenerationTokens,
        CounterId::RequestSuccess,
        CounterId::RequestFailure,
        CounterId::Preemptions,
        CounterId::PrefixCacheQueries,
        CounterId::PrefixCacheHits,
    ];

    /// Stable name, used for counts in `server_summary.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            CounterId::PromptTokens => "prompt_tokens",
            CounterId::GenerationTokens => "generation_tokens",
            CounterId::RequestSuccess => "request_success",
            CounterId::RequestFailure => "request_failure",
            CounterId::Preemptions => "preemptions",
            CounterId::PrefixCacheQueries => "prefix_cache_queries",
            CounterId::PrefixCacheHits => "prefix_cache_hits",
        }
    }

    /// The vocabulary name of its per-second rate, if it has one.
    pub fn rate_name(self) -> Option<&'static str> {
        match self {
            CounterId::PromptTokens => Some(names::PROMPT_TOKENS_PER_S),
            CounterId::GenerationTokens => Some(names::GENERATION_TOKENS_PER_S),
            CounterId::RequestSuccess => Some(names::REQUEST_SUCCESS_PER_S),
            CounterId::RequestFailure => Some(names::REQUEST_FAILURE_PER_S),
            CounterId::Preemptions => Some(names::PREEMPTIONS_PER_S),
            CounterId::PrefixCacheQueries | CounterId::PrefixCacheHits => None,
        }
    }
}

/// How a gauge's label sets are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// Added up (request counts).
    Sum,
    /// Averaged (fractions such as KV-cache usage, as vLLM's own logger does
    /// across data-parallel engines).
    Mean,
}

/// Which series of a counter family count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesFilter {
    /// All of them.
    All,
    /// `finished_reason` other than `abort` and `error` (or no such label).
    Finished,
    /// `finished_reason` `abort` or `error`.
    Failed,
}

impl SeriesFilter {
    fn accepts(self, sample: &Sample<'_>) -> bool {
        let failed = matches!(sample.label("finished_reason"), Some("abort" | "error"));
        match self {
            SeriesFilter::All => true,
            SeriesFilter::Finished => !failed,
            SeriesFilter::Failed => failed,
        }
    }
}

/// A vocabulary entry and where it comes from.
#[derive(Debug, Clone, Copy)]
pub enum Mapping {
    /// A gauge, read as is.
    Gauge {
        /// Vocabulary name.
        target: &'static str,
        /// Source names in order of preference.
        sources: &'static [&'static str],
        /// How label sets combine.
        aggregate: Aggregate,
    },
    /// A counter, turned into a rate (and counted in window summaries).
    Counter {
        /// Which counter.
        target: CounterId,
        /// Alternatives in order of preference; each is a list of counter
        /// families that are added together. A family matches `<name>_total`
        /// or, failing that, `<name>` itself.
        sources: &'static [&'static [&'static str]],
        /// Which series count.
        filter: SeriesFilter,
    },
    /// A histogram, turned into per-interval quantiles.
    Histogram {
        /// Vocabulary stem (`ttft` gives `ttft_mean_s`, `ttft_p50_le_s`...).
        target: &'static str,
        /// Source families (`<name>_bucket`, `_sum`, `_count`) in order of
        /// preference.
        sources: &'static [&'static str],
    },
}

/// The mapping table: every source name we understand.
///
/// vLLM v1 names come first, then their deprecated forms (vLLM <= 0.10 and
/// v0), then llama.cpp's. llama.cpp's `prompt_tokens_total` excludes tokens
/// reused from its cache, so its cached count is added back to match vLLM's
/// definition (all prompt tokens of admitted requests).
pub const MAPPINGS: &[Mapping] = &[
    Mapping::Gauge {
        target: names::REQUESTS_RUNNING,
        sources: &["vllm:num_requests_running", "llamacpp:requests_processing"],
        aggregate: Aggregate::Sum,
    },
    Mapping::Gauge {
        target: names::REQUESTS_WAITING,
        sources: &["vllm:num_requests_waiting", "llamacpp:requests_deferred"],
        aggregate: Aggregate::Sum,
    },
    Mapping::Gauge {
        target: names::KV_CACHE_USAGE_FRAC,
        sources: &[
            "vllm:kv_cache_usage_perc",
            "vllm:gpu_cache_usage_perc",
            "llamacpp:kv_cache_usage_ratio",
        ],
        aggregate: Aggregate::Mean,
    },
    Mapping::Counter {
        target: CounterId::PromptTokens,
        sources: &[
            &["vllm:prompt_tokens"],
            &["llamacpp:prompt_tokens", "llamacpp:prompt_tokens_cached"],
        ],
        filter: SeriesFilter::All,
    },
    Mapping::Counter {
        target: CounterId::GenerationTokens,
        sources: &[&["vllm:generation_tokens"], &["llamacpp:tokens_predicted"]],
        filter: SeriesFilter::All,
    },
    Mapping::Counter {
        target: CounterId::RequestSuccess,
        sources: &[&["vllm:request_success"]],
        filter: SeriesFilter::Finished,
    },
    Mapping::Counter {
        target: CounterId::RequestFailure,
        sources: &[&["vllm:request_success"]],
        filter: SeriesFilter::Failed,
    },
    Mapping::Counter {
        target: CounterId::Preemptions,
        sources: &[&["vllm:num_preemptions"]],
        filter: SeriesFilter::All,
    },
    Mapping::Counter {
        target: CounterId::PrefixCacheQueries,
        sources: &[
            &["vllm:prefix_cache_queries"],
            &["vllm:gpu_prefix_cache_queries"],
            &["llamacpp:prompt_tokens", "llamacpp:prompt_tokens_cached"],
        ],
        filter: SeriesFilter::All,
    },
    Mapping::Counter {
        target: CounterId::PrefixCacheHits,
        sources: &[
            &["vllm:prefix_cache_hits"],
            &["vllm:gpu_prefix_cache_hits"],
            &["llamacpp:prompt_tokens_cached"],
        ],
        filter: SeriesFilter::All,
    },
    // vLLM v0 only had a gauge; the counters above win when present.
    Mapping::Gauge {
        target: names::PREFIX_CACHE_HIT_FRAC,
        sources: &["vllm:gpu_prefix_cache_hit_rate"],
        aggregate: Aggregate::Mean,
    },
    Mapping::Histogram {
        target: names::TTFT,
        sources: &["vllm:time_to_first_token_seconds"],
    },
    Mapping::Histogram {
        target: names::ITL,
        sources: &[
            "vllm:inter_token_latency_seconds",
            "vllm:time_per_output_token_seconds",
        ],
    },
    Mapping::Histogram {
        target: names::TPOT,
        sources: &["vllm:request_time_per_output_token_seconds"],
    },
    Mapping::Histogram {
        target: names::E2E,
        sources: &["vllm:e2e_request_latency_seconds"],
    },
    Mapping::Histogram {
        target: names::QUEUE,
        sources: &["vllm:request_queue_time_seconds"],
    },
    Mapping::Histogram {
        target: names::PREFILL,
        sources: &["vllm:request_prefill_time_seconds"],
    },
    Mapping::Histogram {
        target: names::DECODE,
        sources: &["vllm:request_decode_time_seconds"],
    },
];

/// Every source family name in [`MAPPINGS`] (without `_total`/`_bucket`).
pub fn source_names() -> Vec<&'static str> {
    let mut out = Vec::new();
    for m in MAPPINGS {
        match m {
            Mapping::Gauge { sources, .. } | Mapping::Histogram { sources, .. } => {
                out.extend_from_slice(sources);
            }
            Mapping::Counter { sources, .. } => {
                for alt in *sources {
                    out.extend_from_slice(alt);
                }
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// One scrape, mapped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerSnapshot {
    /// Gauges by vocabulary name, aggregated over label sets.
    pub gauges: BTreeMap<&'static str, f64>,
    /// Cumulative counters, per series (`family{labels}`).
    pub counters: BTreeMap<CounterId, BTreeMap<String, f64>>,
    /// Cumulative histograms by vocabulary stem, per series.
    pub histograms: BTreeMap<&'static str, BTreeMap<String, BucketHistogram>>,
}

impl ServerSnapshot {
    /// Maps a parsed scrape.
    pub fn from_exposition(expo: &Exposition<'_>) -> ServerSnapshot {
        let mut snap = ServerSnapshot::default();
        for mapping in MAPPINGS {
            match *mapping {
                Mapping::Gauge {
                    target,
                    sources,
                    aggregate,
                } => {
                    let Some(values) = sources.iter().find_map(|name| {
                        let v: Vec<f64> = expo
                            .samples_named(name)
                            .map(|s| s.value)
                            .filter(|v| v.is_finite())
                            .collect();
                        (!v.is_empty()).then_some(v)
                    }) else {
                        continue;
                    };
                    let total: f64 = values.iter().sum();
                    let value = match aggregate {
                        Aggregate::Sum => total,
                        Aggregate::Mean => total / values.len() as f64,
                    };
                    snap.gauges.insert(target, value);
                }
                Mapping::Counter {
                    target,
                    sources,
                    filter,
                } => {
                    for families in sources {
                        let series = counter_series(expo, families, filter);
                        if let Some(series) = series {
                            snap.counters.insert(target, series);
                            break;
                        }
                    }
                }
                Mapping::Histogram { target, sources } => {
                    if let Some(series) =
                        sources.iter().find_map(|name| histogram_series(expo, name))
                    {
                        snap.histograms.insert(target, series);
                    }
                }
            }
        }
        snap
    }

    /// True when nothing in the scrape was recognised.
    pub fn is_empty(&self) -> bool {
        self.gauges.is_empty() && self.counters.is_empty() && self.histograms.is_empty()
    }
}

/// `Some` when any of the families is present (with `_total` or bare); the
/// filter may still leave the map empty (no aborts yet), which is a real 0.
fn counter_series(
    expo: &Exposition<'_>,
    families: &[&str],
    filter: SeriesFilter,
) -> Option<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    let mut found = false;
    for family in families {
        let total = format!("{family}_total");
        let name = if expo.has(&total) {
            total.as_str()
        } else if expo.has(family) {
            family
        } else {
            continue;
        };
        found = true;
        for s in expo.samples_named(name) {
            if filter.accepts(s) && s.value.is_finite() {
                out.insert(series_key(s.name, s, None), s.value);
            }
        }
    }
    found.then_some(out)
}

fn histogram_series(
    expo: &Exposition<'_>,
    family: &str,
) -> Option<BTreeMap<String, BucketHistogram>> {
    let bucket_name = format!("{family}_bucket");
    if !expo.has(&bucket_name) {
        return None;
    }
    // Per series: buckets, `_count`, `_sum`.
    type Parts = (Vec<(f64, f64)>, Option<f64>, Option<f64>);
    let mut parts: BTreeMap<String, Parts> = BTreeMap::new();
    for s in expo.samples_named(&bucket_name) {
        let Some(le) = s.label("le").and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        parts
            .entry(series_key(family, s, Some("le")))
            .or_default()
            .0
            .push((le, s.value));
    }
    for s in expo.samples_named(&format!("{family}_count")) {
        if let Some(p) = parts.get_mut(&series_key(family, s, None)) {
            p.1 = Some(s.value);
        }
    }
    for s in expo.samples_named(&format!("{family}_sum")) {
        if let Some(p) = parts.get_mut(&series_key(family, s, None)) {
            p.2 = Some(s.value);
        }
    }
    Some(
        parts
            .into_iter()
            .map(|(k, (b, count, sum))| (k, BucketHistogram::from_buckets(b, count, sum)))
            .collect(),
    )
}

fn series_key(family: &str, s: &Sample<'_>, skip: Option<&str>) -> String {
    let mut key = String::with_capacity(family.len() + 64);
    key.push_str(family);
    key.push('{');
    for (k, v) in &s.labels {
        if Some(*k) == skip {
            continue;
        }
        key.push_str(k);
        key.push_str("=\"");
        key.push_str(v);
        key.push_str("\",");
    }
    key.push('}');
    key
}

/// What happened on a server between two scrapes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerDelta {
    /// Seconds between the scrapes.
    pub dt_s: f64,
    /// Counter increases, summed over series.
    pub counters: BTreeMap<CounterId, f64>,
    /// Observations per histogram stem, merged over series.
    pub histograms: BTreeMap<&'static str, BucketHistogram>,
    /// Series that went down and were taken to have restarted.
    pub resets: u32,
}

impl ServerDelta {
    /// Compares two snapshots taken `dt_s` seconds apart. A series present
    /// only in `cur` is new and counts from zero.
    pub fn between(prev: &ServerSnapshot, cur: &ServerSnapshot, dt_s: f64) -> ServerDelta {
        let mut out = ServerDelta {
            dt_s,
            ..ServerDelta::default()
        };
        for (&id, series) in &cur.counters {
            let before = prev.counters.get(&id);
            let mut total = 0.0;
            for (key, &value) in series {
                match before.and_then(|b| b.get(key)) {
                    Some(&old) if value >= old => total += value - old,
                    Some(_) => {
                        out.resets += 1;
                        total += value;
                    }
                    None => total += value,
                }
            }
            out.counters.insert(id, total);
        }
        for (&stem, series) in &cur.histograms {
            let before = prev.histograms.get(stem);
            let deltas: Vec<BucketHistogram> = series
                .iter()
                .map(|(key, h)| match before.and_then(|b| b.get(key)) {
                    Some(old) => {
                        let (d, reset) = h.delta_since(old);
                        out.resets += u32::from(reset);
                        d
                    }
                    None => h.clone(),
                })
                .collect();
            if let Some(merged) = BucketHistogram::merge(&deltas) {
                out.histograms.insert(stem, merged);
            }
        }
        out
    }

    /// Adds another server's delta (for totals over backends). Rates of the
    /// sum are the sums of the rates only if `dt_s` agree; the caller keeps
    /// rates per backend for that reason.
    pub fn absorb(&mut self, other: &ServerDelta) {
        for (&id, &v) in &other.counters {
            *self.counters.entry(id).or_default() += v;
        }
        for (&stem, h) in &other.histograms {
            let merged = match self.histograms.get(stem) {
                Some(mine) => BucketHistogram::merge([mine, h]),
                None => Some(h.clone()),
            };
            if let Some(m) = merged {
                self.histograms.insert(stem, m);
            }
        }
        self.resets += other.resets;
    }

    /// Per-second rates of the counters, by vocabulary name.
    pub fn rates(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        if self.dt_s <= 0.0 {
            return out;
        }
        for (&id, &v) in &self.counters {
            if let Some(name) = id.rate_name() {
                out.insert(name.to_owned(), v / self.dt_s);
            }
        }
        out
    }

    /// Everything derived from the delta that does not depend on time:
    /// prefix-cache hit fraction, and for each histogram with observations
    /// the bucket bounds of its quantiles ([`QUANTILES`]), as
    /// `<stem>_<p>_gt_s` and `<stem>_<p>_le_s`, and its mean, `<stem>_mean_s`.
    pub fn distribution_values(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        let queries = self.counters.get(&CounterId::PrefixCacheQueries).copied();
        let hits = self.counters.get(&CounterId::PrefixCacheHits).copied();
        if let (Some(q), Some(h)) = (queries, hits)
            && q > 0.0
        {
            out.insert(names::PREFIX_CACHE_HIT_FRAC.to_owned(), h / q);
        }
        for (stem, h) in &self.histograms {
            if h.count <= 0.0 {
                continue;
            }
            // Only what the buckets support: the bounds the quantile lies
            // between, never an interpolated value (which can contradict
            // the mean: a median of a few ms interpolates to 0.15 s in a
            // first bucket of (0, 0.3]).
            for (q, label) in QUANTILES {
                if let Some((lower, upper)) = h.quantile_bucket(q) {
                    if lower.is_finite() {
                        out.insert(names::quantile_lower_name(stem, label), lower);
                    }
                    if upper.is_finite() {
                        out.insert(names::quantile_upper_name(stem, label), upper);
                    }
                }
            }
            if let Some(mean) = h.mean() {
                out.insert(names::quantile_name(stem, "mean"), mean);
            }
        }
        out
    }
}

/// The values of one collection interval for one server: gauges from `cur`,
/// and when a previous scrape exists, rates, hit fraction and histogram
/// quantiles over the interval `dt_s`.
pub fn interval_values(
    prev: Option<&ServerSnapshot>,
    cur: &ServerSnapshot,
    dt_s: f64,
) -> BTreeMap<String, f64> {
    let mut out: BTreeMap<String, f64> = cur
        .gauges
        .iter()
        .map(|(k, v)| ((*k).to_owned(), *v))
        .collect();
    if let Some(prev) = prev
        && dt_s > 0.0
    {
        let delta = ServerDelta::between(prev, cur, dt_s);
        out.extend(delta.rates());
        out.extend(delta.distribution_values());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_without_total_suffix_and_unknown_metrics() {
        let a = Exposition::parse("vllm:prompt_tokens{engine=\"0\"} 10\nfoo 1\n");
        let b = Exposition::parse("vllm:prompt_tokens{engine=\"0\"} 30\nfoo 2\n");
        let (sa, sb) = (
            ServerSnapshot::from_exposition(&a),
            ServerSnapshot::from_exposition(&b),
        );
        let v = interval_values(Some(&sa), &sb, 4.0);
        assert_eq!(v.get(names::PROMPT_TOKENS_PER_S), Some(&5.0));
        assert!(ServerSnapshot::from_exposition(&Exposition::parse("foo 1\n")).is_empty());
    }

    #[test]
    fn counter_reset_per_series_is_not_hidden_by_another_series() {
        let a = Exposition::parse(
            "vllm:generation_tokens_total{engine=\"0\"} 100\nvllm:generation_tokens_total{engine=\"1\"} 500\n",
        );
        // Engine 1 restarted and produced 20 tokens; engine 0 produced 50.
        let b = Exposition::parse(
            "vllm:generation_tokens_total{engine=\"0\"} 150\nvllm:generation_tokens_total{engine=\"1\"} 20\n",
        );
        let d = ServerDelta::between(
            &ServerSnapshot::from_exposition(&a),
            &ServerSnapshot::from_exposition(&b),
            1.0,
        );
        assert_eq!(d.counters[&CounterId::GenerationTokens], 70.0);
        assert_eq!(d.resets, 1);
    }

    #[test]
    fn new_names_win_over_deprecated_ones() {
        let text = "vllm:kv_cache_usage_perc 0.5\nvllm:gpu_cache_usage_perc 0.9\n\
                    vllm:inter_token_latency_seconds_bucket{le=\"+Inf\"} 1\n\
                    vllm:time_per_output_token_seconds_bucket{le=\"+Inf\"} 7\n";
        let s = ServerSnapshot::from_exposition(&Exposition::parse(text));
        assert_eq!(s.gauges[names::KV_CACHE_USAGE_FRAC], 0.5);
        let itl = &s.histograms[names::ITL];
        assert_eq!(itl.len(), 1);
        assert!(
            itl.keys()
                .all(|k| k.starts_with("vllm:inter_token_latency_seconds"))
        );
    }

    #[test]
    fn every_source_name_is_listed() {
        let names = source_names();
        assert!(names.contains(&"vllm:gpu_cache_usage_perc"));
        assert!(names.contains(&"llamacpp:tokens_predicted"));
        assert!(names.windows(2).all(|w| w[0] < w[1]));
    }
}
