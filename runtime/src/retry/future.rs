use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use super::RetryPolicy;
use crate::job::{Decision, JobError};

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
        Poll::Ready(match ready!(this.inner.poll(cx)) {
            Err(error) if error.is_retry() && error.decision().is_none() => {
                let decision = match this.policy.retry_after(*this.attempt, *this.max_attempts, &error) {
                    Some(delay) => Decision::RetryAfter(delay),
                    None => Decision::GiveUp,
                };
                Err(error.with_decision(decision))
            }
            other => other,
        })
    }
}
