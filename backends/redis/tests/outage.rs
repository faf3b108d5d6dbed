//! The connection to Redis is cut in the middle of a run: a loopback TCP
//! proxy between the backend and Redis closes every connection and refuses
//! new ones for a while, then accepts again. The worker reconnects and every
//! task completes exactly once.
//!
//! Needs `ERRAND_REDIS_URL`: without it the test is reported as ignored
//! (and `ERRAND_REQUIRE_SERVICES=1` fails the build instead).

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use errand_runtime::testing::{Proxy, Running, wait_for};
use errand_runtime::{BackendExt, Expose, Job, JobError, JsonCodec, Monitor, TaskCx, TaskSink, WorkerBuilder};

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
