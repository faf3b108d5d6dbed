//! `impl Expose for SqliteBackend`: counts, listings, workers, retry and cancel.

use errand_runtime::{Codec, Error, Expose, QueueCounts, TaskFilter, TaskId, TaskInfo, Timestamp, WorkerInfo};

use crate::rows::{self, query_error};
use crate::{SqliteBackend, sql};

/// Tasks listed when [`TaskFilter::limit`] is 0.
const DEFAULT_LIMIT: u32 = 100;

fn raw_id(id: TaskId) -> i64 {
    // No id beyond i64 exists, so the clamped value matches nothing.
    i64::try_from(id.0).unwrap_or(i64::MAX)
}

impl<C: Codec> Expose for SqliteBackend<C> {
    async fn counts(&self) -> Result<Vec<QueueCounts>, Error> {
        let rows = sqlx::query(sql::COUNTS).fetch_all(&self.inner.reader).await.map_err(query_error("count tasks"))?;
        rows::counts(&rows)
    }

    async fn tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskInfo>, Error> {
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
        rows.iter().map(rows::task_info).collect()
    }

    async fn task(&self, id: TaskId) -> Result<Option<TaskInfo>, Error> {
        let row = sqlx::query(sql::TASK_BY_ID)
            .bind(raw_id(id))
            .fetch_optional(&self.inner.reader)
            .await
            .map_err(query_error(format!("read task {id}")))?;
        row.as_ref().map(rows::task_info).transpose()
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>, Error> {
        let since = Timestamp::now().sub(self.orphan_after);
        let rows = sqlx::query(sql::WORKERS)
            .bind(since.as_millis())
            .fetch_all(&self.inner.reader)
            .await
            .map_err(query_error("list workers"))?;
        rows.iter().map(rows::worker_info).collect()
    }

    async fn retry_task(&self, id: TaskId) -> Result<bool, Error> {
        let queue: Option<String> = sqlx::query_scalar(sql::RETRY_TASK)
            .bind(raw_id(id))
            .bind(Timestamp::now().as_millis())
            .fetch_optional(&self.inner.writer)
            .await
            .map_err(query_error(format!("retry task {id}")))?;
        if let Some(queue) = &queue {
            self.inner.notifier.notify(queue);
        }
        Ok(queue.is_some())
    }

    async fn cancel_task(&self, id: TaskId) -> Result<bool, Error> {
        let cancelled = sqlx::query(sql::CANCEL_TASK)
            .bind(raw_id(id))
            .bind(Timestamp::now().as_millis())
            .execute(&self.inner.writer)
            .await
            .map_err(query_error(format!("cancel task {id}")))?
            .rows_affected();
        Ok(cancelled > 0)
    }
}
