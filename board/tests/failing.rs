//! A backend that fails: every page and JSON endpoint answers with what
//! failed, in context, and never panics; actions change nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests: a failure is the test failing

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use errand_runtime::backend::{Ack, Claimed, NewTask, Tuning, Unserved, WorkerRegistration};
use errand_runtime::capability::CancelRunning;
use errand_runtime::memory::MemoryBackend;
use errand_runtime::workflow::{NewRun, RunFilter, RunId, RunInfo, WorkflowStore};
use errand_runtime::{
    Backend, BackendError, Error, Expose, Progress, QueueCounts, TaskFilter, TaskId, TaskInfo, Timestamp, WorkerInfo,
};
use tower::ServiceExt;

mod common;

/// The memory backend, whose listings and actions fail while `down`.
#[derive(Debug, Clone, Default)]
struct Down {
    inner: MemoryBackend,
    down: Arc<AtomicBool>,
}

impl Down {
    fn check(&self, operation: &str) -> Result<(), Error> {
        if self.down.load(Ordering::SeqCst) {
            return Err(BackendError::new("down", operation.to_owned(), "connection refused (simulated)").into());
        }
        Ok(())
    }
}

impl Backend for Down {
    const NAME: &'static str = "down";
    type Codec = <MemoryBackend as Backend>::Codec;
    type Waiter = <MemoryBackend as Backend>::Waiter;

    fn tuning(&self) -> &Tuning {
        self.inner.tuning()
    }
    async fn push(&self, tasks: Vec<NewTask>) -> Result<Vec<TaskId>, Error> {
        self.inner.push(tasks).await
    }
    async fn claim(&self, worker: &WorkerRegistration, max: usize) -> Result<Claimed, Error> {
        self.inner.claim(worker, max).await
    }
    async fn ack(&self, worker: &WorkerRegistration, acks: &[Ack]) -> Result<(), Error> {
        self.inner.ack(worker, acks).await
    }
    async fn heartbeat(&self, worker: &WorkerRegistration) -> Result<(), Error> {
        self.inner.heartbeat(worker).await
    }
    async fn rescue_orphans(&self) -> Result<u64, Error> {
        self.inner.rescue_orphans().await
    }
    async fn release(&self, worker: &WorkerRegistration) -> Result<u64, Error> {
        self.inner.release(worker).await
    }
    async fn cancelled_tasks(&self, worker: &WorkerRegistration) -> Result<Vec<TaskId>, Error> {
        self.inner.cancelled_tasks(worker).await
    }
    async fn unserved(&self, queue: &str, since: Timestamp) -> Result<Vec<Unserved>, Error> {
        self.inner.unserved(queue, since).await
    }
    async fn bury_unserved(
        &self,
        queue: &str,
        job: &str,
        due_before: Timestamp,
        since: Timestamp,
        reason: &str,
    ) -> Result<u64, Error> {
        self.inner.bury_unserved(queue, job, due_before, since, reason).await
    }
    async fn purge_expired(&self) -> Result<u64, Error> {
        self.inner.purge_expired().await
    }
    async fn record_progress(&self, worker: &WorkerRegistration, updates: &[(TaskId, Progress)]) -> Result<(), Error> {
        self.inner.record_progress(worker, updates).await
    }
    fn waiter(&self, queue: &str) -> Self::Waiter {
        self.inner.waiter(queue)
    }
}

impl CancelRunning for Down {}

impl Expose for Down {
    async fn counts(&self) -> Result<Vec<QueueCounts>, Error> {
        self.check("counts")?;
        self.inner.counts().await
    }
    async fn tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskInfo>, Error> {
        self.check("tasks")?;
        self.inner.tasks(filter).await
    }
    async fn task(&self, id: TaskId) -> Result<Option<TaskInfo>, Error> {
        self.check("task")?;
        self.inner.task(id).await
    }
    async fn workers(&self) -> Result<Vec<WorkerInfo>, Error> {
        self.check("workers")?;
        self.inner.workers().await
    }
    async fn retry_task(&self, id: TaskId) -> Result<bool, Error> {
        self.check("retry_task")?;
        self.inner.retry_task(id).await
    }
    async fn delete_task(&self, id: TaskId) -> Result<bool, Error> {
        self.check("delete_task")?;
        self.inner.delete_task(id).await
    }
    async fn pause_queue(&self, queue: &str) -> Result<(), Error> {
        self.check("pause_queue")?;
        self.inner.pause_queue(queue).await
    }
    async fn resume_queue(&self, queue: &str) -> Result<(), Error> {
        self.check("resume_queue")?;
        self.inner.resume_queue(queue).await
    }
    async fn cancel_task(&self, id: TaskId) -> Result<bool, Error> {
        self.check("cancel_task")?;
        self.inner.cancel_task(id).await
    }
}

impl WorkflowStore for Down {
    async fn start_run(&self, run: NewRun) -> Result<RunId, Error> {
        self.inner.start_run(run).await
    }
    async fn run_info(&self, run: RunId) -> Result<Option<RunInfo>, Error> {
        self.check("run_info")?;
        self.inner.run_info(run).await
    }
    async fn run_ids(&self, filter: &RunFilter) -> Result<Vec<RunId>, Error> {
        self.check("run_ids")?;
        self.inner.run_ids(filter).await
    }
}

async fn body(app: &axum::Router, req: Request<Body>) -> (StatusCode, String, String) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let kind = res.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
    (status, kind, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn a_failing_backend_gets_an_error_page_not_a_panic() {
    let backend = Down::default();
    errand_runtime::TaskSink::enqueue(&backend, common::Echo { text: "x".into() }).await.unwrap();
    let app = errand_board::router(backend.clone());
    let (_, _, html) = body(&app, Request::get("/").body(Body::empty()).unwrap()).await;
    let start = html.find(r#"name="csrf" value=""#).map_or(0, |i| i + r#"name="csrf" value=""#.len());
    let csrf = html.get(start..start + 32).unwrap_or_default().to_owned();
    backend.down.store(true, Ordering::SeqCst);

    for (path, doing) in [
        ("/", "reading the counts"),
        ("/tasks", "reading the counts"),
        ("/tasks/1", "reading task 1"),
        ("/dead", "reading the counts"),
        ("/workers", "listing the workers"),
        ("/runs", "listing workflow runs"),
        ("/runs/1", "reading workflow run 1"),
        ("/search?q=key", "listing tasks to search their unique keys"),
    ] {
        let (status, kind, html) = body(&app, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{path}");
        assert!(kind.starts_with("text/html"), "{path}: {kind}");
        assert!(html.contains(&format!("failed while {doing}")), "{path}: {html}");
        assert!(html.contains("connection refused (simulated)"), "{path}: {html}");
        assert!(html.contains("Try again"), "{path}");
    }
    for path in ["/api/overview", "/api/tasks/1", "/api/runs/1"] {
        let (status, kind, json) = body(&app, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{path}");
        assert!(kind.starts_with("application/json"), "{path}: {kind}");
        let json: serde_json::Value = serde_json::from_str(&json).unwrap();
        let error = json["error"].as_str().unwrap();
        assert!(error.starts_with("backend `down` (down) failed while") && error.contains("simulated"), "{error}");
    }
    let pause = Request::post("/queues/pause")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("csrf={csrf}&queue=default")))
        .unwrap();
    let (status, _, html) = body(&app, pause).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(html.contains("failed while pausing queue `default`") && html.contains("Back to the overview"), "{html}");

    backend.down.store(false, Ordering::SeqCst);
    assert!(!backend.counts().await.unwrap().iter().any(|c| c.paused), "nothing changed");
    assert_eq!(body(&app, Request::get("/").body(Body::empty()).unwrap()).await.0, StatusCode::OK);
}
