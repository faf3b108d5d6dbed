//! The PostgreSQL backend of [errand](https://docs.rs/errand): a durable task
//! table, batched `FOR UPDATE SKIP LOCKED` claims, `LISTEN/NOTIFY` wake-ups,
//! enqueueing inside the application's own transactions, durable workflows
//! ([`WorkflowStore`]), progress reports, queues paused and resumed across
//! processes, and cron schedules ([`Schedules`]).
//!
//! Most users reach it as `errand::postgres::PostgresBackend` through the
//! `errand` facade (feature `postgres`).
//!
//! # Examples
//!
//! ```no_run
//! use std::time::Duration;
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
//! // Or with options: another schema, other settings.
//! let other = PostgresBackend::builder()
//!     .namespace("jobs")
//!     .tuning(|t| t.orphan_after(Duration::from_secs(60)).retention(Duration::from_secs(3600)))
//!     .connect("postgres://postgres@127.0.0.1:5432/app")
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
//! [`PostgresBackend::builder`] takes:
//!
//! - [`namespace`](PostgresBuilder::namespace): the schema holding the tables,
//!   `errand` by default (a lowercase SQL identifier of at most 48 bytes,
//!   checked before use);
//! - [`codec`](PostgresBuilder::codec): how arguments and results are stored
//!   ([`JsonCodec`] by default; tasks are not tagged with their codec, so use
//!   one codec per schema);
//! - [`tuning`](PostgresBuilder::tuning): the [`Tuning`] every backend has,
//!   starting from this backend's defaults (below);
//! - [`vacuum_every`](PostgresBuilder::vacuum_every): see *Vacuum* below;
//! - [`migrate`](PostgresBuilder::migrate): whether
//!   [`connect`](PostgresBuilder::connect) migrates the schema (`true` by
//!   default; `false` connects without creating anything, for tools that
//!   check the schema first or must not change it).
//!
//! and ends with [`connect`](PostgresBuilder::connect) (opens a pool and
//! migrates the schema, unless told not to) or
//! [`from_pool`](PostgresBuilder::from_pool) (an existing pool, no
//! migration: call [`migrate`](PostgresBackend::migrate)).
//!
//! # Schema
//!
//! Everything lives in one schema. Versioned migrations (`migrations/` in
//! this crate) are applied by [`connect`](PostgresBuilder::connect) and
//! [`migrate`](PostgresBackend::migrate) under a transaction-scoped advisory
//! lock, so processes starting at once migrate one after the other; they are
//! recorded in `<schema>.migrations` (not sqlx's `_sqlx_migrations`). A schema
//! migrated by a newer errand, or whose applied migrations differ from the
//! ones this version ships, is refused with [`Error::Schema`].
//! [`pending_migrations`](PostgresBackend::pending_migrations) names the
//! migrations not applied yet (`"0008_trace_context"`, each file's name
//! without `.sql`; all of them for a schema that does not exist) without
//! creating or locking anything: with
//! [`migrate`](PostgresBuilder::migrate)`(false)` it is how `errand migrate
//! --check` tells whether a schema is current.
//!
//! - `tasks`: `id` (bigint identity, never reused), `job`, `queue`, `state`
//!   (`pending`, `running`, `retry`, `done`, `dead`, `cancelled`), `payload`
//!   and `result` (bytea encoded with the backend's [`Codec`]; a workflow
//!   step's output is stored in `run_steps` instead), `attempt`,
//!   `max_attempts`, `priority` (smallint), `run_at`, `created_at`,
//!   `started_at`, `finished_at` (bigint milliseconds since the Unix epoch),
//!   `unique_key`, `last_error`, `worker`, and `claim`, the token of the claim
//!   that took a running task (see *Outages*); `progress_percent` (smallint,
//!   0 to 100) and `progress_message` (migration 6), the latest progress the
//!   running attempt reported, NULL until it reports (see *Progress*);
//!   `trace` (text, migration 8), the W3C trace context the task was
//!   enqueued with (`traceparent`, then a newline and `tracestate` if any),
//!   or for a workflow step its run's, NULL when there is none (see *Trace
//!   context*).
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
//!   Three reads are as big as what they ask for: counts read every task, a
//!   listing by job *and state* without a queue walks that state's tasks of
//!   every queue until it has found enough (give the queue on big tables),
//!   and the unserved check counts the waiting tasks of each job it finds
//!   unserved (those of served jobs it does not read).
//!   An ack walks its worker's running tasks, which its concurrency and
//!   buffer bound.
//! - `workers`: one row per live worker (`id`, `queue`, `job`, `concurrency`,
//!   `started_at`, `last_seen`), written by heartbeats.
//! - `served_jobs` (migration 5): one row per `(queue, job)` ever served,
//!   with `last_seen`, the server's time of the latest heartbeat of a worker
//!   of that job on that queue, from any process. Heartbeats write it in the
//!   same statement as their `workers` row, and it outlives that row (release
//!   and orphan rescue delete workers, not this): it is what "served" means
//!   (see *Unserved jobs*). It holds as many rows as the application has jobs
//!   and queues (a burial's check adds one, `last_seen` NULL, for a job never
//!   served), and is never purged.
//! - `paused_queues` (migration 6): one row per paused queue (`queue`, the
//!   primary key, and `paused_at`), deleted by `resume_queue` (see
//!   *Pausing*). Every claim looks its queue up here by primary key; the
//!   table holds only the queues paused now, and autovacuum analyzes it after
//!   a few changes (10 plus a tenth of its rows, not the default 50), so that
//!   cached claim plans follow its size.
//! - `schedules` (migration 6): one row per cron schedule (`name`, the
//!   primary key, and `last_tick`, ms), the latest tick any process enqueued
//!   (see *Schedules*). Never purged: as many rows as the application has
//!   schedules.
//! - Workflows (migration 2): the task of a workflow step has `run_id` and
//!   `step` set (partial index on `run_id`); `runs` holds one row per run
//!   (`id`, `workflow`, `queue`, `state` — `running`, `done`, `failed` —,
//!   `steps`, the graph as `jsonb`, `error`, `created_at`, `finished_at`, and
//!   `trace`, migration 8, the trace context the run was started with);
//!   `run_steps` one row per `(run_id, step)` once the step has a task
//!   (`task_id`), with its `output` (bytea) once it is done. A step's output
//!   is stored there only: the step's task keeps no `result`. Finished runs
//!   are found for retention through a partial index on `finished_at`
//!   (migration 5), and listed newest first through `runs_state (state,
//!   id)` and `runs_workflow (workflow, state, id)` (migration 7; see
//!   *Workflows*).
//!
//! # Behaviour and defaults
//!
//! - A claim is **one** statement: `SELECT … ORDER BY priority DESC, run_at, id
//!   LIMIT max FOR UPDATE SKIP LOCKED` feeding an `UPDATE … RETURNING`; when it
//!   claims nothing, the same statement returns the earliest future `run_at`
//!   of the queue, so an idle worker sleeps exactly until then. The same
//!   statement checks that the queue is not paused (one primary-key probe of
//!   `paused_queues`, evaluated once per claim before any task is read) and
//!   clears the progress of the tasks it claims.
//! - An ack batch is **one** statement: one `UPDATE … FROM UNNEST(…)` per
//!   outcome kind, each guarded by `state = 'running' AND worker = <acking
//!   worker>`, so the ack of a task that was rescued, released or cancelled
//!   meanwhile is ignored. Retries keep their backoff in `run_at`; a snooze
//!   gives its attempt back. Claims and acks commit asynchronously
//!   (`synchronous_commit = off` for their transaction): a server crash may
//!   lose the last moments of them, which only means a task runs again.
//! - Enqueueing is one `INSERT … SELECT FROM UNNEST(…)` per 10,000 tasks
//!   (several chunks run in one transaction), ids returned in order, and
//!   committed durably. A batch of 256 tasks or more without unique keys is
//!   written with a binary `COPY` instead, per 10,000 tasks, in one
//!   transaction: its ids are taken from the table's sequence first, in
//!   ascending order, so they still follow the input.
//!   Workers of the same process are woken at once. Other processes hear a
//!   `NOTIFY`: inside the enqueue's own statement when no other enqueue of
//!   the backend value is in flight, otherwise just after the commit, by one
//!   task per backend value that coalesces the queues of concurrent
//!   enqueues. (A `NOTIFY` inside each of many concurrent enqueues would hold
//!   PostgreSQL's global notify lock through their WAL flushes, so they could
//!   not share flushes.)
//!   [`enqueue_in`](errand_runtime::TaskSink::enqueue_in) (the
//!   [`Transactional`] capability) notifies inside the caller's transaction
//!   instead, so its task wakes workers when it commits.
//! - Busy queues: each worker keeps up to 4 claims in flight
//!   ([`Tuning::parallel_claims`]) and may hold claimed tasks waiting for a
//!   slot while its runs are quick ([`Tuning::buffer`],
//!   [`Buffer::Room`]`(1024)`): up to `1024 - concurrency` (at least
//!   `concurrency`), room for four claims of 256 tasks. A claim statement
//!   costs the server about the same for 30 rows as for 256: at concurrency
//!   64, claims of ~32 drained 39–42k jobs/s here, of 256 53–63k. Mind the
//!   memory with large payloads: lower the buffer with
//!   `WorkerBuilder::buffer`, or with `.tuning(|t| t.buffer(…))`.
//! - Wake-ups: one `LISTEN` connection per backend value (shared by its
//!   clones and every worker using them), opened when the first worker starts.
//!   Notifications are delivered on commit, so a transactional enqueue wakes
//!   workers exactly when its task becomes visible. A dropped listener is
//!   re-established and then wakes every queue. Idle workers also poll every
//!   [`Tuning::poll_interval`] (1 s by default), as a fallback only.
//! - Progress: [`TaskCx::progress`](errand_runtime::TaskCx::progress)
//!   reports, throttled by the runtime, are written in batches by
//!   [`Backend::record_progress`](errand_runtime::Backend::record_progress):
//!   one `UPDATE … FROM UNNEST(…)` per batch (the last report of each task),
//!   guarded like an ack by `state = 'running' AND worker = <reporting
//!   worker>`, committed asynchronously (a server crash may lose the last
//!   report, never a task). The columns are in no index, so a report is a
//!   HOT update where its page has room. Each claim sets them back to NULL,
//!   so a retry starts with no progress; a finished task keeps its last
//!   report. [`Expose::task`](errand_runtime::Expose::task) and
//!   [`tasks`](errand_runtime::Expose::tasks) return it.
//! - Pausing: [`Expose::pause_queue`](errand_runtime::Expose::pause_queue)
//!   inserts the queue into `paused_queues` (nothing if it is there already);
//!   from its commit on, every claim of that queue in any process takes
//!   nothing and reports no next due time, because the check is in the claim
//!   statement itself (a claim statement already running when the pause
//!   commits may still take its tasks). Runs already started finish, and
//!   enqueueing goes on.
//!   [`resume_queue`](errand_runtime::Expose::resume_queue) deletes the row
//!   and, if there was one, wakes the queue's idle workers: this process's at
//!   once, other processes' through a `NOTIFY` sent in the same statement
//!   (their poll if it is lost). [`Expose::counts`](errand_runtime::Expose::counts)
//!   marks paused queues `paused`, and lists one even when it holds no task.
//!   The pause is stored, so it outlives restarts.
//! - Schedules: [`Schedules::record_tick`] is one upsert on `schedules` that
//!   keeps the later of the stored and the given tick (a tick that is not
//!   later writes nothing), so processes racing to record never move it back;
//!   [`Schedules::last_tick`] reads it by primary key. That each tick fires
//!   once across processes comes from the unique key of its task (next
//!   item).
//! - Unique keys are scoped to the job: a task is not inserted while a live
//!   (`pending`, `running`, `retry`) task of the same job has the same key, or,
//!   with `unique_for`, while any task of the same job with that key was
//!   created within the window; the existing id is returned instead. Enqueues
//!   of one key are serialised by a transaction-scoped advisory lock, so two
//!   processes racing on a key create one task.
//! - Orphans: a `running` task whose worker has not beaten for
//!   [`Tuning::orphan_after`] (30 s by default) goes back to `pending` (its
//!   attempt stays used), or to `dead` if that was its last attempt, with a
//!   `last_error` naming the lost worker. Any live worker of any queue
//!   rescues them (the runtime lets a worker rescue only once its own
//!   heartbeats have gone through for `orphan_after` without a break). Rescue
//!   is one statement, plus one transaction when workflow steps were lost on
//!   their last attempt; it does no retention work.
//! - Clocks: liveness is judged by the server's clock alone. Heartbeats
//!   record the server's time (`clock_timestamp()`, in ms) in `workers` and
//!   `served_jobs`, and rescue, [`Expose::workers`](errand_runtime::Expose)
//!   and the unserved checks compare with the server's time, so hosts whose
//!   clocks disagree never rescue each other's live tasks. The times stored
//!   with tasks (`run_at`, `created_at`, `started_at`, `finished_at`) and
//!   runs are read from [`Tuning::clock`] (the process's clock), and so are
//!   due checks and the retention's cutoff.
//! - Unserved jobs: `unserved(queue, since)` lists the waiting tasks of the
//!   queue's jobs that no worker beat for since `since` (their `served_jobs`
//!   row is missing or older),
//!   and `bury_unserved` buries a job's waiting tasks only after checking the
//!   same thing on that row, locked, in its own transaction (a heartbeat of
//!   the job waits for it, so no worker starts serving the job in between).
//!   `since` is a time by the caller's clock; it is turned into an age by the
//!   same clock (`tuning.clock.now() - since`) and the statement compares
//!   `last_seen` with the server's time when the statement arrived minus that
//!   age, so the two clocks are never compared with each other (the error is
//!   the time the statement takes to reach the server).
//! - Outages: while the server is unreachable, workers log the failed
//!   claims, acks and heartbeats, back off (up to 5 s) and resume when it
//!   returns; acks are retried until they land. A claim whose connection
//!   breaks after the statement was sent may still have committed, leaving
//!   tasks `running` for a worker that never got them (and that keeps
//!   beating, so no rescue would put them back). Each claim therefore tags
//!   its rows with a token (the `claim` column), and the worker's next claims
//!   and heartbeats put back what such a claim took, without using an
//!   attempt. Tests cut every connection through a proxy six times during a
//!   drain, and four times while workflows run: each task and each step
//!   still runs exactly once. They also cut three workers off for longer than
//!   `orphan_after`, restart the server as a client sees it (every connection
//!   cut and refused for 3 s) while workflows drain, and cut for a second
//!   during claims and acks: nothing is lost, nothing runs twice. An enqueue
//!   that fails with a connection error may still have committed, as any
//!   database write: where a duplicate matters, give the task a unique key
//!   before retrying.
//! - Vacuum: every claim leaves a dead entry at the head of the claim index
//!   that later claims walk past until a VACUUM removes it, and autovacuum
//!   looks at a table once a minute at most (or never, where it is off). So
//!   the backend runs `VACUUM (SKIP_LOCKED)` on `tasks` itself after every
//!   [`vacuum_every`](PostgresBuilder::vacuum_every) finished tasks (50,000
//!   by default), one at a time per backend value: a drain of a million
//!   tasks runs as fast as one of two thousand (without it, ~1k/s by the
//!   end).
//! - Retention: `done` tasks and finished workflow runs (`done` or `failed`,
//!   with their `run_steps` rows) are deleted [`Tuning::retention`] after
//!   they finished (24 h by default; `Duration::MAX` keeps them), by
//!   [`Backend::purge_expired`](errand_runtime::Backend::purge_expired),
//!   which workers call about every 10 s: it works at most once per 10 s (or
//!   per `retention`, if shorter) per backend value, in batches (the oldest
//!   5,000 `done` tasks of each queue, 1,000 runs) for about a second at
//!   most. [`cleanup`](PostgresBackend::cleanup) does it now. `dead` and
//!   `cancelled` tasks are kept until retried or deleted, a deleted run's
//!   step tasks in those states too.
//! - Deleting: [`Expose::delete_task`](errand_runtime::Expose::delete_task)
//!   is one `DELETE … WHERE id = $1 AND state IN ('done', 'dead',
//!   'cancelled')` (`delete_task.sql`). The result, last error, progress and
//!   unique key are columns of the row, so they go with it and the key is
//!   free again at once. A live task is refused (cancel it first), and so is
//!   the task of a workflow step while its run exists (it goes with the run,
//!   by retention); once retention has deleted the run, its leftover `dead`
//!   or `cancelled` step tasks are ordinary finished tasks and can be
//!   deleted. A running task that is cancelled and then deleted before its
//!   worker's next look for cancellations (`cancelled_tasks.sql`, once per
//!   heartbeat interval) is not told to stop: it runs to its end, and its
//!   ack changes nothing.
//! - Connections: [`connect`](PostgresBuilder::connect) opens a pool of up to
//!   16 connections (claims, acks, heartbeats and enqueues of every worker
//!   share it) plus the one listener connection. Its connections are pinged
//!   before use only after a second idle (sqlx pings on every acquire by
//!   default: a round trip per statement). Use
//!   [`from_pool`](PostgresBuilder::from_pool) to size it yourself; consider
//!   the same `test_before_acquire(false)` and `before_acquire` settings.
//! - A stored row that this version cannot read (an unknown state, a negative
//!   attempt or count) is reported as an error naming the row; a claimed task
//!   whose row cannot be read goes `dead` with that error instead of running
//!   or stopping the worker (if that fails too, the claim is put back), and
//!   if it is a workflow step its run fails with it. A row with a state this
//!   version does not know is never claimed: claims take `pending` and
//!   `retry` rows only, so it holds up nothing.
//! - Trace context: a task's [`NewTask::trace`](errand_runtime::backend::NewTask::trace)
//!   is written to its `trace` column by every way of enqueueing (the one-row
//!   `INSERT`, the `UNNEST` arrays, unique-key enqueues,
//!   [`enqueue_in`](errand_runtime::TaskSink::enqueue_in), `COPY`), and
//!   every claim returns it in the same statement: one more column, no
//!   extra round trip. The backend stores it as it is and never reads it
//!   (one longer than [`MAX_TRACE_LEN`](errand_runtime::backend::MAX_TRACE_LEN)
//!   or holding a NUL byte, which the runtime never makes, is dropped rather
//!   than fail the enqueue). A retry or snooze is the same row, so it keeps
//!   its context. A workflow
//!   run stores the context it was started with in `runs.trace`; its entry
//!   steps' tasks get it when the run starts, and the steps that become
//!   ready later get it from the run's row that the ending transaction
//!   already locks and reads, so every step of a run is in one trace.
//! - Errors in outcomes come cleaned by the runtime (NUL bytes, which a
//!   `text` column refuses, replaced; cut to 64 KiB), and outputs larger
//!   than [`Tuning::max_payload`] never reach an ack, so no realistic
//!   outcome is refused by the server; an ack it refuses all the same is
//!   isolated and recorded in a smaller form by the runtime.
//!
//! # Workflows
//!
//! `PostgresBackend` implements [`WorkflowStore`], so `#[errand::workflow]`
//! graphs run on it (`backend.start(MyWorkflow { … })`,
//! `backend.workflow(run).wait()`); what happens when a step ends is decided
//! by the runtime's planner ([`errand_runtime::workflow::plan`]), the same
//! for every backend, and persisted here:
//!
//! - Starting a run writes its `runs` row and the tasks of its entry steps in
//!   one transaction, committed durably, with a `pg_notify` per queue.
//! - Every step is an ordinary task of job `Workflow::NAME`, claimed by any
//!   worker of that workflow's steps in any process. The ack batch of such a
//!   worker, when it holds a `done` or `dead` outcome, is one transaction
//!   (asynchronous commit, as every claim and ack): it locks the rows of the
//!   runs of its tasks that are still running for the worker (`SELECT … FOR
//!   UPDATE`, in id order), records the outcomes with the guarded updates
//!   above, which return the steps actually changed, reads those runs' steps
//!   and outputs, feeds the ends to the planner, and persists its plans:
//!   outputs stored in `run_steps`, the dependents whose inputs are now all
//!   there enqueued (with a `pg_notify`), runs whose sink steps are all done
//!   marked `done`; a `dead` step marks its run `failed` and cancels its
//!   other live steps (running ones are told through their cancellation
//!   token, and their acks are ignored). A crash never separates a step's
//!   ack from its run's advance: they commit together. An ack sent again
//!   after a lost reply changes no row, so it advances nothing twice.
//! - A step task that ends any other way fails its run the same way, in the
//!   same transaction: cancelled (`Expose::cancel_task`), rescued on its last
//!   attempt, buried as unserved, or claimed with a row that cannot be read.
//! - Sibling steps finishing at once in different workers or processes are
//!   acknowledged by parallel transactions. The run lock serialises them:
//!   each reads the run's outputs only once it holds the lock, so the last
//!   one sees every input of their common dependent and enqueues it, exactly
//!   once. A step's task is also only inserted when its `run_steps` row did
//!   not exist yet (`INSERT … ON CONFLICT DO NOTHING`), so no step is ever
//!   enqueued twice. Every transaction that ends steps takes their run locks
//!   before touching any task row, in id order, so two cannot deadlock each
//!   other. (One case locks a run later: a step task that changed state
//!   between the lock and its update, e.g. claimed again. Should that ever
//!   deadlock, PostgreSQL aborts one of the transactions with an error: an
//!   ack is sent again, a rescue or burial runs again at the next round.)
//! - Batches of other jobs, and batches of only retries and snoozes, are
//!   unaffected: still one statement; so is an orphan rescue that finds no
//!   step on its last attempt.
//! - [`run_info`](WorkflowStore::run_info) reads a run and each step's task
//!   (state, attempt, last error) and its output, from `run_steps`, and the
//!   steps each step takes its inputs from (`after`, from the stored graph);
//!   a `done` step task deleted by retention still reads as `done`. Once the
//!   run itself is past the retention it is deleted, and reads as not found.
//! - [`run_ids`](WorkflowStore::run_ids) (and
//!   [`runs`](WorkflowStore::runs), one `run_info` per id it lists) is one
//!   statement, `… ORDER BY id DESC LIMIT n`, that walks an index backwards
//!   and reads no run that does not match: the primary key without a
//!   filter, `runs_state` by state, `runs_workflow` by workflow and state,
//!   and by workflow alone that index once per state of the workflow's runs
//!   (a loose index scan finds them), merged. Pages go on with `before`
//!   (`id < before`).
//!
//! # Limitations
//!
//! - `run_at` is compared with the clock of the claiming process: keep the
//!   clocks of machines sharing a queue in sync (NTP).
//! - [`enqueue_in`](errand_runtime::TaskSink::enqueue_in) with a unique key
//!   relies on its advisory lock lasting until the caller's transaction ends:
//!   on a connection outside a transaction, two racing enqueues of one key
//!   may both be inserted; under `REPEATABLE READ` the check sees the
//!   transaction's snapshot.
//! - A step task deleted by hand from `tasks` leaves its run `running`, and
//!   a `running` run is never deleted by retention.
//! - Retention looks at the oldest 5,000 `done` tasks (by id) of each queue
//!   per batch: a `done` task with a small id that finished recently delays
//!   the deletion of newer ones behind it until it is old enough itself.
//!
//! # Tests
//!
//! The crate's tests run against a server named by `ERRAND_POSTGRES_URL`
//! (without it they are reported as ignored), each in a schema of its own
//! that it drops: the shared conformance suite, this backend's own cases
//! (`tests/postgres.rs`), connection cuts and a simulated server restart
//! through a proxy (`tests/outage.rs`), every statement's plan on 300,000
//! tasks (`src/plans.rs`), and a load of 4 worker processes × 20,000 tasks
//! with one process SIGKILLed part-way (`tests/load.rs`: nothing
//! lost, duplicates at most the tasks the killed process was running; it
//! prints `load [postgres]: processes N, tasks M, lost 0, duplicates D`).
//! The full-size load:
//!
//! ```text
//! ERRAND_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//! ERRAND_LOAD_PROCESSES=10 ERRAND_LOAD_TASKS=100000 \
//!     cargo test -p errand-postgres --release --test load -- --nocapture
//! ```
//!
//! The shape this crate shares with the other backends (one file per role)
//! is described in the project's `docs/architecture.md`.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, OnceLock};

use errand_runtime::backend::{Every, Notifier};
use errand_runtime::capability::{CancelRunning, Delays, Priorities, Results, UniqueKeys};
use errand_runtime::{Buffer, Codec, Error, JsonCodec, Tuning};
#[cfg(doc)]
use errand_runtime::{
    capability::{Schedules, Transactional},
    workflow::WorkflowStore,
};
use sqlx::PgPool;

pub use sqlx;

mod ack;
mod announce;
mod backend;
mod claim;
mod connect;
mod copy;
mod doubt;
mod expose;
mod listener;
mod migrate;
#[cfg(test)]
mod plans;
mod progress;
mod push;
mod retention;
mod rows;
mod schedules;
mod sql;
mod vacuum;
mod workers;
mod workflow;

/// The backend's name in messages ([`Backend::NAME`](errand_runtime::Backend::NAME)).
pub(crate) const NAME: &str = "postgres";

/// The schema used unless the builder's [`namespace`](PostgresBuilder::namespace)
/// names another.
pub const DEFAULT_SCHEMA: &str = "errand";

/// This backend's defaults: rescue after 30 s, poll every second, keep `done`
/// tasks and finished runs 24 h, 4 claims in flight per worker, and room for 1,024 claimed
/// tasks per worker (four claims of 256: see the crate docs).
const DEFAULT_TUNING: Tuning = Tuning::new().parallel_claims(4).buffer(Buffer::Room(1024));

/// A task store in one PostgreSQL schema.
///
/// Cheap to clone (an `Arc` inside): give a clone to every worker and
/// enqueuer of the process; they share one pool and one `LISTEN` connection.
/// `C` is the [`Codec`] arguments and results are stored with ([`JsonCodec`]
/// by default; see [`PostgresBuilder::codec`]).
///
/// See the [crate docs](crate) for the schema, defaults and limitations.
pub struct PostgresBackend<C: Codec = JsonCodec> {
    pub(crate) inner: Arc<Inner>,
    codec: PhantomData<fn() -> C>,
}

/// What the clones of one backend value share.
pub(crate) struct Inner {
    pub(crate) pool: PgPool,
    /// The schema's name, validated.
    pub(crate) schema: String,
    pub(crate) queries: sql::Queries,
    /// The NOTIFY channel of this schema.
    pub(crate) channel: String,
    pub(crate) tuning: Tuning,
    /// Finished tasks between two VACUUMs (0: never).
    pub(crate) vacuum_every: u64,
    pub(crate) notifier: Notifier,
    /// Started by the first `waiter()`; `None` outside a Tokio runtime.
    pub(crate) listener: OnceLock<Option<listener::Listener>>,
    /// Paces [`Backend::purge_expired`](errand_runtime::Backend::purge_expired)
    /// (see the `retention` module).
    pub(crate) purge_due: Every,
    /// The server and database, without password, for messages.
    pub(crate) location: String,
    /// Claims that broke off after reaching the server, to be put back.
    pub(crate) doubts: doubt::Doubts,
    pub(crate) announcer: announce::Announcer,
    /// Enqueues in flight (see [`announce::Pushing`]).
    pub(crate) pushing: AtomicUsize,
    pub(crate) vacuum: Arc<vacuum::Vacuum>,
}

impl Inner {
    /// The time to store, by the tuning's clock ([`Tuning::clock`]).
    pub(crate) fn now(&self) -> errand_runtime::Timestamp {
        self.tuning.clock.now()
    }

    /// Records that `n` tasks finished: past `vacuum_every` since the last
    /// VACUUM, one starts in the background (see the `vacuum` module).
    pub(crate) fn finished(&self, n: u64) {
        self.vacuum.changed(n, self.vacuum_every, &self.pool, &self.queries.vacuum);
    }

    /// Tells the listeners of every process that `queues` have new tasks,
    /// after the tasks' commit (see the `announce` module).
    pub(crate) fn announce(&self, queues: &[&str]) {
        self.announcer.announce(&self.pool, &self.queries.announce, &self.channel, queues);
    }
}

impl<C: Codec> Clone for PostgresBackend<C> {
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner), codec: PhantomData }
    }
}

impl<C: Codec> fmt::Debug for PostgresBackend<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("database", &self.inner.location)
            .field("schema", &self.inner.schema)
            .field("codec", &C::NAME)
            .field("tuning", &self.inner.tuning)
            .field("vacuum_every", &self.inner.vacuum_every)
            .finish_non_exhaustive()
    }
}

/// Options for a [`PostgresBackend`]: its schema, codec, [`Tuning`] and
/// vacuum pace; see the [crate docs](crate#options). Made by
/// [`PostgresBackend::builder`], ended by
/// [`connect`](PostgresBuilder::connect) or
/// [`from_pool`](PostgresBuilder::from_pool).
#[must_use]
pub struct PostgresBuilder<C = JsonCodec> {
    pub(crate) namespace: String,
    pub(crate) tuning: Tuning,
    pub(crate) vacuum_every: u64,
    /// Whether [`connect`](PostgresBuilder::connect) migrates.
    pub(crate) migrate: bool,
    codec: PhantomData<fn() -> C>,
}

impl<C: Codec> fmt::Debug for PostgresBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresBuilder")
            .field("namespace", &self.namespace)
            .field("codec", &C::NAME)
            .field("tuning", &self.tuning)
            .field("vacuum_every", &self.vacuum_every)
            .field("migrate", &self.migrate)
            .finish()
    }
}

impl<C: Codec> PostgresBuilder<C> {
    /// Keeps the tables in schema `schema` instead of `errand`: 1 to 48
    /// lowercase ASCII letters, digits and `_`, starting with a letter or
    /// `_`, and not `pg_…`. Checked by [`connect`](Self::connect) and
    /// [`from_pool`](Self::from_pool).
    pub fn namespace(mut self, schema: impl Into<String>) -> Self {
        self.namespace = schema.into();
        self
    }

    /// Stores arguments and results with codec `C2` instead. Tasks are not
    /// tagged with their codec: use one codec per schema.
    pub fn codec<C2: Codec>(self) -> PostgresBuilder<C2> {
        PostgresBuilder {
            namespace: self.namespace,
            tuning: self.tuning,
            vacuum_every: self.vacuum_every,
            migrate: self.migrate,
            codec: PhantomData,
        }
    }

    /// Changes the [`Tuning`], starting from this backend's defaults: rescue
    /// after 30 s, poll every second, keep `done` tasks and finished runs
    /// 24 h, 4 claims in flight per worker, [`Buffer::Room`]`(1024)`.
    pub fn tuning(mut self, tune: impl FnOnce(Tuning) -> Tuning) -> Self {
        self.tuning = tune(self.tuning);
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

    /// Whether [`connect`](Self::connect) migrates the schema (`true`, the
    /// default) or only connects (`false`): nothing is created, not even the
    /// schema, so a tool can ask
    /// [`pending_migrations`](PostgresBackend::pending_migrations) first, or
    /// work on a schema it must not change. On a schema that is not
    /// migrated, statements fail with [`Error::Backend`] (a missing table).
    /// [`from_pool`](Self::from_pool) never migrates.
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }
}

impl PostgresBackend<JsonCodec> {
    /// Options: schema, codec, [`Tuning`], vacuum pace. End with
    /// [`connect`](PostgresBuilder::connect) or
    /// [`from_pool`](PostgresBuilder::from_pool).
    pub fn builder() -> PostgresBuilder<JsonCodec> {
        PostgresBuilder {
            namespace: DEFAULT_SCHEMA.to_owned(),
            tuning: DEFAULT_TUNING,
            vacuum_every: vacuum::DEFAULT_EVERY,
            migrate: true,
            codec: PhantomData,
        }
    }

    /// Connects to `url` (`postgres://user:password@host:5432/database`) and
    /// migrates the schema `errand`, creating it if missing, with the default
    /// settings: `PostgresBackend::builder().connect(url)`.
    ///
    /// # Errors
    ///
    /// As [`PostgresBuilder::connect`].
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::builder().connect(url).await
    }
}

impl<C: Codec> PostgresBackend<C> {
    pub(crate) fn from_inner(inner: Inner) -> Self {
        Self { inner: Arc::new(inner), codec: PhantomData }
    }

    /// The schema holding the tables.
    pub fn namespace(&self) -> &str {
        &self.inner.schema
    }

    /// The connection pool: begin a transaction on it for
    /// [`enqueue_in`](errand_runtime::TaskSink::enqueue_in), or share it with
    /// the application.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The `LISTEN/NOTIFY` channel of this schema (`errand.<schema>`); the
    /// payload of each notification is a queue name.
    pub fn channel(&self) -> &str {
        &self.inner.channel
    }

    /// Creates the schema and applies the migrations not applied yet
    /// (idempotent; done by [`PostgresBuilder::connect`], not by
    /// [`PostgresBuilder::from_pool`]). Safe to run from several processes at
    /// once.
    ///
    /// # Errors
    ///
    /// [`Error::Schema`] when the schema was migrated by a newer errand or an
    /// applied migration differs from the one this version ships;
    /// [`Error::Backend`] when a statement fails.
    pub async fn migrate(&self) -> Result<(), Error> {
        migrate::run(&self.inner).await
    }

    /// The names of the migrations this version ships that the schema has
    /// not applied yet, in the order [`migrate`](Self::migrate) would apply
    /// them: each is its file's name in the crate's `migrations/` without
    /// `.sql` (`"0006_progress_pauses_schedules"`). Every one on a schema
    /// that does not exist yet; empty when the schema is current. Reads
    /// only: nothing is created or locked (connect with
    /// [`PostgresBuilder::migrate`]`(false)` to check a schema without
    /// migrating it).
    ///
    /// # Errors
    ///
    /// [`Error::Schema`] when the schema was migrated by a newer errand or an
    /// applied migration differs from the one this version ships (as
    /// [`migrate`](Self::migrate) would refuse it); [`Error::Backend`] when
    /// the read fails.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, Error> {
        migrate::pending(&self.inner).await
    }

    /// Retention, now: deletes `done` tasks and finished workflow runs (with
    /// their `run_steps` rows) that finished more than [`Tuning::retention`]
    /// ago, in bounded batches, whenever it was last done; returns how many
    /// tasks. [`Backend::purge_expired`](errand_runtime::Backend::purge_expired),
    /// which workers call, does the same at most every 10 s (or every
    /// `retention`, if shorter) per backend value.
    ///
    /// # Errors
    ///
    /// When a delete fails.
    pub async fn cleanup(&self) -> Result<u64, Error> {
        retention::cleanup(&self.inner).await
    }
}

impl<C: Codec> Priorities for PostgresBackend<C> {}
impl<C: Codec> UniqueKeys for PostgresBackend<C> {}
impl<C: Codec> Delays for PostgresBackend<C> {}
impl<C: Codec> Results for PostgresBackend<C> {}
impl<C: Codec> CancelRunning for PostgresBackend<C> {}
