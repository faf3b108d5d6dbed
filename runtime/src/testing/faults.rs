//! The fault suite: what errand promises when things go wrong, checked on
//! every backend. Workers killed at random moments, the backend cut off for
//! longer than `orphan_after`, acks the backend refuses, poison outcomes,
//! panicking codecs and callbacks, payloads over the limit, and workflow
//! steps that end in every way but `done`.
//!
//! Every case checks the same two things at the end: no task was lost (each
//! is done exactly once in the store, or ended as the case expects) and no
//! task ran twice unless its worker really stopped. The random-kill case
//! prints a summary line (`fault suite: …`; run with `--nocapture`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::jobs::{Echo, PanicsInCodec, Poison, Probe, Sleeper, TouchyOutput};
use super::support::{Flaky, Running, wait_for};
use super::workflows::Diamond;
use super::{BackendFactory, TestSettings};
use crate::backend::Backend;
use crate::capability::CancelRunning;
use crate::codec::JsonCodec;
use crate::error::Error;
use crate::expose::{BackendExt, Expose};
use crate::job::Job;
use crate::monitor::Monitor;
use crate::sink::TaskSink;
use crate::task::{TaskFilter, TaskId, TaskState};
use crate::worker::WorkerBuilder;
use crate::workflow::{RunState, StepTask, Workflow, WorkflowExt, WorkflowStore};

const QUEUE: &str = "conformance";

fn must<T, E: std::fmt::Display>(result: Result<T, E>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("{what} failed: {e}"))
}

fn worker<J: Job, B: Backend>(backend: &B, probe: &Probe) -> WorkerBuilder<J, B> {
    WorkerBuilder::<J, B>::new(backend.clone()).data(probe.clone()).heartbeat(Duration::from_millis(100))
}

fn steps<W: Workflow, B: Backend>(backend: &B, probe: &Probe) -> WorkerBuilder<StepTask<W, B::Codec>, B> {
    WorkerBuilder::<StepTask<W, B::Codec>, B>::new(backend.clone())
        .data(probe.clone())
        .concurrency(4)
        .heartbeat(Duration::from_millis(100))
}

async fn counts<B: Expose>(backend: &B) -> crate::QueueCounts {
    must(backend.queue_counts(QUEUE).await, "counts")
}

async fn state<B: Expose>(backend: &B, id: TaskId) -> TaskState {
    match backend.task(id).await {
        Ok(Some(task)) => task.state,
        Ok(None) => panic!("task {id} is gone"),
        Err(error) => panic!("reading task {id} failed: {error}"),
    }
}

/// A small deterministic generator for the random moments (xorshift).
struct Moments(u64);

impl Moments {
    /// Seeds from `ERRAND_FAULT_SEED` when it is set (to replay a failure
    /// the summary line reported), from the clock otherwise.
    fn new() -> Self {
        let seed = std::env::var("ERRAND_FAULT_SEED")
            .ok()
            .and_then(|seed| seed.parse().ok())
            .unwrap_or_else(|| (crate::backoff::random_unit() * 1e15) as u64);
        eprintln!("fault suite: random moments from seed {seed}");
        Self(seed | 1)
    }

    /// A duration in `0..max`.
    fn next(&mut self, max: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let max = u64::try_from(max.as_micros()).unwrap_or(u64::MAX).max(1);
        Duration::from_micros(self.0 % max)
    }
}

/// Workers killed at random moments — while claiming, running, acking and
/// advancing workflows — 20 times, a new one started each time: at the end
/// every task is done exactly once in the store, no task ran more often than
/// the kills can explain (a run cut short by a kill is run again), and every
/// workflow run finished.
pub async fn killed_at_random_moments_nothing_is_lost<F: BackendFactory>(factory: &F)
where
    F::Backend<JsonCodec>: WorkflowStore,
{
    const ROUNDS: usize = 20;
    const TASKS: u64 = 400;
    const RUNS: u64 = 10;
    let backend = factory.create::<JsonCodec>(TestSettings::orphan_after(Duration::from_millis(500))).await;
    let probe = Probe::default();
    let jobs: Vec<Sleeper> = (0..TASKS).map(|key| Sleeper { key, millis: 3, hang_on: vec![] }).collect();
    must(backend.enqueue_bulk(jobs).await, "bulk enqueue");
    let mut runs = Vec::new();
    for n in 0..RUNS {
        runs.push(must(backend.start(Diamond(n)).await, "start a run"));
    }
    let step_probe = Probe::default();
    let mut moments = Moments::new();
    let mut in_flight_at_kills = 0;
    for _ in 0..ROUNDS {
        let running = Running::start(
            Monitor::new()
                .register(worker::<Sleeper, _>(&backend, &probe).concurrency(8))
                .register(steps::<Diamond, _>(&backend, &step_probe)),
        );
        tokio::time::sleep(moments.next(Duration::from_millis(250))).await;
        in_flight_at_kills += counts(&backend).await.running;
        running.kill().await;
    }
    // The last worker runs everything that is left (after rescuing what the
    // killed ones held).
    let running = Running::start(
        Monitor::new()
            .register(worker::<Sleeper, _>(&backend, &probe).concurrency(8))
            .register(steps::<Diamond, _>(&backend, &step_probe)),
    );
    let deadline = tokio::time::Instant::now() + super::support::PATIENCE;
    while counts(&backend).await.done != TASKS {
        if tokio::time::Instant::now() >= deadline {
            let mut left = Vec::new();
            for state in [TaskState::Pending, TaskState::Running, TaskState::Retry, TaskState::Dead] {
                let filter =
                    TaskFilter { queue: Some(QUEUE.into()), state: Some(state), limit: 10, ..TaskFilter::default() };
                left.extend(must(backend.tasks(&filter).await, "list tasks"));
            }
            let left: Vec<String> = left
                .into_iter()
                .map(|task| {
                    format!("{} {:?} attempt {} error {:?}", task.id, task.state, task.attempt, task.last_error)
                })
                .collect();
            panic!("timed out waiting for every task to be done: {:?}; not done: {left:#?}", counts(&backend).await);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (n, run) in (0..).zip(&runs) {
        let output = backend.workflow(*run).wait_timeout(Duration::from_secs(30)).await;
        assert_eq!(must(output, "a run"), ((n + 1) * 2, format!("n={}", n + 1)));
    }
    must(running.stop().await, "graceful stop");

    let c = counts(&backend).await;
    assert_eq!((c.done, c.pending, c.running, c.retry, c.dead), (TASKS, 0, 0, 0, 0), "{c:?}");
    let mut duplicates = 0;
    for key in 0..TASKS {
        let n = probe.runs(key).len() as u64;
        assert!(n >= 1, "task {key} never ran");
        duplicates += n - 1;
    }
    assert!(
        duplicates <= in_flight_at_kills,
        "{duplicates} runs beyond one per task, but only {in_flight_at_kills} were in flight at the kills"
    );
    let mut stuck = 0;
    for run in &runs {
        if must(backend.workflow(*run).status().await, "status").state != RunState::Done {
            stuck += 1;
        }
    }
    assert_eq!(stuck, 0, "every run must finish");
    eprintln!(
        "fault suite [{}]: rounds {ROUNDS}, faults injected {ROUNDS}, tasks {}, lost 0, duplicates {duplicates} \
         (≤ {in_flight_at_kills} in flight at the kills), stuck runs {stuck}",
        <F::Backend<JsonCodec> as Backend>::NAME,
        TASKS + RUNS * 4,
    );
}

/// The backend is unreachable for longer than `orphan_after` while three
/// workers run: when it is back, no live worker's task is rescued from
/// under it — nothing runs twice — and nothing is lost.
pub async fn an_outage_longer_than_orphan_after_runs_nothing_twice<F: BackendFactory>(factory: &F) {
    let settings = TestSettings::orphan_after(Duration::from_millis(800));
    let inner = factory.create::<JsonCodec>(settings).await;
    let backend = Flaky::new(inner.clone());
    let probe = Probe::default();
    let jobs: Vec<Sleeper> = (0..60).map(|key| Sleeper { key, millis: 400, hang_on: vec![] }).collect();
    must(inner.enqueue_bulk(jobs).await, "bulk enqueue");
    let workers: Vec<Running> = (0..3)
        .map(|_| Running::start(Monitor::new().register(worker::<Sleeper, _>(&backend, &probe).concurrency(4))))
        .collect();
    wait_for("every worker to be running tasks", || async { probe.total_runs() >= 12 }).await;
    backend.set_down(true);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    backend.set_down(false);
    wait_for("every task to be done", || async { counts(&inner).await.done == 60 }).await;
    for running in workers {
        must(running.stop().await, "graceful stop");
    }
    for key in 0..60 {
        let runs = probe.runs(key).len();
        assert_eq!(runs, 1, "task {key} ran {runs} times: a live worker's task was rescued after the outage");
    }
}

/// An outcome the backend keeps refusing (here a result it cannot store)
/// does not hold up the others: they are recorded, the worker keeps
/// claiming, and the refused one is recorded in a smaller form — the task
/// goes dead saying why — instead of being retried forever.
pub async fn a_refused_ack_holds_up_nothing<F: BackendFactory>(factory: &F) {
    let inner = factory.create::<JsonCodec>(TestSettings::default()).await;
    let backend = Flaky::new(inner.clone());
    let probe = Probe::default();
    let refused = must(inner.enqueue(Echo { key: 0, text: "too big".into() }).await, "enqueue");
    backend.refuse_result_of(refused);
    let jobs: Vec<Echo> = (1..200).map(|key| Echo { key, text: String::new() }).collect();
    must(inner.enqueue_bulk(jobs).await, "bulk enqueue");
    let running = Running::start(Monitor::new().register(worker::<Echo, _>(&backend, &probe).concurrency(8)));
    wait_for("the other tasks to be done", || async { counts(&inner).await.done == 199 }).await;
    wait_for("the refused task to be dead", || async { state(&inner, refused).await == TaskState::Dead }).await;
    must(running.stop().await, "graceful stop");
    let task = must(inner.task(refused).await, "read").unwrap_or_else(|| panic!("task {refused} is gone"));
    let error = task.last_error.unwrap_or_default();
    assert!(error.contains("could not be recorded") && error.contains("too large"), "{error}");
    for key in 0..200 {
        assert_eq!(probe.runs(key).len(), 1, "task {key} ran more than once");
    }
}

/// An error with NUL bytes and a megabyte of text is recorded (cleaned and
/// cut short), and the tasks around it are unaffected.
pub async fn poison_errors_are_recorded_cleaned<F: BackendFactory>(factory: &F) {
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let probe = Probe::default();
    let poison = must(backend.enqueue(Poison { key: 0 }).await, "enqueue");
    let jobs: Vec<Echo> = (1..50).map(|key| Echo { key, text: String::new() }).collect();
    must(backend.enqueue_bulk(jobs).await, "bulk enqueue");
    let running = Running::start(
        Monitor::new()
            .register(worker::<Poison, _>(&backend, &probe))
            .register(worker::<Echo, _>(&backend, &probe).concurrency(8)),
    );
    wait_for("the echoes to be done", || async { counts(&backend).await.done == 49 }).await;
    wait_for("the poison task to be dead", || async { state(&backend, poison).await == TaskState::Dead }).await;
    must(running.stop().await, "graceful stop");
    let task = must(backend.task(poison).await, "read").unwrap_or_else(|| panic!("task {poison} is gone"));
    let error = task.last_error.unwrap_or_default();
    assert!(error.starts_with("aborted: poison\u{FFFD}value"), "the NUL byte is replaced: {:?}", &error[..40]);
    assert!(error.len() <= crate::backend::MAX_ERROR_LEN + 100, "the error is cut short: {} bytes", error.len());
}

/// A panicking `Deserialize` of a task's arguments, a panicking `Serialize`
/// of its output and a panicking `on_event` handler: the two tasks go dead
/// with the panic's message, the handler's panic is ignored, and the worker
/// keeps running the others.
pub async fn panics_in_codecs_and_callbacks_are_contained<F: BackendFactory>(factory: &F) {
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let probe = Probe::default();
    let bad_args = PanicsInCodec { key: 0, boom: true, boom_out: false };
    let bad_output = PanicsInCodec { key: 1, boom: false, boom_out: true };
    let fine = PanicsInCodec { key: 2, boom: false, boom_out: false };
    let ids = must(backend.enqueue_bulk([bad_args, bad_output, fine]).await, "bulk enqueue");
    let events = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&events);
    let touchy = worker::<PanicsInCodec, _>(&backend, &probe).on_event(move |_| {
        seen.fetch_add(1, Ordering::Relaxed);
        panic!("an on_event handler that panics (conformance)");
    });
    let running = Running::start(Monitor::new().register(touchy));
    for id in &ids[..2] {
        wait_for("a panicking codec's task to be dead", || async { state(&backend, *id).await == TaskState::Dead })
            .await;
    }
    wait_for("the third task to be done", || async { state(&backend, ids[2]).await == TaskState::Done }).await;
    must(running.stop().await, "graceful stop");
    for (id, what) in [(ids[0], "decoding"), (ids[1], "encoding")] {
        let task = must(backend.task(id).await, "read").unwrap_or_else(|| panic!("task {id} is gone"));
        let error = task.last_error.unwrap_or_default();
        assert!(error.contains(what) && error.contains("panic"), "task {id}: {error}");
    }
    assert!(probe.runs(0).is_empty(), "a task whose arguments cannot be decoded never runs");
    assert!(events.load(Ordering::Relaxed) >= 3, "the handler kept being called after it panicked");
    let result: Option<TouchyOutput> = must(backend.result::<PanicsInCodec>(ids[2]).await, "result");
    assert_eq!(result, Some(TouchyOutput { boom: false }));
}

/// An enqueue whose encoded arguments are over the backend's `max_payload`
/// is refused with a clear error, and nothing is written.
pub async fn oversized_payloads_are_refused<F: BackendFactory>(factory: &F) {
    let settings = TestSettings { max_payload: 1024, ..TestSettings::default() };
    let backend = factory.create::<JsonCodec>(settings).await;
    let big = Echo { key: 1, text: "x".repeat(2048) };
    match backend.enqueue(big.clone()).await {
        Err(Error::PayloadTooLarge { size, limit, what }) => {
            assert!(size > 2048 && limit == 1024 && what.contains(Echo::NAME), "{what}: {size} > {limit}");
        }
        other => panic!("expected Error::PayloadTooLarge, got {other:?}"),
    }
    let small = Echo { key: 2, text: "small".into() };
    assert!(backend.enqueue_bulk([small, big]).await.is_err(), "a bulk enqueue with one oversized task is refused");
    let listed = must(backend.tasks(&TaskFilter::default()).await, "tasks");
    assert!(listed.is_empty(), "nothing may be written: {listed:?}");
}

/// A workflow step that is cancelled fails its run: `wait` returns the
/// failure instead of waiting forever.
pub async fn a_cancelled_step_fails_its_run<F: BackendFactory>(factory: &F)
where
    F::Backend<JsonCodec>: WorkflowStore + CancelRunning,
{
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let run = must(backend.start(Diamond(5)).await, "start");
    let status = must(backend.workflow(run).status().await, "status");
    let entry = status.steps[0].task.unwrap_or_else(|| panic!("the entry step has no task: {status:?}"));
    assert!(must(backend.cancel_task(entry).await, "cancel"), "a waiting step can be cancelled");
    match backend.workflow(run).wait_timeout(Duration::from_secs(30)).await {
        Err(Error::RunFailed { error, .. }) => assert!(error.contains("fetch") && error.contains("cancel"), "{error}"),
        other => panic!("expected the run to fail, got {other:?}"),
    }
}

/// A workflow step whose worker dies on its last attempt is rescued dead,
/// and that fails its run.
pub async fn a_step_lost_on_its_last_attempt_fails_its_run<F: BackendFactory>(factory: &F)
where
    F::Backend<JsonCodec>: WorkflowStore,
{
    let backend = factory.create::<JsonCodec>(TestSettings::orphan_after(Duration::from_millis(800))).await;
    let probe = Probe::default();
    // Its step `hang` has one attempt and hangs on it: its rescue is its death.
    let run = must(backend.start(super::workflows::LastChance).await, "start");
    let doomed = Running::start(Monitor::new().register(steps::<super::workflows::LastChance, _>(&backend, &probe)));
    wait_for("the hanging step to start", || async { !probe.runs(0).is_empty() }).await;
    doomed.kill().await;
    let rescuer = Running::start(Monitor::new().register(steps::<super::workflows::LastChance, _>(&backend, &probe)));
    let outcome = backend.workflow(run).wait_timeout(Duration::from_secs(30)).await;
    must(rescuer.stop().await, "graceful stop");
    match outcome {
        Err(Error::RunFailed { error, .. }) => {
            assert!(error.contains("hang") && error.contains("heartbeat"), "the error names the step and why: {error}");
        }
        other => panic!("expected the run to fail, got {other:?}"),
    }
}

/// Waiting tasks of a workflow no worker serves are buried when burial is
/// on, and that fails their runs.
pub async fn a_buried_step_fails_its_run<F: BackendFactory>(factory: &F)
where
    F::Backend<JsonCodec>: WorkflowStore,
{
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let probe = Probe::default();
    let run = must(backend.start(Diamond(1)).await, "start");
    // A monitor that serves another job of the same queue only.
    let running = Running::start(
        Monitor::new()
            .register(worker::<Echo, _>(&backend, &probe).queue(Diamond::QUEUE))
            .bury_unserved_after(Some(Duration::ZERO)),
    );
    let outcome = backend.workflow(run).wait_timeout(Duration::from_secs(30)).await;
    must(running.stop().await, "graceful stop");
    match outcome {
        Err(Error::RunFailed { error, .. }) => assert!(error.contains("no worker"), "{error}"),
        other => panic!("expected the run to fail, got {other:?}"),
    }
}

/// Liveness is judged by one clock: a worker whose host clock is a minute
/// behind keeps its tasks while it beats — a worker on a correct clock does
/// not take it for dead and run its tasks a second time.
pub async fn clock_skew_does_not_rescue_live_workers<F: BackendFactory>(factory: &F) {
    let settings = TestSettings::orphan_after(Duration::from_millis(800));
    let backend = factory.create::<JsonCodec>(settings).await;
    let behind = factory.reopen(&backend, TestSettings { clock_skew_ms: -60_000, ..settings }).await;
    let (slow, fast) = (Probe::default(), Probe::default());
    let jobs: Vec<Sleeper> = (0..4).map(|key| Sleeper { key, millis: 2500, hang_on: vec![] }).collect();
    // Enqueued by the skewed handle, so they are due by its clock too.
    must(behind.enqueue_bulk(jobs).await, "bulk enqueue");
    let skewed = Running::start(Monitor::new().register(worker::<Sleeper, _>(&behind, &slow).concurrency(4)));
    wait_for("the skewed worker to start every task", || async { slow.total_runs() == 4 }).await;
    // A worker on a correct clock, with time to rescue anything it takes for orphaned.
    let correct = Running::start(Monitor::new().register(worker::<Sleeper, _>(&backend, &fast).concurrency(4)));
    wait_for("every task to be done", || async { counts(&backend).await.done == 4 }).await;
    must(correct.stop().await, "graceful stop");
    must(skewed.stop().await, "graceful stop");
    assert_eq!(fast.total_runs(), 0, "a live worker's tasks were rescued because its clock was behind");
}

/// Retention: once finished longer ago than the retention, `done` tasks and
/// finished workflow runs are removed; `dead` tasks are kept, and so is
/// everything that has not finished.
pub async fn finished_work_is_removed_after_the_retention<F: BackendFactory>(factory: &F) {
    let settings = TestSettings { retention: Duration::from_millis(300), ..TestSettings::default() };
    let backend = factory.create::<JsonCodec>(settings).await;
    let probe = Probe::default();
    let done = must(backend.enqueue_bulk((0..20).map(|key| Echo { key, text: String::new() })).await, "enqueue");
    let dead = must(backend.enqueue(Poison { key: 100 }).await, "enqueue");
    let running = Running::start(Monitor::new().register(worker::<Echo, _>(&backend, &probe)).register(worker::<
        Poison,
        _,
    >(
        &backend, &probe,
    )));
    wait_for("the tasks to finish", || async { counts(&backend).await.done == 20 }).await;
    wait_for("the poison task to be dead", || async { state(&backend, dead).await == TaskState::Dead }).await;
    must(running.stop().await, "graceful stop");
    let waiting = must(backend.enqueue(Echo { key: 200, text: String::new() }).await, "enqueue");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut purged = 0;
    // A backend may purge in batches: call it until it is done.
    for _ in 0..50 {
        let n = must(backend.purge_expired().await, "purge");
        purged += n;
        if n == 0 && counts(&backend).await.done == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(purged >= 20, "only {purged} finished tasks were removed");
    for id in &done {
        assert!(must(backend.task(*id).await, "read").is_none(), "done task {id} outlived its retention");
    }
    assert_eq!(state(&backend, dead).await, TaskState::Dead, "dead tasks are kept");
    assert_eq!(state(&backend, waiting).await, TaskState::Pending, "waiting tasks are kept");
}
