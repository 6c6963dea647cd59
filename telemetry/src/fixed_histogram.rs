//! The fixed-bound histograms behind the live view and the harness's own
//! `/metrics` exposition: [`crate::live`] observes into them, and
//! [`crate::prom_endpoint`] writes them out. Kept apart from both so neither
//! of those modules imports the other for them.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};

/// vLLM's TTFT bucket bounds, seconds.
pub const TTFT_BOUNDS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
/// vLLM's inter-token/TPOT bucket bounds, seconds.
pub const TPOT_BOUNDS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];
/// vLLM's request-latency bucket bounds, seconds.
pub const LATENCY_BOUNDS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];
/// Issue-delay bucket bounds, seconds: 10 µs to 1 s.
pub const ISSUE_DELAY_BOUNDS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0,
];

/// vLLM's request prompt/generation token-count bucket bounds (its
/// `build_1_2_5_buckets`), tokens.
pub const TOKEN_BOUNDS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 20000.0,
    50000.0, 100000.0,
];

/// A histogram with fixed bounds and atomic counts: exact, lock-free, and
/// cumulative forever (what a Prometheus histogram must be). Values are
/// whole numbers of a sub-unit (`per_unit` of them make one unit of the
/// bounds: ns for seconds, 1 for token counts), so sums stay exact.
#[derive(Debug)]
pub(crate) struct FixedHistogram {
    bounds: &'static [f64],
    bounds_raw: Vec<u64>,
    per_unit: f64,
    /// Per bucket (not cumulative), the last one for `+Inf`.
    counts: Vec<AtomicU64>,
    sum_raw: AtomicU64,
}

impl FixedHistogram {
    /// Bounds in seconds, values observed in ns.
    pub(crate) fn new(bounds: &'static [f64]) -> FixedHistogram {
        FixedHistogram::with_unit(bounds, 1e9)
    }

    /// Bounds in counts (tokens), values observed as counts.
    pub(crate) fn counts(bounds: &'static [f64]) -> FixedHistogram {
        FixedHistogram::with_unit(bounds, 1.0)
    }

    fn with_unit(bounds: &'static [f64], per_unit: f64) -> FixedHistogram {
        FixedHistogram {
            bounds,
            // Bounds are short decimals; rounding to whole sub-units is
            // exact for all of them.
            bounds_raw: bounds
                .iter()
                .map(|b| (b * per_unit).round() as u64)
                .collect(),
            per_unit,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_raw: AtomicU64::new(0),
        }
    }

    pub(crate) fn observe_ns(&self, ns: u64) {
        self.observe(ns);
    }

    /// One value, in the histogram's sub-unit.
    pub(crate) fn observe(&self, raw: u64) {
        // `le` is inclusive: a value equal to a bound belongs to it.
        let idx = self.bounds_raw.partition_point(|&b| b < raw);
        self.counts[idx].fetch_add(1, Ordering::Relaxed);
        self.sum_raw.fetch_add(raw, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub(crate) fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Writes the samples (no HELP/TYPE lines). `labels` are rendered
    /// `k="v"` pairs joined by commas (empty for none), put before `le`.
    pub(crate) fn write(&self, w: &mut impl Write, name: &str, labels: &str) -> io::Result<()> {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            match self.bounds.get(i) {
                Some(b) => writeln!(w, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}")?,
                None => writeln!(w, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}")?,
            }
        }
        let sum = self.sum_raw.load(Ordering::Relaxed) as f64 / self.per_unit;
        if labels.is_empty() {
            writeln!(w, "{name}_sum {sum}")?;
            writeln!(w, "{name}_count {cumulative}")
        } else {
            writeln!(w, "{name}_sum{{{labels}}} {sum}")?;
            writeln!(w, "{name}_count{{{labels}}} {cumulative}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_inclusive_and_cumulative() {
        let h = FixedHistogram::new(&[0.1, 0.5]);
        h.observe_ns(100_000_000); // exactly 0.1 s: in le=0.1
        h.observe_ns(100_000_001);
        h.observe_ns(2_000_000_000);
        let mut out = Vec::new();
        h.write(&mut out, "x_seconds", "").unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("x_seconds_bucket{le=\"0.1\"} 1\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"0.5\"} 2\n"));
        assert!(text.contains("x_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("x_seconds_sum 2.200000001\n"));
        assert!(text.contains("x_seconds_count 3\n"));
    }

    #[test]
    fn count_histograms_sum_whole_counts_and_take_labels() {
        let h = FixedHistogram::counts(TOKEN_BOUNDS);
        h.observe(2);
        h.observe(3);
        let mut out = Vec::new();
        h.write(&mut out, "x_tokens", "a=\"b\"").unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("x_tokens_bucket{a=\"b\",le=\"2\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("x_tokens_bucket{a=\"b\",le=\"5\"} 2\n"));
        assert!(text.contains("x_tokens_sum{a=\"b\"} 5\n"));
        assert!(text.contains("x_tokens_count{a=\"b\"} 2\n"));
    }
}
