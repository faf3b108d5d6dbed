//! Workflow cases of the conformance suite, for backends that implement
//! [`WorkflowStore`] (the `workflows` capability of
//! [`conformance_tests!`](crate::conformance_tests)).

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::jobs::Probe;
use super::support::{Flaky, Running, wait_for};
use super::{BackendFactory, TestSettings};
use crate::Backoff;
use crate::backend::Backend;
use crate::codec::{Codec, JsonCodec};
use crate::context::{Requirements, TaskCx};
use crate::error::{CodecError, Error};
use crate::job::JobOptions;
use crate::job_error::JobError;
use crate::monitor::Monitor;
use crate::task::TaskState;
use crate::worker::WorkerBuilder;
use crate::workflow::{Bytes, NewRun, Run, RunState, StepSpec, StepTask, Workflow, WorkflowExt, WorkflowStore};

fn spec(name: &str, after: &[u16], retries: u32) -> StepSpec {
    StepSpec { name: name.into(), after: after.to_vec(), max_attempts: retries + 1, priority: 0 }
}

fn input<C: Codec, T: DeserializeOwned>(inputs: &[Bytes], i: usize) -> Result<T, JobError> {
    let bytes = inputs.get(i).ok_or_else(|| JobError::abort(format!("missing input {i}")))?;
    C::decode(&bytes.0, "a step input").map_err(JobError::abort)
}

fn output<C: Codec, T: Serialize>(value: &T) -> Result<Vec<u8>, JobError> {
    C::encode(value, "a step output").map_err(JobError::abort)
}

fn probe(cx: &TaskCx) -> Result<crate::Data<Probe>, JobError> {
    cx.data::<Probe>().ok_or_else(|| JobError::abort("the suite forgot Data<Probe>"))
}

/// fetch(n) → [double(n), label(n)] → join(d, l): a diamond.
/// `double` hangs on its first attempt when `n` is 99 (for the kill case).
#[derive(Debug)]
pub struct Diamond(pub u64);

impl Workflow for Diamond {
    const NAME: &'static str = "conformance_diamond";
    const QUEUE: &'static str = "conformance_wf";
    type Input = u64;
    type Output = (u64, String);

    fn steps() -> Vec<StepSpec> {
        vec![spec("fetch", &[], 2), spec("double", &[0], 2), spec("label", &[0], 2), spec("join", &[1, 2], 2)]
    }

    fn into_input(self) -> u64 {
        self.0
    }

    fn step_options(_step: u16) -> JobOptions {
        JobOptions { retries: 2, backoff: Backoff::fixed(Duration::from_millis(20)), ..JobOptions::DEFAULT }
    }

    fn requirements(r: &mut Requirements) {
        r.data::<Probe>();
    }

    async fn run_step<C: Codec>(step: u16, inputs: Vec<Bytes>, cx: TaskCx) -> Result<Vec<u8>, JobError> {
        let probe = probe(&cx)?;
        probe.start(u64::from(step), &cx);
        let out = match step {
            0 => output::<C, _>(&(input::<C, u64>(&inputs, 0)? + 1)),
            1 => {
                let n: u64 = input::<C, u64>(&inputs, 0)?;
                if n == 100 && cx.attempt() == 1 {
                    std::future::pending::<()>().await;
                }
                output::<C, _>(&(n * 2))
            }
            2 => output::<C, _>(&format!("n={}", input::<C, u64>(&inputs, 0)?)),
            3 => output::<C, _>(&(input::<C, u64>(&inputs, 0)?, input::<C, String>(&inputs, 1)?)),
            _ => Err(JobError::abort("no such step")),
        };
        probe.end();
        out
    }

    fn decode_output<C: Codec>(sinks: Vec<Vec<u8>>) -> Result<(u64, String), CodecError> {
        C::decode(sinks.first().map_or(&[][..], |b| b), "the output of conformance_diamond")
    }
}

/// start → [boom (aborts), slow → after_slow] → join. The run must fail at
/// `boom`; `slow` is cancelled, `after_slow` and `join` never start.
#[derive(Debug)]
pub struct Fragile;

impl Workflow for Fragile {
    const NAME: &'static str = "conformance_fragile";
    const QUEUE: &'static str = "conformance_wf";
    type Input = ();
    type Output = u64;

    fn steps() -> Vec<StepSpec> {
        vec![
            spec("start", &[], 0),
            spec("boom", &[0], 3),
            spec("slow", &[0], 0),
            spec("after_slow", &[2], 0),
            spec("join", &[1, 3], 0),
        ]
    }

    fn into_input(self) {}

    fn step_options(_step: u16) -> JobOptions {
        JobOptions { retries: 0, ..JobOptions::DEFAULT }
    }

    fn requirements(r: &mut Requirements) {
        r.data::<Probe>();
    }

    async fn run_step<C: Codec>(step: u16, _inputs: Vec<Bytes>, cx: TaskCx) -> Result<Vec<u8>, JobError> {
        let probe = probe(&cx)?;
        probe.start(u64::from(step), &cx);
        let result = match step {
            1 => Err(JobError::abort("boom: the account is locked")),
            2 => {
                // Wait for the cancellation that the failure of `boom` causes.
                let _ = tokio::time::timeout(Duration::from_secs(60), cx.cancellation().cancelled()).await;
                output::<C, _>(&2_u64)
            }
            _ => output::<C, _>(&u64::from(step)),
        };
        probe.end();
        result
    }

    fn decode_output<C: Codec>(sinks: Vec<Vec<u8>>) -> Result<u64, CodecError> {
        C::decode(sinks.first().map_or(&[][..], |b| b), "the output of conformance_fragile")
    }
}

/// report(left, fetch) ← left(fetch) ← fetch(n), declared in that order:
/// every step before the steps it runs after.
#[derive(Debug)]
pub struct Backwards(pub u64);

impl Workflow for Backwards {
    const NAME: &'static str = "conformance_backwards";
    const QUEUE: &'static str = "conformance_wf";
    type Input = u64;
    type Output = u64;

    fn steps() -> Vec<StepSpec> {
        vec![spec("report", &[1, 2], 1), spec("left", &[2], 1), spec("fetch", &[], 1)]
    }

    fn into_input(self) -> u64 {
        self.0
    }

    fn step_options(_step: u16) -> JobOptions {
        JobOptions { retries: 1, backoff: Backoff::fixed(Duration::from_millis(20)), ..JobOptions::DEFAULT }
    }

    fn requirements(r: &mut Requirements) {
        r.data::<Probe>();
    }

    async fn run_step<C: Codec>(step: u16, inputs: Vec<Bytes>, cx: TaskCx) -> Result<Vec<u8>, JobError> {
        let probe = probe(&cx)?;
        probe.start(u64::from(step), &cx);
        let out = match step {
            0 => output::<C, _>(&(input::<C, u64>(&inputs, 0)? * 1000 + input::<C, u64>(&inputs, 1)?)),
            1 => output::<C, _>(&(input::<C, u64>(&inputs, 0)? * 2)),
            2 => output::<C, _>(&(input::<C, u64>(&inputs, 0)? + 1)),
            _ => Err(JobError::abort("no such step")),
        };
        probe.end();
        out
    }

    fn decode_output<C: Codec>(sinks: Vec<Vec<u8>>) -> Result<u64, CodecError> {
        C::decode(sinks.first().map_or(&[][..], |b| b), "the output of conformance_backwards")
    }
}

/// hang → after: `hang` has a single attempt and never finishes it (until
/// its worker is killed).
#[derive(Debug)]
pub struct LastChance;

impl Workflow for LastChance {
    const NAME: &'static str = "conformance_last_chance";
    const QUEUE: &'static str = "conformance_wf";
    type Input = ();
    type Output = u64;

    fn steps() -> Vec<StepSpec> {
        vec![spec("hang", &[], 0), spec("after", &[0], 0)]
    }

    fn into_input(self) {}

    fn step_options(_step: u16) -> JobOptions {
        JobOptions { retries: 0, ..JobOptions::DEFAULT }
    }

    fn requirements(r: &mut Requirements) {
        r.data::<Probe>();
    }

    async fn run_step<C: Codec>(step: u16, _inputs: Vec<Bytes>, cx: TaskCx) -> Result<Vec<u8>, JobError> {
        let probe = probe(&cx)?;
        probe.start(u64::from(step), &cx);
        if step == 0 {
            std::future::pending::<()>().await;
        }
        probe.end();
        output::<C, _>(&u64::from(step))
    }

    fn decode_output<C: Codec>(sinks: Vec<Vec<u8>>) -> Result<u64, CodecError> {
        C::decode(sinks.first().map_or(&[][..], |b| b), "the output of conformance_last_chance")
    }
}

fn worker<W: Workflow, B: Backend>(backend: &B, probe: &Probe) -> WorkerBuilder<StepTask<W, B::Codec>, B> {
    WorkerBuilder::<StepTask<W, B::Codec>, B>::new(backend.clone())
        .data(probe.clone())
        .concurrency(4)
        .heartbeat(Duration::from_millis(100))
}

fn must<T, E: std::fmt::Display>(result: Result<T, E>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("{what} failed: {e}"))
}

/// Fan-out then fan-in: both branches run after the entry step, the join
/// runs once with both outputs in `after` order, and the typed output is
/// returned.
pub async fn workflow_fan_out_and_fan_in<F: BackendFactory>(factory: &F)
where
    F::Backend<JsonCodec>: WorkflowStore,
{
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let probe = Probe::default();
    let run = must(backend.start(Diamond(20)).await, "start");
    let running = Running::start(Monitor::new().register(worker::<Diamond, _>(&backend, &probe)));
    let output = tokio::time::timeout(Duration::from_secs(30), backend.workflow(run).wait()).await;
    must(running.stop().await, "graceful stop");
    let output = must(must(output.map_err(|_| "timed out"), "waiting"), "the run");
    assert_eq!(output, (42, "n=21".to_owned()));
    for step in 0..4 {
        assert_eq!(probe.runs(step).len(), 1, "step {step} must run exactly once");
    }
    let order = probe.order();
    assert_eq!(order.first(), Some(&0), "the entry step runs first: {order:?}");
    assert_eq!(order.last(), Some(&3), "the join runs last: {order:?}");
    let status = must(backend.workflow(run).status().await, "status");
    assert_eq!(status.state, RunState::Done);
    assert!(status.steps.iter().all(|s| s.state == Some(TaskState::Done)), "{status:?}");
    assert_eq!(status.steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["fetch", "double", "label", "join"]);
}

/// A step that aborts fails the run with its error; the run's other steps
/// are cancelled (a running one's token fires) and the steps after them
/// never start.
pub async fn workflow_failure_cancels_the_rest<F: BackendFactory>(factory: &F)
where
    F::Backend<JsonCodec>: WorkflowStore,
{
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let probe = Probe::default();
    let run = must(backend.start(Fragile).await, "start");
    let running = Running::start(Monitor::new().register(worker::<Fragile, _>(&backend, &probe)));
    let result = tokio::time::timeout(Duration::from_secs(30), backend.workflow(run).wait()).await;
    wait_for("the slow step to notice its cancellation", || async {
        probe.runs(2).len() == 1 && probe.max_concurrent() > 0 && {
            let status = backend.workflow(run).status().await;
            status.is_ok_and(|s| s.steps[2].state == Some(TaskState::Cancelled))
        }
    })
    .await;
    must(running.stop().await, "graceful stop");
    match must(result.map_err(|_| "timed out"), "waiting") {
        Err(Error::RunFailed { error, .. }) => {
            assert!(error.contains("boom") && error.contains("account is locked"), "{error}");
        }
        other => panic!("expected the run to fail, got {other:?}"),
    }
    assert_eq!(probe.runs(1).len(), 1, "an aborted step is not retried");
    assert!(probe.runs(3).is_empty(), "a step after a cancelled one must never start");
    assert!(probe.runs(4).is_empty(), "the join must never start");
    let status = must(backend.workflow(run).status().await, "status");
    assert_eq!(status.state, RunState::Failed);
    assert_eq!(status.steps[1].state, Some(TaskState::Dead));
    assert_eq!(status.steps[3].state, None, "never enqueued");
}

/// A worker killed in the middle of a step: the step is rescued after
/// `orphan_after` and the run still completes, each other step once.
pub async fn workflow_survives_a_killed_worker<F: BackendFactory>(factory: &F)
where
    F::Backend<JsonCodec>: WorkflowStore,
{
    let settings = TestSettings::orphan_after(Duration::from_millis(800));
    let backend = factory.create::<JsonCodec>(settings).await;
    let probe = Probe::default();
    let run = must(backend.start(Diamond(99)).await, "start");
    let doomed = Running::start(Monitor::new().register(worker::<Diamond, _>(&backend, &probe)));
    wait_for("the hanging step to start", || async { probe.runs(1).len() == 1 }).await;
    doomed.kill().await;
    let rescuer = Running::start(Monitor::new().register(worker::<Diamond, _>(&backend, &probe)));
    let output = tokio::time::timeout(Duration::from_secs(30), backend.workflow(run).wait()).await;
    must(rescuer.stop().await, "graceful stop");
    assert_eq!(must(must(output.map_err(|_| "timed out"), "waiting"), "the run"), (200, "n=100".to_owned()));
    assert_eq!(probe.runs(1).iter().map(|r| r.attempt).collect::<Vec<_>>(), vec![1, 2], "the killed step ran again");
    assert_eq!(probe.runs(0).len(), 1);
    assert_eq!(probe.runs(3).len(), 1, "the join ran exactly once");
}

/// A run started with a trace context gives it to every step's task, so
/// the run is one trace; a run started without one gives none.
pub async fn every_step_of_a_run_carries_its_trace<F: BackendFactory>(factory: &F)
where
    F::Backend<JsonCodec>: WorkflowStore,
{
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let probe = Probe::default();
    let trace = super::cases::TRACE;
    let new_run = |trace: Option<&str>| NewRun {
        workflow: Diamond::NAME,
        queue: Diamond::QUEUE.to_owned(),
        steps: Diamond::steps(),
        input: must(JsonCodec::encode(&4_u64, "the input"), "encode"),
        trace: trace.map(str::to_owned),
    };
    let traced = must(backend.start_run(new_run(Some(trace))).await, "start a traced run");
    let running = Running::start(Monitor::new().register(worker::<Diamond, _>(&backend, &probe)));
    let output =
        tokio::time::timeout(Duration::from_secs(30), backend.workflow(Run::<Diamond>::from_id(traced)).wait()).await;
    assert_eq!(must(must(output.map_err(|_| "timed out"), "waiting"), "the run"), (10, "n=5".to_owned()));
    for step in 0..4 {
        assert_eq!(probe.traces(step), vec![Some(trace.to_owned())], "step {step} of the traced run");
    }
    let plain = must(backend.start_run(new_run(None)).await, "start a run without a trace");
    let output =
        tokio::time::timeout(Duration::from_secs(30), backend.workflow(Run::<Diamond>::from_id(plain)).wait()).await;
    must(running.stop().await, "graceful stop");
    assert_eq!(must(must(output.map_err(|_| "timed out"), "waiting"), "the run"), (10, "n=5".to_owned()));
    for step in 0..4 {
        assert_eq!(probe.traces(step)[1..], [None], "step {step} of the run without a trace");
    }
}

/// Steps may be declared before the steps they run after: the run still
/// starts at its entry step and ends at its sink, each step once.
pub async fn workflow_steps_declared_out_of_order<F: BackendFactory>(factory: &F)
where
    F::Backend<JsonCodec>: WorkflowStore,
{
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let probe = Probe::default();
    let run = must(backend.start(Backwards(4)).await, "start");
    let running = Running::start(Monitor::new().register(worker::<Backwards, _>(&backend, &probe)));
    let output = tokio::time::timeout(Duration::from_secs(30), backend.workflow(run).wait()).await;
    must(running.stop().await, "graceful stop");
    // fetch: 5, left: 10, report: 10 * 1000 + 5.
    assert_eq!(must(must(output.map_err(|_| "timed out"), "waiting"), "the run"), 10_005);
    assert_eq!(probe.order(), vec![2, 1, 0], "fetch, then left, then report");
}

/// The acks of workflow steps fail for a while (refused, then applied with
/// the reply lost) and are sent again: every step still runs once, its
/// output is stored and its dependents enqueued exactly once, and the run
/// ends with the right output.
pub async fn workflow_step_acked_through_an_outage<F: BackendFactory>(factory: &F)
where
    F::Backend<JsonCodec>: WorkflowStore,
{
    let inner = factory.create::<JsonCodec>(TestSettings::default()).await;
    let backend = Flaky::new(inner.clone());
    let probe = Probe::default();
    for (n, lost, refused) in [(7, 0, 3), (8, 1, 2)] {
        backend.lose_ack_replies(lost, refused);
        let run = must(inner.start(Diamond(n)).await, "start");
        let running = Running::start(Monitor::new().register(worker::<Diamond, _>(&backend, &probe)));
        let output = tokio::time::timeout(Duration::from_secs(30), inner.workflow(run).wait()).await;
        must(running.stop().await, "graceful stop");
        let output = must(must(output.map_err(|_| "timed out: the run never ended"), "waiting"), "the run");
        assert_eq!(output, ((n + 1) * 2, format!("n={}", n + 1)));
    }
    for step in 0..4 {
        assert_eq!(probe.runs(step).len(), 2, "step {step} must run once per run");
    }
}

/// A finished run is removed once the retention has passed since it
/// finished: its status then says it does not exist.
pub async fn finished_runs_are_removed_after_the_retention<F: BackendFactory>(factory: &F)
where
    F::Backend<JsonCodec>: WorkflowStore,
{
    let settings = TestSettings { retention: Duration::from_millis(300), ..TestSettings::default() };
    let backend = factory.create::<JsonCodec>(settings).await;
    let probe = Probe::default();
    let run = must(backend.start(Diamond(3)).await, "start");
    let running = Running::start(Monitor::new().register(worker::<Diamond, _>(&backend, &probe)));
    must(backend.workflow(run).wait_timeout(Duration::from_secs(30)).await, "the run");
    must(running.stop().await, "graceful stop");
    tokio::time::sleep(Duration::from_millis(600)).await;
    for _ in 0..50 {
        if must(backend.purge_expired().await, "purge") == 0 {
            break;
        }
    }
    match backend.workflow(run).status().await {
        Err(Error::RunNotFound { .. }) => {}
        other => panic!("a finished run outlived its retention: {other:?}"),
    }
}

/// Runs are listed newest first, filtered and paged, each step with the
/// names of the steps it takes its inputs from.
pub async fn runs_are_listed_newest_first<F: BackendFactory>(factory: &F)
where
    F::Backend<JsonCodec>: WorkflowStore,
{
    use crate::workflow::RunFilter;

    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let probe = Probe::default();
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(must(backend.start(Diamond(n)).await, "start"));
    }
    let running = Running::start(Monitor::new().register(worker::<Diamond, _>(&backend, &probe)));
    for id in &ids {
        let done = tokio::time::timeout(Duration::from_secs(30), backend.workflow(*id).wait()).await;
        must(must(done.map_err(|_| "timed out"), "waiting"), "the run");
    }
    must(running.stop().await, "graceful stop");
    let waiting = must(backend.start(Diamond(9)).await, "start");

    let all = must(backend.runs(&RunFilter::default()).await, "runs");
    let listed: Vec<u64> = all.iter().map(|r| r.id.0).collect();
    let mut expected: Vec<u64> = ids.iter().map(|r| r.id().0).chain([waiting.id().0]).collect();
    expected.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(listed, expected, "runs newest first");
    let page = must(backend.run_ids(&RunFilter { limit: 2, ..RunFilter::default() }).await, "run_ids");
    assert_eq!(page.iter().map(|r| r.0).collect::<Vec<_>>(), expected[..2]);
    let next = must(
        backend.run_ids(&RunFilter { limit: 2, before: page.last().copied(), ..RunFilter::default() }).await,
        "run_ids",
    );
    assert_eq!(next.iter().map(|r| r.0).collect::<Vec<_>>(), expected[2..]);
    let done =
        must(backend.run_ids(&RunFilter { state: Some(RunState::Done), ..RunFilter::default() }).await, "run_ids");
    assert_eq!(done.len(), 3, "the state filter");
    let other = RunFilter { workflow: Some("no_such_workflow".into()), ..RunFilter::default() };
    assert!(must(backend.run_ids(&other).await, "run_ids").is_empty(), "the workflow filter");

    let run = &all[0];
    let after: Vec<(&str, Vec<&str>)> =
        run.steps.iter().map(|s| (s.name.as_str(), s.after.iter().map(String::as_str).collect())).collect();
    assert_eq!(
        after,
        [("fetch", vec![]), ("double", vec!["fetch"]), ("label", vec!["fetch"]), ("join", vec!["double", "label"])]
    );
}
