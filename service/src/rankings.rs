//! Rankings: runs grouped by system, ordered by one metric, with what a
//! plain leaderboard lacks: a confidence interval of each mean, the number
//! of runs behind it, and ties where the difference from the entry above is
//! not significant. The statistics are `reports::significance`'s, the same
//! code `harness compare` and `harness gate` use.

use std::collections::BTreeMap;

use history::{Filter, History, HistoryError, MetricValue};
use reports::figures::{Better, find};
use reports::significance::{
    DiffEstimate, bootstrap_mean, bootstrap_mean_diff, normal_mean, welch_mean_diff,
};
use serde::Serialize;

/// Confidence level of every interval and test.
pub const LEVEL: f64 = 0.95;
/// Bootstrap resamples.
const RESAMPLES: usize = 1000;
/// Seed of the bootstrap: the same runs rank the same way every time.
const SEED: u64 = 20_261_122;
/// Runs from which a group's interval is the normal one (`mean ±
/// z·s/√n`) and a difference between two such groups Welch's, instead of
/// the bootstrap: both are what the bootstrap converges to, at O(n) rather
/// than O(1000·n) per group and per comparison (a 100,000-run history ranks
/// in milliseconds). Below it the bootstrap, which needs no normality.
pub const LARGE_GROUP: usize = 200;

/// A group's mean and interval: bootstrap below [`LARGE_GROUP`] runs,
/// normal from it.
fn mean_interval(values: &[f64]) -> Option<(f64, f64, f64)> {
    if values.len() >= LARGE_GROUP {
        normal_mean(values, LEVEL)
    } else {
        bootstrap_mean(values, LEVEL, RESAMPLES, SEED)
    }
}

/// The difference of two groups' means: Welch's when both have at least
/// [`LARGE_GROUP`] runs, else the bootstrap.
fn mean_diff(a: &[f64], b: &[f64]) -> Option<DiffEstimate> {
    if a.len() >= LARGE_GROUP && b.len() >= LARGE_GROUP {
        welch_mean_diff(a, b, LEVEL)
    } else {
        bootstrap_mean_diff(a, b, LEVEL, RESAMPLES, SEED)
    }
}

/// The short names of the headline rankings and the recorded figure each
/// stands for (per run: its median TTFT, median end-to-end latency, ...).
pub const ALIASES: &[(&str, &str)] = &[
    ("ttft", "ttft_p50_ms"),
    ("tps", "output_tokens_per_s"),
    ("e2e_latency", "latency_p50_ms"),
    ("rps", "samples_per_s"),
    ("tpot", "tpot_p50_ms"),
];

/// The recorded figure a ranking name stands for (an alias, or a recorded
/// name as is).
pub fn resolve(metric: &str) -> &str {
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == metric)
        .map_or(metric, |(_, name)| name)
}

/// The system a run measured: its `system` label, else its `label` (what
/// `harness run --label` sets), else its backends.
pub fn system_of(labels: &[(String, String)], backends: &[String]) -> String {
    let label = |key: &str| {
        labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    label("system")
        .or_else(|| label("label"))
        .unwrap_or_else(|| {
            if backends.is_empty() {
                "-".to_owned()
            } else {
                backends.join(",")
            }
        })
}

/// One ranked entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// 1-based rank; entries that cannot be told apart from the entry above
    /// nor from the first entry of its rank group share that group's rank
    /// (ties do not chain).
    pub rank: usize,
    /// The model.
    pub llm_name: String,
    /// The system (`system` label, else `label`, else backends).
    pub system: String,
    /// Mean of the metric over the group's runs.
    pub mean_value: f64,
    /// Lower end of the mean's interval at [`LEVEL`] (bootstrap; normal
    /// from [`LARGE_GROUP`] runs).
    pub ci_low: f64,
    /// Upper end.
    pub ci_high: f64,
    /// Runs behind the mean.
    pub sample_count: usize,
    /// The difference from the entry directly above is not significant at
    /// [`LEVEL`], or could not be tested (fewer than two runs on a side).
    /// An entry can tie with the one above and still start a new rank when
    /// it clearly differs from that rank's first entry.
    pub tied_with_previous: bool,
    /// Whether that difference could be tested at all.
    pub difference_tested: bool,
}

/// A (model, system) group: its values and (mean, lo, hi).
type Group = ((String, String), Vec<f64>, (f64, f64, f64));

/// Ranks `values` of `metric` (a recorded name): grouped by (model,
/// system), best first (lower first for latencies, higher for rates), ties
/// broken by name so the order is stable.
pub fn rank(metric: &str, values: &[MetricValue]) -> Vec<Entry> {
    let mut groups: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for v in values.iter().filter(|v| v.value.is_finite()) {
        groups
            .entry((v.model.clone(), system_of(&v.labels, &v.backends)))
            .or_default()
            .push(v.value);
    }
    let mut rows: Vec<Group> = groups
        .into_iter()
        .filter_map(|(key, vals)| {
            let stats = mean_interval(&vals)?;
            Some((key, vals, stats))
        })
        .collect();
    // The registry says which way is better; names it does not know are
    // latencies (as in `harness compare`).
    let lower = find(metric).is_none_or(|f| f.better == Better::Lower);
    rows.sort_by(|a, b| {
        let by_mean = if lower {
            a.2.0.total_cmp(&b.2.0)
        } else {
            b.2.0.total_cmp(&a.2.0)
        };
        by_mean.then_with(|| a.0.cmp(&b.0))
    });
    let mut out: Vec<Entry> = Vec::with_capacity(rows.len());
    // Ties do not chain: an entry shares the rank of the group above only if
    // it is told apart from neither the entry directly above nor that
    // group's first (best) entry. Otherwise A~B and B~C would give C rank 1
    // even where A and C clearly differ.
    let mut leader = 0;
    let differs = |a: &[f64], b: &[f64]| {
        a.len() >= 2 && b.len() >= 2 && mean_diff(a, b).is_some_and(|d| d.significant())
    };
    for (i, ((llm_name, system), vals, (mean, lo, hi))) in rows.iter().enumerate() {
        let (tied, tested, rank) = match i.checked_sub(1) {
            None => (false, false, 1),
            Some(p) => {
                let above = &rows[p].1;
                let tested = above.len() >= 2 && vals.len() >= 2;
                let tied = !differs(above, vals);
                if tied && (leader == p || !differs(&rows[leader].1, vals)) {
                    (tied, tested, out[leader].rank)
                } else {
                    leader = i;
                    (tied, tested, i + 1)
                }
            }
        };
        out.push(Entry {
            rank,
            llm_name: llm_name.clone(),
            system: system.clone(),
            mean_value: *mean,
            ci_low: *lo,
            ci_high: *hi,
            sample_count: vals.len(),
            tied_with_previous: tied,
            difference_tested: tested,
        });
    }
    out
}

/// One ranking: the name asked for (an alias or a recorded name), the
/// recorded figure it stands for, and its entries in ranking order.
pub type Ranking = (String, String, Vec<Entry>);

/// The rankings of `metrics` (aliases or recorded names) over the runs
/// `filter` selects: what the rankings API answers and the dashboard shows.
pub fn rank_metrics(
    history: &History,
    metrics: Vec<String>,
    filter: &Filter,
) -> Result<Vec<Ranking>, HistoryError> {
    fetch_values(history, metrics, filter).map(rank_fetched)
}

/// Each metric asked for (an alias or a recorded name), the recorded figure
/// it stands for, and that figure's values.
pub type Fetched = Vec<(String, String, Vec<MetricValue>)>;

/// The reads of [`rank_metrics`]: the values of each of `metrics`.
pub fn fetch_values(
    history: &History,
    metrics: Vec<String>,
    filter: &Filter,
) -> Result<Fetched, HistoryError> {
    metrics
        .into_iter()
        .map(|m| {
            let name = resolve(&m).to_owned();
            let values = history.values(&name, filter)?;
            Ok((m, name, values))
        })
        .collect()
}

/// The statistics of [`rank_metrics`], on values already read (no
/// database needed).
pub fn rank_fetched(fetched: Fetched) -> Vec<Ranking> {
    fetched
        .into_iter()
        .map(|(m, name, values)| {
            let ranked = rank(&name, &values);
            (m, name, ranked)
        })
        .collect()
}

/// One point of a trend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendPoint {
    /// When the run started (as recorded).
    pub started_at: String,
    /// The run.
    pub run_id: String,
    /// Its value of the metric.
    pub value: f64,
}

/// One metric over time for one (model, system).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendSeries {
    /// The model.
    pub llm_name: String,
    /// The system, as in rankings ([`system_of`]).
    pub system: String,
    /// Oldest first.
    pub points: Vec<TrendPoint>,
}

/// Groups `values` (newest first, as [`History::values`] returns them)
/// into one series per (model, system), each oldest first, in (model,
/// system) order: what the trends API answers and the dashboard draws.
pub fn trend_series(values: &[MetricValue]) -> Vec<TrendSeries> {
    let mut series: BTreeMap<(String, String), Vec<TrendPoint>> = BTreeMap::new();
    for v in values.iter().rev() {
        series
            .entry((v.model.clone(), system_of(&v.labels, &v.backends)))
            .or_default()
            .push(TrendPoint {
                started_at: v.started_at.clone(),
                run_id: v.run_id.clone(),
                value: v.value,
            });
    }
    series
        .into_iter()
        .map(|((llm_name, system), points)| TrendSeries {
            llm_name,
            system,
            points,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(model: &str, system: &str, value: f64) -> MetricValue {
        MetricValue {
            run_id: format!("{model}-{system}-{value}"),
            started_at: "2026-11-22T10:00:00+00:00".into(),
            model: model.into(),
            backends: vec!["http://h:1/v1".into()],
            labels: vec![("system".into(), system.into())],
            value,
        }
    }

    fn many(model: &str, system: &str, base: f64) -> Vec<MetricValue> {
        (0..8)
            .map(|i| v(model, system, base + f64::from(i % 4) * 0.5))
            .collect()
    }

    #[test]
    fn latencies_rank_low_first_rates_high_first_and_close_groups_tie() {
        let mut values = many("m", "fast", 10.0);
        values.extend(many("m", "slow", 30.0));
        values.extend(many("m", "fast-too", 10.1));
        let ranked = rank("ttft_p50_ms", &values);
        let order: Vec<(&str, usize, bool)> = ranked
            .iter()
            .map(|e| (e.system.as_str(), e.rank, e.tied_with_previous))
            .collect();
        // 10.75 vs 10.85 mean: within the noise, a tie; 30.75 is clearly worse.
        assert_eq!(
            order,
            [
                ("fast", 1, false),
                ("fast-too", 1, true),
                ("slow", 3, false)
            ]
        );
        assert!(ranked.iter().skip(1).all(|e| e.difference_tested));
        let first = &ranked[0];
        assert_eq!(first.sample_count, 8);
        assert!((first.mean_value - 10.75).abs() < 1e-12);
        assert!(first.ci_low < first.mean_value && first.mean_value < first.ci_high);
        // A rate: higher is better.
        let ranked = rank("samples_per_s", &values);
        assert_eq!(ranked[0].system, "slow");
    }

    #[test]
    fn ties_do_not_chain_across_a_clear_difference() {
        // a ~ b and b ~ c, but a and c clearly differ: c starts a new rank.
        let spread = |system: &str, base: f64| -> Vec<MetricValue> {
            (0..8)
                .map(|i| v("m", system, base + f64::from(i % 4) * 2.0))
                .collect()
        };
        let mut values = spread("a", 10.0);
        values.extend(spread("b", 12.0));
        values.extend(spread("c", 14.0));
        let ranked = rank("ttft_p50_ms", &values);
        let got: Vec<(&str, usize, bool)> = ranked
            .iter()
            .map(|e| (e.system.as_str(), e.rank, e.tied_with_previous))
            .collect();
        // The premise, checked with the same statistics the ranking uses.
        let diff = |x: f64, y: f64| {
            bootstrap_mean_diff(
                &spread("x", x).iter().map(|m| m.value).collect::<Vec<_>>(),
                &spread("y", y).iter().map(|m| m.value).collect::<Vec<_>>(),
                LEVEL,
                RESAMPLES,
                SEED,
            )
            .is_some_and(|d| d.significant())
        };
        assert!(!diff(10.0, 12.0) && !diff(12.0, 14.0) && diff(10.0, 14.0));
        assert_eq!(got, [("a", 1, false), ("b", 1, true), ("c", 3, true)]);
    }

    #[test]
    fn large_groups_use_the_normal_and_welch_intervals() {
        let group = |system: &str, base: f64, n: u32| -> Vec<MetricValue> {
            (0..n)
                .map(|i| v("m", system, base + f64::from(i % 10)))
                .collect()
        };
        let mut values = group("big", 10.0, 300);
        values.extend(group("big-too", 10.2, 300));
        values.extend(group("small", 30.0, 20));
        let ranked = rank("ttft_p50_ms", &values);
        let vals = |e: &Entry| -> Vec<f64> {
            values
                .iter()
                .filter(|m| system_of(&m.labels, &m.backends) == e.system)
                .map(|m| m.value)
                .collect()
        };
        let (big, too, small) = (&ranked[0], &ranked[1], &ranked[2]);
        assert_eq!((big.system.as_str(), big.sample_count), ("big", 300));
        let (_, lo, hi) = normal_mean(&vals(big), LEVEL).unwrap();
        assert_eq!((big.ci_low, big.ci_high), (lo, hi));
        let (_, lo, hi) = bootstrap_mean(&vals(small), LEVEL, RESAMPLES, SEED).unwrap();
        assert_eq!((small.ci_low, small.ci_high), (lo, hi));
        // 10.2 above 10.0 with s ≈ 2.9 over 300 runs each: Welch's test
        // cannot tell them apart.
        let welch = welch_mean_diff(&vals(big), &vals(too), LEVEL).unwrap();
        assert!(!welch.significant());
        assert!(too.tied_with_previous && too.difference_tested && too.rank == 1);
        assert!(!small.tied_with_previous && small.rank == 3);
    }

    #[test]
    fn single_runs_cannot_be_told_apart() {
        let values = [v("a", "x", 1.0), v("b", "x", 2.0)];
        let ranked = rank("latency_p50_ms", &values);
        assert_eq!(ranked[0].llm_name, "a");
        assert!(ranked[1].tied_with_previous && !ranked[1].difference_tested);
        assert_eq!(ranked[1].rank, 1);
    }

    #[test]
    fn the_system_is_the_label_else_the_backends() {
        assert_eq!(system_of(&[], &["u1".into(), "u2".into()]), "u1,u2");
        assert_eq!(system_of(&[("system".into(), "vllm".into())], &[]), "vllm");
        assert_eq!(
            system_of(&[("label".into(), "tgi".into())], &["u".into()]),
            "tgi"
        );
        assert_eq!(
            system_of(
                &[("label".into(), "a".into()), ("system".into(), "b".into())],
                &[]
            ),
            "b"
        );
        assert_eq!(system_of(&[], &[]), "-");
        assert_eq!(resolve("ttft"), "ttft_p50_ms");
        assert_eq!(resolve("ttft_p99_ms"), "ttft_p99_ms");
    }
}
