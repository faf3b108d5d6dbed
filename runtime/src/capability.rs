//! Capabilities: what some backends can do and others cannot, checked by
//! the compiler.
//!
//! Every operation that not every store supports requires a marker trait,
//! and a backend implements the markers of what it really does. Asking a
//! backend for something it cannot do is a compile error that names the
//! backend and the capability — never an option silently ignored at run
//! time:
//!
//! ```text
//! backend.enqueue_with(Ping, Enqueue::new().priority(5)).await?;
//!
//! error[E0277]: `Bare` has no task priorities
//!   = note: backends with priorities: MemoryBackend, SqliteBackend, PostgresBackend, …
//! ```
//!
//! (`ui-tests/tests/capability/` holds one compile-fail case per
//! capability, with the message a user sees.)
//!
//! | capability | what needs it |
//! |---|---|
//! | [`Transactional`] | `TaskSink::enqueue_in`: enqueue inside the application's own SQL transaction |
//! | [`Priorities`] | `Enqueue::priority` |
//! | [`UniqueKeys`] | `Enqueue::unique_key`, `Enqueue::unique_for` |
//! | [`Delays`] | `Enqueue::delay`, `Enqueue::run_at` |
//! | [`Results`] | `BackendExt::result`: reading a finished task's output |
//! | [`Expose`](crate::Expose) | counts, listings, workers, retrying dead tasks (the board, the CLI) |
//! | [`WorkflowStore`](crate::workflow::WorkflowStore) | `#[errand::workflow]` runs |
//! | [`CancelRunning`] | `Expose::cancel_task`: a running task's cancellation token fires |
//! | [`Schedules`] | cron schedules (`#[errand::job(cron = …)]`, `ScheduleExt::pipe_to`): one task per tick across processes |
//!
//! [`capabilities_of!`](crate::capabilities_of) lists what a backend type
//! implements; the README's table is checked against it.

use std::future::Future;

use crate::backend::{Backend, NewTask};
use crate::error::Error;
use crate::task::TaskId;
use crate::time::Timestamp;

/// Enqueueing inside the application's own transaction: the task exists if
/// and only if that transaction commits.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot enqueue inside a SQL transaction",
    label = "`enqueue_in` needs a backend that stores tasks in the application's SQL database",
    note = "transactional enqueue needs a SQL backend: PostgresBackend, MysqlBackend, SqliteBackend"
)]
pub trait Transactional: Backend {
    /// The connection a transaction runs on (`PgConnection`, …): pass
    /// `&mut tx` for a `sqlx::Transaction` of the same database.
    type Connection: Send;

    /// Writes `tasks` on `conn`, inside whatever transaction it has open, as
    /// [`Backend::push`] would; workers are woken when it commits.
    fn push_in(
        &self,
        conn: &mut Self::Connection,
        tasks: Vec<NewTask>,
    ) -> impl Future<Output = Result<Vec<TaskId>, Error>> + Send;
}

/// Tasks run by priority (`Enqueue::priority`, a job's `priority = …`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no task priorities",
    label = "`priority` needs a backend that orders tasks by priority",
    note = "backends with priorities: MemoryBackend, SqliteBackend, PostgresBackend, MysqlBackend, RedisBackend"
)]
pub trait Priorities: Backend {}

/// Deduplication by key (`Enqueue::unique_key`, `unique_for`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot deduplicate tasks by unique key",
    label = "`unique_key` and `unique_for` need a backend with unique keys",
    note = "backends with unique keys: MemoryBackend, SqliteBackend, PostgresBackend, MysqlBackend, RedisBackend"
)]
pub trait UniqueKeys: Backend {}

/// Tasks that start later (`Enqueue::delay`, `Enqueue::run_at`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot delay a task",
    label = "`delay` and `run_at` need a backend with scheduled tasks",
    note = "backends with delays: MemoryBackend, SqliteBackend, PostgresBackend, MysqlBackend, RedisBackend"
)]
pub trait Delays: Backend {}

/// Finished tasks keep their output (`BackendExt::result`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not keep task results",
    label = "`result` needs a backend that stores what a task returned",
    note = "backends with results: MemoryBackend, SqliteBackend, PostgresBackend, MysqlBackend, RedisBackend"
)]
pub trait Results: Backend {}

/// Cancelling a running task reaches its worker: the run's
/// `TaskCx::cancellation` token fires and its result is discarded.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot cancel tasks",
    label = "`cancel_task` needs a backend that tells a running task's worker it was cancelled",
    note = "backends that cancel: MemoryBackend, SqliteBackend, PostgresBackend, MysqlBackend, RedisBackend"
)]
pub trait CancelRunning: Backend {}

/// Recurring schedules (cron): every tick is enqueued with a unique key of
/// (schedule, tick), so any number of processes running the same schedule
/// fire each tick once, and the last tick enqueued is stored, so ticks
/// missed while every worker was down are caught up by the schedule's
/// `missed` policy. Needs [`UniqueKeys`]; a store without unique keys needs
/// a leader or lock before it can have schedules.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot run cron schedules",
    label = "a schedule needs a backend with unique keys that stores each schedule's last tick",
    note = "backends with schedules: MemoryBackend, SqliteBackend, PostgresBackend, MysqlBackend, RedisBackend"
)]
pub trait Schedules: UniqueKeys {
    /// The latest tick recorded for `schedule` (by any process), if any.
    fn last_tick(&self, schedule: &str) -> impl Future<Output = Result<Option<Timestamp>, Error>> + Send;

    /// Records that `tick` of `schedule` was enqueued: the stored tick
    /// becomes the later of the stored one and `tick`, atomically, so
    /// processes racing to record never move it back.
    fn record_tick(&self, schedule: &str, tick: Timestamp) -> impl Future<Output = Result<(), Error>> + Send;
}

/// An enqueue option that was not set, so every backend accepts it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unset;
/// [`Enqueue::priority`](crate::Enqueue::priority) was set: needs [`Priorities`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SetPriority;
/// [`Enqueue::unique_key`](crate::Enqueue::unique_key) was set: needs [`UniqueKeys`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SetUniqueKey;
/// [`Enqueue::delay`](crate::Enqueue::delay) or `run_at` was set: needs [`Delays`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SetDelay;

/// Whether backend `B` accepts this enqueue option ([`Unset`],
/// [`SetPriority`], …): an option that was set is accepted by the backends
/// that have its capability.
pub trait AcceptedBy<B> {}

impl<B: Backend> AcceptedBy<B> for Unset {}
impl<B: Priorities> AcceptedBy<B> for SetPriority {}
impl<B: UniqueKeys> AcceptedBy<B> for SetUniqueKey {}
impl<B: Delays> AcceptedBy<B> for SetDelay {}

/// Whether `$ty` implements the trait bound `$($bound)+`, decided at
/// compile time for a concrete type (an inherent constant wins over the
/// fallback trait's when the bound holds).
#[doc(hidden)]
#[macro_export]
macro_rules! __implements {
    ($ty:ty: $($bound:tt)+) => {{
        trait __Fallback {
            const IMPLEMENTS: bool = false;
        }
        impl<T: ?Sized> __Fallback for T {}
        struct __Probe<T: ?Sized>(::core::marker::PhantomData<T>);
        #[allow(dead_code)]
        impl<T: ?Sized + $($bound)+> __Probe<T> {
            const IMPLEMENTS: bool = true;
        }
        <__Probe<$ty>>::IMPLEMENTS
    }};
}

/// The capabilities a concrete backend type implements, by name, in the
/// order of the README's table: `transactional`, `priorities`,
/// `unique_keys`, `delays`, `results`, `expose`, `workflows`,
/// `cancel_running`, `schedules`.
///
/// # Examples
///
/// ```
/// use errand_runtime::memory::MemoryBackend;
///
/// let caps = errand_runtime::capabilities_of!(MemoryBackend);
/// assert!(caps.contains(&"priorities") && !caps.contains(&"transactional"));
/// ```
#[macro_export]
macro_rules! capabilities_of {
    ($ty:ty) => {{
        let mut names: ::std::vec::Vec<&'static str> = ::std::vec::Vec::new();
        let all: [(bool, &'static str); 9] = [
            ($crate::__implements!($ty: $crate::capability::Transactional), "transactional"),
            ($crate::__implements!($ty: $crate::capability::Priorities), "priorities"),
            ($crate::__implements!($ty: $crate::capability::UniqueKeys), "unique_keys"),
            ($crate::__implements!($ty: $crate::capability::Delays), "delays"),
            ($crate::__implements!($ty: $crate::capability::Results), "results"),
            ($crate::__implements!($ty: $crate::Expose), "expose"),
            ($crate::__implements!($ty: $crate::workflow::WorkflowStore), "workflows"),
            ($crate::__implements!($ty: $crate::capability::CancelRunning), "cancel_running"),
            ($crate::__implements!($ty: $crate::capability::Schedules), "schedules"),
        ];
        for (has, name) in all {
            if has {
                names.push(name);
            }
        }
        names
    }};
}
