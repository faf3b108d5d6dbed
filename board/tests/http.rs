//! The board over HTTP, on the memory backend: pages, live JSON, actions and
//! their CSRF token, the token, the bind rule, and escaping.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests: a failure is the test failing

mod common;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use errand_board::{Board, ServeError, Server};
use errand_runtime::memory::MemoryBackend;
use errand_runtime::{Enqueue, Expose, TaskId, TaskSink, TaskState, WorkflowExt};
use tower::ServiceExt;

use common::{Echo, Fail, Publish, Workers, wait_for_state};

const SCRIPT: &str = "<script>alert(1)</script>";
const IMG: &str = "\"><img src=x onerror=alert(1)>";

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

async fn send(app: &Router, req: Request<Body>) -> Reply {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
    Reply { status, headers, body: String::from_utf8(bytes.to_vec()).unwrap() }
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn post(path: &str, form: &str) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_owned()))
        .unwrap()
}

async fn page(app: &Router, path: &str) -> String {
    let reply = send(app, get(path)).await;
    assert_eq!(reply.status, StatusCode::OK, "GET {path}: {}", reply.body);
    reply.body
}

/// The CSRF token embedded in a page's forms.
fn csrf(html: &str) -> String {
    let start = html.find(r#"name="csrf" value=""#).expect("a form with a CSRF token") + r#"name="csrf" value=""#.len();
    html[start..].split('"').next().unwrap().to_owned()
}

fn location(reply: &Reply) -> &str {
    reply.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn form_encode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { char::from(b).to_string() } else { format!("%{b:02X}") }).collect()
}

async fn dead_task(backend: &MemoryBackend, why: &str) -> TaskId {
    let id = backend.enqueue(Fail { why: why.to_owned() }).await.unwrap();
    wait_for_state(backend, id, TaskState::Dead).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders() {
    let backend = MemoryBackend::new();
    let workers = Workers::start(&backend);
    let done = backend.enqueue(Echo { text: "hello".into() }).await.unwrap();
    wait_for_state(&backend, done, TaskState::Done).await;
    let dead = dead_task(&backend, "card declined").await;
    let keyed = backend
        .enqueue_with(
            Echo { text: "later".into() },
            Enqueue::new().unique_key("user-42").delay(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    let run = backend.start(Publish(7)).await.unwrap();
    backend.workflow(run).wait_timeout(Duration::from_secs(10)).await.unwrap();
    let app = errand_board::router(backend.clone());

    let overview = page(&app, "/").await;
    assert!(overview.contains("Overview") && overview.contains("billing") && overview.contains("pipelines"));
    assert!(page(&app, "/tasks").await.contains(&format!("#{done}")));
    let task = page(&app, &format!("/tasks/{done}")).await;
    assert!(task.contains("&quot;hello&quot;") && task.contains("Timeline") && task.contains("Result"));
    assert!(task.contains(r#"<progress id="progress" max="100" value="50">"#), "{task}");
    let dead_page = page(&app, "/dead").await;
    assert!(dead_page.contains("card declined") && dead_page.contains(&format!("#{dead}")));
    assert!(page(&app, "/workers").await.contains("charge_card"));
    let runs = page(&app, "/runs").await;
    assert!(runs.contains("publish_photo") && runs.contains(&format!("#{}", run.id())));
    let run_page = page(&app, &format!("/runs/{}", run.id())).await;
    assert_eq!(run_page.matches(r#"<g class="node"#).count(), 5, "one node per step");
    assert_eq!(run_page.matches(r#"class="edge"#).count(), 5, "one edge per dependency");
    assert!(run_page.contains(r#"data-step="publish""#));

    // Search: by id, and by unique key (a single match goes to the task).
    let by_id = send(&app, get(&format!("/search?q=%23{dead}"))).await;
    assert_eq!((by_id.status, location(&by_id)), (StatusCode::SEE_OTHER, format!("/tasks/{dead}").as_str()));
    let by_key = send(&app, get("/search?q=user-42")).await;
    assert_eq!(location(&by_key), format!("/tasks/{keyed}"));
    let partial = page(&app, "/search?q=user").await;
    assert!(partial.contains(&format!("#{keyed}")));

    // Filters and keyset pages.
    let filtered = page(&app, "/tasks?queue=billing&state=dead").await;
    assert!(filtered.contains(&format!("#{dead}")) && !filtered.contains(&format!(">#{done}<")));
    let first = page(&app, "/tasks?limit=1").await;
    assert!(first.contains("Next page") && first.contains("after="));

    // Missing things are 404s, with a page.
    assert_eq!(send(&app, get("/tasks/999999")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(send(&app, get("/runs/999999")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(send(&app, get("/api/tasks/999999")).await.status, StatusCode::NOT_FOUND);

    // Assets are compiled in.
    let css = send(&app, get("/assets/board.css")).await;
    assert!(css.body.contains(".badge") && css.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/css"));
    assert!(send(&app, get("/assets/board.js")).await.body.contains("If-None-Match"));
    workers.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_match_expose_and_live_json_uses_etags() {
    let backend = MemoryBackend::new();
    for i in 0..3 {
        backend.enqueue(Echo { text: format!("t{i}") }).await.unwrap();
    }
    backend.enqueue(Fail { why: "no".into() }).await.unwrap();
    backend.pause_queue("billing").await.unwrap();
    let app = errand_board::router(backend.clone());

    let reply = send(&app, get("/api/overview")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    let counts = backend.counts().await.unwrap();
    let queues = json["queues"].as_array().unwrap();
    assert_eq!(queues.len(), counts.len());
    for (shown, c) in queues.iter().zip(&counts) {
        assert_eq!(shown["queue"], c.queue.as_str());
        for state in TaskState::ALL {
            assert_eq!(shown[state.as_str()], c.get(state), "{} {state}", c.queue);
        }
        assert_eq!(shown["paused"], c.paused);
    }
    assert_eq!(json["totals"]["pending"], 4);

    // The page shows the same numbers, and the paused queue.
    let html = page(&app, "/").await;
    assert!(html.contains(r#"data-total="pending">4<"#), "{html}");
    assert!(html.contains(r#"data-paused="true""#));

    // Unchanged: 304 without a body; changed: a new tag.
    let tag = reply.headers[header::ETAG].to_str().unwrap().to_owned();
    assert!(html.contains(&format!(r#"data-etag="{}""#, tag.replace('"', "&quot;"))), "the page embeds the tag");
    let again =
        send(&app, Request::get("/api/overview").header(header::IF_NONE_MATCH, &tag).body(Body::empty()).unwrap())
            .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    backend.enqueue(Echo { text: "more".into() }).await.unwrap();
    let changed =
        send(&app, Request::get("/api/overview").header(header::IF_NONE_MATCH, &tag).body(Body::empty()).unwrap())
            .await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_ne!(changed.headers[header::ETAG].to_str().unwrap(), tag);

    // Task and throughput JSON have tags too.
    let task = send(&app, get("/api/tasks/1")).await;
    assert!(task.body.contains(r#""state":"pending""#));
    let t = task.headers[header::ETAG].to_str().unwrap().to_owned();
    let same =
        send(&app, Request::get("/api/tasks/1").header(header::IF_NONE_MATCH, &t).body(Body::empty()).unwrap()).await;
    assert_eq!(same.status, StatusCode::NOT_MODIFIED);
    assert!(send(&app, get("/api/throughput?range=1h")).await.body.contains(r#""range":"1h""#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_work_and_need_the_csrf_token() {
    let backend = MemoryBackend::new();
    let workers = Workers::start(&backend);
    let dead = dead_task(&backend, "declined").await;
    let app = errand_board::router(backend.clone());
    let html = page(&app, &format!("/tasks/{dead}")).await;
    let token = csrf(&html);
    assert_eq!(token.len(), 32);
    assert!(html.contains(r#"data-confirm="Retry task"#), "actions ask first");

    // Without the token, or with a wrong one: 403, nothing changes.
    for form in ["back=%2F".to_owned(), format!("csrf={}&back=%2F", "0".repeat(32))] {
        let refused = send(&app, post(&format!("/tasks/{dead}/retry"), &form)).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{form}");
        assert_eq!(backend.task(dead).await.unwrap().unwrap().state, TaskState::Dead);
    }
    let refused = send(&app, post("/queues/pause", "queue=default")).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(!backend.counts().await.unwrap().iter().any(|c| c.paused));

    // With it: retried, and back to the page with a notice.
    let back = form_encode(&format!("/tasks/{dead}"));
    let ok = send(&app, post(&format!("/tasks/{dead}/retry"), &format!("csrf={token}&back={back}"))).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&ok), format!("/tasks/{dead}?notice=retried&n={dead}"));
    assert!(page(&app, location(&ok)).await.contains("is pending again"));
    wait_for_state(&backend, dead, TaskState::Dead).await; // it fails again

    // Pause and resume.
    let paused = send(&app, post("/queues/pause", &format!("csrf={token}&queue=billing&back=%2F"))).await;
    assert_eq!((paused.status, location(&paused)), (StatusCode::SEE_OTHER, "/?notice=paused&n=0"));
    assert!(backend.counts().await.unwrap().iter().any(|c| c.queue == "billing" && c.paused));
    let id = backend.enqueue(Fail { why: "later".into() }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(backend.task(id).await.unwrap().unwrap().state, TaskState::Pending, "a paused queue is not claimed");
    assert!(page(&app, "/").await.contains("Resume"));
    send(&app, post("/queues/resume", &format!("csrf={token}&queue=billing&back=%2F"))).await;
    wait_for_state(&backend, id, TaskState::Dead).await;

    // Retry all dead of a queue (and of a job).
    let n = backend.counts().await.unwrap().iter().find(|c| c.queue == "billing").unwrap().dead;
    assert_eq!(n, 2);
    send(&app, post("/queues/pause", &format!("csrf={token}&queue=billing"))).await;
    let all =
        send(&app, post("/dead/retry", &format!("csrf={token}&queue=billing&job=charge_card&back=%2Fdead"))).await;
    assert_eq!(location(&all), "/dead?notice=retried-dead&n=2");
    let billing = backend.counts().await.unwrap().into_iter().find(|c| c.queue == "billing").unwrap();
    assert_eq!((billing.dead, billing.pending), (0, 2));

    // Cancel a pending task, then delete it; delete a pending one directly.
    let cancel = send(&app, post(&format!("/tasks/{id}/cancel"), &format!("csrf={token}&back=%2F"))).await;
    assert_eq!(location(&cancel), format!("/?notice=cancelled&n={id}"));
    assert_eq!(backend.task(id).await.unwrap().unwrap().state, TaskState::Cancelled);
    let delete = send(&app, post(&format!("/tasks/{id}/delete"), &format!("csrf={token}&back=%2Ftasks"))).await;
    assert_eq!(location(&delete), format!("/tasks?notice=deleted&n={id}"));
    assert!(backend.task(id).await.unwrap().is_none());
    let delete = send(&app, post(&format!("/tasks/{dead}/delete"), &format!("csrf={token}"))).await;
    assert_eq!(location(&delete), format!("/?notice=deleted&n={dead}"), "a live task is cancelled, then deleted");
    assert!(backend.task(dead).await.unwrap().is_none());

    // `back` never leaves the site.
    let other = backend.enqueue(Echo { text: "x".into() }).await.unwrap();
    let evil =
        send(&app, post(&format!("/tasks/{other}/cancel"), &format!("csrf={token}&back=%2F%2Fevil.example"))).await;
    assert!(location(&evil).starts_with("/?"), "{}", location(&evil));
    workers.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_on_an_action_is_405_and_changes_nothing() {
    let backend = MemoryBackend::new();
    let workers = Workers::start(&backend);
    let dead = dead_task(&backend, "declined").await;
    workers.stop().await;
    let pending = backend.enqueue(Echo { text: "stay".into() }).await.unwrap();
    let app = errand_board::router(backend.clone());
    let token = csrf(&page(&app, &format!("/tasks/{dead}")).await);
    let before = backend.counts().await.unwrap();
    for path in [
        format!("/tasks/{dead}/retry"),
        format!("/tasks/{pending}/cancel"),
        format!("/tasks/{pending}/delete"),
        "/dead/retry".to_owned(),
        "/queues/pause".to_owned(),
        "/queues/resume".to_owned(),
    ] {
        let reply = send(&app, get(&format!("{path}?csrf={token}&queue=default"))).await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "GET {path}");
    }
    assert_eq!(backend.counts().await.unwrap(), before);
    assert_eq!(backend.task(dead).await.unwrap().unwrap().state, TaskState::Dead);
    assert_eq!(backend.task(pending).await.unwrap().unwrap().state, TaskState::Pending);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_from_storage_are_escaped() {
    let backend = MemoryBackend::new();
    let workers = Workers::start(&backend);
    let evil = format!("{SCRIPT} {IMG}");
    let dead = dead_task(&backend, &evil).await;
    workers.stop().await;
    let keyed = backend
        .enqueue_with(Echo { text: evil.clone() }, Enqueue::new().queue(IMG).unique_key(format!("key {IMG}")))
        .await
        .unwrap();
    let app = errand_board::router(backend.clone());
    let key = form_encode(&format!("key {IMG}"));
    let queue = form_encode(IMG);
    for path in [
        "/".to_owned(),
        "/tasks".to_owned(),
        format!("/tasks?queue={queue}"),
        format!("/tasks/{dead}"),
        format!("/tasks/{keyed}"),
        "/dead".to_owned(),
        format!("/search?q={}", form_encode("key")),
        format!("/search?q={key}"),
        format!("/tasks?job={}", form_encode(SCRIPT)),
    ] {
        let reply = send(&app, get(&path)).await;
        let html = reply.body;
        assert!(!html.contains(SCRIPT), "{path} shows a raw <script>:\n{html}");
        assert!(!html.contains("<img src=x onerror=alert(1)>"), "{path} shows a raw <img>:\n{html}");
        assert!(!html.contains("\"><img"), "{path} breaks out of an attribute:\n{html}");
    }
    let task = page(&app, &format!("/tasks/{keyed}")).await;
    assert!(task.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "the arguments show as text");
    assert!(task.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"), "the queue and key show as text");
    let dead_page = page(&app, "/dead").await;
    assert!(dead_page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "the error shows as text");

    // And the browser would not run inline script anyway.
    let csp = send(&app, get("/")).await.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
}

#[tokio::test]
async fn a_token_guards_every_request() {
    let backend = MemoryBackend::new();
    backend.enqueue(Echo { text: "x".into() }).await.unwrap();
    let app = Board::new().backend("main", backend.clone()).token("s3cret").router();

    for path in ["/", "/tasks", "/api/overview", "/assets/board.css", "/tasks/1"] {
        let reply = send(&app, get(path)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(!reply.body.contains("s3cret"));
    }
    let wrong = Request::get("/").header(header::AUTHORIZATION, "Bearer nope").body(Body::empty()).unwrap();
    assert_eq!(send(&app, wrong).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(send(&app, get("/?token=nope")).await.status, StatusCode::UNAUTHORIZED);
    let refused = send(&app, post("/queues/pause", "queue=default")).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);

    let bearer = Request::get("/").header(header::AUTHORIZATION, "Bearer s3cret").body(Body::empty()).unwrap();
    assert_eq!(send(&app, bearer).await.status, StatusCode::OK);

    // `?token=` sets a cookie and redirects to the same page without it.
    let first = send(&app, get("/tasks?state=pending&token=s3cret")).await;
    assert_eq!((first.status, location(&first)), (StatusCode::SEE_OTHER, "/tasks?state=pending"));
    let cookie = first.headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && !cookie.contains("s3cret"));
    let pair = cookie.split(';').next().unwrap().to_owned();
    let with_cookie =
        Request::get("/tasks").header(header::COOKIE, format!("theme=dark; {pair}")).body(Body::empty()).unwrap();
    assert_eq!(send(&app, with_cookie).await.status, StatusCode::OK);

    // The token is not the CSRF token: an action still needs the form's.
    let action = Request::post("/queues/pause")
        .header(header::AUTHORIZATION, "Bearer s3cret")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("queue=default"))
        .unwrap();
    assert_eq!(send(&app, action).await.status, StatusCode::FORBIDDEN);

    // Nested, the redirect and the cookie keep the mount path.
    let nested = Router::new().nest("/board", Board::new().backend("main", backend).token("s3cret").router());
    let first = send(&nested, get("/board/dead?token=s3cret")).await;
    assert_eq!(location(&first), "/board/dead");
    assert!(first.headers[header::SET_COOKIE].to_str().unwrap().contains("Path=/board"));
}

#[tokio::test]
async fn a_reachable_address_needs_a_token() {
    for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.1:9300"] {
        let board = Board::new().backend("main", MemoryBackend::new());
        let refused = Server::new(board).addr(addr.parse().unwrap()).bind().await;
        let error = refused.expect_err("a non-loopback bind without a token");
        assert!(matches!(error, ServeError::TokenRequired { .. }), "{addr}: {error}");
        assert!(error.to_string().contains("without a token"), "{error}");
    }
    // An empty token is no token.
    let board = Board::new().backend("main", MemoryBackend::new());
    let refused = Server::new(board).addr("0.0.0.0:0".parse().unwrap()).token(Some(String::new())).bind().await;
    assert!(matches!(refused, Err(ServeError::TokenRequired { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_serves_on_loopback() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let backend = MemoryBackend::new();
    backend.enqueue(Echo { text: "x".into() }).await.unwrap();
    let board = Board::new().backend("main", backend);
    let listening =
        Server::new(board).addr("127.0.0.1:0".parse().unwrap()).token(Some("t".into())).bind().await.unwrap();
    let addr = listening.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(listening.run_until(async move {
        let _ = stopped.await;
    }));
    for (auth, expect) in [("", "401 Unauthorized"), ("Authorization: Bearer t\r\n", "200 OK")] {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET /api/overview HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with(&format!("HTTP/1.1 {expect}")), "{response}");
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn nested_and_several_backends() {
    let main = MemoryBackend::new();
    let id = main.enqueue(Echo { text: "m".into() }).await.unwrap();
    let reports = MemoryBackend::new();
    reports.enqueue(Fail { why: "r".into() }).await.unwrap();

    // One backend under /board: links carry the mount path.
    let app = Router::new().nest("/board", errand_board::router(main.clone()));
    let html = page(&app, "/board").await;
    assert!(html.contains(r#"href="/board/tasks""#) && html.contains(r#"href="/board/assets/board.css?v="#));
    assert!(html.contains(r#"data-poll="/board/api/overview""#));
    assert!(page(&app, &format!("/board/tasks/{id}")).await.contains(r#"action="/board/tasks/"#));

    // Several backends: each under its name, `/` leads to the first.
    let board = Board::new().backend("Main", main).backend("reports", reports);
    assert_eq!(board.backends().collect::<Vec<_>>(), ["Main", "reports"]);
    let app = Router::new().nest("/jobs", board.router());
    let index = send(&app, get("/jobs")).await;
    assert_eq!(location(&index), "/jobs/main");
    let html = page(&app, "/jobs/reports").await;
    assert!(
        html.contains("billing")
            && html.contains(r#"href="/jobs/main""#)
            && html.contains(r#"href="/jobs/reports/dead""#)
    );
    assert!(html.contains(r#"href="/jobs/assets/board.css?v="#));
    assert!(page(&app, "/jobs/main/tasks").await.contains(&format!("#{id}")));
    assert_eq!(send(&app, get("/jobs/assets/board.js")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn metrics_are_served_behind_the_token() {
    let main = MemoryBackend::new();
    main.enqueue(Echo { text: "m".into() }).await.unwrap();
    let reports = MemoryBackend::new();
    reports.enqueue(Fail { why: "r".into() }).await.unwrap();
    reports.enqueue(Fail { why: "s".into() }).await.unwrap();
    let app = Board::new().backend("main", main).backend("reports", reports).token("s3cret").router();

    assert_eq!(send(&app, get("/metrics")).await.status, StatusCode::UNAUTHORIZED);
    let bearer = Request::get("/metrics").header(header::AUTHORIZATION, "Bearer s3cret").body(Body::empty()).unwrap();
    let reply = send(&app, bearer).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(reply.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    // Each backend's depth, under its board name.
    let line = |backend: &str, queue: &str| {
        reply
            .body
            .lines()
            .find(|l| {
                l.starts_with("errand_queue_tasks{")
                    && l.contains(&format!("backend=\"{backend}\""))
                    && l.contains(&format!("queue=\"{queue}\""))
                    && l.contains("state=\"pending\"")
            })
            .map(str::to_owned)
    };
    assert_eq!(line("main", "default").as_deref().and_then(|l| l.rsplit(' ').next()), Some("1"), "{}", reply.body);
    assert_eq!(line("reports", "billing").as_deref().and_then(|l| l.rsplit(' ').next()), Some("2"), "{}", reply.body);
}
