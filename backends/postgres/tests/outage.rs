//! The server goes away mid-run and comes back: workers back off, resume and
//! finish every task exactly once. A TCP proxy between the backend and the
//! server cuts every connection (mid-claim, mid-ack, mid-heartbeat) and
//! refuses new ones for a while.
//! Skipped without `ERRAND_POSTGRES_URL` (failing instead under
//! `ERRAND_REQUIRE_SERVICES=1`).

mod common;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use errand_postgres::PostgresBackend;
use errand_postgres::sqlx;
use errand_postgres::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use errand_runtime::testing::{Proxy, Running, wait_for};
use errand_runtime::{Expose, Job, JobError, Monitor, TaskCx, TaskSink, TaskState, WorkerBuilder};
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

    fn requirements(r: &mut errand_runtime::Requirements) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_outage_loses_and_repeats_nothing() {
    let Some(url) = common::url() else { return };
    let direct = common::backend(&url).await;
    let options = PgConnectOptions::from_str(&url).unwrap_or_else(|e| panic!("{e}"));
    let proxy = Proxy::start(format!("{}:{}", options.get_host(), options.get_port())).await;
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(1))
        .connect_lazy_with(options.host("127.0.0.1").port(proxy.addr().port()));
    let proxied = PostgresBackend::from_pool(pool)
        .schema(direct.schema_name())
        .unwrap_or_else(|e| panic!("{e}"))
        .poll_interval(Duration::from_millis(500));

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
    let count_done = format!("SELECT count(*) FROM \"{}\".tasks WHERE state = 'done'", direct.schema_name());
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
    common::drop_schema(&direct).await;
}
