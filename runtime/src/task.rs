//! Tasks as users see them: ids, states, and what `Expose` reports.

use std::fmt;
use std::str::FromStr;

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

/// A workflow run's id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct RunId(pub u64);

impl fmt::Display for RunId {
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
    /// The latest progress its run reported with
    /// [`TaskCx::progress`](crate::TaskCx::progress); a new attempt starts
    /// again from none.
    pub progress: Option<Progress>,
}

/// How far a running task got, as its handler reported it with
/// [`TaskCx::progress`](crate::TaskCx::progress).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    /// Percent done, 0 to 100.
    pub percent: u8,
    /// What it is doing (may be empty), at most [`Progress::MAX_MESSAGE`] bytes.
    pub message: String,
}

impl Progress {
    /// Longest message kept; a longer one is cut on a character boundary.
    pub const MAX_MESSAGE: usize = 1024;

    /// A report of `percent` (at most 100) and `message` (cut to
    /// [`MAX_MESSAGE`](Self::MAX_MESSAGE) bytes, NUL characters replaced).
    pub fn new(percent: u8, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.contains('\0') {
            message = message.replace('\0', "\u{FFFD}");
        }
        if message.len() > Self::MAX_MESSAGE {
            let mut end = Self::MAX_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        Self { percent: percent.min(100), message }
    }
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
    /// Whether the queue is paused ([`Expose::pause_queue`](crate::Expose::pause_queue)):
    /// its workers claim nothing until it is resumed. A paused queue is
    /// listed even when it holds no tasks.
    pub paused: bool,
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
