//! One task: what it was given, what it returned or why it failed, its
//! attempts, progress and timeline; live.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use errand_runtime::{TaskId, TaskInfo, TaskState, Timestamp};

use super::{Action, Here, Live, Nav, Page, failure, not_found, shell};
use crate::api::{etag, task_json};
use crate::html::{Esc, Links, pct, span, state_badge, state_class, step_run, stored_value, time, utc};
use crate::{BoardBackend, Ctx};

/// Attempt pips drawn at most.
const PIPS: u32 = 30;

/// `GET /tasks/{id}`.
pub(crate) async fn task<B: BoardBackend>(State(cx): State<Arc<Ctx<B>>>, here: Here, Path(id): Path<u64>) -> Response {
    let task = match cx.backend.task(TaskId(id)).await {
        Ok(Some(task)) => task,
        Ok(None) => {
            return not_found(&cx, &here, &format!("There is no task #{id}: it may have been deleted or purged."));
        }
        Err(error) => return failure(&cx, &here, &format!("reading task {id}"), &error),
    };
    let links = here.links(&cx);
    let now = Timestamp::now();
    let mut body = String::new();
    let _ = write!(
        body,
        r#"<div class="title-row"><h1 class="page-title">Task #{id} <span id="state">{badge}</span></h1><div class="actions">{actions}</div></div>"#,
        badge = state_badge(task.state),
        actions = actions(&cx, &links, &task, &here.back),
    );
    body.push_str(r#"<div class="grid2"><section class="card"><h2>Details</h2><dl class="kv">"#);
    let _ = write!(
        body,
        r#"<dt>Job</dt><dd><a href="{}">{}</a></dd><dt>Queue</dt><dd><a href="{}">{}</a></dd>"#,
        Esc(&links.to(&format!("/tasks?job={}", pct(&task.job)))),
        Esc(&task.job),
        Esc(&links.to(&format!("/tasks?queue={}", pct(&task.queue)))),
        Esc(&task.queue),
    );
    let _ = write!(body, r#"<dt>Attempts</dt><dd>{}</dd>"#, attempts(&task));
    let _ = write!(body, r#"<dt>Priority</dt><dd>{}</dd>"#, task.priority);
    if let Some(key) = &task.unique_key {
        let _ = write!(body, r#"<dt>Unique key</dt><dd class="mono">{}</dd>"#, Esc(key));
    }
    if let Some(worker) = &task.worker {
        let _ = write!(body, r#"<dt>Worker</dt><dd class="mono">{}</dd>"#, Esc(worker));
    }
    if let Some((run, step)) = step_run(&task.payload) {
        let _ = write!(
            body,
            r#"<dt>Workflow</dt><dd><a href="{}">run #{run}</a>, step {step}</dd>"#,
            Esc(&links.to(&format!("/runs/{run}")))
        );
    }
    body.push_str("</dl>");
    if let Some(progress) = &task.progress {
        let _ = write!(
            body,
            r#"<div class="progress-block"><div class="progress-head"><span>Progress</span><b id="progress-pct">{p}%</b></div><progress id="progress" max="100" value="{p}"></progress><div class="muted" id="progress-msg">{msg}</div></div>"#,
            p = progress.percent,
            msg = Esc(&progress.message)
        );
    }
    body.push_str("</section>");
    body.push_str(&timeline(&task, now));
    body.push_str("</div>");

    if let Some(error) = &task.last_error {
        let _ = write!(
            body,
            r#"<section class="card"><h2>Last error</h2><pre class="error">{}</pre></section>"#,
            Esc(error)
        );
    }
    if let Some(result) = &task.result {
        let _ = write!(body, r#"<section class="card"><h2>Result</h2>{}</section>"#, stored_value(result));
    }
    let _ = write!(body, r#"<section class="card"><h2>Arguments</h2>{}</section>"#, stored_value(&task.payload));

    let json = task_json(&task);
    let live =
        Live { kind: "task", poll: format!("/api/tasks/{id}"), etag: etag(&json), state: task.state.to_string() };
    let title = format!("Task #{id}");
    shell(&cx, &here, &Page { title: &title, nav: Nav::Tasks, live: Some(live) }, &body)
}

fn actions<B>(cx: &Ctx<B>, links: &Links, task: &TaskInfo, back: &str) -> String {
    let id = task.id;
    let mut out = String::new();
    if matches!(task.state, TaskState::Dead | TaskState::Cancelled) {
        out.push_str(
            &Action {
                path: format!("/tasks/{id}/retry"),
                label: "Retry",
                confirm: format!("Retry task #{id}? It goes back to pending with a fresh set of attempts."),
                class: "btn-ok",
                fields: Vec::new(),
                back: back.to_owned(),
            }
            .render(cx, links),
        );
    }
    if task.state.is_live() {
        out.push_str(
            &Action {
                path: format!("/tasks/{id}/cancel"),
                label: "Cancel",
                confirm: if task.state == TaskState::Running {
                    format!("Cancel task #{id}? Its cancellation token fires and its result is discarded.")
                } else {
                    format!("Cancel task #{id}? It will not run.")
                },
                class: "btn-warn",
                fields: Vec::new(),
                back: back.to_owned(),
            }
            .render(cx, links),
        );
    }
    if step_run(&task.payload).is_none() {
        let list = links.to(&format!("/tasks?queue={}", pct(&task.queue)));
        let first =
            if task.state.is_live() { format!(" It is {}: it is cancelled first.", task.state) } else { String::new() };
        out.push_str(
            &Action {
                path: format!("/tasks/{id}/delete"),
                label: "Delete",
                confirm: format!("Delete task #{id} for good?{first}"),
                class: "btn-danger",
                fields: Vec::new(),
                back: list,
            }
            .render(cx, links),
        );
    }
    out
}

fn attempts(task: &TaskInfo) -> String {
    let mut out = format!(r#"<span class="pips" title="attempt {} of {}">"#, task.attempt, task.max_attempts);
    let shown = task.max_attempts.min(PIPS);
    for i in 1..=shown {
        let class = if i < task.attempt {
            "pip failed"
        } else if i == task.attempt {
            match task.state {
                TaskState::Done => "pip s-done",
                TaskState::Running => "pip s-running",
                TaskState::Dead => "pip s-dead",
                TaskState::Cancelled => "pip s-cancelled",
                TaskState::Retry | TaskState::Pending => "pip failed",
            }
        } else {
            "pip"
        };
        let _ = write!(out, r#"<i class="{class}"></i>"#);
    }
    let _ = write!(
        out,
        r#"</span> <span id="attempt">{} of {}</span>{}"#,
        task.attempt,
        task.max_attempts,
        if task.max_attempts > PIPS { " (first 30 shown)" } else { "" }
    );
    out
}

fn timeline(task: &TaskInfo, now: Timestamp) -> String {
    let mut out = String::from(r#"<section class="card"><h2>Timeline</h2><ol class="timeline">"#);
    let _ = write!(
        out,
        r#"<li class="done"><span class="when">{}</span><b>Created</b><span class="muted">{} UTC</span></li>"#,
        time(task.created_at, now),
        utc(task.created_at)
    );
    let (label, reached) = match task.state {
        TaskState::Pending => ("Due", task.run_at <= now),
        TaskState::Retry => ("Next attempt", false),
        TaskState::Running => ("Claimed (due)", true),
        TaskState::Done | TaskState::Dead | TaskState::Cancelled => ("Last due", true),
    };
    let wait = task.run_at.as_millis() - task.created_at.as_millis();
    let _ = write!(
        out,
        r#"<li class="{}"><span class="when">{}</span><b>{label}</b><span class="muted">{} UTC{}</span></li>"#,
        if reached { "done" } else { "next" },
        time(task.run_at, now),
        utc(task.run_at),
        if wait > 0 { format!(" · {} after creation", span(wait)) } else { String::new() }
    );
    match task.finished_at {
        Some(finished) => {
            let _ = write!(
                out,
                r#"<li class="done {cls}"><span class="when">{}</span><b>Finished: {state}</b><span class="muted">{} UTC · {} after creation</span></li>"#,
                time(finished, now),
                utc(finished),
                span(finished.as_millis() - task.created_at.as_millis()),
                cls = state_class(task.state),
                state = task.state,
            );
        }
        None => out.push_str(
            r#"<li class="next"><span class="when">–</span><b>Finished</b><span class="muted">not yet</span></li>"#,
        ),
    }
    out.push_str("</ol></section>");
    out
}
