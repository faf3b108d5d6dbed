//! A `tracing` span around every run, and trace context across the queue.
//!
//! Every worker's stack starts with [`Trace`]: each run of a task is a span
//! named `task` with fields that follow OpenTelemetry's messaging
//! conventions:
//!
//! | field | value |
//! |---|---|
//! | `otel.name` | `"process <queue>"` |
//! | `otel.kind` | `"consumer"` |
//! | `messaging.system` | `"errand"` |
//! | `messaging.operation.type` | `"process"` |
//! | `messaging.destination.name` | the queue |
//! | `messaging.message.id` | the task id |
//! | `job` | the job's name |
//! | `attempt` | this run's attempt, 1 on the first |
//! | `outcome` | `done`, `retry`, `dead` or `snoozed` |
//! | `error`, `otel.status_code` | the error and `"ERROR"`, when the run failed |
//!
//! # Trace context (feature `otel`)
//!
//! With the `otel` feature, an enqueue inside a span whose subscriber has a
//! [`tracing_opentelemetry`] layer stores that span's W3C trace context
//! (`traceparent` and `tracestate`) with the task, beside its arguments
//! ([`NewTask::trace`](crate::backend::NewTask::trace)). Each run's span then
//! continues that trace: by default it is the enqueuing span's **child**, on
//! every attempt, so the web request that enqueued a job and every run of it
//! are one trace. [`Parent::Link`] makes each run the root of a trace of its
//! own with a link to the enqueuing span instead, for jobs enqueued by
//! long-lived spans whose traces should stay small
//! ([`WorkerBuilder::trace_parent`](crate::WorkerBuilder::trace_parent)).
//!
//! A workflow run is one trace: its context is taken when it starts and
//! every step's task carries it. A job enqueued by a running task (including
//! [`pipe_to`](crate::pipe)) continues the running task's trace.
//!
//! Without the feature, nothing is captured or stored and the spans carry
//! the fields above only.

#[cfg(feature = "otel")]
mod otel;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::Span;

use crate::job_error::{Decision, JobError};
use crate::request::Request;

/// How a run's span continues the trace its task was enqueued in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Parent {
    /// The run's span is a child of the enqueuing span (the default): one
    /// trace from the enqueue to the last retry.
    #[default]
    Child,
    /// The run's span starts a trace of its own, linked to the enqueuing span.
    Link,
}

/// The current span's trace context, as [`NewTask::trace`](crate::backend::NewTask::trace)
/// stores it: `None` without the `otel` feature, outside a span, or when the
/// subscriber has no OpenTelemetry layer.
pub fn current_context() -> Option<String> {
    #[cfg(feature = "otel")]
    {
        otel::current()
    }
    #[cfg(not(feature = "otel"))]
    {
        None
    }
}

/// Runs each task inside a span; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Trace<S> {
    inner: S,
    parent: Parent,
}

impl<S> Trace<S> {
    /// Wraps `inner`; runs are children of their enqueuing span.
    pub const fn new(inner: S) -> Self {
        Self { inner, parent: Parent::Child }
    }

    /// Wraps `inner`, continuing stored traces as `parent` says.
    pub const fn with_parent(inner: S, parent: Parent) -> Self {
        Self { inner, parent }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<J, S, T> Service<Request<J>> for Trace<S>
where
    S: Service<Request<J>, Response = T, Error = JobError>,
{
    type Response = T;
    type Error = JobError;
    type Future = Traced<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<J>) -> Self::Future {
        let cx = &request.cx;
        // Field values are handed over as `&str` where they can be: an OTel
        // layer copies a string as it is but runs `format!` on anything
        // else, and this runs once per run (the name is made once per
        // worker).
        let queue = cx.queue();
        let span = tracing::info_span!(
            "task",
            otel.name = cx.span_name(),
            otel.kind = "consumer",
            otel.status_code = tracing::field::Empty,
            messaging.system = "errand",
            messaging.operation.type = "process",
            messaging.destination.name = queue,
            messaging.message.id = decimal(cx.id().0, &mut [0; 20]),
            job = cx.job(),
            attempt = i64::from(cx.attempt()),
            outcome = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        #[cfg(feature = "otel")]
        if let Some(stored) = cx.trace() {
            otel::continue_trace(&span, stored, self.parent);
        }
        #[cfg(not(feature = "otel"))]
        let _ = self.parent;
        // The span is entered where the run's code runs, at each poll; the
        // stack's `call`s only build futures.
        Traced { future: self.inner.call(request), span }
    }
}

/// `n` in decimal, written into `digits`.
fn decimal(mut n: u64, digits: &mut [u8; 20]) -> &str {
    let mut at = digits.len();
    loop {
        at -= 1;
        // `n % 10` is a single digit: the cast cannot truncate.
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&digits[at..]).unwrap_or("")
}

pin_project! {
    /// The future of a [`Trace`]d run: polls the run inside its span and
    /// records its outcome there.
    #[derive(Debug)]
    pub struct Traced<F> {
        #[pin]
        future: F,
        span: Span,
    }
}

impl<F, T> Future for Traced<F>
where
    F: Future<Output = Result<T, JobError>>,
{
    type Output = Result<T, JobError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let result = std::task::ready!(this.future.poll(cx));
        record_outcome(this.span, &result);
        Poll::Ready(result)
    }
}

/// Records how a run ended on its span.
fn record_outcome<T>(span: &Span, result: &Result<T, JobError>) {
    let error = match result {
        Ok(_) => {
            span.record("outcome", "done");
            return;
        }
        Err(error) => error,
    };
    let outcome = if error.snooze_delay().is_some() {
        "snoozed"
    } else if error.is_abort() || matches!(error.decision(), Some(Decision::GiveUp)) {
        "dead"
    } else {
        "retry"
    };
    span.record("outcome", outcome);
    if outcome != "snoozed" {
        span.record("error", tracing::field::display(error));
        span.record("otel.status_code", "ERROR");
    }
}

/// Applies [`Trace`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceLayer {
    parent: Parent,
}

impl TraceLayer {
    /// Runs are children of their enqueuing span ([`Parent::Child`]).
    pub const fn new() -> Self {
        Self { parent: Parent::Child }
    }

    /// Runs continue stored traces as `parent` says.
    pub const fn with_parent(parent: Parent) -> Self {
        Self { parent }
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Trace::with_parent(inner, self.parent)
    }
}

#[cfg(test)]
mod tests {
    use super::decimal;

    #[test]
    fn ids_are_written_in_decimal() {
        let mut digits = [0; 20];
        for n in [0, 7, 10, 1234567890, u64::MAX] {
            assert_eq!(decimal(n, &mut digits), n.to_string());
        }
    }
}
