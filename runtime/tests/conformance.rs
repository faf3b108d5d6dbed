//! The memory backend against the shared conformance suite.

use errand_runtime::Codec;
use errand_runtime::memory::MemoryBackend;
use errand_runtime::testing::{BackendFactory, TestSettings};

struct Memory;

impl BackendFactory for Memory {
    type Backend<C: Codec> = MemoryBackend<C>;

    async fn create<C: Codec>(&self, settings: TestSettings) -> MemoryBackend<C> {
        MemoryBackend::new().with_codec::<C>().orphan_after(settings.orphan_after).poll_interval(settings.poll_interval)
    }
}

errand_runtime::conformance_tests!(Memory);

errand_runtime::workflow_conformance_tests!(Memory);
