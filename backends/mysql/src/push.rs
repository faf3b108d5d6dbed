//! Enqueueing: [`Backend::push`](errand_runtime::Backend::push) and
//! [`Transactional::push_in`] (enqueue inside the caller's transaction).
//!
//! One task without a unique key is one statement, a plain `INSERT`
//! (`push_one.sql`). A task with a unique key is written in a transaction
//! (the caller's, or one of its own) that first locks its key's row in
//! `unique_keys` (so enqueues of one key serialise in every process), then
//! returns the key's newest task if it is live or within the unique window,
//! or inserts the task and records it as the key's newest
//! (`push_unique.sql`). Several tasks are one transaction: runs of tasks
//! without unique keys become multi-row `INSERT`s (`push.sql`) sized to the
//! server's `max_allowed_packet`, each of at most [`MAX_ROWS`] rows in
//! power-of-two sizes (so a few statement texts are prepared once per
//! connection), and tasks with keys are written one by one in between, in
//! order.

use errand_runtime::backend::{NewTask, Pick};
use errand_runtime::capability::Transactional;
use errand_runtime::{Codec, Error, TaskId, Timestamp};
use sqlx::mysql::MySqlArguments;
use sqlx::query::Query;
use sqlx::{Connection, MySql, MySqlConnection, Row};

use crate::connect::Server;
use crate::rows::{query_error, wrong_reply};
use crate::sql::json_ints;
use crate::{Inner, MysqlBackend, doubt};

/// Rows of one multi-row `INSERT` at most. Larger statements measured
/// slower on MariaDB 10.11 (bulk enqueues of 10,000: some 90k tasks/s with
/// 1,024 rows a statement, 45k with 4,096), and MySQL takes at most 65,535
/// parameters (8 a row) per statement.
const MAX_ROWS: usize = 1024;
/// Room kept free in a packet for the statement's text and headers.
const PACKET_MARGIN: usize = 64 * 1024;

/// [`Backend::push`](errand_runtime::Backend::push): writes `tasks` (in a
/// transaction when there are several) and wakes this process's workers.
pub(crate) async fn push(inner: &Inner, tasks: Vec<NewTask>) -> Result<Vec<TaskId>, Error> {
    let now = inner.now();
    let ids = match tasks.as_slice() {
        [] => return Ok(Vec::new()),
        [task] if task.unique_key.is_none() => {
            let mut conn = inner.pool.acquire().await.map_err(query_error(operation(&tasks, inner)))?;
            vec![push_single(inner, &mut conn, task, now).await?]
        }
        _ => {
            let server = inner.server().await?;
            let mut tx = inner.pool.begin().await.map_err(query_error(operation(&tasks, inner)))?;
            let ids = insert(inner, server, &mut tx, &tasks, now).await?;
            tx.commit().await.map_err(query_error(operation(&tasks, inner)))?;
            ids
        }
    };
    let mut queues: Vec<&str> = Vec::new();
    for task in &tasks {
        if !queues.contains(&task.queue.as_str()) {
            queues.push(&task.queue);
            inner.notifier.notify(&task.queue);
        }
    }
    Ok(ids)
}

/// Enqueueing inside the caller's transaction: the tasks exist if and only
/// if it commits, and only then do workers see them.
impl<C: Codec> Transactional for MysqlBackend<C> {
    /// Pass `&mut tx` for a `sqlx::Transaction<'_, MySql>` (from
    /// [`pool().begin()`](MysqlBackend::pool)), or any connection.
    type Connection = MySqlConnection;

    /// Writes `tasks` with the statements of
    /// [`push`](errand_runtime::Backend::push), on `conn`, inside whatever
    /// transaction it has open. Idle workers of every process find them
    /// through their poll once the transaction commits (this process's
    /// poller looks at once, then at its fastest pace).
    async fn push_in(&self, conn: &mut MySqlConnection, tasks: Vec<NewTask>) -> Result<Vec<TaskId>, Error> {
        let inner = &*self.inner;
        let server = inner.server().await?;
        let ids = insert(inner, server, conn, &tasks, inner.now()).await?;
        inner.poll.kick();
        Ok(ids)
    }
}

/// What an enqueue of `tasks` was, for messages.
fn operation(tasks: &[NewTask], inner: &Inner) -> String {
    match tasks {
        [task] => format!("enqueue a task of job `{}` on queue `{}` in `{}`", task.job, task.queue, inner.location),
        [first, ..] => format!(
            "enqueue {} tasks (the first of job `{}` on queue `{}`) in `{}`",
            tasks.len(),
            first.job,
            first.queue,
            inner.location
        ),
        [] => format!("enqueue no task in `{}`", inner.location),
    }
}

/// One task without a unique key, on its own: handed to a worker of this
/// process that waits for its job when one does (MariaDB, see the
/// kit's [`Handoffs`](errand_runtime::backend::Handoffs)), else one `INSERT` (`push_one.sql`).
async fn push_single(
    inner: &Inner,
    conn: &mut MySqlConnection,
    task: &NewTask,
    now: Timestamp,
) -> Result<TaskId, Error> {
    if inner.server().await?.returning()
        && let Some(pick) = inner.handoffs.pick(task, now, || inner.doubts.token())
    {
        return hand(inner, conn, task, now, &pick).await;
    }
    insert_one(inner, conn, task, now).await
}

/// Writes `task` claimed by the worker of `pick` (`push_handed.sql`) and
/// hands it over; written `pending` instead while its queue is paused.
async fn hand(
    inner: &Inner,
    conn: &mut MySqlConnection,
    task: &NewTask,
    now: Timestamp,
    pick: &Pick,
) -> Result<TaskId, Error> {
    let operation = || operation(std::slice::from_ref(task), inner);
    // Until the task is handed over (or known unwritten, or written
    // waiting), it may be `running` for the worker with nobody to run it.
    let writing = inner.handoffs.writing(pick, |p| inner.doubts.record(&p.worker, p.token));
    let written = bind_task(sqlx::query(&inner.queries.push_handed), task, now)
        .bind(&*pick.worker)
        .bind(pick.token)
        .bind(now.as_millis())
        .bind(&task.queue)
        .fetch_one(&mut *conn)
        .await;
    let row = match written {
        Ok(row) => row,
        Err(error) => {
            if !doubt::may_have_committed(&error) {
                writing.not_handed();
            }
            return Err(query_error(operation())(error));
        }
    };
    // By position: MariaDB describes no columns when preparing `RETURNING`.
    let id = row.try_get::<i64, _>(0).map_err(|e| wrong_reply(operation(), format!("column 1 (id): {e}")))?;
    let id = crate::rows::task_id(id)?;
    let state = row
        .try_get_unchecked::<Vec<u8>, _>(1)
        .map_err(|e| wrong_reply(operation(), format!("column 2 (state): {e}")))?;
    if state != b"running" {
        writing.not_handed();
        return Ok(id);
    }
    if !writing.handed(id, task) {
        // The worker was released while the insert ran: nobody will take
        // the task from it, so put it back as a lost claim's tasks are.
        let put_back = sqlx::query(&inner.queries.release_claims)
            .bind(json_ints([pick.token]))
            .bind(&*pick.worker)
            .execute(&inner.pool)
            .await;
        if let Err(error) = put_back {
            tracing::warn!(
                %id, worker = %pick.worker, %error,
                "mysql: could not put back a task handed to a worker that stopped; it is rescued as an orphan"
            );
        }
    }
    Ok(id)
}

/// Writes `tasks` on `conn` in order; returns their ids.
async fn insert(
    inner: &Inner,
    server: &Server,
    conn: &mut MySqlConnection,
    tasks: &[NewTask],
    now: Timestamp,
) -> Result<Vec<TaskId>, Error> {
    let mut ids = Vec::with_capacity(tasks.len());
    let mut i = 0;
    while i < tasks.len() {
        if tasks[i].unique_key.is_some() {
            ids.push(insert_one(inner, conn, &tasks[i], now).await?);
            i += 1;
            continue;
        }
        // A run of tasks without keys.
        let end = tasks[i..].iter().position(|t| t.unique_key.is_some()).map_or(tasks.len(), |n| i + n);
        insert_rows(inner, server, conn, &tasks[i..end], now, &mut ids).await?;
        i = end;
    }
    Ok(ids)
}

/// How many of the rows ahead (each about `sizes` bytes) the next multi-row
/// insert takes: as many as fit one packet of `max_packet` bytes (the
/// server's `max_allowed_packet`), at most
/// [`MAX_ROWS`], cut to a power of two so that a handful of statement texts
/// are prepared per connection. At least one.
pub(crate) fn statement_rows(max_packet: usize, sizes: impl Iterator<Item = usize>) -> usize {
    let budget = max_packet.saturating_sub(PACKET_MARGIN).max(PACKET_MARGIN);
    let (mut fit, mut bytes) = (0_usize, 0);
    for size in sizes.take(MAX_ROWS) {
        if fit > 0 && bytes + size > budget {
            break;
        }
        bytes += size;
        fit += 1;
    }
    1 << fit.max(1).ilog2()
}

/// About how many bytes a task takes in a multi-row insert.
fn row_size(task: &NewTask) -> usize {
    task.payload.len() + task.queue.len() + task.job.len() + task.trace.as_ref().map_or(0, String::len) + 56
}

/// Writes `tasks` (none with a unique key) with multi-row inserts sized by
/// [`statement_rows`], appending their ids to `ids`.
async fn insert_rows(
    inner: &Inner,
    server: &Server,
    conn: &mut MySqlConnection,
    tasks: &[NewTask],
    now: Timestamp,
    ids: &mut Vec<TaskId>,
) -> Result<(), Error> {
    let mut rest = tasks;
    while !rest.is_empty() {
        let rows = statement_rows(server.max_packet, rest.iter().map(row_size));
        let (chunk, after) = rest.split_at(rows);
        rest = after;
        let operation = || operation(chunk, inner);
        let sql = inner.queries.push_rows(rows, server.returning());
        let mut query = sqlx::query(&sql);
        for task in chunk {
            query = bind_task(query, task, now);
        }
        let inserted = inserted_ids(conn, server, query, rows).await.map_err(|failed| match failed {
            InsertFailed::Query(e) => query_error(operation())(e),
            InsertFailed::Reply(problem) => wrong_reply(operation(), problem),
        })?;
        for id in inserted {
            ids.push(crate::rows::task_id(id)?);
        }
    }
    Ok(())
}

/// Binds `task`'s columns in the order every insert of a task lists them
/// first: queue, job, payload, max_attempts, priority, run_at, created_at
/// (`now`), trace.
fn bind_task<'q>(
    query: Query<'q, MySql, MySqlArguments>,
    task: &'q NewTask,
    now: Timestamp,
) -> Query<'q, MySql, MySqlArguments> {
    query
        .bind(&task.queue)
        .bind(task.job)
        .bind(&task.payload)
        .bind(i64::from(task.max_attempts))
        .bind(task.priority)
        .bind(task.run_at.as_millis())
        .bind(now.as_millis())
        .bind(task.trace.as_deref())
}

/// Why [`inserted_ids`] failed.
pub(crate) enum InsertFailed {
    /// The statement failed.
    Query(sqlx::Error),
    /// The server's reply does not account for every row.
    Reply(String),
}

/// Runs `query`, a multi-row insert of `rows` rows (`Queries::push_rows`,
/// `Queries::step_push_rows`), and returns its rows' ids in order: from
/// `RETURNING id` on MariaDB; on MySQL `LAST_INSERT_ID()` plus multiples of
/// `@@auto_increment_increment` (InnoDB gives the rows of one multi-row
/// `INSERT … VALUES` consecutive ids).
pub(crate) async fn inserted_ids(
    conn: &mut MySqlConnection,
    server: &Server,
    query: Query<'_, MySql, MySqlArguments>,
    rows: usize,
) -> Result<Vec<i64>, InsertFailed> {
    if server.returning() {
        let found = query.fetch_all(&mut *conn).await.map_err(InsertFailed::Query)?;
        if found.len() != rows {
            return Err(InsertFailed::Reply(format!("{} ids came back for {rows} rows", found.len())));
        }
        return found.iter().map(|row| row.try_get::<i64, _>(0).map_err(InsertFailed::Query)).collect();
    }
    let done = query.execute(&mut *conn).await.map_err(InsertFailed::Query)?;
    let first = i64::try_from(done.last_insert_id()).unwrap_or(0);
    if first == 0 || done.rows_affected() != rows as u64 {
        return Err(InsertFailed::Reply(format!("inserted {} of {rows} rows, first id {first}", done.rows_affected())));
    }
    Ok((0..rows as i64).map(|k| first + k * server.id_step).collect())
}

/// Writes one task (with or without a unique key) on `conn`; returns its id,
/// or that of the task its unique key matched.
async fn insert_one(
    inner: &Inner,
    conn: &mut MySqlConnection,
    task: &NewTask,
    now: Timestamp,
) -> Result<TaskId, Error> {
    let operation = || operation(std::slice::from_ref(task), inner);
    let Some(key) = &task.unique_key else {
        let done = bind_task(sqlx::query(&inner.queries.push_one), task, now)
            .execute(&mut *conn)
            .await
            .map_err(query_error(operation()))?;
        return inserted_id(done.last_insert_id(), operation);
    };
    // A transaction of its own, or a savepoint in the caller's: the key's
    // row stays locked until the task is written (and, in the caller's
    // transaction, until it commits).
    let [lock, newest, insert, record] = &inner.queries.push_unique;
    let mut tx = conn.begin().await.map_err(query_error(operation()))?;
    sqlx::query(lock).bind(task.job).bind(key).execute(&mut *tx).await.map_err(query_error(operation()))?;
    let row =
        sqlx::query(newest).bind(task.job).bind(key).fetch_one(&mut *tx).await.map_err(query_error(operation()))?;
    let row = crate::rows::Stored(row);
    let what = format!("the unique key `{key}` of job `{}`", task.job);
    let newest_id = crate::rows::int(&row, "task_id", &what)?;
    let created_at = crate::rows::int(&row, "created_at", &what)?;
    let state = errand_runtime::backend::stored::StoredRow::text(&row, "state")
        .map_err(|e| crate::rows::bad_data(&what, format!("column `state`: {e}")))?;
    let live = matches!(state.as_deref(), Some("pending" | "running" | "retry"));
    let recent = task.unique_for.is_some_and(|window| created_at >= now.sub(window).as_millis());
    if newest_id > 0 && (live || recent) {
        tx.commit().await.map_err(query_error(operation()))?;
        return crate::rows::task_id(newest_id);
    }
    let done = bind_task(sqlx::query(insert), task, now)
        .bind(key)
        .execute(&mut *tx)
        .await
        .map_err(query_error(operation()))?;
    let id = inserted_id(done.last_insert_id(), operation)?;
    sqlx::query(record)
        .bind(i64::try_from(id.0).unwrap_or(i64::MAX))
        .bind(now.as_millis())
        .bind(task.job)
        .bind(key)
        .execute(&mut *tx)
        .await
        .map_err(query_error(operation()))?;
    tx.commit().await.map_err(query_error(operation()))?;
    Ok(id)
}

/// The id an insert reported.
fn inserted_id(id: u64, operation: impl Fn() -> String) -> Result<TaskId, Error> {
    if id == 0 {
        return Err(wrong_reply(operation(), "no id came back"));
    }
    Ok(TaskId(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_take_powers_of_two_that_fit_a_packet() {
        let packet = 16 << 20;
        let rows = |sizes: &[usize]| statement_rows(packet, sizes.iter().copied());
        assert_eq!(rows(&[100]), 1);
        assert_eq!(rows(&[100; 7]), 4, "cut to a power of two");
        assert_eq!(rows(&[100; 5000]), MAX_ROWS, "at most MAX_ROWS");
        // Rows of a quarter packet: three fit (with the margin), two are taken.
        assert_eq!(rows(&[packet / 4; 8]), 2);
        assert_eq!(rows(&[2 * packet, 10]), 1, "a row larger than a packet goes alone");
    }
}
