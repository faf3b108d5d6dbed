//! `impl WorkflowStore for SqliteBackend`, and the ack path of step tasks.
//!
//! A step's task row carries `run_id` and `step`. The claim returns `run_id`,
//! so the process that claims a step (which is the one that acks it)
//! remembers it; its ack is then applied row by row inside the ack's write
//! transaction, together with storing the output and inserting the tasks of
//! the steps that became ready (or failing the run and cancelling its other
//! steps). Plain jobs never pay for any of this.

use errand_runtime::workflow::{self, NewRun, RunId, RunInfo, RunState, StepInfo, StepSpec, WorkflowStore};
use errand_runtime::{Ack, Codec, Error, Outcome, TaskId, TaskState, Timestamp};
use sqlx::{Row, SqliteConnection};

use crate::rows::{bad_data, query_error};
use crate::{SqliteBackend, sql};

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
        let workflow = get_str(1)?;
        let state = get_str(3)?;
        let state = RunState::parse(&state).ok_or_else(|| bad_data(&what, format!("unknown run state `{state}`")))?;
        let specs = parse_steps(&get_str(4)?, &what)?;
        let error: Option<String> = row.try_get(5).map_err(|e| bad_data(&what, e.to_string()))?;
        let created_at: i64 = row.try_get(6).map_err(|e| bad_data(&what, e.to_string()))?;

        let mut steps: Vec<StepInfo> = specs
            .iter()
            .map(|s| StepInfo { name: s.name.clone(), task: None, state: None, attempt: 0, error: None, output: None })
            .collect();
        let rows =
            sqlx::query(sql::RUN_STEPS).bind(raw).fetch_all(&mut *conn).await.map_err(query_error(operation()))?;
        for row in &rows {
            let step: i64 = row.try_get(0).map_err(|e| bad_data(&what, e.to_string()))?;
            let Some(info) = usize::try_from(step).ok().and_then(|i| steps.get_mut(i)) else {
                return Err(bad_data(&what, format!("step {step} is not in the workflow's graph")));
            };
            let task: Option<i64> = row.try_get(1).map_err(|e| bad_data(&what, e.to_string()))?;
            info.task = task.and_then(|t| u64::try_from(t).ok()).map(TaskId);
            info.output = row.try_get(2).map_err(|e| bad_data(&what, e.to_string()))?;
            let state: Option<String> = row.try_get(3).map_err(|e| bad_data(&what, e.to_string()))?;
            info.state =
                state.map(|s| s.parse::<TaskState>().map_err(|e| bad_data(&what, e.to_string()))).transpose()?;
            let attempt: Option<i64> = row.try_get(4).map_err(|e| bad_data(&what, e.to_string()))?;
            info.attempt = attempt.and_then(|a| u32::try_from(a).ok()).unwrap_or(0);
            info.error = row.try_get(5).map_err(|e| bad_data(&what, e.to_string()))?;
        }
        Ok(Some(RunInfo { id: run, workflow, state, steps, error, created_at: Timestamp(created_at) }))
    }
}

fn run_id(id: i64) -> Result<RunId, Error> {
    u64::try_from(id).map(RunId).map_err(|_| bad_data("a new run's id", format!("negative run id {id}")))
}

fn parse_steps(json: &str, what: &str) -> Result<Vec<StepSpec>, Error> {
    serde_json::from_str(json).map_err(|e| bad_data(what, format!("its graph does not parse: {e}")))
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

/// Applies the acks of workflow step tasks inside the ack's transaction.
/// Returns the queues that got new tasks. Acks other than done and dead are
/// not step-specific and must go through the ordinary batch path.
pub(crate) async fn ack_steps<C: Codec>(
    conn: &mut SqliteConnection,
    worker: &str,
    acks: &[&Ack],
    now: Timestamp,
) -> Result<Vec<String>, Error> {
    let mut woken = Vec::new();
    for ack in acks {
        let Ok(id) = i64::try_from(ack.id.0) else { continue };
        let operation = || format!("acknowledge workflow step task {}", ack.id);
        let row = match &ack.outcome {
            Outcome::Done { result } => sqlx::query(sql::STEP_ACK_DONE).bind(id).bind(result.as_slice()),
            Outcome::Dead { error } => sqlx::query(sql::STEP_ACK_DEAD).bind(id).bind(error.as_str()),
            Outcome::Retry { .. } | Outcome::Snooze { .. } => continue,
        }
        .bind(now.as_millis())
        .bind(worker)
        .fetch_optional(&mut *conn)
        .await
        .map_err(query_error(operation()))?;
        // Not running for this worker any more (rescued, cancelled): ignored.
        let Some(row) = row else { continue };
        let what = format!("task {}", ack.id);
        let run: Option<i64> = row.try_get(0).map_err(|e| bad_data(&what, e.to_string()))?;
        let step: Option<i64> = row.try_get(1).map_err(|e| bad_data(&what, e.to_string()))?;
        let (Some(run), Some(step)) = (run, step) else { continue };
        let step = u16::try_from(step).map_err(|_| bad_data(&what, format!("step {step} is out of range")))?;
        match &ack.outcome {
            Outcome::Done { result } => {
                if let Some(queue) = step_done::<C>(conn, run, step, id, result, now).await?
                    && !woken.contains(&queue)
                {
                    woken.push(queue);
                }
            }
            Outcome::Dead { error } => fail_run(conn, run, step, error, now).await?,
            Outcome::Retry { .. } | Outcome::Snooze { .. } => {}
        }
    }
    Ok(woken)
}

/// Stores the output, enqueues the steps that became ready, and finishes
/// the run when every sink is done. Returns the queue if tasks were added.
async fn step_done<C: Codec>(
    conn: &mut SqliteConnection,
    run: i64,
    step: u16,
    task: i64,
    output: &[u8],
    now: Timestamp,
) -> Result<Option<String>, Error> {
    let operation = || format!("advance workflow run {run} after step {step}");
    sqlx::query(sql::RUN_OUTPUT_INSERT)
        .bind(run)
        .bind(i64::from(step))
        .bind(task)
        .bind(output)
        .execute(&mut *conn)
        .await
        .map_err(query_error(operation()))?;
    let Some(row) =
        sqlx::query(sql::RUN_SELECT).bind(run).fetch_optional(&mut *conn).await.map_err(query_error(operation()))?
    else {
        return Err(bad_data(&format!("workflow run {run}"), "its run row is missing"));
    };
    let what = format!("workflow run {run}");
    let workflow: String = row.try_get(1).map_err(|e| bad_data(&what, e.to_string()))?;
    let queue: String = row.try_get(2).map_err(|e| bad_data(&what, e.to_string()))?;
    let state: String = row.try_get(3).map_err(|e| bad_data(&what, e.to_string()))?;
    if state != RunState::Running.as_str() {
        return Ok(None);
    }
    let steps = parse_steps(&row.try_get::<String, _>(4).map_err(|e| bad_data(&what, e.to_string()))?, &what)?;
    let rows = sqlx::query(sql::RUN_OUTPUTS).bind(run).fetch_all(&mut *conn).await.map_err(query_error(operation()))?;
    let mut outputs: Vec<Option<Vec<u8>>> = vec![None; steps.len()];
    for row in &rows {
        let index: i64 = row.try_get(0).map_err(|e| bad_data(&what, e.to_string()))?;
        if let Some(slot) = usize::try_from(index).ok().and_then(|i| outputs.get_mut(i)) {
            *slot = row.try_get(1).map_err(|e| bad_data(&what, e.to_string()))?;
        }
    }
    let ready = workflow::advance(&steps, step, |i| outputs.get(usize::from(i))?.as_deref());
    // The step task's job name is the workflow's: it is one of the strings the
    // run row was written with, so leaking it once per distinct name is bounded.
    let job = intern(&workflow);
    let run_id = run_id(run)?;
    let mut added = false;
    for (next, inputs) in ready {
        let spec = &steps[usize::from(next)];
        let task = workflow::step_task::<C>(job, &queue, run_id, next, spec, inputs)?;
        insert_step_task(conn, &task, run, next, now).await?;
        added = true;
    }
    if workflow::sink_steps(&steps).iter().all(|i| outputs.get(usize::from(*i)).is_some_and(Option::is_some)) {
        sqlx::query(sql::RUN_FINISH)
            .bind(run)
            .bind(RunState::Done.as_str())
            .bind(None::<String>)
            .bind(now.as_millis())
            .execute(&mut *conn)
            .await
            .map_err(query_error(operation()))?;
    }
    Ok(added.then_some(queue))
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

/// A `&'static str` for a workflow name read back from storage.
fn intern(name: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock, PoisonError};
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES.get_or_init(Mutex::default).lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}
