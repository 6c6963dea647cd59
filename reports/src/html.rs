//! `report.html`: one self-contained page (inline CSS, charts as base64 PNG
//! data URLs, no scripts, no external fetches) that opens offline.
//!
//! Stable element ids, for tests and scripts: `validity` (the banner, with
//! class `valid`, `invalid` or `incomplete`; its text is the verdict line),
//! `run`, `figures` (the run-level figures, one row each with `data-name`
//! and the full value in `data-value`), `throughput`, `latency`, `errors`,
//! `metrics`, `charts` (each chart an `img.chart`), `warnings` (only when
//! there are any).

use std::io::{self, Write};

use crate::charts::Chart;
use crate::stats::Stats;
use crate::summary::Summary;

/// Standard base64 (RFC 4648, with padding).
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "body{font-family:sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f2f2f2}
.banner{padding:12px 16px;font-size:18px;font-weight:bold;border-radius:4px}
.valid{background:#d4edda;color:#155724}.invalid{background:#f8d7da;color:#721c24}
.incomplete{background:#fff3cd;color:#856404}
img.chart{max-width:100%;border:1px solid #ddd;margin:8px 0}
.note{color:#666;font-size:12px}";

fn ms(ns: f64) -> String {
    format!("{:.3}", ns / 1e6)
}

fn stats_row(
    w: &mut impl Write,
    name: &str,
    s: Option<&Stats>,
    fmt: &dyn Fn(f64) -> String,
) -> io::Result<()> {
    let Some(s) = s else {
        return writeln!(
            w,
            "<tr><td>{}</td><td colspan=\"11\">no values</td></tr>",
            escape(name)
        );
    };
    let p = |k: &str| {
        s.percentiles
            .get(k)
            .map_or("-".to_owned(), |p| fmt(p.loadgen))
    };
    let ci = |k: &str| {
        s.percentiles
            .get(k)
            .and_then(|p| p.ci95)
            .map_or("-".to_owned(), |[a, b]| format!("{} – {}", fmt(a), fmt(b)))
    };
    writeln!(
        w,
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
         <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        escape(name),
        s.count,
        fmt(s.mean),
        fmt(s.std),
        fmt(s.min),
        p("p50"),
        p("p90"),
        p("p95"),
        p("p99"),
        p("p99.9"),
        fmt(s.max),
        ci("p99"),
    )
}

/// Renders the page.
pub fn render(summary: &Summary, charts: &[Chart], w: &mut impl Write) -> io::Result<()> {
    let run = &summary.run;
    let title = format!(
        "{} {} {}",
        run.model.as_deref().unwrap_or("run"),
        run.scenario.as_deref().unwrap_or(""),
        run.run_id.as_deref().unwrap_or(""),
    );
    writeln!(
        w,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{}</title><style>{CSS}</style></head><body>",
        escape(&title)
    )?;
    writeln!(w, "<h1>{}</h1>", escape(&title))?;
    banner(summary, w)?;
    run_table(summary, w)?;
    figures_table(summary, w)?;
    throughput_table(summary, w)?;
    latency_table(summary, w)?;
    errors_table(summary, w)?;
    charts_section(charts, w)?;
    metrics_and_footer(summary, w)
}

/// The validity banner (the verdict line) and the reasons.
fn banner(summary: &Summary, w: &mut impl Write) -> io::Result<()> {
    // Validity banner.
    let v = &summary.validity;
    let c = &summary.completeness;
    let valid = v.run_valid.or(v.mlperf_valid);
    let class = if c.incomplete || valid.is_none() {
        "incomplete"
    } else if valid == Some(true) {
        "valid"
    } else {
        "invalid"
    };
    let text = if c.incomplete {
        format!(
            "INCOMPLETE run: statistics cover the data recorded. {}",
            v.verdict
        )
    } else {
        v.verdict.clone()
    };
    writeln!(
        w,
        "<div id=\"validity\" class=\"banner {class}\">{}</div><ul>",
        escape(&text)
    )?;
    for r in c.reasons.iter().chain(&v.mlperf_reasons).chain(
        v.run_reasons
            .iter()
            .filter(|r| !v.mlperf_reasons.contains(r)),
    ) {
        writeln!(w, "<li>{}</li>", escape(r))?;
    }
    writeln!(w, "</ul>")?;
    Ok(())
}

/// What ran.
fn run_table(summary: &Summary, w: &mut impl Write) -> io::Result<()> {
    let run = &summary.run;
    // Run.
    writeln!(w, "<h2>Run</h2><table id=\"run\">")?;
    let mut kv = |k: &str, v: String| writeln!(w, "<tr><th>{}</th><td>{}</td></tr>", k, escape(&v));
    kv("run id", run.run_id.clone().unwrap_or_default())?;
    kv("model", run.model.clone().unwrap_or_default())?;
    kv("scenario", run.scenario.clone().unwrap_or_default())?;
    kv("mode", run.mode.clone().unwrap_or_default())?;
    kv("phase", summary.phase.clone().unwrap_or_default())?;
    kv("backends", run.backends.join(", "))?;
    kv("dataset", run.dataset.clone().unwrap_or_default())?;
    kv("started", run.started_at.clone().unwrap_or_default())?;
    kv("finished", run.finished_at.clone().unwrap_or_default())?;
    kv("status", run.status.clone().unwrap_or_default())?;
    kv(
        "LoadGen",
        run.loadgen
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
    )?;
    if let Some(s) = &summary.settings {
        kv("target QPS", format!("{:.3}", s.target_qps))?;
        kv("TTFT limit (ms)", ms(s.ttft_limit_ns as f64))?;
        kv("TPOT limit (ms)", ms(s.tpot_limit_ns as f64))?;
    }
    for (k, v) in &run.labels {
        kv(&format!("label {}", escape(k)), v.clone())?;
    }
    writeln!(w, "</table>")?;
    Ok(())
}

/// The run-level figures, LoadGen's where it defines them.
fn figures_table(summary: &Summary, w: &mut impl Write) -> io::Result<()> {
    // The run-level figures.
    writeln!(
        w,
        "<h2>Figures</h2><p class=\"note\">LoadGen's figures where LoadGen defines them; \
         the same values as the terminal, the history and summary.json <code>figures</code>.</p>\
         <table id=\"figures\"><tr><th>figure</th><th>value</th><th>unit</th><th>definition</th></tr>"
    )?;
    for f in crate::figures::FIGURES {
        if let Some(value) = summary.figures.get(f.name) {
            writeln!(
                w,
                "<tr data-name=\"{}\" data-value=\"{value}\"><th>{}</th><td>{value:.3}</td><td>{}</td>\
                 <td style=\"text-align:left\">{}</td></tr>",
                f.name,
                f.name,
                escape(f.unit),
                escape(f.definition)
            )?;
        }
    }
    writeln!(w, "</table>")?;
    Ok(())
}

/// Sample counts and throughputs over the window.
fn throughput_table(summary: &Summary, w: &mut impl Write) -> io::Result<()> {
    // Throughput.
    let n = &summary.counts;
    writeln!(w, "<h2>Throughput</h2><table id=\"throughput\">")?;
    let mut kv = |k: &str, v: String| writeln!(w, "<tr><th>{k}</th><td>{}</td></tr>", escape(&v));
    kv(
        "samples (succeeded / failed)",
        format!("{} ({} / {})", n.samples, n.succeeded, n.failed),
    )?;
    if let Some(win) = &summary.window {
        kv("measured window (s)", format!("{:.3}", win.duration_s))?;
    }
    if let Some(t) = &summary.throughput {
        kv(
            "successful samples/s over the window",
            format!("{:.3}", t.window_samples_per_s),
        )?;
        kv(
            "output tokens/s over the window",
            format!("{:.1}", t.window_output_tokens_per_s),
        )?;
        kv(
            "total tokens/s over the window",
            format!("{:.1}", t.total_tokens_per_s),
        )?;
        kv(
            "peak output tokens/s (1 s bins)",
            format!("{:.0}", t.peak_output_tokens_per_s),
        )?;
    }
    if let Some(g) = &summary.goodput {
        kv(
            "goodput (samples/s within TTFT and TPOT limits)",
            format!(
                "{:.3} ({:.2}% of samples)",
                g.goodput_samples_per_s,
                g.good_fraction * 100.0
            ),
        )?;
    }
    writeln!(w, "</table>")?;
    Ok(())
}

/// Per-sample statistics of successful samples.
fn latency_table(summary: &Summary, w: &mut impl Write) -> io::Result<()> {
    // Latency table.
    writeln!(
        w,
        "<h2>Latencies</h2><p class=\"note\">Successful samples of records.jsonl (LoadGen's \
         own percentiles, failed samples included, are in Figures). Times in ms; percentiles \
         by LoadGen's method (sorted[floor(N·p)]); p99 CI: 95% distribution-free order-statistic interval.</p>\
         <table id=\"latency\"><tr><th>metric</th><th>count</th><th>mean</th><th>std</th>\
         <th>min</th><th>p50</th><th>p90</th><th>p95</th><th>p99</th><th>p99.9</th><th>max</th>\
         <th>p99 95% CI</th></tr>"
    )?;
    let as_ms = |v: f64| ms(v);
    let plain = |v: f64| format!("{v:.1}");
    stats_row(w, "latency", summary.latency_ns.as_ref(), &as_ms)?;
    stats_row(w, "TTFT", summary.ttft_ns.as_ref(), &as_ms)?;
    stats_row(w, "TPOT", summary.tpot_ns.as_ref(), &as_ms)?;
    stats_row(w, "ITL (per chunk)", summary.itl_ns.as_ref(), &as_ms)?;
    stats_row(w, "e2e (from issue)", summary.e2e_ns.as_ref(), &as_ms)?;
    stats_row(w, "issue delay", summary.issue_delay_ns.as_ref(), &as_ms)?;
    stats_row(w, "input tokens", summary.input_tokens.as_ref(), &plain)?;
    stats_row(w, "output tokens", summary.output_tokens.as_ref(), &plain)?;
    writeln!(w, "</table>")?;
    Ok(())
}

/// Failures by kind, with examples.
fn errors_table(summary: &Summary, w: &mut impl Write) -> io::Result<()> {
    // Errors.
    writeln!(
        w,
        "<h2>Errors</h2><table id=\"errors\"><tr><th>kind</th><th>count</th></tr>"
    )?;
    if summary.errors.by_kind.is_empty() {
        writeln!(w, "<tr><td>none</td><td>0</td></tr>")?;
    }
    for (k, c) in &summary.errors.by_kind {
        writeln!(w, "<tr><td>{}</td><td>{c}</td></tr>", escape(k))?;
    }
    writeln!(w, "</table>")?;
    if !summary.errors.examples.is_empty() {
        writeln!(
            w,
            "<table><tr><th>seq</th><th>kind</th><th>HTTP</th><th>message</th></tr>"
        )?;
        for e in &summary.errors.examples {
            writeln!(
                w,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td style=\"text-align:left\">{}</td></tr>",
                e.seq,
                escape(&e.kind),
                e.http_status.map_or(String::new(), |s| s.to_string()),
                escape(&e.message)
            )?;
        }
        writeln!(w, "</table>")?;
    }
    Ok(())
}

/// The charts, embedded.
fn charts_section(charts: &[Chart], w: &mut impl Write) -> io::Result<()> {
    // Charts.
    writeln!(w, "<h2>Charts</h2><div id=\"charts\">")?;
    if charts.is_empty() {
        writeln!(w, "<p>No charts.</p>")?;
    }
    for c in charts {
        writeln!(
            w,
            "<h3>{}</h3><img class=\"chart\" alt=\"{}\" src=\"data:image/png;base64,{}\">",
            escape(&c.title),
            escape(&c.name),
            base64(&c.png)
        )?;
    }
    writeln!(w, "</div>")?;
    Ok(())
}

/// Collected metrics, warnings (only when there are any) and the footer.
fn metrics_and_footer(summary: &Summary, w: &mut impl Write) -> io::Result<()> {
    // Metrics.
    writeln!(
        w,
        "<h2>Collected metrics</h2><table id=\"metrics\"><tr><th>source</th><th>instance</th>\
         <th>metric</th><th>count</th><th>mean</th><th>min</th><th>p50</th><th>p99</th><th>max</th></tr>"
    )?;
    for m in &summary.metrics {
        let p = |k: &str| {
            m.stats
                .percentiles
                .get(k)
                .map_or("-".to_owned(), |p| format!("{:.4}", p.loadgen))
        };
        writeln!(
            w,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.4}</td><td>{:.4}</td>\
             <td>{}</td><td>{}</td><td>{:.4}</td></tr>",
            escape(&m.source),
            escape(&m.instance),
            escape(&m.name),
            m.stats.count,
            m.stats.mean,
            m.stats.min,
            p("p50"),
            p("p99"),
            m.stats.max
        )?;
    }
    writeln!(w, "</table>")?;

    if !summary.warnings.is_empty() {
        writeln!(w, "<h2>Warnings</h2><ul id=\"warnings\">")?;
        for x in &summary.warnings {
            writeln!(w, "<li>{}</li>", escape(x))?;
        }
        writeln!(w, "</ul>")?;
    }
    writeln!(
        w,
        "<p class=\"note\">Generated by {} (summary.json schema {}).</p></body></html>",
        escape(&summary.generator),
        summary.schema_version
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }

    #[test]
    fn escaping() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
