//! Workflow runs: the list, and one run with its steps and its graph.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use errand_runtime::workflow::{RunFilter, RunId, RunInfo, RunState, StepInfo};
use errand_runtime::{TaskState, Timestamp};

use super::{Here, Live, Nav, Page, failure, not_found, shell};
use crate::api::{etag, run_json};
use crate::html::{Esc, Links, first_line, num, pct, state_badge, stored_value, time, utc};
use crate::{BoardBackend, Ctx, dag};

const PAGE: u32 = 50;

fn run_badge(state: RunState) -> String {
    let class = match state {
        RunState::Running => "s-running",
        RunState::Done => "s-done",
        RunState::Failed => "s-dead",
    };
    format!(r#"<span class="badge {class}" data-state="{s}">{s}</span>"#, s = state.as_str())
}

/// Query of the runs list.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct RunsQuery {
    workflow: Option<String>,
    state: Option<String>,
    before: Option<u64>,
}

/// `GET /runs`.
pub(crate) async fn runs<B: BoardBackend>(
    State(cx): State<Arc<Ctx<B>>>,
    here: Here,
    Query(query): Query<RunsQuery>,
) -> Response {
    let links = here.links(&cx);
    let workflow = query.workflow.map(|w| w.trim().to_owned()).filter(|w| !w.is_empty());
    let state = query.state.as_deref().and_then(RunState::parse);
    let filter = RunFilter { workflow: workflow.clone(), state, limit: PAGE, before: query.before.map(RunId) };
    let runs = match cx.backend.runs(&filter).await {
        Ok(runs) => runs,
        Err(error) => return failure(&cx, &here, "listing workflow runs", &error),
    };
    let now = Timestamp::now();
    let mut body = String::from(r#"<h1 class="page-title">Workflow runs</h1>"#);
    let _ = write!(
        body,
        r#"<form class="filters card" method="get" action="{}"><label>Workflow <input name="workflow" value="{}" placeholder="any workflow"></label><label>State <select name="state"><option value="">any state</option>"#,
        Esc(&links.to("/runs")),
        Esc(workflow.as_deref().unwrap_or(""))
    );
    for s in [RunState::Running, RunState::Done, RunState::Failed] {
        let sel = if Some(s) == state { " selected" } else { "" };
        let _ = write!(body, r#"<option value="{v}"{sel}>{v}</option>"#, v = s.as_str());
    }
    body.push_str(r#"</select></label><button type="submit" class="btn">Filter</button>"#);
    if workflow.is_some() || state.is_some() {
        let _ = write!(body, r#"<a class="btn btn-subtle" href="{}">Clear</a>"#, Esc(&links.to("/runs")));
    }
    body.push_str("</form>");
    body.push_str(
        r#"<section class="card"><div class="table-wrap"><table class="runs"><thead><tr><th>Run</th><th>Workflow</th><th>State</th><th>Steps</th><th>Started</th><th>Error</th></tr></thead><tbody>"#,
    );
    if runs.is_empty() {
        body.push_str(r#"<tr class="empty-row"><td colspan="6">No workflow runs match.</td></tr>"#);
    }
    for run in &runs {
        let _ = write!(
            body,
            r#"<tr><td><a href="{href}">#{id}</a></td><td><a href="{whref}">{wf}</a></td><td>{badge}</td><td>{steps}</td><td>{started}</td><td class="error-line">{error}</td></tr>"#,
            href = Esc(&links.to(&format!("/runs/{}", run.id))),
            id = run.id,
            whref = Esc(&links.to(&format!("/runs?workflow={}", pct(&run.workflow)))),
            wf = Esc(&run.workflow),
            badge = run_badge(run.state),
            steps = step_bar(&run.steps),
            started = time(run.created_at, now),
            error = Esc(&run.error.as_deref().map(|e| first_line(e, 100)).unwrap_or_default()),
        );
    }
    body.push_str("</tbody></table></div>");
    body.push_str(r#"<div class="pager">"#);
    let mut params = String::new();
    if let Some(w) = &workflow {
        let _ = write!(params, "&workflow={}", pct(w));
    }
    if let Some(s) = state {
        let _ = write!(params, "&state={}", s.as_str());
    }
    if query.before.is_some() {
        let first = if params.is_empty() { "/runs".to_owned() } else { format!("/runs?{}", &params[1..]) };
        let _ = write!(body, r#"<a class="btn btn-subtle" href="{}">⇤ Newest</a>"#, Esc(&links.to(&first)));
    }
    if runs.len() as u32 == PAGE
        && let Some(last) = runs.last()
    {
        let _ = write!(
            body,
            r#"<a class="btn" rel="next" href="{}">Older →</a>"#,
            Esc(&links.to(&format!("/runs?before={}{params}", last.id)))
        );
    }
    body.push_str("</div></section>");
    shell(&cx, &here, &Page { title: "Workflow runs", nav: Nav::Runs, live: None }, &body)
}

/// A stacked bar of the steps' states, and "done/total".
fn step_bar(steps: &[StepInfo]) -> String {
    let total = steps.len().max(1) as f64;
    let mut x = 0.0;
    let mut out = String::from(
        r#"<span class="steps-bar"><svg viewBox="0 0 100 8" width="90" height="8" aria-hidden="true"><rect class="track" width="100" height="8" rx="4"/>"#,
    );
    for state in [
        TaskState::Done,
        TaskState::Running,
        TaskState::Retry,
        TaskState::Pending,
        TaskState::Dead,
        TaskState::Cancelled,
    ] {
        let n = steps.iter().filter(|s| s.state == Some(state)).count();
        if n == 0 {
            continue;
        }
        let w = n as f64 / total * 100.0;
        let _ = write!(
            out,
            r#"<rect class="seg {}" x="{x:.1}" width="{w:.1}" height="8"/>"#,
            crate::html::state_class(state)
        );
        x += w;
    }
    let done = steps.iter().filter(|s| s.state == Some(TaskState::Done)).count();
    let _ = write!(out, "</svg> {done}/{}</span>", steps.len());
    out
}

/// `GET /runs/{id}`.
pub(crate) async fn run<B: BoardBackend>(State(cx): State<Arc<Ctx<B>>>, here: Here, Path(id): Path<u64>) -> Response {
    let run = match cx.backend.run_info(RunId(id)).await {
        Ok(Some(run)) => run,
        Ok(None) => {
            return not_found(
                &cx,
                &here,
                &format!("There is no workflow run #{id}: finished runs are purged after the retention period."),
            );
        }
        Err(error) => return failure(&cx, &here, &format!("reading workflow run {id}"), &error),
    };
    let links = here.links(&cx);
    let now = Timestamp::now();
    let mut body = format!(
        r#"<div class="title-row"><h1 class="page-title">Run #{id} <span class="muted">{}</span> {}</h1></div>"#,
        Esc(&run.workflow),
        run_badge(run.state)
    );
    let _ = write!(
        body,
        r#"<section class="card"><dl class="kv kv-inline"><dt>Workflow</dt><dd><a href="{}">{}</a></dd><dt>Started</dt><dd>{} <span class="muted">{} UTC</span></dd><dt>Steps</dt><dd>{}</dd></dl>"#,
        Esc(&links.to(&format!("/runs?workflow={}", pct(&run.workflow)))),
        Esc(&run.workflow),
        time(run.created_at, now),
        utc(run.created_at),
        step_bar(&run.steps),
    );
    if let Some(error) = &run.error {
        let _ = write!(body, r#"<pre class="error">{}</pre>"#, Esc(error));
    }
    body.push_str("</section>");
    let _ = write!(
        body,
        r#"<section class="card"><div class="card-head"><h2>Graph</h2>{}</div><div class="dag-wrap">{}</div></section>"#,
        legend(),
        dag::svg(&run.steps, &links)
    );
    body.push_str(&steps_table(&run, &links));
    let json = run_json(&run);
    let live =
        Live { kind: "run", poll: format!("/api/runs/{id}"), etag: etag(&json), state: run.state.as_str().to_owned() };
    let title = format!("Run #{id}");
    shell(&cx, &here, &Page { title: &title, nav: Nav::Runs, live: Some(live) }, &body)
}

fn legend() -> String {
    let mut out = String::from(r#"<div class="legend-row">"#);
    for (class, label) in [
        ("s-waiting", "waiting"),
        ("s-pending", "pending"),
        ("s-running", "running"),
        ("s-retry", "retry"),
        ("s-done", "done"),
        ("s-dead", "dead"),
        ("s-cancelled", "cancelled"),
    ] {
        let _ = write!(out, r#"<span class="key {class}"><i></i>{label}</span>"#);
    }
    out.push_str("</div>");
    out
}

fn steps_table(run: &RunInfo, links: &Links) -> String {
    let mut out = String::from(
        r#"<section class="card"><h2>Steps</h2><div class="table-wrap"><table class="steps"><thead><tr><th>Step</th><th>After</th><th>State</th><th>Task</th><th>Attempt</th><th>Error</th><th>Output</th></tr></thead><tbody>"#,
    );
    for s in &run.steps {
        let after = if s.after.is_empty() {
            r#"<span class="muted">input</span>"#.to_owned()
        } else {
            s.after.iter().map(|a| Esc(a).to_string()).collect::<Vec<_>>().join(", ")
        };
        let _ = write!(
            out,
            r#"<tr><td><b>{name}</b></td><td>{after}</td><td>{state}</td><td>{task}</td><td>{attempt}</td><td class="error-line">{error}</td><td>{output}</td></tr>"#,
            name = Esc(&s.name),
            state = s.state.map_or_else(|| r#"<span class="badge s-waiting">waiting</span>"#.to_owned(), state_badge),
            task = s.task.map_or_else(
                || "–".to_owned(),
                |t| format!(r#"<a href="{}">#{t}</a>"#, Esc(&links.to(&format!("/tasks/{t}"))))
            ),
            attempt = if s.task.is_some() { num(u64::from(s.attempt)) } else { "–".to_owned() },
            error = Esc(&s.error.as_deref().map(|e| first_line(e, 100)).unwrap_or_default()),
            output = s.output.as_deref().map_or_else(
                || "–".to_owned(),
                |o| format!(
                    r#"<details><summary>{} bytes</summary>{}</details>"#,
                    num(o.len() as u64),
                    stored_value(o)
                )
            ),
        );
    }
    out.push_str("</tbody></table></div></section>");
    out
}
