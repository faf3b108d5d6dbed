//! `impl Expose for PostgresBackend`: counts, listings, workers, retry,
//! delete, pausing and resuming queues, cancel.

use errand_runtime::backend::stored::{StoredRow, read_counts, read_task_info, read_worker_info};
use errand_runtime::capability::CancelRunning;
use errand_runtime::{Codec, Error, Expose, QueueCounts, TaskFilter, TaskId, TaskInfo, TaskState, WorkerInfo};

use errand_runtime::workflow::plan::StepEnd;
use sqlx::Row;

use crate::rows::{self, Stored, query_error};
use crate::workflow::{self, Ended};
use crate::{NAME, PostgresBackend};

impl<C: Codec> Expose for PostgresBackend<C> {
    async fn counts(&self) -> Result<Vec<QueueCounts>, Error> {
        let found = sqlx::query(&self.inner.queries.counts)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(query_error(format!("count the tasks of schema `{}`", self.inner.schema)))?;
        // The rows with no state are the paused queues (see `counts.sql`).
        let (paused, tasks): (Vec<Stored>, Vec<Stored>) =
            rows::stored(found).into_iter().partition(|row| matches!(row.text("state"), Ok(None)));
        let mut counts = read_counts(NAME, &tasks)?;
        for row in &paused {
            let queue = rows::text(row, "queue", "a paused queue")?;
            match counts.iter_mut().find(|c| c.queue == queue) {
                Some(c) => c.paused = true,
                None => counts.push(QueueCounts { queue, paused: true, ..QueueCounts::default() }),
            }
        }
        counts.sort_by(|a, b| a.queue.cmp(&b.queue));
        Ok(counts)
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
        found.into_iter().map(|row| read_task_info(NAME, &Stored(row))).collect()
    }

    async fn task(&self, id: TaskId) -> Result<Option<TaskInfo>, Error> {
        let found = sqlx::query(&self.inner.queries.task_by_id)
            .bind(i64::try_from(id.0).unwrap_or(i64::MAX))
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(query_error(format!("read task {id} of schema `{}`", self.inner.schema)))?;
        found.map(|row| read_task_info(NAME, &Stored(row))).transpose()
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>, Error> {
        let orphan_after = i64::try_from(self.inner.tuning.orphan_after.as_millis()).unwrap_or(i64::MAX);
        let found = sqlx::query(&self.inner.queries.workers)
            .bind(orphan_after)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(query_error(format!("list the workers of schema `{}`", self.inner.schema)))?;
        found.into_iter().map(|row| read_worker_info(NAME, &Stored(row))).collect()
    }

    async fn retry_task(&self, id: TaskId) -> Result<bool, Error> {
        let queue: Option<(String, String)> = sqlx::query_as(&self.inner.queries.retry_task)
            .bind(i64::try_from(id.0).unwrap_or(i64::MAX))
            .bind(self.inner.now().as_millis())
            .bind(&self.inner.channel)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(query_error(format!("retry task {id} of schema `{}`", self.inner.schema)))?;
        match queue {
            Some((queue, _)) => {
                self.inner.notifier.notify(&queue);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// One statement (`delete_task.sql`): the row holds the task's result,
    /// error, progress and unique key, so they go with it. A step task is
    /// refused while its run exists.
    async fn delete_task(&self, id: TaskId) -> Result<bool, Error> {
        // Task ids are bigints: a larger one names no task.
        let Ok(raw) = i64::try_from(id.0) else { return Ok(false) };
        let deleted: Option<i64> = sqlx::query_scalar(&self.inner.queries.delete_task)
            .bind(raw)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(query_error(format!("delete task {id} of schema `{}`", self.inner.schema)))?;
        Ok(deleted.is_some())
    }

    /// Stores the pause (`pause_queue.sql`); every claim of the queue, in
    /// any process, looks it up in its own statement.
    async fn pause_queue(&self, queue: &str) -> Result<(), Error> {
        sqlx::query(&self.inner.queries.pause_queue)
            .bind(queue)
            .bind(self.inner.now().as_millis())
            .execute(&self.inner.pool)
            .await
            .map_err(query_error(format!("pause queue `{queue}` of schema `{}`", self.inner.schema)))?;
        Ok(())
    }

    /// Deletes the pause and, if there was one, wakes the queue's idle
    /// workers: this process's at once, other processes' by a `NOTIFY` sent
    /// in the same statement (`resume_queue.sql`).
    async fn resume_queue(&self, queue: &str) -> Result<(), Error> {
        let resumed: Option<(String, String)> = sqlx::query_as(&self.inner.queries.resume_queue)
            .bind(queue)
            .bind(&self.inner.channel)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(query_error(format!("resume queue `{queue}` of schema `{}`", self.inner.schema)))?;
        if resumed.is_some() {
            self.inner.notifier.notify(queue);
        }
        Ok(())
    }

    /// Cancelling a workflow step fails its run, in the same transaction:
    /// the run is locked first (see the `workflow` module).
    async fn cancel_task(&self, id: TaskId) -> Result<bool, Error>
    where
        Self: CancelRunning,
    {
        let inner = &*self.inner;
        let operation = format!("cancel task {id} of schema `{}`", inner.schema);
        let Ok(raw) = i64::try_from(id.0) else { return Ok(false) };
        let now = inner.now();
        let mut tx = inner.pool.begin().await.map_err(query_error(&operation))?;
        let (task, none): ([i64; 1], &[i64]) = ([raw], &[]);
        let lock = sqlx::query(&inner.queries.run_lock).bind(task.as_slice()).bind(None::<&str>).bind(none);
        let runs = workflow::lock_runs(&mut tx, lock, &operation).await?;
        let found = sqlx::query(&inner.queries.cancel_task)
            .bind(raw)
            .bind(now.as_millis())
            .fetch_optional(&mut *tx)
            .await
            .map_err(query_error(&operation))?;
        let Some(row) = found else {
            tx.commit().await.map_err(query_error(&operation))?;
            return Ok(false);
        };
        let (run, step): (Option<i64>, Option<i32>) = (
            row.try_get("run_id").map_err(|e| rows::bad_data(&format!("task {id}"), e.to_string()))?,
            row.try_get("step").map_err(|e| rows::bad_data(&format!("task {id}"), e.to_string()))?,
        );
        if let (Some(run), Some(step)) = (run, step) {
            let ended = vec![Ended { task: raw, run, step, end: StepEnd::Failed(CANCELLED.to_owned()) }];
            workflow::advance::<C>(&mut tx, inner, runs, ended, None, now, &operation).await?;
        }
        tx.commit().await.map_err(query_error(&operation))?;
        Ok(true)
    }
}

/// Why a cancelled step failed its run.
const CANCELLED: &str = "the task was cancelled";

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
