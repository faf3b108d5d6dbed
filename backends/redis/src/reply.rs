//! Reading script replies and stored fields.

use errand_runtime::{BackendError, Error, TaskId, TaskInfo, TaskState, Timestamp};
use redis::Value;

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

/// A reply of an unexpected shape.
pub(crate) fn unexpected(operation: impl Into<String>, value: &Value) -> Error {
    BackendError::new("redis", operation, format!("unexpected reply from Redis: {value:?}")).into()
}

/// A stored task, as the list script returns it: its record, its state
/// value (nil for a task never claimed), its last error and, for a running
/// task, its worker.
///
/// # Errors
///
/// When the record or the state value is missing or malformed: the error
/// names the task and what is wrong.
pub(crate) fn task_info(
    id: TaskId,
    queue: &str,
    record: Value,
    state: Value,
    error: Value,
    worker: Value,
) -> Result<TaskInfo, Error> {
    let bad = |detail: String| -> Error {
        BackendError::new("redis", format!("read task {id} of queue `{queue}`"), detail).into()
    };
    let record = bytes(record).ok_or_else(|| bad("its record is missing".to_owned()))?;
    let record = crate::record::read(&record).map_err(bad)?;
    let state_value = bytes(state);
    let state = match &state_value {
        Some(value) => crate::record::state(value).map_err(bad)?,
        None => crate::record::WAITING,
    };
    Ok(TaskInfo {
        id,
        job: record.job.to_owned(),
        queue: queue.to_owned(),
        state: state.state,
        attempt: state.attempt,
        max_attempts: record.max_attempts,
        priority: record.priority,
        run_at: Timestamp(state.run_at.unwrap_or(record.run_at)),
        created_at: Timestamp(record.created),
        finished_at: state.finished.map(Timestamp).filter(|_| !state.state.is_live()),
        unique_key: record.unique_key.map(str::to_owned),
        last_error: string(error),
        worker: string(worker).filter(|_| state.state == TaskState::Running),
        payload: record.payload.to_vec(),
        result: state.output.map(<[u8]>::to_vec).filter(|_| state.state == TaskState::Done),
    })
}
