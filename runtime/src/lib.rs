//! The runtime of [errand](https://docs.rs/errand): tasks, the [`Job`] and
//! [`Backend`] traits, codecs, workers, Tower middleware and the in-memory
//! backend.
//!
//! Most users depend on the `errand` facade, which re-exports this crate
//! together with the macros and the backends.
//!
//! # Examples
//!
//! ```
//! use errand_runtime::{Job, JobError, TaskCx, TaskSink, Monitor, WorkerBuilder};
//! use errand_runtime::memory::MemoryBackend;
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
//! let backend = MemoryBackend::new();
//! let id = backend.enqueue(Greet { name: "ada".into() }).await?;
//! let done = backend.clone();
//! Monitor::new()
//!     .register(WorkerBuilder::<Greet, _>::new(backend.clone()))
//!     .run_until(async move {
//!         use errand_runtime::BackendExt;
//!         while done.result::<Greet>(id).await.ok().flatten().is_none() {
//!             tokio::time::sleep(std::time::Duration::from_millis(5)).await;
//!         }
//!     })
//!     .await?;
//! assert_eq!(backend.result::<Greet>(id).await?, Some("hello, ada".to_owned()));
//! # use errand_runtime::BackendExt;
//! # Ok(())
//! # }
//! ```
//!
//! # Modules
//!
//! - The crate root: what a user writes — [`Job`], [`JobError`],
//!   [`TaskCx`], [`Data`], [`WorkerBuilder`], [`Monitor`], [`Enqueue`],
//!   [`TaskSink`], [`Expose`], codecs, [`Tuning`], errors.
//! - [`workflow`]: durable workflows and their [planner](workflow::plan).
//! - [`capability`]: what some backends can do and others cannot, checked
//!   at compile time.
//! - [`backend`]: the kit for writing a backend (the [`Backend`] contract
//!   and the pieces every backend shares).
//! - [`pipe`]: feeding a backend from any stream of jobs; [`schedule`]:
//!   recurring schedules, each tick enqueued once across processes.
//! - [`memory`]: the in-memory backend; [`retry`], [`timeout`], [`panic`](mod@panic),
//!   [`trace`]: the worker's Tower layers.
//! - `testing` (feature `test-suite`): the conformance suite every backend
//!   runs.
//!
//! # How tasks flow
//!
//! - **Routing.** A worker is built for one job and claims only that job's
//!   tasks on its queue, so several jobs can share a queue without stealing
//!   each other's work. Waiting tasks of a job that no worker of any process
//!   serves on that queue (a job type a deploy removed, a name typed wrong,
//!   a service that is down) are reported; with
//!   [`Monitor::bury_unserved_after`] they go `dead` once unserved for that
//!   long, with a reason naming the job and the queue (kept, retryable).
//! - **Delivery is at least once.** A worker that dies mid-run stops
//!   heartbeating; after the backend's `orphan_after` (30 s) any live worker
//!   puts its tasks back (or, on their last attempt, sends them `dead`).
//!   Handlers should be idempotent; `TaskCx::id` and unique keys help.
//! - **Retries wait in the backend.** A failed run's next attempt is stored
//!   as the task's `run_at`; no worker sleeps on it.
//! - **Claiming.** A worker claims as many due tasks as it has free slots
//!   (at most `concurrency`), keeps claiming while tasks run, and flushes
//!   acks in batches in the background. On a busy queue it gathers a
//!   quarter of its slots (for at most 2 ms) before a claim; backends whose
//!   claim is a network round trip keep several claims in flight
//!   ([`Tuning::parallel_claims`](backend::Tuning::parallel_claims)).
//! - **Shutdown.** [`Monitor::run_until`] stops claiming on the signal, lets
//!   runs finish until the shutdown deadline (30 s), then releases the rest
//!   back to the queue without using an attempt.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod backend;
pub mod backoff;
pub mod capability;
mod codec;
mod context;
mod error;
mod expose;
mod job;
mod job_error;
pub mod memory;
pub mod meter;
mod monitor;
pub mod panic;
pub mod pipe;
mod request;
pub mod retry;
pub mod schedule;
mod sink;
mod task;
pub mod time;
pub mod timeout;
pub mod trace;
mod worker;
pub mod workflow;

#[cfg(feature = "test-suite")]
pub mod testing;

pub use backend::{Backend, Buffer, Tuning};
pub use backoff::Backoff;
#[cfg(feature = "bincode")]
pub use codec::BincodeCodec;
#[cfg(feature = "msgpack")]
pub use codec::MsgPackCodec;
pub use codec::{Codec, JsonCodec};
pub use context::{Data, DataMap, FromTaskCx, Requirements, TaskCx, WorkerCx};
pub use error::{BackendError, BoxError, CodecError, Error};
pub use expose::{BackendExt, Expose};
pub use job::{IntoJobResult, Job, JobOptions};
pub use job_error::{Decision, JobError};
pub use monitor::{IntoMonitored, Monitor, shutdown_signal};
pub use pipe::{Pipe, PipeExt, PipeStats};
pub use request::Request;
pub use schedule::{Missed, Schedule, ScheduleExt, Tick};
pub use sink::{Enqueue, TaskSink};
pub use task::{Progress, QueueCounts, RunId, TaskFilter, TaskId, TaskInfo, TaskState, UnknownState, WorkerInfo};
pub use time::Timestamp;
pub use worker::{DefaultLayers, Event, JobService, MAX_CONCURRENCY, Worker, WorkerBuilder};
pub use workflow::{Run, Workflow, WorkflowExt, WorkflowStore};

/// Re-exports for code generated by errand's macros. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use serde;
    pub use std::boxed::Box;
    pub use std::format;
    pub use std::future::Future;
    pub use std::option::Option;
    pub use std::result::Result;
    pub use std::string::String;
    pub use std::time::Duration;

    pub use crate::workflow::{Bytes, StepSpec, StepTask};

    /// The unique key of `unique = "args"`: the job's name and a stable
    /// 64-bit FNV-1a hash of the arguments' JSON, the same in every process
    /// and for every codec.
    pub fn unique_args_key<T: serde::Serialize>(job: &str, args: &T) -> Option<String> {
        let json = serde_json::to_vec(args).ok()?;
        Some(format!("{job}:{:016x}", crate::backend::fnv1a(&json)))
    }
}
