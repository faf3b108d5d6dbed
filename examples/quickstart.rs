//! Run with: `cargo run --example quickstart`
//!
//! errand on the embedded SQLite backend, no server needed: three kinds of
//! jobs, one of which fails once and is retried, one delayed, a worker for
//! each, and a summary read back from the queue. Exits by itself in a few
//! seconds.

#![allow(clippy::print_stdout)] // an example reports what it does on stdout

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use errand::prelude::*;
use errand::sqlite::SqliteBackend;

/// Pretend mail service, shared with the email job as `Data<Mailer>`.
struct Mailer {
    sent: AtomicU32,
}

/// Sends one email; returns the message id (stored as the task's result).
#[errand::job(queue = "emails", retries = 5, timeout = "10s")]
async fn send_email(to: String, subject: String, mailer: Data<Mailer>) -> Result<String, JobError> {
    let n = mailer.sent.fetch_add(1, Ordering::Relaxed) + 1;
    println!("  send_email   → {to}: {subject:?}");
    Ok(format!("msg-{n}"))
}

/// Fails on its first attempt (a "network blip"), succeeds on the retry.
#[errand::job(queue = "uploads", retries = 3, backoff = "fixed(300ms)")]
async fn upload_report(name: String, cx: TaskCx) -> Result<u64, JobError> {
    if cx.attempt() == 1 {
        println!("  upload       → {name}: attempt 1 failed, will retry");
        return Err(JobError::retry("connection reset by peer"));
    }
    println!("  upload       → {name}: attempt {} succeeded", cx.attempt());
    Ok(name.len() as u64 * 1024)
}

/// Runs one second after it was enqueued.
#[errand::job(queue = "reminders")]
async fn remind(user: String) -> Result<(), JobError> {
    println!("  remind       → {user}, your trial ends tomorrow");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), errand::Error> {
    let path = std::env::temp_dir().join("errand-quickstart.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let backend = SqliteBackend::connect(&format!("sqlite://{}", path.display())).await?;
    println!("queue: {}", path.display());

    let started = Instant::now();
    let mut emails = Vec::new();
    for (to, subject) in [("ada@example.com", "Welcome!"), ("grace@example.com", "Your invoice")] {
        emails.push(backend.enqueue(SendEmail::new(to.into(), subject.into())).await?);
    }
    let upload = backend.enqueue(UploadReport { name: "q3-report.pdf".into() }).await?;
    let reminder =
        backend.enqueue_with(Remind::new("ada".into()), Enqueue::new().delay(Duration::from_secs(1))).await?;
    println!("enqueued 4 tasks (one delayed by 1 s); starting workers\n");

    let watch = backend.clone();
    Monitor::new()
        .register(SendEmail::worker(&backend).data(Mailer { sent: AtomicU32::new(0) }).concurrency(4))
        .register(UploadReport::worker(&backend))
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
    for id in emails {
        println!("  task {id} send_email    → {:?}", backend.result::<SendEmail>(id).await?);
    }
    let info = backend.task(upload).await?;
    println!(
        "  task {upload} upload_report → {:?} after {} attempts",
        backend.result::<UploadReport>(upload).await?,
        info.map_or(0, |t| t.attempt)
    );
    println!("  task {reminder} remind        → {:?}", backend.task(reminder).await?.map(|t| t.state));
    for q in backend.counts().await? {
        println!("  queue {:<10} done {} dead {}", q.queue, q.done, q.dead);
    }
    Ok(())
}
