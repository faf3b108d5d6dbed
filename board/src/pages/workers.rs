//! Live workers: what they serve, how busy they are, when they last beat.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use errand_runtime::{TaskFilter, TaskState, Timestamp};

use super::{Here, Nav, Page, failure, shell};
use crate::html::{Esc, num, pct, relative, time};
use crate::{BoardBackend, Ctx};

/// Running tasks read to count each worker's load.
const RUNNING_READ: u32 = 1_000;

/// `GET /workers`.
pub(crate) async fn workers<B: BoardBackend>(State(cx): State<Arc<Ctx<B>>>, here: Here) -> Response {
    let links = here.links(&cx);
    let workers = match cx.backend.workers().await {
        Ok(workers) => workers,
        Err(error) => return failure(&cx, &here, "listing the workers", &error),
    };
    let filter = TaskFilter { state: Some(TaskState::Running), limit: RUNNING_READ, ..TaskFilter::default() };
    let running = match cx.backend.tasks(&filter).await {
        Ok(running) => running,
        Err(error) => return failure(&cx, &here, "listing the running tasks", &error),
    };
    let mut load: HashMap<&str, u32> = HashMap::new();
    for t in &running {
        if let Some(w) = t.worker.as_deref() {
            *load.entry(w).or_default() += 1;
        }
    }
    let now = Timestamp::now();
    let mut body = format!(
        r#"<h1 class="page-title">Workers <span class="count-pill">{}</span></h1><section class="card"><div class="table-wrap"><table class="workers"><thead><tr><th>Worker</th><th>Queue</th><th>Job</th><th>Busy</th><th>Started</th><th>Last seen</th></tr></thead><tbody>"#,
        num(workers.len() as u64)
    );
    if workers.is_empty() {
        body.push_str(r#"<tr class="empty-row"><td colspan="6">No live workers: none has beaten within the backend's orphan timeout.</td></tr>"#);
    }
    for w in &workers {
        let busy = load.get(w.id.as_str()).copied().unwrap_or(0);
        let silent = now.as_millis() - w.last_seen.as_millis();
        let health = if silent <= 10_000 { "fresh" } else { "stale" };
        let width =
            if w.concurrency == 0 { 0.0 } else { (f64::from(busy) / f64::from(w.concurrency) * 100.0).min(100.0) };
        let _ = write!(
            body,
            r#"<tr><td class="mono"><span class="health {health}" title="last heartbeat {ago}"></span>{id}</td><td><a href="{qhref}">{queue}</a></td><td><a href="{jhref}">{job}</a></td><td class="busy"><svg viewBox="0 0 100 8" width="80" height="8" aria-hidden="true"><rect class="track" width="100" height="8" rx="4"/><rect class="fill" width="{width:.0}" height="8" rx="4"/></svg> {busy} / {conc}</td><td>{started}</td><td>{seen}</td></tr>"#,
            ago = Esc(&relative(w.last_seen, now)),
            id = Esc(&w.id),
            qhref = Esc(&links.to(&format!("/tasks?queue={}&state=running", pct(&w.queue)))),
            queue = Esc(&w.queue),
            jhref = Esc(&links.to(&format!("/tasks?job={}", pct(&w.job)))),
            job = Esc(&w.job),
            conc = w.concurrency,
            started = time(w.started_at, now),
            seen = time(w.last_seen, now),
        );
    }
    body.push_str("</tbody></table></div></section>");
    shell(&cx, &here, &Page { title: "Workers", nav: Nav::Workers, live: None }, &body)
}
