//! Reading script replies and stored fields, and the errors of Redis calls.

use errand_runtime::backend::stored::bad_data;
use errand_runtime::{BackendError, Error, TaskId, TaskInfo, TaskState, Timestamp};
use redis::{RedisError, Value};

use crate::record;

/// The backend's name in messages.
pub(crate) const NAME: &str = "redis";

/// A failed Redis call while doing `operation`.
pub(crate) fn failed(operation: impl Into<String>, error: RedisError) -> Error {
    BackendError::new(NAME, operation, error).into()
}

/// A reply of an unexpected shape.
pub(crate) fn unexpected(operation: impl Into<String>, value: &Value) -> Error {
    BackendError::new(NAME, operation, format!("unexpected reply from Redis: {value:?}")).into()
}

/// A reply that is not what the script promises, described by `problem`.
pub(crate) fn malformed(operation: impl Into<String>, problem: impl Into<String>) -> Error {
    BackendError::new(NAME, operation, problem.into()).into()
}

/// An integer reply or an integer stored as a string.
pub(crate) fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        Value::Double(d) if d.fract() == 0.0 => Some(*d as i64),
        _ => None,
    }
}

/// A count returned by a script while doing `operation`: a non-negative
/// integer, else an error.
pub(crate) fn count(value: &Value, operation: &str) -> Result<u64, Error> {
    int(value).and_then(|n| u64::try_from(n).ok()).ok_or_else(|| unexpected(operation, value))
}

/// A count stored in field `field` of `what` (nil: none yet, 0): a
/// non-negative integer, else an error naming `what` and the field.
pub(crate) fn stored_count(value: &Value, what: &str, field: &str) -> Result<i64, Error> {
    match value {
        Value::Nil => Ok(0),
        other => int(other).ok_or_else(|| {
            let shown = bytes(other.clone()).map(|b| String::from_utf8_lossy(&b).into_owned());
            bad_data(NAME, what, format!("`{field}` is {}, not a count", shown.unwrap_or_else(|| format!("{other:?}"))))
        }),
    }
}

/// A string reply; `None` for nil.
pub(crate) fn bytes(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(s) => Some(s.into_bytes()),
        Value::Int(n) => Some(n.to_string().into_bytes()),
        _ => None,
    }
}

/// A UTF-8 string reply; `None` for nil (invalid UTF-8 is replaced).
pub(crate) fn string(value: Value) -> Option<String> {
    bytes(value).map(|b| String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// The elements of an array reply, or an error naming `operation`.
pub(crate) fn into_array(value: Value, operation: &str) -> Result<Vec<Value>, Error> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(unexpected(operation, &other)),
    }
}

/// The fields of a stored task, as the list script returns them.
pub(crate) struct StoredTask {
    /// Its record.
    pub(crate) record: Value,
    /// Its state value (nil for a task never claimed).
    pub(crate) state: Value,
    /// Its last error.
    pub(crate) error: Value,
    /// Its worker, for a running task.
    pub(crate) worker: Value,
    /// The latest progress of its current attempt (nil for none).
    pub(crate) progress: Value,
}

/// A stored task from its fields.
///
/// # Errors
///
/// When the record, the state value or the progress is missing or
/// malformed: the error names the task and what is wrong.
pub(crate) fn task_info(id: TaskId, queue: &str, task: StoredTask) -> Result<TaskInfo, Error> {
    let StoredTask { record: stored, state, error, worker, progress } = task;
    let bad = |detail: String| bad_data(NAME, &format!("task {id} of queue `{queue}`"), detail);
    let stored = bytes(stored).ok_or_else(|| bad("its record is missing".to_owned()))?;
    let stored = record::read(&stored).map_err(bad)?;
    let state_value = bytes(state);
    let state = match &state_value {
        Some(value) => record::state(value).map_err(bad)?,
        None => record::WAITING,
    };
    Ok(TaskInfo {
        id,
        job: stored.job.to_owned(),
        queue: queue.to_owned(),
        state: state.state,
        attempt: state.attempt,
        max_attempts: stored.max_attempts,
        priority: stored.priority,
        run_at: Timestamp(state.run_at.unwrap_or(stored.run_at)),
        created_at: Timestamp(stored.created),
        finished_at: state.finished.map(Timestamp).filter(|_| !state.state.is_live()),
        unique_key: stored.unique_key.map(str::to_owned),
        last_error: string(error),
        worker: string(worker).filter(|_| state.state == TaskState::Running),
        payload: stored.payload.to_vec(),
        result: state.output.map(<[u8]>::to_vec).filter(|_| state.state == TaskState::Done),
        progress: bytes(progress).map(|p| record::progress(&p)).transpose().map_err(bad)?,
    })
}
