//! Limits how long one run of a task may take.
//!
//! A run that exceeds its timeout is dropped at its next `.await` and fails
//! with a retryable [`Elapsed`] error.

mod error;
mod future;
mod layer;

use std::task::{Context, Poll};
use std::time::Duration;

use tower::Service;

pub use self::error::Elapsed;
pub use self::future::ResponseFuture;
pub use self::layer::TimeoutLayer;
use crate::job_error::JobError;
use crate::request::Request;

/// Fails runs that take longer than a limit; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    limit: Option<Duration>,
}

impl<S> Timeout<S> {
    /// Wraps `inner`; `None` means no limit.
    pub const fn new(inner: S, limit: Option<Duration>) -> Self {
        Self { inner, limit }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<J, S> Service<Request<J>> for Timeout<S>
where
    S: Service<Request<J>, Error = JobError>,
{
    type Response = S::Response;
    type Error = JobError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<J>) -> Self::Future {
        ResponseFuture::new(self.inner.call(request), self.limit)
    }
}
