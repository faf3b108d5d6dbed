use tower::Layer;

use super::Retry;
use crate::backoff::Backoff;

/// Applies [`Retry`] with a policy ([`Backoff`] by default).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use errand_runtime::{Backoff, retry::RetryLayer};
///
/// let layer = RetryLayer::new(Backoff::fixed(Duration::from_secs(5)));
/// # let _ = layer;
/// ```
#[derive(Debug, Clone)]
pub struct RetryLayer<P = Backoff> {
    policy: P,
}

impl<P> RetryLayer<P> {
    /// A layer deciding with `policy`.
    pub const fn new(policy: P) -> Self {
        Self { policy }
    }
}

impl<S, P: Clone> Layer<S> for RetryLayer<P> {
    type Service = Retry<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::new(inner, self.policy.clone())
    }
}
