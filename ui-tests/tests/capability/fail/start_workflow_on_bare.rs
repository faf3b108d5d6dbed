//! A workflow needs a backend that stores runs and advances them with each step's ack.

use errand::prelude::*;
use errand_runtime::testing::Bare;

#[errand::workflow(queue = "onboarding")]
mod onboarding {
    use errand::JobError;

    #[dag_step]
    async fn fetch(id: u64) -> Result<u64, JobError> {
        Ok(id)
    }
}

async fn start(backend: Bare) -> Result<(), errand::Error> {
    backend.start(onboarding::Onboarding::new(1)).await?;
    Ok(())
}

fn main() {}
