//! Run with: `cargo run --example workflow`
//!
//! A durable workflow on the embedded SQLite backend, no server needed: the
//! onboarding graph of errand's design. `fetch_user` runs first; then
//! `send_welcome` and `provision` run in parallel, each as its own task;
//! `report` runs once both are done, on their outputs. Prints each step as
//! it runs and the typed report, and exits by itself.

// An example shows what it does.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use errand::prelude::*;
use errand::sqlite::SqliteBackend;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    email: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct MessageId(String);

#[derive(Debug, Serialize, Deserialize)]
struct AccountId(u64);

#[derive(Debug, Serialize, Deserialize)]
struct Report {
    user: u64,
    message: MessageId,
    account: AccountId,
}

/// Pretend mail service, shared with `send_welcome` as `Data<Mailer>`.
struct Mailer {
    from: &'static str,
}

#[errand::workflow(queue = "onboarding")]
mod onboarding {
    use super::*;

    /// The entry step: it takes the workflow's input.
    #[dag_step]
    async fn fetch_user(id: u64) -> Result<User, JobError> {
        println!("  fetch_user    → user {id}");
        Ok(User { id, email: format!("user{id}@example.com") })
    }

    #[dag_step(after = fetch_user)]
    async fn send_welcome(user: User, mailer: Data<Mailer>) -> Result<MessageId, JobError> {
        println!("  send_welcome  → {} (from {})", user.email, mailer.from);
        Ok(MessageId(format!("msg-{}", user.id)))
    }

    /// Fails on its first attempt (a "network blip") and is retried on its
    /// own; the rest of the run is not repeated.
    #[dag_step(after = fetch_user, retries = 10, backoff = "fixed(200ms)")]
    async fn provision(user: User, cx: TaskCx) -> Result<AccountId, JobError> {
        if cx.attempt() == 1 {
            println!("  provision     → attempt 1 failed, will retry");
            return Err(JobError::retry("provisioning service unavailable"));
        }
        println!("  provision     → account for user {} (attempt {})", user.id, cx.attempt());
        Ok(AccountId(user.id * 1000))
    }

    /// Fan-in: the outputs of `send_welcome` and `provision`, in that order.
    #[dag_step(after = [send_welcome, provision])]
    async fn report(message: MessageId, account: AccountId) -> Result<Report, JobError> {
        println!("  report        → {message:?}, {account:?}");
        Ok(Report { user: account.0 / 1000, message, account })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join("errand-workflow.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let backend = SqliteBackend::connect(&format!("sqlite://{}", path.display())).await?;
    println!("queue: {}", path.display());

    let started = Instant::now();
    let run = backend.start(onboarding::Onboarding::new(42)).await?;
    println!("started run {}; starting a worker\n", run.id());

    let mut outcome = None;
    Monitor::new()
        .register(onboarding::Onboarding::worker(&backend).data(Mailer { from: "hello@example.com" }).concurrency(4))
        .run_until(async {
            // Stop once the run has finished (or after 20 s, to be safe).
            let handle = backend.workflow(run);
            outcome = Some(tokio::time::timeout(Duration::from_secs(20), handle.wait()).await);
        })
        .await?;

    let report = match outcome {
        Some(Ok(result)) => result?,
        _ => return Err("the run did not finish in 20 s".into()),
    };
    println!("\nreport: {report:?}");
    let status = backend.workflow(run).status().await?;
    for step in &status.steps {
        let state = step.state.map_or("waiting", |s| s.as_str());
        println!("  {:<13} {state} (attempt {})", step.name, step.attempt);
    }
    println!("run {:?} in {:.1?}", status.state, started.elapsed());
    Ok(())
}
