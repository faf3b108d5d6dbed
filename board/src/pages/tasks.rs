//! The task list, filtered and paged by id, and the search by id or unique
//! key.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use errand_runtime::{TaskFilter, TaskId, TaskInfo, TaskState, Timestamp};

use super::{Here, Nav, Page, failure, queue_options, shell};
use crate::html::{Esc, Links, first_line, num, pct, state_badge, time};
use crate::{BoardBackend, Ctx};

/// Tasks per page unless `limit` says otherwise.
const PAGE: u32 = 50;
/// Most tasks per page.
const MAX_PAGE: u32 = 500;

/// Query of the task list.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct TasksQuery {
    queue: Option<String>,
    job: Option<String>,
    state: Option<String>,
    after: Option<u64>,
    limit: Option<u32>,
}

fn non_empty(s: Option<&String>) -> Option<String> {
    s.map(|s| s.trim()).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// `GET /tasks`.
pub(crate) async fn tasks<B: BoardBackend>(
    State(cx): State<Arc<Ctx<B>>>,
    here: Here,
    Query(query): Query<TasksQuery>,
) -> Response {
    let links = here.links(&cx);
    let state = match query.state.as_deref().filter(|s| !s.is_empty()).map(str::parse::<TaskState>) {
        Some(Ok(state)) => Some(state),
        Some(Err(error)) => {
            return super::not_found(&cx, &here, &error.to_string());
        }
        None => None,
    };
    let limit = query.limit.unwrap_or(PAGE).clamp(1, MAX_PAGE);
    let filter = TaskFilter {
        queue: non_empty(query.queue.as_ref()),
        job: non_empty(query.job.as_ref()),
        state,
        limit,
        after: query.after.map(TaskId),
    };
    let counts = match cx.backend.counts().await {
        Ok(counts) => counts,
        Err(error) => return failure(&cx, &here, "reading the counts", &error),
    };
    let tasks = match cx.backend.tasks(&filter).await {
        Ok(tasks) => tasks,
        Err(error) => return failure(&cx, &here, "listing tasks", &error),
    };
    let now = Timestamp::now();
    let mut body = String::from(r#"<h1 class="page-title">Tasks</h1>"#);
    let _ = write!(
        body,
        r#"<form class="filters card" method="get" action="{action}"><label>Queue <select name="queue">{queues}</select></label><label>Job <input name="job" value="{job}" placeholder="any job"></label><label>State <select name="state"><option value="">any state</option>"#,
        action = Esc(&links.to("/tasks")),
        queues = queue_options(&counts, filter.queue.as_deref()),
        job = Esc(filter.job.as_deref().unwrap_or("")),
    );
    for s in TaskState::ALL {
        let sel = if Some(s) == state { " selected" } else { "" };
        let _ = write!(body, r#"<option value="{s}"{sel}>{s}</option>"#);
    }
    body.push_str(r#"</select></label><button type="submit" class="btn">Filter</button>"#);
    if filter.queue.is_some() || filter.job.is_some() || state.is_some() {
        let _ = write!(body, r#"<a class="btn btn-subtle" href="{}">Clear</a>"#, Esc(&links.to("/tasks")));
    }
    body.push_str("</form>");

    body.push_str(r#"<section class="card">"#);
    body.push_str(&task_table(&links, &tasks, now, true));
    let mut params = String::new();
    for (k, v) in [("queue", &filter.queue), ("job", &filter.job)] {
        if let Some(v) = v {
            let _ = write!(params, "&{k}={}", pct(v));
        }
    }
    if let Some(s) = state {
        let _ = write!(params, "&state={s}");
    }
    if limit != PAGE {
        let _ = write!(params, "&limit={limit}");
    }
    body.push_str(r#"<div class="pager">"#);
    if filter.after.is_some() {
        let first = if params.is_empty() { "/tasks".to_owned() } else { format!("/tasks?{}", &params[1..]) };
        let _ = write!(body, r#"<a class="btn btn-subtle" href="{}">⇤ First page</a>"#, Esc(&links.to(&first)));
    }
    let _ = write!(
        body,
        r#"<span class="muted">{} task{} shown{}</span>"#,
        num(tasks.len() as u64),
        if tasks.len() == 1 { "" } else { "s" },
        filter.after.map_or_else(String::new, |a| format!(", after #{a}"))
    );
    if tasks.len() as u32 == limit
        && let Some(last) = tasks.last()
    {
        let _ = write!(
            body,
            r#"<a class="btn" rel="next" href="{}">Next page →</a>"#,
            Esc(&links.to(&format!("/tasks?after={}{params}", last.id)))
        );
    }
    body.push_str("</div></section>");
    shell(&cx, &here, &Page { title: "Tasks", nav: Nav::Tasks, live: None }, &body)
}

/// A table of tasks; `error` adds the last error's first line.
pub(crate) fn task_table(links: &Links, tasks: &[TaskInfo], now: Timestamp, error: bool) -> String {
    let mut out = String::from(
        r#"<div class="table-wrap"><table class="tasks"><thead><tr><th>Task</th><th>Job</th><th>Queue</th><th>State</th><th>Attempt</th><th>Due</th><th>Created</th>"#,
    );
    if error {
        out.push_str("<th>Last error</th>");
    }
    out.push_str("</tr></thead><tbody>");
    if tasks.is_empty() {
        let _ = write!(
            out,
            r#"<tr class="empty-row"><td colspan="{}">No tasks match.</td></tr>"#,
            if error { 8 } else { 7 }
        );
    }
    for t in tasks {
        let _ = write!(
            out,
            r#"<tr><td><a href="{href}">#{id}</a></td><td>{job}</td><td>{queue}</td><td>{state}</td><td>{a}/{m}</td><td>{due}</td><td>{created}</td>"#,
            href = Esc(&links.to(&format!("/tasks/{}", t.id))),
            id = t.id,
            job = Esc(&t.job),
            queue = Esc(&t.queue),
            state = state_badge(t.state),
            a = t.attempt,
            m = t.max_attempts,
            due = time(t.run_at, now),
            created = time(t.created_at, now),
        );
        if error {
            let _ = write!(
                out,
                r#"<td class="error-line">{}</td>"#,
                Esc(&t.last_error.as_deref().map(|e| first_line(e, 120)).unwrap_or_default())
            );
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    out
}

/// Query of the search.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct SearchQuery {
    #[serde(default)]
    q: String,
}

/// Tasks read at most when searching by unique key, 500 at a time.
const SCAN_LIMIT: usize = 20_000;
/// Matches shown at most.
const MATCHES: usize = 100;

/// `GET /search?q=`: a task id goes to the task; anything else is looked
/// for as a unique key (exact matches first, then keys containing it).
pub(crate) async fn search<B: BoardBackend>(
    State(cx): State<Arc<Ctx<B>>>,
    here: Here,
    Query(query): Query<SearchQuery>,
) -> Response {
    let links = here.links(&cx);
    let q = query.q.trim();
    if q.is_empty() {
        return Redirect::to(&links.to("/tasks")).into_response();
    }
    if let Ok(id) = q.trim_start_matches('#').parse::<u64>() {
        match cx.backend.task(TaskId(id)).await {
            Ok(Some(_)) => return Redirect::to(&links.to(&format!("/tasks/{id}"))).into_response(),
            Ok(None) => {}
            Err(error) => return failure(&cx, &here, &format!("reading task {id}"), &error),
        }
    }
    // `Expose` has no lookup by unique key: read the tasks in id order, in
    // pages, up to a bound.
    let mut exact = Vec::new();
    let mut partial = Vec::new();
    let mut after = None;
    let mut scanned = 0;
    let complete = loop {
        let filter = TaskFilter { limit: 500, after, ..TaskFilter::default() };
        let page = match cx.backend.tasks(&filter).await {
            Ok(page) => page,
            Err(error) => return failure(&cx, &here, "listing tasks to search their unique keys", &error),
        };
        scanned += page.len();
        let full = page.len() == 500;
        after = page.last().map(|t| t.id);
        for t in page {
            match t.unique_key.as_deref() {
                Some(key) if key == q => exact.push(t),
                Some(key) if key.contains(q) => partial.push(t),
                _ => {}
            }
        }
        if !full {
            break true;
        }
        if scanned >= SCAN_LIMIT || exact.len() + partial.len() >= MATCHES {
            break false;
        }
    };
    if exact.len() == 1 && partial.is_empty() {
        return Redirect::to(&links.to(&format!("/tasks/{}", exact[0].id))).into_response();
    }
    exact.append(&mut partial);
    exact.truncate(MATCHES);
    let mut body = format!(
        r#"<h1 class="page-title">Search <span class="muted">“{}”</span></h1><section class="card"><p class="muted">"#,
        Esc(q)
    );
    let _ = write!(
        body,
        "{} task{} with this unique key or one containing it; {} task{} looked at{}.",
        num(exact.len() as u64),
        if exact.len() == 1 { "" } else { "s" },
        num(scanned as u64),
        if scanned == 1 { "" } else { "s" },
        if complete { " (all of them)" } else { ", the oldest first: there are more" }
    );
    body.push_str("</p>");
    body.push_str(&task_table(&links, &exact, Timestamp::now(), true));
    body.push_str("</section>");
    shell(&cx, &here, &Page { title: "Search", nav: Nav::Tasks, live: None }, &body)
}
