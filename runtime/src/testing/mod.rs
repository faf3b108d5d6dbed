//! The backend conformance suite (feature `test-suite`).
//!
//! Every backend crate runs the same cases against its real storage with one
//! line in `tests/conformance.rs`:
//!
//! ```
//! use errand_runtime::Codec;
//! use errand_runtime::memory::MemoryBackend;
//! use errand_runtime::testing::{BackendFactory, TestSettings};
//!
//! struct Factory;
//!
//! impl BackendFactory for Factory {
//!     type Backend<C: Codec> = MemoryBackend<C>;
//!
//!     async fn create<C: Codec>(&self, settings: TestSettings) -> MemoryBackend<C> {
//!         MemoryBackend::new().with_codec::<C>().orphan_after(settings.orphan_after)
//!     }
//! }
//!
//! errand_runtime::conformance_tests!(Factory);
//! ```
//!
//! Each case gets a fresh, isolated backend from the factory. Cases never
//! assert how fast something happened, only what happened; they bound their
//! waits generously so that a hang fails instead of blocking CI.

pub mod cases;
pub mod jobs;
pub mod proxy;
mod support;
pub mod workflows;

use std::future::Future;
use std::time::Duration;

pub use self::jobs::Probe;
pub use self::proxy::Proxy;
pub use self::support::{Flaky, Running, wait_for};
use crate::backend::{Backend, Expose};
use crate::codec::Codec;

/// Settings a case needs its backend created with.
#[derive(Debug, Clone, Copy)]
pub struct TestSettings {
    /// How long a worker may miss heartbeats before its tasks are rescued.
    pub orphan_after: Duration,
    /// How long an idle worker sleeps at most between claims.
    pub poll_interval: Duration,
}

impl Default for TestSettings {
    fn default() -> Self {
        Self { orphan_after: Duration::from_secs(30), poll_interval: Duration::from_millis(100) }
    }
}

/// Creates fresh, isolated backends for the suite.
pub trait BackendFactory: Send + Sync + 'static {
    /// The backend, for any codec.
    type Backend<C: Codec>: Backend<Codec = C> + Expose;

    /// A new backend with its own namespace (file, schema, key prefix…).
    fn create<C: Codec>(&self, settings: TestSettings) -> impl Future<Output = Self::Backend<C>> + Send;

    /// Whether the backend's server is configured. Server backends return
    /// `service_url("ERRAND_…_URL").is_some()`: see [`service_url`].
    fn available(&self) -> bool {
        true
    }
}

/// Runs the future `cleanup` makes to completion (or for at most `limit`)
/// on a thread with a runtime of its own, for a guard's `Drop`: the test's
/// runtime may be shutting down by then. Failures are ignored, as a
/// cleanup's are.
pub fn clean_up_blocking<M, F>(limit: Duration, cleanup: M)
where
    M: FnOnce() -> F + Send + 'static,
    F: Future,
{
    let _ = std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
            rt.block_on(async {
                let _ = tokio::time::timeout(limit, cleanup()).await;
            });
        }
    })
    .join();
}

/// The URL of a test service from the environment variable `var`.
///
/// When it is unset, prints that the test is skipped and returns `None` —
/// unless `ERRAND_REQUIRE_SERVICES=1`, in which case it panics, so that CI
/// never passes by skipping.
pub fn service_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            let required = std::env::var("ERRAND_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
            assert!(!required, "{var} is not set, and ERRAND_REQUIRE_SERVICES=1 forbids skipping this test");
            eprintln!("skipped: {var} is not set (set it to run this test against a real server)");
            None
        }
    }
}

/// Expands to the whole conformance suite, one `#[tokio::test]` per case,
/// for the given [`BackendFactory`] value.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@cases $factory;
            roundtrip_json, roundtrip_msgpack, roundtrip_bincode, orphaned_tasks_are_rescued,
            retries_back_off_by_attempt, snooze_keeps_the_attempt, abort_goes_dead,
            dead_after_the_last_retry, panics_are_retried, delayed_tasks_never_start_early,
            priority_order, unique_keys_dedupe, unique_window_covers_finished_tasks, bulk_enqueue,
            concurrency_limit_is_never_exceeded, buffered_claims_keep_concurrency_and_lose_nothing,
            slow_runs_are_not_buffered, buffered_tasks_go_back_when_runs_slow_down,
            graceful_shutdown_finishes_in_flight_runs, graceful_shutdown_releases_unfinished_tasks, undecodable_payload_goes_dead,
            outage_backs_off_and_loses_nothing, a_requeue_whose_reply_was_lost_is_not_applied_twice,
            expose_counts_match, missing_data_fails_before_claiming,
            cancelled_tasks_never_start, cancelling_a_running_task_fires_its_token,
            unserved_jobs_are_reported_then_buried
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let factory = &$factory;
                if $crate::testing::BackendFactory::available(factory) {
                    $crate::testing::cases::$case(factory).await;
                }
            }
        )*
    };
}
