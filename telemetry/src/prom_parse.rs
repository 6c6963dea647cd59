//! A small, strict parser for the Prometheus text exposition format (0.0.4).
//!
//! Why not a crate: `prometheus-parse` 0.2.5 matches metric names with `\w+`,
//! so every `vllm:*` and `llamacpp:*` sample (the colon) is silently dropped,
//! splits label values on `,` and `=` without honouring quotes, and merges
//! histogram buckets across label sets; `openmetrics-parser` rejects the whole
//! scrape on the first bad or duplicate line and panics (`unreachable!`) on
//! some inputs. A scrape is a best-effort reading, so this parser is strict
//! per line but tolerant per scrape: a line it cannot read becomes a
//! [`ParseIssue`] naming the line, and every other line is still used.
//!
//! Accepted, per line:
//! - `# TYPE <name> <counter|gauge|histogram|summary|untyped|unknown>`; other
//!   `#` lines (`# HELP`, `# EOF`, comments) are skipped;
//! - `name[{label="value",...}] value [timestamp] [# exemplar]`, with names
//!   `[a-zA-Z_:][a-zA-Z0-9_:]*`, label values escaped with `\\`, `\"`, `\n`,
//!   an optional trailing comma, and Go float syntax for values
//!   (`+Inf`, `-Inf`, `NaN`, exponents).
//!
//! Reported as issues (the line is skipped): a bad name, label or value,
//! a repeated label name, text after the timestamp, and a series (name and
//! label set) that already appeared: the first one is kept.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

/// The declared type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// Monotonic counter.
    Counter,
    /// Value that goes up and down.
    Gauge,
    /// Cumulative buckets plus `_sum` and `_count`.
    Histogram,
    /// Client-side quantiles plus `_sum` and `_count`.
    Summary,
    /// `untyped` or `unknown`.
    Untyped,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// Metric name as written, suffix included (`x_total`, `x_bucket`).
    pub name: &'a str,
    /// Labels sorted by name.
    pub labels: Vec<(&'a str, Cow<'a, str>)>,
    /// The value.
    pub value: f64,
}

impl Sample<'_> {
    /// The value of label `name`, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_ref())
    }
}

/// A line that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseIssue {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub message: String,
}

impl fmt::Display for ParseIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// A parsed scrape, borrowing from the text.
#[derive(Debug, Default)]
pub struct Exposition<'a> {
    /// Samples in text order, duplicates removed.
    pub samples: Vec<Sample<'a>>,
    /// `# TYPE` declarations by family name.
    pub types: HashMap<&'a str, MetricType>,
    /// Lines that were skipped, and why.
    pub issues: Vec<ParseIssue>,
    by_name: HashMap<&'a str, Vec<usize>>,
}

impl<'a> Exposition<'a> {
    /// Parses a whole scrape. Never fails: unusable lines become issues.
    pub fn parse(text: &'a str) -> Exposition<'a> {
        let mut out = Exposition::default();
        let mut lines_of = Vec::new();
        for (idx, raw) in text.lines().enumerate() {
            let line_no = idx + 1;
            let line = raw.trim_matches(|c| c == ' ' || c == '\t' || c == '\r');
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                if let Err(message) = out.parse_comment(comment) {
                    out.issues.push(ParseIssue {
                        line: line_no,
                        message,
                    });
                }
                continue;
            }
            match parse_sample(line) {
                Ok(sample) => {
                    out.samples.push(sample);
                    lines_of.push(line_no);
                }
                Err(message) => out.issues.push(ParseIssue {
                    line: line_no,
                    message,
                }),
            }
        }
        out.drop_duplicates(&lines_of);
        for (i, s) in out.samples.iter().enumerate() {
            out.by_name.entry(s.name).or_default().push(i);
        }
        out
    }

    /// Samples whose name is exactly `name`.
    pub fn samples_named<'s>(&'s self, name: &str) -> impl Iterator<Item = &'s Sample<'a>> + 's {
        self.by_name
            .get(name)
            .into_iter()
            .flatten()
            .map(|&i| &self.samples[i])
    }

    /// True if any sample is named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The declared type of family `name`, if a `# TYPE` line named it.
    pub fn metric_type(&self, name: &str) -> Option<MetricType> {
        self.types.get(name).copied()
    }

    fn parse_comment(&mut self, comment: &'a str) -> Result<(), String> {
        let mut words = comment.split_ascii_whitespace();
        if words.next() != Some("TYPE") {
            return Ok(());
        }
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            return Err("incomplete TYPE line".into());
        };
        if !is_metric_name(name) {
            return Err(format!("invalid metric name {name:?} in TYPE line"));
        }
        let kind = match kind {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "summary" => MetricType::Summary,
            "untyped" | "unknown" => MetricType::Untyped,
            other => return Err(format!("unknown metric type {other:?} for {name}")),
        };
        match self.types.get(name) {
            Some(&old) if old != kind => {
                Err(format!("conflicting TYPE lines for {name}, first kept"))
            }
            Some(_) => Ok(()),
            None => {
                self.types.insert(name, kind);
                Ok(())
            }
        }
    }

    /// Keeps the first of each repeated series and reports the others.
    fn drop_duplicates(&mut self, lines_of: &[usize]) {
        let mut order: Vec<usize> = (0..self.samples.len()).collect();
        // Stable sort: among equal series, text order is kept, so the first
        // occurrence comes first.
        order.sort_by(|&a, &b| {
            let (x, y) = (&self.samples[a], &self.samples[b]);
            x.name.cmp(y.name).then_with(|| x.labels.cmp(&y.labels))
        });
        let mut dropped = vec![false; self.samples.len()];
        for pair in order.windows(2) {
            let (first, second) = (&self.samples[pair[0]], &self.samples[pair[1]]);
            if first.name == second.name && first.labels == second.labels {
                dropped[pair[1]] = true;
                self.issues.push(ParseIssue {
                    line: lines_of[pair[1]],
                    message: format!(
                        "duplicate series {} (first at line {}), ignored",
                        first.name, lines_of[pair[0]]
                    ),
                });
            }
        }
        if dropped.iter().any(|&d| d) {
            let mut keep = dropped.iter().map(|&d| !d);
            self.samples.retain(|_| keep.next().unwrap_or(true));
            self.issues.sort_by_key(|i| i.line);
        }
    }
}

fn is_metric_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// A cursor over one line.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_blanks(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        self.pos > start
    }

    fn take_while(&mut self, first: fn(u8) -> bool, rest: fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        if self.peek().is_some_and(first) {
            self.pos += 1;
            while self.peek().is_some_and(rest) {
                self.pos += 1;
            }
        }
        &self.text[start..self.pos]
    }

    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(|b| b != b' ' && b != b'\t') {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }
}

fn parse_sample(line: &str) -> Result<Sample<'_>, String> {
    let mut cur = Cursor { text: line, pos: 0 };
    let name = cur.take_while(
        |b| b.is_ascii_alphabetic() || b == b'_' || b == b':',
        |b| b.is_ascii_alphanumeric() || b == b'_' || b == b':',
    );
    if name.is_empty() {
        return Err(format!("invalid metric name at {:?}", clip(line)));
    }
    let mut labels = Vec::new();
    let spaced = cur.skip_blanks();
    if cur.peek() == Some(b'{') {
        cur.pos += 1;
        parse_labels(&mut cur, &mut labels).map_err(|e| format!("{name}: {e}"))?;
        cur.skip_blanks();
    } else if !spaced {
        return Err(format!("invalid metric name at {:?}", clip(line)));
    }
    let value_text = cur.token();
    if value_text.is_empty() {
        return Err(format!("{name}: missing value"));
    }
    let value = parse_value(value_text)
        .ok_or_else(|| format!("{name}: invalid value {:?}", clip(value_text)))?;
    cur.skip_blanks();
    if cur.peek().is_some_and(|b| b != b'#') {
        let ts = cur.token();
        if ts.parse::<i64>().is_err() {
            return Err(format!("{name}: invalid timestamp {:?}", clip(ts)));
        }
        cur.skip_blanks();
    }
    // An OpenMetrics exemplar (`# {...} value`) may follow; it is not used.
    if cur.peek().is_some_and(|b| b != b'#') {
        return Err(format!(
            "{name}: unexpected text {:?} after the value",
            clip(&line[cur.pos..])
        ));
    }
    labels.sort_by(|a: &(&str, Cow<'_, str>), b| a.0.cmp(b.0));
    if let Some(pair) = labels.windows(2).find(|p| p[0].0 == p[1].0) {
        return Err(format!("{name}: label {} repeated", pair[0].0));
    }
    Ok(Sample {
        name,
        labels,
        value,
    })
}

fn parse_labels<'a>(
    cur: &mut Cursor<'a>,
    labels: &mut Vec<(&'a str, Cow<'a, str>)>,
) -> Result<(), String> {
    loop {
        cur.skip_blanks();
        if cur.peek() == Some(b'}') {
            cur.pos += 1;
            return Ok(());
        }
        let label = cur.take_while(
            |b| b.is_ascii_alphabetic() || b == b'_',
            |b| b.is_ascii_alphanumeric() || b == b'_',
        );
        if label.is_empty() {
            return Err(format!(
                "invalid label name at {:?}",
                clip(&cur.text[cur.pos..])
            ));
        }
        cur.skip_blanks();
        if cur.peek() != Some(b'=') {
            return Err(format!("expected '=' after label {label}"));
        }
        cur.pos += 1;
        cur.skip_blanks();
        if cur.peek() != Some(b'"') {
            return Err(format!("expected '\"' to open the value of label {label}"));
        }
        cur.pos += 1;
        let value = parse_label_value(cur).map_err(|e| format!("label {label}: {e}"))?;
        labels.push((label, value));
        cur.skip_blanks();
        match cur.peek() {
            Some(b',') => cur.pos += 1,
            Some(b'}') => {}
            _ => return Err(format!("expected ',' or '}}' after label {label}")),
        }
    }
}

/// Reads up to the closing quote; borrows unless an escape must be decoded.
fn parse_label_value<'a>(cur: &mut Cursor<'a>) -> Result<Cow<'a, str>, String> {
    let start = cur.pos;
    let bytes = cur.text.as_bytes();
    let mut owned: Option<String> = None;
    let mut run_start = start;
    while let Some(&b) = bytes.get(cur.pos) {
        match b {
            b'"' => {
                let tail = &cur.text[run_start..cur.pos];
                cur.pos += 1;
                return Ok(match owned {
                    Some(mut s) => {
                        s.push_str(tail);
                        Cow::Owned(s)
                    }
                    None => Cow::Borrowed(&cur.text[start..cur.pos - 1]),
                });
            }
            b'\\' => {
                let decoded = match bytes.get(cur.pos + 1) {
                    Some(b'\\') => '\\',
                    Some(b'"') => '"',
                    Some(b'n') => '\n',
                    Some(_) => return Err("invalid escape sequence".into()),
                    None => break,
                };
                let s = owned.get_or_insert_with(String::new);
                s.push_str(&cur.text[run_start..cur.pos]);
                s.push(decoded);
                cur.pos += 2;
                run_start = cur.pos;
            }
            _ => cur.pos += 1,
        }
    }
    Err("unterminated label value".into())
}

/// Go's `strconv.ParseFloat` syntax as Prometheus writes it. Rust's parser
/// accepts `inf`, `infinity` and `nan` in any case with an optional sign,
/// which covers `+Inf`, `-Inf` and `NaN`.
fn parse_value(text: &str) -> Option<f64> {
    text.parse::<f64>().ok()
}

/// A short excerpt for messages, so a garbage line cannot flood the log.
fn clip(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_with_colons_labels_escapes_and_special_values() {
        let text = "# HELP vllm:x_total help with \"quotes\"\n\
                    # TYPE vllm:x_total counter\n\
                    vllm:x_total{model_name=\"a,b=c\",engine=\"0\"} 12.0\n\
                    esc{path=\"C:\\\\DIR\\\\F.TXT\",msg=\"say \\\"hi\\\"\\n\"} 1.458255915e9\n\
                    inf_metric +Inf\n\
                    neg{le=\"-Inf\"} -Inf 1395066363000\n\
                    nan_metric NaN\n\
                    trailing{a=\"1\",} 3\n\
                    spaced { a = \"1\" , b=\"2\" } 4\n";
        let e = Exposition::parse(text);
        assert!(e.issues.is_empty(), "{:?}", e.issues);
        assert_eq!(e.samples.len(), 7);
        let x = e.samples_named("vllm:x_total").next().unwrap();
        assert_eq!(x.value, 12.0);
        assert_eq!(x.label("model_name"), Some("a,b=c"));
        // Sorted by label name.
        assert_eq!(x.labels[0].0, "engine");
        assert_eq!(e.metric_type("vllm:x_total"), Some(MetricType::Counter));
        let esc = e.samples_named("esc").next().unwrap();
        assert_eq!(esc.label("path"), Some(r"C:\DIR\F.TXT"));
        assert_eq!(esc.label("msg"), Some("say \"hi\"\n"));
        assert_eq!(esc.value, 1.458255915e9);
        assert_eq!(
            e.samples_named("inf_metric").next().unwrap().value,
            f64::INFINITY
        );
        let neg = e.samples_named("neg").next().unwrap();
        assert_eq!(neg.value, f64::NEG_INFINITY);
        assert_eq!(neg.label("le"), Some("-Inf"));
        assert!(e.samples_named("nan_metric").next().unwrap().value.is_nan());
        assert_eq!(e.samples_named("trailing").next().unwrap().labels.len(), 1);
        assert_eq!(
            e.samples_named("spaced").next().unwrap().label("b"),
            Some("2")
        );
    }

    #[test]
    fn bad_lines_become_issues_and_good_lines_survive() {
        let text = "good 1\n\
                    this is garbage\n\
                    bad_value{a=\"1\"} abc\n\
                    bad_label{1a=\"x\"} 1\n\
                    unterminated{a=\"x} 1\n\
                    bad_escape{a=\"\\q\"} 1\n\
                    repeated{a=\"1\",a=\"2\"} 1\n\
                    extra 1 2 3\n\
                    bad_ts 1 nope\n\
                    novalue{a=\"1\"}\n\
                    # TYPE good gauge\n\
                    # TYPE good counter\n\
                    # TYPE other nonsense\n\
                    {a=\"1\"} 5\n\
                    good{a=\"1\"} 2\n\
                    good 3\n\
                    ok_exemplar_total 5 # {trace_id=\"abc\"} 1.0\n";
        let e = Exposition::parse(text);
        let lines: Vec<usize> = e.issues.iter().map(|i| i.line).collect();
        assert_eq!(
            lines,
            vec![2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 16],
            "{:?}",
            e.issues
        );
        assert!(e.issues[1].message.contains("invalid value \"abc\""));
        assert!(
            e.issues
                .last()
                .unwrap()
                .message
                .contains("duplicate series good")
        );
        assert!(e.issues.last().unwrap().message.contains("line 1"));
        let good: Vec<f64> = e.samples_named("good").map(|s| s.value).collect();
        assert_eq!(
            good,
            vec![1.0, 2.0],
            "the first of a duplicated series is kept"
        );
        assert_eq!(
            e.samples_named("ok_exemplar_total").next().unwrap().value,
            5.0
        );
        assert_eq!(e.samples.len(), 3);
    }

    #[test]
    fn openmetrics_style_families_parse() {
        let text = "# TYPE vllm:prompt_tokens counter\n\
                    vllm:prompt_tokens_total{engine=\"0\"} 3048.0\n\
                    vllm:prompt_tokens_created{engine=\"0\"} 1.7e+09\n\
                    # EOF\n";
        let e = Exposition::parse(text);
        assert!(e.issues.is_empty(), "{:?}", e.issues);
        assert_eq!(
            e.metric_type("vllm:prompt_tokens"),
            Some(MetricType::Counter)
        );
        assert_eq!(e.samples_named("vllm:prompt_tokens_total").count(), 1);
    }

    #[test]
    fn garbage_input_never_panics() {
        let nasty = [
            "",
            "\n\n",
            "{",
            "}",
            "a{",
            "a{b",
            "a{b=",
            "a{b=\"",
            "a{b=\"\\",
            "a{b=\"c\"",
            "a{b=\"c\"}",
            "a{b=\"c\"} ",
            "#",
            "# TYPE",
            "# TYPE a",
            "\u{feff}a 1",
            "a\u{e9} 1",
            "é{a=\"é\"} 1",
            "a{b=\"é\\",
            "a 1e999",
            "a 0x10",
            "a{,} 1",
            "a{=\"1\"} 1",
        ];
        for text in nasty {
            let e = Exposition::parse(text);
            for s in &e.samples {
                assert!(!s.name.is_empty());
            }
        }
        // Byte-level variations of a real line.
        let line = "vllm:x_bucket{engine=\"0\",le=\"0.5\"} 12.0 1700000000";
        for cut in 0..line.len() {
            let _ = Exposition::parse(&line[..cut]);
        }
    }
}
