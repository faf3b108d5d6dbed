//! `impl Expose for MysqlBackend`: counts, listings, workers, retry,
//! deleting finished tasks, pausing and resuming queues, cancel.

use errand_runtime::backend::stored::{read_counts, read_task_info, read_worker_info};
use errand_runtime::capability::CancelRunning;
use errand_runtime::workflow::plan::StepEnd;
use errand_runtime::{Codec, Error, Expose, QueueCounts, TaskFilter, TaskId, TaskInfo, TaskState, WorkerInfo};

use crate::rows::{self, Stored, query_error};
use crate::sql::json_ints;
use crate::workflow::{self, Ended};
use crate::{Inner, MysqlBackend, NAME};

/// Why a cancelled step failed its run.
const CANCELLED: &str = "the task was cancelled";
/// A listing by state without a queue walks one range per queue of that
/// state, up to this many queues; past them it walks the primary key.
const LIST_QUEUES: usize = 64;

impl<C: Codec> Expose for MysqlBackend<C> {
    /// The counts by queue and state (`counts.sql`), then the paused queues
    /// (`paused_queues.sql`), listed even when they hold no tasks.
    async fn counts(&self) -> Result<Vec<QueueCounts>, Error> {
        let operation = || format!("count the tasks of `{}`", self.inner.location);
        let found = sqlx::query(&self.inner.queries.counts)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(query_error(operation()))?;
        let counts = read_counts(NAME, &rows::stored(found))?;
        let found = sqlx::query(&self.inner.queries.paused_queues)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(query_error(operation()))?;
        let paused: Result<Vec<String>, Error> =
            rows::stored(found).iter().map(|row| rows::text(row, "queue", "the paused queues")).collect();
        Ok(mark_paused(counts, paused?))
    }

    async fn tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskInfo>, Error> {
        let inner = &*self.inner;
        let operation = || format!("list the tasks of `{}`", inner.location);
        let queues = match (&filter.queue, filter.state) {
            (None, Some(state)) => {
                let found: Vec<Stored> = rows::stored(
                    sqlx::query(&inner.queries.list_queues)
                        .bind(state.as_str())
                        .bind(state.as_str())
                        .fetch_all(&inner.pool)
                        .await
                        .map_err(query_error(operation()))?,
                );
                let queues: Result<Vec<String>, Error> =
                    found.iter().map(|row| rows::text(row, "queue", "the queues of a state")).collect();
                Some(queues?)
            }
            _ => None,
        };
        let (sql, args) = list(&inner.queries.select_task, filter, queues.as_deref());
        let mut query = sqlx::query(&sql);
        for arg in args {
            query = match arg {
                Arg::Text(text) => query.bind(text),
                Arg::Int(n) => query.bind(n),
            };
        }
        let found = query.fetch_all(&inner.pool).await.map_err(query_error(operation()))?;
        found.into_iter().map(|row| read_task_info(NAME, &Stored(row))).collect()
    }

    async fn task(&self, id: TaskId) -> Result<Option<TaskInfo>, Error> {
        let Ok(raw) = i64::try_from(id.0) else { return Ok(None) };
        let sql = format!("{} WHERE id = ?", self.inner.queries.select_task);
        let found = sqlx::query(&sql)
            .bind(raw)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(query_error(format!("read task {id} of `{}`", self.inner.location)))?;
        found.map(|row| read_task_info(NAME, &Stored(row))).transpose()
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>, Error> {
        let orphan_after = i64::try_from(self.inner.tuning.orphan_after.as_millis()).unwrap_or(i64::MAX);
        let found = sqlx::query(&self.inner.queries.workers)
            .bind(orphan_after)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(query_error(format!("list the workers of `{}`", self.inner.location)))?;
        found.into_iter().map(|row| read_worker_info(NAME, &Stored(row))).collect()
    }

    async fn retry_task(&self, id: TaskId) -> Result<bool, Error> {
        let inner = &*self.inner;
        let Ok(raw) = i64::try_from(id.0) else { return Ok(false) };
        let operation = || format!("retry task {id} of `{}`", inner.location);
        let [read, retry] = &inner.queries.retry_task;
        let Some(queue) = sqlx::query(read)
            .bind(raw)
            .fetch_optional(&inner.pool)
            .await
            .map_err(query_error(operation()))?
            .map(|row| rows::text(&Stored(row), "queue", &format!("task {id}")))
            .transpose()?
        else {
            return Ok(false);
        };
        let done = sqlx::query(retry)
            .bind(inner.now().as_millis())
            .bind(raw)
            .execute(&inner.pool)
            .await
            .map_err(query_error(operation()))?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        inner.notifier.notify(&queue);
        Ok(true)
    }

    /// One statement (`delete_task.sql`): the row, if it is finished and
    /// not a workflow step's, with its unique key's row when that names it.
    async fn delete_task(&self, id: TaskId) -> Result<bool, Error> {
        let inner = &*self.inner;
        let Ok(raw) = i64::try_from(id.0) else { return Ok(false) };
        let done = sqlx::query(&inner.queries.delete_task)
            .bind(raw)
            .execute(&inner.pool)
            .await
            .map_err(query_error(format!("delete task {id} of `{}`", inner.location)))?;
        Ok(done.rows_affected() > 0)
    }

    async fn pause_queue(&self, queue: &str) -> Result<(), Error> {
        let inner = &*self.inner;
        sqlx::query(&inner.queries.pause_queue)
            .bind(queue)
            .bind(inner.now().as_millis())
            .execute(&inner.pool)
            .await
            .map_err(query_error(format!("pause queue `{queue}` of `{}`", inner.location)))?;
        Ok(())
    }

    /// Wakes this process's idle workers of the queue at once; other
    /// processes' idle pollers see its due tasks again at their next probe
    /// (`earliest.sql` gives none while it is paused).
    async fn resume_queue(&self, queue: &str) -> Result<(), Error> {
        let inner = &*self.inner;
        let done = sqlx::query(&inner.queries.resume_queue)
            .bind(queue)
            .execute(&inner.pool)
            .await
            .map_err(query_error(format!("resume queue `{queue}` of `{}`", inner.location)))?;
        if done.rows_affected() > 0 {
            inner.notifier.notify(queue);
        }
        Ok(())
    }

    /// Cancelling a workflow step fails its run, in the same transaction:
    /// the run is locked first (see the `workflow` module).
    async fn cancel_task(&self, id: TaskId) -> Result<bool, Error>
    where
        Self: CancelRunning,
    {
        cancel::<C>(&self.inner, id).await
    }
}

async fn cancel<C: Codec>(inner: &Inner, id: TaskId) -> Result<bool, Error> {
    let operation = format!("cancel task {id} of `{}`", inner.location);
    let Ok(raw) = i64::try_from(id.0) else { return Ok(false) };
    let now = inner.now();
    let mut tx = inner.pool.begin().await.map_err(query_error(&operation))?;
    let found = sqlx::query(&inner.queries.task_runs)
        .bind(json_ints([raw]))
        .fetch_all(&mut *tx)
        .await
        .map_err(query_error(&operation))?;
    let runs =
        workflow::lock_runs(&mut tx, inner, workflow::run_ids(&rows::stored(found), "the run of a task")?, &operation)
            .await?;
    let [lock, update] = &inner.queries.cancel_task;
    let Some(row) = sqlx::query(lock).bind(raw).fetch_optional(&mut *tx).await.map_err(query_error(&operation))? else {
        tx.commit().await.map_err(query_error(&operation))?;
        return Ok(false);
    };
    let row = Stored(row);
    let what = format!("task {id}");
    let (run, step) = (rows::opt_int(&row, "run_id", &what)?, rows::opt_int(&row, "step", &what)?);
    sqlx::query(update).bind(now.as_millis()).bind(raw).execute(&mut *tx).await.map_err(query_error(&operation))?;
    let mut queues = Vec::new();
    if let (Some(run), Some(step)) = (run, step) {
        let ended = vec![Ended { task: raw, run, step, end: StepEnd::Failed(CANCELLED.to_owned()) }];
        queues = workflow::advance::<C>(&mut tx, inner, runs, ended, None, now, &operation).await?;
    }
    tx.commit().await.map_err(query_error(&operation))?;
    for queue in &queues {
        inner.notifier.notify(queue);
    }
    Ok(true)
}

/// `counts` (by queue name) with the `paused` queues marked, and listed
/// with no tasks when they have none.
fn mark_paused(mut counts: Vec<QueueCounts>, paused: Vec<String>) -> Vec<QueueCounts> {
    let mut idle = Vec::new();
    for queue in paused {
        match counts.binary_search_by(|c| c.queue.as_str().cmp(&queue)) {
            Ok(i) => counts[i].paused = true,
            Err(_) => idle.push(QueueCounts { queue, paused: true, ..QueueCounts::default() }),
        }
    }
    if !idle.is_empty() {
        counts.append(&mut idle);
        counts.sort_by(|a, b| a.queue.cmp(&b.queue));
    }
    counts
}

/// A parameter of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Arg {
    Text(String),
    Int(i64),
}

/// Every state, for a listing by queue that walks each state's range.
const STATES: [TaskState; 6] =
    [TaskState::Pending, TaskState::Running, TaskState::Retry, TaskState::Done, TaskState::Dead, TaskState::Cancelled];

/// The ranges of `tasks_held` that hold the tasks of `state`: rows held by
/// no worker (`worker` and `claim` NULL), in `(state, queue, id)` order, and
/// rows held by a worker (running tasks, and cancelled ones their worker has
/// not been told of yet), few.
fn ranges(state: TaskState) -> &'static [&'static str] {
    const FREE: &str = "worker IS NULL AND claim IS NULL";
    const HELD: &str = "worker IS NOT NULL";
    match state {
        TaskState::Running => &[HELD],
        TaskState::Cancelled => &[FREE, HELD],
        TaskState::Pending | TaskState::Retry | TaskState::Done | TaskState::Dead => &[FREE],
    }
}

/// The listing statement for `filter` and its parameters. Each branch walks
/// one range of an index in id order and stops at the limit, and the
/// branches are merged: with a queue, the ranges of `tasks_held` for that
/// queue and each state asked for (every state when none is); with a state
/// but no queue, that range for each queue of the state (`queues`, found by
/// a loose index scan) when there are at most [`LIST_QUEUES`], and the range
/// of rows held by workers; otherwise the primary key. A filter by job alone
/// walks the primary key until it has found enough.
fn list(select: &str, filter: &TaskFilter, queues: Option<&[String]>) -> (String, Vec<Arg>) {
    let limit = if filter.limit == 0 { 100 } else { i64::from(filter.limit) };
    let after = filter.after.map_or(0, |a| i64::try_from(a.0).unwrap_or(i64::MAX));
    let mut args = Vec::new();
    let branch = |state: Option<(TaskState, &str)>, queue: Option<&str>, args: &mut Vec<Arg>| {
        let mut conditions = Vec::new();
        if let Some((state, range)) = state {
            conditions.push("state = ?");
            args.push(Arg::Text(state.as_str().to_owned()));
            conditions.push(range);
        }
        if let Some(queue) = queue {
            conditions.push("queue = ?");
            args.push(Arg::Text(queue.to_owned()));
        }
        conditions.push("id > ?");
        args.push(Arg::Int(after));
        if let Some(job) = &filter.job {
            conditions.push("job = ?");
            args.push(Arg::Text(job.clone()));
        }
        args.push(Arg::Int(limit));
        format!("({select} WHERE {} ORDER BY id LIMIT ?)", conditions.join(" AND "))
    };
    let mut branches: Vec<String> = Vec::new();
    match (&filter.queue, filter.state) {
        (Some(queue), state) => {
            let states: Vec<TaskState> = state.map_or_else(|| STATES.to_vec(), |s| vec![s]);
            for state in states {
                for range in ranges(state) {
                    branches.push(branch(Some((state, range)), Some(queue), &mut args));
                }
            }
        }
        (None, Some(state)) => match queues {
            Some(queues) if queues.len() <= LIST_QUEUES => {
                for range in ranges(state) {
                    if range.starts_with("worker IS NULL") {
                        for queue in queues {
                            branches.push(branch(Some((state, range)), Some(queue), &mut args));
                        }
                    } else {
                        branches.push(branch(Some((state, range)), None, &mut args));
                    }
                }
            }
            // Too many queues: the primary key, in id order.
            _ => branches.push(branch(Some((state, "TRUE")), None, &mut args)),
        },
        (None, None) => branches.push(branch(None, None, &mut args)),
    }
    match branches.as_slice() {
        [] => (format!("{select} WHERE 1 = 0"), Vec::new()),
        [only] => (only.trim_start_matches('(').trim_end_matches(')').to_owned(), args),
        _ => {
            args.push(Arg::Int(limit));
            (format!("SELECT * FROM ({}) AS l ORDER BY l.id LIMIT ?", branches.join(" UNION ALL ")), args)
        }
    }
}

/// [`list`], with its parameters as SQL literals, for the plan test.
#[cfg(test)]
pub(crate) fn list_for_tests(select: &str, filter: &TaskFilter, queues: Option<&[String]>) -> (String, Vec<String>) {
    let (sql, args) = list(select, filter, queues);
    let literals = args
        .into_iter()
        .map(|arg| match arg {
            Arg::Text(text) => format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''")),
            Arg::Int(n) => n.to_string(),
        })
        .collect();
    (sql, literals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paused_queues_are_marked_and_listed_without_tasks() {
        let counts = vec![
            QueueCounts { queue: "a".into(), pending: 2, ..QueueCounts::default() },
            QueueCounts { queue: "c".into(), done: 1, ..QueueCounts::default() },
        ];
        let marked = mark_paused(counts, vec!["b".into(), "c".into()]);
        let summary: Vec<(&str, u64, u64, bool)> =
            marked.iter().map(|c| (c.queue.as_str(), c.pending, c.done, c.paused)).collect();
        assert_eq!(summary, [("a", 2, 0, false), ("b", 0, 0, true), ("c", 0, 1, true)]);
        assert!(mark_paused(Vec::new(), Vec::new()).is_empty());
    }

    #[test]
    fn listings_walk_one_range_per_state_or_queue() {
        let filter =
            TaskFilter { queue: Some("q".into()), state: Some(TaskState::Dead), limit: 5, ..TaskFilter::default() };
        let (sql, args) = list("SELECT id FROM t", &filter, None);
        assert_eq!(
            sql,
            "SELECT id FROM t WHERE state = ? AND worker IS NULL AND claim IS NULL AND queue = ? AND id > ? ORDER BY id LIMIT ?"
        );
        assert_eq!(args, [Arg::Text("dead".into()), Arg::Text("q".into()), Arg::Int(0), Arg::Int(5)]);

        // A queue without a state: one branch per range of each state (seven).
        let filter = TaskFilter { queue: Some("q".into()), job: Some("j".into()), ..TaskFilter::default() };
        let (sql, args) = list("SELECT id FROM t", &filter, None);
        assert_eq!(sql.matches("UNION ALL").count(), 6, "{sql}");
        assert_eq!(args.len(), 7 * 5 + 1);

        // A state without a queue: its range per queue, and the held range.
        let filter = TaskFilter { state: Some(TaskState::Cancelled), ..TaskFilter::default() };
        let (sql, _) = list("SELECT id FROM t", &filter, Some(&["a".into(), "b".into()]));
        assert!(sql.matches("queue = ?").count() == 2 && sql.matches("UNION ALL").count() == 2, "{sql}");
        let filter = TaskFilter { state: Some(TaskState::Done), ..TaskFilter::default() };
        let (sql, args) = list("SELECT id FROM t", &filter, Some(&[]));
        assert!(sql.ends_with("WHERE 1 = 0") && args.is_empty(), "{sql}");

        let (sql, _) = list("SELECT id FROM t", &TaskFilter::default(), None);
        assert_eq!(sql, "SELECT id FROM t WHERE id > ? ORDER BY id LIMIT ?");
    }
}
