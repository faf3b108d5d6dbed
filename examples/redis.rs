//! Run with: cargo run --example redis --features redis
//!
//! errand on Redis (`ERRAND_REDIS_URL`, default `redis://127.0.0.1:6379`):
//! a bulk enqueue, a delayed task and a job that fails once, each run by its
//! own worker, then a summary read back from Redis. The example keeps its
//! keys under a namespace of its own (`errand-example:`), and its finished
//! tasks expire a minute later; it exits by itself in about a second.

#![allow(clippy::print_stdout)] // an example reports what it does on stdout

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use errand::prelude::*;
use errand::redis::RedisBackend;

/// Counts words; the result is stored with the task.
#[errand::job(queue = "redis-example")]
async fn count_words(text: String, total: Data<AtomicU64>) -> Result<usize, JobError> {
    let words = text.split_whitespace().count();
    total.fetch_add(words as u64, Ordering::Relaxed);
    Ok(words)
}

/// Fails on its first attempt, succeeds on the retry.
#[errand::job(queue = "redis-example", retries = 3, backoff = "fixed(200ms)")]
async fn flaky_ping(host: String, cx: TaskCx) -> Result<String, JobError> {
    if cx.attempt() == 1 {
        println!("  flaky_ping   → {host}: attempt 1 failed, will retry");
        return Err(JobError::retry("connection reset by peer"));
    }
    Ok(format!("{host} answered on attempt {}", cx.attempt()))
}

/// Runs half a second after it was enqueued.
#[errand::job(queue = "redis-example")]
async fn remind(user: String) -> Result<(), JobError> {
    println!("  remind       → {user}, your trial ends tomorrow");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), errand::Error> {
    let url = std::env::var("ERRAND_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let backend = RedisBackend::builder()
        .namespace("errand-example:")
        .tuning(|t| t.retention(Duration::from_secs(60)))
        .connect(&url)
        .await?;
    println!("redis: {url}, namespace {}", backend.namespace());

    let started = Instant::now();
    let texts = (0..1_000).map(|i| CountWords::new(format!("task number {i} has six words")));
    let ids = backend.enqueue_bulk(texts).await?;
    let ping = backend.enqueue(FlakyPing::new("db-1".into())).await?;
    let reminder =
        backend.enqueue_with(Remind::new("ada".into()), Enqueue::new().delay(Duration::from_millis(500))).await?;
    println!("enqueued {} tasks in {:.1?}; starting workers\n", ids.len() + 2, started.elapsed());

    let watch = backend.clone();
    Monitor::new()
        .register(CountWords::worker(&backend).data(AtomicU64::new(0)).concurrency(32))
        .register(FlakyPing::worker(&backend))
        .register(Remind::worker(&backend))
        .run_until(async move {
            // Stop once every task has finished (or after 20 s, to be safe).
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                let counts = watch.counts().await.unwrap_or_default();
                if counts.iter().all(|q| q.pending + q.running + q.retry == 0) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await?;

    println!("\nresults after {:.1?}:", started.elapsed());
    println!("  task {} count_words → {:?}", ids[0], backend.result::<CountWords>(ids[0]).await?);
    println!("  task {ping} flaky_ping  → {:?}", backend.result::<FlakyPing>(ping).await?);
    println!("  task {reminder} remind      → {:?}", backend.task(reminder).await?.map(|t| t.state));
    for q in backend.counts().await? {
        println!("  queue {:<14} done {} dead {} pending {}", q.queue, q.done, q.dead, q.pending);
    }
    Ok(())
}
