//! The runtime's error type.

use std::time::Duration;

/// A type-erased error, as used by Tower and by [`JobError`](crate::JobError).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong outside a job handler: connecting to a backend,
/// encoding arguments, starting a worker.
///
/// Errors a handler returns are [`JobError`](crate::JobError)s; they decide what
/// happens to the task and never surface here.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A backend operation failed (connection, query, script, protocol).
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// Arguments or a result could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A worker needs shared data that was never given to it with `.data(...)`.
    #[error(
        "worker for job `{job}` needs `Data<{type_name}>`, but it was never provided: \
         add `.data(value)` of type `{type_name}` to the worker"
    )]
    MissingData {
        /// The job whose worker is missing the data.
        job: &'static str,
        /// The Rust type that is missing.
        type_name: &'static str,
    },
    /// A configuration value is invalid (a URL, a name, a duration).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The stored schema cannot be used by this version of errand: it was
    /// migrated by a newer one, or an applied migration differs from the one
    /// this version ships.
    #[error("{0}")]
    Schema(String),
    /// The monitor has no workers to run.
    #[error("the monitor has no workers: register at least one with `Monitor::register`")]
    NoWorkers,
    /// Workers did not stop within the shutdown deadline.
    #[error("{workers} worker(s) did not stop within the shutdown deadline of {deadline:?}")]
    ShutdownTimeout {
        /// How many workers were still running.
        workers: usize,
        /// The deadline that passed.
        deadline: Duration,
    },
    /// A workflow run failed: one of its steps failed for good (its retries
    /// ran out, it aborted, it was cancelled, or its worker died on the last
    /// attempt).
    #[error("workflow `{workflow}` run {run} failed: {error}")]
    RunFailed {
        /// The workflow.
        workflow: &'static str,
        /// The run.
        run: crate::task::RunId,
        /// The failed step and its error.
        error: String,
    },
    /// No workflow run with this id exists (or it was removed by retention).
    #[error("workflow `{workflow}` has no run {run}")]
    RunNotFound {
        /// The workflow.
        workflow: &'static str,
        /// The run.
        run: crate::task::RunId,
    },
    /// A wait with a deadline ran out before the run finished.
    #[error("workflow `{workflow}` run {run} had not finished after {waited:?}")]
    RunTimedOut {
        /// The workflow.
        workflow: &'static str,
        /// The run.
        run: crate::task::RunId,
        /// How long the wait lasted.
        waited: Duration,
    },
    /// Encoded arguments (or a workflow's input) larger than the backend's
    /// [`Tuning::max_payload`](crate::Tuning::max_payload): nothing was written.
    #[error(
        "{what} is {size} bytes encoded, more than the {limit} bytes the backend accepts \
         (`Tuning::max_payload`): store large data elsewhere and enqueue a reference to it"
    )]
    PayloadTooLarge {
        /// What was being enqueued, e.g. "the arguments of job `resize`".
        what: String,
        /// Its encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A worker task ended abnormally (it panicked outside a handler).
    #[error("worker `{worker}` ended abnormally: {message}")]
    WorkerCrashed {
        /// The worker's id.
        worker: String,
        /// What happened.
        message: String,
    },
}

/// A failed backend operation: which backend, what it was doing, and why.
#[derive(Debug, thiserror::Error)]
#[error("{backend} backend: {operation} failed: {source}")]
pub struct BackendError {
    /// The backend's name, e.g. `"sqlite"`.
    pub backend: &'static str,
    /// What was being done, e.g. `"claim tasks from queue `emails`"`.
    pub operation: String,
    /// The underlying error.
    #[source]
    pub source: BoxError,
}

impl BackendError {
    /// Creates a backend error.
    pub fn new(backend: &'static str, operation: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self { backend, operation: operation.into(), source: source.into() }
    }
}

/// Arguments or results that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("{codec} codec could not {action} {what}: {source}")]
pub struct CodecError {
    /// The codec's name, e.g. `"json"`.
    pub codec: &'static str,
    /// `"encode"` or `"decode"`.
    pub action: &'static str,
    /// What was being coded, e.g. "the arguments of job `send_email`".
    pub what: String,
    /// The codec's own error.
    #[source]
    pub source: BoxError,
}
