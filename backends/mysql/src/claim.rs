//! Claiming: two statements per claim (`claim.sql`: an `UPDATE` over a
//! `SELECT … FOR UPDATE SKIP LOCKED` that marks the tasks running under the
//! claim's token and clears their progress, then the read-back of those
//! rows), a third when it claimed nothing (`earliest.sql`: when the next
//! waiting task is due). Both look the queue up in `paused_queues` (one
//! primary-key lookup): a paused queue gives no tasks and no next due time.
//! And what a claim that went wrong leaves behind: tasks taken by a claim
//! whose reply was lost (put back through their claim token, see the `doubt`
//! module) and claimed rows that cannot be read (sent `dead` with the read
//! error).

use errand_runtime::backend::stored;
use errand_runtime::backend::{Ack, Begun, Claimed, Outcome, WorkerRegistration};
use errand_runtime::{Codec, Error, TaskId, Timestamp};

use crate::rows::{DEADLOCK_RETRIES, Stored, is_deadlock, query_error};
use crate::sql::{json, json_ints, raw_id};
use crate::{Inner, MysqlBackend, NAME, doubt, poll, workflow};

/// [`Backend::claim`](errand_runtime::Backend::claim).
pub(crate) async fn claim<C: Codec>(
    backend: &MysqlBackend<C>,
    worker: &WorkerRegistration,
    max: usize,
) -> Result<Claimed, Error> {
    let inner = &*backend.inner;
    if max == 0 {
        return Ok(Claimed::default());
    }
    inner.poll.serve(&worker.queue, worker.job);
    let operation = || format!("claim tasks of job `{}` from queue `{}`", worker.job, worker.queue);
    release_doubtful_claims(inner, worker).await;
    // Whether this worker waits once the claim is over (see the kit's `Handoffs`).
    let mut claiming = match inner.handoffs.claim_begins(&worker.id, &worker.queue, worker.job, max) {
        Begun::Handed(tasks) => return Ok(Claimed { tasks, next_due: None }),
        Begun::Query(claiming) => claiming,
    };
    let now = inner.now();
    let token = inner.doubts.token();
    let [mark, read] = &inner.queries.claim;
    let mut tries = 0;
    let marked = loop {
        let marked = sqlx::query(mark)
            .bind(&*worker.queue)
            .bind(worker.job)
            .bind(now.as_millis())
            .bind(&*worker.queue)
            .bind(i64::try_from(max).unwrap_or(i64::MAX))
            .bind(&*worker.id)
            .bind(token)
            .bind(now.as_millis())
            .execute(&inner.pool)
            .await;
        match marked {
            Ok(marked) => break marked,
            // Rolled back to break a deadlock: nothing was claimed.
            Err(error) if is_deadlock(&error) && tries < DEADLOCK_RETRIES => tries += 1,
            Err(error) => {
                if doubt::may_have_committed(&error) {
                    inner.doubts.record(&worker.id, token);
                }
                return Err(query_error(operation())(error));
            }
        }
    };
    if marked.rows_affected() == 0 {
        claiming.found_nothing();
        let next_due = poll::earliest(inner, &worker.queue, worker.job, now.as_millis()).await?;
        return Ok(Claimed { tasks: Vec::new(), next_due: next_due.map(Timestamp) });
    }
    // The claim committed: from here on, a failure puts its tasks back.
    let found = match sqlx::query(read).bind(&*worker.id).bind(token).fetch_all(&inner.pool).await {
        Ok(found) => found,
        Err(error) => {
            inner.doubts.record(&worker.id, token);
            return Err(query_error(operation())(error));
        }
    };
    let mut claimed = Claimed { tasks: Vec::with_capacity(found.len()), next_due: None };
    let mut unreadable = Vec::new();
    for row in found {
        match stored::read_task(NAME, &Stored(row)) {
            Ok(task) => claimed.tasks.push(task),
            Err((Some(id), error)) => unreadable.push((id, error)),
            Err((None, error)) => {
                // Its rows cannot be delivered: put them all back rather
                // than leave them running.
                inner.doubts.record(&worker.id, token);
                return Err(error);
            }
        }
    }
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
    let released = sqlx::query(&inner.queries.release_claims)
        .bind(json_ints(tokens.iter().copied()))
        .bind(&*worker.id)
        .execute(&inner.pool)
        .await;
    match released {
        Ok(done) => {
            if done.rows_affected() > 0 {
                tracing::info!(
                    worker = %worker.id, released = done.rows_affected(),
                    "mysql: put back tasks taken by claims whose reply was lost"
                );
                inner.notifier.notify(&worker.queue);
            }
            inner.doubts.released(&worker.id, &tokens);
        }
        Err(error) => {
            tracing::debug!(worker = %worker.id, %error, "mysql: could not yet put back the tasks of failed claims");
        }
    }
}

/// Sends claimed tasks whose rows could not be read to `dead`, with why. A
/// worker of workflow steps acks them `dead`, which fails their runs.
async fn bury<C: Codec>(
    backend: &MysqlBackend<C>,
    worker: &WorkerRegistration,
    tasks: Vec<(TaskId, Error)>,
    now: Timestamp,
) -> Result<(), Error> {
    let inner = &*backend.inner;
    for (id, error) in &tasks {
        tracing::error!(%id, %error, "mysql: a claimed task could not be read; it goes dead");
    }
    if worker.workflow_steps {
        let acks: Vec<Ack> =
            tasks.iter().map(|(id, error)| Ack { id: *id, outcome: Outcome::dead(error.to_string()) }).collect();
        return workflow::ack_steps(backend, worker, &acks).await;
    }
    let rows: Vec<(i64, &str, String)> =
        tasks.iter().map(|(id, e)| (raw_id(id.0), &*worker.id, Outcome::clean_error(&e.to_string()))).collect();
    sqlx::query(&inner.queries.mark_dead).bind(json(&rows)).bind(now.as_millis()).execute(&inner.pool).await.map_err(
        query_error(format!(
            "send {} unreadable task(s) of job `{}` on queue `{}` to dead",
            rows.len(),
            worker.job,
            worker.queue
        )),
    )?;
    Ok(())
}
