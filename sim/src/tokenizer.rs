//! A deterministic built-in tokenizer (like llm-d-inference-sim's dummy tokenizer).
//!
//! Id 0 is `<unk>`, 1 `<s>`, 2 the EOS `</s>` (renders as nothing), 3..=6 the punctuation
//! `. , ? !`, and every id from 7 up is a word made of consonant-vowel syllables with a leading
//! space (`" ba"`, `" daki"`...). Every piece is plain ASCII with nothing to escape in JSON, so
//! output chunks are rendered without serde. Text is split into words and punctuation; a word
//! of the vocabulary gets its id, any other piece a hash of it (lossy, but deterministic).

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::rng::mix;

/// The EOS token id.
pub const EOS_TOKEN_ID: u32 = 2;
/// The first id of a word piece.
const FIRST_WORD: u32 = 7;
const PUNCT: [&str; 4] = [".", ",", "?", "!"];
const CONSONANTS: &[u8] = b"bcdfghjklmnprstvwz";
const VOWELS: &[u8] = b"aeiou";

/// The vocabulary: id -> piece text, and (built on first use) piece -> id.
#[derive(Debug)]
pub struct Tokenizer {
    pieces: Vec<Box<str>>,
    lookup: OnceLock<HashMap<Box<str>, u32>>,
}

impl Tokenizer {
    /// A vocabulary of `vocab_size` ids (at least 8).
    pub fn new(vocab_size: u32) -> Tokenizer {
        let vocab_size = vocab_size.max(FIRST_WORD + 1);
        let mut pieces: Vec<Box<str>> = Vec::with_capacity(vocab_size as usize);
        pieces.push("<unk>".into());
        pieces.push("<s>".into());
        pieces.push("".into());
        for p in PUNCT {
            pieces.push(p.into());
        }
        let nsyl = (CONSONANTS.len() * VOWELS.len()) as u32;
        let mut word = String::with_capacity(16);
        for id in FIRST_WORD..vocab_size {
            word.clear();
            word.push(' ');
            let mut k = id - FIRST_WORD;
            loop {
                let s = (k % nsyl) as usize;
                word.push(char::from(CONSONANTS[s / VOWELS.len()]));
                word.push(char::from(VOWELS[s % VOWELS.len()]));
                k /= nsyl;
                if k == 0 {
                    break;
                }
            }
            pieces.push(word.as_str().into());
        }
        Tokenizer {
            pieces,
            lookup: OnceLock::new(),
        }
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> u32 {
        self.pieces.len() as u32
    }

    /// The text of one token ("" for EOS and for ids outside the vocabulary).
    pub fn piece(&self, id: u32) -> &str {
        match self.pieces.get(id as usize) {
            Some(p) if id != 0 && id != 1 => p,
            _ => "",
        }
    }

    /// Text -> token ids.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let lookup = self.lookup.get_or_init(|| {
            self.pieces
                .iter()
                .enumerate()
                .skip(FIRST_WORD as usize)
                .map(|(i, p)| (p.trim_start().into(), i as u32))
                .collect()
        });
        let words = u64::from(self.vocab_size() - FIRST_WORD);
        let mut out = Vec::with_capacity(text.len() / 4 + 1);
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b.is_ascii_whitespace() {
                i += 1;
            } else if b.is_ascii_alphabetic() {
                let start = i;
                while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                    i += 1;
                }
                let w = &text[start..i];
                let id = lookup
                    .get(w)
                    .copied()
                    .unwrap_or_else(|| FIRST_WORD + (hash_bytes(w.as_bytes()) % words) as u32);
                out.push(id);
            } else if let Some(p) = PUNCT.iter().position(|p| p.as_bytes()[0] == b) {
                out.push(3 + p as u32);
                i += 1;
            } else {
                // Any other character (digit, symbol, non-ASCII) is one token.
                let len = text[i..].chars().next().map_or(1, char::len_utf8);
                out.push(FIRST_WORD + (hash_bytes(&bytes[i..i + len]) % words) as u32);
                i += len;
            }
        }
        out
    }

    /// Token ids -> text.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut s = String::with_capacity(ids.len() * 5);
        for &id in ids {
            s.push_str(self.piece(id));
        }
        s
    }
}

fn hash_bytes(b: &[u8]) -> u64 {
    let mut h = 0xCBF2_9CE4_8422_2325u64;
    for &x in b {
        h = (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01B3);
    }
    mix(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_unique_and_json_safe() {
        let t = Tokenizer::new(20_000);
        let mut seen = std::collections::HashSet::new();
        for id in 3..t.vocab_size() {
            let p = t.piece(id);
            assert!(seen.insert(p.to_owned()), "duplicate piece {p:?}");
            assert!(
                p.bytes()
                    .all(|b| b == b' ' || b.is_ascii_alphabetic() || b".,?!".contains(&b))
            );
        }
        assert_eq!(t.piece(EOS_TOKEN_ID), "");
    }

    #[test]
    fn decode_then_encode_round_trips() {
        let t = Tokenizer::new(32_000);
        let ids: Vec<u32> = (3..2000).step_by(7).chain([31_999, 4, 5]).collect();
        let text = t.decode(&ids);
        assert_eq!(t.encode(&text), ids);
    }

    #[test]
    fn unknown_text_is_deterministic_and_counts_words() {
        let t = Tokenizer::new(32_000);
        let a = t.encode("Hello, world! 42 ünï");
        assert_eq!(a, t.encode("Hello, world! 42 ünï"));
        // Hello , world ! 4 2 ü n ï
        assert_eq!(a.len(), 9);
        assert!(a.iter().all(|&id| id < 32_000));
    }
}
