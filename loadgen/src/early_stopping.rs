//! LoadGen's early-stopping maths (`loadgen/early_stopping.cc`), ported
//! operation for operation.
//!
//! Early stopping asks: given `t` queries over the latency bound among
//! `h + t`, how large must `h` be for us to be confident (`c`, 0.99) that the
//! true over-latency probability is below `1 - p`? LoadGen answers with a
//! binary search on the regularized incomplete beta function, started from
//! bounds that a per-finder cache extrapolates. Both the search and the
//! extrapolation are reproduced literally, including the `*` in the upper
//! slope (`(y1 - y0) * (x1 - x0)`, where a `/` was surely meant): the bounds
//! change which `h` the lower-bound search lands on only through the cache,
//! but they change how much work it does, and matching LoadGen bit for bit is
//! the point.
//!
//! `lgamma` comes from the `libm` crate, a port of the same fdlibm code that
//! glibc uses for positive arguments, so intermediate doubles match LoadGen's.

use std::collections::{BTreeMap, HashMap};

/// `lbeta(x, y) = lgamma(x) + lgamma(y) - lgamma(x + y)`.
pub fn lbeta(x: i64, y: i64) -> f64 {
    libm::lgamma(x as f64) + libm::lgamma(y as f64) - libm::lgamma((x + y) as f64)
}

/// The Gaussian hypergeometric function 2F1(1, b; c; x), summed until a term
/// falls to 2^-33 (LoadGen's `hypergeometric_2F1_A1`).
pub fn hypergeometric_2f1_a1(b: i64, c: i64, x: f64) -> f64 {
    let tolerance = 1.0 / (1_i64 << 33) as f64;
    let mut term = 1.0_f64;
    let mut result = 1.0_f64;
    let mut i: i64 = 0;
    while term.abs() > tolerance {
        // C++ evaluates `(b + i) * x / (c + i)` left to right in double.
        term *= (b + i) as f64 * x / (c + i) as f64;
        result += term;
        i += 1;
    }
    result
}

/// The regularized incomplete beta function I_x(a, b) (LoadGen's
/// `beta_regularized`).
pub fn beta_regularized(x: f64, a: i64, b: i64) -> f64 {
    (a as f64 * x.ln() + (b - 1) as f64 * (1.0 - x).ln() - lbeta(a, b)).exp() / a as f64
        * hypergeometric_2f1_a1(1 - b, 1 + a, x / (x - 1.0))
}

/// Probability of `t` or fewer over-latency queries among `h + t` when each
/// is over latency with probability `1 - p + d`.
pub fn odds(h: i64, t: i64, p: f64, d: f64) -> f64 {
    beta_regularized(p - d, h, 1 + t)
}

/// Lower-bound search for the smallest `h` in `[min_h, max_h]` with
/// `odds(h, t, p, d) < 1 - c` (returns `max_h` when none passes).
pub fn find_min_passing(mut min_h: i64, max_h: i64, t: i64, p: f64, d: f64, c: f64) -> i64 {
    let mut count = max_h - min_h;
    while count > 0 {
        let step = count / 2;
        let h = min_h + step;
        if odds(h, t, p, d) < 1.0 - c {
            count = step;
        } else {
            min_h = h + 1;
            count -= step + 1;
        }
    }
    min_h
}

/// LoadGen's `MinPassingQueriesFinder`: the minimum passing `h` for a given
/// `t`, with a cache per `(p, d, c)` whose entries seed the search bounds.
///
/// The cache changes the search bounds, and so (rarely) the answer: use a
/// fresh finder wherever LoadGen constructs one (once per `EarlyStopping`
/// call) to get LoadGen's numbers.
#[derive(Debug, Default, Clone)]
pub struct MinPassingQueriesFinder {
    caches: HashMap<(u64, u64, u64), BTreeMap<i64, i64>>,
}

impl MinPassingQueriesFinder {
    /// An empty finder.
    pub fn new() -> Self {
        MinPassingQueriesFinder::default()
    }

    /// The minimum `h` such that `odds(h, t, p, d) < 1 - c`.
    pub fn find(&mut self, t: i64, p: f64, d: f64, c: f64) -> i64 {
        let cache = self
            .caches
            .entry((p.to_bits(), d.to_bits(), c.to_bits()))
            .or_default();
        if let Some(&h) = cache.get(&t) {
            return h;
        }
        let mut x0: i64 = -1;
        let mut y0: i64 = 0;
        let mut x1: i64 = 0;
        // The double is converted to int64 on initialisation.
        let mut y1: i64 = ((1.0 - c).ln() / (p - d).ln()).ceil() as i64;
        let mut below = cache.range(..t).rev();
        if let Some((&k, &v)) = below.next() {
            x1 = k;
            y1 = v;
            if let Some((&k, &v)) = below.next() {
                x0 = k;
                y0 = v;
            }
        }
        let min_slope = (p - d) / (1.0 - p + d);
        // LoadGen multiplies here; kept on purpose (see the module docs).
        let max_slope = ((y1 - y0) * (x1 - x0)) as f64;
        let min_h = ((t - x1) as f64 * min_slope + y1 as f64) as i64;
        let max_h = ((t - x1) as f64 * max_slope + y1 as f64 + 1.0) as i64;
        let h = find_min_passing(min_h, max_h, t, p, d, c);
        cache.insert(t, h);
        h
    }
}

/// Confidence LoadGen uses for early stopping.
pub const CONFIDENCE: f64 = 0.99;
/// Tolerance LoadGen uses for early stopping.
pub const TOLERANCE: f64 = 0.0;

/// SingleStream/MultiStream early-stopping estimate for `n` queries at
/// percentile `p`: `Ok((t, h_min))` where the estimate is `sorted[n - t]`
/// and `t - 1` queries are discarded, or `Err(h_min)` when fewer than
/// `h_min + 1` queries were processed.
///
/// Uses the given finder, as LoadGen reuses one per `EarlyStopping` call.
pub fn percentile_estimate_rank(
    finder: &mut MinPassingQueriesFinder,
    n: i64,
    p: f64,
) -> Result<(i64, i64), i64> {
    let h_min = finder.find(1, p, TOLERANCE, CONFIDENCE);
    if n < h_min + 1 {
        return Err(h_min);
    }
    let mut t = 1;
    let mut i = 2;
    while i < n + 1 {
        let h = finder.find(i, p, TOLERANCE, CONFIDENCE);
        if n < h + i {
            t = i - 1;
            break;
        }
        i += 1;
    }
    Ok((t, h_min))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_query_counts() {
        // Reference: 64 (p90), 662 (p99), 6636 (p99.9) queries needed.
        for (p, want) in [(0.9, 64), (0.99, 662), (0.999, 6636)] {
            let mut f = MinPassingQueriesFinder::new();
            assert_eq!(f.find(1, p, 0.0, 0.99) + 1, want, "p={p}");
        }
    }

    #[test]
    fn finder_reference_values_at_p99() {
        let mut f = MinPassingQueriesFinder::new();
        let got: Vec<i64> = [0, 1, 2, 10, 100]
            .iter()
            .map(|&t| f.find(t, 0.99, 0.0, 0.99))
            .collect();
        assert_eq!(got, [459, 661, 836, 2000, 12471]);
    }

    #[test]
    fn server_reference_value() {
        let mut f = MinPassingQueriesFinder::new();
        assert_eq!(f.find(1732, 0.99, 0.0, 0.99), 181_350);
    }

    #[test]
    fn single_and_multi_stream_reference_values() {
        let mut f = MinPassingQueriesFinder::new();
        assert_eq!(percentile_estimate_rank(&mut f, 30, 0.9), Err(63));
        let mut f = MinPassingQueriesFinder::new();
        let (t, _) = percentile_estimate_rank(&mut f, 1024, 0.9).unwrap();
        assert_eq!(t - 1, 79);
        let mut f = MinPassingQueriesFinder::new();
        let (t, _) = percentile_estimate_rank(&mut f, 700, 0.99).unwrap();
        assert_eq!(t - 1, 0);
    }
}
