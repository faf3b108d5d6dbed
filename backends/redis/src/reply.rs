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

/// The fields a task listing reads, in order.
pub(crate) const INFO_FIELDS: [&str; 13] = ["j", "s", "a", "m", "pr", "r", "c", "f", "u", "e", "w", "p", "o"];

/// A stored task's fields, as listed by [`INFO_FIELDS`].
///
/// # Errors
///
/// When a field is missing or malformed: the error names the task.
pub(crate) fn task_info(id: TaskId, queue: &str, fields: Vec<Value>) -> Result<TaskInfo, Error> {
    let bad = |field: &str| -> Error {
        BackendError::new(
            "redis",
            format!("read task {id} of queue `{queue}`"),
            format!("the stored field `{field}` is missing or malformed"),
        )
        .into()
    };
    let mut fields = fields.into_iter();
    let mut next = || fields.next().unwrap_or(Value::Nil);
    let job = string(next()).ok_or_else(|| bad("j"))?;
    let state: TaskState = string(next()).and_then(|s| s.parse().ok()).ok_or_else(|| bad("s"))?;
    let attempt = int(&next()).and_then(|n| u32::try_from(n).ok()).ok_or_else(|| bad("a"))?;
    let max_attempts = int(&next()).and_then(|n| u32::try_from(n).ok()).ok_or_else(|| bad("m"))?;
    let priority = int(&next()).and_then(|n| i16::try_from(n).ok()).ok_or_else(|| bad("pr"))?;
    let run_at = int(&next()).map(Timestamp).ok_or_else(|| bad("r"))?;
    let created_at = int(&next()).map(Timestamp).ok_or_else(|| bad("c"))?;
    let finished_at = int(&next()).map(Timestamp);
    let unique_key = string(next());
    let last_error = string(next());
    let worker = string(next()).filter(|_| state == TaskState::Running);
    let payload = bytes(next()).ok_or_else(|| bad("p"))?;
    let result = bytes(next()).filter(|_| state == TaskState::Done);
    Ok(TaskInfo {
        id,
        job,
        queue: queue.to_owned(),
        state,
        attempt,
        max_attempts,
        priority,
        run_at,
        created_at,
        finished_at: finished_at.filter(|_| !state.is_live()),
        unique_key,
        last_error,
        worker,
        payload,
        result,
    })
}
