//! The run's one observer fan-out: every [`RunObserver`] of a run (the
//! records writer, the progress bars, the live metrics, the collector's
//! window marker) receives each event from here, in the order added.
//!
//! A completed sample's record is handed over without copies where it can
//! be: observers that only read it ([`Observers::push_record_reader`]) or
//! ignore it ([`Observers::push_ignoring_records`]) borrow it first, and the
//! one observer that keeps it (the records writer) takes it last. A copy is
//! made only for each further observer that keeps records (each copy is
//! two or three allocations per sample, on the completion path).

use std::sync::Arc;

use loadgen::{Phase, PhaseEnd, PhaseStart, QueryRecord, RunObserver};

/// Reads a completed sample's record without keeping it.
pub type RecordReader = Arc<dyn Fn(&QueryRecord) + Send + Sync>;

/// One observer, with how it takes completed samples' records.
enum Entry {
    /// Takes every record by value.
    Keeps(Arc<dyn RunObserver>),
    /// Reads every record through its reader (none: ignores records); its
    /// own `sample_completed` is never called.
    Reads(Arc<dyn RunObserver>, Option<RecordReader>),
}

impl Entry {
    fn observer(&self) -> &dyn RunObserver {
        match self {
            Entry::Keeps(o) | Entry::Reads(o, _) => o.as_ref(),
        }
    }
}

/// Fans one observer call out to several.
#[derive(Default)]
pub struct Observers(Vec<Entry>);

impl std::fmt::Debug for Observers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Observers").field(&self.0.len()).finish()
    }
}

impl Observers {
    /// Adds an observer that keeps records; it hears events after those
    /// added before it.
    pub fn push(&mut self, observer: Arc<dyn RunObserver>) {
        self.0.push(Entry::Keeps(observer));
    }

    /// Adds an observer whose `sample_completed` does nothing: it hears
    /// every other event, and no record is copied for it.
    pub fn push_ignoring_records(&mut self, observer: Arc<dyn RunObserver>) {
        self.0.push(Entry::Reads(observer, None));
    }

    /// Adds an observer that only reads records: `read` is called with
    /// each record (before any observer that keeps records takes it)
    /// instead of its `sample_completed`; it hears every other event.
    pub fn push_record_reader(&mut self, observer: Arc<dyn RunObserver>, read: RecordReader) {
        self.0.push(Entry::Reads(observer, Some(read)));
    }

    /// Adds the run's telemetry observers: the live metrics (a record
    /// reader) and, when metrics are collected, the window marker (which
    /// ignores records).
    pub fn push_telemetry(&mut self, telemetry: &crate::run_telemetry::Telemetry) {
        let live = Arc::clone(telemetry.live());
        self.push_record_reader(
            Arc::clone(telemetry.live()) as _,
            Arc::new(move |record: &QueryRecord| live.record_completed(record)),
        );
        if let Some(marker) = telemetry.window_marker() {
            self.push_ignoring_records(marker);
        }
    }

    fn each(&self, f: impl Fn(&dyn RunObserver)) {
        self.0.iter().for_each(|e| f(e.observer()));
    }

    /// The readers of completed records, in the order added.
    fn readers(&self) -> impl Iterator<Item = &RecordReader> {
        self.0.iter().filter_map(|e| match e {
            Entry::Reads(_, read) => read.as_ref(),
            Entry::Keeps(_) => None,
        })
    }

    /// The observers that keep records: those that get a copy, then the
    /// last one, which takes the record itself.
    fn keepers(
        &self,
    ) -> (
        impl Iterator<Item = &dyn RunObserver>,
        Option<&dyn RunObserver>,
    ) {
        let last = self.0.iter().rposition(|e| matches!(e, Entry::Keeps(_)));
        let copies = self.0[..last.unwrap_or(0)].iter().filter_map(|e| match e {
            Entry::Keeps(o) => Some(o.as_ref()),
            Entry::Reads(..) => None,
        });
        (copies, last.map(|i| self.0[i].observer()))
    }
}

impl RunObserver for Observers {
    fn phase_starting(&self, phase: Phase) {
        self.each(|o| o.phase_starting(phase));
    }
    fn phase_started(&self, start: &PhaseStart) {
        self.each(|o| o.phase_started(start));
    }
    fn query_issued(&self, query: u64, samples: usize, issued_ns: u64) {
        self.each(|o| o.query_issued(query, samples, issued_ns));
    }
    fn first_token(&self, seq: u64, at_ns: u64) {
        self.each(|o| o.first_token(seq, at_ns));
    }
    fn sample_completed(&self, record: QueryRecord) {
        self.readers().for_each(|read| read(&record));
        let (copies, last) = self.keepers();
        copies.for_each(|o| o.sample_completed(record.clone()));
        if let Some(last) = last {
            last.sample_completed(record);
        }
    }
    // A many-sample completion (an Offline SUT answering thousands at once)
    // stays one batch.
    fn samples_completed(&self, records: &mut Vec<QueryRecord>) {
        self.readers()
            .for_each(|read| records.iter().for_each(|record| read(record)));
        let (copies, last) = self.keepers();
        copies.for_each(|o| o.samples_completed(&mut records.clone()));
        if let Some(last) = last {
            last.samples_completed(records);
        }
    }
    fn phase_finished(&self, end: &PhaseEnd) {
        self.each(|o| o.phase_finished(end));
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
        all.push_ignoring_records(Arc::new(Log("b", Arc::clone(&seen))));
        all.push_record_reader(Arc::new(Log("c", Arc::clone(&seen))), Arc::new(|_| {}));
        all.first_token(7, 0);
        assert_eq!(*seen.lock().unwrap(), ["a 7", "b 7", "c 7"]);
    }

    /// Keeps the seq of every record it is given.
    struct Keep(Arc<Mutex<Vec<u64>>>);

    impl RunObserver for Keep {
        fn sample_completed(&self, record: QueryRecord) {
            self.0.lock().unwrap().push(record.seq);
        }
    }

    fn record(seq: u64) -> QueryRecord {
        QueryRecord {
            seq,
            query: seq,
            sample_index: 0,
            scheduled_ns: 0,
            issued_ns: 0,
            first_token_ns: Some(1),
            end_ns: 2,
            n_tokens: 2,
            extras: loadgen::RecordExtras {
                chunk_ns: vec![1, 2],
                chunk_tokens: vec![1, 1],
                ..loadgen::RecordExtras::default()
            }
            .boxed(),
        }
    }

    /// Two keepers around an ignoring observer and a reader, given records
    /// 3 and 5 by `complete`: every keeper and the reader see both in
    /// order, the ignoring observer none.
    fn records_reach_keepers_and_readers(complete: impl Fn(&Observers, Vec<QueryRecord>)) {
        let kept_a = Arc::new(Mutex::new(Vec::new()));
        let kept_b = Arc::new(Mutex::new(Vec::new()));
        let ignored = Arc::new(Mutex::new(Vec::new()));
        let read = Arc::new(Mutex::new(Vec::new()));
        let mut all = Observers::default();
        all.push(Arc::new(Keep(Arc::clone(&kept_a))));
        all.push_ignoring_records(Arc::new(Keep(Arc::clone(&ignored))));
        let reads = Arc::clone(&read);
        all.push_record_reader(
            Arc::new(Keep(Arc::clone(&ignored))),
            Arc::new(move |r: &QueryRecord| reads.lock().unwrap().push(r.seq)),
        );
        all.push(Arc::new(Keep(Arc::clone(&kept_b))));
        complete(&all, vec![record(3), record(5)]);
        assert_eq!(*kept_a.lock().unwrap(), [3, 5]);
        assert_eq!(*kept_b.lock().unwrap(), [3, 5]);
        assert_eq!(*read.lock().unwrap(), [3, 5]);
        assert!(ignored.lock().unwrap().is_empty());
    }

    #[test]
    fn records_reach_keepers_and_readers_but_not_ignoring_observers() {
        records_reach_keepers_and_readers(|all, records| {
            records.into_iter().for_each(|r| all.sample_completed(r));
        });
    }

    #[test]
    fn a_batch_of_records_reaches_keepers_and_readers_but_not_ignoring_observers() {
        records_reach_keepers_and_readers(|all, mut records| all.samples_completed(&mut records));
    }
}
