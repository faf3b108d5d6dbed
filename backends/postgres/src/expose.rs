//! `impl Expose for PostgresBackend`: counts, listings, workers, retry, cancel.

use errand_runtime::{
    Codec, Error, Expose, QueueCounts, TaskFilter, TaskId, TaskInfo, TaskState, Timestamp, WorkerInfo,
};

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
        let sql = list_sql(&self.inner.queries.select_task, &self.inner.queries.schema, filter);
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

/// The states whose rows one partial index holds, as the predicate that lets
/// the planner use it (see migration 3): waiting rows are in `tasks_claim`,
/// running ones in `tasks_running`, finished ones in `tasks_finished`.
const GROUPS: [&str; 3] =
    ["state IN ('pending', 'retry')", "state = 'running'", "state IN ('done', 'dead', 'cancelled')"];

fn group_of(state: TaskState) -> &'static str {
    match state {
        TaskState::Pending | TaskState::Retry => GROUPS[0],
        TaskState::Running => GROUPS[1],
        TaskState::Done | TaskState::Dead | TaskState::Cancelled => GROUPS[2],
    }
}

/// The listing query for `filter`, binding `$1` after, `$2` limit, `$3`
/// queue, `$4` job, `$5` state. Only the conditions that apply are in the
/// text (each shape gets a plan that uses its index), and each walks one
/// partial index in id order: no listing scans every task.
pub(crate) fn list_sql(select: &str, schema: &str, filter: &TaskFilter) -> String {
    // Every parameter must appear for PostgreSQL to type it.
    const TYPED: &str = "$3::text IS NOT DISTINCT FROM $3 AND $4::text IS NOT DISTINCT FROM $4 \
                         AND $5::text IS NOT DISTINCT FROM $5";
    let mut conditions = vec!["id > $1"];
    if filter.job.is_some() {
        conditions.push("job = $4");
    }
    if let Some(state) = filter.state {
        conditions.push(group_of(state));
        conditions.push("state = $5");
    }
    let conditions = conditions.join(" AND ");
    match (filter.queue.is_some(), filter.state) {
        (true, Some(_)) => {
            format!("{select}WHERE {conditions} AND queue = $3 AND {TYPED} ORDER BY id LIMIT $2")
        }
        (true, None) => {
            // One walk per index, merged.
            let branches: Vec<String> = GROUPS
                .iter()
                .map(|group| format!("({select}WHERE {conditions} AND queue = $3 AND {group} ORDER BY id LIMIT $2)"))
                .collect();
            format!("SELECT l.* FROM ({}) AS l WHERE {TYPED} ORDER BY l.id LIMIT $2", branches.join(" UNION ALL "))
        }
        (false, Some(TaskState::Running) | None) => {
            // Running rows are few; without a state, the primary key is the walk.
            format!("{select}WHERE {conditions} AND {TYPED} ORDER BY id LIMIT $2")
        }
        (false, Some(state)) => {
            // A state without a queue: walk the group's index once per queue
            // (found by a loose index scan of it) and merge, instead of
            // scanning every task in id order.
            let group = group_of(state);
            format!(
                "WITH RECURSIVE queues AS ( \
                     (SELECT queue FROM {schema}.tasks WHERE {group} ORDER BY queue LIMIT 1) \
                     UNION ALL \
                     SELECT (SELECT t.queue FROM {schema}.tasks AS t \
                             WHERE t.{group} AND t.queue > q.queue ORDER BY t.queue LIMIT 1) \
                     FROM queues AS q WHERE q.queue IS NOT NULL) \
                 SELECT l.* FROM queues AS q CROSS JOIN LATERAL ( \
                     {select}WHERE {conditions} AND queue = q.queue AND {TYPED} ORDER BY id LIMIT $2) AS l \
                 WHERE q.queue IS NOT NULL ORDER BY l.id LIMIT $2"
            )
        }
    }
}
