//! Prometheus metrics of errand, served at `/metrics`.
//!
//! With its `metrics` feature, the runtime counts enqueues, runs and their
//! outcomes and times runs and waits through the [`metrics`] facade (the
//! names and labels are listed in [`errand_runtime::meter`]). This crate
//! installs a Prometheus recorder for them ([`install`]) and serves the
//! text format from an axum route ([`router`]) that also samples each
//! queue's task counts by state from the backend's
//! [`Expose`] on every scrape (`errand_queue_tasks{backend, queue, state}`),
//! so depth costs one count query per scrape, nothing per task.
//!
//! ```
//! use errand_runtime::memory::MemoryBackend;
//!
//! # fn main() -> Result<(), errand_metrics::MetricsError> {
//! // At startup, before any worker starts: workers take their metric
//! // handles when they start.
//! errand_metrics::install()?;
//! let backend = MemoryBackend::new();
//! // Beside the app's own routes; serve it with `axum::serve`.
//! let app: axum::Router = axum::Router::new().merge(errand_metrics::router(backend));
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! The board serves the same route with its `metrics` feature, and
//! `errand board` does by default.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use errand_runtime::Expose;
use errand_runtime::meter::names;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets of the duration histograms, in seconds: 1 ms to 5 minutes.
const SECONDS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// Buckets of the batch size histograms.
const BATCH: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// How long a depth sample is reused: scrapes closer together than this
/// (several Prometheus servers, a refreshing browser) query the backend once.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Why the Prometheus recorder could not be installed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MetricsError {
    /// The builder refused its settings.
    #[error("could not build the Prometheus recorder: {0}")]
    Build(String),
    /// Another `metrics` recorder was installed in this process first.
    #[error(
        "another `metrics` recorder is installed in this process; errand's metrics go to it (render them with \
         that recorder, or call errand_metrics::install() before installing any other)"
    )]
    OtherRecorder,
}

/// The process's Prometheus recorder, once installed.
static HANDLE: OnceLock<Result<Metrics, MetricsError>> = OnceLock::new();

/// A handle to the installed Prometheus recorder: renders every metric
/// recorded in this process.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Every metric in Prometheus's text format.
    pub fn render(&self) -> String {
        // Histograms are kept in buckets that upkeep folds; doing it on each
        // render keeps them bounded without a background task.
        self.handle.run_upkeep();
        self.handle.render()
    }
}

/// Installs the Prometheus recorder for the whole process (once; later calls
/// return the same handle), with buckets for errand's histograms. Call it
/// at startup, before workers start.
///
/// # Errors
///
/// When another `metrics` recorder was installed first.
pub fn install() -> Result<Metrics, MetricsError> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_batch_size".to_owned()), BATCH))
                .map_err(|e| MetricsError::Build(e.to_string()))?;
            let handle = builder.install_recorder().map_err(|_| MetricsError::OtherRecorder)?;
            describe();
            Ok(Metrics { handle })
        })
        .clone()
}

/// The `# HELP` lines of errand's metrics.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(names::ENQUEUED, "Tasks handed to a backend by enqueue calls.");
    describe_counter!(names::STARTED, "Runs started.");
    describe_counter!(names::DONE, "Runs that succeeded.");
    describe_counter!(names::RETRIED, "Runs that failed and will run again.");
    describe_counter!(names::DEAD, "Runs that failed for good, and tasks whose arguments did not decode.");
    describe_counter!(names::SNOOZED, "Runs that asked to run again later.");
    describe_counter!(names::CANCELLED, "Runs stopped by a cancel.");
    describe_histogram!(names::RUN_SECONDS, metrics::Unit::Seconds, "How long runs took.");
    describe_histogram!(names::WAIT_SECONDS, metrics::Unit::Seconds, "From when a task was due to when it started.");
    describe_gauge!(names::IN_FLIGHT, "Runs in progress, per worker.");
    describe_histogram!(names::CLAIM_BATCH, "Tasks per claim that found some.");
    describe_histogram!(names::ACK_BATCH, "Acks per write.");
    describe_gauge!(names::QUEUE_TASKS, "Tasks by queue and state, sampled from the backend on each scrape.");
}

/// Samples the task counts of every queue of `backend` into
/// `errand_queue_tasks{backend = name, queue, state}`.
///
/// # Errors
///
/// When the backend cannot be read.
pub async fn sample<B: Expose>(backend: &B, name: &str) -> Result<(), errand_runtime::Error> {
    for counts in backend.counts().await? {
        for state in errand_runtime::TaskState::ALL {
            let labels = [("backend", name.to_owned()), ("queue", counts.queue.clone()), ("state", state.to_string())];
            metrics::gauge!(names::QUEUE_TASKS, &labels).set(counts.get(state) as f64);
        }
    }
    Ok(())
}

/// Something that samples queue depth on a scrape.
pub trait Sampler: Send + Sync + 'static {
    /// Samples every queue's counts (see [`sample`]).
    fn sample(&self) -> std::pin::Pin<Box<dyn Future<Output = Result<(), errand_runtime::Error>> + Send + '_>>;
}

/// A backend sampled under a name.
#[derive(Debug, Clone)]
pub struct Sampled<B> {
    /// The `backend` label.
    pub name: String,
    /// The backend.
    pub backend: B,
}

impl<B: Expose + Send + Sync + 'static> Sampler for Sampled<B> {
    fn sample(&self) -> std::pin::Pin<Box<dyn Future<Output = Result<(), errand_runtime::Error>> + Send + '_>> {
        Box::pin(sample(&self.backend, &self.name))
    }
}

struct Scrape {
    samplers: Vec<Box<dyn Sampler>>,
    /// When depth was last sampled.
    last: std::sync::Mutex<Option<Instant>>,
}

/// `GET /metrics` for `backend` (its depth labelled `backend="<its NAME>"`),
/// installing the recorder if nothing did yet. Merge it into an app:
/// `Router::new().merge(errand_metrics::router(backend))`.
pub fn router<B: Expose + Clone + Send + Sync + 'static>(backend: B) -> Router {
    router_of(vec![Box::new(Sampled { name: B::NAME.to_owned(), backend })])
}

/// `GET /metrics` sampling the depth of each of `samplers` (several
/// backends, as the board has); see [`router`].
pub fn router_of(samplers: Vec<Box<dyn Sampler>>) -> Router {
    let scrape = Arc::new(Scrape { samplers, last: std::sync::Mutex::new(None) });
    Router::new().route("/metrics", get(scrape_handler)).with_state(scrape)
}

impl Scrape {
    /// Whether this scrape samples depth (none did in the last
    /// [`SAMPLE_EVERY`]); if so, the next ones within it do not.
    fn due(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let due = last.is_none_or(|at| now.duration_since(at) >= SAMPLE_EVERY);
        if due {
            *last = Some(now);
        }
        due
    }
}

async fn scrape_handler(State(scrape): State<Arc<Scrape>>) -> Response {
    let metrics = match install() {
        Ok(metrics) => metrics,
        Err(error) => return (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    };
    if scrape.due() {
        for sampler in &scrape.samplers {
            if let Err(error) = sampler.sample().await {
                // The runtime's metrics are still worth serving.
                tracing::warn!(%error, "could not sample queue depth for /metrics");
            }
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], metrics.render()).into_response()
}
