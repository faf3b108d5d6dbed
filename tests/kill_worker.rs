//! A worker *process* killed with SIGKILL mid-run loses nothing: a second
//! process rescues its tasks once it stops heartbeating, and every task
//! completes. Only tasks that were in flight at the kill may run twice
//! (at-least-once).
//!
//! `harness = false`: `main` is the test. It re-executes itself with
//! `--child` to become a worker process.

#![allow(clippy::print_stdout)] // a harness-less test reports its result on stdout

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use errand::prelude::*;
use errand::sqlite::SqliteBackend;

const TASKS: u64 = 300;
const CONCURRENCY: usize = 8;

/// Where runs are recorded: one `n pid` line per run, appended.
struct RunLog(PathBuf);

#[errand::job(queue = "kill_test", retries = 3)]
async fn slow(n: u64, log: Data<RunLog>) -> Result<(), JobError> {
    tokio::time::sleep(Duration::from_millis(15)).await;
    let mut file = std::fs::OpenOptions::new().append(true).create(true).open(&log.0)?;
    file.write_all(format!("{n} {}\n", std::process::id()).as_bytes())?;
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let db = PathBuf::from(&args[i + 1]);
        let log = PathBuf::from(&args[i + 2]);
        child(&db, &log);
        return;
    }
    // `cargo test -- <filter>` passes arguments; run only when not filtered out.
    if args.iter().skip(1).any(|a| !a.starts_with('-') && !"kill_worker".contains(a.as_str())) {
        return;
    }
    parent();
    println!("test kill_worker ... ok\n1 passed, 0 failed");
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
        .tuning(|t| t.orphan_after(Duration::from_millis(1500)).poll_interval(Duration::from_millis(50)));
    match builder.connect(&url).await {
        Ok(b) => b,
        Err(e) => panic!("cannot open {url}: {e}"),
    }
}

fn child(db: &Path, log: &Path) {
    runtime().block_on(async {
        let backend = backend(db).await;
        let watch = backend.clone();
        let worker = Slow::worker(&backend)
            .data(RunLog(log.to_owned()))
            .concurrency(CONCURRENCY)
            .heartbeat(Duration::from_millis(200));
        let result = Monitor::new()
            .register(worker)
            .run_until(async move {
                loop {
                    if let Ok(c) = watch.queue_counts("kill_test").await
                        && c.pending + c.running + c.retry == 0
                    {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
            .await;
        if let Err(e) = result {
            panic!("child worker failed: {e}");
        }
    });
}

fn spawn_child(db: &Path, log: &Path) -> Child {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => panic!("cannot find the test binary: {e}"),
    };
    match Command::new(exe).arg("--child").arg(db).arg(log).spawn() {
        Ok(child) => child,
        Err(e) => panic!("cannot start a worker process: {e}"),
    }
}

fn runs(log: &Path) -> Vec<(u64, u32)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (n, pid) = line.split_once(' ')?;
            Some((n.parse().ok()?, pid.parse().ok()?))
        })
        .collect()
}

fn parent() {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => panic!("cannot create a temp dir: {e}"),
    };
    let db = dir.path().join("kill.db");
    let log = dir.path().join("runs.log");
    let rt = runtime();
    rt.block_on(async {
        let backend = backend(&db).await;
        let jobs: Vec<Slow> = (0..TASKS).map(Slow::new).collect();
        if let Err(e) = backend.enqueue_bulk(jobs).await {
            panic!("enqueue failed: {e}");
        }
    });

    // First worker: killed with SIGKILL once it is well into the queue.
    let mut first = spawn_child(&db, &log);
    let deadline = Instant::now() + Duration::from_secs(60);
    while runs(&log).len() < (TASKS / 3) as usize {
        assert!(Instant::now() < deadline, "the first worker made no progress");
        std::thread::sleep(Duration::from_millis(10));
    }
    if let Err(e) = first.kill() {
        panic!("SIGKILL failed: {e}");
    }
    let _ = first.wait();
    let killed_pid = first.id();
    let before = runs(&log).len();
    assert!(before < TASKS as usize, "the first worker finished before it could be killed");

    let in_flight = rt.block_on(async { backend(&db).await.queue_counts("kill_test").await.map(|c| c.running) });
    let in_flight = in_flight.unwrap_or_else(|e| panic!("counts failed: {e}"));
    assert!(in_flight > 0, "the killed worker should have left tasks running");

    // Second worker: rescues the orphans after `orphan_after`, runs the rest.
    let mut second = spawn_child(&db, &log);
    let status = second.wait().unwrap_or_else(|e| panic!("waiting for the second worker: {e}"));
    assert!(status.success(), "the second worker failed: {status}");

    let counts = rt
        .block_on(async { backend(&db).await.queue_counts("kill_test").await })
        .unwrap_or_else(|e| panic!("counts failed: {e}"));
    assert_eq!(counts.done, TASKS, "every task must complete: {counts:?}");
    assert_eq!(counts.dead + counts.pending + counts.running + counts.retry, 0, "{counts:?}");

    let mut per_task: HashMap<u64, Vec<u32>> = HashMap::new();
    for (n, pid) in runs(&log) {
        per_task.entry(n).or_default().push(pid);
    }
    assert_eq!(per_task.len(), TASKS as usize, "every task ran");
    let twice: Vec<u64> = per_task.iter().filter(|(_, pids)| pids.len() > 1).map(|(n, _)| *n).collect();
    assert!(
        twice.len() <= CONCURRENCY,
        "only tasks in flight at the kill may run twice, but {} did: {twice:?}",
        twice.len()
    );
    for n in &twice {
        assert_eq!(per_task[n][0], killed_pid, "task {n} ran twice without the first run being killed");
    }
}
