//! Many worker *processes* on one queue, one of them killed with SIGKILL
//! part-way: no task is lost, and only tasks that were in flight at the
//! kill run twice (at-least-once). Prints
//! `load [redis]: processes N, tasks M, lost 0, duplicates D`.
//!
//! The CI size is 4 processes × 20,000 tasks; the full size is
//! `ERRAND_LOAD_PROCESSES=10 ERRAND_LOAD_TASKS=100000 cargo test --release
//! -p errand-redis --test load` (with `ERRAND_REDIS_URL` set). Every key is
//! under a prefix of its own, deleted at the end (`SCAN` + `UNLINK`).
//!
//! `harness = false`: `main` is the test. It re-executes itself with
//! `--child <prefix> <run log>` to become a worker process; each run appends
//! its task's number to that process's log (one `write` per run, so the
//! lines of a killed process survive it).

#![allow(clippy::print_stdout)] // a harness-less test reports its result on stdout

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use errand_redis::RedisBackend;
use errand_runtime::{BackendExt, Job, JobError, Monitor, TaskCx, TaskSink, WorkerBuilder};

const QUEUE: &str = "load";
const CONCURRENCY: usize = 32;
/// How long the whole run may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(900);

/// Where a process records its runs.
struct RunLog(Mutex<std::fs::File>);

#[derive(serde::Serialize, serde::Deserialize)]
struct Load {
    n: u64,
}

impl Job for Load {
    const NAME: &'static str = "load";
    const QUEUE: &'static str = QUEUE;
    type Output = ();
    async fn run(self, cx: TaskCx) -> Result<(), JobError> {
        if let Some(log) = cx.data::<RunLog>() {
            let mut file = log.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            file.write_all(format!("{}\n", self.n).as_bytes()).map_err(JobError::abort)?;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        Ok(())
    }
}

fn setting(var: &str, default: u64) -> u64 {
    match std::env::var(var) {
        Ok(value) => value.parse().unwrap_or_else(|_| panic!("{var}={value} is not a number")),
        Err(_) => default,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1], Path::new(&args[i + 2]));
        return;
    }
    // `cargo test -- <filter>` passes arguments; run only when not filtered out.
    if args.iter().skip(1).any(|a| !a.starts_with('-') && !"load".contains(a.as_str())) {
        return;
    }
    if cfg!(errand_skip) {
        println!("test load ... ignored, set ERRAND_REDIS_URL to run against a server");
        return;
    }
    parent();
    println!("test load ... ok\n1 passed, 0 failed");
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => panic!("cannot start tokio: {e}"),
    }
}

async fn backend(prefix: &str) -> RedisBackend {
    let url = common::url();
    let builder = RedisBackend::builder()
        .namespace(prefix)
        .tuning(|t| t.orphan_after(Duration::from_secs(5)).poll_interval(Duration::from_millis(200)));
    match builder.connect(&url).await {
        Ok(b) => b,
        Err(e) => panic!("cannot connect to {url}: {e}"),
    }
}

fn child(prefix: &str, log: &Path) {
    let file = match std::fs::OpenOptions::new().append(true).create(true).open(log) {
        Ok(file) => file,
        Err(e) => panic!("cannot open {}: {e}", log.display()),
    };
    runtime().block_on(async {
        let backend = backend(prefix).await;
        let watch = backend.clone();
        let worker = WorkerBuilder::<Load, _>::new(backend)
            .data(RunLog(Mutex::new(file)))
            .concurrency(CONCURRENCY)
            .heartbeat(Duration::from_millis(200));
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
            panic!("child worker failed: {e}");
        }
    });
}

/// The children, the run logs and the keys of one run: killed, removed and
/// deleted when dropped, whatever happened.
struct Run {
    prefix: String,
    dir: PathBuf,
    children: Vec<Child>,
}

impl Drop for Run {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        let (url, prefix) = (common::url(), self.prefix.clone());
        errand_runtime::testing::clean_up_blocking(Duration::from_secs(30), move || async move {
            let _ = common::delete_keys(&url, &prefix).await;
        });
    }
}

impl Run {
    fn log(&self, i: usize) -> PathBuf {
        self.dir.join(format!("runs-{i}.log"))
    }

    fn spawn(&mut self, i: usize) {
        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("cannot find the test binary: {e}"));
        let child = Command::new(exe).arg("--child").arg(&self.prefix).arg(self.log(i)).spawn();
        self.children.push(child.unwrap_or_else(|e| panic!("cannot start a worker process: {e}")));
    }

    /// Task number → the processes whose log has a run of it.
    fn runs(&self) -> HashMap<u64, Vec<usize>> {
        let mut runs: HashMap<u64, Vec<usize>> = HashMap::new();
        for i in 0..self.children.len() {
            let text = std::fs::read_to_string(self.log(i)).unwrap_or_default();
            for n in text.lines().filter_map(|line| line.parse().ok()) {
                runs.entry(n).or_default().push(i);
            }
        }
        runs
    }

    fn total_runs(&self) -> u64 {
        (0..self.children.len())
            .map(|i| std::fs::read_to_string(self.log(i)).map_or(0, |text| text.lines().count() as u64))
            .sum()
    }
}

fn parent() {
    let processes = usize::try_from(setting("ERRAND_LOAD_PROCESSES", 4)).unwrap_or(4).max(2);
    let tasks = setting("ERRAND_LOAD_TASKS", 20_000).max(100);
    let prefix = common::random_prefix().replacen("errand-test:", "errand-load:", 1);
    let dir = std::env::temp_dir().join(prefix.replace(':', "-").trim_end_matches('-'));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let mut run = Run { prefix, dir, children: Vec::new() };
    let rt = runtime();
    rt.block_on(async {
        let backend = backend(&run.prefix).await;
        for start in (0..tasks).step_by(10_000) {
            let jobs = (start..(start + 10_000).min(tasks)).map(|n| Load { n });
            backend.enqueue_bulk(jobs).await.unwrap_or_else(|e| panic!("enqueue failed: {e}"));
        }
    });
    let started = Instant::now();
    for i in 0..processes {
        run.spawn(i);
    }

    // One process is killed with SIGKILL once the drain is well under way.
    while run.total_runs() < tasks / 3 {
        assert!(started.elapsed() < PATIENCE, "the workers made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    run.children[0].kill().unwrap_or_else(|e| panic!("SIGKILL failed: {e}"));
    let _ = run.children[0].wait();
    let in_flight = rt.block_on(async { backend(&run.prefix).await.queue_counts(QUEUE).await.map(|c| c.running) });
    let in_flight = in_flight.unwrap_or_else(|e| panic!("counts failed: {e}"));

    // The others rescue its tasks once it stops heartbeating, and drain the rest.
    for i in 1..processes {
        loop {
            match run.children[i].try_wait() {
                Ok(Some(status)) => {
                    assert!(status.success(), "worker process {i} failed: {status}");
                    break;
                }
                Ok(None) => {
                    assert!(started.elapsed() < PATIENCE, "the workers did not finish in {PATIENCE:?}");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("waiting for worker process {i}: {e}"),
            }
        }
    }
    let elapsed = started.elapsed();

    let counts = rt
        .block_on(async { backend(&run.prefix).await.queue_counts(QUEUE).await })
        .unwrap_or_else(|e| panic!("counts failed: {e}"));
    assert_eq!(counts.done, tasks, "every task must be done: {counts:?}");
    assert_eq!(counts.dead + counts.pending + counts.running + counts.retry, 0, "{counts:?}");
    let runs = run.runs();
    let lost = (0..tasks).filter(|n| !runs.contains_key(n)).count();
    let duplicates: u64 = runs.values().map(|by| by.len() as u64 - 1).sum();
    for (n, by) in &runs {
        assert!(
            by.len() == 1 || by.contains(&0),
            "task {n} ran {} times without the killed process among them ({by:?})",
            by.len()
        );
    }
    println!(
        "load [redis]: processes {processes}, tasks {tasks}, lost {lost}, duplicates {duplicates} \
         (≤ {in_flight} in flight at the kill), {:.1} s",
        elapsed.as_secs_f64()
    );
    assert_eq!(lost, 0, "tasks never ran");
    assert!(duplicates <= in_flight, "{duplicates} runs beyond one per task, but only {in_flight} were in flight");
}
