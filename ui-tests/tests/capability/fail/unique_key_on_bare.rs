//! `Enqueue::unique_key("welcome:ada")` on a backend that cannot honour it does not compile:
//! the option is never silently ignored.

use errand::prelude::*;
use errand_runtime::testing::Bare;

#[errand::job(queue = "mail")]
async fn send_email(to: String) -> Result<(), errand::JobError> {
    let _ = to;
    Ok(())
}

async fn enqueue(backend: Bare) -> Result<(), errand::Error> {
    backend.enqueue_with(SendEmail::new("a@b.c".into()), Enqueue::new().unique_key("welcome:ada")).await?;
    Ok(())
}

fn main() {}
