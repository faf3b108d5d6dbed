use std::time::Duration;

use crate::backoff::Backoff;
use crate::job_error::{Decision, JobError};

/// Decides whether a failed run is retried, and after how long.
///
/// # Examples
///
/// A policy that never retries timeouts:
///
/// ```
/// use std::time::Duration;
/// use errand_runtime::{JobError, retry::RetryPolicy, timeout::Elapsed};
///
/// #[derive(Clone)]
/// struct NoTimeoutRetries;
///
/// impl RetryPolicy for NoTimeoutRetries {
///     fn retry_after(&self, attempt: u32, max_attempts: u32, error: &JobError) -> Option<Duration> {
///         let timed_out = error.source().is_some_and(|e| e.is::<Elapsed>());
///         (!timed_out && attempt < max_attempts).then(|| Duration::from_secs(1))
///     }
/// }
/// ```
pub trait RetryPolicy {
    /// The delay before the next attempt, or `None` to give up. `attempt` is
    /// the attempt that just failed (1-based); `max_attempts` is the task's.
    fn retry_after(&self, attempt: u32, max_attempts: u32, error: &JobError) -> Option<Duration>;
}

impl RetryPolicy for Backoff {
    fn retry_after(&self, attempt: u32, max_attempts: u32, _error: &JobError) -> Option<Duration> {
        (attempt < max_attempts).then(|| self.delay(attempt))
    }
}

/// The one retry decision, used by the retry layer, by workflow steps (with
/// their own backoff) and by the worker when no retry layer decided: a
/// retryable `error` of attempt `attempt` of `max_attempts` gets `policy`'s
/// decision; other errors, and errors already decided, pass unchanged.
pub(crate) fn decide(error: JobError, attempt: u32, max_attempts: u32, policy: &impl RetryPolicy) -> JobError {
    if !error.is_retry() || error.decision().is_some() {
        return error;
    }
    let decision = match policy.retry_after(attempt, max_attempts, &error) {
        Some(delay) => Decision::RetryAfter(delay),
        None => Decision::GiveUp,
    };
    error.with_decision(decision)
}
