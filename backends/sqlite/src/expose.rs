//! `impl Expose for SqliteBackend`: counts, listings, workers, retry, delete,
//! pausing and cancel.

use errand_runtime::backend::stored::{StoredRow, read_counts, read_task_info, read_worker_info};
use errand_runtime::capability::CancelRunning;
use errand_runtime::workflow::plan::StepEnd;
use errand_runtime::{Codec, Error, Expose, QueueCounts, TaskFilter, TaskId, TaskInfo, Timestamp, WorkerInfo};
use sqlx::Connection;

use crate::rows::{Stored, bad_data, query_error, raw_id};
use crate::workflow::{self, EndedStep};
use crate::{NAME, SqliteBackend, sql};

/// Tasks listed when [`TaskFilter::limit`] is 0.
const DEFAULT_LIMIT: u32 = 100;

/// Why a cancelled workflow step fails its run.
const CANCELLED: &str = "its task was cancelled";

/// The listing statement for `filter`: parameters `after`, then the queue,
/// job and state it filters on, then the limit. It walks the tasks in id
/// order from `after` (by the primary key), checking the filter.
pub(crate) fn list_sql(filter: &TaskFilter) -> String {
    let mut statement = String::from(sql::SELECT_TASK);
    statement.push_str("WHERE id > ?");
    if filter.queue.is_some() {
        statement.push_str(" AND queue = ?");
    }
    if filter.job.is_some() {
        statement.push_str(" AND job = ?");
    }
    if filter.state.is_some() {
        statement.push_str(" AND state = ?");
    }
    statement.push_str(" ORDER BY id LIMIT ?");
    statement
}

impl<C: Codec> Expose for SqliteBackend<C> {
    /// Task counts by queue and state, and the paused queues, in one
    /// statement (one snapshot).
    async fn counts(&self) -> Result<Vec<QueueCounts>, Error> {
        let rows = sqlx::query(sql::COUNTS).fetch_all(&self.inner.reader).await.map_err(query_error("count tasks"))?;
        let mut tasks = Vec::with_capacity(rows.len());
        let mut paused = Vec::new();
        for row in rows.into_iter().map(Stored) {
            let marker = row.int("paused").map_err(|e| bad_data("task counts", format!("column `paused`: {e}")))?;
            if marker == Some(1) {
                let queue =
                    row.text("queue").map_err(|e| bad_data("a paused queue", format!("column `queue`: {e}")))?;
                paused.push(queue.ok_or_else(|| bad_data("a paused queue", "column `queue` is NULL"))?);
            } else {
                tasks.push(row);
            }
        }
        let mut counts = read_counts(NAME, &tasks)?;
        if !paused.is_empty() {
            for queue in paused {
                match counts.iter_mut().find(|c| c.queue == queue) {
                    Some(c) => c.paused = true,
                    None => counts.push(QueueCounts { queue, paused: true, ..QueueCounts::default() }),
                }
            }
            counts.sort_by(|a, b| a.queue.cmp(&b.queue));
        }
        Ok(counts)
    }

    async fn tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskInfo>, Error> {
        let statement = list_sql(filter);
        let mut query = sqlx::query(&statement).bind(filter.after.map_or(i64::MIN, raw_id));
        if let Some(queue) = &filter.queue {
            query = query.bind(queue.as_str());
        }
        if let Some(job) = &filter.job {
            query = query.bind(job.as_str());
        }
        if let Some(state) = filter.state {
            query = query.bind(state.as_str());
        }
        let limit = if filter.limit == 0 { DEFAULT_LIMIT } else { filter.limit };
        let rows =
            query.bind(i64::from(limit)).fetch_all(&self.inner.reader).await.map_err(query_error("list tasks"))?;
        rows.into_iter().map(|row| read_task_info(NAME, &Stored(row))).collect()
    }

    async fn task(&self, id: TaskId) -> Result<Option<TaskInfo>, Error> {
        let row = sqlx::query(sql::TASK_BY_ID)
            .bind(raw_id(id))
            .fetch_optional(&self.inner.reader)
            .await
            .map_err(query_error(format!("read task {id}")))?;
        row.map(|row| read_task_info(NAME, &Stored(row))).transpose()
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>, Error> {
        // Liveness by this machine's clock, as heartbeats record it.
        let since = Timestamp::now().sub(self.tuning.orphan_after);
        let rows = sqlx::query(sql::WORKERS)
            .bind(since.as_millis())
            .fetch_all(&self.inner.reader)
            .await
            .map_err(query_error("list workers"))?;
        rows.into_iter().map(|row| read_worker_info(NAME, &Stored(row))).collect()
    }

    async fn retry_task(&self, id: TaskId) -> Result<bool, Error> {
        let queue: Option<String> = sqlx::query_scalar(sql::RETRY_TASK)
            .bind(raw_id(id))
            .bind(self.tuning.clock.now().as_millis())
            .fetch_optional(&self.inner.writer)
            .await
            .map_err(query_error(format!("retry task {id}")))?;
        if let Some(queue) = &queue {
            self.inner.notifier.notify(queue);
        }
        Ok(queue.is_some())
    }

    /// One `DELETE … WHERE id = ? AND state IN ('done', 'dead', 'cancelled')
    /// AND run_id IS NULL`: the row holds the result, error, progress and
    /// unique key, so the key is free again. A cancelled task still held by
    /// the worker that ran it is deleted too; that worker's run then goes on
    /// (its token does not fire) and its ack is ignored.
    async fn delete_task(&self, id: TaskId) -> Result<bool, Error> {
        let deleted = sqlx::query(sql::DELETE_TASK)
            .bind(raw_id(id))
            .execute(&self.inner.writer)
            .await
            .map_err(query_error(format!("delete task {id}")))?
            .rows_affected();
        Ok(deleted > 0)
    }

    /// Stores the queue as paused (a row in `errand_paused_queues`); every
    /// claim of it, in any process, checks that row.
    async fn pause_queue(&self, queue: &str) -> Result<(), Error> {
        sqlx::query(sql::PAUSE_QUEUE)
            .bind(queue)
            .bind(self.tuning.clock.now().as_millis())
            .execute(&self.inner.writer)
            .await
            .map_err(query_error(format!("pause queue `{queue}`")))?;
        Ok(())
    }

    /// Deletes the queue's pause and wakes this process's idle workers of
    /// it; other processes' workers claim at their next poll.
    async fn resume_queue(&self, queue: &str) -> Result<(), Error> {
        let resumed = sqlx::query(sql::RESUME_QUEUE)
            .bind(queue)
            .execute(&self.inner.writer)
            .await
            .map_err(query_error(format!("resume queue `{queue}`")))?
            .rows_affected();
        if resumed > 0 {
            self.inner.notifier.notify(queue);
        }
        Ok(())
    }

    /// Cancels the task; a workflow step's run fails (its other live steps
    /// are cancelled too).
    async fn cancel_task(&self, id: TaskId) -> Result<bool, Error>
    where
        Self: CancelRunning,
    {
        let operation = || format!("cancel task {id}");
        let now = self.tuning.clock.now();
        let mut conn = self.inner.writer.acquire().await.map_err(query_error(operation()))?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(query_error(operation()))?;
        let row = sqlx::query(sql::CANCEL_TASK)
            .bind(raw_id(id))
            .bind(now.as_millis())
            .fetch_optional(&mut *tx)
            .await
            .map_err(query_error(operation()))?;
        let cancelled = row.is_some();
        let ended = match row.map(Stored) {
            Some(row) => EndedStep::of(&row, || Ok(StepEnd::Failed(CANCELLED.to_owned())))?,
            None => None,
        };
        let woken = workflow::end_steps::<C>(&mut tx, ended.into_iter().collect(), now).await?;
        tx.commit().await.map_err(query_error(operation()))?;
        drop(conn);
        self.wake_all(&woken);
        Ok(cancelled)
    }
}
