//! A small, strict Server-Sent Events parser.
//!
//! It follows the WHATWG event-stream grammar: lines end with `\n`, `\r\n` or
//! a lone `\r`; a blank line dispatches the event; lines starting with `:` are
//! comments; `data:` lines accumulate (joined with `\n`); a single space after
//! the colon is dropped; a leading byte-order mark is skipped; an event with
//! no `data` is not dispatched; unknown fields are ignored.
//!
//! Bytes go in with [`SseParser::feed`] in whatever pieces the network
//! delivers; complete events come out of [`SseParser::next_event`]. The common
//! event (one `data:` line) is returned as a slice of the parser's buffer, so
//! no per-event allocation happens; only multi-line events are copied into a
//! reused buffer. "Strict" means a runaway event (no line end, or more data
//! than the limit) is an error instead of unbounded memory, and a non-UTF-8
//! event type is an error.

use std::ops::Range;

/// Why the byte stream is not a valid event stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SseError {
    /// One event (or one unterminated line) grew past the limit.
    #[error("sse event larger than {limit} bytes")]
    EventTooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// The `event:` field is not UTF-8.
    #[error("sse event type is not valid utf-8")]
    InvalidEventType,
}

/// One dispatched event. Borrows the parser until dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The `event:` field, empty when absent (the default type "message").
    pub event: &'a str,
    /// The `data:` lines joined with `\n`.
    pub data: &'a [u8],
}

impl SseEvent<'_> {
    /// True for OpenAI's end-of-stream sentinel `data: [DONE]`.
    pub fn is_done(&self) -> bool {
        self.data == b"[DONE]"
    }
}

/// Where the data of the event being assembled lives.
#[derive(Debug, Clone)]
enum Pending {
    /// No `data:` line yet.
    Empty,
    /// Exactly one `data:` line, still inside `buf` (the zero-copy case).
    InBuf(Range<usize>),
    /// Copied into `data` (several lines, or a line that must survive a
    /// buffer compaction).
    Owned,
}

/// Incremental event-stream parser. See the module docs.
#[derive(Debug, Clone)]
pub struct SseParser {
    /// Received bytes; `buf[start..]` is not yet consumed.
    buf: Vec<u8>,
    start: usize,
    /// A line ended with `\r` at the very end of the received bytes: a `\n`
    /// at the start of the next piece belongs to that line end.
    skip_lf: bool,
    /// Nothing parsed yet (a byte-order mark may still come).
    at_stream_start: bool,
    pending: Pending,
    data: Vec<u8>,
    event: String,
    /// Bytes the pending event has accumulated, for the size limit.
    pending_len: usize,
    /// The last dispatched event borrowed `event`; clear it before reuse.
    clear_event_type: bool,
    limit: usize,
}

/// Default largest event (and largest line): generous for prompts echoed
/// back as token ids, small enough to stop a runaway stream.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

impl Default for SseParser {
    fn default() -> Self {
        SseParser::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseParser {
    /// A parser that rejects events (and lines) larger than `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> SseParser {
        SseParser {
            buf: Vec::new(),
            start: 0,
            skip_lf: false,
            at_stream_start: true,
            pending: Pending::Empty,
            data: Vec::new(),
            event: String::new(),
            pending_len: 0,
            clear_event_type: false,
            limit: max_event_bytes,
        }
    }

    /// Appends received bytes. Call [`SseParser::next_event`] until it
    /// returns `Ok(None)` before feeding more.
    pub fn feed(&mut self, bytes: &[u8]) {
        // The pending single line is about to move: keep a copy.
        if let Pending::InBuf(range) = &self.pending {
            self.data.clear();
            self.data.extend_from_slice(&self.buf[range.clone()]);
            self.pending = Pending::Owned;
        }
        if self.start >= self.buf.len() {
            self.buf.clear();
        } else if self.start > 0 {
            self.buf.copy_within(self.start.., 0);
            self.buf.truncate(self.buf.len() - self.start);
        }
        self.start = 0;
        self.buf.extend_from_slice(bytes);
    }

    /// True when bytes of an unfinished event are buffered: a stream that
    /// ends now ends mid-event.
    pub fn has_partial_event(&self) -> bool {
        self.start < self.buf.len() || !matches!(self.pending, Pending::Empty)
    }

    /// The next complete event, `Ok(None)` when more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<SseEvent<'_>>, SseError> {
        if self.clear_event_type {
            self.event.clear();
            self.clear_event_type = false;
        }
        if self.at_stream_start {
            let rest = &self.buf[self.start..];
            if rest.len() < 3 && b"\xEF\xBB\xBF".starts_with(rest) {
                // Could still be a byte-order mark: wait for more bytes.
                return Ok(None);
            }
            if rest.starts_with(b"\xEF\xBB\xBF") {
                self.start += 3;
            }
            self.at_stream_start = false;
        }
        loop {
            if self.skip_lf && self.start < self.buf.len() {
                if self.buf[self.start] == b'\n' {
                    self.start += 1;
                }
                self.skip_lf = false;
            }
            let rest = &self.buf[self.start..];
            let Some(eol) = memchr::memchr2(b'\n', b'\r', rest) else {
                if rest.len() > self.limit {
                    return Err(SseError::EventTooLarge { limit: self.limit });
                }
                return Ok(None);
            };
            // A complete line is held to the same limit as an incomplete
            // one, so how the stream was cut into reads never decides
            // whether it is accepted (found by fuzzing: a long comment
            // line passed whole and failed when split).
            if eol > self.limit {
                return Err(SseError::EventTooLarge { limit: self.limit });
            }
            let line = self.start..self.start + eol;
            let next = if rest[eol] == b'\r' {
                match rest.get(eol + 1) {
                    Some(b'\n') => line.end + 2,
                    Some(_) => line.end + 1,
                    None => {
                        self.skip_lf = true;
                        line.end + 1
                    }
                }
            } else {
                line.end + 1
            };
            self.start = next;
            if line.is_empty() {
                if self.dispatch_ready() {
                    return Ok(Some(self.take_event()));
                }
                continue;
            }
            self.process_line(line)?;
        }
    }

    /// Handles one non-empty line (`range` indexes `buf`).
    fn process_line(&mut self, range: Range<usize>) -> Result<(), SseError> {
        let line = &self.buf[range.clone()];
        if line[0] == b':' {
            return Ok(()); // comment
        }
        let (name, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value_start = if line.get(colon + 1) == Some(&b' ') {
                    colon + 2
                } else {
                    colon + 1
                };
                (&line[..colon], range.start + value_start..range.end)
            }
            None => (line, range.end..range.end),
        };
        match name {
            b"data" => {
                self.pending_len += value.len() + 1;
                if self.pending_len > self.limit {
                    return Err(SseError::EventTooLarge { limit: self.limit });
                }
                match &self.pending {
                    Pending::Empty => self.pending = Pending::InBuf(value),
                    Pending::InBuf(first) => {
                        self.data.clear();
                        self.data.extend_from_slice(&self.buf[first.clone()]);
                        self.data.push(b'\n');
                        self.data.extend_from_slice(&self.buf[value]);
                        self.pending = Pending::Owned;
                    }
                    Pending::Owned => {
                        self.data.push(b'\n');
                        self.data.extend_from_slice(&self.buf[value]);
                    }
                }
            }
            b"event" => {
                let text = std::str::from_utf8(&self.buf[value])
                    .map_err(|_| SseError::InvalidEventType)?;
                self.event.clear();
                self.event.push_str(text);
            }
            // `id` and `retry` steer browser reconnection; a benchmark client
            // never reconnects a generation, and unknown fields are ignored.
            _ => {}
        }
        Ok(())
    }

    /// At a blank line: is there an event to dispatch? Resets the event type
    /// when not (the grammar discards a data-less event entirely).
    fn dispatch_ready(&mut self) -> bool {
        if matches!(self.pending, Pending::Empty) {
            self.event.clear();
            self.pending_len = 0;
            return false;
        }
        true
    }

    /// Builds the event and resets the per-event state. The event type is
    /// cleared lazily (when parsing resumes), since the event borrows it.
    fn take_event(&mut self) -> SseEvent<'_> {
        let pending = std::mem::replace(&mut self.pending, Pending::Empty);
        self.pending_len = 0;
        self.clear_event_type = true;
        let data: &[u8] = match pending {
            Pending::InBuf(range) => &self.buf[range],
            Pending::Owned => &self.data,
            Pending::Empty => &[],
        };
        let event = self.event.as_str();
        SseEvent { event, data }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses everything in one piece; returns (event, data) pairs.
    fn parse_all(input: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut p = SseParser::default();
        p.feed(input);
        let mut out = Vec::new();
        while let Some(ev) = p.next_event().unwrap() {
            out.push((ev.event.to_string(), ev.data.to_vec()));
        }
        out
    }

    fn data_only(input: &[u8]) -> Vec<String> {
        parse_all(input)
            .into_iter()
            .map(|(_, d)| String::from_utf8(d).unwrap())
            .collect()
    }

    #[test]
    fn single_and_multi_line_events() {
        assert_eq!(
            data_only(b"data: a\n\ndata: b\ndata:  c\n\n"),
            vec!["a", "b\n c"]
        );
    }

    #[test]
    fn all_line_endings() {
        assert_eq!(
            data_only(b"data: 1\r\n\r\ndata: 2\r\rdata: 3\n\n"),
            vec!["1", "2", "3"]
        );
    }

    #[test]
    fn comments_unknown_fields_and_no_space() {
        assert_eq!(
            data_only(b": keep-alive\n\nid: 7\nretry: 10\nfoo\ndata:x\n\n"),
            vec!["x"]
        );
    }

    #[test]
    fn event_type_is_reported_and_reset() {
        let got = parse_all(b"event: error\ndata: boom\n\ndata: ok\n\n");
        assert_eq!(got[0], ("error".to_string(), b"boom".to_vec()));
        assert_eq!(got[1], (String::new(), b"ok".to_vec()));
    }

    #[test]
    fn event_without_data_is_not_dispatched_and_its_type_is_dropped() {
        let got = parse_all(b"event: ping\n\ndata: x\n\n");
        assert_eq!(got, vec![(String::new(), b"x".to_vec())]);
    }

    #[test]
    fn empty_data_line_dispatches_an_empty_event() {
        assert_eq!(data_only(b"data\n\ndata:\n\n"), vec!["", ""]);
    }

    #[test]
    fn byte_order_mark_is_skipped_once() {
        assert_eq!(data_only(b"\xEF\xBB\xBFdata: a\n\n"), vec!["a"]);
        // Split inside the mark.
        let mut p = SseParser::default();
        p.feed(b"\xEF\xBB");
        assert!(p.next_event().unwrap().is_none());
        p.feed(b"\xBFdata: a\n\n");
        assert_eq!(p.next_event().unwrap().unwrap().data, b"a");
    }

    #[test]
    fn done_sentinel() {
        let mut p = SseParser::default();
        p.feed(b"data: [DONE]\n\n");
        assert!(p.next_event().unwrap().unwrap().is_done());
    }

    #[test]
    fn cr_at_piece_end_then_lf_is_one_line_end() {
        let mut p = SseParser::default();
        p.feed(b"data: a\r");
        assert!(p.next_event().unwrap().is_none());
        p.feed(b"\n\r");
        assert_eq!(p.next_event().unwrap().unwrap().data, b"a");
        p.feed(b"\ndata: b\n\n");
        assert_eq!(p.next_event().unwrap().unwrap().data, b"b");
        assert!(p.next_event().unwrap().is_none());
        assert!(!p.has_partial_event());
    }

    #[test]
    fn pending_single_line_survives_compaction() {
        let mut p = SseParser::default();
        p.feed(b"data: first\n\ndata: sec");
        assert_eq!(p.next_event().unwrap().unwrap().data, b"first");
        assert!(p.next_event().unwrap().is_none());
        assert!(p.has_partial_event());
        p.feed(b"ond\n");
        assert!(p.next_event().unwrap().is_none());
        p.feed(b"data: third\n\n");
        assert_eq!(p.next_event().unwrap().unwrap().data, b"second\nthird");
    }

    #[test]
    fn oversized_line_and_event_are_errors() {
        let mut p = SseParser::new(8);
        p.feed(b"data: 0123456789");
        assert_eq!(
            p.next_event().unwrap_err(),
            SseError::EventTooLarge { limit: 8 }
        );
        let mut p = SseParser::new(8);
        p.feed(b"data: 1234\ndata: 5678\n");
        assert!(p.next_event().is_err());
    }

    #[test]
    fn a_long_complete_line_is_rejected_however_the_stream_is_cut() {
        // A comment (no data) longer than the limit, then a newline.
        let mut line = vec![b':'; 12];
        line.push(b'\n');
        let mut whole = SseParser::new(8);
        whole.feed(&line);
        assert_eq!(
            whole.next_event().unwrap_err(),
            SseError::EventTooLarge { limit: 8 }
        );
        assert_eq!(cut_outcome(&line, 8, 3), cut_outcome(&line, 8, line.len()));
    }

    /// Events parsed, the error that stopped parsing, and whether an event
    /// was left unfinished.
    type Outcome = (Vec<(String, Vec<u8>)>, Option<SseError>, bool);

    /// What the fuzz target `sse` compares: the outcome for `stream` fed in
    /// pieces of `step` bytes.
    fn cut_outcome(stream: &[u8], limit: usize, step: usize) -> Outcome {
        let mut p = SseParser::new(limit);
        let mut events = Vec::new();
        for piece in stream.chunks(step.max(1)) {
            p.feed(piece);
            loop {
                match p.next_event() {
                    Ok(Some(ev)) => events.push((ev.event.to_string(), ev.data.to_vec())),
                    Ok(None) => break,
                    Err(e) => return (events, Some(e), true),
                }
            }
        }
        let partial = p.has_partial_event();
        (events, None, partial)
    }

    /// Inputs the fuzzer once failed on (`fuzz/regressions/sse/`, in the
    /// fuzz target's layout: a first byte choosing the cut, then the stream).
    #[test]
    fn fuzz_regressions_parse_the_same_whole_and_cut() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/sse");
        let mut replayed = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let Some((&step, stream)) = data.split_first() else {
                continue;
            };
            let step = usize::from(step % 17) + 1;
            assert_eq!(
                cut_outcome(stream, 4096, stream.len().max(1)),
                cut_outcome(stream, 4096, step),
                "{}",
                path.display()
            );
            replayed += 1;
        }
        assert!(replayed > 0, "no regression inputs in {}", dir.display());
    }

    #[test]
    fn invalid_utf8_event_type_is_an_error() {
        let mut p = SseParser::default();
        p.feed(b"event: \xFF\ndata: x\n\n");
        assert_eq!(p.next_event().unwrap_err(), SseError::InvalidEventType);
    }

    /// xorshift64*: a seeded generator, so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A random event stream: data (single and multi-line), event types,
    /// comments, ids, unknown fields, blank lines, all three line ends, an
    /// optional byte-order mark, values with and without the leading space.
    fn random_stream(rng: &mut Rng) -> Vec<u8> {
        let mut out = Vec::new();
        if rng.below(4) == 0 {
            out.extend_from_slice(b"\xEF\xBB\xBF");
        }
        let alphabet: &[u8] = b"ab :{}\"[]0,DONE\xC3\xA9";
        for _ in 0..rng.below(40) {
            let line: Vec<u8> = match rng.below(9) {
                0..=3 => {
                    let mut l = if rng.below(2) == 0 {
                        b"data: ".to_vec()
                    } else {
                        b"data:".to_vec()
                    };
                    for _ in 0..rng.below(12) {
                        l.push(alphabet[rng.below(alphabet.len() as u64) as usize]);
                    }
                    l
                }
                4 => b"event: error".to_vec(),
                5 => b": comment".to_vec(),
                6 => b"id: 3".to_vec(),
                7 => b"data".to_vec(),
                _ => Vec::new(),
            };
            out.extend_from_slice(&line);
            out.extend_from_slice(match rng.below(3) {
                0 => b"\n".as_slice(),
                1 => b"\r\n",
                _ => b"\r",
            });
        }
        out
    }

    /// The grammar written the obvious way, on the whole input at once.
    fn reference(input: &[u8]) -> Vec<(String, Vec<u8>)> {
        let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
        let mut lines = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < input.len() {
            match input[i] {
                b'\n' => {
                    lines.push(&input[start..i]);
                    start = i + 1;
                }
                b'\r' => {
                    lines.push(&input[start..i]);
                    if input.get(i + 1) == Some(&b'\n') {
                        i += 1;
                    }
                    start = i + 1;
                }
                _ => {}
            }
            i += 1;
        }
        let (mut events, mut data, mut event) = (Vec::new(), None::<Vec<u8>>, String::new());
        for line in lines {
            if line.is_empty() {
                if let Some(d) = data.take() {
                    events.push((std::mem::take(&mut event), d));
                }
                event.clear();
                continue;
            }
            if line[0] == b':' {
                continue;
            }
            let (name, mut value) = match line.iter().position(|&b| b == b':') {
                Some(c) => (&line[..c], &line[c + 1..]),
                None => (line, &line[line.len()..]),
            };
            if value.first() == Some(&b' ') {
                value = &value[1..];
            }
            match name {
                b"data" => match &mut data {
                    Some(d) => {
                        d.push(b'\n');
                        d.extend_from_slice(value);
                    }
                    None => data = Some(value.to_vec()),
                },
                b"event" => event = String::from_utf8(value.to_vec()).unwrap(),
                _ => {}
            }
        }
        events
    }

    #[test]
    fn random_splits_give_the_same_events_as_the_reference() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for case in 0..2000 {
            let input = random_stream(&mut rng);
            let want = reference(&input);
            assert_eq!(parse_all(&input), want, "case {case}: whole input");
            // Random cut points, with single bytes and empty pieces mixed in.
            let mut p = SseParser::default();
            let mut got = Vec::new();
            let mut at = 0;
            while at < input.len() {
                let len = match rng.below(4) {
                    0 => 0,
                    1 => 1,
                    _ => rng.below(16) as usize,
                };
                let end = (at + len).min(input.len());
                p.feed(&input[at..end]);
                at = end;
                while let Some(ev) = p.next_event().unwrap() {
                    got.push((ev.event.to_string(), ev.data.to_vec()));
                }
            }
            assert_eq!(got, want, "case {case}: split input {input:?}");
        }
    }
}
