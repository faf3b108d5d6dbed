use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::job_error::JobError;

/// A handler panicked; the message is the panic's, when it was a string.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the handler panicked: {message}")]
pub struct Panicked {
    /// The panic message.
    pub message: String,
}

impl Panicked {
    pub(crate) fn from_payload(payload: &(dyn Any + Send)) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "a non-string panic payload".to_owned()
        };
        Self { message }
    }
}

pin_project! {
    /// The future of [`CatchPanic`](super::CatchPanic).
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        panicked: Option<Panicked>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F) -> Self {
        Self { inner: Some(inner), panicked: None }
    }

    pub(crate) fn panicked(panicked: Panicked) -> Self {
        Self { inner: None, panicked: Some(panicked) }
    }
}

impl<F, T> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, JobError>>,
{
    type Output = Result<T, JobError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            let panicked =
                this.panicked.take().unwrap_or_else(|| Panicked { message: "polled after completion".into() });
            return Poll::Ready(Err(JobError::retry(panicked)));
        };
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(poll) => poll,
            Err(payload) => {
                // Drop the poisoned future now rather than poll it again.
                this.inner.set(None);
                Poll::Ready(Err(JobError::retry(Panicked::from_payload(payload.as_ref()))))
            }
        }
    }
}
