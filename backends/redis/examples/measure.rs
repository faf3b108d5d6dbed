//! Run with: `cargo run --release -p errand-redis --example measure [scenario…]`
//! (scenarios: `memory`, `single`, `drain` (2k and 200k queued), `drain-2k`,
//! `drain-200k`, `drain-1m`, `latency`; all by default; `ERRAND_REDIS_URL`
//! picks the server).
//!
//! Rough figures for the Redis backend on this machine: memory per waiting
//! task, bulk enqueue rate, drain rate of a noop job at concurrency 64, and
//! enqueue→start latency on an idle worker. Uses a key prefix of its own and
//! deletes its keys (`SCAN` + `UNLINK`) before and after each scenario. Not
//! a benchmark harness (see `benches/`).

#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use errand_redis::RedisBackend;
use errand_runtime::{BackendExt, Job, JobError, Monitor, TaskCx, TaskSink, WorkerBuilder};
use redis::aio::MultiplexedConnection;
use tokio::sync::mpsc;

/// The key prefix of the measurements: no key outside it is touched.
const NAMESPACE: &str = "errand-measure:";

#[derive(serde::Serialize, serde::Deserialize)]
struct Noop {
    n: u64,
}

impl Job for Noop {
    const NAME: &'static str = "noop";
    const QUEUE: &'static str = "measure";
    type Output = ();
    async fn run(self, _cx: TaskCx) -> Result<(), JobError> {
        Ok(())
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Ping;

impl Job for Ping {
    const NAME: &'static str = "ping";
    const QUEUE: &'static str = "measure-latency";
    type Output = ();
    async fn run(self, cx: TaskCx) -> Result<(), JobError> {
        if let Some(tx) = cx.data::<mpsc::UnboundedSender<Instant>>() {
            let _ = tx.send(Instant::now());
        }
        Ok(())
    }
}

async fn used_memory(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO").arg("memory").query_async(conn).await.unwrap_or_default();
    info.lines().find_map(|l| l.strip_prefix("used_memory:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// Deletes every key under [`NAMESPACE`] (`SCAN` + `UNLINK`, never a flush).
async fn delete_keys(conn: &mut MultiplexedConnection) {
    let pattern = format!("{NAMESPACE}*");
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .unwrap_or_else(|e| panic!("list the keys under `{NAMESPACE}`: {e}"));
        if !keys.is_empty() {
            let _: u64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(conn)
                .await
                .unwrap_or_else(|e| panic!("delete the keys under `{NAMESPACE}`: {e}"));
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

/// A backend on an empty namespace. A backend caches the queue registry
/// that deleting the keys removes, so every scenario connects anew.
async fn fresh(url: &str, conn: &mut MultiplexedConnection) -> RedisBackend {
    delete_keys(conn).await;
    RedisBackend::builder().namespace(NAMESPACE).connect(url).await.unwrap_or_else(|e| panic!("{e}"))
}

async fn drain(backend: &RedisBackend, queued: u64) -> f64 {
    let jobs = (0..queued).map(|n| Noop { n });
    backend.enqueue_bulk(jobs).await.unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let watch = backend.clone();
    Monitor::new()
        .register(WorkerBuilder::<Noop, _>::new(backend.clone()).concurrency(64))
        .run_until(async move {
            loop {
                let c = watch.queue_counts(Noop::QUEUE).await.unwrap_or_default();
                if c.pending + c.running + c.retry == 0 {
                    break;
                }
                // 1 ms: a 2,000-task drain takes about 20 ms.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    queued as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let url = std::env::var("ERRAND_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let client = redis::Client::open(url.as_str()).unwrap_or_else(|e| panic!("{e}"));
    let mut conn = client.get_multiplexed_async_connection().await.unwrap_or_else(|e| panic!("{e}"));

    let only: Vec<String> = std::env::args().skip(1).collect();
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);

    // Memory per waiting task, and bulk enqueue rate.
    if wanted("memory") {
        let backend = fresh(&url, &mut conn).await;
        let n = 100_000_u64;
        let before = used_memory(&mut conn).await;
        let started = Instant::now();
        let ids = backend.enqueue_bulk((0..n).map(|n| Noop { n })).await.unwrap_or_else(|e| panic!("{e}"));
        let elapsed = started.elapsed();
        let after = used_memory(&mut conn).await;
        let usage = |name: &str| {
            let key = format!("{NAMESPACE}{{measure}}:{name}");
            let mut conn = conn.clone();
            async move {
                redis::cmd("MEMORY")
                    .arg("USAGE")
                    .arg(key)
                    .arg("SAMPLES")
                    .arg(0)
                    .query_async::<u64>(&mut conn)
                    .await
                    .unwrap_or(0)
            }
        };
        let (records, ready) = (usage("t").await, usage("r:noop").await);
        println!(
            "bulk enqueue: {n} tasks in {elapsed:.2?} = {:.0}/s ({} ids)",
            n as f64 / elapsed.as_secs_f64(),
            ids.len()
        );
        println!(
            "memory per waiting task: {:.0} bytes (INFO used_memory delta / {n}); of which records {:.0}, ready set {:.0} (MEMORY USAGE); payload {} bytes",
            (after.saturating_sub(before)) as f64 / n as f64,
            records as f64 / n as f64,
            ready as f64 / n as f64,
            serde_json::to_vec(&Noop { n: 500 }).map(|v| v.len()).unwrap_or(0),
        );
    }

    // Single enqueues, one at a time.
    if wanted("single") {
        let backend = fresh(&url, &mut conn).await;
        let started = Instant::now();
        for n in 0..5_000 {
            backend.enqueue(Noop { n }).await.unwrap_or_else(|e| panic!("{e}"));
        }
        println!("single enqueue (sequential): {:.0}/s", 5_000.0 / started.elapsed().as_secs_f64());
    }

    for queued in [2_000, 200_000, 1_000_000] {
        let scenario = match queued {
            2_000 => "drain-2k",
            1_000_000 => "drain-1m",
            _ => "drain-200k",
        };
        if !(wanted("drain") && queued < 1_000_000 || wanted(scenario)) {
            continue;
        }
        let backend = fresh(&url, &mut conn).await;
        let rate = drain(&backend, queued).await;
        println!("drain, noop, concurrency 64, {queued} queued: {rate:.0} jobs/s");
    }

    // Enqueue → start latency on an idle worker.
    if wanted("latency") {
        let backend = fresh(&url, &mut conn).await;
        let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
        let worker = WorkerBuilder::<Ping, _>::new(backend.clone()).data(tx).concurrency(4);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let monitor = tokio::spawn(Monitor::new().register(worker).run_until(async move {
            let _ = stop_rx.await;
        }));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut samples = Vec::new();
        for _ in 0..500 {
            let sent = Instant::now();
            backend.enqueue(Ping).await.unwrap_or_else(|e| panic!("{e}"));
            if let Some(started) = rx.recv().await {
                samples.push(started.duration_since(sent));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let _ = stop_tx.send(());
        let _ = monitor.await;
        samples.sort();
        let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
        println!("enqueue→start on an idle worker (same process): p50 {:?}, p99 {:?}", pct(0.5), pct(0.99));
    }
    delete_keys(&mut conn).await;
}
