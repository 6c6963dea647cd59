//! PNG charts, drawn with plotters' bitmap backend and the DejaVu Sans font
//! embedded through ab_glyph (no system fonts are needed or used).
//!
//! Charts draw from pre-binned or subsampled data (histograms of at most
//! [`HIST_BINS`] bars, CDFs of at most [`CDF_POINTS`] points, time series in at
//! most about [`TIME_BINS`] bins, scatters of at most [`SCATTER_POINTS`]
//! points), so a million-sample run draws as fast as a small one.
//!
//! Times on the x axis are seconds since the phase started; metrics samples
//! (run clock) are shifted onto that clock with the phase's `run_offset_ns`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use rundir::metrics::{MetricSource, names};

use crate::load::{FINE_BIN_NS, PhaseData, RunData};
use crate::summary::Summary;
use crate::{ReportError, ReportOutputs};
use loadgen::Timed;

/// Bars in a histogram.
pub const HIST_BINS: usize = 60;
/// Points drawn per CDF.
pub const CDF_POINTS: usize = 400;
/// Target bins of a time series.
pub const TIME_BINS: usize = 100;
/// Most points drawn in a scatter.
pub const SCATTER_POINTS: usize = 4000;
/// Size of a single chart.
pub const CHART_SIZE: (u32, u32) = (1200, 700);
/// Size of the dashboard.
pub const DASHBOARD_SIZE: (u32, u32) = (2100, 1500);

/// One drawn chart.
#[derive(Debug, Clone)]
pub struct Chart {
    /// File name (`latency.png`).
    pub name: String,
    /// What it shows.
    pub title: String,
    /// The PNG file's bytes.
    pub png: Vec<u8>,
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type DrawResult = Result<(), String>;

const FONT: &str = "sans-serif";
const BLUE: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(255, 127, 14);
const GREEN: RGBColor = RGBColor(44, 160, 44);
const RED: RGBColor = RGBColor(214, 39, 40);
const PURPLE: RGBColor = RGBColor(148, 103, 189);
const GREY: RGBColor = RGBColor(127, 127, 127);
const PALETTE: [RGBColor; 6] = [BLUE, ORANGE, GREEN, RED, PURPLE, GREY];

/// Registers the embedded font once.
fn register_font() -> Result<(), String> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err("the embedded DejaVu font could not be loaded".into())
    }
}

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

/// A sorted sample of one per-sample quantity, in ms.
#[derive(Debug, Clone)]
pub struct Distribution {
    /// Sorted values, ms.
    pub sorted_ms: Vec<f64>,
    /// The limit, ms, when one applies.
    pub limit_ms: Option<f64>,
}

/// Histogram bars `(lo, hi, count)` over `[min, p99.9]` (values above go to
/// the last bar), and the count above the range.
pub fn histogram(sorted: &[f64], bins: usize) -> (Vec<(f64, f64, u64)>, u64) {
    let n = sorted.len();
    if n == 0 || bins == 0 {
        return (Vec::new(), 0);
    }
    let lo = sorted[0];
    let hi_idx = crate::stats::nearest_rank_index(n, 999_000);
    let mut hi = sorted[hi_idx];
    if hi <= lo {
        hi = lo + 1e-9_f64.max(lo.abs() * 1e-6);
    }
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0u64; bins];
    let mut above = 0u64;
    for &v in sorted {
        if v > hi {
            above += 1;
        }
        let b = (((v - lo) / width) as usize).min(bins - 1);
        counts[b] += 1;
    }
    let bars = counts
        .into_iter()
        .enumerate()
        .map(|(i, c)| (lo + i as f64 * width, lo + (i + 1) as f64 * width, c))
        .collect();
    (bars, above)
}

/// CDF points `(value, fraction ≤ value)`, at most `points + 1` of them.
pub fn cdf_points(sorted: &[f64], points: usize) -> Vec<(f64, f64)> {
    let n = sorted.len();
    if n == 0 {
        return Vec::new();
    }
    let steps = points.min(n);
    let mut out = Vec::with_capacity(steps + 1);
    for i in 0..=steps {
        let idx = (i * (n - 1)).checked_div(steps).unwrap_or(0);
        out.push((sorted[idx], (idx + 1) as f64 / n as f64));
    }
    out
}

fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    if hi > lo {
        let pad = (hi - lo) * 0.03;
        (lo - pad, hi + pad)
    } else {
        (lo - 0.5, hi + 0.5)
    }
}

fn caption_style(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().into()
}

fn hist_panel(area: &Area<'_>, title: &str, unit: &str, d: &Distribution) -> DrawResult {
    let (bars, above) = histogram(&d.sorted_ms, HIST_BINS);
    let x0 = bars.first().map_or(0.0, |b| b.0);
    let x1 = bars.last().map_or(1.0, |b| b.1);
    let ymax = bars.iter().map(|b| b.2).max().unwrap_or(1).max(1) as f64 * 1.1;
    let limit_on_scale = d.limit_ms.filter(|&l| l <= x1 * 1.5);
    let x1 = limit_on_scale.map_or(x1, |l| x1.max(l * 1.02));
    let (x0, x1) = padded(x0, x1);
    let mut note = String::new();
    if above > 0 {
        note.push_str(&format!(" ({above} above p99.9 in the last bar)"));
    }
    if let Some(l) = d.limit_ms
        && limit_on_scale.is_none()
    {
        note.push_str(&format!(" (limit {l:.0} {unit} off scale)"));
    }
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{title} histogram{note}"), caption_style(20))
        .margin(10)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, 0.0..ymax)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(format!("{title} ({unit})"))
        .y_desc("samples")
        .label_style((FONT, 14))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(
            bars.iter().map(|&(a, b, c)| {
                Rectangle::new([(a, 0.0), (b, c as f64)], BLUE.mix(0.7).filled())
            }),
        )
        .map_err(err)?;
    if let Some(l) = limit_on_scale {
        chart
            .draw_series(LineSeries::new([(l, 0.0), (l, ymax)], RED.stroke_width(3)))
            .map_err(err)?
            .label(format!("limit {l:.3} {unit}"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED.stroke_width(3)));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font((FONT, 14))
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

fn cdf_panel(area: &Area<'_>, title: &str, unit: &str, d: &Distribution) -> DrawResult {
    let pts = cdf_points(&d.sorted_ms, CDF_POINTS);
    let x0 = pts.first().map_or(0.0, |p| p.0);
    let mut x1 = pts.last().map_or(1.0, |p| p.0);
    let limit_on_scale = d.limit_ms.filter(|&l| l <= x1 * 1.5);
    if let Some(l) = limit_on_scale {
        x1 = x1.max(l * 1.02);
    }
    let (x0, x1) = padded(x0, x1);
    let note = match (d.limit_ms, limit_on_scale) {
        (Some(l), None) => format!(" (limit {l:.0} {unit} off scale)"),
        _ => String::new(),
    };
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{title} CDF{note}"), caption_style(20))
        .margin(10)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, 0.0..1.0)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(format!("{title} ({unit})"))
        .y_desc("fraction of samples")
        .label_style((FONT, 14))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(pts, BLUE.stroke_width(2)))
        .map_err(err)?
        .label("CDF")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    if let Some(l) = limit_on_scale {
        chart
            .draw_series(LineSeries::new([(l, 0.0), (l, 1.0)], RED.stroke_width(3)))
            .map_err(err)?
            .label(format!("limit {l:.3} {unit}"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()
        .map_err(err)
}

/// One line (or scatter) of a time-series panel.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points `(s, value)`.
    pub points: Vec<(f64, f64)>,
    /// Draw as dots instead of a line.
    pub dots: bool,
}

fn series_panel(area: &Area<'_>, title: &str, y_desc: &str, series: &[Series]) -> DrawResult {
    let all = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
    for &(x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    let (x0, x1) = padded(x0, x1);
    let y1 = if y1 > 0.0 { y1 * 1.1 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(title, caption_style(20))
        .margin(10)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, 0.0..y1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time since phase start (s)")
        .y_desc(y_desc)
        .label_style((FONT, 14))
        .draw()
        .map_err(err)?;
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let drawn = if s.dots {
            chart
                .draw_series(
                    s.points
                        .iter()
                        .map(|&p| Circle::new(p, 3, color.mix(0.5).filled())),
                )
                .map_err(err)?
        } else {
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(err)?
        };
        drawn
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(3)));
    }
    if series.len() > 1 || series.iter().any(|s| !s.label.is_empty()) {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font((FONT, 14))
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

/// A nice bin width (ns, 1-2-5 steps, a multiple of [`FINE_BIN_NS`]): at
/// most about [`TIME_BINS`] bins, and no narrower than 1 s for runs of 30 s
/// or more (narrower bins only show Poisson noise).
pub fn time_bin_ns(duration_ns: u64) -> u64 {
    let target = if duration_ns >= 30_000_000_000 {
        (duration_ns / TIME_BINS as u64).max(1_000_000_000)
    } else {
        duration_ns / 30
    };
    let mut base = FINE_BIN_NS;
    loop {
        for m in [1, 2, 5] {
            if base * m >= target {
                return base * m;
            }
        }
        base *= 10;
    }
}

/// Pre-binned time series of a phase.
#[derive(Debug, Clone, Default)]
pub struct TimeSeries {
    /// Bin width, s.
    pub bin_s: f64,
    /// Completions per second (successful and failed), per bin.
    pub completions_per_s: Vec<(f64, f64)>,
    /// Failed completions per second.
    pub failures_per_s: Vec<(f64, f64)>,
    /// Output tokens per second.
    pub tokens_per_s: Vec<(f64, f64)>,
    /// Mean requests in flight.
    pub in_flight: Vec<(f64, f64)>,
    /// Subsampled `(issue time s, TTFT ms)`.
    pub ttft_scatter: Vec<(f64, f64)>,
    /// Per-bin TTFT p50, ms (by issue time).
    pub ttft_p50: Vec<(f64, f64)>,
    /// Per-bin TTFT p99, ms.
    pub ttft_p99: Vec<(f64, f64)>,
}

/// Bins a phase's samples over time.
pub fn time_series(p: &PhaseData) -> TimeSeries {
    let end = p.samples.iter().map(|q| q.end_ns).max().unwrap_or(0);
    let bin = time_bin_ns(end.max(1));
    let nbins = (end / bin + 1) as usize;
    let bin_s = bin as f64 / 1e9;
    let mid = |i: usize| (i as f64 + 0.5) * bin_s;
    let mut done = vec![0u64; nbins];
    let mut failed = vec![0u64; nbins];
    // In flight: +1 at issue, -1 at completion, on the fine grid; sampled at
    // each fine bin's end and averaged per coarse bin.
    let nfine = (end / FINE_BIN_NS + 2) as usize;
    let mut delta = vec![0i64; nfine];
    let mut ttft_bins: Vec<Vec<u64>> = vec![Vec::new(); nbins];
    let stride = p.samples.len().div_ceil(SCATTER_POINTS).max(1);
    let mut scatter = Vec::new();
    for (i, q) in p.samples.iter().enumerate() {
        let b = (q.end_ns / bin) as usize;
        done[b] += 1;
        if q.error.is_some() {
            failed[b] += 1;
        }
        delta[(q.issued_ns / FINE_BIN_NS) as usize] += 1;
        delta[(q.end_ns / FINE_BIN_NS) as usize + 1] -= 1;
        if q.error.is_none()
            && let Some(t) = q.ttft_ns()
        {
            ttft_bins[((q.issued_ns / bin) as usize).min(nbins - 1)].push(t);
            if i % stride == 0 {
                scatter.push((q.issued_ns as f64 / 1e9, t as f64 / 1e6));
            }
        }
    }
    let per_s = |v: &[u64]| -> Vec<(f64, f64)> {
        v.iter()
            .enumerate()
            .map(|(i, &c)| (mid(i), c as f64 / bin_s))
            .collect()
    };
    let fine_per_bin = (bin / FINE_BIN_NS) as usize;
    let mut tokens = vec![0u64; nbins];
    for (i, &t) in p.token_bins.iter().enumerate() {
        let b = (i / fine_per_bin).min(nbins - 1);
        tokens[b] += t;
    }
    let mut in_flight = vec![0f64; nbins];
    let mut level = 0i64;
    for (i, d) in delta.iter().enumerate().take(nfine - 1) {
        level += d;
        let b = (i / fine_per_bin).min(nbins - 1);
        in_flight[b] += level as f64 / fine_per_bin as f64;
    }
    let mut p50 = Vec::new();
    let mut p99 = Vec::new();
    for (i, v) in ttft_bins.iter_mut().enumerate() {
        if v.is_empty() {
            continue;
        }
        v.sort_unstable();
        let n = v.len();
        p50.push((
            mid(i),
            v[crate::stats::nearest_rank_index(n, 500_000)] as f64 / 1e6,
        ));
        p99.push((
            mid(i),
            v[crate::stats::nearest_rank_index(n, 990_000)] as f64 / 1e6,
        ));
    }
    TimeSeries {
        bin_s,
        completions_per_s: per_s(&done),
        failures_per_s: per_s(&failed),
        tokens_per_s: per_s(&tokens),
        in_flight: in_flight
            .into_iter()
            .enumerate()
            .map(|(i, v)| (mid(i), v))
            .collect(),
        ttft_scatter: scatter,
        ttft_p50: p50,
        ttft_p99: p99,
    }
}

/// Metric series by name: one [`Series`] per instance, time on the phase clock.
fn metric_series(
    data: &RunData,
    source: MetricSource,
    name: &str,
    scale: f64,
    offset_ns: u64,
) -> Vec<Series> {
    let mut by_instance: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for s in data.metrics.iter().filter(|s| s.source == source) {
        if let Some(&v) = s.values.get(name)
            && v.is_finite()
        {
            let t = (s.t_ns as f64 - offset_ns as f64) / 1e9;
            by_instance
                .entry(s.instance.as_str())
                .or_default()
                .push((t, v * scale));
        }
    }
    by_instance
        .into_iter()
        .map(|(instance, points)| Series {
            label: format!("{name} {instance}"),
            points,
            dots: false,
        })
        .collect()
}

/// The prepared data of every chart.
struct Prepared {
    title: String,
    latency: Distribution,
    ttft: Distribution,
    tpot: Distribution,
    ts: TimeSeries,
    server_running: Vec<Series>,
    server_waiting: Vec<Series>,
    kv: Vec<Series>,
    gpu_util: Vec<Series>,
    gpu_mem: Vec<Series>,
    gpu_power: Vec<Series>,
}

fn limit_ms(ns: i64) -> Option<f64> {
    (ns > 0).then(|| ns as f64 / 1e6)
}

fn prepare(data: &RunData, summary: &Summary, p: &PhaseData) -> Prepared {
    let mut lat = Vec::with_capacity(p.samples.len());
    let mut ttft = Vec::with_capacity(p.samples.len());
    let mut tpot = Vec::with_capacity(p.samples.len());
    for q in p.samples.iter().filter(|q| q.error.is_none()) {
        lat.push(q.latency_ns());
        if let Some(t) = q.ttft_ns() {
            ttft.push(t);
        }
        if let Some(t) = q.tpot_ns() {
            tpot.push(t);
        }
    }
    let to_ms = |mut v: Vec<u64>| -> Vec<f64> {
        v.sort_unstable();
        v.into_iter().map(|x| x as f64 / 1e6).collect()
    };
    let s = &p.header.start.settings;
    let run = &summary.run;
    let title = format!(
        "{} | {} | target {:.2} QPS | {}",
        run.model.as_deref().unwrap_or("unknown model"),
        run.scenario.as_deref().unwrap_or("?"),
        s.target_qps,
        run.run_id.as_deref().unwrap_or("?"),
    );
    let offset = p.header.run_offset_ns;
    let gib = 1.0 / f64::from(1u32 << 30);
    Prepared {
        title,
        latency: Distribution {
            sorted_ms: to_ms(lat),
            limit_ms: (s.target_latency_ns > 0).then(|| s.target_latency_ns as f64 / 1e6),
        },
        ttft: Distribution {
            sorted_ms: to_ms(ttft),
            limit_ms: limit_ms(s.server_ttft_latency),
        },
        tpot: Distribution {
            sorted_ms: to_ms(tpot),
            limit_ms: limit_ms(s.server_tpot_latency),
        },
        ts: time_series(p),
        server_running: metric_series(
            data,
            MetricSource::Server,
            names::REQUESTS_RUNNING,
            1.0,
            offset,
        ),
        server_waiting: metric_series(
            data,
            MetricSource::Server,
            names::REQUESTS_WAITING,
            1.0,
            offset,
        ),
        kv: metric_series(
            data,
            MetricSource::Server,
            names::KV_CACHE_USAGE_FRAC,
            100.0,
            offset,
        ),
        gpu_util: metric_series(
            data,
            MetricSource::Gpu,
            names::GPU_UTILIZATION_PCT,
            1.0,
            offset,
        ),
        gpu_mem: metric_series(
            data,
            MetricSource::Gpu,
            names::GPU_MEMORY_USED_BYTES,
            gib,
            offset,
        ),
        gpu_power: metric_series(data, MetricSource::Gpu, names::GPU_POWER_W, 1.0, offset),
    }
}

/// Draws `draw` into the staging file of `dir/name` and returns the PNG
/// bytes (the file is renamed into place with the rest of the reports).
fn render_png(
    dir: &Path,
    name: &str,
    size: (u32, u32),
    title: &str,
    draw: impl FnOnce(&Area<'_>) -> DrawResult,
) -> Result<Vec<u8>, ReportError> {
    let path = dir.join(name);
    let tmp = crate::staging_path(&path);
    let chart_err = |message: String| ReportError::Chart {
        path: path.clone(),
        message,
    };
    register_font().map_err(chart_err)?;
    {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| chart_err(err(e)))?;
        let body = root
            .titled(title, (FONT, 26).into_font().style(FontStyle::Bold))
            .map_err(|e| chart_err(err(e)))?;
        draw(&body).map_err(chart_err)?;
        root.present().map_err(|e| chart_err(err(e)))?;
    }
    std::fs::read(&tmp).map_err(|source| ReportError::Io { path: tmp, source })
}

/// Draws every chart whose data exists into the run directory; records the
/// files written and the charts skipped (with why) in `out`.
pub fn draw_all(
    data: &RunData,
    summary: &Summary,
    out: &mut ReportOutputs,
) -> Result<Vec<Chart>, ReportError> {
    let Some(phase) = data.main_phase() else {
        out.skipped
            .push("charts: no phase in records.jsonl".to_owned());
        return Ok(Vec::new());
    };
    let p = prepare(data, summary, phase);
    let mut sink = ChartSink {
        dir: &data.dir,
        charts: Vec::new(),
        out,
    };
    draw_distributions(&p, &mut sink)?;
    draw_throughput(&p, &mut sink)?;
    draw_ttft_over_time(&p, &mut sink)?;
    draw_server(&p, &mut sink)?;
    draw_gpu(&p, &mut sink)?;
    draw_dashboard(&p, &mut sink)?;
    Ok(sink.charts)
}

/// Where the charts go: the run directory, the charts drawn, and the
/// report's list of files written and outputs skipped.
struct ChartSink<'a> {
    dir: &'a Path,
    charts: Vec<Chart>,
    out: &'a mut ReportOutputs,
}

impl ChartSink<'_> {
    fn emit(&mut self, name: &str, title: String, png: Vec<u8>) {
        self.out.files.push(self.dir.join(name));
        self.charts.push(Chart {
            name: name.to_owned(),
            title,
            png,
        });
    }

    fn skip(&mut self, why: String) {
        self.out.skipped.push(why);
    }
}

/// Whether the run has any server metric (requests running/waiting, KV cache).
fn has_server_metrics(p: &Prepared) -> bool {
    !(p.server_running.is_empty() && p.server_waiting.is_empty() && p.kv.is_empty())
}

/// latency.png, ttft.png, tpot.png: histogram and CDF of each.
fn draw_distributions(p: &Prepared, sink: &mut ChartSink<'_>) -> Result<(), ReportError> {
    for (name, what, d) in [
        ("latency.png", "Latency", &p.latency),
        ("ttft.png", "TTFT", &p.ttft),
        ("tpot.png", "TPOT", &p.tpot),
    ] {
        if d.sorted_ms.is_empty() {
            sink.skip(format!("{name}: no {what} values"));
            continue;
        }
        let title = format!("{what} | {}", p.title);
        let png = render_png(sink.dir, name, CHART_SIZE, &title, |area| {
            let halves = area.split_evenly((1, 2));
            hist_panel(&halves[0], what, "ms", d)?;
            cdf_panel(&halves[1], what, "ms", d)
        })?;
        sink.emit(name, format!("{what} distribution"), png);
    }
    Ok(())
}

/// throughput.png: completions, tokens and requests in flight over time.
fn draw_throughput(p: &Prepared, sink: &mut ChartSink<'_>) -> Result<(), ReportError> {
    if p.ts.completions_per_s.is_empty() {
        sink.skip("throughput.png: no samples".into());
        return Ok(());
    }
    let title = format!("Throughput and concurrency | {}", p.title);
    let png = render_png(sink.dir, "throughput.png", (1200, 1000), &title, |area| {
        let rows = area.split_evenly((3, 1));
        throughput_panel(&rows[0], &p.ts)?;
        tokens_panel(&rows[1], &p.ts)?;
        in_flight_panel(&rows[2], &p.ts)
    })?;
    sink.emit(
        "throughput.png",
        "Throughput and in-flight requests over time".into(),
        png,
    );
    Ok(())
}

/// ttft_over_time.png: each query's TTFT at its issue time.
fn draw_ttft_over_time(p: &Prepared, sink: &mut ChartSink<'_>) -> Result<(), ReportError> {
    if p.ts.ttft_scatter.is_empty() {
        sink.skip("ttft_over_time.png: no TTFT values".into());
        return Ok(());
    }
    let title = format!("TTFT over time | {}", p.title);
    let png = render_png(sink.dir, "ttft_over_time.png", CHART_SIZE, &title, |area| {
        ttft_time_panel(area, &p.ts)
    })?;
    sink.emit("ttft_over_time.png", "TTFT over time".into(), png);
    Ok(())
}

/// server.png: the server's queue and KV-cache usage over time.
fn draw_server(p: &Prepared, sink: &mut ChartSink<'_>) -> Result<(), ReportError> {
    if !has_server_metrics(p) {
        sink.skip("server.png: no server metrics (requests running/waiting, KV cache)".into());
        return Ok(());
    }
    let title = format!("Server queue and KV cache | {}", p.title);
    let png = render_png(sink.dir, "server.png", (1200, 900), &title, |area| {
        let rows = area.split_evenly((2, 1));
        queue_panel(&rows[0], p)?;
        series_panel(&rows[1], "KV-cache usage", "KV cache used (%)", &p.kv)
    })?;
    sink.emit(
        "server.png",
        "Server queue and KV-cache usage over time".into(),
        png,
    );
    Ok(())
}

/// gpu.png: one panel per GPU metric the run has.
fn draw_gpu(p: &Prepared, sink: &mut ChartSink<'_>) -> Result<(), ReportError> {
    let gpu_panels: Vec<(&str, &str, &Vec<Series>)> = [
        ("GPU utilisation", "utilisation (%)", &p.gpu_util),
        ("GPU memory used", "memory used (GiB)", &p.gpu_mem),
        ("GPU power", "power (W)", &p.gpu_power),
    ]
    .into_iter()
    .filter(|(_, _, s)| !s.is_empty())
    .collect();
    if gpu_panels.is_empty() {
        sink.skip("gpu.png: no GPU metrics".into());
        return Ok(());
    }
    let title = format!("GPU | {}", p.title);
    let height = 350 * gpu_panels.len() as u32 + 60;
    let png = render_png(sink.dir, "gpu.png", (1200, height), &title, |area| {
        let rows = area.split_evenly((gpu_panels.len(), 1));
        for (row, (t, y, s)) in rows.iter().zip(&gpu_panels) {
            series_panel(row, t, y, s)?;
        }
        Ok(())
    })?;
    sink.emit(
        "gpu.png",
        "GPU utilisation, memory and power over time".into(),
        png,
    );
    Ok(())
}

/// dashboard.png: a 3x3 overview (the three CDFs, the latency histogram,
/// throughput, tokens, in flight, TTFT over time, and the server queue or
/// GPU utilisation); a cell without data says so.
fn draw_dashboard(p: &Prepared, sink: &mut ChartSink<'_>) -> Result<(), ReportError> {
    let has_server = has_server_metrics(p);
    let title = format!("Performance overview | {}", p.title);
    let png = render_png(sink.dir, "dashboard.png", DASHBOARD_SIZE, &title, |area| {
        let cells = area.split_evenly((3, 3));
        let empty = |a: &Area<'_>, what: &str| -> DrawResult {
            a.draw_text(
                &format!("no {what}"),
                &(FONT, 20).into_text_style(a),
                (20, 40),
            )
            .map_err(err)
        };
        for (i, (d, what)) in [
            (&p.latency, "Latency"),
            (&p.ttft, "TTFT"),
            (&p.tpot, "TPOT"),
        ]
        .into_iter()
        .enumerate()
        {
            if d.sorted_ms.is_empty() {
                empty(&cells[i], what)?;
            } else {
                cdf_panel(&cells[i], what, "ms", d)?;
            }
        }
        if p.latency.sorted_ms.is_empty() {
            empty(&cells[3], "latency")?;
        } else {
            hist_panel(&cells[3], "Latency", "ms", &p.latency)?;
        }
        throughput_panel(&cells[4], &p.ts)?;
        tokens_panel(&cells[5], &p.ts)?;
        in_flight_panel(&cells[6], &p.ts)?;
        if p.ts.ttft_scatter.is_empty() {
            empty(&cells[7], "TTFT")?;
        } else {
            ttft_time_panel(&cells[7], &p.ts)?;
        }
        if has_server {
            queue_panel(&cells[8], p)
        } else if !p.gpu_util.is_empty() {
            series_panel(&cells[8], "GPU utilisation", "utilisation (%)", &p.gpu_util)
        } else {
            empty(&cells[8], "server metrics")
        }
    })?;
    sink.emit("dashboard.png", "Performance overview".into(), png);
    Ok(())
}

fn throughput_panel(area: &Area<'_>, ts: &TimeSeries) -> DrawResult {
    let mut series = vec![Series {
        label: "completed".into(),
        points: ts.completions_per_s.clone(),
        dots: false,
    }];
    if ts.failures_per_s.iter().any(|p| p.1 > 0.0) {
        series.push(Series {
            label: "failed".into(),
            points: ts.failures_per_s.clone(),
            dots: false,
        });
    }
    series_panel(
        area,
        &format!("Completions ({:.1} s bins)", ts.bin_s),
        "samples/s",
        &series,
    )
}

fn tokens_panel(area: &Area<'_>, ts: &TimeSeries) -> DrawResult {
    series_panel(
        area,
        &format!("Output tokens ({:.1} s bins)", ts.bin_s),
        "tokens/s",
        &[Series {
            label: "output tokens".into(),
            points: ts.tokens_per_s.clone(),
            dots: false,
        }],
    )
}

fn in_flight_panel(area: &Area<'_>, ts: &TimeSeries) -> DrawResult {
    series_panel(
        area,
        "Requests in flight (client side)",
        "requests",
        &[Series {
            label: "in flight (mean per bin)".into(),
            points: ts.in_flight.clone(),
            dots: false,
        }],
    )
}

fn ttft_time_panel(area: &Area<'_>, ts: &TimeSeries) -> DrawResult {
    series_panel(
        area,
        "TTFT by issue time",
        "TTFT (ms)",
        &[
            Series {
                label: "samples".into(),
                points: ts.ttft_scatter.clone(),
                dots: true,
            },
            Series {
                label: "p50 per bin".into(),
                points: ts.ttft_p50.clone(),
                dots: false,
            },
            Series {
                label: "p99 per bin".into(),
                points: ts.ttft_p99.clone(),
                dots: false,
            },
        ],
    )
}

fn queue_panel(area: &Area<'_>, p: &Prepared) -> DrawResult {
    let series: Vec<Series> = p
        .server_running
        .iter()
        .chain(&p.server_waiting)
        .cloned()
        .collect();
    series_panel(
        area,
        "Server requests running / waiting",
        "requests",
        &series,
    )
}

/// One named line of an [`xy_chart`].
#[derive(Debug, Clone, PartialEq)]
pub struct XySeries {
    /// Legend text.
    pub name: String,
    /// Points, drawn in the order given.
    pub points: Vec<(f64, f64)>,
}

/// A line chart with point markers written to `dir/name` (history trends,
/// sweep curves such as throughput against latency); returns the PNG bytes.
pub fn xy_chart(
    dir: &Path,
    name: &str,
    title: &str,
    axes: (&str, &str),
    series: &[XySeries],
) -> Result<Vec<u8>, ReportError> {
    let all = || series.iter().flat_map(|s| s.points.iter());
    let (x0, x1) = padded(
        all().map(|p| p.0).fold(f64::INFINITY, f64::min),
        all().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max),
    );
    let (y0, y1) = padded(
        all().map(|p| p.1).fold(f64::INFINITY, f64::min).min(0.0),
        all().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max),
    );
    let png = render_png(dir, name, (1200, 700), title, |area| {
        let mut chart = ChartBuilder::on(area)
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(axes.0)
            .y_desc(axes.1)
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        for (i, s) in series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(err)?
                .label(s.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font((FONT, 14))
            .draw()
            .map_err(err)
    })?;
    // A chart of its own, not one of a run's report set: in place at once.
    let path = dir.join(name);
    std::fs::rename(crate::staging_path(&path), &path)
        .map_err(|source| ReportError::Io { path, source })?;
    Ok(png)
}
