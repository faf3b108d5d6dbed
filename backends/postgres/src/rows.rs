//! Reading rows back, checking every value: a row that another program (or a
//! newer errand) wrote in a shape this version does not understand becomes an
//! error naming the task, never a panic.

use errand_runtime::stored;
use errand_runtime::{BackendError, Error, QueueCounts, Task, TaskId, TaskInfo, TaskState, Timestamp, WorkerInfo};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::NAME;

/// An error about stored data: `what` names the row (e.g. "task 42").
pub(crate) fn bad_data(what: &str, problem: impl Into<String>) -> Error {
    stored::bad_data(NAME, what, problem)
}

/// A failed query.
pub(crate) fn query_error(operation: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| Error::Backend(BackendError::new(NAME, operation, e))
}

fn get<'r, T>(row: &'r PgRow, column: &str, what: &str) -> Result<T, Error>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column).map_err(|e| bad_data(what, format!("column `{column}`: {e}")))
}

pub(crate) fn task_id(id: i64) -> Result<TaskId, Error> {
    u64::try_from(id).map(TaskId).map_err(|_| bad_data("a task row", format!("negative task id {id}")))
}

fn count(row: &PgRow, column: &str, what: &str) -> Result<u32, Error> {
    let n: i32 = get(row, column, what)?;
    stored::to_u32(NAME, i64::from(n), column, what)
}

fn state(row: &PgRow, what: &str) -> Result<TaskState, Error> {
    let state: String = get(row, "state", what)?;
    state.parse().map_err(|e: errand_runtime::UnknownState| bad_data(what, e.to_string()))
}

/// A row of claim.sql: a claimed task, or (id NULL) the next due time.
pub(crate) enum ClaimRow {
    Task(Task),
    NextDue(Option<Timestamp>),
}

/// Reads a row of claim.sql; an unreadable task comes back with its id.
pub(crate) fn claim_row(row: &PgRow) -> Result<ClaimRow, (Option<TaskId>, Error)> {
    let id: Option<i64> = get(row, "id", "a claimed task").map_err(|e| (None, e))?;
    let Some(id) = id else {
        let due: Option<i64> = get(row, "run_at", "the next due time").map_err(|e| (None, e))?;
        return Ok(ClaimRow::NextDue(due.map(Timestamp)));
    };
    let id = task_id(id).map_err(|e| (None, e))?;
    let what = format!("task {id}");
    let read = || -> Result<Task, Error> {
        Ok(Task {
            id,
            attempt: count(row, "attempt", &what)?,
            max_attempts: count(row, "max_attempts", &what)?,
            run_at: Timestamp(get(row, "run_at", &what)?),
            priority: get(row, "priority", &what)?,
            payload: get(row, "payload", &what)?,
        })
    };
    read().map(ClaimRow::Task).map_err(|e| (Some(id), e))
}

pub(crate) fn task_info(row: &PgRow) -> Result<TaskInfo, Error> {
    let id = task_id(get(row, "id", "a task row")?)?;
    let what = format!("task {id}");
    let what = what.as_str();
    Ok(TaskInfo {
        id,
        job: get(row, "job", what)?,
        queue: get(row, "queue", what)?,
        state: state(row, what)?,
        attempt: count(row, "attempt", what)?,
        max_attempts: count(row, "max_attempts", what)?,
        priority: get(row, "priority", what)?,
        run_at: Timestamp(get(row, "run_at", what)?),
        created_at: Timestamp(get(row, "created_at", what)?),
        finished_at: get::<Option<i64>>(row, "finished_at", what)?.map(Timestamp),
        unique_key: get(row, "unique_key", what)?,
        last_error: get(row, "last_error", what)?,
        worker: get(row, "worker", what)?,
        payload: get(row, "payload", what)?,
        result: get(row, "result", what)?,
    })
}

pub(crate) fn worker_info(row: &PgRow) -> Result<WorkerInfo, Error> {
    let id: String = get(row, "id", "a worker row")?;
    let what = format!("worker `{id}`");
    let what = what.as_str();
    Ok(WorkerInfo {
        queue: get(row, "queue", what)?,
        job: get(row, "job", what)?,
        concurrency: count(row, "concurrency", what)?,
        started_at: Timestamp(get(row, "started_at", what)?),
        last_seen: Timestamp(get(row, "last_seen", what)?),
        id,
    })
}

/// Folds `(queue, state, count)` rows into one [`QueueCounts`] per queue, sorted by queue.
pub(crate) fn counts(rows: &[PgRow]) -> Result<Vec<QueueCounts>, Error> {
    let mut counts = stored::CountsBuilder::new(NAME);
    for row in rows {
        let queue: String = row.try_get(0).map_err(|e| bad_data("task counts", e.to_string()))?;
        let what = format!("task counts of queue `{queue}`");
        let state: String = row.try_get(1).map_err(|e| bad_data(&what, e.to_string()))?;
        let n: i64 = row.try_get(2).map_err(|e| bad_data(&what, e.to_string()))?;
        counts.add(queue, &state, n)?;
    }
    Ok(counts.finish())
}
