//! What a command prints: a human text and a JSON document, and the small
//! helpers that make them (aligned tables, times, payloads).

use std::fmt::Write as _;
use std::io::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use errand_runtime::Timestamp;
use serde_json::Value;

use crate::error::Kind;

/// The result of a command: the text a person reads and the JSON document
/// a script reads (`--json`); one of them is printed.
#[derive(Debug, Clone)]
pub struct Output {
    /// The human text (tables, trees), ending with a newline when not empty.
    pub human: String,
    /// The JSON document.
    pub json: Value,
    /// The exit code when the command ran but its answer is a failure
    /// (`migrate --check` on a schema that is behind); `None` for 0.
    pub status: Option<Kind>,
}

impl Output {
    /// An output of `human` text and the `json` document.
    pub fn new(human: impl Into<String>, json: Value) -> Self {
        Self { human: human.into(), json, status: None }
    }

    /// This output, ending the process with the exit code of `kind`.
    #[must_use]
    pub fn exit(mut self, kind: Kind) -> Self {
        self.status = Some(kind);
        self
    }

    /// Writes the JSON document (pretty, one document) or the human text to
    /// stdout. A closed pipe (`errand tasks ls | head`) is not an error.
    pub fn print(&self, json: bool) {
        let mut stdout = std::io::stdout().lock();
        let text = if json {
            let mut text = serde_json::to_string_pretty(&self.json).unwrap_or_else(|_| "null".to_owned());
            text.push('\n');
            text
        } else {
            self.human.clone()
        };
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
    }
}

/// How a column lines up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Right,
}

/// A table of aligned columns, two spaces apart, with a header line.
#[derive(Debug)]
pub(crate) struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these headers and alignments.
    pub(crate) fn new(columns: &[(&'static str, Align)]) -> Self {
        Self { columns: columns.to_vec(), rows: Vec::new() }
    }

    /// Adds a row (missing cells are empty, extra cells dropped).
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Whether no row was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text; the last column is not padded.
    pub(crate) fn render(&self) -> String {
        let mut widths: Vec<usize> = self.columns.iter().map(|(h, _)| width(h)).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(widths.len()) {
                widths[i] = widths[i].max(width(cell));
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.columns.iter().map(|(h, _)| h.to_uppercase()).collect();
        self.line(&mut out, &header, &widths);
        for row in &self.rows {
            self.line(&mut out, row, &widths);
        }
        out
    }

    fn line(&self, out: &mut String, cells: &[String], widths: &[usize]) {
        let mut line = String::new();
        let last = self.columns.len().saturating_sub(1);
        for (i, ((_, align), w)) in self.columns.iter().zip(widths).enumerate() {
            let cell = cells.get(i).map(String::as_str).unwrap_or("");
            if i > 0 {
                line.push_str("  ");
            }
            let pad = w.saturating_sub(width(cell));
            match align {
                Align::Right => {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                }
                Align::Left if i == last => line.push_str(cell),
                Align::Left => {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad));
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// The width of `s` on a terminal, counting characters (good enough for
/// the names and messages shown here).
pub(crate) fn width(s: &str) -> usize {
    s.chars().count()
}

/// `s` cut to at most `max` characters, with `…` when cut, on one line.
pub(crate) fn clip(s: &str, max: usize) -> String {
    let one_line: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if width(&one_line) <= max {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A stored time as RFC 3339 in UTC with milliseconds, for JSON.
pub(crate) fn rfc3339(t: Timestamp) -> String {
    match DateTime::<Utc>::from_timestamp_millis(t.as_millis()) {
        Some(time) => time.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => t.as_millis().to_string(),
    }
}

/// A stored time for people: `2026-05-01 12:00:00`, in UTC.
pub(crate) fn human_time(t: Timestamp) -> String {
    match DateTime::<Utc>::from_timestamp_millis(t.as_millis()) {
        Some(time) => time.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => t.as_millis().to_string(),
    }
}

/// How long ago (or, in the future, in how long) `t` is from `now`, for
/// people: `12s ago`, `in 3m`.
pub(crate) fn relative(t: Timestamp, now: Timestamp) -> String {
    let diff = now.as_millis().saturating_sub(t.as_millis());
    let span = short_span(diff.unsigned_abs() / 1000);
    if diff >= 0 { format!("{span} ago") } else { format!("in {span}") }
}

/// A number of seconds as `45s`, `12m`, `3h`, `2d`.
fn short_span(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// Encoded bytes (arguments or a result) for JSON: the value itself when
/// they are JSON, else their length and hex.
pub(crate) fn payload_json(bytes: &[u8]) -> Value {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(value) => value,
        Err(_) => serde_json::json!({ "bytes": bytes.len(), "hex": hex(bytes) }),
    }
}

/// Encoded bytes for people: pretty JSON when they are JSON, else their
/// length and (the start of) their hex.
pub(crate) fn payload_human(bytes: &[u8]) -> String {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(value) => serde_json::to_string_pretty(&value).unwrap_or_default(),
        Err(_) => {
            let shown = &bytes[..bytes.len().min(256)];
            let more = if shown.len() < bytes.len() { " …" } else { "" };
            format!("{} bytes, not JSON (another codec?): {}{more}", bytes.len(), hex(shown))
        }
    }
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// `text` with every line but the first indented by `indent` spaces.
pub(crate) fn indent_rest(text: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    text.lines().enumerate().fold(String::new(), |mut out, (i, line)| {
        if i > 0 {
            out.push('\n');
            out.push_str(&pad);
        }
        out.push_str(line);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_line_up() {
        let mut t = Table::new(&[("queue", Align::Left), ("pending", Align::Right), ("note", Align::Left)]);
        t.row(vec!["emails".into(), "5".into(), "x".into()]);
        t.row(vec!["a".into(), "12345".into(), String::new()]);
        assert_eq!(t.render(), "QUEUE   PENDING  NOTE\nemails        5  x\na         12345\n");
    }

    #[test]
    fn times_and_payloads() {
        assert_eq!(rfc3339(Timestamp(1_700_000_000_123)), "2023-11-14T22:13:20.123Z");
        assert_eq!(human_time(Timestamp(1_700_000_000_123)), "2023-11-14 22:13:20");
        assert_eq!(relative(Timestamp(0), Timestamp(90_000)), "1m ago");
        assert_eq!(relative(Timestamp(7_200_000), Timestamp(0)), "in 2h");
        assert_eq!(payload_json(br#"{"a":1}"#), serde_json::json!({"a": 1}));
        assert_eq!(payload_json(&[0x92, 0x01]), serde_json::json!({"bytes": 2, "hex": "9201"}));
        assert!(payload_human(&[0x92]).contains("1 bytes, not JSON"));
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("a\nb", 4), "a b");
    }
}
