//! `impl Backend for SqliteBackend`: push, claim, ack, heartbeat, rescue, release.

use std::sync::PoisonError;
use std::time::Duration;

use errand_runtime::{
    Ack, Backend, Claimed, Codec, Error, NewTask, Outcome, TaskId, Timestamp, Unserved, WakeSignal, WorkerRegistration,
};
use sqlx::{Connection, Row, SqliteConnection};

use crate::encode::{JsonRows, payload_batches, push_batches, uniform};
use crate::rows::{self, query_error};
use crate::{NAME, SqliteBackend, insert_one, sql};

impl<C: Codec> Backend for SqliteBackend<C> {
    type Codec = C;
    type Waiter = WakeSignal;

    fn name(&self) -> &'static str {
        NAME
    }

    async fn push(&self, tasks: Vec<NewTask>) -> Result<Vec<TaskId>, Error> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let now = Timestamp::now();
        let operation = || match tasks.as_slice() {
            [task] => format!("enqueue a task of job `{}` on queue `{}`", task.job, task.queue),
            _ => format!("enqueue {} tasks", tasks.len()),
        };
        let ids = if tasks.iter().any(|t| t.unique_key.is_some()) {
            // Row by row, so each task sees the ones before it.
            let mut tx = self.inner.writer.begin_with("BEGIN IMMEDIATE").await.map_err(query_error(operation()))?;
            let mut ids = Vec::with_capacity(tasks.len());
            for task in &tasks {
                ids.push(insert_one(&mut tx, task, now).await?);
            }
            tx.commit().await.map_err(query_error(operation()))?;
            ids
        } else {
            // The usual bulk enqueue (one job, same options) sends payloads only.
            let shared = uniform(&tasks).then(|| &tasks[0]);
            let batches = if shared.is_some() { payload_batches(&tasks) } else { push_batches(&tasks) };
            let mut conn = self.inner.writer.acquire().await.map_err(query_error(operation()))?;
            if let [batch] = batches.as_slice() {
                insert_batch(&mut conn, batch, shared, now).await.map_err(query_error(operation()))?
            } else {
                let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(query_error(operation()))?;
                let mut ids = Vec::with_capacity(tasks.len());
                for batch in &batches {
                    ids.extend(insert_batch(&mut tx, batch, shared, now).await.map_err(query_error(operation()))?);
                }
                tx.commit().await.map_err(query_error(operation()))?;
                ids
            }
        };
        if ids.len() != tasks.len() {
            return Err(rows::bad_data(
                "the ids of new tasks",
                format!("{} tasks were inserted but {} ids came back", tasks.len(), ids.len()),
            ));
        }
        let mut notified: Vec<&str> = Vec::new();
        for task in &tasks {
            if !notified.contains(&task.queue.as_str()) {
                notified.push(&task.queue);
                self.inner.notifier.notify(&task.queue);
            }
        }
        Ok(ids)
    }

    async fn claim(&self, worker: &WorkerRegistration, max: usize) -> Result<Claimed, Error> {
        if max == 0 {
            return Ok(Claimed::default());
        }
        let operation = || format!("claim tasks of job `{}` from queue `{}`", worker.job, worker.queue);
        let now = Timestamp::now();
        let rows = sqlx::query(sql::CLAIM)
            .bind(&*worker.id)
            .bind(now.as_millis())
            .bind(&*worker.queue)
            .bind(worker.job)
            .bind(i64::try_from(max).unwrap_or(i64::MAX))
            .fetch_all(&self.inner.writer)
            .await
            .map_err(query_error(operation()))?;

        let mut tasks = Vec::with_capacity(rows.len());
        let mut unreadable = Vec::new();
        for row in &rows {
            match rows::claimed_task(row) {
                Ok(task) => {
                    if let Ok(Some(_run)) = row.try_get::<Option<i64>, _>(6) {
                        self.inner.claimed_steps.lock().unwrap_or_else(PoisonError::into_inner).insert(task.id.0);
                    }
                    tasks.push(task);
                }
                Err((Some(id), error)) => unreadable.push((id, error)),
                Err((None, error)) => return Err(error),
            }
        }
        // RETURNING comes in no particular order.
        tasks.sort_unstable_by(|a, b| b.priority.cmp(&a.priority).then(a.run_at.cmp(&b.run_at)).then(a.id.cmp(&b.id)));
        if !unreadable.is_empty() {
            self.bury(worker, unreadable, now).await?;
        }

        let next_due = if tasks.is_empty() {
            sqlx::query_scalar::<_, Option<i64>>(sql::NEXT_DUE)
                .bind(&*worker.queue)
                .bind(worker.job)
                .fetch_one(&self.inner.reader)
                .await
                .map_err(query_error(operation()))?
                .map(Timestamp)
        } else {
            None
        };
        Ok(Claimed { tasks, next_due })
    }

    async fn ack(&self, worker: &WorkerRegistration, acks: &[Ack]) -> Result<(), Error> {
        if acks.is_empty() {
            return Ok(());
        }
        // Workflow steps finishing (done or dead) advance their run in this
        // same transaction; everything else is batched by outcome.
        let mut steps: Vec<&Ack> = Vec::new();
        {
            let mut claimed = self.inner.claimed_steps.lock().unwrap_or_else(PoisonError::into_inner);
            if !claimed.is_empty() {
                for ack in acks {
                    if matches!(ack.outcome, Outcome::Done { .. } | Outcome::Dead { .. }) && claimed.remove(&ack.id.0) {
                        steps.push(ack);
                    }
                }
            }
        }
        let mut done = JsonRows::with_capacity(acks.len() * 24);
        let mut retry = JsonRows::with_capacity(0);
        let mut dead = JsonRows::with_capacity(0);
        let mut snooze = JsonRows::with_capacity(0);
        for ack in acks {
            if !steps.is_empty() && steps.iter().any(|s| s.id == ack.id) {
                continue;
            }
            // An id beyond i64 was never handed out by this backend.
            let Ok(id) = i64::try_from(ack.id.0) else { continue };
            let _ = match &ack.outcome {
                Outcome::Done { result } => done.row().int(id).hex(result),
                Outcome::Retry { at, error } => retry.row().int(id).int(at.as_millis()).str(error),
                Outcome::Dead { error } => dead.row().int(id).str(error),
                Outcome::Snooze { at } => snooze.row().int(id).int(at.as_millis()),
            };
        }
        let wake = !retry.is_empty() || !snooze.is_empty();
        let batches: Vec<(&str, String)> =
            [(sql::ACK_DONE, done), (sql::ACK_RETRY, retry), (sql::ACK_DEAD, dead), (sql::ACK_SNOOZE, snooze)]
                .into_iter()
                .filter(|(_, rows)| !rows.is_empty())
                .map(|(sql, rows)| (sql, rows.finish()))
                .collect();

        let operation = || format!("acknowledge {} task(s) of worker `{}`", acks.len(), worker.id);
        let now = Timestamp::now();
        let mut conn = self.inner.writer.acquire().await.map_err(query_error(operation()))?;
        let mut woken: Vec<String> = Vec::new();
        let updated = if let ([(statement, json)], true) = (batches.as_slice(), steps.is_empty()) {
            ack_batch(&mut conn, statement, json, now, &worker.id).await.map_err(query_error(operation()))?
        } else {
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(query_error(operation()))?;
            let mut updated = 0;
            for (statement, json) in &batches {
                updated +=
                    ack_batch(&mut tx, statement, json, now, &worker.id).await.map_err(query_error(operation()))?;
            }
            if !steps.is_empty() {
                woken = crate::workflow::ack_steps::<C>(&mut tx, &worker.id, &steps, now).await?;
                updated += steps.len() as u64;
            }
            tx.commit().await.map_err(query_error(operation()))?;
            updated
        };
        for queue in &woken {
            self.inner.notifier.notify(queue);
        }
        if updated < acks.len() as u64 {
            // Some runs were cancelled (or rescued) meanwhile: the cancelled
            // ones are over now, so stop reporting them to this worker.
            sqlx::query(sql::FORGET_CANCELLED)
                .bind(&*worker.id)
                .execute(&mut *conn)
                .await
                .map_err(query_error(operation()))?;
        }
        drop(conn);
        if updated < acks.len() as u64 {
            tracing::debug!(
                worker = %worker.id,
                ignored = acks.len() as u64 - updated,
                "ignored acks of tasks no longer running for this worker (rescued, released or cancelled)"
            );
        }
        if wake {
            self.inner.notifier.notify(&worker.queue);
        }
        Ok(())
    }

    async fn heartbeat(&self, worker: &WorkerRegistration) -> Result<(), Error> {
        sqlx::query(sql::HEARTBEAT)
            .bind(&*worker.id)
            .bind(&*worker.queue)
            .bind(worker.job)
            .bind(i64::try_from(worker.concurrency).unwrap_or(i64::MAX))
            .bind(worker.started_at.as_millis())
            .bind(Timestamp::now().as_millis())
            .execute(&self.inner.writer)
            .await
            .map_err(query_error(format!("record a heartbeat of worker `{}`", worker.id)))?;
        Ok(())
    }

    async fn rescue_orphans(&self) -> Result<u64, Error> {
        let operation = || "rescue the tasks of lost workers".to_owned();
        let now = Timestamp::now();
        let cutoff = now.sub(self.orphan_after);
        let mut tx = self.inner.writer.begin_with("BEGIN IMMEDIATE").await.map_err(query_error(operation()))?;
        let rescued = sqlx::query(sql::RESCUE)
            .bind(now.as_millis())
            .bind(cutoff.as_millis())
            .fetch_all(&mut *tx)
            .await
            .map_err(query_error(operation()))?;
        sqlx::query(sql::FORGET_LOST_CANCELLED)
            .bind(cutoff.as_millis())
            .execute(&mut *tx)
            .await
            .map_err(query_error(operation()))?;
        sqlx::query(sql::DELETE_STALE_WORKERS)
            .bind(cutoff.as_millis())
            .execute(&mut *tx)
            .await
            .map_err(query_error(operation()))?;
        tx.commit().await.map_err(query_error(operation()))?;

        let mut notified: Vec<String> = Vec::new();
        for row in &rescued {
            let (Ok(queue), Ok(state)) = (row.try_get::<String, _>(0), row.try_get::<String, _>(1)) else { continue };
            if state == "pending" && !notified.contains(&queue) {
                self.inner.notifier.notify(&queue);
                notified.push(queue);
            }
        }
        if !rescued.is_empty() {
            tracing::info!(tasks = rescued.len(), "rescued the running tasks of workers that stopped heartbeating");
        }
        Ok(rescued.len() as u64)
    }

    async fn release(&self, worker: &WorkerRegistration) -> Result<u64, Error> {
        let operation = || format!("release the tasks of worker `{}`", worker.id);
        let mut tx = self.inner.writer.begin_with("BEGIN IMMEDIATE").await.map_err(query_error(operation()))?;
        let released = sqlx::query(sql::RELEASE)
            .bind(&*worker.id)
            .execute(&mut *tx)
            .await
            .map_err(query_error(operation()))?
            .rows_affected();
        sqlx::query(sql::FORGET_CANCELLED)
            .bind(&*worker.id)
            .execute(&mut *tx)
            .await
            .map_err(query_error(operation()))?;
        sqlx::query(sql::DELETE_WORKER).bind(&*worker.id).execute(&mut *tx).await.map_err(query_error(operation()))?;
        tx.commit().await.map_err(query_error(operation()))?;
        if released > 0 {
            self.inner.notifier.notify(&worker.queue);
        }
        Ok(released)
    }

    async fn cancelled_tasks(&self, worker: &WorkerRegistration) -> Result<Vec<TaskId>, Error> {
        let ids: Vec<i64> = sqlx::query_scalar(sql::CANCELLED_TASKS)
            .bind(&*worker.id)
            .fetch_all(&self.inner.reader)
            .await
            .map_err(query_error(format!("list the cancelled runs of worker `{}`", worker.id)))?;
        ids.into_iter().map(rows::task_id).collect()
    }

    async fn unserved(&self, queue: &str, served: &[&'static str]) -> Result<Vec<Unserved>, Error> {
        let rows = sqlx::query(sql::UNSERVED)
            .bind(queue)
            .fetch_all(&self.inner.reader)
            .await
            .map_err(query_error(format!("count the waiting tasks of queue `{queue}`")))?;
        let what = format!("the waiting tasks of queue `{queue}`");
        let mut found = Vec::new();
        for row in &rows {
            let job: String = row.try_get(0).map_err(|e| rows::bad_data(&what, e.to_string()))?;
            if served.contains(&job.as_str()) {
                continue;
            }
            let count: i64 = row.try_get(1).map_err(|e| rows::bad_data(&what, e.to_string()))?;
            let oldest: i64 = row.try_get(2).map_err(|e| rows::bad_data(&what, e.to_string()))?;
            let count = u64::try_from(count).map_err(|_| rows::bad_data(&what, format!("negative count {count}")))?;
            found.push(Unserved { job, count, oldest: Timestamp(oldest) });
        }
        Ok(found)
    }

    async fn bury_unserved(&self, queue: &str, job: &str, due_before: Timestamp, reason: &str) -> Result<u64, Error> {
        let buried = sqlx::query(sql::BURY_UNSERVED)
            .bind(queue)
            .bind(job)
            .bind(due_before.as_millis())
            .bind(reason)
            .bind(Timestamp::now().as_millis())
            .execute(&self.inner.writer)
            .await
            .map_err(query_error(format!("bury the unserved tasks of job `{job}` on queue `{queue}`")))?
            .rows_affected();
        Ok(buried)
    }

    fn waiter(&self, queue: &str) -> WakeSignal {
        self.inner.notifier.subscribe(queue)
    }

    fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    fn orphan_after(&self) -> Duration {
        self.orphan_after
    }
}

impl<C: Codec> SqliteBackend<C> {
    /// Sends claimed tasks whose rows cannot be read to `dead`, with the reason.
    async fn bury(
        &self,
        worker: &WorkerRegistration,
        tasks: Vec<(TaskId, Error)>,
        now: Timestamp,
    ) -> Result<(), Error> {
        for (id, error) in tasks {
            tracing::warn!(task = %id, %error, "a claimed task's stored row cannot be read; it goes dead");
            let Ok(raw) = i64::try_from(id.0) else { continue };
            sqlx::query(sql::MARK_DEAD)
                .bind(raw)
                .bind(error.to_string())
                .bind(now.as_millis())
                .bind(&*worker.id)
                .execute(&self.inner.writer)
                .await
                .map_err(query_error(format!("mark unreadable task {id} dead")))?;
        }
        Ok(())
    }
}

/// Runs `sql/push.sql` for one JSON batch — or `sql/push_uniform.sql` when
/// every task shares `shared`'s settings; returns the ids in input order.
async fn insert_batch(
    conn: &mut SqliteConnection,
    json: &str,
    shared: Option<&NewTask>,
    now: Timestamp,
) -> Result<Vec<TaskId>, sqlx::Error> {
    let query = match shared {
        Some(t) => sqlx::query_scalar(sql::PUSH_UNIFORM)
            .bind(json)
            .bind(t.queue.as_str())
            .bind(t.job)
            .bind(i64::from(t.max_attempts))
            .bind(t.priority)
            .bind(t.run_at.as_millis())
            .bind(now.as_millis()),
        None => sqlx::query_scalar(sql::PUSH).bind(json).bind(now.as_millis()),
    };
    let mut ids: Vec<i64> = query.fetch_all(&mut *conn).await?;
    // Rows are inserted in array order and get ascending ids; RETURNING
    // yields them in no particular order.
    ids.sort_unstable();
    Ok(ids.into_iter().filter_map(|id| u64::try_from(id).ok().map(TaskId)).collect())
}

/// Runs one `sql/ack_*.sql` statement; returns how many tasks it updated.
async fn ack_batch(
    conn: &mut SqliteConnection,
    statement: &str,
    json: &str,
    now: Timestamp,
    worker: &str,
) -> Result<u64, sqlx::Error> {
    let query = sqlx::query(statement).bind(json);
    // done and dead record when they finished; retry and snooze do not.
    let query = if statement == sql::ACK_DONE || statement == sql::ACK_DEAD {
        query.bind(now.as_millis()).bind(worker)
    } else {
        query.bind(worker)
    };
    Ok(query.execute(&mut *conn).await?.rows_affected())
}
