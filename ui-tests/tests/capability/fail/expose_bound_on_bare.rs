//! A dashboard over `Expose` cannot be given a backend that cannot list its tasks.

use errand::prelude::*;
use errand_runtime::testing::Bare;

async fn dashboard<B: Expose>(backend: &B) -> usize {
    backend.counts().await.map(|c| c.len()).unwrap_or(0)
}

async fn serve(backend: Bare) -> usize {
    dashboard(&backend).await
}

fn main() {}
