//! The SQLite backend of [errand](https://docs.rs/errand): a durable task
//! table in one database file, WAL mode, batched claims and acks, and
//! in-process wake-ups.
//!
//! Most users reach it as `errand::sqlite::SqliteBackend` through the `errand`
//! facade (feature `sqlite`, on by default).
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use errand_runtime::{BackendExt, Job, JobError, Monitor, TaskCx, TaskSink, WorkerBuilder};
//! use errand_sqlite::SqliteBackend;
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Greet { name: String }
//!
//! impl Job for Greet {
//!     const NAME: &'static str = "greet";
//!     type Output = String;
//!     async fn run(self, _cx: TaskCx) -> Result<String, JobError> {
//!         Ok(format!("hello, {}", self.name))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), errand_runtime::Error> {
//! // `sqlite://jobs.db` for a file (created and migrated on first use).
//! let backend = SqliteBackend::connect("sqlite::memory:").await?;
//! // With options (a codec with `.codec::<C>()`):
//! let tuned = SqliteBackend::builder()
//!     .tuning(|t| t.orphan_after(Duration::from_secs(60)))
//!     .connect("sqlite::memory:")
//!     .await?;
//! # let _ = tuned;
//! let id = backend.enqueue(Greet { name: "ada".into() }).await?;
//!
//! let done = backend.clone();
//! Monitor::new()
//!     .register(WorkerBuilder::<Greet, _>::new(backend.clone()))
//!     .run_until(async move {
//!         while done.result::<Greet>(id).await.ok().flatten().is_none() {
//!             tokio::time::sleep(Duration::from_millis(5)).await;
//!         }
//!     })
//!     .await?;
//! assert_eq!(backend.result::<Greet>(id).await?, Some("hello, ada".to_owned()));
//! # Ok(())
//! # }
//! ```
//!
//! # URLs
//!
//! [`SqliteBackend::connect`] accepts `sqlite://path/to/jobs.db` (relative
//! paths are relative to the working directory, `sqlite:///abs/jobs.db` is
//! absolute), `sqlite:jobs.db` and `sqlite::memory:`, plus sqlx's query
//! parameters (`?mode=ro`, …). The file is created if missing and migrated.
//!
//! There is no namespace setting: a database file is the namespace. Two
//! applications that must not see each other's tasks use two files.
//!
//! # Connections
//!
//! SQLite allows one writer at a time. Every write of a backend value (and of
//! its clones) goes through **one** connection, so writers inside a process
//! queue up instead of failing with `SQLITE_BUSY`; reads for dashboards go
//! through a small pool of reader connections that never block the writer
//! (WAL mode). Several processes may share one file: a 5 s busy timeout covers
//! their contention, and write transactions start with `BEGIN IMMEDIATE`.
//! Connections use `journal_mode = WAL` and `synchronous = NORMAL` (durable
//! against a process crash; a power loss may undo the last transactions).
//!
//! An in-memory database (`sqlite::memory:`) lives in a single connection that
//! serves reads and writes and is never closed while the backend exists.
//!
//! [`SqliteBuilder::from_pool`] uses an existing pool for reads and writes
//! instead (and does not migrate: call [`SqliteBackend::migrate`]).
//! [`SqliteBuilder::migrate`]`(false)` makes `connect` open the database
//! without migrating it either (it still creates an empty file if missing).
//!
//! # Schema
//!
//! Versioned migrations (`migrations/` in this crate) are applied by
//! [`connect`](SqliteBuilder::connect) and [`migrate`](SqliteBackend::migrate)
//! and recorded in `errand_migrations` (not sqlx's `_sqlx_migrations`, so they
//! never clash with the application's own sqlx migrations in the same file).
//! A database migrated by a newer errand, or one whose applied migration
//! differs from the one this version ships, is refused with
//! [`Error::Schema`]. [`pending_migrations`](SqliteBackend::pending_migrations)
//! names the migrations not applied yet (each by its file's name, e.g.
//! `0004_progress_pause_schedules`) without writing anything, not even the
//! `errand_migrations` table, for checks such as `errand migrate --check`
//! on a backend connected with [`migrate(false)`](SqliteBuilder::migrate).
//!
//! - `errand_tasks`: `id` (never reused), `job`, `queue`, `state` (`pending`,
//!   `running`, `retry`, `done`, `dead`, `cancelled`), `payload` and `result`
//!   (BLOBs encoded with the backend's [`Codec`]), `attempt`, `max_attempts`,
//!   `priority`, `run_at`, `created_at`, `started_at`, `finished_at` (INTEGER
//!   milliseconds since the Unix epoch, never whole seconds), `unique_key`,
//!   `last_error`, `worker`, for a workflow step its `run_id` and `step`,
//!   the latest progress its current attempt reported,
//!   `progress_percent` (0 to 100) and `progress_message` (both NULL until
//!   it reports; in no index, so a report never writes one), and `trace`,
//!   the W3C trace context it was enqueued with
//!   ([`NewTask::trace`](errand_runtime::backend::NewTask::trace), NULL
//!   without one; for a workflow step, its run's), stored as given and
//!   handed back by every claim; `claim`, the token of a hand-off (below),
//!   NULL for every other task.
//! - Indexes: every index on the tasks is *partial*; there is none over all
//!   of them. Four hold one group of states each, and cost a write only when
//!   a task enters or leaves that group: claims walk the index of waiting
//!   (`pending`/`retry`) rows `(queue, job, priority DESC, run_at, id,
//!   state)`, so finished tasks never slow a claim however many there are;
//!   running rows are indexed by `(worker, queue)` (rescue, release),
//!   finished rows (`done`, `dead`, `cancelled`) by `(queue, state,
//!   finished_at)` (counts, retention), and rows in a state this version does
//!   not know by `(queue, state)` (an index that stays empty unless such a
//!   row is written). Others cover only the tasks with a unique key, workflow
//!   step tasks (by run), and runs cancelled while running (by worker).
//! - Counts ([`counts`](errand_runtime::Expose::counts)) read each group of
//!   states from its index alone, never the table: their cost follows the
//!   tasks kept (waiting, running, and finished ones within the retention
//!   plus the `dead` and `cancelled` ones), on a reader connection that never
//!   holds up workers. [Listings](errand_runtime::Expose::tasks) walk the
//!   tasks in id order from `after` (by the primary key), checking the
//!   filter, until they have `limit` of them: quick when matches are common,
//!   a long walk when they are rare. Run listings
//!   ([`run_ids`](errand_runtime::workflow::WorkflowStore::run_ids), and
//!   [`runs`](errand_runtime::workflow::WorkflowStore::runs) on top of it)
//!   likewise walk the runs newest first by the primary key from `before`,
//!   checking the workflow and state: no index on either, as runs are few
//!   next to tasks, so a listing of a rare state walks further. A test
//!   (`src/plans.rs`) plans every
//!   statement that reads the tasks, every shape of listing included, on
//!   60,000 tasks, before and after `ANALYZE`, and fails if one scans the
//!   tasks' table, reads a whole index it should only seek in, or (counts)
//!   reads the table at all.
//! - `errand_workers`: one row per live worker (`id`, `queue`, `job`,
//!   `concurrency`, `started_at`, `last_seen`), written by heartbeats.
//! - `errand_served_jobs`: when a worker of each job last beat on each queue
//!   (`queue`, `job`, `last_seen`), upserted by every heartbeat in the same
//!   transaction as the worker's row, and kept after the worker stops: one
//!   row per queue and job ever served.
//! - `errand_runs` (a workflow run: `workflow`, `queue`, `state`, its graph
//!   as JSON `steps`, `error`, `created_at`, `finished_at`, and `trace`, the
//!   context it was started with, which each of its step tasks is given) and
//!   `errand_run_steps` (one row per step that has a task: `run_id`, `step`,
//!   `task_id`, and its `output` once done). A step's output is stored there
//!   only, not again as its task's `result`.
//! - `errand_paused_queues`: one row (`queue`, `paused_at`) per paused
//!   queue, looked up by primary key in every claim.
//! - `errand_schedules`: the last tick enqueued for each schedule (`name`,
//!   `last_tick` in ms), for
//!   [`Schedules`](errand_runtime::capability::Schedules).
//!
//! # Behaviour and defaults
//!
//! - Claims are one `UPDATE … RETURNING` of up to `max` tasks (which also
//!   clears their progress: each attempt starts from none); acks are one
//!   transaction with at most one statement per outcome kind, each carrying
//!   its whole batch as a JSON array (`json_each`); bulk enqueue is one
//!   `INSERT … SELECT … FROM json_each(?)` per 10,000 tasks.
//! - Hand-off: a single due enqueue without a unique key, made while a
//!   worker of the same backend value waits for its job (its last claim
//!   found nothing), is written already claimed by that worker — `running`,
//!   attempt 1, under a claim token of its own, in one `INSERT … SELECT …
//!   RETURNING` that writes it `pending` instead while its queue is paused —
//!   and handed over in memory: its next claim returns it without a query,
//!   so enqueue→start is one statement instead of two. A worker released
//!   before it takes the task gets it put back by the enqueuer; an enqueue
//!   that fails or is dropped while its insert may have been written leaves
//!   the task to be put back (without using an attempt) before the worker's
//!   next claim. Heartbeats, orphan rescue, release and cancel see a handed
//!   task as any claimed one. It skips the claim's ordering against a
//!   higher-priority task that another process enqueued while the worker
//!   waited. A backend built [`from_pool`](SqliteBuilder::from_pool) on a
//!   pool of more than one connection does not hand off: a put-back could
//!   then run before the insert it undoes.
//! - Every ack is guarded by `state = 'running' AND worker = <acking worker>`:
//!   the ack of a task that was rescued, released or cancelled meanwhile is
//!   ignored.
//! - Progress ([`TaskCx::progress`](errand_runtime::TaskCx::progress), which
//!   the worker throttles): each batch of reports is one `UPDATE … FROM
//!   json_each(?)`, guarded like an ack (`running` for the reporting
//!   worker), so a late report never lands on a task rescued, released or
//!   finished meanwhile. [`task`](errand_runtime::Expose::task) and
//!   [`tasks`](errand_runtime::Expose::tasks) return it
//!   ([`TaskInfo::progress`](errand_runtime::TaskInfo::progress)); it stays
//!   after the task ends, until a new attempt is claimed.
//! - Pausing ([`pause_queue`](errand_runtime::Expose::pause_queue),
//!   [`resume_queue`](errand_runtime::Expose::resume_queue), both
//!   idempotent): a paused queue has a row in `errand_paused_queues`, which
//!   the claim statement itself checks (one primary-key lookup per claim),
//!   so no worker of any process using the file claims from it from the
//!   moment the pause commits; running tasks finish, enqueueing still works,
//!   and a claim of it returns no tasks and no next due time. The pause is
//!   stored, so it outlives restarts. Resuming wakes this process's idle
//!   workers of the queue at once; other processes' workers claim at their
//!   next poll. [`counts`](errand_runtime::Expose::counts) reads the paused
//!   queues in the same statement as the counts and lists a paused queue
//!   (`paused: true`) even when it holds no tasks.
//! - Schedules ([`Schedules`](errand_runtime::capability::Schedules)): each
//!   tick is enqueued with a unique key of (schedule, tick), so processes
//!   running the same schedule enqueue it once; the last tick enqueued is
//!   stored in `errand_schedules` by one upsert that keeps the greater of the
//!   stored and new tick, so processes racing to record it never move it
//!   back, and ticks missed while no process ran the schedule are caught up
//!   by its `missed` policy.
//! - Unique keys are scoped to the job: a task is not inserted while a live
//!   (`pending`, `running`, `retry`) task of the same job has the same key,
//!   or, with `unique_for`, while any task of the job with that key was
//!   created within the window; the existing task's id is returned instead.
//! - Orphans: a `running` task whose worker has not beaten for
//!   [`Tuning::orphan_after`] (30 s by default) goes back to `pending`, due
//!   now (its attempt stays used), or to `dead` if that was its last attempt;
//!   either way `last_error` names the lost worker.
//! - Cancelling a running task keeps its `worker` until that worker acks it,
//!   so the worker learns of it at its next heartbeat
//!   ([`cancelled_tasks`](errand_runtime::Backend::cancelled_tasks)) and the
//!   run's cancellation token fires; the run's ack is then ignored.
//! - Deleting ([`delete_task`](errand_runtime::Expose::delete_task)) is one
//!   `DELETE` of a `done`, `dead` or `cancelled` task that is no workflow
//!   step (a step's task belongs to its run): its result,
//!   error, progress and unique key are in its row, so the key is free
//!   again. A live task, a step's task or an unknown id is left alone
//!   (`false`). A task cancelled while running and deleted before its worker
//!   heard of the cancel is not signalled: that run goes on, and its ack is
//!   ignored.
//! - Unserved jobs: a job is unserved on a queue when no worker of it, in
//!   any process using the file, has beaten there since the time asked
//!   (`errand_served_jobs`). [`unserved`](errand_runtime::Backend::unserved)
//!   finds the jobs with waiting tasks by seeking in the claim index (one
//!   seek per job) and counts the waiting tasks of the unserved ones only;
//!   [`bury_unserved`](errand_runtime::Backend::bury_unserved) checks that
//!   the job is still unserved in the statements that bury, in one write
//!   transaction, so a worker that beats meanwhile keeps its backlog.
//! - Workflows: the `done` or `dead` ack of a step is applied, in the same
//!   transaction, together with what the runtime's
//!   [planner](errand_runtime::workflow::plan) makes of it: the step's output
//!   is stored, the steps whose inputs are now all there are inserted (once
//!   per run and step), and the run is finished — or failed, its other live
//!   steps cancelled. A batch of step acks is two round trips to the
//!   connection's thread, whatever it holds: one script acks the steps and
//!   reads their runs (beginning the transaction), the next writes the plans
//!   and commits; a writer connection whose transaction cannot be ended is
//!   closed, never pooled. A step task that ends any other way than `done`
//!   (rescued on its last attempt, buried as unserved or unreadable,
//!   cancelled) fails its run the same way.
//!   [`run_info`](errand_runtime::workflow::WorkflowStore::run_info) gives
//!   each step the names of the steps it takes outputs from
//!   ([`StepInfo::after`](errand_runtime::workflow::StepInfo::after)), read
//!   from the graph stored with the run.
//! - Retention ([`purge_expired`](errand_runtime::Backend::purge_expired),
//!   which each worker calls about every 10 s, apart from rescue and acks):
//!   `done` tasks that finished more than [`Tuning::retention`] (24 h by
//!   default) ago are deleted, and so are workflow runs that finished (done
//!   or failed) that long ago, with their steps. `dead` and `cancelled` tasks
//!   are kept until you retry them
//!   ([`retry_task`](errand_runtime::Expose::retry_task)) or delete them
//!   ([`delete_task`](errand_runtime::Expose::delete_task)). A process runs one pass at a time and at most one per second
//!   (per quarter of the retention, if that is shorter); other calls return
//!   at once. A pass deletes tasks in statements of 5,000, each its own short
//!   write transaction, at most 4 of them (20,000 tasks), then up to 5,000
//!   runs; a larger backlog (after a burst, or a shortened retention) goes
//!   over the next passes.
//! - Clocks: SQLite has no server clock, so one machine's clock is the
//!   store's: the processes sharing a database file run on one machine (WAL
//!   mode needs memory they share, so not over a network file system) and
//!   read the same system clock. Liveness goes by that clock alone:
//!   heartbeats' `last_seen`, the rescue cutoff, when jobs were served, and
//!   the workers listing. The times stored with tasks and runs (`run_at`,
//!   `created_at`, `finished_at`) and the checks against them (due tasks,
//!   unique windows, retention) come from [`Tuning::clock`], which is that
//!   system clock unless set off for a test: a handle whose clock is set off
//!   cannot make a live worker look dead.
//! - Wake-ups: after an enqueue, a retry or a snooze the backend wakes this
//!   process's idle workers of that queue at once. Workers in other processes
//!   notice new tasks within [`Tuning::poll_interval`] (100 ms by default).
//! - Claim buffer: a worker may hold up to its concurrency in claimed tasks
//!   waiting for a slot ([`Tuning::buffer`]), as many as its slots finish in
//!   a few milliseconds; slow runs give the excess back. Every statement
//!   goes through the one writer connection, so a busy worker claiming
//!   twice as many tasks at a time writes half the claim statements. A
//!   worker built with `.buffer(0)` claims only for its free slots.
//! - Unreadable data: a stored row that this version cannot read (an unknown
//!   state, a negative attempt or id, a priority outside `i16`) is reported
//!   as an error naming the task. A claimed task whose row cannot be read
//!   goes `dead` with that error instead of running (by its stored id, even
//!   one no [`TaskId`](errand_runtime::TaskId) can name), and the worker gets
//!   the other tasks of the claim; a workflow step's run fails with it.
//!   Should burying fail, the whole claim is put back as it was and the claim
//!   returns the error; should putting it back fail too, it is put back
//!   before that worker's next claim (which fails while it cannot be) or by
//!   its release, so no task stays `running` for a worker that will not run
//!   it. A task in an unknown state is never claimed, and makes
//!   [`counts`](errand_runtime::Expose::counts) an error naming its queue
//!   and state.
//!
//! # Limitations
//!
//! - Wake-ups do not cross processes: other processes poll (for new tasks,
//!   and for a queue resumed elsewhere).
//! - A task enqueued with
//!   [`enqueue_in`](errand_runtime::TaskSink::enqueue_in) becomes visible
//!   when the caller's transaction commits; idle workers see it at their next
//!   poll, or at once after [`notify`](SqliteBackend::notify).
//! - Throughput is bounded by SQLite's single writer: claims, acks and
//!   enqueues of all workers are serialised, which batching keeps cheap.
//!
//! # Several processes
//!
//! `tests/load.rs` runs worker processes on one database file, kills one
//! with SIGKILL part-way, and checks that no task is lost and that only the
//! tasks in flight in the killed process run twice. It runs 4 processes and
//! 5,000 tasks with `cargo test`; the full size is
//!
//! ```text
//! ERRAND_LOAD_PROCESSES=4 ERRAND_LOAD_TASKS=100000 cargo test --release -p errand-sqlite --test load
//! ```
//!
//! which prints `load [sqlite]: processes 4, tasks 100000, lost 0, duplicates …`.
//!
//! The project's `docs/architecture.md` describes how backends are built.

use std::fmt;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use errand_runtime::backend::{Buffer, Handoffs, Notifier};
use errand_runtime::capability::{CancelRunning, Delays, Priorities, Results, UniqueKeys};
use errand_runtime::{Codec, Error, JsonCodec, Tuning};
use sqlx::SqlitePool;

pub use sqlx;

mod ack;
mod backend;
mod claim;
mod connect;
mod encode;
mod expose;
mod migrate;
#[cfg(test)]
mod plans;
mod push;
mod retention;
mod rows;
mod schedules;
mod sql;
mod workers;
mod workflow;

/// The backend's name in messages.
pub(crate) const NAME: &str = "sqlite";

/// A task store in one SQLite database.
///
/// Cheap to clone (an `Arc` inside): give a clone to every worker and
/// enqueuer of the process. `C` is the [`Codec`] arguments and results are
/// stored with ([`JsonCodec`] by default; see [`SqliteBuilder::codec`]).
///
/// Made by [`SqliteBackend::connect`] or [`SqliteBackend::builder`]. See the
/// [crate docs](crate) for the schema, defaults and limitations.
pub struct SqliteBackend<C: Codec = JsonCodec> {
    inner: Arc<Inner>,
    tuning: Tuning,
    codec: PhantomData<fn() -> C>,
}

struct Inner {
    /// The single connection every write goes through.
    writer: SqlitePool,
    /// Reads for `Expose`; the writer itself for an in-memory database.
    reader: SqlitePool,
    notifier: Notifier,
    /// The database file (or `:memory:`) for messages.
    location: String,
    /// Paces retention passes (see `retention.rs`).
    retention: retention::Pacing,
    /// Claims to put back before their worker's next claim (see `claim.rs`).
    put_backs: claim::PutBacks,
    /// Workers of this backend value waiting for tasks, and tasks handed to
    /// them (see `push.rs`).
    handoffs: Handoffs,
    /// Whether single enqueues are handed to waiting workers: only when
    /// every write goes through one connection, so that a put-back always
    /// runs after the insert it undoes.
    hand_off: bool,
}

impl<C: Codec> Clone for SqliteBackend<C> {
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner), tuning: self.tuning, codec: PhantomData }
    }
}

impl<C: Codec> fmt::Debug for SqliteBackend<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("database", &self.inner.location)
            .field("codec", &C::NAME)
            .field("tuning", &self.tuning)
            .finish_non_exhaustive()
    }
}

/// Options for a [`SqliteBackend`]: its codec and [`Tuning`]; finished by
/// [`connect`](SqliteBuilder::connect) or [`from_pool`](SqliteBuilder::from_pool).
///
/// There is no namespace: a database file is one.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use errand_runtime::Backend;
/// use errand_sqlite::SqliteBackend;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), errand_runtime::Error> {
/// let backend = SqliteBackend::builder()
///     .tuning(|t| t.orphan_after(Duration::from_secs(10)).poll_interval(Duration::from_millis(50)))
///     .connect("sqlite::memory:")
///     .await?;
/// assert_eq!(backend.tuning().orphan_after, Duration::from_secs(10));
/// # Ok(())
/// # }
/// ```
#[must_use]
pub struct SqliteBuilder<C: Codec = JsonCodec> {
    tuning: Tuning,
    /// Whether [`connect`](SqliteBuilder::connect) applies the migrations.
    migrate: bool,
    codec: PhantomData<fn() -> C>,
}

impl<C: Codec> fmt::Debug for SqliteBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteBuilder")
            .field("codec", &C::NAME)
            .field("tuning", &self.tuning)
            .field("migrate", &self.migrate)
            .finish()
    }
}

/// This backend's default tuning: the runtime's defaults (rescue after 30 s,
/// keep 24 h, one claim at a time) with a poll every 100 ms, so tasks
/// enqueued by other processes start soon, and a claim buffer of the
/// worker's concurrency. Every statement goes through the one writer
/// connection, so a statement saved is throughput gained: with the buffer a
/// busy worker claims about twice as many tasks at a time (a 64-wide worker
/// about 64 instead of 32), the way a bare claim-then-ack loop does. Slow
/// runs give the excess back, as on every backend.
const fn default_tuning() -> Tuning {
    Tuning::new().poll_interval(Duration::from_millis(100)).buffer(Buffer::Concurrency)
}

impl<C: Codec> SqliteBuilder<C> {
    /// Stores arguments and results with codec `C2` instead.
    ///
    /// Tasks are not tagged with their codec: use one codec per database.
    pub fn codec<C2: Codec>(self) -> SqliteBuilder<C2> {
        SqliteBuilder { tuning: self.tuning, migrate: self.migrate, codec: PhantomData }
    }

    /// Changes the [`Tuning`], starting from this backend's defaults (poll
    /// every 100 ms, rescue after 30 s).
    pub fn tuning(mut self, tune: impl FnOnce(Tuning) -> Tuning) -> Self {
        self.tuning = tune(self.tuning);
        self
    }

    /// Whether [`connect`](Self::connect) applies the schema migrations not
    /// applied yet (`true`, the default). With `false` it opens the database
    /// (creating an empty file if missing) and writes nothing to its schema:
    /// for tools that must not create tables, such as a dashboard or
    /// `errand migrate --check`, which can ask
    /// [`pending_migrations`](SqliteBackend::pending_migrations) and call
    /// [`migrate`](SqliteBackend::migrate) themselves. On a database that
    /// was never migrated every statement then fails with SQLite's "no such
    /// table" error.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), errand_runtime::Error> {
    /// let backend = errand_sqlite::SqliteBackend::builder().migrate(false).connect("sqlite::memory:").await?;
    /// assert_eq!(backend.pending_migrations().await?.len(), 6, "a fresh database");
    /// backend.migrate().await?;
    /// assert!(backend.pending_migrations().await?.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }
}

impl SqliteBackend<JsonCodec> {
    /// Opens (creating it if missing) and migrates the database at `url`
    /// with the default codec and tuning: `SqliteBackend::builder().connect(url)`.
    ///
    /// # Errors
    ///
    /// As [`SqliteBuilder::connect`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), errand_runtime::Error> {
    /// let backend = errand_sqlite::SqliteBackend::connect("sqlite::memory:").await?;
    /// # let _ = backend;
    /// let err = errand_sqlite::SqliteBackend::connect("postgres://localhost/db").await.unwrap_err();
    /// assert!(err.to_string().contains("not a SQLite URL"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::builder().connect(url).await
    }

    /// Options: codec and [`Tuning`].
    pub fn builder() -> SqliteBuilder<JsonCodec> {
        SqliteBuilder { tuning: default_tuning(), migrate: true, codec: PhantomData }
    }
}

impl<C: Codec> SqliteBackend<C> {
    /// Applies the schema migrations not applied yet (idempotent; done by
    /// [`connect`](SqliteBuilder::connect), to be called once after
    /// [`from_pool`](SqliteBuilder::from_pool)).
    ///
    /// # Errors
    ///
    /// [`Error::Schema`] when the database was migrated by a newer errand or
    /// an applied migration differs from the one this version ships;
    /// [`Error::Backend`] when a migration fails.
    pub async fn migrate(&self) -> Result<(), Error> {
        migrate::run(&self.inner.writer, &self.inner.location, self.tuning.clock.now()).await
    }

    /// The names of the schema migrations this version ships that the
    /// database has not applied yet, in order (each its file's name in this
    /// crate's `migrations/`, e.g. `"0004_progress_pause_schedules"`): all of
    /// them on a fresh database, none when it is current. Reads
    /// `errand_migrations` without writing anything (not even creating it
    /// when missing), so it suits a check such as `errand migrate --check`
    /// on a backend made with [`migrate(false)`](SqliteBuilder::migrate).
    ///
    /// # Errors
    ///
    /// [`Error::Schema`] as [`migrate`](Self::migrate): the database was
    /// migrated by a newer errand, or an applied migration differs from the
    /// one this version ships; [`Error::Backend`] when the record cannot be
    /// read.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, Error> {
        migrate::pending(&self.inner.reader, &self.inner.location).await
    }

    /// The pool writes go through (one connection for a backend made by
    /// [`connect`](SqliteBuilder::connect)): begin a transaction on it for
    /// [`enqueue_in`](errand_runtime::TaskSink::enqueue_in). While such a
    /// transaction is open, this backend's other writes wait for it.
    ///
    /// # Examples
    ///
    /// ```
    /// # use errand_runtime::{Job, JobError, TaskCx, TaskSink};
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # struct Greet { name: String }
    /// # impl Job for Greet {
    /// #     const NAME: &'static str = "greet";
    /// #     type Output = ();
    /// #     async fn run(self, _cx: TaskCx) -> Result<(), JobError> { Ok(()) }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let backend = errand_sqlite::SqliteBackend::connect("sqlite::memory:").await?;
    /// let mut tx = backend.pool().begin().await?;
    /// // … the application's own writes on `tx` …
    /// let id = backend.enqueue_in(&mut tx, Greet { name: "ada".into() }).await?;
    /// tx.commit().await?;
    /// # let _ = id;
    /// # Ok(())
    /// # }
    /// ```
    pub fn pool(&self) -> &SqlitePool {
        &self.inner.writer
    }

    /// The database file, or `:memory:`.
    pub fn location(&self) -> &Path {
        Path::new(&self.inner.location)
    }

    /// Wakes this process's idle workers of `queue`, e.g. after committing a
    /// transaction that used [`enqueue_in`](errand_runtime::TaskSink::enqueue_in).
    pub fn notify(&self, queue: &str) {
        self.inner.notifier.notify(queue);
    }

    /// Wakes the idle workers of each of `queues`.
    pub(crate) fn wake_all(&self, queues: &[String]) {
        for queue in queues {
            self.inner.notifier.notify(queue);
        }
    }
}

impl<C: Codec> Priorities for SqliteBackend<C> {}
impl<C: Codec> UniqueKeys for SqliteBackend<C> {}
impl<C: Codec> Delays for SqliteBackend<C> {}
impl<C: Codec> Results for SqliteBackend<C> {}
impl<C: Codec> CancelRunning for SqliteBackend<C> {}
