//! The values of the backend contract: what [`Backend`](super::Backend)
//! writes, claims and acknowledges.

use std::sync::Arc;
use std::time::Duration;

use crate::task::TaskId;
use crate::time::Timestamp;

/// A task to be written by [`Backend::push`](super::Backend::push).
#[derive(Debug, Clone)]
pub struct NewTask {
    /// The job's name ([`Job::NAME`](crate::Job::NAME)).
    pub job: &'static str,
    /// The queue it goes to.
    pub queue: String,
    /// The encoded arguments.
    pub payload: Vec<u8>,
    /// Not to start before this time.
    pub run_at: Timestamp,
    /// Higher runs first.
    pub priority: i16,
    /// Runs in all, including the first (`retries + 1`).
    pub max_attempts: u32,
    /// Deduplication key: no second task with the same key is created while one
    /// is live (or, with `unique_for`, within that window).
    pub unique_key: Option<String>,
    /// With a `unique_key`: also dedupe against tasks created this recently,
    /// whatever their state.
    pub unique_for: Option<Duration>,
    /// The enqueuing span's W3C trace context, stored with the task and
    /// handed back on every claim (see [`crate::trace`]): `traceparent`,
    /// then, when there is one, a newline and `tracestate`. At most
    /// [`MAX_TRACE_LEN`] bytes; backends store it as it is, never read it.
    pub trace: Option<String>,
}

/// Longest trace context a task carries ([`NewTask::trace`]); a longer one
/// (a huge `tracestate`) is not stored.
pub const MAX_TRACE_LEN: usize = 1024;

/// A task claimed by a worker: its metadata and encoded arguments.
///
/// The job name and queue are the worker's own, so they are not repeated here.
#[derive(Debug, Clone)]
pub struct Task {
    /// The task's id.
    pub id: TaskId,
    /// This run's attempt, 1 on the first run.
    pub attempt: u32,
    /// Runs allowed in all.
    pub max_attempts: u32,
    /// When it was due.
    pub run_at: Timestamp,
    /// Its priority.
    pub priority: i16,
    /// The encoded arguments.
    pub payload: Vec<u8>,
    /// The trace context it was enqueued with ([`NewTask::trace`]); for a
    /// workflow step, its run's.
    pub trace: Option<String>,
}

/// What a claim returned.
#[derive(Debug, Default)]
pub struct Claimed {
    /// The claimed tasks, now `running` for the claiming worker.
    pub tasks: Vec<Task>,
    /// When nothing was due: the earliest `run_at` of a waiting task, if the
    /// backend knows it cheaply. The worker sleeps until then at the latest.
    pub next_due: Option<Timestamp>,
}

/// The end of one run of a task, sent back with [`Backend::ack`](super::Backend::ack).
#[derive(Debug, Clone)]
pub struct Ack {
    /// The task.
    pub id: TaskId,
    /// What happened.
    pub outcome: Outcome,
}

/// What happened to one run of a task.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// It succeeded; `result` is the encoded output.
    Done {
        /// The encoded output.
        result: Vec<u8>,
    },
    /// It failed and runs again at `at`.
    Retry {
        /// When to run it again.
        at: Timestamp,
        /// The error, kept as the task's last error.
        error: String,
    },
    /// It failed for good.
    Dead {
        /// Why.
        error: String,
    },
    /// It asked to run again at `at`, without using up an attempt.
    Snooze {
        /// When to run it again.
        at: Timestamp,
    },
}

/// Longest error message an outcome carries.
pub const MAX_ERROR_LEN: usize = 64 * 1024;

impl Outcome {
    /// A failed run that runs again at `at`, with a [clean](Self::clean_error) error.
    pub fn retry(at: Timestamp, error: impl AsRef<str>) -> Self {
        Outcome::Retry { at, error: Self::clean_error(error.as_ref()) }
    }

    /// A task that failed for good, with a [clean](Self::clean_error) error.
    pub fn dead(error: impl AsRef<str>) -> Self {
        Outcome::Dead { error: Self::clean_error(error.as_ref()) }
    }

    /// `error` as every store can keep it: NUL characters (which PostgreSQL
    /// text refuses) replaced by `\u{FFFD}`, and at most [`MAX_ERROR_LEN`]
    /// bytes (cut on a character boundary, with a note of the full length).
    pub fn clean_error(error: &str) -> String {
        let mut clean = if error.contains('\0') { error.replace('\0', "\u{FFFD}") } else { error.to_owned() };
        if clean.len() > MAX_ERROR_LEN {
            let full = clean.len();
            let mut end = MAX_ERROR_LEN;
            while !clean.is_char_boundary(end) {
                end -= 1;
            }
            clean.truncate(end);
            clean.push_str(&format!(" … (cut at {MAX_ERROR_LEN} of {full} bytes)"));
        }
        clean
    }
}

/// A worker as backends see it, sent with every heartbeat.
#[derive(Debug, Clone)]
pub struct WorkerRegistration {
    /// Unique id of this worker instance.
    pub id: Arc<str>,
    /// The queue it serves.
    pub queue: Arc<str>,
    /// The job it runs.
    pub job: &'static str,
    /// Its concurrency limit.
    pub concurrency: usize,
    /// When it started.
    pub started_at: Timestamp,
    /// Whether its job is a workflow's steps: the `done` and `dead` acks of
    /// such a worker advance their runs (see [`crate::workflow::plan`]).
    pub workflow_steps: bool,
}

/// Waiting tasks of one job that no worker of this process serves, from
/// [`Backend::unserved`](super::Backend::unserved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unserved {
    /// The job's name.
    pub job: String,
    /// How many of its tasks wait (`pending` or `retry`).
    pub count: u64,
    /// The earliest `run_at` among them.
    pub oldest: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_cleaned() {
        assert_eq!(Outcome::clean_error("a\0b"), "a\u{FFFD}b");
        let long = "é".repeat(MAX_ERROR_LEN);
        let clean = Outcome::clean_error(&long);
        assert!(clean.len() < MAX_ERROR_LEN + 64, "{}", clean.len());
        assert!(clean.ends_with(&format!("of {} bytes)", long.len())));
        match Outcome::dead("x\0") {
            Outcome::Dead { error } => assert_eq!(error, "x\u{FFFD}"),
            other => panic!("{other:?}"),
        }
    }
}
