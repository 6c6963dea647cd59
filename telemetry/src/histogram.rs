//! Classic Prometheus histograms: deltas between scrapes, merging across
//! label sets, and quantiles computed the way PromQL's `histogram_quantile`
//! computes them.
//!
//! # Quantile method
//!
//! [`histogram_quantile`] follows Prometheus' `BucketQuantile`
//! (promql/quantile.go) step by step:
//! 1. buckets are sorted by upper bound; without a `+Inf` bucket the result
//!    is NaN; buckets with the same bound are merged;
//! 2. counts are made monotonic (differences below a relative 1e-12 are
//!    treated as float noise, and any decrease is flattened);
//! 3. with fewer than 2 buckets or no observations the result is NaN;
//! 4. `rank = q * count`; the first bucket whose cumulative count reaches
//!    `rank` holds the quantile, which is interpolated *linearly* between
//!    that bucket's lower bound (the previous bucket's upper bound, or 0 for
//!    the first bucket) and its upper bound;
//! 5. if the rank falls in the `+Inf` bucket, the highest finite bound is
//!    returned; if it falls in a first bucket whose bound is <= 0, that
//!    bound is returned.
//!
//! So a server-side quantile is only as fine as the server's buckets: vLLM's
//! TTFT p99 between the 0.1 s and 0.25 s bounds is a straight-line guess.
//! The harness therefore reports [`quantile_bucket`], the bounds the
//! quantile lies between, and the exact mean from `_sum / _count`, never the
//! interpolated value.

/// Relative difference below which two bucket counts are considered equal
/// (Prometheus' `smallDeltaTolerance`).
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

/// One classic histogram series: cumulative bucket counts, count and sum.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketHistogram {
    /// `(upper bound, cumulative count)`, ascending by bound; the last bound
    /// is `+Inf` when the series is complete.
    pub buckets: Vec<(f64, f64)>,
    /// Observations (`_count`, or the `+Inf` bucket when `_count` is absent).
    pub count: f64,
    /// Sum of observations (`_sum`; 0 when absent).
    pub sum: f64,
}

impl BucketHistogram {
    /// Builds a series from unordered `(le, count)` pairs, as scraped.
    pub fn from_buckets(
        mut buckets: Vec<(f64, f64)>,
        count: Option<f64>,
        sum: Option<f64>,
    ) -> Self {
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let inf_count = buckets
            .last()
            .filter(|(le, _)| *le == f64::INFINITY)
            .map(|&(_, c)| c);
        BucketHistogram {
            count: count.or(inf_count).unwrap_or(0.0),
            sum: sum.unwrap_or(0.0),
            buckets,
        }
    }

    /// The `q` quantile (0..=1), or `None` when PromQL would return NaN
    /// (no observations, no `+Inf` bucket).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let v = histogram_quantile(q, &self.buckets);
        (!v.is_nan()).then_some(v)
    }

    /// The bounds of the bucket holding the `q` quantile
    /// ([`quantile_bucket`]).
    pub fn quantile_bucket(&self, q: f64) -> Option<(f64, f64)> {
        quantile_bucket(q, &self.buckets)
    }

    /// Mean observation, `sum / count`, when there are observations.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }

    /// What was observed between `earlier` and `self`, with Prometheus'
    /// counter-reset rule: if the count or any bucket went down, the series
    /// restarted and everything in `self` is new. The second value says
    /// whether a reset was assumed.
    ///
    /// Only bounds present in both are kept (normally all of them).
    pub fn delta_since(&self, earlier: &BucketHistogram) -> (BucketHistogram, bool) {
        let common = common_bounds(&[self, earlier]);
        let cur = self.restricted_to(&common);
        let prev = earlier.restricted_to(&common);
        let reset = cur.count < prev.count
            || cur
                .buckets
                .iter()
                .zip(&prev.buckets)
                .any(|(c, p)| c.1 < p.1);
        if reset {
            return (cur, true);
        }
        let buckets = cur
            .buckets
            .iter()
            .zip(&prev.buckets)
            .map(|(c, p)| (c.0, c.1 - p.1))
            .collect();
        (
            BucketHistogram {
                buckets,
                count: cur.count - prev.count,
                sum: cur.sum - prev.sum,
            },
            false,
        )
    }

    /// Sums series that may have different bucket layouts: only the bounds
    /// every series has are kept, which is exact for each of them (a
    /// cumulative count at a shared bound does not depend on the others).
    /// `None` for an empty list.
    pub fn merge<'h>(
        series: impl IntoIterator<Item = &'h BucketHistogram>,
    ) -> Option<BucketHistogram> {
        let series: Vec<&BucketHistogram> = series.into_iter().collect();
        let first = series.first()?;
        let common = common_bounds(&series);
        let mut out = first.restricted_to(&common);
        for s in &series[1..] {
            let s = s.restricted_to(&common);
            for (acc, add) in out.buckets.iter_mut().zip(&s.buckets) {
                acc.1 += add.1;
            }
            out.count += s.count;
            out.sum += s.sum;
        }
        Some(out)
    }

    fn restricted_to(&self, bounds: &[f64]) -> BucketHistogram {
        if self.buckets.len() == bounds.len() {
            return self.clone();
        }
        BucketHistogram {
            buckets: self
                .buckets
                .iter()
                .filter(|(le, _)| bounds.binary_search_by(|b| b.total_cmp(le)).is_ok())
                .copied()
                .collect(),
            count: self.count,
            sum: self.sum,
        }
    }
}

/// Bounds present in every series, ascending.
fn common_bounds(series: &[&BucketHistogram]) -> Vec<f64> {
    let Some(first) = series.first() else {
        return Vec::new();
    };
    let mut bounds: Vec<f64> = first.buckets.iter().map(|b| b.0).collect();
    for s in &series[1..] {
        if s.buckets.len() == bounds.len() && s.buckets.iter().zip(&bounds).all(|(b, x)| b.0 == *x)
        {
            continue;
        }
        bounds.retain(|x| s.buckets.iter().any(|b| b.0 == *x));
    }
    bounds
}

/// Buckets as PromQL's `BucketQuantile` prepares them: sorted by bound,
/// equal bounds merged, counts made monotonic. `None` where it returns NaN:
/// no `+Inf` bucket, fewer than 2 buckets, or no observations.
fn prepared(buckets: &[(f64, f64)]) -> Option<Vec<(f64, f64)>> {
    let mut b: Vec<(f64, f64)> = buckets.to_vec();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    if b.last().is_none_or(|last| last.0 != f64::INFINITY) {
        return None;
    }
    b.dedup_by(|later, kept| {
        if later.0 == kept.0 {
            kept.1 += later.1;
            true
        } else {
            false
        }
    });
    ensure_monotonic(&mut b);
    if b.len() < 2 || b[b.len() - 1].1 == 0.0 {
        return None;
    }
    Some(b)
}

/// Index of the first bucket (the `+Inf` one included) whose cumulative
/// count reaches `rank`.
fn rank_bucket(b: &[(f64, f64)], rank: f64) -> usize {
    b[..b.len() - 1].partition_point(|x| x.1 < rank)
}

/// PromQL's `histogram_quantile(q, ...)` over `(upper bound, cumulative
/// count)` pairs in any order. See the module documentation for the method.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    let Some(b) = prepared(buckets) else {
        return f64::NAN;
    };
    let mut rank = q * b[b.len() - 1].1;
    let idx = rank_bucket(&b, rank);
    if idx == b.len() - 1 {
        return b[b.len() - 2].0;
    }
    if idx == 0 && b[0].0 <= 0.0 {
        return b[0].0;
    }
    let bucket_end = b[idx].0;
    let mut bucket_start = 0.0;
    let mut count = b[idx].1;
    if idx > 0 {
        bucket_start = b[idx - 1].0;
        count -= b[idx - 1].1;
        rank -= b[idx - 1].1;
    }
    bucket_start + (bucket_end - bucket_start) * (rank / count)
}

/// What the buckets can say about the `q` quantile (0..=1) without
/// guessing: it lies in `(lower, upper]`, the bounds of the bucket that
/// holds the same rank [`histogram_quantile`] looks for. `upper` is `+Inf`
/// when the rank is past the highest finite bound; `lower` is 0 for a
/// first bucket with a positive bound (latencies are not negative, as
/// PromQL also assumes) and `-Inf` otherwise. `None` where
/// [`histogram_quantile`] is NaN or `q` is outside 0..=1.
///
/// The interpolated value can contradict the data: with vLLM's queue-time
/// buckets (first bound 0.3 s) a median of a few ms interpolates to 0.15 s,
/// while the bucket says only "at most 0.3 s".
pub fn quantile_bucket(q: f64, buckets: &[(f64, f64)]) -> Option<(f64, f64)> {
    if !(0.0..=1.0).contains(&q) {
        return None;
    }
    let b = prepared(buckets)?;
    let idx = rank_bucket(&b, q * b[b.len() - 1].1);
    let upper = b[idx].0;
    let lower = match idx {
        0 if upper > 0.0 => 0.0,
        0 => f64::NEG_INFINITY,
        i => b[i - 1].0,
    };
    Some((lower, upper))
}

/// Prometheus' `ensureMonotonicAndIgnoreSmallDeltas`.
fn ensure_monotonic(b: &mut [(f64, f64)]) {
    let Some(first) = b.first() else {
        return;
    };
    let mut prev = first.1;
    for bucket in b.iter_mut().skip(1) {
        let cur = bucket.1;
        if cur == prev {
            continue;
        }
        if almost_equal(prev, cur, SMALL_DELTA_TOLERANCE) || cur < prev {
            bucket.1 = prev;
            continue;
        }
        prev = cur;
    }
}

/// Prometheus' `almost.Equal`.
fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < f64::MIN_POSITIVE {
        return diff < epsilon * f64::MIN_POSITIVE;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

#[cfg(test)]
mod tests {
    use super::*;

    const INF: f64 = f64::INFINITY;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    /// The worked example from the Prometheus documentation style: buckets
    /// 0.05, 0.1, 0.2, 0.5, 1, +Inf with counts 24054, 33444, 100392,
    /// 129389, 133988, 144320.
    fn docs_example() -> Vec<(f64, f64)> {
        vec![
            (0.05, 24054.0),
            (0.1, 33444.0),
            (0.2, 100392.0),
            (0.5, 129389.0),
            (1.0, 133988.0),
            (INF, 144320.0),
        ]
    }

    #[test]
    fn quantiles_match_hand_computation() {
        let b = docs_example();
        // p50: rank 72160 in (0.1, 0.2]: 0.1 + 0.1 * (72160 - 33444) / 66948.
        let p50 = 0.1 + 0.1 * (72160.0 - 33444.0) / (100392.0 - 33444.0);
        assert!(close(histogram_quantile(0.5, &b), p50));
        // p90: rank 129888 in (0.5, 1]: 0.5 + 0.5 * (129888 - 129389) / 4599.
        let p90 = 0.5 + 0.5 * (129888.0 - 129389.0) / (133988.0 - 129389.0);
        assert!(close(histogram_quantile(0.9, &b), p90));
        // p99: rank 142876.8 lands in +Inf: the highest finite bound.
        assert_eq!(histogram_quantile(0.99, &b), 1.0);
        // p10: rank 14432 in the first bucket, interpolated from 0.
        assert!(close(histogram_quantile(0.1, &b), 0.05 * 14432.0 / 24054.0));
        // Order of input does not matter.
        let mut rev = b.clone();
        rev.reverse();
        assert_eq!(histogram_quantile(0.5, &rev), histogram_quantile(0.5, &b));
    }

    #[test]
    fn special_cases_follow_promql() {
        let b = docs_example();
        assert_eq!(histogram_quantile(-0.1, &b), f64::NEG_INFINITY);
        assert_eq!(histogram_quantile(1.1, &b), INF);
        assert!(histogram_quantile(f64::NAN, &b).is_nan());
        // No +Inf bucket.
        assert!(histogram_quantile(0.5, &b[..5]).is_nan());
        // Only the +Inf bucket.
        assert!(histogram_quantile(0.5, &[(INF, 3.0)]).is_nan());
        // No observations.
        assert!(histogram_quantile(0.5, &[(1.0, 0.0), (INF, 0.0)]).is_nan());
        // First bound <= 0 is returned as is.
        assert_eq!(
            histogram_quantile(0.5, &[(-1.0, 5.0), (0.0, 6.0), (INF, 6.0)]),
            -1.0
        );
        // Non-monotonic counts are flattened: (2, 3) is read as (2, 5).
        let bumpy = [(1.0, 5.0), (2.0, 3.0), (4.0, 10.0), (INF, 10.0)];
        // rank 7.5 in (2, 4] holding 5 from 5: 2 + 2 * 2.5/5 = 3.
        assert!(close(histogram_quantile(0.75, &bumpy), 3.0));
        // Duplicate bounds are summed.
        let dup = [(1.0, 2.0), (1.0, 2.0), (INF, 4.0)];
        assert!(close(histogram_quantile(0.5, &dup), 0.5));
    }

    #[test]
    fn quantile_bucket_reports_only_what_the_buckets_hold() {
        // vLLM's queue-time buckets as a real server exposed them over a
        // window: 20 requests, all in the first bucket, 3.5 ms on average.
        let text = "\
vllm:request_queue_time_seconds_bucket{le=\"0.3\"} 20
vllm:request_queue_time_seconds_bucket{le=\"0.5\"} 20
vllm:request_queue_time_seconds_bucket{le=\"0.8\"} 20
vllm:request_queue_time_seconds_bucket{le=\"1.0\"} 20
vllm:request_queue_time_seconds_bucket{le=\"+Inf\"} 20
vllm:request_queue_time_seconds_sum 0.07
vllm:request_queue_time_seconds_count 20
";
        let expo = crate::prom_parse::Exposition::parse(text);
        let buckets: Vec<(f64, f64)> = expo
            .samples_named("vllm:request_queue_time_seconds_bucket")
            .map(|s| {
                let le = s.label("le").unwrap();
                let le = if le == "+Inf" {
                    INF
                } else {
                    le.parse().unwrap()
                };
                (le, s.value)
            })
            .collect();
        let h = BucketHistogram::from_buckets(buckets, Some(20.0), Some(0.07));
        assert!(close(h.mean().unwrap(), 0.0035));
        // Interpolation claims 0.15 s, 40 times the mean; the bucket says
        // only "at most 0.3 s".
        assert!(close(h.quantile(0.5).unwrap(), 0.15));
        assert_eq!(h.quantile_bucket(0.5), Some((0.0, 0.3)));
        assert_eq!(h.quantile_bucket(0.99), Some((0.0, 0.3)));

        let b = docs_example();
        for q in [0.1, 0.5, 0.9, 0.99] {
            let (lo, hi) = quantile_bucket(q, &b).unwrap();
            let v = histogram_quantile(q, &b);
            assert!(lo <= v && v <= hi, "{q}: {v} outside ({lo}, {hi}]");
        }
        // Past the highest finite bound: only the lower bound is known.
        let tail = [(1.0, 1.0), (2.0, 1.0), (INF, 10.0)];
        assert_eq!(quantile_bucket(0.5, &tail), Some((2.0, INF)));
        // Where PromQL gives NaN, nothing.
        assert_eq!(quantile_bucket(0.5, &[(1.0, 0.0), (INF, 0.0)]), None);
        assert_eq!(quantile_bucket(0.5, &b[..5]), None);
        assert_eq!(quantile_bucket(1.5, &b), None);
    }

    #[test]
    fn deltas_detect_resets_and_merge_keeps_shared_bounds() {
        let a = BucketHistogram::from_buckets(
            vec![(INF, 10.0), (1.0, 4.0), (0.5, 2.0)],
            Some(10.0),
            Some(7.0),
        );
        assert_eq!(a.buckets[0], (0.5, 2.0));
        let b = BucketHistogram::from_buckets(
            vec![(0.5, 3.0), (1.0, 8.0), (INF, 15.0)],
            Some(15.0),
            Some(12.0),
        );
        let (d, reset) = b.delta_since(&a);
        assert!(!reset);
        assert_eq!(d.buckets, vec![(0.5, 1.0), (1.0, 4.0), (INF, 5.0)]);
        assert_eq!((d.count, d.sum), (5.0, 5.0));
        assert_eq!(d.mean(), Some(1.0));
        // The server restarted: counts went down, so all of `restarted` is new.
        let restarted = BucketHistogram::from_buckets(
            vec![(0.5, 1.0), (1.0, 1.0), (INF, 2.0)],
            None,
            Some(0.6),
        );
        let (d, reset) = restarted.delta_since(&b);
        assert!(reset);
        assert_eq!(d, restarted);
        assert_eq!(d.count, 2.0, "count falls back to the +Inf bucket");

        let coarse =
            BucketHistogram::from_buckets(vec![(1.0, 1.0), (INF, 3.0)], Some(3.0), Some(3.0));
        let m = BucketHistogram::merge([&b, &coarse]).unwrap();
        assert_eq!(m.buckets, vec![(1.0, 9.0), (INF, 18.0)]);
        assert_eq!((m.count, m.sum), (18.0, 15.0));
        assert!(BucketHistogram::merge([]).is_none());
        assert_eq!(
            BucketHistogram::from_buckets(vec![], None, None).quantile(0.5),
            None
        );
    }
}
