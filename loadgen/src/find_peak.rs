//! LoadGen's FindPeakPerformance search (Server only), as pure logic over
//! run outcomes.
//!
//! LoadGen (`FindPeakPerformanceMode` in `loadgen.cc`, helpers in
//! `test_settings_internal.h`):
//!
//! 1. runs at the requested `target_qps`; if that run misses its performance
//!    constraints the search stops there (an error is logged);
//! 2. widens: `upper = lower * (1 + server_find_peak_qps_boundary_step_size)`,
//!    run; while the upper bound passes it becomes the lower bound and the
//!    search widens again;
//! 3. bisects `[lower, upper)` with `mid = lower + (upper - lower) / 2` until
//!    `floor(lower * 10^p) + 1 >= floor(upper * 10^p)`, `p` being
//!    `server_find_peak_qps_decimals_of_precision` as a `uint8_t`;
//! 4. reports the last passing lower bound and that run's results.
//!
//! "Passing" is `PerfConstraintsMet` (the latency or TTFT/TPOT bound);
//! minimum duration, query count and early stopping are not consulted. One
//! addition ([`step_passed`]): a run with failed samples, or one that was
//! interrupted, fails its step. LoadGen's SUTs cannot fail a query, and
//! without this a server answering every request with an error "meets" its
//! latency bound (no latencies at all) and the search widens forever.
//! Every run uses the same effective settings but for `target_qps`.
//!
//! [`find_peak`] drives the search with a caller-supplied run function, so
//! the LoadGen run loop and `harness find-peak` share it.

use std::fmt;

/// `MidOfBoundaries`: the QPS halfway between the bounds.
pub fn mid_of_boundaries(lower_qps: f64, upper_qps: f64) -> f64 {
    lower_qps + (upper_qps - lower_qps) / 2.0
}

/// `IsFinished`: the bounds agree to `decimals_of_precision` decimals.
///
/// LoadGen stores the precision in a `uint8_t`, so a negative value wraps
/// (-1 becomes 255); that is reproduced.
pub fn is_finished(lower_qps: f64, upper_qps: f64, decimals_of_precision: i32) -> bool {
    let precision = decimals_of_precision as u8;
    // std::pow(10, precision): the libm pow, like the C++ overload.
    let scale = 10f64.powf(f64::from(precision));
    let l = (lower_qps * scale).floor();
    let u = (upper_qps * scale).floor();
    l + 1.0 >= u
}

/// `WidenPerformanceField`: the next upper bound to try.
pub fn widen(qps: f64, boundary_step_size: f64) -> f64 {
    qps * (1.0 + boundary_step_size)
}

/// Whether a run passes its step of the search: it met its performance
/// constraints, no sample failed and it ran to the end.
pub fn step_passed(perf_constraints_met: bool, failed_samples: u64, interrupted: bool) -> bool {
    perf_constraints_met && failed_samples == 0 && !interrupted
}

/// `ToStringPerformanceField`: `std::to_string(target_qps)` (`%f`).
pub fn qps_field(qps: f64) -> String {
    format!("{qps:.6}")
}

/// The search parameters (from `TestSettings`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FindPeakSettings {
    /// `server_find_peak_qps_decimals_of_precision`.
    pub decimals_of_precision: i32,
    /// `server_find_peak_qps_boundary_step_size`.
    pub boundary_step_size: f64,
    /// Give up after this many runs. LoadGen has no limit (a server that
    /// never fails makes it widen forever); `None` keeps that behaviour.
    pub max_runs: Option<usize>,
}

impl FindPeakSettings {
    /// The parameters of `settings`, with no run limit.
    pub fn from_settings(settings: &crate::settings::TestSettings) -> Self {
        FindPeakSettings {
            decimals_of_precision: settings.server_find_peak_qps_decimals_of_precision,
            boundary_step_size: settings.server_find_peak_qps_boundary_step_size,
            max_runs: None,
        }
    }
}

/// One step of the search, in the order LoadGen logs them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FindPeakStep {
    /// The first run, at the requested QPS.
    Base {
        /// Target QPS of the run.
        qps: f64,
        /// It met its performance constraints.
        passed: bool,
    },
    /// A widening run at `upper`, from the passing `lower`.
    Boundary {
        /// Current lower bound (passed).
        lower: f64,
        /// The QPS run.
        upper: f64,
        /// It met its performance constraints.
        passed: bool,
    },
    /// A bisection run at `mid` between the bounds.
    Mid {
        /// Lower bound (passed).
        lower: f64,
        /// Upper bound (failed).
        upper: f64,
        /// The QPS run.
        mid: f64,
        /// It met its performance constraints.
        passed: bool,
    },
}

impl FindPeakStep {
    /// The QPS this step ran at.
    pub fn qps(&self) -> f64 {
        match *self {
            FindPeakStep::Base { qps, .. } => qps,
            FindPeakStep::Boundary { upper, .. } => upper,
            FindPeakStep::Mid { mid, .. } => mid,
        }
    }

    /// Whether the run met its performance constraints.
    pub fn passed(&self) -> bool {
        match *self {
            FindPeakStep::Base { passed, .. }
            | FindPeakStep::Boundary { passed, .. }
            | FindPeakStep::Mid { passed, .. } => passed,
        }
    }

    /// The `generic_message` LoadGen logs before this step's run.
    pub fn loadgen_message(&self) -> String {
        match *self {
            FindPeakStep::Base { qps, .. } => format!(
                "FindPeakPerformance: Check validity of the base settings field: {}",
                qps_field(qps)
            ),
            FindPeakStep::Boundary { lower, upper, .. } => format!(
                "FindBoundaries: Checking fields [{}, {})",
                qps_field(lower),
                qps_field(upper)
            ),
            FindPeakStep::Mid {
                lower, upper, mid, ..
            } => format!(
                "FindPeakPerformanceBinarySearch: Testing the mid value of bounds [{}, {}): {}",
                qps_field(lower),
                qps_field(upper),
                qps_field(mid)
            ),
        }
    }
}

/// What the search found.
#[derive(Debug, Clone, PartialEq)]
pub struct FindPeakOutcome<R> {
    /// Every run, in order.
    pub steps: Vec<FindPeakStep>,
    /// The bounds found by widening (`Found boundaries: [l, u)`), if the
    /// base run passed.
    pub boundaries: Option<(f64, f64)>,
    /// The peak: the last passing lower bound. `None` when the base run
    /// failed (LoadGen then logs "Initial lower bound does not satisfy
    /// performance constraints" and reports the base run).
    pub peak_qps: Option<f64>,
    /// The results of the run LoadGen reports: the peak's run, or the base
    /// run when it failed.
    pub reported: R,
}

/// Why the search could not finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FindPeakError<E: std::error::Error + 'static> {
    /// The base QPS cannot be widened into a search (zero, negative, not finite).
    #[error("find-peak needs a finite base target_qps above 0, got {0}")]
    InvalidBaseQps(f64),
    /// A step size that does not grow the upper bound (LoadGen would loop forever).
    #[error("server_find_peak_qps_boundary_step_size must be above 0, got {0}")]
    InvalidStepSize(f64),
    /// `max_runs` was reached before the search finished.
    #[error("find-peak stopped after {runs} runs without finishing (bounds [{lower}, {upper}))")]
    RunLimit {
        /// Runs made.
        runs: usize,
        /// Lower bound at the time.
        lower: f64,
        /// Upper bound at the time (infinite while still widening).
        upper: f64,
    },
    /// A run failed outright.
    #[error("find-peak run at {qps} qps failed: {source}")]
    Run {
        /// Target QPS of the run.
        qps: f64,
        /// The run's error.
        #[source]
        source: E,
    },
}

/// Runs LoadGen's FindPeakPerformance search from `base_qps`.
///
/// `run(qps)` performs one performance run at that target QPS and returns
/// whether it met its performance constraints, with whatever result the
/// caller wants reported for it.
pub fn find_peak<R, E>(
    base_qps: f64,
    settings: FindPeakSettings,
    mut run: impl FnMut(f64) -> Result<(bool, R), E>,
) -> Result<FindPeakOutcome<R>, FindPeakError<E>>
where
    E: std::error::Error + 'static,
{
    if base_qps.is_nan() || base_qps <= 0.0 || base_qps.is_infinite() {
        return Err(FindPeakError::InvalidBaseQps(base_qps));
    }
    if settings.boundary_step_size.is_nan() || settings.boundary_step_size <= 0.0 {
        return Err(FindPeakError::InvalidStepSize(settings.boundary_step_size));
    }
    let mut steps = Vec::new();
    let limit = settings.max_runs.unwrap_or(usize::MAX);
    let mut call = |qps: f64, steps: &Vec<FindPeakStep>, lower: f64, upper: f64| {
        if steps.len() >= limit {
            return Err(FindPeakError::RunLimit {
                runs: steps.len(),
                lower,
                upper,
            });
        }
        run(qps).map_err(|source| FindPeakError::Run { qps, source })
    };

    let (passed, base) = call(base_qps, &steps, base_qps, f64::INFINITY)?;
    steps.push(FindPeakStep::Base {
        qps: base_qps,
        passed,
    });
    if !passed {
        return Ok(FindPeakOutcome {
            steps,
            boundaries: None,
            peak_qps: None,
            reported: base,
        });
    }

    // Widen until a run fails.
    let (mut lower, mut lower_result) = (base_qps, base);
    let mut upper = widen(lower, settings.boundary_step_size);
    loop {
        if !upper.is_finite() {
            return Err(FindPeakError::RunLimit {
                runs: steps.len(),
                lower,
                upper,
            });
        }
        let (passed, result) = call(upper, &steps, lower, f64::INFINITY)?;
        steps.push(FindPeakStep::Boundary {
            lower,
            upper,
            passed,
        });
        if !passed {
            break;
        }
        (lower, lower_result) = (upper, result);
        upper = widen(lower, settings.boundary_step_size);
    }
    let boundaries = Some((lower, upper));

    // Bisect.
    while !is_finished(lower, upper, settings.decimals_of_precision) {
        let mid = mid_of_boundaries(lower, upper);
        // Bounds that are adjacent doubles cannot be split; LoadGen would
        // recurse forever here (only reachable with a wrapped precision).
        if mid <= lower || mid >= upper {
            break;
        }
        let (passed, result) = call(mid, &steps, lower, upper)?;
        steps.push(FindPeakStep::Mid {
            lower,
            upper,
            mid,
            passed,
        });
        if passed {
            (lower, lower_result) = (mid, result);
        } else {
            upper = mid;
        }
    }
    Ok(FindPeakOutcome {
        steps,
        boundaries,
        peak_qps: Some(lower),
        reported: lower_result,
    })
}

impl<R> FindPeakOutcome<R> {
    /// The `generic_message` lines LoadGen logs for the search, in order
    /// (its run logs interleave between them).
    pub fn loadgen_messages(&self) -> Vec<String> {
        let mut out = vec!["Starting FindPeakPerformance mode".to_owned()];
        for (i, step) in self.steps.iter().enumerate() {
            if matches!(step, FindPeakStep::Mid { .. })
                && !matches!(self.steps[i - 1], FindPeakStep::Mid { .. })
            {
                out.extend(self.boundaries_message());
            }
            out.push(step.loadgen_message());
        }
        if !self
            .steps
            .iter()
            .any(|s| matches!(s, FindPeakStep::Mid { .. }))
        {
            out.extend(self.boundaries_message());
        }
        if let Some(peak) = self.peak_qps {
            out.push(format!(
                "FindPeakPerformance: Found peak performance field: {}",
                qps_field(peak)
            ));
        }
        out
    }

    fn boundaries_message(&self) -> Option<String> {
        self.boundaries.map(|(l, u)| {
            format!(
                "FindPeakPerformance: Found boundaries: [{}, {})",
                qps_field(l),
                qps_field(u)
            )
        })
    }
}

impl fmt::Display for FindPeakStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.passed() { "passed" } else { "failed" };
        write!(f, "{} qps {verdict}", qps_field(self.qps()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("boom")]
    struct Boom;

    fn settings(decimals: i32, step: f64) -> FindPeakSettings {
        FindPeakSettings {
            decimals_of_precision: decimals,
            boundary_step_size: step,
            max_runs: None,
        }
    }

    /// A server that meets its constraints up to `capacity` qps.
    fn search(base: f64, s: FindPeakSettings, capacity: f64) -> FindPeakOutcome<f64> {
        find_peak(base, s, |qps| Ok::<_, Boom>((qps <= capacity, qps))).unwrap()
    }

    #[test]
    fn failed_samples_or_an_interruption_fail_the_step() {
        assert!(step_passed(true, 0, false));
        assert!(!step_passed(false, 0, false));
        assert!(
            !step_passed(true, 1, false),
            "a failed query fails the step"
        );
        assert!(
            !step_passed(true, 0, true),
            "an interrupted run fails the step"
        );
        // A server failing every query: its steps never pass, so the search
        // stops at the base run instead of widening.
        let out = find_peak(10.0, settings(1, 1.0), |q| {
            Ok::<_, Boom>((step_passed(true, 5, false), q))
        })
        .unwrap();
        assert_eq!(out.steps.len(), 1);
        assert_eq!(out.peak_qps, None);
    }

    #[test]
    fn helpers_follow_loadgen() {
        assert_eq!(mid_of_boundaries(2.0, 4.0), 3.0);
        assert_eq!(widen(10.0, 1.0), 20.0);
        assert_eq!(widen(10.0, 0.5), 15.0);
        // One decimal: 12.3x and 12.4x are adjacent tenths.
        assert!(is_finished(12.34, 12.45, 1));
        assert!(!is_finished(12.34, 12.55, 1));
        assert!(is_finished(12.0, 13.0, 0));
        assert!(!is_finished(12.0, 14.0, 0));
        // -1 wraps to 255 decimals: never finished for distinct bounds.
        assert!(!is_finished(1.0, 1.0 + 1e-12, -1));
        assert_eq!(qps_field(12.5), "12.500000");
        assert_eq!(qps_field(1.0 / 3.0), "0.333333");
        // %f rounds the exact binary value half to even.
        assert_eq!(qps_field(1.0 / 128.0), "0.007812");
    }

    #[test]
    fn widens_then_bisects_to_the_precision() {
        // Capacity 37.3: base 10 passes, 20 passes, 40 fails; bisect [20, 40).
        let out = search(10.0, settings(1, 1.0), 37.3);
        let qps: Vec<f64> = out.steps.iter().map(FindPeakStep::qps).collect();
        assert_eq!(
            qps,
            [
                10.0, 20.0, 40.0, 30.0, 35.0, 37.5, 36.25, 36.875, 37.1875, 37.34375, 37.265625
            ]
        );
        let passed: Vec<bool> = out.steps.iter().map(FindPeakStep::passed).collect();
        assert_eq!(
            passed,
            [
                true, true, false, true, true, false, true, true, true, false, true
            ]
        );
        assert_eq!(out.boundaries, Some((20.0, 40.0)));
        // [37.1875, 37.34375) is not finished (371 + 1 < 373); after 37.265625
        // passes, [37.265625, 37.34375) is (372 + 1 >= 373).
        assert_eq!(out.peak_qps, Some(37.265625));
        assert_eq!(out.reported, 37.265625);
        assert!(out.peak_qps.unwrap() <= 37.3);
        let msgs = out.loadgen_messages();
        assert_eq!(msgs[0], "Starting FindPeakPerformance mode");
        assert_eq!(
            msgs[1],
            "FindPeakPerformance: Check validity of the base settings field: 10.000000"
        );
        assert_eq!(
            msgs[2],
            "FindBoundaries: Checking fields [10.000000, 20.000000)"
        );
        assert_eq!(
            msgs[4],
            "FindPeakPerformance: Found boundaries: [20.000000, 40.000000)"
        );
        assert_eq!(
            msgs[5],
            "FindPeakPerformanceBinarySearch: Testing the mid value of bounds \
             [20.000000, 40.000000): 30.000000"
        );
        assert_eq!(
            msgs.last().unwrap(),
            "FindPeakPerformance: Found peak performance field: 37.265625"
        );
    }

    #[test]
    fn failing_base_stops_the_search() {
        let out = search(50.0, settings(1, 1.0), 20.0);
        assert_eq!(out.steps.len(), 1);
        assert_eq!(out.peak_qps, None);
        assert_eq!(out.reported, 50.0);
        assert_eq!(out.loadgen_messages().len(), 2);
    }

    #[test]
    fn immediate_failure_of_the_first_widening() {
        // [1, 2) is already finished at 0 decimals: no bisection at all.
        let out = search(1.0, settings(0, 1.0), 1.5);
        assert_eq!(out.boundaries, Some((1.0, 2.0)));
        assert_eq!(out.peak_qps, Some(1.0));
        let msgs = out.loadgen_messages();
        assert_eq!(
            msgs[3],
            "FindPeakPerformance: Found boundaries: [1.000000, 2.000000)"
        );
    }

    #[test]
    fn degenerate_settings_are_errors_not_hangs() {
        let r = find_peak(10.0, settings(1, 0.0), |q| Ok::<_, Boom>((true, q)));
        assert!(matches!(r, Err(FindPeakError::InvalidStepSize(_))));
        let r = find_peak(0.0, settings(1, 1.0), |q| Ok::<_, Boom>((true, q)));
        assert!(matches!(r, Err(FindPeakError::InvalidBaseQps(_))));
        let limited = FindPeakSettings {
            max_runs: Some(5),
            ..settings(1, 1.0)
        };
        let r = find_peak(10.0, limited, |q| Ok::<_, Boom>((true, q)));
        assert!(matches!(r, Err(FindPeakError::RunLimit { runs: 5, .. })));
        let r = find_peak(10.0, settings(1, 1.0), |q| {
            if q > 15.0 { Err(Boom) } else { Ok((true, q)) }
        });
        assert!(matches!(r, Err(FindPeakError::Run { qps: 20.0, .. })));
        // A wrapped precision still terminates (adjacent doubles).
        let out = search(10.0, settings(-1, 1.0), 13.0);
        assert!(out.peak_qps.unwrap() <= 13.0);
        assert!(out.peak_qps.unwrap() > 12.999_999);
    }
}
