//! The PostgreSQL backend of [errand](https://docs.rs/errand): a durable task
//! table, batched `FOR UPDATE SKIP LOCKED` claims, `LISTEN/NOTIFY` wake-ups,
//! enqueueing inside the application's own transactions, and durable
//! workflows ([`WorkflowStore`](errand_runtime::workflow::WorkflowStore)).
//!
//! Most users reach it as `errand::postgres::PostgresBackend` through the
//! `errand` facade (feature `postgres`).
//!
//! # Examples
//!
//! ```no_run
//! use errand_runtime::{BackendExt, Job, JobError, Monitor, TaskCx, TaskSink, WorkerBuilder};
//! use errand_postgres::PostgresBackend;
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
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Creates the schema `errand` and its tables on first use.
//! let backend = PostgresBackend::connect("postgres://postgres@127.0.0.1:5432/app").await?;
//! let id = backend.enqueue(Greet { name: "ada".into() }).await?;
//!
//! // Enqueue atomically with the application's own writes.
//! let mut tx = backend.pool().begin().await?;
//! // … sqlx::query("INSERT INTO users …").execute(&mut *tx).await?; …
//! backend.enqueue_in(&mut tx, Greet { name: "bob".into() }).await?;
//! tx.commit().await?;
//!
//! let done = backend.clone();
//! Monitor::new()
//!     .register(WorkerBuilder::<Greet, _>::new(backend.clone()).concurrency(16))
//!     .run_until(async move {
//!         while done.result::<Greet>(id).await.ok().flatten().is_none() {
//!             tokio::time::sleep(std::time::Duration::from_millis(5)).await;
//!         }
//!     })
//!     .await?;
//! assert_eq!(backend.result::<Greet>(id).await?, Some("hello, ada".to_owned()));
//! # Ok(())
//! # }
//! ```
//!
//! # Schema
//!
//! Everything lives in one schema, `errand` by default
//! ([`connect_schema`](PostgresBackend::connect_schema) or
//! [`schema`](PostgresBackend::schema) to choose another: a lowercase SQL
//! identifier, checked before use). Versioned migrations (`migrations/` in this
//! crate) are applied by [`connect`](PostgresBackend::connect) and
//! [`setup`](PostgresBackend::setup) under a transaction-scoped advisory lock,
//! so processes starting at once migrate one after the other; they are
//! recorded in `<schema>.migrations` (not sqlx's `_sqlx_migrations`).
//!
//! - `tasks`: `id` (bigint identity, never reused), `job`, `queue`, `state`
//!   (`pending`, `running`, `retry`, `done`, `dead`, `cancelled`), `payload`
//!   and `result` (bytea encoded with the backend's [`Codec`]), `attempt`,
//!   `max_attempts`, `priority` (smallint), `run_at`, `created_at`,
//!   `started_at`, `finished_at` (bigint milliseconds since the Unix epoch),
//!   `unique_key`, `last_error`, `worker`.
//! - Indexes: claims walk a *partial* index over only `pending`/`retry` rows,
//!   `(queue, job, priority DESC, run_at, id)`, so finished tasks never slow a
//!   claim however many there are. It is the only index that matches a claim,
//!   so the planner walks it in order even before the table has statistics;
//!   it also answers "when is the next task due" (one probe per distinct
//!   priority). Running tasks by worker, cancelled running tasks, unique keys,
//!   and finished tasks by `(queue, state, id)` (for counts, listings and
//!   retention) have partial indexes of their own. No index covers every row
//!   (migration 3): claims and acks are updates that change `state`, so every
//!   index that takes the new row version costs on every state change, and
//!   an index over all rows took all three versions of every task.
//!   A test (`src/plans.rs`) runs every statement on 300,000 tasks and fails
//!   if one scans the table or touches more than a few rows' worth of it.
//!   Two reads are as big as what they ask for: counts read every task, and
//!   a listing by job *and state* without a queue walks that state's tasks of
//!   every queue until it has found enough (give the queue on big tables).
//!   An ack walks its worker's running tasks, which its concurrency and
//!   buffer bound.
//! - `workers`: one row per live worker (`id`, `queue`, `job`, `concurrency`,
//!   `started_at`, `last_seen`), written by heartbeats.
//! - Workflows (migration 2): the task of a workflow step has `run_id` and
//!   `step` set (partial index on `run_id`); `runs` holds one row per run
//!   (`id`, `workflow`, `queue`, `state` — `running`, `done`, `failed` —,
//!   `steps`, the graph as `jsonb`, `error`, `created_at`, `finished_at`);
//!   `run_steps` one row per `(run_id, step)` once the step has a task
//!   (`task_id`), with its `output` (bytea) once it is done.
//!
//! # Behaviour and defaults
//!
//! - A claim is **one** statement: `SELECT … ORDER BY priority DESC, run_at, id
//!   LIMIT max FOR UPDATE SKIP LOCKED` feeding an `UPDATE … RETURNING`; when it
//!   claims nothing, the same statement returns the earliest future `run_at`
//!   of the queue, so an idle worker sleeps exactly until then.
//! - An ack batch is **one** statement: one `UPDATE … FROM UNNEST(…)` per
//!   outcome kind, each guarded by `state = 'running' AND worker = <acking
//!   worker>`, so the ack of a task that was rescued, released or cancelled
//!   meanwhile is ignored. Retries keep their backoff in `run_at`; a snooze
//!   gives its attempt back.
//! - Enqueueing is one `INSERT … SELECT FROM UNNEST(…)` per 10,000 tasks
//!   (several chunks run in one transaction), ids returned in order. A batch
//!   of 256 tasks or more without unique keys is written with a binary
//!   `COPY` instead, per 10,000 tasks, in one transaction: its ids are taken
//!   from the table's sequence first, in ascending order, so they still
//!   follow the input.
//!   Workers of the same process are woken at once. Other processes hear a
//!   `NOTIFY`: inside the enqueue's own statement when no other enqueue of
//!   the backend value is in flight, otherwise just after the commit, by one
//!   task per backend value that coalesces the queues of concurrent
//!   enqueues. (A `NOTIFY` inside each of many concurrent enqueues would hold
//!   PostgreSQL's global notify lock through their WAL flushes, so they could
//!   not share flushes.)
//!   [`enqueue_in`](PostgresBackend::enqueue_in) notifies inside the caller's
//!   transaction instead, so its task wakes workers when it commits.
//! - Busy queues: each worker keeps up to 4 claims in flight and may hold
//!   claimed tasks waiting for a slot while its runs are quick (see
//!   `WorkerBuilder::buffer`): up to `1024 - concurrency` (at least
//!   `concurrency`), room for four claims of 256 tasks. A claim statement
//!   costs the server about the same for 30 rows as for 256: at concurrency
//!   64, claims of ~32 drained 39–42k jobs/s here, of 256 53–63k. Mind the
//!   memory with large payloads: lower the buffer with
//!   `WorkerBuilder::buffer`.
//! - Wake-ups: one `LISTEN` connection per backend value (shared by its
//!   clones and every worker using them), opened when the first worker starts.
//!   Notifications are delivered on commit, so a transactional enqueue wakes
//!   workers exactly when its task becomes visible. A dropped listener is
//!   re-established and then wakes every queue. Idle workers also poll every
//!   [`poll_interval`](PostgresBackend::poll_interval) (1 s by default), as a
//!   fallback only.
//! - Unique keys are scoped to the job: a task is not inserted while a live
//!   (`pending`, `running`, `retry`) task of the same job has the same key, or,
//!   with `unique_for`, while any task of the same job with that key was
//!   created within the window; the existing id is returned instead. Enqueues
//!   of one key are serialised by a transaction-scoped advisory lock, so two
//!   processes racing on a key create one task.
//! - Orphans: a `running` task whose worker has not beaten for
//!   [`orphan_after`](PostgresBackend::orphan_after) (30 s by default) goes
//!   back to `pending` (its attempt stays used), or to `dead` if that was its
//!   last attempt, with a `last_error` naming the lost worker. Any live worker
//!   of any queue rescues them.
//! - Outages: while the server is unreachable, workers log the failed
//!   claims, acks and heartbeats, back off (up to 5 s) and resume when it
//!   returns; acks are retried until they land. A claim whose connection
//!   breaks after the statement was sent may still have committed, leaving
//!   tasks `running` for a worker that never got them (and that keeps
//!   beating, so no rescue would put them back). Each claim therefore tags
//!   its rows with a token (the `claim` column), and the worker's next claims
//!   and heartbeats put back what such a claim took, without using an
//!   attempt. A test cuts every connection six times during a drain through
//!   a proxy: each task still runs exactly once. An enqueue that fails with
//!   a connection error may still have committed, as any database write:
//!   where a duplicate matters, give the task a unique key before retrying.
//! - Vacuum: every claim leaves a dead entry at the head of the claim index
//!   that later claims walk past until a VACUUM removes it, and autovacuum
//!   looks at a table once a minute at most (or never, where it is off). So
//!   the backend runs `VACUUM (SKIP_LOCKED)` on `tasks` itself after every
//!   [`vacuum_every`](PostgresBackend::vacuum_every) finished tasks (50,000
//!   by default), one at a time per backend value: a drain of a million
//!   tasks runs as fast as one of two thousand (without it, ~1k/s by the
//!   end).
//! - Retention: `done` tasks are deleted
//!   [`retention`](PostgresBackend::retention) after they finished (24 h by
//!   default), in bounded batches piggy-backed on orphan rescue (at most every
//!   10 s per backend value). `dead` and `cancelled` tasks are kept.
//! - Connections: [`connect`](PostgresBackend::connect) opens a pool of up to
//!   16 connections (claims, acks, heartbeats and enqueues of every worker
//!   share it) plus the one listener connection. Its connections are pinged
//!   before use only after a second idle (sqlx pings on every acquire by
//!   default: a round trip per statement). Use
//!   [`from_pool`](PostgresBackend::from_pool) to size it yourself; consider
//!   the same `test_before_acquire(false)` and `before_acquire` settings.
//! - A stored row that this version cannot read (an unknown state, a negative
//!   attempt) is reported as an error naming the task; a claimed task whose
//!   row cannot be read goes `dead` with that error instead of stopping the
//!   worker.
//!
//! # Workflows
//!
//! `PostgresBackend` implements
//! [`WorkflowStore`](errand_runtime::workflow::WorkflowStore), so
//! `#[errand::workflow]` graphs run on it (`backend.start(MyWorkflow { … })`,
//! `backend.workflow(run).wait()`):
//!
//! - Starting a run writes its `runs` row and the tasks of its entry steps in
//!   one transaction, committed durably, with a `pg_notify` per queue.
//! - Every step is an ordinary task of job `Workflow::NAME`, claimed by any
//!   worker of any process. The claim returns the task's `run_id`, so the
//!   claiming process, which is the acking one, remembers its step tasks.
//! - An ack batch holding some of them is one transaction (asynchronous
//!   commit, as every claim and ack): it locks the rows of their runs
//!   (`SELECT … FOR UPDATE`, in id order), records the batch's other acks,
//!   marks the steps `done` (storing their outputs in `run_steps`) or `dead`,
//!   then enqueues the dependents whose inputs are now all there (with a
//!   `pg_notify`) and marks runs whose sink steps are all done `done`; a
//!   `dead` step marks its run `failed` and cancels its other live steps
//!   (running ones are told through their cancellation token, and their acks
//!   are ignored). A crash never separates a step's ack from its run's
//!   advance: they commit together.
//! - Sibling steps finishing at once in different workers or processes are
//!   acknowledged by parallel transactions. The run lock serialises them:
//!   each reads the run's outputs only once it holds the lock, so the last
//!   one sees every input of their common dependent and enqueues it, exactly
//!   once. A step's task is also only inserted when its `run_steps` row did
//!   not exist yet (`INSERT … ON CONFLICT DO NOTHING`), so no step is ever
//!   enqueued twice. Ack transactions take their run locks before touching
//!   any task row, in id order, so they cannot deadlock each other.
//! - Batches without step tasks are unaffected: still one statement.
//! - [`run_info`](errand_runtime::workflow::WorkflowStore::run_info) reads a
//!   run and each step's task (state, attempt, last error) and output; a
//!   `done` step task deleted by retention still reads as `done`.
//!
//! # Limitations
//!
//! - `run_at` is compared with the clock of the claiming process: keep the
//!   clocks of machines sharing a queue in sync (NTP).
//! - [`enqueue_in`](PostgresBackend::enqueue_in) with a unique key relies on
//!   its advisory lock lasting until the caller's transaction ends: on a
//!   connection outside a transaction, two racing enqueues of one key may
//!   both be inserted; under `REPEATABLE READ` the check sees the
//!   transaction's snapshot.
//! - A step's ack advances its run only when it comes from the backend value
//!   (or a clone of it) that claimed the step, which is how workers use it.
//!   `runs` and `run_steps` rows are never deleted; cancelling a step's task
//!   by hand (`Expose::cancel_task`) leaves its run `running`.
//! - Retention looks at the oldest 5,000 `done` tasks (by id) of each queue
//!   per batch: a `done` task with a small id that finished recently delays
//!   the deletion of newer ones behind it until it is old enough itself.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use errand_runtime::{BackendError, Codec, Enqueue, Error, Job, JsonCodec, NewTask, Notifier, TaskId, Timestamp};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Row};

pub use sqlx;

mod announce;
mod backend;
mod copy;
mod doubt;
mod expose;
mod listener;
mod migrate;
#[cfg(test)]
mod plans;
mod rows;
mod sql;
mod vacuum;
mod workflow;

use crate::listener::Listener;
use crate::rows::query_error;
use crate::sql::{Queries, fnv1a};

/// The backend's name in messages.
pub(crate) const NAME: &str = "postgres";

/// The schema used unless another is chosen.
pub const DEFAULT_SCHEMA: &str = "errand";
/// Default for [`PostgresBackend::orphan_after`].
const DEFAULT_ORPHAN_AFTER: Duration = Duration::from_secs(30);
/// Default for [`PostgresBackend::poll_interval`].
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Default for [`PostgresBackend::retention`].
const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);
/// Connections of a pool opened by [`PostgresBackend::connect`].
const POOL_SIZE: u32 = 16;
/// How long to wait for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// A pooled connection idle for this long is pinged before it is used.
const PING_IDLE: Duration = Duration::from_secs(1);
/// Tasks per enqueue statement.
const PUSH_BATCH: usize = 10_000;
/// `done` tasks looked at per queue by one cleanup statement.
const CLEANUP_BATCH: i64 = 5_000;
/// Cleanup statements per cleanup run at most.
const CLEANUP_ROUNDS: usize = 20;
/// How often `rescue_orphans` also runs the retention cleanup.
const CLEANUP_EVERY: Duration = Duration::from_secs(10);
/// Longest schema name (a NOTIFY channel name is derived from it and must fit
/// PostgreSQL's 63-byte identifiers).
const MAX_SCHEMA_LEN: usize = 48;

/// A task store in one PostgreSQL schema.
///
/// Cheap to clone (an `Arc` inside): give a clone to every worker and
/// enqueuer of the process; they share one pool and one `LISTEN` connection.
/// `C` is the [`Codec`] arguments and results are stored with ([`JsonCodec`]
/// by default; see [`with_codec`](Self::with_codec)).
///
/// See the [crate docs](crate) for the schema, defaults and limitations.
pub struct PostgresBackend<C: Codec = JsonCodec> {
    inner: Arc<Inner>,
    orphan_after: Duration,
    poll_interval: Duration,
    retention: Duration,
    vacuum_every: u64,
    codec: PhantomData<fn() -> C>,
}

struct Inner {
    pool: PgPool,
    schema: String,
    queries: Queries,
    /// The NOTIFY channel of this schema.
    channel: String,
    notifier: Notifier,
    /// Started by the first `waiter()`; `None` outside a Tokio runtime.
    listener: OnceLock<Option<Listener>>,
    /// When the retention cleanup last ran (ms).
    last_cleanup: AtomicI64,
    /// The server and database, without password, for messages.
    location: String,
    /// Workflow step tasks this process claimed and has not acked yet, with
    /// their runs: their acks advance the runs in the same transaction.
    claimed_steps: std::sync::Mutex<std::collections::HashMap<u64, i64>>,
    /// Claims that broke off after reaching the server, to be put back.
    doubts: doubt::Doubts,
    announcer: announce::Announcer,
    /// Enqueues in flight (see [`announce::Pushing`]).
    pushing: std::sync::atomic::AtomicUsize,
    vacuum: Arc<vacuum::Vacuum>,
}

impl<C: Codec> Clone for PostgresBackend<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            orphan_after: self.orphan_after,
            poll_interval: self.poll_interval,
            retention: self.retention,
            vacuum_every: self.vacuum_every,
            codec: PhantomData,
        }
    }
}

impl<C: Codec> fmt::Debug for PostgresBackend<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("database", &self.inner.location)
            .field("schema", &self.inner.schema)
            .field("codec", &C::NAME)
            .field("orphan_after", &self.orphan_after)
            .field("poll_interval", &self.poll_interval)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

/// `url` with its password (userinfo or `password=` parameter) masked.
fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..].find(['/', '?']).map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest_start + colon + 1..rest_start + at, "***");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (base, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|p| if p.starts_with("password=") { "password=***".to_owned() } else { p.to_owned() })
            .collect();
        out = format!("{base}{}", query.join("&"));
    }
    out
}

/// Checks that `name` is a plain lowercase SQL identifier.
fn validate_schema(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= MAX_SCHEMA_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with("pg_");
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "invalid schema name `{name}`: use 1 to {MAX_SCHEMA_LEN} lowercase letters, digits and `_`, \
             starting with a letter or `_` (and not `pg_`)"
        )))
    }
}

fn parse_url(url: &str) -> Result<(PgConnectOptions, String), Error> {
    let location = redact(url);
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(Error::Config(format!(
            "`{location}` is not a PostgreSQL URL: expected `postgres://user:password@host:5432/database`"
        )));
    }
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| Error::Config(format!("invalid PostgreSQL URL `{location}`: {e}")))?;
    Ok((options, location))
}

fn location_of(pool: &PgPool) -> String {
    let options = pool.connect_options();
    let database = options.get_database().unwrap_or("");
    format!("postgres://{}@{}:{}/{database}", options.get_username(), options.get_host(), options.get_port())
}

impl PostgresBackend<JsonCodec> {
    /// Connects to `url` (`postgres://user:password@host:5432/database`) and
    /// migrates the schema `errand`, creating it if missing.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a malformed URL or a schema migrated by a newer
    /// errand; [`Error::Backend`] naming the URL (without its password) when
    /// the server is unreachable, refuses the credentials, the database does
    /// not exist, or the migration fails.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_schema(url, DEFAULT_SCHEMA).await
    }

    /// [`connect`](Self::connect), with the tables in `schema` instead of
    /// `errand`.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect), and [`Error::Config`] for a schema name
    /// that is not a plain lowercase identifier.
    pub async fn connect_schema(url: &str, schema: &str) -> Result<Self, Error> {
        validate_schema(schema)?;
        let (options, location) = parse_url(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    // sqlx would ping on every acquire: a round trip per
                    // statement. A connection used within the last second is
                    // taken as alive (if it broke since, the statement fails
                    // and workers retry); an idler one is pinged first.
                    if meta.idle_for >= PING_IDLE {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| Error::Backend(BackendError::new(NAME, format!("connect to `{location}`"), e)))?;
        let backend = Self::build(pool, schema, location);
        backend.setup().await?;
        Ok(backend)
    }

    /// Uses an existing pool, without migrating: call [`setup`](Self::setup)
    /// once (or run `errand migrate`). Give it room for every worker's claims
    /// and acks; the listener opens one more connection of its own.
    pub fn from_pool(pool: PgPool) -> Self {
        let location = location_of(&pool);
        Self::build(pool, DEFAULT_SCHEMA, location)
    }

    fn build(pool: PgPool, schema: &str, location: String) -> Self {
        Self {
            inner: Arc::new(Inner::new(pool, schema, location)),
            orphan_after: DEFAULT_ORPHAN_AFTER,
            poll_interval: DEFAULT_POLL_INTERVAL,
            retention: DEFAULT_RETENTION,
            vacuum_every: vacuum::DEFAULT_EVERY,
            codec: PhantomData,
        }
    }
}

impl Inner {
    fn new(pool: PgPool, schema: &str, location: String) -> Self {
        Self {
            queries: Queries::new(schema),
            channel: format!("errand.{schema}"),
            schema: schema.to_owned(),
            pool,
            notifier: Notifier::new(),
            listener: OnceLock::new(),
            last_cleanup: AtomicI64::new(0),
            location,
            claimed_steps: std::sync::Mutex::default(),
            doubts: doubt::Doubts::default(),
            announcer: announce::Announcer::default(),
            pushing: std::sync::atomic::AtomicUsize::new(0),
            vacuum: Arc::default(),
        }
    }
}

impl<C: Codec> PostgresBackend<C> {
    /// The same pool, with the tables in `schema`. The schema is not migrated:
    /// call [`setup`](Self::setup).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a name that is not 1 to 48 lowercase ASCII
    /// letters, digits and `_`, starting with a letter or `_`.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn f(pool: errand_postgres::sqlx::PgPool) -> Result<(), errand_runtime::Error> {
    /// let backend = errand_postgres::PostgresBackend::from_pool(pool).schema("jobs")?;
    /// backend.setup().await?;
    /// # Ok(()) }
    /// ```
    pub fn schema(self, schema: &str) -> Result<Self, Error> {
        validate_schema(schema)?;
        let location = self.inner.location.clone();
        Ok(Self {
            inner: Arc::new(Inner::new(self.inner.pool.clone(), schema, location)),
            orphan_after: self.orphan_after,
            poll_interval: self.poll_interval,
            retention: self.retention,
            vacuum_every: self.vacuum_every,
            codec: PhantomData,
        })
    }

    /// Creates the schema and applies the migrations not applied yet
    /// (idempotent; done by [`connect`](PostgresBackend::connect)). Safe to run
    /// from several processes at once.
    ///
    /// # Errors
    ///
    /// When a migration fails, the schema was migrated by a newer errand, or
    /// an applied migration differs from the one this version ships.
    pub async fn setup(&self) -> Result<(), Error> {
        migrate::run(&self.inner.pool, &self.inner.queries, &self.inner.schema, &self.inner.location).await
    }

    /// How long a worker may go without a heartbeat before its running tasks
    /// are rescued (30 s by default). Keep it several heartbeat intervals long.
    pub fn orphan_after(mut self, after: Duration) -> Self {
        self.orphan_after = after;
        self
    }

    /// How long an idle worker waits at most before claiming again (1 s by
    /// default). Wake-ups come through `LISTEN/NOTIFY`; this is the fallback.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// How long `done` tasks are kept after they finished (24 h by default;
    /// `Duration::MAX` keeps them). `dead` and `cancelled` tasks are kept.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Vacuums the tasks table after every `n` finished tasks (50,000 by
    /// default; 0 leaves it to autovacuum). Each claim leaves a dead entry in
    /// the claim index that later claims walk past until a VACUUM removes
    /// it, and autovacuum looks at a table once a minute at most: without
    /// this, a drain of a million tasks slows tenfold on the way.
    pub fn vacuum_every(mut self, n: u64) -> Self {
        self.vacuum_every = n;
        self
    }

    /// The same schema, storing arguments and results with codec `C2`.
    ///
    /// Tasks are not tagged with their codec: use one codec per schema.
    pub fn with_codec<C2: Codec>(self) -> PostgresBackend<C2> {
        PostgresBackend {
            inner: self.inner,
            orphan_after: self.orphan_after,
            poll_interval: self.poll_interval,
            retention: self.retention,
            vacuum_every: self.vacuum_every,
            codec: PhantomData,
        }
    }

    /// The connection pool: begin a transaction on it for
    /// [`enqueue_in`](Self::enqueue_in), or share it with the application.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The schema holding the tables.
    pub fn schema_name(&self) -> &str {
        &self.inner.schema
    }

    /// The claim and ack statements exactly as the workers run them, for the
    /// bench harness's raw-SQL baseline (the framework's overhead is measured
    /// against a bare loop over these). Not a stable interface.
    ///
    /// Claim binds `$1` worker id, `$2` now (ms), `$3` queue, `$4` job,
    /// `$5` limit, `$6` claim token; ack binds `$1` worker id, `$2` now, then per outcome the
    /// arrays documented in `sql/ack.sql`.
    #[doc(hidden)]
    pub fn raw_statements(&self) -> (&str, &str) {
        (&self.inner.queries.claim, &self.inner.queries.ack)
    }

    /// The `LISTEN/NOTIFY` channel of this schema (`errand.<schema>`); the
    /// payload of each notification is a queue name.
    pub fn channel(&self) -> &str {
        &self.inner.channel
    }

    /// Enqueues `job` inside the caller's transaction: the task exists if and
    /// only if that transaction commits, and idle workers are notified on
    /// commit.
    ///
    /// # Errors
    ///
    /// When the arguments cannot be encoded or the insert fails.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use errand_runtime::{Job, JobError, TaskCx};
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # struct Greet { name: String }
    /// # impl Job for Greet {
    /// #     const NAME: &'static str = "greet";
    /// #     type Output = ();
    /// #     async fn run(self, _cx: TaskCx) -> Result<(), JobError> { Ok(()) }
    /// # }
    /// # async fn f(backend: errand_postgres::PostgresBackend) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut tx = backend.pool().begin().await?;
    /// // … the application's own writes on `tx` …
    /// let id = backend.enqueue_in(&mut tx, Greet { name: "ada".into() }).await?;
    /// tx.commit().await?;
    /// # let _ = id;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn enqueue_in<J: Job>(&self, conn: &mut PgConnection, job: J) -> Result<TaskId, Error> {
        self.enqueue_with_in(conn, job, Enqueue::new()).await
    }

    /// [`enqueue_in`](Self::enqueue_in) with options (delay, priority, unique key, …).
    ///
    /// # Errors
    ///
    /// When the arguments cannot be encoded or the insert fails.
    pub async fn enqueue_with_in<J: Job>(
        &self,
        conn: &mut PgConnection,
        job: J,
        options: Enqueue,
    ) -> Result<TaskId, Error> {
        let now = Timestamp::now();
        let task = options.to_task::<J, C>(&job, now)?;
        // NOTIFY inside the caller's transaction: listeners hear it on commit.
        let ids = self.insert(conn, std::slice::from_ref(&task), now, Some(&self.inner.channel)).await?;
        ids.into_iter().next().ok_or_else(|| rows::bad_data("the id of a new task", "no id came back"))
    }

    /// Records that `n` tasks finished: past `vacuum_every` since the last
    /// VACUUM, one starts in the background (see the `vacuum` module).
    pub(crate) fn finished(&self, n: u64) {
        let inner = &self.inner;
        inner.vacuum.changed(n, self.vacuum_every, &inner.pool, &inner.queries.vacuum);
    }

    /// Tells the listeners of every process that `queues` have new tasks,
    /// after the tasks' commit (see the `announce` module).
    pub(crate) fn announce(&self, queues: &[&str]) {
        let inner = &self.inner;
        inner.announcer.announce(&inner.pool, &inner.queries.announce, &inner.channel, queues);
    }

    /// Deletes `done` tasks older than [`retention`](Self::retention) now, in
    /// bounded batches; returns how many. Orphan rescue runs this every 10 s.
    ///
    /// # Errors
    ///
    /// When the delete fails.
    pub async fn cleanup(&self) -> Result<u64, Error> {
        let cutoff = Timestamp::now().sub(self.retention).as_millis();
        let mut total = 0;
        for _ in 0..CLEANUP_ROUNDS {
            let deleted = sqlx::query(&self.inner.queries.cleanup)
                .bind(cutoff)
                .bind(CLEANUP_BATCH)
                .execute(&self.inner.pool)
                .await
                .map_err(query_error(format!("delete done tasks of schema `{}`", self.inner.schema)))?
                .rows_affected();
            total += deleted;
            if deleted < u64::try_from(CLEANUP_BATCH).unwrap_or(u64::MAX) {
                break;
            }
        }
        Ok(total)
    }

    /// Runs [`cleanup`](Self::cleanup) if it has not run for [`CLEANUP_EVERY`].
    async fn cleanup_if_due(&self) {
        let now = Timestamp::now().as_millis();
        let last = self.inner.last_cleanup.load(Ordering::Relaxed);
        let every = i64::try_from(CLEANUP_EVERY.as_millis()).unwrap_or(i64::MAX);
        if now.saturating_sub(last) < every
            || self.inner.last_cleanup.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            return;
        }
        match self.cleanup().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "postgres: deleted done tasks past their retention"),
            Err(error) => tracing::warn!(%error, "postgres: retention cleanup failed"),
        }
    }

    /// Writes `tasks` on `conn` (see the crate docs for unique keys); several
    /// statements when there are unique keys or more than [`PUSH_BATCH`]
    /// tasks, so run it inside a transaction then; one task without a unique
    /// key takes the plain `push_one.sql`. With `channel`, the same
    /// statements NOTIFY it of the tasks' queues (heard on commit); without,
    /// the caller [`announce`](Self::announce)s them after its commit.
    pub(crate) async fn insert(
        &self,
        conn: &mut PgConnection,
        tasks: &[NewTask],
        now: Timestamp,
        channel: Option<&str>,
    ) -> Result<Vec<TaskId>, Error> {
        let operation = || match tasks {
            [task] => format!("enqueue a task of job `{}` on queue `{}`", task.job, task.queue),
            _ => format!("enqueue {} tasks", tasks.len()),
        };
        if let [task] = tasks
            && task.unique_key.is_none()
        {
            let row = sqlx::query(&self.inner.queries.push_one)
                .bind(now.as_millis())
                .bind(channel)
                .bind(&task.queue)
                .bind(task.job)
                .bind(&task.payload)
                .bind(task.run_at.as_millis())
                .bind(task.priority)
                .bind(i32::try_from(task.max_attempts).unwrap_or(i32::MAX))
                .fetch_optional(&mut *conn)
                .await
                .map_err(query_error(operation()))?;
            let ids = match row {
                Some(row) => {
                    let id: i64 = row.try_get(0).map_err(|e| rows::bad_data("the id of a new task", e.to_string()))?;
                    vec![rows::task_id(id)?]
                }
                None => Vec::new(),
            };
            return check_count(ids, 1);
        }
        if !tasks.iter().any(|t| t.unique_key.is_some()) {
            let mut ids = Vec::with_capacity(tasks.len());
            for chunk in tasks.chunks(PUSH_BATCH) {
                let columns = Columns::new(chunk.iter(), now);
                let rows = columns
                    .bind_common(sqlx::query(&self.inner.queries.push), now, channel)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(query_error(operation()))?;
                for row in &rows {
                    let id: i64 = row.try_get(0).map_err(|e| rows::bad_data("the id of a new task", e.to_string()))?;
                    ids.push(rows::task_id(id)?);
                }
            }
            return check_count(ids, tasks.len());
        }

        // A task whose (job, key) already appeared earlier in this batch gets
        // the earlier one's id; the others are sent.
        let mut alias: Vec<Option<usize>> = vec![None; tasks.len()];
        let mut sent: Vec<usize> = Vec::with_capacity(tasks.len());
        let mut locks: Vec<i64> = Vec::new();
        for (i, task) in tasks.iter().enumerate() {
            if let Some(key) = &task.unique_key {
                let earlier = sent
                    .iter()
                    .copied()
                    .find(|&j| tasks[j].job == task.job && tasks[j].unique_key.as_deref() == Some(key.as_str()));
                if let Some(j) = earlier {
                    alias[i] = Some(j);
                    continue;
                }
                let hash = fnv1a(&[
                    b"errand-postgres unique",
                    self.inner.schema.as_bytes(),
                    task.job.as_bytes(),
                    key.as_bytes(),
                ]);
                locks.push(i64::from_ne_bytes(hash.to_ne_bytes()));
            }
            sent.push(i);
        }
        locks.sort_unstable();
        locks.dedup();
        sqlx::query(&self.inner.queries.lock_keys)
            .bind(&locks)
            .execute(&mut *conn)
            .await
            .map_err(query_error(operation()))?;

        let mut results: Vec<Option<TaskId>> = vec![None; tasks.len()];
        for chunk in sent.chunks(PUSH_BATCH) {
            let columns = Columns::new(chunk.iter().map(|&i| &tasks[i]), now);
            let rows = columns
                .bind_common(sqlx::query(&self.inner.queries.push_unique), now, channel)
                .bind(&columns.unique_key)
                .bind(&columns.unique_since)
                .fetch_all(&mut *conn)
                .await
                .map_err(query_error(operation()))?;
            let mut existing: Vec<Option<TaskId>> = vec![None; chunk.len()];
            let mut inserted: Vec<i64> = Vec::with_capacity(chunk.len());
            for row in &rows {
                let what = "the ids of new tasks";
                let ord: Option<i64> = row.try_get(0).map_err(|e| rows::bad_data(what, e.to_string()))?;
                let id: i64 = row.try_get(1).map_err(|e| rows::bad_data(what, e.to_string()))?;
                match ord {
                    Some(ord) => {
                        let slot =
                            usize::try_from(ord).ok().and_then(|o| o.checked_sub(1)).and_then(|o| existing.get_mut(o));
                        let Some(slot) = slot else {
                            return Err(rows::bad_data(what, format!("position {ord} out of range")));
                        };
                        *slot = Some(rows::task_id(id)?);
                    }
                    None => inserted.push(id),
                }
            }
            inserted.sort_unstable();
            let mut inserted = inserted.into_iter();
            for (position, &index) in chunk.iter().enumerate() {
                results[index] = match existing[position] {
                    Some(id) => Some(id),
                    None => inserted.next().map(rows::task_id).transpose()?,
                };
            }
        }
        let mut ids = Vec::with_capacity(tasks.len());
        for i in 0..tasks.len() {
            let id = match alias[i] {
                Some(j) => results[j],
                None => results[i],
            };
            if let Some(id) = id {
                ids.push(id);
            }
        }
        check_count(ids, tasks.len())
    }
}

fn check_count(ids: Vec<TaskId>, expected: usize) -> Result<Vec<TaskId>, Error> {
    if ids.len() == expected {
        Ok(ids)
    } else {
        Err(rows::bad_data(
            "the ids of new tasks",
            format!("{expected} tasks were written but {} ids came back", ids.len()),
        ))
    }
}

/// One array per column, for `UNNEST`.
struct Columns<'a> {
    queue: Vec<&'a str>,
    job: Vec<&'a str>,
    payload: Vec<&'a [u8]>,
    run_at: Vec<i64>,
    priority: Vec<i16>,
    max_attempts: Vec<i32>,
    unique_key: Vec<Option<&'a str>>,
    unique_since: Vec<i64>,
}

impl<'a> Columns<'a> {
    /// Binds `$1`..`$8`, shared by push.sql and push_unique.sql: created_at,
    /// the NOTIFY channel (none: no NOTIFY), then the columns every task has.
    fn bind_common<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
        now: Timestamp,
        channel: Option<&'q str>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(now.as_millis())
            .bind(channel)
            .bind(&self.queue)
            .bind(&self.job)
            .bind(&self.payload)
            .bind(&self.run_at)
            .bind(&self.priority)
            .bind(&self.max_attempts)
    }

    fn new(tasks: impl ExactSizeIterator<Item = &'a NewTask>, now: Timestamp) -> Self {
        let n = tasks.len();
        let mut c = Columns {
            queue: Vec::with_capacity(n),
            job: Vec::with_capacity(n),
            payload: Vec::with_capacity(n),
            run_at: Vec::with_capacity(n),
            priority: Vec::with_capacity(n),
            max_attempts: Vec::with_capacity(n),
            unique_key: Vec::with_capacity(n),
            unique_since: Vec::with_capacity(n),
        };
        for t in tasks {
            c.queue.push(&t.queue);
            c.job.push(t.job);
            c.payload.push(&t.payload);
            c.run_at.push(t.run_at.as_millis());
            c.priority.push(t.priority);
            c.max_attempts.push(i32::try_from(t.max_attempts).unwrap_or(i32::MAX));
            c.unique_key.push(t.unique_key.as_deref());
            c.unique_since.push(t.unique_for.map_or(i64::MAX, |w| now.sub(w).as_millis()));
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact("postgres://u@h/db?password=x&sslmode=y"), "postgres://u@h/db?password=***&sslmode=y");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn schema_names_are_checked() {
        assert!(validate_schema("errand_test_1").is_ok());
        for bad in ["", "Errand", "a-b", "a;drop", "1abc", "pg_x", "a\"b", &"x".repeat(49)] {
            assert!(validate_schema(bad).is_err(), "{bad}");
        }
    }
}
