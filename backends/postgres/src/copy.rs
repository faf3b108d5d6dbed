//! Bulk enqueue through `COPY … FROM STDIN (FORMAT binary)`.
//!
//! For a large batch without unique keys, `COPY` costs the server about two
//! thirds of `INSERT … SELECT FROM UNNEST(…)`: no arrays to take apart, no
//! per-row projection. `COPY` returns no ids, so they are taken from the
//! table's sequence first (one statement) and written explicitly: task `i`
//! of the batch gets the `i`-th smallest, so ids still ascend in input
//! order. Both statements run in the caller's transaction; the caller splits
//! big batches into chunks of one enqueue statement's size.

use errand_runtime::backend::NewTask;
use errand_runtime::{BackendError, Error, TaskId, Timestamp};
use sqlx::PgConnection;

use crate::NAME;
use crate::rows::{self, query_error, wrong_reply};
use crate::sql::Queries;

/// Batches at least this large go through `COPY`.
pub(crate) const COPY_AT_LEAST: usize = 256;

/// The binary COPY signature, flags and header extension length.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// Columns per row: id, queue, job, payload, run_at, priority, max_attempts,
/// created_at, trace.
const COLUMNS: i16 = 9;

/// Writes `tasks` (no unique keys, at most one enqueue statement's worth:
/// the caller chunks) with one `COPY`; returns their ids in order. Run it
/// inside a transaction.
pub(crate) async fn copy_chunk(
    conn: &mut PgConnection,
    queries: &Queries,
    tasks: &[NewTask],
    now: Timestamp,
) -> Result<Vec<TaskId>, Error> {
    let operation = || format!("enqueue {} tasks with COPY", tasks.len());
    let wanted = i64::try_from(tasks.len()).unwrap_or(i64::MAX);
    let ids: Option<Vec<i64>> = sqlx::query_scalar(&queries.reserve_ids)
        .bind(wanted)
        .fetch_one(&mut *conn)
        .await
        .map_err(query_error(operation()))?;
    let ids = ids.unwrap_or_default();
    if ids.len() != tasks.len() || !ids.is_sorted_by(|a, b| a < b) {
        return Err(wrong_reply(
            operation(),
            format!(
                "asked the sequence for {} ascending ids, got {} (ascending: {})",
                tasks.len(),
                ids.len(),
                ids.is_sorted()
            ),
        ));
    }
    let data = encode(tasks, &ids, now).map_err(|problem| wrong_input(operation(), problem))?;
    let mut sink = conn.copy_in_raw(&queries.copy_tasks).await.map_err(query_error(operation()))?;
    if let Err(error) = sink.send(data).await {
        let _ = sink.abort(error.to_string()).await;
        return Err(query_error(operation())(error));
    }
    let written = sink.finish().await.map_err(query_error(operation()))?;
    if written != tasks.len() as u64 {
        return Err(wrong_reply(operation(), format!("COPY wrote {written} of {} rows", tasks.len())));
    }
    ids.into_iter().map(rows::task_id).collect()
}

/// A task the server cannot take, for `operation`'s message.
fn wrong_input(operation: String, problem: String) -> Error {
    Error::Backend(BackendError::new(NAME, operation, problem))
}

/// The COPY data of `tasks` with `ids`, created at `now`.
fn encode(tasks: &[NewTask], ids: &[i64], now: Timestamp) -> Result<Vec<u8>, String> {
    let size: usize = tasks
        .iter()
        .map(|t| {
            74 + t.queue.len()
                + t.job.len()
                + t.payload.len()
                + rows::stored_trace(t.trace.as_ref()).map_or(0, str::len)
        })
        .sum();
    let mut out = Vec::with_capacity(HEADER.len() + size + 2);
    out.extend_from_slice(HEADER);
    for (task, id) in tasks.iter().zip(ids) {
        out.extend_from_slice(&COLUMNS.to_be_bytes());
        field(&mut out, &id.to_be_bytes())?;
        field(&mut out, task.queue.as_bytes())?;
        field(&mut out, task.job.as_bytes())?;
        field(&mut out, &task.payload)?;
        field(&mut out, &task.run_at.as_millis().to_be_bytes())?;
        field(&mut out, &task.priority.to_be_bytes())?;
        field(&mut out, &i32::try_from(task.max_attempts).unwrap_or(i32::MAX).to_be_bytes())?;
        field(&mut out, &now.as_millis().to_be_bytes())?;
        match rows::stored_trace(task.trace.as_ref()) {
            Some(trace) => field(&mut out, trace.as_bytes())?,
            None => out.extend_from_slice(&NULL.to_be_bytes()),
        }
    }
    out.extend_from_slice(&(-1_i16).to_be_bytes());
    Ok(out)
}

/// The length that marks a NULL field.
const NULL: i32 = -1;

fn field(out: &mut Vec<u8>, value: &[u8]) -> Result<(), String> {
    let len = i32::try_from(value.len())
        .map_err(|_| format!("a task's field is {} bytes; PostgreSQL takes 1 GiB at most", value.len()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_binary_copy_format() {
        let task = NewTask {
            job: "j",
            queue: "q".into(),
            payload: vec![7, 8],
            run_at: Timestamp(5),
            priority: -2,
            max_attempts: 3,
            unique_key: None,
            unique_for: None,
            trace: None,
        };
        let traced = NewTask { trace: Some("tp\nts".to_owned()), ..task.clone() };
        let data = encode(&[task], &[42], Timestamp(9)).unwrap_or_else(|e| panic!("{e}"));
        assert!(data.starts_with(b"PGCOPY\n\xff\r\n\0"));
        let row = &data[HEADER.len()..];
        assert_eq!(&row[..2], &9_i16.to_be_bytes());
        // id: length 8, then 42.
        assert_eq!(&row[2..6], &8_i32.to_be_bytes());
        assert_eq!(&row[6..14], &42_i64.to_be_bytes());
        // queue "q", job "j", payload [7, 8].
        assert_eq!(&row[14..19], &[0, 0, 0, 1, b'q']);
        assert_eq!(&row[19..24], &[0, 0, 0, 1, b'j']);
        assert_eq!(&row[24..30], &[0, 0, 0, 2, 7, 8]);
        // priority is a smallint: length 2.
        assert_eq!(&row[42..48], &[0, 0, 0, 2, 0xff, 0xfe]);
        // created_at, then trace: NULL, a length of -1 and no bytes.
        assert_eq!(&row[48..56], &[0, 0, 0, 4, 0, 0, 0, 3]);
        assert_eq!(&row[56..68], &[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 9]);
        assert_eq!(&row[68..72], &(-1_i32).to_be_bytes());
        assert!(data.ends_with(&(-1_i16).to_be_bytes()));
        assert_eq!(data.len(), HEADER.len() + 2 + (4 + 8) * 3 + 5 + 5 + 6 + 6 + 8 + 4 + 2);

        // A trace context is text: its length, then its bytes.
        let data = encode(&[traced], &[42], Timestamp(9)).unwrap_or_else(|e| panic!("{e}"));
        let row = &data[HEADER.len()..];
        assert_eq!(&row[68..77], &[0, 0, 0, 5, b't', b'p', b'\n', b't', b's']);
        assert_eq!(data.len(), HEADER.len() + 2 + (4 + 8) * 3 + 5 + 5 + 6 + 6 + 8 + 9 + 2);
    }
}
