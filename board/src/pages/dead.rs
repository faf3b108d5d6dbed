//! Dead tasks with their errors; retry one, or all of a queue or job.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use errand_runtime::{TaskFilter, TaskId, TaskState, Timestamp};

use super::{Action, Here, Nav, Page, failure, queue_options, shell};
use crate::html::{Esc, first_line, num, pct, time};
use crate::{BoardBackend, Ctx};

const PAGE: u32 = 50;

/// Query of the dead tasks page.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct DeadQuery {
    queue: Option<String>,
    job: Option<String>,
    after: Option<u64>,
}

/// `GET /dead`.
pub(crate) async fn dead<B: BoardBackend>(
    State(cx): State<Arc<Ctx<B>>>,
    here: Here,
    Query(query): Query<DeadQuery>,
) -> Response {
    let links = here.links(&cx);
    let queue = query.queue.filter(|q| !q.trim().is_empty());
    let job = query.job.map(|j| j.trim().to_owned()).filter(|j| !j.is_empty());
    let counts = match cx.backend.counts().await {
        Ok(counts) => counts,
        Err(error) => return failure(&cx, &here, "reading the counts", &error),
    };
    let filter = TaskFilter {
        queue: queue.clone(),
        job: job.clone(),
        state: Some(TaskState::Dead),
        limit: PAGE,
        after: query.after.map(TaskId),
    };
    let tasks = match cx.backend.tasks(&filter).await {
        Ok(tasks) => tasks,
        Err(error) => return failure(&cx, &here, "listing dead tasks", &error),
    };
    let now = Timestamp::now();
    let total: u64 = counts.iter().map(|c| c.dead).sum();
    let mut body =
        format!(r#"<h1 class="page-title">Dead tasks <span class="count-pill s-dead">{}</span></h1>"#, num(total));

    let with_dead: Vec<_> = counts.iter().filter(|c| c.dead > 0).collect();
    if !with_dead.is_empty() {
        body.push_str(r#"<section class="queue-chips">"#);
        for c in with_dead {
            let _ = write!(
                body,
                r#"<div class="chip"><a href="{}"><b>{}</b> <span class="count-pill s-dead">{}</span></a>{}</div>"#,
                Esc(&links.to(&format!("/dead?queue={}", pct(&c.queue)))),
                Esc(&c.queue),
                num(c.dead),
                Action {
                    path: "/dead/retry".to_owned(),
                    label: "Retry all",
                    confirm: format!("Retry all {} dead tasks of queue “{}”?", c.dead, c.queue),
                    class: "btn-small btn-ok",
                    fields: vec![("queue", c.queue.clone())],
                    back: here.back.clone(),
                }
                .render(&cx, &links)
            );
        }
        body.push_str("</section>");
    }

    let _ = write!(
        body,
        r#"<form class="filters card" method="get" action="{}"><label>Queue <select name="queue">{}</select></label><label>Job <input name="job" value="{}" placeholder="any job"></label><button type="submit" class="btn">Filter</button>"#,
        Esc(&links.to("/dead")),
        queue_options(&counts, queue.as_deref()),
        Esc(job.as_deref().unwrap_or("")),
    );
    if queue.is_some() || job.is_some() {
        let _ = write!(body, r#"<a class="btn btn-subtle" href="{}">Clear</a>"#, Esc(&links.to("/dead")));
    }
    body.push_str("</form>");
    if !tasks.is_empty() && (queue.is_some() || job.is_some()) {
        let what = match (&queue, &job) {
            (Some(q), Some(j)) => format!("of job “{j}” in queue “{q}”"),
            (Some(q), None) => format!("of queue “{q}”"),
            (None, Some(j)) => format!("of job “{j}”"),
            (None, None) => String::new(),
        };
        let mut fields = Vec::new();
        if let Some(q) = &queue {
            fields.push(("queue", q.clone()));
        }
        if let Some(j) = &job {
            fields.push(("job", j.clone()));
        }
        let _ = write!(
            body,
            r#"<div class="bulk">{}</div>"#,
            Action {
                path: "/dead/retry".to_owned(),
                label: "Retry all dead tasks matching this filter",
                confirm: format!("Retry every dead task {what}?"),
                class: "btn-ok",
                fields,
                back: here.back.clone(),
            }
            .render(&cx, &links)
        );
    }

    body.push_str(
        r#"<section class="card"><div class="table-wrap"><table class="dead"><thead><tr><th>Task</th><th>Job</th><th>Queue</th><th>Attempts</th><th>Died</th><th>Error</th><th class="actions"></th></tr></thead><tbody>"#,
    );
    if tasks.is_empty() {
        body.push_str(r#"<tr class="empty-row"><td colspan="7">No dead tasks. 🎉</td></tr>"#);
    }
    for t in &tasks {
        let error = t.last_error.as_deref().unwrap_or("");
        let _ = write!(
            body,
            r#"<tr><td><a href="{href}">#{id}</a></td><td>{job}</td><td>{queue}</td><td>{a}/{m}</td><td>{died}</td><td class="error-cell"><details><summary>{summary}</summary><pre class="error">{error}</pre></details></td><td class="actions">{retry}</td></tr>"#,
            href = Esc(&links.to(&format!("/tasks/{}", t.id))),
            id = t.id,
            job = Esc(&t.job),
            queue = Esc(&t.queue),
            a = t.attempt,
            m = t.max_attempts,
            died = t.finished_at.map_or_else(|| "–".to_owned(), |f| time(f, now)),
            summary = Esc(&first_line(error, 140)),
            error = Esc(error),
            retry = Action {
                path: format!("/tasks/{}/retry", t.id),
                label: "Retry",
                confirm: format!("Retry task #{}?", t.id),
                class: "btn-small btn-ok",
                fields: Vec::new(),
                back: here.back.clone(),
            }
            .render(&cx, &links),
        );
    }
    body.push_str("</tbody></table></div>");
    body.push_str(r#"<div class="pager">"#);
    let mut params = String::new();
    if let Some(q) = &queue {
        let _ = write!(params, "&queue={}", pct(q));
    }
    if let Some(j) = &job {
        let _ = write!(params, "&job={}", pct(j));
    }
    if query.after.is_some() {
        let first = if params.is_empty() { "/dead".to_owned() } else { format!("/dead?{}", &params[1..]) };
        let _ = write!(body, r#"<a class="btn btn-subtle" href="{}">⇤ First page</a>"#, Esc(&links.to(&first)));
    }
    if tasks.len() as u32 == PAGE
        && let Some(last) = tasks.last()
    {
        let _ = write!(
            body,
            r#"<a class="btn" rel="next" href="{}">Next page →</a>"#,
            Esc(&links.to(&format!("/dead?after={}{params}", last.id)))
        );
    }
    body.push_str("</div></section>");
    shell(&cx, &here, &Page { title: "Dead tasks", nav: Nav::Dead, live: None }, &body)
}
