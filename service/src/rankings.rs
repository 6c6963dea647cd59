//! Rankings: runs grouped by system, ordered by one metric, with what a
//! plain leaderboard lacks: a confidence interval of each mean, the number
//! of runs behind it, and ties where the difference from the entry above is
//! not significant. The statistics are `reports::significance`'s, the same
//! code `harness compare` and `harness gate` use.

use std::collections::BTreeMap;
use std::convert::Infallible;

pub use history::system_of;
use history::{Filter, GroupSums, History, HistoryError, MetricValue};
use reports::figures::{Better, find};
use reports::significance::{
    DiffEstimate, Moments, bootstrap_mean, bootstrap_mean_diff, normal_mean_of, welch_mean_diff_of,
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
/// the bootstrap: both are what the bootstrap converges to, and both need
/// only the group's size, mean and variance, which the database sums up
/// (`History::group_sums`) without the values being read. Below it the
/// bootstrap, which needs no normality, on the group's values.
pub const LARGE_GROUP: usize = 200;

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

/// A (model, system) group as a ranking sees it: its size, its moments
/// from the database's sums, and its values once they are read.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The model.
    pub llm_name: String,
    /// The system ([`system_of`]).
    pub system: String,
    /// Runs with a value.
    pub count: usize,
    /// Size, mean and variance from the database's sums; `None` where they
    /// overflowed (the values are read instead).
    pub sums: Option<Moments>,
    /// The values, in the history's order (newest first), once read.
    pub values: Option<Vec<f64>>,
}

impl Group {
    /// A group known by its sums.
    pub fn of_sums(g: &GroupSums) -> Group {
        let count = usize::try_from(g.count).unwrap_or(usize::MAX);
        Group {
            llm_name: g.model.clone(),
            system: g.system.clone(),
            count,
            sums: Moments::from_sums(count, g.shift, g.sum, g.sum_sq),
            values: None,
        }
    }

    /// A group known by its values (the finite ones count).
    pub fn of_values(llm_name: String, system: String, values: Vec<f64>) -> Group {
        let values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        Group {
            llm_name,
            system,
            count: values.len(),
            sums: None,
            values: Some(values),
        }
    }
}

/// One group being ranked: the group, its moments, its (mean, lo, hi).
struct Row {
    group: Group,
    moments: Moments,
    stats: (f64, f64, f64),
}

/// The group's values, read with `values_of` the first time.
fn values_of_group<'a, E>(
    group: &'a mut Group,
    values_of: &mut impl FnMut(&str, &str) -> Result<Vec<f64>, E>,
) -> Result<&'a [f64], E> {
    if group.values.is_none() {
        let values = values_of(&group.llm_name, &group.system)?;
        group.values = Some(values.into_iter().filter(|v| v.is_finite()).collect());
    }
    Ok(group.values.as_deref().unwrap_or_default())
}

/// Whether groups `a` and `b` of `rows` differ significantly (both need
/// two runs): Welch's test on their moments when both have at least
/// [`LARGE_GROUP`] runs, else the bootstrap on their values (read now if
/// they were not).
fn differs<E>(
    rows: &mut [Row],
    a: usize,
    b: usize,
    values_of: &mut impl FnMut(&str, &str) -> Result<Vec<f64>, E>,
) -> Result<bool, E> {
    let (na, nb) = (rows[a].moments.n, rows[b].moments.n);
    if na < 2 || nb < 2 {
        return Ok(false);
    }
    let diff: Option<DiffEstimate> = if na >= LARGE_GROUP && nb >= LARGE_GROUP {
        welch_mean_diff_of(&rows[a].moments, &rows[b].moments, LEVEL)
    } else {
        values_of_group(&mut rows[a].group, values_of)?;
        values_of_group(&mut rows[b].group, values_of)?;
        let empty: &[f64] = &[];
        let va = rows[a].group.values.as_deref().unwrap_or(empty);
        let vb = rows[b].group.values.as_deref().unwrap_or(empty);
        bootstrap_mean_diff(va, vb, LEVEL, RESAMPLES, SEED)
    };
    Ok(diff.is_some_and(|d| d.significant()))
}

/// Ranks `values` of `metric` (a recorded name): grouped by (model,
/// system), best first (lower first for latencies, higher for rates), ties
/// broken by name so the order is stable. The definition that
/// [`rank_groups`] computes from the database's sums.
pub fn rank(metric: &str, values: &[MetricValue]) -> Vec<Entry> {
    let mut groups: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for v in values {
        groups
            .entry((v.model.clone(), system_of(&v.labels, &v.backends)))
            .or_default()
            .push(v.value);
    }
    let groups = groups
        .into_iter()
        .map(|((model, system), values)| Group::of_values(model, system, values))
        .collect();
    // Every group's values are at hand: nothing is read.
    let read = |_: &str, _: &str| Ok::<_, Infallible>(Vec::new());
    match rank_groups(metric, groups, read) {
        Ok(entries) => entries,
        Err(never) => match never {},
    }
}

/// Ranks `groups` of `metric` as [`rank`] ranks their values: a group of
/// [`LARGE_GROUP`] runs or more by its sums (normal interval, Welch's test
/// against another such group); a smaller one, or a large one compared with
/// a smaller one, by its values, which `values_of(model, system)` reads
/// when first needed.
pub fn rank_groups<E>(
    metric: &str,
    groups: Vec<Group>,
    mut values_of: impl FnMut(&str, &str) -> Result<Vec<f64>, E>,
) -> Result<Vec<Entry>, E> {
    let mut rows: Vec<Row> = Vec::with_capacity(groups.len());
    for mut group in groups {
        let large = group.count >= LARGE_GROUP;
        let moments = match group.sums {
            Some(m) if large => Some(m),
            _ => Moments::of(values_of_group(&mut group, &mut values_of)?),
        };
        let Some(moments) = moments else { continue };
        let stats = if moments.n >= LARGE_GROUP {
            normal_mean_of(&moments, LEVEL)
        } else {
            let values = values_of_group(&mut group, &mut values_of)?;
            bootstrap_mean(values, LEVEL, RESAMPLES, SEED)
        };
        if let Some(stats) = stats {
            rows.push(Row {
                group,
                moments,
                stats,
            });
        }
    }
    // The registry says which way is better; names it does not know are
    // latencies (as in `harness compare`).
    let lower = find(metric).is_none_or(|f| f.better == Better::Lower);
    rows.sort_by(|a, b| {
        let by_mean = if lower {
            a.stats.0.total_cmp(&b.stats.0)
        } else {
            b.stats.0.total_cmp(&a.stats.0)
        };
        by_mean.then_with(|| {
            (&a.group.llm_name, &a.group.system).cmp(&(&b.group.llm_name, &b.group.system))
        })
    });
    let mut out: Vec<Entry> = Vec::with_capacity(rows.len());
    // Ties do not chain: an entry shares the rank of the group above only if
    // it is told apart from neither the entry directly above nor that
    // group's first (best) entry. Otherwise A~B and B~C would give C rank 1
    // even where A and C clearly differ.
    let mut leader = 0;
    for i in 0..rows.len() {
        let (tied, tested, rank) = match i.checked_sub(1) {
            None => (false, false, 1),
            Some(p) => {
                let tested = rows[p].moments.n >= 2 && rows[i].moments.n >= 2;
                let tied = !differs(&mut rows, p, i, &mut values_of)?;
                if tied && (leader == p || !differs(&mut rows, leader, i, &mut values_of)?) {
                    (tied, tested, out[leader].rank)
                } else {
                    leader = i;
                    (tied, tested, i + 1)
                }
            }
        };
        let row = &rows[i];
        out.push(Entry {
            rank,
            llm_name: row.group.llm_name.clone(),
            system: row.group.system.clone(),
            mean_value: row.stats.0,
            ci_low: row.stats.1,
            ci_high: row.stats.2,
            sample_count: row.moments.n,
            tied_with_previous: tied,
            difference_tested: tested,
        });
    }
    Ok(out)
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
    let fetched = fetch_groups(history, metrics, filter)?;
    rank_fetched(fetched, |figure, model, system| {
        history.group_values(figure, filter, model, system)
    })
}

/// Each metric asked for (an alias or a recorded name), the recorded figure
/// it stands for, and that figure's groups as the database summed them.
pub type Fetched = Vec<(String, String, Vec<Group>)>;

/// The reads of [`rank_metrics`] that every ranking needs: each metric's
/// per-group sums (one aggregate query each, no value read).
pub fn fetch_groups(
    history: &History,
    metrics: Vec<String>,
    filter: &Filter,
) -> Result<Fetched, HistoryError> {
    metrics
        .into_iter()
        .map(|m| {
            let name = resolve(&m).to_owned();
            let groups = history
                .group_sums(&name, filter)?
                .iter()
                .map(Group::of_sums)
                .collect();
            Ok((m, name, groups))
        })
        .collect()
}

/// The statistics of [`rank_metrics`] on groups already summed;
/// `values_of(figure, model, system)` reads a group's values where a test
/// needs them (small groups).
pub fn rank_fetched<E>(
    fetched: Fetched,
    mut values_of: impl FnMut(&str, &str, &str) -> Result<Vec<f64>, E>,
) -> Result<Vec<Ranking>, E> {
    fetched
        .into_iter()
        .map(|(m, name, groups)| {
            let ranked = rank_groups(&name, groups, |model, system| {
                values_of(&name, model, system)
            })?;
            Ok((m, name, ranked))
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
    use reports::significance::{normal_mean, welch_mean_diff};

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

    /// A history ranked from the database's sums (what the API does) and
    /// from every value read (the definition, as rankings were computed
    /// before the sums) gives the same entries: the same order, ranks, ties
    /// and counts; small groups' figures bit for bit (their values are
    /// read), large groups' to rounding (a sum in another order).
    #[test]
    fn ranking_from_the_databases_sums_matches_ranking_every_value() {
        let tmp = tempfile::tempdir().unwrap();
        let db = history::Database::from(tmp.path().join("h.sqlite"));
        let mut h = History::open(&db).unwrap();
        // (system, runs, base): two large groups close enough to tie, a
        // large and a small group next to each other (a bootstrap needing a
        // large group's values), a far small group, single runs.
        let groups = [
            ("big-a", 260, 100.0),
            ("big-b", 240, 100.3),
            ("small-near", 30, 101.0),
            ("big-c", 210, 104.0),
            ("small-far", 12, 150.0),
            ("one", 1, 90.0),
            ("one-too", 1, 200.0),
        ];
        let mut n = 0u32;
        for (system, runs, base) in groups {
            for i in 0..runs {
                n += 1;
                let mut run = history::RunEntry {
                    run_id: format!("{system}-{i:04}"),
                    run_dir: String::new(),
                    // Minutes apart, in two offsets: the order is the text's.
                    started_at: format!(
                        "2026-11-{:02}T{:02}:{:02}:00+0{}:00",
                        1 + n / 1440,
                        (n / 60) % 24,
                        n % 60,
                        n % 3
                    ),
                    model: if i % 7 == 0 { "m2" } else { "m1" }.into(),
                    scenario: "Server".into(),
                    mode: "PerformanceOnly".into(),
                    backends: vec![format!("http://{system}:1/v1")],
                    dataset: None,
                    labels: vec![("system".into(), system.into())],
                    status: "complete".into(),
                    valid: Some(true),
                    reasons: vec![],
                    harness_version: String::new(),
                    loadgen: String::new(),
                    metrics: vec![],
                };
                let noise = f64::from((n * 7919) % 1000) / 250.0;
                run.metrics = vec![
                    ("ttft_p50_ms".into(), base + noise),
                    ("samples_per_s".into(), 1000.0 / (base + noise)),
                ];
                h.record(&run).unwrap();
            }
        }
        // Prunes and re-recordings go through the running sums too: every
        // 13th run of `big-a` removed, every ninth of `big-b` recorded
        // again with another value (a replacement).
        for i in (0..260).step_by(13) {
            assert!(h.delete(&format!("big-a-{i:04}")).unwrap());
        }
        for i in (0..240).step_by(9) {
            let mut run = h.get(&format!("big-b-{i:04}")).unwrap().unwrap();
            for (_, value) in &mut run.metrics {
                *value *= 1.001;
            }
            h.record(&run).unwrap();
        }
        let filters = [
            Filter::default(),
            Filter {
                since: Some("2026-11-01T05:00:00Z".into()),
                ..Filter::default()
            },
            Filter {
                model: Some("m1".into()),
                ..Filter::default()
            },
        ];
        let mut compared = 0;
        for filter in &filters {
            for metric in ["ttft_p50_ms", "samples_per_s"] {
                let from_sums = rank_metrics(&h, vec![metric.to_owned()], filter).unwrap()[0]
                    .2
                    .clone();
                let every = rank(metric, &h.values(metric, filter).unwrap());
                assert_eq!(from_sums.len(), every.len());
                for (a, b) in from_sums.iter().zip(&every) {
                    let same = |x: f64, y: f64| (x - y).abs() <= 1e-9 * y.abs().max(1.0);
                    assert_eq!(
                        (&a.llm_name, &a.system, a.rank, a.sample_count),
                        (&b.llm_name, &b.system, b.rank, b.sample_count)
                    );
                    assert_eq!(
                        (a.tied_with_previous, a.difference_tested),
                        (b.tied_with_previous, b.difference_tested)
                    );
                    if a.sample_count < LARGE_GROUP {
                        assert_eq!(a, b);
                    } else {
                        assert!(
                            same(a.mean_value, b.mean_value)
                                && same(a.ci_low, b.ci_low)
                                && same(a.ci_high, b.ci_high),
                            "{a:?} {b:?}"
                        );
                    }
                    compared += 1;
                }
            }
        }
        // The fixture holds what it is meant to: large groups, ties between
        // them, and a large group next to a small one.
        let all = rank(
            "ttft_p50_ms",
            &h.values("ttft_p50_ms", &Filter::default()).unwrap(),
        );
        assert!(all.iter().filter(|e| e.sample_count >= LARGE_GROUP).count() >= 2);
        assert!(
            all.iter()
                .any(|e| e.sample_count >= LARGE_GROUP && e.tied_with_previous)
        );
        assert!(all.windows(2).any(|w| {
            (w[0].sample_count >= LARGE_GROUP) != (w[1].sample_count >= LARGE_GROUP)
                && w[1].difference_tested
        }));
        assert!(compared > 30, "{compared}");
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
