//! Turns a panic in a handler into a retryable error.
//!
//! Without it a panicking handler would take its spawned task down with it
//! and the task would stay `running` until orphan rescue; with it the run
//! fails like any other error and is retried with backoff.

mod future;
mod layer;

use std::task::{Context, Poll};

use tower::Service;

pub use self::future::{Panicked, ResponseFuture};
pub use self::layer::CatchPanicLayer;
use crate::job_error::JobError;
use crate::request::Request;

/// Catches panics of the inner service; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct CatchPanic<S> {
    inner: S,
}

impl<S> CatchPanic<S> {
    /// Wraps `inner`.
    pub const fn new(inner: S) -> Self {
        Self { inner }
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

impl<J, S> Service<Request<J>> for CatchPanic<S>
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
        let inner = &mut self.inner;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.call(request))) {
            Ok(future) => ResponseFuture::new(future),
            Err(payload) => ResponseFuture::panicked(Panicked::from_payload(payload.as_ref())),
        }
    }
}
