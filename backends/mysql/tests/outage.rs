//! The server goes away mid-run and comes back: workers back off, resume and
//! finish every task, and every workflow step, exactly once. A TCP proxy
//! between the backend and the server cuts every connection (mid-claim,
//! mid-ack, mid-heartbeat) and refuses new ones for a while.
//! Ignored without `ERRAND_MYSQL_URL` (the build fails instead under
//! `ERRAND_REQUIRE_SERVICES=1`).

mod common;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use errand_mysql::MysqlBackend;
use errand_mysql::sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use errand_mysql::sqlx::{self, Executor};
use errand_runtime::testing::{Proxy, Running, wait_for};
use errand_runtime::workflow::{Bytes, Run, RunState, StepSpec, StepTask, Workflow, WorkflowExt};
use errand_runtime::{
    Codec, CodecError, Event, Expose, Job, JobError, JobOptions, JsonCodec, Monitor, Requirements, TaskCx, TaskSink,
    TaskState, Tuning, WorkerBuilder,
};
use serde::{Deserialize, Serialize};

const TASKS: usize = 6_000;

/// Counts its runs per task in `Data<Runs>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tick {
    n: usize,
}

#[derive(Debug, Clone)]
struct Runs(Arc<Vec<AtomicU32>>);

impl Runs {
    fn total(&self) -> u32 {
        self.0.iter().map(|r| r.load(Ordering::SeqCst)).sum()
    }
}

impl Job for Tick {
    const NAME: &'static str = "tick";
    const QUEUE: &'static str = "ticks";
    type Output = ();

    fn requirements(r: &mut Requirements) {
        r.data::<Runs>();
    }

    async fn run(self, cx: TaskCx) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_millis(1)).await;
        if let Some(runs) = cx.data::<Runs>() {
            runs.0[self.n].fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// Takes 300 ms and counts its runs per task in `Data<Runs>`, so that many
/// are running when the connections are cut.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Nap {
    n: usize,
}

impl Job for Nap {
    const NAME: &'static str = "nap";
    const QUEUE: &'static str = "naps";
    type Output = ();

    fn requirements(r: &mut Requirements) {
        r.data::<Runs>();
    }

    async fn run(self, cx: TaskCx) -> Result<(), JobError> {
        if let Some(runs) = cx.data::<Runs>() {
            runs.0[self.n].fetch_add(1, Ordering::SeqCst);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(())
    }
}

/// A proxy in front of the server of `url`, and a backend value on
/// `direct`'s tables whose connections all go through it (its idle poller's
/// too), polling every 500 ms.
async fn proxied(url: &str, direct: &MysqlBackend) -> (Proxy, MysqlBackend) {
    let proxy = Proxy::start(upstream(url)).await;
    let backend = through(&proxy, url, direct, |t| t).await;
    (proxy, backend)
}

/// The `host:port` of the server of `url`.
fn upstream(url: &str) -> String {
    let options = MySqlConnectOptions::from_str(url).unwrap_or_else(|e| panic!("{e}"));
    format!("{}:{}", options.get_host(), options.get_port())
}

/// Another backend value on `direct`'s tables, with a pool of its own (as
/// another process would have, its connections `READ COMMITTED` as the
/// backend's own) whose connections go through `proxy`, polling every
/// 500 ms, with the tuning `tune` makes.
async fn through(proxy: &Proxy, url: &str, direct: &MysqlBackend, tune: impl FnOnce(Tuning) -> Tuning) -> MysqlBackend {
    let options = MySqlConnectOptions::from_str(url).unwrap_or_else(|e| panic!("{e}"));
    let pool = MySqlPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(1))
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED").await?;
                Ok(())
            })
        })
        .connect_lazy_with(options.host("127.0.0.1").port(proxy.addr().port()));
    MysqlBackend::builder()
        .namespace(direct.namespace())
        .tuning(|t| tune(t.poll_interval(Duration::from_millis(500))))
        .from_pool(pool)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Asserts that task `n` of `runs` ran exactly once, for every `n`.
fn each_ran_once(runs: &Runs) {
    let wrong: Vec<(usize, u32)> =
        (0..runs.0.len()).map(|n| (n, runs.0[n].load(Ordering::SeqCst))).filter(|(_, r)| *r != 1).collect();
    assert!(
        wrong.is_empty(),
        "{} tasks did not run exactly once (task, runs), e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
}

/// Waits until every task of `direct`'s tables is done: none lost.
async fn all_done(direct: &MysqlBackend, tasks: usize) {
    let count_done = format!("SELECT COUNT(*) FROM `{}tasks` WHERE state = 'done'", direct.namespace());
    wait_for("every task to be done", || async {
        let done = sqlx::query_scalar::<_, i64>(&count_done).fetch_one(direct.pool()).await;
        done.is_ok_and(|n| n == i64::try_from(tasks).unwrap_or(i64::MAX))
    })
    .await;
}

/// The tasks of `direct`'s tables whose attempt is not 1: each was rescued
/// or retried (a claim whose reply was lost gives its attempt back).
async fn attempts_beyond_the_first(direct: &MysqlBackend) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM `{}tasks` WHERE attempt <> 1", direct.namespace());
    sqlx::query_scalar(&sql).fetch_one(direct.pool()).await.unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_MYSQL_URL to run against a server")]
async fn a_server_outage_loses_and_repeats_nothing() {
    let url = common::url();
    let direct = common::backend_with(&url, |b| b).await;
    let _drop = common::DropTables::of(&url, &direct);
    let (proxy, proxied) = proxied(&url, &direct).await;

    let ids = direct.enqueue_bulk((0..TASKS).map(|n| Tick { n })).await.unwrap_or_else(|e| panic!("{e}"));
    let runs = Runs(Arc::new((0..TASKS).map(|_| AtomicU32::new(0)).collect()));
    let worker = WorkerBuilder::<Tick, _>::new(proxied.clone())
        .data(runs.clone())
        .concurrency(32)
        .heartbeat(Duration::from_millis(200));
    let running = Running::start(Monitor::new().register(worker));

    // Six outages: each cuts claims, acks and heartbeats in flight (a claim
    // that committed but whose reply was lost is the case to catch).
    for at in (1..=6).map(|k| TASKS * k / 7) {
        let at = u32::try_from(at).unwrap_or(u32::MAX);
        wait_for("the worker to get going", || async { runs.total() >= at }).await;
        proxy.cut();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(runs.total() < u32::try_from(TASKS).unwrap_or(u32::MAX), "the outage came too late to test anything");
        proxy.restore().await;
    }
    let count_done = format!("SELECT COUNT(*) FROM `{}tasks` WHERE state = 'done'", direct.namespace());
    wait_for("every task to be done after the outages", || async {
        let done = sqlx::query_scalar::<_, i64>(&count_done).fetch_one(direct.pool()).await;
        done.is_ok_and(|n| n == i64::try_from(TASKS).unwrap_or(i64::MAX))
    })
    .await;
    running.stop().await.unwrap_or_else(|e| panic!("graceful stop: {e}"));

    let twice: Vec<usize> = (0..TASKS).filter(|&n| runs.0[n].load(Ordering::SeqCst) != 1).collect();
    assert!(
        twice.is_empty(),
        "{} tasks did not run exactly once, e.g. {:?}",
        twice.len(),
        &twice[..twice.len().min(10)]
    );
    for id in [ids[0], ids[TASKS / 2], ids[TASKS - 1]] {
        let task = direct.task(id).await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("{id} is gone"));
        assert_eq!((task.state, task.attempt), (TaskState::Done, 1), "{task:?}");
    }
}

/// Runs of each step task, by task id.
#[derive(Debug, Clone, Default)]
struct StepRuns(Arc<Mutex<HashMap<u64, u32>>>);

impl StepRuns {
    fn total(&self) -> u32 {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).values().sum()
    }
}

/// first(n) → [double(n), label(n)] → join: each step takes a few
/// milliseconds, so acks are in flight when the proxy cuts.
#[derive(Debug)]
struct Relay(u64);

fn step(name: &str, after: &[u16]) -> StepSpec {
    StepSpec { name: name.into(), after: after.to_vec(), max_attempts: 3, priority: 0 }
}

fn input<C: Codec, T: serde::de::DeserializeOwned>(inputs: &[Bytes], i: usize) -> Result<T, JobError> {
    let bytes = inputs.get(i).ok_or_else(|| JobError::abort(format!("missing input {i}")))?;
    C::decode(&bytes.0, "a step input").map_err(JobError::abort)
}

impl Workflow for Relay {
    const NAME: &'static str = "my_relay";
    const QUEUE: &'static str = "my_relay";
    type Input = u64;
    type Output = (u64, String);

    fn steps() -> Vec<StepSpec> {
        vec![step("first", &[]), step("double", &[0]), step("label", &[0]), step("join", &[1, 2])]
    }

    fn into_input(self) -> u64 {
        self.0
    }

    fn step_options(_step: u16) -> JobOptions {
        JobOptions { retries: 2, ..JobOptions::DEFAULT }
    }

    fn requirements(r: &mut Requirements) {
        r.data::<StepRuns>();
    }

    async fn run_step<C: Codec>(step: u16, inputs: Vec<Bytes>, cx: TaskCx) -> Result<Vec<u8>, JobError> {
        let runs = cx.data::<StepRuns>().ok_or_else(|| JobError::abort("no Data<StepRuns>"))?;
        *runs.0.lock().unwrap_or_else(PoisonError::into_inner).entry(cx.id().0).or_default() += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
        let encode = |r: Result<Vec<u8>, CodecError>| r.map_err(JobError::abort);
        match step {
            0 => encode(C::encode(&input::<C, u64>(&inputs, 0)?, "first")),
            1 => encode(C::encode(&(input::<C, u64>(&inputs, 0)? * 2), "double")),
            2 => encode(C::encode(&format!("n={}", input::<C, u64>(&inputs, 0)?), "label")),
            3 => encode(C::encode(&(input::<C, u64>(&inputs, 0)?, input::<C, String>(&inputs, 1)?), "join")),
            _ => Err(JobError::abort("no such step")),
        }
    }

    fn decode_output<C: Codec>(sinks: Vec<Vec<u8>>) -> Result<(u64, String), CodecError> {
        C::decode(sinks.first().map_or(&[][..], |b| b), "the output of my_relay")
    }
}

/// Workflow steps run through a proxy that cuts every connection four times
/// while their acks (each a transaction that also advances the run) are in
/// flight: every run still ends with the right output, each step runs once,
/// and each run has exactly its four step tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_MYSQL_URL to run against a server")]
async fn workflow_step_acks_survive_connection_cuts() {
    const RUNS: u64 = 200;
    const STEPS: u32 = 4 * RUNS as u32;
    let url = common::url();
    let direct = common::backend_with(&url, |b| b).await;
    let _drop = common::DropTables::of(&url, &direct);
    let (proxy, proxied) = proxied(&url, &direct).await;

    let mut runs: Vec<(u64, Run<Relay>)> = Vec::new();
    for n in 1..=RUNS {
        runs.push((n, direct.start(Relay(n)).await.unwrap_or_else(|e| panic!("start: {e}"))));
    }
    let step_runs = StepRuns::default();
    // The acks of steps that failed: the cuts must have reached some.
    let failed_acks = Arc::new(AtomicU32::new(0));
    let failed = Arc::clone(&failed_acks);
    let worker = WorkerBuilder::<StepTask<Relay, JsonCodec>, _>::new(proxied.clone())
        .data(step_runs.clone())
        .concurrency(16)
        .heartbeat(Duration::from_millis(200))
        .on_event(move |event| {
            if let Event::BackendError { error } = event
                && error.contains("outcome(s) of workflow")
            {
                failed.fetch_add(1, Ordering::SeqCst);
            }
        });
    let running = Running::start(Monitor::new().register(worker));

    for at in (1..=4).map(|k| STEPS * k / 5) {
        wait_for("the steps to get going", || async { step_runs.total() >= at }).await;
        proxy.cut();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(step_runs.total() < STEPS, "the outage came too late to test anything");
        proxy.restore().await;
    }
    for (n, run) in &runs {
        let output = direct
            .workflow(*run)
            .wait_timeout(Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("run {n} (input {n}): {e}"));
        assert_eq!(output, (n * 2, format!("n={n}")), "run of input {n}");
    }
    running.stop().await.unwrap_or_else(|e| panic!("graceful stop: {e}"));
    assert!(failed_acks.load(Ordering::SeqCst) > 0, "no ack of workflow steps was cut: the test tested nothing");

    let counts = step_runs.0.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let twice: Vec<(&u64, &u32)> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "step tasks that did not run exactly once (task, runs): {twice:?}");
    assert_eq!(counts.len(), STEPS as usize, "every step of every run ran");
    let sql =
        format!("SELECT run_id, COUNT(*) FROM `{}tasks` WHERE run_id IS NOT NULL GROUP BY run_id", direct.namespace());
    let per_run: Vec<(i64, i64)> =
        sqlx::query_as(&sql).fetch_all(direct.pool()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(per_run.len(), runs.len());
    assert!(per_run.iter().all(|(_, c)| *c == 4), "each run has exactly four step tasks: {per_run:?}");
    for (n, run) in &runs {
        let status = direct.workflow(*run).status().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status.state, RunState::Done, "run of input {n}");
        assert!(
            status.steps.iter().all(|s| s.state == Some(TaskState::Done) && s.attempt == 1),
            "run of input {n}: {status:?}"
        );
    }
}

/// Three workers, each with a pool of its own (three processes), are cut off
/// from the server for longer than `orphan_after` while they run tasks, then
/// the connections come back: no worker takes the others for dead (the
/// runtime rescues only after its own heartbeats went through for
/// `orphan_after`, and the server's clock judges liveness), so nothing runs
/// twice, and every task is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_MYSQL_URL to run against a server")]
async fn three_workers_cut_off_longer_than_orphan_after_run_nothing_twice() {
    const TASKS: usize = 150;
    let url = common::url();
    let direct = common::backend_with(&url, |b| b).await;
    let _drop = common::DropTables::of(&url, &direct);
    let proxy = Proxy::start(upstream(&url)).await;
    direct.enqueue_bulk((0..TASKS).map(|n| Nap { n })).await.unwrap_or_else(|e| panic!("{e}"));
    let runs = Runs(Arc::new((0..TASKS).map(|_| AtomicU32::new(0)).collect()));
    let mut workers = Vec::new();
    for _ in 0..3 {
        let backend = through(&proxy, &url, &direct, |t| t.orphan_after(Duration::from_secs(2))).await;
        let worker = WorkerBuilder::<Nap, _>::new(backend)
            .data(runs.clone())
            .concurrency(4)
            .heartbeat(Duration::from_millis(200));
        workers.push(Running::start(Monitor::new().register(worker)));
    }
    wait_for("the workers to get going", || async { runs.total() >= 24 }).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(runs.total() < u32::try_from(TASKS).unwrap_or(u32::MAX), "the outage came too late to test anything");
    proxy.restore().await;
    all_done(&direct, TASKS).await;
    for running in workers {
        running.stop().await.unwrap_or_else(|e| panic!("graceful stop: {e}"));
    }
    each_ran_once(&runs);
    assert_eq!(attempts_beyond_the_first(&direct).await, 0, "tasks were rescued from live workers");
}

/// One-second cuts of every connection, three times, while three workers
/// (three pools) claim and acknowledge short tasks: claims whose reply was
/// lost are put back, acks are sent again, and each task runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_MYSQL_URL to run against a server")]
async fn one_second_cuts_during_claims_and_acks_lose_and_repeat_nothing() {
    const TASKS: usize = 6_000;
    let url = common::url();
    let direct = common::backend_with(&url, |b| b).await;
    let _drop = common::DropTables::of(&url, &direct);
    let proxy = Proxy::start(upstream(&url)).await;
    direct.enqueue_bulk((0..TASKS).map(|n| Tick { n })).await.unwrap_or_else(|e| panic!("{e}"));
    let runs = Runs(Arc::new((0..TASKS).map(|_| AtomicU32::new(0)).collect()));
    let mut workers = Vec::new();
    for _ in 0..3 {
        let backend = through(&proxy, &url, &direct, |t| t).await;
        let worker = WorkerBuilder::<Tick, _>::new(backend)
            .data(runs.clone())
            .concurrency(16)
            .heartbeat(Duration::from_millis(200));
        workers.push(Running::start(Monitor::new().register(worker)));
    }
    for at in (1..=3).map(|k| TASKS * k / 4) {
        let at = u32::try_from(at).unwrap_or(u32::MAX);
        wait_for("the workers to get going", || async { runs.total() >= at }).await;
        proxy.cut();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(runs.total() < u32::try_from(TASKS).unwrap_or(u32::MAX), "the cut came too late to test anything");
        proxy.restore().await;
    }
    all_done(&direct, TASKS).await;
    for running in workers {
        running.stop().await.unwrap_or_else(|e| panic!("graceful stop: {e}"));
    }
    each_ran_once(&runs);
    assert_eq!(attempts_beyond_the_first(&direct).await, 0, "tasks were run again");
}

/// The server restarts, as its clients see it (every connection cut, new
/// ones refused for 3 s), while plain tasks and workflows drain: everything
/// finishes, each task and each step once, each run with its right output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_MYSQL_URL to run against a server")]
async fn a_server_restart_during_a_workflow_drain_loses_and_repeats_nothing() {
    const TASKS: usize = 2_000;
    const RUNS: u64 = 150;
    const STEPS: u32 = 4 * RUNS as u32;
    let url = common::url();
    let direct = common::backend_with(&url, |b| b).await;
    let _drop = common::DropTables::of(&url, &direct);
    let proxy = Proxy::start(upstream(&url)).await;
    direct.enqueue_bulk((0..TASKS).map(|n| Tick { n })).await.unwrap_or_else(|e| panic!("{e}"));
    let mut started = Vec::new();
    for n in 1..=RUNS {
        started.push((n, direct.start(Relay(n)).await.unwrap_or_else(|e| panic!("start: {e}"))));
    }
    let runs = Runs(Arc::new((0..TASKS).map(|_| AtomicU32::new(0)).collect()));
    let step_runs = StepRuns::default();
    let mut workers = Vec::new();
    for _ in 0..2 {
        let backend = through(&proxy, &url, &direct, |t| t).await;
        let ticks =
            WorkerBuilder::<Tick, _>::new(backend.clone()).data(runs.clone()).heartbeat(Duration::from_millis(200));
        let steps = WorkerBuilder::<StepTask<Relay, JsonCodec>, _>::new(backend)
            .data(step_runs.clone())
            .concurrency(8)
            .heartbeat(Duration::from_millis(200));
        workers.push(Running::start(Monitor::new().register(ticks).register(steps)));
    }
    wait_for("the steps to get going", || async { step_runs.total() >= STEPS / 3 }).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(step_runs.total() < STEPS, "the restart came too late to test anything");
    proxy.restore().await;
    for (n, run) in &started {
        let output = direct
            .workflow(*run)
            .wait_timeout(Duration::from_secs(90))
            .await
            .unwrap_or_else(|e| panic!("run {n} (input {n}): {e}"));
        assert_eq!(output, (n * 2, format!("n={n}")), "run of input {n}");
    }
    all_done(&direct, TASKS + STEPS as usize).await;
    for running in workers {
        running.stop().await.unwrap_or_else(|e| panic!("graceful stop: {e}"));
    }
    each_ran_once(&runs);
    let counts = step_runs.0.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let twice: Vec<(&u64, &u32)> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "step tasks that did not run exactly once (task, runs): {twice:?}");
    assert_eq!(counts.len(), STEPS as usize, "every step of every run ran");
    assert_eq!(attempts_beyond_the_first(&direct).await, 0, "tasks or steps were run again");
}
