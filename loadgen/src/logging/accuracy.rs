//! `mlperf_log_accuracy.json` entries, byte for byte as LoadGen writes them.

use std::fmt::Write as _;

/// What an accuracy entry carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccuracyFormat {
    /// `use_token_latencies`: entries gain `token_count`.
    pub use_tokens: bool,
    /// Outside Offline, token entries also gain `token_data` (first-token bytes).
    pub needs_first_token: bool,
}

/// The file's first bytes.
pub const HEADER: &str = "[";
/// The file's last bytes (an empty log is `[\n]\n`).
pub const FOOTER: &str = "\n]\n";

/// Uppercase hex of raw bytes, in byte order.
pub fn hex_upper_into(bytes: &[u8], out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0F)] as char);
    }
}

/// One response to log.
#[derive(Debug, Clone, Copy)]
pub struct AccuracyEntry<'a> {
    /// LoadGen's sample sequence id.
    pub seq_id: u64,
    /// QSL index of the sample.
    pub qsl_idx: u64,
    /// Response bytes.
    pub data: &'a [u8],
    /// First-token bytes (token mode outside Offline; `""` when absent).
    pub token_data: Option<&'a [u8]>,
    /// `n_tokens` (token mode).
    pub token_count: Option<i64>,
}

/// Appends one entry, with its leading separator (`\n{ ` for the first,
/// `,\n{ ` after).
pub fn render_entry(
    out: &mut String,
    first: bool,
    format: AccuracyFormat,
    entry: &AccuracyEntry<'_>,
) {
    let AccuracyEntry {
        seq_id,
        qsl_idx,
        data,
        token_data,
        token_count,
    } = *entry;
    out.push_str(if first { "\n{ " } else { ",\n{ " });
    let _ = write!(
        out,
        "\"seq_id\" : {seq_id}, \"qsl_idx\" : {qsl_idx}, \"data\" : \""
    );
    hex_upper_into(data, out);
    out.push('"');
    if format.use_tokens {
        if format.needs_first_token {
            out.push_str(", \"token_data\" : \"");
            hex_upper_into(token_data.unwrap_or(&[]), out);
            out.push('"');
        }
        let _ = write!(out, ", \"token_count\" : {}", token_count.unwrap_or(0));
    }
    out.push_str(" }");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_match_loadgen_layout() {
        let mut out = String::from(HEADER);
        let plain = AccuracyFormat {
            use_tokens: false,
            needs_first_token: false,
        };
        let e = |seq_id, qsl_idx, data, token_data, token_count| AccuracyEntry {
            seq_id,
            qsl_idx,
            data,
            token_data,
            token_count,
        };
        render_entry(
            &mut out,
            true,
            plain,
            &e(4, 10451, &[0xEB, 0x49, 0, 0], None, None),
        );
        let tokens = AccuracyFormat {
            use_tokens: true,
            needs_first_token: true,
        };
        render_entry(
            &mut out,
            false,
            tokens,
            &e(5, 7, &[1], Some(&[0xAB]), Some(42)),
        );
        out.push_str(FOOTER);
        assert_eq!(
            out,
            "[\n{ \"seq_id\" : 4, \"qsl_idx\" : 10451, \"data\" : \"EB490000\" },\n{ \"seq_id\" : 5, \"qsl_idx\" : 7, \"data\" : \"01\", \"token_data\" : \"AB\", \"token_count\" : 42 }\n]\n"
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v[1]["token_count"], 42);
    }
}
