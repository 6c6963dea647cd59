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

/// A histogram with fixed bounds and atomic counts: exact, lock-free, and
/// cumulative forever (what a Prometheus histogram must be).
#[derive(Debug)]
pub(crate) struct FixedHistogram {
    bounds: &'static [f64],
    bounds_ns: Vec<u64>,
    /// Per bucket (not cumulative), the last one for `+Inf`.
    counts: Vec<AtomicU64>,
    sum_ns: AtomicU64,
}

impl FixedHistogram {
    pub(crate) fn new(bounds: &'static [f64]) -> FixedHistogram {
        FixedHistogram {
            bounds,
            // Bounds are short decimal seconds; rounding to whole ns is exact
            // for all of them.
            bounds_ns: bounds.iter().map(|b| (b * 1e9).round() as u64).collect(),
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }
    }

    pub(crate) fn observe_ns(&self, ns: u64) {
        // `le` is inclusive: a value equal to a bound belongs to it.
        let idx = self.bounds_ns.partition_point(|&b| b < ns);
        self.counts[idx].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub(crate) fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    pub(crate) fn write(&self, w: &mut impl Write, name: &str, help: &str) -> io::Result<()> {
        writeln!(w, "# HELP {name} {help}")?;
        writeln!(w, "# TYPE {name} histogram")?;
        let mut cumulative = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            match self.bounds.get(i) {
                Some(b) => writeln!(w, "{name}_bucket{{le=\"{b}\"}} {cumulative}")?,
                None => writeln!(w, "{name}_bucket{{le=\"+Inf\"}} {cumulative}")?,
            }
        }
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        writeln!(w, "{name}_sum {sum}")?;
        writeln!(w, "{name}_count {cumulative}")
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
        h.write(&mut out, "x_seconds", "help").unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("x_seconds_bucket{le=\"0.1\"} 1\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"0.5\"} 2\n"));
        assert!(text.contains("x_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("x_seconds_sum 2.200000001\n"));
        assert!(text.contains("x_seconds_count 3\n"));
    }
}
