//! `impl Expose for SqliteBackend`: counts, listings, workers, retry and cancel.

use errand_runtime::backend::stored::{read_counts, read_task_info, read_worker_info};
use errand_runtime::capability::CancelRunning;
use errand_runtime::workflow::plan::StepEnd;
use errand_runtime::{Codec, Error, Expose, QueueCounts, TaskFilter, TaskId, TaskInfo, Timestamp, WorkerInfo};
use sqlx::Connection;

use crate::rows::{Stored, query_error, raw_id, stored};
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
    async fn counts(&self) -> Result<Vec<QueueCounts>, Error> {
        let rows = sqlx::query(sql::COUNTS).fetch_all(&self.inner.reader).await.map_err(query_error("count tasks"))?;
        read_counts(NAME, &stored(rows))
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
