//! Load across worker *processes*: N processes drain one queue of M tasks,
//! and one of them is killed with SIGKILL part-way. No task is lost, and
//! no task runs twice unless the killed process was running it (the
//! duplicates are at most the tasks running for it when it died).
//!
//! `main` is the parent: it enqueues, then re-executes this binary with
//! `--child <prefix>` N times; each child runs a worker until the queue is
//! empty, recording every run (task, process, worker) in a side table that
//! the parent checks. It prints
//! `load [mysql]: processes N, tasks M, lost 0, duplicates D`.
//!
//! The size is 4 processes × 20,000 tasks; set `ERRAND_LOAD_PROCESSES` and
//! `ERRAND_LOAD_TASKS` for another, e.g. the full run:
//!
//! ```text
//! ERRAND_LOAD_PROCESSES=10 ERRAND_LOAD_TASKS=100000 \
//!     cargo test -p errand-mysql --release --test load -- --nocapture
//! ```
//!
//! Without `ERRAND_MYSQL_URL` it only says it is ignored (the build fails
//! instead under `ERRAND_REQUIRE_SERVICES=1`): this test has no harness to
//! report it as ignored.

#![allow(clippy::print_stdout)]

mod common;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use errand_mysql::MysqlBackend;
use errand_mysql::sqlx::{self, MySqlPool};
use errand_runtime::{BackendExt, Job, JobError, Monitor, Requirements, TaskCx, TaskSink, WorkerBuilder};
use serde::{Deserialize, Serialize};

const QUEUE: &str = "load";
/// How long a killed process's tasks stay `running` before rescue.
const ORPHAN_AFTER: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    n: u64,
}

/// Where runs are recorded.
#[derive(Debug, Clone)]
struct Side {
    pool: MySqlPool,
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
            .bind(cx.worker().id())
            .execute(&side.pool)
            .await
            .map_err(JobError::retry)?;
        Ok(())
    }
}

/// A positive number from the environment variable `var`, or `default`.
fn setting(var: &str, default: u64) -> u64 {
    match std::env::var(var) {
        Ok(value) => value.parse().ok().filter(|n| *n > 0).unwrap_or_else(|| panic!("{var}={value}: not a count")),
        Err(_) => default,
    }
}

fn main() {
    if cfg!(errand_skip) {
        println!("load: ignored (set ERRAND_MYSQL_URL to run against a server)");
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
            let prefix = args.get(i + 1).cloned().unwrap_or_else(|| panic!("--child needs a table prefix"));
            runtime.block_on(child(&prefix));
        }
        None => {
            // `cargo test -- <filter>` passes arguments; run only when not filtered out.
            if args.iter().skip(1).any(|a| !a.starts_with('-') && !"load".contains(a.as_str())) {
                return;
            }
            runtime.block_on(parent());
            println!("test load ... ok\n1 passed, 0 failed");
        }
    }
}

async fn parent() {
    let processes = setting("ERRAND_LOAD_PROCESSES", 4);
    let tasks = setting("ERRAND_LOAD_TASKS", 20_000);
    assert!(processes >= 2, "ERRAND_LOAD_PROCESSES: one process is killed, so at least 2");
    let url = common::url();
    let backend = common::backend_with(&url, |b| b).await;
    let prefix = backend.namespace().to_owned();
    // Dropped however the test ends (with the side table).
    let _drop = common::DropTables::of(&url, &backend);
    sqlx::query(&format!(
        "CREATE TABLE `{prefix}record_runs` (task_id BIGINT NOT NULL, pid BIGINT NOT NULL, worker VARCHAR(255) NOT NULL)"
    ))
    .execute(backend.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let ids = backend.enqueue_bulk((0..tasks).map(|n| Record { n })).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids.len() as u64, tasks);

    let started = Instant::now();
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let mut children: Vec<Child> = (0..processes)
        .map(|_| {
            Command::new(&exe)
                .args(["--child", &prefix])
                .env("ERRAND_LOAD_TASKS", tasks.to_string())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start a worker process: {e}"))
        })
        .collect();

    // A third of the way through, SIGKILL the first process, and count what
    // was running for it at that moment.
    let count_runs = format!("SELECT COUNT(*) FROM `{prefix}record_runs`");
    let deadline = Instant::now() + child_deadline(tasks);
    loop {
        let runs: i64 =
            sqlx::query_scalar(&count_runs).fetch_one(backend.pool()).await.unwrap_or_else(|e| panic!("{e}"));
        if u64::try_from(runs).unwrap_or(0) >= tasks / 3 {
            break;
        }
        assert!(Instant::now() < deadline, "the processes never got a third of the way: {runs} runs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let victim = children.remove(0);
    let victim_pid = i64::from(victim.id());
    kill(victim);
    let in_flight: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM `{prefix}tasks` WHERE state = 'running' \
         AND worker IN (SELECT DISTINCT worker FROM `{prefix}record_runs` WHERE pid = ?)"
    ))
    .bind(victim_pid)
    .fetch_one(backend.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    for mut child in children {
        let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
        assert!(status.success(), "a worker process failed: {status}");
    }
    let elapsed = started.elapsed();

    let (runs, distinct, pids): (i64, i64, i64) = sqlx::query_as(&format!(
        "SELECT COUNT(*), COUNT(DISTINCT task_id), COUNT(DISTINCT pid) FROM `{prefix}record_runs`"
    ))
    .fetch_one(backend.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let counts = backend.queue_counts(QUEUE).await.unwrap_or_else(|e| panic!("{e}"));
    let lost = tasks - u64::try_from(distinct).unwrap_or(0);
    let duplicates = runs - distinct;
    println!("load [mysql]: processes {processes}, tasks {tasks}, lost {lost}, duplicates {duplicates}");
    println!(
        "load [mysql]: {in_flight} task(s) running in the killed process; {pids} processes did work; \
         {runs} runs in {elapsed:?} ({:.0} tasks/s)",
        tasks as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(counts.done, tasks, "every task is done: {counts:?}");
    assert_eq!(lost, 0, "every task ran");
    assert!(
        duplicates <= in_flight,
        "{duplicates} tasks ran twice, but only {in_flight} were running in the killed process"
    );
    assert!(pids >= 2, "only {pids} process(es) did any work");
}

/// SIGKILLs `child` (what `Child::kill` sends on Unix) and reaps it.
fn kill(mut child: Child) {
    child.kill().unwrap_or_else(|e| panic!("cannot kill a worker process: {e}"));
    let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(!status.success(), "the killed process exited normally: {status}");
}

/// How long a child may take to drain `tasks` tasks before giving up.
fn child_deadline(tasks: u64) -> Duration {
    Duration::from_secs(120 + tasks / 200)
}

async fn child(prefix: &str) {
    let url = common::url();
    let tasks = setting("ERRAND_LOAD_TASKS", 20_000);
    let backend = MysqlBackend::builder()
        .namespace(prefix)
        .tuning(|t| t.orphan_after(ORPHAN_AFTER))
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let pool = backend.pool().clone();
    let side = Side {
        pool: pool.clone(),
        insert: format!("INSERT INTO `{prefix}record_runs` (task_id, pid, worker) VALUES (?, ?, ?)"),
    };
    // Whether anything is left to run: waiting tasks through tasks_claim,
    // running ones through tasks_held (no count of every task).
    let left = format!(
        "SELECT CAST(EXISTS (SELECT 1 FROM `{prefix}tasks` WHERE queue = ? AND job = ? AND waiting = 1) \
         OR EXISTS (SELECT 1 FROM `{prefix}tasks` WHERE state = 'running') AS SIGNED)"
    );
    let deadline = Instant::now() + child_deadline(tasks);
    Monitor::new()
        .register(
            WorkerBuilder::<Record, _>::new(backend.clone())
                .data(side)
                .concurrency(16)
                .heartbeat(Duration::from_millis(500)),
        )
        .run_until(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let Ok(busy) =
                    sqlx::query_scalar::<_, i64>(&left).bind(QUEUE).bind(Record::NAME).fetch_one(&pool).await
                else {
                    continue;
                };
                if busy == 0 || Instant::now() > deadline {
                    return;
                }
            }
        })
        .await
        .unwrap_or_else(|e| panic!("worker process failed: {e}"));
}
