//! Workers' upkeep: heartbeats, orphan rescue, graceful release, cancelled
//! running tasks, unserved jobs, and retention. Liveness is judged by the
//! server's clock: heartbeats record its time (`NOW(3)`), and rescue
//! compares with it, so the clocks of the workers' hosts do not matter for
//! it.

use std::time::Duration;

use errand_runtime::backend::stored::read_unserved;
use errand_runtime::backend::{Unserved, WorkerRegistration};
use errand_runtime::workflow::plan::StepEnd;
use errand_runtime::{Codec, Error, TaskId, Timestamp};

use crate::rows::{self, Stored, query_error};
use crate::sql::{json, json_ints};
use crate::{Inner, MysqlBackend, NAME, claim, workflow};

/// Done tasks looked at per queue by one retention step.
const PURGE_BATCH: i64 = 2_000;
/// Retention steps (per queue) and run batches per `purge_expired` call at most.
const PURGE_ROUNDS: usize = 10;

/// `d` in milliseconds, for SQL.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// [`Backend::heartbeat`](errand_runtime::Backend::heartbeat); also puts
/// back what the worker's failed claims may have taken.
pub(crate) async fn heartbeat(inner: &Inner, worker: &WorkerRegistration) -> Result<(), Error> {
    claim::release_doubtful_claims(inner, worker).await;
    let operation = || format!("record a heartbeat of worker `{}` on queue `{}`", worker.id, worker.queue);
    let [beat, served] = &inner.queries.heartbeat;
    sqlx::query(beat)
        .bind(&*worker.id)
        .bind(&*worker.queue)
        .bind(worker.job)
        .bind(i32::try_from(worker.concurrency).unwrap_or(i32::MAX))
        .bind(worker.started_at.as_millis())
        .execute(&inner.pool)
        .await
        .map_err(query_error(operation()))?;
    sqlx::query(served)
        .bind(&*worker.queue)
        .bind(worker.job)
        .execute(&inner.pool)
        .await
        .map_err(query_error(operation()))?;
    Ok(())
}

/// One task held by a worker that is not seen any more (`orphans.sql`).
struct Orphan {
    id: i64,
    worker: String,
    running: bool,
    /// A workflow step on its last attempt: it goes dead with its run.
    last_step: bool,
}

/// [`Backend::rescue_orphans`](errand_runtime::Backend::rescue_orphans):
/// a read without locks of the tasks held by workers not seen for
/// `orphan_after` (`orphans.sql`); when there are some, one statement puts
/// them back (`rescue.sql`), and one transaction sends the workflow steps
/// on their last attempt dead and fails their runs (see the `workflow`
/// module). Workers not seen are forgotten (`gone.sql`).
pub(crate) async fn rescue_orphans<C: Codec>(backend: &MysqlBackend<C>) -> Result<u64, Error> {
    let inner = &*backend.inner;
    let now = inner.now();
    let operation = || format!("rescue orphaned tasks of `{}`", inner.location);
    let orphan_after = millis(inner.tuning.orphan_after);
    let found = sqlx::query(&inner.queries.orphans)
        .bind(orphan_after)
        .fetch_all(&inner.pool)
        .await
        .map_err(query_error(operation()))?;
    let what = "a task of a lost worker";
    let mut orphans = Vec::with_capacity(found.len());
    for row in rows::stored(found) {
        let running = rows::text(&row, "state", what)? == "running";
        let last_step = rows::opt_int(&row, "run_id", what)?.is_some()
            && rows::int(&row, "attempt", what)? >= rows::int(&row, "max_attempts", what)?;
        orphans.push(Orphan {
            id: rows::int(&row, "id", what)?,
            worker: rows::text(&row, "worker", what)?,
            running,
            last_step,
        });
    }
    let mut rescued = 0;
    let plain: Vec<(i64, &str)> =
        orphans.iter().filter(|o| o.running && !o.last_step).map(|o| (o.id, o.worker.as_str())).collect();
    if !plain.is_empty() {
        let done = sqlx::query(&inner.queries.rescue)
            .bind(json(&plain))
            .bind(now.as_millis())
            .bind(now.as_millis())
            .bind(orphan_after)
            .execute(&inner.pool)
            .await
            .map_err(query_error(operation()))?;
        rescued += done.rows_affected();
        // They are pending again (or dead): let idle workers look.
        inner.notifier.notify_all();
    }
    let steps: Vec<(i64, &str)> =
        orphans.iter().filter(|o| o.running && o.last_step).map(|o| (o.id, o.worker.as_str())).collect();
    if !steps.is_empty() {
        rescued += rescue_steps::<C>(inner, &steps, now, orphan_after).await?;
    }
    let cancelled: Vec<(i64, &str)> =
        orphans.iter().filter(|o| !o.running).map(|o| (o.id, o.worker.as_str())).collect();
    if !cancelled.is_empty() {
        sqlx::query(&inner.queries.forget)
            .bind(json(&cancelled))
            .bind(orphan_after)
            .execute(&inner.pool)
            .await
            .map_err(query_error(operation()))?;
    }
    sqlx::query(&inner.queries.gone).bind(orphan_after).execute(&inner.pool).await.map_err(query_error(operation()))?;
    Ok(rescued)
}

/// Sends the workflow steps lost on their last attempt dead, failing their
/// runs in the same transaction (`run_lock.sql`, `rescue_steps.sql`,
/// `mark_dead.sql`).
async fn rescue_steps<C: Codec>(
    inner: &Inner,
    steps: &[(i64, &str)],
    now: Timestamp,
    orphan_after: i64,
) -> Result<u64, Error> {
    let operation = format!("rescue the orphaned workflow steps of `{}`", inner.location);
    let ids = json(steps);
    let mut tx = inner.pool.begin().await.map_err(query_error(&operation))?;
    // The runs, read without locking, then locked in id order.
    let found = sqlx::query(&inner.queries.task_runs)
        .bind(json_ints(steps.iter().map(|(id, _)| *id)))
        .fetch_all(&mut *tx)
        .await
        .map_err(query_error(&operation))?;
    let runs = workflow::lock_runs(
        &mut tx,
        inner,
        workflow::run_ids(&rows::stored(found), "the runs of lost steps")?,
        &operation,
    )
    .await?;
    let found = sqlx::query(&inner.queries.rescue_steps)
        .bind(&ids)
        .bind(orphan_after)
        .fetch_all(&mut *tx)
        .await
        .map_err(query_error(&operation))?;
    let found = rows::stored(found);
    let what = "a lost workflow step";
    let mut dead: Vec<(i64, String, String)> = Vec::with_capacity(found.len());
    for row in &found {
        let error = format!(
            "worker `{}` stopped heartbeating during the last attempt ({} of {})",
            rows::text(row, "worker", what)?,
            rows::int(row, "attempt", what)?,
            rows::int(row, "max_attempts", what)?
        );
        dead.push((rows::int(row, "id", what)?, rows::text(row, "worker", what)?, error));
    }
    if dead.is_empty() {
        tx.commit().await.map_err(query_error(&operation))?;
        return Ok(0);
    }
    sqlx::query(&inner.queries.mark_dead)
        .bind(json(&dead))
        .bind(now.as_millis())
        .execute(&mut *tx)
        .await
        .map_err(query_error(&operation))?;
    let errors: std::collections::HashMap<i64, &str> = dead.iter().map(|(id, _, e)| (*id, e.as_str())).collect();
    let ended = workflow::ended_steps(&found, what, |task, _| {
        Ok(errors.get(&task).map(|error| StepEnd::Failed((*error).to_owned())))
    })?;
    let queues = workflow::advance::<C>(&mut tx, inner, runs, ended, None, now, &operation).await?;
    tx.commit().await.map_err(query_error(&operation))?;
    for queue in &queues {
        inner.notifier.notify(queue);
    }
    let rescued = dead.len() as u64;
    tracing::info!(rescued, "mysql: workflow steps lost on their last attempt went dead, failing their runs");
    Ok(rescued)
}

/// [`Backend::release`](errand_runtime::Backend::release).
pub(crate) async fn release(inner: &Inner, worker: &WorkerRegistration) -> Result<u64, Error> {
    let operation = || format!("release the tasks of worker `{}` on queue `{}`", worker.id, worker.queue);
    let [tasks, cancelled, registration] = &inner.queries.release;
    // Nothing more is handed to it; what was is `running` for it, put back below.
    inner.handoffs.forget(&worker.id);
    let released = sqlx::query(tasks)
        .bind(&*worker.id)
        .execute(&inner.pool)
        .await
        .map_err(query_error(operation()))?
        .rows_affected();
    sqlx::query(cancelled).bind(&*worker.id).execute(&inner.pool).await.map_err(query_error(operation()))?;
    sqlx::query(registration).bind(&*worker.id).execute(&inner.pool).await.map_err(query_error(operation()))?;
    if released > 0 {
        inner.notifier.notify(&worker.queue);
    }
    Ok(released)
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

/// How long ago `since` was by this handle's clock, in ms (at least 0): the
/// statements compare the server's record of when jobs were served with the
/// server's clock minus this age, so that the hosts' clocks need not agree.
fn age(inner: &Inner, since: Timestamp) -> i64 {
    inner.now().as_millis().saturating_sub(since.as_millis()).max(0)
}

/// [`Backend::unserved`](errand_runtime::Backend::unserved).
pub(crate) async fn unserved(inner: &Inner, queue: &str, since: Timestamp) -> Result<Vec<Unserved>, Error> {
    let found = sqlx::query(&inner.queries.unserved)
        .bind(queue)
        .bind(queue)
        .bind(queue)
        .bind(queue)
        .bind(age(inner, since))
        .fetch_all(&inner.pool)
        .await
        .map_err(query_error(format!("look for unserved jobs on queue `{queue}`")))?;
    read_unserved(NAME, &rows::stored(found), &[], queue)
}

/// [`Backend::bury_unserved`](errand_runtime::Backend::bury_unserved): one
/// transaction that locks the job's `served_jobs` row (a heartbeat of the
/// job waits until it ends), checks that the job is still unserved, locks
/// the runs of the workflow steps among the tasks, then buries the tasks and
/// fails those runs.
pub(crate) async fn bury_unserved<C: Codec>(
    backend: &MysqlBackend<C>,
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
    let [make_row, lock_row] = &inner.queries.served_lock;
    sqlx::query(make_row).bind(queue).bind(job).execute(&mut *tx).await.map_err(query_error(&operation))?;
    let served: i64 = sqlx::query_scalar(lock_row)
        .bind(age(inner, since))
        .bind(queue)
        .bind(job)
        .fetch_one(&mut *tx)
        .await
        .map_err(query_error(&operation))?;
    if served != 0 {
        tx.commit().await.map_err(query_error(&operation))?;
        return Ok(0);
    }
    let found = sqlx::query(&inner.queries.waiting_runs)
        .bind(queue)
        .bind(job)
        .bind(due_before.as_millis())
        .fetch_all(&mut *tx)
        .await
        .map_err(query_error(&operation))?;
    let runs = workflow::lock_runs(
        &mut tx,
        inner,
        workflow::run_ids(&rows::stored(found), "the runs of buried steps")?,
        &operation,
    )
    .await?;
    let steps = sqlx::query(&inner.queries.bury_steps)
        .bind(queue)
        .bind(job)
        .bind(due_before.as_millis())
        .fetch_all(&mut *tx)
        .await
        .map_err(query_error(&operation))?;
    let buried = sqlx::query(&inner.queries.bury_unserved)
        .bind(reason)
        .bind(now.as_millis())
        .bind(queue)
        .bind(job)
        .bind(due_before.as_millis())
        .execute(&mut *tx)
        .await
        .map_err(query_error(&operation))?
        .rows_affected();
    let ended = workflow::ended_steps(&rows::stored(steps), "a buried workflow step", |_, _| {
        Ok(Some(StepEnd::Failed(reason.to_owned())))
    })?;
    let queues = workflow::advance::<C>(&mut tx, inner, runs, ended, None, now, &operation).await?;
    tx.commit().await.map_err(query_error(&operation))?;
    for queue in &queues {
        inner.notifier.notify(queue);
    }
    Ok(buried)
}

/// [`Backend::purge_expired`](errand_runtime::Backend::purge_expired): per
/// queue with done tasks (a loose index scan), up to [`PURGE_ROUNDS`] steps
/// that each look at the [`PURGE_BATCH`] oldest done tasks by id and delete
/// those past the retention; then the unique keys whose newest task is
/// older than the retention and no longer live; then the finished runs past
/// it, with their steps' rows. Every statement is bounded, so a call is
/// cheap whatever the tables hold.
pub(crate) async fn purge_expired(inner: &Inner) -> Result<u64, Error> {
    if inner.tuning.retention == Duration::MAX {
        return Ok(0);
    }
    let cutoff = inner.now().sub(inner.tuning.retention).as_millis();
    let operation = || format!("delete finished work of `{}` past its retention", inner.location);
    let queues: Vec<Stored> = rows::stored(
        sqlx::query(&inner.queries.purge_queues).fetch_all(&inner.pool).await.map_err(query_error(operation()))?,
    );
    let mut deleted = 0;
    for row in &queues {
        let queue = rows::text(row, "queue", "the queues with done tasks")?;
        for _ in 0..PURGE_ROUNDS {
            let ids: Vec<i64> = sqlx::query_scalar(&inner.queries.purge_tasks)
                .bind(&queue)
                .bind(PURGE_BATCH)
                .bind(cutoff)
                .fetch_all(&inner.pool)
                .await
                .map_err(query_error(operation()))?;
            if ids.is_empty() {
                break;
            }
            let full = ids.len() as i64 == PURGE_BATCH;
            deleted += sqlx::query(&inner.queries.purge_delete)
                .bind(json_ints(ids))
                .execute(&inner.pool)
                .await
                .map_err(query_error(operation()))?
                .rows_affected();
            if !full {
                break;
            }
        }
    }
    for _ in 0..PURGE_ROUNDS {
        let gone = sqlx::query(&inner.queries.purge_keys)
            .bind(cutoff)
            .bind(PURGE_BATCH)
            .execute(&inner.pool)
            .await
            .map_err(query_error(operation()))?
            .rows_affected();
        if gone < PURGE_BATCH as u64 {
            break;
        }
    }
    let [steps, runs] = &inner.queries.purge_run_rows;
    for _ in 0..PURGE_ROUNDS {
        let ids: Vec<i64> = sqlx::query_scalar(&inner.queries.purge_runs)
            .bind(cutoff)
            .bind(PURGE_BATCH)
            .fetch_all(&inner.pool)
            .await
            .map_err(query_error(operation()))?;
        if ids.is_empty() {
            break;
        }
        let full = ids.len() as i64 == PURGE_BATCH;
        let ids = json_ints(ids);
        let mut tx = inner.pool.begin().await.map_err(query_error(operation()))?;
        sqlx::query(steps).bind(&ids).execute(&mut *tx).await.map_err(query_error(operation()))?;
        sqlx::query(runs).bind(&ids).execute(&mut *tx).await.map_err(query_error(operation()))?;
        tx.commit().await.map_err(query_error(operation()))?;
        if !full {
            break;
        }
    }
    Ok(deleted)
}
