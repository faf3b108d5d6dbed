//! Several worker *processes* on one database file: every task is done, none
//! is lost, and only tasks in flight in a process killed with SIGKILL part-way
//! run twice. Prints `load [sqlite]: processes N, tasks M, lost 0,
//! duplicates D`.
//!
//! The size comes from `ERRAND_LOAD_PROCESSES` (4) and `ERRAND_LOAD_TASKS`
//! (5,000, in all); the full size is
//! `ERRAND_LOAD_TASKS=100000 cargo test --release -p errand-sqlite --test load`.
//!
//! `harness = false`: `main` is the test. It re-executes itself with
//! `--child` to become a worker process.

#![allow(clippy::print_stdout)] // a harness-less test reports its result on stdout

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use errand_runtime::{BackendExt, Job, JobError, Monitor, TaskCx, TaskSink, WorkerBuilder};
use errand_sqlite::SqliteBackend;
use errand_sqlite::sqlx;

const QUEUE: &str = "load";
/// Concurrent runs per process.
const CONCURRENCY: usize = 16;

/// Where this process records its runs: one `n` line per run, appended by
/// one `write` each (unbuffered, so a SIGKILL loses no recorded run).
static RUNS: OnceLock<Mutex<File>> = OnceLock::new();

#[derive(serde::Serialize, serde::Deserialize)]
struct Tick {
    n: u64,
}

impl Job for Tick {
    const NAME: &'static str = "load_tick";
    const QUEUE: &'static str = QUEUE;
    type Output = ();

    async fn run(self, _cx: TaskCx) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let Some(runs) = RUNS.get() else { return Err(JobError::abort("no run log")) };
        runs.lock().unwrap_or_else(PoisonError::into_inner).write_all(format!("{}\n", self.n).as_bytes())?;
        Ok(())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(Path::new(&args[i + 1]), Path::new(&args[i + 2]));
        return;
    }
    if args.iter().any(|a| a == "--list") {
        println!("load: test");
        return;
    }
    // `cargo test -- <filter>` passes arguments; run only when not filtered out.
    if args.iter().skip(1).any(|a| !a.starts_with('-') && !"load".contains(a.as_str())) {
        return;
    }
    parent();
    println!("test load ... ok\n1 passed, 0 failed");
}

fn size(var: &str, default: u64) -> u64 {
    match std::env::var(var) {
        Ok(value) => value.parse().unwrap_or_else(|e| panic!("{var}={value}: {e}")),
        Err(_) => default,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => panic!("cannot start tokio: {e}"),
    }
}

async fn backend(db: &Path) -> SqliteBackend {
    let url = format!("sqlite://{}", db.display());
    let builder = SqliteBackend::builder()
        .tuning(|t| t.orphan_after(Duration::from_secs(2)).poll_interval(Duration::from_millis(50)));
    builder.connect(&url).await.unwrap_or_else(|e| panic!("cannot open {url}: {e}"))
}

/// A worker process: runs tasks until none waits or runs. Writes its
/// worker's id to `<log>.id` first.
fn child(db: &Path, log: &Path) {
    let file = File::options().append(true).create(true).open(log);
    let file = file.unwrap_or_else(|e| panic!("cannot open {}: {e}", log.display()));
    if RUNS.set(Mutex::new(file)).is_err() {
        panic!("the run log is opened once");
    }
    runtime().block_on(async {
        let backend = backend(db).await;
        let worker = WorkerBuilder::<Tick, _>::new(backend.clone())
            .concurrency(CONCURRENCY)
            .heartbeat(Duration::from_millis(200))
            .build();
        let id_file = log.with_extension("id");
        std::fs::write(&id_file, worker.id()).unwrap_or_else(|e| panic!("cannot write {}: {e}", id_file.display()));
        let watch = backend.clone();
        let result = Monitor::new()
            .register(worker)
            .run_until(async move {
                loop {
                    if let Ok(c) = watch.queue_counts(QUEUE).await
                        && c.pending + c.running + c.retry == 0
                    {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
            .await;
        if let Err(e) = result {
            panic!("worker process failed: {e}");
        }
    });
}

fn spawn_child(db: &Path, log: &Path) -> Child {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("cannot find the test binary: {e}"));
    Command::new(exe)
        .arg("--child")
        .arg(db)
        .arg(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start a worker process: {e}"))
}

/// The tasks a process's log says it ran, one entry per run.
fn runs(log: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().filter_map(|line| line.parse().ok()).collect()
}

fn parent() {
    let processes = size("ERRAND_LOAD_PROCESSES", 4).max(2);
    let tasks = size("ERRAND_LOAD_TASKS", 5_000).max(100);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
    let db = dir.path().join("load.db");
    let logs: Vec<PathBuf> = (0..processes).map(|i| dir.path().join(format!("runs-{i}.log"))).collect();
    let rt = runtime();
    let started = Instant::now();
    rt.block_on(async {
        let backend = backend(&db).await;
        let jobs = (0..tasks).map(|n| Tick { n });
        backend.enqueue_bulk(jobs).await.unwrap_or_else(|e| panic!("enqueue failed: {e}"));
    });

    let mut children: Vec<Child> = logs.iter().map(|log| spawn_child(&db, log)).collect();
    // Part-way, the busiest process is killed with SIGKILL.
    let deadline = Instant::now() + Duration::from_secs(120 + tasks / 100);
    let (killed, ran) = loop {
        let ran: Vec<usize> = logs.iter().map(|log| runs(log).len()).collect();
        if ran.iter().sum::<usize>() as u64 >= tasks / 3 {
            let busiest = (0..ran.len()).max_by_key(|i| ran[*i]).unwrap_or_default();
            break (busiest, ran[busiest]);
        }
        assert!(Instant::now() < deadline, "the workers made no progress: {ran:?} runs");
        std::thread::sleep(Duration::from_millis(10));
    };
    children[killed].kill().unwrap_or_else(|e| panic!("SIGKILL failed: {e}"));
    let _ = children[killed].wait();
    assert!((ran as u64) < tasks, "the killed process ran every task before it was killed");
    // What it held: its running tasks (claimed, maybe run, not acked).
    let worker_id = std::fs::read_to_string(logs[killed].with_extension("id"))
        .unwrap_or_else(|e| panic!("the killed process's worker id: {e}"));
    let in_flight: i64 = rt.block_on(async {
        let backend = backend(&db).await;
        sqlx::query_scalar("SELECT count(*) FROM errand_tasks WHERE state = 'running' AND worker = ?")
            .bind(&worker_id)
            .fetch_one(backend.pool())
            .await
            .unwrap_or_else(|e| panic!("counting the killed process's tasks: {e}"))
    });

    // The others rescue what it held and run the rest.
    for (i, child) in children.iter_mut().enumerate() {
        if i == killed {
            continue;
        }
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                Ok(None) => {
                    let _ = child.kill();
                    panic!("worker process {i} did not finish in time");
                }
                Err(e) => panic!("waiting for worker process {i}: {e}"),
            }
        };
        assert!(status.success(), "worker process {i} failed: {status}");
    }
    let elapsed = started.elapsed();

    let counts = rt
        .block_on(async { backend(&db).await.queue_counts(QUEUE).await })
        .unwrap_or_else(|e| panic!("counts failed: {e}"));
    let mut per_task: HashMap<u64, Vec<usize>> = HashMap::new();
    for (process, log) in logs.iter().enumerate() {
        for n in runs(log) {
            per_task.entry(n).or_default().push(process);
        }
    }
    let lost = (0..tasks).filter(|n| !per_task.contains_key(n)).count() as u64 + (tasks - counts.done.min(tasks));
    let duplicates: u64 = per_task.values().map(|p| p.len() as u64 - 1).sum();
    println!("load [sqlite]: processes {processes}, tasks {tasks}, lost {lost}, duplicates {duplicates}");
    println!(
        "  ({:.1} s, {:.0} tasks/s; process {killed} killed after {ran} runs with {in_flight} tasks in flight)",
        elapsed.as_secs_f64(),
        tasks as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(lost, 0, "tasks were lost: {counts:?}");
    assert_eq!(counts.done, tasks, "every task must be done: {counts:?}");
    assert_eq!(counts.dead + counts.pending + counts.running + counts.retry, 0, "{counts:?}");
    assert!(
        duplicates <= u64::try_from(in_flight).unwrap_or(0),
        "{duplicates} runs beyond one per task, but only {in_flight} tasks were in flight in the killed process"
    );
    for (n, processes) in &per_task {
        if processes.len() > 1 {
            assert!(
                processes.contains(&killed),
                "task {n} ran twice without a run in the killed process: {processes:?}"
            );
        }
    }
}
