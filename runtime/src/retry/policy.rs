use std::time::Duration;

use crate::backoff::Backoff;
use crate::job::JobError;

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
