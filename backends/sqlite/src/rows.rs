//! Reading rows back: [`StoredRow`] for SQLite rows, so the runtime's shared
//! readers check every value (a row that another program or a newer errand
//! wrote in a shape this version does not understand becomes an error naming
//! the row, never a panic), and small helpers for ids and errors.

use errand_runtime::backend::stored::{self, StoredRow};
use errand_runtime::workflow::RunId;
use errand_runtime::{BackendError, Error, TaskId};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::NAME;

/// A SQLite row as the shared readers see it. (A newtype: neither the trait
/// nor `SqliteRow` is this crate's, so the trait cannot be implemented for
/// `SqliteRow` itself.)
pub(crate) struct Stored(pub(crate) SqliteRow);

impl StoredRow for Stored {
    fn int(&self, column: &str) -> Result<Option<i64>, String> {
        self.0.try_get(column).map_err(|e| e.to_string())
    }

    fn text(&self, column: &str) -> Result<Option<String>, String> {
        self.0.try_get(column).map_err(|e| e.to_string())
    }

    fn bytes(&self, column: &str) -> Result<Option<Vec<u8>>, String> {
        self.0.try_get(column).map_err(|e| e.to_string())
    }
}

/// Rows as [`Stored`] rows, for the readers that take a slice.
pub(crate) fn stored(rows: Vec<SqliteRow>) -> Vec<Stored> {
    rows.into_iter().map(Stored).collect()
}

/// An error about stored data: `what` names the row (e.g. "task 42").
pub(crate) fn bad_data(what: &str, problem: impl Into<String>) -> Error {
    stored::bad_data(NAME, what, problem)
}

/// A failed query.
pub(crate) fn query_error(operation: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| Error::Backend(BackendError::new(NAME, operation, e))
}

/// A store reply that is not what the statement promises.
pub(crate) fn wrong_reply(operation: impl Into<String>, problem: impl Into<String>) -> Error {
    Error::Backend(BackendError::new(NAME, operation, problem.into()))
}

/// A task id as stored. No id beyond `i64` exists, so the clamped value
/// matches nothing.
pub(crate) fn raw_id(id: TaskId) -> i64 {
    i64::try_from(id.0).unwrap_or(i64::MAX)
}

/// A run id as stored, clamped like [`raw_id`].
pub(crate) fn raw_run(id: RunId) -> i64 {
    i64::try_from(id.0).unwrap_or(i64::MAX)
}

/// A run id read back.
pub(crate) fn run_id(id: i64) -> Result<RunId, Error> {
    u64::try_from(id).map(RunId).map_err(|_| bad_data("a workflow run row", format!("negative run id {id}")))
}

/// A JSON array of integers, for `json_each(?)`.
pub(crate) fn json_ints(ids: impl IntoIterator<Item = i64>) -> String {
    let ids: Vec<String> = ids.into_iter().map(|id| id.to_string()).collect();
    format!("[{}]", ids.join(","))
}

/// A workflow step task's `(task id, run id, step)` from columns `id`,
/// `run_id` and `step` (the id as stored); `None` for a task that is no
/// workflow step.
pub(crate) fn step_of(row: &Stored) -> Result<Option<(i64, i64, u16)>, Error> {
    let what = || match row.int("id") {
        Ok(Some(id)) => format!("task {id}"),
        _ => "a task row".to_owned(),
    };
    let column = |name: &str| row.int(name).map_err(|e| bad_data(&what(), format!("column `{name}`: {e}")));
    let (Some(run), Some(step)) = (column("run_id")?, column("step")?) else { return Ok(None) };
    let task = column("id")?.ok_or_else(|| bad_data(&what(), "column `id` is NULL"))?;
    let step =
        u16::try_from(step).map_err(|_| bad_data(&what(), format!("column `step`: step {step} is out of range")))?;
    Ok(Some((task, run, step)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_clamp_and_json_lists_parse() {
        assert_eq!(raw_id(TaskId(u64::MAX)), i64::MAX);
        assert_eq!(raw_id(TaskId(7)), 7);
        assert_eq!(json_ints([3, -1, 20]), "[3,-1,20]");
        assert_eq!(json_ints([]), "[]");
        assert!(run_id(-4).is_err());
    }
}
