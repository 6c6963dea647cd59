//! A fast path for the one chunk shape that arrives thousands of times a
//! second: vLLM's (and the simulator's) compact `/v1/completions` stream
//! chunk,
//!
//! ```text
//! {"id":"cmpl-…","object":"text_completion","created":1,"model":"m",
//!  "choices":[{"index":0,"text":" a","logprobs":null,"finish_reason":null,
//!  "stop_reason":null,"prompt_token_ids":null,"token_ids":[5777]}]}
//! ```
//!
//! It accepts only a strict subset of JSON: no whitespace, keys from the
//! lists below in any order, strings without escapes or control characters,
//! unsigned integers without leading zeros. Anything else (an escape, a
//! usage object, a chat delta, an error, an unknown key, a malformed
//! chunk) returns `None` and the caller parses with serde, which gives the
//! answer (or the error) for every input. On `Some` the parsed chunk is
//! exactly what serde would have produced (the tests compare the two).
//!
//! Within one stream every chunk but the first and the last is the one
//! before with another text and other token ids. [`replay`] checks that
//! byte for byte against the [`Shape`] the last fully parsed chunk left,
//! which costs a fifth of parsing its twelve keys again (callgrind: about
//! 550 instructions a chunk against 2,800; parsing was the largest single
//! share of the client's user-space instructions per streamed request).

use super::{ChoiceDelta, ParsedChunk};

/// Parses `json` into `out` if it has the fast shape; `None` leaves `out`
/// in an unspecified state for serde to reset.
pub(super) fn parse(out: &mut ParsedChunk, json: &[u8]) -> Option<()> {
    let mut s = Scanner::at(json, 0);
    object(&mut s, out)?;
    out.shape
        .record(json, &s, &out.slots[..out.used], out.usage);
    Some(())
}

/// The top-level object.
fn object(s: &mut Scanner<'_>, out: &mut ParsedChunk) -> Option<()> {
    s.byte(b'{')?;
    if s.peek()? == b'}' {
        s.i += 1;
        return s.end();
    }
    loop {
        match s.key()? {
            b"id" | b"model" => {
                s.string()?;
            }
            b"object" => {
                // `"object": "error"` is an error object: serde's business.
                if s.string()? == "error" {
                    return None;
                }
            }
            b"created" => {
                s.uint()?;
            }
            b"choices" => choices(s, out)?,
            b"usage" => out.usage = usage(s)?,
            _ => return None,
        }
        if s.comma_or(b'}')? {
            return s.end();
        }
    }
}

fn choices(s: &mut Scanner<'_>, out: &mut ParsedChunk) -> Option<()> {
    s.byte(b'[')?;
    if s.peek()? == b']' {
        s.i += 1;
        return Some(());
    }
    loop {
        let slot = out.next_slot();
        choice(s, slot)?;
        out.used += 1;
        if s.comma_or(b']')? {
            return Some(());
        }
    }
}

fn choice(s: &mut Scanner<'_>, c: &mut ChoiceDelta) -> Option<()> {
    s.byte(b'{')?;
    if s.peek()? == b'}' {
        s.i += 1;
        return Some(());
    }
    loop {
        match s.key()? {
            b"index" => c.index = u32::try_from(s.uint()?).ok()?,
            b"text" => {
                if !s.maybe_null() {
                    let start = s.i + 1;
                    c.text.push_str(s.string()?);
                    s.text = Some((start, s.i - 1));
                }
            }
            b"logprobs" => s.null()?,
            // Like serde: the last finish_reason decides, null included.
            b"finish_reason" => {
                c.finished = !s.maybe_null();
                if c.finished {
                    s.string()?;
                }
            }
            // vLLM sends null, the stop string, or the stop token id.
            b"stop_reason" => {
                if !s.maybe_null() {
                    if s.peek()? == b'"' {
                        s.string()?;
                    } else {
                        s.uint()?;
                    }
                }
            }
            b"prompt_token_ids" => {
                c.prompt_ids = if s.maybe_null() {
                    None
                } else {
                    Some(count_ids(s)?)
                };
            }
            b"token_ids" => {
                if !s.maybe_null() {
                    let start = s.i + 1;
                    let n = ids(s, Some(&mut c.ids))?;
                    s.ids = Some((start, s.i - 1, n));
                    c.has_ids = true;
                }
            }
            _ => return None,
        }
        if s.comma_or(b'}')? {
            return Some(());
        }
    }
}

/// A token id array, pushed into `buf` when given; returns its length
/// (saturating, as serde's path counts).
fn ids(s: &mut Scanner<'_>, mut buf: Option<&mut Vec<u32>>) -> Option<u32> {
    s.byte(b'[')?;
    let mut n: u32 = 0;
    if s.peek()? == b']' {
        s.i += 1;
        return Some(0);
    }
    loop {
        let id = u32::try_from(s.uint()?).ok()?;
        if let Some(buf) = buf.as_deref_mut() {
            buf.push(id);
        }
        n = n.saturating_add(1);
        if s.comma_or(b']')? {
            return Some(n);
        }
    }
}

/// The prompt's token id array, counted: the grammar of [`ids`] in one pass
/// over the bytes (a prompt has hundreds to thousands of ids, and only
/// their number is wanted).
fn count_ids(s: &mut Scanner<'_>) -> Option<u32> {
    s.byte(b'[')?;
    let rest = &s.b[s.i..];
    let mut n: u32 = 0;
    // Digits of the id being read, and where it began.
    let mut digits = 0usize;
    let mut start = 0usize;
    for (k, &c) in rest.iter().enumerate() {
        match c {
            b'0'..=b'9' => {
                if digits == 0 {
                    start = k;
                }
                digits += 1;
            }
            b',' | b']' => {
                if digits == 0 {
                    // Only `[]` may have a bracket with no id before it.
                    return (c == b']' && k == 0).then(|| {
                        s.i += 1;
                        0
                    });
                }
                // A u32 without a leading zero.
                let id = &rest[start..k];
                let fits = digits < 10 || (digits == 10 && id <= &b"4294967295"[..]);
                if !fits || (digits > 1 && id[0] == b'0') {
                    return None;
                }
                n = n.saturating_add(1);
                digits = 0;
                if c == b']' {
                    s.i += k + 1;
                    return Some(n);
                }
            }
            _ => return None,
        }
    }
    None
}

/// `usage`: null, or an object of the counts [`super::Usage`] keeps (and
/// `total_tokens`), each at most once. Anything else is serde's.
fn usage(s: &mut Scanner<'_>) -> Option<Option<super::Usage>> {
    if s.maybe_null() {
        return Some(None);
    }
    s.byte(b'{')?;
    let mut usage = super::Usage::default();
    if s.peek()? == b'}' {
        s.i += 1;
        return Some(Some(usage));
    }
    let mut seen = [false; 3];
    loop {
        let (slot, field) = match s.key()? {
            b"prompt_tokens" => (0, Some(&mut usage.prompt_tokens)),
            b"completion_tokens" => (1, Some(&mut usage.completion_tokens)),
            b"total_tokens" => (2, None),
            _ => return None,
        };
        if std::mem::replace(&mut seen[slot], true) {
            return None;
        }
        let value = if s.maybe_null() {
            None
        } else {
            Some(u32::try_from(s.uint()?).ok()?)
        };
        if let Some(field) = field {
            *field = value;
        }
        if s.comma_or(b'}')? {
            return Some(Some(usage));
        }
    }
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    /// Where the last non-null `text` string's content lies in `b`.
    text: Option<(usize, usize)>,
    /// Where the last non-null `token_ids` array's content (between the
    /// brackets) lies in `b`, and how many ids it holds.
    ids: Option<(usize, usize, u32)>,
}

/// A stream's last fully parsed chunk, cut around its text and its token
/// ids: `before` ends with the text's opening quote, `between` runs from
/// its closing quote to the `[` of the token ids, `after` from their `]` to
/// the end. Empty `before`: nothing to compare with.
///
/// A chunk made of the same three pieces around another valid text and
/// other valid ids parses to the same choice with that text and those ids:
/// the parser passes through the same bytes in the same states, and the
/// pieces were checked (when recorded) to add no text and no ids of their
/// own. Everything else they set is kept here.
#[derive(Debug, Default)]
pub(super) struct Shape {
    before: Vec<u8>,
    between: Vec<u8>,
    after: Vec<u8>,
    index: u32,
    other_content: bool,
    finished: bool,
    prompt_ids: Option<u32>,
    usage: Option<super::Usage>,
}

impl Shape {
    /// Keeps `json`'s pieces if it parsed (as `choices`) to exactly one
    /// choice whose text and ids are the last text and ids it contains,
    /// text first; otherwise forgets the shape.
    fn record(
        &mut self,
        json: &[u8],
        s: &Scanner<'_>,
        choices: &[ChoiceDelta],
        usage: Option<super::Usage>,
    ) {
        self.before.clear();
        let ([choice], Some((t0, t1)), Some((i0, i1, n))) = (choices, s.text, s.ids) else {
            return;
        };
        // The last text and ids were pushed last: the choice holding no
        // more than they do means nothing else pushed any.
        if t1 > i0 || choice.text.len() != t1 - t0 || choice.ids.len() != n as usize {
            return;
        }
        self.before.extend_from_slice(&json[..t0]);
        self.between.clear();
        self.between.extend_from_slice(&json[t1..i0]);
        self.after.clear();
        self.after.extend_from_slice(&json[i1..]);
        self.index = choice.index;
        self.other_content = choice.other_content;
        self.finished = choice.finished;
        self.prompt_ids = choice.prompt_ids;
        self.usage = usage;
    }
}

/// Parses `json` as the stream's previous chunk with another text and
/// other token ids (see [`Shape`]); `None` (with `out` unspecified) when it
/// is not that.
pub(super) fn replay(out: &mut ParsedChunk, json: &[u8]) -> Option<()> {
    let shape = &out.shape;
    if shape.before.is_empty() || !json.starts_with(&shape.before) {
        return None;
    }
    let mut s = Scanner::at(json, shape.before.len() - 1);
    let text = s.string()?;
    // `string` consumed the closing quote, which `between` starts with.
    s.i -= 1;
    if !json[s.i..].starts_with(&shape.between) {
        return None;
    }
    s.i += shape.between.len() - 1;
    let slot = out.next_slot();
    ids(&mut s, Some(&mut slot.ids))?;
    // `ids` consumed the closing bracket, which `after` starts with.
    if json[s.i - 1..] != out.shape.after[..] {
        return None;
    }
    let shape = &out.shape;
    let slot = &mut out.slots[0];
    slot.text.push_str(text);
    slot.index = shape.index;
    slot.other_content = shape.other_content;
    slot.has_ids = true;
    slot.finished = shape.finished;
    slot.prompt_ids = shape.prompt_ids;
    out.used = 1;
    out.usage = shape.usage;
    Some(())
}

impl<'a> Scanner<'a> {
    /// A scanner over `b` from byte `i`.
    fn at(b: &'a [u8], i: usize) -> Scanner<'a> {
        Scanner {
            b,
            i,
            text: None,
            ids: None,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn byte(&mut self, want: u8) -> Option<()> {
        (self.peek()? == want).then(|| self.i += 1)
    }

    /// `,` (more follows: `false`) or `close` (`true`).
    fn comma_or(&mut self, close: u8) -> Option<bool> {
        let c = self.peek()?;
        self.i += 1;
        match c {
            b',' => Some(false),
            c if c == close => Some(true),
            _ => None,
        }
    }

    /// The input must end right here.
    fn end(&self) -> Option<()> {
        (self.i == self.b.len()).then_some(())
    }

    /// A string without escapes or control characters, as text.
    fn string(&mut self) -> Option<&'a str> {
        let s = self.raw_string()?;
        if s.iter().any(|&c| c < 0x20) {
            return None;
        }
        std::str::from_utf8(s).ok()
    }

    /// A string without escapes: its bytes, unchecked.
    fn raw_string(&mut self) -> Option<&'a [u8]> {
        self.byte(b'"')?;
        let rest = &self.b[self.i..];
        let len = memchr::memchr2(b'"', b'\\', rest)?;
        if rest[len] != b'"' {
            return None;
        }
        self.i += len + 1;
        Some(&rest[..len])
    }

    /// `"key":`. The key is not checked for control characters or UTF-8:
    /// callers compare it with ASCII names and hand any other key (so any
    /// key such a check would refuse) to serde. Twelve keys a chunk made
    /// the check a sizeable share of parsing.
    fn key(&mut self) -> Option<&'a [u8]> {
        let k = self.raw_string()?;
        self.byte(b':')?;
        Some(k)
    }

    /// An unsigned integer: digits, no leading zero, followed by `,`, `]`
    /// or `}` (so `1.5` and `1e3` go to serde).
    fn uint(&mut self) -> Option<u64> {
        let start = self.i;
        let mut v: u64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
            self.i += 1;
        }
        let digits = self.i - start;
        if digits == 0 || (digits > 1 && self.b[start] == b'0') {
            return None;
        }
        matches!(self.peek()?, b',' | b']' | b'}').then_some(v)
    }

    fn null(&mut self) -> Option<()> {
        self.maybe_null().then_some(())
    }

    /// Consumes `null` if it is next.
    fn maybe_null(&mut self) -> bool {
        let null = self.b[self.i..].starts_with(b"null");
        if null {
            self.i += 4;
        }
        null
    }
}
