//! Batches as JSON text for `json_each(?)`: one bound parameter per batch
//! instead of one statement per row. Binary data travels as lowercase hex and
//! is turned back into a BLOB by SQLite's `unhex()`.
//!
//! The text is always bound as TEXT: since SQLite 3.45 a BLOB argument to
//! `json_each` would be read as JSONB.

use std::fmt::Write;

use errand_runtime::backend::NewTask;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A JSON array being built, one row (itself an array) at a time.
#[derive(Debug)]
pub(crate) struct JsonRows {
    out: String,
    rows: usize,
}

impl JsonRows {
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        let mut out = String::with_capacity(bytes + 2);
        out.push('[');
        Self { out, rows: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.rows
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub(crate) fn text_len(&self) -> usize {
        self.out.len()
    }

    /// Starts a row; fields follow with [`Row`]'s methods.
    pub(crate) fn row(&mut self) -> Row<'_> {
        if self.rows > 0 {
            self.out.push(',');
        }
        self.rows += 1;
        self.out.push('[');
        Row { out: &mut self.out, first: true }
    }

    pub(crate) fn finish(mut self) -> String {
        self.out.push(']');
        self.out
    }
}

/// One row of a [`JsonRows`]; the row's closing bracket is written on drop.
#[derive(Debug)]
pub(crate) struct Row<'a> {
    out: &'a mut String,
    first: bool,
}

impl Row<'_> {
    fn sep(&mut self) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
    }

    pub(crate) fn int(mut self, n: impl Into<i64>) -> Self {
        self.sep();
        // Writing to a String cannot fail.
        let _ = write!(self.out, "{}", n.into());
        self
    }

    pub(crate) fn str(mut self, s: &str) -> Self {
        self.sep();
        push_json_str(self.out, s);
        self
    }

    pub(crate) fn opt_str(mut self, s: Option<&str>) -> Self {
        match s {
            Some(s) => self.str(s),
            None => {
                self.sep();
                self.out.push_str("null");
                self
            }
        }
    }

    pub(crate) fn hex(mut self, bytes: &[u8]) -> Self {
        self.sep();
        self.out.push('"');
        push_hex(self.out, bytes);
        self.out.push('"');
        self
    }
}

impl Drop for Row<'_> {
    fn drop(&mut self) {
        self.out.push(']');
    }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    out.reserve(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
}

/// Writes `s` as a JSON string literal.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push_str(s);
    } else {
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if u32::from(c) < 0x20 => {
                    let _ = write!(out, "\\u{:04x}", u32::from(c));
                }
                c => out.push(c),
            }
        }
    }
    out.push('"');
}

/// Most tasks a single insert statement carries; larger batches are split (in
/// one transaction).
const MAX_ROWS: usize = 10_000;
/// Most JSON text a single insert statement carries (far below SQLite's 1 GB limit).
const MAX_TEXT: usize = 32 * 1024 * 1024;

/// Splits `tasks` into JSON batches for `sql/push.sql`.
pub(crate) fn push_batches(tasks: &[NewTask]) -> Vec<String> {
    let mut batches = Vec::new();
    let estimate = |t: &NewTask| {
        t.payload.len() * 2 + t.queue.len() + t.job.len() + t.trace.as_ref().map_or(0, |s| s.len() + 8) + 64
    };
    let mut rows = JsonRows::with_capacity(tasks.iter().take(MAX_ROWS).map(estimate).sum());
    for task in tasks {
        if rows.len() >= MAX_ROWS || (!rows.is_empty() && rows.text_len() + estimate(task) > MAX_TEXT) {
            let capacity = rows.text_len();
            let full = std::mem::replace(&mut rows, JsonRows::with_capacity(capacity));
            batches.push(full.finish());
        }
        let _ = rows
            .row()
            .str(&task.queue)
            .str(task.job)
            .hex(&task.payload)
            .int(task.max_attempts)
            .int(task.priority)
            .int(task.run_at.as_millis())
            .opt_str(task.unique_key.as_deref())
            .opt_str(task.trace.as_deref());
    }
    if !rows.is_empty() {
        batches.push(rows.finish());
    }
    batches
}

/// Whether every task shares queue, job, attempts, priority, `run_at` and
/// trace context (tasks enqueued in one span) and none has a unique key:
/// then only the payloads need to travel.
pub(crate) fn uniform(tasks: &[NewTask]) -> bool {
    let Some(first) = tasks.first() else { return false };
    tasks.iter().all(|t| {
        t.unique_key.is_none()
            && t.job == first.job
            && t.queue == first.queue
            && t.max_attempts == first.max_attempts
            && t.priority == first.priority
            && t.run_at == first.run_at
            && t.trace == first.trace
    })
}

/// The payloads of uniform tasks as JSON arrays of hex strings, split like
/// [`push_batches`].
pub(crate) fn payload_batches(tasks: &[NewTask]) -> Vec<String> {
    let mut batches = Vec::new();
    let estimate = |t: &NewTask| t.payload.len() * 2 + 4;
    let mut out = String::with_capacity(tasks.iter().take(MAX_ROWS).map(estimate).sum::<usize>() + 2);
    let mut rows = 0;
    out.push('[');
    for task in tasks {
        if rows >= MAX_ROWS || (rows > 0 && out.len() + estimate(task) > MAX_TEXT) {
            out.push(']');
            let capacity = out.capacity();
            batches.push(std::mem::replace(&mut out, String::with_capacity(capacity)));
            out.push('[');
            rows = 0;
        }
        if rows > 0 {
            out.push(',');
        }
        out.push('"');
        for b in &task.payload {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        out.push('"');
        rows += 1;
    }
    if rows > 0 {
        out.push(']');
        batches.push(out);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_valid_json() {
        let mut rows = JsonRows::with_capacity(0);
        let _ = rows.row().int(1).str("a\"b\\c\n\u{1}é").hex(&[0, 0xab, 0xff]).opt_str(None);
        let _ = rows.row().int(-2);
        let text = rows.finish();
        assert_eq!(text, r#"[[1,"a\"b\\c\u000a\u0001é","00abff",null],[-2]]"#);
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(parsed[0][1], "a\"b\\c\n\u{1}é");
    }

    #[test]
    fn push_rows_carry_the_trace_context() {
        let task = |trace: Option<&str>| NewTask {
            job: "j",
            queue: "q".into(),
            payload: vec![1],
            run_at: errand_runtime::Timestamp(5),
            priority: 2,
            max_attempts: 3,
            unique_key: None,
            unique_for: None,
            trace: trace.map(str::to_owned),
        };
        let batches = push_batches(&[task(Some("00-a-b-01\nv=1")), task(None)]);
        assert_eq!(batches.len(), 1);
        let rows: serde_json::Value = serde_json::from_str(&batches[0]).unwrap_or_default();
        assert_eq!(rows[0][7], "00-a-b-01\nv=1", "{rows}");
        assert_eq!(rows[1][7], serde_json::Value::Null, "{rows}");
    }

    #[test]
    fn payload_batches_split_and_stay_valid_json() {
        let task = |payload: &[u8]| NewTask {
            job: "j",
            queue: "q".into(),
            payload: payload.to_vec(),
            run_at: errand_runtime::Timestamp(1),
            priority: 0,
            max_attempts: 1,
            unique_key: None,
            unique_for: None,
            trace: None,
        };
        let tasks: Vec<NewTask> = (0..MAX_ROWS + 3).map(|i| task(&[(i % 256) as u8, 0xff])).collect();
        assert!(uniform(&tasks));
        let batches = payload_batches(&tasks);
        assert_eq!(batches.len(), 2);
        let first: Vec<String> = serde_json::from_str(&batches[0]).unwrap_or_default();
        let second: Vec<String> = serde_json::from_str(&batches[1]).unwrap_or_default();
        assert_eq!((first.len(), second.len()), (MAX_ROWS, 3));
        assert_eq!(first[1], "01ff");
        let mut traced = tasks.clone();
        traced[7].trace = Some("00-01-02-01".into());
        assert!(!uniform(&traced), "a task with another trace context is not uniform");
        for t in &mut traced {
            t.trace = Some("00-01-02-01".into());
        }
        assert!(uniform(&traced), "tasks of one span share their trace context");
        let mut keyed = tasks;
        keyed[5].unique_key = Some("k".into());
        assert!(!uniform(&keyed), "a unique key needs the row-by-row path");
    }
}
