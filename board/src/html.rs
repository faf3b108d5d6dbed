//! HTML building: escaping, the page shell, and the small formatting
//! helpers every page shares.
//!
//! Every value that comes from storage goes through [`Esc`] (text and
//! attribute values) or [`pct`] then [`Esc`] (inside a URL).

use std::fmt::{self, Write as _};

use errand_runtime::{TaskState, Timestamp};

/// Escapes `&`, `<`, `>`, `"` and `'` when displayed: safe in text and in
/// quoted attribute values.
pub(crate) struct Esc<'a>(pub(crate) &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

/// `s` escaped for HTML.
pub(crate) fn esc(s: &str) -> String {
    Esc(s).to_string()
}

/// Percent-encodes `s` for a URL path segment or a query value: everything
/// but unreserved characters.
pub(crate) fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A page being written.
#[derive(Default)]
pub(crate) struct Html(String);

impl Html {
    pub(crate) fn new() -> Self {
        Self(String::with_capacity(8 * 1024))
    }

    /// Appends trusted markup.
    pub(crate) fn raw(&mut self, s: &str) -> &mut Self {
        self.0.push_str(s);
        self
    }

    pub(crate) fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Write for Html {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.push_str(s);
        Ok(())
    }
}

/// Where the board is mounted and which backend a page shows: builds links.
#[derive(Debug, Clone)]
pub(crate) struct Links {
    /// The path the backend's pages live under ("" at the root).
    pub(crate) base: String,
    /// The path the whole board lives under ("" at the root).
    pub(crate) root: String,
}

impl Links {
    /// The link to `path` (starting with `/`) of this backend.
    pub(crate) fn to(&self, path: &str) -> String {
        if path == "/" {
            if self.base.is_empty() { "/".to_owned() } else { self.base.clone() }
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// The link to `path` of the whole board (the backend index, `/assets`).
    pub(crate) fn root_to(&self, path: &str) -> String {
        if path == "/" {
            if self.root.is_empty() { "/".to_owned() } else { self.root.clone() }
        } else {
            format!("{}{path}", self.root)
        }
    }
}

/// The class that colours a task state.
pub(crate) fn state_class(state: TaskState) -> &'static str {
    match state {
        TaskState::Pending => "s-pending",
        TaskState::Running => "s-running",
        TaskState::Retry => "s-retry",
        TaskState::Done => "s-done",
        TaskState::Dead => "s-dead",
        TaskState::Cancelled => "s-cancelled",
    }
}

/// A coloured badge for a task state.
pub(crate) fn state_badge(state: TaskState) -> String {
    format!(r#"<span class="badge {}" data-state="{state}">{state}</span>"#, state_class(state))
}

/// `(year, month, day)` of a day count since 1970-01-01 (proleptic
/// Gregorian; Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, u32::try_from(month).unwrap_or(1), u32::try_from(day).unwrap_or(1))
}

/// `2025-01-31 12:34:56` (UTC).
pub(crate) fn utc(t: Timestamp) -> String {
    let millis = t.as_millis();
    let secs = millis.div_euclid(1000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!("{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

/// `3.2 s`, `4 min`, `2 h 5 min`, `3 d 4 h`.
pub(crate) fn span(millis: i64) -> String {
    let ms = millis.unsigned_abs();
    let s = ms / 1000;
    if ms < 1000 {
        format!("{ms} ms")
    } else if s < 60 {
        format!("{}.{} s", s, ms % 1000 / 100)
    } else if s < 3600 {
        format!("{} min {} s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{} h {} min", s / 3600, s % 3600 / 60)
    } else {
        format!("{} d {} h", s / 86_400, s % 86_400 / 3600)
    }
}

/// `3 min ago`, `in 5 s`.
pub(crate) fn relative(t: Timestamp, now: Timestamp) -> String {
    let d = now.as_millis() - t.as_millis();
    if d.abs() < 1000 {
        "now".to_owned()
    } else if d > 0 {
        format!("{} ago", span(d))
    } else {
        format!("in {}", span(d))
    }
}

/// A `<time>` element: the relative time, with the UTC time as its title.
pub(crate) fn time(t: Timestamp, now: Timestamp) -> String {
    format!(
        r#"<time datetime="{ms}" title="{abs} UTC">{rel}</time>"#,
        ms = t.as_millis(),
        abs = utc(t),
        rel = relative(t, now)
    )
}

/// Thousands separated with a thin space: `12 345`.
pub(crate) fn num(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202F}');
        }
        out.push(c);
    }
    out
}

/// How a stored value (arguments, a result, a step output) reads best: pretty
/// JSON when it is JSON, else its length and a hex dump of its start.
pub(crate) fn stored_value(bytes: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) {
        let value = expand_step_payload(value);
        if let Ok(pretty) = serde_json::to_string_pretty(&value) {
            return format!(r#"<pre class="json">{}</pre>"#, Esc(&pretty));
        }
    }
    let shown = &bytes[..bytes.len().min(4096)];
    let mut hex = String::with_capacity(shown.len() * 3 + shown.len() / 16 * 20);
    for (row, chunk) in shown.chunks(16).enumerate() {
        let _ = write!(hex, "{:08x}  ", row * 16);
        for b in chunk {
            let _ = write!(hex, "{b:02x} ");
        }
        for _ in chunk.len()..16 {
            hex.push_str("   ");
        }
        hex.push(' ');
        for b in chunk {
            hex.push(if b.is_ascii_graphic() || *b == b' ' { char::from(*b) } else { '.' });
        }
        hex.push('\n');
    }
    let more = if bytes.len() > shown.len() { " (first 4 KiB shown)" } else { "" };
    format!(
        r#"<p class="muted">{} bytes, not JSON{more}</p><pre class="hex">{}</pre>"#,
        num(bytes.len() as u64),
        Esc(&hex)
    )
}

/// A JSON workflow step payload (`{"run", "step", "inputs": [[bytes…]]}`)
/// with each input shown as the JSON it encodes.
fn expand_step_payload(mut value: serde_json::Value) -> serde_json::Value {
    let Some(object) = value.as_object_mut() else { return value };
    if object.len() != 3 || !object.contains_key("run") || !object.contains_key("step") {
        return value;
    }
    let Some(serde_json::Value::Array(inputs)) = object.get_mut("inputs") else { return value };
    for input in inputs.iter_mut() {
        let Some(items) = input.as_array() else { continue };
        let bytes: Option<Vec<u8>> = items.iter().map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok())).collect();
        if let Some(decoded) = bytes.and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok()) {
            *input = decoded;
        }
    }
    value
}

/// The workflow run a step task belongs to, read from its JSON payload.
pub(crate) fn step_run(payload: &[u8]) -> Option<(u64, u64)> {
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let object = value.as_object()?;
    if object.len() != 3 || !object.contains_key("inputs") {
        return None;
    }
    Some((object.get("run")?.as_u64()?, object.get("step")?.as_u64()?))
}

/// The first line of an error, cut to `max` characters.
pub(crate) fn first_line(error: &str, max: usize) -> String {
    let line = error.lines().next().unwrap_or("");
    if line.chars().count() > max {
        let cut: String = line.chars().take(max).collect();
        format!("{cut}…")
    } else {
        line.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_matters() {
        assert_eq!(esc(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(esc("plain ü"), "plain ü");
    }

    #[test]
    fn percent_encodes() {
        assert_eq!(pct("a b/c?&=ü"), "a%20b%2Fc%3F%26%3D%C3%BC");
    }

    #[test]
    fn dates() {
        assert_eq!(utc(Timestamp(0)), "1970-01-01 00:00:00");
        assert_eq!(utc(Timestamp(951_782_400_000)), "2000-02-29 00:00:00");
        assert_eq!(utc(Timestamp(1_735_689_599_000)), "2024-12-31 23:59:59");
    }

    #[test]
    fn spans_and_numbers() {
        assert_eq!(span(1500), "1.5 s");
        assert_eq!(span(3_660_000), "1 h 1 min");
        assert_eq!(num(1_234_567), "1\u{202F}234\u{202F}567");
        assert_eq!(num(999), "999");
    }

    #[test]
    fn step_payloads_show_their_inputs() {
        let payload = br#"{"run":3,"step":1,"inputs":[[52,50]]}"#;
        assert_eq!(step_run(payload), Some((3, 1)));
        assert!(stored_value(payload).contains("42"));
    }

    #[test]
    fn binary_is_hex() {
        let html = stored_value(&[0xff, 0x00, b'<']);
        assert!(html.contains("3 bytes"));
        assert!(html.contains("ff 00 3c"));
        assert!(!html.contains("<\n"));
    }
}
