//! The pages: a shared shell (header, navigation, footer) and one module per
//! page.

pub(crate) mod dead;
pub(crate) mod overview;
pub(crate) mod runs;
pub(crate) mod task;
pub(crate) mod tasks;
pub(crate) mod workers;

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{FromRequestParts, NestedPath, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use errand_runtime::{Backend, Error, QueueCounts};

use crate::html::{Esc, Html, Links, pct};
use crate::{Ctx, Shared};

/// The stylesheet, compiled in.
pub(crate) const CSS: &str = include_str!("../../assets/board.css");
/// The script, compiled in.
pub(crate) const JS: &str = include_str!("../../assets/board.js");

/// What a request tells every page: where the board is mounted, the page's
/// own URL (to come back to after an action), and a notice to show.
pub(crate) struct Here {
    nested: Option<String>,
    /// This page's path and query under the board's mount, without notices.
    pub(crate) back: String,
    notice: Option<(String, u64)>,
    /// Whether the request was a GET (which can be tried again).
    get: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Here {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        let nested = parts.extensions.get::<NestedPath>().map(|p| p.as_str().trim_end_matches('/').to_owned());
        let params = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri).map(|q| q.0).unwrap_or_default();
        let mut back = format!("{}{}", nested.as_deref().unwrap_or(""), parts.uri.path());
        let mut notice = None;
        let mut n = 0;
        let mut first = true;
        for (k, v) in &params {
            match k.as_str() {
                "notice" => notice = Some(v.clone()),
                "n" => n = v.parse().unwrap_or(0),
                "token" => {}
                _ => {
                    back.push(if first { '?' } else { '&' });
                    first = false;
                    let _ = write!(back, "{}={}", pct(k), pct(v));
                }
            }
        }
        let get = parts.method == axum::http::Method::GET;
        Ok(Self { nested, back, notice: notice.map(|code| (code, n)), get })
    }
}

impl Here {
    pub(crate) fn links<B>(&self, cx: &Ctx<B>) -> Links {
        cx.links(self.nested.as_deref())
    }

    fn notice_html(&self) -> Option<String> {
        let (code, n) = self.notice.as_ref()?;
        let (class, text) = match code.as_str() {
            "retried" => ("ok", format!("Task #{n} is pending again.")),
            "not-retried" => ("warn", format!("Task #{n} was not retried: only dead or cancelled tasks can be.")),
            "retried-dead" => ("ok", format!("{n} dead task{} pending again.", if *n == 1 { " is" } else { "s are" })),
            "cancelled" => ("ok", format!("Task #{n} is cancelled.")),
            "not-cancelled" => ("warn", format!("Task #{n} was not cancelled: it has already finished.")),
            "deleted" => ("ok", format!("Task #{n} is deleted.")),
            "not-deleted" => {
                ("warn", format!("Task #{n} was not deleted: it no longer exists, or it is still running."))
            }
            "not-deleted-step" => {
                ("warn", format!("Task #{n} was not deleted: it is a step of a workflow run, and goes with its run."))
            }
            "paused" => ("ok", "The queue is paused: its workers claim nothing until it is resumed.".to_owned()),
            "resumed" => ("ok", "The queue is resumed: its workers claim again.".to_owned()),
            _ => return None,
        };
        Some(format!(r#"<div class="notice {class}" role="status">{}</div>"#, Esc(&text)))
    }
}

/// Which navigation entry a page is under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Overview,
    Tasks,
    Dead,
    Workers,
    Runs,
    None,
}

/// A live page: what its script polls, and the answer it has now.
pub(crate) struct Live {
    pub(crate) kind: &'static str,
    pub(crate) poll: String,
    pub(crate) etag: String,
    pub(crate) state: String,
}

/// One page's frame.
pub(crate) struct Page<'a> {
    pub(crate) title: &'a str,
    pub(crate) nav: Nav,
    pub(crate) live: Option<Live>,
}

/// Renders `body` in the board's shell.
pub(crate) fn shell<B: Backend>(cx: &Ctx<B>, here: &Here, page: &Page<'_>, body: &str) -> Response {
    let links = here.links(cx);
    let mut h = Html::new();
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{title} · {name} · errand board</title><link rel="stylesheet" href="{css}"><script src="{js}" defer></script></head>"#,
        title = Esc(page.title),
        name = Esc(&cx.name),
        css = Esc(&links.root_to(&format!("/assets/board.css?v={}", cx.shared.asset_version))),
        js = Esc(&links.root_to(&format!("/assets/board.js?v={}", cx.shared.asset_version))),
    );
    let _ = write!(h, r#"<body data-base="{}""#, Esc(&links.base));
    if let Some(live) = &page.live {
        let _ = write!(
            h,
            r#" data-live="{}" data-poll="{}" data-etag="{}" data-state="{}""#,
            live.kind,
            Esc(&links.to(&live.poll)),
            Esc(&live.etag),
            Esc(&live.state)
        );
    }
    let _ = write!(
        h,
        r#"><header class="top"><div class="bar"><a class="brand" href="{home}"><svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true"><rect x="2" y="4" width="20" height="4" rx="2" class="b1"/><rect x="2" y="10" width="14" height="4" rx="2" class="b2"/><rect x="2" y="16" width="9" height="4" rx="2" class="b3"/></svg>errand<span>board</span></a><nav>"#,
        home = Esc(&links.to("/"))
    );
    for (nav, path, label) in [
        (Nav::Overview, "/", "Overview"),
        (Nav::Tasks, "/tasks", "Tasks"),
        (Nav::Dead, "/dead", "Dead"),
        (Nav::Workers, "/workers", "Workers"),
        (Nav::Runs, "/runs", "Workflows"),
    ] {
        let current = if nav == page.nav { r#" class="current" aria-current="page""# } else { "" };
        let _ = write!(h, r#"<a href="{}"{current}>{label}</a>"#, Esc(&links.to(path)));
    }
    h.raw("</nav>");
    if cx.shared.multi {
        h.raw(r#"<div class="backends" aria-label="Backends">"#);
        for b in &cx.shared.backends {
            let current = if b.slug == cx.slug { " current" } else { "" };
            let _ = write!(
                h,
                r#"<a class="backend{current}" href="{}">{}</a>"#,
                Esc(&links.root_to(&format!("/{}", b.slug))),
                Esc(&b.name)
            );
        }
        h.raw("</div>");
    }
    let _ = write!(
        h,
        r#"<form class="search" action="{}" method="get" role="search"><input type="search" name="q" placeholder="Task id or unique key" aria-label="Find a task by id or unique key"></form><span class="live-dot" id="live" title="Live updates">live</span></div></header><main>"#,
        Esc(&links.to("/search"))
    );
    if let Some(notice) = here.notice_html() {
        h.raw(&notice);
    }
    h.raw(body);
    let _ = write!(
        h,
        r#"</main><footer>errand board {} · backend <b>{}</b> ({}) · all times UTC</footer></body></html>"#,
        env!("CARGO_PKG_VERSION"),
        Esc(&cx.name),
        Esc(B::NAME)
    );
    html_response(StatusCode::OK, h.into_string())
}

pub(crate) fn html_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, axum::response::Html(body)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The page for a backend that failed: what it was doing, and its error.
pub(crate) fn failure<B: Backend>(cx: &Ctx<B>, here: &Here, what: &str, error: &Error) -> Response {
    let body = format!(
        r#"<section class="card error-card"><h1>The backend failed</h1><p>Backend <b>{}</b> ({}) failed while {}:</p><pre class="error">{}</pre><p>{}</p></section>"#,
        Esc(&cx.name),
        Esc(B::NAME),
        Esc(what),
        Esc(&error.to_string()),
        if here.get {
            format!(r#"<a href="{}">Try again</a>"#, Esc(&here.back))
        } else {
            format!(r#"Nothing else was changed. <a href="{}">Back to the overview</a>"#, Esc(&here.links(cx).to("/")))
        }
    );
    let mut response = shell(cx, here, &Page { title: "Error", nav: Nav::None, live: None }, &body);
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}

/// A page for something that does not exist.
pub(crate) fn not_found<B: Backend>(cx: &Ctx<B>, here: &Here, what: &str) -> Response {
    let body = format!(
        r#"<section class="card empty-card"><h1>Not found</h1><p>{}</p><p><a href="{}">Back to the overview</a></p></section>"#,
        Esc(what),
        Esc(&here.links(cx).to("/"))
    );
    let mut response = shell(cx, here, &Page { title: "Not found", nav: Nav::None, live: None }, &body);
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

/// A POST form with one button, the CSRF token, the page to come back to
/// and a confirmation asked in the browser.
pub(crate) struct Action<'a> {
    pub(crate) path: String,
    pub(crate) label: &'a str,
    pub(crate) confirm: String,
    pub(crate) class: &'a str,
    pub(crate) fields: Vec<(&'a str, String)>,
    pub(crate) back: String,
}

impl Action<'_> {
    pub(crate) fn render<B>(&self, cx: &Ctx<B>, links: &Links) -> String {
        let mut out = format!(
            r#"<form class="action" method="post" action="{}" data-confirm="{}"><input type="hidden" name="csrf" value="{}"><input type="hidden" name="back" value="{}">"#,
            Esc(&links.to(&self.path)),
            Esc(&self.confirm),
            Esc(&cx.shared.csrf),
            Esc(&self.back)
        );
        for (name, value) in &self.fields {
            let _ = write!(out, r#"<input type="hidden" name="{}" value="{}">"#, Esc(name), Esc(value));
        }
        let _ = write!(out, r#"<button type="submit" class="btn {}">{}</button></form>"#, self.class, Esc(self.label));
        out
    }
}

/// Queue names for filters.
pub(crate) fn queue_options(counts: &[QueueCounts], selected: Option<&str>) -> String {
    let mut out = String::from(r#"<option value="">all queues</option>"#);
    let mut found = false;
    for c in counts {
        let sel = if selected == Some(c.queue.as_str()) {
            found = true;
            " selected"
        } else {
            ""
        };
        let _ = write!(out, r#"<option value="{q}"{sel}>{q}</option>"#, q = Esc(&c.queue));
    }
    if let Some(q) = selected.filter(|q| !found && !q.is_empty()) {
        let _ = write!(out, r#"<option value="{q}" selected>{q}</option>"#, q = Esc(q));
    }
    out
}

/// `GET /assets/board.css`.
pub(crate) async fn css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}

/// `GET /assets/board.js`.
pub(crate) async fn js() -> Response {
    asset(JS, "text/javascript; charset=utf-8")
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400")),
        ],
        body,
    )
        .into_response()
}

/// `GET /` of a board with several backends: the first one.
pub(crate) async fn index(State((_, first)): State<(Arc<Shared>, String)>, nested: Option<NestedPathExt>) -> Redirect {
    let mount = nested.map(|n| n.0).unwrap_or_default();
    Redirect::to(&format!("{mount}/{first}"))
}

/// `GET /` of a board with no backend.
pub(crate) async fn empty() -> Response {
    html_response(
        StatusCode::OK,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>errand board</title></head>\
         <body><h1>errand board</h1><p>No backend is mounted: add one with <code>Board::backend</code>.</p></body></html>"
            .to_owned(),
    )
}

/// The mount path, for handlers that are not a backend's.
pub(crate) struct NestedPathExt(String);

impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for NestedPathExt {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Infallible> {
        Ok(parts.extensions.get::<NestedPath>().map(|p| Self(p.as_str().trim_end_matches('/').to_owned())))
    }
}
