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
use loadgen::Timed;

/// The header of `queries.csv`.
pub const QUERIES_HEADER: &str = "seq,query,sample_index,status,error_kind,http_status,\
scheduled_ns,issued_ns,first_token_ns,end_ns,latency_ns,ttft_ns,tpot_ns,e2e_ns,issue_delay_ns,\
latency_ms,ttft_ms,tpot_ms,e2e_ms,issue_delay_ms,output_tokens,input_tokens,chunks,endpoint,error_message";

/// An integer field (itoa: no allocation per field); empty for none.
fn int<W: Write>(
    w: &mut csv::Writer<W>,
    buf: &mut itoa::Buffer,
    v: Option<u64>,
) -> csv::Result<()> {
    match v {
        Some(v) => w.write_field(buf.format(v)),
        None => w.write_field(""),
    }
}

/// `ns` in ms with exactly six decimals (no precision lost); empty for none.
/// Written by hand rather than through `format!`, which took most of the
/// time of a million-row file.
fn ms<W: Write>(
    w: &mut csv::Writer<W>,
    buf: &mut itoa::Buffer,
    ns: Option<u64>,
) -> csv::Result<()> {
    let Some(ns) = ns else {
        return w.write_field("");
    };
    let whole = buf.format(ns / 1_000_000).as_bytes();
    // u64::MAX / 1e6 has 14 digits; then the point and six decimals.
    let mut text = [0u8; 21];
    let n = whole.len();
    text[..n].copy_from_slice(whole);
    text[n] = b'.';
    let mut frac = ns % 1_000_000;
    for i in (n + 1..n + 7).rev() {
        text[i] = b'0' + (frac % 10) as u8;
        frac /= 10;
    }
    w.write_field(&text[..n + 7])
}

fn row<W: Write>(w: &mut csv::Writer<W>, buf: &mut itoa::Buffer, q: &Sample) -> csv::Result<()> {
    let ok = q.error.is_none();
    let ttft = q.ttft_ns();
    let tpot = q.tpot_ns();
    let latency = Some(q.latency_ns());
    let e2e = Some(q.end_ns.saturating_sub(q.issued_ns));
    let delay = Some(q.issue_delay_ns());
    int(w, buf, Some(q.seq))?;
    int(w, buf, Some(q.query))?;
    int(w, buf, Some(q.sample_index))?;
    w.write_field(if ok { "ok" } else { "error" })?;
    w.write_field(q.error.as_ref().map_or("", |e| e.kind.as_str()))?;
    let status = q.error.as_ref().and_then(|e| e.http_status.map(u64::from));
    int(w, buf, status)?;
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
        int(w, buf, v)?;
    }
    for v in [latency, ttft, tpot, e2e, delay] {
        ms(w, buf, v)?;
    }
    w.write_field(buf.format(q.n_tokens))?;
    int(w, buf, q.input_tokens.map(u64::from))?;
    int(w, buf, Some(u64::from(q.chunks)))?;
    int(w, buf, q.endpoint.map(u64::from))?;
    // The one free-text field: the csv crate quotes it when it must.
    w.write_field(q.error.as_ref().map_or("", |e| e.message.as_str()))?;
    w.write_record(None::<&[u8]>)
}

/// Renders `queries.csv` for the given samples.
pub fn render_queries(samples: &[Sample], w: &mut impl Write) -> io::Result<()> {
    let mut out = csv::Writer::from_writer(w);
    out.write_record(QUERIES_HEADER.split(','))?;
    let mut buf = itoa::Buffer::new();
    for q in samples {
        row(&mut out, &mut buf, q)?;
    }
    out.flush()
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

#[cfg(test)]
mod tests {
    use super::*;
    use loadgen::{ErrorKind, QueryError};

    #[test]
    fn queries_csv_reads_back_with_messages_quoted_and_ms_exact() {
        let ok = Sample {
            seq: 7,
            query: 7,
            sample_index: 3,
            scheduled_ns: 1_000,
            issued_ns: 2_000,
            first_token_ns: Some(5_000_000),
            end_ns: 12_345_678_901,
            n_tokens: 3,
            input_tokens: Some(10),
            endpoint: Some(0),
            chunks: 3,
            error: None,
        };
        let failed = Sample {
            seq: 8,
            first_token_ns: None,
            error: Some(Box::new(QueryError {
                kind: ErrorKind::HttpStatus,
                http_status: Some(500),
                message: "bad, \"very\"\nbad".into(),
            })),
            ..ok
        };
        let mut out = Vec::new();
        render_queries(&[ok, failed], &mut out).unwrap();
        let mut reader = csv::Reader::from_reader(out.as_slice());
        let header: Vec<String> = reader
            .headers()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(header.join(","), QUERIES_HEADER);
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        let col = |name: &str| header.iter().position(|h| h == name).unwrap();
        assert_eq!(&rows[0][col("latency_ms")], "12345.677901");
        assert_eq!(&rows[0][col("status")], "ok");
        assert_eq!(&rows[0][col("error_message")], "");
        assert_eq!(&rows[1][col("http_status")], "500");
        assert_eq!(&rows[1][col("first_token_ns")], "");
        assert_eq!(&rows[1][col("error_message")], "bad, \"very\"\nbad");
    }

    #[test]
    fn ms_cells_equal_the_formatted_division() {
        let mut values = vec![
            0,
            1,
            9,
            999_999,
            1_000_000,
            1_000_001,
            12_345_678_901,
            u64::MAX,
        ];
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..1000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(x >> (x % 64));
        }
        let mut out = Vec::new();
        {
            let mut w = csv::Writer::from_writer(&mut out);
            let mut buf = itoa::Buffer::new();
            for &v in &values {
                ms(&mut w, &mut buf, Some(v)).unwrap();
                w.write_record(None::<&[u8]>).unwrap();
            }
            ms(&mut w, &mut buf, None).unwrap();
            w.write_record(None::<&[u8]>).unwrap();
        }
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.lines();
        for v in values {
            let want = format!("{}.{:06}", v / 1_000_000, v % 1_000_000);
            assert_eq!(lines.next(), Some(want.as_str()));
        }
        assert_eq!(lines.next(), Some("\"\""));
    }
}
