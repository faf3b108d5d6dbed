//! Run with: `cargo run --example board`, then open http://127.0.0.1:9300
//!
//! The board on a live queue, on the embedded SQLite backend, no server
//! needed: workers for a mix of jobs — emails that succeed, charges of which
//! some fail for good (dead tasks to retry from the board), imports that
//! report their progress — a workflow run now and then, and a stream of new
//! tasks, so the counts, charts and running list move. Stop it with Ctrl-C.

#![allow(clippy::print_stdout)] // an example reports what it does on stdout

use errand::board::{Board, Server};
use errand::prelude::*;
use errand::sqlite::SqliteBackend;

#[errand::job(queue = "emails")]
async fn send_email(to: String) -> Result<(), JobError> {
    tokio::time::sleep(Duration::from_millis(150)).await;
    let _ = to;
    Ok(())
}

/// One charge in five is declined for good: a dead task with its error.
#[errand::job(queue = "payments", retries = 1, backoff = "fixed(1s)")]
async fn charge(order: u64, cents: u64) -> Result<String, JobError> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    if order.is_multiple_of(5) {
        return Err(JobError::abort(format!("card declined for order {order} ({cents} cents)")));
    }
    Ok(format!("ch_{order}"))
}

/// A long job with a progress bar on the board.
#[errand::job(queue = "imports")]
async fn import_file(name: String, rows: u32, cx: TaskCx) -> Result<u32, JobError> {
    for row in 1..=rows {
        tokio::time::sleep(Duration::from_millis(50)).await;
        cx.progress((row * 100 / rows) as u8, format!("{name}: row {row} of {rows}"));
    }
    Ok(rows)
}

#[errand::workflow(queue = "onboarding")]
mod onboarding {
    use super::*;

    #[dag_step]
    async fn fetch_user(id: u64) -> Result<String, JobError> {
        tokio::time::sleep(Duration::from_millis(400)).await;
        Ok(format!("user{id}@example.com"))
    }

    #[dag_step(after = fetch_user)]
    async fn send_welcome(email: String) -> Result<String, JobError> {
        tokio::time::sleep(Duration::from_millis(600)).await;
        Ok(format!("welcome sent to {email}"))
    }

    #[dag_step(after = fetch_user, retries = 3, backoff = "fixed(500ms)")]
    async fn provision(email: String, cx: TaskCx) -> Result<u64, JobError> {
        tokio::time::sleep(Duration::from_millis(800)).await;
        if cx.attempt() == 1 {
            return Err(JobError::retry(format!("provisioning {email}: service unavailable")));
        }
        Ok(email.len() as u64)
    }

    #[dag_step(after = [send_welcome, provision])]
    async fn report(welcome: String, account: u64) -> Result<String, JobError> {
        Ok(format!("{welcome}; account {account}"))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join("errand-board.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let backend = SqliteBackend::connect(&format!("sqlite://{}", path.display())).await?;

    // Keep work arriving: a few tasks of each kind every two seconds.
    let feeder = backend.clone();
    tokio::spawn(async move {
        for n in 0_u64.. {
            let _ = feeder.enqueue(SendEmail::new(format!("user{n}@example.com"))).await;
            let _ = feeder.enqueue(Charge::new(n, 1000 + n * 7)).await;
            if n.is_multiple_of(3) {
                let _ = feeder.enqueue(ImportFile::new(format!("batch-{n}.csv"), 120)).await;
                let _ = feeder.start(onboarding::Onboarding::new(n)).await;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });

    let listening = Server::new(Board::new().backend("sqlite", backend.clone())).bind().await?;
    println!("the board: http://{} (Ctrl-C to stop)", listening.local_addr());
    tokio::spawn(listening.run_until(errand::shutdown_signal()));

    Monitor::new()
        .register(SendEmail::worker(&backend).concurrency(4))
        .register(Charge::worker(&backend).concurrency(2))
        .register(ImportFile::worker(&backend).concurrency(2))
        .register(onboarding::Onboarding::worker(&backend).concurrency(4))
        .run()
        .await?;
    Ok(())
}
