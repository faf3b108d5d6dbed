//! The board in a real browser: headless Chromium driven over WebDriver
//! (chromedriver, which this test starts itself) against a board on
//! 127.0.0.1 over the memory backend with real workers.
//!
//! It checks the overview's counts against `Expose::counts`, retries a dead
//! task from its page (accepting the confirmation) and watches it turn
//! done, pauses a queue from the overview and sees its workers stop
//! claiming, and renders a workflow run's graph. It saves screenshots under
//! `target/board-screenshots/` (`$CARGO_TARGET_DIR/board-screenshots/` when
//! that is set).
//!
//! Without chromedriver (`/usr/bin/chromedriver`, or `$CHROMEDRIVER`) it
//! says so and passes, unless `ERRAND_REQUIRE_SERVICES=1`, where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests: a failure is the test failing

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use errand_board::{Board, Server};
use errand_runtime::memory::MemoryBackend;
use errand_runtime::{Enqueue, Expose, TaskId, TaskSink, TaskState, WorkflowExt, WorkflowStore};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep};

mod common;

use common::{Echo, Export, Fail, Flaky, Publish, SyncCrm, Thumbnail, Workers, wait_for_state};

fn chromedriver() -> Option<PathBuf> {
    let candidates =
        [std::env::var_os("CHROMEDRIVER").map(PathBuf::from), Some(PathBuf::from("/usr/bin/chromedriver"))];
    candidates.into_iter().flatten().find(|p| p.is_file())
}

fn chromium() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("CHROMIUM").map(PathBuf::from),
        Some(PathBuf::from("/usr/bin/chromium")),
        Some(PathBuf::from("/usr/bin/chromium-browser")),
    ];
    candidates.into_iter().flatten().find(|p| p.is_file())
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target"));
    target.join("board-screenshots")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_chromedriver(path: &Path) -> (Child, String) {
    let port = free_port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen on port {port} within 20 s");
        sleep(Duration::from_millis(50)).await;
    }
    (child, format!("http://127.0.0.1:{port}"))
}

async fn browser(webdriver: &str, binary: Option<&Path>) -> Client {
    let mut options = json!({
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1440,1000", "--hide-scrollbars", "--force-device-scale-factor=1"],
    });
    if let Some(binary) = binary {
        options["binary"] = json!(binary.display().to_string());
    }
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert("goog:chromeOptions".into(), options);
    // Confirmation dialogs are answered by the test, never by the driver.
    caps.insert("unhandledPromptBehavior".into(), json!("ignore"));
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(webdriver)
        .await
        .unwrap_or_else(|e| panic!("cannot open a Chromium session through {webdriver}: {e}"))
}

/// A page's full height as a PNG, saved as `name`.
async fn shoot(client: &Client, name: &str) {
    let height = client
        .execute("return Math.ceil(document.documentElement.scrollHeight);", vec![])
        .await
        .unwrap()
        .as_u64()
        .unwrap_or(1000);
    let height = u32::try_from(height.clamp(700, 4000)).unwrap_or(1000);
    client.set_window_size(1440, height + 90).await.unwrap();
    sleep(Duration::from_millis(400)).await;
    let png = client.screenshot().await.unwrap();
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), png).unwrap();
    client.set_window_size(1440, 1000).await.unwrap();
}

/// Waits up to `secs` for `check` to hold.
async fn eventually<F, Fut>(what: &str, secs: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        sleep(Duration::from_millis(100)).await;
    }
}

async fn text(client: &Client, css: &str) -> String {
    match client.find(Locator::Css(css)).await {
        Ok(element) => element.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Waits for the confirmation dialog, checks it asks about `about`, and
/// accepts or dismisses it.
async fn answer_confirm(client: &Client, about: &str, accept: bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let question = loop {
        match client.get_alert_text().await {
            Ok(text) => break text,
            Err(_) => {
                assert!(Instant::now() < deadline, "no confirmation dialog");
                sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert!(question.contains(about), "the dialog asks {question:?}");
    if accept {
        client.accept_alert().await.unwrap();
    } else {
        client.dismiss_alert().await.unwrap();
    }
}

fn number(s: &str) -> u64 {
    s.chars().filter(char::is_ascii_digit).collect::<String>().parse().unwrap_or(u64::MAX)
}

/// The counts the overview shows, per queue and state, and its totals.
async fn shown_counts(client: &Client) -> Vec<(String, String, u64)> {
    let mut out = Vec::new();
    for row in client.find_all(Locator::Css("tr[data-queue]")).await.unwrap() {
        let queue = row.attr("data-queue").await.unwrap().unwrap_or_default();
        for state in TaskState::ALL {
            let cell = row.find(Locator::Css(&format!(r#"[data-k="{state}"]"#))).await.unwrap();
            out.push((queue.clone(), state.to_string(), number(&cell.text().await.unwrap())));
        }
    }
    for state in [TaskState::Pending, TaskState::Running, TaskState::Retry, TaskState::Dead, TaskState::Done] {
        out.push(("*".into(), state.to_string(), number(&text(client, &format!(r#"[data-total="{state}"]"#)).await)));
    }
    out
}

async fn expected_counts(backend: &MemoryBackend) -> Vec<(String, String, u64)> {
    let counts = backend.counts().await.unwrap();
    let mut out = Vec::new();
    for c in &counts {
        for state in TaskState::ALL {
            out.push((c.queue.clone(), state.to_string(), c.get(state)));
        }
    }
    for state in [TaskState::Pending, TaskState::Running, TaskState::Retry, TaskState::Dead, TaskState::Done] {
        out.push(("*".into(), state.to_string(), counts.iter().map(|c| c.get(state)).sum()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_in_a_browser() {
    let Some(driver) = chromedriver() else {
        let required = std::env::var("ERRAND_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "chromedriver is missing (apt-get install chromium chromium-driver) and ERRAND_REQUIRE_SERVICES=1"
        );
        println!("skipped: no chromedriver (apt-get install chromium chromium-driver, or set CHROMEDRIVER)");
        return;
    };
    let (mut chromedriver, webdriver) = start_chromedriver(&driver).await;

    // A backend with a bit of everything, and workers for it.
    let backend = MemoryBackend::new();
    let workers = Workers::start(&backend);
    for i in 0..12 {
        backend.enqueue(Echo { text: format!("welcome email #{i}") }).await.unwrap();
    }
    for (i, why) in ["card declined: insufficient funds", "card expired (04/24)"].into_iter().enumerate() {
        let id = backend.enqueue(Fail { why: why.to_owned() }).await.unwrap();
        wait_for_state(&backend, id, TaskState::Dead).await;
        let _ = i;
    }
    let flaky = backend.enqueue(Flaky { order: 1042 }).await.unwrap();
    wait_for_state(&backend, flaky, TaskState::Dead).await;
    for account in [7, 19] {
        let id = backend.enqueue(SyncCrm { account }).await.unwrap();
        wait_for_state(&backend, id, TaskState::Retry).await;
    }
    let mut exports = Vec::new();
    for (report, rows) in [("Q3 revenue", 900), ("churn by cohort", 1200)] {
        exports.push(backend.enqueue(Export { report: report.into(), rows }).await.unwrap());
    }
    for i in 0..3 {
        backend
            .enqueue_with(
                Echo { text: format!("digest {i}") },
                Enqueue::new().delay(Duration::from_secs(3600)).unique_key(format!("digest-{i}")),
            )
            .await
            .unwrap();
    }
    let run = backend.start(Publish(7)).await.unwrap();
    backend.workflow(run).wait_timeout(Duration::from_secs(10)).await.unwrap();
    let failed_run = backend.start(Publish(13)).await.unwrap();
    assert!(backend.workflow(failed_run).wait_timeout(Duration::from_secs(10)).await.is_err());
    for id in &exports {
        wait_for_state(&backend, *id, TaskState::Running).await;
    }

    let board = Board::new().backend("main", backend.clone());
    let listening = Server::new(board).addr(SocketAddr::from(([127, 0, 0, 1], 0))).bind().await.unwrap();
    let url = format!("http://{}", listening.local_addr());
    let (stop_board, board_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(listening.run_until(async move {
        let _ = board_stopped.await;
    }));

    let client = browser(&webdriver, chromium().as_deref()).await;

    // The overview, while work comes in: the live view and the charts fill.
    client.goto(&url).await.unwrap();
    assert_eq!(text(&client, "h1").await, "Overview");
    let feeder = {
        let backend = backend.clone();
        tokio::spawn(async move {
            // Twenty seconds of uneven load: a wave of emails, thumbnails
            // that back up, now and then a card that fails.
            for round in 0..40u32 {
                let wave = [2, 4, 7, 9, 6, 3, 1, 2][round as usize % 8];
                for i in 0..wave {
                    backend.enqueue(Echo { text: format!("burst {round}.{i}") }).await.unwrap();
                }
                if round < 24 && round % 3 == 0 {
                    for i in 0..8 {
                        backend.enqueue(Thumbnail { image: format!("img-{round}-{i}") }).await.unwrap();
                    }
                }
                if round % 13 == 5 {
                    backend.enqueue(Fail { why: format!("card declined (burst {round})") }).await.unwrap();
                }
                sleep(Duration::from_millis(500)).await;
            }
        })
    };
    feeder.await.unwrap();
    eventually("the burst is done", 20, || async {
        let counts = backend.counts().await.unwrap();
        let idle =
            |queue: &str| counts.iter().find(|c| c.queue == queue).is_some_and(|c| c.running == 0 && c.pending == 0);
        counts.iter().find(|c| c.queue == "default").is_some_and(|c| c.pending == 3) && idle("media") && idle("billing")
    })
    .await;
    sleep(Duration::from_millis(2500)).await; // one more sample
    client.refresh().await.unwrap();
    // Counts as `Expose` has them, after the live view's next poll too.
    let expected = expected_counts(&backend).await;
    assert_eq!(shown_counts(&client).await, expected, "the overview shows what Expose counts");
    sleep(Duration::from_millis(2500)).await;
    assert_eq!(shown_counts(&client).await, expected_counts(&backend).await, "the live view keeps them");
    assert_eq!(text(&client, "#live").await, "live");
    assert!(client.find(Locator::Css("#charts svg")).await.is_ok(), "the charts are drawn");
    let running = client.find_all(Locator::Css("#running tr")).await.unwrap().len();
    assert_eq!(running, 2, "the two exports are running");
    shoot(&client, "overview.png").await;

    // Tasks, workers, dead tasks.
    client.goto(&format!("{url}/tasks?limit=25")).await.unwrap();
    shoot(&client, "tasks.png").await;
    client.goto(&format!("{url}/workers")).await.unwrap();
    assert_eq!(client.find_all(Locator::Css("table.workers tbody tr")).await.unwrap().len(), 7);
    shoot(&client, "workers.png").await;
    client.goto(&format!("{url}/dead")).await.unwrap();
    shoot(&client, "dead.png").await;

    // Open the dead task and retry it: no on "cancel", then yes.
    client.find(Locator::Css(&format!(r#"table.dead a[href="/tasks/{flaky}"]"#))).await.unwrap().click().await.unwrap();
    eventually("the task page opens", 10, || async {
        text(&client, "h1").await.starts_with(&format!("Task #{flaky}"))
    })
    .await;
    assert_eq!(text(&client, "#state .badge").await, "dead");
    shoot(&client, "task-dead.png").await;
    client.find(Locator::Css(r#"form[action$="/retry"] button"#)).await.unwrap().click().await.unwrap();
    answer_confirm(&client, &format!("Retry task #{flaky}"), false).await;
    sleep(Duration::from_millis(300)).await;
    assert_eq!(backend.task(flaky).await.unwrap().unwrap().state, TaskState::Dead, "dismissed: nothing happens");
    client.find(Locator::Css(r#"form[action$="/retry"] button"#)).await.unwrap().click().await.unwrap();
    answer_confirm(&client, &format!("Retry task #{flaky}"), true).await;
    eventually("the retried task turns done on its page", 20, || async {
        text(&client, "#state .badge").await == "done"
    })
    .await;
    assert_eq!(backend.task(flaky).await.unwrap().unwrap().state, TaskState::Done);
    assert!(client.source().await.unwrap().contains("invoice 1042 sent"), "the result shows");
    shoot(&client, "task.png").await;

    // Pause the default queue from the overview: its workers stop claiming.
    client.goto(&url).await.unwrap();
    let pause = r#"tr[data-queue="default"] form[action$="/queues/pause"] button"#;
    client.find(Locator::Css(pause)).await.unwrap().click().await.unwrap();
    answer_confirm(&client, "Pause queue “default”", true).await;
    eventually("the queue shows paused", 10, || async {
        client.find(Locator::Css(r#"tr[data-queue="default"] [data-paused="true"]"#)).await.is_ok()
    })
    .await;
    assert!(backend.counts().await.unwrap().iter().any(|c| c.queue == "default" && c.paused));
    let held: Vec<TaskId> = {
        let mut ids = Vec::new();
        for i in 0..2 {
            ids.push(backend.enqueue(Echo { text: format!("held {i}") }).await.unwrap());
        }
        ids
    };
    sleep(Duration::from_millis(2500)).await;
    for id in &held {
        assert_eq!(
            backend.task(*id).await.unwrap().unwrap().state,
            TaskState::Pending,
            "a paused queue is not claimed"
        );
    }
    eventually("the live view shows the held tasks", 10, || async {
        number(&text(&client, r#"tr[data-queue="default"] [data-k="pending"]"#).await) == 5
    })
    .await;
    shoot(&client, "paused.png").await;
    client
        .find(Locator::Css(r#"tr[data-queue="default"] form[action$="/queues/resume"] button"#))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    answer_confirm(&client, "Resume queue “default”", true).await;
    for id in &held {
        wait_for_state(&backend, *id, TaskState::Done).await;
    }
    eventually("the queue shows resumed", 10, || async {
        client.find(Locator::Css(r#"tr[data-queue="default"] form[action$="/queues/pause"]"#)).await.is_ok()
    })
    .await;

    // Workflow runs, and each run's graph: one node per step.
    client.goto(&format!("{url}/runs")).await.unwrap();
    assert_eq!(client.find_all(Locator::Css("table.runs tbody tr")).await.unwrap().len(), 2);
    shoot(&client, "runs.png").await;
    client
        .find(Locator::Css(&format!(r#"table.runs a[href="/runs/{}"]"#, run.id())))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    eventually("the run page opens", 10, || async {
        text(&client, "h1").await.starts_with(&format!("Run #{}", run.id()))
    })
    .await;
    let nodes = client.find_all(Locator::Css("svg.dag g.node")).await.unwrap();
    let steps = backend.run_info(run.id()).await.unwrap().unwrap().steps;
    assert_eq!(nodes.len(), steps.len());
    assert_eq!(nodes.len(), 5);
    for (node, step) in nodes.iter().zip(&steps) {
        assert_eq!(node.attr("data-step").await.unwrap().as_deref(), Some(step.name.as_str()));
        assert_eq!(node.attr("class").await.unwrap().as_deref(), Some("node s-done"));
    }
    assert_eq!(client.find_all(Locator::Css("svg.dag path.edge")).await.unwrap().len(), 5);
    shoot(&client, "run.png").await;
    client.goto(&format!("{url}/runs/{}", failed_run.id())).await.unwrap();
    assert_eq!(client.find_all(Locator::Css("svg.dag g.node")).await.unwrap().len(), 5);
    assert!(client.find(Locator::Css(r#"svg.dag g.node.s-dead[data-step="publish"]"#)).await.is_ok());
    shoot(&client, "run-failed.png").await;

    client.close().await.unwrap();
    let _ = stop_board.send(());
    server.await.unwrap().unwrap();
    for id in exports {
        backend.cancel_task(id).await.unwrap();
    }
    workers.stop().await;
    let _ = chromedriver.kill().await;
}
