//! `metrics.csv`, written from a thread while the run goes, in either
//! layout of [`rundir::metrics_csv`] (the one writer of that file): long
//! rows are streamed like [`rundir::JsonlWriter`]'s lines; the wide layout
//! needs every column first, so it is written when the collector finishes.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use rundir::metrics::MetricsSample;
use rundir::metrics_csv::{CsvFormat, LongWriter, WideTable};

use crate::TelemetryError;

/// Streams samples as CSV rows.
#[derive(Debug)]
pub struct CsvWriter {
    tx: Option<mpsc::Sender<MetricsSample>>,
    thread: Option<thread::JoinHandle<io::Result<u64>>>,
    path: PathBuf,
}

impl CsvWriter {
    /// Creates `path` (failing if it exists) and starts the writer thread.
    pub fn create(path: &Path, format: CsvFormat) -> Result<CsvWriter, TelemetryError> {
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
            .spawn(move || match format {
                CsvFormat::Long => write_long(file, &rx),
                CsvFormat::Wide => write_wide(file, &rx),
            })
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

    /// Flushes and closes once every sender is gone; returns the rows written
    /// (readings in the long layout, rounds in the wide one).
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

fn write_long(file: File, rx: &mpsc::Receiver<MetricsSample>) -> io::Result<u64> {
    let mut out = LongWriter::new(BufWriter::with_capacity(1 << 16, file))?;
    let mut last_flush = Instant::now();
    loop {
        match rx.recv_timeout(rundir::FLUSH_INTERVAL) {
            Ok(sample) => {
                out.write_sample(&sample)?;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if last_flush.elapsed() >= rundir::FLUSH_INTERVAL {
            out.flush()?;
            last_flush = Instant::now();
        }
    }
    let rows = out.rows();
    let mut file = out.into_inner()?;
    file.flush()?;
    file.get_ref().sync_data()?;
    Ok(rows)
}

fn write_wide(file: File, rx: &mpsc::Receiver<MetricsSample>) -> io::Result<u64> {
    let mut table = WideTable::new();
    while let Ok(sample) = rx.recv() {
        table.add(&sample);
    }
    let mut out = BufWriter::with_capacity(1 << 16, file);
    let rows = table.write(&mut out)?;
    out.flush()?;
    out.get_ref().sync_data()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use rundir::metrics::MetricSource;

    fn sample(tick: u64) -> MetricsSample {
        let mut values = BTreeMap::new();
        values.insert("cpu_pct".to_owned(), 12.5);
        MetricsSample {
            t_ns: 1 + tick,
            tick: Some(tick),
            source: MetricSource::System,
            instance: "host".into(),
            values,
        }
    }

    #[test]
    fn writer_streams_and_refuses_to_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("metrics.csv");
        let w = CsvWriter::create(&path, CsvFormat::Long).unwrap();
        let tx = w.sender().unwrap();
        tx.send(sample(0)).unwrap();
        drop(tx);
        assert_eq!(w.finish().unwrap(), 1);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "t_ns,source,instance,metric,value\n1,system,host,cpu_pct,12.5\n"
        );
        assert!(CsvWriter::create(&path, CsvFormat::Long).is_err());
    }

    #[test]
    fn the_wide_layout_is_written_at_the_end() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("metrics.csv");
        let w = CsvWriter::create(&path, CsvFormat::Wide).unwrap();
        let tx = w.sender().unwrap();
        tx.send(sample(0)).unwrap();
        tx.send(sample(1)).unwrap();
        drop(tx);
        assert_eq!(w.finish().unwrap(), 2);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "tick,t_ns,system/host/cpu_pct\n0,1,12.5\n1,2,12.5\n"
        );
    }
}
