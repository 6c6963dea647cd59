//! Loading a run directory: `run.json`, `records.jsonl` (parsed in parallel
//! blocks, tolerant of a crash's cut last line) and `metrics.jsonl`.
//!
//! Records are kept as compact [`Sample`]s; the chunk arrival times, which
//! are most of the file, are reduced while parsing to inter-token gaps (for
//! ITL statistics) and a fine token-arrival histogram (for throughput charts).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};

use loadgen::record::{SampleTimes, Timed};
use loadgen::{ErrorKind, PhaseEnd, QueryError};
use rundir::metrics::MetricsSample;
use rundir::{PhaseHeader, RecordLine, RunManifest};
use serde::Deserialize;

use crate::ReportError;
use crate::stats::BucketCounts;

/// Width of the fine time bins filled while parsing (phase clock).
pub const FINE_BIN_NS: u64 = 100_000_000;

/// One sample, without its chunk times.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Issue-order sequence number.
    pub seq: u64,
    /// Query index.
    pub query: u64,
    /// Index in the QSL.
    pub sample_index: u64,
    /// Scheduled time (phase clock, ns).
    pub scheduled_ns: u64,
    /// Issue time (phase clock, ns).
    pub issued_ns: u64,
    /// First-token time, if any.
    pub first_token_ns: Option<u64>,
    /// Completion time.
    pub end_ns: u64,
    /// Output tokens as reported.
    pub n_tokens: i64,
    /// Prompt tokens, if reported.
    pub input_tokens: Option<u32>,
    /// Endpoint that served it.
    pub endpoint: Option<u32>,
    /// Streamed chunks that carried tokens.
    pub chunks: u32,
    /// The failure, if it failed.
    pub error: Option<Box<QueryError>>,
}

impl Timed for Sample {
    fn times(&self) -> SampleTimes {
        SampleTimes {
            scheduled_ns: self.scheduled_ns,
            issued_ns: self.issued_ns,
            first_token_ns: self.first_token_ns,
            end_ns: self.end_ns,
            n_tokens: self.n_tokens,
            failed: self.error.is_some(),
        }
    }
}

impl Sample {
    /// The error kind, if failed.
    pub fn error_kind(&self) -> Option<ErrorKind> {
        self.error.as_ref().map(|e| e.kind)
    }
}

/// One phase of `records.jsonl`, reduced.
#[derive(Debug, Clone)]
pub struct PhaseData {
    /// The header.
    pub header: PhaseHeader,
    /// The end, absent when the run died first.
    pub end: Option<PhaseEnd>,
    /// Samples in file (completion) order.
    pub samples: Vec<Sample>,
    /// Inter-chunk gaps (ns) of successful samples below 2^32 ns (4.3 s), in
    /// parts. Four bytes each: a large run has a hundred million of them,
    /// kept for exact percentiles.
    pub itl_parts: Vec<Vec<u32>>,
    /// The gaps of 2^32 ns and more (stalls: rare).
    pub itl_wide: Vec<u64>,
    /// Bucket counts of all of `itl_parts` and `itl_wide`.
    pub itl_counts: BucketCounts,
    /// Sum and sum of squares of the gaps.
    pub itl_sum: (u128, u128),
    /// Output tokens arriving per [`FINE_BIN_NS`] bin (successful samples).
    pub token_bins: Vec<u64>,
}

impl PhaseData {
    fn new(header: PhaseHeader) -> Self {
        PhaseData {
            header,
            end: None,
            samples: Vec::new(),
            itl_parts: Vec::new(),
            itl_wide: Vec::new(),
            itl_counts: BucketCounts::default(),
            itl_sum: (0, 0),
            token_bins: Vec::new(),
        }
    }

    /// Number of ITL gaps.
    pub fn itl_count(&self) -> usize {
        self.itl_parts.iter().map(Vec::len).sum::<usize>() + self.itl_wide.len()
    }

    /// Every gap of `itl_parts` and `itl_wide`, in no particular order.
    pub fn itl_gaps(&self) -> impl Iterator<Item = u64> + '_ {
        self.itl_parts
            .iter()
            .flat_map(|part| part.iter().map(|&gap| u64::from(gap)))
            .chain(self.itl_wide.iter().copied())
    }
}

/// Everything loaded from a run directory.
#[derive(Debug)]
pub struct RunData {
    /// The directory.
    pub dir: PathBuf,
    /// `run.json`, if present and readable.
    pub manifest: Option<RunManifest>,
    /// Phases in file order.
    pub phases: Vec<PhaseData>,
    /// `metrics.jsonl` samples (empty when absent).
    pub metrics: Vec<MetricsSample>,
    /// A cut last line was skipped somewhere.
    pub truncated: bool,
    /// Problems that did not stop loading, one line each.
    pub warnings: Vec<String>,
    /// The error lines of LoadGen's detail log, grouped.
    pub loadgen_errors: Vec<LoadgenError>,
}

/// LoadGen's detail log.
pub const LOADGEN_DETAIL_FILE: &str = "mlperf_log_detail.txt";

/// Identical error lines (`"is_error": true`) of LoadGen's detail log: what
/// its summary counts as "N ERRORS encountered".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoadgenError {
    /// The line's key (`error_runtime`, `error_invalid_config`...).
    pub key: String,
    /// The message.
    pub message: String,
    /// How many lines said it.
    pub count: u64,
}

/// The error lines of `mlperf_log_detail.txt` in `dir`, grouped by key and
/// message in order of first appearance. A missing log has none.
pub fn read_loadgen_errors(dir: &Path) -> Result<Vec<LoadgenError>, ReportError> {
    let path = dir.join(LOADGEN_DETAIL_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(ReportError::Io { path, source }),
    };
    let mut errors: Vec<LoadgenError> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(json) = line.strip_prefix(":::MLLOG ") else {
            continue;
        };
        // Error lines are rare; most lines are skipped before parsing.
        if !json.contains("\"is_error\": true") && !json.contains("\"is_error\":true") {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| parse_err(&path, i + 1, &e.to_string()))?;
        if value["metadata"]["is_error"] != serde_json::Value::Bool(true) {
            continue;
        }
        let key = value["key"].as_str().unwrap_or_default().to_owned();
        let message = match &value["value"] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match errors
            .iter_mut()
            .find(|e| e.key == key && e.message == message)
        {
            Some(e) => e.count += 1,
            None => errors.push(LoadgenError {
                key,
                message,
                count: 1,
            }),
        }
    }
    Ok(errors)
}

impl RunData {
    /// The phase reports are about: the performance phase, else the last one.
    pub fn main_phase(&self) -> Option<&PhaseData> {
        self.phases
            .iter()
            .find(|p| p.header.start.phase == loadgen::Phase::Performance)
            .or(self.phases.last())
    }
}

/// The query line's fields we keep (the `type` tag and anything unknown are
/// skipped by serde).
#[derive(Deserialize, Default)]
struct RawQuery {
    seq: u64,
    /// Left out of the line when it equals `seq` (loadgen::QueryRecordLine
    /// says what a line may leave out).
    #[serde(default)]
    query: Option<u64>,
    sample_index: u64,
    /// Left out of the line when it is 0.
    #[serde(default)]
    scheduled_ns: u64,
    issued_ns: u64,
    #[serde(default)]
    first_token_ns: Option<u64>,
    end_ns: u64,
    #[serde(default)]
    n_tokens: i64,
    #[serde(default)]
    input_tokens: Option<u32>,
    #[serde(default)]
    endpoint: Option<u32>,
    #[serde(default)]
    error: Option<QueryError>,
    #[serde(default)]
    chunk_ns: Vec<u64>,
    #[serde(default)]
    chunk_tokens: Vec<u32>,
}

/// Part of a block: a run of query lines, or another line.
enum Piece {
    Queries(Batch),
    Line(RecordLine),
}

#[derive(Default)]
struct Batch {
    samples: Vec<Sample>,
    itl: Vec<u32>,
    itl_wide: Vec<u64>,
    itl_counts: Option<Box<BucketCounts>>,
    itl_sum: (u128, u128),
    token_bins: Vec<u64>,
}

struct BlockResult {
    pieces: Vec<Piece>,
    lines: usize,
    /// (line within block, message) of the first bad line.
    error: Option<(usize, String)>,
    /// The bad line was the unterminated last line of the file.
    bad_is_tail: bool,
}

const BLOCK: usize = 16 << 20;

const QUERY_PREFIX: &[u8] = br#"{"type":"query","#;

fn parse_block(data: &[u8], is_last: bool) -> BlockResult {
    let mut scratch = RawQuery::default();
    let mut pieces = Vec::new();
    let mut batch = Batch::default();
    let mut lines = 0usize;
    let mut start = 0usize;
    while start < data.len() {
        let (end, complete) = match memchr_newline(&data[start..]) {
            Some(i) => (start + i, true),
            None => (data.len(), false),
        };
        let line = &data[start..end];
        start = end + 1;
        lines += 1;
        let line = trim_ascii(line);
        if line.is_empty() {
            continue;
        }
        let result = if line.starts_with(QUERY_PREFIX) {
            match fast::parse_query(line, &mut scratch) {
                Some(q) => {
                    add_query(&mut batch, q);
                    Ok(())
                }
                None => serde_json::from_slice::<RawQuery>(line)
                    .map(|q| add_query(&mut batch, q))
                    .map_err(|e| e.to_string()),
            }
        } else {
            serde_json::from_slice::<RecordLine>(line)
                .map(|l| {
                    if let RecordLine::Query(q) = l {
                        add_query(&mut batch, raw_from_record(q));
                    } else {
                        if !batch.samples.is_empty() {
                            pieces.push(Piece::Queries(std::mem::take(&mut batch)));
                        }
                        pieces.push(Piece::Line(l));
                    }
                })
                .map_err(|e| e.to_string())
        };
        if let Err(message) = result {
            if !batch.samples.is_empty() {
                pieces.push(Piece::Queries(std::mem::take(&mut batch)));
            }
            return BlockResult {
                pieces,
                lines,
                error: Some((lines, message)),
                bad_is_tail: is_last && !complete,
            };
        }
    }
    if !batch.samples.is_empty() {
        pieces.push(Piece::Queries(batch));
    }
    BlockResult {
        pieces,
        lines,
        error: None,
        bad_is_tail: false,
    }
}

fn raw_from_record(q: loadgen::QueryRecord) -> RawQuery {
    let extras = loadgen::RecordExtras::unboxed(q.extras);
    RawQuery {
        seq: q.seq,
        query: Some(q.query),
        sample_index: q.sample_index,
        scheduled_ns: q.scheduled_ns,
        issued_ns: q.issued_ns,
        first_token_ns: q.first_token_ns,
        end_ns: q.end_ns,
        n_tokens: q.n_tokens,
        input_tokens: extras.input_tokens,
        endpoint: extras.endpoint,
        error: extras.error,
        chunk_ns: extras.chunk_ns,
        chunk_tokens: extras.chunk_tokens,
    }
}

/// When a successful sample's output tokens arrived, as `(time, tokens)`,
/// adding up to its `n_tokens` (the server's final count).
///
/// Chunks with a known count keep it. The rest of `n_tokens` is what only the
/// final usage told: llama.cpp, for one, streams text without counts and
/// counts the EOS token it never streams. That rest is spread evenly over the
/// chunks whose count was unknown (each carried some of it; the last ones
/// take the remainder of the division), or, when every chunk's count was
/// known (or nothing was streamed), placed at completion, when it became
/// known. A stream that claims more tokens than `n_tokens` keeps its claims.
fn token_arrivals(q: &RawQuery, mut arrive: impl FnMut(u64, u64)) {
    // Records written before per-chunk counts existed: one token a chunk.
    let count = |i: usize| q.chunk_tokens.get(i).map_or(1, |&n| u64::from(n));
    let (known, unknown) = (0..q.chunk_ns.len())
        .map(count)
        .fold((0u64, 0u64), |(known, unknown), n| {
            (known + n, unknown + u64::from(n == 0))
        });
    let rest = u64::try_from(q.n_tokens).unwrap_or(0).saturating_sub(known);
    let mut seen_unknown = 0u64;
    for (i, &t) in q.chunk_ns.iter().enumerate() {
        let mut n = count(i);
        if n == 0 {
            n = rest / unknown + u64::from(seen_unknown >= unknown - rest % unknown);
            seen_unknown += 1;
        }
        if n > 0 {
            arrive(t, n);
        }
    }
    if unknown == 0 && rest > 0 {
        arrive(q.end_ns, rest);
    }
}

fn add_query(batch: &mut Batch, q: impl std::borrow::Borrow<RawQuery>) {
    let q = q.borrow();
    if q.error.is_none() {
        let counts = batch.itl_counts.get_or_insert_with(Default::default);
        for w in q.chunk_ns.windows(2) {
            let gap = w[1].saturating_sub(w[0]);
            match u32::try_from(gap) {
                Ok(narrow) => batch.itl.push(narrow),
                Err(_) => batch.itl_wide.push(gap),
            }
            counts.add(gap);
            batch.itl_sum.0 += u128::from(gap);
            batch.itl_sum.1 += u128::from(gap) * u128::from(gap);
        }
        let bins = &mut batch.token_bins;
        token_arrivals(q, |t, n| {
            let bin = (t / FINE_BIN_NS) as usize;
            if bin >= bins.len() {
                bins.resize(bin + 1, 0);
            }
            bins[bin] += n;
        });
    }
    batch.samples.push(Sample {
        seq: q.seq,
        query: q.query.unwrap_or(q.seq),
        sample_index: q.sample_index,
        scheduled_ns: q.scheduled_ns,
        issued_ns: q.issued_ns,
        first_token_ns: q.first_token_ns,
        end_ns: q.end_ns,
        n_tokens: q.n_tokens,
        input_tokens: q.input_tokens,
        endpoint: q.endpoint,
        chunks: q.chunk_ns.len() as u32,
        error: q.error.clone().map(Box::new),
    });
}

fn memchr_newline(s: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', s)
}

fn trim_ascii(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

/// Reads `records.jsonl` with `threads` parser threads. Returns the phases
/// and whether a cut last line was skipped.
pub fn read_records(path: &Path, threads: usize) -> Result<(Vec<PhaseData>, bool), ReportError> {
    let blocks = parse_blocks(path, threads, BLOCK)?;
    let (phases, truncated) = assemble_phases(path, blocks)?;
    check_no_duplicate_samples(path, &phases)?;
    Ok((phases, truncated))
}

/// Reads the file in blocks of about `block` bytes cut at line ends and
/// parses them on `threads` threads; the results in file order.
fn parse_blocks(
    path: &Path,
    threads: usize,
    block: usize,
) -> Result<Vec<BlockResult>, ReportError> {
    let io = |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let threads = threads.max(1);
    let (tx, rx) = mpsc::sync_channel::<(usize, Vec<u8>, bool)>(threads * 2);
    let rx = Mutex::new(rx);
    // Parsed blocks' buffers come back to be read into again. A new 16 MiB
    // buffer per block had the kernel map and zero fresh pages for every
    // byte of the file: perf put a fifth of a 1M-query report's time in
    // `clear_page` (1.7 GB of records.jsonl on a VM, where fresh memory
    // costs most).
    let (spare_tx, spare_rx) = mpsc::channel::<Vec<u8>>();
    let results: Mutex<Vec<(usize, BlockResult)>> = Mutex::new(Vec::new());
    let read_result = std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let next = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => return,
                    };
                    let Ok((index, data, is_last)) = next else {
                        return;
                    };
                    let result = parse_block(&data, is_last);
                    if let Ok(mut all) = results.lock() {
                        all.push((index, result));
                    }
                    // The reader may be done: then nobody reuses it.
                    let _ = spare_tx.send(data);
                }
            });
        }
        // Read blocks, cut at the last newline; the remainder starts the next.
        let mut carry: Vec<u8> = Vec::with_capacity(block);
        let mut index = 0usize;
        let outcome = loop {
            let mut buf = std::mem::take(&mut carry);
            // Up to a block more, read into the buffer's spare capacity (no
            // zeroing first); fewer bytes than asked for means the end.
            let eof = match (&mut file).take(block as u64).read_to_end(&mut buf) {
                Ok(n) => n < block,
                Err(e) => break Err(io(e)),
            };
            if eof {
                if !buf.is_empty() && tx.send((index, buf, true)).is_err() {
                    break Ok(());
                }
                break Ok(());
            }
            match memchr::memrchr(b'\n', &buf) {
                Some(cut) => {
                    // The rest of the cut line starts the next block, in a
                    // buffer back from the parsers when there is one.
                    carry = spare_rx
                        .try_recv()
                        .unwrap_or_else(|_| Vec::with_capacity(block));
                    carry.clear();
                    carry.extend_from_slice(&buf[cut + 1..]);
                    buf.truncate(cut + 1);
                    if tx.send((index, buf, false)).is_err() {
                        break Ok(());
                    }
                    index += 1;
                }
                // A line longer than a block: keep reading into it.
                None => carry = buf,
            }
        };
        drop(tx);
        outcome
    });
    read_result?;
    let mut blocks = results.into_inner().unwrap_or_default();
    blocks.sort_by_key(|(i, _)| *i);
    Ok(blocks.into_iter().map(|(_, block)| block).collect())
}

/// The phases from the parsed blocks, in order: each query batch joins the
/// phase whose header precedes it. A bad last line of the last block is a
/// cut write (`truncated`); any other bad line is an error naming its line.
fn assemble_phases(
    path: &Path,
    blocks: Vec<BlockResult>,
) -> Result<(Vec<PhaseData>, bool), ReportError> {
    let mut phases: Vec<PhaseData> = Vec::new();
    let mut truncated = false;
    let mut line_base = 0usize;
    let n_blocks = blocks.len();
    for (bi, block) in blocks.into_iter().enumerate() {
        for piece in block.pieces {
            match piece {
                Piece::Line(RecordLine::Phase(header)) => phases.push(PhaseData::new(*header)),
                Piece::Line(RecordLine::PhaseEnd(end)) => match phases.last_mut() {
                    Some(p) => p.end = Some(end),
                    None => {
                        return Err(parse_err(
                            path,
                            line_base + 1,
                            "phase end before any phase header",
                        ));
                    }
                },
                Piece::Line(RecordLine::Query(_)) => {}
                Piece::Queries(batch) => {
                    let Some(phase) = phases.last_mut() else {
                        return Err(parse_err(
                            path,
                            line_base + 1,
                            "query record before any phase header",
                        ));
                    };
                    phase.samples.extend(batch.samples);
                    if let Some(c) = &batch.itl_counts {
                        phase.itl_counts.merge(c);
                    }
                    phase.itl_sum.0 += batch.itl_sum.0;
                    phase.itl_sum.1 += batch.itl_sum.1;
                    if !batch.itl.is_empty() {
                        phase.itl_parts.push(batch.itl);
                    }
                    phase.itl_wide.extend(batch.itl_wide);
                    if phase.token_bins.len() < batch.token_bins.len() {
                        phase.token_bins.resize(batch.token_bins.len(), 0);
                    }
                    for (a, b) in phase.token_bins.iter_mut().zip(&batch.token_bins) {
                        *a += b;
                    }
                }
            }
        }
        if let Some((line, message)) = block.error {
            if block.bad_is_tail && bi + 1 == n_blocks {
                truncated = true;
            } else {
                return Err(parse_err(path, line_base + line, &message));
            }
        }
        line_base += block.lines;
    }
    Ok((phases, truncated))
}

/// A duplicated line (a file edited or concatenated by hand) must not
/// count a sample twice: "52 of 51 samples".
fn check_no_duplicate_samples(path: &Path, phases: &[PhaseData]) -> Result<(), ReportError> {
    for phase in phases {
        let mut seen = std::collections::HashSet::with_capacity(phase.samples.len());
        if let Some(dup) = phase.samples.iter().find(|s| !seen.insert(s.seq)) {
            let line = records_line_of(path, dup.seq).unwrap_or(0);
            return Err(parse_err(
                path,
                line,
                &format!(
                    "sample seq {} is recorded twice: the file holds a duplicated line",
                    dup.seq
                ),
            ));
        }
    }
    Ok(())
}

/// The line of the second record of sample `seq` (only for the message of
/// a damaged file, so a plain second pass is fine).
fn records_line_of(path: &Path, seq: u64) -> Option<usize> {
    use std::io::BufRead;
    let needle = format!("\"seq\":{seq},");
    let file = File::open(path).ok()?;
    let mut found = 0;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        if line.ok()?.contains(&needle) {
            found += 1;
            if found == 2 {
                return Some(i + 1);
            }
        }
    }
    None
}

fn parse_err(path: &Path, line: usize, message: &str) -> ReportError {
    ReportError::Parse {
        path: path.to_path_buf(),
        line,
        message: message.to_owned(),
    }
}

/// Loads a run directory. Only `records.jsonl` is required; a missing or
/// unreadable `run.json` or `metrics.jsonl` becomes a warning.
pub fn load(dir: &Path, threads: usize) -> Result<RunData, ReportError> {
    let records = dir.join(rundir::RECORDS_FILE);
    if !records.is_file() {
        return Err(ReportError::NotARunDir {
            path: dir.to_path_buf(),
        });
    }
    let mut warnings = Vec::new();
    let manifest = if dir.join(rundir::MANIFEST_FILE).is_file() {
        match RunManifest::read(dir) {
            Ok(m) => {
                warnings.extend(m.warnings.iter().cloned());
                Some(m)
            }
            Err(e) => {
                warnings.push(format!("ignoring {}: {e}", rundir::MANIFEST_FILE));
                None
            }
        }
    } else {
        warnings.push(format!("no {}", rundir::MANIFEST_FILE));
        None
    };
    let (phases, truncated) = read_records(&records, threads)?;
    let metrics_path = dir.join(rundir::METRICS_FILE);
    let metrics = if metrics_path.is_file() {
        match rundir::metrics::read_metrics(&metrics_path) {
            Ok(m) => m,
            Err(e) => {
                warnings.push(format!("ignoring {}: {e}", rundir::METRICS_FILE));
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    if truncated {
        warnings.push(format!(
            "{}: last line cut short (the run died mid-write); skipped",
            rundir::RECORDS_FILE
        ));
    }
    let loadgen_errors = match read_loadgen_errors(dir) {
        Ok(errors) => errors,
        Err(e) => {
            warnings.push(format!("ignoring {LOADGEN_DETAIL_FILE}: {e}"));
            Vec::new()
        }
    };
    Ok(RunData {
        dir: dir.to_path_buf(),
        manifest,
        phases,
        metrics,
        truncated,
        warnings,
        loadgen_errors,
    })
}

/// A hand-written parser for the query lines our writer produces: a flat
/// object of unsigned integers, `n_tokens` (signed) and integer arrays. It
/// accepts nothing else (an `error` object, an unknown key, whitespace,
/// exponents) and returns `None`, and the line then goes through serde, so
/// it changes speed, never results. Two to three times faster than serde on
/// chunk-time arrays, which are most of a large file.
mod fast {
    use super::RawQuery;

    struct Cursor<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Cursor<'_> {
        #[inline]
        fn eat(&mut self, b: u8) -> Option<()> {
            (self.s.get(self.i) == Some(&b)).then(|| self.i += 1)
        }

        /// An unsigned JSON integer. Chunk-time arrays are most of a large
        /// file, so the first 19 digits go without overflow checks. (Reading
        /// eight digits at a time with SWAR was slower: most numbers are 8 to
        /// 10 digits, and its shifts and multiplies sit on the critical path.)
        #[inline]
        fn uint(&mut self) -> Option<u64> {
            let rest = &self.s[self.i..];
            let mut v: u64 = 0;
            let mut n = 0usize;
            // Nineteen digits cannot overflow a u64 (its maximum has 20).
            while n < 19 {
                match rest.get(n) {
                    Some(&c) if c.is_ascii_digit() => {
                        v = v * 10 + u64::from(c - b'0');
                        n += 1;
                    }
                    _ => break,
                }
            }
            while let Some(&c) = rest.get(n) {
                if !c.is_ascii_digit() {
                    break;
                }
                v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
                n += 1;
            }
            self.i += n;
            // No empty numbers, no leading zeros (as JSON requires).
            (n > 0 && (n == 1 || rest[0] != b'0')).then_some(v)
        }

        fn int(&mut self) -> Option<i64> {
            if self.eat(b'-').is_some() {
                let v = self.uint()?;
                i64::try_from(v).ok().map(|v| -v)
            } else {
                i64::try_from(self.uint()?).ok()
            }
        }

        fn key(&mut self) -> Option<&[u8]> {
            self.eat(b'"')?;
            let start = self.i;
            let len = self.s[start..].iter().position(|&c| c == b'"')?;
            let key = &self.s[start..start + len];
            if key.contains(&b'\\') {
                return None;
            }
            self.i = start + len + 1;
            self.eat(b':')?;
            Some(key)
        }

        fn array<T: TryFrom<u64>>(&mut self, out: &mut Vec<T>) -> Option<()> {
            out.clear();
            self.eat(b'[')?;
            if self.eat(b']').is_some() {
                return Some(());
            }
            loop {
                out.push(T::try_from(self.uint()?).ok()?);
                if self.eat(b',').is_none() {
                    return self.eat(b']');
                }
            }
        }

        fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
            if self.s[self.i..].starts_with(b"null") {
                self.i += 4;
                Some(None)
            } else {
                f(self).map(Some)
            }
        }
    }

    /// Parses a query line into `q` (reusing its vectors); `None` if the line
    /// holds anything this parser does not handle.
    pub(super) fn parse_query<'q>(line: &[u8], q: &'q mut RawQuery) -> Option<&'q RawQuery> {
        let mut c = Cursor {
            s: line,
            i: super::QUERY_PREFIX.len(),
        };
        // Required fields, as bits.
        let mut seen = 0u8;
        q.query = None;
        q.scheduled_ns = 0;
        q.n_tokens = 0;
        q.first_token_ns = None;
        q.input_tokens = None;
        q.endpoint = None;
        q.error = None;
        q.chunk_ns.clear();
        q.chunk_tokens.clear();
        loop {
            match c.key()? {
                b"seq" => {
                    q.seq = c.uint()?;
                    seen |= 1;
                }
                b"query" => q.query = Some(c.uint()?),
                b"sample_index" => {
                    q.sample_index = c.uint()?;
                    seen |= 2;
                }
                b"scheduled_ns" => q.scheduled_ns = c.uint()?,
                b"issued_ns" => {
                    q.issued_ns = c.uint()?;
                    seen |= 4;
                }
                b"end_ns" => {
                    q.end_ns = c.uint()?;
                    seen |= 8;
                }
                b"n_tokens" => q.n_tokens = c.int()?,
                b"first_token_ns" => q.first_token_ns = c.opt(Cursor::uint)?,
                b"input_tokens" => {
                    q.input_tokens = c.opt(|c| u32::try_from(c.uint()?).ok())?;
                }
                b"endpoint" => q.endpoint = c.opt(|c| u32::try_from(c.uint()?).ok())?,
                b"chunk_ns" => c.array(&mut q.chunk_ns)?,
                b"chunk_tokens" => c.array(&mut q.chunk_tokens)?,
                _ => return None,
            }
            if c.eat(b',').is_none() {
                c.eat(b'}')?;
                break;
            }
        }
        (c.i == line.len() && seen == 15).then_some(q)
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use loadgen::{ErrorKind, QueryError, QueryRecord};
        use rundir::RecordLine;

        fn record() -> QueryRecord {
            QueryRecord {
                seq: 12,
                query: 11,
                sample_index: 3,
                scheduled_ns: 0,
                issued_ns: 18_446_744_073_709_551_615,
                first_token_ns: Some(20),
                end_ns: 40,
                n_tokens: -3,
                extras: loadgen::RecordExtras {
                    input_tokens: Some(4_000_000_000),
                    endpoint: Some(0),
                    chunk_ns: vec![20, 30, 40],
                    chunk_tokens: vec![1, 2, 1],
                    ..loadgen::RecordExtras::default()
                }
                .boxed(),
            }
        }

        fn via_serde(line: &[u8]) -> RawQuery {
            serde_json::from_slice(line).unwrap()
        }

        fn same(a: &RawQuery, b: &RawQuery) {
            assert_eq!(
                (a.seq, a.query, a.sample_index, a.scheduled_ns, a.issued_ns),
                (b.seq, b.query, b.sample_index, b.scheduled_ns, b.issued_ns)
            );
            assert_eq!(
                (a.first_token_ns, a.end_ns, a.n_tokens),
                (b.first_token_ns, b.end_ns, b.n_tokens)
            );
            assert_eq!((a.input_tokens, a.endpoint), (b.input_tokens, b.endpoint));
            assert_eq!(
                (&a.chunk_ns, &a.chunk_tokens),
                (&b.chunk_ns, &b.chunk_tokens)
            );
        }

        #[test]
        fn agrees_with_serde_on_writer_output() {
            let mut scratch = RawQuery::default();
            for r in [
                record(),
                QueryRecord {
                    first_token_ns: None,
                    ..record()
                }
                .with_extras(|e| *e = loadgen::RecordExtras::default()),
                QueryRecord {
                    scheduled_ns: 5,
                    ..record()
                },
                // The line leaves out query, scheduled_ns (record()'s is 0),
                // n_tokens and chunk_tokens.
                QueryRecord {
                    query: 12,
                    n_tokens: 0,
                    ..record()
                }
                .with_extras(|e| e.chunk_tokens = vec![1, 1, 1]),
            ] {
                let line = serde_json::to_vec(&RecordLine::Query(r)).unwrap();
                let fast = parse_query(&line, &mut scratch).expect("fast path");
                same(fast, &via_serde(&line));
            }
            // The scratch record keeps nothing from the line before.
            assert_eq!(
                (scratch.query, scratch.scheduled_ns, scratch.n_tokens),
                (None, 0, 0)
            );
            assert!(scratch.chunk_tokens.is_empty());
        }

        /// The reference: the standard library's parse, with JSON's rules.
        fn scalar_uint(s: &[u8]) -> (Option<u64>, usize) {
            let n = s.iter().take_while(|c| c.is_ascii_digit()).count();
            let v = std::str::from_utf8(&s[..n]).unwrap().parse::<u64>().ok();
            let ok = n > 0 && (n == 1 || s[0] != b'0');
            (v.filter(|_| ok), n)
        }

        #[test]
        fn reads_every_number_as_the_standard_parse_does() {
            // Every length from 1 to 21 digits (u64::MAX has 20), each
            // followed by every kind of byte that ends a number (and bytes
            // next to the digits), at every distance from the end of the
            // line.
            let mut rng = 0x9E37_79B9_7F4A_7C15u64;
            let mut next = move || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            let mut numbers: Vec<Vec<u8>> = vec![
                u64::MAX.to_string().into_bytes(),
                b"18446744073709551616".to_vec(),
                b"99999999999999999999".to_vec(),
                b"0".to_vec(),
                b"00".to_vec(),
                b"0123".to_vec(),
            ];
            for len in 1..=21 {
                for _ in 0..40 {
                    let mut d: Vec<u8> = (0..len).map(|_| b'0' + (next() % 10) as u8).collect();
                    if d[0] == b'0' && next() % 4 != 0 {
                        d[0] = b'1' + (next() % 9) as u8;
                    }
                    numbers.push(d);
                }
            }
            let ends: [&[u8]; 9] = [
                b",",
                b"]",
                b"}",
                b"/",
                b":",
                b"\xff",
                b"\xfa",
                b"",
                b",1234567,",
            ];
            for digits in &numbers {
                for end in ends {
                    for pad in 0..10 {
                        let mut line = digits.clone();
                        line.extend_from_slice(end);
                        line.extend(std::iter::repeat_n(b'x', pad));
                        let mut c = Cursor { s: &line, i: 0 };
                        let (want, len) = scalar_uint(&line);
                        let got = c.uint();
                        assert_eq!(got, want, "{:?}", String::from_utf8_lossy(&line));
                        if got.is_some() {
                            assert_eq!(c.i, len);
                        }
                    }
                }
            }
        }

        #[test]
        fn declines_what_it_does_not_handle() {
            let mut scratch = RawQuery::default();
            let failed = record().with_error(QueryError {
                kind: ErrorKind::Timeout,
                http_status: None,
                message: "x".into(),
            });
            let line = serde_json::to_string(&RecordLine::Query(failed)).unwrap();
            assert!(parse_query(line.as_bytes(), &mut scratch).is_none());
            for bad in [
                r#"{"type":"query","seq":1}"#,
                r#"{"type":"query","seq":01,"query":1,"sample_index":1,"scheduled_ns":1,"issued_ns":1,"end_ns":1,"n_tokens":1}"#,
                r#"{"type":"query","seq":1, "query":1,"sample_index":1,"scheduled_ns":1,"issued_ns":1,"end_ns":1,"n_tokens":1}"#,
                r#"{"type":"query","seq":1,"query":1,"sample_index":1,"scheduled_ns":1,"issued_ns":1,"end_ns":1,"n_tokens":1.5}"#,
                r#"{"type":"query","seq":1,"query":1,"sample_index":1,"scheduled_ns":1,"issued_ns":1,"end_ns":1,"n_tokens":1,"new":2}"#,
                r#"{"type":"query","seq":99999999999999999999,"query":1,"sample_index":1,"scheduled_ns":1,"issued_ns":1,"end_ns":1,"n_tokens":1}"#,
                r#"{"type":"query","seq":1,"query":1,"sample_index":1,"scheduled_ns":1,"issued_ns":1,"end_ns":1,"n_tokens":1}x"#,
            ] {
                assert!(parse_query(bad.as_bytes(), &mut scratch).is_none(), "{bad}");
            }
            let ok = r#"{"type":"query","seq":1,"query":1,"sample_index":1,"scheduled_ns":1,"issued_ns":1,"end_ns":1,"n_tokens":1}"#;
            assert!(parse_query(ok.as_bytes(), &mut scratch).is_some());
        }
    }
}

#[cfg(test)]
mod token_arrival_tests {
    use super::*;

    fn query(n_tokens: i64, chunk_ns: &[u64], chunk_tokens: &[u32]) -> RawQuery {
        RawQuery {
            end_ns: 1_000,
            n_tokens,
            chunk_ns: chunk_ns.to_vec(),
            chunk_tokens: chunk_tokens.to_vec(),
            ..RawQuery::default()
        }
    }

    fn token_arrivals(q: &RawQuery) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        super::token_arrivals(q, |t, n| out.push((t, n)));
        out
    }

    fn total(a: &[(u64, u64)]) -> u64 {
        a.iter().map(|&(_, n)| n).sum()
    }

    #[test]
    fn usage_beyond_unknown_chunks_is_spread_over_them() {
        // llama.cpp: 3 text chunks without counts, usage says 4 (the EOS).
        let a = token_arrivals(&query(4, &[10, 20, 30], &[0, 0, 0]));
        assert_eq!(a, vec![(10, 1), (20, 1), (30, 2)]);
        let a = token_arrivals(&query(10, &[10, 20, 30], &[0, 2, 0]));
        assert_eq!(a, vec![(10, 4), (20, 2), (30, 4)]);
        assert_eq!(total(&a), 10);
    }

    #[test]
    fn usage_beyond_known_chunks_arrives_at_completion() {
        let a = token_arrivals(&query(5, &[10, 20], &[1, 1]));
        assert_eq!(a, vec![(10, 1), (20, 1), (1_000, 3)]);
        // Nothing streamed at all.
        assert_eq!(token_arrivals(&query(7, &[], &[])), vec![(1_000, 7)]);
        // Counts that already add up are left alone.
        assert_eq!(
            token_arrivals(&query(3, &[10, 20], &[2, 1])),
            vec![(10, 2), (20, 1)]
        );
        // Old records without per-chunk counts: one token a chunk.
        assert_eq!(
            token_arrivals(&query(3, &[10, 20], &[])),
            vec![(10, 1), (20, 1), (1_000, 1)]
        );
    }
}

#[cfg(test)]
mod block_tests {
    use super::*;

    #[test]
    fn any_block_size_and_thread_count_reads_the_same_phases() {
        let tmp = tempfile::tempdir().unwrap();
        let run = crate::synthetic::SyntheticRun {
            samples: 400,
            mean_output_tokens: 6,
            fail_every: 7,
            ..Default::default()
        };
        crate::synthetic::write_run(tmp.path(), &run).unwrap();
        let path = tmp.path().join(rundir::RECORDS_FILE);
        let read = |threads, block| {
            let blocks = parse_blocks(&path, threads, block).unwrap();
            let (phases, truncated) = assemble_phases(&path, blocks).unwrap();
            assert!(!truncated);
            phases.into_iter().map(|p| p.samples).collect::<Vec<_>>()
        };
        let whole = read(1, BLOCK);
        assert_eq!(whole.iter().map(Vec::len).sum::<usize>(), 400);
        // Blocks of many lines, of a few, and smaller than any line (every
        // line longer than a block); one thread and several, so
        // recycled buffers are read into again and blocks finish out of
        // order.
        for block in [4096, 1000, 61] {
            for threads in [1, 3] {
                assert!(
                    read(threads, block) == whole,
                    "block {block}, {threads} threads"
                );
            }
        }
    }

    #[test]
    fn gaps_of_four_seconds_and_more_are_kept_apart_and_still_counted() {
        let wide = u64::from(u32::MAX) + 1;
        let query = |seq: u64, chunk_ns: Vec<u64>| {
            let r = loadgen::QueryRecord {
                seq,
                query: seq,
                sample_index: 0,
                scheduled_ns: 0,
                issued_ns: 0,
                first_token_ns: chunk_ns.first().copied(),
                end_ns: chunk_ns.last().copied().unwrap_or(0),
                n_tokens: chunk_ns.len() as i64,
                extras: loadgen::RecordExtras {
                    chunk_tokens: vec![1; chunk_ns.len()],
                    chunk_ns,
                    ..loadgen::RecordExtras::default()
                }
                .boxed(),
            };
            let mut line = serde_json::to_vec(&RecordLine::Query(r)).unwrap();
            line.push(b'\n');
            line
        };
        let mut data = query(0, vec![100, 110, 110 + wide, 120 + wide]);
        data.extend(query(1, vec![5, 5 + wide + 7]));
        let block = parse_block(&data, true);
        assert!(block.error.is_none());
        let [Piece::Queries(batch)] = &block.pieces[..] else {
            panic!("one run of queries");
        };
        assert_eq!(batch.itl, vec![10, 10]);
        assert_eq!(batch.itl_wide, vec![wide, wide + 7]);
        // Through a whole file: a synthetic run's phase header, then these.
        let tmp = tempfile::tempdir().unwrap();
        let run = crate::synthetic::SyntheticRun {
            samples: 1,
            ..Default::default()
        };
        crate::synthetic::write_run(tmp.path(), &run).unwrap();
        let path = tmp.path().join(rundir::RECORDS_FILE);
        let synthetic = std::fs::read(&path).unwrap();
        let header_end = synthetic.iter().position(|&c| c == b'\n').unwrap() + 1;
        let mut file = synthetic[..header_end].to_vec();
        file.extend(&data);
        std::fs::write(&path, file).unwrap();
        let (phases, _) = read_records(&path, 1).unwrap();
        let phase = &phases[0];
        assert_eq!(phase.itl_count(), 4);
        assert_eq!(
            phase.itl_counts.select(phase.itl_gaps(), &[0, 1, 2, 3]),
            vec![10, 10, wide, wide + 7]
        );
    }
}
