//! Run with: `cargo run --example observability --features otel,metrics`
//!
//! One trace from the "web request" that enqueued a job to its last retry,
//! exported to stdout, and the Prometheus metrics of the run. Exits by itself.
//!
//! - Tracing: a `tracing` subscriber with a `tracing-opentelemetry` layer
//!   (here exporting to stdout; in production an OTLP exporter). With the
//!   `otel` feature, an enqueue inside a span stores the span's W3C trace
//!   context with the task, and each run's span (`task`, with
//!   `messaging.*` fields) is that span's child, on every attempt.
//! - Metrics: `errand::metrics::install()` installs the Prometheus recorder
//!   before workers start; `errand::metrics::router(backend)` serves
//!   `GET /metrics` (merge it into your axum app). Here the text is printed.

#![allow(clippy::print_stdout)] // an example reports what it does on stdout

use std::time::Instant;

use errand::prelude::*;
use errand::sqlite::SqliteBackend;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

/// Fails on its first attempt, succeeds on the retry: two runs, one trace.
#[errand::job(queue = "uploads", retries = 3, backoff = "fixed(200ms)")]
async fn upload_report(name: String, cx: TaskCx) -> Result<u64, JobError> {
    if cx.attempt() == 1 {
        return Err(JobError::retry("connection reset by peer"));
    }
    Ok(name.len() as u64 * 1024)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Traces: spans → OpenTelemetry → stdout.
    let provider =
        SdkTracerProvider::builder().with_simple_exporter(opentelemetry_stdout::SpanExporter::default()).build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("observability-example")));
    tracing::subscriber::set_global_default(subscriber)?;
    // Metrics: before any worker starts.
    let metrics = errand::metrics::install()?;

    let path = std::env::temp_dir().join("errand-observability.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let backend = SqliteBackend::connect(&format!("sqlite://{}", path.display())).await?;

    // The web request: its trace id travels with the task.
    let request = tracing::info_span!("POST /reports", otel.kind = "server");
    let id = async { backend.enqueue(UploadReport { name: "q3.pdf".into() }).await }.instrument(request).await?;
    println!("enqueued task {id} inside the request's span\n");

    let watch = backend.clone();
    Monitor::new()
        .register(UploadReport::worker(&backend))
        .run_until(async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                let done = watch.task(id).await.ok().flatten().is_some_and(|t| !t.state.is_live());
                if done {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await?;
    provider.shutdown()?;

    println!("\n--- what GET /metrics serves (errand_*) ---");
    errand::metrics::sample(&backend, "sqlite").await?;
    for line in metrics.render().lines().filter(|l| l.starts_with("errand_") && !l.contains("_bucket")) {
        println!("{line}");
    }
    Ok(())
}
