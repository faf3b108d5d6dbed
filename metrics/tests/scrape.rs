//! A scrape of `/metrics` after a known workload shows its counts.

#![allow(clippy::expect_used)] // helpers of tests: a failure is the test failing

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use errand_runtime::memory::MemoryBackend;
use errand_runtime::testing::jobs::{Aborter, Flaky};
use errand_runtime::testing::{Probe, Running};
use errand_runtime::{BackendExt, JsonCodec, Monitor, TaskSink, WorkerBuilder};
use tower::ServiceExt;

/// The samples of a scrape: `name{labels}` → value.
fn parse(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The value of the series named `name` whose labels include every one of `labels`.
fn value(samples: &HashMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(series, _)| {
            series.split('{').next() == Some(name)
                && labels.iter().all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, v)| *v)
}

async fn scrape(app: &axum::Router) -> HashMap<String, f64> {
    let request = Request::get("/metrics").body(Body::empty()).expect("a request");
    let response = app.clone().oneshot(request).await.expect("the router answers");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(content_type.as_deref(), Some("text/plain; version=0.0.4; charset=utf-8"));
    let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("the body");
    parse(std::str::from_utf8(&body).expect("text"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_after_a_known_workload_shows_its_counts() {
    errand_metrics::install().expect("the recorder installs");
    assert!(errand_metrics::install().is_ok(), "installing again returns the same handle");
    let backend = MemoryBackend::<JsonCodec>::new();
    let app = errand_metrics::router(backend.clone());

    // 3 succeed at once (a bulk enqueue), 1 after a retry, 1 aborts; 2
    // more wait on a queue no worker serves.
    backend.enqueue_bulk((0..3).map(|key| Flaky { key, succeed_on: 1 })).await.expect("enqueue");
    backend.enqueue(Flaky { key: 3, succeed_on: 2 }).await.expect("enqueue");
    backend.enqueue(Aborter { key: 4 }).await.expect("enqueue");
    for key in 10..12 {
        let parked = errand_runtime::Enqueue::new().queue("parked");
        backend.enqueue_with(Flaky { key, succeed_on: 1 }, parked).await.expect("enqueue");
    }

    let probe = Probe::default();
    let flaky = WorkerBuilder::<Flaky, _>::new(backend.clone()).data(probe.clone());
    let aborter = WorkerBuilder::<Aborter, _>::new(backend.clone()).data(probe.clone());
    let running = Running::start(Monitor::new().register(flaky).register(aborter));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let counts = backend.queue_counts("conformance").await.expect("counts");
        if counts.done == 4 && counts.dead == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the workload did not finish: {counts:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    running.stop().await.expect("graceful stop");

    let samples = scrape(&app).await;
    let flaky = [("queue", "conformance"), ("job", "conformance_flaky")];
    let aborter = [("queue", "conformance"), ("job", "conformance_aborter")];
    let get = |name: &str, labels: &[(&str, &str)]| {
        value(&samples, name, labels).unwrap_or_else(|| {
            let mut names: Vec<&String> = samples.keys().collect();
            names.sort();
            panic!("no {name} {labels:?} in the scrape: {names:#?}")
        })
    };
    assert_eq!(get("errand_tasks_enqueued_total", &flaky), 4.0);
    assert_eq!(get("errand_tasks_enqueued_total", &aborter), 1.0);
    assert_eq!(get("errand_tasks_enqueued_total", &[("queue", "parked"), ("job", "conformance_flaky")]), 2.0);
    assert_eq!(get("errand_tasks_started_total", &flaky), 5.0, "4 tasks, one of them twice");
    assert_eq!(get("errand_tasks_done_total", &flaky), 4.0);
    assert_eq!(get("errand_tasks_retried_total", &flaky), 1.0);
    assert_eq!(get("errand_tasks_dead_total", &aborter), 1.0);
    assert_eq!(get("errand_tasks_started_total", &aborter), 1.0);
    assert_eq!(get("errand_task_run_seconds_count", &flaky), 5.0);
    assert_eq!(get("errand_task_wait_seconds_count", &flaky), 5.0);
    assert_eq!(get("errand_worker_in_flight", &flaky), 0.0, "nothing runs after the stop");
    assert!(get("errand_claim_batch_size_count", &flaky) >= 1.0);
    assert!(get("errand_ack_batch_size_sum", &flaky) >= 5.0, "every run's ack was written");
    let depth = |state| get("errand_queue_tasks", &[("backend", "memory"), ("queue", "conformance"), ("state", state)]);
    assert_eq!(depth("done"), 4.0);
    assert_eq!(depth("dead"), 1.0);
    assert_eq!(depth("pending"), 0.0);
    assert_eq!(get("errand_queue_tasks", &[("queue", "parked"), ("state", "pending")]), 2.0);
}
