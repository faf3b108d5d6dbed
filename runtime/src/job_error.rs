//! [`JobError`]: why a run failed, and what should happen next.

use std::fmt;
use std::time::Duration;

use crate::error::BoxError;

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
