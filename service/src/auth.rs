//! API keys: who may read the results and who may upload runs.
//!
//! Keys are held only as SHA-256 digests and a presented key is compared
//! with every one of them in constant time (`subtle`), so neither the
//! comparison's time nor a memory dump tells a key. No key is ever logged,
//! shown in an error or stored in the database.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The shortest key accepted: a guessable key is no key.
pub const MIN_KEY_LEN: usize = 16;

/// What a key allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Every GET route.
    Read,
    /// Every GET route and uploading runs.
    Upload,
}

/// A bad key list. Names where the key is, never the key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// An entry's scope is neither `read` nor `upload`.
    #[error("{source_name}: entry {entry}: unknown scope (use read:KEY or upload:KEY)")]
    Scope {
        /// Where the keys came from (file or variable name).
        source_name: String,
        /// 1-based entry number.
        entry: usize,
    },
    /// An entry's key is too short.
    #[error("{source_name}: entry {entry}: a key needs at least {MIN_KEY_LEN} characters")]
    Short {
        /// Where the keys came from.
        source_name: String,
        /// 1-based entry number.
        entry: usize,
    },
    /// No key at all.
    #[error("{source_name}: no API key (every /api route needs one)")]
    Empty {
        /// Where the keys came from.
        source_name: String,
    },
}

#[derive(Clone)]
struct Key {
    digest: [u8; 32],
    scope: Scope,
}

/// The accepted keys.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: Vec<Key>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeySet({} keys)", self.keys.len())
    }
}

fn digest(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

impl KeySet {
    /// Parses a key list: entries separated by newlines or commas, each
    /// `read:KEY`, `upload:KEY` or a bare `KEY` (read); blank entries and
    /// lines starting with `#` are skipped. `source_name` names the file or
    /// variable in errors.
    pub fn parse(text: &str, source_name: &str) -> Result<KeySet, KeyError> {
        let mut keys = Vec::new();
        let entries = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .flat_map(|l| l.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty());
        for (i, entry) in entries.enumerate() {
            let (scope, key) = match entry.split_once(':') {
                Some(("read", key)) => (Scope::Read, key),
                Some(("upload", key)) => (Scope::Upload, key),
                Some(_) => {
                    return Err(KeyError::Scope {
                        source_name: source_name.to_owned(),
                        entry: i + 1,
                    });
                }
                None => (Scope::Read, entry),
            };
            if key.chars().count() < MIN_KEY_LEN {
                return Err(KeyError::Short {
                    source_name: source_name.to_owned(),
                    entry: i + 1,
                });
            }
            keys.push(Key {
                digest: digest(key.as_bytes()),
                scope,
            });
        }
        if keys.is_empty() {
            return Err(KeyError::Empty {
                source_name: source_name.to_owned(),
            });
        }
        Ok(KeySet { keys })
    }

    /// Joins two key lists.
    pub fn extend(&mut self, other: KeySet) {
        self.keys.extend(other.keys);
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// No key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The SHA-256 digest of every key: what the dashboard's session
    /// cookies are signed with (so a cookie is never the key itself).
    pub(crate) fn digests(&self) -> impl Iterator<Item = &[u8; 32]> {
        self.keys.iter().map(|k| &k.digest)
    }

    /// The scope of a presented key, or `None`. Every key is compared (no
    /// early exit), each in constant time.
    pub fn check(&self, presented: &[u8]) -> Option<Scope> {
        let d = digest(presented);
        let mut found: Option<Scope> = None;
        for key in &self.keys {
            if bool::from(key.digest.ct_eq(&d)) {
                found = found.max(Some(key.scope));
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_commas_comments_and_bad_entries() {
        let keys = KeySet::parse(
            "# team keys\nread:aaaaaaaaaaaaaaaa, upload:bbbbbbbbbbbbbbbb\ncccccccccccccccc\n",
            "keys.txt",
        )
        .unwrap();
        assert_eq!(keys.len(), 3);
        assert_eq!(keys.check(b"aaaaaaaaaaaaaaaa"), Some(Scope::Read));
        assert_eq!(keys.check(b"bbbbbbbbbbbbbbbb"), Some(Scope::Upload));
        assert_eq!(keys.check(b"cccccccccccccccc"), Some(Scope::Read));
        assert_eq!(keys.check(b"aaaaaaaaaaaaaaa"), None);
        assert_eq!(keys.check(b""), None);
        let err = KeySet::parse("read:short", "HARNESS_API_KEYS").unwrap_err();
        assert_eq!(
            err.to_string(),
            "HARNESS_API_KEYS: entry 1: a key needs at least 16 characters"
        );
        assert!(!err.to_string().contains("short"));
        let err = KeySet::parse("admin:dddddddddddddddd", "k").unwrap_err();
        assert!(matches!(err, KeyError::Scope { entry: 1, .. }));
        assert!(!err.to_string().contains("dddd"));
        assert!(matches!(
            KeySet::parse("# nothing\n\n", "k"),
            Err(KeyError::Empty { .. })
        ));
        assert_eq!(format!("{keys:?}"), "KeySet(3 keys)");
    }
}
