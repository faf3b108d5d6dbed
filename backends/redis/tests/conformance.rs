//! The Redis backend against the shared conformance suite.
//!
//! Needs `ERRAND_REDIS_URL` (e.g. `redis://127.0.0.1:6379`): without it the
//! cases are reported as ignored (and `ERRAND_REQUIRE_SERVICES=1` fails the
//! build instead). Each case uses a random key prefix and deletes its keys
//! afterwards.

mod common;

use std::sync::Mutex;

use errand_redis::RedisBackend;
use errand_runtime::Codec;
use errand_runtime::testing::{BackendFactory, TestSettings};

/// Creates the backends of one case.
struct Redis {
    /// Cleanup guards of the backends this case created: the factory value
    /// lives as long as one case, so its keys are deleted when the case ends.
    guards: Mutex<Vec<common::Cleanup>>,
}

impl Redis {
    fn new() -> Self {
        Self { guards: Mutex::new(Vec::new()) }
    }
}

impl BackendFactory for Redis {
    type Backend<C: Codec> = RedisBackend<C>;

    async fn create<C: Codec>(&self, settings: TestSettings) -> RedisBackend<C> {
        let builder = common::builder().tuning(|t| settings.apply(t));
        let (backend, cleanup) = common::backend::<C>(builder).await;
        self.guards.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(cleanup);
        backend
    }

    /// Another handle on the same key prefix, with its own connection and
    /// settings, as a second process would open it (its keys are the first
    /// handle's: that guard deletes them).
    async fn reopen<C: Codec>(&self, backend: &RedisBackend<C>, settings: TestSettings) -> RedisBackend<C> {
        let builder = RedisBackend::builder().namespace(backend.namespace()).tuning(|t| settings.apply(t));
        let url = common::url();
        match builder.codec::<C>().connect(&url).await {
            Ok(backend) => backend,
            Err(error) => panic!("cannot connect to the test Redis at {url}: {error}"),
        }
    }
}

errand_runtime::conformance_tests! {
    factory: Redis::new(),
    backend: RedisBackend,
    capabilities: [priorities, unique_keys, delays, results, expose, workflows, cancel_running, schedules],
    skip: (errand_skip, "set ERRAND_REDIS_URL to run against a server"),
}
