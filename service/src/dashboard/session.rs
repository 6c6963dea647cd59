//! The dashboard's session cookie: `v1.EXPIRES.MAC`, where MAC is an
//! HMAC-SHA256 of the expiry time keyed with the digest of the API key the
//! user logged in with. The cookie is never the key (it cannot be replayed
//! as one against /api), it expires, it needs no server-side store (so
//! several `serve` instances behind a load balancer accept each other's
//! cookies and a restart logs nobody out), and removing a key from the key
//! list ends every session opened with it.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

use crate::auth::KeySet;

/// The cookie's name.
pub(crate) const COOKIE: &str = "harness_dashboard";
/// How long a login lasts, in seconds (12 hours).
pub(crate) const MAX_AGE_S: i64 = 12 * 3600;
/// What the MAC covers besides the expiry, so it is used for nothing else.
const CONTEXT: &[u8] = b"harness-dashboard-session-v1:";

fn mac(key_digest: &[u8; 32], expires: i64) -> Option<[u8; 32]> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key_digest).ok()?;
    m.update(CONTEXT);
    m.update(expires.to_string().as_bytes());
    Some(m.finalize().into_bytes().into())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The cookie value for a login with `key` at `now` (Unix seconds), or
/// `None` when the key is not one of `keys`.
pub(crate) fn issue(keys: &KeySet, key: &[u8], now: i64) -> Option<String> {
    keys.check(key)?;
    let digest: [u8; 32] = <Sha256 as sha2::Digest>::digest(key).into();
    let expires = now + MAX_AGE_S;
    Some(format!("v1.{expires}.{}", hex(&mac(&digest, expires)?)))
}

/// Whether a cookie value is a live session signed with one of `keys`.
/// Every key is tried (no early exit), each compared in constant time.
pub(crate) fn valid(keys: &KeySet, value: &str, now: i64) -> bool {
    let mut parts = value.splitn(3, '.');
    let (Some("v1"), Some(expires), Some(presented)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let (Ok(expires), Some(presented)) = (expires.parse::<i64>(), unhex(presented)) else {
        return false;
    };
    if expires <= now || expires > now + MAX_AGE_S || presented.len() != 32 {
        return false;
    }
    let mut found = Choice::from(0);
    for digest in keys.digests() {
        if let Some(expected) = mac(digest, expires) {
            found |= expected.ct_eq(presented.as_slice());
        }
    }
    bool::from(found)
}

/// The session cookie among a request's `Cookie` headers.
pub(crate) fn from_headers(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "read-key-0123456789abcdef";

    #[test]
    fn a_cookie_is_signed_expires_and_is_not_the_key() {
        let keys = KeySet::parse(&format!("read:{KEY}"), "test").unwrap();
        assert_eq!(issue(&keys, b"wrong-key-0123456789abcdef", 1000), None);
        let cookie = issue(&keys, KEY.as_bytes(), 1000).unwrap();
        assert!(!cookie.contains(KEY));
        assert!(cookie.starts_with(&format!("v1.{}.", 1000 + MAX_AGE_S)));
        assert!(valid(&keys, &cookie, 1000));
        assert!(valid(&keys, &cookie, 1000 + MAX_AGE_S - 1));
        assert!(!valid(&keys, &cookie, 1000 + MAX_AGE_S), "expired");
        // A forged expiry breaks the MAC; a flipped MAC digit too.
        let forged = cookie.replacen(&(1000 + MAX_AGE_S).to_string(), "99999", 1);
        assert!(!valid(&keys, &forged, 1000));
        let last = cookie.chars().last().unwrap();
        let flipped = format!(
            "{}{}",
            &cookie[..cookie.len() - 1],
            if last == '0' { '1' } else { '0' }
        );
        assert!(!valid(&keys, &flipped, 1000));
        // Another key set (the key was removed) rejects it.
        let other = KeySet::parse("read:other-key-0123456789abcdef", "test").unwrap();
        assert!(!valid(&other, &cookie, 1000));
        for junk in ["", "v1", "v1.x.y", "v2.1.00", "v1.50000.zz", KEY] {
            assert!(!valid(&keys, junk, 1000), "{junk}");
        }
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            axum::http::header::COOKIE,
            "a=1; harness_dashboard=v1.2.ab; b=2".parse().unwrap(),
        );
        assert_eq!(from_headers(&headers), Some("v1.2.ab"));
        headers.clear();
        assert_eq!(from_headers(&headers), None);
    }
}
