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
        seq / self.samples_per_query.max(1)
    }

    /// Whether sample `seq`'s response is logged in performance mode.
    #[inline]
    pub fn logs_accuracy(&self, seq: usize) -> bool {
        self.accuracy_log_bits
            .get(seq / 64)
            .is_some_and(|word| word & (1 << (seq % 64)) != 0)
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
}
