//! Turning a server's `/metrics` into the normalized view
//! ([`rundir::metrics::names`]) through the mapping table ([`crate::mapping`]),
//! keeping every series as scraped too, and turning two scrapes into
//! per-interval values.
//!
//! A scrape becomes a [`ServerSnapshot`]: every series as scraped, gauges
//! already aggregated over label sets, counters and histograms kept per
//! series (per `engine`, `finished_reason`, ...). Two snapshots give a
//! [`ServerDelta`]: counter increases and histogram observations between
//! them, computed per series with Prometheus' reset rule (a value that went
//! down restarted from zero) and then summed, so one engine restarting does
//! not hide behind another.

use std::collections::BTreeMap;

use rundir::metrics::names;

use crate::histogram::BucketHistogram;
pub use crate::mapping::{
    Aggregate, CounterId, MAPPINGS, Mapping, Read, SeriesFilter, Target, source_names,
};
use crate::prom_parse::{Exposition, Sample};

/// The quantiles reported for every server histogram, with their names.
pub const QUANTILES: [(f64, &str); 3] = [(0.5, "p50"), (0.9, "p90"), (0.99, "p99")];

fn accepts(filter: SeriesFilter, sample: &Sample<'_>) -> bool {
    let failed = matches!(sample.label("finished_reason"), Some("abort" | "error"));
    match filter {
        SeriesFilter::All => true,
        SeriesFilter::Finished => !failed,
        SeriesFilter::Failed => failed,
    }
}

/// One scrape, mapped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerSnapshot {
    /// Every series with a finite value, as scraped, by
    /// [`series_name`] (`family{label="value",...}`).
    pub raw: BTreeMap<String, f64>,
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
        let mut snap = ServerSnapshot {
            raw: expo
                .samples
                .iter()
                .filter(|s| s.value.is_finite())
                .map(|s| (series_name(s), s.value))
                .collect(),
            ..ServerSnapshot::default()
        };
        for mapping in MAPPINGS {
            for source in mapping.sources {
                if snap.read(expo, mapping.target, source.read) {
                    break;
                }
            }
        }
        snap
    }

    /// Fills `target` from `read` if its series are in the scrape; false
    /// when they are not (the next source is tried).
    fn read(&mut self, expo: &Exposition<'_>, target: Target, read: Read) -> bool {
        let finite = |name: &str| -> Vec<f64> {
            expo.samples_named(name)
                .map(|s| s.value)
                .filter(|v| v.is_finite())
                .collect()
        };
        match (target, read) {
            (Target::Gauge(name), Read::Gauge(family, aggregate)) => {
                let values = finite(family);
                if values.is_empty() {
                    return false;
                }
                let total: f64 = values.iter().sum();
                let value = match aggregate {
                    Aggregate::Sum => total,
                    Aggregate::Mean => total / values.len() as f64,
                };
                self.gauges.insert(name, value);
                true
            }
            (Target::Gauge(name), Read::Ratio(numerator, denominator)) => {
                let (num, den) = (finite(numerator), finite(denominator));
                let den: f64 = den.iter().sum();
                if num.is_empty() || den <= 0.0 {
                    return false;
                }
                self.gauges.insert(name, num.iter().sum::<f64>() / den);
                true
            }
            (Target::Counter(id), Read::Counter(families, filter)) => {
                match counter_series(expo, families, filter) {
                    Some(series) => {
                        self.counters.insert(id, series);
                        true
                    }
                    None => false,
                }
            }
            (Target::Histogram(stem), Read::Histogram(family)) => {
                match histogram_series(expo, family) {
                    Some(series) => {
                        self.histograms.insert(stem, series);
                        true
                    }
                    None => false,
                }
            }
            // A source that does not fit its row's kind; the table test
            // rules these out.
            _ => false,
        }
    }

    /// True when nothing in the scrape was recognised by the mapping table
    /// (its series are still kept in [`ServerSnapshot::raw`]).
    pub fn is_empty(&self) -> bool {
        self.gauges.is_empty() && self.counters.is_empty() && self.histograms.is_empty()
    }
}

/// A series' name as scraped: `family{label="value",...}` with the labels
/// in name order and values escaped as in the exposition format, or just
/// the family without labels.
pub fn series_name(s: &Sample<'_>) -> String {
    if s.labels.is_empty() {
        return s.name.to_owned();
    }
    let mut key = String::with_capacity(s.name.len() + 48);
    key.push_str(s.name);
    key.push('{');
    for (i, (k, v)) in s.labels.iter().enumerate() {
        if i > 0 {
            key.push(',');
        }
        key.push_str(k);
        key.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => key.push_str("\\\\"),
                '"' => key.push_str("\\\""),
                '\n' => key.push_str("\\n"),
                c => key.push(c),
            }
        }
        key.push('"');
    }
    key.push('}');
    key
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
            if accepts(filter, s) && s.value.is_finite() {
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
    fn every_series_is_kept_under_its_own_name() {
        let text = "# TYPE x_total counter\nx_total 3\nweird{b=\"q\\\"\",a=\"1\"} 2\n\
                    vllm:num_requests_running 1\nnan_gauge NaN\n";
        let s = ServerSnapshot::from_exposition(&Exposition::parse(text));
        let raw: Vec<(&str, f64)> = s.raw.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            raw,
            [
                ("vllm:num_requests_running", 1.0),
                ("weird{a=\"1\",b=\"q\\\"\"}", 2.0),
                ("x_total", 3.0)
            ]
        );
        assert_eq!(s.gauges[names::REQUESTS_RUNNING], 1.0);
    }

    #[test]
    fn every_source_fits_its_row() {
        for m in MAPPINGS {
            for source in m.sources {
                let fits = matches!(
                    (m.target, source.read),
                    (Target::Gauge(_), Read::Gauge(..) | Read::Ratio(..))
                        | (Target::Counter(_), Read::Counter(..))
                        | (Target::Histogram(_), Read::Histogram(_))
                );
                assert!(fits, "{:?} cannot fill {:?}", source, m.target);
            }
        }
    }
}
