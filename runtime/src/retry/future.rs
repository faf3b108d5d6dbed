use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use super::{RetryPolicy, decide};
use crate::job_error::JobError;

pin_project! {
    /// The future of [`Retry`](super::Retry).
    #[derive(Debug)]
    pub struct ResponseFuture<F, P> {
        #[pin]
        inner: F,
        policy: P,
        attempt: u32,
        max_attempts: u32,
    }
}

impl<F, P> ResponseFuture<F, P> {
    pub(crate) fn new(inner: F, policy: P, attempt: u32, max_attempts: u32) -> Self {
        Self { inner, policy, attempt, max_attempts }
    }
}

impl<F, T, P> Future for ResponseFuture<F, P>
where
    F: Future<Output = Result<T, JobError>>,
    P: RetryPolicy,
{
    type Output = Result<T, JobError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        Poll::Ready(
            ready!(this.inner.poll(cx))
                .map_err(|error| decide(error, *this.attempt, *this.max_attempts, &*this.policy)),
        )
    }
}
