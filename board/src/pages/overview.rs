//! The overview: totals, charts, queues and the running tasks, all live.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use errand_runtime::{QueueCounts, TaskInfo, TaskState, Timestamp};

use super::{Action, Here, Live, Nav, Page, failure, shell};
use crate::api::{Overview, RUNNING_SHOWN, etag};
use crate::html::{Esc, Links, esc, num, pct, state_class, time};
use crate::sampler::Range;
use crate::{BoardBackend, Ctx};

/// Query of the overview.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct OverviewQuery {
    range: Option<String>,
}

/// `GET /`.
pub(crate) async fn overview<B: BoardBackend>(
    State(cx): State<Arc<Ctx<B>>>,
    here: Here,
    Query(query): Query<OverviewQuery>,
) -> Response {
    let data = match Overview::read(&cx).await {
        Ok(data) => data,
        Err((what, error)) => return failure(&cx, &here, what, &error),
    };
    let links = here.links(&cx);
    let now = Timestamp::now();
    let range = Range::parse(query.range.as_deref());
    let json = data.json();
    let mut body = String::new();

    let mut totals = QueueCounts::default();
    for c in &data.counts {
        for state in TaskState::ALL {
            *totals.get_mut(state) += c.get(state);
        }
    }
    let (charts, rate) = {
        let samples = cx.samples();
        (samples.charts(range), samples.recent_rate())
    };
    body.push_str(r#"<h1 class="page-title">Overview</h1><section class="stats">"#);
    for state in [TaskState::Pending, TaskState::Running, TaskState::Retry, TaskState::Dead, TaskState::Done] {
        let _ = write!(
            body,
            r#"<a class="stat {cls}" href="{href}"><span class="label">{state}</span><span class="value" data-total="{state}">{n}</span></a>"#,
            cls = state_class(state),
            href = Esc(&links.to(&format!("/tasks?state={state}"))),
            n = num(totals.get(state)),
        );
    }
    let _ = write!(
        body,
        r#"<a class="stat s-workers" href="{}"><span class="label">workers</span><span class="value" data-total="workers">{}</span></a><div class="stat s-rate"><span class="label">finished / min</span><span class="value" id="rate">{}</span></div></section>"#,
        Esc(&links.to("/workers")),
        num(data.workers.len() as u64),
        rate.map_or_else(|| "–".to_owned(), |r| if r >= 100.0 { format!("{r:.0}") } else { format!("{r:.1}") })
    );

    let _ = write!(body, r#"<section class="card"><div class="card-head"><h2>Activity</h2><div class="tabs">"#);
    for r in Range::ALL {
        let current = if r == range { r#" class="current""# } else { "" };
        let _ = write!(
            body,
            r#"<a href="{}"{current}>{}</a>"#,
            Esc(&links.to(&format!("/?range={}", r.as_str()))),
            r.label()
        );
    }
    let _ = write!(
        body,
        r#"</div></div><div id="charts" data-poll="{}">{charts}</div></section>"#,
        Esc(&links.to(&format!("/api/throughput?range={}", range.as_str())))
    );

    body.push_str(&queues_table(&cx, &links, &data.counts, &here.back));
    body.push_str(&running_table(&links, &data.running, now));

    let live = Live { kind: "overview", poll: "/api/overview".to_owned(), etag: etag(&json), state: String::new() };
    shell(&cx, &here, &Page { title: "Overview", nav: Nav::Overview, live: Some(live) }, &body)
}

fn queues_table<B>(cx: &Ctx<B>, links: &Links, counts: &[QueueCounts], back: &str) -> String {
    let mut out = String::from(r#"<section class="card"><div class="card-head"><h2>Queues</h2></div>"#);
    if counts.is_empty() {
        out.push_str(r#"<p class="empty">No queues yet: enqueue a task and it shows here.</p></section>"#);
        return out;
    }
    let max_depth = counts.iter().map(|c| c.pending + c.retry).max().unwrap_or(0).max(1);
    out.push_str(r#"<div class="table-wrap"><table class="queues"><thead><tr><th>Queue</th>"#);
    for state in TaskState::ALL {
        let _ = write!(out, r#"<th class="num">{state}</th>"#);
    }
    out.push_str(r#"<th>Depth</th><th class="actions">Actions</th></tr></thead><tbody>"#);
    for c in counts {
        let q = pct(&c.queue);
        let paused = if c.paused { r#" <span class="badge s-paused" data-paused="true">paused</span>"# } else { "" };
        let _ = write!(
            out,
            r#"<tr data-queue="{name}"{cls}><td class="queue"><a href="{href}">{name}</a>{paused}</td>"#,
            name = Esc(&c.queue),
            cls = if c.paused { r#" class="paused""# } else { "" },
            href = Esc(&links.to(&format!("/tasks?queue={q}"))),
        );
        for state in TaskState::ALL {
            let n = c.get(state);
            let _ = write!(
                out,
                r#"<td class="num"><a class="count {cls}{zero}" data-k="{state}" href="{href}">{n}</a></td>"#,
                cls = state_class(state),
                zero = if n == 0 { " zero" } else { "" },
                href = Esc(&links.to(&format!("/tasks?queue={q}&state={state}"))),
                n = num(n),
            );
        }
        let depth = c.pending + c.retry;
        let width = (depth as f64 / max_depth as f64 * 100.0).round();
        let _ = write!(
            out,
            r#"<td class="depth"><svg viewBox="0 0 100 8" width="100" height="8" aria-hidden="true"><rect class="track" width="100" height="8" rx="4"/><rect class="fill" data-k="depth-bar" width="{width}" height="8" rx="4"/></svg><span data-k="depth">{}</span></td><td class="actions">"#,
            num(depth)
        );
        let fields = vec![("queue", c.queue.clone())];
        let action = if c.paused {
            Action {
                path: "/queues/resume".to_owned(),
                label: "Resume",
                confirm: format!("Resume queue “{}”? Its workers claim again.", c.queue),
                class: "btn-ok",
                fields,
                back: back.to_owned(),
            }
        } else {
            Action {
                path: "/queues/pause".to_owned(),
                label: "Pause",
                confirm: format!("Pause queue “{}”? Its workers stop claiming until it is resumed.", c.queue),
                class: "btn-warn",
                fields,
                back: back.to_owned(),
            }
        };
        out.push_str(&action.render(cx, links));
        if c.dead > 0 {
            let retry = Action {
                path: "/dead/retry".to_owned(),
                label: "Retry dead",
                confirm: format!("Retry every dead task of queue “{}”?", c.queue),
                class: "btn-subtle",
                fields: vec![("queue", c.queue.clone())],
                back: back.to_owned(),
            };
            out.push_str(&retry.render(cx, links));
        }
        out.push_str("</td></tr>");
    }
    out.push_str("</tbody></table></div></section>");
    out
}

fn running_table(links: &Links, running: &[TaskInfo], now: Timestamp) -> String {
    let mut out = format!(
        r#"<section class="card"><div class="card-head"><h2>Running now</h2><span class="muted" id="running-note">{}</span></div><div class="table-wrap"><table class="running"><thead><tr><th>Task</th><th>Job</th><th>Queue</th><th>Worker</th><th>Attempt</th><th>Progress</th><th>Due</th></tr></thead><tbody id="running">"#,
        if running.len() as u32 >= RUNNING_SHOWN { format!("first {RUNNING_SHOWN} shown") } else { String::new() }
    );
    if running.is_empty() {
        out.push_str(r#"<tr class="empty-row"><td colspan="7">Nothing is running.</td></tr>"#);
    }
    for t in running {
        let progress = t.progress.as_ref().map_or_else(String::new, |p| {
            format!(
                r#"<progress max="100" value="{}"></progress> <span class="pct">{}%</span> <span class="muted">{}</span>"#,
                p.percent,
                p.percent,
                esc(&p.message)
            )
        });
        let _ = write!(
            out,
            r#"<tr><td><a href="{href}">#{id}</a></td><td>{job}</td><td>{queue}</td><td class="mono">{worker}</td><td>{a}/{m}</td><td class="progress-cell">{progress}</td><td>{due}</td></tr>"#,
            href = Esc(&links.to(&format!("/tasks/{}", t.id))),
            id = t.id,
            job = Esc(&t.job),
            queue = Esc(&t.queue),
            worker = Esc(t.worker.as_deref().unwrap_or("")),
            a = t.attempt,
            m = t.max_attempts,
            due = time(t.run_at, now),
        );
    }
    out.push_str("</tbody></table></div></section>");
    out
}
