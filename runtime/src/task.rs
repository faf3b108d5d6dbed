//! The task envelope: what a backend stores, claims and acknowledges.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::time::Timestamp;

/// A task's id, unique within one backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct TaskId(pub u64);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a task is in its life.
///
/// `pending` → `running` → `done` | `retry` (→ `running` again at `run_at`) |
/// `dead` (retries exhausted, aborted, undecodable) | `cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Waiting for its `run_at` and a free worker.
    Pending,
    /// Claimed by a worker.
    Running,
    /// Failed and waiting to be retried at its `run_at`.
    Retry,
    /// Finished successfully.
    Done,
    /// Failed for good; kept until retried or removed.
    Dead,
    /// Cancelled before it finished.
    Cancelled,
}

impl TaskState {
    /// Every state, in lifecycle order.
    pub const ALL: [TaskState; 6] = [
        TaskState::Pending,
        TaskState::Running,
        TaskState::Retry,
        TaskState::Done,
        TaskState::Dead,
        TaskState::Cancelled,
    ];

    /// The state's name as stored by SQL backends.
    pub const fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Running => "running",
            TaskState::Retry => "retry",
            TaskState::Done => "done",
            TaskState::Dead => "dead",
            TaskState::Cancelled => "cancelled",
        }
    }

    /// Whether the task may still run (pending, running or waiting to retry).
    pub const fn is_live(self) -> bool {
        matches!(self, TaskState::Pending | TaskState::Running | TaskState::Retry)
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a state name that is not one of [`TaskState::ALL`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown task state `{0}` (expected pending, running, retry, done, dead or cancelled)")]
pub struct UnknownState(pub String);

impl FromStr for TaskState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskState::ALL.into_iter().find(|state| state.as_str() == s).ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// A task to be written by [`Backend::push`](crate::Backend::push).
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
}

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

/// The end of one run of a task, sent back with [`Backend::ack`](crate::Backend::ack).
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

/// A worker as backends see it, sent with every heartbeat.
#[derive(Debug, Clone)]
pub struct WorkerRegistration {
    /// Unique id of this worker instance.
    pub id: std::sync::Arc<str>,
    /// The queue it serves.
    pub queue: std::sync::Arc<str>,
    /// The job it runs.
    pub job: &'static str,
    /// Its concurrency limit.
    pub concurrency: usize,
    /// When it started.
    pub started_at: Timestamp,
}

/// Everything a backend knows about one task, for dashboards and tools.
#[derive(Debug, Clone)]
pub struct TaskInfo {
    /// The task's id.
    pub id: TaskId,
    /// The job's name.
    pub job: String,
    /// The queue.
    pub queue: String,
    /// The current state.
    pub state: TaskState,
    /// Runs started so far.
    pub attempt: u32,
    /// Runs allowed in all.
    pub max_attempts: u32,
    /// Priority; higher runs first.
    pub priority: i16,
    /// When it is (or was) due.
    pub run_at: Timestamp,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it reached `done`, `dead` or `cancelled`.
    pub finished_at: Option<Timestamp>,
    /// Its deduplication key.
    pub unique_key: Option<String>,
    /// The last error, for `retry` and `dead` tasks.
    pub last_error: Option<String>,
    /// The worker running it, for `running` tasks.
    pub worker: Option<String>,
    /// The encoded arguments.
    pub payload: Vec<u8>,
    /// The encoded output, for `done` tasks.
    pub result: Option<Vec<u8>>,
}

/// Task counts of one queue, by state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// The queue's name.
    pub queue: String,
    /// Waiting to run.
    pub pending: u64,
    /// Claimed by a worker.
    pub running: u64,
    /// Waiting to be retried.
    pub retry: u64,
    /// Finished successfully (and not yet removed by retention).
    pub done: u64,
    /// Failed for good.
    pub dead: u64,
    /// Cancelled.
    pub cancelled: u64,
}

impl QueueCounts {
    /// The count for one state.
    pub fn get(&self, state: TaskState) -> u64 {
        match state {
            TaskState::Pending => self.pending,
            TaskState::Running => self.running,
            TaskState::Retry => self.retry,
            TaskState::Done => self.done,
            TaskState::Dead => self.dead,
            TaskState::Cancelled => self.cancelled,
        }
    }

    /// Mutable access to the count for one state.
    pub fn get_mut(&mut self, state: TaskState) -> &mut u64 {
        match state {
            TaskState::Pending => &mut self.pending,
            TaskState::Running => &mut self.running,
            TaskState::Retry => &mut self.retry,
            TaskState::Done => &mut self.done,
            TaskState::Dead => &mut self.dead,
            TaskState::Cancelled => &mut self.cancelled,
        }
    }
}

/// A live worker as a backend last saw it.
#[derive(Debug, Clone)]
pub struct WorkerInfo {
    /// The worker's id.
    pub id: String,
    /// The queue it serves.
    pub queue: String,
    /// The job it runs.
    pub job: String,
    /// Its concurrency limit.
    pub concurrency: u32,
    /// When it started.
    pub started_at: Timestamp,
    /// Its last heartbeat.
    pub last_seen: Timestamp,
}

/// Which tasks [`Expose::tasks`](crate::Expose::tasks) lists.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this job.
    pub job: Option<String>,
    /// Only this state.
    pub state: Option<TaskState>,
    /// At most this many (0 means 100).
    pub limit: u32,
    /// Only tasks with an id greater than this (for paging).
    pub after: Option<TaskId>,
}

/// Waiting tasks of one job that no worker of this process serves, from
/// [`Backend::unserved`](crate::Backend::unserved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unserved {
    /// The job's name.
    pub job: String,
    /// How many of its tasks wait (`pending` or `retry`).
    pub count: u64,
    /// The earliest `run_at` among them.
    pub oldest: Timestamp,
}
