//! The JSON the live views poll, each with an `ETag`: a request whose
//! `If-None-Match` names the current one gets `304 Not Modified` and no body.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use errand_runtime::workflow::{RunId, RunInfo};
use errand_runtime::{Backend, Error, QueueCounts, TaskFilter, TaskId, TaskInfo, TaskState, Timestamp, WorkerInfo};
use serde_json::{Value, json};

use crate::sampler::{Range, Sample};
use crate::{BoardBackend, Ctx};

/// What the overview shows, read once for the page and for its live view.
pub(crate) struct Overview {
    pub(crate) counts: Vec<QueueCounts>,
    pub(crate) running: Vec<TaskInfo>,
    pub(crate) workers: Vec<WorkerInfo>,
}

/// Running tasks listed on the overview.
pub(crate) const RUNNING_SHOWN: u32 = 50;

impl Overview {
    /// Reads it, and records a throughput sample. On failure, what it was
    /// doing and the error.
    pub(crate) async fn read<B: BoardBackend>(cx: &Ctx<B>) -> Result<Self, (&'static str, Error)> {
        let counts = cx.backend.counts().await.map_err(|e| ("reading the counts", e))?;
        cx.samples().record(Sample::of(Timestamp::now(), &counts));
        let filter = TaskFilter { state: Some(TaskState::Running), limit: RUNNING_SHOWN, ..TaskFilter::default() };
        let running = cx.backend.tasks(&filter).await.map_err(|e| ("listing the running tasks", e))?;
        let workers = cx.backend.workers().await.map_err(|e| ("listing the workers", e))?;
        Ok(Self { counts, running, workers })
    }

    pub(crate) fn json(&self) -> Value {
        let mut totals = QueueCounts::default();
        for c in &self.counts {
            for state in TaskState::ALL {
                *totals.get_mut(state) += c.get(state);
            }
        }
        json!({
            "queues": self.counts.iter().map(counts_json).collect::<Vec<_>>(),
            "totals": counts_json(&totals),
            "running": self.running.iter().map(|t| json!({
                "id": t.id.0,
                "job": t.job,
                "queue": t.queue,
                "worker": t.worker,
                "attempt": t.attempt,
                "max_attempts": t.max_attempts,
                "run_at": t.run_at.as_millis(),
                "progress": t.progress.as_ref().map(|p| json!({"percent": p.percent, "message": p.message})),
            })).collect::<Vec<_>>(),
            "workers": self.workers.len(),
        })
    }
}

fn counts_json(c: &QueueCounts) -> Value {
    json!({
        "queue": c.queue,
        "pending": c.pending,
        "running": c.running,
        "retry": c.retry,
        "done": c.done,
        "dead": c.dead,
        "cancelled": c.cancelled,
        "paused": c.paused,
    })
}

pub(crate) fn task_json(t: &TaskInfo) -> Value {
    json!({
        "id": t.id.0,
        "state": t.state,
        "attempt": t.attempt,
        "max_attempts": t.max_attempts,
        "worker": t.worker,
        "run_at": t.run_at.as_millis(),
        "finished_at": t.finished_at.map(Timestamp::as_millis),
        "last_error": t.last_error,
        "progress": t.progress.as_ref().map(|p| json!({"percent": p.percent, "message": p.message})),
    })
}

pub(crate) fn run_json(run: &RunInfo) -> Value {
    json!({
        "id": run.id.0,
        "state": run.state,
        "error": run.error,
        "steps": run.steps.iter().map(|s| json!({
            "name": s.name,
            "state": s.state,
            "task": s.task.map(|t| t.0),
            "attempt": s.attempt,
        })).collect::<Vec<_>>(),
    })
}

/// The entity tag of a JSON value: a hash of its bytes.
pub(crate) fn etag(value: &Value) -> String {
    format!("\"{:016x}\"", errand_runtime::backend::fnv1a(value.to_string().as_bytes()))
}

fn matches(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().trim_start_matches("W/"))
        .any(|v| v == tag || v == "*")
}

/// `value` as JSON with its `ETag`, or `304` when the client has it.
fn respond(headers: &HeaderMap, value: &Value) -> Response {
    let tag = etag(value);
    let mut response = if matches(headers, &tag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        axum::Json(value).into_response()
    };
    if let Ok(tag) = HeaderValue::from_str(&tag) {
        response.headers_mut().insert(header::ETAG, tag);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn failed<B: Backend>(cx: &Ctx<B>, what: &str, error: &Error) -> Response {
    let message = format!("backend `{}` ({}) failed while {what}: {error}", cx.name, B::NAME);
    (StatusCode::BAD_GATEWAY, axum::Json(json!({ "error": message }))).into_response()
}

fn missing(what: &str) -> Response {
    (StatusCode::NOT_FOUND, axum::Json(json!({ "error": what }))).into_response()
}

/// `GET /api/overview`: counts per queue, totals, running tasks, workers.
pub(crate) async fn overview<B: BoardBackend>(State(cx): State<Arc<Ctx<B>>>, headers: HeaderMap) -> Response {
    match Overview::read(&cx).await {
        Ok(overview) => respond(&headers, &overview.json()),
        Err((what, error)) => failed(&cx, what, &error),
    }
}

/// `GET /api/tasks/{id}`: a task's state, attempt, progress and error.
pub(crate) async fn task<B: BoardBackend>(
    State(cx): State<Arc<Ctx<B>>>,
    Path(id): Path<u64>,
    headers: HeaderMap,
) -> Response {
    match cx.backend.task(TaskId(id)).await {
        Ok(Some(task)) => respond(&headers, &task_json(&task)),
        Ok(None) => missing(&format!("no task {id}")),
        Err(error) => failed(&cx, &format!("reading task {id}"), &error),
    }
}

/// `GET /api/runs/{id}`: a run's state and its steps'.
pub(crate) async fn run<B: BoardBackend>(
    State(cx): State<Arc<Ctx<B>>>,
    Path(id): Path<u64>,
    headers: HeaderMap,
) -> Response {
    match cx.backend.run_info(RunId(id)).await {
        Ok(Some(run)) => respond(&headers, &run_json(&run)),
        Ok(None) => missing(&format!("no workflow run {id}")),
        Err(error) => failed(&cx, &format!("reading workflow run {id}"), &error),
    }
}

/// Query of `/api/throughput`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct RangeQuery {
    range: Option<String>,
}

/// `GET /api/throughput?range=15m|1h|24h`: the charts, as SVG markup.
pub(crate) async fn throughput<B: BoardBackend>(
    State(cx): State<Arc<Ctx<B>>>,
    Query(query): Query<RangeQuery>,
    headers: HeaderMap,
) -> Response {
    let range = Range::parse(query.range.as_deref());
    let (html, rate) = {
        let samples = cx.samples();
        (samples.charts(range), samples.recent_rate())
    };
    respond(
        &headers,
        &json!({ "range": range.as_str(), "html": html, "rate": rate.map(|r| (r * 10.0).round() / 10.0) }),
    )
}
