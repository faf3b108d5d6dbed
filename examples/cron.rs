//! Run with: `cargo run --example cron`
//!
//! Schedules and sources on the embedded SQLite backend, no server needed:
//! a cron job that fires every two seconds (each tick once, however many
//! processes run it), a stream of jobs piped into the queue, a long job
//! reporting its progress, and a queue paused and resumed. Exits by itself
//! in about ten seconds.

#![allow(clippy::print_stdout)] // an example reports what it does on stdout

use std::time::Instant;

use errand::prelude::*;
use errand::sqlite::SqliteBackend;

/// Fires at every even second; `tick` is the time it was scheduled for.
#[errand::job(queue = "reports", cron = "*/2 * * * * *", timezone = "Europe/Paris", missed = "once")]
async fn heartbeat_report(tick: Tick) -> Result<(), JobError> {
    let late = tick.time().elapsed().map(|d| d.as_millis()).unwrap_or(0);
    println!("  report       → tick {} ran {late} ms after its time", tick.timestamp().as_millis() / 1000 % 100);
    Ok(())
}

/// A job fed from a stream: one per order event.
#[errand::job(queue = "orders")]
async fn index_order(order: u64) -> Result<(), JobError> {
    println!("  index_order  → order {order}");
    Ok(())
}

/// A long job that says how far it got.
#[errand::job(queue = "imports")]
async fn import_file(rows: u32, cx: TaskCx) -> Result<u32, JobError> {
    for row in 1..=rows {
        tokio::time::sleep(Duration::from_millis(30)).await;
        cx.progress((row * 100 / rows) as u8, format!("row {row} of {rows}"));
    }
    Ok(rows)
}

#[tokio::main]
async fn main() -> Result<(), errand::Error> {
    let path = std::env::temp_dir().join("errand-cron.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let backend = SqliteBackend::connect(&format!("sqlite://{}", path.display())).await?;
    println!("queue: {}\nschedule: {}", path.display(), HeartbeatReport::schedule().expression());

    // A stream of jobs, e.g. a CDC feed or a channel: piped in, in batches.
    let (orders, feed) = tokio::sync::mpsc::channel::<Result<IndexOrder, std::io::Error>>(16);
    let pipe = errand::pipe::from_receiver(feed).pipe_to(&backend);

    // The orders queue starts paused: its tasks wait until it is resumed.
    backend.pause_queue("orders").await?;
    for order in 1..=5 {
        let _ = orders.send(Ok(IndexOrder::new(order))).await;
    }
    let import = backend.enqueue(ImportFile::new(60)).await?;

    let steer = backend.clone();
    let started = Instant::now();
    Monitor::new()
        .register(HeartbeatReport::worker(&backend))
        .register(IndexOrder::worker(&backend))
        .register(ImportFile::worker(&backend))
        .run_until(async move {
            let mut resumed = false;
            while started.elapsed() < Duration::from_secs(9) {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if let Ok(Some(progress)) = steer.task_progress(import).await {
                    println!("  import_file  → {}% ({})", progress.percent, progress.message);
                }
                let counts = steer.queue_counts("orders").await.unwrap_or_default();
                if !resumed && started.elapsed() > Duration::from_secs(3) {
                    println!("  orders       → {} waiting while paused; resuming", counts.pending);
                    let _ = steer.resume_queue("orders").await;
                    resumed = true;
                }
            }
        })
        .await?;

    drop(orders);
    let stats = pipe.join().await;
    let reports = backend.queue_counts("reports").await?;
    println!("\npiped {} orders; {} scheduled reports ran", stats.enqueued, reports.done);
    Ok(())
}
