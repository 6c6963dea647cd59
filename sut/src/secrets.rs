//! Keeping secrets out of every message the SUT produces.
//!
//! Two kinds of secret reach the SUT: the API key, and user info in an
//! endpoint URL (`http://user:pass@host`, which reqwest sends as basic
//! auth). Either can come back in text the SUT did not write: a transport
//! error quoting the URL, or a server's error body echoing the
//! `Authorization` header. Every message leaves the crate through
//! [`Secrets::scrub`]: failed samples through the response tracker, set-up
//! errors through [`crate::OpenAiSut::connect`]. So nothing downstream
//! (console, records, CSV, summaries, history, Prometheus) ever sees one.

use base64::Engine as _;

/// What replaces a secret.
pub const REDACTED: &str = "<redacted>";

/// A URL without user info or query string (credentials never reach a
/// file). Text that is not a URL comes back unchanged.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let rest = rest.split_once('?').map_or(rest, |(base, _)| base);
    if scheme.is_empty() {
        rest.to_owned()
    } else {
        format!("{scheme}://{rest}")
    }
}

/// Removes the user info of every URL inside `text`
/// (`see http://u:p@host/x` becomes `see http://host/x`).
pub fn strip_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // The authority ends at the path, query, fragment, or anything
        // that cannot be part of a URL in running text.
        let end = tail
            .find(|c: char| {
                matches!(c, '/' | '?' | '#') || c.is_whitespace() || "\"'<>`,;)]}".contains(c)
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(i) => out.push_str(&authority[i + 1..]),
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// The secret values of one SUT, and the scrubbing of text against them.
#[derive(Clone, Default)]
pub struct Secrets {
    values: Vec<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("values", &self.values.len())
            .finish()
    }
}

impl Secrets {
    /// The API key (as given and as its `Bearer` header) and the user info
    /// of every endpoint URL (as given, percent-decoded, and as the basic
    /// auth header reqwest makes of it).
    pub fn new<'a>(api_key: Option<&str>, endpoints: impl IntoIterator<Item = &'a str>) -> Self {
        let mut values = Vec::new();
        if let Some(key) = api_key {
            values.push(key.to_owned());
        }
        for url in endpoints {
            let Ok(parsed) = reqwest::Url::parse(url) else {
                continue;
            };
            let user = parsed.username();
            let password = parsed.password();
            if user.is_empty() && password.is_none() {
                continue;
            }
            let decoded = |s: &str| percent_decode(s).unwrap_or_else(|| s.to_owned());
            let (user, password) = (decoded(user), password.map(decoded));
            let basic = format!("{user}:{}", password.as_deref().unwrap_or(""));
            values.push(base64::engine::general_purpose::STANDARD.encode(basic));
            if let Some(password) = password {
                if let Some(raw) = parsed.password() {
                    values.push(raw.to_owned());
                }
                values.push(password);
            }
        }
        // Too short a value would blank out ordinary words; such a secret
        // is still removed wherever it sits in a URL's user info.
        values.retain(|v| v.len() >= 4);
        // Longest first, so a secret containing another is removed whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Secrets { values }
    }

    /// These values are secret too (the values of extra headers, which may
    /// carry credentials).
    pub fn with_values<'a>(mut self, values: impl IntoIterator<Item = &'a str>) -> Self {
        self.values.extend(values.into_iter().map(str::to_owned));
        self.values.retain(|v| v.len() >= 4);
        self.values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        self.values.dedup();
        self
    }

    /// `text` without any secret value and without URL user info.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = strip_userinfo(text);
        for value in &self.values {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), REDACTED);
            }
        }
        out
    }
}

/// `%XX` decoding; `None` when the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_survive_url_redaction() {
        assert_eq!(
            redact_url("https://user:secret@host:8000/v1?key=abc"),
            "https://host:8000/v1"
        );
        assert_eq!(redact_url("http://127.0.0.1:8000"), "http://127.0.0.1:8000");
    }

    #[test]
    fn user_info_is_stripped_from_running_text() {
        assert_eq!(
            strip_userinfo("cannot connect to http://u:p%40ss@h:1/v1/completions: refused"),
            "cannot connect to http://h:1/v1/completions: refused"
        );
        assert_eq!(
            strip_userinfo("a (http://x@y) and https://z/a@b"),
            "a (http://y) and https://z/a@b"
        );
        assert_eq!(strip_userinfo("no url here"), "no url here");
    }

    #[test]
    fn extra_header_values_are_scrubbed_too() {
        let secrets = Secrets::new(None, []).with_values(["tenant-token-42", "ab"]);
        assert_eq!(
            secrets.scrub("echo X-Token: tenant-token-42 ab"),
            "echo X-Token: <redacted> ab"
        );
    }

    #[test]
    fn keys_passwords_and_their_basic_auth_are_scrubbed() {
        let secrets = Secrets::new(
            Some("sk-supersecret"),
            [
                "http://alice:pa%24%24word@127.0.0.1:9/v1",
                "http://127.0.0.1:8",
            ],
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("alice:pa$$word");
        let text = format!(
            "echo: Authorization: Bearer sk-supersecret; Basic {basic}; pa$$word pa%24%24word"
        );
        let clean = secrets.scrub(&text);
        for leaked in ["sk-supersecret", basic.as_str(), "pa$$word", "pa%24%24word"] {
            assert!(!clean.contains(leaked), "{clean}");
        }
        assert!(clean.contains("Bearer <redacted>"), "{clean}");
    }
}
