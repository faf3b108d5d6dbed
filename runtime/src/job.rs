//! The [`Job`] trait and its options.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backoff::Backoff;
use crate::context::{Requirements, TaskCx};
use crate::job_error::JobError;

/// A kind of background work: its arguments are the implementing type, and
/// [`run`](Job::run) does the work.
///
/// `#[errand::job]` implements it for you; implementing it by hand is fine too.
///
/// # Examples
///
/// ```
/// use errand_runtime::{Job, JobError, TaskCx};
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Resize { image: String, width: u32 }
///
/// impl Job for Resize {
///     const NAME: &'static str = "resize";
///     type Output = u64;
///
///     async fn run(self, _cx: TaskCx) -> Result<u64, JobError> {
///         Ok(u64::from(self.width) * 2)
///     }
/// }
/// ```
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The name tasks of this job are stored under. Renaming it orphans stored tasks.
    const NAME: &'static str;
    /// The queue tasks go to unless enqueued elsewhere.
    const QUEUE: &'static str = "default";
    /// What a successful run returns; stored with the backend's codec.
    type Output: Serialize + DeserializeOwned + Send + 'static;

    /// Retries, backoff, timeout, priority and uniqueness defaults.
    fn options() -> JobOptions {
        JobOptions::DEFAULT
    }

    /// The deduplication key of these arguments, if the job is unique.
    fn unique_key(&self) -> Option<String> {
        None
    }

    /// Declares the shared data (`Data<T>`) a run needs, so that a worker
    /// missing it fails at start instead of failing tasks.
    fn requirements(requirements: &mut Requirements) {
        let _ = requirements;
    }

    /// Does the work.
    fn run(self, cx: TaskCx) -> impl Future<Output = Result<Self::Output, JobError>> + Send;
}

/// The defaults a job's tasks are enqueued and run with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JobOptions {
    /// Retries after the first run: a task runs at most `retries + 1` times.
    pub retries: u32,
    /// Delay before each retry.
    pub backoff: Backoff,
    /// Longest one run may take; a run that times out is retried.
    pub timeout: Option<Duration>,
    /// Higher runs first.
    pub priority: i16,
    /// With a unique key: also dedupe against tasks created this recently,
    /// whatever their state (otherwise only against live tasks).
    pub unique_for: Option<Duration>,
}

impl JobOptions {
    /// 20 retries with [`Backoff::DEFAULT`] (delays of 1 s, 2 s, 4 s, … up to
    /// 1 h: about 9 hours from the first failure to the last run), no
    /// timeout, priority 0.
    pub const DEFAULT: JobOptions =
        JobOptions { retries: 20, backoff: Backoff::DEFAULT, timeout: None, priority: 0, unique_for: None };
}

impl Default for JobOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What a job function may return: `()`, or `Result<T, E>` with
/// `E: Into<JobError>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a job return type",
    label = "a job must return `()` or `Result<T, E>` where `E: Into<JobError>`",
    note = "`T` is stored, so it must be `Serialize + DeserializeOwned`"
)]
pub trait IntoJobResult {
    /// The stored output.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// Converts the return value.
    fn into_job_result(self) -> Result<Self::Output, JobError>;
}

impl IntoJobResult for () {
    type Output = ();
    fn into_job_result(self) -> Result<(), JobError> {
        Ok(())
    }
}

impl<T, E> IntoJobResult for Result<T, E>
where
    T: Serialize + DeserializeOwned + Send + 'static,
    E: Into<JobError>,
{
    type Output = T;
    fn into_job_result(self) -> Result<T, JobError> {
        self.map_err(Into::into)
    }
}
