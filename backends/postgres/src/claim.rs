//! Claiming: one statement (`claim.sql`) per claim, and what a claim that
//! went wrong leaves behind: tasks taken by a claim whose reply was lost
//! (put back through their claim token, see the `doubt` module) and claimed
//! rows that cannot be read (sent `dead` with the read error).

use errand_runtime::backend::stored::{self, StoredRow};
use errand_runtime::backend::{Ack, Claimed, Outcome, WorkerRegistration};
use errand_runtime::{Codec, Error, TaskId, Timestamp};

use crate::rows::{Stored, bad_data, query_error};
use crate::{Inner, NAME, PostgresBackend, doubt, workflow};

/// [`Backend::claim`](errand_runtime::Backend::claim).
pub(crate) async fn claim<C: Codec>(
    backend: &PostgresBackend<C>,
    worker: &WorkerRegistration,
    max: usize,
) -> Result<Claimed, Error> {
    let inner = &*backend.inner;
    if max == 0 {
        return Ok(Claimed::default());
    }
    let operation = || format!("claim tasks of job `{}` from queue `{}`", worker.job, worker.queue);
    release_doubtful_claims(inner, worker).await;
    let now = inner.now();
    let token = inner.doubts.token();
    let found = sqlx::query(&inner.queries.claim)
        .bind(&*worker.id)
        .bind(now.as_millis())
        .bind(&*worker.queue)
        .bind(worker.job)
        .bind(i64::try_from(max).unwrap_or(i64::MAX))
        .bind(token)
        .fetch_all(&inner.pool)
        .await
        .map_err(|error| {
            if doubt::may_have_committed(&error) {
                inner.doubts.record(&worker.id, token);
            }
            query_error(operation())(error)
        })?;

    let mut claimed = Claimed { tasks: Vec::with_capacity(found.len()), next_due: None };
    let mut unreadable = Vec::new();
    for row in found {
        let row = Stored(row);
        // The one row with no id carries the next due time.
        if let Ok(None) = row.int("id") {
            let due = row.int("run_at").map_err(|e| bad_data("the next due time", format!("column `run_at`: {e}")));
            match due {
                Ok(due) => claimed.next_due = due.map(Timestamp),
                Err(error) => {
                    inner.doubts.record(&worker.id, token);
                    return Err(error);
                }
            }
            continue;
        }
        match stored::read_task(NAME, &row) {
            Ok(task) => claimed.tasks.push(task),
            Err((Some(id), error)) => unreadable.push((id, error)),
            Err((None, error)) => {
                // The claim committed but its rows cannot be delivered:
                // put them all back rather than leave them running.
                inner.doubts.record(&worker.id, token);
                return Err(error);
            }
        }
    }
    // RETURNING comes in no particular order.
    claimed
        .tasks
        .sort_unstable_by(|a, b| b.priority.cmp(&a.priority).then(a.run_at.cmp(&b.run_at)).then(a.id.cmp(&b.id)));
    if !unreadable.is_empty()
        && let Err(error) = bury(backend, worker, unreadable, now).await
    {
        // Put back the whole claim; the next one buries them again.
        inner.doubts.record(&worker.id, token);
        return Err(error);
    }
    Ok(claimed)
}

/// Puts back what this worker's failed claims may have taken (see the
/// `doubt` module). A failure is only logged: the claim or heartbeat that
/// follows reports the outage, and the release is tried again.
pub(crate) async fn release_doubtful_claims(inner: &Inner, worker: &WorkerRegistration) {
    let tokens = inner.doubts.due(&worker.id);
    if tokens.is_empty() {
        return;
    }
    let released = sqlx::query_as::<_, (i64, i64)>(&inner.queries.release_claims)
        .bind(&*worker.id)
        .bind(&tokens)
        .bind(&inner.channel)
        .fetch_one(&inner.pool)
        .await;
    match released {
        Ok((released, _)) => {
            if released > 0 {
                tracing::info!(
                    worker = %worker.id, released,
                    "postgres: put back tasks taken by claims whose reply was lost"
                );
                inner.notifier.notify(&worker.queue);
            }
            inner.doubts.released(&worker.id, &tokens);
        }
        Err(error) => {
            tracing::debug!(worker = %worker.id, %error, "postgres: could not yet put back the tasks of failed claims");
        }
    }
}

/// Sends claimed tasks whose rows could not be read to `dead`, with why. A
/// worker of workflow steps acks them `dead`, which fails their runs.
async fn bury<C: Codec>(
    backend: &PostgresBackend<C>,
    worker: &WorkerRegistration,
    tasks: Vec<(TaskId, Error)>,
    now: Timestamp,
) -> Result<(), Error> {
    let inner = &*backend.inner;
    for (id, error) in &tasks {
        tracing::error!(%id, %error, "postgres: a claimed task could not be read; it goes dead");
    }
    if worker.workflow_steps {
        let acks: Vec<Ack> =
            tasks.iter().map(|(id, error)| Ack { id: *id, outcome: Outcome::dead(error.to_string()) }).collect();
        return workflow::ack_steps(backend, worker, &acks).await;
    }
    let ids: Vec<i64> = tasks.iter().map(|(id, _)| i64::try_from(id.0).unwrap_or(i64::MAX)).collect();
    let errors: Vec<String> = tasks.iter().map(|(_, e)| Outcome::clean_error(&e.to_string())).collect();
    sqlx::query(&inner.queries.mark_dead)
        .bind(&*worker.id)
        .bind(&ids)
        .bind(&errors)
        .bind(now.as_millis())
        .execute(&inner.pool)
        .await
        .map_err(query_error(format!(
            "send {} unreadable task(s) of job `{}` on queue `{}` to dead",
            ids.len(),
            worker.job,
            worker.queue
        )))?;
    Ok(())
}
