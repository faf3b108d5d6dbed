//! Trace context across the queue (feature `otel`), exported through the
//! OpenTelemetry SDK's in-memory exporter: a job enqueued inside a span runs
//! in that span's trace, on every attempt; a workflow run is one trace; a
//! worker can link instead.
//!
//! The enqueuer and the worker use separate backend handles and monitors,
//! and the trace reaches the worker only through what the backend stored.

#![allow(clippy::expect_used)] // helpers of tests: a failure is the test failing

use std::sync::OnceLock;
use std::time::Duration;

use errand_runtime::memory::MemoryBackend;
use errand_runtime::testing::jobs::Flaky;
use errand_runtime::testing::workflows::Diamond;
use errand_runtime::testing::{Probe, Running};
use errand_runtime::trace::Parent;
use errand_runtime::workflow::{StepTask, WorkflowExt};
use errand_runtime::{Expose, JsonCodec, Monitor, TaskSink, TaskState, WorkerBuilder};
use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

/// The process-wide subscriber (workers run on other threads) and its exporter.
fn exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("errand-test")));
        tracing::subscriber::set_global_default(subscriber).expect("no other subscriber in this test binary");
        exporter
    })
}

/// The exported `task` spans of `trace`, in the order they ended.
fn task_spans(trace: TraceId) -> Vec<SpanData> {
    let spans = exporter().get_finished_spans().expect("the in-memory exporter");
    spans.into_iter().filter(|s| s.span_context.trace_id() == trace && is_run(s)).collect()
}

fn is_run(span: &SpanData) -> bool {
    attribute(span, "messaging.system") == Some(Value::from("errand"))
}

fn attribute(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes.iter().find(|kv: &&KeyValue| kv.key.as_str() == key).map(|kv| kv.value.clone())
}

/// A request span: its trace and span ids once entered.
fn request_span(name: &'static str) -> (tracing::Span, TraceId, SpanId) {
    let _ = exporter();
    let span = tracing::info_span!("request", otel.name = name);
    let context = span.context();
    let ids = {
        use opentelemetry::trace::TraceContextExt;
        let otel = context.span();
        let ids = otel.span_context();
        (ids.trace_id(), ids.span_id())
    };
    (span, ids.0, ids.1)
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attempt_of_a_job_is_a_child_of_the_span_that_enqueued_it() {
    let backend = MemoryBackend::<JsonCodec>::new();
    let (span, trace, parent) = request_span("POST /signup");
    assert_ne!(trace, TraceId::INVALID, "the request span has a trace");
    let id = async { backend.enqueue(Flaky { key: 1, succeed_on: 2 }).await }.instrument(span).await.expect("enqueue");

    // Another handle and another monitor: the context arrives through the store.
    let probe = Probe::default();
    let worker = WorkerBuilder::<Flaky, _>::new(backend.clone()).data(probe.clone());
    let running = Running::start(Monitor::new().register(worker));
    wait_for("two attempts' spans", || task_spans(trace).len() == 2).await;
    running.stop().await.expect("graceful stop");
    assert_eq!(backend.task(id).await.expect("task").map(|t| t.state), Some(TaskState::Done));

    let spans = task_spans(trace);
    for (n, span) in (1_i64..).zip(&spans) {
        assert_eq!(span.parent_span_id, parent, "attempt {n} is a child of the request span");
        assert_eq!(span.name, "process conformance");
        assert_eq!(span.span_kind, opentelemetry::trace::SpanKind::Consumer);
        assert_eq!(attribute(span, "messaging.destination.name"), Some(Value::from("conformance")));
        assert_eq!(attribute(span, "messaging.operation.type"), Some(Value::from("process")));
        assert_eq!(attribute(span, "messaging.message.id"), Some(Value::from(id.to_string())));
        assert_eq!(attribute(span, "job"), Some(Value::from("conformance_flaky")));
        assert_eq!(attribute(span, "attempt"), Some(Value::I64(n)));
    }
    assert_eq!(attribute(&spans[0], "outcome"), Some(Value::from("retry")));
    assert_eq!(attribute(&spans[0], "error"), Some(Value::from("flaky failure on attempt 1")));
    assert!(matches!(spans[0].status, opentelemetry::trace::Status::Error { .. }), "{:?}", spans[0].status);
    assert_eq!(attribute(&spans[1], "outcome"), Some(Value::from("done")));
    assert_eq!(spans[1].status, opentelemetry::trace::Status::Unset);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linking_worker_starts_a_trace_of_its_own_linked_to_the_enqueue() {
    let backend = MemoryBackend::<JsonCodec>::new();
    let (span, trace, parent) = request_span("POST /import");
    async { backend.enqueue(Flaky { key: 2, succeed_on: 1 }).await }.instrument(span).await.expect("enqueue");

    let probe = Probe::default();
    let worker = WorkerBuilder::<Flaky, _>::new(backend.clone()).data(probe.clone()).trace_parent(Parent::Link);
    let running = Running::start(Monitor::new().register(worker));
    let linked = |span: &SpanData| span.links.iter().any(|l| l.span_context.trace_id() == trace);
    let find = || {
        let spans = exporter().get_finished_spans().expect("the in-memory exporter");
        spans.into_iter().find(|s| is_run(s) && linked(s))
    };
    wait_for("the linked run's span", || find().is_some()).await;
    running.stop().await.expect("graceful stop");
    let run = find().expect("found above");
    assert_ne!(run.span_context.trace_id(), trace, "a trace of its own");
    assert_eq!(run.parent_span_id, SpanId::INVALID, "a root span");
    let link = run.links.iter().find(|l| l.span_context.trace_id() == trace).expect("the link");
    assert_eq!(link.span_context.span_id(), parent, "linked to the enqueuing span");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_run_is_one_trace() {
    let backend = MemoryBackend::<JsonCodec>::new();
    let (span, trace, parent) = request_span("POST /report");
    let run = async { backend.start(Diamond(4)).await }.instrument(span).await.expect("start");

    let probe = Probe::default();
    let worker = WorkerBuilder::<StepTask<Diamond, JsonCodec>, _>::new(backend.clone()).data(probe.clone());
    let running = Running::start(Monitor::new().register(worker));
    let output = tokio::time::timeout(Duration::from_secs(30), backend.workflow(run).wait()).await;
    assert_eq!(output.expect("in time").expect("the run"), (10, "n=5".to_owned()));
    wait_for("the four steps' spans", || task_spans(trace).len() == 4).await;
    running.stop().await.expect("graceful stop");
    for span in task_spans(trace) {
        assert_eq!(span.parent_span_id, parent, "{} continues the request's trace", span.name);
        assert_eq!(attribute(&span, "job"), Some(Value::from("conformance_diamond")));
        assert_eq!(attribute(&span, "outcome"), Some(Value::from("done")));
    }
}
