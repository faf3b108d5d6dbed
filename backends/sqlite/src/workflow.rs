//! `impl WorkflowStore for SqliteBackend`, and the ack path of step tasks.
//!
//! A step's task row carries `run_id` and `step`. The claim returns `run_id`,
//! so the process that claims a step (which is the one that acks it)
//! remembers it; its ack is then applied row by row inside the ack's write
//! transaction, together with storing the output and inserting the tasks of
//! the steps that became ready (or failing the run and cancelling its other
//! steps). Plain jobs never pay for any of this.

use errand_runtime::stored::{self, RunInfoBuilder};
use errand_runtime::workflow::{self, NewRun, RunId, RunInfo, RunState, StepSpec, WorkflowStore};
use errand_runtime::{Ack, Codec, Error, Outcome, Timestamp};
use sqlx::{Row, SqliteConnection};

use std::collections::HashMap;

use crate::encode::JsonRows;
use crate::rows::{bad_data, query_error};
use crate::{NAME, SqliteBackend, sql};

impl<C: Codec> WorkflowStore for SqliteBackend<C> {
    async fn start_run(&self, run: NewRun) -> Result<RunId, Error> {
        let operation = || format!("start a run of workflow `{}`", run.workflow);
        let steps = serde_json::to_string(&run.steps).map_err(|e| Error::Config(format!("{}: {e}", operation())))?;
        let now = Timestamp::now();
        let mut tx = self.inner.writer.begin_with("BEGIN IMMEDIATE").await.map_err(query_error(operation()))?;
        let id: i64 = sqlx::query_scalar(sql::RUN_INSERT)
            .bind(run.workflow)
            .bind(&run.queue)
            .bind(&steps)
            .bind(now.as_millis())
            .fetch_one(&mut *tx)
            .await
            .map_err(query_error(operation()))?;
        let run_id = run_id(id)?;
        for entry in workflow::entry_steps(&run.steps) {
            let spec = &run.steps[usize::from(entry)];
            let task =
                workflow::step_task::<C>(run.workflow, &run.queue, run_id, entry, spec, vec![run.input.clone()])?;
            insert_step_task(&mut tx, &task, id, entry, now).await?;
        }
        tx.commit().await.map_err(query_error(operation()))?;
        self.inner.notifier.notify(&run.queue);
        Ok(run_id)
    }

    async fn run_info(&self, run: RunId) -> Result<Option<RunInfo>, Error> {
        let operation = || format!("read workflow run {run}");
        let raw = i64::try_from(run.0).map_err(|_| Error::Config(format!("run id {run} is out of range")))?;
        let mut conn = self.inner.reader.acquire().await.map_err(query_error(operation()))?;
        let Some(row) = sqlx::query(sql::RUN_SELECT)
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
        let rows =
            sqlx::query(sql::RUN_STEPS).bind(raw).fetch_all(&mut *conn).await.map_err(query_error(operation()))?;
        for row in &rows {
            let read = |e: sqlx::Error| bad_data(&what, e.to_string());
            let state: Option<String> = row.try_get(3).map_err(read)?;
            info.step(
                row.try_get(0).map_err(read)?,
                row.try_get(1).map_err(read)?,
                row.try_get(2).map_err(read)?,
                state.as_deref(),
                row.try_get(4).map_err(read)?,
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

async fn insert_step_task(
    conn: &mut SqliteConnection,
    task: &errand_runtime::NewTask,
    run: i64,
    step: u16,
    now: Timestamp,
) -> Result<(), Error> {
    let operation = || format!("enqueue step {step} of workflow run {run}");
    let id: i64 = sqlx::query_scalar(sql::STEP_TASK_INSERT)
        .bind(task.queue.as_str())
        .bind(task.job)
        .bind(task.payload.as_slice())
        .bind(i64::from(task.max_attempts))
        .bind(task.priority)
        .bind(now.as_millis())
        .bind(run)
        .bind(i64::from(step))
        .fetch_one(&mut *conn)
        .await
        .map_err(query_error(operation()))?;
    sqlx::query(sql::RUN_STEP_TASK)
        .bind(run)
        .bind(i64::from(step))
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(query_error(operation()))?;
    Ok(())
}

/// Applies the acks of workflow step tasks inside the ack's transaction, in
/// a fixed number of statements however many steps the batch holds: mark
/// the tasks, store the outputs, read the affected runs and their outputs,
/// insert every step that became ready, finish completed runs. Returns the
/// queues that got new tasks. Retry and snooze acks are not step-specific
/// and must go through the ordinary batch path.
pub(crate) async fn ack_steps<C: Codec>(
    conn: &mut SqliteConnection,
    worker: &str,
    acks: &[&Ack],
    now: Timestamp,
) -> Result<Vec<String>, Error> {
    let operation = || format!("acknowledge {} workflow step task(s) of worker `{worker}`", acks.len());
    let mut done = JsonRows::with_capacity(acks.len() * 32);
    let mut dead = JsonRows::with_capacity(0);
    for ack in acks {
        let Ok(id) = i64::try_from(ack.id.0) else { continue };
        let _ = match &ack.outcome {
            Outcome::Done { result } => done.row().int(id).hex(result),
            Outcome::Dead { error } => dead.row().int(id).str(error),
            Outcome::Retry { .. } | Outcome::Snooze { .. } => continue,
        };
    }

    // Steps that went dead fail their runs (rare: one run at a time).
    if !dead.is_empty() {
        let rows = sqlx::query(sql::STEP_ACK_DEAD_BATCH)
            .bind(dead.finish())
            .bind(now.as_millis())
            .bind(worker)
            .fetch_all(&mut *conn)
            .await
            .map_err(query_error(operation()))?;
        for row in &rows {
            let (_, run, step) = step_row(row)?;
            let error: Option<String> = row.try_get(3).map_err(|e| bad_data("a step task", e.to_string()))?;
            fail_run(conn, run, step, error.as_deref().unwrap_or("failed"), now).await?;
        }
    }
    if done.is_empty() {
        return Ok(Vec::new());
    }

    // Mark the done steps; only those still running for this worker count.
    let rows = sqlx::query(sql::STEP_ACK_DONE_BATCH)
        .bind(done.finish())
        .bind(now.as_millis())
        .bind(worker)
        .fetch_all(&mut *conn)
        .await
        .map_err(query_error(operation()))?;
    let mut completed: Vec<(i64, u16)> = Vec::with_capacity(rows.len());
    let mut outputs_json = JsonRows::with_capacity(rows.len() * 32);
    for row in &rows {
        let (task, run, step) = step_row(row)?;
        let output: Option<Vec<u8>> = row.try_get(3).map_err(|e| bad_data("a step task", e.to_string()))?;
        let _ = outputs_json.row().int(run).int(step).int(task).hex(output.as_deref().unwrap_or_default());
        completed.push((run, step));
    }
    if completed.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query(sql::RUN_OUTPUTS_INSERT_BATCH)
        .bind(outputs_json.finish())
        .execute(&mut *conn)
        .await
        .map_err(query_error(operation()))?;

    // The affected runs that still run, with every output stored so far.
    let mut run_ids: Vec<i64> = completed.iter().map(|(run, _)| *run).collect();
    run_ids.sort_unstable();
    run_ids.dedup();
    let ids_json = format!("[{}]", run_ids.iter().map(i64::to_string).collect::<Vec<_>>().join(","));
    let run_rows = sqlx::query(sql::RUNS_SELECT_BATCH)
        .bind(&ids_json)
        .fetch_all(&mut *conn)
        .await
        .map_err(query_error(operation()))?;
    let mut runs: HashMap<i64, BatchRun> = HashMap::with_capacity(run_rows.len());
    for row in &run_rows {
        let id: i64 = row.try_get(0).map_err(|e| bad_data("a workflow run", e.to_string()))?;
        let what = format!("workflow run {id}");
        let workflow: String = row.try_get(1).map_err(|e| bad_data(&what, e.to_string()))?;
        let queue: String = row.try_get(2).map_err(|e| bad_data(&what, e.to_string()))?;
        let steps = parse_steps(&row.try_get::<String, _>(3).map_err(|e| bad_data(&what, e.to_string()))?, &what)?;
        let outputs = vec![None; steps.len()];
        runs.insert(id, BatchRun { workflow: stored::intern(&workflow), queue, steps, outputs, enqueued: Vec::new() });
    }
    let output_rows = sqlx::query(sql::RUN_OUTPUTS_BATCH)
        .bind(&ids_json)
        .fetch_all(&mut *conn)
        .await
        .map_err(query_error(operation()))?;
    for row in &output_rows {
        let run: i64 = row.try_get(0).map_err(|e| bad_data("a step output", e.to_string()))?;
        let step: i64 = row.try_get(1).map_err(|e| bad_data("a step output", e.to_string()))?;
        let output: Option<Vec<u8>> = row.try_get(2).map_err(|e| bad_data("a step output", e.to_string()))?;
        if let Some(slot) =
            runs.get_mut(&run).and_then(|r| usize::try_from(step).ok().and_then(|i| r.outputs.get_mut(i)))
        {
            *slot = output;
        }
    }

    // What became ready; a step two finished dependencies both unlock in
    // this batch is enqueued once.
    let mut new_tasks = JsonRows::with_capacity(completed.len() * 64);
    let mut finished_runs: Vec<i64> = Vec::new();
    let mut woken: Vec<String> = Vec::new();
    for (run, step) in completed {
        let Some(state) = runs.get_mut(&run) else { continue };
        for (next, inputs) in workflow::advance(&state.steps, step, |i| state.outputs.get(usize::from(i))?.as_deref()) {
            if state.enqueued.contains(&next) {
                continue;
            }
            state.enqueued.push(next);
            let spec = &state.steps[usize::from(next)];
            let task = workflow::step_task::<C>(state.workflow, &state.queue, run_id(run)?, next, spec, inputs)?;
            let _ = new_tasks
                .row()
                .str(&task.queue)
                .str(task.job)
                .hex(&task.payload)
                .int(task.max_attempts)
                .int(task.priority)
                .int(run)
                .int(next);
            if !woken.contains(&state.queue) {
                woken.push(state.queue.clone());
            }
        }
        let sinks_done = workflow::sink_steps(&state.steps)
            .iter()
            .all(|i| state.outputs.get(usize::from(*i)).is_some_and(Option::is_some));
        if sinks_done && !finished_runs.contains(&run) {
            finished_runs.push(run);
        }
    }
    if !new_tasks.is_empty() {
        let inserted = sqlx::query(sql::STEP_TASKS_INSERT_BATCH)
            .bind(new_tasks.finish())
            .bind(now.as_millis())
            .fetch_all(&mut *conn)
            .await
            .map_err(query_error(operation()))?;
        let mut links = JsonRows::with_capacity(inserted.len() * 24);
        for row in &inserted {
            let (task, run, step) = step_row(row)?;
            let _ = links.row().int(run).int(step).int(task);
        }
        sqlx::query(sql::RUN_STEP_TASKS_BATCH)
            .bind(links.finish())
            .execute(&mut *conn)
            .await
            .map_err(query_error(operation()))?;
    }
    if !finished_runs.is_empty() {
        let ids = format!("[{}]", finished_runs.iter().map(i64::to_string).collect::<Vec<_>>().join(","));
        sqlx::query(sql::RUNS_DONE_BATCH)
            .bind(ids)
            .bind(now.as_millis())
            .execute(&mut *conn)
            .await
            .map_err(query_error(operation()))?;
    }
    Ok(woken)
}

/// A running run as one ack batch sees it.
struct BatchRun {
    workflow: &'static str,
    queue: String,
    steps: Vec<StepSpec>,
    outputs: Vec<Option<Vec<u8>>>,
    /// Steps this batch already enqueued.
    enqueued: Vec<u16>,
}

/// `(task id, run id, step)` of a row returned by the step statements.
fn step_row(row: &sqlx::sqlite::SqliteRow) -> Result<(i64, i64, u16), Error> {
    let task: i64 = row.try_get(0).map_err(|e| bad_data("a step task", e.to_string()))?;
    let what = format!("task {task}");
    let run: Option<i64> = row.try_get(1).map_err(|e| bad_data(&what, e.to_string()))?;
    let step: Option<i64> = row.try_get(2).map_err(|e| bad_data(&what, e.to_string()))?;
    let (Some(run), Some(step)) = (run, step) else {
        return Err(bad_data(&what, "a workflow step task without its run or step"));
    };
    let step = u16::try_from(step).map_err(|_| bad_data(&what, format!("step {step} is out of range")))?;
    Ok((task, run, step))
}

/// Step `step` went dead: the run fails and its other live steps are cancelled.
async fn fail_run(conn: &mut SqliteConnection, run: i64, step: u16, error: &str, now: Timestamp) -> Result<(), Error> {
    let operation = || format!("fail workflow run {run} after step {step}");
    let what = format!("workflow run {run}");
    let Some(row) =
        sqlx::query(sql::RUN_SELECT).bind(run).fetch_optional(&mut *conn).await.map_err(query_error(operation()))?
    else {
        return Err(bad_data(&what, "its run row is missing"));
    };
    let steps = parse_steps(&row.try_get::<String, _>(4).map_err(|e| bad_data(&what, e.to_string()))?, &what)?;
    let name = steps.get(usize::from(step)).map_or("?", |s| s.name.as_str());
    sqlx::query(sql::RUN_FINISH)
        .bind(run)
        .bind(RunState::Failed.as_str())
        .bind(workflow::step_failed(name, error))
        .bind(now.as_millis())
        .execute(&mut *conn)
        .await
        .map_err(query_error(operation()))?;
    sqlx::query(sql::RUN_CANCEL_STEPS)
        .bind(run)
        .bind(now.as_millis())
        .execute(&mut *conn)
        .await
        .map_err(query_error(operation()))?;
    Ok(())
}
