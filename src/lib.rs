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
//! | `msgpack` | no      | `MsgPackCodec` (rmp-serde) |
//! | `bincode` | no      | `BincodeCodec` (bincode 2) |
//! | `full`    | no      | all of the above |
//!
//! The in-memory backend ([`memory::MemoryBackend`]) is always available.

pub use errand_runtime::*;

#[cfg(feature = "macros")]
pub use errand_macros::job;
// Macro namespace: these coexist with the runtime's `errand::workflow` module.
#[cfg(feature = "macros")]
pub use errand_macros::{dag_step, step, workflow};

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

/// What a file that defines and runs jobs needs.
pub mod prelude {
    /// `backend.start(workflow)` and `backend.workflow(run)`.
    pub use errand_runtime::workflow::WorkflowExt;
    pub use errand_runtime::{
        Backend, BackendExt, Data, Enqueue, Expose, FromTaskCx, Job, JobError, Monitor, TaskCx, TaskId, TaskSink,
        WorkerBuilder, WorkerCx,
    };
    pub use std::time::Duration;
}
