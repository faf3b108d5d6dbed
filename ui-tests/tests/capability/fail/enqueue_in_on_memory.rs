//! The in-memory backend has no transactions to enqueue inside.

use errand::memory::MemoryBackend;
use errand::prelude::*;
use errand::sqlite::sqlx::SqliteConnection;

#[errand::job(queue = "mail")]
async fn send_email(to: String) -> Result<(), errand::JobError> {
    let _ = to;
    Ok(())
}

async fn signup(backend: MemoryBackend, tx: &mut SqliteConnection) -> Result<(), errand::Error> {
    backend.enqueue_in(tx, SendEmail::new("a@b.c".into())).await?;
    Ok(())
}

fn main() {}
