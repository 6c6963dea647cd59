//! Streaming `records.jsonl` during a run: one line per completed sample,
//! hundreds of thousands of lines per second.
//!
//! The thread that completes a sample moves its record (80 bytes: see
//! [`QueryRecord`]) into a shared batch (one short lock, no encoding; a
//! multi-sample completion hands over its records together, under one
//! lock), and whole batches go to a writer thread that encodes them with a
//! hand-written encoder straight into the buffer it writes out: the
//! completing thread is the issuer itself when the SUT answers inside
//! `issue_query`, and encoding there took most of its time per sample. A
//! channel operation per sample, or a generic serializer pass, cost more
//! still; the bounded queue of batches keeps memory flat when samples
//! complete faster than the writer drains them (Offline answers millions at
//! once).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use loadgen::{PhaseEnd, PhaseStart, QueryRecord, Scenario};

use crate::{FLUSH_INTERVAL, PhaseHeader, RECORDS_FILE, RecordLine, RunDirError, io_err};

mod sink;

use sink::{FileSink, Mode};

/// A batch is handed to the writer thread once it holds this many lines
/// (about 180 B each before encoding, 115-125 B after).
const BATCH_LINES: usize = 1024;

/// Full batches waiting for the writer thread at most: when it falls this
/// far behind (512k lines, about 40 MiB of records, 95 ms at 5.5M QPS),
/// completing threads wait for it instead of the queue growing with the
/// test. On 2 cores the writer is preempted for 3-30 ms at times (other
/// tasks take its core; a sched_switch trace of a 5.5M QPS run showed the
/// issuer blocked on a 32-batch queue for 29 ms); a deeper queue absorbs
/// that, and Offline's burst of completions (4M samples: 0.40 -> 0.36 s
/// median of 6 interleaved runs) no longer waits on the writer. Batches
/// are allocated as the queue grows; past [`SPARE_BATCHES`] they are freed
/// once emptied.
const QUEUED_BATCHES: usize = 512;

/// How long the writer thread sleeps between polls while batches keep
/// coming: at 5M QPS about five batches arrive meanwhile, far from the
/// queue's depth.
const POLL_INTERVAL: Duration = Duration::from_millis(1);

/// Empty polls after which the writer thread parks until the next batch.
const IDLE_POLLS: u32 = 50;

/// Emptied batch buffers kept for reuse at most: the steady state needs
/// one or two; more would only hold memory after the writer caught up.
const SPARE_BATCHES: usize = 4;

/// What the writer thread receives: query lines not yet encoded (by far
/// the most), or one line already serialized (the rare phase lines), with
/// the ticket that places them in the file.
#[derive(Debug)]
struct Batch {
    ticket: u64,
    body: Body,
}

#[derive(Debug)]
enum Body {
    Queries(Vec<QueryRecord>),
    Encoded(Vec<u8>),
}

/// Query lines not yet handed to the writer thread, and the tickets handed
/// out so far.
///
/// Completing threads take full batches under the lock but send them after
/// releasing it (the send may wait on the writer), so two threads' batches
/// can reach the channel in the other order, and a phase line sent by one
/// thread could overtake query lines another thread took before it. Each
/// batch and phase line therefore gets the next ticket while the lock is
/// held, and the writer thread writes strictly in ticket order, holding
/// back what arrives early: the file's order is the order lines joined the
/// pending ones, whatever the threads' timing.
#[derive(Debug)]
struct Pending {
    lines: Vec<QueryRecord>,
    tickets: u64,
}

#[derive(Debug)]
struct Shared {
    pending: Mutex<Pending>,
    /// Emptied batch buffers, back from the writer thread: reusing them
    /// spares the completing threads an allocation and its page faults per
    /// batch.
    spare: Mutex<Vec<Vec<QueryRecord>>>,
    /// The writer thread stopped (an I/O error, reported by `finish`).
    failed: AtomicBool,
}

impl Shared {
    /// An empty buffer for the next batch: a spare one, or a new one.
    fn empty_batch(&self) -> Vec<QueryRecord> {
        self.spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BATCH_LINES))
    }

    /// [`Shared::empty_batch`], written through once by the calling thread,
    /// which must be the one that fills it (a completing thread).
    ///
    /// Why write it: a spare buffer's memory was last read by the writer
    /// thread on the other core (a new one's, freed there), so each record
    /// pushed into it stored to a cache line the completing core did not
    /// own, and the lock taken right after every push (`pend`) waited for
    /// that line to arrive: perf put 84% of `sample_completed` on the
    /// mutex's two locked instructions, 22% of the Server issuer's time in
    /// the test. Writing the whole buffer at once (80 KiB, one sequential
    /// pass the prefetcher streams) makes the lines the completing core's
    /// before the pushes: `sample_completed` fell to about half, and
    /// issue_bench Server at 3.8M QPS (20 s, 3 interleaved runs each) went
    /// from 0 VALID of 3 to 2 of 3 (issue lateness p99 69 and 77 us). The
    /// writer thread's own take does not call this: written there, the
    /// lines would be the writer core's again.
    fn owned_empty_batch(&self) -> Vec<QueryRecord> {
        let mut batch = self.empty_batch();
        batch.resize(BATCH_LINES, QueryRecord::default());
        batch.clear();
        batch
    }

    /// The query records not yet handed to the writer thread.
    fn lock_pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the pending lines with the next ticket, leaving an empty
    /// buffer in their place.
    fn take_pending(&self, pending: &mut Pending) -> Batch {
        let lines = std::mem::replace(&mut pending.lines, self.owned_empty_batch());
        Batch {
            ticket: next_ticket(pending),
            body: Body::Queries(lines),
        }
    }

    /// The writer thread's take: the pending lines, when it has written
    /// everything before them (`written` tickets; else nothing: a batch
    /// taken earlier is still on its way, and these follow it soon). No
    /// ticket: nothing ticketed can come before them.
    fn take_pending_after(&self, written: u64) -> Option<Vec<QueryRecord>> {
        let mut pending = self.lock_pending();
        (pending.tickets == written && !pending.lines.is_empty())
            .then(|| std::mem::replace(&mut pending.lines, self.empty_batch()))
    }
}

/// The next ticket (see [`Pending`]); the caller holds the lock.
fn next_ticket(pending: &mut Pending) -> u64 {
    pending.tickets += 1;
    pending.tickets - 1
}

/// A [`loadgen::RunObserver`] that streams `records.jsonl` as the run goes:
/// a [`PhaseHeader`] when a phase starts, a [`QueryRecord`] per completed
/// sample, the [`PhaseEnd`] when it ends.
///
/// Callbacks move their record, compacted, into a shared batch; the writer
/// thread encodes and writes full batches, and whatever is pending at least
/// every [`FLUSH_INTERVAL`], so a crash loses at most that much.
/// Completion threads never wait on the disk unless it falls about 100 MiB
/// behind (queued batches and chunks). An I/O thread writes the file with
/// direct I/O where the filesystem takes it, in Offline after a first
/// 512 MiB through the page cache (see the `sink` module); elsewhere it writes
/// through the page cache, syncs every 16 MiB and drops what is on disk
/// from the cache except the last 512 MiB, so a long run at millions of
/// queries per second does not grow the page cache by gigabytes.
///
/// [`RecordsWriter::close`] returns once every line is in the file (any
/// reader sees it; the process may die without losing it), and
/// [`ClosedRecords::sync`] waits for the disk; [`RecordsWriter::finish`]
/// does both. A test timed as LoadGen C++ times its own (which hands its
/// logs to the kernel and syncs nothing) ends at `close`.
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
    /// overwrite) for a run of `scenario` (which decides how the bytes go
    /// to disk: see the `sink` module). Phase starts are placed on the run
    /// clock whose zero is `run_start_unix_ns` (the manifest's
    /// `start_unix_ns`).
    pub fn create(
        dir: &Path,
        run_start_unix_ns: u64,
        scenario: Scenario,
    ) -> Result<RecordsWriter, RunDirError> {
        Self::create_with(dir, run_start_unix_ns, Mode::run(scenario))
    }

    /// [`RecordsWriter::create`], writing the file as `mode` says.
    fn create_with(
        dir: &Path,
        run_start_unix_ns: u64,
        mode: Mode,
    ) -> Result<RecordsWriter, RunDirError> {
        let path = dir.join(RECORDS_FILE);
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                lines: Vec::with_capacity(BATCH_LINES),
                tickets: 0,
            }),
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
                    let result = write_loop(&owned, file, &rx, &shared, mode);
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

    /// Writes out every line, closes the file and waits until it is on
    /// disk; returns the number of lines written.
    pub fn finish(self) -> Result<u64, RunDirError> {
        self.close()?.sync()
    }

    /// Writes out every line and closes the file without waiting for the
    /// disk (see [`ClosedRecords::sync`]).
    pub fn close(mut self) -> Result<ClosedRecords, RunDirError> {
        let lines = self.close_thread()?;
        Ok(ClosedRecords {
            path: self.path.clone(),
            lines,
        })
    }

    fn close_thread(&mut self) -> Result<u64, RunDirError> {
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

    /// Hands a ticketed batch to the writer thread (after the lock on the
    /// pending lines is released: the send may wait).
    fn send(&self, batch: Option<Batch>) {
        if let (Some(batch), Some(tx)) = (batch, &self.tx) {
            // Fails only when the writer thread stopped on an error, which
            // `finish` reports.
            let _ = tx.send(batch);
        }
    }

    /// Adds query records to the pending ones with `add` (under one lock)
    /// and hands a full batch to the writer thread.
    fn pend(&self, add: impl FnOnce(&mut Vec<QueryRecord>)) {
        if self.shared.failed.load(Ordering::Relaxed) {
            return;
        }
        let full = {
            let mut pending = self.shared.lock_pending();
            add(&mut pending.lines);
            (pending.lines.len() >= BATCH_LINES).then(|| self.shared.take_pending(&mut pending))
        };
        self.send(full);
    }

    /// A rare line (phase header, phase end), through serde, after the
    /// query lines pending before it.
    fn push_serialized(&self, line: &RecordLine) {
        if self.shared.failed.load(Ordering::Relaxed) {
            return;
        }
        let mut out = Vec::new();
        // Serializing these types into memory cannot fail.
        let _ = serde_json::to_writer(&mut out, line);
        let (before, line) = {
            let mut pending = self.shared.lock_pending();
            let before =
                (!pending.lines.is_empty()).then(|| self.shared.take_pending(&mut pending));
            let line = Batch {
                ticket: next_ticket(&mut pending),
                body: Body::Encoded(out),
            };
            (before, line)
        };
        self.send(before);
        self.send(Some(line));
    }
}

impl Drop for RecordsWriter {
    fn drop(&mut self) {
        // Dropped without `close` (a run that failed on the way): the lines
        // are kept and synced all the same. Errors have nowhere to go.
        if self.thread.is_some() {
            let _ = self.close_thread();
            let _ = sync_file(&self.path);
        }
    }
}

/// `records.jsonl` with every line written and the file closed, not yet
/// known to be on disk.
#[derive(Debug)]
#[must_use = "the records are not synced until `sync` is called"]
pub struct ClosedRecords {
    path: PathBuf,
    lines: u64,
}

impl ClosedRecords {
    /// Lines written.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Waits until the file's bytes are on disk; returns the lines written.
    pub fn sync(self) -> Result<u64, RunDirError> {
        sync_file(&self.path)?;
        Ok(self.lines)
    }
}

/// Syncs the data of the file at `path` (through a descriptor of its own:
/// the sync covers the file, whichever descriptor wrote it).
fn sync_file(path: &Path) -> Result<(), RunDirError> {
    File::open(path)
        .and_then(|file| file.sync_data())
        .map_err(io_err(path))
}

impl loadgen::RunObserver for RecordsWriter {
    fn phase_started(&self, start: &PhaseStart) {
        self.push_serialized(&RecordLine::Phase(Box::new(PhaseHeader {
            run_offset_ns: start.start_unix_ns.saturating_sub(self.run_start_unix_ns),
            start: start.clone(),
        })));
    }

    fn sample_completed(&self, record: QueryRecord) {
        self.pend(|pending| pending.push(record));
    }

    /// One lock for the lot. The caller gets an empty buffer back (its own
    /// or the pending one), to fill again without allocating.
    fn samples_completed(&self, records: &mut Vec<QueryRecord>) {
        self.pend(|pending| {
            if pending.is_empty() {
                // Usually so: the last full batch just went to the writer.
                // Taking the caller's whole buffer copies no record.
                std::mem::swap(pending, records);
            } else {
                pending.append(records);
            }
        });
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
    mode: Mode,
) -> Result<u64, RunDirError> {
    // Lines are encoded straight into the buffer that is written out (a
    // BufWriter in between copied every byte once more).
    let mut sink = FileSink::start(file, path, mode)?;
    let mut written = 0u64;
    // One head for every line: a new one per line cost a 384-byte memset.
    let mut head = Head::new();
    let mut encode = |out: &mut Vec<u8>, body: Body| match body {
        Body::Queries(mut records) => {
            for record in &records {
                encode_query_line(record, &mut head, out);
            }
            written += records.len() as u64;
            records.clear();
            let mut spare = shared.spare.lock().unwrap_or_else(PoisonError::into_inner);
            if spare.len() < SPARE_BATCHES {
                spare.push(records);
            }
        }
        Body::Encoded(line) => {
            out.extend_from_slice(&line);
            out.push(b'\n');
            written += 1;
        }
    };
    // The next ticket to write, and batches that arrived before it (see
    // `Pending`): at most one per completing thread.
    let mut ticket = 0u64;
    let mut early = BTreeMap::new();
    // What is pending (lines short of a batch, bytes short of a chunk) goes
    // to the file every FLUSH_INTERVAL by the clock, not only after that
    // long without a batch: a steady trickle of batches would otherwise
    // keep up to a chunk, seconds of records at moderate rates, out of it.
    let mut due = Instant::now() + FLUSH_INTERVAL;
    let mut idle_polls = 0;
    loop {
        // While batches keep coming the thread polls, sleeping between
        // polls, instead of parking in `recv`: a parked receiver must be
        // woken by the sender, and that wake-up (a futex call and an IPI on
        // a VM) cost the issuer 8.6 us per batch on average at 5M QPS, and
        // the scheduler then often ran the woken writer on the issuer's
        // core. A sleeping poller wakes on its own timer. After
        // `IDLE_POLLS` empty polls it parks again: one wake-up per busy
        // spell, not per batch. Measured (issue_bench Server at 4.24M QPS,
        // 30 s, 3 interleaved runs each): samples over the latency bound
        // 15.6M, 112.6M and 0.85M (1 VALID of 3) parked, 0, 1.17M and
        // 2.31M (2 of 3) polling; voluntary context switches in a 10 s run
        // at 4M QPS 42.5k -> 11.4k.
        let next = if idle_polls < IDLE_POLLS {
            match rx.try_recv() {
                Ok(batch) => Ok(batch),
                Err(TryRecvError::Empty) => {
                    idle_polls += 1;
                    thread::sleep(POLL_INTERVAL.min(due.saturating_duration_since(Instant::now())));
                    Err(RecvTimeoutError::Timeout)
                }
                Err(TryRecvError::Disconnected) => Err(RecvTimeoutError::Disconnected),
            }
        } else {
            rx.recv_timeout(due.saturating_duration_since(Instant::now()))
        };
        match next {
            Ok(batch) => {
                idle_polls = 0;
                if batch.ticket == ticket {
                    encode(sink.buffer(), batch.body);
                    ticket += 1;
                    while let Some(body) = early.remove(&ticket) {
                        encode(sink.buffer(), body);
                        ticket += 1;
                    }
                    sink.appended()?;
                } else {
                    early.insert(batch.ticket, batch.body);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if Instant::now() < due {
            continue;
        }
        if let Some(lines) = shared.take_pending_after(ticket) {
            encode(sink.buffer(), Body::Queries(lines));
        }
        sink.appended()?;
        sink.flush()?;
        due = Instant::now() + FLUSH_INTERVAL;
    }
    // Every sender is gone. A ticket still missing was lost with a thread
    // that died between taking and sending it; what came after it is kept.
    for (_, body) in early {
        encode(sink.buffer(), body);
    }
    let rest = std::mem::take(&mut shared.lock_pending().lines);
    encode(sink.buffer(), Body::Queries(rest));
    sink.finish()?;
    Ok(written)
}

/// Appends `record` as its `records.jsonl` line and the newline: the bytes
/// `serde_json` writes for [`RecordLine::Query`] of the [`QueryRecord`] it
/// came from, field for field. `head` is scratch space, reused.
fn encode_query_line(record: &QueryRecord, head: &mut Head, out: &mut Vec<u8>) {
    // The line's head is assembled in a stack buffer and copied once: a
    // dozen small appends to the Vec (each a call to memcpy with a capacity
    // check) took most of the writer thread's encoding time.
    let mut line = head.line();
    line.push(br#"{"type":"query","seq":"#);
    line.uint(record.seq);
    // What the line may leave out: loadgen::QueryRecordLine.
    if record.query != record.seq {
        line.push(br#","query":"#);
        line.uint(record.query);
    }
    line.push(br#","sample_index":"#);
    line.uint(record.sample_index);
    if record.scheduled_ns != 0 {
        line.push(br#","scheduled_ns":"#);
        line.uint(record.scheduled_ns);
    }
    line.push(br#","issued_ns":"#);
    line.uint(record.issued_ns);
    line.optional(br#","first_token_ns":"#, record.first_token_ns);
    line.push(br#","end_ns":"#);
    line.uint(record.end_ns);
    if record.n_tokens != 0 {
        line.push(br#","n_tokens":"#);
        line.int(record.n_tokens);
    }
    let Some(rest) = &record.extras else {
        line.push(b"}\n");
        out.extend_from_slice(line.bytes());
        return;
    };
    line.optional(br#","input_tokens":"#, rest.input_tokens.map(u64::from));
    line.optional(br#","endpoint":"#, rest.endpoint.map(u64::from));
    out.extend_from_slice(line.bytes());
    if let Some(error) = &rest.error {
        out.extend_from_slice(br#","error":"#);
        // Rare, and its message needs JSON escaping: serde's own encoding.
        let _ = serde_json::to_writer(&mut *out, error);
    }
    list(out, br#","chunk_ns":["#, &rest.chunk_ns);
    if !loadgen::chunk_tokens_implied(&rest.chunk_ns, &rest.chunk_tokens) {
        list(out, br#","chunk_tokens":["#, &rest.chunk_tokens);
    }
    out.extend_from_slice(b"}\n");
}

/// Bytes of a query line's head at most: the field names (144 B), nine
/// integers of at most 20 digits and a sign, the closing `}\n`, and the
/// 8 bytes past its end that [`Line::uint`] may scribble on.
const HEAD_MAX: usize = 384;

/// `b'0'` in each of the eight bytes.
const ASCII_ZEROS: u64 = 0x3030_3030_3030_3030;

/// The eight decimal digits of `v` (< 10^8) as byte values 0..=9, the most
/// significant in the lowest byte (so a little-endian store writes them in
/// reading order). All eight are computed at once in one register (SWAR),
/// after Paul Khuong's "How to print integers really fast": split into two
/// 4-digit halves in 32-bit lanes, each into two 2-digit parts in 16-bit
/// lanes, each of those into its two digits in bytes. Division by 100 and
/// by 10 are multiplications by 10486 / 2^20 and 103 / 2^10, exact for
/// every lane value they meet (below 10^4 and below 100); the tests check
/// it against itoa.
#[inline(always)]
fn eight_digits(v: u64) -> u64 {
    let halves = (v / 10_000) | ((v % 10_000) << 32);
    let hundreds_hi = ((halves * 10_486) >> 20) & 0x0000_007F_0000_007F;
    let hundreds = ((halves - 100 * hundreds_hi) << 16) + hundreds_hi;
    let tens = ((hundreds * 103) >> 10) & 0x000F_000F_000F_000F;
    tens + ((hundreds - 10 * tens) << 8)
}

/// Scratch space for the start of a query line, reused for every line.
struct Head {
    buf: [u8; HEAD_MAX],
}

impl Head {
    fn new() -> Head {
        Head { buf: [0; HEAD_MAX] }
    }

    /// An empty line in this space.
    fn line(&mut self) -> Line<'_> {
        Line {
            buf: &mut self.buf,
            len: 0,
        }
    }
}

/// A query line being assembled in a [`Head`]. Its length lives here, in a
/// local value, not in the `Head` behind a reference: there, every append
/// stored it and loaded it back (the compiler cannot tell the bytes written
/// from the length), a store-to-load round trip per field that perf showed
/// among the writer thread's hottest instructions.
struct Line<'a> {
    buf: &'a mut [u8; HEAD_MAX],
    len: usize,
}

impl Line<'_> {
    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    #[inline(always)]
    fn push(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// `v` in decimal, as serde_json (itoa) writes it, eight digits at a
    /// time ([`eight_digits`]) stored with one 8-byte write each. Copying
    /// itoa's variable-length result in cost a call to memcpy per integer,
    /// and the two-digits-at-a-time loop that replaced it still spent a
    /// fifth of the writer thread's instructions counting digits
    /// (`ilog10`, callgrind, Offline 1M samples). Bytes past the number's
    /// end may be overwritten; `len` excludes them.
    #[inline(always)]
    fn uint(&mut self, v: u64) {
        const E8: u64 = 100_000_000;
        if v < 10 {
            // Zeros and other single digits are common (Offline's query
            // and scheduled time): a byte, without the digit split.
            self.buf[self.len] = b'0' + v as u8;
            self.len += 1;
        } else if v < E8 {
            self.leading_group(v);
        } else if v < E8 * E8 {
            self.leading_group(v / E8);
            self.full_group(v % E8);
        } else {
            self.leading_group(v / (E8 * E8));
            self.full_group(v / E8 % E8);
            self.full_group(v % E8);
        }
    }

    /// `v` (< 10^8) without leading zeros ("0" for 0).
    #[inline(always)]
    fn leading_group(&mut self, v: u64) {
        let digits = eight_digits(v);
        // Digit bytes are 0..=9 before the ASCII offset, so the zero bytes
        // at the low end are exactly the leading zeros.
        let zeros = (digits.trailing_zeros() / 8).min(7);
        let ascii = (digits | ASCII_ZEROS) >> (8 * zeros);
        self.buf[self.len..self.len + 8].copy_from_slice(&ascii.to_le_bytes());
        self.len += 8 - zeros as usize;
    }

    /// `v` (< 10^8) as exactly eight digits, zero-padded.
    #[inline(always)]
    fn full_group(&mut self, v: u64) {
        let ascii = eight_digits(v) | ASCII_ZEROS;
        self.buf[self.len..self.len + 8].copy_from_slice(&ascii.to_le_bytes());
        self.len += 8;
    }

    /// `v` in decimal, with a leading `-` when negative.
    #[inline(always)]
    fn int(&mut self, v: i64) {
        if v < 0 {
            self.push(b"-");
        }
        self.uint(v.unsigned_abs());
    }

    /// `name` and the value, or nothing for `None` (serde skips those).
    #[inline(always)]
    fn optional(&mut self, name: &[u8], value: Option<u64>) {
        if let Some(v) = value {
            self.push(name);
            self.uint(v);
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
    use loadgen::{ErrorKind, QueryError, RecordExtras};

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
            extras: None,
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
                                n_tokens: i64::MIN + chunks as i64,
                                extras: RecordExtras {
                                    input_tokens: input,
                                    endpoint,
                                    error: error.clone(),
                                    chunk_ns: (0..chunks).map(|i| 10 * i + 7).collect(),
                                    chunk_tokens: (0..chunks).map(|i| i as u32).collect(),
                                }
                                .boxed(),
                                ..base()
                            });
                        }
                    }
                }
            }
        }
        // Chunk lists of different lengths are encoded independently.
        cases.push(base().with_extras(|e| e.chunk_ns = vec![5]));
        cases.push(base().with_extras(|e| {
            e.chunk_tokens = vec![5, 6];
            e.error = Some(QueryError {
                kind: ErrorKind::Timeout,
                http_status: None,
                message: String::new(),
            });
        }));
        // Extras present but empty (only built by hand) write nothing.
        cases.push(QueryRecord {
            extras: Some(Box::default()),
            ..base()
        });
        // What a line may leave out (query equal to seq, no tokens, one
        // token in every chunk), and the near misses that it may not.
        for (query, n_tokens) in [(77, 0), (77, 16), (76, 0)] {
            for (chunk_ns, chunk_tokens) in [
                (vec![3, 4, 5], vec![1, 1, 1]),
                (vec![3, 4, 5], vec![1, 1, 2]),
                (vec![3, 4, 5], vec![1, 1]),
                (vec![3, 4], vec![1, 1, 1]),
                (vec![3, 4, 5], vec![]),
            ] {
                cases.push(
                    QueryRecord {
                        seq: 77,
                        query,
                        n_tokens,
                        ..base()
                    }
                    .with_extras(|e| {
                        e.chunk_ns = chunk_ns;
                        e.chunk_tokens = chunk_tokens;
                    }),
                );
            }
        }
        // Every digit count, both sides of each power of ten, both signs.
        let mut edges = vec![0u64, u64::MAX];
        for k in 1..=19 {
            let p = 10u64.pow(k);
            edges.extend([p - 1, p, p + 1]);
        }
        for &v in &edges {
            cases.push(
                QueryRecord {
                    seq: v,
                    query: v / 3,
                    scheduled_ns: v,
                    first_token_ns: Some(v),
                    n_tokens: -(v as i64),
                    ..base()
                }
                .with_extras(|e| {
                    e.input_tokens = Some(v as u32);
                    e.endpoint = Some((v % 1_000_000) as u32);
                }),
            );
            cases.push(QueryRecord {
                issued_ns: v,
                end_ns: v,
                n_tokens: v as i64,
                ..base()
            });
        }
        // One head for every case, as the writer thread keeps one: a long
        // line's leftover bytes must not leak into a shorter one.
        let mut head = Head::new();
        for record in &cases {
            let mut ours = Vec::new();
            encode_query_line(record, &mut head, &mut ours);
            let serde = serde_json::to_string(&RecordLine::Query(record.clone())).unwrap();
            assert_eq!(String::from_utf8(ours).unwrap(), serde + "\n", "{record:?}");
        }
    }

    #[test]
    fn integers_are_written_as_itoa_writes_them() {
        let mut itoa = itoa::Buffer::new();
        let mut check = |head: &mut Head, v: u64| {
            let mut line = head.line();
            line.push(b"x");
            line.uint(v);
            assert_eq!(&line.bytes()[1..], itoa.format(v).as_bytes(), "{v}");
        };
        let mut head = Head::new();
        // Every value up to a million, then values of every magnitude from
        // a seeded xorshift (its top bits shifted away by a varying amount).
        for v in 0..=1_000_000 {
            check(&mut head, v);
        }
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..1_000_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            check(&mut head, x >> (i % 64));
        }
        for k in 0..=19 {
            let p = 10u64.pow(k);
            for v in [p - 1, p, p + 1, p.wrapping_mul(7) / 3, u64::MAX - p] {
                check(&mut head, v);
            }
        }
    }

    #[test]
    fn close_leaves_every_line_in_the_file_and_sync_counts_them() {
        use loadgen::RunObserver;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(RECORDS_FILE);
        let writer = RecordsWriter::create(tmp.path(), 0, Scenario::Server).unwrap();
        for seq in 0..3000 {
            writer.sample_completed(QueryRecord { seq, ..base() });
        }
        let closed = writer.close().unwrap();
        assert_eq!(closed.lines(), 3000);
        // Readable before the sync, every line whole.
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3000);
        assert!(text.ends_with("}\n"));
        assert_eq!(closed.sync().unwrap(), 3000);

        // Dropped without close (a run that failed on the way): nothing
        // pending is lost.
        let tmp = tempfile::tempdir().unwrap();
        let writer = RecordsWriter::create(tmp.path(), 0, Scenario::Server).unwrap();
        for seq in 0..5 {
            writer.sample_completed(QueryRecord { seq, ..base() });
        }
        drop(writer);
        let text = std::fs::read_to_string(tmp.path().join(RECORDS_FILE)).unwrap();
        assert_eq!(text.lines().count(), 5);
    }

    #[test]
    fn a_steady_trickle_of_batches_reaches_the_file_by_the_flush_interval() {
        use loadgen::RunObserver;
        let tmp = tempfile::tempdir().unwrap();
        let writer = RecordsWriter::create(tmp.path(), 0, Scenario::Server).unwrap();
        let path = tmp.path().join(RECORDS_FILE);
        let mut line = Vec::new();
        encode_query_line(&base(), &mut Head::new(), &mut line);
        // A full batch every 150 ms: never FLUSH_INTERVAL (200 ms) without
        // one, so the writer never idles that long, and a chunk's worth of
        // bytes only after about 3 s. The lines must reach the file long
        // before the chunk fills.
        let mut seq = 0u64;
        while std::fs::metadata(&path).unwrap().len() == 0 {
            let sent = seq as usize * line.len();
            assert!(
                sent < sink::CHUNK_BYTES,
                "nothing in the file after {sent} bytes of lines"
            );
            for _ in 0..BATCH_LINES {
                writer.sample_completed(QueryRecord { seq, ..base() });
                seq += 1;
            }
            std::thread::sleep(std::time::Duration::from_millis(150));
        }
        assert_eq!(writer.finish().unwrap(), seq);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count() as u64, seq);
    }

    #[test]
    fn every_line_lands_in_order_written_directly_or_buffered() {
        use loadgen::RunObserver;
        // What Offline runs use (here all head), what the others use
        // (direct I/O from the first byte),
        // a head that ends inside the file and direct I/O after it,
        // buffered keeping the whole file cached, and buffered keeping none
        // of it: neither the aligned chunks, nor the switch from the head
        // to direct writes, nor dropping synced pages from the cache loses
        // or reorders a line.
        for mode in [
            Mode::run(Scenario::Offline),
            Mode::run(Scenario::Server),
            Mode::direct_after(sink::WRITEBACK_BYTES + 5),
            Mode::buffered(sink::CACHED_BYTES),
            Mode::buffered(0),
        ] {
            let tmp = tempfile::tempdir().unwrap();
            let writer = RecordsWriter::create_with(tmp.path(), 0, mode).unwrap();
            // Past the writeback threshold twice (a line here is about 120 B).
            let n = 2 * sink::WRITEBACK_BYTES as usize / 100;
            for seq in 0..n as u64 {
                writer.sample_completed(QueryRecord { seq, ..base() });
            }
            assert_eq!(writer.finish().unwrap(), n as u64);
            let text = std::fs::read_to_string(tmp.path().join(RECORDS_FILE)).unwrap();
            assert!(
                text.len() > 2 * sink::WRITEBACK_BYTES as usize,
                "{} bytes",
                text.len()
            );
            let prefix = r#"{"type":"query","seq":"#;
            for (expected, line) in text.lines().enumerate() {
                let seq = line
                    .strip_prefix(prefix)
                    .and_then(|rest| rest.split(',').next())
                    .unwrap_or_else(|| panic!("{mode:?}, line {expected}: {line}"));
                assert_eq!(seq, expected.to_string());
            }
            assert_eq!(text.lines().count(), n);
        }
    }

    #[test]
    fn batched_completions_keep_every_line_in_order_and_byte_for_byte() {
        use loadgen::RunObserver;
        let tmp = tempfile::tempdir().unwrap();
        let writer = RecordsWriter::create(tmp.path(), 0, Scenario::Server).unwrap();
        // Batches smaller and larger than half the writer's batch, as large
        // as it, arriving with lines pending or none, between single lines.
        let mut seq = 0u64;
        let mut expected = Vec::new();
        let mut next = |n: usize, expected: &mut Vec<QueryRecord>| -> Vec<QueryRecord> {
            let records: Vec<QueryRecord> = (0..n)
                .map(|i| {
                    seq += 1;
                    QueryRecord {
                        seq,
                        first_token_ns: (i % 3 == 0).then_some(seq * 7),
                        ..base()
                    }
                    .with_extras(|e| e.chunk_ns = vec![seq; i % 2])
                })
                .collect();
            expected.extend(records.iter().cloned());
            records
        };
        for n in [
            1,
            BATCH_LINES / 2,
            BATCH_LINES,
            3,
            BATCH_LINES,
            1,
            700,
            0,
            2,
        ] {
            let mut batch = next(n, &mut expected);
            if n == 1 {
                writer.sample_completed(batch.pop().unwrap());
            } else {
                writer.samples_completed(&mut batch);
                assert!(batch.is_empty(), "the writer takes every record");
            }
        }
        assert_eq!(writer.finish().unwrap(), expected.len() as u64);
        let text = std::fs::read_to_string(tmp.path().join(RECORDS_FILE)).unwrap();
        let mut want = String::new();
        for record in expected {
            want += &serde_json::to_string(&RecordLine::Query(record)).unwrap();
            want.push('\n');
        }
        assert_eq!(text, want);
    }

    #[test]
    fn full_and_partial_batches_keep_every_line_in_order() {
        use loadgen::RunObserver;
        let tmp = tempfile::tempdir().unwrap();
        let writer = RecordsWriter::create(tmp.path(), 0, Scenario::Server).unwrap();
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

    #[test]
    fn batches_are_written_in_ticket_order_whatever_order_they_arrive_in() {
        // Threads send after releasing the lock, so tickets can arrive in
        // any order: here 3, 1, 0, the phase line 4, then 2, with lines
        // still pending behind ticket 4 when the senders are gone.
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(RECORDS_FILE);
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        let records = |seqs: std::ops::Range<u64>| -> Vec<QueryRecord> {
            seqs.map(|seq| QueryRecord { seq, ..base() }).collect()
        };
        let shared = Shared {
            pending: Mutex::new(Pending {
                lines: records(40..45),
                tickets: 5,
            }),
            spare: Mutex::new(Vec::new()),
            failed: AtomicBool::new(false),
        };
        let phase_line = br#"{"type":"marker"}"#.to_vec();
        let (tx, rx) = mpsc::sync_channel(8);
        for (ticket, seqs) in [(3, 30..40), (1, 10..20), (0, 0..10)] {
            let body = Body::Queries(records(seqs));
            tx.send(Batch { ticket, body }).unwrap();
        }
        let body = Body::Encoded(phase_line.clone());
        tx.send(Batch { ticket: 4, body }).unwrap();
        let body = Body::Queries(records(20..30));
        tx.send(Batch { ticket: 2, body }).unwrap();
        drop(tx);
        assert_eq!(
            write_loop(&path, file, &rx, &shared, Mode::run(Scenario::Server)).unwrap(),
            46
        );

        let mut want = Vec::new();
        let mut head = Head::new();
        for record in records(0..40) {
            encode_query_line(&record, &mut head, &mut want);
        }
        want.extend_from_slice(&phase_line);
        want.push(b'\n');
        for record in records(40..45) {
            encode_query_line(&record, &mut head, &mut want);
        }
        let got = std::fs::read(&path).unwrap();
        assert_eq!(
            String::from_utf8(got).unwrap(),
            String::from_utf8(want).unwrap()
        );
    }
}
