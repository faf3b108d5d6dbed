//! The [`Job`] trait, its options, and [`JobError`].

use std::any::TypeId;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backoff::Backoff;
use crate::codec::Codec;
use crate::context::TaskCx;
use crate::error::{BoxError, CodecError};

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

    /// Encodes a run's output for storage. Not part of the public API: only
    /// workflow steps, whose outputs arrive encoded, override it.
    #[doc(hidden)]
    fn __encode_output<C: Codec>(output: &Self::Output) -> Result<Vec<u8>, CodecError> {
        C::encode(output, Self::NAME)
    }
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
    /// 20 retries with [`Backoff::DEFAULT`] (about 13 hours in all), no
    /// timeout, priority 0.
    pub const DEFAULT: JobOptions =
        JobOptions { retries: 20, backoff: Backoff::DEFAULT, timeout: None, priority: 0, unique_for: None };
}

impl Default for JobOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The shared data a job needs, collected by [`Job::requirements`].
#[derive(Debug, Default, Clone)]
pub struct Requirements {
    data: Vec<(TypeId, &'static str)>,
}

impl Requirements {
    /// Records that runs need `Data<T>`.
    pub fn data<T: Send + Sync + 'static>(&mut self) {
        let id = TypeId::of::<T>();
        if !self.data.iter().any(|(t, _)| *t == id) {
            self.data.push((id, std::any::type_name::<T>()));
        }
    }

    /// The recorded types.
    pub fn iter(&self) -> impl Iterator<Item = (TypeId, &'static str)> + '_ {
        self.data.iter().copied()
    }
}

/// Why a run failed, and what should happen next.
///
/// - [`JobError::retry`]: try again after the job's backoff (what `?` does
///   with any `std::error::Error`);
/// - [`JobError::abort`]: give up now, the task goes dead;
/// - [`JobError::snooze`]: run again after a delay without using an attempt.
///
/// `JobError` deliberately does not implement `std::error::Error`, so that
/// `?` can convert every error that does.
pub struct JobError {
    kind: Kind,
    source: Option<BoxError>,
    decision: Option<Decision>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Retry,
    Abort,
    Snooze(Duration),
}

/// What a retry policy decided for a failed run (see [`crate::retry`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run again after this delay.
    RetryAfter(Duration),
    /// Give up: the task goes dead.
    GiveUp,
}

impl JobError {
    /// A failure worth retrying.
    pub fn retry(error: impl Into<BoxError>) -> Self {
        Self { kind: Kind::Retry, source: Some(error.into()), decision: None }
    }

    /// A failure not worth retrying: the task goes straight to `dead`.
    pub fn abort(error: impl Into<BoxError>) -> Self {
        Self { kind: Kind::Abort, source: Some(error.into()), decision: None }
    }

    /// Not a failure: run again after `delay`, without using an attempt.
    pub fn snooze(delay: Duration) -> Self {
        Self { kind: Kind::Snooze(delay), source: None, decision: None }
    }

    /// Whether this is a retryable failure.
    pub fn is_retry(&self) -> bool {
        self.kind == Kind::Retry
    }

    /// Whether this aborts the task.
    pub fn is_abort(&self) -> bool {
        self.kind == Kind::Abort
    }

    /// The snooze delay, if this is a snooze.
    pub fn snooze_delay(&self) -> Option<Duration> {
        match self.kind {
            Kind::Snooze(d) => Some(d),
            _ => None,
        }
    }

    /// The underlying error.
    pub fn source(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.source.as_deref()
    }

    /// The retry policy's decision, if a retry layer made one.
    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }

    /// Records a retry policy's decision.
    pub fn with_decision(mut self, decision: Decision) -> Self {
        self.decision = Some(decision);
        self
    }
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobError")
            .field("kind", &self.kind)
            .field("source", &self.source)
            .field("decision", &self.decision)
            .finish()
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.kind, &self.source) {
            (Kind::Snooze(d), _) => write!(f, "snoozed for {d:?}"),
            (_, Some(source)) => {
                write!(f, "{source}")?;
                let mut next = source.source();
                while let Some(cause) = next {
                    write!(f, ": {cause}")?;
                    next = cause.source();
                }
                Ok(())
            }
            (Kind::Abort, None) => f.write_str("aborted"),
            (_, None) => f.write_str("failed"),
        }
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for JobError {
    fn from(error: E) -> Self {
        JobError::retry(error)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_mark_on_std_errors_retries_and_keeps_the_chain() {
        fn parse() -> Result<u32, JobError> {
            Ok("x".parse::<u32>()?)
        }
        let err = parse().unwrap_err();
        assert!(err.is_retry());
        assert_eq!(err.to_string(), "invalid digit found in string");
    }

    #[test]
    fn abort_and_snooze_are_told_apart() {
        assert!(JobError::abort("bad input").is_abort());
        assert_eq!(JobError::snooze(Duration::from_secs(3)).snooze_delay(), Some(Duration::from_secs(3)));
        assert_eq!(JobError::abort("bad input").to_string(), "bad input");
    }
}
