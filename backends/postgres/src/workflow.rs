//! `impl WorkflowStore for PostgresBackend`, and the ack path of step tasks.
//!
//! A step's task row carries `run_id` and `step`. The claim returns `run_id`,
//! so the process that claims a step (which is the one that acks it)
//! remembers it; an ack batch holding such steps runs in one transaction:
//!
//! 1. lock the rows of their runs, in id order (`run_lock.sql`);
//! 2. record the batch's other acks (`ack.sql`, as the plain path does);
//! 3. complete or bury the steps and store the outputs (`step_ack.sql`);
//! 4. read the runs' outputs, and enqueue the steps that became ready
//!    (`step_tasks_insert.sql`, which gives a step a task only once);
//! 5. finish the runs whose sinks are all done, or fail the runs of the dead
//!    steps and cancel their other live steps.
//!
//! The lock of step 1 is what makes parallel acks of sibling steps safe:
//! completions of one run serialise, and each reads the outputs after it got
//! the lock, so the last sibling to finish sees every output and enqueues
//! their common dependent; the first does not see the second's uncommitted
//! output. Taking every run lock first, in order, before any task row is
//! touched, keeps two such transactions from deadlocking. Plain jobs never
//! pay for any of this: a batch without claimed steps is one statement.

use std::collections::HashMap;

use errand_runtime::stored::{self, RunInfoBuilder};
use errand_runtime::workflow::{self, NewRun, RunId, RunInfo, RunState, StepSpec, WorkflowStore};
use errand_runtime::{Ack, Codec, Error, NewTask, Outcome, Timestamp, WorkerRegistration};
use sqlx::{PgConnection, Row};

use crate::rows::{bad_data, query_error};
use crate::{NAME, PostgresBackend};

impl<C: Codec> WorkflowStore for PostgresBackend<C> {
    async fn start_run(&self, run: NewRun) -> Result<RunId, Error> {
        let operation = || format!("start a run of workflow `{}`", run.workflow);
        let steps = serde_json::to_string(&run.steps).map_err(|e| Error::Config(format!("{}: {e}", operation())))?;
        let now = Timestamp::now();
        // Durable: an ordinary commit, as enqueues.
        let mut tx = self.inner.pool.begin().await.map_err(query_error(operation()))?;
        let id: i64 = sqlx::query_scalar(&self.inner.queries.run_insert)
            .bind(run.workflow)
            .bind(&run.queue)
            .bind(&steps)
            .bind(now.as_millis())
            .fetch_one(&mut *tx)
            .await
            .map_err(query_error(operation()))?;
        let run_id = run_id(id)?;
        let mut tasks = StepTasks::default();
        for entry in workflow::entry_steps(&run.steps) {
            let spec = &run.steps[usize::from(entry)];
            let task =
                workflow::step_task::<C>(run.workflow, &run.queue, run_id, entry, spec, vec![run.input.clone()])?;
            tasks.push(id, entry, task);
        }
        self.insert_step_tasks(&mut tx, &tasks, now).await.map_err(query_error(operation()))?;
        tx.commit().await.map_err(query_error(operation()))?;
        if !tasks.run.is_empty() {
            self.inner.notifier.notify(&run.queue);
        }
        Ok(run_id)
    }

    async fn run_info(&self, run: RunId) -> Result<Option<RunInfo>, Error> {
        let operation = || format!("read workflow run {run}");
        let raw = i64::try_from(run.0).map_err(|_| Error::Config(format!("run id {run} is out of range")))?;
        let mut conn = self.inner.pool.acquire().await.map_err(query_error(operation()))?;
        let Some(row) = sqlx::query(&self.inner.queries.run_select)
            .bind(raw)
            .fetch_optional(&mut *conn)
            .await
            .map_err(query_error(operation()))?
        else {
            return Ok(None);
        };
        let what = format!("workflow run {run}");
        let get_str = |i: usize| row.try_get::<String, _>(i).map_err(|e| bad_data(&what, e.to_string()));
        let error: Option<String> = row.try_get(5).map_err(|e| bad_data(&what, e.to_string()))?;
        let created_at: i64 = row.try_get(6).map_err(|e| bad_data(&what, e.to_string()))?;
        let mut info = RunInfoBuilder::new(NAME, run, get_str(1)?, &get_str(3)?, &get_str(4)?, error, created_at)?;
        let rows = sqlx::query(&self.inner.queries.run_steps)
            .bind(raw)
            .fetch_all(&mut *conn)
            .await
            .map_err(query_error(operation()))?;
        for row in &rows {
            let read = |e: sqlx::Error| bad_data(&what, e.to_string());
            let step: i32 = row.try_get(0).map_err(read)?;
            let state: Option<String> = row.try_get(3).map_err(read)?;
            let attempt: Option<i32> = row.try_get(4).map_err(read)?;
            info.step(
                i64::from(step),
                row.try_get(1).map_err(read)?,
                row.try_get(2).map_err(read)?,
                state.as_deref(),
                attempt.map(i64::from),
                row.try_get(5).map_err(read)?,
            )?;
        }
        Ok(Some(info.finish()))
    }
}

fn run_id(id: i64) -> Result<RunId, Error> {
    u64::try_from(id).map(RunId).map_err(|_| bad_data("a new run's id", format!("negative run id {id}")))
}

fn parse_steps(json: &str, what: &str) -> Result<Vec<StepSpec>, Error> {
    stored::parse_steps(NAME, json, what)
}

/// Step tasks to insert, one array per column of `step_tasks_insert.sql`.
#[derive(Default)]
struct StepTasks {
    run: Vec<i64>,
    step: Vec<i32>,
    queue: Vec<String>,
    job: Vec<&'static str>,
    payload: Vec<Vec<u8>>,
    max_attempts: Vec<i32>,
    priority: Vec<i16>,
}

impl StepTasks {
    fn push(&mut self, run: i64, step: u16, task: NewTask) {
        self.run.push(run);
        self.step.push(i32::from(step));
        self.queue.push(task.queue);
        self.job.push(task.job);
        self.payload.push(task.payload);
        self.max_attempts.push(i32::try_from(task.max_attempts).unwrap_or(i32::MAX));
        self.priority.push(task.priority);
    }
}

/// A run locked by an ack transaction.
struct LockedRun {
    workflow: String,
    queue: String,
    running: bool,
    steps: Vec<StepSpec>,
}

impl<C: Codec> PostgresBackend<C> {
    /// Inserts the tasks of workflow steps that have none yet (and wakes the
    /// workers of their queues on commit). Returns the queues that got tasks.
    async fn insert_step_tasks(
        &self,
        conn: &mut PgConnection,
        tasks: &StepTasks,
        now: Timestamp,
    ) -> Result<Vec<String>, sqlx::Error> {
        if tasks.run.is_empty() {
            return Ok(Vec::new());
        }
        sqlx::query_scalar(&self.inner.queries.step_tasks_insert)
            .bind(&tasks.run)
            .bind(&tasks.step)
            .bind(&tasks.queue)
            .bind(&tasks.job)
            .bind(&tasks.payload)
            .bind(&tasks.max_attempts)
            .bind(&tasks.priority)
            .bind(now.as_millis())
            .bind(&self.inner.channel)
            .fetch_all(&mut *conn)
            .await
    }
}

/// Records `acks`, of which `steps` are workflow steps claimed by this
/// process (with their runs), in one transaction that advances their runs.
/// See the [module docs](self).
pub(crate) async fn ack_with_steps<C: Codec>(
    backend: &PostgresBackend<C>,
    worker: &WorkerRegistration,
    acks: &[Ack],
    steps: &[(&Ack, i64)],
) -> Result<(), Error> {
    let inner = &backend.inner;
    let queries = &inner.queries;
    let operation =
        || format!("record {} outcome(s) of workflow `{}` on queue `{}`", acks.len(), worker.job, worker.queue);
    let now = Timestamp::now();
    let mut tx = inner.pool.begin().await.map_err(query_error(operation()))?;

    // 1. Lock the runs, in id order, before any task row.
    let mut run_ids: Vec<i64> = steps.iter().map(|(_, run)| *run).collect();
    run_ids.sort_unstable();
    run_ids.dedup();
    let found =
        sqlx::query(&queries.run_lock).bind(&run_ids).fetch_all(&mut *tx).await.map_err(query_error(operation()))?;
    let mut runs: HashMap<i64, LockedRun> = HashMap::with_capacity(found.len());
    for row in &found {
        let id: i64 = row.try_get(0).map_err(|e| bad_data("a workflow run", e.to_string()))?;
        let what = format!("workflow run {id}");
        let get_str = |i: usize| row.try_get::<String, _>(i).map_err(|e| bad_data(&what, e.to_string()));
        let state = get_str(3)?;
        let run = LockedRun {
            workflow: get_str(1)?,
            queue: get_str(2)?,
            running: state == RunState::Running.as_str(),
            steps: parse_steps(&get_str(4)?, &what)?,
        };
        runs.insert(id, run);
    }

    // 2. The batch's other acks, as the plain path records them.
    let is_step_end = |ack: &Ack| {
        matches!(ack.outcome, Outcome::Done { .. } | Outcome::Dead { .. }) && steps.iter().any(|(s, _)| s.id == ack.id)
    };
    let others = acks.iter().filter(|a| !is_step_end(a)).count();
    let (mut applied, wake) = if others > 0 {
        backend
            .ack_batch(&mut *tx, worker, acks.iter().filter(|a| !is_step_end(a)), now)
            .await
            .map_err(query_error(operation()))?
    } else {
        (0, false)
    };

    // 3. Complete or bury the steps; the outputs are stored.
    let mut done = (Vec::new(), Vec::new());
    let mut dead = (Vec::new(), Vec::new());
    for (ack, _) in steps {
        let id = i64::try_from(ack.id.0).unwrap_or(i64::MAX);
        match &ack.outcome {
            Outcome::Done { result } => {
                done.0.push(id);
                done.1.push(result.as_slice());
            }
            Outcome::Dead { error } => {
                dead.0.push(id);
                dead.1.push(error.as_str());
            }
            Outcome::Retry { .. } | Outcome::Snooze { .. } => {}
        }
    }
    let mut completed: Vec<(i64, u16)> = Vec::new();
    let mut failures: Vec<(i64, String)> = Vec::new();
    if !done.0.is_empty() || !dead.0.is_empty() {
        let rows = sqlx::query(&queries.step_ack)
            .bind(&*worker.id)
            .bind(now.as_millis())
            .bind(&done.0)
            .bind(&done.1)
            .bind(&dead.0)
            .bind(&dead.1)
            .fetch_all(&mut *tx)
            .await
            .map_err(query_error(operation()))?;
        applied += i64::try_from(rows.len()).unwrap_or(i64::MAX);
        for row in &rows {
            let id: i64 = row.try_get(0).map_err(|e| bad_data("an acknowledged step task", e.to_string()))?;
            let what = format!("task {id}");
            let run: Option<i64> = row.try_get(1).map_err(|e| bad_data(&what, e.to_string()))?;
            let step: Option<i32> = row.try_get(2).map_err(|e| bad_data(&what, e.to_string()))?;
            let is_done: bool = row.try_get(3).map_err(|e| bad_data(&what, e.to_string()))?;
            let (Some(run), Some(step)) = (run, step) else { continue };
            let step = u16::try_from(step).map_err(|_| bad_data(&what, format!("step {step} is out of range")))?;
            let Some(locked) = runs.get(&run) else {
                tracing::warn!(task = id, run, "postgres: a workflow step's run no longer exists");
                continue;
            };
            if !locked.running {
                // Failed (or done) meanwhile: nothing more happens to it.
                continue;
            }
            if is_done {
                completed.push((run, step));
            } else if !failures.iter().any(|(r, _)| *r == run) {
                let error = steps
                    .iter()
                    .find_map(|(ack, _)| match &ack.outcome {
                        Outcome::Dead { error } if i64::try_from(ack.id.0).ok() == Some(id) => Some(error.as_str()),
                        _ => None,
                    })
                    .unwrap_or("");
                let name = locked.steps.get(usize::from(step)).map_or("?", |s| s.name.as_str());
                failures.push((run, workflow::step_failed(name, error)));
            }
        }
    }
    // A run failing in this batch does not advance.
    completed.retain(|(run, _)| !failures.iter().any(|(r, _)| r == run));

    // 4. Enqueue the steps that became ready; finish the runs that are done.
    let mut woken: Vec<String> = Vec::new();
    if !completed.is_empty() {
        let mut advanced: Vec<i64> = completed.iter().map(|(run, _)| *run).collect();
        advanced.sort_unstable();
        advanced.dedup();
        let rows = sqlx::query(&queries.run_outputs)
            .bind(&advanced)
            .fetch_all(&mut *tx)
            .await
            .map_err(query_error(operation()))?;
        let mut outputs: HashMap<i64, Vec<Option<Vec<u8>>>> =
            advanced.iter().filter_map(|run| Some((*run, vec![None; runs.get(run)?.steps.len()]))).collect();
        for row in &rows {
            let what = "the outputs of workflow steps";
            let run: i64 = row.try_get(0).map_err(|e| bad_data(what, e.to_string()))?;
            let step: i32 = row.try_get(1).map_err(|e| bad_data(what, e.to_string()))?;
            if let Some(slot) =
                outputs.get_mut(&run).and_then(|o| usize::try_from(step).ok().and_then(|i| o.get_mut(i)))
            {
                *slot = row.try_get(2).map_err(|e| bad_data(what, e.to_string()))?;
            }
        }
        let mut tasks = StepTasks::default();
        let mut enqueued: Vec<(i64, u16)> = Vec::new();
        for (run, step) in &completed {
            let (Some(locked), Some(outputs)) = (runs.get(run), outputs.get(run)) else { continue };
            let ready = workflow::advance(&locked.steps, *step, |i| outputs.get(usize::from(i))?.as_deref());
            // The step task's job name is the workflow's: one of the strings
            // runs were written with, so leaking it once per name is bounded.
            let job = stored::intern(&locked.workflow);
            for (next, inputs) in ready {
                if enqueued.contains(&(*run, next)) {
                    continue; // Two of its inputs finished in this batch.
                }
                enqueued.push((*run, next));
                let spec = &locked.steps[usize::from(next)];
                let task = workflow::step_task::<C>(job, &locked.queue, run_id(*run)?, next, spec, inputs)?;
                tasks.push(*run, next, task);
            }
        }
        woken = backend.insert_step_tasks(&mut tx, &tasks, now).await.map_err(query_error(operation()))?;
        let finished: Vec<i64> = advanced
            .iter()
            .copied()
            .filter(|run| {
                let (Some(locked), Some(outputs)) = (runs.get(run), outputs.get(run)) else { return false };
                workflow::sink_steps(&locked.steps)
                    .iter()
                    .all(|i| outputs.get(usize::from(*i)).is_some_and(Option::is_some))
            })
            .collect();
        if !finished.is_empty() {
            sqlx::query(&queries.run_finish)
                .bind(&finished)
                .bind(now.as_millis())
                .execute(&mut *tx)
                .await
                .map_err(query_error(operation()))?;
        }
    }

    // 5. Fail the runs of dead steps; their other live steps are cancelled.
    if !failures.is_empty() {
        let ids: Vec<i64> = failures.iter().map(|(run, _)| *run).collect();
        let errors: Vec<&str> = failures.iter().map(|(_, error)| error.as_str()).collect();
        sqlx::query(&queries.run_fail)
            .bind(&ids)
            .bind(&errors)
            .bind(now.as_millis())
            .execute(&mut *tx)
            .await
            .map_err(query_error(operation()))?;
    }

    tx.commit().await.map_err(query_error(operation()))?;

    if usize::try_from(applied).ok() != Some(acks.len()) {
        tracing::debug!(
            worker = %worker.id,
            ignored = acks.len() as i64 - applied,
            "postgres: ignored the acks of tasks no longer running for this worker"
        );
    }
    // Every process hears the NOTIFY of new step tasks; wake this one's now.
    for queue in &woken {
        inner.notifier.notify(queue);
    }
    if wake && !woken.iter().any(|q| **q == *worker.queue) {
        inner.notifier.notify(&worker.queue);
    }
    Ok(())
}
