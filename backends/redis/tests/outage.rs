//! The connection to Redis is cut in the middle of a run: a loopback TCP
//! proxy between the backends and Redis closes every connection and refuses
//! new ones for a while, then accepts again. The workers reconnect and every
//! task completes exactly once: a short cut during claims and acks, a cut
//! longer than `orphan_after` under three workers (none is taken for dead
//! once they are back), and a simulated server restart during a drain with
//! workflows.
//!
//! Needs `ERRAND_REDIS_URL`: without it the test is reported as ignored
//! (and `ERRAND_REQUIRE_SERVICES=1` fails the build instead).

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use errand_redis::RedisBackend;
use errand_runtime::testing::jobs::{Echo, Sleeper};
use errand_runtime::testing::workflows::Diamond;
use errand_runtime::testing::{Probe, Proxy, Running, wait_for};
use errand_runtime::workflow::{RunState, StepTask, WorkflowExt};
use errand_runtime::{
    BackendExt, Expose, Job, JobError, JsonCodec, Monitor, TaskCx, TaskSink, Tuning, WorkerBuilder, Workflow,
};

/// How many times each key ran.
#[derive(Debug, Clone, Default)]
struct Runs(Arc<Mutex<HashMap<u64, u32>>>);

impl Runs {
    fn record(&self, key: u64) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner).entry(key).or_default() += 1;
    }
    fn total(&self) -> u32 {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).values().sum()
    }
    fn of(&self, key: u64) -> u32 {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(&key).copied().unwrap_or(0)
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Work {
    key: u64,
}

impl Job for Work {
    const NAME: &'static str = "outage_work";
    const QUEUE: &'static str = "outage";
    type Output = ();
    async fn run(self, cx: TaskCx) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        if let Some(runs) = cx.data::<Runs>() {
            runs.record(self.key);
        }
        Ok(())
    }
}

/// `redis://[userinfo@]host:port[/db]` → (`host:port`, the same URL pointing at `proxy`).
fn through(url: &str, proxy: SocketAddr) -> (String, String) {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    let hostport = if hostport.contains(':') { hostport.to_owned() } else { format!("{hostport}:6379") };
    let proxied = format!("{}{userinfo}{proxy}{}", &url[..scheme_end], &rest[authority_end..]);
    (hostport, proxied)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn a_cut_connection_loses_nothing() {
    let url = common::url();
    let (direct, _cleanup) = common::backend::<JsonCodec>(common::builder()).await;
    let (upstream, _) = through(&url, "127.0.0.1:1".parse().unwrap_or_else(|e| panic!("{e}")));
    let proxy = Proxy::start(upstream).await;
    let (_, proxied_url) = through(&url, proxy.addr());
    let proxied = errand_redis::RedisBackend::builder()
        .namespace(direct.namespace())
        .tuning(|t| t.poll_interval(Duration::from_millis(100)))
        .connect(&proxied_url)
        .await
        .unwrap_or_else(|e| panic!("connect through the proxy: {e}"));

    let total = 300;
    let ids = direct.enqueue_bulk((0..total).map(|key| Work { key })).await.unwrap_or_else(|e| panic!("enqueue: {e}"));
    let runs = Runs::default();
    let worker = WorkerBuilder::<Work, _>::new(proxied.clone()).data(runs.clone()).concurrency(8);
    let running = Running::start(Monitor::new().register(worker));

    wait_for("some runs before the cut", || async { runs.total() >= 40 }).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(runs.total() < total as u32, "the cut came too late to test anything");
    proxy.restore().await;

    wait_for("every task to be done", || async {
        direct.queue_counts(Work::QUEUE).await.is_ok_and(|c| c.done == total)
    })
    .await;
    running.stop().await.unwrap_or_else(|e| panic!("graceful stop: {e}"));
    for key in 0..total {
        assert_eq!(runs.of(key), 1, "task {key} ran {} times", runs.of(key));
    }
    for id in ids {
        let info = direct.task(id).await.unwrap_or_else(|e| panic!("task {id}: {e}"));
        assert_eq!(info.map(|t| t.state), Some(errand_runtime::TaskState::Done), "task {id}");
    }
    // Enqueueing through the restored proxy works too.
    proxied.enqueue(Work { key: total }).await.unwrap_or_else(|e| panic!("enqueue after the outage: {e}"));
}

/// A proxy in front of the test server, and the URL that goes through it.
async fn proxy() -> (Proxy, String) {
    let url = common::url();
    let (upstream, _) = through(&url, "127.0.0.1:1".parse().unwrap_or_else(|e| panic!("{e}")));
    let proxy = Proxy::start(upstream).await;
    let (_, proxied) = through(&url, proxy.addr());
    (proxy, proxied)
}

/// A backend of its own (its own connection) on `namespace`, through the proxy.
async fn connect(url: &str, namespace: &str, tune: impl FnOnce(Tuning) -> Tuning) -> RedisBackend {
    let builder = RedisBackend::builder()
        .namespace(namespace)
        .response_timeout(Duration::from_secs(1))
        .tuning(|t| tune(t.poll_interval(Duration::from_millis(100))));
    builder.connect(url).await.unwrap_or_else(|e| panic!("connect through the proxy: {e}"))
}

async fn done<B: Expose>(backend: &B, queue: &str) -> u64 {
    backend.queue_counts(queue).await.map_or(0, |c| c.done)
}

fn each_ran_once(probe: &Probe, keys: std::ops::Range<u64>) {
    for key in keys {
        let runs = probe.runs(key).len();
        assert_eq!(runs, 1, "task {key} ran {runs} times");
    }
}

/// A 1 s cut while three workers claim and ack small tasks as fast as they
/// can: claims and acks in flight are lost with their connections; every
/// task is done, and none ran twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn a_short_cut_during_claims_and_acks_loses_nothing() {
    let (direct, _cleanup) = common::backend::<JsonCodec>(common::builder()).await;
    let (proxy, url) = proxy().await;
    // Enough that the drain is still under way when the test's own task,
    // sharing two threads with three busy workers, gets to make the cut.
    let total = 60_000;
    direct
        .enqueue_bulk((0..total).map(|key| Echo { key, text: String::new() }))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let probe = Probe::default();
    let mut workers = Vec::new();
    for _ in 0..3 {
        let backend = connect(&url, direct.namespace(), |t| t).await;
        let worker = WorkerBuilder::<Echo, _>::new(backend).data(probe.clone()).concurrency(16);
        workers.push(Running::start(Monitor::new().register(worker.heartbeat(Duration::from_millis(200)))));
    }
    wait_for("the drain to be under way", || async { probe.total_runs() >= 300 }).await;
    proxy.cut();
    let at_cut = direct.queue_counts(Echo::QUEUE).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(at_cut.done < total, "the cut came too late to test anything");
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.restore().await;
    wait_for("every task to be done", || async { done(&direct, Echo::QUEUE).await == total }).await;
    for running in workers {
        running.stop().await.unwrap_or_else(|e| panic!("graceful stop: {e}"));
    }
    each_ran_once(&probe, 0..total);
    let counts = direct.queue_counts(Echo::QUEUE).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((counts.done, counts.pending, counts.running), (total, 0, 0), "{counts:?}");
}

/// Three workers cut off for longer than `orphan_after`: their heartbeat
/// keys expire meanwhile, but once they are back no worker takes another
/// for dead (rescue waits until a worker's own heartbeats have gone through
/// for `orphan_after`, by which time the others have beaten again), so no
/// task runs twice, and none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn three_workers_cut_off_longer_than_orphan_after_run_nothing_twice() {
    let orphan_after = Duration::from_secs(4);
    let (direct, _cleanup) = common::backend::<JsonCodec>(common::builder()).await;
    let (proxy, url) = proxy().await;
    let total = 90;
    let jobs = (0..total).map(|key| Sleeper { key, millis: 300, hang_on: vec![] });
    direct.enqueue_bulk(jobs).await.unwrap_or_else(|e| panic!("{e}"));
    let probe = Probe::default();
    let mut workers = Vec::new();
    for _ in 0..3 {
        let backend = connect(&url, direct.namespace(), |t| t.orphan_after(orphan_after)).await;
        let worker = WorkerBuilder::<Sleeper, _>::new(backend).data(probe.clone()).concurrency(4);
        workers.push(Running::start(Monitor::new().register(worker.heartbeat(Duration::from_millis(200)))));
    }
    wait_for("every worker to be running tasks", || async { probe.total_runs() >= 12 }).await;
    proxy.cut();
    tokio::time::sleep(orphan_after + Duration::from_secs(1)).await;
    proxy.restore().await;
    wait_for("every task to be done", || async { done(&direct, Sleeper::QUEUE).await == total }).await;
    for running in workers {
        running.stop().await.unwrap_or_else(|e| panic!("graceful stop: {e}"));
    }
    each_ran_once(&probe, 0..total);
}

/// A simulated server restart (every connection cut, new ones refused for
/// 3 s, then accepted again) while three workers drain tasks and workflow
/// runs: every task runs once, every workflow step once per run, and every
/// run finishes with its output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(errand_skip, ignore = "set ERRAND_REDIS_URL to run against a server")]
async fn a_server_restart_during_a_drain_with_workflows_loses_nothing() {
    let (direct, _cleanup) = common::backend::<JsonCodec>(common::builder()).await;
    let (proxy, url) = proxy().await;
    let total = 600;
    let jobs = (0..total).map(|key| Sleeper { key, millis: 10, hang_on: vec![] });
    direct.enqueue_bulk(jobs).await.unwrap_or_else(|e| panic!("{e}"));
    let mut runs = Vec::new();
    for n in 0..20 {
        runs.push(direct.start(Diamond(n)).await.unwrap_or_else(|e| panic!("start: {e}")));
    }
    let (probe, steps) = (Probe::default(), Probe::default());
    let mut workers = Vec::new();
    for _ in 0..3 {
        let backend = connect(&url, direct.namespace(), |t| t).await;
        let tasks = WorkerBuilder::<Sleeper, _>::new(backend.clone()).data(probe.clone()).concurrency(8);
        let step_worker =
            WorkerBuilder::<StepTask<Diamond, JsonCodec>, _>::new(backend).data(steps.clone()).concurrency(2);
        let monitor = Monitor::new()
            .register(tasks.heartbeat(Duration::from_millis(200)))
            .register(step_worker.heartbeat(Duration::from_millis(200)));
        workers.push(Running::start(monitor));
    }
    wait_for("the drain to be under way", || async { probe.total_runs() >= 100 && steps.total_runs() >= 4 }).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.restore().await;
    wait_for("every task to be done", || async { done(&direct, Sleeper::QUEUE).await == total }).await;
    for (n, run) in (0..).zip(&runs) {
        let output = direct.workflow(*run).wait_timeout(Duration::from_secs(30)).await;
        assert_eq!(output.unwrap_or_else(|e| panic!("run {n}: {e}")), ((n + 1) * 2, format!("n={}", n + 1)));
        let status = direct.workflow(*run).status().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status.state, RunState::Done);
    }
    for running in workers {
        running.stop().await.unwrap_or_else(|e| panic!("graceful stop: {e}"));
    }
    each_ran_once(&probe, 0..total);
    for step in 0..4 {
        assert_eq!(steps.runs(step).len(), runs.len(), "step {step} must run once per run");
    }
    let counts = direct.queue_counts(Diamond::QUEUE).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((counts.done, counts.running, counts.dead), (runs.len() as u64 * 4, 0, 0), "{counts:?}");
}
