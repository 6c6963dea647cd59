//! The phase clock and precise waiting.
//!
//! Every time in a phase is nanoseconds since the phase's zero on one
//! monotonic clock. The issuer must hit scheduled instants to within a few
//! microseconds without burning a core at low rates: it sleeps until shortly
//! before the instant, then spins. Linux delays sleeping threads by their
//! "timer slack" (50 µs by default); the issuer thread lowers its own slack
//! for the duration of a run so that short sleeps are accurate and the spin
//! margin can stay small.
//!
//! Readings come from `monotonic`, which reads the CPU's counter where that
//! is safe: a phase reads the clock at least twice per query.

use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::StopSignal;
use super::monotonic;

/// The monotonic clock of one phase.
#[derive(Debug, Clone, Copy)]
pub struct PhaseClock {
    origin: Instant,
    /// `origin` on `monotonic`'s scale.
    origin_mono_ns: u64,
    origin_unix_ns: u64,
}

impl PhaseClock {
    /// A clock whose zero is now.
    pub fn start_now() -> PhaseClock {
        let origin_mono_ns = monotonic::now_ns();
        let origin = monotonic::instant_at(origin_mono_ns);
        let origin_unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        PhaseClock {
            origin,
            origin_mono_ns,
            origin_unix_ns,
        }
    }

    /// Nanoseconds since the zero.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        monotonic::now_ns().saturating_sub(self.origin_mono_ns)
    }

    /// The zero itself.
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// Wall clock at the zero, ns since the Unix epoch.
    pub fn origin_unix_ns(&self) -> u64 {
        self.origin_unix_ns
    }
}

/// How the issuer waits for a scheduled instant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Waiter {
    /// Spin (rather than sleep) for the last `spin` of a wait.
    pub spin: Duration,
}

/// Longest single sleep, so a stop request is noticed promptly.
const MAX_SLEEP: Duration = Duration::from_millis(20);

impl Waiter {
    /// Waits until `deadline_ns` on `clock` and returns the time it woke, or
    /// `None` if a stop was requested first.
    pub fn wait_until(
        &self,
        clock: &PhaseClock,
        deadline_ns: u64,
        stop: &StopSignal,
    ) -> Option<u64> {
        loop {
            let now = clock.now_ns();
            if now >= deadline_ns {
                return Some(now);
            }
            if stop.is_requested() {
                return None;
            }
            let left = Duration::from_nanos(deadline_ns - now);
            if left > self.spin {
                thread::sleep((left - self.spin).min(MAX_SLEEP));
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

/// Lowers the calling thread's timer slack for its lifetime and restores it
/// on drop. A no-op where the platform has no timer slack.
#[derive(Debug)]
pub(crate) struct TimerSlackGuard {
    #[cfg(target_os = "linux")]
    previous: Option<u64>,
}

impl TimerSlackGuard {
    /// Sets this thread's timer slack to 1 ns.
    pub fn tighten() -> TimerSlackGuard {
        #[cfg(target_os = "linux")]
        {
            use rustix::thread::{current_timer_slack, set_current_timer_slack};
            let previous = current_timer_slack().ok();
            // Failure only costs accuracy; the spin margin still bounds the error.
            let _ = set_current_timer_slack(std::num::NonZeroU64::new(1));
            TimerSlackGuard { previous }
        }
        #[cfg(not(target_os = "linux"))]
        TimerSlackGuard {}
    }
}

impl Drop for TimerSlackGuard {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(previous) = self.previous {
            let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(previous));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_reads_the_time_since_its_origin() {
        let clock = PhaseClock::start_now();
        let before = clock.origin().elapsed().as_nanos() as u64;
        let now = clock.now_ns();
        let after = clock.origin().elapsed().as_nanos() as u64;
        // The reading is interpolated from the time-stamp counter, tens of
        // nanoseconds from the kernel's clock at most; 1 us bounds that.
        assert!(
            before <= now + 1_000 && now <= after + 1_000,
            "{before} {now} {after}"
        );
        assert!(clock.origin_unix_ns() > 1_600_000_000_000_000_000);
    }

    #[test]
    fn wait_never_returns_early_and_stops_on_request() {
        let _slack = TimerSlackGuard::tighten();
        let waiter = Waiter {
            spin: Duration::from_micros(50),
        };
        let stop = StopSignal::new();
        let clock = PhaseClock::start_now();
        let deadline = clock.now_ns() + 2_000_000;
        let woke = waiter.wait_until(&clock, deadline, &stop).unwrap();
        assert!(woke >= deadline);
        assert!(clock.now_ns() >= woke);

        stop.request();
        let far = clock.now_ns() + 3_600_000_000_000;
        assert!(waiter.wait_until(&clock, far, &stop).is_none());
    }
}
