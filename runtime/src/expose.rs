//! What dashboards and tools use: [`Expose`], and typed reads on top of it
//! ([`BackendExt`]).

use std::future::Future;

use crate::backend::Backend;
use crate::capability::{CancelRunning, Results};
use crate::codec::Codec;
use crate::error::Error;
use crate::job::Job;
use crate::task::{Progress, QueueCounts, TaskFilter, TaskId, TaskInfo, WorkerInfo};

/// What dashboards and tools read and do: counts, task listings, workers,
/// retrying dead tasks and cancelling. A [capability](crate::capability):
/// stores that cannot list their tasks (message brokers) do not have it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot list or count its tasks",
    label = "this needs a backend that implements `Expose` (listings for dashboards and tools)",
    note = "backends with listings: MemoryBackend, SqliteBackend, PostgresBackend, MysqlBackend, RedisBackend"
)]
pub trait Expose: Backend {
    /// Task counts per queue and state.
    fn counts(&self) -> impl Future<Output = Result<Vec<QueueCounts>, Error>> + Send;

    /// Tasks matching `filter`, by ascending id.
    fn tasks(&self, filter: &TaskFilter) -> impl Future<Output = Result<Vec<TaskInfo>, Error>> + Send;

    /// One task.
    fn task(&self, id: TaskId) -> impl Future<Output = Result<Option<TaskInfo>, Error>> + Send;

    /// Workers that have beaten within `orphan_after`.
    fn workers(&self) -> impl Future<Output = Result<Vec<WorkerInfo>, Error>> + Send;

    /// Puts a `dead` or `cancelled` task back to `pending` with a fresh set of
    /// attempts. Returns whether it did.
    fn retry_task(&self, id: TaskId) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Deletes a finished task (`done`, `dead` or `cancelled`), its result
    /// and its error. A live task is not deleted (cancel it first), nor is
    /// a workflow step's task (it goes with its run). Returns whether it did.
    fn delete_task(&self, id: TaskId) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Pauses `queue`: from now on its workers, in every process, claim
    /// nothing (runs already started finish); enqueueing still works. The
    /// state is stored, so it outlives restarts, and shows in
    /// [`counts`](Self::counts) as [`QueueCounts::paused`]. Pausing a paused
    /// queue does nothing.
    fn pause_queue(&self, queue: &str) -> impl Future<Output = Result<(), Error>> + Send;

    /// Resumes a paused `queue`: its workers claim again (at once in this
    /// process, within their poll interval in others). Resuming a queue that
    /// is not paused does nothing.
    fn resume_queue(&self, queue: &str) -> impl Future<Output = Result<(), Error>> + Send;

    /// Cancels a `pending` or `retry` task (it never starts) or a `running`
    /// one (its cancellation token fires and its result is discarded).
    /// Returns whether it did. Needs
    /// [`CancelRunning`](crate::capability::CancelRunning).
    fn cancel_task(&self, id: TaskId) -> impl Future<Output = Result<bool, Error>> + Send
    where
        Self: CancelRunning;
}

/// Typed reads on top of [`Expose`], for every backend; each method says
/// which [capabilities](crate::capability) it needs.
pub trait BackendExt: Backend {
    /// The decoded output of a `done` task of job `J`, or `None` if the task
    /// does not exist or has not finished successfully. Needs [`Expose`] and
    /// [`Results`](crate::capability::Results).
    ///
    /// # Errors
    ///
    /// When the backend fails or the stored output does not decode as `J::Output`.
    fn result<J: Job>(&self, id: TaskId) -> impl Future<Output = Result<Option<J::Output>, Error>> + Send
    where
        Self: Expose + Results,
    {
        async move {
            let Some(info) = self.task(id).await? else { return Ok(None) };
            match info.result {
                Some(bytes) if info.state == crate::TaskState::Done => {
                    let what = format!("the result of task {id} (job `{}`)", J::NAME);
                    Ok(Some(<Self::Codec as Codec>::decode(&bytes, &what)?))
                }
                _ => Ok(None),
            }
        }
    }

    /// The latest progress a task reported
    /// ([`TaskCx::progress`](crate::TaskCx::progress)), or `None` if it did
    /// not report any in its current attempt (or does not exist). Needs
    /// [`Expose`].
    ///
    /// # Errors
    ///
    /// When the backend fails.
    fn task_progress(&self, id: TaskId) -> impl Future<Output = Result<Option<Progress>, Error>> + Send
    where
        Self: Expose,
    {
        async move { Ok(self.task(id).await?.and_then(|info| info.progress)) }
    }

    /// Task counts of one queue. Needs [`Expose`].
    ///
    /// # Errors
    ///
    /// When the backend fails.
    fn queue_counts(&self, queue: &str) -> impl Future<Output = Result<QueueCounts, Error>> + Send
    where
        Self: Expose,
    {
        async move {
            Ok(self
                .counts()
                .await?
                .into_iter()
                .find(|c| c.queue == queue)
                .unwrap_or_else(|| QueueCounts { queue: queue.to_owned(), ..QueueCounts::default() }))
        }
    }
}

impl<B: Backend> BackendExt for B {}
