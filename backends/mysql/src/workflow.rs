//! Workflows: [`WorkflowStore`] (starting runs, reading and listing them), and
//! advancing runs when their steps end.
//!
//! A step's task row carries `run_id` and `step`. What happens when a step
//! ends is decided by the runtime's planner
//! ([`errand_runtime::workflow::plan`]); this module loads the runs, feeds
//! it, and persists its plans, in the transaction that ends the steps:
//!
//! 1. read which runs the steps belong to, without locking (`step_runs.sql`,
//!    `waiting_runs.sql`, `task_runs.sql`), and lock
//!    those runs' rows in id order (`run_lock.sql`) before any task row;
//! 2. lock the step tasks that will change (`step_tasks.sql`,
//!    `bury_steps.sql`, `rescue_steps.sql`, `cancel_task.sql`): MySQL's
//!    `UPDATE` returns no rows, so the rows an update will change are read
//!    under lock first, with the same guard, and then updated (`ack.sql`,
//!    `bury_unserved.sql`, `mark_dead.sql`, `cancel_task.sql`);
//! 3. read the runs' steps that have a task, and their outputs
//!    (`run_progress.sql`), into a [`RunProgress`] per run, and tell each
//!    which of its steps ended ([`StepEnd`]);
//! 4. persist each run's [`RunPlan`]: the outputs (`step_outputs.sql`, one
//!    statement), the tasks of the steps that became ready (multi-row
//!    inserts, `step_push.sql`, then their `run_steps` rows in one
//!    statement, `step_slots.sql`: under the run locks no other transaction
//!    adds a step to these runs, and a row that exists anyway fails the
//!    transaction rather than give a step a second task), the runs that
//!    are done (`runs_done.sql`), the runs that failed and the cancellation
//!    of their other live steps (`run_fail.sql`).
//!
//! The run lock of step 1 is what makes parallel acks of sibling steps
//! safe: the ends of one run's steps serialise, and each transaction reads
//! the run's steps after it got the lock, in a statement of its own (under
//! `READ COMMITTED`, a statement reads what was committed when it started),
//! so the last sibling to finish sees every output and enqueues their
//! common dependent; the first does not see the second's uncommitted output.
//! Taking the run locks first, in order, keeps two such transactions from
//! deadlocking each other. Plain jobs never pay for any of this: their ack
//! batches are one statement (`ack.sql`), as are batches of only retries and
//! snoozes.

use std::collections::HashMap;

use errand_runtime::backend::{Ack, Outcome, WorkerRegistration};
use errand_runtime::workflow::plan::{Graph, RunEnd, RunPlan, RunProgress, StepEnd, step_failed};
use errand_runtime::workflow::rows::{graph_json, read_graph, read_run_info};
use errand_runtime::workflow::{NewRun, RunFilter, RunId, RunInfo, RunState, WorkflowStore};
use errand_runtime::{Codec, Error, Timestamp};
use sqlx::MySqlConnection;

use crate::connect::Server;
use crate::push::{InsertFailed, inserted_ids, statement_rows};
use crate::rows::{self, Stored, query_error, wrong_reply};
use crate::sql::{ack_json, base64, json, json_ints, raw_id};
use crate::{Inner, MysqlBackend, NAME};

impl<C: Codec> WorkflowStore for MysqlBackend<C> {
    async fn start_run(&self, run: NewRun) -> Result<RunId, Error> {
        let inner = &*self.inner;
        let operation = || format!("start a run of workflow `{}` on queue `{}`", run.workflow, run.queue);
        let steps = graph_json(&run.steps);
        let graph = Graph::new(run.steps.clone())
            .map_err(|problem| Error::Config(format!("workflow `{}` cannot run: {problem}", run.workflow)))?;
        let now = inner.now();
        let mut tx = inner.pool.begin().await.map_err(query_error(operation()))?;
        let done = sqlx::query(&inner.queries.run_insert)
            .bind(run.workflow)
            .bind(&run.queue)
            .bind(&steps)
            .bind(now.as_millis())
            .bind(run.trace.as_deref())
            .execute(&mut *tx)
            .await
            .map_err(query_error(operation()))?;
        let id = done.last_insert_id();
        if id == 0 {
            return Err(wrong_reply(operation(), "no run id came back"));
        }
        let (_, plan) = RunProgress::start::<C>(RunId(id), graph, &run.input)?;
        let mut persist = Persist::default();
        persist.add(raw_id(id), plan, StepTasks { queue: &run.queue, job: run.workflow, trace: run.trace.as_deref() });
        let server = inner.server().await?;
        let queues = persist.apply(inner, server, &mut tx, now).await.map_err(query_error(operation()))?;
        tx.commit().await.map_err(query_error(operation()))?;
        for queue in &queues {
            inner.notifier.notify(queue);
        }
        Ok(RunId(id))
    }

    async fn run_info(&self, run: RunId) -> Result<Option<RunInfo>, Error> {
        let inner = &*self.inner;
        // Run ids are BIGINTs: a larger one names no run.
        let Ok(raw) = i64::try_from(run.0) else { return Ok(None) };
        let operation = || format!("read workflow run {run} of `{}`", inner.location);
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

    /// One statement (`run_ids.sql`, the one for the filters given): the
    /// primary key, or `runs_workflow` / `runs_state` when filtered, walked
    /// backwards from `before` and stopped at the limit.
    async fn run_ids(&self, filter: &RunFilter) -> Result<Vec<RunId>, Error> {
        let inner = &*self.inner;
        let before = filter.before.map_or(i64::MAX, |r| i64::try_from(r.0).unwrap_or(i64::MAX));
        let sql = run_listing(&inner.queries.run_ids, filter.workflow.is_some(), filter.state.is_some());
        let mut query = sqlx::query_scalar::<_, i64>(sql).bind(before);
        if let Some(workflow) = &filter.workflow {
            query = query.bind(workflow.as_str());
        }
        if let Some(state) = filter.state {
            query = query.bind(state.as_str());
        }
        let ids = query
            .bind(i64::from(filter.max()))
            .fetch_all(&inner.pool)
            .await
            .map_err(query_error(format!("list the workflow runs of `{}`", inner.location)))?;
        ids.into_iter()
            .map(|id| {
                u64::try_from(id).map(RunId).map_err(|_| rows::bad_data("the workflow runs", format!("run id {id}")))
            })
            .collect()
    }
}

/// The statement of `run_ids.sql` (`listings`) for a listing filtered by
/// workflow and/or state.
pub(crate) fn run_listing(listings: &[String; 4], workflow: bool, state: bool) -> &str {
    let [all, by_workflow, by_state, by_both] = listings;
    match (workflow, state) {
        (false, false) => all,
        (true, false) => by_workflow,
        (false, true) => by_state,
        (true, true) => by_both,
    }
}

/// A run locked by the transaction that ends some of its steps.
pub(crate) struct LockedRun {
    workflow: String,
    queue: String,
    /// The trace context it was started with, which its step tasks carry.
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
    pub(crate) step: i64,
    pub(crate) end: StepEnd,
}

/// Locks and reads the runs `ids` (`run_lock.sql`), in id order.
pub(crate) async fn lock_runs(
    conn: &mut MySqlConnection,
    inner: &Inner,
    mut ids: Vec<i64>,
    operation: &str,
) -> Result<Locked, Error> {
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(Locked::new());
    }
    let found = sqlx::query(&inner.queries.run_lock)
        .bind(json_ints(ids))
        .fetch_all(&mut *conn)
        .await
        .map_err(query_error(operation))?;
    let mut locked = Locked::with_capacity(found.len());
    for row in rows::stored(found) {
        let id = rows::int(&row, "id", "a workflow run")?;
        let what = format!("workflow run {id}");
        let workflow = rows::text(&row, "workflow", &what)?;
        let queue = rows::text(&row, "queue", &what)?;
        // A context that cannot be read is observability lost, not a reason
        // to stop the run: the steps it makes ready go without one.
        let trace = errand_runtime::backend::stored::StoredRow::text(&row, "trace").unwrap_or_else(|problem| {
            tracing::warn!(run = id, %problem, "mysql: a workflow run's trace context cannot be read; its steps carry none");
            None
        });
        let read = rows::text(&row, "state", &what).and_then(|state| {
            let state =
                RunState::parse(&state).ok_or_else(|| rows::bad_data(&what, format!("unknown run state `{state}`")))?;
            Ok((state, read_graph(NAME, &rows::text(&row, "steps", &what)?, &what)?))
        });
        locked.insert(id, LockedRun { workflow, queue, trace, read });
    }
    Ok(locked)
}

/// The run ids in column `run_id` of `rows` (read without locking).
pub(crate) fn run_ids(rows: &[Stored], what: &str) -> Result<Vec<i64>, Error> {
    rows.iter().filter_map(|row| rows::opt_int(row, "run_id", what).transpose()).collect()
}

/// The workflow steps among rows of `id`, `run_id` and `step` columns (rows
/// without a run are no steps), each ended with what `end` says.
pub(crate) fn ended_steps(
    found: &[Stored],
    what: &str,
    mut end: impl FnMut(i64, &Stored) -> Result<Option<StepEnd>, Error>,
) -> Result<Vec<Ended>, Error> {
    let mut ended = Vec::new();
    for row in found {
        let (Some(run), Some(step)) = (rows::opt_int(row, "run_id", what)?, rows::opt_int(row, "step", what)?) else {
            continue;
        };
        let task = rows::int(row, "id", what)?;
        if let Some(end) = end(task, row)? {
            ended.push(Ended { task, run, step, end });
        }
    }
    Ok(ended)
}

/// Feeds `ended` to the planner and persists its plans, in the transaction
/// that ended those steps and holds the locks of `runs` (the runs of steps
/// that changed after the runs were locked are locked now). New step tasks
/// are of job `job`, or of their run's workflow. Returns the queues that got
/// step tasks.
pub(crate) async fn advance<C: Codec>(
    conn: &mut MySqlConnection,
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
    // Runs of steps whose task changed between the unlocked read and its
    // lock (claimed or enqueued meanwhile: rare).
    let missing: Vec<i64> = ended.iter().map(|e| e.run).filter(|run| !runs.contains_key(run)).collect();
    if !missing.is_empty() {
        runs.extend(lock_runs(&mut *conn, inner, missing, operation).await?);
    }

    let mut run_ids: Vec<i64> = ended.iter().map(|e| e.run).collect();
    run_ids.sort_unstable();
    run_ids.dedup();
    let found = sqlx::query(&inner.queries.run_progress)
        .bind(json_ints(run_ids.iter().copied()))
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
            tracing::warn!(run = run_id, "mysql: a workflow step's run no longer exists");
            continue;
        };
        let plan = match progress.remove(run_id) {
            Some(Ok(mut run)) => take_plan::<C>(&mut run, last_step.get(run_id).copied()),
            Some(Err(error)) => {
                tracing::error!(run = run_id, %error, "mysql: a workflow run cannot be read; it fails");
                let run = u64::try_from(*run_id).map(RunId).unwrap_or_default();
                RunPlan { run, end: Some(RunEnd::Failed(error)), ..RunPlan::default() }
            }
            None => continue,
        };
        let tasks =
            StepTasks { queue: &locked.queue, job: job.unwrap_or(&locked.workflow), trace: locked.trace.as_deref() };
        persist.add(*run_id, plan, tasks);
    }
    let server = inner.server().await?;
    persist.apply(inner, server, conn, now).await.map_err(query_error(operation))
}

/// Records `acks` of `worker`, a worker of workflow steps, in one
/// transaction that advances their runs. See the [module docs](self).
pub(crate) async fn ack_steps<C: Codec>(
    backend: &MysqlBackend<C>,
    worker: &WorkerRegistration,
    acks: &[Ack],
) -> Result<(), Error> {
    let inner = &*backend.inner;
    let queries = &inner.queries;
    let operation =
        format!("record {} outcome(s) of workflow `{}` on queue `{}`", acks.len(), worker.job, worker.queue);
    let now = inner.now();
    let ids = json_ints(acks.iter().map(|a| raw_id(a.id.0)));
    let mut tx = inner.pool.begin().await.map_err(query_error(&operation))?;

    // 1. Lock the runs, in id order, before any task row.
    let found = sqlx::query(&queries.step_runs)
        .bind(&ids)
        .bind(&*worker.id)
        .fetch_all(&mut *tx)
        .await
        .map_err(query_error(&operation))?;
    let runs =
        lock_runs(&mut tx, inner, run_ids(&rows::stored(found), "the runs of acknowledged steps")?, &operation).await?;

    // 2. Lock the tasks the ack changes, then record every outcome.
    let changed = sqlx::query(&queries.step_tasks)
        .bind(&ids)
        .bind(&*worker.id)
        .fetch_all(&mut *tx)
        .await
        .map_err(query_error(&operation))?;
    let changed = rows::stored(changed);
    let done = sqlx::query(&queries.ack)
        .bind(ack_json(acks, false))
        .bind(now.as_millis())
        .bind(&*worker.id)
        .execute(&mut *tx)
        .await
        .map_err(query_error(&operation))?;
    let by_id: HashMap<i64, &Outcome> = acks.iter().map(|a| (raw_id(a.id.0), &a.outcome)).collect();
    let ended = ended_steps(&changed, "a task the ack of workflow steps changed", |task, _| {
        Ok(match by_id.get(&task) {
            Some(Outcome::Done { result }) => Some(StepEnd::Done(result.clone())),
            Some(Outcome::Dead { error }) => Some(StepEnd::Failed(error.clone())),
            Some(Outcome::Retry { .. } | Outcome::Snooze { .. }) | None => None,
        })
    })?;

    // 3 and 4. Feed the planner; persist its plans.
    let queues = advance::<C>(&mut tx, inner, runs, ended, Some(worker.job), now, &operation).await?;
    tx.commit().await.map_err(query_error(&operation))?;

    rows::log_ignored(worker, acks.len(), done.rows_affected());
    for queue in &queues {
        inner.notifier.notify(queue);
    }
    let requeues = acks.iter().any(|a| matches!(a.outcome, Outcome::Retry { .. } | Outcome::Snooze { .. }));
    if requeues && !queues.iter().any(|q| **q == *worker.queue) {
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
    use errand_runtime::backend::stored::StoredRow;
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
        outputs[index] =
            row.bytes("output").map_err(|e| rows::bad_data(&what, format!("column `output`: {e}")).to_string())?;
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
            tracing::error!(run = %run.id(), %error, "mysql: a workflow step's payload cannot be encoded; the run fails");
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

/// What the tasks of a run's ready steps are: of job `job` on `queue`,
/// carrying the run's trace context.
#[derive(Clone, Copy)]
struct StepTasks<'a> {
    queue: &'a str,
    job: &'a str,
    trace: Option<&'a str>,
}

/// A step to enqueue: run, step, queue, job, trace, and its task's values.
struct Ready<'a> {
    run: i64,
    step: u16,
    queue: &'a str,
    job: &'a str,
    trace: Option<&'a str>,
    payload: Vec<u8>,
    max_attempts: u32,
    priority: i16,
}

/// Plans to persist.
#[derive(Default)]
struct Persist<'a> {
    /// The task of each `(run, step)` that ended in this transaction.
    tasks: HashMap<(i64, u16), i64>,
    /// `[run, step, task, output in base64]`, for `step_outputs.sql`.
    outputs: Vec<(i64, u16, Option<i64>, String)>,
    ready: Vec<Ready<'a>>,
    done: Vec<i64>,
    failed: Vec<(i64, String)>,
}

impl<'a> Persist<'a> {
    /// Adds `plan` of run `run`, whose step tasks are as `tasks` says.
    fn add(&mut self, run: i64, plan: RunPlan, tasks: StepTasks<'a>) {
        let StepTasks { queue, job, trace } = tasks;
        for (step, output) in plan.outputs {
            self.outputs.push((run, step, self.tasks.get(&(run, step)).copied(), base64(&output)));
        }
        for ready in plan.ready {
            self.ready.push(Ready {
                run,
                step: ready.step,
                queue,
                job,
                trace,
                payload: ready.payload,
                max_attempts: ready.max_attempts,
                priority: ready.priority,
            });
        }
        match plan.end {
            Some(RunEnd::Done) => self.done.push(run),
            Some(RunEnd::Failed(error)) => self.failed.push((run, error)),
            None => {}
        }
    }

    /// Writes the plans on `conn`; returns the queues that got step tasks.
    async fn apply(
        &self,
        inner: &Inner,
        server: &Server,
        conn: &mut MySqlConnection,
        now: Timestamp,
    ) -> Result<Vec<String>, sqlx::Error> {
        let queries = &inner.queries;
        if !self.outputs.is_empty() {
            sqlx::query(&queries.step_outputs).bind(json(&self.outputs)).execute(&mut *conn).await?;
        }
        let mut queues: Vec<String> = Vec::new();
        if !self.ready.is_empty() {
            let ids = insert_step_tasks(inner, server, conn, &self.ready, now).await?;
            let slots: Vec<(i64, u16, i64)> = self.ready.iter().zip(ids).map(|(r, id)| (r.run, r.step, id)).collect();
            sqlx::query(&queries.step_slots).bind(json(&slots)).execute(&mut *conn).await?;
            for ready in &self.ready {
                if !queues.iter().any(|q| q == ready.queue) {
                    queues.push(ready.queue.to_owned());
                }
            }
        }
        if !self.done.is_empty() {
            sqlx::query(&queries.runs_done)
                .bind(json_ints(self.done.iter().copied()))
                .bind(now.as_millis())
                .execute(&mut *conn)
                .await?;
        }
        let [fail_run, cancel_running, cancel_waiting] = &queries.run_fail;
        for (run, error) in &self.failed {
            sqlx::query(fail_run).bind(error).bind(now.as_millis()).bind(run).execute(&mut *conn).await?;
            sqlx::query(cancel_running).bind(now.as_millis()).bind(run).execute(&mut *conn).await?;
            sqlx::query(cancel_waiting).bind(now.as_millis()).bind(run).execute(&mut *conn).await?;
        }
        Ok(queues)
    }
}

/// Inserts the tasks of `ready` in multi-row inserts sized as a bulk
/// enqueue's ([`statement_rows`]); returns their ids, in order. Their slots
/// are free: the caller holds their runs' locks.
async fn insert_step_tasks(
    inner: &Inner,
    server: &Server,
    conn: &mut MySqlConnection,
    ready: &[Ready<'_>],
    now: Timestamp,
) -> Result<Vec<i64>, sqlx::Error> {
    let mut ids = Vec::with_capacity(ready.len());
    let mut rest = ready;
    while !rest.is_empty() {
        let sizes =
            rest.iter().map(|r| r.payload.len() + r.queue.len() + r.job.len() + r.trace.map_or(0, str::len) + 72);
        let rows = statement_rows(server.max_packet, sizes);
        let (chunk, after) = rest.split_at(rows);
        rest = after;
        let sql = inner.queries.step_push_rows(rows, server.returning());
        let mut query = sqlx::query(&sql);
        for r in chunk {
            query = query
                .bind(r.queue)
                .bind(r.job)
                .bind(&r.payload)
                .bind(i64::from(r.max_attempts))
                .bind(r.priority)
                .bind(now.as_millis())
                .bind(now.as_millis())
                .bind(r.run)
                .bind(i32::from(r.step))
                .bind(r.trace);
        }
        let inserted = inserted_ids(conn, server, query, rows).await.map_err(|failed| match failed {
            InsertFailed::Query(e) => e,
            InsertFailed::Reply(problem) => sqlx::Error::Protocol(format!("step tasks: {problem}")),
        })?;
        ids.extend(inserted);
    }
    Ok(ids)
}
