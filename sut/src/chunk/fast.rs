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

use super::ParsedChunk;

/// Parses `json` into `out` if it has the fast shape; `None` leaves `out`
/// in an unspecified state for serde to reset.
pub(super) fn parse(out: &mut ParsedChunk, json: &[u8]) -> Option<()> {
    let mut s = Scanner { b: json, i: 0 };
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
            b"choices" => choices(&mut s, out)?,
            b"usage" => s.null()?,
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

fn choice(s: &mut Scanner<'_>, c: &mut super::ChoiceDelta) -> Option<()> {
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
                    c.text.push_str(s.string()?);
                }
            }
            b"logprobs" => s.null()?,
            b"finish_reason" => {
                if !s.maybe_null() {
                    s.string()?;
                    c.finished = true;
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
                    Some(ids(s, None)?)
                };
            }
            b"token_ids" => {
                if !s.maybe_null() {
                    ids(s, Some(&mut c.ids))?;
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

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
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
