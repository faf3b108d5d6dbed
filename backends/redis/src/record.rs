//! A task's record (immutable, written once at enqueue), its state value
//! (what changes) and its progress, as stored in the queue's `t`, `s` and
//! `g` hashes.
//!
//! The scripts read and write the same formats (`common.lua`): the record
//! with Lua's `struct` library (`>BhI4ddHc0`, then the optional parts), the
//! state value with a pattern.
//!
//! The optional parts are announced by flags, so a record written before a
//! part existed reads as without it: a record without the [`TRACE`] flag
//! (every record of the versions before trace contexts) has no trace.

use std::time::Duration;

use errand_runtime::backend::{MAX_TRACE_LEN, NewTask};
use errand_runtime::{Progress, TaskState};

/// Record flag: the task has a unique key (and window).
const UNIQUE: u8 = 1;
/// Record flag: the task is a workflow step (run and step follow).
const STEP: u8 = 2;
/// Record flag: the task carries a trace context (its length, 2 bytes, and
/// its bytes follow the run and step, before the payload).
const TRACE: u8 = 4;
/// Bytes before the job name: flags, priority, max attempts, created, run_at, job length.
const HEAD: usize = 1 + 2 + 4 + 8 + 8 + 2;
/// The longest unique window stored, in ms.
const MAX_WINDOW: u64 = 1 << 52;

/// A decoded record, borrowing from the stored bytes.
#[derive(Debug, PartialEq)]
pub(crate) struct Record<'a> {
    pub(crate) priority: i16,
    pub(crate) max_attempts: u32,
    pub(crate) created: i64,
    /// `run_at` as enqueued, in ms (a retry's lives in the state value).
    pub(crate) run_at: i64,
    pub(crate) job: &'a str,
    pub(crate) unique_key: Option<&'a str>,
    /// The trace context it was enqueued with (a workflow step: its run's).
    pub(crate) trace: Option<&'a str>,
    pub(crate) payload: &'a [u8],
}

/// The trace context of `trace` that a record stores: none for one over
/// [`MAX_TRACE_LEN`] bytes (the runtime never hands such a one over; the
/// contract says it is not stored).
pub(crate) fn storable_trace(trace: Option<&str>) -> Option<&str> {
    trace.filter(|t| t.len() <= MAX_TRACE_LEN)
}

/// A duration as the scripts take it: whole milliseconds (saturating).
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The longest retention the scripts count with, in ms (2^52, 142,000
/// years): a longer one keeps finished work.
const MAX_RETENTION: u64 = 1 << 52;

/// A retention as the scripts take it: whole milliseconds, or -1 to keep
/// finished work (a retention of 142,000 years or more, e.g.
/// `Duration::MAX`).
pub(crate) fn retention_ms(retention: Duration) -> i64 {
    let ms = millis(retention);
    if ms >= MAX_RETENTION { -1 } else { i64::try_from(ms).unwrap_or(-1) }
}

/// A timestamp as the scripts store it: a double (exact below 2^53 ms).
fn time(ms: i64) -> [u8; 8] {
    (ms as f64).to_be_bytes()
}

/// Writes the record of `task`, created at `now` (ms), into `buf` (cleared
/// first).
///
/// # Errors
///
/// When the job name is longer than 65,535 bytes or the unique key longer
/// than 4 GiB: the message says which. A trace context over
/// [`MAX_TRACE_LEN`] bytes is left out (see [`storable_trace`]).
pub(crate) fn write(buf: &mut Vec<u8>, task: &NewTask, now: i64) -> Result<(), String> {
    buf.clear();
    let job = u16::try_from(task.job.len())
        .map_err(|_| format!("the job name is {} bytes long, over the 65535 a record holds", task.job.len()))?;
    let trace = storable_trace(task.trace.as_deref());
    let mut flags = if task.unique_key.is_some() { UNIQUE } else { 0 };
    if trace.is_some() {
        flags |= TRACE;
    }
    buf.push(flags);
    buf.extend_from_slice(&task.priority.to_be_bytes());
    buf.extend_from_slice(&task.max_attempts.to_be_bytes());
    buf.extend_from_slice(&time(now));
    buf.extend_from_slice(&time(task.run_at.as_millis()));
    buf.extend_from_slice(&job.to_be_bytes());
    buf.extend_from_slice(task.job.as_bytes());
    if let Some(key) = &task.unique_key {
        let len = u32::try_from(key.len()).map_err(|_| "the unique key is longer than 4 GiB".to_owned())?;
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(key.as_bytes());
        // At most 2^52 ms (142,000 years), so that the scripts' arithmetic on
        // it (Lua numbers are doubles) stays exact.
        let window = task.unique_for.map_or(0, millis).min(MAX_WINDOW);
        buf.extend_from_slice(&time(i64::try_from(window).unwrap_or(0)));
    }
    if let Some(trace) = trace {
        // At most MAX_TRACE_LEN (1024) bytes: the length fits two bytes.
        let len = u16::try_from(trace.len()).map_err(|_| "the trace context is longer than 65535 bytes".to_owned())?;
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(trace.as_bytes());
    }
    buf.extend_from_slice(&task.payload);
    Ok(())
}

/// Reads stored bytes front to back.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err(format!("the record ends inside its {what}"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let bytes = self.take(N, what)?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn time(&mut self, what: &str) -> Result<i64, String> {
        let value = f64::from_be_bytes(self.array(what)?);
        if value.is_finite() && value.fract() == 0.0 && value.abs() < 9.0e15 {
            Ok(value as i64)
        } else {
            Err(format!("its {what} is not a whole number of milliseconds ({value})"))
        }
    }

    fn text(&mut self, len: usize, what: &str) -> Result<&'a str, String> {
        std::str::from_utf8(self.take(len, what)?).map_err(|_| format!("its {what} is not UTF-8"))
    }
}

/// Decodes a stored record.
///
/// # Errors
///
/// What is wrong with it, for a message that also names the task.
pub(crate) fn read(bytes: &[u8]) -> Result<Record<'_>, String> {
    if bytes.len() < HEAD {
        return Err(format!("the record is {} bytes long, shorter than its {HEAD}-byte header", bytes.len()));
    }
    let mut r = Reader { bytes };
    let [flags] = r.array::<1>("flags")?;
    if flags & !(UNIQUE | STEP | TRACE) != 0 {
        return Err(format!("the record has unknown flags {flags:#04x}"));
    }
    let priority = i16::from_be_bytes(r.array("priority")?);
    let max_attempts = u32::from_be_bytes(r.array("max attempts")?);
    let created = r.time("creation time")?;
    let run_at = r.time("run_at")?;
    let job_len = u16::from_be_bytes(r.array("job name length")?);
    let job = r.text(usize::from(job_len), "job name")?;
    let mut unique_key = None;
    if flags & UNIQUE != 0 {
        let len = u32::from_be_bytes(r.array("unique key length")?);
        unique_key = Some(r.text(usize::try_from(len).unwrap_or(usize::MAX), "unique key")?);
        r.time("unique window")?;
    }
    if flags & STEP != 0 {
        r.time("workflow run")?;
        r.array::<2>("workflow step")?;
    }
    let mut trace = None;
    if flags & TRACE != 0 {
        let len = u16::from_be_bytes(r.array("trace context length")?);
        trace = Some(r.text(usize::from(len), "trace context")?);
    }
    Ok(Record { priority, max_attempts, created, run_at, job, unique_key, trace, payload: r.bytes })
}

/// A decoded state value (see `common.lua`).
#[derive(Debug, PartialEq)]
pub(crate) struct State<'a> {
    pub(crate) state: TaskState,
    pub(crate) attempt: u32,
    /// `run_at` when it differs from the record's.
    pub(crate) run_at: Option<i64>,
    pub(crate) finished: Option<i64>,
    /// The output of a done task.
    pub(crate) output: Option<&'a [u8]>,
}

/// The state of a task that was never claimed (no state value).
pub(crate) const WAITING: State<'static> =
    State { state: TaskState::Pending, attempt: 0, run_at: None, finished: None, output: None };

/// Decodes a state value: `<letter><attempt>|<run_at>[|<finished>[|<output>]]`.
///
/// # Errors
///
/// What is wrong with it.
pub(crate) fn state(bytes: &[u8]) -> Result<State<'_>, String> {
    let bad = || format!("its state `{}` is malformed", String::from_utf8_lossy(&bytes[..bytes.len().min(40)]));
    let (&letter, rest) = bytes.split_first().ok_or_else(bad)?;
    let state = match letter {
        b'p' => TaskState::Pending,
        b'r' => TaskState::Running,
        b'y' => TaskState::Retry,
        b'd' => TaskState::Done,
        b'x' => TaskState::Dead,
        b'c' => TaskState::Cancelled,
        _ => return Err(bad()),
    };
    let mut parts = rest.splitn(4, |&b| b == b'|');
    let number = |part: Option<&[u8]>| -> Result<Option<i64>, String> {
        match part {
            None | Some([]) => Ok(None),
            Some(digits) => std::str::from_utf8(digits).ok().and_then(|s| s.parse().ok()).map(Some).ok_or_else(bad),
        }
    };
    let attempt = number(parts.next())?.and_then(|a| u32::try_from(a).ok()).ok_or_else(bad)?;
    let run_at = number(parts.next())?;
    let finished = number(parts.next())?;
    let output = parts.next();
    Ok(State { state, attempt, run_at, finished, output })
}

/// Writes `progress` as stored in the `g` hash: `<percent>|<message>`
/// (percent at most 100).
pub(crate) fn write_progress(buf: &mut Vec<u8>, progress: &Progress) {
    buf.clear();
    buf.extend_from_slice(progress.percent.min(100).to_string().as_bytes());
    buf.push(b'|');
    buf.extend_from_slice(progress.message.as_bytes());
}

/// Decodes a stored progress: `<percent>|<message>`, the percent 0 to 100,
/// the message UTF-8.
///
/// # Errors
///
/// What is wrong with it.
pub(crate) fn progress(bytes: &[u8]) -> Result<Progress, String> {
    let bad = || format!("its progress `{}` is malformed", String::from_utf8_lossy(&bytes[..bytes.len().min(40)]));
    let split = bytes.iter().position(|&b| b == b'|').ok_or_else(bad)?;
    let (digits, message) = (&bytes[..split], &bytes[split + 1..]);
    let percent = std::str::from_utf8(digits)
        .ok()
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse::<u8>().ok())
        .filter(|p| *p <= 100)
        .ok_or_else(|| format!("its progress percent `{}` is not 0 to 100", String::from_utf8_lossy(digits)))?;
    let message = std::str::from_utf8(message).map_err(|_| "its progress message is not UTF-8".to_owned())?;
    Ok(Progress { percent, message: message.to_owned() })
}

#[cfg(test)]
mod tests {
    use errand_runtime::Timestamp;

    use super::*;

    fn task(unique: Option<&str>) -> NewTask {
        traced(unique, None)
    }

    fn traced(unique: Option<&str>, trace: Option<&str>) -> NewTask {
        NewTask {
            job: "resize",
            queue: "q".to_owned(),
            payload: b"{\"n\":1}".to_vec(),
            run_at: Timestamp(1_700_000_000_123),
            priority: -3,
            max_attempts: 7,
            unique_key: unique.map(str::to_owned),
            unique_for: unique.map(|_| Duration::from_secs(60)),
            trace: trace.map(str::to_owned),
        }
    }

    const TRACE_CONTEXT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\nvendor=errand;n=1";

    #[test]
    fn records_round_trip() {
        let mut buf = Vec::new();
        for unique in [None, Some("key|with,odd\nbytes")] {
            for trace in [None, Some(TRACE_CONTEXT), Some("")] {
                write(&mut buf, &traced(unique, trace), 1_699_999_999_000).unwrap_or_else(|e| panic!("{e}"));
                let record = read(&buf).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(
                    record,
                    Record {
                        priority: -3,
                        max_attempts: 7,
                        created: 1_699_999_999_000,
                        run_at: 1_700_000_000_123,
                        job: "resize",
                        unique_key: unique,
                        trace,
                        payload: b"{\"n\":1}",
                    }
                );
            }
        }
    }

    /// A record as the versions before trace contexts wrote it: flags,
    /// priority, max attempts, created, run_at, job, [unique key and
    /// window], [run and step], payload.
    fn old_record(unique: Option<&str>, step: Option<(f64, u16)>) -> Vec<u8> {
        let mut buf = vec![u8::from(unique.is_some()) | if step.is_some() { 2 } else { 0 }];
        buf.extend_from_slice(&(-3_i16).to_be_bytes());
        buf.extend_from_slice(&7_u32.to_be_bytes());
        buf.extend_from_slice(&1_699_999_999_000_f64.to_be_bytes());
        buf.extend_from_slice(&1_700_000_000_123_f64.to_be_bytes());
        buf.extend_from_slice(&6_u16.to_be_bytes());
        buf.extend_from_slice(b"resize");
        if let Some(key) = unique {
            buf.extend_from_slice(&u32::try_from(key.len()).unwrap_or(0).to_be_bytes());
            buf.extend_from_slice(key.as_bytes());
            buf.extend_from_slice(&60_000_f64.to_be_bytes());
        }
        if let Some((run, step)) = step {
            buf.extend_from_slice(&run.to_be_bytes());
            buf.extend_from_slice(&step.to_be_bytes());
        }
        buf.extend_from_slice(b"{\"n\":1}");
        buf
    }

    #[test]
    fn records_written_before_trace_contexts_read_without_one() {
        for (unique, step) in [(None, None), (Some("k"), None), (None, Some((42.0, 3))), (Some("k"), Some((1.0, 0)))] {
            let old = old_record(unique, step);
            let record = read(&old).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!((record.trace, record.unique_key, record.payload), (None, unique, &b"{\"n\":1}"[..]));
            if step.is_none() {
                // This version writes an untraced task byte for byte as before.
                let mut buf = Vec::new();
                write(&mut buf, &task(unique), 1_699_999_999_000).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(buf, old);
            }
        }
    }

    #[test]
    fn a_step_record_carries_its_trace_after_its_run() {
        // As `new_task` in common.lua packs it: flags 6, `>BhI4ddHc0dHHc0`.
        let mut rec = old_record(None, Some((42.0, 3)));
        let payload = rec.split_off(rec.len() - 7);
        rec[0] = STEP | TRACE;
        rec.extend_from_slice(&u16::try_from(TRACE_CONTEXT.len()).unwrap_or(0).to_be_bytes());
        rec.extend_from_slice(TRACE_CONTEXT.as_bytes());
        rec.extend_from_slice(&payload);
        let record = read(&rec).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((record.trace, record.payload), (Some(TRACE_CONTEXT), &b"{\"n\":1}"[..]));
    }

    #[test]
    fn an_oversized_trace_context_is_not_stored() {
        let mut buf = Vec::new();
        let long = "x".repeat(MAX_TRACE_LEN + 1);
        write(&mut buf, &traced(None, Some(&long)), 0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read(&buf).map(|r| r.trace), Ok(None));
        let longest = "x".repeat(MAX_TRACE_LEN);
        write(&mut buf, &traced(None, Some(&longest)), 0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read(&buf).map(|r| r.trace), Ok(Some(longest.as_str())));
    }

    #[test]
    fn malformed_records_say_what_is_wrong() {
        let mut buf = Vec::new();
        write(&mut buf, &task(Some("k")), 0).unwrap_or_else(|e| panic!("{e}"));
        assert!(read(b"garbage").is_err_and(|e| e.contains("shorter than its 25-byte header")));
        assert!(
            read(&buf[..HEAD + 6 + 2]).is_err_and(|e| e.contains("ends inside its unique key")),
            "{:?}",
            read(&buf[..HEAD + 8])
        );
        let mut flags = buf.clone();
        flags[0] = 0x80;
        assert!(read(&flags).is_err_and(|e| e.contains("unknown flags")));
        write(&mut buf, &traced(None, Some("00-ab")), 0).unwrap_or_else(|e| panic!("{e}"));
        let trace_at = HEAD + 6;
        assert!(read(&buf[..trace_at + 1]).is_err_and(|e| e.contains("ends inside its trace context length")));
        assert!(read(&buf[..trace_at + 4]).is_err_and(|e| e.contains("ends inside its trace context")));
        let mut bad = buf.clone();
        bad[trace_at + 2] = 0xff;
        assert!(read(&bad).is_err_and(|e| e.contains("its trace context is not UTF-8")));
    }

    #[test]
    fn retentions_as_the_scripts_take_them() {
        assert_eq!(retention_ms(Duration::from_secs(86_400)), 86_400_000);
        assert_eq!(retention_ms(Duration::ZERO), 0);
        assert_eq!(retention_ms(Duration::MAX), -1, "kept");
        assert_eq!(retention_ms(Duration::from_millis(MAX_RETENTION)), -1);
        assert_eq!(retention_ms(Duration::from_millis(MAX_RETENTION - 1)), (1 << 52) - 1);
    }

    #[test]
    fn progress_round_trips_and_bad_progress_says_what_is_wrong() {
        let mut buf = Vec::new();
        for progress in [Progress::new(0, ""), Progress::new(42, "item 7 | of 9"), Progress::new(100, "dönë")] {
            write_progress(&mut buf, &progress);
            assert_eq!(self::progress(&buf), Ok(progress));
        }
        write_progress(&mut buf, &Progress { percent: 250, message: "over".into() });
        assert_eq!(buf, b"100|over");
        assert!(self::progress(b"").is_err_and(|e| e.contains("malformed")));
        assert!(self::progress(b"50").is_err_and(|e| e.contains("`50` is malformed")));
        assert!(self::progress(b"101|x").is_err_and(|e| e.contains("`101` is not 0 to 100")));
        assert!(self::progress(b"+5|x").is_err_and(|e| e.contains("not 0 to 100")));
        assert!(self::progress(b"|x").is_err_and(|e| e.contains("not 0 to 100")));
        assert!(self::progress(b"5|\xff").is_err_and(|e| e.contains("not UTF-8")));
    }

    #[test]
    fn state_values() {
        assert_eq!(state(b"r1|").ok(), Some(State { state: TaskState::Running, attempt: 1, ..WAITING }));
        assert_eq!(
            state(b"d2|1700|1800|out|put").ok(),
            Some(State {
                state: TaskState::Done,
                attempt: 2,
                run_at: Some(1700),
                finished: Some(1800),
                output: Some(b"out|put"),
            })
        );
        assert_eq!(state(b"x0||-5").ok(), Some(State { state: TaskState::Dead, finished: Some(-5), ..WAITING }));
        assert!(state(b"q1|").is_err());
        assert!(state(b"r|").is_err());
        assert!(state(b"ra|").is_err_and(|e| e.contains("`ra|`")));
    }
}
