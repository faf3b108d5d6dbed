//! Run with: `cargo run --example mysql --features mysql`
//!
//! errand on MySQL 8.0+ or MariaDB 10.6+: connects to `ERRAND_MYSQL_URL`
//! (default `mysql://root@127.0.0.1:3306/test`), keeps its tables under a
//! prefix of its own (`errand_example_*`), enqueues a few tasks — one inside
//! an application transaction, one in bulk, one delayed — runs a worker,
//! prints the results and exits by itself, dropping its tables.

#![allow(clippy::print_stdout)] // an example talks to its user

use std::time::Instant;

use errand::mysql::MysqlBackend;
use errand::mysql::sqlx;
use errand::prelude::*;
use errand::{BackendExt, TaskState};

/// Resizes an image; returns the new size in bytes (stored as the task's result).
#[errand::job(queue = "images", retries = 3)]
async fn resize(name: String, width: u32) -> Result<u64, JobError> {
    println!("  resize → {name} to {width}px");
    Ok(u64::from(width) * 64)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("ERRAND_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned());
    // Creates the tables on first use (safe from many processes at once).
    let backend = MysqlBackend::builder().namespace("errand_example_").connect(&url).await?;

    let first = backend.enqueue(Resize::new("cat.png".into(), 640)).await?;
    // Atomically with the application's own writes: the task exists iff the
    // transaction commits; workers of other processes find it on their next
    // idle poll once it has.
    let mut tx = backend.pool().begin().await?;
    let second = backend.enqueue_in(&mut tx, Resize::new("dog.png".into(), 320)).await?;
    tx.commit().await?;
    let bulk = backend.enqueue_bulk((1..=5).map(|i| Resize::new(format!("thumb-{i}.png"), 32 * i))).await?;
    let later = backend
        .enqueue_with(Resize::new("banner.png".into(), 1200), Enqueue::new().delay(Duration::from_millis(500)))
        .await?;

    let started = Instant::now();
    let watch = backend.clone();
    let ids: Vec<TaskId> = [first, second, later].into_iter().chain(bulk).collect();
    let all = ids.clone();
    Monitor::new()
        .register(Resize::worker(&backend).concurrency(8))
        .run_until(async move {
            // Stop once every task is done (or after 30 s, whatever happens).
            while started.elapsed() < Duration::from_secs(30) {
                let mut finished = 0;
                for id in &all {
                    if matches!(watch.task(*id).await, Ok(Some(t)) if t.state == TaskState::Done) {
                        finished += 1;
                    }
                }
                if finished == all.len() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await?;

    for id in ids {
        println!("task {id}: {:?}", backend.result::<Resize>(id).await?);
    }
    println!("{:?}", backend.queue_counts("images").await?);

    // The example cleans up after itself.
    let tables = [
        "tasks",
        "unique_keys",
        "workers",
        "served_jobs",
        "runs",
        "run_steps",
        "paused_queues",
        "schedules",
        "migrations",
    ]
    .map(|t| format!("`{}{t}`", backend.namespace()))
    .join(", ");
    sqlx::query(&format!("DROP TABLE IF EXISTS {tables}")).execute(backend.pool()).await?;
    Ok(())
}
