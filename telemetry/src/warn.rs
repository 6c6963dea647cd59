//! Rate-limited warnings: a source that keeps failing logs once, then at
//! most once per interval with a count of what was held back.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The most warning texts kept for the collector's report.
const KEPT_MESSAGES: usize = 100;

/// Warning counts shared by every source of a collector.
#[derive(Debug, Default)]
pub(crate) struct WarnStats {
    pub(crate) emitted: AtomicU64,
    pub(crate) suppressed: AtomicU64,
    pub(crate) messages: Mutex<Vec<String>>,
}

impl WarnStats {
    pub(crate) fn messages(&self) -> Vec<String> {
        self.messages.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// One source's warning state.
#[derive(Debug)]
pub(crate) struct WarnLimiter {
    source: String,
    every_ns: u64,
    last_emit_ns: Option<u64>,
    held_back: u64,
    failing: bool,
}

impl WarnLimiter {
    pub(crate) fn new(source: impl Into<String>, every_ns: u64) -> WarnLimiter {
        WarnLimiter {
            source: source.into(),
            every_ns,
            last_emit_ns: None,
            held_back: 0,
            failing: false,
        }
    }

    /// Reports a problem at run-clock time `now_ns`; returns whether it was
    /// logged.
    pub(crate) fn problem(&mut self, stats: &WarnStats, now_ns: u64, message: &str) -> bool {
        self.failing = true;
        let due = self
            .last_emit_ns
            .is_none_or(|last| now_ns.saturating_sub(last) >= self.every_ns);
        if !due {
            self.held_back += 1;
            stats.suppressed.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let text = if self.held_back > 0 {
            format!(
                "{}: {message} ({} similar warnings held back)",
                self.source, self.held_back
            )
        } else {
            format!("{}: {message}", self.source)
        };
        tracing::warn!(target: "telemetry", "{text}");
        if let Ok(mut kept) = stats.messages.lock()
            && kept.len() < KEPT_MESSAGES
        {
            kept.push(text);
        }
        stats.emitted.fetch_add(1, Ordering::Relaxed);
        self.last_emit_ns = Some(now_ns);
        self.held_back = 0;
        true
    }

    /// Reports that the source works (again).
    pub(crate) fn ok(&mut self) {
        if self.failing {
            tracing::info!(target: "telemetry", "{}: working again", self.source);
            self.failing = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_failures_are_held_back_then_counted() {
        let stats = WarnStats::default();
        let mut w = WarnLimiter::new("http://h:1", 60_000_000_000);
        assert!(w.problem(&stats, 0, "connection refused"));
        for t in 1..=5 {
            assert!(!w.problem(&stats, t * 1_000_000_000, "connection refused"));
        }
        w.ok();
        assert!(!w.problem(&stats, 30_000_000_000, "connection refused"));
        assert!(w.problem(&stats, 60_000_000_000, "connection refused"));
        assert_eq!(stats.emitted.load(Ordering::Relaxed), 2);
        assert_eq!(stats.suppressed.load(Ordering::Relaxed), 6);
        let m = stats.messages();
        assert_eq!(m[0], "http://h:1: connection refused");
        assert_eq!(
            m[1],
            "http://h:1: connection refused (6 similar warnings held back)"
        );
    }
}
