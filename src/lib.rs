//! errand: declarative background jobs for Rust.
//!
//! Put `#[errand::job]` on an ordinary `async fn`; the macro generates the
//! task type, its codec wiring and its worker. Tasks live in a real backend
//! (SQLite by default), so any number of worker processes share the work.
//!
//! ```
//! use errand::prelude::*;
//! use errand::memory::MemoryBackend;
//!
//! #[errand::job(queue = "emails", retries = 3)]
//! async fn send_email(to: String, subject: String) -> Result<usize, JobError> {
//!     Ok(to.len() + subject.len())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), errand::Error> {
//! let backend = MemoryBackend::new();
//! let id = backend.enqueue(SendEmail::new("a@b.c".into(), "hi".into())).await?;
//! let watch = backend.clone();
//! Monitor::new()
//!     .register(SendEmail::worker(&backend).concurrency(4))
//!     .run_until(async move {
//!         while watch.result::<SendEmail>(id).await.ok().flatten().is_none() {
//!             tokio::time::sleep(std::time::Duration::from_millis(5)).await;
//!         }
//!     })
//!     .await?;
//! assert_eq!(backend.result::<SendEmail>(id).await?, Some(7));
//! # Ok(())
//! # }
//! ```
//!
//! # Feature flags
//!
//! | feature   | default | what it enables |
//! |-----------|---------|-----------------|
//! | `macros`  | yes     | `#[errand::job]`, `#[errand::workflow]` (with `#[dag_step]` and `#[step]`) |
//! | `sqlite`  | yes     | [`sqlite::SqliteBackend`]: a durable queue in one file, no server |
//! | `redis`   | no      | [`redis::RedisBackend`]: Redis 6.2+, Lua scripts, pub/sub wake-ups |
//! | `postgres`| no      | [`postgres::PostgresBackend`]: `SKIP LOCKED` claims, `LISTEN/NOTIFY`, transactional enqueue |
//! | `mysql`   | no      | [`mysql::MysqlBackend`]: MySQL 8.0+ / MariaDB 10.6+, `SKIP LOCKED` claims, adaptive polling, transactional enqueue |
//! | `msgpack` | no      | `MsgPackCodec` (rmp-serde) |
//! | `bincode` | no      | `BincodeCodec` (bincode 2) |
//! | `full`    | no      | all of the above |
//!
//! The in-memory backend ([`memory::MemoryBackend`]) is always available.

#[cfg(feature = "bincode")]
pub use errand_runtime::BincodeCodec;
#[cfg(feature = "msgpack")]
pub use errand_runtime::MsgPackCodec;
pub use errand_runtime::{
    Backend, BackendError, BackendExt, Backoff, BoxError, Buffer, Codec, CodecError, Data, DataMap, Decision,
    DefaultLayers, Enqueue, Error, Event, Expose, FromTaskCx, IntoJobResult, IntoMonitored, Job, JobError, JobOptions,
    JobService, JsonCodec, MAX_CONCURRENCY, Missed, Monitor, Pipe, PipeExt, PipeStats, Progress, QueueCounts, Request,
    Requirements, RunId, Schedule, ScheduleExt, TaskCx, TaskFilter, TaskId, TaskInfo, TaskSink, TaskState, Tick,
    Timestamp, Tuning, UnknownState, Worker, WorkerBuilder, WorkerCx, WorkerInfo, Workflow, WorkflowExt, WorkflowStore,
    shutdown_signal,
};
pub use errand_runtime::{backoff, capability, memory, panic, pipe, retry, schedule, timeout, trace};

/// Cron schedules (feature `cron`): [`CronSchedule`](errand_cron::CronSchedule),
/// and what `#[errand::job(cron = "…")]` runs.
#[cfg(feature = "cron")]
pub mod cron {
    pub use errand_cron::*;
}

/// The web dashboard (feature `board`): [`Board`](errand_board::Board),
/// [`router`](errand_board::router) to nest in your axum app, and a
/// standalone [`Server`](errand_board::Server).
#[cfg(feature = "board")]
pub mod board {
    pub use errand_board::*;
}

/// Prometheus metrics (feature `metrics`): [`install`](errand_metrics::install)
/// the recorder at startup, merge [`router`](errand_metrics::router) into
/// your app for `/metrics`; the metric names are in
/// [`meter`](errand_runtime::meter).
#[cfg(feature = "metrics")]
pub mod metrics {
    pub use errand_metrics::*;
    pub use errand_runtime::meter::names;
}

/// Checks, for `#[errand::job(cron = "…")]`, that the `cron` feature is on.
#[doc(hidden)]
#[cfg(feature = "cron")]
#[macro_export]
macro_rules! __require_cron_feature {
    () => {};
}

/// Checks, for `#[errand::job(cron = "…")]`, that the `cron` feature is on.
#[doc(hidden)]
#[cfg(not(feature = "cron"))]
#[macro_export]
macro_rules! __require_cron_feature {
    () => {
        ::core::compile_error!(
            "`cron = \"…\"` needs errand's `cron` feature: in Cargo.toml, `errand = { version = \"0.1\", features = [\"cron\"] }`"
        );
    };
}

#[cfg(feature = "macros")]
pub use errand_macros::job;
// Macro namespace: these coexist with the `errand::workflow` module.
#[cfg(feature = "macros")]
pub use errand_macros::{dag_step, step, workflow};

/// Durable workflows: what `#[errand::workflow]` generates and how runs are
/// started and watched (the runtime's [`workflow`](errand_runtime::workflow)
/// module, without its backend-author kit).
pub mod workflow {
    pub use errand_runtime::workflow::{
        Bytes, NewRun, Run, RunId, RunInfo, RunState, StepInfo, StepOutput, StepPayload, StepSpec, StepTask, Workflow,
        WorkflowExt, WorkflowHandle, WorkflowStore,
    };
}

/// The SQLite backend (feature `sqlite`).
#[cfg(feature = "sqlite")]
pub mod sqlite {
    pub use errand_sqlite::*;
}

/// The Redis backend (feature `redis`).
#[cfg(feature = "redis")]
pub mod redis {
    pub use errand_redis::*;
}

/// The PostgreSQL backend (feature `postgres`).
#[cfg(feature = "postgres")]
pub mod postgres {
    pub use errand_postgres::*;
}

/// The MySQL/MariaDB backend (feature `mysql`).
#[cfg(feature = "mysql")]
pub mod mysql {
    pub use errand_mysql::*;
}

/// What a file that defines and runs jobs needs.
pub mod prelude {
    /// `backend.start(workflow)` and `backend.workflow(run)`.
    pub use errand_runtime::WorkflowExt;
    pub use errand_runtime::{
        Backend, BackendExt, Data, Enqueue, Expose, FromTaskCx, Job, JobError, Monitor, PipeExt, ScheduleExt, TaskCx,
        TaskId, TaskSink, Tick, WorkerBuilder, WorkerCx,
    };
    pub use std::time::Duration;
}

/// Re-exports for code generated by errand's macros. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use errand_runtime::__private::*;
}
