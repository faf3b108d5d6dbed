//! The MySQL/MariaDB backend of [errand](https://docs.rs/errand): a durable
//! task table, batched `SELECT … FOR UPDATE SKIP LOCKED` claims, enqueueing
//! inside the application's own transactions, durable workflows
//! ([`WorkflowStore`]), progress reports, queues paused and resumed across
//! processes, cron schedules ([`Schedules`]), and, since MySQL has no
//! `LISTEN/NOTIFY`, an adaptive idle poller for tasks of other processes. It
//! needs MySQL 8.0 or later, or MariaDB 10.6 or later.
//!
//! Most users reach it as `errand::mysql::MysqlBackend` through the `errand`
//! facade (feature `mysql`).
//!
//! # Examples
//!
//! ```no_run
//! use std::time::Duration;
//! use errand_runtime::{BackendExt, Job, JobError, Monitor, TaskCx, TaskSink, WorkerBuilder};
//! use errand_mysql::MysqlBackend;
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
//! // Creates the `errand_*` tables on first use.
//! let backend = MysqlBackend::connect("mysql://root@127.0.0.1:3306/app").await?;
//! // Or with options: another table prefix, other settings.
//! let other = MysqlBackend::builder()
//!     .namespace("jobs_")
//!     .tuning(|t| t.orphan_after(Duration::from_secs(60)).retention(Duration::from_secs(3600)))
//!     .connect("mysql://root@127.0.0.1:3306/app")
//!     .await?;
//! # let _ = other;
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
//! # Options
//!
//! [`MysqlBackend::builder`] takes:
//!
//! - [`namespace`](MysqlBuilder::namespace): the prefix of the table names,
//!   `errand_` by default (1 to 40 lowercase ASCII letters, digits and `_`,
//!   checked before use). The database is the URL's: another database is
//!   another namespace too;
//! - [`codec`](MysqlBuilder::codec): how arguments and results are stored
//!   ([`JsonCodec`] by default; tasks are not tagged with their codec, so use
//!   one codec per namespace);
//! - [`tuning`](MysqlBuilder::tuning): the [`Tuning`] every backend has,
//!   starting from this backend's defaults (below);
//! - [`idle_poll`](MysqlBuilder::idle_poll): see *Wake-ups* below;
//! - [`migrate`](MysqlBuilder::migrate): whether
//!   [`connect`](MysqlBuilder::connect) migrates the tables (`true` by
//!   default; `false` for tools that must not create or change them, e.g.
//!   a check with [`pending_migrations`](MysqlBackend::pending_migrations)),
//!
//! and ends with [`connect`](MysqlBuilder::connect) (opens a pool, checks the
//! server's version, migrates the tables unless told not to) or
//! [`from_pool`](MysqlBuilder::from_pool) (an existing pool, no migration:
//! call [`migrate`](MysqlBackend::migrate)).
//!
//! # Schema
//!
//! Versioned migrations (`migrations/` in this crate) are applied by
//! [`connect`](MysqlBuilder::connect) and [`migrate`](MysqlBackend::migrate)
//! under a named lock (`GET_LOCK`, on a connection of its own closed at the
//! end), so processes starting at once migrate one after the other; they are
//! recorded in `<prefix>migrations` (not sqlx's `_sqlx_migrations`). Tables
//! migrated by a newer errand, or whose applied migrations differ from the
//! ones this version ships, are refused with [`Error::Schema`].
//! [`pending_migrations`](MysqlBackend::pending_migrations) names the
//! migrations not applied yet (`0001_create_tables`, … — the files' names)
//! without applying them or creating anything (the record is read only if
//! `information_schema` shows it exists), with the same checks. MySQL
//! commits each DDL statement on its own, so a migration is not atomic: its
//! statements are idempotent (`CREATE TABLE IF NOT EXISTS`; a column or an
//! index is added by an `ALTER TABLE` prepared only when
//! `information_schema` shows it missing, since MySQL has no `ADD COLUMN IF
//! NOT EXISTS` nor `ADD INDEX IF NOT EXISTS`), and a `migrate` completes one
//! that failed half-way. Migration 1 creates the tables; migration 2 adds
//! the progress columns, `paused_queues` and `schedules` (an instant
//! `ALTER`: nullable columns at the end of the row, no table copy on MySQL
//! 8.0.12+ and MariaDB 10.3+); migration 3 indexes `runs` by state and by
//! workflow for listings (built in place, reads and writes going on);
//! migration 4 adds the `trace` columns of `tasks` and `runs` (instant, as
//! migration 2's).
//! Every table is InnoDB,
//! `utf8mb4` with a binary collation (queue and job names, unique keys and
//! worker ids compare byte for byte).
//!
//! - `<prefix>tasks`: `id` (`BIGINT AUTO_INCREMENT`), `queue`, `job`
//!   (`VARCHAR(255)`), `state` (`pending`, `running`, `retry`, `done`,
//!   `dead`, `cancelled`), `payload` and `result` (`LONGBLOB`, encoded with
//!   the backend's [`Codec`]), `attempt`, `max_attempts`, `priority`
//!   (`SMALLINT`), `run_at`, `created_at`, `started_at`, `finished_at`
//!   (`BIGINT` milliseconds since the Unix epoch), `unique_key` (`TEXT`),
//!   `last_error`, `worker`, `claim` (the token of the claim that took a
//!   running task, see *Outages*), `run_id` and `step` (workflow steps),
//!   `progress_percent` (`SMALLINT`, 0 to 100) and `progress_message`
//!   (`TEXT`), the latest progress of the current attempt (NULL until it
//!   reports one), `trace` (`TEXT`), the W3C trace context it was enqueued
//!   with ([`NewTask::trace`](errand_runtime::backend::NewTask::trace), NULL
//!   without one; for a workflow step, its run's: in no index, stored as
//!   given and handed back by every claim), and two stored generated
//!   columns that the claim index needs: `waiting` (1 for `pending` and
//!   `retry`) and `neg_priority` (`-priority`).
//! - Its indexes. InnoDB has no partial indexes, so finished rows cannot be
//!   left out of an index; instead, each index the hot statements use leads
//!   with what they look for, and finished rows sort into ranges those
//!   statements never enter. And since every index costs every insert (a
//!   bulk enqueue writes an entry in each), there are only two besides the
//!   primary key:
//!   - `tasks_claim (queue, job, waiting, neg_priority, run_at)`: a claim
//!     walks the `waiting = 1` range of its queue and job, in claim order
//!     (highest priority, earliest `run_at`, then id: every column
//!     ascending, which MariaDB before 10.8 needs), and stops at its limit.
//!     Running and finished rows sit in the `waiting = 0` range, which no
//!     claim reads, however many there are. An ack that finishes a task
//!     changes neither column, so it does not touch this index at all. The
//!     next due time (and the idle poller's probe) takes one probe per
//!     distinct priority.
//!   - `tasks_held (state, worker, claim, queue)`: running tasks by worker
//!     and claim token (a claim reads its rows back with them; release,
//!     cancelled tasks and orphan rescue read a worker's rows), and, since
//!     every row that no worker holds has `worker` and `claim` NULL, every
//!     other row by state and queue in id order (listings, retention,
//!     counts). One index for both saves every claim and every ack an index
//!     change.
//!
//!   A test (`src/plans.rs`) runs every statement on 300,000 tasks, 40 % of
//!   them done, and fails if one scans a table or reads more than a few
//!   thousand rows. What is as big as what it asks for: counts read one
//!   index entry per task kept, and a burial of unserved tasks walks its
//!   job's waiting rows.
//! - `<prefix>unique_keys`: one row per job and unique key (`key_hash`, the
//!   SHA-256 of the job's name, a NUL and the key), naming the newest task
//!   enqueued with it (`task_id`, `created_at`); tasks without keys never
//!   touch it.
//! - `<prefix>workers`: one row per live worker (`id`, `queue`, `job`,
//!   `concurrency`, `started_at`, `last_seen` by the server's clock).
//! - `<prefix>served_jobs`: `(queue, job, last_seen)`, when a worker of each
//!   job last beat on each queue, kept past the workers' rows: what
//!   [`unserved`](errand_runtime::Backend::unserved) is judged by.
//! - Workflows: `<prefix>runs` holds one row per run (`id`, `workflow`,
//!   `queue`, `state` — `running`, `done`, `failed` —, `steps`, the graph as
//!   JSON text, `error`, `created_at`, `finished_at`, `trace`, the context
//!   it was started with, which each of its step tasks is given), indexed by
//!   `finished_at` (retention), `(state, id)` and `(workflow, id)`
//!   (listings, see below); `<prefix>run_steps`
//!   one row per `(run_id, step)` once the step has a task (`task_id`), with
//!   its `output` once it is done (stored there only, not again as the step
//!   task's `result`).
//! - `<prefix>paused_queues`: one row per paused queue (`queue`, `paused_at`
//!   in ms), looked up by primary key in every claim.
//! - `<prefix>schedules`: one row per schedule (`name_hash`, the SHA-256 of
//!   its name, so names have no length limit; `name`; `last_tick`, in ms
//!   since the Unix epoch): the latest tick enqueued by any process.
//!
//! # Behaviour and defaults
//!
//! - A claim is two statements: an `UPDATE` over a derived
//!   `SELECT id … ORDER BY neg_priority, run_at, id LIMIT max FOR UPDATE SKIP
//!   LOCKED`, which marks the tasks `running` for the worker under a token of
//!   the claim's own (autocommit) and clears their progress, then the
//!   read-back of those rows by worker and token. When it claimed nothing, a
//!   third statement returns the earliest future `run_at` of the queue and
//!   job, so an idle worker sleeps exactly until then.
//! - Pausing: [`pause_queue`](errand_runtime::Expose::pause_queue) inserts
//!   the queue's `paused_queues` row and
//!   [`resume_queue`](errand_runtime::Expose::resume_queue) deletes it (both
//!   idempotent). The claim's derived `SELECT` and the next-due statement
//!   check the queue there themselves (`NOT EXISTS`, one primary-key lookup
//!   evaluated before any task is read), so from the moment a pause commits
//!   no claim of any process takes a task of the queue, and its idle workers
//!   get no next due time: they sleep until woken (runs already started
//!   finish; enqueueing goes on). Resuming wakes this process's idle
//!   workers of the queue at once; other processes' idle pollers, which saw
//!   no due task while it was paused, see its due tasks at their next probe
//!   and wake theirs (the workers' own poll interval is the fallback).
//!   [`counts`](errand_runtime::Expose::counts) marks paused queues
//!   (`paused`), and lists one even when it holds no tasks.
//! - Progress: a worker's reports
//!   ([`record_progress`](errand_runtime::Backend::record_progress), which
//!   the worker throttles) are one statement per batch, an `UPDATE` joined
//!   with the batch as JSON, each row found by primary key and guarded like
//!   an ack (`state = 'running' AND worker = <reporting worker>`), so a late
//!   report of a task that ended or moved on changes nothing. The percent is
//!   at most 100 and the message at most
//!   [`Progress::MAX_MESSAGE`](errand_runtime::Progress::MAX_MESSAGE) bytes.
//!   [`task`](errand_runtime::Expose::task) and
//!   [`tasks`](errand_runtime::Expose::tasks) return it; a new attempt
//!   starts from none.
//! - Schedules ([`Schedules`]): [`last_tick`](Schedules::last_tick) reads
//!   the schedule's row by primary key; [`record_tick`](Schedules::record_tick)
//!   is one `INSERT … ON DUPLICATE KEY UPDATE last_tick = GREATEST(last_tick,
//!   VALUES(last_tick))`, so processes racing to record never move it back.
//!   Each tick is enqueued with a unique key of the schedule and the tick
//!   (see the unique keys below), so however many processes run a schedule,
//!   each tick becomes one task.
//! - An ack batch is one statement: an `UPDATE` joined with the batch as a
//!   JSON array (`JSON_TABLE`), each row found by primary key and guarded by
//!   `state = 'running' AND worker = <acking worker>`, so the ack of a task
//!   that was rescued, released or cancelled meanwhile is ignored. Retries
//!   keep their backoff in `run_at`; a snooze gives its attempt back. Claims
//!   and acks commit durably (MySQL has no per-transaction asynchronous
//!   commit; `innodb_flush_log_at_trx_commit` is the server's choice).
//! - Enqueueing one task without a unique key is one statement (`INSERT`).
//!   On MariaDB, when a worker of the same backend value waits for its job
//!   and queue (its last claim found nothing) and the task is due, that
//!   statement writes it already claimed by the worker (`running` under a
//!   claim token, attempt 1, or `pending` as usual while the queue is
//!   paused) and hands it to the worker in memory: it starts after one
//!   statement's round trip instead of three (the insert, the claim's
//!   update and its read-back). A worker released meanwhile never gets it;
//!   the enqueue then puts it back as the tasks of a lost claim reply are.
//!   Such a task skips the claim's ordering: it may start before an older
//!   task of higher priority that another process enqueued while the
//!   worker waited (which this process's poller would only have seen at
//!   its next probe). MySQL (no `INSERT … RETURNING`) always enqueues
//!   with the plain `INSERT`.
//!   A bulk enqueue is one transaction of multi-row `INSERT`s sized to the
//!   server's `max_allowed_packet` (at most 1,024 rows each, in power-of-two
//!   sizes so a handful of statement texts are prepared once per
//!   connection). Their
//!   ids come back in order: on MariaDB with `INSERT … RETURNING id`; on
//!   MySQL, as `LAST_INSERT_ID()` plus multiples of
//!   `@@auto_increment_increment` (InnoDB gives the rows of one multi-row
//!   `INSERT … VALUES` consecutive ids in every `innodb_autoinc_lock_mode`).
//! - Busy queues: each worker keeps up to 4 claims in flight
//!   ([`Tuning::parallel_claims`]) and may hold claimed tasks waiting for a
//!   slot while its runs are quick ([`Tuning::buffer`],
//!   [`Buffer::Room`]`(1024)`): up to `1024 - concurrency` (at least
//!   `concurrency`), room for four claims of 256. Mind the memory with large
//!   payloads: lower the buffer with `WorkerBuilder::buffer`, or with
//!   `.tuning(|t| …)`.
//! - Wake-ups: workers of the same process are woken at once by its
//!   enqueues. MySQL has no `LISTEN/NOTIFY`: other processes find new tasks
//!   by polling, through one poller per backend value (shared by its clones
//!   and every worker using them) that runs only while one of them is idle:
//!   one indexed query per idle queue and job (the earliest `run_at` among
//!   its waiting tasks, one index probe per distinct priority whatever the
//!   backlog), every 10 ms after something arrived or a worker went idle,
//!   doubling to 250 ms while nothing does ([`idle_poll`](MysqlBuilder::idle_poll)).
//!   A task enqueued by another process therefore starts on an idle worker
//!   within the current poll interval plus one claim: p50 11–14 ms on a
//!   worker that went idle moments before (MariaDB on 2 cores, `cargo bench
//!   -p errand-benches -- --latency --backend mysql`, which also measures
//!   the same-process hand-off: p50 about 1 ms), and at worst 250 ms plus a
//!   claim after a long idle spell. The poller wakes a queue only for a due
//!   task it had not seen due before, so a task another process is claiming
//!   does not make this one's workers claim in a loop. Tasks released or
//!   rescued in another process, and anything the probe cannot tell, are
//!   seen within the worker's own [`Tuning::poll_interval`] (1 s by
//!   default). [`enqueue_in`](errand_runtime::TaskSink::enqueue_in) cannot
//!   wake anybody at its commit, which it does not see: its tasks are found
//!   by the pollers (its own process's polls at its fastest pace at once).
//! - Unique keys are scoped to the job: a task is not inserted while a live
//!   (`pending`, `running`, `retry`) task of the same job has the same key,
//!   or, with `unique_for`, while the newest task of the same job with that
//!   key was created within the window; the existing id is returned
//!   instead. Such an enqueue is a transaction (the caller's, with
//!   [`enqueue_in`](errand_runtime::TaskSink::enqueue_in)) that first locks
//!   the key's `unique_keys` row, so enqueues of one key serialise in every
//!   process, even before the first commits: two racing enqueues create one
//!   task. Retention forgets a key once its newest task is no longer live
//!   and older than [`Tuning::retention`]: a window longer than the
//!   retention is cut to it.
//! - Deleting a task ([`Expose::delete_task`](errand_runtime::Expose::delete_task))
//!   is one statement, a `DELETE` of its row by primary key guarded by
//!   `state IN ('done', 'dead', 'cancelled') AND run_id IS NULL` (a live
//!   task is not deleted, nor is a workflow step's task: it goes with its
//!   run), joined with its unique key's row, deleted too when it names that
//!   task as the key's newest, so the key is free again at once (retention
//!   frees it only once older than the retention). The result, error and
//!   progress are columns of the row: they go with it.
//! - Listing workflow runs ([`WorkflowStore::run_ids`], and
//!   [`runs`](WorkflowStore::runs), one [`run_info`](WorkflowStore::run_info)
//!   per run listed) is one statement, newest first: `SELECT id … WHERE id < ?
//!   [AND workflow = ?] [AND state = ?] ORDER BY id DESC LIMIT ?`. It walks
//!   the primary key backwards, or, filtered, the `(workflow, id)` or
//!   `(state, id)` index of migration 3 (named with `FORCE INDEX`, so that a
//!   deep page does not read every newer run of its state first), from the
//!   page's `before` and stops at the limit: a page reads about as many rows
//!   as it returns, however many runs the table holds and however rare the
//!   state or workflow asked for. Filtered by both, the optimizer walks the
//!   index of the rarer one and skips the runs that do not match the other.
//! - Orphans: a `running` task whose worker has not beaten for
//!   [`Tuning::orphan_after`] (30 s by default) goes back to `pending` (its
//!   attempt stays used), or to `dead` if that was its last attempt, with a
//!   `last_error` naming the lost worker. Any live worker of any queue
//!   rescues them. Liveness is judged by the server's clock (heartbeats
//!   record `NOW(3)`, rescue compares with it), so hosts whose clocks
//!   disagree never rescue each other's live tasks; the times stored with
//!   tasks (`run_at`, `created_at`, …) are read from [`Tuning::clock`].
//! - Outages: while the server is unreachable, workers log the failed
//!   claims, acks and heartbeats, back off (up to 5 s) and resume when it
//!   returns; acks are retried until they land. A claim whose connection
//!   breaks after its update was sent may still have committed, leaving
//!   tasks `running` for a worker that never got them (and that keeps
//!   beating, so no rescue would put them back). Each claim therefore tags
//!   its rows with a token (the `claim` column), and the worker's next claims
//!   and heartbeats put back what such a claim took, without using an
//!   attempt. Tests cut every connection through a proxy during drains,
//!   workflow runs and a simulated server restart: each task and each step
//!   still runs exactly once. An enqueue that fails with a connection error
//!   may still have committed, as any database write: where a duplicate
//!   matters, give the task a unique key before retrying.
//! - Retention ([`Backend::purge_expired`](errand_runtime::Backend::purge_expired),
//!   which workers call now and then): `done` tasks are deleted
//!   [`Tuning::retention`] after they finished (24 h by default;
//!   `Duration::MAX` keeps them), finished workflow runs with their steps'
//!   rows likewise, and unique keys as above. Each call is bounded: per
//!   queue, up to 10 steps that each look at the 2,000 oldest `done` tasks
//!   by id, and 2,000 rows a step for keys and runs. `dead` and `cancelled`
//!   tasks are kept.
//! - Connections: [`connect`](MysqlBuilder::connect) opens a pool of up to
//!   16 connections (claims, acks, heartbeats, polls and enqueues of every
//!   worker share it), each `READ COMMITTED` (claims then lock only the rows
//!   they take, with no gap locks in the way of enqueues, and each statement
//!   of a workflow advance reads what was committed when it started). Its
//!   connections are pinged before use only after a second idle. Use
//!   [`from_pool`](MysqlBuilder::from_pool) to size it yourself, with the
//!   same `READ COMMITTED` session setting.
//! - A stored row that this version cannot read (an unknown state, a negative
//!   attempt or count) is reported as an error naming the row; a claimed task
//!   whose row cannot be read goes `dead` with that error instead of running
//!   or stopping the worker (if that fails too, the claim is put back).
//!
//! # Workflows
//!
//! `MysqlBackend` implements [`WorkflowStore`], so `#[errand::workflow]`
//! graphs run on it; what happens when a step ends is decided by the
//! runtime's planner ([`errand_runtime::workflow::plan`]), the same for every
//! backend, and persisted here:
//!
//! - Starting a run writes its `runs` row and the tasks of its entry steps
//!   in one transaction.
//! - The ack batch of a worker of workflow steps, when it holds a `done` or
//!   `dead` outcome, is one transaction: it locks the rows of the runs of its
//!   tasks (`SELECT … FOR UPDATE`, in id order), then the tasks it will
//!   change (MySQL's `UPDATE` returns no rows, so they are read under lock
//!   with the ack's own guard first), records the outcomes, reads those runs'
//!   steps and outputs, feeds the ends to the planner, and persists its
//!   plans: outputs stored in `run_steps`, the dependents whose inputs are
//!   now all there enqueued (the batch's step tasks in multi-row inserts,
//!   then their `run_steps` rows in one statement; the run locks keep any
//!   other transaction from adding steps to those runs, and a row that is
//!   there anyway fails the transaction, so no step is ever enqueued
//!   twice), runs whose sink
//!   steps are all done marked `done`; a `dead` step marks its run `failed`
//!   and cancels its other live steps (running ones are told through their
//!   cancellation token, and their acks are ignored).
//! - A step task that ends any other way fails its run the same way, in the
//!   same transaction: cancelled (`Expose::cancel_task`), rescued on its last
//!   attempt, buried as unserved, or claimed with a row that cannot be read.
//! - Sibling steps finishing at once in different workers or processes are
//!   acknowledged by parallel transactions, which the run lock serialises:
//!   each reads the run's outputs only once it holds the lock, so the last
//!   one sees every input of their common dependent and enqueues it, once.
//!   Should InnoDB still find a deadlock, it rolls one transaction back: an
//!   ack is sent again, a rescue or burial runs again at the next round.
//! - InnoDB may also break a deadlock between concurrent claims and acks
//!   (they touch the same index pages); a claim or a plain ack rolled back
//!   that way runs again at once, up to three times, before it reports the
//!   error.
//!
//! # MySQL and MariaDB
//!
//! The same statements run on both, with these differences:
//!
//! - Versions: MariaDB 10.6+ (`SKIP LOCKED`, `JSON_TABLE`), MySQL 8.0+
//!   (`SKIP LOCKED` since 8.0.1, `JSON_TABLE` since 8.0.4; 8.0 GA is 8.0.11).
//!   An older server is refused at connect or migrate with a message naming
//!   its version.
//! - Bulk enqueue ids: `INSERT … RETURNING id` on MariaDB; on MySQL,
//!   `LAST_INSERT_ID()` plus multiples of `@@auto_increment_increment`.
//! - Hand-off of a single enqueue to a waiting worker of the same process
//!   (see *Behaviour and defaults*) needs `INSERT … RETURNING`: MariaDB only.
//!   On MySQL such a task is inserted `pending` and claimed by the woken
//!   worker, three statements and two commits from enqueue to start.
//! - `INSERT … ON DUPLICATE KEY UPDATE … VALUES(col)` (storing step outputs,
//!   recording a schedule's tick) is deprecated since MySQL 8.0.20 and warns
//!   there; MariaDB has no replacement syntax, so it is kept.
//! - The plan test reads actual row counts with MariaDB's `ANALYZE
//!   FORMAT=JSON`; on MySQL it can only check the plans (`EXPLAIN
//!   FORMAT=JSON`).
//! - This crate's tests run against MariaDB 10.11; MySQL 8.0 has not been
//!   tested here.
//!
//! # Limitations
//!
//! - `run_at` is compared with the clock of the claiming process: keep the
//!   clocks of machines sharing a queue in sync (NTP).
//! - A payload (or result) must fit the server's `max_allowed_packet` (16 MiB
//!   on MariaDB, 64 MiB on MySQL 8.0 by default) with the rest of its
//!   statement: [`Tuning::max_payload`] defaults to 16 MiB, so on MariaDB
//!   raise `max_allowed_packet` or lower `max_payload`. Queue and job names
//!   are at most 255 characters.
//! - A step task deleted by hand from `tasks` leaves its run `running`.
//! - Retention looks at the oldest 2,000 `done` tasks (by id) of each queue
//!   per step: a `done` task with a small id that finished recently delays
//!   the deletion of newer ones behind it until it is old enough itself.
//! - [`Expose::retry_task`](errand_runtime::Expose::retry_task) puts a task
//!   back whatever its unique key: it may then be live beside a newer task
//!   with the same key.
//! - A task cancelled while running and deleted before its worker heard of
//!   the cancellation (workers ask at each heartbeat) is not stopped: its
//!   worker runs it to its end, and its ack finds no row and is ignored.
//!
//! The shape this crate shares with the other backends (one file per role)
//! is described in the project's `docs/architecture.md`.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use errand_runtime::backend::Notifier;
use errand_runtime::capability::{CancelRunning, Delays, Priorities, Results, UniqueKeys};
use errand_runtime::{Buffer, Codec, Error, JsonCodec, Tuning};
#[cfg(doc)]
use errand_runtime::{
    capability::{Schedules, Transactional},
    workflow::WorkflowStore,
};
use sqlx::MySqlPool;

pub use sqlx;

pub use crate::poll::MysqlWaiter;

mod ack;
mod backend;
mod claim;
mod connect;
mod doubt;
mod expose;
mod migrate;
#[cfg(test)]
mod plans;
mod poll;
mod progress;
mod push;
mod rows;
mod schedules;
mod sql;
mod version;
mod workers;
mod workflow;

/// The backend's name in messages ([`Backend::NAME`](errand_runtime::Backend::NAME)).
pub(crate) const NAME: &str = "mysql";

/// The table name prefix used unless the builder's
/// [`namespace`](MysqlBuilder::namespace) names another.
pub const DEFAULT_PREFIX: &str = "errand_";

/// This backend's defaults: rescue after 30 s, poll every second, keep `done`
/// tasks 24 h, 4 claims in flight per worker, and room for 1,024 claimed
/// tasks per worker (four claims of 256: see the crate docs).
const DEFAULT_TUNING: Tuning = Tuning::new().parallel_claims(4).buffer(Buffer::Room(1024));

/// The idle poller's fastest and slowest intervals (see
/// [`MysqlBuilder::idle_poll`]).
const DEFAULT_IDLE_POLL: (Duration, Duration) = (Duration::from_millis(10), Duration::from_millis(250));

/// A task store in one MySQL or MariaDB database, in tables whose names
/// start with a prefix (`errand_` by default).
///
/// Cheap to clone (an `Arc` inside): give a clone to every worker and
/// enqueuer of the process; they share one pool and one idle poller. `C` is
/// the [`Codec`] arguments and results are stored with ([`JsonCodec`] by
/// default; see [`MysqlBuilder::codec`]).
///
/// See the [crate docs](crate) for the schema, defaults and limitations.
pub struct MysqlBackend<C: Codec = JsonCodec> {
    pub(crate) inner: Arc<Inner>,
    codec: PhantomData<fn() -> C>,
}

/// What the clones of one backend value share.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) pool: MySqlPool,
    /// The table name prefix, validated.
    pub(crate) prefix: String,
    pub(crate) queries: sql::Queries,
    pub(crate) tuning: Tuning,
    pub(crate) notifier: Notifier,
    pub(crate) poll: poll::Poll,
    /// The server and database, without password, for messages.
    pub(crate) location: String,
    /// Claims that broke off after reaching the server, to be put back.
    pub(crate) doubts: doubt::Doubts,
    /// Workers of this process waiting for tasks, and tasks handed to them.
    pub(crate) handoffs: errand_runtime::backend::Handoffs,
    /// The server's version and settings, read on first use.
    pub(crate) server: tokio::sync::OnceCell<connect::Server>,
}

impl Inner {
    /// The time to store, by the tuning's clock ([`Tuning::clock`]).
    pub(crate) fn now(&self) -> errand_runtime::Timestamp {
        self.tuning.clock.now()
    }
}

impl<C: Codec> Clone for MysqlBackend<C> {
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner), codec: PhantomData }
    }
}

impl<C: Codec> fmt::Debug for MysqlBackend<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlBackend")
            .field("database", &self.inner.location)
            .field("prefix", &self.inner.prefix)
            .field("codec", &C::NAME)
            .field("tuning", &self.inner.tuning)
            .finish_non_exhaustive()
    }
}

/// Options for a [`MysqlBackend`]: its table name prefix, codec,
/// [`Tuning`] and idle polling; see the [crate docs](crate#options). Made by
/// [`MysqlBackend::builder`], ended by [`connect`](MysqlBuilder::connect) or
/// [`from_pool`](MysqlBuilder::from_pool).
#[must_use]
pub struct MysqlBuilder<C = JsonCodec> {
    pub(crate) namespace: String,
    pub(crate) tuning: Tuning,
    pub(crate) idle_poll: (Duration, Duration),
    /// Whether [`connect`](MysqlBuilder::connect) applies the migrations.
    pub(crate) migrate: bool,
    codec: PhantomData<fn() -> C>,
}

impl<C: Codec> fmt::Debug for MysqlBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlBuilder")
            .field("namespace", &self.namespace)
            .field("codec", &C::NAME)
            .field("tuning", &self.tuning)
            .field("idle_poll", &self.idle_poll)
            .field("migrate", &self.migrate)
            .finish()
    }
}

impl<C: Codec> MysqlBuilder<C> {
    /// Names the tables `<prefix>tasks`, `<prefix>workers`, … instead of
    /// `errand_tasks`, …: 1 to 40 lowercase ASCII letters, digits and `_`.
    /// Checked by [`connect`](Self::connect) and [`from_pool`](Self::from_pool).
    /// (The database is the URL's: another database is another namespace.)
    pub fn namespace(mut self, prefix: impl Into<String>) -> Self {
        self.namespace = prefix.into();
        self
    }

    /// Stores arguments and results with codec `C2` instead. Tasks are not
    /// tagged with their codec: use one codec per namespace.
    pub fn codec<C2: Codec>(self) -> MysqlBuilder<C2> {
        MysqlBuilder {
            namespace: self.namespace,
            tuning: self.tuning,
            idle_poll: self.idle_poll,
            migrate: self.migrate,
            codec: PhantomData,
        }
    }

    /// Changes the [`Tuning`], starting from this backend's defaults: rescue
    /// after 30 s, poll every second, keep `done` tasks 24 h, 4 claims in
    /// flight per worker, [`Buffer::Room`]`(1024)`.
    pub fn tuning(mut self, tune: impl FnOnce(Tuning) -> Tuning) -> Self {
        self.tuning = tune(self.tuning);
        self
    }

    /// How often the idle poller looks for tasks of other processes while a
    /// worker of this process is idle: every `fastest` (10 ms by default)
    /// after something arrived, doubling up to `slowest` (250 ms) while
    /// nothing does. `slowest` bounds how long an idle worker takes to see
    /// another process's task (plus one claim). See *Wake-ups* in the crate
    /// docs.
    pub fn idle_poll(mut self, fastest: Duration, slowest: Duration) -> Self {
        self.idle_poll = (fastest.max(Duration::from_millis(1)), slowest.max(fastest));
        self
    }

    /// Whether [`connect`](Self::connect) applies the migrations not applied
    /// yet (`true`, the default) or only connects and checks the server
    /// (`false`): for tools that must not create or change tables, such as
    /// a check that the schema is current
    /// ([`pending_migrations`](MysqlBackend::pending_migrations)). With
    /// `false`, call [`migrate`](MysqlBackend::migrate) before using the
    /// backend on tables that are missing or behind. ([`from_pool`](Self::from_pool)
    /// never migrates.)
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }
}

impl MysqlBackend<JsonCodec> {
    /// Options: table name prefix, codec, [`Tuning`], idle polling. End with
    /// [`connect`](MysqlBuilder::connect) or
    /// [`from_pool`](MysqlBuilder::from_pool).
    pub fn builder() -> MysqlBuilder<JsonCodec> {
        MysqlBuilder {
            namespace: DEFAULT_PREFIX.to_owned(),
            tuning: DEFAULT_TUNING,
            idle_poll: DEFAULT_IDLE_POLL,
            migrate: true,
            codec: PhantomData,
        }
    }

    /// Connects to `url` (`mysql://user:password@host:3306/database`) and
    /// migrates the `errand_*` tables, creating them if missing, with the
    /// default settings: `MysqlBackend::builder().connect(url)`.
    ///
    /// # Errors
    ///
    /// As [`MysqlBuilder::connect`].
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::builder().connect(url).await
    }
}

impl<C: Codec> MysqlBackend<C> {
    pub(crate) fn from_inner(inner: Inner) -> Self {
        Self { inner: Arc::new(inner), codec: PhantomData }
    }

    /// The table name prefix.
    pub fn namespace(&self) -> &str {
        &self.inner.prefix
    }

    /// The connection pool: begin a transaction on it for
    /// [`enqueue_in`](errand_runtime::TaskSink::enqueue_in), or share it with
    /// the application.
    pub fn pool(&self) -> &MySqlPool {
        &self.inner.pool
    }

    /// Checks the server (MySQL 8.0+ or MariaDB 10.6+) and applies the
    /// migrations not applied yet (idempotent; done by
    /// [`MysqlBuilder::connect`], not by [`MysqlBuilder::from_pool`]). Safe
    /// to run from several processes at once.
    ///
    /// # Errors
    ///
    /// [`Error::Schema`] when the tables were migrated by a newer errand or
    /// an applied migration differs from the one this version ships;
    /// [`Error::Backend`] when the server is too old (the message names its
    /// version) or a statement fails.
    pub async fn migrate(&self) -> Result<(), Error> {
        migrate::run(&self.inner).await
    }

    /// The names of the migrations this version ships that the tables do
    /// not have yet, in the order [`migrate`](Self::migrate) would apply
    /// them (`"0003_runs_listing"`: the file's name in this crate's
    /// `migrations/`, without `.sql`): every one on a database errand never
    /// migrated, none when the tables are current. Reads only: it creates
    /// nothing (not even the record of migrations), takes no lock and works
    /// on a backend built with [`migrate(false)`](MysqlBuilder::migrate).
    ///
    /// # Errors
    ///
    /// [`Error::Schema`] when the tables were migrated by a newer errand or
    /// an applied migration differs from the one this version ships (as
    /// [`migrate`](Self::migrate) would refuse them); [`Error::Backend`] when
    /// a statement fails.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), errand_runtime::Error> {
    /// let backend = errand_mysql::MysqlBackend::builder()
    ///     .migrate(false)
    ///     .connect("mysql://root@127.0.0.1:3306/app")
    ///     .await?;
    /// let pending = backend.pending_migrations().await?;
    /// if !pending.is_empty() {
    ///     eprintln!("behind by {}: run `errand migrate`", pending.join(", "));
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn pending_migrations(&self) -> Result<Vec<String>, Error> {
        migrate::pending(&self.inner).await
    }
}

impl<C: Codec> Priorities for MysqlBackend<C> {}
impl<C: Codec> UniqueKeys for MysqlBackend<C> {}
impl<C: Codec> Delays for MysqlBackend<C> {}
impl<C: Codec> Results for MysqlBackend<C> {}
impl<C: Codec> CancelRunning for MysqlBackend<C> {}
// The capabilities with methods have modules of their own: `Expose` in
// `expose.rs`, `WorkflowStore` in `workflow.rs`, `Schedules` in
// `schedules.rs`, `Transactional` in `push.rs`.
