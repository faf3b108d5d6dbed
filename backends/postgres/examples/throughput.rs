//! Run with: `cargo run --release -p errand-postgres --example throughput [tasks]`
//!
//! A rough measurement of this backend on the local server (not a test, and
//! no assertion): bulk and single enqueue rate, drain rate of a no-op job at
//! concurrency 64 with 2,000 and with `tasks` (100,000 by default) queued, and
//! enqueue→start latency of an idle worker woken by NOTIFY. Uses a scratch
//! schema that it drops at the end.

#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use errand_postgres::PostgresBackend;
use errand_runtime::{BackendExt, Job, JobError, Monitor, Requirements, TaskCx, TaskSink, WorkerBuilder};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Noop;

impl Job for Noop {
    const NAME: &'static str = "noop";
    const QUEUE: &'static str = "bench";
    type Output = ();
    async fn run(self, _cx: TaskCx) -> Result<(), JobError> {
        Ok(())
    }
}

type Starts = Arc<Mutex<HashMap<u64, Instant>>>;

#[derive(Serialize, Deserialize)]
struct Ping {
    n: u64,
}

impl Job for Ping {
    const NAME: &'static str = "ping";
    const QUEUE: &'static str = "latency";
    type Output = ();
    fn requirements(r: &mut Requirements) {
        r.data::<Starts>();
    }
    async fn run(self, cx: TaskCx) -> Result<(), JobError> {
        if let Some(starts) = cx.data::<Starts>() {
            starts.lock().unwrap_or_else(PoisonError::into_inner).insert(self.n, Instant::now());
        }
        Ok(())
    }
}

async fn drain(backend: &PostgresBackend, queued: u64) -> f64 {
    backend.enqueue_bulk((0..queued).map(|_| Noop)).await.unwrap_or_else(|e| panic!("{e}"));
    let watch = backend.clone();
    let started = Instant::now();
    Monitor::new()
        .register(WorkerBuilder::<Noop, _>::new(backend.clone()).concurrency(64))
        .run_until(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let c = watch.queue_counts(Noop::QUEUE).await.unwrap_or_default();
                if c.pending + c.running == 0 {
                    return;
                }
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    queued as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let big: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let url =
        std::env::var("ERRAND_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("errand_bench_{}", std::process::id());
    let backend = PostgresBackend::connect_schema(&url, &schema).await.unwrap_or_else(|e| panic!("{e}"));

    let n = 100_000;
    let t = Instant::now();
    backend.enqueue_bulk((0..n).map(|_| Noop)).await.unwrap_or_else(|e| panic!("{e}"));
    println!("bulk enqueue      {:>10.0} jobs/s ({n} in one call)", n as f64 / t.elapsed().as_secs_f64());
    let t = Instant::now();
    for _ in 0..2_000 {
        backend.enqueue(Noop).await.unwrap_or_else(|e| panic!("{e}"));
    }
    println!("single enqueue    {:>10.0} jobs/s (sequential)", 2_000.0 / t.elapsed().as_secs_f64());
    sqlx_clear(&backend).await;

    println!("drain, 2,000      {:>10.0} jobs/s (noop, concurrency 64)", drain(&backend, 2_000).await);
    sqlx_clear(&backend).await;
    println!("drain, {big:<10} {:>10.0} jobs/s (noop, concurrency 64)", drain(&backend, big).await);

    let starts: Starts = Arc::default();
    let running = {
        let monitor = Monitor::new().register(WorkerBuilder::<Ping, _>::new(backend.clone()).data(Arc::clone(&starts)));
        tokio::spawn(monitor.run_until(tokio::time::sleep(Duration::from_secs(3600))))
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut latencies = Vec::new();
    for i in 0..300 {
        let enqueued = Instant::now();
        backend.enqueue(Ping { n: i }).await.unwrap_or_else(|e| panic!("{e}"));
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let started = starts.lock().unwrap_or_else(PoisonError::into_inner).get(&i).copied();
            if let Some(started) = started {
                latencies.push(started.duration_since(enqueued));
                break;
            }
            if Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    running.abort();
    latencies.sort();
    let pct = |p: usize| latencies.get(latencies.len() * p / 100).copied().unwrap_or_default();
    println!("enqueue→start     p50 {:?}, p99 {:?} ({} samples)", pct(50), pct(99), latencies.len());

    let _ = errand_postgres::sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE")).execute(backend.pool()).await;
}

async fn sqlx_clear(backend: &PostgresBackend) {
    let sql = format!("TRUNCATE \"{}\".tasks", backend.schema_name());
    errand_postgres::sqlx::query(&sql).execute(backend.pool()).await.unwrap_or_else(|e| panic!("{e}"));
}
