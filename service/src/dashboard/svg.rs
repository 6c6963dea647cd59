//! The trend chart: one metric over time, a line per (model, system), as
//! inline SVG (scales to any width, needs no script or image request).
//! Series names are user data, so they appear only in escaped text.

use maud::{Markup, html};

use crate::rankings::TrendSeries;

/// Colours of the series, in order (the legend and table use the same).
pub(crate) const PALETTE: &[&str] = &[
    "#0969da", "#cf222e", "#1a7f37", "#8250df", "#bc4c00", "#1b7c83", "#bf3989", "#57606a",
];

/// The colour of series `i`.
pub(crate) fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

const W: f64 = 900.0;
const H: f64 = 360.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 20.0;
const BOTTOM: f64 = 50.0;

/// Unix seconds of a recorded start time (RFC 3339, as runs record it).
fn seconds(started_at: &str) -> Option<f64> {
    chrono::DateTime::parse_from_rfc3339(started_at)
        .ok()
        .map(|t| t.timestamp_millis() as f64 / 1000.0)
}

/// A tick's time, to the second when the runs span less than a day.
fn date(seconds: f64, span_s: f64) -> String {
    let format = if span_s < 86_400.0 {
        "%Y-%m-%d %H:%M:%S"
    } else {
        "%Y-%m-%d %H:%M"
    };
    chrono::DateTime::from_timestamp_millis((seconds * 1000.0) as i64)
        .map(|t| t.format(format).to_string())
        .unwrap_or_default()
}

/// `lo..hi` widened so a single value still spans an axis.
fn span(lo: f64, hi: f64, pad: f64) -> (f64, f64) {
    if hi > lo {
        (lo, hi)
    } else {
        (lo - pad, hi + pad)
    }
}

/// The chart, or a note when no point has a time.
pub(crate) fn trend_chart(series: &[TrendSeries], metric: &str, unit: &str) -> Markup {
    let points: Vec<(usize, f64, f64, &str)> = series
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            s.points.iter().filter_map(move |p| {
                let t = seconds(&p.started_at)?;
                p.value
                    .is_finite()
                    .then_some((i, t, p.value, p.run_id.as_str()))
            })
        })
        .collect();
    if points.is_empty() {
        return html! { p.muted { "No run records " (metric) " for the selected runs." } };
    }
    let fold = |f: fn(f64, f64) -> f64, init: f64, pick: fn(&(usize, f64, f64, &str)) -> f64| {
        points.iter().map(pick).fold(init, f)
    };
    let (t0, t1) = span(
        fold(f64::min, f64::INFINITY, |p| p.1),
        fold(f64::max, f64::NEG_INFINITY, |p| p.1),
        3600.0,
    );
    let y_max = fold(f64::max, f64::NEG_INFINITY, |p| p.2);
    let y_min = fold(f64::min, f64::INFINITY, |p| p.2).min(0.0);
    let (v0, v1) = span(y_min, y_max * 1.08, 1.0);
    let x = |t: f64| LEFT + (t - t0) / (t1 - t0) * (W - LEFT - RIGHT);
    let y = |v: f64| TOP + (v1 - v) / (v1 - v0) * (H - TOP - BOTTOM);
    let y_ticks: Vec<f64> = (0..=4)
        .map(|k| v0 + (v1 - v0) * f64::from(k) / 4.0)
        .collect();
    let x_ticks: Vec<f64> = if t1 - t0 > 0.0 {
        (0..=2)
            .map(|k| t0 + (t1 - t0) * f64::from(k) / 2.0)
            .collect()
    } else {
        vec![t0]
    };
    let axis = if unit.is_empty() {
        metric.to_owned()
    } else {
        format!("{metric} ({unit})")
    };
    html! {
        svg.trend xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {W} {H}"))
            role="img" aria-label=(format!("{axis} over time")) {
            @for v in &y_ticks {
                line x1=(LEFT) x2=(W - RIGHT) y1=(y(*v)) y2=(y(*v)) stroke="#d0d7de" stroke-width="1" {}
                text x=(LEFT - 6.0) y=(y(*v) + 4.0) text-anchor="end" font-size="12" fill="#57606a" {
                    (crate::dashboard::layout::figure(*v))
                }
            }
            @for (k, t) in x_ticks.iter().enumerate() {
                @let anchor = match k { 0 => "start", 2 => "end", _ => "middle" };
                text x=(x(*t)) y=(H - BOTTOM + 18.0) text-anchor=(anchor) font-size="12" fill="#57606a" {
                    (date(*t, t1 - t0))
                }
            }
            text x="14" y=(TOP + (H - TOP - BOTTOM) / 2.0) font-size="12" fill="#57606a"
                transform=(format!("rotate(-90 14 {})", TOP + (H - TOP - BOTTOM) / 2.0))
                text-anchor="middle" { (axis) }
            text x=(LEFT + (W - LEFT - RIGHT) / 2.0) y=(H - 8.0) font-size="12" fill="#57606a"
                text-anchor="middle" { "run start (UTC)" }
            @for (i, s) in series.iter().enumerate() {
                @let line: Vec<String> = points.iter().filter(|p| p.0 == i)
                    .map(|p| format!("{:.1},{:.1}", x(p.1), y(p.2))).collect();
                polyline points=(line.join(" ")) fill="none" stroke=(color(i)) stroke-width="2" {
                    title { (s.llm_name) " · " (s.system) }
                }
            }
            @for (i, t, v, run) in &points {
                circle cx=(format!("{:.1}", x(*t))) cy=(format!("{:.1}", y(*v))) r="4" fill=(color(*i)) {
                    title { (run) ": " (crate::dashboard::layout::figure(*v)) }
                }
            }
        }
    }
}
