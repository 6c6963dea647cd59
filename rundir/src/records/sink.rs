//! Getting `records.jsonl`'s bytes to the file without taking the CPU the
//! run needs: direct I/O from a thread of its own (buffered writes where
//! the filesystem refuses direct I/O), and in Offline the file's first
//! [`CACHED_BYTES`] through the page cache before that (see [`Mode::run`]).
//! Nothing here waits for the disk to make the bytes durable;
//! [`super::RecordsWriter::finish`] does that after the test, once.
//!
//! Offline's head through the page cache: a test that writes less than that
//! (a burst of 4M samples writes 453 MB) hands its records to the kernel
//! at memory speed, as LoadGen C++ hands its logs to an `ofstream`, instead
//! of waiting inside the test for a disk that took 0.8-1.2 s for those
//! bytes on a VM whose disk the host emulates (whole test 1.55-1.65 s with
//! direct I/O from the first byte, 0.49 s with the head cached: three runs
//! each, issue_bench Offline).
//!
//! Direct I/O past it: buffered writes make the kernel copy every byte into
//! the page cache, then sync and evict it again; at millions of records per
//! second that was half of the writer thread's time (perf, Offline 4M
//! samples on 2 cores: 0.15 s of kernel time for 454 MB, plus a sync
//! thread), taken from the cores the issuer runs on, and a long run cannot
//! leave gigabytes in the cache anyway. With `O_DIRECT` the disk reads the
//! encoded chunk from our buffer, and the I/O thread mostly waits.
//!
//! Direct I/O writes whole aligned blocks, so the writer ships the aligned
//! part of its buffer and keeps the rest for the next chunk. The unaligned
//! tail still reaches the file at every flush (and at the end) through an
//! ordinary buffered write at the same offset; the next direct write covers
//! the same bytes again, and the kernel writes back and drops the cached
//! pages of that range before it does.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use loadgen::Scenario;

use crate::{RunDirError, io_err};

/// Alignment of direct I/O buffers, offsets and lengths: the largest
/// logical block size in use (4 KiB sectors; 512-byte devices accept it too).
const ALIGN: usize = 4096;

/// Encoded bytes shipped to the I/O thread at a time (at least; the aligned
/// part of the buffer once it holds this much). Direct writes of 2 MiB ran
/// the disk here at 1.9-2.1 GB/s; smaller ones at less.
pub(super) const CHUNK_BYTES: usize = 2 * 1024 * 1024;

/// Chunks waiting for the I/O thread at most (64 MiB, about 100 ms of
/// records at 6M queries per second): when the disk falls this far behind,
/// the writer thread waits for it. The page cache used to absorb the disk's
/// stalls; direct writes of 2 MiB here took 1.3 ms at the median but up to
/// 64 ms (strace, a 10 s Server run at 5.5M QPS), and with 8 MiB queued
/// such a stall reached the issuer. Buffers are allocated as the queue
/// grows and dropped again once the disk caught up.
const QUEUED_CHUNKS: usize = 32;

/// Buffered bytes written after which the I/O thread syncs the file and
/// evicts what is on disk (when direct I/O is refused and every byte goes
/// through the page cache).
pub(super) const WRITEBACK_BYTES: u64 = 16 * 1024 * 1024;

/// Bytes of records.jsonl in the page cache at most: the head written
/// before direct I/O takes over, or, when every write is buffered, the
/// last bytes behind the file's end (older ones leave the cache once they
/// are on disk). A run at millions of queries per second writes hundreds of MB/s:
/// left cached, the file grew the page cache by 8 GB in a 30 s run, and once
/// the kernel had to find memory never used before (on a VM, memory the
/// host must first back) the writer's copies into the cache took 15 times
/// longer, the queue of records filled and the issuer stalled for seconds.
pub(super) const CACHED_BYTES: u64 = 512 * 1024 * 1024;

/// How the bytes go to the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Mode {
    /// Bytes at the file's start written through the page cache and not
    /// synced while the test runs (whole chunks: the chunk that crosses
    /// this offset is still one of them).
    pub(super) head: u64,
    /// Past the head: direct I/O where the filesystem takes it; buffered
    /// writes, synced every [`WRITEBACK_BYTES`], if false.
    pub(super) direct: bool,
    /// Buffered bytes past the head kept in the page cache behind the
    /// file's end.
    pub(super) cached: u64,
}

impl Mode {
    /// What a run of `scenario` uses: direct I/O (or buffered writes
    /// keeping [`CACHED_BYTES`]), after a head of [`CACHED_BYTES`] in
    /// Offline only. Offline's records come in one burst as its one query
    /// completes, and the head lets the test end without waiting for the
    /// disk; its write-back comes after. Elsewhere they come steadily over
    /// the test, and direct writes spread the disk's work evenly: with the
    /// head, a Server run at 1M QPS failed (p99 0.66 and 0.84 s, against
    /// 8 us twice without it, issue_bench, 15 s runs on a VM whose disk the
    /// host emulates), as the kernel wrote the cached head back mid-test in
    /// one burst.
    pub(super) const fn run(scenario: Scenario) -> Mode {
        Mode {
            head: match scenario {
                Scenario::Offline => CACHED_BYTES,
                _ => 0,
            },
            direct: true,
            cached: CACHED_BYTES,
        }
    }

    /// Buffered writes only, no head, keeping `cached` bytes (tests).
    #[cfg(test)]
    pub(super) const fn buffered(cached: u64) -> Mode {
        Mode {
            head: 0,
            direct: false,
            cached,
        }
    }

    /// A head of `head` bytes, then direct I/O (tests: the head and the
    /// switch to direct writes within a small file).
    #[cfg(test)]
    pub(super) const fn direct_after(head: u64) -> Mode {
        Mode {
            head,
            direct: true,
            cached: CACHED_BYTES,
        }
    }
}

/// A byte buffer whose data starts at an [`ALIGN`]-aligned address: a
/// `Vec` with a few bytes of padding in front (no `unsafe` allocation).
#[derive(Debug)]
struct AlignedBuf {
    vec: Vec<u8>,
    pad: usize,
}

impl AlignedBuf {
    fn new() -> AlignedBuf {
        // Room for a chunk, the line that crosses it and the padding, so
        // that appending rarely moves the data (see `realign`).
        let mut vec: Vec<u8> = Vec::with_capacity(CHUNK_BYTES + 256 * 1024 + ALIGN);
        let pad = vec.as_ptr().align_offset(ALIGN).min(ALIGN);
        vec.resize(pad, 0);
        AlignedBuf { vec, pad }
    }

    fn data(&self) -> &[u8] {
        &self.vec[self.pad..]
    }

    fn len(&self) -> usize {
        self.vec.len() - self.pad
    }

    fn clear(&mut self) {
        self.vec.truncate(self.pad);
    }

    /// After appending past the capacity moved the data (a huge line),
    /// moves it back to an aligned start.
    fn realign(&mut self) {
        let pad = self.vec.as_ptr().align_offset(ALIGN).min(ALIGN);
        if pad != self.pad {
            let data = self.vec.split_off(self.pad);
            self.vec.clear();
            self.vec.resize(pad, 0);
            self.vec.extend_from_slice(&data);
            self.pad = pad;
            self.realign();
        }
    }
}

/// What the I/O thread writes, in order.
#[derive(Debug)]
enum Write {
    /// The first `len` bytes of the buffer (a multiple of [`ALIGN`]) at
    /// `offset`, directly if the file takes it; the buffer goes back.
    Chunk {
        buf: AlignedBuf,
        len: usize,
        offset: u64,
    },
    /// Bytes at `offset`, through the page cache: the unaligned tail.
    Tail { bytes: Vec<u8>, offset: u64 },
}

/// The writer thread's end: it encodes into [`FileSink::buffer`], calls
/// [`FileSink::appended`] after each batch and [`FileSink::flush`] when it
/// is idle.
#[derive(Debug)]
pub(super) struct FileSink {
    tx: Option<mpsc::SyncSender<Write>>,
    spare: mpsc::Receiver<AlignedBuf>,
    thread: Option<thread::JoinHandle<Result<IoReport, RunDirError>>>,
    path: PathBuf,
    /// Bytes after `offset`, not yet shipped as a chunk.
    buf: AlignedBuf,
    /// File offset of the buffer's first byte (a multiple of [`ALIGN`]).
    offset: u64,
    /// Bytes at the buffer's start already written as a tail.
    tail_written: usize,
}

impl FileSink {
    /// Takes over `file` (just created, empty) at `path`.
    pub(super) fn start(file: File, path: &Path, mode: Mode) -> Result<FileSink, RunDirError> {
        let direct = if mode.direct { open_direct(path) } else { None };
        let (head, cached) = (mode.head, mode.cached);
        let (tx, rx) = mpsc::sync_channel::<Write>(QUEUED_CHUNKS);
        let (spare_tx, spare) = mpsc::channel();
        let owned = path.to_path_buf();
        let thread = thread::Builder::new()
            .name("records-io".into())
            .spawn(move || {
                IoThread {
                    file,
                    direct,
                    path: owned,
                    head,
                    cached,
                    unsynced: 0,
                    end: 0,
                    dropped: 0,
                    syncs: 0,
                }
                .run(&rx, &spare_tx)
            })
            .map_err(io_err(path))?;
        Ok(FileSink {
            tx: Some(tx),
            spare,
            thread: Some(thread),
            path: path.to_path_buf(),
            buf: AlignedBuf::new(),
            offset: 0,
            tail_written: 0,
        })
    }

    /// The buffer to append encoded lines to.
    pub(super) fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buf.vec
    }

    /// After appending: ships the aligned part once a chunk is full.
    pub(super) fn appended(&mut self) -> Result<(), RunDirError> {
        self.buf.realign();
        if self.buf.len() >= CHUNK_BYTES {
            self.ship_chunk()?;
        }
        Ok(())
    }

    /// Ships the buffer's aligned part as a chunk and keeps the rest.
    fn ship_chunk(&mut self) -> Result<(), RunDirError> {
        let len = self.buf.len() / ALIGN * ALIGN;
        if len == 0 {
            return Ok(());
        }
        // The last buffer back is reused; any others (back after the disk
        // caught up) are freed.
        let mut next = self.spare.try_iter().last().unwrap_or_else(AlignedBuf::new);
        next.clear();
        next.vec.extend_from_slice(&self.buf.data()[len..]);
        let buf = std::mem::replace(&mut self.buf, next);
        let offset = self.offset;
        self.send(Write::Chunk { buf, len, offset })?;
        self.offset += len as u64;
        self.tail_written = self.tail_written.saturating_sub(len);
        Ok(())
    }

    /// Writes whatever the buffer holds that the file does not yet (the
    /// bytes short of a chunk), so that they are in the file even if the
    /// process dies.
    pub(super) fn flush(&mut self) -> Result<(), RunDirError> {
        if self.buf.len() > self.tail_written {
            let bytes = self.buf.data()[self.tail_written..].to_vec();
            let offset = self.offset + self.tail_written as u64;
            self.tail_written = self.buf.len();
            self.send(Write::Tail { bytes, offset })?;
        }
        Ok(())
    }

    fn send(&mut self, write: Write) -> Result<(), RunDirError> {
        match &self.tx {
            Some(tx) if tx.send(write).is_ok() => Ok(()),
            // The I/O thread stopped on an error: finish reports it.
            _ => self.finish_thread().and(Err(self.stopped())),
        }
    }

    /// Writes everything into the file (not syncing it) and returns its
    /// length.
    pub(super) fn finish(self) -> Result<u64, RunDirError> {
        self.finish_with_report().map(|(len, _)| len)
    }

    /// [`FileSink::finish`], and what the I/O thread did.
    fn finish_with_report(mut self) -> Result<(u64, IoReport), RunDirError> {
        self.ship_chunk()?;
        self.flush()?;
        let report = self.finish_thread()?;
        Ok((self.offset + self.buf.len() as u64, report))
    }

    fn finish_thread(&mut self) -> Result<IoReport, RunDirError> {
        drop(self.tx.take());
        match self.thread.take() {
            Some(thread) => thread.join().unwrap_or_else(|_| Err(self.stopped())),
            None => Ok(IoReport::default()),
        }
    }

    fn stopped(&self) -> RunDirError {
        RunDirError::Io {
            path: self.path.clone(),
            source: std::io::Error::other("records I/O thread stopped"),
        }
    }
}

/// The file opened a second time for direct I/O, or `None` where that is
/// refused (tmpfs before Linux 6.6, other systems).
#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    File::options()
        .write(true)
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(path)
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_: &Path) -> Option<File> {
    None
}

/// What the I/O thread did, for tests.
#[derive(Debug, Default, Clone, Copy)]
#[cfg_attr(not(test), expect(dead_code, reason = "only the tests read it"))]
struct IoReport {
    /// Syncs while the file was being written.
    syncs: u64,
    /// Whether direct I/O was still in use at the end.
    direct: bool,
}

struct IoThread {
    file: File,
    direct: Option<File>,
    path: PathBuf,
    head: u64,
    cached: u64,
    /// Buffered bytes written since the last sync.
    unsynced: u64,
    /// End of the furthest buffered write.
    end: u64,
    /// Bytes at the file's start evicted from the page cache.
    dropped: u64,
    /// Syncs so far.
    syncs: u64,
}

impl IoThread {
    fn run(
        mut self,
        rx: &mpsc::Receiver<Write>,
        spare: &mpsc::Sender<AlignedBuf>,
    ) -> Result<IoReport, RunDirError> {
        while let Ok(write) = rx.recv() {
            match write {
                Write::Chunk { buf, len, offset } => {
                    self.chunk(&buf.data()[..len], offset)?;
                    // The writer may have finished: then nobody reuses it.
                    let _ = spare.send(buf);
                }
                Write::Tail { bytes, offset } => self.buffered(&bytes, offset)?,
            }
        }
        // The bytes are in the file; making them durable is the caller's
        // step after the test (`RecordsWriter::finish`).
        Ok(IoReport {
            syncs: self.syncs,
            direct: self.direct.is_some(),
        })
    }

    fn chunk(&mut self, data: &[u8], offset: u64) -> Result<(), RunDirError> {
        if offset < self.head {
            return self.buffered(data, offset);
        }
        if let Some(direct) = &self.direct {
            match direct.write_all_at(data, offset) {
                Ok(()) => return Ok(()),
                // Refused (alignment this filesystem does not take):
                // buffered from now on, this chunk included.
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                    self.direct = None;
                }
                Err(e) => return Err(io_err(&self.path)(e)),
            }
        }
        self.buffered(data, offset)
    }

    fn buffered(&mut self, data: &[u8], offset: u64) -> Result<(), RunDirError> {
        self.file
            .write_all_at(data, offset)
            .map_err(io_err(&self.path))?;
        self.end = self.end.max(offset + data.len() as u64);
        if offset < self.head {
            // The head waits in the cache for the sync after the test.
            return Ok(());
        }
        if self.direct.is_some() {
            // A tail, ahead of the direct writes: the next direct write
            // over its range writes its pages back and drops them from
            // the cache, so tails never pile up there, and the last one
            // waits for the sync after the test. Syncing here as buffered
            // writes do stalled the run: on a VM whose disk the host
            // emulates, an fdatasync made the host write back everything
            // written directly before it and took 0.8-1.1 s, every 4 s at
            // 1.32M QPS (16 MiB of tails), long enough to fill the chunk
            // and batch queues behind it and stop the issuer for up to
            // 0.3 s (issue_bench Server, 20 s: INVALID, p99 160-390 ms).
            return Ok(());
        }
        self.unsynced += data.len() as u64;
        if self.unsynced >= WRITEBACK_BYTES {
            // What went through the page cache goes to disk now, not all at
            // once in the final sync, and leaves the cache.
            self.file.sync_data().map_err(io_err(&self.path))?;
            self.syncs += 1;
            self.unsynced = 0;
            if let Some((offset, len)) = cache_drop(self.dropped, self.end, self.cached) {
                evict(&self.file, offset, len);
                self.dropped = offset + len;
            }
        }
        Ok(())
    }
}

/// The part of the file to drop from the page cache after a sync covered
/// its first `synced` bytes, when its first `dropped` bytes already were
/// dropped: everything synced but the last `cached` bytes, as (offset,
/// length), or nothing.
fn cache_drop(dropped: u64, synced: u64, cached: u64) -> Option<(u64, u64)> {
    let end = synced.saturating_sub(cached);
    (end > dropped).then(|| (dropped, end - dropped))
}

/// Drops a synced range of the file from the page cache. Advice only: a
/// kernel that declines leaves the pages cached, as without it, and pages
/// not yet on disk are never dropped.
#[cfg(target_os = "linux")]
fn evict(file: &File, offset: u64, len: u64) {
    let _ = rustix::fs::fadvise(
        file,
        offset,
        std::num::NonZeroU64::new(len),
        rustix::fs::Advice::DontNeed,
    );
}

#[cfg(not(target_os = "linux"))]
fn evict(_: &File, _: u64, _: u64) {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends `parts` one by one (flushing after those `flush_after`
    /// says), finishes, and checks the file holds exactly their bytes;
    /// returns what the I/O thread did.
    fn round_trip(mode: Mode, parts: &[Vec<u8>], flush_after: impl Fn(usize) -> bool) -> IoReport {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("records.jsonl");
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        let mut sink = FileSink::start(file, &path, mode).unwrap();
        let mut expected = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            sink.buffer().extend_from_slice(part);
            expected.extend_from_slice(part);
            sink.appended().unwrap();
            if flush_after(i) {
                sink.flush().unwrap();
            }
        }
        let (len, report) = sink.finish_with_report().unwrap();
        assert_eq!(len, expected.len() as u64);
        let written = std::fs::read(&path).unwrap();
        assert_eq!(written.len(), expected.len(), "{mode:?}");
        assert!(written == expected, "{mode:?}: the bytes differ");
        report
    }

    /// Distinct bytes everywhere, so a misplaced block shows.
    fn part(seed: usize, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| b'a' + ((seed * 31 + i * 7) % 26) as u8)
            .collect()
    }

    #[test]
    fn every_byte_lands_once_in_order_in_every_mode() {
        // All head; direct from the first byte; a head that ends inside a
        // chunk, then direct; buffered throughout.
        let modes = [
            Mode::run(Scenario::Offline),
            Mode::run(Scenario::Server),
            Mode::direct_after(ALIGN as u64 + 1),
            Mode::buffered(0),
        ];
        // Nothing; one byte; exactly one block; chunk-sized and crossing
        // parts; a part far larger than the buffer (it moves and realigns).
        let shapes: Vec<Vec<Vec<u8>>> = vec![
            vec![],
            vec![part(1, 1)],
            vec![part(2, ALIGN)],
            vec![part(3, CHUNK_BYTES), part(4, 3)],
            (0..40).map(|i| part(i, 200_003)).collect(),
            vec![part(5, 10), part(6, 3 * CHUNK_BYTES + 17), part(7, 5)],
        ];
        for mode in modes {
            for parts in &shapes {
                round_trip(mode, parts, |_| false);
                // Tails written at flushes and then covered again by the
                // chunks: after every part, and after every third.
                round_trip(mode, parts, |_| true);
                round_trip(mode, parts, |i| i % 3 == 0);
            }
        }
    }

    /// Tails written at every flush, far past the writeback threshold:
    /// buffered writes sync on the way, direct ones never do (each tail is
    /// written back by the direct write that covers it).
    #[test]
    fn tails_ahead_of_direct_writes_are_never_synced_during_the_run() {
        let tails = 3 * (WRITEBACK_BYTES as usize) / (CHUNK_BYTES / 2);
        let parts: Vec<Vec<u8>> = (0..tails + 8)
            .map(|i| part(i, CHUNK_BYTES / 2 + 7))
            .collect();
        for mode in [Mode::run(Scenario::Server), Mode::buffered(0)] {
            let report = round_trip(mode, &parts, |_| true);
            if report.direct {
                assert_eq!(report.syncs, 0, "{mode:?}");
            } else {
                // Every byte buffered (asked for, or direct I/O refused
                // here): synced every WRITEBACK_BYTES.
                assert!(report.syncs >= 2, "{mode:?}: {report:?}");
            }
        }
    }

    #[test]
    fn buffered_writes_sync_and_evict_past_the_threshold() {
        // More than the writeback threshold, keeping nothing cached: the
        // syncs and evictions on the way lose and reorder nothing.
        let parts: Vec<Vec<u8>> = (0..10).map(|i| part(i, 2 * 1024 * 1024 + 1)).collect();
        round_trip(Mode::buffered(0), &parts, |i| i % 4 == 1);
    }

    #[test]
    fn only_synced_bytes_beyond_the_cached_tail_are_dropped_and_each_once() {
        const MIB: u64 = 1024 * 1024;
        // Nothing while the file fits in the cached tail.
        assert_eq!(cache_drop(0, 16 * MIB, 512 * MIB), None);
        assert_eq!(cache_drop(0, 512 * MIB, 512 * MIB), None);
        // Then what lies before the tail, from where the last drop ended.
        assert_eq!(cache_drop(0, 528 * MIB, 512 * MIB), Some((0, 16 * MIB)));
        assert_eq!(
            cache_drop(16 * MIB, 560 * MIB, 512 * MIB),
            Some((16 * MIB, 32 * MIB))
        );
        // A request that carries no new bytes (an older offset) drops nothing.
        assert_eq!(cache_drop(48 * MIB, 544 * MIB, 512 * MIB), None);
        assert_eq!(cache_drop(48 * MIB, 560 * MIB, 512 * MIB), None);
        // Keeping nothing drops all that was synced.
        assert_eq!(cache_drop(0, 16 * MIB, 0), Some((0, 16 * MIB)));
        assert_eq!(
            cache_drop(16 * MIB, 32 * MIB, 0),
            Some((16 * MIB, 16 * MIB))
        );
    }
}
