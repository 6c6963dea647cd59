//! Streaming `records.jsonl` during a run: one line per completed sample,
//! hundreds of thousands of lines per second.
//!
//! The thread that completes a sample moves its record into a shared batch
//! (one short lock, no encoding), and whole batches go to a writer thread
//! that encodes them with a hand-written encoder and writes them out: the
//! completing thread is the issuer itself when the SUT answers inside
//! `issue_query`, and encoding there took most of its time per sample. A
//! channel operation per sample, or a generic serializer pass, cost more
//! still; the bounded queue of batches keeps memory flat when samples
//! complete faster than the writer drains them (Offline answers millions at
//! once).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use loadgen::{PhaseEnd, PhaseStart, QueryRecord};

use crate::{FLUSH_INTERVAL, PhaseHeader, RECORDS_FILE, RecordLine, RunDirError, io_err};

/// A batch is handed to the writer thread once it holds this many lines
/// (about 180 B each before encoding, 125 B after).
const BATCH_LINES: usize = 1024;

/// Encoded bytes the writer thread collects before writing them out.
const WRITE_BYTES: usize = 256 * 1024;

/// Full batches waiting for the writer thread at most: when it falls this
/// far behind (32k lines, about 6 MiB of records: the same depth in lines
/// as the 4 MiB of encoded lines queued before, 16 ms at 2M QPS),
/// completing threads wait for it instead of the queue growing with the
/// test.
const QUEUED_BATCHES: usize = 32;

/// Emptied batch buffers kept for reuse at most: the steady state needs
/// one or two; more would only hold memory after the writer caught up.
const SPARE_BATCHES: usize = 4;

/// One line of `records.jsonl`, not yet encoded (queries, by far the most)
/// or already serialized (the rare phase lines).
#[derive(Debug)]
enum Line {
    Query(QueryRecord),
    Encoded(Vec<u8>),
}

/// Lines not yet handed to the writer thread.
#[derive(Debug, Default)]
struct Batch {
    lines: Vec<Line>,
}

impl Batch {
    /// Takes the lines, leaving an empty buffer from `spare` in their place.
    fn take(&mut self, spare: &Mutex<Vec<Vec<Line>>>) -> Batch {
        let lines = spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BATCH_LINES));
        std::mem::replace(self, Batch { lines })
    }
}

#[derive(Debug)]
struct Shared {
    pending: Mutex<Batch>,
    /// Emptied batch buffers, back from the writer thread: reusing them
    /// spares the completing threads an allocation and its page faults per
    /// batch.
    spare: Mutex<Vec<Vec<Line>>>,
    /// The writer thread stopped (an I/O error, reported by `finish`).
    failed: AtomicBool,
}

/// A [`loadgen::RunObserver`] that streams `records.jsonl` as the run goes:
/// a [`PhaseHeader`] when a phase starts, a [`QueryRecord`] per completed
/// sample, the [`PhaseEnd`] when it ends.
///
/// Callbacks encode their line into a shared batch; the writer thread writes
/// full batches, and whatever is pending at least every [`FLUSH_INTERVAL`],
/// so a crash loses at most that much. Completion threads never wait on the
/// disk unless it falls more than a few MiB behind.
#[derive(Debug)]
pub struct RecordsWriter {
    shared: Arc<Shared>,
    tx: Option<mpsc::SyncSender<Batch>>,
    thread: Option<thread::JoinHandle<Result<u64, RunDirError>>>,
    path: PathBuf,
    run_start_unix_ns: u64,
}

impl RecordsWriter {
    /// Creates `records.jsonl` in `dir` (failing if it exists: runs never
    /// overwrite). Phase starts are placed on the run clock whose zero is
    /// `run_start_unix_ns` (the manifest's `start_unix_ns`).
    pub fn create(dir: &Path, run_start_unix_ns: u64) -> Result<RecordsWriter, RunDirError> {
        let path = dir.join(RECORDS_FILE);
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let shared = Arc::new(Shared {
            pending: Mutex::new(Batch::default()),
            spare: Mutex::new(Vec::new()),
            failed: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::sync_channel::<Batch>(QUEUED_BATCHES);
        let thread = {
            let shared = Arc::clone(&shared);
            let owned = path.clone();
            thread::Builder::new()
                .name("records-writer".into())
                .spawn(move || {
                    let result = write_loop(&owned, file, &rx, &shared);
                    shared.failed.store(result.is_err(), Ordering::Relaxed);
                    result
                })
                .map_err(io_err(&path))?
        };
        Ok(RecordsWriter {
            shared,
            tx: Some(tx),
            thread: Some(thread),
            path,
            run_start_unix_ns,
        })
    }

    /// Flushes and closes the file; returns the number of lines written.
    pub fn finish(mut self) -> Result<u64, RunDirError> {
        self.close()
    }

    fn close(&mut self) -> Result<u64, RunDirError> {
        // The writer thread takes the last pending batch once the channel
        // is closed.
        drop(self.tx.take());
        match self.thread.take() {
            Some(handle) => handle.join().unwrap_or_else(|_| {
                Err(RunDirError::Io {
                    path: self.path.clone(),
                    source: std::io::Error::other("records writer thread panicked"),
                })
            }),
            None => Ok(0),
        }
    }

    /// Appends one line to the pending batch and hands the batch over when
    /// it is full.
    fn push(&self, line: Line) {
        if self.shared.failed.load(Ordering::Relaxed) {
            return;
        }
        let full = {
            let mut batch = self
                .shared
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            batch.lines.push(line);
            (batch.lines.len() >= BATCH_LINES).then(|| batch.take(&self.shared.spare))
        };
        if let (Some(full), Some(tx)) = (full, &self.tx) {
            // Fails only when the writer thread stopped on an error, which
            // `finish` reports.
            let _ = tx.send(full);
        }
    }

    /// A rare line (phase header, phase end), through serde.
    fn push_serialized(&self, line: &RecordLine) {
        let mut out = Vec::new();
        // Serializing these types into memory cannot fail.
        let _ = serde_json::to_writer(&mut out, line);
        self.push(Line::Encoded(out));
    }
}

impl Drop for RecordsWriter {
    fn drop(&mut self) {
        // Errors were either reported by finish() or have nowhere to go.
        let _ = self.close();
    }
}

impl loadgen::RunObserver for RecordsWriter {
    fn phase_started(&self, start: &PhaseStart) {
        self.push_serialized(&RecordLine::Phase(Box::new(PhaseHeader {
            run_offset_ns: start.start_unix_ns.saturating_sub(self.run_start_unix_ns),
            start: start.clone(),
        })));
    }

    fn sample_completed(&self, record: QueryRecord) {
        self.push(Line::Query(record));
    }

    fn phase_finished(&self, end: &PhaseEnd) {
        self.push_serialized(&RecordLine::PhaseEnd(end.clone()));
    }
}

fn write_loop(
    path: &Path,
    file: File,
    rx: &mpsc::Receiver<Batch>,
    shared: &Shared,
) -> Result<u64, RunDirError> {
    // A clone for the writeback thread; the data is written through `file`.
    let writeback = Writeback::start(file.try_clone().map_err(io_err(path))?, path)?;
    let mut out = BufWriter::with_capacity(WRITE_BYTES, file);
    let mut written = 0u64;
    let mut unsynced = 0usize;
    let mut encoded = Vec::with_capacity(BATCH_LINES * 160);
    let mut write = |out: &mut BufWriter<File>, batch: Batch| -> Result<(), RunDirError> {
        encoded.clear();
        for line in &batch.lines {
            match line {
                Line::Query(record) => encode_query_line(record, &mut encoded),
                Line::Encoded(bytes) => encoded.extend_from_slice(bytes),
            }
            encoded.push(b'\n');
        }
        out.write_all(&encoded).map_err(io_err(path))?;
        written += batch.lines.len() as u64;
        let mut lines = batch.lines;
        lines.clear();
        let mut spare = shared.spare.lock().unwrap_or_else(PoisonError::into_inner);
        if spare.len() < SPARE_BATCHES {
            spare.push(lines);
        }
        unsynced += encoded.len();
        if unsynced >= WRITEBACK_BYTES {
            // What the writer handed the kernel so far goes to disk now, not
            // all at once in the final sync.
            out.flush().map_err(io_err(path))?;
            writeback.request();
            unsynced = 0;
        }
        Ok(())
    };
    let take_pending = || {
        shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(&shared.spare)
    };
    loop {
        match rx.recv_timeout(FLUSH_INTERVAL) {
            Ok(batch) => write(&mut out, batch)?,
            Err(RecvTimeoutError::Timeout) => {
                write(&mut out, take_pending())?;
                out.flush().map_err(io_err(path))?;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    write(&mut out, take_pending())?;
    out.flush().map_err(io_err(path))?;
    // A failed background sync is reported even when the final one passes
    // (the kernel reports a writeback error once).
    writeback.finish()?;
    out.get_ref().sync_data().map_err(io_err(path))?;
    Ok(written)
}

/// Written bytes after which the writeback thread is asked to sync: the
/// disk writes records.jsonl while the test runs, and the sync that ends
/// the file only waits for the last few MiB.
const WRITEBACK_BYTES: usize = 16 * 1024 * 1024;

/// A thread that syncs the records file to disk when asked, so the writer
/// thread never waits on the disk before the end.
struct Writeback {
    tx: Option<mpsc::SyncSender<()>>,
    thread: thread::JoinHandle<Result<(), RunDirError>>,
    path: PathBuf,
}

impl Writeback {
    fn start(file: File, path: &Path) -> Result<Writeback, RunDirError> {
        // One request waiting at most: a sync covers everything written
        // before it starts, so requests made meanwhile merge.
        let (tx, rx) = mpsc::sync_channel::<()>(1);
        let owned = path.to_path_buf();
        let thread = thread::Builder::new()
            .name("records-sync".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    file.sync_data().map_err(io_err(&owned))?;
                }
                Ok(())
            })
            .map_err(io_err(path))?;
        Ok(Writeback {
            tx: Some(tx),
            thread,
            path: path.to_path_buf(),
        })
    }

    /// Asks for a sync; never blocks (a sync already asked for covers it).
    fn request(&self) {
        if let Some(tx) = &self.tx {
            let _ = tx.try_send(());
        }
    }

    /// Waits for the syncs asked for and returns the first error.
    fn finish(mut self) -> Result<(), RunDirError> {
        drop(self.tx.take());
        self.thread.join().unwrap_or_else(|_| {
            Err(RunDirError::Io {
                path: self.path,
                source: std::io::Error::other("records sync thread panicked"),
            })
        })
    }
}

/// Appends `record` as its `records.jsonl` line (without the newline): the
/// bytes `serde_json` writes for [`RecordLine::Query`], field for field.
fn encode_query_line(record: &QueryRecord, out: &mut Vec<u8>) {
    // The line's head is assembled in a stack buffer and copied once: a
    // dozen small appends to the Vec (each a call to memcpy with a capacity
    // check) took most of the writer thread's encoding time.
    let mut head = Head::new();
    head.push(br#"{"type":"query","seq":"#);
    head.int(record.seq);
    head.push(br#","query":"#);
    head.int(record.query);
    head.push(br#","sample_index":"#);
    head.int(record.sample_index);
    head.push(br#","scheduled_ns":"#);
    head.int(record.scheduled_ns);
    head.push(br#","issued_ns":"#);
    head.int(record.issued_ns);
    head.optional(br#","first_token_ns":"#, record.first_token_ns);
    head.push(br#","end_ns":"#);
    head.int(record.end_ns);
    head.push(br#","n_tokens":"#);
    head.int(record.n_tokens);
    head.optional(br#","input_tokens":"#, record.input_tokens.map(u64::from));
    head.optional(br#","endpoint":"#, record.endpoint.map(u64::from));
    out.extend_from_slice(head.bytes());
    if let Some(error) = &record.error {
        out.extend_from_slice(br#","error":"#);
        // Rare, and its message needs JSON escaping: serde's own encoding.
        let _ = serde_json::to_writer(&mut *out, error);
    }
    list(out, br#","chunk_ns":["#, &record.chunk_ns);
    list(out, br#","chunk_tokens":["#, &record.chunk_tokens);
    out.push(b'}');
}

/// Bytes of a query line's head at most: the field names (144 B) and nine
/// integers of at most 20 digits and a sign.
const HEAD_MAX: usize = 384;

/// The start of a query line, on the stack.
struct Head {
    buf: [u8; HEAD_MAX],
    len: usize,
}

impl Head {
    fn new() -> Head {
        Head {
            buf: [0; HEAD_MAX],
            len: 0,
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    #[inline(always)]
    fn push(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// `v` in decimal, as serde_json writes it (both through itoa).
    #[inline(always)]
    fn int(&mut self, v: impl itoa::Integer) {
        self.push(itoa::Buffer::new().format(v).as_bytes());
    }

    /// `name` and the value, or nothing for `None` (serde skips those).
    #[inline(always)]
    fn optional(&mut self, name: &[u8], value: Option<u64>) {
        if let Some(v) = value {
            self.push(name);
            self.int(v);
        }
    }
}

/// `,"name":[a,b,...]`, or nothing for an empty list (serde skips those).
fn list<T: itoa::Integer + Copy>(out: &mut Vec<u8>, head: &[u8], values: &[T]) {
    if values.is_empty() {
        return;
    }
    let mut int = itoa::Buffer::new();
    out.extend_from_slice(head);
    for (i, &v) in values.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(int.format(v).as_bytes());
    }
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use loadgen::{ErrorKind, QueryError};

    fn base() -> QueryRecord {
        QueryRecord {
            seq: 18_446_744_073_709_551_615,
            query: 0,
            sample_index: 9,
            scheduled_ns: 1_000,
            issued_ns: 1_250,
            first_token_ns: None,
            end_ns: 41_003,
            n_tokens: -3,
            input_tokens: None,
            endpoint: None,
            error: None,
            chunk_ns: vec![],
            chunk_tokens: vec![],
        }
    }

    #[test]
    fn query_lines_are_byte_for_byte_what_serde_writes() {
        let error = QueryError {
            kind: ErrorKind::HttpStatus,
            http_status: Some(503),
            message: "quote \" backslash \\ newline \n tab \t control \u{1} é 🚀".into(),
        };
        let mut cases = Vec::new();
        for first in [None, Some(0), Some(11_000)] {
            for input in [None, Some(0), Some(u32::MAX)] {
                for endpoint in [None, Some(2)] {
                    for error in [None, Some(error.clone())] {
                        for chunks in [0, 1, 3] {
                            cases.push(QueryRecord {
                                first_token_ns: first,
                                input_tokens: input,
                                endpoint,
                                error: error.clone(),
                                chunk_ns: (0..chunks).map(|i| 10 * i + 7).collect(),
                                chunk_tokens: (0..chunks).map(|i| i as u32).collect(),
                                n_tokens: i64::MIN + chunks as i64,
                                ..base()
                            });
                        }
                    }
                }
            }
        }
        // Chunk lists of different lengths are encoded independently.
        cases.push(QueryRecord {
            chunk_ns: vec![5],
            ..base()
        });
        cases.push(QueryRecord {
            chunk_tokens: vec![5, 6],
            error: Some(QueryError {
                kind: ErrorKind::Timeout,
                http_status: None,
                message: String::new(),
            }),
            ..base()
        });
        // Every digit count, both sides of each power of ten, both signs.
        let mut edges = vec![0u64, u64::MAX];
        for k in 1..=19 {
            let p = 10u64.pow(k);
            edges.extend([p - 1, p, p + 1]);
        }
        for &v in &edges {
            cases.push(QueryRecord {
                seq: v,
                query: v / 3,
                scheduled_ns: v,
                first_token_ns: Some(v),
                input_tokens: Some(v as u32),
                endpoint: Some((v % 1_000_000) as u32),
                n_tokens: -(v as i64),
                ..base()
            });
            cases.push(QueryRecord {
                issued_ns: v,
                end_ns: v,
                n_tokens: v as i64,
                ..base()
            });
        }
        for record in cases {
            let mut ours = Vec::new();
            encode_query_line(&record, &mut ours);
            let serde = serde_json::to_string(&RecordLine::Query(record.clone())).unwrap();
            assert_eq!(String::from_utf8(ours).unwrap(), serde, "{record:?}");
        }
    }

    #[test]
    fn background_syncs_keep_every_line_in_order() {
        use loadgen::RunObserver;
        let tmp = tempfile::tempdir().unwrap();
        let writer = RecordsWriter::create(tmp.path(), 0).unwrap();
        // Past the writeback threshold twice (a line here is about 120 B).
        let n = 2 * WRITEBACK_BYTES / 100;
        for seq in 0..n as u64 {
            writer.sample_completed(QueryRecord { seq, ..base() });
        }
        assert_eq!(writer.finish().unwrap(), n as u64);
        let text = std::fs::read_to_string(tmp.path().join(RECORDS_FILE)).unwrap();
        assert!(text.len() > 2 * WRITEBACK_BYTES, "{} bytes", text.len());
        let prefix = r#"{"type":"query","seq":"#;
        for (expected, line) in text.lines().enumerate() {
            let seq = line
                .strip_prefix(prefix)
                .and_then(|rest| rest.split(',').next())
                .unwrap_or_else(|| panic!("line {expected}: {line}"));
            assert_eq!(seq, expected.to_string());
        }
        assert_eq!(text.lines().count(), n);
    }

    #[test]
    fn full_and_partial_batches_keep_every_line_in_order() {
        use loadgen::RunObserver;
        let tmp = tempfile::tempdir().unwrap();
        let writer = RecordsWriter::create(tmp.path(), 0).unwrap();
        // Several full batches plus a partial one.
        let n = 3 * BATCH_LINES + 17;
        for seq in 0..n as u64 {
            writer.sample_completed(QueryRecord { seq, ..base() });
        }
        assert_eq!(writer.finish().unwrap(), n as u64);
        let text = std::fs::read_to_string(tmp.path().join(RECORDS_FILE)).unwrap();
        let seqs: Vec<u64> = text
            .lines()
            .map(|l| serde_json::from_str::<RecordLine>(l).unwrap())
            .map(|l| match l {
                RecordLine::Query(r) => r.seq,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(seqs, (0..n as u64).collect::<Vec<_>>());
    }
}
