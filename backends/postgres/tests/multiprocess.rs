//! Several worker *processes* drain one queue of 20,000 tasks: every task runs
//! exactly once and none is lost.
//!
//! `main` is the parent: it enqueues, then re-executes this binary with
//! `--child <schema>` a few times; each child runs a worker until the queue is
//! empty, recording every run in a side table that the parent checks.
//! Without `ERRAND_POSTGRES_URL` it only says it is ignored (the build fails
//! instead under `ERRAND_REQUIRE_SERVICES=1`): this test has no harness to
//! report it as ignored.

#![allow(clippy::print_stdout)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use errand_postgres::PostgresBackend;
use errand_postgres::sqlx::{self, PgPool};
use errand_runtime::{BackendExt, Job, JobError, Monitor, Requirements, TaskCx, TaskSink, WorkerBuilder};
use serde::{Deserialize, Serialize};

const TASKS: u64 = 20_000;
const CHILDREN: usize = 4;
const QUEUE: &str = "multiprocess";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    n: u64,
}

/// Where runs are recorded.
#[derive(Debug, Clone)]
struct Side {
    pool: PgPool,
    insert: String,
}

impl Job for Record {
    const NAME: &'static str = "record";
    const QUEUE: &'static str = QUEUE;
    type Output = ();

    fn requirements(r: &mut Requirements) {
        r.data::<Side>();
    }

    async fn run(self, cx: TaskCx) -> Result<(), JobError> {
        let Some(side) = cx.data::<Side>() else { return Err(JobError::abort("no side table")) };
        let id = i64::try_from(cx.id().0).map_err(JobError::abort)?;
        sqlx::query(&side.insert)
            .bind(id)
            .bind(i64::from(std::process::id()))
            .execute(&side.pool)
            .await
            .map_err(JobError::retry)?;
        Ok(())
    }
}

fn main() {
    if cfg!(errand_skip) {
        println!("multiprocess: ignored (set ERRAND_POSTGRES_URL to run against a server)");
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot start a runtime: {e}"));
    match args.iter().position(|a| a == "--child") {
        Some(i) => {
            let schema = args.get(i + 1).cloned().unwrap_or_else(|| panic!("--child needs a schema"));
            runtime.block_on(child(&schema));
        }
        None => runtime.block_on(parent()),
    }
}

async fn parent() {
    let url = common::url();
    let backend = common::backend(&url).await;
    let schema = backend.namespace().to_owned();
    // Dropped however the test ends.
    let _drop = common::DropSchema::of(&url, &backend);
    sqlx::query(&format!("CREATE TABLE \"{schema}\".record_runs (task_id bigint NOT NULL, pid bigint NOT NULL)"))
        .execute(backend.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ids = backend.enqueue_bulk((0..TASKS).map(|n| Record { n })).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids.len() as u64, TASKS);

    let started = Instant::now();
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let children: Vec<_> = (0..CHILDREN)
        .map(|_| {
            Command::new(&exe)
                .args(["--child", &schema])
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start a worker process: {e}"))
        })
        .collect();
    for mut child in children {
        let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
        assert!(status.success(), "a worker process failed: {status}");
    }
    let elapsed = started.elapsed();

    let (runs, distinct, processes): (i64, i64, i64) = sqlx::query_as(&format!(
        "SELECT count(*), count(DISTINCT task_id), count(DISTINCT pid) FROM \"{schema}\".record_runs"
    ))
    .fetch_one(backend.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let counts = backend.queue_counts(QUEUE).await.unwrap_or_else(|e| panic!("{e}"));
    println!(
        "multiprocess: {TASKS} tasks, {CHILDREN} processes ({processes} did work), {runs} runs in {elapsed:?} \
         ({:.0} tasks/s)",
        TASKS as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(counts.done, TASKS, "every task is done: {counts:?}");
    assert_eq!(distinct as u64, TASKS, "every task ran");
    assert_eq!(runs as u64, TASKS, "no task ran twice");
    assert!(processes >= 2, "only {processes} process(es) did any work");
    common::drop_schema(&backend).await;
    println!("multiprocess: ok");
}

async fn child(schema: &str) {
    let url = common::url();
    let pool = common::pool(&url).await;
    let backend =
        PostgresBackend::builder().namespace(schema).from_pool(pool.clone()).unwrap_or_else(|e| panic!("{e}"));
    let side = Side { pool, insert: format!("INSERT INTO \"{schema}\".record_runs (task_id, pid) VALUES ($1, $2)") };
    let watch = backend.clone();
    let deadline = Instant::now() + Duration::from_secs(120);
    Monitor::new()
        .register(WorkerBuilder::<Record, _>::new(backend.clone()).data(side).concurrency(16))
        .run_until(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let Ok(c) = watch.queue_counts(QUEUE).await else { continue };
                if c.pending + c.running + c.retry == 0 || Instant::now() > deadline {
                    return;
                }
            }
        })
        .await
        .unwrap_or_else(|e| panic!("worker process failed: {e}"));
}
