//! `impl Expose for PostgresBackend`: counts, listings, workers, retry, cancel.

use errand_runtime::{Codec, Error, Expose, QueueCounts, TaskFilter, TaskId, TaskInfo, Timestamp, WorkerInfo};

use crate::PostgresBackend;
use crate::rows::{self, query_error};

impl<C: Codec> Expose for PostgresBackend<C> {
    async fn counts(&self) -> Result<Vec<QueueCounts>, Error> {
        let found = sqlx::query(&self.inner.queries.counts)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(query_error(format!("count the tasks of schema `{}`", self.inner.schema)))?;
        rows::counts(&found)
    }

    async fn tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskInfo>, Error> {
        let limit = if filter.limit == 0 { 100 } else { i64::from(filter.limit) };
        let after = filter.after.map_or(0, |a| i64::try_from(a.0).unwrap_or(i64::MAX));
        let state = filter.state.map(|s| s.as_str());
        // $1 after, $2 limit, $3 queue, $4 job, $5 state; only the conditions
        // that apply are in the text, so each shape gets a plan using its index.
        let mut conditions = vec!["id > $1".to_owned()];
        if filter.job.is_some() {
            conditions.push("job = $4".to_owned());
        }
        if state.is_some() {
            conditions.push("state = $5".to_owned());
        }
        let select = &self.inner.queries.select_task;
        let schema = &self.inner.queries.schema;
        let sql = if filter.queue.is_some() || state.is_none() {
            if filter.queue.is_some() {
                conditions.push("queue = $3".to_owned());
            }
            format!(
                "{select}WHERE {} AND $3::text IS NOT DISTINCT FROM $3 AND $4::text IS NOT DISTINCT FROM $4 \
                     AND $5::text IS NOT DISTINCT FROM $5 ORDER BY id LIMIT $2",
                conditions.join(" AND ")
            )
        } else {
            // A state without a queue: walk (queue, state, id) once per queue
            // (found by a loose index scan) and merge, instead of scanning
            // every task in id order.
            conditions.push("queue = q.queue".to_owned());
            format!(
                "WITH RECURSIVE queues AS ( \
                     (SELECT queue FROM {schema}.tasks ORDER BY queue LIMIT 1) \
                     UNION ALL \
                     SELECT (SELECT t.queue FROM {schema}.tasks AS t WHERE t.queue > q.queue ORDER BY t.queue LIMIT 1) \
                     FROM queues AS q WHERE q.queue IS NOT NULL) \
                 SELECT l.* FROM queues AS q CROSS JOIN LATERAL ( \
                     {select}WHERE {} AND $3::text IS NOT DISTINCT FROM $3 AND $4::text IS NOT DISTINCT FROM $4 \
                     ORDER BY id LIMIT $2) AS l \
                 WHERE q.queue IS NOT NULL ORDER BY l.id LIMIT $2",
                conditions.join(" AND ")
            )
        };
        let found = sqlx::query(&sql)
            .bind(after)
            .bind(limit)
            .bind(filter.queue.as_deref())
            .bind(filter.job.as_deref())
            .bind(state)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(query_error(format!("list tasks of schema `{}`", self.inner.schema)))?;
        found.iter().map(rows::task_info).collect()
    }

    async fn task(&self, id: TaskId) -> Result<Option<TaskInfo>, Error> {
        let found = sqlx::query(&self.inner.queries.task_by_id)
            .bind(i64::try_from(id.0).unwrap_or(i64::MAX))
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(query_error(format!("read task {id}")))?;
        found.as_ref().map(rows::task_info).transpose()
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>, Error> {
        let cutoff = Timestamp::now().sub(self.orphan_after).as_millis();
        let found = sqlx::query(&self.inner.queries.workers)
            .bind(cutoff)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(query_error(format!("list the workers of schema `{}`", self.inner.schema)))?;
        found.iter().map(rows::worker_info).collect()
    }

    async fn retry_task(&self, id: TaskId) -> Result<bool, Error> {
        let queue: Option<(String, String)> = sqlx::query_as(&self.inner.queries.retry_task)
            .bind(i64::try_from(id.0).unwrap_or(i64::MAX))
            .bind(Timestamp::now().as_millis())
            .bind(&self.inner.channel)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(query_error(format!("retry task {id}")))?;
        match queue {
            Some((queue, _)) => {
                self.inner.notifier.notify(&queue);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn cancel_task(&self, id: TaskId) -> Result<bool, Error> {
        let done = sqlx::query(&self.inner.queries.cancel_task)
            .bind(i64::try_from(id.0).unwrap_or(i64::MAX))
            .bind(Timestamp::now().as_millis())
            .execute(&self.inner.pool)
            .await
            .map_err(query_error(format!("cancel task {id}")))?;
        Ok(done.rows_affected() > 0)
    }
}
