//! The run's one observer fan-out: every [`RunObserver`] of a run (the
//! records writer, the progress bars, the live metrics, the collector's
//! window marker) receives each event from here, in the order added.

use std::sync::Arc;

use loadgen::{Phase, PhaseEnd, PhaseStart, QueryRecord, RunObserver};

/// Fans one observer call out to several.
#[derive(Default)]
pub struct Observers(Vec<Arc<dyn RunObserver>>);

impl std::fmt::Debug for Observers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Observers").field(&self.0.len()).finish()
    }
}

impl Observers {
    /// Adds an observer; it hears events after those added before it.
    pub fn push(&mut self, observer: Arc<dyn RunObserver>) {
        self.0.push(observer);
    }

    /// Adds several.
    pub fn extend(&mut self, observers: impl IntoIterator<Item = Arc<dyn RunObserver>>) {
        self.0.extend(observers);
    }
}

impl RunObserver for Observers {
    fn phase_starting(&self, phase: Phase) {
        self.0.iter().for_each(|o| o.phase_starting(phase));
    }
    fn phase_started(&self, start: &PhaseStart) {
        self.0.iter().for_each(|o| o.phase_started(start));
    }
    fn query_issued(&self, query: u64, samples: usize, issued_ns: u64) {
        self.0
            .iter()
            .for_each(|o| o.query_issued(query, samples, issued_ns));
    }
    fn first_token(&self, seq: u64, at_ns: u64) {
        self.0.iter().for_each(|o| o.first_token(seq, at_ns));
    }
    fn sample_completed(&self, record: QueryRecord) {
        // The last observer takes the record itself: one clone fewer.
        if let Some((last, rest)) = self.0.split_last() {
            for o in rest {
                o.sample_completed(record.clone());
            }
            last.sample_completed(record);
        }
    }
    fn phase_finished(&self, end: &PhaseEnd) {
        self.0.iter().for_each(|o| o.phase_finished(end));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Log(&'static str, Arc<Mutex<Vec<String>>>);

    impl RunObserver for Log {
        fn first_token(&self, seq: u64, _at_ns: u64) {
            self.1.lock().unwrap().push(format!("{} {seq}", self.0));
        }
    }

    #[test]
    fn every_observer_hears_every_event_in_order() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut all = Observers::default();
        all.push(Arc::new(Log("a", Arc::clone(&seen))));
        all.extend([Arc::new(Log("b", Arc::clone(&seen))) as Arc<dyn RunObserver>]);
        all.first_token(7, 0);
        assert_eq!(*seen.lock().unwrap(), ["a 7", "b 7"]);
    }
}
