//! [`Backend::record_progress`](errand_runtime::Backend::record_progress):
//! one statement (`record_progress.sql`) per batch of reports, guarded by
//! "still running for this worker". The claim clears a task's progress
//! (`claim.sql`), so each attempt starts from none.

use std::collections::HashMap;

use errand_runtime::backend::WorkerRegistration;
use errand_runtime::{Error, Progress, TaskId};

use crate::Inner;
use crate::rows::query_error;

/// Writes the latest of `updates` for each task, in one statement.
pub(crate) async fn record_progress(
    inner: &Inner,
    worker: &WorkerRegistration,
    updates: &[(TaskId, Progress)],
) -> Result<(), Error> {
    if updates.is_empty() {
        return Ok(());
    }
    // The last report of each task wins: an UPDATE … FROM joining one row to
    // several would apply an arbitrary one of them.
    let mut latest: HashMap<TaskId, &Progress> = HashMap::with_capacity(updates.len());
    for (id, progress) in updates {
        latest.insert(*id, progress);
    }
    let mut ids = Vec::with_capacity(latest.len());
    let mut percents = Vec::with_capacity(latest.len());
    let mut messages = Vec::with_capacity(latest.len());
    for (id, progress) in latest {
        // An id beyond i64 names no stored task: nothing to update.
        let Ok(id) = i64::try_from(id.0) else { continue };
        ids.push(id);
        percents.push(i16::from(progress.percent.min(100)));
        messages.push(progress.message.as_str());
    }
    sqlx::query(&inner.queries.record_progress)
        .bind(&*worker.id)
        .bind(&ids)
        .bind(&percents)
        .bind(&messages)
        .execute(&inner.pool)
        .await
        .map_err(query_error(format!(
            "record the progress of {} task(s) of worker `{}` on queue `{}`",
            ids.len(),
            worker.id,
            worker.queue
        )))?;
    Ok(())
}
