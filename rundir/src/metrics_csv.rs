//! `metrics.csv`: the one writer of the flat copy of `metrics.jsonl`, used
//! both by the collector while a run goes and by `harness report` for a run
//! that has none, so the two produce the same bytes.
//!
//! Two layouts ([`CsvFormat`]):
//!
//! - **long** (default): one `t_ns,source,instance,metric,value` row per
//!   reading, in the order the samples arrive; the columns never change as
//!   sources come and go, so it can be streamed.
//! - **wide**: one row per collection round (`tick`), one column per series,
//!   named `source/instance/metric` (metric names hold no `/`, sources none,
//!   so the first and last `/` split a name). `t_ns` is the earliest reading
//!   of the round; a cell is empty where that series has no reading in that
//!   round. Rows follow the round number (samples without one, from older
//!   runs, are grouped by their own `t_ns`); columns are sorted by name.
//!
//! Values are written in Rust's shortest round-trip form, so the `f64` read
//! back from a cell is the one collected.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};

use crate::metrics::MetricsSample;

/// The header of the long layout.
pub const LONG_HEADER: [&str; 5] = ["t_ns", "source", "instance", "metric", "value"];

/// The layout of `metrics.csv`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CsvFormat {
    /// One row per reading.
    #[default]
    Long,
    /// One row per collection round, one column per series.
    Wide,
}

impl CsvFormat {
    /// `long` or `wide`.
    pub fn as_str(self) -> &'static str {
        match self {
            CsvFormat::Long => "long",
            CsvFormat::Wide => "wide",
        }
    }
}

fn csv_err(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

/// Streams the long layout: header on creation, then rows per sample.
#[derive(Debug)]
pub struct LongWriter<W: Write> {
    out: csv::Writer<W>,
    rows: u64,
}

impl<W: Write> LongWriter<W> {
    /// Writes the header to `w`.
    pub fn new(w: W) -> io::Result<LongWriter<W>> {
        let mut out = csv::WriterBuilder::new().from_writer(w);
        out.write_record(LONG_HEADER).map_err(csv_err)?;
        Ok(LongWriter { out, rows: 0 })
    }

    /// Writes one row per value of `sample`; returns how many.
    pub fn write_sample(&mut self, sample: &MetricsSample) -> io::Result<u64> {
        let t_ns = sample.t_ns.to_string();
        let source = sample.source.as_str();
        for (metric, value) in &sample.values {
            self.out
                .write_record([
                    t_ns.as_str(),
                    source,
                    sample.instance.as_str(),
                    metric.as_str(),
                    value.to_string().as_str(),
                ])
                .map_err(csv_err)?;
        }
        let n = sample.values.len() as u64;
        self.rows += n;
        Ok(n)
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Flushes buffered rows to the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(self) -> io::Result<W> {
        self.out
            .into_inner()
            .map_err(|e| io::Error::other(e.error().to_string()))
    }
}

/// A row of the wide layout: its `t_ns` and (column, value) cells.
#[derive(Debug, Default)]
struct WideRow {
    t_ns: u64,
    cells: Vec<(u32, f64)>,
}

/// Collects samples for the wide layout, which needs every column before
/// its header can be written. Column names are interned, so a reading costs
/// 12 bytes however long its name.
#[derive(Debug, Default)]
pub struct WideTable {
    columns: HashMap<String, u32>,
    names: Vec<String>,
    /// By (round number, or `t_ns` for samples without one).
    rows: BTreeMap<(bool, u64), WideRow>,
}

impl WideTable {
    /// An empty table.
    pub fn new() -> WideTable {
        WideTable::default()
    }

    /// The column name of a series.
    pub fn column_name(sample: &MetricsSample, metric: &str) -> String {
        format!("{}/{}/{metric}", sample.source.as_str(), sample.instance)
    }

    /// Adds a sample's readings to its round's row.
    pub fn add(&mut self, sample: &MetricsSample) {
        let key = match sample.tick {
            Some(tick) => (false, tick),
            None => (true, sample.t_ns),
        };
        let row = self.rows.entry(key).or_insert_with(|| WideRow {
            t_ns: sample.t_ns,
            cells: Vec::new(),
        });
        row.t_ns = row.t_ns.min(sample.t_ns);
        for (metric, value) in &sample.values {
            let name = WideTable::column_name(sample, metric);
            let next = self.names.len() as u32;
            let column = *self.columns.entry(name.clone()).or_insert(next);
            if column == next {
                self.names.push(name);
            }
            row.cells.push((column, *value));
        }
    }

    /// Writes the table; returns the number of rows (rounds).
    pub fn write(&self, w: impl Write) -> io::Result<u64> {
        let mut order: Vec<u32> = (0..self.names.len() as u32).collect();
        order.sort_by(|a, b| self.names[*a as usize].cmp(&self.names[*b as usize]));
        // Position of each column in the file.
        let mut position = vec![0usize; order.len()];
        for (pos, &col) in order.iter().enumerate() {
            position[col as usize] = pos;
        }
        let mut out = csv::WriterBuilder::new().from_writer(w);
        let mut header = vec!["tick", "t_ns"];
        header.extend(order.iter().map(|&c| self.names[c as usize].as_str()));
        out.write_record(&header).map_err(csv_err)?;
        let mut cells: Vec<String> = vec![String::new(); order.len() + 2];
        for (&(untimed, key), row) in &self.rows {
            cells.iter_mut().for_each(String::clear);
            if !untimed {
                cells[0] = key.to_string();
            }
            cells[1] = row.t_ns.to_string();
            for &(column, value) in &row.cells {
                cells[position[column as usize] + 2] = value.to_string();
            }
            out.write_record(&cells).map_err(csv_err)?;
        }
        out.flush()?;
        Ok(self.rows.len() as u64)
    }
}

/// Renders `samples` in `format`; returns the number of data rows.
pub fn render(samples: &[MetricsSample], format: CsvFormat, w: impl Write) -> io::Result<u64> {
    match format {
        CsvFormat::Long => {
            let mut out = LongWriter::new(w)?;
            for s in samples {
                out.write_sample(s)?;
            }
            out.flush()?;
            Ok(out.rows())
        }
        CsvFormat::Wide => {
            let mut table = WideTable::new();
            for s in samples {
                table.add(s);
            }
            table.write(w)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::MetricSource;

    fn sample(
        t_ns: u64,
        tick: Option<u64>,
        source: MetricSource,
        instance: &str,
        values: &[(&str, f64)],
    ) -> MetricsSample {
        MetricsSample {
            t_ns,
            tick,
            source,
            instance: instance.into(),
            values: values.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        }
    }

    #[test]
    fn long_rows_are_quoted_only_when_needed() {
        let s = sample(
            7,
            Some(0),
            MetricSource::Server,
            "http://h:1/a,\"b\"",
            &[("a", 1.5), ("b", 2.0)],
        );
        let mut buf = Vec::new();
        assert_eq!(render(&[s], CsvFormat::Long, &mut buf).unwrap(), 2);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "t_ns,source,instance,metric,value\n\
             7,server,\"http://h:1/a,\"\"b\"\"\",a,1.5\n\
             7,server,\"http://h:1/a,\"\"b\"\"\",b,2\n"
        );
    }

    #[test]
    fn wide_has_one_row_per_round_and_one_column_per_series() {
        let samples = [
            sample(
                110,
                Some(0),
                MetricSource::Server,
                "http://h:1",
                &[("requests_running", 3.0)],
            ),
            sample(
                100,
                Some(0),
                MetricSource::System,
                "host",
                &[("cpu_pct", 12.5)],
            ),
            sample(
                205,
                Some(1),
                MetricSource::ServerRaw,
                "http://h:1",
                &[("vllm:x{engine=\"0\",le=\"1\"}", 4.0)],
            ),
            sample(
                200,
                Some(1),
                MetricSource::System,
                "host",
                &[("cpu_pct", 0.1)],
            ),
        ];
        let mut buf = Vec::new();
        assert_eq!(render(&samples, CsvFormat::Wide, &mut buf).unwrap(), 2);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "tick,t_ns,server/http://h:1/requests_running,\
             \"server_raw/http://h:1/vllm:x{engine=\"\"0\"\",le=\"\"1\"\"}\",system/host/cpu_pct\n\
             0,100,3,,12.5\n\
             1,200,,4,0.1\n"
        );
    }

    #[test]
    fn samples_without_rounds_are_grouped_by_time() {
        let samples = [
            sample(5, None, MetricSource::System, "h", &[("a", 1.0)]),
            sample(5, None, MetricSource::Process, "p", &[("b", 2.0)]),
            sample(9, None, MetricSource::System, "h", &[("a", 3.0)]),
        ];
        let mut buf = Vec::new();
        assert_eq!(render(&samples, CsvFormat::Wide, &mut buf).unwrap(), 2);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "tick,t_ns,process/p/b,system/h/a\n,5,2,1\n,9,,3\n"
        );
    }
}
