//! Workflows: [`WorkflowStore`] (starting runs, reading them back), and
//! advancing runs when their steps end.
//!
//! A step's task row carries `run_id` and `step`. What happens when a step
//! ends is decided by the runtime's planner
//! ([`errand_runtime::workflow::plan`]); this module loads the runs, feeds
//! it, and persists its plans, in the transaction that ends the steps:
//!
//! 1. lock the rows of the steps' runs, in id order, before any task row is
//!    touched (`run_lock.sql`, `run_lock_waiting.sql`,
//!    `run_lock_orphans.sql`: they read the task rows without locking them),
//!    with each run's trace context, which the step tasks it makes ready get;
//! 2. end the steps with a guarded update that returns the tasks it actually
//!    changed, with their run and step: an ack (`step_ack.sql`, the same
//!    updates as a plain ack; an ack sent again after a lost reply changes
//!    nothing), a cancellation (`cancel_task.sql`), a burial
//!    (`bury_unserved.sql`), a rescue on the last attempt
//!    (`rescue_steps.sql`);
//! 3. read the runs' steps that have a task, and their outputs
//!    (`run_progress.sql`), into a [`RunProgress`] per run, and tell each
//!    which of its steps ended ([`StepEnd`]);
//! 4. persist each run's [`RunPlan`] (`run_apply.sql`, one statement): the
//!    outputs, the tasks of the steps that became ready (each step gets a
//!    task once: its `run_steps` row is inserted `ON CONFLICT DO NOTHING`),
//!    the runs that are done, the runs that failed and the cancellation of
//!    their other live steps.
//!
//! The lock of step 1 is what makes parallel acks of sibling steps safe:
//! the ends of one run's steps serialise, and each transaction reads the
//! run's steps after it got the lock, in a statement of its own, so the last
//! sibling to finish sees every output and enqueues their common dependent;
//! the first does not see the second's uncommitted output. Taking every run
//! lock first, in order, before any task row is touched, keeps two such
//! transactions from deadlocking. Plain jobs never pay for any of this:
//! their ack batches are one statement (`ack.sql`), as are batches of only
//! retries and snoozes.

use std::collections::HashMap;

use errand_runtime::backend::{Ack, Outcome, WorkerRegistration};
use errand_runtime::workflow::plan::{Graph, RunEnd, RunPlan, RunProgress, StepEnd, step_failed};
use errand_runtime::workflow::rows::{graph_json, read_graph, read_run_info};
use errand_runtime::workflow::{NewRun, RunFilter, RunId, RunInfo, RunState, WorkflowStore};
use errand_runtime::{Codec, Error, Timestamp};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::rows::{self, Stored, query_error, wrong_reply};
use crate::sql::Outcomes;
use crate::{Inner, NAME, PostgresBackend};

impl<C: Codec> WorkflowStore for PostgresBackend<C> {
    async fn start_run(&self, run: NewRun) -> Result<RunId, Error> {
        let inner = &*self.inner;
        let operation = || format!("start a run of workflow `{}` on queue `{}`", run.workflow, run.queue);
        let steps = graph_json(&run.steps);
        let graph = Graph::new(run.steps.clone())
            .map_err(|problem| Error::Config(format!("workflow `{}` cannot run: {problem}", run.workflow)))?;
        let now = inner.now();
        let trace = rows::stored_trace(run.trace.as_ref());
        // Durable: an ordinary commit, as enqueues.
        let mut tx = inner.pool.begin().await.map_err(query_error(operation()))?;
        let id: i64 = sqlx::query_scalar(&inner.queries.run_insert)
            .bind(run.workflow)
            .bind(&run.queue)
            .bind(&steps)
            .bind(now.as_millis())
            .bind(trace)
            .fetch_one(&mut *tx)
            .await
            .map_err(query_error(operation()))?;
        let run_id =
            u64::try_from(id).map(RunId).map_err(|_| wrong_reply(operation(), format!("negative run id {id}")))?;
        let (_, plan) = RunProgress::start::<C>(run_id, graph, &run.input)?;
        let mut persist = Persist::default();
        persist.add(id, plan, &run.queue, run.workflow, trace);
        let queues = persist.apply(inner, &mut tx, now).await.map_err(query_error(operation()))?;
        tx.commit().await.map_err(query_error(operation()))?;
        // Other processes hear the NOTIFY of `run_apply.sql`; wake this one's now.
        for queue in &queues {
            inner.notifier.notify(queue);
        }
        Ok(run_id)
    }

    async fn run_info(&self, run: RunId) -> Result<Option<RunInfo>, Error> {
        let inner = &*self.inner;
        // Run ids are bigints: a larger one names no run.
        let Ok(raw) = i64::try_from(run.0) else { return Ok(None) };
        let operation = || format!("read workflow run {run} of schema `{}`", inner.schema);
        let mut conn = inner.pool.acquire().await.map_err(query_error(operation()))?;
        let Some(row) = sqlx::query(&inner.queries.run_select)
            .bind(raw)
            .fetch_optional(&mut *conn)
            .await
            .map_err(query_error(operation()))?
        else {
            return Ok(None);
        };
        let steps = sqlx::query(&inner.queries.run_steps)
            .bind(raw)
            .fetch_all(&mut *conn)
            .await
            .map_err(query_error(operation()))?;
        read_run_info(NAME, run, &Stored(row), &rows::stored(steps)).map(Some)
    }

    /// One statement (see `run_ids_sql`) walking an index of `runs` backwards.
    async fn run_ids(&self, filter: &RunFilter) -> Result<Vec<RunId>, Error> {
        let inner = &*self.inner;
        let operation = || format!("list the workflow runs of schema `{}`", inner.schema);
        // Run ids are bigints: every one is below a larger `before`.
        let before = filter.before.map_or(i64::MAX, |r| i64::try_from(r.0).unwrap_or(i64::MAX));
        let sql = run_ids_sql(&inner.queries.schema, filter);
        let mut query = sqlx::query_scalar(&sql).bind(before).bind(i64::from(filter.max()));
        if let Some(workflow) = &filter.workflow {
            query = query.bind(workflow.as_str());
        }
        if let Some(state) = filter.state {
            query = query.bind(state.as_str());
        }
        let ids: Vec<i64> = query.fetch_all(&inner.pool).await.map_err(query_error(operation()))?;
        ids.into_iter()
            .map(|id| {
                u64::try_from(id).map(RunId).map_err(|_| wrong_reply(operation(), format!("negative run id {id}")))
            })
            .collect()
    }
}

/// The statement of [`WorkflowStore::run_ids`] for `filter`, binding `$1`
/// before (ids below it), `$2` limit, then the workflow and the state, each
/// only if the filter has it (`$3`, then `$3` or `$4`). Only the conditions
/// that apply are in the text, so each shape gets its own plan, and each
/// walks an index backwards (migration 7): without a filter the primary key;
/// with a state `runs_state (state, id)`; with a workflow and a state
/// `runs_workflow (workflow, state, id)`; with a workflow alone that index
/// once per state of the workflow's runs (found by a loose index scan of
/// it), merged. None reads runs that do not match.
pub(crate) fn run_ids_sql(schema: &str, filter: &RunFilter) -> String {
    match (filter.workflow.is_some(), filter.state.is_some()) {
        (false, false) => format!("SELECT id FROM {schema}.runs WHERE id < $1 ORDER BY id DESC LIMIT $2"),
        (false, true) => {
            format!("SELECT id FROM {schema}.runs WHERE state = $3 AND id < $1 ORDER BY id DESC LIMIT $2")
        }
        (true, true) => format!(
            "SELECT id FROM {schema}.runs WHERE workflow = $3 AND state = $4 AND id < $1 ORDER BY id DESC LIMIT $2"
        ),
        (true, false) => format!(
            "WITH RECURSIVE states AS ( \
                 (SELECT state FROM {schema}.runs WHERE workflow = $3 ORDER BY state LIMIT 1) \
                 UNION ALL \
                 SELECT (SELECT r.state FROM {schema}.runs AS r \
                         WHERE r.workflow = $3 AND r.state > s.state ORDER BY r.state LIMIT 1) \
                 FROM states AS s WHERE s.state IS NOT NULL) \
             SELECT l.id FROM states AS s CROSS JOIN LATERAL ( \
                 SELECT id FROM {schema}.runs \
                 WHERE workflow = $3 AND state = s.state AND id < $1 ORDER BY id DESC LIMIT $2) AS l \
             WHERE s.state IS NOT NULL ORDER BY l.id DESC LIMIT $2"
        ),
    }
}

/// A run locked by the transaction that ends some of its steps.
pub(crate) struct LockedRun {
    workflow: String,
    queue: String,
    /// The trace context it was started with, which its step tasks get.
    trace: Option<String>,
    /// Its state and graph, or why they cannot be read.
    read: Result<(RunState, Graph), Error>,
}

/// The runs a transaction holds locked, by id.
pub(crate) type Locked = HashMap<i64, LockedRun>;

/// A workflow step whose task a transaction ended.
pub(crate) struct Ended {
    pub(crate) task: i64,
    pub(crate) run: i64,
    pub(crate) step: i32,
    pub(crate) end: StepEnd,
}

/// Locks and reads the runs the rows of `query` (`run_lock.sql` or one of
/// its variants) name, in id order.
pub(crate) async fn lock_runs(
    conn: &mut PgConnection,
    query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    operation: &str,
) -> Result<Locked, Error> {
    let found = query.fetch_all(&mut *conn).await.map_err(query_error(operation))?;
    let mut locked = Locked::with_capacity(found.len());
    for row in rows::stored(found) {
        let id = rows::int(&row, "id", "a workflow run")?;
        let what = format!("workflow run {id}");
        let workflow = rows::text(&row, "workflow", &what)?;
        let queue = rows::text(&row, "queue", &what)?;
        let trace = rows::opt_text(&row, "trace", &what)?;
        let read = rows::text(&row, "state", &what).and_then(|state| {
            let state =
                RunState::parse(&state).ok_or_else(|| rows::bad_data(&what, format!("unknown run state `{state}`")))?;
            Ok((state, read_graph(NAME, &rows::text(&row, "steps", &what)?, &what)?))
        });
        locked.insert(id, LockedRun { workflow, queue, trace, read });
    }
    Ok(locked)
}

/// The workflow steps among rows of `run_id`, `step` and `id` columns (rows
/// without a run are no steps), each ended with what `end` says.
pub(crate) fn ended_steps(
    found: &[PgRow],
    what: &str,
    mut end: impl FnMut(&PgRow) -> Result<Option<StepEnd>, Error>,
) -> Result<Vec<Ended>, Error> {
    let mut ended = Vec::new();
    for row in found {
        let read = |e: sqlx::Error| rows::bad_data(what, e.to_string());
        let run: Option<i64> = row.try_get("run_id").map_err(read)?;
        let step: Option<i32> = row.try_get("step").map_err(read)?;
        let (Some(run), Some(step)) = (run, step) else { continue };
        let task: i64 = row.try_get("id").map_err(read)?;
        if let Some(end) = end(row)? {
            ended.push(Ended { task, run, step, end });
        }
    }
    Ok(ended)
}

/// Feeds `ended` to the planner and persists its plans, in the transaction
/// that ended those steps and holds the locks of `runs` (the runs of steps
/// that changed after the runs were locked are locked now). New step tasks
/// are of job `job`, or of their run's workflow. Returns the queues that got
/// step tasks (NOTIFYed on commit).
pub(crate) async fn advance<C: Codec>(
    conn: &mut PgConnection,
    inner: &Inner,
    mut runs: Locked,
    ended: Vec<Ended>,
    job: Option<&str>,
    now: Timestamp,
    operation: &str,
) -> Result<Vec<String>, Error> {
    if ended.is_empty() {
        return Ok(Vec::new());
    }
    let queries = &inner.queries;
    // Runs of steps that were not in that state when the runs were locked,
    // yet changed: their task was claimed or enqueued meanwhile (rare).
    let mut missing: Vec<i64> = ended.iter().map(|e| e.run).filter(|run| !runs.contains_key(run)).collect();
    if !missing.is_empty() {
        missing.sort_unstable();
        missing.dedup();
        let none: &[i64] = &[];
        let query = sqlx::query(&queries.run_lock).bind(none).bind(None::<&str>).bind(&missing);
        runs.extend(lock_runs(&mut *conn, query, operation).await?);
    }

    let mut run_ids: Vec<i64> = ended.iter().map(|e| e.run).collect();
    run_ids.sort_unstable();
    run_ids.dedup();
    let found = sqlx::query(&queries.run_progress)
        .bind(&run_ids)
        .fetch_all(&mut *conn)
        .await
        .map_err(query_error(operation))?;
    let mut progress = load_progress(&runs, &run_ids, &rows::stored(found));

    let mut persist = Persist::default();
    let mut last_step: HashMap<i64, u16> = HashMap::new();
    for end in ended {
        let Ok(step) = u16::try_from(end.step) else {
            let error = format!("task {} is step {} of workflow run {}, out of range", end.task, end.step, end.run);
            progress.insert(end.run, Err(error));
            continue;
        };
        let Some(Ok(run)) = progress.get_mut(&end.run) else { continue };
        run.end(step, end.end);
        last_step.insert(end.run, step);
        // The task whose output this is, for `run_steps`.
        persist.tasks.insert((end.run, step), end.task);
    }
    for run_id in &run_ids {
        let Some(locked) = runs.get(run_id) else {
            tracing::warn!(run = run_id, "postgres: a workflow step's run no longer exists");
            continue;
        };
        let plan = match progress.remove(run_id) {
            Some(Ok(mut run)) => take_plan::<C>(&mut run, last_step.get(run_id).copied()),
            Some(Err(error)) => {
                tracing::error!(run = run_id, %error, "postgres: a workflow run cannot be read; it fails");
                let run = u64::try_from(*run_id).map(RunId).unwrap_or_default();
                RunPlan { run, end: Some(RunEnd::Failed(error)), ..RunPlan::default() }
            }
            None => continue,
        };
        persist.add(*run_id, plan, &locked.queue, job.unwrap_or(&locked.workflow), locked.trace.as_deref());
    }
    persist.apply(inner, conn, now).await.map_err(query_error(operation))
}

/// Records `acks` of `worker`, a worker of workflow steps, in one
/// transaction that advances their runs. See the [module docs](self).
pub(crate) async fn ack_steps<C: Codec>(
    backend: &PostgresBackend<C>,
    worker: &WorkerRegistration,
    acks: &[Ack],
) -> Result<(), Error> {
    let inner = &*backend.inner;
    let queries = &inner.queries;
    let operation =
        format!("record {} outcome(s) of workflow `{}` on queue `{}`", acks.len(), worker.job, worker.queue);
    let now = inner.now();
    let outcomes = Outcomes::new(acks);
    let mut tx = inner.pool.begin().await.map_err(query_error(&operation))?;

    // 1. Lock the runs, in id order, before any task row.
    let none: &[i64] = &[];
    let lock = sqlx::query(&queries.run_lock).bind(outcomes.ended()).bind(&*worker.id).bind(none);
    let runs = lock_runs(&mut tx, lock, &operation).await?;

    // 2. Every outcome; the steps actually changed come back.
    let changed = outcomes
        .bind(sqlx::query(&queries.step_ack), worker, now)
        .fetch_all(&mut *tx)
        .await
        .map_err(query_error(&operation))?;
    let applied = changed.len();
    let by_id: HashMap<i64, &Outcome> =
        acks.iter().filter_map(|a| Some((i64::try_from(a.id.0).ok()?, &a.outcome))).collect();
    let ended = ended_steps(&changed, "a task the ack of workflow steps changed", |row| {
        let id: i64 = row.try_get("id").map_err(|e| rows::bad_data("an acknowledged task", e.to_string()))?;
        Ok(match by_id.get(&id) {
            Some(Outcome::Done { result }) => Some(StepEnd::Done(result.clone())),
            Some(Outcome::Dead { error }) => Some(StepEnd::Failed(error.clone())),
            Some(Outcome::Retry { .. } | Outcome::Snooze { .. }) | None => None,
        })
    })?;

    // 3 and 4. Feed the planner; persist its plans.
    let queues = advance::<C>(&mut tx, inner, runs, ended, Some(worker.job), now, &operation).await?;
    tx.commit().await.map_err(query_error(&operation))?;

    inner.finished(u64::try_from(applied).unwrap_or(u64::MAX));
    if applied != acks.len() {
        tracing::debug!(
            worker = %worker.id,
            ignored = acks.len().saturating_sub(applied),
            "postgres: ignored the acks of tasks no longer running for this worker"
        );
    }
    // Every process hears the NOTIFY of new step tasks; wake this one's now.
    for queue in &queues {
        inner.notifier.notify(queue);
    }
    if outcomes.requeues() && !queues.iter().any(|q| **q == *worker.queue) {
        inner.notifier.notify(&worker.queue);
    }
    Ok(())
}

/// The progress of each of `run_ids` from its locked row and its
/// `run_progress.sql` rows, or why it cannot be read.
fn load_progress(runs: &Locked, run_ids: &[i64], rows: &[Stored]) -> HashMap<i64, Result<RunProgress, String>> {
    let mut steps: HashMap<i64, Vec<&Stored>> = HashMap::new();
    let mut unplaced: Option<String> = None;
    for row in rows {
        match rows::int(row, "run_id", "the steps of a workflow run") {
            Ok(run) => steps.entry(run).or_default().push(row),
            Err(error) => unplaced = Some(error.to_string()),
        }
    }
    let mut out = HashMap::with_capacity(run_ids.len());
    for &id in run_ids {
        let Some(locked) = runs.get(&id) else { continue };
        let progress = match (&locked.read, &unplaced) {
            // A row without its run id could be any run's.
            (_, Some(error)) => Err(error.clone()),
            (Err(error), None) => Err(error.to_string()),
            (Ok((state, graph)), None) => {
                read_progress(id, *state, graph.clone(), steps.get(&id).map_or(&[][..], Vec::as_slice))
            }
        };
        out.insert(id, progress);
    }
    out
}

/// A run's progress from its state, graph and `run_progress.sql` rows.
fn read_progress(id: i64, state: RunState, graph: Graph, rows: &[&Stored]) -> Result<RunProgress, String> {
    let what = format!("workflow run {id}");
    let run = u64::try_from(id).map(RunId).map_err(|_| format!("negative run id {id}"))?;
    let mut outputs = vec![None; graph.len()];
    let mut started = vec![false; graph.len()];
    for row in rows {
        let step = rows::int(row, "step", &what).map_err(|e| e.to_string())?;
        let Some(index) = usize::try_from(step).ok().filter(|i| *i < graph.len()) else {
            return Err(rows::bad_data(&what, format!("step {step} is not in the workflow's graph")).to_string());
        };
        started[index] = true;
        outputs[index] = row
            .0
            .try_get::<Option<Vec<u8>>, _>("output")
            .map_err(|e| rows::bad_data(&what, format!("column `output`: {e}")).to_string())?;
    }
    RunProgress::new(run, graph, state, outputs, started)
}

/// The run's plan once its steps' ends are in. A payload that cannot be
/// encoded fails the run (blaming `last_step`, the last step that ended)
/// rather than leave it hanging.
fn take_plan<C: Codec>(run: &mut RunProgress, last_step: Option<u16>) -> RunPlan {
    match run.take_plan::<C>() {
        Ok(plan) => plan,
        Err(error) => {
            let step = last_step.unwrap_or_default();
            tracing::error!(run = %run.id(), %error, "postgres: a workflow step's payload cannot be encoded; the run fails");
            let name = run.graph().name(step).to_owned();
            run.end(step, StepEnd::Failed(error.to_string()));
            let mut plan = run.take_plan::<C>().unwrap_or_default();
            plan.run = run.id();
            if plan.end.is_none() {
                plan.end = Some(RunEnd::Failed(step_failed(&name, &error.to_string())));
            }
            // The failed `take_plan` drained the outputs to store: store every
            // output the run has (those stored before are written again, the same).
            plan.outputs = run
                .outputs()
                .iter()
                .enumerate()
                .filter_map(|(i, output)| Some((u16::try_from(i).ok()?, output.clone()?)))
                .collect();
            plan
        }
    }
}

/// Plans to persist, one array per parameter of `run_apply.sql`.
#[derive(Default)]
struct Persist<'a> {
    /// The task of each `(run, step)` that ended in this transaction.
    tasks: HashMap<(i64, u16), i64>,
    output_run: Vec<i64>,
    output_step: Vec<i32>,
    output_task: Vec<Option<i64>>,
    output: Vec<Vec<u8>>,
    ready_run: Vec<i64>,
    ready_step: Vec<i32>,
    ready_queue: Vec<&'a str>,
    ready_job: Vec<&'a str>,
    ready_payload: Vec<Vec<u8>>,
    ready_max_attempts: Vec<i32>,
    ready_priority: Vec<i16>,
    ready_trace: Vec<Option<&'a str>>,
    done: Vec<i64>,
    failed: Vec<i64>,
    errors: Vec<String>,
}

impl<'a> Persist<'a> {
    /// Adds `plan` of run `run`, whose step tasks go to `queue` as job `job`
    /// with the run's trace context `trace`.
    fn add(&mut self, run: i64, plan: RunPlan, queue: &'a str, job: &'a str, trace: Option<&'a str>) {
        for (step, output) in plan.outputs {
            self.output_run.push(run);
            self.output_step.push(i32::from(step));
            self.output_task.push(self.tasks.get(&(run, step)).copied());
            self.output.push(output);
        }
        for ready in plan.ready {
            self.ready_run.push(run);
            self.ready_step.push(i32::from(ready.step));
            self.ready_queue.push(queue);
            self.ready_job.push(job);
            self.ready_payload.push(ready.payload);
            self.ready_max_attempts.push(i32::try_from(ready.max_attempts).unwrap_or(i32::MAX));
            self.ready_priority.push(ready.priority);
            self.ready_trace.push(trace);
        }
        match plan.end {
            Some(RunEnd::Done) => self.done.push(run),
            Some(RunEnd::Failed(error)) => {
                self.failed.push(run);
                self.errors.push(error);
            }
            None => {}
        }
    }

    fn is_empty(&self) -> bool {
        self.output_run.is_empty() && self.ready_run.is_empty() && self.done.is_empty() && self.failed.is_empty()
    }

    /// Runs `run_apply.sql` on `conn`; returns the queues that got step
    /// tasks (NOTIFYed on commit).
    async fn apply(&self, inner: &Inner, conn: &mut PgConnection, now: Timestamp) -> Result<Vec<String>, sqlx::Error> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        sqlx::query_scalar(&inner.queries.run_apply)
            .bind(now.as_millis())
            .bind(&inner.channel)
            .bind(&self.output_run)
            .bind(&self.output_step)
            .bind(&self.output_task)
            .bind(&self.output)
            .bind(&self.ready_run)
            .bind(&self.ready_step)
            .bind(&self.ready_queue)
            .bind(&self.ready_job)
            .bind(&self.ready_payload)
            .bind(&self.ready_max_attempts)
            .bind(&self.ready_priority)
            .bind(&self.ready_trace)
            .bind(&self.done)
            .bind(&self.failed)
            .bind(&self.errors)
            .fetch_all(&mut *conn)
            .await
    }
}
