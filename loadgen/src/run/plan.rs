//! The issuer's view of a phase's pre-generated queries.

/// The queries of one phase, in issue order.
///
/// Sample `seq` (the `ResponseId` the SUT answers with) is the position in
/// `sample_indices`; query `q` holds samples `q*spq .. min((q+1)*spq, N)`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IssuePlan {
    /// Per query, ns from the phase start: the Server schedule; for the other
    /// scenarios LoadGen's generated deltas (only the last one is reported,
    /// as `final_query_scheduled_time`).
    pub scheduled_ns: Vec<u64>,
    /// QSL index of every sample, in issue order.
    pub sample_indices: Vec<u32>,
    /// Samples per query (the Offline query holds all of them).
    pub samples_per_query: usize,
    /// Bit per sample: log its response in performance mode (LoadGen's
    /// accuracy-log sampling). Empty = log none.
    pub accuracy_log_bits: Vec<u64>,
}

impl IssuePlan {
    /// Number of queries.
    pub fn query_count(&self) -> usize {
        self.scheduled_ns.len()
    }

    /// Number of samples across all queries.
    pub fn sample_count(&self) -> usize {
        self.sample_indices.len()
    }

    /// Range of `seq` values of query `q`.
    #[inline]
    pub fn samples_of(&self, q: usize) -> std::ops::Range<usize> {
        let start = q * self.samples_per_query;
        start..(start + self.samples_per_query).min(self.sample_indices.len())
    }

    /// The query sample `seq` belongs to.
    #[inline]
    pub fn query_of(&self, seq: usize) -> usize {
        // Runs for every sample, at completion and when the result is
        // collected, and a division by a value known only at run time
        // costs tens of cycles: at 4M Offline samples that was 40 ms of
        // the issuer's serial tail (perf). Server (one sample a query) and
        // Offline (one query) need none; the branch goes one way per test.
        match self.samples_per_query {
            0 | 1 => seq,
            n if seq < n => 0,
            n => seq / n,
        }
    }

    /// Whether sample `seq`'s response is logged in performance mode.
    #[inline]
    pub fn logs_accuracy(&self, seq: usize) -> bool {
        self.accuracy_log_bits
            .get(seq / 64)
            .is_some_and(|word| word & (1 << (seq % 64)) != 0)
    }

    /// The issuer's plan of a generated schedule. Sample `seq` of the plan
    /// is sequence id `schedule.first_sample_id() + seq`. The schedule is
    /// consumed: its sample list and accuracy-log bits (Offline: millions
    /// of entries) become the plan's without a copy, so they are neither
    /// allocated nor written twice before the phase starts.
    pub fn from_schedule(schedule: crate::schedule::Schedule) -> IssuePlan {
        // Every query of a phase has the same size (one Offline query).
        let samples_per_query = schedule.iter().next().map_or(1, |q| q.samples.len().max(1));
        let (scheduled_ns, sample_indices, accuracy_log_bits) = schedule.into_issue_parts();
        IssuePlan {
            scheduled_ns,
            sample_indices,
            samples_per_query,
            accuracy_log_bits,
        }
    }

    /// Bytes held per query, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.scheduled_ns.capacity() * 8
            + self.sample_indices.capacity() * 4
            + self.accuracy_log_bits.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Phase;
    use crate::schedule::{SequenceGen, generate_loadable_sets, generate_queries};
    use crate::settings::{EffectiveSettings, Scenario, TestSettings};

    #[test]
    fn a_plan_holds_the_schedules_queries_samples_and_log_sampling() {
        for scenario in [Scenario::Server, Scenario::MultiStream, Scenario::Offline] {
            let requested = TestSettings {
                scenario,
                server_target_qps: 1000.0,
                offline_expected_qps: 1000.0,
                min_query_count: 50,
                min_duration_ms: 10,
                accuracy_log_sampling_target: 20,
                ..TestSettings::default()
            };
            let (settings, _) = EffectiveSettings::new(&requested, 64, 64).unwrap();
            let sets = generate_loadable_sets(&settings, 64, 64);
            let schedule = generate_queries(
                &settings,
                Phase::Performance,
                &sets[0],
                &mut SequenceGen::new(),
            )
            .unwrap();
            let plan = IssuePlan::from_schedule(schedule.clone());
            assert_eq!(plan.query_count(), schedule.len(), "{scenario}");
            assert_eq!(plan.sample_count(), schedule.sample_count(), "{scenario}");
            let mut logged = 0;
            for query in schedule.iter() {
                assert_eq!(plan.scheduled_ns[query.index], query.scheduled_ns);
                let seqs = plan.samples_of(query.index);
                let indices: Vec<u32> = seqs.clone().map(|s| plan.sample_indices[s]).collect();
                assert_eq!(indices, query.samples, "{scenario} query {}", query.index);
                for (i, seq) in seqs.enumerate() {
                    let id = query.first_sample_sequence_id + i as u64;
                    assert_eq!(plan.logs_accuracy(seq), schedule.is_accuracy_logged(id));
                    logged += usize::from(plan.logs_accuracy(seq));
                }
            }
            assert!(logged > 0, "{scenario}: sampling logs some responses");
        }
    }

    #[test]
    fn layout_maps_samples_to_queries() {
        let plan = IssuePlan {
            scheduled_ns: vec![0, 10, 20],
            sample_indices: (0..20).collect(),
            samples_per_query: 8,
            accuracy_log_bits: vec![1 << 3 | 1 << 63, 1],
        };
        assert_eq!(plan.samples_of(0), 0..8);
        assert_eq!(plan.samples_of(2), 16..20);
        assert_eq!(plan.query_of(17), 2);
        assert!(plan.logs_accuracy(3) && plan.logs_accuracy(63) && plan.logs_accuracy(64));
        assert!(!plan.logs_accuracy(4) && !plan.logs_accuracy(65) && !plan.logs_accuracy(1000));
    }

    #[test]
    fn query_of_is_the_division_and_samples_of_its_inverse_for_every_layout() {
        // One sample a query (Server), a few (MultiStream), one query of
        // them all (Offline), and a layout that is none of those.
        for (samples_per_query, samples) in [(0, 9), (1, 9), (8, 20), (20, 20), (3, 10)] {
            let plan = IssuePlan {
                scheduled_ns: Vec::new(),
                sample_indices: (0..samples).collect(),
                samples_per_query,
                accuracy_log_bits: Vec::new(),
            };
            for seq in 0..samples as usize {
                let q = plan.query_of(seq);
                assert_eq!(
                    q,
                    seq / samples_per_query.max(1),
                    "{samples_per_query}: {seq}"
                );
                if samples_per_query > 0 {
                    assert!(
                        plan.samples_of(q).contains(&seq),
                        "{samples_per_query}: {seq}"
                    );
                }
            }
        }
    }
}
