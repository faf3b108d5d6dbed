//! Cron across real processes: five worker processes run one every-second
//! schedule on one SQLite file and each tick runs exactly once; then every
//! process is down for five ticks, and the one started next runs the latest
//! missed tick once (`missed = "once"`) and goes on with the schedule.
//!
//! `harness = false`: `main` is the test. It re-executes itself with
//! `--child` to become a worker process.

#![allow(clippy::print_stdout)] // a harness-less test reports its result on stdout

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use errand::WorkerBuilder;
use errand::capability::Schedules;
use errand::prelude::*;
use errand::schedule::Schedule;
use errand::sqlite::SqliteBackend;

/// Where runs are recorded: one `tick_ms pid` line per run, appended.
struct RunLog(PathBuf);

#[errand::job(queue = "cron_test", cron = "* * * * * *", missed = "once")]
async fn every_second(tick: Tick, log: Data<RunLog>) -> Result<(), JobError> {
    let mut file = std::fs::OpenOptions::new().append(true).create(true).open(&log.0)?;
    file.write_all(format!("{} {}\n", tick.timestamp().as_millis(), std::process::id()).as_bytes())?;
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let millis: u64 = args.get(i + 3).and_then(|m| m.parse().ok()).unwrap_or(1000);
        child(Path::new(&args[i + 1]), Path::new(&args[i + 2]), Duration::from_millis(millis));
        return;
    }
    if args.iter().skip(1).any(|a| !a.starts_with('-') && !"cron_processes".contains(a.as_str())) {
        return;
    }
    parent();
    println!("test cron_processes ... ok\n1 passed, 0 failed");
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => panic!("cannot start tokio: {e}"),
    }
}

async fn backend(db: &Path) -> SqliteBackend {
    let url = format!("sqlite://{}", db.display());
    let builder = SqliteBackend::builder().tuning(|t| t.poll_interval(Duration::from_millis(50)));
    match builder.connect(&url).await {
        Ok(b) => b,
        Err(e) => panic!("cannot open {url}: {e}"),
    }
}

/// A worker process: runs the job and its schedule for `run_for`.
fn child(db: &Path, log: &Path, run_for: Duration) {
    runtime().block_on(async {
        let backend = backend(db).await;
        let worker = EverySecond::worker(&backend).data(RunLog(log.to_owned()));
        if let Err(e) = Monitor::new().register(worker).run_until(tokio::time::sleep(run_for)).await {
            panic!("child worker failed: {e}");
        }
    });
}

fn spawn_child(db: &Path, log: &Path, run_for: Duration) -> Child {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("cannot find the test binary: {e}"));
    match Command::new(exe).arg("--child").arg(db).arg(log).arg(run_for.as_millis().to_string()).spawn() {
        Ok(child) => child,
        Err(e) => panic!("cannot start a worker process: {e}"),
    }
}

fn wait_all(children: Vec<Child>) {
    for mut child in children {
        let status = child.wait().unwrap_or_else(|e| panic!("waiting for a worker: {e}"));
        assert!(status.success(), "a worker process failed: {status}");
    }
}

/// Runs per tick, from the log.
fn runs(log: &Path) -> BTreeMap<i64, usize> {
    let mut runs = BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        if let Some(tick) = line.split_once(' ').and_then(|(t, _)| t.parse().ok()) {
            *runs.entry(tick).or_insert(0) += 1;
        }
    }
    runs
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn parent() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
    let db = dir.path().join("cron.db");
    let log = dir.path().join("runs.log");
    let rt = runtime();
    rt.block_on(async { drop(backend(&db).await) }); // creates the tables once

    // Five processes, one schedule, about ten seconds.
    let five: Vec<Child> = (0..5).map(|_| spawn_child(&db, &log, Duration::from_millis(10_300))).collect();
    wait_all(five);
    let first = runs(&log);
    assert!(first.len() >= 8, "ten seconds of an every-second schedule ran only {} ticks", first.len());
    let key = format!("every_second/{}", EverySecond::schedule().key());
    let recorded = rt
        .block_on(async { backend(&db).await.last_tick(&key).await })
        .unwrap_or_else(|e| panic!("last_tick failed: {e}"))
        .map(|t| t.as_millis())
        .unwrap_or_else(|| panic!("no last tick recorded for `{key}`"));

    // Everyone down for five ticks and a half, then one process again.
    std::thread::sleep(Duration::from_millis(5_500));
    let restart = now_ms();
    wait_all(vec![spawn_child(&db, &log, Duration::from_millis(2_500))]);

    // Run what the last process left enqueued, without a schedule.
    rt.block_on(async {
        let backend = backend(&db).await;
        let watch = backend.clone();
        let drain = WorkerBuilder::<EverySecond, _>::new(backend).data(RunLog(log.clone()));
        let stop = async move {
            while watch.queue_counts("cron_test").await.is_ok_and(|c| c.pending + c.running + c.retry > 0) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        if let Err(e) = Monitor::new().register(drain).run_until(stop).await {
            panic!("draining failed: {e}");
        }
    });

    let all = runs(&log);
    let doubled: Vec<(&i64, &usize)> = all.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "ticks ran more than once: {doubled:?}");
    let ticks: Vec<i64> = all.keys().copied().collect();
    let before: Vec<i64> = ticks.iter().copied().filter(|t| *t <= recorded).collect();
    for pair in before.windows(2) {
        assert_eq!(pair[1] - pair[0], 1000, "a tick is missing while five processes ran: {before:?}");
    }
    // The gap: ticks after the last one enqueued, up to the restart.
    let gap = (restart / 1000) - (recorded / 1000);
    assert!(gap >= 5, "the gap should hold five ticks, not {gap}");
    let caught_up: Vec<i64> = ticks.iter().copied().filter(|t| *t > recorded && *t <= restart).collect();
    assert!(caught_up.len() <= 1, "`missed = \"once\"` ran several of the {gap} missed ticks: {caught_up:?}");
    let after: Vec<i64> = ticks.iter().copied().filter(|t| *t > recorded).collect();
    assert!(
        after.first().is_some_and(|t| *t >= restart - 2000),
        "the restarted process should run the latest missed tick once, then go on: {after:?}"
    );
    for pair in after.windows(2) {
        assert_eq!(pair[1] - pair[0], 1000, "the restarted schedule skipped a tick: {after:?}");
    }
    assert!(after.len() >= 2, "the restarted schedule did not go on ticking: {after:?}");
}
