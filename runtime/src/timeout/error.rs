use std::time::Duration;

/// A run took longer than its timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out after {limit:?}")]
pub struct Elapsed {
    /// The limit that was exceeded.
    pub limit: Duration,
}
