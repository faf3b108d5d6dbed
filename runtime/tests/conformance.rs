//! The memory backend against the shared conformance suite.

use errand_runtime::Codec;
use errand_runtime::memory::MemoryBackend;
use errand_runtime::testing::{BackendFactory, TestSettings};

struct Memory;

impl BackendFactory for Memory {
    type Backend<C: Codec> = MemoryBackend<C>;

    async fn create<C: Codec>(&self, settings: TestSettings) -> MemoryBackend<C> {
        MemoryBackend::builder().codec::<C>().tuning(|t| settings.apply(t)).build()
    }

    async fn reopen<C: Codec>(&self, backend: &MemoryBackend<C>, settings: TestSettings) -> MemoryBackend<C> {
        MemoryBackend::builder().codec::<C>().tuning(|t| settings.apply(t)).share(backend)
    }
}

errand_runtime::conformance_tests! {
    factory: Memory,
    backend: MemoryBackend,
    capabilities: [priorities, unique_keys, delays, results, expose, workflows, cancel_running, schedules],
}
