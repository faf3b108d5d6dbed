//! Reading a task's result needs a backend that keeps results (and lists tasks).

use errand::prelude::*;
use errand_runtime::testing::Bare;

#[errand::job(queue = "mail")]
async fn send_email(to: String) -> Result<(), errand::JobError> {
    let _ = to;
    Ok(())
}

async fn result(backend: Bare, id: TaskId) -> Result<(), errand::Error> {
    let _ = backend.result::<SendEmail>(id).await?;
    Ok(())
}

fn main() {}
