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
//!         MemoryBackend::builder().codec::<C>().tuning(|t| settings.apply(t)).build()
//!     }
//!
//!     async fn reopen<C: Codec>(&self, backend: &MemoryBackend<C>, settings: TestSettings) -> MemoryBackend<C> {
//!         MemoryBackend::builder().codec::<C>().tuning(|t| settings.apply(t)).share(backend)
//!     }
//! }
//!
//! errand_runtime::conformance_tests! {
//!     factory: Factory,
//!     backend: MemoryBackend,
//!     capabilities: [priorities, unique_keys, delays, results, expose, workflows, cancel_running],
//! }
//! ```
//!
//! The core cases run on every backend; each capability the backend has
//! adds its own cases, and a generated test checks that the list given is
//! exactly what the backend type implements ([`capabilities_of!`](crate::capabilities_of)),
//! so a capability is never claimed untested nor tested unclaimed.
//!
//! A server backend gives `skip: (cfg, "reason")`: with that `cfg` set (its
//! build script sets it when the server's URL is not), every case is
//! reported by `cargo test` as *ignored* with the reason, never as a pass;
//! under `ERRAND_REQUIRE_SERVICES=1` the build script fails instead.
//!
//! Each case gets a fresh, isolated backend from the factory. Cases never
//! assert how fast something happened, only what happened; they bound their
//! waits generously so that a hang fails instead of blocking CI.

pub mod cases;
pub mod faults;
pub mod jobs;
pub mod proxy;
pub mod sources;
mod support;
pub mod workflows;

use std::future::Future;
use std::time::Duration;

pub use self::jobs::Probe;
pub use self::proxy::Proxy;
pub use self::support::{Bare, Flaky, Running, wait_for};
use crate::backend::{Backend, Tuning};
use crate::codec::Codec;
use crate::expose::Expose;

/// Settings a case needs its backend created with.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct TestSettings {
    /// How long a worker may miss heartbeats before its tasks are rescued.
    pub orphan_after: Duration,
    /// How long an idle worker sleeps at most between claims.
    pub poll_interval: Duration,
    /// The largest payload an enqueue accepts.
    pub max_payload: usize,
    /// How far this handle's clock is set off from the system's, in ms.
    pub clock_skew_ms: i64,
    /// How long finished work is kept.
    pub retention: Duration,
}

impl Default for TestSettings {
    fn default() -> Self {
        Self {
            orphan_after: Duration::from_secs(30),
            poll_interval: Duration::from_millis(100),
            max_payload: Tuning::new().max_payload,
            clock_skew_ms: 0,
            retention: Tuning::new().retention,
        }
    }
}

impl TestSettings {
    /// The defaults, with rescue after `orphan_after`.
    pub fn orphan_after(orphan_after: Duration) -> Self {
        Self { orphan_after, ..Self::default() }
    }

    /// `tuning` with these settings: for a builder's `.tuning(|t| settings.apply(t))`.
    pub fn apply(&self, tuning: Tuning) -> Tuning {
        tuning
            .orphan_after(self.orphan_after)
            .poll_interval(self.poll_interval)
            .max_payload(self.max_payload)
            .retention(self.retention)
            .clock(crate::backend::Clock::system().skewed(self.clock_skew_ms))
    }
}

/// Creates fresh, isolated backends for the suite.
pub trait BackendFactory: Send + Sync + 'static {
    /// The backend, for any codec. The core cases observe tasks through
    /// [`Expose`] and [`Results`](crate::capability::Results); a store
    /// without them (a message broker) needs cases that observe through
    /// the jobs' probe alone.
    type Backend<C: Codec>: Backend<Codec = C> + Expose + crate::capability::Results;

    /// A new backend with its own namespace (file, schema, key prefix…).
    fn create<C: Codec>(&self, settings: TestSettings) -> impl Future<Output = Self::Backend<C>> + Send;

    /// Another handle on the store of `backend` (the same file, schema or
    /// key prefix) with other settings, as a second process would open it.
    fn reopen<C: Codec>(
        &self,
        backend: &Self::Backend<C>,
        settings: TestSettings,
    ) -> impl Future<Output = Self::Backend<C>> + Send;
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

/// The URL of a test service from the environment variable `var`, for
/// tests gated by the crate's build script (see the [module docs](self)):
/// when the variable is unset such tests are ignored, so this only fails a
/// test that runs anyway.
///
/// # Panics
///
/// When `var` is unset or empty.
pub fn service_url(var: &str) -> String {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!("{var} is not set: set it to the server's URL to run this test"),
    }
}

/// For a server backend's build script: sets `cfg(errand_skip)` when the
/// environment variable `var` (the server's URL) is unset, so that the
/// crate's server tests are reported as ignored; fails the build instead
/// under `ERRAND_REQUIRE_SERVICES=1`, so CI never passes by skipping. Call
/// it from `build.rs`, with the same crate as a build-dependency.
///
/// # Panics
///
/// Under `ERRAND_REQUIRE_SERVICES=1` when `var` is unset: a build script
/// reports its failure by panicking.
#[allow(clippy::print_stdout)] // a build script talks to cargo on stdout
pub fn gate_service_tests(var: &str) {
    println!("cargo::rerun-if-env-changed={var}");
    println!("cargo::rerun-if-env-changed=ERRAND_REQUIRE_SERVICES");
    println!("cargo::rustc-check-cfg=cfg(errand_skip)");
    let set = std::env::var(var).is_ok_and(|v| !v.is_empty());
    let required = std::env::var("ERRAND_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
    if !set {
        assert!(!required, "{var} is not set, and ERRAND_REQUIRE_SERVICES=1 forbids skipping the tests that need it");
        println!("cargo::rustc-cfg=errand_skip");
        println!("cargo::warning={var} is not set: the tests against that server are ignored");
    }
}

/// Expands to the conformance suite for a [`BackendFactory`]: the core
/// cases, the cases of each capability listed, and a test that the list is
/// what the backend type implements. See the [module docs](self).
#[macro_export]
macro_rules! conformance_tests {
    (
        factory: $factory:expr,
        backend: $backend:ty,
        capabilities: [$($capability:ident),* $(,)?]
        $(,)?
    ) => {
        $crate::conformance_tests!(@suite ($factory) ($backend) [$($capability),*] ());
    };
    (
        factory: $factory:expr,
        backend: $backend:ty,
        capabilities: [$($capability:ident),* $(,)?],
        skip: ($skip:meta, $why:literal) $(,)?
    ) => {
        $crate::conformance_tests!(@suite ($factory) ($backend) [$($capability),*] ($skip, $why));
    };
    (@suite ($factory:expr) ($backend:ty) [$($capability:ident),*] $skip:tt) => {
        $crate::conformance_tests!(@cases ($factory) $skip;
            orphaned_tasks_are_rescued,
            retries_back_off_by_attempt, tasks_enqueued_to_an_idle_worker_run_once,
            snooze_keeps_the_attempt, abort_goes_dead,
            dead_after_the_last_retry, panics_are_retried, bulk_enqueue,
            concurrency_limit_is_never_exceeded, buffered_claims_keep_concurrency_and_lose_nothing,
            slow_runs_are_not_buffered, buffered_tasks_go_back_when_runs_slow_down,
            graceful_shutdown_finishes_in_flight_runs, graceful_shutdown_releases_unfinished_tasks,
            undecodable_payload_goes_dead, outage_backs_off_and_loses_nothing,
            a_requeue_whose_reply_was_lost_is_not_applied_twice, missing_data_fails_before_claiming,
            unserved_jobs_are_reported_then_buried, a_job_served_by_another_process_keeps_its_backlog,
            clock_skew_does_not_rescue_live_workers,
            an_outage_longer_than_orphan_after_runs_nothing_twice, a_refused_ack_holds_up_nothing,
            poison_errors_are_recorded_cleaned, panics_in_codecs_and_callbacks_are_contained,
            oversized_payloads_are_refused, finished_work_is_removed_after_the_retention,
            progress_is_stored_throttled_and_starts_again_on_retry, a_paused_queue_claims_nothing_in_any_process,
            a_stream_piped_in_loses_nothing, finished_tasks_can_be_deleted, trace_context_travels_with_the_task
        );
        $( $crate::conformance_tests!(@capability $capability ($factory) $skip); )*
        $crate::conformance_tests!(@check ($backend) [$($capability),*] $skip);
    };
    (@check ($backend:ty) [$($capability:ident),*] ($($skip:meta, $why:literal)?)) => {
        #[test]
        $(#[cfg_attr($skip, ignore = $why)])?
        fn capabilities_are_what_the_backend_implements() {
            let mut listed: ::std::vec::Vec<&str> = ::std::vec![$(::core::stringify!($capability)),*];
            listed.sort_unstable();
            let mut implemented = $crate::capabilities_of!($backend);
            implemented.sort_unstable();
            assert_eq!(
                listed,
                implemented,
                "the capabilities listed for the suite must be those `{}` implements",
                ::core::stringify!($backend)
            );
        }
    };
    (@capability transactional $factory:tt $skip:tt) => {};
    (@capability priorities $factory:tt $skip:tt) => {
        $crate::conformance_tests!(@cases $factory $skip; priority_order);
    };
    (@capability unique_keys $factory:tt $skip:tt) => {
        $crate::conformance_tests!(@cases $factory $skip; unique_keys_dedupe, unique_window_covers_finished_tasks);
    };
    (@capability delays $factory:tt $skip:tt) => {
        $crate::conformance_tests!(@cases $factory $skip; delayed_tasks_never_start_early);
    };
    (@capability results $factory:tt $skip:tt) => {
        $crate::conformance_tests!(@cases $factory $skip; roundtrip_json, roundtrip_msgpack, roundtrip_bincode);
    };
    (@capability expose $factory:tt $skip:tt) => {
        $crate::conformance_tests!(@cases $factory $skip; expose_counts_match);
    };
    (@capability cancel_running $factory:tt $skip:tt) => {
        $crate::conformance_tests!(@cases $factory $skip;
            cancelled_tasks_never_start, cancelling_a_running_task_fires_its_token);
    };
    (@capability schedules $factory:tt $skip:tt) => {
        $crate::conformance_tests!(@cases $factory $skip;
            a_schedule_fires_each_tick_once_across_processes, missed_ticks_follow_the_policy);
    };
    (@capability workflows $factory:tt $skip:tt) => {
        $crate::conformance_tests!(@cases $factory $skip;
            workflow_fan_out_and_fan_in, workflow_failure_cancels_the_rest, workflow_survives_a_killed_worker,
            workflow_steps_declared_out_of_order, workflow_step_acked_through_an_outage,
            every_step_of_a_run_carries_its_trace,
            killed_at_random_moments_nothing_is_lost, a_step_lost_on_its_last_attempt_fails_its_run,
            a_buried_step_fails_its_run, a_cancelled_step_fails_its_run, finished_runs_are_removed_after_the_retention,
            runs_are_listed_newest_first);
    };
    (@cases $factory:tt $skip:tt; $($case:ident),* $(,)?) => {
        $( $crate::conformance_tests!(@case $factory $skip $case); )*
    };
    (@case ($factory:expr) () $case:ident) => {
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            $crate::testing::cases::$case(&$factory).await;
        }
    };
    (@case ($factory:expr) ($skip:meta, $why:literal) $case:ident) => {
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[cfg_attr($skip, ignore = $why)]
        async fn $case() {
            $crate::testing::cases::$case(&$factory).await;
        }
    };
}
