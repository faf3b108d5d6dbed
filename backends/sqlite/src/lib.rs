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
//! let id = backend.enqueue(Greet { name: "ada".into() }).await?;
//!
//! let done = backend.clone();
//! Monitor::new()
//!     .register(WorkerBuilder::<Greet, _>::new(backend.clone()))
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
//! # URLs
//!
//! [`SqliteBackend::connect`] accepts `sqlite://path/to/jobs.db` (relative
//! paths are relative to the working directory, `sqlite:///abs/jobs.db` is
//! absolute), `sqlite:jobs.db` and `sqlite::memory:`, plus sqlx's query
//! parameters (`?mode=ro`, …). The file is created if missing and migrated.
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
//! # Schema
//!
//! Versioned migrations (`migrations/` in this crate) are applied by
//! [`connect`](SqliteBackend::connect) and [`setup`](SqliteBackend::setup) and
//! recorded in `errand_migrations` (not sqlx's `_sqlx_migrations`, so they
//! never clash with the application's own sqlx migrations in the same file).
//!
//! - `errand_tasks`: `id` (never reused), `job`, `queue`, `state` (`pending`,
//!   `running`, `retry`, `done`, `dead`, `cancelled`), `payload` and `result`
//!   (BLOBs encoded with the backend's [`Codec`]), `attempt`, `max_attempts`,
//!   `priority`, `run_at`, `created_at`, `started_at`, `finished_at` (INTEGER
//!   milliseconds since the Unix epoch, never whole seconds), `unique_key`,
//!   `last_error`, `worker`.
//! - Indexes: claims walk a *partial* index over only `pending`/`retry` rows
//!   `(queue, job, priority DESC, run_at, id)`, so finished tasks never slow a
//!   claim however many there are; partial indexes also cover running tasks
//!   by worker (rescue, release) and unique keys. There is deliberately no
//!   index on `state` for the whole table: it would be rewritten on every
//!   claim and ack. [`counts`](errand_runtime::Expose::counts) and listings
//!   filtered by state therefore scan the table, on a reader connection that
//!   never holds up workers.
//! - `errand_workers`: one row per live worker (`id`, `queue`, `job`,
//!   `concurrency`, `started_at`, `last_seen`), written by heartbeats.
//!
//! # Behaviour and defaults
//!
//! - Claims are one `UPDATE … RETURNING` of up to `max` tasks; acks are one
//!   transaction with at most one statement per outcome kind, each carrying
//!   its whole batch as a JSON array (`json_each`); bulk enqueue is one
//!   `INSERT … SELECT … FROM json_each(?)` per 10,000 tasks.
//! - Every ack is guarded by `state = 'running' AND worker = <acking worker>`:
//!   the ack of a task that was rescued, released or cancelled meanwhile is
//!   ignored.
//! - Unique keys are global to the database (include the job's name in a key
//!   to scope it): a task is not inserted while a live (`pending`, `running`,
//!   `retry`) task has the same key, or, with `unique_for`, while any task
//!   with that key was created within the window; the existing task's id is
//!   returned instead.
//! - Orphans: a `running` task whose worker has not beaten for
//!   [`orphan_after`](SqliteBackend::orphan_after) (30 s by default) goes back
//!   to `pending`, due now (its attempt stays used), or to `dead` if that was
//!   its last attempt; either way `last_error` names the lost worker.
//! - Cancelling a running task keeps its `worker` until that worker acks it,
//!   so the worker learns of it at its next heartbeat
//!   ([`cancelled_tasks`](errand_runtime::Backend::cancelled_tasks)) and the
//!   run's cancellation token fires; the run's ack is then ignored.
//! - Wake-ups: after an enqueue, a retry or a snooze the backend wakes this
//!   process's idle workers of that queue at once. Workers in other processes
//!   notice new tasks within [`poll_interval`](SqliteBackend::poll_interval)
//!   (100 ms by default).
//! - A stored row that this version cannot read (an unknown state, a negative
//!   attempt, a priority outside `i16`) is reported as an error naming the
//!   task; a claimed task whose row cannot be read goes `dead` with that error
//!   instead of stopping the worker.
//!
//! # Limitations
//!
//! - Wake-ups do not cross processes: other processes poll.
//! - A task enqueued with [`enqueue_in`](SqliteBackend::enqueue_in) becomes
//!   visible when the caller's transaction commits; idle workers see it at
//!   their next poll, or at once after [`notify`](SqliteBackend::notify).
//! - Throughput is bounded by SQLite's single writer: claims, acks and
//!   enqueues of all workers are serialised, which batching keeps cheap.

use std::fmt;
use std::marker::PhantomData;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use errand_runtime::{BackendError, Codec, Enqueue, Error, Job, JsonCodec, NewTask, Notifier, TaskId, Timestamp};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{SqliteConnection, SqlitePool};

pub use sqlx;

mod backend;
mod encode;
mod expose;
mod migrate;
mod rows;
mod sql;
mod workflow;

/// The backend's name in messages.
pub(crate) const NAME: &str = "sqlite";

/// Default for [`SqliteBackend::orphan_after`].
const DEFAULT_ORPHAN_AFTER: Duration = Duration::from_secs(30);
/// Default for [`SqliteBackend::poll_interval`].
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long a statement waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Reader connections of a file database.
const READERS: u32 = 4;

/// A task store in one SQLite database.
///
/// Cheap to clone (an `Arc` inside): give a clone to every worker and
/// enqueuer of the process. `C` is the [`Codec`] arguments and results are
/// stored with ([`JsonCodec`] by default; see [`with_codec`](Self::with_codec)).
///
/// See the [crate docs](crate) for the schema, defaults and limitations.
pub struct SqliteBackend<C: Codec = JsonCodec> {
    inner: Arc<Inner>,
    orphan_after: Duration,
    poll_interval: Duration,
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
    /// Workflow step tasks this process claimed and has not acked yet: their
    /// acks advance the run in the same transaction.
    claimed_steps: std::sync::Mutex<std::collections::HashSet<u64>>,
}

impl<C: Codec> Clone for SqliteBackend<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            orphan_after: self.orphan_after,
            poll_interval: self.poll_interval,
            codec: PhantomData,
        }
    }
}

impl<C: Codec> fmt::Debug for SqliteBackend<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("database", &self.inner.location)
            .field("codec", &C::NAME)
            .field("orphan_after", &self.orphan_after)
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}

/// A parsed connection URL.
struct Target {
    options: SqliteConnectOptions,
    memory: bool,
    location: String,
}

fn parse_url(url: &str) -> Result<Target, Error> {
    let expected = "expected `sqlite://path/to/file.db`, `sqlite:file.db` or `sqlite::memory:`";
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return Err(Error::Config(format!("`{url}` is not a SQLite URL: {expected}")));
    };
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, params) = rest.split_once('?').unwrap_or((rest, ""));
    let memory = path == ":memory:" || params.split('&').any(|p| p == "mode=memory");
    if path.is_empty() && !memory {
        return Err(Error::Config(format!("SQLite URL `{url}` names no database file: {expected}")));
    }
    let options =
        SqliteConnectOptions::from_str(url).map_err(|e| Error::Config(format!("invalid SQLite URL `{url}`: {e}")))?;
    let location = if memory { ":memory:".to_owned() } else { options.get_filename().display().to_string() };
    Ok(Target { options, memory, location })
}

fn open_error(location: &str, source: sqlx::Error) -> Error {
    let hint = match &source {
        sqlx::Error::Database(e) if e.message().contains("not a database") => {
            " (the file exists but is not a SQLite database)"
        }
        sqlx::Error::Database(e) if e.message().contains("unable to open") => {
            " (check that the directory exists and is writable)"
        }
        _ => "",
    };
    Error::Backend(BackendError::new(NAME, format!("open database `{location}`{hint}"), source))
}

impl SqliteBackend<JsonCodec> {
    /// Opens (creating it if missing) and migrates the database at `url`:
    /// `sqlite://path/to/jobs.db`, `sqlite:jobs.db` or `sqlite::memory:`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a URL that is not a SQLite URL or names no file,
    /// or a database migrated by a newer errand; [`Error::Backend`] naming the
    /// path when the file cannot be created or opened (missing or read-only
    /// directory), is not a SQLite database, or cannot be migrated.
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
        let Target { options, memory, location } = parse_url(url)?;
        let options = options.create_if_missing(true).busy_timeout(BUSY_TIMEOUT);
        let options = if memory {
            options
        } else {
            options.journal_mode(SqliteJournalMode::Wal).synchronous(SqliteSynchronous::Normal)
        };
        // The one writer connection; it also keeps an in-memory database alive.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await
            .map_err(|e| open_error(&location, e))?;
        let reader = if memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new().max_connections(READERS).connect_lazy_with(options.create_if_missing(false))
        };
        let backend = Self::from_parts(writer, reader, location);
        backend.setup().await?;
        Ok(backend)
    }

    /// Uses an existing pool for reads and writes, without migrating: call
    /// [`setup`](Self::setup) once (or run `errand migrate`).
    ///
    /// A pool of one connection avoids `SQLITE_BUSY` between this process's
    /// writers, as [`connect`](Self::connect) does.
    pub fn from_pool(pool: SqlitePool) -> Self {
        let location = pool.connect_options().get_filename().display().to_string();
        Self::from_parts(pool.clone(), pool, location)
    }

    fn from_parts(writer: SqlitePool, reader: SqlitePool, location: String) -> Self {
        Self {
            inner: Arc::new(Inner {
                writer,
                reader,
                notifier: Notifier::new(),
                location,
                claimed_steps: Default::default(),
            }),
            orphan_after: DEFAULT_ORPHAN_AFTER,
            poll_interval: DEFAULT_POLL_INTERVAL,
            codec: PhantomData,
        }
    }
}

impl<C: Codec> SqliteBackend<C> {
    /// Applies the schema migrations not applied yet (idempotent; done by
    /// [`connect`](SqliteBackend::connect)).
    ///
    /// # Errors
    ///
    /// When a migration fails, the database was migrated by a newer errand,
    /// or an applied migration differs from the one this version ships.
    pub async fn setup(&self) -> Result<(), Error> {
        migrate::run(&self.inner.writer, &self.inner.location).await
    }

    /// How long a worker may go without a heartbeat before its running tasks
    /// are rescued (30 s by default). Keep it several heartbeat intervals long.
    pub fn orphan_after(mut self, after: Duration) -> Self {
        self.orphan_after = after;
        self
    }

    /// How long an idle worker waits at most before claiming again (100 ms by
    /// default): how soon it sees tasks enqueued by other processes.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The same database, storing arguments and results with codec `C2`.
    ///
    /// Tasks are not tagged with their codec: use one codec per database.
    pub fn with_codec<C2: Codec>(self) -> SqliteBackend<C2> {
        SqliteBackend {
            inner: self.inner,
            orphan_after: self.orphan_after,
            poll_interval: self.poll_interval,
            codec: PhantomData,
        }
    }

    /// The pool writes go through (one connection for a backend made by
    /// [`connect`](SqliteBackend::connect)): begin a transaction on it for
    /// [`enqueue_in`](Self::enqueue_in). While such a transaction is open,
    /// this backend's other writes wait for it.
    pub fn pool(&self) -> &SqlitePool {
        &self.inner.writer
    }

    /// The database file, or `:memory:`.
    pub fn location(&self) -> &Path {
        Path::new(&self.inner.location)
    }

    /// Wakes this process's idle workers of `queue`, e.g. after committing a
    /// transaction that used [`enqueue_in`](Self::enqueue_in).
    pub fn notify(&self, queue: &str) {
        self.inner.notifier.notify(queue);
    }

    /// Enqueues `job` inside the caller's transaction: the task exists if and
    /// only if that transaction commits.
    ///
    /// The connection must belong to the same database (e.g. a transaction
    /// begun on [`pool`](Self::pool), or on the application's own pool for the
    /// same file).
    ///
    /// # Errors
    ///
    /// When the arguments cannot be encoded or the insert fails.
    ///
    /// # Examples
    ///
    /// ```
    /// # use errand_runtime::{Job, JobError, TaskCx};
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
    pub async fn enqueue_in<J: Job>(&self, tx: &mut SqliteConnection, job: J) -> Result<TaskId, Error> {
        self.enqueue_with_in(tx, job, Enqueue::new()).await
    }

    /// [`enqueue_in`](Self::enqueue_in) with options (delay, priority, unique key, …).
    ///
    /// # Errors
    ///
    /// When the arguments cannot be encoded or the insert fails.
    pub async fn enqueue_with_in<J: Job>(
        &self,
        tx: &mut SqliteConnection,
        job: J,
        options: Enqueue,
    ) -> Result<TaskId, Error> {
        let now = Timestamp::now();
        let task = options.to_task::<J, C>(&job, now)?;
        let id = insert_one(tx, &task, now).await?;
        self.inner.notifier.notify(&task.queue);
        Ok(id)
    }
}

/// Inserts one task unless its unique key matches an existing one (see the crate docs).
async fn insert_one(conn: &mut SqliteConnection, task: &NewTask, now: Timestamp) -> Result<TaskId, Error> {
    let operation = || format!("enqueue a task of job `{}` on queue `{}`", task.job, task.queue);
    if let Some(key) = &task.unique_key {
        let since = task.unique_for.map_or(i64::MAX, |window| now.sub(window).as_millis());
        let existing: Option<i64> = sqlx::query_scalar(sql::FIND_UNIQUE)
            .bind(key.as_str())
            .bind(since)
            .bind(task.job)
            .fetch_optional(&mut *conn)
            .await
            .map_err(rows::query_error(operation()))?;
        if let Some(id) = existing {
            return rows::task_id(id);
        }
    }
    let id: i64 = sqlx::query_scalar(sql::PUSH_ONE)
        .bind(task.queue.as_str())
        .bind(task.job)
        .bind(task.payload.as_slice())
        .bind(i64::from(task.max_attempts))
        .bind(task.priority)
        .bind(task.run_at.as_millis())
        .bind(now.as_millis())
        .bind(task.unique_key.as_deref())
        .fetch_one(&mut *conn)
        .await
        .map_err(rows::query_error(operation()))?;
    rows::task_id(id)
}
