//! `metrics.csv`: the samples of `metrics.jsonl` flattened to one
//! `t_ns,source,instance,metric,value` row per reading (long format, so the
//! columns never change as sources come and go), streamed from a writer
//! thread like [`rundir::JsonlWriter`].

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use rundir::metrics::{MetricSource, MetricsSample};

use crate::TelemetryError;

/// The header row.
pub const CSV_HEADER: &str = "t_ns,source,instance,metric,value";

/// Streams samples as CSV rows.
#[derive(Debug)]
pub struct CsvWriter {
    tx: Option<mpsc::Sender<MetricsSample>>,
    thread: Option<thread::JoinHandle<io::Result<u64>>>,
    path: PathBuf,
}

impl CsvWriter {
    /// Creates `path` (failing if it exists) and starts the writer thread.
    pub fn create(path: &Path) -> Result<CsvWriter, TelemetryError> {
        let io_err = |source| TelemetryError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io_err)?;
        let (tx, rx) = mpsc::channel::<MetricsSample>();
        let thread = thread::Builder::new()
            .name("metrics-csv".into())
            .spawn(move || write_loop(file, &rx))
            .map_err(io_err)?;
        Ok(CsvWriter {
            tx: Some(tx),
            thread: Some(thread),
            path: path.to_path_buf(),
        })
    }

    /// A sender usable from other threads.
    pub fn sender(&self) -> Option<mpsc::Sender<MetricsSample>> {
        self.tx.clone()
    }

    /// Flushes and closes once every sender is gone; returns the rows written.
    pub fn finish(mut self) -> Result<u64, TelemetryError> {
        self.close()
    }

    fn close(&mut self) -> Result<u64, TelemetryError> {
        drop(self.tx.take());
        let Some(handle) = self.thread.take() else {
            return Ok(0);
        };
        let result = handle
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("csv writer thread panicked")));
        result.map_err(|source| TelemetryError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

impl Drop for CsvWriter {
    fn drop(&mut self) {
        // Errors were reported by finish() or have nowhere to go.
        let _ = self.close();
    }
}

fn write_loop(file: File, rx: &mpsc::Receiver<MetricsSample>) -> io::Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 16, file);
    writeln!(out, "{CSV_HEADER}")?;
    let mut rows = 0u64;
    let mut last_flush = Instant::now();
    loop {
        match rx.recv_timeout(rundir::FLUSH_INTERVAL) {
            Ok(sample) => rows += write_rows(&mut out, &sample)?,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if last_flush.elapsed() >= rundir::FLUSH_INTERVAL {
            out.flush()?;
            last_flush = Instant::now();
        }
    }
    out.flush()?;
    out.get_ref().sync_data()?;
    Ok(rows)
}

/// Writes one row per value of `sample`; returns the number of rows.
pub fn write_rows(out: &mut impl Write, sample: &MetricsSample) -> io::Result<u64> {
    let source = source_name(sample.source);
    let instance = quote(&sample.instance);
    for (metric, value) in &sample.values {
        writeln!(
            out,
            "{},{source},{instance},{},{value}",
            sample.t_ns,
            quote(metric)
        )?;
    }
    Ok(sample.values.len() as u64)
}

fn source_name(source: MetricSource) -> &'static str {
    match source {
        MetricSource::Server => "server",
        MetricSource::Gpu => "gpu",
        MetricSource::System => "system",
        MetricSource::Process => "process",
    }
}

/// RFC 4180 quoting, only when needed.
fn quote(field: &str) -> std::borrow::Cow<'_, str> {
    if field.contains([',', '"', '\n', '\r']) {
        std::borrow::Cow::Owned(format!("\"{}\"", field.replace('"', "\"\"")))
    } else {
        std::borrow::Cow::Borrowed(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn rows_are_long_format_and_quoted_when_needed() {
        let mut values = BTreeMap::new();
        values.insert("a".to_owned(), 1.5);
        values.insert("b".to_owned(), 2.0);
        let sample = MetricsSample {
            t_ns: 7,
            source: MetricSource::Server,
            instance: "http://h:1/a,\"b\"".into(),
            values,
        };
        let mut buf = Vec::new();
        assert_eq!(write_rows(&mut buf, &sample).unwrap(), 2);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "7,server,\"http://h:1/a,\"\"b\"\"\",a,1.5\n7,server,\"http://h:1/a,\"\"b\"\"\",b,2\n"
        );
    }

    #[test]
    fn writer_streams_and_refuses_to_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("metrics.csv");
        let w = CsvWriter::create(&path).unwrap();
        let tx = w.sender().unwrap();
        let mut values = BTreeMap::new();
        values.insert("cpu_pct".to_owned(), 12.5);
        tx.send(MetricsSample {
            t_ns: 1,
            source: MetricSource::System,
            instance: "host".into(),
            values,
        })
        .unwrap();
        drop(tx);
        assert_eq!(w.finish().unwrap(), 1);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{CSV_HEADER}\n1,system,host,cpu_pct,12.5\n")
        );
        assert!(CsvWriter::create(&path).is_err());
    }
}
