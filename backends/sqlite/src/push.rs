//! Writing new tasks: `push`, and `impl Transactional` (the same writes on
//! the caller's connection, inside its transaction).
//!
//! Hand-off (the kit's [`Handoffs`](errand_runtime::backend::Handoffs)): a
//! single due enqueue without a unique key, made while a worker of this
//! backend value waits for its job, is written already claimed by that
//! worker (`sql/push_handed.sql`: `running`, attempt 1, under a claim token
//! of its own; `pending` while its queue is paused) and handed to it in
//! memory, so it starts after one statement instead of two and a wake-up's
//! worth of thread hops. Should the worker be released before it takes the
//! task, the enqueuer puts it back by its token; should the enqueue be
//! dropped or fail while its insert may have been written, the worker's
//! next claim puts it back first (`claim.rs`). Every write goes through the
//! one writer connection, in order, so a put-back never runs before the
//! insert it undoes; a backend built on a pool of more connections
//! ([`from_pool`](crate::SqliteBuilder::from_pool)) does not hand off.

use errand_runtime::backend::stored::{StoredRow, read_id};
use errand_runtime::backend::{NewTask, Pick};
use errand_runtime::capability::Transactional;
use errand_runtime::{Codec, Error, TaskId, Timestamp};
use sqlx::query::Query;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Connection, Row, Sqlite, SqliteConnection};

use crate::encode::{payload_batches, push_batches, uniform};
use crate::rows::{Stored, query_error, wrong_reply};
use crate::{NAME, SqliteBackend, sql};

/// What a push is doing, for messages.
fn operation(tasks: &[NewTask]) -> String {
    match tasks {
        [task] => format!("enqueue a task of job `{}` on queue `{}`", task.job, task.queue),
        _ => format!("enqueue {} tasks", tasks.len()),
    }
}

impl<C: Codec> SqliteBackend<C> {
    /// Writes `tasks` on the writer connection, in one transaction when it
    /// takes more than one statement; wakes their queues.
    pub(crate) async fn push(&self, tasks: Vec<NewTask>) -> Result<Vec<TaskId>, Error> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.tuning.clock.now();
        if let [task] = tasks.as_slice()
            && task.unique_key.is_none()
        {
            let inner = &*self.inner;
            let id = if inner.hand_off
                && let Some(pick) = inner.handoffs.pick(task, now, || inner.put_backs.token())
            {
                self.hand(task, now, &pick).await?
            } else {
                let mut conn = inner.writer.acquire().await.map_err(query_error(operation(&tasks)))?;
                insert_one(&mut conn, task, now).await?
            };
            self.wake(&tasks);
            return Ok(vec![id]);
        }
        let writes = Writes::new(&tasks);
        let mut conn = self.inner.writer.acquire().await.map_err(query_error(operation(&tasks)))?;
        let ids = if writes.one_statement() {
            writes.run(&mut conn, now).await?
        } else {
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(query_error(operation(&tasks)))?;
            let ids = writes.run(&mut tx, now).await?;
            tx.commit().await.map_err(query_error(operation(&tasks)))?;
            ids
        };
        drop(conn);
        self.wake(&tasks);
        Ok(ids)
    }

    /// Writes `task` claimed by the worker of `pick` (`push_handed.sql`)
    /// and hands it over; written `pending` instead while its queue is
    /// paused.
    async fn hand(&self, task: &NewTask, now: Timestamp, pick: &Pick) -> Result<TaskId, Error> {
        let inner = &*self.inner;
        let operation = || operation(std::slice::from_ref(task));
        // Until the task is handed over (or known written waiting), it may
        // be `running` for the worker with nobody to run it.
        let writing = inner.handoffs.writing(pick, |p| inner.put_backs.add_handed(&p.worker, p.token));
        let row = bind_task(sqlx::query(sql::PUSH_HANDED), task, now)
            .bind(task.trace.as_deref())
            .bind(&*pick.worker)
            .bind(pick.token)
            .fetch_one(&inner.writer)
            .await
            .map_err(query_error(operation()))?;
        let row = Stored(row);
        let id = read_id(NAME, &row)?;
        let state = row.text("state").map_err(|e| wrong_reply(operation(), format!("column `state`: {e}")))?;
        if state.as_deref() != Some("running") {
            writing.not_handed();
        } else if !writing.handed(id, task) {
            // The worker was released while the insert ran: nobody will
            // take the task from it, so put it back.
            if let Err(error) = self.unclaim_handed(&pick.worker, &task.queue, pick.token).await {
                tracing::warn!(
                    %id, worker = %pick.worker, %error,
                    "could not put back a task handed to a worker that stopped; it is rescued as an orphan"
                );
            }
        }
        Ok(id)
    }

    fn wake(&self, tasks: &[NewTask]) {
        let mut notified: Vec<&str> = Vec::new();
        for task in tasks {
            if !notified.contains(&task.queue.as_str()) {
                notified.push(&task.queue);
                self.inner.notifier.notify(&task.queue);
            }
        }
    }
}

impl<C: Codec> Transactional for SqliteBackend<C> {
    type Connection = SqliteConnection;

    /// Writes `tasks` on `conn` (a transaction of the application's, on the
    /// same database file), as `push` does. Workers of this process are woken
    /// at once and find the tasks once the transaction commits; others see
    /// them at their next poll.
    async fn push_in(&self, conn: &mut SqliteConnection, tasks: Vec<NewTask>) -> Result<Vec<TaskId>, Error> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let writes = Writes::new(&tasks);
        let ids = if writes.one_statement() {
            writes.run(conn, self.tuning.clock.now()).await?
        } else {
            // A savepoint inside the caller's transaction (or a transaction of
            // its own on a bare connection): all the statements or none.
            let mut tx = conn.begin().await.map_err(query_error(operation(&tasks)))?;
            let ids = writes.run(&mut tx, self.tuning.clock.now()).await?;
            tx.commit().await.map_err(query_error(operation(&tasks)))?;
            ids
        };
        self.wake(&tasks);
        Ok(ids)
    }
}

/// How a batch of new tasks is written.
struct Writes<'a> {
    tasks: &'a [NewTask],
    /// JSON batches, and the settings every task shares if they all do;
    /// `None` when any task has a unique key: then row by row, so each task
    /// sees the ones before it.
    batches: Option<(Option<&'a NewTask>, Vec<String>)>,
}

impl<'a> Writes<'a> {
    fn new(tasks: &'a [NewTask]) -> Self {
        if tasks.iter().any(|t| t.unique_key.is_some()) {
            return Self { tasks, batches: None };
        }
        // The usual bulk enqueue (one job, same options) sends payloads only.
        let shared = uniform(tasks).then(|| &tasks[0]);
        let batches = if shared.is_some() { payload_batches(tasks) } else { push_batches(tasks) };
        Self { tasks, batches: Some((shared, batches)) }
    }

    /// Whether it is one statement (no transaction needed).
    fn one_statement(&self) -> bool {
        self.batches.as_ref().is_some_and(|(_, batches)| batches.len() == 1)
    }

    /// Writes the tasks on `conn`; their ids, in input order.
    async fn run(&self, conn: &mut SqliteConnection, now: Timestamp) -> Result<Vec<TaskId>, Error> {
        let tasks = self.tasks;
        let mut ids = Vec::with_capacity(tasks.len());
        match &self.batches {
            None => {
                for task in tasks {
                    ids.push(insert_one(conn, task, now).await?);
                }
            }
            Some((shared, batches)) => {
                for batch in batches {
                    let batch = insert_batch(conn, batch, *shared, now).await;
                    ids.extend(batch.map_err(query_error(operation(tasks)))?);
                }
            }
        }
        if ids.len() != tasks.len() {
            let problem = format!("{} tasks were inserted but {} ids came back", tasks.len(), ids.len());
            return Err(wrong_reply(operation(tasks), problem));
        }
        Ok(ids)
    }
}

/// Inserts one task unless its unique key matches a live task of the same
/// job (or, with `unique_for`, one created within the window): then that
/// task's id.
async fn insert_one(conn: &mut SqliteConnection, task: &NewTask, now: Timestamp) -> Result<TaskId, Error> {
    let operation = || operation(std::slice::from_ref(task));
    if let Some(key) = &task.unique_key {
        let since = task.unique_for.map_or(i64::MAX, |window| now.sub(window).as_millis());
        let existing: Option<i64> = sqlx::query_scalar(sql::FIND_UNIQUE)
            .bind(key.as_str())
            .bind(since)
            .bind(task.job)
            .fetch_optional(&mut *conn)
            .await
            .map_err(query_error(operation()))?;
        if let Some(id) = existing {
            return new_id(id, operation);
        }
    }
    let row = bind_task(sqlx::query(sql::PUSH_ONE), task, now)
        .bind(task.unique_key.as_deref())
        .bind(task.trace.as_deref())
        .fetch_one(&mut *conn)
        .await
        .map_err(query_error(operation()))?;
    let id = row.try_get::<i64, _>(0).map_err(|e| wrong_reply(operation(), format!("column `id`: {e}")))?;
    new_id(id, operation)
}

/// Binds what every single-task insert starts with: ?1 queue, ?2 job,
/// ?3 payload, ?4 max_attempts, ?5 priority, ?6 run_at and ?7 created_at
/// (`now`), in ms.
fn bind_task<'q>(
    query: Query<'q, Sqlite, SqliteArguments<'q>>,
    task: &'q NewTask,
    now: Timestamp,
) -> Query<'q, Sqlite, SqliteArguments<'q>> {
    query
        .bind(task.queue.as_str())
        .bind(task.job)
        .bind(task.payload.as_slice())
        .bind(i64::from(task.max_attempts))
        .bind(task.priority)
        .bind(task.run_at.as_millis())
        .bind(now.as_millis())
}

fn new_id(id: i64, operation: impl FnOnce() -> String) -> Result<TaskId, Error> {
    u64::try_from(id).map(TaskId).map_err(|_| wrong_reply(operation(), format!("the new task's id is {id}")))
}

/// Runs `sql/push.sql` for one JSON batch — or `sql/push_uniform.sql` when
/// every task shares `shared`'s settings; returns the ids in input order.
async fn insert_batch(
    conn: &mut SqliteConnection,
    json: &str,
    shared: Option<&NewTask>,
    now: Timestamp,
) -> Result<Vec<TaskId>, sqlx::Error> {
    let query = match shared {
        Some(t) => sqlx::query_scalar(sql::PUSH_UNIFORM)
            .bind(json)
            .bind(t.queue.as_str())
            .bind(t.job)
            .bind(i64::from(t.max_attempts))
            .bind(t.priority)
            .bind(t.run_at.as_millis())
            .bind(now.as_millis())
            .bind(t.trace.as_deref()),
        None => sqlx::query_scalar(sql::PUSH).bind(json).bind(now.as_millis()),
    };
    let mut ids: Vec<i64> = query.fetch_all(&mut *conn).await?;
    // Rows are inserted in array order and get ascending ids; RETURNING
    // yields them in no particular order.
    ids.sort_unstable();
    Ok(ids.into_iter().filter_map(|id| u64::try_from(id).ok().map(TaskId)).collect())
}
