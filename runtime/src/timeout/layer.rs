use std::time::Duration;

use tower::Layer;

use super::Timeout;

/// Applies [`Timeout`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use errand_runtime::timeout::TimeoutLayer;
///
/// let layer = TimeoutLayer::new(Some(Duration::from_secs(30)));
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    limit: Option<Duration>,
}

impl TimeoutLayer {
    /// A layer with this limit; `None` means no limit.
    pub const fn new(limit: Option<Duration>) -> Self {
        Self { limit }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout::new(inner, self.limit)
    }
}
