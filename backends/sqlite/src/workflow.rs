//! `impl WorkflowStore for SqliteBackend`, and advancing runs when their
//! steps end: loading the runs, feeding the runtime's planner
//! ([`errand_runtime::workflow::plan`]) and persisting its plans.
//!
//! A step's task row carries `run_id` and `step`; `errand_run_steps` has a
//! row per step that has a task, with its output once done. Whatever ends a
//! step task (an ack, a rescue on the last attempt, a burial, a cancel) gets
//! back `(task, run, step)` from the statement that ended it — only rows it
//! really changed — and calls [`end_steps`] on the same transaction: the
//! runs are read (with which steps have tasks and their outputs), the ends
//! fed to their [`RunProgress`], and each plan written in a fixed number of
//! statements however many runs the batch touches. Nothing is remembered in
//! memory between a claim and its ack, so an ack whose transaction fails is
//! applied in full when it is sent again.

use std::collections::{BTreeMap, HashMap};

use errand_runtime::backend::stored::{StoredRow, bad_data};
use errand_runtime::workflow::plan::{Graph, RunEnd, RunPlan, RunProgress, StepEnd};
use errand_runtime::workflow::rows;
use errand_runtime::workflow::{NewRun, RunFilter, RunId, RunInfo, RunState, WorkflowStore};
use errand_runtime::{BackendError, Codec, Error, Timestamp};
use sqlx::{Connection, SqliteConnection};

use crate::encode::JsonRows;
use crate::rows::{Stored, json_ints, query_error, raw_run, run_id, step_of, stored};
use crate::{NAME, SqliteBackend, sql};

/// A step task that ended: the task, its run and step, and how.
#[derive(Debug)]
pub(crate) struct EndedStep {
    pub(crate) task: i64,
    pub(crate) run: i64,
    pub(crate) step: u16,
    pub(crate) end: StepEnd,
}

impl EndedStep {
    /// The step of a row with columns `id`, `run_id` and `step` that ended
    /// with `end`; `None` for a task that is no workflow step.
    pub(crate) fn of(row: &Stored, end: impl FnOnce() -> Result<StepEnd, Error>) -> Result<Option<Self>, Error> {
        let Some((task, run, step)) = step_of(row)? else { return Ok(None) };
        Ok(Some(Self { task, run, step, end: end()? }))
    }
}

impl<C: Codec> WorkflowStore for SqliteBackend<C> {
    async fn start_run(&self, run: NewRun) -> Result<RunId, Error> {
        let operation = || format!("start a run of workflow `{}` on queue `{}`", run.workflow, run.queue);
        let graph = Graph::new(run.steps.clone()).map_err(|problem| {
            Error::Config(format!("{NAME} backend: workflow `{}` cannot run: {problem}", run.workflow))
        })?;
        let steps = serde_json::to_string(&run.steps).map_err(|e| BackendError::new(NAME, operation(), e))?;
        let now = self.tuning.clock.now();
        let mut conn = self.inner.writer.acquire().await.map_err(query_error(operation()))?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(query_error(operation()))?;
        let id: i64 = sqlx::query_scalar(sql::RUN_INSERT)
            .bind(run.workflow)
            .bind(&run.queue)
            .bind(&steps)
            .bind(now.as_millis())
            .bind(run.trace.as_deref())
            .fetch_one(&mut *tx)
            .await
            .map_err(query_error(operation()))?;
        let (_, plan) = RunProgress::start::<C>(run_id(id)?, graph, &run.input)?;
        let mut writes = Writes::new();
        let steps = Steps { workflow: run.workflow, queue: &run.queue, trace: run.trace.as_deref() };
        writes.add(id, steps, plan, &HashMap::new());
        let woken = writes.apply(&mut tx, now, Finish::Open).await?;
        tx.commit().await.map_err(query_error(operation()))?;
        drop(conn);
        self.wake_all(&woken);
        run_id(id)
    }

    /// One statement (`run_list_sql`) on a reader connection.
    async fn run_ids(&self, filter: &RunFilter) -> Result<Vec<RunId>, Error> {
        let statement = run_list_sql(filter);
        let mut query = sqlx::query_scalar(&statement).bind(filter.before.map_or(i64::MAX, raw_run));
        if let Some(workflow) = &filter.workflow {
            query = query.bind(workflow.as_str());
        }
        if let Some(state) = filter.state {
            query = query.bind(state.as_str());
        }
        let ids: Vec<i64> = query
            .bind(i64::from(filter.max()))
            .fetch_all(&self.inner.reader)
            .await
            .map_err(query_error("list workflow runs"))?;
        ids.into_iter().map(run_id).collect()
    }

    async fn run_info(&self, run: RunId) -> Result<Option<RunInfo>, Error> {
        let operation = || format!("read workflow run {run}");
        let mut conn = self.inner.reader.acquire().await.map_err(query_error(operation()))?;
        let Some(row) = sqlx::query(sql::RUN_SELECT)
            .bind(raw_run(run))
            .fetch_optional(&mut *conn)
            .await
            .map_err(query_error(operation()))?
        else {
            return Ok(None);
        };
        let steps = sqlx::query(sql::RUN_STEPS)
            .bind(raw_run(run))
            .fetch_all(&mut *conn)
            .await
            .map_err(query_error(operation()))?;
        rows::read_run_info(NAME, run, &Stored(row), &stored(steps)).map(Some)
    }
}

/// The run listing statement for `filter`: parameters `before`, then the
/// workflow and state it filters on, then the limit. It walks the runs
/// newest first by the primary key from `before`, checking the filter.
pub(crate) fn run_list_sql(filter: &RunFilter) -> String {
    let mut statement = String::from("SELECT id FROM errand_runs WHERE id < ?");
    if filter.workflow.is_some() {
        statement.push_str(" AND workflow = ?");
    }
    if filter.state.is_some() {
        statement.push_str(" AND state = ?");
    }
    statement.push_str(" ORDER BY id DESC LIMIT ?");
    statement
}

/// Advances the runs of steps that ended, on `conn`'s transaction (the one
/// that ended them): loads the runs still running (one round trip,
/// [`sql::RUNS_OF_TASKS`]), then [`advance`]s them. Returns the queues that
/// got new tasks.
pub(crate) async fn end_steps<C: Codec>(
    conn: &mut SqliteConnection,
    ended: Vec<EndedStep>,
    now: Timestamp,
) -> Result<Vec<String>, Error> {
    if ended.is_empty() {
        return Ok(Vec::new());
    }
    let operation = || format!("advance the workflow runs of {} ended step task(s)", ended.len());
    let mut tasks = JsonRows::with_capacity(ended.len() * 8);
    for e in &ended {
        let _ = tasks.row().int(e.task);
    }
    let rows = sqlx::query(sql::RUNS_OF_TASKS)
        .bind(tasks.finish())
        .bind("[]")
        .fetch_all(&mut *conn)
        .await
        .map_err(query_error(operation()))?;
    let mut runs = RunRows::default();
    for row in rows.into_iter().map(Stored) {
        runs.push(row)?;
    }
    advance::<C>(conn, ended, runs, now, Finish::Open).await
}

/// How [`advance`] leaves the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
    /// Open, for the caller to commit (an sqlx transaction).
    Open,
    /// Committed, in the same round trip as the writes: the transaction was
    /// begun by a script ([`sql::STEP_ACK`]).
    Commit,
}

/// The rows of parts `run` and `step` of [`sql::RUNS_OF_TASKS`] (and of
/// [`sql::STEP_ACK`]): the runs of some step tasks and their steps.
#[derive(Default)]
pub(crate) struct RunRows {
    runs: Vec<Stored>,
    steps: HashMap<i64, Vec<Stored>>,
}

impl RunRows {
    /// Keeps `row` if its `part` is `run` or `step`; an error for any other.
    pub(crate) fn push(&mut self, row: Stored) -> Result<(), Error> {
        match required(row.text("part"), "a workflow run row", "part")?.as_str() {
            "run" => self.runs.push(row),
            "step" => {
                let run = required(row.int("run_id"), "a workflow run's step row", "run_id")?;
                self.steps.entry(run).or_default().push(row);
            }
            other => return Err(column("a workflow run row", "part", format!("unexpected part `{other}`"))),
        }
        Ok(())
    }
}

/// Advances the runs of steps that ended, on `conn`'s transaction (the one
/// that ended them), from their rows as read in it: feeds each run still
/// running its ends in order, and writes the plans in one round trip
/// ([`sql::RUN_ADVANCE`]), then leaves the transaction as `finish` says.
/// Runs without an end in `ended` are left as they are. Returns the queues
/// that got new tasks.
pub(crate) async fn advance<C: Codec>(
    conn: &mut SqliteConnection,
    ended: Vec<EndedStep>,
    rows: RunRows,
    now: Timestamp,
    finish: Finish,
) -> Result<Vec<String>, Error> {
    let tasks: HashMap<(i64, u16), i64> = ended.iter().map(|e| ((e.run, e.step), e.task)).collect();
    // In id order, so that what a batch writes does not depend on hashing.
    let mut runs: BTreeMap<i64, Loaded> = BTreeMap::new();
    for row in &rows.runs {
        let loaded = Loaded::read(row, &rows.steps)?;
        if ended.iter().any(|e| e.run == loaded.id) {
            runs.insert(loaded.id, loaded);
        }
    }
    // Runs that are not loaded have ended (or are gone): their steps' ends
    // change nothing, as the planner would decide.
    for e in ended {
        if let Some(Loaded { progress: Ok(progress), .. }) = runs.get_mut(&e.run) {
            progress.end(e.step, e.end);
        }
    }
    let mut writes = Writes::new();
    for (id, loaded) in &mut runs {
        let plan = match &mut loaded.progress {
            Ok(progress) => match progress.take_plan::<C>() {
                Ok(plan) => plan,
                // A payload that cannot be encoded fails the run rather than hang it.
                Err(error) => failed(progress.id(), error.to_string()),
            },
            // A run whose stored graph cannot be read cannot go on: it fails
            // with the reason (the ack is not refused, so the worker goes on).
            Err(error) => failed(RunId(u64::try_from(*id).unwrap_or_default()), error.to_string()),
        };
        let steps = Steps { workflow: &loaded.workflow, queue: &loaded.queue, trace: loaded.trace.as_deref() };
        writes.add(*id, steps, plan, &tasks);
    }
    writes.apply(conn, now, finish).await
}

fn failed(run: RunId, error: String) -> RunPlan {
    RunPlan { run, end: Some(RunEnd::Failed(error)), ..RunPlan::default() }
}

/// A running run as read back for the planner.
struct Loaded {
    id: i64,
    workflow: String,
    queue: String,
    /// The trace context it was started with, which its step tasks carry.
    trace: Option<String>,
    /// Its progress, or why its stored graph or steps cannot be read.
    progress: Result<RunProgress, Error>,
}

impl Loaded {
    /// The run of `row` (columns `id`, `workflow`, `queue`, `steps`, `trace`) with
    /// its steps from `steps`, by run (columns `step`, `output`).
    fn read(row: &Stored, steps: &HashMap<i64, Vec<Stored>>) -> Result<Self, Error> {
        let id = required(row.int("id"), "a workflow run row", "id")?;
        let what = format!("workflow run {id}");
        let workflow = required(row.text("workflow"), &what, "workflow")?;
        let queue = required(row.text("queue"), &what, "queue")?;
        // A context that cannot be read is observability lost, not a reason
        // to stop the run: its next steps go without one.
        let trace = row.text("trace").unwrap_or_else(|problem| {
            tracing::warn!(run = id, %problem, "sqlite: a workflow run's trace context cannot be read; its steps carry none");
            None
        });
        let progress = required(row.text("steps"), &what, "steps").and_then(|json| {
            let graph = rows::read_graph(NAME, &json, &what)?;
            let mut outputs = vec![None; graph.len()];
            let mut started = vec![false; graph.len()];
            for step_row in steps.get(&id).map_or(&[][..], Vec::as_slice) {
                let step = required(step_row.int("step"), &what, "step")?;
                let Some(index) = usize::try_from(step).ok().filter(|i| *i < graph.len()) else {
                    return Err(bad_data(NAME, &what, format!("step {step} is not in the workflow's graph")));
                };
                started[index] = true;
                outputs[index] = step_row.bytes("output").map_err(|e| column(&what, "output", e))?;
            }
            RunProgress::new(run_id(id)?, graph, RunState::Running, outputs, started)
                .map_err(|problem| bad_data(NAME, &what, problem))
        });
        Ok(Self { id, workflow, queue, trace, progress })
    }
}

/// What a run's ready steps become: tasks of job `workflow` on `queue`,
/// carrying the run's `trace` context.
#[derive(Clone, Copy)]
struct Steps<'a> {
    workflow: &'a str,
    queue: &'a str,
    trace: Option<&'a str>,
}

/// What the plans of one batch write, gathered so that each kind of write
/// is one statement however many runs there are.
struct Writes {
    /// `[run_id, step, task_id, output_hex]`.
    outputs: JsonRows,
    /// `[queue, job, payload_hex, max_attempts, priority, run_id, step, trace]`.
    ready: JsonRows,
    done: Vec<i64>,
    failed: Vec<(i64, String)>,
    woken: Vec<String>,
    /// The runs with something to write, for messages.
    runs: Vec<i64>,
}

impl Writes {
    fn new() -> Self {
        Self {
            outputs: JsonRows::with_capacity(0),
            ready: JsonRows::with_capacity(0),
            done: Vec::new(),
            failed: Vec::new(),
            woken: Vec::new(),
            runs: Vec::new(),
        }
    }

    /// Adds run `run`'s plan. Its ready steps are tasks as `steps` says;
    /// `tasks` gives the task of each step that ended.
    fn add(&mut self, run: i64, steps: Steps<'_>, plan: RunPlan, tasks: &HashMap<(i64, u16), i64>) {
        let Steps { workflow, queue, trace } = steps;
        if !plan.is_empty() {
            self.runs.push(run);
        }
        for (step, output) in &plan.outputs {
            if let Some(task) = tasks.get(&(run, *step)) {
                let _ = self.outputs.row().int(run).int(*step).int(*task).hex(output);
            }
        }
        for ready in &plan.ready {
            let _ = self
                .ready
                .row()
                .str(queue)
                .str(workflow)
                .hex(&ready.payload)
                .int(ready.max_attempts)
                .int(ready.priority)
                .int(run)
                .int(ready.step)
                .opt_str(trace);
        }
        if !plan.ready.is_empty() && !self.woken.iter().any(|q| q == queue) {
            self.woken.push(queue.to_owned());
        }
        match plan.end {
            Some(RunEnd::Done) => self.done.push(run),
            Some(RunEnd::Failed(error)) => self.failed.push((run, error)),
            None => {}
        }
    }

    /// Writes everything on `conn`, the outputs, ready steps and finished
    /// runs in one round trip (with `COMMIT` if `finish` says so); returns
    /// the queues that got new tasks.
    async fn apply(self, conn: &mut SqliteConnection, now: Timestamp, finish: Finish) -> Result<Vec<String>, Error> {
        let Self { outputs, ready, done, failed, woken, runs } = self;
        let runs = runs.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
        // Failures are rare: one run at a time, before the script that may commit.
        for (run, error) in failed {
            let operation = || format!("fail workflow run {run}");
            sqlx::query(sql::RUN_FAIL)
                .bind(run)
                .bind(&error)
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
        }
        if !(outputs.is_empty() && ready.is_empty() && done.is_empty()) {
            let count = ready.len();
            let script = match finish {
                Finish::Open => sql::RUN_ADVANCE,
                Finish::Commit => sql::RUN_ADVANCE_COMMIT,
            };
            sqlx::query(script)
                .bind(outputs.finish())
                .bind(ready.finish())
                .bind(now.as_millis())
                .bind(json_ints(done))
                .execute(&mut *conn)
                .await
                .map_err(query_error(format!(
                    "store the step outputs, enqueue {count} ready step(s) and finish the done ones of workflow \
                     run(s) {runs}"
                )))?;
        } else if finish == Finish::Commit {
            sqlx::query("COMMIT").execute(&mut *conn).await.map_err(query_error("commit a workflow step ack"))?;
        }
        Ok(woken)
    }
}

fn column(what: &str, column: &str, problem: impl std::fmt::Display) -> Error {
    bad_data(NAME, what, format!("column `{column}`: {problem}"))
}

fn required<T>(value: Result<Option<T>, String>, what: &str, name: &str) -> Result<T, Error> {
    match value {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(column(what, name, "is NULL")),
        Err(problem) => Err(column(what, name, problem)),
    }
}
