//! Redis is not a SQL database: it cannot enqueue inside the application's transaction.

use errand::prelude::*;
use errand::redis::RedisBackend;
use errand::sqlite::sqlx::SqliteConnection;

#[errand::job(queue = "mail")]
async fn send_email(to: String) -> Result<(), errand::JobError> {
    let _ = to;
    Ok(())
}

async fn signup(backend: RedisBackend, tx: &mut SqliteConnection) -> Result<(), errand::Error> {
    backend.enqueue_in(tx, SendEmail::new("a@b.c".into())).await?;
    Ok(())
}

fn main() {}
