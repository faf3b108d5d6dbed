//! Workers' upkeep: heartbeats, orphan rescue, graceful release, cancelled
//! running tasks, and unserved jobs. Liveness is judged by the server's
//! clock: heartbeats record its time (in `workers` and `served_jobs`), and
//! rescue and the unserved checks compare with it, so the clocks of the
//! workers' hosts do not matter for it. Retention is not done here (see the
//! `retention` module): rescue stays one quick statement.
//!
//! `unserved` and `bury_unserved` get `since` as a time by this handle's
//! clock ([`Tuning::clock`](errand_runtime::Tuning)). It is turned into an
//! age first, `tuning.clock.now() - since`, and the statements ask whether
//! a beat was recorded within that age of the statement's arrival, by the
//! server's clock (`statement_timestamp()`): a host whose clock is off by a
//! minute asks the same question as one whose clock is right (up to the
//! time the statement takes to reach the server).

use std::time::Duration;

use errand_runtime::backend::stored::read_unserved;
use errand_runtime::backend::{Unserved, WorkerRegistration};
use errand_runtime::workflow::plan::StepEnd;
use errand_runtime::{Codec, Error, TaskId, Timestamp};
use sqlx::Row;

use crate::rows::{self, query_error, wrong_reply};
use crate::{Inner, NAME, PostgresBackend, claim, workflow};

/// [`Backend::heartbeat`](errand_runtime::Backend::heartbeat), which also
/// records that the worker's job is served on its queue (`served_jobs`, one
/// statement); also puts back what the worker's failed claims may have
/// taken.
pub(crate) async fn heartbeat(inner: &Inner, worker: &WorkerRegistration) -> Result<(), Error> {
    claim::release_doubtful_claims(inner, worker).await;
    sqlx::query(&inner.queries.heartbeat)
        .bind(&*worker.id)
        .bind(&*worker.queue)
        .bind(worker.job)
        .bind(i32::try_from(worker.concurrency).unwrap_or(i32::MAX))
        .bind(worker.started_at.as_millis())
        .execute(&inner.pool)
        .await
        .map_err(query_error(format!("record a heartbeat of worker `{}` on queue `{}`", worker.id, worker.queue)))?;
    Ok(())
}

/// [`Backend::rescue_orphans`](errand_runtime::Backend::rescue_orphans):
/// one statement (`rescue.sql`), and, when workflow steps were lost on their
/// last attempt, a transaction that sends them dead and fails their runs
/// (see the `workflow` module).
pub(crate) async fn rescue_orphans<C: Codec>(backend: &PostgresBackend<C>) -> Result<u64, Error> {
    let inner = &*backend.inner;
    let now = inner.now();
    let operation = || format!("rescue orphaned tasks in schema `{}`", inner.schema);
    let orphan_after = millis(inner.tuning.orphan_after);
    let row = sqlx::query(&inner.queries.rescue)
        .bind(now.as_millis())
        .bind(orphan_after)
        .bind(&inner.channel)
        .fetch_one(&inner.pool)
        .await
        .map_err(query_error(operation()))?;
    let mut rescued = count(&row, 0, operation)?;
    if count(&row, 2, operation)? > 0 {
        rescued += rescue_steps::<C>(inner, now, orphan_after).await?;
    }
    Ok(rescued)
}

/// Sends the workflow steps lost on their last attempt dead, failing their
/// runs in the same transaction (`run_lock_orphans.sql`, `rescue_steps.sql`).
async fn rescue_steps<C: Codec>(inner: &Inner, now: Timestamp, orphan_after: i64) -> Result<u64, Error> {
    let operation = format!("rescue the orphaned workflow steps of schema `{}`", inner.schema);
    let mut tx = inner.pool.begin().await.map_err(query_error(&operation))?;
    let lock = sqlx::query(&inner.queries.run_lock_orphans).bind(orphan_after);
    let runs = workflow::lock_runs(&mut tx, lock, &operation).await?;
    let found = sqlx::query(&inner.queries.rescue_steps)
        .bind(now.as_millis())
        .bind(orphan_after)
        .fetch_all(&mut *tx)
        .await
        .map_err(query_error(&operation))?;
    let ended = workflow::ended_steps(&found, "a rescued workflow step", |row| {
        let error: String = row.try_get("last_error").map_err(|e| wrong_reply(&operation, e.to_string()))?;
        Ok(Some(StepEnd::Failed(error)))
    })?;
    workflow::advance::<C>(&mut tx, inner, runs, ended, None, now, &operation).await?;
    tx.commit().await.map_err(query_error(&operation))?;
    let rescued = found.len() as u64;
    tracing::info!(rescued, "postgres: workflow steps lost on their last attempt went dead, failing their runs");
    Ok(rescued)
}

/// `d` in milliseconds, for SQL.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// [`Backend::release`](errand_runtime::Backend::release).
pub(crate) async fn release(inner: &Inner, worker: &WorkerRegistration) -> Result<u64, Error> {
    let operation = || format!("release the tasks of worker `{}` on queue `{}`", worker.id, worker.queue);
    let row = sqlx::query(&inner.queries.release)
        .bind(&*worker.id)
        .bind(&inner.channel)
        .fetch_one(&inner.pool)
        .await
        .map_err(query_error(operation()))?;
    count(&row, 0, operation)
}

/// The count in column `index` of a reply.
fn count(row: &sqlx::postgres::PgRow, index: usize, operation: impl Fn() -> String) -> Result<u64, Error> {
    let n: i64 = row.try_get(index).map_err(|e| wrong_reply(operation(), format!("the count of tasks: {e}")))?;
    u64::try_from(n).map_err(|_| wrong_reply(operation(), format!("a negative count of tasks, {n}")))
}

/// [`Backend::cancelled_tasks`](errand_runtime::Backend::cancelled_tasks).
pub(crate) async fn cancelled_tasks(inner: &Inner, worker: &WorkerRegistration) -> Result<Vec<TaskId>, Error> {
    let ids: Vec<i64> = sqlx::query_scalar(&inner.queries.cancelled_tasks)
        .bind(&*worker.id)
        .fetch_all(&inner.pool)
        .await
        .map_err(query_error(format!("read the cancelled tasks of worker `{}`", worker.id)))?;
    ids.into_iter().map(rows::task_id).collect()
}

/// How long before this handle's clock's now `since` is, in ms, for the
/// statements that compare it with the server's clock (see the module docs).
/// A `since` in the future is an age of 0: only a beat from now on counts.
fn age(inner: &Inner, since: Timestamp) -> i64 {
    inner.now().as_millis().saturating_sub(since.as_millis()).max(0)
}

/// [`Backend::unserved`](errand_runtime::Backend::unserved): one statement
/// (`unserved.sql`).
pub(crate) async fn unserved(inner: &Inner, queue: &str, since: Timestamp) -> Result<Vec<Unserved>, Error> {
    let found = sqlx::query(&inner.queries.unserved)
        .bind(queue)
        .bind(age(inner, since))
        .fetch_all(&inner.pool)
        .await
        .map_err(query_error(format!("look for unserved jobs on queue `{queue}`")))?;
    read_unserved(NAME, &rows::stored(found), &[], queue)
}

/// [`Backend::bury_unserved`](errand_runtime::Backend::bury_unserved): one
/// transaction that locks the job's `served_jobs` row and checks that no
/// worker served the job since `since` (`served_check.sql`; a heartbeat of
/// the job waits for the lock, so none can slip in between), then locks the
/// runs of the workflow steps among the tasks, buries the tasks and fails
/// those runs.
pub(crate) async fn bury_unserved<C: Codec>(
    backend: &PostgresBackend<C>,
    queue: &str,
    job: &str,
    due_before: Timestamp,
    since: Timestamp,
    reason: &str,
) -> Result<u64, Error> {
    let inner = &*backend.inner;
    let operation = format!("bury the unserved tasks of job `{job}` on queue `{queue}`");
    let now = inner.now();
    let mut tx = inner.pool.begin().await.map_err(query_error(&operation))?;
    let served: bool = sqlx::query_scalar(&inner.queries.served_check)
        .bind(queue)
        .bind(job)
        .bind(age(inner, since))
        .fetch_one(&mut *tx)
        .await
        .map_err(query_error(&operation))?;
    if served {
        tx.rollback().await.map_err(query_error(&operation))?;
        return Ok(0);
    }
    let lock = sqlx::query(&inner.queries.run_lock_waiting).bind(queue).bind(job).bind(due_before.as_millis());
    let runs = workflow::lock_runs(&mut tx, lock, &operation).await?;
    let found = sqlx::query(&inner.queries.bury_unserved)
        .bind(queue)
        .bind(job)
        .bind(due_before.as_millis())
        .bind(reason)
        .bind(now.as_millis())
        .fetch_all(&mut *tx)
        .await
        .map_err(query_error(&operation))?;
    let (first, steps) = found.split_first().ok_or_else(|| wrong_reply(&operation, "no count came back"))?;
    let buried: i64 = first.try_get("n").map_err(|e| wrong_reply(&operation, format!("the count of tasks: {e}")))?;
    let buried = u64::try_from(buried).map_err(|_| wrong_reply(&operation, format!("a negative count, {buried}")))?;
    let ended =
        workflow::ended_steps(steps, "a buried workflow step", |_| Ok(Some(StepEnd::Failed(reason.to_owned()))))?;
    workflow::advance::<C>(&mut tx, inner, runs, ended, None, now, &operation).await?;
    tx.commit().await.map_err(query_error(&operation))?;
    Ok(buried)
}
