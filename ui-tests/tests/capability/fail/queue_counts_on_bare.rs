//! Counting a queue's tasks needs a backend that can list them (`Expose`).

use errand::prelude::*;
use errand_runtime::testing::Bare;

async fn depth(backend: Bare) -> Result<u64, errand::Error> {
    Ok(backend.queue_counts("mail").await?.pending)
}

fn main() {}
