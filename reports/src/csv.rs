//! CSV exports.
//!
//! - `queries.csv`: one row per sample of the reported phase, in
//!   `records.jsonl` (completion) order; columns [`QUERIES_HEADER`]. Times are
//!   on the phase clock in ns, durations in both ns and ms (ms with exactly six
//!   decimals, so no precision is lost); empty cells where a value does not
//!   exist (no first token, fewer than 2 tokens, no error).
//! - `metrics.csv`: long format, one `t_ns,source,instance,metric,value` row per
//!   reading, by the same writer `harness run` streams it with
//!   ([`rundir::metrics_csv`]). Written only when the run did not write one
//!   (it is run data and is never overwritten).

use std::io::{self, Write};

use crate::load::{RunData, Sample};
use crate::{ReportError, ReportOutputs, write_output};

/// The header of `queries.csv`.
pub const QUERIES_HEADER: &str = "seq,query,sample_index,status,error_kind,http_status,\
scheduled_ns,issued_ns,first_token_ns,end_ns,latency_ns,ttft_ns,tpot_ns,e2e_ns,issue_delay_ns,\
latency_ms,ttft_ms,tpot_ms,e2e_ms,issue_delay_ms,output_tokens,input_tokens,chunks,endpoint,error_message";

fn int(w: &mut impl Write, buf: &mut itoa::Buffer, v: impl itoa::Integer) -> io::Result<()> {
    w.write_all(buf.format(v).as_bytes())
}

fn opt_int(w: &mut impl Write, buf: &mut itoa::Buffer, v: Option<u64>) -> io::Result<()> {
    match v {
        Some(v) => int(w, buf, v),
        None => Ok(()),
    }
}

fn ms(w: &mut impl Write, buf: &mut itoa::Buffer, ns: Option<u64>) -> io::Result<()> {
    if let Some(ns) = ns {
        int(w, buf, ns / 1_000_000)?;
        let frac = ns % 1_000_000;
        let digits = buf.format(frac);
        w.write_all(b".")?;
        for _ in digits.len()..6 {
            w.write_all(b"0")?;
        }
        w.write_all(digits.as_bytes())?;
    }
    Ok(())
}

/// Writes `s` as a CSV field, quoted when it holds a comma, quote or newline.
pub fn field(w: &mut impl Write, s: &str) -> io::Result<()> {
    if s.contains([',', '"', '\n', '\r']) {
        w.write_all(b"\"")?;
        w.write_all(s.replace('"', "\"\"").as_bytes())?;
        w.write_all(b"\"")
    } else {
        w.write_all(s.as_bytes())
    }
}

fn row(w: &mut impl Write, buf: &mut itoa::Buffer, q: &Sample) -> io::Result<()> {
    let ok = q.error.is_none();
    let (ttft, tpot) = if ok {
        (q.ttft_ns(), q.tpot_ns())
    } else {
        (q.ttft_ns(), None)
    };
    let latency = Some(q.latency_ns());
    let e2e = Some(q.end_ns.saturating_sub(q.issued_ns));
    let delay = Some(q.issue_delay_ns());
    int(w, buf, q.seq)?;
    w.write_all(b",")?;
    int(w, buf, q.query)?;
    w.write_all(b",")?;
    int(w, buf, q.sample_index)?;
    w.write_all(if ok { b",ok," } else { b",error," })?;
    if let Some(e) = &q.error {
        w.write_all(e.kind.as_str().as_bytes())?;
        w.write_all(b",")?;
        opt_int(w, buf, e.http_status.map(u64::from))?;
    } else {
        w.write_all(b",")?;
    }
    for v in [
        Some(q.scheduled_ns),
        Some(q.issued_ns),
        q.first_token_ns,
        Some(q.end_ns),
        latency,
        ttft,
        tpot,
        e2e,
        delay,
    ] {
        w.write_all(b",")?;
        opt_int(w, buf, v)?;
    }
    for v in [latency, ttft, tpot, e2e, delay] {
        w.write_all(b",")?;
        ms(w, buf, v)?;
    }
    w.write_all(b",")?;
    int(w, buf, q.n_tokens)?;
    w.write_all(b",")?;
    opt_int(w, buf, q.input_tokens.map(u64::from))?;
    w.write_all(b",")?;
    int(w, buf, q.chunks)?;
    w.write_all(b",")?;
    opt_int(w, buf, q.endpoint.map(u64::from))?;
    w.write_all(b",")?;
    if let Some(e) = &q.error {
        field(w, &e.message)?;
    }
    w.write_all(b"\n")
}

/// Renders `queries.csv` for the given samples.
pub fn render_queries(samples: &[Sample], w: &mut impl Write) -> io::Result<()> {
    w.write_all(QUERIES_HEADER.as_bytes())?;
    w.write_all(b"\n")?;
    let mut buf = itoa::Buffer::new();
    for q in samples {
        row(w, &mut buf, q)?;
    }
    Ok(())
}

/// Renders `metrics.csv` (long format), as the run itself would have.
pub fn render_metrics(samples: &[rundir::MetricsSample], w: &mut impl Write) -> io::Result<()> {
    rundir::metrics_csv::render(samples, rundir::metrics_csv::CsvFormat::Long, w).map(|_| ())
}

/// Writes the CSV files, recording what was written or skipped.
pub fn write_all(data: &RunData, out: &mut ReportOutputs) -> Result<(), ReportError> {
    match data.main_phase() {
        Some(p) => out
            .files
            .push(write_output(&data.dir, crate::QUERIES_CSV_FILE, |w| {
                render_queries(&p.samples, w)
            })?),
        None => out.skipped.push(format!(
            "{}: no phase in records.jsonl",
            crate::QUERIES_CSV_FILE
        )),
    }
    let metrics_csv = rundir::metrics::METRICS_CSV_FILE;
    if data.dir.join(metrics_csv).exists() {
        out.skipped.push(format!(
            "{metrics_csv}: already in the run directory (kept)"
        ));
    } else if data.metrics.is_empty() {
        out.skipped.push(format!(
            "{metrics_csv}: no metrics ({} absent or empty)",
            rundir::METRICS_FILE
        ));
    } else {
        out.files.push(write_output(&data.dir, metrics_csv, |w| {
            render_metrics(&data.metrics, w)
        })?);
    }
    Ok(())
}
