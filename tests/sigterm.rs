//! SIGTERM (what `docker stop`, Kubernetes and systemd send) is a graceful
//! shutdown: a worker process running `Monitor::run` stops claiming, lets its
//! in-flight runs finish, releases what it holds, and exits cleanly — no task
//! is left `running` to wait for orphan rescue, and no attempt is used up.
//!
//! `harness = false`: `main` is the test. It re-executes itself with
//! `--child` to become a worker process.

#![allow(clippy::print_stdout)] // a harness-less test reports its result on stdout

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use errand::prelude::*;
use errand::sqlite::SqliteBackend;
use errand::{TaskFilter, TaskState};

const TASKS: u64 = 40;
const CONCURRENCY: usize = 4;

/// Where runs are recorded: `start n` and `end n` lines, appended.
struct RunLog(PathBuf);

fn log(path: &Path, line: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().append(true).create(true).open(path)?;
    file.write_all(format!("{line}\n").as_bytes())
}

#[errand::job(queue = "sigterm_test")]
async fn slow(n: u64, runs: Data<RunLog>) -> Result<(), JobError> {
    log(&runs.0, &format!("start {n}"))?;
    tokio::time::sleep(Duration::from_millis(400)).await;
    log(&runs.0, &format!("end {n}"))?;
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(Path::new(&args[i + 1]), Path::new(&args[i + 2]));
        return;
    }
    if args.iter().skip(1).any(|a| !a.starts_with('-') && !"sigterm".contains(a.as_str())) {
        return;
    }
    if cfg!(not(unix)) {
        println!("test sigterm ... ignored, SIGTERM exists on Unix only");
        return;
    }
    parent();
    println!("test sigterm ... ok\n1 passed, 0 failed");
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => panic!("cannot start tokio: {e}"),
    }
}

async fn backend(db: &Path) -> SqliteBackend {
    let url = format!("sqlite://{}", db.display());
    match SqliteBackend::builder().tuning(|t| t.poll_interval(Duration::from_millis(50))).connect(&url).await {
        Ok(b) => b,
        Err(e) => panic!("cannot open {url}: {e}"),
    }
}

fn child(db: &Path, runs: &Path) {
    runtime().block_on(async {
        let backend = backend(db).await;
        let worker = Slow::worker(&backend).data(RunLog(runs.to_owned())).concurrency(CONCURRENCY);
        // `run` stops on Ctrl-C or SIGTERM.
        if let Err(e) = Monitor::new().register(worker).shutdown_timeout(Duration::from_secs(10)).run().await {
            panic!("the worker failed: {e}");
        }
    });
}

fn lines(runs: &Path, kind: &str) -> Vec<u64> {
    let text = std::fs::read_to_string(runs).unwrap_or_default();
    text.lines().filter_map(|l| l.strip_prefix(kind)?.trim().parse().ok()).collect()
}

fn parent() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
    let db = dir.path().join("sigterm.db");
    let runs = dir.path().join("runs.log");
    let rt = runtime();
    rt.block_on(async {
        let backend = backend(&db).await;
        if let Err(e) = backend.enqueue_bulk((0..TASKS).map(Slow::new)).await {
            panic!("enqueue failed: {e}");
        }
    });

    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("cannot find the test binary: {e}"));
    let mut worker = Command::new(exe)
        .arg("--child")
        .arg(&db)
        .arg(&runs)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start a worker process: {e}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while lines(&runs, "start ").len() < CONCURRENCY + 2 {
        assert!(Instant::now() < deadline, "the worker made no progress");
        std::thread::sleep(Duration::from_millis(10));
    }
    let term = Command::new("kill").arg("-TERM").arg(worker.id().to_string()).status();
    assert!(term.as_ref().is_ok_and(|s| s.success()), "could not send SIGTERM: {term:?}");
    let sent = Instant::now();
    let status = worker.wait().unwrap_or_else(|e| panic!("waiting for the worker: {e}"));
    assert!(status.success(), "the worker did not exit cleanly on SIGTERM: {status}");
    assert!(sent.elapsed() < Duration::from_secs(10), "the worker took {:?} to stop", sent.elapsed());

    let (mut started, mut ended) = (lines(&runs, "start "), lines(&runs, "end "));
    started.sort_unstable();
    ended.sort_unstable();
    assert_eq!(started, ended, "every run that started finished before the worker exited");
    assert!(started.len() < TASKS as usize, "SIGTERM came before the queue was drained");

    let tasks = rt
        .block_on(async { backend(&db).await.tasks(&TaskFilter { limit: 1000, ..TaskFilter::default() }).await })
        .unwrap_or_else(|e| panic!("listing tasks failed: {e}"));
    for task in &tasks {
        match task.state {
            TaskState::Done => {}
            TaskState::Pending => assert_eq!(task.attempt, 0, "a released task got its attempt back: {task:?}"),
            other => panic!("task {} is {other} after a graceful stop: {task:?}", task.id),
        }
    }
    let done = tasks.iter().filter(|t| t.state == TaskState::Done).count();
    assert_eq!(done, started.len(), "the finished runs are the done tasks");
}
