//! Progress reports: a worker's batch of the latest [`Progress`] of its
//! running tasks is one statement (`progress.sql`), each row found by
//! primary key and guarded by `state = 'running' AND worker = <reporting
//! worker>`, as an ack is. A claim clears the columns (`claim.sql`), so each
//! attempt starts from none; `Expose::task` and `tasks` read them back.

use errand_runtime::backend::WorkerRegistration;
use errand_runtime::{Error, Progress, TaskId};

use crate::Inner;
use crate::rows::{DEADLOCK_RETRIES, is_deadlock, query_error};
use crate::sql::progress_json;

/// [`Backend::record_progress`](errand_runtime::Backend::record_progress).
pub(crate) async fn record(
    inner: &Inner,
    worker: &WorkerRegistration,
    updates: &[(TaskId, Progress)],
) -> Result<(), Error> {
    if updates.is_empty() {
        return Ok(());
    }
    let operation = || {
        format!("record the progress of {} task(s) of job `{}` on queue `{}`", updates.len(), worker.job, worker.queue)
    };
    let json = progress_json(updates);
    let mut tries = 0;
    loop {
        let done = sqlx::query(&inner.queries.progress).bind(&json).bind(&*worker.id).execute(&inner.pool).await;
        match done {
            Ok(_) => return Ok(()),
            // Rolled back to break a deadlock with a claim or an ack: nothing
            // was written.
            Err(error) if is_deadlock(&error) && tries < DEADLOCK_RETRIES => tries += 1,
            Err(error) => return Err(query_error(operation())(error)),
        }
    }
}
