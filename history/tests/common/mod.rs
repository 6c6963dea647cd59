//! What the SQLite and the PostgreSQL tests both check.

// Test helpers: unwrap is fine here.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::BTreeMap;

use history::{Filter, History, RunEntry, SCHEMA_VERSION, system_of};

/// splitmix64: a seeded generator, so a failure replays.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const METRICS: [&str; 3] = ["ttft_p50_ms", "samples_per_s", "rare_ms"];

/// A random run: 2 models, systems by label or by backend, 2 scenarios,
/// 2 datasets or none, metrics sometimes missing or not finite.
pub fn random_run(rng: &mut Rng, id: &str) -> RunEntry {
    let system = rng.below(5);
    let (labels, backends) = match system {
        0..=2 => (
            vec![("system".to_owned(), format!("sys{system}"))],
            vec!["http://h:1/v1".to_owned()],
        ),
        3 => (
            vec![("label".to_owned(), "lab".to_owned())],
            vec!["http://h:2/v1".to_owned()],
        ),
        _ => (vec![], vec!["http://h:3/v1".to_owned()]),
    };
    let mut metrics = Vec::new();
    let base = 10.0 * (1 + system) as f64;
    metrics.push(("ttft_p50_ms".to_owned(), base + rng.uniform(0.0, 5.0)));
    if rng.below(10) > 0 {
        metrics.push((
            "samples_per_s".to_owned(),
            1000.0 / base + rng.uniform(-1.0, 1.0),
        ));
    }
    match rng.below(8) {
        0 => metrics.push(("rare_ms".to_owned(), f64::NAN)),
        1 | 2 => metrics.push(("rare_ms".to_owned(), rng.uniform(1e6, 2e6))),
        _ => {}
    }
    let day = 1 + rng.below(28);
    RunEntry {
        run_id: id.to_owned(),
        run_dir: format!("runs/{id}"),
        started_at: format!("2026-11-{day:02}T10:00:00+00:00"),
        model: ["m1", "m2"][rng.below(2) as usize].to_owned(),
        scenario: ["Server", "Offline"][rng.below(2) as usize].to_owned(),
        mode: "PerformanceOnly".to_owned(),
        backends,
        dataset: [Some("d1".to_owned()), Some("d2".to_owned()), None][rng.below(3) as usize]
            .clone(),
        labels,
        status: "complete".to_owned(),
        valid: Some(true),
        reasons: vec![],
        harness_version: String::new(),
        loadgen: String::new(),
        metrics,
    }
}

/// The filters the running sums answer, and ones they leave to the rows.
pub fn filters() -> Vec<Filter> {
    let f = |model: Option<&str>, scenario: Option<&str>, dataset: Option<&str>| Filter {
        model: model.map(str::to_owned),
        scenario: scenario.map(str::to_owned),
        dataset: dataset.map(str::to_owned),
        ..Filter::default()
    };
    vec![
        f(None, None, None),
        f(Some("m1"), None, None),
        f(None, Some("Offline"), None),
        f(None, None, Some("d2")),
        f(Some("m2"), Some("Server"), Some("d1")),
        f(None, None, Some("")),
        Filter {
            since: Some("2026-11-10".into()),
            ..Filter::default()
        },
        Filter {
            label: Some(("system".into(), "sys1".into())),
            ..Filter::default()
        },
    ]
}

/// After a schema-7 database (no running sums) is opened again: it is at
/// the current schema and its sums, filled in by the migration, match the
/// rows.
pub fn assert_migrated(h: &History) {
    assert_eq!(h.schema_version().unwrap(), SCHEMA_VERSION);
    assert!(
        !h.group_sums("ttft_p50_ms", &Filter::default())
            .unwrap()
            .is_empty()
    );
    assert_sums_match_rows(h, "migrated");
}

/// Checks `group_sums` against the count, mean and variance of the raw
/// rows (`values`) of every metric under every filter: the same groups in
/// the same order, the same counts, the same moments to rounding.
pub fn assert_sums_match_rows(h: &History, context: &str) {
    // The metric names (read from the sums) are those with a row.
    let with_rows: Vec<&str> = METRICS
        .iter()
        .copied()
        .filter(|m| !h.values(m, &Filter::default()).unwrap().is_empty())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        h.metric_names().unwrap(),
        with_rows,
        "{context}: metric names"
    );
    for metric in METRICS {
        for filter in filters() {
            let mut rows: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
            for v in h.values(metric, &filter).unwrap() {
                rows.entry((v.model.clone(), system_of(&v.labels, &v.backends)))
                    .or_default()
                    .push(v.value);
            }
            let sums = h.group_sums(metric, &filter).unwrap();
            let got: Vec<(&str, &str, u64)> = sums
                .iter()
                .map(|g| (g.model.as_str(), g.system.as_str(), g.count))
                .collect();
            let want: Vec<(&str, &str, u64)> = rows
                .iter()
                .map(|((m, s), v)| (m.as_str(), s.as_str(), v.len() as u64))
                .collect();
            assert_eq!(got, want, "{context}: {metric} {filter:?}");
            for (g, values) in sums.iter().zip(rows.values()) {
                let n = values.len() as f64;
                let mean = values.iter().sum::<f64>() / n;
                let got_mean = g.shift + g.sum / n;
                let close = |a: f64, b: f64, scale: f64| (a - b).abs() <= 1e-9 * scale.max(1.0);
                assert!(
                    close(got_mean, mean, mean.abs()),
                    "{context}: {metric} {filter:?} {g:?}: mean {got_mean} vs {mean}"
                );
                if values.len() >= 2 {
                    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
                    let got_var = (g.sum_sq - g.sum * g.sum / n) / (n - 1.0);
                    assert!(
                        close(got_var, var, var.max(mean * mean * 1e-6)),
                        "{context}: {metric} {filter:?} {g:?}: variance {got_var} vs {var}"
                    );
                }
            }
        }
    }
}

/// Records, re-records (a run replaced by another system's values) and
/// prunes a seeded random history, checking the sums after each phase.
pub fn exercise_running_sums(h: &mut History, seed: u64, runs: usize) {
    let mut rng = Rng::new(seed);
    let mut recorded: Vec<String> = Vec::new();
    for phase in 0..4 {
        for i in 0..runs {
            let id = format!("r{phase}-{i:04}");
            h.record(&random_run(&mut rng, &id)).unwrap();
            recorded.push(id);
        }
        // Replace some, prune some (also ones already gone: no change).
        for _ in 0..runs / 4 {
            let id = recorded[rng.below(recorded.len() as u64) as usize].clone();
            h.record(&random_run(&mut rng, &id)).unwrap();
        }
        for _ in 0..runs / 3 {
            let at = rng.below(recorded.len() as u64) as usize;
            let id = recorded.swap_remove(at);
            assert!(h.delete(&id).unwrap());
            assert!(!h.delete(&id).unwrap());
        }
        assert_sums_match_rows(h, &format!("phase {phase}"));
    }
    // Every run of a group pruned: it is gone from the sums.
    for id in recorded.drain(..) {
        h.delete(&id).unwrap();
    }
    for metric in METRICS {
        assert!(h.group_sums(metric, &Filter::default()).unwrap().is_empty());
    }
    assert_eq!(h.metric_names().unwrap(), Vec::<String>::new());
    // And recorded again, it sums from zero.
    for i in 0..runs {
        h.record(&random_run(&mut rng, &format!("again-{i}")))
            .unwrap();
    }
    assert_sums_match_rows(h, "after emptying");
}
