//! Acknowledging: a batch of outcomes is one statement (`ack.sql`), each
//! row guarded by `state = 'running' AND worker = <acking worker>`. The
//! `done` and `dead` outcomes of a worker of workflow steps also advance
//! their runs: they go through the `workflow` module instead.

use errand_runtime::backend::{Ack, Outcome, WorkerRegistration};
use errand_runtime::{Codec, Error};

use crate::MysqlBackend;
use crate::rows::{self, DEADLOCK_RETRIES, is_deadlock, query_error};
use crate::sql::ack_json;

/// [`Backend::ack`](errand_runtime::Backend::ack).
pub(crate) async fn ack<C: Codec>(
    backend: &MysqlBackend<C>,
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
    let json = ack_json(acks, true);
    let mut tries = 0;
    let done = loop {
        let done = sqlx::query(&inner.queries.ack)
            .bind(&json)
            .bind(inner.now().as_millis())
            .bind(&*worker.id)
            .execute(&inner.pool)
            .await;
        match done {
            Ok(done) => break done,
            // Rolled back to break a deadlock: nothing was recorded.
            Err(error) if is_deadlock(&error) && tries < DEADLOCK_RETRIES => tries += 1,
            Err(error) => return Err(query_error(operation())(error)),
        }
    };
    rows::log_ignored(worker, acks.len(), done.rows_affected());
    if acks.iter().any(|a| matches!(a.outcome, Outcome::Retry { .. } | Outcome::Snooze { .. })) {
        // A task runs again later: let idle workers learn its due time.
        inner.notifier.notify(&worker.queue);
    }
    Ok(())
}
