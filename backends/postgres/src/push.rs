//! Enqueueing: [`Backend::push`](errand_runtime::Backend::push) and
//! [`Transactional::push_in`] (enqueue inside the caller's transaction).
//!
//! One task without a unique key is one `INSERT` (`push_one.sql`); more are
//! one `INSERT … SELECT FROM UNNEST(…)` per [`PUSH_BATCH`] (`push.sql`), or a
//! binary `COPY` from [`COPY_AT_LEAST`] tasks on (see the `copy` module).
//! Tasks with unique keys first take a transaction-scoped advisory lock per
//! `(job, key)`, in lock-id order, then `push_unique.sql` returns the id of a
//! live duplicate or inserts.

use errand_runtime::backend::{NewTask, fnv1a_parts};
use errand_runtime::capability::Transactional;
use errand_runtime::{Codec, Error, TaskId, Timestamp};
use sqlx::postgres::PgArguments;
use sqlx::{Connection, PgConnection, Postgres, Row};

use crate::announce::Pushing;
use crate::copy::{COPY_AT_LEAST, copy_chunk};
use crate::rows::{self, query_error, wrong_reply};
use crate::{Inner, PostgresBackend};

/// Tasks per enqueue statement.
pub(crate) const PUSH_BATCH: usize = 10_000;

/// [`Backend::push`](errand_runtime::Backend::push): writes `tasks` in their
/// own transaction, wakes this process's workers and announces the queues
/// to the other processes (see the `announce` module).
pub(crate) async fn push(inner: &Inner, tasks: Vec<NewTask>) -> Result<Vec<TaskId>, Error> {
    if tasks.is_empty() {
        return Ok(Vec::new());
    }
    let now = inner.now();
    let operation = || operation(&tasks, &inner.schema);
    let pushing = Pushing::enter(&inner.pushing);
    let mut conn = inner.pool.acquire().await.map_err(query_error(operation()))?;
    let unique = tasks.iter().any(|t| t.unique_key.is_some());
    let by_copy = tasks.len() >= COPY_AT_LEAST && !unique;
    let several = by_copy || tasks.len() > PUSH_BATCH || unique;
    // A lone enqueue NOTIFYs inside its own statement: no other enqueue
    // waits on the notify lock, and it saves a statement.
    let notify_inside = !several && pushing.alone();
    let ids = if several {
        // Several statements: one transaction.
        let mut tx = conn.begin().await.map_err(query_error(operation()))?;
        let ids = if by_copy {
            let mut ids = Vec::with_capacity(tasks.len());
            for chunk in tasks.chunks(PUSH_BATCH) {
                ids.extend(copy_chunk(&mut tx, &inner.queries, chunk, now).await?);
            }
            ids
        } else {
            insert(inner, &mut tx, &tasks, now, None).await?
        };
        tx.commit().await.map_err(query_error(operation()))?;
        ids
    } else {
        let channel = notify_inside.then_some(inner.channel.as_str());
        insert(inner, &mut conn, &tasks, now, channel).await?
    };
    drop(pushing);
    // Wake this process's workers at once, then the other processes'.
    let mut queues: Vec<&str> = Vec::new();
    for task in &tasks {
        if !queues.contains(&task.queue.as_str()) {
            queues.push(&task.queue);
            inner.notifier.notify(&task.queue);
        }
    }
    if !notify_inside {
        inner.announce(&queues);
    }
    Ok(ids)
}

/// Enqueueing inside the caller's transaction: the tasks exist if and only if
/// it commits, and the same statements `NOTIFY` their queues, so idle workers
/// of every process are woken on commit.
impl<C: Codec> Transactional for PostgresBackend<C> {
    /// Pass `&mut tx` for a `sqlx::Transaction<'_, Postgres>` (from
    /// [`pool().begin()`](PostgresBackend::pool)), or any connection.
    type Connection = PgConnection;

    async fn push_in(&self, conn: &mut PgConnection, tasks: Vec<NewTask>) -> Result<Vec<TaskId>, Error> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let inner = &*self.inner;
        // NOTIFY inside the caller's transaction: listeners hear it on commit.
        insert(inner, conn, &tasks, inner.now(), Some(&inner.channel)).await
    }
}

/// What an enqueue of `tasks` is called in messages.
fn operation(tasks: &[NewTask], schema: &str) -> String {
    match tasks {
        [task] => format!("enqueue a task of job `{}` on queue `{}` in schema `{schema}`", task.job, task.queue),
        _ => format!("enqueue {} tasks in schema `{schema}`", tasks.len()),
    }
}

/// Writes `tasks` on `conn` (see the crate docs for unique keys); several
/// statements when there are unique keys or more than [`PUSH_BATCH`] tasks,
/// so run it inside a transaction then; one task without a unique key takes
/// the plain `push_one.sql`. With `channel`, the same statements NOTIFY it of
/// the tasks' queues (heard on commit); without, the caller announces them
/// after its commit.
async fn insert(
    inner: &Inner,
    conn: &mut PgConnection,
    tasks: &[NewTask],
    now: Timestamp,
    channel: Option<&str>,
) -> Result<Vec<TaskId>, Error> {
    let operation = || operation(tasks, &inner.schema);
    let queries = &inner.queries;
    if let [task] = tasks
        && task.unique_key.is_none()
    {
        let row = sqlx::query(&queries.push_one)
            .bind(now.as_millis())
            .bind(channel)
            .bind(&task.queue)
            .bind(task.job)
            .bind(&task.payload)
            .bind(task.run_at.as_millis())
            .bind(task.priority)
            .bind(i32::try_from(task.max_attempts).unwrap_or(i32::MAX))
            .bind(rows::stored_trace(task.trace.as_ref()))
            .fetch_optional(&mut *conn)
            .await
            .map_err(query_error(operation()))?;
        let ids = match row {
            Some(row) => vec![read_id(&row, 0, operation)?],
            None => Vec::new(),
        };
        return check_count(ids, 1, operation);
    }
    if !tasks.iter().any(|t| t.unique_key.is_some()) {
        let mut ids = Vec::with_capacity(tasks.len());
        for chunk in tasks.chunks(PUSH_BATCH) {
            let columns = Columns::new(chunk.iter(), now);
            let rows = columns
                .bind_common(sqlx::query(&queries.push), now, channel)
                .fetch_all(&mut *conn)
                .await
                .map_err(query_error(operation()))?;
            for row in &rows {
                ids.push(read_id(row, 0, operation)?);
            }
        }
        return check_count(ids, tasks.len(), operation);
    }

    // A task whose (job, key) already appeared earlier in this batch gets
    // the earlier one's id; the others are sent.
    let mut alias: Vec<Option<usize>> = vec![None; tasks.len()];
    let mut sent: Vec<usize> = Vec::with_capacity(tasks.len());
    let mut locks: Vec<i64> = Vec::new();
    for (i, task) in tasks.iter().enumerate() {
        if let Some(key) = &task.unique_key {
            let earlier = sent
                .iter()
                .copied()
                .find(|&j| tasks[j].job == task.job && tasks[j].unique_key.as_deref() == Some(key.as_str()));
            if let Some(j) = earlier {
                alias[i] = Some(j);
                continue;
            }
            locks.push(lock_id(&inner.schema, task.job, key));
        }
        sent.push(i);
    }
    locks.sort_unstable();
    locks.dedup();
    sqlx::query(&queries.lock_keys).bind(&locks).execute(&mut *conn).await.map_err(query_error(operation()))?;

    let mut results: Vec<Option<TaskId>> = vec![None; tasks.len()];
    for chunk in sent.chunks(PUSH_BATCH) {
        let columns = Columns::new(chunk.iter().map(|&i| &tasks[i]), now);
        let rows = columns
            .bind_common(sqlx::query(&queries.push_unique), now, channel)
            .bind(&columns.unique_key)
            .bind(&columns.unique_since)
            .fetch_all(&mut *conn)
            .await
            .map_err(query_error(operation()))?;
        let mut existing: Vec<Option<TaskId>> = vec![None; chunk.len()];
        let mut inserted: Vec<TaskId> = Vec::with_capacity(chunk.len());
        for row in &rows {
            let ord: Option<i64> =
                row.try_get(0).map_err(|e| wrong_reply(operation(), format!("the position of a task: {e}")))?;
            let id = read_id(row, 1, operation)?;
            match ord {
                Some(ord) => {
                    let slot =
                        usize::try_from(ord).ok().and_then(|o| o.checked_sub(1)).and_then(|o| existing.get_mut(o));
                    let Some(slot) = slot else {
                        return Err(wrong_reply(operation(), format!("task position {ord} is out of range")));
                    };
                    *slot = Some(id);
                }
                None => inserted.push(id),
            }
        }
        inserted.sort_unstable();
        let mut inserted = inserted.into_iter();
        for (position, &index) in chunk.iter().enumerate() {
            results[index] = existing[position].or_else(|| inserted.next());
        }
    }
    let mut ids = Vec::with_capacity(tasks.len());
    for i in 0..tasks.len() {
        let id = match alias[i] {
            Some(j) => results[j],
            None => results[i],
        };
        if let Some(id) = id {
            ids.push(id);
        }
    }
    check_count(ids, tasks.len(), operation)
}

/// The advisory lock that serialises enqueues of `key` for `job` in `schema`.
fn lock_id(schema: &str, job: &str, key: &str) -> i64 {
    let hash = fnv1a_parts(&[b"errand-postgres unique", schema.as_bytes(), job.as_bytes(), key.as_bytes()]);
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// The task id in column `index` of a row an enqueue returned.
fn read_id(row: &sqlx::postgres::PgRow, index: usize, operation: impl FnOnce() -> String) -> Result<TaskId, Error> {
    match row.try_get::<i64, _>(index) {
        Ok(id) => rows::task_id(id),
        Err(e) => Err(wrong_reply(operation(), format!("the id of a new task: {e}"))),
    }
}

fn check_count(ids: Vec<TaskId>, expected: usize, operation: impl FnOnce() -> String) -> Result<Vec<TaskId>, Error> {
    if ids.len() == expected {
        Ok(ids)
    } else {
        Err(wrong_reply(operation(), format!("{expected} tasks were written but {} ids came back", ids.len())))
    }
}

/// One array per column, for `UNNEST`.
struct Columns<'a> {
    queue: Vec<&'a str>,
    job: Vec<&'a str>,
    payload: Vec<&'a [u8]>,
    run_at: Vec<i64>,
    priority: Vec<i16>,
    max_attempts: Vec<i32>,
    trace: Vec<Option<&'a str>>,
    unique_key: Vec<Option<&'a str>>,
    unique_since: Vec<i64>,
}

impl<'a> Columns<'a> {
    fn new(tasks: impl ExactSizeIterator<Item = &'a NewTask>, now: Timestamp) -> Self {
        let n = tasks.len();
        let mut c = Columns {
            queue: Vec::with_capacity(n),
            job: Vec::with_capacity(n),
            payload: Vec::with_capacity(n),
            run_at: Vec::with_capacity(n),
            priority: Vec::with_capacity(n),
            max_attempts: Vec::with_capacity(n),
            trace: Vec::with_capacity(n),
            unique_key: Vec::with_capacity(n),
            unique_since: Vec::with_capacity(n),
        };
        for t in tasks {
            c.queue.push(&t.queue);
            c.job.push(t.job);
            c.payload.push(&t.payload);
            c.run_at.push(t.run_at.as_millis());
            c.priority.push(t.priority);
            c.max_attempts.push(i32::try_from(t.max_attempts).unwrap_or(i32::MAX));
            c.trace.push(rows::stored_trace(t.trace.as_ref()));
            c.unique_key.push(t.unique_key.as_deref());
            c.unique_since.push(t.unique_for.map_or(i64::MAX, |w| now.sub(w).as_millis()));
        }
        c
    }

    /// Binds `$1`..`$9`, shared by push.sql and push_unique.sql: created_at,
    /// the NOTIFY channel (none: no NOTIFY), then the columns every task has
    /// (the trace context last).
    fn bind_common<'q>(
        &'q self,
        query: sqlx::query::Query<'q, Postgres, PgArguments>,
        now: Timestamp,
        channel: Option<&'q str>,
    ) -> sqlx::query::Query<'q, Postgres, PgArguments> {
        query
            .bind(now.as_millis())
            .bind(channel)
            .bind(&self.queue)
            .bind(&self.job)
            .bind(&self.payload)
            .bind(&self.run_at)
            .bind(&self.priority)
            .bind(&self.max_attempts)
            .bind(&self.trace)
    }
}

#[cfg(test)]
mod tests {
    use errand_runtime::backend::MAX_TRACE_LEN;

    use super::*;

    #[test]
    fn only_trace_contexts_a_column_takes_are_stored() {
        let context = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\nvendor=errand".to_owned();
        assert_eq!(rows::stored_trace(Some(&context)), Some(context.as_str()));
        assert_eq!(rows::stored_trace(None), None);
        let longest = "a".repeat(MAX_TRACE_LEN);
        assert_eq!(rows::stored_trace(Some(&longest)), Some(longest.as_str()));
        assert_eq!(rows::stored_trace(Some(&"a".repeat(MAX_TRACE_LEN + 1))), None);
        assert_eq!(rows::stored_trace(Some(&"00-\0".to_owned())), None);
    }

    #[test]
    fn unique_key_locks_keep_their_ids() {
        // The lock ids of earlier releases: processes of both versions
        // enqueueing at once still serialise on the same keys.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for part in [&b"errand-postgres unique"[..], b"errand", b"job", b"key"] {
            for b in part.iter().chain(&[0xff]) {
                hash = (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        assert_eq!(lock_id("errand", "job", "key"), i64::from_ne_bytes(hash.to_ne_bytes()));
    }
}
