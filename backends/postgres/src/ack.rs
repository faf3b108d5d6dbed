//! Acknowledging: a batch of outcomes is one statement (`ack.sql`), each
//! update guarded by `state = 'running' AND worker = <acking worker>`. The
//! `done` and `dead` outcomes of a worker of workflow steps also advance
//! their runs: they go through the `workflow` module instead.

use errand_runtime::backend::{Ack, Outcome, WorkerRegistration};
use errand_runtime::{Codec, Error};
use sqlx::Row;

use crate::PostgresBackend;
use crate::rows::{query_error, wrong_reply};
use crate::sql::Outcomes;

/// [`Backend::ack`](errand_runtime::Backend::ack).
pub(crate) async fn ack<C: Codec>(
    backend: &PostgresBackend<C>,
    worker: &WorkerRegistration,
    acks: &[Ack],
) -> Result<(), Error> {
    if acks.is_empty() {
        return Ok(());
    }
    let ends_a_step = |ack: &Ack| matches!(ack.outcome, Outcome::Done { .. } | Outcome::Dead { .. });
    if worker.workflow_steps && acks.iter().any(ends_a_step) {
        return crate::workflow::ack_steps(backend, worker, acks).await;
    }
    let inner = &*backend.inner;
    let operation = || format!("record {} outcome(s) of job `{}` on queue `{}`", acks.len(), worker.job, worker.queue);
    let outcomes = Outcomes::new(acks);
    let row = outcomes
        .bind(sqlx::query(&inner.queries.ack), worker, inner.now())
        .fetch_one(&inner.pool)
        .await
        .map_err(query_error(operation()))?;
    let applied: i64 =
        row.try_get(0).map_err(|e| wrong_reply(operation(), format!("the count of changed tasks: {e}")))?;
    inner.finished(u64::try_from(applied).unwrap_or(0));
    log_ignored(worker, acks.len(), applied);
    if outcomes.requeues() {
        // A task runs again later: let idle workers learn its due time.
        inner.notifier.notify(&worker.queue);
    }
    Ok(())
}

/// Logs the acks that changed nothing: their tasks were rescued, released or
/// cancelled meanwhile, or the ack was already applied (its reply was lost).
fn log_ignored(worker: &WorkerRegistration, sent: usize, applied: i64) {
    let sent = i64::try_from(sent).unwrap_or(i64::MAX);
    if applied != sent {
        tracing::debug!(
            worker = %worker.id,
            ignored = sent - applied,
            "postgres: ignored the acks of tasks no longer running for this worker"
        );
    }
}
