use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::Elapsed;
use crate::job_error::JobError;

pin_project! {
    /// The future of [`Timeout`](super::Timeout).
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Option<Sleep>,
        limit: Option<Duration>,
        deadline: Option<Instant>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, limit: Option<Duration>) -> Self {
        // The timer is registered only if the first poll does not finish the
        // run: most runs never need it. The clock starts now, though.
        Self { inner, sleep: None, limit, deadline: limit.map(|l| Instant::now() + l) }
    }
}

impl<F, T> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, JobError>>,
{
    type Output = Result<T, JobError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(out) = this.inner.poll(cx) {
            return Poll::Ready(out);
        }
        let (Some(limit), Some(deadline)) = (*this.limit, *this.deadline) else { return Poll::Pending };
        if this.sleep.is_none() {
            this.sleep.set(Some(tokio::time::sleep_until(deadline)));
        }
        match this.sleep.as_pin_mut().map(|s| s.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Err(JobError::retry(Elapsed { limit }))),
            _ => Poll::Pending,
        }
    }
}
