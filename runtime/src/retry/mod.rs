//! Retry decisions with backoff.
//!
//! [`Retry`] does not sleep or loop: it decides, for a failed run, whether the
//! task runs again and after how long, and records that on the [`JobError`].
//! The worker then persists the delay as the task's `run_at`, so a retry waits
//! in the backend, survives restarts, and frees the worker meanwhile.

mod future;
mod layer;
mod policy;

use std::task::{Context, Poll};

use tower::Service;

pub use self::future::ResponseFuture;
pub use self::layer::RetryLayer;
pub use self::policy::RetryPolicy;
pub(crate) use self::policy::decide;
use crate::job_error::JobError;
use crate::request::Request;

/// Decides whether failed runs are retried; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Retry<S, P> {
    inner: S,
    policy: P,
}

impl<S, P> Retry<S, P> {
    /// Wraps `inner` with `policy`.
    pub const fn new(inner: S, policy: P) -> Self {
        Self { inner, policy }
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

impl<J, S, P> Service<Request<J>> for Retry<S, P>
where
    S: Service<Request<J>, Error = JobError>,
    P: RetryPolicy + Clone,
{
    type Response = S::Response;
    type Error = JobError;
    type Future = ResponseFuture<S::Future, P>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<J>) -> Self::Future {
        let attempt = request.cx.attempt();
        let max_attempts = request.cx.max_attempts();
        ResponseFuture::new(self.inner.call(request), self.policy.clone(), attempt, max_attempts)
    }
}
