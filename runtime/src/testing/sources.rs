//! Cases for what feeds and steers a queue: progress reports, pausing a
//! queue, streams piped in, and schedules.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::jobs::{Echo, Probe, Sleeper};
use super::support::{Flaky, Running, wait_for};
use super::{BackendFactory, TestSettings};
use crate::backend::Backend;
use crate::backoff::Backoff;
use crate::capability::Schedules;
use crate::codec::JsonCodec;
use crate::context::{Requirements, TaskCx};
use crate::expose::{BackendExt, Expose};
use crate::job::{Job, JobOptions};
use crate::job_error::JobError;
use crate::monitor::Monitor;
use crate::pipe::PipeExt;
use crate::schedule::{Interval, Missed, Schedule, ScheduleExt, Tick};
use crate::sink::TaskSink;
use crate::task::{Progress, TaskFilter, TaskId, TaskInfo, TaskState};
use crate::time::Timestamp;
use crate::worker::WorkerBuilder;

const QUEUE: &str = "conformance";

async fn must<T>(result: Result<T, crate::Error>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{what} failed: {error}"),
    }
}

async fn info<B: Expose>(backend: &B, id: TaskId) -> TaskInfo {
    match backend.task(id).await {
        Ok(Some(info)) => info,
        Ok(None) => panic!("task {id} does not exist"),
        Err(error) => panic!("reading task {id} failed: {error}"),
    }
}

async fn count<B: Expose>(backend: &B, state: TaskState) -> u64 {
    backend.queue_counts(QUEUE).await.map(|c| c.get(state)).unwrap_or(0)
}

/// Reports progress: on its first attempt a thousand times in a tight
/// loop, then 30 % and a retryable failure; on the next, nothing for a
/// while, then 60 % and 100 %.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reporter {
    /// How long each quiet stretch lasts.
    pub pause_ms: u64,
}

impl Job for Reporter {
    const NAME: &'static str = "conformance_reporter";
    const QUEUE: &'static str = "conformance";
    type Output = ();

    fn options() -> JobOptions {
        JobOptions { retries: 1, backoff: Backoff::fixed(Duration::from_millis(100)), ..JobOptions::DEFAULT }
    }

    async fn run(self, cx: TaskCx) -> Result<(), JobError> {
        let pause = Duration::from_millis(self.pause_ms);
        if cx.attempt() == 1 {
            for i in 0..1000_u32 {
                cx.progress(u8::try_from(i / 40).unwrap_or(25), format!("first attempt, item {i}"));
            }
            cx.progress(30, "first attempt");
            tokio::time::sleep(pause).await;
            return Err(JobError::retry("the first attempt fails"));
        }
        tokio::time::sleep(pause).await;
        cx.progress(60, "second attempt");
        tokio::time::sleep(pause).await;
        cx.progress(100, "done");
        Ok(())
    }
}

/// A scheduled job: records its tick in the probe.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ticked {
    /// The tick it was enqueued for.
    pub tick: Tick,
}

impl Job for Ticked {
    const NAME: &'static str = "conformance_ticked";
    const QUEUE: &'static str = "conformance";
    type Output = ();

    fn requirements(r: &mut Requirements) {
        r.data::<Probe>();
    }

    async fn run(self, cx: TaskCx) -> Result<(), JobError> {
        let probe = cx.data::<Probe>().ok_or_else(|| JobError::abort("the suite forgot Data<Probe>"))?;
        let key = u64::try_from(self.tick.timestamp().as_millis()).unwrap_or_default();
        probe.start(key, &cx);
        probe.end();
        Ok(())
    }
}

/// Progress is stored (throttled, not once per report), readable through
/// `Expose`, cleared when a retry starts, and the run's last report lands.
pub async fn progress_is_stored_throttled_and_starts_again_on_retry<F: BackendFactory>(factory: &F) {
    let inner = factory.create::<JsonCodec>(TestSettings::default()).await;
    let backend = Flaky::new(inner.clone());
    let id = must(inner.enqueue(Reporter { pause_ms: 700 }).await, "enqueue").await;
    assert_eq!(info(&inner, id).await.progress, None, "a new task has no progress");
    let running = Running::start(Monitor::new().register(WorkerBuilder::<Reporter, _>::new(backend.clone())));

    let first = Progress::new(30, "first attempt");
    wait_for("the first attempt's progress to be stored", || async {
        inner.task_progress(id).await.ok().flatten() == Some(first.clone())
    })
    .await;
    let writes = backend.progress_writes();
    assert!(
        (1..=8).contains(&writes),
        "1001 reports in a tight loop were written {writes} times: progress must be throttled"
    );

    // The second attempt reports nothing at first: its progress starts from none.
    wait_for("the second attempt to start", || async {
        inner.task(id).await.ok().flatten().is_some_and(|t| t.attempt == 2 && t.state == TaskState::Running)
    })
    .await;
    let during = info(&inner, id).await;
    assert_ne!(during.progress, Some(first), "the second attempt shows the first attempt's progress");

    wait_for("the task to finish", || async {
        inner.task(id).await.ok().flatten().is_some_and(|t| t.state == TaskState::Done)
    })
    .await;
    assert_eq!(
        info(&inner, id).await.progress,
        Some(Progress::new(100, "done")),
        "the run's last report must be stored before its result"
    );
    must(running.stop().await, "graceful stop").await;
}

/// A paused queue: enqueues succeed, no worker of any process claims,
/// running tasks finish, the state shows in counts (even with no tasks),
/// and resuming lets the workers take the backlog.
pub async fn a_paused_queue_claims_nothing_in_any_process<F: BackendFactory>(factory: &F) {
    let settings = TestSettings::default();
    let steer = factory.create::<JsonCodec>(settings).await;
    let worker_side = factory.reopen(&steer, settings).await;
    let probe = Probe::default();
    let running = Running::start(
        Monitor::new()
            .register(WorkerBuilder::<Sleeper, _>::new(worker_side.clone()).data(probe.clone()))
            .register(WorkerBuilder::<Echo, _>::new(worker_side.clone()).data(probe.clone())),
    );
    let slow = must(steer.enqueue(Sleeper { key: 100, millis: 800, hang_on: vec![] }).await, "enqueue").await;
    wait_for("the slow task to start", || async { probe.runs(100).len() == 1 }).await;

    must(steer.pause_queue(QUEUE).await, "pause").await;
    must(steer.pause_queue(QUEUE).await, "pausing twice").await;
    must(steer.pause_queue("conformance-empty").await, "pausing a queue with no tasks").await;
    for key in 0..5 {
        must(steer.enqueue(Echo { key, text: "paused".into() }).await, "enqueue into a paused queue").await;
    }
    let counts = must(worker_side.counts().await, "counts").await;
    assert!(
        counts.iter().any(|c| c.queue == QUEUE && c.paused),
        "another process's counts do not show the queue paused: {counts:?}"
    );
    assert!(
        counts.iter().any(|c| c.queue == "conformance-empty" && c.paused),
        "a paused queue without tasks is not listed: {counts:?}"
    );
    wait_for("the running task to finish while paused", || async {
        steer.task(slow).await.ok().flatten().is_some_and(|t| t.state == TaskState::Done)
    })
    .await;
    // Several poll intervals (100 ms) of the other process's worker.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(probe.total_runs(), 1, "a worker claimed from a paused queue");
    assert_eq!(count(&steer, TaskState::Pending).await, 5);

    must(steer.resume_queue(QUEUE).await, "resume").await;
    must(steer.resume_queue("conformance-empty").await, "resume").await;
    wait_for("the backlog to run after resuming", || async { count(&steer, TaskState::Done).await == 6 }).await;
    let counts = must(steer.counts().await, "counts").await;
    assert!(counts.iter().all(|c| !c.paused), "queues still paused after resuming: {counts:?}");
    must(running.stop().await, "graceful stop").await;
}

/// A stream piped in is enqueued whole, its errors counted, and a backend
/// outage in the middle loses nothing (the pipe retries its batch).
pub async fn a_stream_piped_in_loses_nothing<F: BackendFactory>(factory: &F) {
    let inner = factory.create::<JsonCodec>(TestSettings::default()).await;
    let backend = Flaky::new(inner.clone());
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Echo, String>>(16);
    let pipe = crate::pipe::from_receiver(rx).pipe_to(&backend);
    for key in 0..600_u64 {
        if key == 300 {
            // Down for 300 ms: the pipe stops reading while it retries its
            // batch, so this loop blocks on the full channel meanwhile.
            backend.set_down(true);
            let flaky = backend.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                flaky.set_down(false);
            });
        }
        if key == 320 {
            let _ = tx.send(Err("the feed hiccuped".into())).await;
        }
        if tx.send(Ok(Echo { key, text: "piped".into() })).await.is_err() {
            panic!("the pipe stopped reading its stream");
        }
    }
    drop(tx);
    let stats = tokio::time::timeout(Duration::from_secs(30), pipe.join()).await.unwrap_or_else(|_| {
        panic!("the pipe did not finish within 30 s of its stream ending");
    });
    assert_eq!(stats.enqueued, 600, "{stats:?}");
    assert_eq!(stats.errors, 1, "{stats:?}");
    assert!(stats.finished && stats.last_error.as_deref().is_some_and(|e| e.contains("hiccuped")), "{stats:?}");
    let listed = must(
        inner.tasks(&TaskFilter { job: Some(Echo::NAME.into()), limit: 1000, ..TaskFilter::default() }).await,
        "list",
    )
    .await;
    assert_eq!(listed.len(), 600, "every piped job must be stored once");
}

/// The name a schedule's ticks of [`Ticked`] are stored under.
fn stored(schedule: &str) -> String {
    format!("{}/{schedule}", Ticked::NAME)
}

/// The ticks of schedule `schedule` enqueued so far, from their unique keys.
async fn enqueued_ticks<B: Expose>(backend: &B, schedule: &str) -> Vec<i64> {
    let filter = TaskFilter { job: Some(Ticked::NAME.into()), limit: 5000, ..TaskFilter::default() };
    let tasks = must(backend.tasks(&filter).await, "listing ticks").await;
    let prefix = format!("{}@", stored(schedule));
    let mut ticks: Vec<i64> =
        tasks.iter().filter_map(|t| t.unique_key.as_deref()?.strip_prefix(&prefix)?.parse().ok()).collect();
    ticks.sort_unstable();
    ticks
}

/// Five processes running one schedule fire each tick once, with no gap.
pub async fn a_schedule_fires_each_tick_once_across_processes<F: BackendFactory>(factory: &F)
where
    F::Backend<JsonCodec>: Schedules,
{
    let settings = TestSettings::default();
    let first = factory.create::<JsonCodec>(settings).await;
    let mut handles = vec![first.clone()];
    for _ in 0..4 {
        handles.push(factory.reopen(&first, settings).await);
    }
    let probe = Probe::default();
    let running = Running::start(
        Monitor::new().register(WorkerBuilder::<Ticked, _>::new(first.clone()).data(probe.clone()).concurrency(4)),
    );
    let schedule = || Interval::new(Duration::from_millis(500)).named("every-half-second");
    let pipes: Vec<_> = handles.iter().map(|h| schedule().pipe_to(h, |tick| Ticked { tick })).collect();
    tokio::time::sleep(Duration::from_millis(5200)).await;
    for pipe in pipes {
        let stats = pipe.stop().await;
        assert_eq!((stats.errors, stats.refused), (0, 0), "{stats:?}");
    }
    let ticks = enqueued_ticks(&first, "every-half-second").await;
    assert!(ticks.len() >= 9, "5.2 s of a half-second schedule enqueued only {} ticks", ticks.len());
    for pair in ticks.windows(2) {
        assert_eq!(pair[1] - pair[0], 500, "ticks are missing or doubled: {ticks:?}");
    }
    wait_for("every tick to run", || async { count(&first, TaskState::Done).await == ticks.len() as u64 }).await;
    for tick in &ticks {
        let runs = probe.runs(u64::try_from(*tick).unwrap_or_default()).len();
        assert_eq!(runs, 1, "tick {tick} ran {runs} times across five processes");
    }
    let last = must(first.last_tick(&stored("every-half-second")).await, "last_tick").await;
    assert_eq!(last.map(|t| t.as_millis()), ticks.last().copied(), "the recorded last tick is the latest enqueued");
    must(running.stop().await, "graceful stop").await;
}

/// Waits for the middle of a second of `backend`'s clock, so that no
/// one-second tick falls due for a few hundred ms; returns the second's start.
async fn mid_second<B: Backend>(backend: &B) -> i64 {
    loop {
        let now = backend.tuning().clock.now().as_millis();
        if (100..300).contains(&now.rem_euclid(1000)) {
            return now - now.rem_euclid(1000);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Ticks missed while no process ran a schedule follow its `missed`
/// policy, bounded by `MAX_CATCH_UP`; the recorded last tick never moves back.
pub async fn missed_ticks_follow_the_policy<F: BackendFactory>(factory: &F)
where
    F::Backend<JsonCodec>: Schedules,
{
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    must(backend.record_tick("monotonic", Timestamp(5000)).await, "record_tick").await;
    must(backend.record_tick("monotonic", Timestamp(3000)).await, "record_tick").await;
    assert_eq!(must(backend.last_tick("monotonic").await, "last_tick").await, Some(Timestamp(5000)));
    assert_eq!(must(backend.last_tick("never-ran").await, "last_tick").await, None);

    for (missed, expected) in [(Missed::Skip, 0), (Missed::Once, 1), (Missed::All, 5)] {
        let latest = mid_second(&backend).await;
        let key = format!("missed-{missed}");
        // The last tick anyone enqueued was five ticks ago.
        must(backend.record_tick(&stored(&key), Timestamp(latest - 5000)).await, "record_tick").await;
        let schedule = Interval::new(Duration::from_secs(1)).named(key.clone()).missed(missed);
        assert_eq!(schedule.missed_policy(), missed);
        let pipe = schedule.pipe_to(&backend, |tick| Ticked { tick });
        wait_for("the schedule to catch up", || async {
            backend.last_tick(&stored(&key)).await.ok().flatten() == Some(Timestamp(latest))
        })
        .await;
        let stats = pipe.stop().await;
        let ticks = enqueued_ticks(&backend, &key).await;
        let want: Vec<i64> = (0..expected).rev().map(|k| latest - 1000 * k).collect();
        assert_eq!(ticks, want, "policy `{missed}` enqueued the wrong missed ticks ({stats:?})");
    }

    // A very long gap: at most MAX_CATCH_UP ticks, the latest.
    let latest = mid_second(&backend).await;
    let key = "missed-bounded";
    must(backend.record_tick(&stored(key), Timestamp(latest - 3_000_000)).await, "record_tick").await;
    let schedule = Interval::new(Duration::from_secs(1)).named(key).missed(Missed::All);
    let pipe = schedule.pipe_to(&backend, |tick| Ticked { tick });
    wait_for("the schedule to catch up", || async {
        backend.last_tick(&stored(key)).await.ok().flatten().is_some_and(|t| t.as_millis() >= latest)
    })
    .await;
    drop(pipe.stop().await);
    let ticks: BTreeSet<i64> = enqueued_ticks(&backend, key).await.into_iter().filter(|t| *t <= latest).collect();
    assert_eq!(ticks.len(), crate::schedule::MAX_CATCH_UP, "catch-up must be bounded");
    assert_eq!(ticks.last().copied(), Some(latest), "catch-up keeps the latest ticks");
}

/// Finished tasks can be deleted; live ones and unknown ids cannot.
pub async fn finished_tasks_can_be_deleted<F: BackendFactory>(factory: &F) {
    let backend = factory.create::<JsonCodec>(TestSettings::default()).await;
    let probe = Probe::default();
    let done = must(backend.enqueue(Echo { key: 1, text: "done".into() }).await, "enqueue").await;
    let running =
        Running::start(Monitor::new().register(WorkerBuilder::<Echo, _>::new(backend.clone()).data(probe.clone())));
    wait_for("the task to finish", || async {
        backend.task(done).await.ok().flatten().is_some_and(|t| t.state == TaskState::Done)
    })
    .await;
    must(running.stop().await, "graceful stop").await;
    let waiting = must(backend.enqueue(Echo { key: 2, text: "waiting".into() }).await, "enqueue").await;

    assert!(!must(backend.delete_task(waiting).await, "delete").await, "a pending task must not be deleted");
    assert!(must(backend.task(waiting).await, "task").await.is_some());
    assert!(must(backend.delete_task(done).await, "delete").await, "a done task is deleted");
    assert!(must(backend.task(done).await, "task").await.is_none(), "a deleted task is gone");
    assert!(!must(backend.delete_task(done).await, "delete").await, "deleting twice does nothing");
    assert!(!must(backend.delete_task(TaskId(u64::MAX / 2)).await, "delete").await, "an unknown id is not deleted");
    assert_eq!(count(&backend, TaskState::Done).await, 0);
    assert_eq!(count(&backend, TaskState::Pending).await, 1);
}
