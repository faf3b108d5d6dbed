//! Reading rows back, checking every value: a row that another program (or a
//! newer errand) wrote in a shape this version does not understand becomes an
//! error naming the row, never a panic. The runtime's shared readers
//! (`errand_runtime::backend::stored`) do the checking; [`Stored`] is how
//! they read a [`PgRow`].

use errand_runtime::backend::stored::{self, StoredRow};
use errand_runtime::{BackendError, Error, TaskId};
use sqlx::postgres::PgRow;
use sqlx::{Column, Postgres, Row, Type};

use crate::NAME;

/// A row read back, for the runtime's readers ([`StoredRow`]).
#[derive(Debug)]
pub(crate) struct Stored(pub(crate) PgRow);

/// Wraps every row of a result set.
pub(crate) fn stored(rows: Vec<PgRow>) -> Vec<Stored> {
    // The same layout: the vector's allocation is reused.
    rows.into_iter().map(Stored).collect()
}

impl StoredRow for Stored {
    /// Reads `smallint`, `integer` and `bigint` columns by their declared
    /// type (no allocation unless it fails).
    fn int(&self, column: &str) -> Result<Option<i64>, String> {
        let col = self.0.try_column(column).map_err(|e| e.to_string())?;
        let (index, type_info) = (col.ordinal(), col.type_info());
        let value = if <i64 as Type<Postgres>>::compatible(type_info) {
            self.0.try_get::<Option<i64>, _>(index)
        } else if <i32 as Type<Postgres>>::compatible(type_info) {
            self.0.try_get::<Option<i32>, _>(index).map(|v| v.map(i64::from))
        } else if <i16 as Type<Postgres>>::compatible(type_info) {
            self.0.try_get::<Option<i16>, _>(index).map(|v| v.map(i64::from))
        } else {
            return Err(format!("a column of type {type_info}, not an integer"));
        };
        value.map_err(|e| e.to_string())
    }

    fn text(&self, column: &str) -> Result<Option<String>, String> {
        self.0.try_get(column).map_err(|e| e.to_string())
    }

    fn bytes(&self, column: &str) -> Result<Option<Vec<u8>>, String> {
        self.0.try_get(column).map_err(|e| e.to_string())
    }
}

/// An error about stored data: `what` names the row (e.g. "task 42").
pub(crate) fn bad_data(what: &str, problem: impl Into<String>) -> Error {
    stored::bad_data(NAME, what, problem)
}

/// A failed query.
pub(crate) fn query_error(operation: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| Error::Backend(BackendError::new(NAME, operation, e))
}

/// A reply of the server that is not what `operation` expects.
pub(crate) fn wrong_reply(operation: impl Into<String>, problem: impl Into<String>) -> Error {
    Error::Backend(BackendError::new(NAME, operation, problem.into()))
}

/// A task id read back from storage.
pub(crate) fn task_id(id: i64) -> Result<TaskId, Error> {
    stored::task_id(NAME, id)
}

/// An integer column that must be there, from a row `what` names.
pub(crate) fn int(row: &Stored, column: &str, what: &str) -> Result<i64, Error> {
    match row.int(column) {
        Ok(Some(n)) => Ok(n),
        Ok(None) => Err(bad_data(what, format!("column `{column}` is NULL"))),
        Err(problem) => Err(bad_data(what, format!("column `{column}`: {problem}"))),
    }
}

/// A text column that must be there, from a row `what` names.
pub(crate) fn text(row: &Stored, column: &str, what: &str) -> Result<String, Error> {
    match row.text(column) {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(bad_data(what, format!("column `{column}` is NULL"))),
        Err(problem) => Err(bad_data(what, format!("column `{column}`: {problem}"))),
    }
}

/// A text column that may be NULL, from a row `what` names.
pub(crate) fn opt_text(row: &Stored, column: &str, what: &str) -> Result<Option<String>, Error> {
    row.text(column).map_err(|problem| bad_data(what, format!("column `{column}`: {problem}")))
}

/// The trace context to store for a task or run: `trace` as it is, unless
/// it cannot be one the runtime made, being longer than [`MAX_TRACE_LEN`](errand_runtime::backend::MAX_TRACE_LEN) or
/// holding a NUL byte (which a `text` column refuses): a context is only a
/// hint for tracing, so it is dropped rather than fail the enqueue.
pub(crate) fn stored_trace(trace: Option<&String>) -> Option<&str> {
    trace.map(String::as_str).filter(|t| t.len() <= errand_runtime::backend::MAX_TRACE_LEN && !t.contains('\0'))
}
