//! The backend kit: what a storage backend implements, and the pieces every
//! backend shares.
//!
//! Users never need this module: they pick a backend type and use
//! [`TaskSink`](crate::TaskSink), [`Expose`](crate::Expose) and the
//! workflow traits on it. A backend author implements [`Backend`] (the
//! worker-facing contract) and the capabilities the store has
//! ([`crate::capability`]), and builds on:
//!
//! - the contract's values: [`NewTask`], [`Task`], [`Claimed`], [`Ack`],
//!   [`Outcome`], [`WorkerRegistration`], [`Unserved`];
//! - [`Tuning`], the settings every backend has, as one value;
//! - [`Notifier`] / [`WakeSignal`], in-process wake-ups by queue;
//! - [`Handoffs`]: a single enqueue written already claimed by a worker of
//!   the same backend value that waits for it, and handed over in memory;
//! - [`stored`]: reading rows back with checks, versioned migrations, counts;
//! - the workflow planner, [`crate::workflow::plan`]: which outputs to
//!   store and which steps to enqueue when a step ends, so a backend only
//!   persists the plan atomically;
//! - [`fnv1a`] and [`redact_url`].
//!
//! The steps to add a backend, and the shape every backend crate has, are
//! in the project's `docs/architecture.md`. The conformance suite
//! (`errand_runtime::conformance_tests!`, feature `test-suite`) is the
//! contract's test: a backend passes it before it is called done.

mod contract;
mod fingerprint;
mod handoff;
pub mod stored;
mod tuning;
mod wake;

use std::future::Future;

pub use self::contract::{
    Ack, Claimed, MAX_ERROR_LEN, MAX_TRACE_LEN, NewTask, Outcome, Task, Unserved, WorkerRegistration,
};
pub use self::fingerprint::{fnv1a, fnv1a_parts, redact_url};
pub use self::handoff::{Begun, Claiming, Handoffs, Pick, Writing};
pub use self::tuning::{Buffer, Clock, Every, Tuning};
pub use self::wake::{Notifier, WakeSignal};
use crate::codec::Codec;
use crate::error::Error;
use crate::task::{Progress, TaskId};
use crate::time::Timestamp;

/// A storage backend, as a worker uses it.
///
/// One backend value is a handle to one connection pool: clone it freely and
/// give it to every worker and enqueuer in the process.
///
/// Only what every store can do is here. What some stores cannot do
/// (priorities, unique keys, listings, workflows, enqueueing inside a SQL
/// transaction, …) is a [capability](crate::capability): a marker trait the
/// backend implements when it can, required by the operations that need it,
/// so a mismatch is a compile error.
///
/// The contract every implementation meets is checked by the conformance
/// suite (`errand_runtime::conformance_tests!`, feature `test-suite`).
pub trait Backend: Clone + Send + Sync + 'static {
    /// The backend's name for messages (`"sqlite"`, `"memory"`, …).
    const NAME: &'static str;

    /// How arguments and results are stored.
    type Codec: Codec;
    /// How an idle worker waits for new tasks.
    type Waiter: Waiter;

    /// The backend's settings: rescue, polling, retention, claim pacing.
    fn tuning(&self) -> &Tuning;

    /// Writes new tasks and returns their ids, in order. A task whose unique
    /// key matches a live task of the same job (or, with `unique_for`, one
    /// created within that window) is not written: the existing task's id is
    /// returned. Keys are scoped to the job.
    fn push(&self, tasks: Vec<NewTask>) -> impl Future<Output = Result<Vec<TaskId>, Error>> + Send;

    /// Claims up to `max` due tasks of `worker.job` on `worker.queue`, highest
    /// priority first, then earliest `run_at`; marks them `running` for this
    /// worker, increments their attempt and clears their progress. A paused
    /// queue ([`Expose::pause_queue`](crate::Expose::pause_queue)) gives no
    /// tasks and no `next_due`.
    fn claim(&self, worker: &WorkerRegistration, max: usize) -> impl Future<Output = Result<Claimed, Error>> + Send;

    /// Records the outcomes of finished runs. An ack for a task that is no
    /// longer `running` for this worker (it was rescued or cancelled
    /// meanwhile) is ignored. The `done` or `dead` ack of a workflow step
    /// advances its run in the same atomic operation (see
    /// [`crate::workflow::plan`]).
    fn ack(&self, worker: &WorkerRegistration, acks: &[Ack]) -> impl Future<Output = Result<(), Error>> + Send;

    /// Records that the worker is alive (registering it on the first beat).
    /// A worker beats before its first claim.
    fn heartbeat(&self, worker: &WorkerRegistration) -> impl Future<Output = Result<(), Error>> + Send;

    /// Puts back the `running` tasks of workers not seen for
    /// [`Tuning::orphan_after`]: `pending` again, or `dead` if that was their
    /// last attempt. Returns how many were rescued.
    fn rescue_orphans(&self) -> impl Future<Output = Result<u64, Error>> + Send;

    /// Graceful stop: the worker's unfinished tasks go back to `pending`
    /// without using an attempt, and the worker is deregistered.
    fn release(&self, worker: &WorkerRegistration) -> impl Future<Output = Result<u64, Error>> + Send;

    /// Tasks `running` for this worker that were cancelled meanwhile; asked
    /// with every heartbeat so that their `TaskCx::cancellation` token fires.
    fn cancelled_tasks(&self, worker: &WorkerRegistration) -> impl Future<Output = Result<Vec<TaskId>, Error>> + Send;

    /// Waiting (`pending` or `retry`) tasks of `queue` whose job no worker
    /// (of any process) serving it on that queue has heartbeaten at or after
    /// `since`, counted by job with the earliest `run_at`. The store keeps
    /// when each job was last served on each queue, past the workers' own
    /// records, so that a job whose service is down is told apart from one
    /// that nothing runs at all.
    fn unserved(&self, queue: &str, since: Timestamp) -> impl Future<Output = Result<Vec<Unserved>, Error>> + Send;

    /// Sends the waiting tasks of `job` on `queue` that were due at or before
    /// `due_before` to `dead` with `reason` — if, checked in the same atomic
    /// operation, no worker has served the job on that queue since `since`.
    /// They are kept, and can be retried. A workflow step buried this way
    /// fails its run. Returns how many.
    fn bury_unserved(
        &self,
        queue: &str,
        job: &str,
        due_before: Timestamp,
        since: Timestamp,
        reason: &str,
    ) -> impl Future<Output = Result<u64, Error>> + Send;

    /// Retention: deletes `done` tasks that finished more than
    /// [`Tuning::retention`] ago, and finished workflow runs (with their
    /// steps) likewise, in bounded batches; `dead` and `cancelled` tasks are
    /// kept until retried or removed. Returns how many tasks it deleted.
    /// Workers call it now and then, apart from heartbeats and rescue;
    /// repeated calls must be cheap (see [`Every`]).
    fn purge_expired(&self) -> impl Future<Output = Result<u64, Error>> + Send;

    /// Stores the latest [`Progress`] of running tasks of this worker (the
    /// worker throttles reports, so a tight loop does not write on every
    /// call). An update for a task no longer `running` for this worker is
    /// ignored. Claiming a task clears its progress: each attempt starts
    /// from none.
    fn record_progress(
        &self,
        worker: &WorkerRegistration,
        updates: &[(TaskId, Progress)],
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// A waiter that an idle worker of this queue awaits between claims.
    fn waiter(&self, queue: &str) -> Self::Waiter;
}

/// How an idle worker waits for new work.
///
/// The worker calls [`arm`](Waiter::arm) before each claim and
/// [`wait`](Waiter::wait) when the claim came back empty; `wait` must return at
/// once if work arrived since `arm`, so no wake-up is lost in between.
pub trait Waiter: Send + 'static {
    /// Marks everything seen so far as seen.
    fn arm(&mut self);
    /// Resolves when work may have arrived since the last `arm`.
    fn wait(&mut self) -> impl Future<Output = ()> + Send;
}
