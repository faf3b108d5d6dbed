//! Generic code over `Expose` cannot cancel tasks unless it also asks for `CancelRunning`.

use errand::prelude::*;

async fn cancel<B: Expose>(backend: &B, id: TaskId) -> Result<bool, errand::Error> {
    backend.cancel_task(id).await
}

fn main() {}
