//! The web dashboard of [errand](https://docs.rs/errand): see and steer every
//! queue of any backend that implements
//! [`Expose`] and
//! [`WorkflowStore`], in a browser.
//!
//! The board is an [axum](https://docs.rs/axum) [`Router`] you nest in your
//! own app ([`router`], or [`Board`] for several backends and a token), or a
//! standalone [`Server`]. Its pages are rendered on the server, with a little
//! hand-written JavaScript for live updates and confirmations; its CSS and
//! JS are compiled into the binary, nothing is fetched at run time.
//!
//! # Examples
//!
//! Mount the board under `/board` of an axum app, behind a token:
//!
//! ```
//! use axum::Router;
//! use errand_board::Board;
//! use errand_runtime::memory::MemoryBackend;
//!
//! # async fn app() -> std::io::Result<()> {
//! let backend = MemoryBackend::new();
//! let board = Board::new().backend("main", backend).token("s3cret").router();
//! let app: Router = Router::new().nest("/board", board);
//!
//! // Open http://127.0.0.1:3000/board?token=s3cret once (the board keeps the
//! // token in a cookie), or send `Authorization: Bearer s3cret`.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! Or run the board on its own, on 127.0.0.1 (any other address needs a
//! token, or [`Server::bind`] refuses to start):
//!
//! ```no_run
//! use errand_board::{Board, Server};
//! use errand_runtime::memory::MemoryBackend;
//!
//! # async fn run() -> Result<(), errand_board::ServeError> {
//! let board = Board::new().backend("main", MemoryBackend::new());
//! Server::new(board).addr("127.0.0.1:9300".parse().unwrap()).bind().await?.run().await
//! # }
//! ```
//!
//! # Pages
//!
//! | path | what |
//! |---|---|
//! | `/` | overview: counts per queue and state, paused queues, throughput and queue depth charts, running tasks (live) |
//! | `/tasks?queue=&job=&state=&after=` | tasks, filtered, paged by id (keyset: no offset scans) |
//! | `/tasks/{id}` | one task: arguments, result, error, attempts, progress, timeline (live) |
//! | `/dead` | dead tasks with their errors; retry one or all of a queue or job |
//! | `/workers` | live workers: queue, job, concurrency, load, last seen |
//! | `/runs`, `/runs/{id}` | workflow runs; a run's steps and its graph (live) |
//! | `/search?q=` | a task by id, or tasks by unique key |
//! | `/api/overview`, `/api/tasks/{id}`, `/api/runs/{id}`, `/api/throughput` | JSON for the live views, with `ETag` (a `304` when unchanged) |
//!
//! With several backends ([`Board::backend`] more than once), each one's
//! pages live under `/{name}/…` and `/` leads to the first.
//!
//! # Actions
//!
//! Retry a dead or cancelled task, retry every dead task of a queue or job,
//! cancel a task (a running one sees its cancellation token fire), delete a
//! task, pause and resume a queue. Each is a `POST` form carrying the board's
//! CSRF token (a random secret made when the router is built, embedded in
//! the pages), confirmed in the browser; a `GET` on an action's URL is
//! `405 Method Not Allowed` and changes nothing.
//!
//! # Security
//!
//! - With a token ([`Board::token`], [`Server::token`]) every request needs
//!   it: the header `Authorization: Bearer <token>`, or the cookie
//!   `errand_board_token` which the board sets when a page is opened once
//!   with `?token=<token>` (it then redirects to the same page without it).
//!   Anything else is `401 Unauthorized`.
//! - The [`Server`] binds 127.0.0.1 by default, and refuses a non-loopback
//!   address without a token.
//! - Every value read from storage is HTML-escaped; responses carry a strict
//!   `Content-Security-Policy` (scripts and styles only from the board
//!   itself), `X-Content-Type-Options: nosniff` and `frame-ancestors 'none'`.
//!
//! # Throughput
//!
//! The charts come from the counts the board itself samples (at most every
//! 2 s, while a page or the live view asks), kept in memory: an hour at
//! full resolution, a day by the minute. A board that nobody watches costs
//! the backend nothing; its charts fill in while it is open.

mod actions;
mod api;
mod auth;
mod dag;
mod html;
mod pages;
mod sampler;
mod server;

use std::fmt;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::{get, post};
use errand_runtime::capability::CancelRunning;
use errand_runtime::{Expose, WorkflowStore};

pub use self::server::{DEFAULT_ADDR, Listening, ServeError, Server, serve};

/// What a backend needs to be shown on the board: listings and actions
/// ([`Expose`]), workflow runs ([`WorkflowStore`]) and cancelling running
/// tasks ([`CancelRunning`]). Implemented for every such backend.
pub trait BoardBackend: Expose + WorkflowStore + CancelRunning + Clone + Send + Sync + 'static {}

impl<B> BoardBackend for B where B: Expose + WorkflowStore + CancelRunning + Clone + Send + Sync + 'static {}

/// The board of one backend, as an axum [`Router`] to nest in an app.
///
/// Its pages link relative to where it is nested, so
/// `Router::new().nest("/board", errand_board::router(backend))` works as
/// is. For a token or several backends, use [`Board`].
///
/// # Examples
///
/// ```
/// use errand_runtime::memory::MemoryBackend;
///
/// let app: axum::Router = axum::Router::new().nest("/jobs", errand_board::router(MemoryBackend::new()));
/// ```
pub fn router<B: BoardBackend>(backend: B) -> Router {
    Board::new().backend(B::NAME, backend).router()
}

type MakeRouter = Box<dyn FnOnce(Arc<Shared>, String) -> Router + Send>;

struct Mount {
    name: String,
    make: MakeRouter,
    /// Samples its queue depth for `/metrics`.
    #[cfg(feature = "metrics")]
    sampler: Option<Box<dyn errand_metrics::Sampler>>,
}

/// A board over one or more backends, with an optional token; see the
/// [crate docs](crate).
///
/// # Examples
///
/// ```
/// use errand_board::Board;
/// use errand_runtime::memory::MemoryBackend;
///
/// let router: axum::Router = Board::new()
///     .backend("main", MemoryBackend::new())
///     .backend("reports", MemoryBackend::new())
///     .token("s3cret")
///     .router();
/// ```
pub struct Board {
    mounts: Vec<Mount>,
    token: Option<String>,
}

impl fmt::Debug for Board {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Board")
            .field("backends", &self.mounts.iter().map(|m| m.name.as_str()).collect::<Vec<_>>())
            .field("token", &self.token.as_ref().map(|_| "…"))
            .finish()
    }
}

impl Default for Board {
    fn default() -> Self {
        Self::new()
    }
}

impl Board {
    /// A board with no backends yet.
    pub const fn new() -> Self {
        Self { mounts: Vec::new(), token: None }
    }

    /// Adds a backend, shown under `name`. With one backend its pages are at
    /// the board's root; with several, each one's are under `/{name}` (the
    /// name made URL-safe), and the header switches between them.
    pub fn backend<B: BoardBackend>(mut self, name: impl Into<String>, backend: B) -> Self {
        let name = name.into();
        let display = name.clone();
        #[cfg(feature = "metrics")]
        let sampler: Option<Box<dyn errand_metrics::Sampler>> =
            Some(Box::new(errand_metrics::Sampled { name: name.clone(), backend: backend.clone() }));
        self.mounts.push(Mount {
            #[cfg(feature = "metrics")]
            sampler,
            name,
            make: Box::new(move |shared, slug| {
                let cx = Arc::new(Ctx {
                    backend,
                    name: display,
                    slug,
                    shared,
                    samples: Mutex::new(sampler::Samples::default()),
                });
                backend_router(cx)
            }),
        });
        self
    }

    /// Requires `token` on every request: the header
    /// `Authorization: Bearer <token>`, or the cookie the board sets when a
    /// page is opened with `?token=<token>`. An empty token is ignored.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        let token = token.into();
        self.token = if token.is_empty() { None } else { Some(token) };
        self
    }

    /// Whether a token is required.
    pub const fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The names of the backends, in the order they were added.
    pub fn backends(&self) -> impl Iterator<Item = &str> {
        self.mounts.iter().map(|m| m.name.as_str())
    }

    /// The board as an axum [`Router`], to nest anywhere in an app (or to
    /// serve with [`Server`]).
    pub fn router(self) -> Router {
        let slugs = slugs(self.mounts.iter().map(|m| m.name.as_str()));
        let multi = self.mounts.len() > 1;
        let backends =
            self.mounts.iter().zip(&slugs).map(|(m, slug)| BackendLink { name: m.name.clone(), slug: slug.clone() });
        let shared = Arc::new(Shared::new(self.token, backends.collect(), multi));
        let mut router = Router::new()
            .route("/assets/board.css", get(pages::css))
            .route("/assets/board.js", get(pages::js))
            .with_state(Arc::clone(&shared));
        #[cfg_attr(not(feature = "metrics"), allow(unused_mut))]
        let mut mounts = self.mounts;
        #[cfg(feature = "metrics")]
        {
            let samplers = mounts.iter_mut().filter_map(|m| m.sampler.take()).collect();
            router = router.merge(errand_metrics::router_of(samplers));
        }
        if multi {
            for (mount, slug) in mounts.into_iter().zip(slugs) {
                let sub = (mount.make)(Arc::clone(&shared), slug.clone());
                router = router.nest(&format!("/{slug}"), sub);
            }
            let first = shared.backends.first().map(|b| b.slug.clone()).unwrap_or_default();
            router = router.route("/", get(pages::index).with_state((Arc::clone(&shared), first)));
        } else if let Some(mount) = mounts.into_iter().next() {
            router = router.merge((mount.make)(Arc::clone(&shared), String::new()));
        } else {
            router = router.route("/", get(pages::empty).with_state(Arc::clone(&shared)));
        }
        router.layer(axum::middleware::from_fn_with_state(shared, auth::guard))
    }
}

/// URL-safe, distinct path segments for the backends' names.
fn slugs<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, name) in names.enumerate() {
        let mut slug: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c.to_ascii_lowercase() } else { '-' })
            .collect();
        slug = slug.trim_matches('-').to_owned();
        if slug.is_empty() || slug == "assets" {
            slug = format!("backend-{}", i + 1);
        }
        let mut unique = slug.clone();
        let mut n = 2;
        while out.contains(&unique) {
            unique = format!("{slug}-{n}");
            n += 1;
        }
        out.push(unique);
    }
    out
}

/// One backend in the header's switcher.
#[derive(Debug, Clone)]
pub(crate) struct BackendLink {
    pub(crate) name: String,
    pub(crate) slug: String,
}

/// What every backend's pages share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The CSRF token every form carries.
    pub(crate) csrf: String,
    pub(crate) token: Option<String>,
    pub(crate) backends: Vec<BackendLink>,
    pub(crate) multi: bool,
    /// Appended to asset URLs so that a new version is fetched anew.
    pub(crate) asset_version: String,
}

impl Shared {
    fn new(token: Option<String>, backends: Vec<BackendLink>, multi: bool) -> Self {
        let assets = [pages::CSS.as_bytes(), pages::JS.as_bytes()].concat();
        Self {
            csrf: auth::random_token(),
            token,
            backends,
            multi,
            asset_version: format!("{:08x}", errand_runtime::backend::fnv1a(&assets) as u32),
        }
    }
}

/// One backend's state: the backend, its name and place, its samples.
pub(crate) struct Ctx<B> {
    pub(crate) backend: B,
    pub(crate) name: String,
    /// Its path segment when the board has several backends, else "".
    pub(crate) slug: String,
    pub(crate) shared: Arc<Shared>,
    pub(crate) samples: Mutex<sampler::Samples>,
}

impl<B> Ctx<B> {
    /// The links of a request that reached this backend's router under
    /// `nested` (axum's `NestedPath`, if any).
    pub(crate) fn links(&self, nested: Option<&str>) -> html::Links {
        let base = nested.map(|p| p.trim_end_matches('/').to_owned()).unwrap_or_default();
        let root = if self.shared.multi {
            base.strip_suffix(&format!("/{}", self.slug)).map(str::to_owned).unwrap_or_else(|| base.clone())
        } else {
            base.clone()
        };
        html::Links { base, root }
    }

    pub(crate) fn samples(&self) -> std::sync::MutexGuard<'_, sampler::Samples> {
        self.samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn backend_router<B: BoardBackend>(cx: Arc<Ctx<B>>) -> Router {
    Router::new()
        .route("/", get(pages::overview::overview::<B>))
        .route("/tasks", get(pages::tasks::tasks::<B>))
        .route("/tasks/{id}", get(pages::task::task::<B>))
        .route("/tasks/{id}/retry", post(actions::retry::<B>))
        .route("/tasks/{id}/cancel", post(actions::cancel::<B>))
        .route("/tasks/{id}/delete", post(actions::delete::<B>))
        .route("/dead", get(pages::dead::dead::<B>))
        .route("/dead/retry", post(actions::retry_dead::<B>))
        .route("/queues/pause", post(actions::pause::<B>))
        .route("/queues/resume", post(actions::resume::<B>))
        .route("/workers", get(pages::workers::workers::<B>))
        .route("/runs", get(pages::runs::runs::<B>))
        .route("/runs/{id}", get(pages::runs::run::<B>))
        .route("/search", get(pages::tasks::search::<B>))
        .route("/api/overview", get(api::overview::<B>))
        .route("/api/tasks/{id}", get(api::task::<B>))
        .route("/api/runs/{id}", get(api::run::<B>))
        .route("/api/throughput", get(api::throughput::<B>))
        .with_state(cx)
}

#[cfg(test)]
mod tests {
    use super::slugs;

    #[test]
    fn slugs_are_url_safe_and_distinct() {
        let names = ["Main", "main", "", "a/b c", "assets"];
        assert_eq!(slugs(names.into_iter()), ["main", "main-2", "backend-3", "a-b-c", "backend-5"]);
    }
}
