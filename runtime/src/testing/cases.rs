//! The cases of the conformance suite; see [`conformance_tests!`](crate::conformance_tests).

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use super::jobs::{
    Aborter, Cancellable, Echo, FLAKY_BACKOFF, Flaky as FlakyJob, Panicker, Probe, RightShape, Sleeper, Snoozer,
    WrongShape,
};
use super::support::{Flaky, Running, wait_for};
use super::{BackendFactory, TestSettings};
use crate::backend::Backend;
use crate::capability::{CancelRunning, Delays, Priorities, UniqueKeys};
use crate::codec::{Codec, JsonCodec};
use crate::expose::{BackendExt, Expose};
use crate::job::Job;
use crate::monitor::Monitor;
use crate::sink::{Enqueue, TaskSink};
use crate::task::{TaskFilter, TaskId, TaskInfo, TaskState};
use crate::worker::WorkerBuilder;

const QUEUE: &str = "conformance";

fn worker<J: Job, B: Backend>(backend: &B, probe: &Probe) -> WorkerBuilder<J, B> {
    WorkerBuilder::<J, B>::new(backend.clone()).data(probe.clone()).heartbeat(Duration::from_millis(100))
}

async fn count<B: Expose>(backend: &B, state: TaskState) -> u64 {
    backend.queue_counts(QUEUE).await.map(|c| c.get(state)).unwrap_or(0)
}

async fn info<B: Expose>(backend: &B, id: TaskId) -> TaskInfo {
    match backend.task(id).await {
        Ok(Some(info)) => info,
        Ok(None) => panic!("task {id} does not exist"),
        Err(error) => panic!("reading task {id} failed: {error}"),
    }
}

async fn wait_state<B: Expose>(backend: &B, id: TaskId, state: TaskState) {
    wait_for(&format!("task {id} to be {state}"), || async {
        backend.task(id).await.ok().flatten().is_some_and(|t| t.state == state)
    })
    .await;
}

async fn wait_count<B: Expose>(backend: &B, state: TaskState, n: u64) {
    wait_for(&format!("{n} task(s) {state}"), || async { count(backend, state).await == n }).await;
}

/// Asserts that each task of `keys` ran exactly once, over all `probes`.
fn assert_each_ran_once(probes: &[&Probe], keys: std::ops::Range<u64>) {
    for key in keys {
        let runs: usize = probes.iter().map(|p| p.runs(key).len()).sum();
        assert_eq!(runs, 1, "task {key} ran {runs} times");
    }
}

async fn must<T>(result: Result<T, crate::Error>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{what} failed: {error}"),
    }
}

async fn roundtrip<F: BackendFactory, C: Codec>(factory: &F) {
    let backend = factory.create::<C>(TestSettings::default()).await;
    let probe = Probe::default();
    let mut ids = Vec::new();
    for key in 0..40 {
        let text = format!("message {key} — ünïcödé \"quoted\"");
        ids.push((key, text.clone(), must(backend.enqueue(Echo { key, text }).await, "enqueue").await));
    }
    let running = Running::start(Monitor::new().register(worker::<Echo, _>(&backend, &probe).concurrency(8)));
    wait_count(&backend, TaskState::Done, 40).await;
    must(running.stop().await, "graceful stop").await;
    for (key, text, id) in ids {
        let result = must(backend.result::<Echo>(id).await, "reading a result").await;
        assert_eq!(result, Some((key, text)), "task {id} returned the wrong output with codec {}", C::NAME);
        assert_eq!(probe.runs(key).len(), 1, "task {id} ran more than once");
    }
}

/// Enqueue → process → stored output, JSON codec.
pub async fn roundtrip_json<F: BackendFactory>(factory: &F) {
    roundtrip::<F, JsonCodec>(factory).await;
}

/// Enqueue → process → stored output, MessagePack codec.
pub async fn roundtrip_msgpack<F: BackendFactory>(factory: &F) {
    roundtrip::<F, crate::MsgPackCodec>(factory).await;
}

/// Enqueue → process → stored output, bincode codec.
pub async fn roundtrip_bincode<F: BackendFactory>(factory: &F) {
    roundtrip::<F, crate::BincodeCodec>(factory).await;
}

/// A worker killed mid-run (no release, no acks) leaves its tasks `running`;
/// once it misses heartbeats for `orphan_after`, a live worker puts them back
/// and they complete: at-least-once.
pub async fn orphaned_tasks_are_rescued<F: BackendFactory>(factory: &F) {
    let settings = TestSettings::orphan_after(Duration::from_millis(800));
    let backend = factory.create::<JsonCodec>(settings).await;
    let probe = Probe::default();
    let tasks: Vec<Sleeper> = (0..3).map(|key| Sleeper { key, millis: 1, hang_on: vec![1] }).collect();
    let ids = must(backend.enqueue_bulk(tasks).await, "bulk enqueue").await;

    let doomed = Running::start(Monitor::new().register(worker::<Sleeper, _>(&backend, &probe).concurrency(4)));
    wait_for("the first worker to start all three runs", || async { probe.total_runs() == 3 }).await;
    doomed.kill().await;
    assert_eq!(count(&backend, TaskState::Running).await, 3, "a killed worker's tasks stay running until rescued");

    let rescuer = Running::start(Monitor::new().register(worker::<Sleeper, _>(&backend, &probe).concurrency(4)));
    wait_count(&backend, TaskState::Done, 3).await;
    must(rescuer.stop().await, "graceful stop").await;
    for (key, id) in (0..3).zip(ids) {
        let attempts: Vec<u32> = probe.runs(key).iter().map(|r| r.attempt).collect();
        assert_eq!(attempts, vec![1, 2], "task {id} should run once more after the rescue");
        assert_eq!(info(&backend, id).await.attempt, 2);
    }
}

/// A failing task is retried with the job's backoff; each run sees the next
/// attempt number, and no retry starts before its backoff has passed.
pub async fn retries_back_off_by_attempt<F: BackendFactory>(factory: &F) {
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let probe = Probe::default();
    let id = must(backend.enqueue(FlakyJob { key: 7, succeed_on: 3 }).await, "enqueue").await;
    let running = Running::start(Monitor::new().register(worker::<FlakyJob, _>(&backend, &probe)));
    wait_state(&backend, id, TaskState::Done).await;
    must(running.stop().await, "graceful stop").await;

    let runs = probe.runs(7);
    assert_eq!(runs.iter().map(|r| r.attempt).collect::<Vec<_>>(), vec![1, 2, 3]);
    for pair in runs.windows(2) {
        let gap = pair[1].started.duration_since(pair[0].started).unwrap_or_default();
        assert!(
            gap >= FLAKY_BACKOFF - Duration::from_millis(2),
            "retry started {gap:?} after the failure, before its backoff"
        );
    }
    let task = info(&backend, id).await;
    assert_eq!(task.attempt, 3);
    assert_eq!(must(backend.result::<FlakyJob>(id).await, "result").await, Some(3));
    assert!(task.last_error.as_deref().is_some_and(|e| e.contains("flaky failure on attempt 2")), "{task:?}");
}

/// Tasks enqueued one at a time to a worker that idles (found nothing and
/// waits: the path a backend may shorten by handing a task straight to it)
/// each run once, with their attempt numbers: one that fails is retried as
/// attempt 2 and ends `done` with that attempt's result.
pub async fn tasks_enqueued_to_an_idle_worker_run_once<F: BackendFactory>(factory: &F) {
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let probe = Probe::default();
    let running = Running::start(Monitor::new().register(worker::<FlakyJob, _>(&backend, &probe)));
    let expected = |key: u64| if key == 2 { vec![1, 2] } else { vec![1] };
    let mut ids = Vec::new();
    for key in 0..5 {
        // Let the worker claim nothing and wait.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let succeed_on = if key == 2 { 2 } else { 1 };
        let id = must(backend.enqueue(FlakyJob { key, succeed_on }).await, "enqueue").await;
        wait_state(&backend, id, TaskState::Done).await;
        ids.push(id);
    }
    must(running.stop().await, "graceful stop").await;
    for (key, id) in (0..5).zip(ids) {
        let attempts: Vec<u32> = probe.runs(key).iter().map(|r| r.attempt).collect();
        assert_eq!(attempts, expected(key), "the runs of task {id}");
        let last = expected(key).len() as u32;
        assert_eq!(info(&backend, id).await.attempt, last, "task {id}");
        assert_eq!(must(backend.result::<FlakyJob>(id).await, "result").await, Some(last), "task {id}");
    }
}

/// A W3C trace context, as an enqueue inside a traced span stores it.
pub const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\nvendor=errand;n=1";

/// The trace context stored with a task comes back on every claim, retries
/// included; a task enqueued without one has none.
pub async fn trace_context_travels_with_the_task<F: BackendFactory>(factory: &F) {
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let probe = Probe::default();
    let now = backend.tuning().clock.now();
    let traced = Enqueue::new().to_task::<FlakyJob, JsonCodec>(&FlakyJob { key: 1, succeed_on: 2 }, now);
    let mut traced = must(traced, "encode").await;
    traced.trace = Some(TRACE.to_owned());
    let plain = Enqueue::new().to_task::<FlakyJob, JsonCodec>(&FlakyJob { key: 2, succeed_on: 1 }, now);
    let plain = must(plain, "encode").await;
    let ids = must(backend.push(vec![traced, plain]).await, "push").await;
    let running = Running::start(Monitor::new().register(worker::<FlakyJob, _>(&backend, &probe)));
    for id in &ids {
        wait_state(&backend, *id, TaskState::Done).await;
    }
    must(running.stop().await, "graceful stop").await;
    let traced = Some(TRACE.to_owned());
    assert_eq!(probe.traces(1), vec![traced.clone(), traced], "both attempts of the traced task see its context");
    assert_eq!(probe.traces(2), vec![None], "a task enqueued without a context has none");
}

/// `JobError::snooze` runs the task again later without using an attempt.
pub async fn snooze_keeps_the_attempt<F: BackendFactory>(factory: &F) {
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let probe = Probe::default();
    let id = must(backend.enqueue(Snoozer { key: 1 }).await, "enqueue").await;
    let running = Running::start(Monitor::new().register(worker::<Snoozer, _>(&backend, &probe)));
    wait_state(&backend, id, TaskState::Done).await;
    must(running.stop().await, "graceful stop").await;
    let attempts: Vec<u32> = probe.runs(1).iter().map(|r| r.attempt).collect();
    assert_eq!(attempts, vec![1, 1], "a snoozed run must not use up an attempt");
    assert_eq!(must(backend.result::<Snoozer>(id).await, "result").await, Some(1));
}

/// `JobError::abort` sends the task straight to `dead`, with the error.
pub async fn abort_goes_dead<F: BackendFactory>(factory: &F) {
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let probe = Probe::default();
    let id = must(backend.enqueue(Aborter { key: 1 }).await, "enqueue").await;
    let running = Running::start(Monitor::new().register(worker::<Aborter, _>(&backend, &probe)));
    wait_state(&backend, id, TaskState::Dead).await;
    must(running.stop().await, "graceful stop").await;
    let task = info(&backend, id).await;
    assert_eq!(task.attempt, 1, "an aborted task must not be retried");
    assert_eq!(probe.runs(1).len(), 1);
    assert!(task.last_error.as_deref().is_some_and(|e| e.contains("bad input")), "{task:?}");
}

/// A task that keeps failing goes dead after `retries + 1` runs.
pub async fn dead_after_the_last_retry<F: BackendFactory>(factory: &F) {
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let probe = Probe::default();
    let job = FlakyJob { key: 3, succeed_on: 100 };
    let id = must(backend.enqueue_with(job, Enqueue::new().retries(2)).await, "enqueue").await;
    let running = Running::start(Monitor::new().register(worker::<FlakyJob, _>(&backend, &probe)));
    wait_state(&backend, id, TaskState::Dead).await;
    must(running.stop().await, "graceful stop").await;
    assert_eq!(probe.runs(3).len(), 3, "retries = 2 means three runs in all");
    let task = info(&backend, id).await;
    assert_eq!((task.attempt, task.max_attempts), (3, 3));
    let error = task.last_error.unwrap_or_default();
    assert!(error.contains("flaky failure on attempt 3") && error.contains("3 of 3"), "{error}");
}

/// A panicking handler fails its run like an error; the task is retried.
pub async fn panics_are_retried<F: BackendFactory>(factory: &F) {
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let probe = Probe::default();
    let id = must(backend.enqueue(Panicker { key: 1 }).await, "enqueue").await;
    let running = Running::start(Monitor::new().register(worker::<Panicker, _>(&backend, &probe)));
    wait_state(&backend, id, TaskState::Done).await;
    must(running.stop().await, "graceful stop").await;
    assert_eq!(must(backend.result::<Panicker>(id).await, "result").await, Some(2));
    let error = info(&backend, id).await.last_error.unwrap_or_default();
    assert!(error.contains("panicked") && error.contains("conformance panic"), "{error}");
}

/// A delayed task does not start before its `run_at`, even with an idle
/// worker waiting.
pub async fn delayed_tasks_never_start_early<F: BackendFactory>(factory: &F)
where
    F::Backend<JsonCodec>: Delays,
{
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let probe = Probe::default();
    let running = Running::start(Monitor::new().register(worker::<Echo, _>(&backend, &probe)));
    let before = SystemTime::now();
    let delayed = Echo { key: 1, text: "later".into() };
    let id =
        must(backend.enqueue_with(delayed, Enqueue::new().delay(Duration::from_millis(400))).await, "enqueue").await;
    let now = must(backend.enqueue(Echo { key: 2, text: "now".into() }).await, "enqueue").await;
    wait_state(&backend, now, TaskState::Done).await;
    wait_state(&backend, id, TaskState::Done).await;
    must(running.stop().await, "graceful stop").await;
    let run = probe.runs(1)[0];
    assert!(run.started >= run.run_at, "started {:?} before its run_at {:?}", run.started, run.run_at);
    let waited = run.started.duration_since(before).unwrap_or_default();
    assert!(waited >= Duration::from_millis(400), "started after {waited:?}, before its 400 ms delay");
    assert_eq!(probe.order(), vec![2, 1]);
}

/// Higher priority first, then earlier `run_at`.
pub async fn priority_order<F: BackendFactory>(factory: &F)
where
    F::Backend<JsonCodec>: Priorities,
{
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let probe = Probe::default();
    let mut expected_high = HashSet::new();
    for key in 0..12 {
        let priority = if key % 3 == 0 {
            10
        } else if key % 3 == 1 {
            0
        } else {
            -5
        };
        if priority == 10 {
            expected_high.insert(key);
        }
        let job = Echo { key, text: String::new() };
        must(backend.enqueue_with(job, Enqueue::new().priority(priority)).await, "enqueue").await;
    }
    let running = Running::start(Monitor::new().register(worker::<Echo, _>(&backend, &probe).concurrency(1)));
    wait_count(&backend, TaskState::Done, 12).await;
    must(running.stop().await, "graceful stop").await;
    let order = probe.order();
    let rank = |key: u64| match key % 3 {
        0 => 0,
        1 => 1,
        _ => 2,
    };
    let ranks: Vec<u64> = order.iter().map(|k| rank(*k)).collect();
    let mut sorted = ranks.clone();
    sorted.sort_unstable();
    assert_eq!(ranks, sorted, "run order {order:?} is not by priority");
    let firsts: Vec<u64> = order.iter().copied().filter(|k| rank(*k) == 0).collect();
    assert_eq!(firsts, vec![0, 3, 6, 9], "equal priorities must run in enqueue order");
}

/// A unique key is not enqueued twice while its task is live; after it
/// finished, the key is free again.
pub async fn unique_keys_dedupe<F: BackendFactory>(factory: &F)
where
    F::Backend<JsonCodec>: UniqueKeys + CancelRunning,
{
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let probe = Probe::default();
    let job = |key| Echo { key, text: "welcome".into() };
    let first = must(backend.enqueue_with(job(1), Enqueue::new().unique_key("welcome:ada")).await, "enqueue").await;
    let second = must(backend.enqueue_with(job(2), Enqueue::new().unique_key("welcome:ada")).await, "enqueue").await;
    let other = must(backend.enqueue_with(job(3), Enqueue::new().unique_key("welcome:bob")).await, "enqueue").await;
    assert_eq!(first, second, "a duplicate returns the live task's id");
    assert_ne!(first, other);
    // Keys are scoped to the job: another job may use the same key.
    let elsewhere = Snoozer { key: 9 };
    let another =
        must(backend.enqueue_with(elsewhere, Enqueue::new().unique_key("welcome:ada")).await, "enqueue").await;
    assert_ne!(another, first, "a unique key of one job must not dedupe another job's task");
    assert!(must(backend.cancel_task(another).await, "cancel").await);
    assert_eq!(count(&backend, TaskState::Pending).await, 2);

    let running = Running::start(Monitor::new().register(worker::<Echo, _>(&backend, &probe)));
    wait_count(&backend, TaskState::Done, 2).await;
    let third = must(backend.enqueue_with(job(4), Enqueue::new().unique_key("welcome:ada")).await, "enqueue").await;
    assert_ne!(third, first, "without a window, a finished task frees its key");
    wait_count(&backend, TaskState::Done, 3).await;
    must(running.stop().await, "graceful stop").await;
    assert!(probe.runs(2).is_empty(), "the duplicate must never run");
}

/// With `unique_for`, a key also matches finished tasks created in the window.
pub async fn unique_window_covers_finished_tasks<F: BackendFactory>(factory: &F)
where
    F::Backend<JsonCodec>: UniqueKeys,
{
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let probe = Probe::default();
    let opts = || Enqueue::new().unique_key("daily-report").unique_for(Duration::from_secs(3600));
    let first = must(backend.enqueue_with(Echo { key: 1, text: String::new() }, opts()).await, "enqueue").await;
    let running = Running::start(Monitor::new().register(worker::<Echo, _>(&backend, &probe)));
    wait_state(&backend, first, TaskState::Done).await;
    let again = must(backend.enqueue_with(Echo { key: 2, text: String::new() }, opts()).await, "enqueue").await;
    assert_eq!(again, first, "a finished task within the window still dedupes");
    must(running.stop().await, "graceful stop").await;
    assert_eq!(count(&backend, TaskState::Done).await, 1);
    assert!(probe.runs(2).is_empty());
}

/// Bulk enqueue writes every task, in order, with distinct ids.
pub async fn bulk_enqueue<F: BackendFactory>(factory: &F) {
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let probe = Probe::default();
    let jobs: Vec<Echo> = (0..500).map(|key| Echo { key, text: format!("bulk {key}") }).collect();
    let ids = must(backend.enqueue_bulk(jobs).await, "bulk enqueue").await;
    assert_eq!(ids.len(), 500);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 500, "bulk ids must be distinct");
    assert_eq!(count(&backend, TaskState::Pending).await, 500);
    let t = info(&backend, ids[123]).await;
    assert_eq!(
        must(JsonCodec::decode::<Echo>(&t.payload, "payload").map_err(crate::Error::from), "decode").await,
        Echo { key: 123, text: "bulk 123".into() }
    );
    let running = Running::start(Monitor::new().register(worker::<Echo, _>(&backend, &probe).concurrency(16)));
    wait_count(&backend, TaskState::Done, 500).await;
    must(running.stop().await, "graceful stop").await;
    assert_eq!(probe.total_runs(), 500, "every task runs exactly once");
}

/// A worker never runs more than `concurrency` tasks at once.
pub async fn concurrency_limit_is_never_exceeded<F: BackendFactory>(factory: &F) {
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let probe = Probe::default();
    let jobs: Vec<Sleeper> = (0..40).map(|key| Sleeper { key, millis: 25, hang_on: vec![] }).collect();
    must(backend.enqueue_bulk(jobs).await, "bulk enqueue").await;
    let running = Running::start(Monitor::new().register(worker::<Sleeper, _>(&backend, &probe).concurrency(4)));
    wait_count(&backend, TaskState::Done, 40).await;
    must(running.stop().await, "graceful stop").await;
    let max = probe.max_concurrent();
    assert!(max <= 4, "{max} runs were in flight with concurrency 4");
    assert!(max >= 2, "runs never overlapped ({max}): concurrency is not applied");
}

/// With a buffer of claimed tasks waiting for a slot, a worker still runs at
/// most `concurrency` at once, runs every task exactly once, and a graceful
/// stop gives the buffered tasks back: none is lost or left `running`.
pub async fn buffered_claims_keep_concurrency_and_lose_nothing<F: BackendFactory>(factory: &F) {
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let probe = Probe::default();
    let jobs: Vec<Sleeper> = (0..300).map(|key| Sleeper { key, millis: 1, hang_on: vec![] }).collect();
    must(backend.enqueue_bulk(jobs).await, "bulk enqueue").await;
    let running =
        Running::start(Monitor::new().register(worker::<Sleeper, _>(&backend, &probe).concurrency(4).buffer(32)));
    wait_for("100 runs", || async { probe.total_runs() >= 100 }).await;
    must(running.stop().await, "graceful stop").await;
    let max = probe.max_concurrent();
    assert!(max <= 4, "{max} runs were in flight with concurrency 4 and a buffer");
    let counts = must(backend.queue_counts(QUEUE).await, "counts").await;
    assert_eq!(counts.running, 0, "a stopped worker left tasks running: {counts:?}");
    assert_eq!(counts.done + counts.pending, 300, "tasks went missing: {counts:?}");
    // The next worker runs the rest; nothing ran twice.
    let running = Running::start(Monitor::new().register(worker::<Sleeper, _>(&backend, &probe).concurrency(4)));
    wait_count(&backend, TaskState::Done, 300).await;
    must(running.stop().await, "graceful stop").await;
    assert_each_ran_once(&[&probe], 0..300);
}

/// Slow runs are not buffered: a worker claims no more than it can start
/// soon, so a second worker on the queue gets its share.
pub async fn slow_runs_are_not_buffered<F: BackendFactory>(factory: &F) {
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let (first, second) = (Probe::default(), Probe::default());
    let jobs: Vec<Sleeper> = (0..6).map(|key| Sleeper { key, millis: 150, hang_on: vec![] }).collect();
    must(backend.enqueue_bulk(jobs).await, "bulk enqueue").await;
    let running = Running::start(
        Monitor::new()
            .register(worker::<Sleeper, _>(&backend, &first).concurrency(1).buffer(10))
            .register(worker::<Sleeper, _>(&backend, &second).concurrency(1).buffer(10)),
    );
    wait_count(&backend, TaskState::Done, 6).await;
    must(running.stop().await, "graceful stop").await;
    let (a, b) = (first.total_runs(), second.total_runs());
    assert_eq!(a + b, 6);
    assert!(a >= 2 && b >= 2, "one worker held the other's tasks in its buffer: {a} and {b} runs of 150 ms tasks");
}

/// Tasks waiting in a worker's buffer go back to the queue when its runs
/// slow down: a buffer filled at a quick pace does not hold slow tasks while
/// another worker is idle. After 30 quick runs, the first worker (4 slots)
/// claims all 12 slow tasks at once; the second starts with nothing left to
/// claim.
pub async fn buffered_tasks_go_back_when_runs_slow_down<F: BackendFactory>(factory: &F) {
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let (first, second) = (Probe::default(), Probe::default());
    let quick: Vec<Sleeper> = (0..30).map(|key| Sleeper { key, millis: 0, hang_on: vec![] }).collect();
    must(backend.enqueue_bulk(quick).await, "bulk enqueue").await;
    let a = Running::start(Monitor::new().register(worker::<Sleeper, _>(&backend, &first).concurrency(4).buffer(64)));
    wait_count(&backend, TaskState::Done, 30).await;
    let slow: Vec<Sleeper> = (30..42).map(|key| Sleeper { key, millis: 150, hang_on: vec![] }).collect();
    must(backend.enqueue_bulk(slow).await, "bulk enqueue").await;
    wait_for("the first slow run", || async { first.total_runs() > 30 }).await;
    let b = Running::start(Monitor::new().register(worker::<Sleeper, _>(&backend, &second).concurrency(4).buffer(64)));
    wait_count(&backend, TaskState::Done, 42).await;
    must(a.stop().await, "graceful stop").await;
    must(b.stop().await, "graceful stop").await;
    let (x, y) = (first.total_runs(), second.total_runs());
    assert_eq!(x + y, 42, "every task runs once");
    // Without giving them back the second runs none; with it, about half of
    // the eight that were waiting.
    assert!(y >= 3, "the first worker kept the slow tasks in its buffer: the second ran {y} of 12");
    assert_each_ran_once(&[&first, &second], 0..42);
}

/// On shutdown, runs that finish within the deadline are completed.
pub async fn graceful_shutdown_finishes_in_flight_runs<F: BackendFactory>(factory: &F) {
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let probe = Probe::default();
    let id = must(backend.enqueue(Sleeper { key: 1, millis: 300, hang_on: vec![] }).await, "enqueue").await;
    let monitor =
        Monitor::new().register(worker::<Sleeper, _>(&backend, &probe)).shutdown_timeout(Duration::from_secs(10));
    let running = Running::start(monitor);
    wait_for("the run to start", || async { probe.total_runs() == 1 }).await;
    must(running.stop().await, "graceful stop").await;
    assert_eq!(info(&backend, id).await.state, TaskState::Done, "the in-flight run should finish before the stop");
}

/// On shutdown, runs still going at the deadline are released back to
/// `pending` without using an attempt, and run again on the next worker.
pub async fn graceful_shutdown_releases_unfinished_tasks<F: BackendFactory>(factory: &F) {
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let probe = Probe::default();
    let jobs: Vec<Sleeper> = (0..2).map(|key| Sleeper { key, millis: 1, hang_on: vec![1] }).collect();
    let ids = must(backend.enqueue_bulk(jobs).await, "bulk enqueue").await;
    let monitor =
        Monitor::new().register(worker::<Sleeper, _>(&backend, &probe)).shutdown_timeout(Duration::from_millis(200));
    let running = Running::start(monitor);
    wait_for("both runs to start", || async { probe.total_runs() == 2 }).await;
    must(running.stop().await, "graceful stop").await;
    for id in &ids {
        let task = info(&backend, *id).await;
        assert_eq!((task.state, task.attempt), (TaskState::Pending, 0), "released task {id}: {task:?}");
    }
    assert!(must(backend.workers().await, "workers").await.is_empty(), "a stopped worker deregisters");
    // The next worker runs them; attempt 1 again (it hangs), so use a job
    // that hangs only on attempt 1 → this shows the attempt was given back.
    let running = Running::start(
        Monitor::new().register(worker::<Sleeper, _>(&backend, &probe)).shutdown_timeout(Duration::from_millis(100)),
    );
    wait_for("both runs to start again", || async { probe.total_runs() == 4 }).await;
    must(running.stop().await, "graceful stop").await;
    for key in 0..2 {
        let attempts: Vec<u32> = probe.runs(key).iter().map(|r| r.attempt).collect();
        assert_eq!(attempts, vec![1, 1], "a released run must not use up an attempt");
    }
}

/// A payload that no longer decodes sends its task to `dead` with the decode
/// error; the worker keeps processing.
pub async fn undecodable_payload_goes_dead<F: BackendFactory>(factory: &F) {
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let probe = Probe::default();
    let bad = must(backend.enqueue(WrongShape { value: "not a number".into(), extra: vec![] }).await, "enqueue").await;
    let good = must(backend.enqueue(RightShape { key: 1, value: 42 }).await, "enqueue").await;
    let running = Running::start(Monitor::new().register(worker::<RightShape, _>(&backend, &probe)));
    wait_state(&backend, bad, TaskState::Dead).await;
    wait_state(&backend, good, TaskState::Done).await;
    must(running.stop().await, "graceful stop").await;
    let error = info(&backend, bad).await.last_error.unwrap_or_default();
    assert!(error.contains("could not decode") && error.contains("conformance_shape"), "{error}");
    assert_eq!(must(backend.result::<RightShape>(good).await, "result").await, Some(42));
}

/// While the backend is unreachable the worker backs off; when it is back,
/// every task completes exactly once.
pub async fn outage_backs_off_and_loses_nothing<F: BackendFactory>(factory: &F) {
    let inner = factory.create::<JsonCodec>(TestSettings::default()).await;
    let backend = Flaky::new(inner.clone());
    let probe = Probe::default();
    let jobs: Vec<Sleeper> = (0..30).map(|key| Sleeper { key, millis: 20, hang_on: vec![] }).collect();
    must(inner.enqueue_bulk(jobs).await, "bulk enqueue").await;
    let running = Running::start(Monitor::new().register(worker::<Sleeper, _>(&backend, &probe).concurrency(4)));
    wait_for("some runs to start", || async { probe.total_runs() >= 4 }).await;
    backend.set_down(true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    backend.set_down(false);
    wait_count(&inner, TaskState::Done, 30).await;
    must(running.stop().await, "graceful stop").await;
    assert_each_ran_once(&[&probe], 0..30);
}

/// A requeue ack (here a snooze) that landed but whose reply was lost is
/// sent again; when the task was claimed again by the same worker meanwhile,
/// the late copy must not requeue that new claim while it runs. The task
/// runs exactly twice: the snoozed run and the one after.
pub async fn a_requeue_whose_reply_was_lost_is_not_applied_twice<F: BackendFactory>(factory: &F) {
    let inner = factory.create::<JsonCodec>(TestSettings::default()).await;
    let backend = Flaky::new(inner.clone());
    let probe = Probe::default();
    let id = must(inner.enqueue(Snoozer { key: 1 }).await, "enqueue").await;
    // The snooze lands, its reply is lost, and the next two flushes are
    // refused (50 + 100 ms of backoff): the task, due again 100 ms after
    // its first run, is claimed again before the ack is confirmed.
    backend.lose_ack_replies(1, 2);
    let running = Running::start(Monitor::new().register(worker::<Snoozer, _>(&backend, &probe)));
    wait_state(&inner, id, TaskState::Done).await;
    // Time for a stale copy of the snooze to land and the task to run again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    must(running.stop().await, "graceful stop").await;
    let attempts: Vec<u32> = probe.runs(1).iter().map(|r| r.attempt).collect();
    assert_eq!(attempts, vec![1, 1], "a snooze applied twice ran the task again");
    assert_eq!(info(&inner, id).await.state, TaskState::Done);
}

/// `Expose` reports what happened: counts per state, listings by state, live
/// workers, and retrying a dead task.
pub async fn expose_counts_match<F: BackendFactory>(factory: &F)
where
    F::Backend<JsonCodec>: Delays + CancelRunning,
{
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let probe = Probe::default();
    let dead = must(backend.enqueue(Aborter { key: 1 }).await, "enqueue").await;
    for key in 10..13 {
        must(backend.enqueue(Echo { key, text: String::new() }).await, "enqueue").await;
    }
    let later = Echo { key: 20, text: String::new() };
    must(backend.enqueue_with(later, Enqueue::new().delay(Duration::from_secs(3600))).await, "enqueue").await;
    let cancelled = must(
        backend
            .enqueue_with(Echo { key: 21, text: String::new() }, Enqueue::new().delay(Duration::from_secs(3600)))
            .await,
        "enqueue",
    )
    .await;
    assert!(must(backend.cancel_task(cancelled).await, "cancel").await);

    let running = Running::start(Monitor::new().register(worker::<Echo, _>(&backend, &probe)).register(worker::<
        Aborter,
        _,
    >(
        &backend, &probe,
    )));
    wait_count(&backend, TaskState::Done, 3).await;
    wait_state(&backend, dead, TaskState::Dead).await;
    let workers = must(backend.workers().await, "workers").await;
    let jobs: HashSet<&str> = workers.iter().map(|w| w.job.as_str()).collect();
    assert!(jobs.contains(Echo::NAME) && jobs.contains(Aborter::NAME), "live workers: {workers:?}");

    let counts = must(backend.queue_counts(QUEUE).await, "counts").await;
    assert_eq!(
        (counts.done, counts.dead, counts.pending, counts.cancelled, counts.running),
        (3, 1, 1, 1, 0),
        "{counts:?}"
    );
    let listed =
        must(backend.tasks(&TaskFilter { state: Some(TaskState::Dead), ..TaskFilter::default() }).await, "tasks").await;
    assert_eq!(listed.iter().map(|t| t.id).collect::<Vec<_>>(), vec![dead]);
    assert_eq!(listed[0].job, Aborter::NAME);
    let done = must(
        backend
            .tasks(&TaskFilter {
                queue: Some(QUEUE.into()),
                state: Some(TaskState::Done),
                limit: 2,
                ..TaskFilter::default()
            })
            .await,
        "tasks",
    )
    .await;
    assert_eq!(done.len(), 2, "the limit applies");
    let next = must(
        backend
            .tasks(&TaskFilter { state: Some(TaskState::Done), after: Some(done[1].id), ..TaskFilter::default() })
            .await,
        "tasks",
    )
    .await;
    assert_eq!(next.len(), 1, "paging with `after` continues where the last page ended");

    assert!(must(backend.retry_task(dead).await, "retry").await, "a dead task can be retried");
    // Retrying it again is refused unless its second run already went dead.
    let again = must(backend.retry_task(dead).await, "retry").await;
    assert!(!again || probe.runs(1).len() >= 2, "a task that is not dead was retried");
    wait_for("the retried task to run again", || async { probe.runs(1).len() >= 2 }).await;
    wait_state(&backend, dead, TaskState::Dead).await;
    assert_eq!(probe.runs(1)[1].attempt, 1, "a retried dead task starts with fresh attempts");
    must(running.stop().await, "graceful stop").await;
}

/// A worker without the data its job declares fails at start, before it
/// claims anything.
pub async fn missing_data_fails_before_claiming<F: BackendFactory>(factory: &F) {
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let id = must(backend.enqueue(Echo { key: 1, text: String::new() }).await, "enqueue").await;
    let result = Monitor::new()
        .register(WorkerBuilder::<Echo, _>::new(backend.clone()))
        .run_until(std::future::pending::<()>())
        .await;
    match result {
        Err(crate::Error::MissingData { job, type_name }) => {
            assert_eq!(job, Echo::NAME);
            assert!(type_name.ends_with("Probe"), "{type_name}");
        }
        other => panic!("expected Error::MissingData, got {other:?}"),
    }
    assert_eq!(info(&backend, id).await.state, TaskState::Pending);
}

/// A cancelled task never starts.
pub async fn cancelled_tasks_never_start<F: BackendFactory>(factory: &F)
where
    F::Backend<JsonCodec>: CancelRunning,
{
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let probe = Probe::default();
    let doomed = must(backend.enqueue(Echo { key: 1, text: String::new() }).await, "enqueue").await;
    let kept = must(backend.enqueue(Echo { key: 2, text: String::new() }).await, "enqueue").await;
    assert!(must(backend.cancel_task(doomed).await, "cancel").await);
    assert!(!must(backend.cancel_task(doomed).await, "cancel").await, "cancelling twice does nothing");
    let running = Running::start(Monitor::new().register(worker::<Echo, _>(&backend, &probe)));
    wait_state(&backend, kept, TaskState::Done).await;
    must(running.stop().await, "graceful stop").await;
    assert!(probe.runs(1).is_empty(), "a cancelled task ran");
    assert_eq!(info(&backend, doomed).await.state, TaskState::Cancelled);
}

/// Cancelling a running task fires its `TaskCx::cancellation` token (the
/// worker learns of it with its next heartbeat), and its result is discarded.
pub async fn cancelling_a_running_task_fires_its_token<F: BackendFactory>(factory: &F)
where
    F::Backend<JsonCodec>: CancelRunning,
{
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let probe = Probe::default();
    let id = must(backend.enqueue(Cancellable { key: 1 }).await, "enqueue").await;
    let running = Running::start(Monitor::new().register(worker::<Cancellable, _>(&backend, &probe)));
    wait_for("the run to start", || async { probe.total_runs() == 1 }).await;
    assert!(must(backend.cancel_task(id).await, "cancel").await, "a running task can be cancelled");
    wait_for("the token to fire", || async { !probe.runs(1001).is_empty() }).await;
    must(running.stop().await, "graceful stop").await;
    assert_eq!(
        info(&backend, id).await.state,
        TaskState::Cancelled,
        "the finished run must not overwrite the cancellation"
    );
}

pub use super::faults::{
    a_buried_step_fails_its_run, a_cancelled_step_fails_its_run, a_refused_ack_holds_up_nothing,
    a_step_lost_on_its_last_attempt_fails_its_run, an_outage_longer_than_orphan_after_runs_nothing_twice,
    clock_skew_does_not_rescue_live_workers, finished_work_is_removed_after_the_retention,
    killed_at_random_moments_nothing_is_lost, oversized_payloads_are_refused,
    panics_in_codecs_and_callbacks_are_contained, poison_errors_are_recorded_cleaned,
};
pub use super::sources::{
    a_paused_queue_claims_nothing_in_any_process, a_schedule_fires_each_tick_once_across_processes,
    a_stream_piped_in_loses_nothing, finished_tasks_can_be_deleted, missed_ticks_follow_the_policy,
    progress_is_stored_throttled_and_starts_again_on_retry,
};
pub use super::workflows::{
    every_step_of_a_run_carries_its_trace, finished_runs_are_removed_after_the_retention, runs_are_listed_newest_first,
    workflow_failure_cancels_the_rest, workflow_fan_out_and_fan_in, workflow_step_acked_through_an_outage,
    workflow_steps_declared_out_of_order, workflow_survives_a_killed_worker,
};

/// Waiting tasks of a job that no worker of any process serves on their
/// queue (a job type a deploy removed) are reported at once and, when the
/// monitor buries unserved tasks, go dead with a reason naming the job once
/// they waited longer than the grace.
pub async fn unserved_jobs_are_reported_then_buried<F: BackendFactory>(factory: &F) {
    use std::sync::{Arc, Mutex};

    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let probe = Probe::default();
    let removed =
        must(backend.enqueue(WrongShape { value: "from an old deploy".into(), extra: vec![] }).await, "enqueue").await;
    let served = must(backend.enqueue(Echo { key: 1, text: String::new() }).await, "enqueue").await;
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    let watched = worker::<Echo, _>(&backend, &probe).on_event(move |e| {
        if let crate::Event::Unserved { job, count, .. } = e {
            seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((job.clone(), *count));
        }
    });
    let running = Running::start(Monitor::new().register(watched).bury_unserved_after(Some(Duration::ZERO)));
    wait_state(&backend, served, TaskState::Done).await;
    wait_state(&backend, removed, TaskState::Dead).await;
    must(running.stop().await, "graceful stop").await;
    let reported = events.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    assert!(reported.contains(&(WrongShape::NAME.to_owned(), 1)), "the unserved job was not reported: {reported:?}");
    let error = info(&backend, removed).await.last_error.unwrap_or_default();
    assert!(error.contains(WrongShape::NAME) && error.contains("no worker") && error.contains(QUEUE), "{error}");

    // A retried dead task waits again, and by default it is only reported.
    assert!(must(backend.retry_task(removed).await, "retry").await);
    let running = Running::start(Monitor::new().register(worker::<Echo, _>(&backend, &probe)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    must(running.stop().await, "graceful stop").await;
    assert_eq!(info(&backend, removed).await.state, TaskState::Pending, "by default, unserved tasks only wait");
}

/// Another process that serves a job keeps that job's backlog alive on a
/// shared queue, however long it is: a monitor that buries unserved tasks
/// leaves it alone while that worker beats, and buries it only once no
/// worker anywhere has served the job for the grace period.
pub async fn a_job_served_by_another_process_keeps_its_backlog<F: BackendFactory>(factory: &F) {
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let (ours, theirs) = (Probe::default(), Probe::default());
    // The other service's job: its one worker is busy with the first task
    // (it hangs), so the other four wait.
    let backlog: Vec<Sleeper> = (0..5).map(|key| Sleeper { key, millis: 1, hang_on: vec![1] }).collect();
    let ids = must(backend.enqueue_bulk(backlog).await, "bulk enqueue").await;
    let other = Running::start(Monitor::new().register(worker::<Sleeper, _>(&backend, &theirs).concurrency(1)));
    wait_for("the other service's worker to start a task", || async { theirs.total_runs() == 1 }).await;
    // This service runs only Echo, and buries unserved tasks at once.
    let this = Running::start(
        Monitor::new()
            .register(worker::<Echo, _>(&backend, &ours))
            .bury_unserved_after(Some(Duration::from_millis(500))),
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    must(this.stop().await, "graceful stop").await;
    assert_eq!(count(&backend, TaskState::Dead).await, 0, "a served job's backlog was buried");
    assert_eq!(count(&backend, TaskState::Pending).await, 4);

    // The other service goes away; once nobody has served the job for the
    // grace period, its waiting tasks are buried.
    other.kill().await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let this = Running::start(
        Monitor::new()
            .register(worker::<Echo, _>(&backend, &ours))
            .bury_unserved_after(Some(Duration::from_millis(500))),
    );
    wait_count(&backend, TaskState::Dead, 4).await;
    must(this.stop().await, "graceful stop").await;
    let error = info(&backend, ids[1]).await.last_error.unwrap_or_default();
    assert!(error.contains(Sleeper::NAME) && error.contains("no worker"), "{error}");
}
