//! The Redis backend against the shared conformance suite.
//!
//! Needs `ERRAND_REDIS_URL` (e.g. `redis://127.0.0.1:6379`); skipped without
//! it unless `ERRAND_REQUIRE_SERVICES=1`. Each case uses a random key prefix
//! and deletes its keys afterwards.

mod common;

use std::sync::Mutex;

use errand_redis::RedisBackend;
use errand_runtime::Codec;
use errand_runtime::testing::{BackendFactory, TestSettings};

struct Redis {
    /// Cleanup guards of the backends this case created: the factory value
    /// lives as long as one case, so its keys are deleted when the case ends.
    guards: Mutex<Vec<common::Cleanup>>,
}

impl BackendFactory for Redis {
    type Backend<C: Codec> = RedisBackend<C>;

    async fn create<C: Codec>(&self, settings: TestSettings) -> RedisBackend<C> {
        let builder = common::builder().orphan_after(settings.orphan_after).poll_interval(settings.poll_interval);
        let (backend, cleanup) = common::backend::<C>(builder).await;
        self.guards.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(cleanup);
        backend
    }

    fn available(&self) -> bool {
        common::url().is_some()
    }
}

errand_runtime::conformance_tests!(Redis { guards: Mutex::new(Vec::new()) });

mod workflows {
    use super::{Mutex, Redis};

    errand_runtime::workflow_conformance_tests!(Redis { guards: Mutex::new(Vec::new()) });
}
