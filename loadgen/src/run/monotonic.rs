//! Cheap reads of the monotonic clock.
//!
//! Why not `Instant::now()` everywhere: at millions of queries per second
//! the issuer reads the clock twice per query (the issue time and the
//! completion time), and a `clock_gettime` costs about 40 ns in a KVM
//! guest against 13 ns for reading the CPU's time-stamp counter directly:
//! a third of the issuer's time at saturation. LoadGen C++ pays the full
//! call (`std::chrono::high_resolution_clock::now()`).
//!
//! A reading here is monotonic-clock nanoseconds interpolated from the
//! counter: `anchor_ns + (ticks - anchor_ticks) * rate`.
//! - The anchor (one `Instant::now()` and the counter read on both sides of
//!   it) is renewed by whichever thread finds it more than 1 ms old, so an
//!   interpolation never runs more than 1 ms from a real clock reading and
//!   cannot drift from the monotonic clock.
//! - The rate is the counter's measured against the monotonic clock over
//!   all the time since the first reading, so its error shrinks as the
//!   process runs: about 50 ns over the first 10 ms, hence at most about
//!   5 ns over one 1 ms anchor, and less later.
//! - All threads share the anchor, so two readings ordered by a
//!   happens-before relation come out in that order: renewing never moves
//!   time back (a clock reading below the old anchor's interpolation at the
//!   same tick is raised to it).
//!
//! The counter is used only where the kernel itself keeps time with it
//! (clocksource `tsc` on x86-64 Linux), which the kernel does only after
//! checking that the counter is invariant and synchronised across CPUs.
//! Elsewhere, and during the process's first 10 ms, every reading is an
//! `Instant::now()`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
use std::time::{Duration, Instant};

/// An anchor older than this is renewed.
const RENEW_NS: u64 = 1_000_000;
/// The rate is trusted once measured over at least this long.
const MIN_BASELINE_NS: u64 = 10_000_000;
/// Fixed-point fraction bits of the rate (nanoseconds per tick).
const RATE_SHIFT: u32 = 32;

/// Nanoseconds since the process's clock base (its first use).
#[inline]
pub(crate) fn now_ns() -> u64 {
    clock().read()
}

/// The instant `ns` after the clock base.
#[inline]
pub(crate) fn instant_at(ns: u64) -> Instant {
    clock().base + Duration::from_nanos(ns)
}

/// Sets the clock up now (choosing its source and taking the reading the
/// rate is measured from), so that the time until the first phase already
/// counts towards the rate.
pub(crate) fn start() {
    clock();
}

/// Whether readings come from the CPU's counter (else `Instant::now()`).
pub(crate) fn uses_counter() -> bool {
    clock().counter.is_some()
}

/// What a phase's clock readings come from, for logs and benchmarks: `tsc`
/// (the CPU's time-stamp counter, anchored to the monotonic clock every
/// millisecond) or `clock_gettime` (`Instant::now()`).
pub fn clock_source() -> &'static str {
    if uses_counter() {
        "tsc"
    } else {
        "clock_gettime"
    }
}

fn since(base: Instant, instant: Instant) -> u64 {
    // u64 nanoseconds cover 584 years.
    instant.saturating_duration_since(base).as_nanos() as u64
}

fn clock() -> &'static Clock {
    static CLOCK: OnceLock<Clock> = OnceLock::new();
    CLOCK.get_or_init(Clock::new)
}

/// A counter reading and the monotonic time at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Anchor {
    ticks: u64,
    ns: u64,
    /// Nanoseconds per tick, `RATE_SHIFT` fraction bits.
    rate: u64,
}

impl Anchor {
    /// The time at `ticks`, if not before the anchor and within `limit_ns`
    /// of it.
    fn interpolate(&self, ticks: u64, limit_ns: u64) -> Option<u64> {
        let delta = ticks.checked_sub(self.ticks)?;
        let ns = (u128::from(delta) * u128::from(self.rate)) >> RATE_SHIFT;
        let ns = u64::try_from(ns).ok().filter(|&ns| ns < limit_ns)?;
        Some(self.ns + ns)
    }
}

/// Nanoseconds per tick (`RATE_SHIFT` fraction bits) between two readings,
/// or `None` before the baseline is long enough to trust.
fn rate_between(from: (u64, u64), to: (u64, u64)) -> Option<u64> {
    let ticks = to.0.checked_sub(from.0).filter(|&t| t > 0)?;
    let ns =
        to.1.checked_sub(from.1)
            .filter(|&ns| ns >= MIN_BASELINE_NS)?;
    u64::try_from((u128::from(ns) << RATE_SHIFT) / u128::from(ticks)).ok()
}

/// A clock reading `ns` at `ticks`, raised to what `previous` gives for the
/// same tick if that is later: so time never moves back.
fn floored(previous: Option<Anchor>, ticks: u64, ns: u64) -> u64 {
    previous
        .and_then(|a| a.interpolate(ticks, u64::MAX))
        .map_or(ns, |floor| ns.max(floor))
}

/// The anchor a renewal at (`ticks`, `ns`) publishes: never earlier than
/// what the previous anchor gave for the same tick.
fn renewed(previous: Option<Anchor>, ticks: u64, ns: u64, rate: u64) -> Anchor {
    Anchor {
        ticks,
        ns: floored(previous, ticks, ns),
        rate,
    }
}

struct Clock {
    base: Instant,
    /// The counter, where the kernel keeps time with it.
    counter: Option<quanta::Clock>,
    /// A counter reading and the time at it, taken at `base`: where the
    /// rate is measured from.
    first: (u64, u64),
    /// Seqlock over the anchor: odd while a renewal writes it.
    seq: AtomicU64,
    anchor_ticks: AtomicU64,
    anchor_ns: AtomicU64,
    /// 0 until the first anchor.
    anchor_rate: AtomicU64,
    /// One renewal at a time.
    renewing: AtomicBool,
}

impl Clock {
    fn new() -> Clock {
        let counter = kernel_uses_counter().then(quanta::Clock::new);
        let base = Instant::now();
        let first = counter.as_ref().map_or((0, 0), |c| pair(base, c));
        Clock {
            base,
            counter,
            first,
            seq: AtomicU64::new(0),
            anchor_ticks: AtomicU64::new(0),
            anchor_ns: AtomicU64::new(0),
            anchor_rate: AtomicU64::new(0),
            renewing: AtomicBool::new(false),
        }
    }

    #[inline]
    fn read(&self) -> u64 {
        let Some(counter) = &self.counter else {
            return since(self.base, Instant::now());
        };
        let ticks = counter.raw();
        let anchor = self.anchor();
        if let Some(ns) = anchor.and_then(|a| a.interpolate(ticks, RENEW_NS)) {
            return ns;
        }
        self.renew(counter, anchor)
    }

    /// The published anchor, or `None` if there is none yet or a renewal
    /// is writing it.
    #[inline]
    fn anchor(&self) -> Option<Anchor> {
        let before = self.seq.load(Ordering::Acquire);
        if before & 1 == 1 {
            return None;
        }
        let anchor = Anchor {
            ticks: self.anchor_ticks.load(Ordering::Relaxed),
            ns: self.anchor_ns.load(Ordering::Relaxed),
            rate: self.anchor_rate.load(Ordering::Relaxed),
        };
        fence(Ordering::Acquire);
        (anchor.rate != 0 && self.seq.load(Ordering::Relaxed) == before).then_some(anchor)
    }

    /// A real clock reading, published as the new anchor when the rate is
    /// known and no other thread is renewing.
    #[cold]
    fn renew(&self, counter: &quanta::Clock, seen: Option<Anchor>) -> u64 {
        let (ticks, ns) = pair(self.base, counter);
        let Some(rate) = rate_between(self.first, (ticks, ns)) else {
            return ns;
        };
        if self
            .renewing
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return floored(seen, ticks, ns);
        }
        let anchor = renewed(self.anchor().or(seen), ticks, ns, rate);
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        self.anchor_ticks.store(anchor.ticks, Ordering::Relaxed);
        self.anchor_ns.store(anchor.ns, Ordering::Relaxed);
        self.anchor_rate.store(anchor.rate, Ordering::Relaxed);
        self.seq.store(seq + 2, Ordering::Release);
        self.renewing.store(false, Ordering::Release);
        anchor.ns
    }
}

/// A counter reading and the nanoseconds from `base` to it: the counter
/// read on both sides of the clock, the tightest of three tries (a try can
/// be interrupted).
fn pair(base: Instant, counter: &quanta::Clock) -> (u64, u64) {
    let mut best = (u64::MAX, 0, 0);
    for _ in 0..3 {
        let before = counter.raw();
        let now = Instant::now();
        let width = counter.raw().wrapping_sub(before);
        if width < best.0 {
            best = (width, before + width / 2, since(base, now));
        }
    }
    (best.1, best.2)
}

/// Whether the kernel keeps time with the CPU's counter, which it does only
/// once it has found the counter invariant and synchronised across CPUs.
fn kernel_uses_counter() -> bool {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        return false;
    }
    if std::env::var_os("LOADGEN_CLOCK").is_some_and(|v| v == "monotonic") {
        return false;
    }
    std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        .is_ok_and(|source| source.trim() == "tsc")
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE_HALF: u64 = 1 << (RATE_SHIFT - 1);

    #[test]
    fn interpolation_stays_within_its_window() {
        let anchor = Anchor {
            ticks: 1_000,
            ns: 5_000,
            rate: RATE_HALF,
        };
        assert_eq!(anchor.interpolate(1_000, RENEW_NS), Some(5_000));
        assert_eq!(anchor.interpolate(3_000, RENEW_NS), Some(6_000));
        assert_eq!(anchor.interpolate(999, RENEW_NS), None);
        assert_eq!(anchor.interpolate(1_000 + 2 * RENEW_NS, RENEW_NS), None);
        assert_eq!(
            anchor.interpolate(1_000 + 2 * RENEW_NS - 2, RENEW_NS),
            Some(5_000 + RENEW_NS - 1)
        );
    }

    #[test]
    fn the_rate_waits_for_a_long_enough_baseline() {
        assert_eq!(
            rate_between((10, 0), (20_000_010, MIN_BASELINE_NS)),
            Some(RATE_HALF)
        );
        assert_eq!(
            rate_between((10, 0), (20_000_010, MIN_BASELINE_NS - 1)),
            None
        );
        assert_eq!(rate_between((10, 0), (10, MIN_BASELINE_NS)), None);
        assert_eq!(rate_between((10, 0), (5, MIN_BASELINE_NS)), None);
    }

    #[test]
    fn renewing_never_moves_time_back() {
        let old = Anchor {
            ticks: 0,
            ns: 100,
            rate: RATE_HALF,
        };
        // The old anchor gives 100 + 500 at tick 1000: a clock reading of
        // 550 there is raised to it, one of 700 is taken as it is.
        assert_eq!(renewed(Some(old), 1_000, 550, RATE_HALF).ns, 600);
        assert_eq!(renewed(Some(old), 1_000, 700, RATE_HALF).ns, 700);
        assert_eq!(renewed(None, 1_000, 550, 7).ns, 550);
        assert_eq!(renewed(None, 1_000, 550, 7).rate, 7);
    }

    #[test]
    fn readings_agree_with_the_monotonic_clock_and_never_go_back() {
        let clock = clock();
        let deadline = Instant::now() + Duration::from_millis(40);
        let mut last = 0;
        let mut worst_early = 0i64;
        let mut worst_late = 0i64;
        let mut reads = 0u64;
        while Instant::now() < deadline {
            let before = since(clock.base, Instant::now());
            let ns = now_ns();
            let after = since(clock.base, Instant::now());
            assert!(ns >= last, "went back from {last} to {ns}");
            last = ns;
            worst_early = worst_early.max(before as i64 - ns as i64);
            worst_late = worst_late.max(ns as i64 - after as i64);
            reads += 1;
        }
        assert!(reads > 1_000);
        // Each side allows for one interpolation's error and for being
        // interrupted between the reads.
        assert!(worst_early < 2_000, "{worst_early} ns before the clock");
        assert!(worst_late < 2_000, "{worst_late} ns after the clock");
        if uses_counter() {
            assert!(clock.anchor().is_some(), "no anchor after 40 ms");
        }
    }

    #[test]
    fn readings_across_threads_respect_happens_before() {
        use std::sync::mpsc;
        let (tx, rx) = mpsc::sync_channel::<u64>(64);
        let reader = std::thread::spawn(move || {
            let mut bad = 0;
            while let Ok(sent) = rx.recv() {
                if now_ns() < sent {
                    bad += 1;
                }
            }
            bad
        });
        let deadline = Instant::now() + Duration::from_millis(30);
        while Instant::now() < deadline {
            if tx.send(now_ns()).is_err() {
                break;
            }
        }
        drop(tx);
        assert_eq!(reader.join().ok(), Some(0));
    }

    #[test]
    fn instants_round_trip() {
        let at = instant_at(1_234_567);
        assert_eq!(since(clock().base, at), 1_234_567);
    }
}
