//! Retention: deleting `done` tasks and finished workflow runs (with their
//! `run_steps` rows) once [`Tuning::retention`](errand_runtime::Tuning) has
//! passed since they finished, in bounded batches. `dead` and `cancelled`
//! tasks are kept.
//!
//! The runtime's housekeeping calls
//! [`Backend::purge_expired`](errand_runtime::Backend::purge_expired) about
//! every 10 s per worker; [`purge_expired`] does the work at most once per
//! period per backend value (10 s, or the retention if that is shorter) and
//! for about a second at most, so the calls of many workers stay cheap and
//! none holds up its housekeeping. Orphan rescue does no retention work.
//! [`cleanup`] is the immediate form ([`PostgresBackend::cleanup`]).
//!
//! [`PostgresBackend::cleanup`]: crate::PostgresBackend::cleanup

use std::time::{Duration, Instant};

use errand_runtime::backend::Every;
use errand_runtime::{Error, Timestamp};

use crate::Inner;
use crate::rows::{query_error, wrong_reply};

/// `done` tasks looked at per queue by one statement (`cleanup.sql`).
const TASK_BATCH: i64 = 5_000;
/// Finished runs deleted by one statement (`purge_runs.sql`).
const RUN_BATCH: i64 = 1_000;
/// Statements of each kind per call at most.
const ROUNDS: usize = 20;
/// The longest pause between two purges of a backend value.
const PURGE_EVERY: Duration = Duration::from_secs(10);
/// How long one [`purge_expired`] keeps starting new batches.
const PURGE_BUDGET: Duration = Duration::from_secs(1);

/// The pace of [`purge_expired`] for `retention`: every 10 s, or every
/// `retention` if that is shorter (so work finished `retention` ago is gone
/// about `retention` later, not 10 s later, in tests of short retentions).
pub(crate) fn pace(retention: Duration) -> Every {
    Every::new(PURGE_EVERY.min(retention))
}

/// [`Backend::purge_expired`](errand_runtime::Backend::purge_expired): a
/// [`cleanup`] of at most a second's worth of batches, if one is due for
/// this backend value; 0 otherwise, and always with
/// `retention = Duration::MAX`.
pub(crate) async fn purge_expired(inner: &Inner) -> Result<u64, Error> {
    if inner.tuning.retention == Duration::MAX || !inner.purge_due.due(inner.now()) {
        return Ok(0);
    }
    let deleted = purge(inner, Some(Instant::now() + PURGE_BUDGET)).await?;
    if deleted > 0 {
        tracing::debug!(deleted, "postgres: deleted done tasks past their retention");
    }
    Ok(deleted)
}

/// Deletes `done` tasks and finished runs past the retention, now, in
/// bounded batches; returns how many tasks.
pub(crate) async fn cleanup(inner: &Inner) -> Result<u64, Error> {
    purge(inner, None).await
}

/// Up to [`ROUNDS`] batches of each kind, until one comes back short or
/// `deadline` passes.
async fn purge(inner: &Inner, deadline: Option<Instant>) -> Result<u64, Error> {
    let cutoff = inner.now().sub(inner.tuning.retention);
    let out_of_time = || deadline.is_some_and(|d| Instant::now() >= d);
    let mut tasks = 0;
    for _ in 0..ROUNDS {
        let deleted = delete_tasks(inner, cutoff).await?;
        tasks += deleted;
        if deleted < TASK_BATCH.unsigned_abs() || out_of_time() {
            break;
        }
    }
    for _ in 0..ROUNDS {
        if out_of_time() {
            break;
        }
        let deleted = delete_runs(inner, cutoff).await?;
        if deleted < RUN_BATCH.unsigned_abs() {
            break;
        }
    }
    Ok(tasks)
}

/// One batch of `cleanup.sql`: `done` tasks finished before `cutoff`.
async fn delete_tasks(inner: &Inner, cutoff: Timestamp) -> Result<u64, Error> {
    let deleted = sqlx::query(&inner.queries.cleanup)
        .bind(cutoff.as_millis())
        .bind(TASK_BATCH)
        .execute(&inner.pool)
        .await
        .map_err(query_error(format!("delete done tasks of schema `{}` past their retention", inner.schema)))?;
    Ok(deleted.rows_affected())
}

/// One batch of `purge_runs.sql`: runs finished before `cutoff`.
async fn delete_runs(inner: &Inner, cutoff: Timestamp) -> Result<u64, Error> {
    let operation = || format!("delete finished workflow runs of schema `{}` past their retention", inner.schema);
    let deleted: i64 = sqlx::query_scalar(&inner.queries.purge_runs)
        .bind(cutoff.as_millis())
        .bind(RUN_BATCH)
        .fetch_one(&inner.pool)
        .await
        .map_err(query_error(operation()))?;
    u64::try_from(deleted).map_err(|_| wrong_reply(operation(), format!("a negative count of runs, {deleted}")))
}
