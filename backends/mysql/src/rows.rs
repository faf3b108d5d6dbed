//! Reading rows back, checking every value: a row that another program (or a
//! newer errand) wrote in a shape this version does not understand becomes an
//! error naming the row, never a panic. The runtime's shared readers
//! (`errand_runtime::backend::stored`) do the checking; [`Stored`] is how
//! they read a [`MySqlRow`].

use errand_runtime::backend::stored::{self, StoredRow};
use errand_runtime::{BackendError, Error, TaskId};
use sqlx::mysql::MySqlRow;
use sqlx::{Column, MySql, Row, Type, TypeInfo};

use crate::NAME;

/// A row read back, for the runtime's readers ([`StoredRow`]).
#[derive(Debug)]
pub(crate) struct Stored(pub(crate) MySqlRow);

/// Wraps every row of a result set.
pub(crate) fn stored(rows: Vec<MySqlRow>) -> Vec<Stored> {
    rows.into_iter().map(Stored).collect()
}

impl StoredRow for Stored {
    /// Reads `TINYINT` to `BIGINT` columns (signed) as `i64`.
    fn int(&self, column: &str) -> Result<Option<i64>, String> {
        self.0.try_get::<Option<i64>, _>(column).map_err(|e| e.to_string())
    }

    /// Reads text columns. The schema's columns have a binary collation
    /// (`utf8mb4_bin`: names compare byte for byte), which the protocol
    /// flags as binary and sqlx then refuses as a `String`: their bytes are
    /// read and checked as UTF-8 instead. Integer and other non-text columns
    /// are refused.
    fn text(&self, column: &str) -> Result<Option<String>, String> {
        let col = self.0.try_column(column).map_err(|e| e.to_string())?;
        let type_info = col.type_info();
        if !(<String as Type<MySql>>::compatible(type_info) || <Vec<u8> as Type<MySql>>::compatible(type_info)) {
            return Err(format!("a column of type {}, not text", type_info.name()));
        }
        let bytes: Option<Vec<u8>> = self.0.try_get_unchecked(col.ordinal()).map_err(|e| e.to_string())?;
        bytes.map(|b| String::from_utf8(b).map_err(|e| format!("not UTF-8: {e}"))).transpose()
    }

    fn bytes(&self, column: &str) -> Result<Option<Vec<u8>>, String> {
        self.0.try_get(column).map_err(|e| e.to_string())
    }
}

/// An error about stored data: `what` names the row (e.g. "task 42").
pub(crate) fn bad_data(what: &str, problem: impl Into<String>) -> Error {
    stored::bad_data(NAME, what, problem)
}

/// A failed statement of `operation`.
pub(crate) fn query_error(operation: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| Error::Backend(BackendError::new(NAME, operation, e))
}

/// Whether InnoDB gave up the statement to break a deadlock (1213) or after
/// a lock wait timeout (1205): it was rolled back, and may simply run again.
pub(crate) fn is_deadlock(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(e) => {
            e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().is_some_and(|e| matches!(e.number(), 1205 | 1213))
        }
        _ => false,
    }
}

/// How many times a claim or an ack runs again after a deadlock.
pub(crate) const DEADLOCK_RETRIES: usize = 3;

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

/// An integer column that may be NULL, from a row `what` names.
pub(crate) fn opt_int(row: &Stored, column: &str, what: &str) -> Result<Option<i64>, Error> {
    row.int(column).map_err(|problem| bad_data(what, format!("column `{column}`: {problem}")))
}

/// A text column that must be there, from a row `what` names.
pub(crate) fn text(row: &Stored, column: &str, what: &str) -> Result<String, Error> {
    match row.text(column) {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(bad_data(what, format!("column `{column}` is NULL"))),
        Err(problem) => Err(bad_data(what, format!("column `{column}`: {problem}"))),
    }
}

/// Logs the acks that changed nothing: their tasks were rescued, released or
/// cancelled meanwhile, or the ack was already applied (its reply was lost).
pub(crate) fn log_ignored(worker: &errand_runtime::backend::WorkerRegistration, sent: usize, applied: u64) {
    let sent = sent as u64;
    if applied != sent {
        tracing::debug!(
            worker = %worker.id,
            ignored = sent.saturating_sub(applied),
            "mysql: ignored the acks of tasks no longer running for this worker"
        );
    }
}
