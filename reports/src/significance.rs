//! Is a difference between two runs real? Pure functions over two samples
//! of one quantity (e.g. per-query TTFT in ms), used by `harness compare`
//! and `harness gate`.
//!
//! - [`bootstrap_percentile_diff`]: the difference of a percentile (B − A)
//!   with a percentile-bootstrap confidence interval: both samples are
//!   resampled with replacement `resamples` times from a seeded mt19937, the
//!   percentile of each resample taken (LoadGen's `sorted[floor(N*p)]`), and
//!   the interval is the `(1−level)/2` and `(1+level)/2` quantiles of the
//!   differences. Samples above [`BOOTSTRAP_MAX_N`] are first thinned to an
//!   evenly spaced subsample of the sorted values (which keeps their
//!   distribution) so a million-query run stays fast.
//! - [`mann_whitney`]: the two-sided Mann-Whitney U test (statrs, which
//!   matches scipy), for "do the distributions differ at all".
//! - [`normal_mean`] and [`welch_mean_diff`]: the large-sample intervals the
//!   mean bootstraps converge to (`mean ± z·s/√n`; Welch's interval of a
//!   difference of means), in O(n) instead of O(resamples·n); the service's
//!   rankings use them for large groups.

use loadgen::rng::{Mt19937, uniform_int};
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};
use statrs::stats_tests::Alternative;
use statrs::stats_tests::mannwhitneyu::{MannWhitneyUMethod, mannwhitneyu};

/// Largest sample resampled as is by [`bootstrap_percentile_diff`].
pub const BOOTSTRAP_MAX_N: usize = 20_000;

/// LoadGen's percentile of sorted values: `sorted[floor(N*p)]`.
pub fn percentile_sorted(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    Some(sorted[crate::stats::loadgen_index(sorted.len(), p)])
}

/// A difference with its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DiffEstimate {
    /// Percentile of A.
    pub a: f64,
    /// Percentile of B.
    pub b: f64,
    /// B − A.
    pub diff: f64,
    /// Lower end of the interval of B − A.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
    /// Confidence level of the interval.
    pub level: f64,
}

impl DiffEstimate {
    /// The interval excludes zero: the difference is significant at `level`.
    pub fn significant(&self) -> bool {
        self.lo > 0.0 || self.hi < 0.0
    }
}

fn sorted_thinned(values: &[f64]) -> Vec<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    if sorted.len() <= BOOTSTRAP_MAX_N {
        return sorted;
    }
    let n = sorted.len();
    (0..BOOTSTRAP_MAX_N)
        .map(|i| sorted[i * (n - 1) / (BOOTSTRAP_MAX_N - 1)])
        .collect()
}

/// Draws `values.len()` values with replacement into `scratch`.
fn resample(values: &[f64], rng: &mut Mt19937, scratch: &mut Vec<f64>) {
    scratch.clear();
    let last = values.len() as u64 - 1;
    scratch.extend((0..values.len()).map(|_| values[uniform_int(rng, 0, last) as usize]));
}

fn resampled_percentile(sorted: &[f64], p: f64, rng: &mut Mt19937, scratch: &mut Vec<f64>) -> f64 {
    resample(sorted, rng, scratch);
    let k = crate::stats::loadgen_index(scratch.len(), p);
    let (_, v, _) = scratch.select_nth_unstable_by(k, f64::total_cmp);
    *v
}

/// B − A for percentile `p` (0..1) with a `level` bootstrap interval.
/// `None` when either sample is empty or `resamples` is 0.
pub fn bootstrap_percentile_diff(
    a: &[f64],
    b: &[f64],
    p: f64,
    level: f64,
    resamples: usize,
    seed: u64,
) -> Option<DiffEstimate> {
    let a = sorted_thinned(a);
    let b = sorted_thinned(b);
    let pa = percentile_sorted(&a, p)?;
    let pb = percentile_sorted(&b, p)?;
    if resamples == 0 {
        return None;
    }
    let mut rng = Mt19937::new(seed);
    let mut scratch = Vec::with_capacity(a.len().max(b.len()));
    let mut diffs: Vec<f64> = (0..resamples)
        .map(|_| {
            let ra = resampled_percentile(&a, p, &mut rng, &mut scratch);
            let rb = resampled_percentile(&b, p, &mut rng, &mut scratch);
            rb - ra
        })
        .collect();
    diffs.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    let at = |q: f64| diffs[((q * resamples as f64) as usize).min(resamples - 1)];
    Some(DiffEstimate {
        a: pa,
        b: pb,
        diff: pb - pa,
        lo: at(tail),
        hi: at(1.0 - tail),
        level,
    })
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

fn finite(values: &[f64]) -> Vec<f64> {
    values.iter().copied().filter(|v| v.is_finite()).collect()
}

/// The `(1−level)/2` and `(1+level)/2` quantiles of sorted resampled
/// statistics.
fn interval(mut stats: Vec<f64>, level: f64) -> (f64, f64) {
    stats.sort_by(f64::total_cmp);
    let n = stats.len();
    let tail = (1.0 - level) / 2.0;
    let at = |q: f64| stats[((q * n as f64) as usize).min(n - 1)];
    (at(tail), at(1.0 - tail))
}

/// The mean of `values` with a `level` percentile-bootstrap interval, as
/// `(mean, lo, hi)` (seeded mt19937, as [`bootstrap_percentile_diff`]).
/// `None` when there is no finite value or `resamples` is 0.
pub fn bootstrap_mean(
    values: &[f64],
    level: f64,
    resamples: usize,
    seed: u64,
) -> Option<(f64, f64, f64)> {
    let values = finite(values);
    if values.is_empty() || resamples == 0 {
        return None;
    }
    let mut rng = Mt19937::new(seed);
    let mut scratch = Vec::with_capacity(values.len());
    let means = (0..resamples)
        .map(|_| {
            resample(&values, &mut rng, &mut scratch);
            mean(&scratch)
        })
        .collect();
    let (lo, hi) = interval(means, level);
    Some((mean(&values), lo, hi))
}

/// B − A of the means with a `level` bootstrap interval (both samples
/// resampled, as [`bootstrap_percentile_diff`]); `a` and `b` of the result
/// are the means. `None` when either sample has no finite value or
/// `resamples` is 0.
pub fn bootstrap_mean_diff(
    a: &[f64],
    b: &[f64],
    level: f64,
    resamples: usize,
    seed: u64,
) -> Option<DiffEstimate> {
    let (a, b) = (finite(a), finite(b));
    if a.is_empty() || b.is_empty() || resamples == 0 {
        return None;
    }
    let mut rng = Mt19937::new(seed);
    let mut scratch = Vec::with_capacity(a.len().max(b.len()));
    let diffs = (0..resamples)
        .map(|_| {
            resample(&a, &mut rng, &mut scratch);
            let ma = mean(&scratch);
            resample(&b, &mut rng, &mut scratch);
            mean(&scratch) - ma
        })
        .collect();
    let (lo, hi) = interval(diffs, level);
    let (ma, mb) = (mean(&a), mean(&b));
    Some(DiffEstimate {
        a: ma,
        b: mb,
        diff: mb - ma,
        lo,
        hi,
        level,
    })
}

/// Sample variance (N − 1 denominator) of at least two values.
fn variance(values: &[f64], m: f64) -> f64 {
    values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (values.len() - 1) as f64
}

/// The two-sided normal quantile of `level` (1.96 at 0.95).
fn z_of(level: f64) -> Option<f64> {
    Some(Normal::standard().inverse_cdf((1.0 + level) / 2.0))
        .filter(|z| z.is_finite() && level > 0.0 && level < 1.0)
}

/// What the large-sample intervals need of a sample: its size, mean and
/// sample variance. From the values themselves ([`Moments::of`]) or from
/// sums a database aggregated ([`Moments::from_sums`]), so the service's
/// rankings need not read every value of a large group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moments {
    /// Number of values.
    pub n: usize,
    /// Their mean.
    pub mean: f64,
    /// Their sample variance (N − 1 denominator); NaN below two values.
    pub variance: f64,
}

impl Moments {
    /// The moments of the finite `values` (the mean summed in order, the
    /// variance in a second pass); `None` when there is none.
    pub fn of(values: &[f64]) -> Option<Moments> {
        let values = finite(values);
        if values.is_empty() {
            return None;
        }
        let m = mean(&values);
        let variance = if values.len() < 2 {
            f64::NAN
        } else {
            variance(&values, m)
        };
        Some(Moments {
            n: values.len(),
            mean: m,
            variance,
        })
    }

    /// The moments of `n` values from the sums of their differences from
    /// `shift` (`sum` of `v − shift`, `sum_sq` of `(v − shift)²`). A shift
    /// near the values keeps the variance's subtraction from cancelling
    /// digits; any shift gives the same moments in exact arithmetic.
    /// `None` when `n` is 0 or a figure is not finite.
    pub fn from_sums(n: usize, shift: f64, sum: f64, sum_sq: f64) -> Option<Moments> {
        if n == 0 || !(shift.is_finite() && sum.is_finite() && sum_sq.is_finite()) {
            return None;
        }
        let count = n as f64;
        let variance = if n < 2 {
            f64::NAN
        } else {
            ((sum_sq - sum * sum / count) / (count - 1.0)).max(0.0)
        };
        Some(Moments {
            n,
            mean: shift + sum / count,
            variance,
        })
    }
}

/// The mean of `values` with its normal-approximation interval at `level`,
/// `mean ± z·s/√n`, as `(mean, lo, hi)`: what [`bootstrap_mean`] converges
/// to for large samples. `None` with fewer than two finite values.
pub fn normal_mean(values: &[f64], level: f64) -> Option<(f64, f64, f64)> {
    normal_mean_of(&Moments::of(values)?, level)
}

/// [`normal_mean`] of a sample known by its [`Moments`].
pub fn normal_mean_of(m: &Moments, level: f64) -> Option<(f64, f64, f64)> {
    if m.n < 2 {
        return None;
    }
    let half = z_of(level)? * (m.variance / m.n as f64).sqrt();
    Some((m.mean, m.mean - half, m.mean + half))
}

/// B − A of the means with Welch's interval at `level` (unequal variances,
/// Welch–Satterthwaite degrees of freedom): what [`bootstrap_mean_diff`]
/// converges to for large samples. `None` when a sample has fewer than two
/// finite values.
pub fn welch_mean_diff(a: &[f64], b: &[f64], level: f64) -> Option<DiffEstimate> {
    welch_mean_diff_of(&Moments::of(a)?, &Moments::of(b)?, level)
}

/// [`welch_mean_diff`] of two samples known by their [`Moments`].
pub fn welch_mean_diff_of(a: &Moments, b: &Moments, level: f64) -> Option<DiffEstimate> {
    if a.n < 2 || b.n < 2 {
        return None;
    }
    let (ma, mb) = (a.mean, b.mean);
    let (qa, qb) = (a.variance / a.n as f64, b.variance / b.n as f64);
    let se = (qa + qb).sqrt();
    let df = (qa + qb).powi(2) / (qa.powi(2) / (a.n - 1) as f64 + qb.powi(2) / (b.n - 1) as f64);
    // Past 1e4 degrees of freedom t is the normal (and statrs' t quantile
    // loses accuracy, see `stats::t_quantile_975`); identical samples
    // (se = 0) give df NaN and a zero-width interval.
    let q = if df.is_finite() && df <= 1e4 {
        StudentsT::new(0.0, 1.0, df)
            .ok()?
            .inverse_cdf((1.0 + level) / 2.0)
    } else {
        z_of(level)?
    };
    let diff = mb - ma;
    Some(DiffEstimate {
        a: ma,
        b: mb,
        diff,
        lo: diff - q * se,
        hi: diff + q * se,
        level,
    })
}

/// Two-sided Mann-Whitney U test: `(U, p-value)`, normal approximation
/// with continuity correction (scipy's `method="asymptotic"`); `None` when a
/// sample is empty.
///
/// statrs 0.19.1's exact method (which `Automatic` picks for small samples
/// without ties) returns p = 1 even for fully separated samples, so it is
/// not used; latency samples are large and tied anyway.
pub fn mann_whitney(a: &[f64], b: &[f64]) -> Option<(f64, f64)> {
    mannwhitneyu(
        a,
        b,
        MannWhitneyUMethod::AsymptoticInclContinuityCorrection,
        Alternative::TwoSided,
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On large samples the normal and Welch intervals match the bootstraps
    /// they stand in for (the rankings switch between them by size).
    #[test]
    fn large_samples_normal_and_welch_agree_with_the_bootstrap() {
        let mut rng = Mt19937::new(7);
        // Skewed, like latencies: a sum of uniform draws, squared.
        let mut draw = |base: f64| -> Vec<f64> {
            (0..2000)
                .map(|_| {
                    let u = uniform_int(&mut rng, 0, 1_000_000) as f64 / 1e6;
                    base + 10.0 * u * u
                })
                .collect()
        };
        let (a, b) = (draw(100.0), draw(100.4));
        let (m, lo, hi) = bootstrap_mean(&a, 0.95, 1000, 1).unwrap();
        let (nm, nlo, nhi) = normal_mean(&a, 0.95).unwrap();
        let width = hi - lo;
        assert!((m - nm).abs() < 1e-9);
        assert!((lo - nlo).abs() < 0.1 * width, "{lo} vs {nlo}");
        assert!((hi - nhi).abs() < 0.1 * width, "{hi} vs {nhi}");
        let boot = bootstrap_mean_diff(&a, &b, 0.95, 1000, 1).unwrap();
        let welch = welch_mean_diff(&a, &b, 0.95).unwrap();
        let width = boot.hi - boot.lo;
        assert!((boot.diff - welch.diff).abs() < 1e-9);
        assert!(
            (boot.lo - welch.lo).abs() < 0.1 * width,
            "{boot:?} {welch:?}"
        );
        assert!(
            (boot.hi - welch.hi).abs() < 0.1 * width,
            "{boot:?} {welch:?}"
        );
        assert_eq!(boot.significant(), welch.significant());
    }

    /// Moments from shifted sums are the moments of the values, whatever
    /// the shift, so intervals computed from a database's sums match those
    /// from the values.
    #[test]
    fn moments_from_sums_match_the_moments_of_the_values() {
        let values = [101.5, 99.25, 100.75, 98.0, 102.5];
        let of = Moments::of(&values).unwrap();
        for shift in [0.0, 100.0, 98.0, -1e3] {
            let sum: f64 = values.iter().map(|v| v - shift).sum();
            let sum_sq: f64 = values.iter().map(|v| (v - shift).powi(2)).sum();
            let from = Moments::from_sums(values.len(), shift, sum, sum_sq).unwrap();
            assert_eq!(from.n, of.n);
            assert!((from.mean - of.mean).abs() < 1e-12, "{from:?} {of:?}");
            assert!(
                (from.variance - of.variance).abs() < 1e-9,
                "{from:?} {of:?}"
            );
        }
        // The definitions: mean 100.4, s² with the N − 1 denominator.
        let m = 100.4;
        let s2 = values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / 4.0;
        assert!((of.mean - m).abs() < 1e-12 && (of.variance - s2).abs() < 1e-12);
        assert_eq!(normal_mean(&values, 0.95), normal_mean_of(&of, 0.95));
        assert!(Moments::from_sums(0, 0.0, 0.0, 0.0).is_none());
        assert!(Moments::of(&[f64::NAN]).is_none());
        assert!(normal_mean_of(&Moments::of(&[1.0]).unwrap(), 0.95).is_none());
    }

    #[test]
    fn welch_matches_a_hand_computed_interval() {
        // a: mean 2, s² = 1 (n 3); b: mean 5, s² = 1 (n 3): se = sqrt(2/3),
        // df = 4, t(0.975, 4) = 2.776445.
        let d = welch_mean_diff(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0], 0.95).unwrap();
        let half = 2.776_445_105 * (2.0_f64 / 3.0).sqrt();
        assert!((d.diff - 3.0).abs() < 1e-12);
        assert!((d.lo - (3.0 - half)).abs() < 1e-6 && (d.hi - (3.0 + half)).abs() < 1e-6);
        let (m, lo, hi) = normal_mean(&[1.0, 2.0, 3.0], 0.95).unwrap();
        let half = 1.959_963_985 / 3.0_f64.sqrt();
        assert!((m - 2.0).abs() < 1e-12 && (lo - (2.0 - half)).abs() < 1e-6);
        assert!((hi - (2.0 + half)).abs() < 1e-6);
        assert!(welch_mean_diff(&[1.0], &[1.0, 2.0], 0.95).is_none());
    }

    fn sample(seed: u64, n: usize, shift: f64) -> Vec<f64> {
        let mut rng = Mt19937::new(seed);
        (0..n)
            .map(|_| shift + uniform_int(&mut rng, 0, 1000) as f64 / 10.0)
            .collect()
    }

    #[test]
    fn a_real_shift_is_significant_and_no_shift_is_not() {
        let a = sample(1, 2000, 0.0);
        let shifted = sample(2, 2000, 20.0);
        let same = sample(3, 2000, 0.0);
        let d = bootstrap_percentile_diff(&a, &shifted, 0.99, 0.95, 400, 7).unwrap();
        assert!(d.significant() && d.lo > 10.0 && d.hi < 30.0, "{d:?}");
        let d = bootstrap_percentile_diff(&a, &same, 0.5, 0.95, 400, 7).unwrap();
        assert!(!d.significant(), "{d:?}");
        assert!(d.lo <= d.diff && d.diff <= d.hi, "{d:?}");
    }

    #[test]
    fn the_interval_covers_the_truth_at_about_the_nominal_rate() {
        // Two samples of the same distribution: the true difference is 0, so
        // a 90% interval should exclude it about 10% of the time.
        let trials = 60;
        let excluded = (0..trials)
            .filter(|&t| {
                let a = sample(100 + t, 400, 0.0);
                let b = sample(900 + t, 400, 0.0);
                bootstrap_percentile_diff(&a, &b, 0.5, 0.90, 300, t)
                    .unwrap()
                    .significant()
            })
            .count();
        assert!(
            excluded <= 15,
            "{excluded} of {trials} intervals excluded 0"
        );
    }

    #[test]
    fn same_seed_same_interval() {
        let a = sample(1, 500, 0.0);
        let b = sample(2, 500, 1.0);
        assert_eq!(
            bootstrap_percentile_diff(&a, &b, 0.9, 0.95, 200, 3),
            bootstrap_percentile_diff(&a, &b, 0.9, 0.95, 200, 3)
        );
    }

    #[test]
    fn mann_whitney_matches_scipy_on_a_textbook_case() {
        // scipy.stats.mannwhitneyu([1,2,3,4,5], [6,7,8,9,10],
        // method="asymptotic") -> U=0, p=0.012185780354826866: z = (0 - 12.5
        // + 0.5) / sqrt(5*5*11/12), two-sided normal tail.
        let (u, p) = mann_whitney(&[1.0, 2.0, 3.0, 4.0, 5.0], &[6.0, 7.0, 8.0, 9.0, 10.0]).unwrap();
        assert_eq!(u, 0.0);
        assert!((p - 0.012_185_780_354_826_866).abs() < 1e-12, "{p}");
        assert!(mann_whitney(&[], &[1.0]).is_none());
    }

    #[test]
    fn mean_intervals_cover_the_mean_and_separate_only_real_shifts() {
        let a = sample(1, 200, 0.0);
        let (m, lo, hi) = bootstrap_mean(&a, 0.95, 500, 9).unwrap();
        assert!(lo < m && m < hi, "{lo} {m} {hi}");
        // The mean of uniform 0..100 is 50; the interval is a few units wide.
        assert!(lo > 40.0 && hi < 60.0 && hi - lo < 10.0, "{lo} {hi}");
        let shifted = sample(2, 200, 20.0);
        let d = bootstrap_mean_diff(&a, &shifted, 0.95, 500, 9).unwrap();
        assert!(d.significant() && d.lo > 10.0 && d.hi < 30.0, "{d:?}");
        let same = sample(3, 200, 0.0);
        assert!(
            !bootstrap_mean_diff(&a, &same, 0.95, 500, 9)
                .unwrap()
                .significant()
        );
        // One value each: nothing to say beyond the values.
        let d = bootstrap_mean_diff(&[1.0], &[2.0], 0.95, 100, 9).unwrap();
        assert_eq!((d.lo, d.hi), (1.0, 1.0));
        assert!(bootstrap_mean(&[f64::NAN], 0.95, 100, 1).is_none());
    }

    #[test]
    fn large_samples_are_thinned_evenly() {
        let big: Vec<f64> = (0..100_000).map(f64::from).collect();
        let thin = sorted_thinned(&big);
        assert_eq!(thin.len(), BOOTSTRAP_MAX_N);
        assert_eq!(thin[0], 0.0);
        assert_eq!(*thin.last().unwrap(), 99_999.0);
    }
}
