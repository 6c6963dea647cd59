//! `mlperf_log_trace.json`: Chrome trace events (`chrome://tracing`,
//! Perfetto). LoadGen's trace is not valid JSON (its LogDetail events carry
//! `"key":""loadgen_version""`); this one is, and it is streamed: the
//! header is written at open, one event per line, and the footer at finish.

use std::fmt::Write as _;

use super::detail::escape_json_into;

/// The file's first bytes.
pub const HEADER: &str = "{\"traceEvents\":[\n";

/// One instant event (`"ph":"i"`) at `ts_ns` from the log origin, with its
/// trailing comma (the footer closes the list with a last event, as
/// LoadGen's does, so every event may end with a comma).
pub fn render_instant(out: &mut String, name: &str, ts_ns: u64, pid: u32, tid: u64, arg: &str) {
    out.push_str("{\"name\":\"");
    escape_json_into(name, out);
    let _ = write!(
        out,
        "\",\"ph\":\"i\",\"s\":\"t\",\"pid\":{pid},\"tid\":{tid},\"ts\":{}.{:03},\"args\":{{\"value\":\"",
        ts_ns / 1000,
        ts_ns % 1000
    );
    escape_json_into(arg, out);
    out.push_str("\"}},\n");
}

/// The file's last bytes: a closing event, then the metadata LoadGen writes.
pub fn footer(origin_unix_us: u64) -> String {
    format!(
        "{{\"name\":\"LastTrace\"}}\n],\n\"displayTimeUnit\":\"ns\",\n\"otherData\":{{\n\"ts\":{origin_unix_us},\n\"version\":\"MLPerf LoadGen v1.0\"\n}}\n}}\n"
    )
}
