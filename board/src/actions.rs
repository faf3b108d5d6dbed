//! The actions: POST forms carrying the board's CSRF token, each answered
//! with a redirect back to the page it came from and a notice.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, extract::rejection::FormRejection};
use errand_runtime::{Error, TaskFilter, TaskId, TaskState};

use crate::auth::same_secret;
use crate::html::{Esc, step_run};
use crate::pages::{Here, Nav, Page, failure, shell};
use crate::{BoardBackend, Ctx};

/// Dead tasks retried per listing when retrying all of a queue or job.
const BATCH: u32 = 500;

/// The fields of every action form.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    back: String,
    queue: Option<String>,
    job: Option<String>,
}

/// Checks the form and its CSRF token; on failure, the page that says why.
fn check<B: BoardBackend>(
    cx: &Ctx<B>,
    here: &Here,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Result<ActionForm, Box<Response>> {
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) => {
            let why = format!("The form could not be read: {rejection}.");
            return Err(Box::new(refuse(cx, here, StatusCode::BAD_REQUEST, &why)));
        }
    };
    if !same_secret(&form.csrf, &cx.shared.csrf) {
        return Err(Box::new(refuse(
            cx,
            here,
            StatusCode::FORBIDDEN,
            "The form's CSRF token is missing or wrong (the board may have restarted): reload the page and try again.",
        )));
    }
    Ok(form)
}

fn refuse<B: BoardBackend>(cx: &Ctx<B>, here: &Here, status: StatusCode, why: &str) -> Response {
    let body = format!(r#"<section class="card error-card"><h1>Nothing was changed</h1><p>{}</p></section>"#, Esc(why));
    let mut response = shell(cx, here, &Page { title: "Refused", nav: Nav::None, live: None }, &body);
    *response.status_mut() = status;
    response
}

/// Where to go after an action: the form's `back` if it is a path on this
/// site, else the overview; with the notice to show there.
fn back<B>(cx: &Ctx<B>, here: &Here, form: &ActionForm, notice: &str, n: u64) -> Response {
    let b = form.back.as_str();
    let safe = b.starts_with('/') && !b.starts_with("//") && !b.starts_with("/\\") && !b.chars().any(char::is_control);
    let target = if safe { b.to_owned() } else { here.links(cx).to("/") };
    let sep = if target.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{target}{sep}notice={notice}&n={n}")).into_response()
}

fn queue<B: BoardBackend>(cx: &Ctx<B>, here: &Here, form: &ActionForm) -> Result<String, Box<Response>> {
    form.queue
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| Box::new(refuse(cx, here, StatusCode::BAD_REQUEST, "The form names no queue.")))
}

/// `POST /tasks/{id}/retry`: a dead or cancelled task goes back to pending.
pub(crate) async fn retry<B: BoardBackend>(
    State(cx): State<Arc<Ctx<B>>>,
    here: Here,
    Path(id): Path<u64>,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    let form = match check(&cx, &here, form) {
        Ok(form) => form,
        Err(response) => return *response,
    };
    match cx.backend.retry_task(TaskId(id)).await {
        Ok(true) => back(&cx, &here, &form, "retried", id),
        Ok(false) => back(&cx, &here, &form, "not-retried", id),
        Err(error) => failure(&cx, &here, &format!("retrying task {id}"), &error),
    }
}

/// `POST /tasks/{id}/cancel`: a pending, retrying or running task is cancelled.
pub(crate) async fn cancel<B: BoardBackend>(
    State(cx): State<Arc<Ctx<B>>>,
    here: Here,
    Path(id): Path<u64>,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    let form = match check(&cx, &here, form) {
        Ok(form) => form,
        Err(response) => return *response,
    };
    match cx.backend.cancel_task(TaskId(id)).await {
        Ok(true) => back(&cx, &here, &form, "cancelled", id),
        Ok(false) => back(&cx, &here, &form, "not-cancelled", id),
        Err(error) => failure(&cx, &here, &format!("cancelling task {id}"), &error),
    }
}

/// `POST /tasks/{id}/delete`: the task is deleted; a live one is cancelled
/// first. A workflow step's task is not (it goes with its run).
pub(crate) async fn delete<B: BoardBackend>(
    State(cx): State<Arc<Ctx<B>>>,
    here: Here,
    Path(id): Path<u64>,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    let form = match check(&cx, &here, form) {
        Ok(form) => form,
        Err(response) => return *response,
    };
    let task = match cx.backend.task(TaskId(id)).await {
        Ok(Some(task)) => task,
        Ok(None) => return back(&cx, &here, &form, "not-deleted", id),
        Err(error) => return failure(&cx, &here, &format!("reading task {id} to delete it"), &error),
    };
    if step_run(&task.payload).is_some() {
        return back(&cx, &here, &form, "not-deleted-step", id);
    }
    if task.state.is_live()
        && let Err(error) = cx.backend.cancel_task(TaskId(id)).await
    {
        return failure(&cx, &here, &format!("cancelling task {id} to delete it"), &error);
    }
    match cx.backend.delete_task(TaskId(id)).await {
        Ok(true) => back(&cx, &here, &form, "deleted", id),
        Ok(false) => back(&cx, &here, &form, "not-deleted", id),
        Err(error) => failure(&cx, &here, &format!("deleting task {id}"), &error),
    }
}

/// Retries every dead task matching `queue` and `job`; how many it retried.
async fn retry_all_dead<B: BoardBackend>(
    cx: &Ctx<B>,
    queue: Option<String>,
    job: Option<String>,
) -> Result<u64, Error> {
    let mut filter = TaskFilter { queue, job, state: Some(TaskState::Dead), limit: BATCH, after: None };
    let mut retried = 0;
    loop {
        let page = cx.backend.tasks(&filter).await?;
        for task in &page {
            if cx.backend.retry_task(task.id).await? {
                retried += 1;
            }
        }
        match page.last() {
            Some(last) if page.len() == BATCH as usize => filter.after = Some(last.id),
            _ => return Ok(retried),
        }
    }
}

/// `POST /dead/retry` (fields `queue`, `job`, both optional): every dead
/// task of the queue and job goes back to pending.
pub(crate) async fn retry_dead<B: BoardBackend>(
    State(cx): State<Arc<Ctx<B>>>,
    here: Here,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    let form = match check(&cx, &here, form) {
        Ok(form) => form,
        Err(response) => return *response,
    };
    let clean = |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    let (queue, job) = (clean(&form.queue), clean(&form.job));
    let what = match (&queue, &job) {
        (Some(q), Some(j)) => format!("retrying the dead tasks of job `{j}` in queue `{q}`"),
        (Some(q), None) => format!("retrying the dead tasks of queue `{q}`"),
        (None, Some(j)) => format!("retrying the dead tasks of job `{j}`"),
        (None, None) => "retrying every dead task".to_owned(),
    };
    match retry_all_dead(&cx, queue, job).await {
        Ok(n) => back(&cx, &here, &form, "retried-dead", n),
        Err(error) => failure(&cx, &here, &what, &error),
    }
}

/// `POST /queues/pause` (field `queue`).
pub(crate) async fn pause<B: BoardBackend>(
    State(cx): State<Arc<Ctx<B>>>,
    here: Here,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    let form = match check(&cx, &here, form) {
        Ok(form) => form,
        Err(response) => return *response,
    };
    let queue = match queue(&cx, &here, &form) {
        Ok(queue) => queue,
        Err(response) => return *response,
    };
    match cx.backend.pause_queue(&queue).await {
        Ok(()) => back(&cx, &here, &form, "paused", 0),
        Err(error) => failure(&cx, &here, &format!("pausing queue `{queue}`"), &error),
    }
}

/// `POST /queues/resume` (field `queue`).
pub(crate) async fn resume<B: BoardBackend>(
    State(cx): State<Arc<Ctx<B>>>,
    here: Here,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    let form = match check(&cx, &here, form) {
        Ok(form) => form,
        Err(response) => return *response,
    };
    let queue = match queue(&cx, &here, &form) {
        Ok(queue) => queue,
        Err(response) => return *response,
    };
    match cx.backend.resume_queue(&queue).await {
        Ok(()) => back(&cx, &here, &form, "resumed", 0),
        Err(error) => failure(&cx, &here, &format!("resuming queue `{queue}`"), &error),
    }
}
